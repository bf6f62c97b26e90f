/*
 * libFuzzer target: the IMSG_SECRETS and IMSG_GATEWAY_AUTH bodies
 * (common/mail/secrets.c) on arbitrary bytes. A body that decodes must
 * encode back to as many bytes (names are lower-cased on the way in,
 * which keeps their length).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/ipc.h"
#include "mail/secrets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct secrets *s = secrets_decode(data, size);
    char **names = secrets_decode_names(data, size);

    if (s) {
        struct ipc_w w;
        ipc_w_init(&w);
        secrets_encode(&w, s);
        if (w.len != size)
            __builtin_trap();
        ipc_w_free(&w);
        secrets_free(s);
    }
    for (char **p = names; p && *p; p++)
        free(*p);
    free(names);
    return 0;
}
