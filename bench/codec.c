/*
 * codec - throughput of the SMTP DATA decoder (smtpd/data_dec.c) and
 * encoder (common/mail/smtp_reply.c, smtp_dotstuff_*), each beside the frozen
 * reference copy of the original byte-at-a-time code (t/ref/), so that
 * the gain of the fast paths shows on the same machine in the same run.
 *
 *   codec [SECONDS [CHUNK]]     (defaults: 1 second per measurement,
 *                                16384-byte pieces; built and run by
 *                                bench/codec)
 *
 * Messages: "4k" and "100k" typical text (lines of 60..78 characters, CR
 * LF, about one line in 50 starting with a dot), and "dots" (100 KiB,
 * every line starting with "." - the worst case for both). The decoder
 * is fed the DATA stream (dot-stuffed, ending with ".\r\n"), the encoder
 * the message, both in CHUNK-byte pieces as read from a socket or a file.
 * Each figure is MB/s (10^6 bytes of input per second) over repeated runs
 * of about SECONDS. Output: one line per message and codec:
 *   MESSAGE CODEC new MB/s  ref MB/s  speed-up
 * The results of new and reference are compared once per message, and a
 * difference is an error (exit status 1).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../smtpd/data_dec.h"
#include "../t/ref/data_dec_ref.h"
#include "../t/ref/dotstuff_ref.h"
#include "mail/smtp_reply.h"
#include "base/util.h"

static size_t chunk = 16384;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ULL;

static unsigned next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 32);
}

/* A message of about size bytes; every line starts with a dot when dots. */
static void make_message(struct buf *b, size_t size, int dots)
{
    static const char words[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

    while (b->len < size) {
        size_t n = 60 + next_rand() % 19;
        if (dots || next_rand() % 50 == 0)
            buf_addc(b, '.');
        for (size_t i = 0; i < n; i++)
            buf_addc(b, next_rand() % 7 == 0 ? ' ' : words[next_rand() % (sizeof(words) - 1)]);
        buf_add(b, "\r\n", 2);
    }
}

typedef void (*encode_fn)(const char *in, size_t n, struct buf *out);
typedef void (*decode_fn)(const char *in, size_t n, struct buf *out);

static void enc_new(const char *in, size_t n, struct buf *out)
{
    struct smtp_dotstuff d;

    smtp_dotstuff_init(&d);
    for (size_t off = 0; off < n; off += chunk)
        smtp_dotstuff_add(&d, in + off, n - off < chunk ? n - off : chunk, out);
    smtp_dotstuff_end(&d, out);
}

static void enc_ref(const char *in, size_t n, struct buf *out)
{
    struct smtp_dotstuff d;

    smtp_dotstuff_init(&d);
    for (size_t off = 0; off < n; off += chunk)
        ref_dotstuff_add(&d, in + off, n - off < chunk ? n - off : chunk, out);
    ref_dotstuff_end(&d, out);
}

static void dec_new(const char *in, size_t n, struct buf *out)
{
    struct data_dec d;
    size_t off = 0;

    data_dec_init(&d, 0, 1000, 100u << 20);
    while (off < n && !d.done)
        off += data_dec_feed(&d, in + off, n - off < chunk ? n - off : chunk, out);
    if (!d.done || d.err != DD_OK)
        abort();
}

static void dec_ref(const char *in, size_t n, struct buf *out)
{
    struct data_dec d;
    size_t off = 0;

    data_dec_init(&d, 0, 1000, 100u << 20);
    while (off < n && !d.done)
        off += ref_data_dec_feed(&d, in + off, n - off < chunk ? n - off : chunk, out);
    if (!d.done || d.err != DD_OK)
        abort();
}

/* MB/s of fn over in[0..n) for about secs seconds. */
static double rate(void (*fn)(const char *, size_t, struct buf *), const char *in, size_t n,
                   double secs)
{
    struct buf out;
    double t0 = now(), t;
    unsigned long reps = 0, batch = 1;

    buf_init(&out);
    do {
        for (unsigned long i = 0; i < batch; i++) {
            buf_reset(&out);
            fn(in, n, &out);
        }
        reps += batch;
        if (batch < 1024)
            batch *= 2;
        t = now() - t0;
    } while (t < secs);
    buf_free(&out);
    return (double)n * (double)reps / t / 1e6;
}

static int same(void (*a)(const char *, size_t, struct buf *),
                void (*b)(const char *, size_t, struct buf *), const char *in, size_t n)
{
    struct buf x, y;
    int r;

    buf_init(&x);
    buf_init(&y);
    a(in, n, &x);
    b(in, n, &y);
    r = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
    buf_free(&x);
    buf_free(&y);
    return r;
}

static int run(const char *name, size_t size, int dots, double secs)
{
    struct buf msg, stream;
    double dn, dr, en, er;

    buf_init(&msg);
    buf_init(&stream);
    make_message(&msg, size, dots);
    enc_ref(msg.data, msg.len, &stream);
    if (!same(enc_new, enc_ref, msg.data, msg.len) ||
        !same(dec_new, dec_ref, stream.data, stream.len)) {
        fprintf(stderr, "codec: %s: new and reference results differ\n", name);
        return 1;
    }
    dn = rate(dec_new, stream.data, stream.len, secs);
    dr = rate(dec_ref, stream.data, stream.len, secs);
    en = rate(enc_new, msg.data, msg.len, secs);
    er = rate(enc_ref, msg.data, msg.len, secs);
    printf("%-5s decode  new %8.0f MB/s  ref %8.0f MB/s  x%.1f\n", name, dn, dr, dn / dr);
    printf("%-5s encode  new %8.0f MB/s  ref %8.0f MB/s  x%.1f\n", name, en, er, en / er);
    fflush(stdout);
    buf_free(&msg);
    buf_free(&stream);
    return 0;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    int bad = 0;

    if (argc > 2)
        chunk = (size_t)atol(argv[2]);
    if (secs <= 0 || secs > 60 || chunk == 0) {
        fprintf(stderr, "usage: codec [SECONDS (0..60] [CHUNK]]\n");
        return 2;
    }
    printf("# DATA codec throughput, %zu-byte pieces, %.1f s per figure\n", chunk, secs);
    bad |= run("4k", 4096, 0, secs);
    bad |= run("100k", 100 * 1024, 0, secs);
    bad |= run("dots", 100 * 1024, 1, secs);
    return bad;
}
