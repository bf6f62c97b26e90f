/*
 * store - batched writes of qmgr's state to BDB (qstate.h).
 *
 * Changes mark a message or destination dirty; one flush per loop
 * iteration writes everything dirty in transactions of at most
 * STORE_TXN_MAX operations (committed without a disk sync), and a timer
 * syncs the log once a second when something was written. A message
 * that is delivered before a flush never touches the database: new mail
 * has no record until something other than success happens to it, and a
 * finished message's record is deleted in the same batch as it would
 * have been written.
 *
 * A write error is logged and counted; the state stays in memory and is
 * written again with the next change. The queue files remain the truth.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "base/log.h"
#include "qmgr.h"
#include "qstate.h"

#define STORE_TXN_MAX 500
#define SYNC_INTERVAL_S 1
#define CHECKPOINT_EVERY 60 /* sync ticks */

static void schedule_flush(struct qmgr *q)
{
    if (q->flush_pending || q->flush_ev == NULL)
        return;
    q->flush_pending = 1;
    event_active(q->flush_ev, EV_TIMEOUT, 0);
}

void store_mark(struct qmgr *q, struct msg *m)
{
    m->in_db = 1;
    if (m->dirty_pos)
        return;
    if (q->ndirty == q->dirty_cap) {
        q->dirty_cap = q->dirty_cap ? q->dirty_cap * 2 : 256;
        q->dirty = xrealloc(q->dirty, q->dirty_cap * sizeof(*q->dirty));
    }
    q->dirty[q->ndirty++] = m;
    m->dirty_pos = q->ndirty;
    schedule_flush(q);
}

void store_forget(struct qmgr *q, struct msg *m)
{
    if (m->dirty_pos) {
        q->dirty[m->dirty_pos - 1] = NULL;
        m->dirty_pos = 0;
    }
    if (!m->in_db)
        return;
    m->in_db = 0;
    if (q->ndels == q->dels_cap) {
        q->dels_cap = q->dels_cap ? q->dels_cap * 2 : 256;
        q->dels = xrealloc(q->dels, q->dels_cap * sizeof(*q->dels));
    }
    q->dels[q->ndels++] = xstrdup(m->id);
    schedule_flush(q);
}

void msg_encode(struct ipc_w *w, const struct msg *m)
{
    struct qrec_head h;

    memset(&h, 0, sizeof(h));
    memcpy(h.notice, m->notice, sizeof(h.notice));
    h.requeued_us = m->requeued_us;
    qrec_msg_encode(w, &h, m->rcpt, m->nrcpt);
}

int store_put(struct qmgr *q, const char *key, const struct ipc_w *w, char **err)
{
    if (q->db == NULL) {
        *err = xstrdup("no state database");
        return -1;
    }
    if (qstate_begin(q->db, err) != 0)
        return -1;
    if (qstate_put(q->db, 0, key, w->p, w->len, err) != 0) {
        qstate_abort(q->db);
        return -1;
    }
    if (qstate_commit(q->db, err) != 0)
        return -1;
    q->st.db_writes++;
    q->st.db_commits++;
    q->synced = 0;
    return 0;
}

int store_paused(struct qmgr *q, int paused, char **err)
{
    int64_t since = now_us();

    if (q->db == NULL) {
        *err = xstrdup("no state database");
        return -1;
    }
    if (qstate_begin(q->db, err) != 0)
        return -1;
    if ((paused ? qstate_put(q->db, 1, STORE_PAUSED_KEY, &since, sizeof(since), err)
                : qstate_del(q->db, 1, STORE_PAUSED_KEY, err)) != 0) {
        qstate_abort(q->db);
        return -1;
    }
    if (qstate_commit(q->db, err) != 0)
        return -1;
    qstate_sync(q->db); /* an admin's pause outlives a crash, too */
    return 0;
}

int64_t store_paused_since(struct qmgr *q)
{
    void *val = NULL;
    size_t len = 0;
    char *err = NULL;
    int64_t since = 0;
    int r = qstate_get(q->db, 1, STORE_PAUSED_KEY, &val, &len, &err);

    if (r < 0) {
        log_warn("cannot read whether delivery was paused: %s", err);
        free(err);
    } else if (r > 0 && len == sizeof(since)) {
        memcpy(&since, val, sizeof(since));
    } else if (r > 0) {
        since = 1; /* paused, time unknown */
    }
    free(val);
    return since;
}

int store_write_now(struct qmgr *q, struct msg *m, const struct qrec_head *h, char **err)
{
    struct ipc_w w;
    int rc;

    ipc_w_init(&w);
    if (h)
        qrec_msg_encode(&w, h, m->rcpt, m->nrcpt);
    else
        msg_encode(&w, m);
    rc = store_put(q, m->id, &w, err);
    ipc_w_free(&w);
    if (rc != 0) {
        q->st.db_errors++;
        store_mark(q, m);
        return -1;
    }
    m->in_db = 1;
    if (m->dirty_pos) {
        q->dirty[m->dirty_pos - 1] = NULL;
        m->dirty_pos = 0;
    }
    return 0;
}

void store_keep(struct qmgr *q, struct msg *m)
{
    if (m->dirty_pos) {
        q->dirty[m->dirty_pos - 1] = NULL;
        m->dirty_pos = 0;
    }
    m->in_db = 0; /* msg_forget's store_forget must not delete the record */
}

void store_write_bad(struct qmgr *q, const char *id, const char *why)
{
    struct qrec_head h;
    struct ipc_w w;
    char *err = NULL;

    memset(&h, 0, sizeof(h));
    h.moved_us = now_us();
    h.reason = (char *)(uintptr_t)why;
    ipc_w_init(&w);
    qrec_msg_encode(&w, &h, NULL, 0);
    if (store_put(q, id, &w, &err) != 0) {
        q->st.db_errors++;
        log_err("%s: db: saving why it is in bad/: %s", id, err ? err : "unknown error");
        free(err);
    }
    ipc_w_free(&w);
}

