/*
 * qmgr - the queue manager's shared state (DESIGN sections 3 and 4).
 *
 * Model:
 *   msg    one queue file (queue/ID or hold/ID): the envelope fields a
 *          delivery needs and every recipient's state (qrec.h). A new
 *          message lives in memory only; it gets a BDB record the first
 *          time something other than success happens to it.
 *   group  the recipients of one message at one domain: the unit of
 *          scheduling and of delivery (one SMTP transaction).
 *   dest   a destination (the domain for direct delivery): concurrency
 *          and connection reuse (throttle.h: the window up to
 *          max_connections, idle connections, connection_delay), health
 *          (hstate), and the groups that are due and wait for a delivery
 *          slot.
 *
 * A group is in exactly one place: G_IDLE (nothing to do, or held),
 * G_WAIT (in the schedule until its next try), G_READY (due, in its
 * dest's ready list), G_ACTIVE (a delivery is in flight), G_DONE (all its
 * recipients are final).
 *
 * Modules: queue.c (messages, the spool, moves, the start-up scan),
 * dispatch.c (schedule, deliveries, results, logs), slots.c (throttles:
 * which destination may get a delivery now), policy.c (the routing
 * configuration: domains map, gateways, secrets, sender map), store.c
 * (batched BDB writes through qstate.c), recycle.c (delivered files to
 * free/), metrics.c and metrics_http.c (counters, GET /metrics), ctl.c
 * and policy_ctl.c (smtpctl commands); pure helpers in prom.c, route.c (the routing decision),
 * sched.c, retry.c, decide.c, group.c, qrec.c, strmap.c, throttle.c.
 */
#ifndef QMGR_QMGR_H
#define QMGR_QMGR_H

#include <stdint.h>
#include <sys/queue.h>

#include "mail/child.h"
#include "decide.h"
#include "metrics.h"
#include "mail/qfile.h"
#include "qrec.h"
#include "sched.h"
#include "throttle.h"
#include "tlsrpt.h"
#include "base/util.h"

struct event;
struct ipc_chan;
struct qstate;
struct strmap;

enum gstate { G_IDLE, G_WAIT, G_READY, G_ACTIVE, G_DONE };
enum qwhere { Q_QUEUE, Q_HOLD };

struct dest;
struct msg;
struct routing;

struct group {
    struct sched_item si; /* first member: sched items map back to groups */
    TAILQ_ENTRY(group) rlink;
    struct msg *m;
    struct dest *d;
    uint8_t st; /* enum gstate */
};

struct msg {
    char id[QFILE_ID_SIZE];
    uint8_t where;   /* enum qwhere */
    uint8_t in_db;   /* a BDB record exists (or is about to) */
    uint8_t removed; /* forgotten; freed when no delivery refers to it */
    uint8_t ret, body, smtputf8;
    uint8_t dkim; /* may be DKIM-signed: submitted here, not relayed (dkim.c) */
    char *sender, *envid;
    char notice[QREC_ID_SIZE];     /* a notice being written (notice.c), or "" */
    uint8_t notice_kind;           /* what the file is, when qmgr wrote it (enum qfile_notice) */
    char notice_of[QFILE_ID_SIZE]; /* the message a notice is about */
    int64_t arrival_us;
    int64_t requeued_us; /* smtpctl requeue put it back (the lifetime counts from here), or 0 */
    uint64_t size, msg_offset;
    struct rcpt *rcpt;
    size_t nrcpt;
    struct group *groups;
    size_t ngroups;
    unsigned active;   /* deliveries in flight */
    size_t dirty_pos;  /* index in the dirty list + 1, 0 if clean */
    size_t notice_pos; /* index in q->notices + 1, 0 if no notice is due (notice.c) */
};

/* Where max_queue_lifetime counts from: arrival, or the last requeue. */
static inline int64_t msg_life_start(const struct msg *m)
{
    return m->requeued_us ? m->requeued_us : m->arrival_us;
}

struct dest {
    char *name;
    TAILQ_HEAD(, group) ready;
    size_t nready;
    size_t ngroups; /* groups of live messages that belong here and are not done */
    TAILQ_ENTRY(dest) rlink;
    uint8_t in_run;
    uint8_t in_db;
    size_t dirty_pos; /* index in the dirty list + 1, 0 if clean */
    unsigned active;
    unsigned active_unproven; /* of those, started while it was unproven (slots.c) */
    int64_t last_ok_us;       /* its last delivery that sent a recipient; 0: none yet */
    struct hstate h;
    uint64_t sent, deferred, failed;
    struct throttle th;      /* slots.c */
    TAILQ_ENTRY(dest) wlink; /* in q->waiting: connection_delay */
    TAILQ_ENTRY(dest) ilink; /* in q->idlers: has idle connections */
    TAILQ_ENTRY(dest) blink; /* in q->blocked: waits for room under max_deliveries */
    uint8_t in_wait, in_idlers, in_blocked;
    int64_t wait_us;
};

