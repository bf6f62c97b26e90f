/*
 * master - Postern's supervisor (DESIGN section 1).
 *
 *   master -c CONFDIR [-d] [-o name=value ...]
 *
 * Runs as root (or, for development, as any user), reads main.cf, creates
 * the spool and copies the maps into it, takes the pid file's lock (one
 * master per spool), opens the SMTP listeners and the control socket,
 * starts smtpd, qmgr, dnsd, deliver and relay with their channels,
 * restarts any that dies, and logs "postern ready" once every child
 * answers. SIGHUP (or smtpctl reload) re-reads main.cf and copies the
 * maps again: a bad main.cf is refused with its error and the running
 * configuration stays. SIGTERM/SIGINT (or smtpctl stop) stops every
 * child, killing those that do not exit within STOP_TIMEOUT_S, and
 * removes the pid file and control socket. -d stays in the foreground
 * and logs to stderr; otherwise logs go to log_file, or to syslog when
 * it is empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "master.h"
#include "mail/proto.h"
#include "base/privsep.h"
#include "mail/dkim_keys.h"
#include "mail/secrets.h"
#include "mail/spool.h"
#include "mail/tls_server.h"
#include "base/util.h"

#define STOP_TIMEOUT_S 10

struct master M;

static void usage(void)
{
    fprintf(stderr, "usage: master -c CONFDIR [-d] [-o name=value ...]\n");
    exit(2);
}

static char *read_text(const char *path, char **err)
{
    return read_text_file(path, 16 * 1024 * 1024, err); /* main.cf */
}

static void warn_restart_params(const struct config *old, const struct config *new)
{
    for (int i = 0; i < P__COUNT; i++) {
        if (!(cfg_params[i].flags & F_RESTART))
            continue;
        if (strcmp(old->v[i].text, new->v[i].text) != 0)
            log_warn("reload: %s changed from '%s' to '%s'; this takes effect only when postern "
                     "is restarted",
                     cfg_params[i].name, old->v[i].text, new->v[i].text);
    }
}

/* The PEM text of tls_cert_file / tls_key_file, checked by making a
 * context of them; both NULL when STARTTLS is off. */
static int load_tls_pair(const struct config *c, char **cert_pem, char **key_pem, char **err)
{
    const char *cert = cfg_str(c, P_tls_cert_file), *key = cfg_str(c, P_tls_key_file);
    char *why = NULL;
    SSL_CTX *ctx;

    *cert_pem = *key_pem = NULL;
    if (cert == NULL || *cert == '\0')
        return 0;
    if (key == NULL || *key == '\0')
        key = cert;
    if (tls_read_pair(cert, key, cert_pem, key_pem, &why) < 0 ||
        (ctx = tls_server_ctx_pem(*cert_pem, *key_pem, cert, key, &why)) == NULL) {
        *err = xasprintf("tls_cert_file / tls_key_file: %s", why);
        free(why);
        free(*cert_pem);
        free_secret(*key_pem);
        *cert_pem = *key_pem = NULL;
        return -1;
    }
    SSL_CTX_free(ctx);
    return 0;
}

/* The checks a reload must pass before anything changes; -1 and *err
 * (the reason) when it is refused. Whatever they loaded is in *out. */
struct reload_inputs {
    char *text; /* main.cf as read */
    char *cert_pem, *key_pem;
    struct secrets *secrets;
    struct dkim_keys *dkim;
};

static void reload_inputs_free(struct reload_inputs *in)
{
    free(in->text);
    free(in->cert_pem);
    free_secret(in->key_pem);
    secrets_free(in->secrets);
    dkim_keys_free(in->dkim);
    memset(in, 0, sizeof(*in));
}

/* The dkim_map and its keys, read as root. strict (reload): a key that
 * did not load is an error; at start it is kept with its reason (signer
 * logs it and defers, or sends unsigned, per dkim_required). */
static int load_dkim_keys(const struct config *cfg, struct dkim_keys **out, int strict, char **err)
{
    uid_t forbid = (uid_t)-1, uid;
    gid_t gid;
    char *why = NULL;

    if (geteuid() == 0 && privsep_lookup(cfg_str(cfg, P_mail_owner), &uid, &gid, &why) == 0)
        forbid = uid;
    free(why);
    if (dkim_keys_load(cfg_str(cfg, P_dkim_map), forbid, out, err) < 0)
        return -1;
    for (size_t i = 0; strict && i < (*out)->n; i++) {
        const struct dkim_entry *e = &(*out)->e[i];
        if (e->error != NULL) {
            *err = xasprintf("key %s for %s (s=%s): %s", e->key_path, e->domain, e->selector,
                             e->error);
            dkim_keys_free(*out);
            *out = NULL;
            return -1;
        }
    }
    return 0;
}

