/*
 * auth - AUTH credential checks with crypt(3) (see auth.h).
 */
#include "auth.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "map.h"
#include "util.h"

/* A sha512-crypt setting used for users that do not exist. */
#define DUMMY_SETTING "$6$rounds=5000$Pst3rnDummySalt$"

int auth_hash_ok(const char *h)
{
    static const char *const schemes[] = {"$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$"};

    for (size_t i = 0; i < nitems(schemes); i++)
        if (strncmp(h, schemes[i], strlen(schemes[i])) == 0)
            return 1;
    return 0;
}

int auth_check(struct map *users, const char *user, const char *pass, char **err)
{
    static struct crypt_data cd; /* large; one process, one thread */
    char *val = NULL, *hash;
    const char *out;
    int r, good = 0;

    r = map_get(users, user, &val, err);
    if (r < 0)
        return -1;
    hash = val;
    if (hash) {
        hash[strcspn(hash, " \t")] = '\0'; /* the first word is the hash */
        if (!auth_hash_ok(hash)) {
            free(val);
            val = hash = NULL;
        }
    }
    memset(&cd, 0, sizeof(cd));
    out = crypt_r(pass, hash ? hash : DUMMY_SETTING, &cd);
    if (hash && out && out[0] != '*' && strlen(out) == strlen(hash) &&
        CRYPTO_memcmp(out, hash, strlen(hash)) == 0)
        good = 1;
    memset(&cd, 0, sizeof(cd));
    free(val);
    return good;
}
