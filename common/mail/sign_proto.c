/*
 * sign_proto - the signer's request and reply bodies; see sign_proto.h.
 */
#include "mail/sign_proto.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "mail/qfile.h"

void sign_req_encode(struct ipc_w *w, const struct sign_req *q)
{
    ipc_w_str(w, q->queue_id);
    ipc_w_u64(w, q->msg_offset);
    ipc_w_u64(w, q->msg_size);
}

int sign_req_decode(const void *body, size_t len, struct sign_req *q)
{
    struct ipc_r r;

    memset(q, 0, sizeof(*q));
    ipc_r_init(&r, body, len);
    q->queue_id = xstrdup(ipc_r_str(&r));
    q->msg_offset = ipc_r_u64(&r);
    q->msg_size = ipc_r_u64(&r);
    if (!ipc_r_done(&r) || !qfile_id_valid(q->queue_id) || q->msg_size > INT64_MAX ||
        q->msg_offset > INT64_MAX - q->msg_size) {
        sign_req_free(q);
        return -1;
    }
    return 0;
}

void sign_req_free(struct sign_req *q)
{
    free(q->queue_id);
    memset(q, 0, sizeof(*q));
}

void sign_rep_encode(struct ipc_w *w, const struct sign_rep *r)
{
    ipc_w_u32(w, r->verdict);
    ipc_w_str(w, r->fields ? r->fields : "");
    ipc_w_str(w, r->note ? r->note : "");
}

int sign_rep_decode(const void *body, size_t len, struct sign_rep *r)
{
    struct ipc_r rd;

    memset(r, 0, sizeof(*r));
    ipc_r_init(&rd, body, len);
    r->verdict = ipc_r_u32(&rd);
    r->fields = xstrdup(ipc_r_str(&rd));
    r->note = xstrdup(ipc_r_str(&rd));
    if (!ipc_r_done(&rd) || r->verdict > SIGN_DEFER || strlen(r->fields) > SIGN_FIELDS_MAX ||
        strlen(r->note) > SIGN_NOTE_MAX || (r->verdict == SIGN_SIGNED) != (r->fields[0] != '\0')) {
        sign_rep_free(r);
        return -1;
    }
    return 0;
}

void sign_rep_free(struct sign_rep *r)
{
    free(r->fields);
    free(r->note);
    memset(r, 0, sizeof(*r));
}

const char *sign_verdict_name(enum sign_verdict v)
{
    switch (v) {
    case SIGN_SIGNED:
        return "signed";
    case SIGN_UNSIGNED:
        return "unsigned";
    case SIGN_DEFER:
        return "deferred";
    }
    return "?";
}
