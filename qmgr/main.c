/*
 * qmgr - the queue manager (DESIGN sections 3 and 4): owns queue/, hold/
 * and the Berkeley DB state in db/, schedules deliveries and hands them
 * to deliver (direct) or relay (through the gateways) with the open
 * queue file.
 *
 * Peers: smtpd announces new messages (IMSG_QUEUE_NEW) and gets back the
 * names of queue files it may reuse (IMSG_QUEUE_FREE, recycle.c); deliver and
 * relay take IMSG_DELIVERY and answer IMSG_DELIVERY_RESULT. When one of
 * them restarts, its deliveries in flight are scheduled again (the
 * destination may get a duplicate; mail is never lost). This file only
 * wires the channels, reload and shutdown to the modules qmgr.h lists;
 * qmgr.h also describes the model.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "mail/child.h"
#include "mail/dlv_proto.h"
#include "base/ipc.h"
#include "base/log.h"
#include "policy.h"
#include "mail/proto.h"
#include "mail/secrets.h"
#include "qmgr.h"
#include "qstate.h"
#include "mail/spool.h"
#include "strmap.h"

static void load_policy(struct qmgr *q, const struct config *cfg)
{
    q->pol.direct_attempts = cfg_num(cfg, P_direct_attempts);
    q->pol.relay_attempts = cfg_num(cfg, P_relay_attempts);
    q->pol.max_queue_lifetime = cfg_num(cfg, P_max_queue_lifetime);
    q->pol.delay_warning_time = cfg_num(cfg, P_delay_warning_time);
    q->pol.retry_delay = cfg_num(cfg, P_retry_delay);
    q->pol.retry_delay_max = cfg_num(cfg, P_retry_delay_max);
    q->pol.max_connections = cfg_num(cfg, P_max_connections);
    q->pol.tls = (int)cfg_num(cfg, P_tls); /* none may encrypt verify = enum tls_mode */
    q->pol.port = (int)cfg_num(cfg, P_direct_port);
    q->max_deliveries = cfg_num(cfg, P_max_deliveries);
    q->per_conn = cfg_num(cfg, P_messages_per_connection);
    q->mta_sts = cfg_num(cfg, P_mta_sts) != 0;
    q->recycle_max = cfg_num(cfg, P_queue_file_recycle);
}

static void drop_chan(struct qmgr *q, struct ipc_chan *ch)
{
    if (ch == q->deliver || ch == q->relay || ch == q->local)
        dispatch_peer_lost(q, ch);
    if (ch == q->local)
        q->local = NULL;
    if (ch == q->deliver)
        q->deliver = NULL;
    if (ch == q->relay)
        q->relay = NULL;
    if (ch == q->smtpd)
        q->smtpd = NULL;
    ipc_chan_free(ch);
}

static void on_peer_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    struct qmgr *q = arg;

    switch (m->type) {
    case IMSG_QUEUE_NEW: {
        struct ipc_r r;
        const char *id;
        ipc_r_init(&r, m->body, m->len);
        id = ipc_r_str(&r);
        if (ipc_r_done(&r))
            queue_new(q, id);
        else
            log_warn("%s sent a malformed IMSG_QUEUE_NEW", ipc_chan_name(ch));
        break;
    }
    case IMSG_STATS_SMTPD: /* only smtpd's channel carries it (proto.c) */
        if (metrics_take_smtpd(q, m) < 0)
            log_warn("%s sent malformed counters (%zu bytes)", ipc_chan_name(ch), m->len);
        break;
    case IMSG_GATEWAY_AUTH: { /* only relay's channel carries it (proto.c) */
        char **names = secrets_decode_names(m->body, m->len);
        if (names)
            routing_set_auth(q, names);
        else
            log_warn("%s sent a malformed IMSG_GATEWAY_AUTH", ipc_chan_name(ch));
        break;
    }
    case IMSG_DELIVERY_RESULT:
        if (dispatch_result(q, ch, m) < 0) {
            child_peer_broken(q->c, ipc_chan_name(ch), "it sent a delivery result not its own");
            drop_chan(q, ch);
        }
        return;
    default:
        log_warn("%s sent message type %u, which qmgr does not handle", ipc_chan_name(ch), m->type);
        break;
    }
    if (m->fd >= 0)
        close(m->fd);
}

