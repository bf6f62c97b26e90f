/*
 * smtp_reply - SMTP reply and EHLO parsing, reply sanitising and the DATA
 * encoder for the outbound client. Pure functions; see smtp_reply.h.
 */
#include <stdio.h>
#include <string.h>

#include "mail/smtp_reply.h"
#include "mail/smtp_addr.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

void smtp_reply_init(struct smtp_reply *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->text);
}

void smtp_reply_reset(struct smtp_reply *r)
{
    r->code = 0;
    r->enh[0] = '\0';
    r->nlines = 0;
    r->done = 0;
    buf_reset(&r->text);
}

void smtp_reply_free(struct smtp_reply *r)
{
    buf_free(&r->text);
    memset(r, 0, sizeof(*r));
}

/* Length of a run of 1..3 digits at s[0..len), or 0. */
static size_t digits13(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len && i < 4 && is_digit(s[i]))
        i++;
    return i >= 1 && i <= 3 ? i : 0;
}

int smtp_enh_valid(const char *s, size_t len)
{
    size_t i, d;

    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    i = 2;
    d = digits13(s + i, len - i);
    if (d == 0)
        return 0;
    i += d;
    if (i >= len || s[i] != '.')
        return 0;
    i++;
    d = digits13(s + i, len - i);
    if (d == 0)
        return 0;
    return i + d == len;
}

/* Length of the enhanced code (of class cls) that starts text, or 0. */
static size_t enh_prefix(const char *text, size_t len, char cls)
{
    size_t n = 0;

    while (n < len && text[n] != ' ')
        n++;
    if (n == 0 || text[0] != cls || !smtp_enh_valid(text, n))
        return 0;
    return n;
}

static int bad(struct smtp_reply *r, const char **why, const char *reason)
{
    r->done = 1;
    if (why)
        *why = reason;
    return SMTP_REPLY_BAD;
}

int smtp_reply_line(struct smtp_reply *r, const char *line, size_t len, const char **why)
{
    const char *text;
    size_t tlen, elen;
    int code, cont;

    if (r->done)
        smtp_reply_reset(r);
    if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]))
        return bad(r, why, "reply line does not start with a 3-digit code");
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code < 200 || code > 599)
        return bad(r, why, "reply code out of range");
    if (len > 3 && line[3] != ' ' && line[3] != '-')
        return bad(r, why, "reply code not followed by space or '-'");
    if (len > 4 + SMTP_REPLY_LINE_MAX)
        return bad(r, why, "reply line too long");
    if (memchr(line, '\0', len) != NULL)
        return bad(r, why, "NUL byte in reply");
    if (r->nlines > 0 && code != r->code)
        return bad(r, why, "reply lines carry different codes");
    if (r->nlines >= SMTP_REPLY_LINES_MAX)
        return bad(r, why, "too many reply lines");

    cont = len > 3 && line[3] == '-';
    text = len > 4 ? line + 4 : "";
    tlen = len > 4 ? len - 4 : 0;
    if (r->nlines == 0) {
        r->code = code;
        elen = enh_prefix(text, tlen, line[0]);
        if (elen > 0 && elen < sizeof(r->enh)) {
            memcpy(r->enh, text, elen);
            r->enh[elen] = '\0';
        }
    } else {
        buf_addc(&r->text, '\n');
    }
    buf_add(&r->text, text, tlen);
    r->nlines++;
    if (cont)
        return SMTP_REPLY_MORE;
    r->done = 1;
    return SMTP_REPLY_DONE;
}

