/*
 * Unit tests for common/base/ipc: the pure decoder, the body reader/writer,
 * and channels on a real socketpair in a libevent loop (frames split
 * across reads, several frames in one read, oversize and truncated
 * frames, fd passing of an open file).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/ipc.h"
#include "tap.h"
#include "base/util.h"

struct got {
    int n;
    uint16_t type[16];
    uint32_t id[16];
    char body[16][64];
    int fd[16];
    int closed;
};

static void on_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    struct got *g = arg;

    if (g->n < 16) {
        g->type[g->n] = m->type;
        g->id[g->n] = m->id;
        snprintf(g->body[g->n], sizeof(g->body[0]), "%.*s", (int)m->len, (const char *)m->body);
        g->fd[g->n] = m->fd;
        g->n++;
    } else if (m->fd >= 0) {
        close(m->fd);
    }
}

static void on_close(struct ipc_chan *ch, void *arg)
{
    struct got *g = arg;
    g->closed = 1;
}

static size_t frame(uint8_t *out, uint16_t type, uint32_t id, const char *body)
{
    size_t len = strlen(body);
    ipc_encode_hdr(out, type, 0, id, len);
    memcpy(out + IPC_HDR_LEN, body, len);
    return IPC_HDR_LEN + len;
}

static void run_loop(struct event_base *base)
{
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

static void test_decoder(void)
{
    uint8_t buf[256];
    struct ipc_frame fr;
    size_t used = 0, n = frame(buf, 7, 42, "hello");
    const char *why = NULL;

    is_int(ipc_decode(buf, n, &fr, &used, &why), IPC_DEC_OK, "whole frame decodes");
    is_int(used, n, "consumed = header + body");
    is_int(fr.type, 7, "type");
    is_int(fr.id, 42, "id");
    ok(fr.len == 5 && memcmp(fr.body, "hello", 5) == 0, "body");
    for (size_t k = 0; k < n; k++)
        if (ipc_decode(buf, k, &fr, &used, &why) != IPC_DEC_MORE) {
            ok(0, "prefix of %zu bytes asks for more", k);
            return;
        }
    ok(1, "every strict prefix asks for more");

    ipc_encode_hdr(buf, 7, 0, 1, (size_t)IPC_MAX_BODY + 1);
    is_int(ipc_decode(buf, IPC_HDR_LEN, &fr, &used, &why), IPC_DEC_ERR, "oversize length refused");
    is_str(why, "frame larger than IPC_MAX_BODY", "oversize reason");
    ipc_encode_hdr(buf, 7, 0x8, 1, 0);
    is_int(ipc_decode(buf, IPC_HDR_LEN, &fr, &used, &why), IPC_DEC_ERR, "unknown flag refused");
    ipc_encode_hdr(buf, 0, 0, 1, 0);
    is_int(ipc_decode(buf, IPC_HDR_LEN, &fr, &used, &why), IPC_DEC_ERR, "type 0 refused");
}

static void test_body(void)
{
    struct ipc_w w;
    struct ipc_r r;
    size_t n;

    ipc_w_init(&w);
    ipc_w_u32(&w, 7);
    ipc_w_str(&w, "queue-id");
    ipc_w_i64(&w, -5);
    ipc_w_bytes(&w, "ab\0c", 4);
    ipc_w_str(&w, NULL);
    ipc_r_init(&r, w.p, w.len);
    is_int(ipc_r_u32(&r), 7, "u32 round trip");
    is_str(ipc_r_str(&r), "queue-id", "str round trip");
    is_int(ipc_r_i64(&r), -5, "i64 round trip");
    const char *b = ipc_r_bytes(&r, &n);
    ok(n == 4 && memcmp(b, "ab\0c", 4) == 0, "bytes round trip");
    is_str(ipc_r_str(&r), "", "NULL string sent as empty");
    ok(ipc_r_done(&r), "body consumed exactly");

    ipc_r_init(&r, w.p, w.len - 1);
    (void)ipc_r_u32(&r);
    (void)ipc_r_str(&r);
    (void)ipc_r_i64(&r);
    (void)ipc_r_bytes(&r, &n);
    (void)ipc_r_str(&r);
    ok(!ipc_r_ok(&r), "truncated body is an error");
    ipc_r_init(&r, w.p, w.len);
    (void)ipc_r_u32(&r);
    ok(ipc_r_ok(&r) && !ipc_r_done(&r), "unread remainder is not done");
    ipc_w_free(&w);

    /* A string without its NUL, or with one inside, is refused. */
    uint8_t bad1[] = {3, 0, 0, 0, 'a', 'b', 'c', 'd'};
    ipc_r_init(&r, bad1, sizeof(bad1));
    (void)ipc_r_str(&r);
    ok(!ipc_r_ok(&r), "string without NUL terminator refused");
    uint8_t bad2[] = {3, 0, 0, 0, 'a', 0, 'c', 0};
    ipc_r_init(&r, bad2, sizeof(bad2));
    (void)ipc_r_str(&r);
    ok(!ipc_r_ok(&r), "string with embedded NUL refused");
    uint8_t bad3[] = {0xff, 0xff, 0xff, 0xff, 'a', 0};
    ipc_r_init(&r, bad3, sizeof(bad3));
    (void)ipc_r_str(&r);
    ok(!ipc_r_ok(&r), "string length beyond the body refused");
}

