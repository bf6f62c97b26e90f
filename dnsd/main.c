/*
 * dnsd - Postern's DNS resolver process.
 *
 * deliver and relay ask it for MX sets (IMSG_DNS_MX_REQ) and host
 * addresses (IMSG_DNS_HOST_REQ) and get one IMSG_DNS_REP each, with the
 * request's id (bodies in common/mail/dns_proto.h). No other process touches
 * DNS. It reads /etc/resolv.conf before it is chrooted into an empty
 * directory, then runs one libevent loop: dns_lookup builds the answers
 * from dns_query's cached, coalesced upstream questions.
 *
 * DNSSEC (main.cf `dnssec`, docs/dns.md): with `validate` the trust
 * anchors of dnssec_trust_anchor are read at start, before the chroot; a
 * file that cannot be read or parsed stops dnsd with the file's name.
 * `dnssec` and `dnssec_trust_anchor` are restart-only parameters (master
 * keeps them over a reload and warns): the file cannot be read again from
 * inside the chroot. With `resolver` a warning names every dns_servers
 * entry that is not on loopback.
 *
 * Control commands (smtpctl): "show dns" (cache entries with their DNSSEC
 * status, counters), "dns lookup [--dane] [--port N] DOMAIN [OVERRIDE...]"
 * (an MX set, asked live and answered when it completes, without blocking
 * the loop; --dane asks for TLSA records as deliver does, for port N or
 * 25; exit 1 when the lookup failed), "dns host [--dane] [--port N] NAME",
 * "dns flush", and "dns txt NAME"
 * (the TXT records, one a line, for smtpctl dkim check: asked on an
 * engine of its own without a cache, so a record just published is seen
 * and nothing about it stays in the cache deliver uses).
 *
 * MTA-STS (sts.h): an MX request with DNS_Q_STS also gets the domain's
 * policy, found here because dnsd already makes the lookups the policy
 * fetch needs and holds nothing worth stealing (sts.h says more). So
 * dnsd's chroot is its own directory, queue_directory/dnsd/ (mail_owner,
 * 0700; CHILD_ROOT_OWN), which holds only the policy cache sts.db; the
 * CA bundle is read before the chroot. Control: "show sts", "sts flush
 * [DOMAIN]", "sts lookup DOMAIN" (a lookup that fetches the policy
 * anew, answered when it completes).
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery/dlv_engine.h"
#include "delivery/tls_show.h"
#include "mail/child.h"
#include "dns_cache.h"
#include "dns_lookup.h"
#include "mail/dns_proto.h"
#include "dns_query.h"
#include "dnssec.h"
#include "base/log.h"
#include "mail/proto.h"
#include "mail/stats.h"
#include "resolv.h"
#include "sts.h"
#include "sts_cache.h"
#include "sts_fetch.h"
#include "sts_join.h"

#define RESOLV_CONF "/etc/resolv.conf"
#define STS_DB "sts.db" /* in dnsd's own root (CHILD_ROOT_OWN) */
#define EXPIRE_EVERY_S 60
#define STATS_EVERY_S 1

struct peer {
    const char *name;
    struct ipc_chan *ch;
    uint32_t gen;
};

struct req {
    struct peer *p;
    uint32_t gen;
    uint32_t id;
    int mx;
};

static struct {
    struct child *c;
    struct dnscache *cache;
    struct dnsq_stats st;
    struct dnsq_engine *eng;
    struct dnsq_engine *txt_eng;    /* dns txt: the same servers, no cache */
    struct dnssec_anchors *anchors; /* dnssec = validate: read at start */
    struct resolv_conf file_rc;
    struct dnsq_conf conf;
    struct peer peers[2];
    struct event *expire;
    struct event *stats; /* the counters to master, for qmgr's metrics */
    SSL_CTX *sts_ctx;    /* MTA-STS fetches, made before the chroot */
    struct sts_cache *sts_cache;
    struct sts *sts;
    uint64_t requests;
} D = {.peers = {{.name = "deliver"}, {.name = "relay"}}};

/* ---- configuration ---- */

static enum dnsq_dnssec dnssec_mode(const struct config *cfg)
{
    const char *m = cfg_enum(cfg, P_dnssec);

    if (strcmp(m, "validate") == 0)
        return DNSQ_SEC_VALIDATE;
    if (strcmp(m, "resolver") == 0)
        return DNSQ_SEC_RESOLVER;
    return DNSQ_SEC_OFF;
}

