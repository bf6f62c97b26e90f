/*
 * mail_dkim_keys - unit tests of the dkim_map and its keys
 * (common/mail/dkim_keys.c): every kind of bad line refused with
 * "FILE:LINE: DOMAIN: why" by check and compile (all errors at once),
 * check_keys naming the line of each key that cannot be used (missing,
 * group-readable, owned by smtpd's uid, of the other type, too short, two
 * of one type); compile + load + find (exact domain in any case, parent
 * domains, "*", two algorithms, relative key paths from the map's
 * directory, headers= and required= kept); a key that group may read
 * or that forbid_uid owns refused per entry while the others load; a
 * value in the .db that does not parse refusing the load; and the
 * IMSG_DKIM_KEYS / IMSG_DKIM_STATUS bodies: round trip, no key material
 * without with_keys, every truncation and each malformed field refused.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/ipc.h"
#include "base/map.h"
#include "base/util.h"
#include "mail/dkim.h"
#include "mail/dkim_keys.h"
#include "tap.h"

static char dir[] = "/tmp/dkim-keys-test-XXXXXX";

static char *path_of(const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static char *write_text(const char *name, const char *text, mode_t mode)
{
    char *p = path_of(name);
    FILE *f = fopen(p, "w");

    fputs(text, f);
    fclose(f);
    chmod(p, mode);
    return p;
}

/* A new key of alg written as name (mode 0600); its TXT record in *txt. */
static void write_key(const char *name, enum dkim_alg alg, char **txt)
{
    char *err = NULL;
    struct dkim_key *k = dkim_key_generate(alg, 1024, &err);
    char *pem;

    if (k == NULL) {
        diag("dkim_key_generate: %s", err);
        exit(1);
    }
    pem = dkim_key_pem(k);
    free(write_text(name, pem, 0600));
    if (txt)
        *txt = dkim_key_txt(k);
    free_secret(pem);
    dkim_key_free(k);
}

/* A key DKIM refuses, made with OpenSSL directly: RSA 512, or EC P-256. */
static void write_other_key(const char *name, int rsa512)
{
    EVP_PKEY *p = rsa512 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512)
                         : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *path = path_of(name);
    FILE *f = fopen(path, "w");

    PEM_write_PrivateKey(f, p, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(path, 0600);
    EVP_PKEY_free(p);
    free(path);
}

/* check's error text for a map of text (keys not loaded), or NULL when it passes. */
static char *check_text(const char *text, int check_keys, uid_t forbid)
{
    char *p = write_text("dkim", text, 0644), *err = NULL;
    int rc = dkim_map_check_uid(p, check_keys, forbid, &err);

    if ((rc == 0) != (err == NULL))
        diag("check returned %d with err %s", rc, err ? err : "NULL");
    free(p);
    return err;
}

static void unlink_db(const char *p)
{
    char *db = xasprintf("%s.db", p);

    unlink(db);
    free(db);
}

/* err is one line that starts "DIR/dkim:LINE: " and holds want. */
static void is_error(const char *text, const char *want_at, const char *want, const char *name)
{
    char *err = check_text(text, 0, (uid_t)-1), *at = xasprintf("%s/dkim:%s: ", dir, want_at);
    char *err2 = NULL, *p = path_of("dkim");

    ok(err && strncmp(err, at, strlen(at)) == 0 && strstr(err, want) && !strchr(err, '\n'),
       "%s: %s", name, err ? err : "(passed)");
    /* compile refuses it with the same words */
    unlink_db(p);
    ok(dkim_map_compile(p, &err2) < 0 && err2 && err && strcmp(err, err2) == 0,
       "%s: compile says the same", name);
    free(err);
    free(err2);
    free(at);
    free(p);
}

