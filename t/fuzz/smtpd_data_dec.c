/*
 * Fuzz target for smtpd's DATA decoder (smtpd/data_dec.c).
 *
 * 1. Round trip: any message encoded for DATA by the client's encoder
 *    (common/mail/smtp_reply.c: CR LF line ends, dots doubled, ".\r\n" end)
 *    must decode to exactly the encoder's normalized message, end exactly
 *    at the end, with no error.
 * 2. Raw input in both bare-newline modes, fed in two pieces: DATA may
 *    only end right after the bytes CR LF "." CR LF (or ".\r\n" at the
 *    very start); normalize mode's output has only CR LF line ends.
 * 3. Differential: the decoder against the reference copy of the original
 *    byte-at-a-time decoder (t/ref/data_dec_ref.h), limits and mode taken
 *    from the first bytes, the rest fed whole, one byte at a time and in
 *    pseudo-random pieces: the bytes consumed, the output and every field
 *    of struct data_dec must be the same after every piece.
 * 5. Fold mode (raw and DATA): never a line error; no output line longer
 *    than the limit; the same whole and in two pieces; in raw reject
 *    mode the output without CR LF is the input without CR LF.
 * 4. Raw mode (BDAT chunks): every byte is taken, nothing ends it, the
 *    result is the same whole and in two pieces; without an error the
 *    output is the input itself (reject mode) plus CR LF when the last
 *    line had none, and has only CR LF line ends (both modes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../smtpd/data_dec.h"
#include "../../smtpd/hops.h"
#include "../ref/codec_gen.h"
#include "../ref/data_dec_ref.h"
#include "mail/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const char *in, size_t n)
{
    struct smtp_dotstuff ds;
    struct buf enc, dec, want;
    struct data_dec d;
    size_t used;

    buf_init(&enc);
    buf_init(&dec);
    buf_init(&want);
    smtp_dotstuff_init(&ds);
    smtp_dotstuff_add(&ds, in, n, &enc);
    smtp_dotstuff_end(&ds, &enc);
    /* The expected message: the encoded stream without the end line, unstuffed. */
    for (size_t i = 0, bol = 1; i + 3 < enc.len; i++) {
        if (bol && enc.data[i] == '.')
            i++;
        buf_addc(&want, enc.data[i]);
        bol = enc.data[i] == '\n';
    }
    data_dec_init(&d, 0, SIZE_MAX, UINT64_MAX);
    used = data_dec_feed(&d, enc.data, enc.len, &dec);
    if (!d.done || used != enc.len || d.err != DD_OK)
        abort();
    if (dec.len != want.len || memcmp(dec.data, want.data, dec.len) != 0)
        abort();
    buf_free(&enc);
    buf_free(&dec);
    buf_free(&want);
}

static void raw(const char *in, size_t n, int normalize, size_t split)
{
    struct data_dec d;
    struct buf out;
    size_t used;

    buf_init(&out);
    data_dec_init(&d, normalize, 100, 1000);
    used = data_dec_feed(&d, in, split, &out);
    if (!d.done && used != split)
        abort();
    if (!d.done)
        used += data_dec_feed(&d, in + split, n - split, &out);
    if (!d.done && used != n)
        abort();
    if (d.done) {
        int at_start = used == 3 && memcmp(in, ".\r\n", 3) == 0;
        if (!at_start && (used < 5 || memcmp(in + used - 5, "\r\n.\r\n", 5) != 0))
            abort();
    }
    if (d.err == DD_OK) {
        if (out.len > 1000)
            abort();
        for (size_t i = 0; i < out.len; i++) {
            if (out.data[i] == '\r' && (i + 1 >= out.len || out.data[i + 1] != '\n'))
                abort();
            if (out.data[i] == '\n' && (i == 0 || out.data[i - 1] != '\r'))
                abort();
        }
    }
    /* the hop counter over the decoded output: the same count whole and
     * byte by byte, and never more than the lines */
    {
        struct hops h1, h2;
        size_t lines = 1;
        hops_init(&h1);
        hops_init(&h2);
        hops_feed(&h1, out.data, out.len);
        for (size_t i = 0; i < out.len; i++) {
            hops_feed(&h2, out.data + i, 1);
            lines += out.data[i] == '\n';
        }
        if (h1.count != h2.count || h1.count > lines)
            abort();
    }
    buf_free(&out);
}

static int same_dec(const struct data_dec *a, const struct data_dec *b)
{
    return a->state == b->state && a->normalize == b->normalize && a->line_limit == b->line_limit &&
           a->size_limit == b->size_limit && a->line_len == b->line_len && a->size == b->size &&
           a->lines == b->lines && a->err == b->err && a->done == b->done;
}

/* style: 0 whole, 1 one byte, 2 small pieces, 3 larger pieces (some empty). */
static void diff_one(const char *in, size_t n, int normalize, size_t line_limit,
                     uint64_t size_limit, int style, uint64_t seed)
{
    struct data_dec a, b;
    struct buf oa, ob;
    struct gen_rng r;
    size_t off = 0, seen = 0, piece, ua, ub;

    gen_seed(&r, seed);
    data_dec_init(&a, normalize, line_limit, size_limit);
    data_dec_init(&b, normalize, line_limit, size_limit);
    buf_init(&oa);
    buf_init(&ob);
    for (;;) {
        if (a.done || style == 0)
            piece = n - off;
        else if (style == 1)
            piece = n - off < 1 ? n - off : 1;
        else
            piece = gen_below(&r, style == 2 ? 9 : 300);
        if (piece > n - off)
            piece = n - off;
        ua = data_dec_feed(&a, in + off, piece, &oa);
        ub = ref_data_dec_feed(&b, in + off, piece, &ob);
        if (ua != ub || !same_dec(&a, &b) || oa.len != ob.len ||
            memcmp(oa.data + seen, ob.data + seen, oa.len - seen) != 0)
            abort();
        seen = oa.len;
        off += ua;
        if (off >= n || (a.done && ua == 0))
            break;
    }
    buf_free(&oa);
    buf_free(&ob);
}

