/*
 * dns_lookup - MX sets and host addresses from single DNS questions
 * (contract in dns_lookup.h).
 *
 * A struct lookup counts the questions it still waits for in `pending`;
 * starting holds one extra count so that answers coming straight from the
 * cache cannot finish it while it is still being set up.
 *
 * DNSSEC: each answer's status (dnsq_answer.sec) is kept with what it
 * gave (the MX set, each address family, each TLSA question); a chain of
 * CNAMEs is secure only if every answer along it is. With DNS_Q_DANE the
 * lookup has a second phase: when the addresses are known, the TLSA
 * questions of the secure hosts are asked at once, and lk_finish runs
 * again when they are answered (tlsa_started tells the phases apart).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_answer.h"
#include "dns_lookup.h"
#include "sts_join.h"
#include "base/log.h"
#include "base/util.h"

enum fam_state { FAM_PENDING, FAM_DATA, FAM_NODATA, FAM_NXDOMAIN, FAM_TEMP, FAM_LOOP };

struct lookup;

struct famlk {
    struct hostlk *h;
    ldns_rr_type type;
    char name[DNS_MAX_NAME + 1];
    int hops;
    enum fam_state st;
    int sec; /* of every answer used (CNAME hops too) */
    char why[600];
    struct dns_host addrs; /* collects this family's addresses */
};

struct hostlk {
    struct lookup *lk;
    size_t host; /* index in lk->res.hosts */
    struct famlk fam[2];
};

/* One TLSA question (_port._tcp.host) of the DANE phase. */
struct tlsalk {
    struct lookup *lk;
    size_t host;
    char name[DNS_MAX_NAME + 1];
    int hops;
    int sec;
};

struct lookup {
    struct dnsq_engine *e;
    struct dns_result res;
    int pending;
    int is_mx;
    lookup_cb cb;
    void *arg;
    char domain[DNS_MAX_NAME + 1];
    char mxname[DNS_MAX_NAME + 1];
    int hops;
    struct hostlk *hl;
    size_t nhl;
    /* DNSSEC and DANE */
    unsigned qflags; /* DNS_Q_* of the request */
    uint16_t port;   /* the request's port, for TLSA names */
    int mx_sec;      /* every MX answer along the CNAME chain */
    int tlsa_started;
    struct tlsalk *tl;
    size_t ntl;
};

/* The status of a chain: secure only while every answer is. */
static int sec_and(int a, int b)
{
    return a == DNSSEC_SECURE && b == DNSSEC_SECURE ? DNSSEC_SECURE : DNSSEC_INSECURE;
}

static void lk_finish(struct lookup *lk);

static void lk_release(struct lookup *lk)
{
    if (--lk->pending == 0)
        lk_finish(lk);
}

static void lk_free(struct lookup *lk)
{
    for (size_t i = 0; i < lk->nhl; i++)
        for (int f = 0; f < 2; f++)
            free(lk->hl[i].fam[f].addrs.addrs);
    free(lk->hl);
    free(lk->tl);
    dns_result_free(&lk->res);
    free(lk);
}

/* ---- host addresses ---- */

static void fam_ask(struct famlk *fl);

