/*
 * libFuzzer target: every message type on every edge. The first input
 * byte picks an edge's allow list (proto.h), the rest is the byte stream
 * a peer sends on a real channel (socketpair, libevent loop). The
 * handler traps if a frame of a type the edge does not carry ever
 * reaches it; the channel must close instead.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/ipc.h"
#include "base/util.h"
#include "mail/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct ipc_allow *const edges[] = {
    &proto_master_to_child, &proto_master_to_relay, &proto_master_to_smtpd, &proto_child_to_master,
    &proto_ctl_to_master,   &proto_smtpd_to_qmgr,   &proto_qmgr_to_smtpd,   &proto_qmgr_to_dlv,
    &proto_deliver_to_qmgr, &proto_relay_to_qmgr,   &proto_dnsd_to_client,  &proto_client_to_dnsd,
    &proto_master_to_qmgr,  &proto_dnsd_to_master,
};

struct st {
    const struct ipc_allow *a;
    int closed;
};

static void on_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    struct st *s = arg;

    if (!ipc_allowed(s->a, m->type))
        __builtin_trap();
    if (m->fd >= 0)
        close(m->fd);
}

static void on_close(struct ipc_chan *ch, void *arg)
{
    struct st *s = arg;
    s->closed = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    struct st s = {0};
    int sp[2];

    if (size < 1 || size > 65536)
        return 0;
    if (base == NULL)
        base = event_base_new();
    s.a = edges[data[0] % nitems(edges)];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0)
        return 0;
    struct ipc_chan *ch = ipc_chan_new(base, sp[0], "fuzz", s.a, on_msg, on_close, &s);
    if (write_all(sp[1], data + 1, size - 1) < 0)
        __builtin_trap();
    shutdown(sp[1], SHUT_WR);
    for (int i = 0; i < 64 && !s.closed; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ipc_chan_free(ch);
    close(sp[1]);
    return 0;
}
