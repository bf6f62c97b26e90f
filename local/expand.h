/*
 * expand - what one local recipient becomes: the aliases (and the
 * :include: files they name) followed to the end, as plain functions over
 * lookups the caller gives, so they are tested without files or users.
 *
 * lx_expand(src, addr, out) starts from addr's local part:
 *   - not an alias: the mailbox of that name (LX mailbox target);
 *   - an alias: each target in turn: a local address (no domain, or one
 *     src->is_local says is ours) is expanded again, except the alias's
 *     own name and \name, which are that mailbox; a remote address is
 *     kept (it is forwarded); /file and |command are kept with where they
 *     came from (alias or :include:) and the owner of that source (the
 *     aliases database's, or the :include: file's), for the caller's
 *     allow_mail_to_* and privilege decisions; :include:/path is read
 *     through src->include and its targets expanded in the same way.
 *   - postmaster that is no alias is root's (RFC 5321 4.5.1).
 * Targets come out once each (duplicates dropped), at most
 * LX_TARGETS_MAX. A name met again on the way down is an alias loop:
 * out->error "alias loop: a -> b -> a", permanent (5.4.6); deeper than
 * LX_DEPTH_MAX is one too. A lookup or :include: that fails is temporary
 * (4.3.0). Returns 0 when out->error is NULL.
 */
#ifndef LOCAL_EXPAND_H
#define LOCAL_EXPAND_H

#include <stddef.h>

#include "mail/aliases.h"

#define LX_DEPTH_MAX 20
#define LX_TARGETS_MAX 1000

enum lx_ctx { LX_CTX_ALIAS, LX_CTX_INCLUDE };

struct lx_target {
    enum alias_kind kind; /* AK_MAILBOX (a user name), AK_ADDR (remote), AK_FILE, AK_PIPE */
    char *text;           /* the user, the address, the path or the command */
    enum lx_ctx ctx;      /* file and command: where they were found */
    long owner;           /* and the uid of that source (-1: unknown) */
    char *via;            /* the alias that named it ("" for the recipient itself) */
};

struct lx_source {
    /* 1 and *targets (NULL-terminated, malloc'd), 0 not an alias, -1 and *err */
    int (*alias)(void *arg, const char *name, char ***targets, char **err);
    /* the targets of an :include: file and its owner's uid; NULL and *err */
    char **(*include)(void *arg, const char *path, long *owner, char **err);
    int (*is_local)(void *arg, const char *domain);
    long alias_owner; /* uid owning the aliases database */
    void *arg;
};

struct lx_result {
    struct lx_target *t;
    size_t n;
    char *error; /* NULL: expanded */
    int temporary;
};

int lx_expand(const struct lx_source *src, const char *addr, struct lx_result *out);
void lx_free(struct lx_result *r);

#endif