static void fam_answer(const struct dnsq_answer *a, void *arg)
{
    struct famlk *fl = arg;
    struct lookup *lk = fl->h->lk;
    struct dnsans an;
    uint32_t ttl = 0;

    if (!a->ok) {
        fl->st = FAM_TEMP;
        snprintf(fl->why, sizeof(fl->why), "%s", a->why);
        lk_release(lk);
        return;
    }
    fl->sec = sec_and(fl->sec, a->sec);
    dnsans_examine(a->pkt, fl->name, fl->type, DNSANS_MAX_HOPS, &an);
    fl->hops += an.hops;
    switch (an.kind) {
    case DNSANS_DATA:
        dnsans_addrs(a->pkt, LDNS_SECTION_ANSWER, an.final, &fl->addrs, &ttl);
        fl->st = fl->addrs.naddrs ? FAM_DATA : FAM_NODATA;
        break;
    case DNSANS_NODATA:
        fl->st = FAM_NODATA;
        break;
    case DNSANS_NXDOMAIN:
        fl->st = FAM_NXDOMAIN;
        break;
    case DNSANS_CHASE:
        if (fl->hops < DNSANS_MAX_HOPS) {
            strlcpy_p(fl->name, an.final, sizeof(fl->name));
            fl->hops++;
            fam_ask(fl); /* takes over this question's count */
            return;
        }
        /* fall through */
    case DNSANS_LOOP:
        fl->st = FAM_LOOP;
        snprintf(fl->why, sizeof(fl->why), "CNAME loop or chain longer than %d at %s",
                 DNSANS_MAX_HOPS, an.final);
        break;
    case DNSANS_ERROR:
        fl->st = FAM_TEMP;
        snprintf(fl->why, sizeof(fl->why), "bad answer for %s", fl->name);
        break;
    }
    lk_release(lk);
}

static void fam_ask(struct famlk *fl)
{
    dnsq_ask(fl->h->lk->e, fl->name, fl->type, fam_answer, fl);
}

/* Decide a host's class and reason from its two families. */
static void host_conclude(struct hostlk *hl)
{
    struct dns_host *h = &hl->lk->res.hosts[hl->host];
    struct famlk *a = &hl->fam[0], *b = &hl->fam[1];
    char *why;

    for (int f = 0; f < 2; f++)
        for (size_t i = 0; i < hl->fam[f].addrs.naddrs; i++)
            dns_host_add_addr(h, (struct sockaddr *)&hl->fam[f].addrs.addrs[i]);
    /* secure only when both families answered, securely */
    h->sec = DNSSEC_INSECURE;
    if (a->st != FAM_TEMP && a->st != FAM_LOOP && b->st != FAM_TEMP && b->st != FAM_LOOP)
        h->sec = (uint8_t)sec_and(a->sec, b->sec);
    if (h->naddrs > 0) {
        dns_host_set_err(h, DNS_OK, "");
        return;
    }
    if (a->st == FAM_TEMP || a->st == FAM_LOOP || b->st == FAM_TEMP || b->st == FAM_LOOP) {
        struct famlk *bad = (a->st == FAM_TEMP || a->st == FAM_LOOP) ? a : b;
        why = xasprintf("address lookup for %s failed: %s", h->name, bad->why);
        dns_host_set_err(h, DNS_TEMP, why);
        free(why);
    } else if (a->st == FAM_NXDOMAIN && b->st == FAM_NXDOMAIN) {
        why = xasprintf("host %s not found (NXDOMAIN)", h->name);
        dns_host_set_err(h, DNS_PERM, why);
        free(why);
    } else {
        why = xasprintf("host %s has no A or AAAA record", h->name);
        dns_host_set_err(h, DNS_PERM, why);
        free(why);
    }
}

/* Start address lookups for every host that has no address yet. */
static void lk_resolve_hosts(struct lookup *lk)
{
    size_t n = 0;

    for (size_t i = 0; i < lk->res.nhosts; i++)
        if (lk->res.hosts[i].naddrs == 0 && lk->res.hosts[i].err == DNS_OK)
            n++;
    if (n == 0)
        return;
    lk->hl = xcalloc(n, sizeof(*lk->hl));
    for (size_t i = 0; i < lk->res.nhosts; i++) {
        struct hostlk *hl;
        if (lk->res.hosts[i].naddrs != 0 || lk->res.hosts[i].err != DNS_OK)
            continue;
        hl = &lk->hl[lk->nhl++];
        hl->lk = lk;
        hl->host = i;
        for (int f = 0; f < 2; f++) {
            hl->fam[f].h = hl;
            hl->fam[f].sec = DNSSEC_SECURE;
            hl->fam[f].type = f == 0 ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA;
            strlcpy_p(hl->fam[f].name, lk->res.hosts[i].name, sizeof(hl->fam[f].name));
            lk->pending++;
        }
    }
    for (size_t i = 0; i < lk->nhl; i++)
        for (int f = 0; f < 2; f++)
            fam_ask(&lk->hl[i].fam[f]);
}

