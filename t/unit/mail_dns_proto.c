/*
 * Unit tests for common/mail/dns_proto: result building, the IPC bodies
 * (round trips, every truncation and bad field rejected), address text,
 * shuffling inside groups, and the asynchronous client over a socketpair.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mail/dns_proto.h"
#include "mail/proto.h"
#include "tap.h"
#include "base/util.h"

/* the request flags and TLSA port the decoders return (not checked here) */
static unsigned qflags;
static uint16_t qport;

static void sample(struct dns_result *r)
{
    struct sockaddr_storage ss;
    struct dns_host *h;

    dns_result_init(r, "example.test");
    r->flags = DNS_R_IMPLICIT;
    h = dns_result_add_host(r, "mx1.example.test", 10, 0);
    dns_parse_addr("192.0.2.1", &ss);
    dns_host_add_addr(h, (struct sockaddr *)&ss);
    dns_parse_addr("2001:db8::1", &ss);
    dns_host_add_addr(h, (struct sockaddr *)&ss);
    dns_host_add_addr(h, (struct sockaddr *)&ss); /* duplicate ignored */
    h = dns_result_add_host(r, "mx2.example.test", 20, 2525);
    dns_host_set_err(h, DNS_TEMP, "timeout");
    h = dns_result_add_host(r, "mx3.example.test", 20, 0);
    dns_result_group(r);
}

static void test_roundtrip(void)
{
    struct dns_result r, back;
    struct ipc_w w;
    char a[64];
    int bad = 0;

    sample(&r);
    is_int(r.hosts[0].naddrs, 2, "duplicate address not added twice");
    ok(r.hosts[1].group == r.hosts[2].group && r.hosts[0].group != r.hosts[1].group,
       "groups follow preferences");
    ipc_w_init(&w);
    dns_rep_encode(&w, &r);
    is_int(dns_rep_decode(w.p, w.len, &back), 0, "reply decodes");
    is_str(back.name, "example.test", "name");
    is_int(back.flags, DNS_R_IMPLICIT, "flags");
    is_int(back.nhosts, 3, "hosts");
    is_str(back.hosts[1].name, "mx2.example.test", "host name");
    is_int(back.hosts[1].port, 2525, "port");
    is_int(back.hosts[1].err, DNS_TEMP, "host class");
    is_str(back.hosts[1].reason, "timeout", "host reason");
    is_str(dns_addr_str(&back.hosts[0].addrs[1], a, sizeof(a)), "2001:db8::1", "IPv6 address");
    dns_result_free(&back);

    /* every truncation is refused */
    for (size_t n = 0; n < w.len; n++) {
        if (dns_rep_decode(w.p, n, &back) == 0)
            bad++;
        dns_result_free(&back);
    }
    is_int(bad, 0, "no truncated reply body decodes");
    /* trailing garbage refused */
    {
        uint8_t *p = xmalloc(w.len + 1);
        memcpy(p, w.p, w.len);
        p[w.len] = 0;
        ok(dns_rep_decode(p, w.len + 1, &back) < 0, "trailing byte refused");
        dns_result_free(&back);
        /* a bad class is refused */
        memcpy(p, w.p, w.len);
        p[0] = 7;
        ok(dns_rep_decode(p, w.len, &back) < 0, "unknown class refused");
        dns_result_free(&back);
        free(p);
    }
    ipc_w_free(&w);

    /* requests */
    {
        const char *ov[] = {"mx.a.test", "[::1]:2525", NULL};
        const char *dom, *got[DNS_MAX_OVERRIDE], *name;
        size_t n = 0;
        ipc_w_init(&w);
        dns_mx_req_encode(&w, "a.test", ov, 0, 0);
        ok(dns_mx_req_decode(w.p, w.len, &dom, got, DNS_MAX_OVERRIDE, &n, &qflags, &qport) == 0 &&
               n == 2,
           "MX request round trip");
        is_str(dom, "a.test", "domain");
        is_str(got[1], "[::1]:2525", "override entry");
        bad = 0;
        for (size_t k = 0; k < w.len; k++)
            if (dns_mx_req_decode(w.p, k, &dom, got, DNS_MAX_OVERRIDE, &n, &qflags, &qport) == 0)
                bad++;
        is_int(bad, 0, "no truncated MX request decodes");
        ipc_w_free(&w);
        ipc_w_init(&w);
        dns_mx_req_encode(&w, "", NULL, 0, 0);
        ok(dns_mx_req_decode(w.p, w.len, &dom, got, DNS_MAX_OVERRIDE, &n, &qflags, &qport) < 0,
           "empty domain refused");
        ipc_w_free(&w);
        ipc_w_init(&w);
        dns_host_req_encode(&w, "h.test", 0, 0);
        ok(dns_host_req_decode(w.p, w.len, &name, &qflags, &qport) == 0 &&
               strcmp(name, "h.test") == 0,
           "host request");
        ipc_w_free(&w);
    }
    dns_result_free(&r);
}

