/*
 * monitor - `smtpctl monitor [-n N] [-i SECONDS] [--json]`: a live view,
 * one line per interval, like vmstat (monitor.c has the columns).
 *
 * monitor_run() polls `show stats` (qmgr) and `show smtpd` over the
 * control socket at path each interval and prints the counters' changes
 * since the previous line and the gauges' current values. The first line
 * has the counters since the processes started. It returns the exit code:
 * 0 after N lines or on SIGINT/SIGTERM, 1 when master stops answering,
 * 2 on a usage error or when it is not running; an interval in which a
 * process does not answer (restarting) prints no line.
 */
#ifndef SMTPCTL_MONITOR_H
#define SMTPCTL_MONITOR_H

int monitor_run(const char *path, unsigned flags, int argc, char **argv);

#endif