/* ---- MX ---- */

static void mx_ask(struct lookup *lk);

/* Addresses from an additional section are not validated: drop them so
 * that the hosts' own (validated) A/AAAA answers are used. */
static void forget_additional(struct dns_result *r)
{
    for (size_t i = 0; i < r->nhosts; i++) {
        free(r->hosts[i].addrs);
        r->hosts[i].addrs = NULL;
        r->hosts[i].naddrs = 0;
    }
}

static void mx_answer(const struct dnsq_answer *a, void *arg)
{
    struct lookup *lk = arg;
    struct mxset m;

    if (!a->ok && a->sec == DNSSEC_BOGUS) {
        dns_result_set_err(&lk->res, DNS_TEMP, "DNSSEC validation failed for %s: %s", lk->domain,
                           a->why);
        lk_release(lk);
        return;
    }
    if (!a->ok) {
        dns_result_set_err(&lk->res, DNS_TEMP, "MX lookup for %s failed: %s", lk->domain, a->why);
        lk_release(lk);
        return;
    }
    lk->mx_sec = sec_and(lk->mx_sec, a->sec);
    lk->res.sec = (uint8_t)lk->mx_sec;
    mxset_from_packet(a->pkt, lk->mxname, DNSANS_MAX_HOPS, &m);
    lk->hops += m.hops;
    switch (m.kind) {
    case MXSET_HOSTS:
        dns_result_free(&lk->res);
        lk->res = m.res;
        free(lk->res.name);
        lk->res.name = xstrdup(lk->domain);
        lk->res.sec = (uint8_t)lk->mx_sec;
        if (lk->mx_sec == DNSSEC_SECURE)
            forget_additional(&lk->res); /* unsigned glue: ask for signed addresses */
        lk_resolve_hosts(lk);
        lk_release(lk);
        return;
    case MXSET_IMPLICIT:
        lk->res.flags |= DNS_R_IMPLICIT;
        dns_result_add_host(&lk->res, lk->domain, 0, 0);
        lk_resolve_hosts(lk);
        break;
    case MXSET_NULL:
        dns_result_set_err(&lk->res, DNS_PERM, "domain %s does not accept mail (null MX, RFC 7505)",
                           lk->domain);
        break;
    case MXSET_NXDOMAIN:
        dns_result_set_err(&lk->res, DNS_PERM, "domain %s not found (NXDOMAIN)", lk->domain);
        break;
    case MXSET_CHASE:
        if (lk->hops < DNSANS_MAX_HOPS) {
            lk->hops++;
            strlcpy_p(lk->mxname, m.chase, sizeof(lk->mxname));
            dns_result_free(&m.res);
            mx_ask(lk); /* takes over this question's count */
            return;
        }
        /* fall through */
    case MXSET_LOOP:
        dns_result_set_err(&lk->res, DNS_TEMP,
                           "MX lookup for %s: CNAME loop or chain longer than %d", lk->domain,
                           DNSANS_MAX_HOPS);
        break;
    case MXSET_ERROR:
        dns_result_set_err(&lk->res, DNS_TEMP, "MX lookup for %s: unusable answer", lk->domain);
        break;
    }
    dns_result_free(&m.res);
    lk_release(lk);
}

static void mx_ask(struct lookup *lk)
{
    dnsq_ask(lk->e, lk->mxname, LDNS_RR_TYPE_MX, mx_answer, lk);
}

/* ---- finishing ---- */

static int tlsa_start(struct lookup *lk);

