/*
 * log - one line per event, the way mail administrators read logs.
 *
 * Each line: "<time> <prog>[<pid>]: <level>: <text>". In the foreground
 * (master -d) lines go to stderr; otherwise to fd 2, which master points at
 * log_file (opened O_APPEND so lines from all processes interleave whole),
 * or to syslog (facility mail) when log_file is empty. Children learn the
 * target from master through the POSTERN_LOG environment variable.
 *
 * Levels follow main.cf's log_level: basic (errors, warnings, info),
 * detailed (adds SMTP transcripts and DNS activity), debug.
 * log_panic is for impossible states: it logs and aborts.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>

enum log_level {
    LOG_LV_ERR = 0,
    LOG_LV_WARN = 1,
    LOG_LV_INFO = 2,
    LOG_LV_DETAIL = 3,
    LOG_LV_DEBUG = 4,
};

enum log_target {
    LOG_TO_STDERR, /* fd 2, whatever it is */
    LOG_TO_SYSLOG,
};

void log_init(const char *prog, enum log_target target);
void log_set_level(enum log_level lv);
enum log_level log_get_level(void);
/* "basic", "detailed", "debug" -> level; -1 if unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level lv);
const char *log_prog(void);

void log_msg(enum log_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lv, const char *fmt, va_list ap);
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_err(...) log_msg(LOG_LV_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LV_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LV_INFO, __VA_ARGS__)
#define log_detail(...) log_msg(LOG_LV_DETAIL, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LV_DEBUG, __VA_ARGS__)
/* True when a message at lv would be written (skip building costly text). */
#define log_enabled(lv) ((lv) <= log_get_level())

#endif
