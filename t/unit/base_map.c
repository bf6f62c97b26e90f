/*
 * common_map - unit tests of text maps compiled to Berkeley DB
 * (common/base/map.c): parsing, lookups, errors with file:line, atomic
 * replacement, and MAP_SECRET's refusal of readable sources.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/map.h"
#include "tap.h"
#include "base/util.h"

static char dir[] = "/tmp/map-test-XXXXXX";

static char *write_map(const char *name, const char *text, mode_t mode)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

static char *get(struct map *m, const char *key)
{
    char *val = NULL, *err = NULL;
    int r = map_get(m, key, &val, &err);
    if (r < 0) {
        diag("map_get: %s", err);
        free(err);
    }
    return r == 1 ? val : NULL;
}

static void expect_error(const char *name, const char *text, const char *want)
{
    char *path = write_map("bad", text, 0644), *err = NULL;
    int r = map_compile(path, 0, &err);
    ok(r == -1 && err && strstr(err, want) != NULL, "%s: error mentions '%s'", name, want);
    if (err)
        diag("  -> %s", err);
    free(err);
    free(path);
}

int main(void)
{
    char *path, *err = NULL, *v;
    struct map *m;
    struct stat st;

    plan_lazy();
    if (mkdtemp(dir) == NULL)
        return 1;

    path = write_map("users",
                     "# AUTH users\n"
                     "alice  $6$salt$hash  \n"
                     "\n"
                     "   # indented comment\n"
                     "Bob\tvalue with  blanks\n"
                     "carol first\n"
                     "  second part\n",
                     0644);
    is_int(map_compile(path, 0, &err), 0, "compile");
    if (err)
        diag("%s", err);
    m = map_open(path, 0, &err);
    ok(m != NULL, "open");
    v = get(m, "alice");
    is_str(v, "$6$salt$hash", "value trimmed");
    free(v);
    v = get(m, "BOB");
    is_str(v, "value with  blanks", "case-insensitive key, inner blanks kept");
    free(v);
    v = get(m, "carol");
    is_str(v, "first second part", "continuation line joined");
    free(v);
    ok(get(m, "dave") == NULL, "missing key");
    ok(get(m, "#") == NULL, "comments are not keys");
    is_int(map_stale(path), 0, "not stale after compile");

    /* Replace the map: an open handle keeps the old, a new one sees the new. */
    free(write_map("users", "alice new\n", 0644));
    {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {time(NULL) + 5, 0}};
        utimensat(AT_FDCWD, path, ts, 0);
    }
    is_int(map_stale(path), 1, "stale after the source changed");
    is_int(map_compile(path, 0, &err), 0, "recompile");
    v = get(m, "alice");
    is_str(v, "$6$salt$hash", "old handle still reads the old map");
    free(v);
    map_close(m);
    m = map_open(path, 0, &err);
    v = get(m, "alice");
    is_str(v, "new", "new handle reads the new map");
    free(v);
    ok(get(m, "bob") == NULL, "old keys gone");
    map_close(m);
    {
        char *tmpglob = xasprintf("%s/users.db.%ld.tmp", dir, (long)getpid());
        ok(access(tmpglob, F_OK) != 0, "no temp file left");
        free(tmpglob);
    }

    expect_error("duplicate", "a 1\nb 2\nA 3\n", "bad:3: duplicate key \"a\"");
    expect_error("no value", "a 1\nlonely\n", "bad:2: key \"lonely\" has no value");
    expect_error("continuation first", "  x\n", "bad:1: continuation");
    {
        char *missing = xasprintf("%s/nothere", dir);
        ok(map_compile(missing, 0, &err) == -1 && strstr(err, "nothere"), "missing source");
        free(err);
        ok(map_open(missing, 0, &err) == NULL && strstr(err, "makemap"), "open without .db");
        free(err);
        free(missing);
    }
    {
        /* a failed compile leaves the previous .db in place */
        char *p2 = write_map("keep", "k v\n", 0644);
        is_int(map_compile(p2, 0, &err), 0, "compile keep");
        free(write_map("keep", "k v\nk w\n", 0644));
        ok(map_compile(p2, 0, &err) == -1, "broken source refused");
        free(err);
        m = map_open(p2, 0, &err);
        v = m ? get(m, "k") : NULL;
        is_str(v, "v", "previous .db still served");
        free(v);
        map_close(m);
        free(p2);
    }

    /* MAP_SECRET */
    free(path);
    path = write_map("secrets", "gw user:pass\n", 0644);
    ok(map_compile(path, MAP_SECRET, &err) == -1 && strstr(err, "chmod 600"),
       "secret map readable by others refused");
    free(err);
    chmod(path, 0640);
    ok(map_compile(path, MAP_SECRET, &err) == -1, "secret map readable by group refused");
    free(err);
    chmod(path, 0600);
    is_int(map_compile(path, MAP_SECRET, &err), 0, "secret map with mode 0600 compiles");
    {
        char *db = xasprintf("%s.db", path);
        ok(stat(db, &st) == 0 && (st.st_mode & 0777) == 0600, "secret .db is 0600");
        m = map_open(path, MAP_SECRET, &err);
        ok(m != NULL, "secret map opens");
        map_close(m);
        chmod(db, 0644);
        ok(map_open(path, MAP_SECRET, &err) == NULL, "readable secret .db refused");
        free(err);
        free(db);
    }
    free(path);

    {
        char *cmd = xasprintf("rm -rf %s", dir);
        if (system(cmd) != 0)
            diag("cleanup failed");
        free(cmd);
    }
    return done_testing();
}
