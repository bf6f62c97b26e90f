/*
 * dsn_param - RFC 3461 NOTIFY and RET values (see dsn_param.h).
 */
#include "mail/dsn_param.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"

static const struct {
    const char *name;
    unsigned bit;
} notify_words[] = {
    {"SUCCESS", DSN_NOTIFY_SUCCESS},
    {"FAILURE", DSN_NOTIFY_FAILURE},
    {"DELAY", DSN_NOTIFY_DELAY},
    {"NEVER", DSN_NOTIFY_NEVER},
};

static int word_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && ascii_ncasecmp(s, word, n) == 0;
}

static unsigned notify_word(const char *s, size_t n)
{
    for (size_t i = 0; i < nitems(notify_words); i++)
        if (word_is(s, n, notify_words[i].name))
            return notify_words[i].bit;
    return 0;
}

int dsn_notify_parse(const char *text, size_t len, unsigned *bits)
{
    unsigned set = 0;
    size_t i = 0;

    if (text == NULL || len == 0)
        return -1;
    while (i <= len) {
        size_t j = i;
        while (j < len && text[j] != ',')
            j++;
        unsigned b = notify_word(text + i, j - i);
        if (b == 0)
            return -1; /* unknown or empty item (",," or a trailing comma) */
        set |= b;
        i = j + 1;
    }
    if ((set & DSN_NOTIFY_NEVER) && set != DSN_NOTIFY_NEVER)
        return -1; /* NEVER stands alone */
    *bits = set;
    return 0;
}

const char *dsn_notify_format(unsigned bits, char *buf, size_t size)
{
    size_t off = 0;

    if (size == 0)
        return buf;
    buf[0] = '\0';
    if (bits & DSN_NOTIFY_NEVER) {
        snprintf(buf, size, "NEVER");
        return buf;
    }
    for (size_t i = 0; i < nitems(notify_words); i++) {
        if (!(bits & notify_words[i].bit) || notify_words[i].bit == DSN_NOTIFY_NEVER)
            continue;
        int n = snprintf(buf + off, size - off, "%s%s", off ? "," : "", notify_words[i].name);
        if (n < 0 || (size_t)n >= size - off)
            break;
        off += (size_t)n;
    }
    return buf;
}

int dsn_ret_parse(const char *text, size_t len)
{
    if (text == NULL)
        return -1;
    if (word_is(text, len, "FULL"))
        return DSN_RET_FULL;
    if (word_is(text, len, "HDRS"))
        return DSN_RET_HDRS;
    return -1;
}

const char *dsn_ret_name(enum dsn_ret ret)
{
    switch (ret) {
    case DSN_RET_FULL:
        return "FULL";
    case DSN_RET_HDRS:
        return "HDRS";
    case DSN_RET_NONE:
        break;
    }
    return "";
}
