/*
 * session - SMTP protocol state machine (see session.h).
 */
#include "session.h"
#include "mail/local_rcpt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/stats.h"

enum { AUTH_NONE, AUTH_PLAIN, AUTH_LOGIN };

void sess_init(struct sess *s, const struct sess_conf *conf, const char *addr, unsigned port,
               int loopback, int trusted, int submission)
{
    memset(s, 0, sizeof(*s));
    s->conf = conf;
    s->state = SS_CMD;
    strlcpy_p(s->addr, addr, sizeof(s->addr));
    s->port = port;
    s->loopback = loopback;
    s->trusted = trusted;
    s->submission = submission;
}

void sess_set_maildrop(struct sess *s, long uid)
{
    s->maildrop = 1;
    s->uid = uid;
}

void sess_reset(struct sess *s)
{
    free(s->sender);
    free(s->envid);
    for (size_t i = 0; i < s->nrcpt; i++) {
        free(s->rcpt[i].addr);
        free(s->rcpt[i].orcpt);
    }
    s->sender = NULL;
    s->envid = NULL;
    s->nrcpt = 0;
    s->rcpt_tried = 0;
    s->in_mail = 0;
    s->body = SMTP_BODY_NONE;
    s->ret = DSN_RET_NONE;
    s->smtputf8 = 0;
    s->bdat_msg = 0;
    s->bdat_failed = 0;
}

void sess_free(struct sess *s)
{
    sess_reset(s);
    free(s->rcpt);
    s->rcpt = NULL;
    s->rcpt_cap = 0;
    memset(s->auth_pass, 0, sizeof(s->auth_pass));
}

