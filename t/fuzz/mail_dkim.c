/*
 * libFuzzer target: the DKIM signing library (common/mail/dkim.c) on a
 * hostile message. The input is fed whole, in pseudo-random pieces and
 * (when short) one byte at a time: finish, the From: domain and the
 * signatures (Ed25519, deterministic, both canonicalizations) must be the
 * same each way. A From: domain must look like one (lower case, no
 * control byte, no '@', dots only between labels, UTF-8); a signature
 * field must be folded (lines of at most 78 characters, CR LF TAB) and
 * end with CR LF; the canonical bodies must be canonical (trailing empty
 * lines gone, relaxed without tabs or WSP before CR LF) and canonicalizing
 * them again must change nothing. The same bytes are also read as a key
 * record (dkim_txt_matches: 0 with a reason or 1) and as a PEM key.
 */
#include <openssl/err.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "mail/dkim.h"
#include "mail/smtp_addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dkim_key *key;

struct result {
    int rc;
    char *domain;
    char *sig[2]; /* by enum dkim_canon */
};

/* style 0: whole; 1: one byte at a time; 2: pieces of 0..63 bytes. */
static void run(const uint8_t *data, size_t size, int style, struct result *r)
{
    struct dkim_msg *m = dkim_msg_new();
    uint64_t seed = size * 0x9e3779b97f4a7c15ull + 1;
    char *err = NULL;

    for (size_t off = 0, n; off < size; off += n) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        n = style == 0 ? size : style == 1 ? 1 : (size_t)(seed >> 58);
        if (n > size - off)
            n = size - off;
        dkim_msg_feed(m, data + off, n);
    }
    r->rc = dkim_msg_finish(m, &err);
    if ((r->rc < 0) != (err != NULL))
        abort();
    free(err);
    r->domain = dkim_msg_from_domain(m) ? xstrdup(dkim_msg_from_domain(m)) : NULL;
    for (int c = 0; c < 2; c++) {
        struct dkim_sign_opts o = {"example.com", "sel", NULL, c, c, 1700000000, 0};
        struct buf out;
        r->sig[c] = NULL;
        if (r->rc < 0)
            continue;
        buf_init(&out);
        if (dkim_msg_sign(m, key, &o, &out, &err) < 0)
            abort(); /* a finished message with good options always signs */
        r->sig[c] = out.data;
    }
    dkim_msg_free(m);
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void check_same(const struct result *a, const struct result *b)
{
    if (a->rc != b->rc || !same_str(a->domain, b->domain) || !same_str(a->sig[0], b->sig[0]) ||
        !same_str(a->sig[1], b->sig[1]))
        abort();
}

static void result_free(struct result *r)
{
    free(r->domain);
    free(r->sig[0]);
    free(r->sig[1]);
}

static void check_domain(const char *d)
{
    size_t n;

    if (d == NULL)
        return;
    n = strlen(d);
    if (n == 0 || n > 253 || d[0] == '.' || d[n - 1] == '.' || strstr(d, "..") || strchr(d, '@') ||
        !smtp_utf8_valid((const unsigned char *)d, n))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)d[i] < 0x21 || d[i] == 0x7f || (d[i] >= 'A' && d[i] <= 'Z'))
            abort();
}

static void check_field(const char *f)
{
    size_t col = 0;

    if (f == NULL)
        return;
    if (strncmp(f, "DKIM-Signature: v=1; ", 21) != 0)
        abort();
    for (const char *p = f; *p; p++) {
        if (*p == '\n')
            abort(); /* a LF not after a CR */
        if (p[0] != '\r') {
            col++;
            continue;
        }
        if (p[1] != '\n' || col > 78 || (p[2] && p[2] != '\t'))
            abort();
        col = 0;
        p++;
    }
    if (col != 0)
        abort(); /* not ended by CR LF */
}

static void check_canon(const uint8_t *data, size_t size, enum dkim_canon c)
{
    struct buf once, twice;
    const char *s;
    size_t n;

    buf_init(&once);
    buf_init(&twice);
    dkim_canon_body(c, (const char *)data, size, &once);
    dkim_canon_body(c, once.data, once.len, &twice);
    s = once.data;
    n = once.len;
    if (twice.len != n || memcmp(twice.data, s, n) != 0)
        abort(); /* canonical already: nothing changes */
    if (c == DKIM_CANON_SIMPLE && (n < 2 || memcmp(s + n - 2, "\r\n", 2) != 0))
        abort();
    if (n >= 4 && memcmp(s + n - 4, "\r\n\r\n", 4) == 0)
        abort(); /* an empty line at the end */
    if (c == DKIM_CANON_RELAXED) {
        if (memchr(s, '\t', n) || memmem(s, n, "  ", 2) || memmem(s, n, " \r\n", 3) ||
            (n == 2 && memcmp(s, "\r\n", 2) == 0))
            abort();
    }
    buf_free(&once);
    buf_free(&twice);
}

static void check_txt(const uint8_t *data, size_t size)
{
    char *txt = xstrndup((const char *)data, size), *why = NULL, *err = NULL;
    int r = dkim_txt_matches(txt, key, &why);
    struct dkim_key *k;

    if ((r != 0 && r != 1) || (r == 0) != (why != NULL))
        abort();
    free(why);
    k = dkim_key_load_pem((const char *)data, size, &err);
    if ((k == NULL) != (err != NULL) || ERR_peek_error() != 0)
        abort();
    dkim_key_free(k);
    free(err);
    free(txt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct result whole, pieces, bytes;
    char *err = NULL;

    if (key == NULL && (key = dkim_key_generate(DKIM_ED25519_SHA256, 0, &err)) == NULL)
        abort();
    run(data, size, 0, &whole);
    run(data, size, 2, &pieces);
    check_same(&whole, &pieces);
    if (size <= 4096) {
        run(data, size, 1, &bytes);
        check_same(&whole, &bytes);
        result_free(&bytes);
    }
    check_domain(whole.domain);
    check_field(whole.sig[0]);
    check_field(whole.sig[1]);
    result_free(&whole);
    result_free(&pieces);
    check_canon(data, size, DKIM_CANON_RELAXED);
    check_canon(data, size, DKIM_CANON_SIMPLE);
    check_txt(data, size);
    return 0;
}
