/*
 * sts_join - the MTA-STS policy alongside an MX lookup (DNS_Q_STS):
 * lookup_mx calls sts_join_wrap() first; when the request asks for the
 * policy, it swaps the lookup's callback for one that waits for both the
 * MX set and sts_lookup(), puts the policy into the result
 * (dns_result.sts) and then calls the original callback once. Kept out
 * of dns_lookup.c so that the MX lookup itself does not change.
 *
 * sts_join_set() names the sts engine (dnsd's main, after the chroot);
 * without one, or without DNS_Q_STS, nothing is wrapped and the result's
 * sts stays DNS_STS_NOT_ASKED.
 */
#ifndef POSTERN_DNSD_STS_JOIN_H
#define POSTERN_DNSD_STS_JOIN_H

#include "dns_lookup.h"

struct sts;

void sts_join_set(struct sts *s);
void sts_join_wrap(const char *domain, unsigned flags, lookup_cb *cb, void **arg);

#endif
