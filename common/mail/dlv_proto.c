/*
 * dlv_proto - byte layout of delivery requests and results (dlv_proto.h).
 * Fields are written and read in the order of the structures; counts are
 * bounded before anything is allocated.
 */
#include "mail/dlv_proto.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define DLV_MAX_HOSTS 256
#define DLV_MAX_RCPTS 100000
#define DLV_MAX_OVERRIDE 64

static const char *const status_names[] = {"sent", "deferred", "failed"};
static const char *const class_names[] = {"none", "dns",  "network", "tls",
                                          "smtp", "auth", "local",   "mailbox"};
static const char *const step_names[] = {"none", "dns",  "connect", "greeting", "helo", "starttls",
                                         "auth", "mail", "rcpt",    "data",     "dot"};

enum dlv_blame dlv_blame(unsigned status, unsigned cls)
{
    if (status == DLV_OK)
        return DLV_BLAME_NONE;
    if (status == DLV_TEMP && cls == DLV_CLASS_LOCAL)
        return DLV_BLAME_LOCAL;
    return DLV_BLAME_DEST;
}

const char *dlv_status_name(enum dlv_status s)
{
    return (unsigned)s < nitems(status_names) ? status_names[s] : "?";
}

const char *dlv_class_name(enum dlv_class c)
{
    return (unsigned)c < nitems(class_names) ? class_names[c] : "?";
}

const char *dlv_step_name(enum dlv_step s)
{
    return (unsigned)s < nitems(step_names) ? step_names[s] : "?";
}

const char *dlv_phase_name(enum dlv_phase p)
{
    return p == DLV_PHASE_RELAY ? "relay" : "direct";
}

int dlv_class_parse(const char *s)
{
    for (size_t i = 0; i < nitems(class_names); i++)
        if (strcmp(class_names[i], s) == 0)
            return (int)i;
    return -1;
}

void dlv_req_encode(struct ipc_w *w, const struct dlv_req *q)
{
    uint32_t n = 0;

    ipc_w_u32(w, q->id);
    ipc_w_str(w, q->queue_id);
    ipc_w_u64(w, q->msg_offset);
    ipc_w_u64(w, q->msg_size);
    ipc_w_str(w, q->sender);
    ipc_w_str(w, q->envid);
    ipc_w_u8(w, q->ret);
    ipc_w_u32(w, q->need);
    ipc_w_str(w, q->domain);
    ipc_w_u8(w, q->phase);
    ipc_w_u32(w, q->attempt);
    ipc_w_u8(w, q->target);
    ipc_w_u8(w, q->tls);
    ipc_w_u16(w, q->port);
    for (char **o = q->mx_override; o && *o; o++)
        n++;
    ipc_w_u32(w, n);
    for (uint32_t i = 0; i < n; i++)
        ipc_w_str(w, q->mx_override[i]);
    ipc_w_u32(w, (uint32_t)q->nhosts);
    for (size_t i = 0; i < q->nhosts; i++) {
        const struct dlv_host *h = &q->hosts[i];
        ipc_w_str(w, h->name);
        ipc_w_u16(w, h->port);
        ipc_w_u8(w, h->tls);
        ipc_w_str(w, h->label); /* relay finds the credentials by this name */
        ipc_w_u8(w, h->auth_plaintext_ok);
    }
    ipc_w_u32(w, (uint32_t)q->nrcpts);
    for (size_t i = 0; i < q->nrcpts; i++) {
        ipc_w_u32(w, q->rcpts[i].idx);
        ipc_w_str(w, q->rcpts[i].addr);
        ipc_w_str(w, q->rcpts[i].orcpt);
        ipc_w_u32(w, q->rcpts[i].notify);
    }
    ipc_w_str(w, q->dest_key);
    ipc_w_u32(w, q->max_per_conn);
    ipc_w_u32(w, q->idle_timeout_s);
    ipc_w_u32(w, q->connection_delay_ms);
    ipc_w_u8(w, q->dkim);
    ipc_w_u8(w, q->mta_sts);
}

static char *dup_str(struct ipc_r *r)
{
    return xstrdup(ipc_r_str(r));
}

