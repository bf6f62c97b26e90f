/*
 * mail_mta_sts - the MTA-STS text formats (common/mail/mta_sts.c): the
 * TXT record, the policy file (RFC 8461 examples, LF and CR LF, every
 * required field and its bounds, hostile bytes) and MX pattern matching.
 */
#include "mail/mta_sts.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static int txt(const char *s, char *id)
{
    char why[128];
    return sts_txt_parse(s, id, why, sizeof(why));
}

static void test_txt(void)
{
    char id[STS_ID_MAX + 1], why[128];

    is_int(txt("v=STSv1; id=20160831085700Z;", id), 1, "RFC 8461 3.1 example");
    is_str(id, "20160831085700Z", "its id");
    is_int(txt("v=STSv1;id=abc", id), 1, "no blanks, no final ';'");
    is_str(id, "abc", "id abc");
    is_int(txt("v=STSv1 ;  id=x1 ; ", id), 1, "blanks around ';'");
    is_str(id, "x1", "id x1");
    is_int(txt("v=STSv1; ext_1=foo; id=Z9", id), 1, "an extension field is ignored");
    is_str(id, "Z9", "and the id after it is found");
    is_int(txt("v=STSv1; id=abc; future.key=v-1", id), 1, "an extension after the id");
    is_int(txt("v=spf1 -all", id), 0, "an SPF record is not ours");
    is_int(txt("v=STSv10; id=1", id), 0, "another version is not ours");
    is_int(txt(" v=STSv1; id=1", id), 0, "v= must come first, without blanks");
    is_int(txt("id=1; v=STSv1", id), 0, "id before v= is not an STSv1 record");
    is_int(txt("v=stsv1; id=1", id), 0, "the version is case-sensitive");
    is_int(sts_txt_parse("v=STSv1", id, why, sizeof(why)), -1, "no id: malformed");
    ok(strstr(why, "no id") != NULL, "why says so: %s", why);
    is_int(txt("v=STSv1;", id), -1, "only the version: malformed");
    is_int(txt("v=STSv1; id=", id), -1, "empty id");
    is_int(txt("v=STSv1; id=abc-def", id), -1, "a hyphen in the id");
    is_int(txt("v=STSv1; id=123456789012345678901234567890123", id), -1, "an id of 33 characters");
    is_int(txt("v=STSv1; id=12345678901234567890123456789012", id), 1, "an id of 32 characters");
    is_int(txt("v=STSv1; id=1; id=2", id), -1, "two ids");
    is_int(txt("v=STSv1; id=1 x", id), -1, "junk after a field");
    is_int(txt("v=STSv1; id=1;; x=1", id), -1, "an empty field in the middle");
    is_int(txt("v=STSv1; junk; id=1", id), -1, "a field without '='");
    is_int(txt("v=STSv1; id=a\\000b", id), -1, "a NUL (as dnsd writes it, \\000) in the id");
    is_int(txt("v=STSv1; id=ab\xc3\xa9", id), -1, "non-ASCII in the id");
}

static int pol(const char *s, struct sts_policy *p, char *why, size_t whylen)
{
    return sts_policy_parse(s, strlen(s), p, why, whylen);
}

