/*
 * signer - DKIM signatures for the mail Postern sends (docs/dkim.md).
 *
 * The one process that holds the DKIM private keys. master (root) reads
 * the dkim_map and the key files, at its start and on `smtpctl reload`,
 * and sends them here alone (IMSG_DKIM_KEYS), first thing after it
 * starts a signer: so a restarted signer signs with the keys in force,
 * not with whatever the files say now (master keeps the last set that
 * passed). Until they arrive every request is deferred, never answered
 * "unsigned". smtpd never sees a key: the files are root's, mode 0600,
 * and this process is not dumpable, so a process of the same uid
 * cannot read its memory.
 *
 * deliver and relay ask it, for each delivery of a message that may be
 * signed (qmgr decides: local or authenticated submissions and our own
 * notices), with the open queue file (IMSG_DKIM_SIGN_REQ,
 * mail/sign_proto.h). It reads the message, finds the keys for the
 * domain of its From: address (dkim_keys_find: that domain, else its
 * parent domains, else "*"), and answers with the DKIM-Signature fields to send before
 * the message, or says why the message is not signed, or that it must
 * wait (a required key that did not load). Signing at delivery means a
 * key changed by reload signs the queued mail's next attempt; nothing
 * in the queue file ever changes.
 *
 * qmgr learns which keys are loaded (IMSG_DKIM_STATUS: names, selectors
 * and errors, never key material) for `smtpctl route`.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/ipc.h"
#include "base/log.h"
#include "base/util.h"
#include "mail/child.h"
#include "mail/dkim.h"
#include "mail/dkim_keys.h"
#include "mail/proto.h"
#include "mail/sign_proto.h"

#define READ_CHUNK 65536
#define MAX_CLIENTS 8

static struct {
    struct child *c;
    struct dkim_keys *keys;
    struct ipc_chan *qmgr;
    struct ipc_chan *clients[MAX_CLIENTS]; /* deliver, relay */
    char *rbuf;
} S;

static void send_status(void)
{
    struct ipc_w w;

    if (S.qmgr == NULL || S.keys == NULL)
        return;
    ipc_w_init(&w);
    dkim_keys_encode(&w, S.keys, 0);
    ipc_send(S.qmgr, IMSG_DKIM_STATUS, 0, -1, w.p, w.len);
    ipc_w_free(&w);
}

static int required(const struct dkim_entry *e)
{
    return dkim_entry_required(e, cfg_num(S.c->cfg, P_dkim_required) != 0);
}