static void lk_finish(struct lookup *lk)
{
    const struct dns_host *first_temp = NULL, *first_bad = NULL;
    int any = 0;

    if (!lk->tlsa_started) {
        for (size_t i = 0; i < lk->nhl; i++)
            host_conclude(&lk->hl[i]);
        if (!lk->is_mx && lk->res.nhosts == 1)
            lk->res.sec = lk->res.hosts[0].sec; /* a HOST request: its name's answers */
        if (lk->res.err == DNS_OK && tlsa_start(lk))
            return; /* lk_finish again when the TLSA answers are in */
    }
    if (lk->res.err == DNS_OK) {
        for (size_t i = 0; i < lk->res.nhosts; i++) {
            const struct dns_host *h = &lk->res.hosts[i];
            if (h->naddrs)
                any = 1;
            else if (h->err == DNS_TEMP && !first_temp)
                first_temp = h;
            else if (!first_bad)
                first_bad = h;
        }
        if (!any && first_temp)
            dns_result_set_err(&lk->res, DNS_TEMP, "%s", first_temp->reason);
        else if (!any && first_bad && (lk->res.flags & DNS_R_IMPLICIT))
            dns_result_set_err(&lk->res, DNS_PERM, "domain %s has no MX and no address record",
                               lk->domain);
        else if (!any && first_bad)
            dns_result_set_err(&lk->res, DNS_PERM, "%s%s",
                               lk->is_mx ? "no MX host has an address: " : "", first_bad->reason);
        else if (!any)
            dns_result_set_err(&lk->res, DNS_PERM, "no host to deliver to");
    }
    if (lk->res.err != DNS_OK) {
        for (size_t i = 0; i < lk->res.nhosts; i++) {
            free(lk->res.hosts[i].addrs);
            lk->res.hosts[i].addrs = NULL;
            lk->res.hosts[i].naddrs = 0;
        }
    }
    lk->cb(&lk->res, lk->arg);
    lk_free(lk);
}

static struct lookup *lk_new(struct dnsq_engine *e, const char *name, lookup_cb cb, void *arg)
{
    struct lookup *lk = xcalloc(1, sizeof(*lk));
    lk->e = e;
    lk->cb = cb;
    lk->arg = arg;
    lk->pending = 1; /* held until set up */
    lk->mx_sec = DNSSEC_SECURE;
    dns_result_init(&lk->res, name);
    return lk;
}

