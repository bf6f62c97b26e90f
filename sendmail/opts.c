/*
 * opts - sendmail's command line (see opts.h).
 */
#include "opts.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"

static int bad(struct sm_opts *o, const char *fmt, const char *arg)
{
    snprintf(o->err, sizeof(o->err), fmt, arg);
    return -1;
}

static void note(struct sm_opts *o, const char *word)
{
    if (o->nnotes < SM_NOTES_MAX)
        o->notes[o->nnotes++] = word;
}

static int set_notify(struct sm_opts *o, const char *v)
{
    char w[16];
    const char *p = v;

    o->notify = 0;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(w))
            return bad(o, "-N %s: expected never, or success,delay,failure", v);
        memcpy(w, p, n);
        w[n] = '\0';
        if (ascii_casecmp(w, "never") == 0)
            o->notify |= SM_NOTIFY_NEVER;
        else if (ascii_casecmp(w, "success") == 0)
            o->notify |= SM_NOTIFY_SUCCESS;
        else if (ascii_casecmp(w, "failure") == 0)
            o->notify |= SM_NOTIFY_FAILURE;
        else if (ascii_casecmp(w, "delay") == 0)
            o->notify |= SM_NOTIFY_DELAY;
        else
            return bad(o, "-N %s: expected never, or success,delay,failure", v);
        p += n;
        if (*p == ',')
            p++;
    }
    if (o->notify == 0 || ((o->notify & SM_NOTIFY_NEVER) && o->notify != SM_NOTIFY_NEVER))
        return bad(o, "-N %s: expected never, or success,delay,failure", v);
    return 0;
}

static int set_envid(struct sm_opts *o, const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > 100)
        return bad(o, "-V %s: an envelope id is 1 to 100 characters", v);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 33 || (unsigned char)v[i] > 126)
            return bad(o, "-V %s: only printable ASCII without blanks", v);
    o->envid = v;
    return 0;
}

static int opt_o(struct sm_opts *o, const char *v, const char *word)
{
    if (strcmp(v, "i") == 0) {
        o->dot_ends = 0;
    } else if (*v && strchr("edm78", *v) != NULL) {
        /* delivery and error modes, "me too", 7/8 bit: nothing to do */
    } else {
        note(o, word);
    }
    return 0;
}

static int opt_b(struct sm_opts *o, const char *v)
{
    if (strcmp(v, "m") == 0)
        o->mode = SM_SEND;
    else if (strcmp(v, "p") == 0)
        o->mode = SM_MAILQ;
    else if (strcmp(v, "s") == 0)
        o->mode = SM_SMTP;
    else if (strcmp(v, "i") == 0)
        o->mode = SM_NEWALIASES;
    else if (strcmp(v, "v") == 0)
        o->mode = SM_VERIFY;
    else if (strcmp(v, "d") == 0 || strcmp(v, "D") == 0)
        return bad(o,
                   "-b%s: daemon mode is postern's master (postern-master, or systemctl "
                   "start postern)",
                   v);
    else
        return bad(o, "-b%s: mode not supported (supported: -bm, -bp, -bs, -bi, -bv)", v);
    return 0;
}

static int opt_q(struct sm_opts *o, const char *v, const char *word)
{
    if (*v == '\0') {
        o->mode = SM_FLUSH;
    } else if (*v == 'R' && v[1]) {
        o->mode = SM_FLUSH;
        o->flush_domain = v + 1;
    } else if (*v >= '0' && *v <= '9') {
        o->mode = SM_IGNORE_Q; /* a queue-runner interval: postern's qmgr always runs */
        note(o, word);
    } else {
        return bad(o, "-q%s: not supported (use -q, -qRdomain, or smtpctl flush)", v);
    }
    return 0;
}

/* An option that takes an argument. */
static int opt_arg(struct sm_opts *o, char c, const char *v, const char *word)
{
    switch (c) {
    case 'f':
    case 'r':
        o->sender = v;
        return 0;
    case 'F':
        o->fullname = v;
        return 0;
    case 'C':
        o->confdir = v;
        return 0;
    case 'N':
        return set_notify(o, v);
    case 'R':
        if (ascii_casecmp(v, "full") == 0)
            o->ret = "FULL";
        else if (ascii_casecmp(v, "hdrs") == 0)
            o->ret = "HDRS";
        else
            return bad(o, "-R %s: expected full or hdrs", v);
        return 0;
    case 'V':
        return set_envid(o, v);
    case 'B':
        if (ascii_casecmp(v, "7bit") == 0)
            o->body = "7BIT";
        else if (ascii_casecmp(v, "8bitmime") == 0)
            o->body = "8BITMIME";
        else
            return bad(o, "-B %s: expected 7BIT or 8BITMIME", v);
        return 0;
    case 'o':
        return opt_o(o, v, word);
    case 'O':
        note(o, word);
        return 0;
    case 'b':
        return opt_b(o, v);
    default: /* h L A X: hop count, log label, config choice, traffic log */
        return 0;
    }
}

static int is_arg_opt(char c)
{
    return strchr("frFCNRVBoObhLAX", c) != NULL;
}

int opts_parse(struct sm_opts *o, const char *prog, int argc, char **argv)
{
    int i;

    memset(o, 0, sizeof(*o));
    o->dot_ends = 1;
    if (strcmp(prog, "mailq") == 0)
        o->mode = SM_MAILQ;
    else if (strcmp(prog, "newaliases") == 0)
        o->mode = SM_NEWALIASES;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        for (int j = 1; a[j]; j++) {
            char c = a[j];
            if (c == 't') {
                o->extract = 1;
            } else if (c == 'i') {
                o->dot_ends = 0;
            } else if (c == 'v') {
                o->verbose = 1;
            } else if (c == 'I') {
                o->mode = SM_NEWALIASES;
            } else if (strchr("mnUGcx", c) != NULL) {
                /* obsolete or meaningless here */
            } else if (c == 'q') {
                if (opt_q(o, a + j + 1, a) < 0)
                    return -1;
                break;
            } else if (is_arg_opt(c)) {
                const char *v = a[j + 1] ? a + j + 1 : NULL;
                if (v == NULL && i + 1 >= argc)
                    return bad(o, "option -%s needs an argument", (char[]){c, '\0'});
                if (v == NULL)
                    v = argv[++i];
                if (opt_arg(o, c, v, a) < 0)
                    return -1;
                break;
            } else {
                return bad(o, "unknown option -%s", (char[]){c, '\0'});
            }
        }
    }
    o->rcpts = argv + i;
    o->nrcpts = argc - i;
    if (o->mode == SM_VERIFY && o->nrcpts == 0)
        return bad(o, "%s", "-bv: name the addresses to verify");
    if (o->mode != SM_SEND && o->mode != SM_SMTP && o->mode != SM_VERIFY && o->nrcpts > 0)
        return bad(o, "unexpected argument %s", o->rcpts[0]);
    if (o->mode == SM_SMTP && o->nrcpts > 0)
        return bad(o, "unexpected argument %s (-bs reads SMTP commands)", o->rcpts[0]);
    if (o->mode == SM_SEND && !o->extract && o->nrcpts == 0)
        return bad(o, "%s",
                   "no recipients given (name them, or use -t to take them from the "
                   "To:, Cc: and Bcc: headers)");
    return 0;
}
