/*
 * dns_proto - lookup results, their IPC encoding, and the asynchronous
 * dnsd client used by deliver and relay. Contract in dns_proto.h.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dns_proto.h"
#include "mail/smtp_addr.h"
#include "base/log.h"
#include "mail/proto.h"

void dns_result_init(struct dns_result *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    r->name = xstrdup(name ? name : "");
    r->reason = xstrdup("");
}

static void host_free(struct dns_host *h)
{
    free(h->name);
    free(h->reason);
    free(h->addrs);
    free(h->tlsa_reason);
    for (size_t i = 0; i < h->ntlsa; i++)
        free(h->tlsa[i].data);
    free(h->tlsa);
}

static void sts_free(struct dns_sts *s)
{
    free(s->id);
    free(s->reason);
    for (size_t i = 0; i < s->nmx; i++)
        free(s->mx[i]);
    free(s->mx);
    memset(s, 0, sizeof(*s));
}

const char *dnssec_status_name(unsigned s)
{
    static const char *const n[] = {"insecure", "secure", "bogus"};
    return s < 3 ? n[s] : "?";
}

const char *dns_tlsa_state_name(unsigned s)
{
    static const char *const n[] = {"not-asked", "none", "insecure", "found", "failed"};
    return s < 5 ? n[s] : "?";
}

const char *dns_sts_state_name(unsigned s)
{
    static const char *const n[] = {"not-asked", "none", "policy", "failed"};
    return s < 4 ? n[s] : "?";
}

const char *dns_sts_mode_name(unsigned m)
{
    static const char *const n[] = {"none", "testing", "enforce"};
    return m < 3 ? n[m] : "?";
}

int dns_host_add_tlsa(struct dns_host *h, uint8_t usage, uint8_t selector, uint8_t mtype,
                      const unsigned char *data, size_t len)
{
    struct dns_tlsa *t;

    if (h->ntlsa >= DNS_MAX_TLSA || len > DNS_MAX_TLSA_DATA)
        return -1;
    h->tlsa = xrealloc(h->tlsa, (h->ntlsa + 1) * sizeof(*h->tlsa));
    t = &h->tlsa[h->ntlsa++];
    t->usage = usage;
    t->selector = selector;
    t->mtype = mtype;
    t->len = (uint16_t)len;
    t->data = xmalloc(len ? len : 1);
    if (len)
        memcpy(t->data, data, len);
    return 0;
}

void dns_host_set_tlsa_state(struct dns_host *h, enum dns_tlsa_state st, const char *reason)
{
    free(h->tlsa_reason);
    h->tlsa_reason = xstrdup(reason ? reason : "");
    h->tlsa_state = (uint8_t)st;
}

void dns_result_set_sts(struct dns_result *r, enum dns_sts_state st, enum dns_sts_mode mode,
                        const char *id, uint32_t max_age, const char *const *mx, size_t n,
                        const char *reason)
{
    struct dns_sts *s = &r->sts;

    sts_free(s);
    s->state = (uint8_t)st;
    s->mode = (uint8_t)mode;
    s->id = xstrdup(id ? id : "");
    s->max_age = max_age;
    s->reason = xstrdup(reason ? reason : "");
    if (n > DNS_MAX_STS_MX)
        n = DNS_MAX_STS_MX;
    s->mx = xcalloc(n ? n : 1, sizeof(*s->mx));
    for (size_t i = 0; i < n; i++)
        s->mx[i] = xstrdup(mx[i]);
    s->nmx = n;
}

void dns_result_free(struct dns_result *r)
{
    for (size_t i = 0; i < r->nhosts; i++)
        host_free(&r->hosts[i]);
    free(r->hosts);
    free(r->reason);
    free(r->name);
    sts_free(&r->sts);
    memset(r, 0, sizeof(*r));
}

void dns_result_set_err(struct dns_result *r, enum dns_class c, const char *fmt, ...)
{
    char *old = r->reason; /* freed after formatting: an argument may point into it */
    va_list ap;

    va_start(ap, fmt);
    r->reason = xvasprintf(fmt, ap);
    va_end(ap);
    free(old);
    r->err = c;
}

