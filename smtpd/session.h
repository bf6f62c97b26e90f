/*
 * session - the SMTP server's protocol state machine for one client,
 * without any I/O: lines in, reply text and an action out. server.c moves
 * the bytes and carries out the actions; unit tests drive it directly.
 *
 *   sess_init()        client facts (address, mynetworks, port role)
 *   sess_greeting()    the 220 banner
 *   sess_line()        one command line (or AUTH response line), CR LF
 *                      removed; appends the reply (if any) to out and
 *                      returns what the server must do next:
 *     SA_NONE          read the next line
 *     SA_DATA          354 sent: decode DATA with s->dec until its end,
 *                      then call sess_data_end()
 *     SA_STARTTLS      220 sent: discard buffered input, do the TLS
 *                      handshake, then sess_tls_started() (or close)
 *     SA_AUTH_VERIFY   credentials in s->auth_user / s->auth_pass: check
 *                      them, then sess_auth_result() (after the fail delay
 *                      when they were wrong)
 *     SA_BDAT          a BDAT chunk (RFC 3030) of s->bdat_left octets
 *                      follows: read exactly that many, into s->dec unless
 *                      s->bdat_refuse says they are thrown away, then
 *                      data_dec_finish() if it was the last chunk of a
 *                      message, then sess_bdat_end()
 *     SA_CLOSE         the reply is final (221, 421): flush and close
 *   sess_data_end()    the decoder found the end: SA_COMMIT (queue it,
 *                      then sess_commit_result()) or SA_NONE (refused,
 *                      the error reply is in out) or SA_CLOSE.
 *   sess_bdat_end()    the chunk is in: SA_COMMIT after the last chunk of
 *                      a good message (as sess_data_end), or SA_NONE with
 *                      the chunk's reply in out. After SA_NONE the message
 *                      is over (refused, or reset by RSET / EHLO /
 *                      STARTTLS) when !s->bdat_msg.
 *   sess_too_long()    the command line exceeded its limit.
 *
 * Every error reply (4xx/5xx) counts toward smtpd_error_limit; reaching
 * it appends "421 4.7.0 ... too many errors" and returns SA_CLOSE.
 * Relay control lives in the RCPT handler: a recipient is accepted only
 * from a client in mynetworks (not on the submission port) or from an
 * authenticated session; otherwise 554 5.7.1 and *s->why says why for the
 * log (sess_log_reject in server.c logs it).
 */
#ifndef POSTERN_SESSION_H
#define POSTERN_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "data_dec.h"
#include "hops.h"
#include "mail/qfile.h"
#include "smtp_parse.h"
#include "base/util.h"

/* The configuration a session needs, copied from main.cf at (re)load. */
struct sess_conf {
    const char *hostname;
    uint64_t size_limit;
    unsigned rcpt_limit;
    unsigned error_limit;
    size_t line_limit;  /* DATA line limit, CR LF included */
    unsigned max_hops;  /* max_hop_count: Received: fields a message may carry (0: no limit) */
    int normalize;      /* smtpd_bare_newline = normalize */
    int tls_available;  /* STARTTLS can be offered */
    int auth_available; /* a users map is open */
    int auth_plaintext_loopback;
    int chunking;           /* smtpd_chunking: CHUNKING offered, BDAT accepted */
    const char *postmaster; /* what RCPT TO:<postmaster> is queued for */
    /* A recipient of ours (mydestination)? enum lrcpt (mail/local_rcpt.h):
     * LR_REMOTE, LR_OK (taken from any client: it is not relaying),
     * LR_UNKNOWN (550 5.1.1), LR_ERROR (451). NULL: every recipient is
     * remote. */
    int (*local_rcpt)(void *arg, const char *addr);
    void *local_arg;
};

enum sess_state {
    SS_CMD,
    SS_DATA,
    SS_BDAT,            /* reading the octets of a BDAT chunk */
    SS_AUTH_PLAIN,      /* waiting for the PLAIN response */
    SS_AUTH_LOGIN_USER, /* waiting for the LOGIN user name */
    SS_AUTH_LOGIN_PASS, /* waiting for the LOGIN password */
    SS_WAIT,            /* commit / auth check / TLS handshake in progress */
    SS_CLOSED,
};

enum sess_act {
    SA_NONE = 0,
    SA_DATA,
    SA_BDAT,
    SA_STARTTLS,
    SA_AUTH_VERIFY,
    SA_COMMIT,
    SA_CLOSE,
};

struct sess_rcpt {
    char *addr;
    unsigned notify;
    char *orcpt;
};

