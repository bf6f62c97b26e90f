/*
 * ctl_client - the blocking client of master's control socket, shared by
 * smtpctl and sendmail (mailq, sendmail -q): connect, send one control
 * request, wait for one reply (layouts in ctl_proto.h).
 *
 * ctl_client_call() connects to the Unix socket at path, sends req as
 * IMSG_CTL_REQ and waits up to timeout_ms (< 0: for ever) for one frame,
 * which must be a well-formed IMSG_CTL_REP. It returns 0 with *rep filled
 * (free it with ctl_rep_free), or -1 with *err saying which step failed
 * and the errno there; the socket is closed either way. It prints
 * nothing: each program words its own messages, from
 *   ctl_client_strerror()  the usual text ("postern is not running (no
 *                          master listening on PATH)", "no answer from
 *                          master: ..."), naming master as the caller
 *                          says, without program prefix or newline;
 *   ctl_client_refused()   1 when the failure looks like master turning
 *                          the user away (connect denied, or the socket
 *                          closed on us: master's SO_PEERCRED check).
 */
#ifndef POSTERN_CTL_CLIENT_H
#define POSTERN_CTL_CLIENT_H

#include "mail/ctl_proto.h"

enum ctl_client_step {
    CTL_CLIENT_PATH,    /* path too long for a Unix socket */
    CTL_CLIENT_CONNECT, /* socket() or connect() */
    CTL_CLIENT_SEND,    /* writing the request */
    CTL_CLIENT_RECV,    /* no reply frame: ETIMEDOUT, ECONNRESET (EOF), EPROTO */
    CTL_CLIENT_REPLY,   /* a frame came, but not a well-formed IMSG_CTL_REP */
};

struct ctl_client_err {
    enum ctl_client_step step;
    int sys; /* errno at that step; 0 for PATH and REPLY */
};

int ctl_client_call(const char *path, const struct ctl_req *req, int timeout_ms,
                    struct ctl_rep *rep, struct ctl_client_err *err);
/* malloc'd text; master is how to name master ("master", "postern's master"). */
char *ctl_client_strerror(const struct ctl_client_err *err, const char *path, const char *master);
int ctl_client_refused(const struct ctl_client_err *err);

#endif
