/*
 * mbox - one message appended to an mbox mailbox the way Debian's mail
 * tools (bsd-mailx, mutt, procmail) expect it, and the locks they honour.
 *
 * The format (mboxo, as Postfix's local writes it): a "From SENDER DATE"
 * line (SENDER MAILER-DAEMON for the null sender, DATE as asctime:
 * "Tue Mar  5 10:00:00 2024"), the added header lines, the message with
 * CR LF turned into LF and every line that starts with "From " written as
 * ">From ", a final newline if the message had none, and one empty line.
 *
 * Locking (mbox_lock): the dotlock PATH.lock, made with O_EXCL (a lock
 * older than MBOX_STALE_S is taken as left behind and removed), then the
 * mailbox opened O_APPEND|O_NOFOLLOW (created mode 0600 when missing) and
 * locked with fcntl F_SETLK, both retried for up to timeout_s seconds. A
 * mailbox that is not a regular file or has other links is refused.
 * mbox_unlock releases both. The dotlock and the open may be done as root
 * and the write (mbox_append) as the user, on the same fd: the worker in
 * local/deliver.c does that for the spool directory.
 *
 * mbox_append writes at the end and fsyncs; on a failed write it cuts the
 * file back to its old size, so a mailbox never keeps half a message.
 * Errors: -1 with errno kept (ENOSPC, EDQUOT, EAGAIN for a lock timeout)
 * and *err saying what and where.
 */
#ifndef LOCAL_MBOX_H
#define LOCAL_MBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/util.h"

#define MBOX_STALE_S 300

/* "From SENDER DATE\n" for time t (UTC) into out. */
void mbox_from_line(struct buf *out, const char *sender, int64_t t);
/* The message (CR LF or LF lines) as mbox content: From_ quoting, a
 * final newline, the empty line after it. Appended to out. */
void mbox_body(struct buf *out, const char *msg, size_t len);

struct mbox_lock {
    char *path, *lockpath;
    int fd;
    int dotlocked;
};

/* 0 with l filled, or -1 and *err (errno set). owner/group: the new
 * mailbox's (-1: leave as created). */
int mbox_lock(struct mbox_lock *l, const char *path, int timeout_s, uid_t owner, gid_t group,
              int create_mode, char **err);
void mbox_unlock(struct mbox_lock *l);
/* Append data (already in mbox form) to fd, fsync; 0 or -1, *err. */
int mbox_append(int fd, const char *path, const void *data, size_t len, char **err);

#endif
