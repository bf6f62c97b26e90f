/*
 * smtpd_data_dec - unit tests of the DATA decoder (smtpd/data_dec.c):
 * dot-unstuffing, the end of data, bare LF / CR (reject and normalize),
 * line and size limits, and feeding in pieces of every size.
 *
 * Differential part: data_dec_feed() must behave exactly like the
 * reference copy of the original byte-at-a-time decoder
 * (t/ref/data_dec_ref.h) - the same bytes consumed, the same output and
 * the same value of every field of struct data_dec after every piece - for
 * every short input over {".", CR, LF, "a"} cut in every two pieces, and
 * for thousands of seeded random messages cut in random pieces.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../smtpd/data_dec.h"
#include "../ref/codec_gen.h"
#include "../ref/data_dec_ref.h"
#include "tap.h"

struct res {
    size_t used;
    int done;
    enum dd_err err;
    struct buf out;
};

/* Feed the input in chunks of `step` bytes (0: all at once). */
static struct res run(const char *in, size_t len, int normalize, size_t step)
{
    struct data_dec d;
    struct res r;
    size_t off = 0;

    buf_init(&r.out);
    data_dec_init(&d, normalize, 1000, 100000);
    while (off < len && !d.done) {
        size_t n = step ? step : len;
        if (n > len - off)
            n = len - off;
        off += data_dec_feed(&d, in + off, n, &r.out);
    }
    r.used = off;
    r.done = d.done;
    r.err = d.err;
    return r;
}

static void check(const char *name, const char *in, int normalize, int done, enum dd_err err,
                  const char *out, size_t used)
{
    size_t len = strlen(in);
    static const size_t steps[] = {0, 1, 2, 3, 7};

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct res r = run(in, len, normalize, steps[i]);
        int good =
            r.done == done && r.err == err && (used == (size_t)-1 || r.used == used) &&
            (out == NULL || (r.out.len == strlen(out) && memcmp(r.out.data, out, r.out.len) == 0));
        ok(good, "%s (chunks of %zu)", name, steps[i]);
        if (!good)
            diag("done=%d err=%d used=%zu out=[%.*s]", r.done, r.err, r.used, (int)r.out.len,
                 r.out.data ? r.out.data : "");
        buf_free(&r.out);
    }
}

/* ---- differential tests against the reference ---- */

struct dstats {
    unsigned runs, done, done_ok, err[DD_ERR_SIZE + 1], fails;
};

static int same_dec(const struct data_dec *a, const struct data_dec *b)
{
    return a->state == b->state && a->normalize == b->normalize && a->line_limit == b->line_limit &&
           a->size_limit == b->size_limit && a->line_len == b->line_len && a->size == b->size &&
           a->lines == b->lines && a->err == b->err && a->done == b->done;
}

static void show_input(const char *in, size_t len)
{
    char esc[400];
    size_t o = 0;

    for (size_t i = 0; i < len && o + 8 < sizeof(esc); i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\r')
            o += (size_t)snprintf(esc + o, sizeof(esc) - o, "\\r");
        else if (c == '\n')
            o += (size_t)snprintf(esc + o, sizeof(esc) - o, "\\n");
        else if (c < 0x20 || c > 0x7e)
            o += (size_t)snprintf(esc + o, sizeof(esc) - o, "\\x%02x", c);
        else
            esc[o++] = (char)c;
    }
    esc[o] = '\0';
    diag("input (%zu bytes): %s%s", len, esc, o + 8 >= sizeof(esc) ? "..." : "");
}

/*
 * Feed in[0..len) to the decoder and to the reference, the same pieces to
 * both (sizes from cut(), or the fixed cuts[] when ncuts > 0), comparing
 * after every piece; then feed the rest once more (after the end both
 * must take nothing). Returns 1 when they agree throughout.
 */
