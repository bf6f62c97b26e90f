/*
 * dnssec - validation of one answer packet against trust anchors, over
 * ldns's crypto (contract in dnssec.h).
 *
 * dnssec_validate() cuts the answer into items, each judged on its own:
 *   RRSET   one RRset the answer uses (a CNAME of the chain, the final
 *           RRset, or an NSEC/NSEC3 RRset of a denial): its RRSIGs by a
 *           signer between the owner's anchor and the owner are checked
 *           with the signer's DNSKEY set, fetched (and judged by the
 *           fetcher: dnsd's engine validates it in turn);
 *   APEX    the DNSKEY RRset of zone Z in the answer to "Z DNSKEY":
 *           judged against Z's anchor records or Z's DS set (fetched);
 *   WALK    an RRset without usable signatures under an anchor: the DS
 *           of every name from below the anchor down to the owner is
 *           fetched until one is a secure denial of DS at a delegation
 *           (INSECURE); if none is, the RRset is BOGUS.
 * then, for NXDOMAIN/NODATA, the NSEC or NSEC3 proof (ldns's denial
 * checks) once its RRsets are known secure. The answer is BOGUS as soon
 * as one item is, else INSECURE if one item is, else SECURE.
 *
 * One fetch is outstanding at a time; its callback may come before the
 * fetch returns (a cache hit), so the judging loop (v_run) is entered
 * once and a synchronous answer only clears `waiting`. Fetches only ever
 * ask DS or DNSKEY of a name at or above an owner of the answer, and a DS
 * answer is signed by a zone strictly above its owner: every chain climbs
 * towards an anchor, so nested validations cannot wait on each other.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_answer.h"
#include "dnssec.h"
#include "base/util.h"

#define MAX_ITEMS 24
#define WHY_LEN 300
#define DNSKEY_F_ZONE 0x0100
#define DNSKEY_F_REVOKE 0x0080

struct dnssec_anchors {
    ldns_rr_list *rrs; /* DS and DNSKEY records */
    char **owners;     /* distinct normalized owner names */
    size_t nowners;
};

/* ---- names ---- */

/* name is zone or below it (normalized text, "." the root). */
static int name_under(const char *name, const char *zone)
{
    size_t n = strlen(name), z = strlen(zone);

    if (strcmp(zone, ".") == 0 || strcmp(name, zone) == 0)
        return 1;
    return n > z && name[n - z - 1] == '.' && strcmp(name + n - z, zone) == 0;
}

/* out may be name itself. */
static void name_parent(const char *name, char *out, size_t len)
{
    const char *dot = strchr(name, '.');
    const char *p = dot && dot[1] ? dot + 1 : ".";
    size_t n = strlen(p);

    if (n >= len)
        n = len - 1;
    memmove(out, p, n);
    out[n] = 0;
}

static int rdf_name(const ldns_rdf *d, char *buf)
{
    if (!d || ldns_rdf_get_type(d) != LDNS_RDF_TYPE_DNAME)
        return -1;
    return dnsans_name(d, buf, DNS_MAX_NAME + 1);
}

static int rr_owner_is(const ldns_rr *rr, const char *name)
{
    char o[DNS_MAX_NAME + 1];

    return rdf_name(ldns_rr_owner(rr), o) == 0 && strcmp(o, name) == 0;
}

static const char *type_name(ldns_rr_type t, char *buf, size_t len)
{
    char *s = ldns_rr_type2str(t);

    strlcpy_p(buf, s ? s : "?", len);
    free(s);
    return buf;
}

/* ---- trust anchors ---- */

static int anchors_add_owner(struct dnssec_anchors *a, const char *name)
{
    for (size_t i = 0; i < a->nowners; i++)
        if (strcmp(a->owners[i], name) == 0)
            return 0;
    a->owners = xrealloc(a->owners, (a->nowners + 1) * sizeof(*a->owners));
    a->owners[a->nowners++] = xstrdup(name);
    return 0;
}

/* NULL if rr may be an anchor, else why not. */
static const char *anchor_rr_check(const ldns_rr *rr)
{
    ldns_rr_type t = ldns_rr_get_type(rr);

    if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
        return "a trust anchor must be of class IN";
    if (t == LDNS_RR_TYPE_DS)
        return ldns_rr_rd_count(rr) == 4 ? NULL : "malformed DS record";
    if (t != LDNS_RR_TYPE_DNSKEY)
        return "a trust anchor must be a DS or DNSKEY record";
    if (ldns_rr_rd_count(rr) != 4)
        return "malformed DNSKEY record";
    if (!(ldns_rdf2native_int16(ldns_rr_rdf(rr, 0)) & DNSKEY_F_ZONE))
        return "the DNSKEY is not a zone key (flag 256 unset)";
    return NULL;
}

struct dnssec_anchors *dnssec_anchors_load(const char *path, char **err)
{
    struct dnssec_anchors *a;
    FILE *fp = fopen(path, "r");
    uint32_t ttl = 3600;
    ldns_rdf *origin = NULL, *prev = NULL;
    int line = 1;