int dlv_req_decode(const void *body, size_t len, struct dlv_req *q)
{
    struct ipc_r r;
    uint32_t n;

    memset(q, 0, sizeof(*q));
    ipc_r_init(&r, body, len);
    q->id = ipc_r_u32(&r);
    q->queue_id = dup_str(&r);
    q->msg_offset = ipc_r_u64(&r);
    q->msg_size = ipc_r_u64(&r);
    q->sender = dup_str(&r);
    q->envid = dup_str(&r);
    q->ret = ipc_r_u8(&r);
    q->need = ipc_r_u32(&r);
    q->domain = dup_str(&r);
    q->phase = ipc_r_u8(&r);
    q->attempt = ipc_r_u32(&r);
    q->target = ipc_r_u8(&r);
    q->tls = ipc_r_u8(&r);
    q->port = ipc_r_u16(&r);
    n = ipc_r_u32(&r);
    if (!ipc_r_ok(&r) || n > DLV_MAX_OVERRIDE)
        goto bad;
    q->mx_override = xcalloc(n + 1, sizeof(char *));
    for (uint32_t i = 0; i < n; i++)
        q->mx_override[i] = dup_str(&r);
    n = ipc_r_u32(&r);
    if (!ipc_r_ok(&r) || n > DLV_MAX_HOSTS)
        goto bad;
    q->hosts = xcalloc(n ? n : 1, sizeof(*q->hosts));
    q->nhosts = n;
    for (uint32_t i = 0; i < n; i++) {
        struct dlv_host *h = &q->hosts[i];
        h->name = dup_str(&r);
        h->port = ipc_r_u16(&r);
        h->tls = ipc_r_u8(&r);
        h->label = dup_str(&r);
        h->auth_user = xstrdup(""); /* never on the wire: relay fills them in */
        h->auth_pass = xstrdup("");
        h->auth_plaintext_ok = ipc_r_u8(&r);
    }
    n = ipc_r_u32(&r);
    if (!ipc_r_ok(&r) || n > DLV_MAX_RCPTS || n == 0)
        goto bad;
    q->rcpts = xcalloc(n, sizeof(*q->rcpts));
    q->nrcpts = n;
    for (uint32_t i = 0; i < n; i++) {
        q->rcpts[i].idx = ipc_r_u32(&r);
        q->rcpts[i].addr = dup_str(&r);
        q->rcpts[i].orcpt = dup_str(&r);
        q->rcpts[i].notify = ipc_r_u32(&r);
    }
    q->dest_key = dup_str(&r);
    q->max_per_conn = ipc_r_u32(&r);
    q->idle_timeout_s = ipc_r_u32(&r);
    q->connection_delay_ms = ipc_r_u32(&r);
    q->dkim = ipc_r_u8(&r);
    q->mta_sts = ipc_r_u8(&r);
    if (!ipc_r_done(&r) || q->dkim > 1 || q->mta_sts > 1 || q->target > DLV_TARGET_LOCAL ||
        q->tls > TLS_MODE_LAST || q->phase > DLV_PHASE_RELAY ||
        (q->target == DLV_TARGET_HOSTS && q->nhosts == 0))
        goto bad;
    for (size_t i = 0; i < q->nhosts; i++)
        if (q->hosts[i].tls > TLS_MODE_LAST || *q->hosts[i].name == '\0')
            goto bad;
    return 0;
bad:
    dlv_req_free(q);
    return -1;
}

void dlv_hosts_free(struct dlv_host *hosts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(hosts[i].name);
        free(hosts[i].label);
        free(hosts[i].auth_user);
        free_secret(hosts[i].auth_pass);
    }
    free(hosts);
}

void dlv_req_free(struct dlv_req *q)
{
    free(q->queue_id);
    free(q->sender);
    free(q->envid);
    free(q->domain);
    for (char **o = q->mx_override; o && *o; o++)
        free(*o);
    free(q->mx_override);
    dlv_hosts_free(q->hosts, q->nhosts);
    for (size_t i = 0; i < q->nrcpts; i++) {
        free(q->rcpts[i].addr);
        free(q->rcpts[i].orcpt);
    }
    free(q->rcpts);
    free(q->dest_key);
    free(q->prefix);
    memset(q, 0, sizeof(*q));
}

