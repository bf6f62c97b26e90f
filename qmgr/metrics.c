/*
 * metrics - qmgr's counters, the queue census and the exposition of
 * every metric (metrics.h; the list is docs/metrics.md).
 */
#include "metrics.h"

#include <dirent.h>
#include <string.h>

#include "base/ipc.h"
#include "base/log.h"
#include "mail/dlv_proto.h"
#include "mail/gateways.h"
#include "mail/spool.h"
#include "policy.h"
#include "qmgr.h"
#include "strmap.h"

/* accept-to-delivered, in seconds: from a local sink to a day in the queue */
static const double latency_bounds[METRICS_LATENCY_BUCKETS] = {
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400};

static const char *const status_names[MET__COUNT] = {"sent", "deferred", "bounced"};

void metrics_init(struct qmgr *q)
{
    memset(&q->met, 0, sizeof(q->met));
    prom_hist_init(&q->met.latency, latency_bounds, METRICS_LATENCY_BUCKETS);
}

/* ---- counting ---- */

static int gw_slot(struct qmetrics *mt, const char *name)
{
    for (size_t i = 0; i < mt->ngw; i++)
        if (strcmp(mt->gw[i].name, name) == 0)
            return (int)i;
    if (mt->ngw == nitems(mt->gw))
        return -1;
    strlcpy_p(mt->gw[mt->ngw].name, name, METRICS_GW_NAME);
    return (int)mt->ngw++;
}

static int configured(struct qmgr *q, const char *label)
{
    const struct gateways *gws = routing_gateways(q);

    for (size_t i = 0; gws && i < gws->n; i++)
        if (strcmp(gws->gw[i].name, label) == 0)
            return 1;
    return 0;
}

/*
 * The label of a relay delivery's gateway: the name relay reported when
 * it is one of relay_gateways (so the label set stays the configuration's,
 * whatever a result says), "none" when no gateway answered, "other" once
 * METRICS_GW_MAX names were seen.
 */
int metrics_gateway(struct qmgr *q, const char *label)
{
    struct qmetrics *mt = &q->met;

    if (label == NULL || *label == '\0')
        return gw_slot(mt, "none");
    if (!configured(q, label) || strlen(label) >= METRICS_GW_NAME)
        return gw_slot(mt, "other");
    for (size_t i = 0; i < mt->ngw; i++)
        if (strcmp(mt->gw[i].name, label) == 0)
            return (int)i;
    /* "none" and "other" always fit: nitems(gw) is METRICS_GW_MAX + 2 */
    return gw_slot(mt, mt->ngw < METRICS_GW_MAX ? label : "other");
}

void metrics_rcpt(struct qmgr *q, enum met_status st, int phase, int gw)
{
    if (phase == DLV_PHASE_RELAY && gw >= 0 && (size_t)gw < q->met.ngw)
        q->met.gw[gw].n[st]++;
    else
        q->met.direct[st]++;
}

void metrics_sent(struct qmgr *q, const struct msg *m, int64_t now)
{
    int64_t us = now - m->arrival_us;

    prom_hist_observe(&q->met.latency, us > 0 ? (double)us / 1e6 : 0);
}

int metrics_take_smtpd(struct qmgr *q, const struct ipc_msg *im)
{
    if (stats_decode(im->body, im->len, q->met.smtpd, STS__COUNT) < 0)
        return -1;
    q->met.have_smtpd = 1;
    return 0;
}

int metrics_take_master(struct qmgr *q, const struct ipc_msg *im)
{
    if (stats_decode(im->body, im->len, q->met.master, STM__COUNT) < 0)
        return -1;
    q->met.have_master = 1;
    return 0;
}

/* ---- the queue by state ---- */

static uint64_t count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

