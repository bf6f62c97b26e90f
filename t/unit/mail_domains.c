/*
 * Unit tests for common/mail/domains: option parsing through the parameter
 * table, lookup order in a real compiled map, effective values, routes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/domains.h"
#include "base/map.h"
#include "tap.h"
#include "base/util.h"

static struct config cfg;

static void test_parse(void)
{
    struct domain_rule r;
    char *err = NULL;

    ok(domain_rule_parse("direct_attempts=2 relay_attempts=3 retry_delay=90s tls=encrypt "
                         "mx=10.0.0.1,10.0.0.2 gateways=isp route=relay",
                         &r, &err) == 0,
       "options parse");
    ok(r.set[P_direct_attempts] && r.v[P_direct_attempts].num == 2, "direct_attempts=2");
    is_int(r.v[P_retry_delay].num, 90, "retry_delay=90s in seconds");
    is_int(r.v[P_tls].num, 2, "tls=encrypt");
    ok(r.v[P_mx].list[0] && r.v[P_mx].list[1] && !r.v[P_mx].list[2], "mx list of two");
    is_str(r.v[P_mx].list[1], "10.0.0.2", "second mx");
    ok(!r.set[P_max_connections], "unset options stay unset");
    is_int(drule_num(&r, &cfg, P_max_connections), 10, "unset option falls back to main.cf");
    is_int(drule_num(&r, &cfg, P_direct_attempts), 2, "set option wins over main.cf");
    is_str(drule_str(&r, &cfg, P_tls), "encrypt", "enum as text");
    is_str(drule_str(NULL, &cfg, P_gateway_policy), "undelivered", "no rule: main.cf");
    domain_rule_free(&r);

    static const struct {
        const char *text, *err;
    } bad[] = {
        {"direct_attempts", "'direct_attempts': expected key=value"},
        {"myhostname=x", "'myhostname' is not a per-domain option (docs/parameters.md lists "
                         "those marked \"domains\")"},
        {"retry_delay=5x", "bad duration '5x' for retry_delay: expected a number with an "
                           "optional suffix s, m, h, d or w (e.g. 30s, 5m, 1h30m)"},
        {"gateway_policy=sometimes", "bad value 'sometimes' for gateway_policy: expected never "
                                     "| undelivered | on_error | always"},
        {"tls=may tls=none", "'tls' is given twice"},
        {"route=smtp:", "bad route 'smtp:': missing or too long host"},
        {"route=ftp:x", "bad route 'ftp:x': expected relay, smtp:[host]:port or "
                        "smtp:host:port"},
        {"relay_on_errors=dns,lan", "bad value 'lan' for relay_on_errors: expected dns, "
                                    "network or smtp"},
        {"max_connections=0", "value '0' for max_connections is out of range (1 to 1000)"},
    };
    for (size_t i = 0; i < nitems(bad); i++) {
        err = NULL;
        ok(domain_rule_parse(bad[i].text, &r, &err) == -1, "'%s' refused", bad[i].text);
        is_str(err, bad[i].err, "reason for '%s'", bad[i].text);
        free(err);
    }
}

static void test_routes(void)
{
    struct route_spec rs;
    const char *why = NULL;

    ok(route_spec_parse("relay", &rs, &why) == 0 && rs.kind == ROUTE_RELAY, "route=relay");
    ok(route_spec_parse("smtp:[mx.partner.example]:2525", &rs, &why) == 0 &&
           rs.kind == ROUTE_SMTP && rs.no_mx && rs.port == 2525 &&
           strcmp(rs.host, "mx.partner.example") == 0,
       "smtp:[host]:port: that host, no MX lookup");
    ok(route_spec_parse("smtp:partner.example", &rs, &why) == 0 && !rs.no_mx && rs.port == 0,
       "smtp:host: MX lookup, default port");
    ok(route_spec_parse("smtp:[::1]:25", &rs, &why) == 0 && strcmp(rs.host, "::1") == 0,
       "IPv6 literal in brackets");
    ok(route_spec_parse("", &rs, &why) == 0 && rs.kind == ROUTE_DEFAULT, "empty = default");
    ok(route_spec_parse("smtp:[h]:70000", &rs, &why) == -1, "bad port refused");
}

static void test_keys(void)
{
    char **k = domain_keys("Mail.Sub.Example.COM");
    ok(k[0] && k[1] && k[2] && k[3] && k[4] && !k[5], "five keys");
    is_str(k[0], "mail.sub.example.com", "exact, lower-cased");
    is_str(k[1], ".sub.example.com", "closest parent");
    is_str(k[2], ".example.com", "next parent");
    is_str(k[3], ".com", "top level");
    is_str(k[4], "*", "then *");
    domain_keys_free(k);
}

static void test_lookup(void)
{
    char dir[] = "/tmp/postern-domains-XXXXXX";
    char path[256], *err = NULL;
    FILE *f;
    struct map *m;
    struct domain_rule r;

    mkdtemp(dir);
    snprintf(path, sizeof(path), "%s/domains", dir);
    f = fopen(path, "w");
    fputs("# test map\n"
          "example.com        direct_attempts=3\n"
          ".example.com       direct_attempts=4\n"
          ".deep.example.com  direct_attempts=5\n"
          "*                  direct_attempts=9\n"
          "broken.test        retry_delay=soon\n",
          f);
    fclose(f);
    if (!ok(map_compile(path, 0, &err) == 0, "map compiles"))
        diag("%s", err);
    m = map_open(path, 0, &err);
    ok(m != NULL, "map opens");

    static const struct {
        const char *domain, *matched;
        long long attempts;
    } cases[] = {
        {"example.com", "example.com", 3},       {"EXAMPLE.com", "example.com", 3},
        {"mx.example.com", ".example.com", 4},   {"a.deep.example.com", ".deep.example.com", 5},
        {"deep.example.com", ".example.com", 4}, {"other.org", "*", 9},
    };
    for (size_t i = 0; i < nitems(cases); i++) {
        ok(domain_rule_lookup(m, cases[i].domain, &r, &err) == 0, "%s: lookup", cases[i].domain);
        is_str(r.matched, cases[i].matched, "%s: matched %s", cases[i].domain, cases[i].matched);
        is_int(drule_num(&r, &cfg, P_direct_attempts), cases[i].attempts, "%s: attempts",
               cases[i].domain);
        domain_rule_free(&r);
    }
    err = NULL;
    ok(domain_rule_lookup(m, "broken.test", &r, &err) == -1, "a bad entry is an error");
    ok(err && strstr(err, "domains map entry 'broken.test': bad duration 'soon'"),
       "naming the entry and the option");
    free(err);
    ok(domain_rule_lookup(NULL, "x.org", &r, &err) == 0 && strcmp(r.matched, "") == 0 &&
           drule_num(&r, &cfg, P_direct_attempts) == 100,
       "no map: main.cf values");
    domain_rule_free(&r);
    map_close(m);
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    system(path);
}

int main(void)
{
    char *err = NULL;

    plan_lazy();
    if (config_load_text(&cfg, "/c", "/c/main.cf", "", NULL, &err) < 0)
        return 1;
    test_parse();
    test_routes();
    test_keys();
    test_lookup();
    config_free(&cfg);
    return done_testing();
}