    *err = NULL;
    if (!fp) {
        *err = xasprintf("%s: cannot read the DNSSEC trust anchors: %m", path);
        return NULL;
    }
    a = xcalloc(1, sizeof(*a));
    a->rrs = ldns_rr_list_new();
    while (!feof(fp)) {
        ldns_rr *rr = NULL;
        int at = line;
        ldns_status s = ldns_rr_new_frm_fp_l(&rr, fp, &ttl, &origin, &prev, &line);
        const char *why;
        char name[DNS_MAX_NAME + 1];

        if (s == LDNS_STATUS_SYNTAX_EMPTY || s == LDNS_STATUS_SYNTAX_TTL ||
            s == LDNS_STATUS_SYNTAX_ORIGIN || s == LDNS_STATUS_SYNTAX_INCLUDE) {
            if (s == LDNS_STATUS_SYNTAX_INCLUDE) {
                *err = xasprintf("%s:%d: $INCLUDE is not allowed in a trust-anchor file", path, at);
                break;
            }
            continue;
        }
        if (s != LDNS_STATUS_OK || !rr) {
            *err = xasprintf("%s:%d: %s", path, at, ldns_get_errorstr_by_id(s));
            break;
        }
        if ((why = anchor_rr_check(rr)) != NULL || rdf_name(ldns_rr_owner(rr), name) < 0) {
            *err = xasprintf("%s:%d: %s", path, at, why ? why : "bad owner");
            ldns_rr_free(rr);
            break;
        }
        anchors_add_owner(a, name);
        ldns_rr_list_push_rr(a->rrs, rr);
    }
    fclose(fp);
    ldns_rdf_deep_free(origin);
    ldns_rdf_deep_free(prev);
    if (!*err && ldns_rr_list_rr_count(a->rrs) == 0)
        *err = xasprintf("%s: no DS or DNSKEY record (no trust anchor)", path);
    if (*err) {
        dnssec_anchors_free(a);
        return NULL;
    }
    return a;
}

void dnssec_anchors_free(struct dnssec_anchors *a)
{
    if (!a)
        return;
    ldns_rr_list_deep_free(a->rrs);
    for (size_t i = 0; i < a->nowners; i++)
        free(a->owners[i]);
    free(a->owners);
    free(a);
}

size_t dnssec_anchors_count(const struct dnssec_anchors *a)
{
    return a ? ldns_rr_list_rr_count(a->rrs) : 0;
}

const char *dnssec_anchor_for(const struct dnssec_anchors *a, const char *name)
{
    const char *best = NULL;

    for (size_t i = 0; a && i < a->nowners; i++)
        if (name_under(name, a->owners[i]) &&
            (!best || strlen(a->owners[i]) > strlen(best) || strcmp(best, ".") == 0))
            best = a->owners[i];
    return best;
}

/* ---- one validation ---- */

enum item_kind { IT_RRSET, IT_APEX, IT_WALK };

struct item {
    enum item_kind kind;
    char owner[DNS_MAX_NAME + 1];
    ldns_rr_type type;
    ldns_rr_list *rrset; /* owned copies */
    ldns_rr_list *sigs;  /* RRSIGs over it, owned copies */
    /* signers must be at or above this name (the denied name for NSEC
     * RRsets), strictly above it for DS */
    char bound[DNS_MAX_NAME + 1];
    int strict;
    /* IT_WALK: the name the DS walk goes down to, the next name's index */
    char target[DNS_MAX_NAME + 1];
    int walk_next;
    int stage; /* 0: not started, 1: fetch sent */
};

struct val {
    const struct dnssec_anchors *a;
    dnssec_fetch_fn fetch;
    void *fetch_arg;
    ldns_pkt *pkt;
    char qname[DNS_MAX_NAME + 1];
    char final[DNS_MAX_NAME + 1]; /* the name the answer is about after CNAMEs */
    ldns_rr_type qt;
    time_t now;
    dnssec_cb cb;
    void *arg;
    struct item items[MAX_ITEMS];
    size_t nitems, cur;
    int negative; /* NXDOMAIN or NODATA at final: check the denial at the end */
    int nsec3;
    enum dnssec_status st;
    char why[WHY_LEN];
    int fetches;
    int running, waiting;
    /* the last fetch's answer */
    ldns_pkt *fpkt;
    int fsec;
    char fwhy[WHY_LEN];
};

static void v_bogus(struct val *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void v_bogus(struct val *v, const char *fmt, ...)
{
    va_list ap;

    if (v->st == DNSSEC_BOGUS)
        return;
    v->st = DNSSEC_BOGUS;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof(v->why), fmt, ap);
    va_end(ap);
}

