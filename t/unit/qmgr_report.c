/*
 * qmgr_report - unit tests of the notice text (qmgr/report.c): the
 * header of a notice and its Subject, the fields of part 2 (RFC 3464) for
 * failed, delayed and relayed recipients with and without ORCPT, smtp
 * and X-Postern diagnostics, what part 3 returns under RET=FULL, RET=HDRS
 * and bounce_size_limit, a boundary that the original already contains,
 * sanitising of what remote servers said, folding that keeps every
 * character, line lengths, *eightbit, header lookup on hostile input,
 * and, when python3 is installed, that its email package reads the
 * notice as multipart/report with the three expected parts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../qmgr/report.h"
#include "tap.h"
#include "base/util.h"

#define S 1000000LL
#define ARRIVAL (1796630400LL * S) /* Mon, 07 Dec 2026 08:00:00 +0000 */
#define NOW (ARRIVAL + 60 * S)
#define UNTIL (ARRIVAL + 5 * 86400 * S)

#define ORIG_HDR                                                                                   \
    "Received: from client.example by postern.test;\r\n\tMon, 07 Dec 2026 07:59:59 +0000\r\n"      \
    "From: Alice <alice@sender.test>\r\n"                                                          \
    "Subject: lunch\r\n\tplans\r\n"                                                                \
    "Message-ID: <m1@client.example>\r\n"
#define ORIG ORIG_HDR "\r\nBody line one.\r\nBody line two.\r\n"

static const struct report_rcpt three[3] = {
    {"bob@example.org", "rfc822;bob@example.org", RA_FAILED, "5.1.1", "mx1.example.org", "smtp",
     "550 5.1.1 <bob@example.org>: no such user", "rcpt", NOW, 0, NULL},
    {"carol@example.net", NULL, RA_FAILED, "5.1.2", NULL, NULL,
     "the domain example.net does not exist", "dns", NOW, 0, NULL},
    {"dan@example.com", NULL, RA_DELAYED, "4.4.1", "mx.example.com", "smtp", "421 try later",
     "connect", NOW, UNTIL, "Postern keeps trying for up to 5 days."},
};

static struct report base(const struct report_rcpt *r, size_t n)
{
    struct report rp;

    memset(&rp, 0, sizeof(rp));
    rp.kind = RK_SENDER;
    rp.reporting_mta = "postern.test";
    rp.rcpt_to = "alice@sender.test";
    rp.queue_id = "0660C36F14A92D0000";
    rp.orig_sender = "alice@sender.test";
    rp.arrival_us = ARRIVAL;
    rp.now_us = NOW;
    rp.message_id = "<0660C36F14A92D1000.notice@postern.test>";
    rp.ret = DSN_RET_HDRS;
    rp.size_limit = 50000;
    rp.orig = ORIG;
    rp.orig_len = strlen(ORIG);
    rp.r = r;
    rp.n = n;
    return rp;
}

/* The notice as a C string (struct buf keeps a NUL after its data). */
static char *build(const struct report *rp, int *eightbit, size_t *len)
{
    struct buf b;

    buf_init(&b);
    report_build(&b, rp, eightbit);
    if (len)
        *len = b.len;
    return b.data;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, k = strlen(needle);

    for (const char *p = strstr(hay, needle); p; p = strstr(p + k, needle))
        n++;
    return n;
}

/* The boundary parameter of the top Content-Type (static). */
static const char *boundary_of(const char *msg)
{
    static char b[128];
    const char *p = strstr(msg, "boundary=\"");
    size_t n;

    b[0] = '\0';
    if (p == NULL)
        return b;
    p += strlen("boundary=\"");
    n = strcspn(p, "\"");
    if (n < sizeof(b)) {
        memcpy(b, p, n);
        b[n] = '\0';
    }
    return b;
}

/* Part k (1-based): its header when head, else its content (without the
 * CR LF that belongs to the next delimiter). Malloc'd, or NULL. */
static char *part(const char *msg, int k, int head)
{
    char delim[140];
    const char *p = msg, *q, *body;

    snprintf(delim, sizeof(delim), "\r\n--%s", boundary_of(msg));
    for (int i = 0; i < k; i++) {
        p = strstr(p, delim);
        if (p == NULL)
            return NULL;
        p += strlen(delim);
    }
    if (strncmp(p, "\r\n", 2) != 0)
        return NULL; /* the closing delimiter */
    p += 2;
    q = strstr(p, delim);
    body = strstr(p, "\r\n\r\n");
    if (q == NULL || body == NULL || body > q)
        return NULL;
    if (head)
        return xstrndup(p, (size_t)(body - p) + 2);
    body += 4;
    return xstrndup(body, (size_t)(q - body));
}

/* s with each CR LF + white space replaced by the white space (RFC 5322
 * unfolding). */
static char *unfold(const char *s)
{
    char *o = xmalloc(strlen(s) + 1), *d = o;

    for (; *s; s++) {
        if (s[0] == '\r' && s[1] == '\n' && (s[2] == ' ' || s[2] == '\t')) {
            s++;
            continue;
        }
        *d++ = *s;
    }
    *d = '\0';
    return o;
}

/* s with each line break and the indentation after it as one space: the
 * wrapped text of part 1 as one line. */
