/*
 * dnssec - DNSSEC validation of dnsd's answers (RFC 4033, 4034, 4035,
 * 5155 NSEC3, 6840), asynchronous, over ldns's crypto.
 *
 * Trust anchors: dnssec_anchors_load() reads a file of DS and/or DNSKEY
 * records in zone-file text (Debian's /usr/share/dns/root.key; a test's
 * anchor for its own zone), comments and blank lines allowed; errors say
 * "FILE:LINE: why". An answer whose name has no anchor at or above it is
 * INSECURE without any further lookup.
 *
 * dnssec_validate() judges one answer packet (the reply to qname/qtype)
 * and calls cb exactly once (possibly before it returns) with
 *   SECURE    every RRset of the answer section that the answer uses (the
 *             CNAME chain and the final RRset), or for NXDOMAIN/NODATA
 *             the NSEC/NSEC3 denial, verifies up a chain of DNSKEYs and
 *             DS records to an anchor, with signatures valid now;
 *   INSECURE  no anchor covers qname, or the chain from the anchor ends
 *             at a provably unsigned delegation (a secure denial of DS at
 *             a zone cut);
 *   BOGUS     anything else under an anchor: missing or bad signatures,
 *             expired/not-yet-valid RRSIGs, a DS with no matching DNSKEY,
 *             a failed DNSKEY or DS lookup, an unprovable denial.
 * and a one-line reason for logs ("RRSIG over mx.a.test/A expired
 * 2026-01-01", "no DS for a.test matches its DNSKEY set").
 *
 * The DNSKEY and DS records the chain needs are asked through `fetch`
 * (dnsd passes its query engine, which validates those answers in turn
 * and caches them with their status): so a chain is walked once and then
 * comes from the cache. A DNSKEY answer for a zone is judged against the
 * zone's DS (or its anchor), not against itself. Recursion is bounded by
 * the number of labels (at most DNSSEC_MAX_DEPTH fetches per answer).
 */
#ifndef POSTERN_DNSD_DNSSEC_H
#define POSTERN_DNSD_DNSSEC_H

#include <ldns/ldns.h>
#include <stdint.h>
#include <time.h>

#include "mail/dns_proto.h" /* enum dnssec_status */

#define DNSSEC_MAX_DEPTH 16

struct dnssec_anchors;

struct dnssec_anchors *dnssec_anchors_load(const char *path, char **err);
void dnssec_anchors_free(struct dnssec_anchors *a);
/* Number of anchor records loaded. */
size_t dnssec_anchors_count(const struct dnssec_anchors *a);
/* The closest anchor owner at or above name (normalized, no final dot;
 * "." for the root), or NULL. */
const char *dnssec_anchor_for(const struct dnssec_anchors *a, const char *name);

/* The answer to one fetch: pkt NULL when the lookup failed (then sec is
 * BOGUS or the failure was temporary: why says). pkt is valid only during
 * the call. */
typedef void (*dnssec_fetch_done)(const ldns_pkt *pkt, int sec, const char *why, void *ctx);
typedef void (*dnssec_fetch_fn)(void *fetch_arg, const char *name, ldns_rr_type t,
                                dnssec_fetch_done done, void *ctx);

typedef void (*dnssec_cb)(enum dnssec_status st, const char *why, void *arg);

/* pkt is copied (the caller may free it after the call). now: wall-clock
 * time for signature validity. */
void dnssec_validate(const struct dnssec_anchors *a, dnssec_fetch_fn fetch, void *fetch_arg,
                     const ldns_pkt *pkt, const char *qname, ldns_rr_type qt, time_t now,
                     dnssec_cb cb, void *arg);

#endif