static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return 0;
}

static int build_conf(const struct config *cfg, struct dnsq_conf *conf, char **err)
{
    char *const *list = cfg_list(cfg, P_dns_servers);

    memset(conf, 0, sizeof(*conf));
    resolv_init(&conf->rc);
    conf->timeout_ms = (int)cfg_num(cfg, P_dns_timeout) * 1000;
    conf->attempts = (int)cfg_num(cfg, P_dns_attempts);
    conf->ttl_min = (uint32_t)cfg_num(cfg, P_dns_ttl_min);
    conf->ttl_max = (uint32_t)cfg_num(cfg, P_dns_ttl_max);
    conf->dnssec = dnssec_mode(cfg);
    conf->anchors = D.anchors;
    if (list && list[0])
        return resolv_parse_list(list, &conf->rc, err);
    conf->rc = D.file_rc;
    if (D.file_rc.timeout > 0 && !cfg->set[P_dns_timeout])
        conf->timeout_ms = D.file_rc.timeout * 1000;
    if (D.file_rc.attempts > 0 && !cfg->set[P_dns_attempts])
        conf->attempts = D.file_rc.attempts;
    if (conf->rc.n == 0) {
        struct sockaddr_storage ss;
        log_warn("no nameserver in %s and dns_servers is empty: using 127.0.0.1", RESOLV_CONF);
        dns_parse_addr("127.0.0.1", &ss);
        resolv_server_set(&conf->rc.servers[conf->rc.n++], &ss);
    }
    return 0;
}

static void log_conf(const struct dnsq_conf *conf)
{
    struct buf b;

    buf_init(&b);
    for (int i = 0; i < conf->rc.n; i++)
        buf_printf(&b, "%s%s", i ? " " : "", conf->rc.servers[i].text);
    log_info("dns servers %s, timeout %dms, attempts %d, cache %zu entries, dnssec %s", b.data,
             conf->timeout_ms, conf->attempts, dnscache_max(D.cache),
             conf->dnssec == DNSQ_SEC_VALIDATE   ? "validate"
             : conf->dnssec == DNSQ_SEC_RESOLVER ? "resolver"
                                                 : "off");
    buf_free(&b);
    for (int i = 0; conf->dnssec == DNSQ_SEC_RESOLVER && i < conf->rc.n; i++)
        if (!is_loopback(&conf->rc.servers[i].ss))
            log_warn("dnssec = resolver trusts the AD bit of %s, which is not on loopback: an "
                     "attacker on the path can set it (use a validating resolver on 127.0.0.1)",
                     conf->rc.servers[i].text);
}

/* dns txt (dkim check) needs no DNSSEC: its engine never validates. */
static void configure_txt_engine(void)
{
    struct dnsq_conf tc = D.conf;

    tc.dnssec = DNSQ_SEC_OFF;
    tc.anchors = NULL;
    dnsq_engine_configure(D.txt_eng, &tc);
}

static void sts_conf_from(const struct config *cfg, struct sts_conf *sc)
{
    sc->enabled = cfg_num(cfg, P_mta_sts) != 0;
    sc->port = (uint16_t)cfg_num(cfg, P_mta_sts_port);
    sc->timeout_ms = (int)cfg_num(cfg, P_mta_sts_fetch_timeout) * 1000;
}

static int on_reload(struct child *c, char **err)
{
    struct sts_conf sc;

    struct dnsq_conf conf;

    if (build_conf(c->cfg, &conf, err) < 0)
        return -1;
    D.conf = conf;
    dnsq_engine_configure(D.eng, &D.conf);
    configure_txt_engine();
    dnscache_set_max(D.cache, (size_t)cfg_num(c->cfg, P_dns_cache_size));
    sts_conf_from(c->cfg, &sc);
    sts_configure(D.sts, &sc); /* mta_sts_ca_file: read at start only (before the chroot) */
    log_conf(&D.conf);
    return 0;
}

/* ---- requests from deliver and relay ---- */

