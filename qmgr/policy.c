/*
 * policy - the routing configuration qmgr holds (maps, gateways,
 * credentials) and the per-domain rules built from it; see policy.h.
 */
#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/dlv_proto.h"
#include "mail/domains.h"
#include "mail/gateways.h"
#include "mail/local_rcpt.h"
#include "base/log.h"
#include "base/map.h"
#include "qmgr.h"
#include "route.h"
#include "mail/spool.h"
#include "strmap.h"

#define SENDER_CACHE_MAX 20000

struct sender_ent {
    char *key;  /* the map key that matched, NULL if none */
    char **gws; /* NULL-terminated names, NULL if none */
};

struct routing {
    struct map *domains, *senders;
    char **auth_names; /* gateways relay has credentials for (IMSG_GATEWAY_AUTH) */
    struct gateways gws;
    struct strmap *pol;    /* domain -> struct qpolicy * */
    struct strmap *sendc;  /* sender -> struct sender_ent * */
    struct strmap *stats;  /* gateway name -> struct gw_stat * (kept across reloads) */
    struct strmap *warned; /* domains whose rule could not be read, logged once */
};

static void free_strv(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/*
 * A map master copied into the spool; NULL when it is not configured or
 * not there. One that is there but cannot be opened is never dropped
 * silently: on a reload qmgr keeps the one it has (*old, which stays
 * readable: master replaces files by rename); with nothing to keep,
 * *failed is set and routing_init() fails (qmgr then exits, and master's
 * restart backoff logs it until the spool copy is good; master verifies
 * every map before it copies it).
 */
static struct map *open_map(const char *param_value, const char *path, unsigned flags,
                            const char *what, struct map **old, int *failed)
{
    struct map *m;
    char *err = NULL;

    if (param_value == NULL || *param_value == '\0')
        return NULL;
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        log_debug("no %s (%s not compiled; smtpctl makemap)", what, param_value);
        return NULL;
    }
    /* map_open takes the source's name and adds ".db" itself */
    char *base = xstrndup(
        path,
        strlen(path) - (strlen(path) > 3 && strcmp(path + strlen(path) - 3, ".db") == 0 ? 3 : 0));
    m = map_open(base, flags, &err);
    free(base);
    if (m == NULL && *old) {
        log_err("cannot open the %s %s: %s; keeping the one in use", what, path, err);
        free(err);
        m = *old;
        *old = NULL;
    } else if (m == NULL) {
        log_err("cannot open the %s %s: %s; qmgr cannot route without it", what, path, err);
        free(err);
        *failed = 1;
    }
    return m;
}

static void drop_senders(struct routing *rt)
{
    size_t pos = 0;
    const char *key;
    void *val;

    if (rt->sendc) {
        while (strmap_next(rt->sendc, &pos, &key, &val)) {
            struct sender_ent *e = val;
            free(e->key);
            free_strv(e->gws);
            free(e);
        }
        strmap_free(rt->sendc);
    }
    rt->sendc = strmap_new();
}

static void clear_caches(struct routing *rt)
{
    size_t pos = 0;
    const char *key;
    void *val;

    if (rt->pol) {
        while (strmap_next(rt->pol, &pos, &key, &val)) {
            qpolicy_clear(val);
            free(val);
        }
        strmap_free(rt->pol);
    }
    if (rt->warned)
        strmap_free(rt->warned);
    rt->pol = strmap_new();
    rt->warned = strmap_new();
    drop_senders(rt);
}

static void close_all(struct routing *rt)
{
    if (rt->domains)
        map_close(rt->domains);
    if (rt->senders)
        map_close(rt->senders);
    rt->domains = rt->senders = NULL;
    gateways_free(&rt->gws);
}

/* 0, or -1 when a map that is there could not be opened and there was
 * none to keep. */
