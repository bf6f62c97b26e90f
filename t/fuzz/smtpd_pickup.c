/*
 * Fuzz target for smtpd's maildrop pickup parser: a maildrop file
 * (mail/maildrop.h) through the session (pickup_tx in smtpd/pickup.c).
 *
 * 1. Any input, fed whole and in pieces cut from its first bytes: the same
 *    outcome and reply code, and for an accepted message the same decoded
 *    body; MORE always takes all it is
 *    given; an accepted message's body is within the size limit and has
 *    only CR LF line ends.
 * 2. Differential: the maildrop reader must end the data exactly where
 *    smtpd's DATA decoder ends it, in both bare-newline modes, for any
 *    bytes after the DATA line (it is what lets postdrop check a file's
 *    framing without the decoder).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../smtpd/data_dec.h"
#include "../../smtpd/pickup.h"
#include "mail/maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sess_conf conf = {
    .hostname = "mx.test",
    .size_limit = 4096,
    .rcpt_limit = 5,
    .error_limit = 3,
    .line_limit = 200,
    .max_hops = 4,
};

struct result {
    int rc, code;
    struct buf body;
};

static void run(const char *in, size_t n, size_t piece, int normalize, struct result *r)
{
    struct pickup_tx t;
    size_t off = 0;
    int rc = PT_MORE;

    conf.normalize = normalize;
    buf_init(&r->body);
    pickup_tx_init(&t, &conf, 128, 1000, 1);
    while (off < n && (rc == PT_MORE || rc == PT_DATA)) {
        size_t len = piece && n - off > piece ? piece : n - off, k = 0, used;
        do {
            rc = pickup_tx_feed(&t, in + off + k, len - k, &used, &r->body);
            if (used > len - k)
                abort();
            k += used;
        } while (rc == PT_DATA);
        if (rc == PT_MORE && k != len)
            abort();
        off += k;
    }
    if (rc == PT_MORE)
        rc = pickup_tx_finish(&t);
    if (pickup_tx_finish(&t) != rc)
        abort(); /* the outcome stays */
    r->rc = rc;
    r->code = rc == PT_REFUSED ? t.code : 0;
    if (rc == PT_REFUSED && (t.code < 400 || t.code > 599))
        abort();
    pickup_tx_free(&t);
}

static void outcomes(const char *in, size_t n, int normalize, size_t piece)
{
    struct result a, b;

    run(in, n, 0, normalize, &a);
    run(in, n, piece, normalize, &b);
    if (a.rc != b.rc || a.code != b.code)
        abort();
    /* (a refused message's partial body depends on where it was cut: unused) */
    if (a.rc == PT_END && (a.body.len != b.body.len ||
                           (a.body.len && memcmp(a.body.data, b.body.data, a.body.len) != 0)))
        abort();
    if (a.rc == PT_END) {
        if (a.body.len > conf.size_limit)
            abort();
        for (size_t i = 0; i < a.body.len; i++) {
            if (a.body.data[i] == '\r' && (i + 1 >= a.body.len || a.body.data[i + 1] != '\n'))
                abort();
            if (a.body.data[i] == '\n' && (i == 0 || a.body.data[i - 1] != '\r'))
                abort();
        }
    }
    buf_free(&a.body);
    buf_free(&b.body);
}

/* Where the reader says the data after a DATA line ends (n if never). */
static size_t reader_end(const char *d, size_t n)
{
    static const char head[] = "POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\r\nDATA\r\n";
    const struct maildrop_limits lim = {1000, 10, UINT64_MAX / 2};
    struct maildrop_rd r;
    size_t off = 0, used, ilen, body = 0;
    const char *item;
    int t;

    maildrop_rd_init(&r, &lim);
    while ((t = maildrop_rd_next(&r, head + off, sizeof(head) - 1 - off, &used, &item, &ilen)) !=
           MD_MORE)
        off += used;
    off = 0;
    for (;;) {
        t = maildrop_rd_next(&r, d + off, n - off, &used, &item, &ilen);
        off += used;
        if (t == MD_BODY)
            body += ilen;
        if (t == MD_END || t == MD_MORE || t == MD_ERR)
            break;
    }
    maildrop_rd_free(&r);
    if (t == MD_ERR)
        abort(); /* no limit can be reached here */
    return t == MD_END ? body : n;
}

static void differential(const char *d, size_t n)
{
    size_t want = reader_end(d, n);

    for (int normalize = 0; normalize < 2; normalize++) {
        struct data_dec dec;
        struct buf out;
        buf_init(&out);
        data_dec_init(&dec, normalize, SIZE_MAX, UINT64_MAX);
        size_t used = data_dec_feed(&dec, d, n, &out);
        if ((dec.done ? used : n) != want)
            abort();
        buf_free(&out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t piece = size ? 1 + data[0] % 17 : 1;

    outcomes(in, size, 0, piece);
    outcomes(in, size, 1, piece);
    differential(in, size);
    return 0;
}
