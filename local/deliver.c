/*
 * deliver - local's privileged deliveries, each in a worker with the
 * target's privileges; contract in deliver.h.
 */
#include "deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail/dlv_proto.h"
#include "maildir.h"
#include "mbox.h"

#define REPLY_MAX (1024 * 1024)
#define FORWARD_MAX (64 * 1024)

void ld_out_set(struct ld_out *o, int status, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    char *t;

    va_start(ap, fmt);
    if (vasprintf(&t, fmt, ap) < 0)
        t = NULL;
    va_end(ap);
    free(o->text);
    o->text = t ? t : xstrdup("(no text)");
    o->status = status;
    snprintf(o->dsn, sizeof(o->dsn), "%s", dsn);
}

void ld_out_errno(struct ld_out *o, int e, const char *what)
{
    if (e == EDQUOT)
        ld_out_set(o, DLV_TEMP, "4.2.2", "mailbox full (quota): %s", what);
    else if (e == ENOSPC)
        ld_out_set(o, DLV_TEMP, "4.3.1", "disk full: %s", what);
    else if (e == EAGAIN)
        ld_out_set(o, DLV_TEMP, "4.2.0", "%s", what);
    else
        ld_out_set(o, DLV_TEMP, "4.2.0", "%s", what);
}

/* The copy a mailbox, file or command gets: the added header lines and
 * the message with LF line ends (mbox: From_ line and quoting too). */
static void content(const struct ld_msg *m, int mbox, struct buf *out)
{
    if (mbox)
        mbox_from_line(out, m->sender, m->arrival);
    buf_printf(out, "Return-Path: <%s>\n", m->sender);
    buf_printf(out, "Delivered-To: %s\n", m->rcpt);
    if (mbox) {
        mbox_body(out, m->data, m->len);
        return;
    }
    for (size_t i = 0; i < m->len; i++)
        if (!(m->data[i] == '\r' && i + 1 < m->len && m->data[i + 1] == '\n'))
            buf_addc(out, m->data[i]);
    if (out->len && out->data[out->len - 1] != '\n')
        buf_addc(out, '\n');
}

/* ---- workers ---- */

/* Close every fd from 3 on but a and b (-1: none): a worker keeps no
 * channel, map or queue file of local's. */
static void close_others(int a, int b)
{
    int lo = a < b ? a : b, hi = a < b ? b : a;

    if (lo < 3) {
        lo = hi;
        hi = -1;
    }
    if (lo < 3) {
        close_range(3, ~0U, 0);
        return;
    }
    if (lo > 3)
        close_range(3, (unsigned)lo - 1, 0);
    if (hi < 0) {
        close_range((unsigned)lo + 1, ~0U, 0);
        return;
    }
    if (hi > lo + 1)
        close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
    close_range((unsigned)hi + 1, ~0U, 0);
}

/*
 * Run fn(arg, wfd) in a child as uid/gid (when local runs as root), its
 * report (what it writes on wfd) into *rep; keep: an fd the worker needs
 * (-1: none), all others from 3 on are closed first. The exit code of fn,
 * or -1 when the worker died of a signal (or could not start).
 */
