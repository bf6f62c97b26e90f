/*
 * mail_proto - unit tests of the per-edge message type sets (proto.c):
 * every type that exists, on every edge, is allowed exactly where the
 * topology says its sender sends it, and nowhere else. The table below
 * is written from DESIGN section 1 and proto.h's comments, not from
 * proto.c, so a type added to the wrong edge fails here.
 */
#include <stdint.h>
#include <string.h>

#include "mail/proto.h"
#include "tap.h"
#include "base/util.h"

struct edge {
    const struct ipc_allow *a;
    const char *name;
    uint16_t want[8]; /* 0-terminated */
};

static const struct edge edges[] = {
    {&proto_master_to_child,
     "master to child",
     {IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD, IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN}},
    {&proto_master_to_relay,
     "master to relay",
     {IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD, IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN,
      IMSG_SECRETS}},
    {&proto_master_to_smtpd,
     "master to smtpd",
     {IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD, IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN,
      IMSG_TLS_CERT}},
    {&proto_master_to_qmgr,
     "master to qmgr",
     {IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD, IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN,
      IMSG_STATS_MASTER}},
    {&proto_child_to_master,
     "child to master",
     {IMSG_STATUS_REP, IMSG_RELOAD_REP, IMSG_CTL_REP, IMSG_PEER_BROKEN}},
    {&proto_dnsd_to_master,
     "dnsd to master",
     {IMSG_STATUS_REP, IMSG_RELOAD_REP, IMSG_CTL_REP, IMSG_PEER_BROKEN, IMSG_STATS_DNSD}},
    {&proto_ctl_to_master, "smtpctl to master", {IMSG_CTL_REQ}},
    {&proto_smtpd_to_qmgr, "smtpd to qmgr", {IMSG_QUEUE_NEW, IMSG_STATS_SMTPD}},
    {&proto_qmgr_to_smtpd, "qmgr to smtpd", {IMSG_QUEUE_FREE}},
    {&proto_qmgr_to_dlv, "qmgr to deliver/relay", {IMSG_DELIVERY}},
    {&proto_deliver_to_qmgr, "deliver to qmgr", {IMSG_DELIVERY_RESULT}},
    {&proto_relay_to_qmgr, "relay to qmgr", {IMSG_DELIVERY_RESULT, IMSG_GATEWAY_AUTH}},
    {&proto_qmgr_to_local, "qmgr to local", {IMSG_DELIVERY}},
    {&proto_local_to_qmgr, "local to qmgr", {IMSG_DELIVERY_RESULT, IMSG_QUEUE_NEW}},
    {&proto_dnsd_to_client, "dnsd to deliver/relay", {IMSG_DNS_REP}},
    {&proto_client_to_dnsd, "deliver/relay to dnsd", {IMSG_DNS_MX_REQ, IMSG_DNS_HOST_REQ}},
    {&proto_master_to_signer,
     "master to signer",
     {IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD, IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN,
      IMSG_DKIM_KEYS}},
    {&proto_dlv_to_signer, "deliver/relay to signer", {IMSG_DKIM_SIGN_REQ}},
    {&proto_signer_to_dlv, "signer to deliver/relay", {IMSG_DKIM_SIGN_REP}},
    {&proto_qmgr_to_signer, "qmgr to signer", {IMSG_DKIM_STATUS_REQ}},
    {&proto_signer_to_qmgr, "signer to qmgr", {IMSG_DKIM_STATUS}},
};

static int wanted(const struct edge *e, unsigned t)
{
    for (size_t i = 0; i < nitems(e->want) && e->want[i]; i++)
        if (e->want[i] == t)
            return 1;
    return 0;
}

int main(void)
{
    plan_lazy();
    for (size_t i = 0; i < nitems(edges); i++) {
        const struct edge *e = &edges[i];
        unsigned bad = 0, first_bad = 0;
        is_str(e->a->what, e->name, "edge %zu is named for the log", i);
        for (unsigned t = 0; t <= 0xffff; t++)
            if (ipc_allowed(e->a, (uint16_t)t) != wanted(e, t)) {
                if (bad++ == 0)
                    first_bad = t;
            }
        ok(bad == 0, "%s: exactly its own types pass (first wrong: %u)", e->name, first_bad);
    }
    /* The breaches the review named, spelled out. */
    ok(!ipc_allowed(&proto_smtpd_to_qmgr, IMSG_DELIVERY_RESULT),
       "smtpd cannot send qmgr a delivery result");
    ok(!ipc_allowed(&proto_deliver_to_qmgr, IMSG_QUEUE_NEW), "deliver cannot announce a message");
    ok(!ipc_allowed(&proto_deliver_to_qmgr, IMSG_GATEWAY_AUTH),
       "only relay tells qmgr which gateways have credentials");
    ok(!ipc_allowed(&proto_local_to_qmgr, IMSG_GATEWAY_AUTH), "local holds no credentials");
    ok(!ipc_allowed(&proto_qmgr_to_local, IMSG_QUEUE_FREE),
       "local is given no spool files to reuse");
    ok(!ipc_allowed(&proto_master_to_child, IMSG_SECRETS), "secrets go to relay only");
    ok(!ipc_allowed(&proto_master_to_child, IMSG_DKIM_KEYS) &&
           !ipc_allowed(&proto_master_to_smtpd, IMSG_DKIM_KEYS) &&
           !ipc_allowed(&proto_master_to_relay, IMSG_DKIM_KEYS),
       "the DKIM keys go to the signer only");
    ok(!ipc_allowed(&proto_smtpd_to_qmgr, IMSG_DKIM_SIGN_REQ) &&
           !ipc_allowed(&proto_signer_to_qmgr, IMSG_DKIM_SIGN_REP),
       "only deliver and relay talk signing with the signer");
    ok(!ipc_allowed(&proto_signer_to_dlv, IMSG_DKIM_STATUS), "deliver and relay get no key list");
    ok(!ipc_allowed(&proto_master_to_smtpd, IMSG_SECRETS), "not to smtpd");
    ok(!ipc_allowed(&proto_master_to_relay, IMSG_TLS_CERT), "the TLS key goes to smtpd only");
    ok(!ipc_allowed(&proto_child_to_master, IMSG_CTL_REQ), "a child cannot run control commands");
    ok(!ipc_allowed(&proto_client_to_dnsd, IMSG_DNS_REP), "a dnsd client cannot answer dnsd");
    ok(!ipc_allowed(&proto_child_to_master, IMSG_STATS_DNSD),
       "only dnsd's channel to master carries its counters");
    ok(!ipc_allowed(&proto_master_to_child, IMSG_STATS_MASTER) &&
           !ipc_allowed(&proto_master_to_smtpd, IMSG_STATS_MASTER),
       "master's counters go to qmgr only");
    ok(!ipc_allowed(&proto_deliver_to_qmgr, IMSG_STATS_SMTPD) &&
           !ipc_allowed(&proto_relay_to_qmgr, IMSG_STATS_SMTPD),
       "only smtpd sends qmgr smtpd's counters");
    return done_testing();
}
