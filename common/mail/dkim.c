/*
 * dkim - DKIM signing (RFC 6376, RFC 8463); the contract is in dkim.h.
 *
 * The message is read once, as it streams. The header section is kept
 * (it is signed field by field, at the end); the body goes through both
 * body canonicalizations at once, each into its own SHA-256, so that
 * dkim_msg_sign() can make a signature of either kind without the body.
 * Empty lines are counted, not hashed, until a line with text shows that
 * they were not the end of the body.
 *
 * Lines end with CR LF; a bare CR or LF is a byte of text like any other
 * (smtpd refuses or normalizes them, so queued mail holds none).
 */
#include "mail/dkim.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "mail/smtp_addr.h"

#define FOLD_COLS 78         /* longest line of a DKIM-Signature field, CR LF not counted */
#define B_MIN 8              /* characters of b= worth starting on a line */
#define DNS_NAME_MAX 253     /* a domain name in text form */
#define PEM_MAX (64u * 1024) /* far above the PEM of an 8192-bit RSA key */
#define TAGS_MAX 32          /* tags in one key record */
#define STAGE_SIZE 4096      /* canonical body bytes gathered before hashing */

static int is_wsp(int c)
{
    return c == ' ' || c == '\t';
}

/* White space in a DNS TXT record: RFC 6376's FWS, and a bare LF too. */
static int is_space(int c)
{
    return is_wsp(c) || c == '\r' || c == '\n';
}

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ---- base64 and OpenSSL errors ---- */

static char *b64_encode(const unsigned char *p, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (is_digit(c))
        return c - '0' + 52;
    if (c == '+')
        return 62;
    return c == '/' ? 63 : -1;
}

/* s[0..n) as base64 with white space anywhere ignored; padding required. */
static int b64_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
    unsigned char *o = xmalloc(n / 4 * 3 + 3);
    unsigned acc = 0, bits = 0;
    size_t i, len = 0, chars = 0, pad = 0;

    for (i = 0; i < n; i++) {
        int c = (unsigned char)s[i], v = b64_value(c);
        if (is_space(c))
            continue;
        chars++;
        if (c == '=') {
            pad++;
            continue;
        }
        if (v < 0 || pad > 0)
            break; /* not base64, or text after the padding */
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[len++] = (unsigned char)(acc >> bits);
        }
    }
    if (i < n || chars == 0 || chars % 4 != 0 || pad > 2) {
        free(o);
        return -1;
    }
    *out = o;
    *outlen = len;
    return 0;
}

/* "what: OpenSSL's reason" for the last error queued; empties the queue. */
static char *ossl_error(const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    char *s = reason ? xasprintf("%s: %s", what, reason) : xstrdup(what);

    ERR_clear_error();
    return s;
}

/* ---- keys ---- */

struct dkim_key {
    EVP_PKEY *pkey;
    enum dkim_alg alg;
    int bits;
};

const char *dkim_alg_name(enum dkim_alg a)
{
    switch (a) {
    case DKIM_RSA_SHA256:
        return "rsa-sha256";
    case DKIM_ED25519_SHA256:
        return "ed25519-sha256";
    }
    return "unknown";
}

int dkim_alg_parse(const char *s)
{
    if (s == NULL)
        return -1;
    if (ascii_casecmp(s, "rsa-sha256") == 0)
        return DKIM_RSA_SHA256;
    if (ascii_casecmp(s, "ed25519-sha256") == 0)
        return DKIM_ED25519_SHA256;
    return -1;
}

/* k= of a key record for alg. */
static const char *key_type(enum dkim_alg alg)
{
    return alg == DKIM_ED25519_SHA256 ? "ed25519" : "rsa";
}

/* A dkim_key around pkey, which it takes (and frees if it is refused). */
static struct dkim_key *key_new(EVP_PKEY *pkey, char **err)
{
    struct dkim_key *k;
    int id = EVP_PKEY_get_base_id(pkey), bits = EVP_PKEY_get_bits(pkey);
    const char *type = EVP_PKEY_get0_type_name(pkey);

    if (id == EVP_PKEY_RSA && bits < DKIM_RSA_MIN_BITS)
        *err = xasprintf("RSA key of %d bits; DKIM needs %d or more", bits, DKIM_RSA_MIN_BITS);
    else if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519)
        *err = xasprintf("%s key; DKIM signs with RSA (rsa-sha256) or Ed25519 "
                         "(ed25519-sha256) keys only",
                         type ? type : "unknown");
    if (*err) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    k = xcalloc(1, sizeof(*k));
    k->pkey = pkey;
    k->alg = id == EVP_PKEY_RSA ? DKIM_RSA_SHA256 : DKIM_ED25519_SHA256;
    k->bits = id == EVP_PKEY_RSA ? bits : 256;
    return k;
}

