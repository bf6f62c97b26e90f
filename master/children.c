/*
 * children - start the child programs with their fds, notice when
 * one dies, and start it again with backoff.
 *
 * A child gets, from fd 3 on and named in POSTERN_FDS: its channel to
 * master, its peer channels, the main.cf text master runs (a memfd, so a
 * file broken since is not read) and, for smtpd, the listening sockets.
 *
 * Channels between children (DESIGN section 1) are made here. A child is
 * started with one end of a fresh socketpair for each peer that is
 * running; the other end goes to that peer in an IMSG_PEER. Children are
 * started in an order where every edge is made exactly once (a peer that
 * is not running yet makes the pair when it starts), and a restarted
 * child gets new pairs with every live peer the same way.
 *
 * Backoff: a child that dies within QUICK_DEATH_US of its start counts a
 * quick death; the n-th consecutive one waits 100 ms * 2^(n-1), at most a
 * minute, and from the third on it is logged as an error. A child that
 * ran long enough restarts at once. A child that could not be started
 * (socketpair, memfd or fork failed) is tried again a second later.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "master.h"
#include "mail/proto.h"
#include "mail/dkim_keys.h"
#include "mail/secrets.h"
#include "base/util.h"

#define QUICK_DEATH_US (10 * 1000000LL)
#define BACKOFF_BASE_MS 100
#define BACKOFF_MAX_MS 60000
#define MAX_CHILD_FDS 40

static const int edges[][2] = {
    {CH_SMTPD, CH_QMGR},     {CH_QMGR, CH_DELIVER}, {CH_QMGR, CH_RELAY},
    {CH_DELIVER, CH_DNSD},   {CH_RELAY, CH_DNSD},   {CH_QMGR, CH_LOCAL},
    {CH_DELIVER, CH_SIGNER}, {CH_RELAY, CH_SIGNER}, {CH_QMGR, CH_SIGNER},
};

static const char *const child_names[CH__COUNT] = {
    [CH_DNSD] = "dnsd",   [CH_QMGR] = "qmgr",     [CH_DELIVER] = "deliver", [CH_RELAY] = "relay",
    [CH_LOCAL] = "local", [CH_SIGNER] = "signer", [CH_SMTPD] = "smtpd",
};

static void child_start(struct master *m, int idx);

struct mchild *children_by_name(struct master *m, const char *name)
{
    for (int i = 0; i < CH__COUNT; i++)
        if (strcmp(m->ch[i].name, name) == 0)
            return &m->ch[i];
    return NULL;
}

int children_running(const struct master *m)
{
    int n = 0;

    for (int i = 0; i < CH__COUNT; i++)
        n += m->ch[i].pid > 0;
    return n;
}

void children_signal_all(struct master *m, int sig)
{
    for (int i = 0; i < CH__COUNT; i++)
        if (m->ch[i].pid > 0)
            kill(m->ch[i].pid, sig);
}

void children_send_all(struct master *m, uint16_t type, const void *body, size_t len)
{
    for (int i = 0; i < CH__COUNT; i++)
        if (m->ch[i].chan)
            ipc_send(m->ch[i].chan, type, 0, -1, body, len);
}

void children_check_ready(struct master *m)
{
    if (m->announced_ready || m->stopping)
        return;
    for (int i = 0; i < CH__COUNT; i++)
        if (!m->ch[i].ready)
            return;
    m->announced_ready = 1;
    log_info("postern ready");
}

static int edge_peer(size_t e, int idx);

void children_send_tls(struct master *m, const char *cert_pem, const char *key_pem)
{
    struct ipc_w w;

    if (m->ch[CH_SMTPD].chan == NULL)
        return; /* a smtpd that starts later reads the files itself */
    ipc_w_init(&w);
    ipc_w_str(&w, cert_pem ? cert_pem : "");
    ipc_w_str(&w, key_pem ? key_pem : "");
    ipc_send(m->ch[CH_SMTPD].chan, IMSG_TLS_CERT, 0, -1, w.p, w.len);
    explicit_bzero(w.p, w.len);
    ipc_w_free(&w);
}

