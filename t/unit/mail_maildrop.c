/*
 * mail_maildrop - unit tests of the maildrop file reader
 * (common/mail/maildrop.c): the items a good file gives, whole and cut
 * into every pair of pieces and byte by byte; where the data ends (only
 * at CR LF "." CR LF); every framing error and bound.
 */
#include <stdio.h>
#include <string.h>

#include "mail/maildrop.h"
#include "tap.h"

static const struct maildrop_limits lim = {.line_max = 100, .rcpt_max = 3, .size_max = 1000};

/*
 * Read in[0..n) cut at the offsets in cuts (ascending, 0 = end of list):
 * the items as text ("C:line|" for a command, the body bytes after "B:",
 * "E|" at the end), and the result: 0 complete, -1 error (why in *why).
 */
static int run(const char *in, size_t n, const size_t *cuts, const struct maildrop_limits *l,
               struct buf *items, const char **why)
{
    struct maildrop_rd r;
    size_t from = 0, k = 0;
    int in_body = 0, rc = 0;

    maildrop_rd_init(&r, l);
    buf_reset(items);
    for (;;) {
        size_t to = cuts && cuts[k] ? cuts[k++] : n;
        const char *p = in + from;
        size_t left = to - from;
        for (;;) {
            const char *item;
            size_t used, ilen;
            int t = maildrop_rd_next(&r, p, left, &used, &item, &ilen);
            p += used;
            left -= used;
            if (t == MD_MORE)
                break;
            if (t == MD_ERR) {
                rc = -1;
                goto out;
            }
            if (t == MD_CMD) {
                buf_adds(items, "C:");
                buf_add(items, item, ilen);
                buf_adds(items, "|");
            } else if (t == MD_BODY) {
                if (!in_body)
                    buf_adds(items, "B:");
                in_body = 1;
                buf_add(items, item, ilen);
            } else if (t == MD_END) {
                buf_adds(items, "|E|");
            }
        }
        from = to;
        if (to == n)
            break;
    }
    rc = maildrop_rd_finish(&r);
out:
    *why = r.why;
    maildrop_rd_free(&r);
    return rc;
}

static const char good[] = "POSTDROP 1\r\n"
                           "MAIL FROM:<a@x.test> SIZE=20\r\n"
                           "rcpt to:<b@y.test>\n"
                           "RCPT TO:<c@y.test> NOTIFY=NEVER\r\n"
                           "DATA\r\n"
                           "Subject: t\r\n\r\n..dot\r\nbare\nlf\r\n.\r\n";
static const char good_items[] = "C:MAIL FROM:<a@x.test> SIZE=20|C:rcpt to:<b@y.test>|"
                                 "C:RCPT TO:<c@y.test> NOTIFY=NEVER|C:DATA|"
                                 "B:Subject: t\r\n\r\n..dot\r\nbare\nlf\r\n.\r\n|E|";

static void test_good(void)
{
    struct buf items;
    const char *why;
    size_t n = strlen(good);
    int all = 1;

    buf_init(&items);
    is_int(run(good, n, NULL, &lim, &items, &why), 0, "a good file is complete");
    is_str(items.data, good_items, "its commands and data, in order");
    for (size_t a = 1; a < n && all; a++) {
        size_t cuts[3] = {a, 0, 0};
        for (size_t b = a + 1; b <= n && all; b++) {
            cuts[1] = b < n ? b : 0;
            all =
                run(good, n, cuts, &lim, &items, &why) == 0 && strcmp(items.data, good_items) == 0;
            if (!all)
                diag("cut at %zu and %zu: %s", a, b, items.data);
        }
    }
    ok(all, "the same items however the input is cut in three");
    {
        size_t cuts[sizeof(good)];
        for (size_t i = 0; i + 1 < n; i++)
            cuts[i] = i + 1;
        cuts[n - 1] = 0;
        ok(run(good, n, cuts, &lim, &items, &why) == 0 && strcmp(items.data, good_items) == 0,
           "and byte by byte");
    }
    buf_free(&items);
}

/* The data part of a file: where the reader says the data ends. */
static void ends(const char *data, const char *want_body, int complete, const char *name)
{
    char in[512];
    struct buf items, want;
    const char *why;

    snprintf(in, sizeof(in), "POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\n%s", data);
    buf_init(&items);
    buf_init(&want);
    int rc = run(in, strlen(in), NULL, &lim, &items, &why);
    buf_printf(&want, "C:MAIL FROM:<>|C:RCPT TO:<b@y>|C:DATA|%s%s%s", *want_body ? "B:" : "",
               want_body, complete ? "|E|" : "");
    if (complete) {
        ok(rc == 0 && strcmp(items.data, want.data) == 0, "%s", name);
    } else {
        ok(rc == -1 && strstr(why, "before the end of data") && strcmp(items.data, want.data) == 0,
           "%s", name);
    }
    if (strcmp(items.data, want.data) != 0)
        diag("got %s", items.data);
    buf_free(&items);
    buf_free(&want);
}

