/*
 * report - the text of the notices qmgr sends: delivery status
 * notifications (RFC 3464 inside RFC 6522's multipart/report) to a
 * message's sender, and the short notice to the postmaster when one of
 * those could not be delivered. Pure: it builds bytes from the data it
 * is given; notice.c decides when, and queues the result.
 *
 * report_build appends the whole notice (header and body, CR LF line
 * ends, no dot-stuffing) to out:
 *   header   Date, From: MAILER-DAEMON@reporting_mta (display name
 *            "Mail Delivery System"), To: rcpt_to, Subject (by kind and
 *            action, with the original's Subject after it when it has one),
 *            Message-ID: message_id, In-Reply-To and References: the
 *            original's Message-ID when it has one, Auto-Submitted:
 *            auto-replied (RFC 3834), MIME-Version, Content-Type:
 *            multipart/report; report-type=delivery-status; boundary=...
 *   part 1   text/plain; charset=us-ascii: who failed (or is delayed, or
 *            was relayed), the step that failed, the remote host and its
 *            reply, the why line; every byte outside printable ASCII in
 *            those strings shown as '?';
 *   part 2   message/delivery-status: Reporting-MTA: dns; reporting_mta,
 *            X-Postern-Queue-ID, Original-Envelope-Id (envid, when set),
 *            Arrival-Date; then per recipient, after an empty line:
 *            Original-Recipient (orcpt, when set), Final-Recipient:
 *            rfc822; addr, Action, Status, Remote-MTA: dns; host (when
 *            set), Diagnostic-Code: smtp; reply (diag_type "smtp") or
 *            X-Postern; text (otherwise; omitted when diag is NULL),
 *            Last-Attempt-Date (when set), Will-Retry-Until (delayed only,
 *            when set). Long values are folded, never cut;
 *   part 3   the original: message/rfc822 when ret is DSN_RET_FULL and
 *            orig_len <= size_limit; otherwise text/rfc822-headers with
 *            its header section (cut at the last whole line that fits in
 *            size_limit, and part 1 says it was cut or why the body is
 *            not returned). No part 3 when orig_len is 0.
 * Dates are RFC 5322 dates in UTC. The boundary is made from message_id
 * and cannot occur in the original (it is checked; a suffix is added
 * until it does not). *eightbit (may be NULL) is set to 1 when the
 * output holds bytes over 0x7f (returned content), else 0.
 *
 * report_header_value finds the first header field named name (case-
 * insensitive) in the header section of msg (up to the first empty
 * line), unfolds it (CR LF followed by space or tab becomes that space or
 * tab), strips leading and trailing white space, and copies at most
 * size - 1 bytes into buf with a NUL. Returns 1 when found, else 0 (buf
 * set to ""). It reads only msg[0..len): malformed input (no empty line,
 * bare LF, NULs, a field with no colon) is handled, never overrun.
 */
#ifndef QMGR_REPORT_H
#define QMGR_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "mail/dsn_param.h"

enum report_action { RA_FAILED = 0, RA_DELAYED, RA_RELAYED };
enum report_kind { RK_SENDER = 0, RK_POSTMASTER };

struct report_rcpt {
    const char *addr;          /* Final-Recipient */
    const char *orcpt;         /* "rfc822;bob@example.org" as received (xtext), or NULL */
    enum report_action action; /* RA_* */
    const char *status;        /* enhanced status code "5.1.1" */
    const char *remote_mta;    /* host name that answered, or NULL */
    const char *diag_type;     /* "smtp" for a remote reply; NULL: "X-Postern" */
    const char *diag;          /* "550 5.1.1 no such user", or NULL */
    const char *step;          /* "rcpt", "dns", "connect", ... for part 1, or NULL */
    int64_t last_attempt_us;   /* 0: never tried */
    int64_t will_retry_until_us; /* RA_DELAYED, 0: omitted */
    const char *why;           /* one human sentence for part 1, or NULL */
};

struct report {
    enum report_kind kind;
    const char *reporting_mta; /* myhostname */
    const char *rcpt_to;       /* To: the sender (RK_SENDER) or the postmaster */
    const char *queue_id;      /* the original's queue ID */
    const char *orig_sender;   /* the original's envelope sender ("" for <>) */
    const char *envid;         /* ENVID as received (xtext), or NULL */
    int64_t arrival_us;        /* the original's arrival */
    int64_t now_us;            /* Date: */
    const char *message_id;    /* "<...>" for the notice */
    enum dsn_ret ret;          /* DSN_RET_FULL returns the whole message */
    uint64_t size_limit;       /* bounce_size_limit, bytes */
    const char *orig;          /* the original message (CR LF), or NULL */
    size_t orig_len;
    const struct report_rcpt *r;
    size_t n;                  /* at least 1 */
};

void report_build(struct buf *out, const struct report *rp, int *eightbit);
int report_header_value(const char *msg, size_t len, const char *name, char *buf, size_t size);

#endif