static char *flat(const char *s)
{
    char *o = xmalloc(strlen(s) + 1), *d = o;

    while (*s) {
        if (s[0] == '\r' && s[1] == '\n') {
            s += 2;
            while (*s == ' ')
                s++;
            *d++ = ' ';
            continue;
        }
        *d++ = *s++;
    }
    *d = '\0';
    return o;
}

static char *flat_part(const char *msg, int k)
{
    char *p = part(msg, k, 0), *f = flat(p ? p : "");

    free(p);
    return f;
}

/* s without CR, LF and spaces: what is left of a value however it was
 * folded or broken. */
static char *squeeze(const char *s)
{
    char *o = xmalloc(strlen(s) + 1), *d = o;

    for (; *s; s++)
        if (*s != '\r' && *s != '\n' && *s != ' ')
            *d++ = *s;
    *d = '\0';
    return o;
}

/* Every line of p[0..n) ends with CR LF and is at most max bytes long. */
static int lines_ok(const char *p, size_t n, size_t max)
{
    size_t col = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r') {
            if (i + 1 >= n || p[i + 1] != '\n')
                return 0;
            i++;
            col = 0;
        } else if (p[i] == '\n') {
            return 0;
        } else if (++col > max) {
            return 0;
        }
    }
    return col == 0;
}

/* The notice's header section (up to its empty line), malloc'd. */
static char *head_of(const char *msg)
{
    const char *e = strstr(msg, "\r\n\r\n");

    return xstrndup(msg, e ? (size_t)(e - msg) + 2 : strlen(msg));
}

/* ---- the header and part 2 for three recipients ---- */

static const char part2_want[] =
    "Reporting-MTA: dns; postern.test\r\n"
    "X-Postern-Queue-ID: 0660C36F14A92D0000\r\n"
    "Arrival-Date: Mon, 07 Dec 2026 08:00:00 +0000\r\n"
    "\r\n"
    "Original-Recipient: rfc822;bob@example.org\r\n"
    "Final-Recipient: rfc822; bob@example.org\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Remote-MTA: dns; mx1.example.org\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: no such user\r\n"
    "Last-Attempt-Date: Mon, 07 Dec 2026 08:01:00 +0000\r\n"
    "\r\n"
    "Final-Recipient: rfc822; carol@example.net\r\n"
    "Action: failed\r\n"
    "Status: 5.1.2\r\n"
    "Diagnostic-Code: X-Postern; the domain example.net does not exist\r\n"
    "Last-Attempt-Date: Mon, 07 Dec 2026 08:01:00 +0000\r\n"
    "\r\n"
    "Final-Recipient: rfc822; dan@example.com\r\n"
    "Action: delayed\r\n"
    "Status: 4.4.1\r\n"
    "Remote-MTA: dns; mx.example.com\r\n"
    "Diagnostic-Code: smtp; 421 try later\r\n"
    "Last-Attempt-Date: Mon, 07 Dec 2026 08:01:00 +0000\r\n"
    "Will-Retry-Until: Sat, 12 Dec 2026 08:00:00 +0000\r\n";

static void test_three(void)
{
    struct report rp = base(three, 3);
    int eb = 7;
    size_t len;
    char *m = build(&rp, &eb, &len), *h = head_of(m), *p1 = part(m, 1, 0), *p1f,
         *p2 = part(m, 2, 0), *h1 = part(m, 1, 1), *h2 = part(m, 2, 1), *h3 = part(m, 3, 1);

    ok(strncmp(h, "Date: Mon, 07 Dec 2026 08:01:00 +0000\r\n", 39) == 0, "Date first, in UTC");
    ok(strstr(h, "\r\nFrom: \"Mail Delivery System\" <MAILER-DAEMON@postern.test>\r\n"), "From:");
    ok(strstr(h, "\r\nTo: <alice@sender.test>\r\n"), "To: the sender");
    ok(strstr(h, "\r\nSubject: Undelivered mail returned to sender: lunch plans\r\n"),
       "failed + delayed: the failure subject, with the unfolded original subject");
    ok(strstr(h, "\r\nMessage-ID: <0660C36F14A92D1000.notice@postern.test>\r\n"), "Message-ID");
    ok(strstr(h, "\r\nIn-Reply-To: <m1@client.example>\r\n"), "In-Reply-To");
    ok(strstr(h, "\r\nReferences: <m1@client.example>\r\n"), "References");
    ok(strstr(h, "\r\nAuto-Submitted: auto-replied\r\n"), "Auto-Submitted (RFC 3834)");
    ok(strstr(h, "\r\nMIME-Version: 1.0\r\n"), "MIME-Version");
    {
        char *u = unfold(h);
        ok(strstr(u, "\r\nContent-Type: multipart/report; report-type=delivery-status; "
                     "boundary=\"=_postern_0660C36F14A92D1000noticeposterntest\"\r\n"),
           "Content-Type multipart/report, boundary from the Message-ID");
        free(u);
    }
    ok(strstr(h, "Content-Transfer-Encoding") == NULL, "7-bit: no Content-Transfer-Encoding");
    ok(lines_ok(h, strlen(h), 78), "header lines within 78");
    is_int(eb, 0, "*eightbit 0");
    is_int(count(m, "--=_postern_0660C36F14A92D1000noticeposterntest"), 4,
           "three parts and the closing delimiter");
    ok(strstr(m, "\r\n--=_postern_0660C36F14A92D1000noticeposterntest--\r\n") && m[len - 1] == '\n',
       "ends with the closing delimiter");
    ok(lines_ok(m, len, 998), "every line ends with CR LF, none over 998");

    ok(h1 && strcmp(h1, "Content-Type: text/plain; charset=us-ascii\r\n"
                        "Content-Description: Notification\r\n") == 0,
       "part 1 header");
    ok(h2 && strcmp(h2, "Content-Type: message/delivery-status\r\n"
                        "Content-Description: Delivery report\r\n") == 0,
       "part 2 header");
    ok(h3 && strcmp(h3, "Content-Type: text/rfc822-headers\r\n"
                        "Content-Description: Undelivered message headers\r\n") == 0,
       "part 3 header (RET=HDRS)");
    is_str(p2, part2_want, "part 2, field by field");
    is_int(count(p2 ? p2 : "", "Original-Recipient:"), 1, "Original-Recipient only with ORCPT");
    is_int(count(p2 ? p2 : "", "Will-Retry-Until:"), 1, "Will-Retry-Until only when delayed");

    p1f = flat(p1 ? p1 : "");
    ok(strstr(p1f, "<bob@example.org>: failed at the rcpt step"),
       "part 1: failed at the rcpt step");
    ok(strstr(p1f, "Remote server: mx1.example.org"), "part 1: the remote host");
    ok(strstr(p1f, "550 5.1.1 <bob@example.org>: no such user"), "part 1: its reply");
    ok(strstr(p1f, "<carol@example.net>: failed while looking up the domain in DNS"),
       "part 1: the dns step");
    ok(strstr(p1f, "Reason: the domain example.net does not exist"), "part 1: our reason");
    ok(strstr(p1f, "<dan@example.com>: delayed") &&
           strstr(p1f, "will retry until Sat, 12 Dec 2026 08:00:00 +0000"),
       "part 1: delayed, will retry until");
    ok(strstr(p1f, "Postern keeps trying for up to 5 days."), "part 1: the why sentence");
    ok(strstr(p1f, "0660C36F14A92D0000"), "part 1: the queue ID");
    ok(lines_ok(p1, strlen(p1), 78), "part 1 wrapped");
    free(p1f);
    free(m);
    free(h);
    free(p1);
    free(p2);
    free(h1);
    free(h2);
    free(h3);
}

