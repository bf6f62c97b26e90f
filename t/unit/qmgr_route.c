/*
 * qmgr_route - unit tests of the routing decision (qmgr/route.c) on a
 * table that covers every clause of DESIGN section 4: the direct phase,
 * the relay phase, rotation between attempts, failover order inside an
 * attempt, disabled gateways, gateway_policy never / undelivered (by
 * count and by direct_max_age) / on_error with relay_on_errors classes /
 * always, route = relay, static routes (ignored under always), the mx=
 * override, relay_size_over, the sender map, expiry and permanent
 * errors; and the rules built from an etc/domains entry over main.cf.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../qmgr/route.h"
#include "mail/config.h"
#include "mail/dlv_proto.h"
#include "mail/domains.h"
#include "mail/gateways.h"
#include "tap.h"
#include "base/util.h"

#define S 1000000LL
#define T0 (1700000000LL * S)

/* A string literal as the char * a word list holds (-Wwrite-strings). */
#define W(s) ((char *)(uintptr_t)(s))

static const char *MAINCF = "relay_gateways = a=10.0.0.1/high b=10.0.0.2 c=10.0.0.3/low "
                            "d=10.0.0.4/highest/disabled\n"
                            "retry_delay = 60s\nretry_delay_max = 0\nmax_queue_lifetime = 5d\n";

static struct config cfg;
static struct gateways gws;

/* The policy for a domains-map entry (text) over main.cf. */
static void policy(const char *rule, struct qpolicy *p)
{
    struct domain_rule r;
    char *err = NULL;

    if (!ok(domain_rule_parse(rule, &r, &err) == 0, "rule '%s' parses", rule)) {
        diag("%s", err);
        free(err);
        qpolicy_build(NULL, &cfg, p);
        return;
    }
    free(r.matched);
    r.matched = xstrdup("example.test");
    qpolicy_build(&r, &cfg, p);
    domain_rule_free(&r);
}

static const char *order(const struct route_plan *r)
{
    static char buf[128];

    buf[0] = '\0';
    for (size_t i = 0; i < r->ngw; i++) {
        strcat(buf, i ? "," : "");
        strcat(buf, r->gw[i]->name);
    }
    return buf;
}

struct row {
    const char *name;
    const char *rule; /* etc/domains options */
    uint64_t size;
    const char *sender_gws; /* comma list, or NULL */
    unsigned direct, relay; /* attempts made */
    long long failing_s;    /* first failure this long ago (-1: never failed) */
    int last_class;
    long long age_s; /* message age */
    int no_gateways; /* relay_gateways empty */
    /* expected */
    enum qnext next;
    const char *gws; /* QNEXT_RELAY: order */
    const char *why; /* substring of why (NULL: not checked) */
    int static_route;
    unsigned attempt; /* 0: not checked */
};