void children_send_secrets(struct master *m, const struct secrets *s)
{
    struct ipc_w w;

    if (m->ch[CH_RELAY].chan == NULL)
        return; /* a relay that starts later reads the map itself */
    ipc_w_init(&w);
    secrets_encode(&w, s);
    ipc_send(m->ch[CH_RELAY].chan, IMSG_SECRETS, 0, -1, w.p, w.len);
    explicit_bzero(w.p, w.len);
    ipc_w_free(&w);
}

void children_send_dkim_keys(struct master *m, const struct dkim_keys *k)
{
    struct ipc_w w;

    if (m->ch[CH_SIGNER].chan == NULL || k == NULL)
        return; /* a signer that starts later gets them when it starts */
    ipc_w_init(&w);
    dkim_keys_encode(&w, k, 1);
    ipc_send(m->ch[CH_SIGNER].chan, IMSG_DKIM_KEYS, 0, -1, w.p, w.len);
    explicit_bzero(w.p, w.len);
    ipc_w_free(&w);
}

/* c says its channel to a peer broke the protocol: kill that peer (only a
 * peer c has an edge with), and the normal restart gives both new pairs.
 * qmgr is the one process every other trusts with the queue: a report
 * against it restarts the reporter instead (which gets a fresh channel),
 * so a compromised smtpd or relay cannot keep delivery down by accusing
 * qmgr over and over. */
static void peer_broken(struct master *m, struct mchild *c, const struct ipc_msg *msg)
{
    struct ipc_r r;
    const char *name, *why;
    int idx = (int)(c - m->ch);

    ipc_r_init(&r, msg->body, msg->len);
    name = ipc_r_str(&r);
    why = ipc_r_str(&r);
    if (!ipc_r_done(&r))
        return;
    for (size_t e = 0; e < nitems(edges); e++) {
        int peer = edge_peer(e, idx);
        if (peer < 0 || strcmp(m->ch[peer].name, name) != 0 || m->ch[peer].pid <= 0)
            continue;
        if (peer == CH_QMGR) {
            log_warn("%s reports that qmgr[%ld] broke the protocol (%s); restarting %s, not qmgr",
                     c->name, (long)m->ch[peer].pid, why, c->name);
            kill(c->pid, SIGKILL);
            return;
        }
        log_warn("%s reports that %s[%ld] broke the protocol (%s); restarting %s", c->name, name,
                 (long)m->ch[peer].pid, why, name);
        kill(m->ch[peer].pid, SIGKILL);
        return;
    }
}

/*
 * The watchdog: every child's loop must answer a status probe within
 * child_watchdog_timeout. One that does not is hung (a loop stuck in a
 * system call or a bug, not dead: SIGCHLD would have said so); master
 * kills it, and the normal restart follows. qmgr then schedules again
 * what was in flight in a killed deliver or relay; a killed qmgr reloads
 * the queue.
 */
#define WATCHDOG_ID 0xfffffff0u

static struct event *watchdog_ev;

static void watchdog_arm(struct master *m)
{
    long long to = cfg_num(&m->cfg, P_child_watchdog_timeout);
    long ms = to > 0 ? (long)(to * 1000 / 4) : 5000;
    struct timeval tv;

    if (ms < 250)
        ms = 250;
    if (ms > 10000)
        ms = 10000;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(watchdog_ev, &tv);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    long long to = cfg_num(&m->cfg, P_child_watchdog_timeout);
    int64_t now = mono_us();
    char *err = NULL;

    if (!m->stopping && setup_local_maps(m, 0, &err) < 0) {
        log_err("local recipients: %s", err);
        free(err);
    }

    for (int i = 0; i < CH__COUNT && to > 0 && !m->stopping; i++) {
        struct mchild *c = &m->ch[i];
        if (c->pid <= 0 || c->chan == NULL || !c->ready) {
            c->probe_mono = 0;
            continue;
        }
        if (c->probe_mono && now - c->probe_mono >= to * 1000000LL) {
            log_err("%s[%ld] has not answered master for %llds (hung, not dead): killing it so "
                    "that it is restarted",
                    c->name, (long)c->pid, (long long)((now - c->probe_mono) / 1000000));
            kill(c->pid, SIGKILL);
            c->probe_mono = 0;
            continue;
        }
        if (c->probe_mono == 0 && ipc_send(c->chan, IMSG_STATUS_REQ, WATCHDOG_ID, -1, NULL, 0) == 0)
            c->probe_mono = now;
    }
    watchdog_arm(m);
}

