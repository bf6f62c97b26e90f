/*
 * server - smtpd's connections, listeners and limits (see server.h).
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "auth.h"
#include "mail/config.h"
#include "base/log.h"
#include "base/map.h"
#include "mail/local_rcpt.h"
#include "intake.h"
#include "pickup.h"
#include "mail/proto.h"
#include "mail/spool.h"
#include "mail/tls_server.h"

#define MAX_LISTENERS 32
#define INPUT_HIGH_WATER (256 * 1024)
/* A client that sends commands without reading the replies is not read
 * further once this much output waits, until it drains to OUTPUT_LOW. */
#define OUTPUT_HIGH (256 * 1024)
#define OUTPUT_LOW (16 * 1024)
#define CLOSE_GRACE_S 10
#define STATS_EVERY_S 1
#define USERS_MAP_SPOOL "etc/users" /* SPOOL_MAP_USERS without ".db" */

struct conn;
TAILQ_HEAD(conn_list, conn);

struct listener {
    struct smtpd *sd;
    struct evconnlistener *l;
    int submission;
};

/* The spool copies of the aliases and of the local user names, opened
 * again when master has replaced them (mail/local_rcpt.h). */
struct local_maps {
    const struct config *cfg;
    int check; /* local_recipient_check */
    struct map *aliases, *users;
    int64_t aliases_mt, users_mt;
};

struct smtpd {
    struct child *c;
    struct sess_conf conf;
    char *hostname;
    char *postmaster; /* RCPT TO:<postmaster> goes here */
    struct cidr *nets;
    size_t nnets;
    int timeout_s, data_timeout_s, fail_delay_s;
    unsigned max_sessions, max_per_client;
    size_t cmd_limit;
    size_t pool_max; /* queue_file_recycle */
    SSL_CTX *tls;
    struct map *users;
    struct local_maps lm;   /* smtpd's check of local recipients */
    struct auth_pool *auth; /* the AUTH thread (auth.h) */
    struct committer commit;
    struct qfile_idgen idgen;
    struct pickup *pickup; /* maildrop/ (pickup.h) */
    struct ipc_chan *qmgr;
    struct listener lst[MAX_LISTENERS];
    int nlst;
    int paused;
    int stopping;
    unsigned nsessions;
    struct intake in;  /* admission, rates, deadlines (intake.h) */
    int stress;        /* in stress mode now (logged on change) */
    long long minfree; /* queue_minfree */
    struct conn_list conns;
    struct buf out; /* reply text of the current step */
    char *line;     /* one command line */
    struct smtpd_stats st;
    struct event *stats_ev; /* the counters to qmgr, once a second (mail/stats.h) */
};
static int local_rcpt_cb(void *arg, const char *addr);

struct conn {
    TAILQ_ENTRY(conn) link;
    struct smtpd *sd;
    struct bufferevent *bev;
    evutil_socket_t fd; /* owned here: bufferevents come and go (STARTTLS) */
    SSL *ssl;
    struct sess s;
    struct qmsg *msg;
    int admitted;           /* counted by intake */
    struct event *deadline; /* the whole command (or DATA) must be done by then */
    int64_t deadline_us;
    int64_t data_start_us;
    uint64_t data_bytes;
    struct event *delay;
    int in_tls_handshake;
    int discarding; /* skipping the rest of an over-long command line */
    int busy;       /* a commit or an AUTH check for this session is running */
    int dead;       /* the client is gone; free after the commit */
    int closing;
    int out_blocked;     /* input processing waits for the output to drain */
    int eof;             /* the client half-closed: answer what it sent, then close */
    struct event *later; /* closes from the loop when nothing is left to write */
};

static struct smtpd *the_sd; /* child callbacks get only the child */

static void conn_process(struct conn *c);
static void handle_act(struct conn *c, enum sess_act act);

/* ---- configuration ---- */

static int load_conf(struct smtpd *sd, const struct config *cfg, char **err)
{
    struct cidr *list;
    size_t n;
    char *why = NULL;

    if (netaddr_parse_cidr_list(cfg_list(cfg, P_mynetworks), &list, &n, &why) < 0) {
        *err = xasprintf("mynetworks: %s", why);
        free(why);
        return -1;
    }
    free(sd->nets);
    sd->nets = list;
    sd->nnets = n;
    free(sd->hostname);
    sd->hostname = xstrdup(cfg_myhostname(cfg));
    sd->conf.hostname = sd->hostname;
    sd->conf.size_limit = (uint64_t)cfg_num(cfg, P_message_size_limit);
    sd->conf.rcpt_limit = (unsigned)cfg_num(cfg, P_smtpd_recipient_limit);
    sd->conf.error_limit = (unsigned)cfg_num(cfg, P_smtpd_error_limit);
    sd->conf.line_limit = (size_t)cfg_num(cfg, P_smtpd_line_length_limit);
    sd->conf.max_hops = (unsigned)cfg_num(cfg, P_max_hop_count);
    sd->conf.normalize = strcmp(cfg_enum(cfg, P_smtpd_bare_newline), "normalize") == 0;
    sd->conf.auth_plaintext_loopback = (int)cfg_num(cfg, P_smtpd_auth_plaintext_loopback);
    sd->conf.chunking = (int)cfg_num(cfg, P_smtpd_chunking);
    sd->lm.cfg = cfg;
    sd->lm.check = (int)cfg_num(cfg, P_local_recipient_check);
    sd->conf.local_rcpt = local_rcpt_cb;
    sd->conf.local_arg = &sd->lm;
    {
        /* the postmaster of notices (notice_recipient), or postmaster@ us */
        const char *pm = cfg_str(cfg, P_notice_recipient);
        free(sd->postmaster);
        if (pm == NULL || pm[0] == '\0')
            pm = "postmaster";
        sd->postmaster =
            strchr(pm, '@') ? xstrdup(pm) : xasprintf("%s@%s", pm, cfg_myhostname(cfg));
        sd->conf.postmaster = sd->postmaster;
    }
    sd->timeout_s = (int)cfg_num(cfg, P_smtpd_timeout);
    sd->data_timeout_s = (int)cfg_num(cfg, P_smtpd_data_timeout);
    sd->fail_delay_s = (int)cfg_num(cfg, P_smtpd_auth_fail_delay);
    sd->minfree = cfg_num(cfg, P_queue_minfree);
    sd->max_sessions = (unsigned)cfg_num(cfg, P_smtpd_max_sessions);
    sd->max_per_client = (unsigned)cfg_num(cfg, P_smtpd_max_sessions_per_client);
    struct intake_limits il = {
        .max_sessions = sd->max_sessions,
        .max_per_client = sd->max_per_client,
        .conn_rate = (unsigned)cfg_num(cfg, P_smtpd_client_connection_rate_limit),
        .msg_rate = (unsigned)cfg_num(cfg, P_smtpd_client_message_rate_limit),
        .min_data_rate = (unsigned)cfg_num(cfg, P_smtpd_min_data_rate),
    };
    intake_set_limits(&sd->in, &il);
    sd->cmd_limit = (size_t)cfg_num(cfg, P_smtpd_command_line_limit);
    sd->pool_max = (size_t)cfg_num(cfg, P_queue_file_recycle);
    sd->line = xrealloc(sd->line, sd->cmd_limit + 1);
    return 0;
}

