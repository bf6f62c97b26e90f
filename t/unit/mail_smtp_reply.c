/*
 * Unit tests for common/mail/smtp_reply: reply parsing, enhanced status codes,
 * summaries and sanitising, EHLO capabilities, the DATA encoder.
 *
 * The DATA encoder is also checked differentially: smtp_dotstuff_add/end
 * must produce exactly what the reference copy of the original encoder
 * (t/ref/dotstuff_ref.h) does, with the same bol/cr fields after every
 * piece, for every short input over {".", CR, LF, "a"} cut in every way
 * into two pieces and for thousands of seeded random messages cut in
 * random pieces.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/codec_gen.h"
#include "../ref/dotstuff_ref.h"
#include "mail/smtp_addr.h"
#include "mail/smtp_reply.h"
#include "tap.h"
#include "base/util.h"

static int parse(struct smtp_reply *r, const char *text, size_t *used, const char **why)
{
    return smtp_reply_parse(r, text, strlen(text), used, why);
}

static void test_replies(void)
{
    struct smtp_reply r;
    const char *why = NULL, *s;
    size_t used = 0, len;
    char sum[SMTP_SUMMARY_MAX];
    const char *multi = "250-mx.example.com Hello\r\n250-PIPELINING\r\n250 8BITMIME\r\nXX";

    smtp_reply_init(&r);

    is_int(parse(&r, "220 mx.example.com ESMTP ready\r\n", &used, &why), SMTP_REPLY_DONE,
           "single line reply");
    is_int(r.code, 220, "code 220");
    is_int(used, 32, "whole line used");
    is_str(r.text.data, "mx.example.com ESMTP ready", "text after the code");
    is_str(r.enh, "", "no enhanced code in a greeting");

    is_int(parse(&r, multi, &used, &why), SMTP_REPLY_DONE, "multi-line reply");
    is_int(r.nlines, 3, "three lines");
    is_int(used, strlen(multi) - 2, "stops after the last line, leaves the rest");
    ok(smtp_reply_text_line(&r, 1, &s, &len) == 0 && len == 10 && memcmp(s, "PIPELINING", 10) == 0,
       "line 1 text");
    ok(smtp_reply_text_line(&r, 3, &s, &len) < 0, "no line 3");

    is_int(parse(&r, "250-first\r\n250-second\r\n", &used, &why), SMTP_REPLY_MORE,
           "unfinished multi-line reply wants more");
    is_int(parse(&r, "250 ok", &used, &why), SMTP_REPLY_MORE, "line without LF wants more");
    is_int(parse(&r, "250\n", &used, &why), SMTP_REPLY_DONE, "bare code, LF only");
    is_int(r.code, 250, "bare code parsed");
    is_str(r.text.data, "", "bare code has empty text");

    is_int(parse(&r, "550 5.1.1 <bob@example.com>: user unknown\r\n", &used, &why), SMTP_REPLY_DONE,
           "reply with enhanced code");
    is_str(r.enh, "5.1.1", "enhanced code picked out");
    is_str(smtp_reply_summary(&r, sum, sizeof(sum)), "550 5.1.1 <bob@example.com>: user unknown",
           "summary keeps code, enh and text");

    parse(&r, "451 5.1.1 mismatched class\r\n", &used, &why);
    is_str(r.enh, "", "enhanced code of another class is not taken");
    parse(&r, "250 2.1.0\r\n", &used, &why);
    is_str(r.enh, "2.1.0", "enhanced code alone on the line");
    parse(&r, "250 2.1000.0 x\r\n", &used, &why);
    is_str(r.enh, "", "4-digit subject is not an enhanced code");

    parse(&r, "452-4.5.3 Too many\r\n452-4.5.3 recipients\r\n452 4.5.3 this time\r\n", &used, &why);
    is_str(smtp_reply_summary(&r, sum, sizeof(sum)), "452 4.5.3 Too many recipients this time",
           "summary joins lines and drops repeated enhanced codes");

    parse(&r, "554 bad\x01\x1b[31mred\tx\xc3\xa9\xff\r\n", &used, &why);
    is_str(smtp_reply_summary(&r, sum, sizeof(sum)), "554 bad??[31mred x\xc3\xa9?",
           "summary replaces controls and invalid bytes, keeps UTF-8");
    parse(&r,
          "550 5.1.1 <s\xc3\xa9nder@b\xc3\xbc"
          "cher.example>: unknown\r\n",
          &used, &why);
    is_str(smtp_reply_summary(&r, sum, sizeof(sum)),
           "550 5.1.1 <s\xc3\xa9nder@b\xc3\xbc"
           "cher.example>: unknown",
           "a UTF-8 address in a reply is kept");

    {
        struct buf b;
        int i;
        char small[16];

        buf_init(&b);
        buf_adds(&b, "250-");
        for (i = 0; i < 100; i++)
            buf_adds(&b, "abcdefghij");
        buf_adds(&b, "\r\n250 end\r\n");
        is_int(parse(&r, b.data, &used, &why), SMTP_REPLY_DONE, "long reply parsed");
        smtp_reply_summary(&r, sum, sizeof(sum));
        is_int(strlen(sum), sizeof(sum) - 1, "summary truncated to its buffer");
        ok(strcmp(sum + strlen(sum) - 3, "...") == 0, "truncated summary ends with ...");
        smtp_reply_summary(&r, small, sizeof(small));
        is_str(small, "250 abcdefgh...", "small summary buffer");
        buf_free(&b);
    }
    {
        char small[16];

        /* "250 " + 5 two-byte characters is 14 bytes: the cut never splits one */
        parse(&r, "250 \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\r\n", &used, &why);
        smtp_reply_summary(&r, small, sizeof(small));
        is_str(small, "250 \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9...",
               "a cut summary keeps whole characters");
        ok(smtp_utf8_valid((const unsigned char *)small, strlen(small)), "and is valid UTF-8");
    }

    /* malformed */
    why = NULL;
    is_int(parse(&r, "25 ok\r\n", &used, &why), SMTP_REPLY_BAD, "2-digit code refused");
    ok(why != NULL, "with a reason");
    is_int(parse(&r, "abc\r\n", &used, &why), SMTP_REPLY_BAD, "letters refused");
    is_int(parse(&r, "250x ok\r\n", &used, &why), SMTP_REPLY_BAD, "bad separator refused");
    is_int(parse(&r, "199 ok\r\n", &used, &why), SMTP_REPLY_BAD, "code below 200 refused");
    is_int(parse(&r, "600 ok\r\n", &used, &why), SMTP_REPLY_BAD, "code above 599 refused");
    is_int(parse(&r, "250-a\r\n251 b\r\n", &used, &why), SMTP_REPLY_BAD,
           "different codes in one reply refused");
    is_int(smtp_reply_line(&r, "250 a\0b", 7, &why), SMTP_REPLY_BAD, "NUL refused");
    is_int(smtp_reply_line(&r, "250 fine", 8, &why), SMTP_REPLY_DONE, "parser usable after BAD");
    {
        char line[SMTP_REPLY_LINE_MAX + 10];
        int i, rc = 0;

        memset(line, 'a', sizeof(line));
        memcpy(line, "250 ", 4);
        is_int(smtp_reply_line(&r, line, sizeof(line), &why), SMTP_REPLY_BAD,
               "over-long line refused");
        is_int(smtp_reply_parse(&r, line, sizeof(line), &used, &why), SMTP_REPLY_BAD,
               "over-long unfinished line refused");
        for (i = 0; i < SMTP_REPLY_LINES_MAX + 1; i++) {
            rc = smtp_reply_line(&r, "250-x", 5, &why);
            if (rc != SMTP_REPLY_MORE)
                break;
        }
        is_int(rc, SMTP_REPLY_BAD, "endless multi-line reply refused");
        is_int(i, SMTP_REPLY_LINES_MAX, "after SMTP_REPLY_LINES_MAX lines");
    }

    ok(smtp_enh_valid("5.7.1", 5), "5.7.1 valid");
    ok(smtp_enh_valid("4.123.456", 9), "4.123.456 valid");
    ok(!smtp_enh_valid("3.1.1", 5), "class 3 invalid");
    ok(!smtp_enh_valid("5.1.", 4), "missing detail invalid");
    ok(!smtp_enh_valid("5..1", 4), "missing subject invalid");
    ok(!smtp_enh_valid("5.1.1a", 6), "trailing letter invalid");

    smtp_reply_free(&r);
}

