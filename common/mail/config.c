/*
 * config - read main.cf into typed values, from the table in params.def.
 * Grammar and contract in config.h.
 *
 * Loading goes in three passes so that errors always name a line:
 *   1. split the text into entries (name, raw value, line), joining
 *      continuation lines and rejecting unknown or repeated names;
 *   2. expand $name references against the raw values (cycle-safe);
 *   3. convert each expanded value to its type and check it.
 */
#include "mail/config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/gateways.h"
#include "mail/tls_mode.h"
#include "base/netaddr.h"
#include "base/util.h"

static const char *const log_level_choices[] = {"basic", "detailed", "debug", NULL};
static const char *const bare_newline_choices[] = {"reject", "normalize", NULL};
static const char *const dnssec_choices[] = {"off", "validate", "resolver", NULL};
static const char *const gateway_policy_choices[] = {"never", "undelivered", "on_error", "always",
                                                     NULL};

static const char *const *enum_choices(enum cfg_id id)
{
    switch (id) {
    case P_log_level:
        return log_level_choices;
    case P_smtpd_bare_newline:
        return bare_newline_choices;
    case P_gateway_policy:
        return gateway_policy_choices;
    case P_tls:
        return tls_mode_names;
    case P_dnssec:
        return dnssec_choices;
    default:
        return NULL;
    }
}

#define STR CT_STR
#define INT CT_INT
#define BOOL CT_BOOL
#define DURATION CT_DURATION
#define SIZE CT_SIZE
#define ENUM CT_ENUM
#define LIST CT_LIST
const struct cfg_param cfg_params[P__COUNT] = {
#define PARAM(name, type, def, min, max, flags, doc) {#name, type, def, min, max, flags, doc, NULL},
#include "mail/params.def"
#undef PARAM
};
#undef STR
#undef INT
#undef BOOL
#undef DURATION
#undef SIZE
#undef ENUM
#undef LIST

static const struct cfg_param *param_by_id(enum cfg_id id, struct cfg_param *tmp)
{
    *tmp = cfg_params[id];
    tmp->choices = enum_choices(id);
    return tmp;
}

const struct cfg_param *cfg_param_find(const char *name)
{
    static struct cfg_param with_choices[P__COUNT];
    static int ready;

    if (!ready) {
        for (int i = 0; i < P__COUNT; i++)
            param_by_id((enum cfg_id)i, &with_choices[i]);
        ready = 1;
    }
    for (int i = 0; i < P__COUNT; i++)
        if (strcmp(with_choices[i].name, name) == 0)
            return &with_choices[i];
    return NULL;
}

static enum cfg_id param_id(const struct cfg_param *p)
{
    const struct cfg_param *first = cfg_param_find(cfg_params[0].name);
    return (enum cfg_id)(p - first);
}

/* Value syntax. */

static long long parse_scaled(const char *s, const char *units, const long long *mult)
{
    long long total = 0;
    int groups = 0;

    if (*s == '\0')
        return -1;
    while (*s) {
        long long v = 0;
        const char *u;
        if (*s < '0' || *s > '9')
            return -1;
        while (*s >= '0' && *s <= '9') {
            if (v > (LLONG_MAX - 9) / 10)
                return -1;
            v = v * 10 + (*s++ - '0');
        }
        long long m = 1;
        if (*s) {
            u = strchr(units, *s);
            if (u == NULL)
                return -1;
            m = mult[u - units];
            s++;
        } else if (groups > 0) {
            return -1; /* "1h30" is ambiguous */
        }
        if (v > LLONG_MAX / m || total > LLONG_MAX - v * m)
            return -1;
        total += v * m;
        groups++;
    }
    return total;
}

long long cfg_parse_duration(const char *s)
{
    static const long long mult[] = {1, 60, 3600, 86400, 604800};
    return parse_scaled(s, "smhdw", mult);
}

long long cfg_parse_size(const char *s)
{
    static const long long mult[] = {1, 1024, 1024, 1048576, 1048576, 1073741824, 1073741824};
    long long v;

    /* A size has at most one suffix. */
    size_t n = strlen(s);
    if (n >= 2 && strchr("kKmMgGb", s[n - 2]) != NULL)
        return -1;
    v = parse_scaled(s, "bkKmMgG", mult);
    return v;
}

