/*
 * outcome - names of the three outcomes (see outcome.h).
 */
#include "mail/outcome.h"

const char *outcome_name(int outcome)
{
    static const char *const names[] = {"ok", "temporary", "permanent"};

    return outcome >= 0 && outcome <= OUTCOME_PERM ? names[outcome] : "?";
}
