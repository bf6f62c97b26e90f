/*
 * sts_cache - the MTA-STS policy cache in memory and in sts.db (contract
 * in sts_cache.h). A plain BDB btree file, no environment: one writer
 * (dnsd), small records, each put synced; a crash loses at most the
 * record being written, and a file that does not read back is set aside.
 */
#include "sts_cache.h"

#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/ipc.h"
#include "base/log.h"
#include "base/util.h"

#define ENTRY_VERSION 1
#define CACHE_MAX 100000 /* entries kept at most (a bound on memory) */

struct sts_cache {
    DB *db; /* NULL: memory only */
    char *path;
    struct sts_entry **e; /* sorted by domain */
    size_t n, cap;
};

void sts_entry_encode(struct ipc_w *w, const struct sts_entry *e)
{
    ipc_w_u8(w, ENTRY_VERSION);
    ipc_w_str(w, e->id);
    ipc_w_u8(w, (uint8_t)e->pol.mode);
    ipc_w_u32(w, e->pol.max_age);
    ipc_w_i64(w, e->fetched_at);
    ipc_w_i64(w, e->expires_at);
    ipc_w_i64(w, e->last_try);
    ipc_w_str(w, e->last_error);
    ipc_w_u32(w, (uint32_t)e->pol.nmx);
    for (size_t i = 0; i < e->pol.nmx; i++)
        ipc_w_str(w, e->pol.mx[i]);
}

static int copy_str(char *dst, size_t size, const char *src)
{
    return strlcpy_p(dst, src, size) < size ? 0 : -1;
}

int sts_entry_decode(const void *p, size_t len, const char *domain, struct sts_entry *e)
{
    struct ipc_r r;
    uint32_t nmx;
    int bad = 0;

    memset(e, 0, sizeof(*e));
    ipc_r_init(&r, p, len);
    if (ipc_r_u8(&r) != ENTRY_VERSION)
        return -1;
    bad |= copy_str(e->domain, sizeof(e->domain), domain);
    bad |= copy_str(e->id, sizeof(e->id), ipc_r_str(&r));
    e->pol.mode = (enum dns_sts_mode)ipc_r_u8(&r);
    e->pol.max_age = ipc_r_u32(&r);
    e->fetched_at = ipc_r_i64(&r);
    e->expires_at = ipc_r_i64(&r);
    e->last_try = ipc_r_i64(&r);
    bad |= copy_str(e->last_error, sizeof(e->last_error), ipc_r_str(&r));
    nmx = ipc_r_u32(&r);
    if (bad || !ipc_r_ok(&r) || nmx > DNS_MAX_STS_MX || e->pol.mode > DNS_STS_MODE_ENFORCE ||
        e->pol.max_age > STS_MAX_AGE_MAX || e->id[0] == '\0')
        return -1;
    for (uint32_t i = 0; i < nmx; i++)
        if (copy_str(e->pol.mx[i], sizeof(e->pol.mx[i]), ipc_r_str(&r)) < 0 || !e->pol.mx[i][0])
            return -1;
    e->pol.nmx = nmx;
    return ipc_r_done(&r) ? 0 : -1;
}

/* Index of domain, or where it would go (*found 0). */
static size_t find(const struct sts_cache *c, const char *domain, int *found)
{
    size_t lo = 0, hi = c->n;

    *found = 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(c->e[mid]->domain, domain);
        if (cmp == 0) {
            *found = 1;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void mem_put(struct sts_cache *c, const struct sts_entry *e)
{
    int found;
    size_t i = find(c, e->domain, &found);

    if (found) {
        *c->e[i] = *e;
        return;
    }
    if (c->n >= CACHE_MAX)
        return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->e = xrealloc(c->e, c->cap * sizeof(*c->e));
    }
    memmove(c->e + i + 1, c->e + i, (c->n - i) * sizeof(*c->e));
    c->e[i] = xmalloc(sizeof(**c->e));
    *c->e[i] = *e;
    c->n++;
}

static void mem_clear(struct sts_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->e[i]);
    c->n = 0;
}

static void errcall(const DB_ENV *env, const char *pfx, const char *msg)
{
    log_warn("sts.db: %s", msg);
}

static DB *db_open_file(const char *path, char **err)
{
    DB *db;
    int rc = db_create(&db, NULL, 0);

    if (rc != 0) {
        *err = xasprintf("db_create: %s", db_strerror(rc));
        return NULL;
    }
    db->set_errcall(db, errcall);
    rc = db->open(db, NULL, path, NULL, DB_BTREE, DB_CREATE, 0600);
    if (rc != 0) {
        *err = xasprintf("%s", db_strerror(rc));
        db->close(db, 0);
        return NULL;
    }
    return db;
}

/* Read every record into memory: 0, or -1 and *err at the first that
 * does not read back (BDB error or a malformed value). */
