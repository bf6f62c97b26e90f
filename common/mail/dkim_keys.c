/*
 * dkim_keys - the dkim_map (etc/dkim), its compiled form and the keys it
 * names; contract in dkim_keys.h.
 *
 * Compiled form (FILE.db): the key is the domain (lower case, or "*"),
 * the value its one or two entries, one a line, each written back in
 * the source's own option syntax ("selector=S key=FILE algorithm=A
 * headers=H required=yes|no", the last three only when given), key= as
 * written. The loader parses a value with the code that parses a source
 * line, so the two cannot drift apart; a value that does not parse is a
 * map that cannot be read.
 *
 * A relative key= is taken from the directory of the map file: that is
 * the config directory when the map is etc/dkim (dkim_map = dkim), and
 * the place the admin chose otherwise. It is resolved when the map is
 * loaded or checked, not when it is compiled, so a config directory
 * moved as a whole keeps working.
 */
#include "mail/dkim_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/map.h"
#include "base/util.h"

#define DKIM_MAP_FILE_MAX (16u * 1024 * 1024)
#define DKIM_KEY_FILE_MAX (64u * 1024)
#define DKIM_HEADERS_MAX 2048
#define ERRORS_SHOWN 20

/* One line of the source (or one line of a compiled value). */
struct src {
    char *domain;
    char *selector;
    char *key; /* as written */
    int alg;   /* -1: the key's own type */
    char *headers;
    unsigned required;
    size_t line;
};

struct srcs {
    struct src *v;
    size_t n, cap;
};

/* Every error of a parse or check, one "FILE:LINE: DOMAIN: why" a line. */
struct errs {
    struct buf b;
    size_t n;
};

