/*
 * job - one delivery request of local, in its own process; contract in
 * job.h.
 */
#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/ipc.h"
#include "base/log.h"
#include "base/map.h"
#include "expand.h"
#include "mail/aliases.h"
#include "mail/local_rcpt.h"
#include "mail/qfile.h"
#include "mail/smtp_addr.h"
#include "mail/spool.h"

#define TEXT_MAX 900

unsigned job_allow_bits(char *const *words)
{
    unsigned b = 0;

    for (char *const *w = words; w && *w; w++) {
        if (strcmp(*w, "alias") == 0)
            b |= LD_FROM_ALIAS;
        else if (strcmp(*w, "forward") == 0)
            b |= LD_FROM_FORWARD;
        else if (strcmp(*w, "include") == 0)
            b |= LD_FROM_INCLUDE;
    }
    return b;
}

struct run {
    const struct job_conf *jc;
    const struct dlv_req *q;
    const char *msg;
    size_t len;
    struct map *aliases;
    long alias_owner;
    /* forwarded addresses: one new queue file for all */
    struct qfile_rcpt *fwd;
    size_t nfwd;
    uint32_t *fwd_of; /* the request recipient each came from */
};

/* ---- the lookups expand.h asks for ---- */

static int src_alias(void *arg, const char *name, char ***targets, char **err)
{
    struct run *r = arg;
    char *val = NULL;
    int found;

    if (r->aliases == NULL)
        return 0;
    found = map_get(r->aliases, name, &val, err);
    if (found == 1)
        *targets = aliases_split(val, strlen(val));
    free(val);
    return found;
}

static char **src_include(void *arg, const char *path, long *owner, char **err)
{
    struct stat st;
    size_t len = 0;
    char *text, **list;

    if (stat(path, &st) != 0) {
        *err = xasprintf("%s", strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 002)) {
        *err = xstrdup("not a regular file, or others may write it");
        return NULL;
    }
    *owner = (long)st.st_uid;
    text = aliases_read(path, &len, err);
    if (text == NULL)
        return NULL;
    list = aliases_parse_list(text, len, path, err);
    free(text);
    return list;
}

static int src_is_local(void *arg, const char *domain)
{
    struct run *r = arg;

    return local_domain(r->jc->cfg, domain);
}

/* ---- per recipient ---- */

struct verdict {
    int status; /* the worst so far: DLV_OK < DLV_PERM < DLV_TEMP */
    char dsn[8];
    struct buf text;
    int any;
};

static int rank(int status)
{
    return status == DLV_TEMP ? 2 : status == DLV_PERM ? 1 : 0;
}

static void note(struct verdict *v, int status, const char *dsn, const char *text)
{
    if (!v->any || rank(status) > rank(v->status)) {
        v->status = status;
        snprintf(v->dsn, sizeof(v->dsn), "%s", dsn);
    }
    if (v->text.len < TEXT_MAX)
        buf_printf(&v->text, "%s%s", v->any ? "; " : "", text);
    v->any = 1;
}

static void note_out(struct verdict *v, struct ld_out *o)
{
    note(v, o->status, o->dsn, o->text ? o->text : "");
    free(o->text);
    o->text = NULL;
}

/* 1 when the header section has "Delivered-To: addr". */
static int delivered_to(const char *msg, size_t len, const char *addr)
{
    size_t pos = 0, al = strlen(addr);

    while (pos < len) {
        const char *nl = memchr(msg + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (msg + pos)) : len - pos;
        const char *l = msg + pos;
        if (n == 0 || (n == 1 && l[0] == '\r'))
            return 0; /* end of the header section */
        if (n > 13 && strncasecmp(l, "Delivered-To:", 13) == 0) {
            const char *v = l + 13, *e = l + n;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if ((size_t)(e - v) == al && strncasecmp(v, addr, al) == 0)
                return 1;
        }
        pos += n + (nl != NULL);
    }
    return 0;
}

