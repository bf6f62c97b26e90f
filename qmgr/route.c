/*
 * route - the routing decision (DESIGN section 4); contract in route.h.
 */
#include "route.h"

#include <stdlib.h>
#include <string.h>

#include "mail/dlv_proto.h"
#include "mail/domains.h"
#include "mail/gateways.h"
#include "retry.h"
#include "base/util.h"

/* ---- building a policy ---- */

static char **strv_dup(char *const *v)
{
    size_t n = 0;
    char **out;

    for (char *const *p = v; p && *p; p++)
        n++;
    out = xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static void strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

unsigned route_class_mask(char *const *words)
{
    unsigned m = 0;

    for (char *const *w = words; w && *w; w++) {
        int c = dlv_class_parse(*w);
        if (c > 0 && c < 32)
            m |= 1u << c;
    }
    return m;
}

void qpolicy_build(const struct domain_rule *r, const struct config *c, struct qpolicy *p)
{
    struct route_spec rs;
    const char *why, *route;

    memset(p, 0, sizeof(*p));
    p->direct_attempts = drule_num(r, c, P_direct_attempts);
    p->relay_attempts = drule_num(r, c, P_relay_attempts);
    p->max_queue_lifetime = drule_num(r, c, P_max_queue_lifetime);
    p->delay_warning_time = drule_num(r, c, P_delay_warning_time);
    p->retry_delay = drule_num(r, c, P_retry_delay);
    p->retry_delay_max = drule_num(r, c, P_retry_delay_max);
    p->max_connections = drule_num(r, c, P_max_connections);
    p->tls = (int)drule_num(r, c, P_tls); /* none may encrypt verify = enum tls_mode */
    p->port = (int)cfg_num(c, P_direct_port);
    p->messages_per_connection = drule_num(r, c, P_messages_per_connection);
    p->connection_delay = drule_num(r, c, P_connection_delay);
    p->gateway_policy = (int)drule_num(r, c, P_gateway_policy);
    p->relay_on = route_class_mask(drule_list(r, c, P_relay_on_errors));
    p->direct_max_age = drule_num(r, c, P_direct_max_age);
    p->relay_size_over = drule_num(r, c, P_relay_size_over);
    p->gateways = strv_dup(drule_list(r, c, P_gateways));
    p->mx = strv_dup(drule_list(r, c, P_mx));
    p->matched = xstrdup(r && r->matched && r->matched[0] ? r->matched : "main.cf");
    route = drule_str(r, c, P_route);
    p->route_text = xstrdup(route ? route : "");
    p->route_kind = ROUTE_DEFAULT;
    if (route && *route && route_spec_parse(route, &rs, &why) == 0) {
        p->route_kind = rs.kind;
        p->route_host = xstrdup(rs.host);
        p->route_port = rs.port;
        p->route_no_mx = rs.no_mx;
    }
}

void qpolicy_clear(struct qpolicy *p)
{
    strv_free(p->gateways);
    strv_free(p->mx);
    free(p->matched);
    free(p->route_host);
    free(p->route_text);
    memset(p, 0, sizeof(*p));
}

/* ---- deciding ---- */

const char *route_relay_only(const struct route_ctx *c)
{
    const struct qpolicy *p = c->p;

    if (p->gateway_policy == GWP_ALWAYS)
        return "gateway_policy always";
    if (p->route_kind == ROUTE_RELAY)
        return "route = relay";
    if (p->relay_size_over > 0 && c->size > (uint64_t)p->relay_size_over)
        return "size over relay_size_over";
    if (c->sender_gws && c->sender_gws[0])
        return "sender map";
    return NULL;
}

int route_fallback(const struct qpolicy *p)
{
    return p->gateway_policy == GWP_UNDELIVERED || p->gateway_policy == GWP_ON_ERROR;
}

size_t route_gateways(const struct route_ctx *c, const struct gateway **out, size_t max)
{
    char *const *subset = c->p->gateways;

    if (c->gws == NULL)
        return 0;
    if (c->sender_gws && c->sender_gws[0])
        subset = c->sender_gws;
    return gateways_order(c->gws, subset, out, max);
}

static int64_t expiry_us(const struct qpolicy *p, const struct qhist *h)
{
    return h->arrival_us + (int64_t)p->max_queue_lifetime * 1000000;
}

static const char *class_why(int cls)
{
    switch (cls) {
    case DLV_CLASS_DNS:
        return "on_error: a direct dns error";
    case DLV_CLASS_NETWORK:
        return "on_error: a direct network error";
    case DLV_CLASS_SMTP:
        return "on_error: a direct smtp error";
    case DLV_CLASS_TLS:
        return "on_error: a direct tls error";
    default:
        return "on_error: a direct error";
    }
}

static struct route_plan fail(const char *why)
{
    struct route_plan r;

    memset(&r, 0, sizeof(r));
    r.next = QNEXT_FAIL;
    r.why = why;
    return r;
}

/*
 * The relay phase's next attempt, or why there is none. spent: the
 * direct attempts are used up (the reason then says so).
 */
static struct route_plan relay_plan(const struct route_ctx *c, const struct qhist *h,
                                    const char *why, int spent)
{
    const struct qpolicy *p = c->p;
    struct route_plan r;

    if (p->relay_attempts <= 0)
        return fail(spent ? "direct_attempts used up and relay_attempts is 0"
                          : "relay_attempts is 0");
    if ((long long)h->relay_attempts >= p->relay_attempts)
        return fail(spent ? "direct and relay attempts used up" : "relay_attempts used up");
    memset(&r, 0, sizeof(r));
    r.ngw = route_gateways(c, r.gw, ROUTE_MAX_GW);
    if (r.ngw == 0) {
        if (c->sender_gws && c->sender_gws[0])
            return fail("no enabled gateway among those the sender map lists");
        if (p->gateways && p->gateways[0])
            return fail(spent ? "direct_attempts used up and no enabled gateway among the "
                                "domain's gateways"
                              : "no enabled gateway among the domain's gateways");
        return fail(spent ? "direct_attempts used up and no enabled relay gateway"
                          : "no enabled relay gateway");
    }
    gateways_rotate(r.gw, r.ngw, h->relay_attempts);
    r.next = QNEXT_RELAY;
    r.why = why;
    r.attempt = h->relay_attempts + 1;
    r.attempts = (unsigned)(p->relay_attempts > 100000 ? 100000 : p->relay_attempts);
    return r;
}

/* 1 when a relay attempt could be made (attempts left, a gateway enabled). */
static int relay_possible(const struct route_ctx *c, const struct qhist *h)
{
    const struct gateway *gw[ROUTE_MAX_GW];

    return c->p->relay_attempts > 0 && (long long)h->relay_attempts < c->p->relay_attempts &&
           route_gateways(c, gw, ROUTE_MAX_GW) > 0;
}

/* Why the group leaves the direct phase for the gateways now, or NULL. */
static const char *switch_why(const struct route_ctx *c, const struct qhist *h, int64_t now)
{
    const struct qpolicy *p = c->p;

    if (!route_fallback(p))
        return NULL;
    if (h->relay_attempts > 0)
        return "relay phase";
    if ((long long)h->direct_attempts >= p->direct_attempts)
        return p->direct_attempts > 0 ? "direct_attempts used up" : "direct_attempts is 0";
    if (p->direct_max_age > 0 && h->first_fail_us > 0 &&
        now - h->first_fail_us >= (int64_t)p->direct_max_age * 1000000)
        return "failing directly for direct_max_age";
    if (p->gateway_policy == GWP_ON_ERROR && h->direct_attempts > 0 && h->last_class > 0 &&
        h->last_class < 32 && (p->relay_on & (1u << h->last_class)))
        return class_why(h->last_class);
    return NULL;
}

struct route_plan route_decide(const struct route_ctx *c, const struct qhist *h, int64_t now)
{
    const struct qpolicy *p = c->p;
    const char *why;
    struct route_plan r;
    int spent;

    /* Mail is given at least one try, however long it sat (held, or a
     * lifetime of 0 meaning "one attempt only"). */
    if (h->direct_attempts + h->relay_attempts > 0 && now >= expiry_us(p, h)) {
        r = fail("expired: undelivered for max_queue_lifetime");
        r.expired = 1;
        return r;
    }
    if (p->local) {
        /* mydestination: local delivers, retried until max_queue_lifetime;
         * never through the gateways nor to an MX */
        memset(&r, 0, sizeof(r));
        r.next = QNEXT_LOCAL;
        r.attempt = h->direct_attempts + 1;
        return r;
    }
    if ((why = route_relay_only(c)) != NULL) {
        r = relay_plan(c, h, why, 0);
        r.relay_only = 1;
        return r;
    }
    spent = (long long)h->direct_attempts >= p->direct_attempts;
    why = switch_why(c, h, now);
    /* An early switch (direct_max_age, on_error) needs a possible relay
     * attempt; otherwise the direct phase goes on. */
    if (why && (spent || h->relay_attempts > 0 || relay_possible(c, h)))
        return relay_plan(c, h, why, spent && h->relay_attempts == 0);
    if (spent)
        return fail(p->direct_attempts > 0 ? "direct_attempts used up and gateway_policy is never"
                                           : "direct_attempts is 0 and gateway_policy is never");
    memset(&r, 0, sizeof(r));
    r.next = QNEXT_DIRECT;
    r.attempt = h->direct_attempts + 1;
    r.attempts = (unsigned)(p->direct_attempts > 100000 ? 100000 : p->direct_attempts);
    r.static_route = p->route_kind == ROUTE_SMTP;
    return r;
}

struct qoutcome route_result(const struct route_ctx *c, const struct qhist *h, int phase,
                             int status, int64_t now, uint32_t rnd)
{
    const struct qpolicy *p = c->p;
    struct qoutcome o = {RS_SENT, 0, 0, NULL};
    struct route_plan next;
    int64_t t, exp;

    if (status == DLV_OK)
        return o;
    if (status != DLV_TEMP) {
        /* on_error: a permanent direct error of a listed class goes to
         * the gateways (PostCast's "use gateways whenever an error
         * occurs"); every other permanent error is final. */
        if (phase == DLV_PHASE_DIRECT && !p->local && p->gateway_policy == GWP_ON_ERROR &&
            h->last_class > 0 && h->last_class < 32 && (p->relay_on & (1u << h->last_class)) &&
            route_relay_only(c) == NULL && relay_possible(c, h) && now < expiry_us(p, h)) {
            o.state = RS_DEFERRED;
            o.next_try_us = now;
            return o;
        }
        o.state = RS_FAILED;
        return o;
    }
    next = route_decide(c, h, now);
    if (next.next == QNEXT_FAIL) {
        o.state = RS_FAILED;
        o.expired = next.expired;
        o.why = next.why;
        return o;
    }
    o.state = RS_DEFERRED;
    if (phase == DLV_PHASE_DIRECT && next.next == QNEXT_RELAY) {
        o.next_try_us = now; /* a switch to the gateways: at once */
        return o;
    }
    t = now + retry_delay_us(p->retry_delay, p->retry_delay_max,
                             next.next == QNEXT_RELAY ? h->relay_attempts : h->direct_attempts,
                             rnd);
    if (next.next == QNEXT_DIRECT && route_fallback(p) && p->direct_max_age > 0 &&
        relay_possible(c, h)) {
        int64_t first = h->first_fail_us > 0 ? h->first_fail_us : now;
        int64_t sw = first + (int64_t)p->direct_max_age * 1000000;
        if (t > sw)
            t = sw > now ? sw : now;
    }
    exp = expiry_us(p, h);
    if (t > exp)
        t = exp > now ? exp : now;
    o.next_try_us = t;
    return o;
}
