/*
 * dotstuff_ref - THE REFERENCE: a frozen copy of common/mail/smtp_reply.c's
 * DATA encoder (smtp_dotstuff_add / smtp_dotstuff_end) as it was before
 * the memchr fast path, symbols renamed ref_*. It is not used by Postern:
 * the unit test (t/unit/common_smtp_reply.c), the fuzzer
 * (t/fuzz/common_smtp_reply.c) and bench/codec compare the real encoder
 * against it, byte for byte and field for field, for every chunking.
 *
 * Do not "fix" or speed up this copy: its behaviour is the contract.
 * It works on the real struct smtp_dotstuff (set up by smtp_dotstuff_init).
 */
#ifndef POSTERN_DOTSTUFF_REF_H
#define POSTERN_DOTSTUFF_REF_H

#include "mail/smtp_reply.h"
#include "base/util.h"

__attribute__((unused)) static void ref_dotstuff_add(struct smtp_dotstuff *d, const char *in,
                                                     size_t n, struct buf *out)
{
    const char *p = in, *end = in + n, *q;

    buf_reserve(out, n + n / 32 + 8);
    while (p < end) {
        if (d->cr) {
            /* CR LF, or a lone CR: both end the line with CR LF. */
            d->cr = 0;
            d->bol = 1;
            buf_add(out, "\r\n", 2);
            if (*p == '\n') {
                p++;
                continue;
            }
        }
        if (*p == '\r') {
            d->cr = 1;
            p++;
            continue;
        }
        if (*p == '\n') {
            buf_add(out, "\r\n", 2);
            d->bol = 1;
            p++;
            continue;
        }
        if (d->bol && *p == '.')
            buf_addc(out, '.');
        d->bol = 0;
        for (q = p; q < end && *q != '\r' && *q != '\n'; q++)
            ;
        buf_add(out, p, (size_t)(q - p));
        p = q;
    }
}

__attribute__((unused)) static void ref_dotstuff_end(struct smtp_dotstuff *d, struct buf *out)
{
    if (d->cr) {
        buf_add(out, "\r\n", 2);
        d->cr = 0;
        d->bol = 1;
    }
    if (!d->bol)
        buf_add(out, "\r\n", 2);
    buf_add(out, ".\r\n", 3);
    d->bol = 1;
}

#endif
