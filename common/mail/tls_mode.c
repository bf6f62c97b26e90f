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

const char *tls_mode_meaning(enum tls_mode m)
{
    switch (m) {
    case TLS_MODE_NONE:
        return "no STARTTLS";
    case TLS_MODE_MAY:
        return "STARTTLS when offered, else plaintext";
    case TLS_MODE_ENCRYPT:
        return "STARTTLS required, any certificate";
    case TLS_MODE_VERIFY:
        return "STARTTLS required, the certificate must match the host name";
    case TLS_MODE_DANE:
        return "DANE when the host has secure TLSA records, else STARTTLS when offered";
    case TLS_MODE_DANE_ONLY:
        return "DANE required: the host must have secure TLSA records";
    }
    return "?";
}
