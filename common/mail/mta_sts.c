/*
 * mta_sts - the TXT record, the policy file and the MX patterns of
 * MTA-STS (RFC 8461); contract in mta_sts.h.
 *
 * Both parsers are strict where the RFC's grammar is and where a
 * looser reading could change which hosts are trusted (the version
 * first, one mode, one max_age, well-formed mx patterns), and lenient
 * only where the RFC says so (unknown fields are ignored). Every byte is
 * bounds-checked: the policy comes from a web server we do not control.
 */
#include "mail/mta_sts.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"

static int is_wsp(int c)
{
    return c == ' ' || c == '\t';
}

static int is_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static void set_why(char *why, size_t whylen, const char *fmt, const char *arg)
{
    if (why && whylen)
        snprintf(why, whylen, fmt, arg);
}

/* ---- the TXT record ---- */

/* sts-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static int ext_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 32 || !is_alnum((unsigned char)s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_alnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return 0;
    return 1;
}

/* sts-ext-value: 1*(%x21-3A / %x3C / %x3E-7E) */
static int ext_value_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
            return 0;
    }
    return 1;
}

int sts_txt_parse(const char *txt, char id[STS_ID_MAX + 1], char *why, size_t whylen)
{
    static const char ver[] = "v=STSv1";
    const char *p = txt + sizeof(ver) - 1;
    int have_id = 0;

    id[0] = '\0';
    if (strncmp(txt, ver, sizeof(ver) - 1) != 0)
        return 0;
    while (is_wsp((unsigned char)*p))
        p++;
    if (*p != ';' && *p != '\0')
        return 0; /* "v=STSv10": not a version we know */
    for (;;) {
        const char *f, *eq, *end;
        while (is_wsp((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        if (*p != ';') {
            set_why(why, whylen, "%s", "fields must be separated by ';'");
            return -1;
        }
        p++;
        while (is_wsp((unsigned char)*p))
            p++;
        if (*p == '\0')
            break; /* a final ';' */
        f = p;
        while (*p && *p != ';' && !is_wsp((unsigned char)*p))
            p++;
        end = p;
        eq = memchr(f, '=', (size_t)(end - f));
        if (eq == NULL || !ext_name_ok(f, (size_t)(eq - f)) ||
            !ext_value_ok(eq + 1, (size_t)(end - eq - 1))) {
            set_why(why, whylen, "malformed field \"%.40s\"", f);
            return -1;
        }
        if (eq - f == 2 && memcmp(f, "id", 2) == 0) {
            size_t n = (size_t)(end - eq - 1);
            if (have_id) {
                set_why(why, whylen, "%s", "two id fields");
                return -1;
            }
            if (n > STS_ID_MAX) {
                set_why(why, whylen, "id longer than %s characters", "32");
                return -1;
            }
            for (size_t i = 0; i < n; i++)
                if (!is_alnum((unsigned char)eq[1 + i])) {
                    set_why(why, whylen, "id \"%.40s\" is not letters and digits", eq + 1);
                    return -1;
                }
            memcpy(id, eq + 1, n);
            id[n] = '\0';
            have_id = 1;
        }
    }
    if (!have_id) {
        set_why(why, whylen, "%s", "no id field");
        return -1;
    }
    return 1;
}

/* ---- MX patterns ---- */

/* RFC 5321 Domain: labels of letters, digits and inner hyphens, 1-63
 * bytes each, 253 in all; no final dot (the caller strips it). */
static int domain_ok(const char *s, size_t n)
{
    size_t label = 0;

    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!is_alnum(c) && !(c == '-' && label > 0))
            return 0;
        if (++label > 63)
            return 0;
    }
    return s[n - 1] != '-' && s[n - 1] != '.';
}

/* A pattern's text normalized into out (lower case, no final dot); -1 if
 * it is not ["*."] Domain. */
static int pattern_norm(const char *s, size_t n, char *out, size_t outlen)
{
    size_t off = 0;

    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n >= 2 && s[0] == '*' && s[1] == '.')
        off = 2;
    if (!domain_ok(s + off, n - off) || n >= outlen)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    ascii_lower(out);
    return 0;
}

/* Length of a name without one final dot. */
static size_t name_len(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '.' ? n - 1 : n;
}

int sts_mx_match(const char *pattern, const char *host)
{
    size_t pn = name_len(pattern), hn = name_len(host);
    const char *dot;

    if (pn == 0 || hn == 0)
        return 0;
    if (pattern[0] != '*')
        return pn == hn && ascii_ncasecmp(pattern, host, pn) == 0;
    if (pn < 3 || pattern[1] != '.')
        return 0; /* "*" alone, "*x.example" */
    /* "*.example.com": one label, then ".example.com" */
    dot = memchr(host, '.', hn);
    if (dot == NULL || dot == host)
        return 0;
    return (size_t)(host + hn - dot) == pn - 1 && ascii_ncasecmp(dot, pattern + 1, pn - 1) == 0;
}

int sts_policy_mx_ok(const struct sts_policy *p, const char *host)
{
    for (size_t i = 0; i < p->nmx; i++)
        if (sts_mx_match(p->mx[i], host))
            return 1;
    return 0;
}

/* ---- the policy file ---- */

enum { K_VERSION = 1, K_MODE = 2, K_MAX_AGE = 4 };

struct pline {
    const char *key, *val;
    size_t klen, vlen;
};

static int key_is(const struct pline *l, const char *name)
{
    return l->klen == strlen(name) && ascii_ncasecmp(l->key, name, l->klen) == 0;
}

static int val_is(const struct pline *l, const char *v)
{
    return l->vlen == strlen(v) && ascii_ncasecmp(l->val, v, l->vlen) == 0;
}

