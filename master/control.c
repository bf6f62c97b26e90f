/*
 * control - the control socket (queue_directory/run/control.sock) that
 * smtpctl talks to.
 *
 * A client sends one IMSG_CTL_REQ and gets one IMSG_CTL_REP (layouts and
 * codec in mail/ctl_proto.h). Only root and the user master runs as may
 * connect (SO_PEERCRED). Master answers status,
 * reload, stop and "log level" itself; other commands go to the child
 * that owns them (the command table, mail/ctl_cmds.def) under a request id of master's, and the
 * child's answer goes back to the client. Operations that ask several
 * children (status, reload) collect the answers with a time limit.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "master.h"
#include "mail/ctl_cmds.h"
#include "mail/ctl_proto.h"
#include "mail/proto.h"
#include "mail/spool.h"
#include "base/util.h"

#define OP_TIMEOUT_S 3
#define FORWARD_TIMEOUT_S 120

enum op_kind { OP_FORWARD, OP_STATUS, OP_RELOAD };

struct op_reply {
    int have;
    uint32_t code; /* RELOAD: ok flag */
    char *text;    /* STATUS: state; RELOAD: error; FORWARD: output */
    uint32_t pid;
    char *version;
};

struct op {
    struct op *next;
    enum op_kind kind;
    uint32_t id;
    struct ipc_chan *client; /* NULL when the client left or for SIGHUP */
    uint32_t client_id;
    unsigned flags;
    int child; /* OP_FORWARD: which child */
    int remaining;
    struct op_reply rep[CH__COUNT];
    struct event *timeout;
    void (*done)(void *arg, int ok, const char *err);
    void *done_arg;
};

static struct op *ops;

struct client {
    struct client *next;
    struct ipc_chan *chan;
};
static struct client *clients;

static void op_finish(struct op *o);

static uint32_t new_id(struct master *m)
{
    if (++m->next_id == 0)
        m->next_id = 1;
    return m->next_id;
}

static void reply_client(struct ipc_chan *ch, uint32_t id, int code, const char *text)
{
    struct ipc_w w;

    if (ch == NULL)
        return;
    ipc_w_init(&w);
    ctl_rep_encode(&w, (uint32_t)code, text);
    ipc_send(ch, IMSG_CTL_REP, id, -1, w.p, w.len);
    ipc_w_free(&w);
}

static void op_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    op_finish(arg);
}

static struct op *op_new(struct master *m, enum op_kind kind, struct ipc_chan *client,
                         uint32_t client_id, unsigned flags, int timeout_s)
{
    struct op *o = xcalloc(1, sizeof(*o));
    struct timeval tv = {timeout_s, 0};

    o->kind = kind;
    o->id = new_id(m);
    o->client = client;
    o->client_id = client_id;
    o->flags = flags;
    o->child = -1;
    o->timeout = evtimer_new(m->base, op_timeout_cb, o);
    evtimer_add(o->timeout, &tv);
    o->next = ops;
    ops = o;
    return o;
}

static void op_free(struct op *o)
{
    struct op **pp;

    for (pp = &ops; *pp; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    event_free(o->timeout);
    for (int i = 0; i < CH__COUNT; i++) {
        free(o->rep[i].text);
        free(o->rep[i].version);
    }
    free(o);
}

/* /proc facts about a process: uid, user name, root directory. */
static void proc_facts(pid_t pid, long *uid, char *user, size_t ulen, char *root, size_t rlen)
{
    char path[64], line[256];
    FILE *f;
    ssize_t n;

    *uid = -1;
    snprintf(user, ulen, "?");
    snprintf(root, rlen, "?");
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof(line), f))
            if (strncmp(line, "Uid:", 4) == 0) {
                *uid = strtol(line + 4, NULL, 10);
                break;
            }
        fclose(f);
    }
    if (*uid >= 0) {
        struct passwd *pw = getpwuid((uid_t)*uid);
        if (pw)
            snprintf(user, ulen, "%s", pw->pw_name);
        else
            snprintf(user, ulen, "%ld", *uid);
    }
    snprintf(path, sizeof(path), "/proc/%ld/root", (long)pid);
    n = readlink(path, root, rlen - 1);
    if (n >= 0)
        root[n] = '\0';
}

