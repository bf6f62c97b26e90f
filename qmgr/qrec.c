/*
 * qrec - encode and decode qmgr's BDB records; see qrec.h.
 */
#include "qrec.h"

#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "base/util.h"

char *qrec_text(const char *s)
{
    size_t n = strlen(s);
    char *t;

    if (n > QREC_TEXT_MAX)
        n = QREC_TEXT_MAX;
    t = xstrndup(s, n);
    for (char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = ' ';
    return t;
}

void qrec_msg_encode(struct ipc_w *w, const struct rcpt *r, size_t n)
{
    ipc_w_u8(w, QREC_VERSION);
    ipc_w_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        ipc_w_u8(w, r[i].state);
        ipc_w_u16(w, r[i].direct_attempts);
        ipc_w_u16(w, r[i].relay_attempts);
        ipc_w_i64(w, r[i].next_try_us);
        ipc_w_i64(w, r[i].first_fail_us);
        ipc_w_u8(w, r[i].last_class);
        ipc_w_u8(w, r[i].last_step);
        ipc_w_u16(w, r[i].last_code);
        ipc_w_str(w, r[i].last_text);
    }
}

int qrec_msg_decode(const void *p, size_t len, struct rcpt *r, size_t n)
{
    struct ipc_r rd;
    struct rcpt *tmp;
    int ok;

    ipc_r_init(&rd, p, len);
    if (ipc_r_u8(&rd) != QREC_VERSION || ipc_r_u32(&rd) != n || !ipc_r_ok(&rd))
        return -1;
    /* Decode into a copy so that a bad record changes nothing. */
    tmp = xcalloc(n ? n : 1, sizeof(*tmp));
    for (size_t i = 0; i < n && ipc_r_ok(&rd); i++) {
        const char *t;
        tmp[i].state = ipc_r_u8(&rd);
        tmp[i].direct_attempts = ipc_r_u16(&rd);
        tmp[i].relay_attempts = ipc_r_u16(&rd);
        tmp[i].next_try_us = ipc_r_i64(&rd);
        tmp[i].first_fail_us = ipc_r_i64(&rd);
        tmp[i].last_class = ipc_r_u8(&rd);
        tmp[i].last_step = ipc_r_u8(&rd);
        tmp[i].last_code = ipc_r_u16(&rd);
        t = ipc_r_str(&rd);
        if (tmp[i].state > RS_FAILED)
            rd.err = 1;
        tmp[i].last_text = (ipc_r_ok(&rd) && t[0]) ? qrec_text(t) : NULL;
    }
    ok = ipc_r_done(&rd);
    for (size_t i = 0; i < n; i++) {
        if (!ok) {
            free(tmp[i].last_text);
            continue;
        }
        free(r[i].last_text);
        r[i].state = tmp[i].state;
        r[i].direct_attempts = tmp[i].direct_attempts;
        r[i].relay_attempts = tmp[i].relay_attempts;
        r[i].next_try_us = tmp[i].next_try_us;
        r[i].first_fail_us = tmp[i].first_fail_us;
        r[i].last_class = tmp[i].last_class;
        r[i].last_step = tmp[i].last_step;
        r[i].last_code = tmp[i].last_code;
        r[i].last_text = tmp[i].last_text;
    }
    free(tmp);
    return ok ? 0 : -1;
}

void qrec_host_encode(struct ipc_w *w, const struct hstate *h)
{
    ipc_w_u8(w, QREC_VERSION);
    ipc_w_i64(w, h->last_fail_us);
    ipc_w_u32(w, h->consecutive);
    ipc_w_i64(w, h->down_until_us);
    ipc_w_str(w, h->last_error);
}

int qrec_host_decode(const void *p, size_t len, struct hstate *h)
{
    struct ipc_r rd;
    struct hstate t;
    const char *e;

    ipc_r_init(&rd, p, len);
    if (ipc_r_u8(&rd) != QREC_VERSION)
        return -1;
    t.last_fail_us = ipc_r_i64(&rd);
    t.consecutive = ipc_r_u32(&rd);
    t.down_until_us = ipc_r_i64(&rd);
    e = ipc_r_str(&rd);
    if (!ipc_r_done(&rd))
        return -1;
    free(h->last_error);
    t.last_error = e[0] ? qrec_text(e) : NULL;
    *h = t;
    return 0;
}
