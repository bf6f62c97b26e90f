/*
 * dns_query - upstream DNS queries over non-blocking UDP/TCP sockets on
 * libevent, with cache and coalescing in front (contract in dns_query.h).
 *
 * A struct dnsq is one question in flight; it owns at most one socket
 * (UDP, or TCP after truncation) and one timer, and a list of waiters.
 * It leaves the in-flight list before its waiters are called, so a waiter
 * may ask again (even the same question) from inside its callback.
 *
 * With dnssec = validate an accepted answer is handed to dnssec_validate
 * through a struct vreq: if the engine is freed meanwhile, q is failed
 * and forgotten (vreq->q = NULL) and the verdict, which always comes
 * once, only frees the vreq. A cache value is one status byte, for a
 * BOGUS answer its reason (NUL-terminated), then the answer's wire form.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dns_answer.h"
#include "dns_query.h"
#include "dnssec.h"
#include "base/log.h"
#include "base/util.h"

#define EDNS_PAYLOAD 1232
#define UDP_BUF 65536

struct waiter {
    struct waiter *next;
    dnsq_cb cb;
    void *arg;
};

struct vreq {
    struct dnsq *q; /* NULL once q is gone */
    uint8_t *wire;  /* the answer being validated */
    size_t len;
};

struct dnsq {
    struct dnsq *next;
    struct vreq *vreq; /* validating */
    struct dnsq_engine *e;
    char *name;
    ldns_rr_type type;
    char *key;
    char *tname; /* "MX" for logs */
    struct waiter *waiters, **wtail;
    int tries, max_tries;
    int srv;
    uint16_t id;
    int edns;
    int fd;
    int tcp;
    struct event *ev_io;
    struct event *ev_timer;
    uint8_t *qwire;
    size_t qlen;
    /* TCP */
    size_t woff; /* bytes of length+query written */
    uint8_t lenbuf[2];
    size_t rlen_got; /* bytes of the 2-byte length read */
    uint8_t *rbuf;
    size_t rlen, roff;
    char lasterr[160];
};

struct dnsq_engine {
    struct event_base *base;
    struct dnscache *cache;
    struct dnsq_stats *st;
    struct dnsq_conf conf;
    int cur; /* first server to try */
    struct dnsq *inflight;
    size_t ninflight;
    uint8_t *ubuf;
};

static void q_send_udp(struct dnsq *q);
static void q_next_server(struct dnsq *q);

char *dnsq_key(const char *name, ldns_rr_type t)
{
    char *tn = ldns_rr_type2str(t);
    char *k = xasprintf("%s/%s", name, tn ? tn : "?");
    free(tn);
    return k;
}

struct dnsq_engine *dnsq_engine_new(struct event_base *base, struct dnscache *cache,
                                    struct dnsq_stats *stats)
{
    struct dnsq_engine *e = xcalloc(1, sizeof(*e));
    e->base = base;
    e->cache = cache;
    e->st = stats;
    e->conf.timeout_ms = 5000;
    e->conf.attempts = 2;
    e->conf.ttl_max = 86400;
    e->ubuf = xmalloc(UDP_BUF);
    return e;
}

void dnsq_engine_configure(struct dnsq_engine *e, const struct dnsq_conf *conf)
{
    e->conf = *conf;
    if (e->conf.timeout_ms < 1)
        e->conf.timeout_ms = 1;
    if (e->conf.attempts < 1)
        e->conf.attempts = 1;
    if (e->cur >= e->conf.rc.n)
        e->cur = 0;
}

size_t dnsq_inflight(const struct dnsq_engine *e)
{
    return e->ninflight;
}

static int64_t cache_now(void)
{
    return mono_us();
}

static void q_close_io(struct dnsq *q)
{
    if (q->ev_io) {
        event_free(q->ev_io);
        q->ev_io = NULL;
    }
    if (q->fd >= 0) {
        close(q->fd);
        q->fd = -1;
    }
    if (q->ev_timer)
        evtimer_del(q->ev_timer);
    free(q->rbuf);
    q->rbuf = NULL;
    q->tcp = 0;
}

