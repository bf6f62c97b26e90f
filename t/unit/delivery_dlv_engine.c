/*
 * Tests for common/delivery/dlv_engine.
 *
 * Part 1, pure: the order of candidate addresses (MX sets and listed
 * hosts, ports), the mapping of the SMTP client's classes and steps, and
 * the tally that decides per recipient what is final and whether the job
 * goes on to the next address.
 *
 * Part 2, the engine in a libevent loop with the real SMTP client against
 * fake SMTP servers that live in the same loop (bufferevents on 127.0.0.x
 * and ::1, one port for all) and a fake dnsd on a socketpair that answers
 * from a table. The servers record connections, transactions, recipients
 * and accepted messages, so each test checks what the engine reported and
 * what the "remote" side saw: failover after a refused connection, a 5xx
 * greeting, a 5xx RCPT that ends the job, a 4xx RCPT retried on the next
 * MX, a drop in DATA, TLS required but not offered, null MX, NXDOMAIN,
 * IPv6-only MX, listed hosts (literal and looked up), dnsd missing,
 * equal-preference shuffling, connection reuse (count limit, idle close,
 * a reused connection found dead), cancel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "mail/dlv_proto.h"
#include "delivery/dlv_engine.h"
#include "mail/dns_proto.h"
#include "base/ipc.h"
#include "base/log.h"
#include "base/netaddr.h"
#include "mail/proto.h"
#include "tap.h"
#include "base/util.h"

/* the request flags and TLSA port the decoders return (not checked here) */
static unsigned qflags;
static uint16_t qport;

/* ---------------- part 1: pure ---------------- */

static void add_addr(struct dns_host *h, const char *a, uint16_t port)
{
    struct sockaddr_storage ss;

    ok(dns_parse_addr(a, &ss) == 1, "test address %s", a);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    dns_host_add_addr(h, (struct sockaddr *)&ss);
}

static const char *cand_str(const struct dlv_cand *c, char *buf, size_t len)
{
    char a[NETADDR_STRLEN];

    netaddr_ntop((const struct sockaddr *)&c->addr, a, sizeof(a));
    snprintf(buf, len, "%s/%s/%d", c->host, a, netaddr_port((const struct sockaddr *)&c->addr));
    return buf;
}

static void test_cands(void)
{
    struct dns_result r;
    struct dns_host *h;
    struct dlv_cand c[8];
    char b[200];
    size_t n;

    dns_result_init(&r, "example.test");
    h = dns_result_add_host(&r, "mx1.example.test", 10, 0);
    add_addr(h, "127.0.0.11", 0);
    h = dns_result_add_host(&r, "mx2.example.test", 20, 0);
    add_addr(h, "127.0.0.12", 0);
    add_addr(h, "::1", 0);
    h = dns_result_add_host(&r, "dead.example.test", 20, 0);
    dns_host_set_err(h, DNS_PERM, "no address");
    h = dns_result_add_host(&r, "mx3.example.test", 30, 2600);
    add_addr(h, "127.0.0.13", 2600);
    dns_result_group(&r);
    n = dlv_cands_mx(&r, 2525, TLS_MODE_ENCRYPT, c, nitems(c));
    is_int(n, 4, "four addresses (a host without address is skipped)");
    is_str(cand_str(&c[0], b, sizeof(b)), "mx1.example.test/127.0.0.11/2525",
           "first: mx1 on the default port");
    is_str(cand_str(&c[1], b, sizeof(b)), "mx2.example.test/127.0.0.12/2525", "then mx2's IPv4");
    is_str(cand_str(&c[2], b, sizeof(b)), "mx2.example.test/::1/2525", "then mx2's IPv6");
    is_str(cand_str(&c[3], b, sizeof(b)), "mx3.example.test/127.0.0.13/2600",
           "mx3 on its own port");
    is_int(c[0].tls, TLS_MODE_ENCRYPT, "tls mode carried");
    is_int(c[0].host_index, -1, "MX candidates have no host index");
    ok(c[0].h == NULL, "and no listed host");
    n = dlv_cands_mx(&r, 25, TLS_MODE_MAY, c, 2);
    is_int(n, 2, "bounded by max");
    dns_result_free(&r);

    /* listed hosts */
    struct dlv_host gw = {(char[]){"gw.test"}, 0, TLS_MODE_VERIFY, (char[]){"gw"}, (char[]){""},
                          (char[]){""},        0};
    struct sockaddr_storage lit;
    dns_result_init(&r, "gw.test");
    h = dns_result_add_host(&r, "gw.test", 0, 0);
    add_addr(h, "127.0.0.21", 0);
    add_addr(h, "::1", 0);
    n = dlv_cands_host(&gw, 3, &r, NULL, 587, c, nitems(c));
    is_int(n, 2, "looked-up host: every address");
    is_str(cand_str(&c[0], b, sizeof(b)), "gw.test/127.0.0.21/587", "default port");
    is_str(cand_str(&c[1], b, sizeof(b)), "gw.test/::1/587", "IPv6 too");
    is_int(c[0].host_index, 3, "host index");
    is_int(c[0].tls, TLS_MODE_VERIFY, "host's tls mode");
    ok(c[0].h == &gw, "points at the listed host");
    gw.port = 2526;
    n = dlv_cands_host(&gw, 0, &r, NULL, 587, c, nitems(c));
    is_str(cand_str(&c[0], b, sizeof(b)), "gw.test/127.0.0.21/2526", "host's own port wins");
    dns_result_free(&r);
    dns_parse_addr("127.0.0.22:2999", &lit);
    gw.port = 0;
    gw.name = (char[]){"127.0.0.22:2999"};
    n = dlv_cands_host(&gw, 0, NULL, &lit, 587, c, nitems(c));
    is_int(n, 1, "literal: one address");
    is_str(cand_str(&c[0], b, sizeof(b)), "127.0.0.22:2999/127.0.0.22/2999", "literal's own port");
    dns_parse_addr("127.0.0.22", &lit);
    n = dlv_cands_host(&gw, 0, NULL, &lit, 587, c, nitems(c));
    is_str(cand_str(&c[0], b, sizeof(b)), "127.0.0.22:2999/127.0.0.22/587",
           "literal without port: default");
}

static void test_maps(void)
{
    is_int(dlv_class_of(SMTPC_CL_NETWORK), DLV_CLASS_NETWORK, "network");
    is_int(dlv_class_of(SMTPC_CL_PROTOCOL), DLV_CLASS_NETWORK, "protocol errors count as network");
    is_int(dlv_class_of(SMTPC_CL_TLS), DLV_CLASS_TLS, "tls");
    is_int(dlv_class_of(SMTPC_CL_SMTP), DLV_CLASS_SMTP, "smtp");
    is_int(dlv_class_of(SMTPC_CL_AUTH), DLV_CLASS_AUTH, "auth");
    is_int(dlv_class_of(SMTPC_CL_LOCAL), DLV_CLASS_LOCAL, "local");
    is_int(dlv_step_of(SMTPC_STEP_CONNECT), DLV_STEP_CONNECT, "connect");
    is_int(dlv_step_of(SMTPC_STEP_GREETING), DLV_STEP_GREETING, "greeting");
    is_int(dlv_step_of(SMTPC_STEP_STARTTLS), DLV_STEP_STARTTLS, "starttls");
    is_int(dlv_step_of(SMTPC_STEP_RSET), DLV_STEP_MAIL, "rset counts as the transaction start");
    is_int(dlv_step_of(SMTPC_STEP_RCPT), DLV_STEP_RCPT, "rcpt");
    is_int(dlv_step_of(SMTPC_STEP_DOT), DLV_STEP_DOT, "dot");
}

static struct smtpc_res sres(enum smtpc_status st, enum smtpc_class cl, enum smtpc_step step,
                             int code, const char *enh, const char *text)
{
    struct smtpc_res r;

    memset(&r, 0, sizeof(r));
    r.status = st;
    r.cls = cl;
    r.step = step;
    r.code = code;
    strlcpy_p(r.enh, enh, sizeof(r.enh));
    strlcpy_p(r.text, text, sizeof(r.text));
    return r;
}

static char xaddr[] = "x@example.test";

static void three_rcpts(struct dlv_req *q, struct dlv_rcpt *rc)
{
    memset(q, 0, sizeof(*q));
    for (int i = 0; i < 3; i++) {
        rc[i].idx = (uint32_t)(10 + i);
        rc[i].addr = xaddr;
    }
    q->rcpts = rc;
    q->nrcpts = 3;
}

