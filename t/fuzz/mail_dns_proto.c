/*
 * libFuzzer target: the dnsd reply and request bodies (dns_proto) on
 * arbitrary bytes; a decoded reply must respect the limits and survive
 * formatting and re-encoding.
 */
#include <stddef.h>
#include <stdint.h>

#include "mail/dns_proto.h"

/* the request flags and TLSA port the decoders return (not checked here) */
static unsigned qflags;
static uint16_t qport;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dns_result r;
    const char *dom, *ov[DNS_MAX_OVERRIDE];
    size_t n;

    if (dns_rep_decode(data, size, &r) == 0) {
        struct buf b;
        struct ipc_w w;
        if (r.nhosts > DNS_MAX_HOSTS)
            __builtin_trap();
        buf_init(&b);
        dns_result_format(&r, &b);
        dns_result_json(&r, &b);
        buf_free(&b);
        ipc_w_init(&w);
        dns_rep_encode(&w, &r);
        ipc_w_free(&w);
    }
    dns_result_free(&r);
    if (dns_mx_req_decode(data, size, &dom, ov, DNS_MAX_OVERRIDE, &n, &qflags, &qport) == 0 &&
        n > DNS_MAX_OVERRIDE)
        __builtin_trap();
    (void)dns_host_req_decode(data, size, &dom, &qflags, &qport);
    return 0;
}
