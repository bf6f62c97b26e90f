/*
 * smtpd_hops - unit tests of smtpd/hops.c: Received: fields counted in the
 * header section only, case-insensitively, at line starts only (not
 * X-Received:, not continuation lines, not in the body), whatever the
 * pieces the message arrives in.
 */
#include <stdio.h>
#include <string.h>

#include "../../smtpd/hops.h"
#include "tap.h"

static unsigned count_in_pieces(const char *msg, size_t piece)
{
    struct hops h;
    size_t n = strlen(msg);

    hops_init(&h);
    for (size_t i = 0; i < n; i += piece)
        hops_feed(&h, msg + i, n - i < piece ? n - i : piece);
    return h.count;
}

int main(void)
{
    const char *m = "Received: from a by b; Mon, 7 Dec 2026 08:00:00 +0000\r\n"
                    "RECEIVED: from c\r\n"
                    "\tby d\r\n"
                    "X-Received: by e\r\n"
                    " Received: continuation, not a field\r\n"
                    "Received-SPF: pass\r\n"
                    "received:from f\r\n"
                    "Subject: Received: not at the start\r\n"
                    "\r\n"
                    "Received: in the body\r\n";
    int same = 1;

    plan_lazy();
    is_int(count_in_pieces(m, strlen(m)), 3, "three Received: fields in the header section");
    for (size_t p = 1; p < 40; p++)
        same &= count_in_pieces(m, p) == 3;
    ok(same, "the same count whatever the piece size (1..39 bytes)");
    is_int(count_in_pieces("\r\nReceived: x\r\n", 1), 0, "an empty first line: all body");
    is_int(count_in_pieces("Subject: x\n\nReceived: y\n", 3), 0,
           "a bare LF empty line ends it too");
    is_int(count_in_pieces("Received: x", 4), 1, "a field without its line end counts");
    is_int(count_in_pieces("Receive: x\r\nReceived x\r\n", 2), 0, "near misses do not count");
    char big[60 * 24 + 16];
    size_t k = 0;
    for (int i = 0; i < 60; i++)
        k += (size_t)snprintf(big + k, sizeof(big) - k, "Received: hop %02d\r\n", i);
    snprintf(big + k, sizeof(big) - k, "\r\nbody\r\n");
    is_int(count_in_pieces(big, 7), 60, "60 hops");
    return done_testing();
}
