/*
 * tls_mode - how the SMTP client uses TLS with a destination: the one
 * list of mode names for main.cf's `tls`, a domain's `tls=`, a gateway's
 * "/verify" option, the delivery request, the client and smtpctl's
 * output.
 *
 *   none     never STARTTLS
 *   may      STARTTLS when offered, plaintext otherwise (the default)
 *   encrypt  STARTTLS required, the certificate is not checked
 *   verify   STARTTLS required, certificate chain and host name checked
 *
 * tls_mode_names is NULL-terminated, in enum order (config's enum
 * choices). tls_mode_parse takes the exact lower-case name and returns
 * the mode or -1; tls_mode_name gives "?" for a value out of range.
 */
#ifndef POSTERN_TLS_MODE_H
#define POSTERN_TLS_MODE_H

enum tls_mode { TLS_MODE_NONE = 0, TLS_MODE_MAY, TLS_MODE_ENCRYPT, TLS_MODE_VERIFY };

extern const char *const tls_mode_names[];

const char *tls_mode_name(enum tls_mode m);
int tls_mode_parse(const char *s);

#endif
