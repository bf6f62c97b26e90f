/*
 * local_rcpt - which addresses are this host's (mydestination) and
 * whether such an address has somewhere to go: an alias, a user of the
 * password database, or postmaster (RFC 5321 4.5.1: always).
 *
 * smtpd asks at RCPT (it runs chrooted and cannot read /etc/passwd):
 * master makes the map of local user names (local_users_build, key the
 * lower-cased login name) into the spool at start, on reload and when
 * /etc/passwd changes, and copies the compiled aliases beside it
 * (spool.h). local itself asks the password database at delivery.
 *
 *   local_domain(cfg, domain)   1 when domain is in mydestination (when
 *                               mydestination is not set and myhostname
 *                               is empty, the system's host name counts)
 *   local_part(addr)            the local part, lower-cased, without
 *                               quotes when it needs none (malloc'd)
 *   local_rcpt_check(...)       LR_REMOTE not ours; LR_OK known; LR_UNKNOWN
 *                               no such user (550 5.1.1); LR_ERROR a map
 *                               could not be read (451: try again)
 */
#ifndef POSTERN_LOCAL_RCPT_H
#define POSTERN_LOCAL_RCPT_H

#include "mail/config.h"

struct map;

enum lrcpt { LR_REMOTE = 0, LR_OK, LR_UNKNOWN, LR_ERROR };

int local_domain(const struct config *c, const char *domain);
char *local_part(const char *addr);
/* aliases, users: NULL when there is none (then only postmaster and,
 * without a users map, every name are taken). */
enum lrcpt local_rcpt_check(const struct config *c, struct map *aliases, struct map *users,
                            const char *addr);
/* newaliases: path (alias_maps when NULL) compiled, with the loop check
 * over mydestination; warnings to warn(). 0, or -1 and *err. */
int local_aliases_compile(const struct config *c, const char *path,
                          void (*warn)(const char *text, void *arg), void *arg, char **err);
/* The user names of the password database into path.db (0, or -1, *err). */
int local_users_build(const char *path, char **err);

#endif