int store_del(struct qmgr *q, const char *id)
{
    char *err = NULL;

    if (q->db == NULL)
        return -1;
    if (qstate_begin(q->db, &err) != 0 || qstate_del(q->db, 0, id, &err) != 0 ||
        qstate_commit(q->db, &err) != 0) {
        qstate_abort(q->db);
        q->st.db_errors++;
        log_err("db: deleting the record of %s: %s", id, err ? err : "unknown error");
        free(err);
        return -1;
    }
    return 0;
}

int store_get(struct qmgr *q, const char *id, void **val, size_t *len)
{
    char *err = NULL;
    int rc;

    if (q->db == NULL)
        return -1;
    rc = qstate_get(q->db, 0, id, val, len, &err);
    if (rc < 0) {
        log_err("db: %s", err ? err : "read failed");
        free(err);
    }
    return rc;
}

void store_mark_dest(struct qmgr *q, struct dest *d)
{
    if (d->dirty_pos)
        return;
    if (q->nddirty == q->ddirty_cap) {
        q->ddirty_cap = q->ddirty_cap ? q->ddirty_cap * 2 : 64;
        q->ddirty = xrealloc(q->ddirty, q->ddirty_cap * sizeof(*q->ddirty));
    }
    q->ddirty[q->nddirty++] = d;
    d->dirty_pos = q->nddirty;
    schedule_flush(q);
}

/* Count one operation; commit and start a new transaction every
 * STORE_TXN_MAX. Returns -1 (with *err) on failure. */
static int op_done(struct qmgr *q, int *ops, char **err)
{
    q->st.db_writes++;
    if (++*ops < STORE_TXN_MAX)
        return 0;
    *ops = 0;
    if (qstate_commit(q->db, err) != 0)
        return -1;
    q->st.db_commits++;
    return qstate_begin(q->db, err);
}

static int flush_all(struct qmgr *q, char **err)
{
    struct ipc_w w;
    int ops = 0, rc = 0;

    if (qstate_begin(q->db, err) != 0)
        return -1;
    ipc_w_init(&w);
    for (size_t i = 0; i < q->ndirty && rc == 0; i++) {
        struct msg *m = q->dirty[i];
        if (m == NULL)
            continue;
        m->dirty_pos = 0;
        q->dirty[i] = NULL;
        w.len = 0;
        msg_encode(&w, m);
        if (qstate_put(q->db, 0, m->id, w.p, w.len, err) != 0 || op_done(q, &ops, err) != 0)
            rc = -1;
    }
    for (size_t i = 0; i < q->ndels && rc == 0; i++) {
        if (qstate_del(q->db, 0, q->dels[i], err) != 0 || op_done(q, &ops, err) != 0)
            rc = -1;
    }
    for (size_t i = 0; i < q->nddirty && rc == 0; i++) {
        struct dest *d = q->ddirty[i];
        char *key = xasprintf("%s%s", QREC_HOST_PREFIX, d->name);
        d->dirty_pos = 0;
        if (d->h.consecutive == 0 && d->h.down_until_us == 0) {
            if (d->in_db)
                rc = qstate_del(q->db, 1, key, err);
            d->in_db = 0;
        } else {
            w.len = 0;
            qrec_host_encode(&w, &d->h);
            rc = qstate_put(q->db, 1, key, w.p, w.len, err);
            d->in_db = 1;
        }
        free(key);
        if (rc == 0)
            rc = op_done(q, &ops, err);
    }
    ipc_w_free(&w);
    if (rc != 0) {
        qstate_abort(q->db);
        return -1;
    }
    if (qstate_commit(q->db, err) != 0)
        return -1;
    q->st.db_commits++;
    return 0;
}

void store_flush(struct qmgr *q)
{
    char *err = NULL;

    q->flush_pending = 0;
    if (q->db == NULL)
        return;
    if (q->ndirty == 0 && q->ndels == 0 && q->nddirty == 0)
        return;
    if (flush_all(q, &err) != 0) {
        q->st.db_errors++;
        log_err("db: saving queue state failed: %s (the state is kept in memory and saved with "
                "the next change)",
                err ? err : "unknown error");
        free(err);
        /* what was not written is lost from the dirty lists; mark the
         * rest again so the next change retries it */
        for (size_t i = 0; i < q->nddirty; i++)
            q->ddirty[i]->dirty_pos = 0;
    }
    for (size_t i = 0; i < q->ndels; i++)
        free(q->dels[i]);
    q->ndels = 0;
    q->ndirty = 0;
    q->nddirty = 0;
    q->synced = 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    store_flush(arg);
}

static void sync_cb(evutil_socket_t fd, short what, void *arg)
{
    static unsigned ticks;
    struct qmgr *q = arg;

    if (!q->synced) {
        if (qstate_sync(q->db) != 0)
            log_err("db: log flush failed");
        q->synced = 1;
    }
    if (++ticks % CHECKPOINT_EVERY == 0)
        qstate_checkpoint(q->db);
}

void store_init(struct qmgr *q)
{
    struct timeval tv = {SYNC_INTERVAL_S, 0};

    q->flush_ev = event_new(q->base, -1, 0, flush_cb, q);
    q->sync_ev = event_new(q->base, -1, EV_PERSIST, sync_cb, q);
    event_add(q->sync_ev, &tv);
    q->synced = 1;
}

void store_close(struct qmgr *q)
{
    if (q->db == NULL)
        return;
    store_flush(q);
    qstate_close(q->db);
    q->db = NULL;
}
