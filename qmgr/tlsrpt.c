/*
 * tlsrpt - TLS reporting counters and their report (tlsrpt.h).
 */
#include "tlsrpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strmap.h"

struct detail {
    char *result, *mx, *ip, *reason;
    uint64_t count;
};

struct policy {
    char *type, *domain, *string;
    uint64_t ok, failed;
    size_t ndetails;
    struct detail details[TLSRPT_MAX_DETAILS];
    uint64_t details_dropped; /* failures with no room for their row */
};

struct tlsrpt {
    struct strmap *by_key;
    int64_t start;
    uint64_t dropped;
};

static char *cut(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n > TLSRPT_MAX_TEXT)
        n = TLSRPT_MAX_TEXT;
    return xstrndup(s ? s : "", n);
}

static int same(const char *a, const char *b)
{
    size_t n = strlen(b);

    if (n > TLSRPT_MAX_TEXT)
        n = TLSRPT_MAX_TEXT;
    return strlen(a) == n && memcmp(a, b, n) == 0;
}

struct tlsrpt *tlsrpt_new(int64_t now)
{
    struct tlsrpt *t = xcalloc(1, sizeof(*t));

    t->by_key = strmap_new();
    t->start = now;
    return t;
}

static void policy_free(struct policy *p)
{
    for (size_t i = 0; i < p->ndetails; i++) {
        free(p->details[i].result);
        free(p->details[i].mx);
        free(p->details[i].ip);
        free(p->details[i].reason);
    }
    free(p->type);
    free(p->domain);
    free(p->string);
    free(p);
}

static void drop_all(struct tlsrpt *t)
{
    size_t pos = 0;
    const char *k;
    void *v;

    while (strmap_next(t->by_key, &pos, &k, &v))
        policy_free(v);
    strmap_free(t->by_key);
}

void tlsrpt_free(struct tlsrpt *t)
{
    if (!t)
        return;
    drop_all(t);
    free(t);
}

void tlsrpt_reset(struct tlsrpt *t, int64_t now)
{
    drop_all(t);
    t->by_key = strmap_new();
    t->start = now;
    t->dropped = 0;
}

size_t tlsrpt_policies(const struct tlsrpt *t)
{
    return strmap_count(t->by_key);
}

uint64_t tlsrpt_dropped(const struct tlsrpt *t)
{
    return t->dropped;
}

static struct policy *policy_get(struct tlsrpt *t, const struct tlsrpt_outcome *o)
{
    char *type = cut(o->policy_type), *dom = cut(o->policy_domain), *str = cut(o->policy_string);
    char *key = xasprintf("%s\x1f%s\x1f%s", type, dom, str);
    struct policy *p = strmap_get(t->by_key, key);

    if (p || strmap_count(t->by_key) >= TLSRPT_MAX_POLICIES) {
        free(type);
        free(dom);
        free(str);
    } else {
        p = xcalloc(1, sizeof(*p));
        p->type = type;
        p->domain = dom;
        p->string = str;
        strmap_put(t->by_key, key, p);
    }
    free(key);
    return p;
}

void tlsrpt_add(struct tlsrpt *t, const struct tlsrpt_outcome *o)
{
    struct policy *p = policy_get(t, o);
    const char *mx = o->mx_host ? o->mx_host : "", *ip = o->receiving_ip ? o->receiving_ip : "";
    const char *why = o->reason ? o->reason : "";

    if (!p) {
        t->dropped++;
        return;
    }
    if (strcmp(o->result, "success") == 0) {
        p->ok++;
        return;
    }
    p->failed++;
    for (size_t i = 0; i < p->ndetails; i++) {
        struct detail *d = &p->details[i];
        if (same(d->result, o->result) && same(d->mx, mx) && same(d->ip, ip) &&
            same(d->reason, why)) {
            d->count++;
            return;
        }
    }
    if (p->ndetails >= TLSRPT_MAX_DETAILS) {
        p->details_dropped++;
        return;
    }
    p->details[p->ndetails++] = (struct detail){cut(o->result), cut(mx), cut(ip), cut(why), 1};
}

static int policy_cmp(const void *a, const void *b)
{
    const struct policy *x = *(struct policy *const *)a, *y = *(struct policy *const *)b;
    int c = strcmp(x->domain, y->domain);

    if (c == 0)
        c = strcmp(x->type, y->type);
    return c ? c : strcmp(x->string, y->string);
}

/* The policies sorted; *n of them. Free the array. */
static struct policy **sorted(const struct tlsrpt *t, size_t *n)
{
    struct policy **v = xcalloc(strmap_count(t->by_key) + 1, sizeof(*v));
    size_t pos = 0, i = 0;
    const char *k;
    void *p;

