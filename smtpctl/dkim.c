/*
 * dkim - smtpctl's DKIM commands (docs/dkim.md, "smtpctl dkim").
 *
 *   dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N] [--dir DIR] [--force]
 *       Offline. Makes a key (RSA of N bits, 2048 by default, or Ed25519)
 *       and writes it as DIR/DOMAIN.SELECTOR.key, PKCS#8 PEM, mode 0600
 *       (DIR: --dir, else dkim_key_directory, made 0700 when missing).
 *       The file is written under a temporary name, synced and then
 *       linked into place, so it is never seen half-written and an
 *       existing key is never overwritten without --force (which renames
 *       over it). Prints the dkim_map line to add and the TXT record to
 *       publish as one zone-file line, its text split into strings of at
 *       most 255 bytes. Exit 0, 1 when the key cannot be written, 2 on a
 *       usage error.
 *
 *   dkim check [--json] DOMAIN
 *       Loads the compiled dkim_map of main.cf and the keys that would
 *       sign DOMAIN's mail (its own, a parent domain's or "*"'s, as the
 *       signer finds them; the key files are root's, so this needs root),
 *       asks the running daemon for the TXT records of
 *       SELECTOR._domainkey.D of each (dnsd, live, through master: `dns
 *       txt`), and says per key whether the one record published there
 *       is this key's (dkim_txt_matches). Exit 0 when every key matches,
 *       1 otherwise (a key not loaded, no record, another key, several
 *       records), 2 when Postern is not running or on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/privsep.h"
#include "base/util.h"
#include "mail/config.h"
#include "mail/dkim.h"
#include "mail/dkim_keys.h"
#include "mail/proto.h"
#include "mail/spool.h"
#include "smtpctl.h"

#define TXT_TIMEOUT_MS (60 * 1000)
#define TXT_STRING_MAX 255

static int keygen_usage(void)
{
    fprintf(stderr, "usage: smtpctl dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N] "
                    "[--dir DIR] [--force]\n");
    return 2;
}

struct keygen_opts {
    const char *domain, *selector, *dir;
    enum dkim_alg alg;
    int bits, force;
};

/* argv: "dkim" "keygen" DOMAIN SELECTOR options. 0, or -1 after the usage. */
static int keygen_args(int argc, char **argv, struct keygen_opts *o)
{
    int bits_given = 0;

    memset(o, 0, sizeof(*o));
    o->alg = DKIM_RSA_SHA256;
    o->bits = DKIM_RSA_DEFAULT_BITS;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--ed25519") == 0) {
            o->alg = DKIM_ED25519_SHA256;
        } else if (strcmp(argv[i], "--force") == 0) {
            o->force = 1;
        } else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc) {
            char *end;
            long b = strtol(argv[++i], &end, 10);
            if (*end || b < DKIM_RSA_MIN_BITS || b > 8192) {
                fprintf(stderr, "smtpctl: --bits %s: %d to 8192\n", argv[i], DKIM_RSA_MIN_BITS);
                return -1;
            }
            o->bits = (int)b;
            bits_given = 1;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            o->dir = argv[++i];
        } else if (argv[i][0] == '-') {
            return keygen_usage(), -1;
        } else if (o->domain == NULL) {
            o->domain = argv[i];
        } else if (o->selector == NULL) {
            o->selector = argv[i];
        } else {
            return keygen_usage(), -1;
        }
    }
    if (o->selector == NULL)
        return keygen_usage(), -1;
    if (bits_given && o->alg == DKIM_ED25519_SHA256) {
        fprintf(stderr, "smtpctl: --bits is for RSA keys; an Ed25519 key has no size to choose\n");
        return -1;
    }
    return 0;
}

/* d and s as the signer will use them, and the TXT record's name fits. */
static int keygen_names_ok(const struct keygen_opts *o)
{
    if (!dkim_name_ok(o->domain)) {
        fprintf(stderr, "smtpctl: '%s' is not a domain name\n", o->domain);
        return 0;
    }
    if (!dkim_name_ok(o->selector) ||
        strlen(o->selector) + strlen("._domainkey.") + strlen(o->domain) > 253) {
        fprintf(stderr, "smtpctl: selector '%s' is not a DNS name (letters, digits, '-', '.')\n",
                o->selector);
        return 0;
    }
    return 1;
}

/* dir, made 0700 when it is missing. */
static int key_dir(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "smtpctl: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "smtpctl: %s is not a directory\n", dir);
        return -1;
    }
    return 0;
}

