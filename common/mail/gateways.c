/*
 * gateways - parse relay_gateways and order gateways for an attempt.
 * Contract in gateways.h.
 */
#include "mail/gateways.h"

#include <stdlib.h>
#include <string.h>

#include "mail/dlv_proto.h"
#include "mail/tls_mode.h"
#include "base/netaddr.h"
#include "base/util.h"

static const char *const prio_names[] = {"highest", "high", "normal", "below_normal", "low"};

const char *gw_priority_name(enum gw_priority p)
{
    return (unsigned)p < nitems(prio_names) ? prio_names[p] : "?";
}

static int valid_name(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* host[:port] or [v6][:port] into out; the port defaults to 25. */
static int parse_hostport(const char *s, struct gateway *out, const char **why)
{
    char host[256];
    int port, bracketed;

    if (netaddr_split_hostport(s, host, sizeof(host), &port, &bracketed, why) < 0)
        return -1;
    if (!netaddr_host_ok(host)) {
        *why = "bad host name";
        return -1;
    }
    out->host = xstrdup(host);
    out->port = port ? port : 25;
    return 0;
}

static int parse_option(const char *opt, struct gateway *g)
{
    for (size_t i = 0; i < nitems(prio_names); i++)
        if (strcmp(opt, prio_names[i]) == 0) {
            g->prio = (enum gw_priority)i;
            return 0;
        }
    int tls = tls_mode_parse(opt);
    if (tls >= 0) {
        g->tls = tls;
        return 0;
    }
    if (strcmp(opt, "disabled") == 0)
        g->enabled = 0;
    else if (strcmp(opt, "enabled") == 0)
        g->enabled = 1;
    else if (strcmp(opt, "plainauth") == 0)
        g->plainauth = 1;
    else if (strncmp(opt, "max_connections=", 16) == 0) {
        const char *v = opt + 16;
        char *end;
        long n = strtol(v, &end, 10);
        if (*v < '0' || *v > '9' || *end != '\0' || n < 0 || n > 1000)
            return -1;
        g->max_connections = (int)n;
    } else
        return -1;
    return 0;
}

int gateway_parse(const char *word, struct gateway *out, char **err)
{
    const char *eq = strchr(word, '='), *why = NULL;
    char *rest, *save, *tok;

    memset(out, 0, sizeof(*out));
    out->prio = GW_NORMAL;
    out->tls = TLS_MODE_MAY;
    out->enabled = 1;
    if (eq == NULL || !valid_name(word, (size_t)(eq - word))) {
        *err = xasprintf("gateway '%s': expected name=host[:port][/option...] with a name of "
                         "letters, digits, '.', '-' or '_'",
                         word);
        return -1;
    }
    out->name = xstrndup(word, (size_t)(eq - word));
    rest = xstrdup(eq + 1);
    tok = strtok_r(rest, "/", &save);
    if (tok == NULL || parse_hostport(tok, out, &why) < 0) {
        *err = xasprintf("gateway '%s': %s", out->name, why ? why : "missing host");
        goto bad;
    }
    while ((tok = strtok_r(NULL, "/", &save)) != NULL) {
        if (parse_option(tok, out) < 0) {
            *err =
                xasprintf("gateway '%s': unknown option '%s' (priority highest|high|normal|"
                          "below_normal|low, tls none|may|encrypt|verify|dane|dane-only, disabled, "
                          "plainauth, "
                          "max_connections=0..1000)",
                          out->name, tok);
            goto bad;
        }
    }
    free(rest);
    return 0;
bad:
    free(rest);
    gateway_free(out);
    return -1;
}

void gateway_free(struct gateway *g)
{
    free(g->name);
    free(g->host);
    memset(g, 0, sizeof(*g));
}

int gateways_parse(char *const *words, struct gateways *out, char **err)
{
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    for (char *const *w = words; w && *w; w++)
        n++;
    out->gw = xcalloc(n ? n : 1, sizeof(*out->gw));
    for (size_t i = 0; i < n; i++) {
        if (gateway_parse(words[i], &out->gw[i], err) < 0)
            goto bad;
        out->gw[i].index = (int)i;
        out->n = i + 1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->gw[j].name, out->gw[i].name) == 0) {
                *err = xasprintf("gateway '%s' is listed twice in relay_gateways", out->gw[i].name);
                goto bad;
            }
    }
    return 0;
bad:
    gateways_free(out);
    return -1;
}

void gateways_free(struct gateways *g)
{
    for (size_t i = 0; i < g->n; i++)
        gateway_free(&g->gw[i]);
    free(g->gw);
    memset(g, 0, sizeof(*g));
}

const struct gateway *gateways_find(const struct gateways *g, const char *name)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->gw[i].name, name) == 0)
            return &g->gw[i];
    return NULL;
}

static int in_subset(char *const *subset, const char *name)
{
    if (subset == NULL || subset[0] == NULL)
        return 1;
    for (char *const *s = subset; *s; s++)
        if (strcmp(*s, name) == 0)
            return 1;
    return 0;
}

size_t gateways_order(const struct gateways *g, char *const *subset, const struct gateway **out,
                      size_t max)
{
    size_t n = 0;

    /* Stable by priority: one pass per priority keeps the listed order. */
    for (int p = GW_HIGHEST; p <= GW_LOW; p++)
        for (size_t i = 0; i < g->n && n < max; i++)
            if (g->gw[i].prio == (enum gw_priority)p && g->gw[i].enabled &&
                in_subset(subset, g->gw[i].name))
                out[n++] = &g->gw[i];
    return n;
}

void gateways_rotate(const struct gateway **order, size_t n, unsigned attempt)
{
    const struct gateway *tmp[256];
    size_t start;

    if (n < 2 || n > nitems(tmp))
        return;
    start = attempt % n;
    for (size_t i = 0; i < n; i++)
        tmp[i] = order[(start + i) % n];
    memcpy(order, tmp, n * sizeof(*order));
}

int gateways_check_sender_entry(const char *key, const char *value, void *arg, char **why)
{
    const struct gateways *gws = arg;
    const char *at = strchr(key, '@');
    char *copy, *save, *tok;
    int n = 0, rc = 0;

    if (at == NULL || at[1] == '\0' || strchr(at + 1, '@') != NULL) {
        *why = xasprintf("expected a sender address or @domain");
        return -1;
    }
    copy = xstrdup(value);
    for (tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        n++;
        if (gws && gateways_find(gws, tok) == NULL) {
            *why = xasprintf("gateway '%s' is not in relay_gateways", tok);
            rc = -1;
            break;
        }
    }
    free(copy);
    if (rc == 0 && n == 0) {
        *why = xasprintf("no gateway names");
        rc = -1;
    }
    return rc;
}
