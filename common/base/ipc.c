/*
 * ipc - framing, fd passing and libevent channels. Contract in ipc.h.
 *
 * Reading: recvmsg() into a growable input buffer; fds that arrive as
 * SCM_RIGHTS go to a FIFO; each complete frame is handed to the handler
 * with the next fd from the FIFO if it has IPC_F_FD. Writing: frames are
 * queued whole (header + body) and written as the socket accepts them; a
 * frame with an fd is sent with the fd attached to its first byte.
 */
#include "base/ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "base/util.h"

#define IPC_FDQ_MAX 64 /* received fds not yet claimed by a frame */
#define IPC_READ_CHUNK 65536
#define IPC_CMSG_FDS 16 /* fds accepted in one recvmsg */

enum ipc_decode_result ipc_decode(const uint8_t *buf, size_t len, struct ipc_frame *out,
                                  size_t *consumed, const char **why)
{
    uint32_t blen, id;
    uint16_t type, flags;

    if (len < IPC_HDR_LEN)
        return IPC_DEC_MORE;
    memcpy(&blen, buf, 4);
    memcpy(&type, buf + 4, 2);
    memcpy(&flags, buf + 6, 2);
    memcpy(&id, buf + 8, 4);
    if (blen > IPC_MAX_BODY) {
        *why = "frame larger than IPC_MAX_BODY";
        return IPC_DEC_ERR;
    }
    if (flags & ~IPC_F_ALL) {
        *why = "unknown frame flags";
        return IPC_DEC_ERR;
    }
    if (type == 0) {
        *why = "frame type 0";
        return IPC_DEC_ERR;
    }
    if (len - IPC_HDR_LEN < blen)
        return IPC_DEC_MORE;
    out->type = type;
    out->flags = flags;
    out->id = id;
    out->body = buf + IPC_HDR_LEN;
    out->len = blen;
    *consumed = IPC_HDR_LEN + (size_t)blen;
    return IPC_DEC_OK;
}

void ipc_encode_hdr(uint8_t *hdr, uint16_t type, uint16_t flags, uint32_t id, size_t len)
{
    uint32_t l = (uint32_t)len;

    memcpy(hdr, &l, 4);
    memcpy(hdr + 4, &type, 2);
    memcpy(hdr + 6, &flags, 2);
    memcpy(hdr + 8, &id, 4);
}

struct ipc_out {
    struct ipc_out *next;
    uint8_t *data;
    size_t len, off;
    int fd; /* -1, or a dup to pass with the first byte */
};

struct ipc_chan {
    struct event_base *base;
    int fd;
    char name[32];
    struct event *rev, *wev, *closeev;
    uint8_t *in;
    size_t inlen, incap;
    int fdq[IPC_FDQ_MAX];
    int nfdq;
    struct ipc_out *outq, **outtail;
    size_t pending;
    const struct ipc_allow *allow;
    ipc_msg_fn on_msg;
    ipc_close_fn on_close;
    void *arg;
    int closed; /* no more I/O; on_close called or scheduled */
    int broken; /* closed because the peer sent something malformed or not allowed */
    int depth;  /* > 0 while inside on_msg */
    int doomed; /* ipc_chan_free called during on_msg */
};

static void chan_read_cb(evutil_socket_t fd, short what, void *arg);
static void chan_write_cb(evutil_socket_t fd, short what, void *arg);
static void chan_close_cb(evutil_socket_t fd, short what, void *arg);

int ipc_allowed(const struct ipc_allow *a, uint16_t type)
{
    if (a == NULL)
        return 1;
    for (size_t i = 0; i < a->n; i++)
        if (a->types[i] == type)
            return 1;
    return 0;
}

struct ipc_chan *ipc_chan_new(struct event_base *base, int fd, const char *name,
                              const struct ipc_allow *allow, ipc_msg_fn on_msg,
                              ipc_close_fn on_close, void *arg)
{
    struct ipc_chan *ch = xcalloc(1, sizeof(*ch));

    ch->base = base;
    ch->fd = fd;
    strlcpy_p(ch->name, name, sizeof(ch->name));
    ch->allow = allow;
    ch->on_msg = on_msg;
    ch->on_close = on_close;
    ch->arg = arg;
    ch->outtail = &ch->outq;
    fd_nonblock(fd);
    fd_cloexec(fd, 1);
    ch->rev = event_new(base, fd, EV_READ | EV_PERSIST, chan_read_cb, ch);
    ch->wev = event_new(base, fd, EV_WRITE, chan_write_cb, ch);
    ch->closeev = evtimer_new(base, chan_close_cb, ch);
    if (ch->rev == NULL || ch->wev == NULL || ch->closeev == NULL)
        log_panic("ipc: cannot create events for %s", name);
    event_add(ch->rev, NULL);
    return ch;
}

