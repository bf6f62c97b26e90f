/*
 * aliases - the aliases(5) format, its compiled map and target lists;
 * contract in aliases.h.
 */
#include "mail/aliases.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/map.h"
#include "base/util.h"

#define ALIAS_DEPTH_MAX 30

static int is_blank(int c)
{
    return c == ' ' || c == '\t';
}

void aliases_free_list(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

struct strv {
    char **v;
    size_t n, cap;
};

static void strv_add(struct strv *s, char *item)
{
    if (s->n + 1 >= s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = item;
    s->v[s->n] = NULL;
}

/* The trimmed bytes [p, e) as a string. */
static char *trimmed(const char *p, const char *e)
{
    while (p < e && is_blank((unsigned char)*p))
        p++;
    while (e > p && (is_blank((unsigned char)e[-1]) || e[-1] == '\r'))
        e--;
    return xstrndup(p, (size_t)(e - p));
}

/*
 * Split s at commas outside double quotes into trimmed, non-empty targets
 * appended to out. -1 and *why on an unterminated quote or a target that
 * is not well formed.
 */
static int split_targets(const char *s, struct strv *out, const char **why)
{
    const char *start = s, *p = s;
    int inq = 0;

    for (;; p++) {
        if (*p == '\\' && inq && p[1]) {
            p++;
            continue;
        }
        if (*p == '"') {
            inq = !inq;
            continue;
        }
        if (*p != '\0' && (*p != ',' || inq))
            continue;
        if (inq) {
            *why = "unterminated quote";
            return -1;
        }
        char *t = trimmed(start, p);
        if (*t == '\0') {
            free(t);
        } else {
            char *rest = NULL;
            enum alias_kind k = alias_target(t, &rest);
            int bad = ((k == AK_FILE || k == AK_INCLUDE) && rest[0] != '/') ||
                      (k == AK_PIPE && rest[0] == '\0') ||
                      ((k == AK_ADDR || k == AK_MAILBOX) &&
                       (rest[0] == '\0' || rest[0] == '@' || rest[strlen(rest) - 1] == '@'));
            free(rest);
            if (bad) {
                *why = k == AK_INCLUDE ? ":include: needs an absolute path"
                       : k == AK_PIPE  ? "empty command"
                       : k == AK_FILE  ? "a file target must be an absolute path"
                                       : "malformed address";
                free(t);
                return -1;
            }
            if (out->n >= ALIAS_TARGETS_MAX) {
                free(t);
                *why = "too many targets";
                return -1;
            }
            strv_add(out, t);
        }
        if (*p == '\0')
            return 0;
        start = p + 1;
    }
}

enum alias_kind alias_target(const char *t, char **rest)
{
    size_t n = strlen(t);

    /* "|command, args" and "/file name": the quotes only protect them */
    if (n >= 2 && t[0] == '"' && t[n - 1] == '"' && (t[1] == '|' || t[1] == '/')) {
        char *in = xstrndup(t + 1, n - 2);
        enum alias_kind k = alias_target(in, rest);
        free(in);
        return k;
    }
    if (t[0] == '|') {
        const char *c = t + 1;
        while (is_blank((unsigned char)*c))
            c++;
        *rest = xstrdup(c);
        return AK_PIPE;
    }
    if (t[0] == '/') {
        *rest = xstrdup(t);
        return AK_FILE;
    }
    if (strncasecmp(t, ":include:", 9) == 0) {
        const char *c = t + 9;
        while (is_blank((unsigned char)*c))
            c++;
        *rest = xstrdup(c);
        return AK_INCLUDE;
    }
    if (t[0] == '\\') {
        *rest = xstrdup(t + 1);
        return AK_MAILBOX;
    }
    *rest = xstrdup(t);
    return AK_ADDR;
}

/* One logical line: "name: targets". */
static int parse_entry(char *line, const char *fname, size_t lineno, alias_entry_fn fn, void *arg,
                       char **err)
{
    struct strv tv = {NULL, 0, 0};
    char *p = line, *name, *colon;
    const char *why = NULL;
    int rc, quoted = *p == '"';

    if (*p == '"') {
        char *q = strchr(p + 1, '"');
        if (q == NULL) {
            *err = xasprintf("%s:%zu: unterminated quote in the alias name", fname, lineno);
            return -1;
        }
        name = xstrndup(p + 1, (size_t)(q - p - 1));
        colon = q + 1;
        while (is_blank((unsigned char)*colon))
            colon++;
        if (*colon != ':') {
            free(name);
            *err = xasprintf("%s:%zu: ':' expected after the alias name", fname, lineno);
            return -1;
        }
    } else {
        colon = strchr(p, ':');
        if (colon == NULL) {
            *err = xasprintf("%s:%zu: ':' expected after the alias name (name: address, ...)",
                             fname, lineno);
            return -1;
        }
        name = trimmed(p, colon);
    }
    if (name[0] == '\0' || strchr(name, '@') || (!quoted && strpbrk(name, " \t,"))) {
        *err =
            xasprintf(name[0] == '\0'     ? "%s:%zu: empty alias name"
                      : strchr(name, '@') ? "%s:%zu: an alias name is a local part, without @domain"
                                          : "%s:%zu: blank or comma in an alias name (quote it)",
                      fname, lineno);
        free(name);
        return -1;
    }
    ascii_lower(name);
    if (split_targets(colon + 1, &tv, &why) < 0) {
        *err = xasprintf("%s:%zu: %s: %s", fname, lineno, name, why);
        aliases_free_list(tv.v);
        free(name);
        return -1;
    }
    if (tv.n == 0) {
        *err = xasprintf("%s:%zu: %s: no target after ':'", fname, lineno, name);
        free(name);
        return -1;
    }
    rc = fn(name, tv.v, tv.n, lineno, arg);
    aliases_free_list(tv.v);
    free(name);
    return rc;
}

int aliases_parse(const char *text, size_t len, const char *fname, alias_entry_fn fn, void *arg,
                  char **err)
{
    struct buf logical;
    size_t pos = 0, lineno = 0, start_line = 0;
    int have = 0, rc = 0;

    *err = NULL;
    if (memchr(text, '\0', len) != NULL) {
        size_t at = (size_t)((const char *)memchr(text, '\0', len) - text), l = 1;
        for (size_t i = 0; i < at; i++)
            l += text[i] == '\n';
        *err = xasprintf("%s:%zu: NUL byte", fname, l);
        return -1;
    }
    buf_init(&logical);
    while (pos < len && rc == 0) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *line = text + pos;
        size_t i = 0;
        pos += n + (nl != NULL);
        lineno++;
        while (i < n && (is_blank((unsigned char)line[i]) || line[i] == '\r'))
            i++;
        if (i == n || line[i] == '#')
            continue; /* empty or comment: skipped, even between continuations */
        if (i > 0) {
            if (!have) {
                *err =
                    xasprintf("%s:%zu: continuation line with no alias before it", fname, lineno);
                rc = -1;
                break;
            }
            buf_addc(&logical, ' ');
            buf_add(&logical, line + i, n - i);
        } else {
            if (have)
                rc = parse_entry(logical.data, fname, start_line, fn, arg, err);
            buf_reset(&logical);
            buf_add(&logical, line, n);
            have = 1;
            start_line = lineno;
        }
        if (rc == 0 && logical.len > ALIAS_LINE_MAX) {
            *err = xasprintf("%s:%zu: alias entry too long", fname, start_line);
            rc = -1;
        }
    }
    if (rc == 0 && have)
        rc = parse_entry(logical.data, fname, start_line, fn, arg, err);
    buf_free(&logical);
    return rc;
}

char **aliases_parse_list(const char *text, size_t len, const char *fname, char **err)
{
    struct strv tv = {NULL, 0, 0};
    size_t pos = 0, lineno = 0;

    *err = NULL;
    strv_add(&tv, NULL);
    tv.n = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *why = NULL;
        char *line;
        pos += n + (nl != NULL);
        lineno++;
        if (n > ALIAS_LINE_MAX || memchr(text + pos - n - (nl != NULL), '\0', n)) {
            *err = xasprintf("%s:%zu: %s", fname, lineno,
                             n > ALIAS_LINE_MAX ? "line too long" : "NUL byte");
            aliases_free_list(tv.v);
            return NULL;
        }
        line = trimmed(text + pos - n - (nl != NULL), text + pos - n - (nl != NULL) + n);
        if (line[0] != '#' && split_targets(line, &tv, &why) < 0) {
            *err = xasprintf("%s:%zu: %s", fname, lineno, why);
            free(line);
            aliases_free_list(tv.v);
            return NULL;
        }
        free(line);
    }
    return tv.v;
}

