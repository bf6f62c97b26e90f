/*
 * addrlist - the RFC 5322 address-list parser sendmail -t uses on To:,
 * Cc:, Bcc: (and Resent-*) header values and on recipient arguments.
 * Pure: no I/O; input is untrusted text with its length.
 *
 *   address-list = address *("," address)
 *   address      = mailbox / group
 *   mailbox      = [display-name] "<" [route ":"] addr-spec ">" / addr-spec
 *   group        = display-name ":" [mailbox *("," mailbox)] ";"
 *
 * Comments "(...)" (nested, with quoted pairs) and white space (CR LF of
 * folded lines included) are skipped anywhere between tokens. Local parts
 * may be dot-atoms, quoted strings or the obsolete word.word form; domains
 * dot-atoms or literals "[...]". UTF-8 (RFC 6532) counts as atext.
 *
 * Leniency, as mail administrators expect from an MTA: empty list
 * elements (",,") are skipped, a group may lack its final ";" at the end
 * of the value, an unquoted "@" in a display name ("a@b <c@d>") is
 * taken as display name, a route in an angle address is dropped, and an
 * address without "@domain" is returned with domain NULL so that the
 * caller can add its own (sendmail appends @myhostname).
 *
 * Each address comes out in the form an SMTP path carries: the local part
 * unquoted when it is a valid dot-atom after removing quotes ("john"@x
 * -> john@x), otherwise quoted with '"' and '\' escaped ("john doe"@x).
 *
 * Errors: -1, a static reason in *why, and the byte offset in *where;
 * nothing is appended to the list then. A list longer than max addresses
 * is an error too (the caller's recipient bound).
 */
#ifndef POSTERN_SENDMAIL_ADDRLIST_H
#define POSTERN_SENDMAIL_ADDRLIST_H

#include <stddef.h>

struct addr {
    char *local;  /* canonical local part (quoted when it must be) */
    char *domain; /* NULL when the address had no "@domain" */
    int utf8;     /* local part or domain holds non-ASCII bytes */
};

struct addrlist {
    struct addr *v;
    size_t n, cap;
};

void addrlist_init(struct addrlist *l);
void addrlist_free(struct addrlist *l);

/* Parse s[0..len) and append its addresses to l (at most max in l). */
int addrlist_parse(struct addrlist *l, const char *s, size_t len, size_t max, const char **why,
                   size_t *where);

/* Append one address (copies of local and domain; domain may be NULL). */
void addrlist_add(struct addrlist *l, const char *local, const char *domain);

/* "local@domain", or "local@def_domain" when the address has none
 * (def_domain NULL: just "local"). malloc'd. */
char *addr_format(const struct addr *a, const char *def_domain);

/* 1 if s[0..len) is a dot-atom (atext runs joined by single dots). */
int addr_is_dot_atom(const char *s, size_t len);

#endif