static void differential(const uint8_t *data, size_t size)
{
    static const size_t line_lims[] = {0, 1, 2, 5, 10, 78, 1000, SIZE_MAX};
    static const uint64_t size_lims[] = {0, 1, 3, 10, 100, 1000, 100000, UINT64_MAX};
    int normalize;
    size_t ll;
    uint64_t sl, seed;

    if (size < 3)
        return;
    normalize = data[0] & 1;
    ll = line_lims[(data[0] >> 1) & 7];
    sl = size_lims[(data[0] >> 4) & 7];
    seed = (uint64_t)data[1] << 8 | data[2];
    for (int style = 0; style < 4; style++)
        diff_one((const char *)data + 3, size - 3, normalize, ll, sl, style, seed);
}

static void raw_mode(const char *in, size_t n, int normalize, size_t split)
{
    struct data_dec a, b;
    struct buf oa, ob;

    buf_init(&oa);
    buf_init(&ob);
    data_dec_init_raw(&a, normalize, 200, 5000);
    data_dec_init_raw(&b, normalize, 200, 5000);
    if (data_dec_feed(&a, in, n, &oa) != n)
        abort();
    if (data_dec_feed(&b, in, split, &ob) != split ||
        data_dec_feed(&b, in + split, n - split, &ob) != n - split)
        abort();
    data_dec_finish(&a, &oa);
    data_dec_finish(&b, &ob);
    if (a.done || b.done || a.err != b.err)
        abort();
    /* (after an error the output is cut wherever the error was seen) */
    if (a.err == DD_OK && (oa.len != ob.len || memcmp(oa.data, ob.data, oa.len) != 0))
        abort();
    if (a.err == DD_OK) {
        for (size_t i = 0; i < oa.len; i++) {
            if (oa.data[i] == '\r' && (i + 1 >= oa.len || oa.data[i + 1] != '\n'))
                abort();
            if (oa.data[i] == '\n' && (i == 0 || oa.data[i - 1] != '\r'))
                abort();
        }
        if (oa.len > 0 && oa.data[oa.len - 1] != '\n')
            abort();
        if (!normalize) {
            int added = n > 0 && in[n - 1] != '\n';
            if (oa.len != n + (added ? 2 : 0) || memcmp(oa.data, in, n) != 0)
                abort();
        }
    }
    buf_free(&oa);
    buf_free(&ob);
}

static void fold_mode(const char *in, size_t n, int raw_mode, size_t split)
{
    struct data_dec a, b;
    struct buf oa, ob;
    size_t limit = 3 + (n ? (unsigned char)in[0] % 40 : 0), line = 0;

    buf_init(&oa);
    buf_init(&ob);
    if (raw_mode) {
        data_dec_init_raw(&a, 0, limit, 100000);
        data_dec_init_raw(&b, 0, limit, 100000);
    } else {
        data_dec_init(&a, 0, limit, 100000);
        data_dec_init(&b, 0, limit, 100000);
    }
    a.fold = b.fold = 1;
    size_t ua = data_dec_feed(&a, in, n, &oa);
    size_t ub = data_dec_feed(&b, in, split, &ob);
    if (!b.done)
        ub += data_dec_feed(&b, in + split, n - split, &ob);
    if (raw_mode) {
        data_dec_finish(&a, &oa);
        data_dec_finish(&b, &ob);
    }
    if (a.err == DD_ERR_LINE || a.err != b.err || ua != ub || a.done != b.done)
        abort();
    if (a.err == DD_OK) {
        if (oa.len != ob.len || memcmp(oa.data, ob.data, oa.len) != 0 || a.folded != b.folded)
            abort();
        for (size_t i = 0; i < oa.len; i++) {
            line++;
            if (oa.data[i] == '\n')
                line = 0;
            else if (line > limit)
                abort();
        }
        if (raw_mode) {
            size_t i = 0, j = 0;
            for (;;) {
                while (i < n && (in[i] == '\r' || in[i] == '\n'))
                    i++;
                while (j < oa.len && (oa.data[j] == '\r' || oa.data[j] == '\n'))
                    j++;
                if (i >= n || j >= oa.len)
                    break;
                if (in[i++] != oa.data[j++])
                    abort();
            }
            if (i < n || j < oa.len)
                abort();
        }
    }
    buf_free(&oa);
    buf_free(&ob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t split = size ? data[0] % (size + 1) : 0;

    round_trip(in, size);
    raw(in, size, 0, split);
    raw(in, size, 1, split);
    raw_mode(in, size, 0, split);
    raw_mode(in, size, 1, split);
    fold_mode(in, size, 1, split);
    fold_mode(in, size, 0, split);
    differential(data, size);
    return 0;
}
