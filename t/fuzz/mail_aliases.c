/*
 * libFuzzer target: the aliases(5) reader (common/mail/aliases.c) on
 * arbitrary bytes, as an aliases file and as a .forward / :include:
 * list. Every target an entry gives must be non-empty and classify
 * (alias_target) with an absolute path for files and includes; every
 * list must split back from its '\n'-joined compiled form unchanged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "mail/aliases.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_entry(const char *name, char *const *targets, size_t n, size_t line, void *arg)
{
    struct buf joined;
    char **back;

    if (name[0] == '\0' || n == 0 || line == 0)
        __builtin_trap();
    buf_init(&joined);
    for (size_t i = 0; i < n; i++) {
        char *rest = NULL;
        enum alias_kind k = alias_target(targets[i], &rest);
        if (targets[i][0] == '\0' || ((k == AK_FILE || k == AK_INCLUDE) && rest[0] != '/'))
            __builtin_trap();
        free(rest);
        if (i)
            buf_addc(&joined, '\n');
        buf_adds(&joined, targets[i]);
    }
    back = aliases_split(joined.data, joined.len);
    for (size_t i = 0; i < n; i++)
        if (back[i] == NULL || strcmp(back[i], targets[i]) != 0)
            __builtin_trap();
    if (back[n] != NULL)
        __builtin_trap();
    aliases_free_list(back);
    buf_free(&joined);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *err = NULL;
    char **list;

    if (aliases_parse((const char *)data, size, "fuzz", check_entry, NULL, &err) < 0 && err == NULL)
        __builtin_trap();
    free(err);
    err = NULL;
    list = aliases_parse_list((const char *)data, size, "fuzz", &err);
    if (list == NULL && err == NULL)
        __builtin_trap();
    aliases_free_list(list);
    free(err);
    return 0;
}
