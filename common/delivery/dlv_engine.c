/*
 * dlv_engine - one delivery request from qmgr carried out over the SMTP
 * client: resolve the target, walk the addresses, tally per-recipient
 * results, keep reusable sessions idle per destination. Contract in
 * dlv_engine.h; the pure decisions come first in this file, the event
 * code after them.
 */
#include "delivery/dlv_engine.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "base/netaddr.h"
#include "mail/mta_sts.h"
#include "mail/qfile.h"
#include "base/util.h"

/* ---- pure: candidates ---- */

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* The first of: a configured port, the address's own port, the default. */
static uint16_t pick_port(uint16_t first, const struct sockaddr_storage *ss, uint16_t def)
{
    int p;

    if (first != 0)
        return first;
    p = ss ? netaddr_port((const struct sockaddr *)ss) : 0;
    if (p > 0 && p < 65536)
        return (uint16_t)p;
    return def;
}

size_t dlv_cands_mx(const struct dns_result *r, uint16_t default_port, enum tls_mode tls,
                    struct dlv_cand *out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < r->nhosts; i++) {
        const struct dns_host *h = &r->hosts[i];
        for (size_t k = 0; k < h->naddrs && n < max; k++) {
            struct dlv_cand *c = &out[n++];
            memset(c, 0, sizeof(*c));
            c->host = h->name;
            c->addr = h->addrs[k];
            set_port(&c->addr, pick_port(h->port, &h->addrs[k], default_port));
            c->host_index = -1;
            c->mx_index = (int)i;
            c->tls = tls;
        }
    }
    return n;
}

size_t dlv_cands_host(const struct dlv_host *h, int index, const struct dns_result *r,
                      const struct sockaddr_storage *lit, uint16_t default_port,
                      struct dlv_cand *out, size_t max)
{
    size_t n = 0;
    const struct sockaddr_storage *addrs = lit;
    size_t naddrs = lit ? 1 : 0;

    if (lit == NULL && r != NULL && r->err == DNS_OK && r->nhosts > 0) {
        addrs = r->hosts[0].addrs;
        naddrs = r->hosts[0].naddrs;
    }
    for (size_t k = 0; k < naddrs && n < max; k++) {
        struct dlv_cand *c = &out[n++];
        memset(c, 0, sizeof(*c));
        c->host = h->name;
        c->addr = addrs[k];
        /* a literal may carry its port ("192.0.2.1:2525"); looked-up addresses do not */
        set_port(&c->addr, pick_port(h->port, lit, default_port));
        c->host_index = index;
        c->mx_index = -1;
        c->tls = (enum tls_mode)h->tls;
        c->h = h;
    }
    return n;
}

/* ---- pure: classes, steps, results ---- */

enum dlv_class dlv_class_of(enum smtpc_class c)
{
    switch (c) {
    case SMTPC_CL_NONE:
        return DLV_CLASS_NONE;
    case SMTPC_CL_NETWORK:
    case SMTPC_CL_PROTOCOL: /* a peer that does not speak SMTP: like a broken connection */
        return DLV_CLASS_NETWORK;
    case SMTPC_CL_TLS:
        return DLV_CLASS_TLS;
    case SMTPC_CL_SMTP:
        return DLV_CLASS_SMTP;
    case SMTPC_CL_AUTH:
        return DLV_CLASS_AUTH;
    case SMTPC_CL_LOCAL:
        return DLV_CLASS_LOCAL;
    }
    return DLV_CLASS_LOCAL;
}

enum dlv_step dlv_step_of(enum smtpc_step s)
{
    switch (s) {
    case SMTPC_STEP_NONE:
    case SMTPC_STEP_QUIT:
        return DLV_STEP_NONE;
    case SMTPC_STEP_CONNECT:
        return DLV_STEP_CONNECT;
    case SMTPC_STEP_GREETING:
        return DLV_STEP_GREETING;
    case SMTPC_STEP_HELO:
        return DLV_STEP_HELO;
    case SMTPC_STEP_STARTTLS:
        return DLV_STEP_STARTTLS;
    case SMTPC_STEP_AUTH:
        return DLV_STEP_AUTH;
    case SMTPC_STEP_RSET: /* the start of a transaction on a reused connection */
    case SMTPC_STEP_MAIL:
        return DLV_STEP_MAIL;
    case SMTPC_STEP_RCPT:
        return DLV_STEP_RCPT;
    case SMTPC_STEP_DATA:
        return DLV_STEP_DATA;
    case SMTPC_STEP_DOT:
        return DLV_STEP_DOT;
    }
    return DLV_STEP_NONE;
}

static void rres_set(struct dlv_rcpt_res *x, enum dlv_status st, enum dlv_class cls,
                     enum dlv_step step, int code, const char *dsn, const char *text)
{
    x->status = (uint8_t)st;
    x->cls = (uint8_t)cls;
    x->step = (uint8_t)step;
    x->code = (uint16_t)(code > 0 && code < 1000 ? code : 0);
    free(x->dsn);
    free(x->text);
    x->dsn = xstrdup(dsn ? dsn : "");
    x->text = xstrdup(text ? text : "");
}

static enum dlv_status status_of(enum smtpc_status s)
{
    return s == SMTPC_OK ? DLV_OK : s == SMTPC_PERM ? DLV_PERM : DLV_TEMP;
}

void dlv_rcpt_from_smtpc(struct dlv_rcpt_res *out, const struct smtpc_res *r)
{
    rres_set(out, status_of(r->status), dlv_class_of(r->cls), dlv_step_of(r->step), r->code, r->enh,
             r->text);
}

void dlv_tally_init(struct dlv_tally *t, const struct dlv_req *q)
{
    memset(t, 0, sizeof(*t));
    t->n = q->nrcpts;
    t->r = xcalloc(t->n ? t->n : 1, sizeof(*t->r));
    t->open = xcalloc(t->n ? t->n : 1, 1);
    for (size_t i = 0; i < t->n; i++) {
        t->r[i].idx = q->rcpts[i].idx;
        rres_set(&t->r[i], DLV_TEMP, DLV_CLASS_LOCAL, DLV_STEP_NONE, 0, "4.3.0",
                 "delivery not attempted");
        t->open[i] = 1;
    }
    t->nopen = t->n;
}

void dlv_tally_free(struct dlv_tally *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->r[i].dsn);
        free(t->r[i].text);
    }
    free(t->r);
    free(t->open);
    memset(t, 0, sizeof(*t));
}

static void tally_final(struct dlv_tally *t, size_t i)
{
    if (t->open[i]) {
        t->open[i] = 0;
        t->nopen--;
    }
}

void dlv_tally_set_open(struct dlv_tally *t, enum dlv_status st, enum dlv_class cls,
                        enum dlv_step step, int code, const char *dsn, const char *text)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!t->open[i])
            continue;
        rres_set(&t->r[i], st, cls, step, code, dsn, text);
        if (st != DLV_TEMP)
            tally_final(t, i);
    }
}

static const char *dns_perm_dsn(const char *reason)
{
    if (reason && strstr(reason, "null MX"))
        return "5.1.10"; /* RFC 7505 */
    if (reason && strstr(reason, "NXDOMAIN"))
        return "5.1.2";
    return "5.4.4";
}

void dlv_tally_dns(struct dlv_tally *t, enum dns_class c, const char *reason, int hosts_target)
{
    if (c == DNS_PERM && !hosts_target)
        dlv_tally_set_open(t, DLV_PERM, DLV_CLASS_DNS, DLV_STEP_DNS, 0, dns_perm_dsn(reason),
                           reason);
    else
        dlv_tally_set_open(t, DLV_TEMP, DLV_CLASS_DNS, DLV_STEP_DNS, 0, "4.4.3", reason);
}

