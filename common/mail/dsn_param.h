/*
 * dsn_param - the ESMTP DSN parameters of RFC 3461 that Postern keeps per
 * message and per recipient: NOTIFY (which notices the sender wants) and
 * RET (how much of the message a notice returns). One meaning for smtpd
 * (which parses them off MAIL and RCPT), the queue file (which stores
 * them), and the SMTP client (which passes them to a next hop that
 * offers DSN). ENVID and ORCPT travel as xtext (smtp_addr.h).
 *
 * NOTIFY is a bit set; 0 means "not given" (RFC 3461 4.1: the server
 * then acts as if FAILURE, and DELAY at its discretion, were asked).
 *   dsn_notify_parse(text, len, &bits): "NEVER" alone, or a comma list of
 *     SUCCESS, FAILURE, DELAY in any order and ASCII case; no empty item,
 *     no trailing comma, NEVER never combined. 0, or -1 (bits unchanged).
 *   dsn_notify_format(bits, buf, size): "NEVER" or "SUCCESS,FAILURE,DELAY"
 *     (in that order, only the bits set); "" for 0. Returns buf.
 * RET:
 *   dsn_ret_parse(text, len): DSN_RET_FULL or DSN_RET_HDRS (any case), or
 *     -1; dsn_ret_name(ret): "FULL", "HDRS", or "" for DSN_RET_NONE.
 */
#ifndef POSTERN_DSN_PARAM_H
#define POSTERN_DSN_PARAM_H

#include <stddef.h>

#define DSN_NOTIFY_NEVER 0x1u
#define DSN_NOTIFY_SUCCESS 0x2u
#define DSN_NOTIFY_FAILURE 0x4u
#define DSN_NOTIFY_DELAY 0x8u
/* "NEVER" or "SUCCESS,FAILURE,DELAY" with its NUL */
#define DSN_NOTIFY_TEXT_MAX 24

enum dsn_ret { DSN_RET_NONE = 0, DSN_RET_FULL, DSN_RET_HDRS };

int dsn_notify_parse(const char *text, size_t len, unsigned *bits);
const char *dsn_notify_format(unsigned bits, char *buf, size_t size);
int dsn_ret_parse(const char *text, size_t len);
const char *dsn_ret_name(enum dsn_ret ret);

#endif
