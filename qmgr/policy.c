/*
 * policy - the routing configuration qmgr holds (maps, gateways,
 * credentials) and the per-domain rules built from it; see policy.h.
 */
#include "policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "domains.h"
#include "gateways.h"
#include "log.h"
#include "map.h"
#include "qmgr.h"
#include "route.h"
#include "spool.h"
#include "strmap.h"

#define SENDER_CACHE_MAX 20000

struct sender_ent {
    char *key;  /* the map key that matched, NULL if none */
    char **gws; /* NULL-terminated names, NULL if none */
};

struct routing {
    struct map *domains, *secrets, *senders;
    struct gateways gws;
    struct strmap *pol;     /* domain -> struct qpolicy * */
    struct strmap *sendc;   /* sender -> struct sender_ent * */
    struct strmap *stats;   /* gateway name -> struct gw_stat * (kept across reloads) */
    struct strmap *warned;  /* domains whose rule could not be read, logged once */
};

static void free_strv(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/* A map master copied into the spool; NULL when it is not there. */
static struct map *open_map(const char *param_value, const char *path, unsigned flags,
                            const char *what)
{
    struct map *m;
    char *err = NULL;

    if (param_value == NULL || *param_value == '\0')
        return NULL;
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        log_debug("no %s (%s not compiled; smtpctl makemap)", what, param_value);
        return NULL;
    }
    m = map_open(path, flags, &err);
    if (m == NULL) {
        log_warn("cannot open the %s %s: %s; going on without it", what, path, err);
        free(err);
    }
    return m;
}

static void drop_senders(struct routing *rt)
{
    size_t pos = 0;
    const char *key;
    void *val;

    if (rt->sendc) {
        while (strmap_next(rt->sendc, &pos, &key, &val)) {
            struct sender_ent *e = val;
            free(e->key);
            free_strv(e->gws);
            free(e);
        }
        strmap_free(rt->sendc);
    }
    rt->sendc = strmap_new();
}

static void clear_caches(struct routing *rt)
{
    size_t pos = 0;
    const char *key;
    void *val;

    if (rt->pol) {
        while (strmap_next(rt->pol, &pos, &key, &val)) {
            qpolicy_clear(val);
            free(val);
        }
        strmap_free(rt->pol);
    }
    if (rt->warned)
        strmap_free(rt->warned);
    rt->pol = strmap_new();
    rt->warned = strmap_new();
    drop_senders(rt);
}

static void close_all(struct routing *rt)
{
    if (rt->domains)
        map_close(rt->domains);
    if (rt->secrets)
        map_close(rt->secrets);
    if (rt->senders)
        map_close(rt->senders);
    rt->domains = rt->secrets = rt->senders = NULL;
    gateways_free(&rt->gws);
}

static void load(struct qmgr *q)
{
    struct routing *rt = q->rt;
    const struct config *c = q->c->cfg;
    char *err = NULL;

    close_all(rt);
    clear_caches(rt);
    if (gateways_parse(cfg_list(c, P_relay_gateways), &rt->gws, &err) < 0) {
        log_err("relay_gateways: %s; no gateway is used", err);
        free(err);
        memset(&rt->gws, 0, sizeof(rt->gws));
    }
    rt->domains = open_map(cfg_str(c, P_domains_map), SPOOL_MAP_DOMAINS, 0, "domains map");
    rt->secrets =
        open_map(cfg_str(c, P_relay_secrets_map), SPOOL_MAP_SECRETS, MAP_SECRET, "secrets map");
    rt->senders = open_map(cfg_str(c, P_relay_sender_map), SPOOL_MAP_SENDERS, 0, "sender map");
    log_info("routing: %zu relay gateway%s, %s, %s, %s", rt->gws.n, rt->gws.n == 1 ? "" : "s",
             rt->domains ? "domains map" : "no domains map",
             rt->secrets ? "secrets map" : "no secrets map",
             rt->senders ? "sender map" : "no sender map");
}

void routing_init(struct qmgr *q)
{
    q->rt = xcalloc(1, sizeof(*q->rt));
    q->rt->stats = strmap_new();
    load(q);
}

void routing_reload(struct qmgr *q)
{
    load(q);
}

void routing_free(struct qmgr *q)
{
    struct routing *rt = q->rt;
    size_t pos = 0;
    const char *key;
    void *val;

    if (rt == NULL)
        return;
    close_all(rt);
    clear_caches(rt);
    strmap_free(rt->pol);
    strmap_free(rt->sendc);
    strmap_free(rt->warned);
    pos = 0;
    while (strmap_next(rt->stats, &pos, &key, &val)) {
        free(((struct gw_stat *)val)->last_error);
        free(val);
    }
    strmap_free(rt->stats);
    free(rt);
    q->rt = NULL;
}

