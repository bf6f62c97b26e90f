/*
 * tslog - stamp each line read from stdin with the time it was read.
 *
 *   tslog [-m SUBSTRING]... OUTFILE
 *
 * Reads stdin until EOF. A record ends at '\n' or '\r' (smtp-sink -c ends
 * its counter updates with '\r'); empty records are dropped. Each record
 * is written to OUTFILE as "SECONDS.MICROSECONDS record\n", the time being
 * CLOCK_REALTIME when the read that completed the record returned. With
 * -m, only records that contain one of the substrings are written. Output
 * is flushed after every read, so another process can follow OUTFILE
 * while the writer runs. A record longer than 16 KiB is cut there.
 *
 * The benchmark harness (bench/lib/Bench.pm) puts one tslog behind every
 * program whose output it times: the MTAs' logs, smtp-source -v and
 * smtp-sink -c, so every timestamp comes from one clock.
 *
 * Exit status: 0 at EOF, 1 on a usage or I/O error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REC_MAX 16384
#define MAX_PAT 16

static const char *pats[MAX_PAT];
static int npat;

static int wanted(const char *rec)
{
    if (npat == 0)
        return 1;
    for (int i = 0; i < npat; i++)
        if (strstr(rec, pats[i]) != NULL)
            return 1;
    return 0;
}

static void emit(FILE *out, const struct timespec *ts, char *rec, size_t len)
{
    if (len == 0)
        return;
    rec[len] = '\0';
    if (!wanted(rec))
        return;
    fprintf(out, "%lld.%06ld %s\n", (long long)ts->tv_sec, ts->tv_nsec / 1000, rec);
}

int main(int argc, char **argv)
{
    static char in[65536], rec[REC_MAX + 1];
    size_t rlen = 0;
    struct timespec ts;
    FILE *out;
    int c;

    while ((c = getopt(argc, argv, "m:")) != -1) {
        if (c != 'm' || npat == MAX_PAT) {
            fprintf(stderr, "usage: tslog [-m substring]... outfile\n");
            return 1;
        }
        pats[npat++] = optarg;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: tslog [-m substring]... outfile\n");
        return 1;
    }
    out = fopen(argv[optind], "a");
    if (out == NULL) {
        fprintf(stderr, "tslog: %s: %s\n", argv[optind], strerror(errno));
        return 1;
    }
    for (;;) {
        ssize_t n = read(0, in, sizeof(in));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        clock_gettime(CLOCK_REALTIME, &ts);
        for (ssize_t i = 0; i < n; i++) {
            if (in[i] == '\n' || in[i] == '\r') {
                emit(out, &ts, rec, rlen);
                rlen = 0;
            } else if (rlen < REC_MAX) {
                rec[rlen++] = in[i];
            }
        }
        if (fflush(out) != 0) {
            fprintf(stderr, "tslog: write: %s\n", strerror(errno));
            return 1;
        }
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    emit(out, &ts, rec, rlen);
    return fclose(out) == 0 ? 0 : 1;
}
