/*
 * data_dec - DATA decoding state machine (see data_dec.h).
 *
 * Speed: the state machine below moves one step per byte only at line
 * boundaries. Inside lines, the next CR or LF is found with memchr (see
 * struct eol), and fast_lines() takes whole ordinary lines - text ending
 * in CR LF, a dropped leading dot allowed, well inside both limits - at a
 * time, copying every run of them to the output with one buf_add. It
 * hands back to the state machine at anything else (a dot line, a bare CR
 * or LF, a limit about to be crossed, an error, the end of the piece),
 * leaving every field exactly as the byte-at-a-time machine would have
 * left it at that point, so the results are the same for every input and
 * every way of cutting it: t/ref/data_dec_ref.h holds the original as the
 * reference, and the unit test and the fuzzer compare the two.
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

void data_dec_init_raw(struct data_dec *d, int normalize, size_t line_limit, uint64_t size_limit)
{
    data_dec_init(d, normalize, line_limit, size_limit);
    d->raw = 1;
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

/*
 * Where the next CR and the next LF are in in[0..len): each is searched for
 * with memchr only once it has been passed, so a piece is scanned at most
 * once per byte value however its lines are cut (a piece with CR but no LF,
 * or the reverse, costs no more than one with both).
 */
struct eol {
    const char *in;
    size_t len, cr, lf;
};

static size_t find(const char *in, size_t len, size_t from, char c)
{
    const char *p = memchr(in + from, c, len - from);

    return p ? (size_t)(p - in) : len;
}

static void eol_init(struct eol *e, const char *in, size_t len)
{
    e->in = in;
    e->len = len;
    e->cr = find(in, len, 0, '\r');
    e->lf = find(in, len, 0, '\n');
}

/* The first CR or LF at or after i (len if none). */
static size_t eol_next(struct eol *e, size_t i)
{
    if (e->cr < i)
        e->cr = find(e->in, e->len, i, '\r');
    if (e->lf < i)
        e->lf = find(e->in, e->len, i, '\n');
    return e->cr < e->lf ? e->cr : e->lf;
}

/*
 * Ordinary lines from in[i], in state S_BOL or S_TEXT with no error: each
 * text run is taken with its CR LF when the whole of it fits the line and
 * size limits, so that none of the byte-at-a-time checks could have
 * fired; a leading dot followed by text is dropped as S_BOL/S_DOT would.
 * Returns where the state machine must go on, with d updated as it would
 * have been there; the bytes taken are appended to out, in runs.
 */
static size_t fast_lines(struct data_dec *d, struct eol *e, const char *in, size_t len, size_t i,
                         struct buf *out)
{
    size_t from = i;                                /* in[from..i) is output not yet copied */
    size_t line_room = d->line_limit - d->line_len; /* no error: line_len <= line_limit */
    uint64_t size_room = d->size_limit - d->size;   /* and size <= size_limit */
    uint64_t lines = 0;

    while (i < len) {
        if (d->state == S_BOL && in[i] == '.' && !d->raw) {
            /* S_BOL: count(1) -> S_DOT; S_DOT: text -> S_TEXT, dot dropped */
            if (i + 1 >= len || in[i + 1] == '\r' || in[i + 1] == '\n' || line_room < 1)
                break;
            buf_add(out, in + from, i - from);
            from = ++i;
            line_room--;
            d->state = S_TEXT;
        }
        size_t j = eol_next(e, i), run = j - i;
        if (j + 1 < len && in[j] == '\r' && in[j + 1] == '\n') {
            if (run + 2 > line_room || run + 2 > size_room)
                break;
            /* the text, CR, LF: count, emit, count, count, emit, line_end */
            size_room -= run + 2;
            lines++;
            line_room = d->line_limit;
            d->state = S_BOL;
            i = j + 2;
            continue;
        }
        /* The line does not end with CR LF in this piece: take its text
         * (S_TEXT's count and emit) and let the state machine go on. In
         * fold mode only what leaves room for the CR LF. */
        if (run > 0 && run + (d->fold ? 2 : 0) <= line_room && run <= size_room) {
            size_room -= run;
            line_room -= run;
            d->state = S_TEXT;
            i = j;
        }
        break;
    }
    if (i > from)
        buf_add(out, in + from, i - from);
    d->size = d->size_limit - size_room;
    d->line_len = d->line_limit - line_room;
    d->lines += lines;
    return i;
}

size_t data_dec_feed(struct data_dec *d, const char *in, size_t len, struct buf *out)
{
    struct eol e;
    size_t i = 0;

    eol_init(&e, in, len);
    while (i < len && !d->done) {
        if (d->err == DD_OK && (d->state == S_BOL || d->state == S_TEXT)) {
            i = fast_lines(d, &e, in, len, i, out);
            if (i >= len)
                break;
        }

        char c = in[i];

        switch (d->state) {
        case S_BOL:
            if (c == '.' && !d->raw) {
                count(d, 1);
                d->state = S_DOT;
                i++;
            } else {
                d->state = S_TEXT;
            }
            break;
        case S_SBOL:
            if (c == '.' && !d->raw) {
                count(d, 1);
                i++;
            }
            d->state = S_TEXT;
            break;
        case S_TEXT: {
            size_t j = eol_next(&e, i);
            if (j > i && d->fold && d->err == DD_OK && d->line_len + (j - i) + 2 > d->line_limit) {
                /* cut: the text that fits, CR LF, and the rest a new line */
                size_t k = d->line_len + 2 < d->line_limit ? d->line_limit - 2 - d->line_len : 0;
                if (k == 0 && d->line_len == 0)
                    k = 1; /* a limit under 3: still one byte a line */
                count(d, k);
                emit(d, out, in + i, k);
                i += k;
                emit(d, out, "\r\n", 2);
                d->line_len = 0;
                d->lines++;
                d->folded++;
                break;
            }
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

void data_dec_finish(struct data_dec *d, struct buf *out)
{
    if (d->state == S_CR) {
        bare(d, out, DD_ERR_BARE_CR);
    } else if (d->state == S_TEXT && d->line_len > 0 && d->err == DD_OK) {
        /* an unterminated last line: the message ends with CR LF */
        count(d, 2);
        emit(d, out, "\r\n", 2);
        line_end(d, S_BOL);
    }
}