/* An enhanced code with its class digit made temporary ("5.7.1" -> "4.7.1"). */
static void enh_temp(char *out, size_t len, const char *enh)
{
    strlcpy_p(out, enh && enh[0] ? enh : "4.0.0", len);
    if (out[0] == '5')
        out[0] = '4';
}

void dlv_tally_open_failed(struct dlv_tally *t, const struct smtpc_res *res)
{
    char enh[16];

    /* Refusing the session (5xx greeting or EHLO) is not a verdict on the
     * message: another MX may take it, and a later attempt may too. */
    enh_temp(enh, sizeof(enh), res->enh);
    dlv_tally_set_open(t, DLV_TEMP, dlv_class_of(res->cls), dlv_step_of(res->step), res->code, enh,
                       res->text);
}

int dlv_tally_txn(struct dlv_tally *t, const struct smtpc_txn_res *tr, const size_t *map)
{
    if (tr->session.lost_before_txn)
        return 1;
    for (size_t i = 0; i < tr->nrcpts; i++) {
        const struct smtpc_res *r = &tr->rcpt[i];
        size_t k = map[i];
        if (k >= t->n || !t->open[k])
            continue;
        dlv_rcpt_from_smtpc(&t->r[k], r);
        if (r->status != SMTPC_TEMP)
            tally_final(t, k);
        else if (r->cls == SMTPC_CL_LOCAL)
            t->stop = 1; /* our side cannot read the message: no point going on */
    }
    if (tr->session.status == SMTPC_OK && tr->accepted > 0)
        t->taken = 1;
    return 0;
}

int dlv_tally_more(const struct dlv_tally *t)
{
    return t->nopen > 0 && !t->stop;
}

/* ---- pure: the TLS policy of a host (DANE, MTA-STS) ---- */

const char *dlv_tls_policy_name(enum dlv_tls_policy p)
{
    static const char *const names[] = {"domain", "dane", "mta-sts enforce", "mta-sts testing"};

    return (size_t)p < nitems(names) ? names[p] : "?";
}

int dlv_tls_wants_dane(enum tls_mode mode, int listed)
{
    if (listed)
        return mode == TLS_MODE_DANE || mode == TLS_MODE_DANE_ONLY;
    return mode != TLS_MODE_NONE && mode != TLS_MODE_VERIFY;
}

static int sts_host_ok(const struct dns_sts *sts, const char *host)
{
    for (size_t i = 0; i < sts->nmx; i++)
        if (sts_mx_match(sts->mx[i], host))
            return 1;
    return 0;
}

/* DANE where it applies: 1 when the TLSA state decided the plan. */
static int plan_dane(enum tls_mode mode, const struct dns_host *h, struct dlv_tls_plan *p)
{
    if (h == NULL)
        return 0;
    switch ((enum dns_tlsa_state)h->tlsa_state) {
    case DNS_TLSA_FAILED:
        p->policy = DLV_TLS_POLICY_DANE;
        p->skip = 1;
        snprintf(p->reason, sizeof(p->reason), "TLSA lookup failed: %s",
                 h->tlsa_reason && h->tlsa_reason[0] ? h->tlsa_reason : "no reason given");
        return 1;
    case DNS_TLSA_FOUND:
        p->policy = DLV_TLS_POLICY_DANE;
        for (size_t i = 0; i < h->ntlsa && p->ntlsa < DNS_MAX_TLSA; i++) {
            const struct dns_tlsa *t = &h->tlsa[i];
            if (!smtpc_tlsa_usable(t->usage, t->selector, t->mtype, t->len))
                continue;
            p->tlsa[p->ntlsa++] =
                (struct smtpc_tlsa){t->usage, t->selector, t->mtype, t->data, t->len};
        }
        /* RFC 7672 3.1.3: records, none usable: TLS, not authenticated */
        p->dane = p->ntlsa > 0;
        p->mode = p->dane ? TLS_MODE_DANE : TLS_MODE_ENCRYPT;
        return 1;
    case DNS_TLSA_NOT_ASKED:
    case DNS_TLSA_NONE:
    case DNS_TLSA_INSECURE:
        break;
    }
    return 0;
}

/* MTA-STS for an MX host without DANE. */
static void plan_sts(const struct dns_result *r, const char *host, struct dlv_tls_plan *p)
{
    const struct dns_sts *sts = &r->sts;
    int in = sts_host_ok(sts, host);

    if (sts->state != DNS_STS_POLICY || sts->mode == DNS_STS_MODE_NONE)
        return;
    if (!in)
        snprintf(p->reason, sizeof(p->reason), "%s is not in the MTA-STS policy of %s (id %s)",
                 host, r->name ? r->name : "?", sts->id ? sts->id : "");
    if (sts->mode == DNS_STS_MODE_ENFORCE) {
        p->policy = DLV_TLS_POLICY_STS_ENFORCE;
        p->skip = !in;
        p->mode = TLS_MODE_VERIFY;
        return;
    }
    p->policy = DLV_TLS_POLICY_STS_TESTING;
    p->sts_fail = !in;
    p->evaluate = p->mode == TLS_MODE_MAY || p->mode == TLS_MODE_ENCRYPT;
}

void dlv_tls_plan(enum tls_mode mode, const struct dns_result *r, const struct dns_host *h,
                  int listed, struct dlv_tls_plan *out)
{
    const char *host = h && h->name ? h->name : r && r->name ? r->name : "?";

    memset(out, 0, sizeof(*out));
    out->mode = mode;
    out->policy = DLV_TLS_POLICY_DOMAIN;
    if (dlv_tls_wants_dane(mode, listed) && plan_dane(mode, h, out))
        return;
    if (mode == TLS_MODE_DANE_ONLY) {
        out->skip = 1;
        snprintf(out->reason, sizeof(out->reason), "no secure TLSA records for %s", host);
        return;
    }
    if (mode == TLS_MODE_DANE)
        out->mode = TLS_MODE_MAY;
    if (!listed && r != NULL && h != NULL)
        plan_sts(r, h->name, out);
}

/* ---- pure: whom a connection belongs to (connection reuse) ---- */

void dlv_conn_id_of(const struct dlv_req *q, int host_index, struct dlv_conn_id *out)
{
    const struct dlv_host *h =
        host_index >= 0 && (size_t)host_index < q->nhosts ? &q->hosts[host_index] : NULL;

    memset(out, 0, sizeof(*out));
    if (h == NULL) {
        out->dest = q->dest_key ? q->dest_key : "";
        out->label = out->host = out->auth_user = "";
        out->port = q->port;
        out->tls = (enum tls_mode)q->tls;
        return;
    }
    out->dest = "";
    out->label = h->label ? h->label : "";
    out->host = h->name ? h->name : "";
    out->port = h->port ? h->port : q->port;
    out->tls = (enum tls_mode)h->tls;
    out->auth_user = h->auth_user ? h->auth_user : "";
}

int dlv_conn_id_same(const struct dlv_conn_id *a, const struct dlv_conn_id *b)
{
    return strcmp(a->dest, b->dest) == 0 && strcmp(a->label, b->label) == 0 &&
           strcmp(a->host, b->host) == 0 && a->port == b->port && a->tls == b->tls &&
           strcmp(a->auth_user, b->auth_user) == 0;
}

