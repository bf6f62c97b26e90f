/*
 * maildrop - the format of a file in queue_directory/maildrop/: one
 * message that the local sendmail command left there (through the setgid
 * helper postdrop) while smtpd could not be reached. smtpd's pickup
 * (smtpd/pickup.h) replays it as an SMTP transaction. The file is
 *
 *   POSTDROP 1 CR LF                    the magic line, format version 1
 *   MAIL FROM:<sender> [params] CR LF   exactly one
 *   RCPT TO:<rcpt> [params] CR LF       one or more
 *   DATA CR LF
 *   the message, dot-stuffed, CR LF line ends (as on the wire after 354)
 *   . CR LF                             the end of data; nothing follows
 *
 * so that smtpd can feed it to the same session code as a client's
 * commands. A command line may end in a bare LF (smtpd accepts that from
 * clients too); the verbs are matched case-insensitively. The data ends
 * exactly where smtpd's DATA decoder ends it: at the first CR LF "." CR LF,
 * the line end of DATA counting as the first CR LF; bare LFs or CRs in the
 * data are left for smtpd to judge (smtpd_bare_newline).
 *
 * The reader checks only that framing and its bounds, not the addresses
 * or parameters (the session does that). Pure: bytes in, items out.
 *
 *   maildrop_rd_init(&r, &limits)
 *   maildrop_rd_next(&r, p, n, &used, &item, &ilen) takes the next item
 *   from p[0..n) and says what it is:
 *     MD_MORE   all of p was used (*used == n); feed more, or call finish
 *     MD_CMD    a MAIL/RCPT/DATA line: item[0..ilen), line end removed
 *     MD_BODY   raw data bytes item[0..ilen) (a span of p, dot-stuffing and
 *               the final ".\r\n" included), for the DATA decoder
 *     MD_END    the end of data was passed (*used == 0); every byte after
 *               it is an error
 *     MD_ERR    malformed or over a bound; r.why says what (static text)
 *   maildrop_rd_finish(&r): at end of input; 0 when the end of data was
 *   seen, else -1 with r.why.
 * Callers loop on maildrop_rd_next until it returns MD_MORE, advancing p
 * by *used each time. The outcome is the same however the input is cut.
 *
 * Bounds: a command line longer than line_max bytes (its line end
 * included), more than rcpt_max RCPT lines, more than size_max data bytes
 * once the stuffed dots and the end line are taken away.
 */
#ifndef POSTERN_MAILDROP_H
#define POSTERN_MAILDROP_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define MAILDROP_MAGIC "POSTDROP 1"

enum { MD_MORE = 0, MD_CMD, MD_BODY, MD_END, MD_ERR };

struct maildrop_limits {
    size_t line_max;   /* smtpd_command_line_limit */
    size_t rcpt_max;   /* smtpd_recipient_limit */
    uint64_t size_max; /* message_size_limit */
};

struct maildrop_rd {
    struct maildrop_limits lim;
    int stage;       /* where in the file (maildrop.c) */
    int body;        /* the data scanner's state */
    struct buf line; /* the command line being read */
    int line_over;   /* it went over line_max */
    uint64_t lineno; /* command lines read */
    size_t nrcpt;
    uint64_t size; /* data bytes, unstuffed, end line not counted */
    const char *why;
};

void maildrop_rd_init(struct maildrop_rd *r, const struct maildrop_limits *lim);
void maildrop_rd_free(struct maildrop_rd *r);
int maildrop_rd_next(struct maildrop_rd *r, const char *p, size_t n, size_t *used,
                     const char **item, size_t *ilen);
int maildrop_rd_finish(struct maildrop_rd *r);

#endif
