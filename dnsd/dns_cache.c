/*
 * dns_cache - bounded LRU cache with TTLs (contract in dns_cache.h).
 *
 * A chained hash table finds entries; a doubly linked list keeps them in
 * use order (head = most recent). The table doubles when it is full, so
 * lookups stay O(1) whatever dns_cache_size is.
 */
#include <stdlib.h>
#include <string.h>

#include "dns_cache.h"
#include "base/util.h"

struct centry {
    struct centry *hnext;       /* hash chain */
    struct centry *prev, *next; /* LRU list */
    char *key;
    uint32_t hash;
    char *summary;
    void *data;
    size_t len;
    int64_t expires; /* microseconds */
};

struct dnscache {
    size_t max, count;
    size_t nbuckets;
    struct centry **buckets;
    struct centry *head, *tail;
    struct dnscache_stats st;
};

static uint32_t hash_key(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    return h;
}

struct dnscache *dnscache_new(size_t max)
{
    struct dnscache *c = xcalloc(1, sizeof(*c));
    c->max = max;
    c->nbuckets = 64;
    c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
    return c;
}

static void lru_unlink(struct dnscache *c, struct centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct dnscache *c, struct centry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static struct centry **find_slot(const struct dnscache *c, const char *key, uint32_t h)
{
    struct centry **pp = &c->buckets[h & (c->nbuckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void entry_free(struct centry *e)
{
    free(e->key);
    free(e->summary);
    free(e->data);
    free(e);
}

static void remove_entry(struct dnscache *c, struct centry *e)
{
    struct centry **pp = find_slot(c, e->key, e->hash);
    if (*pp == e)
        *pp = e->hnext;
    lru_unlink(c, e);
    c->count--;
    entry_free(e);
}

static void grow(struct dnscache *c)
{
    size_t nb = c->nbuckets * 2;
    struct centry **b = xcalloc(nb, sizeof(*b));

    for (size_t i = 0; i < c->nbuckets; i++) {
        struct centry *e = c->buckets[i];
        while (e) {
            struct centry *n = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = n;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

static void evict_to(struct dnscache *c, size_t max)
{
    while (c->count > max && c->tail) {
        remove_entry(c, c->tail);
        c->st.evictions++;
    }
}

size_t dnscache_flush(struct dnscache *c)
{
    size_t n = c->count;
    while (c->tail)
        remove_entry(c, c->tail);
    return n;
}

void dnscache_free(struct dnscache *c)
{
    if (!c)
        return;
    dnscache_flush(c);
    free(c->buckets);
    free(c);
}

void dnscache_set_max(struct dnscache *c, size_t max)
{
    c->max = max;
    evict_to(c, max);
}

size_t dnscache_max(const struct dnscache *c)
{
    return c->max;
}

size_t dnscache_expire(struct dnscache *c, int64_t now)
{
    size_t n = 0;
    struct centry *e = c->head;

    while (e) {
        struct centry *next = e->next;
        if (e->expires <= now) {
            remove_entry(c, e);
            c->st.expired++;
            n++;
        }
        e = next;
    }
    return n;
}

void dnscache_put(struct dnscache *c, const char *key, const void *data, size_t len,
                  const char *summary, uint32_t ttl, int64_t now)
{
    uint32_t h = hash_key(key);
    struct centry **pp, *e;

    if (c->max == 0 || ttl == 0)
        return;
    pp = find_slot(c, key, h);
    if (*pp)
        remove_entry(c, *pp);
    if (c->count >= c->max) {
        /* expired entries near the old end go first (a bounded look, so
         * a put stays O(1)), then the least recently used */
        struct centry *x = c->tail;
        for (int i = 0; x && i < 16; i++) {
            struct centry *prev = x->prev;
            if (x->expires <= now) {
                remove_entry(c, x);
                c->st.expired++;
            }
            x = prev;
        }
        evict_to(c, c->max - 1);
    }
    if (c->count >= c->nbuckets)
        grow(c);
    e = xcalloc(1, sizeof(*e));
    e->key = xstrdup(key);
    e->hash = h;
    e->summary = xstrdup(summary ? summary : "");
    e->data = xmalloc(len ? len : 1);
    if (len)
        memcpy(e->data, data, len);
    e->len = len;
    e->expires = now + (int64_t)ttl * 1000000;
    pp = &c->buckets[h & (c->nbuckets - 1)];
    e->hnext = *pp;
    *pp = e;
    lru_push_front(c, e);
    c->count++;
    c->st.inserts++;
}

const void *dnscache_get(struct dnscache *c, const char *key, int64_t now, size_t *len)
{
    struct centry *e = *find_slot(c, key, hash_key(key));

    if (e && e->expires <= now) {
        remove_entry(c, e);
        c->st.expired++;
        e = NULL;
    }
    if (!e) {
        c->st.misses++;
        return NULL;
    }
    c->st.hits++;
    lru_unlink(c, e);
    lru_push_front(c, e);
    *len = e->len;
    return e->data;
}

int dnscache_has(const struct dnscache *c, const char *key, int64_t now)
{
    struct centry *e = *find_slot(c, key, hash_key(key));
    return e && e->expires > now;
}

size_t dnscache_count(const struct dnscache *c)
{
    return c->count;
}

const struct dnscache_stats *dnscache_stats(const struct dnscache *c)
{
    return &c->st;
}

void dnscache_walk(const struct dnscache *c, int64_t now, dnscache_walk_fn fn, void *arg)
{
    for (const struct centry *e = c->head; e; e = e->next) {
        int64_t left = e->expires - now;
        if (left <= 0)
            continue;
        fn(e->key, e->summary, (uint32_t)((left + 999999) / 1000000), e->data, e->len, arg);
    }
}
