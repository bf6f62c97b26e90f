/*
 * sendmail - the sendmail(1) compatible command: local programs (cron,
 * mailx, PHP's mail(), scripts) hand a message to Postern as they would to
 * any MTA; invoked as "mailq" it lists the queue.
 *
 *   sendmail [-t] [-i|-oi] [-f sender] [-F fullname] [-C dir] [-v]
 *            [-N dsn] [-R ret] [-V envid] [-B type] [--] [recipient ...]
 *   sendmail -bp | mailq          the queue (smtpctl show queue)
 *   sendmail -bs                  SMTP on stdin/stdout
 *   sendmail -q [-qRdomain]       flush (smtpctl flush)
 *
 * The message is read from stdin first, whole (lines to CR LF, a lone "."
 * ends it without -i, headers completed, Bcc removed; see msgin.h and
 * hdr.h), then submitted over SMTP to the first loopback or wildcard
 * address in smtpd_listen (wildcards become loopback), so it is accepted,
 * logged and queued like any other message. The configuration directory
 * is -C DIR, else $POSTERN_CONFIG, else /etc/postern.
 *
 * When smtpd cannot be reached (no connection, no greeting, a 421
 * greeting) the message goes to the maildrop through postdrop instead
 * (drop.h), and sendmail exits 0 once postdrop has it on disk.
 *
 * Exit codes (sysexits.h): 0 queued (the final 250 was seen, or left in
 * the maildrop); 64 usage;
 * 65 malformed input (header address list, too large, bad address);
 * 67 a recipient refused (5xx); 69 a permanent refusal at connect, EHLO,
 * MAIL or DATA; 74 stdin unreadable; 75 postern not running, a 4xx, a
 * timeout; 78 no usable configuration. -bp and -q exit 0 or 1.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <netinet/in.h>

#include "addrlist.h"
#include "mail/local_rcpt.h"
#include "mail/config.h"
#include "ctl.h"
#include "drop.h"
#include "hdr.h"
#include "base/log.h"
#include "msgin.h"
#include "base/netaddr.h"
#include "opts.h"
#include "mail/smtp_addr.h"
#include "submit.h"
#include "base/util.h"

#define DEFAULT_CONFDIR "/etc/postern"
#define REPLY_TIMEOUT_MS (60 * 1000)
#define PROXY_IDLE_MS (10 * 60 * 1000)
#define HEADER_MAX (1024 * 1024)
#define FIELDS_MAX 5000
#define SPILL_AT (1024 * 1024)

static const char usage_text[] =
    "usage: %s [-t] [-i|-oi] [-f sender] [-F fullname] [-C confdir] [-v]\n"
    "          [-N never|success,delay,failure] [-R full|hdrs] [-V envid] [-B 7BIT|8BITMIME]\n"
    "          [--] [recipient ...]\n"
    "       %s -bp (or mailq)   list the queue\n"
    "       %s -bs              SMTP on stdin and stdout\n"
    "       %s -q [-qRdomain]   try deferred mail now\n"
    "       %s -bv address ...  show how each address would be routed; nothing is sent\n";

static const char *prog = "sendmail";

/* What sendmail needs from main.cf. */
struct settings {
    char *confdir;
    char *myhostname;
    char *spool;
    char **listen; /* NULL-terminated */
    unsigned long long size_limit;
    long rcpt_limit, line_limit;
};

static int usage(const char *err)
{
    if (err)
        fprintf(stderr, "%s: %s\n", prog, err);
    fprintf(stderr, usage_text, prog, prog, prog, prog, prog);
    return EX_USAGE;
}

static char **copy_list(char *const *l)
{
    size_t n = 0;
    char **v;

    while (l && l[n])
        n++;
    v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        v[i] = xstrdup(l[i]);
    return v;
}

/*
 * main.cf as master reads it; when it has an error now (postern still runs
 * with what it read before), each parameter sendmail needs is read on its
 * own, so that mail from cron is not lost to an unrelated typo.
 */
