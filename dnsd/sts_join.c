/*
 * sts_join - an MX lookup and an MTA-STS lookup in parallel, one answer
 * (contract in sts_join.h).
 */
#include "sts_join.h"

#include <stdlib.h>

#include "base/util.h"
#include "sts.h"

struct join {
    lookup_cb cb;
    void *arg;
    int pending;
    struct dns_result mx;  /* the MX set, copied when it comes */
    struct dns_result sts; /* holds the policy until both are in */
};

static struct sts *join_sts;

void sts_join_set(struct sts *s)
{
    join_sts = s;
}

static void join_release(struct join *j)
{
    const struct dns_sts *p = &j->sts.sts;

    if (--j->pending > 0)
        return;
    dns_result_set_sts(&j->mx, (enum dns_sts_state)p->state, (enum dns_sts_mode)p->mode, p->id,
                       p->max_age, (const char *const *)p->mx, p->nmx, p->reason);
    j->cb(&j->mx, j->arg);
    dns_result_free(&j->mx);
    dns_result_free(&j->sts);
    free(j);
}

static void join_mx(const struct dns_result *r, void *arg)
{
    struct join *j = arg;

    dns_result_free(&j->mx);
    dns_result_copy(&j->mx, r);
    join_release(j);
}

static void join_sts_done(const struct sts_answer *a, void *arg)
{
    struct join *j = arg;

    sts_answer_to_result(a, &j->sts);
    join_release(j);
}

void sts_join_wrap(const char *domain, unsigned flags, lookup_cb *cb, void **arg)
{
    struct join *j;

    if (!(flags & DNS_Q_STS) || join_sts == NULL)
        return;
    j = xcalloc(1, sizeof(*j));
    j->cb = *cb;
    j->arg = *arg;
    j->pending = 2;
    dns_result_init(&j->mx, domain);
    dns_result_init(&j->sts, domain);
    *cb = join_mx;
    *arg = j;
    sts_lookup(join_sts, domain, 0, join_sts_done, j);
}
