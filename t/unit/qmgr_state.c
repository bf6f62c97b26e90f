/*
 * qmgr_state - unit tests of qmgr's state records (qmgr/qrec.c: encode,
 * decode, malformed records refused without changing anything) and of
 * the Berkeley DB environment (qmgr/qstate.c: committed records survive
 * a close and reopen with recovery, aborted ones do not, deletes, a
 * broken environment is started anew).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../qmgr/decide.h"
#include "../../qmgr/qrec.h"
#include "../../qmgr/qstate.h"
#include "mail/dlv_proto.h"
#include "tap.h"
#include "base/util.h"

#define S(x) ((char *)(uintptr_t)(x))

struct seen {
    int n;
    char keys[8][64];
    size_t lens[8];
};

static void walk_fn(const char *key, const void *val, size_t len, void *arg)
{
    struct seen *s = arg;

    if (s->n < 8) {
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
        s->lens[s->n] = len;
    }
    s->n++;
}

static void free_rcpts(struct rcpt *r, size_t n)
{
    qrec_rcpt_clear(r, n);
}

/* A version 1 record (before notices), as older qmgr wrote it. */
static void encode_v1(struct ipc_w *w, const struct rcpt *r, size_t n)
{
    ipc_w_u8(w, 1);
    ipc_w_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        ipc_w_u8(w, r[i].state);
        ipc_w_u16(w, r[i].direct_attempts);
        ipc_w_u16(w, r[i].relay_attempts);
        ipc_w_i64(w, r[i].next_try_us);
        ipc_w_i64(w, r[i].first_fail_us);
        ipc_w_u8(w, r[i].last_class);
        ipc_w_u8(w, r[i].last_step);
        ipc_w_u16(w, r[i].last_code);
        ipc_w_str(w, r[i].last_text);
    }
}