static int client_trusted(const struct smtpd *sd, const struct sockaddr *sa)
{
    return netaddr_cidr_list_match(sd->nets, sd->nnets, sa);
}

/* Numeric address, with IPv4-mapped IPv6 shown as IPv4. */
static void client_addr(const struct sockaddr *sa, char *buf, size_t size)
{
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)size);
            return;
        }
    }
    netaddr_ntop(sa, buf, size);
}

/* ---- output ---- */

static void log_transcript(struct conn *c, const char *dir, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) + 1 : n;
        size_t show = len;
        while (show > 0 && (p[show - 1] == '\n' || p[show - 1] == '\r'))
            show--;
        log_detail("[%s] %s %.*s", c->s.addr, dir, (int)show, p);
        p += len;
        n -= len;
    }
}

/*
 * Write to the client. On a plain connection with nothing queued the
 * reply goes straight to the socket: handing it to the bufferevent would
 * arm the write event and disarm it again once drained, two epoll_ctl
 * calls per reply (16 per message in the profile). Only what the socket
 * does not take now is queued, with the write event enabled for it; an
 * error is left for the bufferevent to find on its own write.
 */
static void conn_write(struct conn *c, const char *p, size_t n)
{
    if (c->ssl == NULL && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        ssize_t w = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
        if (n == 0)
            return;
    }
    bufferevent_write(c->bev, p, n);
    bufferevent_enable(c->bev, EV_WRITE);
}

/* Send what the session wrote into sd->out. */
static void flush_out(struct conn *c)
{
    struct smtpd *sd = c->sd;

    if (c->s.reject) {
        sd->st.rejects[c->s.reject - 1]++;
        c->s.reject = 0;
    }
    if (sd->out.len == 0)
        return;
    if (log_enabled(LOG_LV_DETAIL))
        log_transcript(c, ">", sd->out.data, sd->out.len);
    if (c->bev && !c->dead)
        conn_write(c, sd->out.data, sd->out.len);
    buf_reset(&sd->out);
}

/* The whole of the next command (or of DATA) must be in by when_us. */
static void arm_deadline(struct conn *c, int64_t when_us)
{
    int64_t now = now_us(), dt;
    struct timeval tv;

    if (c->deadline == NULL)
        return;
    if (when_us == INT64_MAX) {
        evtimer_del(c->deadline);
        c->deadline_us = INT64_MAX;
        return;
    }
    dt = when_us > now ? when_us - now : 0;
    tv.tv_sec = (time_t)(dt / 1000000);
    tv.tv_usec = (suseconds_t)(dt % 1000000);
    c->deadline_us = when_us;
    evtimer_add(c->deadline, &tv);
}

/* Between reads: seconds (the stress value when stressed); and the
 * deadline for the whole next command, which bytes trickling in do not
 * push back (intake.h). */
static void set_timeouts(struct conn *c, int seconds)
{
    int t = intake_timeout(&c->sd->in, seconds);
    struct timeval rt = {t, 0}, wt = {c->sd->timeout_s, 0};

    bufferevent_set_timeouts(c->bev, &rt, &wt);
    arm_deadline(c, now_us() + (int64_t)t * 1000000);
}

/* Stress begins at 3/4 of smtpd_max_sessions: the sessions already open
 * get the short deadline too (a flood of idle connections is cleared in
 * STRESS_TIMEOUT_S, not in smtpd_timeout). */
static void check_stress(struct smtpd *sd)
{
    int now_stressed = intake_stressed(&sd->in);
    struct conn *c;
    int64_t limit;

    if (now_stressed == sd->stress)
        return;
    sd->stress = now_stressed;
    if (!now_stressed) {
        log_info("stress mode ends: %u of %u sessions in use", sd->in.nsessions, sd->max_sessions);
        return;
    }
    sd->st.stress++;
    log_warn("stress mode: %u of %u sessions in use; command deadlines are %ds and each "
             "address may open few more sessions until it ends",
             sd->in.nsessions, sd->max_sessions, STRESS_TIMEOUT_S);
    limit = now_us() + (int64_t)STRESS_TIMEOUT_S * 1000000;
    TAILQ_FOREACH(c, &sd->conns, link)
    if (!c->busy && !c->closing && c->deadline && c->deadline_us > limit)
        arm_deadline(c, limit);
}

/* ---- connection lifetime ---- */

static void conn_free(struct conn *c)
{
    struct smtpd *sd = c->sd;

    if (c->msg) {
        qmsg_free(&sd->commit, c->msg);
        c->msg = NULL;
    }
    if (c->delay)
        event_free(c->delay);
    if (c->later)
        event_free(c->later);
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        evutil_closesocket(c->fd);
    if (c->admitted)
        intake_release(&sd->in, c->s.addr);
    if (c->deadline)
        event_free(c->deadline);
    TAILQ_REMOVE(&sd->conns, c, link);
    sd->nsessions--;
    check_stress(sd);
    if (sd->stopping && TAILQ_EMPTY(&sd->conns))
        child_exit(sd->c, 0);
    log_detail("disconnect from [%s]:%u commands=%u messages=%u errors=%u", c->s.addr, c->s.port,
               c->s.commands, c->s.messages, c->s.errors);
    sess_free(&c->s);
    free(c);
}

/* The client is gone or must go now: nothing more is written. */
static void conn_drop(struct conn *c)
{
    if (c->busy) {
        /* The commit still owns the message: finish when it calls back. */
        c->dead = 1;
        if (c->bev) {
            bufferevent_free(c->bev);
            c->bev = NULL;
        }
        if (c->ssl) {
            SSL_free(c->ssl);
            c->ssl = NULL;
        }
        if (c->fd >= 0) {
            evutil_closesocket(c->fd);
            c->fd = -1;
        }
        return;
    }
    conn_free(c);
}

static void on_close_written(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (bev == NULL || evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        /* Everything is written: a TLS session ends with close_notify. */
        if (c->ssl && !c->in_tls_handshake)
            SSL_shutdown(c->ssl);
        conn_drop(c);
    }
}

static void on_close_event(struct bufferevent *bev, short what, void *arg)
{
    conn_drop(arg);
}

