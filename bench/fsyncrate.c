/*
 * fsyncrate - how many durable commits per second this disk takes.
 *
 *   fsyncrate DIR [SECONDS [SIZE]]      (defaults: 5 seconds, 4096 bytes)
 *
 * Three tests, each run for SECONDS in a fresh subdirectory of DIR (which
 * must be on the disk being measured; the harness uses bench/work/, the
 * spools' disk):
 *
 *   file    create a new file, write SIZE bytes, fsync it, close it:
 *           a queue that keeps one file per message, synced one at a time.
 *   commit  the same, then rename it into a second directory and fsync
 *           that directory: Postern's and Postfix's full commit.
 *   append  append SIZE bytes to one file and fsync it: a journal or a
 *           batched queue that syncs one file many times.
 *
 * Output, one line per test: "NAME COUNT SECONDS PER_SECOND". Files are
 * removed afterwards (not timed). Exit status 1 on any error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *buf;
static size_t size = 4096;

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path)
{
    fprintf(stderr, "fsyncrate: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

/* out = dir/fI; dies when the name does not fit. */
static void name_in(char *out, size_t n, const char *dir, long i)
{
    int r = snprintf(out, n, "%s/f%ld", dir, i);

    if (r < 0 || (size_t)r >= n) {
        fprintf(stderr, "fsyncrate: path too long under %s\n", dir);
        exit(1);
    }
}

/* out = base/fsyncrate.PID.suffix; dies when the name does not fit. */
static void work_name(char *out, size_t n, const char *base, const char *suffix)
{
    int r = snprintf(out, n, "%s/fsyncrate.%ld.%s", base, (long)getpid(), suffix);

    if (r < 0 || (size_t)r >= n) {
        fprintf(stderr, "fsyncrate: path too long under %s\n", base);
        exit(1);
    }
}

static void write_all(int fd, const char *path)
{
    size_t off = 0;

    while (off < size) {
        ssize_t n = write(fd, buf + off, size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write", path);
        off += (size_t)n;
    }
}

/* One new file, synced; renamed into to/ and to/ synced when to != NULL. */
static void one_file(const char *from, const char *to, int todir, long i)
{
    char path[4096], dst[4096];
    int fd;

    name_in(path, sizeof(path), from, i);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        die("create", path);
    write_all(fd, path);
    if (fsync(fd) != 0)
        die("fsync", path);
    if (close(fd) != 0)
        die("close", path);
    if (to == NULL)
        return;
    name_in(dst, sizeof(dst), to, i);
    if (rename(path, dst) != 0)
        die("rename", path);
    if (fsync(todir) != 0)
        die("fsync", to);
}

static void cleanup_dir(const char *dir, long n)
{
    char path[4096];

    for (long i = 0; i < n; i++) {
        name_in(path, sizeof(path), dir, i);
        unlink(path);
    }
    rmdir(dir);
}

static void report(const char *name, long n, double secs)
{
    printf("%s %ld %.3f %.0f\n", name, n, secs, secs > 0 ? (double)n / secs : 0.0);
    fflush(stdout);
}

static void test_files(const char *base, double limit, int commit)
{
    char from[4096], to[4096];
    int todir = -1;
    long n = 0;
    double t0, t;

    work_name(from, sizeof(from), base, "a");
    work_name(to, sizeof(to), base, "b");
    if (mkdir(from, 0700) != 0)
        die("mkdir", from);
    if (commit) {
        if (mkdir(to, 0700) != 0)
            die("mkdir", to);
        todir = open(to, O_RDONLY | O_DIRECTORY);
        if (todir < 0)
            die("open", to);
    }
    t0 = mono();
    do {
        one_file(from, commit ? to : NULL, todir, n++);
        t = mono() - t0;
    } while (t < limit);
    report(commit ? "commit" : "file", n, t);
    if (todir >= 0)
        close(todir);
    cleanup_dir(from, commit ? 0 : n);
    if (commit)
        cleanup_dir(to, n);
}

static void test_append(const char *base, double limit)
{
    char path[4096];
    long n = 0;
    double t0, t;
    int fd;

    work_name(path, sizeof(path), base, "log");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0600);
    if (fd < 0)
        die("create", path);
    t0 = mono();
    do {
        write_all(fd, path);
        if (fsync(fd) != 0)
            die("fsync", path);
        n++;
        t = mono() - t0;
    } while (t < limit);
    report("append", n, t);
    close(fd);
    unlink(path);
}

int main(int argc, char **argv)
{
    double secs = 5;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: fsyncrate DIR [SECONDS [SIZE]]\n");
        return 1;
    }
    if (argc > 2)
        secs = atof(argv[2]);
    if (argc > 3)
        size = (size_t)atol(argv[3]);
    if (secs <= 0 || secs > 3600 || size == 0 || size > (64u << 20)) {
        fprintf(stderr, "fsyncrate: SECONDS must be in (0, 3600], SIZE in [1, 64M]\n");
        return 1;
    }
    buf = malloc(size);
    if (buf == NULL)
        return 1;
    memset(buf, 'x', size);
    test_files(argv[1], secs, 0);
    test_files(argv[1], secs, 1);
    test_append(argv[1], secs);
    free(buf);
    return 0;
}