static void v_insecure(struct val *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void v_insecure(struct val *v, const char *fmt, ...)
{
    va_list ap;

    if (v->st != DNSSEC_SECURE)
        return;
    v->st = DNSSEC_INSECURE;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof(v->why), fmt, ap);
    va_end(ap);
}

static void item_free(struct item *it)
{
    ldns_rr_list_deep_free(it->rrset);
    ldns_rr_list_deep_free(it->sigs);
    it->rrset = it->sigs = NULL;
}

static void v_free(struct val *v)
{
    for (size_t i = 0; i < v->nitems; i++)
        item_free(&v->items[i]);
    ldns_pkt_free(v->pkt);
    ldns_pkt_free(v->fpkt);
    free(v);
}

/* RRs of type t owned by name in section sec, copied (NULL if none). For
 * RRSIG, t is the type covered. */
static ldns_rr_list *pick(const ldns_pkt *p, ldns_pkt_section sec, const char *name, ldns_rr_type t,
                          int sigs)
{
    ldns_rr_list *l = sec == LDNS_SECTION_ANSWER      ? ldns_pkt_answer(p)
                      : sec == LDNS_SECTION_AUTHORITY ? ldns_pkt_authority(p)
                                                      : ldns_pkt_additional(p);
    ldns_rr_list *out = NULL;

    for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
        ldns_rr *rr = ldns_rr_list_rr(l, i);
        ldns_rr_type rt = ldns_rr_get_type(rr);

        if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !rr_owner_is(rr, name))
            continue;
        if (sigs) {
            ldns_rdf *tc = ldns_rr_rrsig_typecovered(rr);
            if (rt != LDNS_RR_TYPE_RRSIG || ldns_rr_rd_count(rr) != 9 || !tc ||
                ldns_rdf_size(tc) != 2 || ldns_rdf2rr_type(tc) != t)
                continue;
        } else if (rt != t) {
            continue;
        }
        if (!out)
            out = ldns_rr_list_new();
        ldns_rr_list_push_rr(out, ldns_rr_clone(rr));
    }
    return out;
}

static struct item *v_add(struct val *v, enum item_kind k, const char *owner, ldns_rr_type t)
{
    struct item *it;

    if (v->nitems >= MAX_ITEMS) {
        v_bogus(v, "answer for %s uses more than %d RRsets", v->qname, MAX_ITEMS);
        return NULL;
    }
    it = &v->items[v->nitems++];
    memset(it, 0, sizeof(*it));
    it->kind = k;
    it->type = t;
    strlcpy_p(it->owner, owner, sizeof(it->owner));
    strlcpy_p(it->bound, owner, sizeof(it->bound));
    it->strict = t == LDNS_RR_TYPE_DS;
    return it;
}

static void v_add_rrset(struct val *v, ldns_pkt_section sec, const char *owner, ldns_rr_type t,
                        ldns_rr_list *rrset)
{
    struct item *it;
    int apex =
        t == LDNS_RR_TYPE_DNSKEY && v->qt == LDNS_RR_TYPE_DNSKEY && strcmp(owner, v->qname) == 0;

    if (!(it = v_add(v, apex ? IT_APEX : IT_RRSET, owner, t))) {
        ldns_rr_list_deep_free(rrset);
        return;
    }
    it->rrset = rrset;
    it->sigs = pick(v->pkt, sec, owner, t, 1);
}

/* The NSEC or NSEC3 RRsets of the authority section, one item each. */
static void v_add_denial(struct val *v)
{
    ldns_rr_list *auth = ldns_pkt_authority(v->pkt);
    ldns_rr_type dt = LDNS_RR_TYPE_NSEC;
    size_t n = auth ? ldns_rr_list_rr_count(auth) : 0;
    int any = 0;

    for (size_t i = 0; i < n; i++)
        if (ldns_rr_get_type(ldns_rr_list_rr(auth, i)) == LDNS_RR_TYPE_NSEC3)
            dt = LDNS_RR_TYPE_NSEC3;
    v->nsec3 = dt == LDNS_RR_TYPE_NSEC3;
    v->negative = 1;
    for (size_t i = 0; i < n && v->st != DNSSEC_BOGUS; i++) {
        ldns_rr *rr = ldns_rr_list_rr(auth, i);
        char owner[DNS_MAX_NAME + 1];
        int seen = 0;

        if (ldns_rr_get_type(rr) != dt || rdf_name(ldns_rr_owner(rr), owner) < 0)
            continue;
        for (size_t j = 0; j < v->nitems; j++)
            if (strcmp(v->items[j].owner, owner) == 0 && v->items[j].type == dt)
                seen = 1;
        if (seen)
            continue;
        v_add_rrset(v, LDNS_SECTION_AUTHORITY, owner, dt,
                    pick(v->pkt, LDNS_SECTION_AUTHORITY, owner, dt, 0));
        if (v->nitems > 0 && v->items[v->nitems - 1].type == dt) {
            struct item *it = &v->items[v->nitems - 1];
            strlcpy_p(it->bound, v->final, sizeof(it->bound));
            it->strict = v->qt == LDNS_RR_TYPE_DS;
            /* an unsigned NSEC: prove the zone of the denied name unsigned */
            strlcpy_p(it->target, v->final, sizeof(it->target));
        }
        any = 1;
    }
    if (!any) {
        /* no proof at all: fine only if the name is in an unsigned zone */
        struct item *it = v_add(v, IT_WALK, v->final, v->qt);
        if (it)
            strlcpy_p(it->target, v->final, sizeof(it->target));
        v->negative = 0;
    }
}