static void on_close_later(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (c->bev && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return; /* the write callback will finish it */
    on_close_written(c->bev, c);
}

/* Close once the last reply is written. */
static void conn_close(struct conn *c)
{
    struct timeval wt = {CLOSE_GRACE_S, 0};

    c->closing = 1;
    c->s.state = SS_CLOSED;
    /* A closing session no longer counts against its client's limit: with
     * the 221 written at once, a client may reconnect before the close
     * completes here. */
    if (c->admitted) {
        intake_release(&c->sd->in, c->s.addr);
        c->admitted = 0;
    }
    if (c->deadline)
        evtimer_del(c->deadline);
    if (c->bev == NULL) {
        conn_drop(c);
        return;
    }
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_set_timeouts(c->bev, NULL, &wt);
    bufferevent_setcb(c->bev, NULL, on_close_written, on_close_event, c);
    bufferevent_enable(c->bev, EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        /* Never free the connection under the caller's feet: do it from the loop. */
        static const struct timeval now = {0, 0};
        if (c->later == NULL)
            c->later = evtimer_new(c->sd->c->base, on_close_later, c);
        evtimer_add(c->later, &now);
    }
}

/* ---- DATA ---- */

static void start_data(struct conn *c)
{
    struct smtpd *sd = c->sd;
    struct qfile_env env;
    struct qfile_rcpt *rc = xcalloc(c->s.nrcpt, sizeof(*rc));
    char id[QFILE_ID_SIZE];
    int64_t now = now_us();
    const char *why;

    qfile_id_next(&sd->idgen, now, id);
    c->msg = qmsg_new(id);
    sess_envelope(&c->s, id, now, &env, rc);
    if (qfile_env_write(&c->msg->head, &env, &c->msg->size_off, &why) != 0) {
        log_err("%s: cannot build the envelope: %s", id, why);
        c->msg->failed = 1;
    }
    free(rc);
    c->msg->env_len = c->msg->head.len;
    sess_received(&c->s, id, now, &c->msg->head);
    set_timeouts(c, sd->data_timeout_s);
    c->data_start_us = now;
    c->data_bytes = 0;
    arm_deadline(c, intake_data_deadline(&sd->in, now, 0, sd->data_timeout_s));
}

static void log_accepted(struct conn *c, const struct qmsg *m)
{
    const struct sess *s = &c->s;

    char folded[64] = "";

    if (s->dec.folded)
        snprintf(folded, sizeof(folded), " folded=%llu", (unsigned long long)s->dec.folded);
    log_info("%s: accepted from=<%s> size=%llu nrcpt=%zu client=[%s]:%u helo=%s proto=%s%s%s%s%s%s",
             m->id, s->sender ? s->sender : "", (unsigned long long)m->body_len, s->nrcpt, s->addr,
             s->port, s->helo_name[0] ? s->helo_name : "-", sess_proto(s), s->tls ? " tls=" : "",
             s->tls ? s->tls_info : "", s->authed ? " user=" : "", s->authed ? s->auth_user : "",
             folded);
}

static void notify_qmgr(struct smtpd *sd, const char *id)
{
    struct ipc_w w;

    if (sd->qmgr == NULL) {
        sd->st.qmgr_missed++;
        log_debug("%s: qmgr is not connected; it will find the message in %s/", id, SPOOL_QUEUE);
        return;
    }
    ipc_w_init(&w);
    ipc_w_str(&w, id);
    if (ipc_send(sd->qmgr, IMSG_QUEUE_NEW, 0, -1, w.p, w.len) == 0)
        sd->st.qmgr_notified++;
    else
        sd->st.qmgr_missed++;
    ipc_w_free(&w);
}

static void on_committed(struct qmsg *m, int ok, void *arg)
{
    struct conn *c = arg;
    struct smtpd *sd = c->sd;
    enum sess_act act;

    c->busy = 0;
    c->msg = NULL;
    if (ok) {
        sd->st.messages++;
        sd->st.bytes += m->body_len;
        log_accepted(c, m);
        notify_qmgr(sd, m->id);
    }
    if (c->dead) {
        if (ok)
            log_info("%s: client [%s] left before the reply; the message stays queued", m->id,
                     c->s.addr);
        qmsg_free(&sd->commit, m);
        conn_free(c);
        return;
    }
    act = sess_commit_result(&c->s, ok ? m->id : NULL, &sd->out);
    qmsg_free(&sd->commit, m);
    flush_out(c);
    set_timeouts(c, sd->timeout_s);
    handle_act(c, act);
    if (!c->closing)
        conn_process(c);
}

/*
 * After the session's verdict on a message's end (DATA's end, a BDAT
 * chunk): commit it, or log its refusal and free it, or (a BDAT chunk
 * that was not the last) go on. sender and nrcpt are the transaction's,
 * taken before the verdict reset it.
 */
static void message_verdict(struct conn *c, enum sess_act act, char *sender, size_t nrcpt)
{
    struct smtpd *sd = c->sd;
    const char *cmd = c->s.dec.raw ? "BDAT" : "DATA";

    if (act != SA_COMMIT && c->s.bdat_msg) {
        free(sender); /* a chunk taken; the message goes on */
        flush_out(c);
        set_timeouts(c, sd->timeout_s);
        handle_act(c, act);
        return;
    }
    if (act != SA_COMMIT) {
        sd->st.rejected++;
        log_info("reject: %s from [%s]:%u: %s; from=<%s> nrcpt=%zu", cmd, c->s.addr, c->s.port,
                 c->s.why[0] ? c->s.why : "refused", sender, nrcpt);
        free(sender);
        qmsg_free(&sd->commit, c->msg);
        c->msg = NULL;
        flush_out(c);
        set_timeouts(c, sd->timeout_s);
        handle_act(c, act);
        return;
    }
    free(sender);
    if (c->msg->failed) {
        act = sess_commit_result(&c->s, NULL, &sd->out);
        qmsg_free(&sd->commit, c->msg);
        c->msg = NULL;
        flush_out(c);
        set_timeouts(c, sd->timeout_s);
        handle_act(c, act);
        return;
    }
    c->busy = 1;
    commit_submit(&sd->commit, c->msg, on_committed, c);
}

static void data_end(struct conn *c)
{
    char *sender = xstrdup(c->s.sender ? c->s.sender : "");
    size_t nrcpt = c->s.nrcpt;

    message_verdict(c, sess_data_end(&c->s, &c->sd->out), sender, nrcpt);
}

/* The whole of a BDAT chunk is in (or thrown away). */
static void bdat_end(struct conn *c)
{
    struct qmsg *m = c->msg;
    char *sender = xstrdup(c->s.sender ? c->s.sender : "");
    size_t nrcpt = c->s.nrcpt;

    if (m && !c->s.bdat_refuse && c->s.bdat_last) {
        size_t b0 = m->body.len;
        data_dec_finish(&c->s.dec, &m->body);
        hops_feed(&c->s.hops, m->body.data + b0, m->body.len - b0);
        m->body_len += m->body.len - b0;
    }
    if (m == NULL && !c->s.bdat_refuse) {
        free(sender); /* cannot happen: a taken chunk has its message */
        conn_drop(c);
        return;
    }
    if (c->s.bdat_refuse) {
        enum sess_act act = sess_bdat_end(&c->s, &c->sd->out);
        free(sender);
        flush_out(c);
        set_timeouts(c, c->sd->timeout_s);
        handle_act(c, act);
        return;
    }
    message_verdict(c, sess_bdat_end(&c->s, &c->sd->out), sender, nrcpt);
}

/* Feed buffered input to the DATA decoder; 1 if the end was reached. */
static int feed_data(struct conn *c, struct evbuffer *in)
{
    struct evbuffer_iovec v[8];
    struct qmsg *m = c->msg;
    int n;

    while ((n = evbuffer_peek(in, -1, NULL, v, 8)) > 0) {
        size_t used = 0, before = m->body.len;
        if (n > 8)
            n = 8;
        for (int i = 0; i < n && !c->s.dec.done; i++) {
            size_t b0 = m->body.len;
            size_t k = data_dec_feed(&c->s.dec, v[i].iov_base, v[i].iov_len, &m->body);
            hops_feed(&c->s.hops, m->body.data + b0, m->body.len - b0);
            used += k;
            if (k < v[i].iov_len)
                break;
        }
        m->body_len += m->body.len - before;
        evbuffer_drain(in, used);
        c->data_bytes += used;
        if (m->body.len >= COMMIT_SPILL && !m->failed)
            qmsg_spill(&c->sd->commit, m);
        if (c->s.dec.done)
            return 1;
        if (used == 0)
            break;
    }
    /* DATA keeps up smtpd_min_data_rate on average, or it ends */
    arm_deadline(c, intake_data_deadline(&c->sd->in, c->data_start_us, c->data_bytes,
                                         c->sd->data_timeout_s));
    return 0;
}

/* Take what is buffered of a BDAT chunk; 1 when all of it is in. */
static int feed_chunk(struct conn *c, struct evbuffer *in)
{
    struct evbuffer_iovec v[8];
    struct qmsg *m = c->s.bdat_refuse ? NULL : c->msg;
    int n;

    while (c->s.bdat_left > 0 && (n = evbuffer_peek(in, -1, NULL, v, 8)) > 0) {
        size_t used = 0, before = m ? m->body.len : 0;
        if (n > 8)
            n = 8;
        for (int i = 0; i < n && used < c->s.bdat_left; i++) {
            size_t k = v[i].iov_len;
            if (k > c->s.bdat_left - used)
                k = (size_t)(c->s.bdat_left - used);
            if (m) {
                size_t b0 = m->body.len;
                (void)data_dec_feed(&c->s.dec, v[i].iov_base, k, &m->body); /* raw: takes all */
                hops_feed(&c->s.hops, m->body.data + b0, m->body.len - b0);
            }
            used += k;
        }
        evbuffer_drain(in, used);
        c->s.bdat_left -= used;
        c->data_bytes += used;
        if (m) {
            m->body_len += m->body.len - before;
            if (m->body.len >= COMMIT_SPILL && !m->failed)
                qmsg_spill(&c->sd->commit, m);
        }
    }
    if (c->s.bdat_left == 0)
        return 1;
    arm_deadline(c, intake_data_deadline(&c->sd->in, c->data_start_us, c->data_bytes,
                                         c->sd->data_timeout_s));
    return 0;
}

/* ---- AUTH ---- */

static void on_auth_delay(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    enum sess_act act = sess_auth_result(&c->s, 0, &c->sd->out);

    flush_out(c);
    handle_act(c, act);
    if (!c->closing)
        conn_process(c);
}

/* The AUTH thread's verdict on c's credentials (in the loop). */
static void on_auth_done(void *arg, int r)
{
    struct conn *c = arg;
    struct smtpd *sd = c->sd;
    enum sess_act act;

    c->busy = 0;
    if (c->dead) {
        conn_free(c);
        return;
    }
    if (r > 0) {
        sd->st.auth_ok++;
        log_info("[%s]:%u authenticated as %s", c->s.addr, c->s.port, c->s.auth_user);
    } else {
        struct timeval tv = {sd->fail_delay_s, 0};
        sd->st.auth_failed++;
        log_warn("authentication failed for user %s from [%s]:%u", c->s.auth_user, c->s.addr,
                 c->s.port);
        if (c->delay == NULL)
            c->delay = evtimer_new(sd->c->base, on_auth_delay, c);
        evtimer_add(c->delay, &tv);
        return;
    }
    act = sess_auth_result(&c->s, r, &sd->out);
    flush_out(c);
    handle_act(c, act);
    if (!c->closing)
        conn_process(c);
}

/*
 * The user is looked up here (the loop owns the map); the crypt, about
 * 18 ms for yescrypt, runs in the AUTH thread so that no session waits
 * for another's password check. The session stays in SS_WAIT meanwhile.
 */
static void do_auth(struct conn *c)
{
    struct smtpd *sd = c->sd;
    char *err = NULL, *hash = NULL;
    enum sess_act act;

    if (auth_lookup(sd->users, c->s.auth_user, &hash, &err) < 0) {
        memset(c->s.auth_pass, 0, sizeof(c->s.auth_pass));
        log_err("AUTH from [%s]: %s", c->s.addr, err);
        free(err);
        act = sess_auth_result(&c->s, -1, &sd->out);
        flush_out(c);
        handle_act(c, act);
        return;
    }
    c->busy = 1;
    auth_pool_submit(sd->auth, c->s.auth_pass, hash, c);
    memset(c->s.auth_pass, 0, sizeof(c->s.auth_pass));
}

/* ---- STARTTLS ---- */

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* The 220 went out: swap the plain bufferevent for a TLS one on the fd. */
static void on_starttls_flushed(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct smtpd *sd = c->sd;
    struct bufferevent *tb;

    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return;
    bufferevent_free(c->bev);
    c->bev = NULL;
    c->ssl = SSL_new(sd->tls);
    tb = c->ssl ? bufferevent_openssl_socket_new(sd->c->base, c->fd, c->ssl,
                                                 BUFFEREVENT_SSL_ACCEPTING, 0)
                : NULL;
    if (tb == NULL) {
        log_err("cannot start TLS for [%s]", c->s.addr);
        conn_drop(c);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
    c->bev = tb;
    c->in_tls_handshake = 1;
    bufferevent_setcb(tb, on_read, on_write, on_event, c);
    bufferevent_setwatermark(tb, EV_READ, 0, INPUT_HIGH_WATER);
    bufferevent_setwatermark(tb, EV_WRITE, OUTPUT_LOW, 0);
    set_timeouts(c, sd->timeout_s);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
}

static void start_tls(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    /* RFC 3207: anything the client pipelined after STARTTLS is void. */
    if (evbuffer_get_length(in) > 0) {
        log_info("[%s]:%u discarded %zu bytes pipelined after STARTTLS", c->s.addr, c->s.port,
                 evbuffer_get_length(in));
        evbuffer_drain(in, evbuffer_get_length(in));
    }
    /* Read nothing more in plain text; the handshake starts once 220 is out. */
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setcb(c->bev, NULL, on_starttls_flushed, on_event, c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        on_starttls_flushed(c->bev, c);
}

static void tls_done(struct conn *c)
{
    char info[128];
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

    c->in_tls_handshake = 0;
    c->sd->st.tls++;
    c->sd->st.tls_version[stats_tls_version(SSL_version(ssl))]++;
    tls_info(ssl, info, sizeof(info));
    sess_tls_started(&c->s, info);
    log_detail("[%s]:%u TLS established: %s", c->s.addr, c->s.port, info);
}

/* ---- the driver ---- */

static void handle_act(struct conn *c, enum sess_act act)
{
    struct smtpd *sd = c->sd;

    switch (act) {
    case SA_NONE:
    case SA_COMMIT:
        break;
    case SA_DATA:
        start_data(c);
        break;
    case SA_BDAT:
        if (c->msg == NULL && !c->s.bdat_refuse) {
            start_data(c); /* the first chunk of a message */
        } else {
            if (c->msg == NULL) { /* a chunk thrown away has a deadline of its own */
                c->data_start_us = now_us();
                c->data_bytes = 0;
            }
            set_timeouts(c, sd->data_timeout_s);
            arm_deadline(c, intake_data_deadline(&sd->in, c->data_start_us, c->data_bytes,
                                                 sd->data_timeout_s));
        }
        break;
    case SA_STARTTLS:
        start_tls(c);
        break;
    case SA_AUTH_VERIFY:
        do_auth(c);
        break;
    case SA_CLOSE:
        if (c->s.errors >= sd->conf.error_limit) {
            sd->st.error_limit++;
            log_info("[%s]:%u closed after %u errors", c->s.addr, c->s.port, c->s.errors);
        }
        conn_close(c);
        break;
    }
}

/* Free bytes in the spool (smtpd runs inside it), asked at most once a
 * second; -1 when statvfs fails (then nothing is refused for it). */
static long long spool_free(struct smtpd *sd)
{
    static int64_t when;
    static long long avail = -1;
    int64_t now = mono_us();
    struct statvfs v;

    if (now - when < 1000000 && when != 0)
        return avail;
    when = now;
    avail = statvfs(".", &v) == 0 ? (long long)v.f_bavail * (long long)v.f_frsize : -1;
    return avail;
}

/* The SIZE= of a MAIL command line, 0 if none. */
static unsigned long long mail_size(const char *line)
{
    for (const char *p = line; (p = strchr(p, ' ')) != NULL; p++)
        if (ascii_ncasecmp(p + 1, "SIZE=", 5) == 0)
            return strtoull(p + 6, NULL, 10);
    return 0;
}

/*
 * MAIL and RCPT when the spool cannot take the message: 452 4.3.1 at
 * once, not after the whole DATA. MAIL is refused when its SIZE= (or
 * nothing) would leave less than queue_minfree; RCPT when the spool is
 * below queue_minfree already. Replied here, so a session of a client
 * that keeps trying never hits smtpd_error_limit for our trouble.
 */
static int spool_full(struct conn *c, const char *line, size_t len)
{
    struct smtpd *sd = c->sd;
    int mail = len >= 10 && ascii_ncasecmp(line, "MAIL FROM:", 10) == 0 && !c->s.in_mail;
    int rcpt = len >= 8 && ascii_ncasecmp(line, "RCPT TO:", 8) == 0 && c->s.in_mail;
    long long avail, need;

    if ((!mail && !rcpt) || sd->minfree <= 0 || (avail = spool_free(sd)) < 0)
        return 0;
    need = sd->minfree + (mail ? (long long)mail_size(line) : 0);
    if (avail >= need)
        return 0;
    sd->st.spool_full++;
    sd->st.rejects[REJ_SPOOL_FULL]++;
    log_warn("reject: %.4s from [%s]:%u: the spool has %lld bytes free, less than %s%s", line,
             c->s.addr, c->s.port, avail, mail && mail_size(line) ? "the message's SIZE plus " : "",
             "queue_minfree");
    buf_printf(&sd->out, "452 4.3.1 Error: insufficient system storage, try again later\r\n");
    flush_out(c);
    return 1;
}

static void process_line(struct conn *c, char *line, size_t len)
{
    struct smtpd *sd = c->sd;
    enum sess_act act;
    int secret = c->s.state != SS_CMD;
    unsigned denied = c->s.relay_denied;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    line[len] = '\0';
    if (log_enabled(LOG_LV_DETAIL)) {
        if (secret || (len >= 5 && ascii_ncasecmp(line, "AUTH ", 5) == 0))
            log_detail("[%s] < %.*s ***", c->s.addr, secret ? 0 : 10, line);
        else
            log_detail("[%s] < %s", c->s.addr, line);
    }
    if (c->s.state == SS_CMD && spool_full(c, line, len))
        return;
    if (c->s.state == SS_CMD && !c->s.in_mail && len >= 10 &&
        ascii_ncasecmp(line, "MAIL FROM:", 10) == 0) {
        const char *why;
        if (intake_message(&sd->in, c->s.addr, now_us() / 1000000, &why) < 0) {
            sd->st.msg_rate_refused++;
            sd->st.rejects[REJ_MESSAGE_RATE]++;
            log_info("reject: MAIL from [%s]:%u: %s", c->s.addr, c->s.port, why);
            buf_printf(&sd->out, "452 4.7.0 Error: %s, try again later\r\n", why);
            flush_out(c);
            arm_deadline(c, now_us() + (int64_t)intake_timeout(&sd->in, sd->timeout_s) * 1000000);
            return;
        }
    }
    act = sess_line(&c->s, line, len, &sd->out);
    if (c->msg && !c->s.bdat_msg && c->s.state == SS_CMD) {
        /* RSET, EHLO or STARTTLS between BDAT chunks ended the message */
        qmsg_free(&sd->commit, c->msg);
        c->msg = NULL;
    }
    if (c->s.relay_denied != denied) {
        sd->st.relay_denied++;
        log_info("reject: RCPT from [%s]:%u: %s; from=<%s> to=%s helo=%s", c->s.addr, c->s.port,
                 c->s.why, c->s.sender ? c->s.sender : "", line + (len > 8 ? 8 : len),
                 c->s.helo_name[0] ? c->s.helo_name : "-");
    } else if (c->s.why[0]) {
        log_info("reject: %.4s from [%s]:%u: %s", line, c->s.addr, c->s.port, c->s.why);
    }
    flush_out(c);
    handle_act(c, act);
    /* the clock of the next command starts now (DATA has its own) */
    if (c->s.state == SS_CMD && !c->busy && !c->closing)
        arm_deadline(c, now_us() + (int64_t)intake_timeout(&sd->in, sd->timeout_s) * 1000000);
}

static void conn_process(struct conn *c)
{
    struct smtpd *sd = c->sd;
    struct evbuffer *in;

    while (!c->closing && !c->dead && c->bev) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > OUTPUT_HIGH) {
            c->out_blocked = 1;
            return;
        }
        in = bufferevent_get_input(c->bev);
        switch (c->s.state) {
        case SS_WAIT:
        case SS_CLOSED:
            return;
        case SS_DATA:
            if (!feed_data(c, in)) {
                if (c->eof) {
                    log_info("[%s]:%u lost connection during DATA; nothing was queued", c->s.addr,
                             c->s.port);
                    conn_drop(c);
                }
                return;
            }
            data_end(c);
            continue;
        case SS_BDAT:
            if (!feed_chunk(c, in)) {
                if (c->eof) {
                    log_info("[%s]:%u lost connection during BDAT; nothing was queued", c->s.addr,
                             c->s.port);
                    conn_drop(c);
                }
                return;
            }
            bdat_end(c);
            continue;
        default:
            break;
        }
        size_t eol_len = 0, avail = evbuffer_get_length(in);
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        if (p.pos < 0) {
            if (avail > sd->cmd_limit) {
                evbuffer_drain(in, avail);
                if (!c->discarding) {
                    enum sess_act act = sess_too_long(&c->s, &sd->out);
                    c->discarding = 1;
                    flush_out(c);
                    handle_act(c, act);
                }
            }
            if (c->eof && !c->closing)
                conn_close(c); /* every complete command was answered */
            return;
        }
        size_t total = (size_t)p.pos + eol_len;
        if (c->discarding || total > sd->cmd_limit) {
            evbuffer_drain(in, total);
            if (!c->discarding) {
                enum sess_act act = sess_too_long(&c->s, &sd->out);
                flush_out(c);
                handle_act(c, act);
            }
            c->discarding = 0;
            continue;
        }
        evbuffer_remove(in, sd->line, total);
        process_line(c, sd->line, (size_t)p.pos);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    conn_process(arg);
}

/* The output drained below OUTPUT_LOW: go on with buffered commands. */
static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (c->out_blocked) {
        c->out_blocked = 0;
        conn_process(c);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    struct smtpd *sd = c->sd;

    if (what & BEV_EVENT_CONNECTED) {
        if (c->in_tls_handshake) {
            tls_done(c);
            conn_process(c);
        }
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        sd->st.timeouts++;
        log_info("timeout after %s from [%s]:%u",
                 c->s.state == SS_DATA   ? "DATA"
                 : c->s.state == SS_BDAT ? "BDAT"
                 : c->in_tls_handshake   ? "STARTTLS"
                                         : "command",
                 c->s.addr, c->s.port);
        if (c->in_tls_handshake || (what & BEV_EVENT_WRITING)) {
            conn_drop(c);
            return;
        }
        buf_printf(&sd->out, "421 4.4.2 %s Error: timeout exceeded\r\n", sd->hostname);
        flush_out(c);
        conn_close(c);
        return;
    }
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !c->in_tls_handshake &&
        !c->closing) {
        /* A half-close: buffered commands still get their replies. */
        c->eof = 1;
        if (c->busy || c->s.state == SS_WAIT)
            return; /* the commit / AUTH check / TLS start goes on first */
        conn_process(c);
        return;
    }
    if (c->in_tls_handshake) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        char eb[256] = "connection closed";
        if (e)
            ERR_error_string_n(e, eb, sizeof(eb));
        sd->st.tls_failed++;
        log_info("TLS handshake with [%s]:%u failed: %s", c->s.addr, c->s.port, eb);
    } else if (c->s.state == SS_DATA || c->s.state == SS_BDAT || c->s.bdat_msg) {
        log_info("[%s]:%u lost connection during %s; nothing was queued", c->s.addr, c->s.port,
                 c->s.state == SS_DATA ? "DATA" : "BDAT");
    } else if ((what & BEV_EVENT_ERROR) && !c->closing) {
        log_detail("[%s]:%u connection error: %s", c->s.addr, c->s.port,
                   evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    conn_drop(c);
}

/* A command (or DATA) that did not complete in time, however its bytes
 * trickled in: the same 421 as an idle timeout. A commit, an AUTH check
 * or a TLS handshake in progress re-arms it when it ends. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct smtpd *sd = c->sd;

    if (c->busy || c->closing || c->in_tls_handshake || c->bev == NULL)
        return;
    sd->st.deadlines++;
    int data = c->s.state == SS_DATA || c->s.state == SS_BDAT;
    log_info("timeout after %s from [%s]:%u (%s)",
             c->s.state == SS_DATA   ? "DATA"
             : c->s.state == SS_BDAT ? "BDAT"
                                     : "command",
             c->s.addr, c->s.port,
             data ? "in all: below smtpd_min_data_rate"
                  : "in all: the command was not complete in time");
    buf_printf(&sd->out, "421 4.4.2 %s Error: timeout exceeded\r\n", sd->hostname);
    flush_out(c);
    conn_close(c);
}

/* ---- accepting ---- */

static void refuse(struct smtpd *sd, evutil_socket_t fd, const char *addr, const char *text)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "421 %s %s\r\n", sd->hostname, text);

    sd->st.refused++;
    log_info("refused session from [%s]: %s", addr, text);
    if (n > 0 && send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_debug("refuse [%s]: %s", addr, strerror(errno));
    /* Let the 421 go out before the FIN: no RST from unread input. */
    shutdown(fd, SHUT_WR);
    evutil_closesocket(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct listener *ls = arg;
    struct smtpd *sd = ls->sd;
    char addr[64], text[160];
    struct conn *c;
    const char *why;
    int one = 1;

    client_addr(sa, addr, sizeof(addr));
    if (sd->paused || sd->stopping) {
        refuse(sd, fd, addr, "4.3.2 Service not available, mail intake is paused");
        return;
    }
    if (intake_admit(&sd->in, addr, now_us() / 1000000, &why) < 0) {
        snprintf(text, sizeof(text), "4.7.0 Error: %s, try again later", why);
        refuse(sd, fd, addr, text);
        return;
    }
    check_stress(sd);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = xcalloc(1, sizeof(*c));
    c->sd = sd;
    c->admitted = 1;
    sd->nsessions++;
    sd->st.sessions++;
    TAILQ_INSERT_TAIL(&sd->conns, c, link);
    sess_init(&c->s, &sd->conf, addr, (unsigned)netaddr_port(sa), netaddr_is_loopback(sa),
              client_trusted(sd, sa), ls->submission);
    c->fd = fd;
    c->bev = bufferevent_socket_new(sd->c->base, fd, 0);
    c->deadline = evtimer_new(sd->c->base, on_deadline, c);
    if (c->bev == NULL || c->deadline == NULL) {
        conn_free(c);
        return;
    }
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, INPUT_HIGH_WATER);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUTPUT_LOW, 0);
    set_timeouts(c, sd->timeout_s);
    /* EV_WRITE is enabled when a write has to wait (conn_write). */
    bufferevent_enable(c->bev, EV_READ);
    log_detail("connect from [%s]:%u%s%s", addr, c->s.port, c->s.trusted ? " (mynetworks)" : "",
               ls->submission ? " (submission)" : "");
    sess_greeting(&c->s, &sd->out);
    flush_out(c);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();

    log_warn("accept: %s", evutil_socket_error_to_string(e));
}

