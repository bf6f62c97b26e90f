/*
 * sendmail_addrlist - unit tests of the RFC 5322 address-list parser
 * (sendmail/addrlist.c) that sendmail -t reads To:, Cc: and Bcc: with.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../sendmail/addrlist.h"
#include "tap.h"

/* Parse s; return the addresses joined by " | " (domain-less ones as
 * "local@-"), or "ERR: why @offset". */
static char *parse(const char *s, size_t max)
{
    static char out[2048];
    struct addrlist l;
    const char *why;
    size_t where;

    addrlist_init(&l);
    out[0] = '\0';
    if (addrlist_parse(&l, s, strlen(s), max, &why, &where) < 0) {
        snprintf(out, sizeof(out), "ERR: %s @%zu", why, where);
        addrlist_free(&l);
        return out;
    }
    for (size_t i = 0; i < l.n; i++) {
        char *a = addr_format(&l.v[i], "-");
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? " | " : "", a);
        free(a);
    }
    addrlist_free(&l);
    return out;
}

#define P(s) parse((s), 1000)

static void t_plain(void)
{
    is_str(P("a@example.com"), "a@example.com", "bare addr-spec");
    is_str(P("  a@example.com  "), "a@example.com", "blanks around");
    is_str(P("a@example.com, b@example.org"), "a@example.com | b@example.org", "two");
    is_str(P(""), "", "empty value: no address");
    is_str(P("   \r\n\t "), "", "only white space");
    is_str(P(", a@x,, ,b@y,"), "a@x | b@y", "empty elements skipped");
    is_str(P("a@x,\r\n\tb@y"), "a@x | b@y", "folded value");
    is_str(P("first.last+tag@sub.example.com"), "first.last+tag@sub.example.com", "dot-atom");
}

static void t_names(void)
{
    is_str(P("John Doe <john@example.com>"), "john@example.com", "display name");
    is_str(P("<john@example.com>"), "john@example.com", "angle address alone");
    is_str(P("\"Doe, John\" <john@x>, jane@y"), "john@x | jane@y",
           "quoted display name with a comma");
    is_str(P("\"Joe \\\"the\\\" Q\" <q@x>"), "q@x", "escaped quotes in display name");
    is_str(P("Mr. Smith <smith@x>"), "smith@x", "obs-phrase with a dot");
    is_str(P("=?UTF-8?B?SsO2cmc=?= <j@x>"), "j@x", "encoded word as display name");
    is_str(P("J\xc3\xb6rg <j@x>"), "j@x", "UTF-8 display name");
    is_str(P("a@b <c@d>"), "c@d", "unquoted @ in display name: the angle address wins");
    is_str(P("Jenkins [CI] <ci@x>"), "ci@x", "brackets in display name");
}

static void t_comments(void)
{
    is_str(P("john@x (John Doe)"), "john@x", "trailing comment");
    is_str(P("(lead) john@x"), "john@x", "leading comment");
    is_str(P("john@x (nested (comment) here)"), "john@x", "nested comment");
    is_str(P("john@x (with \\) escaped paren)"), "john@x", "quoted pair in comment");
    is_str(P("John (the man) Doe <j@x> (home)"), "j@x", "comments around a name-addr");
    is_str(P("john(c1)@(c2)x.example"), "john@x.example", "comments inside the addr-spec");
}

static void t_groups(void)
{
    is_str(P("friends: a@x, B <b@y>;, c@z"), "a@x | b@y | c@z", "group then address");
    is_str(P("undisclosed-recipients:;"), "", "empty group");
    is_str(P("undisclosed-recipients:"), "", "empty group without ';' at the end");
    is_str(P("team: a@x, b@y"), "a@x | b@y", "group without ';' at the end");
    is_str(P("\"my team\": a@x;"), "a@x", "quoted group name");
    ok(strncmp(P("g: h: a@b;;"), "ERR: group inside a group", 25) == 0, "nested group refused");
    ok(strncmp(P(": a@b;"), "ERR: group without a name", 25) == 0, "group without a name");
}

static void t_local_parts(void)
{
    is_str(P("\"john doe\"@x"), "\"john doe\"@x", "quoted local part kept quoted");
    is_str(P("\"john\"@x"), "john@x", "needless quotes dropped");
    is_str(P("\"a\\\"b\"@x"), "\"a\\\"b\"@x", "escaped quote stays escaped");
    is_str(P("\"a\\\\b\"@x"), "\"a\\\\b\"@x", "escaped backslash stays escaped");
    is_str(P("\"a\\b\"@x"), "ab@x", "quoted pair of an ordinary char undone");
    is_str(P("john . doe@x"), "john.doe@x", "obs-local-part with blanks");
    is_str(P("\"john\".\"doe\"@x"), "john.doe@x", "quoted words joined by dots");
    is_str(P("a..b@x"), "\"a..b\"@x", "double dot comes out quoted");
    is_str(P("a.@x"), "\"a.\"@x", "trailing dot comes out quoted");
    is_str(P("root"), "root@-", "no domain: the caller's");
    is_str(P("root, admin@x"), "root@- | admin@x", "local and full");
}

