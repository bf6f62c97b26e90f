/*
 * qmgr_throttle - unit tests of qmgr/throttle.c: the slow-start window
 * and max_connections, one probe at a time while failing, reuse of idle
 * connections before new ones, connection_delay after a batch, an error
 * or an idle close, and the margin before an idle connection's timer.
 */
#include <stdint.h>
#include <string.h>

#include "../../qmgr/throttle.h"
#include "tap.h"

#define S 1000000LL

static struct throttle_limits lim(unsigned maxc, int64_t delay_s, int64_t idle_s)
{
    struct throttle_limits l = {maxc, delay_s * S, idle_s * S};
    return l;
}

static void test_window(void)
{
    struct throttle t;
    struct throttle_limits l = lim(10, 0, 5);
    int64_t now = 1000 * S, when = 0;

    memset(&t, 0, sizeof(t));
    is_int(throttle_limit(&t, &l, 0), THR_START_WINDOW,
           "a new destination starts at the start window");
    is_int(throttle_check(&t, &l, 0, 0, now, &when), THR_NEW,
           "nothing in flight: a new connection");
    is_int(throttle_check(&t, &l, THR_START_WINDOW, 0, now, &when), THR_FULL,
           "the start window in flight: full");
    throttle_done(&t, &l, 0, 1, 1, now);
    is_int(throttle_limit(&t, &l, 0), THR_START_WINDOW + 1, "a delivery that reached it: +1");
    for (int i = 0; i < 20; i++)
        throttle_done(&t, &l, 0, 1, 1, now);
    is_int(throttle_limit(&t, &l, 0), 10, "never above max_connections");
    is_int(throttle_check(&t, &l, 9, 0, now, &when), THR_NEW, "9 of 10: one more");
    is_int(throttle_check(&t, &l, 10, 0, now, &when), THR_FULL, "10 of 10: full");
    is_int(throttle_limit(&t, &l, 1), 1, "failing: one probe at a time");
    is_int(throttle_check(&t, &l, 0, 1, now, &when), THR_NEW, "failing: one probe");
    is_int(throttle_check(&t, &l, 1, 1, now, &when), THR_FULL, "and only one");
    throttle_failed(&t);
    is_int(throttle_limit(&t, &l, 0), 1, "after a failed delivery the window is one");
    throttle_done(&t, &l, 0, 1, 0, now);
    is_int(throttle_limit(&t, &l, 0), 1, "a delivery that did not reach it does not grow it");
    throttle_done(&t, &l, 0, 1, 1, now);
    is_int(throttle_limit(&t, &l, 0), 2, "then it grows again");

    struct throttle_limits one = lim(1, 0, 5);
    memset(&t, 0, sizeof(t));
    is_int(throttle_limit(&t, &one, 0), 1, "max_connections 1 caps the start window");
    is_int(throttle_check(&t, &one, 1, 0, now, &when), THR_FULL, "one in flight: full");
    struct throttle_limits zero = lim(0, 0, 5);
    is_int(throttle_limit(&t, &zero, 0), 1, "max_connections 0 counts as 1");
}

static void test_reuse(void)
{
    struct throttle t;
    struct throttle_limits l = lim(2, 3, 5);
    int64_t now = 1000 * S, when = 0;

    memset(&t, 0, sizeof(t));
    throttle_done(&t, &l, 1, 1, 1, now);
    is_int(throttle_idle(&t, &l, now), 1, "a kept connection is idle");
    is_int(throttle_check(&t, &l, 1, 0, now, &when), THR_REUSE, "the next delivery goes over it");
    is_int(throttle_started(&t, &l, now), 1, "and takes it");
    is_int(throttle_idle(&t, &l, now), 0, "no idle connection left");
    is_int(t.next_conn_us, 0, "no connection ended: no delay");
    is_int(throttle_check(&t, &l, 1, 0, now, &when), THR_NEW,
           "a second delivery meanwhile opens a new connection");
    is_int(throttle_started(&t, &l, now), 0, "which takes no idle connection");

    /* the batch ends: QUIT, connection_delay 3 s */
    throttle_done(&t, &l, 0, 1, 1, now + 1 * S);
    is_int(throttle_check(&t, &l, 1, 0, now + 2 * S, &when), THR_WAIT,
           "a new connection waits for connection_delay");
    is_int(when, now + 4 * S, "until 3 s after the close");
    is_int(throttle_check(&t, &l, 1, 0, now + 4 * S, &when), THR_NEW, "then it may open");

    /* an idle connection is used even during connection_delay */
    throttle_done(&t, &l, 1, 1, 1, now + 2 * S);
    is_int(throttle_check(&t, &l, 0, 0, now + 2 * S + 1, &when), THR_REUSE,
           "an idle connection is used at once, whatever connection_delay says");
    is_int(throttle_check(&t, &l, 2, 0, now + 2 * S + 1, &when), THR_FULL,
           "but not beyond the window");

    /* LIFO: the engine takes the most recently parked */
    memset(&t, 0, sizeof(t));
    throttle_done(&t, &l, 1, 1, 1, now);
    throttle_done(&t, &l, 1, 1, 1, now + 2 * S);
    throttle_started(&t, &l, now + 2 * S);
    is_int(t.nidle, 1, "one of two taken");
    ok(t.idle_until[0] == now + 5 * S, "the older one is left");

    /* a failed delivery that used a connection: it ended */
    memset(&t, 0, sizeof(t));
    throttle_done(&t, &l, 0, 1, 0, now);
    ok(t.next_conn_us == now + 3 * S, "a connection that ended with an error starts the delay");
    memset(&t, 0, sizeof(t));
    throttle_done(&t, &l, 0, 0, 0, now);
    is_int(t.next_conn_us, 0, "a delivery without a connection (DNS) does not");

    /* no reuse: connection_idle_timeout 0 */
    struct throttle_limits noidle = lim(2, 0, 0);
    memset(&t, 0, sizeof(t));
    throttle_done(&t, &noidle, 1, 1, 1, now);
    is_int(t.nidle, 0, "idle timeout 0: nothing is counted as idle");
}

