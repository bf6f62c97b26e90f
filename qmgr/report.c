/*
 * report - the text of qmgr's notices (RFC 3464, RFC 6522); see report.h.
 */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBJECT_MAX 200
#define FOLD_AT 78

/* ---- header lookup ---- */

/* The end of the header section: after the empty line, or len. */
static size_t header_end(const char *msg, size_t len)
{
    size_t i = 0;

    while (i < len) {
        const char *nl = memchr(msg + i, '\n', len - i);
        size_t line_end = nl ? (size_t)(nl - msg) : len;
        size_t content = line_end;
        if (content > i && msg[content - 1] == '\r')
            content--;
        if (content == i) /* empty line */
            return nl ? line_end + 1 : len;
        if (!nl)
            return len;
        i = line_end + 1;
    }
    return len;
}

int report_header_value(const char *msg, size_t len, const char *name, char *buf, size_t size)
{
    size_t nlen = strlen(name), end, i = 0, o = 0;

    if (size)
        buf[0] = '\0';
    if (msg == NULL || size == 0)
        return 0;
    end = header_end(msg, len);
    while (i < end) {
        const char *nl = memchr(msg + i, '\n', end - i);
        size_t le = nl ? (size_t)(nl - msg) : end;
        if (le - i > nlen && ascii_ncasecmp(msg + i, name, nlen) == 0) {
            size_t c = i + nlen;
            while (c < le && (msg[c] == ' ' || msg[c] == '\t'))
                c++;
            if (c < le && msg[c] == ':') {
                /* the value: this line and its continuations */
                size_t p = c + 1;
                for (;;) {
                    for (; p < le; p++) {
                        unsigned char ch = (unsigned char)msg[p];
                        if (ch == '\r' || ch == '\0')
                            continue;
                        if (o + 1 < size)
                            buf[o++] = (char)ch;
                    }
                    if (le >= end || le + 1 >= end)
                        break;
                    p = le + 1;
                    if (msg[p] != ' ' && msg[p] != '\t')
                        break;
                    nl = memchr(msg + p, '\n', end - p);
                    le = nl ? (size_t)(nl - msg) : end;
                }
                buf[o] = '\0';
                /* strip white space at both ends */
                size_t s = 0;
                while (buf[s] == ' ' || buf[s] == '\t')
                    s++;
                memmove(buf, buf + s, o - s + 1);
                o -= s;
                while (o > 0 && (buf[o - 1] == ' ' || buf[o - 1] == '\t'))
                    buf[--o] = '\0';
                return 1;
            }
        }
        i = le + 1;
    }
    return 0;
}

/* ---- output helpers ---- */

/* s made safe for a header or the report: controls to ' ', 8-bit to '?'. */
static char *clean(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    char *t;

    if (n > max)
        n = max;
    t = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        t[i] = c > 0x7e ? '?' : c < 0x20 ? ' ' : (char)c;
    }
    t[n] = '\0';
    return t;
}

/* "Name: value" folded at white space near FOLD_AT, never cut, CR LF. */
static void add_field(struct buf *out, const char *name, const char *value)
{
    size_t col = strlen(name) + 2;
    const char *p = value;

    buf_printf(out, "%s: ", name);
    while (*p) {
        size_t w = strcspn(p, " ");
        if (col + w > FOLD_AT && col > strlen(name) + 2) {
            buf_adds(out, "\r\n ");
            col = 1;
        }
        buf_add(out, p, w);
        col += w;
        p += w;
        if (*p == ' ') {
            while (*p == ' ')
                p++;
            if (*p) {
                size_t nw = strcspn(p, " ");
                if (col + 1 + nw > FOLD_AT) {
                    buf_adds(out, "\r\n ");
                    col = 1;
                } else {
                    buf_addc(out, ' ');
                    col++;
                }
            }
        }
    }
    buf_adds(out, "\r\n");
}

static void add_clean_field(struct buf *out, const char *name, const char *value)
{
    char *c = clean(value, 4000);

    add_field(out, name, c);
    free(c);
}

/* Text for part 1: wrapped at white space, CR LF, indented by ind. */
static void add_text(struct buf *out, const char *text, const char *ind)
{
    char *c = clean(text, 4000);
    const char *p = c;
    size_t col = 0;

    buf_adds(out, ind);
    col = strlen(ind);
    while (*p) {
        size_t w = strcspn(p, " ");
        if (col + w > 72 && col > strlen(ind)) {
            buf_adds(out, "\r\n");
            buf_adds(out, ind);
            col = strlen(ind);
        }
        buf_add(out, p, w);
        col += w;
        p += w;
        while (*p == ' ')
            p++;
        if (*p) {
            buf_addc(out, ' ');
            col++;
        }
    }
    buf_adds(out, "\r\n");
    free(c);
}