/* PEM's passphrase callback: there is none (a DKIM key is kept in clear). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

struct dkim_key *dkim_key_load_pem(const char *pem, size_t len, char **err)
{
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;

    *err = NULL;
    if (pem == NULL || len == 0 || len > PEM_MAX) {
        *err = xasprintf("%zu bytes are not a PEM private key", pem ? len : 0);
        return NULL;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio)
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (pkey == NULL) {
        if (memmem(pem, len, "ENCRYPTED", 9))
            *err = xstrdup("the key is encrypted; a DKIM key is stored without a passphrase "
                           "(and readable by root only)");
        else
            *err = ossl_error("no PEM private key (PKCS#8 or traditional RSA)");
        ERR_clear_error();
        return NULL;
    }
    ERR_clear_error();
    return key_new(pkey, err);
}

struct dkim_key *dkim_key_generate(enum dkim_alg alg, int bits, char **err)
{
    EVP_PKEY *pkey;

    *err = NULL;
    if (alg == DKIM_ED25519_SHA256) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    } else if (alg == DKIM_RSA_SHA256) {
        if (bits == 0)
            bits = DKIM_RSA_DEFAULT_BITS;
        if (bits < DKIM_RSA_MIN_BITS) {
            *err = xasprintf("RSA key of %d bits; DKIM needs %d or more", bits, DKIM_RSA_MIN_BITS);
            return NULL;
        }
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    } else {
        *err = xasprintf("unknown DKIM algorithm %d", (int)alg);
        return NULL;
    }
    if (pkey == NULL) {
        *err = ossl_error("key generation failed");
        return NULL;
    }
    return key_new(pkey, err);
}

void dkim_key_free(struct dkim_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

enum dkim_alg dkim_key_alg(const struct dkim_key *k)
{
    return k->alg;
}

int dkim_key_bits(const struct dkim_key *k)
{
    return k->bits;
}

char *dkim_key_pem(const struct dkim_key *k)
{
    BIO *bio = BIO_new(BIO_s_secmem()); /* wiped when freed */
    char *data, *pem;
    long n;

    if (bio == NULL || PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1)
        log_panic("dkim: cannot write a %s key as PEM", dkim_alg_name(k->alg));
    n = BIO_get_mem_data(bio, &data);
    pem = xstrndup(data, n > 0 ? (size_t)n : 0);
    BIO_free(bio);
    return pem;
}

/* The key as p= publishes it: SubjectPublicKeyInfo DER (RSA) or the
 * raw 32 bytes (Ed25519, RFC 8463 section 4.2); malloc'd. */
static unsigned char *key_public(const struct dkim_key *k, size_t *len)
{
    unsigned char *p, *der = NULL;
    int n;

    if (k->alg == DKIM_ED25519_SHA256) {
        p = xmalloc(32);
        *len = 32;
        if (EVP_PKEY_get_raw_public_key(k->pkey, p, len) != 1 || *len != 32)
            log_panic("dkim: cannot read an Ed25519 public key");
        return p;
    }
    n = i2d_PUBKEY(k->pkey, &der);
    if (n <= 0)
        log_panic("dkim: cannot encode an RSA public key");
    p = xmalloc((size_t)n);
    memcpy(p, der, (size_t)n);
    OPENSSL_free(der);
    *len = (size_t)n;
    return p;
}

char *dkim_key_txt(const struct dkim_key *k)
{
    size_t n;
    unsigned char *pub = key_public(k, &n);
    char *b64 = b64_encode(pub, n), *txt;

    txt = xasprintf("v=DKIM1; k=%s; p=%s", key_type(k->alg), b64);
    free(b64);
    free(pub);
    return txt;
}

/* ---- key records (RFC 6376 section 3.6.1) ---- */

struct tag {
    const char *name, *val;
    size_t nlen, vlen; /* the value without white space around it */
};

/* RFC 6376 section 3.2: VALCHAR */
static int is_valchar(int c)
{
    return c >= 0x21 && c <= 0x7e && c != ';';
}

/* Parse a tag=value list (RFC 6376 section 3.2) into t[]; NULL or why not. */
static char *tags_parse(const char *s, struct tag *t, size_t max, size_t *n)
{
    const char *p = s;

    *n = 0;
    for (;;) {
        struct tag g;
        while (is_space(*p))
            p++;
        if (*p == '\0')
            return NULL;
        g.name = p;
        if (!is_alpha(*p))
            return xasprintf("the record is not a tag=value list (byte %zu)", (size_t)(p - s));
        while (is_alpha(*p) || is_digit(*p) || *p == '_')
            p++;
        g.nlen = (size_t)(p - g.name);
        while (is_space(*p))
            p++;
        if (*p != '=')
            return xasprintf("tag %.*s has no '='", (int)min_size(g.nlen, 32), g.name);
        for (p++; is_space(*p); p++)
            ;
        for (g.val = p; *p && *p != ';'; p++)
            if (!is_valchar((unsigned char)*p) && !is_space(*p))
                return xasprintf("the value of %.*s= holds a byte that no tag value may hold",
                                 (int)min_size(g.nlen, 32), g.name);
        for (g.vlen = (size_t)(p - g.val); g.vlen > 0 && is_space(g.val[g.vlen - 1]); g.vlen--)
            ;
        for (size_t i = 0; i < *n; i++)
            if (t[i].nlen == g.nlen && memcmp(t[i].name, g.name, g.nlen) == 0)
                return xasprintf("tag %.*s= appears twice", (int)min_size(g.nlen, 32), g.name);
        if (*n == max)
            return xasprintf("the record has more than %zu tags", max);
        t[(*n)++] = g;
        if (*p == ';')
            p++;
    }
}

static const struct tag *tag_find(const struct tag *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].nlen == strlen(name) && memcmp(t[i].name, name, t[i].nlen) == 0)
            return &t[i];
    return NULL;
}

static int tag_is(const struct tag *t, const char *s)
{
    return t->vlen == strlen(s) && memcmp(t->val, s, t->vlen) == 0;
}

