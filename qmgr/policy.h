/*
 * policy - the routing configuration qmgr holds: the per-domain rules of
 * etc/domains over main.cf, the relay gateways of relay_gateways with
 * their credentials (relay_secrets_map), and the sender map
 * (relay_sender_map). All maps are the compiled copies master puts into
 * the spool (spool.h: etc/domains.db, etc/secrets.db, etc/senders.db);
 * qmgr opens them after its privilege drop and again on every reload.
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
 * NULL when there is no map or no entry. routing_secret() gives a
 * gateway's AUTH user and password ("user password" under its name in
 * the secrets map). The gateway statistics of `smtpctl show relays`
 * live here too (routing_gw_stat).
 */
#ifndef QMGR_POLICY_H
#define QMGR_POLICY_H

#include <stdint.h>

#include "decide.h"

struct qmgr;
struct gateways;

/* What qmgr has seen of one gateway since it started. */
struct gw_stat {
    uint64_t sent;      /* deliveries it took */
    uint64_t failed;    /* deliveries it was tried for and did not take */
    uint32_t consecutive;
    int64_t last_ok_us, last_fail_us;
    char *last_error;
};

void routing_init(struct qmgr *q);
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
/* 1 and malloc'd *user, *pass when the secrets map has the gateway; else 0. */
int routing_secret(struct qmgr *q, const char *gateway, char **user, char **pass);
/* Statistics of a gateway by name (created on first use). */
struct gw_stat *routing_gw_stat(struct qmgr *q, const char *gateway);

#endif