char **aliases_split(const char *val, size_t len)
{
    struct strv tv = {NULL, 0, 0};
    size_t pos = 0;

    strv_add(&tv, NULL);
    tv.n = 0;
    while (pos < len) {
        const char *nl = memchr(val + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (val + pos)) : len - pos;
        if (n > 0)
            strv_add(&tv, xstrndup(val + pos, n));
        pos += n + 1;
    }
    return tv.v;
}

/* ---- compiling ---- */

char *aliases_read(const char *path, size_t *len, char **err)
{
    return read_file_len(path, ALIAS_FILE_MAX, len, err);
}

struct entry {
    char *name;
    char **targets;
    size_t line;
};

struct compile {
    const char *path;
    struct map_writer *w;
    struct entry *e;
    size_t n, cap;
    char *const *local;
    char *err;
};

static const struct entry *find(const struct compile *c, const char *name);

static int add_entry(const char *name, char *const *targets, size_t n, size_t line, void *arg)
{
    struct compile *c = arg;
    struct buf v;
    char *err = NULL;
    int r;

    buf_init(&v);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_addc(&v, '\n');
        buf_adds(&v, targets[i]);
    }
    r = map_put(c->w, name, v.data, v.len, &err);
    buf_free(&v);
    if (r == 1) {
        const struct entry *first = find(c, name);
        c->err = xasprintf("%s:%zu: duplicate alias name %s (first at line %zu)", c->path, line,
                           name, first ? first->line : 0);
        return 2;
    }
    if (r != 0) {
        c->err = err;
        return 2;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->e = xrealloc(c->e, c->cap * sizeof(*c->e));
    }
    c->e[c->n].name = xstrdup(name);
    c->e[c->n].line = line;
    c->e[c->n].targets = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        c->e[c->n].targets[i] = xstrdup(targets[i]);
    c->n++;
    return 0;
}