static void test_subjects(void)
{
    struct report_rcpt d[2] = {three[2], three[2]}, rl[2];
    struct report rp;
    char *m, *p2, *p1;

    d[1].will_retry_until_us = 0;
    d[1].addr = "erin@example.com";
    rp = base(d, 2);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "\r\nSubject: Delayed mail (still being retried): lunch plans\r\n"),
       "all delayed: the delay subject");
    p2 = part(m, 2, 0);
    is_int(count(p2 ? p2 : "", "Action: delayed\r\n"), 2, "Action: delayed");
    is_int(count(p2 ? p2 : "", "Will-Retry-Until: Sat, 12 Dec 2026 08:00:00 +0000\r\n"), 1,
           "Will-Retry-Until when set, omitted when 0");
    p1 = flat_part(m, 1);
    ok(strstr(p1, "<erin@example.com>: delayed, the last attempt failed while connecting"),
       "part 1: the step of the last attempt");
    ok(strstr(p1, "still being retried"), "part 1: no date, still being retried");
    free(p1);
    free(p2);
    free(m);

    memset(rl, 0, sizeof(rl));
    rl[0].addr = "frank@example.org";
    rl[0].action = RA_RELAYED;
    rl[0].status = "2.0.0";
    rl[0].remote_mta = "mx.example.org";
    rl[0].will_retry_until_us = UNTIL; /* only for RA_DELAYED */
    rl[1] = rl[0];
    rl[1].addr = "gina@example.org";
    rl[1].orcpt = "rfc822;gina+2Bx@example.org";
    rl[1].status = NULL;
    rp = base(rl, 2);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "\r\nSubject: Delivery report: relayed: lunch plans\r\n"),
       "all relayed: the relay subject");
    p2 = part(m, 2, 0);
    is_int(count(p2 ? p2 : "", "Action: relayed\r\nStatus: 2.0.0\r\n"), 2,
           "Action: relayed, Status 2.0.0 (the default when NULL)");
    ok(p2 && strstr(p2, "Original-Recipient: rfc822;gina+2Bx@example.org\r\n"),
       "Original-Recipient as received (xtext)");
    ok(p2 && strstr(p2, "Diagnostic-Code") == NULL, "no Diagnostic-Code without diag");
    ok(p2 && strstr(p2, "Will-Retry-Until") == NULL, "no Will-Retry-Until when relayed");
    ok(p2 && strstr(p2, "Last-Attempt-Date") == NULL, "no Last-Attempt-Date when 0");
    p1 = flat_part(m, 1);
    ok(strstr(p1, "<frank@example.org>: relayed to a server that does not send delivery notices"),
       "part 1: relayed");
    free(p1);
    free(p2);
    free(m);

    struct report_rcpt mix[2] = {rl[0], three[0]};
    rp = base(mix, 2);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "\r\nSubject: Undelivered mail returned to sender: lunch plans\r\n"),
       "relayed + failed: the failure subject");
    free(m);

    rp = base(three, 1);
    rp.kind = RK_POSTMASTER;
    rp.rcpt_to = "postmaster@postern.test";
    rp.orig_sender = "";
    rp.queue_id = "0660C36F14A92D1000";
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "\r\nSubject: Undeliverable delivery notice: lunch plans\r\n"),
       "postmaster: its own subject");
    ok(strstr(m, "\r\nTo: <postmaster@postern.test>\r\n"), "postmaster: To:");
    p1 = flat_part(m, 1);
    ok(strstr(p1, "could not deliver one of its own delivery notices") &&
           strstr(p1, "returned below (queue ID 0660C36F14A92D1000, envelope sender <>)") &&
           strstr(p1, "nothing more will be tried"),
       "postmaster: what the notice was and that nothing is retried");
    ok(strstr(p1, "<bob@example.org>: failed at the rcpt step"), "postmaster: the recipient");
    free(p1);
    free(m);

    static const char o1[] = "Subject: caf\xc3\xa9\x01\tok\r\n\r\nx\r\n";
    rp = base(three, 1);
    rp.orig = o1;
    rp.orig_len = strlen(o1);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "\r\nSubject: Undelivered mail returned to sender: caf??? ok\r\n"),
       "subject: 8-bit and controls as '?', a tab as a space");
    free(m);

    static const char o2[] = "Subjects: no\r\nX: 1\r\n\r\nSubject: in the body\r\n";
    rp.orig = o2;
    rp.orig_len = strlen(o2);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "\r\nSubject: Undelivered mail returned to sender\r\n"),
       "no Subject (not \"Subjects\", not the body): the plain subject");
    ok(strstr(m, "In-Reply-To") == NULL, "no Message-ID: no In-Reply-To");
    free(m);

    static const char o3[] = "Subject:    \r\n\r\n";
    rp.orig = o3;
    rp.orig_len = strlen(o3);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "\r\nSubject: Undelivered mail returned to sender\r\n"),
       "an empty Subject adds nothing");
    free(m);

    /* 400 bytes of subject: 200 kept, folded, every kept character there */
    struct buf o4;
    char want[256], *h, *u, *s;
    buf_init(&o4);
    buf_adds(&o4, "Subject: ");
    for (int i = 0; i < 40; i++)
        buf_adds(&o4, "abcdefghi ");
    buf_adds(&o4, "\r\n\r\n");
    /* byte 200 is a space: stripped */
    snprintf(want, sizeof(want), "Subject: Undelivered mail returned to sender: %.199s\r\n",
             o4.data + 9);
    rp.orig = o4.data;
    rp.orig_len = o4.len;
    m = build(&rp, NULL, NULL);
    h = head_of(m);
    u = unfold(h);
    ok(strstr(u, want), "a long subject cut to 200 bytes");
    s = strstr(h, "\r\nSubject: ");
    ok(s && strstr(s + 2, "\r\n ") < strstr(s + 2, "\r\nMessage-ID"),
       "and folded over more than one line");
    ok(lines_ok(h, strlen(h), 78), "header lines within 78");
    buf_free(&o4);
    free(h);
    free(u);
    free(m);

    static const char o5[] = "Message-ID: <a b@x>\r\n\r\n";
    static const char o6[] = "Message-Id: no-angles@x\r\n\r\n";
    static const char o7[] = "message-id:  <ok@x>  \r\n\r\n";
    rp.orig = o5;
    rp.orig_len = strlen(o5);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "In-Reply-To") == NULL && strstr(m, "References") == NULL,
       "Message-ID with white space inside: not repeated");
    free(m);
    rp.orig = o6;
    rp.orig_len = strlen(o6);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "In-Reply-To") == NULL, "Message-ID without <>: not repeated");
    free(m);
    rp.orig = o7;
    rp.orig_len = strlen(o7);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "\r\nIn-Reply-To: <ok@x>\r\nReferences: <ok@x>\r\n"),
       "Message-ID found in any case, trimmed");
    free(m);
}