static void add_forward(struct run *r, uint32_t ri, const char *addr)
{
    const char *me = cfg_myhostname(r->jc->cfg);
    char *full = strchr(addr, '@') ? xstrdup(addr) : xasprintf("%s@%s", addr, me);

    for (size_t i = 0; i < r->nfwd; i++)
        if (ascii_casecmp(r->fwd[i].addr, full) == 0) {
            free(full);
            return;
        }
    r->fwd = xrealloc(r->fwd, (r->nfwd + 1) * sizeof(*r->fwd));
    r->fwd_of = xrealloc(r->fwd_of, (r->nfwd + 1) * sizeof(*r->fwd_of));
    r->fwd[r->nfwd].addr = full;
    r->fwd[r->nfwd].notify = r->q->rcpts[ri].notify;
    if (r->q->rcpts[ri].orcpt[0]) {
        r->fwd[r->nfwd].orcpt = xstrdup(r->q->rcpts[ri].orcpt);
    } else {
        const char *a = r->q->rcpts[ri].addr;
        size_t cap = strlen(a) * 3 + 16;
        char *x = xcalloc(1, cap);
        memcpy(x, "rfc822;", 7);
        if (smtp_xtext_encode(a, strlen(a), x + 7, cap - 7) < 0) {
            free(x);
            x = NULL;
        }
        r->fwd[r->nfwd].orcpt = x;
    }
    r->fwd_of[r->nfwd] = ri;
    r->nfwd++;
}

/* The uid and gid a /file or |command of a source owned by owner runs as:
 * that owner, or default_privs for root's (and unknown) sources. */
static void privs_of(const struct run *r, long owner, uid_t *uid, gid_t *gid, struct passwd **pw)
{
    struct passwd *p = owner > 0 ? getpwuid((uid_t)owner) : NULL;

    *pw = p;
    if (p) {
        *uid = p->pw_uid;
        *gid = p->pw_gid;
    } else {
        *uid = r->jc->ld->privs_uid;
        *gid = r->jc->ld->privs_gid;
    }
}

static void file_or_command(struct run *r, const struct ld_msg *m, enum alias_kind k,
                            const char *what, unsigned from, long owner, struct verdict *v)
{
    unsigned allowed = k == AK_FILE ? r->jc->allow_files : r->jc->allow_commands;
    const char *src = from == LD_FROM_FORWARD   ? "forward"
                      : from == LD_FROM_INCLUDE ? "include"
                                                : "alias";
    struct ld_out o = {0};
    struct passwd *pw;
    uid_t uid;
    gid_t gid;

    if (!(allowed & from)) {
        char *t = xasprintf("mail to %s %s is not allowed from %s (%s)",
                            k == AK_FILE ? "file" : "command", what, src,
                            k == AK_FILE ? "allow_mail_to_files" : "allow_mail_to_commands");
        note(v, DLV_PERM, "5.7.1", t);
        free(t);
        return;
    }
    privs_of(r, owner, &uid, &gid, &pw);
    if (k == AK_FILE)
        ld_file(r->jc->ld, what, uid, gid, m, &o);
    else
        ld_pipe(r->jc->ld, what, pw, uid, gid, m, &o);
    note_out(v, &o);
}

/* The targets of pw's .forward: its own name is its mailbox. */
static void forward_file(struct run *r, uint32_t ri, const struct passwd *pw, const char *text,
                         size_t len, const struct ld_msg *m, struct verdict *v)
{
    char *err = NULL, *fname = xasprintf("%s/.forward", pw->pw_dir);
    char **list = aliases_parse_list(text, len, fname, &err);
    long owner = pw->pw_uid == 0 ? -1 : (long)pw->pw_uid;

    free(fname);
    if (list == NULL || list[0] == NULL) {
        char *t =
            xasprintf("%s; delivered to the mailbox instead", err ? err : ".forward is empty");
        struct ld_out o = {0};
        ld_mailbox(r->jc->ld, pw, m, &o);
        note_out(v, &o);
        log_warn("%s: %s", r->q->queue_id, t);
        free(t);
        free(err);
        aliases_free_list(list);
        return;
    }
    for (char **p = list; *p; p++) {
        char *rest = NULL;
        enum alias_kind k = alias_target(*p, &rest);
        char *lp = k == AK_ADDR || k == AK_MAILBOX ? local_part(rest) : NULL;
        const char *at = strrchr(rest, '@');
        int own =
            lp && strcmp(lp, pw->pw_name) == 0 && (at == NULL || local_domain(r->jc->cfg, at + 1));
        if (k == AK_MAILBOX || own) {
            struct ld_out o = {0};
            ld_mailbox(r->jc->ld, pw, m, &o);
            note_out(v, &o);
        } else if (k == AK_ADDR) {
            add_forward(r, ri, rest);
        } else if (k == AK_FILE || k == AK_PIPE) {
            file_or_command(r, m, k, rest, LD_FROM_FORWARD, owner, v);
        } else {
            note(v, DLV_PERM, "5.3.5", ":include: is not taken in a .forward");
        }
        free(lp);
        free(rest);
    }
    aliases_free_list(list);
}