static int run_as(const struct ld_conf *c, uid_t uid, gid_t gid, int keep, int (*fn)(void *, int),
                  void *arg, struct buf *rep)
{
    int p[2], st = 0;
    pid_t pid;
    char chunk[4096];
    ssize_t n;

    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        close_others(p[1], keep);
        if (c->as_root) {
            if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0 ||
                getuid() != uid || geteuid() != uid || (uid != 0 && setuid(0) == 0))
                _exit(111);
        }
        _exit(fn(arg, p[1]));
    }
    close(p[1]);
    while ((n = read(p[0], chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && rep->len < REPLY_MAX)
            buf_add(rep, chunk, (size_t)n);
    close(p[0]);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return -1;
}

/* A worker's report: "errno text" after a failure, or "path" after success. */
static void report(int wfd, int e, const char *text)
{
    char head[32];
    int n = snprintf(head, sizeof(head), "%d ", e);

    if (write_all(wfd, head, (size_t)n) != 0 || write_all(wfd, text, strlen(text)) != 0) {
        /* the exit code still says it */
    }
}

/* What a worker that failed said: its errno and text into out. */
static void worker_failed(struct ld_out *out, int rc, const struct buf *rep, const char *what)
{
    int e = 0;
    const char *t = "";

    if (rc == 111) {
        ld_out_set(out, DLV_TEMP, "4.3.0", "%s: cannot take the user's privileges", what);
        return;
    }
    if (rc < 0) {
        ld_out_set(out, DLV_TEMP, "4.3.0", "%s: the delivery worker died", what);
        return;
    }
    if (rep->len) {
        e = atoi(rep->data);
        t = strchr(rep->data, ' ') ? strchr(rep->data, ' ') + 1 : rep->data;
    }
    ld_out_errno(out, e, *t ? t : what);
}

struct write_job {
    int fd;
    const char *path;
    const struct buf *data;
};

static int w_append(void *arg, int wfd)
{
    struct write_job *j = arg;
    char *err = NULL;

    if (mbox_append(j->fd, j->path, j->data->data, j->data->len, &err) != 0) {
        report(wfd, errno, err);
        return 1;
    }
    return 0;
}

struct mbox_job {
    const struct ld_conf *c;
    const char *path;
    const struct buf *data;
};

/* A mailbox the worker locks, writes and unlocks itself (home mailbox, /file). */
static int w_locked_append(void *arg, int wfd)
{
    struct mbox_job *j = arg;
    struct mbox_lock l;
    char *err = NULL;
    int rc = 0;

    if (mbox_lock(&l, j->path, j->c->lock_timeout, (uid_t)-1, (gid_t)-1, 0600, &err) != 0) {
        report(wfd, errno, err);
        return 1;
    }
    if (mbox_append(l.fd, j->path, j->data->data, j->data->len, &err) != 0) {
        report(wfd, errno, err);
        rc = 1;
    }
    mbox_unlock(&l);
    return rc;
}

struct maildir_job {
    const char *dir, *host;
    const struct buf *data;
};

static int w_maildir(void *arg, int wfd)
{
    struct maildir_job *j = arg;
    char *where = NULL, *err = NULL;

    if (maildir_deliver(j->dir, j->host, j->data->data, j->data->len, &where, &err) != 0) {
        report(wfd, errno, err);
        return 1;
    }
    report(wfd, 0, where);
    return 0;
}

/* The spool's mbox of pw: dotlock, open and fcntl lock as root, the write
 * as the user (as default_privs for root). */
static void spool_mbox(const struct ld_conf *c, const struct passwd *pw, const struct buf *data,
                       struct ld_out *out)
{
    char *path = xasprintf("%s/%s", c->spool_dir, pw->pw_name), *err = NULL;
    struct group *mail = getgrnam("mail");
    gid_t gid = mail && c->as_root ? mail->gr_gid : pw->pw_gid;
    struct mbox_lock l;
    struct buf rep;
    int rc;

    if (mbox_lock(&l, path, c->lock_timeout, c->as_root ? pw->pw_uid : (uid_t)-1, gid,
                  mail && c->as_root ? 0660 : 0600, &err) != 0) {
        ld_out_errno(out, errno, err);
        free(err);
        free(path);
        return;
    }
    struct write_job j = {l.fd, path, data};
    buf_init(&rep);
    if (pw->pw_uid == 0)
        rc = run_as(c, c->privs_uid, c->privs_gid, l.fd, w_append, &j, &rep);
    else
        rc = run_as(c, pw->pw_uid, pw->pw_gid, l.fd, w_append, &j, &rep);
    mbox_unlock(&l);
    if (rc == 0)
        ld_out_set(out, DLV_OK, "2.0.0", "delivered to mailbox %s", path);
    else
        worker_failed(out, rc, &rep, path);
    buf_free(&rep);
    free(path);
}

void ld_mailbox(const struct ld_conf *c, const struct passwd *pw, const struct ld_msg *m,
                struct ld_out *out)
{
    const char *hm = c->home_mailbox;
    size_t hl = strlen(hm);
    struct buf data, rep;
    char *path;
    int rc;

    buf_init(&data);
    buf_init(&rep);
    if (hl == 0 || pw->pw_uid == 0) {
        content(m, 1, &data);
        spool_mbox(c, pw, &data, out);
        buf_free(&data);
        return;
    }
    path = xasprintf("%s/%.*s", pw->pw_dir, (int)(hm[hl - 1] == '/' ? hl - 1 : hl), hm);
    if (hm[hl - 1] == '/') {
        struct maildir_job j = {path, c->hostname, &data};
        content(m, 0, &data);
        rc = run_as(c, pw->pw_uid, pw->pw_gid, -1, w_maildir, &j, &rep);
        if (rc == 0) {
            const char *w = strchr(rep.data ? rep.data : "", ' ');
            ld_out_set(out, DLV_OK, "2.0.0", "delivered to maildir %s", w ? w + 1 : path);
        } else {
            worker_failed(out, rc, &rep, path);
        }
    } else {
        struct mbox_job j = {c, path, &data};
        content(m, 1, &data);
        rc = run_as(c, pw->pw_uid, pw->pw_gid, -1, w_locked_append, &j, &rep);
        if (rc == 0)
            ld_out_set(out, DLV_OK, "2.0.0", "delivered to mailbox %s", path);
        else
            worker_failed(out, rc, &rep, path);
    }
    buf_free(&data);
    buf_free(&rep);
    free(path);
}

void ld_file(const struct ld_conf *c, const char *path, uid_t uid, gid_t gid,
             const struct ld_msg *m, struct ld_out *out)
{
    struct buf data, rep;
    struct mbox_job j = {c, path, &data};
    int rc;

    buf_init(&data);
    buf_init(&rep);
    content(m, 1, &data);
    rc = run_as(c, uid, gid, -1, w_locked_append, &j, &rep);
    if (rc == 0)
        ld_out_set(out, DLV_OK, "2.0.0", "delivered to file %s", path);
    else
        worker_failed(out, rc, &rep, path);
    buf_free(&data);
    buf_free(&rep);
}

struct pipe_job {
    const struct ld_conf *c;
    const char *cmd;
    const struct passwd *pw;
    const struct ld_msg *m;
    const struct buf *data;
};

/* As the target's user: /bin/sh -c CMD, the message on stdin, a minimal
 * environment, in its own process group, killed after command_time_limit.
 * Exit: 0 ok, 75 temporary, 76 killed or timed out, 77 could not run,
 * else 1 with the command's exit code reported. */
static int w_pipe(void *arg, int wfd)
{
    struct pipe_job *j = arg;
    int in[2], st = 0;
    pid_t pid;
    int64_t until = mono_us() + (int64_t)j->c->command_limit * 1000000;

    if (pipe(in) != 0)
        return 77;
    pid = fork();
    if (pid < 0)
        return 77;
    if (pid == 0) {
        char *env[8];
        int n = 0;
        env[n++] = xasprintf("HOME=%s", j->pw ? j->pw->pw_dir : "/");
        env[n++] = xasprintf("USER=%s", j->pw ? j->pw->pw_name : "nobody");
        env[n++] = xasprintf("LOGNAME=%s", j->pw ? j->pw->pw_name : "nobody");
        env[n++] = xstrdup("SHELL=/bin/sh");
        env[n++] = xstrdup("PATH=/usr/bin:/bin");
        env[n++] = xasprintf("SENDER=%s", j->m->sender);
        env[n++] = xasprintf("RECIPIENT=%s", j->m->rcpt);
        env[n] = NULL;
        setpgid(0, 0);
        dup2(in[0], 0);
        close(in[0]);
        close(in[1]);
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0) {
            dup2(nul, 1);
            dup2(nul, 2);
        }
        close_range(3, ~0U, 0);
        if (chdir(j->pw ? j->pw->pw_dir : "/") != 0 && chdir("/") != 0)
            _exit(77);
        signal(SIGPIPE, SIG_DFL);
        execle("/bin/sh", "sh", "-c", j->cmd, (char *)NULL, env);
        _exit(77);
    }
    close(in[0]);
    signal(SIGPIPE, SIG_IGN);
    fd_nonblock(in[1]);
    size_t off = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (mono_us() >= until) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            report(wfd, 0, "command timed out (command_time_limit)");
            return 76;
        }
        if (in[1] >= 0 && off < j->data->len) {
            ssize_t w = write(in[1], j->data->data + off, j->data->len - off);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                close(in[1]);
                in[1] = -1;
            }
        }
        if (in[1] >= 0 && off >= j->data->len) {
            close(in[1]);
            in[1] = -1;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (in[1] >= 0)
        close(in[1]);
    if (WIFSIGNALED(st)) {
        report(wfd, 0, "command killed by a signal");
        return 76;
    }
    if (WEXITSTATUS(st) == 0)
        return 0;
    if (WEXITSTATUS(st) == 75)
        return 75;
    char t[64];
    snprintf(t, sizeof(t), "command exited with status %d", WEXITSTATUS(st));
    report(wfd, 0, t);
    return 1;
}

