/*
 * map - text maps compiled to Berkeley DB hash files (see map.h).
 */
#include "base/map.h"

#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdint.h>
#include <unistd.h>

#include "base/util.h"

struct map {
    DB *db;
    char *path;
};

static int is_blank(int c)
{
    return c == ' ' || c == '\t';
}

static char *trim(char *s)
{
    size_t n;

    while (is_blank((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && (is_blank((unsigned char)s[n - 1]) || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* fsync a directory given a path inside it. */
static int sync_parent(const char *path)
{
    char *copy = xstrdup(path);
    int fd, rc = -1;

    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    free(copy);
    return rc;
}

struct pending {
    char *key;
    struct buf val;
    size_t line;
};

struct checker {
    map_check_fn fn;
    void *arg;
};

static int put_entry(DB *db, const char *path, struct pending *e, const struct checker *ck,
                     char **err)
{
    DBT k, v;
    int r;

    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    if (e->val.len == 0) {
        *err = xasprintf("%s:%zu: key \"%s\" has no value", path, e->line, e->key);
        return -1;
    }
    ascii_lower(e->key);
    if (ck && ck->fn) {
        char *why = NULL;
        if (ck->fn(e->key, e->val.data, ck->arg, &why) < 0) {
            *err = xasprintf("%s:%zu: %s: %s", path, e->line, e->key, why ? why : "refused");
            free(why);
            return -1;
        }
    }
    k.data = e->key;
    k.size = (u_int32_t)strlen(e->key);
    v.data = e->val.data;
    v.size = (u_int32_t)e->val.len;
    r = db->put(db, NULL, &k, &v, DB_NOOVERWRITE);
    if (r == DB_KEYEXIST) {
        *err = xasprintf("%s:%zu: duplicate key \"%s\"", path, e->line, e->key);
        return -1;
    }
    if (r != 0) {
        *err = xasprintf("%s: db put: %s", path, db_strerror(r));
        return -1;
    }
    return 0;
}

static int compile_lines(FILE *f, DB *db, const char *path, const struct checker *ck, char **err)
{
    struct pending e = {NULL, {NULL, 0, 0}, 0};
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = -1;

    buf_init(&e.val);
    while ((n = getline(&line, &cap, f)) >= 0) {
        char *s;
        lineno++;
        if ((size_t)n > MAP_LINE_MAX) {
            *err = xasprintf("%s:%zu: line too long", path, lineno);
            goto out;
        }
        if (memchr(line, '\0', (size_t)n) != NULL) {
            *err = xasprintf("%s:%zu: NUL byte", path, lineno);
            goto out;
        }
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        if (is_blank((unsigned char)line[0])) {
            if (e.key == NULL) {
                *err =
                    xasprintf("%s:%zu: continuation line with nothing to continue", path, lineno);
                goto out;
            }
            if (e.val.len)
                buf_addc(&e.val, ' ');
            buf_adds(&e.val, s);
            continue;
        }
        if (e.key && put_entry(db, path, &e, ck, err) != 0)
            goto out;
        free(e.key);
        buf_reset(&e.val);
        {
            size_t klen = strcspn(s, " \t");
            e.key = xstrndup(s, klen);
            e.line = lineno;
            buf_adds(&e.val, trim(s + klen));
        }
    }
    if (ferror(f)) {
        *err = xasprintf("%s: read: %s", path, strerror(errno));
        goto out;
    }
    if (e.key && put_entry(db, path, &e, ck, err) != 0)
        goto out;
    rc = 0;
out:
    free(e.key);
    buf_free(&e.val);
    free(line);
    return rc;
}

int map_compile(const char *path, unsigned flags, char **err)
{
    return map_compile_checked(path, flags, NULL, NULL, err);
}

int map_check(const char *path, map_check_fn fn, void *arg, char **err)
{
    struct checker ck = {fn, arg};
    FILE *f;
    DB *db = NULL;
    int r, rc = -1;

    *err = NULL;
    f = fopen(path, "re");
    if (f == NULL) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        return -1;
    }
    /* An in-memory database finds duplicate keys exactly as compiling does. */
    if ((r = db_create(&db, NULL, 0)) != 0 ||
        (r = db->open(db, NULL, NULL, NULL, DB_HASH, DB_CREATE, 0600)) != 0) {
        *err = xasprintf("%s: in-memory db: %s", path, db_strerror(r));
        goto out;
    }
    rc = compile_lines(f, db, path, &ck, err);
out:
    if (db)
        db->close(db, 0);
    fclose(f);
    return rc;
}

struct map_writer {
    DB *db;
    char *dbpath, *tmp;
    int mode;
};

struct map_writer *map_create(const char *path, unsigned flags, char **err)
{
    struct map_writer *w = xcalloc(1, sizeof(*w));
    int r;

    *err = NULL;
    w->dbpath = xasprintf("%s.db", path);
    w->tmp = xasprintf("%s.db.%ld.tmp", path, (long)getpid());
    w->mode = (flags & MAP_SECRET) ? 0600 : 0644;
    unlink(w->tmp);
    if ((r = db_create(&w->db, NULL, 0)) != 0) {
        *err = xasprintf("%s: db_create: %s", path, db_strerror(r));
        w->db = NULL;
        map_abort(w);
        return NULL;
    }
    if ((r = w->db->open(w->db, NULL, w->tmp, NULL, DB_HASH, DB_CREATE | DB_EXCL, w->mode)) != 0) {
        *err = xasprintf("%s: %s", w->tmp, db_strerror(r));
        map_abort(w);
        return NULL;
    }
    return w;
}

int map_put(struct map_writer *w, const char *key, const void *val, size_t len, char **err)
{
    DBT k, v;
    int r;

    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *)(uintptr_t)key;
    k.size = (u_int32_t)strlen(key);
    v.data = (void *)(uintptr_t)val;
    v.size = (u_int32_t)len;
    r = w->db->put(w->db, NULL, &k, &v, DB_NOOVERWRITE);
    if (r == DB_KEYEXIST)
        return 1;
    if (r != 0) {
        *err = xasprintf("%s: db put: %s", w->tmp, db_strerror(r));
        return -1;
    }
    return 0;
}

void map_abort(struct map_writer *w)
{
    if (w == NULL)
        return;
    if (w->db)
        w->db->close(w->db, 0);
    unlink(w->tmp);
    free(w->dbpath);
    free(w->tmp);
    free(w);
}

int map_commit(struct map_writer *w, char **err)
{
    int r, fd;

    r = w->db->close(w->db, 0);
    w->db = NULL;
    if (r != 0) {
        *err = xasprintf("%s: db close: %s", w->tmp, db_strerror(r));
        map_abort(w);
        return -1;
    }
    /* BDB honours the umask: set the mode explicitly, then make it durable. */
    fd = open(w->tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, (mode_t)w->mode) != 0 || fsync(fd) != 0) {
        *err = xasprintf("%s: %s", w->tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        map_abort(w);
        return -1;
    }
    close(fd);
    if (rename(w->tmp, w->dbpath) != 0) {
        *err = xasprintf("rename %s to %s: %s", w->tmp, w->dbpath, strerror(errno));
        map_abort(w);
        return -1;
    }
    sync_parent(w->dbpath);
    free(w->dbpath);
    free(w->tmp);
    free(w);
    return 0;
}

int map_compile_checked(const char *path, unsigned flags, map_check_fn fn, void *arg, char **err)
{
    struct checker ck = {fn, arg};
    struct map_writer *w = NULL;
    struct stat st;
    FILE *f = NULL;
    int rc = -1;

    *err = NULL;
    f = fopen(path, "re");
    if (f == NULL) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fileno(f), &st) != 0) {
        *err = xasprintf("%s: fstat: %s", path, strerror(errno));
        goto out;
    }
    if ((flags & MAP_SECRET) && (st.st_mode & 077)) {
        *err = xasprintf("%s: holds secrets but is accessible by group or others (mode %04o); "
                         "chmod 600 it",
                         path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if ((w = map_create(path, flags, err)) == NULL)
        goto out;
    if (compile_lines(f, w->db, path, &ck, err) != 0) {
        map_abort(w);
        goto out;
    }
    rc = map_commit(w, err);
out:
    if (f)
        fclose(f);
    return rc;
}

/* BDB's own messages would go to stderr, the daemons' log, once per page
 * of a corrupt file; the error that matters is returned and logged once. */
static void quiet_errcall(const DB_ENV *env, const char *prefix, const char *msg) {}

struct map *map_open(const char *path, unsigned flags, char **err)
{
    char *dbpath = xasprintf("%s.db", path);
    struct map *m = NULL;
    struct stat st;
    DB *db = NULL;
    int r;

    *err = NULL;
    if (stat(dbpath, &st) != 0) {
        *err = xasprintf("%s: %s (run smtpctl makemap %s)", dbpath, strerror(errno), path);
        goto out;
    }
    if ((flags & MAP_SECRET) && (st.st_mode & 077)) {
        *err = xasprintf("%s: holds secrets but is accessible by group or others", dbpath);
        goto out;
    }
    if ((r = db_create(&db, NULL, 0)) != 0) {
        *err = xasprintf("%s: db_create: %s", dbpath, db_strerror(r));
        goto out;
    }
    db->set_errcall(db, quiet_errcall);
    if ((r = db->open(db, NULL, dbpath, NULL, DB_HASH, DB_RDONLY, 0)) != 0) {
        *err = xasprintf("%s: %s", dbpath, db_strerror(r));
        db->close(db, 0);
        goto out;
    }
    m = xcalloc(1, sizeof(*m));
    m->db = db;
    m->path = dbpath;
    dbpath = NULL;
out:
    free(dbpath);
    return m;
}

int map_get(struct map *m, const char *key, char **val, char **err)
{
    char *k = xstrdup(key);
    DBT dk, dv;
    int r;

    ascii_lower(k);
    memset(&dk, 0, sizeof(dk));
    memset(&dv, 0, sizeof(dv));
    dk.data = k;
    dk.size = (u_int32_t)strlen(k);
    r = m->db->get(m->db, NULL, &dk, &dv, 0);
    free(k);
    if (r == DB_NOTFOUND)
        return 0;
    if (r != 0) {
        *err = xasprintf("%s: lookup: %s", m->path, db_strerror(r));
        return -1;
    }
    *val = xstrndup(dv.data, dv.size);
    return 1;
}

int map_each(struct map *m, int (*fn)(const char *key, const char *val, void *arg), void *arg,
             char **err)
{
    DBC *cur = NULL;
    DBT dk, dv;
    int r;

    *err = NULL;
    if ((r = m->db->cursor(m->db, NULL, &cur, 0)) != 0) {
        *err = xasprintf("%s: cursor: %s", m->path, db_strerror(r));
        return -1;
    }
    memset(&dk, 0, sizeof(dk));
    memset(&dv, 0, sizeof(dv));
    while ((r = cur->get(cur, &dk, &dv, DB_NEXT)) == 0) {
        char *k = xstrndup(dk.data, dk.size);
        char *v = xstrndup(dv.data, dv.size);
        int stop = fn(k, v, arg);
        free(k);
        explicit_bzero(v, dv.size); /* the value may be a password */
        free(v);
        if (stop)
            break;
    }
    cur->close(cur);
    if (r != 0 && r != DB_NOTFOUND) {
        *err = xasprintf("%s: reading: %s", m->path, db_strerror(r));
        return -1;
    }
    return 0;
}

static int count_one(const char *key, const char *val, void *arg)
{
    (*(size_t *)arg)++;
    return 0;
}

int map_verify(const char *path, unsigned flags, char **err)
{
    struct map *m = map_open(path, flags, err);
    size_t n = 0;
    int rc;

    if (m == NULL)
        return -1;
    rc = map_each(m, count_one, &n, err);
    map_close(m);
    return rc;
}

void map_close(struct map *m)
{
    if (m == NULL)
        return;
    m->db->close(m->db, 0);
    free(m->path);
    free(m);
}

int map_stale(const char *path)
{
    char *dbpath = xasprintf("%s.db", path);
    struct stat s1, s2;
    int stale;

    if (stat(path, &s1) != 0) {
        free(dbpath);
        return 0; /* no source: nothing to rebuild from */
    }
    stale = stat(dbpath, &s2) != 0 || s1.st_mtim.tv_sec > s2.st_mtim.tv_sec ||
            (s1.st_mtim.tv_sec == s2.st_mtim.tv_sec && s1.st_mtim.tv_nsec > s2.st_mtim.tv_nsec);
    free(dbpath);
    return stale;
}