static const struct row rows[] = {
    /* direct phase */
    {"fresh mail: direct", "", 0, NULL, 0, 0, -1, 0, 0, 0, QNEXT_DIRECT, NULL, NULL, 0, 1},
    {"3 of 100 direct attempts: direct again", "", 0, NULL, 3, 0, 60, DLV_CLASS_SMTP, 300, 0,
     QNEXT_DIRECT, NULL, NULL, 0, 4},
    /* relay phase after the direct attempts (undelivered, by count) */
    {"direct attempts spent: relay, by priority, disabled skipped", "direct_attempts=2", 0, NULL, 2,
     0, 60, DLV_CLASS_SMTP, 300, 0, QNEXT_RELAY, "a,b,c", "direct_attempts used up", 0, 1},
    {"rotation: relay attempt 2 starts at the second gateway", "direct_attempts=2", 0, NULL, 2, 1,
     60, DLV_CLASS_SMTP, 300, 0, QNEXT_RELAY, "b,c,a", "relay phase", 0, 2},
    {"rotation: relay attempt 3 at the third", "direct_attempts=2", 0, NULL, 2, 2, 60,
     DLV_CLASS_SMTP, 300, 0, QNEXT_RELAY, "c,a,b", NULL, 0, 3},
    {"rotation wraps: relay attempt 4 at the first again", "direct_attempts=2", 0, NULL, 2, 3, 60,
     DLV_CLASS_SMTP, 300, 0, QNEXT_RELAY, "a,b,c", NULL, 0, 4},
    {"direct_attempts=0: straight to the gateways", "direct_attempts=0", 0, NULL, 0, 0, -1, 0, 0, 0,
     QNEXT_RELAY, "a,b,c", "direct_attempts is 0", 0, 1},
    {"relay_attempts=0: fail after the direct attempts", "direct_attempts=2 relay_attempts=0", 0,
     NULL, 2, 0, 60, DLV_CLASS_NETWORK, 300, 0, QNEXT_FAIL, NULL,
     "direct_attempts used up and relay_attempts is 0", 0, 0},
    {"relay attempts used up: fail", "direct_attempts=2 relay_attempts=3", 0, NULL, 2, 3, 60,
     DLV_CLASS_SMTP, 300, 0, QNEXT_FAIL, NULL, "relay_attempts used up", 0, 0},
    {"no gateway configured: fail once direct is spent", "direct_attempts=2", 0, NULL, 2, 0, 60,
     DLV_CLASS_SMTP, 300, 1, QNEXT_FAIL, NULL, "no enabled relay gateway", 0, 0},
    /* never */
    {"never: no relay phase", "gateway_policy=never direct_attempts=2", 0, NULL, 2, 0, 60,
     DLV_CLASS_SMTP, 300, 0, QNEXT_FAIL, NULL, "gateway_policy is never", 0, 0},
    {"never with direct_attempts=0: fail", "gateway_policy=never direct_attempts=0", 0, NULL, 0, 0,
     -1, 0, 0, 0, QNEXT_FAIL, NULL, "direct_attempts is 0", 0, 0},
    {"never: direct while attempts are left", "gateway_policy=never", 0, NULL, 5, 0, 60,
     DLV_CLASS_DNS, 300, 0, QNEXT_DIRECT, NULL, NULL, 0, 6},
    /* undelivered by direct_max_age */
    {"direct_max_age not reached: direct", "direct_max_age=1h", 0, NULL, 3, 0, 3599,
     DLV_CLASS_NETWORK, 3600, 0, QNEXT_DIRECT, NULL, NULL, 0, 4},
    {"direct_max_age reached: relay", "direct_max_age=1h", 0, NULL, 3, 0, 3600, DLV_CLASS_NETWORK,
     3700, 0, QNEXT_RELAY, "a,b,c", "direct_max_age", 0, 1},
    {"direct_max_age without a failure yet: direct", "direct_max_age=1s", 0, NULL, 0, 0, -1, 0,
     3600, 0, QNEXT_DIRECT, NULL, NULL, 0, 1},
    {"direct_max_age under never: no switch", "gateway_policy=never direct_max_age=1s", 0, NULL, 3,
     0, 3600, DLV_CLASS_NETWORK, 3700, 0, QNEXT_DIRECT, NULL, NULL, 0, 4},
    /* on_error */
    {"on_error dns: a dns error switches at once", "gateway_policy=on_error relay_on_errors=dns", 0,
     NULL, 1, 0, 1, DLV_CLASS_DNS, 10, 0, QNEXT_RELAY, "a,b,c", "dns error", 0, 1},
    {"on_error smtp only: a dns error does not switch",
     "gateway_policy=on_error relay_on_errors=smtp", 0, NULL, 1, 0, 1, DLV_CLASS_DNS, 10, 0,
     QNEXT_DIRECT, NULL, NULL, 0, 2},
    {"on_error smtp: an smtp error switches", "gateway_policy=on_error relay_on_errors=smtp", 0,
     NULL, 1, 0, 1, DLV_CLASS_SMTP, 10, 0, QNEXT_RELAY, "a,b,c", "smtp error", 0, 1},
    {"on_error dns,network: a network error switches",
     "gateway_policy=on_error relay_on_errors=dns,network", 0, NULL, 1, 0, 1, DLV_CLASS_NETWORK, 10,
     0, QNEXT_RELAY, "a,b,c", "network error", 0, 1},
    {"undelivered: a dns error does not switch", "gateway_policy=undelivered", 0, NULL, 1, 0, 1,
     DLV_CLASS_DNS, 10, 0, QNEXT_DIRECT, NULL, NULL, 0, 2},
    {"on_error with relay_attempts=0: direct goes on",
     "gateway_policy=on_error relay_on_errors=dns relay_attempts=0", 0, NULL, 1, 0, 1,
     DLV_CLASS_DNS, 10, 0, QNEXT_DIRECT, NULL, NULL, 0, 2},
    {"on_error: direct attempts spent also switch",
     "gateway_policy=on_error relay_on_errors=smtp direct_attempts=2", 0, NULL, 2, 0, 60,
     DLV_CLASS_DNS, 60, 0, QNEXT_RELAY, "a,b,c", "direct_attempts used up", 0, 1},
    /* always and listed domains */
    {"always: relay only, from the first attempt", "gateway_policy=always", 0, NULL, 0, 0, -1, 0, 0,
     0, QNEXT_RELAY, "a,b,c", "gateway_policy always", 0, 1},
    {"always ignores the static route", "gateway_policy=always route=smtp:[10.9.9.9]:2525", 0, NULL,
     0, 0, -1, 0, 0, 0, QNEXT_RELAY, "a,b,c", "gateway_policy always", 0, 1},
    {"always with relay_attempts=0: fail", "gateway_policy=always relay_attempts=0", 0, NULL, 0, 0,
     -1, 0, 0, 0, QNEXT_FAIL, NULL, "relay_attempts is 0", 0, 0},
    {"route=relay: the listed domain uses the gateways", "route=relay", 0, NULL, 0, 0, -1, 0, 0, 0,
     QNEXT_RELAY, "a,b,c", "route = relay", 0, 1},
    {"route=relay under never still uses the gateways", "route=relay gateway_policy=never", 0, NULL,
     0, 0, -1, 0, 0, 0, QNEXT_RELAY, "a,b,c", "route = relay", 0, 1},
    {"route=relay with a subset, in priority order", "route=relay gateways=c,b", 0, NULL, 0, 0, -1,
     0, 0, 0, QNEXT_RELAY, "b,c", NULL, 0, 1},
    {"a subset of disabled gateways only: fail", "route=relay gateways=d", 0, NULL, 0, 0, -1, 0, 0,
     0, QNEXT_FAIL, NULL, "no enabled gateway among the domain's gateways", 0, 0},
    /* static route */
    {"static route: direct through it", "route=smtp:[10.9.9.9]:2525", 0, NULL, 0, 0, -1, 0, 0, 0,
     QNEXT_DIRECT, NULL, NULL, 1, 1},
    {"static route spent: relay (undelivered)", "route=smtp:relay.example:2525 direct_attempts=1",
     0, NULL, 1, 0, 60, DLV_CLASS_NETWORK, 60, 0, QNEXT_RELAY, "a,b,c", NULL, 0, 1},
    {"mx= override: direct", "mx=10.1.1.1,10.1.1.2", 0, NULL, 0, 0, -1, 0, 0, 0, QNEXT_DIRECT, NULL,
     NULL, 0, 1},
    /* size and sender */
    {"bigger than relay_size_over: relay", "relay_size_over=1000", 1001, NULL, 0, 0, -1, 0, 0, 0,
     QNEXT_RELAY, "a,b,c", "relay_size_over", 0, 1},
    {"relay_size_over itself: direct", "relay_size_over=1000", 1000, NULL, 0, 0, -1, 0, 0, 0,
     QNEXT_DIRECT, NULL, NULL, 0, 1},
    {"relay_size_over=0 is off", "relay_size_over=0", 1000000000, NULL, 0, 0, -1, 0, 0, 0,
     QNEXT_DIRECT, NULL, NULL, 0, 1},
    {"sender map: relay through the sender's gateways", "", 0, "c", 0, 0, -1, 0, 0, 0, QNEXT_RELAY,
     "c", "sender map", 0, 1},
    {"sender map wins over the domain's subset", "gateways=a", 0, "c,b", 0, 0, -1, 0, 0, 0,
     QNEXT_RELAY, "b,c", "sender map", 0, 1},
    {"sender map naming a disabled gateway: fail", "", 0, "d", 0, 0, -1, 0, 0, 0, QNEXT_FAIL, NULL,
     "sender map", 0, 0},
    {"sender map under never still relays", "gateway_policy=never", 0, "b", 0, 0, -1, 0, 0, 0,
     QNEXT_RELAY, "b", NULL, 0, 1},
    /* expiry */
    {"expired (tried, older than max_queue_lifetime)", "max_queue_lifetime=1h", 0, NULL, 3, 0, 3600,
     DLV_CLASS_NETWORK, 3601, 0, QNEXT_FAIL, NULL, "expired", 0, 0},
    {"never tried: one try even when old", "max_queue_lifetime=1h", 0, NULL, 0, 0, -1, 0, 7200, 0,
     QNEXT_DIRECT, NULL, NULL, 0, 1},
    {"expiry in the relay phase too", "max_queue_lifetime=1h route=relay", 0, NULL, 0, 2, 3600,
     DLV_CLASS_NETWORK, 3601, 0, QNEXT_FAIL, NULL, "expired", 0, 0},
};

