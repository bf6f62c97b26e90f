/*
 * libFuzzer target: the MTA-STS policy server's HTTP response parser
 * (dnsd/sts_http.c) on hostile bytes, fed in pieces whose sizes come from
 * the input's first byte, then the end of the connection. Invariants
 * (trap on violation): a complete response has status 200 and a body of
 * at most STS_POLICY_MAX bytes; a refused one says why; once done or
 * refused the state no longer changes; the bytes kept stay bounded.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mail/mta_sts.h"
#include "../../dnsd/sts_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct stshttp *h, enum stshttp_state st)
{
    if (st != h->st)
        __builtin_trap();
    if (st == STSHTTP_DONE && (h->status != 200 || h->body.len > STS_POLICY_MAX))
        __builtin_trap();
    if (st == STSHTTP_ERROR && h->why[0] == '\0')
        __builtin_trap();
    if (h->in.len > STSHTTP_HEADER_MAX + STS_POLICY_MAX + 65536)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stshttp h;
    enum stshttp_state st = STSHTTP_MORE, first_end = STSHTTP_MORE;
    size_t piece, off = 1;

    if (size < 1)
        return 0;
    piece = (size_t)(data[0] % 64) + 1;
    stshttp_init(&h);
    while (off < size) {
        size_t n = size - off < piece ? size - off : piece;
        st = stshttp_feed(&h, data + off, n);
        check(&h, st);
        if (st != STSHTTP_MORE && first_end == STSHTTP_MORE)
            first_end = st;
        if (first_end != STSHTTP_MORE && st != first_end)
            __builtin_trap(); /* done or refused is final */
        off += n;
    }
    st = stshttp_eof(&h);
    check(&h, st);
    if (first_end != STSHTTP_MORE && st != first_end)
        __builtin_trap();
    if (st == STSHTTP_MORE)
        __builtin_trap(); /* the end of the connection always decides */
    stshttp_free(&h);
    return 0;
}