#define SESS_AUTH_MAX 256

struct sess {
    const struct sess_conf *conf;
    enum sess_state state;

    /* the client */
    char addr[64]; /* numeric IP, IPv4-mapped shown as IPv4 */
    unsigned port;
    int loopback;
    int trusted;    /* in mynetworks */
    int submission; /* connected to a submission_listen address */
    int maildrop;   /* a file from maildrop/ (smtpd/pickup.h), not a client */
    long uid;       /* maildrop: the user who left the file (its owner) */

    /* the session */
    int helo; /* 0 none, 1 HELO, 2 EHLO */
    char helo_name[SMTP_DOMAIN_MAX + 1];
    int tls;
    char tls_info[128]; /* "TLSv1.3 TLS_AES_256_GCM_SHA384" */
    int authed;
    char auth_user[SESS_AUTH_MAX];
    unsigned errors;
    unsigned commands;

    /* the transaction */
    int in_mail;
    char *sender;
    enum smtp_body body;
    enum dsn_ret ret;
    int smtputf8;
    char *envid;
    struct sess_rcpt *rcpt;
    size_t nrcpt, rcpt_cap;
    unsigned rcpt_tried;
    struct data_dec dec;
    /* BDAT: the chunk being read, and the message it belongs to */
    uint64_t bdat_chunk; /* its size */
    uint64_t bdat_left;  /* octets of the chunk still to come */
    int bdat_last;       /* it is the LAST chunk */
    int bdat_refuse;     /* its octets are thrown away, and it is refused (why) */
    int bdat_msg;        /* a message is being received in chunks (s->dec runs) */
    int bdat_failed;     /* a chunk of this transaction was refused */
    struct hops hops;    /* Received: fields of the message in DATA (fed by the server) */

    /* AUTH exchange in progress (the server wipes auth_pass after use) */
    int auth_mech;
    char auth_pass[SESS_AUTH_MAX];

    /* for the server's log: why the last reply was a refusal ("" if not) */
    char why[200];
    /* for the server's counters: the refusal's reason (enum stats_reject)
     * plus 1, 0 if none; the server takes it and sets it back to 0 */
    uint8_t reject;
    /* counters the server sums up */
    unsigned relay_denied;
    unsigned messages;
};

void sess_init(struct sess *s, const struct sess_conf *conf, const char *addr, unsigned port,
               int loopback, int trusted, int submission);
/* Mark a session as the pickup of a maildrop file left by uid: the
 * Received: field then names the user instead of a client. */
void sess_set_maildrop(struct sess *s, long uid);
void sess_free(struct sess *s);
void sess_greeting(struct sess *s, struct buf *out);
enum sess_act sess_line(struct sess *s, const char *line, size_t len, struct buf *out);
enum sess_act sess_too_long(struct sess *s, struct buf *out);
enum sess_act sess_data_end(struct sess *s, struct buf *out);
enum sess_act sess_bdat_end(struct sess *s, struct buf *out);
enum sess_act sess_commit_result(struct sess *s, const char *id, struct buf *out);
enum sess_act sess_auth_result(struct sess *s, int result, struct buf *out);
void sess_tls_started(struct sess *s, const char *info);
/* Drop the transaction (RSET, EHLO, after DATA, STARTTLS). */
void sess_reset(struct sess *s);
/* 1 when AUTH is offered now (EHLO) and may be used. */
int sess_auth_offered(const struct sess *s);
/* RFC 3848 protocol name: SMTP ESMTP ESMTPS ESMTPA ESMTPSA. */
const char *sess_proto(const struct sess *s);

/*
 * The queue file's view of the transaction: fills env from the session
 * (pointers into s, valid until the next sess_* call) with id/arrival.
 */
void sess_envelope(const struct sess *s, const char *id, int64_t arrival_us, struct qfile_env *env,
                   struct qfile_rcpt *rcpts);
/* The Received: header for this transaction, CR LF line ends: "from
 * HELO ([ADDR]) by HOST (Postern) with PROTO id ID" for a client, "by HOST
 * (Postern, from userid UID) id ID" for a maildrop file. */
void sess_received(const struct sess *s, const char *id, int64_t now_us, struct buf *out);

/* Base64 (RFC 4648) decoding for AUTH; -1 if invalid or too long. */
int sess_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz);
/* The PLAIN message authzid NUL authcid NUL passwd into user/pass. */
int sess_plain_split(const unsigned char *p, size_t len, char *user, size_t usz, char *pass,
                     size_t psz);

#endif
