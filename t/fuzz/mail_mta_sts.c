/*
 * libFuzzer target: the MTA-STS parsers (common/mail/mta_sts.c) on
 * hostile bytes. The input is read as a policy file (whatever a web
 * server sends) and, up to its first NUL, as a TXT record and as MX
 * pattern/host pairs. Invariants (trap on violation): a parsed policy
 * has a known mode, max_age within bounds, at most DNS_MAX_STS_MX
 * patterns, each lower case without a final dot, each matching a host
 * made from it; a parsed TXT id is 1-32 letters and digits; a pattern
 * never matches a host that has a different number of labels.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mta_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t labels(const char *s)
{
    size_t n = 1, len = strlen(s);

    if (len && s[len - 1] == '.')
        len--;
    for (size_t i = 0; i < len; i++)
        n += s[i] == '.';
    return n;
}

static void check_policy(const struct sts_policy *p)
{
    if (p->mode > DNS_STS_MODE_ENFORCE || p->max_age > STS_MAX_AGE_MAX || p->nmx > DNS_MAX_STS_MX)
        __builtin_trap();
    if (p->nmx == 0 && p->mode != DNS_STS_MODE_NONE)
        __builtin_trap();
    for (size_t i = 0; i < p->nmx; i++) {
        const char *m = p->mx[i];
        size_t n = strlen(m);
        char host[DNS_MAX_NAME + 8];
        if (n == 0 || m[n - 1] == '.')
            __builtin_trap();
        for (size_t k = 0; k < n; k++)
            if (m[k] >= 'A' && m[k] <= 'Z')
                __builtin_trap();
        if (m[0] == '*') {
            host[0] = 'x';
            memcpy(host + 1, m + 1, n); /* "x.example.com" and its NUL */
        } else {
            memcpy(host, m, n + 1);
        }
        if (!sts_mx_match(m, host) || !sts_policy_mx_ok(p, host))
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sts_policy p;
    char why[256], id[STS_ID_MAX + 1], *text, *host;

    if (sts_policy_parse((const char *)data, size, &p, why, sizeof(why)) == 0)
        check_policy(&p);
    text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    if (sts_txt_parse(text, id, why, sizeof(why)) == 1) {
        size_t n = strlen(id);
        if (n == 0 || n > STS_ID_MAX)
            __builtin_trap();
    }
    /* "pattern\nhost" */
    host = strchr(text, '\n');
    if (host) {
        *host++ = '\0';
        if (sts_mx_match(text, host) && labels(text) != labels(host))
            __builtin_trap();
    }
    free(text);
    return 0;
}
