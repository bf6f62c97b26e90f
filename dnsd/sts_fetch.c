/*
 * sts_fetch - the HTTPS GET of an MTA-STS policy (contract in
 * sts_fetch.h).
 *
 * A fetch is a small state machine: resolving mta-sts.DOMAIN, then one
 * connection at a time (TCP, TLS handshake, request, response), then
 * done. Completion goes through a zero-delay event so that cb never runs
 * inside sts_fetch_start or inside a libevent callback of the
 * bufferevent being freed. The host lookup cannot be cancelled: a
 * cancelled fetch lives until its answer comes, then frees itself.
 */
#include "sts_fetch.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/netaddr.h"
#include "base/util.h"
#include "dns_lookup.h"
#include "mail/mta_sts.h"
#include "sts_http.h"

#define STS_PATH "/.well-known/mta-sts.txt"

struct sts_fetch {
    struct event_base *base;
    SSL_CTX *ctx;
    char host[DNS_MAX_NAME + 16]; /* mta-sts.DOMAIN */
    uint16_t port;
    int timeout_ms;
    sts_fetch_cb cb;
    void *arg;
    int resolving, cancelled, finished;
    struct sockaddr_storage addrs[DNS_MAX_ADDRS];
    size_t naddrs, next;
    char last_conn_err[200];
    struct bufferevent *bev;
    SSL *ssl;
    struct stshttp http;
    struct event *timer, *done;
    int ok;
    char why[600];
};

SSL_CTX *sts_fetch_ctx(const char *ca_file, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *file = ca_file;
    char ebuf[256];

    if (ctx == NULL) {
        *err = xstrdup("SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (file == NULL || file[0] == '\0') {
        file = getenv(X509_get_default_cert_file_env());
        if (file == NULL || file[0] == '\0')
            file = X509_get_default_cert_file();
    }
    if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1) {
        ERR_error_string_n(ERR_get_error(), ebuf, sizeof(ebuf));
        ERR_clear_error();
        if (ca_file && ca_file[0]) {
            *err = xasprintf("mta_sts_ca_file %s cannot be loaded: %s", ca_file, ebuf);
            SSL_CTX_free(ctx);
            return NULL;
        }
        log_warn("MTA-STS: the system CA bundle %s cannot be loaded (%s): every policy fetch "
                 "will fail certificate verification; set mta_sts_ca_file",
                 file, ebuf);
    }
    return ctx;
}

static void on_done(evutil_socket_t fd, short what, void *arg);

static void conn_close(struct sts_fetch *f)
{
    if (f->bev) {
        bufferevent_free(f->bev); /* frees the SSL (BEV_OPT_CLOSE_ON_FREE) */
        f->bev = NULL;
        f->ssl = NULL;
    }
    stshttp_free(&f->http);
    stshttp_init(&f->http);
}

static void fetch_free(struct sts_fetch *f)
{
    conn_close(f);
    stshttp_free(&f->http);
    if (f->timer)
        event_free(f->timer);
    if (f->done)
        event_free(f->done);
    free(f);
}

/* Conclude (once); cb runs from the done event. */
static void finish(struct sts_fetch *f, int ok, const char *fmt, const char *arg)
{
    if (f->finished)
        return;
    f->finished = 1;
    f->ok = ok;
    if (!ok) {
        char tmp[300];
        snprintf(tmp, sizeof(tmp), fmt, arg);
        snprintf(f->why, sizeof(f->why), "%s: %s", f->host, tmp);
    }
    event_del(f->timer);
    if (f->bev)
        bufferevent_disable(f->bev, EV_READ | EV_WRITE);
    event_active(f->done, 0, 0);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct sts_fetch *f = arg;

    if (!f->cancelled) {
        if (f->ok)
            f->cb(f->http.body.data, f->http.body.len, NULL, f->arg);
        else
            f->cb(NULL, 0, f->why, f->arg);
    }
    fetch_free(f);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct sts_fetch *f = arg;
    char secs[32];

    snprintf(secs, sizeof(secs), "%d s", (f->timeout_ms + 999) / 1000);
    finish(f, 0, "timed out after %s", secs);
}

static void try_next(struct sts_fetch *f);