/* Read the message of q from fd into m. 0, or -1 and *why. */
static int read_msg(int fd, const struct sign_req *q, struct dkim_msg *m, char **why)
{
    uint64_t done = 0;

    while (done < q->msg_size) {
        size_t want = READ_CHUNK;
        ssize_t n;
        if (want > q->msg_size - done)
            want = (size_t)(q->msg_size - done);
        n = pread(fd, S.rbuf, want, (off_t)(q->msg_offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *why = xasprintf("cannot read the queue file at offset %llu: %s",
                             (unsigned long long)(q->msg_offset + done),
                             n < 0 ? strerror(errno) : "it is shorter than its envelope says");
            return -1;
        }
        dkim_msg_feed(m, S.rbuf, (size_t)n);
        done += (uint64_t)n;
    }
    return 0;
}

/* Sign with each usable key; say what happened in rep. */
static void sign_with(struct dkim_msg *m, const char *from, const struct dkim_entry *e[2], size_t n,
                      struct sign_rep *rep)
{
    struct buf fields, ok, bad;
    int defer = 0;
    const char *d = NULL;
    int64_t now = (int64_t)time(NULL);
    long long ttl = cfg_num(S.c->cfg, P_dkim_signature_ttl);

    buf_init(&fields);
    buf_init(&ok);
    buf_init(&bad);
    for (size_t i = 0; i < n; i++) {
        struct dkim_sign_opts o;
        char *err = NULL;
        const char *dom = strcmp(e[i]->domain, "*") == 0 ? from : e[i]->domain;

        if (e[i]->key == NULL) {
            buf_printf(&bad, "%skey %s (s=%s) not loaded: %s", bad.len ? "; " : "", e[i]->key_path,
                       e[i]->selector, e[i]->error ? e[i]->error : "unknown");
            defer |= required(e[i]);
            continue;
        }
        memset(&o, 0, sizeof(o));
        o.domain = dom;
        o.selector = e[i]->selector;
        o.headers = e[i]->headers;
        o.hcanon = o.bcanon = DKIM_CANON_RELAXED;
        o.timestamp = now;
        o.expire = ttl > 0 ? now + ttl : 0;
        if (dkim_msg_sign(m, e[i]->key, &o, &fields, &err) < 0) {
            buf_printf(&bad, "%ss=%s: %s", bad.len ? "; " : "", e[i]->selector, err);
            free(err);
            defer |= required(e[i]);
            continue;
        }
        if (d == NULL) {
            d = dom;
            buf_printf(&ok, "d=%s s=%s", dom, e[i]->selector);
        } else {
            buf_printf(&ok, ",%s", e[i]->selector);
        }
    }
    if (defer) {
        rep->verdict = SIGN_DEFER;
        rep->note = xasprintf("%s (dkim_required)", bad.data);
    } else if (fields.len > 0) {
        rep->verdict = SIGN_SIGNED;
        rep->fields = xstrdup(fields.data);
        rep->note = bad.len ? xasprintf("%s; not used: %s", ok.data, bad.data) : xstrdup(ok.data);
    } else {
        rep->verdict = SIGN_UNSIGNED;
        rep->note = xasprintf("%s; dkim_required is off", bad.data);
    }
    buf_free(&fields);
    buf_free(&ok);
    buf_free(&bad);
}

static void do_sign(struct ipc_chan *ch, const struct ipc_msg *msg)
{
    struct sign_req q;
    struct sign_rep rep;
    struct dkim_msg *m = NULL;
    const struct dkim_entry *e[2];
    char *why = NULL;
    struct ipc_w w;
    size_t n;

    memset(&rep, 0, sizeof(rep));
    if (sign_req_decode(msg->body, msg->len, &q) < 0 || msg->fd < 0) {
        /* only a broken deliver or relay sends this: have it replaced */
        if (msg->fd >= 0)
            close(msg->fd);
        log_err("malformed signing request %u from %s", msg->id, ipc_chan_name(ch));
        child_peer_broken(S.c, ipc_chan_name(ch), "malformed signing request");
        return;
    }
    m = dkim_msg_new();
    if (S.keys == NULL) {
        rep.verdict = SIGN_DEFER;
        rep.note = xstrdup("the signer has not got its keys from master yet");
    } else if (read_msg(msg->fd, &q, m, &why) < 0) {
        rep.verdict = SIGN_DEFER;
        rep.note = why;
    } else if (dkim_msg_finish(m, &why) < 0) {
        rep.verdict = SIGN_UNSIGNED;
        rep.note = xasprintf("cannot be signed: %s", why);
        free(why);
    } else if (dkim_msg_from_domain(m) == NULL) {
        rep.verdict = SIGN_UNSIGNED;
        rep.note = xstrdup("no single From: address with a domain");
    } else if ((n = dkim_keys_find(S.keys, dkim_msg_from_domain(m), e)) == 0) {
        rep.verdict = SIGN_UNSIGNED;
        rep.note = xasprintf("no key for %s", dkim_msg_from_domain(m));
    } else {
        sign_with(m, dkim_msg_from_domain(m), e, n, &rep);
    }
    close(msg->fd);
    log_detail("%s: dkim %s: %s", q.queue_id, sign_verdict_name(rep.verdict), rep.note);
    if (strlen(rep.note) > SIGN_NOTE_MAX)
        rep.note[SIGN_NOTE_MAX] = '\0';
    ipc_w_init(&w);
    sign_rep_encode(&w, &rep);
    ipc_send(ch, IMSG_DKIM_SIGN_REP, msg->id, -1, w.p, w.len);
    ipc_w_free(&w);
    sign_rep_free(&rep);
    sign_req_free(&q);
    dkim_msg_free(m);
}

static void on_client_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    if (m->type == IMSG_DKIM_SIGN_REQ) {
        do_sign(ch, m);
        return;
    }
    if (m->fd >= 0)
        close(m->fd);
}

