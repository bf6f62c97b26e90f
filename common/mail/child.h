/*
 * child - the skeleton every child program (smtpd, qmgr, dnsd, deliver,
 * relay) runs under, so that each main.c only says what is its own.
 *
 * master execs "bin/PROG -c CONFDIR" with:
 *   POSTERN_FDS  "name:fd name:fd ...", the fds it inherits: "master" (the
 *                channel to master, always), peers by program name
 *                ("qmgr", "dnsd", ...), "listen"/"submission" sockets, and
 *                "config": the text of the main.cf master runs with
 *   POSTERN_LOG  "stderr" or "syslog"
 *   POSTERN_OPTS "name=value\n..." the -o overrides master was given
 *
 * Use:
 *   struct child *c = child_init(argc, argv, &spec); // config, log, fds, loop
 *   ... privileged preparation (load certs, read resolv.conf) ...
 *   child_drop(c);        // chroot per spec, drop to mail_owner
 *   ... set up events ...
 *   return child_loop(c); // until SIGTERM or IMSG_SHUTDOWN
 *
 * The skeleton answers IMSG_STATUS_REQ, IMSG_LOGLEVEL, IMSG_SHUTDOWN and
 * SIGTERM itself. IMSG_RELOAD carries main.cf's text (a chrooted child
 * cannot read it): the skeleton parses it into a new config and calls
 * spec->reload. spec->peer is called for each peer fd inherited at start
 * (when child_loop begins) and again for each IMSG_PEER (a restarted
 * peer). IMSG_CTL_REQ calls spec->ctl. Anything else from master goes to
 * spec->master_msg. When master goes away the child exits.
 *
 * After child_drop the working directory is the spool (CHILD_ROOT_SPOOL),
 * the empty dir (CHILD_ROOT_EMPTY) or the program's own dir
 * (CHILD_ROOT_OWN) whether or not chroot happened, so relative paths
 * ("queue/ID", "etc/domains.db", "sts.db") work in both cases.
 * Maps a chrooted child needs are copied by master into
 * queue_directory/etc/ at start and on reload.
 */
#ifndef POSTERN_CHILD_H
#define POSTERN_CHILD_H

#include <stdint.h>

#include "mail/config.h"
#include "base/ipc.h"
#include "base/util.h"

struct event_base;
struct child;

enum child_root {
    CHILD_ROOT_NONE,  /* no chroot */
    CHILD_ROOT_SPOOL, /* chroot to queue_directory */
    CHILD_ROOT_EMPTY, /* chroot to queue_directory/empty (root-owned, empty) */
    /* chroot to queue_directory/PROG, made by master (mail_owner's, 0700):
     * a program that keeps a file of its own and may see nothing else
     * (dnsd: the MTA-STS policy cache, sts.db) */
    CHILD_ROOT_OWN,
};

struct child_spec {
    const char *prog;
    enum child_root root;
    /* The types master may send (proto.h); NULL: proto_master_to_child. */
    const struct ipc_allow *from_master;
    /* A peer channel (new at start, or replaced after the peer restarted). */
    void (*peer)(struct child *c, const char *name, int fd);
    /* After main.cf was re-read; c->cfg is already the new config.
     * Return 0, or -1 and *err to report a failed reload to master. */
    int (*reload)(struct child *c, char **err);
    /* A control command (argv as smtpctl got it, after -c DIR). Write the
     * answer to out (JSON when flags has CTL_F_JSON); return the exit code. */
    int (*ctl)(struct child *c, int argc, char **argv, unsigned flags, struct buf *out);
    /* Other messages from master. */
    void (*master_msg)(struct child *c, const struct ipc_msg *m);
    /* Asked to stop (SIGTERM / IMSG_SHUTDOWN): stop accepting work. The
     * loop exits when the event base has nothing left or after a grace. */
    void (*shutdown)(struct child *c);
    /* The state smtpctl status shows ("delivery paused"); NULL or a NULL
     * answer: "running". */
    const char *(*state)(struct child *c);
};

struct child {
    const struct child_spec *spec;
    struct event_base *base;
    struct config *cfg;
    struct ipc_chan *master;
    int64_t started_us;
    void *arg; /* the program's own state */
};

struct child *child_init(int argc, char **argv, const struct child_spec *spec);
void child_drop(struct child *c);
int child_loop(struct child *c);
/* Exit the loop soon (after callbacks return). */
void child_exit(struct child *c, int code);

/*
 * Answering a control command later: inside spec->ctl, take a token with
 * child_ctl_defer() and return CHILD_CTL_LATER; answer once with
 * child_ctl_reply() when the work is done (a live DNS lookup, say), so the
 * loop never blocks on it. Master gives up on an answer after 120 s.
 */
#define CHILD_CTL_LATER (-1000)
uint32_t child_ctl_defer(struct child *c);
void child_ctl_reply(struct child *c, uint32_t token, int code, const char *text);

/*
 * A peer channel closed: when it closed because the peer broke the
 * protocol (ipc_chan_broken: malformed, or a type the edge does not
 * carry), ask master to restart that peer, so that a confused or
 * compromised process is replaced and a fresh channel comes back. Call
 * it from every peer channel's on_close; a plain EOF does nothing here
 * (master sees the exit itself).
 */
void child_peer_closed(struct child *c, struct ipc_chan *ch);
/* The same, for a breach the program found itself (why: for master's log). */
void child_peer_broken(struct child *c, const char *peer, const char *why);

/* The inherited fd named name (first one), or -1. */
int child_fd(struct child *c, const char *name);
/* All inherited fds named name, up to max; returns how many. */
int child_fds(struct child *c, const char *name, int *out, int max);

#endif
