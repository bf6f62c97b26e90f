/*
 * qmgr_retry - unit tests of the retry delay (qmgr/retry.c) and of the
 * retry and expiry part of the routing decision (qmgr/route.c) for the
 * rules alone (no gateways, no message facts): what happens next to a
 * recipient group (route_decide), and what a delivery result turns a
 * recipient into (route_result). qmgr_route covers the gateways.
 */
#include <stdint.h>

#include "../../qmgr/decide.h"
#include "mail/dlv_proto.h"
#include "../../qmgr/retry.h"
#include "../../qmgr/route.h"
#include "tap.h"

#define S 1000000LL

static struct qpolicy pol(void)
{
    struct qpolicy p = {0};

    p.direct_attempts = 100;
    p.relay_attempts = 100;
    p.max_queue_lifetime = 5 * 86400;
    p.retry_delay = 300;
    p.retry_delay_max = 3600;
    p.max_connections = 10;
    return p;
}

int main(void)
{
    plan_lazy();

    /* retry_delay_us: doubling, cap, fixed, jitter bounds */
    is_int(retry_delay_us(300, 3600, 1, 0), 300 * S, "first failure: retry_delay");
    is_int(retry_delay_us(300, 3600, 2, 0), 600 * S, "second: doubled");
    is_int(retry_delay_us(300, 3600, 4, 0), 2400 * S, "fourth: 8x");
    is_int(retry_delay_us(300, 3600, 5, 0), 3600 * S, "fifth: capped at retry_delay_max");
    is_int(retry_delay_us(300, 3600, 60000, 0), 3600 * S, "many failures: still the cap");
    is_int(retry_delay_us(300, 0, 5, 0), 300 * S, "retry_delay_max 0: fixed delay");
    is_int(retry_delay_us(300, 100, 5, 0), 300 * S, "max below base: fixed delay");
    is_int(retry_delay_us(2, 0, 1, 0), 2 * S, "2s fixed");
    is_int(retry_delay_us(0, 0, 1, 0), 1 * S, "never below one second");
    ok(retry_delay_us(300, 0, 1, UINT32_MAX) > 300 * S, "jitter adds");
    ok(retry_delay_us(300, 0, 1, UINT32_MAX) <= 330 * S, "jitter at most 10%%");
    ok(retry_delay_us(300, 0, 1, UINT32_MAX / 2) > retry_delay_us(300, 0, 1, 0),
       "jitter grows with the random value");
    ok(retry_delay_us(300, 0, 1, UINT32_MAX / 2) < retry_delay_us(300, 0, 1, UINT32_MAX),
       "and stays below its maximum");

    /* route_decide: the rules alone (no gateways configured, no message facts) */
    struct qpolicy p = pol();
    struct route_ctx c = {&p, NULL, 0, NULL};
    int64_t t0 = 1700000000 * S;
    struct qhist h = {t0, 0, 0, 0, 0, 0};
    struct route_plan d = route_decide(&c, &h, t0);
    is_int(d.next, QNEXT_DIRECT, "new mail: direct");

    h.direct_attempts = 3;
    d = route_decide(&c, &h, t0 + 3600 * S);
    is_int(d.next, QNEXT_DIRECT, "3 of 100 direct attempts: direct again");

    d = route_decide(&c, &h, t0 + 5 * 86400 * S);
    is_int(d.next, QNEXT_FAIL, "at max_queue_lifetime: fail");
    ok(d.expired, "... as expired");

    h.direct_attempts = 0;
    d = route_decide(&c, &h, t0 + 6 * 86400 * S);
    is_int(d.next, QNEXT_DIRECT, "never tried (held past its lifetime): one try first");

    p.max_queue_lifetime = 0;
    d = route_decide(&c, &h, t0);
    is_int(d.next, QNEXT_DIRECT, "lifetime 0: the first try happens");
    h.direct_attempts = 1;
    d = route_decide(&c, &h, t0);
    is_int(d.next, QNEXT_FAIL, "lifetime 0: no second try");

    p = pol();
    h.direct_attempts = 100;
    d = route_decide(&c, &h, t0 + S);
    is_int(d.next, QNEXT_FAIL, "direct_attempts used up: fail (no relay phase yet)");
    ok(!d.expired, "... not as expired");
    ok(d.why != NULL, "... with a reason");

    p.direct_attempts = 0;
    h.direct_attempts = 0;
    d = route_decide(&c, &h, t0);
    is_int(d.next, QNEXT_FAIL, "direct_attempts 0 and no relay phase: fail");

    /* route_result for a direct attempt */
    p = pol();
    struct qoutcome o;
    h = (struct qhist){t0, 0, 1, 0, DLV_CLASS_SMTP, DLV_STEP_RCPT};
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_OK, t0 + S, 0);
    is_int(o.state, RS_SENT, "250: sent");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_PERM, t0 + S, 0);
    is_int(o.state, RS_FAILED, "5xx: failed at once");
    ok(!o.expired, "... not expired");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, t0 + S, 0);
    is_int(o.state, RS_DEFERRED, "4xx: deferred");
    is_int(o.next_try_us, t0 + S + 300 * S, "... next try after retry_delay");
    h.direct_attempts = 3;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, t0 + S, 0);
    is_int(o.next_try_us, t0 + S + 1200 * S, "third failure: 4 x retry_delay");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, t0 + S, UINT32_MAX);
    ok(o.next_try_us >= t0 + S + 1200 * S && o.next_try_us <= t0 + S + 1320 * S,
       "with jitter: within +10%%");

    p.max_queue_lifetime = 10;
    h.direct_attempts = 1;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, t0 + 2 * S, 0);
    is_int(o.state, RS_DEFERRED, "young message deferred");
    is_int(o.next_try_us, t0 + 10 * S, "next try clamped to the expiry time");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, t0 + 10 * S, 0);
    is_int(o.state, RS_FAILED, "temporary failure at the expiry time: failed");
    ok(o.expired, "... as expired");

    p = pol();
    p.direct_attempts = 2;
    h.direct_attempts = 2;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, t0 + S, 0);
    is_int(o.state, RS_FAILED, "temporary failure on the last direct attempt: failed");
    ok(!o.expired && o.why, "... with the reason, not expired");

    is_str(rstate_name(RS_PENDING), "pending", "state names");
    is_str(rstate_name(RS_DEFERRED), "deferred", "state names");
    return done_testing();
}
