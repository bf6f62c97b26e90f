/*
 * qstate - Berkeley DB environment for qmgr's state; see qstate.h.
 */
#include "qstate.h"

#include <db.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define KEY_MAX 600

#define QSTATE_LOG_BUFFER (1024 * 1024)
#define QSTATE_LOG_FILE (4 * QSTATE_LOG_BUFFER)

struct qstate {
    DB_ENV *env;
    DB *msgs, *hosts;
    DB_TXN *txn;
    char *home;
};

static void errcall(const DB_ENV *env, const char *pfx, const char *msg)
{
    log_warn("db: %s", msg);
}

static void close_all(struct qstate *qs)
{
    if (qs->txn)
        qs->txn->abort(qs->txn);
    qs->txn = NULL;
    if (qs->msgs)
        qs->msgs->close(qs->msgs, 0);
    if (qs->hosts)
        qs->hosts->close(qs->hosts, 0);
    qs->msgs = qs->hosts = NULL;
    if (qs->env)
        qs->env->close(qs->env, 0);
    qs->env = NULL;
}

static int open_db(struct qstate *qs, DB **dbp, const char *file, char **err)
{
    DB *db;
    int rc = db_create(&db, qs->env, 0);

    if (rc != 0) {
        *err = xasprintf("db_create %s: %s", file, db_strerror(rc));
        return -1;
    }
    rc = db->open(db, NULL, file, NULL, DB_BTREE, DB_CREATE | DB_AUTO_COMMIT, 0600);
    if (rc != 0) {
        *err = xasprintf("open %s/%s: %s", qs->home, file, db_strerror(rc));
        db->close(db, 0);
        return -1;
    }
    *dbp = db;
    return 0;
}

static int try_open(struct qstate *qs, char **err)
{
    int rc = db_env_create(&qs->env, 0);

    if (rc != 0) {
        *err = xasprintf("db_env_create: %s", db_strerror(rc));
        qs->env = NULL;
        return -1;
    }
    qs->env->set_errcall(qs->env, errcall);
    qs->env->set_cachesize(qs->env, 0, 16 * 1024 * 1024, 1);
    qs->env->set_lk_max_locks(qs->env, 50000);
    qs->env->set_lk_max_objects(qs->env, 50000);
    qs->env->set_lg_bsize(qs->env, QSTATE_LOG_BUFFER);
    /* Log files of 4 MiB (BDB's smallest for a 1 MiB buffer; its default
     * is 10 MiB), removed once a checkpoint no longer needs them: db/
     * holds two or three of them at most (docs/qmgr.md: disk space). */
    qs->env->set_lg_max(qs->env, QSTATE_LOG_FILE);
    qs->env->set_flags(qs->env, DB_TXN_WRITE_NOSYNC, 1);
    qs->env->log_set_config(qs->env, DB_LOG_AUTO_REMOVE, 1);
    rc = qs->env->open(qs->env, qs->home,
                       DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL |
                           DB_RECOVER | DB_PRIVATE,
                       0600);
    if (rc != 0) {
        *err = xasprintf("open environment %s: %s", qs->home, db_strerror(rc));
        close_all(qs);
        return -1;
    }
    if (open_db(qs, &qs->msgs, "msgs.db", err) != 0 ||
        open_db(qs, &qs->hosts, "hosts.db", err) != 0) {
        close_all(qs);
        return -1;
    }
    return 0;
}

/* Remove the environment's files (not subdirectories) so it can start anew. */
static void wipe(const char *home)
{
    DIR *d = opendir(home);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char *p;
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        p = xasprintf("%s/%s", home, e->d_name);
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && unlink(p) != 0)
            log_err("db: cannot remove %s: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
}

struct qstate *qstate_open(const char *home, char **err)
{
    struct qstate *qs = xcalloc(1, sizeof(*qs));
    char *e1 = NULL;

    qs->home = xstrdup(home);
    if (mkdir(home, 0700) != 0 && errno != EEXIST) {
        *err = xasprintf("mkdir %s: %s", home, strerror(errno));
        free(qs->home);
        free(qs);
        return NULL;
    }
    if (try_open(qs, &e1) == 0)
        return qs;
    log_err("db: %s; the state database is started anew (attempt counts and retry times are "
            "lost, queued mail is not)",
            e1);
    free(e1);
    wipe(home);
    if (try_open(qs, err) == 0)
        return qs;
    free(qs->home);
    free(qs);
    return NULL;
}

