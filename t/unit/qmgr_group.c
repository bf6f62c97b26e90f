/*
 * qmgr_group - unit tests of grouping recipients by domain
 * (qmgr/group.c) and of qmgr's string hash table (qmgr/strmap.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../qmgr/group.h"
#include "../../qmgr/strmap.h"
#include "tap.h"

#define S(x) ((char *)(uintptr_t)(x))

static void free_doms(char **d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(d[i]);
    free(d);
}

int main(void)
{
    char **doms;
    uint32_t g[8];
    size_t n;

    plan_lazy();
    is_str(addr_domain("a@b.test"), "b.test", "domain of a@b.test");
    is_str(addr_domain("\"x@y\"@c.test"), "c.test", "quoted local part with @: last @ wins");
    is_str(addr_domain("postmaster"), "", "no @: empty domain");

    char *a1[] = {S("a@x.test"), S("b@y.test"), S("c@X.TEST"),
                  S("d@y.test"), S("e@z.test"), S("f@x.test")};
    n = group_by_domain(a1, 6, g, &doms);
    is_int(n, 3, "two domains with several recipients and one single: 3 groups");
    is_str(doms[0], "x.test", "first group: first domain seen, lower-cased");
    is_str(doms[1], "y.test", "second group");
    is_str(doms[2], "z.test", "third group");
    ok(g[0] == 0 && g[2] == 0 && g[5] == 0, "x.test recipients in group 0 (case-insensitive)");
    ok(g[1] == 1 && g[3] == 1, "y.test recipients in group 1");
    is_int(g[4], 2, "z.test recipient in group 2");
    free_doms(doms, n);

    char *a2[] = {S("only@one.test")};
    n = group_by_domain(a2, 1, g, &doms);
    is_int(n, 1, "one recipient: one group");
    is_int(g[0], 0, "in group 0");
    free_doms(doms, n);

    /* many domains: the hash table path */
    enum { M = 3000 };
    char **many = calloc(M, sizeof(*many));
    uint32_t *gi = calloc(M, sizeof(*gi));
    for (int i = 0; i < M; i++) {
        char b[64];
        snprintf(b, sizeof(b), "u%d@d%d.test", i, i % 1000);
        many[i] = strdup(b);
    }
    n = group_by_domain(many, M, gi, &doms);
    is_int(n, 1000, "3000 recipients at 1000 domains: 1000 groups");
    int okg = 1;
    for (int i = 0; i < M; i++) {
        char b[32];
        snprintf(b, sizeof(b), "d%d.test", i % 1000);
        if (strcmp(doms[gi[i]], b) != 0)
            okg = 0;
    }
    ok(okg, "every recipient in its domain's group");
    ok(gi[0] == gi[1000] && gi[1000] == gi[2000], "same domain far apart: same group");
    free_doms(doms, n);
    for (int i = 0; i < M; i++)
        free(many[i]);
    free(many);
    free(gi);

    /* strmap */
    struct strmap *m = strmap_new();
    int vals[5000];
    for (int i = 0; i < 5000; i++) {
        char k[32];
        snprintf(k, sizeof(k), "key%d", i);
        vals[i] = i;
        if (strmap_put(m, k, &vals[i]) != NULL)
            break;
    }
    is_int(strmap_count(m), 5000, "5000 keys inserted");
    ok(strmap_get(m, "key1234") == &vals[1234], "lookup after growth");
    ok(strmap_get(m, "nope") == NULL, "missing key: NULL");
    ok(strmap_put(m, "key7", &vals[8]) == &vals[7], "replace returns the old value");
    ok(strmap_del(m, "key7") == &vals[8], "delete returns the value");
    ok(strmap_get(m, "key7") == NULL, "deleted key is gone");
    is_int(strmap_count(m), 4999, "count after delete");
    size_t pos = 0, seen = 0;
    const char *k;
    void *v;
    long sum = 0;
    while (strmap_next(m, &pos, &k, &v)) {
        seen++;
        sum += *(int *)v;
    }
    is_int(seen, 4999, "iteration visits every entry once");
    is_int(sum, 4999L * 5000 / 2 - 7, "... with every value");
    strmap_free(m);
    return done_testing();
}
