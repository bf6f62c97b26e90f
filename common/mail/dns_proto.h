/*
 * dns_proto - the deliver|relay <-> dnsd protocol: request and reply
 * bodies, the result of a lookup, and a small asynchronous client.
 *
 * Requests (the frame id is chosen by the client and echoed in the reply):
 *   IMSG_DNS_MX_REQ    str domain, u32 n, n x str override, u32 flags,
 *                      u16 port
 *                      The MX set for domain. When n > 0 the entries (the
 *                      domain's `mx=` option: host names or literal
 *                      addresses, each with an optional :port, IPv6 as
 *                      [addr] or [addr]:port) replace the MX lookup: they
 *                      become the hosts in list order, one preference each.
 *   IMSG_DNS_HOST_REQ  str name, u32 flags, u16 port
 *                      The A and AAAA addresses of one host name.
 *   flags (DNS_Q_*): DNS_Q_DANE asks for the TLSA records of every host
 *   whose name and addresses are DNSSEC-secure (_port._tcp.name, port
 *   the host's own or the request's); DNS_Q_STS asks for the domain's
 *   MTA-STS policy (dnsd's TXT lookup, policy cache and HTTPS fetch).
 * Reply:
 *   IMSG_DNS_REP       u32 class, str reason, str name, u32 flags,
 *                      u32 nhosts, nhosts x host, u8 sec, sts
 *   host:              str name, u16 pref, u16 group, u16 port,
 *                      u32 class, str reason, u32 naddrs, naddrs x addr,
 *                      u8 sec, u8 tlsa_state, str tlsa_reason,
 *                      u32 ntlsa, ntlsa x tlsa
 *   addr:              u8 family (4 or 6), bytes (4 or 16 raw bytes)
 *   tlsa:              u8 usage, u8 selector, u8 mtype, bytes data
 *   sts:               u8 state, u8 mode, str id, u32 max_age, str reason,
 *                      u32 nmx, nmx x str pattern
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

#define DNS_MAX_HOSTS 64       /* MX hosts in one result */
#define DNS_MAX_ADDRS 32       /* addresses of one host */
#define DNS_MAX_OVERRIDE 32    /* entries in an override list */
#define DNS_MAX_NAME 255       /* text length of a name or override entry */
#define DNS_MAX_TLSA 8         /* TLSA records kept for one host */
#define DNS_MAX_TLSA_DATA 2048 /* bytes of one TLSA record's association data */
#define DNS_MAX_STS_MX 32      /* mx: patterns of one MTA-STS policy */

/* DNSSEC status of an answer (dnssec = validate or resolver; with
 * dnssec = off everything is insecure). BOGUS answers are never used:
 * a lookup whose answer is bogus fails DNS_TEMP. */
enum dnssec_status { DNSSEC_INSECURE = 0, DNSSEC_SECURE = 1, DNSSEC_BOGUS = 2 };
const char *dnssec_status_name(unsigned s); /* "insecure" "secure" "bogus" */

/* Request flags (IMSG_DNS_MX_REQ and IMSG_DNS_HOST_REQ). */
#define DNS_Q_DANE 0x1u /* TLSA of each host whose name and addresses are secure */
#define DNS_Q_STS 0x2u  /* the domain's MTA-STS policy (MX requests only) */

/* A host's TLSA state (dns_host.tlsa_state). */
enum dns_tlsa_state {
    DNS_TLSA_NOT_ASKED = 0, /* no DNS_Q_DANE, or the host is not secure */
    DNS_TLSA_NONE,          /* securely denied (NXDOMAIN/NODATA): no DANE */
    DNS_TLSA_INSECURE,      /* TLSA answer not secure: ignored, no DANE */
    DNS_TLSA_FOUND,         /* secure records (ntlsa >= 1, usable or not) */
    DNS_TLSA_FAILED,        /* lookup failed or bogus: the host must not be
                               used (RFC 7672 2.2); tlsa_reason says why */
};
const char *dns_tlsa_state_name(unsigned s); /* "not-asked" "none" "insecure" "found" "failed" */

/* One TLSA record (RFC 6698): usage 0-3, selector 0-1, matching type 0-2. */
struct dns_tlsa {
    uint8_t usage, selector, mtype;
    uint16_t len; /* <= DNS_MAX_TLSA_DATA */
    unsigned char *data;
};

