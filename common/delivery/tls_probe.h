/*
 * tls_probe - "smtpctl tls check": the lookups deliver would make for a
 * destination and a test connection to each of its hosts under the TLS
 * policy deliver would apply (dlv_tls_plan: DANE, MTA-STS, the mode),
 * without sending mail: connect, EHLO, STARTTLS and the certificate
 * check, then QUIT. Runs in deliver (its dnsd channel, its TLS context,
 * its chroot), as a control command:
 *
 *   tls probe [--tls MODE] [--sts] [--port N] mx|host NAME [OVERRIDE...]
 *
 * (the words of qmgr's "resolve:" lines, which `smtpctl tls check`
 * passes on). The answer: tls_show's plan, then one line per host tried:
 *   mx1.a.test[192.0.2.1]:25: ok, TLSv1.3 TLS_AES_256_GCM_SHA384, DANE: TLSA 3 1 1 matched at depth
 * 0 mx2.a.test[192.0.2.2]:25: failed at starttls (tls): TLS required but not offered At most
 * TLS_PROBE_MAX_HOSTS hosts, the first address of each, and at most TLS_PROBE_BUDGET_S seconds in
 * all (the rest are "not tried"). Exit code 0 when at least one host would take mail under the
 * policy, 1 when none would (or the lookup failed), 2 for bad words.
 */
#ifndef POSTERN_TLS_PROBE_H
#define POSTERN_TLS_PROBE_H

#include "base/ipc.h"
#include "base/util.h"

#define TLS_PROBE_MAX_HOSTS 8
#define TLS_PROBE_BUDGET_S 90
#define TLS_PROBE_TIMEOUT_S 15 /* per connection and per reply, at most */

struct event_base;
struct ssl_ctx_st;

struct tls_probe_env {
    struct event_base *base;
    struct ipc_chan *dns; /* to dnsd; NULL: the probe fails at once */
    struct ssl_ctx_st *ssl_ctx;
    const char *helo_name;
    int connect_timeout, timeout; /* main.cf's, capped at TLS_PROBE_TIMEOUT_S */
};

/* code and text: the exit code and the whole answer (text or JSON). */
typedef void (*tls_probe_done)(int code, const char *text, void *arg);

/* Returns 0 when started (done is called once, later), or 2 with the
 * usage in *usage for bad words. */
int tls_probe_start(const struct tls_probe_env *env, int argc, char **argv, int json,
                    tls_probe_done done, void *arg, struct buf *usage);

#endif