static void on_result(const struct dns_result *r, void *arg)
{
    struct req *q = arg;
    struct ipc_w w;

    if (r->err != DNS_OK)
        log_info("dns: %s %s: %s: %s", q->mx ? "MX" : "host", r->name, outcome_name(r->err),
                 r->reason);
    else
        log_detail("dns: %s %s: %zu host(s)%s", q->mx ? "MX" : "host", r->name, r->nhosts,
                   (r->flags & DNS_R_IMPLICIT) ? " (implicit MX)" : "");
    if (q->p->ch && q->p->gen == q->gen) {
        ipc_w_init(&w);
        dns_rep_encode(&w, r);
        if (ipc_send(q->p->ch, IMSG_DNS_REP, q->id, -1, w.p, w.len) < 0)
            log_warn("dns: cannot answer %s request %u", q->p->name, q->id);
        ipc_w_free(&w);
    }
    free(q);
}

static void reply_malformed(struct peer *p, uint32_t id)
{
    struct dns_result r;
    struct ipc_w w;

    log_warn("dns: malformed request %u from %s", id, p->name);
    dns_result_init(&r, "");
    dns_result_set_err(&r, DNS_PERM, "malformed request to dnsd");
    ipc_w_init(&w);
    dns_rep_encode(&w, &r);
    ipc_send(p->ch, IMSG_DNS_REP, id, -1, w.p, w.len);
    ipc_w_free(&w);
    dns_result_free(&r);
}

static struct req *req_new(struct peer *p, uint32_t id, int mx)
{
    struct req *q = xcalloc(1, sizeof(*q));
    q->p = p;
    q->gen = p->gen;
    q->id = id;
    q->mx = mx;
    D.requests++;
    return q;
}

static void on_peer_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    struct peer *p = arg;
    const char *name, *override[DNS_MAX_OVERRIDE];
    size_t n = 0;
    unsigned flags = 0;
    uint16_t port = 0;

    if (m->fd >= 0) {
        log_warn("dns: unexpected fd from %s", p->name);
        close(m->fd);
    }
    switch (m->type) {
    case IMSG_DNS_MX_REQ:
        if (dns_mx_req_decode(m->body, m->len, &name, override, DNS_MAX_OVERRIDE, &n, &flags,
                              &port) < 0) {
            reply_malformed(p, m->id);
            break;
        }
        lookup_mx(D.eng, name, override, n, flags, port, on_result, req_new(p, m->id, 1));
        break;
    case IMSG_DNS_HOST_REQ:
        if (dns_host_req_decode(m->body, m->len, &name, &flags, &port) < 0) {
            reply_malformed(p, m->id);
            break;
        }
        lookup_host(D.eng, name, flags, port, on_result, req_new(p, m->id, 0));
        break;
    default:
        log_warn("dns: unexpected message type %u from %s", m->type, p->name);
    }
}

static void on_peer_close(struct ipc_chan *ch, void *arg)
{
    struct peer *p = arg;

    log_info("channel to %s closed", p->name);
    child_peer_closed(D.c, ch);
    ipc_chan_free(ch);
    p->ch = NULL;
    p->gen++;
}

static void adopt_peer(struct child *c, const char *name, int fd)
{
    for (size_t i = 0; i < nitems(D.peers); i++) {
        struct peer *p = &D.peers[i];
        if (strcmp(p->name, name) != 0)
            continue;
        if (p->ch)
            ipc_chan_free(p->ch);
        p->gen++; /* answers for the old channel are dropped */
        p->ch = ipc_chan_new(c->base, fd, p->name, &proto_client_to_dnsd, on_peer_msg,
                             on_peer_close, p);
        return;
    }
    log_warn("dns: no use for a channel to %s", name);
    close(fd);
}

/* ---- control ---- */

static int has_json(int argc, char **argv, unsigned flags)
{
    if (flags & CTL_F_JSON)
        return 1;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0)
            return 1;
    return 0;
}

struct walk {
    struct buf *out;
    int json, n;
};

static void walk_entry(const char *key, const char *summary, uint32_t ttl, const void *data,
                       size_t len, void *arg)
{
    struct walk *w = arg;
    const char *slash = strrchr(key, '/');
    char name[DNS_MAX_NAME + 1];
    const char *sec = dnssec_status_name((unsigned)dnsq_entry_sec(data, len));

    snprintf(name, sizeof(name), "%.*s", slash ? (int)(slash - key) : (int)strlen(key), key);
    if (w->json) {
        buf_adds(w->out, w->n ? ",{\"name\":" : "{\"name\":");
        buf_json_str(w->out, name);
        buf_adds(w->out, ",\"type\":");
        buf_json_str(w->out, slash ? slash + 1 : "");
        buf_printf(w->out, ",\"ttl\":%u,\"sec\":\"%s\",\"data\":", ttl, sec);
        buf_json_str(w->out, summary);
        buf_addc(w->out, '}');
    } else {
        buf_printf(w->out, "%-40s %-5s %7us  %s  [%s]\n", name, slash ? slash + 1 : "", ttl,
                   summary, sec);
    }
    w->n++;
}

