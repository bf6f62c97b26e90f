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

    if (n > QREC_TEXT_MAX) {
        n = QREC_TEXT_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--; /* not in the middle of a UTF-8 character */
    }
    t = xstrndup(s, n);
    for (char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = ' ';
    return t;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

void qrec_msg_encode(struct ipc_w *w, const struct qrec_head *h, const struct rcpt *r, size_t n)
{
    ipc_w_u8(w, QREC_VERSION);
    ipc_w_u32(w, (uint32_t)n);
    ipc_w_str(w, h ? h->notice : "");
    ipc_w_i64(w, h ? h->moved_us : 0);
    ipc_w_str(w, h ? nz(h->reason) : "");
    ipc_w_i64(w, h ? h->requeued_us : 0);
    for (size_t i = 0; i < n; i++) {
        ipc_w_u8(w, r[i].state);
        ipc_w_u16(w, r[i].direct_attempts);
        ipc_w_u16(w, r[i].relay_attempts);
        ipc_w_i64(w, r[i].next_try_us);
        ipc_w_i64(w, r[i].first_fail_us);
        ipc_w_u8(w, r[i].last_class);
        ipc_w_u8(w, r[i].last_step);
        ipc_w_u16(w, r[i].last_code);
        ipc_w_str(w, nz(r[i].last_text));
        ipc_w_u8(w, r[i].notes);
        ipc_w_i64(w, r[i].last_try_us);
        ipc_w_str(w, nz(r[i].status));
        ipc_w_str(w, nz(r[i].remote));
    }
}

long qrec_msg_count(const void *p, size_t len)
{
    struct ipc_r rd;
    unsigned v;
    uint32_t n;

    ipc_r_init(&rd, p, len);
    v = ipc_r_u8(&rd);
    n = ipc_r_u32(&rd);
    if (!ipc_r_ok(&rd) || (v != 1 && v != QREC_VERSION))
        return -1;
    return (long)n;
}

void qrec_rcpt_clear(struct rcpt *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].last_text);
        free(r[i].status);
        free(r[i].remote);
        r[i].last_text = r[i].status = r[i].remote = NULL;
    }
}

void qrec_head_clear(struct qrec_head *h)
{
    free(h->reason);
    memset(h, 0, sizeof(*h));
}

static char *opt_text(const struct ipc_r *rd, const char *t)
{
    return (ipc_r_ok(rd) && t[0]) ? qrec_text(t) : NULL;
}

/* An ID of a notice: "" or a queue ID's 18 characters. */
static int notice_ok(const char *t)
{
    size_t n = strlen(t);

    if (n == 0)
        return 1;
    if (n != QREC_ID_SIZE - 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'A' && t[i] <= 'F')))
            return 0;
    return 1;
}

int qrec_msg_decode(const void *p, size_t len, struct qrec_head *h, struct rcpt *r, size_t n)
{
    struct ipc_r rd;
    struct rcpt *tmp;
    struct qrec_head th;
    unsigned v;
    int ok;

    memset(&th, 0, sizeof(th));
    ipc_r_init(&rd, p, len);
    v = ipc_r_u8(&rd);
    if ((v != 1 && v != QREC_VERSION) || ipc_r_u32(&rd) != n || !ipc_r_ok(&rd))
        return -1;
    if (v >= 2) {
        const char *nt = ipc_r_str(&rd);
        th.moved_us = ipc_r_i64(&rd);
        const char *rs = ipc_r_str(&rd);
        if (ipc_r_ok(&rd)) {
            if (!notice_ok(nt))
                rd.err = 1;
            else
                memcpy(th.notice, nt, strlen(nt) + 1);
        }
        th.reason = opt_text(&rd, rs);
        th.requeued_us = ipc_r_i64(&rd);
    }
    /* Decode into a copy so that a bad record changes nothing. */
    tmp = xcalloc(n ? n : 1, sizeof(*tmp));
    for (size_t i = 0; i < n && ipc_r_ok(&rd); i++) {
        tmp[i].state = ipc_r_u8(&rd);
        tmp[i].direct_attempts = ipc_r_u16(&rd);
        tmp[i].relay_attempts = ipc_r_u16(&rd);
        tmp[i].next_try_us = ipc_r_i64(&rd);
        tmp[i].first_fail_us = ipc_r_i64(&rd);
        tmp[i].last_class = ipc_r_u8(&rd);
        tmp[i].last_step = ipc_r_u8(&rd);
        tmp[i].last_code = ipc_r_u16(&rd);
        tmp[i].last_text = opt_text(&rd, ipc_r_str(&rd));
        if (tmp[i].state > RS_FAILED)
            rd.err = 1;
        if (v >= 2) {
            tmp[i].notes = ipc_r_u8(&rd);
            tmp[i].last_try_us = ipc_r_i64(&rd);
            tmp[i].status = opt_text(&rd, ipc_r_str(&rd));
            tmp[i].remote = opt_text(&rd, ipc_r_str(&rd));
        }
    }
    ok = ipc_r_done(&rd);
    if (!ok) {
        qrec_rcpt_clear(tmp, n);
        free(tmp);
        free(th.reason);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        qrec_rcpt_clear(&r[i], 1);
        r[i].state = tmp[i].state;
        r[i].direct_attempts = tmp[i].direct_attempts;
        r[i].relay_attempts = tmp[i].relay_attempts;
        r[i].next_try_us = tmp[i].next_try_us;
        r[i].first_fail_us = tmp[i].first_fail_us;
        r[i].last_class = tmp[i].last_class;
        r[i].last_step = tmp[i].last_step;
        r[i].last_code = tmp[i].last_code;
        r[i].last_text = tmp[i].last_text;
        r[i].notes = tmp[i].notes;
        r[i].last_try_us = tmp[i].last_try_us;
        r[i].status = tmp[i].status;
        r[i].remote = tmp[i].remote;
    }
    free(tmp);
    if (h) {
        qrec_head_clear(h);
        *h = th;
    } else {
        free(th.reason);
    }
    return 0;
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
