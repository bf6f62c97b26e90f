/*
 * sts_http - the policy server's HTTP response (contract in sts_http.h).
 *
 * Every feed re-reads the response from its first byte: the whole of it
 * is bounded (header, body and chunk framing), so this costs little and
 * keeps the parser free of partial states.
 */
#include "sts_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mta_sts.h"

/* Chunk framing allowed on top of the body (sizes, extensions, CR LFs). */
#define CHUNK_OVERHEAD_MAX 16384
#define IN_MAX (STSHTTP_HEADER_MAX + STS_POLICY_MAX + CHUNK_OVERHEAD_MAX)
#define CHUNK_LINE_MAX 1024

struct hdr {
    const char *ctype; /* value, trimmed, or NULL */
    size_t ctype_len;
    long long clen; /* -1: none */
    int chunked;
    char location[128];
};

void stshttp_init(struct stshttp *h)
{
    memset(h, 0, sizeof(*h));
    buf_init(&h->in);
    buf_init(&h->body);
    h->st = STSHTTP_MORE;
}

void stshttp_free(struct stshttp *h)
{
    buf_free(&h->in);
    buf_free(&h->body);
}

static enum stshttp_state fail(struct stshttp *h, const char *fmt, const char *arg)
{
    snprintf(h->why, sizeof(h->why), fmt, arg);
    h->st = STSHTTP_ERROR;
    return h->st;
}

static int is_blank(int c)
{
    return c == ' ' || c == '\t';
}

