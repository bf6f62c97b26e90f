/*
 * group - grouping recipients by domain; see group.h. Few domains (the
 * usual case) are matched by a linear scan; past a handful a hash table
 * keeps 100,000-recipient messages linear in time.
 */
#include "group.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "base/util.h"

#define LINEAR_MAX 8

const char *addr_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at ? at + 1 : "";
}

size_t group_by_domain(char *const *addrs, size_t n, uint32_t *gidx, char ***domains)
{
    char **dom = NULL;
    size_t ng = 0, cap = 0;
    struct strmap *map = NULL;

    for (size_t i = 0; i < n; i++) {
        char *d = xstrdup(addr_domain(addrs[i]));
        size_t g = ng;
        ascii_lower(d);
        if (map) {
            void *v = strmap_get(map, d);
            if (v)
                g = (size_t)(uintptr_t)v - 1;
        } else {
            for (size_t k = 0; k < ng; k++)
                if (strcmp(dom[k], d) == 0) {
                    g = k;
                    break;
                }
        }
        if (g < ng) {
            free(d);
            gidx[i] = (uint32_t)g;
            continue;
        }
        if (ng == cap) {
            cap = cap ? cap * 2 : 4;
            dom = xrealloc(dom, cap * sizeof(*dom));
        }
        dom[ng] = d;
        gidx[i] = (uint32_t)ng;
        ng++;
        if (map)
            strmap_put(map, d, (void *)(uintptr_t)ng);
        else if (ng > LINEAR_MAX) {
            map = strmap_new();
            for (size_t k = 0; k < ng; k++)
                strmap_put(map, dom[k], (void *)(uintptr_t)(k + 1));
        }
    }
    strmap_free(map);
    *domains = dom;
    return ng;
}
