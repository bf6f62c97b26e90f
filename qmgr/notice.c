/*
 * notice - the delivery status notifications qmgr sends (RFC 3461, RFC
 * 3464; docs/dsn.md), and the postmaster's notice when one of those
 * could not be delivered. See qmgr.h for the calls.
 *
 * What a recipient wants (QN_WANT_* in its state, qrec.h):
 *   failure  its sender is not <> and NOTIFY is absent or has FAILURE;
 *            or the message is a notice Postern sent (sender <>) and
 *            notice_recipient is set: the postmaster hears of it;
 *   delay    the sender is not <>, NOTIFY is absent or has DELAY, the
 *            recipient is still deferred after delay_warning_time, and
 *            no delay notice was sent for it yet;
 *   success  NOTIFY has SUCCESS and the server that took it does not
 *            offer DSN (a "relayed" notice; one that offers DSN got the
 *            parameters and reports delivery itself).
 * A message qmgr wrote (queue-file key `notice`) never wants one for its
 * own sender: it has none.
 *
 * Writing one notice, so that a kill -9 at any moment loses none and
 * sends none twice:
 *   1. pick the notice's queue ID, mark the recipients QN_PENDING and
 *      save the record with the ID in its head (one transaction, now);
 *   2. write incoming/ID, fsync, rename into queue/ (never replacing),
 *      fsync queue/ (smtpd's path for mail);
 *   3. mark the recipients QN_SENT_*, clear the ID, save the record again
 *      (now, before the notice can be delivered);
 *   4. take the notice into the queue like mail from smtpd; if every
 *      recipient of the original is final, finish it (bounced/).
 * At start-up, a record with an ID in its head (stopped between 1 and
 * 3) is completed if the file exists (in queue/, hold/, bounced/ or
 * bad/: it cannot have been delivered before 3) and otherwise written
 * again. A notice that cannot be written (disk full) leaves everything
 * as it was and is tried again after NOTICE_RETRY_S.
 *
 * Postmaster notices about notices that could not be delivered are
 * limited to one per destination domain per PM_INTERVAL_S; the others
 * are logged and the notices still go to bad/, so a forged sender domain
 * that fails a thousand times does not give a thousand postmaster mails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "mail/config.h"
#include "mail/dlv_proto.h"
#include "mail/spool.h"
#include "policy.h"
#include "qmgr.h"
#include "report.h"
#include "strmap.h"

#define NOTICE_RETRY_S 60
#define PM_INTERVAL_S 3600
#define HEADER_SCAN (1024 * 1024) /* bytes of the original read for its header */
#define SENT_OF(want) ((uint8_t)((want) << 4))

static int notify_allows(uint32_t notify, unsigned bit)
{
    if (notify & DSN_NOTIFY_NEVER)
        return 0;
    if (notify == 0) /* RFC 3461 4.1: not given: failures, and delays at our discretion */
        return bit == DSN_NOTIFY_FAILURE || bit == DSN_NOTIFY_DELAY;
    return (notify & bit) != 0;
}

const char *notice_postmaster(struct qmgr *q, char *buf, size_t len)
{
    const char *to = cfg_str(q->c->cfg, P_notice_recipient);

    if (to == NULL || to[0] == '\0') {
        snprintf(buf, len, "%s", "");
        return buf;
    }
    if (strchr(to, '@'))
        snprintf(buf, len, "%s", to);
    else
        snprintf(buf, len, "%s@%s", to, cfg_myhostname(q->c->cfg));
    return buf;
}

void notice_on_sent(struct qmgr *q, struct msg *m, struct rcpt *r, int dsn_passed)
{
    r->notes &= (uint8_t)~QN_WANT_DELAY;
    if (m->sender[0] && (r->notify & DSN_NOTIFY_SUCCESS) && !dsn_passed &&
        !(r->notes & QN_SENT_SUCCESS))
        r->notes |= QN_WANT_SUCCESS;
}

