/*
 * Tests for common/mail/dlv_proto: requests and results survive encode/decode
 * with every field, names of statuses/classes/steps, and the decoders
 * refuse malformed bodies: every truncation, trailing bytes, bad enums,
 * counts over the limits, HOSTS without hosts, empty host names, no
 * recipients.
 */
#include <stdlib.h>
#include <string.h>

#include "mail/dlv_proto.h"
#include "base/ipc.h"
#include "tap.h"
#include "base/util.h"

static char ovr0[] = "mx.example.test", ovr1[] = "[::1]:2525";
static char *ovr[] = {ovr0, ovr1, NULL};

/* Strings of the sample request (the decoder must copy them). */
static char S0[] = "4Qx1yZ";
static char S1[] = "a@example.org";
static char S2[] = "env-1";
static char S3[] = "example.test";
static char S4[] = "gw1.test";
static char S5[] = "gw1";
static char S6[] = "user";
static char S7[] = "secret";
static char S8[] = "127.0.0.5";
static char S9[] = "";
static char S10[] = "";
static char S11[] = "";
static char S12[] = "b@example.test";
static char S13[] = "rfc822;b@example.test";
static char S14[] = "c@example.test";
static char S15[] = "";
static char S16[] = "direct:example.test";

static void sample_req(struct dlv_req *q, struct dlv_host *hosts, struct dlv_rcpt *rc)
{
    memset(q, 0, sizeof(*q));
    q->id = 77;
    q->queue_id = S0;
    q->msg_offset = 123;
    q->msg_size = (uint64_t)5 << 32; /* over 4 GB: all 64 bits travel */
    q->sender = S1;
    q->envid = S2;
    q->ret = 2;
    q->need = DLV_NEED_8BITMIME | DLV_NEED_SMTPUTF8;
    q->domain = S3;
    q->phase = DLV_PHASE_RELAY;
    q->attempt = 3;
    q->target = DLV_TARGET_HOSTS;
    q->tls = TLS_MODE_VERIFY;
    q->port = 2525;
    q->mx_override = ovr;
    hosts[0] = (struct dlv_host){S4, 587, TLS_MODE_ENCRYPT, S5, S6, S7, 1};
    hosts[1] = (struct dlv_host){S8, 0, TLS_MODE_NONE, S9, S10, S11, 0};
    q->hosts = hosts;
    q->nhosts = 2;
    rc[0] = (struct dlv_rcpt){4, S12, S13, 6};
    rc[1] = (struct dlv_rcpt){9, S14, S15, 0};
    q->rcpts = rc;
    q->nrcpts = 2;
    q->dest_key = S16;
    q->max_per_conn = 5;
    q->idle_timeout_s = 10;
    q->connection_delay_ms = 2500;
    q->dkim = 1;
    q->mta_sts = 1;
}

