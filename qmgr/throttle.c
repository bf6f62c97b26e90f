/*
 * throttle - the per-destination concurrency window, the idle
 * connections deliver and relay keep, and connection_delay; see
 * throttle.h. Pure: no I/O, no clock of its own.
 */
#include "throttle.h"

#include <string.h>

static int64_t idle_margin(const struct throttle_limits *lim)
{
    int64_t m = lim->idle_timeout_us / 4;

    return m < THR_IDLE_MARGIN_US ? m : THR_IDLE_MARGIN_US;
}

/* A connection to the destination ended at `at`. */
static void closed_at(struct throttle *t, const struct throttle_limits *lim, int64_t at)
{
    int64_t next = at + (lim->connection_delay_us > 0 ? lim->connection_delay_us : 0);

    if (at > t->last_close_us)
        t->last_close_us = at;
    if (next > t->next_conn_us)
        t->next_conn_us = next;
}

static void drop_idle(struct throttle *t, unsigned i)
{
    memmove(&t->idle_until[i], &t->idle_until[i + 1],
            (t->nidle - i - 1) * sizeof(t->idle_until[0]));
    t->nidle--;
}

unsigned throttle_idle(struct throttle *t, const struct throttle_limits *lim, int64_t now)
{
    int64_t m = idle_margin(lim);
    unsigned i = 0, usable = 0;

    while (i < t->nidle) {
        int64_t until = t->idle_until[i];
        if (now >= until) {
            closed_at(t, lim, until); /* its timer has closed it */
            drop_idle(t, i);
            continue;
        }
        if (now >= until - m)
            closed_at(t, lim, until); /* closing: no use any more, but still open */
        else
            usable++;
        i++;
    }
    return usable;
}

int64_t throttle_idle_next(const struct throttle *t, const struct throttle_limits *lim)
{
    int64_t first = INT64_MAX;

    for (unsigned i = 0; i < t->nidle; i++)
        if (t->idle_until[i] < first)
            first = t->idle_until[i];
    return first;
}

unsigned throttle_idle_count(const struct throttle *t, const struct throttle_limits *lim,
                             int64_t now)
{
    int64_t m = idle_margin(lim);
    unsigned n = 0;

    for (unsigned i = 0; i < t->nidle; i++)
        n += now < t->idle_until[i] - m;
    return n;
}

unsigned throttle_limit(const struct throttle *t, const struct throttle_limits *lim, int failing)
{
    unsigned w = t->window ? t->window : THR_START_WINDOW;
    unsigned max = lim->max_connections ? lim->max_connections : 1;

    if (failing)
        return 1;
    return w < max ? w : max;
}

enum thr_verdict throttle_check(struct throttle *t, const struct throttle_limits *lim,
                                unsigned active, int failing, int64_t now, int64_t *when)
{
    unsigned idle = throttle_idle(t, lim, now);

    if (active >= throttle_limit(t, lim, failing))
        return THR_FULL;
    if (idle > 0)
        return THR_REUSE;
    if (now < t->next_conn_us) {
        *when = t->next_conn_us;
        return THR_WAIT;
    }
    return THR_NEW;
}

int throttle_started(struct throttle *t, const struct throttle_limits *lim, int64_t now)
{
    int64_t m = idle_margin(lim);

    if (throttle_idle(t, lim, now) == 0)
        return 0;
    /* the most recently parked usable one, as the engine takes it */
    for (unsigned i = t->nidle; i-- > 0;)
        if (now < t->idle_until[i] - m) {
            drop_idle(t, i);
            t->reused++;
            return 1;
        }
    return 0;
}

void throttle_done(struct throttle *t, const struct throttle_limits *lim, int kept, int used_conn,
                   int reached, int64_t now)
{
    if (kept && lim->idle_timeout_us > 0) {
        if (t->nidle == THR_IDLE_MAX) {
            closed_at(t, lim, now); /* forget the oldest: count it as closed */
            drop_idle(t, 0);
        }
        t->idle_until[t->nidle++] = now + lim->idle_timeout_us;
    } else if (used_conn) {
        closed_at(t, lim, now);
    }
    if (reached) {
        unsigned w = t->window ? t->window : THR_START_WINDOW;
        if (w < lim->max_connections)
            w++;
        t->window = w;
    }
}

void throttle_failed(struct throttle *t)
{
    t->window = 1;
}

void throttle_lost(struct throttle *t, const struct throttle_limits *lim, int64_t now)
{
    if (t->nidle == 0)
        return;
    t->nidle = 0;
    closed_at(t, lim, now);
}

int throttle_room_new(unsigned nactive, unsigned idle_total, unsigned max_deliveries)
{
    return nactive + idle_total < max_deliveries;
}

int throttle_keep(unsigned nready, unsigned dest_active, unsigned nactive, unsigned idle_total,
                  unsigned max_deliveries)
{
    if (nready > dest_active)
        return 1;
    return nactive + idle_total + 2 <= max_deliveries;
}

const char *throttle_verdict_name(enum thr_verdict v)
{
    switch (v) {
    case THR_REUSE:
        return "reuse";
    case THR_NEW:
        return "new";
    case THR_FULL:
        return "full";
    case THR_WAIT:
        return "wait";
    }
    return "?";
}
