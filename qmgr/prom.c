/*
 * prom - Prometheus text exposition (prom.h).
 */
#include "prom.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(enum prom_type t)
{
    return t == PROM_COUNTER ? "counter" : t == PROM_GAUGE ? "gauge" : "histogram";
}

/* HELP text escapes only backslash and newline. */
static void add_help(struct buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_adds(out, "\\\\");
        else if (*s == '\n')
            buf_adds(out, "\\n");
        else
            buf_addc(out, *s);
    }
}

void prom_family(struct buf *out, const char *name, enum prom_type type, const char *help)
{
    buf_printf(out, "# HELP %s ", name);
    add_help(out, help);
    buf_printf(out, "\n# TYPE %s %s\n", name, type_name(type));
}

void prom_label(struct buf *labels, const char *key, const char *value)
{
    buf_printf(labels, "%s%s=\"", labels->len ? "," : "", key);
    for (const char *s = value; *s; s++) {
        if (*s == '\\')
            buf_adds(labels, "\\\\");
        else if (*s == '"')
            buf_adds(labels, "\\\"");
        else if (*s == '\n')
            buf_adds(labels, "\\n");
        else
            buf_addc(labels, *s);
    }
    buf_addc(labels, '"');
}

/* The exposition spelling of v: integers exactly, others in the fewest digits
 * (15 to 17) that read back as v. */
static void fmt_number(char *b, size_t len, double v)
{
    if (v != v)
        snprintf(b, len, "NaN");
    else if (v > DBL_MAX || v < -DBL_MAX)
        snprintf(b, len, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (v > -9007199254740992.0 && v < 9007199254740992.0 && (double)(long long)v == v)
        snprintf(b, len, "%lld", (long long)v); /* below 2^53 a double is an exact integer */
    else
        for (int digits = 15; digits <= 17; digits++) { /* the shortest that reads back */
            snprintf(b, len, "%.*g", digits, v);
            if (strtod(b, NULL) == v)
                break;
        }
}

static void add_number(struct buf *out, double v)
{
    char b[64];

    fmt_number(b, sizeof(b), v);
    buf_adds(out, b);
}

static void add_name(struct buf *out, const char *name, const char *labels)
{
    buf_adds(out, name);
    if (labels && *labels)
        buf_printf(out, "{%s}", labels);
    buf_addc(out, ' ');
}

void prom_value(struct buf *out, const char *name, const char *labels, double v)
{
    add_name(out, name, labels);
    add_number(out, v);
    buf_addc(out, '\n');
}

void prom_count(struct buf *out, const char *name, const char *labels, uint64_t v)
{
    add_name(out, name, labels);
    buf_printf(out, "%llu\n", (unsigned long long)v);
}

void prom_single(struct buf *out, const char *name, enum prom_type type, const char *help, double v)
{
    prom_family(out, name, type, help);
    prom_value(out, name, "", v);
}

void prom_hist_init(struct prom_hist *h, const double *bounds, size_t nbounds)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->nbounds = nbounds < PROM_HIST_MAX ? nbounds : PROM_HIST_MAX;
}

void prom_hist_observe(struct prom_hist *h, double v)
{
    size_t i = 0;

    while (i < h->nbounds && v > h->bounds[i]) /* le: a value on a bound is in it */
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void prom_hist_write(struct buf *out, const char *name, const char *labels,
                     const struct prom_hist *h)
{
    struct buf lb, n;
    uint64_t cum = 0;

    buf_init(&lb);
    buf_init(&n);
    buf_printf(&n, "%s_bucket", name);
    for (size_t i = 0; i <= h->nbounds; i++) {
        char le[64];
        cum += h->counts[i];
        fmt_number(le, sizeof(le), i < h->nbounds ? h->bounds[i] : INFINITY);
        buf_reset(&lb);
        if (labels && *labels)
            buf_adds(&lb, labels);
        prom_label(&lb, "le", le);
        prom_count(out, n.data, lb.data, cum);
    }
    buf_reset(&n);
    buf_printf(&n, "%s_sum", name);
    prom_value(out, n.data, labels, h->sum);
    buf_reset(&n);
    buf_printf(&n, "%s_count", name);
    prom_count(out, n.data, labels, h->count);
    buf_free(&lb);
    buf_free(&n);
}
