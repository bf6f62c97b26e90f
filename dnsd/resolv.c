/*
 * resolv - DNS server list from dns_servers or resolv.conf (see resolv.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dns_proto.h"
#include "resolv.h"
#include "base/util.h"

void resolv_init(struct resolv_conf *rc)
{
    memset(rc, 0, sizeof(*rc));
    rc->timeout = -1;
    rc->attempts = -1;
}

void resolv_server_set(struct dns_server *s, const struct sockaddr_storage *ss)
{
    char a[INET6_ADDRSTRLEN];
    uint16_t port;

    memset(s, 0, sizeof(*s));
    s->ss = *ss;
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&s->ss;
        if (in->sin_port == 0)
            in->sin_port = htons(53);
        port = ntohs(in->sin_port);
        s->sslen = sizeof(*in);
        snprintf(s->text, sizeof(s->text), "%s:%u", dns_addr_str(&s->ss, a, sizeof(a)), port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->ss;
        if (in6->sin6_port == 0)
            in6->sin6_port = htons(53);
        port = ntohs(in6->sin6_port);
        s->sslen = sizeof(*in6);
        snprintf(s->text, sizeof(s->text), "[%s]:%u", dns_addr_str(&s->ss, a, sizeof(a)), port);
    }
}

static int small_int(const char *s, int max)
{
    int v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return max;
    }
    return v;
}

static void parse_options(char *rest, struct resolv_conf *rc)
{
    char *save = NULL;

    for (char *w = strtok_r(rest, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        int v;
        if (strncmp(w, "timeout:", 8) == 0 && (v = small_int(w + 8, 60)) >= 0)
            rc->timeout = v < 1 ? 1 : v;
        else if (strncmp(w, "attempts:", 9) == 0 && (v = small_int(w + 9, 10)) >= 0)
            rc->attempts = v < 1 ? 1 : v;
    }
}

static void parse_nameserver(char *rest, struct resolv_conf *rc)
{
    char *save = NULL;
    char *w = strtok_r(rest, " \t", &save);
    struct sockaddr_storage ss;

    if (!w || rc->n >= RESOLV_MAX || strchr(w, '%'))
        return;
    /* resolv.conf takes a bare address, no port */
    if (strchr(w, '[') || dns_parse_addr(w, &ss) != 1)
        return;
    if (ss.ss_family == AF_INET && strchr(w, ':'))
        return;
    resolv_server_set(&rc->servers[rc->n++], &ss);
}

void resolv_parse_text(const char *text, struct resolv_conf *rc)
{
    char *copy = xstrdup(text);
    char *save = NULL;

    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *p = line, *kw;
        size_t kl;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == ';' || *p == '\0')
            continue;
        for (char *c = p; *c; c++)
            if (*c == '#' || *c == ';' || *c == '\r') {
                *c = '\0';
                break;
            }
        kw = p;
        kl = strcspn(p, " \t");
        if (p[kl] == '\0')
            continue;
        p[kl] = '\0';
        p += kl + 1;
        if (strcmp(kw, "nameserver") == 0)
            parse_nameserver(p, rc);
        else if (strcmp(kw, "options") == 0)
            parse_options(p, rc);
    }
    free(copy);
}

int resolv_parse_list(char *const *list, struct resolv_conf *rc, char **err)
{
    for (size_t i = 0; list && list[i]; i++) {
        struct sockaddr_storage ss;
        int r = dns_parse_addr(list[i], &ss);

        if (r != 1) {
            *err =
                xasprintf("dns_servers: \"%s\" is not addr[:port] (IPv6 as [addr]:port)", list[i]);
            return -1;
        }
        if (rc->n >= RESOLV_MAX) {
            *err = xasprintf("dns_servers: more than %d servers", RESOLV_MAX);
            return -1;
        }
        resolv_server_set(&rc->servers[rc->n++], &ss);
    }
    return 0;
}

int resolv_load_file(const char *path, struct resolv_conf *rc, char **err)
{
    FILE *f = fopen(path, "r");
    struct buf b;
    char chunk[4096];
    size_t n;

    if (!f) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        return -1;
    }
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < 1024 * 1024)
        buf_add(&b, chunk, n);
    fclose(f);
    resolv_parse_text(b.data ? b.data : "", rc);
    buf_free(&b);
    return 0;
}
