/*
 * netaddr - socket addresses and CIDR networks as written in main.cf.
 *
 *   netaddr_split_hostport("mx.example:2525"), ("[::1]:25"), ("[host]"),
 *     ("192.0.2.1"): the one reader of "host[:port]" and "[host][:port]"
 *     (listeners, gateways, static routes). The host, without brackets,
 *     goes into a caller buffer; *port is 0 when absent, else 1..65535;
 *     *bracketed says whether it was written in brackets (a static route's
 *     "no MX lookup"). An IPv6 address must be in brackets. The host is
 *     not checked beyond "not empty, fits": netaddr_host_ok(host) says
 *     whether it is 1-253 of [A-Za-z0-9._:-], a name or an address.
 *   netaddr_parse_hostport("127.0.0.1:25"), ("[::1]:587"), ("0.0.0.0:25"):
 *     numeric address and port into a sockaddr_storage. With a default
 *     port (>0) the ":port" part may be omitted ("192.0.2.1", "[::1]").
 *   netaddr_parse_cidr("127.0.0.0/8"), ("[::1]/128"), ("10.1.2.3"):
 *     a network; a bare address is a /32 or /128.
 *   netaddr_cidr_match(net, addr): 1 when addr is inside net; IPv4-mapped
 *     IPv6 client addresses match IPv4 networks.
 *   netaddr_parse_cidr_list(list): a NULL-terminated list of networks (a
 *     LIST parameter such as mynetworks) into a malloc'd array, or -1 and
 *     a malloc'd *err naming the bad entry; netaddr_cidr_list_match(nets,
 *     n, addr): 1 when addr is inside any of them.
 *   netaddr_format(sa): "127.0.0.1:25" / "[::1]:25" into a caller buffer.
 * All return 0, or -1 with a static reason in *why.
 */
#ifndef POSTERN_NETADDR_H
#define POSTERN_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define NETADDR_STRLEN 64

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;
};

int netaddr_split_hostport(const char *s, char *host, size_t hostlen, int *port, int *bracketed,
                           const char **why);
int netaddr_host_ok(const char *host);
int netaddr_parse_hostport(const char *s, int default_port, struct sockaddr_storage *out,
                           const char **why);
int netaddr_parse_cidr(const char *s, struct cidr *out, const char **why);
int netaddr_cidr_match(const struct cidr *net, const struct sockaddr *sa);
int netaddr_parse_cidr_list(char *const *list, struct cidr **out, size_t *n, char **err);
int netaddr_cidr_list_match(const struct cidr *nets, size_t n, const struct sockaddr *sa);
socklen_t netaddr_len(const struct sockaddr *sa);
int netaddr_port(const struct sockaddr *sa);
/* Address only ("127.0.0.1", "::1"); address and port ("[::1]:25"). */
const char *netaddr_ntop(const struct sockaddr *sa, char *buf, size_t len);
const char *netaddr_format(const struct sockaddr *sa, char *buf, size_t len);
int netaddr_is_loopback(const struct sockaddr *sa);

#endif
