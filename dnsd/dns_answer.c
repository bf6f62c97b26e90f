/*
 * dns_answer - reading one DNS answer: CNAME chains, negative answers,
 * MX sets (contract in dns_answer.h). Every record is checked for its
 * type and rdata shape before use; packets come from the network.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "dns_answer.h"

/* Past one wire-format name at *pos (labels, or ending in a pointer). */
static int skip_name(const uint8_t *w, size_t len, size_t *pos)
{
    while (*pos < len) {
        uint8_t c = w[*pos];
        if ((c & 0xc0) == 0xc0) {
            *pos += 2;
            return *pos <= len ? 0 : -1;
        }
        if (c & 0xc0)
            return -1;
        *pos += 1 + (size_t)c;
        if (c == 0)
            return 0;
    }
    return -1;
}

/* TSIG records in the additional section, as far as the records can be
 * walked: ldns reads a packet record by record and keeps (and loses) a
 * TSIG before it finds a later record broken, so those count too. */
static int count_tsig(const uint8_t *w, size_t len)
{
    size_t pos = 12;
    unsigned qd, rest, ar;
    int n = 0;

    if (len < 12)
        return 0;
    qd = (unsigned)w[4] << 8 | w[5];
    rest = ((unsigned)w[6] << 8 | w[7]) + ((unsigned)w[8] << 8 | w[9]);
    ar = (unsigned)w[10] << 8 | w[11];
    for (unsigned i = 0; i < qd; i++) {
        if (skip_name(w, len, &pos) < 0 || (pos += 4) > len)
            return n;
    }
    for (unsigned i = 0; i < rest + ar; i++) {
        unsigned type;
        if (skip_name(w, len, &pos) < 0 || pos + 10 > len)
            return n;
        type = (unsigned)w[pos] << 8 | w[pos + 1];
        if (i >= rest && type == LDNS_RR_TYPE_TSIG)
            n++;
        pos += 10 + ((size_t)w[pos + 8] << 8 | w[pos + 9]);
        if (pos > len)
            return n;
    }
    return n;
}

ldns_status dnsans_parse(ldns_pkt **p, const uint8_t *wire, size_t len)
{
    *p = NULL;
    if (count_tsig(wire, len) > 1)
        return LDNS_STATUS_ERR;
    return ldns_wire2pkt(p, wire, len);
}

const char *dnsans_kind_name(enum dnsans_kind k)
{
    switch (k) {
    case DNSANS_DATA:
        return "data";
    case DNSANS_NODATA:
        return "nodata";
    case DNSANS_NXDOMAIN:
        return "nxdomain";
    case DNSANS_CHASE:
        return "cname";
    case DNSANS_LOOP:
        return "loop";
    case DNSANS_ERROR:
        return "error";
    }
    return "?";
}

static int norm_text(char *s, char *buf, size_t len)
{
    size_t n = strlen(s);

    if (n > 1 && s[n - 1] == '.' && (n < 2 || s[n - 2] != '\\'))
        s[--n] = '\0';
    if (n == 0 || n >= len)
        return -1;
    memcpy(buf, s, n + 1);
    ascii_lower(buf);
    return 0;
}

int dnsans_name(const ldns_rdf *d, char *buf, size_t len)
{
    char *s;
    int r;

    if (!d || ldns_rdf_get_type(d) != LDNS_RDF_TYPE_DNAME)
        return -1;
    s = ldns_rdf2str(d);
    if (!s)
        return -1;
    r = norm_text(s, buf, len);
    free(s);
    return r;
}

int dnsans_norm(const char *in, char *buf, size_t len)
{
    ldns_rdf *d = NULL;
    int r;

    if (!*in || strlen(in) > DNS_MAX_NAME)
        return -1;
    if (ldns_str2rdf_dname(&d, in) != LDNS_STATUS_OK || !d)
        return -1;
    r = dnsans_name(d, buf, len);
    ldns_rdf_deep_free(d);
    return r;
}

