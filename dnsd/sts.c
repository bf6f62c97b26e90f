/*
 * sts - MTA-STS policy discovery (contract in sts.h).
 *
 * One struct op per domain in flight (TXT lookup, then maybe a fetch);
 * later lookups of the domain join its waiters. Failures of domains
 * without a cached policy are remembered in a small table (struct memo)
 * for STS_RETRY_S; those of cached policies in the entry itself, which
 * is persistent.
 */
#include "sts.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "dns_answer.h"
#include "dns_lookup.h"
#include "sts_cache.h"
#include "sts_fetch.h"

#define REFRESH_AFTER_S 86400
#define TIMER_MAX_S 3600

struct waiter {
    sts_cb cb;
    void *arg;
    struct waiter *next;
};

struct op {
    struct sts *s;
    char domain[DNS_MAX_NAME + 1];
    unsigned how;
    int refresh; /* a background refresh: fetch even for the same id */
    char id[STS_ID_MAX + 1];
    struct sts_fetch *fetch;
    struct waiter *w;
    struct op *next;
};

struct memo {
    char domain[DNS_MAX_NAME + 1];
    int64_t at;
    char why[400];
    struct memo *next;
};

struct sts {
    struct event_base *base;
    struct dnsq_engine *e;
    SSL_CTX *ctx;
    struct sts_cache *cache;
    struct sts_conf conf;
    struct op *ops;
    struct memo *memos;
    struct event *timer;
    uint64_t fetches;
};

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static struct op *op_find(struct sts *s, const char *domain)
{
    for (struct op *o = s->ops; o; o = o->next)
        if (strcmp(o->domain, domain) == 0)
            return o;
    return NULL;
}

static struct memo *memo_find(struct sts *s, const char *domain)
{
    for (struct memo *m = s->memos; m; m = m->next)
        if (strcmp(m->domain, domain) == 0)
            return m;
    return NULL;
}

static void memo_drop(struct sts *s, const char *domain)
{
    struct memo **mp = &s->memos;

    while (*mp) {
        if (domain == NULL || strcmp((*mp)->domain, domain) == 0) {
            struct memo *m = *mp;
            *mp = m->next;
            free(m);
        } else {
            mp = &(*mp)->next;
        }
    }
}

static void memo_set(struct sts *s, const char *domain, const char *why)
{
    struct memo *m = memo_find(s, domain);

    if (m == NULL) {
        m = xcalloc(1, sizeof(*m));
        strlcpy_p(m->domain, domain, sizeof(m->domain));
        m->next = s->memos;
        s->memos = m;
    }
    m->at = now_s();
    strlcpy_p(m->why, why, sizeof(m->why));
}

static void memo_expire(struct sts *s)
{
    int64_t now = now_s();
    struct memo **mp = &s->memos;

    while (*mp) {
        if (now - (*mp)->at >= STS_RETRY_S) {
            struct memo *m = *mp;
            *mp = m->next;
            free(m);
        } else {
            mp = &(*mp)->next;
        }
    }
}

/* The cached policy of domain if unexpired; an expired one is dropped. */
static struct sts_entry *cached(struct sts *s, const char *domain)
{
    struct sts_entry *e = sts_cache_get(s->cache, domain);

    if (e && e->expires_at <= now_s()) {
        log_info("MTA-STS: the policy of %s (id %s) expired", domain, e->id);
        sts_cache_del(s->cache, domain);
        return NULL;
    }
    return e;
}

static void answer_all(struct op *o, enum dns_sts_state st, const struct sts_entry *e,
                       const char *reason)
{
    struct sts *s = o->s;
    char domain[DNS_MAX_NAME + 1];
    struct sts_answer a = {st, domain, e ? e->id : "", e ? &e->pol : NULL, reason};
    struct sts_entry copy;
    struct waiter *w = o->w;

    memcpy(domain, o->domain, sizeof(domain)); /* o is freed before the callbacks */

    if (e) {
        copy = *e; /* a callback may flush the cache */
        a.id = copy.id;
        a.pol = &copy.pol;
    }
    for (struct op **op = &s->ops; *op; op = &(*op)->next)
        if (*op == o) {
            *op = o->next;
            break;
        }
    if (o->fetch)
        sts_fetch_cancel(o->fetch);
    free(o);
    while (w) {
        struct waiter *next = w->next;
        w->cb(&a, w->arg);
        free(w);
        w = next;
    }
}

static void schedule(struct sts *s);

/* No usable TXT record (why says which case). */
static void no_record(struct op *o, const char *why)
{
    struct sts_entry *e = cached(o->s, o->domain);
    char reason[1200];

    if (e) {
        snprintf(reason, sizeof(reason), "cached; %s", why);
        answer_all(o, DNS_STS_POLICY, e, reason);
        return;
    }
    answer_all(o, DNS_STS_NONE, NULL, why);
}