/* 1 when t's value, a colon-separated list, holds item (or "*" when star). */
static int tag_lists(const struct tag *t, const char *item, int star)
{
    size_t i = 0;

    while (i < t->vlen) {
        size_t a = i, z;
        while (i < t->vlen && t->val[i] != ':')
            i++;
        for (z = i; a < z && is_space(t->val[a]); a++)
            ;
        while (z > a && is_space(t->val[z - 1]))
            z--;
        if ((z - a == strlen(item) && memcmp(t->val + a, item, z - a) == 0) ||
            (star && z - a == 1 && t->val[a] == '*'))
            return 1;
        i++;
    }
    return 0;
}

/* NULL when the public key pub[0..n) (p= decoded) is k's, else what differs. */
static char *pub_differs(const struct dkim_key *k, const unsigned char *pub, size_t n)
{
    const unsigned char *q = pub;
    EVP_PKEY *pk;
    char *why = NULL;

    if (k->alg == DKIM_ED25519_SHA256) {
        size_t mlen;
        unsigned char *mine = key_public(k, &mlen);
        if (n != mlen)
            why = xasprintf("p= holds %zu bytes, not a 32-byte ed25519 key", n);
        else if (memcmp(pub, mine, n) != 0)
            why = xstrdup("p= is a different ed25519 key");
        free(mine);
        return why;
    }
    pk = n <= 0x7fffffff ? d2i_PUBKEY(NULL, &q, (long)n) : NULL;
    if (pk == NULL || q != pub + n)
        why = xstrdup("p= is not an rsa public key (SubjectPublicKeyInfo)");
    else if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA)
        why = xstrdup("p= holds a public key that is not rsa");
    else if (EVP_PKEY_eq(pk, k->pkey) != 1)
        why = xstrdup("p= is a different rsa key");
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return why;
}

/* NULL when txt publishes k, else what differs. */
static char *txt_differs(const char *txt, const struct dkim_key *k)
{
    struct tag t[TAGS_MAX];
    const struct tag *v, *kt, *h, *s, *p;
    unsigned char *pub;
    size_t n, publen;
    char *why;

    if (txt == NULL)
        return xstrdup("no record");
    if ((why = tags_parse(txt, t, nitems(t), &n)) != NULL)
        return why;
    v = tag_find(t, n, "v");
    kt = tag_find(t, n, "k");
    h = tag_find(t, n, "h");
    s = tag_find(t, n, "s");
    p = tag_find(t, n, "p");
    if (v && v != &t[0])
        return xstrdup("v= is not the first tag");
    if (v && !tag_is(v, "DKIM1"))
        return xasprintf("v=%.*s, not DKIM1", (int)min_size(v->vlen, 32), v->val);
    if (kt && !tag_is(kt, key_type(k->alg)))
        return xasprintf("k=%.*s but the key is %s", (int)min_size(kt->vlen, 32), kt->val,
                         dkim_alg_name(k->alg));
    if (!kt && k->alg != DKIM_RSA_SHA256)
        return xasprintf("no k= (so k=rsa) but the key is %s", dkim_alg_name(k->alg));
    if (h && !tag_lists(h, "sha256", 0))
        return xstrdup("h= does not allow sha256");
    if (s && !tag_lists(s, "email", 1))
        return xstrdup("s= does not include email");
    if (p == NULL)
        return xstrdup("the record has no p=");
    if (p->vlen == 0)
        return xstrdup("the record is revoked (empty p=)");
    if (b64_decode(p->val, p->vlen, &pub, &publen) < 0)
        return xstrdup("p= is not valid base64");
    why = pub_differs(k, pub, publen);
    free(pub);
    return why;
}

int dkim_txt_matches(const char *txt, const struct dkim_key *k, char **why)
{
    char *r = txt_differs(txt, k);

    if (why)
        *why = r;
    else
        free(r);
    return r == NULL;
}

/* ---- body canonicalization (RFC 6376 sections 3.4.3, 3.4.4) ---- */

struct bcanon {
    enum dkim_canon kind;
    EVP_MD_CTX *md;
    struct buf *copy; /* dkim_canon_body: the canonical text too */
    uint64_t empty;   /* empty lines held back: hashed only if text follows */
    uint64_t hashed;  /* bytes given to the hash */
    int cr;           /* the last byte was a CR that may start a CR LF */
    int text;         /* the line has text (relaxed: other than WSP) */
    int wsp;          /* relaxed: WSP seen since the last text, not yet written */
    size_t staged;
    unsigned char stage[STAGE_SIZE];
};

static void bc_init(struct bcanon *b, enum dkim_canon kind, struct buf *copy)
{
    memset(b, 0, sizeof(*b));
    b->kind = kind;
    b->copy = copy;
    b->md = EVP_MD_CTX_new();
    if (b->md == NULL || EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1)
        log_panic("dkim: SHA-256 is not available");
}

static void bc_flush(struct bcanon *b)
{
    if (b->staged == 0)
        return;
    if (EVP_DigestUpdate(b->md, b->stage, b->staged) != 1)
        log_panic("dkim: SHA-256 update failed");
    if (b->copy)
        buf_add(b->copy, b->stage, b->staged);
    b->hashed += b->staged;
    b->staged = 0;
}

static void bc_put(struct bcanon *b, unsigned char c)
{
    if (b->staged == sizeof(b->stage))
        bc_flush(b);
    b->stage[b->staged++] = c;
}

static void bc_crlf(struct bcanon *b)
{
    bc_put(b, '\r');
    bc_put(b, '\n');
}

/* A byte of a line (anything but the CR LF that ends it). */
static void bc_text(struct bcanon *b, unsigned char c)
{
    if (b->kind == DKIM_CANON_RELAXED && is_wsp(c)) {
        b->wsp = 1;
        return;
    }
    if (!b->text) {
        for (; b->empty > 0; b->empty--)
            bc_crlf(b);
        b->text = 1;
    }
    if (b->wsp)
        bc_put(b, ' ');
    b->wsp = 0;
    bc_put(b, c);
}

