/*
 * smtpd_intake - unit tests of smtpd/intake.c with a made-up clock:
 * the session limits, the per-address share under stress (from 3/4 of
 * max_sessions), the connection and message rates over a sliding minute,
 * the command deadline under stress, the DATA deadline by minimum rate,
 * and the bounded table of addresses.
 */
#include <stdio.h>
#include <string.h>

#include "../../smtpd/intake.h"
#include "tap.h"

static void test_limits(void)
{
    struct intake_limits l = {.max_sessions = 100, .max_per_client = 50};
    struct intake in;
    const char *why = NULL;
    char a[32];
    int admitted = 0;

    intake_init(&in, &l);
    for (int i = 0; i < 50; i++)
        admitted += intake_admit(&in, "192.0.2.1", 1000, &why) == 0;
    is_int(admitted, 50, "one address gets max_per_client sessions");
    ok(intake_admit(&in, "192.0.2.1", 1000, &why) < 0 && strstr(why, "from your address"),
       "and no more: %s", why ? why : "");
    is_int(intake_sessions_of(&in, "192.0.2.1"), 50, "50 counted");
    ok(!intake_stressed(&in), "50 of 100 is not stress");
    /* a second address brings the total to 75: stress begins */
    admitted = 0;
    for (int i = 0; i < 30; i++)
        admitted += intake_admit(&in, "192.0.2.2", 1000, &why) == 0;
    is_int(admitted, 25, "the second address gets 25, then stress (3/4) cuts it to a tenth");
    ok(intake_stressed(&in), "75 of 100: stress");
    ok(intake_admit(&in, "192.0.2.2", 1000, &why) < 0 && strstr(why, "busy"),
       "under stress an address over 5 sessions is refused: %s", why);
    ok(intake_admit(&in, "198.51.100.7", 1000, &why) == 0, "a new address still gets in");
    is_int(intake_timeout(&in, 300), STRESS_TIMEOUT_S, "command deadline under stress");
    /* fill to the limit with many addresses */
    for (int i = 0; i < 100; i++) {
        snprintf(a, sizeof(a), "203.0.113.%d", i);
        intake_admit(&in, a, 1000, &why);
    }
    is_int(in.nsessions, 100, "max_sessions reached");
    ok(intake_admit(&in, "203.0.113.250", 1000, &why) < 0 && strcmp(why, "too many sessions") == 0,
       "then everyone waits");
    for (int i = 0; i < 50; i++)
        intake_release(&in, "192.0.2.1");
    is_int(in.nsessions, 50, "released");
    ok(!intake_stressed(&in), "below 3/4: no stress");
    is_int(intake_timeout(&in, 300), 300, "the normal deadline again");
    intake_release(&in, "nobody");
    is_int(in.nsessions, 50, "releasing an unknown address changes nothing");
    intake_free(&in);
}

static void test_rates(void)
{
    struct intake_limits l = {
        .max_sessions = 1000, .max_per_client = 1000, .conn_rate = 10, .msg_rate = 3};
    struct intake in;
    const char *why = NULL;
    int ok_n = 0;

    intake_init(&in, &l);
    for (int i = 0; i < 12; i++)
        ok_n += intake_admit(&in, "192.0.2.9", 5000 + i / 4, &why) == 0;
    is_int(ok_n, 10, "10 connections a minute, the rest refused");
    ok(why && strstr(why, "per minute"), "why: %s", why ? why : "");
    ok(intake_admit(&in, "192.0.2.10", 5003, &why) == 0, "another address is not affected");
    ok(intake_admit(&in, "192.0.2.9", 5030, &why) < 0, "still refused within the minute");
    ok(intake_admit(&in, "192.0.2.9", 5061, &why) == 0, "a minute later it may connect again");

    ok_n = 0;
    for (int i = 0; i < 5; i++)
        ok_n += intake_message(&in, "192.0.2.9", 6000, &why) == 0;
    is_int(ok_n, 3, "3 messages a minute");
    ok(intake_message(&in, "192.0.2.9", 6059, &why) < 0, "not before the minute is over");
    ok(intake_message(&in, "192.0.2.9", 6060, &why) == 0, "then again");
    intake_free(&in);

    struct intake_limits none = {.max_sessions = 10, .max_per_client = 10};
    intake_init(&in, &none);
    ok_n = 0;
    for (int i = 0; i < 500; i++) {
        ok_n += intake_admit(&in, "192.0.2.1", 7000, &why) == 0;
        intake_release(&in, "192.0.2.1");
        ok_n += intake_message(&in, "192.0.2.1", 7000, &why) == 0;
    }
    is_int(ok_n, 1000, "rates 0: no rate limit");
    intake_free(&in);
}

static void test_data_deadline(void)
{
    struct intake_limits l = {.max_sessions = 100, .max_per_client = 50, .min_data_rate = 500};
    struct intake in;
    int64_t t0 = 1000000000;

    intake_init(&in, &l);
    ok(intake_data_deadline(&in, t0, 0, 300) == t0 + 300 * 1000000LL, "no byte yet: the timeout");
    ok(intake_data_deadline(&in, t0, 500000, 300) == t0 + 1300 * 1000000LL,
       "500 kB at 500 B/s adds 1000 s");
    /* a trickle of 1 byte per second: received n bytes at t0 + n s */
    int64_t n = 0;
    while (n < 100000 && t0 + n * 1000000 < intake_data_deadline(&in, t0, (uint64_t)n, 300))
        n++;
    ok(n > 290 && n < 310, "a 1 byte/s trickle is over after about the timeout (%lld s)",
       (long long)n);
    intake_free(&in);
    l.min_data_rate = 0;
    intake_init(&in, &l);
    ok(intake_data_deadline(&in, t0, 0, 300) == INT64_MAX, "min_data_rate 0: no deadline");
    intake_free(&in);
}

static void test_table_bound(void)
{
    struct intake_limits l = {.max_sessions = 100000, .max_per_client = 5, .conn_rate = 1};
    struct intake in;
    const char *why;
    char a[32];

    intake_init(&in, &l);
    for (int i = 0; i < INTAKE_MAX_CLIENTS + 1000; i++) {
        snprintf(a, sizeof(a), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        if (intake_admit(&in, a, 100, &why) == 0)
            intake_release(&in, a);
    }
    ok(in.nclients <= INTAKE_MAX_CLIENTS, "the address table stays bounded (%u)", in.nclients);
    is_int(intake_listed(&in), in.nclients, "every record is on the recency list (none lost)");
    intake_free(&in);
}

int main(void)
{
    plan_lazy();
    test_limits();
    test_rates();
    test_data_deadline();
    test_table_bound();
    return done_testing();
}
