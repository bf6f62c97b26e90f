/*
 * sched - the schedule: a binary min-heap of items ordered by a time
 * (microseconds), used by qmgr for "next try" times.
 *
 * Items are embedded in the caller's structures (struct sched_item); each
 * knows its own position, so removing or moving an item that is not at
 * the top costs O(log n). Items with equal times come out in the order
 * they were pushed (a sequence number breaks ties), so mail that became
 * due at the same moment is served first come, first served.
 *
 * Pure: no I/O, no clock. sched_push of an item that is already in the
 * heap, or sched_remove of one that is not, is a programming error
 * (log_panic).
 */
#ifndef QMGR_SCHED_H
#define QMGR_SCHED_H

#include <stddef.h>
#include <stdint.h>

#define SCHED_NONE ((size_t)-1)

struct sched_item {
    int64_t when; /* due time, microseconds */
    uint64_t seq; /* push order, for ties */
    size_t pos;   /* index in the heap, SCHED_NONE when not in it */
};

struct sched {
    struct sched_item **v;
    size_t n, cap;
    uint64_t seq;
};

void sched_init(struct sched *s);
void sched_free(struct sched *s);
/* Mark an item as not scheduled (call once when the item is made). */
void sched_item_init(struct sched_item *it);
static inline int sched_queued(const struct sched_item *it)
{
    return it->pos != SCHED_NONE;
}
void sched_push(struct sched *s, struct sched_item *it, int64_t when);
/* The earliest item, or NULL. */
struct sched_item *sched_peek(const struct sched *s);
/* Remove and return the earliest item if it is due at or before now. */
struct sched_item *sched_pop_due(struct sched *s, int64_t now);
void sched_remove(struct sched *s, struct sched_item *it);
/* Change an item's time (pushes it if it is not queued). */
void sched_move(struct sched *s, struct sched_item *it, int64_t when);
static inline size_t sched_count(const struct sched *s)
{
    return s->n;
}

#endif
