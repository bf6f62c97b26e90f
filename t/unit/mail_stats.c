/*
 * mail_stats - unit tests of the counter snapshots (stats.c): a snapshot
 * reads back whole; a body with another count, one cut short or one with
 * bytes left over is refused and leaves the destination untouched; every
 * label table is complete; the TLS version map.
 */
#include <openssl/ssl.h>
#include <string.h>

#include "mail/stats.h"
#include "tap.h"

static int all_named(const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] == NULL || names[i][0] == '\0')
            return 0;
    return 1;
}

int main(void)
{
    uint64_t v[STS__COUNT], back[STS__COUNT];
    struct ipc_w w;

    plan_lazy();
    for (size_t i = 0; i < STS__COUNT; i++)
        v[i] = (uint64_t)i * 1000003u + (i == 3 ? UINT64_MAX - 5000 : 0);
    ipc_w_init(&w);
    stats_encode(&w, v, STS__COUNT);
    memset(back, 0, sizeof(back));
    is_int(stats_decode(w.p, w.len, back, STS__COUNT), 0, "a snapshot decodes");
    ok(memcmp(v, back, sizeof(v)) == 0, "every counter reads back, 64 bits");

    memset(back, 0x55, sizeof(back));
    is_int(stats_decode(w.p, w.len, back, STS__COUNT - 1), -1, "another count is refused");
    is_int(stats_decode(w.p, w.len - 1, back, STS__COUNT), -1, "a cut body is refused");
    ok(back[0] == 0x5555555555555555ULL, "and the destination is untouched");
    ipc_w_u8(&w, 0);
    is_int(stats_decode(w.p, w.len, back, STS__COUNT), -1, "bytes left over are refused");
    is_int(stats_decode(w.p, 0, back, STS__COUNT), -1, "an empty body is refused");
    ipc_w_free(&w);

    ok(all_named(stats_reject_names, REJ__COUNT), "every reject reason has a label");
    ok(all_named(stats_refuse_names, REF__COUNT), "every refusal reason has a label");
    ok(all_named(stats_tls_names, TLSV__COUNT), "every TLS version has a label");
    ok(all_named(stats_proc_names, STP__COUNT), "every process has a label");
    ok(STS__COUNT <= 64 && STM__COUNT <= 64 && STD__COUNT <= 64, "snapshots fit the decoder");
    is_int(stats_tls_version(TLS1_3_VERSION), TLSV_1_3, "TLS 1.3");
    is_int(stats_tls_version(TLS1_2_VERSION), TLSV_1_2, "TLS 1.2");
    is_int(stats_tls_version(TLS1_VERSION), TLSV_1_0, "TLS 1.0");
    is_int(stats_tls_version(0x0300), TLSV_OTHER, "SSL 3 and anything else: other");
    return done_testing();
}