static void fetch_failed(struct op *o, const char *why)
{
    struct sts *s = o->s;
    struct sts_entry *e = cached(s, o->domain);
    char reason[1200];

    log_warn("MTA-STS: policy fetch for %s failed: %s", o->domain, why);
    if (e) {
        struct sts_entry upd = *e;
        upd.last_try = now_s();
        strlcpy_p(upd.last_error, why, sizeof(upd.last_error));
        sts_cache_put(s->cache, &upd);
        snprintf(reason, sizeof(reason), "cached, refresh failed: %s", why);
        schedule(s);
        answer_all(o, DNS_STS_POLICY, sts_cache_get(s->cache, o->domain), reason);
        return;
    }
    memo_set(s, o->domain, why);
    answer_all(o, DNS_STS_FAILED, NULL, why);
}

static void on_fetched(const char *body, size_t len, const char *why, void *arg)
{
    struct op *o = arg;
    struct sts *s = o->s;
    struct sts_entry e;
    char perr[300], msg[DNS_MAX_NAME + 360];

    o->fetch = NULL;
    if (body == NULL) {
        fetch_failed(o, why);
        return;
    }
    memset(&e, 0, sizeof(e));
    if (sts_policy_parse(body, len, &e.pol, perr, sizeof(perr)) < 0) {
        snprintf(msg, sizeof(msg), "mta-sts.%s: bad policy: %s", o->domain, perr);
        fetch_failed(o, msg);
        return;
    }
    strlcpy_p(e.domain, o->domain, sizeof(e.domain));
    strlcpy_p(e.id, o->id, sizeof(e.id));
    e.fetched_at = now_s();
    e.expires_at = e.fetched_at + e.pol.max_age;
    sts_cache_put(s->cache, &e);
    memo_drop(s, o->domain);
    log_info("MTA-STS: policy of %s: id %s, mode %s, max_age %u, %zu mx", o->domain, e.id,
             dns_sts_mode_name(e.pol.mode), e.pol.max_age, e.pol.nmx);
    schedule(s);
    answer_all(o, DNS_STS_POLICY, &e, "");
}

/* When domain last failed, and why; 0 if not within STS_RETRY_S. */
static int64_t failed_recently(struct sts *s, const char *domain, const struct sts_entry *e,
                               const char **why)
{
    const struct memo *m = memo_find(s, domain);
    int64_t now = now_s();

    if (e && e->last_error[0] && now - e->last_try < STS_RETRY_S) {
        *why = e->last_error;
        return e->last_try;
    }
    if (m && now - m->at < STS_RETRY_S) {
        *why = m->why;
        return m->at;
    }
    return 0;
}

static void start_fetch(struct op *o)
{
    struct sts *s = o->s;
    struct sts_entry *e = cached(s, o->domain);
    const char *why = NULL;
    int64_t at = failed_recently(s, o->domain, e, &why);
    char reason[1200];

    if (at && !(o->how & STS_FORCE)) {
        long left = (long)(STS_RETRY_S - (now_s() - at));
        if (e) {
            snprintf(reason, sizeof(reason), "cached, refresh failed: %s (next try in %ld s)", why,
                     left);
            answer_all(o, DNS_STS_POLICY, e, reason);
        } else {
            snprintf(reason, sizeof(reason), "%s (next try in %ld s)", why, left);
            answer_all(o, DNS_STS_FAILED, NULL, reason);
        }
        return;
    }
    s->fetches++;
    o->fetch = sts_fetch_start(s->base, s->e, s->ctx, o->domain, s->conf.port, s->conf.timeout_ms,
                               on_fetched, o);
}

static void on_txt(const struct txt_result *r, void *arg)
{
    struct op *o = arg;
    struct sts_entry *e;
    char id[STS_ID_MAX + 1], why[200], first_why[200] = "", reason[1200];
    int nsts = 0, nvalid = 0;

    if (r->status == TXT_FAILED) {
        snprintf(reason, sizeof(reason), "_mta-sts.%s: %s", o->domain, r->why);
        no_record(o, reason);
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        char this_id[STS_ID_MAX + 1];
        int k = sts_txt_parse(r->txt[i], this_id, why, sizeof(why));
        if (k == 0)
            continue;
        nsts++;
        if (k == 1) {
            nvalid++;
            memcpy(id, this_id, sizeof(id));
        } else if (!first_why[0]) {
            strlcpy_p(first_why, why, sizeof(first_why));
        }
    }
    if (nsts == 0) {
        snprintf(reason, sizeof(reason), "no STSv1 TXT record at _mta-sts.%s", o->domain);
        no_record(o, reason);
        return;
    }
    if (nsts > 1) {
        snprintf(reason, sizeof(reason),
                 "%d STSv1 TXT records at _mta-sts.%s: none applies (RFC 8461 3.1)", nsts,
                 o->domain);
        no_record(o, reason);
        return;
    }
    if (nvalid == 0) {
        snprintf(reason, sizeof(reason), "malformed TXT record at _mta-sts.%s: %s", o->domain,
                 first_why);
        no_record(o, reason);
        return;
    }
    memcpy(o->id, id, sizeof(o->id));
    e = cached(o->s, o->domain);
    if (e && strcmp(e->id, id) == 0 && !(o->how & STS_FORCE) && !o->refresh) {
        answer_all(o, DNS_STS_POLICY, e, "");
        return;
    }
    start_fetch(o);
}

