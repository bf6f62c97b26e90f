/*
 * Unit tests for dnsd/dnssec: trust-anchor files, and validation of
 * answers from zones built and signed here with ldns (keys from
 * ldns_key_new_frm_algorithm, zones signed by ldns_zone_sign /
 * ldns_zone_sign_nsec3 over ldns_dnssec_zone_sign).
 *
 * The world: "test" (the anchor, NSEC) delegates to a.test (NSEC) and
 * b.test (NSEC3), both signed with DS; a.test delegates to sub.a.test
 * (signed, DS), u.a.test (unsigned, no DS) and bad.a.test (signed, but
 * the DS in a.test matches none of its keys). A small authoritative
 * answerer builds packets from those zones the way a resolver would (it
 * follows CNAMEs across zones; negative answers carry every NSEC/NSEC3
 * of the zone). The fetch given to dnssec_validate answers from it and
 * judges each fetched answer with dnssec_validate in turn, as dnsd's
 * engine does; in deferred mode the answers come later, from a queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dnsd/dns_answer.h"
#include "../../dnsd/dnssec.h"
#include "tap.h"
#include "base/util.h"

const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

/*
 * Under the sanitizers (make check SANITIZE=1): ldns 1.8.3's
 * ldns_dnssec_verify_denial_nsec3 loses the hashed name it makes for each
 * NSEC3 it matches (inside ldns_dnssec_verify_denial_nsec3_match). That
 * is the library's leak, not ours (docs/dns.md, limits); full stacks (no
 * fast unwinding through ldns, which has no frame pointers) make the
 * suppression match only allocations under that function.
 */
const char *__asan_default_options(void)
{
    return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void)
{
    return "leak:ldns_dnssec_verify_denial_nsec3_match\n";
}

#define HOUR 3600
#define DAY 86400

struct zone {
    char apex[DNS_MAX_NAME + 1];
    ldns_rr_list *rrs;
};

struct pending {
    char name[DNS_MAX_NAME + 1];
    ldns_rr_type t;
    dnssec_fetch_done done;
    void *ctx;
};

static struct {
    struct zone z[8];
    int n;
    const struct dnssec_anchors *a;
    time_t now;
    char strip[64]; /* "name/TYPE": answers carry no RRSIG over it */
    char fail[64];  /* "name/TYPE": a fetch of it fails */
    int deferred;
    struct pending q[64];
    int nq;
    int fetches;
} W;

static ldns_rr *rr_new(const char *text)
{
    ldns_rr *rr = NULL;

    if (ldns_rr_new_frm_str(&rr, text, 300, NULL, NULL) != LDNS_STATUS_OK) {
        diag("bad test RR: %s", text);
        abort();
    }
    return rr;
}

static ldns_key *mkkey(const char *apex, int ksk)
{
    ldns_key *k = ldns_key_new_frm_algorithm(LDNS_SIGN_ECDSAP256SHA256, 256);
    ldns_rdf *o = NULL;
    ldns_rr *rr;

    if (!k || ldns_str2rdf_dname(&o, apex) != LDNS_STATUS_OK)
        abort();
    ldns_key_set_pubkey_owner(k, o);
    ldns_key_set_flags(k, ksk ? 257 : 256);
    ldns_key_set_inception(k, (uint32_t)(time(NULL) - HOUR));
    ldns_key_set_expiration(k, (uint32_t)(time(NULL) + 30 * DAY));
    rr = ldns_key2rr(k);
    ldns_key_set_keytag(k, ldns_calc_keytag(rr));
    ldns_rr_free(rr);
    return k;
}

struct keys {
    ldns_key *ksk, *zsk;
};

static ldns_rr *key_rr(const ldns_key *k)
{
    return ldns_key2rr(k);
}