int dlv_reuse_at(const struct dlv_req *q, int at, const struct dlv_conn_id *idle)
{
    struct dlv_conn_id want;

    if (q->dest_key == NULL || q->dest_key[0] == '\0')
        return 0; /* the request asks for no reuse */
    if (q->target == DLV_TARGET_HOSTS ? at < 0 || (size_t)at >= q->nhosts : at != -1)
        return 0;
    dlv_conn_id_of(q, at, &want);
    return dlv_conn_id_same(&want, idle);
}

/* ---- the engine ---- */

struct idle {
    struct idle *next;
    struct dlv_engine *e;
    char *dest_key; /* of the job that parked it: connection_delay */
    struct smtpc *s;
    struct event *timer;
    struct dlv_conn_id id; /* whom it belongs to; strings owned */
    struct sockaddr_storage addr;
    /* what TLS the connection has, so that a later job reuses it only
     * when that satisfies the job's own TLS plan (DANE, MTA-STS) */
    char *host;   /* the host it is connected to */
    int tls;      /* TLS in use */
    int dane;     /* the chain matched a TLSA record */
    int verified; /* chain and host name verified (PKIX) */
};

/* When the last connection under a key ended (connection_delay). */
struct closed {
    char *key;
    int64_t at_us; /* mono_us */
};

struct dlv_engine {
    struct dlv_engine_opts o;
    char *helo;
    struct ipc_chan *dns;
    struct dlv_job *jobs;
    struct idle *idle; /* most recently parked first */
    size_t njobs, nidle;
    struct closed closed[DLV_MAX_CLOSED]; /* a small table; the oldest entry goes first */
};

struct dlv_job {
    struct dlv_job *next, *prev;
    struct dlv_engine *e;
    struct smtpc *quitting; /* its connection, closing: the result waits for the close */
    int finish_waits;       /* job_finish was called while it was closing */
    struct dlv_req q;
    int fd;
    dlv_done_cb *cb;
    void *arg;
    struct dlv_tally t;
    int64_t start_us;
    struct event *kick;
    uint32_t dns_id;
    int resolved;            /* the target lookup was started */
    struct dns_result mx;    /* MX target: candidates point into it */
    struct dns_result hostr; /* HOSTS target: the current host's addresses */
    struct dlv_cand cands[DLV_MAX_SESSIONS * 2];
    size_t ncands, cur, hidx;
    struct smtpc *s;
    const struct dlv_cand *sc; /* candidate of s (NULL when reused) */
    int s_reused, s_hi;        /* s came from the idle cache; its host index */
    struct sockaddr_storage s_addr;
    struct sockaddr_storage skip; /* address of a reused session already tried */
    int have_skip;
    size_t sessions;
    size_t *map;
    struct smtpc_rcpt *trc;
    /* result facts */
    char *relay, *label, *tls_version, *tls_cipher;
    int host_index, tls_used, dsn_passed, reused, in_cb;
    uint32_t connections;
    int kept;           /* a session of this job is idle under its key */
    int waited;         /* connection_delay was checked before the first new connection */
    size_t reuse_next;  /* listed hosts before this one were looked up in the idle cache */
    struct event *wait; /* that pause */
    /* TLS policy: MX targets one plan per host of mx, listed hosts one
     * (the current host); told: its skip was reported */
    struct dlv_tls_plan *plans;
    unsigned char *told;
    size_t nplans;
    const struct dlv_tls_plan *s_plan; /* of s (NULL when reused) */
    int reuse_after_lookup;            /* MX target with a possible TLS policy: an idle
                                          session is considered only once the lookup
                                          has given the plan it must satisfy */
    char *tls_policy;
    struct dlv_tls_out *tls_out;
    size_t ntls_out;
};

static uint32_t rnd_default(uint32_t n)
{
    return n ? (uint32_t)random() % n : 0;
}

struct dlv_engine *dlv_engine_new(const struct dlv_engine_opts *o)
{
    struct dlv_engine *e = xcalloc(1, sizeof(*e));

    dlv_engine_set_opts(e, o);
    e->o.base = o->base;
    e->o.ssl_ctx = o->ssl_ctx;
    return e;
}

static void idle_close_all(struct dlv_engine *e);

void dlv_engine_set_opts(struct dlv_engine *e, const struct dlv_engine_opts *o)
{
    /* idle connections were opened with the old options (HELO name,
     * timeouts, BDAT): the next job opens a new one */
    idle_close_all(e);
    free(e->helo);
    e->helo = xstrdup(o->helo_name ? o->helo_name : "localhost");
    e->o.helo_name = e->helo;
    e->o.connect_timeout = o->connect_timeout;
    e->o.timeout = o->timeout;
    e->o.chunking = o->chunking;
    e->o.rnd = o->rnd ? o->rnd : rnd_default;
}

void dlv_engine_set_dns(struct dlv_engine *e, struct ipc_chan *dnsd)
{
    e->dns = dnsd;
}

size_t dlv_engine_jobs(const struct dlv_engine *e)
{
    return e->njobs;
}

size_t dlv_engine_idle(const struct dlv_engine *e)
{
    return e->nidle;
}

/* -- when connections ended, per key (connection_delay) -- */

/* A connection under key ended now. */
static void note_closed(struct dlv_engine *e, const char *key)
{
    struct closed *slot = NULL, *victim = NULL;

    if (key == NULL || key[0] == '\0')
        return;
    for (size_t i = 0; i < DLV_MAX_CLOSED && slot == NULL; i++) {
        struct closed *c = &e->closed[i];
        if (c->key && strcmp(c->key, key) == 0)
            slot = c;
        else if (victim == NULL || (victim->key && (c->key == NULL || c->at_us < victim->at_us)))
            victim = c; /* an empty entry, else the oldest */
    }
    if (slot == NULL) {
        slot = victim;
        free(slot->key);
        slot->key = xstrdup(key);
    }
    slot->at_us = mono_us();
}

/* Microseconds this job must still wait before it opens a new connection. */
static int64_t delay_left(const struct dlv_engine *e, const struct dlv_req *q, int64_t now)
{
    if (q->connection_delay_ms == 0 || q->dest_key[0] == '\0')
        return 0;
    for (size_t i = 0; i < DLV_MAX_CLOSED; i++) {
        const struct closed *c = &e->closed[i];
        if (c->key && strcmp(c->key, q->dest_key) == 0) {
            int64_t until = c->at_us + (int64_t)q->connection_delay_ms * 1000;
            return until > now ? until - now : 0;
        }
    }
    return 0;
}

/* -- idle sessions -- */

static void idle_unlink(struct idle *it)
{
    struct dlv_engine *e = it->e;

    for (struct idle **pp = &e->idle; *pp; pp = &(*pp)->next)
        if (*pp == it) {
            *pp = it->next;
            e->nidle--;
            break;
        }
    smtpc_set_idle_cb(it->s, NULL, NULL);
    event_free(it->timer);
    free(it->dest_key);
    free((char *)(uintptr_t)it->id.dest);
    free((char *)(uintptr_t)it->id.label);
    free((char *)(uintptr_t)it->id.host);
    free((char *)(uintptr_t)it->id.auth_user);
    free(it->host);
    free(it);
}

static void on_idle_lost(struct smtpc *s, void *arg)
{
    struct idle *it = arg;

    log_debug("idle connection to %s closed by the server", smtpc_info(s)->relay);
    note_closed(it->e, it->dest_key);
    idle_unlink(it);
    smtpc_free(s);
}

