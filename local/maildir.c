/*
 * maildir - delivery into a Maildir; contract in maildir.h.
 */
#include "maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

static int ensure_dir(const char *path, char **err)
{
    struct stat st;

    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        *err = xasprintf("%s is not a directory", path);
        errno = ENOTDIR;
        return -1;
    }
    int e = errno;
    *err = xasprintf("cannot create %s: %s", path, strerror(e));
    errno = e;
    return -1;
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

int maildir_deliver(const char *dir, const char *host, const void *data, size_t len, char **where,
                    char **err)
{
    static unsigned seq;
    int64_t now = now_us();
    char *sub[3], *tmp = NULL, *dst = NULL, *name;
    int fd, rc = -1, e = 0;

    *err = NULL;
    *where = NULL;
    sub[0] = xasprintf("%s/tmp", dir);
    sub[1] = xasprintf("%s/new", dir);
    sub[2] = xasprintf("%s/cur", dir);
    if (ensure_dir(dir, err) < 0)
        goto out;
    for (int i = 0; i < 3; i++)
        if (ensure_dir(sub[i], err) < 0)
            goto out;
    name = xasprintf("%lld.M%06lldP%ldQ%u.%s", (long long)(now / 1000000),
                     (long long)(now % 1000000), (long)getpid(), ++seq, host);
    for (char *p = name; *p; p++)
        if (*p == '/' || *p == ':')
            *p = '_';
    tmp = xasprintf("%s/%s", sub[0], name);
    dst = xasprintf("%s/%s", sub[1], name);
    free(name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        e = errno;
        *err = xasprintf("cannot create %s: %s", tmp, strerror(e));
        goto out;
    }
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        e = errno;
        *err = xasprintf("cannot write %s: %s", tmp, strerror(e));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (link(tmp, dst) != 0) {
        e = errno;
        *err = xasprintf("cannot move %s to %s: %s", tmp, sub[1], strerror(e));
        unlink(tmp);
        goto out;
    }
    unlink(tmp);
    if (sync_dir(sub[1]) != 0) {
        e = errno;
        *err = xasprintf("cannot sync %s: %s", sub[1], strerror(e));
        goto out; /* the file is there: a retry may deliver it twice, never lose it */
    }
    *where = dst;
    dst = NULL;
    rc = 0;
out:
    if (rc != 0 && e == 0)
        e = errno;
    for (int i = 0; i < 3; i++)
        free(sub[i]);
    free(tmp);
    free(dst);
    errno = e;
    return rc;
}