void dlv_res_encode(struct ipc_w *w, const struct dlv_res *r)
{
    ipc_w_u32(w, r->id);
    ipc_w_str(w, r->relay);
    ipc_w_str(w, r->label);
    ipc_w_u32(w, (uint32_t)r->host_index);
    ipc_w_u8(w, r->tls_used);
    ipc_w_u32(w, r->connections);
    ipc_w_u8(w, r->reused);
    ipc_w_u64(w, r->duration_us);
    ipc_w_u32(w, (uint32_t)r->n);
    for (size_t i = 0; i < r->n; i++) {
        const struct dlv_rcpt_res *x = &r->r[i];
        ipc_w_u32(w, x->idx);
        ipc_w_u8(w, x->status);
        ipc_w_u8(w, x->cls);
        ipc_w_u8(w, x->step);
        ipc_w_u16(w, x->code);
        ipc_w_str(w, x->dsn);
        ipc_w_str(w, x->text);
    }
    ipc_w_u8(w, r->conn_kept);
    ipc_w_u8(w, r->dsn_passed);
    ipc_w_str(w, r->tls_version);
    ipc_w_str(w, r->tls_cipher);
    ipc_w_str(w, r->dkim ? r->dkim : "");
    ipc_w_str(w, r->tls_policy ? r->tls_policy : "");
    ipc_w_u32(w, (uint32_t)r->ntls_out);
    for (size_t i = 0; i < r->ntls_out; i++) {
        const struct dlv_tls_out *o = &r->tls_out[i];
        ipc_w_str(w, o->policy_type);
        ipc_w_str(w, o->policy_domain);
        ipc_w_str(w, o->policy_id);
        ipc_w_str(w, o->policy_string);
        ipc_w_str(w, o->mx_host);
        ipc_w_str(w, o->result);
        ipc_w_str(w, o->reason);
    }
}

static int read_tls_out(struct ipc_r *r, struct dlv_res *res)
{
    uint32_t n = ipc_r_u32(r);

    if (!ipc_r_ok(r) || n > DLV_MAX_TLS_OUT)
        return -1;
    res->tls_out = xcalloc(n ? n : 1, sizeof(*res->tls_out));
    for (uint32_t i = 0; i < n; i++) {
        struct dlv_tls_out *o = &res->tls_out[i];
        res->ntls_out++; /* so that dlv_res_free frees what was read */
        o->policy_type = dup_str(r);
        o->policy_domain = dup_str(r);
        o->policy_id = dup_str(r);
        o->policy_string = dup_str(r);
        o->mx_host = dup_str(r);
        o->result = dup_str(r);
        o->reason = dup_str(r);
        if (!ipc_r_ok(r))
            return -1;
    }
    return 0;
}

int dlv_res_decode(const void *body, size_t len, struct dlv_res *res)
{
    struct ipc_r r;
    uint32_t n;

    memset(res, 0, sizeof(*res));
    ipc_r_init(&r, body, len);
    res->id = ipc_r_u32(&r);
    res->relay = dup_str(&r);
    res->label = dup_str(&r);
    res->host_index = (int32_t)ipc_r_u32(&r);
    res->tls_used = ipc_r_u8(&r);
    res->connections = ipc_r_u32(&r);
    res->reused = ipc_r_u8(&r);
    res->duration_us = ipc_r_u64(&r);
    n = ipc_r_u32(&r);
    if (!ipc_r_ok(&r) || n > DLV_MAX_RCPTS)
        goto bad;
    res->r = xcalloc(n ? n : 1, sizeof(*res->r));
    res->n = n;
    for (uint32_t i = 0; i < n; i++) {
        struct dlv_rcpt_res *x = &res->r[i];
        x->idx = ipc_r_u32(&r);
        x->status = ipc_r_u8(&r);
        x->cls = ipc_r_u8(&r);
        x->step = ipc_r_u8(&r);
        x->code = ipc_r_u16(&r);
        x->dsn = dup_str(&r);
        x->text = dup_str(&r);
        if (x->status > DLV_PERM || x->cls > DLV_CLASS_MAILBOX || x->step > DLV_STEP_DOT)
            goto bad;
    }
    res->conn_kept = ipc_r_u8(&r);
    res->dsn_passed = ipc_r_u8(&r);
    res->tls_version = dup_str(&r);
    res->tls_cipher = dup_str(&r);
    res->dkim = dup_str(&r);
    res->tls_policy = dup_str(&r);
    if (read_tls_out(&r, res) < 0)
        goto bad;
    if (!ipc_r_done(&r) || res->conn_kept > 1 || res->dsn_passed > 1)
        goto bad;
    return 0;
bad:
    dlv_res_free(res);
    return -1;
}

void dlv_tls_out_free(struct dlv_tls_out *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(o[i].policy_type);
        free(o[i].policy_domain);
        free(o[i].policy_id);
        free(o[i].policy_string);
        free(o[i].mx_host);
        free(o[i].result);
        free(o[i].reason);
    }
    free(o);
}

void dlv_res_free(struct dlv_res *r)
{
    free(r->relay);
    free(r->label);
    free(r->tls_version);
    free(r->tls_cipher);
    free(r->dkim);
    free(r->tls_policy);
    dlv_tls_out_free(r->tls_out, r->ntls_out);
    for (size_t i = 0; i < r->n; i++) {
        free(r->r[i].dsn);
        free(r->r[i].text);
    }
    free(r->r);
    memset(r, 0, sizeof(*r));
}
