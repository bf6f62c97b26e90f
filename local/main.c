/*
 * local - delivery on this host (docs/local.md): the recipients of the
 * mydestination domains, which qmgr sends as IMSG_DELIVERY with
 * DLV_TARGET_LOCAL and the open queue file.
 *
 * local stays root (when master is): it needs to become each recipient
 * in turn. Its loop only takes requests and hands back results; every
 * request is done by a process of its own (job.h) which expands the
 * aliases, reads ~/.forward as the user, and delivers each target in a
 * worker with that target's privileges (deliver.h: the write as the user,
 * never as root). Mail that an alias or a .forward sends elsewhere is
 * queued again by the job, as mail_owner, and announced to qmgr with
 * IMSG_QUEUE_NEW before the result. local is not chrooted (it reads the
 * password database, homes, the aliases where the admin keeps them).
 *
 * Every request gets exactly one result: the job's, or when the job dies
 * or says nothing usable, every recipient temporary (class local). A job
 * of a qmgr channel that has since gone is let finish, but its result is
 * dropped (qmgr delivers the message again; a mailbox may get it twice).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/ipc.h"
#include "base/log.h"
#include "base/privsep.h"
#include "job.h"
#include "mail/child.h"
#include "mail/dlv_proto.h"
#include "mail/proto.h"
#include "mail/qfile.h"

#define RESULT_MAX (16u * 1024 * 1024)

struct pend {
    struct pend *next;
    pid_t pid;
    int fd;
    struct event *ev;
    struct buf out;
    uint32_t id, gen;
    size_t nrcpts;
    uint32_t *idx;
    char *queue_id;
};

static struct {
    struct child *c;
    struct ipc_chan *qmgr;
    uint32_t qgen;
    struct pend *pend;
    int stopping;
    struct ld_conf ld;
    struct job_conf jc;
    struct qfile_idgen idgen;
} L;

static void load_conf(void)
{
    const struct config *cfg = L.c->cfg;
    char *err = NULL;
    uid_t u;
    gid_t g;

    L.ld.spool_dir = cfg_str(cfg, P_mail_spool_directory);
    L.ld.home_mailbox = cfg_str(cfg, P_home_mailbox);
    L.ld.hostname = cfg_myhostname(cfg);
    L.ld.as_root = getuid() == 0;
    L.ld.command_limit = (int)cfg_num(cfg, P_command_time_limit);
    L.ld.lock_timeout = 60;
    L.ld.privs_uid = getuid();
    L.ld.privs_gid = getgid();
    if (L.ld.as_root) {
        if (privsep_lookup(cfg_str(cfg, P_default_privs), &u, &g, &err) == 0) {
            L.ld.privs_uid = u;
            L.ld.privs_gid = g;
        } else {
            log_err("default_privs: %s; /file and |command targets of root's sources fail", err);
            free(err);
            err = NULL;
            L.ld.privs_uid = 65534;
            L.ld.privs_gid = 65534;
        }
    }
    L.jc.ld = &L.ld;
    L.jc.cfg = cfg;
    L.jc.owner_uid = getuid();
    L.jc.owner_gid = getgid();
    if (L.ld.as_root && privsep_lookup(cfg_str(cfg, P_mail_owner), &u, &g, &err) == 0) {
        L.jc.owner_uid = u;
        L.jc.owner_gid = g;
    } else if (err) {
        log_err("mail_owner: %s", err);
        free(err);
    }
    L.jc.allow_files = job_allow_bits(cfg_list(cfg, P_allow_mail_to_files));
    L.jc.allow_commands = job_allow_bits(cfg_list(cfg, P_allow_mail_to_commands));
}

static void send_result_bytes(uint16_t type, uint32_t id, const void *p, size_t n)
{
    if (L.qmgr == NULL || ipc_send(L.qmgr, type, id, -1, p, n) < 0)
        log_warn("cannot send message type %u (request %u) to qmgr", type, id);
}

/* Every recipient of the request temporary, class local. */
static void refuse(uint32_t id, const uint32_t *idx, size_t n, const char *why)
{
    struct dlv_rcpt_res *r = xcalloc(n + 1, sizeof(*r));
    struct dlv_res res;
    struct ipc_w w;

    for (size_t i = 0; i < n; i++)
        r[i] = (struct dlv_rcpt_res){idx[i],
                                     DLV_TEMP,
                                     DLV_CLASS_LOCAL,
                                     DLV_STEP_NONE,
                                     0,
                                     (char *)(uintptr_t) "4.3.0",
                                     (char *)(uintptr_t)why};
    memset(&res, 0, sizeof(res));
    res.id = id;
    res.relay = (char *)(uintptr_t) "local";
    res.label = res.tls_version = res.tls_cipher = (char *)(uintptr_t) "";
    res.host_index = -1;
    res.r = r;
    res.n = n;
    ipc_w_init(&w);
    dlv_res_encode(&w, &res);
    send_result_bytes(IMSG_DELIVERY_RESULT, id, w.p, w.len);
    ipc_w_free(&w);
    free(r);
}

