/*
 * Unit tests for dnsd/resolv: resolv.conf parsing (nameserver lines,
 * options timeout:/attempts:, comments, limits) and dns_servers words.
 */
#include <stdlib.h>
#include <string.h>

#include "../../dnsd/resolv.h"
#include "tap.h"
#include "base/util.h"

int main(void)
{
    struct resolv_conf rc;
    char *err = NULL;

    plan_lazy();

    resolv_init(&rc);
    resolv_parse_text("# comment\n"
                      "; another\n"
                      "search example.com\n"
                      "nameserver 192.0.2.53   # trailing comment\n"
                      "nameserver ::1\n"
                      "nameserver fe80::1%eth0\n"
                      "nameserver not-an-address\n"
                      "nameserver 10.0.0.1:53\n"
                      "options ndots:2 timeout:3 attempts:4 rotate\n",
                      &rc);
    is_int(rc.n, 2, "two usable nameservers (scoped, bad and with-port skipped)");
    is_str(rc.servers[0].text, "192.0.2.53:53", "IPv4 server on port 53");
    is_str(rc.servers[1].text, "[::1]:53", "IPv6 server");
    is_int(rc.timeout, 3, "options timeout:");
    is_int(rc.attempts, 4, "options attempts:");

    resolv_init(&rc);
    resolv_parse_text("options timeout:0 attempts:99\r\nnameserver 127.0.0.1\r\n", &rc);
    is_int(rc.timeout, 1, "timeout at least 1");
    is_int(rc.attempts, 10, "attempts capped");
    is_int(rc.n, 1, "CRLF lines accepted");

    resolv_init(&rc);
    resolv_parse_text("", &rc);
    ok(rc.n == 0 && rc.timeout == -1 && rc.attempts == -1, "empty file: nothing set");

    resolv_init(&rc);
    {
        struct buf b;
        buf_init(&b);
        for (int i = 0; i < 20; i++)
            buf_printf(&b, "nameserver 127.0.0.%d\n", i + 1);
        resolv_parse_text(b.data, &rc);
        buf_free(&b);
    }
    is_int(rc.n, RESOLV_MAX, "at most RESOLV_MAX servers");

    {
        char a[] = "127.0.0.1:5353", b[] = "[::1]:5354", c[] = "192.0.2.1", d[] = "::1";
        char *list[] = {a, b, c, d, NULL};
        resolv_init(&rc);
        is_int(resolv_parse_list(list, &rc, &err), 0, "dns_servers list parses");
        is_int(rc.n, 4, "four servers");
        is_str(rc.servers[0].text, "127.0.0.1:5353", "addr:port");
        is_str(rc.servers[1].text, "[::1]:5354", "[v6]:port");
        is_str(rc.servers[2].text, "192.0.2.1:53", "default port 53");
        is_str(rc.servers[3].text, "[::1]:53", "bare IPv6");
    }
    {
        char a[] = "dns.example.com";
        char *list[] = {a, NULL};
        resolv_init(&rc);
        is_int(resolv_parse_list(list, &rc, &err), -1, "host names refused");
        ok(err && strstr(err, "dns.example.com"), "error names the word: %s", err ? err : "");
        free(err);
        err = NULL;
    }
    {
        char a[] = "127.0.0.1:0";
        char *list[] = {a, NULL};
        resolv_init(&rc);
        is_int(resolv_parse_list(list, &rc, &err), -1, "port 0 refused");
        free(err);
    }
    return done_testing();
}