int smtp_reply_parse(struct smtp_reply *r, const char *p, size_t n, size_t *used, const char **why)
{
    size_t off = 0, len;
    const char *nl;
    int rc;

    smtp_reply_reset(r);
    while (off < n) {
        nl = memchr(p + off, '\n', n - off);
        if (nl == NULL)
            break;
        len = (size_t)(nl - (p + off));
        if (len > 0 && p[off + len - 1] == '\r')
            len--;
        rc = smtp_reply_line(r, p + off, len, why);
        off = (size_t)(nl - p) + 1;
        if (rc != SMTP_REPLY_MORE) {
            if (rc == SMTP_REPLY_DONE && used)
                *used = off;
            return rc;
        }
    }
    if (n - off > SMTP_REPLY_LINE_MAX + 6)
        return bad(r, why, "reply line too long");
    return SMTP_REPLY_MORE;
}

int smtp_reply_text_line(const struct smtp_reply *r, int i, const char **s, size_t *len)
{
    const char *p = r->text.data, *end, *nl;
    int k;

    if (i < 0 || i >= r->nlines || p == NULL)
        return -1;
    end = p + r->text.len;
    for (k = 0; k < i; k++) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return -1;
        p = nl + 1;
    }
    nl = memchr(p, '\n', (size_t)(end - p));
    *s = p;
    *len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    return 0;
}

/* What one character at s (n > 0 bytes) becomes: *keep bytes copied as
 * they are, or 0 and *sub the one byte written instead. Returns the bytes
 * of src it stands for. */
static size_t clean_char(const unsigned char *s, size_t n, size_t *keep, char *sub)
{
    size_t k = smtp_utf8_seq(s, n);

    *keep = 0;
    *sub = '?';
    if (s[0] == '\t') {
        *sub = ' ';
        return 1;
    }
    if (k == 0)
        return 1; /* not UTF-8: this byte alone */
    if (s[0] < 0x20 || s[0] == 0x7f || (k == 2 && s[0] == 0xc2 && s[1] < 0xa0))
        return k; /* C0, DEL, C1 (U+0080..U+009F): one '?' */
    *keep = k;
    return k;
}

/* smtp_sanitize, also saying how many bytes of src it took. */
static size_t sanitize(char *out, size_t outsz, const char *src, size_t n, size_t *used)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t i = 0, o = 0;

    while (i < n) {
        size_t keep;
        char sub;
        size_t took = clean_char(p + i, n - i, &keep, &sub);
        size_t w = keep ? keep : 1;
        if (o + w + 1 > outsz)
            break; /* a character is never cut */
        if (keep)
            memcpy(out + o, p + i, keep);
        else
            out[o] = sub;
        o += w;
        i += took;
    }
    out[o] = '\0';
    *used = i;
    return o;
}

size_t smtp_sanitize(char *out, size_t outsz, const char *src, size_t n)
{
    size_t used;

    if (outsz == 0)
        return 0;
    return sanitize(out, outsz, src, n, &used);
}

/* out (len bytes of sanitised text in outsz) ends in "..." to show that
 * something was cut, without splitting a UTF-8 character. */
static void mark_cut(char *out, size_t len, size_t outsz)
{
    size_t at = len;

    if (outsz < 4)
        return;
    if (at + 4 > outsz)
        at = outsz - 4;
    while (at > 0 && ((unsigned char)out[at] & 0xc0) == 0x80)
        at--; /* back to the first byte of the character */
    memcpy(out + at, "...", 4);
}

char *smtp_reply_summary(const struct smtp_reply *r, char *out, size_t outsz)
{
    struct buf b;
    const char *s;
    size_t len, e;
    int i;

    if (outsz == 0)
        return out;
    buf_init(&b);
    buf_printf(&b, "%03d", r->code);
    if (r->enh[0])
        buf_printf(&b, " %s", r->enh);
    for (i = 0; i < r->nlines; i++) {
        if (smtp_reply_text_line(r, i, &s, &len) < 0)
            break;
        e = enh_prefix(s, len, (char)('0' + r->code / 100));
        if (e > 0) {
            s += e;
            len -= e;
        }
        while (len > 0 && *s == ' ') {
            s++;
            len--;
        }
        if (len == 0)
            continue;
        buf_addc(&b, ' ');
        buf_add(&b, s, len);
    }
    len = sanitize(out, outsz, b.data, b.len, &e);
    if (e < b.len)
        mark_cut(out, len, outsz);
    buf_free(&b);
    return out;
}

