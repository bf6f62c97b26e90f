/*
 * libFuzzer target: control request and reply bodies (common/mail/ctl_proto.c)
 * from arbitrary bytes. The first byte picks the decoder; whatever decodes
 * must encode again to the same bytes and decode to the same fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mail/ctl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_req(const uint8_t *p, size_t n)
{
    struct ctl_req q, q2;
    struct ipc_w w;

    if (ctl_req_decode(p, n, &q) != CTL_DEC_OK)
        return;
    if (q.argc > CTL_MAX_ARGS || q.argv == NULL || q.argv[q.argc] != NULL)
        __builtin_trap();
    ipc_w_init(&w);
    ctl_req_encode(&w, &q);
    if (w.len != n || memcmp(w.p, p, n) != 0 || ctl_req_decode(w.p, w.len, &q2) != CTL_DEC_OK)
        __builtin_trap();
    if (q2.flags != q.flags || q2.argc != q.argc)
        __builtin_trap();
    for (size_t i = 0; i < q.argc; i++)
        if (strcmp(q2.argv[i], q.argv[i]) != 0)
            __builtin_trap();
    ctl_req_free(&q2);
    ctl_req_free(&q);
    ipc_w_free(&w);
}

static void check_rep(const uint8_t *p, size_t n)
{
    struct ctl_rep r, r2;
    struct ipc_w w;

    if (ctl_rep_decode(p, n, &r) != CTL_DEC_OK)
        return;
    ipc_w_init(&w);
    ctl_rep_encode(&w, r.code, r.output);
    if (w.len != n || memcmp(w.p, p, n) != 0 || ctl_rep_decode(w.p, w.len, &r2) != CTL_DEC_OK)
        __builtin_trap();
    if (r2.code != r.code || strcmp(r2.output, r.output) != 0)
        __builtin_trap();
    ctl_rep_free(&r2);
    ctl_rep_free(&r);
    ipc_w_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        check_rep(data + 1, size - 1);
    else
        check_req(data + 1, size - 1);
    return 0;
}