static void on_child_msg(struct ipc_chan *ch, const struct ipc_msg *msg, void *arg)
{
    struct master *m = &M;
    struct mchild *c = arg;

    if (msg->type == IMSG_STATUS_REP && msg->id == WATCHDOG_ID) {
        c->probe_mono = 0; /* its loop runs */
        if (msg->fd >= 0)
            close(msg->fd);
        return;
    }

    if (msg->type == IMSG_STATS_DNSD) { /* only dnsd's channel carries it (proto.c) */
        stats_take_dnsd(m, msg);
        if (msg->fd >= 0)
            close(msg->fd);
        return;
    }

    if (msg->type == IMSG_PEER_BROKEN) {
        peer_broken(m, c, msg);
        if (msg->fd >= 0)
            close(msg->fd);
        return;
    }

    if (msg->type == IMSG_STATUS_REP && msg->id == 0) {
        /* The answer to the probe sent at start: its loop is running. */
        if (!c->ready) {
            c->ready = 1;
            log_debug("%s[%ld] is up", c->name, (long)c->pid);
        }
        children_check_ready(m);
        if (msg->fd >= 0)
            close(msg->fd);
        return;
    }
    control_child_msg(m, c, msg);
}

static void on_child_close(struct ipc_chan *ch, void *arg)
{
    struct mchild *c = arg;

    /* The process itself is reaped through SIGCHLD; just drop the channel. */
    if (c->chan == ch) {
        c->chan = NULL;
        control_child_gone(&M, c);
    }
    ipc_chan_free(ch);
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
    struct mchild *c = arg;
    struct master *m = &M;

    if (!m->stopping && c->pid == 0)
        child_start(m, (int)(c - m->ch));
}

static char *fds_env(const char *const *names, int n)
{
    struct buf b;

    buf_init(&b);
    for (int i = 0; i < n; i++)
        buf_printf(&b, "%s%s:%d", i ? " " : "", names[i], 3 + i);
    return b.data;
}

static char *opts_env(char **overrides)
{
    struct buf b;

    buf_init(&b);
    for (char **o = overrides; o && *o; o++)
        buf_printf(&b, "%s%s", b.len ? "\n" : "", *o);
    return b.data;
}

/*
 * The fds a child is started with, in order, each under the name it
 * finds it by in POSTERN_FDS; "mine" are those master made for this
 * child alone and closes once it is forked (or could not be).
 */
struct child_fds {
    int fd[MAX_CHILD_FDS];
    const char *name[MAX_CHILD_FDS];
    int n;
    int mine[MAX_CHILD_FDS];
    int nmine;
};

static void fds_add(struct child_fds *f, int fd, const char *name, int mine)
{
    if (f->n >= MAX_CHILD_FDS)
        log_panic("more than %d fds for a child", MAX_CHILD_FDS);
    f->fd[f->n] = fd;
    f->name[f->n++] = name;
    if (mine)
        f->mine[f->nmine++] = fd;
}

static void fds_close_mine(struct child_fds *f)
{
    for (int i = 0; i < f->nmine; i++)
        close(f->mine[i]);
    f->nmine = 0;
}

