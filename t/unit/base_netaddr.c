/*
 * base_netaddr - the one "host[:port]" / "[host][:port]" reader
 * (common/base/netaddr.c: netaddr_split_hostport, netaddr_host_ok) and the
 * numeric form built on it (netaddr_parse_hostport).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/netaddr.h"
#include "tap.h"

static void splits(void)
{
    static const struct {
        const char *in, *host;
        int port, bracketed;
    } good[] = {
        {"mx.example", "mx.example", 0, 0},
        {"mx.example:2525", "mx.example", 2525, 0},
        {"[mx.example]", "mx.example", 0, 1},
        {"[mx.example]:26", "mx.example", 26, 1},
        {"127.0.0.12:30100", "127.0.0.12", 30100, 0},
        {"[::1]:587", "::1", 587, 1},
        {"[2001:db8::1]", "2001:db8::1", 0, 1},
        {"h:1", "h", 1, 0},
        {"h:65535", "h", 65535, 0},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char host[64] = "";
        int port = -1, br = -1;
        const char *why = NULL;
        int r = netaddr_split_hostport(good[i].in, host, sizeof(host), &port, &br, &why);
        is_int(r, 0, "%s: accepted%s%s", good[i].in, why ? ": " : "", why ? why : "");
        is_str(host, good[i].host, "%s: host", good[i].in);
        is_int(port, good[i].port, "%s: port", good[i].in);
        is_int(br, good[i].bracketed, "%s: brackets", good[i].in);
    }
}

static void refusals(void)
{
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"", "missing or too long host"},
        {":25", "missing or too long host"},
        {"[]:25", "missing or too long host"},
        {"[::1", "missing ']'"},
        {"[::1]x", "text after ']'"},
        {"[::1]:", "bad port (1-65535)"},
        {"::1:25", "IPv6 addresses must be written in brackets: [addr]:port"},
        {"h:0", "bad port (1-65535)"},
        {"h:65536", "bad port (1-65535)"},
        {"h:99999", "bad port (1-65535)"},
        {"h:", "bad port (1-65535)"},
        {"h:25x", "bad port (1-65535)"},
        {"h:-1", "bad port (1-65535)"},
        {"a-host-name-longer-than-the-buffer.example:25", "missing or too long host"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char host[16];
        int port, br;
        const char *why = NULL;
        is_int(netaddr_split_hostport(bad[i].in, host, sizeof(host), &port, &br, &why), -1,
               "\"%s\" refused", bad[i].in);
        is_str(why, bad[i].why, "\"%s\": reason", bad[i].in);
    }
}

static void hosts(void)
{
    ok(netaddr_host_ok("mx-1.example_x"), "a name");
    ok(netaddr_host_ok("2001:db8::1"), "an IPv6 address");
    ok(!netaddr_host_ok(""), "empty");
    ok(!netaddr_host_ok("not_a@host!!"), "@ and ! refused");
    ok(!netaddr_host_ok("a b"), "space refused");
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ok(!netaddr_host_ok(longname), "over 253 bytes refused");
}

static void numeric(void)
{
    struct sockaddr_storage ss;
    const char *why = NULL;

    is_int(netaddr_parse_hostport("127.0.0.1:25", 0, &ss, &why), 0, "numeric with port");
    is_int(netaddr_port((struct sockaddr *)&ss), 25, "its port");
    is_int(netaddr_parse_hostport("[::1]", 587, &ss, &why), 0, "default port");
    is_int(netaddr_port((struct sockaddr *)&ss), 587, "the default is used");
    is_int(netaddr_parse_hostport("127.0.0.1", 0, &ss, &why), -1, "no port and no default");
    is_str(why, "missing :port", "says so");
    is_int(netaddr_parse_hostport("mx.example:25", 0, &ss, &why), -1, "a name is not numeric");
    is_str(why, "not a numeric IPv4 or IPv6 address", "says so");
}

/* A LIST parameter of networks: parsed whole, matched as one. */
static void cidr_lists(void)
{
    char g1[] = "127.0.0.0/8", g2[] = "[::1]/128", g3[] = "192.0.2.7";
    char b1[] = "10.0.0.0/8", b2[] = "10.0.0.0/33";
    char *good[] = {g1, g2, g3, NULL};
    char *bad[] = {b1, b2, NULL};
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct cidr *nets = NULL;
    size_t n = 0;
    char *err = NULL;

    ok(netaddr_parse_cidr_list(good, &nets, &n, &err) == 0 && n == 3, "a list of three networks");
    inet_pton(AF_INET, "127.1.2.3", &in.sin_addr);
    ok(netaddr_cidr_list_match(nets, n, (struct sockaddr *)&in), "127.1.2.3 is in it");
    inet_pton(AF_INET, "192.0.2.8", &in.sin_addr);
    ok(!netaddr_cidr_list_match(nets, n, (struct sockaddr *)&in), "192.0.2.8 is not");
    free(nets);
    ok(netaddr_parse_cidr_list(NULL, &nets, &n, &err) == 0 && n == 0, "no list: no networks");
    ok(!netaddr_cidr_list_match(nets, n, (struct sockaddr *)&in), "and nothing matches");
    free(nets);
    int rc = netaddr_parse_cidr_list(bad, &nets, &n, &err);
    ok(rc < 0 && err && strstr(err, "bad network '10.0.0.0/33'"), "a bad entry is named (%s)",
       err ? err : "");
    free(err);
}

int main(void)
{
    plan_lazy();
    cidr_lists();
    splits();
    refusals();
    hosts();
    numeric();
    return done_testing();
}
