/*
 * Unit tests for dnsd/dns_answer (packet -> MX set, CNAME chains,
 * negative answers, TXT records), dnsq_cache_ttl and override parsing. Packets are
 * built from RR text with ldns and sent through wire format and back,
 * as they would arrive from a server.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../dnsd/dns_answer.h"
#include "../../dnsd/dns_lookup.h"
#include "../../dnsd/dns_query.h"
#include "tap.h"
#include "base/util.h"

#define SOA "test. 300 IN SOA ns.test. admin.test. 1 3600 600 86400 45"

static void push(ldns_pkt *p, ldns_pkt_section s, const char *const *rrs)
{
    for (size_t i = 0; rrs && rrs[i]; i++) {
        ldns_rr *rr = NULL;
        if (ldns_rr_new_frm_str(&rr, rrs[i], 0, NULL, NULL) != LDNS_STATUS_OK) {
            diag("bad test RR: %s", rrs[i]);
            abort();
        }
        ldns_pkt_push_rr(p, s, rr);
    }
}

/* A response packet, round-tripped through wire format. */
static ldns_pkt *mk(ldns_pkt_rcode rc, const char *qname, ldns_rr_type t, const char *const *ans,
                    const char *const *auth, const char *const *add)
{
    ldns_pkt *p = ldns_pkt_new(), *back = NULL;
    ldns_rr *q = ldns_rr_new();
    ldns_rdf *d = NULL;
    uint8_t *wire = NULL;
    size_t len = 0;

    ldns_str2rdf_dname(&d, qname);
    ldns_rr_set_owner(q, d);
    ldns_rr_set_type(q, t);
    ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
    ldns_rr_set_question(q, true);
    ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, q);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_rcode(p, (uint8_t)rc);
    push(p, LDNS_SECTION_ANSWER, ans);
    push(p, LDNS_SECTION_AUTHORITY, auth);
    push(p, LDNS_SECTION_ADDITIONAL, add);
    if (ldns_pkt2wire(&wire, p, &len) != LDNS_STATUS_OK ||
        ldns_wire2pkt(&back, wire, len) != LDNS_STATUS_OK)
        abort();
    free(wire);
    ldns_pkt_free(p);
    return back;
}

static const char *addr(const struct dns_host *h, size_t i)
{
    static char buf[INET6_ADDRSTRLEN];
    if (i >= h->naddrs)
        return "(none)";
    return dns_addr_str(&h->addrs[i], buf, sizeof(buf));
}

static void test_mx_full(void)
{
    const char *ans[] = {"example.test. 300 IN MX 20 mx2.example.test.",
                         "example.test. 300 IN MX 10 mx1.example.test.",
                         "example.test. 300 IN MX 20 mx3.example.test.", NULL};
    const char *add[] = {
        "mx1.example.test. 120 IN A 192.0.2.1", "mx2.example.test. 300 IN A 192.0.2.2",
        "mx2.example.test. 300 IN AAAA 2001:db8::2", "ns.example.test. 10 IN A 192.0.2.53", NULL};
    ldns_pkt *p = mk(LDNS_RCODE_NOERROR, "example.test.", LDNS_RR_TYPE_MX, ans, NULL, add);
    struct mxset m;

    mxset_from_packet(p, "example.test", DNSANS_MAX_HOPS, &m);
    is_int(m.kind, MXSET_HOSTS, "MX answer gives hosts");
    is_int(m.res.nhosts, 3, "three hosts");
    is_str(m.res.hosts[0].name, "mx1.example.test", "lowest preference first");
    is_int(m.res.hosts[0].pref, 10, "pref 10");
    is_str(m.res.hosts[1].name, "mx2.example.test", "ties keep packet order (mx2)");
    is_str(m.res.hosts[2].name, "mx3.example.test", "ties keep packet order (mx3)");
    is_int(m.res.hosts[0].group, 0, "group 0 for pref 10");
    ok(m.res.hosts[1].group == 1 && m.res.hosts[2].group == 1, "equal prefs share a shuffle group");
    is_str(addr(&m.res.hosts[0], 0), "192.0.2.1", "mx1 address from additional");
    is_int(m.res.hosts[1].naddrs, 2, "mx2 has A and AAAA");
    is_str(addr(&m.res.hosts[1], 1), "2001:db8::2", "mx2 AAAA");
    is_int(m.res.hosts[2].naddrs, 0, "mx3 has no additional data: to be looked up");
    is_int(m.ttl, 120, "ttl is the smallest of the records used");
    dns_result_free(&m.res);
    is_int(dnsq_cache_ttl(p, "example.test", LDNS_RR_TYPE_MX, 0, 86400), 10,
           "cache TTL also counts additional addresses");
    is_int(dnsq_cache_ttl(p, "example.test", LDNS_RR_TYPE_MX, 60, 86400), 60,
           "clamped up by ttl_min");
    is_int(dnsq_cache_ttl(p, "example.test", LDNS_RR_TYPE_MX, 0, 5), 5, "clamped down by ttl_max");
    ldns_pkt_free(p);
}

