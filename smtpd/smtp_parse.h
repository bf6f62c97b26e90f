/*
 * smtp_parse - the SMTP command parser of smtpd: one command line (without
 * its CRLF) in, one struct smtp_cmd out. Pure and fuzzed.
 *
 * It knows the grammar of RFC 5321 commands and the ESMTP parameters
 * Postern offers: SIZE, BODY (7BIT, 8BITMIME), SMTPUTF8 (RFC 6531),
 * RET, ENVID, NOTIFY, ORCPT (RFC 3461) and AUTH= on MAIL (RFC 4954,
 * accepted and ignored). It does not know the session state: whether a
 * command is allowed now is the session's business (session.c).
 *
 * On success smtp_parse() returns 0. On a syntax error it returns -1 and
 * fills cmd->code, cmd->enh and cmd->text with the reply to give (for
 * example 501 5.1.7 "Bad sender address syntax"); cmd->verb is still set
 * when the verb itself was recognised. Spans (arg) point into the line,
 * which must outlive the command.
 */
#ifndef POSTERN_SMTP_PARSE_H
#define POSTERN_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "mail/dsn_param.h"
#include "mail/smtp_addr.h"

enum smtp_verb {
    SMTP_V_UNKNOWN = 0,
    SMTP_V_HELO,
    SMTP_V_EHLO,
    SMTP_V_MAIL,
    SMTP_V_RCPT,
    SMTP_V_DATA,
    SMTP_V_BDAT,
    SMTP_V_RSET,
    SMTP_V_NOOP,
    SMTP_V_QUIT,
    SMTP_V_VRFY,
    SMTP_V_EXPN,
    SMTP_V_HELP,
    SMTP_V_STARTTLS,
    SMTP_V_AUTH,
};

enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

/* xtext can triple a value's length */
#define SMTP_ENVID_RAW_MAX (3 * SMTP_ENVID_MAX)
#define SMTP_ORCPT_RAW_MAX (3 * SMTP_ORCPT_MAX)

struct smtp_cmd {
    enum smtp_verb verb;
    /* the error reply when smtp_parse() failed */
    int code;
    const char *enh;
    const char *text;

    /* HELO/EHLO domain, VRFY/EXPN/HELP/NOOP argument, AUTH mechanism */
    const char *arg;
    size_t arg_len;
    /* AUTH initial response (NULL if none) */
    const char *arg2;
    size_t arg2_len;

    /* MAIL and RCPT */
    char addr[SMTP_ADDR_MAX + 1];
    unsigned addr_flags; /* SMTP_PATH_NULL, SMTP_PATH_UTF8 */
    int postmaster;      /* RCPT TO:<postmaster> (any case, no domain): addr is "postmaster" */
    /* MAIL parameters */
    int has_size;
    uint64_t size;
    enum smtp_body body;
    int smtputf8;
    enum dsn_ret ret;
    char envid[SMTP_ENVID_RAW_MAX + 1]; /* as received (xtext); "" if none */
    /* RCPT parameters */
    unsigned notify;
    char orcpt[SMTP_ORCPT_RAW_MAX + 1]; /* "type;xtext" as received; "" if none */
};

int smtp_parse(const char *line, size_t len, struct smtp_cmd *cmd);
const char *smtp_verb_name(enum smtp_verb v);
/* "SUCCESS,FAILURE" etc. for bits; "NEVER"; "" for 0. buf >= 32 bytes. */

#endif