/* ---- part 3 ---- */

static void test_returned(void)
{
    struct report rp = base(three, 1);
    char *m, *h3, *p3, *p1;

    rp.ret = DSN_RET_FULL;
    m = build(&rp, NULL, NULL);
    h3 = part(m, 3, 1);
    p3 = part(m, 3, 0);
    ok(h3 && strcmp(h3, "Content-Type: message/rfc822\r\n"
                        "Content-Description: Undelivered message\r\n") == 0,
       "RET=FULL: message/rfc822");
    is_str(p3, ORIG, "RET=FULL: the whole original, as it was");
    p1 = flat_part(m, 1);
    ok(strstr(p1, "A copy of your message is returned below."), "part 1 says so");
    free(p1);
    free(h3);
    free(p3);
    free(m);

    rp.ret = DSN_RET_HDRS;
    m = build(&rp, NULL, NULL);
    p3 = part(m, 3, 0);
    ok(strstr(m, "Content-Type: text/rfc822-headers\r\n"), "RET=HDRS: text/rfc822-headers");
    is_str(p3, ORIG_HDR, "RET=HDRS: the header section");
    ok(strstr(m, "Body line") == NULL, "RET=HDRS: no body");
    free(p3);
    free(m);

    rp.ret = DSN_RET_NONE;
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "Content-Type: text/rfc822-headers\r\n") && !strstr(m, "Body line"),
       "no RET: headers");
    free(m);

    rp.ret = DSN_RET_FULL;
    rp.size_limit = strlen(ORIG);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "Content-Type: message/rfc822\r\n"), "RET=FULL at exactly size_limit: whole");
    free(m);
    rp.size_limit = strlen(ORIG) - 1;
    m = build(&rp, NULL, NULL);
    p3 = part(m, 3, 0);
    ok(strstr(m, "Content-Type: text/rfc822-headers\r\n") && !strstr(m, "Body line"),
       "RET=FULL over size_limit: headers only");
    is_str(p3, ORIG_HDR, "the whole header section");
    p1 = flat_part(m, 1);
    {
        char want[128];
        snprintf(want, sizeof(want), "larger than %zu bytes", strlen(ORIG) - 1);
        ok(strstr(p1, want) && strstr(p1, "only its headers are returned"),
           "part 1: larger than size_limit, only the headers");
    }
    ok(strstr(p1, "cut") == NULL, "the header section is not cut");
    free(p1);
    free(p3);
    free(m);

    /* the Received field is 2 lines: a limit inside the second cuts after the first */
    const char *second = strstr(ORIG, "\r\n\t") + 2;
    rp.ret = DSN_RET_HDRS;
    rp.size_limit = (uint64_t)(second - ORIG) + 10;
    m = build(&rp, NULL, NULL);
    p3 = part(m, 3, 0);
    ok(p3 && strlen(p3) == (size_t)(second - ORIG) && strncmp(p3, ORIG, strlen(p3)) == 0,
       "a header section over size_limit: cut after the last whole line");
    p1 = flat_part(m, 1);
    ok(strstr(p1, "larger than") && strstr(p1, "cut after the last whole line"),
       "part 1 says it was cut");
    ok(strstr(p1, "only its headers") == NULL, "RET=HDRS: nothing about the body");
    free(p1);
    free(p3);
    free(m);

    rp.size_limit = 5; /* less than the first line */
    m = build(&rp, NULL, NULL);
    p3 = part(m, 3, 0);
    is_str(p3, "", "no whole line fits: empty, still a part");
    ok(lines_ok(m, strlen(m), 998), "and the notice is well formed");
    free(p3);
    free(m);

    static const char nonl[] = "Subject: x\r\n\r\nno line end at the end";
    rp.size_limit = 50000;
    rp.ret = DSN_RET_FULL;
    rp.orig = nonl;
    rp.orig_len = strlen(nonl);
    m = build(&rp, NULL, NULL);
    p3 = part(m, 3, 0);
    is_str(p3, "Subject: x\r\n\r\nno line end at the end\r\n",
           "an original without a final CR LF gets one");
    ok(lines_ok(m, strlen(m), 998), "every line ends with CR LF");
    free(p3);
    free(m);

    static const char nohead[] = "X: 1\r\nSubject: only headers";
    rp.ret = DSN_RET_HDRS;
    rp.orig = nohead;
    rp.orig_len = strlen(nohead);
    m = build(&rp, NULL, NULL);
    p3 = part(m, 3, 0);
    is_str(p3, "X: 1\r\nSubject: only headers\r\n", "no empty line: all of it is header");
    free(p3);
    free(m);

    rp.orig = NULL;
    rp.orig_len = 0;
    m = build(&rp, NULL, NULL);
    is_int(count(m, "--=_postern_"), 3, "no original: two parts");
    ok(strstr(m, "Content-Type: text/rfc822-headers") == NULL &&
           strstr(m, "Content-Type: message/rfc822") == NULL,
       "no part 3");
    ok(strstr(m, "\r\nSubject: Undelivered mail returned to sender\r\n"), "plain subject");
    free(m);
}

