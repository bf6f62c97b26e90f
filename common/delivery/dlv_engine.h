/*
 * dlv_engine - the delivery engine shared by deliver (direct to MX hosts)
 * and relay (through gateways): it takes one decoded delivery request
 * (mail/dlv_proto.h) with its message fd, finds where to send it, runs the SMTP
 * client (smtp_client.h) over the candidates until one takes the message,
 * and produces the per-recipient result. docs/deliver.md says the same at
 * more length.
 *
 *   e = dlv_engine_new(&opts);              once, after the SSL_CTX is made
 *   dlv_engine_set_dns(e, ch);              the channel to dnsd (NULL: none)
 *   j = dlv_engine_start(e, req, fd, cb, arg);  req and fd are taken over
 *       ... cb(res, arg) once, never from inside dlv_engine_start ...
 *   dlv_job_cancel(j);                      drop a job: no callback follows
 *   dlv_engine_free(e);                     cancels jobs, QUITs idle sessions
 *
 * Targets. DLV_TARGET_MX: dnsd's MX set for req->domain (req->mx_override
 * as its override list), hosts by preference with equal preferences
 * shuffled (dns_shuffle), every address of each host in dnsd's order, on
 * the host's port or req->port. DLV_TARGET_HOSTS: req->hosts in order,
 * each a literal address or a name resolved through dnsd, each with its
 * own port (0: req->port), TLS mode and AUTH credentials.
 *
 * Decisions (pure, below): a recipient is final once a server accepted it
 * or refused it permanently (5xx RCPT, 5xx MAIL/DATA/dot, local checks);
 * recipients still open after a temporary failure (4xx, network, TLS,
 * AUTH, a 5xx greeting or EHLO, which refuses the session and not the
 * message) go on to the next address, then the next host. A local
 * temporary failure (unreadable message file) ends the job. A job makes
 * at most DLV_MAX_SESSIONS connection attempts. What is still open at the
 * end keeps its last temporary result. DNS failures of an MX lookup are
 * class dns, temporary or permanent as dnsd says (NXDOMAIN, null MX: 5.x);
 * failures to resolve a listed host (a gateway or a static route) are
 * always temporary: they are configuration problems, not the message's.
 *
 * Connection reuse: a request with a dest_key and max_per_conn > 1 leaves
 * its session idle after a transaction, while the session is reusable and
 * has carried fewer than max_per_conn transactions (else QUIT). The idle
 * session is kept under whom it belongs to (struct dlv_conn_id): for a
 * listed host (a gateway, a static route) the host it is connected to -
 * gateway name, host, port, TLS mode and AUTH user - whatever host the
 * order of its job put first; for an MX target the request's dest_key and
 * TLS mode. A later job uses an idle session only for the host it is
 * about to try: an MX job at its start; a job with listed hosts for each
 * host in turn, the first at once and a later one only after the hosts
 * before it failed in this job - so reuse never skips a gateway of higher
 * priority, and a delivery is credited to the gateway that carried it.
 * When that session turns out dead before the transaction
 * (lost_before_txn) the job simply goes on with new connections, nothing
 * counted. Idle sessions are closed after idle_timeout_s, when the server
 * drops them, and on dlv_engine_close_idle. The result's conn_kept says
 * that the job left a session idle.
 *
 * connection_delay: the engine remembers when the last connection under
 * each key ended (QUIT after max_per_conn transactions or after a failed
 * transaction, idle timeout, dropped by the server while idle, found dead
 * when reused). A job that has to open a new connection waits until
 * req->connection_delay_ms have passed since then (an idle session that
 * appears meanwhile is used at once). qmgr avoids sending such jobs
 * early; this is the exact rule behind its schedule.
 *
 * Logs: each connection attempt at detailed level, each failed host or
 * address at info level with the class and step; the SMTP client adds
 * transcripts at detailed level. The caller (qmgr) logs the recipients.
 */
#ifndef POSTERN_DLV_ENGINE_H
#define POSTERN_DLV_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mail/dlv_proto.h"
#include "mail/dns_proto.h"
#include "delivery/smtp_client.h"

#define DLV_MAX_SESSIONS 20 /* connection attempts per job */
#define DLV_MAX_IDLE 256    /* idle sessions kept at most (all keys) */
#define DLV_MAX_CLOSED 1024 /* keys whose last connection end is remembered */

struct event_base;
struct ipc_chan;
struct dlv_engine;
struct dlv_job;