struct dns_host *dns_result_add_host(struct dns_result *r, const char *name, uint16_t pref,
                                     uint16_t port)
{
    struct dns_host *h;

    if (r->nhosts >= DNS_MAX_HOSTS)
        return NULL;
    r->hosts = xrealloc(r->hosts, (r->nhosts + 1) * sizeof(*r->hosts));
    h = &r->hosts[r->nhosts++];
    memset(h, 0, sizeof(*h));
    h->name = xstrdup(name);
    h->reason = xstrdup("");
    h->tlsa_reason = xstrdup("");
    h->pref = pref;
    h->port = port;
    return h;
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return 0;
    if (b->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

void dns_host_add_addr(struct dns_host *h, const struct sockaddr *sa)
{
    struct sockaddr_storage *ss;

    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return;
    if (h->naddrs >= DNS_MAX_ADDRS)
        return;
    for (size_t i = 0; i < h->naddrs; i++)
        if (same_addr(&h->addrs[i], sa))
            return;
    h->addrs = xrealloc(h->addrs, (h->naddrs + 1) * sizeof(*h->addrs));
    ss = &h->addrs[h->naddrs++];
    memset(ss, 0, sizeof(*ss));
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_addr = ((const struct sockaddr_in *)sa)->sin_addr;
        in->sin_port = htons(h->port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        in6->sin6_port = htons(h->port);
    }
}

void dns_host_set_err(struct dns_host *h, enum dns_class c, const char *reason)
{
    free(h->reason);
    h->reason = xstrdup(reason ? reason : "");
    h->err = c;
}

void dns_result_group(struct dns_result *r)
{
    uint16_t g = 0;

    for (size_t i = 0; i < r->nhosts; i++) {
        if (i > 0 && r->hosts[i].pref != r->hosts[i - 1].pref)
            g++;
        r->hosts[i].group = g;
    }
}

void dns_result_copy(struct dns_result *dst, const struct dns_result *src)
{
    dns_result_init(dst, src->name);
    dns_result_set_err(dst, src->err, "%s", src->reason);
    dst->flags = src->flags;
    for (size_t i = 0; i < src->nhosts; i++) {
        const struct dns_host *s = &src->hosts[i];
        struct dns_host *d = dns_result_add_host(dst, s->name, s->pref, s->port);
        if (!d)
            break;
        d->group = s->group;
        dns_host_set_err(d, s->err, s->reason);
        if (s->naddrs) {
            d->addrs = xcalloc(s->naddrs, sizeof(*d->addrs));
            memcpy(d->addrs, s->addrs, s->naddrs * sizeof(*d->addrs));
            d->naddrs = s->naddrs;
        }
        d->sec = s->sec;
        dns_host_set_tlsa_state(d, (enum dns_tlsa_state)s->tlsa_state, s->tlsa_reason);
        for (size_t k = 0; k < s->ntlsa; k++)
            (void)dns_host_add_tlsa(d, s->tlsa[k].usage, s->tlsa[k].selector, s->tlsa[k].mtype,
                                    s->tlsa[k].data, s->tlsa[k].len);
    }
    dst->sec = src->sec;
    if (src->sts.state != DNS_STS_NOT_ASKED)
        dns_result_set_sts(dst, (enum dns_sts_state)src->sts.state,
                           (enum dns_sts_mode)src->sts.mode, src->sts.id, src->sts.max_age,
                           (const char *const *)src->sts.mx, src->sts.nmx, src->sts.reason);
}

void dns_shuffle(struct dns_result *r, uint32_t (*rnd)(uint32_t n))
{
    size_t i = 0;

    while (i < r->nhosts) {
        size_t j = i;
        while (j < r->nhosts && r->hosts[j].group == r->hosts[i].group)
            j++;
        /* Fisher-Yates over hosts[i..j) */
        for (size_t k = j - 1; k > i; k--) {
            size_t m = i + rnd((uint32_t)(k - i + 1));
            struct dns_host t = r->hosts[k];
            r->hosts[k] = r->hosts[m];
            r->hosts[m] = t;
        }
        i = j;
    }
}

const char *dns_addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    const void *a;

    if (ss->ss_family == AF_INET)
        a = &((const struct sockaddr_in *)ss)->sin_addr;
    else if (ss->ss_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    else {
        snprintf(buf, len, "?");
        return buf;
    }
    if (!inet_ntop(ss->ss_family, a, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}

static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int dns_parse_addr(const char *s, struct sockaddr_storage *ss)
{
    char tmp[INET6_ADDRSTRLEN + 8];
    const char *portp = NULL;
    uint16_t port = 0;
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    size_t n = strlen(s);

    memset(ss, 0, sizeof(*ss));
    if (n == 0 || n >= sizeof(tmp))
        return 0;
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (!e || (size_t)(e - s - 1) >= sizeof(tmp))
            return 0;
        memcpy(tmp, s + 1, (size_t)(e - s - 1));
        tmp[e - s - 1] = '\0';
        if (e[1] == ':')
            portp = e + 2;
        else if (e[1] != '\0')
            return 0;
        if (inet_pton(AF_INET6, tmp, &in6->sin6_addr) == 1)
            in6->sin6_family = AF_INET6;
        else if (inet_pton(AF_INET, tmp, &in->sin_addr) == 1)
            in->sin_family = AF_INET;
        else
            return 0;
    } else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
    } else {
        const char *c = strrchr(s, ':');
        size_t hl = c ? (size_t)(c - s) : n;
        memcpy(tmp, s, hl);
        tmp[hl] = '\0';
        if (inet_pton(AF_INET, tmp, &in->sin_addr) != 1) {
            memset(ss, 0, sizeof(*ss));
            return 0;
        }
        in->sin_family = AF_INET;
        if (c)
            portp = c + 1;
    }
    if (portp && parse_port(portp, &port) < 0) {
        memset(ss, 0, sizeof(*ss));
        return -1;
    }
    if (ss->ss_family == AF_INET)
        in->sin_port = htons(port);
    else
        in6->sin6_port = htons(port);
    return 1;
}

int dns_parse_mx_entry(const char *entry, char *buf, size_t len, struct sockaddr_storage *ss,
                       uint16_t *port)
{
    char host[DNS_MAX_NAME + 2];
    size_t hl;
    const char *c;
    int r = dns_parse_addr(entry, ss);

    *port = 0;
    if (r == 1) {
        char a[INET6_ADDRSTRLEN];
        const void *ap = ss->ss_family == AF_INET
                             ? (const void *)&((struct sockaddr_in *)ss)->sin_addr
                             : (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
        *port = ntohs(ss->ss_family == AF_INET ? ((struct sockaddr_in *)ss)->sin_port
                                               : ((struct sockaddr_in6 *)ss)->sin6_port);
        /* The host name is the address alone: never "addr:port" nor
         * "[addr]", which the client would take for a name (TLS SNI,
         * certificate checks, logs). */
        if (inet_ntop(ss->ss_family, ap, a, sizeof(a)) == NULL)
            return -1;
        snprintf(buf, len, "%s", a);
        return 1;
    }
    if (r < 0 || strlen(entry) > DNS_MAX_NAME)
        return -1;
    strlcpy_p(host, entry, sizeof(host));
    if ((c = strrchr(entry, ':')) != NULL) {
        unsigned long v = 0;
        const char *p = c + 1;
        if (!*p)
            return -1;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            v = v * 10 + (unsigned long)(*p - '0');
            if (v > 65535)
                return -1;
        }
        if (v == 0)
            return -1;
        *port = (uint16_t)v;
        host[c - entry] = '\0';
    }
    hl = strlen(host);
    if (hl > 1 && host[hl - 1] == '.')
        host[--hl] = '\0'; /* a fully qualified name's root dot */
    /* A host name as RFC 5321 has it: letters, digits and hyphens in
     * labels, not the anything-goes of a DNS label. */
    if (hl == 0 || hl >= len || host[0] == '[' || smtp_domain_valid(host, hl, 0) != 0)
        return -1;
    for (size_t i = 0; i <= hl; i++)
        buf[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] - 'A' + 'a' : host[i]);
    return 0;
}

void dns_result_format(const struct dns_result *r, struct buf *out)
{
    char a[INET6_ADDRSTRLEN];

    buf_printf(out, "%s: %s", r->name, outcome_name(r->err));
    if (r->reason && *r->reason)
        buf_printf(out, ": %s", r->reason);
    if (r->flags & DNS_R_IMPLICIT)
        buf_adds(out, " (implicit MX)");
    if (r->flags & DNS_R_OVERRIDE)
        buf_adds(out, " (override)");
    buf_printf(out, " sec=%s\n", dnssec_status_name(r->sec));
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct dns_host *h = &r->hosts[i];
        buf_printf(out, "  %u %s group=%u", h->pref, h->name, h->group);
        if (h->port)
            buf_printf(out, " port=%u", h->port);
        for (size_t j = 0; j < h->naddrs; j++)
            buf_printf(out, " %s", dns_addr_str(&h->addrs[j], a, sizeof(a)));
        if (h->naddrs == 0)
            buf_printf(out, " (no address: %s: %s)", outcome_name(h->err), h->reason);
        buf_printf(out, " sec=%s", dnssec_status_name(h->sec));
        if (h->tlsa_state != DNS_TLSA_NOT_ASKED)
            buf_printf(out, " tlsa=%s", dns_tlsa_state_name(h->tlsa_state));
        if (h->tlsa_reason && *h->tlsa_reason)
            buf_printf(out, " (%s)", h->tlsa_reason);
        buf_addc(out, '\n');
        for (size_t j = 0; j < h->ntlsa; j++) {
            buf_printf(out, "    TLSA %u %u %u ", h->tlsa[j].usage, h->tlsa[j].selector,
                       h->tlsa[j].mtype);
            for (size_t k = 0; k < h->tlsa[j].len; k++)
                buf_printf(out, "%02x", h->tlsa[j].data[k]);
            buf_addc(out, '\n');
        }
    }
}