static int load_settings(const char *dir, struct settings *s)
{
    struct config cfg;
    char *err = NULL, *mcf = xasprintf("%s/main.cf", dir);

    memset(s, 0, sizeof(*s));
    if (access(mcf, R_OK) != 0) {
        fprintf(stderr,
                "%s: cannot read %s: %s (name the configuration directory with -C DIR "
                "or $POSTERN_CONFIG)\n",
                prog, mcf, strerror(errno));
        free(mcf);
        return -1;
    }
    free(mcf);
    s->confdir = xstrdup(dir);
    if (config_load(&cfg, dir, NULL, &err) == 0) {
        s->myhostname = xstrdup(cfg_myhostname(&cfg));
        s->spool = xstrdup(cfg_str(&cfg, P_queue_directory));
        s->listen = copy_list(cfg_list(&cfg, P_smtpd_listen));
        s->size_limit = (unsigned long long)cfg_num(&cfg, P_message_size_limit);
        s->rcpt_limit = (long)cfg_num(&cfg, P_smtpd_recipient_limit);
        s->line_limit = (long)cfg_num(&cfg, P_smtpd_line_length_limit);
        config_free(&cfg);
        return 0;
    }
    fprintf(stderr, "%s: warning: %s; reading the parameters sendmail needs one by one\n", prog,
            err);
    free(err);
    struct cfg_val v = config_peek_value(dir, P_myhostname);
    if (v.text && *v.text) {
        s->myhostname = xstrdup(v.text);
    } else {
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        s->myhostname = xstrdup(host);
    }
    cfg_val_free(&v);
    s->spool = config_peek(dir, P_queue_directory);
    v = config_peek_value(dir, P_smtpd_listen);
    s->listen = copy_list(v.list);
    cfg_val_free(&v);
    v = config_peek_value(dir, P_message_size_limit);
    s->size_limit = (unsigned long long)v.num;
    cfg_val_free(&v);
    v = config_peek_value(dir, P_smtpd_recipient_limit);
    s->rcpt_limit = (long)v.num;
    cfg_val_free(&v);
    v = config_peek_value(dir, P_smtpd_line_length_limit);
    s->line_limit = (long)v.num;
    cfg_val_free(&v);
    return 0;
}

static void free_settings(struct settings *s)
{
    for (size_t i = 0; s->listen && s->listen[i]; i++)
        free(s->listen[i]);
    free(s->listen);
    free(s->confdir);
    free(s->myhostname);
    free(s->spool);
}

static int is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    return IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
}

