/*
 * monitor - smtpctl's live view (monitor.h).
 *
 * Columns (JSON keys in brackets); counters are per interval, gauges now:
 *   accept  [accepted]          messages smtpd queued
 *   reject  [rejected]          smtpd's refusals, every reason
 *   direct  [delivered_direct]  recipients sent to MX hosts
 *   relay   [delivered_relay]   recipients sent through gateways
 *   defer   [deferred]          recipient attempts deferred
 *   bounce  [bounced]           recipients failed for good
 *   act def pend hold bnc bad   [queue_active ... queue_bad] messages by state
 *   dlv     [deliveries_active] deliveries in flight
 *   sess    [smtpd_sessions]    SMTP sessions open
 *   dns%    [dns_hit_ratio]     DNS cache hits / questions in the interval
 *                               (JSON null, text "-", when none were asked)
 * A counter that went down (its process restarted) counts from 0 again.
 * The header is repeated every screenful on a terminal, every 20 lines
 * otherwise; --json prints one object per line and no header. An
 * interval in which qmgr or smtpd does not answer (restarting) prints no
 * line, only the reason on stderr; the next line's counters cover both.
 */
#include "monitor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "mail/ctl_client.h"
#include "mail/proto.h"

#define REPLY_TIMEOUT_MS (10 * 1000)
#define HEADER_EVERY 20
#define MONITOR_SKIP (-1) /* poll_once's *code: no line this interval */

/* What one poll reads; the first group are counters. */
enum col {
    C_ACCEPTED,
    C_REJECTED,
    C_DIRECT,
    C_RELAY,
    C_DEFERRED,
    C_FAILED,
    C_EXPIRED,
    C_DNS_HITS,
    C_DNS_MISSES,
    C__COUNTERS,
    C_Q_ACTIVE = C__COUNTERS,
    C_Q_DEFERRED,
    C_Q_PENDING,
    C_Q_HOLD,
    C_Q_BOUNCED,
    C_Q_BAD,
    C_ACTIVE,
    C_SESSIONS,
    C__COUNT
};

static const struct {
    int smtpd; /* from show smtpd, else show stats */
    const char *key;
} source[C__COUNT] = {
    [C_ACCEPTED] = {1, "messages"},
    [C_REJECTED] = {1, "refusals"},
    [C_DIRECT] = {0, "recipients_sent_direct"},
    [C_RELAY] = {0, "recipients_sent_relay"},
    [C_DEFERRED] = {0, "recipients_deferred"},
    [C_FAILED] = {0, "recipients_failed"},
    [C_EXPIRED] = {0, "recipients_expired"},
    [C_DNS_HITS] = {0, "dns_cache_hits"},
    [C_DNS_MISSES] = {0, "dns_cache_misses"},
    [C_Q_ACTIVE] = {0, "queue_active"},
    [C_Q_DEFERRED] = {0, "queue_deferred"},
    [C_Q_PENDING] = {0, "queue_pending"},
    [C_Q_HOLD] = {0, "queue_hold"},
    [C_Q_BOUNCED] = {0, "queue_bounced"},
    [C_Q_BAD] = {0, "queue_bad"},
    [C_ACTIVE] = {0, "deliveries_active"},
    [C_SESSIONS] = {1, "sessions_now"},
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = 1;
}

/* The number after "key": in a flat JSON object; -1 when absent. */
static int json_u64(const char *text, const char *key, unsigned long long *v)
{
    char pat[80];
    const char *p;
    char *end;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    if ((p = strstr(text, pat)) == NULL)
        return -1;
    p += strlen(pat);
    errno = 0;
    *v = strtoull(p, &end, 10);
    return end == p || errno ? -1 : 0;
}

/* One control command's JSON answer; NULL (and a message) on failure. */
static char *ask(const char *path, const char *what, int *code)
{
    char show[] = "show", arg[16];
    char *argv[] = {show, arg};
    struct ctl_req req = {CTL_F_JSON, 2, argv};
    struct ctl_rep rep;
    struct ctl_client_err err;
    char *out;

    strlcpy_p(arg, what, sizeof(arg));
    if (ctl_client_call(path, &req, REPLY_TIMEOUT_MS, &rep, &err) < 0) {
        char *msg = ctl_client_strerror(&err, path, "master");
        if (!stop)
            fprintf(stderr, "smtpctl: monitor: %s\n", msg);
        free(msg);
        *code = err.step == CTL_CLIENT_CONNECT ? 2 : 1;
        return NULL;
    }
    if (rep.code != 0) { /* qmgr or smtpd restarting, say: try the next interval */
        fprintf(stderr, "smtpctl: monitor: show %s: %s", what, rep.output);
        ctl_rep_free(&rep);
        *code = MONITOR_SKIP;
        return NULL;
    }
    out = xstrdup(rep.output);
    ctl_rep_free(&rep);
    return out;
}

static int poll_once(const char *path, unsigned long long *v, int *code)
{
    char *text[2];

    text[0] = ask(path, "stats", code);
    text[1] = text[0] ? ask(path, "smtpd", code) : NULL;
    if (text[1] == NULL) {
        free(text[0]);
        return -1;
    }
    for (int i = 0; i < C__COUNT; i++)
        if (json_u64(text[source[i].smtpd], source[i].key, &v[i]) < 0)
            v[i] = 0;
    free(text[0]);
    free(text[1]);
    return 0;
}