static void test_mx_no_additional_and_dups(void)
{
    const char *ans[] = {"Example.TEST. 60 IN MX 5 MX.Other.TEST.",
                         "example.test. 60 IN MX 7 mx.other.test.",
                         "evil.test. 60 IN MX 0 evil.test.", NULL};
    const char *add[] = {"unrelated.test. 60 IN A 198.51.100.1", NULL};
    ldns_pkt *p = mk(LDNS_RCODE_NOERROR, "example.test.", LDNS_RR_TYPE_MX, ans, NULL, add);
    struct mxset m;

    mxset_from_packet(p, "example.test", DNSANS_MAX_HOPS, &m);
    is_int(m.kind, MXSET_HOSTS, "hosts");
    is_int(m.res.nhosts, 1, "duplicate exchange kept once, foreign owner ignored");
    is_str(m.res.hosts[0].name, "mx.other.test", "names lower-cased without the dot");
    is_int(m.res.hosts[0].pref, 5, "duplicate keeps the lowest preference");
    is_int(m.res.hosts[0].naddrs, 0, "no address for an unrelated additional record");
    dns_result_free(&m.res);
    ldns_pkt_free(p);
}

static void test_negative(void)
{
    const char *auth[] = {SOA, NULL};
    ldns_pkt *p = mk(LDNS_RCODE_NOERROR, "nomx.test.", LDNS_RR_TYPE_MX, NULL, auth, NULL);
    struct mxset m;
    struct dnsans a;

    mxset_from_packet(p, "nomx.test", DNSANS_MAX_HOPS, &m);
    is_int(m.kind, MXSET_IMPLICIT, "NOERROR without MX: implicit MX");
    is_int(m.ttl, 45, "negative TTL is min(SOA TTL, MINIMUM)");
    dns_result_free(&m.res);
    dnsans_examine(p, "nomx.test", LDNS_RR_TYPE_MX, DNSANS_MAX_HOPS, &a);
    ok(a.kind == DNSANS_NODATA && a.cacheable, "NODATA with SOA is cacheable");
    ldns_pkt_free(p);

    p = mk(LDNS_RCODE_NXDOMAIN, "gone.test.", LDNS_RR_TYPE_MX, NULL, auth, NULL);
    mxset_from_packet(p, "gone.test", DNSANS_MAX_HOPS, &m);
    is_int(m.kind, MXSET_NXDOMAIN, "NXDOMAIN");
    dns_result_free(&m.res);
    is_int(dnsq_cache_ttl(p, "gone.test", LDNS_RR_TYPE_MX, 0, 86400), 45,
           "NXDOMAIN cached for the SOA TTL");
    ldns_pkt_free(p);

    p = mk(LDNS_RCODE_NXDOMAIN, "gone.test.", LDNS_RR_TYPE_MX, NULL, NULL, NULL);
    is_int(dnsq_cache_ttl(p, "gone.test", LDNS_RR_TYPE_MX, 0, 86400), 0,
           "a negative answer without SOA is not cached (RFC 2308)");
    ldns_pkt_free(p);

    p = mk(LDNS_RCODE_SERVFAIL, "x.test.", LDNS_RR_TYPE_MX, NULL, NULL, NULL);
    mxset_from_packet(p, "x.test", DNSANS_MAX_HOPS, &m);
    is_int(m.kind, MXSET_ERROR, "SERVFAIL is not an answer");
    dns_result_free(&m.res);
    ldns_pkt_free(p);
}

