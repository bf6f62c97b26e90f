/*
 * server - smtpd's network side: listeners, connections on libevent
 * bufferevents, STARTTLS, session limits, the AUTH fail delay, timeouts,
 * and the hand-off of finished messages to the group commit and to qmgr.
 *
 * Everything protocol-related is decided by session.c; this file reads
 * lines (or DATA through the decoder), calls the session, writes its
 * replies, and carries out the action it returns. Replies to pipelined
 * commands are written in order because a session that waits (commit,
 * AUTH check, TLS handshake) reads no further input until it is done.
 *
 * smtpd_setup() is called before the privilege drop (TLS key, users
 * map); smtpd_start() after it (spool dirs, listeners).
 */
#ifndef POSTERN_SERVER_H
#define POSTERN_SERVER_H

#include <stdint.h>

#include "mail/child.h"
#include "commit.h"
#include "base/netaddr.h"
#include "mail/stats.h"
#include "session.h"

struct smtpd_stats {
    uint64_t sessions; /* accepted connections */
    uint64_t refused;  /* 421 at connect: limits or paused */
    uint64_t messages; /* queued */
    uint64_t bytes;
    uint64_t rejected; /* messages refused at the end of DATA */
    uint64_t relay_denied;
    uint64_t tls; /* successful handshakes */
    uint64_t tls_failed;
    uint64_t auth_ok;
    uint64_t auth_failed;
    uint64_t timeouts;
    uint64_t deadlines; /* sessions ended because a command or DATA took too long in all */
    uint64_t stress;    /* times stress mode began */
    uint64_t msg_rate_refused;
    uint64_t spool_full;  /* MAIL or RCPT refused: the spool below queue_minfree */
    uint64_t error_limit; /* sessions closed for too many errors */
    uint64_t qmgr_notified;
    uint64_t qmgr_missed;              /* qmgr was down: it finds them on its scan */
    uint64_t rejects[REJ__COUNT];      /* refusals by reason (mail/stats.h) */
    uint64_t tls_version[TLSV__COUNT]; /* STARTTLS sessions by version */
};

struct smtpd;

struct smtpd *smtpd_new(struct child *c);
/* Before child_drop: TLS context, users map, mynetworks. 0 or -1 + *err. */
int smtpd_setup(struct smtpd *sd, char **err);
/* After child_drop: spool directories and listeners. 0 or -1 + *err. */
int smtpd_start(struct smtpd *sd, char **err);

/* child_spec callbacks */
void smtpd_peer(struct child *c, const char *name, int fd);
int smtpd_reload(struct child *c, char **err);
int smtpd_ctl(struct child *c, int argc, char **argv, unsigned flags, struct buf *out);
/* "intake paused" while smtpctl pause intake holds, else NULL. */
const char *smtpd_state(struct child *c);
void smtpd_shutdown(struct child *c);
/* From master: IMSG_TLS_CERT (a new certificate and key on reload). */
struct ipc_msg;
void smtpd_master_msg(struct child *c, const struct ipc_msg *m);

#endif