void qstate_close(struct qstate *qs)
{
    if (qs == NULL)
        return;
    if (qs->env) {
        qs->env->log_flush(qs->env, NULL);
        qs->env->txn_checkpoint(qs->env, 0, 0, 0);
    }
    close_all(qs);
    free(qs->home);
    free(qs);
}

int qstate_begin(struct qstate *qs, char **err)
{
    int rc;

    if (qs->txn)
        return 0;
    rc = qs->env->txn_begin(qs->env, NULL, &qs->txn, 0);
    if (rc != 0) {
        qs->txn = NULL;
        *err = xasprintf("txn_begin: %s", db_strerror(rc));
        return -1;
    }
    return 0;
}

static void mkkey(DBT *k, const char *key)
{
    memset(k, 0, sizeof(*k));
    k->data = (void *)(uintptr_t)key;
    k->size = (u_int32_t)strlen(key);
}

int qstate_put(struct qstate *qs, int hosts, const char *key, const void *val, size_t len,
               char **err)
{
    DBT k, v;
    DB *db = hosts ? qs->hosts : qs->msgs;
    int rc;

    mkkey(&k, key);
    memset(&v, 0, sizeof(v));
    v.data = (void *)(uintptr_t)val;
    v.size = (u_int32_t)len;
    rc = db->put(db, qs->txn, &k, &v, 0);
    if (rc != 0) {
        *err = xasprintf("put %s: %s", key, db_strerror(rc));
        return -1;
    }
    return 0;
}

int qstate_get(struct qstate *qs, int hosts, const char *key, void **val, size_t *len, char **err)
{
    DBT k, v;
    DB *db = hosts ? qs->hosts : qs->msgs;
    int rc;

    mkkey(&k, key);
    memset(&v, 0, sizeof(v));
    v.flags = DB_DBT_MALLOC;
    rc = db->get(db, qs->txn, &k, &v, 0);
    if (rc == DB_NOTFOUND)
        return 0;
    if (rc != 0) {
        *err = xasprintf("get %s: %s", key, db_strerror(rc));
        return -1;
    }
    *val = v.data;
    *len = v.size;
    return 1;
}

int qstate_del(struct qstate *qs, int hosts, const char *key, char **err)
{
    DBT k;
    DB *db = hosts ? qs->hosts : qs->msgs;
    int rc;

    mkkey(&k, key);
    rc = db->del(db, qs->txn, &k, 0);
    if (rc != 0 && rc != DB_NOTFOUND) {
        *err = xasprintf("del %s: %s", key, db_strerror(rc));
        return -1;
    }
    return 0;
}

int qstate_commit(struct qstate *qs, char **err)
{
    int rc;

    if (qs->txn == NULL)
        return 0;
    rc = qs->txn->commit(qs->txn, 0);
    qs->txn = NULL;
    if (rc != 0) {
        *err = xasprintf("commit: %s", db_strerror(rc));
        return -1;
    }
    return 0;
}

void qstate_abort(struct qstate *qs)
{
    if (qs->txn)
        qs->txn->abort(qs->txn);
    qs->txn = NULL;
}

long qstate_walk(struct qstate *qs, int hosts, qstate_fn fn, void *arg, char **err)
{
    DB *db = hosts ? qs->hosts : qs->msgs;
    DBC *c;
    DBT k, v;
    long n = 0;
    int rc;
    char key[KEY_MAX + 1];

    rc = db->cursor(db, NULL, &c, 0);
    if (rc != 0) {
        *err = xasprintf("cursor: %s", db_strerror(rc));
        return -1;
    }
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    while ((rc = c->get(c, &k, &v, DB_NEXT)) == 0) {
        n++;
        if (k.size == 0 || k.size > KEY_MAX || memchr(k.data, '\0', k.size))
            continue;
        memcpy(key, k.data, k.size);
        key[k.size] = '\0';
        fn(key, v.data, v.size, arg);
    }
    c->close(c);
    if (rc != DB_NOTFOUND) {
        *err = xasprintf("cursor get: %s", db_strerror(rc));
        return -1;
    }
    return n;
}

int qstate_sync(struct qstate *qs)
{
    return qs->env->log_flush(qs->env, NULL) == 0 ? 0 : -1;
}

int qstate_checkpoint(struct qstate *qs)
{
    return qs->env->txn_checkpoint(qs->env, 0, 0, 0) == 0 ? 0 : -1;
}
