/*
 * sendmail_drop - unit tests of the maildrop writer (sendmail/drop.c):
 * the exact stream for a submission (magic line, the MAIL and RCPT lines
 * submit.c builds, with Postern's capabilities, DATA, the dot-stuffed
 * content), and that the maildrop reader (mail/maildrop.h) takes it whole.
 */
#include <string.h>

#include "../../sendmail/drop.h"
#include "../../sendmail/opts.h"
#include "mail/maildrop.h"
#include "tap.h"

static int put_buf(void *arg, const char *p, size_t n)
{
    buf_add(arg, p, n);
    return 0;
}

static int fail_put(void *arg, const char *p, size_t n)
{
    return -1;
}

static void fill(struct submit_req *req, struct buf *headers, struct body *body, const char *h,
                 const char *b)
{
    buf_adds(headers, h);
    memset(body, 0, sizeof(*body));
    buf_init(&body->mem);
    buf_adds(&body->mem, b);
    body->fd = -1;
    body->len = strlen(b);
    req->headers = headers;
    req->body = body;
}

/* The reader's view of a stream: 0 when complete, the commands it saw. */
static int read_back(const struct buf *s, struct buf *cmds)
{
    static const struct maildrop_limits lim = {2048, 100, 1000000};
    struct maildrop_rd r;
    size_t off = 0;
    int rc = 0;

    maildrop_rd_init(&r, &lim);
    for (;;) {
        const char *item;
        size_t used, ilen;
        int t = maildrop_rd_next(&r, s->data + off, s->len - off, &used, &item, &ilen);
        off += used;
        if (t == MD_MORE)
            break;
        if (t == MD_ERR) {
            rc = -1;
            break;
        }
        if (t == MD_CMD) {
            buf_add(cmds, item, ilen);
            buf_addc(cmds, '|');
        }
    }
    if (rc == 0)
        rc = maildrop_rd_finish(&r);
    maildrop_rd_free(&r);
    return rc;
}

static void test_stream(void)
{
    char r1[] = "a@x.test", r2[] = "b@y.test";
    char *rcpts[] = {r1, r2};
    struct submit_req req = {
        .prog = "sendmail",
        .sender = "me@here.test",
        .rcpts = rcpts,
        .nrcpts = 2,
        .notify = SM_NOTIFY_SUCCESS | SM_NOTIFY_FAILURE,
        .ret = "HDRS",
        .envid = "e+1",
        .eightbit = 1,
        .size = 42,
    };
    struct buf headers, out, cmds;
    struct body body;

    buf_init(&headers);
    buf_init(&out);
    buf_init(&cmds);
    fill(&req, &headers, &body, "Subject: t\n\n", "line\n.dot\n.\nlast");
    is_int(drop_write(&req, put_buf, &out), 0, "written");
    is_str(out.data,
           "POSTDROP 1\r\n"
           "MAIL FROM:<me@here.test> SIZE=42 BODY=8BITMIME RET=HDRS ENVID=e+2B1\r\n"
           "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE\r\n"
           "RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE\r\n"
           "DATA\r\n"
           "Subject: t\r\n\r\nline\r\n..dot\r\n..\r\nlast\r\n.\r\n",
           "the stream: magic, MAIL and RCPT with parameters, DATA, the content dot-stuffed");
    is_int(read_back(&out, &cmds), 0, "the reader takes it whole");
    is_str(cmds.data,
           "MAIL FROM:<me@here.test> SIZE=42 BODY=8BITMIME RET=HDRS ENVID=e+2B1|"
           "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE|RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE|"
           "DATA|",
           "and sees the same commands");
    is_int(drop_write(&req, fail_put, NULL), -1, "a failing writer is reported");

    /* the null sender, no DSN options, a UTF-8 address */
    char u1[] = "\xc3\xa9@x.test";
    char *u[] = {u1};
    struct submit_req plain = {
        .prog = "sendmail", .sender = "", .rcpts = u, .nrcpts = 1, .utf8 = 1, .size = 3};
    struct buf h2, o2;
    struct body b2;
    buf_init(&h2);
    buf_init(&o2);
    fill(&plain, &h2, &b2, "", "x\n");
    drop_write(&plain, put_buf, &o2);
    is_str(o2.data,
           "POSTDROP 1\r\nMAIL FROM:<> SIZE=3 SMTPUTF8\r\nRCPT TO:<\xc3\xa9@x.test>\r\n"
           "DATA\r\nx\r\n.\r\n",
           "null sender, SMTPUTF8, no NOTIFY");
    buf_free(&h2);
    buf_free(&o2);
    buf_free(&b2.mem);
    buf_free(&headers);
    buf_free(&body.mem);
    buf_free(&out);
    buf_free(&cmds);
}

int main(void)
{
    plan_lazy();
    test_stream();
    return done_testing();
}
