/*
 * ctl_proto - byte layout of control requests and replies (ctl_proto.h).
 * argc is bounded before anything is allocated.
 */
#include "mail/ctl_proto.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void ctl_req_encode(struct ipc_w *w, const struct ctl_req *q)
{
    ipc_w_u32(w, q->flags);
    ipc_w_u32(w, (uint32_t)q->argc);
    for (size_t i = 0; i < q->argc; i++)
        ipc_w_str(w, q->argv[i]);
}

int ctl_req_decode(const void *body, size_t len, struct ctl_req *q)
{
    struct ipc_r r;
    uint32_t n;

    memset(q, 0, sizeof(*q));
    ipc_r_init(&r, body, len);
    q->flags = ipc_r_u32(&r);
    n = ipc_r_u32(&r);
    if (!ipc_r_ok(&r) || n > CTL_MAX_ARGS) {
        ctl_req_free(q);
        return ipc_r_ok(&r) ? CTL_DEC_TOO_MANY : CTL_DEC_ERR;
    }
    q->argv = xcalloc((size_t)n + 1, sizeof(char *));
    q->argc = n;
    for (uint32_t i = 0; i < n; i++)
        q->argv[i] = xstrdup(ipc_r_str(&r));
    if (!ipc_r_done(&r)) {
        ctl_req_free(q);
        return CTL_DEC_ERR;
    }
    return CTL_DEC_OK;
}

void ctl_req_free(struct ctl_req *q)
{
    for (size_t i = 0; q->argv && i < q->argc; i++)
        free(q->argv[i]);
    free(q->argv);
    memset(q, 0, sizeof(*q));
}

void ctl_rep_encode(struct ipc_w *w, uint32_t code, const char *output)
{
    ipc_w_u32(w, code);
    ipc_w_str(w, output);
}

int ctl_rep_decode(const void *body, size_t len, struct ctl_rep *r)
{
    struct ipc_r rd;

    memset(r, 0, sizeof(*r));
    ipc_r_init(&rd, body, len);
    r->code = ipc_r_u32(&rd);
    r->output = xstrdup(ipc_r_str(&rd));
    if (!ipc_r_done(&rd)) {
        ctl_rep_free(r);
        return CTL_DEC_ERR;
    }
    return CTL_DEC_OK;
}

void ctl_rep_free(struct ctl_rep *r)
{
    free(r->output);
    memset(r, 0, sizeof(*r));
}