static int reload_check(const struct config *ncfg, struct reload_inputs *in, char **err)
{
    char *why = NULL;

    memset(in, 0, sizeof(*in));
    if ((in->text = read_text(ncfg->file, &why)) == NULL ||
        /* a compiled map that does not read back: the children keep theirs */
        setup_verify_maps(ncfg, &why) < 0 ||
        /* an edited dkim_map not compiled again: the old keys would stay */
        setup_dkim_map_fresh(ncfg, &why) < 0 ||
        /* a renewed TLS pair, read as root and tried: a bad one keeps smtpd's */
        load_tls_pair(ncfg, &in->cert_pem, &in->key_pem, &why) < 0) {
        *err = why;
        reload_inputs_free(in);
        return -1;
    }
    /* the gateway credentials, for relay alone; relay keeps its own when bad */
    if (secrets_load(cfg_str(ncfg, P_relay_secrets_map), &in->secrets, &why) < 0) {
        *err = xasprintf("relay_secrets_map: %s", why);
        free(why);
        reload_inputs_free(in);
        return -1;
    }
    /* the DKIM keys, for the signer alone; a key that does not load refuses
     * the reload, so the signer keeps signing with the keys it has */
    if (load_dkim_keys(ncfg, &in->dkim, 1, &why) < 0) {
        *err = xasprintf("dkim_map: %s", why);
        free(why);
        reload_inputs_free(in);
        return -1;
    }
    return 0;
}

void master_reload(struct master *m, void (*done)(void *arg, int ok, const char *err), void *arg)
{
    struct config ncfg;
    struct reload_inputs in;
    char *err = NULL;
    int loaded;

    loaded = config_load(&ncfg, m->confdir, m->overrides, &err) == 0;
    if (!loaded || reload_check(&ncfg, &in, &err) < 0) {
        char *msg = xasprintf("reload refused, the running configuration stays: %s", err);
        log_err("%s", msg);
        if (done)
            done(arg, 0, msg);
        free(msg);
        free(err);
        if (loaded)
            config_free(&ncfg);
        return;
    }
    warn_restart_params(&m->cfg, &ncfg);
    /* F_RESTART values (spool, listeners, owner) stay as they are until a restart. */
    for (int i = 0; i < P__COUNT; i++)
        if (cfg_params[i].flags & F_RESTART) {
            cfg_val_free(&ncfg.v[i]);
            cfg_parse_value(cfg_param_find(cfg_params[i].name), m->cfg.v[i].text, &ncfg.v[i], &err);
        }
    config_free(&m->cfg);
    m->cfg = ncfg;
    free(m->cfg_text);
    m->cfg_text = xstrdup(in.text);
    log_set_level((enum log_level)log_level_parse(cfg_enum(&m->cfg, P_log_level)));
    if (setup_maps(m, &err) < 0) {
        log_err("reload: maps: %s", err);
        free(err);
    }
    log_info("reloading: %s", m->cfg.file);
    children_send_secrets(m, in.secrets);
    dkim_keys_free(m->dkim);
    m->dkim = in.dkim;
    in.dkim = NULL;
    children_send_dkim_keys(m, m->dkim);
    children_send_tls(m, in.cert_pem, in.key_pem);
    master_reload_children(m, m->cfg.file, in.text, done, arg, NULL, 0);
    reload_inputs_free(&in);
}

static void sighup_done(void *arg, int ok, const char *text)
{
    if (ok)
        log_info("configuration reloaded");
}

static void stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;

    log_warn("children still running %d s after the stop request: killing them", STOP_TIMEOUT_S);
    children_signal_all(m, SIGKILL);
}

