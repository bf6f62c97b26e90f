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
 */
#ifndef POSTERN_AUTH_H
#define POSTERN_AUTH_H

struct map;

int auth_check(struct map *users, const char *user, const char *pass, char **err);
/* 1 if hash uses a scheme auth_check honours. */
int auth_hash_ok(const char *hash);

#endif
