/*
 * smtpd_parse - unit tests of the SMTP command parser (smtpd/smtp_parse.c)
 * and the shared address/parameter helpers (common/mail/smtp_addr.c).
 */
#include <string.h>

#include "../../smtpd/smtp_parse.h"
#include "tap.h"

static struct smtp_cmd cmd;

static int parse(const char *s)
{
    return smtp_parse(s, strlen(s), &cmd);
}

static void t_verbs(void)
{
    is_int(parse("EHLO client.example"), 0, "EHLO");
    is_int(cmd.verb, SMTP_V_EHLO, "EHLO verb");
    ok(cmd.arg_len == 14 && memcmp(cmd.arg, "client.example", 14) == 0, "EHLO arg");
    is_int(parse("ehlo [192.0.2.1]"), 0, "lower case verb");
    is_int(parse("HELO x"), 0, "HELO");
    is_int(cmd.verb, SMTP_V_HELO, "HELO verb");
    is_int(parse("EHLO"), -1, "EHLO without name");
    is_int(cmd.code, 501, "EHLO without name: 501");
    is_int(parse("DATA"), 0, "DATA");
    is_int(parse("DATA x"), -1, "DATA with arg");
    is_int(cmd.code, 501, "DATA with arg: 501");
    is_int(parse("RSET"), 0, "RSET");
    is_int(parse("QUIT  "), 0, "QUIT with trailing blanks");
    is_int(parse("NOOP anything at all"), 0, "NOOP with arg");
    is_int(parse("VRFY bob"), 0, "VRFY");
    is_int(cmd.verb, SMTP_V_VRFY, "VRFY verb");
    is_int(parse("VRFY"), -1, "VRFY without arg");
    is_int(parse("STARTTLS"), 0, "STARTTLS");
    is_int(parse("STARTTLS now"), -1, "STARTTLS with arg");
    is_int(parse("HELP"), 0, "HELP");
    is_int(parse("EXPN list"), 0, "EXPN parses (the session says 502)");
    is_int(parse("FOO bar"), -1, "unknown verb");
    is_int(cmd.code, 500, "unknown verb: 500");
    is_str(cmd.enh, "5.5.2", "unknown verb: 5.5.2");
    is_int(parse("MAILFROM:<a@b.c>"), -1, "glued verb is unknown");
    is_int(parse(""), -1, "empty line");
    is_int(smtp_parse("NOOP\0x", 6, &cmd), -1, "NUL in command");
    is_int(parse("NOOP \r"), -1, "CR in command");
    is_int(parse("AUTH PLAIN"), 0, "AUTH mech");
    ok(cmd.arg_len == 5 && cmd.arg2 == NULL, "AUTH without initial response");
    is_int(parse("AUTH PLAIN AGFsaWNlAHNlY3JldA=="), 0, "AUTH with initial response");
    ok(cmd.arg2_len == 20, "initial response span");
    is_int(parse("AUTH PLAIN a b"), -1, "AUTH with two responses");
    is_int(parse("AUTH"), -1, "AUTH without mechanism");
}

