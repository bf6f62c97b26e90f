/*
 * strmap - a hash table from C strings to pointers (queue IDs to
 * messages, domains to destinations). Keys are copied; values are the
 * caller's. The table grows as needed; lookups are O(1) on average.
 * Pure: no I/O.
 */
#ifndef QMGR_STRMAP_H
#define QMGR_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
/* Frees the table and its keys, not the values. */
void strmap_free(struct strmap *m);
void *strmap_get(const struct strmap *m, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *strmap_put(struct strmap *m, const char *key, void *val);
/* Remove; returns the value or NULL. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/*
 * Iterate: start with *pos = 0; returns 1 and the entry, 0 at the end.
 * The table must not change during a walk (collect first, then act).
 */
int strmap_next(const struct strmap *m, size_t *pos, const char **key, void **val);

#endif