static int lk_override(struct lookup *lk, const char *const *override, size_t n)
{
    lk->res.flags |= DNS_R_OVERRIDE;
    lk->res.sec = DNSSEC_INSECURE; /* not from DNS */
    for (size_t i = 0; i < n; i++) {
        char name[DNS_MAX_NAME + 1];
        struct sockaddr_storage ss;
        uint16_t port;
        struct dns_host *h;
        int r = dns_parse_mx_entry(override[i], name, sizeof(name), &ss, &port);

        if (r < 0) {
            dns_result_set_err(&lk->res, DNS_TEMP,
                               "bad mx= override entry \"%s\" for %s (check the domains map)",
                               override[i], lk->domain);
            return -1;
        }
        h = dns_result_add_host(&lk->res, name, (uint16_t)i, port);
        if (h && r == 1)
            dns_host_add_addr(h, (struct sockaddr *)&ss);
    }
    dns_result_group(&lk->res);
    return 0;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" */
static int lk_literal(struct lookup *lk, const char *domain)
{
    char tmp[DNS_MAX_NAME + 1];
    const char *s = domain + 1;
    size_t n = strlen(domain);
    struct sockaddr_storage ss;
    struct dns_host *h;

    if (n < 3 || domain[n - 1] != ']')
        return 0;
    if (ascii_ncasecmp(s, "IPv6:", 5) == 0)
        s += 5;
    snprintf(tmp, sizeof(tmp), "%.*s", (int)(domain + n - 1 - s), s);
    if (strchr(tmp, '[') || dns_parse_addr(tmp, &ss) != 1 ||
        (ss.ss_family == AF_INET && strchr(tmp, ':'))) {
        dns_result_set_err(&lk->res, DNS_PERM, "bad address literal %s", domain);
        return 1;
    }
    lk->res.flags |= DNS_R_LITERAL;
    h = dns_result_add_host(&lk->res, tmp, 0, 0);
    dns_host_add_addr(h, (struct sockaddr *)&ss);
    return 1;
}

void lookup_mx(struct dnsq_engine *e, const char *domain, const char *const *override, size_t n,
               unsigned flags, uint16_t port, lookup_cb cb, void *arg)
{
    sts_join_wrap(domain, flags, &cb, &arg); /* the MTA-STS policy too (sts_join.h) */
    struct lookup *lk = lk_new(e, domain, cb, arg);

    lk->is_mx = 1;
    lk->qflags = flags;
    lk->port = port;
    if (domain[0] == '[' && lk_literal(lk, domain)) {
        lk_release(lk);
        return;
    }
    if (dnsans_norm(domain, lk->domain, sizeof(lk->domain)) < 0 || strcmp(lk->domain, ".") == 0) {
        dns_result_set_err(&lk->res, DNS_PERM, "invalid domain name \"%s\"", domain);
        lk_release(lk);
        return;
    }
    free(lk->res.name);
    lk->res.name = xstrdup(lk->domain);
    if (n > 0) {
        if (lk_override(lk, override, n) == 0)
            lk_resolve_hosts(lk);
        lk_release(lk);
        return;
    }
    strlcpy_p(lk->mxname, lk->domain, sizeof(lk->mxname));
    lk->pending++;
    mx_ask(lk);
    lk_release(lk);
}

void lookup_host(struct dnsq_engine *e, const char *name, unsigned flags, uint16_t port,
                 lookup_cb cb, void *arg)
{
    struct lookup *lk = lk_new(e, name, cb, arg);

    lk->qflags = flags;
    lk->port = port;
    if (dnsans_norm(name, lk->domain, sizeof(lk->domain)) < 0 || strcmp(lk->domain, ".") == 0) {
        dns_result_set_err(&lk->res, DNS_PERM, "invalid host name \"%s\"", name);
        lk_release(lk);
        return;
    }
    free(lk->res.name);
    lk->res.name = xstrdup(lk->domain);
    dns_result_add_host(&lk->res, lk->domain, 0, 0);
    lk_resolve_hosts(lk);
    lk_release(lk);
}

/* ---- DANE: TLSA ---- */

/*
 * A host is asked for TLSA when everything that led to it is secure: the
 * MX answer (an MX request that is not an override or a literal) or the
 * name itself (a HOST request: its address answers), and its addresses.
 */
static int tlsa_eligible(const struct lookup *lk, const struct dns_host *h)
{
    if (h->naddrs == 0 || h->sec != DNSSEC_SECURE)
        return 0;
    if (!lk->is_mx)
        return 1;
    return lk->res.sec == DNSSEC_SECURE && !(lk->res.flags & (DNS_R_OVERRIDE | DNS_R_LITERAL));
}

static void tlsa_ask(struct tlsalk *t);

static void tlsa_take(struct dns_host *h, const ldns_pkt *p, const char *owner)
{
    ldns_rr_list *ans = ldns_pkt_answer(p);
    size_t bad = 0;
    char o[DNS_MAX_NAME + 1];

    for (size_t i = 0; ans && i < ldns_rr_list_rr_count(ans); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(ans, i);
        const ldns_rdf *u, *s, *m, *d;

        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TLSA ||
            dnsans_name(ldns_rr_owner(rr), o, sizeof(o)) < 0 || strcmp(o, owner) != 0)
            continue;
        if (ldns_rr_rd_count(rr) != 4 || !(u = ldns_rr_rdf(rr, 0)) || !(s = ldns_rr_rdf(rr, 1)) ||
            !(m = ldns_rr_rdf(rr, 2)) || !(d = ldns_rr_rdf(rr, 3)) || ldns_rdf_size(u) != 1 ||
            ldns_rdf_size(s) != 1 || ldns_rdf_size(m) != 1 ||
            dns_host_add_tlsa(h, ldns_rdf_data(u)[0], ldns_rdf_data(s)[0], ldns_rdf_data(m)[0],
                              ldns_rdf_data(d), ldns_rdf_size(d)) < 0)
            bad++;
    }
    if (h->ntlsa > 0)
        dns_host_set_tlsa_state(h, DNS_TLSA_FOUND, "");
    else
        dns_host_set_tlsa_state(h, DNS_TLSA_FAILED,
                                bad ? "TLSA records malformed or too large" : "no TLSA record");
}

