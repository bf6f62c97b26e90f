/*
 * dispatch - qmgr's scheduler: groups wait in the schedule (sched.h)
 * until their next try, then in their destination's ready list until a
 * delivery slot is free (max_deliveries in all; per destination the
 * throttles of slots.c/throttle.h: a window up to max_connections, one
 * probe at a time to a destination that has been failing, and
 * connection_delay before a new connection); then one IMSG_DELIVERY goes
 * to deliver or relay with the open queue file. Destinations with ready
 * work are served round robin, so a destination with a long backlog does
 * not starve the others - except that a destination whose delivery just
 * left its connection idle is served first: its next message goes over
 * that connection (up to messages_per_connection), as QK's "continuous
 * connections" and Postfix's connection cache do.
 *
 * Before each delivery policy_plan (policy.h, over route.h) says what
 * the attempt is: direct, through the gateways, or none (the group then
 * fails here, without a delivery). Results come back per recipient;
 * policy_result turns each into sent, deferred (with the next try) or
 * failed, and this file counts the attempt, writes the log line, updates
 * the destination's health and schedules what is left. A destination
 * that could not be reached at all in the direct phase (every recipient
 * got a temporary dns or network error) gets one delivery at a time;
 * after destination_failure_limit such failures in a row it is down until
 * a retry delay has passed, and groups for the direct phase that become
 * due meanwhile are deferred without a connection, with its last error
 * (groups for the gateways still go: the gateways keep their own health,
 * policy_note_relay).
 *
 * Everything is driven by events: a new message, a timer at the earliest
 * next try, a result, a control command. There is no periodic scan.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "decide.h"
#include "mail/dlv_proto.h"
#include "base/ipc.h"
#include "base/log.h"
#include "mail/gateways.h"
#include "policy.h"
#include "mail/proto.h"
#include "qmgr.h"
#include "retry.h"
#include "route.h"

#define TIMER_MAX_S 60
#define REPLY_MAX 600

static char empty[1];

static int live(const struct rcpt *r)
{
    return r->state == RS_PENDING || r->state == RS_DEFERRED;
}

int64_t group_next_try(const struct group *g)
{
    const struct msg *m = g->m;
    size_t gi = (size_t)(g - m->groups);
    int64_t t = INT64_MAX;

    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].group == gi && live(&m->rcpt[i]) && m->rcpt[i].next_try_us < t)
            t = m->rcpt[i].next_try_us;
    return t;
}

/* The group's history for the routing decision: the most tried of its
 * live recipients. */
static struct qhist group_hist(const struct group *g)
{
    const struct msg *m = g->m;
    size_t gi = (size_t)(g - m->groups);
    struct qhist h = {msg_life_start(m), 0, 0, 0, 0, 0};

    for (size_t i = 0; i < m->nrcpt; i++) {
        const struct rcpt *r = &m->rcpt[i];
        if (r->group != gi || !live(r))
            continue;
        if (r->direct_attempts > h.direct_attempts)
            h.direct_attempts = r->direct_attempts;
        if (r->relay_attempts > h.relay_attempts)
            h.relay_attempts = r->relay_attempts;
        if (r->first_fail_us && (h.first_fail_us == 0 || r->first_fail_us < h.first_fail_us))
            h.first_fail_us = r->first_fail_us;
        if (r->last_class) {
            h.last_class = r->last_class;
            h.last_step = r->last_step;
        }
    }
    return h;
}

static void run_add(struct qmgr *q, struct dest *d)
{
    if (!d->in_run && d->nready > 0) {
        TAILQ_INSERT_TAIL(&q->run, d, rlink);
        d->in_run = 1;
    }
}

static void make_ready(struct qmgr *q, struct group *g)
{
    g->st = G_READY;
    TAILQ_INSERT_TAIL(&g->d->ready, g, rlink);
    g->d->nready++;
    run_add(q, g->d);
}

void group_unschedule(struct qmgr *q, struct group *g)
{
    if (g->st == G_WAIT) {
        sched_remove(&q->sched, &g->si);
        g->st = G_IDLE;
    } else if (g->st == G_READY) {
        TAILQ_REMOVE(&g->d->ready, g, rlink);
        g->d->nready--;
        g->st = G_IDLE;
    }
}

/* All of g's recipients are final: its destination no longer counts it
 * as queued (show hosts), though the message may stay for another one. */
static void group_done(struct group *g)
{
    if (g->st != G_DONE && g->d->ngroups > 0)
        g->d->ngroups--;
    g->st = G_DONE;
}

void group_schedule(struct qmgr *q, struct group *g)
{
    int64_t t;

    if (g->st == G_ACTIVE)
        return;
    group_unschedule(q, g);
    if (g->m->removed || g->m->where != Q_QUEUE) {
        if (g->st != G_DONE)
            g->st = G_IDLE;
        return;
    }
    t = group_next_try(g);
    if (t == INT64_MAX) {
        group_done(g);
        return;
    }
    if (g->st == G_DONE)
        g->d->ngroups++; /* not done after all (a recipient was put back) */
    sched_push(&q->sched, &g->si, t);
    g->st = G_WAIT;
    qmgr_kick(q);
}

/* ---- log lines ---- */

static void fmt_reply(char *out, size_t len, unsigned code, const char *dsn, const char *text)
{
    char c[8];

    snprintf(c, sizeof(c), "%u", code);
    if (code == 0 || strncmp(text, c, strlen(c)) == 0)
        snprintf(out, len, "%s", text);
    else if (dsn[0] && strncmp(text, dsn, strlen(dsn)) != 0)
        snprintf(out, len, "%u %s %s", code, dsn, text);
    else
        snprintf(out, len, "%u %s", code, text);
}

