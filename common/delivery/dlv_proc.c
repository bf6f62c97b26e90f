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
#include "mail/dns_proto.h"
#include "base/ipc.h"
#include "base/log.h"
#include "mail/proto.h"
#include "mail/secrets.h"
#include "base/util.h"

/* One job on its way, tied to the qmgr channel it came from. */
struct pend {
    struct pend *next;
    struct dlv_job *job;
    uint32_t id;
    uint32_t gen; /* qmgr channel generation */
};

static struct {
    const struct dlv_proc_policy *pol;
    struct child *c;
    struct dlv_engine *eng;
    SSL_CTX *ctx;
    struct ipc_chan *qmgr, *dnsd;
    uint32_t qgen;
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

static void pend_remove(struct pend *p)
{
    for (struct pend **pp = &P.pend; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    free(p);
}

static void on_done(const struct dlv_res *res, void *arg)
{
    struct pend *p = arg;

    if (p->gen == P.qgen && P.qmgr != NULL)
        send_result(res);
    else
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
        dlv_job_cancel(p->job);
        free(p);
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
    p->next = P.pend;
    P.pend = p;
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
        dlv_job_cancel(p->job);
        free(p);
    }
    dlv_engine_free(P.eng);
    secrets_free(P.secrets);
    if (P.ctx)
        SSL_CTX_free(P.ctx);
    return rc;
}
