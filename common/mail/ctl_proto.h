/*
 * ctl_proto - the control request and its reply (IMSG_CTL_REQ /
 * IMSG_CTL_REP, proto.h): what smtpctl, mailq and sendmail -q send to
 * master over the control socket, what master forwards to the child that
 * owns a command, and the answer that travels back the same way.
 *
 * Layout:
 *   IMSG_CTL_REQ  u32 flags (CTL_F_*), u32 argc, argc x str word
 *                 The command as the user typed it ("show", "queue"),
 *                 at most CTL_MAX_ARGS words.
 *   IMSG_CTL_REP  u32 exit_code, str output
 *                 The exit code for the client (0 ok, 1 the command
 *                 failed, 2 usage) and the text to print, possibly "".
 *
 * ctl_req_encode/ctl_req_decode and ctl_rep_encode/ctl_rep_decode are the
 * only code that knows the byte layout. Encoders write what they are
 * given (a request over the limit goes out, so that master can say why it
 * refuses it). Decoders are strict: a body that is short, has bytes left
 * over, an embedded NUL in a string or more than CTL_MAX_ARGS words is
 * refused (CTL_DEC_TOO_MANY for the last, so master can tell the user;
 * CTL_DEC_ERR for the rest). An empty argv decodes; whether a command
 * is needed is the receiver's business. Decoded structures own their
 * strings (free them with ctl_req_free / ctl_rep_free); after a failed
 * decode they are empty and need no freeing.
 */
#ifndef POSTERN_CTL_PROTO_H
#define POSTERN_CTL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "base/ipc.h"

#define CTL_MAX_ARGS 64 /* words in one request */

enum ctl_decode_result {
    CTL_DEC_OK = 0,
    CTL_DEC_ERR = -1,      /* malformed body */
    CTL_DEC_TOO_MANY = -2, /* argc over CTL_MAX_ARGS */
};

struct ctl_req {
    uint32_t flags; /* CTL_F_* */
    size_t argc;
    char **argv; /* argc words, then NULL */
};

struct ctl_rep {
    uint32_t code; /* exit code for the client */
    char *output;  /* text to print, "" for none */
};

void ctl_req_encode(struct ipc_w *w, const struct ctl_req *q);
/* Returns CTL_DEC_OK, CTL_DEC_ERR or CTL_DEC_TOO_MANY. */
int ctl_req_decode(const void *body, size_t len, struct ctl_req *q);
void ctl_req_free(struct ctl_req *q);

/* The reply is written from plain values (often a literal or a buf). */
void ctl_rep_encode(struct ipc_w *w, uint32_t code, const char *output);
/* Returns CTL_DEC_OK or CTL_DEC_ERR. */
int ctl_rep_decode(const void *body, size_t len, struct ctl_rep *r);
void ctl_rep_free(struct ctl_rep *r);

#endif