/* "smtp/rcpt: 451 4.3.0 later" or "dns: ..." */
static void fmt_reason(char *out, size_t len, int cls, int step, const char *reply)
{
    const char *cn = dlv_class_name((enum dlv_class)cls);
    const char *sn = dlv_step_name((enum dlv_step)step);

    if (step == DLV_STEP_NONE || strcmp(cn, sn) == 0)
        snprintf(out, len, "%s: %s", cn, reply);
    else
        snprintf(out, len, "%s/%s: %s", cn, sn, reply);
}

static double delay_s(const struct msg *m, int64_t now)
{
    return now > m->arrival_us ? (double)(now - m->arrival_us) / 1e6 : 0.0;
}

/* tag: ", phase=relay, gateway=NAME" and the like (policy_log_tag), or "". */
static void log_rcpt(const struct msg *m, const struct rcpt *r, const char *relay, const char *tag,
                     int64_t now, const char *dsn, const char *status, const char *reason)
{
    log_info("%s: to=<%s>, relay=%s%s, delay=%.2f, tries=%u, dsn=%s, status=%s (%s)", m->id,
             r->addr, relay && relay[0] ? relay : "none", tag ? tag : "", delay_s(m, now),
             (unsigned)(r->direct_attempts + r->relay_attempts), dsn, status, reason);
}

/* ---- outcomes ---- */

static void set_error(struct rcpt *r, int cls, int step, unsigned code, const char *reply,
                      int64_t now)
{
    free(r->last_text);
    r->last_text = qrec_text(reply);
    r->last_class = (uint8_t)cls;
    r->last_step = (uint8_t)step;
    r->last_code = (uint16_t)code;
    if (r->first_fail_us == 0)
        r->first_fail_us = now;
}

/* What one attempt did for one recipient, as apply_result() records it. */
struct rcpt_attempt {
    int phase;         /* enum dlv_phase of the attempt */
    int status;        /* enum dlv_status */
    int cls, step;     /* enum dlv_class, enum dlv_step of an error */
    unsigned code;     /* the SMTP reply code, 0: none */
    const char *dsn;   /* the enhanced status code, "" when none came */
    const char *reply; /* what the server (or deliver) said */
    const char *relay; /* the host that answered, or NULL */
    const char *tag;   /* the phase and gateway for the log (policy_log_tag) */
    int gw;            /* the relay phase's gateway label (metrics_gateway), else -1 */
    int dsn_passed;    /* the server offers DSN: the sender's NOTIFY went with the message */
    int64_t now;
};

static void count_attempt(struct rcpt *r, int phase)
{
    if (phase == DLV_PHASE_RELAY) {
        if (r->relay_attempts < UINT16_MAX)
            r->relay_attempts++;
    } else if (r->direct_attempts < UINT16_MAX) {
        r->direct_attempts++;
    }
}

/* "2.0.0", "4.0.0" or "5.0.0" for a result that came without one. */
static const char *dsn_or_default(const struct rcpt_attempt *a, char *buf, size_t len)
{
    if (a->dsn[0])
        return a->dsn;
    snprintf(buf, len, "%c.0.0", a->status == DLV_OK ? '2' : a->status == DLV_TEMP ? '4' : '5');
    return buf;
}

/* The log line of a recipient that failed: why no retry, and the error. */
static void log_failed(struct qmgr *q, const struct msg *m, const struct rcpt *r,
                       const struct rcpt_attempt *a, const char *dsn, const struct qoutcome *oc,
                       const char *reason)
{
    char t[REPLY_MAX + 128];

    if (oc->expired)
        q->st.rcpt_expired++;
    else
        q->st.rcpt_failed++;
    if (oc->why == NULL && !oc->expired) {
        log_rcpt(m, r, a->relay, a->tag, a->now, dsn, "failed", reason);
        return;
    }
    snprintf(t, sizeof(t), "%s; last error: %s", oc->why ? oc->why : "expired", reason);
    log_rcpt(m, r, a->relay, a->tag, a->now, dsn, oc->expired ? "expired" : "failed", t);
}

/*
 * A local outage (dlv_blame: dnsd or a delivery process restarting, the
 * queue file unreadable): the recipient waits LOCAL_RETRY_US and is tried
 * again, with no attempt counted, no first failure time set and nothing
 * said against the destination. Only max_queue_lifetime still applies
 * (the caller takes the normal path once the message is that old), so a
 * local problem that never ends does not keep mail forever.
 */
#define LOCAL_RETRY_US (5 * 1000000LL)

static int local_outage(struct qmgr *q, struct msg *m, struct rcpt *r, const struct rcpt_attempt *a)
{
    const struct qpolicy *pol = policy_for(q, m->groups[r->group].d);
    char reason[REPLY_MAX + 64];

    if (dlv_blame((unsigned)a->status, (unsigned)a->cls) != DLV_BLAME_LOCAL)
        return 0;
    if (pol->max_queue_lifetime > 0 &&
        a->now - msg_life_start(m) >= pol->max_queue_lifetime * 1000000LL)
        return 0;
    r->state = RS_DEFERRED;
    r->next_try_us = a->now + LOCAL_RETRY_US;
    r->last_try_us = a->now;
    free(r->last_text);
    r->last_text = qrec_text(a->reply);
    r->last_class = (uint8_t)a->cls;
    r->last_step = (uint8_t)a->step;
    r->last_code = 0;
    q->st.rcpt_deferred++;
    metrics_rcpt(q, MET_DEFERRED, a->phase, a->gw);
    snprintf(reason, sizeof(reason), "local: %s; not counted as an attempt, again in %llds",
             a->reply, (long long)(LOCAL_RETRY_US / 1000000));
    log_rcpt(m, r, a->relay, a->tag, a->now, "4.3.0", "deferred", reason);
    notice_on_deferred(q, m, r, pol->delay_warning_time, a->now);
    return 1;
}

