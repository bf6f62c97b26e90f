/*
 * ctl - qmgr's smtpctl commands (argv as typed after "smtpctl -c DIR";
 * CTL_F_JSON for --json):
 *
 *   show queue [SELECTION]      messages: ID, age, size, sender, and each
 *                               recipient's state, attempts, next try
 *   show message ID             one message in full (envelope from the file)
 *   show hosts                  destinations: queued, active, failures
 *   show stats                  counters
 *   flush [SELECTION]           try deferred mail now (no selection: all)
 *   remove SELECTION            delete messages (queue/ or hold/; by ID also
 *                               bounced/ and bad/)
 *   hold SELECTION              move messages to hold/ (not delivered)
 *   release SELECTION           move held messages back to queue/
 *   bounce SELECTION            fail live recipients now and notify (folder.c)
 *   show bounced|bad, requeue   the folders (folder.c)
 *   pause delivery | resume delivery
 *   route ADDRESS ..., show relays   routing (policy_ctl.c)
 *
 * SELECTION: queue IDs, and/or --domain D, --recipient R, --sender S
 * (a message matches when one of its recipients is at domain D / is R,
 * or its sender is S; "<>" is the null sender; case-insensitive; options
 * combine with AND), or "all". Output is for people; with --json, one
 * JSON document. Large listings stop before the IPC size limit and say
 * so ("truncated").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mail/dlv_proto.h"
#include "group.h"
#include "base/ipc.h"
#include "base/log.h"
#include "policy.h"
#include "mail/proto.h"
#include "qmgr.h"
#include "strmap.h"

#define OUT_LIMIT (IPC_MAX_BODY - 64 * 1024)

struct sel {
    const char **ids;
    size_t nids;
    const char *domain, *rcpt, *sender;
    int all;
};

static int usage(struct buf *out, const char *what)
{
    buf_printf(out, "qmgr: %s\n", what);
    buf_adds(out, "usage: show queue [SELECTION] | show message ID | show hosts | show stats\n"
                  "       flush [SELECTION] | remove SELECTION | hold SELECTION | release "
                  "SELECTION\n"
                  "       bounce SELECTION | show bounced [ID...] | show bad [ID...]\n"
                  "       requeue ID... | requeue --domain D | requeue all\n"
                  "       pause delivery | resume delivery\n"
                  "       route ADDRESS [--size N] [--from SENDER] | show relays\n"
                  "SELECTION: queue IDs, --domain D, --recipient R, --sender S, or all\n");
    return 2;
}

/* Parse argv[from..] into *s; -1 with an error in out. */
static int parse_sel(int argc, char **argv, int from, struct sel *s, struct buf *out)
{
    memset(s, 0, sizeof(*s));
    s->ids = xcalloc((size_t)argc + 1, sizeof(*s->ids));
    for (int i = from; i < argc; i++) {
        const char *a = argv[i], **slot = NULL;
        const char *opt = NULL;
        if (strcmp(a, "all") == 0) {
            s->all = 1;
            continue;
        }
        if (strncmp(a, "--domain", 8) == 0)
            slot = &s->domain, opt = a + 8;
        else if (strncmp(a, "--recipient", 11) == 0)
            slot = &s->rcpt, opt = a + 11;
        else if (strncmp(a, "--sender", 8) == 0)
            slot = &s->sender, opt = a + 8;
        if (slot) {
            if (*opt == '=') {
                *slot = opt + 1;
            } else if (*opt == '\0' && i + 1 < argc) {
                *slot = argv[++i];
            } else {
                buf_printf(out, "qmgr: %s needs a value\n", a);
                return -1;
            }
            continue;
        }
        if (!qfile_id_valid(a)) {
            buf_printf(out,
                       "qmgr: '%s' is not a queue ID (18 upper-case hex digits) nor an "
                       "option\n",
                       a);
            return -1;
        }
        s->ids[s->nids++] = a;
    }
    return 0;
}

static int sel_empty(const struct sel *s)
{
    return !s->all && s->nids == 0 && !s->domain && !s->rcpt && !s->sender;
}