void ld_pipe(const struct ld_conf *c, const char *cmd, const struct passwd *pw, uid_t uid,
             gid_t gid, const struct ld_msg *m, struct ld_out *out)
{
    struct buf data, rep;
    struct pipe_job j = {c, cmd, pw, m, &data};
    int rc;

    buf_init(&data);
    buf_init(&rep);
    content(m, 0, &data);
    rc = run_as(c, uid, gid, -1, w_pipe, &j, &rep);
    const char *t = rep.len && strchr(rep.data, ' ') ? strchr(rep.data, ' ') + 1 : "";
    if (rc == 0)
        ld_out_set(out, DLV_OK, "2.0.0", "delivered to command: %s", cmd);
    else if (rc == 75)
        ld_out_set(out, DLV_TEMP, "4.3.0", "command: %s: exited 75 (temporary failure)", cmd);
    else if (rc == 1)
        ld_out_set(out, DLV_PERM, "5.3.0", "command: %s: %s", cmd, t);
    else if (rc == 111)
        ld_out_set(out, DLV_TEMP, "4.3.0", "command: %s: cannot take the user's privileges", cmd);
    else
        ld_out_set(out, DLV_TEMP, "4.3.0", "command: %s: %s", cmd, *t ? t : "could not be run");
    buf_free(&data);
    buf_free(&rep);
}

