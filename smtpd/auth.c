/*
 * auth - AUTH credential checks with crypt(3), and the thread that runs
 * them for smtpd (see auth.h).
 */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "base/map.h"
#include "base/util.h"

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

int auth_lookup(struct map *users, const char *user, char **hash, char **err)
{
    char *val = NULL;

    *hash = NULL;
    if (map_get(users, user, &val, err) < 0)
        return -1;
    if (val) {
        val[strcspn(val, " \t")] = '\0'; /* the first word is the hash */
        if (!auth_hash_ok(val)) {
            free(val);
            val = NULL;
        }
    }
    *hash = val;
    return 0;
}

int auth_verify(const char *pass, const char *hash)
{
    struct crypt_data *cd = xcalloc(1, sizeof(*cd)); /* large: not on the stack */
    const char *out = crypt_r(pass, hash ? hash : DUMMY_SETTING, cd);
    int good = 0;

    if (hash && out && out[0] != '*' && strlen(out) == strlen(hash) &&
        CRYPTO_memcmp(out, hash, strlen(hash)) == 0)
        good = 1;
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return good;
}

int auth_check(struct map *users, const char *user, const char *pass, char **err)
{
    char *hash;
    int good;

    if (auth_lookup(users, user, &hash, err) < 0)
        return -1;
    good = auth_verify(pass, hash);
    free(hash);
    return good;
}

/* ---- the AUTH thread ---- */

struct auth_job {
    TAILQ_ENTRY(auth_job) link;
    char *pass;
    size_t pass_len;
    char *hash;
    void *arg;
    int result;
};

TAILQ_HEAD(auth_jobs, auth_job);

struct auth_pool {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct auth_jobs todo, done; /* guarded by mu */
    int quit;
    int efd;
    struct event *ev;
    auth_done_fn cb;
};

static void job_free(struct auth_job *j)
{
    OPENSSL_cleanse(j->pass, j->pass_len);
    free(j->pass);
    free(j->hash);
    free(j);
}

static void *auth_main(void *arg)
{
    struct auth_pool *p = arg;
    struct auth_job *j;
    sigset_t all;
    uint64_t one = 1;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (TAILQ_EMPTY(&p->todo) && !p->quit)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        j = TAILQ_FIRST(&p->todo);
        TAILQ_REMOVE(&p->todo, j, link);
        pthread_mutex_unlock(&p->mu);
        j->result = auth_verify(j->pass, j->hash);
        OPENSSL_cleanse(j->pass, j->pass_len);
        pthread_mutex_lock(&p->mu);
        TAILQ_INSERT_TAIL(&p->done, j, link);
        if (write(p->efd, &one, sizeof(one)) < 0) {
            /* cannot overflow: the loop reads it down */
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct auth_pool *p = arg;
    struct auth_jobs done;
    struct auth_job *j;
    uint64_t v;

    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: woken for jobs already taken */
    }
    TAILQ_INIT(&done);
    pthread_mutex_lock(&p->mu);
    TAILQ_CONCAT(&done, &p->done, link);
    pthread_mutex_unlock(&p->mu);
    while ((j = TAILQ_FIRST(&done)) != NULL) {
        TAILQ_REMOVE(&done, j, link);
        p->cb(j->arg, j->result);
        job_free(j);
    }
}

struct auth_pool *auth_pool_new(struct event_base *base, auth_done_fn done, char **err)
{
    struct auth_pool *p = xcalloc(1, sizeof(*p));
    int r;

    TAILQ_INIT(&p->todo);
    TAILQ_INIT(&p->done);
    p->cb = done;
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        *err = xasprintf("auth: eventfd: %s", strerror(errno));
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_done, p);
    event_add(p->ev, NULL);
    if ((r = pthread_create(&p->th, NULL, auth_main, p)) != 0) {
        *err = xasprintf("auth: cannot start the AUTH thread: %s", strerror(r));
        event_free(p->ev);
        close(p->efd);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return NULL;
    }
    return p;
}

void auth_pool_submit(struct auth_pool *p, const char *pass, char *hash, void *arg)
{
    struct auth_job *j = xcalloc(1, sizeof(*j));

    j->pass_len = strlen(pass) + 1;
    j->pass = xmalloc(j->pass_len);
    memcpy(j->pass, pass, j->pass_len);
    j->hash = hash;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    TAILQ_INSERT_TAIL(&p->todo, j, link);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void auth_pool_free(struct auth_pool *p)
{
    struct auth_job *j;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    while ((j = TAILQ_FIRST(&p->todo)) != NULL) {
        TAILQ_REMOVE(&p->todo, j, link);
        job_free(j);
    }
    while ((j = TAILQ_FIRST(&p->done)) != NULL) {
        TAILQ_REMOVE(&p->done, j, link);
        job_free(j);
    }
    event_free(p->ev);
    close(p->efd);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