static void test_idle_expiry(void)
{
    struct throttle t;
    struct throttle_limits l = lim(2, 2, 8); /* margin: min(1 s, 8/4 s) = 1 s */
    int64_t now = 1000 * S, when = 0;

    memset(&t, 0, sizeof(t));
    throttle_done(&t, &l, 1, 1, 1, now);
    is_int(throttle_idle(&t, &l, now + 6 * S), 1, "usable well before its timer");
    is_int(throttle_idle(&t, &l, now + 7 * S), 0, "not within the margin before its timer");
    ok(t.last_close_us == now + 8 * S, "counted as closed at its timer");
    is_int(t.nidle, 1, "still counted until then");
    is_int(throttle_check(&t, &l, 0, 0, now + 7 * S, &when), THR_WAIT,
           "a new connection waits for connection_delay after the idle close");
    ok(when == now + 10 * S, "until the timer + connection_delay");

    struct throttle_limits shortidle = lim(2, 0, 2); /* margin: 0.5 s */
    memset(&t, 0, sizeof(t));
    throttle_done(&t, &shortidle, 1, 1, 1, now);
    is_int(throttle_idle(&t, &shortidle, now + S + S / 4), 1,
           "short idle time: usable up to 1.5 s");
    is_int(throttle_idle(&t, &shortidle, now + S + S / 2), 0, "gone at 1.5 s");

    /* the table is bounded */
    memset(&t, 0, sizeof(t));
    for (int i = 0; i < THR_IDLE_MAX + 3; i++)
        throttle_done(&t, &l, 1, 1, 1, now + i);
    is_int(t.nidle, THR_IDLE_MAX, "at most THR_IDLE_MAX idle connections tracked");
    ok(t.last_close_us == now + THR_IDLE_MAX + 2, "the forgotten ones count as closed");

    /* the process went away */
    memset(&t, 0, sizeof(t));
    throttle_done(&t, &l, 1, 1, 1, now);
    throttle_lost(&t, &l, now + S);
    is_int(t.nidle, 0, "lost: no idle connection");
    ok(t.next_conn_us == now + 3 * S, "and the delay runs from then");
}

static void test_budget(void)
{
    struct throttle t;
    struct throttle_limits l = lim(5, 0, 8);
    int64_t now = 1000 * S;

    ok(throttle_room_new(2, 0, 3), "2 in flight of 3: room for a new connection");
    ok(!throttle_room_new(2, 1, 3), "2 in flight and 1 idle of 3: none");
    ok(!throttle_room_new(3, 0, 3), "3 in flight of 3: none");
    ok(throttle_keep(2, 1, 2, 1, 3), "more ready mail than deliveries in flight: keep");
    ok(!throttle_keep(1, 1, 2, 0, 3), "no backlog and no room to spare: do not keep");
    ok(throttle_keep(0, 0, 0, 0, 10), "no backlog but room to spare: keep (a trickle)");
    ok(!throttle_keep(0, 0, 8, 1, 10), "room for this delivery only: do not keep");
    ok(throttle_keep(0, 0, 8, 0, 10), "room for this one and an idle connection: keep");

    memset(&t, 0, sizeof(t));
    ok(throttle_idle_next(&t, &l) == INT64_MAX, "no idle connection: no expiry");
    throttle_done(&t, &l, 1, 1, 1, now + 2 * S);
    throttle_done(&t, &l, 1, 1, 1, now);
    ok(throttle_idle_next(&t, &l) == now + 8 * S, "the first leaves the budget at its timer");
    is_int(throttle_idle_count(&t, &l, now + 7 * S), 1, "usable until 1 s before its timer");
    is_int(throttle_idle(&t, &l, now + 7 * S), 1, "then one is usable");
    is_int(t.nidle, 2, "but both still count for the budget");
    is_int(throttle_started(&t, &l, now + 7 * S), 1, "a delivery takes the usable one");
    is_int(t.nidle, 1, "the closing one stays counted");
    ok(t.idle_until[0] == now + 8 * S, "(the closing one)");
    is_int(throttle_started(&t, &l, now + 7 * S), 0, "it is not handed out");
    throttle_idle(&t, &l, now + 8 * S);
    is_int(t.nidle, 0, "gone at its timer");
}

int main(void)
{
    plan_lazy();
    test_window();
    test_reuse();
    test_idle_expiry();
    test_budget();
    is_str(throttle_verdict_name(THR_WAIT), "wait", "verdict names");
    return tap_done();
}
