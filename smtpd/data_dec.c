/*
 * data_dec - DATA decoding state machine (see data_dec.h).
 */
#include "data_dec.h"

#include <string.h>

enum {
    S_BOL,    /* line start after a real CR LF: "." CR LF here ends DATA */
    S_SBOL,   /* line start after a normalized bare LF/CR: never an end */
    S_TEXT,   /* inside a line */
    S_CR,     /* inside a line, a CR is pending */
    S_DOT,    /* S_BOL then "." (the dot is dropped) */
    S_DOT_CR, /* S_BOL then "." CR */
};

void data_dec_init(struct data_dec *d, int normalize, size_t line_limit, uint64_t size_limit)
{
    memset(d, 0, sizeof(*d));
    d->state = S_BOL;
    d->normalize = normalize;
    d->line_limit = line_limit;
    d->size_limit = size_limit;
}

const char *data_dec_errstr(enum dd_err e)
{
    switch (e) {
    case DD_OK:
        return "ok";
    case DD_ERR_BARE_LF:
        return "bare <LF> received";
    case DD_ERR_BARE_CR:
        return "bare <CR> received";
    case DD_ERR_LINE:
        return "line too long";
    case DD_ERR_SIZE:
        return "message too big";
    }
    return "unknown";
}

static void set_err(struct data_dec *d, enum dd_err e)
{
    if (d->err == DD_OK)
        d->err = e;
}

static void emit(struct data_dec *d, struct buf *out, const char *p, size_t n)
{
    d->size += n;
    if (d->err != DD_OK)
        return;
    if (d->size > d->size_limit) {
        set_err(d, DD_ERR_SIZE);
        return;
    }
    buf_add(out, p, n);
}

static void count(struct data_dec *d, size_t n)
{
    d->line_len += n;
    if (d->line_len > d->line_limit)
        set_err(d, DD_ERR_LINE);
}

static void line_end(struct data_dec *d, int state)
{
    d->line_len = 0;
    d->lines++;
    d->state = state;
}

/* A bare LF or CR: a soft line break when normalizing, else an error. */
static void bare(struct data_dec *d, struct buf *out, enum dd_err e)
{
    if (d->normalize && d->err == DD_OK) {
        emit(d, out, "\r\n", 2);
        line_end(d, S_SBOL);
        return;
    }
    set_err(d, e);
    d->state = S_TEXT;
}

size_t data_dec_feed(struct data_dec *d, const char *in, size_t len, struct buf *out)
{
    size_t i = 0;

    while (i < len && !d->done) {
        char c = in[i];

        switch (d->state) {
        case S_BOL:
            if (c == '.') {
                count(d, 1);
                d->state = S_DOT;
                i++;
            } else {
                d->state = S_TEXT;
            }
            break;
        case S_SBOL:
            if (c == '.') {
                count(d, 1);
                i++;
            }
            d->state = S_TEXT;
            break;
        case S_TEXT: {
            size_t j = i;
            while (j < len && in[j] != '\r' && in[j] != '\n')
                j++;
            if (j > i) {
                count(d, j - i);
                emit(d, out, in + i, j - i);
                i = j;
                break;
            }
            count(d, 1);
            i++;
            if (c == '\r')
                d->state = S_CR;
            else
                bare(d, out, DD_ERR_BARE_LF);
            break;
        }
        case S_CR:
            if (c == '\n') {
                count(d, 1);
                emit(d, out, "\r\n", 2);
                line_end(d, S_BOL);
                i++;
            } else {
                bare(d, out, DD_ERR_BARE_CR); /* c is looked at again */
            }
            break;
        case S_DOT:
            if (c == '\r') {
                count(d, 1);
                d->state = S_DOT_CR;
                i++;
            } else if (c == '\n') {
                count(d, 1);
                i++;
                bare(d, out, DD_ERR_BARE_LF);
            } else {
                d->state = S_TEXT;
            }
            break;
        case S_DOT_CR:
            if (c == '\n') {
                i++;
                d->done = 1;
                d->line_len = 0;
            } else {
                bare(d, out, DD_ERR_BARE_CR);
            }
            break;
        }
    }
    return i;
}