/* ---- the maildrop (pickup.h) ---- */

static int pickup_accepting(void *arg)
{
    const struct smtpd *sd = arg;

    return !sd->paused && !sd->stopping;
}

/* As trusted as sendmail's SMTP session from 127.0.0.1 would be. */
static int pickup_trusted(void *arg)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    return client_trusted(arg, (const struct sockaddr *)&sin);
}

static size_t pickup_cmd_limit(void *arg)
{
    return ((const struct smtpd *)arg)->cmd_limit;
}

static void pickup_queued(void *arg, const char *id, uint64_t bytes)
{
    struct smtpd *sd = arg;

    sd->st.messages++;
    sd->st.bytes += bytes;
    notify_qmgr(sd, id);
}

static void start_pickup(struct smtpd *sd)
{
    struct pickup_env env = {sd->c->base,      &sd->commit,    &sd->idgen,       &sd->conf,    sd,
                             pickup_accepting, pickup_trusted, pickup_cmd_limit, pickup_queued};
    char *err = NULL;

    sd->pickup = pickup_start(&env, &err);
    if (sd->pickup == NULL) {
        log_warn("maildrop: %s; mail left there by sendmail is not picked up", err);
        free(err);
    }
}

/* ---- the counters qmgr serves as metrics (mail/stats.h) ---- */

