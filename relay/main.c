/*
 * relay - delivery through relay gateways and smarthosts: the relay phase
 * of DESIGN section 4 (phase 2), and relay-only routing (gateway_policy
 * always, route = relay, relay_size_over, the sender map).
 *
 * qmgr chooses the gateways and their order for each attempt (priority,
 * the domain's subset or the sender's, rotation between attempts: see
 * qmgr/route.h) and sends IMSG_DELIVERY with DLV_TARGET_HOSTS: the
 * gateways in that order, each with its port and TLS mode, named, and
 * the open queue file. relay adds each gateway's AUTH credentials from
 * the secrets it holds (mail/secrets.h: read before the privilege drop,
 * renewed by master on reload; no other daemon has them). relay
 * resolves gateway names through dnsd, tries the gateways in order until
 * one takes the message, and answers IMSG_DELIVERY_RESULT with one
 * result per recipient and the gateway that took it (or was tried last).
 *
 * Its policy: it takes listed hosts only (never an MX lookup: that is
 * deliver's job); AUTH goes only over TLS unless the gateway is marked
 * plainauth (the shared SMTP client enforces it and reports class auth);
 * a gateway whose TLS mode is encrypt or verify that offers no STARTTLS
 * is not given the message (class tls). The work is the shared delivery
 * engine (common/delivery/dlv_engine.h) inside the shared process shell
 * (common/delivery/dlv_proc.h), as for deliver. relay runs as mail_owner,
 * chrooted into an empty directory; it never opens the spool.
 */
#include "delivery/dlv_proc.h"

static const struct dlv_proc_policy policy = {
    .prog = "relay",
    .accept = DLV_ACCEPT_HOSTS,
    .secrets = 1,
};

int main(int argc, char **argv)
{
    return dlv_proc_main(argc, argv, &policy);
}
