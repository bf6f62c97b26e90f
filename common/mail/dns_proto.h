/*
 * dns_proto - the deliver|relay <-> dnsd protocol: request and reply
 * bodies, the result of a lookup, and a small asynchronous client.
 *
 * Requests (the frame id is chosen by the client and echoed in the reply):
 *   IMSG_DNS_MX_REQ    str domain, u32 n, n x str override
 *                      The MX set for domain. When n > 0 the entries (the
 *                      domain's `mx=` option: host names or literal
 *                      addresses, each with an optional :port, IPv6 as
 *                      [addr] or [addr]:port) replace the MX lookup: they
 *                      become the hosts in list order, one preference each.
 *   IMSG_DNS_HOST_REQ  str name, u32 flags (0)
 *                      The A and AAAA addresses of one host name.
 * Reply:
 *   IMSG_DNS_REP       u32 class, str reason, str name, u32 flags,
 *                      u32 nhosts, nhosts x host
 *   host:              str name, u16 pref, u16 group, u16 port,
 *                      u32 class, str reason, u32 naddrs, naddrs x addr
 *   addr:              u8 family (4 or 6), bytes (4 or 16 raw bytes)
 *
 * A result's class says whether the lookup worked (DNS_OK), may work
 * later (DNS_TEMP: SERVFAIL, timeout, refused) or never will (DNS_PERM:
 * NXDOMAIN, null MX, no address). reason is human-readable text for logs.
 * Hosts are sorted by preference; hosts with the same group number had
 * equal preferences and are to be tried in random order (dns_shuffle).
 * Each host carries its own class/reason (why it has no address) and its
 * addresses; a port of 0 means "the default port" (direct_port), and
 * addresses carry that same port in their sockaddr. A HOST reply has one
 * host. Decoders reject malformed bodies and anything over the limits.
 *
 * Client: dnsc_mx() / dnsc_host() send a request over an ipc_chan to
 * dnsd and call cb once with the result (never from inside dnsc_mx itself).
 * The program's channel handler passes every message to dnsc_dispatch(),
 * which consumes IMSG_DNS_REP; when the channel closes or is replaced,
 * dnsc_chan_lost() fails its pending requests with DNS_TEMP.
 */
#ifndef POSTERN_DNS_PROTO_H
#define POSTERN_DNS_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/ipc.h"
#include "mail/outcome.h"
#include "base/util.h"

#define DNS_MAX_HOSTS 64    /* MX hosts in one result */
#define DNS_MAX_ADDRS 32    /* addresses of one host */
#define DNS_MAX_OVERRIDE 32 /* entries in an override list */
#define DNS_MAX_NAME 255    /* text length of a name or override entry */

enum dns_class {
    DNS_OK = OUTCOME_OK,
    DNS_TEMP = OUTCOME_TEMP, /* dns temporary: try again later */
    DNS_PERM = OUTCOME_PERM, /* dns permanent: will not work */
};

/* dns_result flags */
#define DNS_R_IMPLICIT 0x1u /* no MX: the domain's own addresses (implicit MX) */
#define DNS_R_OVERRIDE 0x2u /* hosts came from the override list, not DNS */
#define DNS_R_LITERAL 0x4u  /* the domain was an address literal [addr] */
#define DNS_R_LOCAL 0x8u    /* no answer because dnsd went away: our outage, not the domain's */

struct dns_host {
    char *name;
    uint16_t pref;
    uint16_t group; /* equal group = equal preference: shuffle */
    uint16_t port;  /* 0: the default port */
    enum dns_class err;
    char *reason; /* why naddrs is 0 (or "") */
    size_t naddrs;
    struct sockaddr_storage *addrs;
};

struct dns_result {
    enum dns_class err;
    char *reason;
    char *name; /* the domain or host asked for */
    unsigned flags;
    size_t nhosts;
    struct dns_host *hosts;
};

