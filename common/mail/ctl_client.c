/*
 * ctl_client - one control request over master's control socket, blocking.
 * Contract in ctl_client.h.
 */
#include "mail/ctl_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/proto.h"
#include "base/util.h"

#define CTL_CLIENT_ID 1 /* the one request of the connection */

static int fail(struct ctl_client_err *err, enum ctl_client_step step, int sys)
{
    err->step = step;
    err->sys = sys;
    return -1;
}

static int connect_path(const char *path, struct ctl_client_err *err)
{
    struct sockaddr_un sun;
    int fd, e;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path))
        return fail(err, CTL_CLIENT_PATH, 0);
    strlcpy_p(sun.sun_path, path, sizeof(sun.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
        return fd;
    e = errno;
    if (fd >= 0)
        close(fd);
    return fail(err, CTL_CLIENT_CONNECT, e);
}

/* Send req and read the answer on fd; fd stays open. */
static int exchange(int fd, const struct ctl_req *req, int timeout_ms, struct ctl_rep *rep,
                    struct ctl_client_err *err)
{
    struct ipc_w w;
    struct ipc_frame fr;
    uint8_t *body;
    int sent, rfd, rc;

    ipc_w_init(&w);
    ctl_req_encode(&w, req);
    sent = ipc_send_blocking(fd, IMSG_CTL_REQ, CTL_CLIENT_ID, -1, w.p, w.len);
    ipc_w_free(&w);
    if (sent < 0)
        return fail(err, CTL_CLIENT_SEND, errno);
    if (ipc_recv_blocking(fd, &fr, &body, &rfd, timeout_ms) < 0)
        return fail(err, CTL_CLIENT_RECV, errno);
    if (rfd >= 0)
        close(rfd);
    rc = fr.type == IMSG_CTL_REP ? ctl_rep_decode(body, fr.len, rep) : CTL_DEC_ERR;
    free(body);
    if (rc != CTL_DEC_OK)
        return fail(err, CTL_CLIENT_REPLY, 0);
    return 0;
}

int ctl_client_call(const char *path, const struct ctl_req *req, int timeout_ms,
                    struct ctl_rep *rep, struct ctl_client_err *err)
{
    int fd, rc;

    memset(rep, 0, sizeof(*rep));
    memset(err, 0, sizeof(*err));
    if ((fd = connect_path(path, err)) < 0)
        return -1;
    rc = exchange(fd, req, timeout_ms, rep, err);
    close(fd);
    return rc;
}

char *ctl_client_strerror(const struct ctl_client_err *err, const char *path, const char *master)
{
    switch (err->step) {
    case CTL_CLIENT_PATH:
        return xasprintf("control socket path too long: %s", path);
    case CTL_CLIENT_CONNECT:
        if (err->sys == ENOENT || err->sys == ECONNREFUSED)
            return xasprintf("postern is not running (no master listening on %s)", path);
        return xasprintf("cannot reach %s at %s: %s", master, path, strerror(err->sys));
    case CTL_CLIENT_SEND:
        return xasprintf("sending to %s: %s", master, strerror(err->sys));
    case CTL_CLIENT_RECV:
        return xasprintf("no answer from %s: %s", master, strerror(err->sys));
    case CTL_CLIENT_REPLY:
        break;
    }
    return xasprintf("malformed answer from %s", master);
}

int ctl_client_refused(const struct ctl_client_err *err)
{
    switch (err->step) {
    case CTL_CLIENT_CONNECT:
        return err->sys == EACCES || err->sys == EPERM;
    case CTL_CLIENT_SEND:
        return err->sys == EPIPE || err->sys == ECONNRESET;
    case CTL_CLIENT_RECV:
        return err->sys == ECONNRESET;
    default:
        return 0;
    }
}
