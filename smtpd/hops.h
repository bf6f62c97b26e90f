/*
 * hops - counts the Received: header fields of a message as smtpd
 * receives it (RFC 5321 section 6.3: a message that has been relayed too
 * many times is in a loop). Fed the decoded message (CR LF line ends, no
 * dot-stuffing) in pieces of any size; only the header section counts
 * (up to the first empty line). A field name matches case-insensitively
 * and only at the start of a line ("X-Received:" and continuation lines
 * do not count). Pure and fuzzed with the DATA decoder's input.
 */
#ifndef SMTPD_HOPS_H
#define SMTPD_HOPS_H

#include <stddef.h>

struct hops {
    unsigned count; /* Received: fields seen */
    int state;      /* where in the header section (hops.c) */
    size_t match;   /* bytes of "received:" matched at this line's start */
};

void hops_init(struct hops *h);
void hops_feed(struct hops *h, const char *p, size_t n);

#endif