static void test_tally(void)
{
    struct dlv_req q;
    struct dlv_rcpt rc[3];
    struct dlv_tally t;
    struct smtpc_res rr[3];
    struct smtpc_txn_res tr;
    size_t map[3] = {0, 1, 2};

    three_rcpts(&q, rc);
    dlv_tally_init(&t, &q);
    is_int(t.nopen, 3, "all open at start");
    is_int(t.r[1].idx, 11, "indexes from the request");
    ok(dlv_tally_more(&t), "more to do");

    /* 5xx greeting: the session is refused, not the message */
    struct smtpc_res g =
        sres(SMTPC_PERM, SMTPC_CL_SMTP, SMTPC_STEP_GREETING, 554, "5.7.1", "go away");
    dlv_tally_open_failed(&t, &g);
    is_int(t.nopen, 3, "5xx greeting: still open");
    is_int(t.r[0].status, DLV_TEMP, "as a temporary result");
    is_int(t.r[0].code, 554, "keeping the code");
    is_str(t.r[0].dsn, "4.7.1", "with a temporary enhanced code");
    is_int(t.r[0].step, DLV_STEP_GREETING, "step greeting");

    /* mixed: 250, 550, 451 */
    rr[0] = sres(SMTPC_OK, SMTPC_CL_NONE, SMTPC_STEP_DOT, 250, "2.0.0", "ok");
    rr[1] = sres(SMTPC_PERM, SMTPC_CL_SMTP, SMTPC_STEP_RCPT, 550, "5.1.1", "no such user");
    rr[2] = sres(SMTPC_TEMP, SMTPC_CL_SMTP, SMTPC_STEP_RCPT, 451, "4.3.0", "later");
    memset(&tr, 0, sizeof(tr));
    tr.session = rr[0];
    tr.nrcpts = 3;
    tr.rcpt = rr;
    tr.accepted = 1;
    is_int(dlv_tally_txn(&t, &tr, map), 0, "a real transaction");
    is_int(t.r[0].status, DLV_OK, "250: sent");
    is_int(t.r[1].status, DLV_PERM, "550: failed");
    is_int(t.r[1].step, DLV_STEP_RCPT, "at rcpt");
    is_str(t.r[1].text, "no such user", "with the text");
    is_int(t.r[2].status, DLV_TEMP, "451: deferred");
    is_int(t.nopen, 1, "only the 451 stays open");
    ok(t.taken, "taken");
    ok(dlv_tally_more(&t), "the 451 goes on to the next address");

    /* the next MX takes the last one: transaction recipient 0 is tally 2 */
    size_t map2[1] = {2};
    struct smtpc_res ok1 = sres(SMTPC_OK, SMTPC_CL_NONE, SMTPC_STEP_DOT, 250, "2.0.0", "ok 2");
    tr.session = ok1;
    tr.nrcpts = 1;
    tr.rcpt = &ok1;
    dlv_tally_txn(&t, &tr, map2);
    is_int(t.r[2].status, DLV_OK, "sent at the next MX");
    is_int(t.r[1].status, DLV_PERM, "the failed one stays failed");
    ok(!dlv_tally_more(&t), "nothing more to do");
    dlv_tally_free(&t);

    /* lost before the transaction: nothing changes */
    dlv_tally_init(&t, &q);
    rr[0] = sres(SMTPC_TEMP, SMTPC_CL_NETWORK, SMTPC_STEP_RSET, 0, "4.4.2", "lost");
    rr[0].lost_before_txn = 1;
    rr[1] = rr[2] = rr[0];
    tr.session = rr[0];
    tr.nrcpts = 3;
    tr.rcpt = rr;
    tr.accepted = 0;
    is_int(dlv_tally_txn(&t, &tr, map), 1, "lost before the transaction reported");
    is_str(t.r[0].text, "delivery not attempted", "results untouched");
    is_int(t.nopen, 3, "all still open");

    /* 5xx at MAIL: every recipient failed, the job ends */
    rr[0] = sres(SMTPC_PERM, SMTPC_CL_SMTP, SMTPC_STEP_MAIL, 553, "5.1.8", "bad sender");
    rr[1] = rr[2] = rr[0];
    tr.session = rr[0];
    dlv_tally_txn(&t, &tr, map);
    is_int(t.nopen, 0, "5xx MAIL: all final");
    ok(!dlv_tally_more(&t), "no next MX after a permanent answer");
    is_int(t.r[2].status, DLV_PERM, "failed");
    ok(!t.taken, "not taken");
    dlv_tally_free(&t);

    /* local temporary failure: stop */
    dlv_tally_init(&t, &q);
    rr[0] = sres(SMTPC_TEMP, SMTPC_CL_LOCAL, SMTPC_STEP_DATA, 0, "4.3.0", "cannot read");
    rr[1] = rr[2] = rr[0];
    tr.session = rr[0];
    dlv_tally_txn(&t, &tr, map);
    is_int(t.nopen, 3, "local: deferred");
    ok(!dlv_tally_more(&t), "and the job stops");
    is_int(t.r[0].cls, DLV_CLASS_LOCAL, "class local");
    dlv_tally_free(&t);

    /* DNS */
    dlv_tally_init(&t, &q);
    dlv_tally_dns(&t, DNS_PERM, "domain x does not accept mail (null MX, RFC 7505)", 0);
    is_int(t.r[0].status, DLV_PERM, "null MX: failed");
    is_str(t.r[0].dsn, "5.1.10", "5.1.10");
    is_int(t.r[0].cls, DLV_CLASS_DNS, "class dns");
    is_int(t.r[0].step, DLV_STEP_DNS, "step dns");
    dlv_tally_free(&t);
    dlv_tally_init(&t, &q);
    dlv_tally_dns(&t, DNS_PERM, "domain x not found (NXDOMAIN)", 0);
    is_str(t.r[0].dsn, "5.1.2", "NXDOMAIN: 5.1.2");
    dlv_tally_free(&t);
    dlv_tally_init(&t, &q);
    dlv_tally_dns(&t, DNS_PERM, "cannot resolve gw: NXDOMAIN", 1);
    is_int(t.r[0].status, DLV_TEMP, "a listed host that does not resolve: temporary");
    ok(dlv_tally_more(&t), "and the next host may work");
    dlv_tally_free(&t);
    dlv_tally_init(&t, &q);
    dlv_tally_dns(&t, DNS_TEMP, "SERVFAIL", 0);
    is_int(t.r[0].status, DLV_TEMP, "SERVFAIL: temporary");
    is_str(t.r[0].dsn, "4.4.3", "4.4.3");
    dlv_tally_free(&t);
}

/* ---------------- part 2: the engine in a loop ---------------- */

static struct event_base *base;
static uint16_t port; /* every fake server listens on this port */

struct fsrv {
    const char *addr;
    struct evconnlistener *l;
    /* behaviour */
    const char *greeting;   /* default "220 fake ESMTP" */
    const char *rcpt_match; /* recipients containing this get rcpt_reply */
    const char *rcpt_reply;
    const char *eod_reply;  /* default "250 2.0.0 ok" */
    const char *rset_reply; /* default "250 ok"; a 421 closes */
    int drop_in_data;       /* close at the first DATA line */
    int close_after_txn;    /* close right after the reply to the dot */
    /* records */
    int conns, open_conns, txns, msgs, rsets, quits;
    char last_rcpts[512]; /* accepted recipients of the last message, blank-separated */
};

struct fconn {
    struct fsrv *srv;
    struct bufferevent *bev;
    int in_data, naccepted;
    char rcpts[512];
};

static void fc_close(struct fconn *c)
{
    c->srv->open_conns--;
    bufferevent_free(c->bev);
    free(c);
}

static void fc_say(struct fconn *c, const char *s)
{
    bufferevent_write(c->bev, s, strlen(s));
    bufferevent_write(c->bev, "\r\n", 2);
}

/* Write s, then close once it has left. */
static void fc_write_cb(struct bufferevent *bev, void *arg)
{
    fc_close(arg);
}

static void fc_say_close(struct fconn *c, const char *s)
{
    fc_say(c, s);
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setcb(c->bev, NULL, fc_write_cb, NULL, c);
}

/* Returns 0 when the connection was closed. */
static int fc_line(struct fconn *c, const char *line)
{
    struct fsrv *s = c->srv;

    if (c->in_data) {
        if (s->drop_in_data) {
            fc_close(c);
            return 0;
        }
        if (strcmp(line, ".") != 0)
            return 1;
        c->in_data = 0;
        const char *r = s->eod_reply ? s->eod_reply : "250 2.0.0 ok";
        if (r[0] == '2') {
            s->msgs++;
            strlcpy_p(s->last_rcpts, c->rcpts, sizeof(s->last_rcpts));
        }
        if (s->close_after_txn) {
            fc_say_close(c, r);
            return 0;
        }
        fc_say(c, r);
        return 1;
    }
    if (ascii_ncasecmp(line, "EHLO", 4) == 0) {
        fc_say(c, "250-fake\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES");
    } else if (ascii_ncasecmp(line, "HELO", 4) == 0) {
        fc_say(c, "250 fake");
    } else if (ascii_ncasecmp(line, "MAIL", 4) == 0) {
        s->txns++;
        c->naccepted = 0;
        c->rcpts[0] = '\0';
        fc_say(c, "250 2.1.0 ok");
    } else if (ascii_ncasecmp(line, "RCPT", 4) == 0) {
        if (s->rcpt_match && strstr(line, s->rcpt_match)) {
            fc_say(c, s->rcpt_reply);
            return 1;
        }
        const char *a = strchr(line, '<'), *e = a ? strchr(a, '>') : NULL;
        if (a && e && strlen(c->rcpts) + (size_t)(e - a) + 2 < sizeof(c->rcpts)) {
            if (c->rcpts[0])
                strcat(c->rcpts, " ");
            strncat(c->rcpts, a + 1, (size_t)(e - a - 1));
        }
        c->naccepted++;
        fc_say(c, "250 2.1.5 ok");
    } else if (ascii_ncasecmp(line, "DATA", 4) == 0) {
        if (c->naccepted == 0) {
            fc_say(c, "554 5.5.1 no valid recipients");
        } else {
            c->in_data = 1;
            fc_say(c, "354 go ahead");
        }
    } else if (ascii_ncasecmp(line, "RSET", 4) == 0) {
        const char *r = s->rset_reply ? s->rset_reply : "250 2.0.0 ok";
        s->rsets++;
        if (strncmp(r, "421", 3) == 0) {
            fc_say_close(c, r);
            return 0;
        }
        fc_say(c, r);
    } else if (ascii_ncasecmp(line, "QUIT", 4) == 0) {
        s->quits++;
        fc_say_close(c, "221 bye");
        return 0;
    } else {
        fc_say(c, "502 5.5.2 unknown command");
    }
    return 1;
}

static void fc_read(struct bufferevent *bev, void *arg)
{
    struct fconn *c = arg;
    char *line;
    size_t n;

    while ((line = evbuffer_readln(bufferevent_get_input(bev), &n, EVBUFFER_EOL_CRLF)) != NULL) {
        int alive = fc_line(c, line);
        free(line);
        if (!alive)
            return;
    }
}

static void fc_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fc_close(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct fsrv *s = arg;
    struct fconn *c = xcalloc(1, sizeof(*c));

    s->conns++;
    s->open_conns++;
    c->srv = s;
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, fc_read, NULL, fc_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    fc_say(c, s->greeting ? s->greeting : "220 fake ESMTP");
}

static int srv_listen(struct fsrv *s)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    if (dns_parse_addr(s->addr, &ss) != 1)
        return -1;
    if (ss.ss_family == AF_INET) {
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
        sl = sizeof(struct sockaddr_in);
    } else {
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
        sl = sizeof(struct sockaddr_in6);
    }
    s->l = evconnlistener_new_bind(base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                   16, (struct sockaddr *)&ss, (int)sl);
    return s->l ? 0 : -1;
}

static void srv_stop(struct fsrv *s)
{
    if (s->l)
        evconnlistener_free(s->l);
    s->l = NULL;
}

/* A port free on 127.0.0.11; the other addresses are tried with it. */
static uint16_t pick_port(void)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t p = 0;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.11", &sin.sin_addr);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &sl) == 0)
        p = ntohs(sin.sin_port);
    close(fd);
    return p;
}

/* ---- the fake dnsd ---- */

struct dns_entry {
    const char *name;
    int host; /* 1: HOST lookup, 0: MX */
    struct dns_result r;
};

static struct dns_entry dns_tab[32];
static size_t ndns;
static int dns_queries;
static struct ipc_chan *dns_client, *dns_server;

