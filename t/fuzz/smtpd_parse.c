/*
 * Fuzz target for smtpd's command parser (smtpd/smtp_parse.c) and the
 * session state machine (smtpd/session.c): the input is split into lines;
 * each is parsed alone (with invariants checked on the result), and the
 * whole sequence drives one session, DATA included, as a client would.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../smtpd/session.h"
#include "../../smtpd/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct sess_conf conf = {
    .hostname = "fuzz.test",
    .size_limit = 4096,
    .rcpt_limit = 5,
    .error_limit = 20,
    .line_limit = 200,
    .normalize = 0,
    .tls_available = 1,
    .auth_available = 1,
    .auth_plaintext_loopback = 1,
};

static void check_cmd(const char *line, size_t len)
{
    struct smtp_cmd cmd;
    unsigned res;
    const char *why;

    if (smtp_parse(line, len, &cmd) != 0) {
        if (cmd.code < 500 || cmd.code > 555 || cmd.enh == NULL || cmd.text == NULL)
            abort();
        return;
    }
    if (cmd.arg && (cmd.arg < line || cmd.arg + cmd.arg_len > line + len))
        abort();
    if (cmd.arg2 && (cmd.arg2 < line || cmd.arg2 + cmd.arg2_len > line + len))
        abort();
    if (cmd.verb == SMTP_V_MAIL || cmd.verb == SMTP_V_RCPT) {
        size_t al = strlen(cmd.addr);
        if (al > SMTP_ADDR_MAX)
            abort();
        if (cmd.addr_flags & SMTP_PATH_NULL) {
            if (al != 0 || cmd.verb != SMTP_V_MAIL)
                abort();
        } else if (smtp_mailbox_valid(cmd.addr, al, &res, &why) != 0) {
            abort();
        }
        for (size_t i = 0; i < al; i++)
            if ((unsigned char)cmd.addr[i] < 32)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    struct sess s;
    struct buf out, msg;
    char *line = malloc(size + 1);

    buf_init(&out);
    buf_init(&msg);
    sess_init(&s, &conf, "192.0.2.1", 1234, size & 1, size & 2, size & 4);
    while (p < end && s.state != SS_CLOSED) {
        if (s.state == SS_DATA) {
            p += data_dec_feed(&s.dec, p, (size_t)(end - p), &msg);
            if (!s.dec.done)
                break;
            if (sess_data_end(&s, &out) == SA_COMMIT) {
                struct qfile_env env;
                struct qfile_rcpt *rc = calloc(s.nrcpt + 1, sizeof(*rc));
                sess_envelope(&s, "000000000000000000", 1, &env, rc);
                sess_received(&s, "000000000000000000", 1, &out);
                free(rc);
                sess_commit_result(&s, (size & 8) ? NULL : "000000000000000000", &out);
            }
            buf_reset(&msg);
            continue;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        memcpy(line, p, len);
        p += len + (nl != NULL);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        line[len] = '\0';
        check_cmd(line, len);
        switch (sess_line(&s, line, len, &out)) {
        case SA_STARTTLS:
            sess_tls_started(&s, "TLSv1.3 FUZZ");
            break;
        case SA_AUTH_VERIFY:
            sess_auth_result(&s, (int)(len % 3) - 1, &out);
            break;
        default:
            break;
        }
        buf_reset(&out);
    }
    sess_free(&s);
    buf_free(&out);
    buf_free(&msg);
    free(line);
    return 0;
}
