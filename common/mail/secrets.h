/*
 * secrets - the relay gateways' AUTH credentials (relay_secrets_map,
 * "gateway user password" lines compiled by `smtpctl makemap`), held in
 * memory by relay and by no other daemon.
 *
 * Who holds them (docs/architecture.md, privilege separation): relay
 * loads the map itself at start, as root before it drops privileges and
 * chroots into the empty directory; on `smtpctl reload` master (root)
 * loads it again and sends it to relay alone (IMSG_SECRETS, allowed on
 * the master-to-relay edge only). The map stays where the admin put it,
 * mode 0600, and is never copied into the spool. qmgr sends gateway
 * names; relay fills in the credentials for each host of a delivery. All
 * qmgr learns is which gateways have credentials (IMSG_GATEWAY_AUTH, for
 * `smtpctl show relays`).
 *
 * secrets_load(path): path is the map's source name (".db" is added). An
 * empty path or a map never compiled gives an empty table; a map that
 * cannot be read (corrupt, mode too open) is an error and *out is left
 * alone, so the caller keeps the credentials it has. An entry with no
 * password is skipped with a warning naming the gateway.
 *
 * Layouts:
 *   IMSG_SECRETS       u32 n, n x (str gateway, str user, str password)
 *   IMSG_GATEWAY_AUTH  u32 n, n x str gateway
 * Passwords are wiped from memory when a table is freed.
 */
#ifndef POSTERN_SECRETS_H
#define POSTERN_SECRETS_H

#include <stddef.h>

#include "base/ipc.h"

struct secrets;

int secrets_load(const char *path, struct secrets **out, char **err);
/* 1 and the (borrowed) user and password when gateway has credentials. */
int secrets_get(const struct secrets *s, const char *gateway, const char **user, const char **pass);
size_t secrets_count(const struct secrets *s);
void secrets_encode(struct ipc_w *w, const struct secrets *s);
/* NULL when the body is malformed. */
struct secrets *secrets_decode(const void *body, size_t len);
void secrets_encode_names(struct ipc_w *w, const struct secrets *s);
/* The names of an IMSG_GATEWAY_AUTH body: a NULL-terminated array (free
 * each and the array), or NULL when malformed. */
char **secrets_decode_names(const void *body, size_t len);
void secrets_free(struct secrets *s);

#endif
