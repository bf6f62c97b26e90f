/*
 * outcome - the three ways a step of a delivery can end, shared by the
 * DNS results (dns_proto.h: DNS_OK/DNS_TEMP/DNS_PERM) and the SMTP
 * client's results (smtp_client.h: SMTPC_OK/SMTPC_TEMP/SMTPC_PERM), so
 * that logs, smtpctl and DSNs use one word for each:
 *
 *   OUTCOME_OK    "ok"         it worked
 *   OUTCOME_TEMP  "temporary"  it may work later: retry
 *   OUTCOME_PERM  "permanent"  it never will: fail the recipient
 *
 * outcome_name gives "?" for a value out of range.
 */
#ifndef POSTERN_OUTCOME_H
#define POSTERN_OUTCOME_H

enum outcome { OUTCOME_OK = 0, OUTCOME_TEMP = 1, OUTCOME_PERM = 2 };

const char *outcome_name(int outcome);

#endif
