/*
 * tls_mode - names of the TLS modes (see tls_mode.h).
 */
#include "mail/tls_mode.h"

#include <string.h>

const char *const tls_mode_names[] = {"none", "may",       "encrypt", "verify",
                                      "dane", "dane-only", NULL};

const char *tls_mode_name(enum tls_mode m)
{
    return (unsigned)m <= TLS_MODE_LAST ? tls_mode_names[m] : "?";
}

int tls_mode_parse(const char *s)
{
    for (int i = 0; tls_mode_names[i] != NULL; i++)
        if (strcmp(s, tls_mode_names[i]) == 0)
            return i;
    return -1;
}
