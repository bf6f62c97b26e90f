/*
 * tls_probe - a test connection to each host of a destination under the
 * TLS policy deliver would apply (tls_probe.h).
 */
#include "delivery/tls_probe.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "base/netaddr.h"
#include "delivery/dlv_engine.h"
#include "delivery/smtp_client.h"
#include "delivery/tls_show.h"
#include "mail/dns_proto.h"
#include "mail/tls_mode.h"

struct probe {
    struct tls_probe_env env;
    int json;
    enum tls_mode mode;
    int listed;
    uint16_t port; /* the delivery port (a host's own port wins) */
    struct dns_result r;
    size_t next;  /* the next host to try */
    size_t good;  /* hosts that would take mail */
    time_t until; /* the budget */
    struct dlv_tls_plan plan;
    struct smtpc *s;
    struct buf text;  /* the text answer */
    struct buf hosts; /* JSON: the probes so far */
    tls_probe_done done;
    void *arg;
};

static void probe_next(struct probe *p);

static void finish(struct probe *p, int code)
{
    struct buf out;

    if (p->json) {
        buf_init(&out);
        buf_adds(&out, "{\"name\":");
        buf_json_str(&out, p->r.name ? p->r.name : "");
        buf_printf(&out, ",\"ok\":%s,\"lookup\":", code == 0 ? "true" : "false");
        if (p->r.err == DNS_OK) {
            buf_adds(&out, "\"ok\",\"tls\":");
            tls_show_json(&p->r, p->mode, p->listed, &out);
        } else {
            buf_json_str(&out, p->r.reason ? p->r.reason : "");
        }
        buf_printf(&out, ",\"hosts\":[%s]}\n", p->hosts.data ? p->hosts.data : "");
        p->done(code, out.data, p->arg);
        buf_free(&out);
    } else {
        p->done(code, p->text.data ? p->text.data : "", p->arg);
    }
    dns_result_free(&p->r);
    buf_free(&p->text);
    buf_free(&p->hosts);
    free(p);
}

/* One host's line, and its JSON object. */
static void report(struct probe *p, const struct dns_host *h, const char *where, int ok,
                   const char *what)
{
    buf_printf(&p->text, "%s: %s%s\n", where, ok ? "ok, " : "", what);
    buf_printf(&p->hosts, "%s{\"host\":", p->hosts.len ? "," : "");
    buf_json_str(&p->hosts, h->name);
    buf_adds(&p->hosts, ",\"at\":");
    buf_json_str(&p->hosts, where);
    buf_printf(&p->hosts, ",\"ok\":%s,\"text\":", ok ? "true" : "false");
    buf_json_str(&p->hosts, what);
    buf_adds(&p->hosts, "}");
}

static void after(evutil_socket_t fd, short ev, void *arg)
{
    (void)fd;
    (void)ev;
    probe_next(arg);
}

/* Go on from the event loop (not from inside the client's callback). */
static void later(struct probe *p)
{
    struct timeval now = {0, 0};
    event_base_once(p->env.base, -1, EV_TIMEOUT, after, p, &now);
}

static void on_open(struct smtpc *s, const struct smtpc_res *res, void *arg)
{
    struct probe *p = arg;
    const struct smtpc_info *in = smtpc_info(s);
    const struct dns_host *h = &p->r.hosts[p->next - 1];
    struct buf what;

    buf_init(&what);
    if (res->status == SMTPC_OK) {
        if (!in->tls)
            buf_adds(&what, "no TLS (plaintext)");
        else
            buf_printf(&what, "%s %s", in->tls_version, in->tls_cipher);
        if (in->tls_dane)
            buf_printf(&what, ", DANE: TLSA %s matched at depth %d", in->tls_dane_match,
                       in->tls_dane_depth);
        else if (in->tls && in->tls_vfy == SMTPC_VFY_OK)
            buf_adds(&what, ", certificate verified");
        else if (in->tls)
            buf_printf(&what, ", certificate not verified%s%s%s", in->tls_vfy_reason[0] ? " (" : "",
                       in->tls_vfy_reason, in->tls_vfy_reason[0] ? ")" : "");
        if (p->plan.sts_fail)
            buf_printf(&what, "; MTA-STS testing: enforce would refuse it: %s", p->plan.reason);
        else if (p->plan.evaluate && in->tls_vfy != SMTPC_VFY_OK)
            buf_adds(&what, "; MTA-STS testing: enforce would refuse this certificate");
        p->good++;
        report(p, h, in->relay, 1, what.data);
        smtpc_close(s);
    } else {
        buf_printf(&what, "failed at %s (%s): %s", smtpc_step_name(res->step),
                   smtpc_class_name(res->cls), res->text);
        report(p, h, in->relay, 0, what.data);
        smtpc_free(s);
    }
    buf_free(&what);
    p->s = NULL;
    later(p);
}