static void test_null_mx(void)
{
    const char *ans[] = {"null.test. 300 IN MX 0 .", NULL};
    const char *mixed[] = {"mixed.test. 300 IN MX 0 .", "mixed.test. 300 IN MX 10 mx.mixed.test.",
                           NULL};
    ldns_pkt *p = mk(LDNS_RCODE_NOERROR, "null.test.", LDNS_RR_TYPE_MX, ans, NULL, NULL);
    struct mxset m;

    mxset_from_packet(p, "null.test", DNSANS_MAX_HOPS, &m);
    is_int(m.kind, MXSET_NULL, "a lone '.' exchange is a null MX");
    dns_result_free(&m.res);
    ldns_pkt_free(p);
    p = mk(LDNS_RCODE_NOERROR, "mixed.test.", LDNS_RR_TYPE_MX, mixed, NULL, NULL);
    mxset_from_packet(p, "mixed.test", DNSANS_MAX_HOPS, &m);
    ok(m.kind == MXSET_HOSTS && m.res.nhosts == 1, "'.' beside real MX records is skipped");
    dns_result_free(&m.res);
    ldns_pkt_free(p);
}

static void test_cname(void)
{
    const char *chain[] = {"alias.test. 100 IN CNAME mid.test.", "mid.test. 50 IN CNAME real.test.",
                           "real.test. 300 IN MX 10 mx.real.test.", NULL};
    const char *add[] = {"mx.real.test. 300 IN A 192.0.2.9", NULL};
    const char *out[] = {"alias.test. 100 IN CNAME elsewhere.test.", NULL};
    const char *loop[] = {"a.test. 100 IN CNAME b.test.", "b.test. 100 IN CNAME a.test.", NULL};
    ldns_pkt *p = mk(LDNS_RCODE_NOERROR, "alias.test.", LDNS_RR_TYPE_MX, chain, NULL, add);
    struct mxset m;
    struct dnsans a;

    mxset_from_packet(p, "alias.test", DNSANS_MAX_HOPS, &m);
    ok(m.kind == MXSET_HOSTS && m.res.nhosts == 1, "MX found at the end of a CNAME chain");
    is_int(m.hops, 2, "two CNAMEs followed");
    is_int(m.ttl, 50, "chain TTLs count");
    is_str(addr(&m.res.hosts[0], 0), "192.0.2.9", "address of the MX behind the chain");
    dns_result_free(&m.res);
    ldns_pkt_free(p);

    p = mk(LDNS_RCODE_NOERROR, "alias.test.", LDNS_RR_TYPE_MX, out, NULL, NULL);
    mxset_from_packet(p, "alias.test", DNSANS_MAX_HOPS, &m);
    is_int(m.kind, MXSET_CHASE, "chain leaving the packet: ask again");
    is_str(m.chase, "elsewhere.test", "for the CNAME target");
    dns_result_free(&m.res);
    ldns_pkt_free(p);

    p = mk(LDNS_RCODE_NOERROR, "a.test.", LDNS_RR_TYPE_A, loop, NULL, NULL);
    dnsans_examine(p, "a.test", LDNS_RR_TYPE_A, DNSANS_MAX_HOPS, &a);
    is_int(a.kind, DNSANS_LOOP, "CNAME loop inside one packet is detected");
    is_int(dnsq_cache_ttl(p, "a.test", LDNS_RR_TYPE_A, 0, 86400), 0, "a loop is not cached");
    ldns_pkt_free(p);

    p = mk(LDNS_RCODE_NXDOMAIN, "alias.test.", LDNS_RR_TYPE_MX, out, (const char *[]){SOA, NULL},
           NULL);
    dnsans_examine(p, "alias.test", LDNS_RR_TYPE_MX, DNSANS_MAX_HOPS, &a);
    ok(a.kind == DNSANS_NXDOMAIN && strcmp(a.final, "elsewhere.test") == 0,
       "NXDOMAIN after a CNAME is about the target");
    ldns_pkt_free(p);
}

