/*
 * smtp_client - the outbound SMTP client session (see smtp_client.h for
 * the contract, docs/smtp-client.md for the behaviour in words).
 *
 * One struct smtpc per connection. The session is a small state machine
 * driven by libevent: a phase (connecting, waiting for replies, TLS
 * handshake, sending the message, idle, quitting, dead) and a queue of
 * the replies we wait for, in order. With PIPELINING, MAIL, every RCPT
 * and DATA go out in one write and the queue holds all their replies;
 * without it the queue holds one at a time. When the server offers
 * CHUNKING (and the caller allows it), the message goes as one
 * "BDAT <size> LAST" chunk, not dot-stuffed, once the RCPT replies are
 * in (so that a message nobody took is never sent). Every reply is parsed by
 * smtp_reply.c and dispatched on the head of the queue.
 *
 * Callbacks to the caller are made last, from our own event handlers:
 * after a callback returns, the handler returns without touching the
 * session (the caller may have freed it: then in_cb/zombie finish the job).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "base/netaddr.h"
#include "mail/smtp_addr.h"
#include "delivery/smtp_client.h"
#include "base/util.h"

#define BODY_CHUNK 65536        /* pread size */
#define BODY_HIGH (128 * 1024)  /* fill the output buffer up to this */
#define BODY_LOW (32 * 1024)    /* refill when it drains below this */
#define INPUT_LIMIT (64 * 1024) /* unread input we tolerate when not reading */
#define QUIT_TIMEOUT 10         /* seconds at most for the QUIT reply */

enum phase {
    PH_CONNECTING, /* TCP connect in progress */
    PH_WAIT,       /* waiting for replies (queue not empty) */
    PH_HANDSHAKE,  /* TLS handshake after STARTTLS */
    PH_BODY,       /* sending the message */
    PH_READY,      /* idle between operations */
    PH_DEAD,       /* connection gone */
};

enum op { OP_NONE, OP_OPEN, OP_TXN, OP_CLOSE };

enum expect {
    EX_GREETING,
    EX_EHLO,
    EX_HELO,
    EX_STARTTLS,
    EX_AUTH,       /* final AUTH reply (235) */
    EX_AUTH_LOGIN, /* 334 to AUTH LOGIN: send the user name */
    EX_AUTH_USER,  /* 334 after the user name: send the password */
    EX_RSET,
    EX_MAIL,
    EX_RCPT,
    EX_DATA,
    EX_DOT,
    EX_DOT_EMPTY, /* "." sent after a 354 with no recipient accepted */
    EX_QUIT,
};

struct pending {
    enum expect what;
    size_t idx; /* recipient index for EX_RCPT */
};

/* Return values of the reply handlers. */
enum { GO_ON = 0, STOP = 1 };

struct smtpc {
    struct event_base *base;
    void (*gone_fn)(void *arg); /* smtpc_on_gone */
    void *gone_arg;
    /* copies of the options */
    struct sockaddr_storage ss;
    char *host, *helo, *user, *pass, *log_id;
    int connect_timeout, timeout, auth_plaintext, chunking;
    enum tls_mode tls_mode;
    SSL_CTX *ssl_ctx;
    /* DANE and the tls_evaluate check (copies) */
    struct smtpc_tlsa *tlsa; /* the usable records only */
    size_t ntlsa;
    char *dane_base;
    char **dane_names;
    size_t ndane_names;
    int evaluate;
    /* the first failure the verify callback saw */
    int vfail_set, vfail_err, vfail_depth;
    char vfail_cert[400]; /* "subject=..., issuer=..., spki-sha256=..." of the leaf */

    struct smtpc_info info;
    char addrstr[NETADDR_STRLEN];
    char *relay;
    char greeting[SMTPC_TEXT_MAX];
    char tls_version[32], tls_cipher[96];
    char dane_match[16], vfy_reason[128];

    int fd;
    struct bufferevent *bev;
    SSL *ssl;        /* owned by bev once the TLS bufferevent exists */
    int bev_owns_fd; /* TLS bufferevent closes fd and frees ssl */
    struct event *ev_conn, *timer, *kick;
    enum phase phase;
    enum op op;
    int alive;  /* connection up and in step with the server */
    int usable; /* open succeeded: transactions allowed */
    int pending_open_fail, pending_txn_done;
    int idle_lost; /* a usable session lost its connection while idle */

    struct pending *q;
    size_t qhead, qlen, qcap;
    struct smtp_reply reply;
    char line[SMTP_REPLY_LINE_MAX + 16];

    smtpc_open_cb *open_cb;
    smtpc_txn_cb *txn_cb;
    void *arg;
    smtpc_idle_cb *idle_cb;
    void *idle_arg;
    int in_cb, zombie;
    struct smtpc_res res; /* open result, or the session result of a transaction */

    /* the transaction */
    char *sender, *envid, *prefix;
    char **owned; /* recipient strings copied */
    size_t nowned;
    struct smtpc_rcpt *rcpts;
    struct smtpc_txn txn;
    struct smtpc_res *rres;
    unsigned char *rfinal; /* recipient result is final (refused, invalid) */
    unsigned char *raccepted;
    size_t accepted, rnext;
    int mail_ok, mail_replied, need_rset, reused, body_ended, prefix_sent, timed_out;
    int bdat;                /* this transaction sends the message with BDAT */
    struct smtpc_res endres; /* what ended an unsuccessful transaction */
    int have_endres;
    struct smtp_dotstuff ds;
    off_t sent;
    char *rbuf;
    struct buf enc;
    struct buf cork; /* commands held back to go out in one write */
    int corked;
};

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static int start_connect(struct smtpc *s);
static int after_ehlo(struct smtpc *s);

/* ---- names ---- */

const char *smtpc_class_name(enum smtpc_class cl)
{
    static const char *const names[] = {"none", "network",  "tls",  "smtp",
                                        "auth", "protocol", "local"};

    return (size_t)cl < nitems(names) ? names[cl] : "?";
}

const char *smtpc_step_name(enum smtpc_step st)
{
    static const char *const names[] = {"none", "connect", "greeting", "helo", "starttls", "auth",
                                        "rset", "mail",    "rcpt",     "data", "dot",      "quit"};

    return (size_t)st < nitems(names) ? names[st] : "?";
}

/* ---- commands (pure) ---- */

static void add_xtext(struct buf *out, const char *s, size_t len)
{
    char *tmp = xmalloc(len * 3 + 1);

    if (smtp_xtext_encode(s, len, tmp, len * 3 + 1) >= 0)
        buf_adds(out, tmp);
    free(tmp);
}

void smtpc_mail_cmd(struct buf *out, const struct smtpc_txn *txn, const struct smtp_caps *caps)
{
    buf_printf(out, "MAIL FROM:<%s>", txn->sender ? txn->sender : "");
    if (caps->flags & SMTP_CAP_SIZE)
        buf_printf(out, " SIZE=%lld", (long long)(txn->length + (off_t)txn->prefix_len));
    if ((txn->need & SMTPC_NEED_8BITMIME) && (caps->flags & SMTP_CAP_8BITMIME))
        buf_adds(out, " BODY=8BITMIME");
    if ((txn->need & SMTPC_NEED_SMTPUTF8) && (caps->flags & SMTP_CAP_SMTPUTF8))
        buf_adds(out, " SMTPUTF8");
    if (caps->flags & SMTP_CAP_DSN) {
        if (txn->ret != DSN_RET_NONE)
            buf_printf(out, " RET=%s", dsn_ret_name(txn->ret));
        if (txn->envid && txn->envid[0] && strlen(txn->envid) <= SMTP_ENVID_MAX) {
            buf_adds(out, " ENVID=");
            add_xtext(out, txn->envid, strlen(txn->envid));
        }
    }
    buf_adds(out, "\r\n");
}

void smtpc_rcpt_cmd(struct buf *out, const struct smtpc_rcpt *r, const struct smtp_caps *caps)
{
    const char *semi;

    buf_printf(out, "RCPT TO:<%s>", r->addr);
    if (caps->flags & SMTP_CAP_DSN) {
        if (r->notify) {
            char nb[DSN_NOTIFY_TEXT_MAX];
            buf_printf(out, " NOTIFY=%s", dsn_notify_format(r->notify, nb, sizeof(nb)));
        }
        if (r->orcpt && r->orcpt[0] && strlen(r->orcpt) <= SMTP_ORCPT_MAX) {
            semi = strchr(r->orcpt, ';');
            buf_adds(out, " ORCPT=");
            if (semi && semi > r->orcpt) {
                add_xtext(out, r->orcpt, (size_t)(semi - r->orcpt));
                buf_addc(out, ';');
                add_xtext(out, semi + 1, strlen(semi + 1));
            } else {
                buf_adds(out, "rfc822;");
                add_xtext(out, r->orcpt, strlen(r->orcpt));
            }
        }
    }
    buf_adds(out, "\r\n");
}

/* ---- results ---- */

static void res_clear(struct smtpc_res *r)
{
    memset(r, 0, sizeof(*r));
    r->status = SMTPC_OK;
    r->cls = SMTPC_CL_NONE;
    strlcpy_p(r->enh, "2.0.0", sizeof(r->enh));
}

