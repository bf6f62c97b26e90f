/*
 * policy - the routing configuration qmgr holds: the per-domain rules of
 * etc/domains over main.cf, the relay gateways of relay_gateways, and
 * the sender map (relay_sender_map). The maps are the compiled copies
 * master puts into the spool (spool.h: etc/domains.db, etc/senders.db);
 * qmgr opens them after its privilege drop and again on every reload.
 * qmgr holds no gateway credentials: relay does (mail/secrets.h), and
 * tells qmgr only which gateways have some.
 *
 *   routing_init(q)     once, after child_drop: parse relay_gateways, open
 *                       the maps present (a missing map means "none");
 *   routing_reload(q)   after main.cf was re-read: the same again, and
 *                       forget every cached rule so the new ones apply
 *                       from the next decision on (deliveries in flight
 *                       keep what they were sent with);
 *   policy_for(q, d)    (qmgr.h) the rules for destination d: cached per
 *                       domain until the next reload; never NULL (a map
 *                       error or an entry that does not parse is logged
 *                       once and main.cf applies);
 *   policy_lookup(q, domain, &pol)  the same for any domain, uncached,
 *                       for smtpctl route (free with qpolicy_clear).
 *
 * routing_sender_gateways(q, sender) gives the gateway names the sender
 * map lists for a sender: the address itself first, then "@domain";
 * NULL when there is no map or no entry. The gateway statistics of `smtpctl show relays`
 * live here too (routing_gw_stat).
 */
#ifndef QMGR_POLICY_H
#define QMGR_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "decide.h"

struct qmgr;
struct gateways;

/* What qmgr has seen of one gateway since it started. */
struct gw_stat {
    uint64_t sent;   /* deliveries it took */
    uint64_t failed; /* deliveries it was tried for and did not take */
    uint32_t consecutive;
    int64_t last_ok_us, last_fail_us;
    char *last_error;
    unsigned active; /* relay deliveries started through it, in flight */
};

/* -1 when a compiled map that is there cannot be opened (logged). */
int routing_init(struct qmgr *q);
void routing_reload(struct qmgr *q);
void routing_free(struct qmgr *q);

/* *pol filled (free with qpolicy_clear). */
void policy_lookup(struct qmgr *q, const char *domain, struct qpolicy *pol);

const struct gateways *routing_gateways(struct qmgr *q);
/*
 * NULL-terminated gateway names, owned by the cache (valid until the
 * next reload); *key (may be NULL) gets the map key that matched.
 */
char *const *routing_sender_gateways(struct qmgr *q, const char *sender, const char **key);
/* The gateways relay has credentials for, as it said last (names taken
 * over, NULL-terminated); routing_has_auth asks about one. */
void routing_set_auth(struct qmgr *q, char **names);
int routing_has_auth(struct qmgr *q, const char *gateway);
/* A relay plan's gateways with the first that has room under its
 * max_connections moved to the front: 0; -1 when none has room. */
struct route_plan;
int policy_gateway_room(struct qmgr *q, struct route_plan *plan);
/* Statistics of a gateway by name (created on first use). */
struct gw_stat *routing_gw_stat(struct qmgr *q, const char *gateway);

/*
 * The glue between dispatch.c and route.h. policy_plan: the next attempt
 * for a group of m at d (route_decide with the message's size and what
 * the sender map says). policy_fill_req: the routing part of a delivery
 * request for that plan (phase, attempt, target, hosts with credentials,
 * TLS, port, mx override, reuse key) and dl->via (the gateways in try
 * order, or the static route); policy_req_done frees what it allocated.
 * policy_result: route_result for one recipient's result.
 * policy_note_relay: after a relay delivery, the gateways' statistics
 * and a clear log line when a gateway refused AUTH.
 */
struct msg;
struct dest;
struct delivery;
struct dlv_req;
struct dlv_res;
struct route_plan;

void policy_plan(struct qmgr *q, const struct msg *m, const struct dest *d, const struct qhist *h,
                 int64_t now, struct route_plan *out);
void policy_fill_req(struct qmgr *q, const struct dest *d, const struct route_plan *plan,
                     struct dlv_req *req, struct delivery *dl);
void policy_req_done(struct dlv_req *req);
struct qoutcome policy_result(struct qmgr *q, const struct msg *m, const struct dest *d,
                              const struct qhist *h, int phase, int status, int64_t now,
                              uint32_t rnd);
void policy_note_relay(struct qmgr *q, const struct msg *m, const struct delivery *dl,
                       const struct dlv_res *res);
/* One line per attempt: info for the relay phase and static routes, detailed for MX. */
void policy_log_attempt(struct qmgr *q, const struct msg *m, const struct dest *d,
                        const struct route_plan *plan, const struct delivery *dl);
/* ", phase=relay, gateway=NAME" or ", phase=direct, route=..." or "" for log lines. */
void policy_log_tag(const struct delivery *dl, const char *label, char *buf, size_t len);

/* policy_ctl.c: smtpctl route and show relays; POLICY_CTL_NOT_MINE for other commands. */
#define POLICY_CTL_NOT_MINE (-2000)
struct buf;
int policy_ctl(struct qmgr *q, int argc, char **argv, unsigned flags, struct buf *out);

#endif
