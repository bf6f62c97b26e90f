/*
 * retry - delay before the next attempt; see retry.h.
 */
#include "retry.h"

int64_t retry_delay_us(long long base_s, long long max_s, unsigned failures, uint32_t rnd)
{
    int64_t d, cap, jitter;

    if (base_s < 1)
        base_s = 1;
    d = (int64_t)base_s * 1000000;
    cap = max_s > base_s ? (int64_t)max_s * 1000000 : d;
    for (unsigned i = 1; i < failures && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    /* 0 .. d/10, proportional to rnd / 2^32 */
    jitter = (int64_t)((double)(d / 10) * ((double)rnd / 4294967296.0));
    return d + jitter;
}
