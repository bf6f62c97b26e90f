/*
 * qmgr_tlsrpt - the TLS reporting counters (qmgr/tlsrpt.c): sessions
 * counted per policy, failures per kind, the text and the RFC 8460 JSON
 * (checked by parsing it back with a tiny checker of its own: balanced,
 * every string closed), bounds, reset.
 */
#include "tap.h"
#include "../../qmgr/tlsrpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add(struct tlsrpt *t, const char *type, const char *dom, const char *str,
                const char *mx, const char *ip, const char *result, const char *why)
{
    struct tlsrpt_outcome o = {type, dom, str, mx, ip, result, why};
    tlsrpt_add(t, &o);
}

/* 1 when s is balanced JSON as far as brackets and strings go. */
static int json_balanced(const char *s)
{
    int depth = 0, in_str = 0;

    for (; *s; s++) {
        if (in_str) {
            if (*s == '\\' && s[1])
                s++;
            else if (*s == '"')
                in_str = 0;
            else if ((unsigned char)*s < 0x20)
                return 0;
            continue;
        }
        if (*s == '"')
            in_str = 1;
        else if (*s == '{' || *s == '[')
            depth++;
        else if (*s == '}' || *s == ']')
            if (--depth < 0)
                return 0;
    }
    return depth == 0 && !in_str;
}

