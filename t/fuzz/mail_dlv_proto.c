/*
 * libFuzzer target: delivery request and result bodies (common/mail/dlv_proto.c)
 * from arbitrary bytes. The first byte picks the decoder; whatever decodes
 * must encode again to the same bytes and decode to the same fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mail/dlv_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_req(const uint8_t *p, size_t n)
{
    struct dlv_req q, q2;
    struct ipc_w w;

    if (dlv_req_decode(p, n, &q) < 0)
        return;
    ipc_w_init(&w);
    dlv_req_encode(&w, &q);
    if (w.len != n || memcmp(w.p, p, n) != 0 || dlv_req_decode(w.p, w.len, &q2) < 0)
        __builtin_trap();
    if (q2.nrcpts != q.nrcpts || q2.nhosts != q.nhosts || strcmp(q2.queue_id, q.queue_id) != 0)
        __builtin_trap();
    dlv_req_free(&q2);
    dlv_req_free(&q);
    ipc_w_free(&w);
}

static void check_res(const uint8_t *p, size_t n)
{
    struct dlv_res r, r2;
    struct ipc_w w;

    if (dlv_res_decode(p, n, &r) < 0)
        return;
    ipc_w_init(&w);
    dlv_res_encode(&w, &r);
    if (w.len != n || memcmp(w.p, p, n) != 0 || dlv_res_decode(w.p, w.len, &r2) < 0)
        __builtin_trap();
    if (r2.n != r.n || strcmp(r2.relay, r.relay) != 0)
        __builtin_trap();
    dlv_res_free(&r2);
    dlv_res_free(&r);
    ipc_w_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        check_res(data + 1, size - 1);
    else
        check_req(data + 1, size - 1);
    return 0;
}
