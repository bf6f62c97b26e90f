/*
 * smtpd_session - unit tests of the SMTP state machine (smtpd/session.c)
 * without sockets: command order, replies and their enhanced codes,
 * relay control, limits, AUTH exchanges, STARTTLS reset, DATA results,
 * the envelope and the Received: header.
 */
#include <stdlib.h>
#include <string.h>

#include "../../smtpd/session.h"
#include "tap.h"

static struct sess_conf conf = {
    .hostname = "mx.test",
    .size_limit = 10000,
    .rcpt_limit = 3,
    .error_limit = 5,
    .line_limit = 1000,
    .normalize = 0,
    .tls_available = 1,
    .auth_available = 1,
    .auth_plaintext_loopback = 0,
};

static struct sess s;
static struct buf out;
static enum sess_act act;

/* Send one line; return the reply text. */
static const char *cmd(const char *line)
{
    buf_reset(&out);
    act = sess_line(&s, line, strlen(line), &out);
    return out.data;
}

static int starts(const char *got, const char *want)
{
    return strncmp(got, want, strlen(want)) == 0;
}

#define REPLY(line, want, name)                                                                    \
    do {                                                                                           \
        const char *r_ = cmd(line);                                                                \
        if (!ok(starts(r_, want), "%s", name))                                                     \
            diag("got: %s", r_);                                                                   \
    } while (0)

static void fresh(int trusted, int submission, int loopback)
{
    sess_free(&s);
    sess_init(&s, &conf, loopback ? "127.0.0.1" : "192.0.2.7", 40000, loopback, trusted,
              submission);
}

/* Feed a DATA body through the decoder and finish it. */
static enum sess_act data(const char *body)
{
    struct buf msg;
    buf_init(&msg);
    data_dec_feed(&s.dec, body, strlen(body), &msg);
    buf_free(&msg);
    buf_reset(&out);
    return sess_data_end(&s, &out);
}

static void t_order(void)
{
    fresh(1, 0, 0);
    buf_reset(&out);
    sess_greeting(&s, &out);
    ok(starts(out.data, "220 mx.test ESMTP"), "greeting");
    REPLY("MAIL FROM:<a@b.c>", "503 5.5.1", "MAIL before EHLO");
    REPLY("RCPT TO:<a@b.c>", "503 5.5.1", "RCPT before MAIL");
    REPLY("DATA", "503 5.5.1", "DATA before MAIL");
    REPLY("NOOP", "250 2.0.0", "NOOP any time");
    REPLY("VRFY bob", "252 2.0.0", "VRFY 252");
    REPLY("HELP", "214 2.0.0", "HELP");
    fresh(1, 0, 0);
    REPLY("EXPN list", "502 5.5.1", "EXPN not implemented");
    REPLY("BDAT 10 LAST", "502 5.5.1", "BDAT not offered");
    REPLY("XYZZY", "500 5.5.2", "unknown command");
    fresh(1, 0, 0);
    const char *r = cmd("EHLO client.test");
    ok(starts(r, "250-mx.test\r\n"), "EHLO first line");
    ok(strstr(r, "250-PIPELINING\r\n") && strstr(r, "250-SIZE 10000\r\n") &&
           strstr(r, "250-8BITMIME\r\n") && strstr(r, "250-SMTPUTF8\r\n") &&
           strstr(r, "250-ENHANCEDSTATUSCODES\r\n") && strstr(r, "DSN\r\n"),
       "EHLO extensions");
    ok(strstr(r, "STARTTLS") != NULL, "STARTTLS offered");
    ok(strstr(r, "AUTH") == NULL, "AUTH not offered before TLS");
    ok(strstr(r, "250 ") != NULL && strstr(r, "250 ") > strstr(r, "250-SMTPUTF8"),
       "last line has a space");
    REPLY("MAIL FROM:<a@b.c> SIZE=100", "250 2.1.0", "MAIL");
    REPLY("MAIL FROM:<a@b.c>", "503 5.5.1", "nested MAIL");
    REPLY("DATA", "503 5.5.1", "DATA before RCPT");
    REPLY("RCPT TO:<x@y.z>", "250 2.1.5", "RCPT");
    REPLY("RSET", "250 2.0.0", "RSET");
    REPLY("RCPT TO:<x@y.z>", "503 5.5.1", "RCPT after RSET");
    REPLY("QUIT", "221 2.0.0", "QUIT");
    is_int(act, SA_CLOSE, "QUIT closes");
    fresh(1, 0, 0);
    cmd("HELO client");
    ok(starts(out.data, "250 mx.test"), "HELO");
    REPLY("MAIL FROM:<a@b.c> SIZE=10", "555 5.5.4", "MAIL parameters after HELO");
    REPLY("MAIL FROM:<a@b.c>", "250 2.1.0", "MAIL after HELO");
    is_str(sess_proto(&s), "SMTP", "proto SMTP after HELO");
}

