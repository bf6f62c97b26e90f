/*
 * slots - the glue between dispatch.c and throttle.h: the limits in
 * force for a destination (etc/domains over main.cf), the global budget
 * of max_deliveries (deliveries in flight + idle connections), and the
 * destinations that wait: for connection_delay (q->waiting, one timer at
 * the earliest) or for room in the budget (q->blocked, woken when a
 * delivery ends or an idle connection expires). Contract in qmgr.h
 * (slots_*).
 */
#include <event2/event.h>

#include "mail/config.h"
#include "mail/dlv_proto.h"
#include "base/ipc.h"
#include "base/log.h"
#include "qmgr.h"
#include "strmap.h"
#include "throttle.h"

/*
 * Destinations that have not proven themselves (no delivery that sent a
 * recipient within SLOTS_PROVEN_US, or failing now) get one connection at
 * a time, and all of them together at most max_deliveries less a reserve
 * (a quarter, at least one) kept for destinations that work. So hung
 * hosts that accept TCP and never answer cannot take every slot and
 * hold healthy mail for smtp_timeout; the first success of a new
 * destination opens its max_connections (Postfix's slow start is alike).
 */
#define SLOTS_PROVEN_US (3600 * 1000000LL)

int slots_proven(const struct dest *d, int64_t now)
{
    return d->last_ok_us > 0 && now - d->last_ok_us < SLOTS_PROVEN_US && d->h.consecutive == 0;
}

unsigned slots_unproven_cap(unsigned max_deliveries)
{
    unsigned reserve = max_deliveries / 4 ? max_deliveries / 4 : 1;

    return max_deliveries > reserve ? max_deliveries - reserve : 1;
}

void slots_limits(struct qmgr *q, const struct dest *d, struct throttle_limits *l)
{
    const struct qpolicy *pol = policy_for(q, d);

    l->max_connections = pol->max_connections > 0 ? (unsigned)pol->max_connections : 1;
    if (!slots_proven(d, now_us()))
        l->max_connections = 1;
    l->connection_delay_us = pol->connection_delay * 1000000LL;
    l->idle_timeout_us = cfg_num(q->c->cfg, P_connection_idle_timeout) * 1000000LL;
    /* with one message per connection nothing is ever kept idle */
    if (pol->messages_per_connection <= 1)
        l->idle_timeout_us = 0;
}

static unsigned max_deliveries(const struct qmgr *q)
{
    return q->max_deliveries > 0 ? (unsigned)q->max_deliveries : 1;
}

static void timer_at(struct event *ev, int64_t when, int64_t now)
{
    int64_t dt = when > now ? when - now : 0;
    struct timeval tv = {(time_t)(dt / 1000000), (suseconds_t)(dt % 1000000)};

    evtimer_add(ev, &tv);
}

/* ---- idle connections: q->idlers and q->idle_total follow d->th.nidle ---- */

static void sync_idle(struct qmgr *q, struct dest *d, unsigned before)
{
    q->idle_total = q->idle_total - before + d->th.nidle;
    if (d->th.nidle > 0 && !d->in_idlers) {
        TAILQ_INSERT_TAIL(&q->idlers, d, ilink);
        d->in_idlers = 1;
    } else if (d->th.nidle == 0 && d->in_idlers) {
        TAILQ_REMOVE(&q->idlers, d, ilink);
        d->in_idlers = 0;
    }
}

/* Forget idle connections whose timer has closed them (as far as we know). */
static void expire_idle(struct qmgr *q, int64_t now)
{
    struct dest *d, *next;

    for (d = TAILQ_FIRST(&q->idlers); d; d = next) {
        struct throttle_limits l;
        unsigned before = d->th.nidle;
        next = TAILQ_NEXT(d, ilink);
        slots_limits(q, d, &l);
        throttle_idle(&d->th, &l, now);
        sync_idle(q, d, before);
    }
}

