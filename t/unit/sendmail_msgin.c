/*
 * sendmail_msgin - unit tests of sendmail's input reader (sendmail/msgin.c:
 * lines, "." end, header section, limits, body store) and of the header
 * work before submission (sendmail/hdr.c: -t recipients, Bcc removal,
 * added From/Date/Message-ID, display-name encoding).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../sendmail/hdr.h"
#include "../../sendmail/msgin.h"
#include "tap.h"

static const struct msgin_limits lim_default = {
    .line_max = 1000,
    .size_max = 1000000,
    .header_max = 100000,
    .fields_max = 100,
    .spill_at = 1 << 20,
    .tmpdir = NULL,
};

/* Feed s in pieces of step bytes (0: all at once), then finish. */
static int feed(struct msgin *m, int dot_ends, const struct msgin_limits *lim, const char *s,
                size_t len, size_t step)
{
    int rc = MSGIN_MORE;
    size_t i = 0;

    msgin_init(m, dot_ends, lim ? lim : &lim_default);
    if (step == 0)
        step = len ? len : 1;
    while (rc == MSGIN_MORE && i < len) {
        size_t k = len - i < step ? len - i : step;
        rc = msgin_feed(m, s + i, k);
        i += k;
    }
    if (rc == MSGIN_MORE)
        rc = msgin_finish(m);
    return rc;
}

static int feeds(struct msgin *m, int dot_ends, const char *s)
{
    return feed(m, dot_ends, NULL, s, strlen(s), 0);
}

/* The body as read back through the store. */
static char *body_text(struct msgin *m)
{
    static char out[65536];
    size_t pos = 0, o = 0;
    long n;

    body_rewind(&m->body);
    while (o < sizeof(out) - 1 && (n = body_read(&m->body, &pos, out + o, sizeof(out) - 1 - o)) > 0)
        o += (size_t)n;
    out[o] = '\0';
    return out;
}

static void t_lines(void)
{
    struct msgin m;

    is_int(feeds(&m, 1, "Subject: hi\nTo: a@b\n\nbody line\n"), MSGIN_DONE, "LF input");
    is_int(m.nfields, 2, "two header fields");
    ok(msgin_field_is(&m, &m.fields[0], "subject"), "field names compare without case");
    is_str(body_text(&m), "body line\n", "body");
    is_int(m.body_lines, 1, "one body line");
    is_int(m.size, strlen("Subject: hi\r\nTo: a@b\r\nbody line\r\n"), "size counts CR LF");
    msgin_free(&m);

    is_int(feeds(&m, 1, "Subject: hi\r\nTo: a@b\r\n\r\nbody line\r\n"), MSGIN_DONE, "CRLF input");
    is_int(m.nfields, 2, "CRLF: two fields");
    is_str(body_text(&m), "body line\n", "CRLF: the CR before LF is dropped");
    msgin_free(&m);

    is_int(feeds(&m, 1, "Subject: x\n\nno newline at the end"), MSGIN_DONE, "last line unended");
    is_str(body_text(&m), "no newline at the end\n", "last line kept");
    msgin_free(&m);

    is_int(feeds(&m, 1, "Subject: x\n\na\rb\n"), MSGIN_DONE, "lone CR");
    is_str(body_text(&m), "a\rb\n", "a lone CR stays for the DATA encoder");
    msgin_free(&m);
}

static void t_dot(void)
{
    struct msgin m;
    const char *s = "Subject: x\n\nline\n.\nafter\n";

    is_int(feeds(&m, 1, s), MSGIN_DONE, "dot ends the input");
    ok(m.done, "done set");
    is_str(body_text(&m), "line\n", "nothing after the dot");
    msgin_free(&m);

    is_int(feed(&m, 1, NULL, s, strlen(s), 1), MSGIN_DONE, "byte by byte");
    is_str(body_text(&m), "line\n", "byte by byte: same");
    msgin_free(&m);

    is_int(feeds(&m, 1, "Subject: x\n\nline\r\n.\r\nafter\r\n"), MSGIN_DONE, "CRLF dot");
    is_str(body_text(&m), "line\n", "CRLF dot ends it too");
    msgin_free(&m);

    is_int(feeds(&m, 0, s), MSGIN_DONE, "-i: to end of file");
    is_str(body_text(&m), "line\n.\nafter\n", "-i: the dot is text");
    msgin_free(&m);

    is_int(feeds(&m, 1, "Subject: x\n\n..\n. \n.x\n"), MSGIN_DONE, "not a lone dot");
    is_str(body_text(&m), "..\n. \n.x\n", "'..', '. ', '.x' are text");
    msgin_free(&m);

    is_int(feeds(&m, 1, "Subject: x\n.\nBody: no\n"), MSGIN_DONE, "dot in the header section");
    is_int(m.nfields, 1, "the header read so far");
    is_int(m.body.len, 0, "no body");
    msgin_free(&m);
}