/* Sign the RR texts as zone apex (NULL keys: unsigned); returns it. */
static struct zone *zone_add(const char *apex, const char *const *lines, const struct keys *k,
                             int nsec3)
{
    struct zone *z = &W.z[W.n++];
    ldns_zone *zn = ldns_zone_new(), *signed_zone;
    ldns_key_list *kl;

    strlcpy_p(z->apex, apex, sizeof(z->apex));
    for (size_t i = 0; lines[i]; i++) {
        ldns_rr *rr = rr_new(lines[i]);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA)
            ldns_zone_set_soa(zn, rr);
        else
            ldns_zone_push_rr(zn, rr);
    }
    if (!k) {
        z->rrs = ldns_rr_list_clone(ldns_zone_rrs(zn));
        ldns_rr_list_push_rr(z->rrs, ldns_rr_clone(ldns_zone_soa(zn)));
        ldns_zone_deep_free(zn);
        return z;
    }
    ldns_zone_push_rr(zn, key_rr(k->ksk));
    ldns_zone_push_rr(zn, key_rr(k->zsk));
    kl = ldns_key_list_new();
    ldns_key_list_push_key(kl, k->ksk);
    ldns_key_list_push_key(kl, k->zsk);
    signed_zone =
        nsec3 ? ldns_zone_sign_nsec3(zn, kl, LDNS_SHA1, 0, 0, 0, NULL) : ldns_zone_sign(zn, kl);
    if (!signed_zone)
        abort();
    z->rrs = ldns_rr_list_clone(ldns_zone_rrs(signed_zone));
    ldns_rr_list_push_rr(z->rrs, ldns_rr_clone(ldns_zone_soa(signed_zone)));
    ldns_zone_deep_free(signed_zone);
    ldns_zone_deep_free(zn);
    ldns_key_list_set_key_count(kl, 0);
    ldns_key_list_free(kl);
    return z;
}

static char *ds_text(const ldns_key *k)
{
    ldns_rr *key = key_rr(k), *ds = ldns_key_rr2ds(key, LDNS_SHA256);
    char *s = ldns_rr2str(ds);

    ldns_rr_free(key);
    ldns_rr_free(ds);
    s[strcspn(s, "\n")] = 0;
    return s;
}

/* ---- the answerer ---- */

static int under(const char *name, const char *zone)
{
    size_t n = strlen(name), z = strlen(zone);
    if (strcmp(zone, ".") == 0 || strcmp(name, zone) == 0)
        return 1;
    return n > z && name[n - z - 1] == '.' && strcmp(name + n - z, zone) == 0;
}

static struct zone *zone_for(const char *name, int ds)
{
    struct zone *best = NULL;

    for (int i = 0; i < W.n; i++) {
        if (!under(name, W.z[i].apex) || (ds && strcmp(name, W.z[i].apex) == 0))
            continue;
        if (!best || strlen(W.z[i].apex) > strlen(best->apex))
            best = &W.z[i];
    }
    return best;
}

static int owner_is(const ldns_rr *rr, const char *name)
{
    char o[DNS_MAX_NAME + 1];
    return dnsans_name(ldns_rr_owner(rr), o, sizeof(o)) == 0 && strcmp(o, name) == 0;
}

static int stripped(const char *name, ldns_rr_type t)
{
    char key[DNS_MAX_NAME + 20], *tn = ldns_rr_type2str(t);
    snprintf(key, sizeof(key), "%s/%s", name, tn);
    free(tn);
    return strcmp(key, W.strip) == 0;
}

/* Push name's RRs of type t (and their RRSIGs) from z; how many. */
static size_t push_set(ldns_pkt *p, ldns_pkt_section sec, const struct zone *z, const char *name,
                       ldns_rr_type t)
{
    size_t n = 0;

    for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
        ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
        if (owner_is(rr, name) && ldns_rr_get_type(rr) == t) {
            ldns_pkt_push_rr(p, sec, ldns_rr_clone(rr));
            n++;
        }
    }
    for (size_t i = 0; n && !stripped(name, t) && i < ldns_rr_list_rr_count(z->rrs); i++) {
        ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
        if (owner_is(rr, name) && ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG &&
            ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(rr)) == t)
            ldns_pkt_push_rr(p, sec, ldns_rr_clone(rr));
    }
    return n;
}

static int name_exists(const struct zone *z, const char *name)
{
    for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
        ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
        if (owner_is(rr, name) && ldns_rr_get_type(rr) != LDNS_RR_TYPE_NSEC3 &&
            ldns_rr_get_type(rr) != LDNS_RR_TYPE_RRSIG)
            return 1;
    }
    return 0;
}