static void errs_add(struct errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void errs_add(struct errs *e, const char *fmt, ...)
{
    va_list ap;

    if (e->n++ >= ERRORS_SHOWN)
        return;
    if (e->b.len)
        buf_addc(&e->b, '\n');
    va_start(ap, fmt);
    buf_vprintf(&e->b, fmt, ap);
    va_end(ap);
}

/* The errors as one malloc'd text, or NULL when there are none. */
static char *errs_take(struct errs *e)
{
    char *t;

    if (e->n == 0) {
        buf_free(&e->b);
        return NULL;
    }
    if (e->n > ERRORS_SHOWN)
        buf_printf(&e->b, "\n(%zu errors in all; the first %d are shown)", e->n, ERRORS_SHOWN);
    t = xstrdup(e->b.data);
    buf_free(&e->b);
    return t;
}

static void src_free(struct src *s)
{
    free(s->domain);
    free(s->selector);
    free(s->key);
    free(s->headers);
    memset(s, 0, sizeof(*s));
}

static void srcs_free(struct srcs *s)
{
    for (size_t i = 0; i < s->n; i++)
        src_free(&s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static struct src *srcs_add(struct srcs *s)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    memset(&s->v[s->n], 0, sizeof(s->v[0]));
    return &s->v[s->n++];
}

/* ---- syntax ---- */

static int is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int is_ldh(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* A DNS name of letter-digit-hyphen labels (RFC 5321 sub-domains, as
 * RFC 6376 wants for d= and s=), at most max bytes. */
static int dns_name_ok(const char *s, size_t max)
{
    size_t n = strlen(s), label = 0;

    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return 0;
            label = 0;
        } else if (!is_ldh((unsigned char)s[i])) {
            return 0;
        } else {
            label++;
        }
    }
    return 1;
}

/* headers=: field names (printable ASCII but ':') separated by ':',
 * From among them (RFC 6376 section 5.4); lower-cased in place. */
static const char *headers_why(char *h)
{
    int from = 0;

    if (strlen(h) > DKIM_HEADERS_MAX)
        return "headers= is too long";
    ascii_lower(h);
    for (char *p = h;;) {
        size_t n = strcspn(p, ":");
        if (n == 0)
            return "headers= has an empty field name (NAME:NAME:...)";
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 33 || (unsigned char)p[i] > 126)
                return "headers= has a character that is not in a field name";
        from |= n == 4 && strncmp(p, "from", 4) == 0;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    return from ? NULL : "headers= must include from (RFC 6376 section 5.4)";
}

/* One "name=value" word into s; a malloc'd *why_alloc when it is refused. */
static void option(struct src *s, char *word, char **why_alloc)
{
    char *eq = strchr(word, '=');
    const char *v;
    char **slot = NULL;

    if (eq == NULL || eq == word) {
        *why_alloc = xasprintf("'%s' is not name=value", word);
        return;
    }
    *eq = '\0';
    v = eq + 1;
    if (strcmp(word, "selector") == 0)
        slot = &s->selector;
    else if (strcmp(word, "key") == 0)
        slot = &s->key;
    else if (strcmp(word, "headers") == 0)
        slot = &s->headers;
    if (slot) {
        if (*slot) {
            *why_alloc = xasprintf("%s= is given twice", word);
            return;
        }
        if (*v == '\0') {
            *why_alloc = xasprintf("%s= is empty", word);
            return;
        }
        *slot = xstrdup(v);
        return;
    }
    if (strcmp(word, "algorithm") == 0) {
        if (s->alg >= 0) {
            *why_alloc = xstrdup("algorithm= is given twice");
            return;
        }
        if ((s->alg = dkim_alg_parse(v)) < 0)
            *why_alloc = xasprintf("unknown algorithm '%s' (rsa-sha256 or ed25519-sha256)", v);
        return;
    }
    if (strcmp(word, "required") == 0) {
        if (s->required != DKIM_REQUIRED_DEFAULT) {
            *why_alloc = xstrdup("required= is given twice");
            return;
        }
        if (strcmp(v, "yes") == 0)
            s->required = 1;
        else if (strcmp(v, "no") == 0)
            s->required = 0;
        else
            *why_alloc = xasprintf("required=%s: yes or no", v);
        return;
    }
    *why_alloc =
        xasprintf("unknown option '%s' (selector= key= algorithm= headers= required=)", word);
}

/*
 * The options of one entry (text after the domain, modified) into s.
 * 0, or -1 and a malloc'd *why.
 */
static int parse_options(char *text, struct src *s, char **why)
{
    char *save = NULL, *w;
    const char *hw;

    *why = NULL;
    s->alg = -1;
    s->required = DKIM_REQUIRED_DEFAULT;
    for (w = strtok_r(text, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
        option(s, w, why);
        if (*why)
            return -1;
    }
    if (s->selector == NULL || s->key == NULL) {
        *why = xasprintf("%s= is missing (DOMAIN selector=S key=FILE ...)",
                         s->selector ? "key" : "selector");
        return -1;
    }
    /* the TXT record's name must fit: SELECTOR._domainkey.DOMAIN */
    if (!dns_name_ok(s->selector, 253 - 12 - (s->domain ? strlen(s->domain) : 1))) {
        *why =
            xasprintf("selector '%s' is not a DNS name (letters, digits, '-', '.')", s->selector);
        return -1;
    }
    if (s->headers && (hw = headers_why(s->headers)) != NULL) {
        *why = xstrdup(hw);
        return -1;
    }
    return 0;
}

int dkim_name_ok(const char *s)
{
    return dns_name_ok(s, 253);
}

static int domain_ok(const char *d)
{
    return strcmp(d, "*") == 0 || dns_name_ok(d, 253);
}

/* One logical line "DOMAIN options..." (modified) into a new entry of out. */
static void parse_line(char *text, const char *path, size_t line, struct srcs *out,
                       struct errs *errs)
{
    size_t dl = strcspn(text, " \t\r");
    struct src *s = srcs_add(out);
    char *why = NULL;

    s->domain = xstrndup(text, dl);
    s->line = line;
    ascii_lower(s->domain);
    if (!domain_ok(s->domain))
        why = xstrdup("not a domain name (or \"*\")");
    else
        parse_options(text + dl, s, &why);
    if (why) {
        errs_add(errs, "%s:%zu: %s: %s", path, line, s->domain, why);
        free(why);
        src_free(s);
        out->n--;
    }
}

/*
 * The source text into entries: comments, blank lines, continuation
 * lines (a line that starts with a blank continues the entry before).
 */
static void parse_text(const char *text, size_t len, const char *path, struct srcs *out,
                       struct errs *errs)
{
    struct buf logical;
    size_t pos = 0, lineno = 0, start = 0;

    buf_init(&logical);
    while (pos < len) {
        const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - l) : len - pos, i = 0;
        pos += n + (nl != NULL);
        lineno++;
        if (n > MAP_LINE_MAX || memchr(l, '\0', n)) {
            errs_add(errs, "%s:%zu: %s", path, lineno,
                     n > MAP_LINE_MAX ? "line too long" : "NUL byte");
            continue;
        }
        while (i < n && is_blank((unsigned char)l[i]))
            i++;
        if (i == n || l[i] == '#')
            continue;
        if (i > 0) {
            if (start == 0)
                errs_add(errs, "%s:%zu: continuation line with nothing to continue", path, lineno);
            else
                buf_addc(&logical, ' ');
            buf_add(&logical, l + i, n - i);
            continue;
        }
        if (start)
            parse_line(logical.data, path, start, out, errs);
        buf_reset(&logical);
        buf_add(&logical, l, n);
        start = lineno;
    }
    if (start)
        parse_line(logical.data, path, start, out, errs);
    buf_free(&logical);
}

/* What one domain's entries may not do together: more than two, the
 * same algorithm twice (when both say it), the same selector twice. */
static void check_together(const struct srcs *s, const char *path, struct errs *errs)
{
    if (s->n > DKIM_KEYS_MAX)
        errs_add(errs, "%s: %zu keys; at most %d", path, s->n, DKIM_KEYS_MAX);
    for (size_t i = 0; i < s->n; i++) {
        const struct src *a = &s->v[i];
        size_t before = 0;
        for (size_t j = 0; j < i; j++) {
            const struct src *b = &s->v[j];
            if (strcmp(a->domain, b->domain) != 0)
                continue;
            if (++before == 2)
                errs_add(errs,
                         "%s:%zu: %s: a third key; a domain has at most two (one per "
                         "algorithm)",
                         path, a->line, a->domain);
            else if (a->alg >= 0 && a->alg == b->alg)
                errs_add(errs, "%s:%zu: %s: a second %s key (line %zu has one)", path, a->line,
                         a->domain, dkim_alg_name((enum dkim_alg)a->alg), b->line);
            else if (ascii_casecmp(a->selector, b->selector) == 0)
                errs_add(errs,
                         "%s:%zu: %s: selector %s is line %zu's too; each key needs its own "
                         "(one TXT record each)",
                         path, a->line, a->domain, a->selector, b->line);
        }
    }
}

/* Read and parse the source; 0, or -1 and *err (every error found). */
static int read_source(const char *path, struct srcs *out, struct errs *errs, char **err)
{
    size_t len = 0;
    char *text = read_file_len(path, DKIM_MAP_FILE_MAX, &len, err);

    memset(out, 0, sizeof(*out));
    if (text == NULL)
        return -1;
    parse_text(text, len, path, out, errs);
    free(text);
    check_together(out, path, errs);
    return 0;
}

/* ---- key files ---- */

/* key_path as the map names it, absolute: a relative one from the map's directory. */
static char *key_abspath(const char *map_path, const char *key)
{
    char *copy, *dir, *r, cwd[PATH_MAX];

    if (key[0] == '/')
        return xstrdup(key);
    copy = xstrdup(map_path);
    dir = dirname(copy);
    if (dir[0] == '/')
        r = xasprintf("%s/%s", dir, key);
    else if (getcwd(cwd, sizeof(cwd)) == NULL)
        r = xasprintf("%s/%s", dir, key);
    else if (strcmp(dir, ".") == 0)
        r = xasprintf("%s/%s", cwd, key);
    else
        r = xasprintf("%s/%s/%s", cwd, dir, key);
    free(copy);
    return r;
}

/* The whole of fd (a regular file of size bytes) into a malloc'd buffer. */
static char *read_fd(int fd, size_t size, size_t *len)
{
    char *b = xmalloc(size + 1);
    size_t got = 0;

    while (got < size) {
        ssize_t n = read(fd, b + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    *len = got;
    return b;
}

/*
 * Load one key file, refusing what group or others may read and what
 * forbid_uid owns. NULL and a malloc'd *why (without the path).
 */
static struct dkim_key *load_key_file(const char *path, uid_t forbid_uid, char **why)
{
    struct dkim_key *k;
    struct stat st;
    size_t len = 0;
    char *pem, *e = NULL;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        *why = xasprintf("cannot be read: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *why = xstrdup("not a regular file");
        close(fd);
        return NULL;
    }
    if (st.st_mode & 077) {
        *why = xasprintf("group or others may read or write it (mode %04o); chmod 600 it",
                         (unsigned)(st.st_mode & 07777));
        close(fd);
        return NULL;
    }
    if (forbid_uid != (uid_t)-1 && st.st_uid == forbid_uid) {
        *why = xasprintf("owned by uid %u, the user smtpd runs as (mail_owner); chown root it",
                         (unsigned)st.st_uid);
        close(fd);
        return NULL;
    }
    if ((size_t)st.st_size > DKIM_KEY_FILE_MAX) {
        *why = xasprintf("larger than %u bytes: not a DKIM key", DKIM_KEY_FILE_MAX);
        close(fd);
        return NULL;
    }
    pem = read_fd(fd, (size_t)st.st_size, &len);
    close(fd);
    k = dkim_key_load_pem(pem, len, &e);
    explicit_bzero(pem, (size_t)st.st_size + 1);
    free(pem);
    if (k == NULL) {
        *why = e ? e : xstrdup("not a private key");
        return NULL;
    }
    free(e);
    return k;
}

/* The key of an entry that says algorithm= (or not, want < 0), checked
 * against it. */
static struct dkim_key *load_key_alg(const char *path, uid_t forbid_uid, int want, char **why)
{
    struct dkim_key *k = load_key_file(path, forbid_uid, why);

    if (k && want >= 0 && (int)dkim_key_alg(k) != want) {
        *why = xasprintf("algorithm=%s but the key is for %s", dkim_alg_name((enum dkim_alg)want),
                         dkim_alg_name(dkim_key_alg(k)));
        dkim_key_free(k);
        return NULL;
    }
    return k;
}

/* ---- compile and check ---- */

/* One entry written back as it is stored (parse_options reads it). */
static void src_value(const struct src *s, struct buf *b)
{
    buf_printf(b, "selector=%s key=%s", s->selector, s->key);
    if (s->alg >= 0)
        buf_printf(b, " algorithm=%s", dkim_alg_name((enum dkim_alg)s->alg));
    if (s->headers)
        buf_printf(b, " headers=%s", s->headers);
    if (s->required != DKIM_REQUIRED_DEFAULT)
        buf_printf(b, " required=%s", s->required ? "yes" : "no");
}

int dkim_map_compile(const char *path, char **err)
{
    struct errs errs = {{NULL, 0, 0}, 0};
    struct map_writer *w;
    struct srcs s;

    *err = NULL;
    buf_init(&errs.b);
    if (read_source(path, &s, &errs, err) < 0) {
        buf_free(&errs.b);
        return -1;
    }
    if ((*err = errs_take(&errs)) != NULL) {
        srcs_free(&s);
        return -1;
    }
    if ((w = map_create(path, 0, err)) == NULL) {
        srcs_free(&s);
        return -1;
    }
    for (size_t i = 0; i < s.n; i++) {
        struct buf v;
        int r = 0, first = 1;
        for (size_t j = 0; j < i && first; j++)
            first = strcmp(s.v[j].domain, s.v[i].domain) != 0;
        if (!first)
            continue; /* written with the domain's first line */
        buf_init(&v);
        for (size_t j = i; j < s.n; j++) {
            if (strcmp(s.v[j].domain, s.v[i].domain) != 0)
                continue;
            if (v.len)
                buf_addc(&v, '\n');
            src_value(&s.v[j], &v);
        }
        r = map_put(w, s.v[i].domain, v.data, v.len, err);
        buf_free(&v);
        if (r != 0) {
            if (r == 1)
                *err = xasprintf("%s:%zu: %s: written twice", path, s.v[i].line, s.v[i].domain);
            map_abort(w);
            srcs_free(&s);
            return -1;
        }
    }
    srcs_free(&s);
    return map_commit(w, err);
}

/* Load every key of s, as the signer would: an error per key that does
 * not load, and one for two keys of a domain that turn out to be of the
 * same type. */
static void check_keys_of(const struct srcs *s, const char *path, uid_t forbid_uid,
                          struct errs *errs)
{
    int *alg = xcalloc(s->n ? s->n : 1, sizeof(int));

    for (size_t i = 0; i < s->n; i++) {
        const struct src *e = &s->v[i];
        char *kp = key_abspath(path, e->key), *why = NULL;
        struct dkim_key *k = load_key_alg(kp, forbid_uid, e->alg, &why);

        alg[i] = -1;
        if (k == NULL) {
            errs_add(errs, "%s:%zu: %s: key %s: %s", path, e->line, e->domain, kp, why);
            free(why);
        } else {
            alg[i] = (int)dkim_key_alg(k);
            dkim_key_free(k);
        }
        free(kp);
        for (size_t j = 0; j < i && alg[i] >= 0; j++)
            if (alg[j] == alg[i] && strcmp(s->v[j].domain, e->domain) == 0 &&
                (e->alg < 0 || s->v[j].alg < 0))
                errs_add(errs, "%s:%zu: %s: a second %s key (line %zu has one)", path, e->line,
                         e->domain, dkim_alg_name((enum dkim_alg)alg[i]), s->v[j].line);
    }
    free(alg);
}

int dkim_map_check_uid(const char *path, int check_keys, uid_t forbid_uid, char **err)
{
    struct errs errs = {{NULL, 0, 0}, 0};
    struct srcs s;

    *err = NULL;
    buf_init(&errs.b);
    if (read_source(path, &s, &errs, err) < 0) {
        buf_free(&errs.b);
        return -1;
    }
    if (check_keys)
        check_keys_of(&s, path, forbid_uid, &errs);
    srcs_free(&s);
    *err = errs_take(&errs);
    return *err ? -1 : 0;
}

int dkim_map_check(const char *path, int check_keys, char **err)
{
    return dkim_map_check_uid(path, check_keys, (uid_t)-1, err);
}

/* ---- sets of keys ---- */

struct dkim_keys *dkim_keys_empty(void)
{
    return xcalloc(1, sizeof(struct dkim_keys));
}

static struct dkim_entry *keys_add(struct dkim_keys *k, size_t *cap)
{
    if (k->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        k->e = xrealloc(k->e, *cap * sizeof(*k->e));
    }
    memset(&k->e[k->n], 0, sizeof(k->e[0]));
    return &k->e[k->n++];
}

void dkim_keys_free(struct dkim_keys *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n; i++) {
        struct dkim_entry *e = &k->e[i];
        free(e->domain);
        free(e->selector);
        free(e->key_path);
        free(e->headers);
        free(e->error);
        dkim_key_free(e->key);
    }
    free(k->e);
    free(k);
}

struct loading {
    struct srcs s;
    char *bad; /* the domain whose value does not parse */
    char *bad_why;
};

/* One compiled entry: its lines parsed back into entries. */
static int load_value(const char *key, const char *val, void *arg)
{
    struct loading *l = arg;
    char *copy = xstrdup(val), *line, *save = NULL;

    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        struct src *s = srcs_add(&l->s);
        s->domain = xstrdup(key);
        if (!domain_ok(key) || parse_options(line, s, &l->bad_why) < 0) {
            l->bad = s->domain;
            s->domain = NULL;
            src_free(s);
            l->s.n--;
            if (l->bad_why == NULL)
                l->bad_why = xstrdup("not a domain name");
            free(copy);
            return 1;
        }
    }
    free(copy);
    return l->s.n > DKIM_KEYS_MAX;
}

/* By domain, "*" last; a domain's entries in the order of its lines. */
static int src_cmp(const void *a, const void *b)
{
    const struct src *x = a, *y = b;
    int xs = strcmp(x->domain, "*") == 0, ys = strcmp(y->domain, "*") == 0;
    int c = xs != ys ? xs - ys : strcmp(x->domain, y->domain);

    if (c)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* The entries of a loaded map, each with its key or the reason it has none. */
static struct dkim_keys *keys_from(const struct srcs *s, const char *map_path, uid_t forbid_uid)
{
    struct dkim_keys *k = dkim_keys_empty();
    size_t cap = 0;

    for (size_t i = 0; i < s->n; i++) {
        const struct src *src = &s->v[i];
        struct dkim_entry *e = keys_add(k, &cap);
        e->domain = xstrdup(src->domain);
        e->selector = xstrdup(src->selector);
        e->key_path = key_abspath(map_path, src->key);
        e->headers = src->headers ? xstrdup(src->headers) : NULL;
        e->required = src->required;
        e->key = load_key_alg(e->key_path, forbid_uid, src->alg, &e->error);
        e->alg = e->key          ? dkim_key_alg(e->key)
                 : src->alg >= 0 ? (enum dkim_alg)src->alg
                                 : DKIM_RSA_SHA256;
        /* two lines without algorithm= whose keys are of one type */
        for (size_t j = 0; j < i && e->key; j++) {
            const struct dkim_entry *o = &k->e[j];
            if (o->key && o->alg == e->alg && strcmp(o->domain, e->domain) == 0) {
                e->error = xasprintf("a second %s key for %s (s=%s has one)", dkim_alg_name(e->alg),
                                     e->domain, o->selector);
                dkim_key_free(e->key);
                e->key = NULL;
            }
        }
    }
    return k;
}

int dkim_keys_load(const char *map_path, uid_t forbid_uid, struct dkim_keys **out, char **err)
{
    struct loading l;
    struct map *m;

    *err = NULL;
    if (map_path == NULL || *map_path == '\0') {
        *out = dkim_keys_empty();
        return 0;
    }
    if ((m = map_open(map_path, 0, err)) == NULL)
        return -1;
    memset(&l, 0, sizeof(l));
    /* the line order of the source is not stored: number lines as read */
    if (map_each(m, load_value, &l, err) < 0) {
        map_close(m);
        srcs_free(&l.s);
        return -1;
    }
    map_close(m);
    if (l.bad || l.s.n > DKIM_KEYS_MAX) {
        *err = l.bad ? xasprintf("%s.db: the entry for %s cannot be read (%s); rebuild it with "
                                 "smtpctl makemap %s",
                                 map_path, l.bad, l.bad_why, map_path)
                     : xasprintf("%s.db: more than %d keys", map_path, DKIM_KEYS_MAX);
        free(l.bad);
        free(l.bad_why);
        srcs_free(&l.s);
        return -1;
    }
    for (size_t i = 0; i < l.s.n; i++)
        l.s.v[i].line = i;
    qsort(l.s.v, l.s.n, sizeof(*l.s.v), src_cmp);
    *out = keys_from(&l.s, map_path, forbid_uid);
    srcs_free(&l.s);
    return 0;
}

/* The entries whose domain is d exactly, into out; how many. */
static size_t find_exact(const struct dkim_keys *k, const char *d, const struct dkim_entry *out[2])
{
    size_t n = 0;

    for (size_t i = 0; k && i < k->n && n < 2; i++)
        if (ascii_casecmp(k->e[i].domain, d) == 0)
            out[n++] = &k->e[i];
    return n;
}

size_t dkim_keys_find(const struct dkim_keys *k, const char *domain,
                      const struct dkim_entry *out[2])
{
    size_t n;

    out[0] = out[1] = NULL;
    if (domain == NULL || *domain == '\0')
        return 0;
    /* the domain, then each parent domain, closest first, then "*" */
    for (const char *d = domain; d; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL)
        if (*d && strcmp(d, "*") != 0 && (n = find_exact(k, d, out)) > 0)
            return n;
    return find_exact(k, "*", out);
}

/* ---- IPC ---- */

void dkim_keys_encode(struct ipc_w *w, const struct dkim_keys *k, int with_keys)
{
    size_t n = k ? k->n : 0;

    ipc_w_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const struct dkim_entry *e = &k->e[i];
        char *pem = with_keys && e->key ? dkim_key_pem(e->key) : NULL;
        ipc_w_str(w, e->domain);
        ipc_w_str(w, e->selector);
        ipc_w_str(w, e->key_path);
        ipc_w_u32(w, (uint32_t)e->alg);
        ipc_w_str(w, e->headers);
        ipc_w_u32(w, e->required);
        ipc_w_str(w, e->error);
        ipc_w_str(w, pem);
        free_secret(pem);
    }
}

/* One decoded entry checked the way the map's lines are. */
static int entry_ok(const char *domain, const char *selector, uint32_t alg, const char *headers,
                    uint32_t required)
{
    char *h = *headers ? xstrdup(headers) : NULL;
    int ok = domain_ok(domain) && dns_name_ok(selector, 253) && alg <= DKIM_ED25519_SHA256 &&
             required <= DKIM_REQUIRED_DEFAULT && (h == NULL || headers_why(h) == NULL);

    free(h);
    return ok;
}

struct dkim_keys *dkim_keys_decode(const void *body, size_t len)
{
    struct dkim_keys *k = dkim_keys_empty();
    struct ipc_r r;
    size_t cap = 0;
    uint32_t n;

    ipc_r_init(&r, body, len);
    n = ipc_r_u32(&r);
    if (n > DKIM_KEYS_MAX)
        r.err = 1;
    for (uint32_t i = 0; i < n && ipc_r_ok(&r); i++) {
        const char *domain = ipc_r_str(&r), *selector = ipc_r_str(&r), *path = ipc_r_str(&r);
        uint32_t alg = ipc_r_u32(&r);
        const char *headers = ipc_r_str(&r);
        uint32_t required = ipc_r_u32(&r);
        const char *error = ipc_r_str(&r), *pem = ipc_r_str(&r);
        struct dkim_entry *e;

        if (!ipc_r_ok(&r) || !entry_ok(domain, selector, alg, headers, required) ||
            (*error && *pem)) {
            r.err = 1;
            break;
        }
        e = keys_add(k, &cap);
        e->domain = xstrdup(domain);
        ascii_lower(e->domain);
        e->selector = xstrdup(selector);
        e->key_path = xstrdup(path);
        e->alg = (enum dkim_alg)alg;
        e->headers = *headers ? xstrdup(headers) : NULL;
        e->required = required;
        e->error = *error ? xstrdup(error) : NULL;
        if (*pem && (e->key = dkim_key_load_pem(pem, strlen(pem), &e->error)) != NULL &&
            dkim_key_alg(e->key) != e->alg) {
            e->error = xasprintf("the key is for %s, not %s", dkim_alg_name(dkim_key_alg(e->key)),
                                 dkim_alg_name(e->alg));
            dkim_key_free(e->key);
            e->key = NULL;
        }
    }
    if (!ipc_r_done(&r)) {
        dkim_keys_free(k);
        return NULL;
    }
    return k;
}

int dkim_entry_required(const struct dkim_entry *e, int dflt)
{
    return e->required == DKIM_REQUIRED_DEFAULT ? dflt : e->required != 0;
}
