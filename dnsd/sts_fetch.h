/*
 * sts_fetch - one HTTPS GET of an MTA-STS policy (RFC 8461 3.3):
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt, on dnsd's libevent
 * loop, never blocking it.
 *
 * sts_fetch_ctx() makes the TLS client context before dnsd chroots: TLS
 * 1.2 or newer, peer verification against ca_file, or the system's CA
 * bundle file when ca_file is empty (loaded whole now: after the chroot
 * there is no /etc/ssl). NULL and *err when ca_file cannot be read.
 *
 * sts_fetch_start() resolves mta-sts.DOMAIN with lookup_host (dnsd's
 * cached engine), connects to its addresses in turn on `port` (the next
 * address only when a connection cannot be made), does TLS with SNI and
 * checks the certificate chain and that it names mta-sts.DOMAIN
 * (X509_VERIFY_PARAM_set1_host, no partial wildcards), sends an
 * HTTP/1.1 GET with Host:, and judges the response with sts_http (200
 * only, text/plain, no redirect followed, at most STS_POLICY_MAX bytes).
 * The whole fetch, DNS included, is bounded by timeout_ms.
 *
 * cb is called exactly once, never from inside sts_fetch_start: body
 * (valid during the call) and its length on success, else body NULL and
 * why ("mta-sts.a.test: certificate verify failed: ...", "...: HTTP
 * status 404 (only 200 is accepted)", "...: timed out after 10 s").
 * sts_fetch_cancel() stops a fetch without calling cb.
 */
#ifndef POSTERN_DNSD_STS_FETCH_H
#define POSTERN_DNSD_STS_FETCH_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dnsq_engine;
struct sts_fetch;

typedef void (*sts_fetch_cb)(const char *body, size_t len, const char *why, void *arg);

SSL_CTX *sts_fetch_ctx(const char *ca_file, char **err);
struct sts_fetch *sts_fetch_start(struct event_base *base, struct dnsq_engine *e, SSL_CTX *ctx,
                                  const char *domain, uint16_t port, int timeout_ms,
                                  sts_fetch_cb cb, void *arg);
void sts_fetch_cancel(struct sts_fetch *f);

#endif