/* Does the word w[0..wlen) equal the keyword kw (ASCII, any case)? */
static int word_is(const char *w, size_t wlen, const char *kw)
{
    return strlen(kw) == wlen && ascii_ncasecmp(w, kw, wlen) == 0;
}

static unsigned long long parse_size(const char *s, size_t len)
{
    unsigned long long v = 0;
    size_t i;

    if (len == 0 || len > 19)
        return 0;
    for (i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return 0;
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    return v;
}

static void parse_auth(struct smtp_caps *c, const char *s, size_t len)
{
    size_t i = 0, w;

    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        w = i;
        while (i < len && s[i] != ' ')
            i++;
        if (word_is(s + w, i - w, "PLAIN"))
            c->auth |= SMTP_AUTH_PLAIN;
        else if (word_is(s + w, i - w, "LOGIN"))
            c->auth |= SMTP_AUTH_LOGIN;
    }
}

static void parse_cap_line(struct smtp_caps *c, const char *s, size_t len)
{
    size_t kw = 0;
    const char *arg;
    size_t alen;

    while (kw < len && s[kw] != ' ' && s[kw] != '=')
        kw++;
    arg = s + kw;
    alen = len - kw;
    if (alen > 0) {
        arg++;
        alen--;
    }
    if (word_is(s, kw, "PIPELINING"))
        c->flags |= SMTP_CAP_PIPELINING;
    else if (word_is(s, kw, "SIZE")) {
        c->flags |= SMTP_CAP_SIZE;
        while (alen > 0 && arg[alen - 1] == ' ')
            alen--;
        c->size = parse_size(arg, alen);
    } else if (word_is(s, kw, "8BITMIME"))
        c->flags |= SMTP_CAP_8BITMIME;
    else if (word_is(s, kw, "SMTPUTF8"))
        c->flags |= SMTP_CAP_SMTPUTF8;
    else if (word_is(s, kw, "STARTTLS"))
        c->flags |= SMTP_CAP_STARTTLS;
    else if (word_is(s, kw, "AUTH")) {
        c->flags |= SMTP_CAP_AUTH;
        parse_auth(c, arg, alen);
    } else if (word_is(s, kw, "DSN"))
        c->flags |= SMTP_CAP_DSN;
    else if (word_is(s, kw, "ENHANCEDSTATUSCODES"))
        c->flags |= SMTP_CAP_ENHANCEDSTATUSCODES;
    else if (word_is(s, kw, "CHUNKING"))
        c->flags |= SMTP_CAP_CHUNKING;
}

void smtp_caps_parse(struct smtp_caps *c, const struct smtp_reply *ehlo)
{
    const char *s;
    size_t len;
    int i;

    memset(c, 0, sizeof(*c));
    for (i = 1; i < ehlo->nlines; i++) {
        if (smtp_reply_text_line(ehlo, i, &s, &len) < 0)
            break;
        while (len > 0 && *s == ' ') {
            s++;
            len--;
        }
        parse_cap_line(c, s, len);
    }
}