static void on_exit_timer(evutil_socket_t fd, short what, void *arg)
{
    child_exit(L.c, 0);
}

static void exit_when_idle(void)
{
    static struct event *ev;
    struct timeval tv = {0, 100000};

    if (!L.stopping || L.pend != NULL || ev != NULL)
        return;
    ev = evtimer_new(L.c->base, on_exit_timer, NULL);
    evtimer_add(ev, &tv);
}

static void pend_free(struct pend *p)
{
    for (struct pend **pp = &L.pend; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    event_free(p->ev);
    close(p->fd);
    buf_free(&p->out);
    free(p->idx);
    free(p->queue_id);
    free(p);
}

/* The job said everything: its forwarded message first, then the result. */
static void job_done(struct pend *p)
{
    struct ipc_r r;
    struct dlv_res res;
    const char *fwd;
    int st = 0;

    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (p->gen != L.qgen || L.qmgr == NULL) {
        log_info("%s: result of request %u dropped: qmgr restarted since", p->queue_id, p->id);
        return;
    }
    ipc_r_init(&r, p->out.data, p->out.len);
    fwd = ipc_r_str(&r);
    memset(&res, 0, sizeof(res));
    if (fwd == NULL || r.err || dlv_res_decode(r.p + r.off, r.len - r.off, &res) != 0 ||
        res.id != p->id) {
        log_err("%s: the delivery job of request %u %s", p->queue_id, p->id,
                WIFSIGNALED(st) ? "was killed" : "gave no usable result");
        refuse(p->id, p->idx, p->nrcpts, "local delivery job failed");
        dlv_res_free(&res);
        return;
    }
    if (*fwd) {
        struct ipc_w w;
        ipc_w_init(&w);
        ipc_w_str(&w, fwd);
        send_result_bytes(IMSG_QUEUE_NEW, 0, w.p, w.len);
        ipc_w_free(&w);
    }
    send_result_bytes(IMSG_DELIVERY_RESULT, p->id, r.p + r.off, r.len - r.off);
    dlv_res_free(&res);
}

static void on_job_read(evutil_socket_t fd, short what, void *arg)
{
    struct pend *p = arg;
    char chunk[8192];
    ssize_t n = read(fd, chunk, sizeof(chunk));

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0 && p->out.len + (size_t)n <= RESULT_MAX) {
        buf_add(&p->out, chunk, (size_t)n);
        return;
    }
    job_done(p);
    pend_free(p);
    exit_when_idle();
}