/* Why the TLS layer failed, in words. */
static void tls_why(struct sts_fetch *f, unsigned long e, char *out, size_t len)
{
    long v = f->ssl ? SSL_get_verify_result(f->ssl) : X509_V_OK;
    char ebuf[200];

    if (v != X509_V_OK) {
        snprintf(out, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        return;
    }
    ERR_error_string_n(e, ebuf, sizeof(ebuf));
    snprintf(out, len, "TLS failed: %s", ebuf);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct sts_fetch *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char chunk[4096];
    int n;

    while (!f->finished && (n = evbuffer_remove(in, chunk, sizeof(chunk))) > 0) {
        enum stshttp_state st = stshttp_feed(&f->http, chunk, (size_t)n);
        if (st == STSHTTP_DONE)
            finish(f, 1, "%s", "");
        else if (st == STSHTTP_ERROR)
            finish(f, 0, "%s", f->http.why);
    }
}

static void send_request(struct sts_fetch *f)
{
    struct evbuffer *out = bufferevent_get_output(f->bev);

    if (f->port == 443)
        evbuffer_add_printf(out, "GET " STS_PATH " HTTP/1.1\r\nHost: %s\r\n", f->host);
    else
        evbuffer_add_printf(out, "GET " STS_PATH " HTTP/1.1\r\nHost: %s:%u\r\n", f->host,
                            (unsigned)f->port);
    evbuffer_add_printf(out, "User-Agent: Postern MTA-STS\r\nAccept: text/plain\r\n"
                             "Connection: close\r\n\r\n");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sts_fetch *f = arg;
    unsigned long e;
    char why[300];

    if (what & BEV_EVENT_CONNECTED) {
        log_detail("MTA-STS: %s: TLS %s with %s", f->host, SSL_get_version(f->ssl),
                   "a verified certificate");
        send_request(f);
        return;
    }
    if (f->finished)
        return;
    if (what & BEV_EVENT_EOF) {
        on_read(bev, f);
        if (!f->finished && stshttp_eof(&f->http) == STSHTTP_DONE)
            finish(f, 1, "%s", "");
        else
            finish(f, 0, "%s", f->http.why[0] ? f->http.why : "connection closed");
        return;
    }
    e = bufferevent_get_openssl_error(bev);
    if (e == 0 && f->ssl && SSL_get_verify_result(f->ssl) == X509_V_OK &&
        !SSL_is_init_finished(f->ssl)) {
        /* no TLS error: the TCP connection failed; try the next address */
        snprintf(f->last_conn_err, sizeof(f->last_conn_err), "%s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        conn_close(f);
        try_next(f);
        return;
    }
    if (e == 0 && SSL_get_verify_result(f->ssl) == X509_V_OK) {
        finish(f, 0, "%s", "connection lost before the end of the response");
        return;
    }
    tls_why(f, e, why, sizeof(why));
    ERR_clear_error();
    finish(f, 0, "%s", why);
}

static int conn_open(struct sts_fetch *f, const struct sockaddr_storage *ss)
{
    f->ssl = SSL_new(f->ctx);
    if (f->ssl == NULL)
        return -1;
    SSL_set_tlsext_host_name(f->ssl, f->host);
    SSL_set_hostflags(f->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(f->ssl, f->host) != 1) {
        SSL_free(f->ssl);
        f->ssl = NULL;
        return -1;
    }
    f->bev = bufferevent_openssl_socket_new(f->base, -1, f->ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (f->bev == NULL) {
        f->ssl = NULL; /* never free twice */
        return -1;
    }
    /* at most a bounded response waits in the input buffer */
    bufferevent_setwatermark(f->bev, EV_READ, 0, 16384);
    bufferevent_setcb(f->bev, on_read, NULL, on_event, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(f->bev, (const struct sockaddr *)ss,
                                   (int)netaddr_len((const struct sockaddr *)ss)) < 0) {
        snprintf(f->last_conn_err, sizeof(f->last_conn_err), "%s", strerror(errno));
        conn_close(f);
        return 1;
    }
    return 0;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static void try_next(struct sts_fetch *f)
{
    while (f->next < f->naddrs) {
        struct sockaddr_storage *ss = &f->addrs[f->next++];
        char text[NETADDR_STRLEN];
        int r;

        set_port(ss, f->port);
        log_detail("MTA-STS: fetching https://%s%s from %s", f->host, STS_PATH,
                   netaddr_format((struct sockaddr *)ss, text, sizeof(text)));
        r = conn_open(f, ss);
        if (r == 0)
            return;
        if (r < 0) {
            finish(f, 0, "%s", "cannot set up TLS");
            return;
        }
    }
    finish(f, 0, "cannot connect: %s", f->last_conn_err[0] ? f->last_conn_err : "no address");
}

static void on_host(const struct dns_result *r, void *arg)
{
    struct sts_fetch *f = arg;
    const struct dns_host *h = r->nhosts ? &r->hosts[0] : NULL;

    f->resolving = 0;
    if (f->cancelled) {
        fetch_free(f);
        return;
    }
    if (f->finished)
        return; /* timed out meanwhile: the done event frees */
    if (r->err != DNS_OK || h == NULL || h->naddrs == 0) {
        finish(f, 0, "%s", r->reason[0] ? r->reason : "no address");
        return;
    }
    for (size_t i = 0; i < h->naddrs && f->naddrs < DNS_MAX_ADDRS; i++)
        f->addrs[f->naddrs++] = h->addrs[i];
    try_next(f);
}

struct sts_fetch *sts_fetch_start(struct event_base *base, struct dnsq_engine *e, SSL_CTX *ctx,
                                  const char *domain, uint16_t port, int timeout_ms,
                                  sts_fetch_cb cb, void *arg)
{
    struct sts_fetch *f = xcalloc(1, sizeof(*f));
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

    f->base = base;
    f->ctx = ctx;
    f->port = port;
    f->timeout_ms = timeout_ms;
    f->cb = cb;
    f->arg = arg;
    snprintf(f->host, sizeof(f->host), "mta-sts.%s", domain);
    stshttp_init(&f->http);
    f->timer = evtimer_new(base, on_timeout, f);
    f->done = event_new(base, -1, 0, on_done, f);
    event_add(f->timer, &tv);
    if (ctx == NULL) {
        finish(f, 0, "%s", "no TLS context (see the log at start)");
        return f;
    }
    f->resolving = 1;
    lookup_host(e, f->host, 0, 0, on_host, f);
    return f;
}

void sts_fetch_cancel(struct sts_fetch *f)
{
    if (f == NULL)
        return;
    f->cancelled = 1;
    if (f->finished)
        return; /* the done event is pending: it frees */
    f->finished = 1;
    event_del(f->timer);
    conn_close(f);
    if (!f->resolving)
        event_active(f->done, 0, 0);
}