/* After a timeout at the final dot: six retry delays, at least 30 min. */
static int64_t dot_backoff_us(const struct qpolicy *pol)
{
    long long s = pol->retry_delay * 6;

    return (s < 1800 ? 1800 : s) * 1000000LL;
}

/* Recipient i's result: count the attempt (in its phase), decide, log. */
static void apply_result(struct qmgr *q, struct msg *m, size_t i, const struct rcpt_attempt *a)
{
    struct rcpt *r = &m->rcpt[i];
    struct dest *d = m->groups[r->group].d;
    struct qhist h;
    struct qoutcome oc;
    char reason[REPLY_MAX + 64], dbuf[16];
    const char *dsn = dsn_or_default(a, dbuf, sizeof(dbuf));

    if (local_outage(q, m, r, a))
        return;
    count_attempt(r, a->phase);
    h = (struct qhist){.arrival_us = msg_life_start(m),
                       .first_fail_us = r->first_fail_us,
                       .direct_attempts = r->direct_attempts,
                       .relay_attempts = r->relay_attempts,
                       .last_class = a->cls,
                       .last_step = a->step};
    oc = policy_result(q, m, d, &h, a->phase, a->status, a->now, (uint32_t)random());
    r->state = (uint8_t)oc.state;
    r->last_try_us = a->now;
    free(r->status);
    r->status = xstrdup(oc.expired ? "4.4.7" : dsn);
    free(r->remote);
    r->remote = a->relay && a->relay[0] ? qrec_text(a->relay) : NULL;
    if (a->status == DLV_OK) {
        q->st.rcpt_sent++;
        d->sent++;
        metrics_rcpt(q, MET_SENT, a->phase, a->gw);
        metrics_sent(q, m, a->now);
        log_rcpt(m, r, a->relay, a->tag, a->now, dsn, "sent", a->reply);
        notice_on_sent(q, m, r, a->dsn_passed);
        return;
    }
    set_error(r, a->cls, a->step, a->code, a->reply, a->now);
    fmt_reason(reason, sizeof(reason), a->cls, a->step, a->reply);
    if (oc.state == RS_DEFERRED && a->step == DLV_STEP_DOT && a->cls == DLV_CLASS_NETWORK &&
        a->reply && strstr(a->reply, "timeout")) {
        /* No answer to the final dot in time: the host may well have the
         * message (RFC 1047). Try it again much later, not at the next
         * retry. (A connection the host closed is a refusal, retried as
         * usual.) */
        int64_t later = a->now + dot_backoff_us(policy_for(q, d));
        if (oc.next_try_us < later)
            oc.next_try_us = later;
        size_t n = strlen(reason);
        snprintf(reason + n, sizeof(reason) - n,
                 "; no reply to the final dot: the host may have it already, next try in %llds "
                 "(RFC 1047)",
                 (long long)((oc.next_try_us - a->now) / 1000000));
    }
    if (oc.state == RS_DEFERRED) {
        r->next_try_us = oc.next_try_us;
        q->st.rcpt_deferred++;
        d->deferred++;
        metrics_rcpt(q, MET_DEFERRED, a->phase, a->gw);
        log_rcpt(m, r, a->relay, a->tag, a->now, dsn, "deferred", reason);
        notice_on_deferred(q, m, r, policy_for(q, d)->delay_warning_time, a->now);
        return;
    }
    d->failed++;
    metrics_rcpt(q, MET_BOUNCED, a->phase, a->gw);
    log_failed(q, m, r, a, dsn, &oc, reason);
    notice_on_failed(q, m, r);
}

/* After results changed a message: finish it, or save and reschedule. */
static void settle(struct qmgr *q, struct group *g)
{
    struct msg *m = g->m;

    if (notice_wanted(m))
        notice_mark(q, m); /* notice.c finishes m after its notice */
    if (msg_final(m)) {
        if (m->notice_pos)
            store_mark(q, m);
        else
            msg_finish(q, m);
        return;
    }
    store_mark(q, m);
    group_schedule(q, g);
}

/* Defer every live recipient of g without a delivery (local problem or a
 * destination that is down), as an attempt of the given phase. */
static void defer_group(struct qmgr *q, struct group *g, int phase, int cls, int step,
                        const char *text, int64_t now)
{
    struct msg *m = g->m;
    size_t gi = (size_t)(g - m->groups);
    const struct rcpt_attempt a = {
        .phase = phase,
        .status = DLV_TEMP,
        .cls = cls,
        .step = step,
        .dsn = "",
        .reply = text,
        .tag = phase == DLV_PHASE_RELAY ? ", phase=relay" : "",
        .gw = phase == DLV_PHASE_RELAY ? metrics_gateway(q, NULL) : -1,
        .now = now,
    };

    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].group == gi && live(&m->rcpt[i]))
            apply_result(q, m, i, &a);
    settle(q, g);
}

/* Fail every live recipient of g without a delivery: plan says there is
 * no attempt left (or the mail expired). */
