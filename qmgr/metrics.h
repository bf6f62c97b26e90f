/*
 * metrics - what qmgr counts for `GET /metrics` and `smtpctl show stats`,
 * and the HTTP server on metrics_listen (docs/metrics.md).
 *
 * qmgr serves the metrics because it owns the queue and sees every
 * delivery result; the other processes' counters reach it as snapshots
 * (mail/stats.h): smtpd's directly, dnsd's and master's restarts through
 * master. Counting is O(1) per event into fixed arrays, no allocation:
 *
 *   metrics_rcpt(q, status, phase, gw)  one recipient's outcome of an
 *        attempt (sent, deferred, bounced); gw from metrics_gateway()
 *        for the relay phase (a bounded table of configured names), -1
 *        for the direct phase
 *   metrics_sent(q, m, now)             its accept-to-delivered latency
 *
 * queue_census() counts the queue by state when asked (a scrape or a
 * control command, never per message): O(messages), plus a count of
 * bounced/ and bad/ at most once a second.
 *
 * metrics_start() serves the "metrics" fd master passed (none: off) with
 * evhttp: GET /metrics only (anything else 404), requests of at most
 * METRICS_REQ_MAX bytes that must be complete within METRICS_REQ_S
 * seconds, at most METRICS_CONN_MAX connections at once (the listener
 * pauses above that).
 */
#ifndef QMGR_METRICS_H
#define QMGR_METRICS_H

#include <stdint.h>

#include "mail/stats.h"
#include "prom.h"

struct qmgr;
struct msg;
struct ipc_msg;
struct buf;

enum met_status { MET_SENT, MET_DEFERRED, MET_BOUNCED, MET__COUNT };

#define METRICS_GW_MAX 32 /* gateway label values; the rest count as "other" */
#define METRICS_GW_NAME 64
#define METRICS_LATENCY_BUCKETS 14
#define METRICS_REQ_MAX 8192
#define METRICS_REQ_S 5
#define METRICS_CONN_MAX 4

struct met_gw {
    char name[METRICS_GW_NAME];
    uint64_t n[MET__COUNT];
};

struct qmetrics {
    uint64_t direct[MET__COUNT];
    struct met_gw gw[METRICS_GW_MAX + 2]; /* + "none" and "other" */
    size_t ngw;
    struct prom_hist latency;
    uint64_t smtpd[STS__COUNT]; /* smtpd's last snapshot */
    uint64_t master[STM__COUNT];
    int have_smtpd, have_master;
    struct metrics_http *http;
};

/* A recipient's place in the queue, as show stats and /metrics count it. */
struct queue_census {
    uint64_t active;   /* messages with a delivery in flight */
    uint64_t deferred; /* in queue/, a recipient deferred, none in flight */
    uint64_t pending;  /* in queue/, not tried yet */
    uint64_t hold;
    uint64_t bounced, bad; /* files in bounced/ and bad/ */
    uint64_t recipients;   /* live recipients of queue/ and hold/ */
    double oldest_s;       /* age of the oldest message in queue/ or hold/, 0: none */
};

void metrics_init(struct qmgr *q);
/* Serve the "metrics" fd, if master passed one; -1 when it cannot. */
int metrics_start(struct qmgr *q);
void metrics_stop(struct qmgr *q);

int metrics_gateway(struct qmgr *q, const char *label);
void metrics_rcpt(struct qmgr *q, enum met_status st, int phase, int gw);
void metrics_sent(struct qmgr *q, const struct msg *m, int64_t now);

/* IMSG_STATS_SMTPD / IMSG_STATS_MASTER; -1 when malformed. */
int metrics_take_smtpd(struct qmgr *q, const struct ipc_msg *im);
int metrics_take_master(struct qmgr *q, const struct ipc_msg *im);

void queue_census(struct qmgr *q, struct queue_census *c);
/* The whole exposition (text format 0.0.4). */
void metrics_render(struct qmgr *q, struct buf *out);

#endif