static void test_syntax(void)
{
    char *err;

    is_error("example.org selector=s key=k foo=bar\n", "1", "example.org: unknown option 'foo'",
             "an unknown option");
    is_error("# comment\n\nexample.org selector=a selector=b key=k\n", "3",
             "example.org: selector= is given twice", "a repeated option");
    is_error("example.org key=k\n", "1", "example.org: selector= is missing", "no selector=");
    is_error("example.org selector=s\n", "1", "example.org: key= is missing", "no key=");
    is_error("example.org selector=s key=k algorithm=rsa-sha1\n", "1",
             "example.org: unknown algorithm 'rsa-sha1'", "an unknown algorithm");
    is_error("example.org selector=bad_sel key=k\n", "1",
             "example.org: selector 'bad_sel' is not a DNS name", "a selector with '_'");
    is_error("example.org selector=-s key=k\n", "1", "selector '-s' is not a DNS name",
             "a selector starting with '-'");
    is_error("exa!mple.org selector=s key=k\n", "1", "exa!mple.org: not a domain name",
             "a domain that is not a DNS name");
    is_error("example..org selector=s key=k\n", "1", "example..org: not a domain name",
             "an empty label");
    is_error("example.org selector=s key=k headers=to:subject\n", "1",
             "example.org: headers= must include from", "headers= without from");
    is_error("example.org selector=s key=k headers=from::to\n", "1", "empty field name",
             "headers= with an empty name");
    is_error("example.org selector=s key=k required=maybe\n", "1", "required=maybe: yes or no",
             "required= neither yes nor no");
    is_error("example.org selector=s key=k bare\n", "1", "'bare' is not name=value",
             "a word without '='");
    is_error("example.org selector=s key=\n", "1", "key= is empty", "an empty value");
    is_error("  selector=s key=k\n", "1", "continuation line with nothing to continue",
             "a continuation first");
    is_error("example.org selector=a key=a algorithm=rsa-sha256\n"
             "example.org selector=b key=b algorithm=rsa-sha256\n",
             "2", "example.org: a second rsa-sha256 key (line 1 has one)",
             "two lines of one algorithm");
    is_error("example.org selector=a key=a algorithm=rsa-sha256\n"
             "EXAMPLE.org selector=A key=b algorithm=ed25519-sha256\n",
             "2", "example.org: selector A is line 1's too",
             "one selector on both lines (in any case)");
    is_error("example.org selector=a key=a\nexample.org selector=b key=b algorithm=ed25519-sha256\n"
             "example.org selector=c key=c\n",
             "3", "example.org: a third key", "three lines for a domain");

    {
        char *p = path_of("dkim");
        FILE *f = fopen(p, "w");
        fwrite("example.org selector=s key=k\0 x\n", 1, 32, f);
        fclose(f);
        int rc = dkim_map_check(p, 0, &err);
        ok(rc < 0 && err && strstr(err, "dkim:1: NUL byte"), "a NUL byte: %s",
           err ? err : "(passed)");
        free(err);
        free(p);
    }

    /* every error at once, each with its line */
    err = check_text("a.test selector=s key=k\n"
                     "b.test selector=s\n"
                     "# a comment\n"
                     "c.test selector=s key=k\n"
                     "    nope\n"
                     "d.test key=k\n",
                     0, (uid_t)-1);
    if (!ok(err && strstr(err, "dkim:2: b.test: key= is missing") &&
                strstr(err, "dkim:4: c.test: 'nope' is not name=value") &&
                strstr(err, "dkim:6: d.test: selector= is missing") && !strstr(err, "a.test"),
            "every bad line is named, a continuation counts for its entry's line"))
        diag("%s", err ? err : "(passed)");
    free(err);

    /* a good map: continuation, comments, "*", options */
    err = check_text("# DKIM keys\n"
                     "example.org selector=s1 key=k1\n"
                     "    algorithm=rsa-sha256 headers=From:To:Subject required=no\n"
                     "example.org selector=s2 key=k2 algorithm=ed25519-sha256\n"
                     "*           selector=all key=/abs/k3\n",
                     0, (uid_t)-1);
    ok(err == NULL, "a good map passes the check: %s", err ? err : "");
    free(err);
    char *none = path_of("none");
    int rc = dkim_map_check(none, 0, &err);
    ok(rc < 0 && err && strstr(err, "none"), "a missing source: %s", err ? err : "");
    free(err);
    free(none);
}