static void t_relay(void)
{
    fresh(0, 0, 0);
    cmd("EHLO c");
    cmd("MAIL FROM:<a@b.c>");
    REPLY("RCPT TO:<x@y.z>", "554 5.7.1 <x@y.z>: Relay access denied",
          "outside mynetworks: relay denied");
    ok(strstr(s.why, "not in mynetworks") != NULL, "why says mynetworks");
    is_int(s.relay_denied, 1, "counted");
    REPLY("DATA", "554 5.5.1", "DATA with no valid recipients");
    fresh(1, 0, 0);
    cmd("EHLO c");
    cmd("MAIL FROM:<a@b.c>");
    REPLY("RCPT TO:<x@y.z>", "250 2.1.5", "inside mynetworks: accepted");
    /* submission: AUTH required even from mynetworks */
    fresh(1, 1, 0);
    cmd("EHLO c");
    REPLY("MAIL FROM:<a@b.c>", "530 5.7.0", "submission without AUTH");
    /* an authenticated session may relay from anywhere */
    fresh(0, 0, 0);
    s.tls = 1;
    cmd("EHLO c");
    cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
    is_int(act, SA_AUTH_VERIFY, "PLAIN asks for verification");
    is_str(s.auth_user, "alice", "PLAIN user");
    is_str(s.auth_pass, "secret", "PLAIN password");
    buf_reset(&out);
    sess_auth_result(&s, 1, &out);
    ok(starts(out.data, "235 2.7.0"), "235 after good credentials");
    cmd("MAIL FROM:<a@b.c>");
    REPLY("RCPT TO:<x@y.z>", "250 2.1.5", "authenticated: relay allowed");
    is_str(sess_proto(&s), "ESMTPSA", "proto ESMTPSA");
}

static void t_limits(void)
{
    fresh(1, 0, 0);
    cmd("EHLO c");
    REPLY("MAIL FROM:<a@b.c> SIZE=10001", "552 5.3.4", "SIZE over the limit");
    REPLY("MAIL FROM:<a@b.c> SIZE=10000", "250", "SIZE at the limit");
    REPLY("RCPT TO:<1@y.z>", "250", "rcpt 1");
    REPLY("RCPT TO:<2@y.z>", "250", "rcpt 2");
    REPLY("RCPT TO:<3@y.z>", "250", "rcpt 3");
    REPLY("RCPT TO:<4@y.z>", "452 4.5.3", "rcpt 4: too many recipients");
    is_int(s.nrcpt, 3, "three kept");
    for (int i = 0; i < 10; i++)
        cmd("RCPT TO:<more@y.z>");
    is_int(act, SA_NONE, "extra recipients do not count toward the error limit");
    REPLY("DATA", "354 ", "the transaction goes on");
    /* error limit: 5 errors close the session */
    fresh(1, 0, 0);
    for (int i = 0; i < 4; i++)
        cmd("BOGUS");
    is_int(act, SA_NONE, "4 errors: still open");
    const char *r = cmd("BOGUS");
    ok(strstr(r, "500 5.5.2") && strstr(r, "421 4.7.0 mx.test Error: too many errors"),
       "5th error: 500 then 421");
    is_int(act, SA_CLOSE, "closed at the error limit");
    fresh(1, 0, 0);
    buf_reset(&out);
    sess_too_long(&s, &out);
    ok(starts(out.data, "500 5.5.2 Error: line too long"), "line too long");
    is_int(s.errors, 1, "counts as an error");
}