static void reply(struct sess *s, struct buf *out, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void reply(struct sess *s, struct buf *out, int code, const char *enh, const char *fmt, ...)
{
    va_list ap;

    buf_printf(out, "%d %s ", code, enh);
    va_start(ap, fmt);
    buf_vprintf(out, fmt, ap);
    va_end(ap);
    buf_adds(out, "\r\n");
    /* The client's errors count toward smtpd_error_limit, not ours: a
     * temporary 4.3.x (the spool full, a queue file write error) is the
     * server's trouble and never closes the session. */
    if (code >= 400 && !(code < 500 && strncmp(enh, "4.3.", 4) == 0))
        s->errors++;
}

/* After an error reply: close the session once the error limit is hit. */
static enum sess_act check_errors(struct sess *s, struct buf *out, enum sess_act act)
{
    if (act == SA_CLOSE || s->errors < s->conf->error_limit)
        return act;
    buf_printf(out, "421 4.7.0 %s Error: too many errors\r\n", s->conf->hostname);
    s->state = SS_CLOSED;
    return SA_CLOSE;
}

void sess_greeting(struct sess *s, struct buf *out)
{
    buf_printf(out, "220 %s ESMTP Postern\r\n", s->conf->hostname);
}

int sess_auth_offered(const struct sess *s)
{
    return s->conf->auth_available && !s->authed &&
           (s->tls || (s->loopback && s->conf->auth_plaintext_loopback));
}

const char *sess_proto(const struct sess *s)
{
    if (s->helo != 2)
        return "SMTP";
    if (s->tls && s->authed)
        return "ESMTPSA";
    if (s->tls)
        return "ESMTPS";
    if (s->authed)
        return "ESMTPA";
    return "ESMTP";
}

static void do_ehlo(struct sess *s, const struct smtp_cmd *cmd, struct buf *out)
{
    const char *caps[12];
    size_t n = 0;
    char sizecap[40];

    sess_reset(s);
    memcpy(s->helo_name, cmd->arg, cmd->arg_len);
    s->helo_name[cmd->arg_len] = '\0';
    if (cmd->verb == SMTP_V_HELO) {
        s->helo = 1;
        buf_printf(out, "250 %s\r\n", s->conf->hostname);
        return;
    }
    s->helo = 2;
    snprintf(sizecap, sizeof(sizecap), "SIZE %llu", (unsigned long long)s->conf->size_limit);
    caps[n++] = "PIPELINING";
    caps[n++] = sizecap;
    caps[n++] = "8BITMIME";
    caps[n++] = "SMTPUTF8";
    caps[n++] = "ENHANCEDSTATUSCODES";
    caps[n++] = "DSN";
    if (s->conf->chunking)
        caps[n++] = "CHUNKING";
    if (s->conf->tls_available && !s->tls)
        caps[n++] = "STARTTLS";
    if (sess_auth_offered(s))
        caps[n++] = "AUTH PLAIN LOGIN";
    buf_printf(out, "250-%s\r\n", s->conf->hostname);
    for (size_t i = 0; i < n; i++)
        buf_printf(out, "250%c%s\r\n", i + 1 == n ? ' ' : '-', caps[i]);
}

static enum sess_act do_mail(struct sess *s, const struct smtp_cmd *cmd, struct buf *out)
{
    if (s->helo == 0) {
        reply(s, out, 503, "5.5.1", "Error: send HELO/EHLO first");
        return SA_NONE;
    }
    if (s->in_mail) {
        reply(s, out, 503, "5.5.1", "Error: nested MAIL command");
        return SA_NONE;
    }
    s->bdat_failed = 0;
    if (s->submission && !s->authed) {
        snprintf(s->why, sizeof(s->why), "submission requires AUTH");
        s->reject = REJ_AUTH_REQUIRED + 1;
        reply(s, out, 530, "5.7.0", "Authentication required");
        return SA_NONE;
    }
    if (cmd->has_size && cmd->size > s->conf->size_limit) {
        s->reject = REJ_SIZE + 1;
        reply(s, out, 552, "5.3.4", "Message size exceeds fixed limit of %llu bytes",
              (unsigned long long)s->conf->size_limit);
        return SA_NONE;
    }
    if ((cmd->addr_flags & SMTP_PATH_UTF8) && !cmd->smtputf8) {
        reply(s, out, 553, "5.6.7", "Must declare SMTPUTF8 to send a UTF-8 address");
        return SA_NONE;
    }
    if (s->helo != 2 &&
        (cmd->has_size || cmd->body || cmd->smtputf8 || cmd->ret || cmd->envid[0])) {
        reply(s, out, 555, "5.5.4", "Error: MAIL parameters need EHLO");
        return SA_NONE;
    }
    s->in_mail = 1;
    s->sender = xstrdup(cmd->addr);
    s->body = cmd->body;
    s->ret = cmd->ret;
    s->smtputf8 = cmd->smtputf8;
    s->envid = cmd->envid[0] ? xstrdup(cmd->envid) : NULL;
    reply(s, out, 250, "2.1.0", "Ok");
    return SA_NONE;
}

static enum sess_act do_rcpt(struct sess *s, const struct smtp_cmd *cmd, struct buf *out)
{
    struct sess_rcpt *r;
    enum lrcpt lr;

    if (!s->in_mail) {
        reply(s, out, 503, "5.5.1", "Error: need MAIL command");
        return SA_NONE;
    }
    if (s->bdat_msg) {
        reply(s, out, 503, "5.5.1", "Error: RCPT after BDAT");
        return SA_NONE;
    }
    s->rcpt_tried++;
    if (s->nrcpt >= s->conf->rcpt_limit) {
        reply(s, out, 452, "4.5.3", "Error: too many recipients (at most %u per message)",
              s->conf->rcpt_limit);
        /* Not the client's fault (RFC 5321 4.5.3.1.10): a big pipelined
         * RCPT list must not trip the error limit and lose the message. */
        s->errors--;
        return SA_NONE;
    }
    if ((cmd->addr_flags & SMTP_PATH_UTF8) && !s->smtputf8) {
        reply(s, out, 553, "5.6.7", "Must declare SMTPUTF8 to send a UTF-8 address");
        return SA_NONE;
    }
    if (s->helo != 2 && (cmd->notify || cmd->orcpt[0])) {
        reply(s, out, 555, "5.5.4", "Error: RCPT parameters need EHLO");
        return SA_NONE;
    }
    /* A recipient of this host's own domains: an unknown user is refused
     * now rather than bounced later; a known one is taken from anyone. */
    lr = cmd->postmaster || s->conf->local_rcpt == NULL
             ? LR_REMOTE
             : (enum lrcpt)s->conf->local_rcpt(s->conf->local_arg, cmd->addr);
    if (lr == LR_UNKNOWN) {
        snprintf(s->why, sizeof(s->why), "unknown local user");
        reply(s, out, 550, "5.1.1",
              "<%s>: Recipient address rejected: User unknown in local "
              "recipient table",
              cmd->addr);
        return SA_NONE;
    }
    if (lr == LR_ERROR) {
        reply(s, out, 451, "4.3.0", "<%s>: Temporary lookup failure", cmd->addr);
        return SA_NONE;
    }
    /* Relay control: every other recipient is relayed, so this applies to
     * all but <postmaster>, which RFC 5321 4.5.1 says every server MUST
     * take (from anyone: it goes where the admin said, never where the
     * client says). */
    if (lr == LR_REMOTE && !cmd->postmaster && !s->authed && (!s->trusted || s->submission)) {
        snprintf(s->why, sizeof(s->why),
                 s->submission ? "relay access denied: submission requires AUTH"
                               : "relay access denied: client not in mynetworks and not "
                                 "authenticated");
        s->relay_denied++;
        s->reject = REJ_RELAY_DENIED + 1;
        reply(s, out, 554, "5.7.1", "<%s>: Relay access denied", cmd->addr);
        return SA_NONE;
    }
    if (s->nrcpt == s->rcpt_cap) {
        s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 8;
        s->rcpt = xrealloc(s->rcpt, s->rcpt_cap * sizeof(*s->rcpt));
    }
    r = &s->rcpt[s->nrcpt++];
    r->addr = xstrdup(!cmd->postmaster      ? cmd->addr
                      : s->conf->postmaster ? s->conf->postmaster
                                            : "postmaster");
    r->notify = cmd->notify;
    r->orcpt = cmd->orcpt[0] ? xstrdup(cmd->orcpt) : NULL;
    reply(s, out, 250, "2.1.5", "Ok");
    return SA_NONE;
}

static enum sess_act do_data(struct sess *s, struct buf *out)
{
    if (s->bdat_msg) {
        reply(s, out, 503, "5.5.1", "Error: DATA after BDAT");
        return SA_NONE;
    }
    if (!s->in_mail) {
        reply(s, out, 503, "5.5.1", "Error: need MAIL command");
        return SA_NONE;
    }
    if (s->nrcpt == 0) {
        if (s->rcpt_tried)
            reply(s, out, 554, "5.5.1", "Error: no valid recipients");
        else
            reply(s, out, 503, "5.5.1", "Error: need RCPT command");
        return SA_NONE;
    }
    data_dec_init(&s->dec, s->conf->normalize, s->conf->line_limit, s->conf->size_limit);
    /* A notice (null sender) often returns the message it is about, long
     * lines and all: cut them rather than lose the notice. */
    s->dec.fold = s->sender && s->sender[0] == '\0';
    hops_init(&s->hops);
    s->state = SS_DATA;
    buf_adds(out, "354 End data with <CR><LF>.<CR><LF>\r\n");
    return SA_DATA;
}

/* Why a BDAT chunk is read and thrown away (s->bdat_refuse). */
enum {
    BDAT_OK = 0,
    BDAT_NO_EHLO,
    BDAT_NO_MAIL,
    BDAT_NO_RCPT,
    BDAT_NO_VALID_RCPT,
    BDAT_AFTER_FAIL,
};

/* "BDAT octets [LAST]": 0, or -1 when it cannot be read. */
static int bdat_args(const char *p, size_t len, uint64_t *octets, int *last)
{
    size_t i = 0;
    uint64_t n = 0;

    for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
        if (i >= 19)
            return -1; /* 10^19 octets is no message */
        n = n * 10 + (uint64_t)(p[i] - '0');
    }
    if (i == 0)
        return -1;
    *octets = n;
    *last = 0;
    if (i == len)
        return 0;
    if (len - i == 5 && p[i] == ' ' && ascii_ncasecmp(p + i + 1, "LAST", 4) == 0) {
        *last = 1;
        return 0;
    }
    return -1;
}

