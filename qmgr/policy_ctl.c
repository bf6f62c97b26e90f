/*
 * policy_ctl - the routing commands of smtpctl, answered by qmgr:
 *
 *   route ADDRESS [--size N] [--from SENDER]
 *       the rule that matched (the etc/domains key, or main.cf), and the
 *       plan for mail to ADDRESS: the phases in order with their
 *       attempts, the direct target (MX, mx= override, static route),
 *       the gateways with priorities and the order each relay attempt
 *       tries them in, what starts the relay phase early, and the
 *       throttles in force. Every part comes from route.h's functions,
 *       so what it prints is what the decision does. ADDRESS may be a
 *       bare domain. --size (k M G suffixes) and --from stand for the
 *       message (relay_size_over, the sender map).
 *   show relays
 *       each gateway: host and port, priority, TLS mode, credentials
 *       (yes/no), enabled, state (unused, ok, failing, disabled),
 *       deliveries it took and failed since qmgr started, last error.
 *
 * Both take --json (one JSON document). policy_ctl returns
 * POLICY_CTL_NOT_MINE for any other command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dlv_proto.h"
#include "mail/domains.h"
#include "mail/gateways.h"
#include "policy.h"
#include "mail/proto.h"
#include "qmgr.h"
#include "route.h"

static void fmt_secs(char *b, size_t len, long long s)
{
    if (s == 0 || s % 60)
        snprintf(b, len, "%llds", s);
    else if (s % 3600)
        snprintf(b, len, "%lldm", s / 60);
    else if (s % 86400)
        snprintf(b, len, "%lldh", s / 3600);
    else
        snprintf(b, len, "%lldd", s / 86400);
}

static const char *policy_name(int p)
{
    static const char *const names[] = {"never", "undelivered", "on_error", "always"};

    return p >= 0 && p < 4 ? names[p] : "?";
}

static void json_strv(struct buf *out, char *const *v)
{
    buf_addc(out, '[');
    for (size_t i = 0; v && v[i]; i++) {
        if (i)
            buf_addc(out, ',');
        buf_json_str(out, v[i]);
    }
    buf_addc(out, ']');
}

static void classes(unsigned mask, struct buf *out, int json)
{
    static const int list[] = {DLV_CLASS_DNS, DLV_CLASS_NETWORK, DLV_CLASS_TLS, DLV_CLASS_SMTP,
                               DLV_CLASS_AUTH};
    int n = 0;

    if (json)
        buf_addc(out, '[');
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
        if (!(mask & (1u << list[i])))
            continue;
        if (n++)
            buf_adds(out, json ? "," : " ");
        if (json)
            buf_printf(out, "\"%s\"", dlv_class_name((enum dlv_class)list[i]));
        else
            buf_adds(out, dlv_class_name((enum dlv_class)list[i]));
    }
    if (json)
        buf_addc(out, ']');
    else if (n == 0)
        buf_adds(out, "(none)");
}

/* What route --json and the text output share. */
struct view {
    struct qmgr *q;
    const char *address, *domain, *sender, *sender_key;
    long long size;
    struct qpolicy pol;
    struct route_ctx ctx;
    const char *relay_only;
    int direct, relay;           /* phases present */
    long long direct_n, relay_n; /* their attempts */
    const struct gateway *gw[ROUTE_MAX_GW];
    size_t ngw;
    size_t norders; /* attempt orders shown (rotation repeats after ngw) */
    struct route_plan orders[ROUTE_MAX_GW];
    struct route_plan first;
    int early_age, early_error; /* the relay phase may start before direct attempts are spent */
    long long max_deliveries, idle_timeout, failure_limit; /* global throttles (main.cf) */
    int resolve;       /* --resolve: name the lookups for smtpctl */
    const char *local; /* the address was a bare local part (now LOCAL@myhostname) */
};