/* [*s, *s + *n) without blanks around it */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_blank((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_blank((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

static int word_is(const char *s, size_t n, const char *w)
{
    return n == strlen(w) && ascii_ncasecmp(s, w, n) == 0;
}

/* The end of the header section (the byte after its empty line), 0 when
 * not there yet, -1 when it cannot be within the limit. */
static long header_end(const char *p, size_t len)
{
    size_t start = 0, lim = len < STSHTTP_HEADER_MAX ? len : STSHTTP_HEADER_MAX;

    while (start < lim) {
        const char *nl = memchr(p + start, '\n', lim - start);
        size_t n;
        if (nl == NULL)
            break;
        n = (size_t)(nl - (p + start));
        if (start > 0 && (n == 0 || (n == 1 && p[start] == '\r')))
            return (long)(nl - p) + 1;
        start = (size_t)(nl - p) + 1;
    }
    return len >= STSHTTP_HEADER_MAX ? -1 : 0;
}

static int status_line(struct stshttp *h, const char *s, size_t n)
{
    if (n < 12 || (memcmp(s, "HTTP/1.0 ", 9) != 0 && memcmp(s, "HTTP/1.1 ", 9) != 0))
        return -1;
    for (int i = 9; i < 12; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    if (n > 12 && s[12] != ' ')
        return -1;
    h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    return 0;
}

static enum stshttp_state header_field(struct stshttp *h, const char *s, size_t n, struct hdr *hd)
{
    const char *colon = memchr(s, ':', n), *v;
    size_t vn, name_n;

    if (n > 0 && is_blank((unsigned char)s[0]))
        return fail(h, "%s", "a folded header line");
    if (colon == NULL || colon == s)
        return fail(h, "%s", "a header line without a field name");
    name_n = (size_t)(colon - s);
    for (size_t i = 0; i < name_n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return fail(h, "%s", "a bad header field name");
    v = colon + 1;
    vn = n - name_n - 1;
    trim(&v, &vn);
    if (word_is(s, name_n, "content-type")) {
        if (hd->ctype)
            return fail(h, "%s", "two Content-Type fields");
        hd->ctype = v;
        hd->ctype_len = vn;
    } else if (word_is(s, name_n, "content-length")) {
        long long x = 0;
        if (vn == 0 || vn > 10)
            return fail(h, "%s", "a bad Content-Length");
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9')
                return fail(h, "%s", "a bad Content-Length");
            x = x * 10 + (v[i] - '0');
        }
        if (hd->clen >= 0 && hd->clen != x)
            return fail(h, "%s", "two different Content-Lengths");
        hd->clen = x;
    } else if (word_is(s, name_n, "transfer-encoding")) {
        if (!word_is(v, vn, "chunked"))
            return fail(h, "%s", "a Transfer-Encoding other than chunked");
        hd->chunked = 1;
    } else if (word_is(s, name_n, "location")) {
        snprintf(hd->location, sizeof(hd->location), "%.*s", (int)(vn < 100 ? vn : 100), v);
    }
    return STSHTTP_MORE;
}

static enum stshttp_state check_status(struct stshttp *h, const struct hdr *hd)
{
    char num[8];

    if (h->status == 200)
        return STSHTTP_MORE;
    snprintf(num, sizeof(num), "%d", h->status);
    if (h->status >= 300 && h->status < 400) {
        snprintf(h->why, sizeof(h->why),
                 "HTTP status %s: redirect to \"%s\" not followed (RFC "
                 "8461 3.3)",
                 num, hd->location);
        h->st = STSHTTP_ERROR;
        return h->st;
    }
    return fail(h, "HTTP status %s (only 200 is accepted)", num);
}

static enum stshttp_state check_ctype(struct stshttp *h, const struct hdr *hd)
{
    const char *t = hd->ctype, *semi;
    size_t n = hd->ctype_len;
    char shown[80];

    if (t == NULL)
        return fail(h, "%s", "no Content-Type (text/plain needed)");
    semi = memchr(t, ';', n);
    if (semi)
        n = (size_t)(semi - t);
    trim(&t, &n);
    if (word_is(t, n, "text/plain"))
        return STSHTTP_MORE;
    for (size_t i = 0; i < n && i < sizeof(shown) - 1; i++)
        shown[i] = t[i] >= ' ' && t[i] <= '~' ? t[i] : '?';
    shown[n < sizeof(shown) - 1 ? n : sizeof(shown) - 1] = '\0';
    return fail(h, "Content-Type \"%s\" is not text/plain", shown);
}

static enum stshttp_state parse_header(struct stshttp *h, size_t end, struct hdr *hd)
{
    const char *p = h->in.data;
    size_t start = 0;
    int first = 1;

    hd->clen = -1;
    while (start < end) {
        const char *nl = memchr(p + start, '\n', end - start);
        size_t n = (size_t)(nl - (p + start));
        const char *s = p + start;
        start += n + 1;
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (memchr(s, '\0', n) || memchr(s, '\r', n))
            return fail(h, "%s", "a NUL or a lone CR in the header");
        if (first) {
            if (status_line(h, s, n) < 0)
                return fail(h, "%s", "not an HTTP/1.x status line");
            first = 0;
            continue;
        }
        if (n == 0)
            break;
        if (header_field(h, s, n, hd) == STSHTTP_ERROR)
            return h->st;
    }
    if (check_status(h, hd) == STSHTTP_ERROR || check_ctype(h, hd) == STSHTTP_ERROR)
        return h->st;
    if (hd->chunked && hd->clen >= 0)
        return fail(h, "%s", "both Content-Length and Transfer-Encoding");
    if (hd->clen > STS_POLICY_MAX)
        return fail(h, "%s", "the policy is longer than 65536 bytes (Content-Length)");
    return STSHTTP_MORE;
}

static enum stshttp_state body_chunked(struct stshttp *h, size_t off, int eof)
{
    const char *p = h->in.data;
    size_t len = h->in.len;

    for (;;) {
        const char *nl = memchr(p + off, '\n', len - off);
        size_t n, size = 0, i;
        if (nl == NULL)
            goto more;
        n = (size_t)(nl - (p + off));
        if (n > CHUNK_LINE_MAX)
            return fail(h, "%s", "a chunk size line too long");
        for (i = 0; i < n; i++) {
            char c = p[off + i];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d < 0)
                break;
            size = size * 16 + (size_t)d;
            if (size > STS_POLICY_MAX)
                return fail(h, "%s", "the policy is longer than 65536 bytes (chunked)");
        }
        if (i == 0 || (i < n && p[off + i] != ';' && p[off + i] != '\r' && !is_blank(p[off + i])))
            return fail(h, "%s", "a malformed chunk size");
        off += n + 1;
        if (size == 0)
            return h->st = STSHTTP_DONE; /* trailers, if any, are not needed */
        if (h->body.len + size > STS_POLICY_MAX)
            return fail(h, "%s", "the policy is longer than 65536 bytes (chunked)");
        if (len - off < size + 1)
            goto more;
        buf_add(&h->body, p + off, size);
        off += size;
        if (p[off] == '\r') {
            if (len - off < 2)
                goto more;
            off++;
        }
        if (p[off] != '\n')
            return fail(h, "%s", "a chunk not followed by CR LF");
        off++;
    }
more:
    if (eof)
        return fail(h, "%s", "connection closed before the end of the chunked body");
    return STSHTTP_MORE;
}

static enum stshttp_state parse(struct stshttp *h, int eof)
{
    long end = header_end(h->in.data, h->in.len);
    struct hdr hd;
    size_t have;

    if (end < 0)
        return fail(h, "%s", "header section longer than 8192 bytes");
    if (end == 0)
        return eof ? fail(h, "%s", "connection closed inside the header") : STSHTTP_MORE;
    memset(&hd, 0, sizeof(hd));
    if (parse_header(h, (size_t)end, &hd) == STSHTTP_ERROR)
        return h->st;
    buf_reset(&h->body);
    have = h->in.len - (size_t)end;
    if (hd.chunked)
        return body_chunked(h, (size_t)end, eof);
    if (hd.clen >= 0) {
        if (have >= (size_t)hd.clen) {
            buf_add(&h->body, h->in.data + end, (size_t)hd.clen);
            return h->st = STSHTTP_DONE;
        }
        return eof ? fail(h, "%s", "connection closed before the end of the body") : STSHTTP_MORE;
    }
    if (have > STS_POLICY_MAX)
        return fail(h, "%s", "the policy is longer than 65536 bytes");
    if (!eof)
        return STSHTTP_MORE;
    buf_add(&h->body, h->in.data + end, have);
    return h->st = STSHTTP_DONE;
}

enum stshttp_state stshttp_feed(struct stshttp *h, const void *p, size_t n)
{
    if (h->st != STSHTTP_MORE)
        return h->st;
    if (n > IN_MAX - h->in.len)
        n = IN_MAX - h->in.len + 1; /* one byte over: parse decides */
    buf_add(&h->in, p, n);
    if (parse(h, 0) == STSHTTP_MORE && h->in.len > IN_MAX)
        return fail(h, "%s", "the response is too long");
    return h->st;
}

enum stshttp_state stshttp_eof(struct stshttp *h)
{
    if (h->st != STSHTTP_MORE)
        return h->st;
    return parse(h, 1);
}