static int owner_is(const ldns_rr *rr, const char *name)
{
    char o[DNS_MAX_NAME + 1];
    return dnsans_name(ldns_rr_owner(rr), o, sizeof(o)) == 0 && strcmp(o, name) == 0;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* The RFC 2308 negative TTL from the authority section's SOA. */
static int negative_ttl(const ldns_pkt *p, uint32_t *ttl)
{
    ldns_rr_list *auth = ldns_pkt_authority(p);

    for (size_t i = 0; auth && i < ldns_rr_list_rr_count(auth); i++) {
        ldns_rr *rr = ldns_rr_list_rr(auth, i);
        ldns_rdf *min;
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA || ldns_rr_rd_count(rr) < 7)
            continue;
        min = ldns_rr_rdf(rr, 6);
        if (!min || ldns_rdf_size(min) != 4)
            continue;
        *ttl = min_u32(ldns_rr_ttl(rr), ldns_rdf2native_int32(min));
        return 1;
    }
    return 0;
}

/* Find the CNAME owned by name in the answer section; its target into tgt. */
static const ldns_rr *find_cname(const ldns_pkt *p, const char *name, char *tgt, size_t len)
{
    ldns_rr_list *ans = ldns_pkt_answer(p);

    for (size_t i = 0; ans && i < ldns_rr_list_rr_count(ans); i++) {
        ldns_rr *rr = ldns_rr_list_rr(ans, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_CNAME || ldns_rr_rd_count(rr) < 1)
            continue;
        if (!owner_is(rr, name))
            continue;
        if (dnsans_name(ldns_rr_rdf(rr, 0), tgt, len) < 0)
            continue;
        return rr;
    }
    return NULL;
}

/* Smallest TTL of the records of type t owned by name in the answer; 0 if none. */
static int find_data(const ldns_pkt *p, const char *name, ldns_rr_type t, uint32_t *ttl)
{
    ldns_rr_list *ans = ldns_pkt_answer(p);
    int found = 0;

    for (size_t i = 0; ans && i < ldns_rr_list_rr_count(ans); i++) {
        ldns_rr *rr = ldns_rr_list_rr(ans, i);
        if (ldns_rr_get_type(rr) != t || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
            continue;
        if (!owner_is(rr, name))
            continue;
        *ttl = found ? min_u32(*ttl, ldns_rr_ttl(rr)) : ldns_rr_ttl(rr);
        found = 1;
    }
    return found;
}

void dnsans_examine(const ldns_pkt *p, const char *qname, ldns_rr_type t, int max_hops,
                    struct dnsans *out)
{
    char cur[DNS_MAX_NAME + 1], tgt[DNS_MAX_NAME + 1];
    uint32_t ttl = UINT32_MAX, dttl = 0;

    memset(out, 0, sizeof(*out));
    out->rcode = ldns_pkt_get_rcode(p);
    strlcpy_p(cur, qname, sizeof(cur));
    strlcpy_p(out->final, qname, sizeof(out->final));
    if (out->rcode != LDNS_RCODE_NOERROR && out->rcode != LDNS_RCODE_NXDOMAIN) {
        out->kind = DNSANS_ERROR;
        return;
    }
    for (;;) {
        const ldns_rr *cn;

        if (find_data(p, cur, t, &dttl)) {
            out->kind = DNSANS_DATA;
            out->ttl = min_u32(ttl, dttl);
            out->cacheable = 1;
            strlcpy_p(out->final, cur, sizeof(out->final));
            return;
        }
        if (t == LDNS_RR_TYPE_CNAME || !(cn = find_cname(p, cur, tgt, sizeof(tgt))))
            break;
        if (out->hops >= max_hops) {
            out->kind = DNSANS_LOOP;
            strlcpy_p(out->final, tgt, sizeof(out->final));
            return;
        }
        out->hops++;
        ttl = min_u32(ttl, ldns_rr_ttl(cn));
        strlcpy_p(cur, tgt, sizeof(cur));
    }
    strlcpy_p(out->final, cur, sizeof(out->final));
    if (out->rcode == LDNS_RCODE_NXDOMAIN) {
        out->kind = DNSANS_NXDOMAIN;
        out->cacheable = negative_ttl(p, &out->ttl);
        return;
    }
    if (negative_ttl(p, &out->ttl)) {
        out->kind = DNSANS_NODATA;
        out->cacheable = 1;
        if (out->hops)
            out->ttl = min_u32(out->ttl, ttl);
        return;
    }
    if (out->hops > 0) {
        /* the server gave the alias but not what it points to */
        out->kind = DNSANS_CHASE;
        out->ttl = ttl;
        out->cacheable = 1;
        return;
    }
    out->kind = DNSANS_NODATA;
    out->cacheable = 0;
}

size_t dnsans_addrs(const ldns_pkt *p, ldns_pkt_section sec, const char *owner, struct dns_host *h,
                    uint32_t *ttl)
{
    ldns_rr_list *l = sec == LDNS_SECTION_ANSWER ? ldns_pkt_answer(p) : ldns_pkt_additional(p);
    size_t n = 0;

    for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
        ldns_rr *rr = ldns_rr_list_rr(l, i);
        ldns_rr_type t = ldns_rr_get_type(rr);
        ldns_rdf *d;
        struct sockaddr_storage ss;

        if ((t != LDNS_RR_TYPE_A && t != LDNS_RR_TYPE_AAAA) || ldns_rr_rd_count(rr) < 1)
            continue;
        if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !owner_is(rr, owner))
            continue;
        d = ldns_rr_rdf(rr, 0);
        memset(&ss, 0, sizeof(ss));
        if (t == LDNS_RR_TYPE_A && d && ldns_rdf_size(d) == 4) {
            ss.ss_family = AF_INET;
            memcpy(&((struct sockaddr_in *)&ss)->sin_addr, ldns_rdf_data(d), 4);
        } else if (t == LDNS_RR_TYPE_AAAA && d && ldns_rdf_size(d) == 16) {
            ss.ss_family = AF_INET6;
            memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, ldns_rdf_data(d), 16);
        } else {
            continue;
        }
        dns_host_add_addr(h, (struct sockaddr *)&ss);
        *ttl = min_u32(*ttl, ldns_rr_ttl(rr));
        n++;
    }
    return n;
}

