/*
 * domains - per-domain delivery rules: the etc/domains map (DESIGN 4 and 5).
 *
 * An entry's value is a list of "key=value" options whose keys are the
 * parameters the table (params.def) marks F_DOMAIN or F_DOMAIN_ONLY, with
 * the same syntax and bounds as in main.cf. Lists inside one option are
 * separated by commas (mx=10.0.0.1,10.0.0.2).
 *
 * Lookup order for a.b.example: "a.b.example", ".b.example", ".example",
 * then "*"; the first entry found is the rule (entries do not merge), and
 * whatever it does not set comes from main.cf. A ".parent" entry matches
 * subdomains only, never parent itself.
 *
 * route = relay | smtp:[host]:port | smtp:host:port: the static route
 * ("Via SMTP"); brackets mean "this host, no MX lookup" (as in Postfix),
 * without them the host's MX records are used.
 */
#ifndef POSTERN_DOMAINS_H
#define POSTERN_DOMAINS_H

#include "mail/config.h"

struct map;

struct domain_rule {
    char *matched; /* the key that matched, or "" when main.cf alone applies */
    struct cfg_val v[P__COUNT];
    unsigned char set[P__COUNT];
};

/* Parse one entry's options. 0, or -1 and a malloc'd *err naming the option. */
int domain_rule_parse(const char *text, struct domain_rule *r, char **err);
void domain_rule_init(struct domain_rule *r);
void domain_rule_free(struct domain_rule *r);

/* Keys to try for domain, most specific first; NULL-terminated, free with domain_keys_free. */
char **domain_keys(const char *domain);
void domain_keys_free(char **keys);

/*
 * The rule for domain from an open domains map (m may be NULL: main.cf
 * only). 0 (r filled; r->matched says which entry; free it with
 * domain_rule_free), or -1 and *err on a map error or an entry that does
 * not parse (r is then empty and needs no freeing).
 */
int domain_rule_lookup(struct map *m, const char *domain, struct domain_rule *r, char **err);

/* Effective values: the rule's when it sets them, else main.cf's. */
long long drule_num(const struct domain_rule *r, const struct config *c, enum cfg_id id);
const char *drule_str(const struct domain_rule *r, const struct config *c, enum cfg_id id);
char *const *drule_list(const struct domain_rule *r, const struct config *c, enum cfg_id id);

/*
 * Check one domains map entry (a map_check_fn): the key is "*", a domain
 * or ".parent"; the value parses; with gws (a struct gateways *, may be
 * NULL) every name in gateways= must be a configured gateway.
 */
int domains_check_entry(const char *key, const char *value, void *gws, char **why);

enum route_kind { ROUTE_DEFAULT = 0, ROUTE_RELAY, ROUTE_SMTP };
struct route_spec {
    enum route_kind kind;
    char host[256]; /* ROUTE_SMTP */
    int port;       /* 0: direct_port */
    int no_mx;      /* [host]: connect to host itself, no MX lookup */
};
int route_spec_parse(const char *text, struct route_spec *out, const char **why);

#endif
