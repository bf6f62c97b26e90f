/*
 * domains - parse and look up per-domain rules. Contract in domains.h.
 */
#include "mail/domains.h"

#include <stdlib.h>
#include <string.h>

#include "mail/dns_proto.h"
#include "mail/gateways.h"
#include "base/map.h"
#include "base/netaddr.h"
#include "base/util.h"

void domain_rule_init(struct domain_rule *r)
{
    memset(r, 0, sizeof(*r));
    r->matched = xstrdup("");
}

void domain_rule_free(struct domain_rule *r)
{
    for (int i = 0; i < P__COUNT; i++)
        if (r->set[i])
            cfg_val_free(&r->v[i]);
    free(r->matched);
    memset(r, 0, sizeof(*r));
}

static int check_option(enum cfg_id id, const struct cfg_val *v, char **err)
{
    struct route_spec rs;
    const char *why;

    if (id == P_route && *v->text && route_spec_parse(v->text, &rs, &why) < 0) {
        *err = xasprintf("bad route '%s': %s", v->text, why);
        return -1;
    }
    return 0;
}

int domain_rule_parse(const char *text, struct domain_rule *r, char **err)
{
    char *copy = xstrdup(text), *save, *tok;
    int rc = -1;

    domain_rule_init(r);
    for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char *eq = strchr(tok, '=');
        const struct cfg_param *p;
        if (eq == NULL) {
            *err = xasprintf("'%s': expected key=value", tok);
            goto out;
        }
        *eq = '\0';
        p = cfg_param_find(tok);
        if (p == NULL || !(p->flags & (F_DOMAIN | F_DOMAIN_ONLY))) {
            *err = xasprintf("'%s' is not a per-domain option (docs/parameters.md lists those "
                             "marked \"domains\")",
                             tok);
            goto out;
        }
        enum cfg_id id = (enum cfg_id)(p - cfg_param_find(cfg_params[0].name));
        if (r->set[id]) {
            *err = xasprintf("'%s' is given twice", tok);
            goto out;
        }
        char *verr = NULL;
        if (cfg_parse_value(p, eq + 1, &r->v[id], &verr) < 0) {
            *err = verr;
            goto out;
        }
        r->set[id] = 1;
        if (check_option(id, &r->v[id], err) < 0)
            goto out;
    }
    rc = 0;
out:
    free(copy);
    if (rc < 0)
        domain_rule_free(r);
    return rc;
}

char **domain_keys(const char *domain)
{
    size_t n = 2, k = 0;
    char **keys;

    for (const char *s = domain; *s; s++)
        n += *s == '.';
    keys = xcalloc(n + 1, sizeof(char *));
    keys[k] = xstrdup(domain);
    ascii_lower(keys[k++]);
    for (const char *s = strchr(domain, '.'); s && s[1]; s = strchr(s + 1, '.')) {
        keys[k] = xstrdup(s);
        ascii_lower(keys[k++]);
    }
    keys[k++] = xstrdup("*");
    keys[k] = NULL;
    return keys;
}

void domain_keys_free(char **keys)
{
    for (char **k = keys; k && *k; k++)
        free(*k);
    free(keys);
}

int domain_rule_lookup(struct map *m, const char *domain, struct domain_rule *r, char **err)
{
    char **keys;
    int rc = 0;

    domain_rule_init(r);
    if (m == NULL)
        return 0;
    keys = domain_keys(domain);
    for (char **k = keys; *k; k++) {
        char *val = NULL, *perr = NULL;
        int found = map_get(m, *k, &val, err);
        if (found < 0) {
            domain_rule_free(r);
            rc = -1;
            break;
        }
        if (found == 0)
            continue;
        domain_rule_free(r);
        if (domain_rule_parse(val, r, &perr) < 0) {
            *err = xasprintf("domains map entry '%s': %s", *k, perr);
            free(perr);
            free(val);
            rc = -1;
            break;
        }
        free(r->matched);
        r->matched = xstrdup(*k);
        free(val);
        break;
    }
    domain_keys_free(keys);
    return rc;
}

long long drule_num(const struct domain_rule *r, const struct config *c, enum cfg_id id)
{
    return r && r->set[id] ? r->v[id].num : cfg_num(c, id);
}

const char *drule_str(const struct domain_rule *r, const struct config *c, enum cfg_id id)
{
    if (r && r->set[id])
        return r->v[id].text;
    return cfg_params[id].type == CT_ENUM ? cfg_enum(c, id) : cfg_str(c, id);
}

char *const *drule_list(const struct domain_rule *r, const struct config *c, enum cfg_id id)
{
    return r && r->set[id] ? r->v[id].list : cfg_list(c, id);
}

int route_spec_parse(const char *text, struct route_spec *out, const char **why)
{
    const char *h;

    memset(out, 0, sizeof(*out));
    if (*text == '\0') {
        out->kind = ROUTE_DEFAULT;
        return 0;
    }
    if (strcmp(text, "relay") == 0) {
        out->kind = ROUTE_RELAY;
        return 0;
    }
    if (strncmp(text, "smtp:", 5) != 0) {
        *why = "expected relay, smtp:[host]:port or smtp:host:port";
        return -1;
    }
    h = text + 5;
    if (netaddr_split_hostport(h, out->host, sizeof(out->host), &out->port, &out->no_mx, why) < 0)
        return -1;
    if (!netaddr_host_ok(out->host)) {
        *why = "bad character in host";
        return -1;
    }
    out->kind = ROUTE_SMTP;
    return 0;
}

static int valid_key(const char *k)
{
    const char *s = *k == '.' ? k + 1 : k;

    if (strcmp(k, "*") == 0)
        return 1;
    if (*s == '\0' || strlen(k) > 253)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' ||
              *s == '_' || (unsigned char)*s >= 0x80))
            return 0;
    return 1;
}

/* Each mx= entry through the parser dnsd uses (dns_parse_mx_entry). */
static int check_mx(char *const *list, char **why)
{
    char buf[DNS_MAX_NAME + 1];
    struct sockaddr_storage ss;
    uint16_t port;

    if (list == NULL || list[0] == NULL) {
        *why = xasprintf("mx= lists no host (expected host[:port] or address[:port], "
                         "comma-separated)");
        return -1;
    }
    for (char *const *e = list; *e; e++)
        if (dns_parse_mx_entry(*e, buf, sizeof(buf), &ss, &port) < 0) {
            *why = xasprintf("mx= entry '%s' is not a host name or an address, with an "
                             "optional :port from 1 to 65535",
                             *e);
            return -1;
        }
    return 0;
}

int domains_check_entry(const char *key, const char *value, void *arg, char **why)
{
    const struct gateways *gws = arg;
    struct domain_rule r;

    if (!valid_key(key)) {
        *why = xasprintf("expected a domain, .parent or *");
        return -1;
    }
    if (domain_rule_parse(value, &r, why) < 0)
        return -1;
    if (r.set[P_mx] && check_mx(r.v[P_mx].list, why) < 0) {
        domain_rule_free(&r);
        return -1;
    }
    if (gws && r.set[P_gateways]) {
        for (char **g = r.v[P_gateways].list; *g; g++)
            if (gateways_find(gws, *g) == NULL) {
                *why = xasprintf("gateway '%s' is not in relay_gateways", *g);
                domain_rule_free(&r);
                return -1;
            }
    }
    domain_rule_free(&r);
    return 0;
}