/* A result from a local event (no reply). */
static void res_local(struct smtpc_res *r, enum smtpc_status st, enum smtpc_class cl,
                      enum smtpc_step step, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void res_local(struct smtpc_res *r, enum smtpc_status st, enum smtpc_class cl,
                      enum smtpc_step step, const char *enh, const char *fmt, ...)
{
    char tmp[SMTPC_TEXT_MAX];
    va_list ap;

    memset(r, 0, sizeof(*r));
    r->status = st;
    r->cls = cl;
    r->step = step;
    strlcpy_p(r->enh, enh, sizeof(r->enh));
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    smtp_sanitize(r->text, sizeof(r->text), tmp, strlen(tmp));
}

/* A result from the server's reply; cl is the class if it is an error. */
static void res_reply(struct smtpc_res *r, const struct smtp_reply *rep, enum smtpc_step step,
                      enum smtpc_class cl)
{
    int c = rep->code / 100;

    memset(r, 0, sizeof(*r));
    r->step = step;
    r->code = rep->code;
    if (c == 2 || c == 3) {
        r->status = SMTPC_OK;
        r->cls = SMTPC_CL_NONE;
    } else {
        r->status = c == 5 ? SMTPC_PERM : SMTPC_TEMP;
        r->cls = cl;
    }
    if (rep->enh[0])
        strlcpy_p(r->enh, rep->enh, sizeof(r->enh));
    else
        snprintf(r->enh, sizeof(r->enh), "%d.0.0", c == 3 ? 2 : c);
    smtp_reply_summary(rep, r->text, sizeof(r->text));
}

/* ---- logging ---- */

static const char *idp(const struct smtpc *s)
{
    return s->log_id ? s->log_id : "smtp";
}

static void log_line(struct smtpc *s, const char *dir, const char *line, size_t len)
{
    char clean[SMTP_REPLY_LINE_MAX + 16];

    if (!log_enabled(LOG_LV_DETAIL))
        return;
    smtp_sanitize(clean, sizeof(clean), line, len);
    log_detail("%s: %s %s %s", idp(s), s->relay, dir, clean);
}

/* ---- connection plumbing ---- */

static void timer_arm(struct smtpc *s, int seconds)
{
    struct timeval tv = {seconds, 0};

    evtimer_add(s->timer, &tv);
}

static void teardown(struct smtpc *s)
{
    if (s->ev_conn) {
        event_free(s->ev_conn);
        s->ev_conn = NULL;
    }
    if (s->bev) {
        bufferevent_free(s->bev);
        s->bev = NULL;
        if (s->bev_owns_fd) {
            s->fd = -1;
            s->ssl = NULL;
        }
    }
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    s->bev_owns_fd = 0;
    s->alive = 0;
    s->phase = PH_DEAD;
    s->qhead = s->qlen = 0;
    if (s->timer)
        evtimer_del(s->timer);
}

static void txn_clear(struct smtpc *s)
{
    size_t i;

    for (i = 0; i < s->nowned; i++)
        free(s->owned[i]);
    free(s->owned);
    s->owned = NULL;
    s->nowned = 0;
    free(s->rcpts);
    free(s->rres);
    free(s->rfinal);
    free(s->raccepted);
    free(s->sender);
    free(s->envid);
    free(s->prefix);
    s->prefix = NULL;
    s->rcpts = NULL;
    s->rres = NULL;
    s->rfinal = s->raccepted = NULL;
    s->sender = s->envid = NULL;
    memset(&s->txn, 0, sizeof(s->txn));
    s->txn.fd = -1;
}

static void destroy(struct smtpc *s)
{
    void (*fn)(void *) = s->gone_fn;

    s->gone_fn = NULL;
    teardown(s);
    if (fn)
        fn(s->gone_arg); /* the connection is closed now */
    if (s->timer)
        event_free(s->timer);
    if (s->kick)
        event_free(s->kick);
    txn_clear(s);
    smtp_reply_free(&s->reply);
    buf_free(&s->enc);
    buf_free(&s->cork);
    free(s->rbuf);
    free(s->q);
    free(s->host);
    free(s->helo);
    if (s->pass) {
        OPENSSL_cleanse(s->pass, strlen(s->pass));
        free(s->pass);
    }
    free(s->user);
    free(s->log_id);
    free(s->relay);
    for (size_t i = 0; i < s->ntlsa; i++)
        free((void *)(uintptr_t)s->tlsa[i].data);
    free(s->tlsa);
    free(s->dane_base);
    for (size_t i = 0; i < s->ndane_names; i++)
        free(s->dane_names[i]);
    free(s->dane_names);
    free(s);
}

static void after_cb(struct smtpc *s)
{
    s->in_cb--;
    if (s->in_cb == 0 && s->zombie)
        destroy(s);
}

static void call_open_cb(struct smtpc *s)
{
    s->op = OP_NONE;
    s->in_cb++;
    s->open_cb(s, &s->res, s->arg);
    after_cb(s);
}

static void kick_soon(struct smtpc *s)
{
    event_active(s->kick, EV_TIMEOUT, 0);
}

static void expect(struct smtpc *s, enum expect what, size_t idx)
{
    if (s->qlen == s->qcap) {
        s->qcap = s->qcap ? s->qcap * 2 : 8;
        s->q = xrealloc(s->q, s->qcap * sizeof(*s->q));
    }
    if (s->qhead > 0 && s->qhead + s->qlen == s->qcap) {
        memmove(s->q, s->q + s->qhead, s->qlen * sizeof(*s->q));
        s->qhead = 0;
    }
    s->q[s->qhead + s->qlen].what = what;
    s->q[s->qhead + s->qlen].idx = idx;
    s->qlen++;
    s->phase = PH_WAIT;
    timer_arm(s, s->timeout);
    if (s->bev && evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        kick_soon(s);
}

/*
 * Output. On a plain connection with nothing queued, bytes go straight to
 * the socket; going through the bufferevent would arm the write event and
 * disarm it once drained (two epoll_ctl calls per command). What the
 * socket does not take now is queued; an error is left for the
 * bufferevent to find on its own write.
 */
static void out_add(struct smtpc *s, const void *p, size_t n)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);

    if (s->corked) {
        buf_add(&s->cork, p, n);
        return;
    }
    if (s->ssl == NULL && evbuffer_get_length(out) == 0) {
        ssize_t w = send(s->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p = (const char *)p + w;
            n -= (size_t)w;
        }
    }
    if (n > 0)
        evbuffer_add(out, p, n);
}

/* Queue a command line (CR LF included in cmd); log shows `shown` if set. */
static void send_cmd(struct smtpc *s, const char *cmd, size_t len, const char *shown)
{
    size_t l = len;

    while (l > 0 && (cmd[l - 1] == '\r' || cmd[l - 1] == '\n'))
        l--;
    if (shown)
        log_line(s, ">", shown, strlen(shown));
    else
        log_line(s, ">", cmd, l);
    out_add(s, cmd, len);
}