static void build_view(struct qmgr *q, struct view *v, int64_t now)
{
    struct qhist h;

    policy_lookup(q, v->domain, &v->pol);
    v->max_deliveries = cfg_num(q->c->cfg, P_max_deliveries);
    v->idle_timeout = cfg_num(q->c->cfg, P_connection_idle_timeout);
    v->failure_limit = cfg_num(q->c->cfg, P_destination_failure_limit);
    v->ctx.p = &v->pol;
    v->ctx.gws = routing_gateways(q);
    v->ctx.size = v->size > 0 ? (uint64_t)v->size : 0;
    v->ctx.sender_gws = v->sender ? routing_sender_gateways(q, v->sender, &v->sender_key) : NULL;
    v->relay_only = route_relay_only(&v->ctx);
    v->ngw = route_gateways(&v->ctx, v->gw, ROUTE_MAX_GW);
    v->direct = v->relay_only == NULL && v->pol.direct_attempts > 0;
    v->direct_n = v->direct ? v->pol.direct_attempts : 0;
    v->relay = (v->relay_only || route_fallback(&v->pol)) && v->pol.relay_attempts > 0 && v->ngw;
    v->relay_n = v->relay ? v->pol.relay_attempts : 0;
    v->early_age = v->direct && v->relay && v->pol.direct_max_age > 0;
    v->early_error =
        v->direct && v->relay && v->pol.gateway_policy == GWP_ON_ERROR && v->pol.relay_on != 0;
    memset(&h, 0, sizeof(h));
    h.arrival_us = now;
    v->first = route_decide(&v->ctx, &h, now);
    /* The order of each relay attempt, straight from the decision. */
    h.direct_attempts = (unsigned)(v->direct ? v->direct_n : 0);
    for (size_t k = 0; v->relay && k < v->ngw && (long long)k < v->relay_n; k++) {
        h.relay_attempts = (unsigned)k;
        v->orders[k] = route_decide(&v->ctx, &h, now);
        v->norders = k + 1;
    }
}

static const char *first_word(const struct route_plan *p)
{
    return p->next == QNEXT_DIRECT  ? "direct"
           : p->next == QNEXT_RELAY ? "relay"
           : p->next == QNEXT_LOCAL ? "local"
                                    : "fail";
}

/* address, rule, sender, size, policy and "relay only" lines. */
static void text_rule(const struct view *v, struct buf *out)
{
    const struct qpolicy *p = &v->pol;
    char age[32];

    buf_printf(out, "address:     %s\n", v->address);
    if (v->local)
        buf_printf(out, "             (%s has no domain: as sendmail does, it is taken as %s)\n",
                   v->local, v->address);
    buf_printf(out, "rule:        %s%s\n", p->matched,
               strcmp(p->matched, "main.cf") == 0 ? " (no etc/domains entry)" : " (etc/domains)");
    if (v->sender)
        buf_printf(out, "sender:      <%s>%s%s\n", v->sender,
                   v->sender_key ? ": sender map entry " : "", v->sender_key ? v->sender_key : "");
    if (v->size > 0)
        buf_printf(out, "size:        %lld bytes\n", v->size);
    fmt_secs(age, sizeof(age), p->direct_max_age);
    buf_printf(out, "policy:      gateway_policy %s, relay_on_errors ",
               policy_name(p->gateway_policy));
    classes(p->relay_on, out, 0);
    buf_printf(out, ", direct_max_age %s, relay_size_over %lld\n", age, p->relay_size_over);
    if (v->relay_only)
        buf_printf(out, "relay only:  %s (no direct attempt%s)\n", v->relay_only,
                   p->route_kind == ROUTE_SMTP ? "; the static route is not used" : "");
}

