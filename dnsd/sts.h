/*
 * sts - MTA-STS policy discovery (RFC 8461 sections 3 and 5) for dnsd:
 * the _mta-sts TXT record, the policy cache (sts_cache) and the HTTPS
 * fetch (sts_fetch), put together.
 *
 * Why in dnsd: it is already the one unprivileged process that reaches
 * the network for lookups, it makes the TXT and A/AAAA lookups the fetch
 * depends on, and it holds no keys and has no access to the queue. A
 * separate child would need all of that plus another IPC edge.
 *
 * sts_lookup(s, domain, how, cb, arg): cb gets exactly one answer,
 * possibly before sts_lookup returns (everything cached):
 *   no STSv1 TXT record at _mta-sts.DOMAIN (none, several: RFC 8461
 *     3.1, or a malformed one), or the TXT lookup failed:
 *       the cached unexpired policy if there is one (an attacker may
 *       strip the record), else DNS_STS_NONE; reason says which case;
 *   the TXT id equals the cached unexpired policy's: that policy, no
 *     fetch;
 *   a new id, or nothing cached: the policy is fetched; success: stored
 *     and used; failure: the cached unexpired policy with reason
 *     "cached, refresh failed: WHY", else DNS_STS_FAILED with WHY.
 * Concurrent lookups of a domain share one TXT lookup and one fetch. A
 * domain whose fetch failed is not fetched again for STS_RETRY_S (its
 * last error is answered meanwhile), unless how has STS_FORCE.
 * how: 0; STS_FORCE (smtpctl sts lookup): fetch whatever the cache
 * holds, even within STS_RETRY_S of a failure.
 *
 * Background refresh: a timer runs a lookup that fetches even when the
 * id is unchanged for each cached policy once a quarter of its max_age
 * is left, or a day after it was fetched, whichever comes first (RFC
 * 8461 10.2: refresh before expiry, so that a policy whose TXT record
 * is stripped stays in force), at most once per STS_RETRY_S after a
 * failure; expired policies are dropped. Deliveries never wait for it.
 *
 * With mta_sts = no, sts_lookup answers DNS_STS_NOT_ASKED at once.
 */
#ifndef POSTERN_DNSD_STS_H
#define POSTERN_DNSD_STS_H

#include <openssl/ssl.h>
#include <stdint.h>

#include "base/util.h"
#include "mail/dns_proto.h"
#include "mail/mta_sts.h"

#define STS_RETRY_S 60
#define STS_FORCE 0x1u

struct event_base;
struct dnsq_engine;
struct sts_cache;
struct sts;

struct sts_conf {
    int enabled;    /* mta_sts */
    uint16_t port;  /* mta_sts_port */
    int timeout_ms; /* mta_sts_fetch_timeout */
};

/* One answer; pointers valid during the callback. */
struct sts_answer {
    enum dns_sts_state state;
    const char *domain;
    const char *id;               /* DNS_STS_POLICY */
    const struct sts_policy *pol; /* DNS_STS_POLICY */
    const char *reason;           /* "" or why */
};

typedef void (*sts_cb)(const struct sts_answer *a, void *arg);

/* e: the cached engine (TXT, A/AAAA); ctx: from sts_fetch_ctx (made
 * before the chroot); cache: owned by the caller. */
struct sts *sts_new(struct event_base *base, struct dnsq_engine *e, SSL_CTX *ctx,
                    struct sts_cache *cache, const struct sts_conf *conf);
void sts_configure(struct sts *s, const struct sts_conf *conf);
void sts_free(struct sts *s);
void sts_lookup(struct sts *s, const char *domain, unsigned how, sts_cb cb, void *arg);
/* Drop the cached policy of domain (NULL: all) and its failure memory;
 * returns how many policies were dropped. */
size_t sts_flush(struct sts *s, const char *domain);
/* `smtpctl show sts`: the cached policies (text or JSON). */
void sts_show(struct sts *s, struct buf *out, int json);
/* Fetches made (for tests and show sts). */
uint64_t sts_fetches(const struct sts *s);

/* Put an answer into a result (dns_result_set_sts). */
void sts_answer_to_result(const struct sts_answer *a, struct dns_result *r);

#endif
