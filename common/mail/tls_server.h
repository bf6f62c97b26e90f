/*
 * tls_server - the server side of STARTTLS: an OpenSSL context made from
 * tls_cert_file / tls_key_file (TLS 1.2 or newer, forward-secret AEAD
 * ciphers for TLS 1.2, OpenSSL's TLS 1.3 suites, no compression, no
 * renegotiation, server cipher preference).
 *
 * tls_read_pair() reads the two PEM files (before the privilege drop: the
 * key is usually root's only); tls_server_ctx_pem() makes the context
 * from their text, so that a context can also be made from what master
 * sends smtpd on `smtpctl reload` (IMSG_TLS_CERT: str cert_pem, str
 * key_pem), when smtpd, chrooted, cannot read the files. master makes the
 * context once itself first, so a bad pair refuses the reload and smtpd
 * keeps the one it has. tls_server_ctx() is both in one. Each returns
 * NULL (or -1) and *err naming the file on any problem: unreadable
 * files, a certificate or key that does not parse, a key that does not
 * match the certificate. tls_describe() gives "CN=..., expires ..." of a
 * context's certificate for the log.
 */
#ifndef POSTERN_TLS_SERVER_H
#define POSTERN_TLS_SERVER_H

#include <stddef.h>

#include <openssl/ssl.h>

int tls_read_pair(const char *cert_file, const char *key_file, char **cert_pem, char **key_pem,
                  char **err);
SSL_CTX *tls_server_ctx_pem(const char *cert_pem, const char *key_pem, const char *cert_name,
                            const char *key_name, char **err);
SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char **err);
void tls_describe(SSL_CTX *ctx, char *buf, size_t size);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs and the queue file. */
void tls_info(SSL *ssl, char *buf, size_t size);

#endif
