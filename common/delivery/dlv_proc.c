/*
 * dlv_proc - deliver's and relay's process: channels to qmgr and dnsd,
 * requests in, results out, the engine in between. Contract in dlv_proc.h.
 */
#include "delivery/dlv_proc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "mail/child.h"
#include "mail/dlv_proto.h"
#include "delivery/dlv_engine.h"
#include "delivery/tls_probe.h"
#include "mail/dns_proto.h"
#include "base/ipc.h"
#include "base/log.h"
#include "mail/proto.h"
#include "mail/secrets.h"
#include "mail/sign_proto.h"
#include "base/util.h"

/* How long a message waits for the signer before it is deferred (local). */
#define SIGN_TIMEOUT_S 60

/* One job on its way, tied to the qmgr channel it came from. Before the
 * job starts, a message to be signed waits for the signer: job is NULL,
 * the request and its fd are kept here. */
struct pend {
    struct pend *next;
    struct dlv_job *job;
    uint32_t id;
    uint32_t gen;     /* qmgr channel generation */
    uint32_t sign_id; /* frame id of the signer's request, 0 when not signing */
    struct dlv_req q; /* while signing */
    int fd;           /* while signing */
    struct event *sign_timer;
    char *dkim; /* for the result: what the signer did, or NULL */
};

static struct {
    const struct dlv_proc_policy *pol;
    struct child *c;
    struct dlv_engine *eng;
    SSL_CTX *ctx;
    struct ipc_chan *qmgr, *dnsd, *signer;
    uint32_t qgen;
    uint32_t sign_seq;
    struct pend *pend;
    int stopping;
    struct secrets *secrets; /* relay only: the gateways' credentials */
} P;

static uint32_t rnd(uint32_t n)
{
    return n ? (uint32_t)random() % n : 0;
}

static void engine_opts(struct dlv_engine_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->base = P.c->base;
    o->ssl_ctx = P.ctx;
    o->helo_name = cfg_myhostname(P.c->cfg);
    o->connect_timeout = (int)cfg_num(P.c->cfg, P_smtp_connect_timeout);
    o->timeout = (int)cfg_num(P.c->cfg, P_smtp_timeout);
    o->chunking = (int)cfg_num(P.c->cfg, P_smtp_chunking);
    o->rnd = rnd;
}

static void send_result(const struct dlv_res *r)
{
    struct ipc_w w;

    ipc_w_init(&w);
    dlv_res_encode(&w, r);
    if (P.qmgr == NULL || ipc_send(P.qmgr, IMSG_DELIVERY_RESULT, r->id, -1, w.p, w.len) < 0)
        log_warn("cannot send the result of request %u to qmgr", r->id);
    ipc_w_free(&w);
}

static void on_exit_timer(evutil_socket_t fd, short what, void *arg)
{
    child_exit(P.c, 0);
}

/* Stopping: leave once the last job is done (QUITs of idle sessions get
 * a moment to leave). */
static void exit_when_idle(void)
{
    static struct event *ev;
    struct timeval tv = {0, 200000};

    if (!P.stopping || P.pend != NULL || ev != NULL)
        return;
    ev = evtimer_new(P.c->base, on_exit_timer, NULL);
    evtimer_add(ev, &tv);
}

static void pend_free(struct pend *p)
{
    if (p->sign_timer)
        event_free(p->sign_timer);
    if (p->sign_id) {
        dlv_req_free(&p->q);
        if (p->fd >= 0)
            close(p->fd);
    }
    free(p->dkim);
    free(p);
}