static ldns_pkt *answer(const char *qname, ldns_rr_type t)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_rr *q = ldns_rr_new();
    ldns_rdf *d = NULL;
    char cur[DNS_MAX_NAME + 1];
    struct zone *z = zone_for(qname, t == LDNS_RR_TYPE_DS);

    ldns_str2rdf_dname(&d, qname);
    ldns_rr_set_owner(q, d);
    ldns_rr_set_type(q, t);
    ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
    ldns_rr_set_question(q, true);
    ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, q);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_aa(p, true);
    strlcpy_p(cur, qname, sizeof(cur));
    for (int hops = 0; z && hops < 8; hops++) {
        ldns_rr_list *cn;
        if (push_set(p, LDNS_SECTION_ANSWER, z, cur, t))
            return p;
        if (push_set(p, LDNS_SECTION_ANSWER, z, cur, LDNS_RR_TYPE_CNAME)) {
            cn = ldns_pkt_rr_list_by_type(p, LDNS_RR_TYPE_CNAME, LDNS_SECTION_ANSWER);
            dnsans_name(ldns_rr_rdf(ldns_rr_list_rr(cn, ldns_rr_list_rr_count(cn) - 1), 0), cur,
                        sizeof(cur));
            ldns_rr_list_deep_free(cn);
            z = zone_for(cur, 0);
            continue;
        }
        ldns_pkt_set_rcode(p, name_exists(z, cur) ? LDNS_RCODE_NOERROR : LDNS_RCODE_NXDOMAIN);
        push_set(p, LDNS_SECTION_AUTHORITY, z, z->apex, LDNS_RR_TYPE_SOA);
        for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
            ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
            ldns_rr_type rt = ldns_rr_get_type(rr);
            char o[DNS_MAX_NAME + 1];
            if (rt != LDNS_RR_TYPE_NSEC && rt != LDNS_RR_TYPE_NSEC3)
                continue;
            dnsans_name(ldns_rr_owner(rr), o, sizeof(o));
            /* each NSEC RRset once, with its signatures */
            ldns_rr_list *have =
                ldns_pkt_rr_list_by_name_and_type(p, ldns_rr_owner(rr), rt, LDNS_SECTION_AUTHORITY);
            if (!have)
                push_set(p, LDNS_SECTION_AUTHORITY, z, o, rt);
            ldns_rr_list_deep_free(have);
        }
        return p;
    }
    ldns_pkt_set_rcode(p, LDNS_RCODE_SERVFAIL);
    return p;
}

/* ---- fetch, as dnsd's engine does it ---- */

struct fetchjob {
    ldns_pkt *p;
    dnssec_fetch_done done;
    void *ctx;
};

static void w_fetch(void *fa, const char *name, ldns_rr_type t, dnssec_fetch_done done, void *ctx);

static void fetch_judged(enum dnssec_status st, const char *why, void *arg)
{
    struct fetchjob *j = arg;

    j->done(j->p, st, why, j->ctx);
    ldns_pkt_free(j->p);
    free(j);
}

static void w_answer_fetch(const char *name, ldns_rr_type t, dnssec_fetch_done done, void *ctx)
{
    char key[DNS_MAX_NAME + 20], *tn = ldns_rr_type2str(t);
    struct fetchjob *j;

    snprintf(key, sizeof(key), "%s/%s", name, tn);
    free(tn);
    if (strcmp(key, W.fail) == 0) {
        done(NULL, DNSSEC_BOGUS, "timeout from 127.0.0.1:53", ctx);
        return;
    }
    j = xcalloc(1, sizeof(*j));
    j->p = answer(name, t);
    j->done = done;
    j->ctx = ctx;
    if (ldns_pkt_get_rcode(j->p) != LDNS_RCODE_NOERROR &&
        ldns_pkt_get_rcode(j->p) != LDNS_RCODE_NXDOMAIN) {
        done(NULL, DNSSEC_INSECURE, "SERVFAIL", ctx);
        ldns_pkt_free(j->p);
        free(j);
        return;
    }
    dnssec_validate(W.a, w_fetch, NULL, j->p, name, t, W.now, fetch_judged, j);
}

static void w_fetch(void *fa, const char *name, ldns_rr_type t, dnssec_fetch_done done, void *ctx)
{
    W.fetches++;
    if (W.deferred && W.nq < (int)nitems(W.q)) {
        struct pending *q = &W.q[W.nq++];
        strlcpy_p(q->name, name, sizeof(q->name));
        q->t = t;
        q->done = done;
        q->ctx = ctx;
        return;
    }
    w_answer_fetch(name, t, done, ctx);
}

struct result {
    int called;
    enum dnssec_status st;
    char why[400];
};

static void got(enum dnssec_status st, const char *why, void *arg)
{
    struct result *r = arg;
    r->called++;
    r->st = st;
    snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
}

