/*
 * smtpctl - Postern's control command.
 *
 *   smtpctl [-c CONFDIR] [--json] COMMAND [ARGS...]
 *
 * "check" and "makemap" work without a running daemon. Every other
 * command is sent to master over queue_directory/run/control.sock; master
 * answers it or hands it to the process that owns it, and the answer is
 * printed here. Exit codes: 0 ok, 1 the command failed, 2 usage error or
 * postern not running.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "ipc.h"
#include "log.h"
#include "proto.h"
#include "spool.h"
#include "util.h"

#define DEFAULT_CONFDIR "/etc/postern"
#define REPLY_TIMEOUT_MS (150 * 1000)

static const char usage_text[] =
    "usage: smtpctl [-c CONFDIR] [--json] COMMAND [ARGS...]\n"
    "\n"
    "without a running daemon:\n"
    "  check                     validate main.cf (and the maps); file:line on error\n"
    "  makemap FILE              compile a text map (domains, users, secrets) to FILE.db\n"
    "daemon:\n"
    "  status                    every process: pid, user, uptime, restarts, root\n"
    "  reload                    re-read main.cf and the maps (a bad file is refused)\n"
    "  stop                      stop postern\n"
    "  log level basic|detailed|debug\n"
    "queue (qmgr):\n"
    "  show queue | show message ID | show hosts | show relays | show stats\n"
    "  flush|remove|hold|release|bounce  ID... | --domain D | --recipient R | --sender S | all\n"
    "  route ADDRESS [--size N] [--from SENDER]\n"
    "  pause delivery | resume delivery\n"
    "dns (dnsd):\n"
    "  show dns | dns lookup DOMAIN | dns flush\n"
    "intake (smtpd):\n"
    "  pause intake | resume intake | show smtpd\n"
    "\n"
    "--json gives machine-readable output for every show command and status.\n"
    "CONFDIR defaults to $POSTERN_CONFIG or " DEFAULT_CONFDIR ".\n";

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
    config_free(&cfg);
    return 0;
}

static int connect_master(const char *confdir)
{
    struct sockaddr_un sun;
    char *spool = config_peek(confdir, P_queue_directory);
    char *path = xasprintf("%s/%s", spool, SPOOL_CONTROL);
    int fd;

    free(spool);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "smtpctl: control socket path too long: %s\n", path);
        exit(2);
    }
    strlcpy_p(sun.sun_path, path, sizeof(sun.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            fprintf(stderr, "smtpctl: postern is not running (no master listening on %s)\n", path);
        else
            fprintf(stderr, "smtpctl: cannot reach master at %s: %s\n", path, strerror(errno));
        exit(2);
    }
    free(path);
    return fd;
}

static int cmd_remote(const char *confdir, unsigned flags, int argc, char **argv)
{
    struct ipc_w w;
    struct ipc_frame fr;
    struct ipc_r r;
    uint8_t *body;
    int fd, rfd, code;

    fd = connect_master(confdir);
    ipc_w_init(&w);
    ipc_w_u32(&w, flags);
    ipc_w_u32(&w, (uint32_t)argc);
    for (int i = 0; i < argc; i++)
        ipc_w_str(&w, argv[i]);
    if (ipc_send_blocking(fd, IMSG_CTL_REQ, 1, -1, w.p, w.len) < 0) {
        fprintf(stderr, "smtpctl: sending to master: %s\n", strerror(errno));
        return 2;
    }
    ipc_w_free(&w);
    if (ipc_recv_blocking(fd, &fr, &body, &rfd, REPLY_TIMEOUT_MS) < 0) {
        fprintf(stderr, "smtpctl: no answer from master: %s\n", strerror(errno));
        return 2;
    }
    if (rfd >= 0)
        close(rfd);
    ipc_r_init(&r, body, fr.len);
    code = (int)ipc_r_u32(&r);
    const char *text = ipc_r_str(&r);
    if (fr.type != IMSG_CTL_REP || !ipc_r_done(&r)) {
        fprintf(stderr, "smtpctl: malformed answer from master\n");
        return 2;
    }
    fputs(text, code == 0 ? stdout : stderr);
    free(body);
    close(fd);
    return code;
}

int main(int argc, char **argv)
{
    const char *confdir = getenv("POSTERN_CONFIG");
    unsigned flags = 0;
    char **args = xcalloc((size_t)argc + 1, sizeof(char *));
    int nargs = 0;

    log_init("smtpctl", LOG_TO_STDERR);
    if (confdir == NULL || *confdir == '\0')
        confdir = DEFAULT_CONFDIR;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && nargs == 0) {
            if (++i >= argc) {
                fputs(usage_text, stderr);
                return 2;
            }
            confdir = argv[i];
        } else if (strcmp(argv[i], "--json") == 0) {
            flags |= CTL_F_JSON;
        } else {
            args[nargs++] = argv[i];
        }
    }
    if (nargs == 0 || strcmp(args[0], "help") == 0 || strcmp(args[0], "--help") == 0 ||
        strcmp(args[0], "-h") == 0) {
        fputs(usage_text, nargs == 0 ? stderr : stdout);
        return nargs == 0 ? 2 : 0;
    }
    if (strcmp(args[0], "version") == 0) {
        printf("postern %s\n", POSTERN_VERSION);
        return 0;
    }
    if (strcmp(args[0], "check") == 0)
        return cmd_check(confdir);
    return cmd_remote(confdir, flags, nargs, args);
}
