/*
 * dkim_keys - the dkim_map (etc/dkim) and the private keys it names.
 *
 * Source lines (one signing key each; '#' comments, blank lines; a line
 * that starts with a blank continues the one before):
 *
 *   DOMAIN selector=SEL key=FILE [algorithm=rsa-sha256|ed25519-sha256]
 *          [headers=NAME:NAME:...] [required=yes|no]
 *
 * DOMAIN is a domain (matched case-insensitively against the From:
 * header's domain: that domain, else its closest parent domain that has
 * an entry, e.g. example.org for mail from lists.example.org) or "*"
 * (every domain without an entry of its own or of a parent). A domain
 * may have two lines, one per algorithm, each with its own selector: the
 * message then gets both signatures (RFC 8463 section 4). algorithm=
 * defaults to the key's type and, when given, must match it. FILE is
 * absolute, or relative to the directory of the map file (the config
 * directory for etc/dkim), resolved when the map is loaded. headers=
 * must name from. required= overrides main.cf's dkim_required for that
 * domain's keys.
 *
 * `smtpctl makemap etc/dkim` compiles the source to etc/dkim.db with
 * dkim_map_compile(); `smtpctl check` runs dkim_map_check(). Both give
 * "FILE:LINE: DOMAIN: why" errors: an unknown or repeated option, a
 * missing selector= or key=, a selector or domain that is not a valid
 * DNS label sequence, two lines for one domain with the same algorithm,
 * an unknown algorithm, a third line for a domain, one selector on both
 * lines of a domain. Every error found is reported, one a line (at most
 * 20 shown). With check_keys, check also loads every key and
 * names the line of a key that is missing, unreadable, of the wrong type
 * for algorithm=, an RSA key under 1024 bits, readable by group or
 * others, or (dkim_map_check_uid) owned by forbid_uid.
 *
 * Compiled form: key the domain, value its entries one a line in the
 * source's option syntax (key= as written); dkim_keys_load parses it
 * back with the same code and fails on a value that does not parse.
 *
 * Loading (dkim_keys_load): the compiled map and every key file. The
 * keys are read here only by root (the signer process before it drops
 * privileges, master on reload, smtpctl); a key file that group or others
 * may read, or (forbid_uid != -1) that is owned by forbid_uid (the
 * mail_owner that smtpd runs as), is not loaded: the entry keeps its
 * error text, so that mail for its domain is deferred or sent unsigned
 * per `required` with a log line saying why. Only a map that cannot be
 * read at all makes dkim_keys_load fail; an empty path is an empty set.
 *
 * Wire layout (IMSG_DKIM_KEYS master->signer, and without key material
 * IMSG_DKIM_STATUS signer->qmgr):
 *   u32 n, n x (str domain, str selector, str key_path, u32 alg,
 *               str headers ("" = default), u32 required (0 no, 1 yes,
 *               2 main.cf's), str error ("" = loaded), str key_pem ("" in
 *               a status body, or when the key did not load))
 * Key material is wiped when a set or a buffer holding it is freed.
 */
#ifndef POSTERN_DKIM_KEYS_H
#define POSTERN_DKIM_KEYS_H

#include <stddef.h>
#include <sys/types.h>

#include "base/ipc.h"
#include "mail/dkim.h"

#define DKIM_KEYS_MAX 4096
#define DKIM_REQUIRED_DEFAULT 2 /* entry says nothing: main.cf's dkim_required */

struct dkim_entry {
    char *domain; /* lower case, or "*" */
    char *selector;
    char *key_path;
    enum dkim_alg alg;
    char *headers;        /* NULL: DKIM_DEFAULT_HEADERS */
    unsigned required;    /* 0, 1 or DKIM_REQUIRED_DEFAULT */
    struct dkim_key *key; /* NULL when not loaded (or in a status set) */
    char *error;          /* why the key is not loaded, or NULL */
};

struct dkim_keys {
    struct dkim_entry *e;
    size_t n;
};

int dkim_map_compile(const char *path, char **err);
int dkim_map_check(const char *path, int check_keys, char **err);
/* check_keys also refuses keys owned by forbid_uid ((uid_t)-1: none). */
int dkim_map_check_uid(const char *path, int check_keys, uid_t forbid_uid, char **err);

int dkim_keys_load(const char *map_path, uid_t forbid_uid, struct dkim_keys **out, char **err);
/* 1 when s is a DNS name of letter-digit-hyphen labels, as d= and s= must
 * be (RFC 6376 section 3.1); smtpctl dkim keygen checks its words so. */
int dkim_name_ok(const char *s);
/* An empty set (never NULL). */
struct dkim_keys *dkim_keys_empty(void);
/*
 * The entries for domain: its own, else its closest parent domain's,
 * else "*"'s; at most 2, into out[]. Returns how many (0: the domain is
 * not signed).
 */
size_t dkim_keys_find(const struct dkim_keys *k, const char *domain,
                      const struct dkim_entry *out[2]);
/* Whether mail for e's domain waits when e's key cannot be used: its
 * required=, or main.cf's dkim_required (dflt) when the line says nothing. */
int dkim_entry_required(const struct dkim_entry *e, int dflt);
/* with_keys: include key_pem (IMSG_DKIM_KEYS) or not (IMSG_DKIM_STATUS). */
void dkim_keys_encode(struct ipc_w *w, const struct dkim_keys *k, int with_keys);
/* NULL when malformed (truncated, trailing bytes, n over DKIM_KEYS_MAX, a
 * domain or selector that is not a DNS name, an unknown alg or required,
 * both an error and a key). Entries whose key_pem does not load, or is
 * not of alg, get its error. */
struct dkim_keys *dkim_keys_decode(const void *body, size_t len);
void dkim_keys_free(struct dkim_keys *k);

#endif