static struct dns_result *dns_add(const char *name, int host)
{
    struct dns_entry *e = &dns_tab[ndns++];

    e->name = name;
    e->host = host;
    dns_result_init(&e->r, name);
    return &e->r;
}

/* An MX entry: "host=addr,addr host2=addr ..." with preferences 10, 20, ... unless
 * pref_equal, when they all share 10. */
static void dns_mx(const char *domain, const char *spec, int pref_equal)
{
    struct dns_result *r = dns_add(domain, 0);
    char *copy = xstrdup(spec), *save, *tok;
    uint16_t pref = 10;

    for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '='), *s2, *a;
        *eq = '\0';
        struct dns_host *h = dns_result_add_host(r, tok, pref, 0);
        for (a = strtok_r(eq + 1, ",", &s2); a; a = strtok_r(NULL, ",", &s2)) {
            struct sockaddr_storage ss;
            dns_parse_addr(a, &ss);
            dns_host_add_addr(h, (struct sockaddr *)&ss);
        }
        if (!pref_equal)
            pref += 10;
    }
    dns_result_group(r);
    free(copy);
}

static void fake_dnsd_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    const char *name = "";
    const char *ovr[4];
    size_t novr = 0;
    int host = m->type == IMSG_DNS_HOST_REQ;
    struct dns_result nx, *r = NULL;
    struct ipc_w w;

    dns_queries++;
    if (host)
        dns_host_req_decode(m->body, m->len, &name, &qflags, &qport);
    else
        dns_mx_req_decode(m->body, m->len, &name, ovr, nitems(ovr), &novr, &qflags, &qport);
    for (size_t i = 0; i < ndns; i++)
        if (dns_tab[i].host == host && strcmp(dns_tab[i].name, name) == 0)
            r = &dns_tab[i].r;
    dns_result_init(&nx, name);
    dns_result_set_err(&nx, DNS_PERM, "domain %s not found (NXDOMAIN)", name);
    ipc_w_init(&w);
    dns_rep_encode(&w, r ? r : &nx);
    ipc_send(ch, IMSG_DNS_REP, m->id, -1, w.p, w.len);
    ipc_w_free(&w);
    dns_result_free(&nx);
}

static void dns_client_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    dnsc_dispatch(ch, m);
}

static void chan_closed(struct ipc_chan *ch, void *arg) {}

/* ---- running jobs ---- */

static struct dlv_engine *eng;
static int msgfd = -1;
static const char message[] = "Subject: test\r\n\r\nhello\r\n";

struct got {
    int done;
    struct dlv_res r; /* deep copy */
};

/* Through the wire codec, as qmgr gets it: also checks that every result
 * the engine makes (TLS outcomes included) decodes. */
static void copy_res(struct dlv_res *d, const struct dlv_res *s)
{
    struct ipc_w w;

    ipc_w_init(&w);
    dlv_res_encode(&w, s);
    if (dlv_res_decode(w.p, w.len, d) != 0)
        log_panic("the engine's result does not decode");
    ipc_w_free(&w);
}

static int pending_jobs;

