/*
 * Tests for the deliver process around the engine (common/delivery/dlv_proc.c):
 * bin/deliver is started the way master starts it (POSTERN_FDS with
 * "master", "qmgr" and "dnsd" socketpairs) and this test plays master,
 * qmgr and dnsd with the blocking IPC helpers. No SMTP server is needed:
 * the fake dnsd decides the outcome.
 *   - a request whose MX lookup says NXDOMAIN: failed, class dns, with the
 *     request's id as frame id and in the body (the fd travelled)
 *   - a request without an fd: every recipient deferred, class local
 *   - a malformed body: a result with that frame id and no recipients
 *   - qmgr replaced (IMSG_PEER from master) while a lookup is pending:
 *     the old job's result never appears on the new channel; a new request
 *     on the new channel is answered there
 *   - dnsd replaced while a lookup is pending: that delivery is deferred
 *     with class local (our outage, not the domain's); lookups then go to
 *     the new dnsd
 * Run as root, deliver drops to "nobody" and chroots into DIR/spool/empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/dlv_proto.h"
#include "mail/dns_proto.h"
#include "base/ipc.h"
#include "base/log.h"
#include "mail/proto.h"
#include "tap.h"
#include "base/util.h"

/* the request flags and TLSA port the decoders return (not checked here) */
static unsigned qflags;
static uint16_t qport;

static char tmpdir[] = "/tmp/postern-dproc-XXXXXX";
static pid_t child = -1;
static int msgfd = -1;

static void cleanup(void)
{
    char cmd[128];

    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        diag("could not remove %s", tmpdir);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        log_panic("cannot write %s", path);
}

/* Start bin/deliver; fills the test's ends of the three channels. */
static int start_deliver(int *master, int *qmgr, int *dnsd)
{
    int m[2], q[2], d[2];
    char path[512], cf[1024];

    snprintf(path, sizeof(path), "%s/spool/empty", tmpdir);
    if (mkdir(tmpdir, 0755) && errno != EEXIST)
        return -1;
    snprintf(cf, sizeof(cf), "%s/spool", tmpdir);
    mkdir(cf, 0755);
    mkdir(path, 0755);
    snprintf(cf, sizeof(cf),
             "queue_directory = %s/spool\nlog_level = detailed\nmyhostname = postern.test\n"
             "smtp_connect_timeout = 5s\nsmtp_timeout = 10s\n%s",
             tmpdir, geteuid() == 0 ? "mail_owner = nobody\n" : "");
    snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
    write_file(path, cf);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, m) || socketpair(AF_UNIX, SOCK_STREAM, 0, q) ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, d))
        return -1;
    child = fork();
    if (child < 0)
        return -1;
    if (child == 0) {
        char fds[128], logp[600];
        int lf;
        /* the child's ends at 3, 4, 5 */
        dup2(m[1], 10);
        dup2(q[1], 11);
        dup2(d[1], 12);
        dup2(10, 3);
        dup2(11, 4);
        dup2(12, 5);
        snprintf(logp, sizeof(logp), "%s/deliver.log", tmpdir);
        lf = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (lf >= 0)
            dup2(lf, 2);
        for (int fd = 6; fd < 64; fd++)
            close(fd);
        snprintf(fds, sizeof(fds), "master:3 qmgr:4 dnsd:5");
        setenv("POSTERN_FDS", fds, 1);
        setenv("POSTERN_LOG", "stderr", 1);
        execl("bin/deliver", "bin/deliver", "-c", tmpdir, (char *)NULL);
        _exit(127);
    }
    close(m[1]);
    close(q[1]);
    close(d[1]);
    *master = m[0];
    *qmgr = q[0];
    *dnsd = d[0];
    return 0;
}

static char addr0[] = "a@nx.test", addr1[] = "b@nx.test", empty[] = "";

static void make_req(struct dlv_req *q, uint32_t id, const char *domain)
{
    static char qid[] = "DPROCQ", snd[] = "s@origin.test";
    static char dom[64];
    static char *ovr[] = {NULL};
    static struct dlv_rcpt rc[2];

    snprintf(dom, sizeof(dom), "%s", domain);
    memset(q, 0, sizeof(*q));
    q->id = id;
    q->queue_id = qid;
    q->msg_size = 18;
    q->sender = snd;
    q->envid = empty;
    q->domain = dom;
    q->attempt = 1;
    q->target = DLV_TARGET_MX;
    q->tls = TLS_MODE_MAY;
    q->port = 25;
    q->mx_override = ovr;
    rc[0] = (struct dlv_rcpt){0, addr0, empty, 0};
    rc[1] = (struct dlv_rcpt){1, addr1, empty, 0};
    q->rcpts = rc;
    q->nrcpts = 2;
    q->dest_key = empty;
    q->max_per_conn = 1;
}