static void pend_remove(struct pend *p)
{
    for (struct pend **pp = &P.pend; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    pend_free(p);
}

static void on_done(const struct dlv_res *res, void *arg)
{
    struct pend *p = arg;

    if (p->gen == P.qgen && P.qmgr != NULL) {
        struct dlv_res r = *res;
        r.dkim = p->dkim;
        send_result(&r);
    } else
        log_info("result of request %u dropped: qmgr restarted since", p->id);
    pend_remove(p);
    exit_when_idle();
}

/* Cancel the jobs of an old qmgr channel. */
static void cancel_gen(uint32_t gen)
{
    struct pend **pp = &P.pend;
    size_t n = 0;

    while (*pp) {
        struct pend *p = *pp;
        if (p->gen != gen) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        if (p->job)
            dlv_job_cancel(p->job);
        pend_free(p);
        n++;
    }
    if (n > 0)
        log_info("qmgr went away: %zu delivery job(s) cancelled", n);
    /* A new qmgr does not know our idle connections: counting them against
     * max_connections and max_deliveries starts afresh, so close them. */
    dlv_engine_close_idle(P.eng);
    exit_when_idle();
}

/* Every recipient of q gets one temporary local result. */
static void refuse(const struct dlv_req *q, const char *why)
{
    struct dlv_tally t;
    struct dlv_res r;

    dlv_tally_init(&t, q);
    dlv_tally_set_open(&t, DLV_TEMP, DLV_CLASS_LOCAL, DLV_STEP_NONE, 0, "4.3.0", why);
    memset(&r, 0, sizeof(r));
    r.id = q->id;
    r.relay = r.label = (char[]){""};
    r.host_index = -1;
    r.r = t.r;
    r.n = t.n;
    send_result(&r);
    dlv_tally_free(&t);
}

/* The credentials of each gateway of q, by its name (relay only). */
static void add_credentials(struct dlv_req *q)
{
    for (size_t i = 0; i < q->nhosts; i++) {
        struct dlv_host *h = &q->hosts[i];
        const char *user, *pass;
        if (h->label[0] == '\0' || !secrets_get(P.secrets, h->label, &user, &pass))
            continue;
        free(h->auth_user);
        free_secret(h->auth_pass);
        h->auth_user = xstrdup(user);
        h->auth_pass = xstrdup(pass);
    }
}

/* Tell qmgr which gateways have credentials (names only). */
static void send_gateway_auth(void)
{
    struct ipc_w w;

    if (!P.pol->secrets || P.qmgr == NULL)
        return;
    ipc_w_init(&w);
    secrets_encode_names(&w, P.secrets);
    ipc_send(P.qmgr, IMSG_GATEWAY_AUTH, 0, -1, w.p, w.len);
    ipc_w_free(&w);
}

/* New credentials from master (smtpctl reload). */
static void on_master_msg(struct child *c, const struct ipc_msg *m)
{
    struct secrets *s;

    if (m->fd >= 0)
        close(m->fd);
    if (m->type != IMSG_SECRETS || !P.pol->secrets)
        return;
    s = secrets_decode(m->body, m->len);
    explicit_bzero((void *)(uintptr_t)m->body, m->len);
    if (s == NULL) {
        log_warn("malformed credentials from master ignored; keeping the %zu we have",
                 secrets_count(P.secrets));
        return;
    }
    secrets_free(P.secrets);
    P.secrets = s;
    log_info("credentials for %zu gateway%s loaded", secrets_count(s),
             secrets_count(s) == 1 ? "" : "s");
    send_gateway_auth();
}

/* The signer answered, or will not: start the job, or defer it. */
static void sign_done(struct pend *p, const struct sign_rep *rep, const char *why)
{
    struct dlv_req q = p->q;
    int fd = p->fd;

    if (p->sign_timer) {
        event_free(p->sign_timer);
        p->sign_timer = NULL;
    }
    p->sign_id = 0;
    memset(&p->q, 0, sizeof(p->q));
    p->fd = -1;
    if (rep == NULL || rep->verdict == SIGN_DEFER) {
        char *text = xasprintf("DKIM: %s", rep ? rep->note : why);
        log_warn("%s: not sent now: %s", q.queue_id, text);
        if (p->gen == P.qgen)
            refuse(&q, text);
        free(text);
        dlv_req_free(&q);
        if (fd >= 0)
            close(fd);
        pend_remove(p);
        exit_when_idle();
        return;
    }
    if (rep->verdict == SIGN_SIGNED) {
        q.prefix_len = strlen(rep->fields);
        q.prefix = xstrdup(rep->fields);
        p->dkim = xasprintf("signed %s", rep->note);
    } else {
        p->dkim = xasprintf("unsigned (%s)", rep->note);
    }
    p->job = dlv_engine_start(P.eng, &q, fd, on_done, p);
}

/* The pending job waiting for signer request id; 0: any that waits. */
static struct pend *pend_by_sign_id(uint32_t id)
{
    for (struct pend *p = P.pend; p; p = p->next)
        if (p->sign_id != 0 && (id == 0 || p->sign_id == id))
            return p;
    return NULL;
}

static void on_sign_timer(evutil_socket_t fd, short what, void *arg)
{
    sign_done(arg, NULL, "the signer did not answer within 60 s");
}

static void on_signer_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    struct sign_rep rep;
    struct pend *p;

    if (m->fd >= 0)
        close(m->fd);
    if (m->type != IMSG_DKIM_SIGN_REP)
        return;
    p = m->id ? pend_by_sign_id(m->id) : NULL;
    if (p == NULL) {
        log_info("signer answered request %u, which is no longer waiting", m->id);
        return;
    }
    if (sign_rep_decode(m->body, m->len, &rep) < 0) {
        log_err("malformed answer from the signer for %s", p->q.queue_id);
        sign_done(p, NULL, "malformed answer from the signer");
        return;
    }
    sign_done(p, &rep, NULL);
    sign_rep_free(&rep);
}

