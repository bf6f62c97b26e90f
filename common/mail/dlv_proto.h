/*
 * dlv_proto - what qmgr asks deliver and relay to do, and what they answer
 * (IMSG_DELIVERY / IMSG_DELIVERY_RESULT, proto.h).
 *
 * One delivery = one SMTP transaction to one destination for the
 * recipients of one domain (DESIGN section 4). The request travels with
 * the open queue file as its fd; the message is msg_size bytes at
 * msg_offset in it (the envelope before it is never sent).
 *
 * Targets:
 *   DLV_TARGET_MX     look up the MX set of `domain` through dnsd (with
 *                     `mx_override` as dnsd's override list when not
 *                     empty) and try hosts by preference on `port`;
 *   DLV_TARGET_HOSTS  try `hosts` in the order given (a static route, or
 *                     relay gateways in priority/rotation order), each on
 *                     its own port, TLS mode and credentials, until one
 *                     takes the message.
 *   DLV_TARGET_LOCAL  deliver on this host (local, docs/local.md): the
 *                     recipients are of a mydestination domain; aliases,
 *                     .forward, mailboxes. No hosts, no reuse key.
 *
 * The answer has one result per recipient (same idx as the request) with
 * status, error class and the step that failed, plus which host took it
 * (or was tried last). Connection reuse (issue 7): a request names a
 * destination key; an idle connection to the same key may carry it, up
 * to max_per_conn messages per connection, and is closed after
 * idle_timeout_s. A request that needs a new connection opens it no
 * sooner than connection_delay_ms after the last connection under its
 * key ended. The result says whether the delivery left its connection
 * idle under the key (conn_kept), so qmgr knows a connection is ready
 * for the destination's next message or that one has just ended.
 *
 * dlv_req_encode/dlv_req_decode and dlv_res_encode/dlv_res_decode are the
 * only code that knows the byte layout; decode fails (returns -1) on any
 * malformed body. Decoded structures own their strings: free them with
 * dlv_req_free / dlv_res_free.
 */
#ifndef POSTERN_DLV_PROTO_H
#define POSTERN_DLV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "base/ipc.h"
#include "mail/tls_mode.h"

enum dlv_target { DLV_TARGET_MX = 0, DLV_TARGET_HOSTS = 1, DLV_TARGET_LOCAL = 2 };
enum dlv_phase { DLV_PHASE_DIRECT = 0, DLV_PHASE_RELAY = 1 };
/* Outbound TLS modes, as main.cf's tls = none|may|encrypt|verify. */

#define DLV_NEED_8BITMIME 0x1u
#define DLV_NEED_SMTPUTF8 0x2u

struct dlv_host {
    char *name;    /* host name or literal address */
    uint16_t port; /* 0: the request's port */
    uint8_t tls;   /* enum tls_mode */
    char *label;   /* gateway name for logs and smtpctl show relays, or "" */
    /* AUTH: not part of the request on the wire (qmgr holds no secrets);
     * relay sets them from its secrets (secrets.h) by label. "" for none. */
    char *auth_user;
    char *auth_pass;
    uint8_t auth_plaintext_ok; /* AUTH allowed without TLS */
};

struct dlv_rcpt {
    uint32_t idx; /* recipient index in the queue file */
    char *addr;
    char *orcpt; /* "" if none */
    uint32_t notify;
};

struct dlv_req {
    uint32_t id;
    char *queue_id;
    uint64_t msg_offset, msg_size;
    char *sender;  /* "" for <> */
    char *envid;   /* "" if none */
    uint8_t ret;   /* enum dsn_ret */
    uint32_t need; /* DLV_NEED_* */
    char *domain;
    uint8_t phase;      /* enum dlv_phase, for logs */
    uint32_t attempt;   /* attempt number within the phase, from 1 */
    uint8_t target;     /* enum dlv_target */
    uint8_t tls;        /* enum tls_mode for MX targets */
    uint16_t port;      /* MX port (direct_port) and default for hosts */
    char **mx_override; /* NULL-terminated; may be empty */
    struct dlv_host *hosts;
    size_t nhosts;
    struct dlv_rcpt *rcpts;
    size_t nrcpts;
    char *dest_key;        /* connection-reuse key ("" for none) */
    uint32_t max_per_conn; /* messages per connection (1: no reuse) */
    uint32_t idle_timeout_s;
    uint32_t connection_delay_ms; /* pause after a connection under dest_key ended */
    uint8_t dkim;                 /* the message may be DKIM-signed (a local or authenticated
                                     submission, or a notice of ours): deliver and relay ask
                                     the signer (docs/dkim.md) before they send it */
    uint8_t mta_sts;              /* main.cf's mta_sts: MX targets ask dnsd for the
                                     domain's MTA-STS policy and honour it (RFC 8461) */
    /* Not on the wire: what the signer added (DKIM-Signature fields, CR LF
     * ended), sent before the message; NULL when nothing. */
    char *prefix;
    size_t prefix_len;
};

enum dlv_status { DLV_OK = 0, DLV_TEMP = 1, DLV_PERM = 2 };
enum dlv_class {
    DLV_CLASS_NONE = 0,
    DLV_CLASS_DNS,
    DLV_CLASS_NETWORK,
    DLV_CLASS_TLS,
    DLV_CLASS_SMTP,
    DLV_CLASS_AUTH,
    DLV_CLASS_LOCAL,   /* our side: unreadable queue file, internal error */
    DLV_CLASS_MAILBOX, /* local delivery: the mailbox (quota, disk full, lock, no such user) */
};
enum dlv_step {
    DLV_STEP_NONE = 0,
    DLV_STEP_DNS,
    DLV_STEP_CONNECT,
    DLV_STEP_GREETING,
    DLV_STEP_HELO,
    DLV_STEP_STARTTLS,
    DLV_STEP_AUTH,
    DLV_STEP_MAIL,
    DLV_STEP_RCPT,
    DLV_STEP_DATA,
    DLV_STEP_DOT,
};