void master_stop(struct master *m, const char *why)
{
    static struct event *ev;
    struct timeval tv = {STOP_TIMEOUT_S, 0};

    if (m->stopping)
        return;
    m->stopping = 1;
    log_info("stopping (%s)", why);
    children_send_all(m, IMSG_SHUTDOWN, NULL, 0);
    children_signal_all(m, SIGTERM);
    ev = evtimer_new(m->base, stop_timeout_cb, m);
    evtimer_add(ev, &tv);
    if (children_running(m) == 0)
        event_base_loopbreak(m->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct master *m = arg;

    switch (sig) {
    case SIGCHLD:
        children_reap(m);
        break;
    case SIGHUP:
        if (!m->stopping)
            master_reload(m, sighup_done, NULL);
        break;
    default:
        master_stop(m, sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
}

static char *self_bindir(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    char *slash;

    if (n < 0)
        log_panic("cannot find my own program: /proc/self/exe: %s", strerror(errno));
    path[n] = '\0';
    slash = strrchr(path, '/');
    *slash = '\0';
    return xstrdup(path);
}

static int pid_fd = -1;

static int store_pid(void)
{
    char line[32];

    snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    if (ftruncate(pid_fd, 0) != 0 || pwrite(pid_fd, line, strlen(line), 0) != (ssize_t)strlen(line))
        return -1;
    return 0;
}

/* Take the pid file's lock: only one master per spool. */
static int write_pidfile(struct master *m, char **err)
{
    char *path = xasprintf("%s/%s", cfg_str(&m->cfg, P_queue_directory), SPOOL_PIDFILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char old[32] = "";
        ssize_t n = read(fd, old, sizeof(old) - 1);
        old[n > 0 ? n - 1 : 0] = '\0';
        *err = xasprintf("postern is already running with this spool (pid %s, %s)",
                         *old ? old : "?", path);
        close(fd);
        free(path);
        return -1;
    }
    pid_fd = fd;
    if (store_pid() != 0) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        close(fd);
        free(path);
        return -1;
    }
    free(path);
    return 0; /* fd stays open: the lock lives as long as master */
}

static void daemonize(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        log_panic("fork: %s", strerror(errno));
    if (pid > 0)
        _exit(0);
    setsid();
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (fd > 2)
            close(fd);
    }
}

/* fd 2 becomes log_file (O_APPEND) so every process writes whole lines to it. */
static void open_log(struct master *m)
{
    const char *lf = cfg_str(&m->cfg, P_log_file);

    if (m->foreground)
        return;
    if (*lf == '\0') {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        log_init("master", LOG_TO_SYSLOG);
        return;
    }
    int fd = open(lf, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_err("cannot open log_file %s: %s", lf, strerror(errno));
        exit(1);
    }
    dup2(fd, 2);
    close(fd);
}

/* -c CONFDIR, -d and -o name=value into m; the config directory. */
static const char *parse_args(struct master *m, int argc, char **argv)
{
    const char *confdir = NULL;
    int opt, nov = 0;

    m->overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    while ((opt = getopt(argc, argv, "c:do:")) != -1) {
        switch (opt) {
        case 'c':
            confdir = optarg;
            break;
        case 'd':
            m->foreground = 1;
            break;
        case 'o':
            m->overrides[nov++] = xstrdup(optarg);
            break;
        default:
            usage();
        }
    }
    if (confdir == NULL || optind != argc)
        usage();
    return confdir;
}

/* main.cf (with the -o overrides) and its text, which children get. */
static int load_config(struct master *m, const char *confdir, char **err)
{
    if (config_load(&m->cfg, confdir, m->overrides, err) < 0)
        return -1;
    m->confdir = xstrdup(m->cfg.dir);
    m->cfg_text = read_text(m->cfg.file, err);
    if (m->cfg_text == NULL)
        return -1;
    m->bindir = self_bindir();
    m->started_us = now_us();
    log_set_level((enum log_level)log_level_parse(cfg_enum(&m->cfg, P_log_level)));
    return 0;
}

/* What needs root and happens before the daemon starts: spool, maps,
 * pid file, listening sockets. */
static int setup(struct master *m, char **err)
{
    umask(022);
    signal(SIGPIPE, SIG_IGN);
    if (setup_spool(m, err) < 0 || setup_maps(m, err) < 0 || write_pidfile(m, err) < 0 ||
        setup_listeners(m, err) < 0)
        return -1;
    return 0;
}

/* Into the background (unless -d), logging to log_file or syslog. */
static int detach(struct master *m, char **err)
{
    if (!m->foreground)
        daemonize();
    open_log(m);
    /* The pid changed by daemonizing; the lock stays with the file. */
    if (store_pid() != 0) {
        *err = xasprintf("cannot write the pid file: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* The event loop's sources: the control socket and the signals. */
static int start_events(struct master *m, char **err)
{
    static const int sigs[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT};

    m->base = event_base_new();
    if (m->base == NULL)
        log_panic("cannot create event base");
    if (control_open(m, err) < 0)
        return -1;
    for (size_t i = 0; i < nitems(sigs); i++)
        event_add(evsignal_new(m->base, sigs[i], on_signal, m), NULL);
    return 0;
}

static void remove_pidfile(const struct master *m)
{
    char *pidpath = xasprintf("%s/%s", cfg_str(&m->cfg, P_queue_directory), SPOOL_PIDFILE);

    unlink(pidpath);
    free(pidpath);
}

int main(int argc, char **argv)
{
    struct master *m = &M;
    const char *confdir;
    char *err = NULL;

    log_init("master", LOG_TO_STDERR);
    confdir = parse_args(m, argc, argv);
    if (load_config(m, confdir, &err) < 0 || setup(m, &err) < 0 || detach(m, &err) < 0 ||
        start_events(m, &err) < 0) {
        log_err("%s", err);
        free(err);
        return 1;
    }
    if (geteuid() != 0)
        log_info("not started as root: every process runs as uid %ld, without chroot",
                 (long)geteuid());
    log_info("starting postern %s (config %s, spool %s)", POSTERN_VERSION, m->cfg.file,
             cfg_str(&m->cfg, P_queue_directory));
    if (load_dkim_keys(&m->cfg, &m->dkim, 0, &err) < 0) {
        log_err("dkim_map: %s; no DKIM keys until smtpctl reload", err);
        free(err);
        m->dkim = dkim_keys_empty();
    }
    children_start_all(m);
    event_base_dispatch(m->base);

    control_close(m);
    remove_pidfile(m);
    log_info("stopped");
    return 0;
}
