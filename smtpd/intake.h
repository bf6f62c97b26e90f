/*
 * intake - who may open a session and send mail, and how long a session
 * may take: smtpd's defence against clients that hold slots without
 * working (idle connections, 1-byte-a-second DATA) and against floods.
 * Pure bookkeeping without I/O; server.c asks and obeys, unit tests
 * drive it with made-up clocks.
 *
 *   intake_admit(in, addr, now)  may a new connection from addr start?
 *                                0 and the session is counted, or -1 and
 *                                *why (for the 421 and the log)
 *   intake_release(in, addr)     a session of addr ended
 *   intake_message(in, addr, now)  may addr start one more message (at
 *                                MAIL)? 0, or -1 and *why (a 452)
 *   intake_stressed(in)          is smtpd near its session limit?
 *   intake_timeout(in, normal)   the command deadline in force: normal,
 *                                or STRESS_TIMEOUT_S under stress
 *   intake_data_deadline(...)    when a DATA phase that started at start
 *                                and has received n bytes must be done
 *
 * The rules, as Postfix's stress mode and anvil do them:
 * - at most max_sessions in all and max_per_client from one address;
 * - stress: from 3/4 of max_sessions on, an address may hold only a
 *   tenth of max_per_client (at least 1) more sessions, so a few
 *   addresses cannot take the last quarter, and command deadlines drop to
 *   STRESS_TIMEOUT_S (server.c also shortens the ones already running);
 * - rates over a sliding minute: at most conn_rate new connections and
 *   msg_rate messages per address (0: no limit);
 * - DATA must keep up min_data_rate bytes per second on average: its
 *   deadline is start + timeout + n / min_data_rate, so a trickle of one
 *   byte a second ends after about the command timeout, while a big
 *   message on a slow line gets the time its size needs.
 * The timeouts count whole commands, not the gaps between reads: a
 * command line must be complete within its deadline however its bytes
 * arrive. Memory: one record per address with a session or a recent
 * connection, at most INTAKE_MAX_CLIENTS (older records are dropped
 * first; their rates start over).
 */
#ifndef SMTPD_INTAKE_H
#define SMTPD_INTAKE_H

#include <stdint.h>

#define STRESS_TIMEOUT_S 10
#define INTAKE_MAX_CLIENTS 65536
#define INTAKE_RATE_SLOTS 60 /* one-second buckets of the sliding minute */

struct intake_limits {
    unsigned max_sessions;
    unsigned max_per_client;
    unsigned conn_rate;     /* connections per minute per address, 0: none */
    unsigned msg_rate;      /* messages per minute per address, 0: none */
    unsigned min_data_rate; /* bytes per second, 0: none */
};

struct intake_client;

struct intake {
    struct intake_limits l;
    unsigned nsessions;
    unsigned nclients;
    struct intake_client **tab; /* hash buckets */
    unsigned nbuckets;
    struct intake_client *lru_head, *lru_tail;
    uint64_t refused_busy, refused_client, refused_rate, refused_msg_rate;
};

void intake_init(struct intake *in, const struct intake_limits *l);
void intake_set_limits(struct intake *in, const struct intake_limits *l);
void intake_free(struct intake *in);
int intake_admit(struct intake *in, const char *addr, int64_t now_s, const char **why);
void intake_release(struct intake *in, const char *addr);
int intake_message(struct intake *in, const char *addr, int64_t now_s, const char **why);
int intake_stressed(const struct intake *in);
int intake_timeout(const struct intake *in, int normal_s);
/* In microseconds, from start_us, for n bytes received so far. */
int64_t intake_data_deadline(const struct intake *in, int64_t start_us, uint64_t n, int timeout_s);
/* Records on the recency list (for tests: always nclients). */
unsigned intake_listed(const struct intake *in);
/* Sessions of addr now (0 when unknown). */
unsigned intake_sessions_of(const struct intake *in, const char *addr);

#endif
