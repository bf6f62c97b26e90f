/*
 * smtp_client - the one outbound SMTP client of Postern, used by deliver
 * (direct to MX hosts) and relay (to gateways). Non-blocking, on libevent,
 * TLS by OpenSSL. docs/smtp-client.md says the same at more length.
 *
 * A session (struct smtpc) is one TCP connection to ONE address: the caller
 * walks MX hosts, their addresses and gateways, opening a session for each
 * until one takes the message. Life of a session:
 *
 *   s = smtpc_open(base, &opts, open_cb, arg);  connect, greeting, EHLO
 *       (HELO if EHLO is refused), STARTTLS per opts.tls and EHLO again,
 *       AUTH when credentials are given; then open_cb(s, res, arg).
 *   smtpc_send(s, &txn, txn_cb, arg);  one transaction (MAIL, RCPTs, DATA,
 *       PIPELINING when offered); then txn_cb(s, res, arg) with a result
 *       for the session and one per recipient.
 *   smtpc_send(...) again while smtpc_reusable(s) (connection reuse; RSET
 *       goes first), or
 *   smtpc_close(s)  QUIT and free (asynchronously), or smtpc_free(s) at once.
 *
 * The caller always ends a session with smtpc_close or smtpc_free, also
 * after a failure. Callbacks are never called from inside smtpc_open or
 * smtpc_send; inside a callback the caller may call smtpc_send,
 * smtpc_close or smtpc_free on the session. Results and the strings in
 * them belong to the session and are valid only during the callback.
 *
 * Results (struct smtpc_res) say: status (ok / temporary / permanent),
 * error class (network, tls, smtp, auth, protocol, local), the step that
 * failed, the server's code, an enhanced status code (the server's, or
 * one Postern chose for a local failure, so a DSN always has one), and the
 * text: the server's reply sanitised to printable ASCII, or a local reason.
 * A 4xx reply is temporary, 5xx permanent; network, TLS, protocol and AUTH
 * failures are temporary. lost_before_txn is set on a reused connection
 * that died before the transaction got going: the caller should retry on
 * a new connection without counting an attempt.
 *
 * Messages are read from an fd (the queue file) with pread, in chunks, at
 * [offset, offset + length); line ends become CR LF and leading dots are
 * doubled. The fd stays the caller's; it must stay open until txn_cb.
 *
 * The process must ignore SIGPIPE (the child skeleton does). With
 * log_level = detailed every command and reply line is logged
 * (log_detail), AUTH secrets replaced by "****".
 */
#ifndef POSTERN_SMTP_CLIENT_H
#define POSTERN_SMTP_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "mail/dsn_param.h"
#include "mail/outcome.h"
#include "mail/tls_mode.h"
#include "mail/smtp_reply.h"

struct event_base;
struct ssl_ctx_st; /* SSL_CTX */

enum smtpc_status { SMTPC_OK = OUTCOME_OK, SMTPC_TEMP = OUTCOME_TEMP, SMTPC_PERM = OUTCOME_PERM };

enum smtpc_class {
    SMTPC_CL_NONE,     /* no error */
    SMTPC_CL_NETWORK,  /* connect failed, connection lost, timeout */
    SMTPC_CL_TLS,      /* TLS required but not offered, handshake, certificate */
    SMTPC_CL_SMTP,     /* the server answered 4xx/5xx */
    SMTPC_CL_AUTH,     /* AUTH refused, impossible or not allowed in plaintext */
    SMTPC_CL_PROTOCOL, /* the server broke the protocol (bad reply, ...) */
    SMTPC_CL_LOCAL,    /* our side: message file unreadable, bad address */
};

enum smtpc_step {
    SMTPC_STEP_NONE,
    SMTPC_STEP_CONNECT,
    SMTPC_STEP_GREETING,
    SMTPC_STEP_HELO, /* EHLO or HELO, also the EHLO after STARTTLS */
    SMTPC_STEP_STARTTLS,
    SMTPC_STEP_AUTH,
    SMTPC_STEP_RSET, /* before a transaction on a reused connection */
    SMTPC_STEP_MAIL,
    SMTPC_STEP_RCPT,
    SMTPC_STEP_DATA, /* the DATA command, or sending the message */
    SMTPC_STEP_DOT,  /* the reply to the final "." */
    SMTPC_STEP_QUIT,
};

#define SMTPC_TEXT_MAX SMTP_SUMMARY_MAX

struct smtpc_res {
    enum smtpc_status status;
    enum smtpc_class cls;      /* SMTPC_CL_NONE when ok */
    enum smtpc_step step;      /* the step that produced this result */
    int code;                  /* the server's reply code; 0 if none */
    char enh[16];              /* enhanced status code, e.g. "5.1.1" (always set) */
    char text[SMTPC_TEXT_MAX]; /* sanitised reply, or a local reason */
    int lost_before_txn;       /* reused connection dead before the transaction */
};

/* What a message needs from the server (the caller knows from smtpd). */
#define SMTPC_NEED_8BITMIME 0x1u /* 8-bit body: BODY=8BITMIME if offered */
#define SMTPC_NEED_SMTPUTF8 0x2u /* UTF-8 addresses/headers: SMTPUTF8 required */