static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    struct idle *it = arg;
    struct smtpc *s = it->s;

    log_debug("closing idle connection to %s", smtpc_info(s)->relay);
    note_closed(it->e, it->dest_key);
    idle_unlink(it);
    smtpc_close(s);
}

static void idle_close_all(struct dlv_engine *e)
{
    while (e->idle) {
        struct idle *it = e->idle;
        struct smtpc *s = it->s;
        note_closed(e, it->dest_key);
        idle_unlink(it);
        smtpc_close(s);
    }
}

static void job_finish(struct dlv_job *j);

static void on_quit_done(void *arg)
{
    struct dlv_job *j = arg;

    j->quitting = NULL;
    if (j->finish_waits)
        job_finish(j);
}

/* Keep s idle for a later job to the same gateway, host or MX
 * destination (the one s is connected to: dlv_conn_id_of), or close it. */
static void park(struct dlv_engine *e, struct dlv_job *j, struct smtpc *s)
{
    const struct dlv_req *q = &j->q;
    struct timeval tv = {(time_t)q->idle_timeout_s, 0};
    struct dlv_conn_id id;
    struct idle *it;

    if (q->dest_key[0] == '\0' || q->max_per_conn <= 1 || q->idle_timeout_s == 0 ||
        !smtpc_reusable(s) || (uint32_t)smtpc_info(s)->transactions >= q->max_per_conn) {
        /* The result waits for the end of the QUIT (at most the QUIT
         * timeout): until then the connection is still open at the
         * server, and qmgr must not count it free for max_connections. */
        if (j->quitting == NULL) {
            j->quitting = s;
            smtpc_on_gone(s, on_quit_done, j);
        }
        note_closed(e, q->dest_key);
        smtpc_close(s);
        return;
    }
    it = xcalloc(1, sizeof(*it));
    it->e = e;
    it->s = s;
    it->dest_key = xstrdup(q->dest_key);
    dlv_conn_id_of(q, j->s_hi, &id);
    it->id = id;
    it->id.dest = xstrdup(id.dest);
    it->id.label = xstrdup(id.label);
    it->id.host = xstrdup(id.host);
    it->id.auth_user = xstrdup(id.auth_user);
    it->addr = j->s_addr;
    {
        const struct smtpc_info *in = smtpc_info(s);
        it->host = xstrdup(in->host ? in->host : "");
        it->tls = in->tls;
        it->dane = in->tls_dane;
        it->verified = in->tls_vfy == SMTPC_VFY_OK;
    }
    it->timer = evtimer_new(e->o.base, on_idle_timer, it);
    if (it->timer == NULL)
        log_panic("dlv_engine: cannot allocate a timer");
    evtimer_add(it->timer, &tv);
    smtpc_set_idle_cb(s, on_idle_lost, it);
    it->next = e->idle;
    e->idle = it;
    e->nidle++;
    j->kept = 1;
    if (e->nidle > DLV_MAX_IDLE) {
        struct idle *last = e->idle;
        while (last->next)
            last = last->next;
        s = last->s;
        note_closed(e, last->dest_key);
        idle_unlink(last);
        smtpc_close(s);
    }
}

/* An idle session that belongs to host `at` of the job (-1: its MX
 * destination), most recently parked first, taken out of the cache; its
 * address in *addr. */
static struct smtpc *unpark(struct dlv_engine *e, const struct dlv_job *j, int at,
                            struct sockaddr_storage *addr)
{
    for (struct idle *it = e->idle; it; it = it->next) {
        struct smtpc *s = it->s;
        if (!dlv_reuse_at(&j->q, at, &it->id))
            continue;
        *addr = it->addr;
        idle_unlink(it);
        return s;
    }
    return NULL;
}

void dlv_engine_close_idle(struct dlv_engine *e)
{
    while (e->idle) {
        struct smtpc *s = e->idle->s;
        idle_unlink(e->idle);
        smtpc_close(s);
    }
}

/* -- jobs -- */

static void job_next(struct dlv_job *j);
static int job_pause(struct dlv_job *j);
static void tls_out_session(struct dlv_job *j, struct smtpc *s, const struct smtpc_res *res);
static void on_open(struct smtpc *s, const struct smtpc_res *res, void *arg);
static void on_txn(struct smtpc *s, const struct smtpc_txn_res *tr, void *arg);

static void job_free(struct dlv_job *j)
{
    struct dlv_engine *e = j->e;

    if (j->quitting)
        smtpc_on_gone(j->quitting, NULL, NULL); /* cancelled: nobody waits */
    if (j->prev)
        j->prev->next = j->next;
    else
        e->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    e->njobs--;
    if (j->dns_id)
        dnsc_cancel(j->dns_id);
    if (j->s)
        smtpc_free(j->s);
    if (j->fd >= 0)
        close(j->fd);
    event_free(j->kick);
    if (j->wait)
        event_free(j->wait);
    dns_result_free(&j->mx);
    dns_result_free(&j->hostr);
    dlv_tally_free(&j->t);
    dlv_req_free(&j->q);
    free(j->map);
    free(j->trc);
    free(j->relay);
    free(j->label);
    free(j->tls_version);
    free(j->tls_cipher);
    free(j->plans);
    free(j->told);
    free(j->tls_policy);
    dlv_tls_out_free(j->tls_out, j->ntls_out);
    free(j);
}

static void job_finish(struct dlv_job *j)
{
    struct dlv_res res;

    if (j->quitting) {
        j->finish_waits = 1; /* on_quit_done finishes it */
        return;
    }
    memset(&res, 0, sizeof(res));
    res.id = j->q.id;
    res.relay = j->relay;
    res.label = j->label;
    res.host_index = j->t.taken ? j->host_index : -1;
    res.tls_used = (uint8_t)j->tls_used;
    res.tls_version = j->tls_version;
    res.tls_cipher = j->tls_cipher;
    res.dsn_passed = (uint8_t)(j->dsn_passed != 0);
    res.connections = j->connections;
    res.reused = (uint8_t)j->reused;
    res.duration_us = (uint64_t)(mono_us() - j->start_us);
    res.r = j->t.r;
    res.n = j->t.n;
    res.conn_kept = (uint8_t)(j->kept != 0);
    res.tls_policy = j->tls_policy;
    res.tls_out = j->tls_out;
    res.ntls_out = j->ntls_out;
    j->in_cb = 1;
    j->cb(&res, j->arg);
    job_free(j);
}

/* For the result's log: "dane", "mta-sts", "mta-sts testing", "". */
static const char *tls_policy_label(const struct dlv_tls_plan *p)
{
    switch (p ? p->policy : DLV_TLS_POLICY_DOMAIN) {
    case DLV_TLS_POLICY_DANE:
        return "dane";
    case DLV_TLS_POLICY_STS_ENFORCE:
        return "mta-sts";
    case DLV_TLS_POLICY_STS_TESTING:
        return "mta-sts testing";
    case DLV_TLS_POLICY_DOMAIN:
        break;
    }
    return "";
}

/* Remember which server took it or was tried last. */
static void note_relay(struct dlv_job *j, struct smtpc *s, int host_index, int took)
{
    const struct smtpc_info *in = smtpc_info(s);
    const char *label = "";

    if (j->t.taken && !took)
        return; /* keep the one that took the message */
    if (host_index >= 0 && (size_t)host_index < j->q.nhosts)
        label = j->q.hosts[host_index].label;
    free(j->relay);
    free(j->label);
    j->relay = xstrdup(in->relay);
    j->label = xstrdup(label);
    j->host_index = host_index;
    j->tls_used = in->tls;
    free(j->tls_version);
    free(j->tls_cipher);
    j->tls_version = xstrdup(in->tls && in->tls_version ? in->tls_version : "");
    j->tls_cipher = xstrdup(in->tls && in->tls_cipher ? in->tls_cipher : "");
    j->dsn_passed = (in->caps.flags & SMTP_CAP_DSN) != 0;
    j->reused = j->s_reused;
    if (!j->s_reused) {
        free(j->tls_policy);
        j->tls_policy = xstrdup(tls_policy_label(j->s_plan));
    }
}