static int diff_dec(const char *in, size_t len, int normalize, size_t line_limit,
                    uint64_t size_limit, struct gen_rng *r, int style, const size_t *cuts,
                    size_t ncuts, struct dstats *st)
{
    struct data_dec a, b;
    struct buf oa, ob;
    size_t off = 0, piece = 0, ua, ub, n, seen = 0;
    int good = 1;

    data_dec_init(&a, normalize, line_limit, size_limit);
    data_dec_init(&b, normalize, line_limit, size_limit);
    buf_init(&oa);
    buf_init(&ob);
    buf_add(&oa, "pre", 3); /* the decoder appends to what is there */
    buf_add(&ob, "pre", 3);
    for (;;) {
        if (ncuts > 0)
            n = piece < ncuts ? cuts[piece] : len - off;
        else
            n = a.done ? len - off : gen_chunk(r, style, len - off);
        ua = data_dec_feed(&a, in + off, n, &oa);
        ub = ref_data_dec_feed(&b, in + off, n, &ob);
        if (ua != ub || !same_dec(&a, &b) || oa.len != ob.len ||
            memcmp(oa.data + seen, ob.data + seen, oa.len - seen) != 0) {
            good = 0;
            break;
        }
        seen = oa.len;
        if (ua > n || (ua < n && !a.done) || (ua == 0 && n > 0)) {
            good = a.done && ua == 0; /* after the end nothing is taken */
            break;
        }
        off += ua;
        piece++;
        if (off >= len && n == 0)
            break;
    }
    st->runs++;
    if (!good) {
        if (st->fails++ < 3) {
            diag("differs: normalize=%d line_limit=%zu size_limit=%llu style=%d piece %zu at "
                 "offset %zu (%zu bytes): used %zu/%zu",
                 normalize, line_limit, (unsigned long long)size_limit, style, piece, off, n, ua,
                 ub);
            diag("new: state=%d line_len=%zu size=%llu lines=%llu err=%d done=%d out=%zu", a.state,
                 a.line_len, (unsigned long long)a.size, (unsigned long long)a.lines, a.err, a.done,
                 oa.len);
            diag("ref: state=%d line_len=%zu size=%llu lines=%llu err=%d done=%d out=%zu", b.state,
                 b.line_len, (unsigned long long)b.size, (unsigned long long)b.lines, b.err, b.done,
                 ob.len);
            show_input(in, len);
        }
    } else {
        st->done += (unsigned)b.done;
        st->done_ok += b.done && b.err == DD_OK;
        st->err[b.err]++;
    }
    buf_free(&oa);
    buf_free(&ob);
    return good;
}

/* Every input of up to 7 bytes over ".", CR, LF, "a", whole, one byte at
 * a time and cut in every two pieces, under a few limits. */
static void test_diff_exhaustive(void)
{
    static const char alpha[] = ".\r\na";
    static const struct {
        size_t line;
        uint64_t size;
    } lim[] = {{SIZE_MAX, UINT64_MAX}, {3, 4}, {0, 0}, {1, 2}, {5, 1}};
    struct dstats st = {0};
    struct gen_rng r;
    char in[8];
    size_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};

    gen_seed(&r, 1);
    for (size_t len = 0; len <= 7; len++) {
        size_t total = gen_words(len);
        for (size_t v = 0; v < total; v++) {
            gen_word(alpha, v, len, in);
            for (size_t l = 0; l < sizeof(lim) / sizeof(lim[0]); l++) {
                for (int norm = 0; norm <= 1; norm++) {
                    diff_dec(in, len, norm, lim[l].line, lim[l].size, &r, GEN_WHOLE, NULL, 0, &st);
                    if (len > 1)
                        diff_dec(in, len, norm, lim[l].line, lim[l].size, &r, GEN_ONE, ones, len,
                                 &st);
                    if (len > 4)
                        continue; /* every split of the short ones is enough */
                    for (size_t cut = 1; cut < len; cut++)
                        diff_dec(in, len, norm, lim[l].line, lim[l].size, &r, GEN_WHOLE, &cut, 1,
                                 &st);
                }
            }
        }
    }
    ok(st.fails == 0, "exhaustive short inputs: %u runs agree with the reference", st.runs);
    ok(st.done > 1000 && st.err[DD_ERR_BARE_LF] > 1000 && st.err[DD_ERR_BARE_CR] > 1000 &&
           st.err[DD_ERR_LINE] > 1000 && st.err[DD_ERR_SIZE] > 1000,
       "exhaustive short inputs reach the end and every error");
}

