/*
 * opts - sendmail's command line, as Postfix's and Sendmail's users write
 * it. Pure: argv in, struct sm_opts out, nothing printed.
 *
 * Options take their argument glued or as the next word (getopt style):
 * "-fuser@x" = "-f user@x", "-oi" = "-o i"; flags can be grouped ("-ti").
 * Options end at "--" or at the first word that does not start with '-';
 * the remaining words are recipients.
 *
 *   -t            recipients from To:/Cc:/Bcc: (added to those given)
 *   -i, -oi       a line with a single "." does not end the message
 *   -f ADDR       envelope sender ("" or "<>": the null sender); -r too
 *   -F NAME       full name for an added From:
 *   -C DIR        configuration directory (or main.cf in it)
 *   -bm           send (the default); -bp list the queue (mailq);
 *   -bs           SMTP on stdin/stdout; -bi, -I: newaliases (alias_maps compiled)
 *   -q            flush the queue; -qRdomain flush one domain;
 *                 -q<interval> ignored (there is no queue runner to start)
 *   -N never|success,delay,failure    DSN NOTIFY for every recipient
 *   -R full|hdrs  DSN RET;  -V ENVID  DSN envelope id
 *   -B 7BIT|8BITMIME  body type (8BITMIME is also found by itself)
 *   -v            show the SMTP dialogue on stderr
 *   ignored silently: -odb -odi -odq -oem -oep -oeq -oew -om -o7 -o8 -m -n
 *                 -U -G -c -x, and -h N, -L LABEL, -A c|m, -X FILE
 *   ignored with a note: any other -oX and -O option=value
 *
 * Errors: opts_parse returns -1 with a message in o->err (exit 64).
 * Notes for ignored options are collected in o->notes.
 */
#ifndef POSTERN_SENDMAIL_OPTS_H
#define POSTERN_SENDMAIL_OPTS_H

#include <stddef.h>

enum sm_mode { SM_SEND, SM_MAILQ, SM_SMTP, SM_NEWALIASES, SM_FLUSH, SM_IGNORE_Q, SM_VERIFY };

#define SM_NOTIFY_NEVER 0x1u
#define SM_NOTIFY_SUCCESS 0x2u
#define SM_NOTIFY_FAILURE 0x4u
#define SM_NOTIFY_DELAY 0x8u

#define SM_NOTES_MAX 8

struct sm_opts {
    enum sm_mode mode;
    int extract;  /* -t */
    int dot_ends; /* without -i / -oi */
    int verbose;
    const char *sender;       /* -f / -r; NULL: the invoking user */
    const char *fullname;     /* -F */
    const char *confdir;      /* -C */
    const char *flush_domain; /* -qRdomain */
    unsigned notify;          /* SM_NOTIFY_*; 0: not given */
    const char *ret;          /* "FULL" / "HDRS" / NULL */
    const char *envid;        /* -V */
    const char *body;         /* "7BIT" / "8BITMIME" / NULL */
    char **rcpts;             /* points into argv */
    int nrcpts;
    const char *notes[SM_NOTES_MAX];
    int nnotes;
    char err[200];
};

/* prog: the basename argv[0] was invoked as ("mailq" means -bp). */
int opts_parse(struct sm_opts *o, const char *prog, int argc, char **argv);

#endif