const char *ipc_chan_name(const struct ipc_chan *ch)
{
    return ch->name;
}

void ipc_chan_set_arg(struct ipc_chan *ch, void *arg)
{
    ch->arg = arg;
}

int ipc_chan_broken(const struct ipc_chan *ch)
{
    return ch->broken;
}

size_t ipc_chan_pending(const struct ipc_chan *ch)
{
    return ch->pending;
}

static void chan_stop_io(struct ipc_chan *ch)
{
    struct ipc_out *o, *next;

    event_del(ch->rev);
    event_del(ch->wev);
    for (o = ch->outq; o; o = next) {
        next = o->next;
        if (o->fd >= 0)
            close(o->fd);
        free(o->data);
        free(o);
    }
    ch->outq = NULL;
    ch->outtail = &ch->outq;
    ch->pending = 0;
    while (ch->nfdq > 0)
        close(ch->fdq[--ch->nfdq]);
}

void ipc_chan_free(struct ipc_chan *ch)
{
    if (ch == NULL)
        return;
    if (ch->depth > 0) {
        /* Freed from inside its own handler: finish after it returns. */
        ch->doomed = 1;
        ch->closed = 1;
        chan_stop_io(ch);
        return;
    }
    chan_stop_io(ch);
    event_free(ch->rev);
    event_free(ch->wev);
    event_free(ch->closeev);
    if (ch->fd >= 0)
        close(ch->fd);
    free(ch->in);
    free(ch);
}

/* Mark closed and tell the owner from the loop, never from inside a call. */
/* broken: the peer broke the protocol (malformed, or a type the edge does
 * not carry), as opposed to I/O trouble or an end inside a frame, which
 * is what a peer that dies looks like. */
static void chan_fail_as(struct ipc_chan *ch, const char *why, int broken)
{
    struct timeval tv = {0, 0};

    if (ch->closed)
        return;
    if (why != NULL) {
        log_warn("ipc: channel to %s closed: %s", ch->name, why);
        ch->broken = broken;
    }
    ch->closed = 1;
    chan_stop_io(ch);
    evtimer_add(ch->closeev, &tv);
}

static void chan_fail(struct ipc_chan *ch, const char *why)
{
    chan_fail_as(ch, why, 0);
}

static void chan_break(struct ipc_chan *ch, const char *why)
{
    chan_fail_as(ch, why, 1);
}

static void chan_close_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ipc_chan *ch = arg;

    if (ch->on_close)
        ch->on_close(ch, ch->arg);
}

static int chan_take_fds(struct ipc_chan *ch, struct msghdr *mh)
{
    struct cmsghdr *cm;

    for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *fds = (int *)(void *)CMSG_DATA(cm);
        for (size_t i = 0; i < n; i++) {
            int f;
            memcpy(&f, fds + i, sizeof(int));
            if (ch->nfdq >= IPC_FDQ_MAX) {
                close(f);
                return -1;
            }
            fd_cloexec(f, 1);
            ch->fdq[ch->nfdq++] = f;
        }
    }
    return (mh->msg_flags & MSG_CTRUNC) ? -1 : 0;
}

static int chan_pop_fd(struct ipc_chan *ch)
{
    int f;

    if (ch->nfdq == 0)
        return -1;
    f = ch->fdq[0];
    memmove(ch->fdq, ch->fdq + 1, (size_t)(ch->nfdq - 1) * sizeof(int));
    ch->nfdq--;
    return f;
}

