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
 *   dane     DANE (RFC 7672) when the host publishes usable TLSA records
 *            in a DNSSEC-secure zone: TLS required, the certificate must
 *            match a record; otherwise as `may`
 *   dane-only  the host must have usable, secure TLSA records: without
 *            them the host is not used (temporary failure); then as dane
 *
 * `may` and `encrypt` for MX deliveries also use DANE when the host has
 * usable secure TLSA records (opportunistic DANE: only possible when
 * main.cf's dnssec is not off); `verify` (PKIX) and `none` do not.
 *
 * tls_mode_names is NULL-terminated, in enum order (config's enum
 * choices). tls_mode_parse takes the exact lower-case name and returns
 * the mode or -1; tls_mode_name gives "?" for a value out of range.
 */
#ifndef POSTERN_TLS_MODE_H
#define POSTERN_TLS_MODE_H

enum tls_mode {
    TLS_MODE_NONE = 0,
    TLS_MODE_MAY,
    TLS_MODE_ENCRYPT,
    TLS_MODE_VERIFY,
    TLS_MODE_DANE,
    TLS_MODE_DANE_ONLY,
};
#define TLS_MODE_LAST TLS_MODE_DANE_ONLY

extern const char *const tls_mode_names[];

const char *tls_mode_name(enum tls_mode m);
/* What the mode does, in a few words (smtpctl route, tls check). */
const char *tls_mode_meaning(enum tls_mode m);
int tls_mode_parse(const char *s);

#endif
