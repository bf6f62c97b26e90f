/*
 * pickup - queueing the files of maildrop/ through a session (see
 * pickup.h).
 */
#include "pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "mail/smtp_reply.h"
#include "mail/spool.h"

#define CHUNK (64 * 1024)
#define QUEUE_MAX 10000   /* names waiting; more are found by the next scan */
#define STALE_TMP_S 86400 /* a postdrop temporary this old belongs to a dead postdrop */

/* ---- one file through a session (pure) ---- */

enum { TX_CMDS, TX_DATA, TX_ENDED, TX_DONE };

void pickup_tx_init(struct pickup_tx *t, const struct sess_conf *conf, size_t cmd_limit, long uid,
                    int trusted)
{
    struct maildrop_limits lim = {cmd_limit, conf->rcpt_limit, conf->size_limit};

    memset(t, 0, sizeof(*t));
    sess_init(&t->s, conf, "127.0.0.1", 0, 1, trusted, 0);
    sess_set_maildrop(&t->s, uid);
    maildrop_rd_init(&t->rd, &lim);
    buf_init(&t->out);
    buf_init(&t->line);
    t->stage = TX_CMDS;
    /* ESMTP, so that the file's MAIL and RCPT parameters are allowed */
    sess_line(&t->s, "EHLO localhost", 14, &t->out);
}

void pickup_tx_free(struct pickup_tx *t)
{
    sess_free(&t->s);
    maildrop_rd_free(&t->rd);
    buf_free(&t->out);
    buf_free(&t->line);
}

static int decided(struct pickup_tx *t, int result)
{
    t->stage = TX_DONE;
    t->result = result;
    return result;
}

static int malformed(struct pickup_tx *t, const char *why)
{
    snprintf(t->why, sizeof(t->why), "%s", why);
    return decided(t, PT_MALFORMED);
}

/* The code of the last reply line in t->out; that line, sanitised, in why. */
static int last_reply(struct pickup_tx *t)
{
    const char *s = t->out.data;
    size_t end = t->out.len, start;

    while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r'))
        end--;
    for (start = end; start > 0 && s[start - 1] != '\n'; start--)
        ;
    if (end - start < 3)
        return 0;
    smtp_sanitize(t->why, sizeof(t->why), s + start, end - start);
    for (int i = 0; i < 3; i++)
        if (s[start + i] < '0' || s[start + i] > '9')
            return 0;
    return (s[start] - '0') * 100 + (s[start + 1] - '0') * 10 + (s[start + 2] - '0');
}

/* A reply that ends the transaction: refused (4xx/5xx) or not understood. */
static int refused(struct pickup_tx *t, int code)
{
    if (code < 400 || code > 599)
        return malformed(t, "unexpected reply from the session");
    t->code = code;
    return decided(t, PT_REFUSED);
}

static int command(struct pickup_tx *t, const char *item, size_t len)
{
    enum sess_act act;
    int code;

    buf_reset(&t->line);
    buf_add(&t->line, item, len);
    buf_reset(&t->out);
    act = sess_line(&t->s, t->line.data, t->line.len, &t->out);
    code = last_reply(t);
    if (act == SA_DATA) {
        t->stage = TX_DATA;
        return PT_DATA;
    }
    if (act == SA_NONE && code >= 200 && code <= 299)
        return PT_MORE;
    return refused(t, code);
}

static int data(struct pickup_tx *t, const char *item, size_t len, struct buf *body)
{
    size_t before = body->len;
    size_t k = data_dec_feed(&t->s.dec, item, len, body);

    if (body->len > before)
        hops_feed(&t->s.hops, body->data + before, body->len - before);
    if (k != len)
        return malformed(t, "the data goes on after its end"); /* the reader says where it ends */
    return PT_MORE;
}

static int data_end(struct pickup_tx *t)
{
    enum sess_act act;

    if (!t->s.dec.done)
        return malformed(t, "the data has no end");
    buf_reset(&t->out);
    act = sess_data_end(&t->s, &t->out);
    if (act == SA_COMMIT) {
        t->stage = TX_ENDED;
        return PT_MORE;
    }
    return refused(t, last_reply(t));
}

int pickup_tx_feed(struct pickup_tx *t, const char *p, size_t n, size_t *used, struct buf *body)
{
    *used = 0;
    if (t->stage == TX_DONE)
        return t->result;
    for (;;) {
        const char *item;
        size_t k, ilen;
        int r = PT_MORE;

        switch (maildrop_rd_next(&t->rd, p + *used, n - *used, &k, &item, &ilen)) {
        case MD_MORE:
            *used += k;
            return PT_MORE;
        case MD_ERR:
            *used += k;
            return malformed(t, t->rd.why);
        case MD_CMD:
            r = command(t, item, ilen);
            break;
        case MD_BODY:
            r = data(t, item, ilen, body);
            break;
        case MD_END:
            r = data_end(t);
            break;
        }
        *used += k;
        if (r != PT_MORE)
            return r;
    }
}