static void snapshot(const struct smtpd *sd, uint64_t *v)
{
    const struct smtpd_stats *s = &sd->st;
    uint64_t by_intake = sd->in.refused_busy + sd->in.refused_client + sd->in.refused_rate;

    memset(v, 0, STS__COUNT * sizeof(*v));
    v[STS_SESSIONS_NOW] = sd->nsessions;
    v[STS_SESSIONS] = s->sessions;
    v[STS_ACCEPTED] = s->messages;
    v[STS_BYTES] = s->bytes;
    v[STS_TLS_FAILED] = s->tls_failed;
    for (int i = 0; i < TLSV__COUNT; i++)
        v[STS_TLS + i] = s->tls_version[i];
    /* every refusal at connect that intake did not make: paused or stopping */
    v[STS_REFUSED + REF_PAUSED] = s->refused > by_intake ? s->refused - by_intake : 0;
    v[STS_REFUSED + REF_SESSIONS] = sd->in.refused_busy;
    v[STS_REFUSED + REF_PER_CLIENT] = sd->in.refused_client;
    v[STS_REFUSED + REF_CONNECTION_RATE] = sd->in.refused_rate;
    for (int i = 0; i < REJ__COUNT; i++)
        v[STS_REJECTED + i] = s->rejects[i];
}