static void q_unlink(struct dnsq *q)
{
    struct dnsq_engine *e = q->e;
    for (struct dnsq **pp = &e->inflight; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            e->ninflight--;
            return;
        }
}

static void q_free(struct dnsq *q)
{
    if (q->vreq)
        q->vreq->q = NULL;
    q_close_io(q);
    if (q->ev_timer)
        event_free(q->ev_timer);
    free(q->qwire);
    free(q->name);
    free(q->key);
    free(q->tname);
    free(q);
}

/* Leave the in-flight list and call every waiter with a. */
static void q_finish(struct dnsq *q, const struct dnsq_answer *a)
{
    struct waiter *w = q->waiters;

    q_unlink(q);
    q->waiters = NULL;
    q_close_io(q);
    while (w) {
        struct waiter *n = w->next;
        w->cb(a, w->arg);
        free(w);
        w = n;
    }
    q_free(q);
}

static void q_fail(struct dnsq *q)
{
    struct dnsq_answer a = {0};

    a.why = q->lasterr[0] ? q->lasterr : "no DNS server answered";
    q->e->st->failures++;
    log_warn("dns: %s/%s failed: %s", q->name, q->tname, a.why);
    q_finish(q, &a);
}

uint32_t dnsq_cache_ttl(const ldns_pkt *p, const char *name, ldns_rr_type t, uint32_t ttl_min,
                        uint32_t ttl_max)
{
    struct dnsans a;
    ldns_rr_list *add = ldns_pkt_additional(p);
    uint32_t ttl;

    dnsans_examine(p, name, t, DNSANS_MAX_HOPS, &a);
    if (!a.cacheable || a.kind == DNSANS_LOOP || a.kind == DNSANS_ERROR)
        return 0;
    ttl = a.ttl;
    /* MX answers are used with their additional addresses */
    for (size_t i = 0; t == LDNS_RR_TYPE_MX && add && i < ldns_rr_list_rr_count(add); i++) {
        ldns_rr *rr = ldns_rr_list_rr(add, i);
        ldns_rr_type at = ldns_rr_get_type(rr);
        if ((at == LDNS_RR_TYPE_A || at == LDNS_RR_TYPE_AAAA) && ldns_rr_ttl(rr) < ttl)
            ttl = ldns_rr_ttl(rr);
    }
    if (ttl < ttl_min)
        ttl = ttl_min;
    if (ttl > ttl_max)
        ttl = ttl_max;
    return ttl;
}

/* A cache value: status byte, reason if bogus, wire. */
static void cache_store(struct dnsq_engine *e, const char *key, int sec, const char *why,
                        const uint8_t *wire, size_t len, const char *summary, uint32_t ttl)
{
    struct buf v;

    buf_init(&v);
    buf_addc(&v, (char)sec);
    if (sec == DNSSEC_BOGUS)
        buf_add(&v, why, strlen(why) + 1);
    buf_add(&v, wire, len);
    dnscache_put(e->cache, key, v.data, v.len, summary, ttl, cache_now());
    buf_free(&v);
}

/* Split a cache value; -1 if it is not one. */
static int cache_split(const uint8_t *v, size_t len, int *sec, const char **why,
                       const uint8_t **wire, size_t *wlen)
{
    size_t off = 1;

    if (len < 1 || v[0] > DNSSEC_BOGUS)
        return -1;
    *sec = v[0];
    *why = "";
    if (*sec == DNSSEC_BOGUS) {
        const uint8_t *nul = memchr(v + 1, 0, len - 1);
        if (!nul)
            return -1;
        *why = (const char *)v + 1;
        off = (size_t)(nul - v) + 1;
    }
    *wire = v + off;
    *wlen = len - off;
    return 0;
}

int dnsq_entry_sec(const void *data, size_t len)
{
    int sec;
    const char *why;
    const uint8_t *w;
    size_t wl;

    return cache_split(data, len, &sec, &why, &w, &wl) < 0 ? DNSSEC_INSECURE : sec;
}

enum dnsq_dnssec dnsq_dnssec_mode(const struct dnsq_engine *e)
{
    return e->conf.dnssec;
}

