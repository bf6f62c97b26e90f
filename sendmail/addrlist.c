/*
 * addrlist - RFC 5322 address lists (see addrlist.h). The text is first
 * cut into tokens (atoms, quoted strings, domain literals, special
 * characters; comments and white space dropped), then read by a small
 * recursive-free parser over the token array.
 */
#include "addrlist.h"

#include <stdlib.h>
#include <string.h>

#include "mail/smtp_addr.h"
#include "base/util.h"

enum tok_kind { T_ATOM, T_QSTR, T_DLIT, T_CHAR, T_END };

struct tok {
    enum tok_kind kind;
    char c;        /* T_CHAR: one of < > : ; @ , . */
    const char *p; /* T_ATOM: the atom; T_QSTR/T_DLIT: inside the delimiters */
    size_t len;
    size_t off; /* offset in the input, for errors */
};

struct toks {
    struct tok *v;
    size_t n, cap;
};

static int is_atext(unsigned char c)
{
    if (c >= 0x80)
        return 1; /* UTF-8 (RFC 6532) */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void tok_push(struct toks *t, enum tok_kind k, char c, const char *p, size_t len, size_t off)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    t->v[t->n++] = (struct tok){k, c, p, len, off};
}

/* Skip a comment starting at s[*i] == '('; nested, with quoted pairs. */
static int skip_comment(const char *s, size_t len, size_t *i)
{
    size_t depth = 0;

    for (; *i < len; (*i)++) {
        char c = s[*i];
        if (c == '\\') {
            (*i)++;
        } else if (c == '(') {
            depth++;
        } else if (c == ')') {
            if (--depth == 0) {
                (*i)++;
                return 0;
            }
        } else if (c == '\0') {
            return -1;
        }
    }
    return -1;
}

/* A control character other than tab: never part of an address (NUL, CR, LF...). */
static int is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/*
 * From s[*i] == open to the matching close; quoted pairs allowed, but a
 * quoted pair is a printable character or a blank (RFC 5322 quoted-pair),
 * so "\\<NUL>" or "\\<LF>" cannot smuggle a control character in.
 */
static int scan_delimited(const char *s, size_t len, size_t *i, char close)
{
    for ((*i)++; *i < len; (*i)++) {
        unsigned char c = (unsigned char)s[*i];
        if (c == '\\') {
            if (++(*i) >= len || is_ctl((unsigned char)s[*i]))
                return -1;
        } else if (c == (unsigned char)close) {
            return 0;
        } else if (is_ctl(c)) {
            return -1;
        } else if (close == ']' && c == '[') {
            return -1;
        }
    }
    return -1;
}

static int tokenize(const char *s, size_t len, struct toks *t, const char **why, size_t *where)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t start = i;
        if (is_wsp(c)) {
            i++;
        } else if (c == '(') {
            if (skip_comment(s, len, &i) < 0)
                return *why = "unterminated comment", *where = start, -1;
        } else if (c == '"' || c == '[') {
            if (scan_delimited(s, len, &i, c == '"' ? '"' : ']') < 0)
                return *why =
                           c == '"' ? "unterminated quoted string" : "unterminated domain literal",
                       *where = start, -1;
            tok_push(t, c == '"' ? T_QSTR : T_DLIT, 0, s + start + 1, i - start - 1, start);
            i++;
        } else if (strchr("<>:;@,.", c) != NULL && c != 0) {
            tok_push(t, T_CHAR, (char)c, s + i, 1, i);
            i++;
        } else if (is_atext(c)) {
            while (i < len && is_atext((unsigned char)s[i]))
                i++;
            tok_push(t, T_ATOM, 0, s + start, i - start, start);
        } else {
            return *why = "character not allowed in an address", *where = start, -1;
        }
    }
    tok_push(t, T_END, 0, s + len, 0, len);
    return 0;
}

int addr_is_dot_atom(const char *s, size_t len)
{
    int need = 1; /* an atext is needed next (start, or after a dot) */

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (need)
                return 0;
            need = 1;
        } else if (is_atext((unsigned char)s[i])) {
            need = 0;
        } else {
            return 0;
        }
    }
    return len > 0 && !need;
}