static const struct entry *find(const struct compile *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].name, name) == 0)
            return &c->e[i];
    return NULL;
}

/* The alias name an address target stands for, when it is local (no
 * domain, or one of the local domains); malloc'd, or NULL. */
static char *local_name(const char *addr, char *const *local)
{
    const char *at = strrchr(addr, '@');
    char *n;

    if (at != NULL) {
        int is_local = 0;
        for (char *const *d = local; d && *d && !is_local; d++)
            is_local = ascii_casecmp(*d, at + 1) == 0;
        if (!is_local)
            return NULL;
    }
    n = at ? xstrndup(addr, (size_t)(at - addr)) : xstrdup(addr);
    ascii_lower(n);
    return n;
}

/* Depth-first from e along local names; a name met again on the path is
 * a loop (a name that lists itself is its own mailbox, not a loop). */
static int find_loop(const struct compile *c, const struct entry *e, const char **path,
                     size_t depth, struct buf *out)
{
    if (depth >= ALIAS_DEPTH_MAX)
        return 0;
    path[depth] = e->name;
    for (char **t = e->targets; *t; t++) {
        char *rest = NULL, *ln;
        const struct entry *next;
        if (alias_target(*t, &rest) != AK_ADDR) {
            free(rest);
            continue;
        }
        ln = local_name(rest, c->local);
        free(rest);
        if (ln == NULL || strcmp(ln, e->name) == 0 || (next = find(c, ln)) == NULL) {
            free(ln);
            continue;
        }
        for (size_t i = 0; i <= depth; i++)
            if (strcmp(path[i], ln) == 0) {
                for (size_t k = i; k <= depth; k++)
                    buf_printf(out, "%s -> ", path[k]);
                buf_adds(out, ln);
                free(ln);
                return 1;
            }
        free(ln);
        if (find_loop(c, next, path, depth + 1, out))
            return 1;
    }
    return 0;
}

static void check_includes(const struct compile *c, const struct entry *e,
                           void (*warn)(const char *, void *), void *arg)
{
    for (char **t = e->targets; *t; t++) {
        char *rest = NULL;
        struct stat st;
        if (alias_target(*t, &rest) == AK_INCLUDE && stat(rest, &st) != 0) {
            char *w = xasprintf("%s:%zu: %s: :include:%s: %s", c->path, e->line, e->name, rest,
                                strerror(errno));
            warn(w, arg);
            free(w);
        }
        free(rest);
    }
}

static void free_entries(struct compile *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->e[i].name);
        aliases_free_list(c->e[i].targets);
    }
    free(c->e);
}

int aliases_compile(const char *path, char *const *local_domains,
                    void (*warn)(const char *text, void *arg), void *arg, char **err)
{
    struct compile c = {.path = path, .local = local_domains};
    size_t len = 0;
    char *text;
    int rc;

    *err = NULL;
    text = aliases_read(path, &len, err);
    if (text == NULL)
        return -1;
    c.w = map_create(path, 0, err);
    if (c.w == NULL) {
        free(text);
        return -1;
    }
    rc = aliases_parse(text, len, path, add_entry, &c, err);
    free(text);
    if (rc != 0) {
        if (rc == 2)
            *err = c.err;
        map_abort(c.w);
        free_entries(&c);
        return -1;
    }
    for (size_t i = 0; i < c.n; i++) {
        const char *p[ALIAS_DEPTH_MAX + 1];
        struct buf loop;
        buf_init(&loop);
        if (warn && find_loop(&c, &c.e[i], p, 0, &loop)) {
            char *w = xasprintf("%s:%zu: alias loop: %s", path, c.e[i].line, loop.data);
            warn(w, arg);
            free(w);
        }
        buf_free(&loop);
        if (warn)
            check_includes(&c, &c.e[i], warn, arg);
    }
    free_entries(&c);
    return map_commit(c.w, err);
}
