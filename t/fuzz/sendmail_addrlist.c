/*
 * libFuzzer target: sendmail's RFC 5322 address-list parser (To:, Cc:,
 * Bcc: values with -t) on arbitrary bytes. Every address it accepts must
 * format back to text that parses again to the same address.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../sendmail/addrlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct addrlist l, again;
    const char *why = NULL;
    size_t where = 0;

    addrlist_init(&l);
    if (addrlist_parse(&l, (const char *)data, size, 1000, &why, &where) == 0) {
        if (l.n > 1000)
            __builtin_trap();
        for (size_t i = 0; i < l.n; i++) {
            char *text = addr_format(&l.v[i], "example.test");
            addrlist_init(&again);
            if (addrlist_parse(&again, text, strlen(text), 10, &why, &where) != 0 || again.n != 1)
                __builtin_trap();
            if (strcmp(again.v[0].local, l.v[i].local) != 0)
                __builtin_trap();
            addrlist_free(&again);
            free(text);
        }
    } else if (where > size) {
        __builtin_trap();
    }
    addrlist_free(&l);
    return 0;
}
