/*
 * smtpd_pickup - unit tests of a maildrop file through a session
 * (pickup_tx in smtpd/pickup.c), without files or events: the message a
 * good file gives (envelope, decoded body, the same however it is cut);
 * the replies that refuse one (bad MAIL FROM, relay denied when 127.0.0.1
 * is not in mynetworks, SMTPUTF8, bare LF in reject mode, size, hops);
 * bare LF in normalize mode; framing errors (no magic, trailing bytes,
 * truncated, commands the format does not allow).
 */
#include <stdio.h>
#include <string.h>

#include "../../smtpd/pickup.h"
#include "tap.h"

static struct sess_conf conf = {
    .hostname = "mx.test",
    .size_limit = 10000,
    .rcpt_limit = 3,
    .error_limit = 5,
    .line_limit = 1000,
    .max_hops = 5,
};

struct outcome {
    int rc;
    int data_at; /* bytes fed when PT_DATA came, -1 if never */
    struct buf body;
    char sender[64];
    size_t nrcpt;
    char why[320];
    int code;
};

/* Feed in[0..n) in pieces of `piece` bytes (0: whole), then finish. */
static void run(const char *in, size_t n, size_t piece, int trusted, struct outcome *o)
{
    struct pickup_tx t;
    size_t off = 0;
    int rc = PT_MORE;

    buf_reset(&o->body);
    o->data_at = -1;
    pickup_tx_init(&t, &conf, 512, 1000, trusted);
    while (off < n && (rc == PT_MORE || rc == PT_DATA)) {
        size_t len = piece && n - off > piece ? piece : n - off, used, k = 0;
        do {
            rc = pickup_tx_feed(&t, in + off + k, len - k, &used, &o->body);
            k += used;
            if (rc == PT_DATA)
                o->data_at = (int)(off + k);
        } while (rc == PT_DATA);
        off += k;
        if (rc == PT_MORE && k != len)
            rc = -99; /* MORE must mean all was taken */
    }
    if (rc == PT_MORE)
        rc = pickup_tx_finish(&t);
    o->rc = rc;
    o->code = t.code;
    snprintf(o->why, sizeof(o->why), "%s", t.why);
    snprintf(o->sender, sizeof(o->sender), "%s", t.s.sender ? t.s.sender : "(none)");
    o->nrcpt = t.s.nrcpt;
    pickup_tx_free(&t);
}

static const char good[] = "POSTDROP 1\r\n"
                           "MAIL FROM:<a@x.test> SIZE=30 BODY=8BITMIME\r\n"
                           "RCPT TO:<b@y.test> NOTIFY=NEVER\r\n"
                           "rcpt to:<c@y.test>\n"
                           "DATA\r\n"
                           "Subject: t\r\n\r\n..dot\r\nend\r\n.\r\n";

static void test_good(void)
{
    struct outcome o;
    size_t n = strlen(good);
    int same = 1;

    buf_init(&o.body);
    run(good, n, 0, 1, &o);
    is_int(o.rc, PT_END, "a good file: the message is to be committed");
    is_str(o.sender, "a@x.test", "its sender");
    is_int(o.nrcpt, 2, "its recipients");
    is_int(o.data_at, (int)(strstr(good, "Subject") - good), "PT_DATA right after the DATA line");
    is_str(o.body.data, "Subject: t\r\n\r\n.dot\r\nend\r\n", "the body, dot-stuffing removed");
    for (size_t piece = 1; piece < n && same; piece++) {
        run(good, n, piece, 1, &o);
        same = o.rc == PT_END && strcmp(o.body.data, "Subject: t\r\n\r\n.dot\r\nend\r\n") == 0;
        if (!same)
            diag("pieces of %zu: rc %d body %s", piece, o.rc, o.body.data);
    }
    ok(same, "the same in pieces of every size");
    buf_free(&o.body);
}

static void expect(const char *in, int trusted, int rc, int code, const char *why, const char *name)
{
    struct outcome o;

    buf_init(&o.body);
    run(in, strlen(in), 0, trusted, &o);
    if (!ok(o.rc == rc && (code == 0 || o.code == code) && strstr(o.why, why) != NULL, "%s", name))
        diag("rc %d code %d why %s", o.rc, o.code, o.why);
    buf_free(&o.body);
}