static int load(struct sts_cache *c, char **err)
{
    DBC *cur;
    DBT k, v;
    int rc;

    if ((rc = c->db->cursor(c->db, NULL, &cur, 0)) != 0) {
        *err = xasprintf("cursor: %s", db_strerror(rc));
        return -1;
    }
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    while ((rc = cur->get(cur, &k, &v, DB_NEXT)) == 0) {
        char domain[DNS_MAX_NAME + 1];
        struct sts_entry e;
        if (k.size == 0 || k.size > DNS_MAX_NAME || memchr(k.data, '\0', k.size)) {
            *err = xstrdup("a malformed key");
            break;
        }
        memcpy(domain, k.data, k.size);
        domain[k.size] = '\0';
        if (sts_entry_decode(v.data, v.size, domain, &e) < 0) {
            *err = xasprintf("a malformed record for %s", domain);
            break;
        }
        mem_put(c, &e);
    }
    cur->close(cur);
    if (*err)
        return -1;
    if (rc != DB_NOTFOUND) {
        *err = xasprintf("reading: %s", db_strerror(rc));
        return -1;
    }
    return 0;
}

static void move_aside(const char *path, const char *why)
{
    char stamp[32], *to;
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
    to = xasprintf("%s.corrupt-%s", path, stamp);
    if (rename(path, to) == 0)
        log_err("MTA-STS cache %s cannot be used (%s): moved aside to %s; starting with an "
                "empty cache (policies are fetched again as mail needs them)",
                path, why, to);
    else if (errno != ENOENT)
        log_err("MTA-STS cache %s cannot be used (%s) nor moved aside (%s); starting with an "
                "empty cache",
                path, why, strerror(errno));
    free(to);
}

struct sts_cache *sts_cache_open(const char *path)
{
    struct sts_cache *c = xcalloc(1, sizeof(*c));
    char *err = NULL;

    c->path = xstrdup(path);
    c->db = db_open_file(path, &err);
    if (c->db && load(c, &err) == 0) {
        log_info("MTA-STS cache %s: %zu policies", path, c->n);
        return c;
    }
    if (c->db)
        c->db->close(c->db, 0);
    mem_clear(c);
    move_aside(path, err ? err : "unreadable");
    free(err);
    err = NULL;
    c->db = db_open_file(path, &err);
    if (c->db == NULL) {
        log_err("MTA-STS cache %s cannot be created (%s): policies are kept in memory only "
                "until dnsd restarts",
                path, err);
        free(err);
    }
    return c;
}

void sts_cache_close(struct sts_cache *c)
{
    if (c == NULL)
        return;
    if (c->db)
        c->db->close(c->db, 0);
    mem_clear(c);
    free(c->e);
    free(c->path);
    free(c);
}

static void db_write(struct sts_cache *c, const struct sts_entry *e)
{
    struct ipc_w w;
    DBT k, v;
    int rc;

    if (c->db == NULL)
        return;
    ipc_w_init(&w);
    sts_entry_encode(&w, e);
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = (void *)(uintptr_t)e->domain;
    k.size = (u_int32_t)strlen(e->domain);
    v.data = w.p;
    v.size = (u_int32_t)w.len;
    rc = c->db->put(c->db, NULL, &k, &v, 0);
    if (rc == 0)
        rc = c->db->sync(c->db, 0);
    if (rc != 0)
        log_err("MTA-STS cache %s: cannot write %s: %s (kept in memory)", c->path, e->domain,
                db_strerror(rc));
    ipc_w_free(&w);
}

static void db_remove(struct sts_cache *c, const char *domain)
{
    DBT k;
    int rc;

    if (c->db == NULL)
        return;
    memset(&k, 0, sizeof(k));
    k.data = (void *)(uintptr_t)domain;
    k.size = (u_int32_t)strlen(domain);
    rc = c->db->del(c->db, NULL, &k, 0);
    if (rc == 0)
        rc = c->db->sync(c->db, 0);
    if (rc != 0 && rc != DB_NOTFOUND)
        log_err("MTA-STS cache %s: cannot remove %s: %s", c->path, domain, db_strerror(rc));
}

struct sts_entry *sts_cache_get(struct sts_cache *c, const char *domain)
{
    int found;
    size_t i = find(c, domain, &found);

    return found ? c->e[i] : NULL;
}

void sts_cache_put(struct sts_cache *c, const struct sts_entry *e)
{
    mem_put(c, e);
    db_write(c, e);
}

int sts_cache_del(struct sts_cache *c, const char *domain)
{
    int found;
    size_t i = find(c, domain, &found);

    if (!found)
        return 0;
    db_remove(c, domain);
    free(c->e[i]);
    memmove(c->e + i, c->e + i + 1, (c->n - i - 1) * sizeof(*c->e));
    c->n--;
    return 1;
}

size_t sts_cache_flush(struct sts_cache *c)
{
    size_t n = c->n;

    while (c->n > 0) {
        char domain[DNS_MAX_NAME + 1];
        strlcpy_p(domain, c->e[c->n - 1]->domain, sizeof(domain));
        sts_cache_del(c, domain);
    }
    return n;
}

size_t sts_cache_count(const struct sts_cache *c)
{
    return c->n;
}

const struct sts_entry *sts_cache_at(const struct sts_cache *c, size_t i)
{
    return i < c->n ? c->e[i] : NULL;
}

int sts_cache_persistent(const struct sts_cache *c)
{
    return c->db != NULL;
}