static void test_end(void)
{
    ends(".\r\n", ".\r\n", 1, "\".\" right after DATA is an empty message");
    ends("a\r\n.\r\n", "a\r\n.\r\n", 1, "CR LF . CR LF ends the data");
    ends("a\n.\nb\r\n.\r\n", "a\n.\nb\r\n.\r\n", 1, "LF . LF does not end it");
    ends("a\r.\rb\r\n.\r\n", "a\r.\rb\r\n.\r\n", 1, "CR . CR does not end it");
    ends("a\r\n.\nb\r\n.\r\n", "a\r\n.\nb\r\n.\r\n", 1, "CR LF . LF does not end it");
    ends("a\r\n..\r\n.\r\n", "a\r\n..\r\n.\r\n", 1, "a stuffed dot line is text");
    ends("a\r\r\n.\r\n", "a\r\r\n.\r\n", 1, "CR CR LF . CR LF ends it (as smtpd's decoder)");
    ends("a\r\n.\r\r\n.\r\n", "a\r\n.\r\r\n.\r\n", 1, ". CR CR LF is text");
    ends("a\r\nb", "a\r\nb", 0, "no end line: incomplete");
    ends("a\r\n.\r", "a\r\n.\r", 0, "cut inside the end line: incomplete");
}

static void bad(const char *in, const struct maildrop_limits *l, const char *want, const char *name)
{
    struct buf items;
    const char *why = NULL;

    buf_init(&items);
    int rc = run(in, strlen(in), NULL, l, &items, &why);
    if (!ok(rc == -1 && why && strstr(why, want), "%s", name))
        diag("rc %d, why %s", rc, why ? why : "(none)");
    buf_free(&items);
}

static void test_errors(void)
{
    struct maildrop_limits small = lim;
    char big[300];

    bad("", &lim, "empty input", "empty input");
    bad("POSTDROP 1", &lim, "first line is incomplete", "a magic line without its end");
    bad("POSTDROP 2\r\nMAIL FROM:<>\r\n", &lim, "not a maildrop file", "another version");
    bad("MAIL FROM:<>\r\n", &lim, "not a maildrop file", "no magic line");
    bad("POSTDROP 1\r\nRCPT TO:<b@y>\r\n", &lim, "line 2 is not MAIL FROM:", "RCPT first");
    bad("POSTDROP 1\r\nMAIL FROM:<>\r\nDATA\r\n", &lim, "DATA before any RCPT", "no recipient");
    bad("POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nQUIT\r\n", &lim, "not RCPT TO: or DATA",
        "QUIT among the commands");
    bad("POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nMAIL FROM:<>\r\n", &lim,
        "not RCPT TO: or DATA", "a second MAIL");
    bad("POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA now\r\n", &lim, "not RCPT TO: or DATA",
        "DATA with an argument");
    bad("POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\n", &lim, "ends before DATA",
        "the input ends before DATA");
    bad("POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\n.\r\nQUIT\r\n", &lim,
        "after the end of data", "bytes after the end");
    bad("POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<a@y>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\n"
        "RCPT TO:<d@y>\r\nDATA\r\n.\r\n",
        &lim, "smtpd_recipient_limit", "more recipients than rcpt_max");
    memset(big, 'x', sizeof(big));
    memcpy(big, "POSTDROP 1\r\nMAIL FROM:<", 23);
    memcpy(big + 250, ">\r\n", 4);
    bad(big, &lim, "smtpd_command_line_limit", "a command line over line_max");

    small.size_max = 10;
    {
        struct buf items;
        const char *why;
        buf_init(&items);
        const char *ten = "POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
                          ".12345678\r\n.\r\n";
        ok(run(ten, strlen(ten), NULL, &small, &items, &why) == 0,
           "exactly size_max bytes (a stuffed dot and the end line not counted)");
        buf_free(&items);
    }
    bad("POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\n123456789\r\n.\r\n", &small,
        "message_size_limit", "one byte more than size_max");
    bad("POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\n12345678\r\n.x", &small,
        "message_size_limit", "over size_max with a line that only looked like the end");
}

int main(void)
{
    plan_lazy();
    test_good();
    test_end();
    test_errors();
    return done_testing();
}
