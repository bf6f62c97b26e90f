/*
 * qmgr_prom - unit tests of the Prometheus text exposition (prom.c) and
 * its histogram: HELP/TYPE lines, label escaping, number spelling,
 * cumulative buckets with +Inf, _sum and _count, a value on a bound.
 */
#include <math.h> /* INFINITY, NAN: constants, no libm */
#include <string.h>

#include "../../qmgr/prom.h"
#include "tap.h"

static const char *text(struct buf *b)
{
    return b->data;
}

int main(void)
{
    struct buf b, lb;
    static const double bounds[] = {0.1, 1, 10};
    struct prom_hist h;

    plan_lazy();
    buf_init(&b);
    buf_init(&lb);

    prom_family(&b, "postern_x_total", PROM_COUNTER, "Things.\nMore \\ text.");
    is_str(text(&b),
           "# HELP postern_x_total Things.\\nMore \\\\ text.\n# TYPE postern_x_total counter\n",
           "HELP escapes newline and backslash; TYPE names the type");
    buf_reset(&b);
    prom_family(&b, "g", PROM_GAUGE, "");
    prom_family(&b, "h", PROM_HISTOGRAM, "");
    ok(strstr(text(&b), "# TYPE g gauge\n") && strstr(text(&b), "# TYPE h histogram\n"),
       "gauge and histogram types");

    buf_reset(&b);
    prom_label(&lb, "gateway", "a\"b\\c\nd");
    prom_label(&lb, "phase", "relay");
    is_str(lb.data, "gateway=\"a\\\"b\\\\c\\nd\",phase=\"relay\"",
           "label values escape quote, backslash, newline; labels comma-separated");
    prom_count(&b, "postern_x_total", lb.data, 18446744073709551615ULL);
    is_str(text(&b),
           "postern_x_total{gateway=\"a\\\"b\\\\c\\nd\",phase=\"relay\"} 18446744073709551615\n",
           "a counter with labels, all 64 bits");
    buf_reset(&b);
    prom_count(&b, "n", "", 0);
    is_str(text(&b), "n 0\n", "no labels: no braces");

    buf_reset(&b);
    prom_value(&b, "v", "", 3);
    prom_value(&b, "v", "", -2);
    prom_value(&b, "v", "", 0.25);
    prom_value(&b, "v", "", 1.0 / 3);
    prom_value(&b, "v", "", INFINITY);
    prom_value(&b, "v", "", -INFINITY);
    prom_value(&b, "v", "", NAN);
    prom_value(&b, "v", "", 1e300);
    is_str(text(&b), "v 3\nv -2\nv 0.25\nv 0.3333333333333333\nv +Inf\nv -Inf\nv NaN\nv 1e+300\n",
           "numbers: integers plain, others in the fewest digits that read back, specials spelled "
           "out");

    buf_reset(&b);
    prom_single(&b, "postern_up", PROM_GAUGE, "Up.", 1);
    is_str(text(&b), "# HELP postern_up Up.\n# TYPE postern_up gauge\npostern_up 1\n", "single");

    prom_hist_init(&h, bounds, 3);
    buf_reset(&b);
    prom_hist_write(&b, "lat_seconds", "", &h);
    is_str(text(&b),
           "lat_seconds_bucket{le=\"0.1\"} 0\nlat_seconds_bucket{le=\"1\"} 0\n"
           "lat_seconds_bucket{le=\"10\"} 0\nlat_seconds_bucket{le=\"+Inf\"} 0\n"
           "lat_seconds_sum 0\nlat_seconds_count 0\n",
           "an empty histogram: every bucket, +Inf last, sum and count 0");
    prom_hist_observe(&h, 0.05);
    prom_hist_observe(&h, 1); /* on a bound: le, so in that bucket */
    prom_hist_observe(&h, 5);
    prom_hist_observe(&h, 11);
    prom_hist_observe(&h, 1e9);
    is_int((long long)h.count, 5, "count");
    ok(h.sum > 1000000017.04 && h.sum < 1000000017.06, "sum");
    buf_reset(&b);
    buf_reset(&lb);
    prom_label(&lb, "phase", "direct");
    prom_hist_write(&b, "lat_seconds", lb.data, &h);
    ok(strstr(text(&b), "lat_seconds_bucket{phase=\"direct\",le=\"0.1\"} 1\n") &&
           strstr(text(&b), "lat_seconds_bucket{phase=\"direct\",le=\"1\"} 2\n") &&
           strstr(text(&b), "lat_seconds_bucket{phase=\"direct\",le=\"10\"} 3\n") &&
           strstr(text(&b), "lat_seconds_bucket{phase=\"direct\",le=\"+Inf\"} 5\n") &&
           strstr(text(&b), "lat_seconds_count{phase=\"direct\"} 5\n"),
       "buckets are cumulative, a value on a bound is in it, +Inf holds all; labels kept");
    ok(strstr(text(&b), "lat_seconds_sum{phase=\"direct\"} 1000000017.05") != NULL, "sum line");

    {
        double many[PROM_HIST_MAX + 5];
        for (int i = 0; i < PROM_HIST_MAX + 5; i++)
            many[i] = i + 1;
        prom_hist_init(&h, many, PROM_HIST_MAX + 5);
        is_int((long long)h.nbounds, PROM_HIST_MAX, "bounds are capped at PROM_HIST_MAX");
        prom_hist_observe(&h, 1e6);
        is_int((long long)h.counts[PROM_HIST_MAX], 1, "above the last bound: +Inf");
    }

    buf_free(&b);
    buf_free(&lb);
    return done_testing();
}
