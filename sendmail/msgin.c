/*
 * msgin - sendmail's input reader: lines, the header section, the body
 * store (see msgin.h).
 */
#include "msgin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY_FLUSH (64 * 1024)

static int fail(struct msgin *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct msgin *m, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(m->whybuf, sizeof(m->whybuf), fmt, ap);
    va_end(ap);
    m->why = m->whybuf;
    return MSGIN_ERR;
}

/* ---- body store ---- */

static int body_flush(struct body *b)
{
    if (b->fd >= 0 && b->mem.len) {
        if (write_all(b->fd, b->mem.data, b->mem.len) < 0)
            return -1;
        buf_reset(&b->mem);
    }
    return 0;
}

static int body_spill(struct body *b)
{
    const char *dir = b->tmpdir && *b->tmpdir ? b->tmpdir : "/tmp";
    char *path = xasprintf("%s/postern-sendmail.XXXXXX", dir);

    b->fd = mkostemp(path, O_CLOEXEC);
    if (b->fd >= 0)
        unlink(path);
    free(path);
    if (b->fd < 0)
        return -1;
    return body_flush(b);
}

static int body_add(struct body *b, const char *p, size_t n)
{
    if (b->fd < 0 && b->mem.len + n > b->spill_at && body_spill(b) < 0)
        return -1;
    buf_add(&b->mem, p, n);
    b->len += n;
    if (b->fd >= 0 && b->mem.len >= BODY_FLUSH)
        return body_flush(b);
    return 0;
}