static void test_eightbit(void)
{
    static const char o8[] = "Subject: x\r\n\r\ncaf\xc3\xa9\r\n";
    static const char h8[] = "Subject: x\r\nX-Name: caf\xc3\xa9\r\n\r\nbody\r\n";
    struct report rp = base(three, 1);
    int eb = 7;
    char *m, *h3;

    rp.orig = o8;
    rp.orig_len = strlen(o8);
    rp.ret = DSN_RET_FULL;
    m = build(&rp, &eb, NULL);
    is_int(eb, 1, "8-bit body returned: *eightbit 1");
    h3 = part(m, 3, 1);
    ok(h3 && strstr(h3, "Content-Transfer-Encoding: 8bit\r\n"), "part 3 says 8bit");
    {
        char *h = head_of(m);
        ok(strstr(h, "\r\nContent-Transfer-Encoding: 8bit\r\n"), "so does the notice");
        free(h);
    }
    free(h3);
    free(m);
    rp.ret = DSN_RET_HDRS;
    eb = 7;
    m = build(&rp, &eb, NULL);
    is_int(eb, 0, "8-bit only in the body, headers returned: 0");
    ok(strstr(m, "Content-Transfer-Encoding") == NULL, "no Content-Transfer-Encoding");
    free(m);
    rp.orig = h8;
    rp.orig_len = strlen(h8);
    eb = 7;
    m = build(&rp, &eb, NULL);
    is_int(eb, 1, "8-bit in the returned headers: 1");
    free(m);
    m = build(&rp, NULL, NULL);
    ok(m != NULL, "eightbit may be NULL");
    free(m);

    struct report_rcpt r8 = three[0];
    r8.addr = "b\xc3\xb6"
              "b@example.org";
    r8.diag = "550 b\xc3\xb6"
              "b unknown";
    rp = base(&r8, 1);
    eb = 7;
    m = build(&rp, &eb, NULL);
    is_int(eb, 0, "8-bit in an address and a reply: sanitised, 0");
    ok(strstr(m, "Final-Recipient: rfc822; b??b@example.org\r\n"), "8-bit address as '?'");
    free(m);
}