static void test_caps(void)
{
    struct smtp_reply r;
    struct smtp_caps c;
    size_t used;
    const char *why;
    char out[256];

    smtp_reply_init(&r);
    parse(&r,
          "250-mx.example.com greets you\r\n"
          "250-pipelining\r\n"
          "250-SIZE 10240000\r\n"
          "250-8BITMIME\r\n"
          "250-SMTPUTF8\r\n"
          "250-STARTTLS\r\n"
          "250-AUTH CRAM-MD5 LOGIN PLAIN\r\n"
          "250-DSN\r\n"
          "250-ENHANCEDSTATUSCODES\r\n"
          "250-X-UNKNOWN foo\r\n"
          "250 CHUNKING\r\n",
          &used, &why);
    smtp_caps_parse(&c, &r);
    ok(c.flags & SMTP_CAP_PIPELINING, "PIPELINING (lower case)");
    ok(c.flags & SMTP_CAP_SIZE, "SIZE");
    is_int(c.size, 10240000, "SIZE value");
    ok(c.flags & SMTP_CAP_8BITMIME, "8BITMIME");
    ok(c.flags & SMTP_CAP_SMTPUTF8, "SMTPUTF8");
    ok(c.flags & SMTP_CAP_STARTTLS, "STARTTLS");
    ok(c.flags & SMTP_CAP_AUTH, "AUTH");
    is_int(c.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN, "AUTH PLAIN and LOGIN, CRAM-MD5 ignored");
    ok(c.flags & SMTP_CAP_DSN, "DSN");
    ok(c.flags & SMTP_CAP_ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES");
    ok(c.flags & SMTP_CAP_CHUNKING, "CHUNKING");
    is_str(smtp_caps_format(&c, out, sizeof(out)),
           "PIPELINING SIZE=10240000 8BITMIME SMTPUTF8 STARTTLS AUTH=PLAIN,LOGIN DSN "
           "ENHANCEDSTATUSCODES CHUNKING",
           "caps formatted for logs");

    parse(&r, "250-mx\r\n250-AUTH=LOGIN\r\n250-SIZE\r\n250 PIPELININGX\r\n", &used, &why);
    smtp_caps_parse(&c, &r);
    is_int(c.auth, SMTP_AUTH_LOGIN, "old AUTH=LOGIN form");
    ok((c.flags & SMTP_CAP_SIZE) && c.size == 0, "SIZE without a number: no limit");
    ok(!(c.flags & SMTP_CAP_PIPELINING), "PIPELININGX is not PIPELINING");

    parse(&r, "250-mx\r\n250 SIZE 99999999999999999999999\r\n", &used, &why);
    smtp_caps_parse(&c, &r);
    is_int(c.size, 0, "absurd SIZE is treated as no limit");

    parse(&r, "250 mx.example.com STARTTLS PIPELINING\r\n", &used, &why);
    smtp_caps_parse(&c, &r);
    is_int(c.flags, 0, "words on the greeting line are not capabilities");
    smtp_reply_free(&r);
}

/* smtp_sanitize on a table: what is kept, what becomes '?' or ' '. */
static void test_sanitize(void)
{
    static const struct {
        const char *in, *want, *name;
    } t[] = {
        {"plain ascii", "plain ascii", "ASCII unchanged"},
        {"a\tb", "a b", "tab becomes a space"},
        {"a\r\nb\x1b[0m\x7f", "a??b?[0m?", "C0 controls and DEL become ?"},
        {"s\xc3\xa9nder", "s\xc3\xa9nder", "2-byte UTF-8 kept"},
        {"\xe2\x82\xac \xe4\xb8\xad", "\xe2\x82\xac \xe4\xb8\xad", "3-byte UTF-8 kept"},
        {"\xf0\x9f\x93\xa7", "\xf0\x9f\x93\xa7", "4-byte UTF-8 kept"},
        {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf", "U+10FFFF kept"},
        {"x\xc2\x9b"
         "31m",
         "x?31m", "a C1 control (CSI) is one ?"},
        {"\xc2\xa0", "\xc2\xa0", "U+00A0 (after the C1 range) kept"},
        {"s\xe9nder", "s?nder", "a Latin-1 byte is not UTF-8"},
        {"\xc0\xaf", "??", "overlong 2-byte form: each byte ?"},
        {"\xe0\x80\xaf", "???", "overlong 3-byte form"},
        {"\xed\xa0\x80", "???", "surrogate U+D800"},
        {"\xf4\x90\x80\x80", "????", "above U+10FFFF"},
        {"\xf8\x88\x80\x80\x80", "?????", "5-byte form"},
        {"\xc3(", "?(", "lead byte without its continuation"},
        {"\x80x", "?x", "lone continuation byte"},
        {"ab\xe2\x82", "ab??", "sequence cut short at the end"},
    };
    char out[64];

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        size_t n = smtp_sanitize(out, sizeof(out), t[i].in, strlen(t[i].in));
        is_str(out, t[i].want, "%s", t[i].name);
        is_int((long long)n, (long long)strlen(t[i].want), "%s: its length", t[i].name);
    }
    /* truncation: a character that does not fit is left out whole */
    is_int((long long)smtp_sanitize(out, 4, "ab\xc3\xa9", 4), 2, "no room for a 2-byte character");
    is_str(out, "ab", "it is left out, not cut");
    is_int((long long)smtp_sanitize(out, 5, "ab\xc3\xa9", 4), 4, "room for it");
    is_str(out, "ab\xc3\xa9", "kept whole");
    is_int((long long)smtp_sanitize(out, 1, "abc", 3), 0, "a 1-byte buffer holds the NUL only");
    is_int((long long)smtp_sanitize(out, 0, "abc", 3), 0, "a 0-byte buffer is not written");
}

static char *stuff(const char *in, size_t n, size_t step)
{
    struct smtp_dotstuff d;
    struct buf out;
    size_t i, k;

    buf_init(&out);
    smtp_dotstuff_init(&d);
    for (i = 0; i < n; i += step) {
        k = n - i < step ? n - i : step;
        smtp_dotstuff_add(&d, in + i, k, &out);
    }
    smtp_dotstuff_end(&d, &out);
    buf_addc(&out, '\0');
    return out.data;
}

static void check_stuff(const char *in, const char *want, const char *name)
{
    size_t n = strlen(in), step;
    char *got;
    int same = 1;

    got = stuff(in, n, n ? n : 1);
    is_str(got, want, "%s", name);
    free(got);
    for (step = 1; step <= 3; step++) {
        got = stuff(in, n, step);
        if (strcmp(got, want) != 0)
            same = 0;
        free(got);
    }
    ok(same, "%s: same result fed 1, 2 and 3 bytes at a time", name);
}

static void test_dotstuff(void)
{
    check_stuff("", ".\r\n", "empty message");
    check_stuff("a\r\nb\r\n", "a\r\nb\r\n.\r\n", "CRLF text unchanged");
    check_stuff("a\nb\n", "a\r\nb\r\n.\r\n", "bare LF becomes CRLF");
    check_stuff("a\rb\r", "a\r\nb\r\n.\r\n", "lone CR becomes CRLF");
    check_stuff("a\r\r\nb", "a\r\n\r\nb\r\n.\r\n", "CR CR LF is two line ends");
    check_stuff("no newline", "no newline\r\n.\r\n", "missing final line end added");
    check_stuff(".\r\n", "..\r\n.\r\n", "a lone dot line is doubled");
    check_stuff(".hidden\r\n..two\r\nmid.dle\r\n", "..hidden\r\n...two\r\nmid.dle\r\n.\r\n",
                "leading dots doubled, others not");
    check_stuff("a\n.b\r.c", "a\r\n..b\r\n..c\r\n.\r\n", "dots after LF and lone CR doubled");
    check_stuff("x\r\n.\r\n.\r\n", "x\r\n..\r\n..\r\n.\r\n", "an embedded end marker is escaped");
}

/* ---- differential tests against the reference encoder ---- */

struct estats {
    unsigned runs, fails;
};

/*
 * Encode in[0..len) with the encoder and the reference, the same pieces to
 * both (sizes from gen_chunk(), or the fixed cuts[] when ncuts > 0),
 * comparing output and fields after every piece and after the end.
 */
static int diff_enc(const char *in, size_t len, struct gen_rng *r, int style, const size_t *cuts,
                    size_t ncuts, struct estats *st)
{
    struct smtp_dotstuff a, b;
    struct buf oa, ob;
    size_t off = 0, piece = 0, n = 0, seen = 0;
    int good = 1, ended = 0;

    smtp_dotstuff_init(&a);
    smtp_dotstuff_init(&b);
    buf_init(&oa);
    buf_init(&ob);
    buf_add(&oa, "pre", 3); /* the encoder appends to what is there */
    buf_add(&ob, "pre", 3);
    while (good) {
        if (off >= len && piece >= ncuts) {
            smtp_dotstuff_end(&a, &oa);
            ref_dotstuff_end(&b, &ob);
            ended = 1;
        } else {
            n = ncuts > 0 ? (piece < ncuts ? cuts[piece] : len - off)
                          : gen_chunk(r, style, len - off);
            smtp_dotstuff_add(&a, in + off, n, &oa);
            ref_dotstuff_add(&b, in + off, n, &ob);
            off += n;
            piece++;
        }
        good = a.bol == b.bol && a.cr == b.cr && oa.len == ob.len &&
               memcmp(oa.data + seen, ob.data + seen, oa.len + 1 - seen) == 0; /* and NUL */
        seen = oa.len;
        if (ended)
            break;
    }
    st->runs++;
    if (!good && st->fails++ < 3) {
        char esc[300];
        size_t o = 0;
        for (size_t i = 0; i < len && o + 8 < sizeof(esc); i++) {
            unsigned char c = (unsigned char)in[i];
            if (c == '\r' || c == '\n')
                o += (size_t)snprintf(esc + o, sizeof(esc) - o, "\\%c", c == '\r' ? 'r' : 'n');
            else if (c < 0x20 || c > 0x7e)
                o += (size_t)snprintf(esc + o, sizeof(esc) - o, "\\x%02x", c);
            else
                esc[o++] = (char)c;
        }
        esc[o] = '\0';
        diag("encoder differs: style=%d piece %zu at offset %zu (%zu bytes)%s: new bol=%d cr=%d "
             "out=%zu, ref bol=%d cr=%d out=%zu",
             style, piece, off, n, ended ? " at the end" : "", a.bol, a.cr, oa.len, b.bol, b.cr,
             ob.len);
        diag("input (%zu bytes): %s", len, esc);
    }
    buf_free(&oa);
    buf_free(&ob);
    return good;
}

static void test_dotstuff_diff_exhaustive(void)
{
    static const char alpha[] = ".\r\na";
    struct estats st = {0};
    struct gen_rng r;
    char in[8];
    size_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};

    gen_seed(&r, 2);
    for (size_t len = 0; len <= 7; len++) {
        size_t total = gen_words(len);
        for (size_t v = 0; v < total; v++) {
            gen_word(alpha, v, len, in);
            diff_enc(in, len, &r, GEN_WHOLE, NULL, 0, &st);
            diff_enc(in, len, &r, GEN_ONE, ones, len, &st);
            for (size_t cut = 0; cut <= len; cut++)
                diff_enc(in, len, &r, GEN_WHOLE, &cut, 1, &st);
        }
    }
    ok(st.fails == 0, "encoder, exhaustive short inputs: %u runs agree with the reference",
       st.runs);
}

static void test_dotstuff_diff_random(void)
{
    static const size_t maxes[] = {8, 64, 400, 3000, 3000, 20000};
    struct estats st = {0};
    struct gen_rng r;
    struct buf in;
    const unsigned n_inputs = 1500;

    for (unsigned seed = 0; seed < n_inputs; seed++) {
        gen_seed(&r, 7000 + seed);
        buf_init(&in);
        gen_input(&r, &in, maxes[gen_below(&r, sizeof(maxes) / sizeof(maxes[0]))]);
        for (int style = 0; style < GEN_STYLES; style++)
            if (!diff_enc(in.data, in.len, &r, style, NULL, 0, &st) && st.fails <= 3)
                diag("(random input seed %u)", 7000 + seed);
        buf_free(&in);
    }
    ok(st.fails == 0, "encoder, random messages: %u runs agree with the reference", st.runs);
}

int main(void)
{
    plan_lazy();
    test_sanitize();
    test_replies();
    test_caps();
    test_dotstuff();
    test_dotstuff_diff_exhaustive();
    test_dotstuff_diff_random();
    return done_testing();
}
