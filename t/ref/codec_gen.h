/*
 * codec_gen - seeded pseudo-random inputs and chunkings for the
 * differential tests of the DATA decoder and encoder against their
 * reference copies (t/ref/data_dec_ref.h, t/ref/dotstuff_ref.h).
 *
 * gen_input() builds a message from tokens rich in what the codecs look
 * at: ".", CR, LF, CR LF, CR LF ".", the end sequence, runs of ordinary
 * bytes (NUL and 8-bit included) of every length up to several thousand,
 * so that line and size limits are crossed. gen_chunk() cuts it: whole,
 * one byte at a time, small or large random pieces (sometimes empty).
 * Everything is a pure function of the seed.
 */
#ifndef POSTERN_CODEC_GEN_H
#define POSTERN_CODEC_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

struct gen_rng {
    uint64_t s;
};

__attribute__((unused)) static void gen_seed(struct gen_rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    if (r->s == 0)
        r->s = 1;
}

/* xorshift64* */
static uint64_t gen_next(struct gen_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

/* 0..n-1 (n > 0) */
static size_t gen_below(struct gen_rng *r, size_t n)
{
    return (size_t)((gen_next(r) >> 16) % n);
}

static void gen_run(struct gen_rng *r, struct buf *b, size_t n)
{
    static const char text[] = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .:-<>@\t";

    for (size_t i = 0; i < n; i++) {
        size_t k = gen_below(r, 64);
        char c;
        if (k < sizeof(text) - 1)
            c = text[k];
        else if (k < 60)
            c = (char)(0x80 + gen_below(r, 128));
        else if (k < 62)
            c = '.';
        else
            c = '\0';
        buf_addc(b, c);
    }
}

/* Append a message of at most about max bytes to b. */
__attribute__((unused)) static void gen_input(struct gen_rng *r, struct buf *b, size_t max)
{
    /* Per input: how often the end sequence and bare line ends appear. */
    size_t end_w = gen_below(r, 3) == 0 ? 0 : 1 + gen_below(r, 4);
    size_t bare_w = gen_below(r, 3) == 0 ? 0 : 1 + gen_below(r, 8);
    size_t stop = b->len + max;

    while (b->len < stop) {
        size_t k = gen_below(r, 100);
        if (k < 30)
            gen_run(r, b, gen_below(r, 90));
        else if (k < 50)
            buf_add(b, "\r\n", 2);
        else if (k < 58)
            buf_addc(b, '.');
        else if (k < 66)
            buf_add(b, "\r\n.", 3);
        else if (k < 68)
            buf_add(b, ".\r\n", 3);
        else if (k < 70)
            gen_run(r, b, 100 + gen_below(r, 2500));
        else if (k < 70 + bare_w)
            buf_addc(b, '\r');
        else if (k < 70 + 2 * bare_w)
            buf_addc(b, '\n');
        else if (k < 70 + 2 * bare_w + end_w)
            buf_add(b, "\r\n.\r\n", 5);
        else
            gen_run(r, b, gen_below(r, 20));
    }
}

/* Chunking styles for gen_chunk(). */
enum { GEN_WHOLE, GEN_ONE, GEN_SMALL, GEN_LARGE, GEN_STYLES };

/* The size of the next piece (may be 0 for GEN_SMALL/GEN_LARGE), at most left. */
__attribute__((unused)) static size_t gen_chunk(struct gen_rng *r, int style, size_t left)
{
    size_t n;

    switch (style) {
    case GEN_WHOLE:
        return left;
    case GEN_ONE:
        n = 1;
        break;
    case GEN_SMALL:
        n = gen_below(r, 12);
        break;
    default:
        n = gen_below(r, 20) == 0 ? 0 : 1 + gen_below(r, 3000);
        break;
    }
    return n < left ? n : left;
}

/* Exhaustive inputs: there are gen_words(len) words of len letters from a
 * 4-letter alphabet; gen_word() writes the v-th into out. */
static inline size_t gen_words(size_t len)
{
    size_t total = 1;
    for (size_t k = 0; k < len; k++)
        total *= 4;
    return total;
}

static inline void gen_word(const char *alpha4, size_t v, size_t len, char *out)
{
    for (size_t k = 0; k < len; k++, v /= 4)
        out[k] = alpha4[v % 4];
}

#endif
