/*
 * data_dec - the SMTP DATA decoder: raw bytes from the client in, the
 * message out, dot-unstuffed, with the end of data found. Pure and fuzzed.
 *
 * Only the exact sequence CR LF "." CR LF ends DATA (the CR LF of the
 * DATA command line counts as the first one, so ".\r\n" right away is an
 * empty message). That is what makes SMTP smuggling impossible: a bare LF
 * or a bare CR (one not part of CR LF) never starts or ends a line that
 * could end the data.
 *
 * Bare LF / bare CR handling (smtpd_bare_newline):
 *   reject     the message is refused (err = DD_ERR_BARE_LF/CR);
 *   normalize  each becomes CR LF in the output; a "." after it is
 *              unstuffed like at any line start, but such a line never
 *              ends DATA.
 * A leading "." of every line is removed (RFC 5321 4.5.2).
 *
 * Limits: a line longer than line_limit bytes (its CR LF included) gives
 * DD_ERR_LINE; more than size_limit decoded bytes gives DD_ERR_SIZE.
 * After the first error no more output is produced, but the input is
 * still scanned so that the end of data is found and the session can
 * answer and go on.
 *
 * data_dec_feed() consumes input up to and including the end sequence and
 * no further (the rest is the next command). d->done tells it was found.
 *
 * Fold mode (d->fold = 1, set after init): a line longer than line_limit
 * is cut instead of refused: CR LF goes in after line_limit - 2 octets of
 * text and the rest is a new line (never an end of data, never
 * unstuffed); d->folded counts the cuts. smtpd uses it for mail from the
 * null sender, whose notices must not be lost for their lines.
 *
 * Raw mode (data_dec_init_raw, for BDAT chunks, RFC 3030): the octets are
 * the message itself. Nothing is unstuffed and nothing ends it (the
 * chunk sizes do); bare LF / CR and the limits are handled as above, and
 * every byte given is consumed. data_dec_finish() at the last chunk ends
 * an unterminated last line with CR LF (a CR left pending there is a bare
 * CR).
 */
#ifndef POSTERN_DATA_DEC_H
#define POSTERN_DATA_DEC_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

enum dd_err {
    DD_OK = 0,
    DD_ERR_BARE_LF,
    DD_ERR_BARE_CR,
    DD_ERR_LINE,
    DD_ERR_SIZE,
};

struct data_dec {
    int state;
    int normalize;
    size_t line_limit;
    uint64_t size_limit;
    size_t line_len; /* bytes of the current input line so far */
    uint64_t size;   /* decoded bytes (counted even after an error) */
    uint64_t lines;  /* complete lines seen */
    enum dd_err err;
    int done;
    int raw;         /* BDAT: no dot handling, no end sequence */
    int fold;        /* cut over-long lines instead of refusing them */
    uint64_t folded; /* lines cut */
};

void data_dec_init(struct data_dec *d, int normalize, size_t line_limit, uint64_t size_limit);
void data_dec_init_raw(struct data_dec *d, int normalize, size_t line_limit, uint64_t size_limit);
void data_dec_finish(struct data_dec *d, struct buf *out);
size_t data_dec_feed(struct data_dec *d, const char *in, size_t len, struct buf *out);
const char *data_dec_errstr(enum dd_err e);

#endif
