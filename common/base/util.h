/*
 * util - small helpers every Postern program uses: checked allocation,
 * a growable byte buffer, string helpers, time.
 *
 * Allocation failures are not recoverable in a mail daemon: xmalloc and
 * friends log and abort (via log_panic) instead of returning NULL.
 * struct buf always keeps a NUL after its data so text can be used as a
 * C string; its length never counts that NUL.
 */
#ifndef POSTERN_UTIL_H
#define POSTERN_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Overwrite a secret string (a password) with zeros, then free it; NULL is fine. */
void free_secret(char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Remove the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Append s as a JSON string literal (with quotes), escaping as RFC 8259 says. */
void buf_json_str(struct buf *b, const char *s);

/* Copy with truncation; always NUL-terminates; returns strlen(src). */
size_t strlcpy_p(char *dst, const char *src, size_t size);
/* Case-insensitive ASCII comparisons (locale-independent). */
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);
void ascii_lower(char *s);

/* Wall clock and monotonic clock in microseconds. */
int64_t now_us(void);
int64_t mono_us(void);
/* us (wall clock) as an RFC 5322 date in UTC, "Mon, 07 Dec 2026 08:01:02
 * +0000", whatever the locale; buf needs 32 bytes. Returns buf. */
char *rfc5322_date(int64_t us, char *buf, size_t len);

/* Make fd non-blocking / close-on-exec; -1 with errno on failure. */
int fd_nonblock(int fd);
int fd_cloexec(int fd, int on);

/* Write all of p, retrying on EINTR; -1 on error. For blocking fds only. */
int write_all(int fd, const void *p, size_t n);
/* A whole file as a NUL-terminated string (malloc'd); NULL and *err
 * ("path: why") when it cannot be read or is larger than max bytes. */
char *read_text_file(const char *path, size_t max, char **err);
/* The same, with the length in *len (the text may hold NUL bytes). */
char *read_file_len(const char *path, size_t max, size_t *len, char **err);

/* Unlink every entry of the directory dirfd but dot files; returns how
 * many went, and in *failed (if not NULL) how many could not (a name
 * already gone does not count). */
unsigned dir_clear(int dirfd, unsigned *failed);

#endif