/* The plan's direct step: its attempts and where they go. */
static void text_direct(const struct view *v, int step, struct buf *out)
{
    const struct qpolicy *p = &v->pol;

    buf_printf(out, "  %d. direct  %lld attempt%s ", step, v->direct_n,
               v->direct_n == 1 ? "" : "s");
    if (p->route_kind == ROUTE_SMTP) {
        buf_printf(out, "via static route %s\n", p->route_text);
        return;
    }
    if (p->mx && p->mx[0]) {
        buf_adds(out, "to the mx= override:");
        for (char **m = p->mx; *m; m++)
            buf_printf(out, " %s", *m);
        buf_addc(out, '\n');
        return;
    }
    buf_printf(out, "to the MX hosts of %s (port %d)\n", v->domain, p->port);
}

/* The plan's relay step: the gateways, each attempt's order, what starts it early. */
static void text_relay(const struct view *v, int step, struct buf *out)
{
    const struct qpolicy *p = &v->pol;
    char age[32];

    buf_printf(out, "  %d. relay   %lld attempt%s through", step, v->relay_n,
               v->relay_n == 1 ? "" : "s");
    for (size_t i = 0; i < v->ngw; i++)
        buf_printf(out, "%s %s (%s, %s:%d)", i ? "," : "", v->gw[i]->name,
                   gw_priority_name(v->gw[i]->prio), v->gw[i]->host, v->gw[i]->port);
    buf_addc(out, '\n');
    for (size_t k = 0; k < v->norders; k++) {
        buf_printf(out, "             attempt %zu:", k + 1);
        for (size_t i = 0; i < v->orders[k].ngw; i++)
            buf_printf(out, " %s", v->orders[k].gw[i]->name);
        buf_addc(out, '\n');
    }
    if (v->norders > 1 && v->relay_n > (long long)v->norders)
        buf_printf(out, "             (the rotation repeats every %zu attempts)\n", v->norders);
    if (v->early_age) {
        fmt_secs(age, sizeof(age), p->direct_max_age);
        buf_printf(out,
                   "     the relay phase starts once the mail has failed directly "
                   "for %s (direct_max_age)\n",
                   age);
    }
    if (v->early_error) {
        buf_adds(out, "     the relay phase starts at the first direct error of class ");
        classes(p->relay_on, out, 0);
        buf_adds(out, " (on_error)\n");
    }
}

static void text_plan(const struct view *v, struct buf *out)
{
    int step = 0;

    buf_adds(out, "plan:\n");
    if (v->direct)
        text_direct(v, ++step, out);
    if (v->relay)
        text_relay(v, ++step, out);
    if (step == 0)
        buf_adds(out, "  no attempt: the mail fails\n");
    else
        buf_adds(out, "  then the recipient fails\n");
    if (v->pol.delay_warning_time > 0) {
        char dw[32];
        fmt_secs(dw, sizeof(dw), v->pol.delay_warning_time);
        buf_printf(out,
                   "notices:     still undelivered after %s: one delay notice to the sender; "
                   "on failure: a failure notice; the message is kept in bounced/ (none for "
                   "NOTIFY=NEVER or the null sender)\n",
                   dw);
    } else {
        buf_adds(out, "notices:     on failure: a failure notice to the sender (no delay notices: "
                      "delay_warning_time is 0); the message is kept in bounced/ (none for "
                      "NOTIFY=NEVER or the null sender)\n");
    }
    buf_printf(out, "first:       %s", first_word(&v->first));
    if (v->first.next == QNEXT_FAIL)
        buf_printf(out, " (%s)", v->first.why);
    else if (v->first.next == QNEXT_RELAY)
        buf_printf(out, " via %s", v->first.gw[0]->name);
    buf_addc(out, '\n');
}