void queue_census(struct qmgr *q, struct queue_census *c)
{
    static int64_t dirs_at;
    static uint64_t bounced, bad;
    int64_t now = now_us(), mono = mono_us(), oldest = 0;
    size_t pos = 0;
    const char *key;
    void *val;

    memset(c, 0, sizeof(*c));
    while (strmap_next(q->msgs, &pos, &key, &val)) {
        const struct msg *m = val;
        int deferred = 0;
        for (size_t i = 0; i < m->nrcpt; i++) {
            deferred |= m->rcpt[i].state == RS_DEFERRED;
            c->recipients += m->rcpt[i].state == RS_DEFERRED || m->rcpt[i].state == RS_PENDING;
        }
        if (m->where == Q_HOLD)
            c->hold++;
        else if (m->active > 0)
            c->active++;
        else if (deferred)
            c->deferred++;
        else
            c->pending++;
        if (oldest == 0 || m->arrival_us < oldest)
            oldest = m->arrival_us;
    }
    if (dirs_at == 0 || mono - dirs_at >= 1000000) {
        bounced = count_dir(SPOOL_BOUNCED);
        bad = count_dir(SPOOL_BAD);
        dirs_at = mono;
    }
    c->bounced = bounced;
    c->bad = bad;
    c->oldest_s = oldest && now > oldest ? (double)(now - oldest) / 1e6 : 0;
}

/* ---- exposition ---- */

/* A counter family with one label over a name table, from a snapshot. */
static void labelled(struct buf *out, const char *name, enum prom_type type, const char *help,
                     const char *key, const char *const *names, const uint64_t *v, size_t n)
{
    struct buf lb;

    buf_init(&lb);
    prom_family(out, name, type, help);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&lb);
        prom_label(&lb, key, names[i]);
        prom_count(out, name, lb.data, v[i]);
    }
    buf_free(&lb);
}

static void render_deliveries(struct qmgr *q, struct buf *out)
{
    const struct qmetrics *mt = &q->met;
    struct buf lb;

    buf_init(&lb);
    prom_family(out, "postern_deliveries_total", PROM_COUNTER,
                "Recipients' delivery outcomes: one per recipient per attempt (bounced: failed "
                "for good), by phase and, for the relay phase, gateway.");
    for (int st = 0; st < MET__COUNT; st++) {
        buf_reset(&lb);
        prom_label(&lb, "status", status_names[st]);
        prom_label(&lb, "phase", "direct");
        prom_count(out, "postern_deliveries_total", lb.data, mt->direct[st]);
        for (size_t g = 0; g < mt->ngw; g++) {
            buf_reset(&lb);
            prom_label(&lb, "status", status_names[st]);
            prom_label(&lb, "phase", "relay");
            prom_label(&lb, "gateway", mt->gw[g].name);
            prom_count(out, "postern_deliveries_total", lb.data, mt->gw[g].n[st]);
        }
    }
    buf_free(&lb);
    prom_family(out, "postern_delivery_latency_seconds", PROM_HISTOGRAM,
                "Time from acceptance to delivery of each recipient sent.");
    prom_hist_write(out, "postern_delivery_latency_seconds", "", &mt->latency);
}

static void render_queue(struct qmgr *q, struct buf *out)
{
    static const char *const states[] = {"active", "deferred", "pending", "hold", "bounced", "bad"};
    struct queue_census c;

    queue_census(q, &c);
    const uint64_t v[] = {c.active, c.deferred, c.pending, c.hold, c.bounced, c.bad};
    labelled(out, "postern_queue_messages", PROM_GAUGE,
             "Messages by state: active (a delivery in flight), deferred, pending (not tried "
             "yet), hold, and the files kept in bounced/ and bad/.",
             "state", states, v, nitems(v));
    prom_single(out, "postern_queue_recipients", PROM_GAUGE,
                "Recipients still to deliver in queue/ and hold/.", (double)c.recipients);
    prom_single(out, "postern_queue_oldest_message_age_seconds", PROM_GAUGE,
                "Age of the oldest message in queue/ or hold/ (0: none).", c.oldest_s);
    prom_single(out, "postern_deliveries_active", PROM_GAUGE, "Deliveries in flight.",
                (double)q->nactive);
    prom_single(out, "postern_delivery_paused", PROM_GAUGE,
                "1 while delivery is paused (smtpctl pause delivery).", q->paused ? 1 : 0);
    prom_single(out, "postern_messages_delivered_total", PROM_COUNTER,
                "Messages whose every recipient was sent.", (double)q->st.msg_done);
    prom_single(out, "postern_messages_bounced_total", PROM_COUNTER,
                "Messages moved to bounced/ (a recipient failed, its notice sent).",
                (double)q->st.msg_bounced);
    prom_single(out, "postern_messages_bad_total", PROM_COUNTER,
                "Messages moved to bad/ (neither delivered nor bounced).", (double)q->st.msg_bad);
    static const char *const to[] = {"sender", "postmaster"};
    const uint64_t dsn[] = {q->st.notices, q->st.postmaster_notices};
    labelled(out, "postern_dsn_sent_total", PROM_COUNTER,
             "Delivery status notifications (bounces, delay and success notices) qmgr queued.",
             "to", to, dsn, nitems(dsn));
}

