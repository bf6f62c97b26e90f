/*
 * deliver - local's deliveries of one message to one final target, each
 * in a forked worker with the privileges the target gets (never root for
 * a write): a user's mailbox (mbox in mail_spool_directory or under the
 * home by home_mailbox, or a Maildir), a /file, a |command; and reading a
 * user's ~/.forward as that user.
 *
 * Who writes (docs/local.md):
 *   mailbox of user U   mbox in the spool: the dotlock, the open (and the
 *                       creation, U:mail 0660 or U 0600) by root, the
 *                       fcntl lock held by root, the write and fsync by a
 *                       worker running as U on that fd; Maildir or a home
 *                       mailbox: all by a worker as U. Mail for root goes
 *                       to the spool's mbox, written as default_privs.
 *   /file, |command     as the owner of the source that named it (see
 *                       ld_privs); the command with a minimal environment,
 *                       the message on its stdin, killed after
 *                       command_time_limit.
 * Results (struct ld_out): DLV_OK / DLV_TEMP / DLV_PERM with an enhanced
 * code and text: disk full (ENOSPC) and quota (EDQUOT) are temporary
 * (4.3.1, 4.2.2), a lock not had in time 4.2.0, a command that exits 75
 * (EX_TEMPFAIL) or is killed 4.3.0, another exit code 5.3.0.
 */
#ifndef LOCAL_DELIVER_H
#define LOCAL_DELIVER_H

#include <pwd.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/util.h"

/* where a /file or |command target may be delivered (allow_mail_to_*) */
#define LD_FROM_ALIAS 0x1u
#define LD_FROM_FORWARD 0x2u
#define LD_FROM_INCLUDE 0x4u

struct ld_conf {
    const char *spool_dir;    /* mail_spool_directory */
    const char *home_mailbox; /* "" | "Maildir/" | "Mailbox" */
    const char *hostname;
    uid_t privs_uid; /* default_privs */
    gid_t privs_gid;
    int as_root;       /* started as root: setuid per delivery */
    int command_limit; /* seconds */
    int lock_timeout;  /* seconds */
};

/* One message as a delivery writes it. */
struct ld_msg {
    const char *sender; /* "" for <> */
    const char *rcpt;   /* the address delivered to (Delivered-To:) */
    const char *data;   /* the message, CR LF lines */
    size_t len;
    long long arrival; /* seconds */
};

struct ld_out {
    int status; /* enum dlv_status */
    char dsn[8];
    char *text; /* malloc'd */
};

void ld_out_set(struct ld_out *o, int status, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* status and dsn for a failed write's errno */
void ld_out_errno(struct ld_out *o, int e, const char *what);

void ld_mailbox(const struct ld_conf *c, const struct passwd *pw, const struct ld_msg *m,
                struct ld_out *out);
void ld_file(const struct ld_conf *c, const char *path, uid_t uid, gid_t gid,
             const struct ld_msg *m, struct ld_out *out);
void ld_pipe(const struct ld_conf *c, const char *cmd, const struct passwd *pw, uid_t uid,
             gid_t gid, const struct ld_msg *m, struct ld_out *out);
/* fn(arg, wfd) in a worker as uid/gid (local's own writes into the
 * spool, as mail_owner): its exit code, -1 when it died. */
int ld_run_owner(const struct ld_conf *c, uid_t uid, gid_t gid, int (*fn)(void *, int), void *arg);
/* The text of pw's ~/.forward read as pw (root's as root: reading only):
 * 1 and *text, 0 none (or not safe: not a regular file of the user's or
 * root's, group or other writable: logged in *why), -1 temporary. */
int ld_read_forward(const struct ld_conf *c, const struct passwd *pw, char **text, size_t *len,
                    char **why);

#endif