static void send_fmt(struct smtpc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_fmt(struct smtpc *s, const char *fmt, ...)
{
    struct buf b;
    va_list ap;

    buf_init(&b);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    buf_adds(&b, "\r\n");
    send_cmd(s, b.data, b.len, NULL);
    buf_free(&b);
}

static enum smtpc_step step_of(enum expect e)
{
    switch (e) {
    case EX_GREETING:
        return SMTPC_STEP_GREETING;
    case EX_EHLO:
    case EX_HELO:
        return SMTPC_STEP_HELO;
    case EX_STARTTLS:
        return SMTPC_STEP_STARTTLS;
    case EX_AUTH:
    case EX_AUTH_LOGIN:
    case EX_AUTH_USER:
        return SMTPC_STEP_AUTH;
    case EX_RSET:
        return SMTPC_STEP_RSET;
    case EX_MAIL:
        return SMTPC_STEP_MAIL;
    case EX_RCPT:
        return SMTPC_STEP_RCPT;
    case EX_DATA:
        return SMTPC_STEP_DATA;
    case EX_DOT:
    case EX_DOT_EMPTY:
        return SMTPC_STEP_DOT;
    case EX_QUIT:
        return SMTPC_STEP_QUIT;
    }
    return SMTPC_STEP_NONE;
}

/* The step we are at, for failures that are not replies. */
static enum smtpc_step current_step(const struct smtpc *s)
{
    switch (s->phase) {
    case PH_CONNECTING:
        return SMTPC_STEP_CONNECT;
    case PH_HANDSHAKE:
        return SMTPC_STEP_STARTTLS;
    case PH_BODY:
        return SMTPC_STEP_DATA;
    case PH_WAIT:
        if (s->qlen > 0)
            return step_of(s->q[s->qhead].what);
        break;
    default:
        break;
    }
    return SMTPC_STEP_NONE;
}

/* ---- the end of operations ---- */

static void finish_txn(struct smtpc *s)
{
    struct smtpc_txn_res tr;
    size_t i;

    if (s->accepted > 0) {
        /* s->res holds the reply to the final dot */
    } else if (s->have_endres) {
        s->res = s->endres;
    } else {
        /* every recipient refused: report the first temporary one, if any */
        s->res = s->rres[0];
        for (i = 0; i < s->txn.nrcpts; i++)
            if (s->rres[i].status == SMTPC_TEMP) {
                s->res = s->rres[i];
                break;
            }
    }
    if (s->phase != PH_DEAD) {
        s->phase = PH_READY;
        evtimer_del(s->timer);
        if (s->bev) {
            bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
            /* Replies nobody asked for: we are out of step with the server. */
            if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
                s->usable = 0;
        }
    }
    s->op = OP_NONE;
    memset(&tr, 0, sizeof(tr));
    tr.session = s->res;
    tr.nrcpts = s->txn.nrcpts;
    tr.rcpt = s->rres;
    tr.accepted = s->accepted;
    tr.reusable = smtpc_reusable(s);
    s->in_cb++;
    s->txn_cb(s, &tr, s->arg);
    after_cb(s);
}

/*
 * The session cannot go on (network, timeout, protocol, TLS, 421, local
 * read error): close the connection and report res to whoever waits.
 */
static int fail_session(struct smtpc *s, const struct smtpc_res *res)
{
    int was_usable = s->usable;
    size_t i;

    teardown(s);
    s->usable = 0;
    switch (s->op) {
    case OP_OPEN:
        s->res = *res;
        call_open_cb(s);
        break;
    case OP_TXN:
        s->res = *res;
        if (s->reused && !s->mail_replied && !s->timed_out &&
            (res->cls == SMTPC_CL_NETWORK || res->code == 421))
            s->res.lost_before_txn = 1;
        for (i = 0; i < s->txn.nrcpts; i++)
            if (!s->rfinal[i])
                s->rres[i] = s->res;
        s->accepted = 0;
        s->endres = s->res;
        s->have_endres = 1;
        finish_txn(s);
        break;
    case OP_CLOSE:
        destroy(s);
        break;
    case OP_NONE:
        if (was_usable) {
            /* a later smtpc_send reports this as lost before the transaction */
            s->idle_lost = 1;
            s->res = *res;
        }
        s->in_cb++;
        if (s->idle_cb)
            s->idle_cb(s, s->idle_arg);
        after_cb(s);
        break;
    }
    return STOP;
}

static int fail_local(struct smtpc *s, enum smtpc_status st, enum smtpc_class cl,
                      enum smtpc_step step, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int fail_local(struct smtpc *s, enum smtpc_status st, enum smtpc_class cl,
                      enum smtpc_step step, const char *enh, const char *fmt, ...)
{
    struct smtpc_res r;
    char tmp[SMTPC_TEXT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    res_local(&r, st, cl, step, enh, "%s", tmp);
    return fail_session(s, &r);
}

/* The open failed at a reply (connection still fine): keep it for QUIT. */
static int open_refused(struct smtpc *s, const struct smtpc_res *res)
{
    s->res = *res;
    s->usable = 0;
    s->phase = PH_READY;
    evtimer_del(s->timer);
    call_open_cb(s);
    return STOP;
}

static int open_refused_local(struct smtpc *s, enum smtpc_status st, enum smtpc_class cl,
                              enum smtpc_step step, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int open_refused_local(struct smtpc *s, enum smtpc_status st, enum smtpc_class cl,
                              enum smtpc_step step, const char *enh, const char *fmt, ...)
{
    struct smtpc_res r;
    char tmp[SMTPC_TEXT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    res_local(&r, st, cl, step, enh, "%s", tmp);
    return open_refused(s, &r);
}

static int session_ready(struct smtpc *s)
{
    char caps[256];

    s->usable = 1;
    s->phase = PH_READY;
    evtimer_del(s->timer);
    res_clear(&s->res);
    if (log_enabled(LOG_LV_DETAIL))
        log_detail("%s: %s ready: %s, tls=%s%s, auth=%s, %s", idp(s), s->relay,
                   s->info.esmtp ? "ESMTP" : "SMTP", s->info.tls ? s->tls_version : "no",
                   s->info.tls_dane       ? " dane"
                   : s->info.tls_verified ? " verified"
                                          : "",
                   s->info.auth ? "yes" : "no",
                   smtp_caps_format(&s->info.caps, caps, sizeof(caps)));
    call_open_cb(s);
    return STOP;
}

/* ---- TLS ---- */

static int is_ip_literal(const char *h)
{
    unsigned char tmp[16];

    return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

int smtpc_tlsa_usable(unsigned usage, unsigned selector, unsigned mtype, size_t len)
{
    static const size_t digest_len[] = {0, 32, 64}; /* matching types 0 1 2 */

    if ((usage != 2 && usage != 3) || selector > 1 || mtype > 2 || len == 0)
        return 0;
    return mtype == 0 || len == digest_len[mtype];
}

const char *smtpc_vfy_name(enum smtpc_vfy v)
{
    static const char *const names[] = {
        "none", "ok", "host-mismatch", "expired", "not-trusted", "dane-no-match", "other"};

    return (size_t)v < nitems(names) ? names[v] : "?";
}

static enum smtpc_vfy vfy_of(long err)
{
    switch (err) {
    case X509_V_OK:
        return SMTPC_VFY_OK;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return SMTPC_VFY_HOST_MISMATCH;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return SMTPC_VFY_EXPIRED;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return SMTPC_VFY_NOT_TRUSTED;
    case X509_V_ERR_DANE_NO_MATCH:
        return SMTPC_VFY_DANE_NO_MATCH;
    default:
        return SMTPC_VFY_OTHER;
    }
}

static void set_vfy(struct smtpc *s, long err)
{
    s->info.tls_vfy = vfy_of(err);
    if (err == X509_V_OK)
        s->vfy_reason[0] = '\0';
    else
        strlcpy_p(s->vfy_reason, X509_verify_cert_error_string(err), sizeof(s->vfy_reason));
}

static void hex(char *out, size_t outsz, const unsigned char *p, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 3 <= outsz; i++, k += 2)
        snprintf(out + k, 3, "%02x", p[i]);
    if (outsz > 0)
        out[k < outsz ? k : outsz - 1] = '\0';
}

/* "subject=/CN=x, issuer=/CN=y, spki-sha256=HEX" of a certificate. */
static void describe_cert(X509 *x, char *out, size_t outsz)
{
    char subj[128], iss[128], md_hex[2 * EVP_MAX_MD_SIZE + 1] = "?";
    unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
    unsigned int mdlen = 0;
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);

    if (len > 0 && EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1)
        hex(md_hex, sizeof(md_hex), md, mdlen);
    OPENSSL_free(der);
    X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
    X509_NAME_oneline(X509_get_issuer_name(x), iss, sizeof(iss));
    snprintf(out, outsz, "subject=%s, issuer=%s, spki-sha256=%s", subj, iss, md_hex);
}

/* Remembers the first failure of the chain check (verify, DANE,
 * tls_evaluate) and the server's certificate, for the log. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct smtpc *s = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);

    if (ok || s == NULL || s->vfail_set)
        return ok;
    s->vfail_set = 1;
    s->vfail_err = X509_STORE_CTX_get_error(xs);
    s->vfail_depth = X509_STORE_CTX_get_error_depth(xs);
    if (leaf)
        describe_cert(leaf, s->vfail_cert, sizeof(s->vfail_cert));
    else
        strlcpy_p(s->vfail_cert, "no certificate", sizeof(s->vfail_cert));
    return ok;
}

/* "3 1 1 0a1b2c3d4e5f..., 2 0 1 ..." : the records we tried. */
static void tlsa_list(const struct smtpc *s, char *out, size_t outsz)
{
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 0; i < s->ntlsa && n + 1 < outsz; i++) {
        const struct smtpc_tlsa *t = &s->tlsa[i];
        char h[13];
        hex(h, sizeof(h), t->data, t->len < 6 ? t->len : 6);
        snprintf(out + n, outsz - n, "%s%u %u %u %s%s", i ? ", " : "", t->usage, t->selector,
                 t->mtype, h, t->len > 6 ? "..." : "");
        n = strlen(out);
    }
}

static void tls_error_text(struct smtpc *s, char *out, size_t outsz)
{
    unsigned long e, first = 0;
    long vr = s->vfail_set ? s->vfail_err : X509_V_OK;

    while ((e = bufferevent_get_openssl_error(s->bev)) != 0)
        if (first == 0)
            first = e;
    if (s->ssl && vr == X509_V_OK && (s->tls_mode == TLS_MODE_VERIFY || s->ntlsa > 0))
        vr = SSL_get_verify_result(s->ssl);
    if (vr != X509_V_OK && s->ntlsa > 0) {
        char tried[256];
        tlsa_list(s, tried, sizeof(tried));
        set_vfy(s, vr);
        snprintf(out, outsz,
                 "DANE: the certificate failed the TLSA check for %s (%s at depth %d); "
                 "records tried: %s; certificate presented: %s",
                 s->dane_base, X509_verify_cert_error_string(vr), s->vfail_depth, tried,
                 s->vfail_cert[0] ? s->vfail_cert : "none");
        return;
    }
    if (vr != X509_V_OK) {
        set_vfy(s, vr);
        snprintf(out, outsz, "TLS certificate verification failed: %s (depth %d; %s)",
                 X509_verify_cert_error_string(vr), s->vfail_depth,
                 s->vfail_cert[0] ? s->vfail_cert : "no certificate");
        return;
    }
    if (first) {
        char ebuf[256];

        ERR_error_string_n(first, ebuf, sizeof(ebuf));
        snprintf(out, outsz, "TLS handshake failed: %s", ebuf);
    } else {
        snprintf(out, outsz, "TLS handshake failed: connection lost");
    }
}

/* DANE on ssl: the base domain, the other names, the records. -1 when
 * OpenSSL refuses (no DANE on the context). */
static int dane_setup(struct smtpc *s)
{
    int added = 0;

    if (SSL_dane_enable(s->ssl, s->dane_base) <= 0)
        return -1;
    SSL_dane_set_flags(s->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    SSL_set_hostflags(s->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    for (size_t i = 0; i < s->ndane_names; i++)
        if (SSL_add1_host(s->ssl, s->dane_names[i]) != 1)
            return -1;
    for (size_t i = 0; i < s->ntlsa; i++) {
        struct smtpc_tlsa *t = &s->tlsa[i];
        if (SSL_dane_tlsa_add(s->ssl, t->usage, t->selector, t->mtype, t->data, t->len) > 0)
            added++;
    }
    return added > 0 ? 0 : -1;
}

/* Certificate checks of the new SSL, per mode. -1 on failure. */
static int tls_checks(struct smtpc *s, const char *name)
{
    SSL_set_app_data(s->ssl, s);
    if (s->ntlsa > 0) {
        SSL_set_verify(s->ssl, SSL_VERIFY_PEER, verify_cb);
        return dane_setup(s);
    }
    if (s->tls_mode != TLS_MODE_VERIFY && !s->evaluate) {
        SSL_set_verify(s->ssl, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    /* verify enforces; tls_evaluate only looks (VERIFY_NONE goes on) */
    SSL_set_verify(s->ssl, s->tls_mode == TLS_MODE_VERIFY ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                   verify_cb);
    SSL_set_hostflags(s->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip_literal(name))
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), name);
    else
        SSL_set1_host(s->ssl, name);
    return 0;
}

static int start_tls(struct smtpc *s)
{
    char name[256], sni[256];
    size_t n;

    if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        return fail_local(s, SMTPC_TEMP, SMTPC_CL_PROTOCOL, SMTPC_STEP_STARTTLS, "4.5.0",
                          "server sent data after its STARTTLS reply");
    strlcpy_p(name, s->host, sizeof(name));
    n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        name[n - 1] = '\0';
    s->ssl = SSL_new(s->ssl_ctx);
    if (s->ssl == NULL)
        return fail_local(s, SMTPC_TEMP, SMTPC_CL_TLS, SMTPC_STEP_STARTTLS, "4.7.5",
                          "SSL_new failed");
    /* RFC 7672 3.2.1: with DANE the SNI is the TLSA base domain */
    strlcpy_p(sni, s->dane_base ? s->dane_base : name, sizeof(sni));
    if (!is_ip_literal(sni) && sni[0])
        SSL_set_tlsext_host_name(s->ssl, sni);
    s->vfail_set = 0;
    s->vfail_cert[0] = '\0';
    if (tls_checks(s, name) < 0)
        return fail_local(s, SMTPC_TEMP, SMTPC_CL_TLS, SMTPC_STEP_STARTTLS, "4.7.5",
                          "cannot set up DANE on the TLS session (no usable TLSA record, or "
                          "no DANE on the TLS context)");
    /* The plain bufferevent goes; the fd is wrapped again, now in TLS. */
    bufferevent_free(s->bev);
    s->bev = bufferevent_openssl_socket_new(s->base, s->fd, s->ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (s->bev == NULL) {
        s->ssl = NULL; /* whether libevent freed it is unclear: leak, never double free */
        return fail_local(s, SMTPC_TEMP, SMTPC_CL_TLS, SMTPC_STEP_STARTTLS, "4.7.5",
                          "cannot set up TLS on the connection");
    }
    s->bev_owns_fd = 1;
    bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    s->phase = PH_HANDSHAKE;
    timer_arm(s, s->timeout);
    return STOP;
}

/* After a DANE handshake: which record matched, at which depth. 0 when
 * the chain was DANE-authenticated. */
static int dane_done(struct smtpc *s)
{
    uint8_t u, sel, mt;
    int depth = SSL_get0_dane_authority(s->ssl, NULL, NULL);

    if (depth < 0 || SSL_get0_dane_tlsa(s->ssl, &u, &sel, &mt, NULL, NULL) < 0)
        return -1;
    s->info.tls_dane = 1;
    s->info.tls_dane_depth = depth;
    snprintf(s->dane_match, sizeof(s->dane_match), "%u %u %u", u, sel, mt);
    set_vfy(s, X509_V_OK);
    return 0;
}

static int tls_done(struct smtpc *s)
{
    const char *v = SSL_get_version(s->ssl), *c = SSL_get_cipher_name(s->ssl);
    char what[200] = "";

    strlcpy_p(s->tls_version, v ? v : "", sizeof(s->tls_version));
    strlcpy_p(s->tls_cipher, c ? c : "", sizeof(s->tls_cipher));
    s->info.tls = 1;
    if (s->ntlsa > 0 && dane_done(s) < 0)
        return fail_local(s, SMTPC_TEMP, SMTPC_CL_TLS, SMTPC_STEP_STARTTLS, "4.7.5",
                          "DANE: handshake done but no TLSA record authenticated it");
    if (s->ntlsa == 0 && (s->tls_mode == TLS_MODE_VERIFY || s->evaluate))
        set_vfy(s, SSL_get_verify_result(s->ssl));
    s->info.tls_verified = s->ntlsa == 0 && s->info.tls_vfy == SMTPC_VFY_OK;
    if (s->info.tls_dane)
        snprintf(what, sizeof(what), ", DANE: TLSA %s matched at depth %d", s->dane_match,
                 s->info.tls_dane_depth);
    else if (s->info.tls_verified)
        snprintf(what, sizeof(what), ", certificate verified");
    else if (s->evaluate)
        snprintf(what, sizeof(what), ", certificate not valid (%s)", s->vfy_reason);
    if (log_enabled(LOG_LV_DETAIL))
        log_detail("%s: %s TLS established: %s %s%s", idp(s), s->relay, s->tls_version,
                   s->tls_cipher, what);
    /* RFC 3207: forget what was learned before TLS, ask again. */
    memset(&s->info.caps, 0, sizeof(s->info.caps));
    send_fmt(s, "EHLO %s", s->helo);
    expect(s, EX_EHLO, 0);
    return STOP;
}

static int tls_failed(struct smtpc *s)
{
    char why[SMTPC_TEXT_MAX];

    tls_error_text(s, why, sizeof(why));
    if (s->tls_mode == TLS_MODE_MAY && s->op == OP_OPEN) {
        /* Opportunistic TLS must not make mail undeliverable: plaintext. */
        log_info("%s: %s %s; tls = may: retrying without TLS", idp(s), s->relay, why);
        teardown(s);
        s->info.tls_fallback = 1;
        s->info.esmtp = 0;
        memset(&s->info.caps, 0, sizeof(s->info.caps));
        if (start_connect(s) < 0)
            return fail_local(s, SMTPC_TEMP, SMTPC_CL_NETWORK, SMTPC_STEP_CONNECT, "4.4.1",
                              "reconnect to %s failed: %s", s->relay, strerror(errno));
        return STOP;
    }
    if (s->ntlsa > 0)
        log_info("%s: %s %s", idp(s), s->relay, why);
    return fail_local(s, SMTPC_TEMP, SMTPC_CL_TLS, SMTPC_STEP_STARTTLS, "4.7.5", "%s", why);
}

/* ---- AUTH ---- */

static char *b64(const void *p, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static int start_auth(struct smtpc *s)
{
    struct buf b;
    char *enc;
    size_t ul = strlen(s->user), pl = strlen(s->pass ? s->pass : "");

    if (!s->info.tls && !s->auth_plaintext)
        return open_refused_local(s, SMTPC_TEMP, SMTPC_CL_AUTH, SMTPC_STEP_AUTH, "4.7.0",
                                  "AUTH refused: TLS is not in use and plaintext AUTH is "
                                  "not allowed for this destination");
    if (!(s->info.caps.auth & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN)))
        return open_refused_local(s, SMTPC_TEMP, SMTPC_CL_AUTH, SMTPC_STEP_AUTH, "4.7.0",
                                  "credentials configured but the server offers no AUTH "
                                  "mechanism we support (PLAIN, LOGIN)");
    buf_init(&b);
    if (s->info.caps.auth & SMTP_AUTH_PLAIN) {
        buf_addc(&b, '\0');
        buf_add(&b, s->user, ul);
        buf_addc(&b, '\0');
        buf_add(&b, s->pass ? s->pass : "", pl);
        enc = b64(b.data, b.len);
        OPENSSL_cleanse(b.data, b.len);
        buf_reset(&b);
        buf_printf(&b, "AUTH PLAIN %s\r\n", enc);
        OPENSSL_cleanse(enc, strlen(enc));
        free(enc);
        send_cmd(s, b.data, b.len, "AUTH PLAIN ****");
        OPENSSL_cleanse(b.data, b.len);
        expect(s, EX_AUTH, 0);
    } else {
        send_fmt(s, "AUTH LOGIN");
        expect(s, EX_AUTH_LOGIN, 0);
    }
    buf_free(&b);
    return STOP;
}

static void send_secret(struct smtpc *s, const char *secret)
{
    char *enc = b64(secret, strlen(secret));
    struct buf b;

    buf_init(&b);
    buf_printf(&b, "%s\r\n", enc);
    send_cmd(s, b.data, b.len, "****");
    OPENSSL_cleanse(b.data, b.len);
    OPENSSL_cleanse(enc, strlen(enc));
    buf_free(&b);
    free(enc);
}

static int auth_reply(struct smtpc *s, enum expect e)
{
    struct smtpc_res r;

    if (e == EX_AUTH && s->reply.code == 235) {
        s->info.auth = 1;
        return session_ready(s);
    }
    if (e == EX_AUTH_LOGIN && s->reply.code == 334) {
        send_secret(s, s->user);
        expect(s, EX_AUTH_USER, 0);
        return STOP;
    }
    if (e == EX_AUTH_USER && s->reply.code == 334) {
        send_secret(s, s->pass ? s->pass : "");
        expect(s, EX_AUTH, 0);
        return STOP;
    }
    /* Refused credentials are a configuration problem: never permanent. */
    res_reply(&r, &s->reply, SMTPC_STEP_AUTH, SMTPC_CL_AUTH);
    r.status = SMTPC_TEMP;
    r.cls = SMTPC_CL_AUTH;
    if (r.enh[0] == '5' || r.enh[0] == '2' || r.enh[0] == '3')
        r.enh[0] = '4';
    if (s->reply.code / 100 == 3) /* a 334 where we expected the end */
        return fail_local(s, SMTPC_TEMP, SMTPC_CL_PROTOCOL, SMTPC_STEP_AUTH, "4.5.0",
                          "unexpected reply to AUTH: %s", r.text);
    return open_refused(s, &r);
}

/* ---- the opening dialogue ---- */

static int greeting_reply(struct smtpc *s)
{
    struct smtpc_res r;

    smtp_reply_summary(&s->reply, s->greeting, sizeof(s->greeting));
    if (s->reply.code != 220) {
        res_reply(&r, &s->reply, SMTPC_STEP_GREETING, SMTPC_CL_SMTP);
        if (r.status == SMTPC_OK)
            return fail_local(s, SMTPC_TEMP, SMTPC_CL_PROTOCOL, SMTPC_STEP_GREETING, "4.5.0",
                              "unexpected greeting: %s", s->greeting);
        return open_refused(s, &r);
    }
    send_fmt(s, "EHLO %s", s->helo);
    expect(s, EX_EHLO, 0);
    return STOP;
}

static int ehlo_reply(struct smtpc *s, enum expect e)
{
    struct smtpc_res r;
    int c = s->reply.code / 100;

    if (c == 2) {
        s->info.esmtp = e == EX_EHLO;
        if (e == EX_EHLO)
            smtp_caps_parse(&s->info.caps, &s->reply);
        else
            memset(&s->info.caps, 0, sizeof(s->info.caps));
        return after_ehlo(s);
    }
    if (e == EX_EHLO && c == 5 && !s->info.tls) {
        send_fmt(s, "HELO %s", s->helo);
        expect(s, EX_HELO, 0);
        return STOP;
    }
    res_reply(&r, &s->reply, SMTPC_STEP_HELO, SMTPC_CL_SMTP);
    if (r.status == SMTPC_OK) {
        r.status = SMTPC_TEMP;
        r.cls = SMTPC_CL_PROTOCOL;
        strlcpy_p(r.enh, "4.5.0", sizeof(r.enh));
    }
    return open_refused(s, &r);
}

static int after_ehlo(struct smtpc *s)
{
    int offered = (s->info.caps.flags & SMTP_CAP_STARTTLS) != 0;
    int required = s->tls_mode != TLS_MODE_NONE && s->tls_mode != TLS_MODE_MAY;

    if (!s->info.tls && !s->info.tls_fallback) {
        if (required && !offered)
            return open_refused_local(s, SMTPC_TEMP, SMTPC_CL_TLS, SMTPC_STEP_STARTTLS, "4.7.4",
                                      "TLS required but not offered by the server");
        if (required && s->ssl_ctx == NULL)
            return open_refused_local(s, SMTPC_TEMP, SMTPC_CL_TLS, SMTPC_STEP_STARTTLS, "4.7.5",
                                      "TLS required but no TLS context was set up");
        if (offered && s->tls_mode != TLS_MODE_NONE && s->ssl_ctx) {
            send_fmt(s, "STARTTLS");
            expect(s, EX_STARTTLS, 0);
            return STOP;
        }
    }
    if (s->user)
        return start_auth(s);
    return session_ready(s);
}

static int starttls_reply(struct smtpc *s)
{
    struct smtpc_res r;

    if (s->reply.code == 220)
        return start_tls(s);
    if (s->tls_mode == TLS_MODE_MAY && s->reply.code / 100 != 2) {
        log_info("%s: %s STARTTLS refused (%d); tls = may: going on without TLS", idp(s), s->relay,
                 s->reply.code);
        s->info.tls_fallback = 1;
        return after_ehlo(s);
    }
    res_reply(&r, &s->reply, SMTPC_STEP_STARTTLS, SMTPC_CL_TLS);
    if (r.status == SMTPC_OK)
        return fail_local(s, SMTPC_TEMP, SMTPC_CL_PROTOCOL, SMTPC_STEP_STARTTLS, "4.5.0",
                          "unexpected reply to STARTTLS: %s", r.text);
    r.status = SMTPC_TEMP;
    r.cls = SMTPC_CL_TLS;
    return open_refused(s, &r);
}

/* ---- the transaction ---- */

static void send_mail(struct smtpc *s)
{
    struct buf b;

    buf_init(&b);
    smtpc_mail_cmd(&b, &s->txn, &s->info.caps);
    send_cmd(s, b.data, b.len, NULL);
    buf_free(&b);
    expect(s, EX_MAIL, 0);
}

static void send_rcpt(struct smtpc *s, size_t i)
{
    struct buf b;

    buf_init(&b);
    smtpc_rcpt_cmd(&b, &s->rcpts[i], &s->info.caps);
    send_cmd(s, b.data, b.len, NULL);
    buf_free(&b);
    expect(s, EX_RCPT, i);
}

static int pipelining(const struct smtpc *s)
{
    return (s->info.caps.flags & SMTP_CAP_PIPELINING) != 0;
}

static int send_envelope(struct smtpc *s)
{
    size_t i;

    s->bdat = s->chunking && (s->info.caps.flags & SMTP_CAP_CHUNKING);
    if (!pipelining(s)) {
        send_mail(s);
        return STOP;
    }
    /* RFC 2920: the whole group in one write. */
    s->corked = 1;
    send_mail(s);
    for (i = 0; i < s->txn.nrcpts; i++)
        if (!s->rfinal[i])
            send_rcpt(s, i);
    if (!s->bdat)
        send_fmt(s, "DATA");
    s->corked = 0;
    out_add(s, s->cork.data, s->cork.len);
    buf_reset(&s->cork);
    if (!s->bdat)
        expect(s, EX_DATA, 0);
    return STOP;
}

static int start_body(struct smtpc *s);

/* The message as one chunk (RFC 3030): its size, LAST, then the octets. */
static int start_bdat(struct smtpc *s)
{
    send_fmt(s, "BDAT %lld LAST", (long long)(s->txn.length + (off_t)s->txn.prefix_len));
    return start_body(s);
}

/* BDAT: every envelope reply is in; send the message if someone took it. */
static int envelope_done(struct smtpc *s)
{
    if (s->mail_ok && s->accepted > 0)
        return start_bdat(s);
    s->need_rset = 1;
    finish_txn(s);
    return STOP;
}

/* Pipelined: after a MAIL or RCPT reply, wait for the next, or (BDAT,
 * when it was the last) go on. */
static int envelope_next(struct smtpc *s)
{
    return s->bdat && s->qlen == 0 ? envelope_done(s) : GO_ON;
}

/* Non-pipelined: the next RCPT, or DATA, or the end. */
static int next_rcpt(struct smtpc *s)
{
    while (s->rnext < s->txn.nrcpts && s->rfinal[s->rnext])
        s->rnext++;
    if (s->rnext < s->txn.nrcpts) {
        send_rcpt(s, s->rnext++);
        return STOP;
    }
    if (s->accepted > 0) {
        if (s->bdat)
            return start_bdat(s);
        send_fmt(s, "DATA");
        expect(s, EX_DATA, 0);
        return STOP;
    }
    s->need_rset = 1;
    finish_txn(s);
    return STOP;
}

static int fill_body(struct smtpc *s);

static int start_body(struct smtpc *s)
{
    s->phase = PH_BODY;
    smtp_dotstuff_init(&s->ds);
    s->sent = 0;
    s->body_ended = 0;
    s->prefix_sent = 0;
    if (s->rbuf == NULL)
        s->rbuf = xmalloc(BODY_CHUNK);
    if (log_enabled(LOG_LV_DETAIL))
        log_detail("%s: %s > (message, %lld bytes)", idp(s), s->relay,
                   (long long)(s->txn.length + (off_t)s->txn.prefix_len));
    bufferevent_setwatermark(s->bev, EV_WRITE, BODY_LOW, 0);
    return fill_body(s);
}

static int fill_body(struct smtpc *s)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    ssize_t n;
    size_t want;

    timer_arm(s, s->timeout);
    for (;;) {
        /* Up to BODY_HIGH bytes, dot-stuffed into s->enc, go out in one write. */
        buf_reset(&s->enc);
        if (!s->prefix_sent && s->txn.prefix_len > 0) {
            /* the fields added at delivery come first (small: a few KiB) */
            if (s->bdat)
                buf_add(&s->enc, s->txn.prefix, s->txn.prefix_len);
            else
                smtp_dotstuff_add(&s->ds, s->txn.prefix, s->txn.prefix_len, &s->enc);
        }
        s->prefix_sent = 1;
        while (evbuffer_get_length(out) + s->enc.len < BODY_HIGH && s->sent < s->txn.length) {
            want = BODY_CHUNK;
            if ((off_t)want > s->txn.length - s->sent)
                want = (size_t)(s->txn.length - s->sent);
            n = pread(s->txn.fd, s->rbuf, want, s->txn.offset + s->sent);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return fail_local(s, SMTPC_TEMP, SMTPC_CL_LOCAL, SMTPC_STEP_DATA, "4.3.0",
                                  "cannot read the message file at offset %lld: %s",
                                  (long long)(s->txn.offset + s->sent),
                                  n < 0 ? strerror(errno) : "file shorter than expected");
            if (s->bdat)
                buf_add(&s->enc, s->rbuf, (size_t)n); /* the octets as they are */
            else
                smtp_dotstuff_add(&s->ds, s->rbuf, (size_t)n, &s->enc);
            s->sent += n;
        }
        if (s->sent >= s->txn.length && !s->body_ended) {
            if (!s->bdat)
                smtp_dotstuff_end(&s->ds, &s->enc);
            s->body_ended = 1;
        }
        out_add(s, s->enc.data, s->enc.len);
        if (s->body_ended) {
            if (!s->bdat)
                log_line(s, ">", ".", 1);
            bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
            expect(s, EX_DOT, 0);
            return STOP;
        }
        if (evbuffer_get_length(out) > 0)
            return STOP; /* on_write calls again once it drains below BODY_LOW */
    }
}

static int rset_reply(struct smtpc *s)
{
    struct smtpc_res r;

    if (s->reply.code / 100 == 2) {
        s->need_rset = 0;
        return send_envelope(s);
    }
    /* A refused RSET says nothing about the message: temporary. */
    res_reply(&r, &s->reply, SMTPC_STEP_RSET, SMTPC_CL_SMTP);
    r.status = SMTPC_TEMP;
    r.cls = s->reply.code / 100 == 3 ? SMTPC_CL_PROTOCOL : SMTPC_CL_SMTP;
    if (r.enh[0] != '4')
        strlcpy_p(r.enh, "4.5.0", sizeof(r.enh));
    return fail_session(s, &r);
}

static int mail_reply(struct smtpc *s)
{
    size_t i;

    s->mail_replied = 1;
    if (s->reply.code / 100 == 2) {
        s->mail_ok = 1;
        return pipelining(s) ? envelope_next(s) : next_rcpt(s);
    }
    res_reply(&s->endres, &s->reply, SMTPC_STEP_MAIL, SMTPC_CL_SMTP);
    if (s->endres.status == SMTPC_OK) {
        res_local(&s->endres, SMTPC_TEMP, SMTPC_CL_PROTOCOL, SMTPC_STEP_MAIL, "4.5.0",
                  "unexpected reply to MAIL: %d", s->reply.code);
    }
    s->have_endres = 1;
    for (i = 0; i < s->txn.nrcpts; i++)
        if (!s->rfinal[i]) {
            s->rres[i] = s->endres;
            s->rfinal[i] = 1;
        }
    s->need_rset = 1;
    if (pipelining(s))
        return envelope_next(s); /* RCPT (and DATA) replies still to come */
    finish_txn(s);
    return STOP;
}

static int rcpt_reply(struct smtpc *s, size_t i)
{
    struct smtpc_res *r = &s->rres[i];

    if (s->mail_ok) {
        res_reply(r, &s->reply, SMTPC_STEP_RCPT, SMTPC_CL_SMTP);
        if (s->reply.code / 100 == 2) {
            s->raccepted[i] = 1;
            s->accepted++;
        } else {
            if (r->status == SMTPC_OK)
                res_local(r, SMTPC_TEMP, SMTPC_CL_PROTOCOL, SMTPC_STEP_RCPT, "4.5.0",
                          "unexpected reply to RCPT: %d", s->reply.code);
            s->rfinal[i] = 1;
        }
    }
    return pipelining(s) ? envelope_next(s) : next_rcpt(s);
}

static int data_reply(struct smtpc *s)
{
    size_t i;

    if (s->reply.code == 354) {
        if (s->mail_ok && s->accepted > 0)
            return start_body(s);
        /* RFC 2920: nobody to send to, yet DATA was accepted: end it empty. */
        send_cmd(s, ".\r\n", 3, NULL);
        expect(s, EX_DOT_EMPTY, 0);
        return STOP;
    }
    if (s->accepted > 0) {
        res_reply(&s->endres, &s->reply, SMTPC_STEP_DATA, SMTPC_CL_SMTP);
        if (s->endres.status == SMTPC_OK)
            res_local(&s->endres, SMTPC_TEMP, SMTPC_CL_PROTOCOL, SMTPC_STEP_DATA, "4.5.0",
                      "unexpected reply to DATA: %d", s->reply.code);
        s->have_endres = 1;
        for (i = 0; i < s->txn.nrcpts; i++)
            if (s->raccepted[i]) {
                s->rres[i] = s->endres;
                s->raccepted[i] = 0;
                s->rfinal[i] = 1;
            }
        s->accepted = 0;
    }
    s->need_rset = 1;
    finish_txn(s);
    return STOP;
}

static int dot_reply(struct smtpc *s, enum expect e)
{
    struct smtpc_res r;
    size_t i;

    if (e == EX_DOT_EMPTY) {
        s->need_rset = 1;
        finish_txn(s);
        return STOP;
    }
    res_reply(&r, &s->reply, SMTPC_STEP_DOT, SMTPC_CL_SMTP);
    if (s->reply.code / 100 == 3)
        res_local(&r, SMTPC_TEMP, SMTPC_CL_PROTOCOL, SMTPC_STEP_DOT, "4.5.0",
                  "unexpected reply to end of data: %d", s->reply.code);
    for (i = 0; i < s->txn.nrcpts; i++)
        if (s->raccepted[i])
            s->rres[i] = r;
    if (r.status == SMTPC_OK) {
        s->res = r;
    } else {
        s->endres = r;
        s->have_endres = 1;
        s->accepted = 0;
        s->need_rset = 1;
    }
    finish_txn(s);
    return STOP;
}

/* ---- reply dispatch ---- */

static int handle_reply(struct smtpc *s)
{
    struct pending p;
    struct smtpc_res r;

    if (s->qlen == 0) {
        if (s->phase == PH_READY && s->op == OP_NONE) {
            char sum[SMTPC_TEXT_MAX];

            smtp_reply_summary(&s->reply, sum, sizeof(sum));
            return fail_local(s, SMTPC_TEMP, SMTPC_CL_NETWORK, SMTPC_STEP_NONE, "4.4.2",
                              "server ended the idle connection: %s", sum);
        }
        return fail_local(s, SMTPC_TEMP, SMTPC_CL_PROTOCOL, current_step(s), "4.5.0",
                          "unexpected reply from server: %d", s->reply.code);
    }
    p = s->q[s->qhead];
    s->qhead++;
    s->qlen--;
    if (s->qlen == 0) {
        s->qhead = 0;
        evtimer_del(s->timer);
    } else {
        timer_arm(s, s->timeout);
    }

    if (p.what == EX_QUIT) {
        destroy(s);
        return STOP;
    }
    if (s->reply.code == 421) {
        /* The server is closing the connection. */
        res_reply(&r, &s->reply, step_of(p.what), SMTPC_CL_SMTP);
        return fail_session(s, &r);
    }
    switch (p.what) {
    case EX_GREETING:
        return greeting_reply(s);
    case EX_EHLO:
    case EX_HELO:
        return ehlo_reply(s, p.what);
    case EX_STARTTLS:
        return starttls_reply(s);
    case EX_AUTH:
    case EX_AUTH_LOGIN:
    case EX_AUTH_USER:
        return auth_reply(s, p.what);
    case EX_RSET:
        return rset_reply(s);
    case EX_MAIL:
        return mail_reply(s);
    case EX_RCPT:
        return rcpt_reply(s, p.idx);
    case EX_DATA:
        return data_reply(s);
    case EX_DOT:
    case EX_DOT_EMPTY:
        return dot_reply(s, p.what);
    case EX_QUIT:
        break;
    }
    return GO_ON;
}

static void process_input(struct smtpc *s)
{
    struct evbuffer *in;
    struct evbuffer_ptr eol;
    size_t eol_len, len;
    const char *why = NULL;
    int rc;

    while (s->bev && s->alive) {
        in = bufferevent_get_input(s->bev);
        if (evbuffer_get_length(in) == 0)
            return;
        if (s->phase == PH_BODY || s->phase == PH_HANDSHAKE || s->phase == PH_CONNECTING) {
            if (evbuffer_get_length(in) > INPUT_LIMIT)
                fail_local(s, SMTPC_TEMP, SMTPC_CL_PROTOCOL, current_step(s), "4.5.0",
                           "server sent too much data while we were sending");
            return;
        }
        eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
        if (eol.pos < 0) {
            if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX + 6)
                fail_local(s, SMTPC_TEMP, SMTPC_CL_PROTOCOL, current_step(s), "4.5.0",
                           "reply line too long");
            return;
        }
        len = (size_t)eol.pos;
        if (len > SMTP_REPLY_LINE_MAX + 6) {
            fail_local(s, SMTPC_TEMP, SMTPC_CL_PROTOCOL, current_step(s), "4.5.0",
                       "reply line too long");
            return;
        }
        evbuffer_remove(in, s->line, len);
        evbuffer_drain(in, eol_len);
        s->line[len] = '\0';
        log_line(s, "<", s->line, len);
        rc = smtp_reply_line(&s->reply, s->line, len, &why);
        if (rc == SMTP_REPLY_BAD) {
            char clean[80];

            smtp_sanitize(clean, sizeof(clean), s->line, len);
            fail_local(s, SMTPC_TEMP, SMTPC_CL_PROTOCOL, current_step(s), "4.5.0",
                       "bad reply from server (%s): %s", why, clean);
            return;
        }
        if (rc == SMTP_REPLY_MORE)
            continue;
        if (handle_reply(s) == STOP)
            return;
    }
}

/* ---- libevent callbacks ---- */

static void on_read(struct bufferevent *bev, void *arg)
{
    process_input(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct smtpc *s = arg;

    if (s->phase == PH_BODY)
        fill_body(s);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtpc *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    char why[SMTPC_TEXT_MAX];

    if (s->phase == PH_HANDSHAKE) {
        if (what & BEV_EVENT_CONNECTED) {
            tls_done(s);
            return;
        }
        tls_failed(s);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (s->op == OP_CLOSE) {
        destroy(s);
        return;
    }
    if (s->ssl && (what & BEV_EVENT_ERROR) && bufferevent_get_openssl_error(bev) != 0)
        snprintf(why, sizeof(why), "TLS error on the connection");
    else if ((what & BEV_EVENT_ERROR) && err != 0)
        snprintf(why, sizeof(why), "%s", strerror(err));
    else
        snprintf(why, sizeof(why), "closed by the server");
    if (s->op == OP_NONE)
        log_detail("%s: %s idle connection lost: %s", idp(s), s->relay, why);
    fail_local(s, SMTPC_TEMP, SMTPC_CL_NETWORK, current_step(s), "4.4.2", "connection lost%s: %s",
               s->op == OP_TXN && s->reused && !s->mail_replied ? " before the transaction started"
                                                                : "",
               why);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc *s = arg;
    enum smtpc_step step = current_step(s);

    s->timed_out = 1;
    if (s->op == OP_CLOSE) {
        destroy(s);
        return;
    }
    if (s->phase == PH_HANDSHAKE) {
        fail_local(s, SMTPC_TEMP, SMTPC_CL_TLS, SMTPC_STEP_STARTTLS, "4.4.2",
                   "timeout in the TLS handshake");
        return;
    }
    if (s->phase == PH_BODY) {
        fail_local(s, SMTPC_TEMP, SMTPC_CL_NETWORK, step, "4.4.2",
                   "timeout while sending the message");
        return;
    }
    fail_local(s, SMTPC_TEMP, SMTPC_CL_NETWORK, step, "4.4.2", "timeout waiting for the %s reply",
               smtpc_step_name(step));
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc *s = arg;

    if (s->pending_open_fail) {
        s->pending_open_fail = 0;
        fail_session(s, &s->res);
        return;
    }
    if (s->pending_txn_done) {
        s->pending_txn_done = 0;
        finish_txn(s);
        return;
    }
    process_input(s);
}

static void connected(struct smtpc *s)
{
    s->bev = bufferevent_socket_new(s->base, s->fd, 0);
    if (s->bev == NULL) {
        fail_local(s, SMTPC_TEMP, SMTPC_CL_LOCAL, SMTPC_STEP_CONNECT, "4.3.0",
                   "cannot allocate a bufferevent");
        return;
    }
    s->alive = 1;
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    if (log_enabled(LOG_LV_DETAIL))
        log_detail("%s: %s connected", idp(s), s->relay);
    expect(s, EX_GREETING, 0);
}

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc *s = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    event_free(s->ev_conn);
    s->ev_conn = NULL;
    if (what & EV_TIMEOUT) {
        fail_local(s, SMTPC_TEMP, SMTPC_CL_NETWORK, SMTPC_STEP_CONNECT, "4.4.1",
                   "connect to %s: timed out", s->relay);
        return;
    }
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        fail_local(s, SMTPC_TEMP, SMTPC_CL_NETWORK, SMTPC_STEP_CONNECT, "4.4.1",
                   "connect to %s: %s", s->relay, strerror(err));
        return;
    }
    connected(s);
}

/* Start the TCP connection. -1 (errno) only if no socket could be made. */
static int start_connect(struct smtpc *s)
{
    const struct sockaddr *sa = (const struct sockaddr *)&s->ss;
    struct timeval tv = {s->connect_timeout, 0};

    s->phase = PH_CONNECTING;
    s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -1;
    if (connect(s->fd, sa, netaddr_len(sa)) < 0 && errno != EINPROGRESS) {
        res_local(&s->res, SMTPC_TEMP, SMTPC_CL_NETWORK, SMTPC_STEP_CONNECT, "4.4.1",
                  "connect to %s: %s", s->relay, strerror(errno));
        s->pending_open_fail = 1;
        kick_soon(s);
        return 0;
    }
    s->ev_conn = event_new(s->base, s->fd, EV_WRITE, on_connect, s);
    event_add(s->ev_conn, &tv);
    return 0;
}

/* ---- public API ---- */

/* The DANE options: the usable records (only with a DANE mode), names. */
static void copy_dane(struct smtpc *s, const struct smtpc_opts *o)
{
    int dane = o->tls == TLS_MODE_DANE || o->tls == TLS_MODE_DANE_ONLY;

    s->evaluate = o->tls_evaluate && (o->tls == TLS_MODE_MAY || o->tls == TLS_MODE_ENCRYPT);
    if (!dane)
        return;
    s->dane_base = xstrdup(o->dane_base && o->dane_base[0] ? o->dane_base : s->host);
    s->tlsa = xcalloc(o->ntlsa ? o->ntlsa : 1, sizeof(*s->tlsa));
    for (size_t i = 0; i < o->ntlsa; i++) {
        const struct smtpc_tlsa *t = &o->tlsa[i];
        unsigned char *d;
        if (!smtpc_tlsa_usable(t->usage, t->selector, t->mtype, t->len))
            continue; /* RFC 7672 3.1.3: PKIX-TA/EE and unknown values */
        d = xmalloc(t->len);
        memcpy(d, t->data, t->len);
        s->tlsa[s->ntlsa] = *t;
        s->tlsa[s->ntlsa++].data = d;
    }
    s->dane_names = xcalloc(o->ndane_names + 1, sizeof(*s->dane_names));
    for (size_t i = 0; i < o->ndane_names; i++)
        if (o->dane_names[i] && o->dane_names[i][0])
            s->dane_names[s->ndane_names++] = xstrdup(o->dane_names[i]);
}

struct smtpc *smtpc_open(struct event_base *base, const struct smtpc_opts *o, smtpc_open_cb *cb,
                         void *arg)
{
    struct smtpc *s = xcalloc(1, sizeof(*s));
    struct sockaddr *sa;
    char hp[NETADDR_STRLEN + 300];

    s->base = base;
    s->fd = -1;
    s->ss = *o->addr;
    sa = (struct sockaddr *)&s->ss;
    if (o->port > 0 && sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)o->port);
    else if (o->port > 0 && sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)o->port);
    netaddr_ntop(sa, s->addrstr, sizeof(s->addrstr));
    s->host = xstrdup(o->host && o->host[0] ? o->host : s->addrstr);
    s->helo = xstrdup(o->helo_name && o->helo_name[0] ? o->helo_name : "localhost");
    s->user = o->auth_user && o->auth_user[0] ? xstrdup(o->auth_user) : NULL;
    s->pass = o->auth_pass ? xstrdup(o->auth_pass) : NULL;
    s->log_id = o->log_id ? xstrdup(o->log_id) : NULL;
    s->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : 30;
    s->timeout = o->timeout > 0 ? o->timeout : 300;
    s->auth_plaintext = o->auth_plaintext;
    s->chunking = o->chunking;
    s->tls_mode = o->tls;
    s->ssl_ctx = o->ssl_ctx;
    copy_dane(s, o);
    snprintf(hp, sizeof(hp), "%s[%s]:%d", s->host, s->addrstr, netaddr_port(sa));
    s->relay = xstrdup(hp);

    s->info.host = s->host;
    s->info.addr = s->addrstr;
    s->info.port = netaddr_port(sa);
    s->info.relay = s->relay;
    s->info.greeting = s->greeting;
    s->info.tls_version = s->tls_version;
    s->info.tls_cipher = s->tls_cipher;
    s->info.tls_dane_match = s->dane_match;
    s->info.tls_dane_depth = -1;
    s->info.tls_vfy_reason = s->vfy_reason;

    smtp_reply_init(&s->reply);
    buf_init(&s->enc);
    buf_init(&s->cork);
    s->txn.fd = -1;
    s->open_cb = cb;
    s->arg = arg;
    s->op = OP_OPEN;
    s->timer = evtimer_new(base, on_timer, s);
    s->kick = event_new(base, -1, 0, on_kick, s);
    if (s->timer == NULL || s->kick == NULL)
        log_panic("smtpc_open: cannot allocate events");
    if (start_connect(s) < 0) {
        res_local(&s->res, SMTPC_TEMP, SMTPC_CL_LOCAL, SMTPC_STEP_CONNECT, "4.3.0",
                  "cannot create a socket: %s", strerror(errno));
        s->pending_open_fail = 1;
        kick_soon(s);
    }
    return s;
}

int smtpc_reusable(const struct smtpc *s)
{
    return s->alive && s->usable && s->phase == PH_READY && s->op == OP_NONE && !s->zombie;
}

void smtpc_set_idle_cb(struct smtpc *s, smtpc_idle_cb *cb, void *arg)
{
    s->idle_cb = cb;
    s->idle_arg = arg;
}

const struct smtpc_info *smtpc_info(const struct smtpc *s)
{
    return &s->info;
}

/* Copy the transaction and check what can be checked before sending. */
/* Copy the caller's transaction into the session (results may outlive it). */
static void txn_copy(struct smtpc *s, const struct smtpc_txn *t)
{
    size_t n = t->nrcpts;

    txn_clear(s);
    s->txn = *t;
    s->sender = xstrdup(t->sender ? t->sender : "");
    s->envid = t->envid ? xstrdup(t->envid) : NULL;
    s->txn.sender = s->sender;
    s->txn.envid = s->envid;
    s->prefix = t->prefix_len ? xstrndup(t->prefix, t->prefix_len) : NULL;
    s->txn.prefix = s->prefix;
    s->txn.prefix_len = t->prefix_len;
    s->rcpts = xcalloc(n ? n : 1, sizeof(*s->rcpts));
    s->rres = xcalloc(n ? n : 1, sizeof(*s->rres));
    s->rfinal = xcalloc(n ? n : 1, 1);
    s->raccepted = xcalloc(n ? n : 1, 1);
    s->owned = xcalloc(2 * n + 1, sizeof(*s->owned));
    for (size_t i = 0; i < n; i++) {
        s->owned[s->nowned] = xstrdup(t->rcpts[i].addr ? t->rcpts[i].addr : "");
        s->rcpts[i].addr = s->owned[s->nowned++];
        s->rcpts[i].notify = t->rcpts[i].notify;
        if (t->rcpts[i].orcpt) {
            s->owned[s->nowned] = xstrdup(t->rcpts[i].orcpt);
            s->rcpts[i].orcpt = s->owned[s->nowned++];
        }
        res_local(&s->rres[i], SMTPC_TEMP, SMTPC_CL_LOCAL, SMTPC_STEP_NONE, "4.3.0",
                  "not attempted");
    }
    s->txn.rcpts = s->rcpts;
    s->accepted = 0;
    s->rnext = 0;
    s->mail_ok = s->mail_replied = s->timed_out = 0;
    s->have_endres = 0;
    res_clear(&s->res);
}

/* Local checks of the addresses: a bad recipient is final, a bad sender
 * ends the transaction; UTF-8 in any of them needs SMTPUTF8. */
static void txn_check_addrs(struct smtpc *s)
{
    unsigned res;
    const char *why;

    for (size_t i = 0; i < s->txn.nrcpts; i++) {
        if (smtp_mailbox_valid(s->rcpts[i].addr, strlen(s->rcpts[i].addr), &res, &why) < 0) {
            res_local(&s->rres[i], SMTPC_PERM, SMTPC_CL_LOCAL, SMTPC_STEP_RCPT, "5.1.3",
                      "invalid recipient address: %s", why);
            s->rfinal[i] = 1;
        } else if (res & SMTP_PATH_UTF8) {
            s->txn.need |= SMTPC_NEED_SMTPUTF8;
        }
    }
    if (s->sender[0]) {
        if (smtp_mailbox_valid(s->sender, strlen(s->sender), &res, &why) < 0) {
            res_local(&s->endres, SMTPC_PERM, SMTPC_CL_LOCAL, SMTPC_STEP_MAIL, "5.1.7",
                      "invalid sender address: %s", why);
            s->have_endres = 1;
        } else if (res & SMTP_PATH_UTF8) {
            s->txn.need |= SMTPC_NEED_SMTPUTF8;
        }
    }
}

/* What the server said in EHLO rules out: SMTPUTF8 missing, SIZE too small. */
static void txn_check_caps(struct smtpc *s)
{
    if (!s->have_endres && (s->txn.need & SMTPC_NEED_SMTPUTF8) &&
        !(s->info.caps.flags & SMTP_CAP_SMTPUTF8)) {
        res_local(&s->endres, SMTPC_PERM, SMTPC_CL_SMTP, SMTPC_STEP_MAIL, "5.6.7",
                  "message needs SMTPUTF8 but %s does not offer it", s->relay);
        s->have_endres = 1;
    }
    if (!s->have_endres && s->info.caps.size > 0 &&
        (unsigned long long)(s->txn.length + (off_t)s->txn.prefix_len) > s->info.caps.size) {
        res_local(&s->endres, SMTPC_PERM, SMTPC_CL_SMTP, SMTPC_STEP_MAIL, "5.3.4",
                  "message size %lld exceeds the limit of %s (SIZE %llu)",
                  (long long)(s->txn.length + (off_t)s->txn.prefix_len), s->relay,
                  s->info.caps.size);
        s->have_endres = 1;
    }
}

/* Set up a transaction; when the local checks already decide it (have_endres),
 * every recipient has its final result and nothing is sent. */
static void txn_setup(struct smtpc *s, const struct smtpc_txn *t)
{
    size_t i, n = t->nrcpts;

    txn_copy(s, t);
    txn_check_addrs(s);
    txn_check_caps(s);
    if (s->have_endres) {
        for (i = 0; i < n; i++)
            if (!s->rfinal[i]) {
                s->rres[i] = s->endres;
                s->rfinal[i] = 1;
            }
        return;
    }
    for (i = 0; i < n; i++)
        if (!s->rfinal[i])
            return;
    /* no valid recipient at all */
    if (n > 0)
        s->endres = s->rres[0];
    else
        res_local(&s->endres, SMTPC_PERM, SMTPC_CL_LOCAL, SMTPC_STEP_RCPT, "5.1.3",
                  "no recipients");
    s->have_endres = 1;
}

/* The idle connection died: report the transaction as not started. */
static int send_on_lost(struct smtpc *s, const struct smtpc_txn *t, smtpc_txn_cb *cb, void *arg)
{
    struct smtpc_res lost;
    size_t i;

    res_local(&lost, SMTPC_TEMP, SMTPC_CL_NETWORK, SMTPC_STEP_RSET, "4.4.2",
              "connection lost before the transaction started: %s", s->res.text);
    lost.lost_before_txn = 1;
    txn_setup(s, t);
    for (i = 0; i < s->txn.nrcpts; i++) {
        s->rres[i] = lost;
        s->rfinal[i] = 1;
    }
    s->endres = lost;
    s->have_endres = 1;
    s->txn_cb = cb;
    s->arg = arg;
    s->op = OP_TXN;
    s->pending_txn_done = 1;
    kick_soon(s);
    return 0;
}

int smtpc_send(struct smtpc *s, const struct smtpc_txn *t, smtpc_txn_cb *cb, void *arg)
{
    if (!smtpc_reusable(s)) {
        if (s->idle_lost && s->op == OP_NONE && !s->zombie)
            return send_on_lost(s, t, cb, arg);
        return -1;
    }
    txn_setup(s, t);
    s->txn_cb = cb;
    s->arg = arg;
    s->op = OP_TXN;
    s->info.transactions++;
    s->reused = s->info.transactions > 1;
    if (s->have_endres) {
        /* refused before anything was sent; the session stays usable */
        s->pending_txn_done = 1;
        kick_soon(s);
        return 0;
    }
    if (s->reused || s->need_rset) {
        send_fmt(s, "RSET");
        expect(s, EX_RSET, 0);
        return 0;
    }
    send_envelope(s);
    return 0;
}

void smtpc_close(struct smtpc *s)
{
    if (s == NULL)
        return;
    if (s->alive && s->phase == PH_READY && s->op == OP_NONE && !s->zombie) {
        s->op = OP_CLOSE;
        send_fmt(s, "QUIT");
        expect(s, EX_QUIT, 0);
        timer_arm(s, s->timeout < QUIT_TIMEOUT ? s->timeout : QUIT_TIMEOUT);
        return;
    }
    smtpc_free(s);
}

void smtpc_on_gone(struct smtpc *s, void (*fn)(void *arg), void *arg)
{
    s->gone_fn = fn;
    s->gone_arg = arg;
}

void smtpc_free(struct smtpc *s)
{
    if (s == NULL)
        return;
    if (s->in_cb > 0) {
        teardown(s);
        event_del(s->kick);
        s->zombie = 1;
        return;
    }
    destroy(s);
}

struct ssl_ctx_st *smtpc_tls_ctx_new(const char *ca_file, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *file = ca_file;
    char ebuf[256];

    if (ctx == NULL) {
        *err = xstrdup("SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* SMTP has its own end of data; a close without close_notify is an EOF. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (SSL_CTX_dane_enable(ctx) <= 0) {
        *err = xstrdup("SSL_CTX_dane_enable failed");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (file == NULL || file[0] == '\0') {
        file = getenv(X509_get_default_cert_file_env());
        if (file == NULL || file[0] == '\0')
            file = X509_get_default_cert_file();
    }
    if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1) {
        if (ca_file && ca_file[0]) {
            ERR_error_string_n(ERR_get_error(), ebuf, sizeof(ebuf));
            *err = xasprintf("cannot load CA file %s: %s", ca_file, ebuf);
            SSL_CTX_free(ctx);
            return NULL;
        }
        /* No system bundle file: the directory lookup works only unchrooted. */
        ERR_clear_error();
        SSL_CTX_set_default_verify_paths(ctx);
    }
    return ctx;
}
