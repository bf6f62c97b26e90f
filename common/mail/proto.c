/*
 * proto - the per-edge sets of message types (proto.h). One table per
 * direction of each edge of DESIGN section 1's topology; a process makes
 * each channel with the set its peer may send.
 */
#include "mail/proto.h"

#define ALLOW(name, what, ...)                                                                     \
    static const uint16_t name##_types[] = {__VA_ARGS__};                                          \
    const struct ipc_allow name = {what, name##_types, sizeof(name##_types) / sizeof(uint16_t)}

ALLOW(proto_master_to_child, "master to child", IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD,
      IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN);
ALLOW(proto_master_to_relay, "master to relay", IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD,
      IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN, IMSG_SECRETS);
ALLOW(proto_master_to_smtpd, "master to smtpd", IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD,
      IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN, IMSG_TLS_CERT);
ALLOW(proto_master_to_qmgr, "master to qmgr", IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD,
      IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN, IMSG_STATS_MASTER);
ALLOW(proto_child_to_master, "child to master", IMSG_STATUS_REP, IMSG_RELOAD_REP, IMSG_CTL_REP,
      IMSG_PEER_BROKEN);
ALLOW(proto_dnsd_to_master, "dnsd to master", IMSG_STATUS_REP, IMSG_RELOAD_REP, IMSG_CTL_REP,
      IMSG_PEER_BROKEN, IMSG_STATS_DNSD);
ALLOW(proto_ctl_to_master, "smtpctl to master", IMSG_CTL_REQ);
ALLOW(proto_smtpd_to_qmgr, "smtpd to qmgr", IMSG_QUEUE_NEW, IMSG_STATS_SMTPD);
ALLOW(proto_qmgr_to_smtpd, "qmgr to smtpd", IMSG_QUEUE_FREE);
ALLOW(proto_qmgr_to_dlv, "qmgr to deliver/relay", IMSG_DELIVERY);
ALLOW(proto_deliver_to_qmgr, "deliver to qmgr", IMSG_DELIVERY_RESULT);
ALLOW(proto_relay_to_qmgr, "relay to qmgr", IMSG_DELIVERY_RESULT, IMSG_GATEWAY_AUTH);
ALLOW(proto_qmgr_to_local, "qmgr to local", IMSG_DELIVERY);
ALLOW(proto_local_to_qmgr, "local to qmgr", IMSG_DELIVERY_RESULT, IMSG_QUEUE_NEW);
ALLOW(proto_dnsd_to_client, "dnsd to deliver/relay", IMSG_DNS_REP);
ALLOW(proto_client_to_dnsd, "deliver/relay to dnsd", IMSG_DNS_MX_REQ, IMSG_DNS_HOST_REQ);
ALLOW(proto_master_to_signer, "master to signer", IMSG_STATUS_REQ, IMSG_PEER, IMSG_RELOAD,
      IMSG_LOGLEVEL, IMSG_CTL_REQ, IMSG_SHUTDOWN, IMSG_DKIM_KEYS);
ALLOW(proto_dlv_to_signer, "deliver/relay to signer", IMSG_DKIM_SIGN_REQ);
ALLOW(proto_signer_to_dlv, "signer to deliver/relay", IMSG_DKIM_SIGN_REP);
ALLOW(proto_qmgr_to_signer, "qmgr to signer", IMSG_DKIM_STATUS_REQ);
ALLOW(proto_signer_to_qmgr, "signer to qmgr", IMSG_DKIM_STATUS);