static int strip_eq(const char *want, const char *have)
{
    size_t n = strlen(want);

    /* accept "<addr>" as well as "addr" */
    if (n >= 2 && want[0] == '<' && want[n - 1] == '>')
        return strlen(have) == n - 2 && ascii_ncasecmp(want + 1, have, n - 2) == 0;
    return ascii_casecmp(want, have) == 0;
}

static int sel_match(const struct sel *s, const struct msg *m)
{
    if (s->nids) {
        int hit = 0;
        for (size_t i = 0; i < s->nids && !hit; i++)
            hit = strcmp(s->ids[i], m->id) == 0;
        if (!hit)
            return 0;
    }
    if (s->sender && !strip_eq(s->sender, m->sender))
        return 0;
    if (s->domain || s->rcpt) {
        int hit = 0;
        for (size_t i = 0; i < m->nrcpt && !hit; i++) {
            const char *a = m->rcpt[i].addr;
            hit = (!s->domain || ascii_casecmp(s->domain, addr_domain(a)) == 0) &&
                  (!s->rcpt || strip_eq(s->rcpt, a));
        }
        if (!hit)
            return 0;
    }
    return 1;
}

static int by_id(const void *a, const void *b)
{
    return strcmp((*(struct msg *const *)a)->id, (*(struct msg *const *)b)->id);
}

/* The matching messages, sorted by ID (= by arrival). */
static struct msg **collect(struct qmgr *q, const struct sel *s, size_t *n)
{
    struct msg **v = xcalloc(strmap_count(q->msgs) + 1, sizeof(*v));
    size_t pos = 0, k = 0;
    const char *key;
    void *val;

    if (s->nids && !s->domain && !s->rcpt && !s->sender) {
        for (size_t i = 0; i < s->nids; i++) {
            struct msg *m = msg_find(q, s->ids[i]);
            int dup = 0;
            for (size_t j = 0; j < k && m; j++)
                dup |= v[j] == m;
            if (m && !dup)
                v[k++] = m;
        }
    } else {
        while (strmap_next(q->msgs, &pos, &key, &val))
            if (sel_match(s, val))
                v[k++] = val;
    }
    qsort(v, k, sizeof(*v), by_id);
    *n = k;
    return v;
}

/* ---- formatting ---- */