static void text_throttles(const struct view *v, struct buf *out)
{
    const struct qpolicy *p = &v->pol;
    char a[32], b[32], c[32], d[32];

    fmt_secs(a, sizeof(a), p->connection_delay);
    fmt_secs(b, sizeof(b), p->retry_delay);
    fmt_secs(c, sizeof(c), p->retry_delay_max);
    fmt_secs(d, sizeof(d), p->max_queue_lifetime);
    buf_printf(out,
               "throttles:   max_connections %lld, messages_per_connection %lld, "
               "connection_delay %s, retry_delay %s, retry_delay_max %s, max_queue_lifetime %s\n",
               p->max_connections, p->messages_per_connection, a, b, c, d);
    fmt_secs(a, sizeof(a), v->idle_timeout);
    buf_printf(out,
               "             (all destinations) max_deliveries %lld, connection_idle_timeout %s, "
               "destination_failure_limit %lld\n",
               v->max_deliveries, a, v->failure_limit);
}

static void text_route(const struct view *v, struct buf *out)
{
    text_rule(v, out);
    text_plan(v, out);
    text_throttles(v, out);
    buf_printf(out, "tls:         %s (%s)\n", tls_mode_name((enum tls_mode)v->pol.tls),
               tls_mode_meaning((enum tls_mode)v->pol.tls));
    if (!v->resolve && v->pol.tls != TLS_MODE_NONE)
        buf_adds(out, "             DANE and MTA-STS depend on DNS: --resolve shows the policy "
                      "of each host\n");
    qdkim_route(v->q, v->sender, v->first.next == QNEXT_LOCAL, 0, out);
}

/*
 * --resolve: after the route, one "resolve: mx NAME [OVERRIDE...]" or
 * "resolve: host NAME" line per lookup the plan would make. smtpctl takes
 * these lines out and shows dnsd's answers to them instead (qmgr has no
 * resolver; dnsd does the lookups, with its cache, as deliver's would).
 */
static void resolve_lines(const struct view *v, struct buf *out)
{
    const struct qpolicy *p = &v->pol;
    const char *tls = tls_mode_name((enum tls_mode)p->tls);

    /* each with the TLS mode and port deliver would use, so that dnsd
     * adds the TLS plan (DANE, MTA-STS) to its answer */
    if (v->direct) {
        if (p->route_kind == ROUTE_SMTP && p->route_host)
            buf_printf(out, "resolve: %s --tls %s --port %d %s\n", p->route_no_mx ? "host" : "mx",
                       tls, p->route_port ? p->route_port : p->port, p->route_host);
        else {
            int sts = v->q->mta_sts && !(p->mx && p->mx[0]);
            buf_printf(out, "resolve: mx --tls %s%s --port %d %s", tls, sts ? " --sts" : "",
                       p->port, v->domain);
            for (char **m = p->mx; m && *m; m++)
                buf_printf(out, " %s", *m);
            buf_addc(out, '\n');
        }
    }
    if (v->relay)
        for (size_t i = 0; i < v->ngw; i++)
            buf_printf(out, "resolve: host --tls %s --port %d %s\n",
                       tls_mode_name((enum tls_mode)v->gw[i]->tls), v->gw[i]->port, v->gw[i]->host);
}

static void json_gw(struct buf *out, const struct gateway *g)
{
    buf_adds(out, "{\"name\":");
    buf_json_str(out, g->name);
    buf_adds(out, ",\"host\":");
    buf_json_str(out, g->host);
    buf_printf(out, ",\"port\":%d,\"priority\":\"%s\",\"tls\":\"%s\",\"enabled\":%s}", g->port,
               gw_priority_name(g->prio), tls_mode_name((enum tls_mode)g->tls),
               g->enabled ? "true" : "false");
}

/* A JSON string, or null for NULL. */
static void json_str_or_null(struct buf *out, const char *s)
{
    if (s)
        buf_json_str(out, s);
    else
        buf_adds(out, "null");
}