static void mailbox(struct run *r, uint32_t ri, const char *user, const struct ld_msg *m,
                    struct verdict *v)
{
    struct passwd *pw = getpwnam(user);
    struct ld_out o = {0};
    char *text = NULL, *why = NULL;
    size_t len = 0;
    int f;

    if (pw == NULL) {
        char *t = xasprintf("unknown user: \"%s\"", user);
        note(v, DLV_PERM, "5.1.1", t);
        free(t);
        return;
    }
    f = ld_read_forward(r->jc->ld, pw, &text, &len, &why);
    if (why)
        log_warn("%s: %s", r->q->queue_id, why);
    free(why);
    if (f < 0) {
        note(v, DLV_TEMP, "4.3.0", "the user's .forward cannot be read");
        return;
    }
    if (f == 1) {
        forward_file(r, ri, pw, text, len, m, v);
        free(text);
        return;
    }
    ld_mailbox(r->jc->ld, pw, m, &o);
    note_out(v, &o);
}

static void one_rcpt(struct run *r, uint32_t ri, struct dlv_rcpt_res *res)
{
    const struct dlv_rcpt *rc = &r->q->rcpts[ri];
    const struct lx_source src = {src_alias, src_include, src_is_local, r->alias_owner, r};
    const struct ld_msg m = {r->q->sender, rc->addr, r->msg, r->len, 0};
    struct ld_msg mm = m;
    struct verdict v = {.status = DLV_OK};
    struct lx_result x;
    size_t nfwd0 = r->nfwd;

    mm.arrival =
        (long long)(qfile_id_valid(r->q->queue_id) ? qfile_id_time(r->q->queue_id) / 1000000
                                                   : now_us() / 1000000);
    buf_init(&v.text);
    if (delivered_to(r->msg, r->len, rc->addr)) {
        note(&v, DLV_PERM, "5.4.6",
             "mail forwarding loop: the message was delivered to this "
             "address before (Delivered-To:)");
    } else if (lx_expand(&src, rc->addr, &x) < 0) {
        note(&v, x.temporary ? DLV_TEMP : DLV_PERM, x.temporary ? "4.3.0" : "5.4.6", x.error);
        lx_free(&x);
    } else {
        for (size_t i = 0; i < x.n; i++) {
            const struct lx_target *t = &x.t[i];
            if (t->kind == AK_MAILBOX)
                mailbox(r, ri, t->text, &mm, &v);
            else if (t->kind == AK_ADDR)
                add_forward(r, ri, t->text);
            else
                file_or_command(r, &mm, t->kind, t->text,
                                t->ctx == LX_CTX_INCLUDE ? LD_FROM_INCLUDE : LD_FROM_ALIAS,
                                t->owner, &v);
        }
        lx_free(&x);
    }
    if (r->nfwd > nfwd0 && !v.any) {
        v.status = DLV_OK;
        snprintf(v.dsn, sizeof(v.dsn), "2.0.0");
    }
    res->idx = rc->idx;
    res->status = (uint8_t)v.status;
    res->cls = v.status == DLV_OK ? DLV_CLASS_NONE : DLV_CLASS_MAILBOX;
    res->step = DLV_STEP_NONE;
    res->code = 0;
    res->dsn = xstrdup(v.dsn[0] ? v.dsn : "2.0.0");
    res->text = v.text.len ? xstrdup(v.text.data) : xstrdup("");
    buf_free(&v.text);
}