/* Seeded random messages, random limits, both modes, every chunking style. */
static void test_diff_random(void)
{
    static const size_t line_lims[] = {0,   1,    2,    3,    5,    8,        78,      100,
                                       998, 1000, 1000, 1000, 5000, SIZE_MAX, SIZE_MAX};
    static const uint64_t size_lims[] = {0,      1,      2,          5,         50,
                                         500,    5000,   100000,     100000,    UINT64_MAX,
                                         200000, 300000, UINT64_MAX, UINT64_MAX};
    static const size_t maxes[] = {8, 64, 400, 3000, 3000, 20000};
    struct dstats st = {0};
    struct gen_rng r;
    struct buf in;
    const unsigned n_inputs = 2500;

    for (unsigned seed = 0; seed < n_inputs; seed++) {
        gen_seed(&r, 1000 + seed);
        buf_init(&in);
        gen_input(&r, &in, maxes[gen_below(&r, sizeof(maxes) / sizeof(maxes[0]))]);
        size_t ll = line_lims[gen_below(&r, sizeof(line_lims) / sizeof(line_lims[0]))];
        uint64_t sl = size_lims[gen_below(&r, sizeof(size_lims) / sizeof(size_lims[0]))];
        for (int norm = 0; norm <= 1; norm++)
            for (int style = 0; style < GEN_STYLES; style++)
                if (!diff_dec(in.data, in.len, norm, ll, sl, &r, style, NULL, 0, &st) &&
                    st.fails <= 3)
                    diag("(random input seed %u)", 1000 + seed);
        buf_free(&in);
    }
    ok(st.fails == 0, "random messages: %u runs agree with the reference", st.runs);
    ok(st.done_ok > 300 && st.err[DD_OK] > 1000 && st.err[DD_ERR_BARE_LF] > 100 &&
           st.err[DD_ERR_BARE_CR] > 100 && st.err[DD_ERR_LINE] > 100 && st.err[DD_ERR_SIZE] > 100,
       "random messages reach the end and every error (ok %u, end %u, LF %u, CR %u, line %u, "
       "size %u)",
       st.err[DD_OK], st.done_ok, st.err[DD_ERR_BARE_LF], st.err[DD_ERR_BARE_CR],
       st.err[DD_ERR_LINE], st.err[DD_ERR_SIZE]);
}

/* Typical text (CR LF lines of ~70 bytes, some dot-stuffed), large pieces. */
static void test_diff_text(void)
{
    struct dstats st = {0};
    struct gen_rng r;
    struct buf in;

    for (unsigned seed = 0; seed < 60; seed++) {
        gen_seed(&r, 50000 + seed);
        buf_init(&in);
        size_t lines = 1 + gen_below(&r, 300);
        for (size_t k = 0; k < lines; k++) {
            if (gen_below(&r, 10) == 0)
                buf_add(&in, "..", 2);
            gen_run(&r, &in, 60 + gen_below(&r, 20));
            buf_add(&in, "\r\n", 2);
        }
        buf_add(&in, ".\r\nQUIT\r\n", 9);
        for (int style = 0; style < GEN_STYLES; style++)
            diff_dec(in.data, in.len, 0, 1000, 100000, &r, style, NULL, 0, &st);
        buf_free(&in);
    }
    ok(st.fails == 0 && st.done_ok > 0, "text messages: %u runs agree with the reference", st.runs);
}

/* Raw mode (BDAT): in fed byte by byte and whole, then finished. */
static void raw(const char *name, const char *in, int normalize, size_t line_limit, enum dd_err err,
                const char *want)
{
    struct buf o1, o2;
    struct data_dec a, b;
    size_t len = strlen(in), used = 0;

    buf_init(&o1);
    buf_init(&o2);
    data_dec_init_raw(&a, normalize, line_limit, 1000);
    data_dec_init_raw(&b, normalize, line_limit, 1000);
    for (size_t i = 0; i < len; i++)
        used += data_dec_feed(&a, in + i, 1, &o1);
    data_dec_finish(&a, &o1);
    ok(used == len && data_dec_feed(&b, in, len, &o2) == len, "raw %s: every byte taken", name);
    data_dec_finish(&b, &o2);
    ok(!a.done && !b.done, "raw %s: never an end", name);
    is_int(a.err, err, "raw %s: result", name);
    ok(a.err == b.err && o1.len == o2.len && memcmp(o1.data, o2.data, o1.len) == 0,
       "raw %s: the same whole and byte by byte", name);
    if (want &&
        !ok(o1.len == strlen(want) && memcmp(o1.data, want, o1.len) == 0, "raw %s: output", name))
        diag("got %zu bytes: %.*s", o1.len, (int)o1.len, o1.data);
    buf_free(&o1);
    buf_free(&o2);
}