static void test_check_keys(void)
{
    char *err;

    write_key("rsa.key", DKIM_RSA_SHA256, NULL);
    write_key("ed.key", DKIM_ED25519_SHA256, NULL);
    write_key("rsa2.key", DKIM_RSA_SHA256, NULL);
    write_key("open.key", DKIM_RSA_SHA256, NULL);
    char *open_key = path_of("open.key");
    chmod(open_key, 0644);
    free(open_key);
    write_other_key("short.key", 1);
    write_other_key("ec.key", 0);

    err = check_text("example.org selector=r key=rsa.key\n"
                     "example.org selector=e key=ed.key algorithm=ed25519-sha256\n",
                     1, (uid_t)-1);
    ok(err == NULL, "check_keys: two good keys pass (relative paths from the map's directory): %s",
       err ? err : "");
    free(err);

    err = check_text("a.test selector=s key=missing.key\n"
                     "b.test selector=s key=open.key\n"
                     "c.test selector=s key=rsa.key algorithm=ed25519-sha256\n"
                     "d.test selector=s key=short.key\n"
                     "e.test selector=s key=ec.key\n"
                     "f.test selector=s key=rsa.key\n"
                     "f.test selector=t key=rsa2.key\n",
                     1, (uid_t)-1);
    ok(err && strstr(err, "dkim:1: a.test: key ") && strstr(err, "/missing.key: cannot be read"),
       "a missing key names its line");
    ok(err && strstr(err, "dkim:2: b.test: key ") && strstr(err, "group or others") &&
           strstr(err, "0644"),
       "a key group and others may read is refused");
    ok(err && strstr(err, "dkim:3: c.test: key ") &&
           strstr(err, "algorithm=ed25519-sha256 but the key is for rsa-sha256"),
       "a key of the other type than algorithm=");
    ok(err && strstr(err, "dkim:4: d.test: key ") && strstr(err, "512 bits"),
       "an RSA key under 1024 bits");
    ok(err && strstr(err, "dkim:5: e.test: key ") && strstr(err, "DKIM signs with RSA"),
       "a key of neither type");
    ok(err && strstr(err, "dkim:7: f.test: a second rsa-sha256 key (line 6 has one)"),
       "two keys of one type without algorithm=");
    free(err);

    err = check_text("example.org selector=r key=rsa.key\n", 1, getuid());
    ok(err && strstr(err, "dkim:1: example.org: key ") && strstr(err, "owned by uid"),
       "a key owned by forbid_uid (smtpd's) is refused: %s", err ? err : "(passed)");
    free(err);
    err = check_text("example.org selector=r key=missing.key\n", 0, (uid_t)-1);
    ok(err == NULL, "without check_keys, keys are not read");
    free(err);
}

static char *compile_map(const char *text)
{
    char *p = write_text("dkim", text, 0644), *err = NULL;

    if (dkim_map_compile(p, &err) < 0) {
        diag("compile: %s", err);
        free(err);
    }
    return p;
}

static const char good_map[] = "example.org selector=r2024 key=rsa.key headers=From:To:Subject\n"
                               "example.org selector=e2024 key=ed.key required=no\n"
                               "sub.example.org selector=sub key=rsa2.key required=yes\n"
                               "* selector=any key=RSAKEY\n";

static char *good_map_text(void)
{
    char *rsa = path_of("rsa.key"), *t = xstrdup(good_map), *at = strstr(t, "RSAKEY");
    char *out;

    *at = '\0';
    out = xasprintf("%s%s\n", t, rsa); /* "*" names its key by an absolute path */
    free(t);
    free(rsa);
    return out;
}