struct smtpc_rcpt {
    const char *addr;  /* mailbox without brackets */
    unsigned notify;   /* DSN_NOTIFY_* (0: none); sent only if the server offers DSN */
    const char *orcpt; /* "rfc822;addr" as received (decoded), or NULL */
};

struct smtpc_txn {
    const char *sender; /* mailbox without brackets; "" for the null sender */
    const struct smtpc_rcpt *rcpts;
    size_t nrcpts;
    const char *envid; /* DSN ENVID (decoded), or NULL */
    enum dsn_ret ret;  /* DSN RET */
    unsigned need;     /* SMTPC_NEED_* */
    int fd;            /* message file; read with pread */
    off_t offset;      /* where the message starts in fd */
    off_t length;      /* its length in bytes */
    /* Sent before the message and counted in its size (SIZE=, BDAT):
     * header fields added at delivery (DKIM-Signature), CR LF ended, or
     * NULL. Copied by smtpc_send. */
    const char *prefix;
    size_t prefix_len;
};

struct smtpc_txn_res {
    struct smtpc_res session; /* ok when the message was accepted (>= 1 rcpt);
                                 else the failure that ended the transaction */
    size_t nrcpts;
    const struct smtpc_res *rcpt; /* one per recipient, in txn order */
    size_t accepted;              /* recipients the server took the message for */
    int reusable;                 /* the connection can carry another transaction */
};

/*
 * One TLSA record (RFC 6698) for DANE (RFC 7671, RFC 7672). The client
 * uses only DANE-TA(2) and DANE-EE(3) with selector 0 (full certificate)
 * or 1 (SubjectPublicKeyInfo) and matching type 0 (exact), 1 (SHA2-256)
 * or 2 (SHA2-512) with the digest's length; PKIX-TA(0), PKIX-EE(1) and
 * unknown values are unusable (RFC 7672 3.1.3) and ignored.
 */
struct smtpc_tlsa {
    unsigned char usage, selector, mtype;
    const unsigned char *data;
    size_t len;
};
/* 1 when the client can use a record with these fields. */
int smtpc_tlsa_usable(unsigned usage, unsigned selector, unsigned mtype, size_t len);

/* How a certificate check ended (verify, DANE, tls_evaluate): what a
 * TLS report (RFC 8460) needs, without OpenSSL's codes. */
enum smtpc_vfy {
    SMTPC_VFY_NONE = 0,      /* not checked */
    SMTPC_VFY_OK,            /* chain (or TLSA record) and name verified */
    SMTPC_VFY_HOST_MISMATCH, /* valid chain, no reference name in it */
    SMTPC_VFY_EXPIRED,       /* a certificate of the chain expired (or is not yet valid) */
    SMTPC_VFY_NOT_TRUSTED,   /* no trusted CA, self-signed */
    SMTPC_VFY_DANE_NO_MATCH, /* DANE: no TLSA record matches the chain */
    SMTPC_VFY_OTHER,         /* anything else (signature, handshake) */
};
const char *smtpc_vfy_name(enum smtpc_vfy v); /* "none" "ok" "host-mismatch" ... */

struct smtpc_info {
    const char *host; /* name given by the caller (or the address) */
    const char *addr; /* "192.0.2.1" / "2001:db8::1" */
    int port;
    const char *relay;    /* "host[addr]:port" for logs */
    const char *greeting; /* sanitised greeting summary, "" before it */
    int esmtp;            /* EHLO was accepted */
    struct smtp_caps caps;
    int tls;                    /* TLS in use */
    int tls_verified;           /* certificate and host name verified (tls = verify, or the
                                   check of tls_evaluate passed); not set by DANE */
    int tls_fallback;           /* tls = may: handshake failed, reconnected in plaintext */
    int tls_dane;               /* DANE: the certificate chain matched a TLSA record */
    const char *tls_dane_match; /* that record, "usage selector mtype" ("3 1 1"), or "" */
    int tls_dane_depth;         /* depth of the certificate that matched (0: the server's), -1 */
    enum smtpc_vfy tls_vfy;     /* how the certificate check ended (verify, DANE, tls_evaluate);
                                   also set when the handshake failed on it */
    const char *tls_vfy_reason; /* why it failed ("certificate has expired"), or "" */
    const char *tls_version;    /* "TLSv1.3", or "" */
    const char *tls_cipher;     /* or "" */
    int auth;                   /* authenticated */
    int transactions;           /* transactions started on this connection */
};

