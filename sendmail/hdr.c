/*
 * hdr - recipients from headers, Bcc removal, the header section to send
 * (see hdr.h).
 */
#include "hdr.h"

#include <stdio.h>
#include <string.h>

#include "mail/smtp_addr.h"

static const char *const rcpt_fields[] = {"To", "Cc", "Bcc"};
static const char *const resent_fields[] = {"Resent-To", "Resent-Cc", "Resent-Bcc"};

static int has_any(struct msgin *m, const char *const *names)
{
    for (int i = 0; i < 3; i++)
        if (msgin_field_find(m, names[i]) != NULL)
            return 1;
    return 0;
}

int hdr_rcpts(struct msgin *m, struct addrlist *out, size_t max, char *err, size_t errsz)
{
    const char *const *names = has_any(m, resent_fields) ? resent_fields : rcpt_fields;

    for (size_t i = 0; i < m->nfields; i++) {
        struct hfield *f = &m->fields[i];
        const char *why, *v;
        size_t where, len;
        int k;

        for (k = 0; k < 3 && !msgin_field_is(m, f, names[k]); k++)
            ;
        if (k == 3 || f->deleted)
            continue;
        v = msgin_field_value(m, f, &len);
        if (addrlist_parse(out, v, len, max, &why, &where) < 0) {
            snprintf(err, errsz, "%s: header: %s (at \"%.*s\")", names[k], why,
                     (int)(len - where > 20 ? 20 : len - where), v + where);
            for (char *p = err; *p; p++)
                if ((unsigned char)*p < 32)
                    *p = ' ';
            return -1;
        }
    }
    return 0;
}

void hdr_strip_bcc(struct msgin *m)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (msgin_field_is(m, &m->fields[i], "Bcc") ||
            msgin_field_is(m, &m->fields[i], "Resent-Bcc"))
            m->fields[i].deleted = 1;
}

void hdr_date(time_t t, char *out, size_t outsz)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    long off;

    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;
    snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec, off < 0 ? '-' : '+', (off < 0 ? -off : off) / 60,
             (off < 0 ? -off : off) % 60);
}

static void base64(struct buf *out, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        buf_addc(out, tab[(v >> 18) & 63]);
        buf_addc(out, tab[(v >> 12) & 63]);
        buf_addc(out, i + 1 < n ? tab[(v >> 6) & 63] : '=');
        buf_addc(out, i + 2 < n ? tab[v & 63] : '=');
    }
}

/* RFC 2047 encoded words of at most 45 bytes of UTF-8 each (72 chars). */
static void encoded_words(const char *s, size_t n, struct buf *out)
{
    size_t i = 0;

    while (i < n) {
        size_t k = n - i > 45 ? 45 : n - i;
        while (i + k < n && k > 1 && ((unsigned char)s[i + k] & 0xc0) == 0x80)
            k--; /* end on a character boundary */
        if (i)
            buf_addc(out, ' ');
        buf_adds(out, "=?UTF-8?B?");
        base64(out, (const unsigned char *)s + i, k);
        buf_adds(out, "?=");
        i += k;
    }
}

static int is_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

void hdr_phrase(const char *name, struct buf *out)
{
    struct buf s;
    int eight = 0, atoms = 1;

    buf_init(&s);
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 32 || c == 127)
            c = ' ';
        if (c == ' ' && (s.len == 0 || s.data[s.len - 1] == ' '))
            continue; /* no leading or doubled blanks */
        eight |= c >= 0x80;
        atoms &= c == ' ' || is_atext(c);
        buf_addc(&s, (char)c);
    }
    while (s.len && s.data[s.len - 1] == ' ')
        s.data[--s.len] = '\0';
    if (s.len == 0) {
        buf_free(&s);
        return;
    }
    if (eight && smtp_utf8_valid((const unsigned char *)s.data, s.len)) {
        encoded_words(s.data, s.len, out);
    } else if (atoms && !eight) {
        buf_add(out, s.data, s.len);
    } else {
        buf_addc(out, '"');
        for (size_t i = 0; i < s.len; i++) {
            char c = (unsigned char)s.data[i] >= 0x80 ? '?' : s.data[i];
            if (c == '"' || c == '\\')
                buf_addc(out, '\\');
            buf_addc(out, c);
        }
        buf_addc(out, '"');
    }
    buf_free(&s);
}

static int present(const struct msgin *m, const char *name)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (msgin_field_is(m, &m->fields[i], name))
            return 1;
    return 0;
}

void hdr_write(const struct msgin *m, const struct hdr_info *h, struct buf *out)
{
    char date[64];
    struct tm tm;

    hdr_date(h->now, date, sizeof(date));
    buf_printf(out, "Received: by %s (Postern sendmail, from userid %ld);\n\t%s\n", h->myhostname,
               h->uid, date);
    for (size_t i = 0; i < m->nfields; i++)
        if (!m->fields[i].deleted)
            buf_add(out, m->hdr.data + m->fields[i].off, m->fields[i].len);
    if (!present(m, "From")) {
        struct buf name;
        buf_init(&name);
        if (h->fullname)
            hdr_phrase(h->fullname, &name);
        if (name.len)
            buf_printf(out, "From: %s <%s>\n", name.data, h->from_addr);
        else
            buf_printf(out, "From: %s\n", h->from_addr);
        buf_free(&name);
    }
    if (!present(m, "Date"))
        buf_printf(out, "Date: %s\n", date);
    if (!present(m, "Message-ID")) {
        gmtime_r(&h->now, &tm);
        buf_printf(out, "Message-ID: <%04d%02d%02d%02d%02d%02d.%s@%s>\n", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, h->token,
                   h->myhostname);
    }
    buf_addc(out, '\n');
}
