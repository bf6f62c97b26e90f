/*
 * write - postdrop's one job: copy the maildrop stream on an fd into a new
 * file in queue_directory/maildrop/ so that it is complete and durable
 * before anyone may see it, or leave nothing at all.
 *
 *   1. create maildrop/.tmp.RANDOM (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0644;
 *      the owner is the caller's real uid: setgid changes only the group,
 *      and that owner is how smtpd knows who submitted it);
 *   2. copy the input, every byte through the framing reader
 *      (mail/maildrop.h: magic line, MAIL, RCPT, DATA, the data, its end,
 *      nothing after; command line, recipient and size bounds), refusing
 *      before each write that would leave less than minfree bytes free in
 *      the file system (statvfs, blocks available to unprivileged users);
 *   3. fsync the file, rename it to maildrop/TIME.RANDOM (never over an
 *      existing name), and make the new name durable: fsync of the
 *      directory when we may read it, else - the setgid case, the group
 *      may only write and search maildrop/ - syncfs() of its file system;
 *   4. only then return EX_OK.
 * Smtpd ignores names starting with '.', so a half-written file is never
 * picked up. On any failure the file is removed and a message saying
 * what and where is printed (prefixed "postdrop: "); the result is
 * EX_DATAERR for a stream that is malformed or over a bound, EX_TEMPFAIL
 * for everything else (no maildrop, no space, an I/O error).
 *
 * pd_cleanup() removes the file being written; it is async-signal-safe,
 * for the signal handlers main.c installs.
 */
#ifndef POSTERN_POSTDROP_WRITE_H
#define POSTERN_POSTDROP_WRITE_H

#include <stdint.h>

#include "mail/maildrop.h"

struct pd_conf {
    const char *maildrop; /* path of queue_directory/maildrop */
    uint64_t minfree;     /* queue_minfree */
    struct maildrop_limits lim;
    int verbose; /* print the name of the file left */
};

int pd_write(const struct pd_conf *c, int in);
void pd_cleanup(void);

#endif
