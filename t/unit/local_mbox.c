/*
 * local_mbox - unit tests of local's mbox writer (local/mbox.c) and of
 * the alias expansion (local/expand.c): the From_ line (null sender,
 * asctime date), CR LF to LF, ">From " quoting of every line that starts
 * with "From " (and nothing else), the final newline and empty line; the
 * dotlock and fcntl lock (a second locker waits and then gives up with
 * EAGAIN; a stale dotlock is taken over), the append cut back on a failed
 * write; the expansion: mailbox, self reference, remote addresses,
 * files and commands with their source, :include:, duplicates, loops,
 * depth, postmaster, lookup failures.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <utime.h>
#include <unistd.h>

#include "base/util.h"
#include "../../local/expand.h"
#include "../../local/mbox.h"
#include "tap.h"

static void test_format(void)
{
    struct buf b;

    buf_init(&b);
    mbox_from_line(&b, "user@example.org", 1709632800); /* 2024-03-05 10:00:00 UTC */
    is_str(b.data, "From user@example.org Tue Mar  5 10:00:00 2024\n", "From_ line, asctime date");
    buf_reset(&b);
    mbox_from_line(&b, "", 1709632800);
    is_str(b.data, "From MAILER-DAEMON Tue Mar  5 10:00:00 2024\n", "null sender");
    buf_reset(&b);
    const char msg[] = "Subject: x\r\n\r\nFrom here\r\n>From there\r\nFromage\r\n From x\r\nend";
    mbox_body(&b, msg, sizeof(msg) - 1);
    is_str(b.data, "Subject: x\n\n>From here\n>From there\nFromage\n From x\nend\n\n",
           "CR LF to LF, From quoted, others not, final newline and empty line");
    buf_reset(&b);
    mbox_body(&b, "a\n", 2);
    is_str(b.data, "a\n\n", "LF input too");
    buf_free(&b);
}

static void test_lock(void)
{
    char dir[] = "/tmp/local_mbox.XXXXXX";
    char path[128], lock[140], *err = NULL;
    struct mbox_lock l, l2;
    struct stat st;
    pid_t pid;
    int p[2], st2 = 0;

    if (mkdtemp(dir) == NULL || pipe(p) != 0) {
        ok(0, "setup");
        return;
    }
    snprintf(path, sizeof(path), "%s/user", dir);
    snprintf(lock, sizeof(lock), "%s/user.lock", dir);
    is_int(mbox_lock(&l, path, 2, (uid_t)-1, (gid_t)-1, 0600, &err), 0, "first lock");
    ok(stat(lock, &st) == 0, "the dotlock exists");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the mailbox made, mode 0600");
    pid = fork();
    if (pid == 0) {
        char *e = NULL;
        int r = mbox_lock(&l2, path, 1, (uid_t)-1, (gid_t)-1, 0600, &e);
        char c = r == 0 ? 'L' : errno == EAGAIN ? 'A' : 'E';
        if (write(p[1], &c, 1) != 1)
            _exit(1);
        _exit(0);
    }
    char c = 0;
    if (read(p[0], &c, 1) != 1)
        c = '?';
    waitpid(pid, &st2, 0);
    is_int(c, 'A', "a second locker gives up with EAGAIN while it is held");
    is_int(mbox_append(l.fd, path, "From a b\n\n", 10, &err), 0, "append");
    mbox_unlock(&l);
    ok(stat(lock, &st) != 0, "the dotlock is gone after unlock");
    ok(stat(path, &st) == 0 && st.st_size == 10, "the message is there");

    /* a stale dotlock (older than MBOX_STALE_S) is taken over */
    int fd = open(lock, O_CREAT | O_WRONLY, 0644);
    close(fd);
    struct utimbuf old = {time(NULL) - MBOX_STALE_S - 10, time(NULL) - MBOX_STALE_S - 10};
    utime(lock, &old);
    is_int(mbox_lock(&l, path, 3, (uid_t)-1, (gid_t)-1, 0600, &err), 0,
           "a stale dotlock is taken over");
    mbox_unlock(&l);

    /* a failed write leaves the mailbox as it was */
    is_int(mbox_lock(&l, path, 2, (uid_t)-1, (gid_t)-1, 0600, &err), 0, "lock again");
    int rdonly = open(path, O_RDONLY);
    ok(mbox_append(rdonly, path, "xxxx", 4, &err) < 0, "a write that fails is an error");
    ok(err && strstr(err, "cannot write"), "saying so: %s", err ? err : "");
    free(err);
    err = NULL;
    close(rdonly);
    mbox_unlock(&l);
    ok(stat(path, &st) == 0 && st.st_size == 10, "the mailbox is unchanged");

    /* a symlink is refused */
    char link[140];
    snprintf(link, sizeof(link), "%s/victim", dir);
    if (symlink(path, link) == 0) {
        ok(mbox_lock(&l, link, 1, (uid_t)-1, (gid_t)-1, 0600, &err) < 0,
           "a symlinked mailbox is refused");
        free(err);
        err = NULL;
    }
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    if (system(path) != 0)
        diag("cannot remove %s", dir);
    close(p[0]);
    close(p[1]);
}

