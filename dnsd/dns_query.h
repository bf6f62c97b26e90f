/*
 * dns_query - dnsd's upstream query engine: one question (name, type) in,
 * one answer packet or a temporary failure out, on a libevent loop.
 *
 * dnsq_ask() first looks in the cache (a hit calls cb at once, before
 * dnsq_ask returns); then joins a query already in flight for the same
 * question (coalescing: many askers, one upstream query); else sends a new
 * query. A query goes over UDP with EDNS0 (payload 1232) from a fresh
 * socket bound to a random port, with a random ID and RD set; it is
 * retried over TCP when the answer is truncated and without EDNS0 after a
 * FORMERR. An answer is accepted only from the server's address and port,
 * with the query's ID and the same question; anything else is ignored
 * and logged at warn. SERVFAIL, REFUSED and other rcodes, timeouts
 * (dns_timeout per try) and TCP failures move to the next server; after
 * dns_attempts rounds over all servers the askers get a temporary
 * failure with the last reason. A server that timed out is tried last
 * by later queries (until it answers again).
 *
 * NOERROR and NXDOMAIN answers are cached (dns_cache) under "name/TYPE"
 * for their TTL clamped to [ttl_min, ttl_max]; negative answers for the
 * RFC 2308 SOA TTL, and not at all without a SOA.
 * Every query and answer is logged at detailed level.
 *
 * DNSSEC (conf.dnssec, main.cf `dnssec`):
 *   DNSQ_SEC_OFF       queries as above; every answer DNSSEC_INSECURE.
 *   DNSQ_SEC_VALIDATE  queries carry EDNS0 with DO and CD; each NOERROR/
 *                      NXDOMAIN answer is judged by dnssec_validate (the
 *                      engine itself fetches the DNSKEY and DS records
 *                      the chain needs, validated and cached in turn)
 *                      before it is cached and given to askers. The cache
 *                      keeps the status with the packet. A BOGUS answer
 *                      reaches askers as !ok, sec BOGUS, why "DNSSEC:
 *                      bogus: ..." (logged at info), and is cached for
 *                      DNSQ_BOGUS_TTL seconds at most (its own TTL if
 *                      shorter), so a broken zone is not asked again for
 *                      every lookup yet is retried within a minute.
 *   DNSQ_SEC_RESOLVER  queries carry DO and AD; an answer is SECURE when
 *                      the server set AD, else INSECURE. Only sound when
 *                      the servers are a validating resolver on loopback
 *                      (dnsd warns at start about any that is not).
 * While an answer is being validated its question stays in flight
 * (later askers join it); its socket and timer are already gone.
 */
#ifndef POSTERN_DNSD_DNS_QUERY_H
#define POSTERN_DNSD_DNS_QUERY_H

#include <ldns/ldns.h>
#include <stdint.h>

#include "dns_cache.h"
#include "resolv.h"

struct event_base;
struct dnsq_engine;

enum dnsq_dnssec { DNSQ_SEC_OFF = 0, DNSQ_SEC_VALIDATE, DNSQ_SEC_RESOLVER };

#define DNSQ_BOGUS_TTL 60

struct dnssec_anchors;

struct dnsq_conf {
    struct resolv_conf rc;
    int timeout_ms;
    int attempts;
    uint32_t ttl_min, ttl_max;
    enum dnsq_dnssec dnssec;
    const struct dnssec_anchors *anchors; /* DNSQ_SEC_VALIDATE (not owned) */
};

struct dnsq_stats {
    uint64_t asked;     /* dnsq_ask calls */
    uint64_t sent;      /* packets sent upstream (UDP and TCP) */
    uint64_t coalesced; /* asks that joined a query in flight */
    uint64_t timeouts, ignored, failures;
};

struct dnsq_answer {
    int ok;              /* 1: pkt is a NOERROR or NXDOMAIN answer */
    const ldns_pkt *pkt; /* when ok */
    const char *why;     /* when !ok: "timeout from 127.0.0.1:53" ... */
    int cached;
    /* when ok: enum dnssec_status (mail/dns_proto.h) of the answer; always
     * DNSSEC_INSECURE with dnssec = off. A BOGUS answer is given as !ok
     * (a temporary failure) with why saying so, and sec DNSSEC_BOGUS. */
    int sec;
};

typedef void (*dnsq_cb)(const struct dnsq_answer *a, void *arg);

/* cache and stats may be shared by several engines (not owned). */
struct dnsq_engine *dnsq_engine_new(struct event_base *base, struct dnscache *cache,
                                    struct dnsq_stats *stats);
void dnsq_engine_configure(struct dnsq_engine *e, const struct dnsq_conf *conf);
/* Fails every query in flight (askers are called) and frees. */
void dnsq_engine_free(struct dnsq_engine *e);
size_t dnsq_inflight(const struct dnsq_engine *e);
/* name: normalized (dnsans_norm). */
void dnsq_ask(struct dnsq_engine *e, const char *name, ldns_rr_type t, dnsq_cb cb, void *arg);
/* Cache key for a question: "example.com/MX". */
char *dnsq_key(const char *name, ldns_rr_type t);
/* The DNSSEC status of a cache entry's value (for `show dns`). */
int dnsq_entry_sec(const void *data, size_t len);
/* The engine's DNSSEC mode. */
enum dnsq_dnssec dnsq_dnssec_mode(const struct dnsq_engine *e);
/* Seconds an answer may be cached (0: not at all), from the packet. */
uint32_t dnsq_cache_ttl(const ldns_pkt *p, const char *name, ldns_rr_type t, uint32_t ttl_min,
                        uint32_t ttl_max);

#endif