/* The answer (with its DNSSEC status) to every waiter, and to the cache. */
static void q_deliver(struct dnsq *q, const ldns_pkt *p, const uint8_t *wire, size_t len, int sec,
                      const char *secwhy)
{
    struct dnsq_engine *e = q->e;
    struct dnsq_answer a = {0};
    uint32_t ttl = dnsq_cache_ttl(p, q->name, q->type, e->conf.ttl_min, e->conf.ttl_max);
    char why[400];

    if (sec == DNSSEC_BOGUS && ttl > DNSQ_BOGUS_TTL)
        ttl = DNSQ_BOGUS_TTL;
    if (log_enabled(LOG_LV_DETAIL) || (ttl && e->cache)) {
        struct buf s;
        buf_init(&s);
        dnsans_summary(p, q->name, q->type, &s);
        log_detail("dns: answer %s/%s from %s: %s (ttl %u, %s)", q->name, q->tname,
                   e->conf.rc.servers[q->srv].text, s.data ? s.data : "", ttl,
                   dnssec_status_name((unsigned)sec));
        if (ttl && e->cache)
            cache_store(e, q->key, sec, secwhy, wire, len, s.data ? s.data : "", ttl);
        buf_free(&s);
    }
    a.sec = sec;
    if (sec == DNSSEC_BOGUS) {
        snprintf(why, sizeof(why), "DNSSEC: bogus: %s", secwhy);
        log_info("dns: %s/%s: DNSSEC validation failed: %s", q->name, q->tname, secwhy);
        a.why = why;
    } else {
        a.ok = 1;
        a.pkt = p;
    }
    q_finish(q, &a);
}

static void q_validated(enum dnssec_status st, const char *why, void *arg)
{
    struct vreq *v = arg;
    struct dnsq *q = v->q;
    ldns_pkt *p = NULL;

    if (q) {
        q->vreq = NULL;
        if (dnsans_parse(&p, v->wire, v->len) == LDNS_STATUS_OK && p)
            q_deliver(q, p, v->wire, v->len, (int)st, why ? why : "");
        else
            q_fail(q); /* cannot happen: the bytes parsed before */
        ldns_pkt_free(p);
    }
    free(v->wire);
    free(v);
}

static void q_fetch(void *fetch_arg, const char *name, ldns_rr_type t, dnssec_fetch_done done,
                    void *ctx);

static void q_answer(struct dnsq *q, const ldns_pkt *p, const uint8_t *wire, size_t len)
{
    struct dnsq_engine *e = q->e;
    struct vreq *v;

    switch (e->conf.dnssec) {
    case DNSQ_SEC_OFF:
        q_deliver(q, p, wire, len, DNSSEC_INSECURE, "");
        return;
    case DNSQ_SEC_RESOLVER:
        q_deliver(q, p, wire, len, ldns_pkt_ad(p) ? DNSSEC_SECURE : DNSSEC_INSECURE, "");
        return;
    case DNSQ_SEC_VALIDATE:
        break;
    }
    q_close_io(q); /* nothing more to read; askers keep joining q */
    v = xcalloc(1, sizeof(*v));
    v->q = q;
    v->wire = xmalloc(len);
    memcpy(v->wire, wire, len);
    v->len = len;
    q->vreq = v;
    dnssec_validate(e->conf.anchors, q_fetch, e, p, q->name, q->type, time(NULL), q_validated, v);
}

