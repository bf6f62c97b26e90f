/*
 * netaddr - parse and format numeric socket addresses and CIDR networks.
 */
#include "base/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static int parse_port(const char *s, int *port)
{
    char *end;
    long v;

    if (*s < '0' || *s > '9')
        return -1;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int netaddr_split_hostport(const char *s, char *host, size_t hostlen, int *port, int *bracketed,
                           const char **why)
{
    const char *ptext = NULL;
    size_t n;

    *port = 0;
    *bracketed = *s == '[';
    if (*bracketed) {
        const char *close = strchr(s, ']');
        if (close == NULL) {
            *why = "missing ']'";
            return -1;
        }
        n = (size_t)(close - s - 1);
        if (close[1] == ':')
            ptext = close + 2;
        else if (close[1] != '\0') {
            *why = "text after ']'";
            return -1;
        }
        s++;
    } else {
        const char *colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':') != NULL) {
            *why = "IPv6 addresses must be written in brackets: [addr]:port";
            return -1;
        }
        n = colon ? (size_t)(colon - s) : strlen(s);
        if (colon)
            ptext = colon + 1;
    }
    if (n == 0 || n >= hostlen) {
        *why = "missing or too long host";
        return -1;
    }
    if (ptext != NULL && parse_port(ptext, port) < 0) {
        *why = "bad port (1-65535)";
        return -1;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    return 0;
}

int netaddr_host_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 253)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == ':' || *s == '_'))
            return 0;
    return 1;
}

int netaddr_parse_hostport(const char *s, int default_port, struct sockaddr_storage *out,
                           const char **why)
{
    char host[INET6_ADDRSTRLEN + 1];
    int port, bracketed;

    memset(out, 0, sizeof(*out));
    if (netaddr_split_hostport(s, host, sizeof(host), &port, &bracketed, why) < 0)
        return -1;
    if (port == 0 && default_port <= 0) {
        *why = "missing :port";
        return -1;
    }
    if (port == 0)
        port = default_port;
    struct sockaddr_in *sin = (struct sockaddr_in *)out;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((unsigned short)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((unsigned short)port);
        return 0;
    }
    *why = "not a numeric IPv4 or IPv6 address";
    return -1;
}

int netaddr_parse_cidr(const char *s, struct cidr *out, const char **why)
{
    char text[INET6_ADDRSTRLEN + 8];
    char *slash, *end;
    size_t n = strlen(s);
    int max;

    memset(out, 0, sizeof(*out));
    if (n == 0 || n >= sizeof(text)) {
        *why = "bad network";
        return -1;
    }
    /* Accept "[::1]/128" as well as "::1/128". */
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) {
            *why = "missing ']'";
            return -1;
        }
        snprintf(text, sizeof(text), "%.*s%s", (int)(close - s - 1), s + 1, close + 1);
    } else {
        memcpy(text, s, n + 1);
    }
    slash = strchr(text, '/');
    if (slash)
        *slash++ = '\0';
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, text, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        *why = "not a numeric address/prefix";
        return -1;
    }
    out->prefix = max;
    if (slash) {
        long p = strtol(slash, &end, 10);
        if (*slash == '\0' || *end != '\0' || p < 0 || p > max) {
            *why = "bad prefix length";
            return -1;
        }
        out->prefix = (int)p;
    }
    return 0;
}

static int prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
    int bytes = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)bytes) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

int netaddr_cidr_match(const struct cidr *net, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        return net->family == AF_INET &&
               prefix_match(net->addr, (const unsigned char *)&sin->sin_addr, net->prefix);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *a = sin6->sin6_addr.s6_addr;
        if (net->family == AF_INET6)
            return prefix_match(net->addr, a, net->prefix);
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            return prefix_match(net->addr, a + 12, net->prefix);
    }
    return 0;
}

socklen_t netaddr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int netaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    return 0;
}

const char *netaddr_ntop(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *a;

    if (sa->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    else if (sa->sa_family == AF_INET)
        a = &((const struct sockaddr_in *)sa)->sin_addr;
    else {
        snprintf(buf, len, "unknown");
        return buf;
    }
    if (inet_ntop(sa->sa_family, a, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "unknown");
    return buf;
}

const char *netaddr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    netaddr_ntop(sa, a, sizeof(a));
    if (sa->sa_family == AF_INET6)
        snprintf(buf, len, "[%s]:%d", a, netaddr_port(sa));
    else
        snprintf(buf, len, "%s:%d", a, netaddr_port(sa));
    return buf;
}

int netaddr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}

int netaddr_parse_cidr_list(char *const *list, struct cidr **out, size_t *n, char **err)
{
    size_t k = 0;
    struct cidr *v;

    while (list && list[k])
        k++;
    v = xcalloc(k ? k : 1, sizeof(*v));
    for (size_t i = 0; i < k; i++) {
        const char *why;
        if (netaddr_parse_cidr(list[i], &v[i], &why) != 0) {
            *err = xasprintf("bad network '%s': %s", list[i], why);
            free(v);
            return -1;
        }
    }
    *out = v;
    *n = k;
    return 0;
}

int netaddr_cidr_list_match(const struct cidr *nets, size_t n, const struct sockaddr *sa)
{
    for (size_t i = 0; i < n; i++)
        if (netaddr_cidr_match(&nets[i], sa))
            return 1;
    return 0;
}