/* Hand every complete frame in the input buffer to the handler. */
static void chan_dispatch(struct ipc_chan *ch)
{
    size_t off = 0;

    ch->depth++;
    while (!ch->closed) {
        struct ipc_frame fr;
        struct ipc_msg m;
        size_t used;
        const char *why = NULL;
        enum ipc_decode_result r = ipc_decode(ch->in + off, ch->inlen - off, &fr, &used, &why);

        if (r == IPC_DEC_MORE)
            break;
        if (r == IPC_DEC_ERR) {
            chan_break(ch, why);
            break;
        }
        m.type = fr.type;
        m.id = fr.id;
        m.body = fr.body;
        m.len = fr.len;
        m.fd = -1;
        if (fr.flags & IPC_F_FD) {
            m.fd = chan_pop_fd(ch);
            if (m.fd < 0) {
                chan_break(ch, "frame announces an fd that did not arrive");
                break;
            }
        }
        off += used;
        if (!ipc_allowed(ch->allow, m.type)) {
            char why2[160];
            snprintf(why2, sizeof(why2), "message type %u is not one the %s channel carries",
                     m.type, ch->allow->what);
            if (m.fd >= 0)
                close(m.fd);
            chan_break(ch, why2);
            break;
        }
        ch->on_msg(ch, &m, ch->arg);
    }
    ch->depth--;
    if (ch->doomed) {
        ch->depth = 0;
        ipc_chan_free(ch);
        return;
    }
    if (ch->closed)
        return;
    if (off > 0) {
        memmove(ch->in, ch->in + off, ch->inlen - off);
        ch->inlen -= off;
    }
    /* fds beyond what pending frames could claim mean a confused peer. */
    if (ch->inlen == 0 && ch->nfdq > 0)
        chan_break(ch, "fd received without a frame");
}

static void chan_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ipc_chan *ch = arg;
    union {
        struct cmsghdr hdr;
        char buf[CMSG_SPACE(sizeof(int) * IPC_CMSG_FDS)];
    } cmsg;
    struct msghdr mh;
    struct iovec iov;
    ssize_t n;

    if (ch->incap - ch->inlen < IPC_READ_CHUNK) {
        ch->incap = ch->inlen + IPC_READ_CHUNK;
        ch->in = xrealloc(ch->in, ch->incap);
    }
    iov.iov_base = ch->in + ch->inlen;
    iov.iov_len = ch->incap - ch->inlen;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cmsg.buf;
    mh.msg_controllen = sizeof(cmsg.buf);
    n = recvmsg(ch->fd, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        chan_fail(ch, strerror(errno));
        return;
    }
    if (chan_take_fds(ch, &mh) < 0) {
        chan_break(ch, "too many fds passed");
        return;
    }
    if (n == 0) {
        chan_fail(ch, ch->inlen > 0 ? "peer closed inside a frame" : NULL);
        return;
    }
    ch->inlen += (size_t)n;
    chan_dispatch(ch);
}

/* Write as much of the queue as the socket takes. -1 on a fatal error. */
static int chan_flush(struct ipc_chan *ch)
{
    while (ch->outq) {
        struct ipc_out *o = ch->outq;
        union {
            struct cmsghdr hdr;
            char buf[CMSG_SPACE(sizeof(int))];
        } cmsg;
        struct msghdr mh;
        struct iovec iov;
        ssize_t n;

        iov.iov_base = o->data + o->off;
        iov.iov_len = o->len - o->off;
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        if (o->fd >= 0) {
            struct cmsghdr *cm;
            memset(&cmsg, 0, sizeof(cmsg));
            mh.msg_control = cmsg.buf;
            mh.msg_controllen = sizeof(cmsg.buf);
            cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &o->fd, sizeof(int));
        }
        n = sendmsg(ch->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            return -1;
        }
        if (o->fd >= 0) {
            close(o->fd);
            o->fd = -1;
        }
        o->off += (size_t)n;
        ch->pending -= (size_t)n;
        if (o->off < o->len)
            return 0;
        ch->outq = o->next;
        if (ch->outq == NULL)
            ch->outtail = &ch->outq;
        free(o->data);
        free(o);
    }
    return 0;
}

static void chan_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ipc_chan *ch = arg;

    if (chan_flush(ch) < 0) {
        chan_fail(ch, strerror(errno));
        return;
    }
    if (ch->outq)
        event_add(ch->wev, NULL);
}