struct delivery {
    TAILQ_ENTRY(delivery) link;
    uint32_t id;
    struct group *g;
    struct ipc_chan *ch;
    int64_t start_us;
    uint32_t *ridx; /* recipients in this delivery */
    size_t n;
    unsigned attempt; /* within its phase */
    uint8_t phase;    /* enum dlv_phase */
    char *via;        /* relay: gateway names in try order, comma-separated;
                         static route: the route; else NULL (policy.c) */
    int unproven;     /* counted in q->nactive_unproven */
    char *gateway;    /* relay: the gateway it starts at, counted in its gw_stat.active */
    int met_gw;       /* relay: the gateway label of its result (metrics_gateway), else -1 */
};

struct qstats {
    uint64_t received, adopted, loaded;
    uint64_t deliveries, rcpt_sent, rcpt_deferred, rcpt_failed, rcpt_expired;
    uint64_t msg_done, msg_bounced, msg_bad, msg_removed, msg_corrupt;
    uint64_t rescheduled, db_commits, db_writes, db_errors;
    uint64_t notices, notices_failed, postmaster_notices, postmaster_suppressed;
};

struct qmgr {
    struct child *c;
    struct event_base *base;
    struct strmap *msgs;   /* queue ID -> msg */
    struct strmap *dests;  /* name -> dest */
    struct tlsrpt *tlsrpt; /* TLS session outcomes by policy (show tls) */
    struct sched sched;
    struct event *timer;
    struct event *kick_ev;
    int kicked;
    TAILQ_HEAD(, dest) run;     /* dests with ready groups */
    TAILQ_HEAD(, dest) waiting; /* dests held back by connection_delay (slots.c) */
    TAILQ_HEAD(, dest) idlers;  /* dests with idle connections (slots.c) */
    TAILQ_HEAD(, dest) blocked; /* dests that need a new connection and wait for room */
    struct event *wait_ev, *idle_ev;
    unsigned idle_total; /* idle connections of all dests (slots.c) */
    TAILQ_HEAD(, delivery) dlv;
    unsigned nactive;
    unsigned nactive_unproven; /* deliveries to destinations with no recent success */
    uint32_t next_id;
    struct ipc_chan *deliver, *relay, *local, *smtpd;
    struct qstate *db;
    struct msg **dirty;
    size_t ndirty, dirty_cap;
    char **dels; /* message records to delete */
    size_t ndels, dels_cap;
    struct dest **ddirty;
    size_t nddirty, ddirty_cap;
    struct event *flush_ev;
    int flush_pending;
    struct event *sync_ev;
    int synced;
    int paused;
    int stopping;
    struct qpolicy pol;
    struct routing *rt; /* policy.h: domains map, gateways, secrets, sender map */
    long long max_deliveries, per_conn;
    int mta_sts; /* main.cf's mta_sts: direct deliveries honour MTA-STS (dlv_req.mta_sts) */
    long long recycle_max;        /* queue_file_recycle */
    char (*freed)[QFILE_ID_SIZE]; /* names in free/ not yet sent to smtpd (recycle.c) */
    size_t nfreed, freed_cap;
    struct event *free_ev;
    struct qfile_idgen idgen; /* IDs of the notices qmgr writes (node 1) */
    struct msg **notices;     /* messages with notices to write (notice.c) */
    size_t nnotices, notices_cap;
    struct event *notice_ev, *notice_retry_ev;
    int notice_retry;       /* a notice could not be written: the timer retries */
    struct strmap *pm_last; /* domain -> last postmaster notice about it (seconds) */
    int64_t started_us, start_ms;
    struct qstats st;
    struct qmetrics met; /* metrics.h */
    struct qdkim *dk;    /* dkim.c */
};

/* dkim.c: which messages may be signed, the signer's key status, route's line. */
struct qfile_env;
void qdkim_init(struct qmgr *q);
void qdkim_reload(struct qmgr *q);
void qdkim_free(struct qmgr *q);
void qdkim_peer(struct qmgr *q, int fd);
int qdkim_submitted(const struct qmgr *q, const struct qfile_env *env);
int qdkim_active(const struct qmgr *q); /* the signer holds at least one map entry */
void qdkim_route(struct qmgr *q, const char *sender, int local_dest, int json, struct buf *out);