static void test_addr_parse(void)
{
    struct sockaddr_storage ss;

    is_int(dns_parse_addr("192.0.2.1", &ss), 1, "IPv4");
    is_int(dns_parse_addr("192.0.2.1:25", &ss), 1, "IPv4:port");
    is_int(ntohs(((struct sockaddr_in *)&ss)->sin_port), 25, "port set");
    is_int(dns_parse_addr("[2001:db8::1]:587", &ss), 1, "[IPv6]:port");
    is_int(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 587, "IPv6 port");
    is_int(dns_parse_addr("::1", &ss), 1, "bare IPv6");
    is_int(dns_parse_addr("mx.example.test", &ss), 0, "a name is not a literal");
    is_int(dns_parse_addr("192.0.2.1:70000", &ss), -1, "bad port");
    is_int(dns_parse_addr("[::1]x", &ss), 0, "junk after bracket");
    is_int(dns_parse_addr("", &ss), 0, "empty");
}

static uint32_t rnd_fixed(uint32_t n)
{
    return n - 1; /* always the last one: a deterministic permutation */
}

static void test_shuffle(void)
{
    struct dns_result r;
    int ok_groups = 1;

    dns_result_init(&r, "s.test");
    dns_result_add_host(&r, "a", 10, 0);
    dns_result_add_host(&r, "b", 20, 0);
    dns_result_add_host(&r, "c", 20, 0);
    dns_result_add_host(&r, "d", 20, 0);
    dns_result_add_host(&r, "e", 30, 0);
    dns_result_group(&r);
    dns_shuffle(&r, rnd_fixed);
    ok(strcmp(r.hosts[0].name, "a") == 0 && strcmp(r.hosts[4].name, "e") == 0,
       "hosts never leave their group");
    for (size_t i = 1; i < 4; i++)
        if (r.hosts[i].pref != 20)
            ok_groups = 0;
    ok(ok_groups, "the pref-20 group stays together");
    dns_result_free(&r);
}

static int cb_calls;
static struct dns_result cb_last;

static void cb(const struct dns_result *r, void *arg)
{
    cb_calls++;
    dns_result_free(&cb_last);
    dns_result_copy(&cb_last, r);
    *(int *)arg += 1;
}