static void test_req_roundtrip(void)
{
    struct dlv_req q, d;
    struct dlv_host hosts[2];
    struct dlv_rcpt rc[2];
    struct ipc_w w;

    sample_req(&q, hosts, rc);
    ipc_w_init(&w);
    dlv_req_encode(&w, &q);
    ok(dlv_req_decode(w.p, w.len, &d) == 0, "request decodes");
    is_int(d.id, 77, "id");
    is_str(d.queue_id, "4Qx1yZ", "queue id");
    is_int(d.msg_offset, 123, "offset");
    ok(d.msg_size == (uint64_t)5 << 32, "size keeps 64 bits");
    is_str(d.sender, "a@example.org", "sender");
    is_str(d.envid, "env-1", "envid");
    is_int(d.ret, 2, "ret");
    is_int(d.need, DLV_NEED_8BITMIME | DLV_NEED_SMTPUTF8, "need");
    is_str(d.domain, "example.test", "domain");
    is_int(d.phase, DLV_PHASE_RELAY, "phase");
    is_int(d.attempt, 3, "attempt");
    is_int(d.target, DLV_TARGET_HOSTS, "target");
    is_int(d.tls, TLS_MODE_VERIFY, "tls");
    is_int(d.port, 2525, "port");
    ok(d.mx_override && d.mx_override[0] && d.mx_override[1] && !d.mx_override[2],
       "two override entries, NULL-terminated");
    if (d.mx_override && d.mx_override[0] && d.mx_override[1]) {
        is_str(d.mx_override[0], "mx.example.test", "override 0");
        is_str(d.mx_override[1], "[::1]:2525", "override 1");
    }
    is_int(d.nhosts, 2, "two hosts");
    is_str(d.hosts[0].name, "gw1.test", "host name");
    is_int(d.hosts[0].port, 587, "host port");
    is_int(d.hosts[0].tls, TLS_MODE_ENCRYPT, "host tls");
    is_str(d.hosts[0].label, "gw1", "host label");
    is_str(d.hosts[0].auth_user, "", "credentials are not on the wire: no user decoded");
    is_str(d.hosts[0].auth_pass, "", "no password decoded");
    ok(memmem(w.p, w.len, "secret", 6) == NULL && memmem(w.p, w.len, "user", 4) == NULL,
       "the encoded request holds neither the password nor the user name");
    is_int(d.hosts[0].auth_plaintext_ok, 1, "plaintext ok");
    is_str(d.hosts[1].name, "127.0.0.5", "second host");
    is_int(d.hosts[1].port, 0, "second host: default port");
    is_int(d.nrcpts, 2, "two recipients");
    is_int(d.rcpts[0].idx, 4, "rcpt idx");
    is_str(d.rcpts[0].addr, "b@example.test", "rcpt addr");
    is_str(d.rcpts[0].orcpt, "rfc822;b@example.test", "orcpt");
    is_int(d.rcpts[0].notify, 6, "notify");
    is_int(d.rcpts[1].idx, 9, "second rcpt idx");
    is_str(d.rcpts[1].orcpt, "", "empty orcpt");
    is_str(d.dest_key, "direct:example.test", "dest key");
    is_int(d.max_per_conn, 5, "max per conn");
    is_int(d.idle_timeout_s, 10, "idle timeout");
    is_int(d.connection_delay_ms, 2500, "connection delay");
    is_int(d.dkim, 1, "DKIM asked");
    is_int(d.mta_sts, 1, "MTA-STS asked");
    dlv_req_free(&d);
    ok(d.queue_id == NULL && d.hosts == NULL, "free clears the structure");

    /* an MX request without hosts or overrides */
    q.target = DLV_TARGET_MX;
    q.nhosts = 0;
    q.mx_override = NULL;
    ipc_w_free(&w);
    ipc_w_init(&w);
    dlv_req_encode(&w, &q);
    ok(dlv_req_decode(w.p, w.len, &d) == 0, "MX request without hosts decodes");
    ok(d.mx_override && d.mx_override[0] == NULL, "no override: empty list");
    is_int(d.nhosts, 0, "no hosts");
    dlv_req_free(&d);
    ipc_w_free(&w);
}

/* Encode q, then check every strict prefix and a trailing byte fail. */
static void test_req_truncations(void)
{
    struct dlv_req q, d;
    struct dlv_host hosts[2];
    struct dlv_rcpt rc[2];
    struct ipc_w w;
    size_t bad = 0;
    uint8_t *longer;

    sample_req(&q, hosts, rc);
    ipc_w_init(&w);
    dlv_req_encode(&w, &q);
    for (size_t n = 0; n < w.len; n++)
        if (dlv_req_decode(w.p, n, &d) == 0) {
            bad++;
            dlv_req_free(&d);
        }
    is_int(bad, 0, "no truncation of a request decodes (%zu tried)", w.len);
    longer = xmalloc(w.len + 1);
    memcpy(longer, w.p, w.len);
    longer[w.len] = 0;
    ok(dlv_req_decode(longer, w.len + 1, &d) < 0, "trailing byte refused");
    free(longer);
    ipc_w_free(&w);
}

static int decodes(const struct dlv_req *q)
{
    struct ipc_w w;
    struct dlv_req d;
    int rc;

    ipc_w_init(&w);
    dlv_req_encode(&w, q);
    rc = dlv_req_decode(w.p, w.len, &d);
    if (rc == 0)
        dlv_req_free(&d);
    ipc_w_free(&w);
    return rc == 0;
}

