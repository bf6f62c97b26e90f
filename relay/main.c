/*
 * relay - delivery through relay gateways (issue 6 builds its work).
 *
 * Today it runs under the child skeleton (privileges dropped, chrooted as
 * DESIGN section 1 says, answering master's status and reload) and keeps
 * its peer channels open; it takes no work yet.
 */
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "ipc.h"
#include "log.h"

#define MAX_PEERS 4

static struct ipc_chan *peers[MAX_PEERS];
static const char *peer_name[MAX_PEERS];

static void on_peer_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    log_warn("%s sent message type %u, which this version does not handle", ipc_chan_name(ch),
             m->type);
    if (m->fd >= 0)
        close(m->fd);
}

static void on_peer_close(struct ipc_chan *ch, void *arg)
{
    for (int i = 0; i < MAX_PEERS; i++)
        if (peers[i] == ch)
            peers[i] = NULL;
    ipc_chan_free(ch);
}

static void on_peer(struct child *c, const char *name, int fd)
{
    int slot = -1;

    for (int i = 0; i < MAX_PEERS; i++) {
        if (peer_name[i] && peers[i] && strcmp(peer_name[i], name) == 0) {
            ipc_chan_free(peers[i]);
            peers[i] = NULL;
        }
        if (peers[i] == NULL && slot < 0)
            slot = i;
    }
    if (slot < 0) {
        close(fd);
        return;
    }
    peer_name[slot] = name; /* static string from the skeleton */
    peers[slot] = ipc_chan_new(c->base, fd, name, on_peer_msg, on_peer_close, NULL);
}

static const struct child_spec spec = {
    .prog = "relay",
    .root = CHILD_ROOT_EMPTY,
    .peer = on_peer,
};

int main(int argc, char **argv)
{
    struct child *c = child_init(argc, argv, &spec);

    child_drop(c);
    return child_loop(c);
}