/* The signer went away: what waited for it is deferred (ours, not counted). */
static void signer_lost(void)
{
    struct pend *p;

    while ((p = pend_by_sign_id(0)) != NULL)
        sign_done(p, NULL, "the signer restarted while signing it");
}

static void on_signer_close(struct ipc_chan *ch, void *arg)
{
    child_peer_closed(P.c, ch);
    if (ch == P.signer) {
        P.signer = NULL;
        signer_lost();
    }
    ipc_chan_free(ch);
}

/* Ask the signer for q's signatures; the job starts when it answers. */
static void sign_start(struct pend *p, struct dlv_req *q, int fd)
{
    struct sign_req sq;
    struct ipc_w w;
    struct timeval tv = {SIGN_TIMEOUT_S, 0};

    p->q = *q;
    memset(q, 0, sizeof(*q));
    p->fd = fd;
    if (++P.sign_seq == 0)
        P.sign_seq = 1;
    p->sign_id = P.sign_seq;
    if (P.signer == NULL || fd < 0) {
        sign_done(p, NULL, fd < 0 ? "no queue file to sign" : "the signer is not running");
        return;
    }
    sq.queue_id = p->q.queue_id;
    sq.msg_offset = p->q.msg_offset;
    sq.msg_size = p->q.msg_size;
    ipc_w_init(&w);
    sign_req_encode(&w, &sq);
    if (ipc_send(P.signer, IMSG_DKIM_SIGN_REQ, p->sign_id, fd, w.p, w.len) < 0) {
        ipc_w_free(&w);
        sign_done(p, NULL, "cannot reach the signer");
        return;
    }
    ipc_w_free(&w);
    p->sign_timer = evtimer_new(P.c->base, on_sign_timer, p);
    evtimer_add(p->sign_timer, &tv);
}

