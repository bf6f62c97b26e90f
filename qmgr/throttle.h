/*
 * throttle - how many deliveries one destination may have in flight and
 * when it may get the next one (DESIGN section 4.6: QK SMTP Server's
 * maximum connections, maximum continuous connections and delay for
 * continuing), as plain functions over plain data. dispatch.c asks
 * before every delivery and tells after every result; the global bound
 * (max_deliveries) stays in dispatch.c.
 *
 * Per destination qmgr keeps a struct throttle (zeroed = new):
 *   window     the concurrency the destination has earned (slow start,
 *              as Postfix's destination concurrency): a new destination
 *              may have THR_START_WINDOW deliveries in flight, one more
 *              for each delivery that reached it, up to max_connections;
 *              a failed delivery (no host reachable) sets it back to one.
 *              So a dead MX never holds more than THR_START_WINDOW
 *              delivery slots, and then one.
 *   idle       the connections deliver or relay keep idle for the
 *              destination (a result with conn_kept), each with the time
 *              their idle timer will close it. The engine uses an idle
 *              connection for the next delivery with the same key, most
 *              recently parked first; this model does the same.
 *   next_conn  no new connection before this time: connection_delay
 *              after the last connection ended (closed after its batch of
 *              messages_per_connection, after an error, or by the idle
 *              timer).
 *
 * throttle_check(t, lim, active, failing, now, &when): may one more
 * delivery start now?
 *   THR_REUSE  yes, and it goes over an idle connection: no new
 *              connection, so connection_delay does not apply;
 *   THR_NEW    yes, on a new connection;
 *   THR_FULL   no: `active` deliveries fill the window (one when
 *              `failing`, max_connections at most); ask again when one
 *              of them ends;
 *   THR_WAIT   no: connection_delay; ask again at *when.
 * (The delay after a failure is not here: a group that failed waits for
 * its own retry delay in the schedule, and a destination that is down is
 * dispatch.c's business.)
 * An idle connection counts as usable until shortly before its timer
 * closes it (THR_IDLE_MARGIN_US or a quarter of the idle time, the
 * smaller), since the engine's timer started before qmgr heard of it;
 * after that it counts as ending at its timer (connection_delay runs from
 * then), but it is still counted (nidle) until that moment: the global
 * budget must not count it gone while it may still be open.
 *
 * throttle_started(t, lim, now) after a delivery was handed out: it
 * takes the idle connection throttle_check counted on (returns 1), if
 * any. throttle_done(t, lim, kept, used_conn, reached, now) after its
 * result: kept = the engine left the connection idle; used_conn = the
 * delivery had a connection (new or reused) that has now ended when not
 * kept; reached = some server took part of it or answered it (the
 * window grows). throttle_failed(t) after a failed delivery (the
 * destination could not be reached): one probe at a time.
 * throttle_lost(t, lim, now) when deliver or relay went away: their idle
 * connections are gone.
 *
 * Times are microseconds of the wall clock (now_us), as everywhere in
 * qmgr. No allocation: at most THR_IDLE_MAX idle connections are
 * tracked; beyond that the oldest counts as closed.
 */
#ifndef QMGR_THROTTLE_H
#define QMGR_THROTTLE_H

#include <stdint.h>

#define THR_START_WINDOW 2
#define THR_IDLE_MAX 32
#define THR_IDLE_MARGIN_US 1000000

/* The rules in force for the destination (etc/domains over main.cf). */
struct throttle_limits {
    unsigned max_connections;    /* >= 1 */
    int64_t connection_delay_us; /* >= 0 */
    int64_t idle_timeout_us;     /* connection_idle_timeout; 0: no reuse */
};

struct throttle {
    unsigned window;                  /* 0: THR_START_WINDOW */
    unsigned nidle;                   /* idle connections, usable or closing */
    int64_t idle_until[THR_IDLE_MAX]; /* their timers, oldest first */
    int64_t next_conn_us;             /* 0: any time */
    int64_t last_close_us;            /* 0: none yet */
    uint64_t reused;                  /* deliveries handed to an idle connection */
};

enum thr_verdict { THR_REUSE, THR_NEW, THR_FULL, THR_WAIT };

enum thr_verdict throttle_check(struct throttle *t, const struct throttle_limits *lim,
                                unsigned active, int failing, int64_t now, int64_t *when);
int throttle_started(struct throttle *t, const struct throttle_limits *lim, int64_t now);
void throttle_done(struct throttle *t, const struct throttle_limits *lim, int kept, int used_conn,
                   int reached, int64_t now);
void throttle_failed(struct throttle *t);
/* The process that kept the idle connections went away: they are closed now. */
void throttle_lost(struct throttle *t, const struct throttle_limits *lim, int64_t now);

/*
 * The global budget (max_deliveries counts deliveries in flight and idle
 * connections together). throttle_room_new: a new connection fits.
 * throttle_keep: the delivery about to start may leave its connection
 * idle afterwards: its destination has more ready mail (nready, the
 * group being started excluded) than the deliveries it has in flight
 * (dest_active, this one excluded), so the next one will take the
 * connection; or the budget has room for this delivery and an idle
 * connection besides (nactive: in flight, this one excluded).
 */
int throttle_room_new(unsigned nactive, unsigned idle_total, unsigned max_deliveries);
int throttle_keep(unsigned nready, unsigned dest_active, unsigned nactive, unsigned idle_total,
                  unsigned max_deliveries);

/* The deliveries the destination may have in flight now. */
unsigned throttle_limit(const struct throttle *t, const struct throttle_limits *lim, int failing);
/* When the first idle connection is closed by its timer, leaving the
 * budget (INT64_MAX: none). */
int64_t throttle_idle_next(const struct throttle *t, const struct throttle_limits *lim);
/* Idle connections still usable at now, without dropping the others. */
unsigned throttle_idle_count(const struct throttle *t, const struct throttle_limits *lim,
                             int64_t now);
/* Idle connections still usable at now (those past their timer are
 * dropped; t->nidle keeps counting the closing ones). */
unsigned throttle_idle(struct throttle *t, const struct throttle_limits *lim, int64_t now);
/* "reuse" "new" "full" "wait" */
const char *throttle_verdict_name(enum thr_verdict v);

#endif