void notice_on_failed(struct qmgr *q, struct msg *m, struct rcpt *r)
{
    char pm[320];

    r->notes &= (uint8_t)~QN_WANT_DELAY; /* the failure says more */
    if (r->notes & QN_SENT_FAILURE)
        return;
    if (m->sender[0]
            ? notify_allows(r->notify, DSN_NOTIFY_FAILURE)
            : m->notice_kind == QFILE_NOTICE_DSN && notice_postmaster(q, pm, sizeof(pm))[0])
        r->notes |= QN_WANT_FAILURE;
}

void notice_on_deferred(struct qmgr *q, struct msg *m, struct rcpt *r, long long delay_warning_s,
                        int64_t now)
{
    if (!m->sender[0] || delay_warning_s <= 0 || (r->notes & (QN_SENT_DELAY | QN_WANT_DELAY)) ||
        !notify_allows(r->notify, DSN_NOTIFY_DELAY))
        return;
    if (now - m->arrival_us >= (int64_t)delay_warning_s * 1000000)
        r->notes |= QN_WANT_DELAY;
}

/* The wants that still make sense in the recipient's present state. */
static uint8_t live_wants(const struct rcpt *r)
{
    uint8_t w = r->notes & QN_WANT_MASK;

    if (r->state != RS_FAILED)
        w &= (uint8_t)~QN_WANT_FAILURE;
    if (r->state != RS_SENT)
        w &= (uint8_t)~QN_WANT_SUCCESS;
    if (r->state != RS_DEFERRED && r->state != RS_PENDING)
        w &= (uint8_t)~QN_WANT_DELAY;
    return w;
}

int notice_wanted(const struct msg *m)
{
    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].notes & QN_WANT_MASK)
            return 1;
    return 0;
}

static void schedule_run(struct qmgr *q)
{
    if (q->notice_ev)
        event_active(q->notice_ev, EV_TIMEOUT, 0);
}

void notice_mark(struct qmgr *q, struct msg *m)
{
    if (m->notice_pos == 0) {
        if (q->nnotices == q->notices_cap) {
            q->notices_cap = q->notices_cap ? q->notices_cap * 2 : 64;
            q->notices = xrealloc(q->notices, q->notices_cap * sizeof(*q->notices));
        }
        q->notices[q->nnotices++] = m;
        m->notice_pos = q->nnotices;
    }
    if (!q->notice_retry)
        schedule_run(q);
}

void notice_forget(struct qmgr *q, struct msg *m)
{
    if (m->notice_pos) {
        q->notices[m->notice_pos - 1] = NULL;
        m->notice_pos = 0;
    }
}

/* ---- the report ---- */

static enum report_action action_of(uint8_t want)
{
    if (want & QN_WANT_FAILURE)
        return RA_FAILED;
    if (want & QN_WANT_DELAY)
        return RA_DELAYED;
    return RA_RELAYED;
}

/* "mx.example.org[192.0.2.1]:25" -> "mx.example.org" */
static void host_of(const char *relay, char *buf, size_t len)
{
    size_t n = strcspn(relay, "[:");

    if (n >= len)
        n = len - 1;
    memcpy(buf, relay, n);
    buf[n] = '\0';
}

static void fmt_days(char *buf, size_t len, long long s)
{
    if (s >= 86400 && s % 86400 == 0)
        snprintf(buf, len, "%lld day%s", s / 86400, s == 86400 ? "" : "s");
    else if (s >= 3600 && s % 3600 == 0)
        snprintf(buf, len, "%lld hour%s", s / 3600, s == 3600 ? "" : "s");
    else if (s >= 60 && s % 60 == 0)
        snprintf(buf, len, "%lld minute%s", s / 60, s == 60 ? "" : "s");
    else
        snprintf(buf, len, "%lld second%s", s, s == 1 ? "" : "s");
}