static int parse_bool(const char *s)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < nitems(yes); i++)
        if (ascii_casecmp(s, yes[i]) == 0)
            return 1;
    for (size_t i = 0; i < nitems(no); i++)
        if (ascii_casecmp(s, no[i]) == 0)
            return 0;
    return -1;
}

static char **split_list(const char *s)
{
    size_t n = 0, cap = 4;
    char **v = xmalloc(cap * sizeof(char *));

    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == ',' || *s == '\n')
            s++;
        if (*s == '\0')
            break;
        const char *start = s;
        while (*s && *s != ' ' && *s != '\t' && *s != ',' && *s != '\n')
            s++;
        if (n + 2 > cap) {
            cap *= 2;
            v = xrealloc(v, cap * sizeof(char *));
        }
        v[n++] = xstrndup(start, (size_t)(s - start));
    }
    v[n] = NULL;
    return v;
}

static void free_list(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* Extra checks for list words whose syntax the type alone does not say. */
static int check_list_word(enum cfg_id id, const char *w, char **err)
{
    struct sockaddr_storage ss;
    struct cidr net;
    const char *why = NULL;

    switch (id) {
    case P_smtpd_listen:
    case P_submission_listen:
        if (netaddr_parse_hostport(w, 0, &ss, &why) < 0)
            goto bad;
        return 0;
    case P_dns_servers:
        if (netaddr_parse_hostport(w, 53, &ss, &why) < 0)
            goto bad;
        return 0;
    case P_mynetworks:
        if (netaddr_parse_cidr(w, &net, &why) < 0)
            goto bad;
        return 0;
    case P_relay_gateways: {
        struct gateway g;
        char *gerr = NULL;
        if (gateway_parse(w, &g, &gerr) < 0) {
            *err = xasprintf("bad value for relay_gateways: %s", gerr);
            free(gerr);
            return -1;
        }
        gateway_free(&g);
        return 0;
    }
    case P_relay_on_errors:
        if (strcmp(w, "dns") && strcmp(w, "network") && strcmp(w, "smtp")) {
            why = "expected dns, network or smtp";
            goto bad;
        }
        return 0;
    default:
        return 0;
    }
bad:
    *err = xasprintf("bad value '%s' for %s: %s", w, cfg_params[id].name, why);
    return -1;
}

int cfg_parse_value(const struct cfg_param *p, const char *text, struct cfg_val *out, char **err)
{
    long long v;

    memset(out, 0, sizeof(*out));
    switch (p->type) {
    case CT_STR:
        break;
    case CT_INT: {
        char *end;
        errno = 0;
        v = strtoll(text, &end, 10);
        if (*text == '\0' || *end != '\0' || errno != 0) {
            *err = xasprintf("bad value '%s' for %s: expected a whole number", text, p->name);
            return -1;
        }
        goto range;
    }
    case CT_BOOL:
        v = parse_bool(text);
        if (v < 0) {
            *err = xasprintf("bad value '%s' for %s: expected yes or no", text, p->name);
            return -1;
        }
        out->num = v;
        break;
    case CT_DURATION:
        v = cfg_parse_duration(text);
        if (v < 0) {
            *err = xasprintf("bad duration '%s' for %s: expected a number with an optional "
                             "suffix s, m, h, d or w (e.g. 30s, 5m, 1h30m)",
                             text, p->name);
            return -1;
        }
        goto range;
    case CT_SIZE:
        v = cfg_parse_size(text);
        if (v < 0) {
            *err = xasprintf("bad size '%s' for %s: expected a number with an optional "
                             "suffix k, M or G (e.g. 512k, 25M)",
                             text, p->name);
            return -1;
        }
        goto range;
    case CT_ENUM: {
        const char *const *c = p->choices;
        for (v = 0; c && c[v]; v++)
            if (strcmp(c[v], text) == 0)
                break;
        if (c == NULL || c[v] == NULL) {
            struct buf alts;
            buf_init(&alts);
            for (const char *const *a = c; a && *a; a++)
                buf_printf(&alts, "%s%s", a == c ? "" : " | ", *a);
            *err = xasprintf("bad value '%s' for %s: expected %s", text, p->name, alts.data);
            buf_free(&alts);
            return -1;
        }
        out->num = v;
        break;
    }
    case CT_LIST:
        out->list = split_list(text);
        for (char **w = out->list; *w; w++) {
            if (check_list_word(param_id(p), *w, err) < 0) {
                free_list(out->list);
                out->list = NULL;
                return -1;
            }
        }
        break;
    }
    out->text = xstrdup(text);
    return 0;
range:
    if (v < p->min || v > p->max) {
        *err = xasprintf("value '%s' for %s is out of range (%lld to %lld%s)", text, p->name,
                         p->min, p->max,
                         p->type == CT_DURATION ? " seconds"
                         : p->type == CT_SIZE   ? " bytes"
                                                : "");
        return -1;
    }
    out->num = v;
    out->text = xstrdup(text);
    return 0;
}

void cfg_val_free(struct cfg_val *v)
{
    free(v->text);
    free_list(v->list);
    memset(v, 0, sizeof(*v));
}

/* Pass 1: entries. */

struct entry {
    char *raw;   /* value as written, continuation lines joined by a space */
    char *where; /* "file:line" or "-o" */
    int present;
};

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char *trim(char *s)
{
    char *e;

    while (is_blank(*s))
        s++;
    e = s + strlen(s);
    while (e > s && (is_blank(e[-1]) || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static int closest_name(const char *name, const char **best)
{
    int bestd = 1000;

    *best = NULL;
    for (int i = 0; i < P__COUNT; i++) {
        const char *c = cfg_params[i].name;
        size_t la = strlen(name), lb = strlen(c);
        if (la > 63 || lb > 63)
            continue;
        int d[64][64];
        for (size_t x = 0; x <= la; x++)
            d[x][0] = (int)x;
        for (size_t y = 0; y <= lb; y++)
            d[0][y] = (int)y;
        for (size_t x = 1; x <= la; x++)
            for (size_t y = 1; y <= lb; y++) {
                int sub = d[x - 1][y - 1] + (name[x - 1] != c[y - 1]);
                int del = d[x - 1][y] + 1, ins = d[x][y - 1] + 1;
                d[x][y] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            }
        if (d[la][lb] < bestd) {
            bestd = d[la][lb];
            *best = c;
        }
    }
    return bestd;
}

static int set_entry(struct entry *ents, const char *name, const char *value, const char *where,
                     int allow_repeat, char **err)
{
    const struct cfg_param *p = cfg_param_find(name);
    const char *near;

    if (p == NULL) {
        if (closest_name(name, &near) <= 3)
            *err = xasprintf("%s: unknown parameter '%s' (did you mean '%s'?)", where, name, near);
        else
            *err = xasprintf("%s: unknown parameter '%s'", where, name);
        return -1;
    }
    if (p->flags & F_DOMAIN_ONLY) {
        *err = xasprintf("%s: '%s' is a per-domain option: set it in the domains map", where, name);
        return -1;
    }
    struct entry *e = &ents[param_id(p)];
    if (e->present && !allow_repeat) {
        *err = xasprintf("%s: '%s' is already set at %s", where, name, e->where);
        return -1;
    }
    free(e->raw);
    free(e->where);
    e->raw = xstrdup(value);
    e->where = xstrdup(where);
    e->present = 1;
    return 0;
}

static int valid_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static int read_entries(struct entry *ents, const char *fname, const char *text, char **err)
{
    char *copy = xstrdup(text), *line, *next;
    int lineno = 0, rc = -1;
    struct entry *cur = NULL;

    for (line = copy; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        char *t = trim(line);
        if (*t == '#')
            continue;
        if (*t == '\0') {
            cur = NULL; /* a blank line ends a value */
            continue;
        }
        if (is_blank(line[0])) {
            if (cur == NULL) {
                *err = xasprintf("%s:%d: continuation line with no parameter before it "
                                 "(a line that starts with white space continues the previous "
                                 "value)",
                                 fname, lineno);
                goto out;
            }
            char *joined = xasprintf("%s%s%s", cur->raw, *cur->raw ? " " : "", t);
            free(cur->raw);
            cur->raw = joined;
            continue;
        }
        char *eq = strchr(t, '=');
        if (eq == NULL) {
            *err = xasprintf("%s:%d: expected 'name = value', got '%.60s'", fname, lineno, t);
            goto out;
        }
        *eq = '\0';
        char *name = trim(t), *value = trim(eq + 1);
        if (!valid_name(name)) {
            *err = xasprintf("%s:%d: bad parameter name '%.60s'", fname, lineno, name);
            goto out;
        }
        char where[PATH_MAX + 32];
        snprintf(where, sizeof(where), "%s:%d", fname, lineno);
        if (set_entry(ents, name, value, where, 0, err) < 0)
            goto out;
        cur = &ents[param_id(cfg_param_find(name))];
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

/* Pass 2: $name expansion. */

static const char *raw_value(struct entry *ents, enum cfg_id id)
{
    return ents[id].present ? ents[id].raw : cfg_params[id].def;
}

static int expand(struct entry *ents, const char *in, struct buf *out, int depth, const char *where,
                  char **err)
{
    if (depth > 10) {
        *err =
            xasprintf("%s: $name expansion nested too deep (a parameter refers to itself?)", where);
        return -1;
    }
    for (const char *s = in; *s; s++) {
        if (*s != '$') {
            buf_addc(out, *s);
            continue;
        }
        if (s[1] == '$') {
            buf_addc(out, '$');
            s++;
            continue;
        }
        char name[64];
        size_t n = 0;
        const char *p = s + 1;
        int braced = *p == '{';
        if (braced)
            p++;
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_') {
            if (n + 1 >= sizeof(name)) {
                *err = xasprintf("%s: parameter name after '$' too long", where);
                return -1;
            }
            name[n++] = *p++;
        }
        name[n] = '\0';
        if (braced && *p != '}') {
            *err = xasprintf("%s: unterminated '${' in value", where);
            return -1;
        }
        if (n == 0) {
            *err =
                xasprintf("%s: '$' must be followed by a parameter name (write $$ for '$')", where);
            return -1;
        }
        const struct cfg_param *ref = cfg_param_find(name);
        if (ref == NULL || (ref->flags & F_DOMAIN_ONLY)) {
            *err = xasprintf("%s: $%s refers to an unknown parameter", where, name);
            return -1;
        }
        if (param_id(ref) == P_myhostname && !ents[P_myhostname].present) {
            char host[256];
            if (gethostname(host, sizeof(host)) != 0)
                snprintf(host, sizeof(host), "localhost");
            host[sizeof(host) - 1] = '\0';
            buf_adds(out, host);
        } else if (expand(ents, raw_value(ents, param_id(ref)), out, depth + 1, where, err) < 0) {
            return -1;
        }
        s = braced ? p : p - 1;
    }
    return 0;
}

static char *absolute_path(const char *dir, const char *v)
{
    if (*v == '\0' || *v == '/')
        return xstrdup(v);
    return xasprintf("%s/%s", dir, v);
}

static int apply_overrides(struct entry *ents, char *const *overrides, char **err)
{
    for (char *const *o = overrides; o && *o; o++) {
        const char *eq = strchr(*o, '=');
        if (eq == NULL) {
            *err = xasprintf("-o %s: expected name=value", *o);
            return -1;
        }
        char *name = xstrndup(*o, (size_t)(eq - *o));
        char *value = xstrdup(eq + 1);
        char *where = xasprintf("-o %s", trim(name));
        int r = set_entry(ents, trim(name), trim(value), where, 1, err);
        free(name);
        free(value);
        free(where);
        if (r < 0)
            return -1;
    }
    return 0;
}

int config_load_text(struct config *cfg, const char *dir, const char *fname, const char *text,
                     char *const *overrides, char **err)
{
    struct entry ents[P__COUNT];
    int rc = -1;

    memset(cfg, 0, sizeof(*cfg));
    memset(ents, 0, sizeof(ents));
    cfg->dir = xstrdup(dir);
    cfg->file = xstrdup(fname);
    if (read_entries(ents, fname, text, err) < 0 || apply_overrides(ents, overrides, err) < 0)
        goto out;
    for (int i = 0; i < P__COUNT; i++) {
        const struct cfg_param *p = cfg_param_find(cfg_params[i].name);
        struct buf val;
        char *where = ents[i].present ? ents[i].where : NULL;
        char defwhere[128];

        if (where == NULL) {
            snprintf(defwhere, sizeof(defwhere), "default of %s", p->name);
            where = defwhere;
        }
        buf_init(&val);
        if (expand(ents, raw_value(ents, (enum cfg_id)i), &val, 0, where, err) < 0) {
            buf_free(&val);
            goto out;
        }
        char *text2 = (p->flags & F_PATH) ? absolute_path(dir, val.data) : xstrdup(val.data);
        buf_free(&val);
        char *verr = NULL;
        if (cfg_parse_value(p, text2, &cfg->v[i], &verr) < 0) {
            *err = xasprintf("%s: %s", where, verr);
            free(verr);
            free(text2);
            goto out;
        }
        free(text2);
        cfg->set[i] = (unsigned char)ents[i].present;
    }
    rc = 0;
out:
    for (int i = 0; i < P__COUNT; i++) {
        free(ents[i].raw);
        free(ents[i].where);
    }
    if (rc < 0)
        config_free(cfg);
    return rc;
}

int config_load(struct config *cfg, const char *dir, char *const *overrides, char **err)
{
    char absdir[PATH_MAX];
    char *path, *text;
    FILE *f;
    struct buf b;
    char chunk[8192];
    size_t n;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    if (realpath(dir, absdir) == NULL) {
        *err = xasprintf("config directory %s: %s", dir, strerror(errno));
        return -1;
    }
    path = xasprintf("%s/main.cf", absdir);
    f = fopen(path, "r");
    if (f == NULL) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > 4 * 1024 * 1024) {
            *err = xasprintf("%s: file too large", path);
            fclose(f);
            buf_free(&b);
            free(path);
            return -1;
        }
        buf_add(&b, chunk, n);
    }
    fclose(f);
    if (memchr(b.data, '\0', b.len) != NULL) {
        *err = xasprintf("%s: contains a NUL byte", path);
        buf_free(&b);
        free(path);
        return -1;
    }
    text = b.data;
    rc = config_load_text(cfg, absdir, path, text, overrides, err);
    buf_free(&b);
    free(path);
    return rc;
}

void config_free(struct config *cfg)
{
    for (int i = 0; i < P__COUNT; i++)
        cfg_val_free(&cfg->v[i]);
    free(cfg->dir);
    free(cfg->file);
    cfg->dir = cfg->file = NULL;
}

const char *cfg_enum(const struct config *c, enum cfg_id id)
{
    const char *const *ch = enum_choices(id);
    return ch ? ch[c->v[id].num] : c->v[id].text;
}

const char *cfg_myhostname(const struct config *c)
{
    static char host[256];

    if (c->v[P_myhostname].text && *c->v[P_myhostname].text)
        return c->v[P_myhostname].text;
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    return host;
}

char *config_peek(const char *dir, enum cfg_id id)
{
    char *path = xasprintf("%s/main.cf", dir), *val = NULL, line[4096];
    const char *name = cfg_params[id].name;
    size_t nl = strlen(name);
    FILE *f = fopen(path, "r");

    free(path);
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, name, nl) != 0 || (!is_blank(line[nl]) && line[nl] != '='))
            continue;
        char *eq = strchr(line + nl, '=');
        if (eq == NULL)
            continue;
        char *v = trim(eq + 1);
        v[strcspn(v, "\n")] = '\0';
        free(val);
        val = xstrdup(v);
    }
    if (f)
        fclose(f);
    if (val == NULL)
        val = xstrdup(cfg_params[id].def);
    if ((cfg_params[id].flags & F_PATH) && *val != '/' && *val != '\0') {
        char abs[PATH_MAX];
        char *p2 = xasprintf("%s/%s", realpath(dir, abs) ? abs : dir, val);
        free(val);
        val = p2;
    }
    return val;
}

struct cfg_val config_peek_value(const char *dir, enum cfg_id id)
{
    struct cfg_val v;
    char *text = config_peek(dir, id), *err = NULL;

    memset(&v, 0, sizeof(v));
    if (cfg_parse_value(&cfg_params[id], text, &v, &err) < 0) {
        free(err);
        err = NULL;
        cfg_parse_value(&cfg_params[id], cfg_params[id].def, &v, &err);
        free(err);
    }
    free(text);
    return v;
}