static void test_client(void)
{
    int sv[2], mine = 0;
    struct event_base *base = event_base_new();
    struct ipc_chan *ch;
    struct ipc_frame f;
    uint8_t *body = NULL;
    int fd = -1;
    uint32_t id, id2;
    struct dns_result r;
    struct ipc_w w;
    const char *dom, *ov[DNS_MAX_OVERRIDE];
    size_t n;

    dns_result_init(&cb_last, "");
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    ch = ipc_chan_new(base, sv[0], "dnsd", NULL, NULL, NULL, NULL);
    id = dnsc_mx(ch, "c.test", NULL, 0, 0, cb, &mine);
    ok(id != 0, "request sent");
    is_int(cb_calls, 0, "callback not called from dnsc_mx");
    event_base_loop(base, EVLOOP_NONBLOCK);
    ok(ipc_recv_blocking(sv[1], &f, &body, &fd, 2000) == 0 && f.type == IMSG_DNS_MX_REQ &&
           f.id == id,
       "dnsd side gets the MX request with its id");
    ok(dns_mx_req_decode(body, f.len, &dom, ov, DNS_MAX_OVERRIDE, &n, &qflags, &qport) == 0 &&
           strcmp(dom, "c.test") == 0,
       "request body decodes");
    free(body);

    /* answer it as dnsd would, and pass it to dnsc_dispatch */
    sample(&r);
    ipc_w_init(&w);
    dns_rep_encode(&w, &r);
    {
        struct ipc_msg m = {IMSG_DNS_REP, id, w.p, w.len, -1};
        struct ipc_msg other = {IMSG_DNS_REP, id + 100, w.p, w.len, -1};
        struct ipc_msg notdns = {IMSG_STATUS_REQ, id, NULL, 0, -1};
        is_int(dnsc_dispatch(ch, &notdns), 0, "other message types are not consumed");
        is_int(dnsc_dispatch(ch, &other), 1, "a reply for an unknown id is consumed");
        is_int(cb_calls, 0, "...without calling anything");
        is_int(dnsc_dispatch(ch, &m), 1, "the reply is consumed");
        is_int(cb_calls, 1, "callback called once");
        is_int(cb_last.nhosts, 3, "with the decoded result");
        is_int(dnsc_dispatch(ch, &m), 1, "a second copy is consumed");
        is_int(cb_calls, 1, "but the callback is not called again");
    }
    ipc_w_free(&w);
    dns_result_free(&r);

    /* channel lost: pending requests fail with DNS_TEMP */
    id = dnsc_host(ch, "h.test", 0, 0, cb, &mine);
    id2 = dnsc_mx(ch, "x.test", NULL, 0, 0, cb, &mine);
    dnsc_cancel(id2);
    is_int(dnsc_pending(), 1, "one pending after a cancel");
    dnsc_chan_lost(ch);
    is_int(cb_calls, 2, "the pending request was failed (the cancelled one not)");
    ok(cb_last.err == DNS_TEMP && strstr(cb_last.reason, "dnsd"), "as temporary: %s",
       cb_last.reason);
    is_int(dnsc_pending(), 0, "nothing pending");
    ok(dnsc_mx(NULL, "x.test", NULL, 0, 0, cb, &mine) == 0, "no channel: request refused");
    (void)id;
    ipc_chan_free(ch);
    close(sv[1]);
    event_base_free(base);
    dns_result_free(&cb_last);
}

static void test_format(void)
{
    struct dns_result r;
    struct buf b;

    sample(&r);
    buf_init(&b);
    dns_result_json(&r, &b);
    ok(strstr(b.data, "\"name\":\"mx1.example.test\",\"pref\":10") != NULL, "JSON host");
    ok(strstr(b.data, "\"addrs\":[\"192.0.2.1\",\"2001:db8::1\"]") != NULL, "JSON addresses");
    ok(strstr(b.data, "\"implicit\":true") != NULL, "JSON flags");
    buf_reset(&b);
    dns_result_format(&r, &b);
    ok(strstr(b.data, "example.test: ok (implicit MX) sec=insecure\n") == b.data, "text header");
    ok(strstr(b.data, "20 mx2.example.test group=1 port=2525 (no address: temporary: timeout)") !=
           NULL,
       "text host without address");
    buf_free(&b);
    dns_result_free(&r);
}

/* A result with DNSSEC status, TLSA records and an MTA-STS policy. */
static void sample_sec(struct dns_result *r)
{
    static const unsigned char d1[32] = {0x01, 0x02, 0xfe};
    static const unsigned char d2[3] = {0xab, 0xcd, 0xef};
    const char *mx[] = {"mx.a.test", "*.b.test"};
    struct sockaddr_storage ss;
    struct dns_host *h;

    dns_result_init(r, "a.test");
    r->sec = DNSSEC_SECURE;
    h = dns_result_add_host(r, "mx.a.test", 10, 0);
    dns_parse_addr("192.0.2.7", &ss);
    dns_host_add_addr(h, (struct sockaddr *)&ss);
    h->sec = DNSSEC_SECURE;
    dns_host_add_tlsa(h, 3, 1, 1, d1, sizeof(d1));
    dns_host_add_tlsa(h, 2, 0, 0, d2, sizeof(d2));
    dns_host_set_tlsa_state(h, DNS_TLSA_FOUND, "");
    h = dns_result_add_host(r, "mx2.a.test", 20, 2525);
    dns_parse_addr("192.0.2.8", &ss);
    dns_host_add_addr(h, (struct sockaddr *)&ss);
    h->sec = DNSSEC_SECURE;
    dns_host_set_tlsa_state(h, DNS_TLSA_FAILED, "TLSA lookup for _2525._tcp.mx2.a.test: SERVFAIL");
    dns_result_set_sts(r, DNS_STS_POLICY, DNS_STS_MODE_ENFORCE, "20260101", 86400, mx, 2, "");
    dns_result_group(r);
}

