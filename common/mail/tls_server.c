/*
 * tls_server - OpenSSL server context for STARTTLS (see tls_server.h).
 */
#include "mail/tls_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/util.h"

#define PEM_MAX (1024 * 1024)

static char *ssl_err(const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return xasprintf("%s %s: %s", what, file, e ? buf : "unknown error");
}

int tls_read_pair(const char *cert_file, const char *key_file, char **cert_pem, char **key_pem,
                  char **err)
{
    *cert_pem = read_text_file(cert_file, PEM_MAX, err);
    if (*cert_pem == NULL)
        return -1;
    *key_pem = read_text_file(key_file, PEM_MAX, err);
    if (*key_pem == NULL) {
        free(*cert_pem);
        *cert_pem = NULL;
        return -1;
    }
    return 0;
}

/* The certificate and the chain after it, from PEM text. */
static int use_chain(SSL_CTX *ctx, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio ? PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL) : NULL;
    int ok = x != NULL && SSL_CTX_use_certificate(ctx, x) == 1;

    X509_free(x);
    while (ok) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (ca == NULL) {
            ERR_clear_error(); /* the end of the file */
            break;
        }
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            ok = 0;
        }
    }
    BIO_free(bio);
    return ok;
}

static int use_key(SSL_CTX *ctx, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    int ok = k != NULL && SSL_CTX_use_PrivateKey(ctx, k) == 1;

    EVP_PKEY_free(k);
    BIO_free(bio);
    return ok;
}

SSL_CTX *tls_server_ctx_pem(const char *cert_pem, const char *key_pem, const char *cert_name,
                            const char *key_name, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        *err = ssl_err("cannot create TLS context for", cert_name);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE);
    if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!MD5:!DSS")) {
        *err = ssl_err("cannot set ciphers for", cert_name);
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postern-smtpd", 13);
    if (!use_chain(ctx, cert_pem)) {
        *err = ssl_err("cannot load certificate", cert_name);
        goto fail;
    }
    if (!use_key(ctx, key_pem)) {
        *err = ssl_err("cannot load private key", key_name);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        *err = ssl_err("private key does not match the certificate", cert_name);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char **err)
{
    char *cert = NULL, *key = NULL;
    SSL_CTX *ctx;

    if (tls_read_pair(cert_file, key_file, &cert, &key, err) < 0)
        return NULL;
    ctx = tls_server_ctx_pem(cert, key, cert_file, key_file, err);
    free(cert);
    free_secret(key);
    return ctx;
}

void tls_describe(SSL_CTX *ctx, char *buf, size_t size)
{
    X509 *x = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
    char subj[256] = "?", until[64] = "?";

    if (x) {
        X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
        BIO *b = BIO_new(BIO_s_mem());
        if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
            int n = BIO_read(b, until, (int)sizeof(until) - 1);
            until[n > 0 ? n : 0] = '\0';
        }
        BIO_free(b);
    }
    snprintf(buf, size, "%s, expires %s", subj, until);
}

void tls_info(SSL *ssl, char *buf, size_t size)
{
    snprintf(buf, size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