static void t_mail(void)
{
    is_int(parse("MAIL FROM:<alice@example.com>"), 0, "MAIL");
    is_str(cmd.addr, "alice@example.com", "MAIL addr");
    is_int(cmd.addr_flags, 0, "MAIL flags");
    is_int(parse("mail from: <alice@example.com>"), 0, "space after colon tolerated");
    is_int(parse("MAIL FROM:<>"), 0, "null sender");
    ok(cmd.addr_flags & SMTP_PATH_NULL, "null sender flag");
    is_str(cmd.addr, "", "null sender addr");
    is_int(parse("MAIL FROM:alice@example.com"), -1, "no brackets");
    is_str(cmd.enh, "5.1.7", "bad sender: 5.1.7");
    is_int(parse("MAIL TO:<a@b.c>"), -1, "MAIL TO");
    is_int(cmd.code, 501, "MAIL TO: 501");
    is_int(parse("MAIL FROM:<a@b.c> SIZE=1000 BODY=8BITMIME"), 0, "SIZE and BODY");
    ok(cmd.has_size && cmd.size == 1000, "SIZE value");
    is_int(cmd.body, SMTP_BODY_8BITMIME, "BODY value");
    is_int(parse("MAIL FROM:<a@b.c> body=7bit"), 0, "BODY=7BIT lower case");
    is_int(cmd.body, SMTP_BODY_7BIT, "BODY 7BIT");
    is_int(parse("MAIL FROM:<a@b.c> BODY=BINARYMIME"), -1, "BINARYMIME not offered");
    is_int(parse("MAIL FROM:<a@b.c> SIZE=abc"), -1, "bad SIZE");
    is_int(parse("MAIL FROM:<a@b.c> SIZE=99999999999999999999"), 0, "huge SIZE saturates");
    ok(cmd.size > 1000000000000ULL, "huge SIZE is huge");
    is_int(parse("MAIL FROM:<a@b.c> SIZE=999999999999999999999"), -1, "21-digit SIZE");
    is_int(parse("MAIL FROM:<a@b.c> FOO=bar"), -1, "unknown parameter");
    is_int(cmd.code, 555, "unknown parameter: 555");
    is_int(parse("MAIL FROM:<a@b.c> RET=HDRS ENVID=abc+2Bdef"), 0, "RET and ENVID");
    is_int(cmd.ret, DSN_RET_HDRS, "RET value");
    is_str(cmd.envid, "abc+2Bdef", "ENVID kept as xtext");
    is_int(parse("MAIL FROM:<a@b.c> RET=FULL RET=HDRS"), -1, "duplicate RET");
    is_int(parse("MAIL FROM:<a@b.c> ENVID=a+2"), -1, "bad xtext");
    is_int(parse("MAIL FROM:<a@b.c> ENVID=a+0A"), -1, "ENVID decoding to a control char");
    is_int(parse("MAIL FROM:<a@b.c> AUTH=<>"), 0, "AUTH=<> accepted");
    is_int(parse("MAIL FROM:<a@b.c>SIZE=10"), -1, "no space before parameter");
    is_int(parse("MAIL FROM:<a@b.c> SIZE"), -1, "SIZE without value");
    is_int(parse("MAIL FROM:<a@b.c> SMTPUTF8=yes"), -1, "SMTPUTF8 with value");
    is_int(parse("MAIL FROM:<\xc3\xa9l\xc3\xa8ve@exemple.fr> SMTPUTF8"), 0, "UTF-8 sender");
    ok(cmd.smtputf8, "SMTPUTF8 flag");
    ok(cmd.addr_flags & SMTP_PATH_UTF8, "UTF-8 flag on address");
    is_int(parse("MAIL FROM:<\xc3\xa9@exemple.fr>"), 0,
           "UTF-8 sender parses; the session requires SMTPUTF8");
    ok(cmd.addr_flags & SMTP_PATH_UTF8, "UTF-8 flagged");
    is_int(parse("MAIL FROM:<\xc3\x28@exemple.fr> SMTPUTF8"), -1, "invalid UTF-8");
    is_int(parse("MAIL FROM:<\xc0\xaf@exemple.fr> SMTPUTF8"), -1, "overlong UTF-8");
    is_int(parse("MAIL FROM:<@relay.example,@r2.example:bob@example.com>"), 0, "source route");
    is_str(cmd.addr, "bob@example.com", "source route dropped");
    is_int(parse("MAIL FROM:<\"john doe\"@example.com>"), 0, "quoted local part");
    is_str(cmd.addr, "\"john doe\"@example.com", "quoted kept");
    is_int(parse("MAIL FROM:<a@[192.0.2.1]>"), 0, "IPv4 literal");
    is_int(parse("MAIL FROM:<a@[IPv6:2001:db8::1]>"), 0, "IPv6 literal");
    is_int(parse("MAIL FROM:<a@[999.0.0.1]>"), -1, "bad IPv4 literal");
    is_int(parse("MAIL FROM:<a@-bad.example>"), -1, "label starting with hyphen");
    is_int(parse("MAIL FROM:<a@bad..example>"), -1, "empty label");
    is_int(parse("MAIL FROM:<a@example.com.>"), -1, "trailing dot");
    is_int(parse("MAIL FROM:<a b@example.com>"), -1, "space in address");
    is_int(parse("MAIL FROM:<a@b.c"), -1, "missing >");
    is_int(parse("MAIL FROM:<postmaster>"), -1, "no domain");
    char big[700];
    memset(big, 0, sizeof(big));
    strcpy(big, "MAIL FROM:<");
    memset(big + 11, 'a', 600);
    strcat(big, "@b.c>");
    is_int(parse(big), -1, "address too long");
}

