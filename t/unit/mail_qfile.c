/*
 * mail_qfile - unit tests of the queue file (common/mail/qfile.c): queue IDs,
 * envelope write -> parse round trips, and corrupt files refused cleanly.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdint.h>

#include "mail/qfile.h"
#include "tap.h"

/* The envelope holds char * (a parse result owns them); tests use literals. */
#define S(x) ((char *)(uintptr_t)(x))

static struct qfile_rcpt rcpts[3] = {
    {S("bob@example.net"), 0, NULL},
    {S("carol@example.org"), DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY, S("rfc822;carol+40x")},
    {S("\"dan smith\"@example.org"), DSN_NOTIFY_NEVER, NULL},
};

static void sample(struct qfile_env *e, struct qfile_idgen *g)
{
    memset(e, 0, sizeof(*e));
    qfile_id_next(g, 1700000000123456LL, e->id);
    e->arrival_us = 1700000000123456LL;
    e->client_addr = S("2001:db8::1");
    e->client_port = 54321;
    e->helo = S("client.example");
    e->proto = S("ESMTPSA");
    e->tls = S("TLSv1.3 TLS_AES_256_GCM_SHA384");
    e->auth = S("alice");
    e->sender = S("alice@example.com");
    e->envid = S("abc+2B1");
    e->ret = DSN_RET_HDRS;
    e->body = QFILE_BODY_8BITMIME;
    e->smtputf8 = 1;
    e->rcpt = rcpts;
    e->nrcpt = 3;
}

static const char msg[] = "Received: from x\r\nSubject: hi\r\n\r\nbody\r\n";

/* Envelope + message as a whole file image. */
static struct buf image(const struct qfile_env *e)
{
    struct buf b;
    const char *why;
    size_t off;

    buf_init(&b);
    if (qfile_env_write(&b, e, &off, &why) != 0)
        diag("write failed: %s", why);
    buf_add(&b, msg, strlen(msg));
    return b;
}

static void t_ids(void)
{
    struct qfile_idgen g;
    char a[QFILE_ID_SIZE], b[QFILE_ID_SIZE], c[QFILE_ID_SIZE];
    int sorted = 1;

    qfile_id_init(&g, 0);
    qfile_id_next(&g, 1000, a);
    is_int(strlen(a), QFILE_ID_LEN, "ID length");
    ok(qfile_id_valid(a), "ID valid");
    is_int(qfile_id_time(a), 1000, "ID keeps the time");
    qfile_id_next(&g, 1000, b);
    ok(strcmp(a, b) < 0, "same microsecond: still increasing");
    qfile_id_next(&g, 500, c);
    ok(strcmp(b, c) < 0, "clock going back: still increasing");
    for (int i = 0; i < 10000; i++) {
        strcpy(a, c);
        qfile_id_next(&g, 2000 + i / 5000, c);
        if (strcmp(a, c) >= 0)
            sorted = 0;
    }
    ok(sorted, "10000 IDs in two microseconds are unique and sorted");
    qfile_id_init(&g, 1);
    qfile_id_next(&g, 1000, a);
    ok(a[14] == '1', "node digit");
    ok(!qfile_id_valid("0123456789abcdef01"), "lower case invalid");
    ok(!qfile_id_valid("0123456789ABCDEF0"), "short invalid");
    ok(!qfile_id_valid("0123456789ABCDEF012"), "long invalid");
    ok(!qfile_id_valid("../../etc/passwd00"), "path invalid");
}

