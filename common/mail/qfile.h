/*
 * qfile - the queue file: one accepted message = one immutable file in
 * queue/, an envelope followed by the message. docs/queue-format.md is the
 * reference for the format; this module is its only reader and writer.
 *
 * Writer (smtpd): qfile_env_write() serializes an envelope into a buffer;
 * the message bytes follow it in the file. The size line has a fixed
 * width so that a writer that streamed a large message can patch it in
 * place (qfile_size_field at *size_off).
 *
 * Parser (qmgr): qfile_parse() checks everything and fails cleanly with a
 * message on any corrupt or truncated file (qmgr moves those to bad/):
 * unknown version, unknown or duplicate keys, bad values, missing
 * required keys, no recipients, a message section whose length is not
 * the recorded size. qfile_read() does the same from an open fd.
 *
 * Queue IDs: 18 upper-case hex digits: 14 of the arrival time in
 * microseconds, 1 of the generator's node (smtpd 0, qmgr 1, ...), 3 of a
 * sequence for IDs made in the same microsecond. A generator never repeats
 * and never goes back, so IDs are unique per node and sort by arrival.
 */
#ifndef POSTERN_QFILE_H
#define POSTERN_QFILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "mail/dsn_param.h"

#define QFILE_VERSION 1
#define QFILE_MAGIC "POSTERN-QUEUE"
#define QFILE_ID_LEN 18
#define QFILE_ID_SIZE (QFILE_ID_LEN + 1)
/* The largest envelope a parser accepts (100000 recipients fit). */
#define QFILE_ENV_MAX (128u * 1024 * 1024)

enum qfile_body { QFILE_BODY_NONE = 0, QFILE_BODY_7BIT, QFILE_BODY_8BITMIME };
/* A message qmgr wrote itself: a delivery status notification to a
 * sender, or the notice to the postmaster that one of those could not
 * be delivered (they are never answered by another notice). */
enum qfile_notice { QFILE_NOTICE_NONE = 0, QFILE_NOTICE_DSN, QFILE_NOTICE_POSTMASTER };

struct qfile_rcpt {
    char *addr;      /* mailbox, never empty */
    unsigned notify; /* DSN_NOTIFY_* bits (mail/dsn_param.h), 0 = not given */
    char *orcpt;     /* "type;xtext" as received, or NULL */
};

struct qfile_env {
    unsigned version;
    char id[QFILE_ID_SIZE];
    int64_t arrival_us; /* wall clock, microseconds since the epoch */
    char *client_addr;  /* numeric IP address */
    unsigned client_port;
    char *helo;   /* HELO/EHLO argument, or NULL */
    char *proto;  /* SMTP ESMTP ESMTPS ESMTPA ESMTPSA; LOCAL (made by qmgr, or
                     forwarded by local for a local or authenticated sender);
                     FORWARD (forwarded by local, from anyone else) */
    char *tls;    /* "TLSv1.3 TLS_AES_256_GCM_SHA384", or NULL */
    char *auth;   /* authenticated user name, or NULL */
    char *sender; /* "" for the null sender <> */
    char *envid;  /* ENVID as received (xtext), or NULL */
    enum dsn_ret ret;
    enum qfile_body body;
    int smtputf8;
    enum qfile_notice notice;
    char notice_of[QFILE_ID_SIZE]; /* the message a notice is about */
    struct qfile_rcpt *rcpt;
    size_t nrcpt;
    uint64_t size;       /* bytes of the message section */
    uint64_t msg_offset; /* where the message starts in the file */
};

/* Queue ID generator. */
struct qfile_idgen {
    int64_t last_us;
    unsigned seq;
    unsigned node;
};
void qfile_id_init(struct qfile_idgen *g, unsigned node);
/* The next ID for wall time now (microseconds) into out[QFILE_ID_SIZE]. */
void qfile_id_next(struct qfile_idgen *g, int64_t now, char *out);
/* 1 if s is a well-formed queue ID. */
int qfile_id_valid(const char *s);
/* The arrival time encoded in a valid ID. */
int64_t qfile_id_time(const char *id);

/*
 * Append the envelope to out, ending with the blank line after which the
 * message starts. *size_off (if not NULL) gets the offset in out of the
 * 20-digit size value. Returns 0, or -1 and *why (static) if a field
 * holds something the format cannot carry (NUL, CR, LF, empty recipient).
 */
int qfile_env_write(struct buf *out, const struct qfile_env *env, size_t *size_off,
                    const char **why);
/* The 20 digits of a size line value (no NUL written). */
void qfile_size_field(uint64_t size, char out[20]);

/*
 * Parse the envelope at the start of buf (len bytes read so far of a file
 * that is file_size bytes long). Returns 0 with *env filled (free it with
 * qfile_env_free), 1 if the envelope continues past len (read more), or
 * -1 with a malloc'd *err.
 */
int qfile_parse(const char *buf, size_t len, uint64_t file_size, struct qfile_env *env, char **err);
/* Read and parse the envelope of an open queue file. 0, or -1 and *err. */
int qfile_read(int fd, struct qfile_env *env, char **err);
void qfile_env_free(struct qfile_env *env);

#endif
