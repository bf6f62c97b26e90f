/*
 * ctl_cmds - the table of smtpctl's commands (ctl_cmds.def), and who
 * answers each.
 *
 * One row per form a user types: the first word, an optional second
 * word (the sub-command: "show queue"), the synopsis of the arguments,
 * the group and a one-line meaning. The group says who answers: smtpctl
 * itself (offline: no daemon needed), master, or the child that owns the
 * command (qmgr, dnsd, smtpd); CF_CLIENT marks a daemon command smtpctl
 * runs itself, talking to master as it goes.
 *
 * smtpctl uses the table for help, usage and to refuse an unknown command
 * before it looks for a daemon; master to route a request to its owner;
 * tools/docgen.c for smtpctl(8) and the bash completion. Pure data and
 * lookups: nothing here does I/O.
 */
#ifndef POSTERN_CTL_CMDS_H
#define POSTERN_CTL_CMDS_H

#include <stddef.h>

#define CF_CLIENT 0x1u

enum ctl_group {
    CTL_G_OFFLINE,
    CTL_G_DAEMON,
    CTL_G_QUEUE,
    CTL_G_DNS,
    CTL_G_INTAKE,
    CTL_G_DELIVERY,
    CTL_G__COUNT
};

enum ctl_cmd_id {
#define CMD(id, word, sub, args, group, flags, doc) CTL_CMD_##id,
#include "mail/ctl_cmds.def"
#undef CMD
    CTL_CMD__COUNT
};

struct ctl_cmd {
    enum ctl_cmd_id id;
    const char *word; /* "show" */
    const char *sub;  /* "queue", or NULL */
    const char *args; /* synopsis of what follows, "" for nothing */
    enum ctl_group group;
    unsigned flags; /* CF_* */
    const char *doc;
};

extern const struct ctl_cmd ctl_cmds[CTL_CMD__COUNT];

/* "offline", "daemon", "queue", "dns", "intake". */
const char *ctl_group_name(enum ctl_group g);
/* A heading for the group in help and man pages: "without a running daemon". */
const char *ctl_group_title(enum ctl_group g);
/* Who answers a command: "smtpctl", "master", "qmgr", "dnsd" or "smtpd". */
const char *ctl_cmd_owner(const struct ctl_cmd *c);

/*
 * The row argv[0] (and argv[1] when the word has sub-commands) names, or
 * NULL. A word that has sub-commands needs one of them ("show" alone, or
 * "show bogus", is unknown).
 */
const struct ctl_cmd *ctl_cmd_find(int argc, char *const *argv);
/* 1 when some row starts with this word. */
int ctl_cmd_word_known(const char *word);
/* 1 when the word's rows have sub-commands ("show", "dns", "pause"...). */
int ctl_cmd_word_has_subs(const char *word);

#endif