void dns_result_json(const struct dns_result *r, struct buf *out)
{
    char a[INET6_ADDRSTRLEN];

    buf_adds(out, "{\"name\":");
    buf_json_str(out, r->name);
    buf_adds(out, ",\"class\":");
    buf_json_str(out, outcome_name(r->err));
    buf_adds(out, ",\"reason\":");
    buf_json_str(out, r->reason);
    buf_printf(out, ",\"implicit\":%s,\"override\":%s,\"sec\":\"%s\",\"hosts\":[",
               (r->flags & DNS_R_IMPLICIT) ? "true" : "false",
               (r->flags & DNS_R_OVERRIDE) ? "true" : "false", dnssec_status_name(r->sec));
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct dns_host *h = &r->hosts[i];
        buf_adds(out, i ? ",{\"name\":" : "{\"name\":");
        buf_json_str(out, h->name);
        buf_printf(out, ",\"pref\":%u,\"group\":%u,\"port\":%u,\"class\":", h->pref, h->group,
                   h->port);
        buf_json_str(out, outcome_name(h->err));
        buf_adds(out, ",\"reason\":");
        buf_json_str(out, h->reason);
        buf_adds(out, ",\"addrs\":[");
        for (size_t j = 0; j < h->naddrs; j++) {
            if (j)
                buf_addc(out, ',');
            buf_json_str(out, dns_addr_str(&h->addrs[j], a, sizeof(a)));
        }
        buf_printf(out, "],\"sec\":\"%s\",\"tlsa_state\":\"%s\",\"tlsa_reason\":",
                   dnssec_status_name(h->sec), dns_tlsa_state_name(h->tlsa_state));
        buf_json_str(out, h->tlsa_reason ? h->tlsa_reason : "");
        buf_adds(out, ",\"tlsa\":[");
        for (size_t j = 0; j < h->ntlsa; j++) {
            buf_printf(out, "%s{\"usage\":%u,\"selector\":%u,\"mtype\":%u,\"data\":\"",
                       j ? "," : "", h->tlsa[j].usage, h->tlsa[j].selector, h->tlsa[j].mtype);
            for (size_t k = 0; k < h->tlsa[j].len; k++)
                buf_printf(out, "%02x", h->tlsa[j].data[k]);
            buf_adds(out, "\"}");
        }
        buf_adds(out, "]}");
    }
    buf_adds(out, "]}");
}