struct fwd_job {
    const struct passwd *pw;
};

static int w_forward(void *arg, int wfd)
{
    struct fwd_job *j = arg;
    char *path = xasprintf("%s/.forward", j->pw->pw_dir), buf[4096];
    struct stat st;
    size_t total = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

    free(path);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == EACCES ? 2 : 1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (st.st_uid != j->pw->pw_uid && st.st_uid != 0) || (st.st_mode & 022)) {
        close(fd);
        return 3;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0 && total < FORWARD_MAX) {
        if (write_all(wfd, buf, (size_t)n) != 0)
            break;
        total += (size_t)n;
    }
    close(fd);
    return n < 0 ? 1 : 0;
}

int ld_read_forward(const struct ld_conf *c, const struct passwd *pw, char **text, size_t *len,
                    char **why)
{
    struct fwd_job j = {pw};
    struct buf rep;
    int rc;

    *text = NULL;
    *why = NULL;
    buf_init(&rep);
    rc = run_as(c, pw->pw_uid, pw->pw_gid, -1, w_forward, &j, &rep);
    if (rc == 0 && rep.len > 0) {
        *len = rep.len;
        buf_addc(&rep, '\0');
        *text = rep.data;
        return 1;
    }
    buf_free(&rep);
    if (rc == 0 || rc == 2)
        return 0;
    if (rc == 3) {
        *why = xasprintf("%s/.forward ignored: not a regular file of %s or root, or group or "
                         "others may write it",
                         pw->pw_dir, pw->pw_name);
        return 0;
    }
    *why = xasprintf("%s/.forward cannot be read", pw->pw_dir);
    return -1;
}

int ld_run_owner(const struct ld_conf *c, uid_t uid, gid_t gid, int (*fn)(void *, int), void *arg)
{
    struct buf rep;
    int rc;

    buf_init(&rep);
    rc = run_as(c, uid, gid, -1, fn, arg, &rep);
    buf_free(&rep);
    return rc;
}
