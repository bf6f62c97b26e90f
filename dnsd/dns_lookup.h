/*
 * dns_lookup - the two lookups dnsd offers, built from single questions
 * asked through dns_query:
 *
 * lookup_mx(domain, override): the MX set. With an override list (the
 *   domain's mx= option) its entries are the hosts, in list order, each
 *   its own preference; literal addresses are used as they are, names are
 *   resolved to A/AAAA. Without one: MX query (CNAMEs followed, at most
 *   DNSANS_MAX_HOPS in all); NXDOMAIN -> permanent; null MX -> permanent
 *   "domain does not accept mail"; no MX -> the domain itself as an
 *   implicit MX of preference 0; else the MX hosts by preference, each
 *   with the addresses of the additional section or, when it had none,
 *   A and AAAA lookups. A domain written as an address literal
 *   "[192.0.2.1]" gives that address.
 *   The set is OK when one host has an address; else temporary if any
 *   host's lookup failed temporarily, else permanent.
 * lookup_host(name): A and AAAA of one name (one host in the result).
 *
 * lookup_txt(name): the TXT records of name (CNAMEs followed), for
 *   `smtpctl dns txt` and `smtpctl dkim check`: found (each record's
 *   strings joined, dnsans_txt), none (the name exists without TXT),
 *   NXDOMAIN, or failed (SERVFAIL, timeouts, a CNAME loop: why says).
 *   Asked on the engine given: dnsd gives it one without a cache, so a
 *   record just published is seen at once.
 *
 * DNSSEC (dnsq_answer.sec of the answers used; all insecure with dnssec =
 * off): dns_result.sec is the MX answer's status (every answer of its
 * CNAME chain; implicit MX: the NODATA answer; override list and
 * literals: insecure; a HOST request: its host's). dns_host.sec is secure
 * only when both its A and AAAA answers were (addresses from an MX
 * packet's additional section are never secure: when the MX answer is
 * secure they are dropped and the host is looked up). An MX answer that
 * is BOGUS makes the lookup DNS_TEMP "DNSSEC validation failed for D: ...";
 * a bogus address answer is a temporary failure of that host.
 * flags DNS_Q_DANE (and dnssec not off): for every host with addresses
 * whose MX answer (MX requests, not override or literal) or name (HOST
 * requests) and addresses are secure, TLSA _PORT._tcp.HOST is asked, all
 * hosts at once, PORT the host's own, else the request's, else 25:
 * tlsa_state FOUND (every record, usable or not, at most DNS_MAX_TLSA),
 * NONE (secure NXDOMAIN/NODATA), INSECURE (an insecure answer), FAILED
 * with tlsa_reason (SERVFAIL, timeout, bogus, malformed). Other hosts
 * stay NOT_ASKED. DNS_Q_STS is not handled here.
 *
 * Addresses of a host are listed IPv4 first, then IPv6, in answer order.
 * Failures are DNS_TEMP (timeouts, SERVFAIL, REFUSED, CNAME loops) or
 * DNS_PERM (NXDOMAIN, null MX, no address records), with a reason.
 * cb gets the result (valid during the call) exactly once, possibly
 * before lookup_* returns when everything was cached.
 */
#ifndef POSTERN_DNSD_DNS_LOOKUP_H
#define POSTERN_DNSD_DNS_LOOKUP_H

#include <stddef.h>

#include "mail/dns_proto.h"
#include "dns_query.h"

typedef void (*lookup_cb)(const struct dns_result *r, void *arg);

/* flags: DNS_Q_* of the request (TLSA, MTA-STS); port: for TLSA names. */
void lookup_mx(struct dnsq_engine *e, const char *domain, const char *const *override, size_t n,
               unsigned flags, uint16_t port, lookup_cb cb, void *arg);
void lookup_host(struct dnsq_engine *e, const char *name, unsigned flags, uint16_t port,
                 lookup_cb cb, void *arg);

enum txt_status { TXT_FOUND, TXT_NODATA, TXT_NXDOMAIN, TXT_FAILED };

struct txt_result {
    const char *name;  /* as asked, normalized */
    const char *final; /* the name the records are at (after CNAMEs) */
    enum txt_status status;
    char *const *txt; /* TXT_FOUND: n records */
    size_t n;
    const char *why; /* TXT_FAILED */
};

typedef void (*txt_cb)(const struct txt_result *r, void *arg);

/* cb is called exactly once, possibly before lookup_txt returns. */
void lookup_txt(struct dnsq_engine *e, const char *name, txt_cb cb, void *arg);
const char *txt_status_name(enum txt_status s); /* "found" "nodata" "nxdomain" "failed" */

#endif