/* Validate the answer to qname/t from a packet (NULL: the answerer's). */
static struct result judge_pkt(const ldns_pkt *p, const char *qname, ldns_rr_type t)
{
    struct result r = {0};
    ldns_pkt *mine = p ? NULL : answer(qname, t);
    uint8_t *wire = NULL;
    size_t len = 0;
    ldns_pkt *back = NULL;

    /* through wire format, as from the network */
    if (ldns_pkt2wire(&wire, p ? p : mine, &len) != LDNS_STATUS_OK ||
        ldns_wire2pkt(&back, wire, len) != LDNS_STATUS_OK)
        abort();
    W.fetches = 0;
    dnssec_validate(W.a, w_fetch, NULL, back, qname, t, W.now, got, &r);
    ldns_pkt_free(back); /* dnssec_validate copied it */
    while (W.nq > 0) {
        struct pending q = W.q[0];
        memmove(W.q, W.q + 1, (size_t)(--W.nq) * sizeof(W.q[0]));
        w_answer_fetch(q.name, q.t, q.done, q.ctx);
    }
    free(wire);
    ldns_pkt_free(mine);
    if (r.called != 1)
        diag("callback called %d times", r.called);
    return r;
}

static struct result judge(const char *qname, ldns_rr_type t)
{
    return judge_pkt(NULL, qname, t);
}

#define IS_SEC(r, want, name)                                                                      \
    do {                                                                                           \
        struct result r_ = (r);                                                                    \
        if (!is_str(dnssec_status_name(r_.st), dnssec_status_name(want), "%s", name))              \
            diag("why: %s", r_.why);                                                               \
        ok(r_.called == 1, "%s: callback called once", name);                                      \
    } while (0)

/* ---- building the world ---- */

static struct keys k_test, k_a, k_b, k_sub, k_bad, k_other;

#define SOA(z) z ". 300 IN SOA ns." z ". admin." z ". 1 3600 600 86400 60"

static void build_world(void)
{
    char *ds_a, *ds_b, *ds_sub, *ds_wrong, *ds_test_line;
    char l1[600], l2[600], l3[600];

    k_test = (struct keys){mkkey("test", 1), mkkey("test", 0)};
    k_a = (struct keys){mkkey("a.test", 1), mkkey("a.test", 0)};
    k_b = (struct keys){mkkey("b.test", 1), mkkey("b.test", 0)};
    k_sub = (struct keys){mkkey("sub.a.test", 1), mkkey("sub.a.test", 0)};
    k_bad = (struct keys){mkkey("bad.a.test", 1), mkkey("bad.a.test", 0)};
    k_other = (struct keys){mkkey("bad.a.test", 1), mkkey("bad.a.test", 0)};

    {
        const char *sub[] = {SOA("sub.a.test"), "sub.a.test. NS ns.sub.a.test.",
                             "ns.sub.a.test. A 127.0.0.1", "mx.sub.a.test. A 127.0.0.7", NULL};
        zone_add("sub.a.test", sub, &k_sub, 0);
    }
    {
        const char *u[] = {SOA("u.a.test"), "u.a.test. NS ns.u.a.test.", "ns.u.a.test. A 127.0.0.1",
                           "mx.u.a.test. A 127.0.0.8", NULL};
        zone_add("u.a.test", u, NULL, 0);
    }
    {
        const char *bad[] = {SOA("bad.a.test"), "bad.a.test. NS ns.bad.a.test.",
                             "ns.bad.a.test. A 127.0.0.1", "mx.bad.a.test. A 127.0.0.9", NULL};
        zone_add("bad.a.test", bad, &k_bad, 0);
    }
    ds_sub = ds_text(k_sub.ksk);
    ds_wrong = ds_text(k_other.ksk); /* a DS for bad.a.test of a key it does not have */
    {
        const char *a[] = {SOA("a.test"),
                           "a.test. NS ns.a.test.",
                           "ns.a.test. A 127.0.0.1",
                           "a.test. MX 10 mx.a.test.",
                           "mx.a.test. A 127.0.0.5",
                           "_25._tcp.mx.a.test. TLSA 3 1 1 "
                           "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                           "www.a.test. CNAME mx.b.test.",
                           "sub.a.test. NS ns.sub.a.test.",
                           "ns.sub.a.test. A 127.0.0.1",
                           l1,
                           "u.a.test. NS ns.u.a.test.",
                           "ns.u.a.test. A 127.0.0.1",
                           "bad.a.test. NS ns.bad.a.test.",
                           "ns.bad.a.test. A 127.0.0.1",
                           l2,
                           NULL};
        snprintf(l1, sizeof(l1), "%s", ds_sub);
        snprintf(l2, sizeof(l2), "%s", ds_wrong);
        zone_add("a.test", a, &k_a, 0);
    }
    {
        const char *b[] = {SOA("b.test"),
                           "b.test. NS ns.b.test.",
                           "ns.b.test. A 127.0.0.1",
                           "b.test. MX 10 mx.b.test.",
                           "mx.b.test. A 127.0.0.6",
                           NULL};
        zone_add("b.test", b, &k_b, 1);
    }
    ds_a = ds_text(k_a.ksk);
    ds_b = ds_text(k_b.ksk);
    {
        const char *t[] = {SOA("test"),
                           "test. NS ns.test.",
                           "ns.test. A 127.0.0.1",
                           "a.test. NS ns.a.test.",
                           "b.test. NS ns.b.test.",
                           l1,
                           l2,
                           NULL};
        snprintf(l1, sizeof(l1), "%s", ds_a);
        snprintf(l2, sizeof(l2), "%s", ds_b);
        zone_add("test", t, &k_test, 0);
    }
    (void)l3;
    (void)ds_test_line;
    free(ds_a);
    free(ds_b);
    free(ds_sub);
    free(ds_wrong);
}