static int load(struct qmgr *q)
{
    struct routing *rt = q->rt;
    const struct config *c = q->c->cfg;
    char *err = NULL;
    int failed = 0;
    struct map *old_domains = rt->domains, *old_senders = rt->senders;

    rt->domains = rt->senders = NULL;
    close_all(rt);
    clear_caches(rt);
    if (gateways_parse(cfg_list(c, P_relay_gateways), &rt->gws, &err) < 0) {
        log_err("relay_gateways: %s; no gateway is used", err);
        free(err);
        memset(&rt->gws, 0, sizeof(rt->gws));
    }
    rt->domains = open_map(cfg_str(c, P_domains_map), SPOOL_MAP_DOMAINS, 0, "domains map",
                           &old_domains, &failed);
    rt->senders = open_map(cfg_str(c, P_relay_sender_map), SPOOL_MAP_SENDERS, 0, "sender map",
                           &old_senders, &failed);
    if (old_domains)
        map_close(old_domains);
    if (old_senders)
        map_close(old_senders);
    log_info("routing: %zu relay gateway%s, %s, %s", rt->gws.n, rt->gws.n == 1 ? "" : "s",
             rt->domains ? "domains map" : "no domains map",
             rt->senders ? "sender map" : "no sender map");
    return failed ? -1 : 0;
}

int routing_init(struct qmgr *q)
{
    q->rt = xcalloc(1, sizeof(*q->rt));
    q->rt->stats = strmap_new();
    return load(q);
}

void routing_reload(struct qmgr *q)
{
    load(q); /* a map it failed to open is logged; one in use was kept */
}

void routing_free(struct qmgr *q)
{
    struct routing *rt = q->rt;
    size_t pos = 0;
    const char *key;
    void *val;

    if (rt == NULL)
        return;
    close_all(rt);
    clear_caches(rt);
    free_strv(rt->auth_names);
    strmap_free(rt->pol);
    strmap_free(rt->sendc);
    strmap_free(rt->warned);
    pos = 0;
    while (strmap_next(rt->stats, &pos, &key, &val)) {
        free(((struct gw_stat *)val)->last_error);
        free(val);
    }
    strmap_free(rt->stats);
    free(rt);
    q->rt = NULL;
}

/* The rule for domain into *pol; a map problem is logged (once per
 * domain until the next reload) and main.cf applies. */
static void build(struct qmgr *q, const char *domain, struct qpolicy *pol)
{
    struct routing *rt = q->rt;
    struct domain_rule r;
    char *err = NULL;

    if (domain_rule_lookup(rt->domains, domain, &r, &err) < 0) {
        if (strmap_get(rt->warned, domain) == NULL) {
            strmap_put(rt->warned, domain, rt);
            log_warn("domains map: %s; main.cf's rules apply to %s (fix etc/domains and run "
                     "smtpctl makemap, then smtpctl reload)",
                     err, domain);
        }
        free(err);
        qpolicy_build(NULL, q->c->cfg, pol);
        pol->local = local_domain(q->c->cfg, domain);
        return;
    }
    qpolicy_build(&r, q->c->cfg, pol);
    domain_rule_free(&r);
    pol->local = local_domain(q->c->cfg, domain);
}

struct qpolicy *policy_for(struct qmgr *q, const struct dest *d)
{
    struct qpolicy *pol = strmap_get(q->rt->pol, d->name);

    if (pol)
        return pol;
    pol = xcalloc(1, sizeof(*pol));
    build(q, d->name, pol);
    strmap_put(q->rt->pol, d->name, pol);
    return pol;
}

void policy_lookup(struct qmgr *q, const char *domain, struct qpolicy *pol)
{
    build(q, domain, pol);
}

const struct gateways *routing_gateways(struct qmgr *q)
{
    return &q->rt->gws;
}

static char **split_names(const char *v)
{
    char *copy = xstrdup(v), *save, *tok;
    char **out = xcalloc(strlen(v) / 2 + 2, sizeof(*out));
    size_t n = 0;

    for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save))
        out[n++] = xstrdup(tok);
    free(copy);
    return out;
}

static struct sender_ent *sender_lookup(struct routing *rt, const char *sender)
{
    struct sender_ent *e = xcalloc(1, sizeof(*e));
    const char *at = strrchr(sender, '@');
    char *keys[2] = {xstrdup(sender), at ? xasprintf("%s", at) : NULL};

    for (int i = 0; i < 2 && keys[i] && e->gws == NULL; i++) {
        char *val = NULL, *err = NULL;
        ascii_lower(keys[i]);
        int found = map_get(rt->senders, keys[i], &val, &err);
        if (found < 0) {
            log_warn("sender map: %s", err);
            free(err);
            break;
        }
        if (found == 1) {
            e->key = xstrdup(keys[i]);
            e->gws = split_names(val);
            if (e->gws[0] == NULL) {
                free_strv(e->gws);
                e->gws = NULL;
            }
        }
        free(val);
    }
    free(keys[0]);
    free(keys[1]);
    return e;
}

