/*
 * smtpctl - Postern's control command.
 *
 *   smtpctl [-c CONFDIR] [--json] COMMAND [ARGS...]
 *
 * The commands are the table in mail/ctl_cmds.def: an unknown one is
 * refused here, with the usage, before any daemon is looked for. Those
 * of the offline group (check, makemap, params, config, help, version,
 * dkim keygen) work without a running daemon. Every other command is sent to master
 * over queue_directory/run/control.sock; master answers it or hands it to
 * the process that owns it, and the answer is printed here. Exit codes:
 * 0 ok, 1 the command failed, 2 usage error or postern not running.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/ctl_client.h"
#include "mail/ctl_cmds.h"
#include "mail/dkim_keys.h"
#include "mail/domains.h"
#include "mail/local_rcpt.h"
#include "mail/gateways.h"
#include "base/map.h"
#include "base/log.h"
#include "base/privsep.h"
#include "mail/proto.h"
#include "mail/spool.h"
#include "monitor.h"
#include "base/util.h"
#include "resolve.h"
#include "smtpctl.h"

#define REPLY_TIMEOUT_MS (150 * 1000)

static const enum cfg_id map_params[] = {P_domains_map, P_relay_secrets_map, P_smtpd_users_map,
                                         P_relay_sender_map, P_dkim_map};

/*
 * The dkim_map: its lines, and as root its keys too (read as the signer
 * reads them, refusing those smtpd's uid owns). A map the daemon would
 * not load is an error: a missing or older .db makes reload refuse it.
 * 0, or 1 after saying what is wrong.
 */