char *smtp_caps_format(const struct smtp_caps *c, char *out, size_t outsz)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {SMTP_CAP_PIPELINING, "PIPELINING"},
        {SMTP_CAP_SIZE, "SIZE"},
        {SMTP_CAP_8BITMIME, "8BITMIME"},
        {SMTP_CAP_SMTPUTF8, "SMTPUTF8"},
        {SMTP_CAP_STARTTLS, "STARTTLS"},
        {SMTP_CAP_AUTH, "AUTH"},
        {SMTP_CAP_DSN, "DSN"},
        {SMTP_CAP_ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES"},
        {SMTP_CAP_CHUNKING, "CHUNKING"},
    };
    struct buf b;
    size_t i;

    buf_init(&b);
    for (i = 0; i < nitems(names); i++) {
        if (!(c->flags & names[i].bit))
            continue;
        if (b.len > 0)
            buf_addc(&b, ' ');
        buf_adds(&b, names[i].name);
        if (names[i].bit == SMTP_CAP_SIZE && c->size > 0)
            buf_printf(&b, "=%llu", c->size);
        if (names[i].bit == SMTP_CAP_AUTH) {
            if (c->auth & SMTP_AUTH_PLAIN)
                buf_adds(&b, "=PLAIN");
            if (c->auth & SMTP_AUTH_LOGIN)
                buf_adds(&b, (c->auth & SMTP_AUTH_PLAIN) ? ",LOGIN" : "=LOGIN");
        }
    }
    smtp_sanitize(out, outsz, b.data ? b.data : "", b.len);
    buf_free(&b);
    return out;
}

void smtp_dotstuff_init(struct smtp_dotstuff *d)
{
    d->bol = 1;
    d->cr = 0;
}

/*
 * The encoder copies runs of ordinary lines (text ending in CR LF, not
 * starting with a dot) to the output with one buf_add, finding the line
 * ends with memchr; it stops a run only where the output differs from the
 * input (a dot to double, a bare LF or lone CR to turn into CR LF) or at a
 * CR ending the piece, whose meaning depends on the next byte. Its output
 * and its bol/cr fields are exactly those of the original byte-at-a-time
 * encoder (t/ref/dotstuff_ref.h) for every input and every cutting; the
 * unit test and the fuzzer compare the two.
 */
static size_t stuff_find(const char *in, size_t n, size_t from, char c)
{
    const char *p = memchr(in + from, c, n - from);

    return p ? (size_t)(p - in) : n;
}

void smtp_dotstuff_add(struct smtp_dotstuff *d, const char *in, size_t n, struct buf *out)
{
    size_t i = 0, from, cr, lf, j;

    buf_reserve(out, n + n / 32 + 8);
    if (n == 0)
        return;
    if (d->cr) {
        /* CR LF, or a lone CR: both end the line with CR LF. */
        d->cr = 0;
        d->bol = 1;
        buf_add(out, "\r\n", 2);
        if (in[0] == '\n')
            i = 1;
    }
    /* in[from..i) is output not yet copied; cr and lf are the next CR and
     * LF at or after i (n: none), searched for again once passed. */
    from = i;
    cr = stuff_find(in, n, i, '\r');
    lf = stuff_find(in, n, i, '\n');
    while (i < n) {
        if (d->bol && in[i] == '.') {
            buf_add(out, in + from, i - from);
            buf_addc(out, '.');
            from = i; /* the dot itself goes out with the line */
        }
        if (cr < i)
            cr = stuff_find(in, n, i, '\r');
        if (lf < i)
            lf = stuff_find(in, n, i, '\n');
        j = cr < lf ? cr : lf;
        if (j > i)
            d->bol = 0;
        if (j == n) {
            i = n;
            break;
        }
        if (in[j] == '\r' && j + 1 < n && in[j + 1] == '\n') {
            d->bol = 1; /* CR LF: copied as it is */
            i = j + 2;
            continue;
        }
        buf_add(out, in + from, j - from);
        i = from = j + 1;
        if (in[j] == '\r' && j + 1 == n) {
            d->cr = 1; /* the next piece tells CR LF from a lone CR */
            break;
        }
        buf_add(out, "\r\n", 2); /* a bare LF or a lone CR */
        d->bol = 1;
    }
    buf_add(out, in + from, i - from);
}

void smtp_dotstuff_end(struct smtp_dotstuff *d, struct buf *out)
{
    if (d->cr) {
        buf_add(out, "\r\n", 2);
        d->cr = 0;
        d->bol = 1;
    }
    if (!d->bol)
        buf_add(out, "\r\n", 2);
    buf_add(out, ".\r\n", 3);
    d->bol = 1;
}
