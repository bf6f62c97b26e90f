/*
 * tlsrpt - TLS reporting (RFC 8460): qmgr counts the outcome of every
 * outbound TLS session that deliver and relay report (struct
 * dlv_tls_outcome in mail/dlv_proto.h) by the policy that applied, and
 * shows the counts as `smtpctl show tls`, in text or as an RFC 8460
 * report body (JSON).
 *
 * A policy is (type, domain, policy string): type "tlsa" (DANE), "sts"
 * (MTA-STS) or "no-policy-found"; the string is the TLSA records or the
 * MTA-STS policy's lines, '\n' separated (the JSON shows it as the
 * report's "policy-string" array). Per policy: sessions that succeeded
 * and failed, and for failures one row per (result-type, MX host,
 * receiving address, reason) with its count.
 *
 * Bounds: at most TLSRPT_MAX_POLICIES policies and TLSRPT_MAX_DETAILS
 * failure rows per policy; outcomes past them are still counted in the
 * totals (per policy) or in `dropped` (no room for the policy). Strings
 * are copied and cut to TLSRPT_MAX_TEXT bytes.
 *
 * The counts live in qmgr's memory: they start empty when qmgr starts
 * and when `smtpctl show tls --reset` (tlsrpt_reset) begins a new window;
 * the report's date-range is [window start, now].
 */
#ifndef POSTERN_QMGR_TLSRPT_H
#define POSTERN_QMGR_TLSRPT_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define TLSRPT_MAX_POLICIES 10000
#define TLSRPT_MAX_DETAILS 64
#define TLSRPT_MAX_TEXT 1024

struct tlsrpt;

struct tlsrpt_outcome {
    const char *policy_type;   /* "tlsa" "sts" "no-policy-found" */
    const char *policy_domain; /* the domain the policy is for */
    const char *policy_string; /* '\n'-separated lines, or "" */
    const char *mx_host;       /* the host the session was with */
    const char *receiving_ip;  /* its address, or "" */
    const char *result;        /* "success" or an RFC 8460 result-type */
    const char *reason;        /* failures: additional information */
};

/* now: seconds since the epoch, the start of the first window. */
struct tlsrpt *tlsrpt_new(int64_t now);
void tlsrpt_free(struct tlsrpt *t);
void tlsrpt_add(struct tlsrpt *t, const struct tlsrpt_outcome *o);
/* Forget every count; a new window starts at now. */
void tlsrpt_reset(struct tlsrpt *t, int64_t now);
size_t tlsrpt_policies(const struct tlsrpt *t);
uint64_t tlsrpt_dropped(const struct tlsrpt *t);

/* One block per policy, sorted by domain then type. */
void tlsrpt_text(const struct tlsrpt *t, int64_t now, struct buf *out);
/* An RFC 8460 report object; org is "organization-name" and
 * contact-info, report_id the report-id. */
void tlsrpt_json(const struct tlsrpt *t, const char *org, const char *report_id, int64_t now,
                 struct buf *out);

#endif
