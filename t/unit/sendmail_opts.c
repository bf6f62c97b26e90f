/*
 * sendmail_opts - unit tests of sendmail's command line (sendmail/opts.c),
 * with the option sets cron, mailx, mutt, PHP and git pass.
 */
#include <stdint.h>
#include <string.h>

#include "../../sendmail/opts.h"
#include "tap.h"

static struct sm_opts o;

/* Parse a NULL-terminated list of words as argv (argv[0] = "sendmail"). */
static int parse_as(const char *prog, const char *const *words)
{
    static char *argv[32];
    int argc = 0;

    argv[argc++] = (char *)(uintptr_t) "sendmail";
    for (; *words && argc < 31; words++)
        argv[argc++] = (char *)(uintptr_t)*words;
    argv[argc] = NULL;
    return opts_parse(&o, prog, argc, argv);
}

#define PARSE(...) parse_as("sendmail", (const char *const[]){__VA_ARGS__, NULL})

static void t_common(void)
{
    is_int(PARSE("-t", "-i"), 0, "PHP: -t -i");
    ok(o.extract && !o.dot_ends && o.nrcpts == 0 && o.mode == SM_SEND, "extract, no dot end");
    is_int(PARSE("-ti"), 0, "grouped -ti");
    ok(o.extract && !o.dot_ends, "both set");
    is_int(PARSE("-oi", "a@x"), 0, "-oi");
    ok(!o.dot_ends && o.nrcpts == 1 && strcmp(o.rcpts[0], "a@x") == 0, "-oi and a recipient");
    is_int(PARSE("-o", "i", "a@x"), 0, "-o i");
    ok(!o.dot_ends, "-o i is -oi");
    is_int(PARSE("a@x"), 0, "plain recipient");
    ok(o.dot_ends && !o.extract, "defaults: dot ends input, no -t");
    is_int(PARSE("-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"), 0, "cron's line");
    ok(strcmp(o.fullname, "CronDaemon") == 0 && strcmp(o.body, "8BITMIME") == 0 && o.nrcpts == 1 &&
           o.nnotes == 0,
       "full name, body type, recipient, nothing to note");
    is_int(PARSE("-oem", "-oi", "--", "a@x", "b@y"), 0, "mutt's line");
    is_int(o.nrcpts, 2, "two recipients after --");
    is_int(PARSE("-i", "--", "-odd@x"), 0, "-- then a word starting with -");
    ok(o.nrcpts == 1 && strcmp(o.rcpts[0], "-odd@x") == 0, "it is a recipient");
    is_int(PARSE("-odb", "-odi", "-odq", "-om", "-oep", "-v", "-m", "-n", "-U", "x@y"), 0,
           "no-op options");
    ok(o.nnotes == 0 && o.verbose, "accepted silently, -v kept");
    is_int(PARSE("-h", "5", "-L", "label", "-Am", "x@y"), 0, "options with ignored arguments");
    ok(o.nrcpts == 1 && strcmp(o.rcpts[0], "x@y") == 0, "their arguments are not recipients");
}

static void t_sender(void)
{
    is_int(PARSE("-f", "me@x", "a@y"), 0, "-f ADDR");
    is_str(o.sender, "me@x", "sender");
    is_int(PARSE("-fme@x", "a@y"), 0, "-fADDR");
    is_str(o.sender, "me@x", "glued");
    is_int(PARSE("-r", "me@x", "a@y"), 0, "-r");
    is_str(o.sender, "me@x", "-r is -f");
    is_int(PARSE("-f", "", "a@y"), 0, "-f ''");
    is_str(o.sender, "", "empty sender given");
    is_int(PARSE("-F", "Full Name", "-C", "/etc/x", "a@y"), 0, "-F, -C");
    ok(strcmp(o.fullname, "Full Name") == 0 && strcmp(o.confdir, "/etc/x") == 0, "kept");
    is_int(PARSE("a@y", "-f", "x@z"), 0, "options end at the first recipient");
    ok(o.sender == NULL && o.nrcpts == 3, "the rest are recipients");
}