int main(void)
{
    struct tlsrpt *t = tlsrpt_new(1767225600); /* 2026-01-01T00:00:00Z */
    struct buf b;
    const char *sts = "version: STSv1\nmode: enforce\nmx: mx.a.test\nmax_age: 86400";

    plan_lazy();

    add(t, "sts", "a.test", sts, "mx.a.test", "127.0.0.1", "success", "");
    add(t, "sts", "a.test", sts, "mx.a.test", "127.0.0.1", "success", "");
    add(t, "sts", "a.test", sts, "mx.a.test", "127.0.0.1", "certificate-host-mismatch",
        "certificate for other.test");
    add(t, "sts", "a.test", sts, "mx.a.test", "127.0.0.1", "certificate-host-mismatch",
        "certificate for other.test");
    add(t, "tlsa", "b.test", "3 1 1 abcd", "mx.b.test", "127.0.0.2", "validation-failure",
        "no TLSA record matched");
    add(t, "no-policy-found", "c.test", "", "mx.c.test", "", "success", NULL);
    is_int((long long)tlsrpt_policies(t), 3, "three policies counted");

    buf_init(&b);
    tlsrpt_text(t, 1767229200, &b);
    ok(strstr(b.data, "from 2026-01-01T00:00:00Z to 2026-01-01T01:00:00Z: 3 policies") != NULL,
       "text: the window and the policy count");
    ok(strstr(b.data, "a.test sts: 2 ok, 2 failed\n") != NULL, "text: a.test's totals");
    ok(strstr(b.data, "    2 x certificate-host-mismatch at mx.a.test[127.0.0.1]: certificate "
                      "for other.test\n") != NULL,
       "text: the same failure twice is one row counted 2");
    ok(strstr(b.data, "    policy  mode: enforce\n") != NULL, "text: the policy's lines");
    ok(strstr(b.data, "b.test tlsa: 0 ok, 1 failed\n") != NULL, "text: the DANE policy");
    ok(strstr(b.data, "c.test no-policy-found: 1 ok, 0 failed\n") != NULL,
       "text: sessions without a policy");
    ok(strstr(b.data, "a.test") < strstr(b.data, "b.test") &&
           strstr(b.data, "b.test") < strstr(b.data, "c.test"),
       "text: sorted by domain");
    buf_free(&b);

    buf_init(&b);
    tlsrpt_json(t, "postern.example", "2026-01-01T01:00:00Z_postern.example", 1767229200, &b);
    ok(json_balanced(b.data), "json: balanced");
    ok(strstr(b.data, "\"date-range\":{\"start-datetime\":\"2026-01-01T00:00:00Z\","
                      "\"end-datetime\":\"2026-01-01T01:00:00Z\"}") != NULL,
       "json: the date range");
    ok(strstr(b.data, "\"policy-string\":[\"version: STSv1\",\"mode: enforce\",\"mx: "
                      "mx.a.test\",\"max_age: 86400\"]") != NULL,
       "json: the policy string as an array of lines");
    ok(strstr(b.data, "\"total-successful-session-count\":2,\"total-failure-session-count\":2") !=
           NULL,
       "json: a.test's summary");
    ok(strstr(b.data, "{\"result-type\":\"certificate-host-mismatch\",\"receiving-mx-hostname\":"
                      "\"mx.a.test\",\"receiving-ip\":\"127.0.0.1\",\"failed-session-count\":2,"
                      "\"failure-reason-code\":\"certificate for other.test\"}") != NULL,
       "json: the failure details");
    ok(strstr(b.data, "\"policy-type\":\"no-policy-found\",\"policy-string\":[]") != NULL,
       "json: an empty policy string is an empty array");
    buf_free(&b);

    /* hostile text is escaped in JSON */
    add(t, "sts", "d.test", "", "mx\".d.test", "", "validation-failure", "bad \"quote\"\n\x01");
    buf_init(&b);
    tlsrpt_json(t, "o", "r", 1767229200, &b);
    ok(json_balanced(b.data), "json: quotes and control bytes are escaped");
    buf_free(&b);

    /* bounds: failure rows per policy */
    for (int i = 0; i < TLSRPT_MAX_DETAILS + 5; i++) {
        char why[32];
        snprintf(why, sizeof(why), "reason %d", i);
        add(t, "tlsa", "e.test", "", "mx.e.test", "", "validation-failure", why);
    }
    buf_init(&b);
    tlsrpt_text(t, 1767229200, &b);
    ok(strstr(b.data, "e.test tlsa: 0 ok, 69 failed\n") != NULL,
       "rows past the bound are still in the total");
    ok(strstr(b.data, "    5 more failures (too many kinds to list)\n") != NULL,
       "and are said to be left out");
    buf_free(&b);

    /* long text is cut, equal after the cut is one row */
    {
        char *longwhy = malloc(TLSRPT_MAX_TEXT + 100);
        memset(longwhy, 'x', TLSRPT_MAX_TEXT + 99);
        longwhy[TLSRPT_MAX_TEXT + 99] = '\0';
        add(t, "tlsa", "f.test", "", "mx.f.test", "", "validation-failure", longwhy);
        add(t, "tlsa", "f.test", "", "mx.f.test", "", "validation-failure", longwhy);
        buf_init(&b);
        tlsrpt_text(t, 1767229200, &b);
        ok(strstr(b.data, "    2 x validation-failure at mx.f.test: xxx") != NULL,
           "a long reason is cut and still one row");
        buf_free(&b);
        free(longwhy);
    }

    tlsrpt_reset(t, 1767232800);
    is_int((long long)tlsrpt_policies(t), 0, "reset forgets every policy");
    buf_init(&b);
    tlsrpt_text(t, 1767232800, &b);
    ok(strstr(b.data, "from 2026-01-01T02:00:00Z") != NULL, "reset starts a new window");
    buf_free(&b);

    /* the policy bound */
    for (int i = 0; i < TLSRPT_MAX_POLICIES + 3; i++) {
        char dom[32];
        snprintf(dom, sizeof(dom), "d%d.test", i);
        add(t, "sts", dom, "", "mx", "", "success", "");
    }
    is_int((long long)tlsrpt_policies(t), TLSRPT_MAX_POLICIES, "at most the policy bound");
    is_int((long long)tlsrpt_dropped(t), 3, "sessions of policies past it are counted as dropped");

    tlsrpt_free(t);
    return done_testing();
}