static void ctl_show(struct buf *out, int json)
{
    const struct dnscache_stats *cs = dnscache_stats(D.cache);
    int64_t now = mono_us();
    struct walk w = {out, json, 0};

    dnscache_expire(D.cache, now);
    if (json) {
        buf_printf(out,
                   "{\"size\":%zu,\"max\":%zu,\"hits\":%llu,\"misses\":%llu,\"queries\":%llu,"
                   "\"coalesced\":%llu,\"timeouts\":%llu,\"ignored\":%llu,\"failures\":%llu,"
                   "\"requests\":%llu,\"inflight\":%zu,\"servers\":[",
                   dnscache_count(D.cache), dnscache_max(D.cache), (unsigned long long)cs->hits,
                   (unsigned long long)cs->misses, (unsigned long long)D.st.sent,
                   (unsigned long long)D.st.coalesced, (unsigned long long)D.st.timeouts,
                   (unsigned long long)D.st.ignored, (unsigned long long)D.st.failures,
                   (unsigned long long)D.requests, dnsq_inflight(D.eng));
        for (int i = 0; i < D.conf.rc.n; i++) {
            if (i)
                buf_addc(out, ',');
            buf_json_str(out, D.conf.rc.servers[i].text);
        }
        buf_adds(out, "],\"entries\":[");
        dnscache_walk(D.cache, now, walk_entry, &w);
        buf_adds(out, "]}\n");
        return;
    }
    buf_printf(out,
               "cache: %zu of %zu entries, %llu hits, %llu misses; upstream: %llu queries, "
               "%llu coalesced, %llu timeouts, %llu ignored answers, %zu in flight\n",
               dnscache_count(D.cache), dnscache_max(D.cache), (unsigned long long)cs->hits,
               (unsigned long long)cs->misses, (unsigned long long)D.st.sent,
               (unsigned long long)D.st.coalesced, (unsigned long long)D.st.timeouts,
               (unsigned long long)D.st.ignored, dnsq_inflight(D.eng));
    dnscache_walk(D.cache, now, walk_entry, &w);
}

/* A live lookup asked by smtpctl, answered when the lookup completes. */
struct ctl_pending {
    struct child *c;
    uint32_t token;
    int json;
    int tls;    /* --tls MODE: the TLS plan under that mode too (tls_show.h); -1 */
    int listed; /* a host lookup: the plan of a listed host (no MTA-STS) */
};

static void ctl_done(const struct dns_result *r, void *arg)
{
    struct ctl_pending *p = arg;
    struct buf out;

    buf_init(&out);
    if (p->json) {
        dns_result_json(r, &out);
        if (p->tls >= 0 && out.len > 0 && out.data[out.len - 1] == '}') {
            out.data[--out.len] = '\0'; /* the TLS plan goes inside the object */
            buf_adds(&out, ",\"tls\":");
            tls_show_json(r, (enum tls_mode)p->tls, p->listed, &out);
            buf_addc(&out, '}');
        }
        buf_addc(&out, '\n');
    } else {
        dns_result_format(r, &out);
        if (p->tls >= 0 && r->err == DNS_OK)
            tls_show_text(r, (enum tls_mode)p->tls, p->listed, &out);
    }
    child_ctl_reply(p->c, p->token, r->err == DNS_OK ? 0 : 1, out.data);
    buf_free(&out);
    free(p);
}

/*
 * "dns lookup" / "dns host": the lookup runs on dnsd's own engine (cache,
 * coalescing and counters shared with deliver's and relay's lookups) and
 * the answer goes back when it completes, so dnsd keeps serving meanwhile.
 */
static int ctl_lookup(struct child *c, int mx, const char *name, const char *const *override,
                      size_t n, unsigned flags, uint16_t port, int tls, int json)
{
    struct ctl_pending *p = xmalloc(sizeof(*p));

    p->c = c;
    p->token = child_ctl_defer(c);
    p->json = json;
    p->tls = tls;
    p->listed = !mx;
    if (tls >= 0 && dlv_tls_wants_dane((enum tls_mode)tls, !mx))
        flags |= DNS_Q_DANE;
    if (mx)
        lookup_mx(D.eng, name, override, n, flags, port, ctl_done, p);
    else
        lookup_host(D.eng, name, flags, port, ctl_done, p);
    return CHILD_CTL_LATER;
}

