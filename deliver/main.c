/*
 * deliver - direct delivery: the MX hosts of a recipient domain (DESIGN
 * section 4, phase 1), and static routes (a listed host and port).
 *
 * qmgr sends IMSG_DELIVERY with the open queue file; deliver asks dnsd for
 * the MX set, tries the hosts by preference and every address of each,
 * and answers IMSG_DELIVERY_RESULT with one result per recipient. The
 * work is the shared delivery engine (common/delivery/dlv_engine.h) inside the
 * shared process shell (common/delivery/dlv_proc.h); relay is the same program with
 * another policy. deliver runs as mail_owner, chrooted into an empty
 * directory: it never opens the spool, only the fds qmgr passes.
 */
#include "delivery/dlv_proc.h"

static const struct dlv_proc_policy policy = {
    .prog = "deliver",
    .accept = DLV_ACCEPT_MX | DLV_ACCEPT_HOSTS,
};

int main(int argc, char **argv)
{
    return dlv_proc_main(argc, argv, &policy);
}