static void test_channel_split_and_batched(void)
{
    struct event_base *base = event_base_new();
    struct got g = {0};
    int sp[2];
    uint8_t buf[512];
    size_t n = 0;

    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    struct ipc_chan *ch = ipc_chan_new(base, sp[0], "test", NULL, on_msg, on_close, &g);

    /* One frame written a byte at a time. */
    n = frame(buf, 10, 1, "split");
    for (size_t i = 0; i < n; i++) {
        write_all(sp[1], buf + i, 1);
        run_loop(base);
    }
    is_int(g.n, 1, "frame split across many reads arrives once");
    is_str(g.body[0], "split", "split frame body intact");

    /* Three frames in one write. */
    n = frame(buf, 11, 2, "one");
    n += frame(buf + n, 12, 3, "two");
    n += frame(buf + n, 13, 4, "");
    write_all(sp[1], buf, n);
    run_loop(base);
    is_int(g.n, 4, "three frames in one read all arrive");
    ok(g.type[1] == 11 && g.type[2] == 12 && g.type[3] == 13, "in order");
    is_str(g.body[2], "two", "middle frame body");
    is_int(g.id[3], 4, "empty-body frame keeps its id");
    ok(!g.closed, "channel still open");

    /* Send through the channel and read back blocking on the other end. */
    ok(ipc_send(ch, 20, 99, -1, "pong", 4) == 0, "ipc_send queues");
    struct ipc_frame fr;
    uint8_t *body;
    int rfd;
    ok(ipc_recv_blocking(sp[1], &fr, &body, &rfd, 2000) == 0, "blocking receive");
    ok(fr.type == 20 && fr.id == 99 && fr.len == 4 && memcmp(body, "pong", 4) == 0,
       "sent frame arrives intact");
    free(body);

    ipc_chan_free(ch);
    close(sp[1]);
    event_base_free(base);
}