static void t_roundtrip(void)
{
    struct qfile_idgen g;
    struct qfile_env e, p;
    struct buf b;
    char *err = NULL;

    qfile_id_init(&g, 0);
    sample(&e, &g);
    e.size = strlen(msg);
    b = image(&e);
    is_int(qfile_parse(b.data, b.len, b.len, &p, &err), 0, "round trip parses");
    if (err)
        diag("%s", err);
    is_str(p.id, e.id, "id");
    ok(p.arrival_us == e.arrival_us, "arrival");
    is_str(p.client_addr, "2001:db8::1", "client addr");
    is_int(p.client_port, 54321, "client port");
    is_str(p.helo, "client.example", "helo");
    is_str(p.proto, "ESMTPSA", "proto");
    is_str(p.tls, "TLSv1.3 TLS_AES_256_GCM_SHA384", "tls");
    is_str(p.auth, "alice", "auth");
    is_str(p.sender, "alice@example.com", "sender");
    is_str(p.envid, "abc+2B1", "envid");
    is_int(p.ret, DSN_RET_HDRS, "ret");
    is_int(p.body, QFILE_BODY_8BITMIME, "body");
    is_int(p.smtputf8, 1, "smtputf8");
    is_int(p.nrcpt, 3, "3 recipients");
    is_str(p.rcpt[0].addr, "bob@example.net", "rcpt 0");
    ok(p.rcpt[0].notify == 0 && p.rcpt[0].orcpt == NULL, "rcpt 0 no DSN");
    is_int(p.rcpt[1].notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY, "rcpt 1 notify");
    is_str(p.rcpt[1].orcpt, "rfc822;carol+40x", "rcpt 1 orcpt");
    is_str(p.rcpt[2].addr, "\"dan smith\"@example.org", "quoted rcpt with space");
    is_int(p.rcpt[2].notify, DSN_NOTIFY_NEVER, "NEVER");
    ok(p.size == strlen(msg), "size");
    ok(memcmp(b.data + p.msg_offset, msg, strlen(msg)) == 0, "message at msg_offset");
    qfile_env_free(&p);

    /* minimal envelope: null sender, no optional fields */
    memset(&e, 0, sizeof(e));
    qfile_id_next(&g, 5, e.id);
    e.client_addr = S("127.0.0.1");
    e.proto = S("SMTP");
    e.sender = S("");
    e.rcpt = rcpts;
    e.nrcpt = 1;
    e.size = strlen(msg);
    buf_free(&b);
    b = image(&e);
    is_int(qfile_parse(b.data, b.len, b.len, &p, &err), 0, "minimal envelope parses");
    is_str(p.sender, "", "null sender");
    ok(p.helo == NULL && p.tls == NULL && p.auth == NULL && p.envid == NULL, "optional absent");
    is_int(p.notice, QFILE_NOTICE_NONE, "not a notice");
    qfile_env_free(&p);

    /* a notice qmgr wrote: proto LOCAL, and what it is about */
    e.proto = S("LOCAL");
    e.notice = QFILE_NOTICE_DSN;
    qfile_id_next(&g, 6, e.notice_of);
    buf_free(&b);
    b = image(&e);
    ok(strstr(b.data, "\nnotice dsn ") != NULL, "the notice line is written");
    is_int(qfile_parse(b.data, b.len, b.len, &p, &err), 0, "a notice's envelope parses");
    is_str(p.proto, "LOCAL", "proto LOCAL");
    is_int(p.notice, QFILE_NOTICE_DSN, "notice kind dsn");
    is_str(p.notice_of, e.notice_of, "notice about the original");
    qfile_env_free(&p);
    e.notice = QFILE_NOTICE_POSTMASTER;
    buf_free(&b);
    b = image(&e);
    is_int(qfile_parse(b.data, b.len, b.len, &p, &err), 0, "a postmaster notice parses");
    is_int(p.notice, QFILE_NOTICE_POSTMASTER, "notice kind postmaster");
    qfile_env_free(&p);
    /* what local forwards for a sender from elsewhere (never DKIM-signed) */
    e.notice = QFILE_NOTICE_NONE;
    e.proto = S("FORWARD");
    buf_free(&b);
    b = image(&e);
    is_int(qfile_parse(b.data, b.len, b.len, &p, &err), 0, "a forwarded copy's envelope parses");
    is_str(p.proto, "FORWARD", "proto FORWARD");
    qfile_env_free(&p);
    e.notice = QFILE_NOTICE_POSTMASTER;
    e.proto = S("LOCAL");
    {
        struct buf nb;
        const char *nwhy = NULL;
        buf_init(&nb);
        memcpy(e.notice_of, "not-an-id", 10);
        is_int(qfile_env_write(&nb, &e, NULL, &nwhy), -1, "writer refuses a notice without an ID");
        buf_free(&nb);
    }
    e.notice = QFILE_NOTICE_NONE;
    e.proto = S("SMTP");
    buf_free(&b);
    b = image(&e);

    /* qfile_read from a real file, parsed in growing chunks */
    char path[] = "/tmp/qfile-test-XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len, "temp file written");
    is_int(qfile_read(fd, &p, &err), 0, "qfile_read");
    is_str(p.id, e.id, "qfile_read id");
    qfile_env_free(&p);
    close(fd);
    unlink(path);
    buf_free(&b);

    /* fields the format cannot carry are refused by the writer */
    const char *why;
    struct buf w;
    buf_init(&w);
    e.sender = S("a\nrcpt - - evil@x.y");
    ok(qfile_env_write(&w, &e, NULL, &why) == -1, "LF in sender refused");
    e.sender = S("");
    e.helo = S("two words");
    ok(qfile_env_write(&w, &e, NULL, &why) == -1, "space in helo refused");
    e.helo = NULL;
    e.nrcpt = 0;
    ok(qfile_env_write(&w, &e, NULL, &why) == -1, "no recipients refused");
    buf_free(&w);
}