/* pem into path, mode 0600: through a temporary file, linked into place
 * (never over an existing file) or, with force, renamed over it. */
static int write_key(const char *path, const char *pem, int force)
{
    char *tmp = xasprintf("%s.%ld.tmp", path, (long)getpid());
    int fd, rc = -1;

    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "smtpctl: cannot create %s: %s\n", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, pem, strlen(pem)) != 0 || fsync(fd) != 0) {
        fprintf(stderr, "smtpctl: cannot write %s: %s\n", tmp, strerror(errno));
        close(fd);
        goto out;
    }
    close(fd);
    if (force ? rename(tmp, path) != 0 : link(tmp, path) != 0) {
        if (errno == EEXIST)
            fprintf(stderr, "smtpctl: %s exists: not overwritten (--force replaces it)\n", path);
        else
            fprintf(stderr, "smtpctl: cannot write %s: %s\n", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    unlink(tmp); /* after link; after rename it is gone already */
    free(tmp);
    return rc;
}

/* The TXT record as one zone-file line, in strings of at most 255 bytes. */
static void print_zone_line(const char *selector, const char *domain, const char *txt)
{
    size_t n = strlen(txt);

    printf("%s._domainkey.%s. IN TXT (", selector, domain);
    for (size_t off = 0; off < n; off += TXT_STRING_MAX)
        printf(" \"%.*s\"", (int)(n - off < TXT_STRING_MAX ? n - off : TXT_STRING_MAX), txt + off);
    printf(" )\n");
}

int cmd_dkim_keygen(const char *confdir, int argc, char **argv)
{
    struct keygen_opts o;
    struct dkim_key *k;
    char *dir, *path, *pem, *txt, *err = NULL;
    int rc = 1;

    if (keygen_args(argc, argv, &o) < 0)
        return 2;
    if (!keygen_names_ok(&o))
        return 2;
    dir = o.dir ? xstrdup(o.dir) : config_peek(confdir, P_dkim_key_directory);
    if (*dir == '\0' || key_dir(dir) < 0) {
        if (*dir == '\0')
            fprintf(stderr, "smtpctl: dkim_key_directory is empty: say --dir DIR\n");
        free(dir);
        return 1;
    }
    path = xasprintf("%s/%s.%s.key", dir, o.domain, o.selector);
    ascii_lower(path + strlen(dir));
    if (!o.force && access(path, F_OK) == 0) {
        fprintf(stderr, "smtpctl: %s exists: not overwritten (--force replaces it)\n", path);
        goto out_path;
    }
    if ((k = dkim_key_generate(o.alg, o.bits, &err)) == NULL) {
        fprintf(stderr, "smtpctl: %s\n", err);
        free(err);
        goto out_path;
    }
    pem = dkim_key_pem(k);
    txt = dkim_key_txt(k);
    if (pem && txt && write_key(path, pem, o.force) == 0) {
        char *domain = xstrdup(o.domain);
        ascii_lower(domain);
        if (o.alg == DKIM_RSA_SHA256)
            printf("wrote %s (%s, %d bits, mode 0600)\n\n", path, dkim_alg_name(o.alg),
                   dkim_key_bits(k));
        else
            printf("wrote %s (%s, mode 0600)\n\n", path, dkim_alg_name(o.alg));
        printf("add to the dkim_map (then smtpctl makemap it):\n");
        printf("%s selector=%s key=%s algorithm=%s\n\n", domain, o.selector, path,
               dkim_alg_name(o.alg));
        printf("publish in DNS (a zone file line), then smtpctl dkim check %s:\n", domain);
        print_zone_line(o.selector, domain, txt);
        free(domain);
        rc = 0;
    } else if (!pem || !txt) {
        fprintf(stderr, "smtpctl: the new key cannot be written out\n");
    }
    free_secret(pem);
    free(txt);
    dkim_key_free(k);
out_path:
    free(path);
    free(dir);
    return rc;
}

/* ---- dkim check ---- */

/* What the DNS publishes for one key, and the verdict. */
struct key_check {
    const struct dkim_entry *e;
    char *name;     /* SELECTOR._domainkey.D */
    char *verdict;  /* "match" "mismatch" "missing" "not loaded" "failed" */
    char *why;      /* NULL when it matches */
    char **records; /* as dnsd found them */
    size_t n;
};

/* The records of a `dns txt` reply: one a line. */
static void split_records(char *text, struct key_check *kc)
{
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        kc->records = xrealloc(kc->records, (kc->n + 1) * sizeof(char *));
        kc->records[kc->n++] = xstrdup(line);
    }
}

