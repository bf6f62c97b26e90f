/*
 * decide - next step for a recipient group and the state a result leads
 * to, for the rules alone (no gateways, no message facts); see decide.h.
 * The full decision with gateways and message facts is route.h's.
 */
#include "decide.h"

#include "mail/dlv_proto.h"
#include "route.h"

const char *rstate_name(enum rstate s)
{
    static const char *const names[] = {"pending", "sent", "deferred", "failed"};

    return (unsigned)s < 4 ? names[s] : "?";
}

struct qdecision decide_next(const struct qpolicy *p, const struct qhist *h, int64_t now)
{
    struct route_ctx c = {p, NULL, 0, NULL};
    struct route_plan r = route_decide(&c, h, now);
    struct qdecision d = {r.next, r.expired, r.next == QNEXT_FAIL ? r.why : NULL};

    return d;
}

struct qoutcome decide_result(const struct qpolicy *p, const struct qhist *h, int status,
                              int64_t now, uint32_t rnd)
{
    struct route_ctx c = {p, NULL, 0, NULL};

    return route_result(&c, h, h->relay_attempts > 0 ? DLV_PHASE_RELAY : DLV_PHASE_DIRECT, status,
                        now, rnd);
}
