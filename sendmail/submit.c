/*
 * submit - sendmail's SMTP client to the local smtpd (see submit.h).
 */
#include "submit.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "base/netaddr.h"
#include "opts.h"
#include "mail/smtp_addr.h"
#include "mail/smtp_reply.h"

#define CHUNK (64 * 1024)

struct conn {
    const struct submit_req *req;
    int fd;
    char where[NETADDR_STRLEN];
    struct buf in;
    struct smtp_reply r;
    char summary[SMTP_SUMMARY_MAX];
    const char *fail;                                 /* why the last I/O failed */
    char why[SMTP_SUMMARY_MAX + NETADDR_STRLEN + 64]; /* SUBMIT_UNREACHABLE: why */
};

static int64_t deadline_in(int ms)
{
    return mono_us() + (int64_t)ms * 1000;
}

/* Wait for ev on fd until deadline; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = (deadline - mono_us()) / 1000;
        struct pollfd p = {fd, ev, 0};
        if (left <= 0)
            return 0;
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

int submit_connect(const struct sockaddr_storage *addr, int timeout_ms)
{
    const struct sockaddr *sa = (const struct sockaddr *)addr;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    socklen_t len = sizeof(err);

    if (fd < 0)
        return -1;
    if (connect(fd, sa, netaddr_len(sa)) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        err = errno;
    } else {
        int w = wait_fd(fd, POLLOUT, deadline_in(timeout_ms));
        if (w <= 0)
            err = w == 0 ? ETIMEDOUT : errno;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
    }
    if (err == 0)
        return fd;
    close(fd);
    errno = err;
    return -1;
}

static void say(const struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const struct conn *c, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", c->req->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int send_all(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(c->fd, POLLOUT, deadline_in(c->req->timeout_ms));
            if (w > 0)
                continue;
            c->fail = w == 0 ? "timeout" : strerror(errno);
            return -1;
        }
        c->fail = strerror(errno);
        return -1;
    }
    return 0;
}

/* One reply into c->r and c->summary; its code, or -1 (c->fail). */
static int read_reply(struct conn *c)
{
    int64_t deadline = deadline_in(c->req->timeout_ms);
    const char *why;

    smtp_reply_reset(&c->r);
    for (;;) {
        char *nl = memchr(c->in.data ? c->in.data : "", '\n', c->in.len);
        if (nl != NULL) {
            size_t len = (size_t)(nl - c->in.data);
            if (len && c->in.data[len - 1] == '\r')
                len--;
            if (c->req->verbose)
                fprintf(stderr, "<- %.*s\n", (int)len, c->in.data);
            int rc = smtp_reply_line(&c->r, c->in.data, len, &why);
            buf_consume(&c->in, (size_t)(nl - c->in.data) + 1);
            if (rc == SMTP_REPLY_BAD) {
                c->fail = why;
                return -1;
            }
            if (rc == SMTP_REPLY_DONE) {
                smtp_reply_summary(&c->r, c->summary, sizeof(c->summary));
                return c->r.code;
            }
            continue;
        }
        if (c->in.len > SMTP_REPLY_LINE_MAX + 16) {
            c->fail = "reply line too long";
            return -1;
        }
        int w = wait_fd(c->fd, POLLIN, deadline);
        if (w <= 0) {
            c->fail = w == 0 ? "timeout" : strerror(errno);
            return -1;
        }
        char tmp[4096];
        ssize_t k = read(c->fd, tmp, sizeof(tmp));
        if (k == 0) {
            c->fail = "connection closed";
            return -1;
        }
        if (k < 0 && errno != EINTR && errno != EAGAIN) {
            c->fail = strerror(errno);
            return -1;
        }
        if (k > 0)
            buf_add(&c->in, tmp, (size_t)k);
    }
}

/* Send a command line and read its reply. */
static int command(struct conn *c, const char *line)
{
    if (c->req->verbose)
        fprintf(stderr, "-> %s\n", line);
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s\r\n", line);
    int rc = send_all(c, b.data, b.len);
    buf_free(&b);
    return rc < 0 ? -1 : read_reply(c);
}