static int same_server(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

/* Does p answer our question? NULL if yes, else why not. */
static const char *q_check(const struct dnsq *q, const ldns_pkt *p)
{
    ldns_rr_list *qs = ldns_pkt_question(p);
    ldns_rr *rr;
    char n[DNS_MAX_NAME + 1];

    if (ldns_pkt_id(p) != q->id)
        return "wrong ID";
    if (!ldns_pkt_qr(p))
        return "not a response";
    if (!qs || ldns_rr_list_rr_count(qs) != 1)
        return "question count is not 1";
    rr = ldns_rr_list_rr(qs, 0);
    if (ldns_rr_get_type(rr) != q->type || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
        return "question type differs";
    if (dnsans_name(ldns_rr_owner(rr), n, sizeof(n)) < 0 || strcmp(n, q->name) != 0)
        return "question name differs";
    return NULL;
}

static void q_start_tcp(struct dnsq *q);

/* A validated answer: use it, or move on. */
static void q_response(struct dnsq *q, const ldns_pkt *p, const uint8_t *wire, size_t len)
{
    struct dnsq_engine *e = q->e;
    const char *srv = e->conf.rc.servers[q->srv].text;
    ldns_pkt_rcode rc = ldns_pkt_get_rcode(p);

    if (ldns_pkt_tc(p) && !q->tcp) {
        log_detail("dns: answer %s/%s from %s truncated, retrying over TCP", q->name, q->tname,
                   srv);
        q_start_tcp(q);
        return;
    }
    if (rc == LDNS_RCODE_NOERROR || rc == LDNS_RCODE_NXDOMAIN) {
        q_answer(q, p, wire, len);
        return;
    }
    if (rc == LDNS_RCODE_FORMERR && q->edns) {
        log_detail("dns: %s answered FORMERR to EDNS0, retrying without", srv);
        q->edns = 0;
        q->max_tries++;
        q_close_io(q);
        q_send_udp(q);
        return;
    }
    {
        char *rcs = ldns_pkt_rcode2str(rc);
        snprintf(q->lasterr, sizeof(q->lasterr), "%s from %s", rcs ? rcs : "error", srv);
        free(rcs);
    }
    log_warn("dns: %s/%s: %s", q->name, q->tname, q->lasterr);
    q_next_server(q);
}

static void q_udp_read(evutil_socket_t fd, short what, void *arg)
{
    struct dnsq *q = arg;
    struct dnsq_engine *e = q->e;
    const struct dns_server *s = &e->conf.rc.servers[q->srv];

    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd, e->ubuf, UDP_BUF, 0, (struct sockaddr *)&from, &fl);
        ldns_pkt *p = NULL;
        const char *why;
        char a[INET6_ADDRSTRLEN];

        if (n < 0)
            return; /* EAGAIN, or an ICMP error: the timer moves on */
        if (!same_server(&from, &s->ss)) {
            e->st->ignored++;
            log_warn("dns: ignored answer for %s/%s from unexpected source %s port %u", q->name,
                     q->tname, dns_addr_str(&from, a, sizeof(a)),
                     from.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&from)->sin6_port)
                                                : ntohs(((struct sockaddr_in *)&from)->sin_port));
            continue;
        }
        /* the ID before anything is parsed: bytes an off-path sender
         * made up reach no parser (ldns has leaks on some hostile packets) */
        if (n < 2 || ((unsigned)e->ubuf[0] << 8 | e->ubuf[1]) != q->id) {
            e->st->ignored++;
            log_warn("dns: ignored answer for %s/%s from %s: wrong ID", q->name, q->tname, s->text);
            continue;
        }
        if (dnsans_parse(&p, e->ubuf, (size_t)n) != LDNS_STATUS_OK || !p) {
            e->st->ignored++;
            log_warn("dns: ignored malformed answer for %s/%s from %s", q->name, q->tname, s->text);
            continue;
        }
        if ((why = q_check(q, p)) != NULL) {
            e->st->ignored++;
            log_warn("dns: ignored answer for %s/%s from %s: %s", q->name, q->tname, s->text, why);
            ldns_pkt_free(p);
            continue;
        }
        q_response(q, p, e->ubuf, (size_t)n);
        ldns_pkt_free(p);
        return; /* q may be gone */
    }
}

static void q_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct dnsq *q = arg;
    struct dnsq_engine *e = q->e;

    snprintf(q->lasterr, sizeof(q->lasterr), "timeout from %s%s", e->conf.rc.servers[q->srv].text,
             q->tcp ? " (TCP)" : "");
    e->st->timeouts++;
    log_warn("dns: %s/%s: %s", q->name, q->tname, q->lasterr);
    /* later queries start with the next server */
    if (e->cur == q->srv && e->conf.rc.n > 1)
        e->cur = (q->srv + 1) % e->conf.rc.n;
    q_next_server(q);
}

