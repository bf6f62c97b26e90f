/*
 * sched - binary min-heap of embedded items by (when, seq); see sched.h.
 */
#include "sched.h"

#include <stdlib.h>

#include "base/log.h"
#include "base/util.h"

void sched_init(struct sched *s)
{
    s->v = NULL;
    s->n = s->cap = 0;
    s->seq = 0;
}

void sched_free(struct sched *s)
{
    for (size_t i = 0; i < s->n; i++)
        s->v[i]->pos = SCHED_NONE;
    free(s->v);
    sched_init(s);
}

void sched_item_init(struct sched_item *it)
{
    it->when = 0;
    it->seq = 0;
    it->pos = SCHED_NONE;
}

static int before(const struct sched_item *a, const struct sched_item *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void place(struct sched *s, size_t i, struct sched_item *it)
{
    s->v[i] = it;
    it->pos = i;
}

static void sift_up(struct sched *s, size_t i)
{
    struct sched_item *it = s->v[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(it, s->v[p]))
            break;
        place(s, i, s->v[p]);
        i = p;
    }
    place(s, i, it);
}

static void sift_down(struct sched *s, size_t i)
{
    struct sched_item *it = s->v[i];

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m;
        if (l >= s->n)
            break;
        m = (r < s->n && before(s->v[r], s->v[l])) ? r : l;
        if (!before(s->v[m], it))
            break;
        place(s, i, s->v[m]);
        i = m;
    }
    place(s, i, it);
}

void sched_push(struct sched *s, struct sched_item *it, int64_t when)
{
    if (it->pos != SCHED_NONE)
        log_panic("sched_push: item already scheduled");
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    it->when = when;
    it->seq = s->seq++;
    place(s, s->n++, it);
    sift_up(s, it->pos);
}

struct sched_item *sched_peek(const struct sched *s)
{
    return s->n ? s->v[0] : NULL;
}

void sched_remove(struct sched *s, struct sched_item *it)
{
    size_t i = it->pos;

    if (i == SCHED_NONE || i >= s->n || s->v[i] != it)
        log_panic("sched_remove: item not scheduled");
    it->pos = SCHED_NONE;
    s->n--;
    if (i == s->n)
        return;
    place(s, i, s->v[s->n]);
    if (i > 0 && before(s->v[i], s->v[(i - 1) / 2]))
        sift_up(s, i);
    else
        sift_down(s, i);
}

struct sched_item *sched_pop_due(struct sched *s, int64_t now)
{
    struct sched_item *it = sched_peek(s);

    if (it == NULL || it->when > now)
        return NULL;
    sched_remove(s, it);
    return it;
}

void sched_move(struct sched *s, struct sched_item *it, int64_t when)
{
    if (it->pos != SCHED_NONE)
        sched_remove(s, it);
    sched_push(s, it, when);
}