static void t_domains(void)
{
    is_str(P("a@[192.0.2.1]"), "a@[192.0.2.1]", "domain literal");
    is_str(P("a@[IPv6:2001:db8::1]"), "a@[IPv6:2001:db8::1]", "IPv6 literal");
    is_str(P("<@a.example,@b.example:u@c.example>"), "u@c.example", "source route dropped");
    is_str(P("Name <@a.example:u@c.example>"), "u@c.example", "route with a display name");
    is_str(P("a@ Example . COM"), "a@Example.COM", "obs-domain with blanks, case kept");
}

static void t_utf8(void)
{
    struct addrlist l;
    const char *why;
    size_t where;
    const char *s = "j\xc3\xb6rg@ex\xc3\xa4mple.de, plain@x";

    addrlist_init(&l);
    is_int(addrlist_parse(&l, s, strlen(s), 10, &why, &where), 0, "UTF-8 address parses");
    is_int(l.n, 2, "two addresses");
    ok(l.n == 2 && l.v[0].utf8 && !l.v[1].utf8, "utf8 flag only on the UTF-8 one");
    addrlist_free(&l);
}

static void t_errors(void)
{
    ok(strncmp(P("John user@x"), "ERR: ',' expected", 17) == 0, "two words without comma");
    ok(strncmp(P("a@b c@d"), "ERR: ',' expected", 17) == 0, "missing comma");
    ok(strncmp(P("a@"), "ERR: domain expected after @", 28) == 0, "empty domain");
    ok(strncmp(P("@x"), "ERR: address expected", 21) == 0, "empty local part");
    ok(strncmp(P("<a@b"), "ERR: '>' expected", 17) == 0, "unclosed angle");
    ok(strncmp(P("<>"), "ERR: empty angle address", 24) == 0, "empty angle address");
    ok(strncmp(P("\"open@x"), "ERR: unterminated quoted string", 31) == 0, "open quote");
    ok(strncmp(P("a@x (open"), "ERR: unterminated comment", 25) == 0, "open comment");
    ok(strncmp(P("a@[1.2.3.4"), "ERR: unterminated domain literal", 32) == 0, "open literal");
    ok(strncmp(P("a@b..c"), "ERR: malformed domain", 21) == 0, "double dot in domain");
    ok(strncmp(P("a@b."), "ERR: malformed domain", 21) == 0, "trailing dot in domain");
    ok(strncmp(P("a\x01@x"), "ERR: character not allowed", 26) == 0, "control character");
    ok(strncmp(P("a@x)"), "ERR: character not allowed", 26) == 0, "stray parenthesis");
    is_str(P("a@b, John user@x"), "ERR: ',' expected between addresses @10",
           "the offset points at the problem");
    {
        struct addrlist l;
        const char *why;
        size_t where;
        const char nul[] = "a@x, b\0c@y";
        addrlist_init(&l);
        is_int(addrlist_parse(&l, nul, sizeof(nul) - 1, 10, &why, &where), -1, "NUL refused");
        /* Found by the fuzzer: a quoted pair must not carry a control character. */
        static const char qnul[] = "\"a\\\0b\"@example.com";
        is_int(addrlist_parse(&l, qnul, sizeof(qnul) - 1, 10, &why, &where), -1,
               "escaped NUL in a quoted local part refused");
        ok(strncmp(P("\"a\\\nb\"@example.com"), "ERR:", 4) == 0,
           "escaped LF in a quoted local part refused");
        ok(strncmp(P("\"a\x01b\"@example.com"), "ERR:", 4) == 0,
           "control character in a quoted local part refused");
        is_str(P("\"a\\ b\"@example.com"), "\"a b\"@example.com", "escaped blank still allowed");
        is_int(l.n, 0, "nothing appended on error");
        addrlist_free(&l);
    }
    {
        char big[400];
        memset(big, 'a', 300);
        strcpy(big + 300, "@x");
        ok(strncmp(P(big), "ERR: local part too long", 24) == 0, "local part over 256");
    }
}

static void t_limits(void)
{
    struct addrlist l;
    const char *why;
    size_t where;
    const char *s = "a@x, b@x, c@x";

    is_str(parse(s, 3), "a@x | b@x | c@x", "exactly max");
    ok(strncmp(parse(s, 2), "ERR: too many addresses", 23) == 0, "over max");
    addrlist_init(&l);
    addrlist_add(&l, "first", "x");
    is_int(addrlist_parse(&l, s, strlen(s), 3, &why, &where), -1, "max counts what is there");
    is_int(l.n, 1, "list unchanged after the error");
    is_int(addrlist_parse(&l, s, strlen(s), 4, &why, &where), 0, "appends");
    is_int(l.n, 4, "now four");
    is_str(l.v[3].local, "c", "in order");
    addrlist_free(&l);
}

static void t_dot_atom(void)
{
    ok(addr_is_dot_atom("a.b", 3), "a.b");
    ok(!addr_is_dot_atom(".a", 2), ".a");
    ok(!addr_is_dot_atom("a.", 2), "a.");
    ok(!addr_is_dot_atom("a..b", 4), "a..b");
    ok(!addr_is_dot_atom("a b", 3), "a b");
    ok(!addr_is_dot_atom("", 0), "empty");
}

int main(void)
{
    plan_lazy();
    t_plain();
    t_names();
    t_comments();
    t_groups();
    t_local_parts();
    t_domains();
    t_utf8();
    t_errors();
    t_limits();
    t_dot_atom();
    return done_testing();
}
