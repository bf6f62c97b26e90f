/*
 * drop - sendmail's fallback when Postern's smtpd cannot be reached
 * (submit.h's SUBMIT_UNREACHABLE): the message is handed to postdrop, the
 * small setgid helper that leaves it in queue_directory/maildrop/, and
 * smtpd picks it up once it runs (smtpd/pickup.h). The file is an SMTP
 * transaction (mail/maildrop.h).
 *
 * drop_write() produces that stream for a submission: the magic line,
 * MAIL FROM and RCPT TO as submit.c builds them for SMTP - with the
 * capabilities Postern's smtpd offers (SIZE, 8BITMIME, SMTPUTF8, DSN) -
 * then DATA and the content from submit_content(). put gets it in
 * chunks; 0, or -1 when put failed or the body could not be read back.
 *
 * drop_message() runs "POSTDROP -C CONFDIR" with that stream on its
 * standard input; postdrop's own messages go to our stderr. It returns
 * postdrop's exit code (0 only once the file is durable in the maildrop),
 * or EX_TEMPFAIL when postdrop could not be run or was killed (printed).
 *
 * drop_postdrop_path(): the postdrop in the directory of the running
 * program (/proc/self/exe, links resolved: bin/ in the build tree,
 * PREFIX/libexec/postern installed), else DROP_POSTDROP_DEFAULT. malloc'd.
 */
#ifndef POSTERN_SENDMAIL_DROP_H
#define POSTERN_SENDMAIL_DROP_H

#include "submit.h"

#define DROP_POSTDROP_DEFAULT "/usr/local/libexec/postern/postdrop"

int drop_write(const struct submit_req *req, submit_put_fn put, void *arg);
int drop_message(const struct submit_req *req, const char *postdrop, const char *confdir);
char *drop_postdrop_path(void);

#endif
