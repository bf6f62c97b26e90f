/*
 * mail_sign_proto - unit tests of the deliver|relay <-> signer bodies
 * (sign_proto.c): round trips, and every malformed body refused: a
 * truncated one, trailing bytes, a verdict out of range, a "signed"
 * answer with no fields (or fields with another verdict), a queue ID
 * that is not one, an offset and size that overflow.
 */
#include <stdint.h>
#include <string.h>

#include "base/ipc.h"
#include "base/util.h"
#include "mail/sign_proto.h"
#include "tap.h"

static void test_req(void)
{
    struct sign_req q = {(char[]){"0660C36F14A92D0000"}, 1234, 5678}, d;
    struct ipc_w w;

    ipc_w_init(&w);
    sign_req_encode(&w, &q);
    ok(sign_req_decode(w.p, w.len, &d) == 0, "request decodes");
    is_str(d.queue_id, "0660C36F14A92D0000", "queue id");
    ok(d.msg_offset == 1234 && d.msg_size == 5678, "offset and size");
    sign_req_free(&d);
    for (size_t n = 0; n < w.len; n++)
        if (sign_req_decode(w.p, n, &d) == 0) {
            ok(0, "a request cut at %zu bytes decodes", n);
            sign_req_free(&d);
        }
    ok(1, "every truncated request is refused");
    ipc_w_u8(&w, 0);
    ok(sign_req_decode(w.p, w.len, &d) < 0, "trailing bytes refused");
    ipc_w_free(&w);

    q.queue_id = (char[]){"../../etc/passwd"};
    ipc_w_init(&w);
    sign_req_encode(&w, &q);
    ok(sign_req_decode(w.p, w.len, &d) < 0, "a queue id that is not one is refused");
    ipc_w_free(&w);

    q.queue_id = (char[]){"0660C36F14A92D0000"};
    q.msg_offset = UINT64_MAX - 10;
    q.msg_size = 100;
    ipc_w_init(&w);
    sign_req_encode(&w, &q);
    ok(sign_req_decode(w.p, w.len, &d) < 0, "offset + size past the end of any file refused");
    ipc_w_free(&w);
}

static int rep_decodes(uint32_t verdict, const char *fields, const char *note)
{
    struct sign_rep r = {verdict, (char *)(uintptr_t)fields, (char *)(uintptr_t)note}, d;
    struct ipc_w w;
    int rc;

    ipc_w_init(&w);
    sign_rep_encode(&w, &r);
    rc = sign_rep_decode(w.p, w.len, &d);
    if (rc == 0) {
        rc = strcmp(d.fields, fields) == 0 && strcmp(d.note, note) == 0 && d.verdict == verdict
                 ? 0
                 : -2;
        sign_rep_free(&d);
    }
    ipc_w_free(&w);
    return rc;
}

static void test_rep(void)
{
    is_int(rep_decodes(SIGN_SIGNED, "DKIM-Signature: v=1; a=rsa-sha256\r\n", "d=example.org s=s1"),
           0, "a signed answer round-trips");
    is_int(rep_decodes(SIGN_UNSIGNED, "", "no key for example.net"), 0, "an unsigned one");
    is_int(rep_decodes(SIGN_DEFER, "", "key not loaded"), 0, "a deferral");
    is_int(rep_decodes(SIGN_SIGNED, "", "d=x"), -1, "signed with no fields refused");
    is_int(rep_decodes(SIGN_UNSIGNED, "DKIM-Signature: x\r\n", "n"), -1,
           "fields with another verdict refused");
    is_int(rep_decodes(3, "", "n"), -1, "a verdict out of range refused");
    is_str(sign_verdict_name(SIGN_SIGNED), "signed", "verdict names");
    is_str(sign_verdict_name(SIGN_DEFER), "deferred", "verdict names (deferred)");
}

int main(void)
{
    plan_lazy();
    test_req();
    test_rep();
    return done_testing();
}