/* Result building and freeing. */
void dns_result_init(struct dns_result *r, const char *name);
void dns_result_free(struct dns_result *r);
void dns_result_set_err(struct dns_result *r, enum dns_class c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct dns_host *dns_result_add_host(struct dns_result *r, const char *name, uint16_t pref,
                                     uint16_t port);
void dns_host_add_addr(struct dns_host *h, const struct sockaddr *sa);
void dns_host_set_err(struct dns_host *h, enum dns_class c, const char *reason);
/* Give hosts group numbers from their (sorted) preferences. */
void dns_result_group(struct dns_result *r);
void dns_result_copy(struct dns_result *dst, const struct dns_result *src);
/* Shuffle the hosts inside each group with rnd(n) -> [0, n). */
void dns_shuffle(struct dns_result *r, uint32_t (*rnd)(uint32_t n));

/* "192.0.2.1" / "2001:db8::1" (no port) into buf; returns buf. */
const char *dns_addr_str(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Parse "addr", "addr:port", "[v6]", "[v6]:port" or a bare IPv6 address.
 * Returns 1 and fills ss (port set, 0 if none) for a literal address, 0 if
 * the text is not a literal address, -1 if it is one with a bad port. */
int dns_parse_addr(const char *s, struct sockaddr_storage *ss);
/*
 * One mx= entry of the domains map, as dnsd uses it and as `smtpctl
 * makemap` / `check` validate it: a literal address, with an optional
 * port ("192.0.2.1", "192.0.2.1:2525", "2001:db8::1", "[2001:db8::1]:25"):
 * 1, *ss set and buf the bare address; or a host name (RFC 5321 letters,
 * digits, hyphens; a final dot allowed) with an optional ":port": 0, buf
 * the name in lower case. A port is 1..65535. -1 for anything else.
 */
int dns_parse_mx_entry(const char *entry, char *buf, size_t len, struct sockaddr_storage *ss,
                       uint16_t *port);

/* Human text: one line per host ("10 mx1.example.com [g0] 192.0.2.1 ...").
 * JSON: an object with class, reason, name, flags and hosts. */
void dns_result_format(const struct dns_result *r, struct buf *out);
void dns_result_json(const struct dns_result *r, struct buf *out);

/* Wire encoding of bodies. Decoders return 0 or -1 (malformed). */
void dns_mx_req_encode(struct ipc_w *w, const char *domain, const char *const *override);
/* On success *domain and override[] point into the body; *n entries. */
int dns_mx_req_decode(const void *body, size_t len, const char **domain, const char **override,
                      size_t max, size_t *n);
void dns_host_req_encode(struct ipc_w *w, const char *name);
int dns_host_req_decode(const void *body, size_t len, const char **name);
void dns_rep_encode(struct ipc_w *w, const struct dns_result *r);
/* Fills r (free it with dns_result_free, also after an error). */
int dns_rep_decode(const void *body, size_t len, struct dns_result *r);

/* Asynchronous client. */
typedef void (*dnsc_cb)(const struct dns_result *r, void *arg);
/* Returns the request id (never 0), or 0 if the request could not be sent
 * (cb is then never called). */
uint32_t dnsc_mx(struct ipc_chan *ch, const char *domain, const char *const *override, dnsc_cb cb,
                 void *arg);
uint32_t dnsc_host(struct ipc_chan *ch, const char *name, dnsc_cb cb, void *arg);
/* Forget a request: its cb will not be called. */
void dnsc_cancel(uint32_t id);
/* 1 when m was a DNS reply (handled, cb called), 0 when it is not ours. */
int dnsc_dispatch(struct ipc_chan *ch, const struct ipc_msg *m);
/* Fail every request pending on ch with DNS_TEMP "dnsd unavailable". */
void dnsc_chan_lost(struct ipc_chan *ch);
/* Requests waiting for an answer (all channels). */
size_t dnsc_pending(void);

#endif
