/*
 * smtp_addr - RFC 5321 paths, ESMTP parameters and xtext (see smtp_addr.h).
 */
#include "mail/smtp_addr.h"

#include <arpa/inet.h>
#include <string.h>

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_hex_upper(int c)
{
    return is_digit(c) || (c >= 'A' && c <= 'F');
}

/* RFC 5322 atext */
static int is_atext(int c)
{
    return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

size_t smtp_utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0; /* overlong or out of range */
    if (cp >= 0xd800 && cp <= 0xdfff)
        return 0; /* surrogate */
    return n;
}

int smtp_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t n = smtp_utf8_seq(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* "[1.2.3.4]", "[IPv6:::1]" or a general literal "[tag:text]". */
static int addr_literal_valid(const char *s, size_t len)
{
    char tmp[64];
    unsigned char bin[16];

    if (len < 3 || s[0] != '[' || s[len - 1] != ']')
        return -1;
    s++;
    len -= 2;
    if (len >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (len > 5 && strncmp(tmp, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, tmp + 5, bin) == 1 ? 0 : -1;
    if (is_digit((unsigned char)tmp[0]))
        return inet_pton(AF_INET, tmp, bin) == 1 ? 0 : -1;
    /* General-address-literal: Standardized-tag ":" 1*dcontent */
    const char *colon = memchr(tmp, ':', len);
    if (colon == NULL || colon == tmp || colon[1] == '\0')
        return -1;
    for (const char *p = tmp; p < colon; p++)
        if (!is_alpha((unsigned char)*p) && !is_digit((unsigned char)*p) && *p != '-')
            return -1;
    for (const char *p = colon + 1; *p; p++)
        if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || *p == '[' || *p == ']' ||
            *p == '\\')
            return -1;
    return 0;
}

int smtp_domain_valid(const char *s, size_t len, int allow_utf8)
{
    size_t i = 0, label = 0;

    if (len == 0 || len > SMTP_DOMAIN_MAX)
        return -1;
    if (s[0] == '[')
        return addr_literal_valid(s, len);
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return -1;
            label = 0;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n;
            if (!allow_utf8)
                return -1;
            n = smtp_utf8_seq((const unsigned char *)s + i, len - i);
            if (n == 0)
                return -1;
            i += n;
            label += n;
            continue;
        }
        if (!is_alpha(c) && !is_digit(c) && c != '-')
            return -1;
        if (c == '-' && label == 0)
            return -1;
        label++;
        i++;
        if (label > 63)
            return -1;
    }
    if (label == 0 || s[len - 1] == '-')
        return -1; /* empty last label (trailing dot) or hyphen */
    return 0;
}

/* Length of a quoted string starting at s[0] == '"', or 0 if invalid. */
static size_t quoted_len(const char *s, size_t len, int *utf8)
{
    size_t i = 1;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (i + 1 >= len)
                return 0;
            c = (unsigned char)s[i + 1];
            if (c < 32 || c > 126)
                return 0;
            i += 2;
            continue;
        }
        if (c >= 0x80) {
            size_t n = smtp_utf8_seq((const unsigned char *)s + i, len - i);
            if (n == 0)
                return 0;
            *utf8 = 1;
            i += n;
            continue;
        }
        if (c < 32 || c > 126)
            return 0;
        i++;
    }
    return 0;
}

int smtp_mailbox_valid(const char *s, size_t len, unsigned *res, const char **why)
{
    size_t i = 0;
    int utf8 = 0;

    *res = 0;
    if (len == 0) {
        *why = "empty address";
        return -1;
    }
    if (len > SMTP_ADDR_MAX) {
        *why = "address too long";
        return -1;
    }
    if (s[0] == '"') {
        i = quoted_len(s, len, &utf8);
        if (i == 0) {
            *why = "bad quoted local part";
            return -1;
        }
    } else {
        /* Dot-string, leniently: consecutive dots occur in the wild. */
        while (i < len && s[i] != '@') {
            unsigned char c = (unsigned char)s[i];
            if (c >= 0x80) {
                size_t n = smtp_utf8_seq((const unsigned char *)s + i, len - i);
                if (n == 0) {
                    *why = "invalid UTF-8 in local part";
                    return -1;
                }
                utf8 = 1;
                i += n;
                continue;
            }
            if (!is_atext(c) && c != '.') {
                *why = "invalid character in local part";
                return -1;
            }
            i++;
        }
        if (i == 0) {
            *why = "empty local part";
            return -1;
        }
    }
    if (i > SMTP_LOCAL_MAX) {
        *why = "local part too long";
        return -1;
    }
    if (i >= len || s[i] != '@') {
        *why = "address has no domain";
        return -1;
    }
    i++;
    for (size_t j = i; j < len; j++)
        if ((unsigned char)s[j] >= 0x80)
            utf8 = 1;
    if (smtp_domain_valid(s + i, len - i, 1) != 0) {
        *why = "invalid domain";
        return -1;
    }
    if (utf8)
        *res |= SMTP_PATH_UTF8;
    return 0;
}

