/*
 * decide - the names of the recipient states; the types are decide.h's.
 */
#include "decide.h"

const char *rstate_name(enum rstate s)
{
    static const char *const names[] = {"pending", "sent", "deferred", "failed"};

    return (unsigned)s < 4 ? names[s] : "?";
}