#define HEAD "POSTDROP 1\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"

static void test_refused(void)
{
    char big[14000];

    expect("POSTDROP 1\r\nMAIL FROM:<no spaces@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n.\r\n", 1,
           PT_REFUSED, 501, "501 5.1.7", "bad MAIL FROM: 501");
    expect("POSTDROP 1\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@>\r\nDATA\r\n.\r\n", 1, PT_REFUSED,
           501, "501 5.1.3", "bad RCPT TO: 501");
    expect(HEAD "x\r\n.\r\n", 0, PT_REFUSED, 554, "Relay access denied",
           "127.0.0.1 not in mynetworks: 554 at RCPT, as over SMTP");
    expect("POSTDROP 1\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<\xc3\xa9@y.test>\r\nDATA\r\n.\r\n", 1,
           PT_REFUSED, 553, "SMTPUTF8", "UTF-8 address without SMTPUTF8: 553");
    expect("POSTDROP 1\r\nMAIL FROM:<a@x.test> SIZE=99999\r\nRCPT TO:<b@y.test>\r\nDATA\r\n.\r\n",
           1, PT_REFUSED, 552, "552 5.3.4", "SIZE over the limit: 552");
    expect(HEAD "a\nb\r\n.\r\n", 1, PT_REFUSED, 550, "bare <LF>",
           "bare LF, smtpd_bare_newline = reject: 550");
    expect(HEAD "Received: a\r\nReceived: b\r\nReceived: c\r\nReceived: d\r\nReceived: e\r\n"
                "\r\nx\r\n.\r\n",
           1, PT_REFUSED, 554, "554 5.4.6", "too many hops: 554");
    snprintf(big, sizeof(big), "%s", HEAD);
    size_t n = strlen(big);
    for (int i = 0; i < 200; i++, n += 60)
        memcpy(big + n, "0123456789012345678901234567890123456789012345678901234567\r\n", 60);
    memcpy(big + n, ".\r\n", 4);
    expect(big, 1, PT_MALFORMED, 0, "message_size_limit", "over message_size_limit: refused");

    conf.normalize = 1;
    {
        struct outcome o;
        const char *in = HEAD "a\nb\r\n.\r\n";
        buf_init(&o.body);
        run(in, strlen(in), 0, 1, &o);
        ok(o.rc == PT_END && strcmp(o.body.data, "a\r\nb\r\n") == 0,
           "bare LF, normalize: accepted with CR LF");
        buf_free(&o.body);
    }
    conf.normalize = 0;
}

static void test_malformed(void)
{
    expect("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n.\r\n", 1, PT_MALFORMED, 0,
           "not a maildrop file", "no magic line");
    expect("", 1, PT_MALFORMED, 0, "empty", "an empty file");
    expect(HEAD "x\r\n.\r\nQUIT\r\n", 1, PT_MALFORMED, 0, "after the end of data",
           "bytes after the end");
    expect(HEAD "x\r\n", 1, PT_MALFORMED, 0, "before the end of data", "no end of data");
    expect("POSTDROP 1\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n", 1, PT_MALFORMED, 0,
           "before DATA", "no DATA");
    expect("POSTDROP 1\r\nEHLO evil\r\nMAIL FROM:<a@x.test>\r\n", 1, PT_MALFORMED, 0,
           "not MAIL FROM", "EHLO in the file");
    expect("POSTDROP 1\r\nMAIL FROM:<a@x.test>\r\nRSET\r\nRCPT TO:<b@y.test>\r\nDATA\r\n.\r\n", 1,
           PT_MALFORMED, 0, "not RCPT TO: or DATA", "RSET in the file");
    expect("POSTDROP 1\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<a@y>\r\nRCPT TO:<b@y>\r\n"
           "RCPT TO:<c@y>\r\nRCPT TO:<d@y>\r\nDATA\r\n.\r\n",
           1, PT_MALFORMED, 0, "smtpd_recipient_limit", "more recipients than the limit");
}

int main(void)
{
    plan_lazy();
    test_good();
    test_refused();
    test_malformed();
    return done_testing();
}