/* Skip "@dom,@dom:" source route; returns bytes used, 0 if none, -1 bad. */
static int skip_source_route(const char *s, size_t len)
{
    size_t i = 0;

    if (len == 0 || s[0] != '@')
        return 0;
    for (;;) {
        size_t start;
        if (i >= len || s[i] != '@')
            return -1;
        start = ++i;
        while (i < len && s[i] != ',' && s[i] != ':' && s[i] != '>')
            i++;
        if (i >= len || s[i] == '>' || smtp_domain_valid(s + start, i - start, 0) != 0)
            return -1;
        if (s[i] == ':')
            return (int)(i + 1);
        i++; /* ',' */
    }
}

int smtp_path_parse(const char *s, size_t len, unsigned flags, char *out, size_t outsz,
                    unsigned *res, const char **why)
{
    size_t i = 1, start, end;
    int sr;

    *res = 0;
    if (len == 0 || s[0] != '<') {
        *why = "address must be in angle brackets";
        return -1;
    }
    if (len >= 2 && s[1] == '>') {
        if (!(flags & SMTP_PATH_NULL_OK)) {
            *why = "null address not allowed here";
            return -1;
        }
        if (outsz > 0)
            out[0] = '\0';
        *res = SMTP_PATH_NULL;
        return 2;
    }
    sr = skip_source_route(s + 1, len - 1);
    if (sr < 0) {
        *why = "bad source route";
        return -1;
    }
    i += (size_t)sr;
    start = i;
    /* Find the closing '>' outside a quoted local part. */
    if (i < len && s[i] == '"') {
        int u = 0;
        size_t q = quoted_len(s + i, len - i, &u);
        if (q == 0) {
            *why = "bad quoted local part";
            return -1;
        }
        i += q;
    }
    while (i < len && s[i] != '>') {
        if (s[i] == '<' || s[i] == ' ' || (unsigned char)s[i] < 32) {
            *why = "invalid character in address";
            return -1;
        }
        i++;
    }
    if (i >= len) {
        *why = "missing closing angle bracket";
        return -1;
    }
    end = i;
    if (smtp_mailbox_valid(s + start, end - start, res, why) != 0)
        return -1;
    if (end - start + 1 > outsz) {
        *why = "address too long";
        return -1;
    }
    memcpy(out, s + start, end - start);
    out[end - start] = '\0';
    return (int)(end + 1);
}

int smtp_param_next(const char **pp, const char *end, int utf8, const char **key, size_t *klen,
                    const char **val, size_t *vlen, const char **why)
{
    const char *p = *pp;

    while (p < end && *p == ' ')
        p++;
    if (p >= end) {
        *pp = p;
        return 0;
    }
    *key = p;
    if (!is_alpha((unsigned char)*p) && !is_digit((unsigned char)*p)) {
        *why = "bad parameter keyword";
        return -1;
    }
    while (p < end && (is_alpha((unsigned char)*p) || is_digit((unsigned char)*p) || *p == '-'))
        p++;
    *klen = (size_t)(p - *key);
    *val = NULL;
    *vlen = 0;
    if (p < end && *p == '=') {
        p++;
        *val = p;
        while (p < end && *p != ' ') {
            unsigned char c = (unsigned char)*p;
            if (c >= 0x80 && utf8) {
                size_t n = smtp_utf8_seq((const unsigned char *)p, (size_t)(end - p));
                if (n == 0) {
                    *why = "invalid UTF-8 in parameter value";
                    return -1;
                }
                p += n;
                continue;
            }
            if (c < 33 || c > 126 || c == '=') {
                *why = "bad character in parameter value";
                return -1;
            }
            p++;
        }
        *vlen = (size_t)(p - *val);
        if (*vlen == 0) {
            *why = "empty parameter value";
            return -1;
        }
    }
    if (p < end && *p != ' ') {
        *why = "bad parameter syntax";
        return -1;
    }
    *pp = p;
    return 1;
}

int smtp_xtext_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            if (i + 2 >= len || !is_hex_upper((unsigned char)s[i + 1]) ||
                !is_hex_upper((unsigned char)s[i + 2]))
                return 0;
            i += 2;
            continue;
        }
        if (c < 33 || c > 126 || c == '=')
            return 0;
    }
    return 1;
}

static int hexval(int c)
{
    return is_digit(c) ? c - '0' : c - 'A' + 10;
}

int smtp_xtext_decode(const char *s, size_t len, char *out, size_t outsz)
{
    size_t o = 0;

    if (!smtp_xtext_valid(s, len))
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            c = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            i += 2;
        }
        if (o + 1 >= outsz)
            return -1;
        out[o++] = c;
    }
    if (outsz == 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}

int smtp_xtext_encode(const char *s, size_t len, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == '+' || c == '=') {
            if (o + 4 > outsz)
                return -1;
            out[o++] = '+';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            if (o + 2 > outsz)
                return -1;
            out[o++] = (char)c;
        }
    }
    if (outsz == 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}
