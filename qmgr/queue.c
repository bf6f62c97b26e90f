/*
 * queue - qmgr's messages and the spool: loading queue files, the
 * start-up scan, and moving files between queue/, hold/, bounced/ and
 * bad/ (all renames inside the spool; nothing is ever deleted except a
 * fully delivered message or one an admin removed; a delivered one goes
 * to free/ for smtpd to reuse, recycle.c).
 *
 * Start-up (queue_start): every file in queue/ and hold/ is read; one
 * that does not parse goes to bad/ with a log line. Then the BDB records
 * are matched to the files: a record gives its message the recipients'
 * state (attempts, next try, last error); a record without a file is
 * deleted; a file without a record is adopted as new mail. Finally every
 * group of every message in queue/ is scheduled at its next try.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "group.h"
#include "base/log.h"
#include "qmgr.h"
#include "qstate.h"
#include "mail/spool.h"
#include "strmap.h"

const char *msg_path(const struct msg *m, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", m->where == Q_HOLD ? SPOOL_HOLD : SPOOL_QUEUE, m->id);
    return buf;
}

struct msg *msg_find(struct qmgr *q, const char *id)
{
    return strmap_get(q->msgs, id);
}

struct dest *dest_get(struct qmgr *q, const char *name)
{
    struct dest *d = strmap_get(q->dests, name);

    if (d)
        return d;
    d = xcalloc(1, sizeof(*d));
    d->name = xstrdup(name);
    TAILQ_INIT(&d->ready);
    strmap_put(q->dests, name, d);
    return d;
}

int spool_to_bad(const char *from_dir, const char *id, const char *why)
{
    char from[64], to[64];

    snprintf(from, sizeof(from), "%s/%s", from_dir, id);
    snprintf(to, sizeof(to), "%s/%s", SPOOL_BAD, id);
    if (rename(from, to) != 0) {
        log_err("%s: cannot move %s to %s/: %s (the file is left where it is)", id, from, SPOOL_BAD,
                strerror(errno));
        return -1;
    }
    log_warn("%s: moved to %s/: %s", id, SPOOL_BAD, why);
    return 0;
}

static void msg_free(struct msg *m)
{
    for (size_t i = 0; i < m->nrcpt; i++) {
        free(m->rcpt[i].addr);
        free(m->rcpt[i].orcpt);
    }
    qrec_rcpt_clear(m->rcpt, m->nrcpt);
    free(m->rcpt);
    free(m->groups);
    free(m->sender);
    free(m->envid);
    free(m);
}

/* Build a message from a parsed envelope; takes the recipients' strings. */
static struct msg *msg_from_env(struct qmgr *q, struct qfile_env *env, enum qwhere where)
{
    struct msg *m = xcalloc(1, sizeof(*m));
    char **addrs, **doms;
    uint32_t *gidx;

    memcpy(m->id, env->id, QFILE_ID_SIZE);
    m->where = (uint8_t)where;
    m->sender = env->sender;
    env->sender = NULL;
    m->envid = env->envid;
    env->envid = NULL;
    m->ret = (uint8_t)env->ret;
    m->body = (uint8_t)env->body;
    m->smtputf8 = (uint8_t)env->smtputf8;
    m->dkim = (uint8_t)qdkim_submitted(q, env);
    m->notice_kind = (uint8_t)env->notice;
    memcpy(m->notice_of, env->notice_of, QFILE_ID_SIZE);
    m->arrival_us = env->arrival_us;
    m->size = env->size;
    m->msg_offset = env->msg_offset;
    m->nrcpt = env->nrcpt;
    m->rcpt = xcalloc(env->nrcpt, sizeof(*m->rcpt));
    addrs = xcalloc(env->nrcpt, sizeof(*addrs));
    gidx = xcalloc(env->nrcpt, sizeof(*gidx));
    for (size_t i = 0; i < env->nrcpt; i++) {
        m->rcpt[i].addr = env->rcpt[i].addr;
        m->rcpt[i].orcpt = env->rcpt[i].orcpt;
        m->rcpt[i].notify = env->rcpt[i].notify;
        env->rcpt[i].addr = env->rcpt[i].orcpt = NULL;
        addrs[i] = m->rcpt[i].addr;
    }
    m->ngroups = group_by_domain(addrs, m->nrcpt, gidx, &doms);
    m->groups = xcalloc(m->ngroups, sizeof(*m->groups));
    for (size_t i = 0; i < m->nrcpt; i++)
        m->rcpt[i].group = gidx[i];
    for (size_t g = 0; g < m->ngroups; g++) {
        sched_item_init(&m->groups[g].si);
        m->groups[g].m = m;
        m->groups[g].d = dest_get(q, doms[g]);
        m->groups[g].d->ngroups++;
        m->groups[g].st = G_IDLE;
        free(doms[g]);
    }
    free(doms);
    free(addrs);
    free(gidx);
    return m;
}