static void q_next_server(struct dnsq *q)
{
    q_close_io(q);
    if (q->e->conf.rc.n > 0)
        q->srv = (q->srv + 1) % q->e->conf.rc.n;
    q_send_udp(q);
}

static int q_build(struct dnsq *q)
{
    ldns_rdf *d = NULL;
    ldns_pkt *p;
    int r = -1;

    if (ldns_str2rdf_dname(&d, q->name) != LDNS_STATUS_OK || !d)
        return -1;
    p = ldns_pkt_query_new(d, q->type, LDNS_RR_CLASS_IN, LDNS_RD);
    if (!p)
        return -1;
    q->id = (uint16_t)(arc4random() & 0xffff);
    ldns_pkt_set_id(p, q->id);
    if (q->edns)
        ldns_pkt_set_edns_udp_size(p, EDNS_PAYLOAD);
    if (q->edns && q->e->conf.dnssec != DNSQ_SEC_OFF)
        ldns_pkt_set_edns_do(p, true);
    if (q->e->conf.dnssec == DNSQ_SEC_VALIDATE)
        ldns_pkt_set_cd(p, true); /* we judge: give us what fails to validate too */
    if (q->e->conf.dnssec == DNSQ_SEC_RESOLVER)
        ldns_pkt_set_ad(p, true); /* RFC 6840 5.7: ask for the AD bit */
    free(q->qwire);
    q->qwire = NULL;
    if (ldns_pkt2wire(&q->qwire, p, &q->qlen) == LDNS_STATUS_OK)
        r = 0;
    ldns_pkt_free(p);
    return r;
}

static int bind_any(int fd, int family)
{
    struct sockaddr_storage ss;
    socklen_t len;

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = (sa_family_t)family;
    len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    /* port 0: the kernel picks a random ephemeral port for every query */
    return bind(fd, (struct sockaddr *)&ss, len);
}

static void q_send_udp(struct dnsq *q)
{
    struct dnsq_engine *e = q->e;
    const struct dns_server *s;
    struct timeval tv;

    if (e->conf.rc.n == 0) {
        snprintf(q->lasterr, sizeof(q->lasterr), "no DNS servers configured");
        q_fail(q);
        return;
    }
    if (q->tries >= q->max_tries) {
        q_fail(q);
        return;
    }
    q->tries++;
    s = &e->conf.rc.servers[q->srv];
    if (q_build(q) < 0) {
        snprintf(q->lasterr, sizeof(q->lasterr), "cannot build a query for %s", q->name);
        q_fail(q);
        return;
    }
    q->fd = socket(s->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0 || bind_any(q->fd, s->ss.ss_family) < 0 ||
        sendto(q->fd, q->qwire, q->qlen, 0, (const struct sockaddr *)&s->ss, s->sslen) < 0) {
        snprintf(q->lasterr, sizeof(q->lasterr), "send to %s: %s", s->text, strerror(errno));
        log_warn("dns: %s/%s: %s", q->name, q->tname, q->lasterr);
        q_close_io(q);
        /* try the next server now, without waiting for a timeout */
        q->srv = (q->srv + 1) % e->conf.rc.n;
        q_send_udp(q);
        return;
    }
    e->st->sent++;
    log_detail("dns: query %s/%s to %s id %u%s", q->name, q->tname, s->text, q->id,
               q->edns ? " edns0" : "");
    q->ev_io = event_new(e->base, q->fd, EV_READ | EV_PERSIST, q_udp_read, q);
    event_add(q->ev_io, NULL);
    tv.tv_sec = e->conf.timeout_ms / 1000;
    tv.tv_usec = (e->conf.timeout_ms % 1000) * 1000;
    evtimer_add(q->ev_timer, &tv);
}

/* ---- TCP ---- */

static void q_tcp_fail(struct dnsq *q, const char *what)
{
    snprintf(q->lasterr, sizeof(q->lasterr), "TCP %s %s", what, q->e->conf.rc.servers[q->srv].text);
    log_warn("dns: %s/%s: %s", q->name, q->tname, q->lasterr);
    q_next_server(q);
}