/*
 * BDAT (RFC 3030). The chunk's octets follow the command line whatever
 * the reply will be, so every BDAT with a size we can read is read to
 * its end - a refused one too - and answered after that: nothing of a
 * chunk is ever taken for a command. A size that cannot be read leaves
 * no way to find the next command: the session ends.
 */
static enum sess_act do_bdat(struct sess *s, const struct smtp_cmd *cmd, struct buf *out)
{
    uint64_t octets;
    int last;

    if (!s->conf->chunking) {
        reply(s, out, 502, "5.5.1", "Error: command not implemented");
        return SA_NONE;
    }
    if (bdat_args(cmd->arg, cmd->arg_len, &octets, &last) != 0) {
        snprintf(s->why, sizeof(s->why), "BDAT without a readable size: the session cannot go on");
        reply(s, out, 501, "5.5.4", "Syntax: BDAT octets [LAST]; closing the connection");
        s->state = SS_CLOSED;
        return SA_CLOSE;
    }
    s->bdat_chunk = octets;
    s->bdat_left = octets;
    s->bdat_last = last;
    s->bdat_refuse = s->helo != 2     ? BDAT_NO_EHLO
                     : s->bdat_failed ? BDAT_AFTER_FAIL
                     : !s->in_mail    ? BDAT_NO_MAIL
                     : s->nrcpt == 0  ? (s->rcpt_tried ? BDAT_NO_VALID_RCPT : BDAT_NO_RCPT)
                                      : BDAT_OK;
    if (s->bdat_refuse == BDAT_OK && !s->bdat_msg) {
        data_dec_init_raw(&s->dec, s->conf->normalize, s->conf->line_limit, s->conf->size_limit);
        s->dec.fold = s->sender && s->sender[0] == '\0';
        hops_init(&s->hops);
        s->bdat_msg = 1;
    }
    s->state = SS_BDAT;
    return SA_BDAT;
}