static void make_loopback(struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else
        ((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
}

/*
 * Where to submit: the first smtpd_listen address that is loopback or a
 * wildcard (as loopback), so that smtpd sees a local client that
 * mynetworks lets relay; else the first address.
 */
static int pick_listen(const struct settings *s, struct sockaddr_storage *out)
{
    int have = 0;

    for (size_t i = 0; s->listen[i]; i++) {
        struct sockaddr_storage ss;
        const char *why;
        if (netaddr_parse_hostport(s->listen[i], 25, &ss, &why) < 0)
            continue;
        if (is_wildcard(&ss))
            make_loopback(&ss);
        if (netaddr_is_loopback((struct sockaddr *)&ss)) {
            *out = ss;
            return 0;
        }
        if (!have)
            *out = ss;
        have = 1;
    }
    if (have)
        return 0;
    fprintf(stderr, "%s: smtpd_listen in %s/main.cf names no address to hand mail to\n", prog,
            s->confdir);
    return -1;
}

/* A local part as an SMTP path carries it (quoted unless a dot-atom). */
static char *canonical_address(const char *local, const char *domain)
{
    struct addrlist l;
    char *q = xasprintf("\"%s\"", local), *out;
    const char *why;
    size_t where;

    addrlist_init(&l);
    if (addr_is_dot_atom(local, strlen(local)) ||
        addrlist_parse(&l, q, strlen(q), 1, &why, &where) < 0 || l.n != 1)
        out = xasprintf("%s@%s", local, domain);
    else
        out = xasprintf("%s@%s", l.v[0].local, domain);
    addrlist_free(&l);
    free(q);
    return out;
}

/* -f: "" or "<>" is the null sender; else one address. */
static int parse_sender(const char *arg, const char *myhost, char **out)
{
    struct addrlist l;
    const char *why;
    size_t where;
    size_t n = strlen(arg);

    while (n && (arg[n - 1] == ' ' || arg[n - 1] == '\t'))
        n--;
    while (n && (*arg == ' ' || *arg == '\t'))
        arg++, n--;
    if (n == 0 || (n == 2 && memcmp(arg, "<>", 2) == 0)) {
        *out = xstrdup("");
        return 0;
    }
    addrlist_init(&l);
    if (addrlist_parse(&l, arg, n, 1, &why, &where) < 0 || l.n != 1) {
        fprintf(stderr, "%s: -f %s: %s\n", prog, arg, l.n == 1 ? "one address expected" : why);
        addrlist_free(&l);
        return -1;
    }
    *out = addr_format(&l.v[0], myhost);
    addrlist_free(&l);
    return 0;
}

struct job {
    struct sm_opts o;
    struct settings s;
    struct passwd *pw;
    char login[64];
    char *user_addr; /* login@myhostname */
    char *sender;
    struct msgin m;
    struct addrlist rcpts;
    char **rcpt_str;
    size_t nrcpt;
    int utf8;
};

static int read_input(struct job *j)
{
    struct msgin_limits lim = {
        .line_max = (size_t)j->s.line_limit,
        .size_max = j->s.size_limit,
        .header_max = HEADER_MAX,
        .fields_max = FIELDS_MAX,
        .spill_at = SPILL_AT,
        .tmpdir = getenv("TMPDIR"),
    };
    char buf[65536];
    int rc = MSGIN_MORE;

    msgin_init(&j->m, j->o.dot_ends, &lim);
    while (rc == MSGIN_MORE) {
        ssize_t n = read(0, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "%s: cannot read the message from stdin: %s; message not sent\n", prog,
                    strerror(errno));
            return EX_IOERR;
        }
        rc = n == 0 ? msgin_finish(&j->m) : msgin_feed(&j->m, buf, (size_t)n);
    }
    if (rc == MSGIN_ERR) {
        fprintf(stderr, "%s: %s; message not sent\n", prog, j->m.why);
        return j->m.err_io ? EX_TEMPFAIL : EX_DATAERR;
    }
    return 0;
}

static int too_many(const struct job *j)
{
    fprintf(stderr, "%s: more than %ld recipients (smtpd_recipient_limit); message not sent\n",
            prog, j->s.rcpt_limit);
    return EX_DATAERR;
}

/* Recipients from the arguments and, with -t, the headers; deduplicated. */
static int collect_rcpts(struct job *j)
{
    size_t max = (size_t)j->s.rcpt_limit;
    const char *why;
    size_t where;
    char err[300];

    for (int i = 0; i < j->o.nrcpts; i++) {
        const char *a = j->o.rcpts[i];
        if (addrlist_parse(&j->rcpts, a, strlen(a), max, &why, &where) < 0) {
            if (strcmp(why, "too many addresses") == 0)
                return too_many(j);
            fprintf(stderr, "%s: recipient %s: %s\n", prog, a, why);
            return EX_USAGE;
        }
    }
    if (j->o.extract && hdr_rcpts(&j->m, &j->rcpts, max, err, sizeof(err)) < 0) {
        if (strstr(err, "too many addresses"))
            return too_many(j);
        fprintf(stderr, "%s: %s; message not sent\n", prog, err);
        return EX_DATAERR;
    }
    if (j->rcpts.n == 0) {
        fprintf(stderr, "%s: no recipients in the To:, Cc: or Bcc: headers; message not sent\n",
                prog);
        return EX_DATAERR;
    }
    j->rcpt_str = xcalloc(j->rcpts.n, sizeof(char *));
    for (size_t i = 0; i < j->rcpts.n; i++) {
        char *a = addr_format(&j->rcpts.v[i], j->s.myhostname);
        unsigned res = 0;
        int dup = 0;
        if (smtp_mailbox_valid(a, strlen(a), &res, &why) < 0) {
            fprintf(stderr, "%s: recipient <%s>: %s; message not sent\n", prog, a, why);
            free(a);
            return EX_DATAERR;
        }
        for (size_t k = 0; k < j->nrcpt && !dup; k++)
            dup = ascii_casecmp(j->rcpt_str[k], a) == 0;
        if (dup) {
            free(a);
            continue;
        }
        j->utf8 |= (res & SMTP_PATH_UTF8) != 0;
        j->rcpt_str[j->nrcpt++] = a;
    }
    return 0;
}

static void make_token(char *out, size_t outsz)
{
    unsigned char r[8];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = (uint64_t)now_us() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &t, sizeof(r));
    }
    snprintf(out, outsz, "%02x%02x%02x%02x%02x%02x%02x%02x.%ld", r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7], (long)getpid());
}

/* The full name for an added From:: -F, else the password entry's. */
static char *full_name(const struct job *j)
{
    if (j->o.fullname)
        return xstrdup(j->o.fullname);
    if (j->pw && j->pw->pw_gecos)
        return xstrndup(j->pw->pw_gecos, strcspn(j->pw->pw_gecos, ","));
    return NULL;
}