static void test_load_find(void)
{
    char *text = good_map_text(), *p = compile_map(text), *err = NULL, *rsa = path_of("rsa.key");
    const struct dkim_entry *e[2];
    struct dkim_keys *k = NULL;
    size_t n;

    free(text);
    int rc = dkim_keys_load(p, (uid_t)-1, &k, &err);
    ok(rc == 0 && k, "the compiled map loads: %s", err ? err : "");
    if (k == NULL)
        return;
    is_int(k->n, 4, "four entries");
    for (size_t i = 0; i < k->n; i++)
        ok(k->e[i].key && k->e[i].error == NULL, "%s s=%s: its key loaded", k->e[i].domain,
           k->e[i].selector);

    n = dkim_keys_find(k, "EXAMPLE.ORG", e);
    is_int(n, 2, "example.org (in any case): two keys");
    ok(n == 2 && e[0]->alg == DKIM_RSA_SHA256 && e[1]->alg == DKIM_ED25519_SHA256,
       "rsa-sha256 then ed25519-sha256, as the lines are (algorithm= from the key's type)");
    is_str(n ? e[0]->selector : NULL, "r2024", "its selector");
    is_str(n ? e[0]->key_path : NULL, rsa, "a relative key= is taken from the map's directory");
    is_str(n ? e[0]->headers : NULL, "from:to:subject", "headers= kept (lower case)");
    ok(n == 2 && e[0]->required == DKIM_REQUIRED_DEFAULT && e[1]->required == 0,
       "required=: unset is main.cf's, no is 0");

    n = dkim_keys_find(k, "sub.example.org", e);
    ok(n == 1 && strcmp(e[0]->selector, "sub") == 0 && e[0]->required == 1,
       "a subdomain with its own entry gets it");
    n = dkim_keys_find(k, "lists.example.org", e);
    ok(n == 2 && strcmp(e[0]->domain, "example.org") == 0,
       "a subdomain without one gets its parent domain's keys");
    n = dkim_keys_find(k, "deep.sub.example.org", e);
    ok(n == 1 && strcmp(e[0]->domain, "sub.example.org") == 0, "the closest parent first");
    n = dkim_keys_find(k, "other.test", e);
    ok(n == 1 && strcmp(e[0]->domain, "*") == 0 && strcmp(e[0]->key_path, rsa) == 0,
       "any other domain: \"*\" (absolute key=)");
    ok(dkim_keys_find(k, "", e) == 0 && dkim_keys_find(k, NULL, e) == 0, "no domain: no key");
    dkim_keys_free(k);

    /* without "*" */
    free(p);
    p = compile_map("example.org selector=r key=rsa.key\n");
    k = NULL;
    ok(dkim_keys_load(p, (uid_t)-1, &k, &err) == 0 && k && dkim_keys_find(k, "other.test", e) == 0,
       "without \"*\", another domain is not signed");
    ok(k && dkim_keys_find(k, "notexample.org", e) == 0, "a suffix that is not a parent is not");
    dkim_keys_free(k);

    /* a group-readable key and one smtpd's uid owns: that entry's error, the others load */
    free(p);
    p = compile_map("a.test selector=s key=open.key\nb.test selector=s key=rsa.key\n");
    k = NULL;
    ok(dkim_keys_load(p, (uid_t)-1, &k, &err) == 0 && k && k->n == 2,
       "a map with a key others may read still loads");
    n = k ? dkim_keys_find(k, "a.test", e) : 0;
    ok(n == 1 && e[0]->key == NULL && e[0]->error && strstr(e[0]->error, "mode 0644"),
       "that entry has no key, and says why: %s", n && e[0]->error ? e[0]->error : "");
    n = k ? dkim_keys_find(k, "b.test", e) : 0;
    ok(n == 1 && e[0]->key && e[0]->error == NULL, "the other key loads");
    dkim_keys_free(k);
    k = NULL;
    ok(dkim_keys_load(p, getuid(), &k, &err) == 0 && k && k->n == 2 && k->e[1].key == NULL &&
           k->e[1].error && strstr(k->e[1].error, "owned by uid"),
       "forbid_uid: a key it owns is not loaded");
    dkim_keys_free(k);

    /* empty path, no .db, a .db whose value does not parse */
    k = NULL;
    ok(dkim_keys_load("", (uid_t)-1, &k, &err) == 0 && k && k->n == 0, "an empty path: no keys");
    dkim_keys_free(k);
    k = NULL;
    char *nomap = path_of("nomap");
    rc = dkim_keys_load(nomap, (uid_t)-1, &k, &err);
    ok(rc < 0 && k == NULL && err && strstr(err, "makemap"),
       "a map never compiled cannot be loaded: %s", err ? err : "");
    free(err);
    free(nomap);
    err = NULL;
    struct map_writer *w = map_create(p, 0, &err);
    ok(w && map_put(w, "c.test", "selector=s nokey=x", 18, &err) == 0 && map_commit(w, &err) == 0,
       "a .db with a bad value written");
    rc = dkim_keys_load(p, (uid_t)-1, &k, &err);
    ok(rc < 0 && err && strstr(err, "c.test") && strstr(err, "rebuild"), "refused: %s",
       err ? err : "");
    free(err);
    free(p);
    free(rsa);
}