int pickup_tx_finish(struct pickup_tx *t)
{
    if (t->stage == TX_DONE)
        return t->result;
    if (maildrop_rd_finish(&t->rd) < 0)
        return malformed(t, t->rd.why);
    if (t->stage != TX_ENDED)
        return malformed(t, "the file ends before the message does");
    return decided(t, PT_END);
}

/* ---- the maildrop directory ---- */

struct job {
    struct pickup *p;
    char name[NAME_MAX + 1];
    long uid;
    struct pickup_tx tx;
    struct qmsg *m;
};

struct pickup {
    struct pickup_env env;
    int dir_fd, bad_fd, ifd;
    struct event *iev, *scan_ev, *next_ev;
    char **q; /* names waiting, oldest first */
    size_t nq, qcap;
    struct job *busy; /* the file whose message is being committed */
    char *chunk;
    struct buf scratch; /* body output before DATA (there is none) */
    int stopping;
    struct pickup_stats st;
};

static int waiting(const struct pickup *p, const char *name)
{
    if (p->busy && strcmp(p->busy->name, name) == 0)
        return 1;
    for (size_t i = 0; i < p->nq; i++)
        if (strcmp(p->q[i], name) == 0)
            return 1;
    return 0;
}

static void enqueue(struct pickup *p, const char *name)
{
    if (name[0] == '.' || strlen(name) > NAME_MAX || p->nq >= QUEUE_MAX || waiting(p, name))
        return;
    if (p->nq == p->qcap) {
        p->qcap = p->qcap ? p->qcap * 2 : 16;
        p->q = xrealloc(p->q, p->qcap * sizeof(*p->q));
    }
    p->q[p->nq++] = xstrdup(name);
}

