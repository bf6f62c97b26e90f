/*
 * dkim - DKIM signatures (RFC 6376), rsa-sha256 and ed25519-sha256
 * (RFC 8463), made with OpenSSL's EVP interface. Pure computation: no
 * files, no DNS, no process state; the signer process (signer/) and
 * smtpctl are its users.
 *
 * Keys: dkim_key_load_pem() takes a PEM private key (PKCS#8 or
 * traditional RSA) and refuses RSA keys under DKIM_RSA_MIN_BITS and any
 * other type. dkim_key_generate() makes a new one (RSA of `bits`, or
 * Ed25519); dkim_key_pem() writes a key as PKCS#8 PEM. dkim_key_txt()
 * is the DNS TXT record to publish for a key ("v=DKIM1; k=rsa; p=...";
 * for Ed25519, p= is the raw 32-byte public key, RFC 8463 section 4.2),
 * and dkim_txt_matches() says whether a TXT record that was found
 * publishes this key (it parses the tag list: v=, if present, must come
 * first and be DKIM1; k= must name the key's type; p= empty means
 * revoked).
 *
 * Signing: a message is fed as it is sent (CR LF line ends, dot-unstuffed,
 * any chunking) into a dkim_msg; it keeps the header section (at most
 * DKIM_HEADER_MAX bytes; a longer one makes finish fail) and hashes the
 * body as it streams, with both body canonicalizations. After
 * dkim_msg_finish(), dkim_msg_sign() may be called once per key and
 * appends one complete DKIM-Signature field (folded at 78 columns,
 * ended by CR LF) to out. Defaults: relaxed/relaxed, the header set of
 * DKIM_DEFAULT_HEADERS with From oversigned (listed once more than it
 * occurs), t= the given time, no l=, no x= unless expire is set.
 * Header fields signed are the ones present, bottom-up for repeated
 * names (RFC 6376 section 5.4.2), plus one extra name for each
 * oversigned field.
 */
#ifndef POSTERN_DKIM_H
#define POSTERN_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define DKIM_RSA_MIN_BITS 1024
#define DKIM_RSA_DEFAULT_BITS 2048
#define DKIM_HEADER_MAX (256u * 1024)
/* RFC 6376 section 5.4.1's recommendation, less what changes in transit. */
#define DKIM_DEFAULT_HEADERS                                                                       \
    "from:to:cc:subject:date:message-id:reply-to:in-reply-to:references:sender:mime-version:"      \
    "content-type:content-transfer-encoding:content-id:content-description:list-id:"               \
    "list-unsubscribe:list-unsubscribe-post"

enum dkim_alg { DKIM_RSA_SHA256 = 0, DKIM_ED25519_SHA256 = 1 };
enum dkim_canon { DKIM_CANON_RELAXED = 0, DKIM_CANON_SIMPLE = 1 };

struct dkim_key;

/* NULL and a malloc'd *err ("RSA key of 512 bits; DKIM needs 1024 or more"). */
struct dkim_key *dkim_key_load_pem(const char *pem, size_t len, char **err);
struct dkim_key *dkim_key_generate(enum dkim_alg alg, int bits, char **err);
void dkim_key_free(struct dkim_key *k);
enum dkim_alg dkim_key_alg(const struct dkim_key *k);
int dkim_key_bits(const struct dkim_key *k);  /* RSA modulus bits; 256 for Ed25519 */
char *dkim_key_pem(const struct dkim_key *k); /* malloc'd PKCS#8 PEM */
char *dkim_key_txt(const struct dkim_key *k); /* malloc'd "v=DKIM1; k=...; p=..." */
/* 1: txt publishes k; 0 and a malloc'd *why (what differs); never -1. */
int dkim_txt_matches(const char *txt, const struct dkim_key *k, char **why);

const char *dkim_alg_name(enum dkim_alg a); /* "rsa-sha256" "ed25519-sha256" */
/* "rsa-sha256" -> DKIM_RSA_SHA256 ...; -1 if unknown. */
int dkim_alg_parse(const char *s);

struct dkim_msg;

struct dkim_msg *dkim_msg_new(void);
void dkim_msg_feed(struct dkim_msg *m, const void *p, size_t n);
/* 0, or -1 and a malloc'd *err (header section too large, no header). */
int dkim_msg_finish(struct dkim_msg *m, char **err);
/*
 * The domain of the message's From: address, lower-cased, borrowed
 * (valid until dkim_msg_free), or NULL when there is no From: field,
 * more than one, or its address cannot be parsed (display names,
 * comments, quoted local parts and groups are understood). After finish.
 */
const char *dkim_msg_from_domain(const struct dkim_msg *m);
void dkim_msg_free(struct dkim_msg *m);

struct dkim_sign_opts {
    const char *domain;   /* d= */
    const char *selector; /* s= */
    const char *headers;  /* colon-separated names, or NULL: DKIM_DEFAULT_HEADERS */
    enum dkim_canon hcanon, bcanon;
    int64_t timestamp; /* t=, seconds; 0: none */
    int64_t expire;    /* x=, seconds; 0: none */
};

/*
 * Append one DKIM-Signature field for key k to out. 0, or -1 and a
 * malloc'd *err (a bad domain or selector, a signing failure).
 * The message must be finished.
 */
int dkim_msg_sign(struct dkim_msg *m, const struct dkim_key *k, const struct dkim_sign_opts *o,
                  struct buf *out, char **err);

/*
 * The canonical forms signing hashes (RFC 6376 section 3.4), appended to
 * out; for tests and a verifier. A header field is given with its CR LF
 * (a field without ':' comes back as it is); a body whole, as fed to a
 * dkim_msg (its bare CR and LF are text).
 */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct buf *out);
void dkim_canon_body(enum dkim_canon c, const char *body, size_t len, struct buf *out);

#endif
