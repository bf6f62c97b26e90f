/*
 * qfile - queue file envelope writer and parser, queue IDs (see qfile.h
 * and docs/queue-format.md).
 */
#include "mail/qfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- queue IDs ---- */

void qfile_id_init(struct qfile_idgen *g, unsigned node)
{
    g->last_us = 0;
    g->seq = 0;
    g->node = node & 0xf;
}

void qfile_id_next(struct qfile_idgen *g, int64_t now, char *out)
{
    if (now < 0)
        now = 0;
    if (now > g->last_us) {
        g->last_us = now;
        g->seq = 0;
    } else if (++g->seq > 0xfff) {
        /* 4096 IDs in one microsecond: borrow the next one. */
        g->last_us++;
        g->seq = 0;
    }
    snprintf(out, QFILE_ID_SIZE, "%014" PRIX64 "%01X%03X",
             (uint64_t)g->last_us & (uint64_t)0xffffffffffffff, g->node, g->seq);
}

int qfile_id_valid(const char *s)
{
    size_t i;

    for (i = 0; i < QFILE_ID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return s[i] == '\0';
}

int64_t qfile_id_time(const char *id)
{
    int64_t v = 0;

    for (int i = 0; i < 14; i++)
        v = v * 16 + (id[i] <= '9' ? id[i] - '0' : id[i] - 'A' + 10);
    return v;
}

/* ---- writer ---- */

static int field_ok(const char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            return 0;
    return 1;
}

/* A recipient's NOTIFY in the file: "-" when not given. */
static const char *notify_text(unsigned bits, char *buf, size_t size)
{
    return bits == 0 ? "-" : dsn_notify_format(bits, buf, size);
}

void qfile_size_field(uint64_t size, char out[20])
{
    char tmp[21];

    snprintf(tmp, sizeof(tmp), "%020" PRIu64, size);
    memcpy(out, tmp, 20);
}

int qfile_env_write(struct buf *out, const struct qfile_env *env, size_t *size_off,
                    const char **why)
{
    static const char *bodies[] = {NULL, "7BIT", "8BITMIME"};
    char nb[32], sf[20];

    if (!qfile_id_valid(env->id)) {
        *why = "bad queue ID";
        return -1;
    }
    if (env->client_addr == NULL || env->client_addr[0] == '\0' || env->proto == NULL ||
        env->sender == NULL || env->nrcpt == 0) {
        *why = "required field missing";
        return -1;
    }
    const char *strs[] = {env->client_addr, env->helo,   env->proto, env->tls,
                          env->auth,        env->sender, env->envid};
    for (size_t i = 0; i < nitems(strs); i++)
        if (strs[i] != NULL && !field_ok(strs[i])) {
            *why = "line break in a field";
            return -1;
        }
    if ((env->helo && (env->helo[0] == '\0' || strchr(env->helo, ' '))) ||
        (env->envid && (env->envid[0] == '\0' || strchr(env->envid, ' '))) ||
        strchr(env->client_addr, ' ') || strchr(env->proto, ' ')) {
        *why = "space or empty value in a one-word field";
        return -1;
    }
    if (env->notice != QFILE_NOTICE_NONE &&
        (env->notice > QFILE_NOTICE_POSTMASTER || !qfile_id_valid(env->notice_of))) {
        *why = "bad notice";
        return -1;
    }
    for (size_t i = 0; i < env->nrcpt; i++) {
        const struct qfile_rcpt *r = &env->rcpt[i];
        if (r->addr == NULL || r->addr[0] == '\0' || !field_ok(r->addr) ||
            (r->orcpt && (r->orcpt[0] == '\0' || strchr(r->orcpt, ' ') || !field_ok(r->orcpt)))) {
            *why = "bad recipient";
            return -1;
        }
    }

    buf_printf(out, "%s %u\n", QFILE_MAGIC, QFILE_VERSION);
    buf_printf(out, "id %s\n", env->id);
    buf_printf(out, "arrival %" PRId64 "\n", env->arrival_us);
    buf_printf(out, "client %s %u\n", env->client_addr, env->client_port);
    if (env->helo)
        buf_printf(out, "helo %s\n", env->helo);
    buf_printf(out, "proto %s\n", env->proto);
    if (env->tls)
        buf_printf(out, "tls %s\n", env->tls);
    if (env->auth)
        buf_printf(out, "auth %s\n", env->auth);
    buf_printf(out, "sender %s\n", env->sender);
    if (env->envid)
        buf_printf(out, "envid %s\n", env->envid);
    if (env->ret != DSN_RET_NONE)
        buf_printf(out, "ret %s\n", dsn_ret_name(env->ret));
    if (env->body != QFILE_BODY_NONE)
        buf_printf(out, "body %s\n", bodies[env->body]);
    if (env->smtputf8)
        buf_adds(out, "smtputf8\n");
    if (env->notice != QFILE_NOTICE_NONE)
        buf_printf(out, "notice %s %s\n", env->notice == QFILE_NOTICE_DSN ? "dsn" : "postmaster",
                   env->notice_of);
    for (size_t i = 0; i < env->nrcpt; i++) {
        const struct qfile_rcpt *r = &env->rcpt[i];
        buf_printf(out, "rcpt %s %s %s\n", notify_text(r->notify, nb, sizeof(nb)),
                   r->orcpt ? r->orcpt : "-", r->addr);
    }
    buf_adds(out, "size ");
    if (size_off)
        *size_off = out->len;
    qfile_size_field(env->size, sf);
    buf_add(out, sf, sizeof(sf));
    buf_adds(out, "\n\n");
    return 0;
}

/* ---- parser ---- */

void qfile_env_free(struct qfile_env *env)
{
    free(env->client_addr);
    free(env->helo);
    free(env->proto);
    free(env->tls);
    free(env->auth);
    free(env->sender);
    free(env->envid);
    for (size_t i = 0; i < env->nrcpt; i++) {
        free(env->rcpt[i].addr);
        free(env->rcpt[i].orcpt);
    }
    free(env->rcpt);
    memset(env, 0, sizeof(*env));
}

static int perr(char **err, size_t lineno, const char *fmt, const char *arg)
{
    char msg[200];

    snprintf(msg, sizeof(msg), fmt, arg);
    *err = lineno ? xasprintf("envelope line %zu: %s", lineno, msg) : xstrdup(msg);
    return -1;
}

/* Unsigned decimal, no sign, no leading junk; -1 if bad or over max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (max - (uint64_t)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static int parse_notify(const char *s, unsigned *out)
{
    if (strcmp(s, "-") == 0) {
        *out = 0;
        return 0;
    }
    return dsn_notify_parse(s, strlen(s), out);
}

enum {
    K_ID,
    K_ARRIVAL,
    K_CLIENT,
    K_HELO,
    K_PROTO,
    K_TLS,
    K_AUTH,
    K_SENDER,
    K_ENVID,
    K_RET,
    K_BODY,
    K_SMTPUTF8,
    K_NOTICE,
    K_SIZE,
    K__COUNT
};
static const char *const keys[K__COUNT] = {"id",   "arrival",  "client", "helo",  "proto",
                                           "tls",  "auth",     "sender", "envid", "ret",
                                           "body", "smtputf8", "notice", "size"};

static int parse_line(struct qfile_env *env, char *line, size_t lineno, unsigned char *seen,
                      size_t *rcpt_cap, char **err)
{
    char *val = strchr(line, ' ');
    int k, ret;
    uint64_t u;

    if (val)
        *val++ = '\0';
    else
        val = line + strlen(line);
    if (strcmp(line, "rcpt") == 0) {
        char *notify = val, *orcpt, *addr;
        struct qfile_rcpt *r;
        orcpt = strchr(notify, ' ');
        if (orcpt == NULL)
            return perr(err, lineno, "%s", "rcpt needs notify, orcpt and address");
        *orcpt++ = '\0';
        addr = strchr(orcpt, ' ');
        if (addr == NULL || addr[1] == '\0')
            return perr(err, lineno, "%s", "rcpt needs notify, orcpt and address");
        *addr++ = '\0';
        if (env->nrcpt == *rcpt_cap) {
            *rcpt_cap = *rcpt_cap ? *rcpt_cap * 2 : 4;
            env->rcpt = xrealloc(env->rcpt, *rcpt_cap * sizeof(*env->rcpt));
        }
        r = &env->rcpt[env->nrcpt];
        memset(r, 0, sizeof(*r));
        if (parse_notify(notify, &r->notify) != 0)
            return perr(err, lineno, "bad NOTIFY \"%.40s\"", notify);
        if (strcmp(orcpt, "-") != 0 && strchr(orcpt, ';') == NULL)
            return perr(err, lineno, "bad ORCPT \"%.40s\"", orcpt);
        r->addr = xstrdup(addr);
        r->orcpt = strcmp(orcpt, "-") == 0 ? NULL : xstrdup(orcpt);
        env->nrcpt++;
        return 0;
    }
    for (k = 0; k < K__COUNT; k++)
        if (strcmp(line, keys[k]) == 0)
            break;
    if (k == K__COUNT)
        return perr(err, lineno, "unknown key \"%.40s\"", line);
    if (seen[k]++)
        return perr(err, lineno, "duplicate key \"%s\"", keys[k]);
    if (k != K_SENDER && k != K_SMTPUTF8 && *val == '\0')
        return perr(err, lineno, "empty value for \"%s\"", keys[k]);
    switch (k) {
    case K_ID:
        if (!qfile_id_valid(val))
            return perr(err, lineno, "bad queue ID \"%.40s\"", val);
        memcpy(env->id, val, QFILE_ID_SIZE);
        break;
    case K_ARRIVAL:
        if (parse_u64(val, INT64_MAX, &u) != 0)
            return perr(err, lineno, "bad arrival \"%.40s\"", val);
        env->arrival_us = (int64_t)u;
        break;
    case K_CLIENT: {
        char *port = strchr(val, ' ');
        if (port == NULL)
            return perr(err, lineno, "%s", "client needs address and port");
        *port++ = '\0';
        if (*val == '\0' || parse_u64(port, 65535, &u) != 0)
            return perr(err, lineno, "%s", "bad client address or port");
        env->client_addr = xstrdup(val);
        env->client_port = (unsigned)u;
        break;
    }
    case K_HELO:
        env->helo = xstrdup(val);
        break;
    case K_PROTO:
        if (strcmp(val, "SMTP") && strcmp(val, "ESMTP") && strcmp(val, "ESMTPS") &&
            strcmp(val, "ESMTPA") && strcmp(val, "ESMTPSA") && strcmp(val, "LOCAL") &&
            strcmp(val, "FORWARD"))
            return perr(err, lineno, "bad proto \"%.40s\"", val);
        env->proto = xstrdup(val);
        break;
    case K_TLS:
        env->tls = xstrdup(val);
        break;
    case K_AUTH:
        env->auth = xstrdup(val);
        break;
    case K_SENDER:
        env->sender = xstrdup(val);
        break;
    case K_ENVID:
        env->envid = xstrdup(val);
        break;
    case K_RET:
        ret = dsn_ret_parse(val, strlen(val));
        if (ret < 0)
            return perr(err, lineno, "bad ret \"%.40s\"", val);
        env->ret = (enum dsn_ret)ret;
        break;
    case K_BODY:
        if (strcmp(val, "7BIT") == 0)
            env->body = QFILE_BODY_7BIT;
        else if (strcmp(val, "8BITMIME") == 0)
            env->body = QFILE_BODY_8BITMIME;
        else
            return perr(err, lineno, "bad body \"%.40s\"", val);
        break;
    case K_SMTPUTF8:
        if (*val != '\0')
            return perr(err, lineno, "%s", "smtputf8 takes no value");
        env->smtputf8 = 1;
        break;
    case K_NOTICE: {
        char *of = strchr(val, ' ');
        if (of == NULL)
            return perr(err, lineno, "%s", "notice needs a kind and a queue ID");
        *of++ = '\0';
        if (strcmp(val, "dsn") == 0)
            env->notice = QFILE_NOTICE_DSN;
        else if (strcmp(val, "postmaster") == 0)
            env->notice = QFILE_NOTICE_POSTMASTER;
        else
            return perr(err, lineno, "bad notice kind \"%.40s\"", val);
        if (!qfile_id_valid(of))
            return perr(err, lineno, "bad queue ID \"%.40s\"", of);
        memcpy(env->notice_of, of, QFILE_ID_SIZE);
        break;
    }
    case K_SIZE:
        if (strlen(val) != 20 || parse_u64(val, UINT64_MAX, &u) != 0)
            return perr(err, lineno, "bad size \"%.40s\"", val);
        env->size = u;
        break;
    }
    return 0;
}

int qfile_parse(const char *buf, size_t len, uint64_t file_size, struct qfile_env *env, char **err)
{
    const char *end, *p;
    char *copy, *line, *next;
    size_t lineno = 1, rcpt_cap = 0, hdr_len, magic_len = strlen(QFILE_MAGIC);
    unsigned char seen[K__COUNT] = {0};
    uint64_t ver;
    int rc = -1;

    memset(env, 0, sizeof(*env));
    *err = NULL;
    if (len > file_size)
        len = (size_t)file_size;
    /* The first line: magic and version. */
    if (len < magic_len + 1)
        return len < file_size ? 1 : perr(err, 0, "%s", "not a queue file (too short)");
    if (memcmp(buf, QFILE_MAGIC " ", magic_len + 1) != 0)
        return perr(err, 0, "%s", "not a queue file (no " QFILE_MAGIC " line)");
    p = memchr(buf, '\n', len);
    if (p == NULL)
        return len < file_size && len < 64 ? 1 : perr(err, 1, "%s", "bad version line");
    {
        char vb[16];
        size_t vl = (size_t)(p - buf) - magic_len - 1;
        if (vl == 0 || vl >= sizeof(vb))
            return perr(err, 1, "%s", "bad version line");
        memcpy(vb, buf + magic_len + 1, vl);
        vb[vl] = '\0';
        if (parse_u64(vb, 1000000, &ver) != 0)
            return perr(err, 1, "%s", "bad version line");
        if (ver != QFILE_VERSION)
            return perr(err, 1, "unsupported queue file version %s", vb);
    }
    /* The envelope ends at the first empty line. */
    end = NULL;
    for (const char *q = p; q + 1 < buf + len; q++) {
        q = memchr(q, '\n', (size_t)(buf + len - q));
        if (q == NULL || q + 1 >= buf + len)
            break;
        if (q[1] == '\n') {
            end = q + 1;
            break;
        }
    }
    if (end == NULL) {
        if (len < file_size && len < QFILE_ENV_MAX)
            return 1;
        return perr(err, 0, "%s", "truncated envelope (no empty line)");
    }
    hdr_len = (size_t)(end - buf) + 1;
    if (memchr(buf, '\0', hdr_len) != NULL || memchr(buf, '\r', hdr_len) != NULL)
        return perr(err, 0, "%s", "NUL or CR in envelope");

    env->version = (unsigned)ver;
    copy = xstrndup(p + 1, (size_t)(end - p - 1));
    for (line = copy; *line; line = next) {
        next = strchr(line, '\n');
        *next++ = '\0';
        lineno++;
        if (parse_line(env, line, lineno, seen, &rcpt_cap, err) != 0)
            goto out;
    }
    static const int required[] = {K_ID, K_ARRIVAL, K_CLIENT, K_PROTO, K_SENDER, K_SIZE};
    for (size_t i = 0; i < nitems(required); i++)
        if (!seen[required[i]]) {
            perr(err, 0, "missing key \"%s\"", keys[required[i]]);
            goto out;
        }
    if (env->nrcpt == 0) {
        perr(err, 0, "%s", "no recipients");
        goto out;
    }
    env->msg_offset = hdr_len;
    if (file_size - hdr_len != env->size) {
        *err = xasprintf("message section is %" PRIu64 " bytes, envelope says %" PRIu64,
                         file_size - hdr_len, env->size);
        goto out;
    }
    rc = 0;
out:
    free(copy);
    if (rc != 0)
        qfile_env_free(env);
    return rc;
}

int qfile_read(int fd, struct qfile_env *env, char **err)
{
    struct stat st;
    struct buf b;
    size_t chunk = 8192;
    int rc;

    memset(env, 0, sizeof(*env));
    if (fstat(fd, &st) != 0) {
        *err = xasprintf("fstat: %s", strerror(errno));
        return -1;
    }
    buf_init(&b);
    for (;;) {
        ssize_t n;
        buf_reserve(&b, chunk);
        n = pread(fd, b.data + b.len, chunk, (off_t)b.len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *err = xasprintf("read: %s", strerror(errno));
            rc = -1;
            break;
        }
        b.len += (size_t)n;
        b.data[b.len] = '\0';
        rc = qfile_parse(b.data, b.len, (uint64_t)st.st_size, env, err);
        if (rc != 1)
            break;
        if (n == 0) {
            *err = xstrdup("file shorter than its size");
            rc = -1;
            break;
        }
        if (chunk < 1024 * 1024)
            chunk *= 2;
    }
    buf_free(&b);
    return rc;
}