static char *write_file(const char *text)
{
    char *path = xstrdup("/tmp/dnsd_dnssec_XXXXXX");
    int fd = mkstemp(path);

    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        abort();
    close(fd);
    return path;
}

static struct dnssec_anchors *anchors_from(const char *text, char **err)
{
    char *path = write_file(text);
    struct dnssec_anchors *a = dnssec_anchors_load(path, err);

    unlink(path);
    free(path);
    return a;
}

/* The anchor for "test", as its KSK's DS or as the KSK itself. */
static struct dnssec_anchors *test_anchor(int dnskey)
{
    ldns_rr *key = key_rr(k_test.ksk);
    char *s = dnskey ? ldns_rr2str(key) : ds_text(k_test.ksk);
    char *text = xasprintf("; the test anchor\n\n%s\n", s);
    char *err = NULL;
    struct dnssec_anchors *a = anchors_from(text, &err);

    if (!a)
        diag("anchor: %s", err);
    ldns_rr_free(key);
    free(s);
    free(text);
    free(err);
    return a;
}

/* Change the first name/t record's rdata after signing. */
static void tamper(const char *name, ldns_rr_type t, const char *newrr)
{
    for (int i = 0; i < W.n; i++)
        for (size_t j = 0; j < ldns_rr_list_rr_count(W.z[i].rrs); j++) {
            ldns_rr *rr = ldns_rr_list_rr(W.z[i].rrs, j);
            if (owner_is(rr, name) && ldns_rr_get_type(rr) == t) {
                ldns_rr_list_set_rr(W.z[i].rrs, rr_new(newrr), j);
                ldns_rr_free(rr);
                return;
            }
        }
    abort();
}

/* ---- tests ---- */

