/*
 * group - recipients of a message grouped by domain: one group = one
 * delivery (one SMTP transaction) to that domain's destination.
 *
 * addr_domain(addr) is the part after the last '@' ("" when there is
 * none). group_by_domain() gives each recipient the number of its group
 * (groups numbered in order of first appearance) and returns the groups'
 * domains, lower-cased (ASCII), so that "A@X.test" and "b@x.TEST" share
 * one delivery. Pure.
 */
#ifndef QMGR_GROUP_H
#define QMGR_GROUP_H

#include <stddef.h>
#include <stdint.h>

const char *addr_domain(const char *addr);
/*
 * addrs: n addresses. gidx: n slots for each recipient's group number.
 * *domains: malloc'd array of malloc'd domain names, one per group.
 * Returns the number of groups.
 */
size_t group_by_domain(char *const *addrs, size_t n, uint32_t *gidx, char ***domains);

#endif