static const char *phase_tag(const struct dlv_job *j)
{
    return dlv_phase_name((enum dlv_phase)j->q.phase);
}

/* The transaction over the recipients still open. */
static int job_send(struct dlv_job *j, struct smtpc *s)
{
    struct smtpc_txn txn;
    size_t n = 0;

    for (size_t i = 0; i < j->t.n; i++) {
        if (!j->t.open[i])
            continue;
        j->map[n] = i;
        j->trc[n].addr = j->q.rcpts[i].addr;
        j->trc[n].notify = j->q.rcpts[i].notify;
        j->trc[n].orcpt = j->q.rcpts[i].orcpt[0] ? j->q.rcpts[i].orcpt : NULL;
        n++;
    }
    memset(&txn, 0, sizeof(txn));
    txn.sender = j->q.sender;
    txn.rcpts = j->trc;
    txn.nrcpts = n;
    txn.envid = j->q.envid[0] ? j->q.envid : NULL;
    txn.ret = (enum dsn_ret)j->q.ret;
    txn.need = ((j->q.need & DLV_NEED_8BITMIME) ? SMTPC_NEED_8BITMIME : 0) |
               ((j->q.need & DLV_NEED_SMTPUTF8) ? SMTPC_NEED_SMTPUTF8 : 0);
    txn.fd = j->fd;
    txn.offset = (off_t)j->q.msg_offset;
    txn.length = (off_t)j->q.msg_size;
    txn.prefix = j->q.prefix;
    txn.prefix_len = j->q.prefix_len;
    return smtpc_send(s, &txn, on_txn, j);
}

/* The plan of a candidate. */
static const struct dlv_tls_plan *cand_plan(const struct dlv_job *j, const struct dlv_cand *c)
{
    size_t k = c->mx_index >= 0 ? (size_t)c->mx_index : 0;

    return k < j->nplans ? &j->plans[k] : NULL;
}

static void try_cand(struct dlv_job *j, const struct dlv_cand *c)
{
    struct dlv_engine *e = j->e;
    const struct dlv_tls_plan *p = cand_plan(j, c);
    struct smtpc_opts o;
    char ab[NETADDR_STRLEN];

    memset(&o, 0, sizeof(o));
    o.addr = &c->addr;
    o.host = c->host;
    o.helo_name = e->o.helo_name;
    o.connect_timeout = e->o.connect_timeout;
    o.timeout = e->o.timeout;
    o.chunking = e->o.chunking;
    o.tls = p ? p->mode : c->tls;
    o.ssl_ctx = e->o.ssl_ctx;
    if (p && p->dane) {
        o.tlsa = p->tlsa;
        o.ntlsa = p->ntlsa;
        o.dane_base = c->host; /* the MX host or gateway name (RFC 7672 2.2.2, 3.2.2) */
    }
    o.tls_evaluate = p && p->evaluate;
    if (c->h && c->h->auth_user[0]) {
        o.auth_user = c->h->auth_user;
        o.auth_pass = c->h->auth_pass;
        o.auth_plaintext = c->h->auth_plaintext_ok;
    }
    o.log_id = j->q.queue_id;
    j->sessions++;
    j->connections++;
    j->sc = c;
    j->s_plan = p;
    j->s_reused = 0;
    j->s_hi = c->host_index;
    j->s_addr = c->addr;
    log_detail("%s: %s delivery to %s, attempt %u: connecting to %s[%s]:%d%s%s (tls=%s%s%s)",
               j->q.queue_id, phase_tag(j), j->q.domain, j->q.attempt, c->host,
               netaddr_ntop((const struct sockaddr *)&c->addr, ab, sizeof(ab)),
               netaddr_port((const struct sockaddr *)&c->addr),
               c->h && c->h->label[0] ? ", gateway " : "", c->h ? c->h->label : "",
               tls_mode_name(o.tls), p && p->policy ? ", policy " : "",
               p && p->policy ? dlv_tls_policy_name(p->policy) : "");
    j->s = smtpc_open(e->o.base, &o, on_open, j);
}

static void log_failure(const struct dlv_job *j, const char *relay, const struct smtpc_res *r)
{
    char code[8];

    snprintf(code, sizeof(code), "%d", r->code);
    /* the text may start with the code already (the whole reply line) */
    if (r->code > 0 && strncmp(r->text, code, strlen(code)) != 0)
        log_info("%s: %s failed at %s (%s, %s): %d %s", j->q.queue_id, relay,
                 dlv_step_name(dlv_step_of(r->step)), dlv_class_name(dlv_class_of(r->cls)),
                 outcome_name(r->status), r->code, r->text);
    else
        log_info("%s: %s failed at %s (%s, %s): %s", j->q.queue_id, relay,
                 dlv_step_name(dlv_step_of(r->step)), dlv_class_name(dlv_class_of(r->cls)),
                 outcome_name(r->status), r->text);
}

/*
 * The client would not send the password because TLS is not in use and
 * the host does not allow plaintext AUTH (Postern's own rule, no reply
 * from the server): say why TLS is not in use, which is what the admin
 * has to change, and mark it with DLV_DSN_AUTH_NEEDS_TLS for qmgr.
 */
static void explain_auth_tls(const struct dlv_job *j, const struct smtpc_info *in,
                             struct smtpc_res *r)
{
    const struct dlv_host *h = j->s_hi >= 0 ? &j->q.hosts[j->s_hi] : NULL;
    const char *why;

    if (r->cls != SMTPC_CL_AUTH || r->code != 0 || in->tls || h == NULL || !h->auth_user[0] ||
        h->auth_plaintext_ok)
        return;
    if ((enum tls_mode)h->tls == TLS_MODE_NONE)
        why = "TLS is off for this host (tls none)";
    else if (in->tls_fallback)
        why = "STARTTLS failed and tls may went on in plaintext";
    else if (!(in->caps.flags & SMTP_CAP_STARTTLS))
        why = "the server does not offer STARTTLS";
    else
        why = "TLS could not be used (no TLS context)";
    snprintf(r->text, sizeof(r->text),
             "AUTH not attempted: %s, and plaintext AUTH is not allowed for this host", why);
    strlcpy_p(r->enh, DLV_DSN_AUTH_NEEDS_TLS, sizeof(r->enh));
}

static void on_open(struct smtpc *s, const struct smtpc_res *res, void *arg)
{
    struct dlv_job *j = arg;
    struct smtpc_res r;

    tls_out_session(j, s, res);
    if (res->status == SMTPC_OK) {
        if (job_send(j, s) == 0)
            return;
        log_panic("dlv_engine: smtpc_send refused a ready session");
    }
    r = *res;
    explain_auth_tls(j, smtpc_info(s), &r);
    log_failure(j, smtpc_info(s)->relay, &r);
    note_relay(j, s, j->s_hi, 0);
    dlv_tally_open_failed(&j->t, &r);
    j->s = NULL;
    smtpc_close(s);
    job_next(j);
}