static void fail_group(struct qmgr *q, struct group *g, const struct route_plan *plan, int64_t now)
{
    struct msg *m = g->m;
    size_t gi = (size_t)(g - m->groups);
    char t[REPLY_MAX + 128];

    for (size_t i = 0; i < m->nrcpt; i++) {
        struct rcpt *r = &m->rcpt[i];
        if (r->group != gi || !live(r))
            continue;
        r->state = RS_FAILED;
        if (plan->expired || r->status == NULL) {
            free(r->status);
            r->status = xstrdup(plan->expired ? "4.4.7" : "5.0.0");
        }
        g->d->failed++;
        metrics_rcpt(q, MET_BOUNCED, r->relay_attempts ? DLV_PHASE_RELAY : DLV_PHASE_DIRECT,
                     r->relay_attempts ? metrics_gateway(q, NULL) : -1);
        if (r->last_text) {
            char reason[REPLY_MAX + 64];
            fmt_reason(reason, sizeof(reason), r->last_class, r->last_step, r->last_text);
            snprintf(t, sizeof(t), "%s; last error: %s", plan->why, reason);
        } else {
            snprintf(t, sizeof(t), "%s", plan->why);
        }
        if (plan->expired)
            q->st.rcpt_expired++;
        else
            q->st.rcpt_failed++;
        log_rcpt(m, r, NULL, "", now, r->status, plan->expired ? "expired" : "failed", t);
        notice_on_failed(q, m, r);
    }
    settle(q, g);
}

/* ---- destination health ---- */

void dest_clear_down(struct qmgr *q, struct dest *d)
{
    if (d->h.down_until_us == 0 && d->h.consecutive == 0)
        return;
    d->h.down_until_us = 0;
    d->h.consecutive = 0;
    store_mark_dest(q, d);
}

static void dest_ok(struct qmgr *q, struct dest *d)
{
    if (d->h.consecutive > 0)
        log_info("destination %s is reachable again after %u failure%s", d->name, d->h.consecutive,
                 d->h.consecutive == 1 ? "" : "s");
    dest_clear_down(q, d);
}

static void dest_fail(struct qmgr *q, struct dest *d, const char *reason, int64_t started,
                      int64_t now)
{
    const struct qpolicy *pol = policy_for(q, d);
    unsigned limit = (unsigned)cfg_num(q->c->cfg, P_destination_failure_limit);
    int was_down = d->h.down_until_us > now;

    /* Deliveries that were already running when the last failure came
     * back count as one failure with it. */
    int counted = d->h.last_fail_us < started || d->h.consecutive == 0;

    if (counted)
        d->h.consecutive++;
    d->h.last_fail_us = now;
    free(d->h.last_error);
    d->h.last_error = qrec_text(reason);
    slots_failed(q, d);
    store_mark_dest(q, d);
    if (d->h.consecutive < limit) {
        if (counted)
            log_detail("destination %s failed (%u of %u consecutive failure%s before it is "
                       "marked down); one delivery at a time until it answers: %s",
                       d->name, d->h.consecutive, limit, limit == 1 ? "" : "s", reason);
        return;
    }
    /* down for retry_delay, doubling with each further failure */
    d->h.down_until_us = now + retry_delay_us(pol->retry_delay, pol->retry_delay_max,
                                              d->h.consecutive - limit + 1, 0);
    if (!was_down) /* once per down period, not for each delivery that was in flight */
        log_info("destination %s is down for %.0fs after %u consecutive failure%s: %s", d->name,
                 (double)(d->h.down_until_us - now) / 1e6, d->h.consecutive,
                 d->h.consecutive == 1 ? "" : "s", reason);
}

/* 1 when g's next attempt goes through the gateways, which d's being
 * down does not hold up. */
static int group_goes_relay(struct qmgr *q, const struct group *g, int64_t now)
{
    struct qhist h = group_hist(g);
    struct route_plan plan;

    policy_plan(q, g->m, g->d, &h, now, &plan);
    return plan.next == QNEXT_RELAY;
}

/* Groups that became due while their destination is down. */
static void dest_defer_ready(struct qmgr *q, struct dest *d, int64_t now)
{
    struct group *g, *next;
    char text[REPLY_MAX + 128];

    snprintf(text, sizeof(text), "destination %s not tried: down after %u failure%s (%s)", d->name,
             d->h.consecutive, d->h.consecutive == 1 ? "" : "s",
             d->h.last_error ? d->h.last_error : "no reason recorded");
    /* Only groups for the direct phase: the gateways are not down. */
    for (g = TAILQ_FIRST(&d->ready); g != NULL; g = next) {
        next = TAILQ_NEXT(g, rlink);
        if (group_goes_relay(q, g, now))
            continue;
        TAILQ_REMOVE(&d->ready, g, rlink);
        d->nready--;
        g->st = G_IDLE;
        defer_group(q, g, DLV_PHASE_DIRECT, DLV_CLASS_NETWORK, DLV_STEP_NONE, text, now);
    }
}

/* ---- sending ---- */

static struct delivery *dlv_find(struct qmgr *q, uint32_t id)
{
    struct delivery *dl;

    TAILQ_FOREACH(dl, &q->dlv, link)
    if (dl->id == id)
        return dl;
    return NULL;
}

static void delivery_free(struct delivery *dl)
{
    free(dl->gateway);
    free(dl->ridx);
    free(dl->via);
    free(dl);
}

/* Try g again in a second: its process is restarting, or would not take it. */
static void retry_soon(struct qmgr *q, struct group *g, int64_t now)
{
    sched_push(&q->sched, &g->si, now + 1000000);
    g->st = G_WAIT;
}

/*
 * m's queue file, open for a delivery of g; -1 when it cannot be opened:
 * a file that is gone forgets the message, any other error defers g as
 * an attempt of the phase.
 */
