/*
 * metrics_http - the HTTP side of metrics.h: evhttp on the socket master
 * opened for metrics_listen.
 *
 * Limits (metrics.h): GET /metrics is the only thing answered (404 for
 * any other method or path); request headers up to METRICS_REQ_MAX
 * bytes, no body to speak of; a connection is closed when idle for
 * METRICS_REQ_S seconds and, whatever it sends, METRICS_REQ_S seconds
 * after it was accepted; at most METRICS_CONN_MAX connections are open,
 * the listener pauses above that (further clients wait in the backlog).
 * evhttp (libevent 2.1) has no connection limit of its own (and a
 * filtering bufferevent under it crashes libevent), so: every new
 * connection passes through evhttp's bufferevent callback (new_bev),
 * which counts it and holds a reference on its bufferevent; at the next
 * loop turn (adopt) the bufferevent's callback argument is evhttp's
 * connection, which gets a close callback (counted off there) and a
 * deadline timer that frees it. A connection evhttp dropped before that
 * turn has a bufferevent without callbacks (bufferevent_free clears
 * them), and the reference kept it readable.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "base/log.h"
#include "base/netaddr.h"
#include "mail/child.h"
#include "metrics.h"
#include "qmgr.h"

struct metrics_http {
    struct qmgr *q;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    unsigned live;
    LIST_HEAD(, mconn) conns;
    int stopping; /* evhttp_free: the listener is gone before the connections */
};

struct mconn {
    LIST_ENTRY(mconn) link;
    struct metrics_http *mh;
    struct bufferevent *bev;         /* referenced until adopted */
    struct evhttp_connection *evcon; /* once adopted */
    struct event *adopt_ev, *deadline_ev;
};

static void pause_listener(struct metrics_http *mh, int pause)
{
    struct evconnlistener *l = evhttp_bound_socket_get_listener(mh->bound);

    if (pause)
        evconnlistener_disable(l);
    else
        evconnlistener_enable(l);
}

static void conn_gone(struct mconn *mc)
{
    struct metrics_http *mh = mc->mh;

    if (mh->live-- == METRICS_CONN_MAX && !mh->stopping)
        pause_listener(mh, 0);
    LIST_REMOVE(mc, link);
    if (mc->bev)
        bufferevent_decref(mc->bev);
    event_free(mc->adopt_ev);
    event_free(mc->deadline_ev);
    free(mc);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    conn_gone(arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct mconn *mc = arg;

    evhttp_connection_free(mc->evcon); /* calls on_close */
}

static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
    struct mconn *mc = arg;
    struct timeval left = {METRICS_REQ_S, 0};
    void *evcon = NULL;

    bufferevent_getcb(mc->bev, NULL, NULL, NULL, &evcon);
    if (evcon == NULL) { /* evhttp let it go already */
        conn_gone(mc);
        return;
    }
    mc->evcon = evcon;
    evhttp_connection_set_closecb(mc->evcon, on_close, mc);
    bufferevent_decref(mc->bev);
    mc->bev = NULL;
    evtimer_add(mc->deadline_ev, &left);
}

static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
    static const struct timeval now = {0, 0};
    struct metrics_http *mh = arg;
    struct mconn *mc = xcalloc(1, sizeof(*mc));

    mc->mh = mh;
    LIST_INSERT_HEAD(&mh->conns, mc, link);
    mc->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    mc->adopt_ev = evtimer_new(base, on_adopt, mc);
    mc->deadline_ev = evtimer_new(base, on_deadline, mc);
    if (mc->bev == NULL || mc->adopt_ev == NULL || mc->deadline_ev == NULL)
        log_panic("metrics: cannot make a connection's events");
    bufferevent_incref(mc->bev);
    evtimer_add(mc->adopt_ev, &now);
    if (++mh->live == METRICS_CONN_MAX)
        pause_listener(mh, 1);
    return mc->bev;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct metrics_http *mh = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    struct evbuffer *body;
    struct buf text;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET || path == NULL ||
        strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, HTTP_NOTFOUND, "only GET /metrics is served here");
        return;
    }
    buf_init(&text);
    metrics_render(mh->q, &text);
    body = evbuffer_new();
    evbuffer_add(body, text.data, text.len);
    buf_free(&text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

int metrics_start(struct qmgr *q)
{
    int fd = child_fd(q->c, "metrics");
    struct metrics_http *mh;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char where[NETADDR_STRLEN];

    if (fd < 0)
        return 0;
    mh = xcalloc(1, sizeof(*mh));
    mh->q = q;
    LIST_INIT(&mh->conns);
    mh->http = evhttp_new(q->base);
    if (mh->http == NULL) {
        free(mh);
        return -1;
    }
    /* every method reaches on_request, which answers 404 to all but GET */
    evhttp_set_allowed_methods(mh->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                             EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(mh->http, METRICS_REQ_MAX);
    evhttp_set_max_body_size(mh->http, 1024);
    evhttp_set_timeout(mh->http, METRICS_REQ_S);
    evhttp_set_bevcb(mh->http, new_bev, mh);
    evhttp_set_gencb(mh->http, on_request, mh);
    mh->bound = evhttp_accept_socket_with_handle(mh->http, fd);
    if (mh->bound == NULL) {
        evhttp_free(mh->http);
        free(mh);
        return -1;
    }
    q->met.http = mh;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        log_info("metrics: serving GET /metrics on %s",
                 netaddr_format((struct sockaddr *)&ss, where, sizeof(where)));
    return 0;
}

void metrics_stop(struct qmgr *q)
{
    struct metrics_http *mh = q->met.http;

    if (mh == NULL)
        return;
    mh->stopping = 1;
    evhttp_free(mh->http); /* frees its connections: on_close for the adopted */
    while (!LIST_EMPTY(&mh->conns))
        conn_gone(LIST_FIRST(&mh->conns)); /* not adopted yet */
    free(mh);
    q->met.http = NULL;
}