    while (strmap_next(t->by_key, &pos, &k, &p))
        v[i++] = p;
    qsort(v, i, sizeof(*v), policy_cmp);
    *n = i;
    return v;
}

static void time_str(int64_t s, char *buf, size_t len)
{
    time_t tt = (time_t)s;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void tlsrpt_text(const struct tlsrpt *t, int64_t now, struct buf *out)
{
    size_t n;
    struct policy **v = sorted(t, &n);
    char a[32], b[32];

    time_str(t->start, a, sizeof(a));
    time_str(now, b, sizeof(b));
    buf_printf(out, "TLS sessions from %s to %s: %zu policies", a, b, n);
    if (t->dropped)
        buf_printf(out, ", %llu sessions not counted (too many policies)",
                   (unsigned long long)t->dropped);
    buf_printf(out, "\n");
    for (size_t i = 0; i < n; i++) {
        const struct policy *p = v[i];
        buf_printf(out, "%s %s: %llu ok, %llu failed\n", p->domain, p->type,
                   (unsigned long long)p->ok, (unsigned long long)p->failed);
        if (*p->string) {
            const char *s = p->string;
            while (*s) {
                size_t l = strcspn(s, "\n");
                buf_printf(out, "    policy  %.*s\n", (int)l, s);
                s += l + (s[l] == '\n');
            }
        }
        for (size_t j = 0; j < p->ndetails; j++) {
            const struct detail *d = &p->details[j];
            buf_printf(out, "    %llu x %s at %s%s%s%s%s%s\n", (unsigned long long)d->count,
                       d->result, *d->mx ? d->mx : "?", *d->ip ? "[" : "", d->ip, *d->ip ? "]" : "",
                       *d->reason ? ": " : "", d->reason);
        }
        if (p->details_dropped)
            buf_printf(out, "    %llu more failures (too many kinds to list)\n",
                       (unsigned long long)p->details_dropped);
    }
    free(v);
}

static void json_lines(struct buf *out, const char *s)
{
    int first = 1;

    buf_printf(out, "[");
    while (*s) {
        size_t l = strcspn(s, "\n");
        char *line = xstrndup(s, l);
        buf_printf(out, "%s", first ? "" : ",");
        buf_json_str(out, line);
        free(line);
        first = 0;
        s += l + (s[l] == '\n');
    }
    buf_printf(out, "]");
}

void tlsrpt_json(const struct tlsrpt *t, const char *org, const char *report_id, int64_t now,
                 struct buf *out)
{
    size_t n;
    struct policy **v = sorted(t, &n);
    char a[32], b[32];

    time_str(t->start, a, sizeof(a));
    time_str(now, b, sizeof(b));
    buf_printf(out, "{\"organization-name\":");
    buf_json_str(out, org);
    buf_printf(out, ",\"date-range\":{\"start-datetime\":\"%s\",\"end-datetime\":\"%s\"},", a, b);
    buf_printf(out, "\"contact-info\":");
    buf_json_str(out, org);
    buf_printf(out, ",\"report-id\":");
    buf_json_str(out, report_id);
    buf_printf(out, ",\"policies\":[");
    for (size_t i = 0; i < n; i++) {
        const struct policy *p = v[i];
        buf_printf(out, "%s{\"policy\":{\"policy-type\":", i ? "," : "");
        buf_json_str(out, p->type);
        buf_printf(out, ",\"policy-string\":");
        json_lines(out, p->string);
        buf_printf(out, ",\"policy-domain\":");
        buf_json_str(out, p->domain);
        buf_printf(out,
                   "},\"summary\":{\"total-successful-session-count\":%llu,"
                   "\"total-failure-session-count\":%llu},\"failure-details\":[",
                   (unsigned long long)p->ok, (unsigned long long)p->failed);
        for (size_t j = 0; j < p->ndetails; j++) {
            const struct detail *d = &p->details[j];
            buf_printf(out, "%s{\"result-type\":", j ? "," : "");
            buf_json_str(out, d->result);
            buf_printf(out, ",\"receiving-mx-hostname\":");
            buf_json_str(out, d->mx);
            if (*d->ip) {
                buf_printf(out, ",\"receiving-ip\":");
                buf_json_str(out, d->ip);
            }
            buf_printf(out, ",\"failed-session-count\":%llu", (unsigned long long)d->count);
            if (*d->reason) {
                buf_printf(out, ",\"failure-reason-code\":");
                buf_json_str(out, d->reason);
            }
            buf_printf(out, "}");
        }
        buf_printf(out, "]}");
    }
    buf_printf(out, "]}");
    free(v);
}
