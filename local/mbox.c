/*
 * mbox - the mbox format and its locks; contract in mbox.h.
 */
#include "mbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void mbox_from_line(struct buf *out, const char *sender, int64_t t)
{
    time_t s = (time_t)t;
    struct tm tm;
    char date[64];

    gmtime_r(&s, &tm);
    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
    buf_printf(out, "From %s %s\n", sender && *sender ? sender : "MAILER-DAEMON", date);
}

void mbox_body(struct buf *out, const char *msg, size_t len)
{
    size_t pos = 0;

    while (pos < len) {
        const char *nl = memchr(msg + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (msg + pos)) : len - pos;
        if (n >= 5 && memcmp(msg + pos, "From ", 5) == 0)
            buf_addc(out, '>');
        buf_add(out, msg + pos, n > 0 && msg[pos + n - 1] == '\r' && nl ? n - 1 : n);
        buf_addc(out, '\n');
        pos += n + (nl != NULL);
    }
    buf_addc(out, '\n');
}

static int take_dotlock(const char *lockpath, char **err)
{
    struct stat st;
    int fd = open(lockpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);

    if (fd >= 0) {
        char pid[32];
        int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (write_all(fd, pid, (size_t)n) != 0) {
            /* an empty lock still locks */
        }
        close(fd);
        return 0;
    }
    if (errno != EEXIST) {
        int e = errno;
        *err = xasprintf("cannot create the lock %s: %s", lockpath, strerror(e));
        errno = e;
        return -1;
    }
    if (lstat(lockpath, &st) == 0 && time(NULL) - st.st_mtime > MBOX_STALE_S)
        unlink(lockpath); /* left behind by a process that died */
    errno = EAGAIN;
    return 1;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int mbox_lock(struct mbox_lock *l, const char *path, int timeout_s, uid_t owner, gid_t group,
              int create_mode, char **err)
{
    int64_t until = mono_us() + (int64_t)timeout_s * 1000000;
    struct flock fl;
    struct stat st;
    int r;

    memset(l, 0, sizeof(*l));
    l->fd = -1;
    l->path = xstrdup(path);
    l->lockpath = xasprintf("%s.lock", path);
    *err = NULL;
    while ((r = take_dotlock(l->lockpath, err)) == 1) {
        if (mono_us() >= until) {
            *err = xasprintf("%s is locked (%s exists) for more than %ds", path, l->lockpath,
                             timeout_s);
            goto fail_again;
        }
        pause_ms(100);
    }
    if (r < 0)
        goto fail;
    l->dotlocked = 1;
    l->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (l->fd < 0 && errno == ENOENT) {
        l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                     create_mode);
        if (l->fd >= 0 && ((owner != (uid_t)-1 && fchown(l->fd, owner, group) != 0) ||
                           fchmod(l->fd, (mode_t)create_mode) != 0)) {
            int e = errno;
            *err = xasprintf("cannot give %s to its owner: %s", path, strerror(e));
            unlink(path);
            errno = e;
            goto fail;
        }
    }
    if (l->fd < 0) {
        int e = errno;
        *err = xasprintf("cannot open %s: %s", path, strerror(e));
        errno = e;
        goto fail;
    }
    if (fstat(l->fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        (owner != (uid_t)-1 && st.st_uid != owner)) {
        *err = xasprintf("%s is not a regular file of its own with one link (refused)", path);
        errno = EPERM;
        goto fail;
    }
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    while (fcntl(l->fd, F_SETLK, &fl) != 0) {
        if (errno != EACCES && errno != EAGAIN && errno != EINTR) {
            int e = errno;
            *err = xasprintf("cannot lock %s: %s", path, strerror(e));
            errno = e;
            goto fail;
        }
        if (mono_us() >= until) {
            *err = xasprintf("%s is locked (fcntl) for more than %ds", path, timeout_s);
            goto fail_again;
        }
        pause_ms(100);
    }
    return 0;
fail_again:
    errno = EAGAIN;
fail : {
    int e = errno;
    mbox_unlock(l);
    errno = e;
    return -1;
}
}

void mbox_unlock(struct mbox_lock *l)
{
    if (l->fd >= 0)
        close(l->fd); /* releases the fcntl lock */
    if (l->dotlocked)
        unlink(l->lockpath);
    free(l->path);
    free(l->lockpath);
    memset(l, 0, sizeof(*l));
    l->fd = -1;
}

int mbox_append(int fd, const char *path, const void *data, size_t len, char **err)
{
    off_t old = lseek(fd, 0, SEEK_END);

    if (old < 0) {
        int e = errno;
        *err = xasprintf("cannot seek in %s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        *err = xasprintf("cannot write %s: %s", path, strerror(e));
        if (ftruncate(fd, old) == 0)
            fsync(fd);
        errno = e;
        return -1;
    }
    return 0;
}