/* The MTA-STS state of a domain (dns_result.sts), DNS_Q_STS only. */
enum dns_sts_state {
    DNS_STS_NOT_ASKED = 0,
    DNS_STS_NONE,   /* no _mta-sts TXT record (and no cached policy) */
    DNS_STS_POLICY, /* a policy applies: mode, id, max_age, mx patterns */
    DNS_STS_FAILED, /* a TXT record, but no policy could be fetched and
                       none is cached: deliver as without one (RFC 8461
                       5), but TLS-RPT counts sts-policy-fetch-error */
};
enum dns_sts_mode { DNS_STS_MODE_NONE = 0, DNS_STS_MODE_TESTING, DNS_STS_MODE_ENFORCE };
const char *dns_sts_state_name(unsigned s); /* "not-asked" "none" "policy" "failed" */
const char *dns_sts_mode_name(unsigned m);  /* "none" "testing" "enforce" */

struct dns_sts {
    uint8_t state; /* enum dns_sts_state */
    uint8_t mode;  /* enum dns_sts_mode, DNS_STS_POLICY */
    char *id;      /* the policy's id (from the TXT record when fetched), or "" */
    uint32_t max_age;
    size_t nmx;
    char **mx;    /* nmx patterns, "mx.example.com" or "*.example.com" */
    char *reason; /* for logs and TLS-RPT: "cached, refresh failed: ..." , or "" */
};

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
    uint8_t sec;        /* enum dnssec_status of its address records (literal: insecure) */
    uint8_t tlsa_state; /* enum dns_tlsa_state */
    char *tlsa_reason;  /* DNS_TLSA_FAILED: why; else "" */
    size_t ntlsa;
    struct dns_tlsa *tlsa;
};

struct dns_result {
    enum dns_class err;
    char *reason;
    char *name; /* the domain or host asked for */
    unsigned flags;
    size_t nhosts;
    struct dns_host *hosts;
    uint8_t sec;        /* enum dnssec_status of the MX answer (implicit MX: of the
                           NODATA proof; override, literal: insecure) */
    struct dns_sts sts; /* DNS_Q_STS */
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

/* Add a TLSA record to h (at most DNS_MAX_TLSA; data copied); -1 when full
 * or too long. */
int dns_host_add_tlsa(struct dns_host *h, uint8_t usage, uint8_t selector, uint8_t mtype,
                      const unsigned char *data, size_t len);
void dns_host_set_tlsa_state(struct dns_host *h, enum dns_tlsa_state st, const char *reason);
/* Set r->sts (copies; mx has n patterns). */
void dns_result_set_sts(struct dns_result *r, enum dns_sts_state st, enum dns_sts_mode mode,
                        const char *id, uint32_t max_age, const char *const *mx, size_t n,
                        const char *reason);

/*
 * Wire encoding of bodies. Decoders return 0 or -1 (malformed).
 * Requests carry flags (DNS_Q_*) and the port TLSA names are made with
 * (_PORT._tcp.HOST; a host's own port, when it has one, wins).
 */
void dns_mx_req_encode(struct ipc_w *w, const char *domain, const char *const *override,
                       unsigned flags, uint16_t port);
/* On success *domain and override[] point into the body; *n entries. */
int dns_mx_req_decode(const void *body, size_t len, const char **domain, const char **override,
                      size_t max, size_t *n, unsigned *flags, uint16_t *port);
void dns_host_req_encode(struct ipc_w *w, const char *name, unsigned flags, uint16_t port);
int dns_host_req_decode(const void *body, size_t len, const char **name, unsigned *flags,
                        uint16_t *port);
void dns_rep_encode(struct ipc_w *w, const struct dns_result *r);
/* Fills r (free it with dns_result_free, also after an error). */
int dns_rep_decode(const void *body, size_t len, struct dns_result *r);

/* Asynchronous client. */
typedef void (*dnsc_cb)(const struct dns_result *r, void *arg);
/* Returns the request id (never 0), or 0 if the request could not be sent
 * (cb is then never called). */
uint32_t dnsc_mx(struct ipc_chan *ch, const char *domain, const char *const *override,
                 unsigned flags, uint16_t port, dnsc_cb cb, void *arg);
uint32_t dnsc_host(struct ipc_chan *ch, const char *name, unsigned flags, uint16_t port, dnsc_cb cb,
                   void *arg);
/* Forget a request: its cb will not be called. */
void dnsc_cancel(uint32_t id);
/* 1 when m was a DNS reply (handled, cb called), 0 when it is not ours. */
int dnsc_dispatch(struct ipc_chan *ch, const struct ipc_msg *m);
/* Fail every request pending on ch with DNS_TEMP "dnsd unavailable". */
void dnsc_chan_lost(struct ipc_chan *ch);
/* Requests waiting for an answer (all channels). */
size_t dnsc_pending(void);

#endif
