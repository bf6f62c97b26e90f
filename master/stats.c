/*
 * stats - what master adds to qmgr's metrics (mail/stats.h): the restarts
 * of each child, and dnsd's counters, which dnsd sends here because it
 * has no channel to qmgr. Once a second both go to qmgr in one
 * IMSG_STATS_MASTER; master keeps only the last dnsd snapshot, so
 * nothing grows.
 */
#include <string.h>

#include <event2/event.h>

#include "base/log.h"
#include "mail/proto.h"
#include "mail/stats.h"
#include "master.h"

#define STATS_EVERY_S 1

static uint64_t dns[STD__COUNT];
static int dns_seen;
static struct event *timer;

void stats_take_dnsd(struct master *m, const struct ipc_msg *msg)
{
    if (stats_decode(msg->body, msg->len, dns, STD__COUNT) < 0) {
        log_warn("dnsd sent malformed counters (%zu bytes); ignored", msg->len);
        return;
    }
    dns_seen = 1;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    struct ipc_chan *qmgr = m->ch[CH_QMGR].chan;
    uint64_t v[STM__COUNT];
    struct ipc_w w;

    if (qmgr == NULL || m->stopping)
        return;
    memset(v, 0, sizeof(v));
    for (int i = 0; i < STP__COUNT; i++) {
        struct mchild *c = children_by_name(m, stats_proc_names[i]);
        v[STM_RESTARTS + i] = c ? (uint64_t)c->restarts : 0;
    }
    v[STM_DNS_SEEN] = (uint64_t)dns_seen;
    memcpy(&v[STM_DNS], dns, sizeof(dns));
    ipc_w_init(&w);
    stats_encode(&w, v, STM__COUNT);
    ipc_send(qmgr, IMSG_STATS_MASTER, 0, -1, w.p, w.len);
    ipc_w_free(&w);
}

void stats_start(struct master *m)
{
    static const struct timeval every = {STATS_EVERY_S, 0};

    timer = event_new(m->base, -1, EV_PERSIST, on_timer, m);
    event_add(timer, &every);
}