static void t_header_section(void)
{
    struct msgin m;
    size_t len;
    const char *v;

    is_int(feeds(&m, 1, "hello world\nline2\n"), MSGIN_DONE, "no header section");
    is_int(m.nfields, 0, "no fields");
    is_str(body_text(&m), "hello world\nline2\n", "all body");
    msgin_free(&m);

    is_int(feeds(&m, 1, "Subject: x\nthis is body\n"), MSGIN_DONE, "non-header line");
    is_int(m.nfields, 1, "one field");
    is_str(body_text(&m), "this is body\n", "the non-header line starts the body");
    msgin_free(&m);

    is_int(feeds(&m, 1, "To: a@b,\n  c@d\nSubject : s\n\n"), MSGIN_DONE, "folded, 'Name :'");
    is_int(m.nfields, 2, "two fields");
    v = msgin_field_value(&m, &m.fields[0], &len);
    ok(len == strlen(" a@b,\n  c@d\n") && memcmp(v, " a@b,\n  c@d\n", len) == 0,
       "the value includes the continuation");
    ok(msgin_field_find(&m, "subject") != NULL, "'Subject :' is a Subject field");
    msgin_free(&m);

    is_int(feeds(&m, 1, "From someone@x Mon Jan  1 00:00:00 2024\nSubject: x\n\nb\n"), MSGIN_DONE,
           "mbox From_ line");
    is_int(m.nfields, 1, "From_ line dropped");
    ok(!msgin_field_find(&m, "From"), "and it is no From: field");
    msgin_free(&m);

    is_int(feeds(&m, 1, "  indented\nSubject: x\n"), MSGIN_DONE, "continuation first");
    is_int(m.nfields, 0, "a leading continuation is body");
    msgin_free(&m);

    const char nul[] = "Subject: x\nX-Bin: a\0b\nTo: c@d\n";
    is_int(feed(&m, 1, NULL, nul, sizeof(nul) - 1, 0), MSGIN_DONE, "NUL in a header line");
    is_int(m.nfields, 1, "a line with NUL is not a header");
    is_int(m.body.len, sizeof(nul) - 1 - strlen("Subject: x\n"), "it and the rest are body");
    msgin_free(&m);

    is_int(feeds(&m, 1, "Subject: caf\xc3\xa9\n\n"), MSGIN_DONE, "8-bit header");
    ok(m.eightbit, "eightbit seen");
    msgin_free(&m);
    is_int(feeds(&m, 1, "Subject: x\n\nplain\n"), MSGIN_DONE, "7-bit");
    ok(!m.eightbit, "no eightbit");
    msgin_free(&m);
}

