/*
 * folder - bounced/ and bad/ as smtpctl shows and changes them, and the
 * administrator's bounce (qmgr.h):
 *
 *   show bounced [ID...]   messages kept after their notice: ID, when
 *   show bad [ID...]       moved, sender, why, and per recipient its
 *                          state, status, remote host and last reply
 *   requeue ID... | --domain D | all
 *                          put messages from bounced/ or bad/ back into
 *                          the queue: their failed recipients (at D only,
 *                          with --domain) are tried again from scratch,
 *                          max_queue_lifetime counting from now; those
 *                          delivered stay delivered
 *   remove ID              (ctl.c) also deletes bounced/ID and bad/ID
 *   bounce SELECTION       (ctl.c) fail now the live recipients of queued
 *                          or held messages (at D only, with --domain),
 *                          "bounced by the administrator", and notify the
 *                          sender as for any failure
 *
 * The facts come from the files (envelope) and the records qmgr keeps
 * for them (qrec.h: why, when, each recipient's last result). A file
 * whose envelope does not parse is shown with the reason it was moved.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "group.h"
#include "mail/dlv_proto.h"
#include "mail/proto.h"
#include "mail/spool.h"
#include "policy.h"
#include "qmgr.h"

#define OUT_LIMIT (IPC_MAX_BODY - 64 * 1024)
#define LIST_MAX 100000 /* names read from one folder */

/* One file of a folder with what is known about it. */
struct entry {
    char id[QFILE_ID_SIZE];
    const char *dir;
    int have_env, have_rec;
    struct qfile_env env;
    struct qrec_head h;
    struct rcpt *r; /* env.nrcpt of them when have_rec */
    char *err;      /* why the envelope did not parse */
};

static void entry_free(struct entry *e)
{
    if (e->have_env)
        qfile_env_free(&e->env);
    if (e->r) {
        qrec_rcpt_clear(e->r, e->have_env ? e->env.nrcpt : 0);
        free(e->r);
    }
    qrec_head_clear(&e->h);
    free(e->err);
    memset(e, 0, sizeof(*e));
}

