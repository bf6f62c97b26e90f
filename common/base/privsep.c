/*
 * privsep - look up the mail owner and drop root irreversibly.
 */
#include "base/privsep.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

int privsep_lookup(const char *user, uid_t *uid, gid_t *gid, char **err)
{
    struct passwd *pw;

    errno = 0;
    pw = getpwnam(user);
    if (pw == NULL) {
        *err = xasprintf("mail_owner '%s': no such user%s%s (create it: useradd --system "
                         "--no-create-home --shell /usr/sbin/nologin %s)",
                         user, errno ? ": " : "", errno ? strerror(errno) : "", user);
        return -1;
    }
    if (pw->pw_uid == 0) {
        *err = xasprintf("mail_owner '%s' has uid 0: it must be an unprivileged user", user);
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

int privsep_drop(const char *user, const char *root, char **note, char **err)
{
    uid_t uid;
    gid_t gid;

    *note = NULL;
    if (geteuid() != 0) {
        *note = xasprintf("not started as root: running as uid %ld without chroot%s%s",
                          (long)geteuid(), root ? " (would chroot to " : "", root ? root : "");
        if (root) {
            char *n2 = xasprintf("%s)", *note);
            free(*note);
            *note = n2;
        }
        return 0;
    }
    if (privsep_lookup(user, &uid, &gid, err) < 0)
        return -1;
    if (root != NULL) {
        if (chroot(root) != 0 || chdir("/") != 0) {
            *err = xasprintf("chroot %s: %s", root, strerror(errno));
            return -1;
        }
    }
    if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
        *err = xasprintf("cannot drop privileges to %s (uid %ld): %s", user, (long)uid,
                         strerror(errno));
        return -1;
    }
    if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
        *err = xasprintf("privileges could be regained after dropping to %s", user);
        return -1;
    }
    return 0;
}