static void lookup_start(struct sts *s, const char *domain, unsigned how, int refresh, sts_cb cb,
                         void *arg)
{
    struct waiter *w = xcalloc(1, sizeof(*w));
    struct op *o = op_find(s, domain);
    char name[DNS_MAX_NAME + 16];

    w->cb = cb;
    w->arg = arg;
    if (o) {
        w->next = o->w;
        o->w = w;
        o->how |= how;
        return;
    }
    o = xcalloc(1, sizeof(*o));
    o->s = s;
    o->how = how;
    o->refresh = refresh;
    o->w = w;
    strlcpy_p(o->domain, domain, sizeof(o->domain));
    o->next = s->ops;
    s->ops = o;
    snprintf(name, sizeof(name), "_mta-sts.%s", domain);
    lookup_txt(s->e, name, on_txt, o);
}

void sts_lookup(struct sts *s, const char *domain, unsigned how, sts_cb cb, void *arg)
{
    char norm[DNS_MAX_NAME + 1];
    struct sts_answer a = {DNS_STS_NOT_ASKED, domain, "", NULL, ""};

    if (s == NULL || !s->conf.enabled) {
        cb(&a, arg);
        return;
    }
    if (dnsans_norm(domain, norm, sizeof(norm)) < 0 || strcmp(norm, ".") == 0 ||
        strlen(norm) > DNS_MAX_NAME - 16 || domain[0] == '[') {
        a.state = DNS_STS_NONE;
        a.reason = "not a domain name: no MTA-STS";
        cb(&a, arg);
        return;
    }
    lookup_start(s, norm, how, 0, cb, arg);
}

/* ---- background refresh ---- */

static int64_t refresh_due(const struct sts_entry *e)
{
    int64_t due = e->fetched_at + (int64_t)(e->pol.max_age - e->pol.max_age / 4);

    if (due > e->fetched_at + REFRESH_AFTER_S)
        due = e->fetched_at + REFRESH_AFTER_S;
    if (e->last_error[0] && due < e->last_try + STS_RETRY_S)
        due = e->last_try + STS_RETRY_S;
    return due;
}

static void refresh_done(const struct sts_answer *a, void *arg)
{
    log_detail("MTA-STS: refresh of %s: %s%s%s", a->domain, dns_sts_state_name(a->state),
               a->reason[0] ? ": " : "", a->reason);
}

