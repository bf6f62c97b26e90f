/*
 * mail_secrets - unit tests of the gateway credentials table
 * (common/mail/secrets.c) and of map_each underneath it: loading a
 * compiled secrets map (user and password split at the first blank,
 * passwords with blanks kept, entries without a password skipped), case-
 * insensitive lookup, no map or an empty path giving an empty table, a
 * corrupt or too-open .db refused, and the IMSG_SECRETS and
 * IMSG_GATEWAY_AUTH bodies: round trip, and every truncation refused.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/ipc.h"
#include "base/map.h"
#include "base/util.h"
#include "mail/secrets.h"
#include "tap.h"

static char dir[] = "/tmp/secrets-test-XXXXXX";

static char *compile(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name), *err = NULL;
    FILE *f = fopen(path, "w");

    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
    if (map_compile(path, MAP_SECRET, &err) < 0) {
        diag("map_compile: %s", err);
        free(err);
    }
    return path;
}

static int count_entry(const char *k, const char *v, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static void test_load(void)
{
    char *path = compile("secrets", "# gateway user password\n"
                                    "GW1   alice  s3cret\n"
                                    "gw2   bob    pass with blanks\n"
                                    "gw3   nopassword\n");
    struct secrets *s = NULL;
    const char *u = NULL, *p = NULL;
    char *err = NULL;

    ok(secrets_load(path, &s, &err) == 0, "a compiled secrets map loads");
    is_int(secrets_count(s), 2, "two usable entries (the one without a password is skipped)");
    ok(secrets_get(s, "gw1", &u, &p) && strcmp(u, "alice") == 0 && strcmp(p, "s3cret") == 0,
       "gw1: user and password split at the first blank");
    ok(secrets_get(s, "Gw2", &u, &p) && strcmp(p, "pass with blanks") == 0,
       "lookup ignores case; a password keeps its blanks");
    ok(!secrets_get(s, "gw3", &u, &p), "no entry for a gateway without a password");
    ok(!secrets_get(s, "other", &u, &p), "no entry for an unknown gateway");

    /* map_each sees every entry, including the one secrets skips */
    struct map *m = map_open(path, MAP_SECRET, &err);
    int n = 0;
    ok(m && map_each(m, count_entry, &n, &err) == 0 && n == 3, "map_each visits all 3 entries");
    map_close(m);

    /* round trip over IPC */
    struct ipc_w w;
    ipc_w_init(&w);
    secrets_encode(&w, s);
    struct secrets *d = secrets_decode(w.p, w.len);
    ok(d && secrets_count(d) == 2, "IMSG_SECRETS body decodes");
    ok(d && secrets_get(d, "GW2", &u, &p) && strcmp(u, "bob") == 0 &&
           strcmp(p, "pass with blanks") == 0,
       "with the same credentials");
    size_t bad = 0;
    for (size_t k = 0; k < w.len; k++) {
        struct secrets *t = secrets_decode(w.p, k);
        if (t) {
            bad++;
            secrets_free(t);
        }
    }
    is_int(bad, 0, "every truncation of the body is refused");
    uint32_t huge = 0xffffffffu;
    ok(secrets_decode(&huge, sizeof(huge)) == NULL, "an absurd count is refused");
    secrets_free(d);
    ipc_w_free(&w);

    ipc_w_init(&w);
    secrets_encode_names(&w, s);
    ok(memmem(w.p, w.len, "s3cret", 6) == NULL && memmem(w.p, w.len, "alice", 5) == NULL,
       "IMSG_GATEWAY_AUTH carries neither users nor passwords");
    char **names = secrets_decode_names(w.p, w.len);
    ok(names && names[0] && names[1] && !names[2], "it lists the two gateway names");
    if (names) {
        ok((strcmp(names[0], "gw1") == 0 && strcmp(names[1], "gw2") == 0) ||
               (strcmp(names[0], "gw2") == 0 && strcmp(names[1], "gw1") == 0),
           "gw1 and gw2");
        for (char **x = names; *x; x++)
            free(*x);
        free(names);
    }
    ok(secrets_decode_names(w.p, w.len - 1) == NULL, "a truncated name list is refused");
    ipc_w_free(&w);
    secrets_free(s);
    free(path);
}

static void test_errors(void)
{
    struct secrets *s = NULL, *keep = (struct secrets *)&s;
    char *err = NULL;
    char *none = xasprintf("%s/never-compiled", dir);

    ok(secrets_load("", &s, &err) == 0 && secrets_count(s) == 0, "no map configured: empty");
    secrets_free(s);
    s = NULL;
    ok(secrets_load(none, &s, &err) == 0 && secrets_count(s) == 0, "map not compiled: empty");
    secrets_free(s);
    free(none);

    char *path = compile("corrupt", "gw u p\n");
    char *db = xasprintf("%s.db", path);
    int fd = open(db, O_WRONLY | O_TRUNC);
    char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 131 + 7);
    ok(fd >= 0 && write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk), "overwrote the .db");
    close(fd);
    s = keep;
    ok(secrets_load(path, &s, &err) < 0 && err != NULL, "a corrupt .db is an error: %s",
       err ? err : "");
    ok(s == keep, "and the caller's table is left alone");
    free(err);
    err = NULL;

    char *open_path = compile("open", "gw u p\n");
    char *odb = xasprintf("%s.db", open_path);
    chmod(odb, 0644);
    ok(secrets_load(open_path, &s, &err) < 0 && err && strstr(err, "group or others"),
       "a .db others may read is refused");
    free(err);
    free(path);
    free(db);
    free(open_path);
    free(odb);
}

int main(void)
{
    plan_lazy();
    if (mkdtemp(dir) == NULL)
        return 1;
    test_load();
    test_errors();
    char *cmd = xasprintf("rm -rf %s", dir);
    if (system(cmd) != 0)
        diag("cleanup failed");
    free(cmd);
    return done_testing();
}