static void on_done(const struct dlv_res *res, void *arg)
{
    struct got *g = arg;

    copy_res(&g->r, res);
    g->done = 1;
    if (--pending_jobs == 0)
        event_base_loopbreak(base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(int *)arg = 1;
    event_base_loopbreak(base);
}

/* Run the loop until every started job is done or `secs` passed. */
static void spin(int secs)
{
    int expired = 0;
    struct timeval tv = {secs, 0};
    struct event *t = evtimer_new(base, on_deadline, &expired);

    evtimer_add(t, &tv);
    if (pending_jobs > 0 || secs > 0)
        event_base_dispatch(base);
    event_free(t);
}

/* Spin for ms milliseconds whatever happens (let servers and idle timers act). */
static void spin_ms(int ms)
{
    int expired = 0;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *t = evtimer_new(base, on_deadline, &expired);

    evtimer_add(t, &tv);
    while (!expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
}

static char rcpt_bufs[8][64];

static void req_init(struct dlv_req *q, const char *domain, int nrcpts, const char *const *locals)
{
    memset(q, 0, sizeof(*q));
    q->id = 1;
    q->queue_id = xstrdup("TESTQ");
    q->msg_offset = 0;
    q->msg_size = sizeof(message) - 1;
    q->sender = xstrdup("sender@origin.test");
    q->envid = xstrdup("");
    q->domain = xstrdup(domain);
    q->attempt = 1;
    q->target = DLV_TARGET_MX;
    q->tls = TLS_MODE_MAY;
    q->port = port;
    q->mx_override = xcalloc(1, sizeof(char *));
    q->rcpts = xcalloc((size_t)nrcpts, sizeof(*q->rcpts));
    q->nrcpts = (size_t)nrcpts;
    for (int i = 0; i < nrcpts; i++) {
        snprintf(rcpt_bufs[i], sizeof(rcpt_bufs[i]), "%s@%s", locals ? locals[i] : "user", domain);
        q->rcpts[i].idx = (uint32_t)i;
        q->rcpts[i].addr = xstrdup(rcpt_bufs[i]);
        q->rcpts[i].orcpt = xstrdup("");
    }
    q->dest_key = xstrdup("");
    q->max_per_conn = 1;
}

static void req_hosts(struct dlv_req *q, size_t n)
{
    q->target = DLV_TARGET_HOSTS;
    q->hosts = xcalloc(n, sizeof(*q->hosts));
    q->nhosts = n;
}

static void set_host(struct dlv_host *h, const char *name, uint16_t p, const char *label)
{
    h->name = xstrdup(name);
    h->port = p;
    h->tls = TLS_MODE_MAY;
    h->label = xstrdup(label);
    h->auth_user = xstrdup("");
    h->auth_pass = xstrdup("");
}

static void start(struct dlv_req *q, struct got *g)
{
    memset(g, 0, sizeof(*g));
    pending_jobs++;
    dlv_engine_start(eng, q, dup(msgfd), on_done, g);
}

/* Start one job and wait for it. */
static void run(struct dlv_req *q, struct got *g)
{
    start(q, g);
    spin(30);
    ok(g->done, "job finished");
}

static void got_free(struct got *g)
{
    dlv_res_free(&g->r);
}

static const char *status_of(const struct got *g, size_t i)
{
    return g->done && i < g->r.n ? dlv_status_name((enum dlv_status)g->r.r[i].status) : "none";
}

static struct fsrv mx1 = {.addr = "127.0.0.11"}, mx2 = {.addr = "127.0.0.12"},
                   mx3 = {.addr = "127.0.0.13"}, v6 = {.addr = "::1"};

static void reset_servers(void)
{
    struct fsrv *all[] = {&mx1, &mx2, &mx3, &v6};

    for (size_t i = 0; i < nitems(all); i++) {
        struct fsrv *s = all[i];
        struct evconnlistener *l = s->l;
        const char *a = s->addr;
        memset(s, 0, sizeof(*s));
        s->addr = a;
        s->l = l;
    }
}

static void test_failover_refused(void)
{
    struct dlv_req q;
    struct got g;
    char want[128];

    /* refused.test: 127.0.0.2 (nothing listens) then mx2 */
    reset_servers();
    req_init(&q, "refused.test", 3, (const char *const[]){"a", "b", "c"});
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "first MX refused, the second took it: a sent");
    is_str(status_of(&g, 2), "sent", "c sent");
    snprintf(want, sizeof(want), "mx2.refused.test[127.0.0.12]:%u", port);
    is_str(g.r.relay, want, "relay is the MX that took it");
    is_int(g.r.connections, 2, "two connections opened");
    is_int(g.r.host_index, -1, "no host index for MX targets");
    is_int(mx2.msgs, 1, "mx2 got one message");
    is_int(mx2.txns, 1, "in one transaction");
    is_str(mx2.last_rcpts, "a@refused.test b@refused.test c@refused.test",
           "carrying the three recipients");
    got_free(&g);
}

static void test_greeting_5xx(void)
{
    struct dlv_req q;
    struct got g;

    reset_servers();
    mx1.greeting = "554 5.7.1 not talking to you";
    req_init(&q, "two.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "5xx greeting at mx1: mx2 took it");
    is_int(mx1.conns, 1, "mx1 was contacted");
    is_int(mx2.msgs, 1, "mx2 has the message");
    got_free(&g);

    /* both refuse the session: deferred, not failed */
    reset_servers();
    mx1.greeting = mx2.greeting = "554 5.7.1 not talking to you";
    req_init(&q, "two.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "every MX refuses the session: deferred");
    is_int(g.r.r[0].step, DLV_STEP_GREETING, "step greeting");
    is_int(g.r.r[0].code, 554, "the server's code");
    is_str(g.r.r[0].dsn, "4.7.1", "a temporary enhanced code");
    got_free(&g);
}

static void test_rcpt_5xx_4xx(void)
{
    struct dlv_req q;
    struct got g;

    /* one RCPT 550 at mx1: only that one fails, and mx2 is not tried */
    reset_servers();
    mx1.rcpt_match = "bad@";
    mx1.rcpt_reply = "550 5.1.1 no such user";
    req_init(&q, "two.test", 3, (const char *const[]){"a", "bad", "c"});
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "a sent");
    is_str(status_of(&g, 1), "failed", "bad failed");
    is_str(status_of(&g, 2), "sent", "c sent");
    is_int(g.r.r[1].code, 550, "550");
    is_str(g.r.r[1].dsn, "5.1.1", "5.1.1");
    is_int(g.r.r[1].step, DLV_STEP_RCPT, "step rcpt");
    is_int(g.r.r[1].cls, DLV_CLASS_SMTP, "class smtp");
    is_int(g.r.r[1].idx, 1, "idx of the request");
    is_int(mx2.conns, 0, "the next MX is not tried after a 5xx");
    is_int(mx1.msgs, 1, "mx1 got the message once");
    is_str(mx1.last_rcpts, "a@two.test c@two.test", "for the two others");
    got_free(&g);

    /* every RCPT 550: failed, mx2 not tried */
    reset_servers();
    mx1.rcpt_match = "@";
    mx1.rcpt_reply = "550 5.1.1 no such user";
    req_init(&q, "two.test", 2, (const char *const[]){"x", "y"});
    run(&q, &g);
    is_str(status_of(&g, 0), "failed", "all refused with 5xx: x failed");
    is_str(status_of(&g, 1), "failed", "y failed");
    is_int(mx2.conns, 0, "no next MX");
    got_free(&g);

    /* one RCPT 451 at mx1: the others sent there, that one goes to mx2 */
    reset_servers();
    mx1.rcpt_match = "later@";
    mx1.rcpt_reply = "451 4.3.0 try later";
    req_init(&q, "two.test", 2, (const char *const[]){"a", "later"});
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "a sent at mx1");
    is_str(status_of(&g, 1), "sent", "the 451 one sent at mx2");
    is_int(mx1.msgs, 1, "mx1: one message");
    is_str(mx1.last_rcpts, "a@two.test", "for a");
    is_int(mx2.msgs, 1, "mx2: one message");
    is_str(mx2.last_rcpts, "later@two.test", "for the deferred one only");
    ok(strstr(g.r.relay, "mx1.two.test") != NULL, "relay names the first MX that took it");
    got_free(&g);

    /* 4xx everywhere: deferred with the last server's reply */
    reset_servers();
    mx1.rcpt_match = mx2.rcpt_match = "@";
    mx1.rcpt_reply = "450 4.2.0 mx1 busy";
    mx2.rcpt_reply = "451 4.3.0 mx2 busy";
    req_init(&q, "two.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "4xx at every MX: deferred");
    is_int(g.r.r[0].code, 451, "with the last reply");
    ok(strstr(g.r.r[0].text, "mx2 busy") != NULL, "and its text");
    ok(strstr(g.r.relay, "mx2.two.test") != NULL, "relay: the last one tried");
    got_free(&g);
}

static void test_drop_in_data(void)
{
    struct dlv_req q;
    struct got g;

    /* the only MX drops the connection in DATA: deferred */
    reset_servers();
    mx1.drop_in_data = 1;
    req_init(&q, "solo.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "connection dropped in DATA: deferred");
    is_int(g.r.r[0].cls, DLV_CLASS_NETWORK, "class network");
    ok(g.r.r[0].step == DLV_STEP_DATA || g.r.r[0].step == DLV_STEP_DOT, "step data or dot (%s)",
       dlv_step_name((enum dlv_step)g.r.r[0].step));
    is_int(mx1.msgs, 0, "nothing accepted");
    got_free(&g);

    /* the retry (the next attempt qmgr schedules) gets it there once */
    mx1.drop_in_data = 0;
    req_init(&q, "solo.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "next attempt: sent");
    is_int(mx1.msgs, 1, "one message arrived");
    got_free(&g);

    /* with a second MX, the same job goes on to it */
    reset_servers();
    mx1.drop_in_data = 1;
    req_init(&q, "one.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "dropped at mx1, sent at mx2");
    is_int(mx1.msgs + mx2.msgs, 1, "exactly one copy arrived");
    is_int(mx2.msgs, 1, "at mx2");
    got_free(&g);
}

static void test_tls_required(void)
{
    struct dlv_req q;
    struct got g;

    reset_servers();
    req_init(&q, "one.test", 1, NULL);
    q.tls = TLS_MODE_ENCRYPT;
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "tls=encrypt to a server without STARTTLS: deferred");
    is_int(g.r.r[0].cls, DLV_CLASS_TLS, "class tls");
    is_int(g.r.r[0].step, DLV_STEP_STARTTLS, "step starttls");
    ok(strstr(g.r.r[0].text, "TLS required") != NULL, "reason: %s", g.r.r[0].text);
    is_int(mx1.txns, 0, "no transaction in plaintext");
    got_free(&g);
}

static void test_dns_failures(void)
{
    struct dlv_req q;
    struct got g;

    req_init(&q, "nullmx.test", 2, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "failed", "null MX: failed");
    is_str(status_of(&g, 1), "failed", "every recipient");
    is_int(g.r.r[0].cls, DLV_CLASS_DNS, "class dns");
    is_int(g.r.r[0].step, DLV_STEP_DNS, "step dns");
    is_str(g.r.r[0].dsn, "5.1.10", "5.1.10");
    is_int(g.r.connections, 0, "no connection");
    got_free(&g);

    req_init(&q, "nope.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "failed", "NXDOMAIN: failed");
    is_str(g.r.r[0].dsn, "5.1.2", "5.1.2");
    got_free(&g);

    req_init(&q, "servfail.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "SERVFAIL: deferred");
    is_int(g.r.r[0].cls, DLV_CLASS_DNS, "class dns");
    got_free(&g);

    /* no dnsd at all */
    dlv_engine_set_dns(eng, NULL);
    req_init(&q, "one.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "dnsd unavailable: deferred");
    is_int(g.r.r[0].cls, DLV_CLASS_LOCAL, "class local: our outage, not the domain's");
    ok(strstr(g.r.r[0].text, "dnsd") != NULL, "reason names dnsd");
    got_free(&g);
    dlv_engine_set_dns(eng, dns_client);
}

static void test_ipv6(void)
{
    struct dlv_req q;
    struct got g;

    reset_servers();
    req_init(&q, "v6only.test", 1, NULL);
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "IPv6-only MX: sent");
    is_int(v6.msgs, 1, "the ::1 server has it");
    ok(strstr(g.r.relay, "[::1]") != NULL, "relay shows the IPv6 address: %s", g.r.relay);
    got_free(&g);
}

static uint32_t rnd_seq;
static uint32_t rnd_alternate(uint32_t n)
{
    return n ? rnd_seq++ % n : 0;
}

static void test_shuffle(void)
{
    struct dlv_engine_opts o = {.base = base,
                                .helo_name = "postern.test",
                                .connect_timeout = 5,
                                .timeout = 10,
                                .rnd = rnd_alternate};
    struct dlv_req q;
    struct got g;

    reset_servers();
    dlv_engine_set_opts(eng, &o);
    for (int i = 0; i < 4; i++) {
        req_init(&q, "equal.test", 1, NULL);
        run(&q, &g);
        got_free(&g);
    }
    ok(mx1.msgs > 0 && mx2.msgs > 0, "equal preferences: both MX hosts used (%d, %d)", mx1.msgs,
       mx2.msgs);
    is_int(mx1.msgs + mx2.msgs, 4, "four messages in all");
    o.rnd = NULL;
    dlv_engine_set_opts(eng, &o);
}

static void test_hosts(void)
{
    struct dlv_req q;
    struct got g;
    char lit[64];

    /* gateway A resolves to a dead address, B is a literal with a port */
    reset_servers();
    req_init(&q, "far.test", 2, NULL);
    req_hosts(&q, 2);
    set_host(&q.hosts[0], "gwa.test", 0, "A");
    snprintf(lit, sizeof(lit), "127.0.0.13:%u", port);
    set_host(&q.hosts[1], lit, 0, "B");
    q.port = 1; /* would fail: the literal's own port must win */
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "listed hosts: the second one took it");
    is_int(g.r.host_index, 1, "host index 1");
    is_str(g.r.label, "B", "its label");
    is_int(mx3.msgs, 1, "127.0.0.13 has it");
    got_free(&g);

    /* a listed host that does not resolve: temporary, never failed */
    req_init(&q, "far.test", 1, NULL);
    req_hosts(&q, 1);
    set_host(&q.hosts[0], "nowhere.test", 0, "N");
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "unresolvable gateway: deferred");
    is_int(g.r.r[0].cls, DLV_CLASS_DNS, "class dns");
    is_int(g.r.host_index, -1, "no host took it");
    got_free(&g);

    /* a host looked up through dnsd, on the request's port */
    reset_servers();
    req_init(&q, "far.test", 1, NULL);
    req_hosts(&q, 1);
    set_host(&q.hosts[0], "[gwb.test]", 0, "B2");
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "[name] is looked up as name");
    is_int(mx2.msgs, 1, "gwb.test = 127.0.0.12");
    got_free(&g);
}

static void test_reuse(void)
{
    struct dlv_req q;
    struct got g;

    /* max_per_conn 3: four messages over two connections */
    reset_servers();
    for (int i = 0; i < 4; i++) {
        req_init(&q, "one.test", 1, NULL);
        free(q.dest_key);
        q.dest_key = xstrdup("direct:one.test");
        q.max_per_conn = 3;
        q.idle_timeout_s = 1;
        run(&q, &g);
        is_str(status_of(&g, 0), "sent", "message %d sent", i + 1);
        is_int(g.r.reused, i == 1 || i == 2, "message %d: reused %d", i + 1, i == 1 || i == 2);
        is_int(g.r.connections, i == 0 || i == 3, "message %d: connections", i + 1);
        got_free(&g);
    }
    is_int(mx1.msgs, 4, "four messages");
    is_int(mx1.conns, 2, "over two connections");
    is_int(mx1.rsets, 2, "RSET before the 2nd and 3rd transaction");
    is_int(mx1.quits, 1, "QUIT after the third");
    is_int(dlv_engine_idle(eng), 1, "the second connection is idle");
    spin_ms(1600);
    is_int(dlv_engine_idle(eng), 0, "closed after idle_timeout_s");
    is_int(mx1.quits, 2, "with QUIT");
    is_int(mx1.open_conns, 0, "no connection left open");

    /* a different key does not share */
    reset_servers();
    req_init(&q, "one.test", 1, NULL);
    free(q.dest_key);
    q.dest_key = xstrdup("k1");
    q.max_per_conn = 5;
    q.idle_timeout_s = 10;
    run(&q, &g);
    got_free(&g);
    req_init(&q, "one.test", 1, NULL);
    free(q.dest_key);
    q.dest_key = xstrdup("k2");
    q.max_per_conn = 5;
    q.idle_timeout_s = 10;
    run(&q, &g);
    is_int(g.r.reused, 0, "another key: a new connection");
    got_free(&g);
    is_int(mx1.conns, 2, "two connections");
    is_int(dlv_engine_idle(eng), 2, "both idle");
    dlv_engine_close_idle(eng);
    is_int(dlv_engine_idle(eng), 0, "close_idle empties the cache");

    /* the server closes the idle connection: the next job opens a new one */
    reset_servers();
    mx1.close_after_txn = 1;
    req_init(&q, "one.test", 1, NULL);
    free(q.dest_key);
    q.dest_key = xstrdup("k3");
    q.max_per_conn = 5;
    q.idle_timeout_s = 10;
    run(&q, &g);
    got_free(&g);
    spin_ms(200);
    is_int(dlv_engine_idle(eng), 0, "a connection the server closed leaves the cache");
    mx1.close_after_txn = 0;

    /* a reused connection found dead at RSET: new connection, nothing counted */
    reset_servers();
    mx1.rset_reply = "421 4.4.2 idle too long";
    for (int i = 0; i < 2; i++) {
        req_init(&q, "one.test", 1, NULL);
        free(q.dest_key);
        q.dest_key = xstrdup("k4");
        q.max_per_conn = 5;
        q.idle_timeout_s = 10;
        run(&q, &g);
        is_str(status_of(&g, 0), "sent", "job %d sent", i + 1);
        if (i == 1) {
            is_int(g.r.connections, 1, "one new connection after the dead one");
            is_int(g.r.reused, 0, "not counted as reused");
        }
        got_free(&g);
    }
    is_int(mx1.rsets, 1, "the RSET was tried");
    is_int(mx1.msgs, 2, "both messages arrived");
    is_int(mx1.conns, 2, "on two connections");
    is_int(mx2.conns, 0, "the next MX was not needed");
    dlv_engine_close_idle(eng);
    spin_ms(100);
}

/* The matching of idle sessions to the host a job is about to try, on a
 * table: an idle session made by one request for one of its hosts, and a
 * later request at one of its hosts. */
struct gw {
    const char *label, *host;
    uint16_t port;
    enum tls_mode tls;
    const char *user;
};

static void gw_req(struct dlv_req *q, const char *key, const struct gw *a, const struct gw *b)
{
    req_init(q, "relayed.test", 1, NULL);
    free(q->dest_key);
    q->dest_key = xstrdup(key);
    q->port = 25;
    req_hosts(q, b ? 2 : 1);
    for (size_t i = 0; i < q->nhosts; i++) {
        const struct gw *x = i == 0 ? a : b;
        set_host(&q->hosts[i], x->host, x->port, x->label);
        q->hosts[i].tls = (uint8_t)x->tls;
        free(q->hosts[i].auth_user);
        q->hosts[i].auth_user = xstrdup(x->user);
    }
}

static void test_reuse_match(void)
{
    static const struct gw gwp = {"gwp", "127.0.0.1", 2525, TLS_MODE_MAY, ""},
                           gwq = {"gwq", "smtp.isp.test", 587, TLS_MODE_ENCRYPT, "u"},
                           gwa = {"gwa", "127.0.0.1", 2601, TLS_MODE_MAY, ""},
                           gwb = {"gwb", "127.0.0.1", 2602, TLS_MODE_MAY, ""},
                           gwp_noport = {"gwp", "127.0.0.1", 0, TLS_MODE_MAY, ""},
                           gwp_25 = {"gwp", "127.0.0.1", 25, TLS_MODE_MAY, ""},
                           gwp_renamed = {"gwz", "127.0.0.1", 2525, TLS_MODE_MAY, ""},
                           gwp_moved = {"gwp", "127.0.0.2", 2525, TLS_MODE_MAY, ""},
                           gwp_none = {"gwp", "127.0.0.1", 2525, TLS_MODE_NONE, ""},
                           gwq_user2 = {"gwq", "smtp.isp.test", 587, TLS_MODE_ENCRYPT, "v"},
                           gwq_nouser = {"gwq", "smtp.isp.test", 587, TLS_MODE_ENCRYPT, ""};
    static const struct {
        const char *name;
        const struct gw *park_a, *park_b; /* the request that parked the session */
        int park_hi;                      /* the host it was connected to */
        const struct gw *use_a, *use_b;   /* the request looking for one */
        int at;                           /* the host it is about to try */
        int want;
    } t[] = {
        {"the first gateway's own session, order unchanged", &gwp, &gwq, 0, &gwp, &gwq, 0, 1},
        {"gwq's session (it took the message after gwp failed) is not gwp's", &gwp, &gwq, 1, &gwp,
         &gwq, 0, 0},
        {"... but gwq's once the job is at gwq", &gwp, &gwq, 1, &gwp, &gwq, 1, 1},
        {"... and when the rotation puts gwq first", &gwp, &gwq, 1, &gwq, &gwp, 0, 1},
        {"gwp's session is not used while the job is at gwq", &gwp, &gwq, 0, &gwp, &gwq, 1, 0},
        {"same address, other port: gwb's session is not gwa's", &gwa, &gwb, 1, &gwa, &gwb, 0, 0},
        {"... it is gwb's", &gwa, &gwb, 1, &gwa, &gwb, 1, 1},
        {"the request's port stands for a host without one", &gwp_noport, NULL, 0, &gwp_25, NULL, 0,
         1},
        {"another name for the same host and port", &gwp, NULL, 0, &gwp_renamed, NULL, 0, 0},
        {"the gateway moved to another host (reload)", &gwp, NULL, 0, &gwp_moved, NULL, 0, 0},
        {"another TLS mode", &gwp, NULL, 0, &gwp_none, NULL, 0, 0},
        {"another AUTH user", &gwq, NULL, 0, &gwq_user2, NULL, 0, 0},
        {"AUTH now, none before", &gwq_nouser, NULL, 0, &gwq, NULL, 0, 0},
        {"the same gateway in another domain's order", &gwq, &gwp, 0, &gwq, NULL, 0, 1},
        {"a host index past the list", &gwp, NULL, 0, &gwp, NULL, 1, 0},
    };
    struct dlv_req park, use, mxa, mxb;
    struct dlv_conn_id id;

    for (size_t i = 0; i < nitems(t); i++) {
        gw_req(&park, "relay:x", t[i].park_a, t[i].park_b);
        gw_req(&use, "relay:y", t[i].use_a, t[i].use_b);
        dlv_conn_id_of(&park, t[i].park_hi, &id);
        is_int(dlv_reuse_at(&use, t[i].at, &id), t[i].want, "%s", t[i].name);
        dlv_req_free(&park);
        dlv_req_free(&use);
    }
    /* no dest_key: the request asks for no reuse */
    gw_req(&park, "relay:x", &gwp, NULL);
    gw_req(&use, "", &gwp, NULL);
    dlv_conn_id_of(&park, 0, &id);
    is_int(dlv_reuse_at(&use, 0, &id), 0, "a request without dest_key reuses nothing");
    dlv_req_free(&use);
    /* MX targets: the dest_key and TLS mode; never a listed host's session */
    req_init(&mxa, "one.test", 1, NULL);
    free(mxa.dest_key);
    mxa.dest_key = xstrdup("one.test:25");
    req_init(&mxb, "one.test", 1, NULL);
    free(mxb.dest_key);
    mxb.dest_key = xstrdup("one.test:25");
    dlv_conn_id_of(&mxa, -1, &id);
    is_int(dlv_reuse_at(&mxb, -1, &id), 1, "MX: same destination key and TLS mode");
    mxb.tls = TLS_MODE_ENCRYPT;
    is_int(dlv_reuse_at(&mxb, -1, &id), 0, "MX: another TLS mode");
    mxb.tls = mxa.tls;
    is_int(dlv_reuse_at(&mxb, 0, &id), 0, "MX: only at the start (-1)");
    dlv_conn_id_of(&park, 0, &id);
    is_int(dlv_reuse_at(&mxb, -1, &id), 0, "MX: a gateway's session is not the destination's");
    dlv_conn_id_of(&mxa, -1, &id);
    is_int(dlv_reuse_at(&park, 0, &id), 0, "a gateway job does not take an MX session");
    dlv_req_free(&park);
    dlv_req_free(&mxa);
    dlv_req_free(&mxb);
}

/* Two gateways end to end in the engine: the idle session of the one that
 * took a message is used only when the job is at that gateway, and the
 * result names the gateway that carried it. */
static void gw_job(struct dlv_req *q, const char *first, const char *second)
{
    struct fsrv *a = strcmp(first, "gwp") == 0 ? &mx1 : strcmp(first, "gwq") == 0 ? &mx2 : &mx3;
    struct fsrv *b = strcmp(second, "gwp") == 0 ? &mx1 : strcmp(second, "gwq") == 0 ? &mx2 : &mx3;

    req_init(q, "relayed.test", 1, NULL);
    free(q->dest_key);
    q->dest_key = xasprintf("relay:%s", first);
    q->max_per_conn = 10;
    q->idle_timeout_s = 10;
    req_hosts(q, 2);
    set_host(&q->hosts[0], a->addr, port, first);
    set_host(&q->hosts[1], b->addr, port, second);
}

static void test_reuse_gateways(void)
{
    struct dlv_req q;
    struct got g;

    reset_servers();
    dlv_engine_close_idle(eng);
    /* gwp (mx1) refuses once; gwq (mx2) takes message 1 */
    mx1.greeting = "421 4.3.2 busy, try later";
    gw_job(&q, "gwp", "gwq");
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "message 1 sent");
    is_str(g.r.label, "gwq", "by gwq");
    is_int(g.r.host_index, 1, "the second of the order");
    is_int(g.r.conn_kept, 1, "gwq's connection is kept idle");
    got_free(&g);
    /* gwp works again: message 2 goes to gwp, not over gwq's idle session */
    mx1.greeting = NULL;
    gw_job(&q, "gwp", "gwq");
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "message 2 sent");
    is_str(g.r.label, "gwp", "by gwp, the first of the order");
    is_int(g.r.host_index, 0, "host index 0");
    is_int(g.r.reused, 0, "over a new connection");
    is_int(mx1.msgs, 1, "gwp got it");
    is_int(mx2.msgs, 1, "gwq did not");
    is_int(dlv_engine_idle(eng), 2, "both sessions idle, each its own");
    got_free(&g);
    /* the rotation puts gwq first: its own idle session carries message 3 */
    gw_job(&q, "gwq", "gwp");
    run(&q, &g);
    is_str(g.r.label, "gwq", "message 3 by gwq");
    is_int(g.r.reused, 1, "over gwq's idle session");
    is_int(mx2.conns, 1, "gwq was connected to once");
    got_free(&g);
    /* a first gateway that is down (gwx, mx3): the job reaches gwq and takes
     * gwq's idle session rather than a new connection */
    mx3.greeting = "421 4.3.2 down";
    gw_job(&q, "gwx", "gwq");
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "message 4 sent");
    is_int(mx3.conns, 1, "gwx was tried first");
    is_str(g.r.label, "gwq", "by gwq");
    is_int(g.r.host_index, 1, "credited to gwq");
    is_int(g.r.reused, 1, "over gwq's idle session");
    is_int(mx2.conns, 1, "still one connection to gwq");
    got_free(&g);
    dlv_engine_close_idle(eng);
    spin_ms(100);
}