struct smtpc_opts {
    const struct sockaddr_storage *addr; /* address to connect to */
    int port;                            /* > 0: overrides the port in addr */
    const char *host;      /* remote host name: logs, SNI, tls = verify; may be NULL */
    const char *helo_name; /* our name for EHLO/HELO (myhostname) */
    int connect_timeout;   /* seconds (smtp_connect_timeout) */
    int timeout;           /* seconds to wait for each reply or write progress (smtp_timeout) */
    enum tls_mode tls;
    struct ssl_ctx_st *ssl_ctx; /* from smtpc_tls_ctx_new; NULL: no TLS possible */
    const char *auth_user;      /* AUTH credentials (relay gateways), or NULL */
    const char *auth_pass;
    int auth_plaintext; /* allow AUTH without TLS */
    int chunking;       /* send with BDAT (RFC 3030) when the server offers CHUNKING */
    const char *log_id; /* prefix for log lines (queue ID, delivery tag), or NULL */
    /*
     * DANE (tls = dane or dane-only; the caller decided that DANE applies,
     * dlv_tls_plan). STARTTLS is then mandatory (not offered, refused, a
     * failed handshake: temporary, class tls, never plaintext). With at
     * least one usable record the certificate must match one: DANE-EE(3)
     * ignores names and validity dates, DANE-TA(2) checks the chain from
     * the matched trust anchor and the names (dane_base, then dane_names).
     * With none usable the session is encrypted but not authenticated
     * (as encrypt). SNI is dane_base (NULL: host). Copied.
     */
    const struct smtpc_tlsa *tlsa;
    size_t ntlsa;
    const char *dane_base;         /* TLSA base domain (the MX host name), or NULL: host */
    const char *const *dane_names; /* more reference names for DANE-TA, or NULL */
    size_t ndane_names;
    /* tls = may or encrypt: check the chain (ssl_ctx's CAs) and host name
     * as verify would, without enforcing it (MTA-STS testing mode): the
     * result is in info.tls_vfy. */
    int tls_evaluate;
};

struct smtpc;

typedef void smtpc_open_cb(struct smtpc *s, const struct smtpc_res *res, void *arg);
typedef void smtpc_txn_cb(struct smtpc *s, const struct smtpc_txn_res *res, void *arg);
/* An idle session lost its connection (server closed it, or sent data). */
typedef void smtpc_idle_cb(struct smtpc *s, void *arg);

/*
 * Start a session: connect to opts->addr, read the greeting, EHLO/HELO,
 * STARTTLS and AUTH as asked. Strings in opts are copied. cb is called
 * once, with res->status SMTPC_OK when the session is ready for
 * smtpc_send, or with the failure (the session is then dead: free it).
 */
struct smtpc *smtpc_open(struct event_base *base, const struct smtpc_opts *opts, smtpc_open_cb *cb,
                         void *arg);

/*
 * Run one transaction on a ready session. txn is copied (not the message
 * fd). Returns 0 when started: cb will be called. When the session was
 * ready but its idle connection has since been lost, smtpc_send also
 * returns 0 and cb reports every recipient temporary with lost_before_txn
 * set, so callers need one code path. Returns -1 when the session is busy
 * or never became ready (a programming error in the caller).
 */
int smtpc_send(struct smtpc *s, const struct smtpc_txn *txn, smtpc_txn_cb *cb, void *arg);

/* 1 when the session is ready and its connection alive (as far as we know:
 * a server may close it at any moment; then smtpc_send reports
 * lost_before_txn). */
int smtpc_reusable(const struct smtpc *s);

/* Called when an idle session's connection is lost; NULL to stop. */
void smtpc_set_idle_cb(struct smtpc *s, smtpc_idle_cb *cb, void *arg);

const struct smtpc_info *smtpc_info(const struct smtpc *s);

/* Send QUIT (if the session is idle and alive), wait briefly for the reply,
 * then free everything. No callback follows. */
void smtpc_close(struct smtpc *s);
/* Drop the connection and free at once (no QUIT). */
/* fn(arg) once s is destroyed and its socket closed (after the QUIT of
 * smtpc_close, or at once on smtpc_free); fn NULL cancels it. */
void smtpc_on_gone(struct smtpc *s, void (*fn)(void *arg), void *arg);
void smtpc_free(struct smtpc *s);

/*
 * The client TLS context, made before chroot: the CA bundle (ca_file, or
 * the system bundle when NULL or "") is read now, since a chrooted
 * process cannot read it later. TLS 1.2 at least. NULL and *err (malloc'd)
 * on failure. DANE is enabled on it (SSL_CTX_dane_enable) for sessions
 * with TLSA records. Free with SSL_CTX_free.
 */
struct ssl_ctx_st *smtpc_tls_ctx_new(const char *ca_file, char **err);

/* Names for logs and JSON: "ok" "temporary" "permanent"; "network" ...;
 * "connect" "greeting" "helo" ... ; "none" "may" "encrypt" "verify". */
const char *smtpc_class_name(enum smtpc_class cl);
const char *smtpc_step_name(enum smtpc_step st);
/* "none" ... -> enum; -1 if unknown. */

/*
 * The MAIL and RCPT commands (CR LF included) as this client sends them,
 * given the server's capabilities: SIZE=, BODY=8BITMIME, SMTPUTF8, RET=,
 * ENVID= (xtext), NOTIFY=, ORCPT= (xtext). Pure; exposed for tests.
 */
void smtpc_mail_cmd(struct buf *out, const struct smtpc_txn *txn, const struct smtp_caps *caps);
void smtpc_rcpt_cmd(struct buf *out, const struct smtpc_rcpt *r, const struct smtp_caps *caps);

#endif