static void probe_next(struct probe *p)
{
    while (p->next < p->r.nhosts) {
        const struct dns_host *h = &p->r.hosts[p->next++];
        struct smtpc_opts o;

        if (p->next > TLS_PROBE_MAX_HOSTS || time(NULL) >= p->until) {
            report(p, h, h->name, 0, "not tried (the probe's limit)");
            continue;
        }
        dlv_tls_plan(p->mode, &p->r, h, p->listed, &p->plan);
        if (p->plan.skip) {
            report(p, h, h->name, 0, p->plan.reason);
            continue;
        }
        if (h->naddrs == 0) {
            report(p, h, h->name, 0, h->reason[0] ? h->reason : "no address");
            continue;
        }
        memset(&o, 0, sizeof(o));
        o.addr = &h->addrs[0];
        o.port = h->port ? h->port : p->port;
        o.host = h->name;
        o.helo_name = p->env.helo_name;
        o.connect_timeout = p->env.connect_timeout;
        o.timeout = p->env.timeout;
        o.tls = p->plan.mode;
        o.ssl_ctx = p->env.ssl_ctx;
        if (p->plan.dane) {
            o.tlsa = p->plan.tlsa;
            o.ntlsa = p->plan.ntlsa;
            o.dane_base = h->name;
        }
        o.tls_evaluate = p->plan.evaluate;
        o.log_id = "tls check";
        p->s = smtpc_open(p->env.base, &o, on_open, p);
        if (p->s != NULL)
            return; /* on_open goes on */
        report(p, h, h->name, 0, "cannot start a session");
    }
    finish(p, p->good > 0 ? 0 : 1);
}

static void on_dns(const struct dns_result *r, void *arg)
{
    struct probe *p = arg;

    dns_result_free(&p->r);
    dns_result_copy(&p->r, r);
    if (r->err != DNS_OK) {
        buf_printf(&p->text, "lookup of %s failed (%s): %s\n", r->name, outcome_name(r->err),
                   r->reason);
        finish(p, 1);
        return;
    }
    tls_show_text(&p->r, p->mode, p->listed, &p->text);
    probe_next(p);
}

static int usage(struct buf *out)
{
    buf_adds(out, "usage: tls probe [--tls MODE] [--sts] [--port N] mx|host NAME [OVERRIDE...]\n");
    return 2;
}

static int cap(int v)
{
    return v <= 0 || v > TLS_PROBE_TIMEOUT_S ? TLS_PROBE_TIMEOUT_S : v;
}

int tls_probe_start(const struct tls_probe_env *env, int argc, char **argv, int json,
                    tls_probe_done done, void *arg, struct buf *out)
{
    int i = 2, mode = TLS_MODE_MAY, sts = 0, mx;
    long port = 25;
    const char *override[DNS_MAX_OVERRIDE + 1];
    size_t n = 0;
    struct probe *p;
    uint32_t id;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--sts") == 0) {
            sts = 1;
        } else if (strcmp(argv[i], "--tls") == 0 && i + 1 < argc) {
            if ((mode = tls_mode_parse(argv[++i])) < 0)
                return usage(out);
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 1 || port > 65535)
                return usage(out);
        } else {
            return usage(out);
        }
    }
    if (i + 2 > argc || (strcmp(argv[i], "mx") != 0 && strcmp(argv[i], "host") != 0))
        return usage(out);
    mx = strcmp(argv[i], "mx") == 0;
    if (!mx && i + 2 != argc)
        return usage(out);
    for (int k = i + 2; k < argc && n < DNS_MAX_OVERRIDE; k++)
        override[n++] = argv[k];
    override[n] = NULL;

    p = xcalloc(1, sizeof(*p));
    p->env = *env;
    p->env.connect_timeout = cap(env->connect_timeout);
    p->env.timeout = cap(env->timeout);
    p->json = json;
    p->mode = (enum tls_mode)mode;
    p->listed = !mx;
    p->port = (uint16_t)port;
    p->until = time(NULL) + TLS_PROBE_BUDGET_S;
    p->done = done;
    p->arg = arg;
    buf_init(&p->text);
    buf_init(&p->hosts);
    dns_result_init(&p->r, argv[i + 1]);
    {
        unsigned flags = (dlv_tls_wants_dane(p->mode, !mx) ? DNS_Q_DANE : 0) |
                         (mx && sts && n == 0 ? DNS_Q_STS : 0);
        id = env->dns == NULL ? 0
             : mx ? dnsc_mx(env->dns, argv[i + 1], n ? override : NULL, flags, (uint16_t)port,
                            on_dns, p)
                  : dnsc_host(env->dns, argv[i + 1], flags, (uint16_t)port, on_dns, p);
    }
    if (id == 0) {
        dns_result_set_err(&p->r, DNS_TEMP, "dnsd is not available right now");
        buf_adds(&p->text, "dnsd is not available right now\n");
        later(p); /* finishes: no hosts */
    }
    return 0;
}