/* "address" to "route": the rule and what it says. */
static void json_rule(const struct view *v, struct buf *out)
{
    const struct qpolicy *p = &v->pol;

    buf_adds(out, "\"address\":");
    buf_json_str(out, v->address);
    buf_adds(out, ",\"domain\":");
    buf_json_str(out, v->domain);
    buf_adds(out, ",\"rule\":");
    buf_json_str(out, p->matched);
    buf_adds(out, ",\"sender\":");
    json_str_or_null(out, v->sender);
    buf_adds(out, ",\"sender_map_key\":");
    json_str_or_null(out, v->sender_key);
    buf_printf(out, ",\"size\":%lld,\"gateway_policy\":\"%s\",\"relay_on_errors\":", v->size,
               policy_name(p->gateway_policy));
    classes(p->relay_on, out, 1);
    buf_printf(out, ",\"direct_max_age\":%lld,\"relay_size_over\":%lld,\"relay_only\":",
               p->direct_max_age, p->relay_size_over);
    json_str_or_null(out, v->relay_only);
    buf_adds(out, ",\"route\":");
    buf_json_str(out, p->route_text);
}

static void json_direct(const struct view *v, struct buf *out)
{
    const struct qpolicy *p = &v->pol;

    buf_printf(out, "{\"phase\":\"direct\",\"attempts\":%lld,\"target\":\"%s\"", v->direct_n,
               p->route_kind == ROUTE_SMTP ? "route" : "mx");
    buf_adds(out, ",\"mx_override\":");
    json_strv(out, p->mx);
    buf_printf(out, ",\"port\":%d}",
               p->route_kind == ROUTE_SMTP && p->route_port ? p->route_port : p->port);
}

static void json_relay(const struct view *v, struct buf *out)
{
    const struct qpolicy *p = &v->pol;

    buf_printf(out, "{\"phase\":\"relay\",\"attempts\":%lld,\"gateways\":[", v->relay_n);
    for (size_t i = 0; i < v->ngw; i++) {
        if (i)
            buf_addc(out, ',');
        json_gw(out, v->gw[i]);
    }
    buf_adds(out, "],\"order\":[");
    for (size_t k = 0; k < v->norders; k++) {
        buf_adds(out, k ? ",[" : "[");
        for (size_t i = 0; i < v->orders[k].ngw; i++) {
            if (i)
                buf_addc(out, ',');
            buf_json_str(out, v->orders[k].gw[i]->name);
        }
        buf_addc(out, ']');
    }
    buf_printf(out, "],\"early\":{\"direct_max_age\":%lld,\"on_error\":",
               v->early_age ? p->direct_max_age : 0);
    classes(v->early_error ? p->relay_on : 0, out, 1);
    buf_adds(out, "}}");
}

/* "first" to the end: the first attempt, TLS and the throttles. */
static void json_first(const struct view *v, struct buf *out)
{
    const struct qpolicy *p = &v->pol;

    buf_printf(out, ",\"first\":\"%s\",\"first_gateway\":", first_word(&v->first));
    json_str_or_null(out, v->first.next == QNEXT_RELAY ? v->first.gw[0]->name : NULL);
    buf_adds(out, ",\"fail_reason\":");
    json_str_or_null(out, v->first.next == QNEXT_FAIL ? v->first.why : NULL);
    buf_printf(out,
               ",\"tls\":\"%s\",\"throttles\":{\"max_connections\":%lld,"
               "\"messages_per_connection\":%lld,\"connection_delay\":%lld,\"retry_delay\":%lld,"
               "\"retry_delay_max\":%lld,\"max_queue_lifetime\":%lld,\"max_deliveries\":%lld,"
               "\"connection_idle_timeout\":%lld,\"destination_failure_limit\":%lld},"
               "\"notices\":{\"failure\":true,\"delay_warning_time\":%lld}",
               tls_mode_name((enum tls_mode)p->tls), p->max_connections, p->messages_per_connection,
               p->connection_delay, p->retry_delay, p->retry_delay_max, p->max_queue_lifetime,
               v->max_deliveries, v->idle_timeout, v->failure_limit, p->delay_warning_time);
}

