/*
 * ctl - mailq (sendmail -bp) and sendmail -q: the same control request
 * smtpctl sends ("show queue", "flush ..."), over queue_directory/
 * run/control.sock with the client smtpctl uses (mail/ctl_client.h),
 * answered by master (which hands it to qmgr). Only the wording of
 * problems is sendmail's own.
 *
 * Only root and the user postern's master runs as may use the control
 * socket (its directory is 0700, and master checks SO_PEERCRED); anyone
 * else is told so. Exit: 0 when the command succeeded, 1 otherwise.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>

#include "mail/ctl_client.h"
#include "mail/spool.h"
#include "base/util.h"

#define CTL_TIMEOUT_MS (60 * 1000)

static void denied(const char *prog, const char *path)
{
    fprintf(stderr,
            "%s: permission denied: only root and the user postern runs as may use its control "
            "socket %s (to read the queue, run %s as root, e.g. with sudo)\n",
            prog, path, prog);
}

static void problem(const char *prog, const char *path, const struct ctl_client_err *err)
{
    char *msg;

    if (ctl_client_refused(err)) {
        denied(prog, path); /* connect denied, or master closed on us (SO_PEERCRED) */
        return;
    }
    msg = ctl_client_strerror(err, path, "postern's master");
    fprintf(stderr, "%s: %s\n", prog, msg);
    free(msg);
}

int ctl_run(const char *prog, const char *spool, int argc, const char *const *argv)
{
    char *path = xasprintf("%s/%s", spool, SPOOL_CONTROL);
    struct ctl_req req = {0, (size_t)argc, xcalloc((size_t)argc + 1, sizeof(char *))};
    struct ctl_rep rep;
    struct ctl_client_err err;
    int code = 1;

    for (int i = 0; i < argc; i++)
        req.argv[i] = xstrdup(argv[i]);
    if (ctl_client_call(path, &req, CTL_TIMEOUT_MS, &rep, &err) < 0) {
        problem(prog, path, &err);
    } else {
        fputs(rep.output, rep.code == 0 ? stdout : stderr);
        code = rep.code == 0 ? 0 : 1;
        ctl_rep_free(&rep);
    }
    ctl_req_free(&req);
    free(path);
    return code;
}
