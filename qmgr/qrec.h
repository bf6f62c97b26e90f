/*
 * qrec - the records qmgr keeps in Berkeley DB, and their byte layout.
 *
 * Message record, key = queue ID (18 characters, no NUL): the mutable
 * state of the message and of every recipient, in queue-file order:
 *     u8 version (2), u32 nrcpt,
 *     str notice, i64 moved_us, str reason, i64 requeued_us,
 *     nrcpt x { u8 state, u16 direct_attempts, u16 relay_attempts,
 *               i64 next_try_us, i64 first_fail_us, u8 class, u8 step,
 *               u16 code, str last_text,
 *               u8 notes, i64 last_try_us, str status, str remote }
 * notice is the queue ID of a notice being written about the recipients
 * marked QN_PENDING ("" when none, notice.c); moved_us and reason say
 * when and why the file went to bounced/ or bad/ (0 and "" while it is
 * in the queue); requeued_us is when an admin put it back into the queue
 * (smtpctl requeue), from which max_queue_lifetime counts again (0:
 * never). The record of a message in bounced/ or bad/ is kept, so
 * that smtpctl show bounced can say which recipient failed and why; a
 * file moved to bad/ because it does not parse gets a record with no
 * recipients. Version 1 records (no head, no notes, last_try_us, status,
 * remote) are still read.
 * Host record, key = "h:" + destination (a lower-case domain):
 *     u8 version (1), i64 last_fail_us, u32 consecutive failures,
 *     i64 down_until_us, str last_error
 * Integers are in host byte order (ipc.h's writer): the environment is
 * private to one host. A record that does not decode (wrong version,
 * truncated, trailing bytes, a state out of range, a recipient count
 * that differs from the queue file's) is reported as -1; qmgr then
 * ignores it and starts the message afresh, since the queue file is the
 * truth. Pure.
 */
#ifndef QMGR_QREC_H
#define QMGR_QREC_H

#include <stddef.h>
#include <stdint.h>

#include "base/ipc.h"

#define QREC_VERSION 2
#define QREC_TEXT_MAX 512 /* longest last_text / last_error kept */
#define QREC_HOST_PREFIX "h:"
#define QREC_ID_SIZE 19 /* QFILE_ID_SIZE */

/* Notices (notice.c) per recipient: wanted (the event happened and the
 * sender asked for it), pending (being written), sent. */
#define QN_WANT_SUCCESS 0x01u /* relayed to a next hop that does not pass notices */
#define QN_WANT_FAILURE 0x02u
#define QN_WANT_DELAY 0x04u
#define QN_WANT_MASK 0x07u
#define QN_SENT_SUCCESS 0x10u
#define QN_SENT_FAILURE 0x20u
#define QN_SENT_DELAY 0x40u
#define QN_PENDING 0x80u /* in the notice the record's head names */

/* One recipient: its address (from the queue file) and its state. */
struct rcpt {
    char *addr;
    char *orcpt; /* NULL if none */
    uint32_t notify;
    uint32_t group; /* index in msg->groups */
    uint8_t state;  /* enum rstate (decide.h) */
    uint8_t last_class, last_step;
    uint16_t last_code;
    uint16_t direct_attempts, relay_attempts;
    int64_t next_try_us;
    int64_t first_fail_us;
    char *last_text;     /* the last error ("451 4.3.0 try later"), NULL if none */
    uint8_t notes;       /* QN_* */
    int64_t last_try_us; /* the last attempt, 0: none */
    char *status;        /* enhanced status code of the last result ("5.1.1"), NULL if none */
    char *remote;        /* host name that gave the last result, NULL if none */
};

/* The message-wide part of a record. */
struct qrec_head {
    char notice[QREC_ID_SIZE]; /* "" when no notice is being written */
    int64_t moved_us;
    char *reason; /* NULL while in the queue */
    int64_t requeued_us;
};

/* A destination's health. */
struct hstate {
    int64_t last_fail_us;
    uint32_t consecutive;
    int64_t down_until_us;
    char *last_error;
};

/* h may be NULL (an empty head). */
void qrec_msg_encode(struct ipc_w *w, const struct qrec_head *h, const struct rcpt *r, size_t n);
/* Fills *h (may be NULL) and the state fields (not addr/orcpt/notify/
 * group) of r[0..n-1]; strings are malloc'd (the old ones freed). 0, or
 * -1 if malformed (nothing changed). */
int qrec_msg_decode(const void *p, size_t len, struct qrec_head *h, struct rcpt *r, size_t n);
/* The recipient count a record holds, or -1 if it is not a message record. */
long qrec_msg_count(const void *p, size_t len);
/* Free the strings of n recipients' state (not addr/orcpt) and of a head. */
void qrec_rcpt_clear(struct rcpt *r, size_t n);
void qrec_head_clear(struct qrec_head *h);

void qrec_host_encode(struct ipc_w *w, const struct hstate *h);
/* Fills *h (last_error malloc'd, the old one freed); 0 or -1. */
int qrec_host_decode(const void *p, size_t len, struct hstate *h);

/* Copy text for last_text: at most QREC_TEXT_MAX bytes (never half a UTF-8
 * character), control characters blanked. */
char *qrec_text(const char *s);

#endif