static void fmt_dur(char *b, size_t len, int64_t us)
{
    long long s = us / 1000000;

    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(b, len, "%llds", s);
    else if (s < 3600)
        snprintf(b, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(b, len, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    else
        snprintf(b, len, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
}

static void fmt_size(char *b, size_t len, uint64_t n)
{
    if (n < 10000)
        snprintf(b, len, "%llu", (unsigned long long)n);
    else if (n < 10000000)
        snprintf(b, len, "%.1fk", (double)n / 1024);
    else
        snprintf(b, len, "%.1fM", (double)n / 1048576);
}

/* When the recipient will next be tried (its own time, or later if its
 * destination is down), 0 if not scheduled. */
static int64_t rcpt_next(const struct msg *m, const struct rcpt *r)
{
    const struct group *g = &m->groups[r->group];
    int64_t t;

    if (r->state != RS_PENDING && r->state != RS_DEFERRED)
        return 0;
    if (m->where == Q_HOLD)
        return 0;
    t = r->next_try_us;
    if (g->d->h.down_until_us > t)
        t = g->d->h.down_until_us;
    return t;
}

static const char *rcpt_state_word(const struct msg *m, const struct rcpt *r)
{
    if ((r->state == RS_PENDING || r->state == RS_DEFERRED) && m->groups[r->group].st == G_ACTIVE)
        return "active";
    return rstate_name((enum rstate)r->state);
}

static void json_num_or_null(struct buf *out, const char *name, int64_t us)
{
    if (us > 0)
        buf_printf(out, ",\"%s\":%.3f", name, (double)us / 1e6);
    else
        buf_printf(out, ",\"%s\":null", name);
}

static void json_rcpt(struct buf *out, const struct msg *m, const struct rcpt *r)
{
    buf_adds(out, "{\"address\":");
    buf_json_str(out, r->addr);
    buf_adds(out, ",\"domain\":");
    buf_json_str(out, m->groups[r->group].d->name);
    buf_printf(out,
               ",\"state\":\"%s\",\"attempts\":%u,\"direct_attempts\":%u,"
               "\"relay_attempts\":%u",
               rcpt_state_word(m, r), (unsigned)(r->direct_attempts + r->relay_attempts),
               r->direct_attempts, r->relay_attempts);
    json_num_or_null(out, "next_try", rcpt_next(m, r));
    json_num_or_null(out, "first_failure", r->first_fail_us);
    if (r->last_text) {
        buf_printf(out, ",\"last_error\":{\"class\":\"%s\",\"step\":\"%s\",\"code\":%u,\"text\":",
                   dlv_class_name((enum dlv_class)r->last_class),
                   dlv_step_name((enum dlv_step)r->last_step), r->last_code);
        buf_json_str(out, r->last_text);
        buf_adds(out, "}");
    } else {
        buf_adds(out, ",\"last_error\":null");
    }
    buf_adds(out, "}");
}

static void json_msg(struct buf *out, const struct msg *m, int64_t now)
{
    buf_adds(out, "{\"id\":");
    buf_json_str(out, m->id);
    buf_printf(out, ",\"queue\":\"%s\",\"arrival\":%.3f,\"age\":%.3f,\"size\":%llu,\"sender\":",
               m->where == Q_HOLD ? "hold" : "queue", (double)m->arrival_us / 1e6,
               (double)(now - m->arrival_us) / 1e6, (unsigned long long)m->size);
    buf_json_str(out, m->sender);
    buf_adds(out, ",\"recipients\":[");
    for (size_t i = 0; i < m->nrcpt; i++) {
        if (i)
            buf_addc(out, ',');
        json_rcpt(out, m, &m->rcpt[i]);
    }
    buf_adds(out, "]}");
}

static void text_rcpt(struct buf *out, const struct msg *m, const struct rcpt *r, int64_t now)
{
    char d[32];
    int64_t nt = rcpt_next(m, r);
    unsigned tries = r->direct_attempts + r->relay_attempts;

    buf_printf(out, "    %-9s <%s>", rcpt_state_word(m, r), r->addr);
    if (tries)
        buf_printf(out, "  tries %u", tries);
    if (nt) {
        if (nt > now) {
            fmt_dur(d, sizeof(d), nt - now);
            buf_printf(out, ", next in %s", d);
        } else {
            buf_adds(out, ", next now");
        }
    }
    if (r->last_text) {
        const char *cn = dlv_class_name((enum dlv_class)r->last_class);
        const char *sn = dlv_step_name((enum dlv_step)r->last_step);
        if (r->last_step == DLV_STEP_NONE || strcmp(cn, sn) == 0)
            buf_printf(out, "\n              last error: %s: %s", cn, r->last_text);
        else
            buf_printf(out, "\n              last error: %s/%s: %s", cn, sn, r->last_text);
    }
    buf_addc(out, '\n');
}

static void text_msg(struct buf *out, const struct msg *m, int64_t now)
{
    char age[32], size[32];

    fmt_dur(age, sizeof(age), now - m->arrival_us);
    fmt_size(size, sizeof(size), m->size);
    buf_printf(out, "%-18s %8s %7s  <%s>%s\n", m->id, age, size, m->sender,
               m->where == Q_HOLD ? "  (held)" : "");
    for (size_t i = 0; i < m->nrcpt; i++)
        text_rcpt(out, m, &m->rcpt[i], now);
}

/* ---- commands ---- */

static int show_queue(struct qmgr *q, const struct sel *s, unsigned flags, struct buf *out)
{
    size_t n, shown = 0, held = 0, nrcpt = 0;
    uint64_t bytes = 0;
    struct msg **v = collect(q, s, &n);
    int64_t now = now_us();
    int truncated = 0;

    if (flags & CTL_F_JSON)
        buf_adds(out, "{\"messages\":[");
    else if (n)
        buf_printf(out, "%-18s %8s %7s  %s\n", "Queue ID", "Age", "Size", "Sender / recipients");
    for (size_t i = 0; i < n; i++) {
        struct msg *m = v[i];
        held += m->where == Q_HOLD;
        nrcpt += m->nrcpt;
        bytes += m->size;
        if (truncated || out->len > OUT_LIMIT) {
            truncated = 1;
            continue;
        }
        if (flags & CTL_F_JSON) {
            if (shown)
                buf_addc(out, ',');
            json_msg(out, m, now);
        } else {
            text_msg(out, m, now);
        }
        shown++;
    }
    if (flags & CTL_F_JSON) {
        buf_printf(out,
                   "],\"count\":%zu,\"held\":%zu,\"recipients\":%zu,\"bytes\":%llu,"
                   "\"truncated\":%s}\n",
                   n, held, nrcpt, (unsigned long long)bytes, truncated ? "true" : "false");
    } else {
        char sz[32];
        fmt_size(sz, sizeof(sz), bytes);
        if (truncated)
            buf_printf(out, "... listing truncated after %zu messages\n", shown);
        if (n == 0)
            buf_adds(out, "queue is empty\n");
        else
            buf_printf(out, "-- %zu message%s (%zu held), %zu recipient%s, %s bytes\n", n,
                       n == 1 ? "" : "s", held, nrcpt, nrcpt == 1 ? "" : "s", sz);
    }
    free(v);
    return 0;
}

static int show_message(struct qmgr *q, const char *id, unsigned flags, struct buf *out)
{
    struct msg *m = qfile_id_valid(id) ? msg_find(q, id) : NULL;
    struct qfile_env env;
    char path[64], *err = NULL;
    int64_t now = now_us();
    int fd, have_env = 0;

    if (m == NULL) {
        buf_printf(out, "%s: not in the queue\n", id);
        return 1;
    }
    fd = open(msg_path(m, path, sizeof(path)), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        have_env = qfile_read(fd, &env, &err) == 0;
        free(err);
        close(fd);
    }
    if (flags & CTL_F_JSON) {
        json_msg(out, m, now);
        out->len--; /* reopen the object */
        if (have_env) {
            buf_adds(out, ",\"client\":");
            buf_json_str(out, env.client_addr);
            buf_adds(out, ",\"helo\":");
            buf_json_str(out, env.helo ? env.helo : "");
            buf_adds(out, ",\"proto\":");
            buf_json_str(out, env.proto);
            buf_adds(out, ",\"tls\":");
            buf_json_str(out, env.tls ? env.tls : "");
            buf_adds(out, ",\"auth\":");
            buf_json_str(out, env.auth ? env.auth : "");
        }
        buf_adds(out, "}\n");
    } else {
        char age[32];
        fmt_dur(age, sizeof(age), now - m->arrival_us);
        buf_printf(out, "id:        %s%s\n", m->id, m->where == Q_HOLD ? " (held)" : "");
        buf_printf(out, "age:       %s\nsize:      %llu bytes\nsender:    <%s>\n", age,
                   (unsigned long long)m->size, m->sender);
        if (have_env) {
            buf_printf(out, "client:    %s port %u, helo %s, %s%s%s\n", env.client_addr,
                       env.client_port, env.helo ? env.helo : "-", env.proto, env.tls ? ", " : "",
                       env.tls ? env.tls : "");
            if (env.auth)
                buf_printf(out, "auth:      %s\n", env.auth);
        }
        buf_printf(out, "recipients (%zu):\n", m->nrcpt);
        for (size_t i = 0; i < m->nrcpt; i++)
            text_rcpt(out, m, &m->rcpt[i], now);
    }
    if (have_env)
        qfile_env_free(&env);
    return 0;
}

static int dest_shown(const struct dest *d)
{
    return d->ngroups > 0 || d->active > 0 || d->h.consecutive > 0 || d->th.nidle > 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(struct dest *const *)a)->name, (*(struct dest *const *)b)->name);
}

static int show_hosts(struct qmgr *q, unsigned flags, struct buf *out)
{
    struct dest **v = xcalloc(strmap_count(q->dests) + 1, sizeof(*v));
    size_t n = 0, pos = 0;
    const char *key;
    void *val;
    int64_t now = now_us();

    while (strmap_next(q->dests, &pos, &key, &val))
        if (dest_shown(val))
            v[n++] = val;
    qsort(v, n, sizeof(*v), by_name);
    if (flags & CTL_F_JSON)
        buf_adds(out, "{\"hosts\":[");
    else if (n)
        buf_printf(out, "%-30s %7s %6s %5s %8s %10s %-7s %4s  %s\n", "Destination", "Queued",
                   "Active", "Fails", "Last fail", "Down for", "State", "Idle", "Last error");
    for (size_t i = 0; i < n && out->len < OUT_LIMIT; i++) {
        const struct dest *d = v[i];
        if (flags & CTL_F_JSON) {
            if (i)
                buf_addc(out, ',');
            buf_adds(out, "{\"destination\":");
            buf_json_str(out, d->name);
            buf_printf(out,
                       ",\"queued\":%zu,\"ready\":%zu,\"active\":%u,"
                       "\"consecutive_failures\":%u",
                       d->ngroups, d->nready, d->active, d->h.consecutive);
            json_num_or_null(out, "last_failure", d->h.last_fail_us);
            json_num_or_null(out, "down_until", d->h.down_until_us > now ? d->h.down_until_us : 0);
            slots_json(q, d, out, now); /* state, throttles */
            buf_printf(out, ",\"sent\":%llu,\"deferred\":%llu,\"failed\":%llu,\"last_error\":",
                       (unsigned long long)d->sent, (unsigned long long)d->deferred,
                       (unsigned long long)d->failed);
            if (d->h.last_error)
                buf_json_str(out, d->h.last_error);
            else
                buf_adds(out, "null");
            buf_adds(out, "}");
        } else {
            char lf[32] = "-", down[32] = "-";
            if (d->h.last_fail_us) {
                fmt_dur(lf, sizeof(lf), now - d->h.last_fail_us);
                strncat(lf, " ago", sizeof(lf) - strlen(lf) - 1);
            }
            if (d->h.down_until_us > now)
                fmt_dur(down, sizeof(down), d->h.down_until_us - now);
            buf_printf(out, "%-30s %7zu %6u %5u %8s %10s %-7s %4u  %s\n", d->name, d->ngroups,
                       d->active, d->h.consecutive, lf, down, slots_state(d, now),
                       slots_idle(q, d, now),
                       d->h.consecutive && d->h.last_error ? d->h.last_error : "");
        }
    }
    if (flags & CTL_F_JSON)
        buf_printf(out, "],\"count\":%zu}\n", n);
    else if (n == 0)
        buf_adds(out, "no destinations with queued mail or recent failures\n");
    free(v);
    return 0;
}

/* show tls [--reset]: the TLS reporting counters (tlsrpt.h); --reset
 * starts a new window after showing them. */
static int show_tls(struct qmgr *q, int argc, char **argv, unsigned flags, struct buf *out)
{
    int64_t now = (int64_t)time(NULL);
    int reset = argc == 3 && strcmp(argv[2], "--reset") == 0;

    if (argc > 3 || (argc == 3 && !reset))
        return usage(out, "show tls takes only --reset");
    if (flags & CTL_F_JSON) {
        const char *me = cfg_myhostname(q->c->cfg);
        char *id = xasprintf("%lld.%s", (long long)now, me);
        tlsrpt_json(q->tlsrpt, me, id, now, out);
        buf_printf(out, "\n");
        free(id);
    } else {
        tlsrpt_text(q->tlsrpt, now, out);
    }
    if (reset)
        tlsrpt_reset(q->tlsrpt, now);
    return 0;
}

static int show_stats(struct qmgr *q, unsigned flags, struct buf *out)
{
    const struct qstats *s = &q->st;
    const struct qmetrics *mt = &q->met;
    const uint64_t *dns = mt->master + STM_DNS;
    struct queue_census qc;
    uint64_t sent_relay = 0;

    queue_census(q, &qc);
    for (size_t i = 0; i < mt->ngw; i++)
        sent_relay += mt->gw[i].n[MET_SENT];
    struct {
        const char *name;
        unsigned long long v;
    } rows[] = {
        {"messages_queued", strmap_count(q->msgs)},
        {"messages_held", qc.hold},
        {"queue_active", qc.active},
        {"queue_deferred", qc.deferred},
        {"queue_pending", qc.pending},
        {"queue_hold", qc.hold},
        {"queue_bounced", qc.bounced},
        {"queue_bad", qc.bad},
        {"queue_oldest_age", (unsigned long long)qc.oldest_s},
        {"deliveries_active", q->nactive},
        {"groups_scheduled", sched_count(&q->sched)},
        {"destinations", strmap_count(q->dests)},
        {"messages_received", s->received},
        {"messages_loaded_at_start", s->loaded},
        {"messages_adopted_at_start", s->adopted},
        {"deliveries", s->deliveries},
        {"recipients_sent", s->rcpt_sent},
        {"recipients_sent_direct", mt->direct[MET_SENT]},
        {"recipients_sent_relay", sent_relay},
        {"recipients_deferred", s->rcpt_deferred},
        {"recipients_failed", s->rcpt_failed},
        {"recipients_expired", s->rcpt_expired},
        {"messages_delivered", s->msg_done},
        {"messages_bounced", s->msg_bounced},
        {"messages_to_bad", s->msg_bad},
        {"messages_corrupt", s->msg_corrupt},
        {"messages_removed", s->msg_removed},
        {"deliveries_rescheduled", s->rescheduled},
        {"db_commits", s->db_commits},
        {"db_writes", s->db_writes},
        {"db_errors", s->db_errors},
        {"notices_sent", s->notices + s->postmaster_notices},
        /* dnsd's counters as master last passed them on (metrics.h) */
        {"dns_lookups", dns[STD_LOOKUPS]},
        {"dns_cache_hits", dns[STD_CACHE_HITS]},
        {"dns_cache_misses", dns[STD_CACHE_MISSES]},
    };

    if (flags & CTL_F_JSON) {
        buf_printf(out, "{\"delivery\":\"%s\",\"uptime\":%.3f", q->paused ? "paused" : "running",
                   (double)(now_us() - q->started_us) / 1e6);
        for (size_t i = 0; i < nitems(rows); i++)
            buf_printf(out, ",\"%s\":%llu", rows[i].name, rows[i].v);
        buf_adds(out, "}\n");
        return 0;
    }
    buf_printf(out, "%-26s %s\n", "delivery", q->paused ? "paused" : "running");
    for (size_t i = 0; i < nitems(rows); i++)
        buf_printf(out, "%-26s %llu\n", rows[i].name, rows[i].v);
    return 0;
}

enum act { ACT_FLUSH, ACT_REMOVE, ACT_HOLD, ACT_RELEASE, ACT_BOUNCE };

static int do_flush(struct qmgr *q, struct msg *m, int64_t now)
{
    int any = 0;

    if (m->where != Q_QUEUE)
        return 0;
    for (size_t i = 0; i < m->nrcpt; i++) {
        struct rcpt *r = &m->rcpt[i];
        if (r->state == RS_DEFERRED || r->state == RS_PENDING) {
            if (r->next_try_us > now)
                r->next_try_us = now;
            dest_clear_down(q, m->groups[r->group].d);
            any = 1;
        }
    }
    for (size_t g = 0; g < m->ngroups; g++)
        group_schedule(q, &m->groups[g]);
    return any;
}

static int act(struct qmgr *q, enum act a, const struct sel *s, unsigned flags, struct buf *out)
{
    static const char *const verbs[] = {"flushed", "removed", "held", "released", "bounced"};
    size_t n, done = 0, busy = 0;
    struct msg **v = collect(q, s, &n);
    int64_t now = now_us();
    int missing = 0;

    for (size_t i = 0; i < s->nids; i++) {
        if (msg_find(q, s->ids[i]))
            continue;
        if (a == ACT_REMOVE && folder_remove(q, s->ids[i]) > 0) {
            done++;
            continue;
        }
        missing++;
        if (!(flags & CTL_F_JSON))
            buf_printf(out, "%s: not in the queue%s\n", s->ids[i],
                       a == ACT_REMOVE ? " nor in bounced/ or bad/" : "");
    }

    for (size_t i = 0; i < n; i++) {
        struct msg *m = v[i];
        int r = 0;
        switch (a) {
        case ACT_FLUSH:
            r = do_flush(q, m, now);
            break;
        case ACT_REMOVE:
            r = msg_remove(q, m);
            break;
        case ACT_HOLD:
            r = msg_hold(q, m);
            break;
        case ACT_RELEASE:
            r = msg_release(q, m);
            break;
        case ACT_BOUNCE:
            r = msg_bounce(q, m, s->domain, &busy) > 0;
            break;
        }
        if (r > 0)
            done++;
    }
    if (a == ACT_FLUSH)
        log_info("flush: %zu message%s scheduled for delivery now", done, done == 1 ? "" : "s");
    if (flags & CTL_F_JSON)
        buf_printf(out, "{\"%s\":%zu,\"matched\":%zu,\"missing\":%d%s}\n", verbs[a], done, n,
                   missing, a == ACT_FLUSH && q->paused ? ",\"delivery\":\"paused\"" : "");
    else
        buf_printf(out, "%s %zu message%s (%zu matched)\n", verbs[a], done, done == 1 ? "" : "s",
                   n);
    if (a == ACT_FLUSH && q->paused && !(flags & CTL_F_JSON))
        buf_adds(out, "delivery is paused: nothing is sent until smtpctl resume delivery\n");
    if (busy && !(flags & CTL_F_JSON))
        buf_printf(out,
                   "%zu recipient%s left alone: a delivery is in flight; bounce again when it "
                   "ends\n",
                   busy, busy == 1 ? "" : "s");
    free(v);
    qmgr_kick(q);
    return missing ? 1 : 0;
}

int qmgr_ctl(struct child *c, int argc, char **argv, unsigned flags, struct buf *out)
{
    struct qmgr *q = c->arg;
    struct sel s;
    int rc;

    if (argc < 1)
        return usage(out, "no command");
    if ((rc = policy_ctl(q, argc, argv, flags, out)) != POLICY_CTL_NOT_MINE)
        return rc;
    if ((rc = folder_ctl(q, argc, argv, flags, out)) != POLICY_CTL_NOT_MINE)
        return rc;
    if (argc == 2 && (strcmp(argv[0], "pause") == 0 || strcmp(argv[0], "resume") == 0) &&
        strcmp(argv[1], "delivery") == 0) {
        char *err = NULL;
        q->paused = argv[0][0] == 'p';
        log_info("delivery %s by the administrator", q->paused ? "paused" : "resumed");
        if (store_paused(q, q->paused, &err) < 0) {
            log_err("cannot record that delivery is %s: %s (it holds until qmgr restarts)",
                    q->paused ? "paused" : "resumed", err);
            free(err);
        }
        if (flags & CTL_F_JSON)
            buf_printf(out, "{\"delivery\":\"%s\"}\n", q->paused ? "paused" : "running");
        else
            buf_printf(out, "delivery %s\n", q->paused ? "paused" : "running");
        qmgr_kick(q);
        return 0;
    }
    if (strcmp(argv[0], "show") == 0 && argc >= 2) {
        if (strcmp(argv[1], "message") == 0)
            return argc == 3 ? show_message(q, argv[2], flags, out)
                             : usage(out, "show message takes one queue ID");
        if (strcmp(argv[1], "hosts") == 0 && argc == 2)
            return show_hosts(q, flags, out);
        if (strcmp(argv[1], "stats") == 0 && argc == 2)
            return show_stats(q, flags, out);
        if (strcmp(argv[1], "tls") == 0)
            return show_tls(q, argc, argv, flags, out);
        if (strcmp(argv[1], "queue") == 0) {
            if (parse_sel(argc, argv, 2, &s, out) != 0) {
                free(s.ids);
                return 2;
            }
            rc = show_queue(q, &s, flags, out);
            free(s.ids);
            return rc;
        }
        return usage(out, "unknown show command");
    }
    enum act a;
    if (strcmp(argv[0], "flush") == 0)
        a = ACT_FLUSH;
    else if (strcmp(argv[0], "remove") == 0)
        a = ACT_REMOVE;
    else if (strcmp(argv[0], "hold") == 0)
        a = ACT_HOLD;
    else if (strcmp(argv[0], "release") == 0)
        a = ACT_RELEASE;
    else if (strcmp(argv[0], "bounce") == 0)
        a = ACT_BOUNCE;
    else
        return usage(out, "unknown command");
    if (parse_sel(argc, argv, 1, &s, out) != 0) {
        free(s.ids);
        return 2;
    }
    if (sel_empty(&s)) {
        if (a != ACT_FLUSH) {
            free(s.ids);
            return usage(out, "say which messages: queue IDs, --domain, --recipient, --sender "
                              "or all");
        }
        s.all = 1;
    }
    rc = act(q, a, &s, flags, out);
    free(s.ids);
    return rc;
}
