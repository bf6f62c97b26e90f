/*
 * mta_sts - the text formats of MTA-STS (RFC 8461) and its MX patterns.
 * Pure functions: no I/O. dnsd parses what it fetches; the delivery
 * engine matches MX host names; `smtpctl route` shows them.
 *
 * sts_txt_parse(): one TXT record of _mta-sts.DOMAIN: "v=STSv1; id=ID;"
 *   (v= first; id 1-32 letters and digits; other fields ignored;
 *   blanks around ';' allowed). 1 and id copied when the record is an
 *   STSv1 record, 0 when it is not one (another v=, not a record of
 *   ours: ignore it), -1 malformed STSv1 (why says). A name with several
 *   STSv1 records has no valid policy (RFC 8461 3.1): the caller checks.
 *
 * sts_policy_parse(): the policy file (RFC 8461 3.2): "key: value" lines
 *   ended by LF or CR LF; version: STSv1 (first), mode: enforce | testing
 *   | none, max_age: 0..31557600 seconds, one or more mx: patterns (not
 *   needed with mode none); unknown keys ignored; at most
 *   DNS_MAX_STS_MX patterns. 0 on success, -1 with why.
 *
 * sts_mx_match(): whether an MX host name matches a pattern: exact
 *   (case-insensitive, a final dot ignored on either side) or
 *   "*.example.com", which matches exactly one more leftmost label
 *   ("mx.example.com", not "example.com" nor "a.b.example.com").
 */
#ifndef POSTERN_MTA_STS_H
#define POSTERN_MTA_STS_H

#include <stddef.h>
#include <stdint.h>

#include "mail/dns_proto.h" /* enum dns_sts_mode, DNS_MAX_STS_MX */

#define STS_ID_MAX 32
#define STS_MAX_AGE_MAX 31557600u
#define STS_POLICY_MAX 65536 /* bytes of a policy file we accept */

struct sts_policy {
    enum dns_sts_mode mode;
    uint32_t max_age;
    size_t nmx;
    char mx[DNS_MAX_STS_MX][DNS_MAX_NAME + 1];
};

int sts_txt_parse(const char *txt, char id[STS_ID_MAX + 1], char *why, size_t whylen);
int sts_policy_parse(const char *text, size_t len, struct sts_policy *p, char *why, size_t whylen);
int sts_mx_match(const char *pattern, const char *host);
/* 1 when host matches one of the policy's patterns. */
int sts_policy_mx_ok(const struct sts_policy *p, const char *host);

#endif
