/*
 * sts_cache - dnsd's MTA-STS policy cache: every policy fetched, kept in
 * memory and written through to a Berkeley DB file (sts.db in dnsd's own
 * chroot, queue_directory/dnsd/) so that it survives restarts: a policy
 * an attacker strips the TXT record of must still be enforced after a
 * restart (RFC 8461 5).
 *
 * Key: the domain (normalized). Value (sts_entry_encode): the policy
 * (mode, max_age, mx patterns), its id, fetched_at and expires_at =
 * fetched_at + max_age (wall clock, seconds), the last refresh attempt
 * and its error ("" when it worked).
 *
 * sts_cache_open() never fails: a file BDB cannot open, or whose records
 * do not all read back, is logged at error level and moved aside to
 * PATH.corrupt-YYYYMMDDTHHMMSS, and an empty cache is started; when even
 * that cannot be written the cache lives in memory only (logged). Mail
 * never stops for it. Writes are synced (policies change rarely); a
 * failed write is logged and the entry stays in memory.
 */
#ifndef POSTERN_DNSD_STS_CACHE_H
#define POSTERN_DNSD_STS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mail/mta_sts.h"

struct sts_entry {
    char domain[DNS_MAX_NAME + 1];
    char id[STS_ID_MAX + 1];
    struct sts_policy pol;
    int64_t fetched_at, expires_at;
    int64_t last_try;     /* last fetch attempt (0: none since fetched_at) */
    char last_error[400]; /* of that attempt, "" when it worked */
};

struct sts_cache;

struct sts_cache *sts_cache_open(const char *path);
void sts_cache_close(struct sts_cache *c);
/* The entry of domain, or NULL. Valid until the next put/del/flush. */
struct sts_entry *sts_cache_get(struct sts_cache *c, const char *domain);
/* Insert or replace (copied), and write it through. */
void sts_cache_put(struct sts_cache *c, const struct sts_entry *e);
/* 1 when domain had an entry. */
int sts_cache_del(struct sts_cache *c, const char *domain);
size_t sts_cache_flush(struct sts_cache *c);
size_t sts_cache_count(const struct sts_cache *c);
/* Entries in domain order: i from 0 to count - 1. */
const struct sts_entry *sts_cache_at(const struct sts_cache *c, size_t i);
/* 1 when the cache is written to disk, 0 when in memory only. */
int sts_cache_persistent(const struct sts_cache *c);

/* The value bytes of an entry (without the domain, which is the key);
 * decode: 0, or -1 for anything malformed or out of bounds. */
struct ipc_w;
void sts_entry_encode(struct ipc_w *w, const struct sts_entry *e);
int sts_entry_decode(const void *p, size_t len, const char *domain, struct sts_entry *e);

#endif
