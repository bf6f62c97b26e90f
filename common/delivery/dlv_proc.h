/*
 * dlv_proc - the process around the delivery engine (dlv_engine.h), the
 * same for deliver and relay, so that each main.c only states its policy.
 *
 *   static const struct dlv_proc_policy p = {"deliver", DLV_ACCEPT_MX | DLV_ACCEPT_HOSTS};
 *   int main(int argc, char **argv) { return dlv_proc_main(argc, argv, &p); }
 *
 * It runs under the child skeleton (child.h): the client TLS context is
 * made before child_drop (CHILD_ROOT_EMPTY), then it serves two peers:
 *   "qmgr"  IMSG_DELIVERY (body: dlv_req_decode, the message as the fd)
 *           answered by IMSG_DELIVERY_RESULT (dlv_res_encode) with the
 *           request's id as frame id and in the body;
 *   "dnsd"  lookups through dnsc_mx / dnsc_host.
 * Every request gets exactly one result on the channel it came from:
 * a malformed body gets a result with that frame id and no recipients; a
 * target the policy does not take, every recipient temporary (local).
 * When qmgr restarts (a new channel, or the old one closes) the jobs of
 * the old channel are cancelled (connections dropped; a message may
 * already have been taken: qmgr delivers it again, the one accepted kind
 * of duplicate) and their results are never sent on the new channel.
 * When dnsd restarts, its pending lookups fail as temporary dns errors.
 * Reload picks up myhostname and the SMTP timeouts; shutdown QUITs idle
 * sessions and lets jobs run for the skeleton's grace period.
 */
#ifndef POSTERN_DLV_PROC_H
#define POSTERN_DLV_PROC_H

#define DLV_ACCEPT_MX 0x1u    /* DLV_TARGET_MX requests */
#define DLV_ACCEPT_HOSTS 0x2u /* DLV_TARGET_HOSTS requests */

struct dlv_proc_policy {
    const char *prog; /* "deliver", "relay" */
    unsigned accept;  /* DLV_ACCEPT_* */
    int secrets;      /* holds the gateways' credentials (relay_secrets_map): relay only */
};

int dlv_proc_main(int argc, char **argv, const struct dlv_proc_policy *p);

#endif