static void keyed(struct dlv_req *q, const char *key, uint32_t per_conn, uint32_t idle_s,
                  uint32_t delay_ms)
{
    req_init(q, "one.test", 1, NULL);
    free(q->dest_key);
    q->dest_key = xstrdup(key);
    q->max_per_conn = per_conn;
    q->idle_timeout_s = idle_s;
    q->connection_delay_ms = delay_ms;
}

/* conn_kept in the result, and connection_delay before a new connection. */
static void test_conn_delay(void)
{
    struct dlv_req q;
    struct got g;

    reset_servers();
    keyed(&q, "cd1", 2, 10, 600);
    run(&q, &g);
    is_int(g.r.conn_kept, 1, "first message: the connection is kept idle");
    got_free(&g);
    keyed(&q, "cd1", 2, 10, 600);
    run(&q, &g);
    is_int(g.r.reused, 1, "second message over it (no pause for a reused connection)");
    is_int(g.r.conn_kept, 0, "second message: closed after max_per_conn");
    got_free(&g);
    keyed(&q, "cd1", 2, 10, 600);
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "third message sent");
    is_int(g.r.connections, 1, "over a new connection");
    ok(g.r.duration_us >= 550000, "which waited for connection_delay (%.3fs)",
       (double)g.r.duration_us / 1e6);
    got_free(&g);
    is_int(mx1.conns, 2, "two connections in all");

    /* another key is not held up by cd1's delay */
    keyed(&q, "cd2", 2, 10, 0);
    run(&q, &g);
    is_int(g.r.connections, 1, "another key, no delay: a new connection");
    got_free(&g);

    /* an idle connection closed by its timer starts the delay too */
    dlv_engine_close_idle(eng);
    reset_servers();
    keyed(&q, "cd3", 5, 1, 800);
    run(&q, &g);
    is_int(g.r.conn_kept, 1, "kept idle");
    got_free(&g);
    spin_ms(1300); /* closed after 1 s idle */
    is_int(dlv_engine_idle(eng), 0, "the idle connection was closed");
    keyed(&q, "cd3", 5, 1, 800);
    run(&q, &g);
    is_int(g.r.connections, 1, "the next message opens a new connection");
    ok(g.r.duration_us >= 350000, "after the rest of connection_delay since the idle close (%.3fs)",
       (double)g.r.duration_us / 1e6);
    got_free(&g);

    /* a job cancelled while it waits: no callback, nothing left behind */
    keyed(&q, "cd4", 1, 1, 0);
    run(&q, &g);
    is_int(g.r.conn_kept, 0, "max_per_conn 1: closed at once");
    got_free(&g);
    keyed(&q, "cd4", 1, 1, 5000);
    memset(&g, 0, sizeof(g));
    struct dlv_job *j = dlv_engine_start(eng, &q, dup(msgfd), on_done, &g);
    spin_ms(200);
    ok(!g.done, "a job waiting for connection_delay has not finished");
    dlv_job_cancel(j);
    is_int(dlv_engine_jobs(eng), 0, "cancelled while waiting");
    dlv_engine_close_idle(eng);
    spin_ms(100);
}