static void test_req_bad_values(void)
{
    struct dlv_req q;
    struct dlv_host hosts[2];
    struct dlv_rcpt rc[2];

    sample_req(&q, hosts, rc);
    ok(decodes(&q), "sample decodes");
    q.target = DLV_TARGET_LOCAL;
    ok(decodes(&q), "a local delivery target decodes");
    q.target = DLV_TARGET_LOCAL + 1;
    ok(!decodes(&q), "unknown target refused");
    sample_req(&q, hosts, rc);
    q.tls = TLS_MODE_DANE_ONLY;
    hosts[0].tls = TLS_MODE_DANE;
    ok(decodes(&q), "tls modes dane and dane-only decode");
    sample_req(&q, hosts, rc);
    q.tls = TLS_MODE_LAST + 1;
    ok(!decodes(&q), "unknown tls mode refused");
    sample_req(&q, hosts, rc);
    q.mta_sts = 2;
    ok(!decodes(&q), "mta_sts other than 0 or 1 refused");
    sample_req(&q, hosts, rc);
    q.phase = 2;
    ok(!decodes(&q), "unknown phase refused");
    sample_req(&q, hosts, rc);
    hosts[1].tls = 9;
    ok(!decodes(&q), "unknown host tls mode refused");
    sample_req(&q, hosts, rc);
    hosts[0].name = (char[]){""};
    ok(!decodes(&q), "empty host name refused");
    sample_req(&q, hosts, rc);
    q.nhosts = 0;
    ok(!decodes(&q), "HOSTS target without hosts refused");
    sample_req(&q, hosts, rc);
    q.nrcpts = 0;
    ok(!decodes(&q), "no recipients refused");
}

/* Hand-made bodies with counts over the limits: refused before allocating. */
static void test_req_limits(void)
{
    struct ipc_w w;
    struct dlv_req d;

    ipc_w_init(&w);
    ipc_w_u32(&w, 1);
    ipc_w_str(&w, "Q");
    ipc_w_u64(&w, 0);
    ipc_w_u64(&w, 10);
    ipc_w_str(&w, "");
    ipc_w_str(&w, "");
    ipc_w_u8(&w, 0);
    ipc_w_u32(&w, 0);
    ipc_w_str(&w, "d.test");
    ipc_w_u8(&w, 0);
    ipc_w_u32(&w, 1);
    ipc_w_u8(&w, 0);
    ipc_w_u8(&w, 1);
    ipc_w_u16(&w, 25);
    ipc_w_u32(&w, 0xffffffffu); /* override count */
    ok(dlv_req_decode(w.p, w.len, &d) < 0, "huge override count refused");
    ipc_w_free(&w);
}