static const char *step_words(const char *step)
{
    static const struct {
        const char *step, *words;
    } t[] = {
        {"dns", "while looking up the domain in DNS"},
        {"connect", "while connecting to the server"},
        {"greeting", "in the server's greeting"},
        {"helo", "when Postern introduced itself (EHLO/HELO)"},
        {"starttls", "while starting TLS"},
        {"auth", "while logging in to the server (AUTH)"},
        {"mail", "when Postern gave the sender (MAIL FROM)"},
        {"rcpt", "when Postern gave this recipient (RCPT TO)"},
        {"data", "when Postern started to send the message (DATA)"},
        {"dot", "after Postern had sent the whole message"},
        {"expired", "because the message stayed undelivered too long"},
        {"admin", "because an administrator bounced it"},
    };

    if (step == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(t[i].step, step) == 0)
            return t[i].words;
    return NULL;
}

static int contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);

    if (hay == NULL || m == 0 || m > n)
        return 0;
    for (size_t i = 0; i + m <= n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

static void make_boundary(const struct report *rp, char *b, size_t len)
{
    char base[80];
    size_t k = 0;
    char probe[140];

    for (const char *p = rp->message_id; p && *p && k + 1 < sizeof(base); p++)
        if ((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
            base[k++] = *p;
    base[k] = '\0';
    snprintf(b, len, "=_postern_%s", base);
    for (unsigned n = 1; n < 1000; n++) {
        snprintf(probe, sizeof(probe), "--%s", b);
        if (!contains(rp->orig, rp->orig_len, probe))
            return;
        snprintf(b, len, "=_postern_%s_%u", base, n);
    }
}

static int all_action(const struct report *rp, enum report_action a)
{
    for (size_t i = 0; i < rp->n; i++)
        if (rp->r[i].action != a)
            return 0;
    return 1;
}

static int any_action(const struct report *rp, enum report_action a)
{
    for (size_t i = 0; i < rp->n; i++)
        if (rp->r[i].action == a)
            return 1;
    return 0;
}

static void add_header(struct buf *out, const struct report *rp, const char *boundary,
                       const char *orig_mid, const char *orig_subject)
{
    char date[40], *subj;
    const char *what;

    rfc5322_date(rp->now_us, date, sizeof(date));
    if (rp->kind == RK_POSTMASTER)
        what = "Undeliverable delivery notice";
    else if (any_action(rp, RA_FAILED))
        what = "Undelivered mail returned to sender";
    else if (all_action(rp, RA_DELAYED))
        what = "Delayed mail (still being retried)";
    else if (all_action(rp, RA_RELAYED))
        what = "Delivery report: relayed";
    else
        what = "Delivery report";
    add_field(out, "Date", date);
    subj = xasprintf("\"Mail Delivery System\" <MAILER-DAEMON@%s>", rp->reporting_mta);
    add_clean_field(out, "From", subj);
    free(subj);
    subj = xasprintf("<%s>", rp->rcpt_to);
    add_field(out, "To", subj); /* may be UTF-8 (SMTPUTF8): kept as it is */
    free(subj);
    if (orig_subject[0] && rp->kind == RK_SENDER) {
        char *os = clean(orig_subject, SUBJECT_MAX);
        subj = xasprintf("%s: %s", what, os);
        free(os);
    } else {
        subj = xstrdup(what);
    }
    add_clean_field(out, "Subject", subj);
    free(subj);
    add_clean_field(out, "Message-ID", rp->message_id);
    if (orig_mid[0]) {
        add_field(out, "In-Reply-To", orig_mid);
        add_field(out, "References", orig_mid);
    }
    add_field(out, "Auto-Submitted", "auto-replied");
    add_field(out, "MIME-Version", "1.0");
    buf_printf(out,
               "Content-Type: multipart/report; report-type=delivery-status;\r\n"
               "\tboundary=\"%s\"\r\n",
               boundary);
    buf_adds(out, "\r\n");
    buf_adds(out, "This is a MIME-formatted delivery report.\r\n\r\n");
}

/* What part 3 returns: *part_len bytes of orig; *full for message/rfc822;
 * *why a sentence for part 1 when less than asked is returned. */
static void returned(const struct report *rp, size_t *part_len, int *full, const char **why)
{
    size_t hdr;

    *why = NULL;
    *full = 0;
    if (rp->orig == NULL || rp->orig_len == 0) {
        *part_len = 0;
        return;
    }
    if (rp->ret == DSN_RET_FULL && rp->orig_len <= rp->size_limit) {
        *full = 1;
        *part_len = rp->orig_len;
        return;
    }
    if (rp->ret == DSN_RET_FULL)
        *why = "The message was larger than the limit for returned mail (bounce_size_limit); "
               "only its header is returned below.";
    hdr = header_end(rp->orig, rp->orig_len);
    if (hdr > rp->size_limit) {
        size_t cut = (size_t)rp->size_limit;
        while (cut > 0 && rp->orig[cut - 1] != '\n')
            cut--;
        hdr = cut;
        *why = "The message's header was larger than the limit for returned mail "
               "(bounce_size_limit); it is cut short below.";
    }
    *part_len = hdr;
}

static void add_part1(struct buf *out, const struct report *rp, const char *boundary,
                      const char *ret_why)
{
    buf_printf(out, "--%s\r\n", boundary);
    buf_adds(out, "Content-Type: text/plain; charset=us-ascii\r\n"
                  "Content-Description: Notification\r\n\r\n");
    if (rp->kind == RK_POSTMASTER) {
        char *t = xasprintf("This is Postern, the mail system at %s. A delivery notice it sent "
                            "(queue ID %s, from <%s>) could not be delivered. Nothing more will "
                            "be tried; the notice is kept in the bad/ folder (smtpctl show bad).",
                            rp->reporting_mta, rp->queue_id,
                            rp->orig_sender && rp->orig_sender[0] ? rp->orig_sender : "");
        add_text(out, t, "");
        free(t);
    } else if (any_action(rp, RA_FAILED)) {
        char *t = xasprintf("This is Postern, the mail system at %s. Your message could not "
                            "be delivered to one or more of its recipients. Nothing more will "
                            "be tried for them; the reasons follow.",
                            rp->reporting_mta);
        add_text(out, t, "");
        free(t);
    } else if (all_action(rp, RA_DELAYED)) {
        char *t = xasprintf("This is Postern, the mail system at %s. Your message has not "
                            "been delivered yet to the recipients below. This is only a "
                            "warning: Postern is still trying.",
                            rp->reporting_mta);
        add_text(out, t, "");
        free(t);
    } else {
        char *t = xasprintf("This is Postern, the mail system at %s. You asked to be told "
                            "when your message was delivered. It was passed to a server that "
                            "does not send such notices, so this is the last report you will "
                            "get about it.",
                            rp->reporting_mta);
        add_text(out, t, "");
        free(t);
    }
    buf_adds(out, "\r\n");
    for (size_t i = 0; i < rp->n; i++) {
        const struct report_rcpt *r = &rp->r[i];
        const char *sw = step_words(r->step);
        char *t;
        if (r->action == RA_FAILED)
            t = xasprintf("<%s>: delivery failed%s%s.", r->addr, sw ? " " : "", sw ? sw : "");
        else if (r->action == RA_DELAYED && r->will_retry_until_us) {
            char d[40];
            rfc5322_date(r->will_retry_until_us, d, sizeof(d));
            t = xasprintf("<%s>: not delivered yet%s%s; Postern will keep trying until %s.",
                          r->addr, sw ? " " : "", sw ? sw : "", d);
        } else if (r->action == RA_DELAYED)
            t = xasprintf("<%s>: not delivered yet%s%s.", r->addr, sw ? " " : "", sw ? sw : "");
        else
            t = xasprintf("<%s>: relayed to %s, which does not send delivery notices.", r->addr,
                          r->remote_mta ? r->remote_mta : "the next server");
        add_text(out, t, "");
        free(t);
        if (r->remote_mta && r->action != RA_RELAYED) {
            t = xasprintf("Remote server: %s", r->remote_mta);
            add_text(out, t, "    ");
            free(t);
        }
        if (r->diag) {
            t = xasprintf("%s: %s", r->diag_type ? "It said" : "Reason", r->diag);
            add_text(out, t, "    ");
            free(t);
        }
        if (r->why)
            add_text(out, r->why, "    ");
        buf_adds(out, "\r\n");
    }
    if (ret_why) {
        add_text(out, ret_why, "");
        buf_adds(out, "\r\n");
    }
}

static void add_part2(struct buf *out, const struct report *rp, const char *boundary)
{
    char d[40];

    buf_printf(out, "--%s\r\n", boundary);
    buf_adds(out, "Content-Type: message/delivery-status\r\n"
                  "Content-Description: Delivery report\r\n\r\n");
    buf_printf(out, "Reporting-MTA: dns; ");
    {
        char *c = clean(rp->reporting_mta, 255);
        buf_printf(out, "%s\r\n", c);
        free(c);
    }
    add_clean_field(out, "X-Postern-Queue-ID", rp->queue_id);
    if (rp->envid && rp->envid[0])
        add_clean_field(out, "Original-Envelope-Id", rp->envid);
    rfc5322_date(rp->arrival_us, d, sizeof(d));
    add_field(out, "Arrival-Date", d);
    for (size_t i = 0; i < rp->n; i++) {
        const struct report_rcpt *r = &rp->r[i];
        static const char *const actions[] = {"failed", "delayed", "relayed"};
        char *v;
        buf_adds(out, "\r\n");
        if (r->orcpt && r->orcpt[0])
            add_clean_field(out, "Original-Recipient", r->orcpt);
        v = xasprintf("rfc822; %s", r->addr);
        add_clean_field(out, "Final-Recipient", v);
        free(v);
        add_field(out, "Action", actions[r->action <= RA_RELAYED ? r->action : 0]);
        add_clean_field(out, "Status", r->status && r->status[0] ? r->status : "5.0.0");
        if (r->remote_mta && r->remote_mta[0]) {
            v = xasprintf("dns; %s", r->remote_mta);
            add_clean_field(out, "Remote-MTA", v);
            free(v);
        }
        if (r->diag && r->diag[0]) {
            v = xasprintf("%s; %s", r->diag_type ? r->diag_type : "X-Postern", r->diag);
            add_clean_field(out, "Diagnostic-Code", v);
            free(v);
        }
        if (r->last_attempt_us) {
            rfc5322_date(r->last_attempt_us, d, sizeof(d));
            add_field(out, "Last-Attempt-Date", d);
        }
        if (r->action == RA_DELAYED && r->will_retry_until_us) {
            rfc5322_date(r->will_retry_until_us, d, sizeof(d));
            add_field(out, "Will-Retry-Until", d);
        }
    }
    buf_adds(out, "\r\n");
}

static void add_part3(struct buf *out, const struct report *rp, const char *boundary,
                      size_t part_len, int full)
{
    if (part_len == 0)
        return;
    buf_printf(out, "--%s\r\n", boundary);
    if (full)
        buf_adds(out, "Content-Type: message/rfc822\r\n"
                      "Content-Description: Undelivered message\r\n\r\n");
    else
        buf_adds(out, "Content-Type: text/rfc822-headers\r\n"
                      "Content-Description: Undelivered message headers\r\n\r\n");
    buf_add(out, rp->orig, part_len);
    if (part_len < 2 || rp->orig[part_len - 2] != '\r' || rp->orig[part_len - 1] != '\n')
        buf_adds(out, "\r\n");
}

void report_build(struct buf *out, const struct report *rp, int *eightbit)
{
    char boundary[128], mid[1000], subject[1000];
    size_t start = out->len, part_len;
    const char *ret_why;
    int full;

    make_boundary(rp, boundary, sizeof(boundary));
    mid[0] = subject[0] = '\0';
    if (rp->orig) {
        report_header_value(rp->orig, rp->orig_len, "Message-ID", mid, sizeof(mid));
        report_header_value(rp->orig, rp->orig_len, "Subject", subject, sizeof(subject));
    }
    /* a Message-ID we repeat must look like one: <...> without white space or controls */
    size_t ml = strlen(mid);
    int mid_ok = ml >= 3 && mid[0] == '<' && mid[ml - 1] == '>' && ml < 998;
    for (size_t i = 0; i < ml && mid_ok; i++)
        if ((unsigned char)mid[i] <= 0x20 || (unsigned char)mid[i] >= 0x7f)
            mid_ok = 0;
    if (!mid_ok)
        mid[0] = '\0';
    returned(rp, &part_len, &full, &ret_why);
    add_header(out, rp, boundary, mid, subject);
    add_part1(out, rp, boundary, ret_why);
    add_part2(out, rp, boundary);
    add_part3(out, rp, boundary, part_len, full);
    buf_printf(out, "--%s--\r\n", boundary);
    if (eightbit) {
        *eightbit = 0;
        for (size_t i = start; i < out->len; i++)
            if ((unsigned char)out->data[i] > 0x7f) {
                *eightbit = 1;
                break;
            }
    }
}