/* The bodies of a set: one decoded, or NULL. */
static struct dkim_keys *round_trip(const struct dkim_keys *k, int with_keys, struct ipc_w *w)
{
    ipc_w_init(w);
    dkim_keys_encode(w, k, with_keys);
    return dkim_keys_decode(w->p, w->len);
}

static int has_bytes(const struct ipc_w *w, const char *s)
{
    return memmem(w->p, w->len, s, strlen(s)) != NULL;
}

/* A body of one entry, with fields chosen by the test. */
static void one_entry(struct ipc_w *w, const char *domain, const char *sel, uint32_t alg,
                      uint32_t required, const char *error, const char *pem)
{
    ipc_w_init(w);
    ipc_w_u32(w, 1);
    ipc_w_str(w, domain);
    ipc_w_str(w, sel);
    ipc_w_str(w, "/k");
    ipc_w_u32(w, alg);
    ipc_w_str(w, "");
    ipc_w_u32(w, required);
    ipc_w_str(w, error);
    ipc_w_str(w, pem);
}

static void test_ipc(void)
{
    char *text = good_map_text(), *p, *err = NULL, *txt = NULL;
    struct dkim_keys *k = NULL, *d;
    const struct dkim_entry *e[2];
    struct ipc_w w;
    size_t bad = 0;

    char *text2 = xasprintf("%sopen.test selector=o key=open.key\n", text);
    p = compile_map(text2);
    free(text);
    free(text2);
    if (dkim_keys_load(p, (uid_t)-1, &k, &err) < 0) {
        ok(0, "load: %s", err);
        return;
    }
    d = round_trip(k, 1, &w);
    ok(d && d->n == k->n, "IMSG_DKIM_KEYS body decodes, every entry");
    ok(has_bytes(&w, "PRIVATE KEY"), "with_keys: the body holds the keys");
    for (size_t i = 0; d && i < d->n; i++) {
        const struct dkim_entry *a = &k->e[i], *b = &d->e[i];
        char *ta = a->key ? dkim_key_txt(a->key) : NULL, *tb = b->key ? dkim_key_txt(b->key) : NULL;
        ok(strcmp(a->domain, b->domain) == 0 && strcmp(a->selector, b->selector) == 0 &&
               strcmp(a->key_path, b->key_path) == 0 && a->alg == b->alg &&
               a->required == b->required && !a->headers == !b->headers &&
               (!a->headers || strcmp(a->headers, b->headers) == 0),
           "%s s=%s: the same names and options", a->domain, a->selector);
        ok((!ta && !tb) || (ta && tb && strcmp(ta, tb) == 0), "%s s=%s: the same key", a->domain,
           a->selector);
        ok(!a->error == !b->error && (!a->error || strcmp(a->error, b->error) == 0),
           "%s s=%s: the same error", a->domain, a->selector);
        free(ta);
        free(tb);
    }
    ok(d && dkim_keys_find(d, "open.test", e) == 1 && e[0]->key == NULL && e[0]->error,
       "an entry whose key did not load travels with its error");
    dkim_keys_free(d);
    explicit_bzero(w.p, w.len);
    ipc_w_free(&w);

    d = round_trip(k, 0, &w);
    ok(d && d->n == k->n, "IMSG_DKIM_STATUS body decodes");
    ok(!has_bytes(&w, "PRIVATE KEY") && !has_bytes(&w, "MII"), "without keys: no key material");
    size_t loaded = 0, keys = 0;
    for (size_t i = 0; d && i < d->n; i++) {
        loaded += d->e[i].error == NULL;
        keys += d->e[i].key != NULL;
    }
    is_int(keys, 0, "no entry has a key");
    is_int(loaded, k->n - 1, "those that loaded have no error; the other keeps its own");
    dkim_keys_free(d);

    /* every truncation, and a trailing byte, refused */
    for (size_t cut = 0; cut < w.len; cut++) {
        struct dkim_keys *t = dkim_keys_decode(w.p, cut);
        bad += t != NULL;
        dkim_keys_free(t);
    }
    is_int(bad, 0, "every truncated body is refused");
    ipc_w_u8(&w, 0);
    ok(dkim_keys_decode(w.p, w.len) == NULL, "a trailing byte is refused");
    ipc_w_free(&w);

    ipc_w_init(&w);
    ipc_w_u32(&w, DKIM_KEYS_MAX + 1);
    ok(dkim_keys_decode(w.p, w.len) == NULL, "n over DKIM_KEYS_MAX is refused");
    ipc_w_free(&w);
    ipc_w_init(&w);
    ipc_w_u32(&w, 0);
    d = dkim_keys_decode(w.p, w.len);
    ok(d && d->n == 0, "an empty set decodes");
    dkim_keys_free(d);
    ipc_w_free(&w);

    one_entry(&w, "x.test", "s", 0, 2, "", "");
    d = dkim_keys_decode(w.p, w.len);
    ok(d && d->n == 1 && d->e[0].key == NULL && d->e[0].error == NULL, "a well-formed entry");
    dkim_keys_free(d);
    ipc_w_free(&w);
    one_entry(&w, "x.test", "s", 2, 2, "", "");
    ok(dkim_keys_decode(w.p, w.len) == NULL, "an unknown alg is refused");
    ipc_w_free(&w);
    one_entry(&w, "x.test", "s", 0, 3, "", "");
    ok(dkim_keys_decode(w.p, w.len) == NULL, "an unknown required is refused");
    ipc_w_free(&w);
    one_entry(&w, "", "s", 0, 2, "", "");
    ok(dkim_keys_decode(w.p, w.len) == NULL, "an empty domain is refused");
    ipc_w_free(&w);
    one_entry(&w, "x.test", "bad sel", 0, 2, "", "");
    ok(dkim_keys_decode(w.p, w.len) == NULL, "a selector that is not a DNS name is refused");
    ipc_w_free(&w);
    one_entry(&w, "x.test", "s", 0, 2, "why", "-----BEGIN PRIVATE KEY-----");
    ok(dkim_keys_decode(w.p, w.len) == NULL, "both an error and a key is refused");
    ipc_w_free(&w);
    one_entry(&w, "x.test", "s", 0, 2, "", "not a key");
    d = dkim_keys_decode(w.p, w.len);
    ok(d && d->e[0].key == NULL && d->e[0].error, "a key that does not load: its error (%s)",
       d && d->e[0].error ? d->e[0].error : "");
    dkim_keys_free(d);
    ipc_w_free(&w);

    /* a key of the other type than its entry says */
    write_key("ed3.key", DKIM_ED25519_SHA256, &txt);
    char *ed3 = path_of("ed3.key");
    char *pem = read_text_file(ed3, 65536, &err);
    free(ed3);
    one_entry(&w, "x.test", "s", DKIM_RSA_SHA256, 2, "", pem);
    d = dkim_keys_decode(w.p, w.len);
    ok(d && d->e[0].key == NULL && d->e[0].error && strstr(d->e[0].error, "ed25519"),
       "a key of the other type: its error (%s)", d && d->e[0].error ? d->e[0].error : "");
    dkim_keys_free(d);
    ipc_w_free(&w);
    one_entry(&w, "x.test", "s", DKIM_ED25519_SHA256, 2, "", pem);
    d = dkim_keys_decode(w.p, w.len);
    char *txt2 = d && d->e[0].key ? dkim_key_txt(d->e[0].key) : NULL;
    ok(txt2 && strcmp(txt, txt2) == 0, "an Ed25519 key travels whole");
    free(txt2);
    dkim_keys_free(d);
    ipc_w_free(&w);
    free_secret(pem);
    free(txt);

    ipc_w_init(&w);
    dkim_keys_encode(&w, NULL, 1);
    d = dkim_keys_decode(w.p, w.len);
    ok(d && d->n == 0, "NULL encodes as an empty set");
    dkim_keys_free(d);
    ipc_w_free(&w);
    d = dkim_keys_empty();
    ok(d && d->n == 0 && dkim_keys_find(d, "x.test", e) == 0, "dkim_keys_empty");
    dkim_keys_free(d);
    dkim_keys_free(k);
    free(p);
}

int main(void)
{
    plan_lazy();
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_syntax();
    test_check_keys();
    test_load_find();
    test_ipc();
    {
        char *cmd = xasprintf("rm -rf '%s'", dir);
        if (system(cmd) != 0)
            diag("could not remove %s", dir);
        free(cmd);
    }
    return done_testing();
}
