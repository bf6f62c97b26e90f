/*
 * log - formats one line per event and writes it with a single write(2)
 * (atomic for O_APPEND files and pipes up to PIPE_BUF), or to syslog.
 */
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

static const char *log_progname = "postern";
static enum log_target log_target = LOG_TO_STDERR;
static enum log_level log_level = LOG_LV_INFO;

static const char *const level_names[] = {"error", "warning", "info", "detail", "debug"};

/*
 * The parts of a file line's prefix that rarely change are kept made:
 * "NAME[PID]" (remade after a fork) and the time to the second. Only the
 * event loop's thread logs (smtpd's sync thread never does), so these
 * need no lock.
 */
static char who[96];
static size_t who_len;
static time_t stamp_sec = (time_t)-1;
static char stamp[32];
static size_t stamp_len;

static void forget_pid(void)
{
    who_len = 0;
}

void log_init(const char *prog, enum log_target target)
{
    static int atfork;

    if (!atfork) {
        pthread_atfork(NULL, NULL, forget_pid);
        atfork = 1;
    }
    log_progname = prog;
    who_len = 0;
    log_target = target;
    if (target == LOG_TO_SYSLOG)
        openlog(prog, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level lv)
{
    log_level = lv;
}

enum log_level log_get_level(void)
{
    return log_level;
}

const char *log_prog(void)
{
    return log_progname;
}

int log_level_parse(const char *s)
{
    if (strcmp(s, "basic") == 0)
        return LOG_LV_INFO;
    if (strcmp(s, "detailed") == 0)
        return LOG_LV_DETAIL;
    if (strcmp(s, "debug") == 0)
        return LOG_LV_DEBUG;
    return -1;
}

const char *log_level_name(enum log_level lv)
{
    switch (lv) {
    case LOG_LV_DETAIL:
        return "detailed";
    case LOG_LV_DEBUG:
        return "debug";
    default:
        return "basic";
    }
}

static int syslog_prio(enum log_level lv)
{
    switch (lv) {
    case LOG_LV_ERR:
        return LOG_ERR;
    case LOG_LV_WARN:
        return LOG_WARNING;
    case LOG_LV_INFO:
        return LOG_INFO;
    default:
        return LOG_DEBUG;
    }
}

void log_vmsg(enum log_level lv, const char *fmt, va_list ap)
{
    char line[4096];
    size_t n = 0;
    int r;
    int saved = errno;

    if (lv > log_level)
        return;
    if (log_target == LOG_TO_STDERR) {
        struct timespec ts;
        long ms;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (ts.tv_sec != stamp_sec) {
            struct tm tm;
            localtime_r(&ts.tv_sec, &tm);
            stamp_len = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
            stamp_sec = ts.tv_sec;
        }
        if (who_len == 0) {
            r = snprintf(who, sizeof(who), "%s[%ld]: ", log_progname, (long)getpid());
            who_len = r > 0 ? ((size_t)r < sizeof(who) ? (size_t)r : sizeof(who) - 1) : 0;
        }
        ms = ts.tv_nsec / 1000000;
        memcpy(line, stamp, stamp_len);
        n = stamp_len;
        line[n++] = '.';
        line[n++] = (char)('0' + ms / 100);
        line[n++] = (char)('0' + ms / 10 % 10);
        line[n++] = (char)('0' + ms % 10);
        line[n++] = ' ';
        memcpy(line + n, who, who_len);
        n += who_len;
        size_t ll = strlen(level_names[lv]);
        memcpy(line + n, level_names[lv], ll);
        n += ll;
        line[n++] = ':';
        line[n++] = ' ';
    } else {
        r = snprintf(line, sizeof(line), "%s: ", level_names[lv]);
        n = r > 0 ? (size_t)r : 0;
    }
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    /* One event, one line: no control characters reach the log. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    if (log_target == LOG_TO_SYSLOG) {
        line[n] = '\0';
        syslog(syslog_prio(lv), "%s", line);
    } else {
        if (n >= sizeof(line) - 1)
            n = sizeof(line) - 2;
        line[n++] = '\n';
        (void)write_all(2, line, n);
    }
    errno = saved;
}

void log_msg(enum log_level lv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(lv, fmt, ap);
    va_end(ap);
}

void log_panic(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(LOG_LV_ERR, fmt, ap);
    va_end(ap);
    abort();
}