/* ---- wire encoding ---- */

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= DNS_MAX_NAME;
}

void dns_mx_req_encode(struct ipc_w *w, const char *domain, const char *const *override,
                       unsigned flags, uint16_t port)
{
    uint32_t n = 0;

    while (override && override[n])
        n++;
    ipc_w_str(w, domain);
    ipc_w_u32(w, n);
    for (uint32_t i = 0; i < n; i++)
        ipc_w_str(w, override[i]);
    ipc_w_u32(w, flags);
    ipc_w_u16(w, port);
}

int dns_mx_req_decode(const void *body, size_t len, const char **domain, const char **override,
                      size_t max, size_t *n, unsigned *flags, uint16_t *port)
{
    struct ipc_r r;
    uint32_t cnt;

    ipc_r_init(&r, body, len);
    *domain = ipc_r_str(&r);
    cnt = ipc_r_u32(&r);
    if (!ipc_r_ok(&r) || cnt > DNS_MAX_OVERRIDE || cnt > max || !name_ok(*domain))
        return -1;
    for (uint32_t i = 0; i < cnt; i++) {
        override[i] = ipc_r_str(&r);
        if (!ipc_r_ok(&r) || !name_ok(override[i]))
            return -1;
    }
    *flags = ipc_r_u32(&r);
    *port = ipc_r_u16(&r);
    if (!ipc_r_done(&r))
        return -1;
    *n = cnt;
    return 0;
}

