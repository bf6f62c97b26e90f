/*
 * smtpd_data_dec - unit tests of the DATA decoder (smtpd/data_dec.c):
 * dot-unstuffing, the end of data, bare LF / CR (reject and normalize),
 * line and size limits, and feeding in pieces of every size.
 */
#include <string.h>

#include "../../smtpd/data_dec.h"
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

int main(void)
{
    plan_lazy();

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
    return done_testing();
}
