/*
 * resolve - smtpctl route ADDRESS --resolve: qmgr's route plus dnsd's
 * answers for the hosts it names (resolve.c says how).
 */
#ifndef POSTERN_SMTPCTL_RESOLVE_H
#define POSTERN_SMTPCTL_RESOLVE_H

/* 1 when argv is "route ... --resolve". */
int resolve_wanted(int argc, char **argv);
/* Ask master (control socket in spool) and print; the exit code. */
int resolve_route(const char *spool, unsigned flags, int argc, char **argv);

/* smtpctl tls check DOMAIN: qmgr's route names the lookups (with the
 * TLS mode and port), deliver's "tls probe" does each (tls_probe.h).
 * Exit 0 when every lookup has a host that would take mail. */
int tls_check_run(const char *spool, unsigned flags, int argc, char **argv);

#endif