static enum sess_act do_starttls(struct sess *s, struct buf *out)
{
    if (!s->conf->tls_available) {
        reply(s, out, 502, "5.5.1", "Error: STARTTLS not available");
        return SA_NONE;
    }
    if (s->tls) {
        reply(s, out, 503, "5.5.1", "Error: TLS already active");
        return SA_NONE;
    }
    if (s->helo != 2) {
        reply(s, out, 503, "5.5.1", "Error: send EHLO first");
        return SA_NONE;
    }
    buf_adds(out, "220 2.0.0 Ready to start TLS\r\n");
    s->state = SS_WAIT;
    return SA_STARTTLS;
}

void sess_tls_started(struct sess *s, const char *info)
{
    /* RFC 3207 4.2: forget everything learnt before TLS. */
    sess_reset(s);
    s->helo = 0;
    s->helo_name[0] = '\0';
    s->authed = 0;
    s->auth_user[0] = '\0';
    s->tls = 1;
    strlcpy_p(s->tls_info, info, sizeof(s->tls_info));
    s->state = SS_CMD;
}

/* ---- AUTH ---- */

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int sess_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
    size_t o = 0, pad = 0;
    unsigned acc = 0;
    int bits = 0;

    while (len > 0 && in[len - 1] == '=') {
        len--;
        if (++pad > 2)
            return -1;
    }
    if (pad && (len + pad) % 4 != 0)
        return -1;
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outsz)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (int)o;
}

/* User names go to logs and the queue file: no control characters. */
static int user_ok(const char *u, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)u[i] < 32 || u[i] == 127)
            return 0;
    return smtp_utf8_valid((const unsigned char *)u, len);
}

int sess_plain_split(const unsigned char *p, size_t len, char *user, size_t usz, char *pass,
                     size_t psz)
{
    const unsigned char *z1 = memchr(p, '\0', len), *z2;
    size_t zlen, ulen, plen;

    if (z1 == NULL)
        return -1;
    zlen = (size_t)(z1 - p);
    z2 = memchr(z1 + 1, '\0', len - zlen - 1);
    if (z2 == NULL)
        return -1;
    ulen = (size_t)(z2 - z1 - 1);
    plen = len - zlen - ulen - 2;
    if (ulen == 0 || ulen >= usz || plen == 0 || plen >= psz)
        return -1;
    if (zlen != 0 && (zlen != ulen || memcmp(p, z1 + 1, ulen) != 0))
        return -1; /* acting as someone else is not offered */
    if (!user_ok((const char *)z1 + 1, ulen))
        return -1;
    memcpy(user, z1 + 1, ulen);
    user[ulen] = '\0';
    memcpy(pass, z2 + 1, plen);
    pass[plen] = '\0';
    return 0;
}

