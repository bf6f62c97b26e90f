/*
 * decide - what happens next to a recipient group (the recipients of one
 * message at one domain), as plain functions over plain data.
 *
 * decide_next(policy, history, now) is asked before every delivery of a
 * group: deliver directly, go through the relay phase, or fail (expired
 * after max_queue_lifetime, or no attempts left). Issue 5 has the direct
 * phase only: once direct_attempts are used up the group fails. The
 * routing issue replaces the body with the full DESIGN section 4 rules
 * (route_decide) over the same inputs: attempt counts per phase, the
 * first failure time and the last error's class and step.
 *
 * decide_result(policy, history, status, now, rnd) turns one recipient's
 * delivery result into its new state: sent, failed (permanent error, or a
 * temporary one when no further attempt is allowed), or deferred with
 * the time of the next try (retry.h), never later than the expiry time
 * so that expiry happens on time. `history` already counts the attempt
 * that produced the result.
 */
#ifndef QMGR_DECIDE_H
#define QMGR_DECIDE_H

#include <stdint.h>

/* The rules in force for a domain (main.cf now; etc/domains later). */
struct qpolicy {
    long long direct_attempts;
    long long relay_attempts;
    long long max_queue_lifetime; /* seconds */
    long long retry_delay;        /* seconds */
    long long retry_delay_max;    /* seconds, 0: fixed */
    long long max_connections;
    int tls;  /* enum dlv_tls */
    int port; /* direct_port */
};

/* Recipient states, as stored (qrec.h) and shown (smtpctl show queue). */
enum rstate { RS_PENDING = 0, RS_SENT = 1, RS_DEFERRED = 2, RS_FAILED = 3 };

/* What is known of a recipient (group) so far. */
struct qhist {
    int64_t arrival_us;    /* the message's arrival */
    int64_t first_fail_us; /* 0: never failed */
    unsigned direct_attempts;
    unsigned relay_attempts;
    int last_class; /* enum dlv_class of the last error */
    int last_step;  /* enum dlv_step */
};

enum qnext { QNEXT_DIRECT, QNEXT_RELAY, QNEXT_FAIL };

struct qdecision {
    enum qnext next;
    int expired;     /* QNEXT_FAIL because of max_queue_lifetime */
    const char *why; /* QNEXT_FAIL: static text for logs */
};

struct qoutcome {
    enum rstate state; /* RS_SENT, RS_DEFERRED or RS_FAILED */
    int expired;
    int64_t next_try_us; /* RS_DEFERRED */
    const char *why;     /* RS_FAILED after a temporary error: why no retry */
};

struct qdecision decide_next(const struct qpolicy *p, const struct qhist *h, int64_t now);
/* status: enum dlv_status (DLV_OK, DLV_TEMP, DLV_PERM). */
struct qoutcome decide_result(const struct qpolicy *p, const struct qhist *h, int status,
                              int64_t now, uint32_t rnd);
/* "pending" "sent" "deferred" "failed" */
const char *rstate_name(enum rstate s);

#endif