int ipc_send(struct ipc_chan *ch, uint16_t type, uint32_t id, int fd, const void *body, size_t len)
{
    struct ipc_out *o;

    if (ch == NULL || ch->closed || len > IPC_MAX_BODY)
        return -1;
    o = xmalloc(sizeof(*o));
    o->next = NULL;
    o->len = IPC_HDR_LEN + len;
    o->off = 0;
    o->data = xmalloc(o->len);
    o->fd = -1;
    if (fd >= 0) {
        o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (o->fd < 0) {
            log_err("ipc: cannot dup fd for %s: %s", ch->name, strerror(errno));
            free(o->data);
            free(o);
            return -1;
        }
    }
    ipc_encode_hdr(o->data, type, fd >= 0 ? IPC_F_FD : 0, id, len);
    if (len > 0)
        memcpy(o->data + IPC_HDR_LEN, body, len);
    *ch->outtail = o;
    ch->outtail = &o->next;
    ch->pending += o->len;
    if (ch->outq == o) {
        if (chan_flush(ch) < 0) {
            chan_fail(ch, strerror(errno));
            return 0; /* queued; the close is reported through on_close */
        }
    }
    if (ch->outq && !event_pending(ch->wev, EV_WRITE, NULL))
        event_add(ch->wev, NULL);
    return 0;
}

/* Blocking helpers (smtpctl, tests). */

static int wait_fd(int sock, short ev, int timeout_ms)
{
    struct pollfd p = {.fd = sock, .events = ev};
    int r;

    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    return r < 0 ? -1 : 0;
}