int body_rewind(struct body *b)
{
    if (b->fd < 0)
        return 0;
    if (body_flush(b) < 0)
        return -1;
    return lseek(b->fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

long body_read(struct body *b, size_t *pos, char *p, size_t n)
{
    if (b->fd < 0) {
        size_t k = b->mem.len - *pos < n ? b->mem.len - *pos : n;
        if (k)
            memcpy(p, b->mem.data + *pos, k);
        *pos += k;
        return (long)k;
    }
    for (;;) {
        ssize_t r = read(b->fd, p, n);
        if (r >= 0 || errno != EINTR)
            return (long)r;
    }
}

/* ---- lines ---- */

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Length of the header name in p[0..n) when the line is "Name[ ]*:", else 0. */
static size_t header_name(const char *p, size_t n, size_t *colon)
{
    size_t i = 0, name;

    while (i < n && (unsigned char)p[i] > 32 && (unsigned char)p[i] < 127 && p[i] != ':')
        i++;
    name = i;
    while (i < n && is_wsp(p[i]))
        i++;
    if (name == 0 || i >= n || p[i] != ':')
        return 0;
    *colon = i;
    return name;
}

static int add_field(struct msgin *m, size_t name, size_t colon)
{
    if (m->nfields >= m->lim.fields_max)
        return fail(m, "more than %zu header fields", m->lim.fields_max);
    if (m->nfields == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 32;
        m->fields = xrealloc(m->fields, m->cap * sizeof(*m->fields));
    }
    m->fields[m->nfields++] = (struct hfield){m->hdr.len, 0, name, m->hdr.len + colon + 1, 0};
    return 0;
}

static int count_size(struct msgin *m, size_t n)
{
    m->size += n + 2;
    if (m->size > m->lim.size_max)
        return fail(m, "the message is larger than message_size_limit (%llu bytes)",
                    (unsigned long long)m->lim.size_max);
    return 0;
}

static int body_line(struct msgin *m, const char *p, size_t n)
{
    if (count_size(m, n) < 0)
        return MSGIN_ERR;
    m->body_lines++;
    if (body_add(&m->body, p, n) < 0 || body_add(&m->body, "\n", 1) < 0) {
        m->err_io = 1;
        return fail(m, "cannot write the temporary file in %s: %s",
                    m->body.tmpdir && *m->body.tmpdir ? m->body.tmpdir : "/tmp", strerror(errno));
    }
    return MSGIN_MORE;
}

/* 1 when p[0..n) belongs to the header section: a field or, after one,
 * a continuation line. */
static int is_header_line(const struct msgin *m, const char *p, size_t n)
{
    size_t colon;

    if (n == 0 || memchr(p, '\0', n) != NULL)
        return 0;
    if (is_wsp(p[0]))
        return m->nfields > 0;
    return header_name(p, n, &colon) > 0;
}

/* A line of the header section (is_header_line said so). */
static int header_line(struct msgin *m, const char *p, size_t n)
{
    size_t name, colon;

    if (n + 2 > m->lim.line_max)
        return fail(m, "header line %llu is longer than %zu bytes", (unsigned long long)m->lineno,
                    m->lim.line_max - 2);
    if (m->hdr.len + n + 1 > m->lim.header_max)
        return fail(m, "the header section is larger than %zu bytes", m->lim.header_max);
    if (!is_wsp(p[0])) {
        name = header_name(p, n, &colon);
        if (add_field(m, name, colon) < 0)
            return MSGIN_ERR;
    }
    if (count_size(m, n) < 0)
        return MSGIN_ERR;
    buf_add(&m->hdr, p, n);
    buf_addc(&m->hdr, '\n');
    m->fields[m->nfields - 1].len = m->hdr.len - m->fields[m->nfields - 1].off;
    return MSGIN_MORE;
}

/* One complete line, without its LF (a CR before it already removed). */
static int do_line(struct msgin *m, const char *p, size_t n)
{
    int first = m->first_line;

    m->first_line = 0;
    if (m->dot_ends && n == 1 && p[0] == '.') {
        m->done = 1;
        return MSGIN_DONE;
    }
    if (first && n >= 5 && memcmp(p, "From ", 5) == 0)
        return MSGIN_MORE; /* mbox separator */
    if (m->in_headers) {
        if (n == 0) {
            m->in_headers = 0;
            return MSGIN_MORE;
        }
        if (is_header_line(m, p, n))
            return header_line(m, p, n);
        m->in_headers = 0;
    }
    return body_line(m, p, n);
}

/*
 * The line buffer holds line_max bytes and no LF yet, so the line is longer
 * than line_max - 2 whatever ends it. In the body it is cut; in the header
 * section it is an error.
 */
static int cut_line(struct msgin *m)
{
    size_t k = m->lim.line_max - 2;
    const unsigned char *s = (const unsigned char *)m->line.data;
    int rc;

    if (m->in_headers && is_header_line(m, m->line.data, m->line.len))
        return fail(m, "header line %llu is longer than %zu bytes",
                    (unsigned long long)m->lineno + 1, k);
    for (int back = 0; back < 3 && k > 1 && (s[k] & 0xc0) == 0x80; back++)
        k--; /* do not cut inside a UTF-8 sequence */
    m->in_headers = 0;
    m->first_line = 0;
    rc = body_line(m, m->line.data, k);
    buf_consume(&m->line, k);
    return rc;
}

void msgin_init(struct msgin *m, int dot_ends, const struct msgin_limits *lim)
{
    memset(m, 0, sizeof(*m));
    m->lim = *lim;
    if (m->lim.line_max < 80)
        m->lim.line_max = 80;
    m->dot_ends = dot_ends;
    m->in_headers = 1;
    m->first_line = 1;
    buf_init(&m->line);
    buf_init(&m->hdr);
    buf_init(&m->body.mem);
    m->body.fd = -1;
    m->body.spill_at = lim->spill_at;
    m->body.tmpdir = lim->tmpdir;
}

void msgin_free(struct msgin *m)
{
    buf_free(&m->line);
    buf_free(&m->hdr);
    buf_free(&m->body.mem);
    if (m->body.fd >= 0)
        close(m->body.fd);
    free(m->fields);
    memset(m, 0, sizeof(*m));
    m->body.fd = -1;
}

int msgin_feed(struct msgin *m, const char *p, size_t n)
{
    int rc = MSGIN_MORE;

    if (m->done)
        return MSGIN_DONE;
    for (size_t i = 0; i < n && rc == MSGIN_MORE; i++) {
        if ((unsigned char)p[i] >= 0x80)
            m->eightbit = 1;
        if (p[i] != '\n') {
            buf_addc(&m->line, p[i]);
            if (m->line.len >= m->lim.line_max)
                rc = cut_line(m);
            continue;
        }
        size_t len = m->line.len;
        if (len && m->line.data[len - 1] == '\r')
            len--;
        m->lineno++;
        rc = do_line(m, m->line.data ? m->line.data : "", len);
        buf_reset(&m->line);
    }
    return rc;
}

int msgin_finish(struct msgin *m)
{
    int rc = MSGIN_MORE;

    if (m->done)
        return MSGIN_DONE;
    if (m->line.len) {
        size_t len = m->line.len;
        if (m->line.data[len - 1] == '\r')
            len--;
        m->lineno++;
        rc = do_line(m, m->line.data, len);
        buf_reset(&m->line);
    }
    return rc == MSGIN_ERR ? MSGIN_ERR : MSGIN_DONE;
}

int msgin_field_is(const struct msgin *m, const struct hfield *f, const char *name)
{
    size_t n = strlen(name);

    return f->name_len == n && ascii_ncasecmp(m->hdr.data + f->off, name, n) == 0;
}

const char *msgin_field_value(const struct msgin *m, const struct hfield *f, size_t *len)
{
    *len = f->off + f->len - f->value_off;
    return m->hdr.data + f->value_off;
}

struct hfield *msgin_field_find(struct msgin *m, const char *name)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (!m->fields[i].deleted && msgin_field_is(m, &m->fields[i], name))
            return &m->fields[i];
    return NULL;
}