static void on_client_close(struct ipc_chan *ch, void *arg)
{
    child_peer_closed(S.c, ch);
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        if (S.clients[i] == ch)
            S.clients[i] = NULL;
    ipc_chan_free(ch);
}

static void on_qmgr_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    if (m->fd >= 0)
        close(m->fd);
    if (m->type == IMSG_DKIM_STATUS_REQ)
        send_status();
}

static void on_qmgr_close(struct ipc_chan *ch, void *arg)
{
    child_peer_closed(S.c, ch);
    if (ch == S.qmgr)
        S.qmgr = NULL;
    ipc_chan_free(ch);
}

static void on_peer(struct child *c, const char *name, int fd)
{
    if (strcmp(name, "qmgr") == 0) {
        if (S.qmgr)
            ipc_chan_free(S.qmgr);
        S.qmgr = ipc_chan_new(c->base, fd, "qmgr", &proto_qmgr_to_signer, on_qmgr_msg,
                              on_qmgr_close, NULL);
        send_status();
        return;
    }
    if (strcmp(name, "deliver") == 0 || strcmp(name, "relay") == 0) {
        /* a restarted peer's old channel goes when it closes (EOF) */
        for (size_t i = 0; i < MAX_CLIENTS; i++)
            if (S.clients[i] && strcmp(ipc_chan_name(S.clients[i]), name) == 0) {
                ipc_chan_free(S.clients[i]);
                S.clients[i] = NULL;
            }
        for (size_t i = 0; i < MAX_CLIENTS; i++)
            if (S.clients[i] == NULL) {
                S.clients[i] = ipc_chan_new(c->base, fd, name, &proto_dlv_to_signer, on_client_msg,
                                            on_client_close, NULL);
                return;
            }
    }
    log_warn("unexpected peer channel %s", name);
    close(fd);
}

static void log_keys_of(const struct dkim_keys *k, const char *when)
{
    size_t ok = 0;

    for (size_t i = 0; i < k->n; i++) {
        const struct dkim_entry *e = &k->e[i];
        if (e->key) {
            ok++;
            log_debug("dkim key %s s=%s %s loaded", e->domain, e->selector, dkim_alg_name(e->alg));
        } else {
            log_err("dkim key %s for %s (s=%s) not loaded: %s; %s", e->key_path, e->domain,
                    e->selector, e->error ? e->error : "unknown",
                    required(e) ? "its mail waits until it is fixed (dkim_required)"
                                : "its mail goes unsigned");
        }
    }
    if (k->n > 0 || strcmp(when, "reload") == 0)
        log_info("%s: %zu DKIM key%s loaded%s", when, ok, ok == 1 ? "" : "s",
                 ok < k->n ? ", some not: see above" : "");
}

/* New keys from master (smtpctl reload). */
static void on_master_msg(struct child *c, const struct ipc_msg *m)
{
    struct dkim_keys *k;

    if (m->fd >= 0)
        close(m->fd);
    if (m->type != IMSG_DKIM_KEYS)
        return;
    k = dkim_keys_decode(m->body, m->len);
    explicit_bzero((void *)(uintptr_t)m->body, m->len);
    if (k == NULL) {
        log_warn("malformed DKIM keys from master ignored; keeping the ones we have");
        return;
    }
    log_keys_of(k, S.keys == NULL ? "start" : "reload");
    if (S.keys)
        dkim_keys_free(S.keys);
    S.keys = k;
    send_status();
}

static int on_reload(struct child *c, char **err)
{
    send_status(); /* dkim_required may have changed */
    return 0;
}

int main(int argc, char **argv)
{
    static struct child_spec spec = {
        .prog = "signer",
        .root = CHILD_ROOT_EMPTY,
        .from_master = &proto_master_to_signer,
        .peer = on_peer,
        .reload = on_reload,
        .master_msg = on_master_msg,
    };
    int rc;

    S.c = child_init(argc, argv, &spec);
    child_drop(S.c);
    /* no core dumps, no ptrace by processes of the same uid (smtpd's);
     * after the drop, which resets the flag */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        log_err("cannot make the signer undumpable: %s", strerror(errno));
    S.rbuf = xmalloc(READ_CHUNK);
    rc = child_loop(S.c);
    if (S.keys)
        dkim_keys_free(S.keys);
    free(S.rbuf);
    return rc;
}