static void q_tcp_io(evutil_socket_t fd, short what, void *arg);

static void q_tcp_want(struct dnsq *q, short ev)
{
    if (q->ev_io)
        event_free(q->ev_io);
    q->ev_io = event_new(q->e->base, q->fd, ev | EV_PERSIST, q_tcp_io, q);
    event_add(q->ev_io, NULL);
}

static void q_tcp_done(struct dnsq *q)
{
    ldns_pkt *p = NULL;
    const char *why;

    if (q->rlen < 2 || ((unsigned)q->rbuf[0] << 8 | q->rbuf[1]) != q->id) {
        q->e->st->ignored++;
        log_warn("dns: ignored TCP answer for %s/%s from %s: wrong ID", q->name, q->tname,
                 q->e->conf.rc.servers[q->srv].text);
        q_tcp_fail(q, "bad answer from");
        return;
    }
    if (dnsans_parse(&p, q->rbuf, q->rlen) != LDNS_STATUS_OK || !p) {
        q->e->st->ignored++;
        q_tcp_fail(q, "malformed answer from");
        return;
    }
    if ((why = q_check(q, p)) != NULL) {
        q->e->st->ignored++;
        log_warn("dns: ignored TCP answer for %s/%s from %s: %s", q->name, q->tname,
                 q->e->conf.rc.servers[q->srv].text, why);
        ldns_pkt_free(p);
        q_tcp_fail(q, "bad answer from");
        return;
    }
    {
        /* q_response may free q; keep the bytes alive until it returns */
        uint8_t *wire = q->rbuf;
        size_t len = q->rlen;
        q->rbuf = NULL;
        q_response(q, p, wire, len);
        free(wire);
    }
    ldns_pkt_free(p);
}

static void q_tcp_io(evutil_socket_t fd, short what, void *arg)
{
    struct dnsq *q = arg;
    ssize_t n;

    if (what & EV_WRITE) {
        uint8_t out[2 + 65535];
        size_t total = q->qlen + 2;
        int err = 0;
        socklen_t el = sizeof(err);

        if (q->woff == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)) {
            q_tcp_fail(q, "connect to");
            return;
        }
        out[0] = (uint8_t)(q->qlen >> 8);
        out[1] = (uint8_t)(q->qlen & 0xff);
        memcpy(out + 2, q->qwire, q->qlen);
        n = send(fd, out + q->woff, total - q->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            q_tcp_fail(q, "send to");
            return;
        }
        q->woff += (size_t)n;
        if (q->woff == total)
            q_tcp_want(q, EV_READ);
        return;
    }
    if (q->rlen_got < 2) {
        n = recv(fd, q->lenbuf + q->rlen_got, 2 - q->rlen_got, 0);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            q_tcp_fail(q, "connection closed by");
            return;
        }
        q->rlen_got += (size_t)n;
        if (q->rlen_got < 2)
            return;
        q->rlen = ((size_t)q->lenbuf[0] << 8) | q->lenbuf[1];
        if (q->rlen < 12) {
            q_tcp_fail(q, "short answer from");
            return;
        }
        q->rbuf = xmalloc(q->rlen);
        q->roff = 0;
    }
    n = recv(fd, q->rbuf + q->roff, q->rlen - q->roff, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        q_tcp_fail(q, "connection closed by");
        return;
    }
    q->roff += (size_t)n;
    if (q->roff == q->rlen)
        q_tcp_done(q);
}

static void q_start_tcp(struct dnsq *q)
{
    struct dnsq_engine *e = q->e;
    const struct dns_server *s = &e->conf.rc.servers[q->srv];
    struct timeval tv;

    q_close_io(q);
    q->tcp = 1;
    q->woff = q->rlen_got = q->rlen = q->roff = 0;
    q->fd = socket(s->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0 ||
        (connect(q->fd, (const struct sockaddr *)&s->ss, s->sslen) < 0 && errno != EINPROGRESS)) {
        q_tcp_fail(q, "connect to");
        return;
    }
    e->st->sent++;
    log_detail("dns: query %s/%s to %s over TCP id %u", q->name, q->tname, s->text, q->id);
    q_tcp_want(q, EV_WRITE);
    tv.tv_sec = e->conf.timeout_ms / 1000;
    tv.tv_usec = (e->conf.timeout_ms % 1000) * 1000;
    evtimer_add(q->ev_timer, &tv);
}

