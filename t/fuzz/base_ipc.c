/*
 * libFuzzer target: the IPC frame decoder and body reader on arbitrary
 * bytes. Decodes frames back to back as a channel would, and reads each
 * body as a sequence of typed fields chosen by the body's own bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    while (off < size) {
        struct ipc_frame fr;
        size_t used = 0;
        const char *why = NULL;
        enum ipc_decode_result r = ipc_decode(data + off, size - off, &fr, &used, &why);
        if (r != IPC_DEC_OK)
            break;
        if (used < IPC_HDR_LEN || used > size - off || fr.len != used - IPC_HDR_LEN)
            __builtin_trap();
        struct ipc_r rd;
        ipc_r_init(&rd, fr.body, fr.len);
        for (size_t i = 0; i < fr.len && ipc_r_ok(&rd); i++) {
            size_t n;
            switch (fr.body[i] % 5) {
            case 0:
                (void)ipc_r_u32(&rd);
                break;
            case 1: {
                const char *s = ipc_r_str(&rd);
                if (strlen(s) > fr.len)
                    __builtin_trap();
                break;
            }
            case 2:
                (void)ipc_r_bytes(&rd, &n);
                if (n > fr.len)
                    __builtin_trap();
                break;
            case 3:
                (void)ipc_r_u64(&rd);
                break;
            default:
                (void)ipc_r_u8(&rd);
            }
        }
        off += used;
    }
    return 0;
}