/* The next file on the next loop turn, when there is one and we may. */
static void schedule(struct pickup *p)
{
    static const struct timeval now = {0, 0};

    if (p->stopping || p->busy || p->nq == 0 || !p->env.accepting(p->env.arg))
        return;
    if (!evtimer_pending(p->next_ev, NULL))
        evtimer_add(p->next_ev, &now);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A postdrop killed before its rename leaves its temporary file. */
static void remove_stale(struct pickup *p, const char *name)
{
    struct stat st;

    if (strncmp(name, ".tmp.", 5) != 0 || fstatat(p->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        st.st_mtime > time(NULL) - STALE_TMP_S)
        return;
    if (unlinkat(p->dir_fd, name, 0) == 0)
        log_info("maildrop: removed %s/%s, left by a postdrop that did not finish (uid %ld)",
                 SPOOL_MAILDROP, name, (long)st.st_uid);
}

/* Every file in maildrop/, in name order (oldest first: TIME.RANDOM). */
static void scan(struct pickup *p)
{
    int fd = openat(p->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    if (d == NULL) {
        log_err("maildrop: cannot read %s/: %s", SPOOL_MAILDROP, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            remove_stale(p, e->d_name);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n; i++) {
        enqueue(p, names[i]);
        free(names[i]);
    }
    free(names);
}

static void move_aside(struct pickup *p, const char *name, long uid, const char *why)
{
    char who[40] = "";

    if (uid >= 0)
        snprintf(who, sizeof(who), " from uid %ld", uid);
    if (p->bad_fd >= 0 && renameat2(p->dir_fd, name, p->bad_fd, name, RENAME_NOREPLACE) == 0) {
        p->st.refused++;
        log_warn("maildrop: %s%s refused: %s; moved to %s/%s", name, who, why, SPOOL_MAILDROP_BAD,
                 name);
        return;
    }
    log_err("maildrop: %s%s refused: %s; cannot move it to %s/: %s; it stays in %s/", name, who,
            why, SPOOL_MAILDROP_BAD, p->bad_fd >= 0 ? strerror(errno) : "no such directory",
            SPOOL_MAILDROP);
}

static void defer_name(struct pickup *p, const char *name, const char *why)
{
    p->st.deferred++;
    log_warn("maildrop: %s deferred: %s; it stays in %s/ for the next scan", name, why,
             SPOOL_MAILDROP);
}

static void defer(struct pickup *p, const struct job *j, const char *why)
{
    p->st.deferred++;
    log_warn("maildrop: %s from uid %ld deferred: %s; it stays in %s/ for the next scan", j->name,
             j->uid, why, SPOOL_MAILDROP);
}

static void job_free(struct pickup *p, struct job *j)
{
    if (j->m)
        qmsg_free(p->env.commit, j->m);
    pickup_tx_free(&j->tx);
    free(j);
}

/* DATA was accepted: the queue message with its envelope and Received:. */
static void start_message(struct pickup *p, struct job *j)
{
    struct qfile_env env;
    struct qfile_rcpt *rc = xcalloc(j->tx.s.nrcpt, sizeof(*rc));
    char id[QFILE_ID_SIZE];
    int64_t now = now_us();
    const char *why;

    qfile_id_next(p->env.idgen, now, id);
    j->m = qmsg_new(id);
    sess_envelope(&j->tx.s, id, now, &env, rc);
    if (qfile_env_write(&j->m->head, &env, &j->m->size_off, &why) != 0) {
        log_err("%s: cannot build the envelope: %s", id, why);
        j->m->failed = 1;
    }
    free(rc);
    j->m->env_len = j->m->head.len;
    sess_received(&j->tx.s, id, now, &j->m->head);
}

/* The file's bytes through the transaction: a PT_* result, or -1 when
 * the file could not be read (errno). */
static int read_file(struct pickup *p, struct job *j, int fd)
{
    for (;;) {
        ssize_t n = read(fd, p->chunk, CHUNK);
        size_t off = 0;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return pickup_tx_finish(&j->tx);
        while (off < (size_t)n) {
            struct buf *body = j->m ? &j->m->body : &p->scratch;
            size_t used, before = body->len;
            int r = pickup_tx_feed(&j->tx, p->chunk + off, (size_t)n - off, &used, body);
            off += used;
            if (j->m) {
                j->m->body_len += body->len - before;
                if (j->m->body.len >= COMMIT_SPILL && !j->m->failed)
                    qmsg_spill(p->env.commit, j->m);
            }
            if (r == PT_DATA)
                start_message(p, j);
            else if (r != PT_MORE)
                return r;
        }
    }
}

static void on_committed(struct qmsg *m, int ok, void *arg)
{
    struct job *j = arg;
    struct pickup *p = j->p;
    const struct sess *s = &j->tx.s;

    j->m = NULL;
    p->busy = NULL;
    if (ok) {
        p->env.queued(p->env.arg, m->id, m->body_len);
        log_info("%s: accepted from=<%s> size=%llu nrcpt=%zu uid=%ld via=maildrop file=%s", m->id,
                 s->sender ? s->sender : "", (unsigned long long)m->body_len, s->nrcpt, j->uid,
                 j->name);
        p->st.picked++;
        if (unlinkat(p->dir_fd, j->name, 0) != 0 && errno != ENOENT)
            log_err("%s: queued, but %s/%s cannot be removed: %s; remove it by hand or it is "
                    "sent again",
                    m->id, SPOOL_MAILDROP, j->name, strerror(errno));
    } else {
        defer(p, j, "the queue file could not be written");
    }
    qmsg_free(p->env.commit, m);
    job_free(p, j);
    schedule(p);
}

/* What a file must be before its content is read; NULL when it is fit. */
static const char *unfit(const struct pickup *p, const struct stat *st, char *why, size_t whysz)
{
    const struct sess_conf *conf = p->env.conf;
    uint64_t max =
        2 * conf->size_limit + (uint64_t)(conf->rcpt_limit + 3) * p->env.cmd_limit(p->env.arg) + 64;

    if (!S_ISREG(st->st_mode))
        return "not a regular file";
    if (st->st_nlink != 1) {
        snprintf(why, whysz, "it has %lu links", (unsigned long)st->st_nlink);
        return why;
    }
    if ((uint64_t)st->st_size > max) {
        snprintf(why, whysz, "%lld bytes, more than a message within message_size_limit can be",
                 (long long)st->st_size);
        return why;
    }
    return NULL;
}

/* One file, to its commit or its outcome. */
static void take(struct pickup *p, const char *name)
{
    char why[160];
    const char *bad;
    struct stat st;
    struct job *j;
    int fd, r;

    fd = openat(p->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return; /* gone meanwhile */
        snprintf(why, sizeof(why), "cannot open it: %s", strerror(errno));
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == EINTR)
            defer_name(p, name, why); /* ours, not the file's */
        else
            move_aside(p, name, -1, why); /* a link, a file we may not read, ... */
        return;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(why, sizeof(why), "cannot stat it: %s", strerror(errno));
        defer_name(p, name, why);
        close(fd);
        return;
    }
    if ((bad = unfit(p, &st, why, sizeof(why))) != NULL) {
        move_aside(p, name, (long)st.st_uid, bad);
        close(fd);
        return;
    }
    j = xcalloc(1, sizeof(*j));
    j->p = p;
    strlcpy_p(j->name, name, sizeof(j->name));
    j->uid = (long)st.st_uid;
    pickup_tx_init(&j->tx, p->env.conf, p->env.cmd_limit(p->env.arg), j->uid,
                   p->env.local_trusted(p->env.arg));
    r = read_file(p, j, fd);
    if (r < 0)
        snprintf(why, sizeof(why), "cannot read it: %s", strerror(errno));
    close(fd);
    buf_reset(&p->scratch);
    if (r == PT_END && j->m && !j->m->failed) {
        p->busy = j;
        commit_submit(p->env.commit, j->m, on_committed, j);
        return;
    }
    if (r == PT_END)
        defer(p, j, "the queue file could not be written");
    else if (r < 0)
        defer(p, j, why);
    else if (r == PT_REFUSED && j->tx.code < 500)
        defer(p, j, j->tx.why);
    else
        move_aside(p, name, j->uid, j->tx.why);
    job_free(p, j);
}

static void on_next(evutil_socket_t fd, short what, void *arg)
{
    struct pickup *p = arg;
    char *name;

    if (p->stopping || p->busy || p->nq == 0 || !p->env.accepting(p->env.arg))
        return;
    name = p->q[0];
    memmove(p->q, p->q + 1, (p->nq - 1) * sizeof(*p->q));
    p->nq--;
    take(p, name);
    free(name);
    schedule(p);
}

static void on_scan(evutil_socket_t fd, short what, void *arg)
{
    struct pickup *p = arg;

    scan(p);
    schedule(p);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    struct pickup *p = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int overflow = 0;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *q = buf; q < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)q;
            if (ev->mask & IN_Q_OVERFLOW)
                overflow = 1;
            else if (ev->len > 0 && (ev->mask & IN_MOVED_TO))
                enqueue(p, ev->name);
            q += sizeof(*ev) + ev->len;
        }
    }
    if (overflow)
        scan(p);
    schedule(p);
}