static void status_row(struct buf *out, int json, int first, const char *name, pid_t pid,
                       int64_t started_us, int restarts, const char *state)
{
    long uid = -1, up = 0;
    char user[64] = "-", root[1024] = "-";

    if (pid > 0) {
        proc_facts(pid, &uid, user, sizeof(user), root, sizeof(root));
        up = (long)((now_us() - started_us) / 1000000);
    }
    if (json) {
        buf_printf(out, "%s{\"name\":", first ? "" : ",");
        buf_json_str(out, name);
        buf_printf(out, ",\"pid\":%ld,\"uid\":%ld,\"user\":", (long)pid, uid);
        buf_json_str(out, user);
        buf_adds(out, ",\"root\":");
        buf_json_str(out, root);
        buf_printf(out, ",\"uptime\":%ld,\"restarts\":%d,\"state\":", up, restarts);
        buf_json_str(out, state);
        buf_adds(out, "}");
    } else {
        buf_printf(out, "%-8s %7ld %-10s %9ld %8d  %-15s %s\n", name, (long)pid, user, up, restarts,
                   state, root);
    }
}

static void status_render(struct master *m, struct op *o, struct buf *out)
{
    int json = (o->flags & CTL_F_JSON) != 0;

    if (json)
        buf_adds(out, "{\"processes\":[");
    else
        buf_printf(out, "%-8s %7s %-10s %9s %8s  %-15s %s\n", "NAME", "PID", "USER", "UPTIME(s)",
                   "RESTARTS", "STATE", "ROOT");
    status_row(out, json, 1, "master", getpid(), m->started_us, 0,
               m->stopping ? "stopping" : "running");
    for (int i = 0; i < CH__COUNT; i++) {
        struct mchild *c = &m->ch[i];
        const char *state = c->pid == 0      ? (m->stopping ? "stopped" : "restarting")
                            : o->rep[i].have ? o->rep[i].text
                                             : "no answer";
        status_row(out, json, 0, c->name, c->pid, c->started_us, c->restarts, state);
    }
    if (json)
        buf_printf(out, "],\"version\":\"%s\"}\n", POSTERN_VERSION);
}

static void op_finish(struct op *o)
{
    struct master *m = &M;
    struct buf out;
    int code = 0;

    buf_init(&out);
    switch (o->kind) {
    case OP_FORWARD:
        if (o->rep[o->child].have) {
            code = (int)o->rep[o->child].code;
            buf_adds(&out, o->rep[o->child].text);
        } else {
            code = 1;
            buf_printf(&out, "%s did not answer (it may have restarted); try again\n",
                       m->ch[o->child].name);
        }
        break;
    case OP_STATUS:
        status_render(m, o, &out);
        break;
    case OP_RELOAD: {
        int ok = 1;
        for (int i = 0; i < CH__COUNT; i++) {
            if (m->ch[i].pid == 0 || o->rep[i].have == 0)
                continue;
            if (!o->rep[i].code) {
                ok = 0;
                buf_printf(&out, "%s refused the new configuration: %s\n", m->ch[i].name,
                           o->rep[i].text);
            }
        }
        if (ok)
            buf_adds(&out, "configuration reloaded\n");
        code = ok ? 0 : 1;
        if (o->done)
            o->done(o->done_arg, ok, out.data);
        break;
    }
    }
    if (o->kind != OP_RELOAD || o->client)
        reply_client(o->client, o->client_id, code, out.data);
    buf_free(&out);
    op_free(o);
}

/* A child's IMSG_STATUS_REP or IMSG_RELOAD_REP into rp; 0, or -1 if malformed. */
static int decode_child_reply(const struct ipc_msg *msg, struct op_reply *rp)
{
    struct ipc_r r;

    ipc_r_init(&r, msg->body, msg->len);
    if (msg->type == IMSG_STATUS_REP) {
        rp->pid = ipc_r_u32(&r);
        (void)ipc_r_i64(&r);
        rp->version = xstrdup(ipc_r_str(&r));
        rp->text = xstrdup(ipc_r_str(&r));
    } else {
        rp->code = ipc_r_u32(&r);
        rp->text = xstrdup(ipc_r_str(&r));
    }
    if (ipc_r_done(&r))
        return 0;
    free(rp->text);
    free(rp->version);
    rp->text = rp->version = NULL;
    return -1;
}

/* A child's IMSG_CTL_REP into rp; 0, or -1 if malformed. */
static int decode_ctl_reply(const struct ipc_msg *msg, struct op_reply *rp)
{
    struct ctl_rep cr;

    if (ctl_rep_decode(msg->body, msg->len, &cr) != CTL_DEC_OK)
        return -1;
    rp->code = cr.code;
    rp->text = cr.output; /* the op owns the text now */
    return 0;
}

