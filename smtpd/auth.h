/*
 * auth - checking AUTH credentials against the users map (smtpd_users_map,
 * "user crypt-hash" lines compiled by `smtpctl makemap`).
 *
 * auth_check() looks the user up and compares crypt(3) of the password
 * with the stored hash in constant time. Only strong schemes are honoured
 * (yescrypt $y$ / $gy$ / $7$, sha512-crypt $6$, sha256-crypt $5$, bcrypt
 * $2b$ / $2y$); any other hash never matches. An unknown user costs a
 * crypt() all the same, so timing does not tell which users exist.
 * Returns 1 (good), 0 (bad), -1 (the map could not be read: a temporary
 * failure, *err says why).
 *
 * The two halves are also apart, for smtpd's AUTH thread: the lookup
 * (auth_lookup, in the event loop, which owns the map) and the crypt
 * (auth_verify, thread-safe: a yescrypt costs about 18 ms, far too long
 * for the loop that serves every session).
 *
 * auth_pool runs auth_verify in one thread: auth_pool_submit() queues a
 * job (the password is copied and wiped after use), and done(arg, result)
 * is called from the loop, woken by an eventfd, in submission order.
 */
#ifndef POSTERN_AUTH_H
#define POSTERN_AUTH_H

struct map;
struct event_base;

int auth_check(struct map *users, const char *user, const char *pass, char **err);
/* 1 if hash uses a scheme auth_check honours. */
int auth_hash_ok(const char *hash);

/* The stored hash of user (malloc'd), or NULL when the user is unknown or
 * its hash is not honoured: 0; -1 and *err when the map failed. */
int auth_lookup(struct map *users, const char *user, char **hash, char **err);
/* crypt(pass) against hash (NULL: a dummy of the same cost, never good). */
int auth_verify(const char *pass, const char *hash);

typedef void (*auth_done_fn)(void *arg, int result);
struct auth_pool;
struct auth_pool *auth_pool_new(struct event_base *base, auth_done_fn done, char **err);
/* hash: as from auth_lookup (taken over). */
void auth_pool_submit(struct auth_pool *p, const char *pass, char *hash, void *arg);
/* Waits for the job in progress; queued jobs are dropped without a call. */
void auth_pool_free(struct auth_pool *p);

#endif