static void start_job(const struct dlv_req *q, int msgfd)
{
    struct pend *p = xcalloc(1, sizeof(*p));
    char fwd_id[QFILE_ID_SIZE];
    int pp[2];

    p->id = q->id;
    p->gen = L.qgen;
    p->nrcpts = q->nrcpts;
    p->idx = xcalloc(q->nrcpts + 1, sizeof(*p->idx));
    for (size_t i = 0; i < q->nrcpts; i++)
        p->idx[i] = q->rcpts[i].idx;
    p->queue_id = xstrdup(q->queue_id);
    buf_init(&p->out);
    qfile_id_next(&L.idgen, now_us(), fwd_id);
    if (pipe2(pp, O_CLOEXEC) != 0 || (p->pid = fork()) < 0) {
        log_err("%s: cannot start a delivery job: %s", q->queue_id, strerror(errno));
        refuse(p->id, p->idx, p->nrcpts, "cannot start a local delivery job");
        free(p->idx);
        free(p->queue_id);
        free(p);
        return;
    }
    if (p->pid == 0) {
        close(pp[0]);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_IGN);
        job_run(&L.jc, q, msgfd, fwd_id, pp[1]);
        _exit(0);
    }
    close(pp[1]);
    p->fd = pp[0];
    fd_nonblock(p->fd);
    p->ev = event_new(L.c->base, p->fd, EV_READ | EV_PERSIST, on_job_read, p);
    event_add(p->ev, NULL);
    p->next = L.pend;
    L.pend = p;
}

static void do_delivery(const struct ipc_msg *m)
{
    struct dlv_req q;

    if (dlv_req_decode(m->body, m->len, &q) < 0) {
        log_err("malformed delivery request %u from qmgr", m->id);
        refuse(m->id, NULL, 0, "malformed request");
        if (m->fd >= 0)
            close(m->fd);
        return;
    }
    if (q.target != DLV_TARGET_LOCAL || m->fd < 0 || L.stopping) {
        uint32_t *idx = xcalloc(q.nrcpts + 1, sizeof(*idx));
        for (size_t i = 0; i < q.nrcpts; i++)
            idx[i] = q.rcpts[i].idx;
        log_warn("%s: local refuses this request (%s)", q.queue_id,
                 L.stopping ? "shutting down" : "not a local delivery");
        refuse(q.id, idx, q.nrcpts, L.stopping ? "shutting down" : "not a local delivery");
        free(idx);
    } else {
        start_job(&q, m->fd);
    }
    if (m->fd >= 0)
        close(m->fd);
    dlv_req_free(&q);
}

static void on_qmgr_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    if (m->type == IMSG_DELIVERY) {
        do_delivery(m);
        return;
    }
    log_warn("qmgr sent message type %u, which local does not handle", m->type);
    if (m->fd >= 0)
        close(m->fd);
}

static void on_qmgr_close(struct ipc_chan *ch, void *arg)
{
    child_peer_closed(L.c, ch);
    if (ch == L.qmgr) {
        L.qmgr = NULL;
        L.qgen++;
    }
    ipc_chan_free(ch);
}

static void on_peer(struct child *c, const char *name, int fd)
{
    if (strcmp(name, "qmgr") != 0) {
        log_warn("unexpected peer channel %s", name);
        close(fd);
        return;
    }
    if (L.qmgr)
        ipc_chan_free(L.qmgr);
    L.qgen++;
    L.qmgr =
        ipc_chan_new(c->base, fd, "qmgr", &proto_qmgr_to_local, on_qmgr_msg, on_qmgr_close, NULL);
}

static int on_reload(struct child *c, char **err)
{
    load_conf();
    return 0;
}

static void on_shutdown(struct child *c)
{
    L.stopping = 1;
    exit_when_idle();
}

static const struct child_spec spec = {
    .prog = "local",
    .root = CHILD_ROOT_NONE,
    .peer = on_peer,
    .reload = on_reload,
    .shutdown = on_shutdown,
};

int main(int argc, char **argv)
{
    int rc;

    L.c = child_init(argc, argv, &spec);
    /* No child_drop: local needs root to become each recipient; its jobs
     * and workers drop (deliver.h). */
    if (getuid() != 0)
        log_info("not started as root: every delivery runs as uid %ld (development)",
                 (long)getuid());
    qfile_id_init(&L.idgen, 2);
    load_conf();
    rc = child_loop(L.c);
    while (L.pend)
        pend_free(L.pend);
    return rc;
}
