/*
 * proto - the message types that travel over Postern's IPC channels and
 * the layout of each body (ipc.h encodes the primitives).
 *
 * Each pair of processes has its own range so that the owner of a
 * protocol can add types without touching another's. A body layout is
 * written next to its type as a sequence of ipc_w_* fields; the receiver
 * reads the same sequence and rejects the frame unless ipc_r_done().
 *
 * Topology (DESIGN section 1): master <-> every child; smtpd <-> qmgr;
 * qmgr <-> deliver; qmgr <-> relay; qmgr <-> local; deliver <-> dnsd;
 * relay <-> dnsd; deliver <-> signer; relay <-> signer; qmgr <-> signer
 * (DKIM, docs/dkim.md).
 * Master creates every socketpair; when a child is restarted master makes
 * new pairs for its edges and hands the far end to the live peer with
 * IMSG_PEER.
 */
#ifndef POSTERN_PROTO_H
#define POSTERN_PROTO_H

#include "base/ipc.h"

#define POSTERN_VERSION "0.1.0"

enum ipc_type {
    /* master <-> any child: 1..99 */
    IMSG_STATUS_REQ = 1,    /* master->child: empty */
    IMSG_STATUS_REP = 2,    /* child->master: u32 pid, i64 started_us, str version, str state */
    IMSG_PEER = 3,          /* master->child, with fd: str peer_name */
    IMSG_RELOAD = 4,        /* master->child: str main_cf_path, str text, u32 n, n x str override */
    IMSG_RELOAD_REP = 5,    /* child->master: u32 ok(1/0), str error */
    IMSG_LOGLEVEL = 6,      /* master->child: u32 level */
    IMSG_CTL_REQ = 7,       /* master->child: u32 flags (CTL_F_*), u32 argc, argc x str */
    IMSG_CTL_REP = 8,       /* child->master: u32 exit_code, str output */
    IMSG_SHUTDOWN = 9,      /* master->child: empty; finish and exit 0 */
    IMSG_SECRETS = 10,      /* master->relay only: the gateway credentials (layout in secrets.h) */
    IMSG_PEER_BROKEN = 11,  /* child->master: str peer_name, str why; restart that peer */
    IMSG_TLS_CERT = 12,     /* master->smtpd only, before IMSG_RELOAD: str cert_pem, str key_pem
                               ("" "": no STARTTLS); see mail/tls_server.h */
    IMSG_STATS_DNSD = 13,   /* dnsd->master: its counters (mail/stats.h), once a second */
    IMSG_STATS_MASTER = 14, /* master->qmgr only: restarts and dnsd's counters (mail/stats.h) */
    IMSG_DKIM_KEYS = 15,    /* master->signer only, on reload: the dkim_map and its keys
                               (layout in mail/dkim_keys.h) */

    /* smtpd <-> qmgr: 100..199 */
    IMSG_QUEUE_NEW = 100,   /* smtpd->qmgr: str queue_id (file is in queue/) */
    IMSG_QUEUE_FREE = 101,  /* qmgr->smtpd: u32 n, n x str name (files moved to free/) */
    IMSG_STATS_SMTPD = 102, /* smtpd->qmgr: its counters (mail/stats.h), once a second */

    /* qmgr <-> deliver / relay: 200..299 (layouts in common/mail/dlv_proto.h) */
    IMSG_DELIVERY = 200,        /* qmgr->deliver|relay, with the message fd */
    IMSG_DELIVERY_RESULT = 201, /* deliver|relay->qmgr */
    IMSG_GATEWAY_AUTH = 202,    /* relay->qmgr: u32 n, n x str gateway (names with credentials) */
    /* qmgr <-> local takes IMSG_DELIVERY (DLV_TARGET_LOCAL) and answers
     * IMSG_DELIVERY_RESULT, after an IMSG_QUEUE_NEW (str queue_id) for
     * each message it queued itself (mail forwarded by an alias or a
     * .forward, docs/local.md) */

    /* deliver|relay <-> dnsd: 300..399 (layouts in common/mail/dns_proto.h) */
    IMSG_DNS_MX_REQ = 300,
    IMSG_DNS_HOST_REQ = 301,
    IMSG_DNS_REP = 302,

    /* deliver|relay|qmgr <-> signer: 400..499 (layouts in common/mail/sign_proto.h) */
    IMSG_DKIM_SIGN_REQ = 400,   /* deliver|relay->signer, with the queue file fd */
    IMSG_DKIM_SIGN_REP = 401,   /* signer->deliver|relay */
    IMSG_DKIM_STATUS_REQ = 402, /* qmgr->signer: empty */
    IMSG_DKIM_STATUS = 403,     /* signer->qmgr: the keys it holds, no key material */
};

/*
 * What each side may send on each edge (ipc.h: any other type closes the
 * channel). Every daemon channel is made with one of these; a type not
 * listed for an edge never reaches that edge's handler.
 */
extern const struct ipc_allow proto_master_to_child; /* what a child takes from master */
extern const struct ipc_allow proto_master_to_relay; /* the same plus IMSG_SECRETS */
extern const struct ipc_allow proto_master_to_smtpd; /* the same plus IMSG_TLS_CERT */
extern const struct ipc_allow proto_master_to_qmgr;  /* the same plus IMSG_STATS_MASTER */
extern const struct ipc_allow proto_child_to_master;
extern const struct ipc_allow proto_dnsd_to_master; /* the same plus IMSG_STATS_DNSD */
extern const struct ipc_allow proto_ctl_to_master;  /* smtpctl's control socket */
extern const struct ipc_allow proto_smtpd_to_qmgr;
extern const struct ipc_allow proto_qmgr_to_smtpd;
extern const struct ipc_allow proto_qmgr_to_dlv; /* to deliver and to relay */
extern const struct ipc_allow proto_deliver_to_qmgr;
extern const struct ipc_allow proto_relay_to_qmgr;
extern const struct ipc_allow proto_qmgr_to_local;
extern const struct ipc_allow proto_local_to_qmgr;
extern const struct ipc_allow proto_dnsd_to_client; /* to deliver and relay */
extern const struct ipc_allow proto_client_to_dnsd;
extern const struct ipc_allow proto_master_to_signer; /* the child set plus IMSG_DKIM_KEYS */
extern const struct ipc_allow proto_dlv_to_signer;    /* from deliver and relay */
extern const struct ipc_allow proto_signer_to_dlv;
extern const struct ipc_allow proto_qmgr_to_signer;
extern const struct ipc_allow proto_signer_to_qmgr;

/* IMSG_CTL_REQ flags */
#define CTL_F_JSON 0x1u

#endif
