/*
 * msgin - reading the message sendmail is given on its standard input.
 *
 * Input arrives in chunks of any size (msgin_feed) and ends with
 * msgin_finish (end of file). It is cut into lines at LF; a CR before the
 * LF is dropped, so CR LF and bare LF input are the same. Lines are kept
 * with LF endings; the SMTP encoder (smtp_dotstuff) turns them into
 * CR LF and dot-stuffs them on the wire.
 *
 *   - dot_ends (sendmail without -i/-oi): a line holding only "." ends the
 *     message; whatever follows is not read.
 *   - A leading mbox "From " line is dropped.
 *   - The header section is the run of header fields ("Name: value",
 *     folded lines starting with SP/HT) at the start. It ends at an empty
 *     line (not stored: the writer puts one back) or at the first line that
 *     is not a header (which becomes the first body line). A line with a
 *     NUL byte is never a header.
 *   - Headers are stored whole (folded lines included) in hdr, indexed by
 *     fields; the body goes to a store that keeps up to spill_at bytes in
 *     memory and moves to an unlinked temporary file beyond that.
 *
 * Bounds: a header line longer than line_max - 2 bytes, a header section
 * over header_max bytes or with more than fields_max fields, and a message
 * over size_max bytes (counted as sent: every line with CR LF) are errors.
 * A body line longer than line_max - 2 is cut into pieces of at most that
 * many bytes (never inside a UTF-8 sequence), as Postfix does, so the
 * message still passes an SMTP server's line limit.
 *
 * msgin_feed returns MSGIN_MORE, MSGIN_DONE (the "." line was seen; stop
 * reading) or MSGIN_ERR with m->why (static or m->whybuf) and m->err_io
 * set when the temporary file failed rather than the input.
 */
#ifndef POSTERN_SENDMAIL_MSGIN_H
#define POSTERN_SENDMAIL_MSGIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

enum { MSGIN_MORE = 0, MSGIN_DONE = 1, MSGIN_ERR = -1 };

struct msgin_limits {
    size_t line_max;   /* longest line, CR LF included */
    uint64_t size_max; /* message size */
    size_t header_max; /* header section bytes */
    size_t fields_max; /* header fields */
    size_t spill_at;   /* body bytes kept in memory */
    const char *tmpdir;
};

struct hfield {
    size_t off, len;  /* in hdr: the whole field, its LF endings included */
    size_t name_len;  /* the name, without trailing blanks before ':' */
    size_t value_off; /* offset (in hdr) just after the ':' */
    int deleted;
};

struct body {
    struct buf mem;
    int fd; /* -1 until spilled */
    uint64_t len;
    size_t spill_at;
    const char *tmpdir;
};

struct msgin {
    struct msgin_limits lim;
    int dot_ends;
    int in_headers;
    int first_line;
    int done;
    struct buf line; /* the current line so far */
    struct buf hdr;
    struct hfield *fields;
    size_t nfields, cap;
    struct body body;
    uint64_t size;   /* bytes as sent: lines with CR LF */
    uint64_t lineno; /* input lines read */
    uint64_t body_lines;
    int eightbit; /* a byte >= 0x80 was seen */
    int err_io;
    const char *why;
    char whybuf[160];
};

void msgin_init(struct msgin *m, int dot_ends, const struct msgin_limits *lim);
void msgin_free(struct msgin *m);
int msgin_feed(struct msgin *m, const char *p, size_t n);
int msgin_finish(struct msgin *m);

/* Header helpers. */
/* 1 if field f is named name (case-insensitive). */
int msgin_field_is(const struct msgin *m, const struct hfield *f, const char *name);
/* The value of field f: from after the ':' to the end (LFs included). */
const char *msgin_field_value(const struct msgin *m, const struct hfield *f, size_t *len);
/* The first field named name that is not deleted, or NULL. */
struct hfield *msgin_field_find(struct msgin *m, const char *name);

/* Body store: rewind and read it back (after msgin_finish). */
int body_rewind(struct body *b);
/* Up to n bytes into p; 0 at the end, -1 on error (errno). */
long body_read(struct body *b, size_t *pos, char *p, size_t n);

#endif