static int open_queue_file(struct qmgr *q, struct group *g, int phase, int64_t now)
{
    struct msg *m = g->m;
    char path[64], *t;
    int fd;

    msg_path(m, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0)
        return fd;
    if (errno == ENOENT) {
        log_warn("%s: the queue file is gone; message forgotten", m->id);
        msg_forget(q, m);
        return -1;
    }
    t = xasprintf("cannot open %s: %s", path, strerror(errno));
    log_err("%s: %s", m->id, t);
    defer_group(q, g, phase, DLV_CLASS_LOCAL, DLV_STEP_NONE, t, now);
    free(t);
    return -1;
}

static struct delivery *delivery_new(struct qmgr *q, struct group *g, struct ipc_chan *ch,
                                     int64_t now)
{
    struct delivery *dl = xcalloc(1, sizeof(*dl));

    dl->id = ++q->next_id;
    dl->g = g;
    dl->ch = ch;
    dl->start_us = now;
    dl->ridx = xcalloc(g->m->nrcpt, sizeof(*dl->ridx));
    return dl;
}

/* g's live recipients, into the request and dl->ridx. */
static void add_rcpts(const struct group *g, struct dlv_req *req, struct delivery *dl)
{
    const struct msg *m = g->m;
    size_t gi = (size_t)(g - m->groups);

    req->rcpts = xcalloc(m->nrcpt, sizeof(*req->rcpts));
    for (size_t i = 0; i < m->nrcpt; i++) {
        const struct rcpt *r = &m->rcpt[i];
        if (r->group != gi || !live(r))
            continue;
        struct dlv_rcpt *dr = &req->rcpts[req->nrcpts++];
        dr->idx = (uint32_t)i;
        dr->addr = r->addr;
        dr->orcpt = r->orcpt ? r->orcpt : empty;
        dr->notify = r->notify;
        dl->ridx[dl->n++] = (uint32_t)i;
    }
}

/* The message's part of a request: where it is, its envelope, what it needs. */
static void add_envelope(struct msg *m, const struct dest *d, struct dlv_req *req)
{
    req->queue_id = m->id;
    req->msg_offset = m->msg_offset;
    req->msg_size = m->size;
    req->sender = m->sender;
    req->envid = m->envid ? m->envid : empty;
    req->ret = m->ret;
    req->need = (m->body == QFILE_BODY_8BITMIME ? DLV_NEED_8BITMIME : 0) |
                (m->smtputf8 ? DLV_NEED_SMTPUTF8 : 0);
    req->domain = d->name;
}

static void throttle_req(struct qmgr *q, struct dest *d, struct dlv_req *req);

/* The IMSG_DELIVERY body for dl, the attempt plan says; logs the attempt. */
static void encode_req(struct qmgr *q, const struct route_plan *plan, struct delivery *dl,
                       struct ipc_w *w)
{
    struct group *g = dl->g;
    struct dlv_req req;

    memset(&req, 0, sizeof(req));
    add_rcpts(g, &req, dl);
    req.id = dl->id;
    add_envelope(g->m, g->d, &req);
    throttle_req(q, g->d, &req);
    policy_fill_req(q, g->d, plan, &req, dl); /* phase, target, hosts, tls, port, reuse key */
    /* local takes it too: it marks what it forwards the same way */
    req.dkim = g->m->dkim && (req.target == DLV_TARGET_LOCAL || qdkim_active(q));
    /* MTA-STS is the recipient domain's MX hosts': not for smtp:host
     * routes, nor when the domains map's mx= replaces the MX lookup (the
     * administrator chose the hosts; RFC 8461 4.1 matches MX names) */
    req.mta_sts = (uint8_t)(q->mta_sts && req.target == DLV_TARGET_MX && req.domain &&
                            strcmp(req.domain, g->d->name) == 0 &&
                            (req.mx_override == NULL || req.mx_override[0] == NULL));
    policy_log_attempt(q, g->m, g->d, plan, dl);
    ipc_w_init(w);
    dlv_req_encode(w, &req);
    free(req.rcpts);
    policy_req_done(&req);
}

/* dl was handed over: it is in flight now. */
static void delivery_started(struct qmgr *q, struct delivery *dl, int64_t now)
{
    struct group *g = dl->g;
    struct msg *m = g->m;
    struct dest *d = g->d;
    int reuse;

    TAILQ_INSERT_TAIL(&q->dlv, dl, link);
    g->st = G_ACTIVE;
    d->active++;
    q->nactive++;
    if (!slots_proven(d, now)) {
        dl->unproven = 1;
        d->active_unproven++;
        q->nactive_unproven++;
    }
    m->active++;
    q->st.deliveries++;
    reuse = slots_started(q, d, now);
    log_debug("%s: delivery %u to %s: %zu recipient%s, %s attempt %u%s", m->id, dl->id, d->name,
              dl->n, dl->n == 1 ? "" : "s", dlv_phase_name((enum dlv_phase)dl->phase), dl->attempt,
              reuse ? ", over an idle connection" : "");
}