static void t_limits(void)
{
    struct msgin m;
    struct msgin_limits lim = lim_default;
    char line[300];

    lim.line_max = 100;
    memset(line, 'h', 150);
    memcpy(line, "Subject: ", 9);
    line[150] = '\n';
    line[151] = '\0';
    is_int(feed(&m, 1, &lim, line, strlen(line), 0), MSGIN_ERR, "long header line");
    ok(strstr(m.why, "header line 1 is longer than 98 bytes") != NULL, "says so: %s", m.why);
    msgin_free(&m);

    /* a 200-byte body line is cut in 98-byte pieces */
    char in[400];
    strcpy(in, "Subject: x\n\n");
    memset(in + strlen(in), 'b', 200);
    strcpy(in + 12 + 200, "\nend\n");
    is_int(feed(&m, 1, &lim, in, strlen(in), 7), MSGIN_DONE, "long body line");
    char *b = body_text(&m);
    ok(strlen(b) == 200 + 3 + 4 && b[98] == '\n' && b[197] == '\n' && b[202] == '\n',
       "cut after 98 and 196 bytes");
    is_int(m.body_lines, 4, "four body lines");
    msgin_free(&m);

    /* never inside a UTF-8 sequence: 97 'x' then a 2-byte char straddling 98 */
    strcpy(in, "Subject: x\n\n");
    memset(in + 12, 'x', 97);
    strcpy(in + 12 + 97, "\xc3\xa9tail\n");
    is_int(feed(&m, 1, &lim, in, strlen(in), 0), MSGIN_DONE, "UTF-8 at the cut");
    b = body_text(&m);
    ok(b[97] == '\n' && (unsigned char)b[98] == 0xc3, "cut before the sequence");
    msgin_free(&m);

    /* exactly the limit with CR LF is not cut */
    strcpy(in, "Subject: x\n\n");
    memset(in + 12, 'y', 98);
    strcpy(in + 12 + 98, "\r\n");
    is_int(feed(&m, 1, &lim, in, strlen(in), 1), MSGIN_DONE, "line at the limit, CR LF");
    is_int(m.body_lines, 1, "not cut");
    is_int(m.body.len, 99, "98 bytes and LF");
    msgin_free(&m);

    lim = lim_default;
    lim.size_max = 50;
    is_int(feeds(&m, 1, "Subject: x\n\n"), MSGIN_DONE, "small message fits");
    msgin_free(&m);
    msgin_init(&m, 1, &lim);
    int rc = msgin_feed(&m, "Subject: x\n\n", 12);
    for (int i = 0; i < 10 && rc == MSGIN_MORE; i++)
        rc = msgin_feed(&m, "0123456789\n", 11);
    is_int(rc, MSGIN_ERR, "over size_max");
    ok(strstr(m.why, "message_size_limit") != NULL, "names message_size_limit");
    msgin_free(&m);

    lim = lim_default;
    lim.fields_max = 3;
    is_int(feeds(&m, 1, "A: 1\nB: 2\nC: 3\n\n"), MSGIN_DONE, "three fields ok");
    msgin_free(&m);
    msgin_init(&m, 1, &lim);
    is_int(msgin_feed(&m, "A: 1\nB: 2\nC: 3\nD: 4\n", 20), MSGIN_ERR, "a fourth is too many");
    msgin_free(&m);

    lim = lim_default;
    lim.header_max = 30;
    msgin_init(&m, 1, &lim);
    is_int(msgin_feed(&m, "Subject: 0123456789\nX: 0123456789\n", 34), MSGIN_ERR,
           "header section over header_max");
    msgin_free(&m);
}

static void t_spill(void)
{
    struct msgin m;
    struct msgin_limits lim = lim_default;
    char in[5000], want[5000];
    size_t o = 0, w = 0;

    lim.spill_at = 100;
    o += (size_t)sprintf(in, "Subject: spill\n\n");
    for (int i = 0; i < 200; i++) {
        o += (size_t)sprintf(in + o, "line %d\n", i);
        w += (size_t)sprintf(want + w, "line %d\n", i);
    }
    is_int(feed(&m, 1, &lim, in, o, 33), MSGIN_DONE, "body larger than spill_at");
    ok(m.body.fd >= 0, "went to a temporary file");
    is_str(body_text(&m), want, "read back whole");
    is_str(body_text(&m), want, "and again after a second rewind");
    msgin_free(&m);
}

static void t_rcpts(void)
{
    struct msgin m;
    struct addrlist l;
    char err[200];

    feeds(&m, 1, "To: A <a@x>, b@x\nCc: c@x\nBcc: d@x,\n e@x\nSubject: s\n\n");
    addrlist_init(&l);
    is_int(hdr_rcpts(&m, &l, 100, err, sizeof(err)), 0, "To, Cc, Bcc parsed");
    is_int(l.n, 5, "five recipients");
    ok(l.n == 5 && strcmp(l.v[0].local, "a") == 0 && strcmp(l.v[4].local, "e") == 0,
       "in header order, folded Bcc included");
    addrlist_free(&l);
    msgin_free(&m);

    feeds(&m, 1, "To: a@x\nResent-To: r@x\nResent-Bcc: s@x\n\n");
    addrlist_init(&l);
    is_int(hdr_rcpts(&m, &l, 100, err, sizeof(err)), 0, "Resent- fields");
    ok(l.n == 2 && strcmp(l.v[0].local, "r") == 0 && strcmp(l.v[1].local, "s") == 0,
       "only Resent-To and Resent-Bcc are used when present");
    addrlist_free(&l);
    msgin_free(&m);

    feeds(&m, 1, "To: John user@x\n\n");
    addrlist_init(&l);
    is_int(hdr_rcpts(&m, &l, 100, err, sizeof(err)), -1, "malformed To:");
    ok(strncmp(err, "To: header: ',' expected", 24) == 0, "names the field: %s", err);
    addrlist_free(&l);
    msgin_free(&m);

    feeds(&m, 1, "To: a@x, b@x, c@x\n\n");
    addrlist_init(&l);
    is_int(hdr_rcpts(&m, &l, 2, err, sizeof(err)), -1, "more than max");
    addrlist_free(&l);
    msgin_free(&m);
}