char *const *routing_sender_gateways(struct qmgr *q, const char *sender, const char **key)
{
    struct routing *rt = q->rt;
    struct sender_ent *e;

    if (key)
        *key = NULL;
    if (rt->senders == NULL || sender == NULL || *sender == '\0')
        return NULL;
    e = strmap_get(rt->sendc, sender);
    if (e == NULL) {
        if (strmap_count(rt->sendc) >= SENDER_CACHE_MAX)
            drop_senders(rt);
        e = sender_lookup(rt, sender);
        strmap_put(rt->sendc, sender, e);
    }
    if (key)
        *key = e->key;
    return e->gws;
}

void routing_set_auth(struct qmgr *q, char **names)
{
    struct routing *rt = q->rt;

    free_strv(rt->auth_names);
    rt->auth_names = names;
}

int routing_has_auth(struct qmgr *q, const char *gateway)
{
    for (char **p = q->rt->auth_names; p && *p; p++)
        if (ascii_casecmp(*p, gateway) == 0)
            return 1;
    return 0;
}

struct gw_stat *routing_gw_stat(struct qmgr *q, const char *gateway)
{
    struct gw_stat *s = strmap_get(q->rt->stats, gateway);

    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        strmap_put(q->rt->stats, gateway, s);
    }
    return s;
}

/* ---- the glue with dispatch.c ---- */

static void make_ctx(struct qmgr *q, const struct msg *m, const struct dest *d, struct route_ctx *c)
{
    c->p = policy_for(q, d);
    c->gws = &q->rt->gws;
    c->size = m->size;
    c->sender_gws = routing_sender_gateways(q, m->sender, NULL);
}

int policy_gateway_room(struct qmgr *q, struct route_plan *plan)
{
    for (size_t i = 0; i < plan->ngw; i++) {
        const struct gateway *gw = plan->gw[i];
        if (gw->max_connections > 0 &&
            routing_gw_stat(q, gw->name)->active >= (unsigned)gw->max_connections)
            continue;
        /* the first with room leads; the others keep their order behind it */
        for (size_t k = i; k > 0; k--)
            plan->gw[k] = plan->gw[k - 1];
        plan->gw[0] = gw;
        return 0;
    }
    return -1;
}

void policy_plan(struct qmgr *q, const struct msg *m, const struct dest *d, const struct qhist *h,
                 int64_t now, struct route_plan *out)
{
    struct route_ctx c;

    make_ctx(q, m, d, &c);
    *out = route_decide(&c, h, now);
}

struct qoutcome policy_result(struct qmgr *q, const struct msg *m, const struct dest *d,
                              const struct qhist *h, int phase, int status, int64_t now,
                              uint32_t rnd)
{
    struct route_ctx c;

    make_ctx(q, m, d, &c);
    return route_result(&c, h, phase, status, now, rnd);
}

/* The gateway by name: relay adds its credentials (qmgr holds none). */
static void fill_gateway(struct qmgr *q, const struct gateway *gw, struct dlv_host *h)
{
    h->name = xstrdup(gw->host);
    h->port = (uint16_t)gw->port;
    h->tls = (uint8_t)gw->tls;
    h->label = xstrdup(gw->name);
    h->auth_user = xstrdup("");
    h->auth_pass = xstrdup("");
    h->auth_plaintext_ok = (uint8_t)gw->plainauth;
}

void policy_fill_req(struct qmgr *q, const struct dest *d, const struct route_plan *plan,
                     struct dlv_req *req, struct delivery *dl)
{
    const struct qpolicy *pol = policy_for(q, d);
    struct buf via;

