/*
 * stats - the counters other processes send qmgr for its metrics
 * (docs/metrics.md), and their codec.
 *
 * qmgr serves /metrics but sees only the queue. smtpd sends it a
 * snapshot of its counters once a second (IMSG_STATS_SMTPD); dnsd sends
 * master its own (IMSG_STATS_DNSD, dnsd has no channel to qmgr); master
 * sends qmgr its restart counts with the last dnsd snapshot once a second
 * (IMSG_STATS_MASTER). A snapshot is the whole set of a process's
 * counters since it started, never a delta, so a lost or late one costs
 * nothing but freshness.
 *
 * Each snapshot is an array of u64 indexed by the enums below; its body
 * is "u32 n, n x u64". stats_decode() takes a body only when n is
 * exactly what this build expects (every process is the same build).
 * The name tables give the label value of each index; they are the
 * metrics' bounded label sets.
 */
#ifndef POSTERN_STATS_H
#define POSTERN_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "base/ipc.h"

/* Why smtpd refused a message (or a recipient: relay_denied). */
enum stats_reject {
    REJ_RELAY_DENIED,  /* RCPT 554 5.7.1: not in mynetworks, not authenticated */
    REJ_AUTH_REQUIRED, /* MAIL 530 on the submission port */
    REJ_SIZE,          /* 552 at MAIL (SIZE=) or at the end of DATA */
    REJ_MAIL_LOOP,     /* 554 5.4.6: too many Received: fields */
    REJ_BARE_NEWLINE,  /* 550 5.5.2: bare LF or CR (smtpd_bare_newline = reject) */
    REJ_LINE_LENGTH,   /* 550 5.5.2: a line over smtpd_line_length_limit */
    REJ_MESSAGE_RATE,  /* MAIL 452: smtpd_client_message_rate_limit */
    REJ_SPOOL_FULL,    /* MAIL/RCPT 452 4.3.1: below queue_minfree */
    REJ_WRITE_ERROR,   /* 451: the queue file could not be written */
    REJ_OTHER,
    REJ__COUNT
};

/* Why smtpd refused a connection with 421 before its greeting. */
enum stats_refuse { REF_PAUSED, REF_SESSIONS, REF_PER_CLIENT, REF_CONNECTION_RATE, REF__COUNT };

/* The TLS version of a STARTTLS session smtpd took. */
enum stats_tls { TLSV_1_0, TLSV_1_1, TLSV_1_2, TLSV_1_3, TLSV_OTHER, TLSV__COUNT };

/* smtpd's snapshot. */
enum stats_smtpd {
    STS_SESSIONS_NOW,
    STS_SESSIONS, /* since smtpd started */
    STS_ACCEPTED, /* messages queued (SMTP and the maildrop) */
    STS_BYTES,
    STS_TLS_FAILED,
    STS_TLS,                                 /* TLSV__COUNT of them, by version */
    STS_REFUSED = STS_TLS + TLSV__COUNT,     /* REF__COUNT of them */
    STS_REJECTED = STS_REFUSED + REF__COUNT, /* REJ__COUNT of them */
    STS__COUNT = STS_REJECTED + REJ__COUNT
};

/* dnsd's snapshot. */
enum stats_dnsd {
    STD_LOOKUPS,    /* MX and host lookups asked by deliver and relay */
    STD_CACHE_HITS, /* questions answered from the cache */
    STD_CACHE_MISSES,
    STD_QUERIES, /* packets sent to DNS servers */
    STD_TIMEOUTS,
    STD_CACHE_ENTRIES,
    STD__COUNT
};

/* The children master restarts, in the order of master's snapshot. */
enum stats_proc { STP_SMTPD, STP_QMGR, STP_DNSD, STP_DELIVER, STP_RELAY, STP__COUNT };

/* master's snapshot: restarts by child, then dnsd's snapshot (all 0 until
 * dnsd sent one; STM_DNS_SEEN says whether it did). */
enum stats_master {
    STM_RESTARTS,
    STM_DNS_SEEN = STM_RESTARTS + STP__COUNT,
    STM_DNS,
    STM__COUNT = STM_DNS + STD__COUNT
};

extern const char *const stats_reject_names[REJ__COUNT];
extern const char *const stats_refuse_names[REF__COUNT];
extern const char *const stats_tls_names[TLSV__COUNT];
extern const char *const stats_proc_names[STP__COUNT];

/* The version index of an OpenSSL protocol version (SSL_version()). */
enum stats_tls stats_tls_version(int ssl_version);

void stats_encode(struct ipc_w *w, const uint64_t *v, size_t n);
/* 0 and v[0..n) filled, or -1 (malformed, or not n counters: v untouched). */
int stats_decode(const void *body, size_t len, uint64_t *v, size_t n);

#endif
