/*
 * expand - alias expansion for one recipient; contract in expand.h.
 */
#include "expand.h"

#include <stdlib.h>
#include <string.h>

#include "mail/local_rcpt.h"
#include "base/util.h"

struct walk {
    const struct lx_source *src;
    struct lx_result *out;
    const char *path[LX_DEPTH_MAX + 2];
};

static void fail(struct walk *w, int temporary, char *why)
{
    if (w->out->error == NULL) {
        w->out->error = why;
        w->out->temporary = temporary;
    } else {
        free(why);
    }
}

static void add(struct walk *w, enum alias_kind k, const char *text, enum lx_ctx ctx, long owner,
                const char *via)
{
    struct lx_result *o = w->out;

    for (size_t i = 0; i < o->n; i++)
        if (o->t[i].kind == k && strcmp(o->t[i].text, text) == 0)
            return;
    if (o->n >= LX_TARGETS_MAX) {
        fail(w, 0, xasprintf("alias expansion gives more than %d targets", LX_TARGETS_MAX));
        return;
    }
    o->t = xrealloc(o->t, (o->n + 1) * sizeof(*o->t));
    o->t[o->n] = (struct lx_target){k, xstrdup(text), ctx, owner, xstrdup(via)};
    o->n++;
}

static void expand_name(struct walk *w, const char *name, size_t depth);

/* One target of the alias `name` (or of an :include: it lists). */
static void expand_target(struct walk *w, const char *name, const char *t, size_t depth,
                          enum lx_ctx ctx, long owner)
{
    char *rest = NULL;
    enum alias_kind k = alias_target(t, &rest);

    switch (k) {
    case AK_FILE:
    case AK_PIPE:
        add(w, k, rest, ctx, owner, name);
        break;
    case AK_MAILBOX: {
        char *lp = local_part(rest);
        add(w, AK_MAILBOX, lp, ctx, owner, name);
        free(lp);
        break;
    }
    case AK_INCLUDE: {
        char *err = NULL;
        long inc_owner = -1;
        char **list = w->src->include(w->src->arg, rest, &inc_owner, &err);
        if (list == NULL) {
            fail(w, 1,
                 xasprintf("alias %s: :include:%s: %s", name, rest, err ? err : "unreadable"));
            free(err);
            break;
        }
        for (char **p = list; *p && w->out->error == NULL; p++)
            expand_target(w, name, *p, depth, LX_CTX_INCLUDE, inc_owner);
        aliases_free_list(list);
        break;
    }
    case AK_ADDR: {
        const char *at = strrchr(rest, '@');
        if (at && !w->src->is_local(w->src->arg, at + 1)) {
            add(w, AK_ADDR, rest, ctx, owner, name);
            break;
        }
        char *lp = local_part(rest);
        if (strcmp(lp, name) == 0)
            add(w, AK_MAILBOX, lp, ctx, owner, name); /* root: root, admin@x */
        else
            expand_name(w, lp, depth + 1);
        free(lp);
        break;
    }
    }
    free(rest);
}

static void expand_name(struct walk *w, const char *name, size_t depth)
{
    char **targets = NULL, *err = NULL;
    int r;

    if (w->out->error)
        return;
    for (size_t i = 0; i < depth; i++)
        if (strcmp(w->path[i], name) == 0) {
            struct buf b;
            buf_init(&b);
            for (size_t k = i; k < depth; k++)
                buf_printf(&b, "%s -> ", w->path[k]);
            buf_adds(&b, name);
            fail(w, 0, xasprintf("alias loop: %s", b.data));
            buf_free(&b);
            return;
        }
    if (depth > LX_DEPTH_MAX) {
        fail(w, 0, xasprintf("alias expansion deeper than %d levels", LX_DEPTH_MAX));
        return;
    }
    r = w->src->alias(w->src->arg, name, &targets, &err);
    if (r < 0) {
        fail(w, 1, xasprintf("aliases: %s", err ? err : "lookup failed"));
        free(err);
        return;
    }
    if (r == 0) {
        if (strcmp(name, "postmaster") == 0)
            expand_name(w, "root", depth);
        else
            add(w, AK_MAILBOX, name, LX_CTX_ALIAS, -1, depth ? w->path[depth - 1] : "");
        return;
    }
    w->path[depth] = name;
    for (char **p = targets; *p && w->out->error == NULL; p++)
        expand_target(w, name, *p, depth, LX_CTX_ALIAS, w->src->alias_owner);
    aliases_free_list(targets);
}

int lx_expand(const struct lx_source *src, const char *addr, struct lx_result *out)
{
    struct walk w = {.src = src, .out = out};
    char *lp = local_part(addr);

    memset(out, 0, sizeof(*out));
    expand_name(&w, lp, 0);
    free(lp);
    return out->error ? -1 : 0;
}

void lx_free(struct lx_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->t[i].text);
        free(r->t[i].via);
    }
    free(r->t);
    free(r->error);
    memset(r, 0, sizeof(r[0]));
}
