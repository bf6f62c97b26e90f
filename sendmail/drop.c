/*
 * drop - sendmail's maildrop fallback through postdrop (see drop.h).
 */
#include "drop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "mail/maildrop.h"

/* What Postern's smtpd announces after EHLO (smtpd/session.c). */
static const struct smtp_caps postern_caps = {
    .flags = SMTP_CAP_PIPELINING | SMTP_CAP_SIZE | SMTP_CAP_8BITMIME | SMTP_CAP_SMTPUTF8 |
             SMTP_CAP_ENHANCEDSTATUSCODES | SMTP_CAP_DSN,
};

int drop_write(const struct submit_req *req, submit_put_fn put, void *arg)
{
    struct buf cmds;
    const char *fail = NULL;
    int rc;

    buf_init(&cmds);
    buf_adds(&cmds, MAILDROP_MAGIC "\r\n");
    submit_mail_line(req, &postern_caps, &cmds);
    buf_adds(&cmds, "\r\n");
    for (size_t i = 0; i < req->nrcpts; i++) {
        submit_rcpt_line(req, i, &postern_caps, &cmds);
        buf_adds(&cmds, "\r\n");
    }
    buf_adds(&cmds, "DATA\r\n");
    rc = put(arg, cmds.data, cmds.len);
    buf_free(&cmds);
    if (rc < 0)
        return -1;
    return submit_content(req, put, arg, &fail);
}

static int put_fd(void *arg, const char *p, size_t n)
{
    return write_all(*(int *)arg, p, n);
}

char *drop_postdrop_path(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    char *slash;

    if (n <= 0)
        return xstrdup(DROP_POSTDROP_DEFAULT);
    path[n] = '\0';
    slash = strrchr(path, '/');
    if (slash == NULL)
        return xstrdup(DROP_POSTDROP_DEFAULT);
    *slash = '\0';
    return xasprintf("%s/postdrop", path);
}

int drop_message(const struct submit_req *req, const char *postdrop, const char *confdir)
{
    int p[2], st, wrote;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "%s: cannot make a pipe to postdrop: %s\n", req->prog, strerror(errno));
        return EX_TEMPFAIL;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: cannot start postdrop: %s\n", req->prog, strerror(errno));
        close(p[0]);
        close(p[1]);
        return EX_TEMPFAIL;
    }
    if (pid == 0) {
        if (dup2(p[0], 0) < 0)
            _exit(EX_OSERR);
        execl(postdrop, "postdrop", "-C", confdir, (char *)NULL);
        fprintf(stderr, "%s: cannot run %s: %s\n", req->prog, postdrop, strerror(errno));
        _exit(EX_OSERR);
    }
    close(p[0]);
    /* A write error means postdrop stopped reading: its exit status says why. */
    wrote = drop_write(req, put_fd, &p[1]);
    close(p[1]);
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "%s: waiting for postdrop: %s\n", req->prog, strerror(errno));
            return EX_TEMPFAIL;
        }
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "%s: postdrop was killed by signal %d\n", req->prog, WTERMSIG(st));
        return EX_TEMPFAIL;
    }
    if (WEXITSTATUS(st) == 0 && wrote < 0) {
        /* cannot happen: postdrop does not accept a stream it did not read to its end */
        fprintf(stderr, "%s: postdrop did not take the whole message\n", req->prog);
        return EX_TEMPFAIL;
    }
    return WEXITSTATUS(st);
}
