/*
 * stats - snapshot codec and label names (stats.h).
 */
#include "mail/stats.h"

#include <openssl/ssl.h>
#include <string.h>

const char *const stats_reject_names[REJ__COUNT] = {
    [REJ_RELAY_DENIED] = "relay_denied",
    [REJ_AUTH_REQUIRED] = "auth_required",
    [REJ_SIZE] = "size",
    [REJ_MAIL_LOOP] = "mail_loop",
    [REJ_BARE_NEWLINE] = "bare_newline",
    [REJ_LINE_LENGTH] = "line_length",
    [REJ_MESSAGE_RATE] = "message_rate",
    [REJ_SPOOL_FULL] = "spool_full",
    [REJ_WRITE_ERROR] = "write_error",
    [REJ_OTHER] = "other",
};

const char *const stats_refuse_names[REF__COUNT] = {
    [REF_PAUSED] = "paused",
    [REF_SESSIONS] = "max_sessions",
    [REF_PER_CLIENT] = "per_client",
    [REF_CONNECTION_RATE] = "connection_rate",
};

const char *const stats_tls_names[TLSV__COUNT] = {
    [TLSV_1_0] = "TLSv1.0", [TLSV_1_1] = "TLSv1.1", [TLSV_1_2] = "TLSv1.2",
    [TLSV_1_3] = "TLSv1.3", [TLSV_OTHER] = "other",
};

const char *const stats_proc_names[STP__COUNT] = {
    [STP_SMTPD] = "smtpd",     [STP_QMGR] = "qmgr",   [STP_DNSD] = "dnsd",
    [STP_DELIVER] = "deliver", [STP_RELAY] = "relay",
};

enum stats_tls stats_tls_version(int v)
{
    switch (v) {
    case TLS1_VERSION:
        return TLSV_1_0;
    case TLS1_1_VERSION:
        return TLSV_1_1;
    case TLS1_2_VERSION:
        return TLSV_1_2;
    case TLS1_3_VERSION:
        return TLSV_1_3;
    default:
        return TLSV_OTHER;
    }
}

void stats_encode(struct ipc_w *w, const uint64_t *v, size_t n)
{
    ipc_w_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        ipc_w_u64(w, v[i]);
}

int stats_decode(const void *body, size_t len, uint64_t *v, size_t n)
{
    uint64_t tmp[64];
    struct ipc_r r;

    if (n > sizeof(tmp) / sizeof(tmp[0]))
        return -1;
    ipc_r_init(&r, body, len);
    if (ipc_r_u32(&r) != n || !ipc_r_ok(&r))
        return -1;
    for (size_t i = 0; i < n; i++)
        tmp[i] = ipc_r_u64(&r);
    if (!ipc_r_done(&r))
        return -1;
    memcpy(v, tmp, n * sizeof(*v));
    return 0;
}
