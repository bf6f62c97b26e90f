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

void lookup_mx(struct dnsq_engine *e, const char *domain, const char *const *override, size_t n,
               lookup_cb cb, void *arg);
void lookup_host(struct dnsq_engine *e, const char *name, lookup_cb cb, void *arg);

#endif
