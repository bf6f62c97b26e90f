/*
 * ctl - mailq (sendmail -bp) and sendmail -q: the same control request
 * smtpctl sends ("show queue", "flush ..."), over queue_directory/
 * run/control.sock, answered by master (which hands it to qmgr).
 *
 * Only root and the user postern's master runs as may use the control
 * socket (its directory is 0700, and master checks SO_PEERCRED); anyone
 * else is told so. Exit: 0 when the command succeeded, 1 otherwise.
 */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/ipc.h"
#include "mail/proto.h"
#include "mail/spool.h"
#include "base/util.h"

#define CTL_TIMEOUT_MS (60 * 1000)

static int denied(const char *prog, const char *path)
{
    fprintf(stderr,
            "%s: permission denied: only root and the user postern runs as may use its control "
            "socket %s (to read the queue, run %s as root, e.g. with sudo)\n",
            prog, path, prog);
    return 1;
}

static int open_control(const char *prog, const char *path)
{
    struct sockaddr_un sun;
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "%s: control socket path too long: %s\n", prog, path);
        return -1;
    }
    strlcpy_p(sun.sun_path, path, sizeof(sun.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
        return fd;
    if (errno == EACCES || errno == EPERM)
        denied(prog, path);
    else if (errno == ENOENT || errno == ECONNREFUSED)
        fprintf(stderr, "%s: postern is not running (no master listening on %s)\n", prog, path);
    else
        fprintf(stderr, "%s: cannot reach postern's master at %s: %s\n", prog, path,
                strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

int ctl_run(const char *prog, const char *spool, int argc, const char *const *argv)
{
    char *path = xasprintf("%s/%s", spool, SPOOL_CONTROL);
    struct ipc_w w;
    struct ipc_frame fr;
    struct ipc_r r;
    uint8_t *body = NULL;
    int fd, rfd = -1, code = 1;

    if ((fd = open_control(prog, path)) < 0) {
        free(path);
        return 1;
    }
    ipc_w_init(&w);
    ipc_w_u32(&w, 0);
    ipc_w_u32(&w, (uint32_t)argc);
    for (int i = 0; i < argc; i++)
        ipc_w_str(&w, argv[i]);
    if (ipc_send_blocking(fd, IMSG_CTL_REQ, 1, -1, w.p, w.len) < 0) {
        if (errno == EPIPE || errno == ECONNRESET)
            denied(prog, path); /* master closed on us: SO_PEERCRED said no */
        else
            fprintf(stderr, "%s: sending to postern's master: %s\n", prog, strerror(errno));
        goto out;
    }
    if (ipc_recv_blocking(fd, &fr, &body, &rfd, CTL_TIMEOUT_MS) < 0) {
        if (errno == ECONNRESET)
            denied(prog, path);
        else
            fprintf(stderr, "%s: no answer from postern's master: %s\n", prog, strerror(errno));
        goto out;
    }
    if (rfd >= 0)
        close(rfd);
    ipc_r_init(&r, body, fr.len);
    code = (int)ipc_r_u32(&r);
    const char *text = ipc_r_str(&r);
    if (fr.type != IMSG_CTL_REP || !ipc_r_done(&r)) {
        fprintf(stderr, "%s: malformed answer from postern's master\n", prog);
        code = 1;
        goto out;
    }
    fputs(text, code == 0 ? stdout : stderr);
    code = code == 0 ? 0 : 1;
out:
    ipc_w_free(&w);
    free(body);
    free(path);
    close(fd);
    return code;
}