static void t_modes(void)
{
    is_int(PARSE("-bp"), 0, "-bp");
    is_int(o.mode, SM_MAILQ, "mailq mode");
    is_int(parse_as("mailq", (const char *const[]){NULL}), 0, "invoked as mailq");
    is_int(o.mode, SM_MAILQ, "mailq by name");
    is_int(PARSE("-bs"), 0, "-bs");
    is_int(o.mode, SM_SMTP, "smtp mode");
    is_int(PARSE("-bi"), 0, "-bi");
    is_int(o.mode, SM_NEWALIASES, "newaliases");
    is_int(PARSE("-I"), 0, "-I");
    is_int(o.mode, SM_NEWALIASES, "-I is -bi");
    is_int(parse_as("newaliases", (const char *const[]){NULL}), 0, "invoked as newaliases");
    is_int(o.mode, SM_NEWALIASES, "newaliases by name");
    is_int(PARSE("-bm", "a@x"), 0, "-bm");
    is_int(o.mode, SM_SEND, "send mode");
    is_int(PARSE("-q"), 0, "-q");
    ok(o.mode == SM_FLUSH && o.flush_domain == NULL, "flush all");
    is_int(PARSE("-qRexample.com"), 0, "-qR");
    ok(o.mode == SM_FLUSH && strcmp(o.flush_domain, "example.com") == 0, "flush a domain");
    is_int(PARSE("-q15m"), 0, "-q15m");
    ok(o.mode == SM_IGNORE_Q && o.nnotes == 1, "interval ignored with a note");
    is_int(PARSE("-bd"), -1, "-bd refused");
    ok(strstr(o.err, "master") != NULL, "and says where the daemon is: %s", o.err);
    is_int(PARSE("-bv", "a@x", "root"), 0, "-bv with addresses");
    ok(o.mode == SM_VERIFY && o.nrcpts == 2, "verify mode, two addresses");
    is_int(PARSE("-bv"), -1, "-bv without an address refused");
    is_int(PARSE("-bx"), -1, "-bx refused");
    is_int(PARSE("-bp", "extra"), -1, "mailq takes no argument");
}

static void t_dsn(void)
{
    is_int(PARSE("-N", "success,failure", "a@x"), 0, "-N list");
    is_int(o.notify, SM_NOTIFY_SUCCESS | SM_NOTIFY_FAILURE, "bits");
    is_int(PARSE("-Nnever", "a@x"), 0, "-Nnever");
    is_int(o.notify, SM_NOTIFY_NEVER, "never");
    is_int(PARSE("-N", "never,success", "a@x"), -1, "never with others refused");
    is_int(PARSE("-N", "sometimes", "a@x"), -1, "unknown keyword refused");
    is_int(PARSE("-N", "success,,delay", "a@x"), -1, "empty keyword refused");
    is_int(PARSE("-R", "hdrs", "a@x"), 0, "-R hdrs");
    is_str(o.ret, "HDRS", "RET=HDRS");
    is_int(PARSE("-R", "all", "a@x"), -1, "-R other refused");
    is_int(PARSE("-V", "abc-123", "a@x"), 0, "-V");
    is_str(o.envid, "abc-123", "envid");
    is_int(PARSE("-V", "has space", "a@x"), -1, "-V with a blank refused");
    is_int(PARSE("-B", "7bit", "a@x"), 0, "-B 7bit");
    is_str(o.body, "7BIT", "7BIT");
    is_int(PARSE("-B", "binarymime", "a@x"), -1, "-B other refused");
}

static void t_notes_errors(void)
{
    is_int(PARSE("-oQ/var/spool/x", "-O", "Timeout=5", "a@x"), 0, "unknown -o and -O");
    is_int(o.nnotes, 2, "two notes");
    ok(o.nnotes == 2 && strcmp(o.notes[0], "-oQ/var/spool/x") == 0, "the word is noted");
    is_int(PARSE("-Z", "a@x"), -1, "unknown option");
    is_str(o.err, "unknown option -Z", "named");
    is_int(PARSE("-tZ"), -1, "unknown option in a group");
    is_int(PARSE("-f"), -1, "-f without argument");
    is_str(o.err, "option -f needs an argument", "named");
    is_int(PARSE("-i"), -1, "no recipients and no -t");
    ok(strstr(o.err, "no recipients") != NULL, "says why");
    is_int(PARSE("-t"), 0, "-t alone is fine");
    is_int(PARSE("--help"), -1, "--help is not an option here");
}

int main(void)
{
    plan_lazy();
    t_common();
    t_sender();
    t_modes();
    t_dsn();
    t_notes_errors();
    return done_testing();
}