static int lost(struct conn *c, const char *step)
{
    say(c, "connection to postern at %s failed %s: %s; message not sent", c->where, step,
        c->fail ? c->fail : "error");
    return EX_TEMPFAIL;
}

/* A reply of the wrong class at step: the exit code and the message. */
static int refused(struct conn *c, const char *step)
{
    int temp = c->r.code >= 400 && c->r.code < 500;

    say(c, "postern %s %s: %s; message not sent", temp ? "deferred" : "refused", step, c->summary);
    return temp ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

void submit_mail_line(const struct submit_req *q, const struct smtp_caps *caps, struct buf *cmd)
{
    buf_printf(cmd, "MAIL FROM:<%s>", q->sender);
    if (caps->flags & SMTP_CAP_SIZE)
        buf_printf(cmd, " SIZE=%llu", (unsigned long long)q->size);
    if (q->eightbit && (caps->flags & SMTP_CAP_8BITMIME))
        buf_adds(cmd, " BODY=8BITMIME");
    if (q->utf8)
        buf_adds(cmd, " SMTPUTF8");
    if (caps->flags & SMTP_CAP_DSN) {
        if (q->ret)
            buf_printf(cmd, " RET=%s", q->ret);
        if (q->envid) {
            char x[SMTP_ENVID_MAX * 3 + 1];
            if (smtp_xtext_encode(q->envid, strlen(q->envid), x, sizeof(x)) >= 0)
                buf_printf(cmd, " ENVID=%s", x);
        }
    }
}

static void notify_param(unsigned notify, struct buf *cmd)
{
    if (notify == 0)
        return;
    if (notify & SM_NOTIFY_NEVER) {
        buf_adds(cmd, " NOTIFY=NEVER");
        return;
    }
    buf_adds(cmd, " NOTIFY=");
    const char *sep = "";
    if (notify & SM_NOTIFY_SUCCESS)
        buf_printf(cmd, "%sSUCCESS", sep), sep = ",";
    if (notify & SM_NOTIFY_FAILURE)
        buf_printf(cmd, "%sFAILURE", sep), sep = ",";
    if (notify & SM_NOTIFY_DELAY)
        buf_printf(cmd, "%sDELAY", sep);
}

void submit_rcpt_line(const struct submit_req *q, size_t i, const struct smtp_caps *caps,
                      struct buf *cmd)
{
    buf_printf(cmd, "RCPT TO:<%s>", q->rcpts[i]);
    if (caps->flags & SMTP_CAP_DSN)
        notify_param(q->notify, cmd);
}

/* Every RCPT; 0 when all were accepted, else the exit code. */
static int recipients(struct conn *c, const struct smtp_caps *caps)
{
    const struct submit_req *q = c->req;
    int perm = 0, temp = 0;
    struct buf cmd;

    buf_init(&cmd);
    for (size_t i = 0; i < q->nrcpts; i++) {
        buf_reset(&cmd);
        submit_rcpt_line(q, i, caps, &cmd);
        int code = command(c, cmd.data);
        if (code < 0) {
            buf_free(&cmd);
            return lost(c, "at RCPT");
        }
        if (code / 100 == 2)
            continue;
        say(c, "<%s>: recipient %s: %s", q->rcpts[i], code / 100 == 4 ? "deferred" : "refused",
            c->summary);
        perm += code / 100 == 5;
        temp += code / 100 != 5;
    }
    buf_free(&cmd);
    if (perm + temp == 0)
        return 0;
    say(c,
        "message not sent to anyone (%d of %zu recipient%s %s); correct the address%s and "
        "send again",
        perm + temp, q->nrcpts, q->nrcpts == 1 ? "" : "s",
        perm + temp == 1 ? "was not accepted" : "were not accepted", perm + temp == 1 ? "" : "es");
    return perm ? EX_NOUSER : EX_TEMPFAIL;
}

int submit_content(const struct submit_req *q, submit_put_fn put, void *arg, const char **fail)
{
    struct smtp_dotstuff d;
    struct buf out;
    char *chunk = xmalloc(CHUNK);
    size_t pos = 0;
    long n;
    int rc = 0;

    buf_init(&out);
    smtp_dotstuff_init(&d);
    smtp_dotstuff_add(&d, q->headers->data, q->headers->len, &out);
    if (body_rewind(q->body) < 0) {
        *fail = strerror(errno);
        rc = -1;
    }
    while (rc == 0 && (n = body_read(q->body, &pos, chunk, CHUNK)) != 0) {
        if (n < 0) {
            fprintf(stderr, "%s: cannot read back the message: %s\n", q->prog, strerror(errno));
            *fail = "temporary file unreadable";
            rc = -1;
            break;
        }
        smtp_dotstuff_add(&d, chunk, (size_t)n, &out);
        if (out.len >= CHUNK) {
            rc = put(arg, out.data, out.len);
            buf_reset(&out);
        }
    }
    if (rc == 0) {
        smtp_dotstuff_end(&d, &out);
        rc = put(arg, out.data, out.len);
    }
    buf_free(&out);
    free(chunk);
    return rc;
}

static int put_conn(void *arg, const char *p, size_t n)
{
    return send_all(arg, p, n);
}

static int session(struct conn *c)
{
    const struct submit_req *q = c->req;
    struct smtp_caps caps;
    struct buf cmd;
    int code, rc;

    if ((code = read_reply(c)) < 0) {
        snprintf(c->why, sizeof(c->why), "postern is not accepting mail at %s: %s at the greeting",
                 c->where, c->fail ? c->fail : "error");
        return SUBMIT_UNREACHABLE;
    }
    if (code == 421) {
        snprintf(c->why, sizeof(c->why), "postern is not accepting mail at %s: %s", c->where,
                 c->summary);
        return SUBMIT_UNREACHABLE;
    }
    if (code != 220)
        return refused(c, "the connection");
    buf_init(&cmd);
    buf_printf(&cmd, "EHLO %s", q->helo);
    code = command(c, cmd.data);
    if (code < 0)
        return buf_free(&cmd), lost(c, "at EHLO");
    if (code != 250)
        return buf_free(&cmd), refused(c, "EHLO");
    smtp_caps_parse(&caps, &c->r);
    if (q->utf8 && !(caps.flags & SMTP_CAP_SMTPUTF8)) {
        buf_free(&cmd);
        say(c, "an address holds UTF-8 and the server does not offer SMTPUTF8; message not sent");
        return EX_DATAERR;
    }
    buf_reset(&cmd);
    submit_mail_line(q, &caps, &cmd);
    code = command(c, cmd.data);
    buf_free(&cmd);
    if (code < 0)
        return lost(c, "at MAIL");
    if (code / 100 != 2)
        return refused(c, "the sender");
    if ((rc = recipients(c, &caps)) != 0)
        return rc;
    if ((code = command(c, "DATA")) < 0)
        return lost(c, "at DATA");
    if (code != 354)
        return refused(c, "DATA");
    if (submit_content(q, put_conn, c, &c->fail) < 0)
        return lost(c, "while sending the message");
    if ((code = read_reply(c)) < 0) {
        say(c,
            "connection to postern at %s failed after the message was sent: %s; it may or "
            "may not have been queued",
            c->where, c->fail);
        return EX_TEMPFAIL;
    }
    if (code / 100 != 2)
        return refused(c, "the message");
    if (q->verbose)
        say(c, "sent: %s", c->summary);
    return EX_OK;
}

int submit_message(const struct submit_req *req, char *why, size_t whysz)
{
    struct conn c;
    int rc;

    memset(&c, 0, sizeof(c));
    c.req = req;
    netaddr_format((const struct sockaddr *)&req->addr, c.where, sizeof(c.where));
    c.fd = submit_connect(&req->addr, req->timeout_ms);
    if (c.fd < 0) {
        snprintf(why, whysz, "postern is not accepting mail at %s: %s", c.where,
                 errno == ECONNREFUSED ? "connection refused" : strerror(errno));
        return SUBMIT_UNREACHABLE;
    }
    buf_init(&c.in);
    smtp_reply_init(&c.r);
    rc = session(&c);
    if (rc == SUBMIT_UNREACHABLE)
        strlcpy_p(why, c.why, whysz);
    if (c.fail == NULL && rc != SUBMIT_UNREACHABLE) {
        /* polite end; whatever happens now does not change the outcome */
        int64_t dl = deadline_in(2000);
        if (send_all(&c, "QUIT\r\n", 6) == 0 && wait_fd(c.fd, POLLIN, dl) > 0) {
            char tmp[512];
            (void)!read(c.fd, tmp, sizeof(tmp));
        }
    }
    close(c.fd);
    buf_free(&c.in);
    smtp_reply_free(&c.r);
    return rc;
}

/* ---- -bs ---- */

struct pipe_dir {
    int from, to;
    struct buf pending;
    int eof;
};

int smtp_proxy(const char *prog, const struct sockaddr_storage *addr, int idle_ms)
{
    char where[NETADDR_STRLEN], tmp[16384];
    int fd, shut = 0;
    struct pipe_dir up = {0, -1, {0}, 0}, down = {-1, 1, {0}, 0};

    netaddr_format((const struct sockaddr *)addr, where, sizeof(where));
    fd = submit_connect(addr, idle_ms);
    if (fd < 0) {
        const char *why = errno == ECONNREFUSED ? "connection refused" : strerror(errno);
        printf("421 4.3.0 postern is not accepting mail\r\n");
        fflush(stdout);
        fprintf(stderr, "%s: postern is not accepting mail at %s: %s\n", prog, where, why);
        return EX_TEMPFAIL;
    }
    up.to = fd;
    down.from = fd;
    buf_init(&up.pending);
    buf_init(&down.pending);
    fd_nonblock(1);
    for (;;) {
        struct pipe_dir *d[2] = {&up, &down};
        struct pollfd p[4];
        int np = 0, idx[4];
        for (int i = 0; i < 2; i++) {
            if (!d[i]->eof && d[i]->pending.len < sizeof(tmp))
                p[np] = (struct pollfd){d[i]->from, POLLIN, 0}, idx[np++] = i;
            if (d[i]->pending.len)
                p[np] = (struct pollfd){d[i]->to, POLLOUT, 0}, idx[np++] = i + 2;
        }
        if (down.eof && down.pending.len == 0)
            break; /* the server ended the session */
        int n = poll(p, (nfds_t)np, idle_ms);
        if (n == 0) {
            fprintf(stderr, "%s: -bs session idle for %d s; closing\n", prog, idle_ms / 1000);
            break;
        }
        if (n < 0 && errno != EINTR)
            break;
        for (int k = 0; n > 0 && k < np; k++) {
            struct pipe_dir *x = d[idx[k] % 2];
            if (!p[k].revents)
                continue;
            if (idx[k] < 2) {
                ssize_t r = read(x->from, tmp, sizeof(tmp));
                if (r > 0)
                    buf_add(&x->pending, tmp, (size_t)r);
                else if (r == 0 || (errno != EINTR && errno != EAGAIN))
                    x->eof = 1;
            } else {
                ssize_t w = x->to == fd ? send(fd, x->pending.data, x->pending.len, MSG_NOSIGNAL)
                                        : write(x->to, x->pending.data, x->pending.len);
                if (w > 0)
                    buf_consume(&x->pending, (size_t)w);
                else if (w < 0 && errno != EINTR && errno != EAGAIN)
                    goto out;
            }
        }
        if (up.eof && up.pending.len == 0 && !shut) {
            shutdown(fd, SHUT_WR); /* the client is done: let the server see EOF */
            shut = 1;
        }
    }
out:
    close(fd);
    buf_free(&up.pending);
    buf_free(&down.pending);
    return EX_OK;
}