static enum sess_act auth_abort(struct sess *s, struct buf *out, int code, const char *enh,
                                const char *text)
{
    memset(s->auth_pass, 0, sizeof(s->auth_pass));
    s->auth_user[0] = '\0';
    s->auth_mech = AUTH_NONE;
    s->state = SS_CMD;
    reply(s, out, code, enh, "%s", text);
    return check_errors(s, out, SA_NONE);
}

static enum sess_act auth_plain_response(struct sess *s, const char *r, size_t len, struct buf *out)
{
    unsigned char dec[3 * SESS_AUTH_MAX];
    int n = sess_b64_decode(r, len, dec, sizeof(dec));

    if (n < 0)
        return auth_abort(s, out, 501, "5.5.2", "Error: invalid base64 data");
    if (sess_plain_split(dec, (size_t)n, s->auth_user, sizeof(s->auth_user), s->auth_pass,
                         sizeof(s->auth_pass)) != 0) {
        memset(dec, 0, sizeof(dec));
        return auth_abort(s, out, 501, "5.5.2", "Error: malformed PLAIN response");
    }
    memset(dec, 0, sizeof(dec));
    s->state = SS_WAIT;
    return SA_AUTH_VERIFY;
}

static enum sess_act auth_login_step(struct sess *s, const char *r, size_t len, struct buf *out)
{
    unsigned char dec[SESS_AUTH_MAX];
    int n = sess_b64_decode(r, len, dec, sizeof(dec) - 1);

    if (n < 0)
        return auth_abort(s, out, 501, "5.5.2", "Error: invalid base64 data");
    if (s->state == SS_AUTH_LOGIN_USER) {
        if (!user_ok((const char *)dec, (size_t)n))
            return auth_abort(s, out, 501, "5.5.2", "Error: bad user name");
        memcpy(s->auth_user, dec, (size_t)n);
        s->auth_user[n] = '\0';
        s->state = SS_AUTH_LOGIN_PASS;
        buf_adds(out, "334 UGFzc3dvcmQ6\r\n"); /* "Password:" */
        return SA_NONE;
    }
    if (n == 0 || memchr(dec, '\0', (size_t)n) != NULL)
        return auth_abort(s, out, 501, "5.5.2", "Error: bad password encoding");
    memcpy(s->auth_pass, dec, (size_t)n);
    s->auth_pass[n] = '\0';
    memset(dec, 0, sizeof(dec));
    s->state = SS_WAIT;
    return SA_AUTH_VERIFY;
}

static enum sess_act do_auth(struct sess *s, const struct smtp_cmd *cmd, struct buf *out)
{
    if (!s->conf->auth_available) {
        reply(s, out, 503, "5.5.1", "Error: authentication not enabled");
        return SA_NONE;
    }
    if (s->helo != 2) {
        reply(s, out, 503, "5.5.1", "Error: send EHLO first");
        return SA_NONE;
    }
    if (s->authed) {
        reply(s, out, 503, "5.5.1", "Error: already authenticated");
        return SA_NONE;
    }
    if (s->in_mail) {
        reply(s, out, 503, "5.5.1", "Error: MAIL transaction in progress");
        return SA_NONE;
    }
    if (!sess_auth_offered(s)) {
        reply(s, out, 538, "5.7.11", "Encryption required for requested authentication mechanism");
        return SA_NONE;
    }
    if (cmd->arg_len == 5 && ascii_ncasecmp(cmd->arg, "PLAIN", 5) == 0) {
        s->auth_mech = AUTH_PLAIN;
        if (cmd->arg2 == NULL) {
            s->state = SS_AUTH_PLAIN;
            buf_adds(out, "334 \r\n");
            return SA_NONE;
        }
        if (cmd->arg2_len == 1 && cmd->arg2[0] == '=')
            return auth_plain_response(s, "", 0, out);
        return auth_plain_response(s, cmd->arg2, cmd->arg2_len, out);
    }
    if (cmd->arg_len == 5 && ascii_ncasecmp(cmd->arg, "LOGIN", 5) == 0) {
        s->auth_mech = AUTH_LOGIN;
        s->state = SS_AUTH_LOGIN_USER;
        if (cmd->arg2 != NULL)
            return auth_login_step(s, cmd->arg2, cmd->arg2_len, out);
        buf_adds(out, "334 VXNlcm5hbWU6\r\n"); /* "Username:" */
        return SA_NONE;
    }
    reply(s, out, 504, "5.5.4", "Error: unrecognized authentication type");
    return SA_NONE;
}

