/*
 * ctl - one control request to postern's master (mailq, sendmail -q);
 * see ctl.c, over the shared client mail/ctl_client.h. Prints the answer
 * (stdout) or the problem (stderr, prefixed by prog); returns 0 on
 * success, 1 otherwise.
 */
#ifndef POSTERN_SENDMAIL_CTL_H
#define POSTERN_SENDMAIL_CTL_H

int ctl_run(const char *prog, const char *spool, int argc, const char *const *argv);

#endif