static void bc_eol(struct bcanon *b)
{
    if (b->text)
        bc_crlf(b);
    else
        b->empty++;
    b->text = b->wsp = 0;
}

static void bc_byte(struct bcanon *b, unsigned char c)
{
    if (b->cr) {
        b->cr = 0;
        if (c == '\n') {
            bc_eol(b);
            return;
        }
        bc_text(b, '\r');
    }
    if (c == '\r')
        b->cr = 1;
    else
        bc_text(b, c);
}

/*
 * The end of the body: a last line without CR LF gets one; trailing
 * empty lines stay unhashed; an empty body is CR LF (simple) or nothing
 * (relaxed).
 */
static void bc_end(struct bcanon *b, unsigned char hash[32])
{
    unsigned len = 0;

    if (b->cr) {
        b->cr = 0;
        bc_text(b, '\r');
    }
    if (b->text)
        bc_crlf(b);
    b->text = 0;
    if (b->kind == DKIM_CANON_SIMPLE && b->hashed + b->staged == 0)
        bc_crlf(b);
    bc_flush(b);
    if (EVP_DigestFinal_ex(b->md, hash, &len) != 1 || len != 32)
        log_panic("dkim: SHA-256 final failed");
    EVP_MD_CTX_free(b->md);
    b->md = NULL;
}

void dkim_canon_body(enum dkim_canon c, const char *body, size_t len, struct buf *out)
{
    struct bcanon *b = xmalloc(sizeof(*b));
    unsigned char hash[32];

    bc_init(b, c, out);
    for (size_t i = 0; i < len; i++)
        bc_byte(b, (unsigned char)body[i]);
    bc_end(b, hash);
    free(b);
}

/* ---- header canonicalization (RFC 6376 sections 3.4.1, 3.4.2) ---- */

/*
 * relaxed: the name s[0..nlen) lower-cased, ':', the value (after the
 * colon at s[colon]) unfolded, WSP runs as one SP, none at either end,
 * CR LF.
 */
static void canon_relaxed(const char *s, size_t len, size_t nlen, size_t colon, struct buf *out)
{
    int sp = 0, any = 0;

    for (size_t i = 0; i < nlen; i++)
        buf_addc(out, (char)lower((unsigned char)s[i]));
    buf_addc(out, ':');
    if (len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n')
        len -= 2;
    for (size_t i = colon + 1; i < len; i++) {
        if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
            i++;
            continue;
        }
        if (is_wsp(s[i])) {
            sp = 1;
            continue;
        }
        if (sp && any)
            buf_addc(out, ' ');
        sp = 0;
        any = 1;
        buf_addc(out, s[i]);
    }
    buf_add(out, "\r\n", 2);
}

void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct buf *out)
{
    const char *colon = memchr(field, ':', len);
    size_t nlen;

    if (c == DKIM_CANON_SIMPLE || colon == NULL) {
        buf_add(out, field, len);
        return;
    }
    for (nlen = (size_t)(colon - field); nlen > 0 && is_wsp(field[nlen - 1]); nlen--)
        ;
    canon_relaxed(field, len, nlen, (size_t)(colon - field), out);
}

/* ---- the message ---- */

struct field {
    size_t off, len; /* in the header section, CR LF included */
    size_t colon;    /* where ':' is in the field */
    size_t nlen;     /* the name's length (WSP before ':' not counted); 0: no usable name */
};

enum head_state {
    H_BOL,    /* at the start of a line */
    H_BOL_CR, /* a CR at the start of a line: the empty line, or a bare CR */
    H_CR,     /* after a CR in a line */
    H_TEXT,   /* inside a line */
};

struct dkim_msg {
    struct buf head; /* the header section, without the empty line */
    enum head_state hs;
    int in_body, too_big, finished;
    char *error; /* why finish failed */
    struct field *f;
    size_t nf;
    char *from_domain;
    unsigned char bh[2][32]; /* body hashes, by enum dkim_canon */
    struct bcanon bc[2];
};

struct dkim_msg *dkim_msg_new(void)
{
    struct dkim_msg *m = xcalloc(1, sizeof(*m));

    buf_init(&m->head);
    m->hs = H_BOL;
    bc_init(&m->bc[DKIM_CANON_RELAXED], DKIM_CANON_RELAXED, NULL);
    bc_init(&m->bc[DKIM_CANON_SIMPLE], DKIM_CANON_SIMPLE, NULL);
    return m;
}

static void head_add(struct dkim_msg *m, char c)
{
    if (m->head.len >= DKIM_HEADER_MAX)
        m->too_big = 1;
    else
        buf_addc(&m->head, c);
}

/* Header bytes of p[0..n); returns how many were used (the body starts after them). */
static size_t head_feed(struct dkim_msg *m, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n && !m->too_big; i++) {
        unsigned char c = p[i];
        if (m->hs == H_BOL_CR) {
            if (c == '\n') {
                m->in_body = 1;
                return i + 1;
            }
            head_add(m, '\r'); /* a bare CR: text */
            m->hs = H_CR;
        }
        if (m->hs == H_BOL && c == '\r') {
            m->hs = H_BOL_CR;
            continue;
        }
        head_add(m, (char)c);
        if (c == '\n' && m->hs == H_CR)
            m->hs = H_BOL;
        else
            m->hs = c == '\r' ? H_CR : H_TEXT;
    }
    return n;
}