/* The verdict for kc from the records published at its name. */
static void judge(struct key_check *kc)
{
    size_t matching = 0;
    char *first_why = NULL;

    for (size_t i = 0; i < kc->n; i++) {
        char *why = NULL;
        if (dkim_txt_matches(kc->records[i], kc->e->key, &why))
            matching++;
        else if (first_why == NULL)
            first_why = why;
        else
            free(why);
    }
    if (matching == 1 && kc->n == 1) {
        kc->verdict = xstrdup("match");
        free(first_why);
        return;
    }
    kc->verdict = xstrdup("mismatch");
    if (matching > 0)
        kc->why = xasprintf("%zu TXT records at %s, one of them this key's: a verifier may "
                            "take any; publish only this one",
                            kc->n, kc->name);
    else if (kc->n > 1)
        kc->why = xasprintf("%zu TXT records at %s, none of them this key's (the first: %s)", kc->n,
                            kc->name, first_why ? first_why : "?");
    else
        kc->why =
            xasprintf("the record published is not this key's: %s", first_why ? first_why : "?");
    free(first_why);
}

/* Ask dnsd (through master at path) for kc's name and judge. -1 when
 * Postern does not answer (said on stderr). */
static int check_one(const char *path, struct key_check *kc)
{
    char dns[] = "dns", txt[] = "txt";
    char *argv[3] = {dns, txt, kc->name};
    struct ctl_rep rep;
    size_t l;

    if (kc->e->key == NULL) {
        kc->verdict = xstrdup("not loaded");
        kc->why = xasprintf("key %s: %s", kc->e->key_path, kc->e->error ? kc->e->error : "?");
        return 0;
    }
    if (smtpctl_call(path, 0, 3, argv, TXT_TIMEOUT_MS, &rep) < 0)
        return -1;
    if (rep.code == 0) {
        split_records(rep.output, kc);
        judge(kc);
    } else {
        l = strlen(rep.output);
        while (l > 0 && rep.output[l - 1] == '\n')
            rep.output[--l] = '\0';
        kc->verdict =
            xstrdup(strstr(rep.output, "no such name") || strstr(rep.output, "no TXT") ? "missing"
                                                                                       : "failed");
        kc->why = xasprintf("%s", rep.output);
    }
    ctl_rep_free(&rep);
    return 0;
}

static void print_text(const char *domain, const struct key_check *kc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct dkim_entry *e = kc[i].e;
        printf("%s s=%s (%s", strcmp(e->domain, "*") == 0 ? domain : e->domain, e->selector,
               dkim_alg_name(e->alg));
        if (e->key && e->alg == DKIM_RSA_SHA256)
            printf(", %d bits", dkim_key_bits(e->key));
        printf("%s): %s: ", strcmp(e->domain, "*") == 0 ? ", the \"*\" key" : "", kc[i].name);
        if (strcmp(kc[i].verdict, "match") == 0)
            printf("the published record matches the key\n");
        else if (strcmp(kc[i].verdict, "missing") == 0)
            printf("not published: %s\n", kc[i].why);
        else if (strcmp(kc[i].verdict, "not loaded") == 0)
            printf("not checked: %s\n", kc[i].why);
        else if (strcmp(kc[i].verdict, "failed") == 0)
            printf("cannot tell: %s\n", kc[i].why);
        else
            printf("does not match: %s\n", kc[i].why);
    }
}