static void tlsa_answer(const struct dnsq_answer *a, void *arg)
{
    struct tlsalk *t = arg;
    struct lookup *lk = t->lk;
    struct dns_host *h = &lk->res.hosts[t->host];
    struct dnsans an;
    char why[700];

    if (!a->ok) {
        snprintf(why, sizeof(why), "TLSA lookup for %s failed: %s", t->name, a->why);
        dns_host_set_tlsa_state(h, DNS_TLSA_FAILED, why);
        lk_release(lk);
        return;
    }
    t->sec = sec_and(t->sec, a->sec);
    dnsans_examine(a->pkt, t->name, LDNS_RR_TYPE_TLSA, DNSANS_MAX_HOPS, &an);
    t->hops += an.hops;
    if (an.kind == DNSANS_CHASE && t->hops < DNSANS_MAX_HOPS) {
        t->hops++;
        strlcpy_p(t->name, an.final, sizeof(t->name));
        tlsa_ask(t); /* takes over this question's count */
        return;
    }
    if (t->sec != DNSSEC_SECURE && an.kind != DNSANS_ERROR && an.kind != DNSANS_LOOP &&
        an.kind != DNSANS_CHASE) {
        dns_host_set_tlsa_state(h, DNS_TLSA_INSECURE, "");
    } else if (an.kind == DNSANS_DATA) {
        tlsa_take(h, a->pkt, an.final);
    } else if (an.kind == DNSANS_NODATA || an.kind == DNSANS_NXDOMAIN) {
        dns_host_set_tlsa_state(h, DNS_TLSA_NONE, "");
    } else {
        snprintf(why, sizeof(why), "TLSA lookup for %s: %s", t->name,
                 an.kind == DNSANS_ERROR ? "unusable answer" : "CNAME loop or chain too long");
        dns_host_set_tlsa_state(h, DNS_TLSA_FAILED, why);
    }
    lk_release(lk);
}

static void tlsa_ask(struct tlsalk *t)
{
    dnsq_ask(t->lk->e, t->name, LDNS_RR_TYPE_TLSA, tlsa_answer, t);
}

/* The DANE phase: 1 when TLSA questions went out (lk_finish comes again). */
static int tlsa_start(struct lookup *lk)
{
    size_t n = 0;

    lk->tlsa_started = 1;
    if (!(lk->qflags & DNS_Q_DANE) || dnsq_dnssec_mode(lk->e) == DNSQ_SEC_OFF)
        return 0;
    for (size_t i = 0; i < lk->res.nhosts; i++)
        n += tlsa_eligible(lk, &lk->res.hosts[i]);
    if (n == 0)
        return 0;
    lk->tl = xcalloc(n, sizeof(*lk->tl));
    for (size_t i = 0; i < lk->res.nhosts; i++) {
        const struct dns_host *h = &lk->res.hosts[i];
        struct tlsalk *t;
        unsigned port = h->port ? h->port : lk->port ? lk->port : 25;

        if (!tlsa_eligible(lk, h))
            continue;
        t = &lk->tl[lk->ntl++];
        t->lk = lk;
        t->host = i;
        t->sec = DNSSEC_SECURE;
        if ((size_t)snprintf(t->name, sizeof(t->name), "_%u._tcp.%s", port, h->name) >=
            sizeof(t->name)) {
            dns_host_set_tlsa_state(&lk->res.hosts[i], DNS_TLSA_FAILED, "TLSA name too long");
            lk->ntl--;
            continue;
        }
        lk->pending++;
    }
    if (lk->ntl == 0)
        return 0;
    lk->pending++; /* held while asking: answers from the cache come at once */
    for (size_t i = 0; i < lk->ntl; i++)
        tlsa_ask(&lk->tl[i]);
    lk_release(lk);
    return 1;
}