static void test_channel_bad_frames(void)
{
    struct event_base *base = event_base_new();
    struct got g = {0};
    int sp[2];
    uint8_t hdr[IPC_HDR_LEN];

    /* Oversize: closed without waiting for the body. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    struct ipc_chan *ch = ipc_chan_new(base, sp[0], "bad", NULL, on_msg, on_close, &g);
    ipc_encode_hdr(hdr, 5, 0, 1, (size_t)IPC_MAX_BODY + 100);
    write_all(sp[1], hdr, sizeof(hdr));
    run_loop(base);
    ok(g.closed && g.n == 0, "oversize frame closes the channel, nothing delivered");
    ipc_chan_free(ch);
    close(sp[1]);

    /* Truncated: the peer closes in the middle of a frame. */
    memset(&g, 0, sizeof(g));
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    ch = ipc_chan_new(base, sp[0], "trunc", NULL, on_msg, on_close, &g);
    ipc_encode_hdr(hdr, 5, 0, 1, 100);
    write_all(sp[1], hdr, sizeof(hdr));
    write_all(sp[1], "only part", 9);
    close(sp[1]);
    run_loop(base);
    ok(g.closed && g.n == 0, "truncated frame at EOF: closed, nothing delivered");
    ipc_chan_free(ch);

    /* A frame that claims an fd which never came. */
    memset(&g, 0, sizeof(g));
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    ch = ipc_chan_new(base, sp[0], "nofd", NULL, on_msg, on_close, &g);
    ipc_encode_hdr(hdr, 5, IPC_F_FD, 1, 0);
    write_all(sp[1], hdr, sizeof(hdr));
    run_loop(base);
    ok(g.closed && g.n == 0, "frame announcing a missing fd closes the channel");
    ipc_chan_free(ch);
    close(sp[1]);

    /* ipc_send after close fails instead of queueing. */
    memset(&g, 0, sizeof(g));
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    ch = ipc_chan_new(base, sp[0], "closed", NULL, on_msg, on_close, &g);
    close(sp[1]);
    run_loop(base);
    ok(g.closed, "EOF reported");
    is_int(ipc_send(ch, 5, 1, -1, "x", 1), -1, "send on a closed channel fails");
    ipc_chan_free(ch);
    event_base_free(base);
}

static void test_fd_passing(void)
{
    struct event_base *base = event_base_new();
    struct got g = {0};
    int sp[2];
    char path[] = "/tmp/postern-ipc-XXXXXX";
    int fd = mkstemp(path);
    char rd[64] = "";

    write_all(fd, "message body", 12);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    struct ipc_chan *rx = ipc_chan_new(base, sp[0], "rx", NULL, on_msg, on_close, &g);
    struct ipc_chan *tx = ipc_chan_new(base, sp[1], "tx", NULL, on_msg, on_close, NULL);

    ok(ipc_send(tx, 30, 5, fd, "with-fd", 7) == 0, "send with an fd");
    ok(ipc_send(tx, 31, 6, -1, "plain", 5) == 0, "then one without");
    ok(ipc_send(tx, 32, 7, fd, "again", 5) == 0, "then another with the same fd");
    close(fd);
    unlink(path);
    run_loop(base);
    is_int(g.n, 3, "three frames received");
    ok(g.fd[0] >= 0 && g.fd[1] == -1 && g.fd[2] >= 0, "fds matched to the frames that carry them");
    ok(g.fd[0] >= 0 && pread(g.fd[0], rd, sizeof(rd) - 1, 0) == 12 &&
           strcmp(rd, "message body") == 0,
       "passed fd reads the open (and since unlinked) file");
    ok(g.fd[0] != g.fd[2], "each passed fd is its own descriptor");
    for (int i = 0; i < g.n; i++)
        if (g.fd[i] >= 0)
            close(g.fd[i]);

    /* Blocking helpers carry fds too. */
    int pp[2];
    pipe(pp);
    ok(ipc_send_blocking(sp[1], 33, 8, pp[0], "b", 1) == 0, "blocking send with fd");
    ipc_chan_free(rx);
    ipc_chan_free(tx);
    close(pp[0]);
    close(pp[1]);
    event_base_free(base);

    struct ipc_frame fr;
    uint8_t *body;
    int rfd;
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    pipe(pp);
    ipc_send_blocking(sp[1], 34, 9, pp[1], "p", 1);
    ok(ipc_recv_blocking(sp[0], &fr, &body, &rfd, 2000) == 0 && rfd >= 0 && fr.type == 34,
       "blocking receive gets the fd");
    write_all(rfd, "z", 1);
    char z = 0;
    ok(read(pp[0], &z, 1) == 1 && z == 'z', "received pipe end works");
    free(body);
    close(rfd);
    close(pp[0]);
    close(pp[1]);
    close(sp[0]);
    close(sp[1]);
}