static void json_route(const struct view *v, struct buf *out)
{
    buf_addc(out, '{');
    json_rule(v, out);
    buf_adds(out, ",\"phases\":[");
    if (v->direct)
        json_direct(v, out);
    if (v->relay) {
        if (v->direct)
            buf_addc(out, ',');
        json_relay(v, out);
    }
    buf_addc(out, ']');
    json_first(v, out);
    qdkim_route(v->q, v->sender, v->first.next == QNEXT_LOCAL, 1, out);
    buf_adds(out, "}\n");
}

static int route_usage(struct buf *out, const char *why)
{
    buf_printf(out,
               "qmgr: %s\nusage: route ADDRESS [--size N] [--from SENDER] [--resolve] [--json]\n",
               why);
    return 2;
}

/* ADDRESS, --size N and --from SENDER into v; NULL, or what is wrong. */
static const char *route_args(int argc, char **argv, struct view *v)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "--size") == 0 || strcmp(a, "--from") == 0) && i + 1 < argc) {
            if (a[2] == 's') {
                v->size = cfg_parse_size(argv[++i]);
                if (v->size < 0)
                    return "--size takes a size (k, M, G suffixes)";
            } else {
                v->sender = argv[++i];
                if (v->sender[0] == '<')
                    v->sender++;
            }
        } else if (strcmp(a, "--resolve") == 0) {
            v->resolve = 1;
        } else if (a[0] == '-' || v->address) {
            return "unexpected argument";
        } else {
            v->address = a;
        }
    }
    if (v->address == NULL || *v->address == '\0')
        return "say which address (or domain)";
    return NULL;
}

/* A copy of s without a closing '>'. */
static char *strip_gt(const char *s)
{
    char *t = xstrdup(s);
    size_t n = strlen(t);

    if (n > 0 && t[n - 1] == '>')
        t[n - 1] = '\0';
    return t;
}

static int cmd_route(struct qmgr *q, int argc, char **argv, unsigned flags, struct buf *out)
{
    struct view v;
    const char *at, *why;
    char *dom, *snd = NULL, *qualified = NULL;

    memset(&v, 0, sizeof(v));
    if ((why = route_args(argc, argv, &v)) != NULL)
        return route_usage(out, why);
    if (v.address[0] == '<')
        v.address++;
    if (strchr(v.address, '@') == NULL && strchr(v.address, '.') == NULL &&
        strchr(v.address, '[') == NULL) {
        /* "root": a local part (a domain has a dot), qualified as sendmail does */
        v.local = v.address;
        v.address = qualified = xasprintf("%s@%s", v.address, cfg_myhostname(q->c->cfg));
    }
    at = strrchr(v.address, '@');
    dom = strip_gt(at ? at + 1 : v.address);
    ascii_lower(dom);
    if (*dom == '\0') {
        free(dom);
        return route_usage(out, "the address has no domain");
    }
    if (v.sender)
        v.sender = snd = strip_gt(v.sender);
    v.domain = dom;
    v.q = q;
    build_view(q, &v, now_us());
    if (flags & CTL_F_JSON)
        json_route(&v, out);
    else
        text_route(&v, out);
    if (v.resolve)
        resolve_lines(&v, out);
    qpolicy_clear(&v.pol);
    free(dom);
    free(snd);
    free(qualified);
    return 0;
}

static const char *gw_state(const struct gateway *g, const struct gw_stat *s)
{
    if (!g->enabled)
        return "disabled";
    if (s == NULL || (s->sent == 0 && s->failed == 0))
        return "unused";
    return s->consecutive > 0 ? "failing" : "ok";
}

