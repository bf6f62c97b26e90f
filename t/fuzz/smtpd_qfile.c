/*
 * Fuzz target for the queue file parser (common/mail/qfile.c) as qmgr uses it
 * on files found in queue/: any input either parses into a consistent
 * envelope (message section inside the file, ids valid, recipients
 * present) or is refused with a message; nothing else may happen.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/qfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qfile_env env;
    char *err = NULL;
    int r = qfile_parse((const char *)data, size, size, &env, &err);

    if (r == 0) {
        if (err != NULL || env.nrcpt == 0 || !qfile_id_valid(env.id) ||
            env.msg_offset + env.size != size || env.sender == NULL || env.client_addr == NULL)
            abort();
        for (size_t i = 0; i < env.nrcpt; i++)
            if (env.rcpt[i].addr == NULL || env.rcpt[i].addr[0] == '\0')
                abort();
        qfile_env_free(&env);
    } else if (r == -1) {
        if (err == NULL)
            abort();
        free(err);
    } else {
        abort(); /* the whole file was given: "need more" is impossible */
    }
    return 0;
}