static void test_anchor_files(void)
{
    char *err = NULL;
    struct dnssec_anchors *a;

    a = dnssec_anchors_load("/usr/share/dns/root.key", &err);
    if (a) {
        ok(dnssec_anchors_count(a) >= 1, "root.key: %zu anchors", dnssec_anchors_count(a));
        is_str(dnssec_anchor_for(a, "mx.example.com"), ".", "the root covers every name");
        dnssec_anchors_free(a);
    } else {
        diag("root.key not loaded (dns-root-data missing?): %s", err);
        free(err);
        err = NULL;
    }

    a = dnssec_anchors_load("/nonexistent/anchors.key", &err);
    ok(!a, "a missing file fails");
    ok(err && strstr(err, "/nonexistent/anchors.key") != NULL, "the error names it: %s",
       err ? err : "");
    free(err);
    err = NULL;

    a = anchors_from("; only comments\n\n", &err);
    ok(!a && err && strstr(err, "no trust anchor"), "a file without records fails: %s",
       err ? err : "");
    free(err);
    err = NULL;

    a = anchors_from("; x\na.test. 3600 IN DS 1 13 2 00ff\nb.test. IN DS this is not a DS\n", &err);
    ok(!a && err && strstr(err, ":3: "), "a malformed record names file:3: %s", err ? err : "");
    free(err);
    err = NULL;

    a = anchors_from("a.test. 3600 IN A 192.0.2.1\n", &err);
    ok(!a && err && strstr(err, ":1: ") && strstr(err, "DS or DNSKEY"),
       "an A record is refused with file:1: %s", err ? err : "");
    free(err);
    err = NULL;

    a = anchors_from("a.test. IN DS 1 13 2 00ff\nb.a.test. IN DS 2 13 2 00ff\nx.test. IN DS 3 13 "
                     "2 00ff\n",
                     &err);
    ok(a != NULL, "three DS anchors load");
    is_int(dnssec_anchors_count(a), 3, "counted");
    is_str(dnssec_anchor_for(a, "mx.b.a.test"), "b.a.test", "the closest anchor wins");
    is_str(dnssec_anchor_for(a, "b.a.test"), "b.a.test", "an anchor covers its own name");
    is_str(dnssec_anchor_for(a, "mx.a.test"), "a.test", "its parent's below it");
    ok(dnssec_anchor_for(a, "xa.test") == NULL, "label boundaries count (xa.test)");
    ok(dnssec_anchor_for(a, "test") == NULL, "nothing above an anchor");
    dnssec_anchors_free(a);
}

static void test_validation(const char *mode)
{
    char name[120];

#define T(q, t, want, what)                                                                        \
    do {                                                                                           \
        snprintf(name, sizeof(name), "%s: %s", mode, what);                                        \
        IS_SEC(judge(q, t), want, name);                                                           \
    } while (0)

    T("mx.a.test", LDNS_RR_TYPE_A, DNSSEC_SECURE, "secure A");
    T("a.test", LDNS_RR_TYPE_MX, DNSSEC_SECURE, "secure MX");
    T("_25._tcp.mx.a.test", LDNS_RR_TYPE_TLSA, DNSSEC_SECURE, "secure TLSA");
    T("b.test", LDNS_RR_TYPE_MX, DNSSEC_SECURE, "secure MX in an NSEC3 zone");
    T("nope.a.test", LDNS_RR_TYPE_A, DNSSEC_SECURE, "secure NXDOMAIN (NSEC)");
    T("mx.a.test", LDNS_RR_TYPE_TXT, DNSSEC_SECURE, "secure NODATA (NSEC)");
    T("_25._tcp.mx.b.test", LDNS_RR_TYPE_TLSA, DNSSEC_SECURE, "secure NXDOMAIN (NSEC3)");
    T("mx.b.test", LDNS_RR_TYPE_AAAA, DNSSEC_SECURE, "secure NODATA (NSEC3)");
    T("www.a.test", LDNS_RR_TYPE_A, DNSSEC_SECURE, "CNAME chain across two signed zones");
    T("mx.sub.a.test", LDNS_RR_TYPE_A, DNSSEC_SECURE, "a signed child reached via DS");
    T("mx.u.a.test", LDNS_RR_TYPE_A, DNSSEC_INSECURE, "an unsigned child delegation");
    T("nope.u.a.test", LDNS_RR_TYPE_A, DNSSEC_INSECURE, "NXDOMAIN in the unsigned child");
    T("mx.bad.a.test", LDNS_RR_TYPE_A, DNSSEC_BOGUS, "a DS that matches no key");
#undef T
}