static void test_addrs(void)
{
    const char *ans[] = {"h.test. 60 IN CNAME real.test.", "real.test. 30 IN A 192.0.2.7",
                         "real.test. 30 IN A 192.0.2.8", "other.test. 30 IN A 10.0.0.1", NULL};
    ldns_pkt *p = mk(LDNS_RCODE_NOERROR, "h.test.", LDNS_RR_TYPE_A, ans, NULL, NULL);
    struct dnsans a;
    struct dns_host h;
    uint32_t ttl = UINT32_MAX;
    struct buf b;

    dnsans_examine(p, "h.test", LDNS_RR_TYPE_A, DNSANS_MAX_HOPS, &a);
    ok(a.kind == DNSANS_DATA && strcmp(a.final, "real.test") == 0, "A behind a CNAME");
    memset(&h, 0, sizeof(h));
    is_int(dnsans_addrs(p, LDNS_SECTION_ANSWER, a.final, &h, &ttl), 2,
           "two addresses of the target");
    is_str(addr(&h, 1), "192.0.2.8", "second address");
    is_int(ttl, 30, "address TTL");
    free(h.addrs);
    buf_init(&b);
    dnsans_summary(p, "h.test", LDNS_RR_TYPE_A, &b);
    is_str(b.data, "CNAME real.test A 192.0.2.7, 192.0.2.8", "summary line for show dns");
    buf_free(&b);
    ldns_pkt_free(p);
}

static void test_names_and_overrides(void)
{
    char buf[256];
    struct sockaddr_storage ss;
    uint16_t port;

    ok(dnsans_norm("Mail.Example.TEST.", buf, sizeof(buf)) == 0 &&
           strcmp(buf, "mail.example.test") == 0,
       "names are normalized");
    ok(dnsans_norm("a..b", buf, sizeof(buf)) < 0, "empty label refused");
    is_int(dns_parse_mx_entry("mx.Example.test", buf, sizeof(buf), &ss, &port), 0, "host name");
    ok(strcmp(buf, "mx.example.test") == 0 && port == 0, "host name normalized, no port");
    is_int(dns_parse_mx_entry("mx.example.test:2525", buf, sizeof(buf), &ss, &port), 0,
           "host:port");
    is_int(port, 2525, "port parsed");
    is_int(dns_parse_mx_entry("127.0.0.5:26", buf, sizeof(buf), &ss, &port), 1,
           "IPv4 literal with port");
    ok(port == 26 && ss.ss_family == AF_INET, "IPv4 and its port");
    is_str(buf, "127.0.0.5", "the host name of an address with a port is the address alone");
    is_int(dns_parse_mx_entry("[::1]:27", buf, sizeof(buf), &ss, &port), 1, "[IPv6]:port");
    ok(port == 27 && ss.ss_family == AF_INET6, "IPv6 and its port");
    is_str(buf, "::1", "no brackets, no port in the host name");
    is_int(dns_parse_mx_entry("2001:db8::1", buf, sizeof(buf), &ss, &port), 1, "bare IPv6");
    is_str(buf, "2001:db8::1", "a bare address is its own name");
    is_int(dns_parse_mx_entry("mx.test:0", buf, sizeof(buf), &ss, &port), -1, "port 0 refused");
    is_int(dns_parse_mx_entry("mx.test:99999", buf, sizeof(buf), &ss, &port), -1, "port too big");
    is_int(dns_parse_mx_entry("127.0.0.1:x", buf, sizeof(buf), &ss, &port), -1, "bad port");
    is_int(dns_parse_mx_entry("not_a@host!!", buf, sizeof(buf), &ss, &port), -1,
           "a name with characters no host name has is refused");
    is_int(dns_parse_mx_entry("a..b.test", buf, sizeof(buf), &ss, &port), -1, "an empty label");
    is_int(dns_parse_mx_entry("127.0.0.1:0", buf, sizeof(buf), &ss, &port), -1,
           "an address with port 0");
    is_int(dns_parse_mx_entry("127.0.0.1:99999", buf, sizeof(buf), &ss, &port), -1,
           "an address with a port over 65535");
    is_int(dns_parse_mx_entry("", buf, sizeof(buf), &ss, &port), -1, "an empty entry");
    is_int(dns_parse_mx_entry("MX.Test.", buf, sizeof(buf), &ss, &port), 0, "a final dot");
    is_str(buf, "mx.test", "is dropped, and the name lower-cased");
    is_int(dns_parse_mx_entry("[mx.test]", buf, sizeof(buf), &ss, &port), -1,
           "bracketed name refused");
}