static void test_policy(void)
{
    struct sts_policy p;
    char why[160], big[STS_POLICY_MAX + 2];
    static const char rfc[] = "version: STSv1\r\n"
                              "mode: enforce\r\n"
                              "mx: mail.example.com\r\n"
                              "mx: *.example.net\r\n"
                              "mx: backupmx.example.com\r\n"
                              "max_age: 604800\r\n";

    is_int(pol(rfc, &p, why, sizeof(why)), 0, "RFC 8461 3.2 example (CR LF)");
    is_int(p.mode, DNS_STS_MODE_ENFORCE, "mode enforce");
    is_int(p.max_age, 604800, "max_age");
    is_int(p.nmx, 3, "three mx");
    is_str(p.mx[0], "mail.example.com", "first mx");
    is_str(p.mx[1], "*.example.net", "wildcard mx");
    is_int(pol("version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age: 86400\n", &p, why,
               sizeof(why)),
           0, "LF line ends");
    is_int(p.mode, DNS_STS_MODE_TESTING, "mode testing");
    is_str(p.mx[0], "mx.example.com", "mx kept in lower case, without the final dot");
    is_int(pol("version: STSv1\nmode: none\nmax_age: 0", &p, why, sizeof(why)), 0,
           "mode none needs no mx; no final line end; max_age 0");
    is_int(p.mode, DNS_STS_MODE_NONE, "mode none");
    is_int(pol("version:STSv1\nmode :enforce \t\nmx:\ta.example\nmax_age: 31557600\n", &p, why,
               sizeof(why)),
           0, "blanks around ':' and at the end of a line");
    is_int(p.max_age, 31557600, "max_age at its upper bound");
    is_int(pol("version: STSv1\nmode: enforce\nfoo: bar baz\nmx: a.example\nmax_age: 5\n", &p, why,
               sizeof(why)),
           0, "an unknown key is ignored");
    is_int(pol("version: STSv1\r\nmode: enforce\nmx: a.example\r\n\r\nmax_age: 5\n", &p, why,
               sizeof(why)),
           0, "mixed line ends and a blank line");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.example\nmx: A.example\nmax_age: 5\n", &p, why,
               sizeof(why)),
           0, "a duplicate mx");
    is_int(p.nmx, 1, "is kept once");

    is_int(pol("mode: enforce\nmx: a.example\nmax_age: 5\n", &p, why, sizeof(why)), -1,
           "no version");
    ok(strstr(why, "version") != NULL, "why: %s", why);
    is_int(pol("mode: enforce\nversion: STSv1\nmx: a.example\nmax_age: 5\n", &p, why, sizeof(why)),
           -1, "version not first");
    is_int(pol("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 5\n", &p, why, sizeof(why)),
           -1, "another version");
    is_int(pol("version: STSv1\nversion: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\n", &p,
               why, sizeof(why)),
           -1, "two versions");
    is_int(
        pol("version: STSv1\nmode: enforcing\nmx: a.example\nmax_age: 5\n", &p, why, sizeof(why)),
        -1, "bad mode");
    ok(strstr(why, "line 2") != NULL && strstr(why, "mode") != NULL, "why names the line: %s", why);
    is_int(pol("version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 5\n", &p, why,
               sizeof(why)),
           -1, "two modes");
    is_int(pol("version: STSv1\nmx: a.example\nmax_age: 5\n", &p, why, sizeof(why)), -1, "no mode");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.example\n", &p, why, sizeof(why)), -1,
           "no max_age");
    is_int(pol("version: STSv1\nmode: enforce\nmax_age: 5\n", &p, why, sizeof(why)), -1,
           "enforce without mx");
    is_int(pol("version: STSv1\nmode: testing\nmax_age: 5\n", &p, why, sizeof(why)), -1,
           "testing without mx");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", &p, why,
               sizeof(why)),
           -1, "max_age one over the bound");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999\n", &p, why,
               sizeof(why)),
           -1, "max_age of 11 digits");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", &p, why, sizeof(why)),
           -1, "negative max_age");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n", &p, why, sizeof(why)),
           -1, "max_age with a unit");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.example\nmax_age:\n", &p, why, sizeof(why)),
           -1, "empty max_age");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\nmax_age: 6\n", &p, why,
               sizeof(why)),
           -1, "two max_age");
    is_int(pol("version: STSv1\nmode: enforce\nmx: *\nmax_age: 5\n", &p, why, sizeof(why)), -1,
           "mx * alone");
    is_int(
        pol("version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 5\n", &p, why, sizeof(why)),
        -1, "mx *.*.example");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 5\n", &p, why, sizeof(why)),
           -1, "mx with an empty label");
    is_int(
        pol("version: STSv1\nmode: enforce\nmx: a.example..\nmax_age: 5\n", &p, why, sizeof(why)),
        -1, "mx with two final dots");
    is_int(pol("version: STSv1\nmode: enforce\nmx: .\nmax_age: 5\n", &p, why, sizeof(why)), -1,
           "mx of the root");
    is_int(pol("version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 5\n", &p, why, sizeof(why)),
           -1, "mx label starting with a hyphen");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.example a.other\nmax_age: 5\n", &p, why,
               sizeof(why)),
           -1, "two names on one mx line");
    is_int(
        pol("version: STSv1\nmode: enforce\nmx: mx_1.example\nmax_age: 5\n", &p, why, sizeof(why)),
        -1, "an underscore in an mx");
    is_int(pol("version: STSv1\nmode: enforce\njunk\nmx: a.example\nmax_age: 5\n", &p, why,
               sizeof(why)),
           -1, "a line without ':'");
    is_int(pol("version: STSv1\nmode: enforce\n: x\nmx: a.example\nmax_age: 5\n", &p, why,
               sizeof(why)),
           -1, "a line without a key");
    is_int(pol("<html><body>hello</body></html>\n", &p, why, sizeof(why)), -1, "an HTML page");
    is_int(pol("", &p, why, sizeof(why)), -1, "empty text");
    is_int(pol("version: STSv1\nmode: enforce\rmx: a.example\nmax_age: 5\n", &p, why, sizeof(why)),
           -1, "a lone CR");
    is_int(pol("version: STSv1\nmode: enforce\nmx: a.\xc3\xa9xample\nmax_age: 5\n", &p, why,
               sizeof(why)),
           -1, "non-ASCII bytes");
    is_int(pol("version: STSv1\nmode: enforce\nx: \x01\nmx: a.example\nmax_age: 5\n", &p, why,
               sizeof(why)),
           -1, "a control byte, even in an unknown field");
    {
        static const char nul[] = "version: STSv1\nmode: enforce\nmx: a.example\0b\nmax_age: 5\n";
        is_int(sts_policy_parse(nul, sizeof(nul) - 1, &p, why, sizeof(why)), -1,
               "a NUL byte inside a line");
        ok(strstr(why, "line 3") != NULL, "why names the line: %s", why);
        static const char nul_end[] = "version: STSv1\nmode: none\nmax_age: 5\n\0";
        is_int(sts_policy_parse(nul_end, sizeof(nul_end) - 1, &p, why, sizeof(why)), -1,
               "a NUL byte after the last line");
    }
    {
        struct buf b;
        buf_init(&b);
        buf_adds(&b, "version: STSv1\nmode: enforce\nmax_age: 60\n");
        for (int i = 0; i < DNS_MAX_STS_MX; i++)
            buf_printf(&b, "mx: mx%d.example\n", i);
        is_int(sts_policy_parse(b.data, b.len, &p, why, sizeof(why)), 0, "32 mx patterns");
        is_int(p.nmx, DNS_MAX_STS_MX, "all kept");
        buf_adds(&b, "mx: one-more.example\n");
        is_int(sts_policy_parse(b.data, b.len, &p, why, sizeof(why)), -1, "33 mx patterns");
        ok(strstr(why, "more mx") != NULL, "why: %s", why);
        buf_free(&b);
    }
    memset(big, ' ', sizeof(big));
    {
        static const char head[] = "version: STSv1\nmode: none\nmax_age: 5\nx:";
        memcpy(big, head, sizeof(head) - 1);
    }
    is_int(sts_policy_parse(big, STS_POLICY_MAX + 1, &p, why, sizeof(why)), -1,
           "longer than STS_POLICY_MAX");
    big[STS_POLICY_MAX - 2] = '1';
    big[STS_POLICY_MAX - 1] = '\n';
    is_int(sts_policy_parse(big, STS_POLICY_MAX, &p, why, sizeof(why)), 0,
           "exactly STS_POLICY_MAX bytes");
    {
        char name[300];
        memset(name, 'a', sizeof(name));
        snprintf(name + 250, sizeof(name) - 250, ".example");
        char *t = xasprintf("version: STSv1\nmode: enforce\nmx: %s\nmax_age: 5\n", name);
        is_int(pol(t, &p, why, sizeof(why)), -1, "an mx name longer than 253");
        free(t);
    }
}