/* Cut the answer into items (see the top of the file). */
static void v_plan(struct val *v)
{
    ldns_pkt_rcode rc = ldns_pkt_get_rcode(v->pkt);
    int follow =
        v->qt != LDNS_RR_TYPE_DS && v->qt != LDNS_RR_TYPE_DNSKEY && v->qt != LDNS_RR_TYPE_CNAME;
    char cur[DNS_MAX_NAME + 1];
    int hops = 0;

    if (rc != LDNS_RCODE_NOERROR && rc != LDNS_RCODE_NXDOMAIN) {
        v_bogus(v, "not an answer (rcode %d)", (int)rc);
        return;
    }
    strlcpy_p(cur, v->qname, sizeof(cur));
    for (;;) {
        ldns_rr_list *data = pick(v->pkt, LDNS_SECTION_ANSWER, cur, v->qt, 0);
        ldns_rr_list *cn;

        if (data && rc == LDNS_RCODE_NOERROR) {
            v_add_rrset(v, LDNS_SECTION_ANSWER, cur, v->qt, data);
            return;
        }
        ldns_rr_list_deep_free(data);
        cn = follow ? pick(v->pkt, LDNS_SECTION_ANSWER, cur, LDNS_RR_TYPE_CNAME, 0) : NULL;
        if (!cn)
            break;
        if (ldns_rr_list_rr_count(cn) != 1 || ldns_rr_rd_count(ldns_rr_list_rr(cn, 0)) != 1 ||
            ++hops > DNSANS_MAX_HOPS) {
            v_bogus(v, "bad CNAME chain at %s", cur);
            ldns_rr_list_deep_free(cn);
            return;
        }
        {
            char next[DNS_MAX_NAME + 1];
            if (rdf_name(ldns_rr_rdf(ldns_rr_list_rr(cn, 0), 0), next) < 0) {
                v_bogus(v, "bad CNAME target at %s", cur);
                ldns_rr_list_deep_free(cn);
                return;
            }
            v_add_rrset(v, LDNS_SECTION_ANSWER, cur, LDNS_RR_TYPE_CNAME, cn);
            strlcpy_p(cur, next, sizeof(cur));
        }
        if (v->st == DNSSEC_BOGUS)
            return;
    }
    strlcpy_p(v->final, cur, sizeof(v->final));
    if (hops > 0 && rc == LDNS_RCODE_NOERROR)
        return; /* the alias leaves the packet: its target is asked (and judged) apart */
    v_add_denial(v);
}

/* ---- judging ---- */

static void v_run(struct val *v);

static void v_fetched(const ldns_pkt *pkt, int sec, const char *why, void *ctx)
{
    struct val *v = ctx;

    ldns_pkt_free(v->fpkt);
    v->fpkt = pkt ? ldns_pkt_clone(pkt) : NULL;
    v->fsec = sec;
    snprintf(v->fwhy, sizeof(v->fwhy), "%s", why ? why : (pkt ? "" : "lookup failed"));
    v->waiting = 0;
    v_run(v);
}

/* Ask for name/t; 0 when sent (the item resumes in its next stage). */
static int v_fetch(struct val *v, const char *name, ldns_rr_type t)
{
    char tn[16];

    if (v->fetches >= DNSSEC_MAX_DEPTH) {
        v_bogus(v, "chain of trust needs more than %d lookups (at %s/%s)", DNSSEC_MAX_DEPTH, name,
                type_name(t, tn, sizeof(tn)));
        return -1;
    }
    v->fetches++;
    v->waiting = 1;
    v->fetch(v->fetch_arg, name, t, v_fetched, v);
    return 0;
}

/* The fetched answer's usable state, or -1 after marking v bogus. */
static int v_fetch_usable(struct val *v, const char *name, const char *what)
{
    if (!v->fpkt) {
        v_bogus(v, "%s lookup for %s failed: %s", what, name, v->fwhy);
        return -1;
    }
    if (v->fsec == DNSSEC_BOGUS) {
        v_bogus(v, "%s of %s is bogus: %s", what, name, v->fwhy);
        return -1;
    }
    return v->fsec == DNSSEC_SECURE ? DNSSEC_SECURE : DNSSEC_INSECURE;
}

