/*
 * commit - group commit of accepted messages into queue/ (see commit.h).
 */
#include "commit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "mail/spool.h"

/*
 * The sync thread's side. `work` belongs to the thread from the moment the
 * loop sets have_work until the thread sets done; the loop takes it back
 * from on_sync_done (or commit_run). Everything else is the loop's.
 */
struct sync_worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int efd;
    struct event *efd_ev;
    struct qmsg_list work;
    int have_work, done, quit;
    int dir_ok, dir_errno;
    int64_t t0, sync_us;
    int incoming_fd, queue_fd;
};

static void start_batch(struct committer *c);
static void take_back(struct committer *c);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    start_batch(arg);
}

/* Steps 2-4 for a batch whose files are written. Runs in either thread;
 * touches only the batch's messages and the directory fds; never logs. */
static void sync_batch(struct qmsg_list *batch, int incoming_fd, int queue_fd, int *dir_ok,
                       int *dir_errno)
{
    struct qmsg *m;
    size_t renamed = 0;

    /*
     * Start writeback of every file first: block allocation and data
     * writes of the whole batch then go into one journal transaction, and
     * the fdatasync calls below mostly wait for I/O already under way
     * instead of each forcing its own commit (measured: about 1.5x more
     * messages per second at batches of 10 on ext4). Errors surface in
     * fdatasync.
     */
    TAILQ_FOREACH(m, batch, link)
    if (!m->failed)
        (void)sync_file_range(m->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    TAILQ_FOREACH(m, batch, link)
    {
        if (m->failed || fdatasync(m->fd) == 0)
            continue;
        m->failed = 1;
        m->sync_what = "cannot sync";
        m->sync_errno = errno;
    }
    TAILQ_FOREACH(m, batch, link)
    {
        if (m->failed)
            continue;
        if (renameat2(incoming_fd, m->id, queue_fd, m->id, RENAME_NOREPLACE) != 0) {
            m->failed = 1;
            m->sync_what = errno == EEXIST ? "queue file exists already (clock went back?) for"
                                           : "cannot rename";
            m->sync_errno = errno;
            continue;
        }
        m->committed = 1;
        renamed++;
    }
    *dir_ok = 1;
    *dir_errno = 0;
    if (renamed && fsync(queue_fd) != 0) {
        *dir_ok = 0;
        *dir_errno = errno;
    }
}

static void *sync_main(void *arg)
{
    struct sync_worker *w = arg;
    sigset_t all;

    /* Signals are the loop's business. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while ((!w->have_work || w->done) && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit)
            break;
        pthread_mutex_unlock(&w->mu);
        int dir_ok, dir_errno;
        sync_batch(&w->work, w->incoming_fd, w->queue_fd, &dir_ok, &dir_errno);
        uint64_t one = 1;
        pthread_mutex_lock(&w->mu);
        w->dir_ok = dir_ok;
        w->dir_errno = dir_errno;
        w->sync_us = mono_us() - w->t0;
        w->done = 1;
        pthread_cond_broadcast(&w->cv);
        if (write(w->efd, &one, sizeof(one)) < 0) {
            /* The counter cannot overflow with one write per batch. */
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void on_sync_done(evutil_socket_t fd, short what, void *arg)
{
    struct committer *c = arg;
    uint64_t v;

    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("commit: eventfd read: %s", strerror(errno));
    take_back(c);
    if (c->nbatch)
        start_batch(c);
}

static int worker_start(struct committer *c, char **err)
{
    struct sync_worker *w = xcalloc(1, sizeof(*w));
    int r;

    TAILQ_INIT(&w->work);
    w->incoming_fd = c->incoming_fd;
    w->queue_fd = c->queue_fd;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        *err = xasprintf("commit: eventfd: %s", strerror(errno));
        free(w);
        return -1;
    }
    w->efd_ev = event_new(c->base, w->efd, EV_READ | EV_PERSIST, on_sync_done, c);
    event_add(w->efd_ev, NULL);
    if ((r = pthread_create(&w->th, NULL, sync_main, w)) != 0) {
        *err = xasprintf("commit: cannot start the sync thread: %s", strerror(r));
        event_free(w->efd_ev);
        close(w->efd);
        free(w);
        return -1;
    }
    c->w = w;
    return 0;
}

static void clean_incoming(struct committer *c)
{
    unsigned failed, n = dir_clear(c->incoming_fd, &failed);

    if (n)
        log_info("removed %u unfinished message(s) from %s/ (left by an earlier stop)", n,
                 SPOOL_INCOMING);
    if (failed)
        log_warn("cannot remove %u stale file(s) from %s/", failed, SPOOL_INCOMING);
    /* Files qmgr freed before this process started: see commit.h. */
    if (c->free_fd >= 0 && (n = dir_clear(c->free_fd, NULL)) > 0)
        log_debug("removed %u old file(s) from %s/", n, SPOOL_FREE);
}

int commit_init(struct committer *c, struct event_base *base, char **err)
{
    memset(c, 0, sizeof(*c));
    c->free_fd = -1;
    c->base = base;
    TAILQ_INIT(&c->batch);
    c->incoming_fd = open(SPOOL_INCOMING, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    c->queue_fd = open(SPOOL_QUEUE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->incoming_fd < 0 || c->queue_fd < 0) {
        *err = xasprintf("cannot open the spool's %s/ and %s/: %s", SPOOL_INCOMING, SPOOL_QUEUE,
                         strerror(errno));
        return -1;
    }
    /* free/ is optional: without it files are created, never reused. */
    c->free_fd = open(SPOOL_FREE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->free_fd < 0)
        log_info("no %s/ in the spool (%s): queue files are not recycled", SPOOL_FREE,
                 strerror(errno));
    c->ev = event_new(base, -1, 0, on_timer, c);
    clean_incoming(c);
    return worker_start(c, err);
}

void commit_free(struct committer *c)
{
    struct sync_worker *w = c->w;

    if (w) {
        commit_run(c);
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
        event_free(w->efd_ev);
        close(w->efd);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        c->w = NULL;
    }
    if (c->ev)
        event_free(c->ev);
    if (c->incoming_fd >= 0)
        close(c->incoming_fd);
    if (c->queue_fd >= 0)
        close(c->queue_fd);
    if (c->free_fd >= 0)
        close(c->free_fd);
    free(c->pool);
    c->pool = NULL;
    c->npool = c->pool_max = 0;
    c->free_fd = -1;
    c->ev = NULL;
}

void commit_set_pool_max(struct committer *c, size_t max)
{
    while (c->npool > max) {
        c->npool--;
        unlinkat(c->free_fd, c->pool[c->npool], 0);
    }
    c->pool = xrealloc(c->pool, (max ? max : 1) * sizeof(*c->pool));
    c->pool_max = max;
}

void commit_recycle(struct committer *c, const char *name)
{
    if (c->free_fd < 0)
        return;
    if (!qfile_id_valid(name))
        return; /* not ours to touch: only queue IDs are ever put there */
    if (c->npool >= c->pool_max) {
        unlinkat(c->free_fd, name, 0);
        c->st.pool_dropped++;
        return;
    }
    memcpy(c->pool[c->npool++], name, QFILE_ID_SIZE);
}

/*
 * A file for incoming/ID: the newest name of the pool (its blocks are the
 * likeliest to be cached), else a new file. A name that is gone (removed
 * at a restart, say) is skipped.
 */
static int open_file(struct committer *c, struct qmsg *m)
{
    while (c->npool > 0) {
        const char *name = c->pool[--c->npool];
        if (renameat2(c->free_fd, name, c->incoming_fd, m->id, RENAME_NOREPLACE) != 0)
            continue;
        m->fd = openat(c->incoming_fd, m->id, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (m->fd >= 0) {
            m->recycled = 1;
            c->st.recycled++;
            return 0;
        }
        unlinkat(c->incoming_fd, m->id, 0);
    }
    m->fd = openat(c->incoming_fd, m->id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (m->fd < 0)
        return -1;
    c->st.created++;
    return 0;
}

struct qmsg *qmsg_new(const char *id)
{
    struct qmsg *m = xcalloc(1, sizeof(*m));

    strlcpy_p(m->id, id, sizeof(m->id));
    buf_init(&m->head);
    buf_init(&m->body);
    m->fd = -1;
    return m;
}

void qmsg_free(struct committer *c, struct qmsg *m)
{
    if (m->fd >= 0) {
        close(m->fd);
        if (!m->committed)
            unlinkat(c->incoming_fd, m->id, 0);
    }
    buf_free(&m->head);
    buf_free(&m->body);
    free(m);
}

static int write_full(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static uint64_t msg_size(const struct qmsg *m)
{
    return (uint64_t)(m->head.len - m->env_len) + m->body_len;
}

static void fail(struct committer *c, struct qmsg *m, const char *what)
{
    if (!m->failed)
        log_err("%s: %s %s/%s: %s", m->id, what, SPOOL_INCOMING, m->id, strerror(errno));
    m->failed = 1;
}

/* Create incoming/ID and write the head and what body we have. */
static int create_file(struct committer *c, struct qmsg *m)
{
    struct iovec iov[2];
    size_t total, done = 0;

    if (open_file(c, m) != 0) {
        fail(c, m, "cannot create");
        return -1;
    }
    qfile_size_field(msg_size(m), m->head.data + m->size_off);
    iov[0].iov_base = m->head.data;
    iov[0].iov_len = m->head.len;
    iov[1].iov_base = m->body.data;
    iov[1].iov_len = m->body.len;
    total = m->head.len + m->body.len;
    while (done < total) {
        ssize_t w = writev(m->fd, iov, 2);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fail(c, m, "cannot write");
            return -1;
        }
        done += (size_t)w;
        m->file_len += (uint64_t)w;
        if (done >= total)
            break;
        /* Partial write: advance the vectors and go on. */
        for (int i = 0; i < 2; i++) {
            size_t k = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + k;
            iov[i].iov_len -= k;
            w -= (ssize_t)k;
        }
    }
    buf_reset(&m->body);
    return 0;
}

int qmsg_spill(struct committer *c, struct qmsg *m)
{
    if (m->failed)
        return -1;
    if (m->fd < 0)
        return create_file(c, m);
    if (write_full(m->fd, m->body.data, m->body.len) != 0) {
        fail(c, m, "cannot write");
        return -1;
    }
    m->file_len += m->body.len;
    buf_reset(&m->body);
    return 0;
}

/* A reused file may be longer than this message: cut what is left of
 * the old one. */
static void cut_file(struct committer *c, struct qmsg *m)
{
    if (!m->failed && m->recycled && ftruncate(m->fd, (off_t)m->file_len) != 0)
        fail(c, m, "cannot truncate");
}

/* Last part of a message: rest of the body and, if spilled, the size. */
static void finish_file(struct committer *c, struct qmsg *m)
{
    char sf[20];

    if (m->failed)
        return;
    if (m->fd < 0) {
        if (create_file(c, m) == 0)
            cut_file(c, m);
        return;
    }
    if (write_full(m->fd, m->body.data, m->body.len) != 0) {
        fail(c, m, "cannot write");
        return;
    }
    m->file_len += m->body.len;
    buf_reset(&m->body);
    qfile_size_field(msg_size(m), sf);
    if (pwrite(m->fd, sf, sizeof(sf), (off_t)m->size_off) != (ssize_t)sizeof(sf))
        fail(c, m, "cannot write the size of");
    cut_file(c, m);
}

void commit_submit(struct committer *c, struct qmsg *m, qmsg_done_fn done, void *arg)
{
    static const struct timeval zero = {0, 0};

    m->done = done;
    m->arg = arg;
    TAILQ_INSERT_TAIL(&c->batch, m, link);
    c->nbatch++;
    if (!evtimer_pending(c->ev, NULL))
        evtimer_add(c->ev, &zero);
}

/* Step 5, in the loop: log what failed, then tell every session. */
static void complete_batch(struct committer *c, struct qmsg_list *batch, size_t n, int dir_ok,
                           int dir_errno, int64_t sync_us)
{
    struct qmsg *m;

    TAILQ_FOREACH(m, batch, link)
    if (m->sync_what)
        log_err("%s: %s %s/%s: %s", m->id, m->sync_what, SPOOL_INCOMING, m->id,
                strerror(m->sync_errno));
    if (!dir_ok)
        log_err("cannot sync %s/: %s", SPOOL_QUEUE, strerror(dir_errno));
    c->st.sync_us += (uint64_t)sync_us;
    c->st.batches++;
    if (n > c->st.max_batch)
        c->st.max_batch = n;

    while ((m = TAILQ_FIRST(batch)) != NULL) {
        int ok = m->committed && dir_ok;
        TAILQ_REMOVE(batch, m, link);
        if (m->committed && !dir_ok) {
            /* Not durable: take it back rather than risk a half-known message. */
            unlinkat(c->queue_fd, m->id, 0);
        }
        if (ok) {
            c->st.messages++;
            c->st.bytes += msg_size(m);
        } else {
            c->st.failed++;
            if (!m->committed)
                unlinkat(c->incoming_fd, m->id, 0);
            m->committed = 1; /* nothing left in incoming/ to remove */
        }
        if (m->fd >= 0) {
            close(m->fd);
            m->fd = -1;
        }
        m->done(m, ok, m->arg);
    }
}

/* Take the filling batch and write its files (step 1). Returns its size. */
static size_t take_batch(struct committer *c, struct qmsg_list *batch)
{
    struct qmsg *m;
    size_t n = c->nbatch;

    if (evtimer_pending(c->ev, NULL))
        evtimer_del(c->ev);
    TAILQ_INIT(batch);
    TAILQ_CONCAT(batch, &c->batch, link);
    c->nbatch = 0;
    TAILQ_FOREACH(m, batch, link)
    finish_file(c, m);
    return n;
}

/* Hand the filling batch to the sync thread, unless it is busy (the batch
 * then keeps filling and starts when the thread hands its batch back). */
static void start_batch(struct committer *c)
{
    struct sync_worker *w = c->w;
    struct qmsg_list batch;
    size_t n;

    if (c->nbatch == 0)
        return;
    pthread_mutex_lock(&w->mu);
    int busy = w->have_work;
    pthread_mutex_unlock(&w->mu);
    if (busy)
        return;
    n = take_batch(c, &batch);
    pthread_mutex_lock(&w->mu);
    TAILQ_CONCAT(&w->work, &batch, link);
    c->st.inflight = n;
    w->t0 = mono_us();
    w->have_work = 1;
    w->done = 0;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Take a finished batch back from the sync thread and complete it. */
static void take_back(struct committer *c)
{
    struct sync_worker *w = c->w;
    struct qmsg_list batch;
    int dir_ok, dir_errno;
    int64_t us;

    pthread_mutex_lock(&w->mu);
    if (!w->have_work || !w->done) {
        pthread_mutex_unlock(&w->mu);
        return;
    }
    TAILQ_INIT(&batch);
    TAILQ_CONCAT(&batch, &w->work, link);
    dir_ok = w->dir_ok;
    dir_errno = w->dir_errno;
    us = w->sync_us;
    w->have_work = 0;
    w->done = 0;
    pthread_mutex_unlock(&w->mu);
    complete_batch(c, &batch, c->st.inflight, dir_ok, dir_errno, us);
}

void commit_run(struct committer *c)
{
    struct sync_worker *w = c->w;
    struct qmsg_list batch;
    size_t n;
    int dir_ok, dir_errno;
    int64_t t0;

    /* The thread's batch first, so messages are acknowledged in order. */
    pthread_mutex_lock(&w->mu);
    while (w->have_work && !w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    take_back(c);
    if (c->nbatch == 0)
        return;
    n = take_batch(c, &batch);
    t0 = mono_us();
    sync_batch(&batch, c->incoming_fd, c->queue_fd, &dir_ok, &dir_errno);
    complete_batch(c, &batch, n, dir_ok, dir_errno, mono_us() - t0);
}
