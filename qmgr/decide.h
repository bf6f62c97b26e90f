/*
 * decide - the plain data that decisions about a recipient group (the
 * recipients of one message at one domain) are made over:
 *
 *   struct qpolicy   the rules in force for a domain;
 *   struct qhist     what is known of the group so far;
 *   enum qnext       what the next attempt is: direct, relay, or none;
 *   struct qoutcome  the state one delivery result leads to;
 *   enum rstate      a recipient's state, and rstate_name() for it.
 *
 * The decision itself is route.h's (route_decide, route_result); qmgr
 * reaches it through policy.h (policy_plan, policy_result).
 */
#ifndef QMGR_DECIDE_H
#define QMGR_DECIDE_H

#include <stdint.h>

/* gateway_policy, in the order of the parameter table's choices. */
enum gw_policy { GWP_NEVER = 0, GWP_UNDELIVERED, GWP_ON_ERROR, GWP_ALWAYS };

/*
 * The rules in force for a domain: its etc/domains entry over main.cf
 * (route.h builds them, policy.h caches them; route.h decides with them).
 * A zeroed struct is "no relay at all" (gateway_policy never, no route,
 * no gateways).
 */
struct qpolicy {
    long long direct_attempts;
    long long relay_attempts;
    long long max_queue_lifetime; /* seconds */
    long long delay_warning_time; /* seconds, 0: no delay notices */
    long long retry_delay;        /* seconds */
    long long retry_delay_max;    /* seconds, 0: fixed */
    long long max_connections;
    int tls;  /* enum tls_mode */
    int port; /* direct_port */
    /* throttles (issue 7 uses them) */
    long long messages_per_connection;
    long long connection_delay; /* seconds */
    /* routing (DESIGN section 4) */
    int gateway_policy;        /* enum gw_policy */
    unsigned relay_on;         /* bit (1u << enum dlv_class) per class of relay_on_errors */
    long long direct_max_age;  /* seconds, 0: off */
    long long relay_size_over; /* bytes, 0: off */
    int route_kind;            /* enum route_kind (domains.h) */
    char *route_host;          /* ROUTE_SMTP: host, and */
    int route_port;            /* its port (0: direct_port) */
    int route_no_mx;           /* [host]: no MX lookup */
    char **gateways;           /* the domain's subset of gateways (NULL or empty: all) */
    char **mx;                 /* mx= DNS override (NULL or empty: none) */
    char *matched;             /* the etc/domains key that matched, or "main.cf" */
    char *route_text;          /* route as written ("" when none) */
    int local;                 /* the domain is in mydestination: local delivers it */
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

/* QNEXT_LOCAL: a domain of mydestination, delivered by local (docs/local.md). */
enum qnext { QNEXT_DIRECT, QNEXT_RELAY, QNEXT_FAIL, QNEXT_LOCAL };

struct qoutcome {
    enum rstate state; /* RS_SENT, RS_DEFERRED or RS_FAILED */
    int expired;
    int64_t next_try_us; /* RS_DEFERRED */
    const char *why;     /* RS_FAILED after a temporary error: why no retry */
};

/* "pending" "sent" "deferred" "failed" */
const char *rstate_name(enum rstate s);

#endif
