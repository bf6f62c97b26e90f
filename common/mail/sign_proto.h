/*
 * sign_proto - deliver|relay <-> signer: asking for a message's DKIM
 * signatures (docs/dkim.md).
 *
 *   IMSG_DKIM_SIGN_REQ  (with the queue file fd, read-only)
 *                       str queue_id, u64 msg_offset, u64 msg_size
 *   IMSG_DKIM_SIGN_REP  u32 verdict (enum sign_verdict), str fields,
 *                       str note
 *
 * The frame id is the requester's and is echoed. fields are the
 * DKIM-Signature header fields to send before the message (CR LF ended;
 * "" unless SIGN_SIGNED). note is for the log: "d=example.org s=sel"
 * when signed, else why not ("no key for example.net", "key
 * /etc/postern/dkim/x.key not loaded: ...").
 *
 * Verdicts:
 *   SIGN_SIGNED    fields hold at least one signature;
 *   SIGN_UNSIGNED  send it as it is: its From: domain has no key, or has
 *                  keys that cannot be used and dkim_required is off;
 *   SIGN_DEFER     do not send it now: its domain's key cannot be used
 *                  and is required, or the message could not be read.
 *                  A local, temporary failure: no attempt is counted.
 */
#ifndef POSTERN_SIGN_PROTO_H
#define POSTERN_SIGN_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "base/ipc.h"

#define SIGN_FIELDS_MAX (64u * 1024)
#define SIGN_NOTE_MAX 1024

enum sign_verdict { SIGN_SIGNED = 0, SIGN_UNSIGNED = 1, SIGN_DEFER = 2 };

struct sign_req {
    char *queue_id;
    uint64_t msg_offset, msg_size;
};

struct sign_rep {
    uint32_t verdict;
    char *fields;
    char *note;
};

void sign_req_encode(struct ipc_w *w, const struct sign_req *q);
int sign_req_decode(const void *body, size_t len, struct sign_req *q); /* 0 or -1 */
void sign_req_free(struct sign_req *q);
void sign_rep_encode(struct ipc_w *w, const struct sign_rep *r);
int sign_rep_decode(const void *body, size_t len, struct sign_rep *r); /* 0 or -1 */
void sign_rep_free(struct sign_rep *r);
const char *sign_verdict_name(enum sign_verdict v); /* "signed" "unsigned" "deferred" */

#endif
