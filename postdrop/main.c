/*
 * postdrop - leave one message in queue_directory/maildrop/ for smtpd to
 * pick up (smtpd/pickup.h). sendmail runs it when Postern's smtpd cannot
 * be reached, with the message as a maildrop stream (mail/maildrop.h) on
 * standard input:
 *
 *   postdrop [-C confdir] [-v] < stream
 *
 * Installed setgid to the group postdrop (mode 2755), the one group that
 * may create files in maildrop/ (mode 1730), so it treats its caller as
 * hostile: before anything else it makes sure fds 0-2 are open, closes
 * every other fd, empties the environment, unblocks and resets signals,
 * and bounds its run with an alarm; input is read in bounded chunks and
 * checked as it is written (write.h). When it runs setgid (AT_SECURE),
 * the configuration is always DEFAULT_CONFDIR: -C and $POSTERN_CONFIG
 * are ignored with a note, so a caller cannot choose where the spool is
 * or which limits apply. Run without privilege (the build tree, a
 * development spool owned by the user) it takes -C like sendmail does.
 *
 * Exit: 0 once the file is durable in maildrop/; 65 (EX_DATAERR) for a
 * malformed stream or one over a limit; 75 (EX_TEMPFAIL) for everything
 * else - no configuration, no maildrop, not enough space (queue_minfree),
 * an I/O error, a timeout or a signal; 64 for a bad command line. Nothing
 * is left in maildrop/ unless it exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "base/log.h"
#include "mail/config.h"
#include "mail/spool.h"
#include "write.h"

#define DEFAULT_CONFDIR "/etc/postern"
#define TIMEOUT_S 300

static void on_signal(int sig)
{
    static const char msg[] = "postdrop: interrupted; message not stored\n";

    pd_cleanup();
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(EX_TEMPFAIL);
}

/* fds 0, 1, 2 open (on /dev/null if the caller closed them), no other. */
static void sane_fds(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (n != fd)
            _exit(EX_TEMPFAIL); /* cannot even say so */
    }
    if (close_range(3, ~0U, 0) != 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < (max > 0 ? max : 1024); fd++)
            close((int)fd);
    }
}

/* Signals as we need them, whatever the caller left blocked or ignored. */
static void sane_signals(void)
{
    static const int fatal[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGALRM};
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sigfillset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    for (size_t i = 0; i < nitems(fatal); i++)
        sigaction(fatal[i], &sa, NULL);
    /* Errors come back from write() instead of killing us mid-file. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    alarm(TIMEOUT_S);
}

static int usage(void)
{
    fprintf(stderr, "usage: postdrop [-C confdir] [-v] < maildrop-stream\n");
    return EX_USAGE;
}

static int same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];

    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* The configuration directory: -C (or $POSTERN_CONFIG) unless setgid. */
static const char *config_dir(const char *opt, const char *env)
{
    const char *asked = opt ? opt : env && *env ? env : NULL;

    if (!getauxval(AT_SECURE))
        return asked ? asked : DEFAULT_CONFDIR;
    if (asked && !same_dir(asked, DEFAULT_CONFDIR))
        fprintf(stderr,
                "postdrop: note: %s %s ignored: running setgid, postdrop reads only %s/main.cf\n",
                opt ? "-C" : "POSTERN_CONFIG", asked, DEFAULT_CONFDIR);
    return DEFAULT_CONFDIR;
}

/* What postdrop needs from main.cf; read one by one if it has an error. */
static int load(const char *dir, struct pd_conf *pc, char **spool)
{
    struct config cfg;
    char *err = NULL, *mcf = xasprintf("%s/main.cf", dir);
    static const enum cfg_id ids[] = {P_message_size_limit, P_queue_minfree,
                                      P_smtpd_recipient_limit, P_smtpd_command_line_limit};
    long long v[nitems(ids)];

    if (access(mcf, R_OK) != 0) {
        fprintf(stderr, "postdrop: cannot read %s: %s; message not stored\n", mcf, strerror(errno));
        free(mcf);
        return -1;
    }
    free(mcf);
    if (config_load(&cfg, dir, NULL, &err) == 0) {
        *spool = xstrdup(cfg_str(&cfg, P_queue_directory));
        for (size_t i = 0; i < nitems(ids); i++)
            v[i] = cfg_num(&cfg, ids[i]);
        config_free(&cfg);
    } else {
        fprintf(stderr, "postdrop: warning: %s; reading the parameters postdrop needs one by one\n",
                err);
        free(err);
        *spool = config_peek(dir, P_queue_directory);
        for (size_t i = 0; i < nitems(ids); i++) {
            struct cfg_val cv = config_peek_value(dir, ids[i]);
            v[i] = cv.num;
            cfg_val_free(&cv);
        }
    }
    pc->lim.size_max = (uint64_t)v[0];
    pc->minfree = (uint64_t)v[1];
    pc->lim.rcpt_max = (size_t)v[2];
    pc->lim.line_max = (size_t)v[3];
    return 0;
}

int main(int argc, char **argv)
{
    const char *env = getenv("POSTERN_CONFIG"), *opt = NULL;
    struct pd_conf pc;
    char *spool = NULL, *envcopy;
    int c, rc;

    sane_fds();
    envcopy = env ? xstrdup(env) : NULL;
    clearenv();
    setenv("PATH", "/usr/bin:/bin", 1);
    umask(022);
    sane_signals();
    log_init("postdrop", LOG_TO_STDERR);
    memset(&pc, 0, sizeof(pc));
    while ((c = getopt(argc, argv, "C:v")) != -1) {
        switch (c) {
        case 'C':
            opt = optarg;
            break;
        case 'v':
            pc.verbose = 1;
            break;
        default:
            return usage();
        }
    }
    if (optind != argc)
        return usage();
    if (load(config_dir(opt, envcopy), &pc, &spool) < 0)
        return EX_TEMPFAIL;
    free(envcopy);
    char *md = xasprintf("%s/%s", spool, SPOOL_MAILDROP);
    pc.maildrop = md;
    rc = pd_write(&pc, 0);
    free(md);
    free(spool);
    return rc;
}
