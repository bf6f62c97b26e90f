/*
 * slots - the glue between dispatch.c and throttle.h: the limits in
 * force for a destination (etc/domains over main.cf), destinations that
 * wait for connection_delay (a list and one timer at the earliest), and
 * what a delivery's start and result mean for its destination's
 * throttle. Contract in qmgr.h (slots_*).
 */
#include <event2/event.h>

#include "config.h"
#include "delivery.h"
#include "ipc.h"
#include "log.h"
#include "qmgr.h"
#include "strmap.h"
#include "throttle.h"

void slots_limits(struct qmgr *q, const struct dest *d, struct throttle_limits *l)
{
    const struct qpolicy *pol = policy_for(q, d);

    l->max_connections = pol->max_connections > 0 ? (unsigned)pol->max_connections : 1;
    l->connection_delay_us = pol->connection_delay * 1000000LL;
    l->idle_timeout_us = cfg_num(q->c->cfg, P_connection_idle_timeout) * 1000000LL;
    /* with one message per connection nothing is ever kept idle */
    if (pol->messages_per_connection <= 1)
        l->idle_timeout_us = 0;
}

static void arm(struct qmgr *q, int64_t now)
{
    struct dest *d;
    int64_t first = INT64_MAX, dt;
    struct timeval tv;

    TAILQ_FOREACH(d, &q->waiting, wlink)
    if (d->wait_us < first)
        first = d->wait_us;
    if (first == INT64_MAX) {
        evtimer_del(q->wait_ev);
        return;
    }
    dt = first > now ? first - now : 0;
    tv.tv_sec = (time_t)(dt / 1000000);
    tv.tv_usec = (suseconds_t)(dt % 1000000);
    evtimer_add(q->wait_ev, &tv);
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
    arm(q, now);
}

void slots_init(struct qmgr *q)
{
    TAILQ_INIT(&q->waiting);
    q->wait_ev = evtimer_new(q->base, on_wait, q);
    if (q->wait_ev == NULL)
        log_panic("qmgr: cannot allocate a timer");
}

enum thr_verdict slots_check(struct qmgr *q, struct dest *d, int64_t now)
{
    struct throttle_limits l;
    int64_t when = 0;
    enum thr_verdict v;

    slots_limits(q, d, &l);
    v = throttle_check(&d->th, &l, d->active, d->h.consecutive > 0, now, &when);
    if (v != THR_WAIT)
        return v;
    if (!d->in_wait || when < d->wait_us) {
        if (!d->in_wait)
            TAILQ_INSERT_TAIL(&q->waiting, d, wlink);
        d->in_wait = 1;
        d->wait_us = when;
        log_debug("%s: next connection in %.1fs (connection_delay)", d->name,
                  (double)(when - now) / 1e6);
        arm(q, now);
    }
    return v;
}

int slots_started(struct qmgr *q, struct dest *d, int64_t now)
{
    struct throttle_limits l;

    slots_limits(q, d, &l);
    return throttle_started(&d->th, &l, now);
}

void slots_done(struct qmgr *q, struct dest *d, const struct dlv_res *res, int reached, int64_t now)
{
    struct throttle_limits l;
    int kept = res && res->conn_kept;
    int used = res == NULL || res->connections > 0 || res->reused;

    slots_limits(q, d, &l);
    throttle_done(&d->th, &l, kept, used, reached, now);
}

void slots_failed(struct qmgr *q, struct dest *d)
{
    throttle_failed(&d->th);
}

void slots_lost(struct qmgr *q)
{
    size_t pos = 0;
    const char *key;
    void *val;
    int64_t now = now_us();

    while (strmap_next(q->dests, &pos, &key, &val)) {
        struct dest *d = val;
        struct throttle_limits l;
        if (d->th.nidle == 0)
            continue;
        slots_limits(q, d, &l);
        throttle_lost(&d->th, &l, now);
    }
}