static void test_cancel(void)
{
    struct dlv_req q;
    struct got g;
    struct dlv_job *j;

    reset_servers();
    req_init(&q, "one.test", 1, NULL);
    memset(&g, 0, sizeof(g));
    j = dlv_engine_start(eng, &q, dup(msgfd), on_done, &g);
    is_int(dlv_engine_jobs(eng), 1, "one job");
    dlv_job_cancel(j);
    is_int(dlv_engine_jobs(eng), 0, "cancelled");
    spin_ms(300);
    ok(!g.done, "no callback after cancel");
    is_int(mx1.msgs, 0, "nothing sent");
}

static void test_no_fd(void)
{
    struct dlv_req q;
    struct got g;

    reset_servers();
    req_init(&q, "one.test", 1, NULL);
    memset(&g, 0, sizeof(g));
    pending_jobs++;
    dlv_engine_start(eng, &q, -1, on_done, &g);
    ok(!g.done, "no callback from inside dlv_engine_start");
    spin(10);
    is_str(status_of(&g, 0), "deferred", "no message fd: deferred");
    is_int(g.r.r[0].cls, DLV_CLASS_LOCAL, "class local");
    is_int(mx1.conns, 0, "no connection");
    got_free(&g);
}

/* ---- TLS policy per host: the decision table (pure) ---- */

static void tlsa_host(struct dns_host *h, enum dns_tlsa_state st, int usable, int pkix)
{
    static const unsigned char d32[32] = {1, 2, 3};

    dns_host_set_tlsa_state(h, st, st == DNS_TLSA_FAILED ? "SERVFAIL for _25._tcp.x" : "");
    if (usable)
        dns_host_add_tlsa(h, 3, 1, 1, d32, sizeof(d32));
    if (pkix) {
        dns_host_add_tlsa(h, 1, 1, 1, d32, sizeof(d32));
        dns_host_add_tlsa(h, 3, 1, 1, d32, 31); /* wrong digest length: unusable */
    }
}

static void test_tls_plan(void)
{
    static const char *const mx2only[] = {"mx2.p.test", "*.other.test"};
    struct dns_result r;
    struct dns_host *h1, *h2;
    struct dlv_tls_plan p;

    dns_result_init(&r, "p.test");
    dns_result_add_host(&r, "mx1.p.test", 10, 0);
    dns_result_add_host(&r, "mx2.p.test", 20, 0);
    h1 = &r.hosts[0]; /* adding moves the array */
    h2 = &r.hosts[1];

    /* which modes ask dnsd for TLSA */
    ok(dlv_tls_wants_dane(TLS_MODE_MAY, 0) && dlv_tls_wants_dane(TLS_MODE_ENCRYPT, 0) &&
           dlv_tls_wants_dane(TLS_MODE_DANE, 0) && dlv_tls_wants_dane(TLS_MODE_DANE_ONLY, 0),
       "MX: may, encrypt, dane, dane-only ask for TLSA");
    ok(!dlv_tls_wants_dane(TLS_MODE_NONE, 0) && !dlv_tls_wants_dane(TLS_MODE_VERIFY, 0),
       "MX: none and verify do not");
    ok(dlv_tls_wants_dane(TLS_MODE_DANE, 1) && dlv_tls_wants_dane(TLS_MODE_DANE_ONLY, 1) &&
           !dlv_tls_wants_dane(TLS_MODE_MAY, 1) && !dlv_tls_wants_dane(TLS_MODE_ENCRYPT, 1),
       "listed hosts: only dane and dane-only");

    /* TLSA found with a usable record: DANE, whatever MTA-STS says */
    tlsa_host(h1, DNS_TLSA_FOUND, 1, 1);
    dns_result_set_sts(&r, DNS_STS_POLICY, DNS_STS_MODE_ENFORCE, "id7", 86400, mx2only, 2, "");
    dlv_tls_plan(TLS_MODE_MAY, &r, h1, 0, &p);
    ok(p.dane && p.mode == TLS_MODE_DANE && !p.skip, "found + usable: DANE (from may)");
    is_int(p.ntlsa, 1, "found + usable: only the usable record is kept");
    is_int(p.policy, DLV_TLS_POLICY_DANE, "DANE wins over MTA-STS enforce");
    dlv_tls_plan(TLS_MODE_DANE_ONLY, &r, h1, 0, &p);
    ok(p.dane && p.mode == TLS_MODE_DANE, "found + usable: DANE (dane-only)");
    dlv_tls_plan(TLS_MODE_VERIFY, &r, h1, 0, &p);
    ok(!p.dane && p.mode == TLS_MODE_VERIFY && p.policy == DLV_TLS_POLICY_STS_ENFORCE,
       "verify ignores TLSA records (then MTA-STS applies)");
    dlv_tls_plan(TLS_MODE_NONE, &r, h1, 1, &p);
    ok(!p.dane && p.mode == TLS_MODE_NONE && p.policy == DLV_TLS_POLICY_DOMAIN,
       "a listed host with tls none: no DANE, never MTA-STS");
    dlv_tls_plan(TLS_MODE_DANE, &r, h1, 1, &p);
    ok(p.dane && p.mode == TLS_MODE_DANE, "a listed host with tls dane: DANE");

    /* found, nothing usable: TLS without authentication */
    dns_result_free(&r);
    dns_result_init(&r, "p.test");
    dns_result_add_host(&r, "mx1.p.test", 10, 0);
    dns_result_add_host(&r, "mx2.p.test", 20, 0);
    h1 = &r.hosts[0]; /* adding moves the array */
    h2 = &r.hosts[1];
    tlsa_host(h1, DNS_TLSA_FOUND, 0, 1);
    dlv_tls_plan(TLS_MODE_DANE, &r, h1, 0, &p);
    ok(!p.dane && p.mode == TLS_MODE_ENCRYPT && !p.skip && p.policy == DLV_TLS_POLICY_DANE,
       "found, only PKIX/unusable records: encrypt");

    /* failed: the host is not used */
    tlsa_host(h2, DNS_TLSA_FAILED, 0, 0);
    dlv_tls_plan(TLS_MODE_MAY, &r, h2, 0, &p);
    ok(p.skip, "TLSA lookup failed: host skipped (may)");
    ok(strstr(p.reason, "TLSA lookup failed: SERVFAIL") == p.reason, "reason: %s", p.reason);
    dlv_tls_plan(TLS_MODE_NONE, &r, h2, 0, &p);
    ok(!p.skip && p.mode == TLS_MODE_NONE, "TLSA failed but tls none: not asked, used");

    /* none, insecure, not asked */
    for (int st = DNS_TLSA_NOT_ASKED; st <= DNS_TLSA_INSECURE; st++) {
        struct dns_host *h = st == DNS_TLSA_NONE ? h1 : h2;
        dns_host_set_tlsa_state(h, (enum dns_tlsa_state)st, "");
        dlv_tls_plan(TLS_MODE_DANE, &r, h, 0, &p);
        ok(!p.skip && !p.dane && p.mode == TLS_MODE_MAY, "TLSA %s: dane behaves as may",
           dns_tlsa_state_name((unsigned)st));
        dlv_tls_plan(TLS_MODE_DANE_ONLY, &r, h, 0, &p);
        ok(p.skip && strstr(p.reason, "no secure TLSA records for ") != NULL,
           "TLSA %s: dane-only skips the host (%s)", dns_tlsa_state_name((unsigned)st), p.reason);
        dlv_tls_plan(TLS_MODE_ENCRYPT, &r, h, 0, &p);
        ok(!p.skip && p.mode == TLS_MODE_ENCRYPT, "TLSA %s: encrypt stays encrypt",
           dns_tlsa_state_name((unsigned)st));
    }
    dlv_tls_plan(TLS_MODE_DANE_ONLY, NULL, NULL, 1, &p);
    ok(p.skip, "a literal address under dane-only: skipped");

    /* MTA-STS (no DANE on h1, h2 now) */
    dns_host_set_tlsa_state(h1, DNS_TLSA_NONE, "");
    dns_host_set_tlsa_state(h2, DNS_TLSA_NONE, "");
    dns_result_set_sts(&r, DNS_STS_POLICY, DNS_STS_MODE_ENFORCE, "id7", 86400, mx2only, 2, "");
    dlv_tls_plan(TLS_MODE_MAY, &r, h1, 0, &p);
    ok(p.skip && p.policy == DLV_TLS_POLICY_STS_ENFORCE,
       "enforce: a host not in the policy is skipped");
    is_str(p.reason, "mx1.p.test is not in the MTA-STS policy of p.test (id id7)", "its reason");
    dlv_tls_plan(TLS_MODE_MAY, &r, h2, 0, &p);
    ok(!p.skip && p.mode == TLS_MODE_VERIFY, "enforce: a host in the policy needs verify");
    dlv_tls_plan(TLS_MODE_DANE, &r, h2, 0, &p);
    ok(!p.skip && p.mode == TLS_MODE_VERIFY, "enforce over dane without records: verify");
    dlv_tls_plan(TLS_MODE_MAY, &r, h2, 1, &p);
    ok(p.mode == TLS_MODE_MAY && p.policy == DLV_TLS_POLICY_DOMAIN,
       "MTA-STS never applies to listed hosts");
    dns_result_set_sts(&r, DNS_STS_POLICY, DNS_STS_MODE_TESTING, "id8", 86400, mx2only, 2, "");
    dlv_tls_plan(TLS_MODE_MAY, &r, h1, 0, &p);
    ok(!p.skip && p.mode == TLS_MODE_MAY && p.evaluate && p.sts_fail &&
           p.policy == DLV_TLS_POLICY_STS_TESTING,
       "testing: not in the policy: delivered as may, checked, enforce would have failed");
    dlv_tls_plan(TLS_MODE_ENCRYPT, &r, h2, 0, &p);
    ok(!p.skip && p.mode == TLS_MODE_ENCRYPT && p.evaluate && !p.sts_fail,
       "testing: in the policy: the domain's mode, certificate checked");
    dns_result_set_sts(&r, DNS_STS_POLICY, DNS_STS_MODE_NONE, "id9", 86400, NULL, 0, "");
    dlv_tls_plan(TLS_MODE_MAY, &r, h1, 0, &p);
    ok(!p.skip && p.mode == TLS_MODE_MAY && p.policy == DLV_TLS_POLICY_DOMAIN,
       "policy mode none: the domain's mode");
    dns_result_set_sts(&r, DNS_STS_FAILED, DNS_STS_MODE_NONE, "", 0, NULL, 0, "fetch failed");
    dlv_tls_plan(TLS_MODE_MAY, &r, h1, 0, &p);
    ok(!p.skip && p.mode == TLS_MODE_MAY && p.policy == DLV_TLS_POLICY_DOMAIN,
       "failed fetch: the domain's mode");

    /* the patterns */
    {
        static const char *const pats[] = {"*.p.test"};
        struct dns_host *h3, *h4;
        dns_result_add_host(&r, "a.b.p.test", 30, 0);
        dns_result_add_host(&r, "MX1.P.TEST.", 40, 0);
        h1 = &r.hosts[0];
        h3 = &r.hosts[2];
        h4 = &r.hosts[3];
        dns_result_set_sts(&r, DNS_STS_POLICY, DNS_STS_MODE_ENFORCE, "i", 1, pats, 1, "");
        dlv_tls_plan(TLS_MODE_MAY, &r, h1, 0, &p);
        ok(!p.skip, "*.p.test matches mx1.p.test");
        dlv_tls_plan(TLS_MODE_MAY, &r, h3, 0, &p);
        ok(p.skip, "*.p.test does not match a.b.p.test");
        dns_result_set_sts(&r, DNS_STS_POLICY, DNS_STS_MODE_ENFORCE, "i", 1, mx2only, 1, "");
        dlv_tls_plan(TLS_MODE_MAY, &r, h4, 0, &p);
        ok(p.skip, "mx2.p.test does not match MX1.P.TEST.");
        free(h4->name);
        h4->name = xstrdup("MX2.P.TEST.");
        dlv_tls_plan(TLS_MODE_MAY, &r, h4, 0, &p);
        ok(!p.skip, "exact match ignores case and a final dot");
    }
    is_str(dlv_tls_policy_name(DLV_TLS_POLICY_STS_TESTING), "mta-sts testing", "policy names");
    dns_result_free(&r);
}

