/*
 * child - start-up, privilege drop, master channel and signals shared by
 * every child program. Contract in child.h.
 */
#include "mail/child.h"
#include "mail/spool.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "base/privsep.h"
#include "mail/ctl_proto.h"
#include "mail/proto.h"

#define CHILD_MAX_FDS 32
#define CHILD_SHUTDOWN_GRACE_S 5

struct child_priv {
    struct child pub;
    char *confdir;
    char **overrides;
    int nfds;
    char *fdname[CHILD_MAX_FDS];
    int fd[CHILD_MAX_FDS];
    struct event *sigterm, *sigint;
    int exit_code;
    int stopping;
    uint32_t cur_ctl_id; /* id of the control request being handled */
};

/* Set once this process has chrooted. */
static int child_chrooted;

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHILD_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_ASAN 1
#endif
#ifdef CHILD_ASAN
/*
 * LeakSanitizer needs /proc, which a chroot does not have: it would end
 * every chrooted child with a fatal error at exit. Leak checks stay on
 * for unchrooted runs (not started as root).
 */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return child_chrooted;
}
#endif

static const char *const peer_names[] = {"smtpd", "qmgr",  "dnsd",  "deliver",
                                         "relay", "local", "signer"};

static int is_peer_name(const char *n)
{
    for (size_t i = 0; i < nitems(peer_names); i++)
        if (strcmp(peer_names[i], n) == 0)
            return 1;
    return 0;
}

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s -c CONFDIR (started by master)\n", prog);
    exit(2);
}

static void parse_fds(struct child_priv *cp)
{
    const char *env = getenv("POSTERN_FDS");
    char *copy, *tok, *save;

    if (env == NULL)
        log_panic("POSTERN_FDS not set: %s is started by master, not by hand", cp->pub.spec->prog);
    copy = xstrdup(env);
    for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *colon = strchr(tok, ':');
        char *end;
        long fd;
        if (colon == NULL || cp->nfds >= CHILD_MAX_FDS)
            log_panic("bad POSTERN_FDS entry '%s'", tok);
        *colon = '\0';
        fd = strtol(colon + 1, &end, 10);
        if (*end != '\0' || fd < 3 || fd > 1024)
            log_panic("bad fd in POSTERN_FDS entry '%s'", tok);
        cp->fdname[cp->nfds] = xstrdup(tok);
        cp->fd[cp->nfds] = (int)fd;
        fd_cloexec((int)fd, 1);
        cp->nfds++;
    }
    free(copy);
}

