/*
 * smtpd_auth - unit tests of the credential check (smtpd/auth.c):
 * auth_verify against yescrypt and sha512-crypt hashes, refused weak and
 * missing hashes, and the AUTH thread: jobs come back through the event
 * loop in submission order with the right verdicts, and freeing the pool
 * drops jobs still queued without calling back.
 */
#include <crypt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../../smtpd/auth.h"
#include "tap.h"

static int results[16];
static int order[16];
static int ndone;

static void on_done(void *arg, int result)
{
    int i = (int)(intptr_t)arg;

    if (ndone < 16) {
        order[ndone++] = i;
        results[i] = result;
    }
}

int main(void)
{
    struct crypt_data cd;
    char y[256], six[256], weak[256];
    struct event_base *base = event_base_new();
    struct auth_pool *p;
    char *err = NULL;

    plan_lazy();
    memset(&cd, 0, sizeof(cd));
    strcpy(y, crypt_r("s3cret", "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$", &cd));
    strcpy(six, crypt_r("other", "$6$Qw3rTy8uIoP$", &cd));
    strcpy(weak, crypt_r("weak", "ab", &cd));

    ok(auth_hash_ok(y) && auth_hash_ok(six), "yescrypt and sha512-crypt are honoured");
    ok(!auth_hash_ok(weak), "DES crypt is not");
    is_int(auth_verify("s3cret", y), 1, "right password, yescrypt");
    is_int(auth_verify("s3cre", y), 0, "wrong password, yescrypt");
    is_int(auth_verify("other", six), 1, "right password, sha512-crypt");
    is_int(auth_verify("", six), 0, "empty password");
    is_int(auth_verify("anything", NULL), 0, "no hash (unknown user) never matches");

    p = auth_pool_new(base, on_done, &err);
    ok(p != NULL, "AUTH thread started");
    auth_pool_submit(p, "s3cret", strdup(y), (void *)(intptr_t)0);
    auth_pool_submit(p, "nope", strdup(y), (void *)(intptr_t)1);
    auth_pool_submit(p, "other", strdup(six), (void *)(intptr_t)2);
    auth_pool_submit(p, "other", NULL, (void *)(intptr_t)3);
    is_int(ndone, 0, "nothing is called back before the loop runs");
    for (int i = 0; i < 500 && ndone < 4; i++) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    is_int(ndone, 4, "four verdicts came back through the loop");
    ok(order[0] == 0 && order[1] == 1 && order[2] == 2 && order[3] == 3, "in submission order");
    is_int(results[0], 1, "job 0: good");
    is_int(results[1], 0, "job 1: bad password");
    is_int(results[2], 1, "job 2: good");
    is_int(results[3], 0, "job 3: unknown user");

    /* jobs still queued at free are dropped, never called back */
    ndone = 0;
    for (int i = 0; i < 8; i++)
        auth_pool_submit(p, "s3cret", strdup(y), (void *)(intptr_t)i);
    auth_pool_free(p);
    is_int(ndone, 0, "freeing the pool calls nothing back");

    event_base_free(base);
    return done_testing();
}
