/*
 * pickup - smtpd takes the messages the local sendmail left in
 * queue_directory/maildrop/ (through postdrop, while smtpd could not be
 * reached) and queues them as if they had come over SMTP.
 *
 * Which files: every name in maildrop/ that does not start with '.'
 * (postdrop writes ".tmp.*" first and renames when the file is durable).
 * smtpd watches the directory with inotify (IN_MOVED_TO, added after the
 * chroot on the relative path), and scans it at start and every
 * PICKUP_SCAN_S seconds for missed events and files left while it was
 * down. Files wait while intake is paused.
 *
 * One file: opened O_NOFOLLOW|O_NONBLOCK; it must be a regular file with
 * one link and of a size a message could have. Its owner (st_uid) is the
 * user who submitted it - postdrop cannot change that, while the content
 * is the user's to write - and it is named in the Received: field ("by
 * HOST (Postern, from userid UID)") and the log. Its content is a
 * maildrop stream (mail/maildrop.h), replayed through a real session
 * (session.h) as a local client: address 127.0.0.1, marked maildrop,
 * trusted for relaying exactly when an SMTP client on 127.0.0.1 would be
 * (mynetworks), so a message takes the same decision whichever way
 * sendmail handed it over. Hence the same MAIL/RCPT parsing, DATA
 * decoding (smtpd_bare_newline), size, line and hop limits, and the same
 * group commit (commit.h): the file is unlinked only after the queue file
 * is durable and qmgr was told.
 *
 * Outcomes, each logged with the file's name and uid:
 *   the message is queued          "ID: accepted from=<...> ... uid=N
 *                                  via=maildrop"; the file is removed
 *   a 4xx (the queue file could    the file stays for the next scan
 *   not be written, ...)
 *   a 5xx, a malformed file, not   the file is moved to maildrop-bad/
 *   a regular file, unreadable     (warning with the reply or the
 *                                  reason); nothing is dropped silently
 * Work is one file per event-loop turn (files are bounded by
 * message_size_limit); the next starts once the commit of the previous
 * one has called back.
 *
 * The pure part, pickup_tx, is one file's bytes through a session; unit
 * tests and the fuzzer drive it without files or events:
 *   pickup_tx_init()    a session for a maildrop file of uid, after EHLO
 *   pickup_tx_feed()    bytes of the file; decoded message bytes are
 *                       appended to body (and counted for the hop limit).
 *                       Returns
 *     PT_MORE           all was used: more, or pickup_tx_finish at EOF
 *     PT_DATA           DATA was accepted after *used bytes: make the
 *                       queue message now (sess_envelope, sess_received
 *                       of t->s), then feed the rest
 *     PT_REFUSED        a 4xx/5xx reply: t->code, t->why (the reply)
 *     PT_MALFORMED      not a well-framed file: t->why
 *   pickup_tx_finish()  at the end of the file: PT_END when the message
 *                       was accepted at its end and nothing followed it
 *                       (commit it), else PT_REFUSED / PT_MALFORMED.
 */
#ifndef POSTERN_PICKUP_H
#define POSTERN_PICKUP_H

#include <stddef.h>
#include <stdint.h>

#include "commit.h"
#include "mail/maildrop.h"
#include "mail/qfile.h"
#include "session.h"

#define PICKUP_SCAN_S 60

enum { PT_MORE = 0, PT_DATA, PT_END, PT_REFUSED, PT_MALFORMED };

struct pickup_tx {
    struct sess s;
    struct maildrop_rd rd;
    struct buf out;  /* the session's replies to the last command */
    struct buf line; /* the command being given, NUL-terminated */
    int stage;       /* pickup.c */
    int result;      /* once decided: PT_END, PT_REFUSED or PT_MALFORMED */
    int code;        /* PT_REFUSED: the reply code */
    char why[320];   /* PT_REFUSED: the reply; PT_MALFORMED: what is wrong */
};

void pickup_tx_init(struct pickup_tx *t, const struct sess_conf *conf, size_t cmd_limit, long uid,
                    int trusted);
void pickup_tx_free(struct pickup_tx *t);
int pickup_tx_feed(struct pickup_tx *t, const char *p, size_t n, size_t *used, struct buf *body);
int pickup_tx_finish(struct pickup_tx *t);

/* What pickup needs from the server around it (server.c). */
struct pickup_env {
    struct event_base *base;
    struct committer *commit;
    struct qfile_idgen *idgen;
    const struct sess_conf *conf; /* the server's: reloads change it in place */
    void *arg;
    int (*accepting)(void *arg);     /* intake neither paused nor stopping */
    int (*local_trusted)(void *arg); /* 127.0.0.1 in mynetworks */
    size_t (*cmd_limit)(void *arg);  /* smtpd_command_line_limit */
    /* the message is durable: count it and tell qmgr */
    void (*queued)(void *arg, const char *id, uint64_t bytes);
};

struct pickup_stats {
    uint64_t picked;   /* queued and removed from maildrop/ */
    uint64_t refused;  /* moved to maildrop-bad/ */
    uint64_t deferred; /* left for the next scan */
};

struct pickup;

/* After child_drop, in the spool: open maildrop/ and maildrop-bad/, watch,
 * scan. NULL and *err when maildrop/ cannot be used. */
struct pickup *pickup_start(const struct pickup_env *env, char **err);
/* Scan now (intake was resumed). */
void pickup_kick(struct pickup *p);
/* No new file from now on; a message being committed still completes. */
void pickup_stop(struct pickup *p);
const struct pickup_stats *pickup_get_stats(const struct pickup *p);

#endif