/* g's next attempt: a delivery handed to deliver or relay, or g fails. */
static void start_group(struct qmgr *q, struct group *g, int64_t now)
{
    struct qhist h = group_hist(g);
    struct route_plan plan;
    struct ipc_chan *ch;
    struct delivery *dl;
    struct ipc_w w;
    int fd, rc;

    policy_plan(q, g->m, g->d, &h, now, &plan);
    if (plan.next == QNEXT_FAIL) {
        fail_group(q, g, &plan, now);
        return;
    }
    ch = plan.next == QNEXT_RELAY ? q->relay : plan.next == QNEXT_LOCAL ? q->local : q->deliver;
    if (ch == NULL) {
        retry_soon(q, g, now); /* its process is restarting */
        return;
    }
    if (plan.next == QNEXT_RELAY && policy_gateway_room(q, &plan) < 0) {
        log_detail("%s: %s: every gateway of this attempt is at its max_connections; "
                   "waiting",
                   g->m->id, g->d->name);
        retry_soon(q, g, now);
        return;
    }
    fd = open_queue_file(q, g, plan.next == QNEXT_RELAY ? DLV_PHASE_RELAY : DLV_PHASE_DIRECT, now);
    if (fd < 0)
        return;
    dl = delivery_new(q, g, ch, now);
    encode_req(q, &plan, dl, &w);
    rc = ipc_send(ch, IMSG_DELIVERY, dl->id, fd, w.p, w.len);
    close(fd);
    ipc_w_free(&w);
    if (rc != 0) {
        log_warn("%s: could not hand the delivery to %s; trying again in a second", g->m->id,
                 ipc_chan_name(ch));
        delivery_free(dl);
        retry_soon(q, g, now);
        return;
    }
    if (plan.next == QNEXT_RELAY && plan.ngw > 0) {
        dl->gateway = xstrdup(plan.gw[0]->name);
        routing_gw_stat(q, dl->gateway)->active++;
    }
    delivery_started(q, dl, now);
}

/* The throttle fields of a request: messages_per_connection, the idle
 * time and connection_delay in force for d. */
static void throttle_req(struct qmgr *q, struct dest *d, struct dlv_req *req)
{
    const struct qpolicy *pol = policy_for(q, d);
    long long idle = cfg_num(q->c->cfg, P_connection_idle_timeout);

    req->max_per_conn =
        (uint32_t)(pol->messages_per_connection > 0 ? pol->messages_per_connection : 1);
    /* no idle connection left behind when others need the room (slots.c) */
    req->idle_timeout_s = slots_keep(q, d) ? (uint32_t)idle : 0;
    req->connection_delay_ms = (uint32_t)(pol->connection_delay * 1000);
}

/* d first in the run list: a connection of its is idle and its next
 * message should go over it before another destination takes the slot. */
static void run_add_first(struct qmgr *q, struct dest *d)
{
    if (d->nready == 0)
        return;
    if (d->in_run)
        TAILQ_REMOVE(&q->run, d, rlink);
    TAILQ_INSERT_HEAD(&q->run, d, rlink);
    d->in_run = 1;
}

void dispatch_wake(struct qmgr *q, struct dest *d)
{
    run_add(q, d);
    qmgr_kick(q);
}

static void dispatch_ready(struct qmgr *q, int64_t now)
{
    struct dest *d;

    if (q->paused || q->stopping || (q->deliver == NULL && q->relay == NULL && q->local == NULL))
        return;
    while (q->nactive < (unsigned long long)q->max_deliveries && (d = TAILQ_FIRST(&q->run))) {
        struct group *g;
        TAILQ_REMOVE(&q->run, d, rlink);
        d->in_run = 0;
        if (d->nready == 0)
            continue;
        if (d->h.down_until_us > now) {
            dest_defer_ready(q, d, now); /* groups for the gateways stay */
            if (d->nready == 0)
                continue;
        }
        enum thr_verdict v = slots_check(q, d, now);
        if (v == THR_FULL || v == THR_WAIT)
            continue; /* back in the run list when one of its deliveries ends, or on
                         dispatch_wake after connection_delay */
        g = TAILQ_FIRST(&d->ready);
        TAILQ_REMOVE(&d->ready, g, rlink);
        d->nready--;
        g->st = G_IDLE;
        start_group(q, g, now);
        run_add(q, d);
    }
}

static void arm_timer(struct qmgr *q, int64_t now)
{
    struct sched_item *it = sched_peek(&q->sched);
    struct timeval tv;
    int64_t dt;

    if (it == NULL) {
        evtimer_del(q->timer);
        return;
    }
    dt = it->when - now;
    if (dt < 0)
        dt = 0;
    if (dt > (int64_t)TIMER_MAX_S * 1000000)
        dt = (int64_t)TIMER_MAX_S * 1000000;
    tv.tv_sec = (time_t)(dt / 1000000);
    tv.tv_usec = (suseconds_t)(dt % 1000000);
    evtimer_add(q->timer, &tv);
}

static void run(struct qmgr *q)
{
    int64_t now = now_us();
    struct sched_item *it;

    q->kicked = 0;
    while ((it = sched_pop_due(&q->sched, now)) != NULL)
        make_ready(q, (struct group *)(void *)it);
    dispatch_ready(q, now);
    arm_timer(q, now);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    run(arg);
}

void qmgr_kick(struct qmgr *q)
{
    if (q->kicked || q->kick_ev == NULL)
        return;
    q->kicked = 1;
    event_active(q->kick_ev, EV_TIMEOUT, 0);
}

void dispatch_init(struct qmgr *q)
{
    q->timer = evtimer_new(q->base, kick_cb, q);
    q->kick_ev = event_new(q->base, -1, 0, kick_cb, q);
    slots_init(q);
    srandom((unsigned)(now_us() ^ getpid()));
}

/* ---- results ---- */

static const struct dlv_rcpt_res *find_res(const struct dlv_res *res, size_t k, uint32_t idx)
{
    if (k < res->n && res->r[k].idx == idx)
        return &res->r[k];
    for (size_t j = 0; j < res->n; j++)
        if (res->r[j].idx == idx)
            return &res->r[j];
    return NULL;
}