/*
 * Read dir/id into a new message (not yet registered). A file that does
 * not parse goes to bad/. Returns NULL (and *gone = 1 if the file is not
 * there) when there is no message.
 */
static struct msg *msg_load(struct qmgr *q, const char *dir, const char *id, enum qwhere where,
                            int *gone)
{
    char path[64];
    struct qfile_env env;
    char *err = NULL;
    struct msg *m;
    int fd;

    *gone = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    /* Only a regular file is a queue file: a symbolic link (dangling or
     * not), a FIFO or a directory with a queue ID's name, or a file qmgr
     * may not read, is moved to bad/ with a log line, never followed,
     * never left to sit unseen. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT) {
        *gone = 1;
        return NULL;
    }
    struct stat st;
    int open_errno = errno;
    if (fd < 0 && open_errno != ELOOP && open_errno != EACCES && open_errno != EPERM) {
        /* EMFILE, EIO...: ours and passing; the next scan tries again */
        log_err("%s: cannot open %s: %s", id, path, strerror(open_errno));
        return NULL;
    }
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        char *why;
        if (fd >= 0)
            close(fd);
        else if (lstat(path, &st) != 0)
            memset(&st, 0, sizeof(st));
        if (S_ISLNK(st.st_mode))
            why = xasprintf("%s is a symbolic link, not a queue file", path);
        else if (S_ISDIR(st.st_mode))
            why = xasprintf("%s is a directory, not a queue file", path);
        else if (S_ISFIFO(st.st_mode))
            why = xasprintf("%s is a FIFO, not a queue file", path);
        else if (!S_ISREG(st.st_mode))
            why = xasprintf("%s is not a regular file", path);
        else
            why = xasprintf("%s cannot be opened: %s", path, strerror(open_errno));
        q->st.msg_corrupt++;
        if (spool_to_bad(dir, id, why) == 0)
            store_write_bad(q, id, why);
        free(why);
        return NULL;
    }
    if (qfile_read(fd, &env, &err) != 0) {
        close(fd);
        q->st.msg_corrupt++;
        char *why = xasprintf("corrupt queue file: %s", err ? err : "unreadable");
        if (spool_to_bad(dir, id, why) == 0)
            store_write_bad(q, id, why);
        free(why);
        free(err);
        return NULL;
    }
    close(fd);
    if (strcmp(env.id, id) != 0) {
        char *why = xasprintf("corrupt queue file: it says it is %s", env.id);
        q->st.msg_corrupt++;
        if (spool_to_bad(dir, id, why) == 0)
            store_write_bad(q, id, why);
        free(why);
        qfile_env_free(&env);
        return NULL;
    }
    m = msg_from_env(q, &env, where);
    qfile_env_free(&env);
    return m;
}

int msg_final(const struct msg *m)
{
    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].state != RS_SENT && m->rcpt[i].state != RS_FAILED)
            return 0;
    return 1;
}

static void msg_register(struct qmgr *q, struct msg *m)
{
    strmap_put(q->msgs, m->id, m);
}

static void schedule_msg(struct qmgr *q, struct msg *m)
{
    for (size_t g = 0; g < m->ngroups; g++)
        group_schedule(q, &m->groups[g]);
}

void queue_new(struct qmgr *q, const char *id)
{
    struct msg *m;
    int gone;

    if (!qfile_id_valid(id)) {
        log_warn("smtpd announced a malformed queue ID; ignored");
        return;
    }
    if (msg_find(q, id))
        return; /* found by the start-up scan already */
    m = msg_load(q, SPOOL_QUEUE, id, Q_QUEUE, &gone);
    if (m == NULL) {
        if (gone)
            log_warn("%s: announced by smtpd but not in %s/", id, SPOOL_QUEUE);
        return;
    }
    q->st.received++;
    msg_register(q, m);
    if (log_enabled(LOG_LV_DETAIL))
        log_detail("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", m->id, m->sender,
                   (unsigned long long)m->size, m->nrcpt);
    schedule_msg(q, m);
}

