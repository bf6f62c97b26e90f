/*
 * tls - the server side of STARTTLS: an OpenSSL context made from
 * tls_cert_file / tls_key_file (TLS 1.2 or newer, forward-secret AEAD
 * ciphers for TLS 1.2, OpenSSL's TLS 1.3 suites, no compression, no
 * renegotiation, server cipher preference).
 *
 * tls_server_ctx() is called before the privilege drop (the key is
 * usually readable by root only). Returns NULL and *err on any problem:
 * unreadable files, a key that does not match the certificate.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, char **err);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs and the queue file. */
void tls_info(SSL *ssl, char *buf, size_t size);

#endif