/* Read up to max bytes of m's message section. */
static char *read_original(const struct msg *m, size_t max, size_t *got, char **err)
{
    char path[64];
    size_t want = m->size < max ? (size_t)m->size : max, n = 0;
    char *p;
    int fd;

    msg_path(m, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *err = xasprintf("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    p = xmalloc(want + 1);
    while (n < want) {
        ssize_t r = pread(fd, p + n, want - n, (off_t)(m->msg_offset + n));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *err = xasprintf("cannot read %s: %s", path, r < 0 ? strerror(errno) : "short file");
            close(fd);
            free(p);
            return NULL;
        }
        n += (size_t)r;
    }
    close(fd);
    *got = n;
    return p;
}

struct notice_job {
    struct msg *m;
    size_t *idx; /* recipients in the notice */
    uint8_t *want;
    size_t n;
    enum report_kind kind;
    const char *to;
    char id[QFILE_ID_SIZE];
};

static void fill_rcpts(struct qmgr *q, const struct notice_job *j, struct report_rcpt *rr,
                       char (*remote)[256], char (*why)[256])
{
    const struct msg *m = j->m;

    for (size_t k = 0; k < j->n; k++) {
        const struct rcpt *r = &m->rcpt[j->idx[k]];
        struct qpolicy *p = policy_for(q, m->groups[r->group].d);
        enum report_action a = action_of(j->want[k]);
        char life[64];

        memset(&rr[k], 0, sizeof(rr[k]));
        rr[k].addr = r->addr;
        rr[k].orcpt = r->orcpt;
        rr[k].action = a;
        rr[k].status = r->status         ? r->status
                       : a == RA_FAILED  ? "5.0.0"
                       : a == RA_DELAYED ? "4.0.0"
                                         : "2.0.0";
        remote[k][0] = '\0';
        if (r->remote)
            host_of(r->remote, remote[k], sizeof(remote[k]));
        rr[k].remote_mta = remote[k][0] ? remote[k] : NULL;
        rr[k].diag = a == RA_RELAYED ? NULL : r->last_text;
        rr[k].diag_type = r->last_code ? "smtp" : NULL;
        rr[k].step =
            r->last_step != DLV_STEP_NONE ? dlv_step_name((enum dlv_step)r->last_step) : NULL;
        rr[k].last_attempt_us = r->last_try_us;
        why[k][0] = '\0';
        fmt_days(life, sizeof(life), p->max_queue_lifetime);
        if (a == RA_DELAYED) {
            rr[k].will_retry_until_us =
                msg_life_start(m) + (int64_t)p->max_queue_lifetime * 1000000;
            snprintf(why[k], sizeof(why[k]),
                     "Postern keeps trying for up to %s after the message arrived; there is "
                     "no need to send it again.",
                     life);
        } else if (a == RA_FAILED && r->status && strcmp(r->status, "4.4.7") == 0) {
            rr[k].step = "expired";
            snprintf(why[k], sizeof(why[k]),
                     "Postern tried to deliver it for %s (max_queue_lifetime) and gave up.", life);
        } else if (a == RA_FAILED && r->last_code == 0 && r->last_step == DLV_STEP_NONE &&
                   r->last_text && strstr(r->last_text, "administrator")) {
            rr[k].step = "admin";
        }
        rr[k].why = why[k][0] ? why[k] : NULL;
    }
}

static int has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s > 0x7f)
            return 1;
    return 0;
}

