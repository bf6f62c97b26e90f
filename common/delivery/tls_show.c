/*
 * tls_show - the TLS policy of a destination in words (tls_show.h).
 */
#include "delivery/tls_show.h"

#include <stdio.h>
#include <string.h>

#include "delivery/dlv_engine.h"

/* What the mode does once the plan is made: with DANE applied, the check
 * against the records; otherwise the mode's own words. */
static const char *mode_words(enum tls_mode m)
{
    if (m == TLS_MODE_DANE || m == TLS_MODE_DANE_ONLY)
        return "STARTTLS required, the certificate must match a TLSA record";
    return tls_mode_meaning(m);
}

/* Why DANE does not apply to h (for a host without a DANE plan). */
static const char *no_dane_why(const struct dns_host *h)
{
    switch ((enum dns_tlsa_state)h->tlsa_state) {
    case DNS_TLSA_NOT_ASKED:
        return h->sec == DNSSEC_SECURE ? "TLSA not looked up"
                                       : "its name or addresses are not DNSSEC-secure";
    case DNS_TLSA_NONE:
        return "no TLSA records (securely denied)";
    case DNS_TLSA_INSECURE:
        return "its TLSA answer is not DNSSEC-secure";
    case DNS_TLSA_FOUND:
        return "no usable TLSA record";
    case DNS_TLSA_FAILED:
        return "TLSA lookup failed";
    }
    return "?";
}

static void sts_words(const struct dns_sts *s, struct buf *out)
{
    switch ((enum dns_sts_state)s->state) {
    case DNS_STS_NOT_ASKED:
        buf_adds(out, "not looked up");
        return;
    case DNS_STS_NONE:
        buf_adds(out, "none");
        break;
    case DNS_STS_FAILED:
        buf_adds(out, "no policy could be fetched");
        break;
    case DNS_STS_POLICY:
        buf_printf(out, "%s, id %s, max_age %u (mx:", dns_sts_mode_name(s->mode), s->id,
                   s->max_age);
        for (size_t i = 0; i < s->nmx; i++)
            buf_printf(out, " %s", s->mx[i]);
        buf_adds(out, ")");
        break;
    }
    if (s->reason && *s->reason)
        buf_printf(out, " [%s]", s->reason);
}

static void tlsa_short(const struct dlv_tls_plan *p, struct buf *out)
{
    for (size_t i = 0; i < p->ntlsa && i < 3; i++) {
        const struct smtpc_tlsa *t = &p->tlsa[i];
        buf_printf(out, "%s%u %u %u ", i ? ", " : "", t->usage, t->selector, t->mtype);
        for (size_t k = 0; k < t->len && k < 6; k++)
            buf_printf(out, "%02x", t->data[k]);
        if (t->len > 6)
            buf_adds(out, "...");
    }
    if (p->ntlsa > 3)
        buf_printf(out, ", and %zu more", p->ntlsa - 3);
}

void tls_show_text(const struct dns_result *r, enum tls_mode mode, int listed, struct buf *out)
{
    buf_printf(out, "tls policy (%s): %s answer %s", tls_mode_name(mode), listed ? "host" : "MX",
               dnssec_status_name(r->sec));
    if (!listed) {
        buf_adds(out, "; MTA-STS: ");
        sts_words(&r->sts, out);
    }
    buf_addc(out, '\n');
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct dns_host *h = &r->hosts[i];
        struct dlv_tls_plan p;

        dlv_tls_plan(mode, r, h, listed, &p);
        buf_printf(out, "  %s: ", h->name);
        if (p.skip) {
            buf_printf(out, "not used: %s\n", p.reason);
            continue;
        }
        if (p.dane) {
            buf_printf(out, "DANE, %zu usable TLSA record%s (", p.ntlsa, p.ntlsa == 1 ? "" : "s");
            tlsa_short(&p, out);
            buf_printf(out, "): %s\n", mode_words(TLS_MODE_DANE));
            continue;
        }
        if (p.policy == DLV_TLS_POLICY_DANE) { /* records, none usable */
            buf_printf(out, "TLSA records but none usable: %s\n", mode_words(p.mode));
            continue;
        }
        if (p.policy == DLV_TLS_POLICY_STS_ENFORCE)
            buf_printf(out, "MTA-STS enforce: %s\n", mode_words(p.mode));
        else if (p.policy == DLV_TLS_POLICY_STS_TESTING)
            buf_printf(out,
                       "MTA-STS testing: %s; a certificate that would fail enforce is "
                       "reported (show tls)%s%s\n",
                       mode_words(p.mode), p.sts_fail ? "; enforce would refuse it: " : "",
                       p.sts_fail ? p.reason : "");
        else
            buf_printf(out, "%s: %s (no DANE: %s)\n", tls_mode_name(p.mode), mode_words(p.mode),
                       no_dane_why(h));
    }
}

void tls_show_json(const struct dns_result *r, enum tls_mode mode, int listed, struct buf *out)
{
    struct buf sts;

    buf_adds(out, "{\"mode\":");
    buf_json_str(out, tls_mode_name(mode));
    buf_printf(out, ",\"answer_sec\":\"%s\"", dnssec_status_name(r->sec));
    if (!listed) {
        buf_init(&sts);
        sts_words(&r->sts, &sts);
        buf_printf(out, ",\"sts\":{\"state\":\"%s\",\"mode\":\"%s\",\"id\":",
                   dns_sts_state_name(r->sts.state), dns_sts_mode_name(r->sts.mode));
        buf_json_str(out, r->sts.id ? r->sts.id : "");
        buf_adds(out, ",\"text\":");
        buf_json_str(out, sts.data ? sts.data : "");
        buf_adds(out, "}");
        buf_free(&sts);
    }
    buf_adds(out, ",\"hosts\":[");
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct dns_host *h = &r->hosts[i];
        struct dlv_tls_plan p;

        dlv_tls_plan(mode, r, h, listed, &p);
        buf_adds(out, i ? ",{\"host\":" : "{\"host\":");
        buf_json_str(out, h->name);
        buf_adds(out, ",\"policy\":");
        buf_json_str(out, dlv_tls_policy_name(p.policy));
        buf_adds(out, ",\"mode\":");
        buf_json_str(out, tls_mode_name(p.mode));
        buf_printf(out, ",\"dane\":%s,\"usable_tlsa\":%zu,\"skip\":%s,\"tlsa_state\":\"%s\"",
                   p.dane ? "true" : "false", p.ntlsa, p.skip ? "true" : "false",
                   dns_tlsa_state_name(h->tlsa_state));
        buf_adds(out, ",\"reason\":");
        buf_json_str(out, p.skip || p.sts_fail ? p.reason : "");
        buf_adds(out, "}");
    }
    buf_adds(out, "]}");
}