static void render_smtpd(const struct qmetrics *mt, struct buf *out)
{
    const uint64_t *v = mt->smtpd;

    prom_single(out, "postern_messages_accepted_total", PROM_COUNTER,
                "Messages smtpd queued (SMTP and the maildrop).", (double)v[STS_ACCEPTED]);
    labelled(out, "postern_messages_rejected_total", PROM_COUNTER,
             "Refusals by smtpd, by reason (relay_denied counts recipients, the others "
             "messages or MAIL commands).",
             "reason", stats_reject_names, v + STS_REJECTED, REJ__COUNT);
    labelled(out, "postern_smtpd_connections_refused_total", PROM_COUNTER,
             "Connections answered 421 before the greeting, by reason.", "reason",
             stats_refuse_names, v + STS_REFUSED, REF__COUNT);
    prom_single(out, "postern_smtpd_sessions", PROM_GAUGE, "SMTP sessions open now.",
                (double)v[STS_SESSIONS_NOW]);
    prom_single(out, "postern_smtpd_sessions_total", PROM_COUNTER, "SMTP sessions accepted.",
                (double)v[STS_SESSIONS]);
    labelled(out, "postern_smtpd_tls_sessions_total", PROM_COUNTER,
             "STARTTLS handshakes completed, by protocol version.", "version", stats_tls_names,
             v + STS_TLS, TLSV__COUNT);
    prom_single(out, "postern_smtpd_tls_failures_total", PROM_COUNTER,
                "STARTTLS handshakes that failed.", (double)v[STS_TLS_FAILED]);
    prom_single(out, "postern_smtpd_received_bytes_total", PROM_COUNTER,
                "Message bytes smtpd queued.", (double)v[STS_BYTES]);
}

static void render_master(const struct qmetrics *mt, struct buf *out)
{
    const uint64_t *v = mt->master, *d = mt->master + STM_DNS;

    labelled(out, "postern_child_restarts_total", PROM_COUNTER,
             "Times master restarted a child process after it died or hung.", "process",
             stats_proc_names, v + STM_RESTARTS, STP__COUNT);
    prom_single(out, "postern_dns_lookups_total", PROM_COUNTER,
                "MX and host lookups deliver and relay asked dnsd for.", (double)d[STD_LOOKUPS]);
    prom_single(out, "postern_dns_cache_hits_total", PROM_COUNTER,
                "DNS questions answered from dnsd's cache.", (double)d[STD_CACHE_HITS]);
    prom_single(out, "postern_dns_cache_misses_total", PROM_COUNTER,
                "DNS questions not in dnsd's cache.", (double)d[STD_CACHE_MISSES]);
    prom_single(out, "postern_dns_queries_total", PROM_COUNTER, "Queries dnsd sent to DNS servers.",
                (double)d[STD_QUERIES]);
    prom_single(out, "postern_dns_timeouts_total", PROM_COUNTER, "DNS queries that timed out.",
                (double)d[STD_TIMEOUTS]);
    prom_single(out, "postern_dns_cache_entries", PROM_GAUGE, "Answers in dnsd's cache.",
                (double)d[STD_CACHE_ENTRIES]);
}

void metrics_render(struct qmgr *q, struct buf *out)
{
    render_smtpd(&q->met, out);
    render_deliveries(q, out);
    render_queue(q, out);
    render_master(&q->met, out);
    prom_single(out, "postern_qmgr_start_time_seconds", PROM_GAUGE,
                "When qmgr started (Unix time): its counters count from there.",
                (double)(q->started_us / 1000000));
}
