/*
 * sts_http - the HTTP/1.x response of an MTA-STS policy server, judged
 * as RFC 8461 3.3 wants: a pure, incremental parser (no I/O) that the
 * fetch feeds every byte it reads and the fuzz target feeds hostile ones.
 *
 * stshttp_feed() appends bytes and says whether the response is complete
 * (STSHTTP_DONE: body and blen set), needs more (STSHTTP_MORE) or is
 * refused (STSHTTP_ERROR: why says, e.g. "HTTP status 404", "redirect
 * to https://... not followed (RFC 8461 3.3)", "Content-Type text/html
 * is not text/plain", "the policy is longer than 65536 bytes", "header
 * section longer than 8192 bytes"). stshttp_eof() is called when the
 * server closed: it completes a close-delimited body, else it is an
 * error ("connection closed before the end of the body").
 *
 * Accepted: a status line "HTTP/1.0 200 ..." or "HTTP/1.1 200 ...",
 * header lines ended by CR LF (or LF), at most STSHTTP_HEADER_MAX bytes
 * of them, Content-Type text/plain with any parameters, and a body
 * delimited by Content-Length, chunked transfer coding (chunk
 * extensions and trailers skipped) or the end of the connection, of at
 * most STS_POLICY_MAX bytes. Refused: any other status (redirects
 * included), a missing or other Content-Type, a Transfer-Encoding other
 * than chunked, Content-Length together with Transfer-Encoding, two
 * different Content-Lengths, folded header lines, NUL bytes in the
 * header, malformed chunk sizes. Bytes after a complete body are
 * ignored.
 */
#ifndef POSTERN_DNSD_STS_HTTP_H
#define POSTERN_DNSD_STS_HTTP_H

#include <stddef.h>

#include "base/util.h"

#define STSHTTP_HEADER_MAX 8192

enum stshttp_state { STSHTTP_MORE, STSHTTP_DONE, STSHTTP_ERROR };

struct stshttp {
    struct buf in; /* every byte so far (bounded) */
    struct buf body;
    enum stshttp_state st;
    int status;
    char why[256];
};

void stshttp_init(struct stshttp *h);
void stshttp_free(struct stshttp *h);
enum stshttp_state stshttp_feed(struct stshttp *h, const void *p, size_t n);
enum stshttp_state stshttp_eof(struct stshttp *h);

#endif