/* queue.c */
void queue_start(struct qmgr *q);
/* A message smtpd just put into queue/. */
void queue_new(struct qmgr *q, const char *id);
struct msg *msg_find(struct qmgr *q, const char *id);
/* The file's path for its current place ("queue/ID"). */
const char *msg_path(const struct msg *m, char *buf, size_t len);
/* All recipients final: unlink, or move to bounced/ or bad/. */
void msg_finish(struct qmgr *q, struct msg *m);
/* Forget a message (its file was removed or moved away by us). */
void msg_forget(struct qmgr *q, struct msg *m);
/* A delivery of m came back (frees a forgotten message at the last one). */
void msg_release_ref(struct msg *m);
/* 1 when every recipient is sent or failed. */
int msg_final(const struct msg *m);
int msg_hold(struct qmgr *q, struct msg *m);
int msg_release(struct qmgr *q, struct msg *m);
int msg_remove(struct qmgr *q, struct msg *m);
/* Move a file from queue/ to bad/ (rename; never deleted). */
int spool_to_bad(const char *from_dir, const char *id, const char *why);
struct dest *dest_get(struct qmgr *q, const char *name);

/* recycle.c: move a delivered file (at path) to free/ for smtpd to reuse;
 * 0, or -1 when it must be deleted instead. */
int recycle_file(struct qmgr *q, const struct msg *m, const char *path);
/* Empty free/ (at start, before anything is recycled). */
void recycle_start(struct qmgr *q);
void recycle_close(struct qmgr *q);

/* policy.c: the rules in force for d (etc/domains over main.cf). */
struct qpolicy *policy_for(struct qmgr *q, const struct dest *d);

/* dispatch.c */
void dispatch_init(struct qmgr *q);
/* Schedule a group of a live message at its recipients' next try. */
void group_schedule(struct qmgr *q, struct group *g);
/* Take a group out of the schedule / ready list (not if active). */
void group_unschedule(struct qmgr *q, struct group *g);
/* Run the dispatcher soon (after the current callbacks). */
void qmgr_kick(struct qmgr *q);
/* A result from ch; -1: ch sent what it may not (close it). */
int dispatch_result(struct qmgr *q, struct ipc_chan *ch, const struct ipc_msg *im);
/* A delivery process went away: its deliveries are rescheduled. */
void dispatch_peer_lost(struct qmgr *q, struct ipc_chan *ch);
int64_t group_next_try(const struct group *g);
void dest_clear_down(struct qmgr *q, struct dest *d);
/* A destination's connection_delay is over: serve its ready groups. */
void dispatch_wake(struct qmgr *q, struct dest *d);

/*
 * slots.c: throttle.h for qmgr's destinations, and the global budget:
 * deliveries in flight plus the connections deliver and relay keep idle
 * never exceed max_deliveries, so no server behind several destinations
 * (direct and relay alike) sees more connections than that.
 * slots_check: may d get one more delivery now (THR_REUSE / THR_NEW), or
 * not (THR_FULL: when one of its deliveries ends; THR_WAIT: d is put on
 * the waiting list and dispatch_wake is called when connection_delay is
 * over). A new connection that does not fit the budget is THR_FULL too:
 * d waits in the blocked list until a delivery ends or an idle
 * connection expires. slots_keep: may the delivery being started leave
 * its connection idle (its destination has more mail than deliveries in
 * flight, or the budget has room to spare). slots_started after a
 * delivery was handed out (1: over an idle connection); slots_done after
 * its result (res NULL: unusable; reached: a server answered);
 * slots_failed when d could not be reached; slots_lost when deliver or
 * relay went away (their idle connections with them). slots_limits: the
 * limits in force for d.
 */
struct dlv_res;
void slots_init(struct qmgr *q);
/* d sent a recipient within the last hour and is not failing now. */
int slots_proven(const struct dest *d, int64_t now);
/* How many deliveries destinations that are not proven may hold together. */
unsigned slots_unproven_cap(unsigned max_deliveries);
void slots_limits(struct qmgr *q, const struct dest *d, struct throttle_limits *l);
enum thr_verdict slots_check(struct qmgr *q, struct dest *d, int64_t now);
int slots_keep(struct qmgr *q, const struct dest *d);
int slots_started(struct qmgr *q, struct dest *d, int64_t now);
void slots_done(struct qmgr *q, struct dest *d, const struct dlv_res *res, int reached,
                int64_t now);