static void end_delivery(struct qmgr *q, struct delivery *dl)
{
    struct group *g = dl->g;

    TAILQ_REMOVE(&q->dlv, dl, link);
    g->d->active--;
    q->nactive--;
    if (dl->unproven) {
        g->d->active_unproven--;
        q->nactive_unproven--;
        dl->unproven = 0;
    }
    if (dl->gateway) {
        struct gw_stat *s = routing_gw_stat(q, dl->gateway);
        if (s->active > 0)
            s->active--;
        free(dl->gateway);
        dl->gateway = NULL;
    }
    g->st = G_IDLE;
}

/* What a delivery's results say about its destination. */
struct dlv_summary {
    int any_ok;               /* a recipient was sent */
    int all_local;            /* every result was a local outage (dlv_blame) */
    int all_net;              /* every recipient got a temporary dns or network error */
    const char *first_reason; /* the first of those errors */
};

/* Recipient i had no result of its own (res NULL: none was usable). */
static void apply_missing(struct qmgr *q, struct msg *m, uint32_t i, const struct delivery *dl,
                          const struct dlv_res *res, const char *tag, int64_t now)
{
    const struct rcpt_attempt a = {
        .phase = dl->phase,
        .status = DLV_TEMP,
        .cls = DLV_CLASS_LOCAL,
        .step = DLV_STEP_NONE,
        .dsn = "",
        .reply = res ? "deliver returned no result for this recipient"
                     : "deliver returned a malformed result",
        .relay = res ? res->relay : NULL,
        .tag = tag,
        .gw = dl->met_gw,
        .now = now,
    };

    apply_result(q, m, i, &a);
}

static void apply_reply(struct qmgr *q, struct msg *m, uint32_t i, const struct delivery *dl,
                        const struct dlv_res *res, const struct dlv_rcpt_res *r, const char *tag,
                        int64_t now)
{
    char reply[REPLY_MAX];
    struct rcpt_attempt a = {
        .phase = dl->phase,
        .status = r->status,
        .cls = r->cls,
        .step = r->step,
        .code = r->code,
        .dsn = r->dsn ? r->dsn : "",
        .reply = reply,
        .relay = res->relay,
        .tag = tag,
        .gw = dl->met_gw,
        .dsn_passed = res->dsn_passed,
        .now = now,
    };

    fmt_reply(reply, sizeof(reply), r->code, a.dsn, r->text ? r->text : "");
    apply_result(q, m, i, &a);
}

/* Each recipient of dl its result (res NULL: deferred, the result was unusable). */
static struct dlv_summary apply_results(struct qmgr *q, struct delivery *dl,
                                        const struct dlv_res *res, const char *tag, int64_t now)
{
    struct msg *m = dl->g->m;
    struct dlv_summary sum = {0, 1, 1, NULL};

    for (size_t k = 0; k < dl->n; k++) {
        uint32_t i = dl->ridx[k];
        const struct dlv_rcpt_res *r = res ? find_res(res, k, i) : NULL;
        if (i >= m->nrcpt)
            continue;
        if (r == NULL) {
            apply_missing(q, m, i, dl, res, tag, now);
            sum.all_net = 0;
            continue;
        }
        apply_reply(q, m, i, dl, res, r, tag, now);
        if (dlv_blame(r->status, r->cls) != DLV_BLAME_LOCAL)
            sum.all_local = 0;
        if (r->status == DLV_OK)
            sum.any_ok = 1;
        if (!(r->status == DLV_TEMP && (r->cls == DLV_CLASS_DNS || r->cls == DLV_CLASS_NETWORK)))
            sum.all_net = 0;
        else if (sum.first_reason == NULL)
            sum.first_reason = m->rcpt[i].last_text;
    }
    return sum;
}

/* The results of a delivery to a message still in the queue: recipients,
 * throttles, the health of the destination (or of the gateways). */
static void record_delivery(struct qmgr *q, struct delivery *dl, const struct dlv_res *res,
                            const char *tag, int64_t now)
{
    struct group *g = dl->g;
    struct msg *m = g->m;
    struct dest *d = g->d;
    struct dlv_summary sum;

    m->active--;
    sum = apply_results(q, dl, res, tag, now);
    if (dl->n > 0 && sum.all_local) {
        /* Our outage: neither the destination's nor a gateway's health. */
        slots_done(q, d, res, 0, now);
        settle(q, g);
        return;
    }
    if (sum.any_ok)
        d->last_ok_us = now; /* proven (slots_proven) */
    slots_done(q, d, res, res && (sum.any_ok || !sum.all_net), now);
    if (dl->phase == DLV_PHASE_RELAY)
        policy_note_relay(q, m, dl, res); /* gateways' health is theirs, not d's */
    else if (dl->n > 0 && sum.all_net && !sum.any_ok && sum.first_reason)
        dest_fail(q, d, sum.first_reason, dl->start_us, now);
    else if (sum.any_ok || !sum.all_net)
        dest_ok(q, d);
    settle(q, g);
}

/* res NULL: the result was unusable; every recipient is deferred. */
/* ", tls=TLSv1.3 TLS_AES_256_GCM_SHA384" after the tag when the session
 * with the relay of the result used TLS: the protocol and cipher, as
 * smtpd's accepted line has them; then ", tls_policy=dane" (or mta-sts,
 * mta-sts testing) when a DANE or MTA-STS policy applied. */