/* "--dane", "--sts", "--tls MODE" and "--port N" before the name: 0, or
 * -1 for a bad option. --tls: the TLS plan under MODE after the answer
 * (with the TLSA lookups MODE needs); --sts: the MTA-STS policy too. */
static int lookup_opts(const char **args, int na, int *i, unsigned *flags, uint16_t *port, int *tls)
{
    for (; *i < na && strncmp(args[*i], "--", 2) == 0; (*i)++) {
        if (strcmp(args[*i], "--dane") == 0) {
            *flags |= DNS_Q_DANE;
        } else if (strcmp(args[*i], "--sts") == 0) {
            *flags |= DNS_Q_STS;
        } else if (strcmp(args[*i], "--tls") == 0 && *i + 1 < na) {
            if ((*tls = tls_mode_parse(args[++*i])) < 0)
                return -1;
        } else if (strcmp(args[*i], "--port") == 0 && *i + 1 < na) {
            char *end;
            long v = strtol(args[++*i], &end, 10);
            if (*end || v < 1 || v > 65535)
                return -1;
            *port = (uint16_t)v;
        } else {
            return -1;
        }
    }
    return 0;
}

static void txt_done(const struct txt_result *r, void *arg)
{
    struct ctl_pending *p = arg;
    struct buf out;

    buf_init(&out);
    if (p->json) {
        buf_adds(&out, "{\"name\":");
        buf_json_str(&out, r->name);
        buf_adds(&out, ",\"final\":");
        buf_json_str(&out, r->final);
        buf_printf(&out, ",\"status\":\"%s\",\"cached\":false,\"records\":[",
                   txt_status_name(r->status));
        for (size_t i = 0; i < r->n; i++) {
            if (i)
                buf_addc(&out, ',');
            buf_json_str(&out, r->txt[i]);
        }
        buf_adds(&out, "]");
        if (r->why) {
            buf_adds(&out, ",\"why\":");
            buf_json_str(&out, r->why);
        }
        buf_adds(&out, "}\n");
    } else if (r->status == TXT_FOUND) {
        for (size_t i = 0; i < r->n; i++)
            buf_printf(&out, "%s\n", r->txt[i]);
    } else if (r->status == TXT_NODATA) {
        buf_printf(&out, "%s: no TXT record (the name exists)\n", r->final);
    } else if (r->status == TXT_NXDOMAIN) {
        buf_printf(&out, "%s: no such name (NXDOMAIN)\n", r->final);
    } else {
        buf_printf(&out, "%s: %s\n", r->name, r->why);
    }
    log_detail("dns: TXT %s: %s, %zu record(s)", r->name, txt_status_name(r->status), r->n);
    child_ctl_reply(p->c, p->token, r->status == TXT_FOUND ? 0 : 1, out.data);
    buf_free(&out);
    free(p);
}

/* "dns txt": live, on the engine without a cache; answered when it completes. */
static int ctl_txt(struct child *c, const char *name, int json)
{
    struct ctl_pending *p = xmalloc(sizeof(*p));

    p->c = c;
    p->token = child_ctl_defer(c);
    p->json = json;
    D.requests++;
    lookup_txt(D.txt_eng, name, txt_done, p);
    return CHILD_CTL_LATER;
}

