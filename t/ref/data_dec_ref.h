/*
 * data_dec_ref - THE REFERENCE: a frozen copy of smtpd/data_dec.c's
 * data_dec_feed() as it was before the memchr fast path (byte-at-a-time
 * state machine), symbols renamed ref_*. It is not used by Postern: the
 * unit test (t/unit/smtpd_data_dec.c), the fuzzer (t/fuzz/smtpd_data_dec.c)
 * and bench/codec compare the real decoder against it, byte for byte and
 * field for field, on every input and every chunking.
 *
 * Do not "fix" or speed up this copy: its behaviour is the contract.
 * It shares struct data_dec and data_dec_init() with the real decoder;
 * its state numbers are the same as smtpd/data_dec.c's, so even the
 * private `state` field can be compared.
 */
#ifndef POSTERN_DATA_DEC_REF_H
#define POSTERN_DATA_DEC_REF_H

#include <string.h>

#include "../../smtpd/data_dec.h"

enum {
    REF_S_BOL,    /* line start after a real CR LF: "." CR LF here ends DATA */
    REF_S_SBOL,   /* line start after a normalized bare LF/CR: never an end */
    REF_S_TEXT,   /* inside a line */
    REF_S_CR,     /* inside a line, a CR is pending */
    REF_S_DOT,    /* S_BOL then "." (the dot is dropped) */
    REF_S_DOT_CR, /* S_BOL then "." CR */
};

static void ref_set_err(struct data_dec *d, enum dd_err e)
{
    if (d->err == DD_OK)
        d->err = e;
}

static void ref_emit(struct data_dec *d, struct buf *out, const char *p, size_t n)
{
    d->size += n;
    if (d->err != DD_OK)
        return;
    if (d->size > d->size_limit) {
        ref_set_err(d, DD_ERR_SIZE);
        return;
    }
    buf_add(out, p, n);
}

static void ref_count(struct data_dec *d, size_t n)
{
    d->line_len += n;
    if (d->line_len > d->line_limit)
        ref_set_err(d, DD_ERR_LINE);
}

static void ref_line_end(struct data_dec *d, int state)
{
    d->line_len = 0;
    d->lines++;
    d->state = state;
}

/* A bare LF or CR: a soft line break when normalizing, else an error. */
static void ref_bare(struct data_dec *d, struct buf *out, enum dd_err e)
{
    if (d->normalize && d->err == DD_OK) {
        ref_emit(d, out, "\r\n", 2);
        ref_line_end(d, REF_S_SBOL);
        return;
    }
    ref_set_err(d, e);
    d->state = REF_S_TEXT;
}

__attribute__((unused)) static size_t ref_data_dec_feed(struct data_dec *d, const char *in,
                                                        size_t len, struct buf *out)
{
    size_t i = 0;

    while (i < len && !d->done) {
        char c = in[i];

        switch (d->state) {
        case REF_S_BOL:
            if (c == '.') {
                ref_count(d, 1);
                d->state = REF_S_DOT;
                i++;
            } else {
                d->state = REF_S_TEXT;
            }
            break;
        case REF_S_SBOL:
            if (c == '.') {
                ref_count(d, 1);
                i++;
            }
            d->state = REF_S_TEXT;
            break;
        case REF_S_TEXT: {
            size_t j = i;
            while (j < len && in[j] != '\r' && in[j] != '\n')
                j++;
            if (j > i) {
                ref_count(d, j - i);
                ref_emit(d, out, in + i, j - i);
                i = j;
                break;
            }
            ref_count(d, 1);
            i++;
            if (c == '\r')
                d->state = REF_S_CR;
            else
                ref_bare(d, out, DD_ERR_BARE_LF);
            break;
        }
        case REF_S_CR:
            if (c == '\n') {
                ref_count(d, 1);
                ref_emit(d, out, "\r\n", 2);
                ref_line_end(d, REF_S_BOL);
                i++;
            } else {
                ref_bare(d, out, DD_ERR_BARE_CR); /* c is looked at again */
            }
            break;
        case REF_S_DOT:
            if (c == '\r') {
                ref_count(d, 1);
                d->state = REF_S_DOT_CR;
                i++;
            } else if (c == '\n') {
                ref_count(d, 1);
                i++;
                ref_bare(d, out, DD_ERR_BARE_LF);
            } else {
                d->state = REF_S_TEXT;
            }
            break;
        case REF_S_DOT_CR:
            if (c == '\n') {
                i++;
                d->done = 1;
                d->line_len = 0;
            } else {
                ref_bare(d, out, DD_ERR_BARE_CR);
            }
            break;
        }
    }
    return i;
}

#endif