static void do_delivery(const struct ipc_msg *m)
{
    struct dlv_req q;
    struct pend *p;
    unsigned bit;

    if (dlv_req_decode(m->body, m->len, &q) < 0) {
        struct dlv_res r;
        log_err("malformed delivery request %u from qmgr", m->id);
        if (m->fd >= 0)
            close(m->fd);
        memset(&r, 0, sizeof(r));
        r.id = m->id;
        r.relay = r.label = (char[]){""};
        r.host_index = -1;
        send_result(&r);
        return;
    }
    bit = q.target == DLV_TARGET_MX ? DLV_ACCEPT_MX : DLV_ACCEPT_HOSTS;
    if (!(P.pol->accept & bit) || P.stopping) {
        log_warn("%s: %s refuses this request (%s)", q.queue_id, P.pol->prog,
                 P.stopping ? "shutting down" : "target not handled here");
        refuse(&q, P.stopping ? "shutting down" : "delivery target not handled by this process");
        if (m->fd >= 0)
            close(m->fd);
        dlv_req_free(&q);
        return;
    }
    if (P.pol->secrets)
        add_credentials(&q);
    p = xcalloc(1, sizeof(*p));
    p->id = q.id;
    p->gen = P.qgen;
    p->fd = -1;
    p->next = P.pend;
    P.pend = p;
    if (q.dkim) {
        sign_start(p, &q, m->fd);
        return;
    }
    p->job = dlv_engine_start(P.eng, &q, m->fd, on_done, p);
}

static void on_qmgr_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    switch (m->type) {
    case IMSG_DELIVERY:
        do_delivery(m);
        break;
    default:
        log_warn("qmgr sent message type %u, which %s does not handle", m->type, P.pol->prog);
        if (m->fd >= 0)
            close(m->fd);
    }
}

static void on_qmgr_close(struct ipc_chan *ch, void *arg)
{
    child_peer_closed(P.c, ch);
    if (ch == P.qmgr) {
        P.qmgr = NULL;
        cancel_gen(P.qgen);
        P.qgen++;
    }
    ipc_chan_free(ch);
}

static void on_dnsd_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    if (dnsc_dispatch(ch, m))
        return;
    log_warn("dnsd sent message type %u, which %s does not handle", m->type, P.pol->prog);
    if (m->fd >= 0)
        close(m->fd);
}

static void on_dnsd_close(struct ipc_chan *ch, void *arg)
{
    child_peer_closed(P.c, ch);
    if (ch == P.dnsd) {
        P.dnsd = NULL;
        dlv_engine_set_dns(P.eng, NULL);
    }
    dnsc_chan_lost(ch);
    ipc_chan_free(ch);
}

static void on_peer(struct child *c, const char *name, int fd)
{
    if (strcmp(name, "qmgr") == 0) {
        struct ipc_chan *old = P.qmgr;
        P.qmgr = NULL;
        if (old) {
            cancel_gen(P.qgen);
            ipc_chan_free(old);
        }
        P.qgen++;
        P.qmgr =
            ipc_chan_new(c->base, fd, "qmgr", &proto_qmgr_to_dlv, on_qmgr_msg, on_qmgr_close, NULL);
        send_gateway_auth();
    } else if (strcmp(name, "dnsd") == 0) {
        struct ipc_chan *old = P.dnsd;
        P.dnsd = ipc_chan_new(c->base, fd, "dnsd", &proto_dnsd_to_client, on_dnsd_msg,
                              on_dnsd_close, NULL);
        dlv_engine_set_dns(P.eng, P.dnsd);
        if (old) {
            dnsc_chan_lost(old); /* lookups in flight fail as temporary */
            ipc_chan_free(old);
        }
    } else if (strcmp(name, "signer") == 0) {
        struct ipc_chan *old = P.signer;
        P.signer = ipc_chan_new(c->base, fd, "signer", &proto_signer_to_dlv, on_signer_msg,
                                on_signer_close, NULL);
        if (old) {
            ipc_chan_free(old);
            signer_lost(); /* what the old one had is asked again later, not lost */
        }
    } else {
        log_warn("unexpected peer channel %s", name);
        close(fd);
    }
}

static int on_reload(struct child *c, char **err)
{
    struct dlv_engine_opts o;

    engine_opts(&o);
    dlv_engine_set_opts(P.eng, &o);
    return 0;
}