struct dlv_engine_opts {
    struct event_base *base;
    struct ssl_ctx_st *ssl_ctx;  /* smtpc_tls_ctx_new before chroot; NULL: no TLS */
    const char *helo_name;       /* myhostname */
    int connect_timeout;         /* smtp_connect_timeout, seconds */
    int timeout;                 /* smtp_timeout, seconds */
    int chunking;                /* smtp_chunking: BDAT when offered */
    uint32_t (*rnd)(uint32_t n); /* [0, n) for shuffling; NULL: random() */
};

/* The result (res and its strings) is valid only during the callback. */
typedef void dlv_done_cb(const struct dlv_res *res, void *arg);

struct dlv_engine *dlv_engine_new(const struct dlv_engine_opts *o);
/* New helo name / timeouts (after a reload); the base and ctx stay. */
void dlv_engine_set_opts(struct dlv_engine *e, const struct dlv_engine_opts *o);
/* The dnsd channel, or NULL while there is none (lookups then fail as
 * temporary dns errors). The caller calls dnsc_chan_lost on the old one. */
void dlv_engine_set_dns(struct dlv_engine *e, struct ipc_chan *dnsd);
/*
 * Start a job. req (decoded, owned by the job from now on) and fd (the
 * message file, closed by the job) are taken whatever happens. cb is
 * called exactly once unless the job is cancelled.
 */
struct dlv_job *dlv_engine_start(struct dlv_engine *e, struct dlv_req *req, int fd, dlv_done_cb *cb,
                                 void *arg);
/* Abandon a job: its connection is dropped (no QUIT), no callback. */
void dlv_job_cancel(struct dlv_job *j);
/* QUIT every idle session (shutdown). */
void dlv_engine_close_idle(struct dlv_engine *e);
size_t dlv_engine_jobs(const struct dlv_engine *e);
size_t dlv_engine_idle(const struct dlv_engine *e);
void dlv_engine_free(struct dlv_engine *e);

/* ---- pure decision logic, exposed for tests ---- */

/* One address to try. */
struct dlv_cand {
    const char *host;             /* MX host or listed host name (points into the source) */
    struct sockaddr_storage addr; /* with the port to use */
    int host_index;               /* index in req->hosts, -1 for MX targets */
    enum tls_mode tls;
    const struct dlv_host *h; /* the listed host (AUTH, label), NULL for MX */
    int mx_index;             /* index of its host in the MX result, -1 for listed hosts */
};

/*
 * The addresses of an MX result in the order to try them: hosts as given
 * (sort and shuffle first), every address of a host; port: the host's, or
 * the address's own, or default_port. Hosts without addresses are
 * skipped. At most max; returns how many.
 */
size_t dlv_cands_mx(const struct dns_result *r, uint16_t default_port, enum tls_mode tls,
                    struct dlv_cand *out, size_t max);
/* The addresses of one listed host (a HOST lookup result, or NULL when the
 * name is a literal address in lit). */
size_t dlv_cands_host(const struct dlv_host *h, int index, const struct dns_result *r,
                      const struct sockaddr_storage *lit, uint16_t default_port,
                      struct dlv_cand *out, size_t max);

/*
 * The TLS policy of one host (RFC 7672 DANE, RFC 8461 MTA-STS), decided
 * from the request's (or the listed host's) TLS mode, the lookup result
 * r (its MTA-STS state; NULL for a literal address) and the host h in it
 * (its DNSSEC/TLSA state; NULL for a literal address):
 *
 *   DANE applies to MX hosts unless the mode is none or verify, and to
 *   listed hosts (gateways, static routes) with tls dane or dane-only
 *   (dlv_tls_wants_dane says whether to ask dnsd for TLSA records).
 *   Where it applies: TLSA state found with a usable record (DANE-TA/EE,
 *   smtpc_tlsa_usable) -> DANE (mode dane: TLS required, the certificate
 *   must match a record); found, none usable -> encrypt; failed -> the
 *   host is skipped ("TLSA lookup failed: ..."); none, insecure, not
 *   asked -> no DANE: dane behaves as may, dane-only skips the host ("no
 *   secure TLSA records for HOST").
 *   DANE wins over MTA-STS, which applies to MX hosts only (r->sts):
 *   policy mode enforce -> a host that matches no mx: pattern is skipped
 *   ("HOST is not in the MTA-STS policy of DOMAIN (id ID)"), the others
 *   get verify; testing -> the mode as without a policy, with the
 *   certificate checked but not enforced (evaluate) and sts_fail saying
 *   what enforce would have refused; mode none, no policy, failed fetch
 *   -> the mode as without a policy.
 *
 * Skipped hosts are temporary failures of class tls.
 */
