/*
 * hdr - what sendmail does to the header section it read (msgin) before
 * the message is submitted. Pure: time, host name and the random part of
 * Message-ID come in as arguments.
 *
 * hdr_rcpts() collects the recipients of -t: the addresses in To:, Cc:
 * and Bcc:, or, when the message has any Resent-To/Cc/Bcc field (it is
 * being forwarded), in those alone. Each value is an RFC 5322 address
 * list (addrlist.h). On a malformed list it returns -1 with a message
 * naming the field and the problem.
 *
 * hdr_strip_bcc() marks every Bcc: and Resent-Bcc: field deleted; sendmail
 * does that whether or not -t is given, so a blind copy never shows.
 *
 * hdr_write() produces the header section to send, LF line ends (the
 * DATA encoder makes them CR LF), ending with the empty line:
 *   Received: by HOST (Postern sendmail, from userid UID); DATE
 *   the fields read, in order, minus deleted ones
 *   From:       when missing: ["Full Name" ]<from_addr>
 *   Date:       when missing: the local time, RFC 5322 form
 *   Message-ID: when missing: <YYYYMMDDhhmmss.TOKEN@HOST>
 * The full name (from -F or the password entry) loses control characters;
 * it is written as an atom run, a quoted string, or RFC 2047 encoded
 * words when it holds non-ASCII bytes, so it can never break the header.
 */
#ifndef POSTERN_SENDMAIL_HDR_H
#define POSTERN_SENDMAIL_HDR_H

#include <stddef.h>
#include <time.h>

#include "addrlist.h"
#include "msgin.h"
#include "base/util.h"

struct hdr_info {
    const char *myhostname;
    const char *from_addr; /* address for a From: we add */
    const char *fullname;  /* NULL or "": none */
    time_t now;
    long uid;
    const char *token; /* unique part of an added Message-ID */
};

int hdr_rcpts(struct msgin *m, struct addrlist *out, size_t max, char *err, size_t errsz);
void hdr_strip_bcc(struct msgin *m);
void hdr_write(const struct msgin *m, const struct hdr_info *h, struct buf *out);

/* RFC 5322 date-time of t in local time: "Tue, 05 Mar 2024 10:00:00 +0100". */
void hdr_date(time_t t, char *out, size_t outsz);
/* A display name as a phrase (atoms, quoted string or encoded words). */
void hdr_phrase(const char *name, struct buf *out);

#endif