int main(void)
{
    struct rcpt in[3], out[3];
    struct ipc_w w;

    plan_lazy();
    memset(in, 0, sizeof(in));
    memset(out, 0, sizeof(out));
    in[0].state = RS_SENT;
    in[0].direct_attempts = 1;
    in[1].state = RS_DEFERRED;
    in[1].direct_attempts = 3;
    in[1].relay_attempts = 2;
    in[1].next_try_us = 1700000123456789LL;
    in[1].first_fail_us = 1700000000000001LL;
    in[1].last_class = DLV_CLASS_SMTP;
    in[1].last_step = DLV_STEP_RCPT;
    in[1].last_code = 451;
    in[1].last_text = S("451 4.3.0 try later");
    in[2].state = RS_FAILED;
    in[2].last_class = DLV_CLASS_DNS;
    in[2].last_step = DLV_STEP_DNS;
    in[2].last_text = S("NXDOMAIN");
    in[2].notes = QN_WANT_FAILURE | QN_SENT_DELAY | QN_PENDING;
    in[2].last_try_us = 1700000222000000LL;
    in[2].status = S("5.1.2");
    in[2].remote = S("mx.example.org[192.0.2.7]:25");

    struct qrec_head hin = {"0660C36F14A92D1000", 1700000333000000LL, S("3 of 3 failed"),
                            1700000444000000LL},
                     hout = {"", 0, NULL, 0};
    ipc_w_init(&w);
    qrec_msg_encode(&w, &hin, in, 3);
    is_int(qrec_msg_count(w.p, w.len), 3, "the record says it has 3 recipients");
    is_int(qrec_msg_decode(w.p, w.len, &hout, out, 3), 0, "message record round trip");
    is_str(hout.notice, "0660C36F14A92D1000", "head: the notice being written");
    is_int(hout.moved_us, 1700000333000000LL, "head: moved");
    is_str(hout.reason, "3 of 3 failed", "head: reason");
    is_int(hout.requeued_us, 1700000444000000LL, "head: requeued");
    is_int(out[2].notes, QN_WANT_FAILURE | QN_SENT_DELAY | QN_PENDING, "rcpt 2 notes");
    is_int(out[2].last_try_us, 1700000222000000LL, "rcpt 2 last attempt");
    is_str(out[2].status, "5.1.2", "rcpt 2 status");
    is_str(out[2].remote, "mx.example.org[192.0.2.7]:25", "rcpt 2 remote");
    ok(out[0].status == NULL && out[0].remote == NULL, "rcpt 0 has no status or remote");
    is_int(out[0].state, RS_SENT, "rcpt 0 state");
    ok(out[0].last_text == NULL, "rcpt 0 has no error");
    is_int(out[1].state, RS_DEFERRED, "rcpt 1 state");
    is_int(out[1].direct_attempts, 3, "rcpt 1 direct attempts");
    is_int(out[1].relay_attempts, 2, "rcpt 1 relay attempts");
    is_int(out[1].next_try_us, 1700000123456789LL, "rcpt 1 next try");
    is_int(out[1].first_fail_us, 1700000000000001LL, "rcpt 1 first failure");
    is_int(out[1].last_class, DLV_CLASS_SMTP, "rcpt 1 class");
    is_int(out[1].last_step, DLV_STEP_RCPT, "rcpt 1 step");
    is_int(out[1].last_code, 451, "rcpt 1 code");
    is_str(out[1].last_text, "451 4.3.0 try later", "rcpt 1 text");
    is_int(out[2].state, RS_FAILED, "rcpt 2 state");
    is_str(out[2].last_text, "NXDOMAIN", "rcpt 2 text");

    /* malformed records change nothing */
    is_int(qrec_msg_decode(w.p, w.len, NULL, out, 2), -1, "recipient count differs from the file");
    is_int(qrec_msg_decode(w.p, w.len - 1, NULL, out, 3), -1, "truncated record");
    size_t accepted = 0;
    for (size_t cut = 0; cut < w.len; cut++)
        if (qrec_msg_decode(w.p, cut, NULL, out, 3) != -1)
            accepted++;
    is_int(accepted, 0, "no prefix of a record is accepted");
    is_int(out[1].direct_attempts, 3, "state unchanged by the rejected records");
    struct ipc_w w2;
    ipc_w_init(&w2);
    ipc_w_bytes(&w2, w.p, w.len); /* a different layout altogether */
    is_int(qrec_msg_decode(w2.p, w2.len, NULL, out, 3), -1, "garbage refused");
    w2.len = 0;
    ipc_w_u8(&w2, 9);
    is_int(qrec_msg_decode(w2.p, w2.len, NULL, out, 0), -1, "unknown version refused");
    is_int(qrec_msg_count(w2.p, w2.len), -1, "unknown version: no count");
    uint8_t *bad = xmalloc(w.len + 1);
    memcpy(bad, w.p, w.len);
    bad[w.len] = 0;
    is_int(qrec_msg_decode(bad, w.len + 1, NULL, out, 3), -1, "trailing byte refused");
    bad[5 + 4 + 18 + 1 + 8 + 4 + 13 + 1 + 8] = 7; /* first recipient's state */
    is_int(qrec_msg_decode(bad, w.len, NULL, out, 3), -1, "state out of range refused");
    memcpy(bad, w.p, w.len);
    bad[5 + 4] = 'x'; /* the notice ID */
    is_int(qrec_msg_decode(bad, w.len, NULL, out, 3), -1, "a malformed notice ID refused");
    free(bad);
    is_str(hout.reason, "3 of 3 failed", "head unchanged by the rejected records");

    /* a version 1 record still reads, with no notes */
    w2.len = 0;
    encode_v1(&w2, in, 3);
    is_int(qrec_msg_decode(w2.p, w2.len, &hout, out, 3), 0, "version 1 record decodes");
    is_int(out[1].direct_attempts, 3, "v1: attempts");
    is_str(out[1].last_text, "451 4.3.0 try later", "v1: text");
    is_int(out[2].notes, 0, "v1: no notes");
    ok(out[2].status == NULL && out[2].last_try_us == 0, "v1: no status, no last attempt");
    is_str(hout.notice, "", "v1: no notice in the head");
    ok(hout.reason == NULL, "v1: no reason");

    /* a record with no recipients: a corrupt file in bad/ */
    struct qrec_head hb = {"", 1700000555000000LL, S("corrupt queue file: line 3"), 0};
    w2.len = 0;
    qrec_msg_encode(&w2, &hb, NULL, 0);
    is_int(qrec_msg_count(w2.p, w2.len), 0, "a bad/ record has no recipients");
    is_int(qrec_msg_decode(w2.p, w2.len, &hout, NULL, 0), 0, "and decodes with none");
    is_str(hout.reason, "corrupt queue file: line 3", "its reason");
    qrec_head_clear(&hout);

    /* host record */
    struct hstate h = {1700000000000000LL, 4, 1700000300000000LL, S("connect: refused")}, h2;
    memset(&h2, 0, sizeof(h2));
    w2.len = 0;
    qrec_host_encode(&w2, &h);
    is_int(qrec_host_decode(w2.p, w2.len, &h2), 0, "host record round trip");
    is_int(h2.consecutive, 4, "consecutive failures");
    is_int(h2.down_until_us, 1700000300000000LL, "down until");
    is_str(h2.last_error, "connect: refused", "last error");
    is_int(qrec_host_decode(w2.p, w2.len - 2, &h2), -1, "truncated host record refused");
    free(h2.last_error);
    char *t = qrec_text("a\r\nb\tc");
    is_str(t, "a  b c", "control characters blanked in stored text");
    free(t);
    {
        char longt[QREC_TEXT_MAX + 8];
        memset(longt, 'x', QREC_TEXT_MAX - 1);
        memcpy(longt + QREC_TEXT_MAX - 1, "\xc3\xa9yz",
               5); /* a 2-byte character across the limit */
        t = qrec_text(longt);
        is_int((long long)strlen(t), QREC_TEXT_MAX - 1,
               "a long text is cut before the character that does not fit");
        free(t);
        memcpy(longt + QREC_TEXT_MAX - 2, "\xc3\xa9yz", 5); /* it fits exactly */
        t = qrec_text(longt);
        is_int((long long)strlen(t), QREC_TEXT_MAX, "a character that fits is kept");
        free(t);
    }

    /* qstate: commit, reopen (with recovery), walk, delete, abort */
    char dir[] = "/tmp/qmgr-state-XXXXXX";
    char *err = NULL;
    ok(mkdtemp(dir) != NULL, "temp dir");
    char *home = xasprintf("%s/db", dir);
    struct qstate *qs = qstate_open(home, &err);
    ok(qs != NULL, "environment created");
    is_int(qstate_begin(qs, &err), 0, "begin");
    is_int(qstate_put(qs, 0, "0660C38CD7C4710000", w.p, w.len, &err), 0, "put message record");
    is_int(qstate_put(qs, 0, "0660C38CD7C4710001", w.p, w.len, &err), 0, "put another");
    is_int(qstate_put(qs, 1, "h:example.test", w2.p, w2.len, &err), 0, "put host record");
    is_int(qstate_commit(qs, &err), 0, "commit");
    is_int(qstate_begin(qs, &err), 0, "begin a transaction to abort");
    qstate_put(qs, 0, "0660C38CD7C4710002", w.p, w.len, &err);
    qstate_abort(qs);
    is_int(qstate_sync(qs), 0, "log flush");
    qstate_close(qs);

    qs = qstate_open(home, &err);
    ok(qs != NULL, "reopened with recovery");
    struct seen s;
    memset(&s, 0, sizeof(s));
    is_int(qstate_walk(qs, 0, walk_fn, &s, &err), 2, "two message records after reopen");
    is_str(s.keys[0], "0660C38CD7C4710000", "first key");
    is_int(s.lens[0], w.len, "its value length");
    is_str(s.keys[1], "0660C38CD7C4710001", "second key (the aborted one is not there)");
    memset(&s, 0, sizeof(s));
    is_int(qstate_walk(qs, 1, walk_fn, &s, &err), 1, "one host record");
    is_str(s.keys[0], "h:example.test", "host key");
    qstate_begin(qs, &err);
    is_int(qstate_del(qs, 0, "0660C38CD7C4710000", &err), 0, "delete");
    is_int(qstate_del(qs, 0, "0660C38CD7C47100FF", &err), 0, "deleting a missing key is fine");
    qstate_commit(qs, &err);
    memset(&s, 0, sizeof(s));
    is_int(qstate_walk(qs, 0, walk_fn, &s, &err), 1, "one record after the delete");
    qstate_close(qs);

    /* a broken environment: a database file full of garbage */
    char *f = xasprintf("%s/msgs.db", home);
    FILE *fp = fopen(f, "w");
    fputs("this is not a Berkeley DB file, not at all, not even close", fp);
    fclose(fp);
    qs = qstate_open(home, &err);
    ok(qs != NULL, "a corrupt database is started anew instead of failing");
    if (qs) {
        memset(&s, 0, sizeof(s));
        is_int(qstate_walk(qs, 0, walk_fn, &s, &err), 0, "... empty");
        qstate_close(qs);
    }
    free(f);
    char *cmd = xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    free(cmd);
    free(home);
    ipc_w_free(&w);
    ipc_w_free(&w2);
    free_rcpts(out, 3);
    return done_testing();
}
