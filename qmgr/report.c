/*
 * report - the text of delivery status notifications and postmaster
 * notices; contract in report.h.
 *
 * A notice is built in two passes: parts 1 and 2 first (part 1 says what
 * part 3 returns), then the boundary, chosen so that it occurs neither in
 * the original nor in those parts (a remote reply is quoted in both), and
 * last the header and the body around them.
 */
#include "report.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"

#define FOLD_WIDTH 78  /* RFC 5322 2.1.1: lines SHOULD be at most 78 */
#define TEXT_WIDTH 76  /* part 1 */
#define LINE_LIMIT 998 /* RFC 5322 2.1.1: MUST, without the CR LF */
#define SUBJECT_MAX 200
#define MSGID_MAX 900 /* the original's Message-ID, to fit one line */
#define BOUNDARY_ALNUM 40

/* ---- sanitising and line breaking ---- */

enum clean {
    CL_TEXT, /* part 1, Subject, From, Message-ID: HT -> ' ', else outside printable ASCII -> '?' */
    CL_DSN,  /* part 2: controls -> ' ', over 0x7f -> '?' */
    CL_ADDR, /* To: controls -> '?', UTF-8 kept (an SMTPUTF8 sender, RFC 6532) */
};

static void add_clean(struct buf *t, const char *s, enum clean how)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\t' && how == CL_TEXT)
            c = ' ';
        else if (c < 0x20 || c == 0x7f)
            c = how == CL_DSN ? ' ' : '?';
        else if (c > 0x7f && how != CL_ADDR)
            c = '?';
        buf_addc(t, (char)c);
    }
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Append s[0..n) to a line *col bytes long; a line that reaches
 * LINE_LIMIT goes on after CR LF and cont (only a word longer than a
 * whole line needs that). */
static void put_limited(struct buf *b, const char *s, size_t n, size_t *col, const char *cont)
{
    while (n > 0) {
        size_t k;

        if (*col >= LINE_LIMIT) {
            buf_adds(b, "\r\n");
            buf_adds(b, cont);
            *col = strlen(cont);
        }
        k = LINE_LIMIT - *col < n ? LINE_LIMIT - *col : n;
        buf_add(b, s, k);
        s += k;
        n -= k;
        *col += k;
    }
}

/*
 * Append text to a line already col bytes long and end it with CR LF,
 * breaking it at white space where a line would pass width. fold (header
 * fields, RFC 5322 2.2.3): the CR LF goes in before the white space, which
 * starts the next line, so unfolding gives text back. Otherwise (part 1)
 * the white space at a break becomes CR LF and cont. Leading and trailing
 * white space is dropped.
 */
static void wrap(struct buf *b, size_t col, const char *text, size_t width, const char *cont,
                 int fold)
{
    const char *hard = fold ? " " : cont;
    const char *s = text;
    int words = 0;

    while (is_ws(*s))
        s++;
    while (*s) {
        size_t ws = strspn(s, " \t"), w = strcspn(s + ws, " \t");

        if (w == 0)
            break;
        if (words && col + ws + w > width) {
            buf_adds(b, "\r\n");
            col = 0;
            if (!fold) {
                buf_adds(b, cont);
                col = strlen(cont);
                s += ws;
                ws = 0;
            }
        }
        put_limited(b, s, ws + w, &col, hard);
        s += ws + w;
        words = 1;
    }
    buf_adds(b, "\r\n");
}

static void field(struct buf *b, const char *name, const char *value)
{
    buf_adds(b, name);
    buf_adds(b, ": ");
    wrap(b, strlen(name) + 2, value, FOLD_WIDTH, " ", 1);
}

static void para(struct buf *b, const char *first, const char *cont, const char *text)
{
    buf_adds(b, first);
    wrap(b, strlen(first), text, TEXT_WIDTH, cont, 0);
}

static int has_8bit(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] > 0x7f)
            return 1;
    return 0;
}

static int set(const char *s)
{
    return s && *s;
}

/* ---- the original's header section ---- */

/* The offset of the LF that ends the line at p, or len. */
static size_t eol(const char *m, size_t len, size_t p)
{
    const char *nl = memchr(m + p, '\n', len - p);

    return nl ? (size_t)(nl - m) : len;
}