static void t_utf8(void)
{
    fresh(1, 0, 0);
    cmd("EHLO c");
    REPLY("MAIL FROM:<\xc3\xa9@b.c>", "553 5.6.7", "UTF-8 sender without SMTPUTF8");
    REPLY("MAIL FROM:<a@b.c>", "250", "ASCII sender");
    REPLY("RCPT TO:<\xc3\xa9@b.c>", "553 5.6.7", "UTF-8 rcpt without SMTPUTF8");
    cmd("RSET");
    REPLY("MAIL FROM:<\xc3\xa9@b.c> SMTPUTF8 BODY=8BITMIME", "250", "UTF-8 sender");
    REPLY("RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test>", "250",
          "UTF-8 recipient and domain");
    ok(s.smtputf8 && s.body == SMTP_BODY_8BITMIME, "flags kept");
}

static void t_auth(void)
{
    conf.error_limit = 10;
    /* not offered without TLS */
    fresh(0, 0, 0);
    cmd("EHLO c");
    REPLY("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "538 5.7.11", "AUTH without TLS");
    /* loopback with smtpd_auth_plaintext_loopback */
    conf.auth_plaintext_loopback = 1;
    fresh(0, 0, 1);
    const char *r = cmd("EHLO c");
    ok(strstr(r, "AUTH PLAIN LOGIN") != NULL, "AUTH offered on loopback when allowed");
    fresh(0, 0, 0);
    r = cmd("EHLO c");
    ok(strstr(r, "AUTH") == NULL, "but not to other addresses");
    conf.auth_plaintext_loopback = 0;

    fresh(0, 0, 0);
    s.tls = 1;
    r = cmd("EHLO c");
    ok(strstr(r, "250 AUTH PLAIN LOGIN\r\n") != NULL, "AUTH offered after TLS (last line)");
    ok(strstr(r, "STARTTLS") == NULL, "STARTTLS not offered twice");
    REPLY("AUTH CRAM-MD5", "504 5.5.4", "unknown mechanism");
    REPLY("AUTH PLAIN", "334 ", "PLAIN without initial response");
    is_int(s.state, SS_AUTH_PLAIN, "waiting for the response");
    REPLY("*", "501 5.0.0", "cancelled");
    REPLY("AUTH PLAIN", "334 ", "PLAIN again");
    REPLY("!!!", "501 5.5.2", "bad base64");
    REPLY("AUTH PLAIN", "334 ", "PLAIN again");
    cmd("AGFsaWNlAHdyb25n"); /* \0alice\0wrong */
    is_int(act, SA_AUTH_VERIFY, "response: verify");
    buf_reset(&out);
    act = sess_auth_result(&s, 0, &out);
    ok(starts(out.data, "535 5.7.8"), "535 on bad credentials");
    ok(s.auth_pass[0] == '\0', "password wiped");
    REPLY("AUTH LOGIN", "334 VXNlcm5hbWU6", "LOGIN asks for the user");
    REPLY("YWxpY2U=", "334 UGFzc3dvcmQ6", "then the password");
    is_str(s.auth_user, "alice", "LOGIN user");
    cmd("c2VjcmV0");
    is_int(act, SA_AUTH_VERIFY, "LOGIN: verify");
    is_str(s.auth_pass, "secret", "LOGIN password");
    buf_reset(&out);
    sess_auth_result(&s, -1, &out);
    ok(starts(out.data, "454 4.7.0"), "454 on a temporary failure");
    REPLY("AUTH LOGIN YWxpY2U=", "334 UGFzc3dvcmQ6", "LOGIN with initial user");
    cmd("c2VjcmV0");
    buf_reset(&out);
    sess_auth_result(&s, 1, &out);
    ok(s.authed, "authenticated");
    REPLY("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "503 5.5.1", "AUTH twice");
    /* a user acting as another is refused */
    fresh(0, 0, 0);
    s.tls = 1;
    cmd("EHLO c");
    REPLY("AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==", "501 5.5.2", "authzid differs from authcid");
    /* failures count toward the error limit */
    conf.error_limit = 5;
    fresh(0, 0, 0);
    s.tls = 1;
    cmd("EHLO c");
    for (int i = 0; i < 5; i++) {
        cmd("AUTH PLAIN AGFsaWNlAHdyb25n");
        buf_reset(&out);
        act = sess_auth_result(&s, 0, &out);
    }
    is_int(act, SA_CLOSE, "5 failed AUTH: closed");
    ok(strstr(out.data, "421 4.7.0") != NULL, "421 after the last 535");
}

static void t_starttls(void)
{
    fresh(0, 0, 0);
    REPLY("STARTTLS", "503 5.5.1", "STARTTLS before EHLO");
    cmd("EHLO c");
    cmd("MAIL FROM:<a@b.c>");
    REPLY("STARTTLS", "220 2.0.0", "STARTTLS");
    is_int(act, SA_STARTTLS, "action STARTTLS");
    sess_tls_started(&s, "TLSv1.3 TLS_AES_128_GCM_SHA256");
    ok(s.helo == 0 && !s.in_mail && s.tls, "state reset by TLS");
    REPLY("MAIL FROM:<a@b.c>", "503 5.5.1", "EHLO needed again after TLS");
    cmd("EHLO c");
    REPLY("STARTTLS", "503 5.5.1", "STARTTLS twice");
    conf.tls_available = 0;
    fresh(0, 0, 0);
    cmd("EHLO c");
    ok(strstr(out.data, "STARTTLS") == NULL, "no STARTTLS without a certificate");
    REPLY("STARTTLS", "502 5.5.1", "STARTTLS unavailable");
    conf.tls_available = 1;
}

static void t_data(void)
{
    struct qfile_env env;
    struct qfile_rcpt rc[3];
    struct buf rec;

    fresh(1, 0, 0);
    cmd("EHLO client.test");
    cmd("MAIL FROM:<a@b.c> RET=HDRS ENVID=x1");
    cmd("RCPT TO:<x@y.z> NOTIFY=FAILURE ORCPT=rfc822;x@y.z");
    REPLY("DATA", "354 ", "354");
    is_int(act, SA_DATA, "action DATA");
    is_int(data("Subject: t\r\n\r\nhi\r\n.\r\n"), SA_COMMIT, "message complete: commit");
    sess_envelope(&s, "0000000000000A0000", 5, &env, rc);
    is_str(env.sender, "a@b.c", "envelope sender");
    is_int(env.nrcpt, 1, "envelope rcpt");
    is_int(env.rcpt[0].notify, DSN_NOTIFY_FAILURE, "notify mapped");
    is_str(env.rcpt[0].orcpt, "rfc822;x@y.z", "orcpt");
    is_int(env.ret, DSN_RET_HDRS, "ret");
    is_str(env.envid, "x1", "envid");
    is_str(env.proto, "ESMTP", "proto");
    is_str(env.helo, "client.test", "helo");
    buf_init(&rec);
    sess_received(&s, "0000000000000A0000", 1700000000000000LL, &rec);
    ok(starts(rec.data, "Received: from client.test ([192.0.2.7])\r\n\tby mx.test (Postern) with "
                        "ESMTP id 0000000000000A0000\r\n\tfor <x@y.z>;\r\n\t"),
       "Received header");
    ok(rec.len > 2 && memcmp(rec.data + rec.len - 2, "\r\n", 2) == 0, "ends with CRLF");
    buf_free(&rec);
    buf_reset(&out);
    sess_commit_result(&s, "0000000000000A0000", &out);
    is_str(out.data, "250 2.0.0 Ok: queued as 0000000000000A0000\r\n", "250 queued as");
    ok(!s.in_mail && s.state == SS_CMD, "transaction over");
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    cmd("DATA");
    is_int(data("a\nb\r\n.\r\n"), SA_NONE, "bare LF: refused");
    ok(starts(out.data, "550 5.5.2"), "550 5.5.2 for bare LF");
    ok(!s.in_mail, "transaction reset after refusal");
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    cmd("DATA");
    char *big = xmalloc(20000);
    for (int i = 0; i < 200; i++)
        memcpy(big + i * 80,
               "0123456789012345678901234567890123456789012345678901234567890123456789012345678\n",
               80);
    for (int i = 0; i < 200; i++)
        big[i * 80 + 78] = '\r';
    strcpy(big + 16000, ".\r\n");
    is_int(data(big), SA_NONE, "too big: refused");
    ok(starts(out.data, "552 5.3.4"), "552 for size");
    free(big);
    buf_reset(&out);
    sess_commit_result(&s, NULL, &out);
    ok(starts(out.data, "451 4.3.0"), "451 when the queue write failed");

    /* IPv6 client in Received */
    sess_free(&s);
    sess_init(&s, &conf, "2001:db8::5", 1, 0, 1, 0);
    cmd("EHLO (evil)");
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    cmd("RCPT TO:<w@y.z>");
    buf_init(&rec);
    sess_received(&s, "0000000000000A0000", 0, &rec);
    ok(starts(rec.data, "Received: from ?evil? ([IPv6:2001:db8::5])"), "IPv6 and sanitized HELO");
    ok(strstr(rec.data, "for <") == NULL, "no 'for' with two recipients");
    buf_free(&rec);

    /* a maildrop file: the user's id, no client */
    fresh(1, 0, 1);
    sess_set_maildrop(&s, 1000);
    cmd("EHLO localhost");
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    buf_init(&rec);
    sess_received(&s, "0000000000000B0000", 0, &rec);
    ok(starts(rec.data, "Received: by mx.test (Postern, from userid 1000)\r\n"
                        "\tid 0000000000000B0000\r\n\tfor <x@y.z>;\r\n\t"),
       "maildrop: Received names the user id");
    ok(strstr(rec.data, "127.0.0.1") == NULL && strstr(rec.data, "localhost") == NULL,
       "maildrop: and no client");
    buf_free(&rec);
}

static void t_b64(void)
{
    unsigned char o[64];
    char u[16], p[16];

    is_int(sess_b64_decode("YWJj", 4, o, sizeof(o)), 3, "abc");
    is_int(sess_b64_decode("YWI=", 4, o, sizeof(o)), 2, "ab with padding");
    is_int(sess_b64_decode("YWI", 3, o, sizeof(o)), 2, "ab without padding");
    is_int(sess_b64_decode("Y", 1, o, sizeof(o)), -1, "one char");
    is_int(sess_b64_decode("YW=I", 4, o, sizeof(o)), -1, "padding inside");
    is_int(sess_b64_decode("YWJj", 4, o, 2), -1, "too long for the buffer");
    is_int(sess_b64_decode("", 0, o, sizeof(o)), 0, "empty");
    ok(sess_plain_split((const unsigned char *)"\0u\0p", 4, u, sizeof(u), p, sizeof(p)) == 0 &&
           strcmp(u, "u") == 0 && strcmp(p, "p") == 0,
       "plain split");
    ok(sess_plain_split((const unsigned char *)"u\0u\0p", 5, u, sizeof(u), p, sizeof(p)) == 0,
       "authzid equal to authcid");
    ok(sess_plain_split((const unsigned char *)"\0u\0", 3, u, sizeof(u), p, sizeof(p)) == -1,
       "empty password");
    ok(sess_plain_split((const unsigned char *)"\0u", 2, u, sizeof(u), p, sizeof(p)) == -1,
       "missing separator");
    ok(sess_plain_split((const unsigned char *)"\0u\nx\0p", 6, u, sizeof(u), p, sizeof(p)) == -1,
       "control character in user");
}

/* A BDAT chunk as the server moves it: act must be SA_BDAT; the octets go
 * to the decoder (unless refused), then the chunk's end. *msg collects
 * the message. */
static const char *chunk(const char *line, const char *octets, struct buf *msg)
{
    cmd(line);
    if (!ok(act == SA_BDAT, "%s: read the chunk", line))
        return out.data;
    ok(s.bdat_left == strlen(octets), "%s: size %zu", line, strlen(octets));
    if (!s.bdat_refuse)
        data_dec_feed(&s.dec, octets, strlen(octets), msg);
    s.bdat_left = 0;
    if (!s.bdat_refuse && s.bdat_last)
        data_dec_finish(&s.dec, msg);
    buf_reset(&out);
    act = sess_bdat_end(&s, &out);
    return out.data;
}

#define CHUNK(line, octets, want, name)                                                            \
    do {                                                                                           \
        const char *r_ = chunk(line, octets, &msg);                                                \
        if (!ok(starts(r_, want), "%s", name))                                                     \
            diag("got: %s", r_);                                                                   \
    } while (0)

static void t_bdat(void)
{
    struct buf msg;
    const char *r;

    buf_init(&msg);
    conf.chunking = 1;
    fresh(1, 0, 0);
    r = cmd("EHLO c");
    ok(strstr(r, "250-CHUNKING\r\n") != NULL, "CHUNKING offered when on");
    REPLY("HELP", "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT", "HELP lists BDAT when on");
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    CHUNK("BDAT 9", "Subject: ", "250 2.0.0 Ok: 9 octets", "first chunk");
    ok(s.bdat_msg && act == SA_NONE, "the message goes on");
    REPLY("RCPT TO:<w@y.z>", "503 5.5.1", "RCPT between chunks");
    REPLY("DATA", "503 5.5.1", "DATA after BDAT");
    CHUNK("BDAT 11", "x\r\n\r\n.dot\r\n", "250 2.0.0", "second chunk: a dot line is not an end");
    CHUNK("bdat 4 last", "tail", "", "LAST chunk");
    is_int(act, SA_COMMIT, "LAST: commit");
    is_int(msg.len, 26, "the message: all octets, CR LF added to the unterminated last line");
    ok(msg.len == 26 && memcmp(msg.data, "Subject: x\r\n\r\n.dot\r\ntail\r\n", 26) == 0,
       "nothing unstuffed, nothing lost");
    buf_reset(&out);
    sess_commit_result(&s, "ID1", &out);
    ok(starts(out.data, "250 2.0.0 Ok: queued as ID1") && !s.bdat_msg, "queued, message over");

    /* chunks that are read and refused */
    buf_reset(&msg);
    fresh(1, 0, 0);
    cmd("HELO c");
    CHUNK("BDAT 3 LAST", "abc", "503 5.5.1", "BDAT after HELO refused after its octets");
    cmd("EHLO c");
    CHUNK("BDAT 3", "abc", "503 5.5.1 Error: need MAIL", "BDAT before MAIL");
    cmd("MAIL FROM:<a@b.c>");
    CHUNK("BDAT 3", "abc", "503 5.5.1 Error: need RCPT", "BDAT before RCPT");
    ok(msg.len == 0 && !s.bdat_msg, "refused chunks are not the message");
    CHUNK("BDAT 0 LAST", "", "503 5.5.1", "BDAT 0 LAST before RCPT");

    /* a chunk over the size limit fails the transaction; the rest of a
     * pipelined message is read, refused, not counted as errors */
    fresh(1, 0, 0);
    cmd("EHLO c");
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    {
        char big[10010];
        memset(big, 'a', sizeof(big) - 1);
        for (size_t i = 80; i < sizeof(big) - 1; i += 80) {
            big[i - 1] = '\r';
            big[i] = '\n';
        }
        big[sizeof(big) - 1] = '\0';
        CHUNK("BDAT 10009", big, "552 5.3.4", "a chunk past message_size_limit: 552");
    }
    unsigned errs = s.errors;
    CHUNK("BDAT 5", "hello", "503 5.5.1 Error: an earlier chunk", "next chunk refused");
    CHUNK("BDAT 2 LAST", "\r\n", "503 5.5.1", "and the last");
    is_int(s.errors, errs, "pipelined chunks after a refusal are not errors");
    REPLY("MAIL FROM:<a@b.c>", "250 2.1.0", "a new transaction after the LAST chunk");
    cmd("RCPT TO:<x@y.z>");
    CHUNK("BDAT 7 LAST", "a\nb\r\n\r\n", "550 5.5.2", "bare LF in a chunk: refused");
    REPLY("MAIL FROM:<a@b.c>", "250 2.1.0", "MAIL after a refused last chunk");
    cmd("RCPT TO:<x@y.z>");
    CHUNK("BDAT 4", "ab\r\r", "550 5.5.2", "a bare CR: refused at its chunk");
    CHUNK("BDAT 3 LAST", "\ncd", "503 5.5.1", "the rest is refused");
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    buf_reset(&msg);
    CHUNK("BDAT 3", "ab\r", "250", "CR at the end of a chunk");
    CHUNK("BDAT 3 LAST", "\ncd", "", "LF at the start of the next: one CR LF");
    ok(act == SA_COMMIT && msg.len == 8 && memcmp(msg.data, "ab\r\ncd\r\n", 8) == 0,
       "a CR LF split across chunks is one line end");
    buf_reset(&out);
    sess_commit_result(&s, "ID2", &out);
    /* RSET between chunks drops the message */
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    CHUNK("BDAT 2", "ab", "250", "chunk");
    REPLY("RSET", "250 2.0.0", "RSET mid-message");
    ok(!s.bdat_msg && !s.in_mail, "RSET ends the message");
    /* a size that cannot be read ends the session */
    fresh(1, 0, 0);
    cmd("EHLO c");
    REPLY("BDAT x", "501 5.5.4", "BDAT without a size");
    is_int(act, SA_CLOSE, "and the session ends");
    fresh(1, 0, 0);
    cmd("EHLO c");
    REPLY("BDAT 10 LASTX", "501 5.5.4", "BDAT with a bad keyword");
    is_int(act, SA_CLOSE, "closes");
    fresh(1, 0, 0);
    cmd("EHLO c");
    REPLY("BDAT 12345678901234567890", "501 5.5.4", "BDAT with 20 digits");
    fresh(1, 0, 0);
    cmd("EHLO c");
    cmd("BDAT 1234567890123456789");
    ok(act == SA_BDAT && s.bdat_left == 1234567890123456789ull, "19 digits are read");
    conf.chunking = 0;
    fresh(1, 0, 0);
    r = cmd("EHLO c");
    ok(strstr(r, "CHUNKING") == NULL, "CHUNKING not offered when off");
    buf_free(&msg);
}

static void t_long_lines(void)
{
    char body[1300];

    memset(body, 'x', 1100);
    strcpy(body + 1100, "\r\n.\r\n");
    fresh(1, 0, 0);
    cmd("EHLO c");
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    cmd("DATA");
    is_int(data(body), SA_NONE, "a line over 998 octets from a sender: refused");
    ok(starts(out.data, "550 5.5.2"), "550 5.5.2");
    cmd("MAIL FROM:<>");
    cmd("RCPT TO:<x@y.z>");
    cmd("DATA");
    ok(s.dec.fold, "the null sender's message is folded, not refused");
    is_int(data(body), SA_COMMIT, "and taken");
    is_int(s.dec.folded, 1, "one line cut");
    buf_reset(&out);
    sess_commit_result(&s, "ID", &out);
    cmd("MAIL FROM:<a@b.c>");
    cmd("RCPT TO:<x@y.z>");
    cmd("DATA");
    ok(!s.dec.fold, "the next sender's is not");
}

static void t_postmaster(void)
{
    struct qfile_env env;
    struct qfile_rcpt rc[4];

    conf.postmaster = "admin@postern.test";
    fresh(0, 0, 0); /* a client outside mynetworks */
    cmd("EHLO c");
    cmd("MAIL FROM:<a@b.c>");
    REPLY("RCPT TO:<x@y.z>", "554 5.7.1", "no relay for others");
    REPLY("RCPT TO:<PostMaster>", "250 2.1.5", "RCPT TO:<postmaster> from anyone (RFC 5321 4.5.1)");
    sess_envelope(&s, "ID", 0, &env, rc);
    ok(env.nrcpt == 1 && strcmp(env.rcpt[0].addr, "admin@postern.test") == 0,
       "queued for the configured postmaster");
    REPLY("RCPT TO:<postmaster@elsewhere.test>", "554 5.7.1", "postmaster@other is relaying");
    REPLY("RCPT TO:<postmasterx>", "501 5.1.3", "only the exact name");
    conf.postmaster = NULL;
    fresh(1, 0, 0);
    cmd("EHLO c");
    cmd("MAIL FROM:<a@b.c>");
    REPLY("RCPT TO:<postmaster>", "250 2.1.5", "without a configured postmaster");
    ok(s.nrcpt == 1 && strcmp(s.rcpt[0].addr, "postmaster") == 0, "it stays postmaster");
}

int main(void)
{
    plan_lazy();
    buf_init(&out);
    t_order();
    t_relay();
    t_limits();
    t_utf8();
    t_auth();
    t_starttls();
    t_data();
    t_bdat();
    t_postmaster();
    t_long_lines();
    t_b64();
    sess_free(&s);
    buf_free(&out);
    return done_testing();
}
