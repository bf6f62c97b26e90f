/*
 * decide - next step for a recipient group and the state a result leads
 * to; see decide.h.
 */
#include "decide.h"

#include "delivery.h"
#include "retry.h"

const char *rstate_name(enum rstate s)
{
    static const char *const names[] = {"pending", "sent", "deferred", "failed"};

    return (unsigned)s < 4 ? names[s] : "?";
}

static int64_t expiry_us(const struct qpolicy *p, const struct qhist *h)
{
    return h->arrival_us + (int64_t)p->max_queue_lifetime * 1000000;
}

struct qdecision decide_next(const struct qpolicy *p, const struct qhist *h, int64_t now)
{
    struct qdecision d = {QNEXT_DIRECT, 0, NULL};
    unsigned tried = h->direct_attempts + h->relay_attempts;

    /* Mail is given at least one try, however long it sat (held, or a
     * lifetime of 0 meaning "one attempt only"). */
    if (tried > 0 && now >= expiry_us(p, h)) {
        d.next = QNEXT_FAIL;
        d.expired = 1;
        d.why = "expired: undelivered for max_queue_lifetime";
        return d;
    }
    if ((long long)h->direct_attempts < p->direct_attempts)
        return d;
    d.next = QNEXT_FAIL;
    d.why = p->direct_attempts > 0 ? "direct_attempts used up and no relay phase"
                                   : "direct_attempts is 0 and no relay phase";
    return d;
}

struct qoutcome decide_result(const struct qpolicy *p, const struct qhist *h, int status,
                              int64_t now, uint32_t rnd)
{
    struct qoutcome o = {RS_SENT, 0, 0, NULL};
    struct qdecision d;
    int64_t t, exp;

    if (status == DLV_OK)
        return o;
    if (status != DLV_TEMP) {
        o.state = RS_FAILED;
        return o;
    }
    d = decide_next(p, h, now);
    if (d.next == QNEXT_FAIL) {
        o.state = RS_FAILED;
        o.expired = d.expired;
        o.why = d.why;
        return o;
    }
    t = now + retry_delay_us(p->retry_delay, p->retry_delay_max,
                             h->direct_attempts + h->relay_attempts, rnd);
    exp = expiry_us(p, h);
    if (t > exp)
        t = exp > now ? exp : now;
    o.state = RS_DEFERRED;
    o.next_try_us = t;
    return o;
}
