/*
 * libFuzzer target: the IMSG_DKIM_KEYS and IMSG_DKIM_STATUS bodies
 * (common/mail/dkim_keys.c) on arbitrary bytes. A body that decodes is
 * a set whose status body (no key material) decodes again to as many
 * entries, with no key among them.
 */
#include <stddef.h>
#include <stdint.h>

#include "base/ipc.h"
#include "mail/dkim_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dkim_keys *k = dkim_keys_decode(data, size), *again;
    const struct dkim_entry *e[2];
    struct ipc_w w;

    if (k == NULL)
        return 0;
    (void)dkim_keys_find(k, "example.test", e);
    ipc_w_init(&w);
    dkim_keys_encode(&w, k, 0);
    again = dkim_keys_decode(w.p, w.len);
    if (again == NULL || again->n != k->n)
        __builtin_trap();
    for (size_t i = 0; i < again->n; i++)
        if (again->e[i].key != NULL)
            __builtin_trap();
    ipc_w_free(&w);
    dkim_keys_free(again);
    dkim_keys_free(k);
    return 0;
}