static char **split(const char *s)
{
    char **v = xcalloc(8, sizeof(char *));
    char *copy = xstrdup(s), *save, *tok;
    size_t n = 0;

    for (tok = strtok_r(copy, ",", &save); tok && n < 7; tok = strtok_r(NULL, ",", &save))
        v[n++] = xstrdup(tok);
    free(copy);
    return v;
}

static void strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

static void test_table(void)
{
    int64_t now = T0 + 100000 * S;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        struct qpolicy p;
        char **sg = w->sender_gws ? split(w->sender_gws) : NULL;
        struct route_ctx c;
        struct qhist h;
        struct route_plan r;

        policy(w->rule, &p);
        c = (struct route_ctx){&p, w->no_gateways ? NULL : &gws, w->size, sg};
        memset(&h, 0, sizeof(h));
        h.arrival_us = now - w->age_s * S;
        h.first_fail_us = w->failing_s >= 0 ? now - w->failing_s * S : 0;
        h.direct_attempts = w->direct;
        h.relay_attempts = w->relay;
        h.last_class = w->last_class;
        r = route_decide(&c, &h, now);
        is_int(r.next, w->next, "%s: next", w->name);
        if (w->gws)
            is_str(order(&r), w->gws, "%s: gateway order", w->name);
        if (w->why && !ok(r.why && strstr(r.why, w->why), "%s: why has '%s'", w->name, w->why))
            diag("why: %s", r.why ? r.why : "(null)");
        if (w->next == QNEXT_DIRECT)
            is_int(r.static_route, w->static_route, "%s: static route", w->name);
        if (w->attempt)
            is_int(r.attempt, w->attempt, "%s: attempt number", w->name);
        strv_free(sg);
        qpolicy_clear(&p);
    }
}

