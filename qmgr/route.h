/*
 * route - the routing decision of DESIGN section 4 as plain functions
 * over plain data: the rule in force for a domain (struct qpolicy), the
 * message (size, what the sender map says), the configured gateways and
 * the recipient group's history -> what the next attempt is.
 *
 * route_decide(ctx, hist, now) is asked before every delivery:
 *   QNEXT_FAIL    expired (max_queue_lifetime), or no attempt left;
 *   QNEXT_DIRECT  the direct phase: the MX hosts (with the mx= override),
 *                 or the static route (route = smtp:...);
 *   QNEXT_RELAY   the relay phase, with the gateways in the order this
 *                 attempt tries them (priority, the domain's gateways=
 *                 subset or the sender map's list, rotated by attempt).
 *   QNEXT_LOCAL   the domain is in mydestination (qpolicy.local): local
 *                 delivers it; a temporary failure is retried after
 *                 retry_delay until max_queue_lifetime, never elsewhere.
 * The clauses, in order:
 *   1. Mail that was tried and is older than max_queue_lifetime fails.
 *   1b. A local domain goes to local.
 *   2. Relay only (no direct attempt at all): gateway_policy = always,
 *      route = relay, a message bigger than relay_size_over, or a sender
 *      the sender map lists. These are explicit choices and apply
 *      whatever gateway_policy says. Static routes do not apply then.
 *   3. Otherwise the direct phase comes first, up to direct_attempts.
 *      The relay phase follows when gateway_policy is undelivered or
 *      on_error and relay_attempts > 0 and a gateway is enabled, once
 *      direct attempts are spent (or 0), or once the group has failed
 *      directly for direct_max_age (> 0), or (on_error) right after a
 *      direct error whose class is in relay_on_errors. Once in the relay
 *      phase a group never goes back to direct delivery.
 *   4. The relay phase has relay_attempts attempts; attempt k (from 0)
 *      starts at gateway position k mod n (gateways_rotate).
 *
 * route_result(ctx, hist, phase, status, now, rnd) turns one recipient's
 * result into its state. hist already counts the attempt and holds its
 * error class. Sent; failed on a permanent error, unless it came from
 * the direct phase under on_error with its class in relay_on_errors and
 * a relay attempt is possible (then deferred, tried through the
 * gateways at once); on a temporary error, whatever route_decide says
 * about the next attempt: failed when there is none, else deferred.
 * A switch from the direct to the relay phase is tried at once (the
 * gateways have not been failing); otherwise the next try comes after
 * retry_delay (doubling per failure within the phase, up to
 * retry_delay_max), never after the expiry time, and never after the
 * moment direct_max_age would switch the group to the gateways.
 *
 * qpolicy_build() fills a qpolicy from a domain rule over main.cf (the
 * rule may be NULL: main.cf alone); qpolicy_clear() frees what it holds.
 */
#ifndef QMGR_ROUTE_H
#define QMGR_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "mail/config.h"
#include "decide.h"

struct domain_rule;
struct gateway;
struct gateways;

#define ROUTE_MAX_GW 64

struct route_ctx {
    const struct qpolicy *p;
    const struct gateways *gws; /* relay_gateways; NULL: none */
    uint64_t size;              /* the message's size in bytes */
    char *const *sender_gws;    /* gateways the sender map lists for its sender, or NULL */
};

struct route_plan {
    enum qnext next;
    int expired;       /* QNEXT_FAIL because of max_queue_lifetime */
    const char *why;   /* QNEXT_FAIL: the reason; QNEXT_RELAY: why through gateways */
    unsigned attempt;  /* this attempt's number within its phase, from 1 */
    unsigned attempts; /* attempts the phase has */
    int static_route;  /* QNEXT_DIRECT through route = smtp:... */
    int relay_only;    /* no direct phase for this message */
    const struct gateway *gw[ROUTE_MAX_GW]; /* QNEXT_RELAY: in the order to try */
    size_t ngw;
};

/* Why this message goes through the gateways only, or NULL (clause 2). */
const char *route_relay_only(const struct route_ctx *c);
/* 1 when the rule lets a group fall back to the gateways (clause 3). */
int route_fallback(const struct qpolicy *p);
/* The enabled gateways (the subset this message may use), unrotated. */
size_t route_gateways(const struct route_ctx *c, const struct gateway **out, size_t max);

struct route_plan route_decide(const struct route_ctx *c, const struct qhist *h, int64_t now);
/* phase: enum dlv_phase of the attempt; status: enum dlv_status. */
struct qoutcome route_result(const struct route_ctx *c, const struct qhist *h, int phase,
                             int status, int64_t now, uint32_t rnd);

void qpolicy_build(const struct domain_rule *r, const struct config *c, struct qpolicy *out);
void qpolicy_clear(struct qpolicy *p);
/* "dns network" -> bits (1u << DLV_CLASS_x); unknown words ignored. */
unsigned route_class_mask(char *const *words);

#endif
