/*
 * smtp_reply - the pure (no I/O) pieces of Postern's outbound SMTP client:
 * reading server replies, reading EHLO capabilities, and encoding a
 * message for DATA. smtp_client.c moves bytes and calls these.
 *
 * Replies (RFC 5321 4.2): one or more lines "ddd-text" ending with
 * "ddd text" (or a bare "ddd"); every line carries the same code, which is
 * 200..599. smtp_reply_line() takes one line at a time (CR LF already
 * removed) and says whether more follow; it refuses malformed lines,
 * inconsistent codes, lines longer than SMTP_REPLY_LINE_MAX, more than
 * SMTP_REPLY_LINES_MAX lines, and NUL bytes. An RFC 3463 enhanced status
 * code ("5.1.1") at the start of the first line is picked out into enh
 * when its class matches the reply code; it is not required.
 *
 * smtp_reply_summary() gives the one-line form used in results, logs and
 * DSNs: "550 5.1.1 text of line one text of line two", sanitised by
 * smtp_sanitize, so that remote text can never inject control characters
 * into logs while a UTF-8 address in it (RFC 6531) stays readable.
 *
 * smtp_caps_parse() reads an EHLO reply into capability bits, the SIZE
 * limit and the AUTH mechanisms we can use (PLAIN, LOGIN).
 *
 * The DATA encoder (smtp_dotstuff_*) turns message bytes, fed in chunks of
 * any size, into the DATA stream: line ends normalised to CR LF (a bare LF
 * or a lone CR becomes CR LF), a '.' at the start of a line doubled
 * (RFC 5321 4.5.2), and at the end a CR LF if the message did not end with
 * one, then ".\r\n".
 */
#ifndef POSTERN_SMTP_REPLY_H
#define POSTERN_SMTP_REPLY_H

#include <stddef.h>

#include "base/util.h"

/* Longest reply line we accept (text after the code, CR LF not counted).
 * RFC 5321 says 512 octets for a whole line; real servers exceed it. */
#define SMTP_REPLY_LINE_MAX 4096
#define SMTP_REPLY_LINES_MAX 256
/* Longest one-line summary written by smtp_reply_summary (NUL included). */
#define SMTP_SUMMARY_MAX 512

struct smtp_reply {
    int code;        /* 200..599 once a line was read */
    char enh[16];    /* "5.1.1" from the first line, or "" */
    struct buf text; /* each line's text after "ddd-"/"ddd ", joined by '\n' */
    int nlines;      /* lines read so far */
    int done;        /* the last line was read; the next line starts anew */
};

enum { SMTP_REPLY_MORE = 0, SMTP_REPLY_DONE = 1, SMTP_REPLY_BAD = -1 };

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_reset(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);

/*
 * Feed one line (without its CR LF). Returns SMTP_REPLY_MORE when a
 * continuation line must follow, SMTP_REPLY_DONE when the reply is
 * complete, SMTP_REPLY_BAD with a static reason in *why. After DONE (or
 * BAD) the next call starts a new reply.
 */
int smtp_reply_line(struct smtp_reply *r, const char *line, size_t len, const char **why);

/*
 * Parse one whole reply from p[0..n): lines end in LF or CR LF. Returns
 * SMTP_REPLY_DONE and sets *used to the bytes it took, SMTP_REPLY_MORE if
 * the input ends before the reply does, SMTP_REPLY_BAD (*why) if the text
 * is not a reply. Used by tests and the fuzzer; the client reads lines.
 */
int smtp_reply_parse(struct smtp_reply *r, const char *p, size_t n, size_t *used, const char **why);

/* The text of line i (0-based) into *s and *len; -1 if there is no such line. */
int smtp_reply_text_line(const struct smtp_reply *r, int i, const char **s, size_t *len);

/*
 * "CODE [ENH ]text text..." sanitised and truncated (with "...") to fit
 * out[outsz]; continuation lines are joined with one space and the
 * enhanced code they repeat is dropped. Returns out.
 */
char *smtp_reply_summary(const struct smtp_reply *r, char *out, size_t outsz);

/* Copy src[0..n) to out[outsz], NUL-terminated: printable ASCII and
 * well-formed UTF-8 characters (smtp_utf8_seq) are kept, '\t' becomes ' ',
 * and each control character (C0, DEL, C1 U+0080..U+009F) and each byte
 * that is not part of a well-formed UTF-8 character becomes '?'. Truncated
 * to fit, never in the middle of a character. Returns the length written. */
size_t smtp_sanitize(char *out, size_t outsz, const char *src, size_t n);

/* 1 if s[0..len) is an enhanced status code "c.sss.ddd" with c in 2,4,5,
 * sss and ddd of 1 to 3 digits. */
int smtp_enh_valid(const char *s, size_t len);

/* EHLO capabilities. */
#define SMTP_CAP_PIPELINING 0x001u
#define SMTP_CAP_SIZE 0x002u
#define SMTP_CAP_8BITMIME 0x004u
#define SMTP_CAP_SMTPUTF8 0x008u
#define SMTP_CAP_STARTTLS 0x010u
#define SMTP_CAP_AUTH 0x020u
#define SMTP_CAP_DSN 0x040u
#define SMTP_CAP_ENHANCEDSTATUSCODES 0x080u
#define SMTP_CAP_CHUNKING 0x100u

/* AUTH mechanisms Postern can use. */
#define SMTP_AUTH_PLAIN 0x1u
#define SMTP_AUTH_LOGIN 0x2u

struct smtp_caps {
    unsigned flags;          /* SMTP_CAP_* */
    unsigned auth;           /* SMTP_AUTH_* offered */
    unsigned long long size; /* SIZE limit in bytes; 0: none announced */
};

/* Read the capabilities of an EHLO reply (its first line, the greeting, is
 * skipped). Unknown keywords are ignored; a SIZE without a valid number
 * sets SMTP_CAP_SIZE with size 0 (no limit known). */
void smtp_caps_parse(struct smtp_caps *c, const struct smtp_reply *ehlo);
/* "PIPELINING SIZE=10240000 8BITMIME ..." for logs, into out[outsz]. */
char *smtp_caps_format(const struct smtp_caps *c, char *out, size_t outsz);

/* The DATA encoder. */
struct smtp_dotstuff {
    int bol; /* at the beginning of a line */
    int cr;  /* the previous byte was a CR not yet written */
};

void smtp_dotstuff_init(struct smtp_dotstuff *d);
/* Append the encoded form of in[0..n) to out. */
void smtp_dotstuff_add(struct smtp_dotstuff *d, const char *in, size_t n, struct buf *out);
/* Append the end: a pending CR as CR LF, a CR LF if the last line was not
 * ended, then ".\r\n". */
void smtp_dotstuff_end(struct smtp_dotstuff *d, struct buf *out);

#endif