/* ---- the forwarded message ---- */

struct qwrite {
    const char *dir, *id;
    const struct buf *env;
    const char *added;
    const char *msg;
    size_t len;
};

static int w_queue(void *arg, int wfd)
{
    struct qwrite *w = arg;
    char *tmp = xasprintf("%s/%s/%s", w->dir, SPOOL_INCOMING, w->id);
    char *dst = xasprintf("%s/%s/%s", w->dir, SPOOL_QUEUE, w->id);
    char *qdir = xasprintf("%s/%s", w->dir, SPOOL_QUEUE);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600), dfd;

    if (fd < 0)
        return 1;
    if (write_all(fd, w->env->data, w->env->len) != 0 ||
        write_all(fd, w->added, strlen(w->added)) != 0 || write_all(fd, w->msg, w->len) != 0 ||
        fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return 1;
    }
    close(fd);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) != 0) {
        unlink(tmp);
        return 1;
    }
    dfd = open(qdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* The one queue file of every forwarded address; 0 or -1 (*why). */
static int write_forward(struct run *r, const char *id, char **why)
{
    struct qfile_env env;
    struct buf hb, added;
    const char *bad = NULL;
    int rc;

    memset(&env, 0, sizeof(env));
    snprintf(env.id, sizeof(env.id), "%s", id);
    env.arrival_us = now_us();
    env.client_addr = (char *)(uintptr_t) "127.0.0.1";
    /* whether the original may be DKIM-signed (qmgr said so in q->dkim)
     * travels with the copy: mail that came from the Internet and is
     * forwarded is never signed with our keys */
    env.proto = (char *)(uintptr_t)(r->q->dkim ? "LOCAL" : "FORWARD");
    env.sender = r->q->sender;
    env.envid = r->q->envid[0] ? r->q->envid : NULL;
    env.ret = (enum dsn_ret)r->q->ret;
    env.body = (r->q->need & DLV_NEED_8BITMIME) ? QFILE_BODY_8BITMIME : QFILE_BODY_NONE;
    env.smtputf8 = (r->q->need & DLV_NEED_SMTPUTF8) != 0;
    env.rcpt = r->fwd;
    env.nrcpt = r->nfwd;
    buf_init(&added);
    /* one Delivered-To: per original recipient whose mail this is */
    for (size_t i = 0; i < r->nfwd; i++) {
        int seen = 0;
        for (size_t k = 0; k < i; k++)
            seen |= r->fwd_of[k] == r->fwd_of[i];
        if (!seen)
            buf_printf(&added, "Delivered-To: %s\r\n", r->q->rcpts[r->fwd_of[i]].addr);
    }
    env.size = added.len + r->len;
    buf_init(&hb);
    if (qfile_env_write(&hb, &env, NULL, &bad) != 0) {
        *why = xasprintf("cannot make the envelope: %s", bad);
        rc = -1;
    } else {
        struct qwrite w = {cfg_str(r->jc->cfg, P_queue_directory), id,     &hb,
                           added.data ? added.data : "",           r->msg, r->len};
        rc = ld_run_owner(r->jc->ld, r->jc->owner_uid, r->jc->owner_gid, w_queue, &w) == 0 ? 0 : -1;
        if (rc != 0)
            *why = xasprintf("cannot queue the forwarded message in %s/%s",
                             cfg_str(r->jc->cfg, P_queue_directory), SPOOL_QUEUE);
    }
    buf_free(&hb);
    buf_free(&added);
    return rc;
}

/* Each recipient that had something forwarded: say so, or defer it. */
static void settle_forward(struct run *r, struct dlv_rcpt_res *res, int ok, const char *id,
                           const char *why)
{
    for (size_t i = 0; i < r->q->nrcpts; i++) {
        struct buf t;
        int any = 0;
        buf_init(&t);
        for (size_t k = 0; k < r->nfwd; k++) {
            if (r->fwd_of[k] != i || t.len > TEXT_MAX)
                continue;
            buf_printf(&t, "%s<%s>", any ? ", " : "", r->fwd[k].addr);
            any = 1;
        }
        if (any) {
            char *text = ok ? xasprintf("%s%sforwarded as %s to %s", res[i].text,
                                        res[i].text[0] ? "; " : "", id, t.data)
                            : xasprintf("%s%s%s", res[i].text, res[i].text[0] ? "; " : "", why);
            free(res[i].text);
            res[i].text = text;
            if (!ok) {
                res[i].status = DLV_TEMP;
                res[i].cls = DLV_CLASS_LOCAL;
                free(res[i].dsn);
                res[i].dsn = xstrdup("4.3.0");
            }
        }
        buf_free(&t);
    }
}

static char *read_message(int fd, const struct dlv_req *q, size_t *len)
{
    char *p = xcalloc(1, (size_t)q->msg_size + 1);
    size_t got = 0;

    while (got < q->msg_size) {
        ssize_t n = pread(fd, p + got, (size_t)q->msg_size - got, (off_t)(q->msg_offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(p);
            return NULL;
        }
        got += (size_t)n;
    }
    *len = got;
    return p;
}

static void open_aliases(struct run *r)
{
    const char *path = cfg_str(r->jc->cfg, P_alias_maps);
    char *db, *err = NULL;
    struct stat st;

    r->alias_owner = -1;
    if (path == NULL || *path == '\0')
        return;
    db = xasprintf("%s.db", path);
    if (stat(db, &st) == 0) {
        r->alias_owner = (long)st.st_uid;
        r->aliases = map_open(path, 0, &err);
        if (r->aliases == NULL) {
            log_warn("alias_maps: %s; no aliases are used", err);
            free(err);
        }
    }
    free(db);
}

void job_run(const struct job_conf *jc, const struct dlv_req *q, int msgfd, const char *fwd_id,
             int out_fd)
{
    struct run r = {.jc = jc, .q = q};
    struct dlv_rcpt_res *res = xcalloc(q->nrcpts + 1, sizeof(*res));
    struct dlv_res out;
    struct ipc_w w;
    int queued = 0;
    int64_t t0 = now_us();

    r.msg = read_message(msgfd, q, &r.len);
    if (r.msg != NULL)
        open_aliases(&r);
    for (size_t i = 0; i < q->nrcpts; i++) {
        if (r.msg == NULL) {
            res[i] = (struct dlv_rcpt_res){q->rcpts[i].idx,
                                           DLV_TEMP,
                                           DLV_CLASS_LOCAL,
                                           DLV_STEP_NONE,
                                           0,
                                           xstrdup("4.3.0"),
                                           xstrdup("cannot read the queue file")};
            continue;
        }
        one_rcpt(&r, (uint32_t)i, &res[i]);
    }
    if (r.nfwd > 0) {
        char *why = NULL;
        queued = write_forward(&r, fwd_id, &why) == 0;
        settle_forward(&r, res, queued, fwd_id, why);
        free(why);
    }
    memset(&out, 0, sizeof(out));
    out.id = q->id;
    out.relay = (char *)(uintptr_t) "local";
    out.label = (char *)(uintptr_t) "";
    out.host_index = -1;
    out.duration_us = (uint64_t)(now_us() - t0);
    out.r = res;
    out.n = q->nrcpts;
    out.dsn_passed = r.nfwd > 0 && queued;
    out.tls_version = out.tls_cipher = (char *)(uintptr_t) "";
    ipc_w_init(&w);
    ipc_w_str(&w, queued ? fwd_id : "");
    dlv_res_encode(&w, &out);
    if (write_all(out_fd, w.p, w.len) != 0)
        log_warn("%s: cannot hand the result to local", q->queue_id);
    ipc_w_free(&w);
    for (size_t i = 0; i < q->nrcpts; i++) {
        free(res[i].dsn);
        free(res[i].text);
    }
    free(res);
    for (size_t i = 0; i < r.nfwd; i++) {
        free(r.fwd[i].addr);
        free(r.fwd[i].orcpt);
    }
    free(r.fwd);
    free(r.fwd_of);
    if (r.aliases)
        map_close(r.aliases);
    free((char *)(uintptr_t)r.msg);
}