static void test_match(void)
{
    is_int(sts_mx_match("mail.example.com", "mail.example.com"), 1, "exact");
    is_int(sts_mx_match("mail.example.com", "MAIL.Example.Com"), 1, "case-insensitive");
    is_int(sts_mx_match("mail.example.com.", "mail.example.com"), 1, "final dot on the pattern");
    is_int(sts_mx_match("mail.example.com", "mail.example.com."), 1, "final dot on the host");
    is_int(sts_mx_match("mail.example.com", "mail.example.co"), 0, "a shorter host");
    is_int(sts_mx_match("mail.example.com", "xmail.example.com"), 0, "a longer host");
    is_int(sts_mx_match("*.example.com", "mx.example.com"), 1, "wildcard, one label");
    is_int(sts_mx_match("*.example.com", "MX.EXAMPLE.COM."), 1, "wildcard, case and final dot");
    is_int(sts_mx_match("*.example.com", "example.com"), 0, "wildcard does not match the base");
    is_int(sts_mx_match("*.example.com", "a.b.example.com"), 0, "nor two labels");
    is_int(sts_mx_match("*.example.com", ".example.com"), 0, "nor an empty label");
    is_int(sts_mx_match("*.example.com", "mx.example.com.evil"), 0, "suffix after the base");
    is_int(sts_mx_match("*.example.com", "mxexample.com"), 0, "no dot before the base");
    is_int(sts_mx_match("*", "example"), 0, "* alone matches nothing");
    is_int(sts_mx_match("*", "*"), 0, "not even itself");
    is_int(sts_mx_match("*.", "a."), 0, "*. matches nothing");
    is_int(sts_mx_match("*mx.example.com", "amx.example.com"), 0, "* must be a whole label");
    is_int(sts_mx_match("", ""), 0, "empty pattern");
    is_int(sts_mx_match("a.example", ""), 0, "empty host");
    {
        struct sts_policy p = {.nmx = 2};
        strcpy(p.mx[0], "mx1.example.org");
        strcpy(p.mx[1], "*.example.net");
        is_int(sts_policy_mx_ok(&p, "mx1.example.org"), 1, "policy: first pattern");
        is_int(sts_policy_mx_ok(&p, "a.example.net"), 1, "policy: second pattern");
        is_int(sts_policy_mx_ok(&p, "mx2.example.org"), 0, "policy: none matches");
    }
}

int main(void)
{
    plan_lazy();
    test_txt();
    test_policy();
    test_match();
    return done_testing();
}
