/*
 * smtpctl.h - the commands smtpctl runs itself (the offline group of
 * mail/ctl_cmds.def), shared between its modules. Each returns the exit
 * code: 0 ok, 1 the command failed, 2 usage error.
 */
#ifndef POSTERN_SMTPCTL_H
#define POSTERN_SMTPCTL_H

#include <stdio.h>

#include "mail/ctl_proto.h"

#define DEFAULT_CONFDIR "/etc/postern"

/* help.c: the usage text from the command table; help [COMMAND]. */
void usage_print(FILE *f);
int cmd_help(int argc, char **argv);

/* params.c: params [PARAM...] and config [-d] [PARAM...]; flags CTL_F_*. */
int cmd_params(unsigned flags, int argc, char **argv);
int cmd_config(const char *confdir, unsigned flags, int argc, char **argv);

/* resolve.c: one request to master over the control socket at path;
 * 0 with *rep (ctl_rep_free it), or -1 after saying why on stderr. */
int smtpctl_call(const char *path, unsigned flags, int argc, char **argv, int timeout_ms,
                 struct ctl_rep *rep);

/* dkim.c: dkim keygen (offline) and dkim check (asks dnsd through master
 * at the control socket of spool). */
int cmd_dkim_keygen(const char *confdir, int argc, char **argv);
int cmd_dkim_check(const char *confdir, const char *spool, unsigned flags, int argc, char **argv);

#endif