struct mxrec {
    uint16_t pref;
    size_t order;
    char name[DNS_MAX_NAME + 1];
};

static int mxrec_cmp(const void *a, const void *b)
{
    const struct mxrec *x = a, *y = b;
    if (x->pref != y->pref)
        return x->pref < y->pref ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
}

/* MX records owned by name; returns how many went into recs (max n). */
static size_t collect_mx(const ldns_pkt *p, const char *name, struct mxrec *recs, size_t max,
                         size_t *nulls)
{
    ldns_rr_list *ans = ldns_pkt_answer(p);
    size_t n = 0;

    *nulls = 0;
    for (size_t i = 0; ans && i < ldns_rr_list_rr_count(ans); i++) {
        ldns_rr *rr = ldns_rr_list_rr(ans, i);
        ldns_rdf *pref, *ex;
        int dup = 0;

        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_MX || ldns_rr_rd_count(rr) < 2)
            continue;
        if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !owner_is(rr, name))
            continue;
        pref = ldns_rr_rdf(rr, 0);
        ex = ldns_rr_rdf(rr, 1);
        if (!pref || ldns_rdf_size(pref) != 2 || n >= max)
            continue;
        if (dnsans_name(ex, recs[n].name, sizeof(recs[n].name)) < 0)
            continue;
        if (strcmp(recs[n].name, ".") == 0) {
            (*nulls)++;
            continue;
        }
        recs[n].pref = ldns_rdf2native_int16(pref);
        recs[n].order = i;
        for (size_t j = 0; j < n; j++)
            if (strcmp(recs[j].name, recs[n].name) == 0) {
                if (recs[n].pref < recs[j].pref)
                    recs[j].pref = recs[n].pref;
                dup = 1;
            }
        if (!dup)
            n++;
    }
    return n;
}

void mxset_from_packet(const ldns_pkt *p, const char *qname, int max_hops, struct mxset *out)
{
    struct dnsans a;
    struct mxrec *recs;
    size_t n, nulls;

    memset(out, 0, sizeof(*out));
    dns_result_init(&out->res, qname);
    dnsans_examine(p, qname, LDNS_RR_TYPE_MX, max_hops, &a);
    out->ttl = a.ttl;
    out->hops = a.hops;
    switch (a.kind) {
    case DNSANS_DATA:
        break;
    case DNSANS_NODATA:
        out->kind = MXSET_IMPLICIT;
        return;
    case DNSANS_NXDOMAIN:
        out->kind = MXSET_NXDOMAIN;
        return;
    case DNSANS_CHASE:
        out->kind = MXSET_CHASE;
        strlcpy_p(out->chase, a.final, sizeof(out->chase));
        return;
    case DNSANS_LOOP:
        out->kind = MXSET_LOOP;
        return;
    case DNSANS_ERROR:
        out->kind = MXSET_ERROR;
        return;
    }
    recs = xcalloc(DNS_MAX_HOSTS, sizeof(*recs));
    n = collect_mx(p, a.final, recs, DNS_MAX_HOSTS, &nulls);
    if (n == 0) {
        /* only "." exchanges (or none we could read): RFC 7505 null MX */
        out->kind = nulls ? MXSET_NULL : MXSET_ERROR;
        free(recs);
        return;
    }
    qsort(recs, n, sizeof(*recs), mxrec_cmp);
    out->kind = MXSET_HOSTS;
    for (size_t i = 0; i < n; i++) {
        struct dns_host *h = dns_result_add_host(&out->res, recs[i].name, recs[i].pref, 0);
        if (!h)
            break;
        dnsans_addrs(p, LDNS_SECTION_ADDITIONAL, recs[i].name, h, &out->ttl);
    }
    dns_result_group(&out->res);
    free(recs);
}