/* The length of the header section: up to the first empty line (a lone
 * CR before the LF counts as empty), or all of m. */
static size_t header_len(const char *m, size_t len)
{
    size_t p = 0;

    while (p < len) {
        size_t e = eol(m, len, p);
        if (e == p || (e == p + 1 && m[p] == '\r'))
            return p;
        if (e == len)
            return len;
        p = e + 1;
    }
    return len;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The offset just past the colon when the line [p, e) is a field named
 * name ("Name:", or the obsolete "Name :"), else 0. */
static size_t field_value_at(const char *m, size_t p, size_t e, const char *name, size_t nlen)
{
    size_t i = p + nlen;

    if (e - p <= nlen)
        return 0;
    for (size_t k = 0; k < nlen; k++)
        if (lower(m[p + k]) != lower(name[k]))
            return 0;
    while (i < e && is_ws(m[i]))
        i++;
    return i < e && m[i] == ':' ? i + 1 : 0;
}

/* Append the line content m[p..e) (without the CR of a CR LF) to buf,
 * keeping room for the NUL: NUL bytes are dropped, and white space while
 * buf is empty. */
static void value_add(char *buf, size_t size, size_t *n, const char *m, size_t p, size_t e)
{
    if (e > p && m[e - 1] == '\r')
        e--;
    for (size_t i = p; i < e && *n + 1 < size; i++) {
        if (m[i] == '\0' || (*n == 0 && (is_ws(m[i]) || m[i] == '\r')))
            continue;
        buf[(*n)++] = m[i];
    }
}

static int name_ok(const char *name)
{
    if (name == NULL || *name == '\0')
        return 0;
    for (const char *s = name; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == ':')
            return 0;
    return 1;
}

int report_header_value(const char *msg, size_t len, const char *name, char *buf, size_t size)
{
    size_t hlen, p = 0, n = 0, v = 0, e = 0;

    if (buf == NULL)
        size = 0;
    if (size > 0)
        buf[0] = '\0';
    if (msg == NULL || !name_ok(name))
        return 0;
    hlen = header_len(msg, len);
    for (; p < hlen; p = e + 1) {
        e = eol(msg, hlen, p);
        v = field_value_at(msg, p, e, name, strlen(name));
        if (v)
            break;
    }
    if (v == 0)
        return 0;
    value_add(buf, size, &n, msg, v, e);
    for (p = e + 1; p < hlen && is_ws(msg[p]); p = e + 1) {
        e = eol(msg, hlen, p);
        value_add(buf, size, &n, msg, p, e);
    }
    while (n > 0 && (is_ws(buf[n - 1]) || buf[n - 1] == '\r'))
        n--;
    if (size > 0)
        buf[n] = '\0';
    return 1;
}

/* "<...>" with nothing but printable ASCII inside and no white space. */
static int msgid_ok(const char *s)
{
    size_t n = strlen(s);

    if (n < 3 || n > MSGID_MAX || s[0] != '<' || s[n - 1] != '>')
        return 0;
    for (size_t i = 1; i + 1 < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '<' ||
            s[i] == '>')
            return 0;
    return 1;
}

/* ---- what part 3 returns ---- */

struct part3 {
    const char *p; /* NULL: no part 3 */
    size_t len;
    int full;    /* message/rfc822, else text/rfc822-headers */
    int too_big; /* RET=FULL, but over size_limit */
    int cut;     /* the header section alone is over size_limit */
    int eightbit;
};

static void part3_pick(const struct report *rp, struct part3 *o)
{
    memset(o, 0, sizeof(*o));
    if (rp->orig == NULL || rp->orig_len == 0)
        return;
    o->p = rp->orig;
    if (rp->ret == DSN_RET_FULL && rp->orig_len <= rp->size_limit) {
        o->full = 1;
        o->len = rp->orig_len;
    } else {
        o->too_big = rp->ret == DSN_RET_FULL;
        o->len = header_len(rp->orig, rp->orig_len);
        if (o->len > rp->size_limit) {
            const char *nl = memrchr(rp->orig, '\n', (size_t)rp->size_limit);
            o->len = nl ? (size_t)(nl - rp->orig) + 1 : 0;
            o->cut = 1;
        }
    }
    o->eightbit = has_8bit(o->p, o->len);
}

/* ---- part 1: for people ---- */

static const char *step_phrase(const char *step)
{
    static const char *const tab[][2] = {
        {"dns", "while looking up the domain in DNS"},
        {"connect", "while connecting to the receiving server"},
        {"greeting", "at the greeting step (the server's first reply)"},
        {"helo", "at the helo step (EHLO or HELO)"},
        {"starttls", "at the starttls step (setting up encryption)"},
        {"auth", "at the auth step (logging in to the server)"},
        {"mail", "at the mail step (MAIL FROM, the sender address)"},
        {"rcpt", "at the rcpt step (RCPT TO, the recipient address)"},
        {"data", "at the data step (DATA)"},
        {"dot", "at the dot step (after the whole message was sent)"},
        {"expired", "because it could not be delivered in the time allowed"},
        {"admin", "because the mail administrator returned it"},
    };

    for (size_t i = 0; i < nitems(tab); i++)
        if (strcmp(step, tab[i][0]) == 0)
            return tab[i][1];
    return NULL;
}

static void add_date(struct buf *t, int64_t us)
{
    char d[40];

    buf_adds(t, rfc5322_date(us, d, sizeof(d)));
}

static void add_step(struct buf *t, const char *step)
{
    const char *ph;

    if (!set(step) || strcmp(step, "none") == 0)
        return;
    ph = step_phrase(step);
    buf_addc(t, ' ');
    if (ph) {
        buf_adds(t, ph);
        return;
    }
    buf_adds(t, "at the ");
    add_clean(t, step, CL_TEXT);
    buf_adds(t, " step");
}

static void rcpt_block(struct buf *b, struct buf *t, const struct report_rcpt *r)
{
    buf_reset(t);
    buf_addc(t, '<');
    add_clean(t, r->addr, CL_TEXT);
    buf_adds(t, ">: ");
    if (r->action == RA_DELAYED) {
        buf_adds(t, "delayed");
        if (set(r->step) && strcmp(r->step, "none") != 0) {
            buf_adds(t, ", the last attempt failed");
            add_step(t, r->step);
        }
        if (r->will_retry_until_us) {
            buf_adds(t, "; will retry until ");
            add_date(t, r->will_retry_until_us);
        } else {
            buf_adds(t, "; still being retried");
        }
    } else if (r->action == RA_RELAYED) {
        buf_adds(t, "relayed to a server that does not send delivery notices");
    } else {
        buf_adds(t, "failed");
        add_step(t, r->step);
    }
    buf_addc(t, '.');
    para(b, "", "    ", t->data);
    if (set(r->remote_mta)) {
        buf_reset(t);
        buf_adds(t, "Remote server: ");
        add_clean(t, r->remote_mta, CL_TEXT);
        para(b, "    ", "    ", t->data);
    }
    if (set(r->diag)) {
        buf_reset(t);
        buf_adds(t, r->diag_type && ascii_casecmp(r->diag_type, "smtp") == 0 ? "Its reply: "
                                                                             : "Reason: ");
        add_clean(t, r->diag, CL_TEXT);
        para(b, "    ", "    ", t->data);
    }
    if (set(r->why)) {
        buf_reset(t);
        add_clean(t, r->why, CL_TEXT);
        para(b, "    ", "    ", t->data);
    }
}

static void add_count(struct buf *t, size_t k)
{
    buf_printf(t, "%zu recipient%s", k, k == 1 ? "" : "s");
}

static void intro_sender(struct buf *b, struct buf *t, const struct report *rp)
{
    size_t nf = 0, nd = 0, nr = 0;

    for (size_t i = 0; i < rp->n; i++) {
        if (rp->r[i].action == RA_DELAYED)
            nd++;
        else if (rp->r[i].action == RA_RELAYED)
            nr++;
        else
            nf++;
    }
    buf_reset(t);
    buf_adds(t, "Postern, the mail server at ");
    add_clean(t, rp->reporting_mta, CL_TEXT);
    buf_adds(t, ", reports on a message from <");
    add_clean(t, rp->orig_sender, CL_TEXT);
    buf_adds(t, "> that it received on ");
    add_date(t, rp->arrival_us);
    buf_adds(t, " (queue ID ");
    add_clean(t, rp->queue_id, CL_TEXT);
    buf_adds(t, ").");
    para(b, "", "", t->data);
    buf_adds(b, "\r\n");
    buf_reset(t);
    if (nf) {
        buf_adds(t, "It could not be delivered to ");
        add_count(t, nf);
        buf_printf(t, "; Postern will not try again for %s. ", nf == 1 ? "it" : "them");
    }
    if (nd) {
        buf_adds(t, "Delivery to ");
        add_count(t, nd);
        buf_adds(t, " is delayed: Postern is still trying, so there is no need to send the "
                    "message again. ");
    }
    if (nr) {
        buf_adds(t, "For ");
        add_count(t, nr);
        buf_printf(t,
                   " it was passed on to a server that does not send delivery notices, so "
                   "this is the last report about %s. ",
                   nr == 1 ? "that recipient" : "those recipients");
    }
    buf_adds(t, "Each recipient is listed below with what happened.");
    para(b, "", "", t->data);
}

static void intro_postmaster(struct buf *b, struct buf *t, const struct report *rp)
{
    buf_reset(t);
    buf_adds(t, "Postern, the mail server at ");
    add_clean(t, rp->reporting_mta, CL_TEXT);
    buf_adds(t, ", could not deliver one of its own delivery notices. The notice "
                "returned below (queue ID ");
    add_clean(t, rp->queue_id, CL_TEXT);
    buf_adds(t, ", envelope sender <");
    add_clean(t, rp->orig_sender, CL_TEXT);
    buf_adds(t, ">) was sent by Postern, and its recipient refused it or could not be "
                "reached. A notice that fails is not retried and no other notice is sent "
                "about it: nothing more will be tried. It is kept in the bad/ folder of the "
                "queue.");
    para(b, "", "", t->data);
}

static void part3_note(struct buf *b, struct buf *t, const struct report *rp, const struct part3 *o)
{
    const char *what = rp->kind == RK_POSTMASTER ? "the notice" : "your message";
    unsigned long long lim = (unsigned long long)rp->size_limit;

    if (o->p == NULL)
        return;
    buf_reset(t);
    if (o->full)
        buf_printf(t, "A copy of %s is returned below.", what);
    else if (o->too_big)
        buf_printf(t,
                   "The message was larger than %llu bytes (bounce_size_limit), so only its "
                   "headers are returned below.",
                   lim);
    else
        buf_printf(t, "The headers of %s are returned below.", what);
    if (o->cut)
        buf_printf(t,
                   " Its header section alone is larger than %llu bytes, so it was cut "
                   "after the last whole line that fits.",
                   lim);
    buf_adds(b, "\r\n");
    para(b, "", "", t->data);
}

static void part1(struct buf *b, const struct report *rp, const struct part3 *o)
{
    struct buf t;

    buf_init(&t);
    if (rp->kind == RK_POSTMASTER)
        intro_postmaster(b, &t, rp);
    else
        intro_sender(b, &t, rp);
    for (size_t i = 0; i < rp->n; i++) {
        buf_adds(b, "\r\n");
        rcpt_block(b, &t, &rp->r[i]);
    }
    part3_note(b, &t, rp, o);
    buf_free(&t);
}

/* ---- part 2: message/delivery-status (RFC 3464) ---- */

/* "d.ddd.ddd" with class 2, 4 or 5 (RFC 3463). */
static int status_ok(const char *s)
{
    size_t n;

    if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    s += 2;
    for (int part = 0; part < 2; part++) {
        n = strspn(s, "0123456789");
        if (n < 1 || n > 3)
            return 0;
        s += n;
        if (part == 0 && *s++ != '.')
            return 0;
    }
    return *s == '\0';
}

static const char *action_name(enum report_action a)
{
    return a == RA_DELAYED ? "delayed" : a == RA_RELAYED ? "relayed" : "failed";
}

static const char *status_default(enum report_action a)
{
    return a == RA_DELAYED ? "4.0.0" : a == RA_RELAYED ? "2.0.0" : "5.0.0";
}

static void dsn_field(struct buf *b, struct buf *t, const char *name, const char *prefix,
                      const char *value)
{
    buf_reset(t);
    buf_adds(t, prefix);
    add_clean(t, value, CL_DSN);
    field(b, name, t->data);
}

static void dsn_date(struct buf *b, struct buf *t, const char *name, int64_t us)
{
    buf_reset(t);
    add_date(t, us);
    field(b, name, t->data);
}

static void dsn_rcpt(struct buf *b, struct buf *t, const struct report_rcpt *r)
{
    buf_adds(b, "\r\n");
    if (set(r->orcpt))
        dsn_field(b, t, "Original-Recipient", "", r->orcpt);
    dsn_field(b, t, "Final-Recipient", "rfc822; ", r->addr);
    field(b, "Action", action_name(r->action));
    dsn_field(b, t, "Status", "", status_ok(r->status) ? r->status : status_default(r->action));
    if (set(r->remote_mta))
        dsn_field(b, t, "Remote-MTA", "dns; ", r->remote_mta);
    if (set(r->diag))
        dsn_field(b, t, "Diagnostic-Code",
                  r->diag_type && ascii_casecmp(r->diag_type, "smtp") == 0 ? "smtp; "
                                                                           : "X-Postern; ",
                  r->diag);
    if (r->last_attempt_us)
        dsn_date(b, t, "Last-Attempt-Date", r->last_attempt_us);
    if (r->action == RA_DELAYED && r->will_retry_until_us)
        dsn_date(b, t, "Will-Retry-Until", r->will_retry_until_us);
}

static void part2(struct buf *b, const struct report *rp)
{
    struct buf t;

    buf_init(&t);
    dsn_field(b, &t, "Reporting-MTA", "dns; ", rp->reporting_mta);
    if (set(rp->queue_id))
        dsn_field(b, &t, "X-Postern-Queue-ID", "", rp->queue_id);
    if (set(rp->envid))
        dsn_field(b, &t, "Original-Envelope-Id", "", rp->envid);
    if (rp->arrival_us)
        dsn_date(b, &t, "Arrival-Date", rp->arrival_us);
    for (size_t i = 0; i < rp->n; i++)
        dsn_rcpt(b, &t, &rp->r[i]);
    buf_free(&t);
}

/* ---- the boundary and the header ---- */

static int occurs(const char *hay, size_t n, const char *needle, size_t k)
{
    return hay && n >= k && memmem(hay, n, needle, k) != NULL;
}

static size_t add_alnum(char *d, size_t n, size_t max, const char *s)
{
    for (; s && *s && n < max; s++)
        if ((*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
            d[n++] = *s;
    d[n] = '\0';
    return n;
}

/* "=_postern_" and the alphanumerics of message_id ("=_" cannot occur in
 * quoted-printable text), then "_1", "_2"... while "--" and it occur in
 * the original or in parts 1 and 2. */
static void boundary_pick(char *bnd, size_t size, const struct report *rp, const struct buf *p1,
                          const struct buf *p2)
{
    char base[64], dash[96];
    size_t n = strlcpy_p(base, "=_postern_", sizeof(base)), k0 = n;

    n = add_alnum(base, n, k0 + BOUNDARY_ALNUM, rp->message_id);
    if (n == k0)
        n = add_alnum(base, n, k0 + BOUNDARY_ALNUM, rp->queue_id);
    if (n == k0)
        strlcpy_p(base + n, "notice", sizeof(base) - n);
    for (unsigned long i = 0;; i++) {
        size_t k;

        if (i == 0)
            snprintf(bnd, size, "%s", base);
        else
            snprintf(bnd, size, "%s_%lu", base, i);
        k = (size_t)snprintf(dash, sizeof(dash), "--%s", bnd);
        if (!occurs(rp->orig, rp->orig_len, dash, k) && !occurs(p1->data, p1->len, dash, k) &&
            !occurs(p2->data, p2->len, dash, k))
            return;
    }
}

static const char *subject_base(const struct report *rp)
{
    int delayed = 0;

    if (rp->kind == RK_POSTMASTER)
        return "Undeliverable delivery notice";
    for (size_t i = 0; i < rp->n; i++) {
        if (rp->r[i].action == RA_DELAYED)
            delayed = 1;
        else if (rp->r[i].action != RA_RELAYED) /* as parts 1 and 2: failed */
            return "Undelivered mail returned to sender";
    }
    return delayed || rp->n == 0 ? "Delayed mail (still being retried)"
                                 : "Delivery report: relayed";
}

static void header(struct buf *b, const struct report *rp, const char *bnd, int eightbit)
{
    char os[SUBJECT_MAX + 1], omid[MSGID_MAX + 2];
    struct buf t;
    int has_mid = 0;

    buf_init(&t);
    add_date(&t, rp->now_us);
    field(b, "Date", t.data);
    buf_reset(&t);
    buf_adds(&t, "\"Mail Delivery System\" <MAILER-DAEMON@");
    add_clean(&t, rp->reporting_mta, CL_TEXT);
    buf_addc(&t, '>');
    field(b, "From", t.data);
    buf_reset(&t);
    buf_addc(&t, '<');
    add_clean(&t, rp->rcpt_to, CL_ADDR);
    buf_addc(&t, '>');
    field(b, "To", t.data);
    buf_reset(&t);
    buf_adds(&t, subject_base(rp));
    if (report_header_value(rp->orig, rp->orig_len, "Subject", os, sizeof(os)) && os[0]) {
        buf_adds(&t, ": ");
        add_clean(&t, os, CL_TEXT);
    }
    field(b, "Subject", t.data);
    if (set(rp->message_id)) {
        buf_reset(&t);
        add_clean(&t, rp->message_id, CL_TEXT);
        field(b, "Message-ID", t.data);
    }
    if (report_header_value(rp->orig, rp->orig_len, "Message-ID", omid, sizeof(omid)))
        has_mid = msgid_ok(omid);
    if (has_mid) {
        field(b, "In-Reply-To", omid);
        field(b, "References", omid);
    }
    field(b, "Auto-Submitted", "auto-replied");
    field(b, "MIME-Version", "1.0");
    buf_reset(&t);
    buf_printf(&t, "multipart/report; report-type=delivery-status; boundary=\"%s\"", bnd);
    field(b, "Content-Type", t.data);
    if (eightbit)
        field(b, "Content-Transfer-Encoding", "8bit");
    buf_free(&t);
}

/* ---- the whole notice ---- */

static void delimiter(struct buf *b, const char *bnd, const char *type, const char *descr,
                      int eightbit)
{
    buf_adds(b, "\r\n--");
    buf_adds(b, bnd);
    buf_adds(b, "\r\n");
    field(b, "Content-Type", type);
    field(b, "Content-Description", descr);
    if (eightbit)
        field(b, "Content-Transfer-Encoding", "8bit");
    buf_adds(b, "\r\n");
}

void report_build(struct buf *out, const struct report *rp, int *eightbit)
{
    size_t start = out->len;
    struct part3 o;
    struct buf p1, p2;
    char bnd[96];

    part3_pick(rp, &o);
    buf_init(&p1);
    buf_init(&p2);
    part1(&p1, rp, &o);
    part2(&p2, rp);
    boundary_pick(bnd, sizeof(bnd), rp, &p1, &p2);

    header(out, rp, bnd, o.eightbit);
    buf_adds(out, "\r\nThis is a delivery report in MIME format (RFC 3464).\r\n");
    delimiter(out, bnd, "text/plain; charset=us-ascii", "Notification", 0);
    buf_add(out, p1.data, p1.len);
    delimiter(out, bnd, "message/delivery-status", "Delivery report", 0);
    buf_add(out, p2.data, p2.len);
    if (o.p) {
        delimiter(out, bnd, o.full ? "message/rfc822" : "text/rfc822-headers",
                  o.full ? "Undelivered message" : "Undelivered message headers", o.eightbit);
        buf_add(out, o.p, o.len);
        if (o.len > 0 && (o.len < 2 || o.p[o.len - 2] != '\r' || o.p[o.len - 1] != '\n'))
            buf_adds(out, "\r\n");
    }
    /* the CR LF before a delimiter belongs to it (RFC 2046 5.1.1): each
     * part's last line keeps its own */
    buf_adds(out, "\r\n--");
    buf_adds(out, bnd);
    buf_adds(out, "--\r\n");
    if (eightbit)
        *eightbit = has_8bit(out->data + start, out->len - start);
    buf_free(&p1);
    buf_free(&p2);
}
