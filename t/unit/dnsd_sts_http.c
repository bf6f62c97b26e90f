/*
 * dnsd_sts_http - the policy server's HTTP response parser
 * (dnsd/sts_http.c): the bodies it accepts (Content-Length, chunked,
 * close-delimited; fed whole and a byte at a time) and what it refuses
 * (status, redirects, Content-Type, sizes, malformed framing).
 */
#include "../../dnsd/sts_http.h"
#include "mail/mta_sts.h"
#include "tap.h"

#include <string.h>

static struct stshttp h;

/* Feed text whole (step 0) or in pieces of step bytes, then EOF if asked. */
static enum stshttp_state run(const char *text, size_t len, size_t step, int eof)
{
    enum stshttp_state st = STSHTTP_MORE;

    stshttp_free(&h);
    stshttp_init(&h);
    for (size_t off = 0; off < len && st == STSHTTP_MORE;) {
        size_t n = step && len - off > step ? step : len - off;
        st = stshttp_feed(&h, text + off, n);
        off += n;
    }
    if (eof && st == STSHTTP_MORE)
        st = stshttp_eof(&h);
    return st;
}

static enum stshttp_state runs(const char *text, int eof)
{
    return run(text, strlen(text), 0, eof);
}

static int body_is(const char *want)
{
    return h.body.len == strlen(want) && memcmp(h.body.data, want, h.body.len) == 0;
}

int main(void)
{
    static const char ok_cl[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                "Content-Length: 5\r\n\r\nhelloEXTRA";
    static const char ok_ch[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    static char big[STS_POLICY_MAX + 200];

    plan_lazy();
    stshttp_init(&h);
    is_int(run(ok_cl, sizeof(ok_cl) - 1, 0, 0), STSHTTP_DONE, "Content-Length body");
    ok(body_is("hello"), "the body, bytes after it ignored");
    is_int(run(ok_cl, sizeof(ok_cl) - 1, 1, 0), STSHTTP_DONE, "the same a byte at a time");
    ok(body_is("hello"), "the same body");
    is_int(run(ok_ch, sizeof(ok_ch) - 1, 0, 0), STSHTTP_DONE, "chunked body");
    ok(body_is("abcde"), "chunks joined");
    is_int(run(ok_ch, sizeof(ok_ch) - 1, 1, 0), STSHTTP_DONE, "chunked a byte at a time");
    ok(body_is("abcde"), "the same body");
    is_int(runs("HTTP/1.0 200 OK\nContent-Type: TEXT/PLAIN\n\nabc", 0), STSHTTP_MORE,
           "close-delimited: more until the close");
    is_int(stshttp_eof(&h), STSHTTP_DONE, "done at the close (LF lines, HTTP/1.0)");
    ok(body_is("abc"), "the body");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nabc", 1),
           STSHTTP_ERROR, "closed before Content-Length bytes");
    is_int(runs("HTTP/1.1 301 Moved\r\nLocation: https://evil/\r\nContent-Type: text/plain\r\n\r\n",
                0),
           STSHTTP_ERROR, "a redirect");
    ok(strstr(h.why, "redirect to \"https://evil/\" not followed") != NULL, "why: %s", h.why);
    is_int(runs("HTTP/1.1 404 No\r\nContent-Type: text/plain\r\n\r\n", 0), STSHTTP_ERROR, "404");
    ok(strstr(h.why, "404") != NULL, "why: %s", h.why);
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1\r\n\r\nx", 0),
           STSHTTP_ERROR, "text/html");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plainx\r\nContent-Length: 1\r\n\r\nx", 0),
           STSHTTP_ERROR, "text/plainx");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 0), STSHTTP_ERROR,
           "no Content-Type");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 70000\r\n\r\n", 0),
           STSHTTP_ERROR, "Content-Length over the limit");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n"
                "Content-Length: 2\r\n\r\nxx",
                0),
           STSHTTP_ERROR, "two different Content-Lengths");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                "Transfer-Encoding: chunked\r\n\r\n",
                0),
           STSHTTP_ERROR, "Content-Length and Transfer-Encoding");
    is_int(
        runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip\r\n\r\n", 0),
        STSHTTP_ERROR, "Transfer-Encoding gzip");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n folded\r\n\r\n", 0), STSHTTP_ERROR,
           "a folded header line");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                "zz\r\n",
                0),
           STSHTTP_ERROR, "a bad chunk size");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                "2\r\nabX\r\n",
                0),
           STSHTTP_ERROR, "a chunk longer than its size");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                "20000\r\n",
                0),
           STSHTTP_ERROR, "a chunk over the limit");
    is_int(runs("SMTP/1.1 200 OK\r\n\r\n", 0), STSHTTP_ERROR, "not HTTP");
    is_int(runs("HTTP/1.1 2000 OK\r\n\r\n", 0), STSHTTP_ERROR, "a four-digit status");
    is_int(runs("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", 1), STSHTTP_ERROR,
           "closed inside the header");
    {
        const char nul[] = "HTTP/1.1 200 OK\r\nContent-Type: text/pl\0ain\r\n\r\nx";
        is_int(run(nul, sizeof(nul) - 1, 0, 1), STSHTTP_ERROR, "a NUL in the header");
    }
    memset(big, 'a', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    is_int(run(big, STSHTTP_HEADER_MAX + 10, 0, 0), STSHTTP_ERROR, "a header over 8 KiB");
    ok(strstr(h.why, "8192") != NULL, "why: %s", h.why);
    {
        static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
        memcpy(big, head, sizeof(head) - 1);
        is_int(run(big, sizeof(head) - 1 + STS_POLICY_MAX + 1, 0, 1), STSHTTP_ERROR,
               "a close-delimited body over 64 KiB");
        is_int(run(big, sizeof(head) - 1 + STS_POLICY_MAX, 4096, 1), STSHTTP_DONE,
               "exactly 64 KiB, in pieces");
        is_int(h.body.len, STS_POLICY_MAX, "all of it");
    }
    stshttp_free(&h);
    return done_testing();
}
