/*
 * retry - how long a deferred delivery waits before its next try.
 *
 * retry_delay_us(base, max, failures, rnd): after `failures` failed
 * attempts (1 for the first), wait base * 2^(failures-1) seconds, capped
 * at max (max <= base, e.g. 0, means a fixed delay of base), plus a small
 * jitter of 0..10% taken from rnd so that mail deferred together does not
 * come back in one burst. The jitter only ever adds: a retry never comes
 * before retry_delay. Pure; the caller supplies the random value.
 */
#ifndef QMGR_RETRY_H
#define QMGR_RETRY_H

#include <stdint.h>

int64_t retry_delay_us(long long base_s, long long max_s, unsigned failures, uint32_t rnd);

#endif