static void on_stats_timer(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd *sd = arg;
    uint64_t v[STS__COUNT];
    struct ipc_w w;

    if (sd->qmgr == NULL)
        return;
    snapshot(sd, v);
    ipc_w_init(&w);
    stats_encode(&w, v, STS__COUNT);
    ipc_send(sd->qmgr, IMSG_STATS_SMTPD, 0, -1, w.p, w.len);
    ipc_w_free(&w);
}

/* ---- setup ---- */

struct smtpd *smtpd_new(struct child *c)
{
    struct smtpd *sd = xcalloc(1, sizeof(*sd));

    sd->c = c;
    c->arg = sd;
    the_sd = sd;
    struct intake_limits none = {0};
    intake_init(&sd->in, &none);
    TAILQ_INIT(&sd->conns);
    buf_init(&sd->out);
    qfile_id_init(&sd->idgen, 0);
    sd->commit.incoming_fd = sd->commit.queue_fd = -1;
    return sd;
}

static int64_t file_mtime(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return 0;
    return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec + 1;
}

/* *m open on path (relative to the spool, without ".db") as of now. */
static void lm_refresh(struct map **m, int64_t *seen, const char *path)
{
    char db[64], *err = NULL;
    int64_t mt;

    snprintf(db, sizeof(db), "%s.db", path);
    mt = file_mtime(db);
    if (mt == *seen)
        return;
    if (*m)
        map_close(*m);
    *m = mt ? map_open(path, 0, &err) : NULL;
    if (mt && *m == NULL) {
        log_warn("cannot open %s: %s", db, err);
        free(err);
    }
    *seen = mt;
}