/* What a result turns a recipient into. */
static void test_result(void)
{
    struct qpolicy p;
    struct route_ctx c;
    struct qhist h;
    struct qoutcome o;
    int64_t now = T0 + 1000 * S;

    memset(&h, 0, sizeof(h));
    h.arrival_us = T0;

    policy("direct_attempts=3 retry_delay_max=1h", &p);
    c = (struct route_ctx){&p, &gws, 0, NULL};
    h.direct_attempts = 1;
    h.last_class = DLV_CLASS_SMTP;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_OK, now, 0);
    is_int(o.state, RS_SENT, "ok: sent");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_PERM, now, 0);
    is_int(o.state, RS_FAILED, "undelivered: a permanent error fails");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, now, 0);
    is_int(o.state, RS_DEFERRED, "temporary, direct attempts left: deferred");
    is_int(o.next_try_us, now + 60 * S, "... after retry_delay");
    h.direct_attempts = 3;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, now, 0);
    is_int(o.state, RS_DEFERRED, "last direct attempt failed: deferred to the relay phase");
    is_int(o.next_try_us, now, "... tried through the gateways at once");
    h.relay_attempts = 2;
    o = route_result(&c, &h, DLV_PHASE_RELAY, DLV_TEMP, now, 0);
    is_int(o.next_try_us, now + 120 * S, "relay phase: the delay grows with relay attempts");
    o = route_result(&c, &h, DLV_PHASE_RELAY, DLV_PERM, now, 0);
    is_int(o.state, RS_FAILED, "a permanent error from a gateway fails");
    qpolicy_clear(&p);

    policy("direct_attempts=3 relay_attempts=2", &p);
    c.p = &p;
    h.direct_attempts = 3;
    h.relay_attempts = 2;
    o = route_result(&c, &h, DLV_PHASE_RELAY, DLV_TEMP, now, 0);
    is_int(o.state, RS_FAILED, "last relay attempt failed: failed");
    ok(o.why && strstr(o.why, "relay_attempts used up"), "... saying why");
    qpolicy_clear(&p);

    /* on_error: permanent errors of a listed class go to the gateways */
    policy("gateway_policy=on_error relay_on_errors=smtp", &p);
    c.p = &p;
    h.direct_attempts = 1;
    h.relay_attempts = 0;
    h.last_class = DLV_CLASS_SMTP;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_PERM, now, 0);
    is_int(o.state, RS_DEFERRED, "on_error smtp: a direct 5xx goes to the relay phase");
    is_int(o.next_try_us, now, "... at once");
    h.last_class = DLV_CLASS_DNS;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_PERM, now, 0);
    is_int(o.state, RS_FAILED, "on_error smtp: a permanent dns error fails");
    h.last_class = DLV_CLASS_SMTP;
    h.relay_attempts = 1;
    o = route_result(&c, &h, DLV_PHASE_RELAY, DLV_PERM, now, 0);
    is_int(o.state, RS_FAILED, "on_error: a 5xx in the relay phase fails");
    qpolicy_clear(&p);

    policy("gateway_policy=on_error relay_on_errors=dns", &p);
    c.p = &p;
    h.direct_attempts = 1;
    h.relay_attempts = 0;
    h.last_class = DLV_CLASS_DNS;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, now, 0);
    is_int(o.state, RS_DEFERRED, "on_error dns: a dns failure is deferred");
    is_int(o.next_try_us, now, "... to a relay attempt at once");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_PERM, now, 0);
    is_int(o.state, RS_DEFERRED, "on_error dns: NXDOMAIN goes to the gateways too (PostCast)");
    c.gws = NULL;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_PERM, now, 0);
    is_int(o.state, RS_FAILED, "... but fails when no gateway could take it");
    c.gws = &gws;
    qpolicy_clear(&p);

    policy("gateway_policy=on_error relay_on_errors=smtp relay_attempts=0", &p);
    c.p = &p;
    h.last_class = DLV_CLASS_SMTP;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_PERM, now, 0);
    is_int(o.state, RS_FAILED, "on_error with relay_attempts=0: a 5xx fails");
    qpolicy_clear(&p);

    /* direct_max_age: the next try is never after the switch time */
    policy("direct_max_age=100s", &p);
    c.p = &p;
    h.direct_attempts = 1;
    h.relay_attempts = 0;
    h.last_class = DLV_CLASS_NETWORK;
    h.first_fail_us = now - 70 * S;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, now, 0);
    is_int(o.next_try_us, now + 30 * S, "direct_max_age: next try at the switch time");
    h.first_fail_us = 0;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, now, 0);
    is_int(o.next_try_us, now + 60 * S, "first failure: retry_delay (the switch is later)");
    qpolicy_clear(&p);

    /* expiry clamps the next try */
    policy("max_queue_lifetime=1030s", &p);
    c.p = &p;
    h.first_fail_us = 0;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, now, 0);
    is_int(o.next_try_us, T0 + 1030 * S, "next try clamped to the expiry time");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, T0 + 1030 * S, 0);
    is_int(o.state, RS_FAILED, "temporary failure at the expiry time: failed");
    ok(o.expired, "... as expired");
    qpolicy_clear(&p);

    /* no gateways configured, no message facts: the rules alone */
    policy("direct_attempts=2", &p);
    struct route_ctx bare = {&p, NULL, 0, NULL};
    h = (struct qhist){T0, 0, 2, 0, DLV_CLASS_SMTP, DLV_STEP_RCPT};
    o = route_result(&bare, &h, DLV_PHASE_DIRECT, DLV_TEMP, now, 0);
    is_int(o.state, RS_FAILED, "no gateways, direct spent: failed");
    qpolicy_clear(&p);
}