void slots_failed(struct qmgr *q, struct dest *d);
void slots_lost(struct qmgr *q);
/* For smtpctl show hosts: "ok", "failing" (one delivery at a time) or
 * "down"; the idle connections; and the JSON fields ,"state":..,"deliveries_allowed":..,
 * "max_connections":..,"idle_connections":..,"next_connection":..,
 * "reused":.. */
const char *slots_state(const struct dest *d, int64_t now);
unsigned slots_idle(struct qmgr *q, const struct dest *d, int64_t now);
void slots_json(struct qmgr *q, const struct dest *d, struct buf *out, int64_t now);

/* store.c */
void store_init(struct qmgr *q);
void store_mark(struct qmgr *q, struct msg *m);
void store_forget(struct qmgr *q, struct msg *m);
void store_mark_dest(struct qmgr *q, struct dest *d);
void store_flush(struct qmgr *q);
/* Write m's record now in a transaction of its own (h: its head; NULL:
 * m->notice only). 0, or -1 and *err; m is marked dirty again on error. */
int store_write_now(struct qmgr *q, struct msg *m, const struct qrec_head *h, char **err);
/* m leaves memory but its record stays (bounced/, bad/). */
void store_keep(struct qmgr *q, struct msg *m);
/* A record for id with no recipients: a file moved to bad/ that does not parse. */
void store_write_bad(struct qmgr *q, const char *id, const char *why);
/* Write / delete one record now, in a transaction of its own. */
int store_put(struct qmgr *q, const char *key, const struct ipc_w *w, char **err);
/* `pause delivery` kept in the state database (a host-tree key no
 * destination can have), synced, so that a restarted qmgr stays paused;
 * store_paused_since gives when it was paused (0: not paused). */
#define STORE_PAUSED_KEY "admin:delivery-paused"
int store_paused(struct qmgr *q, int paused, char **err);
int64_t store_paused_since(struct qmgr *q);
int store_del(struct qmgr *q, const char *id);
/* Read the record of id: malloc'd *val; 1 found, 0 not, -1 error. */
int store_get(struct qmgr *q, const char *id, void **val, size_t *len);
/* Encode m's record (its current head: m->notice and m->requeued_us). */
void msg_encode(struct ipc_w *w, const struct msg *m);
void store_close(struct qmgr *q);

/*
 * notice.c: delivery status notifications (docs/dsn.md). The notice_on_*
 * calls note, as the results come, what a recipient's sender asked to
 * hear of (QN_WANT_*); notice_mark queues the message, and the notices
 * are written soon after (all recipients that want one in the same loop
 * iteration share one notice) through the same fsync'd path as smtpd's
 * mail, before the original moves on. notice_wanted: a recipient of m
 * waits for a notice (m must not be finished before it is written).
 * notice_recover at start-up completes or forgets a notice that was
 * being written when qmgr stopped. notice_forget when m goes away.
 */
void notice_init(struct qmgr *q);
void notice_close(struct qmgr *q);
void notice_on_sent(struct qmgr *q, struct msg *m, struct rcpt *r, int dsn_passed);
void notice_on_failed(struct qmgr *q, struct msg *m, struct rcpt *r);
void notice_on_deferred(struct qmgr *q, struct msg *m, struct rcpt *r, long long delay_warning_s,
                        int64_t now);
int notice_wanted(const struct msg *m);
void notice_mark(struct qmgr *q, struct msg *m);
void notice_forget(struct qmgr *q, struct msg *m);
void notice_recover(struct qmgr *q, struct msg *m);
/* notice_recipient with @myhostname when it has no domain, or "" (off). */
const char *notice_postmaster(struct qmgr *q, char *buf, size_t len);

/*
 * folder.c: bounced/ and bad/ for smtpctl: show bounced, show bad,
 * requeue, and remove of their files; and bounce (fail live recipients
 * now and notify). folder_ctl returns POLICY_CTL_NOT_MINE for other
 * commands. msg_bounce: fail m's live recipients (at domain, when not
 * NULL) that are not in a delivery; the number failed, *busy those in
 * flight. folder_remove: delete bounced/ID or bad/ID and its record
 * (1), 0 when it is in neither.
 */
int folder_ctl(struct qmgr *q, int argc, char **argv, unsigned flags, struct buf *out);
size_t msg_bounce(struct qmgr *q, struct msg *m, const char *domain, size_t *busy);
int folder_remove(struct qmgr *q, const char *id);
/* queue.c: a file just put back into queue/ by requeue: load it with its
 * record and schedule it. */
struct msg *queue_requeued(struct qmgr *q, const char *id);

/* ctl.c */
int qmgr_ctl(struct child *c, int argc, char **argv, unsigned flags, struct buf *out);

#endif
