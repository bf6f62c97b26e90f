/*
 * Unit tests for dnsd/dns_cache: LRU bound, TTL expiry with an injected
 * clock, hit/miss counters, flush, replacing entries, walk order.
 */
#include <stdio.h>
#include <string.h>

#include "../../dnsd/dns_cache.h"
#include "tap.h"
#include "base/util.h"

#define S 1000000LL /* one second in microseconds */

static void count_walk(const char *key, const char *summary, uint32_t ttl, const void *data,
                       size_t len, void *arg)
{
    struct buf *b = arg;
    buf_printf(b, "%s=%s/%u/%zu;", key, summary, ttl, len);
}

static const char *get(struct dnscache *c, const char *key, int64_t now)
{
    size_t len = 0;
    return dnscache_get(c, key, now, &len);
}

int main(void)
{
    struct dnscache *c = dnscache_new(3);
    const struct dnscache_stats *st = dnscache_stats(c);
    struct buf b;
    size_t len = 0;
    const char *v;

    plan_lazy();

    /* basic put/get, value copied with its length */
    dnscache_put(c, "a.test/MX", "AAAA", 4, "sa", 60, 0);
    v = dnscache_get(c, "a.test/MX", 1 * S, &len);
    ok(v && len == 4 && memcmp(v, "AAAA", 4) == 0, "stored value comes back");
    is_int(st->hits, 1, "one hit");
    ok(get(c, "b.test/MX", 1 * S) == NULL, "unknown key misses");
    is_int(st->misses, 1, "one miss");

    /* TTL: valid until now+ttl, gone at the boundary */
    ok(get(c, "a.test/MX", 59 * S + S / 2) != NULL, "still valid just before its TTL");
    ok(get(c, "a.test/MX", 60 * S) == NULL, "expired at its TTL");
    is_int(dnscache_count(c), 0, "expired entry dropped on get");
    is_int(st->expired, 1, "expiry counted");

    /* ttl 0 and size 0 store nothing */
    dnscache_put(c, "z.test/A", "x", 1, "", 0, 0);
    is_int(dnscache_count(c), 0, "ttl 0 is not cached");

    /* LRU bound: 3 entries; touching a keeps it, b is evicted */
    dnscache_put(c, "a/A", "1", 1, "", 100, 0);
    dnscache_put(c, "b/A", "2", 1, "", 100, 0);
    dnscache_put(c, "c/A", "3", 1, "", 100, 0);
    ok(get(c, "a/A", 1) != NULL, "a touched");
    dnscache_put(c, "d/A", "4", 1, "", 100, 2);
    is_int(dnscache_count(c), 3, "never more than the bound");
    ok(get(c, "b/A", 3) == NULL, "least recently used (b) evicted");
    ok(get(c, "a/A", 3) != NULL, "recently used a kept");
    ok(get(c, "d/A", 3) != NULL, "new d present");
    is_int(st->evictions, 1, "one eviction");

    /* many inserts never exceed the bound, and the table grows fine */
    {
        struct dnscache *big = dnscache_new(100);
        char key[64];
        int okall = 1;
        for (int i = 0; i < 5000; i++) {
            snprintf(key, sizeof(key), "h%d.test/A", i);
            dnscache_put(big, key, key, strlen(key), "", 300, i);
            if (dnscache_count(big) > 100)
                okall = 0;
        }
        ok(okall, "5000 inserts into a 100-entry cache never exceed 100");
        is_int(dnscache_count(big), 100, "full at 100");
        ok(get(big, "h4999.test/A", 6000) != NULL, "newest present");
        ok(get(big, "h4899.test/A", 6000) == NULL, "101st newest evicted");
        ok(get(big, "h4900.test/A", 6000) != NULL, "100th newest present");
        dnscache_set_max(big, 10);
        is_int(dnscache_count(big), 10, "shrinking evicts to the new bound");
        dnscache_free(big);
    }

    /* an expired entry makes room before a live one is evicted */
    {
        struct dnscache *e = dnscache_new(2);
        dnscache_put(e, "old/A", "o", 1, "", 1, 0);
        dnscache_put(e, "live/A", "l", 1, "", 100, 0);
        (void)get(e, "old/A", 0); /* old is now most recently used */
        dnscache_put(e, "new/A", "n", 1, "", 100, 5 * S);
        ok(get(e, "live/A", 5 * S) != NULL, "live entry kept when an expired one can go");
        ok(get(e, "new/A", 5 * S) != NULL, "new entry stored");
        dnscache_free(e);
    }

    /* replacing a key keeps one entry with the new value and TTL */
    dnscache_put(c, "a/A", "new", 3, "s2", 5, 10 * S);
    v = dnscache_get(c, "a/A", 10 * S, &len);
    ok(v && len == 3 && memcmp(v, "new", 3) == 0, "replaced value");
    ok(get(c, "a/A", 15 * S) == NULL, "replaced TTL applies");

    /* walk: most recent first, TTL left rounded up */
    dnscache_flush(c);
    dnscache_put(c, "x/MX", "1", 1, "first", 10, 0);
    dnscache_put(c, "y/MX", "22", 2, "second", 20, 0);
    buf_init(&b);
    dnscache_walk(c, S / 2, count_walk, &b);
    is_str(b.data, "y/MX=second/20/2;x/MX=first/10/1;", "walk order, TTL left and the value");
    buf_free(&b);
    ok(dnscache_has(c, "x/MX", 0) && !dnscache_has(c, "x/MX", 10 * S), "has() honours TTL");

    is_int(dnscache_flush(c), 2, "flush reports what it dropped");
    is_int(dnscache_count(c), 0, "empty after flush");
    dnscache_put(c, "q/A", "1", 1, "", 5, 0);
    is_int(dnscache_expire(c, 5 * S), 1, "expire drops due entries");

    dnscache_set_max(c, 0);
    dnscache_put(c, "q/A", "1", 1, "", 5, 0);
    is_int(dnscache_count(c), 0, "size 0 caches nothing");
    dnscache_free(c);
    return done_testing();
}