static unsigned long long delta(unsigned long long now, unsigned long long before)
{
    return now >= before ? now - before : now; /* restarted: counts from 0 */
}

static void print_header(void)
{
    printf("%7s %6s %6s %6s %6s %6s | %6s %6s %6s %5s %5s %5s | %4s %5s %5s\n", "accept", "reject",
           "direct", "relay", "defer", "bounce", "act", "def", "pend", "hold", "bnc", "bad", "dlv",
           "sess", "dns%");
}

static void print_line(const unsigned long long *d, const unsigned long long *v, int json,
                       int first, double interval)
{
    unsigned long long asked = d[C_DNS_HITS] + d[C_DNS_MISSES];
    double ratio = asked ? (double)d[C_DNS_HITS] / (double)asked : -1;

    if (json) {
        printf("{\"time\":%lld,\"since_start\":%s,\"interval\":%.3f,\"accepted\":%llu,"
               "\"rejected\":%llu,\"delivered_direct\":%llu,\"delivered_relay\":%llu,"
               "\"deferred\":%llu,\"bounced\":%llu,\"queue_active\":%llu,\"queue_deferred\":%llu,"
               "\"queue_pending\":%llu,\"queue_hold\":%llu,\"queue_bounced\":%llu,"
               "\"queue_bad\":%llu,\"deliveries_active\":%llu,\"smtpd_sessions\":%llu,"
               "\"dns_hit_ratio\":",
               (long long)time(NULL), first ? "true" : "false", first ? 0.0 : interval,
               d[C_ACCEPTED], d[C_REJECTED], d[C_DIRECT], d[C_RELAY], d[C_DEFERRED],
               d[C_FAILED] + d[C_EXPIRED], v[C_Q_ACTIVE], v[C_Q_DEFERRED], v[C_Q_PENDING],
               v[C_Q_HOLD], v[C_Q_BOUNCED], v[C_Q_BAD], v[C_ACTIVE], v[C_SESSIONS]);
        if (ratio < 0)
            printf("null}\n");
        else
            printf("%.4f}\n", ratio);
    } else {
        char dns[16];
        if (ratio < 0)
            snprintf(dns, sizeof(dns), "-");
        else
            snprintf(dns, sizeof(dns), "%.0f", ratio * 100);
        printf("%7llu %6llu %6llu %6llu %6llu %6llu | %6llu %6llu %6llu %5llu %5llu %5llu | %4llu "
               "%5llu %5s\n",
               d[C_ACCEPTED], d[C_REJECTED], d[C_DIRECT], d[C_RELAY], d[C_DEFERRED],
               d[C_FAILED] + d[C_EXPIRED], v[C_Q_ACTIVE], v[C_Q_DEFERRED], v[C_Q_PENDING],
               v[C_Q_HOLD], v[C_Q_BOUNCED], v[C_Q_BAD], v[C_ACTIVE], v[C_SESSIONS], dns);
    }
    fflush(stdout);
}

/* Lines between headers: a screenful on a terminal. */
static int header_every(void)
{
    struct winsize ws;

    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 2)
        return ws.ws_row - 1;
    return HEADER_EVERY;
}

static int usage(void)
{
    fprintf(stderr, "usage: smtpctl monitor [-n N] [-i SECONDS] [--json]\n");
    return 2;
}

/* Sleep until the next tick (absolute, so the lines keep their pace). */
static void sleep_until(struct timespec *next, double interval)
{
    long long ns = (long long)(interval * 1e9);

    next->tv_sec += ns / 1000000000;
    next->tv_nsec += ns % 1000000000;
    if (next->tv_nsec >= 1000000000) {
        next->tv_sec++;
        next->tv_nsec -= 1000000000;
    }
    while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) == EINTR)
        ;
}

int monitor_run(const char *path, unsigned flags, int argc, char **argv)
{
    long long count = 0; /* 0: until stopped */
    double interval = 1;
    int json = (flags & CTL_F_JSON) != 0, code = 0, every = header_every();
    unsigned long long prev[C__COUNT] = {0}, cur[C__COUNT], d[C__COUNT];
    struct sigaction sa;
    struct timespec next;
    char *end;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            count = strtoll(argv[++i], &end, 10);
            if (*end || count < 1)
                return usage();
        } else if (strcmp(argv[i], "-i") == 0 && i + 1 < argc) {
            interval = strtod(argv[++i], &end);
            if (*end || !(interval >= 0.1 && interval <= 86400))
                return usage();
        } else {
            return usage();
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: the sleep ends at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long long line = 0, polls = 0; !stop && (count == 0 || line < count); polls++) {
        if (polls > 0)
            sleep_until(&next, interval);
        if (stop)
            break;
        if (poll_once(path, cur, &code) < 0) {
            if (stop || code == MONITOR_SKIP)
                continue;
            return code;
        }
        for (int i = 0; i < C__COUNT; i++)
            d[i] = i < C__COUNTERS ? delta(cur[i], prev[i]) : cur[i];
        if (!json && line % every == 0)
            print_header();
        print_line(d, cur, json, line == 0, interval);
        memcpy(prev, cur, sizeof(prev));
        line++;
    }
    return 0;
}