/* TXT records: strings of one record joined, records in order, bytes escaped. */
static void test_txt(void)
{
    const char *ans[] = {"s._domainkey.x.test. 60 IN TXT \"v=DKIM1; k=rsa; \" \"p=AB\" \"CD\"",
                         "s._domainkey.x.test. 60 IN TXT \"second\\\\ \\009tab\"",
                         "other.x.test. 60 IN TXT \"not ours\"",
                         "s._domainkey.x.test. 60 IN A 192.0.2.1", NULL};
    const char *cn[] = {"alias.x.test. 60 IN CNAME s._domainkey.x.test.",
                        "s._domainkey.x.test. 60 IN TXT \"v=DKIM1; p=\"", NULL};
    const char *auth[] = {SOA, NULL};
    ldns_pkt *p = mk(LDNS_RCODE_NOERROR, "s._domainkey.x.test", LDNS_RR_TYPE_TXT, ans, NULL, NULL);
    struct dnsans a;
    size_t n = 0;
    char **v = dnsans_txt(p, "s._domainkey.x.test", &n);

    is_int(n, 2, "two TXT records of the name (not the other name's, not the A)");
    is_str(n > 0 ? v[0] : NULL, "v=DKIM1; k=rsa; p=ABCD", "a record's strings are joined");
    is_str(n > 1 ? v[1] : NULL, "second\\092 \\009tab", "'\\' and control bytes as \\DDD");
    ok(v[n] == NULL, "the array ends with NULL");
    dnsans_txt_free(v);
    ldns_pkt_free(p);

    p = mk(LDNS_RCODE_NOERROR, "alias.x.test", LDNS_RR_TYPE_TXT, cn, NULL, NULL);
    dnsans_examine(p, "alias.x.test", LDNS_RR_TYPE_TXT, DNSANS_MAX_HOPS, &a);
    ok(a.kind == DNSANS_DATA && strcmp(a.final, "s._domainkey.x.test") == 0,
       "a TXT behind a CNAME is found at the chain's end");
    v = dnsans_txt(p, a.final, &n);
    ok(n == 1 && strcmp(v[0], "v=DKIM1; p=") == 0, "and read there");
    dnsans_txt_free(v);
    ldns_pkt_free(p);

    p = mk(LDNS_RCODE_NOERROR, "none.x.test", LDNS_RR_TYPE_TXT, NULL, auth, NULL);
    v = dnsans_txt(p, "none.x.test", &n);
    ok(n == 0 && v && v[0] == NULL, "no TXT record: an empty list");
    dnsans_txt_free(v);
    ldns_pkt_free(p);
}

/* dnsans_parse: one TSIG record passes, two are refused (RFC 8945 allows
 * one, and ldns 1.8 leaks the first of two); truncated bytes are refused
 * by ldns itself. */
static void test_parse_tsig(void)
{
    static const uint8_t head[] = {0x12, 0x34, 0x81, 0x80, 0,   1,   0,   0,   0,   0,
                                   0,    0,    7,    'e',  'x', 'a', 'm', 'p', 'l', 'e',
                                   4,    't',  'e',  's',  't', 0,   0,   15,  0,   1};
    static const uint8_t tsig[] = {0, 0,  250,  0,    255, 0, 0, 0, 0,
                                   0, 17,                               /* owner ., TSIG ANY */
                                   0, 0,  0,    0,    0,   0, 1, 0, 44, /* alg ., time, fudge */
                                   0, 0,  0x12, 0x34, 0,   0, 0, 0};    /* mac 0, id, err, other */
    uint8_t w[sizeof(head) + 2 * sizeof(tsig)];
    ldns_pkt *p = NULL;

    for (int n = 1; n <= 2; n++) {
        memcpy(w, head, sizeof(head));
        w[11] = (uint8_t)n; /* ARCOUNT */
        for (int i = 0; i < n; i++)
            memcpy(w + sizeof(head) + (size_t)i * sizeof(tsig), tsig, sizeof(tsig));
        ldns_status st = dnsans_parse(&p, w, sizeof(head) + (size_t)n * sizeof(tsig));
        if (n == 1)
            ok(st == LDNS_STATUS_OK && p != NULL && ldns_pkt_tsig(p) != NULL,
               "one TSIG record: parsed (%s)", ldns_get_errorstr_by_id(st));
        else
            ok(st != LDNS_STATUS_OK && p == NULL,
               "two TSIG records: refused before ldns sees them");
        if (p)
            ldns_pkt_free(p);
        p = NULL;
    }
    ok(dnsans_parse(&p, w, 20) != LDNS_STATUS_OK && p == NULL, "a truncated packet: refused");
}

int main(void)
{
    plan_lazy();
    test_parse_tsig();
    test_mx_full();
    test_mx_no_additional_and_dups();
    test_negative();
    test_null_mx();
    test_cname();
    test_addrs();
    test_names_and_overrides();
    test_txt();
    return done_testing();
}