void dkim_msg_feed(struct dkim_msg *m, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;

    if (m->finished)
        log_panic("dkim_msg_feed after dkim_msg_finish");
    if (!m->in_body)
        i = head_feed(m, s, n);
    if (m->too_big)
        return;
    for (; i < n; i++) {
        bc_byte(&m->bc[0], s[i]);
        bc_byte(&m->bc[1], s[i]);
    }
}

static size_t line_end(const char *s, size_t len, size_t i)
{
    for (; i + 1 < len; i++)
        if (s[i] == '\r' && s[i + 1] == '\n')
            return i + 2;
    return len;
}

/* f's colon and name: printable ASCII up to ':', WSP before it allowed. */
static void field_name(struct field *f, const char *head)
{
    const char *s = head + f->off, *colon = memchr(s, ':', f->len);
    size_t n;

    f->nlen = 0;
    if (colon == NULL)
        return;
    f->colon = (size_t)(colon - s);
    for (n = f->colon; n > 0 && is_wsp(s[n - 1]); n--)
        ;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126)
            return;
    f->nlen = n;
}

/* Split the header section into fields: a line starting with WSP continues one. */
static void head_index(struct dkim_msg *m)
{
    const char *h = m->head.data;
    size_t len = m->head.len, cap = 0;

    for (size_t i = 0, end; i < len; i = end) {
        end = line_end(h, len, i);
        if (m->nf > 0 && is_wsp(h[i])) {
            m->f[m->nf - 1].len = end - m->f[m->nf - 1].off;
            continue;
        }
        if (m->nf == cap) {
            cap = cap ? cap * 2 : 32;
            m->f = xrealloc(m->f, cap * sizeof(*m->f));
        }
        m->f[m->nf].off = i;
        m->f[m->nf++].len = end - i;
    }
    for (size_t i = 0; i < m->nf; i++)
        field_name(&m->f[i], h);
}

static int field_is(const struct dkim_msg *m, const struct field *f, const char *name, size_t n)
{
    return f->nlen == n && ascii_ncasecmp(m->head.data + f->off, name, n) == 0;
}

static char *addr_domain(const char *s, size_t len);

/* The domain of the only From: field's only mailbox, malloc'd, or NULL. */
static char *from_domain(const struct dkim_msg *m)
{
    const struct field *from = NULL;
    struct buf v;
    const char *s;
    char *dom;
    size_t end;

    for (size_t i = 0; i < m->nf; i++) {
        if (!field_is(m, &m->f[i], "from", 4))
            continue;
        if (from)
            return NULL;
        from = &m->f[i];
    }
    if (from == NULL)
        return NULL;
    s = m->head.data + from->off;
    end = from->len - 2; /* every field ends with CR LF */
    buf_init(&v);
    for (size_t i = from->colon + 1; i < end; i++) {
        if (s[i] == '\r' && i + 1 < end && s[i + 1] == '\n')
            i++; /* unfold */
        else
            buf_addc(&v, s[i]);
    }
    dom = addr_domain(v.data, v.len);
    buf_free(&v);
    return dom;
}

int dkim_msg_finish(struct dkim_msg *m, char **err)
{
    *err = NULL;
    if (m->finished) {
        *err = m->error ? xstrdup(m->error) : NULL;
        return m->error ? -1 : 0;
    }
    m->finished = 1;
    if (!m->in_body && m->hs == H_BOL_CR) {
        head_add(m, '\r');
        m->hs = H_CR;
    }
    if (!m->in_body && m->hs != H_BOL && !m->too_big)
        buf_add(&m->head, "\r\n", 2); /* what the DATA encoder sends */
    bc_end(&m->bc[0], m->bh[0]);
    bc_end(&m->bc[1], m->bh[1]);
    if (m->too_big)
        m->error = xasprintf("the header section is larger than %u bytes", DKIM_HEADER_MAX);
    else if (m->head.len == 0)
        m->error = xstrdup("the message has no header section");
    if (m->error) {
        *err = xstrdup(m->error);
        return -1;
    }
    head_index(m);
    m->from_domain = from_domain(m);
    return 0;
}

const char *dkim_msg_from_domain(const struct dkim_msg *m)
{
    return m->from_domain;
}

void dkim_msg_free(struct dkim_msg *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < nitems(m->bc); i++)
        EVP_MD_CTX_free(m->bc[i].md);
    buf_free(&m->head);
    free(m->f);
    free(m->from_domain);
    free(m->error);
    free(m);
}

/* ---- the From: address (RFC 5322 section 3.4, with the obsolete forms) ---- */

enum tok { T_END, T_ATOM, T_QUOTED, T_LITERAL, T_SPECIAL, T_BAD };

struct lex {
    const unsigned char *p, *end;
    enum tok t;             /* the current token */
    const unsigned char *s; /* T_ATOM: its text */
    size_t n;
    int c; /* T_SPECIAL: which */
};

struct addrs {
    struct lex l;
    int mailboxes;
    char domain[DNS_NAME_MAX + 1]; /* the last mailbox's */
};

