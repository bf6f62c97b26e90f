/*
 * maildrop - the maildrop file's framing (see maildrop.h).
 */
#include "maildrop.h"

#include <string.h>

enum { ST_MAGIC, ST_MAIL, ST_RCPT, ST_BODY, ST_END, ST_AFTER, ST_ERR };

/* The data scanner: where CR LF "." CR LF can end the data. */
enum { B_TEXT, B_CR, B_BOL, B_DOT, B_DOT_CR };

void maildrop_rd_init(struct maildrop_rd *r, const struct maildrop_limits *lim)
{
    memset(r, 0, sizeof(*r));
    r->lim = *lim;
    r->stage = ST_MAGIC;
    r->body = B_BOL;
    buf_init(&r->line);
}

void maildrop_rd_free(struct maildrop_rd *r)
{
    buf_free(&r->line);
}

static int fail(struct maildrop_rd *r, const char *why)
{
    r->why = why;
    r->stage = ST_ERR;
    return MD_ERR;
}

static int is_verb(const char *l, size_t len, const char *verb)
{
    size_t n = strlen(verb);

    return len >= n && ascii_ncasecmp(l, verb, n) == 0;
}

/* A complete command line (line end removed): what it is in this stage. */
static int command(struct maildrop_rd *r, const char *l, size_t len)
{
    r->lineno++;
    switch (r->stage) {
    case ST_MAGIC:
        if (len != strlen(MAILDROP_MAGIC) || memcmp(l, MAILDROP_MAGIC, len) != 0)
            return fail(r, "not a maildrop file: the first line is not \"" MAILDROP_MAGIC "\"");
        r->stage = ST_MAIL;
        return MD_MORE;
    case ST_MAIL:
        if (!is_verb(l, len, "MAIL FROM:"))
            return fail(r, "line 2 is not MAIL FROM:");
        r->stage = ST_RCPT;
        return MD_CMD;
    default:
        break;
    }
    if (is_verb(l, len, "RCPT TO:")) {
        if (r->nrcpt >= r->lim.rcpt_max)
            return fail(r, "more recipients than smtpd_recipient_limit");
        r->nrcpt++;
        return MD_CMD;
    }
    if (len == 4 && is_verb(l, len, "DATA")) {
        if (r->nrcpt == 0)
            return fail(r, "DATA before any RCPT TO:");
        r->stage = ST_BODY;
        return MD_CMD;
    }
    return fail(r, "a line before the data is not RCPT TO: or DATA");
}

/* Bytes of a command line; MD_MORE until its LF, then what command says. */
static int line_bytes(struct maildrop_rd *r, const char *p, size_t n, size_t *used,
                      const char **item, size_t *ilen)
{
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) + 1 : n;
    int rc;

    *used = take;
    if (!r->line_over && r->line.len + take <= r->lim.line_max)
        buf_add(&r->line, p, take);
    else
        r->line_over = 1;
    if (nl == NULL)
        return MD_MORE; /* the line goes on in the next piece */
    if (r->line_over)
        return fail(r, "a command line is longer than smtpd_command_line_limit");
    size_t len = r->line.len - 1;
    if (len > 0 && r->line.data[len - 1] == '\r')
        len--;
    rc = command(r, r->line.data, len);
    *item = r->line.data;
    *ilen = len;
    return rc;
}

/* Data bytes not yet known to be the end line: a CR after a leading dot. */
static uint64_t body_size(const struct maildrop_rd *r)
{
    return r->size - (r->body == B_DOT_CR);
}

/* Data bytes up to the end of data; the span is p[0..*used). */
static int body_bytes(struct maildrop_rd *r, const char *p, size_t n, size_t *used)
{
    size_t i = 0;

    while (i < n) {
        if (r->body == B_TEXT) {
            /* inside a line only a CR can change anything */
            const char *cr = memchr(p + i, '\r', n - i);
            size_t j = cr ? (size_t)(cr - p) : n;
            r->size += j - i;
            i = j;
        }
        if (i < n) {
            char c = p[i++];
            r->size++;
            switch (r->body) {
            case B_TEXT:
                r->body = B_CR;
                break;
            case B_CR:
                r->body = c == '\n' ? B_BOL : c == '\r' ? B_CR : B_TEXT;
                break;
            case B_BOL:
                if (c == '.')
                    r->size--; /* the decoder drops a leading dot */
                r->body = c == '.' ? B_DOT : c == '\r' ? B_CR : B_TEXT;
                break;
            case B_DOT:
                r->body = c == '\r' ? B_DOT_CR : B_TEXT;
                break;
            case B_DOT_CR:
                if (c == '\n') {
                    r->size -= 2; /* the end line's CR LF; its dot was never counted */
                    r->stage = ST_END;
                    *used = i;
                    return MD_BODY;
                }
                r->body = c == '\r' ? B_CR : B_TEXT;
                break;
            }
        }
        if (body_size(r) > r->lim.size_max)
            return fail(r, "the message is larger than message_size_limit");
    }
    *used = i;
    return MD_BODY;
}

int maildrop_rd_next(struct maildrop_rd *r, const char *p, size_t n, size_t *used,
                     const char **item, size_t *ilen)
{
    *used = 0;
    *item = NULL;
    *ilen = 0;
    if (r->line.len && r->line.data[r->line.len - 1] == '\n')
        buf_reset(&r->line); /* the line returned last time */
    switch (r->stage) {
    case ST_ERR:
        return MD_ERR;
    case ST_END:
        r->stage = ST_AFTER;
        return MD_END;
    case ST_AFTER:
        return n ? fail(r, "bytes after the end of data") : MD_MORE;
    case ST_BODY:
        if (n == 0)
            return MD_MORE;
        *item = p;
        int rc = body_bytes(r, p, n, used);
        *ilen = *used;
        return rc;
    default:
        break;
    }
    /* Command lines; the magic line is checked here and gives no item. */
    while (n > *used) {
        size_t k;
        int rc = line_bytes(r, p + *used, n - *used, &k, item, ilen);
        *used += k;
        if (rc != MD_MORE)
            return rc;
        if (r->line.len && r->line.data[r->line.len - 1] == '\n')
            buf_reset(&r->line); /* the magic line, checked */
    }
    return MD_MORE;
}

int maildrop_rd_finish(struct maildrop_rd *r)
{
    switch (r->stage) {
    case ST_END:
    case ST_AFTER:
        return 0;
    case ST_ERR:
        return -1;
    case ST_BODY:
        r->why = "the input ends before the end of data (a line with a single dot)";
        break;
    case ST_MAGIC:
        r->why = r->line.len ? "not a maildrop file: the first line is incomplete" : "empty input";
        break;
    default:
        r->why = "the input ends before DATA";
        break;
    }
    r->stage = ST_ERR;
    return -1;
}