/* The rules built from an entry over main.cf. */
/* A mydestination domain (qpolicy.local): local, whatever the rules say
 * about gateways, until max_queue_lifetime. */
static void test_local(void)
{
    struct qpolicy p;
    struct route_ctx c;
    struct qhist h;
    struct route_plan r;
    struct qoutcome o;
    int64_t now = T0 + 1000 * S;

    memset(&h, 0, sizeof(h));
    h.arrival_us = T0;
    policy("gateway_policy=always direct_attempts=1", &p);
    p.local = 1;
    c = (struct route_ctx){&p, &gws, 0, NULL};
    r = route_decide(&c, &h, now);
    is_int(r.next, QNEXT_LOCAL, "local domain: local, even under gateway_policy always");
    is_int(r.attempt, 1, "local: attempt 1");
    h.direct_attempts = 5;
    h.last_class = DLV_CLASS_MAILBOX;
    r = route_decide(&c, &h, now);
    is_int(r.next, QNEXT_LOCAL, "local: no attempt limit (direct_attempts=1 does not apply)");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_TEMP, now, 0);
    is_int(o.state, RS_DEFERRED, "local: a temporary failure (disk full) defers");
    is_int(o.next_try_us, now + 60 * S, "... after retry_delay, never through the gateways");
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_PERM, now, 0);
    is_int(o.state, RS_FAILED, "local: a permanent failure (unknown user) fails");
    qpolicy_clear(&p);
    policy("gateway_policy=on_error relay_on_errors=smtp", &p);
    p.local = 1;
    c.p = &p;
    h.last_class = DLV_CLASS_SMTP;
    o = route_result(&c, &h, DLV_PHASE_DIRECT, DLV_PERM, now, 0);
    is_int(o.state, RS_FAILED, "local under on_error: a permanent failure is final");
    h.direct_attempts = 1;
    r = route_decide(&c, &h, T0 + 6 * 86400 * S);
    is_int(r.next, QNEXT_FAIL, "local: expired after max_queue_lifetime");
    ok(r.expired, "... as expired");
    qpolicy_clear(&p);
}