struct msg *queue_requeued(struct qmgr *q, const char *id)
{
    struct msg *m;
    void *val = NULL;
    size_t len = 0;
    int gone;

    if (msg_find(q, id))
        return NULL;
    m = msg_load(q, SPOOL_QUEUE, id, Q_QUEUE, &gone);
    if (m == NULL)
        return NULL;
    if (store_get(q, id, &val, &len) == 1) {
        struct qrec_head h = {0};
        if (qrec_msg_decode(val, len, &h, m->rcpt, m->nrcpt) == 0) {
            m->requeued_us = h.requeued_us;
            m->in_db = 1;
        }
        qrec_head_clear(&h);
    }
    free(val);
    msg_register(q, m);
    schedule_msg(q, m);
    return m;
}

/* ---- forgetting and finishing ---- */

static void msg_unlink_groups(struct qmgr *q, struct msg *m)
{
    for (size_t g = 0; g < m->ngroups; g++) {
        struct group *gr = &m->groups[g];
        if (gr->st != G_ACTIVE)
            group_unschedule(q, gr);
        if (gr->d && gr->st != G_DONE && gr->d->ngroups) /* a done group was counted out */
            gr->d->ngroups--;
    }
}

void msg_forget(struct qmgr *q, struct msg *m)
{
    if (m->removed)
        return;
    store_forget(q, m);
    notice_forget(q, m);
    msg_unlink_groups(q, m);
    strmap_del(q->msgs, m->id);
    m->removed = 1;
    if (m->active == 0)
        msg_free(m);
}

void msg_release_ref(struct msg *m)
{
    if (m->active > 0)
        m->active--;
    if (m->removed && m->active == 0)
        msg_free(m);
}

/* Why a message with failed recipients goes where it goes. */
static const char *finish_reason(const struct msg *m, size_t failed, char *buf, size_t len)
{
    size_t told = 0;

    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].state == RS_FAILED && (m->rcpt[i].notes & QN_SENT_FAILURE))
            told++;
    if (m->sender[0])
        snprintf(buf, len, "%zu of %zu recipient%s failed; %s", failed, m->nrcpt,
                 m->nrcpt == 1 ? "" : "s",
                 told == failed ? "the sender was notified"
                 : told == 0    ? "the sender asked for no notice (NOTIFY)"
                                : "the sender was notified of those that asked for it");
    else if (m->notice_kind == QFILE_NOTICE_DSN)
        snprintf(buf, len, "a delivery notice about %s that could not be delivered%s", m->notice_of,
                 told ? "; the postmaster was told" : "");
    else if (m->notice_kind == QFILE_NOTICE_POSTMASTER)
        snprintf(buf, len, "a notice to the postmaster that could not be delivered");
    else
        snprintf(buf, len, "%zu of %zu recipient%s failed; null sender, no notice possible", failed,
                 m->nrcpt, m->nrcpt == 1 ? "" : "s");
    return buf;
}

void msg_finish(struct qmgr *q, struct msg *m)
{
    char path[64], to[64], why[200];
    size_t failed = 0;
    const char *dir;
    struct qrec_head h;
    char *err = NULL;

    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpt[i].state == RS_FAILED)
            failed++;
    msg_path(m, path, sizeof(path));
    if (failed == 0) {
        if (recycle_file(q, m, path) != 0 && unlink(path) != 0 && errno != ENOENT) {
            log_err("%s: cannot remove %s: %s", m->id, path, strerror(errno));
            return;
        }
        q->st.msg_done++;
        log_info("%s: removed (%zu recipient%s delivered)", m->id, m->nrcpt,
                 m->nrcpt == 1 ? "" : "s");
        msg_forget(q, m);
        return;
    }
    dir = m->sender[0] ? SPOOL_BOUNCED : SPOOL_BAD;
    finish_reason(m, failed, why, sizeof(why));
    /* the record says why before the file moves: smtpctl show bounced/bad */
    memset(&h, 0, sizeof(h));
    h.moved_us = now_us();
    h.reason = why;
    h.requeued_us = m->requeued_us;
    if (store_write_now(q, m, &h, &err) != 0) {
        log_err("%s: cannot save why it goes to %s/: %s", m->id, dir, err ? err : "unknown error");
        free(err);
    }
    snprintf(to, sizeof(to), "%s/%s", dir, m->id);
    if (rename(path, to) != 0) {
        log_err("%s: cannot move %s to %s/: %s", m->id, path, dir, strerror(errno));
        return;
    }
    if (m->sender[0]) {
        q->st.msg_bounced++;
        log_info("%s: moved to %s/ (%s; sender <%s>)", m->id, SPOOL_BOUNCED, why, m->sender);
    } else {
        q->st.msg_bad++;
        log_info("%s: moved to %s/ (%s)", m->id, SPOOL_BAD, why);
    }
    store_keep(q, m);
    msg_forget(q, m);
}

