/*
 * qrec - the records qmgr keeps in Berkeley DB, and their byte layout.
 *
 * Message record, key = queue ID (18 characters, no NUL): the mutable
 * state of every recipient of the message, in queue-file order:
 *     u8 version (1), u32 nrcpt,
 *     nrcpt x { u8 state, u16 direct_attempts, u16 relay_attempts,
 *               i64 next_try_us, i64 first_fail_us, u8 class, u8 step,
 *               u16 code, str last_text }
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

#define QREC_VERSION 1
#define QREC_TEXT_MAX 512 /* longest last_text / last_error kept */
#define QREC_HOST_PREFIX "h:"

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
    char *last_text; /* the last error ("451 4.3.0 try later"), NULL if none */
};

/* A destination's health. */
struct hstate {
    int64_t last_fail_us;
    uint32_t consecutive;
    int64_t down_until_us;
    char *last_error;
};

void qrec_msg_encode(struct ipc_w *w, const struct rcpt *r, size_t n);
/* Fills the state fields (not addr/orcpt/notify/group) of r[0..n-1];
 * last_text is malloc'd (the old one freed). 0, or -1 if malformed. */
int qrec_msg_decode(const void *p, size_t len, struct rcpt *r, size_t n);

void qrec_host_encode(struct ipc_w *w, const struct hstate *h);
/* Fills *h (last_error malloc'd, the old one freed); 0 or -1. */
int qrec_host_decode(const void *p, size_t len, struct hstate *h);

/* Copy text for last_text: at most QREC_TEXT_MAX bytes, printable. */
char *qrec_text(const char *s);

#endif