/* ---- TXT ---- */

struct txtlk {
    struct dnsq_engine *e;
    char name[DNS_MAX_NAME + 1], cur[DNS_MAX_NAME + 1];
    int hops;
    txt_cb cb;
    void *arg;
};

const char *txt_status_name(enum txt_status s)
{
    static const char *const names[] = {"found", "nodata", "nxdomain", "failed"};
    return names[s];
}

static void txt_finish(struct txtlk *t, enum txt_status st, char **txt, size_t n, const char *why)
{
    struct txt_result r = {t->name, t->cur, st, txt, n, why};

    t->cb(&r, t->arg);
    free(t);
}

static void txt_answer(const struct dnsq_answer *a, void *arg)
{
    struct txtlk *t = arg;
    struct dnsans an;
    char why[600], **v;
    size_t n = 0;

    if (!a->ok) {
        snprintf(why, sizeof(why), "TXT lookup for %s failed: %s", t->cur, a->why);
        txt_finish(t, TXT_FAILED, NULL, 0, why);
        return;
    }
    dnsans_examine(a->pkt, t->cur, LDNS_RR_TYPE_TXT, DNSANS_MAX_HOPS, &an);
    t->hops += an.hops;
    strlcpy_p(t->cur, an.final, sizeof(t->cur));
    switch (an.kind) {
    case DNSANS_DATA:
        v = dnsans_txt(a->pkt, an.final, &n);
        txt_finish(t, n ? TXT_FOUND : TXT_NODATA, v, n, NULL);
        dnsans_txt_free(v);
        return;
    case DNSANS_NODATA:
        txt_finish(t, TXT_NODATA, NULL, 0, NULL);
        return;
    case DNSANS_NXDOMAIN:
        txt_finish(t, TXT_NXDOMAIN, NULL, 0, NULL);
        return;
    case DNSANS_CHASE:
        if (t->hops < DNSANS_MAX_HOPS) {
            t->hops++;
            dnsq_ask(t->e, t->cur, LDNS_RR_TYPE_TXT, txt_answer, t);
            return;
        }
        /* fall through */
    case DNSANS_LOOP:
        snprintf(why, sizeof(why), "TXT lookup for %s: CNAME loop or chain longer than %d", t->name,
                 DNSANS_MAX_HOPS);
        break;
    case DNSANS_ERROR:
        snprintf(why, sizeof(why), "TXT lookup for %s: unusable answer", t->name);
        break;
    }
    txt_finish(t, TXT_FAILED, NULL, 0, why);
}

void lookup_txt(struct dnsq_engine *e, const char *name, txt_cb cb, void *arg)
{
    struct txtlk *t = xcalloc(1, sizeof(*t));

    t->e = e;
    t->cb = cb;
    t->arg = arg;
    if (dnsans_norm(name, t->name, sizeof(t->name)) < 0 || strcmp(t->name, ".") == 0) {
        char why[DNS_MAX_NAME + 64];
        snprintf(why, sizeof(why), "invalid domain name \"%.*s\"", DNS_MAX_NAME, name);
        strlcpy_p(t->name, name, sizeof(t->name));
        strlcpy_p(t->cur, t->name, sizeof(t->cur));
        txt_finish(t, TXT_FAILED, NULL, 0, why);
        return;
    }
    strlcpy_p(t->cur, t->name, sizeof(t->cur));
    dnsq_ask(e, t->cur, LDNS_RR_TYPE_TXT, txt_answer, t);
}
