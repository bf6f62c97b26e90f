/*
 * dns_cache - dnsd's answer cache: at most `max` entries, least recently
 * used evicted first, each entry valid for its TTL.
 *
 * A pure module: no I/O, no clock of its own (every call takes `now` in
 * microseconds, from any monotonic source), so tests drive time.
 * Keys are text ("example.com/MX"); values are opaque bytes (dnsd keeps
 * the DNS answer packet) plus a one-line summary for `smtpctl show dns`.
 * dnscache_get counts hits and misses; an expired entry is a miss and is
 * dropped. A put with ttl 0, or into a cache of size 0, stores nothing.
 * Pointers returned by get stay valid until the next put/flush/set_max.
 */
#ifndef POSTERN_DNSD_DNS_CACHE_H
#define POSTERN_DNSD_DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct dnscache;

struct dnscache_stats {
    uint64_t hits, misses, inserts, evictions, expired;
};

struct dnscache *dnscache_new(size_t max);
void dnscache_free(struct dnscache *c);
/* Change the bound; evicts least recently used entries to fit. */
void dnscache_set_max(struct dnscache *c, size_t max);
size_t dnscache_max(const struct dnscache *c);
void dnscache_put(struct dnscache *c, const char *key, const void *data, size_t len,
                  const char *summary, uint32_t ttl, int64_t now);
const void *dnscache_get(struct dnscache *c, const char *key, int64_t now, size_t *len);
/* Like get but without touching counters or LRU order. */
int dnscache_has(const struct dnscache *c, const char *key, int64_t now);
size_t dnscache_count(const struct dnscache *c);
/* Drop everything; returns how many entries there were. */
size_t dnscache_flush(struct dnscache *c);
/* Drop expired entries; returns how many. */
size_t dnscache_expire(struct dnscache *c, int64_t now);
const struct dnscache_stats *dnscache_stats(const struct dnscache *c);

/* Visit live entries, most recently used first. ttl_left in seconds
 * (rounded up); data/len the value stored. */
typedef void (*dnscache_walk_fn)(const char *key, const char *summary, uint32_t ttl_left,
                                 const void *data, size_t len, void *arg);
void dnscache_walk(const struct dnscache *c, int64_t now, dnscache_walk_fn fn, void *arg);

#endif