/* RFC 5322 atext (ASCII) */
static int is_atext(int c)
{
    return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* A byte allowed in a comment or a quoted string (UTF-8 is not checked there). */
static int is_ctext(int c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* At '(': skip the comment, nested ones and quoted pairs in it. */
static int skip_comment(struct lex *l)
{
    size_t depth = 0;

    while (l->p < l->end) {
        int c = *l->p++;
        if (c == '\\') {
            if (l->p == l->end || !is_ctext(*l->p))
                return -1;
            l->p++;
        } else if (c == '(') {
            depth++;
        } else if (c == ')') {
            if (--depth == 0)
                return 0;
        } else if (!is_ctext(c)) {
            return -1;
        }
    }
    return -1;
}

/* At '"' or '[': skip to the closing one, quoted pairs included. */
static int skip_delimited(struct lex *l, int close)
{
    for (l->p++; l->p < l->end;) {
        int c = *l->p++;
        if (c == close)
            return 0;
        if (c == '\\') {
            if (l->p == l->end || !is_ctext(*l->p))
                return -1;
            l->p++;
        } else if (!is_ctext(c) || (close == ']' && c == '[')) {
            return -1;
        }
    }
    return -1;
}

static size_t atom_len(const unsigned char *p, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        if (is_atext(p[i]))
            k = 1;
        else if (p[i] >= 0x80)
            k = smtp_utf8_seq(p + i, n - i); /* RFC 6532 */
        else
            k = 0;
        if (k == 0)
            break;
        i += k;
    }
    return i;
}

/* The next token, comments and white space skipped. */
static void lex_next(struct lex *l)
{
    int c;

    for (;;) {
        while (l->p < l->end && is_wsp(*l->p))
            l->p++;
        if (l->p == l->end || *l->p != '(')
            break;
        if (skip_comment(l) < 0) {
            l->t = T_BAD;
            return;
        }
    }
    if (l->p == l->end) {
        l->t = T_END;
        return;
    }
    c = *l->p;
    l->s = l->p;
    if (c == '"' || c == '[') {
        if (skip_delimited(l, c == '"' ? '"' : ']') < 0)
            l->t = T_BAD;
        else
            l->t = c == '"' ? T_QUOTED : T_LITERAL;
        return;
    }
    if (c != 0 && strchr("<>@,;:.", c) != NULL) {
        l->t = T_SPECIAL;
        l->c = c;
        l->p++;
        return;
    }
    l->n = atom_len(l->p, (size_t)(l->end - l->p));
    l->t = l->n ? T_ATOM : T_BAD;
    l->p += l->n;
}

static int at(const struct addrs *a, int c)
{
    return a->l.t == T_SPECIAL && a->l.c == c;
}

static int expect(struct addrs *a, int c)
{
    if (!at(a, c))
        return -1;
    lex_next(&a->l);
    return 0;
}

/*
 * Words (atoms, quoted strings) and dots: a display name or a local part.
 * *local: they are word *("." word). Returns how many words.
 */
static int parse_words(struct addrs *a, int *local)
{
    int words = 0, prev_word = 0, ok = 1;

    for (;; lex_next(&a->l)) {
        if (a->l.t == T_ATOM || a->l.t == T_QUOTED) {
            ok = ok && !prev_word;
            prev_word = 1;
            words++;
        } else if (at(a, '.')) {
            ok = ok && prev_word;
            prev_word = 0;
        } else {
            break;
        }
    }
    *local = ok && prev_word;
    return words;
}

/* dot-atom (obs-domain: comments between the atoms); a literal is refused. */
static int parse_domain(struct addrs *a)
{
    size_t n = 0;

    for (;;) {
        if (a->l.t != T_ATOM || n + (n > 0) + a->l.n > DNS_NAME_MAX)
            return -1;
        if (n > 0)
            a->domain[n++] = '.';
        memcpy(a->domain + n, a->l.s, a->l.n);
        n += a->l.n;
        lex_next(&a->l);
        if (!at(a, '.'))
            break;
        lex_next(&a->l);
    }
    a->domain[n] = '\0';
    return 0;
}

/* After '<': [obs-route] addr-spec '>'. */
static int parse_angle(struct addrs *a)
{
    int local;

    if (at(a, '@')) {
        while (at(a, '@')) {
            lex_next(&a->l);
            if (parse_domain(a) < 0)
                return -1;
            while (at(a, ','))
                lex_next(&a->l);
        }
        if (expect(a, ':') < 0)
            return -1;
    }
    parse_words(a, &local);
    if (!local || expect(a, '@') < 0 || parse_domain(a) < 0 || expect(a, '>') < 0)
        return -1;
    a->mailboxes++;
    return 0;
}

static int parse_address(struct addrs *a, int in_group);

/* After "display-name:": mailboxes up to ';'. */
static int parse_group(struct addrs *a)
{
    for (;;) {
        while (at(a, ','))
            lex_next(&a->l);
        if (at(a, ';')) {
            lex_next(&a->l);
            return 0;
        }
        if (parse_address(a, 1) < 0 || (!at(a, ',') && !at(a, ';')))
            return -1;
    }
}

/* A mailbox, or (not in a group) a group. */
static int parse_address(struct addrs *a, int in_group)
{
    int local, words = parse_words(a, &local);

    if (at(a, '<')) {
        lex_next(&a->l);
        return parse_angle(a);
    }
    if (at(a, '@')) {
        lex_next(&a->l);
        if (!local || parse_domain(a) < 0)
            return -1;
        a->mailboxes++;
        return 0;
    }
    if (at(a, ':') && !in_group && words > 0) {
        lex_next(&a->l);
        return parse_group(a);
    }
    return -1;
}

/* The domain of the one mailbox in the list s[0..len), lower-cased, malloc'd; or NULL. */
static char *addr_domain(const char *s, size_t len)
{
    struct addrs a;

    memset(&a, 0, sizeof(a));
    a.l.p = (const unsigned char *)s;
    a.l.end = a.l.p + len;
    lex_next(&a.l);
    for (;;) {
        while (at(&a, ','))
            lex_next(&a.l);
        if (a.l.t == T_END)
            break;
        if (parse_address(&a, 0) < 0 || (!at(&a, ',') && a.l.t != T_END))
            return NULL;
    }
    if (a.mailboxes != 1)
        return NULL;
    ascii_lower(a.domain);
    return xstrdup(a.domain);
}

/* ---- signing ---- */

/* Labels (1-63 bytes: letters, digits, '-', and '_' if underscore) between dots. */
static int dns_name_ok(const char *s, int underscore)
{
    size_t label = 0, len = strlen(s);

    if (len == 0 || len > DNS_NAME_MAX)
        return 0;
    for (; *s; s++) {
        if (*s == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (is_alpha(*s) || is_digit(*s) || *s == '-' || (underscore && *s == '_')) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0;
}

/* NULL when m may be signed with k and o, else why not. */
static char *sign_refused(const struct dkim_msg *m, const struct dkim_key *k,
                          const struct dkim_sign_opts *o)
{
    if (!m->finished)
        return xstrdup("the message is not finished");
    if (m->error)
        return xasprintf("the message cannot be signed: %s", m->error);
    if (k == NULL || o == NULL)
        return xstrdup("no key or no options");
    if (o->domain == NULL || !dns_name_ok(o->domain, 0))
        return xasprintf("d=%.64s is not a domain name (labels of letters, digits and "
                         "hyphens between dots)",
                         o->domain ? o->domain : "(none)");
    if (o->selector == NULL || !dns_name_ok(o->selector, 1))
        return xasprintf("s=%.64s is not a selector (labels of letters, digits, hyphens and "
                         "underscores between dots)",
                         o->selector ? o->selector : "(none)");
    if (strlen(o->selector) + strlen("._domainkey.") + strlen(o->domain) > DNS_NAME_MAX)
        return xasprintf("%s._domainkey.%s is longer than %d bytes", o->selector, o->domain,
                         DNS_NAME_MAX);
    if ((o->hcanon != DKIM_CANON_RELAXED && o->hcanon != DKIM_CANON_SIMPLE) ||
        (o->bcanon != DKIM_CANON_RELAXED && o->bcanon != DKIM_CANON_SIMPLE))
        return xstrdup("unknown canonicalization");
    if (o->timestamp < 0 || o->expire < 0)
        return xstrdup("t= and x= are seconds since 1970, not negative");
    if (o->expire && o->timestamp && o->expire <= o->timestamp)
        return xstrdup("x= (expiry) must be later than t= (signing time)");
    return NULL;
}

/* RFC 5322 ftext, less ';' (which would end the h= tag). */
static int name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 || s[i] == ':' || s[i] == ';')
            return 0;
    return n > 0;
}

/*
 * The names of list (colon-separated, blanks around them ignored),
 * lower-cased, each once, "from" first when the list lacks it (RFC 6376
 * section 5.4: From must be signed), into names as ":a:b:c:". NULL or
 * why not.
 */
static char *names_parse(const char *list, struct buf *names)
{
    struct buf one;
    char *err = NULL;

    buf_init(&one);
    buf_adds(names, ":from:");
    for (const char *p = list; *p && err == NULL; p += *p == ':') {
        size_t n = strcspn(p, ":"), a = 0, z = n;
        while (a < z && is_wsp(p[a]))
            a++;
        while (z > a && is_wsp(p[z - 1]))
            z--;
        buf_reset(&one);
        buf_addc(&one, ':');
        buf_add(&one, p + a, z - a);
        buf_addc(&one, ':');
        ascii_lower(one.data);
        if (z > a && !name_ok(p + a, z - a))
            err = xasprintf("headers: \"%.*s\" is not a header field name",
                            (int)min_size(z - a, 64), p + a);
        else if (z > a && strstr(names->data, one.data) == NULL)
            buf_add(names, one.data + 1, one.len - 1);
        p += n;
    }
    buf_free(&one);
    return err;
}

/*
 * The fields to sign, in h= order: for each name the fields of that name
 * bottom-up (RFC 6376 section 5.4.2), From once more than it occurs. Their
 * names into hlist ("a:b:b:c"), their canonical form into hin.
 */
static void select_fields(const struct dkim_msg *m, const char *names, enum dkim_canon c,
                          struct buf *hlist, struct buf *hin)
{
    for (const char *p = names + 1; *p; p += strcspn(p, ":") + 1) {
        size_t n = strcspn(p, ":");
        for (size_t i = m->nf; i-- > 0;) {
            const struct field *f = &m->f[i];
            if (!field_is(m, f, p, n))
                continue;
            if (hlist->len)
                buf_addc(hlist, ':');
            buf_add(hlist, p, n);
            if (c == DKIM_CANON_SIMPLE)
                buf_add(hin, m->head.data + f->off, f->len);
            else
                canon_relaxed(m->head.data + f->off, f->len, f->nlen, f->colon, hin);
        }
        if (n == 4 && memcmp(p, "from", 4) == 0)
            buf_adds(hlist, hlist->len ? ":from" : "from");
    }
}

/* The DKIM-Signature field as it is built, folded at FOLD_COLS. */
struct fold {
    struct buf *b;
    size_t col; /* characters on the line so far */
};

static void fold_break(struct fold *f)
{
    buf_add(f->b, "\r\n\t", 3);
    f->col = 1;
}

/* s[0..n) on one line: after a space (sp) if it fits there, else on a new line. */
static void fold_add(struct fold *f, const char *s, size_t n, int sp)
{
    if (f->col + (sp ? 1 : 0) + n > FOLD_COLS && f->col > 1) {
        fold_break(f);
    } else if (sp) {
        buf_addc(f->b, ' ');
        f->col++;
    }
    buf_add(f->b, s, n);
    f->col += n;
}

static void fold_tag(struct fold *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fold_tag(struct fold *f, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = xvasprintf(fmt, ap);
    va_end(ap);
    fold_add(f, s, strlen(s), 1);
    free(s);
}

/* h=: the names, a line break allowed after each colon. */
static void fold_names(struct fold *f, const char *hlist)
{
    struct buf piece;

    buf_init(&piece);
    for (const char *p = hlist; *p;) {
        size_t n = strcspn(p, ":");
        buf_reset(&piece);
        if (p == hlist)
            buf_adds(&piece, "h=");
        buf_add(&piece, p, n);
        buf_addc(&piece, p[n] == ':' ? ':' : ';');
        fold_add(f, piece.data, piece.len, p == hlist);
        p += n + (p[n] == ':');
    }
    buf_free(&piece);
}

/* Base64 text that may break anywhere (b=). */
static void fold_text(struct fold *f, const char *s, size_t n)
{
    while (n > 0) {
        size_t k;
        if (f->col >= FOLD_COLS)
            fold_break(f);
        k = min_size(n, FOLD_COLS - f->col);
        buf_add(f->b, s, k);
        f->col += k;
        s += k;
        n -= k;
    }
}

static const char *canon_name(enum dkim_canon c)
{
    return c == DKIM_CANON_SIMPLE ? "simple" : "relaxed";
}

/* The field up to and including "b=": all that the signature covers of it. */
static void sig_prefix(struct fold *f, const struct dkim_msg *m, const struct dkim_key *k,
                       const struct dkim_sign_opts *o, const char *hlist)
{
    char *bh = b64_encode(m->bh[o->bcanon], 32);

    buf_adds(f->b, "DKIM-Signature:");
    f->col = strlen("DKIM-Signature:");
    fold_tag(f, "v=1;");
    fold_tag(f, "a=%s;", dkim_alg_name(k->alg));
    fold_tag(f, "c=%s/%s;", canon_name(o->hcanon), canon_name(o->bcanon));
    fold_tag(f, "d=%s;", o->domain);
    fold_tag(f, "s=%s;", o->selector);
    if (o->timestamp)
        fold_tag(f, "t=%lld;", (long long)o->timestamp);
    if (o->expire)
        fold_tag(f, "x=%lld;", (long long)o->expire);
    fold_names(f, hlist);
    fold_tag(f, "bh=%s;", bh);
    if (f->col + 1 + 2 + B_MIN > FOLD_COLS) {
        fold_break(f);
    } else {
        buf_addc(f->b, ' ');
        f->col++;
    }
    buf_adds(f->b, "b=");
    f->col += 2;
    free(bh);
}

/*
 * Sign hin (RFC 6376 section 3.7's header hash input): rsa-sha256 is
 * RSASSA-PKCS1-v1_5 with SHA-256 over it; ed25519-sha256 is PureEdDSA
 * over its SHA-256 digest (RFC 8463 section 3). NULL or why it failed.
 */
static char *sign_input(const struct dkim_key *k, const struct buf *hin, unsigned char **sig,
                        size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char digest[32];
    const unsigned char *in = (const unsigned char *)hin->data;
    size_t inlen = hin->len;
    const EVP_MD *md = EVP_sha256();
    char *err = NULL;

    *siglen = (size_t)EVP_PKEY_get_size(k->pkey);
    *sig = xmalloc(*siglen);
    if (k->alg == DKIM_ED25519_SHA256) {
        if (EVP_Digest(in, inlen, digest, NULL, md, NULL) != 1)
            log_panic("dkim: SHA-256 failed");
        in = digest;
        inlen = sizeof(digest);
        md = NULL;
    }
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, md, NULL, k->pkey) != 1 ||
        EVP_DigestSign(ctx, *sig, siglen, in, inlen) != 1)
        err = ossl_error("signing failed");
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

int dkim_msg_sign(struct dkim_msg *m, const struct dkim_key *k, const struct dkim_sign_opts *o,
                  struct buf *out, char **err)
{
    struct buf names, hlist, hin, field;
    struct fold f = {&field, 0};
    unsigned char *sig = NULL;
    size_t siglen = 0;
    char *b64;

    if ((*err = sign_refused(m, k, o)) != NULL)
        return -1;
    buf_init(&names);
    buf_init(&hlist);
    buf_init(&hin);
    buf_init(&field);
    *err = names_parse(o->headers ? o->headers : DKIM_DEFAULT_HEADERS, &names);
    if (*err == NULL) {
        select_fields(m, names.data, o->hcanon, &hlist, &hin);
        sig_prefix(&f, m, k, o, hlist.data);
        /* RFC 6376 section 3.7: the field itself, b= empty, without CR LF */
        dkim_canon_header(o->hcanon, field.data, field.len, &hin);
        if (o->hcanon == DKIM_CANON_RELAXED)
            hin.data[hin.len -= 2] = '\0';
        *err = sign_input(k, &hin, &sig, &siglen);
    }
    if (*err == NULL) {
        b64 = b64_encode(sig, siglen);
        fold_text(&f, b64, strlen(b64));
        buf_add(&field, "\r\n", 2);
        buf_add(out, field.data, field.len);
        free(b64);
    }
    free(sig);
    buf_free(&names);
    buf_free(&hlist);
    buf_free(&hin);
    buf_free(&field);
    return *err ? -1 : 0;
}