/* Fold mode: fed whole and byte by byte, the same output and cuts. */
static void fold(const char *name, const char *in, int raw_mode, size_t line_limit,
                 const char *want, uint64_t cuts)
{
    struct buf o1, o2;
    struct data_dec a, b;
    size_t len = strlen(in);

    buf_init(&o1);
    buf_init(&o2);
    if (raw_mode) {
        data_dec_init_raw(&a, 0, line_limit, 100000);
        data_dec_init_raw(&b, 0, line_limit, 100000);
    } else {
        data_dec_init(&a, 0, line_limit, 100000);
        data_dec_init(&b, 0, line_limit, 100000);
    }
    a.fold = b.fold = 1;
    for (size_t i = 0; i < len && !a.done; i++)
        data_dec_feed(&a, in + i, 1, &o1);
    data_dec_feed(&b, in, len, &o2);
    if (raw_mode) {
        data_dec_finish(&a, &o1);
        data_dec_finish(&b, &o2);
    }
    is_int(a.err, DD_OK, "fold %s: no error", name);
    is_int(a.folded, cuts, "fold %s: cuts", name);
    ok(o1.len == o2.len && memcmp(o1.data, o2.data, o1.len) == 0 && a.folded == b.folded,
       "fold %s: the same whole and byte by byte", name);
    if (!ok(o1.len == strlen(want) && memcmp(o1.data, want, o1.len) == 0, "fold %s: output", name))
        diag("got %zu bytes: %.*s", o1.len, (int)o1.len, o1.data);
    buf_free(&o1);
    buf_free(&o2);
}

static void test_fold(void)
{
    fold("a line at the limit", "abcdefgh\r\n.\r\n", 0, 10, "abcdefgh\r\n", 0);
    fold("one over", "abcdefghi\r\n.\r\n", 0, 10, "abcdefgh\r\ni\r\n", 1);
    fold("three lines' worth", "aaaaaaaabbbbbbbbcc\r\n.\r\n", 0, 10,
         "aaaaaaaa\r\nbbbbbbbb\r\ncc\r\n", 2);
    fold("a dot after the cut is text", "aaaaaaaa.x\r\n.\r\n", 0, 10, "aaaaaaaa\r\n.x\r\n", 1);
    fold("a stuffed dot at the line start (it counts)", "..aaaaaaaaa\r\n.\r\n", 0, 10,
         ".aaaaaa\r\naaa\r\n", 1);
    fold("a CR after limit-2 octets", "aaaaaaaa\r\nb\r\n.\r\n", 0, 10, "aaaaaaaa\r\nb\r\n", 0);
    fold("raw", "aaaaaaaaaaaaa", 1, 10, "aaaaaaaa\r\naaaaa\r\n", 1);
    fold("raw, exactly a line", "aaaaaaaa\r\n", 1, 10, "aaaaaaaa\r\n", 0);
}

static void test_raw(void)
{
    raw("dots are text", "..a\r\n.\r\n", 0, 1000, DD_OK, "..a\r\n.\r\n");
    raw("an end sequence is text", "a\r\n.\r\nMAIL FROM:<x@y>\r\n", 0, 1000, DD_OK,
        "a\r\n.\r\nMAIL FROM:<x@y>\r\n");
    raw("unterminated last line", "a\r\nb", 0, 1000, DD_OK, "a\r\nb\r\n");
    raw("empty", "", 0, 1000, DD_OK, "");
    raw("bare LF refused", "a\nb\r\n", 0, 1000, DD_ERR_BARE_LF, NULL);
    raw("bare LF normalized", "a\n.b\r\n", 1, 1000, DD_OK, "a\r\n.b\r\n");
    raw("CR at the very end refused", "a\r", 0, 1000, DD_ERR_BARE_CR, NULL);
    raw("CR at the very end normalized", "a\r", 1, 1000, DD_OK, "a\r\n");
    raw("a line at the limit", "abcdefgh\r\n", 0, 10, DD_OK, "abcdefgh\r\n");
    raw("a line over it", "abcdefghi\r\n", 0, 10, DD_ERR_LINE, NULL);
    raw("an unterminated line over it with its CR LF", "abcdefghi", 0, 10, DD_ERR_LINE, NULL);
}