static char **parse_overrides(void)
{
    const char *env = getenv("POSTERN_OPTS");
    size_t n = 0;
    char **v;

    v = xcalloc(1, sizeof(char *));
    if (env == NULL || *env == '\0')
        return v;
    char *copy = xstrdup(env), *save, *tok;
    for (tok = strtok_r(copy, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
        v = xrealloc(v, (n + 2) * sizeof(char *));
        v[n++] = xstrdup(tok);
        v[n] = NULL;
    }
    free(copy);
    return v;
}

int child_fd(struct child *c, const char *name)
{
    int fd;
    return child_fds(c, name, &fd, 1) == 1 ? fd : -1;
}

int child_fds(struct child *c, const char *name, int *out, int max)
{
    struct child_priv *cp = (struct child_priv *)c;
    int n = 0;

    for (int i = 0; i < cp->nfds && n < max; i++)
        if (strcmp(cp->fdname[i], name) == 0)
            out[n++] = cp->fd[i];
    return n;
}

void child_exit(struct child *c, int code)
{
    struct child_priv *cp = (struct child_priv *)c;

    cp->exit_code = code;
    event_base_loopbreak(c->base);
}

static void child_stop(struct child_priv *cp, const char *why)
{
    struct child *c = &cp->pub;
    struct timeval grace = {CHILD_SHUTDOWN_GRACE_S, 0};

    if (cp->stopping)
        return;
    cp->stopping = 1;
    log_info("stopping: %s", why);
    if (c->spec->shutdown) {
        c->spec->shutdown(c);
        event_base_loopexit(c->base, &grace);
    } else {
        event_base_loopbreak(c->base);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    child_stop(arg, sig == SIGTERM ? "SIGTERM" : "signal");
}

static void reply_status(struct child_priv *cp, uint32_t id)
{
    struct ipc_w w;

    ipc_w_init(&w);
    ipc_w_u32(&w, (uint32_t)getpid());
    ipc_w_i64(&w, cp->pub.started_us);
    ipc_w_str(&w, POSTERN_VERSION);
    const char *state = cp->pub.spec->state ? cp->pub.spec->state(&cp->pub) : NULL;
    ipc_w_str(&w, cp->stopping ? "stopping" : state ? state : "running");
    ipc_send(cp->pub.master, IMSG_STATUS_REP, id, -1, w.p, w.len);
    ipc_w_free(&w);
}

static void reply_reload(struct child_priv *cp, uint32_t id, int ok, const char *err)
{
    struct ipc_w w;

    ipc_w_init(&w);
    ipc_w_u32(&w, (uint32_t)ok);
    ipc_w_str(&w, err ? err : "");
    ipc_send(cp->pub.master, IMSG_RELOAD_REP, id, -1, w.p, w.len);
    ipc_w_free(&w);
}

static void do_reload(struct child_priv *cp, const struct ipc_msg *m)
{
    struct child *c = &cp->pub;
    struct ipc_r r;
    const char *path, *text;
    uint32_t n;
    char **ov;
    struct config *ncfg, *old;
    char *err = NULL;

    ipc_r_init(&r, m->body, m->len);
    path = ipc_r_str(&r);
    text = ipc_r_str(&r);
    n = ipc_r_u32(&r);
    if (n > 1024)
        n = 0, r.err = 1;
    ov = xcalloc(n + 1, sizeof(char *));
    for (uint32_t i = 0; i < n; i++)
        ov[i] = xstrdup(ipc_r_str(&r));
    if (!ipc_r_done(&r)) {
        reply_reload(cp, m->id, 0, "malformed reload message");
        goto out;
    }
    ncfg = xcalloc(1, sizeof(*ncfg));
    if (config_load_text(ncfg, c->cfg->dir, path, text, ov, &err) < 0) {
        log_err("reload refused: %s", err);
        reply_reload(cp, m->id, 0, err);
        free(err);
        free(ncfg);
        goto out;
    }
    old = c->cfg;
    c->cfg = ncfg;
    log_set_level((enum log_level)log_level_parse(cfg_enum(ncfg, P_log_level)));
    if (c->spec->reload && c->spec->reload(c, &err) < 0) {
        log_err("reload refused: %s", err ? err : "(no reason)");
        c->cfg = old;
        config_free(ncfg);
        free(ncfg);
        log_set_level((enum log_level)log_level_parse(cfg_enum(old, P_log_level)));
        reply_reload(cp, m->id, 0, err);
        free(err);
        goto out;
    }
    config_free(old);
    free(old);
    log_info("configuration reloaded");
    reply_reload(cp, m->id, 1, NULL);
out:
    for (uint32_t i = 0; i < n; i++)
        free(ov[i]);
    free(ov);
}

static void do_ctl(struct child_priv *cp, const struct ipc_msg *m)
{
    struct child *c = &cp->pub;
    struct ctl_req q;
    struct buf out;
    int code;

    buf_init(&out);
    if (ctl_req_decode(m->body, m->len, &q) != CTL_DEC_OK || q.argc == 0) {
        buf_adds(&out, "malformed control request\n");
        code = 2;
    } else if (c->spec->ctl == NULL) {
        buf_printf(&out, "%s has no control commands\n", c->spec->prog);
        code = 2;
    } else {
        cp->cur_ctl_id = m->id;
        code = c->spec->ctl(c, (int)q.argc, q.argv, q.flags, &out);
    }
    if (code != CHILD_CTL_LATER)
        child_ctl_reply(c, m->id, code, out.data);
    buf_free(&out);
    ctl_req_free(&q);
}

uint32_t child_ctl_defer(struct child *c)
{
    return ((struct child_priv *)c)->cur_ctl_id;
}

void child_ctl_reply(struct child *c, uint32_t token, int code, const char *text)
{
    struct ipc_w w;

    if (c->master == NULL)
        return;
    ipc_w_init(&w);
    ctl_rep_encode(&w, (uint32_t)code, text);
    ipc_send(c->master, IMSG_CTL_REP, token, -1, w.p, w.len);
    ipc_w_free(&w);
}

void child_peer_broken(struct child *c, const char *peer, const char *why)
{
    struct ipc_w w;

    if (c->master == NULL)
        return;
    log_warn("asking master to restart %s: %s", peer, why);
    ipc_w_init(&w);
    ipc_w_str(&w, peer);
    ipc_w_str(&w, why);
    ipc_send(c->master, IMSG_PEER_BROKEN, 0, -1, w.p, w.len);
    ipc_w_free(&w);
}

void child_peer_closed(struct child *c, struct ipc_chan *ch)
{
    if (ipc_chan_broken(ch))
        child_peer_broken(c, ipc_chan_name(ch), "malformed or unexpected IPC on its channel");
}

static void on_master_msg(struct ipc_chan *ch, const struct ipc_msg *m, void *arg)
{
    struct child_priv *cp = arg;
    struct child *c = &cp->pub;
    struct ipc_r r;

    switch (m->type) {
    case IMSG_STATUS_REQ:
        reply_status(cp, m->id);
        break;
    case IMSG_RELOAD:
        do_reload(cp, m);
        break;
    case IMSG_LOGLEVEL:
        ipc_r_init(&r, m->body, m->len);
        uint32_t lv = ipc_r_u32(&r);
        if (ipc_r_done(&r) && lv <= LOG_LV_DEBUG)
            log_set_level((enum log_level)lv);
        break;
    case IMSG_SHUTDOWN:
        child_stop(cp, "asked by master");
        break;
    case IMSG_PEER: {
        ipc_r_init(&r, m->body, m->len);
        const char *name = ipc_r_str(&r);
        if (!ipc_r_done(&r) || m->fd < 0 || !is_peer_name(name) || c->spec->peer == NULL) {
            log_warn("ignoring malformed or unexpected peer message from master");
            if (m->fd >= 0)
                close(m->fd);
            break;
        }
        log_info("new channel to %s", name);
        c->spec->peer(c, name, m->fd);
        break;
    }
    case IMSG_CTL_REQ:
        do_ctl(cp, m);
        break;
    default:
        if (c->spec->master_msg)
            c->spec->master_msg(c, m);
        else {
            log_warn("unexpected message type %u from master", m->type);
            if (m->fd >= 0)
                close(m->fd);
        }
    }
}

static void on_master_close(struct ipc_chan *ch, void *arg)
{
    struct child_priv *cp = arg;

    log_info("master went away; exiting");
    ipc_chan_free(ch);
    cp->pub.master = NULL;
    cp->exit_code = 0;
    event_base_loopbreak(cp->pub.base);
}

/*
 * The configuration master runs comes as the text of main.cf on the fd
 * named "config" (so a child restarted while the file on disk is broken
 * still starts with the configuration in force); without it, main.cf.
 */
static int load_config(struct child_priv *cp, const char *confdir, char **err)
{
    struct child *c = &cp->pub;
    int fd = child_fd(c, "config");
    struct buf text;
    char chunk[8192], absdir[4096];
    ssize_t n;
    int rc;

    if (fd < 0)
        return config_load(c->cfg, confdir, cp->overrides, err);
    buf_init(&text);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        buf_add(&text, chunk, (size_t)n);
    close(fd);
    if (realpath(confdir, absdir) == NULL)
        snprintf(absdir, sizeof(absdir), "%s", confdir);
    char *file = xasprintf("%s/main.cf", absdir);
    rc = config_load_text(c->cfg, absdir, file, text.data, cp->overrides, err);
    free(file);
    buf_free(&text);
    return rc;
}

struct child *child_init(int argc, char **argv, const struct child_spec *spec)
{
    struct child_priv *cp = xcalloc(1, sizeof(*cp));
    struct child *c = &cp->pub;
    const char *confdir = NULL;
    const char *logto = getenv("POSTERN_LOG");
    char *err = NULL;
    int opt;

    c->spec = spec;
    c->started_us = now_us();
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt == 'c')
            confdir = optarg;
        else
            usage(spec->prog);
    }
    if (confdir == NULL || optind != argc)
        usage(spec->prog);
    log_init(spec->prog, logto && strcmp(logto, "syslog") == 0 ? LOG_TO_SYSLOG : LOG_TO_STDERR);
    /* Die with master even if it is killed with SIGKILL. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        log_panic("master is gone before start");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* ^C in the foreground is master's to handle */
    tzset();

    cp->confdir = xstrdup(confdir);
    cp->overrides = parse_overrides();
    parse_fds(cp);
    c->cfg = xcalloc(1, sizeof(*c->cfg));
    if (load_config(cp, confdir, &err) < 0) {
        log_err("%s", err);
        exit(1);
    }
    log_set_level((enum log_level)log_level_parse(cfg_enum(c->cfg, P_log_level)));

    c->base = event_base_new();
    if (c->base == NULL)
        log_panic("cannot create event base");
    int mfd = child_fd(c, "master");
    if (mfd < 0)
        log_panic("no master channel in POSTERN_FDS");
    c->master = ipc_chan_new(c->base, mfd, "master",
                             spec->from_master ? spec->from_master : &proto_master_to_child,
                             on_master_msg, on_master_close, cp);
    cp->sigterm = evsignal_new(c->base, SIGTERM, on_signal, cp);
    event_add(cp->sigterm, NULL);
    return c;
}