struct dlv_rcpt_res {
    uint32_t idx;
    uint8_t status; /* enum dlv_status */
    uint8_t cls;    /* enum dlv_class */
    uint8_t step;   /* enum dlv_step */
    uint16_t code;  /* SMTP reply code, 0 if none */
    char *dsn;      /* enhanced status code "4.4.1" */
    char *text;     /* reply text or our reason, printable */
};

/* The enhanced code of a recipient deferred because the delivery process
 * would not send a gateway's password without TLS (the host is not marked
 * plainauth and TLS was not in use): RFC 4954's "encryption required for
 * requested authentication mechanism", temporary. Its text says why TLS
 * was not in use; qmgr's log line says what to change. */
#define DLV_DSN_AUTH_NEEDS_TLS "4.7.11"

/*
 * One TLS session outcome for TLS reporting (RFC 8460 4.4): one per MX
 * host (or listed host) the delivery tried or skipped on a TLS policy,
 * in the order tried. qmgr counts them per policy domain.
 */
#define DLV_MAX_TLS_OUT 32
struct dlv_tls_out {
    char *policy_type;   /* "tlsa" "sts" "no-policy-found" */
    char *policy_domain; /* sts, no-policy-found: the recipient domain; tlsa: the TLSA
                            base domain (the host name) */
    char *policy_id;     /* sts: the policy's id; else "" */
    char *policy_string; /* sts: "mode: enforce; mx: mx.example.com; max_age: 86400";
                            tlsa: the usable records "3 1 1 <hex>; ..."; else "" */
    char *mx_host;       /* the host the session was with (or skipped) */
    char *result;        /* "success" or an RFC 8460 result-type: starttls-not-supported,
                            certificate-host-mismatch, certificate-expired,
                            certificate-not-trusted, validation-failure, tlsa-invalid,
                            dnssec-invalid, sts-policy-fetch-error, sts-policy-invalid,
                            sts-webpki-invalid */
    char *reason;        /* what failed, for the report's failure-reason-code; or "" */
};

struct dlv_res {
    uint32_t id;
    char *relay;        /* "host[addr]:port" that took it, or the last one tried, or "" */
    char *label;        /* gateway name of that host, or "" */
    int32_t host_index; /* index in req->hosts that accepted, -1 if none */
    uint8_t tls_used;
    uint32_t connections; /* connections opened for this delivery (0 if reused) */
    uint8_t reused;       /* went over a reused connection */
    uint64_t duration_us;
    struct dlv_rcpt_res *r;
    size_t n;
    uint8_t conn_kept;  /* the connection is idle under dest_key now */
    uint8_t dsn_passed; /* the server that took it offers DSN: NOTIFY, ORCPT, RET and ENVID
                           went with the message, and notices are its business now */
    char *tls_version;  /* with tls_used: the protocol of relay's session ("TLSv1.3"), else "" */
    char *tls_cipher;   /* and its cipher ("TLS_AES_256_GCM_SHA384"), else "" */
    char *dkim;         /* for the log: "signed d=example.org s=sel" or "unsigned (why)",
                           "" when the request did not ask for signing */
    char *tls_policy;   /* the TLS policy of the relay's session, for the log: "dane",
                           "mta-sts" (enforce), "mta-sts testing", or "" (the domain's tls) */
    struct dlv_tls_out *tls_out; /* at most DLV_MAX_TLS_OUT, in the order tried */
    size_t ntls_out;
};

/*
 * Whose failure a recipient's result is, decided here and nowhere else:
 *   DLV_BLAME_NONE   it was sent;
 *   DLV_BLAME_LOCAL  ours, not the destination's: a temporary result of
 *                    class local (dnsd or a delivery process restarting,
 *                    the queue file unreadable, a process shutting down).
 *                    It costs no attempt, changes no host or gateway
 *                    state and never moves mail to the relay phase; qmgr
 *                    tries again after a short local back-off;
 *   DLV_BLAME_DEST   the destination's (or its DNS's): counted as an
 *                    attempt, feeds the destination's health and the
 *                    routing decision. A permanent result always is.
 */
enum dlv_blame { DLV_BLAME_NONE = 0, DLV_BLAME_LOCAL, DLV_BLAME_DEST };
enum dlv_blame dlv_blame(unsigned status, unsigned cls);

const char *dlv_status_name(enum dlv_status s); /* "sent" "deferred" "failed" */
const char *
dlv_class_name(enum dlv_class c);           /* "none" "dns" "network" "tls" "smtp" "auth" "local" */
const char *dlv_step_name(enum dlv_step s); /* "none" "dns" "connect" ... "data" "dot" */
const char *dlv_phase_name(enum dlv_phase p); /* "direct" "relay" */
/* "dns" -> DLV_CLASS_DNS etc.; -1 if unknown. */
int dlv_class_parse(const char *s);

void dlv_req_encode(struct ipc_w *w, const struct dlv_req *q);
int dlv_req_decode(const void *body, size_t len, struct dlv_req *q);
void dlv_req_free(struct dlv_req *q);
/* Free n hosts and the array; passwords are wiped first. */
void dlv_hosts_free(struct dlv_host *hosts, size_t n);

void dlv_res_encode(struct ipc_w *w, const struct dlv_res *r);
int dlv_res_decode(const void *body, size_t len, struct dlv_res *r);
void dlv_res_free(struct dlv_res *r);
/* Free n outcomes and the array (dlv_res_free does it for a result). */
void dlv_tls_out_free(struct dlv_tls_out *o, size_t n);

#endif