/*
 * smtpd could not be reached: postdrop leaves the message in the maildrop
 * for smtpd to pick up when it runs. Success is silent (without -v), as
 * for a message queued over SMTP; a failure says both what happened.
 */
static int to_maildrop(const struct job *j, const struct submit_req *req, const char *why)
{
    char *postdrop = drop_postdrop_path();
    int rc = drop_message(req, postdrop, j->s.confdir);

    free(postdrop);
    if (rc == EX_OK) {
        if (j->o.verbose)
            fprintf(stderr,
                    "%s: %s; the message was left in the maildrop and will be sent when "
                    "postern accepts mail again\n",
                    prog, why);
        return EX_OK;
    }
    fprintf(stderr, "%s: %s; message not sent\n", prog, why);
    return rc == EX_DATAERR ? EX_DATAERR : EX_TEMPFAIL;
}

static int send_mode(struct job *j)
{
    struct submit_req req;
    struct buf headers;
    char unreachable[1024];
    char token[64];
    char *name;
    uint64_t lines = 0;
    int rc;

    memset(&req, 0, sizeof(req));
    if (j->o.sender == NULL)
        j->sender = xstrdup(j->user_addr);
    else if (parse_sender(j->o.sender, j->s.myhostname, &j->sender) < 0)
        return EX_USAGE;
    if (*j->sender) {
        unsigned res = 0;
        const char *why;
        if (smtp_mailbox_valid(j->sender, strlen(j->sender), &res, &why) < 0) {
            fprintf(stderr, "%s: sender <%s>: %s\n", prog, j->sender, why);
            return EX_USAGE;
        }
        j->utf8 |= (res & SMTP_PATH_UTF8) != 0;
    }
    if (pick_listen(&j->s, &req.addr) < 0)
        return EX_CONFIG;
    if ((rc = read_input(j)) != 0 || (rc = collect_rcpts(j)) != 0)
        return rc;
    hdr_strip_bcc(&j->m);
    make_token(token, sizeof(token));
    name = full_name(j);
    struct hdr_info hi = {j->s.myhostname,
                          *j->sender ? j->sender : j->user_addr,
                          name,
                          time(NULL),
                          (long)getuid(),
                          token};
    buf_init(&headers);
    hdr_write(&j->m, &hi, &headers);
    free(name);
    for (size_t i = 0; i < headers.len; i++)
        lines += headers.data[i] == '\n';
    req.size = headers.len + lines + j->m.body.len + j->m.body_lines;
    if (req.size > j->s.size_limit) {
        fprintf(stderr,
                "%s: the message is %llu bytes, message_size_limit is %llu; message not "
                "sent\n",
                prog, (unsigned long long)req.size, j->s.size_limit);
        buf_free(&headers);
        return EX_DATAERR;
    }
    req.prog = prog;
    req.helo = j->s.myhostname;
    req.sender = j->sender;
    req.rcpts = j->rcpt_str;
    req.nrcpts = j->nrcpt;
    req.notify = j->o.notify;
    req.ret = j->o.ret;
    req.envid = j->o.envid;
    req.eightbit = j->m.eightbit || (j->o.body && strcmp(j->o.body, "8BITMIME") == 0);
    req.utf8 = j->utf8;
    req.headers = &headers;
    req.body = &j->m.body;
    req.verbose = j->o.verbose;
    req.timeout_ms = REPLY_TIMEOUT_MS;
    rc = submit_message(&req, unreachable, sizeof(unreachable));
    if (rc == SUBMIT_UNREACHABLE)
        rc = to_maildrop(j, &req, unreachable);
    buf_free(&headers);
    return rc;
}

/*
 * -bv: each address as it would be queued (a bare local part gets
 * @myhostname), then the route qmgr would give it (smtpctl route). Like
 * sendmail's -bv, nothing is sent. Needs the control socket (root, or the
 * user postern runs as); the addresses are still checked without it.
 */
static int verify_mode(struct job *j)
{
    int rc = collect_rcpts(j), bad = 0;

    if (rc != 0)
        return rc;
    for (size_t i = 0; i < j->nrcpt; i++) {
        const char *route[] = {"route", j->rcpt_str[i]};
        printf("%s%s... deliverable: the route:\n", i ? "\n" : "", j->rcpt_str[i]);
        fflush(stdout);
        if (ctl_run(prog, j->s.spool, 2, route) != 0)
            bad = 1;
    }
    return bad ? EX_UNAVAILABLE : EX_OK;
}