void dns_host_req_encode(struct ipc_w *w, const char *name, unsigned flags, uint16_t port)
{
    ipc_w_str(w, name);
    ipc_w_u32(w, flags);
    ipc_w_u16(w, port);
}

int dns_host_req_decode(const void *body, size_t len, const char **name, unsigned *flags,
                        uint16_t *port)
{
    struct ipc_r r;

    ipc_r_init(&r, body, len);
    *name = ipc_r_str(&r);
    *flags = ipc_r_u32(&r);
    *port = ipc_r_u16(&r);
    if (!ipc_r_done(&r) || !name_ok(*name))
        return -1;
    return 0;
}

void dns_rep_encode(struct ipc_w *w, const struct dns_result *r)
{
    ipc_w_u32(w, (uint32_t)r->err);
    ipc_w_str(w, r->reason);
    ipc_w_str(w, r->name);
    ipc_w_u32(w, r->flags);
    ipc_w_u32(w, (uint32_t)r->nhosts);
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct dns_host *h = &r->hosts[i];
        ipc_w_str(w, h->name);
        ipc_w_u16(w, h->pref);
        ipc_w_u16(w, h->group);
        ipc_w_u16(w, h->port);
        ipc_w_u32(w, (uint32_t)h->err);
        ipc_w_str(w, h->reason);
        ipc_w_u32(w, (uint32_t)h->naddrs);
        for (size_t j = 0; j < h->naddrs; j++) {
            const struct sockaddr_storage *ss = &h->addrs[j];
            if (ss->ss_family == AF_INET) {
                ipc_w_u8(w, 4);
                ipc_w_bytes(w, &((const struct sockaddr_in *)ss)->sin_addr, 4);
            } else {
                ipc_w_u8(w, 6);
                ipc_w_bytes(w, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
            }
        }
        ipc_w_u8(w, h->sec);
        ipc_w_u8(w, h->tlsa_state);
        ipc_w_str(w, h->tlsa_reason);
        ipc_w_u32(w, (uint32_t)h->ntlsa);
        for (size_t j = 0; j < h->ntlsa; j++) {
            ipc_w_u8(w, h->tlsa[j].usage);
            ipc_w_u8(w, h->tlsa[j].selector);
            ipc_w_u8(w, h->tlsa[j].mtype);
            ipc_w_bytes(w, h->tlsa[j].data, h->tlsa[j].len);
        }
    }
    ipc_w_u8(w, r->sec);
    ipc_w_u8(w, r->sts.state);
    ipc_w_u8(w, r->sts.mode);
    ipc_w_str(w, r->sts.id);
    ipc_w_u32(w, r->sts.max_age);
    ipc_w_str(w, r->sts.reason);
    ipc_w_u32(w, (uint32_t)r->sts.nmx);
    for (size_t i = 0; i < r->sts.nmx; i++)
        ipc_w_str(w, r->sts.mx[i]);
}

static int read_addr(struct ipc_r *r, struct dns_host *h)
{
    uint8_t fam = ipc_r_u8(r);
    size_t n = 0;
    const void *p = ipc_r_bytes(r, &n);
    struct sockaddr_storage ss;

    if (!ipc_r_ok(r))
        return -1;
    memset(&ss, 0, sizeof(ss));
    if (fam == 4 && n == 4) {
        ss.ss_family = AF_INET;
        memcpy(&((struct sockaddr_in *)&ss)->sin_addr, p, 4);
    } else if (fam == 6 && n == 16) {
        ss.ss_family = AF_INET6;
        memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, p, 16);
    } else {
        return -1;
    }
    dns_host_add_addr(h, (struct sockaddr *)&ss);
    return 0;
}