/* ---- expansion over a table ---- */

static const char *const table[][2] = {
    {"root", "admin@example.org\n\\root"},
    {"admin", "ops@remote.test"},
    {"team", "root\nbob\nteam\n/var/log/team\n|/bin/prog"},
    {"a", "b"},
    {"b", "c@host.test\na"},
    {"c", "alice"},
    {"inc", ":include:/lists/inc"},
    {"deep0", "deep1"},
    {"broken", ":include:/missing"},
    {"dup", "alice\nALICE@host.test\nalice"},
};

static int t_alias(void *arg, const char *name, char ***targets, char **err)
{
    if (strcmp(name, "failing") == 0) {
        *err = xstrdup("db error");
        return -1;
    }
    if (strncmp(name, "deep", 4) == 0 && strcmp(name, "deep30") != 0) {
        char t[32];
        snprintf(t, sizeof(t), "deep%d", atoi(name + 4) + 1);
        *targets = aliases_split(t, strlen(t));
        return 1;
    }
    for (size_t i = 0; i < nitems(table); i++)
        if (strcmp(table[i][0], name) == 0) {
            *targets = aliases_split(table[i][1], strlen(table[i][1]));
            return 1;
        }
    return 0;
}

static char **t_include(void *arg, const char *path, long *owner, char **err)
{
    if (strcmp(path, "/lists/inc") == 0) {
        *owner = 1000;
        return aliases_parse_list("carol, /tmp/inc-file\n", 21, path, err);
    }
    *err = xstrdup("No such file or directory");
    return NULL;
}

static int t_local(void *arg, const char *domain)
{
    return strcmp(domain, "host.test") == 0;
}

static const struct lx_source src = {t_alias, t_include, t_local, 0, NULL};

static const char *expand(const char *addr)
{
    static char out[1024];
    struct lx_result r;
    size_t n = 0;

    out[0] = '\0';
    if (lx_expand(&src, addr, &r) < 0) {
        snprintf(out, sizeof(out), "%s: %s", r.temporary ? "temp" : "perm", r.error);
        lx_free(&r);
        return out;
    }
    for (size_t i = 0; i < r.n; i++) {
        static const char *const k[] = {"addr", "mailbox", "file", "pipe", "include"};
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s:%s%s", i ? " " : "", k[r.t[i].kind],
                              r.t[i].text, r.t[i].ctx == LX_CTX_INCLUDE ? "(include)" : "");
    }
    lx_free(&r);
    return out;
}

static void test_expand(void)
{
    is_str(expand("alice@host.test"), "mailbox:alice", "no alias: the mailbox");
    is_str(expand("Alice@host.test"), "mailbox:alice", "case folded");
    is_str(expand("root@host.test"), "addr:admin@example.org mailbox:root",
           "root: a remote address and \\root");
    is_str(expand("team@host.test"),
           "addr:admin@example.org mailbox:root mailbox:bob mailbox:team file:/var/log/team "
           "pipe:/bin/prog",
           "nested alias, self reference, a file and a command");
    is_str(expand("a@host.test"), "perm: alias loop: a -> b -> a", "a loop is an error");
    is_str(expand("inc@host.test"), "mailbox:carol file:/tmp/inc-file(include)",
           ":include: expanded, its file marked as from the include");
    is_str(expand("broken@host.test"),
           "temp: alias broken: :include:/missing: No such file or directory",
           "an unreadable :include: is temporary");
    is_str(expand("deep0@host.test"), "perm: alias expansion deeper than 20 levels",
           "depth bounded");
    is_str(expand("failing@host.test"), "temp: aliases: db error", "a lookup error is temporary");
    is_str(expand("postmaster@host.test"), "addr:admin@example.org mailbox:root",
           "postmaster without an alias is root");
    is_str(expand("dup@host.test"), "mailbox:alice", "duplicates dropped");
}

int main(void)
{
    plan_lazy();
    test_format();
    test_lock();
    test_expand();
    return done_testing();
}
