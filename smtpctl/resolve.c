/*
 * resolve - "smtpctl route ADDRESS --resolve": the route as qmgr plans it,
 * then the DNS answers for the hosts it would use, as dnsd gives them
 * (with its cache, as deliver's own lookups would).
 *
 * qmgr has no resolver. With --resolve it ends its answer with one line
 * "resolve: mx OPTIONS NAME [OVERRIDE...]" or "resolve: host OPTIONS NAME"
 * per lookup of the plan (OPTIONS: --tls MODE, --port N, --sts: what the
 * delivery would use); those lines are taken out here and each becomes a
 * "dns lookup" or "dns host" request to dnsd, which adds the TLS policy of
 * each host. Text output shows each answer under its lookup; with --json
 * the output is one object {"route": ROUTE, "resolved": [ANSWER...]},
 * each answer dnsd's own JSON.
 *
 * "smtpctl tls check DOMAIN" takes the same lines from qmgr's route of
 * postmaster@DOMAIN and sends each to deliver as "tls probe", which makes
 * the lookup and a test connection to each host (tls_probe.h).
 */
#include "resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/ctl_client.h"
#include "mail/proto.h"
#include "mail/spool.h"
#include "base/util.h"
#include "smtpctl.h"

#define RESOLVE_TIMEOUT_MS (130 * 1000) /* a tls probe may take 90 s (tls_probe.h) */
#define RESOLVE_MAX 64                  /* lookups shown at most (a route names a few) */

int resolve_wanted(int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "route") != 0)
        return 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--resolve") == 0)
            return 1;
    return 0;
}

int smtpctl_call(const char *path, unsigned flags, int argc, char **argv, int timeout_ms,
                 struct ctl_rep *rep)
{
    struct ctl_req req = {flags, (size_t)argc, argv};
    struct ctl_client_err err;

    if (ctl_client_call(path, &req, timeout_ms, rep, &err) < 0) {
        char *msg = ctl_client_strerror(&err, path, "master");
        fprintf(stderr, "smtpctl: %s\n", msg);
        free(msg);
        return -1;
    }
    return 0;
}

static int call(const char *path, unsigned flags, int argc, char **argv, struct ctl_rep *rep)
{
    return smtpctl_call(path, flags, argc, argv, RESOLVE_TIMEOUT_MS, rep);
}

/* Split "mx NAME OVR..." / "host NAME" into dnsd's request words. */
static int lookup_words(char *spec, char **w, int max)
{
    static char dns[] = "dns", lookup[] = "lookup", host[] = "host";
    int n = 2;
    char *save = NULL, *kind = strtok_r(spec, " ", &save);

    if (kind == NULL)
        return -1;
    w[0] = dns;
    w[1] = strcmp(kind, "mx") == 0 ? lookup : strcmp(kind, "host") == 0 ? host : NULL;
    if (w[1] == NULL)
        return -1;
    for (char *t; n < max && (t = strtok_r(NULL, " ", &save)) != NULL;)
        w[n++] = t;
    return n > 2 ? n : -1;
}

/* "mx --tls may --port 25 a.test ovr" -> "mx a.test ovr": the options
 * (and their values) are for dnsd, not for the reader. */
static char *spec_label(const char *spec)
{
    struct buf b;
    char *copy = xstrdup(spec), *save = NULL;

    buf_init(&b);
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (strcmp(t, "--tls") == 0 || strcmp(t, "--port") == 0) {
            (void)strtok_r(NULL, " ", &save);
            continue;
        }
        if (strncmp(t, "--", 2) == 0)
            continue;
        buf_printf(&b, "%s%s", b.len ? " " : "", t);
    }
    free(copy);
    buf_addc(&b, '\0');
    return b.data; /* malloc'd by buf */
}

/*
 * Send each spec, turned into a command by words(), and print the
 * answers: in JSON one array element each (null when there is none),
 * in text "INDENT LABEL:" and the answer's lines under it. 1 when a
 * command failed or answered non-zero.
 */
static int ask_each(const char *path, unsigned flags, char **specs, int nres,
                    int (*words)(char *spec, char **w, int max), int json, const char *indent)
{
    int bad = 0;

    for (int i = 0; i < nres; i++) {
        char *w[48];
        char *label = spec_label(specs[i]);
        int n = words(specs[i], w, (int)nitems(w));
        struct ctl_rep r;

        if (n < 0 || call(path, flags, n, w, &r) < 0) {
            free(label);
            bad = 1;
            continue;
        }
        if (r.code != 0)
            bad = 1;
        if (json) {
            size_t l = strlen(r.output);
            while (l > 0 && r.output[l - 1] == '\n')
                r.output[--l] = '\0';
            printf("%s%s", i ? "," : "", l && r.output[0] == '{' ? r.output : "null");
        } else {
            printf("%s%s:\n", indent, label);
            for (char *line = r.output, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                    *next++ = '\0';
                printf("%s  %s\n", indent, line);
            }
        }
        free(label);
        ctl_rep_free(&r);
    }
    return bad;
}