int ipc_send_blocking(int sock, uint16_t type, uint32_t id, int fd, const void *body, size_t len)
{
    uint8_t hdr[IPC_HDR_LEN];
    union {
        struct cmsghdr hdr;
        char buf[CMSG_SPACE(sizeof(int))];
    } cmsg;
    struct msghdr mh;
    struct iovec iov[2];
    ssize_t n;

    if (len > IPC_MAX_BODY) {
        errno = EMSGSIZE;
        return -1;
    }
    ipc_encode_hdr(hdr, type, fd >= 0 ? IPC_F_FD : 0, id, len);
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof(hdr);
    iov[1].iov_base = (void *)(uintptr_t)body;
    iov[1].iov_len = len;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = len > 0 ? 2 : 1;
    if (fd >= 0) {
        struct cmsghdr *cm;
        memset(&cmsg, 0, sizeof(cmsg));
        mh.msg_control = cmsg.buf;
        mh.msg_controllen = sizeof(cmsg.buf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(hdr)) {
        if (write_all(sock, hdr + n, sizeof(hdr) - (size_t)n) < 0)
            return -1;
        n = sizeof(hdr);
    }
    if (len == 0)
        return 0;
    return write_all(sock, (const uint8_t *)body + (n - (ssize_t)sizeof(hdr)),
                     len - (size_t)(n - (ssize_t)sizeof(hdr)));
}

/* Read exactly n bytes; collect at most one fd into *fd. */
static int read_exact(int sock, uint8_t *p, size_t n, int *fd, int timeout_ms)
{
    while (n > 0) {
        union {
            struct cmsghdr hdr;
            char buf[CMSG_SPACE(sizeof(int) * 4)];
        } cmsg;
        struct msghdr mh;
        struct iovec iov = {.iov_base = p, .iov_len = n};
        struct cmsghdr *cm;
        ssize_t r;

        if (wait_fd(sock, POLLIN, timeout_ms) < 0)
            return -1;
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cmsg.buf;
        mh.msg_controllen = sizeof(cmsg.buf);
        r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int f;
                memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (*fd < 0)
                    *fd = f;
                else
                    close(f);
            }
        }
        if (r == 0) {
            errno = ECONNRESET;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int ipc_recv_blocking(int sock, struct ipc_frame *out, uint8_t **body, int *fd, int timeout_ms)
{
    uint8_t hdr[IPC_HDR_LEN];
    struct ipc_frame fr;
    size_t used;
    const char *why;
    uint32_t blen;
    uint8_t *b;

    *fd = -1;
    *body = NULL;
    if (read_exact(sock, hdr, sizeof(hdr), fd, timeout_ms) < 0)
        goto fail;
    memcpy(&blen, hdr, 4);
    if (blen > IPC_MAX_BODY) {
        errno = EPROTO;
        goto fail;
    }
    b = xmalloc((size_t)blen + IPC_HDR_LEN);
    memcpy(b, hdr, IPC_HDR_LEN);
    if (read_exact(sock, b + IPC_HDR_LEN, blen, fd, timeout_ms) < 0) {
        free(b);
        goto fail;
    }
    if (ipc_decode(b, (size_t)blen + IPC_HDR_LEN, &fr, &used, &why) != IPC_DEC_OK ||
        ((fr.flags & IPC_F_FD) != 0) != (*fd >= 0)) {
        free(b);
        errno = EPROTO;
        goto fail;
    }
    memmove(b, b + IPC_HDR_LEN, blen);
    *out = fr;
    out->body = b;
    *body = b;
    return 0;
fail:
    if (*fd >= 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        errno = e;
    }
    return -1;
}

/* Body writer and reader. */

void ipc_w_init(struct ipc_w *w)
{
    w->cap = 256;
    w->len = 0;
    w->p = xmalloc(w->cap);
}

void ipc_w_free(struct ipc_w *w)
{
    free(w->p);
    w->p = NULL;
    w->len = w->cap = 0;
}

static void w_put(struct ipc_w *w, const void *p, size_t n)
{
    if (n > SIZE_MAX / 2 - w->len)
        log_panic("ipc: body size overflow");
    if (w->len + n > w->cap) {
        while (w->len + n > w->cap)
            w->cap *= 2;
        w->p = xrealloc(w->p, w->cap);
    }
    memcpy(w->p + w->len, p, n);
    w->len += n;
}

void ipc_w_u8(struct ipc_w *w, uint8_t v)
{
    w_put(w, &v, 1);
}
void ipc_w_u16(struct ipc_w *w, uint16_t v)
{
    w_put(w, &v, 2);
}
void ipc_w_u32(struct ipc_w *w, uint32_t v)
{
    w_put(w, &v, 4);
}
void ipc_w_u64(struct ipc_w *w, uint64_t v)
{
    w_put(w, &v, 8);
}
void ipc_w_i64(struct ipc_w *w, int64_t v)
{
    w_put(w, &v, 8);
}

void ipc_w_str(struct ipc_w *w, const char *s)
{
    uint32_t n;

    if (s == NULL)
        s = "";
    n = (uint32_t)strlen(s);
    ipc_w_u32(w, n);
    w_put(w, s, (size_t)n + 1);
}

void ipc_w_bytes(struct ipc_w *w, const void *p, size_t n)
{
    ipc_w_u32(w, (uint32_t)n);
    w_put(w, p, n);
}

void ipc_r_init(struct ipc_r *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->err = 0;
}

static int r_get(struct ipc_r *r, void *out, size_t n)
{
    if (r->err || r->len - r->off < n) {
        r->err = 1;
        memset(out, 0, n);
        return -1;
    }
    memcpy(out, r->p + r->off, n);
    r->off += n;
    return 0;
}

uint8_t ipc_r_u8(struct ipc_r *r)
{
    uint8_t v;
    r_get(r, &v, 1);
    return v;
}
uint16_t ipc_r_u16(struct ipc_r *r)
{
    uint16_t v;
    r_get(r, &v, 2);
    return v;
}
uint32_t ipc_r_u32(struct ipc_r *r)
{
    uint32_t v;
    r_get(r, &v, 4);
    return v;
}
uint64_t ipc_r_u64(struct ipc_r *r)
{
    uint64_t v;
    r_get(r, &v, 8);
    return v;
}
int64_t ipc_r_i64(struct ipc_r *r)
{
    int64_t v;
    r_get(r, &v, 8);
    return v;
}

const char *ipc_r_str(struct ipc_r *r)
{
    uint32_t n = ipc_r_u32(r);
    const char *s;

    if (r->err || r->len - r->off < (size_t)n + 1) {
        r->err = 1;
        return "";
    }
    s = (const char *)r->p + r->off;
    if (s[n] != '\0' || memchr(s, '\0', n) != NULL) {
        r->err = 1;
        return "";
    }
    r->off += (size_t)n + 1;
    return s;
}

const void *ipc_r_bytes(struct ipc_r *r, size_t *n)
{
    uint32_t k = ipc_r_u32(r);
    const void *p;

    if (r->err || r->len - r->off < k) {
        r->err = 1;
        *n = 0;
        return "";
    }
    p = r->p + r->off;
    r->off += k;
    *n = k;
    return p;
}

int ipc_r_ok(const struct ipc_r *r)
{
    return !r->err;
}

int ipc_r_done(const struct ipc_r *r)
{
    return !r->err && r->off == r->len;
}