/* A host's DNSSEC status and TLSA records. */
static int read_tlsa(struct ipc_r *r, struct dns_host *h)
{
    uint8_t sec = ipc_r_u8(r);
    uint8_t st = ipc_r_u8(r);
    const char *why = ipc_r_str(r);
    uint32_t n = ipc_r_u32(r);

    if (!ipc_r_ok(r) || sec > DNSSEC_BOGUS || st > DNS_TLSA_FAILED || n > DNS_MAX_TLSA)
        return -1;
    h->sec = sec;
    dns_host_set_tlsa_state(h, (enum dns_tlsa_state)st, why);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t u = ipc_r_u8(r), sel = ipc_r_u8(r), mt = ipc_r_u8(r);
        size_t len;
        const void *d = ipc_r_bytes(r, &len);

        if (!ipc_r_ok(r) || dns_host_add_tlsa(h, u, sel, mt, d, len) < 0)
            return -1;
    }
    return 0;
}

/* The result's DNSSEC status and MTA-STS state. */
static int read_sts(struct ipc_r *r, struct dns_result *res)
{
    const char *mx[DNS_MAX_STS_MX];
    uint8_t sec = ipc_r_u8(r);
    uint8_t st = ipc_r_u8(r);
    uint8_t mode = ipc_r_u8(r);
    const char *id = ipc_r_str(r);
    uint32_t max_age = ipc_r_u32(r);
    const char *why = ipc_r_str(r);
    uint32_t n = ipc_r_u32(r);

    if (!ipc_r_ok(r) || sec > DNSSEC_BOGUS || st > DNS_STS_FAILED || mode > DNS_STS_MODE_ENFORCE ||
        n > DNS_MAX_STS_MX)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        mx[i] = ipc_r_str(r);
        if (!ipc_r_ok(r) || !name_ok(mx[i]))
            return -1;
    }
    res->sec = sec;
    if (st != DNS_STS_NOT_ASKED)
        dns_result_set_sts(res, (enum dns_sts_state)st, (enum dns_sts_mode)mode, id, max_age, mx, n,
                           why);
    return 0;
}

static int read_class(struct ipc_r *r, enum dns_class *c)
{
    uint32_t v = ipc_r_u32(r);
    if (!ipc_r_ok(r) || v > DNS_PERM)
        return -1;
    *c = (enum dns_class)v;
    return 0;
}

int dns_rep_decode(const void *body, size_t len, struct dns_result *res)
{
    struct ipc_r r;
    enum dns_class c;
    const char *reason, *name;
    uint32_t nh;

    dns_result_init(res, "");
    ipc_r_init(&r, body, len);
    if (read_class(&r, &c) < 0)
        return -1;
    reason = ipc_r_str(&r);
    name = ipc_r_str(&r);
    res->flags = ipc_r_u32(&r);
    nh = ipc_r_u32(&r);
    if (!ipc_r_ok(&r) || nh > DNS_MAX_HOSTS)
        return -1;
    free(res->name);
    res->name = xstrdup(name);
    dns_result_set_err(res, c, "%s", reason);
    for (uint32_t i = 0; i < nh; i++) {
        const char *hn = ipc_r_str(&r);
        uint16_t pref = ipc_r_u16(&r);
        uint16_t group = ipc_r_u16(&r);
        uint16_t port = ipc_r_u16(&r);
        enum dns_class hc;
        const char *hr;
        uint32_t na;
        struct dns_host *h;

        if (read_class(&r, &hc) < 0)
            return -1;
        hr = ipc_r_str(&r);
        na = ipc_r_u32(&r);
        if (!ipc_r_ok(&r) || na > DNS_MAX_ADDRS)
            return -1;
        h = dns_result_add_host(res, hn, pref, port);
        if (!h)
            return -1;
        h->group = group;
        dns_host_set_err(h, hc, hr);
        for (uint32_t j = 0; j < na; j++)
            if (read_addr(&r, h) < 0)
                return -1;
        if (read_tlsa(&r, h) < 0)
            return -1;
    }
    return read_sts(&r, res) < 0 || !ipc_r_done(&r) ? -1 : 0;
}

