/*
 * Unit tests for common/mail/gateways: parsing relay_gateways, priority order,
 * disabled gateways, a domain's subset, and rotation between attempts.
 */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "mail/dlv_proto.h"
#include "mail/gateways.h"
#include "tap.h"
#include "base/util.h"

/* A string literal as the char * a word list holds (-Wwrite-strings). */
#define W(s) ((char *)(uintptr_t)(s))

static struct gateways gws;

static void load(char **words)
{
    char *err = NULL;
    if (!ok(gateways_parse(words, &gws, &err) == 0, "relay_gateways parses"))
        diag("%s", err);
}

static const char *names(const struct gateway **o, size_t n)
{
    static char buf[256];
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(buf, i ? " " : "");
        strcat(buf, o[i]->name);
    }
    return buf;
}

static void test_parse(void)
{
    struct gateway g;
    char *err = NULL;

    ok(gateway_parse("isp=smtp.isp.example:587/high/encrypt/plainauth", &g, &err) == 0,
       "full form parses");
    is_str(g.name, "isp", "name");
    is_str(g.host, "smtp.isp.example", "host");
    is_int(g.port, 587, "port");
    is_int(g.prio, GW_HIGH, "priority");
    is_int(g.tls, TLS_MODE_ENCRYPT, "tls");
    ok(g.enabled && g.plainauth, "enabled, plainauth");
    is_int(g.max_connections, 0, "no connection limit of its own by default");
    gateway_free(&g);
    ok(gateway_parse("sh=smarthost.test:587/max_connections=3", &g, &err) == 0,
       "max_connections parses");
    is_int(g.max_connections, 3, "max_connections=3");
    gateway_free(&g);
    ok(gateway_parse("b=192.0.2.7", &g, &err) == 0, "short form parses");
    ok(g.port == 25 && g.prio == GW_NORMAL && g.tls == TLS_MODE_MAY && g.enabled && !g.plainauth,
       "defaults: port 25, normal, may, enabled");
    gateway_free(&g);
    ok(gateway_parse("d=mx.example:25/dane", &g, &err) == 0 && g.tls == TLS_MODE_DANE,
       "/dane: tls dane");
    gateway_free(&g);
    ok(gateway_parse("d=mx.example/dane-only/high", &g, &err) == 0 && g.tls == TLS_MODE_DANE_ONLY &&
           g.prio == GW_HIGH,
       "/dane-only: tls dane-only");
    gateway_free(&g);
    ok(gateway_parse("v6=[::1]:2525/low/disabled", &g, &err) == 0, "IPv6 in brackets");
    ok(strcmp(g.host, "::1") == 0 && g.port == 2525 && !g.enabled && g.prio == GW_LOW,
       "host, port, disabled, low");
    gateway_free(&g);

    static const struct {
        const char *word, *err;
    } bad[] = {
        {"nohost", "gateway 'nohost': expected name=host[:port][/option...] with a name of "
                   "letters, digits, '.', '-' or '_'"},
        {"=h", "gateway '=h': expected name=host[:port][/option...] with a name of letters, "
               "digits, '.', '-' or '_'"},
        {"a=h:0", "gateway 'a': bad port (1-65535)"},
        {"a=h:99999", "gateway 'a': bad port (1-65535)"},
        {"a=::1:25", "gateway 'a': IPv6 addresses must be written in brackets: [addr]:port"},
        {"a=h/urgent",
         "gateway 'a': unknown option 'urgent' (priority highest|high|normal|"
         "below_normal|low, tls none|may|encrypt|verify|dane|dane-only, disabled, plainauth, "
         "max_connections=0..1000)"},
        {"a=h/max_connections=1001",
         "gateway 'a': unknown option 'max_connections=1001' (priority highest|high|normal|"
         "below_normal|low, tls none|may|encrypt|verify|dane|dane-only, disabled, plainauth, "
         "max_connections=0..1000)"},
        {"a=h/max_connections=",
         "gateway 'a': unknown option 'max_connections=' (priority "
         "highest|high|normal|below_normal|low, tls none|may|encrypt|"
         "verify|dane|dane-only, disabled, plainauth, max_connections=0..1000)"},
        {"a=h/max_connections=-3",
         "gateway 'a': unknown option 'max_connections=-3' (priority "
         "highest|high|normal|below_normal|low, tls none|may|encrypt|"
         "verify|dane|dane-only, disabled, plainauth, max_connections=0..1000)"},
        {"a=", "gateway 'a': missing host"},
        {"a=h$x", "gateway 'a': bad host name"},
    };
    for (size_t i = 0; i < nitems(bad); i++) {
        err = NULL;
        ok(gateway_parse(bad[i].word, &g, &err) == -1, "'%s' refused", bad[i].word);
        is_str(err, bad[i].err, "reason for '%s'", bad[i].word);
        free(err);
    }
    char *dup[] = {W("a=h1"), W("a=h2"), NULL};
    err = NULL;
    ok(gateways_parse(dup, &gws, &err) == -1, "duplicate name refused");
    is_str(err, "gateway 'a' is listed twice in relay_gateways", "duplicate reason");
    free(err);
}

static void test_order_and_rotation(void)
{
    char *words[] = {W("n1=10.0.0.1"),
                     W("low1=10.0.0.2/low"),
                     W("hi=10.0.0.3/highest"),
                     W("off=10.0.0.4/high/disabled"),
                     W("n2=10.0.0.5/normal"),
                     W("h2=10.0.0.6/high"),
                     NULL};
    const struct gateway *o[16];
    size_t n;

    load(words);
    n = gateways_order(&gws, NULL, o, 16);
    is_int(n, 5, "five enabled gateways");
    is_str(names(o, n), "hi h2 n1 n2 low1",
           "highest first, equal priorities in listed order, "
           "disabled left out");
    ok(gateways_find(&gws, "off") != NULL, "a disabled gateway can still be found by name");

    gateways_rotate(o, n, 0);
    is_str(names(o, n), "hi h2 n1 n2 low1", "attempt 0 starts at the first");
    n = gateways_order(&gws, NULL, o, 16);
    gateways_rotate(o, n, 1);
    is_str(names(o, n), "h2 n1 n2 low1 hi", "attempt 1 starts at the one after, and wraps");
    n = gateways_order(&gws, NULL, o, 16);
    gateways_rotate(o, n, 6);
    is_str(names(o, n), "h2 n1 n2 low1 hi", "attempt 6 = attempt 1 (mod 5)");

    char *subset[] = {W("low1"), W("off"), W("n1"), W("nosuch"), NULL};
    n = gateways_order(&gws, subset, o, 16);
    is_str(names(o, n), "n1 low1", "a domain's subset keeps priority order, skips disabled");
    char *empty[] = {NULL};
    is_int(gateways_order(&gws, empty, o, 16), 5, "an empty subset means all");
    is_int(gateways_order(&gws, NULL, o, 2), 2, "bounded by max");
    gateways_free(&gws);
}

int main(void)
{
    plan_lazy();
    test_parse();
    test_order_and_rotation();
    return done_testing();
}