void dnsans_summary(const ldns_pkt *p, const char *qname, ldns_rr_type t, struct buf *out)
{
    struct dnsans a;
    char *tn = ldns_rr_type2str(t);

    dnsans_examine(p, qname, t, DNSANS_MAX_HOPS, &a);
    if (a.hops)
        buf_printf(out, "CNAME %s ", a.final);
    if (a.kind != DNSANS_DATA) {
        buf_adds(out, a.kind == DNSANS_NXDOMAIN ? "NXDOMAIN"
                      : a.kind == DNSANS_NODATA ? "NODATA"
                                                : "?");
        free(tn);
        return;
    }
    buf_printf(out, "%s", tn ? tn : "?");
    free(tn);
    if (t == LDNS_RR_TYPE_MX) {
        struct mxset m;
        mxset_from_packet(p, qname, DNSANS_MAX_HOPS, &m);
        if (m.kind == MXSET_NULL)
            buf_adds(out, " 0 . (null MX)");
        for (size_t i = 0; i < m.res.nhosts; i++)
            buf_printf(out, "%s %u %s", i ? "," : "", m.res.hosts[i].pref, m.res.hosts[i].name);
        dns_result_free(&m.res);
    } else {
        struct dns_host h;
        char s[INET6_ADDRSTRLEN];
        uint32_t ttl = 0;
        memset(&h, 0, sizeof(h));
        dnsans_addrs(p, LDNS_SECTION_ANSWER, a.final, &h, &ttl);
        for (size_t i = 0; i < h.naddrs; i++)
            buf_printf(out, "%s %s", i ? "," : "", dns_addr_str(&h.addrs[i], s, sizeof(s)));
        free(h.addrs);
    }
}

/* One TXT record's character-strings joined and escaped into out; -1 if
 * an rdata field is not a well-formed string. */
static int txt_join(const ldns_rr *rr, struct buf *out)
{
    for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
        const ldns_rdf *d = ldns_rr_rdf(rr, i);
        const uint8_t *b;
        size_t len;

        if (!d || ldns_rdf_get_type(d) != LDNS_RDF_TYPE_STR || ldns_rdf_size(d) < 1)
            return -1;
        b = ldns_rdf_data(d);
        len = ldns_rdf_size(d);
        if ((size_t)b[0] != len - 1)
            return -1;
        for (size_t j = 1; j < len; j++) {
            if (b[j] < 0x20 || b[j] > 0x7e || b[j] == '\\')
                buf_printf(out, "\\%03u", b[j]);
            else
                buf_addc(out, (char)b[j]);
        }
    }
    return 0;
}

char **dnsans_txt(const ldns_pkt *p, const char *owner, size_t *n)
{
    ldns_rr_list *ans = ldns_pkt_answer(p);
    size_t cnt = ans ? ldns_rr_list_rr_count(ans) : 0;
    char **v = xcalloc(cnt + 1, sizeof(*v));

    *n = 0;
    for (size_t i = 0; i < cnt; i++) {
        ldns_rr *rr = ldns_rr_list_rr(ans, i);
        struct buf b;
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TXT || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN ||
            !owner_is(rr, owner))
            continue;
        buf_init(&b);
        if (txt_join(rr, &b) == 0)
            v[(*n)++] = b.data ? b.data : xstrdup("");
        else
            buf_free(&b);
    }
    return v;
}

void dnsans_txt_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}
