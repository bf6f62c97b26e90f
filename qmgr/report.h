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
 *            "Mail Delivery System"), To: <rcpt_to>, Subject, Message-ID:
 *            message_id, In-Reply-To and References: the original's
 *            Message-ID when it has one that looks like "<...>" (no white
 *            space, controls or 8-bit inside, at most 900 bytes),
 *            Auto-Submitted: auto-replied (RFC 3834), MIME-Version,
 *            Content-Type: multipart/report; report-type=delivery-status;
 *            boundary=..., and Content-Transfer-Encoding: 8bit when the
 *            returned original has 8-bit bytes. Subject by kind and
 *            action: RK_POSTMASTER "Undeliverable delivery notice";
 *            RK_SENDER "Undelivered mail returned to sender" when any
 *            recipient failed, else "Delayed mail (still being retried)"
 *            when any is delayed, else "Delivery report: relayed"; then,
 *            for both kinds, ": " and the original's Subject when it has a
 *            non-empty one (its first 200 bytes, a tab shown as a space,
 *            other bytes outside printable ASCII as '?'). To: keeps
 *            rcpt_to's 8-bit bytes (an SMTPUTF8 sender, RFC 6532; notice.c
 *            then asks for SMTPUTF8), its controls shown as '?';
 *   part 1   text/plain; charset=us-ascii: who failed (or is delayed, or
 *            was relayed), the step that failed, the remote host and its
 *            reply, the why line, and what part 3 returns; in the strings
 *            given a tab is shown as a space and every other byte outside
 *            printable ASCII as '?'. Lines wrapped at 76 where words allow;
 *   part 2   message/delivery-status: Reporting-MTA: dns; reporting_mta,
 *            X-Postern-Queue-ID, Original-Envelope-Id (envid, when set),
 *            Arrival-Date (when arrival_us is not 0); then per recipient,
 *            after an empty line: Original-Recipient (orcpt as given, when
 *            set), Final-Recipient: rfc822; addr, Action, Status (the
 *            default of the action, 5.0.0 4.0.0 2.0.0, when status is not
 *            "d.ddd.ddd" of class 2, 4 or 5), Remote-MTA: dns; host (when
 *            set), Diagnostic-Code: smtp; reply (diag_type "smtp", any
 *            case) or X-Postern; text (otherwise; omitted when diag is
 *            NULL or ""), Last-Attempt-Date (when set), Will-Retry-Until
 *            (delayed only, when set). In every string given, controls
 *            (CR and LF too) become spaces and bytes over 0x7f '?';
 *   part 3   the original: message/rfc822 when ret is DSN_RET_FULL and
 *            orig_len <= size_limit; otherwise text/rfc822-headers with
 *            its header section (cut at the last whole line that fits in
 *            size_limit, and part 1 says it was cut or why the body is
 *            not returned). No part 3 when orig_len is 0. The bytes are
 *            the original's as they are, with CR LF added when they do not
 *            end with one; the CR LF before the closing delimiter belongs
 *            to it (RFC 2046 5.1.1), so a parser gets them back exactly.
 * Header fields (of the notice and of part 2) are folded at white space
 * when longer than 78 (CR LF inserted before the white space: unfolding
 * gives the value back) and never cut; only a word longer than a whole
 * line is broken, with CR LF and a space, so that no generated line is
 * over 998 bytes. Dates are RFC 5322 dates in UTC. The boundary is
 * "=_postern_" and the first 40 letters and digits of message_id (of
 * queue_id when it has none); "_1", "_2"... is added while "--" and it
 * occur in the original or in parts 1 and 2 (which quote remote replies).
 * *eightbit (may be NULL) is set to 1 when any byte appended is over 0x7f
 * (the returned original, or To:), else 0.
 *
 * For RK_POSTMASTER the "original" is the notice that could not be
 * delivered: queue_id, orig_sender ("" for <>), arrival_us, ret (notice.c
 * passes DSN_RET_HDRS) and orig are that notice's, and r its recipient.
 * Part 1 says Postern sent it and nothing more will be tried.
 *
 * report_header_value finds the first header field named name (case-
 * insensitive; "Name:" or the obsolete "Name :", never a longer name) in
 * the header section of msg (up to the first empty line, a lone CR before
 * the LF counting as empty; all of msg when there is none), unfolds it
 * (a line end followed by space or tab becomes that space or tab; lines
 * end with LF or CR LF), drops NUL bytes, strips leading and trailing
 * white space, and copies at most size - 1 bytes into buf with a NUL
 * (buf may be NULL when size is 0). Returns 1 when found, else 0 (buf set
 * to ""). A name that is empty or holds white space, controls or ':'
 * never matches. It reads only msg[0..len): malformed input (no empty
 * line, bare LF, NULs, a field with no colon, a continuation line first)
 * is handled, never overrun.
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
    const char *addr;            /* Final-Recipient */
    const char *orcpt;           /* "rfc822;bob@example.org" as received (xtext), or NULL */
    enum report_action action;   /* RA_* */
    const char *status;          /* enhanced status code "5.1.1" */
    const char *remote_mta;      /* host name that answered, or NULL */
    const char *diag_type;       /* "smtp" for a remote reply; NULL: "X-Postern" */
    const char *diag;            /* "550 5.1.1 no such user", or NULL */
    const char *step;            /* "rcpt", "dns", "connect", ... for part 1, or NULL */
    int64_t last_attempt_us;     /* 0: never tried */
    int64_t will_retry_until_us; /* RA_DELAYED, 0: omitted */
    const char *why;             /* one human sentence for part 1, or NULL */
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
    size_t n; /* at least 1 */
};

void report_build(struct buf *out, const struct report *rp, int *eightbit);
int report_header_value(const char *msg, size_t len, const char *name, char *buf, size_t size);

#endif
