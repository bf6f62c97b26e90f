/*
 * qmgr_sched - unit tests of qmgr's schedule (qmgr/sched.c): order by
 * time, ties first come first served, removal and moves from the middle,
 * and a randomised comparison against a sorted reference.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../qmgr/sched.h"
#include "tap.h"

#define N 2000

static struct sched_item items[N];

static int heap_ok(const struct sched *s)
{
    for (size_t i = 1; i < s->n; i++) {
        const struct sched_item *p = s->v[(i - 1) / 2], *c = s->v[i];
        if (c->when < p->when || (c->when == p->when && c->seq < p->seq))
            return 0;
        if (c->pos != i)
            return 0;
    }
    return 1;
}

int main(void)
{
    struct sched s;
    struct sched_item a, b, c, d, *it;

    plan_lazy();
    sched_init(&s);
    sched_item_init(&a);
    sched_item_init(&b);
    sched_item_init(&c);
    sched_item_init(&d);
    ok(!sched_queued(&a), "a new item is not queued");
    ok(sched_peek(&s) == NULL, "empty schedule: nothing to peek");
    ok(sched_pop_due(&s, 1000) == NULL, "empty schedule: nothing due");

    sched_push(&s, &a, 300);
    sched_push(&s, &b, 100);
    sched_push(&s, &c, 200);
    sched_push(&s, &d, 100);
    is_int(sched_count(&s), 4, "four items");
    ok(sched_queued(&a), "pushed item is queued");
    ok(sched_peek(&s) == &b, "earliest first");
    ok(sched_pop_due(&s, 99) == NULL, "nothing due before its time");
    ok(sched_pop_due(&s, 100) == &b, "due at its time: b (pushed before d)");
    ok(sched_pop_due(&s, 100) == &d, "then d, same time");
    ok(!sched_queued(&b), "popped item is no longer queued");
    ok(sched_pop_due(&s, 150) == NULL, "c is not due at 150");

    /* move a before c, then remove c from the middle */
    sched_move(&s, &a, 50);
    ok(sched_peek(&s) == &a, "moved item comes first");
    sched_remove(&s, &c);
    is_int(sched_count(&s), 1, "one left after removal");
    ok(!sched_queued(&c), "removed item is not queued");
    sched_move(&s, &c, 10); /* move of an unqueued item pushes it */
    ok(sched_pop_due(&s, 1000) == &c, "re-pushed c first");
    ok(sched_pop_due(&s, 1000) == &a, "then a");
    ok(sched_pop_due(&s, 1000) == NULL, "then empty");

    /* random workload against a reference: push, remove every 7th, pop all */
    srandom(42);
    for (int i = 0; i < N; i++) {
        sched_item_init(&items[i]);
        sched_push(&s, &items[i], random() % 500);
    }
    ok(heap_ok(&s), "heap property after %d pushes", N);
    int removed = 0;
    for (int i = 0; i < N; i += 7) {
        sched_remove(&s, &items[i]);
        removed++;
    }
    for (int i = 3; i < N; i += 11)
        if (sched_queued(&items[i]))
            sched_move(&s, &items[i], random() % 500);
    ok(heap_ok(&s), "heap property after removals and moves");
    is_int(sched_count(&s), N - removed, "count after removals");
    int64_t last = -1;
    uint64_t lastseq = 0;
    int ordered = 1, n = 0;
    while ((it = sched_pop_due(&s, 1000)) != NULL) {
        if (it->when < last || (it->when == last && it->seq < lastseq))
            ordered = 0;
        last = it->when;
        lastseq = it->seq;
        n++;
    }
    ok(ordered, "popped in (time, push order) order");
    is_int(n, N - removed, "every remaining item popped once");
    sched_free(&s);
    return done_testing();
}