/* ---- admin operations ---- */

int msg_hold(struct qmgr *q, struct msg *m)
{
    char from[64], to[64];

    if (m->where == Q_HOLD)
        return 0;
    msg_path(m, from, sizeof(from));
    snprintf(to, sizeof(to), "%s/%s", SPOOL_HOLD, m->id);
    if (rename(from, to) != 0) {
        log_err("%s: cannot move to %s/: %s", m->id, SPOOL_HOLD, strerror(errno));
        return -1;
    }
    m->where = Q_HOLD;
    for (size_t g = 0; g < m->ngroups; g++)
        if (m->groups[g].st != G_ACTIVE)
            group_unschedule(q, &m->groups[g]);
    log_info("%s: held by the administrator", m->id);
    return 1;
}

int msg_release(struct qmgr *q, struct msg *m)
{
    char from[64], to[64];

    if (m->where != Q_HOLD)
        return 0;
    msg_path(m, from, sizeof(from));
    snprintf(to, sizeof(to), "%s/%s", SPOOL_QUEUE, m->id);
    if (rename(from, to) != 0) {
        log_err("%s: cannot move to %s/: %s", m->id, SPOOL_QUEUE, strerror(errno));
        return -1;
    }
    m->where = Q_QUEUE;
    log_info("%s: released by the administrator", m->id);
    /* Released mail is tried now, like flushed mail. */
    int64_t now = now_us();
    for (size_t i = 0; i < m->nrcpt; i++) {
        struct rcpt *r = &m->rcpt[i];
        if ((r->state == RS_PENDING || r->state == RS_DEFERRED) && r->next_try_us > now) {
            r->next_try_us = now;
            dest_clear_down(q, m->groups[r->group].d);
        }
    }
    for (size_t g = 0; g < m->ngroups; g++)
        if (m->groups[g].st != G_ACTIVE)
            group_schedule(q, &m->groups[g]);
    return 1;
}

int msg_remove(struct qmgr *q, struct msg *m)
{
    char path[64];

    msg_path(m, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT) {
        log_err("%s: cannot remove %s: %s", m->id, path, strerror(errno));
        return -1;
    }
    q->st.msg_removed++;
    log_info("%s: removed by the administrator%s", m->id,
             m->active ? " (a delivery in flight may still complete)" : "");
    msg_forget(q, m);
    return 1;
}

/* ---- start-up ---- */

static void scan_dir(struct qmgr *q, const char *dir, enum qwhere where)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL) {
        log_err("cannot read %s/: %s", dir, strerror(errno));
        return;
    }
    while ((e = readdir(d)) != NULL) {
        struct msg *m;
        int gone;
        if (e->d_name[0] == '.')
            continue;
        if (!qfile_id_valid(e->d_name)) {
            log_warn("%s/%s: not a queue file name; left alone", dir, e->d_name);
            continue;
        }
        if ((m = msg_find(q, e->d_name)) != NULL) {
            /* in queue/ and hold/ at once (a crash mid-rename cannot do
             * this; an admin can): keep the queue/ one */
            log_warn("%s: found in both %s/ and %s/; the %s/ copy is ignored", e->d_name,
                     SPOOL_QUEUE, SPOOL_HOLD, dir);
            continue;
        }
        m = msg_load(q, dir, e->d_name, where, &gone);
        if (m == NULL)
            continue;
        msg_register(q, m);
        q->st.loaded++;
    }
    closedir(d);
}

struct load_ctx {
    struct qmgr *q;
    char **stale;
    size_t nstale, cap;
    size_t matched, bad, kept;
};

/* id is a file in bounced/ or bad/. */
static int in_folder(const char *id)
{
    char p[64];
    struct stat st;

    if (!qfile_id_valid(id))
        return 0;
    snprintf(p, sizeof(p), "%s/%s", SPOOL_BOUNCED, id);
    if (lstat(p, &st) == 0)
        return 1;
    snprintf(p, sizeof(p), "%s/%s", SPOOL_BAD, id);
    return lstat(p, &st) == 0;
}

