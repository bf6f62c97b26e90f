/*
 * dkim - qmgr's part of DKIM signing (docs/dkim.md): which messages may
 * be signed, asking deliver and relay to have them signed, and what
 * `smtpctl route` says about it. qmgr holds no key: the signer tells it
 * which keys it has loaded (IMSG_DKIM_STATUS, names and errors only).
 *
 * A message may be signed when it was submitted here rather than relayed
 * for someone else: its client authenticated (AUTH), or its client
 * address is in mynetworks (the local sendmail's mail comes from
 * 127.0.0.1), or Postern wrote it: a notice, or a copy local forwarded
 * (alias, .forward) of mail that was itself signable (proto LOCAL; local
 * writes FORWARD for the rest). Mail that reached us from elsewhere, for
 * a local user whose alias forwards it or for <postmaster>, is never
 * signed with our keys, whatever its From: says.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/netaddr.h"
#include "base/util.h"
#include "mail/dkim_keys.h"
#include "mail/proto.h"
#include "qmgr.h"

struct qdkim {
    struct ipc_chan *signer;
    struct dkim_keys *status; /* what the signer holds (no key material) */
    struct cidr *nets;
    size_t nnets;
};

static void load_nets(struct qmgr *q)
{
    char *err = NULL;

    free(q->dk->nets);
    q->dk->nets = NULL;
    q->dk->nnets = 0;
    /* smtpd refuses a bad list at start and reload; here it just matches nothing */
    if (netaddr_parse_cidr_list(cfg_list(q->c->cfg, P_mynetworks), &q->dk->nets, &q->dk->nnets,
                                &err) < 0) {
        log_warn("mynetworks: %s; no client counts as local for DKIM signing", err);
        free(err);
    }
}

void qdkim_init(struct qmgr *q)
{
    q->dk = xcalloc(1, sizeof(*q->dk));
    q->dk->status = dkim_keys_empty();
    load_nets(q);
}

void qdkim_reload(struct qmgr *q)
{
    load_nets(q);
}

static int in_mynetworks(const struct qmgr *q, const char *addr)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        return 0;
    return netaddr_cidr_list_match(q->dk->nets, q->dk->nnets, (struct sockaddr *)&ss);
}

int qdkim_submitted(const struct qmgr *q, const struct qfile_env *env)
{
    if (env->proto && strcmp(env->proto, "FORWARD") == 0)
        return 0; /* local's copy of mail from elsewhere (its client is 127.0.0.1) */
    if (env->notice != QFILE_NOTICE_NONE || (env->auth && env->auth[0]))
        return 1;
    if (env->proto && strcmp(env->proto, "LOCAL") == 0)
        return 1;
    return env->client_addr && in_mynetworks(q, env->client_addr);
}

int qdkim_active(const struct qmgr *q)
{
    return q->dk->status->n > 0;
}

static void on_signer_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    struct qmgr *q = arg;
    struct dkim_keys *k;

    if (m->fd >= 0)
        close(m->fd);
    if (m->type != IMSG_DKIM_STATUS)
        return;
    if ((k = dkim_keys_decode(m->body, m->len)) == NULL) {
        log_warn("signer sent a malformed key status");
        return;
    }
    dkim_keys_free(q->dk->status);
    q->dk->status = k;
    log_debug("signer holds %zu DKIM key(s)", k->n);
}

static void on_signer_close(struct ipc_chan *ch, void *arg)
{
    struct qmgr *q = arg;

    child_peer_closed(q->c, ch);
    if (ch == q->dk->signer)
        q->dk->signer = NULL;
    ipc_chan_free(ch);
    /* the status stays: deliver and relay defer signed mail while the
     * signer is away, rather than send it unsigned */
}

void qdkim_peer(struct qmgr *q, int fd)
{
    if (q->dk->signer)
        ipc_chan_free(q->dk->signer);
    q->dk->signer = ipc_chan_new(q->base, fd, "signer", &proto_signer_to_qmgr, on_signer_msg,
                                 on_signer_close, q);
    ipc_send(q->dk->signer, IMSG_DKIM_STATUS_REQ, 0, -1, NULL, 0);
}