static int local_rcpt_cb(void *arg, const char *addr)
{
    struct local_maps *lm = arg;
    const char *at = strrchr(addr, '@');

    if (at == NULL || !local_domain(lm->cfg, at + 1))
        return LR_REMOTE;
    if (!lm->check)
        return LR_OK;
    lm_refresh(&lm->aliases, &lm->aliases_mt, "etc/aliases");
    lm_refresh(&lm->users, &lm->users_mt, "etc/localusers");
    return local_rcpt_check(lm->cfg, lm->aliases, lm->users, addr);
}

static void open_users(struct smtpd *sd, const char *path, int quiet)
{
    char *err = NULL;
    struct map *m = map_open(path, 0, &err);

    if (m == NULL) {
        if (!quiet)
            log_info("AUTH not offered: %s", err);
        free(err);
        return;
    }
    map_close(sd->users);
    sd->users = m;
    sd->conf.auth_available = 1;
}

int smtpd_setup(struct smtpd *sd, char **err)
{
    const struct config *cfg = sd->c->cfg;
    const char *cert = cfg_str(cfg, P_tls_cert_file), *key = cfg_str(cfg, P_tls_key_file);

    if (load_conf(sd, cfg, err) != 0)
        return -1;
    if (cert && *cert) {
        sd->tls = tls_server_ctx(cert, key && *key ? key : cert, err);
        if (sd->tls == NULL)
            return -1;
        sd->conf.tls_available = 1;
    } else {
        log_info("STARTTLS not offered: tls_cert_file is empty");
    }
    /* master copies the compiled users map into the spool (etc/users.db). */
    {
        char *spool_map = xasprintf("%s/%s", cfg_str(cfg, P_queue_directory), USERS_MAP_SPOOL);
        char *dbp = xasprintf("%s.db", spool_map);
        if (access(dbp, F_OK) == 0)
            open_users(sd, spool_map, 0);
        else if (cfg_str(cfg, P_smtpd_users_map)[0])
            open_users(sd, cfg_str(cfg, P_smtpd_users_map), 0);
        free(dbp);
        free(spool_map);
    }
    return 0;
}

int smtpd_start(struct smtpd *sd, char **err)
{
    int fds[MAX_LISTENERS], n;

    if (commit_init(&sd->commit, sd->c->base, err) != 0)
        return -1;
    commit_set_pool_max(&sd->commit, sd->pool_max);
    if ((sd->auth = auth_pool_new(sd->c->base, on_auth_done, err)) == NULL)
        return -1;
    start_pickup(sd);
    {
        static const struct timeval every = {STATS_EVERY_S, 0};
        sd->stats_ev = event_new(sd->c->base, -1, EV_PERSIST, on_stats_timer, sd);
        event_add(sd->stats_ev, &every);
    }
    for (int pass = 0; pass < 2; pass++) {
        n = child_fds(sd->c, pass ? "submission" : "listen", fds, MAX_LISTENERS - sd->nlst);
        for (int i = 0; i < n; i++) {
            struct listener *ls = &sd->lst[sd->nlst];
            ls->sd = sd;
            ls->submission = pass;
            ls->l =
                evconnlistener_new(sd->c->base, on_accept, ls, LEV_OPT_CLOSE_ON_FREE, 0, fds[i]);
            if (ls->l == NULL) {
                *err = xasprintf("cannot listen on inherited fd %d", fds[i]);
                return -1;
            }
            evconnlistener_set_error_cb(ls->l, on_accept_error);
            sd->nlst++;
        }
    }
    if (sd->nlst == 0)
        log_warn("no listening sockets were passed by master");
    log_info("ready: %d listener(s), STARTTLS %s, AUTH %s, max %u sessions", sd->nlst,
             sd->conf.tls_available ? "on" : "off", sd->conf.auth_available ? "on" : "off",
             sd->max_sessions);
    return 0;
}

/* ---- child callbacks ---- */

/* qmgr moved delivered files to free/: their names, for reuse. */
static void take_free(struct smtpd *sd, const struct ipc_msg *m)
{
    struct ipc_r r;
    uint32_t n;

    ipc_r_init(&r, m->body, m->len);
    n = ipc_r_u32(&r);
    for (uint32_t i = 0; i < n && ipc_r_ok(&r); i++) {
        const char *name = ipc_r_str(&r);
        if (ipc_r_ok(&r))
            commit_recycle(&sd->commit, name);
    }
    if (!ipc_r_done(&r))
        log_warn("qmgr: malformed list of freed queue files");
}

static void on_qmgr_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    struct smtpd *sd = arg;

    if (m->fd >= 0)
        close(m->fd);
    if (m->type == IMSG_QUEUE_FREE) {
        take_free(sd, m);
        return;
    }
    log_debug("ignoring message type %u from qmgr", m->type);
}

static void on_qmgr_close(struct ipc_chan *ch, void *arg)
{
    struct smtpd *sd = arg;

    log_info("qmgr channel closed; new messages wait in %s/ for its scan", SPOOL_QUEUE);
    child_peer_closed(sd->c, ch);
    if (sd->qmgr == ch)
        sd->qmgr = NULL;
    ipc_chan_free(ch);
}