static void test_res(void)
{
    struct dlv_rcpt_res rr[2] = {
        {4, DLV_OK, DLV_CLASS_NONE, DLV_STEP_DOT, 250, (char[]){"2.0.0"}, (char[]){"ok queued"}},
        {9, DLV_PERM, DLV_CLASS_SMTP, DLV_STEP_RCPT, 550, (char[]){"5.1.1"}, (char[]){"no user"}},
    };
    struct dlv_res r = {77,
                        (char[]){"mx1.test[127.0.0.11]:25"},
                        (char[]){"gw"},
                        1,
                        1,
                        2,
                        1,
                        123456789012ull,
                        rr,
                        2,
                        1,
                        1,
                        (char[]){"TLSv1.3"},
                        (char[]){"TLS_AES_256_GCM_SHA384"},
                        (char[]){"signed d=example.org s=s1"},
                        NULL,
                        NULL,
                        0};
    struct dlv_tls_out to[2] = {
        {(char[]){"tlsa"}, (char[]){"mx1.test"}, (char[]){""}, (char[]){"3 1 1 00ff"},
         (char[]){"mx1.test"}, (char[]){"tlsa-invalid"}, (char[]){"no record matched"}},
        {(char[]){"sts"}, (char[]){"example.test"}, (char[]){"id1"},
         (char[]){"mode: enforce; mx: mx2.test; max_age: 86400"}, (char[]){"mx2.test"},
         (char[]){"success"}, (char[]){""}},
    };
    struct dlv_tls_out many[DLV_MAX_TLS_OUT + 1];
    struct dlv_res d;
    struct ipc_w w;
    size_t bad = 0;

    r.tls_policy = (char[]){"mta-sts"};
    r.tls_out = to;
    r.ntls_out = 2;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    ok(dlv_res_decode(w.p, w.len, &d) == 0, "result decodes");
    is_int(d.id, 77, "id");
    is_str(d.relay, "mx1.test[127.0.0.11]:25", "relay");
    is_str(d.label, "gw", "label");
    is_int(d.host_index, 1, "host index");
    is_int(d.tls_used, 1, "tls used");
    is_int(d.connections, 2, "connections");
    is_int(d.reused, 1, "reused");
    ok(d.duration_us == 123456789012ull, "duration");
    is_int(d.n, 2, "two recipient results");
    is_int(d.r[1].idx, 9, "idx");
    is_int(d.r[1].status, DLV_PERM, "status");
    is_int(d.r[1].cls, DLV_CLASS_SMTP, "class");
    is_int(d.r[1].step, DLV_STEP_RCPT, "step");
    is_int(d.r[1].code, 550, "code");
    is_str(d.r[1].dsn, "5.1.1", "dsn");
    is_str(d.r[1].text, "no user", "text");
    is_int(d.conn_kept, 1, "connection kept");
    is_int(d.dsn_passed, 1, "dsn passed");
    is_str(d.tls_version, "TLSv1.3", "TLS protocol");
    is_str(d.tls_cipher, "TLS_AES_256_GCM_SHA384", "TLS cipher");
    is_str(d.dkim, "signed d=example.org s=s1", "DKIM note");
    is_str(d.tls_policy, "mta-sts", "TLS policy");
    if (is_int(d.ntls_out, 2, "two TLS outcomes")) {
        is_str(d.tls_out[0].policy_type, "tlsa", "outcome: policy type");
        is_str(d.tls_out[0].policy_domain, "mx1.test", "outcome: policy domain");
        is_str(d.tls_out[0].policy_string, "3 1 1 00ff", "outcome: policy string");
        is_str(d.tls_out[0].result, "tlsa-invalid", "outcome: result");
        is_str(d.tls_out[0].reason, "no record matched", "outcome: reason");
        is_str(d.tls_out[1].policy_id, "id1", "outcome: policy id");
        is_str(d.tls_out[1].mx_host, "mx2.test", "outcome: MX host");
        is_str(d.tls_out[1].result, "success", "outcome: success");
    }
    dlv_res_free(&d);
    for (size_t n = 0; n < w.len; n++)
        if (dlv_res_decode(w.p, n, &d) == 0) {
            bad++;
            dlv_res_free(&d);
        }
    is_int(bad, 0, "no truncation of a result decodes");
    ipc_w_free(&w);

    for (size_t i = 0; i < nitems(many); i++)
        many[i] = to[1];
    r.tls_out = many;
    r.ntls_out = DLV_MAX_TLS_OUT;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    ok(dlv_res_decode(w.p, w.len, &d) == 0, "DLV_MAX_TLS_OUT outcomes decode");
    dlv_res_free(&d);
    ipc_w_free(&w);
    r.ntls_out = DLV_MAX_TLS_OUT + 1;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    ok(dlv_res_decode(w.p, w.len, &d) < 0, "more outcomes than DLV_MAX_TLS_OUT refused");
    ipc_w_free(&w);
    r.tls_out = NULL;
    r.ntls_out = 0;

    r.host_index = -1;
    r.n = 0;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    ok(dlv_res_decode(w.p, w.len, &d) == 0, "result without recipients decodes");
    is_int(d.host_index, -1, "host index -1 survives");
    is_int(d.n, 0, "no recipients");
    dlv_res_free(&d);
    ipc_w_free(&w);

    r.conn_kept = 2;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    ok(dlv_res_decode(w.p, w.len, &d) < 0, "conn_kept other than 0 or 1 refused");
    ipc_w_free(&w);
    r.conn_kept = 0;
    r.dsn_passed = 2;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    ok(dlv_res_decode(w.p, w.len, &d) < 0, "dsn_passed other than 0 or 1 refused");
    ipc_w_free(&w);
    r.dsn_passed = 0;

    r.n = 2;
    rr[0].status = 3;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    ok(dlv_res_decode(w.p, w.len, &d) < 0, "bad status refused");
    ipc_w_free(&w);
    rr[0].status = DLV_OK;
    rr[0].cls = DLV_CLASS_MAILBOX + 1;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    ok(dlv_res_decode(w.p, w.len, &d) < 0, "bad class refused");
    ipc_w_free(&w);
    rr[0].cls = DLV_CLASS_NONE;
    rr[0].step = DLV_STEP_DOT + 1;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    ok(dlv_res_decode(w.p, w.len, &d) < 0, "bad step refused");
    ipc_w_free(&w);
}

