/*
 * local_rcpt - mydestination and the local recipients smtpd takes;
 * contract in local_rcpt.h.
 */
#include "mail/local_rcpt.h"

#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "mail/aliases.h"
#include "base/util.h"

int local_domain(const struct config *c, const char *domain)
{
    for (char *const *d = cfg_list(c, P_mydestination); d && *d; d++)
        if (ascii_casecmp(*d, domain) == 0)
            return 1;
    if (!c->set[P_mydestination] && *cfg_str(c, P_myhostname) == '\0')
        return ascii_casecmp(cfg_myhostname(c), domain) == 0;
    return 0;
}

char *local_part(const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t n = at ? (size_t)(at - addr) : strlen(addr);
    char *lp;

    if (n >= 2 && addr[0] == '"' && addr[n - 1] == '"') {
        /* "user" is user; a quoted part that needs its quotes keeps them */
        int plain = 1;
        for (size_t i = 1; i + 1 < n; i++)
            if (strchr(" \t\\\"(),:;<>@[]", addr[i]))
                plain = 0;
        if (plain) {
            addr++;
            n -= 2;
        }
    }
    lp = xstrndup(addr, n);
    ascii_lower(lp);
    return lp;
}

static int in_map(struct map *m, const char *key, int *err)
{
    char *val = NULL, *e = NULL;
    int r = map_get(m, key, &val, &e);

    free(val);
    free(e);
    if (r < 0)
        *err = 1;
    return r == 1;
}

enum lrcpt local_rcpt_check(const struct config *c, struct map *aliases, struct map *users,
                            const char *addr)
{
    const char *at = strrchr(addr, '@');
    enum lrcpt r;
    char *lp;
    int err = 0;

    if (at == NULL || !local_domain(c, at + 1))
        return LR_REMOTE;
    lp = local_part(addr);
    if (strcmp(lp, "postmaster") == 0)
        r = LR_OK;
    else if (aliases && in_map(aliases, lp, &err))
        r = LR_OK;
    else if (users == NULL || in_map(users, lp, &err))
        r = LR_OK;
    else
        r = LR_UNKNOWN;
    free(lp);
    return err && r == LR_UNKNOWN ? LR_ERROR : r;
}

int local_aliases_compile(const struct config *c, const char *path,
                          void (*warn)(const char *text, void *arg), void *arg, char **err)
{
    char *const *dest = cfg_list(c, P_mydestination);
    size_t n = 0;
    const char **doms;
    int rc;

    for (char *const *d = dest; d && *d; d++)
        n++;
    doms = xcalloc(n + 2, sizeof(*doms));
    for (size_t i = 0; i < n; i++)
        doms[i] = dest[i];
    if (!c->set[P_mydestination] && *cfg_str(c, P_myhostname) == '\0')
        doms[n++] = cfg_myhostname(c);
    if (path == NULL)
        path = cfg_str(c, P_alias_maps);
    if (path == NULL || *path == '\0') {
        *err = xstrdup("alias_maps is empty: there is no aliases file to compile");
        free(doms);
        return -1;
    }
    rc = aliases_compile(path, (char *const *)(uintptr_t)doms, warn, arg, err);
    free(doms);
    return rc;
}

int local_users_build(const char *path, char **err)
{
    struct map_writer *w = map_create(path, 0, err);
    struct passwd *pw;

    if (w == NULL)
        return -1;
    setpwent();
    while ((pw = getpwent()) != NULL) {
        char *name = xstrdup(pw->pw_name);
        ascii_lower(name);
        if (map_put(w, name, "1", 1, err) < 0) {
            free(name);
            endpwent();
            map_abort(w);
            return -1;
        }
        free(name);
    }
    endpwent();
    return map_commit(w, err);
}