void control_child_msg(struct master *m, struct mchild *c, const struct ipc_msg *msg)
{
    int idx = (int)(c - m->ch);
    struct op *o;
    int rc;

    if (msg->fd >= 0)
        close(msg->fd);
    for (o = ops; o; o = o->next)
        if (o->id == msg->id)
            break;
    if (o == NULL || o->rep[idx].have)
        return; /* late answer to an operation that timed out */
    struct op_reply *rp = &o->rep[idx];
    switch (msg->type) {
    case IMSG_STATUS_REP:
    case IMSG_RELOAD_REP:
        rc = decode_child_reply(msg, rp);
        break;
    case IMSG_CTL_REP:
        rc = decode_ctl_reply(msg, rp);
        break;
    default:
        log_warn("unexpected message type %u from %s", msg->type, c->name);
        return;
    }
    if (rc < 0) {
        log_warn("malformed answer (type %u) from %s", msg->type, c->name);
        return;
    }
    rp->have = 1;
    if (--o->remaining <= 0)
        op_finish(o);
}

void control_child_gone(struct master *m, struct mchild *c)
{
    int idx = (int)(c - m->ch);
    struct op *o, *next;

    for (o = ops; o; o = next) {
        next = o->next;
        if (o->kind == OP_FORWARD && o->child == idx)
            op_finish(o);
        else if (o->kind != OP_FORWARD && !o->rep[idx].have && --o->remaining <= 0)
            op_finish(o);
    }
}

/* Send msg to every running child as one operation. */
static struct op *fan_out(struct master *m, struct op *o, uint16_t type, const void *body,
                          size_t len)
{
    o->remaining = 0;
    for (int i = 0; i < CH__COUNT; i++)
        if (m->ch[i].chan && ipc_send(m->ch[i].chan, type, o->id, -1, body, len) == 0)
            o->remaining++;
    if (o->remaining == 0) {
        op_finish(o);
        return NULL;
    }
    return o;
}

void master_reload_children(struct master *m, const char *path, const char *text,
                            void (*done)(void *, int, const char *), void *arg,
                            struct ipc_chan *client, uint32_t client_id);
void master_reload_children(struct master *m, const char *path, const char *text,
                            void (*done)(void *, int, const char *), void *arg,
                            struct ipc_chan *client, uint32_t client_id)
{
    struct ipc_w w;
    struct op *o = op_new(m, OP_RELOAD, client, client_id, 0, OP_TIMEOUT_S);
    uint32_t n = 0;

    o->done = done;
    o->done_arg = arg;
    ipc_w_init(&w);
    ipc_w_str(&w, path);
    ipc_w_str(&w, text);
    for (char **ov = m->overrides; ov && *ov; ov++)
        n++;
    ipc_w_u32(&w, n);
    for (char **ov = m->overrides; ov && *ov; ov++)
        ipc_w_str(&w, *ov);
    fan_out(m, o, IMSG_RELOAD, w.p, w.len);
    ipc_w_free(&w);
}

struct reload_reply {
    struct ipc_chan *client;
    uint32_t id;
};

static void ctl_reload_done(void *arg, int ok, const char *text)
{
    struct reload_reply *rr = arg;
    struct client *cl;

    /* The client may have gone away meanwhile. */
    for (cl = clients; cl; cl = cl->next)
        if (cl->chan == rr->client)
            reply_client(rr->client, rr->id, ok ? 0 : 1, text);
    free(rr);
}

/* The child that owns a command (mail/ctl_cmds.def), or NULL. */
static const char *route_command(int argc, char **argv)
{
    const struct ctl_cmd *c = ctl_cmd_find(argc, argv);
    const char *owner = c ? ctl_cmd_owner(c) : NULL;

    if (owner == NULL || strcmp(owner, "master") == 0 || strcmp(owner, "smtpctl") == 0)
        return NULL;
    return owner;
}