/* Steps 2 of the header comment: the file, committed into queue/. */
static int commit_file(const char *id, const struct buf *env, const struct buf *body, char **err)
{
    char tmp[64], dst[64];
    int fd, dfd, rc = -1;

    snprintf(tmp, sizeof(tmp), "%s/%s", SPOOL_INCOMING, id);
    snprintf(dst, sizeof(dst), "%s/%s", SPOOL_QUEUE, id);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        *err = xasprintf("cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (write_all(fd, env->data, env->len) != 0 || write_all(fd, body->data, body->len) != 0 ||
        fdatasync(fd) != 0) {
        *err = xasprintf("cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) != 0) {
        *err = xasprintf("cannot move %s to %s/: %s", tmp, SPOOL_QUEUE, strerror(errno));
        unlink(tmp);
        return -1;
    }
    dfd = open(SPOOL_QUEUE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0 && fsync(dfd) == 0)
        rc = 0;
    else
        *err = xasprintf("cannot sync %s/: %s", SPOOL_QUEUE, strerror(errno));
    if (dfd >= 0)
        close(dfd);
    return rc; /* on a failed directory sync the file stays: better twice than never */
}

static int write_notice(struct qmgr *q, const struct notice_job *j, char **err)
{
    const struct msg *m = j->m;
    uint64_t limit = (uint64_t)cfg_num(q->c->cfg, P_bounce_size_limit);
    const char *me = cfg_myhostname(q->c->cfg);
    struct report_rcpt *rr = xcalloc(j->n, sizeof(*rr));
    char(*remote)[256] = xcalloc(j->n, sizeof(*remote));
    char(*why)[256] = xcalloc(j->n, sizeof(*why));
    char msgid[300], date[64];
    struct qfile_env env;
    struct qfile_rcpt er;
    struct buf hb, body;
    size_t olen = 0;
    char *orig;
    const char *bad;
    int eightbit = 0, rc = -1;
    int64_t now = now_us();

    /* At most limit + 1 bytes, so that report.c sees that a longer one does
     * not fit, but at least HEADER_SCAN: the Subject and Message-ID it
     * repeats may sit behind a header longer than the limit. */
    orig = read_original(m, (size_t)limit + 1 > HEADER_SCAN ? (size_t)limit + 1 : HEADER_SCAN,
                         &olen, err);
    if (orig == NULL)
        goto out;
    fill_rcpts(q, j, rr, remote, why);
    snprintf(msgid, sizeof(msgid), "<%s.notice@%s>", j->id, me);
    struct report rp = {
        .kind = j->kind,
        .reporting_mta = me,
        .rcpt_to = j->to,
        .queue_id = m->id,
        .orig_sender = m->sender,
        .envid = m->envid,
        .arrival_us = m->arrival_us,
        .now_us = now,
        .message_id = msgid,
        .ret = j->kind == RK_SENDER ? (enum dsn_ret)m->ret : DSN_RET_HDRS,
        .size_limit = limit,
        .orig = orig,
        .orig_len = olen,
        .r = rr,
        .n = j->n,
    };
    buf_init(&body);
    buf_init(&hb);
    rfc5322_date(now, date, sizeof(date));
    buf_printf(&body, "Received: by %s (Postern) id %s;\r\n\t%s\r\n", me, j->id, date);
    report_build(&body, &rp, &eightbit);

    memset(&env, 0, sizeof(env));
    memcpy(env.id, j->id, QFILE_ID_SIZE);
    env.arrival_us = now;
    env.client_addr = (char *)(uintptr_t) "127.0.0.1";
    env.proto = (char *)(uintptr_t) "LOCAL";
    env.sender = (char *)(uintptr_t) "";
    env.body = eightbit ? QFILE_BODY_8BITMIME : QFILE_BODY_NONE;
    env.smtputf8 = has_8bit(j->to);
    env.notice = j->kind == RK_SENDER ? QFILE_NOTICE_DSN : QFILE_NOTICE_POSTMASTER;
    memcpy(env.notice_of, m->id, QFILE_ID_SIZE);
    memset(&er, 0, sizeof(er));
    er.addr = (char *)(uintptr_t)j->to;
    env.rcpt = &er;
    env.nrcpt = 1;
    env.size = body.len;
    if (qfile_env_write(&hb, &env, NULL, &bad) != 0)
        *err = xasprintf("cannot make the envelope: %s", bad);
    else
        rc = commit_file(j->id, &hb, &body, err);
    buf_free(&hb);
    buf_free(&body);
out:
    free(orig);
    free(rr);
    free(remote);
    free(why);
    return rc;
}

/* 1: a postmaster notice about d may go now (and is counted). */
static int pm_allowed(struct qmgr *q, const char *dom)
{
    int64_t now_s = now_us() / 1000000;
    void *v = strmap_get(q->pm_last, dom);

    if (v && now_s - (int64_t)(intptr_t)v < PM_INTERVAL_S)
        return 0;
    strmap_put(q->pm_last, dom, (void *)(intptr_t)now_s);
    return 1;
}

static const char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at ? at + 1 : addr;
}