/*
 * What the signer would do with mail whose From: domain is dom: one
 * line of text, or a JSON object. The envelope sender's domain stands in
 * for the From: header's (route has no message).
 */
void qdkim_route(struct qmgr *q, const char *sender, int local_dest, int json, struct buf *out)
{
    const struct dkim_entry *e[2];
    const char *at = sender ? strrchr(sender, '@') : NULL;
    char *dom = at && at[1] ? xstrdup(at + 1) : NULL;
    size_t n = 0, usable = 0;
    int defer = 0;
    struct buf why;

    buf_init(&why);
    if (dom) {
        ascii_lower(dom);
        n = dkim_keys_find(q->dk->status, dom, e);
    }
    for (size_t i = 0; i < n; i++) {
        if (e[i]->error == NULL)
            usable++;
        else {
            buf_printf(&why, "%skey %s (s=%s) not loaded: %s", why.len ? "; " : "", e[i]->key_path,
                       e[i]->selector, e[i]->error);
            defer |= dkim_entry_required(e[i], cfg_num(q->c->cfg, P_dkim_required) != 0);
        }
    }
    if (json) {
        buf_adds(out, ",\"dkim\":{\"verdict\":");
        if (local_dest)
            buf_adds(out, "\"unsigned\",\"why\":\"local delivery\"");
        else if (dom == NULL)
            buf_adds(out, "null,\"why\":\"no --from SENDER\"");
        else if (defer)
            buf_adds(out, "\"deferred\"");
        else if (usable)
            buf_adds(out, "\"signed\"");
        else
            buf_adds(out, "\"unsigned\"");
        buf_adds(out, ",\"signatures\":[");
        for (size_t i = 0, k = 0; i < n && !local_dest; i++) {
            if (e[i]->error)
                continue;
            buf_printf(out, "%s{\"d\":\"%s\",\"s\":\"%s\",\"a\":\"%s\"}", k++ ? "," : "",
                       strcmp(e[i]->domain, "*") == 0 ? dom : e[i]->domain, e[i]->selector,
                       dkim_alg_name(e[i]->alg));
        }
        buf_adds(out, "]}");
        free(dom);
        buf_free(&why);
        return;
    }
    buf_adds(out, "dkim:        ");
    if (local_dest) {
        buf_adds(out, "not signed (local delivery)\n");
    } else if (dom == NULL) {
        buf_adds(out, "give --from SENDER to see whether its mail is signed\n");
    } else if (n == 0) {
        buf_printf(out, "not signed: no key for %s in dkim_map\n", dom);
    } else if (defer) {
        buf_printf(out, "deferred until fixed: %s (dkim_required)\n", why.data);
    } else if (usable == 0) {
        buf_printf(out, "not signed: %s; dkim_required is off\n", why.data);
    } else {
        buf_adds(out, "signed");
        for (size_t i = 0, k = 0; i < n; i++)
            if (e[i]->error == NULL)
                buf_printf(out, "%s d=%s s=%s (%s)", k++ ? "," : "",
                           strcmp(e[i]->domain, "*") == 0 ? dom : e[i]->domain, e[i]->selector,
                           dkim_alg_name(e[i]->alg));
        buf_adds(out, ", when a local or authenticated client sends it (relayed mail is not)");
        if (why.len)
            buf_printf(out, "; not used: %s", why.data);
        buf_addc(out, '\n');
    }
    free(dom);
    buf_free(&why);
}

void qdkim_free(struct qmgr *q)
{
    if (q->dk == NULL)
        return;
    if (q->dk->signer)
        ipc_chan_free(q->dk->signer);
    dkim_keys_free(q->dk->status);
    free(q->dk->nets);
    free(q->dk);
    q->dk = NULL;
}
