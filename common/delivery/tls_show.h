/*
 * tls_show - the TLS policy of a destination in words: what deliver will
 * do with each host of a dnsd answer under a TLS mode, by the same
 * decision it makes for a delivery (dlv_tls_plan). For `smtpctl route
 * --resolve` (dnsd's "dns lookup --tls MODE") and `smtpctl tls check`.
 *
 * Text: one line for the domain (the DNSSEC status of the MX answer and
 * the MTA-STS state), then one per host:
 *   tls policy: MX answer secure; MTA-STS: enforce, id 20260101 (mx: *.a.test)
 *     mx1.a.test: DANE, 1 usable TLSA record (3 1 1 5b4d...): STARTTLS
 *                 required, the certificate must match a record
 *     mx2.a.test: not used: mx2.a.test is not in the MTA-STS policy ...
 * JSON: {"mode","mx_sec","sts":{...},"hosts":[{"host","policy","mode",
 * "dane","usable_tlsa","skip","reason","tlsa_state"}]}.
 */
#ifndef POSTERN_TLS_SHOW_H
#define POSTERN_TLS_SHOW_H

#include "base/util.h"
#include "mail/dns_proto.h"
#include "mail/tls_mode.h"

/* listed: the hosts are a gateway or a static route (no MTA-STS). */
void tls_show_text(const struct dns_result *r, enum tls_mode mode, int listed, struct buf *out);
void tls_show_json(const struct dns_result *r, enum tls_mode mode, int listed, struct buf *out);

#endif