static int send_req(int sock, const struct dlv_req *q, int fd)
{
    struct ipc_w w;
    int rc;

    ipc_w_init(&w);
    dlv_req_encode(&w, q);
    rc = ipc_send_blocking(sock, IMSG_DELIVERY, q->id, fd, w.p, w.len);
    ipc_w_free(&w);
    return rc;
}

/* Read one result from sock; 0 and *res filled (frame id in *fid), or -1. */
static int recv_res(int sock, struct dlv_res *res, uint32_t *fid, int timeout_ms)
{
    struct ipc_frame f;
    uint8_t *body = NULL;
    int fd = -1, rc;

    memset(res, 0, sizeof(*res));
    if (ipc_recv_blocking(sock, &f, &body, &fd, timeout_ms) < 0)
        return -1;
    if (fd >= 0)
        close(fd);
    *fid = f.id;
    rc = f.type == IMSG_DELIVERY_RESULT ? dlv_res_decode(body, f.len, res) : -1;
    free(body);
    return rc;
}

/* Answer one DNS request from deliver with err/reason; returns the name asked. */
static int dns_answer(int sock, enum dns_class err, const char *reason, char *name, size_t len)
{
    struct ipc_frame f;
    uint8_t *body = NULL;
    int fd = -1;
    const char *dom = "", *ovr[4];
    size_t novr;
    struct dns_result r;
    struct ipc_w w;

    if (ipc_recv_blocking(sock, &f, &body, &fd, 10000) < 0)
        return -1;
    if (f.type == IMSG_DNS_MX_REQ)
        dns_mx_req_decode(body, f.len, &dom, ovr, nitems(ovr), &novr, &qflags, &qport);
    snprintf(name, len, "%s", dom);
    dns_result_init(&r, dom);
    dns_result_set_err(&r, err, "%s", reason);
    ipc_w_init(&w);
    dns_rep_encode(&w, &r);
    ipc_send_blocking(sock, IMSG_DNS_REP, f.id, -1, w.p, w.len);
    ipc_w_free(&w);
    dns_result_free(&r);
    free(body);
    return 0;
}

/* Wait for one DNS request without answering it. */
static int dns_swallow(int sock, char *name, size_t len)
{
    struct ipc_frame f;
    uint8_t *body = NULL;
    int fd = -1;
    const char *dom = "", *ovr[4];
    size_t novr;

    if (ipc_recv_blocking(sock, &f, &body, &fd, 10000) < 0)
        return -1;
    if (f.type == IMSG_DNS_MX_REQ)
        dns_mx_req_decode(body, f.len, &dom, ovr, nitems(ovr), &novr, &qflags, &qport);
    snprintf(name, len, "%s", dom);
    free(body);
    return 0;
}

/* master -> deliver: here is a new channel to peer `name`; returns our end. */
static int new_peer(int master, const char *name)
{
    int sp[2];
    struct ipc_w w;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
        return -1;
    ipc_w_init(&w);
    ipc_w_str(&w, name);
    ipc_send_blocking(master, IMSG_PEER, 0, sp[1], w.p, w.len);
    ipc_w_free(&w);
    close(sp[1]);
    return sp[0];
}