static void on_peer_close(struct ipc_chan *ch, void *arg)
{
    struct qmgr *q = arg;

    log_info("%s channel closed", ipc_chan_name(ch));
    child_peer_closed(q->c, ch);
    drop_chan(q, ch);
}

static void on_peer(struct child *c, const char *name, int fd)
{
    struct qmgr *q = c->arg;
    struct ipc_chan **slot;
    const struct ipc_allow *allow;

    if (strcmp(name, "deliver") == 0) {
        slot = &q->deliver;
        allow = &proto_deliver_to_qmgr;
    } else if (strcmp(name, "relay") == 0) {
        slot = &q->relay;
        allow = &proto_relay_to_qmgr;
    } else if (strcmp(name, "local") == 0) {
        slot = &q->local;
        allow = &proto_local_to_qmgr;
    } else if (strcmp(name, "signer") == 0) {
        qdkim_peer(q, fd);
        return;
    } else if (strcmp(name, "smtpd") == 0) {
        slot = &q->smtpd;
        allow = &proto_smtpd_to_qmgr;
    } else {
        log_warn("unexpected peer %s; channel closed", name);
        close(fd);
        return;
    }
    if (*slot)
        drop_chan(q, *slot);
    *slot = ipc_chan_new(c->base, fd, name, allow, on_peer_msg, on_peer_close, q);
    log_debug("%s channel up", name);
    qmgr_kick(q);
}

static void on_master_msg(struct child *c, const struct ipc_msg *m)
{
    struct qmgr *q = c->arg;

    if (m->fd >= 0)
        close(m->fd);
    if (m->type == IMSG_STATS_MASTER && metrics_take_master(q, m) < 0)
        log_warn("master sent malformed counters (%zu bytes)", m->len);
}

static int on_reload(struct child *c, char **err)
{
    struct qmgr *q = c->arg;

    load_policy(q, c->cfg);
    routing_reload(q);
    qdkim_reload(q);
    qmgr_kick(q);
    return 0;
}

static void on_shutdown(struct child *c)
{
    struct qmgr *q = c->arg;

    q->stopping = 1;
    metrics_stop(q);
    store_flush(q);
    if (q->nactive == 0)
        child_exit(c, 0);
    else
        log_info("waiting up to a few seconds for %u deliver%s in flight", q->nactive,
                 q->nactive == 1 ? "y" : "ies");
}

static const char *on_state(struct child *c)
{
    struct qmgr *q = c->arg;

    return q && q->paused ? "delivery paused" : NULL;
}

static const struct child_spec spec = {
    .prog = "qmgr",
    .state = on_state,
    .root = CHILD_ROOT_SPOOL,
    .from_master = &proto_master_to_qmgr,
    .peer = on_peer,
    .master_msg = on_master_msg,
    .reload = on_reload,
    .ctl = qmgr_ctl,
    .shutdown = on_shutdown,
};

int main(int argc, char **argv)
{
    struct child *c = child_init(argc, argv, &spec);
    struct qmgr *q = xcalloc(1, sizeof(*q));
    char *err = NULL;
    int rc;

    child_drop(c);
    c->arg = q;
    q->c = c;
    q->base = c->base;
    q->started_us = now_us();
    metrics_init(q);
    q->msgs = strmap_new();
    q->dests = strmap_new();
    q->tlsrpt = tlsrpt_new((int64_t)time(NULL));
    sched_init(&q->sched);
    TAILQ_INIT(&q->run);
    TAILQ_INIT(&q->dlv);
    load_policy(q, c->cfg);
    qdkim_init(q);
    if (routing_init(q) < 0)
        return 1; /* never route without the rules: master restarts us */
    q->db = qstate_open(SPOOL_DB, &err);
    if (q->db == NULL) {
        log_err("cannot open the state database in %s/: %s", SPOOL_DB, err);
        return 1;
    }
    dispatch_init(q);
    store_init(q);
    if (store_paused_since(q) != 0) {
        q->paused = 1;
        log_warn("delivery is paused (by smtpctl pause delivery, before this qmgr started); "
                 "smtpctl resume delivery resumes it");
    }
    notice_init(q);
    recycle_start(q);
    queue_start(q);
    if (metrics_start(q) < 0)
        log_err("metrics: cannot serve the metrics_listen socket; no metrics");
    rc = child_loop(c);
    metrics_stop(q);
    qdkim_free(q);
    recycle_close(q);
    store_close(q);
    notice_close(q);
    routing_free(q);
    return rc;
}