/* In the forked child: move fd[i] to 3+i, close everything else, exec. */
static void exec_child(struct master *m, const char *name, const struct child_fds *f)
{
    int tmp[MAX_CHILD_FDS], n = f->n;
    char *path = xasprintf("%s/%s", m->bindir, name);
    char *env_fds = fds_env(f->name, n);
    char *env_opts = opts_env(m->overrides);
    const char *logto = m->foreground || *cfg_str(&m->cfg, P_log_file) ? "stderr" : "syslog";
    char *argv[] = {(char *)(uintptr_t)name, (char *)(uintptr_t) "-c", m->confdir, NULL};
    sigset_t none;

    for (int i = 0; i < n; i++) {
        tmp[i] = fcntl(f->fd[i], F_DUPFD, 3 + n + 64);
        if (tmp[i] < 0)
            _exit(127);
    }
    for (int i = 0; i < n; i++) {
        if (dup2(tmp[i], 3 + i) < 0)
            _exit(127);
        fd_cloexec(3 + i, 0);
    }
    close_range((unsigned)(3 + n), ~0U, 0);
    setenv("POSTERN_FDS", env_fds, 1);
    setenv("POSTERN_LOG", logto, 1);
    setenv("POSTERN_OPTS", env_opts, 1);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(path, argv);
    fprintf(stderr, "master: cannot exec %s: %s\n", path, strerror(errno));
    _exit(127);
}

/* The peer child idx has a channel with on edge e, or -1. */
static int edge_peer(size_t e, int idx)
{
    if (edges[e][0] == idx)
        return edges[e][1];
    if (edges[e][1] == idx)
        return edges[e][0];
    return -1;
}

/* A fresh pair with every running peer of child idx: one end to the
 * peer in an IMSG_PEER, the other into f. */
static void add_peer_pairs(struct master *m, int idx, struct child_fds *f)
{
    struct mchild *c = &m->ch[idx];
    struct ipc_w w;
    int sp[2];

    for (size_t e = 0; e < nitems(edges); e++) {
        int peer = edge_peer(e, idx);
        if (peer < 0 || m->ch[peer].chan == NULL)
            continue;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
            log_err("socketpair for %s-%s: %s", c->name, m->ch[peer].name, strerror(errno));
            continue;
        }
        ipc_w_init(&w);
        ipc_w_str(&w, c->name);
        ipc_send(m->ch[peer].chan, IMSG_PEER, 0, sp[0], w.p, w.len);
        ipc_w_free(&w);
        close(sp[0]);
        fds_add(f, sp[1], m->ch[peer].name, 1);
    }
}

/* The configuration master runs, not the file on disk (it may be broken
 * now), in a memfd; -1 on error. */
static int config_memfd(const struct master *m)
{
    int cfd = memfd_create("postern-main.cf", MFD_CLOEXEC);

    if (cfd < 0)
        return -1;
    if (write_all(cfd, m->cfg_text, strlen(m->cfg_text)) < 0 || lseek(cfd, 0, SEEK_SET) != 0) {
        int e = errno;
        close(cfd);
        errno = e;
        return -1;
    }
    return cfd;
}

static void add_listeners(const struct master *m, struct child_fds *f)
{
    for (int i = 0; i < m->nlisten; i++)
        fds_add(f, m->listen_fds[i], "listen", 0);
    for (int i = 0; i < m->nsubmission; i++)
        fds_add(f, m->submission_fds[i], "submission", 0);
}

static void retry_later(struct mchild *c)
{
    struct timeval tv = {1, 0};

    evtimer_add(c->restart_ev, &tv);
}

/* The fds for child idx after its master channel: peers, config, listeners. */
static int child_fds_rest(struct master *m, int idx, struct child_fds *f)
{
    int cfd;

    add_peer_pairs(m, idx, f);
    cfd = config_memfd(m);
    if (cfd < 0) {
        log_err("cannot start %s: config memfd: %s", m->ch[idx].name, strerror(errno));
        return -1;
    }
    fds_add(f, cfd, "config", 1);
    if (idx == CH_SMTPD)
        add_listeners(m, f);
    if (idx == CH_QMGR && m->metrics_fd >= 0)
        fds_add(f, m->metrics_fd, "metrics", 0);
    return 0;
}

