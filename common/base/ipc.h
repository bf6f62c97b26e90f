/*
 * ipc - framed messages between Postern processes over Unix stream
 * socketpairs, with optional file-descriptor passing (SCM_RIGHTS).
 *
 * Wire format of a frame: a 12-byte header in host byte order
 *     uint32 len    body length, at most IPC_MAX_BODY
 *     uint16 type   enum ipc_type (proto.h)
 *     uint16 flags  IPC_F_FD: exactly one fd travels with this frame
 *     uint32 id     request id chosen by the requester, echoed in replies
 * followed by len bytes of body. A passed fd is attached (SCM_RIGHTS) to
 * the sendmsg() that carries the frame's first byte; the receiver queues
 * received fds in order and gives the next one to the next frame that
 * has IPC_F_FD.
 *
 * ipc_decode() is the pure, fuzzed decoder. ipc_chan wraps a socket in a
 * libevent loop: it reads, decodes, calls the handler once per frame, and
 * queues writes. Any malformed input (oversize length, unknown flag, fd
 * missing or unexpected, more fds than frames) closes the channel with a
 * log line; the handler's on_close is called. It never crashes.
 *
 * Bodies are built with ipc_w* and read with ipc_r*: integers in host
 * order, strings as u32 length + bytes + NUL (the NUL is checked, embedded
 * NULs are rejected). Readers are sticky on error: read everything, then
 * check ipc_r_done(), which also insists the body was consumed exactly
 * (ipc_r_ok() only says that no read failed).
 */
#ifndef POSTERN_IPC_H
#define POSTERN_IPC_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

#define IPC_HDR_LEN 12
#define IPC_MAX_BODY (4u * 1024 * 1024)
#define IPC_F_FD 0x0001u
#define IPC_F_ALL IPC_F_FD

struct ipc_frame {
    uint16_t type;
    uint16_t flags;
    uint32_t id;
    const uint8_t *body; /* points into the caller's buffer */
    size_t len;
};

enum ipc_decode_result {
    IPC_DEC_OK = 0,   /* a whole frame; *consumed bytes used */
    IPC_DEC_MORE = 1, /* need more bytes */
    IPC_DEC_ERR = -1, /* malformed; *why says how */
};

/* Decode one frame from buf. Pure: no I/O, no allocation. */
enum ipc_decode_result ipc_decode(const uint8_t *buf, size_t len, struct ipc_frame *out,
                                  size_t *consumed, const char **why);
/* Encode a header for a body of len bytes into hdr[IPC_HDR_LEN]. */
void ipc_encode_hdr(uint8_t *hdr, uint16_t type, uint16_t flags, uint32_t id, size_t len);

/* A received message as handed to a channel's handler. */
struct ipc_msg {
    uint16_t type;
    uint32_t id;
    const uint8_t *body;
    size_t len;
    int fd; /* -1, or an fd now owned by the handler (close it or keep it) */
};

/*
 * The message types one peer may send on a channel (proto.h lists them
 * for each edge). A frame of any other type is not handed to on_msg: the
 * channel is closed with a log line naming the type and the peer, as
 * for any other malformed input. A peer that sends what it has no
 * business sending is treated as compromised or confused; its channel
 * goes and master's restart of one side brings a fresh one.
 */
struct ipc_allow {
    const char *what; /* "smtpd to qmgr", for the log */
    const uint16_t *types;
    size_t n;
};
int ipc_allowed(const struct ipc_allow *a, uint16_t type);

struct ipc_chan;
typedef void (*ipc_msg_fn)(struct ipc_chan *ch, const struct ipc_msg *m, void *arg);
typedef void (*ipc_close_fn)(struct ipc_chan *ch, void *arg);

/*
 * Take over fd (made non-blocking) and start reading it in base. name is
 * the peer's name for logs ("qmgr"). allow is the set of types the peer
 * may send (NULL: any, for tests and tools that speak to one known
 * program only; every daemon channel has its set). on_close is called once when the peer
 * goes away or sends garbage; the channel must then be freed by the owner
 * (ipc_chan_free may be called from inside on_close or on_msg).
 */
struct ipc_chan *ipc_chan_new(struct event_base *base, int fd, const char *name,
                              const struct ipc_allow *allow, ipc_msg_fn on_msg,
                              ipc_close_fn on_close, void *arg);
void ipc_chan_free(struct ipc_chan *ch);
const char *ipc_chan_name(const struct ipc_chan *ch);
void ipc_chan_set_arg(struct ipc_chan *ch, void *arg);
/* 1 when the channel closed because the peer broke the protocol: a
 * malformed frame or a type the edge does not carry; not an EOF, a reset
 * or an end inside a frame (a peer that died). */
int ipc_chan_broken(const struct ipc_chan *ch);
/* Bytes queued but not yet written. */
size_t ipc_chan_pending(const struct ipc_chan *ch);

/*
 * Queue a frame. fd is -1 or an fd to pass; it is dup'd, so the caller
 * keeps its own. Returns 0, or -1 if the channel is closed or the body too
 * large (nothing queued then).
 */
int ipc_send(struct ipc_chan *ch, uint16_t type, uint32_t id, int fd, const void *body, size_t len);

/* Blocking helpers for simple clients (smtpctl, tests): whole frame or -1. */
int ipc_send_blocking(int sock, uint16_t type, uint32_t id, int fd, const void *body, size_t len);
/* Reads one frame; *body is malloc'd (free it); *fd is -1 or a received fd.
 * timeout_ms < 0 waits forever. Returns 0, or -1 with errno (ETIMEDOUT,
 * EPROTO for malformed, ECONNRESET for EOF). */
int ipc_recv_blocking(int sock, struct ipc_frame *out, uint8_t **body, int *fd, int timeout_ms);

/* Body writer. */
struct ipc_w {
    uint8_t *p;
    size_t len, cap;
};
void ipc_w_init(struct ipc_w *w);
void ipc_w_free(struct ipc_w *w);
void ipc_w_u8(struct ipc_w *w, uint8_t v);
void ipc_w_u16(struct ipc_w *w, uint16_t v);
void ipc_w_u32(struct ipc_w *w, uint32_t v);
void ipc_w_u64(struct ipc_w *w, uint64_t v);
void ipc_w_i64(struct ipc_w *w, int64_t v);
void ipc_w_str(struct ipc_w *w, const char *s);             /* NULL is sent as "" */
void ipc_w_bytes(struct ipc_w *w, const void *p, size_t n); /* u32 length + bytes */

/* Body reader. */
struct ipc_r {
    const uint8_t *p;
    size_t len, off;
    int err;
};
void ipc_r_init(struct ipc_r *r, const void *p, size_t len);
uint8_t ipc_r_u8(struct ipc_r *r);
uint16_t ipc_r_u16(struct ipc_r *r);
uint32_t ipc_r_u32(struct ipc_r *r);
uint64_t ipc_r_u64(struct ipc_r *r);
int64_t ipc_r_i64(struct ipc_r *r);
const char *ipc_r_str(struct ipc_r *r); /* points into the body; "" on error */
const void *ipc_r_bytes(struct ipc_r *r, size_t *n);
/* 1 if no error so far; ipc_r_done also requires the whole body read. */
int ipc_r_ok(const struct ipc_r *r);
int ipc_r_done(const struct ipc_r *r);

#endif