static void on_shutdown(struct child *c)
{
    P.stopping = 1;
    dlv_engine_close_idle(P.eng);
    exit_when_idle();
}

/* At start, as root before the drop: the map where the admin keeps it. */
static void load_secrets(void)
{
    char *err = NULL;

    if (secrets_load(cfg_str(P.c->cfg, P_relay_secrets_map), &P.secrets, &err) < 0) {
        log_err("relay_secrets_map: %s; gateways get no AUTH until smtpctl reload", err);
        free(err);
        P.secrets = secrets_decode("\0\0\0\0", 4); /* empty */
        return;
    }
    if (secrets_count(P.secrets))
        log_debug("credentials for %zu gateway(s) loaded", secrets_count(P.secrets));
}

/* ---- smtpctl tls check: the probe (tls_probe.h) ---- */

struct probe_reply {
    struct child *c;
    uint32_t token;
};

static void probe_done(int code, const char *text, void *arg)
{
    struct probe_reply *r = arg;

    child_ctl_reply(r->c, r->token, code, text);
    free(r);
}

static int on_ctl(struct child *c, int argc, char **argv, unsigned flags, struct buf *out)
{
    struct tls_probe_env env = {
        .base = c->base,
        .dns = P.dnsd,
        .ssl_ctx = P.ctx,
        .helo_name = cfg_myhostname(c->cfg),
        .connect_timeout = (int)cfg_num(c->cfg, P_smtp_connect_timeout),
        .timeout = (int)cfg_num(c->cfg, P_smtp_timeout),
    };
    struct probe_reply *r;
    int json = (flags & CTL_F_JSON) != 0;
    char *args[64];
    int na = 0;

    for (int i = 0; i < argc && na < (int)nitems(args); i++)
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else
            args[na++] = argv[i];
    if (na < 2 || strcmp(args[0], "tls") != 0 || strcmp(args[1], "probe") != 0) {
        buf_adds(out, "usage: tls probe [--tls MODE] [--sts] [--port N] mx|host NAME\n");
        return 2;
    }
    r = xmalloc(sizeof(*r));
    r->c = c;
    r->token = child_ctl_defer(c);
    if (tls_probe_start(&env, na, args, json, probe_done, r, out) != 0) {
        free(r); /* bad words: the usage is the answer, now */
        return 2;
    }
    return CHILD_CTL_LATER;
}

int dlv_proc_main(int argc, char **argv, const struct dlv_proc_policy *pol)
{
    static struct child_spec spec;
    struct dlv_engine_opts o;
    char *err = NULL;
    int rc;

    spec.prog = pol->prog;
    spec.root = CHILD_ROOT_EMPTY;
    spec.peer = on_peer;
    spec.reload = on_reload;
    spec.shutdown = on_shutdown;
    spec.ctl = on_ctl;
    if (pol->secrets) {
        spec.from_master = &proto_master_to_relay;
        spec.master_msg = on_master_msg;
    }
    P.pol = pol;
    P.c = child_init(argc, argv, &spec);
    srandom((unsigned)(getpid() ^ now_us()));
    /* The CA bundle cannot be read after chroot. */
    P.ctx = smtpc_tls_ctx_new(cfg_str(P.c->cfg, P_tls_ca_file), &err);
    if (P.ctx == NULL) {
        log_err("outbound TLS unavailable: %s", err);
        free(err);
    }
    if (pol->secrets)
        load_secrets();
    child_drop(P.c);
    engine_opts(&o);
    P.eng = dlv_engine_new(&o);
    rc = child_loop(P.c);
    while (P.pend) {
        struct pend *p = P.pend;
        P.pend = p->next;
        if (p->job)
            dlv_job_cancel(p->job);
        pend_free(p);
    }
    dlv_engine_free(P.eng);
    secrets_free(P.secrets);
    if (P.ctx)
        SSL_CTX_free(P.ctx);
    return rc;
}
