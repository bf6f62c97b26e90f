/*
 * privsep - drop root for good.
 *
 * privsep_drop(user, root): when running as root, look up user, chroot to
 * root (if not NULL), chdir("/"), setgroups to the user's group only,
 * setgid, setuid, then verify that setuid(0) and setgid(0) fail. When not
 * root it changes nothing and reports that in *note (a development run).
 * Returns 0, or -1 and a malloc'd *err saying what failed.
 *
 * privsep_lookup resolves a user to uid/gid (before any chroot).
 */
#ifndef POSTERN_PRIVSEP_H
#define POSTERN_PRIVSEP_H

#include <sys/types.h>

int privsep_lookup(const char *user, uid_t *uid, gid_t *gid, char **err);
int privsep_drop(const char *user, const char *root, char **note, char **err);

#endif
