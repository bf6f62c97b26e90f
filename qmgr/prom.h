/*
 * prom - the Prometheus text exposition format, version 0.0.4, and a
 * fixed-bucket histogram: plain functions over a buf, no I/O, no state
 * beyond what the caller holds (t/unit/qmgr_prom.c).
 *
 *   prom_family(out, name, type, help)   the # HELP and # TYPE lines
 *   prom_value(out, name, labels, v)     one sample: name{labels} v
 *   prom_label(out, first, key, value)   appends ,key="value" (the value
 *                                        escaped: \ " and newline) to a
 *                                        label buffer; prom_value takes it
 *                                        without braces, "" for none
 *   prom_hist_observe(h, v)              O(buckets), no allocation
 *   prom_hist_write(out, name, labels, h)  _bucket{le=...} (cumulative,
 *                                        ending with +Inf), _sum, _count
 *
 * Names are the caller's constants and are not checked here beyond an
 * assertion in the unit test; values are printed so that they read back
 * exactly (integers as integers, other values in the fewest of 15 to 17
 * significant digits that read back, +Inf / -Inf / NaN as the format
 * spells them).
 */
#ifndef QMGR_PROM_H
#define QMGR_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM };

#define PROM_HIST_MAX 24

struct prom_hist {
    const double *bounds;               /* upper bounds, increasing, without +Inf */
    size_t nbounds;                     /* at most PROM_HIST_MAX */
    uint64_t counts[PROM_HIST_MAX + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t count;
    double sum;
};

void prom_family(struct buf *out, const char *name, enum prom_type type, const char *help);
void prom_label(struct buf *labels, const char *key, const char *value);
void prom_value(struct buf *out, const char *name, const char *labels, double v);
void prom_count(struct buf *out, const char *name, const char *labels, uint64_t v);
/* One counter or gauge with no labels: its HELP, TYPE and sample. */
void prom_single(struct buf *out, const char *name, enum prom_type type, const char *help,
                 double v);

void prom_hist_init(struct prom_hist *h, const double *bounds, size_t nbounds);
void prom_hist_observe(struct prom_hist *h, double v);
void prom_hist_write(struct buf *out, const char *name, const char *labels,
                     const struct prom_hist *h);

#endif