/* ---- boundary, sanitising, folding ---- */

static void test_boundary(void)
{
    struct report rp = base(three, 3);
    char *m = build(&rp, NULL, NULL), b0[128], *o;
    struct buf orig;

    strlcpy_p(b0, boundary_of(m), sizeof(b0));
    free(m);
    is_str(b0, "=_postern_0660C36F14A92D1000noticeposterntest", "the first candidate");

    buf_init(&orig);
    buf_printf(&orig, "%s--%s\r\nfake part\r\n", ORIG, b0);
    rp.orig = orig.data;
    rp.orig_len = orig.len;
    rp.ret = DSN_RET_FULL;
    m = build(&rp, NULL, NULL);
    {
        char want[140];
        snprintf(want, sizeof(want), "%s_1", b0);
        is_str(boundary_of(m), want, "the original contains it: a suffix");
        snprintf(want, sizeof(want), "--%s_1", b0);
        is_int(count(m, want), 4, "the new one delimits only the three parts");
    }
    free(m);

    buf_printf(&orig, "--%s_1\r\n--%s_2x\r\n", b0, b0);
    rp.orig = orig.data;
    rp.orig_len = orig.len;
    m = build(&rp, NULL, NULL);
    {
        char want[140];
        snprintf(want, sizeof(want), "%s_3", b0);
        is_str(boundary_of(m), want, "_1 and _2 (as a prefix) taken too: _3");
    }
    free(m);
    buf_free(&orig);

    /* a server that replies with the boundary cannot split the notice */
    struct report_rcpt r = three[0];
    o = xasprintf("550 --%s", b0);
    r.diag = o;
    rp = base(&r, 1);
    m = build(&rp, NULL, NULL);
    ok(strcmp(boundary_of(m), b0) != 0, "a reply holding the boundary: another one");
    free(m);
    free(o);

    r = three[0];
    o = xasprintf("Please see --%s.", b0);
    r.why = o; /* part 1 only */
    rp = base(&r, 1);
    m = build(&rp, NULL, NULL);
    ok(strcmp(boundary_of(m), b0) != 0, "part 1 holding the boundary: another one");
    free(m);
    free(o);
    r.why = NULL;

    rp.message_id = NULL;
    m = build(&rp, NULL, NULL);
    is_str(boundary_of(m), "=_postern_0660C36F14A92D0000", "no Message-ID: from the queue ID");
    free(m);
}

static void test_sanitise(void)
{
    struct report_rcpt r = three[0];
    struct report rp;
    char *m, *p2, *p1;
    int eb = 7;

    r.diag = "550 5.1.1 bad\r\nInjected: yes\x01\xff\x7f";
    r.remote_mta = "mx\r\nX-Evil: 1";
    r.orcpt = "rfc822;bob\r\nX: 2";
    r.status = "5.1.1\r\nX: 3";
    rp = base(&r, 1);
    rp.envid = "env\r\nX: 4";
    m = build(&rp, &eb, NULL);
    p2 = part(m, 2, 0);
    ok(strstr(m, "\r\nInjected") == NULL && strstr(m, "\r\nX-Evil") == NULL &&
           strstr(m, "\r\nX: ") == NULL,
       "CR LF in a value cannot start a field");
    ok(p2 && strstr(p2, "Diagnostic-Code: smtp; 550 5.1.1 bad  Injected: yes ?\r\n"),
       "part 2: controls as spaces, 8-bit as '?'");
    ok(p2 && strstr(p2, "Remote-MTA: dns; mx  X-Evil: 1\r\n"), "Remote-MTA sanitised");
    ok(p2 && strstr(p2, "Original-Recipient: rfc822;bob  X: 2\r\n"), "ORCPT sanitised");
    ok(p2 && strstr(p2, "Original-Envelope-Id: env  X: 4\r\n"), "ENVID sanitised");
    ok(p2 && strstr(p2, "Status: 5.0.0\r\n"), "a status that is not d.d.d: the default");
    p1 = flat_part(m, 1);
    ok(strstr(p1, "Its reply: 550 5.1.1 bad??Injected: yes???"), "part 1: '?' for each");
    ok(strstr(p1, "Remote server: mx??X-Evil: 1"), "part 1: the host too");
    is_int(eb, 0, "nothing 8-bit left");
    free(p1);
    free(p2);
    free(m);

    r = three[0];
    r.diag_type = "SMTP";
    rp = base(&r, 1);
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "Diagnostic-Code: smtp; 550"), "diag_type in any case");
    free(m);
    r.diag_type = "x-unix";
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "Diagnostic-Code: X-Postern; 550"), "other diag types: X-Postern");
    free(m);
    r.diag = "";
    m = build(&rp, NULL, NULL);
    ok(strstr(m, "Diagnostic-Code") == NULL, "empty diag: no Diagnostic-Code");
    free(m);

    static const char *const steps[][2] = {
        {"dns", "while looking up the domain in DNS"},
        {"connect", "while connecting"},
        {"greeting", "at the greeting step"},
        {"helo", "at the helo step"},
        {"starttls", "at the starttls step"},
        {"auth", "at the auth step"},
        {"mail", "at the mail step"},
        {"rcpt", "at the rcpt step"},
        {"data", "at the data step"},
        {"dot", "at the dot step"},
        {"expired", "in the time allowed"},
        {"admin", "the mail administrator returned it"},
        {"odd\x01", "at the odd? step"},
    };
    for (size_t i = 0; i < nitems(steps); i++) {
        r = three[0];
        r.step = steps[i][0];
        rp = base(&r, 1);
        m = build(&rp, NULL, NULL);
        p1 = flat_part(m, 1);
        ok(strstr(p1, steps[i][1]), "step %zu: %s", i, steps[i][1]);
        free(p1);
        free(m);
    }
}