    req->attempt = plan->attempt;
    req->tls = (uint8_t)pol->tls;
    req->port = (uint16_t)pol->port;
    req->mx_override = NULL;
    req->hosts = NULL;
    req->nhosts = 0;
    dl->phase = plan->next == QNEXT_RELAY ? DLV_PHASE_RELAY : DLV_PHASE_DIRECT;
    dl->attempt = plan->attempt;
    dl->via = NULL;
    req->phase = dl->phase;
    if (plan->next == QNEXT_LOCAL) {
        req->target = DLV_TARGET_LOCAL; /* no connection: no reuse key */
        return;
    }
    if (plan->next == QNEXT_RELAY) {
        buf_init(&via);
        req->target = DLV_TARGET_HOSTS;
        req->port = 25;
        req->hosts = xcalloc(plan->ngw, sizeof(*req->hosts));
        for (size_t i = 0; i < plan->ngw; i++) {
            fill_gateway(q, plan->gw[i], &req->hosts[i]);
            buf_printf(&via, "%s%s", i ? "," : "", plan->gw[i]->name);
        }
        req->nhosts = plan->ngw;
        buf_addc(&via, '\0');
        dl->via = xstrdup(via.data);
        buf_free(&via);
        /* The key switches reuse on and names the destination for
         * connection_delay; the engine keeps each idle connection under
         * the gateway it is connected to (dlv_conn_id_of), whatever gateway
         * comes first here, and uses it only once a job reaches that one. */
        req->dest_key =
            xasprintf("relay:%s=%s:%d", plan->gw[0]->name, plan->gw[0]->host, plan->gw[0]->port);
        return;
    }
    if (plan->static_route && pol->route_host) {
        int port = pol->route_port ? pol->route_port : pol->port;
        dl->via = xstrdup(pol->route_text);
        req->dest_key = xasprintf("route:%s:%d", pol->route_host, port);
        if (pol->route_no_mx) {
            req->target = DLV_TARGET_HOSTS;
            req->hosts = xcalloc(1, sizeof(*req->hosts));
            req->hosts[0].name = xstrdup(pol->route_host);
            req->hosts[0].port = (uint16_t)port;
            req->hosts[0].tls = (uint8_t)pol->tls;
            req->hosts[0].label = xstrdup("");
            req->hosts[0].auth_user = xstrdup("");
            req->hosts[0].auth_pass = xstrdup("");
            req->nhosts = 1;
        } else {
            /* smtp:host:port: the MX hosts of host (as Postfix reads it) */
            req->target = DLV_TARGET_MX;
            req->domain = pol->route_host;
            req->port = (uint16_t)port;
        }
        return;
    }
    req->target = DLV_TARGET_MX;
    req->mx_override = pol->mx && pol->mx[0] ? pol->mx : NULL;
    /* The key names what the connection goes to: the domain, its port and
     * its mx= override. After a reload that changes them, an idle
     * connection to the old host is not reused for the new route. */
    buf_init(&via);
    buf_printf(&via, "%s:%d", d->name, pol->port);
    for (size_t i = 0; req->mx_override && req->mx_override[i]; i++)
        buf_printf(&via, "%s%s", i ? "," : " mx=", req->mx_override[i]);
    req->dest_key = xstrdup(via.data);
    buf_free(&via);
}

void policy_req_done(struct dlv_req *req)
{
    dlv_hosts_free(req->hosts, req->nhosts);
    free(req->dest_key);
    req->hosts = NULL;
    req->nhosts = 0;
    req->dest_key = NULL;
}

void policy_log_tag(const struct delivery *dl, const char *label, char *buf, size_t len)
{
    buf[0] = '\0';
    if (dl == NULL)
        return;
    if (dl->phase == DLV_PHASE_RELAY)
        snprintf(buf, len, ", phase=relay, gateway=%s", label && label[0] ? label : "none");
    else if (dl->via)
        snprintf(buf, len, ", phase=direct, route=%s", dl->via);
}

