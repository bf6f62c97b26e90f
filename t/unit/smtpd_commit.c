/*
 * smtpd_commit - unit tests of the group commit (smtpd/commit.c) in a
 * temporary spool: a batch lands in queue/ as parseable queue files, a
 * spilled large message gets its size patched, an aborted message leaves
 * nothing in incoming/, stale files are cleaned at start, and an existing
 * queue file is never overwritten.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "../../smtpd/commit.h"
#include "qfile.h"
#include "tap.h"

static int done_ok, done_fail;

static void on_done(struct qmsg *m, int ok, void *arg)
{
    struct committer *c = arg;
    if (ok)
        done_ok++;
    else
        done_fail++;
    qmsg_free(c, m);
}

static int count(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static struct qmsg *make(struct qfile_idgen *g, const char *body, size_t body_len)
{
    static char rcpt_addr[] = "bob@example.net", client[] = "127.0.0.1", proto[] = "ESMTP",
                sender[] = "alice@example.com";
    struct qfile_rcpt r = {rcpt_addr, 0, NULL};
    struct qfile_env e;
    char id[QFILE_ID_SIZE];
    const char *why;
    struct qmsg *m;

    memset(&e, 0, sizeof(e));
    qfile_id_next(g, now_us(), id);
    memcpy(e.id, id, sizeof(id));
    e.client_addr = client;
    e.proto = proto;
    e.sender = sender;
    e.rcpt = &r;
    e.nrcpt = 1;
    m = qmsg_new(id);
    qfile_env_write(&m->head, &e, &m->size_off, &why);
    m->env_len = m->head.len;
    buf_adds(&m->head, "Received: test\r\n");
    buf_add(&m->body, body, body_len);
    m->body_len = body_len;
    return m;
}

static int check_file(const char *id, size_t want_size)
{
    char path[128];
    struct qfile_env e;
    char *err = NULL;
    int fd, ok_ = 0;

    snprintf(path, sizeof(path), "queue/%s", id);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    if (qfile_read(fd, &e, &err) == 0) {
        ok_ = e.size == want_size && strcmp(e.id, id) == 0;
        qfile_env_free(&e);
    } else {
        diag("%s: %s", id, err);
        free(err);
    }
    close(fd);
    return ok_;
}

int main(void)
{
    char dir[] = "/tmp/commit-test-XXXXXX";
    struct event_base *base = event_base_new();
    struct committer c;
    struct qfile_idgen g;
    struct qmsg *m[5];
    char ids[5][QFILE_ID_SIZE];
    char *err = NULL;

    plan_lazy();
    if (mkdtemp(dir) == NULL || chdir(dir) != 0)
        return 1;
    mkdir("incoming", 0700);
    mkdir("queue", 0700);
    close(open("incoming/STALE", O_CREAT | O_WRONLY, 0600));
    is_int(commit_init(&c, base, &err), 0, "commit_init");
    is_int(count("incoming"), 0, "stale incoming file removed at start");
    qfile_id_init(&g, 0);

    /* a batch of three, run from the event loop */
    for (int i = 0; i < 3; i++) {
        m[i] = make(&g, "Subject: x\r\n\r\nhello\r\n", 21);
        strcpy(ids[i], m[i]->id);
        commit_submit(&c, m[i], on_done, &c);
    }
    is_int(done_ok, 0, "nothing acknowledged before the batch runs");
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    is_int(done_ok, 0, "nothing acknowledged while the sync thread works on the batch");
    /* The sync thread wakes the loop through its eventfd (bounded wait). */
    for (int i = 0; i < 500 && done_ok < 3; i++) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    is_int(done_ok, 3, "three acknowledged");
    is_int(c.st.batches, 1, "in one batch");
    is_int(count("queue"), 3, "three files in queue/");
    is_int(count("incoming"), 0, "incoming/ empty");
    for (int i = 0; i < 3; i++)
        ok(check_file(ids[i], 16 + 21), "queue file %d parses with the right size", i);

    /* a large message streamed to disk, then finished */
    {
        size_t big = 3 * COMMIT_SPILL;
        char *body = malloc(big);
        memset(body, 'x', big);
        for (size_t i = 998; i < big; i += 1000) {
            body[i] = '\r';
            body[i + 1] = '\n';
        }
        m[3] = make(&g, body, COMMIT_SPILL + 10);
        strcpy(ids[3], m[3]->id);
        is_int(qmsg_spill(&c, m[3]), 0, "spill");
        is_int(count("incoming"), 1, "spilled file in incoming/");
        buf_add(&m[3]->body, body, big - COMMIT_SPILL - 10);
        m[3]->body_len += big - COMMIT_SPILL - 10;
        commit_submit(&c, m[3], on_done, &c);
        commit_run(&c);
        ok(check_file(ids[3], 16 + big), "spilled message: size patched, file complete");
        free(body);
    }

    /* an aborted message leaves nothing */
    m[4] = make(&g, "x", 1);
    qmsg_spill(&c, m[4]);
    is_int(count("incoming"), 1, "aborted message was in incoming/");
    qmsg_free(&c, m[4]);
    is_int(count("incoming"), 0, "and is gone after qmsg_free");

    /* never overwrite an existing queue file */
    {
        struct qfile_idgen g2;
        qfile_id_init(&g2, 0);
        m[4] = make(&g2, "y", 1); /* same generator start: the ID may collide */
        char path[64];
        snprintf(path, sizeof(path), "queue/%s", m[4]->id);
        close(open(path, O_CREAT | O_WRONLY, 0600));
        int before = done_fail;
        commit_submit(&c, m[4], on_done, &c);
        commit_run(&c);
        is_int(done_fail, before + 1, "existing queue/ID: refused, not overwritten");
        struct stat st;
        ok(stat(path, &st) == 0 && st.st_size == 0, "the existing file is untouched");
        is_int(count("incoming"), 0, "nothing left in incoming/");
    }

    commit_free(&c);
    event_base_free(base);
    {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (chdir("/") != 0 || system(cmd) != 0)
            diag("cleanup failed");
    }
    return done_testing();
}