static void print_json(const char *domain, const struct key_check *kc, size_t n, int all)
{
    struct buf b;

    buf_init(&b);
    buf_adds(&b, "{\"domain\":");
    buf_json_str(&b, domain);
    buf_printf(&b, ",\"ok\":%s,\"keys\":[", all ? "true" : "false");
    for (size_t i = 0; i < n; i++) {
        const struct dkim_entry *e = kc[i].e;
        buf_adds(&b, i ? ",{\"d\":" : "{\"d\":");
        buf_json_str(&b, strcmp(e->domain, "*") == 0 ? domain : e->domain);
        buf_adds(&b, ",\"s\":");
        buf_json_str(&b, e->selector);
        buf_printf(&b, ",\"algorithm\":\"%s\",\"entry\":", dkim_alg_name(e->alg));
        buf_json_str(&b, e->domain);
        buf_adds(&b, ",\"key\":");
        buf_json_str(&b, e->key_path);
        buf_adds(&b, ",\"name\":");
        buf_json_str(&b, kc[i].name);
        buf_adds(&b, ",\"verdict\":");
        buf_json_str(&b, kc[i].verdict);
        buf_adds(&b, ",\"why\":");
        if (kc[i].why)
            buf_json_str(&b, kc[i].why);
        else
            buf_adds(&b, "null");
        buf_adds(&b, ",\"records\":[");
        for (size_t j = 0; j < kc[i].n; j++) {
            if (j)
                buf_addc(&b, ',');
            buf_json_str(&b, kc[i].records[j]);
        }
        buf_adds(&b, "]}");
    }
    buf_adds(&b, "]}\n");
    fputs(b.data, stdout);
    buf_free(&b);
}

/* The keys of main.cf's dkim_map, as the signer would load them; NULL
 * after saying why. */
static struct dkim_keys *load_keys(const char *confdir, char **map_out)
{
    struct config cfg;
    struct dkim_keys *k = NULL;
    uid_t forbid = (uid_t)-1, uid;
    gid_t gid;
    char *err = NULL;

    if (config_load(&cfg, confdir, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return NULL;
    }
    *map_out = xstrdup(cfg_str(&cfg, P_dkim_map));
    if (**map_out == '\0') {
        fprintf(stderr, "smtpctl: dkim_map is not set in %s: no DKIM keys\n", cfg.file);
        config_free(&cfg);
        return NULL;
    }
    if (geteuid() == 0 && privsep_lookup(cfg_str(&cfg, P_mail_owner), &uid, &gid, &err) == 0)
        forbid = uid;
    free(err);
    err = NULL;
    if (dkim_keys_load(*map_out, forbid, &k, &err) < 0) {
        fprintf(stderr, "smtpctl: dkim_map: %s\n", err);
        free(err);
        k = NULL;
    }
    config_free(&cfg);
    return k;
}

int cmd_dkim_check(const char *confdir, const char *spool, unsigned flags, int argc, char **argv)
{
    const struct dkim_entry *e[2];
    struct key_check kc[2];
    struct dkim_keys *k;
    char *map = NULL, *domain, *path;
    size_t n;
    int all = 1, rc = 0, unreadable = 0;

    if (argc != 3 || argv[2][0] == '-') {
        fprintf(stderr, "usage: smtpctl dkim check [--json] DOMAIN\n");
        return 2;
    }
    if ((k = load_keys(confdir, &map)) == NULL) {
        free(map);
        return 1;
    }
    domain = xstrdup(argv[2]);
    ascii_lower(domain);
    n = dkim_keys_find(k, domain, e);
    if (n == 0) {
        fprintf(stderr, "smtpctl: no key for %s in the dkim_map (%s): its mail is not signed\n",
                domain, map);
        dkim_keys_free(k);
        free(domain);
        free(map);
        return 1;
    }
    path = xasprintf("%s/%s", spool, SPOOL_CONTROL);
    memset(kc, 0, sizeof(kc));
    for (size_t i = 0; i < n; i++) {
        kc[i].e = e[i];
        kc[i].name = xasprintf("%s._domainkey.%s", e[i]->selector,
                               strcmp(e[i]->domain, "*") == 0 ? domain : e[i]->domain);
        if (check_one(path, &kc[i]) < 0) {
            rc = 2;
            n = i; /* what was judged is freed below */
            free(kc[i].name);
            break;
        }
        all &= strcmp(kc[i].verdict, "match") == 0;
        unreadable |= e[i]->key == NULL && geteuid() != 0;
    }
    if (rc == 0) {
        if (flags & CTL_F_JSON)
            print_json(domain, kc, n, all);
        else
            print_text(domain, kc, n);
        if (unreadable)
            fprintf(stderr, "smtpctl: the keys are root's and mode 0600: run smtpctl dkim check "
                            "as root to check them\n");
        rc = all ? 0 : 1;
    }
    for (size_t i = 0; i < n; i++) {
        free(kc[i].name);
        free(kc[i].verdict);
        free(kc[i].why);
        for (size_t j = 0; j < kc[i].n; j++)
            free(kc[i].records[j]);
        free(kc[i].records);
    }
    free(path);
    dkim_keys_free(k);
    free(domain);
    free(map);
    return rc;
}