static void test_build(void)
{
    struct qpolicy p;

    policy("tls=encrypt max_connections=3 retry_delay=10s route=smtp:[10.9.9.9]:2525 "
           "mx=10.1.1.1,host.example:26 relay_on_errors=smtp,network messages_per_connection=7 "
           "connection_delay=2s",
           &p);
    is_int(p.tls, TLS_MODE_ENCRYPT, "tls from the entry");
    is_int(p.max_connections, 3, "max_connections from the entry");
    is_int(p.retry_delay, 10, "retry_delay from the entry");
    is_int(p.messages_per_connection, 7, "messages_per_connection from the entry");
    is_int(p.connection_delay, 2, "connection_delay from the entry");
    is_int(p.max_queue_lifetime, 5 * 86400, "max_queue_lifetime from main.cf");
    is_int(p.retry_delay_max, 0, "retry_delay_max from main.cf");
    is_int(p.direct_attempts, 100, "direct_attempts: the default");
    is_int(p.gateway_policy, GWP_UNDELIVERED, "gateway_policy: the default (undelivered)");
    is_int(p.route_kind, ROUTE_SMTP, "static route");
    is_str(p.route_host, "10.9.9.9", "route host");
    is_int(p.route_port, 2525, "route port");
    ok(p.route_no_mx, "[host]: no MX lookup");
    is_str(p.route_text, "smtp:[10.9.9.9]:2525", "route as written");
    ok(p.mx && p.mx[0] && p.mx[1] && !p.mx[2], "two mx= entries");
    is_str(p.mx[1], "host.example:26", "mx entry with port");
    is_int(p.relay_on, (1u << DLV_CLASS_SMTP) | (1u << DLV_CLASS_NETWORK), "relay_on_errors");
    is_str(p.matched, "example.test", "the key that matched");
    qpolicy_clear(&p);
    qpolicy_build(NULL, &cfg, &p);
    is_str(p.matched, "main.cf", "no entry: main.cf");
    is_int(p.relay_on, (1u << DLV_CLASS_DNS) | (1u << DLV_CLASS_NETWORK),
           "relay_on_errors default: dns network");
    is_int(p.route_kind, ROUTE_DEFAULT, "no route");
    ok(p.gateways && p.gateways[0] == NULL, "no subset");
    qpolicy_clear(&p);
    is_int(route_class_mask((char *[]){W("dns"), W("bogus"), W("smtp"), NULL}),
           (1u << DLV_CLASS_DNS) | (1u << DLV_CLASS_SMTP), "class mask ignores unknown words");
}

int main(void)
{
    char *err = NULL;

    plan_lazy();
    if (config_load_text(&cfg, "/tmp", "main.cf", MAINCF, NULL, &err) != 0) {
        diag("main.cf: %s", err);
        return 1;
    }
    if (gateways_parse(cfg_list(&cfg, P_relay_gateways), &gws, &err) != 0) {
        diag("relay_gateways: %s", err);
        return 1;
    }
    test_table();
    test_result();
    test_local();
    test_build();
    gateways_free(&gws);
    config_free(&cfg);
    return done_testing();
}