/* The rule for domain into *pol; a map problem is logged (once per
 * domain until the next reload) and main.cf applies. */
static void build(struct qmgr *q, const char *domain, struct qpolicy *pol)
{
    struct routing *rt = q->rt;
    struct domain_rule r;
    char *err = NULL;

    if (domain_rule_lookup(rt->domains, domain, &r, &err) < 0) {
        if (strmap_get(rt->warned, domain) == NULL) {
            strmap_put(rt->warned, domain, rt);
            log_warn("domains map: %s; main.cf's rules apply to %s (fix etc/domains and run "
                     "smtpctl makemap, then smtpctl reload)",
                     err, domain);
        }
        free(err);
        qpolicy_build(NULL, q->c->cfg, pol);
        return;
    }
    qpolicy_build(&r, q->c->cfg, pol);
    domain_rule_free(&r);
}

struct qpolicy *policy_for(struct qmgr *q, const struct dest *d)
{
    struct qpolicy *pol = strmap_get(q->rt->pol, d->name);

    if (pol)
        return pol;
    pol = xcalloc(1, sizeof(*pol));
    build(q, d->name, pol);
    strmap_put(q->rt->pol, d->name, pol);
    return pol;
}

void policy_lookup(struct qmgr *q, const char *domain, struct qpolicy *pol)
{
    build(q, domain, pol);
}

const struct gateways *routing_gateways(struct qmgr *q)
{
    return &q->rt->gws;
}

static char **split_names(const char *v)
{
    char *copy = xstrdup(v), *save, *tok;
    char **out = xcalloc(strlen(v) / 2 + 2, sizeof(*out));
    size_t n = 0;

    for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save))
        out[n++] = xstrdup(tok);
    free(copy);
    return out;
}

static struct sender_ent *sender_lookup(struct routing *rt, const char *sender)
{
    struct sender_ent *e = xcalloc(1, sizeof(*e));
    const char *at = strrchr(sender, '@');
    char *keys[2] = {xstrdup(sender), at ? xasprintf("%s", at) : NULL};

    for (int i = 0; i < 2 && keys[i] && e->gws == NULL; i++) {
        char *val = NULL, *err = NULL;
        ascii_lower(keys[i]);
        int found = map_get(rt->senders, keys[i], &val, &err);
        if (found < 0) {
            log_warn("sender map: %s", err);
            free(err);
            break;
        }
        if (found == 1) {
            e->key = xstrdup(keys[i]);
            e->gws = split_names(val);
            if (e->gws[0] == NULL) {
                free_strv(e->gws);
                e->gws = NULL;
            }
        }
        free(val);
    }
    free(keys[0]);
    free(keys[1]);
    return e;
}

char *const *routing_sender_gateways(struct qmgr *q, const char *sender, const char **key)
{
    struct routing *rt = q->rt;
    struct sender_ent *e;

    if (key)
        *key = NULL;
    if (rt->senders == NULL || sender == NULL || *sender == '\0')
        return NULL;
    e = strmap_get(rt->sendc, sender);
    if (e == NULL) {
        if (strmap_count(rt->sendc) >= SENDER_CACHE_MAX)
            drop_senders(rt);
        e = sender_lookup(rt, sender);
        strmap_put(rt->sendc, sender, e);
    }
    if (key)
        *key = e->key;
    return e->gws;
}

int routing_secret(struct qmgr *q, const char *gateway, char **user, char **pass)
{
    struct routing *rt = q->rt;
    char *val = NULL, *err = NULL, *sp, *lc;
    size_t len;
    int found;

    if (rt->secrets == NULL)
        return 0;
    lc = xstrdup(gateway);
    ascii_lower(lc);
    found = map_get(rt->secrets, lc, &val, &err);
    free(lc);
    if (found < 0) {
        log_warn("secrets map: %s", err);
        free(err);
        return 0;
    }
    if (found == 0)
        return 0;
    len = strlen(val);
    sp = strpbrk(val, " \t");
    if (sp == NULL) {
        log_warn("secrets map: the entry for gateway %s has no password (expected \"user "
                 "password\"); no AUTH",
                 gateway);
        explicit_bzero(val, len);
        free(val);
        return 0;
    }
    *sp++ = '\0';
    sp += strspn(sp, " \t");
    *user = xstrdup(val);
    *pass = xstrdup(sp);
    explicit_bzero(val, len);
    free(val);
    return 1;
}

struct gw_stat *routing_gw_stat(struct qmgr *q, const char *gateway)
{
    struct gw_stat *s = strmap_get(q->rt->stats, gateway);

    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        strmap_put(q->rt->stats, gateway, s);
    }
    return s;
}
