/*
 * maildir - one message into a Maildir (DIR/tmp, DIR/new, DIR/cur, made
 * mode 0700 when missing): written to tmp/NAME, fsync'd, renamed to
 * new/NAME and new/ fsync'd, so a reader sees the whole message or none.
 * NAME is "SECONDS.MmicrosPpidQn.HOST", unique on this host. The content
 * is the message with LF line ends (no From_ line, no quoting).
 * 0 and *where (malloc'd new/ path), or -1 with errno kept and *err.
 */
#ifndef LOCAL_MAILDIR_H
#define LOCAL_MAILDIR_H

#include <stddef.h>

int maildir_deliver(const char *dir, const char *host, const void *data, size_t len, char **where,
                    char **err);

#endif