/* ---- client ---- */

struct dnsc_req {
    struct dnsc_req *next;
    struct ipc_chan *ch;
    uint32_t id;
    dnsc_cb cb;
    void *arg;
};

static struct dnsc_req *dnsc_reqs;
static uint32_t dnsc_next_id;

static uint32_t dnsc_send(struct ipc_chan *ch, uint16_t type, struct ipc_w *w, dnsc_cb cb,
                          void *arg)
{
    struct dnsc_req *q;
    uint32_t id;

    if (!ch) {
        ipc_w_free(w);
        return 0;
    }
    if (++dnsc_next_id == 0)
        dnsc_next_id = 1;
    id = dnsc_next_id;
    if (ipc_send(ch, type, id, -1, w->p, w->len) < 0) {
        ipc_w_free(w);
        return 0;
    }
    ipc_w_free(w);
    q = xcalloc(1, sizeof(*q));
    q->ch = ch;
    q->id = id;
    q->cb = cb;
    q->arg = arg;
    q->next = dnsc_reqs;
    dnsc_reqs = q;
    return id;
}

uint32_t dnsc_mx(struct ipc_chan *ch, const char *domain, const char *const *override,
                 unsigned flags, uint16_t port, dnsc_cb cb, void *arg)
{
    struct ipc_w w;

    ipc_w_init(&w);
    dns_mx_req_encode(&w, domain, override, flags, port);
    return dnsc_send(ch, IMSG_DNS_MX_REQ, &w, cb, arg);
}

uint32_t dnsc_host(struct ipc_chan *ch, const char *name, unsigned flags, uint16_t port, dnsc_cb cb,
                   void *arg)
{
    struct ipc_w w;

    ipc_w_init(&w);
    dns_host_req_encode(&w, name, flags, port);
    return dnsc_send(ch, IMSG_DNS_HOST_REQ, &w, cb, arg);
}

static struct dnsc_req *dnsc_take(uint32_t id, struct ipc_chan *ch)
{
    for (struct dnsc_req **pp = &dnsc_reqs; *pp; pp = &(*pp)->next) {
        struct dnsc_req *q = *pp;
        if (q->id == id && (!ch || q->ch == ch)) {
            *pp = q->next;
            return q;
        }
    }
    return NULL;
}

void dnsc_cancel(uint32_t id)
{
    free(dnsc_take(id, NULL));
}

int dnsc_dispatch(struct ipc_chan *ch, const struct ipc_msg *m)
{
    struct dnsc_req *q;
    struct dns_result r;

    if (m->type != IMSG_DNS_REP)
        return 0;
    q = dnsc_take(m->id, ch);
    if (!q) {
        log_debug("dns reply %u for no pending request", m->id);
        return 1;
    }
    if (dns_rep_decode(m->body, m->len, &r) < 0) {
        log_warn("malformed dns reply from %s", ipc_chan_name(ch));
        dns_result_free(&r);
        dns_result_init(&r, "");
        dns_result_set_err(&r, DNS_TEMP, "malformed reply from dnsd");
    }
    q->cb(&r, q->arg);
    dns_result_free(&r);
    free(q);
    return 1;
}

void dnsc_chan_lost(struct ipc_chan *ch)
{
    struct dnsc_req *lost = NULL;

    for (struct dnsc_req **pp = &dnsc_reqs; *pp;) {
        struct dnsc_req *q = *pp;
        if (q->ch == ch) {
            *pp = q->next;
            q->next = lost;
            lost = q;
        } else {
            pp = &q->next;
        }
    }
    while (lost) {
        struct dnsc_req *q = lost;
        struct dns_result r;
        lost = q->next;
        dns_result_init(&r, "");
        dns_result_set_err(&r, DNS_TEMP, "dnsd unavailable");
        r.flags |= DNS_R_LOCAL;
        q->cb(&r, q->arg);
        dns_result_free(&r);
        free(q);
    }
}

size_t dnsc_pending(void)
{
    size_t n = 0;
    for (struct dnsc_req *q = dnsc_reqs; q; q = q->next)
        n++;
    return n;
}