static void on_txn(struct smtpc *s, const struct smtpc_txn_res *tr, void *arg)
{
    struct dlv_job *j = arg;
    int was_taken = j->t.taken;

    j->s = NULL;
    if (dlv_tally_txn(&j->t, tr, j->map)) {
        log_detail("%s: reused connection to %s was closed before the transaction; "
                   "going on with a new one",
                   j->q.queue_id, smtpc_info(s)->relay);
        note_closed(j->e, j->q.dest_key);
        smtpc_free(s);
        j->have_skip = 0; /* the server itself may well be fine */
        job_next(j);
        return;
    }
    if (tr->session.status != SMTPC_OK)
        log_failure(j, smtpc_info(s)->relay, &tr->session);
    note_relay(j, s, j->s_hi, j->t.taken && !was_taken);
    park(j->e, j, s);
    job_next(j);
}

/* -- TLS policy outcomes (TLS reporting, RFC 8460) -- */

static void tls_out_add(struct dlv_job *j, const char *type, const char *domain, const char *id,
                        const char *string, const char *mx, const char *result, const char *reason)
{
    struct dlv_tls_out *o;

    if (j->ntls_out >= DLV_MAX_TLS_OUT)
        return;
    j->tls_out = xrealloc(j->tls_out, (j->ntls_out + 1) * sizeof(*j->tls_out));
    o = &j->tls_out[j->ntls_out++];
    o->policy_type = xstrdup(type);
    o->policy_domain = xstrdup(domain ? domain : "");
    o->policy_id = xstrdup(id ? id : "");
    o->policy_string = xstrdup(string ? string : "");
    o->mx_host = xstrdup(mx ? mx : "");
    o->result = xstrdup(result);
    o->reason = xstrdup(reason ? reason : "");
}

/* The policy of plan p for host (type, domain, id, string) as a report
 * names it. NULL type: nothing to report (a listed host without DANE). */
static void tls_out_policy(struct dlv_job *j, const struct dlv_tls_plan *p, const char *host,
                           const char *result, const char *reason)
{
    const struct dns_sts *sts = &j->mx.sts;
    struct buf b;

    buf_init(&b);
    buf_adds(&b, "");
    switch (p->policy) {
    case DLV_TLS_POLICY_DANE:
        for (size_t i = 0; i < p->ntlsa; i++) {
            char h[2 * 64 + 1];
            size_t n = p->tlsa[i].len < 64 ? p->tlsa[i].len : 64;
            for (size_t k = 0; k < n; k++)
                snprintf(h + 2 * k, 3, "%02x", p->tlsa[i].data[k]);
            h[2 * n] = '\0';
            buf_printf(&b, "%s%u %u %u %s", i ? "; " : "", p->tlsa[i].usage, p->tlsa[i].selector,
                       p->tlsa[i].mtype, h);
        }
        tls_out_add(j, "tlsa", host, "", b.data, host, result, reason);
        break;
    case DLV_TLS_POLICY_STS_ENFORCE:
    case DLV_TLS_POLICY_STS_TESTING:
        buf_printf(&b, "mode: %s", dns_sts_mode_name(sts->mode));
        for (size_t i = 0; i < sts->nmx; i++)
            buf_printf(&b, "; mx: %s", sts->mx[i]);
        buf_printf(&b, "; max_age: %u", sts->max_age);
        tls_out_add(j, "sts", j->q.domain, sts->id, b.data, host, result, reason);
        break;
    case DLV_TLS_POLICY_DOMAIN:
        if (j->q.target == DLV_TARGET_MX)
            tls_out_add(j, "no-policy-found", j->q.domain, "", "", host, result, reason);
        break;
    }
    buf_free(&b);
}

static const char *vfy_result(enum smtpc_vfy v)
{
    switch (v) {
    case SMTPC_VFY_HOST_MISMATCH:
        return "certificate-host-mismatch";
    case SMTPC_VFY_EXPIRED:
        return "certificate-expired";
    case SMTPC_VFY_NOT_TRUSTED:
        return "certificate-not-trusted";
    case SMTPC_VFY_DANE_NO_MATCH:
        return "tlsa-invalid";
    case SMTPC_VFY_NONE:
    case SMTPC_VFY_OK:
    case SMTPC_VFY_OTHER:
        break;
    }
    return "validation-failure";
}

/*
 * The outcome of a new session: res is the open result. A session that
 * failed before TLS was in question (connect, greeting) is no TLS
 * outcome. MTA-STS testing reports what enforce would have said.
 */
static void tls_out_session(struct dlv_job *j, struct smtpc *s, const struct smtpc_res *res)
{
    const struct smtpc_info *in = smtpc_info(s);
    const struct dlv_tls_plan *p = j->s_plan;
    const char *result = "success", *reason = "";

    if (p == NULL || j->s_reused)
        return;
    if (res->status != SMTPC_OK && res->cls == SMTPC_CL_TLS) {
        if (!in->tls && in->tls_vfy == SMTPC_VFY_NONE &&
            (!(in->caps.flags & SMTP_CAP_STARTTLS) || res->code > 0))
            result = "starttls-not-supported";
        else
            result = vfy_result(in->tls_vfy);
        reason = res->text;
    } else if (res->status != SMTPC_OK && !in->tls) {
        return;
    } else if (p->policy == DLV_TLS_POLICY_STS_TESTING) {
        if (p->sts_fail) {
            result = "validation-failure";
            reason = p->reason;
        } else if (!in->tls) {
            result = "starttls-not-supported";
        } else if (in->tls_vfy != SMTPC_VFY_OK && in->tls_vfy != SMTPC_VFY_NONE) {
            result = vfy_result(in->tls_vfy);
            reason = in->tls_vfy_reason;
        }
    }
    tls_out_policy(j, p, in->host, result, reason);
}

/* A host the plan does not allow: report it once. */
static void tls_skip(struct dlv_job *j, const struct dlv_cand *c, size_t k)
{
    const struct dlv_tls_plan *p = &j->plans[k];

    if (j->told[k])
        return;
    j->told[k] = 1;
    log_info("%s: %s skipped (tls, temporary): %s", j->q.queue_id, c->host, p->reason);
    dlv_tally_set_open(&j->t, DLV_TEMP, DLV_CLASS_TLS, DLV_STEP_STARTTLS, 0, "4.7.5", p->reason);
    if (p->policy == DLV_TLS_POLICY_DANE)
        tls_out_policy(j, p, c->host, "dnssec-invalid", p->reason);
    else if (p->policy == DLV_TLS_POLICY_STS_ENFORCE)
        tls_out_policy(j, p, c->host, "validation-failure", p->reason);
}

/* One plan per host of the MX result; a failed MTA-STS fetch is
 * reported once. */
static void plan_mx(struct dlv_job *j)
{
    const struct dns_sts *sts = &j->mx.sts;

    free(j->plans);
    free(j->told);
    j->nplans = j->mx.nhosts;
    j->plans = xcalloc(j->nplans ? j->nplans : 1, sizeof(*j->plans));
    j->told = xcalloc(j->nplans ? j->nplans : 1, 1);
    for (size_t i = 0; i < j->nplans; i++)
        dlv_tls_plan((enum tls_mode)j->q.tls, &j->mx, &j->mx.hosts[i], 0, &j->plans[i]);
    if (sts->state == DNS_STS_FAILED)
        tls_out_add(j, "sts", j->q.domain, sts->id, "", "", "sts-policy-fetch-error", sts->reason);
}

