/*
 * commit - writing accepted messages into the queue, durably and in
 * batches (group commit).
 *
 * A message being received is a struct qmsg: its head (the queue file
 * envelope and the Received: header, built at DATA time) and its body
 * (the decoded DATA). Small messages stay in memory until the end; a body
 * that grows past COMMIT_SPILL bytes is streamed into incoming/ID
 * (qmsg_spill), so memory stays bounded.
 *
 * commit_submit() puts a complete message in the current batch. The batch
 * starts from a zero-delay timer, i.e. after the event loop has handled
 * every other ready socket, so that messages whose final dot arrived
 * together are committed together:
 *   1. (loop) create and write incoming/ID for each (unless spilled
 *      already) and set the size in the envelope;
 *   2. (sync thread) start writeback of every file, fdatasync each;
 *   3. (sync thread) rename incoming/ID to queue/ID for each (never over
 *      an existing file: RENAME_NOREPLACE);
 *   4. (sync thread) fsync the queue/ directory once;
 *   5. (loop, woken by an eventfd) call each message's done(ok), so the
 *      session says 250 only now.
 * A message that failed anywhere is removed and reported with ok = 0.
 *
 * Steps 2-4 run in one sync thread so that the event loop never waits
 * for the disk: while one batch is being made durable, sessions go on
 * and the next batch fills. That is what lets a batch grow with the load
 * (group commit); with the sync in the loop, every session stalled for
 * every fsync. The thread touches only the messages of the batch it was
 * given, and only until it hands the batch back; it never logs or calls
 * back (the loop does both).
 *
 * qmsg_free() of a message that was not committed removes its incoming
 * file, so an aborted session leaves nothing behind. commit_init()
 * removes whatever an earlier crash left in incoming/ and free/.
 *
 * Recycled files. Creating a file costs an inode allocation, and on ext4
 * without a journal that means scanning past every recently deleted inode
 * of the group (measured: a third of smtpd's CPU time at 1,500 messages/s).
 * So qmgr does not delete a delivered queue file: it renames it into
 * free/ and tells smtpd its name (IMSG_QUEUE_FREE), and step 1 takes a
 * name from this pool, renames free/NAME to incoming/ID, overwrites it
 * from offset 0 and cuts it to the new length, falling back to creating
 * a file when the pool is empty or the name is gone. Only names announced
 * since this process started are reused: a file found in free/ at start
 * could, after a crash of a file system without a journal, still share
 * its inode with a queue file, so those are unlinked, never rewritten.
 */
#ifndef POSTERN_COMMIT_H
#define POSTERN_COMMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "mail/qfile.h"
#include "base/util.h"

struct event_base;
struct event;

#define COMMIT_SPILL (1024u * 1024)

struct qmsg;
typedef void (*qmsg_done_fn)(struct qmsg *m, int ok, void *arg);

struct qmsg {
    TAILQ_ENTRY(qmsg) link;
    char id[QFILE_ID_SIZE];
    struct buf head;   /* envelope, then the Received: header */
    size_t env_len;    /* bytes of head that are the envelope */
    size_t size_off;   /* where the 20-digit size is in head */
    struct buf body;   /* body bytes not yet written */
    uint64_t body_len; /* all body bytes, written or not */
    int fd;            /* incoming/ID once created, else -1 */
    uint64_t file_len; /* bytes written to fd so far */
    int recycled;      /* fd is a reused file: cut it to file_len at the end */
    int failed;
    int committed;
    const char *sync_what; /* set by the sync thread when a step failed */
    int sync_errno;
    qmsg_done_fn done;
    void *arg;
};

TAILQ_HEAD(qmsg_list, qmsg);

struct commit_stats {
    uint64_t batches;
    uint64_t messages;
    uint64_t failed;
    uint64_t bytes;
    uint64_t max_batch;
    uint64_t sync_us;      /* time spent in fdatasync/fsync */
    uint64_t inflight;     /* messages in the batch being synced */
    uint64_t recycled;     /* files reused from free/ */
    uint64_t created;      /* files created */
    uint64_t pool_dropped; /* announced names deleted because the pool was full */
};

struct committer {
    struct event_base *base;
    int incoming_fd;
    int queue_fd;
    struct event *ev;
    struct qmsg_list batch; /* filling: messages submitted since the last start */
    size_t nbatch;
    struct commit_stats st;
    int free_fd;                 /* free/, or -1: no recycling */
    char (*pool)[QFILE_ID_SIZE]; /* names in free/ to reuse, newest last */
    size_t npool, pool_max;
    /* The sync thread and the batch it works on (guarded by mu). */
    struct sync_worker *w;
};

/* Open incoming/ and queue/ (relative to the working directory, the
 * spool) and remove stale files from incoming/. 0, or -1 and *err. */
int commit_init(struct committer *c, struct event_base *base, char **err);
void commit_free(struct committer *c);

/* How many names the recycling pool keeps (queue_file_recycle); 0 turns
 * recycling off and empties the pool. */
void commit_set_pool_max(struct committer *c, size_t max);
/* qmgr moved a delivered queue file to free/NAME: keep it for reuse, or
 * delete it when the pool is full or the name is not a queue ID. */
void commit_recycle(struct committer *c, const char *name);

struct qmsg *qmsg_new(const char *id);
/* Write what is buffered to incoming/ID now. 0, or -1 (the message is
 * marked failed; the session still reads to the end of DATA). */
int qmsg_spill(struct committer *c, struct qmsg *m);
void qmsg_free(struct committer *c, struct qmsg *m);

void commit_submit(struct committer *c, struct qmsg *m, qmsg_done_fn done, void *arg);
/* Finish the batch in the sync thread and run the current one, both to
 * the end, before returning (tests, shutdown). */
void commit_run(struct committer *c);

#endif
