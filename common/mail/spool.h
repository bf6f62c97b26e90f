/*
 * spool - names inside queue_directory (DESIGN section 3), shared by
 * master (which creates them) and the children (which use them relative
 * to their working directory, the spool, after child_drop).
 *
 *   incoming/ queue/ hold/ bounced/ bad/ db/   owned by mail_owner, 0700
 *   maildrop/  messages the local sendmail left through postdrop while
 *           smtpd could not be reached (mail/maildrop.h); mail_owner and
 *           group postdrop, 1730: the setgid postdrop may create files
 *           there, only mail_owner may list or read them
 *   maildrop-bad/  maildrop files smtpd refused (5xx, malformed), kept for
 *           the admin; mail_owner, 0700
 *   etc/    maps copied in by master for chrooted children (root-owned)
 *   empty/  the empty chroot of deliver, relay, signer (root-owned, 0755)
 *   dnsd/   dnsd's chroot: only its MTA-STS policy cache sts.db
 *           (mail_owner, 0700; CHILD_ROOT_OWN)
 *   run/    master's pid file and control socket (root-owned, 0700)
 */
#ifndef POSTERN_SPOOL_H
#define POSTERN_SPOOL_H

#define SPOOL_INCOMING "incoming"
#define SPOOL_QUEUE "queue"
#define SPOOL_FREE "free" /* delivered files kept for reuse (smtpd/commit.h) */
#define SPOOL_HOLD "hold"
#define SPOOL_BOUNCED "bounced"
#define SPOOL_BAD "bad"
#define SPOOL_DB "db"
#define SPOOL_MAILDROP "maildrop"
#define SPOOL_MAILDROP_BAD "maildrop-bad"
/* The group postdrop runs setgid as: it may create files in maildrop/. */
#define MAILDROP_GROUP "postdrop"
#define SPOOL_ETC "etc"
#define SPOOL_EMPTY "empty"
#define SPOOL_DNSD "dnsd"
#define SPOOL_RUN "run"
#define SPOOL_PIDFILE "run/master.pid"
#define SPOOL_CONTROL "run/control.sock"

/* Compiled maps as the children see them (copied by master). */
#define SPOOL_MAP_DOMAINS "etc/domains.db"
#define SPOOL_MAP_SECRETS_OLD "etc/secrets.db" /* before 0.2: removed at start */
#define SPOOL_MAP_USERS "etc/users.db"
#define SPOOL_MAP_SENDERS "etc/senders.db"
/* For smtpd's check of local recipients (mail/local_rcpt.h): the compiled
 * alias_maps and the user names of the password database (master makes it). */
#define SPOOL_MAP_ALIASES "etc/aliases.db"
#define SPOOL_MAP_LOCALUSERS "etc/localusers.db"

#endif