static void t_rcpt(void)
{
    char nb[32];

    is_int(parse("RCPT TO:<bob@example.net>"), 0, "RCPT");
    is_str(cmd.addr, "bob@example.net", "RCPT addr");
    is_int(parse("RCPT TO:<>"), -1, "null recipient");
    is_str(cmd.enh, "5.1.3", "bad recipient: 5.1.3");
    is_int(parse("RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40x"), 0,
           "NOTIFY and ORCPT");
    is_int(cmd.notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, "NOTIFY bits");
    is_str(dsn_notify_format(cmd.notify, nb, sizeof(nb)), "SUCCESS,FAILURE", "NOTIFY text");
    is_str(cmd.orcpt, "rfc822;bob+40x", "ORCPT raw");
    is_int(parse("RCPT TO:<b@x.y> NOTIFY=NEVER"), 0, "NOTIFY=NEVER");
    is_int(cmd.notify, DSN_NOTIFY_NEVER, "NEVER bit");
    is_int(parse("RCPT TO:<b@x.y> NOTIFY=NEVER,SUCCESS"), -1, "NEVER with others");
    is_int(parse("RCPT TO:<b@x.y> NOTIFY=SUCCESS,"), -1, "trailing comma");
    is_int(parse("RCPT TO:<b@x.y> NOTIFY=SOMETIMES"), -1, "bad NOTIFY");
    is_int(parse("RCPT TO:<b@x.y> ORCPT=bob@x.y"), -1, "ORCPT without type");
    is_int(parse("RCPT TO:<b@x.y> ORCPT=utf-8;\xc3\xa9@x.y"), 0, "utf-8 ORCPT");
    is_int(parse("RCPT TO:<b@x.y> SIZE=10"), -1, "MAIL parameter on RCPT");
    is_int(cmd.code, 555, "RCPT unknown parameter: 555");
    is_int(parse("RCPT FROM:<b@x.y>"), -1, "RCPT FROM");
}

static void t_xtext(void)
{
    char out[64];

    ok(smtp_xtext_valid("abc+2B", 6), "valid xtext");
    ok(!smtp_xtext_valid("abc+2b", 6), "lower-case hex invalid");
    ok(!smtp_xtext_valid("a=b", 3), "= invalid");
    ok(!smtp_xtext_valid("ab+", 3), "truncated escape");
    is_int(smtp_xtext_decode("a+2Bb", 5, out, sizeof(out)), 3, "decode length");
    is_str(out, "a+b", "decoded");
    is_int(smtp_xtext_encode("a+b=c d", 7, out, sizeof(out)), 13, "encode length");
    is_str(out, "a+2Bb+3Dc+20d", "encoded");
    is_int(smtp_xtext_encode("a+b", 3, out, 4), -1, "encode overflow");
    ok(smtp_utf8_valid((const unsigned char *)"\xe2\x82\xac", 3), "euro sign");
    ok(!smtp_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3), "surrogate");
    ok(!smtp_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4), "above U+10FFFF");
}

int main(void)
{
    plan_lazy();
    t_verbs();
    t_mail();
    t_rcpt();
    t_xtext();
    return done_testing();
}