static void sts_ctl_done(const struct sts_answer *a, void *arg)
{
    struct ctl_pending *p = arg;
    struct dns_result r;
    struct buf out;

    dns_result_init(&r, a->domain);
    sts_answer_to_result(a, &r);
    buf_init(&out);
    if (p->json) {
        buf_adds(&out, "{\"domain\":");
        buf_json_str(&out, a->domain);
        buf_printf(&out,
                   ",\"state\":\"%s\",\"mode\":\"%s\",\"id\":", dns_sts_state_name(r.sts.state),
                   dns_sts_mode_name(r.sts.mode));
        buf_json_str(&out, r.sts.id);
        buf_printf(&out, ",\"max_age\":%u,\"reason\":", r.sts.max_age);
        buf_json_str(&out, r.sts.reason);
        buf_adds(&out, ",\"mx\":[");
        for (size_t i = 0; i < r.sts.nmx; i++) {
            if (i)
                buf_addc(&out, ',');
            buf_json_str(&out, r.sts.mx[i]);
        }
        buf_adds(&out, "]}\n");
    } else {
        buf_printf(&out, "%s: %s", a->domain, dns_sts_state_name(r.sts.state));
        if (r.sts.state == DNS_STS_POLICY) {
            buf_printf(&out, " mode=%s id=%s max_age=%u mx=", dns_sts_mode_name(r.sts.mode),
                       r.sts.id, r.sts.max_age);
            for (size_t i = 0; i < r.sts.nmx; i++)
                buf_printf(&out, "%s%s", i ? "," : "", r.sts.mx[i]);
        }
        if (r.sts.reason[0])
            buf_printf(&out, " (%s)", r.sts.reason);
        buf_addc(&out, '\n');
    }
    child_ctl_reply(p->c, p->token, r.sts.state == DNS_STS_POLICY ? 0 : 1, out.data);
    buf_free(&out);
    dns_result_free(&r);
    free(p);
}

/* "sts lookup": fetched anew whatever the cache holds; answered when done. */
static int ctl_sts_lookup(struct child *c, const char *domain, int json)
{
    struct ctl_pending *p = xmalloc(sizeof(*p));

    p->c = c;
    p->token = child_ctl_defer(c);
    p->json = json;
    sts_lookup(D.sts, domain, STS_FORCE, sts_ctl_done, p);
    return CHILD_CTL_LATER;
}

/* "show sts", "sts flush [DOMAIN]", "sts lookup DOMAIN"; -1: not ours. */
static int ctl_sts(struct child *c, int na, const char *const *args, int json, struct buf *out)
{
    if (na == 2 && strcmp(args[0], "show") == 0 && strcmp(args[1], "sts") == 0) {
        sts_show(D.sts, out, json);
        return 0;
    }
    if (na < 2 || strcmp(args[0], "sts") != 0)
        return -1;
    if (na == 3 && strcmp(args[1], "lookup") == 0)
        return ctl_sts_lookup(c, args[2], json);
    if ((na == 2 || na == 3) && strcmp(args[1], "flush") == 0) {
        size_t n = sts_flush(D.sts, na == 3 ? args[2] : NULL);
        log_info("MTA-STS cache flushed%s%s (%zu policies)", na == 3 ? ": " : "",
                 na == 3 ? args[2] : "", n);
        if (json)
            buf_printf(out, "{\"flushed\":%zu}\n", n);
        else
            buf_printf(out, "flushed %zu policies\n", n);
        return 0;
    }
    return -1;
}

static int on_ctl(struct child *c, int argc, char **argv, unsigned flags, struct buf *out)
{
    int rc;
    int json = has_json(argc, argv, flags);
    const char *args[DNS_MAX_OVERRIDE + 4];
    int na = 0;

    for (int i = 0; i < argc && na < (int)nitems(args); i++)
        if (strcmp(argv[i], "--json") != 0)
            args[na++] = argv[i];
    if ((rc = ctl_sts(c, na, args, json, out)) != -1)
        return rc;
    if (na >= 2 && strcmp(args[0], "show") == 0 && strcmp(args[1], "dns") == 0 && na == 2) {
        ctl_show(out, json);
        return 0;
    }
    if (na >= 3 && strcmp(args[0], "dns") == 0 &&
        (strcmp(args[1], "lookup") == 0 || strcmp(args[1], "host") == 0)) {
        int mx = strcmp(args[1], "lookup") == 0, i = 2;
        unsigned qflags = 0;
        uint16_t port = 0;
        int tls = -1;
        if (lookup_opts(args, na, &i, &qflags, &port, &tls) == 0 && i < na && (mx || i == na - 1))
            return ctl_lookup(c, mx, args[i], args + i + 1, (size_t)(na - i - 1), qflags, port, tls,
                              json);
    }
    if (na == 3 && strcmp(args[0], "dns") == 0 && strcmp(args[1], "txt") == 0)
        return ctl_txt(c, args[2], json);
    if (na == 2 && strcmp(args[0], "dns") == 0 && strcmp(args[1], "flush") == 0) {
        size_t n = dnscache_flush(D.cache);
        log_info("dns cache flushed (%zu entries)", n);
        if (json)
            buf_printf(out, "{\"flushed\":%zu}\n", n);
        else
            buf_printf(out, "flushed %zu entries\n", n);
        return 0;
    }
    buf_adds(out, "usage: show dns | dns lookup [--dane] [--sts] [--tls MODE] [--port N] DOMAIN "
                  "[OVERRIDE...] | dns host [--dane] [--tls MODE] [--port N] NAME | dns txt NAME | "
                  "dns flush | show sts | sts lookup DOMAIN | sts flush [DOMAIN]\n");
    return 2;
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    dnscache_expire(D.cache, mono_us());
}