static void watch(struct pickup *p)
{
    p->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (p->ifd < 0 || inotify_add_watch(p->ifd, SPOOL_MAILDROP, IN_MOVED_TO) < 0) {
        log_warn("maildrop: cannot watch %s/ (%s): it is scanned every %d s only", SPOOL_MAILDROP,
                 strerror(errno), PICKUP_SCAN_S);
        if (p->ifd >= 0)
            close(p->ifd);
        p->ifd = -1;
        return;
    }
    p->iev = event_new(p->env.base, p->ifd, EV_READ | EV_PERSIST, on_inotify, p);
    event_add(p->iev, NULL);
}

struct pickup *pickup_start(const struct pickup_env *env, char **err)
{
    struct timeval every = {PICKUP_SCAN_S, 0};
    struct pickup *p;
    int dfd = open(SPOOL_MAILDROP, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd < 0) {
        *err = xasprintf("cannot open %s/ in the spool: %s", SPOOL_MAILDROP, strerror(errno));
        return NULL;
    }
    p = xcalloc(1, sizeof(*p));
    p->env = *env;
    p->dir_fd = dfd;
    p->bad_fd = open(SPOOL_MAILDROP_BAD, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (p->bad_fd < 0)
        log_warn("maildrop: cannot open %s/ (%s): refused files stay in %s/", SPOOL_MAILDROP_BAD,
                 strerror(errno), SPOOL_MAILDROP);
    p->chunk = xmalloc(CHUNK);
    buf_init(&p->scratch);
    watch(p);
    p->next_ev = evtimer_new(env->base, on_next, p);
    p->scan_ev = event_new(env->base, -1, EV_PERSIST, on_scan, p);
    event_add(p->scan_ev, &every);
    scan(p);
    schedule(p);
    return p;
}

void pickup_kick(struct pickup *p)
{
    if (p == NULL || p->stopping)
        return;
    scan(p);
    schedule(p);
}

void pickup_stop(struct pickup *p)
{
    if (p == NULL)
        return;
    p->stopping = 1;
    if (p->iev)
        event_del(p->iev);
    event_del(p->scan_ev);
    event_del(p->next_ev);
}

const struct pickup_stats *pickup_get_stats(const struct pickup *p)
{
    static const struct pickup_stats none;

    return p ? &p->st : &none;
}
