/*
 * job - one IMSG_DELIVERY for local, done in a process of its own forked
 * by local's loop (so that locks, fsyncs and commands never stall it).
 *
 * For each recipient (all of one mydestination domain): a message that
 * already carries "Delivered-To: <that address>" is a forwarding loop
 * (5.4.6); else the aliases are expanded (expand.h) and each target
 * delivered (deliver.h): a user's mailbox, or that user's ~/.forward
 * instead when there is one; /file and |command where allow_mail_to_files
 * and allow_mail_to_commands let them (else 5.7.1); a remote address,
 * and every address of a .forward, is forwarded: all of them go into one
 * new queue file (the same sender and envelope, ORCPT the original
 * recipient, a Delivered-To: line added), written as mail_owner with
 * smtpd's durability (incoming/, fsync, rename into queue/, fsync) before
 * the result is sent. A recipient's result is the worst of its targets':
 * one temporary failure defers it (its other targets are delivered again
 * at the next try: a duplicate, never a loss), else one permanent
 * failure fails it, else it is sent, the text naming where it went.
 *
 * job_run writes to out_fd: str forwarded queue ID ("" none), then the
 * IMSG_DELIVERY_RESULT body (dlv_res_encode); local's loop sends
 * IMSG_QUEUE_NEW and then the result.
 */
#ifndef LOCAL_JOB_H
#define LOCAL_JOB_H

#include <sys/types.h>

#include "deliver.h"
#include "mail/config.h"
#include "mail/dlv_proto.h"

struct job_conf {
    const struct ld_conf *ld;
    const struct config *cfg;
    uid_t owner_uid; /* mail_owner: writes the forwarded queue file */
    gid_t owner_gid;
    unsigned allow_files, allow_commands; /* LD_FROM_* */
};

void job_run(const struct job_conf *jc, const struct dlv_req *q, int msgfd, const char *fwd_id,
             int out_fd);
/* "alias forward include" -> LD_FROM_* bits */
unsigned job_allow_bits(char *const *words);

#endif