static void child_start(struct master *m, int idx)
{
    struct mchild *c = &m->ch[idx];
    struct child_fds f = {.n = 0};
    struct ipc_chan *mch;
    int sp[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        log_err("cannot start %s: socketpair: %s", c->name, strerror(errno));
        retry_later(c);
        return;
    }
    mch = ipc_chan_new(m->base, sp[0], c->name,
                       idx == CH_DNSD ? &proto_dnsd_to_master : &proto_child_to_master,
                       on_child_msg, on_child_close, c);
    fds_add(&f, sp[1], "master", 1);
    if (child_fds_rest(m, idx, &f) != 0) {
        fds_close_mine(&f);
        ipc_chan_free(mch);
        retry_later(c);
        return;
    }
    pid = fork();
    if (pid < 0) {
        log_err("cannot start %s: fork: %s", c->name, strerror(errno));
        fds_close_mine(&f);
        ipc_chan_free(mch);
        retry_later(c);
        return;
    }
    if (pid == 0)
        exec_child(m, c->name, &f);
    fds_close_mine(&f);
    c->pid = pid;
    c->chan = mch;
    c->ready = 0;
    c->probe_mono = 0;
    c->started_us = now_us();
    c->started_mono = mono_us();
    ipc_send(mch, IMSG_STATUS_REQ, 0, -1, NULL, 0);
    if (idx == CH_SIGNER)
        children_send_dkim_keys(m, m->dkim); /* the first thing it reads */
    log_info("started %s[%ld]", c->name, (long)pid);
}

void children_start_all(struct master *m)
{
    for (int i = 0; i < CH__COUNT; i++) {
        m->ch[i].name = child_names[i];
        m->ch[i].restart_ev = evtimer_new(m->base, restart_cb, &m->ch[i]);
    }
    /* dnsd, qmgr, deliver, relay, local, smtpd: each edge is made once. */
    for (int i = 0; i < CH__COUNT; i++)
        child_start(m, i);
    watchdog_ev = evtimer_new(m->base, watchdog_cb, m);
    watchdog_arm(m);
    stats_start(m);
}

static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "stopped with status 0x%x", status);
}

static void schedule_restart(struct master *m, struct mchild *c, int status)
{
    struct timeval tv = {0, 0};
    long delay_ms = 0;

    if (mono_us() - c->started_mono < QUICK_DEATH_US)
        c->quick_deaths++;
    else
        c->quick_deaths = 0;
    if (c->quick_deaths > 0) {
        delay_ms = BACKOFF_BASE_MS;
        for (int i = 1; i < c->quick_deaths && delay_ms < BACKOFF_MAX_MS; i++)
            delay_ms *= 2;
        if (delay_ms > BACKOFF_MAX_MS)
            delay_ms = BACKOFF_MAX_MS;
    }
    if (c->quick_deaths >= 3)
        log_err("%s keeps dying (%d times in a row within %llds of its start): restarting in "
                "%ld ms; see the lines above for why",
                c->name, c->quick_deaths, QUICK_DEATH_US / 1000000, delay_ms);
    c->restarts++;
    tv.tv_sec = delay_ms / 1000;
    tv.tv_usec = (delay_ms % 1000) * 1000;
    evtimer_add(c->restart_ev, &tv);
}

void children_reap(struct master *m)
{
    pid_t pid;
    int status;
    char how[128];

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct mchild *c = NULL;
        for (int i = 0; i < CH__COUNT; i++)
            if (m->ch[i].pid == pid)
                c = &m->ch[i];
        if (c == NULL)
            continue;
        describe_exit(status, how, sizeof(how));
        c->pid = 0;
        c->ready = 0;
        if (c->chan) {
            ipc_chan_free(c->chan);
            c->chan = NULL;
            control_child_gone(m, c);
        }
        if (m->stopping) {
            log_info("%s[%ld] %s", c->name, (long)pid, how);
            continue;
        }
        log_err("%s[%ld] %s; restarting it", c->name, (long)pid, how);
        schedule_restart(m, c, status);
    }
    if (m->stopping && children_running(m) == 0)
        event_base_loopbreak(m->base);
}