static void load_msg_rec(const char *key, const void *val, size_t len, void *arg)
{
    struct load_ctx *lc = arg;
    struct msg *m = msg_find(lc->q, key);

    if (m == NULL) {
        if (in_folder(key)) {
            lc->kept++;
            return; /* smtpctl show bounced / bad read it */
        }
        if (lc->nstale == lc->cap) {
            lc->cap = lc->cap ? lc->cap * 2 : 64;
            lc->stale = xrealloc(lc->stale, lc->cap * sizeof(*lc->stale));
        }
        lc->stale[lc->nstale++] = xstrdup(key);
        return;
    }
    struct qrec_head h = {0};
    if (qrec_msg_decode(val, len, &h, m->rcpt, m->nrcpt) != 0) {
        log_warn("%s: its state record does not match the queue file; starting it afresh", key);
        lc->bad++;
        m->in_db = 1; /* rewritten with fresh state below */
        store_mark(lc->q, m);
        return;
    }
    memcpy(m->notice, h.notice, sizeof(m->notice));
    m->requeued_us = h.requeued_us;
    qrec_head_clear(&h);
    m->in_db = 1;
    lc->matched++;
}

static void load_host_rec(const char *key, const void *val, size_t len, void *arg)
{
    struct load_ctx *lc = arg;
    struct dest *d;

    if (strncmp(key, QREC_HOST_PREFIX, strlen(QREC_HOST_PREFIX)) != 0)
        return;
    d = dest_get(lc->q, key + strlen(QREC_HOST_PREFIX));
    if (qrec_host_decode(val, len, &d->h) != 0) {
        log_warn("host record for %s is malformed; dropped", d->name);
        memset(&d->h, 0, sizeof(d->h));
    }
    d->in_db = 1;
}

void queue_start(struct qmgr *q)
{
    struct load_ctx lc = {q, NULL, 0, 0, 0, 0, 0};
    int64_t t0 = mono_us();
    size_t adopted = 0, held = 0;
    char *err = NULL;
    const char *key;
    void *val;
    size_t pos = 0;

    scan_dir(q, SPOOL_QUEUE, Q_QUEUE);
    scan_dir(q, SPOOL_HOLD, Q_HOLD);
    if (qstate_walk(q->db, 0, load_msg_rec, &lc, &err) < 0) {
        log_err("db: reading message state: %s", err);
        free(err);
        err = NULL;
    }
    if (qstate_walk(q->db, 1, load_host_rec, &lc, &err) < 0) {
        log_err("db: reading host state: %s", err);
        free(err);
        err = NULL;
    }
    if (lc.nstale) {
        if (qstate_begin(q->db, &err) == 0) {
            for (size_t i = 0; i < lc.nstale && err == NULL; i++)
                qstate_del(q->db, 0, lc.stale[i], &err);
            if (err == NULL)
                qstate_commit(q->db, &err);
            else
                qstate_abort(q->db);
        }
        if (err) {
            log_err("db: dropping stale records: %s", err);
            free(err);
        }
    }
    for (size_t i = 0; i < lc.nstale; i++)
        free(lc.stale[i]);
    free(lc.stale);
    struct msg **done = NULL;
    size_t ndone = 0;
    while (strmap_next(q->msgs, &pos, &key, &val)) {
        struct msg *m = val;
        if (!m->in_db)
            adopted++;
        notice_recover(q, m);
        if (notice_wanted(m))
            notice_mark(q, m); /* written soon; notice.c finishes m if it is final */
        if (m->where == Q_HOLD) {
            held++;
        } else if (m->notice_pos) {
            if (!msg_final(m))
                schedule_msg(q, m);
        } else if (msg_final(m)) {
            done = xrealloc(done, (ndone + 1) * sizeof(*done));
            done[ndone++] = m;
        } else {
            schedule_msg(q, m);
        }
    }
    /* Every recipient final but the file still there: finish it now. */
    for (size_t i = 0; i < ndone; i++)
        msg_finish(q, done[i]);
    free(done);
    q->st.adopted = adopted;
    log_info("queue loaded in %.3fs: %zu message%s (%zu held), %zu with saved state, %zu new to "
             "the state database, %zu stale record%s dropped",
             (double)(mono_us() - t0) / 1e6, strmap_count(q->msgs),
             strmap_count(q->msgs) == 1 ? "" : "s", held, lc.matched, adopted, lc.nstale,
             lc.nstale == 1 ? "" : "s");
}