/* Split one line "key *WSP : *WSP value *WSP" (no terminator). */
static int split_line(const char *s, size_t n, struct pline *l)
{
    size_t i = 0, k;

    while (i < n && s[i] != ':' && !is_wsp((unsigned char)s[i]))
        i++;
    k = i;
    while (i < n && is_wsp((unsigned char)s[i]))
        i++;
    if (k == 0 || i >= n || s[i] != ':')
        return -1;
    i++;
    while (i < n && is_wsp((unsigned char)s[i]))
        i++;
    while (n > i && is_wsp((unsigned char)s[n - 1]))
        n--;
    l->key = s;
    l->klen = k;
    l->val = s + i;
    l->vlen = n - i;
    return l->vlen == 0 ? -1 : 0;
}

static int parse_max_age(const struct pline *l, uint32_t *out)
{
    uint64_t v = 0;

    if (l->vlen > 10)
        return -1;
    for (size_t i = 0; i < l->vlen; i++) {
        if (l->val[i] < '0' || l->val[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(l->val[i] - '0');
    }
    if (v > STS_MAX_AGE_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int add_mx(struct sts_policy *p, const struct pline *l)
{
    char norm[DNS_MAX_NAME + 1];

    if (pattern_norm(l->val, l->vlen, norm, sizeof(norm)) < 0)
        return -1;
    for (size_t i = 0; i < p->nmx; i++)
        if (strcmp(p->mx[i], norm) == 0)
            return 0; /* a duplicate */
    if (p->nmx >= DNS_MAX_STS_MX)
        return -2;
    memcpy(p->mx[p->nmx++], norm, strlen(norm) + 1);
    return 0;
}

/* One field of the policy; seen: the K_* met so far. */
static int policy_field(struct sts_policy *p, const struct pline *l, unsigned *seen, size_t lineno,
                        char *why, size_t whylen)
{
    char where[32];
    int r;

    snprintf(where, sizeof(where), "line %zu", lineno);
    if (!(*seen & K_VERSION)) {
        if (!key_is(l, "version") || !val_is(l, "STSv1")) {
            set_why(why, whylen, "%s: the policy does not start with \"version: STSv1\"", where);
            return -1;
        }
        *seen |= K_VERSION;
        return 0;
    }
    if (key_is(l, "version")) {
        set_why(why, whylen, "%s: a second version field", where);
        return -1;
    }
    if (key_is(l, "mode")) {
        if (*seen & K_MODE) {
            set_why(why, whylen, "%s: a second mode field", where);
            return -1;
        }
        if (val_is(l, "enforce"))
            p->mode = DNS_STS_MODE_ENFORCE;
        else if (val_is(l, "testing"))
            p->mode = DNS_STS_MODE_TESTING;
        else if (val_is(l, "none"))
            p->mode = DNS_STS_MODE_NONE;
        else {
            set_why(why, whylen, "%s: mode is not enforce, testing or none", where);
            return -1;
        }
        *seen |= K_MODE;
        return 0;
    }
    if (key_is(l, "max_age")) {
        if (*seen & K_MAX_AGE) {
            set_why(why, whylen, "%s: a second max_age field", where);
            return -1;
        }
        if (parse_max_age(l, &p->max_age) < 0) {
            set_why(why, whylen, "%s: max_age is not a number of seconds from 0 to 31557600",
                    where);
            return -1;
        }
        *seen |= K_MAX_AGE;
        return 0;
    }
    if (key_is(l, "mx")) {
        r = add_mx(p, l);
        if (r == -1)
            set_why(why, whylen, "%s: mx is not a host name or *.domain pattern", where);
        else if (r == -2)
            set_why(why, whylen, "%s: more mx patterns than Postern keeps (32)", where);
        return r < 0 ? -1 : 0;
    }
    return 0; /* an extension: ignored (RFC 8461 3.2) */
}

/* Only printable ASCII and tabs inside a line. */
static int line_clean(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c > 0x7e)
            return 0;
    }
    return 1;
}

int sts_policy_parse(const char *text, size_t len, struct sts_policy *p, char *why, size_t whylen)
{
    size_t off = 0, lineno = 0;
    unsigned seen = 0;

    memset(p, 0, sizeof(*p));
    if (len > STS_POLICY_MAX) {
        set_why(why, whylen, "%s", "the policy is longer than 64 KiB");
        return -1;
    }
    while (off < len) {
        const char *s = text + off, *nl = memchr(s, '\n', len - off);
        size_t n = nl ? (size_t)(nl - s) : len - off;
        struct pline l;
        char where[32];

        off += n + (nl ? 1 : 0);
        lineno++;
        snprintf(where, sizeof(where), "line %zu", lineno);
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (!line_clean(s, n)) {
            set_why(why, whylen, "%s: a control character, NUL or non-ASCII byte", where);
            return -1;
        }
        if (n == 0)
            continue; /* a blank line */
        if (split_line(s, n, &l) < 0) {
            set_why(why, whylen, "%s: not a \"key: value\" line", where);
            return -1;
        }
        if (policy_field(p, &l, &seen, lineno, why, whylen) < 0)
            return -1;
    }
    if (!(seen & K_VERSION)) {
        set_why(why, whylen, "%s", "empty policy (no version field)");
        return -1;
    }
    if (!(seen & K_MODE)) {
        set_why(why, whylen, "%s", "no mode field");
        return -1;
    }
    if (!(seen & K_MAX_AGE)) {
        set_why(why, whylen, "%s", "no max_age field");
        return -1;
    }
    if (p->nmx == 0 && p->mode != DNS_STS_MODE_NONE) {
        set_why(why, whylen, "%s", "no mx field (needed unless mode is none)");
        return -1;
    }
    return 0;
}
