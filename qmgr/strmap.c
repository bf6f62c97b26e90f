/*
 * strmap - chained hash table of string keys (FNV-1a); see strmap.h.
 *
 * The iterator position encodes (bucket, entries of its chain already
 * returned) as bucket * 2^16 + k; the load factor kept at or below 1
 * keeps chains a few entries long, far below 2^16.
 */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct ent {
    struct ent *next;
    void *val;
    uint32_t hash;
    char key[];
};

struct strmap {
    struct ent **b;
    size_t nb, n;
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

struct strmap *strmap_new(void)
{
    struct strmap *m = xcalloc(1, sizeof(*m));

    m->nb = 64;
    m->b = xcalloc(m->nb, sizeof(*m->b));
    return m;
}

void strmap_free(struct strmap *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nb; i++)
        for (struct ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    free(m->b);
    free(m);
}

static struct ent **find(const struct strmap *m, const char *key, uint32_t h)
{
    struct ent **pp = &m->b[h & (m->nb - 1)];

    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            break;
    return pp;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    struct ent **pp = find(m, key, hash(key));

    return *pp ? (*pp)->val : NULL;
}

static void grow(struct strmap *m)
{
    size_t nb = m->nb * 2;
    struct ent **b = xcalloc(nb, sizeof(*b));

    for (size_t i = 0; i < m->nb; i++)
        for (struct ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void *strmap_put(struct strmap *m, const char *key, void *val)
{
    uint32_t h = hash(key);
    struct ent **pp = find(m, key, h), *e;
    size_t klen;
    void *old;

    if (*pp) {
        old = (*pp)->val;
        (*pp)->val = val;
        return old;
    }
    klen = strlen(key);
    e = xmalloc(sizeof(*e) + klen + 1);
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->val = val;
    e->next = NULL;
    *pp = e;
    if (++m->n > m->nb)
        grow(m);
    return NULL;
}

void *strmap_del(struct strmap *m, const char *key)
{
    struct ent **pp = find(m, key, hash(key)), *e = *pp;
    void *val;

    if (e == NULL)
        return NULL;
    *pp = e->next;
    val = e->val;
    free(e);
    m->n--;
    return val;
}

size_t strmap_count(const struct strmap *m)
{
    return m->n;
}

int strmap_next(const struct strmap *m, size_t *pos, const char **key, void **val)
{
    size_t bi = *pos >> 16, k = *pos & 0xffff;

    for (; bi < m->nb; bi++, k = 0) {
        struct ent *e = m->b[bi];
        size_t i = 0;
        for (; e && i < k; i++)
            e = e->next;
        if (e) {
            *key = e->key;
            *val = e->val;
            *pos = (bi << 16) | (k + 1);
            return 1;
        }
    }
    *pos = bi << 16;
    return 0;
}