static void test_folding(void)
{
    struct report_rcpt r = three[0];
    struct report rp;
    struct buf d, w;
    char *m, *p2, *u, *want, *p1;

    buf_init(&d);
    buf_adds(&d, "550-5.1.1");
    for (int i = 0; i < 40; i++)
        buf_printf(&d, " word%02d", i);
    buf_adds(&d, " ");
    for (int i = 0; i < 120; i++) /* one long word: never cut */
        buf_addc(&d, (char)('a' + i % 26));
    buf_adds(&d, " end");
    r.diag = d.data;
    rp = base(&r, 1);
    m = build(&rp, NULL, NULL);
    p2 = part(m, 2, 0);
    u = unfold(p2 ? p2 : "");
    want = xasprintf("\r\nDiagnostic-Code: smtp; %s\r\n", d.data);
    ok(strstr(u, want), "unfolded, the long reply is all there, unchanged");
    ok(count(p2 ? p2 : "", "\r\n ") >= 4, "folded over several lines");
    {
        int short_or_word = 1;
        for (const char *l = p2; l && *l;) {
            const char *e = strstr(l, "\r\n");
            size_t n = e ? (size_t)(e - l) : strlen(l);
            if (n > 78 && !memmem(l, n, "abcdefghijklmnopqrstuvwxyz", 26))
                short_or_word = 0;
            l = e ? e + 2 : l + n;
        }
        ok(short_or_word, "each line within 78 but the one with the long word");
    }
    p1 = flat_part(m, 1);
    ok(strstr(p1, d.data + 4), "part 1 has it all too");
    free(p1);
    free(want);
    free(u);
    free(p2);
    free(m);

    /* a 2000-byte word must still give lines of at most 998 */
    buf_init(&w);
    for (int i = 0; i < 2000; i++)
        buf_addc(&w, (char)('A' + i % 26));
    r.diag = w.data;
    r.why = w.data;
    r.addr = w.data;
    rp = base(&r, 1);
    {
        size_t len;
        char *n;
        m = build(&rp, NULL, &len);
        ok(lines_ok(m, len, 998), "a 2000-byte word: no line over 998");
        p2 = part(m, 2, 0);
        n = squeeze(p2 ? p2 : "");
        want = xasprintf("Diagnostic-Code:smtp;%s", w.data);
        ok(strstr(n, want), "and no byte of it is lost");
        free(want);
        free(n);
        free(p2);
        free(m);
    }
    buf_free(&w);
    buf_free(&d);
}

/* ---- report_header_value ---- */

/* Look name up in exactly len bytes of s copied to the heap (so that a
 * read past len is caught under ASan). */
static int hv(const char *s, size_t len, const char *name, char *buf, size_t size)
{
    char *p = xmalloc(len ? len : 1);
    int rc;

    memcpy(p, s, len);
    rc = report_header_value(p, len, name, buf, size);
    free(p);
    return rc;
}

#define HV(lit, name) hv(lit, sizeof(lit) - 1, name, v, sizeof(v))