void smtpd_peer(struct child *c, const char *name, int fd)
{
    struct smtpd *sd = c->arg;

    if (strcmp(name, "qmgr") != 0) {
        close(fd);
        return;
    }
    if (sd->qmgr)
        ipc_chan_free(sd->qmgr);
    sd->qmgr =
        ipc_chan_new(c->base, fd, "qmgr", &proto_qmgr_to_smtpd, on_qmgr_msg, on_qmgr_close, sd);
    log_debug("qmgr channel up");
}

void smtpd_master_msg(struct child *c, const struct ipc_msg *m)
{
    struct smtpd *sd = c->arg;
    struct ipc_r r;
    const char *cert, *key;
    char *err = NULL, what[400];
    SSL_CTX *ctx;

    if (m->fd >= 0)
        close(m->fd);
    if (m->type != IMSG_TLS_CERT)
        return;
    ipc_r_init(&r, m->body, m->len);
    cert = ipc_r_str(&r);
    key = ipc_r_str(&r);
    if (!ipc_r_done(&r)) {
        log_warn("malformed TLS certificate message from master ignored");
        return;
    }
    if (*cert == '\0') {
        if (sd->tls)
            log_info("STARTTLS is off now (no tls_cert_file)");
        SSL_CTX_free(sd->tls); /* sessions in TLS keep their reference */
        sd->tls = NULL;
        sd->conf.tls_available = 0;
    } else if ((ctx = tls_server_ctx_pem(cert, key, "tls_cert_file", "tls_key_file", &err)) ==
               NULL) {
        log_err("the new TLS certificate is not used, the old one stays: %s", err);
        free(err);
    } else {
        SSL_CTX_free(sd->tls);
        sd->tls = ctx;
        sd->conf.tls_available = 1;
        tls_describe(ctx, what, sizeof(what));
        log_info("TLS certificate loaded: %s", what);
    }
    explicit_bzero((void *)(uintptr_t)m->body, m->len); /* the key */
}

int smtpd_reload(struct child *c, char **err)
{
    struct smtpd *sd = c->arg;

    if (load_conf(sd, c->cfg, err) != 0)
        return -1;
    commit_set_pool_max(&sd->commit, sd->pool_max);
    /* The master re-copied etc/users.db into the spool; we run inside it. */
    if (access(USERS_MAP_SPOOL ".db", F_OK) == 0)
        open_users(sd, USERS_MAP_SPOOL, 0);
    return 0;
}

static void show(struct smtpd *sd, unsigned flags, struct buf *out)
{
    const struct smtpd_stats *s = &sd->st;
    const struct commit_stats *cs = &sd->commit.st;
    unsigned long long refusals = 0;

    for (int i = 0; i < REJ__COUNT; i++)
        refusals += s->rejects[i];
    struct {
        const char *name;
        unsigned long long v;
    } rows[] = {
        {"sessions_now", sd->nsessions},
        {"sessions_total", s->sessions},
        {"sessions_refused", s->refused},
        {"messages", s->messages},
        {"bytes", s->bytes},
        {"messages_rejected", s->rejected},
        {"relay_denied", s->relay_denied},
        {"refusals", refusals}, /* every reason of mail/stats.h */
        {"tls_sessions", s->tls},
        {"tls_failed", s->tls_failed},
        {"auth_ok", s->auth_ok},
        {"auth_failed", s->auth_failed},
        {"timeouts", s->timeouts},
        {"deadlines", s->deadlines},
        {"stress_mode", (unsigned long long)sd->stress},
        {"stress_entered", s->stress},
        {"refused_busy", sd->in.refused_busy},
        {"refused_per_client", sd->in.refused_client},
        {"refused_connection_rate", sd->in.refused_rate},
        {"refused_message_rate", s->msg_rate_refused},
        {"refused_spool_full", s->spool_full},
        {"error_limit_closes", s->error_limit},
        {"commit_batches", cs->batches},
        {"commit_max_batch", cs->max_batch},
        {"commit_failed", cs->failed},
        {"commit_sync_us", cs->sync_us},
        {"files_created", cs->created},
        {"files_recycled", cs->recycled},
        {"recycle_pool", sd->commit.npool},
        {"qmgr_notified", s->qmgr_notified},
        {"qmgr_missed", s->qmgr_missed},
        {"maildrop_picked", pickup_get_stats(sd->pickup)->picked},
        {"maildrop_refused", pickup_get_stats(sd->pickup)->refused},
        {"maildrop_deferred", pickup_get_stats(sd->pickup)->deferred},
    };

    if (flags & CTL_F_JSON) {
        buf_printf(out, "{\"intake\":\"%s\"", sd->paused ? "paused" : "running");
        for (size_t i = 0; i < nitems(rows); i++)
            buf_printf(out, ",\"%s\":%llu", rows[i].name, rows[i].v);
        buf_adds(out, "}\n");
        return;
    }
    buf_printf(out, "%-20s %s\n", "intake", sd->paused ? "paused" : "running");
    for (size_t i = 0; i < nitems(rows); i++)
        buf_printf(out, "%-20s %llu\n", rows[i].name, rows[i].v);
}

const char *smtpd_state(struct child *c)
{
    const struct smtpd *sd = the_sd;

    return sd && sd->paused ? "intake paused" : NULL;
}

int smtpd_ctl(struct child *c, int argc, char **argv, unsigned flags, struct buf *out)
{
    struct smtpd *sd = c->arg;

    if (argc == 2 && strcmp(argv[1], "intake") == 0 &&
        (strcmp(argv[0], "pause") == 0 || strcmp(argv[0], "resume") == 0)) {
        sd->paused = strcmp(argv[0], "pause") == 0;
        log_info("mail intake %s", sd->paused ? "paused: new sessions get 421" : "resumed");
        if (!sd->paused)
            pickup_kick(sd->pickup);
        if (flags & CTL_F_JSON)
            buf_printf(out, "{\"intake\":\"%s\"}\n", sd->paused ? "paused" : "running");
        else
            buf_printf(out, "intake %s\n", sd->paused ? "paused" : "running");
        return 0;
    }
    if (argc == 2 && strcmp(argv[0], "show") == 0 && strcmp(argv[1], "smtpd") == 0) {
        show(sd, flags, out);
        return 0;
    }
    buf_adds(out, "smtpd: usage: pause intake | resume intake | show smtpd\n");
    return 2;
}

void smtpd_shutdown(struct child *c)
{
    struct smtpd *sd = c->arg;
    struct conn *cn, *next;

    sd->stopping = 1;
    if (sd->stats_ev) {
        event_free(sd->stats_ev);
        sd->stats_ev = NULL;
    }
    for (int i = 0; i < sd->nlst; i++)
        if (sd->lst[i].l) {
            evconnlistener_free(sd->lst[i].l);
            sd->lst[i].l = NULL;
        }
    pickup_stop(sd->pickup);
    commit_run(&sd->commit);
    /* Idle sessions are told to come back later; DATA may finish. */
    for (cn = TAILQ_FIRST(&sd->conns); cn; cn = next) {
        next = TAILQ_NEXT(cn, link);
        if (cn->s.state == SS_CMD && !cn->closing && !cn->dead) {
            buf_printf(&sd->out, "421 4.3.2 %s Service shutting down\r\n", sd->hostname);
            flush_out(cn);
            conn_close(cn);
        }
    }
    if (sd->qmgr) {
        ipc_chan_free(sd->qmgr);
        sd->qmgr = NULL;
    }
    if (TAILQ_EMPTY(&sd->conns))
        child_exit(c, 0);
}