/* ---- asking ---- */

static int answer_from_cache(struct dnsq_engine *e, const char *key, dnsq_cb cb, void *arg)
{
    size_t len, wlen;
    const void *v;
    const uint8_t *w;
    const char *secwhy;
    ldns_pkt *p = NULL;
    struct dnsq_answer a = {0};
    char why[400];
    int sec;

    if (!e->cache || !(v = dnscache_get(e->cache, key, cache_now(), &len)))
        return 0;
    if (cache_split(v, len, &sec, &secwhy, &w, &wlen) < 0)
        return 0;
    log_detail("dns: cache hit %s (%s)", key, dnssec_status_name((unsigned)sec));
    a.cached = 1;
    a.sec = sec;
    if (sec == DNSSEC_BOGUS) {
        snprintf(why, sizeof(why), "DNSSEC: bogus: %s", secwhy);
        a.why = why;
        cb(&a, arg);
        return 1;
    }
    if (dnsans_parse(&p, w, wlen) != LDNS_STATUS_OK || !p)
        return 0;
    a.ok = 1;
    a.pkt = p;
    cb(&a, arg);
    ldns_pkt_free(p);
    return 1;
}

/* dnssec_validate's fetch: the engine itself (cache, coalescing, and the
 * fetched answer validated in turn). */
struct fetchreq {
    dnssec_fetch_done done;
    void *ctx;
};

static void q_fetched(const struct dnsq_answer *a, void *arg)
{
    struct fetchreq f = *(struct fetchreq *)arg;

    free(arg);
    if (a->ok)
        f.done(a->pkt, a->sec, NULL, f.ctx);
    else
        f.done(NULL, a->sec, a->why, f.ctx);
}

static void q_fetch(void *fetch_arg, const char *name, ldns_rr_type t, dnssec_fetch_done done,
                    void *ctx)
{
    struct fetchreq *f = xmalloc(sizeof(*f));

    f->done = done;
    f->ctx = ctx;
    dnsq_ask(fetch_arg, name, t, q_fetched, f);
}

void dnsq_ask(struct dnsq_engine *e, const char *name, ldns_rr_type t, dnsq_cb cb, void *arg)
{
    char *key = dnsq_key(name, t);
    struct waiter *w;
    struct dnsq *q;

    e->st->asked++;
    if (answer_from_cache(e, key, cb, arg)) {
        free(key);
        return;
    }
    w = xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    for (q = e->inflight; q; q = q->next)
        if (strcmp(q->key, key) == 0) {
            *q->wtail = w;
            q->wtail = &w->next;
            e->st->coalesced++;
            log_detail("dns: %s joins the query in flight", key);
            free(key);
            return;
        }
    q = xcalloc(1, sizeof(*q));
    q->e = e;
    q->name = xstrdup(name);
    q->type = t;
    q->key = key;
    q->tname = ldns_rr_type2str(t);
    if (!q->tname)
        q->tname = xstrdup("?");
    q->waiters = w;
    q->wtail = &w->next;
    q->fd = -1;
    q->edns = 1;
    q->srv = e->conf.rc.n ? e->cur % e->conf.rc.n : 0;
    q->max_tries = e->conf.rc.n * e->conf.attempts;
    q->ev_timer = evtimer_new(e->base, q_timeout, q);
    q->next = e->inflight;
    e->inflight = q;
    e->ninflight++;
    q_send_udp(q);
}

void dnsq_engine_free(struct dnsq_engine *e)
{
    if (!e)
        return;
    while (e->inflight) {
        snprintf(e->inflight->lasterr, sizeof(e->inflight->lasterr), "dnsd is stopping");
        q_fail(e->inflight);
    }
    free(e->ubuf);
    free(e);
}