static void test_faults(void)
{
    struct result r;
    ldns_pkt *p;

    W.fetches = 0;
    r = judge("mx.example.org", LDNS_RR_TYPE_A);
    IS_SEC(r, DNSSEC_INSECURE, "no anchor");
    is_int(W.fetches, 0, "no anchor: nothing fetched");

    r = judge("mx.bad.a.test", LDNS_RR_TYPE_A);
    ok(strstr(r.why, "no DS for bad.a.test matches its DNSKEY set") != NULL, "reason: %s", r.why);

    W.now = time(NULL) + 400 * DAY;
    r = judge("mx.a.test", LDNS_RR_TYPE_A);
    IS_SEC(r, DNSSEC_BOGUS, "expired RRSIG");
    ok(strstr(r.why, "expired") != NULL, "reason says expired: %s", r.why);
    W.now = time(NULL) - 400 * DAY;
    r = judge("mx.a.test", LDNS_RR_TYPE_A);
    IS_SEC(r, DNSSEC_BOGUS, "not-yet-valid RRSIG");
    ok(strstr(r.why, "not valid before") != NULL, "reason says not valid before: %s", r.why);
    W.now = time(NULL);

    strlcpy_p(W.strip, "mx.a.test/A", sizeof(W.strip));
    r = judge("mx.a.test", LDNS_RR_TYPE_A);
    IS_SEC(r, DNSSEC_BOGUS, "missing RRSIG under an anchor");
    ok(strstr(r.why, "no valid RRSIG over mx.a.test/A") != NULL, "reason: %s", r.why);
    strlcpy_p(W.strip, "mx.u.a.test/A", sizeof(W.strip));
    IS_SEC(judge("mx.u.a.test", LDNS_RR_TYPE_A), DNSSEC_INSECURE,
           "no RRSIG needed in the unsigned child");
    W.strip[0] = 0;

    strlcpy_p(W.fail, "a.test/DNSKEY", sizeof(W.fail));
    r = judge("mx.a.test", LDNS_RR_TYPE_A);
    IS_SEC(r, DNSSEC_BOGUS, "a fetch failure");
    ok(strstr(r.why, "DNSKEY lookup for a.test failed") != NULL, "reason: %s", r.why);
    strlcpy_p(W.fail, "u.a.test/DS", sizeof(W.fail));
    IS_SEC(judge("mx.u.a.test", LDNS_RR_TYPE_A), DNSSEC_BOGUS,
           "the DS lookup proving a delegation unsigned fails");
    W.fail[0] = 0;

    /* an NXDOMAIN, with its real NSECs, given as the answer for a name that exists */
    p = answer("nope.a.test", LDNS_RR_TYPE_A);
    {
        ldns_rdf *d = NULL;
        ldns_rr *q = ldns_rr_list_rr(ldns_pkt_question(p), 0);
        ldns_str2rdf_dname(&d, "mx.a.test");
        ldns_rdf_deep_free(ldns_rr_owner(q));
        ldns_rr_set_owner(q, d);
    }
    r = judge_pkt(p, "mx.a.test", LDNS_RR_TYPE_A);
    IS_SEC(r, DNSSEC_BOGUS, "NXDOMAIN for an existing name, with real NSECs");
    ldns_pkt_free(p);

    /* a NODATA whose proof was taken out */
    p = answer("mx.a.test", LDNS_RR_TYPE_TXT);
    ldns_rr_list_deep_free(ldns_pkt_authority(p));
    ldns_pkt_set_authority(p, ldns_rr_list_new());
    ldns_pkt_set_nscount(p, 0);
    r = judge_pkt(p, "mx.a.test", LDNS_RR_TYPE_TXT);
    IS_SEC(r, DNSSEC_BOGUS, "NODATA without its NSEC");
    ldns_pkt_free(p);

    /* last: the zone data changes after signing */
    tamper("mx.a.test", LDNS_RR_TYPE_A, "mx.a.test. 300 IN A 127.0.0.66");
    r = judge("mx.a.test", LDNS_RR_TYPE_A);
    IS_SEC(r, DNSSEC_BOGUS, "tampered rdata");
    ok(strstr(r.why, "RRSIG over mx.a.test/A does not verify") != NULL, "reason: %s", r.why);
    tamper("a.test", LDNS_RR_TYPE_MX, "a.test. 300 IN MX 20 mx.a.test.");
    IS_SEC(judge("a.test", LDNS_RR_TYPE_MX), DNSSEC_BOGUS, "tampered MX");
}

int main(void)
{
    struct dnssec_anchors *a;

    plan_lazy();
    W.now = time(NULL);
    build_world();
    test_anchor_files();

    a = test_anchor(0);
    ok(a != NULL, "the anchor for test, as DS");
    W.a = a;
    test_validation("DS anchor");
    W.deferred = 1;
    test_validation("DS anchor, answers later");
    W.deferred = 0;
    dnssec_anchors_free(a);

    a = test_anchor(1);
    ok(a != NULL, "the anchor for test, as DNSKEY");
    W.a = a;
    test_validation("DNSKEY anchor");
    test_faults();
    dnssec_anchors_free(a);
    for (int i = 0; i < W.n; i++)
        ldns_rr_list_deep_free(W.z[i].rrs);
    return done_testing();
}