int main(void)
{
    int master = -1, qmgr = -1, dnsd = -1, q2, d2;
    struct dlv_req q;
    struct dlv_res r;
    uint32_t fid = 0;
    char name[256];

    plan_lazy();
    log_init("test", LOG_TO_STDERR);
    if (access("bin/deliver", X_OK) != 0) {
        ok(1, "# SKIP bin/deliver not built");
        return done_testing();
    }
    if (geteuid() == 0 && getpwnam("nobody") == NULL) {
        ok(1, "# SKIP no user nobody to drop to");
        return done_testing();
    }
    if (mkdtemp(tmpdir) == NULL)
        log_panic("mkdtemp");
    chmod(tmpdir, 0755);
    atexit(cleanup);
    msgfd = memfd_create("msg", 0);
    if (write(msgfd, "Subject: x\r\n\r\nhi\r\n", 18) != 18)
        log_panic("write");

    if (!ok(start_deliver(&master, &qmgr, &dnsd) == 0, "bin/deliver started"))
        return done_testing();

    /* NXDOMAIN */
    make_req(&q, 41, "nx.test");
    ok(send_req(qmgr, &q, msgfd) == 0, "request sent with the message fd");
    ok(dns_answer(dnsd, DNS_PERM, "domain nx.test not found (NXDOMAIN)", name, sizeof(name)) == 0,
       "deliver asked dnsd");
    is_str(name, "nx.test", "for the MX set of the domain");
    ok(recv_res(qmgr, &r, &fid, 10000) == 0, "a result came back");
    is_int(fid, 41, "frame id = request id");
    is_int(r.id, 41, "body id = request id");
    is_int(r.n, 2, "two recipient results");
    if (r.n == 2) {
        is_int(r.r[0].status, DLV_PERM, "failed");
        is_int(r.r[0].cls, DLV_CLASS_DNS, "class dns");
        is_str(r.r[0].dsn, "5.1.2", "5.1.2");
        is_int(r.r[1].idx, 1, "second recipient's idx");
    }
    dlv_res_free(&r);

    /* no fd */
    make_req(&q, 42, "nofd.test");
    send_req(qmgr, &q, -1);
    ok(recv_res(qmgr, &r, &fid, 10000) == 0, "no fd: a result");
    is_int(r.id, 42, "for that request");
    if (r.n == 2) {
        is_int(r.r[0].status, DLV_TEMP, "deferred");
        is_int(r.r[0].cls, DLV_CLASS_LOCAL, "class local");
    } else {
        ok(0, "two results");
    }
    dlv_res_free(&r);

    /* malformed body */
    ok(ipc_send_blocking(qmgr, IMSG_DELIVERY, 43, msgfd, "junk", 4) == 0, "junk sent");
    ok(recv_res(qmgr, &r, &fid, 10000) == 0, "junk: a result");
    is_int(fid, 43, "with the junk's frame id");
    is_int(r.n, 0, "and no recipients");
    dlv_res_free(&r);

    /* qmgr replaced while a lookup is pending */
    make_req(&q, 44, "slow.test");
    send_req(qmgr, &q, msgfd);
    ok(dns_swallow(dnsd, name, sizeof(name)) == 0, "lookup for the old qmgr's job pending");
    q2 = new_peer(master, "qmgr");
    ok(q2 >= 0, "master hands deliver a new qmgr channel");
    ok(recv_res(qmgr, &r, &fid, 5000) < 0, "the old channel gets no result and is closed");
    make_req(&q, 1, "nx2.test");
    send_req(q2, &q, msgfd);
    /* the cancelled job's lookup was forgotten: the next request is the new job's */
    ok(dns_answer(dnsd, DNS_PERM, "domain nx2.test not found (NXDOMAIN)", name, sizeof(name)) == 0,
       "the new qmgr's lookup");
    is_str(name, "nx2.test", "is for the new request");
    ok(recv_res(q2, &r, &fid, 10000) == 0, "result on the new channel");
    is_int(r.id, 1, "for the new request (id 1), not the old 44");
    dlv_res_free(&r);

    /* dnsd replaced while a lookup is pending */
    make_req(&q, 2, "pending.test");
    send_req(q2, &q, msgfd);
    ok(dns_swallow(dnsd, name, sizeof(name)) == 0, "lookup pending at the old dnsd");
    d2 = new_peer(master, "dnsd");
    ok(recv_res(q2, &r, &fid, 10000) == 0, "dnsd replaced: the pending delivery is answered");
    is_int(r.id, 2, "request 2");
    if (r.n > 0) {
        is_int(r.r[0].status, DLV_TEMP, "deferred");
        is_int(r.r[0].cls, DLV_CLASS_LOCAL, "class local: dnsd's restart is our outage");
        is_int(dlv_blame(r.r[0].status, r.r[0].cls), DLV_BLAME_LOCAL, "not the destination's");
    }
    dlv_res_free(&r);
    make_req(&q, 3, "nx3.test");
    send_req(q2, &q, msgfd);
    ok(dns_answer(d2, DNS_PERM, "domain nx3.test not found (NXDOMAIN)", name, sizeof(name)) == 0,
       "the next lookup goes to the new dnsd");
    ok(recv_res(q2, &r, &fid, 10000) == 0 && r.id == 3, "and its result comes back");
    dlv_res_free(&r);

    /* shutdown */
    ipc_send_blocking(master, IMSG_SHUTDOWN, 0, -1, NULL, 0);
    int st = -1;
    for (int i = 0; i < 100 && child > 0; i++) {
        if (waitpid(child, &st, WNOHANG) == child) {
            child = -1;
            break;
        }
        usleep(50000);
    }
    ok(child < 0, "deliver exits promptly when asked to stop with nothing in flight");
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "with status 0");
    close(q2);
    close(d2);
    close(master);
    close(qmgr);
    close(dnsd);
    return done_testing();
}
