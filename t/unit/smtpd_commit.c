/*
 * smtpd_commit - unit tests of the group commit (smtpd/commit.c) in a
 * temporary spool: a batch lands in queue/ as parseable queue files, a
 * spilled large message gets its size patched, an aborted message leaves
 * nothing in incoming/, stale files are cleaned at start, and an existing
 * queue file is never overwritten. Recycling: an announced free/ file is
 * reused (same inode) and cut to the new message, a spilled message too;
 * bad names are ignored, a full pool deletes, a vanished name falls back
 * to creating a file.
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
#include "mail/qfile.h"
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

static size_t file_size(const char *dir, const char *id, ino_t *ino)
{
    char path[128];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, id);
    if (stat(path, &st) != 0)
        return (size_t)-1;
    if (ino)
        *ino = st.st_ino;
    return (size_t)st.st_size;
}

/* A file of n bytes of 'Z' in free/ under a fresh queue ID; its inode. */
static ino_t put_free(struct qfile_idgen *g, char *name, size_t n)
{
    char path[128];
    char *junk = malloc(n);
    ino_t ino = 0;
    int fd;

    qfile_id_next(g, now_us(), name);
    snprintf(path, sizeof(path), "free/%s", name);
    memset(junk, 'Z', n);
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd >= 0 && write(fd, junk, n) == (ssize_t)n)
        file_size("free", name, &ino);
    if (fd >= 0)
        close(fd);
    free(junk);
    return ino;
}

static int has_byte(const char *dir, const char *id, char b)
{
    char path[128], buf[4096];
    ssize_t n;
    int fd, found = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, id);
    if ((fd = open(path, O_RDONLY)) < 0)
        return -1;
    while (!found && (n = read(fd, buf, sizeof(buf))) > 0)
        found = memchr(buf, b, (size_t)n) != NULL;
    close(fd);
    return found;
}

static void test_recycling(struct committer *c, struct qfile_idgen *g)
{
    char name[QFILE_ID_SIZE], name2[QFILE_ID_SIZE], name3[QFILE_ID_SIZE];
    ino_t ino, got;
    struct qmsg *m;
    size_t want;
    uint64_t created, recycled;

    commit_set_pool_max(c, 2);

    /* a long file in free/ takes a short message */
    ino = put_free(g, name, 20000);
    ok(ino != 0, "free/ file made");
    commit_recycle(c, name);
    is_int((long long)c->npool, 1, "name taken into the pool");
    m = make(g, "Subject: r\r\n\r\nrecycled\r\n", 24);
    want = m->head.len + m->body.len;
    char id[QFILE_ID_SIZE];
    strcpy(id, m->id);
    recycled = c->st.recycled;
    commit_submit(c, m, on_done, c);
    commit_run(c);
    is_int((long long)(c->st.recycled - recycled), 1, "the message went into the recycled file");
    is_int((long long)file_size("queue", id, &got), (long long)want, "cut to the new length");
    ok(got == ino, "same inode");
    is_int(has_byte("queue", id, 'Z'), 0, "nothing of the old content left");
    ok(check_file(id, 16 + 24), "the recycled queue file parses");
    is_int(count("free"), 0, "free/ is empty");

    /* names that are not queue IDs are never touched */
    close(open("free/notanid", O_CREAT | O_WRONLY, 0600));
    commit_recycle(c, "notanid");
    commit_recycle(c, "../queue");
    is_int((long long)c->npool, 0, "bad names are not taken");
    ok(access("free/notanid", F_OK) == 0, "nor deleted");
    unlink("free/notanid");

    /* a full pool deletes what it cannot keep */
    put_free(g, name, 10);
    put_free(g, name2, 10);
    put_free(g, name3, 10);
    commit_recycle(c, name);
    commit_recycle(c, name2);
    commit_recycle(c, name3);
    is_int((long long)c->npool, 2, "the pool holds two");
    is_int((long long)c->st.pool_dropped, 1, "one dropped");
    ok(access("free/", F_OK) == 0 && count("free") == 2, "the dropped file is deleted");

    /* a name that vanished: the next one, then a new file */
    {
        char path[64];
        snprintf(path, sizeof(path), "free/%s", name2);
        unlink(path);
        snprintf(path, sizeof(path), "free/%s", name);
        unlink(path);
    }
    created = c->st.created;
    m = make(g, "x", 1);
    strcpy(id, m->id);
    commit_submit(c, m, on_done, c);
    commit_run(c);
    is_int((long long)c->npool, 0, "both vanished names were tried");
    is_int((long long)(c->st.created - created), 1, "then a new file was created");
    ok(check_file(id, 16 + 1), "and committed");

    /* a spilled message into a recycled file, shorter than the old one */
    ino = put_free(g, name, 3 * COMMIT_SPILL);
    commit_recycle(c, name);
    {
        size_t big = COMMIT_SPILL + 100;
        char *body = malloc(big);
        memset(body, 'y', big);
        m = make(g, body, COMMIT_SPILL);
        strcpy(id, m->id);
        want = m->head.len + big;
        is_int(qmsg_spill(c, m), 0, "spill into a recycled file");
        buf_add(&m->body, body + COMMIT_SPILL, 100);
        m->body_len += 100;
        commit_submit(c, m, on_done, c);
        commit_run(c);
        is_int((long long)file_size("queue", id, &got), (long long)want,
               "spilled: cut to its length");
        ok(got == ino, "spilled: same inode");
        is_int(has_byte("queue", id, 'Z'), 0, "spilled: nothing old left");
        ok(check_file(id, 16 + big), "spilled: parses with the right size");
        free(body);
    }

    /* turning recycling off empties the pool */
    put_free(g, name, 10);
    commit_recycle(c, name);
    commit_set_pool_max(c, 0);
    is_int((long long)c->npool, 0, "pool emptied");
    is_int(count("free"), 0, "and its files deleted");
    put_free(g, name, 10);
    commit_recycle(c, name);
    is_int(count("free"), 0, "with recycling off an announced file is deleted");
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
    mkdir("free", 0700);
    close(open("incoming/STALE", O_CREAT | O_WRONLY, 0600));
    close(open("free/0660C61B0AE55A0000", O_CREAT | O_WRONLY, 0600));
    is_int(commit_init(&c, base, &err), 0, "commit_init");
    is_int(count("incoming"), 0, "stale incoming file removed at start");
    is_int(count("free"), 0, "old free/ file removed at start, not reused");
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

    test_recycling(&c, &g);

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