static void test_names(void)
{
    is_str(dlv_status_name(DLV_OK), "sent", "sent");
    is_str(dlv_status_name(DLV_TEMP), "deferred", "deferred");
    is_str(dlv_status_name(DLV_PERM), "failed", "failed");
    is_str(dlv_status_name((enum dlv_status)7), "?", "unknown status");
    is_str(dlv_class_name(DLV_CLASS_NETWORK), "network", "network");
    is_str(dlv_class_name(DLV_CLASS_MAILBOX), "mailbox", "mailbox (local delivery)");
    is_str(dlv_class_name(DLV_CLASS_LOCAL), "local", "local");
    is_str(dlv_step_name(DLV_STEP_STARTTLS), "starttls", "starttls");
    is_str(dlv_step_name(DLV_STEP_DOT), "dot", "dot");
    is_str(tls_mode_name(TLS_MODE_ENCRYPT), "encrypt", "encrypt");
    is_str(dlv_phase_name(DLV_PHASE_RELAY), "relay", "relay");
    is_str(dlv_phase_name(DLV_PHASE_DIRECT), "direct", "direct");
    is_int(dlv_class_parse("smtp"), DLV_CLASS_SMTP, "parse smtp");
    is_int(dlv_class_parse("bogus"), -1, "parse unknown");
}

/* dlv_blame over every status and class: only a temporary local result
 * is ours; any permanent result, and every other temporary class, is
 * the destination's. */
static void test_blame(void)
{
    static const struct {
        int status, cls, want;
    } t[] = {
        {DLV_OK, DLV_CLASS_NONE, DLV_BLAME_NONE},      {DLV_OK, DLV_CLASS_LOCAL, DLV_BLAME_NONE},
        {DLV_TEMP, DLV_CLASS_LOCAL, DLV_BLAME_LOCAL},  {DLV_TEMP, DLV_CLASS_DNS, DLV_BLAME_DEST},
        {DLV_TEMP, DLV_CLASS_NETWORK, DLV_BLAME_DEST}, {DLV_TEMP, DLV_CLASS_TLS, DLV_BLAME_DEST},
        {DLV_TEMP, DLV_CLASS_SMTP, DLV_BLAME_DEST},    {DLV_TEMP, DLV_CLASS_AUTH, DLV_BLAME_DEST},
        {DLV_TEMP, DLV_CLASS_NONE, DLV_BLAME_DEST},    {DLV_PERM, DLV_CLASS_LOCAL, DLV_BLAME_DEST},
        {DLV_PERM, DLV_CLASS_SMTP, DLV_BLAME_DEST},    {DLV_PERM, DLV_CLASS_DNS, DLV_BLAME_DEST},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        is_int(dlv_blame((unsigned)t[i].status, (unsigned)t[i].cls), t[i].want, "blame of %s/%s",
               dlv_status_name((enum dlv_status)t[i].status),
               dlv_class_name((enum dlv_class)t[i].cls));
}

int main(void)
{
    plan_lazy();
    test_blame();
    test_req_roundtrip();
    test_req_truncations();
    test_req_bad_values();
    test_req_limits();
    test_res();
    test_names();
    return done_testing();
}
