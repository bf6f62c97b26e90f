/*
 * Fuzz target for qmgr's notice text (qmgr/report.c). The input is the
 * original message. report_header_value looks a few names up in it with
 * several buffer sizes (the result must be a string inside the buffer,
 * "" when not found); report_build makes notices from it with RET=FULL
 * and HDRS and a small and a large bounce_size_limit, with the input as
 * a C string also the remote reply, the why sentence and ORCPT, and
 * checks: the notice ends with the closing delimiter, the boundary
 * occurs only as the delimiters of its parts, everything but the
 * returned original has CR LF line ends, no line over 998 and no 8-bit
 * byte, part 3 is a prefix of the original (with a CR LF added when it
 * does not end with one), and *eightbit says whether any byte is 8-bit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../qmgr/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value(const char *msg, size_t len, const char *name)
{
    static const size_t sizes[] = {1, 2, 8, 201, 1000};
    char buf[1000];

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        memset(buf, 'Z', sizeof(buf));
        int rc = report_header_value(msg, len, name, buf, sizes[i]);
        size_t n = strnlen(buf, sizes[i]);
        if ((rc != 0 && rc != 1) || n >= sizes[i] || (rc == 0 && n != 0))
            abort();
        if (n > 0 && (buf[0] == ' ' || buf[0] == '\t' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
            abort();
    }
    if (report_header_value(msg, len, name, NULL, 0) != report_header_value(msg, len, name, buf, 1))
        abort();
}

static int has_8bit(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] > 0x7f)
            return 1;
    return 0;
}

static int lines_ok(const char *p, size_t n)
{
    size_t col = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r') {
            if (i + 1 >= n || p[i + 1] != '\n')
                return 0;
            i++;
            col = 0;
        } else if (p[i] == '\n' || ++col > 998) {
            return 0;
        }
    }
    return col == 0;
}

static size_t occurrences(const char *hay, size_t n, const char *needle, size_t k)
{
    size_t c = 0;
    const char *p = hay, *end = hay + n;

    while ((p = memmem(p, (size_t)(end - p), needle, k)) != NULL) {
        c++;
        p += k;
    }
    return c;
}

/* Part 3's content c[0..n) is orig[0..k), with CR LF added when that
 * does not end with one, for a k that the rules allow: all of it for
 * RET=FULL within size_limit, else at most size_limit. */
static int returned_ok(const char *c, size_t n, const struct report *rp)
{
    int full = rp->ret == DSN_RET_FULL && rp->orig_len <= rp->size_limit;

    for (size_t k = n >= 2 ? n - 2 : 0; k <= n; k += 2) {
        int crlf;
        if (k > rp->orig_len || (full ? k != rp->orig_len : k > rp->size_limit))
            continue;
        if (memcmp(c, rp->orig, k) != 0)
            continue;
        crlf = k >= 2 && memcmp(rp->orig + k - 2, "\r\n", 2) == 0;
        if (k == n && (k == 0 || crlf))
            return 1;
        if (k + 2 == n && k > 0 && !crlf && memcmp(c + k, "\r\n", 2) == 0)
            return 1;
    }
    return 0;
}

static void check_notice(const struct report *rp)
{
    struct buf out;
    char dash[128], closing[140];
    const char *b, *e, *body, *content, *tail;
    size_t blen, dl, cl, start;
    int eightbit = -1;

    buf_init(&out);
    buf_adds(&out, "Received: by fuzz.test\r\n");
    start = out.len;
    report_build(&out, rp, &eightbit);
    if (eightbit != has_8bit(out.data + start, out.len - start))
        abort();
    /* the Subject may say boundary=" too; a field starts after CR LF */
    b = strstr(out.data + start, "\r\nContent-Type: multipart/report;");
    b = b ? strstr(b, "boundary=\"") : NULL;
    body = strstr(out.data + start, "\r\n\r\n");
    if (b == NULL || body == NULL || b > body)
        abort();
    b += 10;
    e = strchr(b, '"');
    blen = e ? (size_t)(e - b) : 0;
    if (blen == 0 || blen > 70)
        abort();
    dash[0] = dash[1] = '-';
    memcpy(dash + 2, b, blen);
    dl = blen + 2;
    memcpy(closing, "\r\n", 2);
    memcpy(closing + 2, dash, dl);
    memcpy(closing + 2 + dl, "--\r\n", 4);
    cl = dl + 6;
    if (out.len - start < cl)
        abort();
    tail = out.data + out.len - cl;
    if (memcmp(tail, closing, cl) != 0)
        abort();
    /* in the body the boundary is only the delimiters (the Subject may hold it) */
    if (occurrences(body, (size_t)(out.data + out.len - body), dash, dl) !=
        (rp->orig_len ? 4u : 3u))
        abort();
    content = tail;
    if (rp->orig_len) {
        const char *d3 = body;
        for (int i = 0; i < 3; i++)
            d3 = memmem(d3 + 1, (size_t)(out.data + out.len - d3 - 1), dash, dl);
        content = strstr(d3, "\r\n\r\n") + 4;
        if (!returned_ok(content, (size_t)(tail - content), rp))
            abort();
    }
    /* what Postern wrote: everything before the returned original */
    if (!lines_ok(out.data, (size_t)(content - out.data)) ||
        has_8bit(out.data, (size_t)(content - out.data)))
        abort();
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    char *text = malloc(size + 1);
    struct report_rcpt r[3];
    struct report rp;

    check_value(msg, size, "Subject");
    check_value(msg, size, "Message-ID");
    check_value(msg, size, "From");
    check_value(msg, size, "X");

    memcpy(text, data, size);
    text[size] = '\0';
    memset(r, 0, sizeof(r));
    r[0].addr = "bob@example.org";
    r[0].orcpt = text;
    r[0].action = RA_FAILED;
    r[0].status = "5.1.1";
    r[0].remote_mta = "mx.example.org";
    r[0].diag_type = "smtp";
    r[0].diag = text;
    r[0].step = "rcpt";
    r[0].last_attempt_us = 1796630460000000LL;
    r[1].addr = "carol@example.net";
    r[1].action = RA_DELAYED;
    r[1].status = text;
    r[1].diag = "connection refused";
    r[1].step = text;
    r[1].will_retry_until_us = 1797062400000000LL;
    r[1].why = text;
    r[2].addr = text;
    r[2].action = RA_RELAYED;
    r[2].status = "2.0.0";

    memset(&rp, 0, sizeof(rp));
    rp.kind = size & 1 ? RK_POSTMASTER : RK_SENDER;
    rp.reporting_mta = "fuzz.test";
    rp.rcpt_to = "alice@sender.test";
    rp.queue_id = "0660C36F14A92D0000";
    rp.orig_sender = "alice@sender.test";
    rp.envid = size & 2 ? text : NULL;
    rp.arrival_us = 1796630400000000LL;
    rp.now_us = 1796630460000000LL;
    rp.message_id = "<0660C36F14A92D1000.notice@fuzz.test>";
    rp.orig = msg;
    rp.orig_len = size;
    rp.r = r;
    rp.n = 3;
    for (int i = 0; i < 4; i++) {
        rp.ret = i & 1 ? DSN_RET_HDRS : DSN_RET_FULL;
        rp.size_limit = i & 2 ? 1u << 20 : 64;
        check_notice(&rp);
    }
    free(text);
    return 0;
}
