/*
 * Fuzz target for smtpd's DATA decoder (smtpd/data_dec.c).
 *
 * 1. Round trip: any message encoded for DATA by the client's encoder
 *    (common/smtp_reply.c: CR LF line ends, dots doubled, ".\r\n" end)
 *    must decode to exactly the encoder's normalized message, end exactly
 *    at the end, with no error.
 * 2. Raw input in both bare-newline modes, fed in two pieces: DATA may
 *    only end right after the bytes CR LF "." CR LF (or ".\r\n" at the
 *    very start); normalize mode's output has only CR LF line ends.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../smtpd/data_dec.h"
#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const char *in, size_t n)
{
    struct smtp_dotstuff ds;
    struct buf enc, dec, want;
    struct data_dec d;
    size_t used;

    buf_init(&enc);
    buf_init(&dec);
    buf_init(&want);
    smtp_dotstuff_init(&ds);
    smtp_dotstuff_add(&ds, in, n, &enc);
    smtp_dotstuff_end(&ds, &enc);
    /* The expected message: the encoded stream without the end line, unstuffed. */
    for (size_t i = 0, bol = 1; i + 3 < enc.len; i++) {
        if (bol && enc.data[i] == '.')
            i++;
        buf_addc(&want, enc.data[i]);
        bol = enc.data[i] == '\n';
    }
    data_dec_init(&d, 0, SIZE_MAX, UINT64_MAX);
    used = data_dec_feed(&d, enc.data, enc.len, &dec);
    if (!d.done || used != enc.len || d.err != DD_OK)
        abort();
    if (dec.len != want.len || memcmp(dec.data, want.data, dec.len) != 0)
        abort();
    buf_free(&enc);
    buf_free(&dec);
    buf_free(&want);
}

static void raw(const char *in, size_t n, int normalize, size_t split)
{
    struct data_dec d;
    struct buf out;
    size_t used;

    buf_init(&out);
    data_dec_init(&d, normalize, 100, 1000);
    used = data_dec_feed(&d, in, split, &out);
    if (!d.done && used != split)
        abort();
    if (!d.done)
        used += data_dec_feed(&d, in + split, n - split, &out);
    if (!d.done && used != n)
        abort();
    if (d.done) {
        int at_start = used == 3 && memcmp(in, ".\r\n", 3) == 0;
        if (!at_start && (used < 5 || memcmp(in + used - 5, "\r\n.\r\n", 5) != 0))
            abort();
    }
    if (d.err == DD_OK) {
        if (out.len > 1000)
            abort();
        for (size_t i = 0; i < out.len; i++) {
            if (out.data[i] == '\r' && (i + 1 >= out.len || out.data[i + 1] != '\n'))
                abort();
            if (out.data[i] == '\n' && (i == 0 || out.data[i - 1] != '\r'))
                abort();
        }
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t split = size ? data[0] % (size + 1) : 0;

    round_trip(in, size);
    raw(in, size, 0, split);
    raw(in, size, 1, split);
    return 0;
}