static int check_dkim_map(const struct config *cfg)
{
    const char *src = cfg_str(cfg, P_dkim_map);
    int as_root = geteuid() == 0;
    uid_t forbid = (uid_t)-1, uid;
    gid_t gid;
    char *err = NULL;

    if (*src == '\0')
        return 0;
    if (access(src, F_OK) != 0) {
        fprintf(stderr, "%s: %s (dkim_map names it)\n", src, strerror(errno));
        return 1;
    }
    if (as_root && privsep_lookup(cfg_str(cfg, P_mail_owner), &uid, &gid, &err) == 0)
        forbid = uid;
    free(err);
    err = NULL;
    if (dkim_map_check_uid(src, as_root, forbid, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return 1;
    }
    printf("%s: ok%s\n", src,
           as_root ? ", keys checked"
                   : "; keys not checked: only root may read them (run smtpctl check as root)");
    if (map_stale(src)) {
        fprintf(stderr,
                "%s: %s.db is missing or older: run smtpctl makemap %s (reload refuses the "
                "map until then)\n",
                src, src, src);
        return 1;
    }
    printf("%s.db: up to date\n", src);
    return 0;
}

/*
 * dnssec = validate: dnsd reads dnssec_trust_anchor at start and does not
 * start without it. Here: that it can be read (dnsd parses it). 0, or 1
 * after saying what is wrong.
 */
static int check_trust_anchor(const struct config *cfg)
{
    const char *path = cfg_str(cfg, P_dnssec_trust_anchor);
    FILE *fp;

    if (strcmp(cfg_enum(cfg, P_dnssec), "validate") != 0)
        return 0;
    if (!(fp = fopen(path, "r"))) {
        fprintf(stderr, "%s: %s (dnssec_trust_anchor, needed by dnssec = validate)\n", path,
                strerror(errno));
        return 1;
    }
    fclose(fp);
    printf("%s: readable (dnssec_trust_anchor)\n", path);
    return 0;
}

static int cmd_check(const char *confdir)
{
    struct config cfg;
    char *err = NULL;

    if (config_load(&cfg, confdir, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return 1;
    }
    printf("%s: ok\n", cfg.file);
    struct gateways gws;
    if (gateways_parse(cfg_list(&cfg, P_relay_gateways), &gws, &err) < 0) {
        fprintf(stderr, "%s\n", err); /* cannot happen: the config table checked each word */
        free(err);
        config_free(&cfg);
        return 1;
    }
    static const struct {
        enum cfg_id param;
        map_check_fn check;
    } checked[] = {{P_domains_map, domains_check_entry},
                   {P_relay_sender_map, gateways_check_sender_entry}};
    for (size_t i = 0; i < nitems(checked); i++) {
        const char *src = cfg_str(&cfg, checked[i].param);
        if (*src == '\0' || access(src, F_OK) != 0)
            continue;
        if (map_check(src, checked[i].check, &gws, &err) < 0) {
            fprintf(stderr, "%s\n", err);
            free(err);
            gateways_free(&gws);
            config_free(&cfg);
            return 1;
        }
        printf("%s: ok\n", src);
    }
    gateways_free(&gws);
    int bad = check_dkim_map(&cfg) | check_trust_anchor(&cfg);
    for (size_t i = 0; i < nitems(map_params); i++) {
        const char *src = cfg_str(&cfg, map_params[i]);
        char *db = xasprintf("%s.db", src);
        int have_db = *src && access(db, F_OK) == 0;
        free(db);
        /* The compiled map must read back whole: a corrupt .db is what
         * the daemons would run with. */
        if (have_db &&
            map_verify(src,
                       map_params[i] == P_relay_secrets_map || map_params[i] == P_smtpd_users_map
                           ? MAP_SECRET
                           : 0,
                       &err) < 0) {
            fprintf(stderr,
                    "%s: the compiled map cannot be read: %s; rebuild it with smtpctl "
                    "makemap %s\n",
                    src, err, src);
            free(err);
            err = NULL;
            bad = 1;
            continue;
        }
        if (*src == '\0' || access(src, F_OK) != 0 || map_params[i] == P_dkim_map)
            continue; /* the dkim_map's staleness is check_dkim_map's */
        if (map_stale(src)) {
            fprintf(stderr, "warning: %s: %s.db is missing or older: run smtpctl makemap %s\n", src,
                    src, src);
        } else {
            printf("%s.db: up to date\n", src);
        }
    }
    config_free(&cfg);
    return bad;
}

/* Secrets (gateway credentials, AUTH users) are compiled with MAP_SECRET. */
static int is_secret_map(const char *confdir, const char *path)
{
    char a[PATH_MAX], b[PATH_MAX];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char *secrets = config_peek(confdir, P_relay_secrets_map);
    char *users = config_peek(confdir, P_smtpd_users_map);
    int secret = strcmp(base, "secrets") == 0 || strcmp(base, "users") == 0;

    if (realpath(path, a) != NULL)
        secret |= (realpath(secrets, b) && strcmp(a, b) == 0) ||
                  (realpath(users, b) && strcmp(a, b) == 0);
    free(secrets);
    free(users);
    return secret;
}

/* path is the map called name ("domains"), or the one param names. */
static int is_named_map(const char *confdir, const char *path, const char *name, enum cfg_id param)
{
    char a[PATH_MAX], b[PATH_MAX];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char *configured = config_peek(confdir, param);
    int yes = strcmp(base, name) == 0 ||
              (*configured && realpath(path, a) && realpath(configured, b) && strcmp(a, b) == 0);

    free(configured);
    return yes;
}

/* The domains map is checked entry by entry against the parameter table. */
static int is_domains_map(const char *confdir, const char *path)
{
    return is_named_map(confdir, path, "domains", P_domains_map);
}

static int is_aliases_map(const char *confdir, const char *path)
{
    return is_named_map(confdir, path, "aliases", P_alias_maps);
}

/* The dkim_map: by name, or as main.cf's dkim_map. */
static int is_dkim_map(const char *confdir, const char *path)
{
    return is_named_map(confdir, path, "dkim", P_dkim_map);
}

static void alias_warning(const char *text, void *arg)
{
    fprintf(stderr, "warning: %s\n", text);
}

/* An aliases file (aliases(5), as newaliases compiles it). */
static int makemap_aliases(const char *confdir, const char *path)
{
    struct config cfg;
    char *err = NULL;
    int rc;

    if (config_load(&cfg, confdir, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return 1;
    }
    rc = local_aliases_compile(&cfg, path, alias_warning, NULL, &err);
    config_free(&cfg);
    if (rc < 0) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return 1;
    }
    printf("%s.db: written (aliases)\n", path);
    return 0;
}

static int is_sender_map(const char *confdir, const char *path)
{
    return is_named_map(confdir, path, "senders", P_relay_sender_map);
}

/* relay_gateways from main.cf when it loads (to check gateways= names). */
static int load_gateways(const char *confdir, struct gateways *gws)
{
    struct config cfg;
    char *err = NULL;
    int ok;

    if (config_load(&cfg, confdir, NULL, &err) < 0) {
        free(err);
        return 0;
    }
    ok = gateways_parse(cfg_list(&cfg, P_relay_gateways), gws, &err) == 0;
    free(err);
    config_free(&cfg);
    return ok;
}

static int cmd_makemap(const char *confdir, int argc, char **argv)
{
    char *err = NULL;
    int rc = 0;
    struct gateways gws;
    int have_gws = load_gateways(confdir, &gws);

    if (argc < 2) {
        fprintf(stderr, "usage: smtpctl makemap FILE...\n");
        if (have_gws)
            gateways_free(&gws);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (is_aliases_map(confdir, argv[i])) {
            rc |= makemap_aliases(confdir, argv[i]);
            continue;
        }
        if (is_dkim_map(confdir, argv[i])) {
            if (dkim_map_compile(argv[i], &err) < 0) {
                fprintf(stderr, "%s\n", err);
                free(err);
                err = NULL;
                rc = 1;
            } else {
                printf("%s.db: written (dkim)\n", argv[i]);
            }
            continue;
        }
        unsigned flags = is_secret_map(confdir, argv[i]) ? MAP_SECRET : 0;
        map_check_fn check = is_domains_map(confdir, argv[i])  ? domains_check_entry
                             : is_sender_map(confdir, argv[i]) ? gateways_check_sender_entry
                                                               : NULL;
        if (map_compile_checked(argv[i], flags, check, have_gws ? &gws : NULL, &err) < 0) {
            fprintf(stderr, "%s\n", err);
            free(err);
            err = NULL;
            rc = 1;
            continue;
        }
        printf("%s.db: written%s\n", argv[i], flags ? " (secret: mode 0600)" : "");
    }
    if (have_gws)
        gateways_free(&gws);
    return rc;
}

/*
 * The spool of the running master: from main.cf as master reads it, or,
 * when main.cf has an error now, from a lenient read of queue_directory so
 * that "smtpctl reload" can still reach master and report its refusal.
 */
static char *find_spool(const char *confdir)
{
    struct config cfg;
    char *err = NULL, *spool;

    if (config_load(&cfg, confdir, NULL, &err) == 0) {
        spool = xstrdup(cfg_str(&cfg, P_queue_directory));
        config_free(&cfg);
        return spool;
    }
    free(err);
    return config_peek(confdir, P_queue_directory);
}

static int cmd_remote(const char *confdir, unsigned flags, int argc, char **argv)
{
    char *spool = find_spool(confdir);
    char *path = xasprintf("%s/%s", spool, SPOOL_CONTROL);
    struct ctl_req req = {flags, (size_t)argc, argv};
    struct ctl_rep rep;
    struct ctl_client_err err;
    int code;

    free(spool);
    if (ctl_client_call(path, &req, REPLY_TIMEOUT_MS, &rep, &err) < 0) {
        char *msg = ctl_client_strerror(&err, path, "master");
        fprintf(stderr, "smtpctl: %s\n", msg);
        free(msg);
        free(path);
        return 2;
    }
    free(path);
    fputs(rep.output, rep.code == 0 ? stdout : stderr);
    code = (int)rep.code;
    ctl_rep_free(&rep);
    return code;
}

static int run(const char *confdir, unsigned flags, int nargs, char **args)
{
    if (nargs == 0) {
        usage_print(stderr);
        return 2;
    }
    if (strcmp(args[0], "--help") == 0 || strcmp(args[0], "-h") == 0)
        return cmd_help(1, args);
    const struct ctl_cmd *c = ctl_cmd_find(nargs, args);
    if (c == NULL) {
        /* Said here, daemon or not: master would say the same. */
        if (nargs > 1 && ctl_cmd_word_has_subs(args[0]))
            fprintf(stderr, "smtpctl: unknown command '%s %s'\n", args[0], args[1]);
        else
            fprintf(stderr, "smtpctl: unknown command '%s'\n", args[0]);
        usage_print(stderr);
        return 2;
    }
    switch (c->id) {
    case CTL_CMD_help:
        return cmd_help(nargs, args);
    case CTL_CMD_version:
        printf("postern %s\n", POSTERN_VERSION);
        return 0;
    case CTL_CMD_check:
        return cmd_check(confdir);
    case CTL_CMD_makemap:
        return cmd_makemap(confdir, nargs, args);
    case CTL_CMD_params:
        return cmd_params(flags, nargs - 1, args + 1);
    case CTL_CMD_config:
        return cmd_config(confdir, flags, nargs, args);
    case CTL_CMD_dkim_keygen:
        return cmd_dkim_keygen(confdir, nargs, args);
    case CTL_CMD_dkim_check: {
        char *spool = find_spool(confdir);
        int rc = cmd_dkim_check(confdir, spool, flags, nargs, args);
        free(spool);
        return rc;
    }
    default:
        break;
    }
    if (resolve_wanted(nargs, args)) {
        char *spool = find_spool(confdir);
        int rc = resolve_route(spool, flags, nargs, args);
        free(spool);
        return rc;
    }
    if (nargs >= 2 && strcmp(args[0], "tls") == 0 && strcmp(args[1], "check") == 0) {
        char *spool = find_spool(confdir);
        int rc = tls_check_run(spool, flags, nargs, args);
        free(spool);
        return rc;
    }
    if (strcmp(args[0], "monitor") == 0) {
        char *spool = find_spool(confdir), *path = xasprintf("%s/%s", spool, SPOOL_CONTROL);
        int rc = monitor_run(path, flags, nargs, args);
        free(spool);
        free(path);
        return rc;
    }
    return cmd_remote(confdir, flags, nargs, args);
}

int main(int argc, char **argv)
{
    const char *confdir = getenv("POSTERN_CONFIG");
    unsigned flags = 0;
    char **args = xcalloc((size_t)argc + 1, sizeof(char *));
    int nargs = 0, rc;

    log_init("smtpctl", LOG_TO_STDERR);
    if (confdir == NULL || *confdir == '\0')
        confdir = DEFAULT_CONFDIR;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && nargs == 0) {
            if (++i >= argc) {
                usage_print(stderr);
                free(args);
                return 2;
            }
            confdir = argv[i];
        } else if (strcmp(argv[i], "--json") == 0) {
            flags |= CTL_F_JSON;
        } else {
            args[nargs++] = argv[i];
        }
    }
    rc = run(confdir, flags, nargs, args);
    free(args);
    return rc;
}