static void entry_load(struct qmgr *q, const char *dir, const char *id, struct entry *e)
{
    char path[64];
    void *val = NULL;
    size_t len = 0;
    int fd;

    memset(e, 0, sizeof(*e));
    memcpy(e->id, id, QFILE_ID_SIZE);
    e->dir = dir;
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        e->err = xasprintf("cannot open: %s", strerror(errno));
    else if (qfile_read(fd, &e->env, &e->err) == 0)
        e->have_env = 1;
    if (fd >= 0)
        close(fd);
    if (store_get(q, id, &val, &len) == 1) {
        long n = qrec_msg_count(val, len);
        if (e->have_env && n == (long)e->env.nrcpt) {
            e->r = xcalloc(e->env.nrcpt ? e->env.nrcpt : 1, sizeof(*e->r));
            e->have_rec = qrec_msg_decode(val, len, &e->h, e->r, e->env.nrcpt) == 0;
        } else if (n == 0) {
            e->have_rec = qrec_msg_decode(val, len, &e->h, NULL, 0) == 0;
        }
    }
    free(val);
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The queue-ID names in dir, sorted (oldest first); *n of them. */
static char **list_dir(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **v = NULL;
    size_t k = 0, cap = 0;

    *n = 0;
    if (d == NULL)
        return NULL;
    while ((de = readdir(d)) != NULL && k < LIST_MAX) {
        if (!qfile_id_valid(de->d_name))
            continue;
        if (k == cap) {
            cap = cap ? cap * 2 : 64;
            v = xrealloc(v, cap * sizeof(*v));
        }
        v[k++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (k)
        qsort(v, k, sizeof(*v), by_str);
    *n = k;
    return v;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int wanted(char **ids, size_t nids, const char *id)
{
    if (nids == 0)
        return 1;
    for (size_t i = 0; i < nids; i++)
        if (strcmp(ids[i], id) == 0)
            return 1;
    return 0;
}

/* ---- show ---- */

static void text_entry(struct buf *out, const struct entry *e)
{
    char date[40];

    if (e->have_rec && e->h.moved_us)
        rfc5322_date(e->h.moved_us, date, sizeof(date));
    else
        snprintf(date, sizeof(date), "%s", "-");
    buf_printf(out, "%s  moved %s\n", e->id, date);
    if (!e->have_env) {
        buf_printf(out, "  unreadable: %s\n", e->err ? e->err : "?");
    } else {
        buf_printf(out, "  sender <%s>%s%s, %zu recipient%s\n", e->env.sender,
                   e->env.notice == QFILE_NOTICE_DSN ? ", a delivery notice about " : "",
                   e->env.notice == QFILE_NOTICE_DSN ? e->env.notice_of : "", e->env.nrcpt,
                   e->env.nrcpt == 1 ? "" : "s");
    }
    buf_printf(out, "  why: %s\n", e->have_rec && e->h.reason ? e->h.reason : "(not recorded)");
    if (!e->have_env)
        return;
    for (size_t i = 0; i < e->env.nrcpt; i++) {
        const struct rcpt *r = e->have_rec ? &e->r[i] : NULL;
        buf_printf(out, "  <%s> %s", e->env.rcpt[i].addr,
                   r ? rstate_name((enum rstate)r->state) : "?");
        if (r && r->state != RS_SENT) {
            if (r->status)
                buf_printf(out, " %s", r->status);
            if (r->remote)
                buf_printf(out, " via %s", r->remote);
            if (r->last_text) {
                const char *cn = dlv_class_name((enum dlv_class)r->last_class);
                const char *sn = dlv_step_name((enum dlv_step)r->last_step);
                if (r->last_step == DLV_STEP_NONE || strcmp(cn, sn) == 0)
                    buf_printf(out, ": %s: %s", cn, r->last_text);
                else
                    buf_printf(out, ": %s/%s: %s", cn, sn, r->last_text);
            }
        }
        buf_addc(out, '\n');
    }
}

static void json_entry(struct buf *out, const struct entry *e)
{
    buf_adds(out, "{\"id\":");
    buf_json_str(out, e->id);
    buf_adds(out, ",\"folder\":");
    buf_json_str(out, e->dir);
    buf_printf(out, ",\"moved\":%.3f", e->have_rec ? (double)e->h.moved_us / 1e6 : 0.0);
    buf_adds(out, ",\"reason\":");
    buf_json_str(out, e->have_rec && e->h.reason ? e->h.reason : "");
    if (!e->have_env) {
        buf_adds(out, ",\"error\":");
        buf_json_str(out, e->err ? e->err : "");
        buf_adds(out, ",\"recipients\":[]}");
        return;
    }
    buf_adds(out, ",\"sender\":");
    buf_json_str(out, e->env.sender);
    buf_printf(out, ",\"arrival\":%.3f,\"size\":%llu", (double)e->env.arrival_us / 1e6,
               (unsigned long long)e->env.size);
    buf_adds(out, ",\"notice_of\":");
    buf_json_str(out, e->env.notice != QFILE_NOTICE_NONE ? e->env.notice_of : "");
    buf_adds(out, ",\"recipients\":[");
    for (size_t i = 0; i < e->env.nrcpt; i++) {
        const struct rcpt *r = e->have_rec ? &e->r[i] : NULL;
        buf_adds(out, i ? ",{\"address\":" : "{\"address\":");
        buf_json_str(out, e->env.rcpt[i].addr);
        buf_adds(out, ",\"state\":");
        buf_json_str(out, r ? rstate_name((enum rstate)r->state) : "unknown");
        buf_adds(out, ",\"status\":");
        buf_json_str(out, r && r->status ? r->status : "");
        buf_adds(out, ",\"remote\":");
        buf_json_str(out, r && r->remote ? r->remote : "");
        buf_adds(out, ",\"class\":");
        buf_json_str(out, r ? dlv_class_name((enum dlv_class)r->last_class) : "none");
        buf_adds(out, ",\"step\":");
        buf_json_str(out, r ? dlv_step_name((enum dlv_step)r->last_step) : "none");
        buf_adds(out, ",\"error\":");
        buf_json_str(out, r && r->last_text ? r->last_text : "");
        buf_printf(out, ",\"last_attempt\":%.3f}", r ? (double)r->last_try_us / 1e6 : 0.0);
    }
    buf_adds(out, "]}");
}

static int show_folder(struct qmgr *q, const char *dir, char **ids, size_t nids, unsigned flags,
                       struct buf *out)
{
    size_t n, shown = 0;
    char **v = list_dir(dir, &n);
    int json = (flags & CTL_F_JSON) != 0, truncated = 0;

    if (json)
        buf_printf(out, "{\"folder\":\"%s\",\"messages\":[", dir);
    for (size_t i = 0; i < n; i++) {
        struct entry e;
        if (!wanted(ids, nids, v[i]))
            continue;
        if (out->len > OUT_LIMIT) {
            truncated = 1;
            break;
        }
        entry_load(q, dir, v[i], &e);
        if (json) {
            if (shown)
                buf_addc(out, ',');
            json_entry(out, &e);
        } else {
            text_entry(out, &e);
        }
        shown++;
        entry_free(&e);
    }
    if (json)
        buf_printf(out, "],\"count\":%zu,\"truncated\":%s}\n", shown, truncated ? "true" : "false");
    else if (shown == 0)
        buf_printf(out, "%s/ is empty%s\n", dir, nids ? " of those IDs" : "");
    else
        buf_printf(out, "%zu message%s in %s/%s\n", shown, shown == 1 ? "" : "s", dir,
                   truncated ? " (truncated)" : "");
    free_list(v, n);
    return 0;
}

/* ---- requeue ---- */

static int rcpt_at(const char *addr, const char *domain)
{
    return domain == NULL || ascii_casecmp(addr_domain(addr), domain) == 0;
}

/* Put dir/id back into queue/; 1 done, 0 nothing to retry, -1 error (in out). */
static int requeue_one(struct qmgr *q, const char *dir, const char *id, const char *domain,
                       struct buf *out)
{
    struct entry e;
    struct ipc_w w;
    char from[64], to[64], *err = NULL;
    size_t reset = 0;
    int rc = -1;

    entry_load(q, dir, id, &e);
    if (!e.have_env) {
        buf_printf(out, "%s: cannot requeue: the file does not parse (%s)\n", id,
                   e.err ? e.err : "?");
        goto out;
    }
    if (!e.have_rec) { /* no record: everything is tried again */
        free(e.r);
        e.r = xcalloc(e.env.nrcpt, sizeof(*e.r));
        for (size_t i = 0; i < e.env.nrcpt; i++)
            e.r[i].state = RS_FAILED;
    }
    for (size_t i = 0; i < e.env.nrcpt; i++) {
        struct rcpt *r = &e.r[i];
        if (r->state != RS_FAILED || !rcpt_at(e.env.rcpt[i].addr, domain))
            continue;
        r->state = RS_PENDING;
        r->direct_attempts = r->relay_attempts = 0;
        r->next_try_us = r->first_fail_us = 0;
        r->notes &= (uint8_t) ~(QN_WANT_FAILURE | QN_SENT_FAILURE | QN_WANT_DELAY | QN_SENT_DELAY |
                                QN_PENDING);
        reset++;
    }
    if (reset == 0) {
        rc = 0;
        goto out;
    }
    qrec_head_clear(&e.h);
    e.h.requeued_us = now_us();
    ipc_w_init(&w);
    qrec_msg_encode(&w, &e.h, e.r, e.env.nrcpt);
    if (store_put(q, id, &w, &err) != 0) {
        buf_printf(out, "%s: cannot requeue: %s\n", id, err ? err : "database error");
        ipc_w_free(&w);
        free(err);
        goto out;
    }
    ipc_w_free(&w);
    snprintf(from, sizeof(from), "%s/%s", dir, id);
    snprintf(to, sizeof(to), "%s/%s", SPOOL_QUEUE, id);
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0) {
        buf_printf(out, "%s: cannot move it to %s/: %s\n", id, SPOOL_QUEUE, strerror(errno));
        goto out;
    }
    log_info("%s: requeued from %s/ by the administrator (%zu recipient%s to try again%s%s)", id,
             dir, reset, reset == 1 ? "" : "s", domain ? " at " : "", domain ? domain : "");
    queue_requeued(q, id);
    rc = 1;
out:
    entry_free(&e);
    return rc;
}

static int matches_domain(struct qmgr *q, const char *dir, const char *id, const char *domain)
{
    struct entry e;
    int hit = 0;

    entry_load(q, dir, id, &e);
    for (size_t i = 0; e.have_env && i < e.env.nrcpt && !hit; i++)
        hit = rcpt_at(e.env.rcpt[i].addr, domain) && (!e.have_rec || e.r[i].state == RS_FAILED);
    entry_free(&e);
    return hit;
}

static int requeue(struct qmgr *q, int argc, char **argv, unsigned flags, struct buf *out)
{
    static const char *const dirs[] = {SPOOL_BOUNCED, SPOOL_BAD};
    const char *domain = NULL;
    char **ids = xcalloc((size_t)argc + 1, sizeof(*ids));
    size_t nids = 0, done = 0, found = 0;
    int all = 0, errors = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
            domain = argv[++i];
        else if (strncmp(argv[i], "--domain=", 9) == 0)
            domain = argv[i] + 9;
        else if (strcmp(argv[i], "all") == 0)
            all = 1;
        else if (qfile_id_valid(argv[i]))
            ids[nids++] = argv[i];
        else {
            buf_printf(out, "qmgr: '%s' is not a queue ID, --domain D or all\n", argv[i]);
            free(ids);
            return 2;
        }
    }
    if (!all && !domain && nids == 0) {
        buf_adds(out, "qmgr: say which messages: requeue ID... | --domain D | all\n");
        free(ids);
        return 2;
    }
    for (size_t i = 0; i < nids; i++) {
        char p1[64], p2[64];
        snprintf(p1, sizeof(p1), "%s/%s", SPOOL_BOUNCED, ids[i]);
        snprintf(p2, sizeof(p2), "%s/%s", SPOOL_BAD, ids[i]);
        if (access(p1, F_OK) != 0 && access(p2, F_OK) != 0) {
            buf_printf(out, "%s: not in %s/ or %s/\n", ids[i], SPOOL_BOUNCED, SPOOL_BAD);
            errors++;
        }
    }
    for (size_t d = 0; d < 2; d++) {
        size_t n;
        char **v = list_dir(dirs[d], &n);
        for (size_t i = 0; i < n; i++) {
            if (!wanted(ids, nids, v[i]) || (domain && !matches_domain(q, dirs[d], v[i], domain)))
                continue;
            found++;
            int r = requeue_one(q, dirs[d], v[i], domain, out);
            if (r > 0)
                done++;
            else if (r < 0)
                errors++;
        }
        free_list(v, n);
    }
    if (flags & CTL_F_JSON)
        buf_printf(out, "{\"requeued\":%zu,\"matched\":%zu,\"errors\":%d}\n", done, found, errors);
    else
        buf_printf(out, "requeued %zu message%s (%zu matched in %s/ and %s/)\n", done,
                   done == 1 ? "" : "s", found, SPOOL_BOUNCED, SPOOL_BAD);
    free(ids);
    qmgr_kick(q);
    return errors ? 1 : 0;
}

/* ---- remove, bounce ---- */

int folder_remove(struct qmgr *q, const char *id)
{
    static const char *const dirs[] = {SPOOL_BOUNCED, SPOOL_BAD};
    char path[64];

    for (size_t d = 0; d < 2; d++) {
        snprintf(path, sizeof(path), "%s/%s", dirs[d], id);
        if (unlink(path) == 0) {
            store_del(q, id);
            log_info("%s: removed from %s/ by the administrator", id, dirs[d]);
            return 1;
        }
        if (errno != ENOENT)
            log_err("%s: cannot remove %s: %s", id, path, strerror(errno));
    }
    return 0;
}

size_t msg_bounce(struct qmgr *q, struct msg *m, const char *domain, size_t *busy)
{
    static const char why[] = "bounced by the administrator (smtpctl bounce)";
    size_t n = 0;
    int64_t now = now_us();

    for (size_t i = 0; i < m->nrcpt; i++) {
        struct rcpt *r = &m->rcpt[i];
        struct group *g = &m->groups[r->group];
        if ((r->state != RS_PENDING && r->state != RS_DEFERRED) || !rcpt_at(r->addr, domain))
            continue;
        if (g->st == G_ACTIVE) {
            (*busy)++;
            continue;
        }
        r->state = RS_FAILED;
        free(r->status);
        r->status = xstrdup("5.0.0");
        free(r->last_text);
        r->last_text = xstrdup(why);
        r->last_class = DLV_CLASS_LOCAL;
        r->last_step = DLV_STEP_NONE;
        r->last_code = 0;
        r->last_try_us = now;
        q->st.rcpt_failed++;
        metrics_rcpt(q, MET_BOUNCED, r->relay_attempts ? DLV_PHASE_RELAY : DLV_PHASE_DIRECT,
                     r->relay_attempts ? metrics_gateway(q, NULL) : -1);
        g->d->failed++;
        log_info("%s: to=<%s>, relay=none, dsn=5.0.0, status=failed (%s)", m->id, r->addr, why);
        notice_on_failed(q, m, r);
        n++;
    }
    if (n == 0)
        return 0;
    for (size_t g = 0; g < m->ngroups; g++)
        if (m->groups[g].st != G_ACTIVE)
            group_unschedule(q, &m->groups[g]);
    if (notice_wanted(m))
        notice_mark(q, m);
    if (msg_final(m) && !m->notice_pos) {
        msg_finish(q, m);
        return n;
    }
    store_mark(q, m);
    if (m->where == Q_QUEUE)
        for (size_t g = 0; g < m->ngroups; g++)
            if (m->groups[g].st != G_ACTIVE)
                group_schedule(q, &m->groups[g]);
    return n;
}

int folder_ctl(struct qmgr *q, int argc, char **argv, unsigned flags, struct buf *out)
{
    if (argc >= 2 && strcmp(argv[0], "show") == 0 &&
        (strcmp(argv[1], "bounced") == 0 || strcmp(argv[1], "bad") == 0)) {
        const char *dir = strcmp(argv[1], "bad") == 0 ? SPOOL_BAD : SPOOL_BOUNCED;
        for (int i = 2; i < argc; i++)
            if (!qfile_id_valid(argv[i])) {
                buf_printf(out, "qmgr: '%s' is not a queue ID\n", argv[i]);
                return 2;
            }
        return show_folder(q, dir, argv + 2, (size_t)(argc - 2), flags, out);
    }
    if (argc >= 1 && strcmp(argv[0], "requeue") == 0)
        return requeue(q, argc, argv, flags, out);
    return POLICY_CTL_NOT_MINE;
}
