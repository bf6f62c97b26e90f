/*
 * smtpd - Postern's SMTP intake (RFC 5321 server with ESMTP, STARTTLS and
 * AUTH) on smtpd_listen and submission_listen. Runs as mail_owner,
 * chrooted into the spool; writes incoming/, renames into queue/, tells
 * qmgr. See docs/smtpd.md; server.c, session.c and commit.c hold the work.
 */
#include <stdlib.h>

#include <openssl/ssl.h>

#include "mail/child.h"
#include "base/log.h"
#include "mail/proto.h"
#include "server.h"

static const struct child_spec spec = {
    .prog = "smtpd",
    .root = CHILD_ROOT_SPOOL,
    .peer = smtpd_peer,
    .reload = smtpd_reload,
    .ctl = smtpd_ctl,
    .shutdown = smtpd_shutdown,
    .state = smtpd_state,
    .from_master = &proto_master_to_smtpd,
    .master_msg = smtpd_master_msg,
};

int main(int argc, char **argv)
{
    struct child *c = child_init(argc, argv, &spec);
    struct smtpd *sd = smtpd_new(c);
    char *err = NULL;

    OPENSSL_init_ssl(0, NULL);
    /* Before the drop: the TLS key and the users map may be root's only. */
    if (smtpd_setup(sd, &err) != 0) {
        log_err("%s", err);
        return 1;
    }
    child_drop(c);
    if (smtpd_start(sd, &err) != 0) {
        log_err("%s", err);
        return 1;
    }
    return child_loop(c);
}