static enum sess_act auth_response(struct sess *s, const char *line, size_t len, struct buf *out)
{
    if (len == 1 && line[0] == '*')
        return auth_abort(s, out, 501, "5.0.0", "Authentication aborted");
    if (s->state == SS_AUTH_PLAIN)
        return auth_plain_response(s, line, len, out);
    return auth_login_step(s, line, len, out);
}

enum sess_act sess_auth_result(struct sess *s, int result, struct buf *out)
{
    memset(s->auth_pass, 0, sizeof(s->auth_pass));
    s->state = SS_CMD;
    s->auth_mech = AUTH_NONE;
    if (result > 0) {
        s->authed = 1;
        buf_adds(out, "235 2.7.0 Authentication successful\r\n");
        return SA_NONE;
    }
    if (result < 0) {
        s->auth_user[0] = '\0';
        reply(s, out, 454, "4.7.0", "Temporary authentication failure");
        return check_errors(s, out, SA_NONE);
    }
    s->auth_user[0] = '\0';
    reply(s, out, 535, "5.7.8", "Error: authentication failed");
    return check_errors(s, out, SA_NONE);
}

/* ---- commands ---- */

enum sess_act sess_line(struct sess *s, const char *line, size_t len, struct buf *out)
{
    struct smtp_cmd cmd;
    enum sess_act act = SA_NONE;

    s->why[0] = '\0';
    if (s->state == SS_AUTH_PLAIN || s->state == SS_AUTH_LOGIN_USER ||
        s->state == SS_AUTH_LOGIN_PASS)
        return auth_response(s, line, len, out);
    if (s->state != SS_CMD)
        return SA_NONE; /* the server does not feed lines in other states */
    s->commands++;
    if (smtp_parse(line, len, &cmd) != 0) {
        reply(s, out, cmd.code, cmd.enh, "%s", cmd.text);
        return check_errors(s, out, SA_NONE);
    }
    switch (cmd.verb) {
    case SMTP_V_HELO:
    case SMTP_V_EHLO:
        do_ehlo(s, &cmd, out);
        break;
    case SMTP_V_MAIL:
        act = do_mail(s, &cmd, out);
        break;
    case SMTP_V_RCPT:
        act = do_rcpt(s, &cmd, out);
        break;
    case SMTP_V_DATA:
        act = do_data(s, out);
        break;
    case SMTP_V_RSET:
        sess_reset(s);
        reply(s, out, 250, "2.0.0", "Ok");
        break;
    case SMTP_V_NOOP:
        reply(s, out, 250, "2.0.0", "Ok");
        break;
    case SMTP_V_QUIT:
        buf_adds(out, "221 2.0.0 Bye\r\n");
        s->state = SS_CLOSED;
        return SA_CLOSE;
    case SMTP_V_VRFY:
        reply(s, out, 252, "2.0.0",
              "Cannot VRFY user, but will accept message and attempt "
              "delivery");
        break;
    case SMTP_V_HELP:
        reply(s, out, 214, "2.0.0",
              "Commands: EHLO HELO MAIL RCPT DATA %sRSET NOOP QUIT VRFY HELP%s%s",
              s->conf->chunking ? "BDAT " : "", s->conf->tls_available ? " STARTTLS" : "",
              s->conf->auth_available ? " AUTH" : "");
        break;
    case SMTP_V_STARTTLS:
        act = do_starttls(s, out);
        break;
    case SMTP_V_AUTH:
        act = do_auth(s, &cmd, out);
        break;
    case SMTP_V_BDAT:
        act = do_bdat(s, &cmd, out);
        break;
    case SMTP_V_EXPN:
        reply(s, out, 502, "5.5.1", "Error: command not implemented");
        break;
    case SMTP_V_UNKNOWN:
        reply(s, out, 500, "5.5.2", "Error: command not recognized");
        break;
    }
    return check_errors(s, out, act);
}

