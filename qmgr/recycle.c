/*
 * recycle - delivered queue files go to free/ for smtpd to reuse instead
 * of being deleted (why: smtpd/commit.h). Names are sent to smtpd in one
 * IMSG_QUEUE_FREE per loop turn.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/ipc.h"
#include "base/log.h"
#include "mail/proto.h"
#include "qmgr.h"
#include "mail/spool.h"

/* Bigger files are deleted: a pool of them would hold too much disk. */
#define RECYCLE_MAX_BYTES (256u * 1024)
/* Names sent in one message at most (the rest waits for the next turn). */
#define RECYCLE_BATCH 1024

static void send_names(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *q = arg;
    struct ipc_w w;
    size_t n = q->nfreed < RECYCLE_BATCH ? q->nfreed : RECYCLE_BATCH;

    if (n == 0)
        return;
    if (q->smtpd == NULL) {
        /* smtpd went away: nobody will reuse them. */
        for (size_t i = 0; i < q->nfreed; i++) {
            char path[64];
            snprintf(path, sizeof(path), "%s/%s", SPOOL_FREE, q->freed[i]);
            unlink(path);
        }
        q->nfreed = 0;
        return;
    }
    ipc_w_init(&w);
    ipc_w_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        ipc_w_str(&w, q->freed[i]);
    if (ipc_send(q->smtpd, IMSG_QUEUE_FREE, 0, -1, w.p, w.len) != 0)
        log_debug("cannot tell smtpd about %zu freed queue files", n);
    ipc_w_free(&w);
    memmove(q->freed, q->freed + n, (q->nfreed - n) * sizeof(*q->freed));
    q->nfreed -= n;
    if (q->nfreed)
        event_active(q->free_ev, EV_TIMEOUT, 0);
}

int recycle_file(struct qmgr *q, const struct msg *m, const char *path)
{
    char to[64];

    if (q->recycle_max == 0 || q->smtpd == NULL || m->active > 0 || m->size > RECYCLE_MAX_BYTES ||
        q->nfreed >= (size_t)q->recycle_max)
        return -1;
    snprintf(to, sizeof(to), "%s/%s", SPOOL_FREE, m->id);
    if (rename(path, to) != 0) {
        if (errno != ENOENT)
            log_debug("%s: cannot move %s to %s/: %s", m->id, path, SPOOL_FREE, strerror(errno));
        return -1;
    }
    if (q->free_ev == NULL)
        q->free_ev = event_new(q->base, -1, 0, send_names, q);
    if (q->nfreed == q->freed_cap) {
        q->freed_cap = q->freed_cap ? 2 * q->freed_cap : 64;
        q->freed = xrealloc(q->freed, q->freed_cap * sizeof(*q->freed));
    }
    memcpy(q->freed[q->nfreed++], m->id, sizeof(*q->freed));
    if (q->nfreed == 1)
        event_active(q->free_ev, EV_TIMEOUT, 0);
    return 0;
}

/*
 * At start: files a previous qmgr moved to free/ but never announced
 * would stay there until smtpd restarts. Deleting them all is safe even
 * while smtpd holds some of their names: smtpd skips a name that is gone,
 * and its rename and this unlink cannot both succeed.
 */
void recycle_start(struct qmgr *q)
{
    int fd = open(SPOOL_FREE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    unsigned n;

    (void)q;
    if (fd < 0)
        return;
    if ((n = dir_clear(fd, NULL)) > 0)
        log_debug("removed %u file(s) from %s/", n, SPOOL_FREE);
    close(fd);
}

void recycle_close(struct qmgr *q)
{
    if (q->free_ev) {
        send_names(-1, 0, q);
        event_free(q->free_ev);
        q->free_ev = NULL;
    }
    free(q->freed);
    q->freed = NULL;
    q->nfreed = q->freed_cap = 0;
}