static int flush_mode(struct job *j)
{
    const char *all[] = {"flush"};
    const char *dom[] = {"flush", "--domain", j->o.flush_domain};

    if (j->o.flush_domain)
        return ctl_run(prog, j->s.spool, 3, dom);
    return ctl_run(prog, j->s.spool, 1, all);
}

/* -C names the directory, or main.cf inside it. */
static char *config_dir(const struct sm_opts *o)
{
    const char *env = getenv("POSTERN_CONFIG");
    struct stat st;

    if (o->confdir) {
        if (stat(o->confdir, &st) == 0 && S_ISREG(st.st_mode)) {
            const char *slash = strrchr(o->confdir, '/');
            if (slash == NULL)
                return xstrdup(".");
            return xstrndup(o->confdir, slash == o->confdir ? 1 : (size_t)(slash - o->confdir));
        }
        return xstrdup(o->confdir);
    }
    return xstrdup(env && *env ? env : DEFAULT_CONFDIR);
}

static void job_free(struct job *j)
{
    for (size_t i = 0; i < j->nrcpt; i++)
        free(j->rcpt_str[i]);
    free(j->rcpt_str);
    addrlist_free(&j->rcpts);
    msgin_free(&j->m);
    free(j->sender);
    free(j->user_addr);
    free_settings(&j->s);
}

static int run(struct job *j)
{
    const char *show[] = {"show", "queue"};

    switch (j->o.mode) {
    case SM_MAILQ:
        return ctl_run(prog, j->s.spool, 2, show);
    case SM_FLUSH:
        return flush_mode(j);
    case SM_VERIFY:
        return verify_mode(j);
    case SM_SMTP: {
        struct sockaddr_storage ss;
        if (pick_listen(&j->s, &ss) < 0)
            return EX_CONFIG;
        return smtp_proxy(prog, &ss, PROXY_IDLE_MS);
    }
    default:
        return send_mode(j);
    }
}

static void alias_warning(const char *text, void *arg)
{
    fprintf(stderr, "%s: warning: %s\n", prog, text);
}

/* newaliases, sendmail -bi, -I: alias_maps compiled to its .db. */
static int newaliases(const struct sm_opts *o)
{
    char *dir = config_dir(o), *err = NULL;
    struct config cfg;
    int rc;

    rc = config_load(&cfg, dir, NULL, &err);
    free(dir);
    if (rc < 0) {
        fprintf(stderr, "%s: %s; aliases not compiled\n", prog, err);
        free(err);
        return EX_CONFIG;
    }
    rc = local_aliases_compile(&cfg, NULL, alias_warning, NULL, &err);
    if (rc < 0) {
        fprintf(stderr, "%s: %s; %s.db not changed\n", prog, err, cfg_str(&cfg, P_alias_maps));
        free(err);
        config_free(&cfg);
        return EX_DATAERR;
    }
    printf("%s: %s.db written\n", prog, cfg_str(&cfg, P_alias_maps));
    config_free(&cfg);
    return EX_OK;
}

int main(int argc, char **argv)
{
    struct job j;
    const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
    char *dir;
    int rc;

    memset(&j, 0, sizeof(j));
    j.m.body.fd = -1;
    prog = base ? base + 1 : argc > 0 && *argv[0] ? argv[0] : "sendmail";
    log_init(prog, LOG_TO_STDERR);
    signal(SIGPIPE, SIG_IGN);
    addrlist_init(&j.rcpts);
    if (opts_parse(&j.o, prog, argc, argv) < 0)
        return usage(j.o.err);
    for (int i = 0; i < j.o.nnotes; i++)
        fprintf(stderr, "%s: note: option %s ignored\n", prog, j.o.notes[i]);
    if (j.o.mode == SM_NEWALIASES)
        return newaliases(&j.o);
    if (j.o.mode == SM_IGNORE_Q)
        return EX_OK;
    dir = config_dir(&j.o);
    rc = load_settings(dir, &j.s);
    free(dir);
    if (rc < 0)
        return EX_CONFIG;
    j.pw = getpwuid(getuid());
    if (j.pw)
        snprintf(j.login, sizeof(j.login), "%s", j.pw->pw_name);
    else
        snprintf(j.login, sizeof(j.login), "uid%ld", (long)getuid());
    j.user_addr = canonical_address(j.login, j.s.myhostname);
    rc = run(&j);
    job_free(&j);
    return rc;
}