static void test_header_value(void)
{
    char v[64];

    is_int(HV("From: a\r\nSubject: hi\r\n\r\n", "Subject"), 1, "found");
    is_str(v, "hi", "its value");
    is_int(HV("Subjects: no\r\nSubject : spaced\r\n\r\n", "Subject"), 1,
           "\"Subjects\" is not \"Subject\"; white space before the colon");
    is_str(v, "spaced", "the obsolete form's value");
    HV("SUBJECT: up\r\n\r\n", "subject");
    is_str(v, "up", "names in any case");
    HV("Subject: a\r\n b\r\n\tc\r\nX: d\r\n\r\n", "Subject");
    is_str(v, "a b\tc", "continuation lines unfolded");
    HV("A: 1\nSubject: bare\n cont\n\nSubject: body\n", "Subject");
    is_str(v, "bare cont", "bare LF line ends");
    is_int(HV("A: 1\r\n\r\nSubject: in the body\r\n", "Subject"), 0, "not in the body");
    is_str(v, "", "not found: \"\"");
    is_int(HV("X: 1\r\nSubject: last", "Subject"), 1, "no empty line: all is header");
    is_str(v, "last", "and the last line without CR LF");
    HV("Subject: a\0b\r\n\r\n", "Subject");
    is_str(v, "ab", "a NUL in the value is dropped");
    HV("Sub\0ject: no\r\nSubject: yes\r\n\r\n", "Subject");
    is_str(v, "yes", "a NUL in a name does not match");
    HV("Subject no colon\r\n continued\r\nSubject: yes\r\n\r\n", "Subject");
    is_str(v, "yes", "a field without colon is skipped");
    is_int(HV(" Subject: folded\r\n\r\n", "Subject"), 0, "a continuation line is no field");
    HV("Subject:   padded \t \r\n\r\n", "Subject");
    is_str(v, "padded", "white space stripped at both ends");
    is_int(HV("Subject:\r\n\r\n", "Subject"), 1, "an empty value is found");
    is_str(v, "", "as \"\"");
    HV("Subject:\r\n   late\r\n\r\n", "Subject");
    is_str(v, "late", "a value on the continuation line only");
    is_int(hv("Subject: abcdef", 12, "Subject", v, sizeof(v)), 1, "stops at len");
    is_str(v, "abc", "only the bytes before len");
    is_int(hv("Subject", 7, "Subject", v, sizeof(v)), 0, "the name alone, at len");
    is_int(hv("Subject:", 8, "Subject", v, sizeof(v)), 1, "the colon last, at len");
    is_int(hv("Subject: x\r", 11, "Subject", v, sizeof(v)), 1, "ends in a lone CR");
    is_str(v, "x", "the CR is not kept");
    is_int(hv("", 0, "Subject", v, sizeof(v)), 0, "empty message");
    is_int(HV("Subject: abcdef\r\n\r\n", ""), 0, "an empty name never matches");
    is_int(HV(": x\r\n\r\n", ""), 0, "not even \": x\"");
    is_int(report_header_value(NULL, 10, "Subject", v, sizeof(v)), 0, "NULL message");
    {
        char small[4];
        hv("Subject: abcdef\r\n", 17, "Subject", small, sizeof(small));
        is_str(small, "abc", "cut to size - 1");
        hv("Subject:  a   bcdef\r\n", 21, "Subject", small, sizeof(small));
        is_str(small, "a", "what is kept has no trailing white space");
        is_int(hv("Subject: abc\r\n", 14, "Subject", small, 1), 1, "size 1: found");
        is_str(small, "", "and \"\"");
        is_int(hv("Subject: abc\r\n", 14, "Subject", NULL, 0), 1, "buf NULL, size 0");
    }
    {
        char big[2048];
        struct buf b;
        buf_init(&b);
        buf_adds(&b, "Subject: ");
        for (int i = 0; i < 1500; i++)
            buf_addc(&b, 'x');
        hv(b.data, b.len, "Subject", big, sizeof(big));
        is_int(strlen(big), 1500, "a long value without line end");
        buf_free(&b);
    }
}

/* ---- python's email package ---- */

static const char py_script[] =
    "import sys, email, email.policy\n"
    "m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)\n"
    "p = list(m.iter_parts())\n"
    "t = [x.get_content_type() for x in p]\n"
    "print('#', m.get_content_type(), m.get_param('report-type'), t, m.defects)\n"
    "assert m.get_content_type() == 'multipart/report'\n"
    "assert m.get_param('report-type') == 'delivery-status'\n"
    "assert len(p) == 3 and t == sys.argv[2].split(',')\n"
    "assert not m.defects and not any(x.defects for x in p)\n"
    "assert str(m['subject']) == 'Undelivered mail returned to sender: lunch plans'\n"
    "d = p[1].get_payload()\n"
    "assert len(d) == 4 and d[0]['Reporting-MTA'] == 'dns; postern.test'\n"
    "assert [b['Final-Recipient'] for b in d[1:]] == ['rfc822; bob@example.org', "
    "'rfc822; carol@example.net', 'rfc822; dan@example.com']\n"
    "assert d[3]['Action'] == 'delayed' and d[3]['Will-Retry-Until']\n"
    "assert 'no such user' in p[0].get_content()\n"
    "if t[2] == 'message/rfc822':\n"
    "    assert str(p[2].get_payload(0)['subject']) == 'lunch\\tplans'\n"
    "    assert p[2].get_payload(0).get_content() == 'Body line one.\\r\\nBody line two.\\r\\n'\n";

static int python_reads(enum dsn_ret ret, const char *types)
{
    struct report rp = base(three, 3);
    char path[] = "/tmp/qmgr_reportXXXXXX", *cmd, *m;
    size_t len;
    int fd, rc = -1;
    struct buf qs;

    rp.ret = ret;
    m = build(&rp, NULL, &len);
    fd = mkstemp(path);
    if (fd < 0 || write(fd, m, len) != (ssize_t)len) {
        diag("cannot write %s", path);
        free(m);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    /* the script in single quotes: it has none of its own but in literals */
    buf_init(&qs);
    for (const char *q = py_script; *q; q++) {
        if (*q == '\'')
            buf_adds(&qs, "'\\''");
        else
            buf_addc(&qs, *q);
    }
    cmd = xasprintf("python3 -c '%s' %s %s", qs.data, path, types);
    fflush(stdout);
    rc = system(cmd);
    unlink(path);
    free(cmd);
    buf_free(&qs);
    free(m);
    return rc;
}

static void test_python(void)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        ok(1, "# skip python3 not found");
        ok(1, "# skip python3 not found");
        return;
    }
    is_int(python_reads(DSN_RET_HDRS, "text/plain,message/delivery-status,text/rfc822-headers"), 0,
           "python's email package: multipart/report, 3 parts, headers returned");
    is_int(python_reads(DSN_RET_FULL, "text/plain,message/delivery-status,message/rfc822"), 0,
           "python's email package: the whole message returned");
}

int main(void)
{
    plan_lazy();
    test_three();
    test_subjects();
    test_returned();
    test_eightbit();
    test_boundary();
    test_sanitise();
    test_folding();
    test_header_value();
    test_python();
    return done_testing();
}