enum sess_act sess_too_long(struct sess *s, struct buf *out)
{
    s->why[0] = '\0';
    reply(s, out, 500, "5.5.2", "Error: line too long");
    if (s->state == SS_AUTH_PLAIN || s->state == SS_AUTH_LOGIN_USER ||
        s->state == SS_AUTH_LOGIN_PASS) {
        s->state = SS_CMD;
        s->auth_mech = AUTH_NONE;
    }
    return check_errors(s, out, SA_NONE);
}

/* The whole message is in (DATA's end, or the last BDAT chunk). */
static enum sess_act message_end(struct sess *s, struct buf *out)
{
    switch (s->dec.err) {
    case DD_OK:
        if (s->conf->max_hops && s->hops.count + 1 > s->conf->max_hops) {
            /* RFC 5321 6.3; RFC 3463 X.4.6 "routing loop detected". Our own
             * Received: field would be one more. */
            snprintf(s->why, sizeof(s->why),
                     "mail loop: %u Received: header fields, with ours more than max_hop_count %u",
                     s->hops.count, s->conf->max_hops);
            s->reject = REJ_MAIL_LOOP + 1;
            reply(s, out, 554, "5.4.6", "Error: too many hops (%u Received: fields): mail loop",
                  s->hops.count);
            break;
        }
        s->state = SS_WAIT;
        return SA_COMMIT;
    case DD_ERR_BARE_LF:
    case DD_ERR_BARE_CR:
        snprintf(s->why, sizeof(s->why), "%s in DATA (smtpd_bare_newline = reject)",
                 data_dec_errstr(s->dec.err));
        s->reject = REJ_BARE_NEWLINE + 1;
        reply(s, out, 550, "5.5.2", "Error: %s in message; lines must end with <CR><LF>",
              data_dec_errstr(s->dec.err));
        break;
    case DD_ERR_LINE:
        /* RFC 5321 4.5.3.1.6: a next hop may refuse it; refused here, where
         * the client can still re-encode it (RFC 3463 X.5.2: syntax). */
        snprintf(s->why, sizeof(s->why), "a line longer than %zu octets (smtpd_line_length_limit)",
                 s->conf->line_limit - 2);
        s->reject = REJ_LINE_LENGTH + 1;
        reply(s, out, 550, "5.5.2", "Error: message has a line longer than %zu octets",
              s->conf->line_limit - 2);
        break;
    case DD_ERR_SIZE:
        snprintf(s->why, sizeof(s->why), "message larger than %llu bytes",
                 (unsigned long long)s->conf->size_limit);
        s->reject = REJ_SIZE + 1;
        reply(s, out, 552, "5.3.4", "Error: message exceeds fixed limit of %llu bytes",
              (unsigned long long)s->conf->size_limit);
        break;
    }
    sess_reset(s);
    s->state = SS_CMD;
    return check_errors(s, out, SA_NONE);
}

enum sess_act sess_data_end(struct sess *s, struct buf *out)
{
    s->why[0] = '\0';
    return message_end(s, out);
}

enum sess_act sess_bdat_end(struct sess *s, struct buf *out)
{
    int refuse = s->bdat_refuse;

    s->why[0] = '\0';
    s->state = SS_CMD;
    s->bdat_refuse = BDAT_OK;
    switch (refuse) {
    case BDAT_OK:
        break;
    case BDAT_NO_EHLO:
        reply(s, out, 503, "5.5.1", "Error: send EHLO first");
        return check_errors(s, out, SA_NONE);
    case BDAT_NO_MAIL:
        reply(s, out, 503, "5.5.1", "Error: need MAIL command");
        return check_errors(s, out, SA_NONE);
    case BDAT_NO_RCPT:
        reply(s, out, 503, "5.5.1", "Error: need RCPT command");
        return check_errors(s, out, SA_NONE);
    case BDAT_NO_VALID_RCPT:
        reply(s, out, 554, "5.5.1", "Error: no valid recipients");
        return check_errors(s, out, SA_NONE);
    default: /* BDAT_AFTER_FAIL */
        /* The chunks a client had pipelined after the refused one: the
         * one refusal is the client's error, these are not more. */
        reply(s, out, 503, "5.5.1", "Error: an earlier chunk of this message was refused");
        s->errors--;
        if (s->bdat_last)
            s->bdat_failed = 0;
        return SA_NONE;
    }
    if (s->dec.err != DD_OK || s->bdat_last) {
        int failed = s->dec.err != DD_OK && !s->bdat_last;
        enum sess_act act = message_end(s, out);
        s->bdat_failed = failed; /* message_end reset the transaction */
        return act;
    }
    reply(s, out, 250, "2.0.0", "Ok: %llu octets received", (unsigned long long)s->bdat_chunk);
    return SA_NONE;
}