/* via's names into out[] (pointers into the copy *buf); returns how many. */
static size_t split_via(const char *via, char **buf, char **out, size_t max)
{
    size_t n = 0;
    char *save, *tok;

    *buf = xstrdup(via ? via : "");
    for (tok = strtok_r(*buf, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

static void gw_failed(struct qmgr *q, const char *name, const char *why, int64_t now)
{
    struct gw_stat *s = routing_gw_stat(q, name);

    s->failed++;
    s->consecutive++;
    s->last_fail_us = now;
    free(s->last_error);
    s->last_error = xstrdup(why);
}

/*
 * A login that did not happen, with what to change: the server refused
 * the credentials (its reply code: the secrets map), or relay would not
 * send them without TLS (DLV_DSN_AUTH_NEEDS_TLS: the gateway's TLS option
 * or the server's STARTTLS, or plainauth), or something else relay says.
 */
static void log_auth_failure(struct qmgr *q, const struct msg *m, const struct dlv_res *res,
                             const struct dlv_rcpt_res *bad, const char *gw)
{
    const struct gateway *g = gateways_find(&q->rt->gws, gw);
    const char *relay = res->relay && res->relay[0] ? res->relay : "not reached";
    const char *text = bad->text ? bad->text : "";

    if (bad->code > 0) {
        log_warn("%s: gateway %s (%s) refused the login: %s; the message is deferred. Check "
                 "the entry for %s in the secrets map (relay_secrets_map), then run smtpctl "
                 "makemap and smtpctl reload",
                 m->id, gw, relay, text, gw);
        return;
    }
    if (bad->dsn == NULL || strcmp(bad->dsn, DLV_DSN_AUTH_NEEDS_TLS) != 0) {
        log_warn("%s: gateway %s (%s): no login: %s; the message is deferred", m->id, gw, relay,
                 text);
        return;
    }
    if (g && g->tls == TLS_MODE_NONE)
        log_warn("%s: gateway %s (%s): %s; the message is deferred. Its password is never sent "
                 "in plaintext: give %s a TLS mode in relay_gateways (/may or /encrypt), or mark "
                 "it /plainauth to allow AUTH without TLS, then run smtpctl reload",
                 m->id, gw, relay, text, gw);
    else
        log_warn("%s: gateway %s (%s): %s; the message is deferred. Its password is never sent "
                 "in plaintext: have the server offer STARTTLS (and complete it), or mark %s "
                 "/plainauth in relay_gateways to allow AUTH without TLS, then run smtpctl reload",
                 m->id, gw, relay, text, gw);
}

void policy_note_relay(struct qmgr *q, const struct msg *m, const struct delivery *dl,
                       const struct dlv_res *res)
{
    char *buf, *names[ROUTE_MAX_GW], why[600];
    size_t n = split_via(dl->via, &buf, names, ROUTE_MAX_GW), last = n;
    int64_t now = now_us();
    const struct dlv_rcpt_res *bad = NULL;

    if (res == NULL || n == 0) {
        free(buf);
        return;
    }
    for (size_t i = 0; i < res->n && bad == NULL; i++)
        if (res->r[i].status != DLV_OK)
            bad = &res->r[i];
    if (res->host_index >= 0 && (size_t)res->host_index < n) {
        struct gw_stat *s = routing_gw_stat(q, names[res->host_index]);
        s->sent++;
        s->consecutive = 0;
        s->last_ok_us = now;
        last = (size_t)res->host_index;
    } else if (res->label && res->label[0]) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], res->label) == 0)
                last = i + 1;
    }
    /* Gateways before the one that took it (or up to the last one tried)
     * did not take the message; the reason is known for the last tried. */
    for (size_t i = 0; i < last && i < n; i++) {
        int is_last = res->host_index < 0 && i + 1 == last;
        if (is_last && bad) {
            const char *cn = dlv_class_name((enum dlv_class)bad->cls);
            const char *sn = dlv_step_name((enum dlv_step)bad->step);
            if (bad->step == DLV_STEP_NONE || strcmp(cn, sn) == 0)
                snprintf(why, sizeof(why), "%s: %s", cn, bad->text ? bad->text : "");
            else
                snprintf(why, sizeof(why), "%s/%s: %s", cn, sn, bad->text ? bad->text : "");
        } else
            snprintf(why, sizeof(why), "did not take %s (its failure is in the log)", m->id);
        gw_failed(q, names[i], why, now);
    }
    if (bad && bad->cls == DLV_CLASS_AUTH)
        log_auth_failure(q, m, res, bad,
                         res->label && res->label[0] ? res->label : names[last ? last - 1 : 0]);
    free(buf);
}

void policy_log_attempt(struct qmgr *q, const struct msg *m, const struct dest *d,
                        const struct route_plan *plan, const struct delivery *dl)
{
    if (plan->next == QNEXT_LOCAL)
        log_detail("%s: %s: local delivery attempt %u", m->id, d->name, plan->attempt);
    else if (plan->next == QNEXT_RELAY)
        log_info("%s: %s: relay attempt %u of %u via %s (%s)", m->id, d->name, plan->attempt,
                 plan->attempts, dl->via, plan->why ? plan->why : "relay phase");
    else if (dl->via)
        log_info("%s: %s: direct attempt %u of %u via route %s", m->id, d->name, plan->attempt,
                 plan->attempts, dl->via);
    else
        log_detail("%s: %s: direct attempt %u of %u", m->id, d->name, plan->attempt,
                   plan->attempts);
}
