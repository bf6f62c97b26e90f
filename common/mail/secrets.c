/*
 * secrets - gateway credentials in memory; see secrets.h.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/map.h"
#include "base/util.h"
#include "mail/secrets.h"

#define SECRETS_MAX 4096 /* gateways with credentials; far above any real list */

struct cred {
    char *gateway; /* lower case */
    char *user;
    char *pass;
};

struct secrets {
    struct cred *c;
    size_t n, cap;
};

static struct secrets *secrets_new(void)
{
    return xcalloc(1, sizeof(struct secrets));
}

static void add(struct secrets *s, const char *gw, const char *user, const char *pass)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->c = xrealloc(s->c, s->cap * sizeof(*s->c));
    }
    s->c[s->n].gateway = xstrdup(gw);
    ascii_lower(s->c[s->n].gateway);
    s->c[s->n].user = xstrdup(user);
    s->c[s->n].pass = xstrdup(pass);
    s->n++;
}

/* One map entry: "user password" (the password may hold blanks). */
static int load_entry(const char *key, const char *val, void *arg)
{
    struct secrets *s = arg;
    char *v = xstrdup(val), *sp;
    size_t len = strlen(v);

    sp = strpbrk(v, " \t");
    if (sp == NULL) {
        log_warn("secrets map: the entry for gateway %s has no password (expected \"user "
                 "password\"); no AUTH",
                 key);
    } else if (s->n < SECRETS_MAX) {
        *sp++ = '\0';
        sp += strspn(sp, " \t");
        add(s, key, v, sp);
    }
    explicit_bzero(v, len);
    free(v);
    return 0;
}

int secrets_load(const char *path, struct secrets **out, char **err)
{
    struct secrets *s;
    struct map *m;
    char *dbpath;
    int missing;

    *err = NULL;
    if (path == NULL || *path == '\0') {
        *out = secrets_new();
        return 0;
    }
    dbpath = xasprintf("%s.db", path);
    missing = access(dbpath, F_OK) != 0;
    free(dbpath);
    if (missing) {
        *out = secrets_new();
        return 0;
    }
    m = map_open(path, MAP_SECRET, err);
    if (m == NULL)
        return -1;
    s = secrets_new();
    if (map_each(m, load_entry, s, err) < 0) {
        map_close(m);
        secrets_free(s);
        return -1;
    }
    map_close(m);
    *out = s;
    return 0;
}

int secrets_get(const struct secrets *s, const char *gateway, const char **user, const char **pass)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (ascii_casecmp(s->c[i].gateway, gateway) == 0) {
            *user = s->c[i].user;
            *pass = s->c[i].pass;
            return 1;
        }
    return 0;
}

size_t secrets_count(const struct secrets *s)
{
    return s ? s->n : 0;
}

void secrets_encode(struct ipc_w *w, const struct secrets *s)
{
    ipc_w_u32(w, (uint32_t)secrets_count(s));
    for (size_t i = 0; i < secrets_count(s); i++) {
        ipc_w_str(w, s->c[i].gateway);
        ipc_w_str(w, s->c[i].user);
        ipc_w_str(w, s->c[i].pass);
    }
}

struct secrets *secrets_decode(const void *body, size_t len)
{
    struct secrets *s = secrets_new();
    struct ipc_r r;
    uint32_t n;

    ipc_r_init(&r, body, len);
    n = ipc_r_u32(&r);
    if (n > SECRETS_MAX)
        r.err = 1;
    for (uint32_t i = 0; i < n && ipc_r_ok(&r); i++) {
        const char *gw = ipc_r_str(&r), *user = ipc_r_str(&r), *pass = ipc_r_str(&r);
        if (ipc_r_ok(&r))
            add(s, gw, user, pass);
    }
    if (!ipc_r_done(&r)) {
        secrets_free(s);
        return NULL;
    }
    return s;
}

void secrets_encode_names(struct ipc_w *w, const struct secrets *s)
{
    ipc_w_u32(w, (uint32_t)secrets_count(s));
    for (size_t i = 0; i < secrets_count(s); i++)
        ipc_w_str(w, s->c[i].gateway);
}

char **secrets_decode_names(const void *body, size_t len)
{
    struct ipc_r r;
    uint32_t n;
    char **v;

    ipc_r_init(&r, body, len);
    n = ipc_r_u32(&r);
    if (!ipc_r_ok(&r) || n > SECRETS_MAX)
        return NULL;
    v = xcalloc((size_t)n + 1, sizeof(*v));
    for (uint32_t i = 0; i < n; i++)
        v[i] = xstrdup(ipc_r_str(&r));
    if (!ipc_r_done(&r)) {
        for (uint32_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return NULL;
    }
    return v;
}

void secrets_free(struct secrets *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->c[i].gateway);
        free_secret(s->c[i].user);
        free_secret(s->c[i].pass);
    }
    free(s->c);
    free(s);
}