/* The plan of listed host h (r: its lookup, NULL for a literal). */
static void plan_host(struct dlv_job *j, const struct dlv_host *h, const struct dns_result *r)
{
    if (j->plans == NULL) {
        j->plans = xcalloc(1, sizeof(*j->plans));
        j->told = xcalloc(1, 1);
    }
    j->nplans = 1;
    j->told[0] = 0;
    dlv_tls_plan((enum tls_mode)h->tls, r, r && r->nhosts > 0 ? &r->hosts[0] : NULL, 1,
                 &j->plans[0]);
}

/* -- resolving -- */

/* dnsd is down or restarting: our outage, not the destination's (class
 * local: no attempt counted, no host marked down; dlv_blame). */
static void dns_unavailable(struct dlv_job *j)
{
    log_info("%s: dnsd is not available", j->q.queue_id);
    dlv_tally_set_open(&j->t, DLV_TEMP, DLV_CLASS_LOCAL, DLV_STEP_DNS, 0, "4.3.0",
                       "dnsd unavailable (a local outage, not counted as an attempt)");
}

static int job_reuse_planned(struct dlv_job *j);

static void on_mx(const struct dns_result *r, void *arg)
{
    struct dlv_job *j = arg;

    j->dns_id = 0;
    if (r->flags & DNS_R_LOCAL) {
        dns_unavailable(j);
        job_next(j);
        return;
    }
    if (r->err != DNS_OK) {
        log_info("%s: MX lookup for %s failed (%s): %s", j->q.queue_id, j->q.domain,
                 outcome_name(r->err), r->reason);
        dlv_tally_dns(&j->t, r->err, r->reason, 0);
        job_next(j);
        return;
    }
    dns_result_free(&j->mx);
    dns_result_copy(&j->mx, r);
    dns_shuffle(&j->mx, j->e->o.rnd);
    plan_mx(j);
    j->ncands =
        dlv_cands_mx(&j->mx, j->q.port, (enum tls_mode)j->q.tls, j->cands, nitems(j->cands));
    j->cur = 0;
    if (j->ncands == 0) {
        enum dns_class c = DNS_PERM;
        const char *why = "no MX host has an address";
        for (size_t i = 0; i < j->mx.nhosts; i++)
            if (j->mx.hosts[i].err != DNS_PERM) {
                c = DNS_TEMP;
                if (j->mx.hosts[i].reason && j->mx.hosts[i].reason[0])
                    why = j->mx.hosts[i].reason;
            }
        log_info("%s: %s: %s", j->q.queue_id, j->q.domain, why);
        dlv_tally_dns(&j->t, c, why, 0);
    } else if (j->reuse_after_lookup) {
        j->reuse_after_lookup = 0;
        if (job_reuse_planned(j))
            return; /* on a dead one, the candidates follow as usual */
    }
    job_next(j);
}

static void on_host(const struct dns_result *r, void *arg)
{
    struct dlv_job *j = arg;
    size_t i = j->hidx - 1;
    const struct dlv_host *h = &j->q.hosts[i];

    j->dns_id = 0;
    if (r->flags & DNS_R_LOCAL) {
        dns_unavailable(j);
        job_next(j);
        return;
    }
    dns_result_free(&j->hostr);
    dns_result_copy(&j->hostr, r);
    plan_host(j, h, &j->hostr);
    j->ncands = dlv_cands_host(h, (int)i, &j->hostr, NULL, j->q.port, j->cands, nitems(j->cands));
    j->cur = 0;
    if (j->ncands == 0) {
        const char *why = r->err != DNS_OK ? r->reason
                          : r->nhosts > 0 && r->hosts[0].reason && r->hosts[0].reason[0]
                              ? r->hosts[0].reason
                              : "no address";
        char *text = xasprintf("cannot resolve %s: %s", h->name, why);
        log_info("%s: %s", j->q.queue_id, text);
        dlv_tally_dns(&j->t, r->err == DNS_OK ? DNS_PERM : r->err, text, 1);
        free(text);
    }
    job_next(j);
}

/* "[name]" -> "name" (a listed host is never an MX lookup anyway). */
static char *unbracket(const char *s)
{
    size_t n = strlen(s);

    if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
        return xstrndup(s + 1, n - 2);
    return xstrdup(s);
}

static void resolve_host(struct dlv_job *j, size_t i)
{
    const struct dlv_host *h = &j->q.hosts[i];
    struct sockaddr_storage ss;
    char *name;
    int lit;

    j->hidx = i + 1;
    j->ncands = j->cur = 0;
    lit = dns_parse_addr(h->name, &ss);
    name = unbracket(h->name);
    if (lit == 0 && strcmp(name, h->name) != 0)
        lit = dns_parse_addr(name, &ss);
    if (lit == 1) {
        free(name);
        plan_host(j, h, NULL);
        j->ncands = dlv_cands_host(h, (int)i, NULL, &ss, j->q.port, j->cands, nitems(j->cands));
        job_next(j);
        return;
    }
    if (lit < 0) {
        char *text = xasprintf("bad address %s", h->name);
        dlv_tally_dns(&j->t, DNS_TEMP, text, 1);
        free(text);
        free(name);
        job_next(j);
        return;
    }
    if (j->e->dns)
        j->dns_id = dnsc_host(j->e->dns, name,
                              dlv_tls_wants_dane((enum tls_mode)h->tls, 1) ? DNS_Q_DANE : 0,
                              h->port ? h->port : j->q.port, on_host, j);
    free(name);
    if (j->dns_id == 0) {
        dns_unavailable(j);
        job_next(j);
    }
}

static void start_resolve(struct dlv_job *j)
{
    j->resolved = 1;
    if (j->q.target == DLV_TARGET_HOSTS) {
        j->hidx = 0;
        job_next(j);
        return;
    }
    if (j->e->dns)
        j->dns_id = dnsc_mx(j->e->dns, j->q.domain, (const char *const *)j->q.mx_override,
                            (dlv_tls_wants_dane((enum tls_mode)j->q.tls, 0) ? DNS_Q_DANE : 0) |
                                (j->q.mta_sts ? DNS_Q_STS : 0),
                            j->q.port, on_mx, j);
    if (j->dns_id == 0) {
        dns_unavailable(j);
        job_next(j);
    }
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    char x[NETADDR_STRLEN], y[NETADDR_STRLEN];

    netaddr_format((const struct sockaddr *)a, x, sizeof(x));
    netaddr_format((const struct sockaddr *)b, y, sizeof(y));
    return strcmp(x, y) == 0;
}

static int job_reuse(struct dlv_job *j, int at);

/*
 * The driver: called after every step; it decides what comes next. The
 * order: for an MX target an idle session to the destination (at start),
 * the lookup, the candidates; for listed hosts, each in turn: an idle
 * session of that host, else its addresses; the end. So an idle session
 * of a gateway is used only once the gateways before it in this job's
 * order have been tried (the first gateway's at once): reuse never skips
 * a gateway of higher priority.
 */
static void job_next(struct dlv_job *j)
{
    if (!dlv_tally_more(&j->t) || j->sessions >= DLV_MAX_SESSIONS) {
        job_finish(j);
        return;
    }
    if (!j->resolved) {
        start_resolve(j);
        return;
    }
    while (j->cur < j->ncands) {
        const struct dlv_cand *c = &j->cands[j->cur];
        const struct dlv_tls_plan *p = cand_plan(j, c);
        if (j->have_skip && same_addr(&c->addr, &j->skip)) {
            j->cur++;
            continue;
        }
        if (p && p->skip) {
            tls_skip(j, c, (size_t)(p - j->plans));
            j->cur++;
            continue;
        }
        if (job_pause(j))
            return;
        j->cur++;
        try_cand(j, c);
        return;
    }
    if (j->q.target == DLV_TARGET_HOSTS && j->hidx < j->q.nhosts) {
        if (j->reuse_next <= j->hidx) {
            j->reuse_next = j->hidx + 1; /* once per host */
            if (job_reuse(j, (int)j->hidx))
                return;
        }
        resolve_host(j, j->hidx);
        return;
    }
    job_finish(j);
}

