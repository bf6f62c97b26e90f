/*
 * smtp_addr - RFC 5321 paths and ESMTP parameters, shared by the SMTP
 * server (smtpd) and the SMTP client (deliver, relay).
 *
 * Everything here is pure: no I/O, no allocation, bounded by the caller's
 * buffers. Input is hostile network text; every function checks bounds
 * and fails with a static reason string (*why) instead of guessing.
 *
 * smtp_path_parse() reads "<mailbox>" (or "<>" when allowed), skipping a
 * legacy source route ("<@a,@b:user@host>"). The mailbox is copied out as
 * written (quoted local parts keep their quotes). UTF-8 is accepted in the
 * local part and domain only if it is well formed; the caller learns that
 * it was present (SMTP_PATH_UTF8) and decides whether SMTPUTF8 allows it.
 * Control characters, NUL and bytes 0x80+ that are not UTF-8 are refused.
 *
 * smtp_param_next() splits "KEY[=VALUE] KEY[=VALUE]..." into keywords
 * and values (RFC 5321 esmtp-param) and checks their character sets.
 *
 * xtext (RFC 3461) is what ENVID and ORCPT travel as: smtp_xtext_valid(),
 * smtp_xtext_decode() and smtp_xtext_encode() convert it.
 */
#ifndef POSTERN_SMTP_ADDR_H
#define POSTERN_SMTP_ADDR_H

#include <stddef.h>

/* Longest mailbox we accept, in octets (RFC 5321 says 256 for the whole
 * path; real VERP senders exceed it, so we allow some slack). */
#define SMTP_ADDR_MAX 512
#define SMTP_LOCAL_MAX 256
#define SMTP_DOMAIN_MAX 255
/* RFC 3461: ENVID at most 100 characters, ORCPT at most 500. */
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500

/* flags for smtp_path_parse */
#define SMTP_PATH_NULL_OK 0x1u /* "<>" is allowed (MAIL FROM) */

/* result bits */
#define SMTP_PATH_NULL 0x1u /* the path was "<>" */
#define SMTP_PATH_UTF8 0x2u /* the mailbox holds non-ASCII (UTF-8) */

/*
 * Parse a path at s (len bytes). On success returns the number of bytes
 * used (the closing '>' included), writes the mailbox (without brackets,
 * NUL-terminated, "" for "<>") to out[outsz], and sets *res to SMTP_PATH_*
 * bits. On failure returns -1 and *why.
 */
int smtp_path_parse(const char *s, size_t len, unsigned flags, char *out, size_t outsz,
                    unsigned *res, const char **why);

/* Validate a mailbox without brackets (as smtp_path_parse would); 0 or -1. */
int smtp_mailbox_valid(const char *s, size_t len, unsigned *res, const char **why);

/* A domain name (dot-separated labels of letters, digits, '-', or UTF-8
 * U-labels) or an address literal "[1.2.3.4]" / "[IPv6:...]". 0 or -1. */
int smtp_domain_valid(const char *s, size_t len, int allow_utf8);

/* 1 if s[0..len) is well-formed UTF-8 without overlongs or surrogates. */
int smtp_utf8_valid(const unsigned char *s, size_t len);
/* The length of the one UTF-8 sequence at s (at most len bytes, len > 0):
 * 1 to 4, or 0 if it is not well-formed (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF, nothing cut short). */
size_t smtp_utf8_seq(const unsigned char *s, size_t len);

/*
 * One ESMTP parameter from *pp (up to end). Leading spaces are skipped.
 * Returns 1 with key/val spans (val NULL when the parameter has no '='),
 * 0 at the end of input, -1 on a syntax error (*why). utf8 allows UTF-8
 * in values (RFC 6531). *pp advances past the parameter.
 */
int smtp_param_next(const char **pp, const char *end, int utf8, const char **key, size_t *klen,
                    const char **val, size_t *vlen, const char **why);

/* xtext (RFC 3461): "+XX" hex escapes, other chars 33..126 except '+' '='. */
int smtp_xtext_valid(const char *s, size_t len);
/* Decode into out[outsz]; returns decoded length, or -1 if invalid or too
 * long. The result is NUL-terminated. */
int smtp_xtext_decode(const char *s, size_t len, char *out, size_t outsz);
/* Encode into out[outsz]; returns length, or -1 if it does not fit. */
int smtp_xtext_encode(const char *s, size_t len, char *out, size_t outsz);

#endif