/* Once a second: the counters master passes on to qmgr (mail/stats.h). */
static void on_stats(evutil_socket_t fd, short what, void *arg)
{
    struct child *c = arg;
    const struct dnscache_stats *cs = dnscache_stats(D.cache);
    uint64_t v[STD__COUNT] = {
        [STD_LOOKUPS] = D.requests,      [STD_CACHE_HITS] = cs->hits,
        [STD_CACHE_MISSES] = cs->misses, [STD_QUERIES] = D.st.sent,
        [STD_TIMEOUTS] = D.st.timeouts,  [STD_CACHE_ENTRIES] = dnscache_count(D.cache),
    };
    struct ipc_w w;

    if (c->master == NULL)
        return;
    ipc_w_init(&w);
    stats_encode(&w, v, STD__COUNT);
    ipc_send(c->master, IMSG_STATS_DNSD, 0, -1, w.p, w.len);
    ipc_w_free(&w);
}

static const struct child_spec spec = {
    .prog = "dnsd",
    .root = CHILD_ROOT_OWN, /* queue_directory/dnsd: sts.db only */
    .peer = adopt_peer,
    .reload = on_reload,
    .ctl = on_ctl,
};

int main(int argc, char **argv)
{
    struct child *c = child_init(argc, argv, &spec);
    struct timeval every = {EXPIRE_EVERY_S, 0};
    char *err = NULL;

    D.c = c;
    resolv_init(&D.file_rc);
    /* before the chroot: afterwards there is no /etc */
    if (resolv_load_file(RESOLV_CONF, &D.file_rc, &err) < 0) {
        log_warn("%s", err);
        free(err);
        err = NULL;
    }
    D.cache = dnscache_new((size_t)cfg_num(c->cfg, P_dns_cache_size));
    /* before the chroot, once: the file cannot be read again from inside it */
    if (dnssec_mode(c->cfg) == DNSQ_SEC_VALIDATE) {
        D.anchors = dnssec_anchors_load(cfg_str(c->cfg, P_dnssec_trust_anchor), &err);
        if (!D.anchors) {
            log_err("dnssec = validate: %s (dnssec_trust_anchor; dnsd cannot start)", err);
            return 1;
        }
        log_info("dnssec: %zu trust anchor(s) from %s", dnssec_anchors_count(D.anchors),
                 cfg_str(c->cfg, P_dnssec_trust_anchor));
    }
    if (build_conf(c->cfg, &D.conf, &err) < 0) {
        log_err("%s", err);
        return 1;
    }
    /* before the chroot: the CA bundle lives in /etc/ssl */
    D.sts_ctx = sts_fetch_ctx(cfg_str(c->cfg, P_mta_sts_ca_file), &err);
    if (D.sts_ctx == NULL) {
        log_err("%s: MTA-STS policies cannot be fetched (cached ones still apply)", err);
        free(err);
        err = NULL;
    }
    child_drop(c);

    D.eng = dnsq_engine_new(c->base, D.cache, &D.st);
    dnsq_engine_configure(D.eng, &D.conf);
    D.txt_eng = dnsq_engine_new(c->base, NULL, &D.st);
    configure_txt_engine();
    log_conf(&D.conf);
    {
        struct sts_conf sc;
        sts_conf_from(c->cfg, &sc);
        D.sts_cache = sts_cache_open(STS_DB);
        D.sts = sts_new(c->base, D.eng, D.sts_ctx, D.sts_cache, &sc);
        sts_join_set(D.sts);
    }
    /* child_loop hands us the deliver and relay channels (adopt_peer) */
    D.expire = event_new(c->base, -1, EV_PERSIST, on_expire, NULL);
    event_add(D.expire, &every);
    {
        static const struct timeval stats_every = {STATS_EVERY_S, 0};
        D.stats = event_new(c->base, -1, EV_PERSIST, on_stats, c);
        event_add(D.stats, &stats_every);
    }
    return child_loop(c);
}