/* The content of a quoted string or literal with quoted pairs undone. */
static void unescape_into(struct buf *b, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\\' && i + 1 < len)
            i++;
        else if (p[i] == '\r' || p[i] == '\n')
            continue; /* folding inside the quotes */
        buf_addc(b, p[i]);
    }
}

struct parser {
    struct toks t;
    size_t i;
    struct addrlist out;
    size_t max;
    const char *why;
    size_t where;
};

static const struct tok *peek(const struct parser *ps)
{
    return &ps->t.v[ps->i];
}

static int is_char(const struct tok *t, char c)
{
    return t->kind == T_CHAR && t->c == c;
}

static int fail(struct parser *ps, const char *why)
{
    ps->why = why;
    ps->where = peek(ps)->off;
    return -1;
}

static int is_word(const struct tok *t)
{
    return t->kind == T_ATOM || t->kind == T_QSTR;
}

/* local-part: words joined by dots (obs-local-part), plus the "a..b" and
 * "a." forms seen in the wild, which come out quoted. Two words without a
 * dot between them end it ("John user@x" is not one local part). */
static int parse_local(struct parser *ps, struct buf *local)
{
    size_t n = 0;
    int after_word = 0;

    while (is_word(peek(ps)) || is_char(peek(ps), '.')) {
        const struct tok *t = peek(ps);
        if (is_word(t) && after_word)
            break;
        after_word = is_word(t);
        if (t->kind == T_QSTR)
            unescape_into(local, t->p, t->len);
        else
            buf_add(local, t->p, t->len);
        ps->i++;
        n++;
    }
    if (n == 0)
        return fail(ps, "address expected");
    if (local->len > SMTP_LOCAL_MAX)
        return fail(ps, "local part too long");
    return 0;
}

static int parse_domain(struct parser *ps, struct buf *dom)
{
    const struct tok *t = peek(ps);

    if (t->kind == T_DLIT) {
        buf_addc(dom, '[');
        unescape_into(dom, t->p, t->len);
        buf_addc(dom, ']');
        ps->i++;
    } else {
        int after_atom = 0;
        while ((peek(ps)->kind == T_ATOM && !after_atom) || is_char(peek(ps), '.')) {
            after_atom = peek(ps)->kind == T_ATOM;
            buf_add(dom, peek(ps)->p, peek(ps)->len);
            ps->i++;
        }
        if (!addr_is_dot_atom(dom->data ? dom->data : "", dom->len))
            return fail(ps, dom->len ? "malformed domain" : "domain expected after @");
    }
    if (dom->len > SMTP_DOMAIN_MAX)
        return fail(ps, "domain too long");
    return 0;
}

static void add_addr(struct addrlist *l, const char *local, size_t llen, const char *domain)
{
    struct buf b;

    buf_init(&b);
    if (addr_is_dot_atom(local, llen)) {
        buf_add(&b, local, llen);
    } else {
        buf_addc(&b, '"');
        for (size_t i = 0; i < llen; i++) {
            if (local[i] == '"' || local[i] == '\\')
                buf_addc(&b, '\\');
            buf_addc(&b, local[i]);
        }
        buf_addc(&b, '"');
    }
    addrlist_add(l, b.data, domain);
    buf_free(&b);
}

/* addr-spec: local-part ["@" domain]. */
static int parse_addr_spec(struct parser *ps)
{
    struct buf local, dom;
    int rc = -1;

    buf_init(&local);
    buf_init(&dom);
    if (parse_local(ps, &local) < 0)
        goto out;
    if (is_char(peek(ps), '@')) {
        ps->i++;
        if (parse_domain(ps, &dom) < 0)
            goto out;
    }
    if (ps->out.n >= ps->max) {
        fail(ps, "too many addresses");
        goto out;
    }
    add_addr(&ps->out, local.data ? local.data : "", local.len, dom.len ? dom.data : NULL);
    rc = 0;
out:
    buf_free(&local);
    buf_free(&dom);
    return rc;
}

/* "<" [route ":"] addr-spec ">"; the route (obsolete) is dropped. */
static int parse_angle(struct parser *ps)
{
    ps->i++; /* '<' */
    if (is_char(peek(ps), '@')) {
        while (!is_char(peek(ps), ':')) {
            if (peek(ps)->kind == T_END || is_char(peek(ps), '>'))
                return fail(ps, "malformed route in angle address");
            ps->i++;
        }
        ps->i++;
    }
    if (is_char(peek(ps), '>'))
        return fail(ps, "empty angle address");
    if (parse_addr_spec(ps) < 0)
        return -1;
    if (!is_char(peek(ps), '>'))
        return fail(ps, "'>' expected");
    ps->i++;
    return 0;
}

