/*
 * dns_answer - what one DNS answer packet says about one question, and
 * the MX set it yields. Pure functions over parsed packets (ldns_pkt): no
 * I/O, no state; the fuzz target feeds them hostile packets.
 *
 * dnsans_examine() follows the CNAME chain that starts at qname inside
 * the answer section (at most max_hops links) and classifies:
 *   DATA      records of the asked type exist at `final`
 *   NODATA    the name exists without such records (NOERROR, no data)
 *   NXDOMAIN  the name (the end of the chain) does not exist
 *   CHASE     the chain leaves the packet: ask again for `final`
 *   LOOP      the chain is longer than max_hops (a loop, most likely)
 *   ERROR     any other rcode (SERVFAIL, REFUSED...): not an answer
 * ttl is the smallest TTL of the records used; for NODATA/NXDOMAIN it is
 * the RFC 2308 negative TTL (min of the SOA's TTL and MINIMUM) and
 * `cacheable` is 0 when the authority section has no SOA.
 *
 * mxset_from_packet() turns an MX answer into an MX set: hosts sorted by
 * preference (ties keep packet order), duplicates removed, null MX (a
 * lone "." exchange, RFC 7505) detected, and the addresses found for
 * each host in the additional section attached. A host without any
 * address there has naddrs 0: the caller looks it up. Names are lower
 * case without the trailing dot.
 */
#ifndef POSTERN_DNSD_DNS_ANSWER_H
#define POSTERN_DNSD_DNS_ANSWER_H

#include <ldns/ldns.h>
#include <stdint.h>

#include "mail/dns_proto.h"

#define DNSANS_MAX_HOPS 8

enum dnsans_kind {
    DNSANS_DATA,
    DNSANS_NODATA,
    DNSANS_NXDOMAIN,
    DNSANS_CHASE,
    DNSANS_LOOP,
    DNSANS_ERROR,
};

struct dnsans {
    enum dnsans_kind kind;
    char final[DNS_MAX_NAME + 1];
    int hops;
    uint32_t ttl;
    int cacheable;
    ldns_pkt_rcode rcode;
};

const char *dnsans_kind_name(enum dnsans_kind k);

/*
 * ldns_wire2pkt for bytes from the network: refuses (LDNS_STATUS_ERR) a
 * packet with more than one TSIG record in its additional section, which
 * RFC 8945 forbids and on which ldns 1.8 loses all but the last (a leak a
 * hostile server could repeat at will); everything else as ldns decides.
 */
ldns_status dnsans_parse(ldns_pkt **p, const uint8_t *wire, size_t len);

/* Normalized text of a domain name into buf (lower case, no final dot,
 * "." for the root); -1 if it does not fit. */
int dnsans_name(const ldns_rdf *d, char *buf, size_t len);
/* Normalize user text the same way; -1 if not a valid domain name. */
int dnsans_norm(const char *in, char *buf, size_t len);

void dnsans_examine(const ldns_pkt *p, const char *qname, ldns_rr_type t, int max_hops,
                    struct dnsans *out);
/* Add the A/AAAA records owned by `owner` in section sec to h; returns how
 * many were found and lowers *ttl to their smallest TTL. */
size_t dnsans_addrs(const ldns_pkt *p, ldns_pkt_section sec, const char *owner, struct dns_host *h,
                    uint32_t *ttl);
/* One line for `show dns`: "MX 10 mx1.example.com, 20 mx2..." etc. */
void dnsans_summary(const ldns_pkt *p, const char *qname, ldns_rr_type t, struct buf *out);

/*
 * The TXT records owned by owner in the answer section, in packet
 * order: each record's strings joined into one text (RFC 6376 section
 * 3.6.2.2: a DKIM record split into 255-byte strings is one value), with
 * '\\' and every byte outside printable ASCII written as \DDD so that a
 * record is one line. A NULL-terminated malloc'd array (dnsans_txt_free);
 * *n how many. A record whose rdata is malformed is left out.
 */
char **dnsans_txt(const ldns_pkt *p, const char *owner, size_t *n);
void dnsans_txt_free(char **v);

enum mxset_kind {
    MXSET_HOSTS,
    MXSET_IMPLICIT, /* no MX records: use the domain's addresses */
    MXSET_NULL,     /* null MX: the domain accepts no mail */
    MXSET_NXDOMAIN,
    MXSET_CHASE, /* CNAME leaves the packet: ask MX of `chase` */
    MXSET_LOOP,
    MXSET_ERROR,
};

struct mxset {
    enum mxset_kind kind;
    char chase[DNS_MAX_NAME + 1];
    struct dns_result res; /* MXSET_HOSTS: hosts sorted and grouped */
    uint32_t ttl;
    int hops; /* CNAMEs followed inside the packet */
};

/* out->res is initialized in every case; free it with dns_result_free. */
void mxset_from_packet(const ldns_pkt *p, const char *qname, int max_hops, struct mxset *out);

#endif
