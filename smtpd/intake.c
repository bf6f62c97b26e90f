/*
 * intake - admission, rates and deadlines of SMTP sessions; see intake.h.
 */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "intake.h"

struct intake_client {
    struct intake_client *next;                /* hash chain */
    struct intake_client *lru_prev, *lru_next; /* least recently seen first */
    char addr[64];
    unsigned sessions;
    int64_t conn_sec[INTAKE_RATE_SLOTS]; /* the second each bucket counts */
    unsigned conn_n[INTAKE_RATE_SLOTS];
    int64_t msg_sec[INTAKE_RATE_SLOTS];
    unsigned msg_n[INTAKE_RATE_SLOTS];
};

static unsigned hash(const char *s, unsigned n)
{
    unsigned h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % n;
}

void intake_init(struct intake *in, const struct intake_limits *l)
{
    memset(in, 0, sizeof(*in));
    in->l = *l;
    in->nbuckets = 4096;
    in->tab = xcalloc(in->nbuckets, sizeof(*in->tab));
}

void intake_set_limits(struct intake *in, const struct intake_limits *l)
{
    in->l = *l;
}

void intake_free(struct intake *in)
{
    struct intake_client *c, *next;

    for (c = in->lru_head; c; c = next) {
        next = c->lru_next;
        free(c);
    }
    free(in->tab);
    memset(in, 0, sizeof(*in));
}

static void lru_unlink(struct intake *in, struct intake_client *c)
{
    if (c->lru_prev)
        c->lru_prev->lru_next = c->lru_next;
    else
        in->lru_head = c->lru_next;
    if (c->lru_next)
        c->lru_next->lru_prev = c->lru_prev;
    else
        in->lru_tail = c->lru_prev;
    c->lru_prev = c->lru_next = NULL;
}

static void lru_touch(struct intake *in, struct intake_client *c)
{
    if (c->lru_prev != NULL || in->lru_head == c) /* linked already */
        lru_unlink(in, c);
    c->lru_prev = in->lru_tail;
    if (in->lru_tail)
        in->lru_tail->lru_next = c;
    else
        in->lru_head = c;
    in->lru_tail = c;
}

static void drop(struct intake *in, struct intake_client *c)
{
    struct intake_client **pp = &in->tab[hash(c->addr, in->nbuckets)];

    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    lru_unlink(in, c);
    in->nclients--;
    free(c);
}

static struct intake_client *find(const struct intake *in, const char *addr)
{
    struct intake_client *c;

    for (c = in->tab[hash(addr, in->nbuckets)]; c; c = c->next)
        if (strcmp(c->addr, addr) == 0)
            return c;
    return NULL;
}

static struct intake_client *get(struct intake *in, const char *addr)
{
    struct intake_client *c = find(in, addr);
    unsigned h;

    if (c) {
        lru_touch(in, c);
        return c;
    }
    /* Full: forget the least recently seen address without a session. */
    if (in->nclients >= INTAKE_MAX_CLIENTS) {
        struct intake_client *old = in->lru_head;
        while (old && old->sessions > 0)
            old = old->lru_next;
        if (old)
            drop(in, old);
    }
    c = xcalloc(1, sizeof(*c));
    strlcpy_p(c->addr, addr, sizeof(c->addr));
    h = hash(c->addr, in->nbuckets);
    c->next = in->tab[h];
    in->tab[h] = c;
    in->nclients++;
    lru_touch(in, c);
    return c;
}

/* Events of the last minute in a ring of one-second buckets. */
static unsigned rate_count(const int64_t *sec, const unsigned *n, int64_t now)
{
    unsigned total = 0;

    for (int i = 0; i < INTAKE_RATE_SLOTS; i++)
        if (sec[i] > now - INTAKE_RATE_SLOTS && sec[i] <= now)
            total += n[i];
    return total;
}

static void rate_add(int64_t *sec, unsigned *n, int64_t now)
{
    int i = (int)(((now % INTAKE_RATE_SLOTS) + INTAKE_RATE_SLOTS) % INTAKE_RATE_SLOTS);

    if (sec[i] != now) {
        sec[i] = now;
        n[i] = 0;
    }
    n[i]++;
}

int intake_stressed(const struct intake *in)
{
    return in->l.max_sessions > 0 && in->nsessions * 4 >= in->l.max_sessions * 3;
}

static unsigned per_client_limit(const struct intake *in)
{
    unsigned share;

    if (!intake_stressed(in))
        return in->l.max_per_client;
    share = in->l.max_per_client / 10;
    return share ? share : 1;
}

int intake_admit(struct intake *in, const char *addr, int64_t now_s, const char **why)
{
    struct intake_client *c;
    unsigned limit;

    if (in->nsessions >= in->l.max_sessions) {
        in->refused_busy++;
        *why = "too many sessions";
        return -1;
    }
    c = get(in, addr);
    rate_add(c->conn_sec, c->conn_n, now_s);
    if (in->l.conn_rate && rate_count(c->conn_sec, c->conn_n, now_s) > in->l.conn_rate) {
        in->refused_rate++;
        *why = "too many connections per minute from your address";
        return -1;
    }
    limit = per_client_limit(in);
    if (c->sessions >= limit) {
        in->refused_client++;
        *why = intake_stressed(in) ? "too many sessions from your address while the server is busy"
                                   : "too many sessions from your address";
        return -1;
    }
    c->sessions++;
    in->nsessions++;
    return 0;
}

void intake_release(struct intake *in, const char *addr)
{
    struct intake_client *c = find(in, addr);

    if (c == NULL || c->sessions == 0)
        return;
    c->sessions--;
    in->nsessions--;
}

int intake_message(struct intake *in, const char *addr, int64_t now_s, const char **why)
{
    struct intake_client *c;

    if (in->l.msg_rate == 0)
        return 0;
    c = get(in, addr);
    if (rate_count(c->msg_sec, c->msg_n, now_s) >= in->l.msg_rate) {
        in->refused_msg_rate++;
        *why = "too many messages per minute from your address";
        return -1;
    }
    rate_add(c->msg_sec, c->msg_n, now_s);
    return 0;
}

int intake_timeout(const struct intake *in, int normal_s)
{
    return intake_stressed(in) && normal_s > STRESS_TIMEOUT_S ? STRESS_TIMEOUT_S : normal_s;
}

int64_t intake_data_deadline(const struct intake *in, int64_t start_us, uint64_t n, int timeout_s)
{
    int64_t base = start_us + (int64_t)intake_timeout(in, timeout_s) * 1000000;

    if (in->l.min_data_rate == 0)
        return INT64_MAX;
    return base + (int64_t)(n * 1000000 / in->l.min_data_rate);
}

unsigned intake_sessions_of(const struct intake *in, const char *addr)
{
    const struct intake_client *c = find(in, addr);

    return c ? c->sessions : 0;
}

unsigned intake_listed(const struct intake *in)
{
    unsigned n = 0;

    for (const struct intake_client *c = in->lru_head; c; c = c->lru_next)
        n++;
    return n;
}