static void json_relay_gw(const struct gateway *gw, const struct gw_stat *s, int auth,
                          struct buf *out)
{
    buf_adds(out, "{\"name\":");
    buf_json_str(out, gw->name);
    buf_adds(out, ",\"host\":");
    buf_json_str(out, gw->host);
    buf_printf(out,
               ",\"port\":%d,\"priority\":\"%s\",\"tls\":\"%s\",\"plainauth\":%s,"
               "\"auth\":%s,\"enabled\":%s,\"state\":\"%s\",\"sent\":%llu,\"failed\":%llu,"
               "\"consecutive_failures\":%u,\"active\":%u,\"max_connections\":%d",
               gw->port, gw_priority_name(gw->prio), tls_mode_name((enum tls_mode)gw->tls),
               gw->plainauth ? "true" : "false", auth ? "true" : "false",
               gw->enabled ? "true" : "false", gw_state(gw, s), (unsigned long long)s->sent,
               (unsigned long long)s->failed, s->consecutive, s->active, gw->max_connections);
    if (s->last_ok_us)
        buf_printf(out, ",\"last_ok\":%.3f", (double)s->last_ok_us / 1e6);
    else
        buf_adds(out, ",\"last_ok\":null");
    if (s->last_fail_us)
        buf_printf(out, ",\"last_failure\":%.3f", (double)s->last_fail_us / 1e6);
    else
        buf_adds(out, ",\"last_failure\":null");
    buf_adds(out, ",\"last_error\":");
    json_str_or_null(out, s->last_error);
    buf_addc(out, '}');
}

static void text_relay_gw(const struct gateway *gw, const struct gw_stat *s, int auth, int64_t now,
                          struct buf *out)
{
    char ago[48] = "", hp[300];

    snprintf(hp, sizeof(hp), strchr(gw->host, ':') ? "[%s]:%d" : "%s:%d", gw->host, gw->port);
    if (s->last_fail_us && s->last_error)
        snprintf(ago, sizeof(ago), "(%llds ago) ", (long long)((now - s->last_fail_us) / 1000000));
    buf_printf(out, "%-12s %-22s %-12s %-7s %-4s %-8s %-8s %6llu %6llu  %s%s\n", gw->name, hp,
               gw_priority_name(gw->prio), tls_mode_name((enum tls_mode)gw->tls),
               auth ? "yes" : "no", gw->enabled ? "yes" : "no", gw_state(gw, s),
               (unsigned long long)s->sent, (unsigned long long)s->failed, ago,
               s->last_error ? s->last_error : "-");
}

static int cmd_relays(struct qmgr *q, unsigned flags, struct buf *out)
{
    const struct gateways *g = routing_gateways(q);
    int json = (flags & CTL_F_JSON) != 0;
    int64_t now = now_us();

    if (json)
        buf_adds(out, "{\"gateways\":[");
    else if (g->n)
        buf_printf(out, "%-12s %-22s %-12s %-7s %-4s %-8s %-8s %6s %6s  %s\n", "Gateway",
                   "Host:port", "Priority", "TLS", "Auth", "Enabled", "State", "Sent", "Failed",
                   "Last error");
    for (size_t i = 0; i < g->n; i++) {
        const struct gateway *gw = &g->gw[i];
        const struct gw_stat *s = routing_gw_stat(q, gw->name);
        int auth = routing_has_auth(q, gw->name);
        if (json && i)
            buf_addc(out, ',');
        if (json)
            json_relay_gw(gw, s, auth, out);
        else
            text_relay_gw(gw, s, auth, now, out);
    }
    if (json)
        buf_printf(out, "],\"count\":%zu}\n", g->n);
    else if (g->n == 0)
        buf_adds(out, "no relay gateways configured (relay_gateways in main.cf)\n");
    return 0;
}

int policy_ctl(struct qmgr *q, int argc, char **argv, unsigned flags, struct buf *out)
{
    if (argc >= 1 && strcmp(argv[0], "route") == 0)
        return cmd_route(q, argc, argv, flags, out);
    if (argc == 2 && strcmp(argv[0], "show") == 0 && strcmp(argv[1], "relays") == 0)
        return cmd_relays(q, flags, out);
    return POLICY_CTL_NOT_MINE;
}