enum dlv_tls_policy {
    DLV_TLS_POLICY_DOMAIN = 0,  /* the domain's (or host's) tls mode alone */
    DLV_TLS_POLICY_DANE,        /* TLSA records (usable or not) */
    DLV_TLS_POLICY_STS_ENFORCE, /* MTA-STS, mode enforce */
    DLV_TLS_POLICY_STS_TESTING, /* MTA-STS, mode testing */
};
/* "domain" "dane" "mta-sts enforce" "mta-sts testing" */
const char *dlv_tls_policy_name(enum dlv_tls_policy p);

struct dlv_tls_plan {
    enum tls_mode mode; /* for the SMTP client: none may encrypt verify, or dane (with tlsa) */
    int dane;           /* verify against tlsa[] */
    struct smtpc_tlsa tlsa[DNS_MAX_TLSA]; /* the usable records (data points into h) */
    size_t ntlsa;
    int evaluate; /* check the certificate without enforcing it (MTA-STS testing) */
    int skip;     /* do not use the host: temporary, class tls, reason says why */
    int sts_fail; /* MTA-STS testing: enforce would have skipped the host */
    enum dlv_tls_policy policy;
    char reason[DNS_MAX_NAME * 2 + 80]; /* skip (or sts_fail): why */
};

int dlv_tls_wants_dane(enum tls_mode mode, int listed);
void dlv_tls_plan(enum tls_mode mode, const struct dns_result *r, const struct dns_host *h,
                  int listed, struct dlv_tls_plan *out);

/* Whom a connection belongs to (connection reuse); the strings point
 * into the request. */
struct dlv_conn_id {
    const char *dest;      /* MX target: the request's dest_key; "" for a listed host */
    const char *label;     /* gateway name ("" for none or MX) */
    const char *host;      /* listed host as given (name or literal), "" for MX */
    uint16_t port;         /* the host's port, else the request's */
    enum tls_mode tls;     /* the host's TLS mode, or the request's for MX */
    const char *auth_user; /* "" for none */
};

/* The identity of host host_index of q (-1: q's MX destination). */
void dlv_conn_id_of(const struct dlv_req *q, int host_index, struct dlv_conn_id *out);
int dlv_conn_id_same(const struct dlv_conn_id *a, const struct dlv_conn_id *b);
/* 1 when an idle session of identity idle may carry q's transaction to
 * host `at` (-1 for an MX target): q asks for reuse (a dest_key), and idle
 * is exactly that host's (or destination's) identity. */
int dlv_reuse_at(const struct dlv_req *q, int at, const struct dlv_conn_id *idle);

/* Mapping of the SMTP client's classes and steps to the delivery's. */
enum dlv_class dlv_class_of(enum smtpc_class c);
enum dlv_step dlv_step_of(enum smtpc_step s);

/*
 * The tally: one slot per recipient, open until it gets a final result.
 * Every function copies the strings it keeps.
 */
struct dlv_tally {
    size_t n;
    struct dlv_rcpt_res *r; /* current result; idx filled by dlv_tally_init */
    unsigned char *open;    /* 1 while no final answer */
    size_t nopen;
    int stop;  /* nothing more to try for this job (local failure) */
    int taken; /* some server accepted the message */
};

void dlv_tally_init(struct dlv_tally *t, const struct dlv_req *q);
void dlv_tally_free(struct dlv_tally *t);
/* Give every open recipient this result (status/class/step/code/dsn/text). */
void dlv_tally_set_open(struct dlv_tally *t, enum dlv_status st, enum dlv_class cls,
                        enum dlv_step step, int code, const char *dsn, const char *text);
/* A DNS failure. hosts_target: the failure is of a listed host (always
 * temporary). */
void dlv_tally_dns(struct dlv_tally *t, enum dns_class c, const char *reason, int hosts_target);
/* A session that failed to open (connect, greeting, EHLO, TLS, AUTH). */
void dlv_tally_open_failed(struct dlv_tally *t, const struct smtpc_res *res);
/*
 * A transaction's result over the recipients open when it started (open
 * recipients in request order = the transaction's recipients in order;
 * map[i] is the tally index of transaction recipient i). Returns 1 when
 * the session was found dead before the transaction (lost_before_txn):
 * nothing changed, try again on a new connection.
 */
int dlv_tally_txn(struct dlv_tally *t, const struct smtpc_txn_res *tr, const size_t *map);
/* 1 when the job should try another address (recipients open, not stopped). */
int dlv_tally_more(const struct dlv_tally *t);
/* A result from one smtpc result (for a recipient). */
void dlv_rcpt_from_smtpc(struct dlv_rcpt_res *out, const struct smtpc_res *r);

#endif