static void t_write(void)
{
    struct msgin m;
    struct buf out;
    struct hdr_info h = {"host.test", "joe@host.test", "Joe User", 86400 * 365, 1000, "TOKEN"};

    setenv("TZ", "UTC", 1);
    tzset();
    feeds(&m, 1, "Subject: s\nBcc: hidden@x\nTo: a@x\nResent-Bcc: r@x\n\nbody\n");
    hdr_strip_bcc(&m);
    buf_init(&out);
    hdr_write(&m, &h, &out);
    is_str(out.data,
           "Received: by host.test (Postern sendmail, from userid 1000);\n"
           "\tFri, 01 Jan 1971 00:00:00 +0000\n"
           "Subject: s\n"
           "To: a@x\n"
           "From: Joe User <joe@host.test>\n"
           "Date: Fri, 01 Jan 1971 00:00:00 +0000\n"
           "Message-ID: <19710101000000.TOKEN@host.test>\n"
           "\n",
           "Bcc gone, From/Date/Message-ID added, blank line at the end");
    buf_free(&out);
    msgin_free(&m);

    feeds(&m, 1, "from: me@x\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\nmessage-id: <a@b>\n\n");
    buf_init(&out);
    hdr_write(&m, &h, &out);
    ok(strstr(out.data, "From: Joe") == NULL && strstr(out.data, "\nDate:") == NULL &&
           strstr(out.data, "Message-ID: <1971") == NULL,
       "present fields (any case) are not added again");
    buf_free(&out);
    msgin_free(&m);

    h.fullname = NULL;
    feeds(&m, 1, "Subject: s\n\n");
    buf_init(&out);
    hdr_write(&m, &h, &out);
    ok(strstr(out.data, "\nFrom: joe@host.test\n") != NULL, "no full name: bare address");
    buf_free(&out);
    msgin_free(&m);
}

static char *phrase(const char *s)
{
    static char out[1024];
    struct buf b;

    buf_init(&b);
    hdr_phrase(s, &b);
    snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
    buf_free(&b);
    return out;
}

static void t_phrase(void)
{
    is_str(phrase("John Doe"), "John Doe", "atoms as they are");
    is_str(phrase("Doe, John"), "\"Doe, John\"", "specials quoted");
    is_str(phrase("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"", "quotes and backslash escaped");
    is_str(phrase("J\xc3\xb6rg"), "=?UTF-8?B?SsO2cmc=?=", "UTF-8 as an encoded word");
    is_str(phrase("evil\r\nBcc: x@y"), "\"evil Bcc: x@y\"", "CR LF cannot start a header");
    is_str(phrase("  lots   of   space  "), "lots of space", "blanks squeezed");
    is_str(phrase(""), "", "empty");
    is_str(phrase("caf\xe9"), "\"caf?\"", "not UTF-8: replaced");
    {
        char name[200] = "";
        for (int i = 0; i < 30; i++)
            strcat(name, "\xc3\xa9");
        char *p = phrase(name);
        int words = 0, max = 0;
        for (char *w = strtok(p, " "); w; w = strtok(NULL, " ")) {
            words++;
            if ((int)strlen(w) > max)
                max = (int)strlen(w);
        }
        ok(words == 2 && max <= 75, "60 bytes of UTF-8: 2 encoded words, each <= 75 (%d, %d)",
           words, max);
    }
}

static void t_date(void)
{
    char d[64];

    setenv("TZ", "UTC", 1);
    tzset();
    hdr_date(0, d, sizeof(d));
    is_str(d, "Thu, 01 Jan 1970 00:00:00 +0000", "epoch in UTC");
    setenv("TZ", "EST5", 1);
    tzset();
    hdr_date(0, d, sizeof(d));
    is_str(d, "Wed, 31 Dec 1969 19:00:00 -0500", "a zone west of UTC");
    setenv("TZ", "IST-5:30", 1);
    tzset();
    hdr_date(0, d, sizeof(d));
    is_str(d, "Thu, 01 Jan 1970 05:30:00 +0530", "a half-hour zone");
}

int main(void)
{
    plan_lazy();
    t_lines();
    t_dot();
    t_header_section();
    t_limits();
    t_spill();
    t_rcpts();
    t_write();
    t_phrase();
    t_date();
    return done_testing();
}
