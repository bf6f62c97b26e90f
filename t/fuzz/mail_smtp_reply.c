/*
 * Fuzz target for common/mail/smtp_reply: replies parsed one after another from
 * hostile input, each summarised (the summary must be well-formed UTF-8
 * without control characters) and read as EHLO capabilities; the input
 * sanitised into buffers of many sizes (clean output, never longer than
 * the buffer, clean input given back unchanged); the same
 * input run through the DATA encoder, whose output must be a well-formed
 * DATA stream (checked here, abort on violation), and must be exactly what
 * the reference copy of the original encoder (t/ref/dotstuff_ref.h) gives,
 * with the same bol/cr fields, fed whole, one byte at a time and in
 * pseudo-random pieces (abort on any difference).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/codec_gen.h"
#include "../ref/dotstuff_ref.h"
#include "mail/smtp_addr.h"
#include "mail/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_data_stream(const char *p, size_t n)
{
    size_t i, bol = 1;

    if (n < 3 || memcmp(p + n - 3, ".\r\n", 3) != 0)
        abort();
    if (n > 3 && (n < 5 || memcmp(p + n - 5, "\r\n.\r\n", 5) != 0))
        abort();
    for (i = 0; i + 3 < n; i++) {
        if (p[i] == '\r' && p[i + 1] != '\n')
            abort();
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            abort();
        /* A line that starts with a dot must start with two. */
        if (bol && p[i] == '.' && p[i + 1] != '.')
            abort();
        if (bol && p[i] == '.')
            i++;
        bol = p[i] == '\n';
    }
}

/* Sanitised text: well-formed UTF-8 with no C0 control, DEL or C1 control. */
static void check_clean(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;

    if (memchr(s, '\0', n) || !smtp_utf8_valid(u, n))
        abort();
    for (size_t i = 0; i < n; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f)
            abort();
        if (u[i] == 0xc2 && i + 1 < n && u[i + 1] < 0xa0)
            abort();
    }
}

/* 1 when sanitising in[0..n) must give it back unchanged. */
static int clean_already(const char *in, size_t n)
{
    const unsigned char *u = (const unsigned char *)in;

    if (!smtp_utf8_valid(u, n))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (u[i] < 0x20 || u[i] == 0x7f || (u[i] == 0xc2 && i + 1 < n && u[i + 1] < 0xa0))
            return 0;
    return 1;
}

/* smtp_sanitize over every buffer size up to a little more than needed. */
static void fuzz_sanitize(const char *in, size_t n)
{
    static char out[4 * 1024 + 8];
    size_t max = n + 2 < sizeof(out) ? n + 2 : sizeof(out);

    for (size_t outsz = 0; outsz <= max; outsz += outsz < 16 ? 1 : 61) {
        size_t len = smtp_sanitize(out, outsz, in, n);
        if (outsz == 0) {
            if (len != 0)
                abort();
            continue;
        }
        if (len >= outsz || out[len] != '\0' || strlen(out) != len)
            abort();
        check_clean(out, len);
        /* clean input that fits comes back as it was; cut, it is a prefix */
        if (clean_already(in, n) &&
            (len > n || memcmp(out, in, len) != 0 || (outsz > n && len != n)))
            abort();
    }
}

static void fuzz_dotstuff(const char *in, size_t n)
{
    struct smtp_dotstuff d;
    struct buf out;
    size_t half = n / 2;

    buf_init(&out);
    smtp_dotstuff_init(&d);
    smtp_dotstuff_add(&d, in, half, &out);
    smtp_dotstuff_add(&d, in + half, n - half, &out);
    smtp_dotstuff_end(&d, &out);
    check_data_stream(out.data, out.len);
    buf_free(&out);
}

/* style: 0 whole, 1 one byte, 2 small pieces, 3 larger pieces (some empty). */
static void diff_dotstuff(const char *in, size_t n, int style, uint64_t seed)
{
    struct smtp_dotstuff a, b;
    struct buf oa, ob;
    struct gen_rng r;
    size_t off = 0, seen = 0, piece;

    gen_seed(&r, seed);
    smtp_dotstuff_init(&a);
    smtp_dotstuff_init(&b);
    buf_init(&oa);
    buf_init(&ob);
    while (off < n) {
        if (style == 0)
            piece = n - off;
        else if (style == 1)
            piece = 1;
        else
            piece = gen_below(&r, style == 2 ? 9 : 300);
        if (piece > n - off)
            piece = n - off;
        smtp_dotstuff_add(&a, in + off, piece, &oa);
        ref_dotstuff_add(&b, in + off, piece, &ob);
        off += piece;
        if (a.bol != b.bol || a.cr != b.cr || oa.len != ob.len ||
            memcmp(oa.data + seen, ob.data + seen, oa.len - seen) != 0)
            abort();
        seen = oa.len;
    }
    smtp_dotstuff_end(&a, &oa);
    ref_dotstuff_end(&b, &ob);
    if (a.bol != b.bol || a.cr != b.cr || oa.len != ob.len || memcmp(oa.data, ob.data, oa.len))
        abort();
    buf_free(&oa);
    buf_free(&ob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct smtp_reply r;
    struct smtp_caps caps;
    char sum[SMTP_SUMMARY_MAX], capstr[256];
    size_t off = 0, used;
    const char *why;
    int rc, n;

    smtp_reply_init(&r);
    for (n = 0; off < size && n < 64; n++) {
        used = 0;
        rc = smtp_reply_parse(&r, p + off, size - off, &used, &why);
        if (rc != SMTP_REPLY_DONE)
            break;
        if (used == 0 || used > size - off || r.code < 200 || r.code > 599)
            abort();
        smtp_reply_summary(&r, sum, sizeof(sum));
        check_clean(sum, strlen(sum));
        smtp_caps_parse(&caps, &r);
        smtp_caps_format(&caps, capstr, sizeof(capstr));
        off += used;
    }
    smtp_reply_free(&r);
    fuzz_sanitize(p, size);
    fuzz_dotstuff(p, size);
    for (int style = 0; style < 4; style++)
        diff_dotstuff(p, size, style, size ? data[0] : 0);
    return 0;
}
