/*
 * submit - hand one message to Postern's own smtpd over SMTP, blocking,
 * every wait bounded by poll() (no event loop: sendmail does one thing).
 *
 * submit_message() connects, reads the greeting, says EHLO, MAIL FROM
 * (SIZE, BODY=8BITMIME, SMTPUTF8, RET, ENVID when wanted and offered),
 * RCPT TO for every recipient (NOTIFY when asked), and only when every
 * recipient was accepted DATA, the message dot-stuffed with CR LF line
 * ends (smtp_dotstuff), and QUIT. The message is queued for all its
 * recipients or for none: a caller that tries again never duplicates it.
 *
 * When smtpd cannot be reached at all - no connection, no greeting (a
 * timeout, the connection closed) or a 421 greeting - it returns
 * SUBMIT_UNREACHABLE with why[] saying so, prints nothing and has sent
 * nothing: the caller may leave the message in the maildrop (drop.h).
 * Otherwise it returns a sysexits.h code and prints what went wrong on
 * stderr, prefixed by prog:
 *   EX_OK         the message got its 250 after the final dot
 *   EX_TEMPFAIL   a 4xx reply, a timeout or a lost connection
 *   EX_NOUSER     a recipient refused with 5xx (each refusal is printed)
 *   EX_UNAVAILABLE a 5xx at the greeting, EHLO, MAIL or DATA
 *   EX_DATAERR    an address needs SMTPUTF8 and the server lacks it
 * With verbose, the dialogue goes to stderr ("-> " sent, "<- " received).
 *
 * The commands and the content are built by submit_mail_line(),
 * submit_rcpt_line() and submit_content(), which the maildrop writer
 * (drop.c) uses too, so that both carry the same transaction.
 *
 * smtp_proxy() is -bs: it connects the same way and copies bytes both
 * ways between stdin/stdout and the server until the server closes.
 */
#ifndef POSTERN_SENDMAIL_SUBMIT_H
#define POSTERN_SENDMAIL_SUBMIT_H

#include <stdint.h>
#include <sys/socket.h>

#include "msgin.h"
#include "base/util.h"
#include "mail/smtp_reply.h"

struct submit_req {
    const char *prog; /* for messages: "sendmail" */
    struct sockaddr_storage addr;
    const char *helo;
    const char *sender; /* "" is the null sender */
    char **rcpts;
    size_t nrcpts;
    unsigned notify; /* SM_NOTIFY_* (opts.h) */
    const char *ret, *envid;
    int eightbit, utf8;
    uint64_t size;
    const struct buf *headers; /* LF line ends */
    struct body *body;
    int verbose;
    int timeout_ms; /* for each reply and each stalled write */
};

#define SUBMIT_UNREACHABLE (-1)

int submit_message(const struct submit_req *req, char *why, size_t whysz);
int smtp_proxy(const char *prog, const struct sockaddr_storage *addr, int idle_ms);

/* "MAIL FROM:<sender> params" for a server with caps, without CR LF. */
void submit_mail_line(const struct submit_req *q, const struct smtp_caps *caps, struct buf *cmd);
/* "RCPT TO:<rcpt i> params", without CR LF. */
void submit_rcpt_line(const struct submit_req *q, size_t i, const struct smtp_caps *caps,
                      struct buf *cmd);
/* The content as DATA carries it (headers and body dot-stuffed, CR LF,
 * the final ".\r\n"), handed to put in chunks. 0, or -1 when put failed
 * or the body could not be read back (*fail says why). */
typedef int (*submit_put_fn)(void *arg, const char *p, size_t n);
int submit_content(const struct submit_req *q, submit_put_fn put, void *arg, const char **fail);

/* Connect with a time limit; the socket stays non-blocking. -1 + errno. */
int submit_connect(const struct sockaddr_storage *addr, int timeout_ms);

#endif