static void handle_request(struct master *m, struct ipc_chan *ch, uint32_t id,
                           const struct ctl_req *q)
{
    int argc = (int)q->argc;
    char **argv = q->argv;

    if (strcmp(argv[0], "status") == 0) {
        struct op *o = op_new(m, OP_STATUS, ch, id, q->flags, OP_TIMEOUT_S);
        fan_out(m, o, IMSG_STATUS_REQ, NULL, 0);
        return;
    }
    if (strcmp(argv[0], "reload") == 0) {
        struct reload_reply *rr = xmalloc(sizeof(*rr));
        rr->client = ch;
        rr->id = id;
        master_reload(m, ctl_reload_done, rr);
        return;
    }
    if (strcmp(argv[0], "stop") == 0) {
        reply_client(ch, id, 0, "postern is stopping\n");
        master_stop(m, "smtpctl stop");
        return;
    }
    if (strcmp(argv[0], "log") == 0 && argc == 3 && strcmp(argv[1], "level") == 0) {
        int lv = log_level_parse(argv[2]);
        if (lv < 0) {
            reply_client(ch, id, 2, "usage: log level basic|detailed|debug\n");
            return;
        }
        log_set_level((enum log_level)lv);
        uint32_t v = (uint32_t)lv;
        children_send_all(m, IMSG_LOGLEVEL, &v, sizeof(v));
        char *msg = xasprintf("log level is now %s (until the next reload or restart)\n", argv[2]);
        reply_client(ch, id, 0, msg);
        free(msg);
        return;
    }
    const char *target = route_command(argc, argv);
    const struct ctl_cmd *cmd = ctl_cmd_find(argc, argv);
    if (target == NULL && cmd != NULL) { /* master's or smtpctl's, with the wrong arguments */
        char *msg = xasprintf("usage: smtpctl %s%s%s %s\n", cmd->word, cmd->sub ? " " : "",
                              cmd->sub ? cmd->sub : "", cmd->args);
        reply_client(ch, id, 2, msg);
        free(msg);
        return;
    }
    if (target == NULL) {
        char *msg = xasprintf("unknown command '%s' (smtpctl help lists the commands)\n", argv[0]);
        reply_client(ch, id, 2, msg);
        free(msg);
        return;
    }
    struct mchild *c = children_by_name(m, target);
    if (c->chan == NULL) {
        char *msg = xasprintf("%s is not running right now (restarting?); try again\n", target);
        reply_client(ch, id, 1, msg);
        free(msg);
        return;
    }
    struct op *o = op_new(m, OP_FORWARD, ch, id, q->flags, FORWARD_TIMEOUT_S);
    o->child = (int)(c - m->ch);
    o->remaining = 1;
    struct ipc_w w;
    ipc_w_init(&w);
    ctl_req_encode(&w, q);
    ipc_send(c->chan, IMSG_CTL_REQ, o->id, -1, w.p, w.len);
    ipc_w_free(&w);
}

static void on_client_msg(struct ipc_chan *ch, const struct ipc_msg *msg, void *arg)
{
    struct ctl_req q;
    int rc;

    if (msg->fd >= 0)
        close(msg->fd);
    if (msg->type != IMSG_CTL_REQ) {
        reply_client(ch, msg->id, 2, "unexpected message\n");
        return;
    }
    rc = ctl_req_decode(msg->body, msg->len, &q);
    if (rc == CTL_DEC_TOO_MANY || (rc == CTL_DEC_OK && q.argc == 0))
        reply_client(ch, msg->id, 2, "bad request: no command or too many words\n");
    else if (rc != CTL_DEC_OK)
        reply_client(ch, msg->id, 2, "malformed request\n");
    else
        handle_request(&M, ch, msg->id, &q);
    ctl_req_free(&q);
}

static void on_client_close(struct ipc_chan *ch, void *arg)
{
    struct client **pp, *cl;
    struct op *o;

    for (o = ops; o; o = o->next)
        if (o->client == ch)
            o->client = NULL;
    for (pp = &clients; (cl = *pp) != NULL; pp = &cl->next)
        if (cl->chan == ch) {
            *pp = cl->next;
            free(cl);
            break;
        }
    ipc_chan_free(ch);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct master *m = arg;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        log_warn("control: refused a client with uid %ld (only root and uid %ld may control "
                 "postern)",
                 (long)cred.uid, (long)geteuid());
        close(fd);
        return;
    }
    struct client *cl = xcalloc(1, sizeof(*cl));
    cl->chan = ipc_chan_new(m->base, fd, "smtpctl", &proto_ctl_to_master, on_client_msg,
                            on_client_close, NULL);
    cl->next = clients;
    clients = cl;
}

int control_open(struct master *m, char **err)
{
    struct sockaddr_un sun;
    char *path = xasprintf("%s/%s", cfg_str(&m->cfg, P_queue_directory), SPOOL_CONTROL);
    mode_t old;
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        *err = xasprintf("control socket path too long: %s", path);
        free(path);
        return -1;
    }
    strlcpy_p(sun.sun_path, path, sizeof(sun.sun_path));
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    old = umask(0077);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, 64) != 0) {
        *err = xasprintf("control socket %s: %s", path, strerror(errno));
        umask(old);
        if (fd >= 0)
            close(fd);
        free(path);
        return -1;
    }
    umask(old);
    free(path);
    m->control_fd = fd;
    m->control_ev = event_new(m->base, fd, EV_READ | EV_PERSIST, on_accept, m);
    event_add(m->control_ev, NULL);
    return 0;
}

void control_close(struct master *m)
{
    char *path = xasprintf("%s/%s", cfg_str(&m->cfg, P_queue_directory), SPOOL_CONTROL);

    if (m->control_ev) {
        event_free(m->control_ev);
        m->control_ev = NULL;
        close(m->control_fd);
        unlink(path);
    }
    free(path);
}