/* ---- destinations waiting for room in the budget ---- */

static void wake_blocked(struct qmgr *q)
{
    struct dest *d;

    while ((d = TAILQ_FIRST(&q->blocked)) != NULL) {
        TAILQ_REMOVE(&q->blocked, d, blink);
        d->in_blocked = 0;
        dispatch_wake(q, d);
    }
}

static void unblock(struct qmgr *q, struct dest *d)
{
    if (d->in_blocked) {
        TAILQ_REMOVE(&q->blocked, d, blink);
        d->in_blocked = 0;
    }
}

/* The blocked ones get another chance when the first idle connection expires. */
static void arm_idle(struct qmgr *q, int64_t now)
{
    struct dest *d;
    int64_t first = INT64_MAX;

    if (TAILQ_EMPTY(&q->blocked)) {
        evtimer_del(q->idle_ev);
        return;
    }
    TAILQ_FOREACH(d, &q->idlers, ilink)
    {
        struct throttle_limits l;
        int64_t t;
        slots_limits(q, d, &l);
        t = throttle_idle_next(&d->th, &l);
        if (t < first)
            first = t;
    }
    if (first == INT64_MAX)
        evtimer_del(q->idle_ev); /* woken by the end of a delivery */
    else
        timer_at(q->idle_ev, first, now);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;

    expire_idle(q, now_us());
    wake_blocked(q);
}

/* ---- destinations waiting for connection_delay ---- */

static void arm_wait(struct qmgr *q, int64_t now)
{
    struct dest *d;
    int64_t first = INT64_MAX;

    TAILQ_FOREACH(d, &q->waiting, wlink)
    if (d->wait_us < first)
        first = d->wait_us;
    if (first == INT64_MAX)
        evtimer_del(q->wait_ev);
    else
        timer_at(q->wait_ev, first, now);
}

static void on_wait(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    struct dest *d, *next;
    int64_t now = now_us();

    for (d = TAILQ_FIRST(&q->waiting); d; d = next) {
        next = TAILQ_NEXT(d, wlink);
        if (d->wait_us > now)
            continue;
        TAILQ_REMOVE(&q->waiting, d, wlink);
        d->in_wait = 0;
        dispatch_wake(q, d);
    }
    arm_wait(q, now);
}

static void wait_for(struct qmgr *q, struct dest *d, int64_t when, int64_t now)
{
    if (d->in_wait && d->wait_us <= when)
        return;
    if (!d->in_wait)
        TAILQ_INSERT_TAIL(&q->waiting, d, wlink);
    d->in_wait = 1;
    d->wait_us = when;
    log_debug("%s: next connection in %.1fs (connection_delay)", d->name,
              (double)(when - now) / 1e6);
    arm_wait(q, now);
}

/* ---- the interface ---- */

void slots_init(struct qmgr *q)
{
    TAILQ_INIT(&q->waiting);
    TAILQ_INIT(&q->idlers);
    TAILQ_INIT(&q->blocked);
    q->wait_ev = evtimer_new(q->base, on_wait, q);
    q->idle_ev = evtimer_new(q->base, on_idle, q);
    if (q->wait_ev == NULL || q->idle_ev == NULL)
        log_panic("qmgr: cannot allocate a timer");
}

enum thr_verdict slots_check(struct qmgr *q, struct dest *d, int64_t now)
{
    struct throttle_limits l;
    int64_t when = 0;
    unsigned before = d->th.nidle;
    enum thr_verdict v;