/* A one-host reply body with the given security fields (for malformed ones). */
struct secbody {
    uint8_t hsec, tlsa_state;
    uint32_t ntlsa;
    size_t tlsa_len;
    uint8_t rsec, sts_state, sts_mode;
    uint32_t nmx;
};

static void enc_sec(struct ipc_w *w, const struct secbody *b)
{
    static unsigned char data[DNS_MAX_TLSA_DATA + 8];

    ipc_w_u32(w, DNS_OK);
    ipc_w_str(w, "");
    ipc_w_str(w, "a.test");
    ipc_w_u32(w, 0);
    ipc_w_u32(w, 1);
    ipc_w_str(w, "mx.a.test");
    ipc_w_u16(w, 10);
    ipc_w_u16(w, 0);
    ipc_w_u16(w, 0);
    ipc_w_u32(w, DNS_OK);
    ipc_w_str(w, "");
    ipc_w_u32(w, 0);
    ipc_w_u8(w, b->hsec);
    ipc_w_u8(w, b->tlsa_state);
    ipc_w_str(w, "");
    ipc_w_u32(w, b->ntlsa);
    for (uint32_t i = 0; i < b->ntlsa; i++) {
        ipc_w_u8(w, 3);
        ipc_w_u8(w, 1);
        ipc_w_u8(w, 1);
        ipc_w_bytes(w, data, b->tlsa_len);
    }
    ipc_w_u8(w, b->rsec);
    ipc_w_u8(w, b->sts_state);
    ipc_w_u8(w, b->sts_mode);
    ipc_w_str(w, "id");
    ipc_w_u32(w, 60);
    ipc_w_str(w, "");
    ipc_w_u32(w, b->nmx);
    for (uint32_t i = 0; i < b->nmx; i++)
        ipc_w_str(w, "mx.a.test");
}

static int dec_sec(const struct secbody *b)
{
    struct ipc_w w;
    struct dns_result r;
    int rc;

    ipc_w_init(&w);
    enc_sec(&w, b);
    rc = dns_rep_decode(w.p, w.len, &r);
    dns_result_free(&r);
    ipc_w_free(&w);
    return rc;
}

