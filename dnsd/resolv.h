/*
 * resolv - where dnsd sends its queries: the dns_servers list of main.cf,
 * or the nameserver lines and "options timeout:N attempts:N" of
 * /etc/resolv.conf when that list is empty.
 *
 * resolv_parse_text() is pure (resolv.conf syntax: '#' or ';' comments,
 * unknown lines ignored, at most RESOLV_MAX servers, IPv6 scope ids are
 * not supported and such lines are skipped). resolv_parse_list() takes
 * dns_servers words: "addr", "addr:port", "[v6]", "[v6]:port" or a bare
 * IPv6 address; anything else (a host name, a bad port) is an error with
 * a message. Port 53 when none is given. dnsd reads the file before it
 * is chrooted.
 */
#ifndef POSTERN_DNSD_RESOLV_H
#define POSTERN_DNSD_RESOLV_H

#include <sys/socket.h>

#define RESOLV_MAX 8

struct dns_server {
    struct sockaddr_storage ss;
    socklen_t sslen;
    char text[64]; /* "127.0.0.1:53", "[::1]:53" for logs */
};

struct resolv_conf {
    struct dns_server servers[RESOLV_MAX];
    int n;
    int timeout;  /* seconds from "options timeout:", -1 if none */
    int attempts; /* from "options attempts:", -1 if none */
};

void resolv_init(struct resolv_conf *rc);
void resolv_parse_text(const char *text, struct resolv_conf *rc);
int resolv_parse_list(char *const *list, struct resolv_conf *rc, char **err);
/* Read and parse a resolv.conf file; -1 and *err if it cannot be read. */
int resolv_load_file(const char *path, struct resolv_conf *rc, char **err);
/* Fill a server from a parsed address (port 0 becomes 53). */
void resolv_server_set(struct dns_server *s, const struct sockaddr_storage *ss);

#endif