static void schedule(struct sts *s)
{
    int64_t now = now_s(), next = now + TIMER_MAX_S;
    struct timeval tv = {0, 0};

    for (size_t i = 0; i < sts_cache_count(s->cache); i++) {
        const struct sts_entry *e = sts_cache_at(s->cache, i);
        int64_t due = refresh_due(e);
        if (e->expires_at < due)
            due = e->expires_at;
        if (due < next)
            next = due;
    }
    tv.tv_sec = next - now < 1 ? 1 : (time_t)(next - now);
    if (tv.tv_sec > TIMER_MAX_S)
        tv.tv_sec = TIMER_MAX_S;
    evtimer_add(s->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sts *s = arg;
    int64_t now = now_s();
    char(*due)[DNS_MAX_NAME + 1] = NULL;
    size_t ndue = 0;

    memo_expire(s);
    for (size_t i = 0; s->conf.enabled && i < sts_cache_count(s->cache); i++) {
        const struct sts_entry *e = sts_cache_at(s->cache, i);
        if (e->expires_at <= now || refresh_due(e) > now || op_find(s, e->domain))
            continue;
        due = xrealloc(due, (ndue + 1) * sizeof(*due));
        strlcpy_p(due[ndue++], e->domain, sizeof(*due));
    }
    /* expired ones go (cached() drops them), due ones are refreshed */
    for (size_t i = 0; i < sts_cache_count(s->cache);) {
        const struct sts_entry *e = sts_cache_at(s->cache, i);
        if (e->expires_at <= now && cached(s, e->domain) == NULL)
            continue;
        i++;
    }
    for (size_t i = 0; i < ndue; i++) {
        log_detail("MTA-STS: refreshing the policy of %s", due[i]);
        lookup_start(s, due[i], 0, 1, refresh_done, NULL);
    }
    free(due);
    schedule(s);
}

/* ---- set-up, control ---- */

struct sts *sts_new(struct event_base *base, struct dnsq_engine *e, SSL_CTX *ctx,
                    struct sts_cache *cache, const struct sts_conf *conf)
{
    struct sts *s = xcalloc(1, sizeof(*s));

    s->base = base;
    s->e = e;
    s->ctx = ctx;
    s->cache = cache;
    s->conf = *conf;
    s->timer = evtimer_new(base, on_timer, s);
    schedule(s);
    return s;
}

void sts_configure(struct sts *s, const struct sts_conf *conf)
{
    s->conf = *conf;
}

void sts_free(struct sts *s)
{
    if (s == NULL)
        return;
    while (s->ops)
        answer_all(s->ops, DNS_STS_NONE, NULL, "dnsd is stopping");
    memo_drop(s, NULL);
    event_free(s->timer);
    free(s);
}

size_t sts_flush(struct sts *s, const char *domain)
{
    char norm[DNS_MAX_NAME + 1];

    if (domain == NULL) {
        memo_drop(s, NULL);
        return sts_cache_flush(s->cache);
    }
    if (dnsans_norm(domain, norm, sizeof(norm)) < 0)
        return 0;
    memo_drop(s, norm);
    return (size_t)sts_cache_del(s->cache, norm);
}

uint64_t sts_fetches(const struct sts *s)
{
    return s->fetches;
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t == 0) {
        snprintf(buf, len, "-");
        return;
    }
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void sts_show(struct sts *s, struct buf *out, int json)
{
    size_t n = sts_cache_count(s->cache);
    int64_t now = now_s();

    if (json)
        buf_printf(out, "{\"enabled\":%s,\"persistent\":%s,\"fetches\":%llu,\"policies\":[",
                   s->conf.enabled ? "true" : "false",
                   sts_cache_persistent(s->cache) ? "true" : "false",
                   (unsigned long long)s->fetches);
    else
        buf_printf(out, "MTA-STS: %s; %zu cached policies (%s); %llu fetches\n",
                   s->conf.enabled ? "on" : "off (mta_sts = no)", n,
                   sts_cache_persistent(s->cache) ? "in sts.db" : "in memory only",
                   (unsigned long long)s->fetches);
    for (size_t i = 0; i < n; i++) {
        const struct sts_entry *e = sts_cache_at(s->cache, i);
        char exp[32], fet[32], tried[32];
        fmt_time(e->expires_at, exp, sizeof(exp));
        fmt_time(e->fetched_at, fet, sizeof(fet));
        fmt_time(e->last_try, tried, sizeof(tried));
        if (json) {
            buf_adds(out, i ? ",{\"domain\":" : "{\"domain\":");
            buf_json_str(out, e->domain);
            buf_printf(out, ",\"mode\":\"%s\",\"id\":", dns_sts_mode_name(e->pol.mode));
            buf_json_str(out, e->id);
            buf_printf(out,
                       ",\"max_age\":%u,\"fetched_at\":%lld,\"expires_at\":%lld,"
                       "\"expires_in\":%lld,\"last_try\":%lld,\"last_error\":",
                       e->pol.max_age, (long long)e->fetched_at, (long long)e->expires_at,
                       (long long)(e->expires_at - now), (long long)e->last_try);
            buf_json_str(out, e->last_error);
            buf_adds(out, ",\"mx\":[");
            for (size_t k = 0; k < e->pol.nmx; k++) {
                if (k)
                    buf_addc(out, ',');
                buf_json_str(out, e->pol.mx[k]);
            }
            buf_adds(out, "]}");
            continue;
        }
        buf_printf(out, "%s mode=%s id=%s max_age=%u fetched=%s expires=%s mx=", e->domain,
                   dns_sts_mode_name(e->pol.mode), e->id, e->pol.max_age, fet, exp);
        for (size_t k = 0; k < e->pol.nmx; k++)
            buf_printf(out, "%s%s", k ? "," : "", e->pol.mx[k]);
        if (e->last_error[0])
            buf_printf(out, " last_error=\"%s\" (%s)", e->last_error, tried);
        buf_addc(out, '\n');
    }
    if (json)
        buf_adds(out, "]}\n");
}

void sts_answer_to_result(const struct sts_answer *a, struct dns_result *r)
{
    const char *mx[DNS_MAX_STS_MX];
    size_t n = 0;

    if (a->pol)
        for (n = 0; n < a->pol->nmx; n++)
            mx[n] = a->pol->mx[n];
    dns_result_set_sts(r, a->state, a->pol ? a->pol->mode : DNS_STS_MODE_NONE, a->id,
                       a->pol ? a->pol->max_age : 0, mx, n, a->reason);
}