static void date_str(const ldns_rdf *d, char *buf, size_t len)
{
    time_t t;
    struct tm tm;

    if (!d || ldns_rdf_size(d) != 4) {
        strlcpy_p(buf, "?", len);
        return;
    }
    t = ldns_rdf2native_time_t(d);
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/* Signatures of it by a signer in [anchor, bound]: the first usable
 * signer into signer, and 1; 0 if there is none. */
static int item_signer(const struct val *v, const struct item *it, const char *anchor, char *signer)
{
    for (size_t i = 0; it->sigs && i < ldns_rr_list_rr_count(it->sigs); i++) {
        ldns_rr *sig = ldns_rr_list_rr(it->sigs, i);
        char s[DNS_MAX_NAME + 1];

        if (rdf_name(ldns_rr_rrsig_signame(sig), s) < 0)
            continue;
        if (!name_under(s, anchor) || !name_under(it->owner, s) || !name_under(it->bound, s))
            continue;
        if (it->strict && strcmp(s, it->bound) == 0)
            continue;
        strlcpy_p(signer, s, DNS_MAX_NAME + 1);
        return 1;
    }
    return 0;
}

/* Verify it's RRSIGs by signer with keys; 0 if one verifies, else -1
 * with v bogus and why. */
static int item_verify(struct val *v, struct item *it, const char *signer, const ldns_rr_list *keys)
{
    ldns_status last = LDNS_STATUS_CRYPTO_NO_MATCHING_KEYTAG_DNSKEY;
    const ldns_rr *lastsig = NULL;
    char tn[16], date[32];

    for (size_t i = 0; it->sigs && i < ldns_rr_list_rr_count(it->sigs); i++) {
        ldns_rr *sig = ldns_rr_list_rr(it->sigs, i);
        char s[DNS_MAX_NAME + 1];
        ldns_status st;

        if (rdf_name(ldns_rr_rrsig_signame(sig), s) < 0 || strcmp(s, signer) != 0)
            continue;
        st = ldns_verify_rrsig_keylist_time(it->rrset, sig, keys, v->now, NULL);
        if (st == LDNS_STATUS_OK)
            return 0;
        last = st;
        lastsig = sig;
    }
    type_name(it->type, tn, sizeof(tn));
    if (last == LDNS_STATUS_CRYPTO_SIG_EXPIRED) {
        date_str(ldns_rr_rrsig_expiration(lastsig), date, sizeof(date));
        v_bogus(v, "RRSIG over %s/%s expired %s", it->owner, tn, date);
    } else if (last == LDNS_STATUS_CRYPTO_SIG_NOT_INCEPTED) {
        date_str(ldns_rr_rrsig_inception(lastsig), date, sizeof(date));
        v_bogus(v, "RRSIG over %s/%s not valid before %s", it->owner, tn, date);
    } else {
        v_bogus(v, "RRSIG over %s/%s does not verify with the DNSKEYs of %s: %s", it->owner, tn,
                signer, ldns_get_errorstr_by_id(last));
    }
    return -1;
}

/* Turn an RRset item that has no usable signature into a walk. */
static void item_to_walk(struct item *it)
{
    it->kind = IT_WALK;
    if (!it->target[0]) {
        if (it->type == LDNS_RR_TYPE_DS)
            name_parent(it->owner, it->target, sizeof(it->target));
        else
            strlcpy_p(it->target, it->owner, sizeof(it->target));
    }
    it->stage = 0;
    it->walk_next = 0;
}

/* One step of an RRset item: 1 when the item is done. */
static int step_rrset(struct val *v, struct item *it)
{
    const char *anchor = dnssec_anchor_for(v->a, it->owner);
    char signer[DNS_MAX_NAME + 1], tn[16];
    ldns_rr_list *keys;
    int u;

    if (!anchor) {
        v_insecure(v, "no trust anchor for %s", it->owner);
        return 1;
    }
    if (!item_signer(v, it, anchor, signer)) {
        item_to_walk(it);
        return 0;
    }
    if (it->stage == 0) {
        it->stage = 1;
        return v_fetch(v, signer, LDNS_RR_TYPE_DNSKEY) < 0;
    }
    if ((u = v_fetch_usable(v, signer, "DNSKEY")) < 0)
        return 1;
    if (u == DNSSEC_INSECURE) {
        v_insecure(v, "%s/%s is signed by %s, an insecure zone", it->owner,
                   type_name(it->type, tn, sizeof(tn)), signer);
        return 1;
    }
    keys = pick(v->fpkt, LDNS_SECTION_ANSWER, signer, LDNS_RR_TYPE_DNSKEY, 0);
    if (!keys)
        v_bogus(v, "no DNSKEY for %s", signer);
    else
        item_verify(v, it, signer, keys);
    ldns_rr_list_deep_free(keys);
    return 1;
}

static int ds_usable(const ldns_rr *ds)
{
    uint8_t alg, dt;

    if (ldns_rr_get_type(ds) != LDNS_RR_TYPE_DS || ldns_rr_rd_count(ds) != 4 ||
        ldns_rdf_size(ldns_rr_rdf(ds, 1)) != 1 || ldns_rdf_size(ldns_rr_rdf(ds, 2)) != 1)
        return 0;
    alg = ldns_rdf2native_int8(ldns_rr_rdf(ds, 1));
    dt = ldns_rdf2native_int8(ldns_rr_rdf(ds, 2));
    if (dt != LDNS_SHA1 && dt != LDNS_SHA256 && dt != LDNS_SHA384)
        return 0;
    return alg == LDNS_RSASHA1 || alg == LDNS_RSASHA1_NSEC3 || alg == LDNS_RSASHA256 ||
           alg == LDNS_RSASHA512 || alg == LDNS_ECDSAP256SHA256 || alg == LDNS_ECDSAP384SHA384 ||
           alg == LDNS_ED25519 || alg == LDNS_ED448;
}

static int key_is_zone_key(const ldns_rr *k)
{
    uint16_t f;

    if (ldns_rr_get_type(k) != LDNS_RR_TYPE_DNSKEY || ldns_rr_rd_count(k) != 4 ||
        ldns_rdf_size(ldns_rr_rdf(k, 0)) != 2)
        return 0;
    f = ldns_rdf2native_int16(ldns_rr_rdf(k, 0));
    return (f & DNSKEY_F_ZONE) && !(f & DNSKEY_F_REVOKE);
}

static int same_key(const ldns_rr *a, const ldns_rr *b)
{
    if (ldns_rr_get_type(b) != LDNS_RR_TYPE_DNSKEY || ldns_rr_rd_count(b) != 4)
        return 0;
    for (size_t i = 0; i < 4; i++)
        if (ldns_rdf_compare(ldns_rr_rdf(a, i), ldns_rr_rdf(b, i)) != 0)
            return 0;
    return 1;
}

/*
 * The DNSKEY set of zone it->owner against trusted records (DS, or the
 * anchor's DS and DNSKEY): keys matched by one of them must sign the set.
 * Returns 1 (done) after setting v's state.
 */
static int apex_judge(struct val *v, struct item *it, const ldns_rr_list *trusted, const char *what)
{
    ldns_rr_list *matched = ldns_rr_list_new();
    int usable = 0;

    for (size_t i = 0; trusted && i < ldns_rr_list_rr_count(trusted); i++) {
        const ldns_rr *t = ldns_rr_list_rr(trusted, i);
        int is_ds = ldns_rr_get_type(t) == LDNS_RR_TYPE_DS;

        if (is_ds && !ds_usable(t))
            continue;
        usable = 1;
        for (size_t k = 0; it->rrset && k < ldns_rr_list_rr_count(it->rrset); k++) {
            ldns_rr *key = ldns_rr_list_rr(it->rrset, k);
            if (!key_is_zone_key(key))
                continue;
            if (is_ds ? ldns_rr_compare_ds(key, t) : same_key(t, key))
                ldns_rr_list_push_rr(matched, key);
        }
    }
    if (!usable) {
        /* RFC 4035 5.2: no DS with an algorithm we know: treat as unsigned */
        v_insecure(v, "no DS of %s has a supported algorithm", it->owner);
    } else if (ldns_rr_list_rr_count(matched) == 0) {
        v_bogus(v, "no %s for %s matches its DNSKEY set", what, it->owner);
    } else {
        item_verify(v, it, it->owner, matched);
    }
    ldns_rr_list_free(matched); /* the keys belong to it->rrset */
    return 1;
}

static int step_apex(struct val *v, struct item *it)
{
    const char *anchor = dnssec_anchor_for(v->a, it->owner);
    ldns_rr_list *ds;
    int u, r;

    if (!anchor) {
        v_insecure(v, "no trust anchor for %s", it->owner);
        return 1;
    }
    if (strcmp(anchor, it->owner) == 0) {
        ldns_rr_list *tr = ldns_rr_list_new();
        for (size_t i = 0; i < ldns_rr_list_rr_count(v->a->rrs); i++)
            if (rr_owner_is(ldns_rr_list_rr(v->a->rrs, i), anchor))
                ldns_rr_list_push_rr(tr, ldns_rr_list_rr(v->a->rrs, i));
        r = apex_judge(v, it, tr, "trust anchor");
        ldns_rr_list_free(tr);
        return r;
    }
    if (it->stage == 0) {
        it->stage = 1;
        return v_fetch(v, it->owner, LDNS_RR_TYPE_DS) < 0;
    }
    if ((u = v_fetch_usable(v, it->owner, "DS")) < 0)
        return 1;
    if (u == DNSSEC_INSECURE) {
        v_insecure(v, "DS of %s is insecure", it->owner);
        return 1;
    }
    ds = pick(v->fpkt, LDNS_SECTION_ANSWER, it->owner, LDNS_RR_TYPE_DS, 0);
    if (!ds) {
        v_insecure(v, "%s has no DS: an unsigned delegation", it->owner);
        return 1;
    }
    r = apex_judge(v, it, ds, "DS");
    ldns_rr_list_deep_free(ds);
    return r;
}

/* Does a secure DS denial for name show an unsigned delegation (NS, no
 * DS, not the apex of a zone), or an NSEC3 opt-out span over it? */
static int denial_is_insecure_cut(const ldns_pkt *p, const char *name)
{
    ldns_rr_list *auth = ldns_pkt_authority(p);
    ldns_rdf *dname = NULL;
    int cut = 0;

    if (ldns_str2rdf_dname(&dname, name) != LDNS_STATUS_OK)
        return 0;
    for (size_t i = 0; auth && i < ldns_rr_list_rr_count(auth) && !cut; i++) {
        ldns_rr *rr = ldns_rr_list_rr(auth, i);
        ldns_rr_type t = ldns_rr_get_type(rr);
        ldns_rdf *bitmap;
        int match = 0;

        if (t == LDNS_RR_TYPE_NSEC && ldns_rr_rd_count(rr) == 2) {
            match = rr_owner_is(rr, name);
        } else if (t == LDNS_RR_TYPE_NSEC3 && ldns_rr_rd_count(rr) == 6) {
            ldns_rdf *h = ldns_nsec3_hash_name_frm_nsec3(rr, dname);
            ldns_rdf *label = ldns_dname_label(ldns_rr_owner(rr), 0);
            match = h && label && ldns_dname_compare(h, label) == 0;
            ldns_rdf_deep_free(label);
            if (!match && h && ldns_nsec3_optout(rr)) {
                ldns_rdf *zone = ldns_dname_left_chop(ldns_rr_owner(rr));
                if (zone && ldns_dname_cat(h, zone) == LDNS_STATUS_OK &&
                    ldns_nsec_covers_name(rr, h))
                    cut = 1;
                ldns_rdf_deep_free(zone);
            }
            ldns_rdf_deep_free(h);
        } else {
            continue;
        }
        if (!match)
            continue;
        bitmap = ldns_nsec_get_bitmap(rr);
        if (bitmap && ldns_nsec_bitmap_covers_type(bitmap, LDNS_RR_TYPE_NS) &&
            !ldns_nsec_bitmap_covers_type(bitmap, LDNS_RR_TYPE_DS) &&
            !ldns_nsec_bitmap_covers_type(bitmap, LDNS_RR_TYPE_SOA))
            cut = 1;
    }
    ldns_rdf_deep_free(dname);
    return cut;
}

/* The walk's names: target's ancestors below anchor, then target. The
 * i-th into out; 0 when there is none. */
static int walk_name(const char *anchor, const char *target, int i, char *out)
{
    char names[DNS_MAX_NAME / 2 + 2][DNS_MAX_NAME + 1];
    char cur[DNS_MAX_NAME + 1];
    int n = 0;

    strlcpy_p(cur, target, sizeof(cur));
    while (strcmp(cur, anchor) != 0 && name_under(cur, anchor) && n < (int)nitems(names)) {
        strlcpy_p(names[n++], cur, sizeof(names[0]));
        name_parent(cur, cur, sizeof(cur));
        if (strcmp(cur, ".") == 0 && strcmp(anchor, ".") != 0)
            break;
    }
    if (i >= n)
        return 0;
    strlcpy_p(out, names[n - 1 - i], DNS_MAX_NAME + 1);
    return 1;
}

static int step_walk(struct val *v, struct item *it)
{
    const char *anchor = dnssec_anchor_for(v->a, it->target);
    char name[DNS_MAX_NAME + 1], tn[16];
    ldns_rr_list *ds;
    int u;

    type_name(it->type, tn, sizeof(tn));
    if (!anchor) {
        v_insecure(v, "no trust anchor for %s", it->target);
        return 1;
    }
    if (!walk_name(anchor, it->target, it->walk_next, name)) {
        v_bogus(v, "no valid RRSIG over %s/%s", it->owner, tn);
        return 1;
    }
    if (it->stage == 0) {
        it->stage = 1;
        return v_fetch(v, name, LDNS_RR_TYPE_DS) < 0;
    }
    it->stage = 0;
    it->walk_next++;
    if ((u = v_fetch_usable(v, name, "DS")) < 0)
        return 1;
    if (u == DNSSEC_INSECURE) {
        v_insecure(v, "%s is below an insecure delegation", it->owner);
        return 1;
    }
    if (ldns_pkt_get_rcode(v->fpkt) == LDNS_RCODE_NXDOMAIN) {
        v_bogus(v, "no valid RRSIG over %s/%s (%s does not exist)", it->owner, tn, name);
        return 1;
    }
    ds = pick(v->fpkt, LDNS_SECTION_ANSWER, name, LDNS_RR_TYPE_DS, 0);
    if (!ds && denial_is_insecure_cut(v->fpkt, name)) {
        v_insecure(v, "%s is an unsigned delegation", name);
        return 1;
    }
    ldns_rr_list_deep_free(ds);
    return 0; /* a signed cut, or no cut: one label further down */
}

/* The NSEC/NSEC3 proof for final/qt, once its RRsets are secure. */
static void v_check_denial(struct val *v)
{
    ldns_rr_list *auth = ldns_pkt_authority(v->pkt);
    ldns_rr_list *nsecs = ldns_rr_list_new(), *sigs = ldns_rr_list_new();
    ldns_rr *q = ldns_rr_new();
    ldns_rdf *d = NULL;
    ldns_pkt_rcode rc = ldns_pkt_get_rcode(v->pkt);
    ldns_status s = LDNS_STATUS_ERR;
    char tn[16];

    for (size_t i = 0; auth && i < ldns_rr_list_rr_count(auth); i++) {
        ldns_rr *rr = ldns_rr_list_rr(auth, i);
        ldns_rr_type t = ldns_rr_get_type(rr);
        if (t == (v->nsec3 ? LDNS_RR_TYPE_NSEC3 : LDNS_RR_TYPE_NSEC))
            ldns_rr_list_push_rr(nsecs, rr);
        else if (t == LDNS_RR_TYPE_RRSIG)
            ldns_rr_list_push_rr(sigs, rr);
    }
    if (ldns_str2rdf_dname(&d, v->final) == LDNS_STATUS_OK && d) {
        ldns_rr_set_owner(q, d);
        ldns_rr_set_type(q, v->qt);
        ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
        if (v->nsec3)
            s = ldns_dnssec_verify_denial_nsec3(q, nsecs, sigs, rc, v->qt,
                                                ldns_pkt_ancount(v->pkt) == 0);
        else
            s = ldns_dnssec_verify_denial(q, nsecs, sigs);
    }
    if (s == LDNS_STATUS_OK && !v->nsec3 && rc == LDNS_RCODE_NXDOMAIN) {
        /* ldns accepts a NODATA proof too: an NSEC at the name says it exists */
        for (size_t i = 0; i < ldns_rr_list_rr_count(nsecs); i++)
            if (rr_owner_is(ldns_rr_list_rr(nsecs, i), v->final))
                s = LDNS_STATUS_DNSSEC_NSEC_RR_NOT_COVERED;
    }
    if (s != LDNS_STATUS_OK)
        v_bogus(v, "%s of %s/%s not proven: %s", rc == LDNS_RCODE_NXDOMAIN ? "NXDOMAIN" : "NODATA",
                v->final, type_name(v->qt, tn, sizeof(tn)), ldns_get_errorstr_by_id(s));
    ldns_rr_free(q);
    ldns_rr_list_free(nsecs);
    ldns_rr_list_free(sigs);
}

static int v_step(struct val *v)
{
    struct item *it;

    if (v->st == DNSSEC_BOGUS || v->cur >= v->nitems)
        return 1;
    it = &v->items[v->cur];
    switch (it->kind) {
    case IT_RRSET:
        if (!step_rrset(v, it))
            return 0;
        break;
    case IT_APEX:
        if (!step_apex(v, it))
            return 0;
        break;
    case IT_WALK:
        if (!step_walk(v, it))
            return 0;
        break;
    }
    v->cur++;
    return 0;
}

static void v_run(struct val *v)
{
    if (v->running)
        return; /* a fetch answered at once: the loop below goes on */
    v->running = 1;
    while (!v->waiting) {
        if (v->st == DNSSEC_BOGUS || v->cur >= v->nitems)
            break;
        v_step(v);
    }
    v->running = 0;
    if (v->waiting)
        return;
    if (v->st == DNSSEC_SECURE && v->negative)
        v_check_denial(v);
    if (v->st == DNSSEC_SECURE && v->nitems == 0)
        v_bogus(v, "nothing in the answer to %s could be judged", v->qname);
    v->cb(v->st, v->why, v->arg);
    v_free(v);
}

void dnssec_validate(const struct dnssec_anchors *a, dnssec_fetch_fn fetch, void *fetch_arg,
                     const ldns_pkt *pkt, const char *qname, ldns_rr_type qt, time_t now,
                     dnssec_cb cb, void *arg)
{
    struct val *v;

    if (!dnssec_anchor_for(a, qname)) {
        cb(DNSSEC_INSECURE, "no trust anchor", arg);
        return;
    }
    v = xcalloc(1, sizeof(*v));
    v->a = a;
    v->fetch = fetch;
    v->fetch_arg = fetch_arg;
    v->pkt = ldns_pkt_clone(pkt);
    strlcpy_p(v->qname, qname, sizeof(v->qname));
    strlcpy_p(v->final, qname, sizeof(v->final));
    v->qt = qt;
    v->now = now;
    v->cb = cb;
    v->arg = arg;
    v->st = DNSSEC_SECURE;
    if (!v->pkt)
        v_bogus(v, "cannot copy the answer");
    else
        v_plan(v);
    v_run(v);
}