static void test_security(void)
{
    struct dns_result r, back, copy;
    struct ipc_w w;
    struct buf b;
    int bad = 0;
    const struct secbody good = {DNSSEC_SECURE,  DNS_TLSA_FOUND,       2, 32, DNSSEC_SECURE,
                                 DNS_STS_POLICY, DNS_STS_MODE_TESTING, 1};
    struct secbody m;

    sample_sec(&r);
    ipc_w_init(&w);
    dns_rep_encode(&w, &r);
    is_int(dns_rep_decode(w.p, w.len, &back), 0, "secure reply decodes");
    is_int(back.sec, DNSSEC_SECURE, "result sec");
    is_int(back.hosts[0].sec, DNSSEC_SECURE, "host sec");
    is_int(back.hosts[0].tlsa_state, DNS_TLSA_FOUND, "tlsa state");
    is_int(back.hosts[0].ntlsa, 2, "two TLSA records");
    ok(back.hosts[0].tlsa[0].usage == 3 && back.hosts[0].tlsa[0].selector == 1 &&
           back.hosts[0].tlsa[0].mtype == 1 && back.hosts[0].tlsa[0].len == 32 &&
           back.hosts[0].tlsa[0].data[2] == 0xfe,
       "first TLSA record");
    ok(back.hosts[0].tlsa[1].usage == 2 && back.hosts[0].tlsa[1].len == 3 &&
           memcmp(back.hosts[0].tlsa[1].data, "\xab\xcd\xef", 3) == 0,
       "second TLSA record");
    is_int(back.hosts[1].tlsa_state, DNS_TLSA_FAILED, "failed state");
    is_str(back.hosts[1].tlsa_reason, "TLSA lookup for _2525._tcp.mx2.a.test: SERVFAIL",
           "failed reason");
    is_int(back.sts.state, DNS_STS_POLICY, "sts state");
    is_int(back.sts.mode, DNS_STS_MODE_ENFORCE, "sts mode");
    is_str(back.sts.id, "20260101", "sts id");
    is_int(back.sts.max_age, 86400, "sts max_age");
    ok(back.sts.nmx == 2 && strcmp(back.sts.mx[1], "*.b.test") == 0, "sts mx patterns");
    dns_result_copy(&copy, &back);
    ok(copy.hosts[0].ntlsa == 2 && copy.hosts[0].tlsa[1].data[0] == 0xab && copy.sec == 1 &&
           copy.sts.nmx == 2,
       "dns_result_copy keeps sec, TLSA and sts");
    dns_result_free(&copy);
    dns_result_free(&back);
    for (size_t n = 0; n < w.len; n++) {
        if (dns_rep_decode(w.p, n, &back) == 0)
            bad++;
        dns_result_free(&back);
    }
    is_int(bad, 0, "no truncated secure reply decodes");
    ipc_w_free(&w);

    is_int(dec_sec(&good), 0, "the hand-made body decodes");
    m = good, m.hsec = 3;
    ok(dec_sec(&m) < 0, "host sec 3 refused");
    m = good, m.rsec = 9;
    ok(dec_sec(&m) < 0, "result sec 9 refused");
    m = good, m.tlsa_state = DNS_TLSA_FAILED + 1;
    ok(dec_sec(&m) < 0, "unknown TLSA state refused");
    m = good, m.ntlsa = DNS_MAX_TLSA + 1;
    ok(dec_sec(&m) < 0, "more than DNS_MAX_TLSA records refused");
    m = good, m.ntlsa = DNS_MAX_TLSA;
    is_int(dec_sec(&m), 0, "DNS_MAX_TLSA records accepted");
    m = good, m.tlsa_len = DNS_MAX_TLSA_DATA + 1;
    ok(dec_sec(&m) < 0, "association data over DNS_MAX_TLSA_DATA refused");
    m = good, m.tlsa_len = DNS_MAX_TLSA_DATA;
    is_int(dec_sec(&m), 0, "DNS_MAX_TLSA_DATA bytes accepted");
    m = good, m.sts_state = DNS_STS_FAILED + 1;
    ok(dec_sec(&m) < 0, "unknown sts state refused");
    m = good, m.sts_mode = DNS_STS_MODE_ENFORCE + 1;
    ok(dec_sec(&m) < 0, "unknown sts mode refused");
    m = good, m.nmx = DNS_MAX_STS_MX + 1;
    ok(dec_sec(&m) < 0, "more than DNS_MAX_STS_MX patterns refused");

    buf_init(&b);
    dns_result_format(&r, &b);
    ok(strstr(b.data, "a.test: ok sec=secure\n") == b.data, "text: result sec");
    ok(strstr(b.data, "10 mx.a.test group=0 192.0.2.7 sec=secure tlsa=found\n") != NULL,
       "text: host sec and tlsa state");
    ok(strstr(b.data, "    TLSA 3 1 1 0102fe00") != NULL, "text: TLSA record in hex");
    ok(strstr(b.data, "    TLSA 2 0 0 abcdef\n") != NULL, "text: second record");
    ok(strstr(b.data, "tlsa=failed (TLSA lookup for _2525._tcp.mx2.a.test: SERVFAIL)") != NULL,
       "text: failed with its reason");
    buf_reset(&b);
    dns_result_json(&r, &b);
    ok(strstr(b.data, "\"override\":false,\"sec\":\"secure\"") != NULL, "JSON: result sec");
    ok(strstr(b.data,
              "\"sec\":\"secure\",\"tlsa_state\":\"found\",\"tlsa_reason\":\"\","
              "\"tlsa\":[{\"usage\":3,\"selector\":1,\"mtype\":1,\"data\":\"0102fe00") != NULL,
       "JSON: host sec and TLSA records");
    ok(strstr(b.data, "{\"usage\":2,\"selector\":0,\"mtype\":0,\"data\":\"abcdef\"}]") != NULL,
       "JSON: second record");
    buf_free(&b);
    dns_result_free(&r);

    /* the seed the fuzzer starts from (t/fuzz/mail_dns_proto/reply_dane) */
    if (getenv("POSTERN_WRITE_SEEDS")) {
        FILE *fp = fopen("t/fuzz/mail_dns_proto/reply_dane", "wb");
        sample_sec(&r);
        ipc_w_init(&w);
        dns_rep_encode(&w, &r);
        if (fp) {
            fwrite(w.p, 1, w.len, fp);
            fclose(fp);
        }
        ipc_w_free(&w);
        dns_result_free(&r);
    }
}

int main(void)
{
    plan_lazy();
    test_roundtrip();
    test_addr_parse();
    test_shuffle();
    test_client();
    test_format();
    test_security();
    return done_testing();
}