/* Replace the first occurrence of from with to in the image; parse it. */
static int corrupt(const char *from, const char *to, const char *name)
{
    struct qfile_idgen g;
    struct qfile_env e, p;
    struct buf b, c;
    char *err = NULL, *at;
    int rc;

    qfile_id_init(&g, 0);
    sample(&e, &g);
    e.size = strlen(msg);
    b = image(&e);
    at = strstr(b.data, from);
    if (at == NULL) {
        diag("%s: '%s' not in image", name, from);
        buf_free(&b);
        return 0;
    }
    buf_init(&c);
    buf_add(&c, b.data, (size_t)(at - b.data));
    buf_adds(&c, to);
    buf_add(&c, at + strlen(from), b.len - (size_t)(at - b.data) - strlen(from));
    rc = qfile_parse(c.data, c.len, c.len, &p, &err);
    ok(rc == -1 && err != NULL, "corrupt: %s", name);
    if (rc == 0)
        qfile_env_free(&p);
    else if (err)
        diag("  -> %s", err);
    free(err);
    buf_free(&b);
    buf_free(&c);
    return rc == -1;
}

static void t_corrupt(void)
{
    struct qfile_idgen g;
    struct qfile_env e, p;
    struct buf b;
    char *err = NULL;

    corrupt("POSTERN-QUEUE 1", "POSTERN-QUEUE 2", "future version");
    corrupt("POSTERN-QUEUE 1", "POSTERN-QUEUE x", "bad version");
    corrupt("POSTERN-QUEUE", "HELLO-QUEUE", "bad magic");
    corrupt("id ", "ix ", "unknown key");
    corrupt("proto ESMTPSA", "proto SMTPX", "bad proto");
    corrupt("proto ESMTPSA\n", "", "missing proto");
    corrupt("arrival 1", "arrival -1", "negative arrival");
    corrupt("client 2001:db8::1 54321", "client 2001:db8::1 99999", "port out of range");
    corrupt("rcpt - - bob", "rcpt - bob", "rcpt missing a field");
    corrupt("rcpt SUCCESS,DELAY", "rcpt SUCCESS,,DELAY", "bad notify");
    corrupt("ret HDRS", "ret NONE", "bad ret");
    corrupt("body 8BITMIME", "body BINARYMIME", "bad body");
    corrupt("smtputf8\n", "smtputf8 yes\n", "smtputf8 with value");
    corrupt("helo client.example\n", "helo client.example\nhelo again\n", "duplicate key");
    corrupt("size 0000", "size 000", "short size field");
    corrupt("size 0000", "size x000", "non-digit size");
    corrupt("Subject: hi", "Subject: hix", "message longer than size");
    corrupt("Subject: hi", "Subject: h", "message shorter than size (truncated)");
    corrupt("\n\nReceived", "\nReceived", "no empty line");
    corrupt("sender alice", "sender al\rice", "CR in envelope");
    corrupt("smtputf8\n", "smtputf8\nnotice dsn\n", "notice without an ID");
    corrupt("smtputf8\n", "smtputf8\nnotice bounce 0660C36F14A92D0000\n", "unknown notice kind");
    corrupt("smtputf8\n", "smtputf8\nnotice dsn 0660C36F14A92D00\n", "notice with a short ID");

    /* no recipients at all */
    qfile_id_init(&g, 0);
    sample(&e, &g);
    e.size = strlen(msg);
    b = image(&e);
    {
        char *r0 = strstr(b.data, "rcpt ");
        char *end = strstr(b.data, "size ");
        memmove(r0, end, b.len - (size_t)(end - b.data));
        b.len -= (size_t)(end - r0);
        is_int(qfile_parse(b.data, b.len, b.len, &p, &err), -1, "corrupt: no recipients");
        free(err);
    }
    buf_free(&b);

    /* truncation at every length: never accepted, never crashes */
    b = image(&e);
    int bad = 0;
    for (size_t n = 0; n < b.len; n++) {
        int rc = qfile_parse(b.data, n, n, &p, &err);
        if (rc == 0) {
            bad++;
            qfile_env_free(&p);
        }
        if (rc == -1)
            free(err);
        err = NULL;
    }
    is_int(bad, 0, "no truncated image is accepted");
    /* a partial read of a longer file asks for more */
    is_int(qfile_parse(b.data, 20, b.len, &p, &err), 1, "partial read: need more");
    buf_free(&b);
}

int main(void)
{
    plan_lazy();
    t_ids();
    t_roundtrip();
    t_corrupt();
    return done_testing();
}