int main(void)
{
    plan_lazy();
    test_raw();
    test_fold();

    check("simple message", "Subject: x\r\n\r\nbody\r\n.\r\n", 0, 1, DD_OK,
          "Subject: x\r\n\r\nbody\r\n", 23);
    check("empty message", ".\r\n", 0, 1, DD_OK, "", 3);
    check("stops after the end", "a\r\n.\r\nQUIT\r\n", 0, 1, DD_OK, "a\r\n", 6);
    check("dot-stuffed line", "..a\r\n..\r\n.\r\n", 0, 1, DD_OK, ".a\r\n.\r\n", 12);
    check("leading dot dropped", ".x\r\n.\r\n", 0, 1, DD_OK, "x\r\n", 7);
    check("dot inside a line kept", "a.b\r\n.\r\n", 0, 1, DD_OK, "a.b\r\n", 8);
    check("not the end without CRLF", "a\r\n.\r", 0, 0, DD_OK, NULL, 5);
    check("no end yet", "a\r\nb\r\n", 0, 0, DD_OK, "a\r\nb\r\n", 6);
    check("CR CR LF then end", "a\r\r\n.\r\n", 1, 1, DD_OK, "a\r\n\r\n", 7);

    /* smuggling forms: none of them ends the data */
    check("LF.LF is not an end (reject)", "a\n.\nMAIL FROM:<x@y.z>\r\n", 0, 0, DD_ERR_BARE_LF, NULL,
          (size_t)-1);
    check("LF.CRLF is not an end (reject)", "a\n.\r\nb", 0, 0, DD_ERR_BARE_LF, NULL, (size_t)-1);
    check("CRLF.LF is not an end (reject)", "a\r\n.\nb", 0, 0, DD_ERR_BARE_LF, NULL, (size_t)-1);
    check("CR.CR is not an end (reject)", "a\r.\rb", 0, 0, DD_ERR_BARE_CR, NULL, (size_t)-1);
    check("CRLF.CR is not an end (reject)", "a\r\n.\rb", 0, 0, DD_ERR_BARE_CR, NULL, (size_t)-1);
    check("rejected message still finds the real end", "a\nb\r\n.\r\nNOOP\r\n", 0, 1,
          DD_ERR_BARE_LF, "a", 8);
    check("LF.CRLF is not an end (normalize)", "a\n.\r\nb\r\n.\r\n", 1, 1, DD_OK, "a\r\n\r\nb\r\n",
          11);
    check("LF.LF is not an end (normalize)", "a\n.\nb\r\n.\r\n", 1, 1, DD_OK, "a\r\n\r\nb\r\n", 10);
    check("bare CR normalized", "a\rb\r\n.\r\n", 1, 1, DD_OK, "a\r\nb\r\n", 8);
    check("normalized line start unstuffs", "a\n..b\r\n.\r\n", 1, 1, DD_OK, "a\r\n.b\r\n", 10);
    check("CRLF.CR normalized", "a\r\n.\rb\r\n.\r\n", 1, 1, DD_OK, "a\r\n\r\nb\r\n", 11);

    /* line limit 1000 including CR LF */
    {
        char line[1200];
        memset(line, 'x', 998);
        strcpy(line + 998, "\r\n.\r\n");
        check("998 + CRLF fits", line, 0, 1, DD_OK, NULL, 1003);
        memset(line, 'x', 999);
        strcpy(line + 999, "\r\n.\r\n");
        check("999 + CRLF is too long", line, 0, 1, DD_ERR_LINE, NULL, 1004);
    }
    /* size limit: 100000 */
    {
        static char big[110000];
        size_t o = 0;
        while (o < 101000) {
            memcpy(big + o, "0123456789012345678\r\n", 21);
            o += 21;
        }
        strcpy(big + o, ".\r\n");
        struct res r = run(big, strlen(big), 0, 4096);
        ok(r.done && r.err == DD_ERR_SIZE, "over the size limit");
        ok(r.out.len <= 100000, "output stops at the limit");
        buf_free(&r.out);
    }
    is_str(data_dec_errstr(DD_ERR_BARE_LF), "bare <LF> received", "error text");

    test_diff_exhaustive();
    test_diff_random();
    test_diff_text();
    return done_testing();
}