    slots_limits(q, d, &l);
    v = throttle_check(&d->th, &l, d->active, d->h.consecutive > 0, now, &when);
    sync_idle(q, d, before);
    if (v == THR_WAIT) {
        wait_for(q, d, when, now);
        return v;
    }
    if (v == THR_NEW && !slots_proven(d, now) &&
        q->nactive_unproven >= slots_unproven_cap(max_deliveries(q))) {
        if (!d->in_blocked) {
            TAILQ_INSERT_TAIL(&q->blocked, d, blink);
            d->in_blocked = 1;
        }
        log_debug("%s: not proven yet, and destinations like it hold %u of the %u deliveries "
                  "they may; waiting",
                  d->name, q->nactive_unproven, slots_unproven_cap(max_deliveries(q)));
        return THR_FULL;
    }
    if (v == THR_NEW && !throttle_room_new(q->nactive, q->idle_total, max_deliveries(q))) {
        expire_idle(q, now);
        if (!throttle_room_new(q->nactive, q->idle_total, max_deliveries(q))) {
            if (!d->in_blocked) {
                TAILQ_INSERT_TAIL(&q->blocked, d, blink);
                d->in_blocked = 1;
            }
            log_debug("%s: no room for a new connection (%u deliveries, %u idle connections, "
                      "max_deliveries %u)",
                      d->name, q->nactive, q->idle_total, max_deliveries(q));
            arm_idle(q, now);
            return THR_FULL;
        }
    }
    if (v != THR_FULL)
        unblock(q, d);
    return v;
}

int slots_keep(struct qmgr *q, const struct dest *d)
{
    return throttle_keep((unsigned)d->nready, d->active, q->nactive, q->idle_total,
                         max_deliveries(q));
}

int slots_started(struct qmgr *q, struct dest *d, int64_t now)
{
    struct throttle_limits l;
    unsigned before = d->th.nidle;
    int reused;

    slots_limits(q, d, &l);
    reused = throttle_started(&d->th, &l, now);
    sync_idle(q, d, before);
    return reused;
}

void slots_done(struct qmgr *q, struct dest *d, const struct dlv_res *res, int reached, int64_t now)
{
    struct throttle_limits l;
    int kept = res && res->conn_kept;
    int used = res == NULL || res->connections > 0 || res->reused;
    unsigned before = d->th.nidle;

    slots_limits(q, d, &l);
    throttle_done(&d->th, &l, kept, used, reached, now);
    sync_idle(q, d, before);
    wake_blocked(q); /* a delivery ended: maybe room for them */
}

void slots_failed(struct qmgr *q, struct dest *d)
{
    throttle_failed(&d->th);
}

void slots_lost(struct qmgr *q)
{
    struct dest *d, *next;
    int64_t now = now_us();

    for (d = TAILQ_FIRST(&q->idlers); d; d = next) {
        struct throttle_limits l;
        unsigned before = d->th.nidle;
        next = TAILQ_NEXT(d, ilink);
        slots_limits(q, d, &l);
        throttle_lost(&d->th, &l, now);
        sync_idle(q, d, before);
    }
    wake_blocked(q);
}

const char *slots_state(const struct dest *d, int64_t now)
{
    if (d->h.down_until_us > now)
        return "down";
    return d->h.consecutive > 0 ? "failing" : "ok";
}

unsigned slots_idle(struct qmgr *q, const struct dest *d, int64_t now)
{
    struct throttle_limits l;

    slots_limits(q, d, &l);
    return throttle_idle_count(&d->th, &l, now);
}

void slots_json(struct qmgr *q, const struct dest *d, struct buf *out, int64_t now)
{
    struct throttle_limits l;

    slots_limits(q, d, &l);
    buf_printf(out,
               ",\"state\":\"%s\",\"deliveries_allowed\":%u,\"max_connections\":%u,"
               "\"idle_connections\":%u,\"reused\":%llu,\"next_connection\":",
               slots_state(d, now), throttle_limit(&d->th, &l, d->h.consecutive > 0),
               l.max_connections, throttle_idle_count(&d->th, &l, now),
               (unsigned long long)d->th.reused);
    if (d->th.next_conn_us > now)
        buf_printf(out, "%.3f", (double)d->th.next_conn_us / 1e6);
    else
        buf_adds(out, "null");
}