static void test_large_frames(void)
{
    struct event_base *base = event_base_new();
    struct got g = {0};
    int sp[2];
    size_t big = 1024 * 1024;
    char *payload = xmalloc(big);

    memset(payload, 'x', big);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    struct ipc_chan *rx = ipc_chan_new(base, sp[0], "rx", NULL, on_msg, on_close, &g);
    struct ipc_chan *tx = ipc_chan_new(base, sp[1], "tx", NULL, on_msg, on_close, NULL);
    for (int i = 0; i < 3; i++)
        ipc_send(tx, 40, (uint32_t)i, -1, payload, big);
    ok(ipc_chan_pending(tx) > 0, "large frames wait in the send queue");
    for (int i = 0; i < 200 && g.n < 3; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    is_int(g.n, 3, "three 1 MiB frames arrive through a small socket buffer");
    is_int(ipc_chan_pending(tx), 0, "send queue drained");
    ipc_chan_free(rx);
    ipc_chan_free(tx);
    free(payload);
    event_base_free(base);
}

/* A channel with an allow list: listed types pass, the first other one
 * closes it (marked broken), and nothing after it is handed over; a
 * passed fd that came with the refused frame is closed, not leaked. */
static void test_channel_allow(void)
{
    static const uint16_t types[] = {7, 9};
    static const struct ipc_allow allow = {"test edge", types, 2};
    struct event_base *base = event_base_new();
    struct got g = {0};
    int sp[2];
    uint8_t buf[512];
    size_t n;

    ok(ipc_allowed(&allow, 7) && ipc_allowed(&allow, 9), "listed types are allowed");
    ok(!ipc_allowed(&allow, 8) && !ipc_allowed(&allow, 0), "others are not");
    ok(ipc_allowed(NULL, 12345), "no list: any type");

    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    struct ipc_chan *ch = ipc_chan_new(base, sp[0], "peer", &allow, on_msg, on_close, &g);
    n = frame(buf, 7, 1, "a");
    n += frame(buf + n, 9, 2, "b");
    n += frame(buf + n, 8, 3, "refused");
    n += frame(buf + n, 7, 4, "after");
    write_all(sp[1], buf, n);
    run_loop(base);
    is_int(g.n, 2, "the two allowed frames arrived, nothing from the refused one on");
    ok(g.closed, "a type the edge does not carry closes the channel");
    ok(ipc_chan_broken(ch), "and marks it broken (not a plain EOF)");
    ipc_chan_free(ch);
    close(sp[1]);

    /* A refused frame with an fd: the fd is closed by the channel. */
    struct got g2 = {0};
    int pipefd[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    ch = ipc_chan_new(base, sp[0], "peer2", &allow, on_msg, on_close, &g2);
    ok(pipe(pipefd) == 0, "pipe");
    ok(ipc_send_blocking(sp[1], 8, 5, pipefd[0], "x", 1) == 0, "sent a refused frame with an fd");
    close(pipefd[0]);
    run_loop(base);
    ok(g2.closed && g2.n == 0, "refused, channel closed");
    char c = 'z';
    ok(write(pipefd[1], &c, 1) < 0 && errno == EPIPE, "the passed fd was closed (no reader left)");
    close(pipefd[1]);
    ipc_chan_free(ch);
    close(sp[1]);

    /* EOF is not broken. */
    struct got g3 = {0};
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    ch = ipc_chan_new(base, sp[0], "peer3", &allow, on_msg, on_close, &g3);
    close(sp[1]);
    run_loop(base);
    ok(g3.closed && !ipc_chan_broken(ch), "EOF closes the channel without marking it broken");
    ipc_chan_free(ch);

    /* A peer that dies halfway through a frame is not a protocol breach
     * (a killed process looks like that; no one is to blame). */
    struct got g4 = {0};
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    ch = ipc_chan_new(base, sp[0], "peer4", &allow, on_msg, on_close, &g4);
    n = frame(buf, 7, 1, "half of a frame");
    write_all(sp[1], buf, n - 4);
    close(sp[1]);
    run_loop(base);
    ok(g4.closed && !ipc_chan_broken(ch), "an end inside a frame is not marked broken");
    ipc_chan_free(ch);
    event_base_free(base);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    plan_lazy();
    test_decoder();
    test_body();
    test_channel_split_and_batched();
    test_channel_bad_frames();
    test_fd_passing();
    test_large_frames();
    test_channel_allow();
    return done_testing();
}