int resolve_route(const char *spool, unsigned flags, int argc, char **argv)
{
    char *path = xasprintf("%s/%s", spool, SPOOL_CONTROL);
    int json = (flags & CTL_F_JSON) != 0, code, nres = 0, bad = 0;
    struct ctl_rep rep;
    struct buf route;
    char *specs[RESOLVE_MAX];

    if (call(path, flags, argc, argv, &rep) < 0) {
        free(path);
        return 2;
    }
    if (rep.code != 0) {
        fputs(rep.output, stderr);
        code = (int)rep.code;
        ctl_rep_free(&rep);
        free(path);
        return code;
    }
    buf_init(&route);
    for (char *line = rep.output, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "resolve: ", 9) == 0) {
            if (nres < RESOLVE_MAX)
                specs[nres++] = line + 9;
        } else {
            buf_adds(&route, line);
            if (!json)
                buf_addc(&route, '\n');
        }
    }
    buf_addc(&route, '\0');
    if (json)
        printf("{\"route\":%s,\"resolved\":[", route.data);
    else
        printf("%sresolved:\n", route.data);
    bad = ask_each(path, flags, specs, nres, lookup_words, json, "  ");
    if (json)
        printf("]}\n");
    else if (nres == 0)
        printf("  nothing to look up: the mail fails\n");
    buf_free(&route);
    ctl_rep_free(&rep);
    free(path);
    return bad;
}

/* "mx --tls may --sts --port 25 a.test ovr" -> tls probe's words: the
 * options, then the kind, then the names. */
static int probe_words(char *spec, char **w, int max)
{
    static char tls[] = "tls", probe[] = "probe";
    char *save = NULL, *kind = strtok_r(spec, " ", &save), *t;
    int n = 2;

    if (kind == NULL)
        return -1;
    w[0] = tls;
    w[1] = probe;
    while ((t = strtok_r(NULL, " ", &save)) != NULL && strncmp(t, "--", 2) == 0 && n < max - 2) {
        w[n++] = t;
        if ((strcmp(t, "--tls") == 0 || strcmp(t, "--port") == 0) &&
            (t = strtok_r(NULL, " ", &save)) != NULL)
            w[n++] = t;
    }
    w[n++] = kind;
    for (; t != NULL && n < max; t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    return n;
}

int tls_check_run(const char *spool, unsigned flags, int argc, char **argv)
{
    char *path = xasprintf("%s/%s", spool, SPOOL_CONTROL);
    char *addr, *specs[RESOLVE_MAX];
    char plus[] = "--resolve", route[] = "route";
    char *rargv[3];
    int json = (flags & CTL_F_JSON) != 0, nres = 0, bad = 0;
    const char *domain = NULL;
    struct ctl_rep rep;

    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (domain == NULL && argv[i][0] != '-')
            domain = argv[i];
        else
            domain = "";
    if (domain == NULL || *domain == '\0' || strchr(domain, '@')) {
        fprintf(stderr, "usage: smtpctl tls check [--json] DOMAIN\n");
        free(path);
        return 2;
    }
    /* qmgr's route for a mailbox of the domain names the lookups (and
     * the TLS mode and port of each) that a delivery would make */
    addr = xasprintf("postmaster@%s", domain);
    rargv[0] = route;
    rargv[1] = addr;
    rargv[2] = plus;
    if (call(path, flags & ~(unsigned)CTL_F_JSON, 3, rargv, &rep) < 0) {
        free(addr);
        free(path);
        return 2;
    }
    if (rep.code != 0) {
        fputs(rep.output, stderr);
        bad = (int)rep.code;
        ctl_rep_free(&rep);
        free(addr);
        free(path);
        return bad;
    }
    for (char *line = rep.output, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "resolve: ", 9) == 0 && nres < RESOLVE_MAX)
            specs[nres++] = line + 9;
    }
    if (json)
        printf("{\"domain\":\"%s\",\"checks\":[", domain);
    bad = ask_each(path, flags, specs, nres, probe_words, json, "");
    if (json)
        printf("]}\n");
    else if (nres == 0)
        printf("%s: no SMTP delivery to check (local, or the mail fails)\n", domain);
    ctl_rep_free(&rep);
    free(addr);
    free(path);
    return nres == 0 ? 1 : bad;
}