static void tls_tag(const struct dlv_res *res, char *tag, size_t len)
{
    size_t n = strlen(tag);

    if (res != NULL && res->tls_used && res->tls_version && res->tls_version[0]) {
        snprintf(tag + n, len - n, ", tls=%s%s%s", res->tls_version,
                 res->tls_cipher && res->tls_cipher[0] ? " " : "",
                 res->tls_cipher ? res->tls_cipher : "");
        n = strlen(tag);
    }
    /* the policy that applied: dane, mta-sts, mta-sts testing */
    if (res != NULL && res->tls_policy && res->tls_policy[0])
        snprintf(tag + n, len - n, ", tls_policy=%s", res->tls_policy);
}

/* ", dkim=signed d=example.org s=sel" (or "unsigned (why)") when the
 * message was given to the signer. */
static void dkim_tag(const struct dlv_res *res, char *tag, size_t len)
{
    size_t n = strlen(tag);

    if (res == NULL || res->dkim == NULL || !res->dkim[0])
        return;
    snprintf(tag + n, len - n, ", dkim=%s", res->dkim);
}

/* The TLS sessions of a delivery into the TLS reporting counters. The
 * policy string comes as "a; b; c": the report wants one line each, and
 * an MTA-STS policy's lines start with its version (RFC 8460 4.4). */
static void count_tls(struct qmgr *q, const struct dlv_res *res)
{
    for (size_t i = 0; res && i < res->ntls_out; i++) {
        const struct dlv_tls_out *t = &res->tls_out[i];
        struct buf lines;
        struct tlsrpt_outcome o;

        buf_init(&lines);
        if (strcmp(t->policy_type, "sts") == 0)
            buf_printf(&lines, "version: STSv1%s", *t->policy_string ? "\n" : "");
        for (const char *p = t->policy_string; *p;) {
            const char *e = strstr(p, "; ");
            size_t n = e ? (size_t)(e - p) : strlen(p);
            buf_printf(&lines, "%.*s%s", (int)n, p, e ? "\n" : "");
            p += n + (e ? 2 : 0);
        }
        o = (struct tlsrpt_outcome){
            t->policy_type, t->policy_domain, lines.data ? lines.data : "", t->mx_host, "",
            t->result,      t->reason};
        tlsrpt_add(q->tlsrpt, &o);
        buf_free(&lines);
    }
}

static void finish_delivery(struct qmgr *q, struct delivery *dl, const struct dlv_res *res)
{
    struct group *g = dl->g;
    struct msg *m = g->m;
    struct dest *d = g->d;
    int64_t now = now_us();
    char tag[800];

    end_delivery(q, dl);
    count_tls(q, res);
    policy_log_tag(dl, res ? res->label : NULL, tag, sizeof(tag));
    tls_tag(res, tag, sizeof(tag));
    dkim_tag(res, tag, sizeof(tag));
    dl->met_gw = dl->phase == DLV_PHASE_RELAY ? metrics_gateway(q, res ? res->label : NULL) : -1;
    if (m->removed) {
        slots_done(q, d, res, 0, now);
        msg_release_ref(m);
    } else {
        record_delivery(q, dl, res, tag, now);
    }
    if (res && res->conn_kept)
        run_add_first(q, d); /* its next message goes over the idle connection */
    else
        run_add(q, d);
    delivery_free(dl);
    if (q->stopping && q->nactive == 0)
        child_exit(q->c, 0);
    qmgr_kick(q);
}

/*
 * A result counts only from the process the delivery went to, in a frame
 * whose id is the body's: a result from elsewhere (smtpd, or deliver for
 * relay's job) would mark recipients sent that nobody delivered. -1 asks
 * the caller to close the channel it came on.
 */
int dispatch_result(struct qmgr *q, struct ipc_chan *ch, const struct ipc_msg *im)
{
    struct delivery *dl = dlv_find(q, im->id);
    struct dlv_res res;
    int rc = 0;

    if (im->fd >= 0)
        close(im->fd);
    if (dl && dl->ch != ch) {
        log_warn("%s sent a result for delivery %u, which went to %s: not accepted",
                 ipc_chan_name(ch), im->id, dl->ch ? ipc_chan_name(dl->ch) : "a process now gone");
        return -1;
    }
    memset(&res, 0, sizeof(res));
    if (dlv_res_decode(im->body, im->len, &res) != 0) {
        log_warn("malformed delivery result (request %u)%s", im->id,
                 dl ? "; its recipients are deferred" : "");
        if (dl)
            finish_delivery(q, dl, NULL);
        return 0;
    }
    if (res.id != im->id) {
        log_warn("%s sent a result for request %u in a frame for request %u: not accepted",
                 ipc_chan_name(ch), res.id, im->id);
        rc = -1;
    } else if (dl == NULL)
        log_warn("delivery result for unknown request %u ignored", res.id);
    else
        finish_delivery(q, dl, &res);
    dlv_res_free(&res);
    return rc;
}

void dispatch_peer_lost(struct qmgr *q, struct ipc_chan *ch)
{
    struct delivery *dl, *next;

    slots_lost(q); /* the idle connections went with the process */
    for (dl = TAILQ_FIRST(&q->dlv); dl; dl = next) {
        struct group *g = dl->g;
        struct msg *m = g->m;
        next = TAILQ_NEXT(dl, link);
        if (dl->ch != ch)
            continue;
        end_delivery(q, dl);
        if (m->removed) {
            msg_release_ref(m);
        } else {
            m->active--;
            q->st.rescheduled++;
            log_warn("%s: delivery to %s was in flight when %s went away; it will be tried "
                     "again (the destination may get it twice)",
                     m->id, g->d->name, ipc_chan_name(ch));
            group_schedule(q, g);
        }
        run_add(q, g->d);
        delivery_free(dl);
    }
    qmgr_kick(q);
}
