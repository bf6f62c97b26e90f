/*
 * gateways - the relay gateways of main.cf's relay_gateways (DESIGN 4.2).
 *
 * Each word of relay_gateways is one gateway:
 *     name=host[:port][/option...]
 * host is a name or an address ([v6] in brackets); port defaults to 25.
 * Options, in any order:
 *     highest | high | normal | below_normal | low   priority (normal)
 *     none | may | encrypt | verify | dane | dane-only  TLS mode (may); dane: DANE
 *                                                    (RFC 7672) when the gateway has
 *                                                    secure TLSA records, dane-only:
 *                                                    only then
 *     disabled                                       never used
 *     plainauth                                      AUTH allowed without TLS
 *     max_connections=N                              deliveries through it at
 *                                                    once, all domains together
 *                                                    (1..1000; 0 or absent: no
 *                                                    limit of its own)
 * Names are [A-Za-z0-9_.-]+, unique. AUTH credentials live in the secrets
 * map under the gateway's name ("user password").
 *
 * gateways_order() gives the enabled gateways an attempt may use, in the
 * order it tries them: highest priority first, equal priorities in the
 * order they are listed; a domain's `gateways=` list restricts the set.
 * gateways_rotate() starts that order at the gateway after the one the
 * previous attempt started at: attempt k (from 0) starts at position
 * k mod n and wraps, so a dead first gateway does not eat every retry.
 */
#ifndef POSTERN_GATEWAYS_H
#define POSTERN_GATEWAYS_H

#include <stddef.h>

enum gw_priority { GW_HIGHEST = 0, GW_HIGH, GW_NORMAL, GW_BELOW_NORMAL, GW_LOW };

struct gateway {
    char *name;
    char *host; /* without brackets */
    int port;
    enum gw_priority prio;
    int tls; /* enum tls_mode */
    int enabled;
    int plainauth;
    int max_connections; /* 0: none of its own */
    int index;           /* position in relay_gateways */
};

struct gateways {
    struct gateway *gw;
    size_t n;
};

/* Parse one word; 0, or -1 and a malloc'd *err naming the word. */
int gateway_parse(const char *word, struct gateway *out, char **err);
void gateway_free(struct gateway *g);
/* Parse a NULL-terminated list (relay_gateways); names must be unique. */
int gateways_parse(char *const *words, struct gateways *out, char **err);
void gateways_free(struct gateways *g);
const struct gateway *gateways_find(const struct gateways *g, const char *name);
const char *gw_priority_name(enum gw_priority p);

/*
 * The enabled gateways in try order into out[max]; subset (NULL or empty:
 * all) keeps only the named ones. Returns how many. Unknown names in
 * subset are skipped (smtpctl check reports them).
 */
size_t gateways_order(const struct gateways *g, char *const *subset, const struct gateway **out,
                      size_t max);
/*
 * Check one relay_sender_map entry (a map_check_fn): the key is an address
 * or @domain, the value gateway names (blanks or commas), each of which
 * must be in gws (a struct gateways *, may be NULL: names not checked).
 */
int gateways_check_sender_entry(const char *key, const char *value, void *gws, char **why);

/* Rotate order[n] in place for relay attempt number attempt (0-based). */
void gateways_rotate(const struct gateway **order, size_t n, unsigned attempt);

#endif