static void clear_pending(struct msg *m)
{
    for (size_t i = 0; i < m->nrcpt; i++)
        m->rcpt[i].notes &= (uint8_t)~QN_PENDING;
    m->notice[0] = '\0';
}

/* The notice m's recipients want. 0: written or nothing to write; -1:
 * try again later. */
static int notice_one(struct qmgr *q, struct msg *m)
{
    struct notice_job j;
    char pm[320], *err = NULL;
    const char *what;
    int rc = -1;

    memset(&j, 0, sizeof(j));
    j.m = m;
    j.idx = xcalloc(m->nrcpt, sizeof(*j.idx));
    j.want = xcalloc(m->nrcpt, sizeof(*j.want));
    for (size_t i = 0; i < m->nrcpt; i++) {
        uint8_t w = live_wants(&m->rcpt[i]);
        m->rcpt[i].notes &= (uint8_t) ~(QN_WANT_MASK & ~w);
        if (w) {
            j.idx[j.n] = i;
            j.want[j.n++] = w;
        }
    }
    if (j.n == 0) {
        rc = 0;
        goto out;
    }
    if (m->sender[0]) {
        j.kind = RK_SENDER;
        j.to = m->sender;
    } else {
        j.kind = RK_POSTMASTER;
        j.to = notice_postmaster(q, pm, sizeof(pm));
        if (!j.to[0] || m->notice_kind != QFILE_NOTICE_DSN ||
            !pm_allowed(q, domain_of(m->rcpt[j.idx[0]].addr))) {
            if (j.to[0] && m->notice_kind == QFILE_NOTICE_DSN) {
                q->st.postmaster_suppressed++;
                log_warn("%s: no postmaster notice about this undeliverable notice: one about "
                         "%s went out less than %ds ago",
                         m->id, domain_of(m->rcpt[j.idx[0]].addr), PM_INTERVAL_S);
            }
            /* not sent: the wants go, and bad/'s reason does not say "told" */
            for (size_t k = 0; k < j.n; k++)
                m->rcpt[j.idx[k]].notes &= (uint8_t)~j.want[k];
            store_mark(q, m);
            rc = 0;
            goto out;
        }
    }
    /* 1: the ID and the pending marks reach the database first */
    qfile_id_next(&q->idgen, now_us(), j.id);
    memcpy(m->notice, j.id, QFILE_ID_SIZE);
    for (size_t k = 0; k < j.n; k++)
        m->rcpt[j.idx[k]].notes |= QN_PENDING;
    if (store_write_now(q, m, NULL, &err) != 0) {
        log_err("%s: cannot save the state before writing a notice: %s (tried again in %ds)", m->id,
                err ? err : "unknown error", NOTICE_RETRY_S);
        clear_pending(m);
        goto out;
    }
    /* 2: the file */
    if (write_notice(q, &j, &err) != 0) {
        q->st.notices_failed++;
        log_err("%s: cannot write the notice %s to <%s>: %s (tried again in %ds)", m->id, j.id,
                j.to, err ? err : "unknown error", NOTICE_RETRY_S);
        clear_pending(m);
        store_mark(q, m);
        goto out;
    }
    /* 3: sent */
    for (size_t k = 0; k < j.n; k++)
        m->rcpt[j.idx[k]].notes =
            (uint8_t)((m->rcpt[j.idx[k]].notes & ~j.want[k]) | SENT_OF(j.want[k]));
    clear_pending(m);
    free(err);
    err = NULL;
    if (store_write_now(q, m, NULL, &err) != 0)
        log_err("%s: cannot save that notice %s was sent: %s", m->id, j.id,
                err ? err : "unknown error");
    what = j.kind == RK_POSTMASTER              ? "postmaster notice"
           : action_of(j.want[0]) == RA_FAILED  ? "failure notice"
           : action_of(j.want[0]) == RA_DELAYED ? "delay notice"
                                                : "relay notice";
    for (size_t k = 1; k < j.n && j.kind == RK_SENDER; k++)
        if (action_of(j.want[k]) != action_of(j.want[0]))
            what = "delivery notice";
    if (j.kind == RK_POSTMASTER)
        q->st.postmaster_notices++;
    else
        q->st.notices++;
    log_info("%s: %s %s to <%s> (%zu recipient%s)", m->id, what, j.id, j.to, j.n,
             j.n == 1 ? "" : "s");
    /* 4: the notice is mail now */
    queue_new(q, j.id);
    rc = 0;
out:
    free(err);
    free(j.idx);
    free(j.want);
    return rc;
}