/* ---- TLS policy per host in the engine, with the fake dnsd ---- */

static const struct dlv_tls_out *find_out(const struct got *g, const char *mx)
{
    for (size_t i = 0; i < g->r.ntls_out; i++)
        if (strcmp(g->r.tls_out[i].mx_host, mx) == 0)
            return &g->r.tls_out[i];
    return NULL;
}

/* A delivery to chg.test that may reuse its connection (10 messages,
 * idle 10 s), with MTA-STS asked or not. */
static void chg_req(struct dlv_req *q, int sts)
{
    req_init(q, "chg.test", 1, NULL);
    free(q->dest_key);
    q->dest_key = xstrdup("direct:chg.test");
    q->max_per_conn = 10;
    q->idle_timeout_s = 10;
    q->mta_sts = (uint8_t)sts;
}

/*
 * An idle connection opened before a TLS policy appeared is not reused
 * once the lookup shows the policy: mx1's plaintext session stays unused
 * when an MTA-STS policy now lists only mx2, and when mx1 now publishes
 * DANE records. Without a change, the session is reused after the lookup.
 */
static void test_reuse_policy(void)
{
    static const char *const only_mx2[] = {"mx2.chg.test"};
    static const unsigned char d32[32] = {9, 8, 7};
    struct dns_result *r;
    struct dlv_req q;
    struct got g;
    int msgs;

    reset_servers();
    dns_mx("chg.test", "mx1.chg.test=127.0.0.11 mx2.chg.test=127.0.0.12", 0);
    r = &dns_tab[ndns - 1].r;
    for (int i = 0; i < 2; i++) {
        chg_req(&q, 1);
        run(&q, &g);
        is_str(status_of(&g, 0), "sent", "no policy: message %d sent", i + 1);
        is_int(g.r.reused, i == 1, "no policy: message %d reused %d (after the lookup)", i + 1,
               i == 1);
        got_free(&g);
    }
    is_int(mx1.conns, 1, "one connection to mx1 so far");
    is_int(dlv_engine_idle(eng), 1, "and it is idle");

    /* an MTA-STS policy (enforce) now lists only mx2 */
    dns_result_set_sts(r, DNS_STS_POLICY, DNS_STS_MODE_ENFORCE, "new1", 86400, only_mx2, 1, "");
    msgs = mx1.msgs;
    chg_req(&q, 1);
    run(&q, &g);
    is_int(g.r.reused, 0, "policy: the idle session to mx1 is not reused");
    is_int(mx1.msgs, msgs, "policy: mx1 got nothing more");
    is_int(mx2.conns, 1, "policy: mx2, the host in the policy, was tried");
    ok(strcmp(status_of(&g, 0), "sent") != 0,
       "policy: mx2 offers no STARTTLS, so enforce defers (%s)", status_of(&g, 0));
    got_free(&g);
    spin_ms(100);
    is_int(mx1.open_conns, 0, "policy: the stale session was closed");

    /* again without the policy: a fresh idle session to mx1 ... */
    dns_result_set_sts(r, DNS_STS_NONE, DNS_STS_MODE_NONE, "", 0, NULL, 0, "");
    reset_servers();
    chg_req(&q, 0);
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "no policy again: sent, the session kept");
    got_free(&g);
    /* ... then mx1 publishes secure TLSA records: not reused, DANE needs a new session */
    dns_host_set_tlsa_state(&r->hosts[0], DNS_TLSA_FOUND, "");
    dns_host_add_tlsa(&r->hosts[0], 3, 1, 1, d32, sizeof(d32));
    msgs = mx1.msgs;
    chg_req(&q, 0);
    run(&q, &g);
    is_int(g.r.reused, 0, "DANE: the plaintext session is not reused");
    is_int(mx1.msgs, msgs, "DANE: mx1 got nothing over it");
    is_int(mx1.conns, 2, "DANE: a new connection to mx1 (which then lacks STARTTLS)");
    got_free(&g);
    dns_host_set_tlsa_state(&r->hosts[0], DNS_TLSA_NONE, "");
    dlv_engine_close_idle(eng);
    spin_ms(100);
}

