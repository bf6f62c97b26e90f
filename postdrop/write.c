/*
 * write - one maildrop file, complete and durable or not at all (see
 * write.h).
 */
#include "write.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

/* What pd_cleanup removes: the name being written ("" for none). */
static int cur_dirfd = -1;
static char cur_name[64];

void pd_cleanup(void)
{
    if (cur_dirfd >= 0 && cur_name[0])
        unlinkat(cur_dirfd, cur_name, 0);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;

    fputs("postdrop: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void random_hex(char out[17])
{
    unsigned char r[8];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = (uint64_t)now_us() ^ ((uint64_t)getpid() << 40);
        memcpy(r, &t, sizeof(r));
    }
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* The chunk through the framing reader; 0, or -1 with *why. */
static int check(struct maildrop_rd *rd, const char *p, size_t n, const char **why)
{
    while (n > 0) {
        const char *item;
        size_t used, ilen;
        int t = maildrop_rd_next(rd, p, n, &used, &item, &ilen);
        if (t == MD_ERR) {
            *why = rd->why;
            return -1;
        }
        p += used;
        n -= used;
        if (t == MD_MORE)
            break;
    }
    return 0;
}

/* Would writing n more bytes leave less than minfree free? */
static int room(const struct pd_conf *c, int fd, size_t n)
{
    struct statvfs vfs;
    unsigned long long avail;

    if (fstatvfs(fd, &vfs) != 0) {
        say("cannot see the free space in %s: %s", c->maildrop, strerror(errno));
        return -1;
    }
    avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    if (avail < n || avail - n < c->minfree) {
        say("not enough free space in %s: %llu bytes free, queue_minfree is %llu; message not "
            "stored",
            c->maildrop, avail, (unsigned long long)c->minfree);
        return -1;
    }
    return 0;
}

/* Step 2: the input into fd, checked. */
static int copy(const struct pd_conf *c, int in, int fd, const char *tmp)
{
    struct maildrop_rd rd;
    char *buf = xmalloc(CHUNK);
    const char *why;
    int rc = EX_OK;

    maildrop_rd_init(&rd, &c->lim);
    for (;;) {
        ssize_t n = read(in, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            say("cannot read the message: %s", strerror(errno));
            rc = EX_TEMPFAIL;
            break;
        }
        if (n == 0) {
            if (maildrop_rd_finish(&rd) < 0) {
                say("not a complete maildrop stream: %s", rd.why);
                rc = EX_DATAERR;
            }
            break;
        }
        if (check(&rd, buf, (size_t)n, &why) < 0) {
            say("not a valid maildrop stream: %s", why);
            rc = EX_DATAERR;
            break;
        }
        if (room(c, fd, (size_t)n) < 0) {
            rc = EX_TEMPFAIL;
            break;
        }
        if (write_all(fd, buf, (size_t)n) < 0) {
            say("cannot write %s/%s: %s", c->maildrop, tmp, strerror(errno));
            rc = EX_TEMPFAIL;
            break;
        }
    }
    maildrop_rd_free(&rd);
    free(buf);
    return rc;
}

/* The new name on disk: fsync of the directory, or, when the group may
 * not read it (the setgid case), of the whole file system. */
static int sync_dir(const struct pd_conf *c, int dirfd, int fd)
{
    int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (dfd < 0 && errno != EACCES) {
        say("cannot open %s: %s", c->maildrop, strerror(errno));
        return -1;
    }
    rc = dfd >= 0 ? fsync(dfd) : syncfs(fd);
    if (rc != 0)
        say("cannot sync %s: %s", c->maildrop, strerror(errno));
    if (dfd >= 0)
        close(dfd);
    return rc;
}

/* Step 3: durable under its final name. */
static int publish(const struct pd_conf *c, int dirfd, int fd, const char *tmp, const char *hex)
{
    char final[64];
    sigset_t all, old;
    int rc;

    if (fsync(fd) != 0) {
        say("cannot sync %s/%s: %s", c->maildrop, tmp, strerror(errno));
        return EX_TEMPFAIL;
    }
    snprintf(final, sizeof(final), "%lld.%s", (long long)time(NULL), hex);
    /* No signal between the rename and knowing which name to clean up. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    rc = renameat2(dirfd, tmp, dirfd, final, RENAME_NOREPLACE);
    int err = errno;
    if (rc == 0)
        strlcpy_p(cur_name, final, sizeof(cur_name));
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        say("cannot rename %s/%s to %s: %s", c->maildrop, tmp, final, strerror(err));
    if (rc != 0 || sync_dir(c, dirfd, fd) != 0)
        return EX_TEMPFAIL;
    if (c->verbose)
        say("the message is in %s/%s", c->maildrop, final);
    return EX_OK;
}

int pd_write(const struct pd_conf *c, int in)
{
    char hex[17], tmp[32];
    sigset_t all, old;
    int dirfd, fd, rc;

    dirfd = open(c->maildrop, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        say("cannot use the maildrop %s: %s", c->maildrop, strerror(errno));
        return EX_TEMPFAIL;
    }
    random_hex(hex);
    snprintf(tmp, sizeof(tmp), ".tmp.%s", hex);
    cur_dirfd = dirfd;
    /* No signal between creating the file and knowing its name. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    int err = errno;
    if (fd >= 0)
        strlcpy_p(cur_name, tmp, sizeof(cur_name));
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (fd < 0) {
        say("cannot create a file in %s: %s", c->maildrop, strerror(err));
        close(dirfd);
        return EX_TEMPFAIL;
    }
    rc = fchmod(fd, 0644) == 0 ? EX_OK : EX_TEMPFAIL;
    if (rc != EX_OK)
        say("cannot set the mode of %s/%s: %s", c->maildrop, tmp, strerror(errno));
    if (rc == EX_OK)
        rc = copy(c, in, fd, tmp);
    if (rc == EX_OK)
        rc = publish(c, dirfd, fd, tmp, hex);
    if (rc != EX_OK)
        pd_cleanup();
    cur_name[0] = '\0';
    close(fd);
    close(dirfd);
    cur_dirfd = -1;
    return rc;
}