static void retry_later(struct qmgr *q)
{
    struct timeval tv = {NOTICE_RETRY_S, 0};

    if (q->notice_retry)
        return;
    q->notice_retry = 1;
    evtimer_add(q->notice_retry_ev, &tv);
}

static void run_cb(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    struct msg **list = q->notices;
    size_t n = q->nnotices;
    size_t keep = 0;

    if (q->notice_retry)
        return;
    q->notices = NULL;
    q->nnotices = q->notices_cap = 0;
    for (size_t i = 0; i < n; i++)
        if (list[i])
            list[i]->notice_pos = 0;
    for (size_t i = 0; i < n; i++) {
        struct msg *m = list[i];
        if (m == NULL || m->removed)
            continue;
        if (notice_one(q, m) != 0) {
            notice_mark(q, m); /* again after the back-off */
            keep++;
            continue;
        }
        if (msg_final(m))
            msg_finish(q, m);
    }
    free(list);
    if (keep)
        retry_later(q);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;

    q->notice_retry = 0;
    schedule_run(q);
}

void notice_recover(struct qmgr *q, struct msg *m)
{
    static const char *const dirs[] = {SPOOL_QUEUE, SPOOL_HOLD, SPOOL_BOUNCED, SPOOL_BAD};
    struct stat st;
    char path[64];
    int found = 0;

    if (m->notice[0] == '\0')
        return;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !found; i++) {
        snprintf(path, sizeof(path), "%s/%s", dirs[i], m->notice);
        found = lstat(path, &st) == 0;
    }
    for (size_t i = 0; i < m->nrcpt; i++) {
        struct rcpt *r = &m->rcpt[i];
        if (!(r->notes & QN_PENDING))
            continue;
        if (found)
            r->notes = (uint8_t)((r->notes & ~QN_WANT_MASK) | SENT_OF(r->notes & QN_WANT_MASK));
    }
    log_info("%s: notice %s was being written when qmgr stopped: %s", m->id, m->notice,
             found ? "it is in the spool, done" : "not in the spool, written again");
    clear_pending(m);
    store_mark(q, m);
}

void notice_init(struct qmgr *q)
{
    qfile_id_init(&q->idgen, 1);
    q->notice_ev = event_new(q->base, -1, 0, run_cb, q);
    q->notice_retry_ev = evtimer_new(q->base, retry_cb, q);
    q->pm_last = strmap_new();
}

void notice_close(struct qmgr *q)
{
    if (q->notice_ev)
        event_free(q->notice_ev);
    if (q->notice_retry_ev)
        event_free(q->notice_retry_ev);
    q->notice_ev = q->notice_retry_ev = NULL;
    free(q->notices);
    q->notices = NULL;
    q->nnotices = q->notices_cap = 0;
    if (q->pm_last)
        strmap_free(q->pm_last);
    q->pm_last = NULL;
}