enum sess_act sess_commit_result(struct sess *s, const char *id, struct buf *out)
{
    sess_reset(s);
    s->state = SS_CMD;
    if (id == NULL) {
        s->reject = REJ_WRITE_ERROR + 1;
        reply(s, out, 451, "4.3.0", "Error: queue file write error, try again later");
        return check_errors(s, out, SA_NONE);
    }
    s->messages++;
    reply(s, out, 250, "2.0.0", "Ok: queued as %s", id);
    return SA_NONE;
}

/* ---- queue file view ---- */

void sess_envelope(const struct sess *s, const char *id, int64_t arrival_us, struct qfile_env *env,
                   struct qfile_rcpt *rcpts)
{
    memset(env, 0, sizeof(*env));
    strlcpy_p(env->id, id, sizeof(env->id));
    env->version = QFILE_VERSION;
    env->arrival_us = arrival_us;
    env->client_addr = (char *)(uintptr_t)s->addr;
    env->client_port = s->port;
    env->helo = s->helo_name[0] ? (char *)(uintptr_t)s->helo_name : NULL;
    env->proto = (char *)(uintptr_t)sess_proto(s);
    env->tls = s->tls ? (char *)(uintptr_t)s->tls_info : NULL;
    env->auth = s->authed ? (char *)(uintptr_t)s->auth_user : NULL;
    env->sender = s->sender;
    env->envid = s->envid;
    env->ret = s->ret;
    env->body = s->body == SMTP_BODY_7BIT       ? QFILE_BODY_7BIT
                : s->body == SMTP_BODY_8BITMIME ? QFILE_BODY_8BITMIME
                                                : QFILE_BODY_NONE;
    env->smtputf8 = s->smtputf8;
    for (size_t i = 0; i < s->nrcpt; i++) {
        rcpts[i].addr = s->rcpt[i].addr;
        rcpts[i].notify = s->rcpt[i].notify;
        rcpts[i].orcpt = s->rcpt[i].orcpt;
    }
    env->rcpt = rcpts;
    env->nrcpt = s->nrcpt;
}

/* A name safe for a Received: header: odd characters become '?'. */
static void safe_name(const char *in, char *out, size_t size)
{
    size_t o = 0;

    for (; *in && o + 1 < size; in++) {
        unsigned char c = (unsigned char)*in;
        int good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c >= 0x80 || strchr(".-_:[]", c) != NULL;
        out[o++] = good ? (char)c : '?';
    }
    out[o] = '\0';
}

void sess_received(const struct sess *s, const char *id, int64_t now, struct buf *out)
{
    char helo[SMTP_DOMAIN_MAX + 1], date[64];
    time_t t = (time_t)(now / 1000000);
    struct tm tm;
    int is6 = strchr(s->addr, ':') != NULL;

    safe_name(s->helo_name[0] ? s->helo_name : "unknown", helo, sizeof(helo));
    localtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    if (s->maildrop) {
        /* No client: the user, known from the file's owner, not its text. */
        buf_printf(out, "Received: by %s (Postern, from userid %ld)\r\n\tid %s", s->conf->hostname,
                   s->uid, id);
    } else {
        buf_printf(out, "Received: from %s ([%s%s])\r\n", helo, is6 ? "IPv6:" : "", s->addr);
        buf_printf(out, "\tby %s (Postern) with %s id %s", s->conf->hostname, sess_proto(s), id);
    }
    if (s->tls)
        buf_printf(out, "\r\n\t(%s)", s->tls_info);
    if (s->nrcpt == 1 && strlen(s->rcpt[0].addr) < 900)
        buf_printf(out, "\r\n\tfor <%s>", s->rcpt[0].addr);
    buf_printf(out, ";\r\n\t%s\r\n", date);
}
