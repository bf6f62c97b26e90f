/*
 * hops - count Received: fields in a header section; see hops.h.
 */
#include "hops.h"

enum { H_BOL, H_NAME, H_LINE, H_CR_BOL, H_BODY };

static const char FIELD[] = "received:";

void hops_init(struct hops *h)
{
    h->count = 0;
    h->state = H_BOL;
    h->match = 0;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* One byte of a line's start, compared with the field name. */
static void name_byte(struct hops *h, char c)
{
    if (lower(c) == FIELD[h->match]) {
        if (++h->match == sizeof(FIELD) - 1) {
            h->count++;
            h->state = H_LINE;
        }
    } else {
        h->state = c == '\n' ? H_BOL : H_LINE;
    }
}

void hops_feed(struct hops *h, const char *p, size_t n)
{
    for (size_t i = 0; i < n && h->state != H_BODY; i++) {
        char c = p[i];
        switch (h->state) {
        case H_BOL:
            if (c == '\r') {
                h->state = H_CR_BOL;
                break;
            }
            if (c == '\n') { /* a bare empty line ends the header too */
                h->state = H_BODY;
                break;
            }
            h->match = 0;
            h->state = H_NAME;
            name_byte(h, c);
            break;
        case H_NAME:
            name_byte(h, c);
            break;
        case H_LINE:
            if (c == '\n')
                h->state = H_BOL;
            break;
        case H_CR_BOL:
            h->state = c == '\n' ? H_BODY : c == '\r' ? H_CR_BOL : H_LINE;
            break;
        }
    }
}