/* Send over an idle session of host `at` (-1: the MX destination), if
 * there is one: 1 when the transaction started. */
static int job_reuse(struct dlv_job *j, int at)
{
    struct sockaddr_storage addr;
    struct smtpc *s = unpark(j->e, j, at, &addr);
    const struct dlv_host *h = at >= 0 ? &j->q.hosts[at] : NULL;

    if (s == NULL)
        return 0;
    const struct smtpc_info *in = smtpc_info(s);
    log_detail("%s: %s delivery to %s, attempt %u: reusing the connection to %s%s%s "
               "(transaction %d)",
               j->q.queue_id, phase_tag(j), j->q.domain, j->q.attempt, in->relay,
               h && h->label[0] ? ", gateway " : "", h ? h->label : "", in->transactions + 1);
    j->s = s;
    j->sc = NULL;
    j->s_reused = 1;
    j->s_hi = at;
    j->s_addr = addr;
    j->skip = addr; /* tried now: not again on a new connection */
    j->have_skip = 1;
    if (job_send(j, s) == 0)
        return 1;
    j->s = NULL;
    j->have_skip = 0;
    smtpc_free(s);
    return 0;
}

/*
 * After the MX lookup of a job that may have a TLS policy (DANE records,
 * an MTA-STS policy): the idle session of the destination, if any, is
 * used only when its host is still in the MX set and what the connection
 * has (TLS, a DANE match, a verified certificate) satisfies that host's
 * plan now; otherwise it is closed, since a policy published or changed
 * after it was opened must hold from now on. 1 when a transaction started.
 */
static int job_reuse_planned(struct dlv_job *j)
{
    struct idle *it = NULL;
    const struct dlv_tls_plan *p = NULL;
    const char *why = NULL;

    for (struct idle *x = j->e->idle; x && it == NULL; x = x->next)
        if (dlv_reuse_at(&j->q, -1, &x->id))
            it = x;
    if (it == NULL)
        return 0;
    for (size_t k = 0; k < j->mx.nhosts && p == NULL; k++)
        if (k < j->nplans && ascii_casecmp(j->mx.hosts[k].name, it->host) == 0)
            p = &j->plans[k];
    if (p == NULL)
        why = "its host is no longer an MX host of the domain";
    else if (p->skip)
        why = p->reason;
    else if (p->dane && !it->dane)
        why = "the host now has DANE records and the connection was not checked against them";
    else if (!p->dane && p->mode == TLS_MODE_VERIFY && !it->verified)
        why = "the TLS policy now wants a verified certificate";
    else if (!p->dane && p->mode == TLS_MODE_ENCRYPT && !it->tls)
        why = "the TLS policy now wants TLS";
    if (why != NULL) {
        struct smtpc *s = it->s;
        log_detail("%s: not reusing the connection to %s: %s", j->q.queue_id, smtpc_info(s)->relay,
                   why);
        note_closed(j->e, it->dest_key);
        idle_unlink(it);
        smtpc_close(s);
        return 0;
    }
    if (!job_reuse(j, -1))
        return 0;
    j->s_plan = p;
    return 1;
}

static void job_begin(struct dlv_job *j)
{
    if (j->q.target == DLV_TARGET_MX &&
        (j->q.mta_sts || dlv_tls_wants_dane((enum tls_mode)j->q.tls, 0))) {
        j->reuse_after_lookup = 1; /* on_mx looks, with the plan in hand */
        job_next(j);
        return;
    }
    /* listed hosts: job_next looks for an idle session of each in turn */
    if (j->q.target == DLV_TARGET_HOSTS || !job_reuse(j, -1))
        job_next(j);
}

/* The pause is over: a session of the host being tried may have become
 * idle meanwhile. */
static void on_wait(evutil_socket_t fd, short what, void *arg)
{
    struct dlv_job *j = arg;
    int at = j->q.target == DLV_TARGET_HOSTS ? (int)j->hidx - 1 : -1;

    if (!job_reuse(j, at))
        job_next(j);
}

/*
 * connection_delay: before the job's first new connection, wait until
 * the delay has passed since the last connection under its key ended.
 * 1 when the job now waits (on_wait goes on).
 */
static int job_pause(struct dlv_job *j)
{
    int64_t left;
    struct timeval tv;

    if (j->waited || j->connections > 0)
        return 0;
    j->waited = 1;
    left = delay_left(j->e, &j->q, mono_us());
    if (left <= 0)
        return 0;
    if (j->wait == NULL && (j->wait = evtimer_new(j->e->o.base, on_wait, j)) == NULL)
        log_panic("dlv_engine: cannot allocate a timer");
    tv.tv_sec = (time_t)(left / 1000000);
    tv.tv_usec = (suseconds_t)(left % 1000000);
    evtimer_add(j->wait, &tv);
    log_detail("%s: %s delivery to %s: waiting %.1fs before a new connection "
               "(connection_delay)",
               j->q.queue_id, phase_tag(j), j->q.domain, (double)left / 1e6);
    return 1;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    job_begin(arg);
}

struct dlv_job *dlv_engine_start(struct dlv_engine *e, struct dlv_req *req, int fd, dlv_done_cb *cb,
                                 void *arg)
{
    struct dlv_job *j = xcalloc(1, sizeof(*j));

    j->e = e;
    j->q = *req;
    memset(req, 0, sizeof(*req));
    j->fd = fd;
    j->cb = cb;
    j->arg = arg;
    j->host_index = -1;
    j->s_hi = -1;
    j->relay = xstrdup("");
    j->label = xstrdup("");
    j->tls_version = xstrdup("");
    j->tls_cipher = xstrdup("");
    j->tls_policy = xstrdup("");
    j->start_us = mono_us();
    dlv_tally_init(&j->t, &j->q);
    dns_result_init(&j->mx, j->q.domain);
    dns_result_init(&j->hostr, "");
    j->map = xcalloc(j->t.n ? j->t.n : 1, sizeof(*j->map));
    j->trc = xcalloc(j->t.n ? j->t.n : 1, sizeof(*j->trc));
    j->kick = event_new(e->o.base, -1, 0, on_kick, j);
    if (j->kick == NULL)
        log_panic("dlv_engine: cannot allocate an event");
    j->next = e->jobs;
    if (e->jobs)
        e->jobs->prev = j;
    e->jobs = j;
    e->njobs++;
    if (fd < 0) {
        dlv_tally_set_open(&j->t, DLV_TEMP, DLV_CLASS_LOCAL, DLV_STEP_NONE, 0, "4.3.0",
                           "no message file came with the request");
        j->t.stop = 1;
    }
    event_active(j->kick, EV_TIMEOUT, 0);
    return j;
}

void dlv_job_cancel(struct dlv_job *j)
{
    if (j == NULL || j->in_cb)
        return;
    job_free(j);
}

void dlv_engine_free(struct dlv_engine *e)
{
    if (e == NULL)
        return;
    while (e->jobs)
        job_free(e->jobs);
    dlv_engine_close_idle(e);
    for (size_t i = 0; i < DLV_MAX_CLOSED; i++)
        free(e->closed[i].key);
    free(e->helo);
    free(e);
}