/*
 * One mailbox: a name-addr or an addr-spec. When an angle address follows,
 * whatever comes before it is the display name, even where RFC 5322 would
 * want quotes ("a@b <c@d>", "Jenkins [CI] <ci@x>").
 */
static int parse_mailbox(struct parser *ps)
{
    size_t j = ps->i;

    for (;; j++) {
        const struct tok *t = &ps->t.v[j];
        if (t->kind == T_END || is_char(t, ',') || is_char(t, ';') || is_char(t, ':'))
            return parse_addr_spec(ps);
        if (is_char(t, '<')) {
            ps->i = j;
            return parse_angle(ps);
        }
    }
}

static int at_end_of_address(const struct tok *t, int in_group)
{
    return t->kind == T_END || is_char(t, ',') || (in_group && is_char(t, ';'));
}

/* display-name ":" [mailbox-list] ";" (the ';' may be missing at the end) */
static int parse_group(struct parser *ps)
{
    while (!is_char(peek(ps), ':'))
        ps->i++; /* the display name (checked by the caller) */
    ps->i++;
    for (;;) {
        while (is_char(peek(ps), ','))
            ps->i++;
        if (is_char(peek(ps), ';')) {
            ps->i++;
            return 0;
        }
        if (peek(ps)->kind == T_END)
            return 0;
        if (parse_mailbox(ps) < 0)
            return -1;
        if (!at_end_of_address(peek(ps), 1))
            return fail(ps, is_char(peek(ps), ':') ? "group inside a group"
                                                   : "',' expected between addresses");
    }
}

static int parse_address(struct parser *ps)
{
    size_t j = ps->i;

    while (is_word(&ps->t.v[j]) || is_char(&ps->t.v[j], '.'))
        j++;
    if (is_char(&ps->t.v[j], ':')) {
        if (j == ps->i)
            return fail(ps, "group without a name");
        return parse_group(ps);
    }
    return parse_mailbox(ps);
}

static int parse_list(struct parser *ps)
{
    for (;;) {
        while (is_char(peek(ps), ','))
            ps->i++;
        if (peek(ps)->kind == T_END)
            return 0;
        if (parse_address(ps) < 0)
            return -1;
        if (!at_end_of_address(peek(ps), 0))
            return fail(ps, "',' expected between addresses");
    }
}

int addrlist_parse(struct addrlist *l, const char *s, size_t len, size_t max, const char **why,
                   size_t *where)
{
    struct parser ps;
    int rc;

    memset(&ps, 0, sizeof(ps));
    addrlist_init(&ps.out);
    ps.max = max > l->n ? max - l->n : 0;
    rc = tokenize(s, len, &ps.t, &ps.why, &ps.where);
    if (rc == 0)
        rc = parse_list(&ps);
    if (rc == 0) {
        for (size_t i = 0; i < ps.out.n; i++) {
            if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 8;
                l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
            }
            l->v[l->n++] = ps.out.v[i];
        }
        ps.out.n = 0;
    } else {
        *why = ps.why;
        *where = ps.where;
    }
    addrlist_free(&ps.out);
    free(ps.t.v);
    return rc;
}

void addrlist_init(struct addrlist *l)
{
    memset(l, 0, sizeof(*l));
}

void addrlist_free(struct addrlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].local);
        free(l->v[i].domain);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

void addrlist_add(struct addrlist *l, const char *local, const char *domain)
{
    struct addr *a;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    a = &l->v[l->n++];
    a->local = xstrdup(local);
    a->domain = domain ? xstrdup(domain) : NULL;
    a->utf8 = 0;
    for (const char *p = local; *p; p++)
        a->utf8 |= (unsigned char)*p >= 0x80;
    for (const char *p = domain ? domain : ""; *p; p++)
        a->utf8 |= (unsigned char)*p >= 0x80;
}

char *addr_format(const struct addr *a, const char *def_domain)
{
    const char *d = a->domain ? a->domain : def_domain;

    return d ? xasprintf("%s@%s", a->local, d) : xstrdup(a->local);
}