void child_drop(struct child *c)
{
    const char *spool = cfg_str(c->cfg, P_queue_directory);
    char *dir = NULL, *note = NULL, *err = NULL;

    switch (c->spec->root) {
    case CHILD_ROOT_SPOOL:
        dir = xstrdup(spool);
        break;
    case CHILD_ROOT_EMPTY:
        dir = xasprintf("%s/%s", spool, SPOOL_EMPTY);
        break;
    case CHILD_ROOT_OWN:
        dir = xasprintf("%s/%s", spool, c->spec->prog);
        break;
    case CHILD_ROOT_NONE:
        break;
    }
    if (privsep_drop(cfg_str(c->cfg, P_mail_owner), dir, &note, &err) < 0) {
        log_err("%s", err);
        exit(1);
    }
    child_chrooted = note == NULL && dir != NULL;
    if (note != NULL) {
        /* Development run: no chroot, but the same working directory. */
        if (dir && chdir(dir) != 0) {
            log_err("chdir %s: %s", dir, strerror(errno));
            exit(1);
        }
        log_info("%s", note);
    }
    free(note);
    free(dir);
}

int child_loop(struct child *c)
{
    struct child_priv *cp = (struct child_priv *)c;

    for (int i = 0; i < cp->nfds; i++)
        if (is_peer_name(cp->fdname[i]) && c->spec->peer)
            c->spec->peer(c, cp->fdname[i], cp->fd[i]);
    event_base_dispatch(c->base);
    return cp->exit_code;
}