static void test_tls_policy_engine(void)
{
    struct dlv_req q;
    struct got g;
    const struct dlv_tls_out *o;
    char lit[64];

    /* TLSA lookup failed at mx1: skipped, mx2 takes it */
    reset_servers();
    req_init(&q, "tlsafail.test", 1, NULL);
    q.mta_sts = 1;
    q.port = port; /* the fake servers' */
    run(&q, &g);
    is_int(qflags, DNS_Q_DANE | DNS_Q_STS, "tls may + mta_sts: MX request asks for TLSA and STS");
    is_int(qport, port, "with the delivery port");
    is_str(status_of(&g, 0), "sent", "TLSA failed at mx1: sent through mx2");
    is_int(mx1.conns, 0, "mx1 was not contacted");
    is_int(mx2.msgs, 1, "mx2 has it");
    o = find_out(&g, "mx1.tlsafail.test");
    ok(o && strcmp(o->policy_type, "tlsa") == 0 && strcmp(o->result, "dnssec-invalid") == 0,
       "outcome for mx1: tlsa, dnssec-invalid");
    o = find_out(&g, "mx2.tlsafail.test");
    ok(o && strcmp(o->policy_type, "no-policy-found") == 0 && strcmp(o->result, "success") == 0,
       "outcome for mx2: no-policy-found, success");
    got_free(&g);

    /* mode verify and none: no TLSA asked; no mta_sts: no STS */
    req_init(&q, "tlsafail.test", 1, NULL);
    q.tls = TLS_MODE_NONE;
    run(&q, &g);
    is_int(qflags, 0, "tls none, no mta_sts: no flags");
    is_str(status_of(&g, 0), "sent", "tls none: the TLSA failure does not matter");
    got_free(&g);

    /* DANE records at mx1, which offers no STARTTLS: no plaintext there */
    reset_servers();
    req_init(&q, "danemx.test", 1, NULL);
    q.tls = TLS_MODE_DANE;
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "DANE at mx1 without STARTTLS: mx2 (no records) took it");
    is_int(mx1.conns, 1, "mx1 was contacted");
    is_int(mx1.txns, 0, "but got no transaction");
    is_int(mx2.msgs, 1, "mx2 has it (dane without records = may)");
    o = find_out(&g, "mx1.danemx.test");
    ok(o && strcmp(o->policy_type, "tlsa") == 0 &&
           strcmp(o->result, "starttls-not-supported") == 0 &&
           strncmp(o->policy_string, "3 1 1 0102", 10) == 0,
       "outcome for mx1: tlsa, starttls-not-supported, the records");
    got_free(&g);

    /* dane-only: no host has secure records */
    reset_servers();
    req_init(&q, "two.test", 1, NULL);
    q.tls = TLS_MODE_DANE_ONLY;
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "dane-only without TLSA records: deferred");
    is_int(g.r.r[0].cls, DLV_CLASS_TLS, "class tls");
    ok(strstr(g.r.r[0].text, "no secure TLSA records for mx") != NULL, "reason: %s", g.r.r[0].text);
    is_int(g.r.connections, 0, "no connection");
    is_int(mx1.conns + mx2.conns, 0, "no server contacted");
    got_free(&g);

    /* MTA-STS enforce: mx1 is not in the policy, mx2 is but has no STARTTLS */
    reset_servers();
    req_init(&q, "sts.test", 1, NULL);
    q.mta_sts = 1;
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "enforce: deferred");
    is_int(mx1.conns, 0, "enforce: mx1 (not in the policy) skipped");
    is_int(mx2.conns, 1, "enforce: mx2 contacted");
    is_int(mx2.txns, 0, "enforce: no plaintext transaction at mx2");
    is_int(g.r.r[0].cls, DLV_CLASS_TLS, "enforce: class tls");
    o = find_out(&g, "mx1.sts.test");
    ok(o && strcmp(o->policy_type, "sts") == 0 && strcmp(o->policy_id, "pid1") == 0 &&
           strstr(o->reason, "not in the MTA-STS policy of sts.test (id pid1)") != NULL,
       "outcome for mx1: sts, not in the policy");
    o = find_out(&g, "mx2.sts.test");
    ok(o && strcmp(o->result, "starttls-not-supported") == 0 &&
           strstr(o->policy_string, "mode: enforce; mx: mx2.sts.test") != NULL,
       "outcome for mx2: starttls-not-supported, the policy");
    got_free(&g);

    /* enforce, no host left */
    reset_servers();
    req_init(&q, "stsnone.test", 1, NULL);
    q.mta_sts = 1;
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "enforce, no host in the policy: deferred");
    ok(strstr(g.r.r[0].text, "is not in the MTA-STS policy of stsnone.test") != NULL,
       "with that reason: %s", g.r.r[0].text);
    is_int(g.r.connections, 0, "no connection");
    got_free(&g);

    /* testing: delivered as may, the outcome says what enforce would have said */
    reset_servers();
    req_init(&q, "ststest.test", 1, NULL);
    q.mta_sts = 1;
    run(&q, &g);
    is_str(status_of(&g, 0), "sent", "testing: sent to mx1 (not in the policy)");
    is_int(mx1.msgs, 1, "mx1 has it");
    is_str(g.r.tls_policy, "mta-sts testing", "the result names the policy");
    o = find_out(&g, "mx1.ststest.test");
    ok(o && strcmp(o->result, "validation-failure") == 0, "testing: outcome validation-failure");
    got_free(&g);

    /* a gateway with /dane: looked up with DNS_Q_DANE on its own port */
    reset_servers();
    req_init(&q, "far.test", 1, NULL);
    req_hosts(&q, 1);
    set_host(&q.hosts[0], "gwb.test", port, "D");
    q.hosts[0].tls = TLS_MODE_DANE;
    q.port = 1;
    run(&q, &g);
    is_int(qflags, DNS_Q_DANE, "gateway /dane: host lookup with DNS_Q_DANE");
    is_int(qport, port, "on the gateway's port");
    is_str(status_of(&g, 0), "sent", "gateway /dane without records: as may");
    got_free(&g);

    reset_servers();
    req_init(&q, "far.test", 1, NULL);
    req_hosts(&q, 1);
    set_host(&q.hosts[0], "gwb.test", port, "M");
    run(&q, &g);
    is_int(qflags, 0, "gateway /may: no DNS_Q_DANE");
    got_free(&g);

    /* a literal gateway under dane-only: no DNSSEC possible, skipped */
    reset_servers();
    req_init(&q, "far.test", 1, NULL);
    req_hosts(&q, 1);
    snprintf(lit, sizeof(lit), "127.0.0.13:%u", port);
    set_host(&q.hosts[0], lit, 0, "L");
    q.hosts[0].tls = TLS_MODE_DANE_ONLY;
    run(&q, &g);
    is_str(status_of(&g, 0), "deferred", "literal gateway /dane-only: deferred");
    is_int(mx3.conns, 0, "not contacted");
    got_free(&g);
}

static void setup(void)
{
    int sp[2];
    struct dlv_engine_opts o = {.helo_name = "postern.test", .connect_timeout = 5, .timeout = 10};
    struct fsrv *all[] = {&mx1, &mx2, &mx3, &v6};
    char a[64];

    base = event_base_new();
    for (int tries = 0; tries < 20; tries++) {
        int bad = 0;
        port = pick_port();
        for (size_t i = 0; i < nitems(all); i++)
            if (srv_listen(all[i]) < 0)
                bad = 1;
        if (!bad)
            break;
        for (size_t i = 0; i < nitems(all); i++)
            srv_stop(all[i]);
    }
    ok(mx1.l && mx2.l && mx3.l && v6.l, "fake servers listen on port %u", port);

    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    dns_client = ipc_chan_new(base, sp[0], "dnsd", NULL, dns_client_msg, chan_closed, NULL);
    dns_server = ipc_chan_new(base, sp[1], "fake-dnsd", NULL, fake_dnsd_msg, chan_closed, NULL);
    dns_mx("refused.test", "mx1.refused.test=127.0.0.2 mx2.refused.test=127.0.0.12", 0);
    dns_mx("two.test", "mx1.two.test=127.0.0.11 mx2.two.test=127.0.0.12", 0);
    dns_mx("solo.test", "mx.solo.test=127.0.0.11", 0);
    dns_mx("one.test", "mx1.one.test=127.0.0.11 mx2.one.test=127.0.0.12", 0);
    dns_mx("equal.test", "a.equal.test=127.0.0.11 b.equal.test=127.0.0.12", 1);
    dns_mx("v6only.test", "mx.v6only.test=::1", 0);
    dns_result_set_err(dns_add("nullmx.test", 0), DNS_PERM,
                       "domain nullmx.test does not accept mail (null MX, RFC 7505)");
    dns_result_set_err(dns_add("servfail.test", 0), DNS_TEMP, "SERVFAIL from 127.0.0.1");
    struct dns_result *r = dns_add("gwa.test", 1);
    struct dns_host *h = dns_result_add_host(r, "gwa.test", 0, 0);
    struct sockaddr_storage ss;
    dns_parse_addr("127.0.0.3", &ss);
    dns_host_add_addr(h, (struct sockaddr *)&ss);
    r = dns_add("gwb.test", 1);
    h = dns_result_add_host(r, "gwb.test", 0, 0);
    dns_parse_addr("127.0.0.12", &ss);
    dns_host_add_addr(h, (struct sockaddr *)&ss);
    (void)a;
    {
        static const unsigned char d32[32] = {1, 2, 3};
        static const char *const p_sts[] = {"mx2.sts.test"};
        static const char *const p_none[] = {"other.example"};
        dns_mx("tlsafail.test", "mx1.tlsafail.test=127.0.0.11 mx2.tlsafail.test=127.0.0.12", 0);
        r = &dns_tab[ndns - 1].r;
        dns_host_set_tlsa_state(&r->hosts[0], DNS_TLSA_FAILED, "bogus TLSA (test)");
        dns_mx("danemx.test", "mx1.danemx.test=127.0.0.11 mx2.danemx.test=127.0.0.12", 0);
        r = &dns_tab[ndns - 1].r;
        dns_host_set_tlsa_state(&r->hosts[0], DNS_TLSA_FOUND, "");
        dns_host_add_tlsa(&r->hosts[0], 3, 1, 1, d32, sizeof(d32));
        dns_host_set_tlsa_state(&r->hosts[1], DNS_TLSA_NONE, "");
        dns_mx("sts.test", "mx1.sts.test=127.0.0.11 mx2.sts.test=127.0.0.12", 0);
        r = &dns_tab[ndns - 1].r;
        dns_result_set_sts(r, DNS_STS_POLICY, DNS_STS_MODE_ENFORCE, "pid1", 86400, p_sts, 1, "");
        dns_mx("stsnone.test", "mx1.stsnone.test=127.0.0.11", 0);
        r = &dns_tab[ndns - 1].r;
        dns_result_set_sts(r, DNS_STS_POLICY, DNS_STS_MODE_ENFORCE, "pid2", 86400, p_none, 1, "");
        dns_mx("ststest.test", "mx1.ststest.test=127.0.0.11", 0);
        r = &dns_tab[ndns - 1].r;
        dns_result_set_sts(r, DNS_STS_POLICY, DNS_STS_MODE_TESTING, "pid3", 86400, p_none, 1, "");
    }

    o.base = base;
    eng = dlv_engine_new(&o);
    dlv_engine_set_dns(eng, dns_client);

    msgfd = memfd_create("msg", 0);
    if (write(msgfd, message, sizeof(message) - 1) != (ssize_t)(sizeof(message) - 1))
        log_panic("write");
}

int main(void)
{
    plan_lazy();
    log_init("test", LOG_TO_STDERR);
    log_set_level(getenv("TEST_VERBOSE") ? LOG_LV_DEBUG : LOG_LV_ERR);
    test_cands();
    test_maps();
    test_tally();
    test_tls_plan();

    setup();
    test_failover_refused();
    test_greeting_5xx();
    test_rcpt_5xx_4xx();
    test_drop_in_data();
    test_tls_required();
    test_dns_failures();
    test_ipv6();
    test_shuffle();
    test_hosts();
    test_reuse();
    test_reuse_match();
    test_reuse_gateways();
    test_reuse_policy();
    test_conn_delay();
    test_cancel();
    test_no_fd();
    test_tls_policy_engine();

    dlv_engine_free(eng);
    spin_ms(100);
    return done_testing();
}
