/*
 * Tests for common/delivery/smtp_client: the real client in a libevent loop against
 * a scripted fake SMTP server in a forked child on 127.0.0.1 (port 0).
 *
 * The fake server follows a script (send this, expect a command starting
 * with that and answer, read a message, start TLS, close, accept again)
 * and writes what it saw to a transcript file: "A" per accepted
 * connection, "C<n> <line>" per command line (n = the number of the read
 * that completed the line, so commands that arrived together share n),
 * "T" when TLS is up, "B<k> <len>" per message (its bytes in body<k>),
 * "E" at EOF, "M <want> <got>" when a command did not match the script.
 * The tests then check both what the client reported and what the server
 * saw. A self-signed certificate for "localhost" is made with the OpenSSL
 * API for the STARTTLS tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "delivery/smtp_client.h"
#include "tap.h"
#include "base/util.h"

/* ---- temp dir and certificate ---- */

static char tmpdir[256];
static char certfile[300];
static X509 *cert;
static EVP_PKEY *pkey;

/* A certificate for cn with subjectAltName san, valid from nb to na
 * seconds from now, signed by issuer (NULL: self-signed); ca: CA:TRUE. */
static X509 *new_cert(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey,
                      int ca, long nb, long na)
{
    X509 *x = X509_new();
    X509_NAME *name;
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    static long serial = 1;

    if (x == NULL)
        log_panic("cannot make a certificate");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), nb);
    X509_gmtime_adj(X509_getm_notAfter(x), na);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    if (san) {
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                              ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!X509_sign(x, ikey ? ikey : key, EVP_sha256()))
        log_panic("cannot sign the certificate");
    return x;
}

static EVP_PKEY *new_key(void)
{
    char curve[] = "P-256";
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);

    if (k == NULL)
        log_panic("cannot make a key");
    return k;
}

static void make_cert(void)
{
    FILE *f;

    pkey = new_key();
    cert = new_cert("localhost", "DNS:localhost,IP:127.0.0.1", pkey, NULL, NULL, 1, -3600, 86400);
    snprintf(certfile, sizeof(certfile), "%s/cert.pem", tmpdir);
    f = fopen(certfile, "w");
    if (f == NULL || !PEM_write_X509(f, cert))
        log_panic("cannot write %s", certfile);
    fclose(f);
}

/* What the fake server presents: its certificate, key and the chain
 * certificate sent after it (NULL: none). make_cert's by default. */
static X509 *srv_cert, *srv_chain;
static EVP_PKEY *srv_key;

static char *slurp(const char *path, size_t *lenp)
{
    struct buf b;
    char tmp[4096];
    ssize_t n;
    int fd = open(path, O_RDONLY);

    buf_init(&b);
    buf_adds(&b, "");
    if (fd >= 0) {
        while ((n = read(fd, tmp, sizeof(tmp))) > 0)
            buf_add(&b, tmp, (size_t)n);
        close(fd);
    }
    if (lenp)
        *lenp = b.len;
    return b.data;
}

static void rm_tmpdir(void)
{
    char cmd[400];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        diag("could not remove %s", tmpdir);
}

/* ---- the fake server (child process, blocking I/O) ---- */

enum fop {
    F_END,
    F_SEND,      /* send arg */
    F_CMD,       /* read a command line, check it starts with arg, send reply */
    F_BODY,      /* read a message up to ".", send reply */
    F_BODY_DROP, /* read a little of the message, then close the connection */
    F_BDAT,      /* read "BDAT <n>[ LAST]" and exactly n octets (a message), send reply */
    F_TLS,       /* TLS handshake as server */
    F_CLOSE,     /* close the connection */
    F_ACCEPT,    /* accept the next connection */
    F_EOF,       /* read until the client closes */
    F_SLEEP,     /* sleep arg milliseconds */
};

struct fstep {
    enum fop op;
    const char *arg;
    const char *reply;
};

struct fconn {
    int fd;
    SSL *ssl;
    char buf[1 << 16];
    size_t len;
    int nread;
    FILE *tr;
    int nbody;
};

static int lsock = -1;
static int lport;

static void fake_listen(int rcvbuf)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    int one = 1;

    lsock = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lsock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rcvbuf > 0)
        setsockopt(lsock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lsock, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lsock, 8) < 0)
        log_panic("fake server: bind/listen: %s", strerror(errno));
    getsockname(lsock, (struct sockaddr *)&sin, &sl);
    lport = ntohs(sin.sin_port);
}

static void f_accept(struct fconn *c)
{
    struct timeval tv = {10, 0};

    c->fd = accept(lsock, NULL, NULL);
    if (c->fd < 0)
        _exit(3);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    c->ssl = NULL;
    c->len = 0;
    fprintf(c->tr, "A\n");
    fflush(c->tr);
}

static void f_close(struct fconn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static void f_send(struct fconn *c, const char *s)
{
    size_t n = strlen(s);

    if (c->ssl)
        SSL_write(c->ssl, s, (int)n);
    else if (write(c->fd, s, n) < 0)
        fprintf(c->tr, "write error\n");
}

/* One read; -1 at EOF or error. */
static int f_read(struct fconn *c)
{
    ssize_t n;

    if (c->len >= sizeof(c->buf))
        return -1;
    if (c->ssl)
        n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));
    else
        n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    c->nread++;
    return 0;
}

/* A line without CR LF into out; returns its length, -1 at EOF. */
static int f_line(struct fconn *c, char *out, size_t outsz, int raw)
{
    char *nl;
    size_t n;

    while ((nl = memchr(c->buf, '\n', c->len)) == NULL)
        if (f_read(c) < 0)
            return -1;
    n = (size_t)(nl - c->buf) + 1;
    if (n >= outsz)
        n = outsz - 1;
    memcpy(out, c->buf, n);
    out[n] = '\0';
    memmove(c->buf, nl + 1, c->len - (size_t)(nl + 1 - c->buf));
    c->len -= (size_t)(nl + 1 - c->buf);
    if (!raw) {
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
            out[--n] = '\0';
    }
    return (int)n;
}

/* A BDAT command line then its octets, raw, into body<k>. */
static void f_bdat(struct fconn *c, const char *reply)
{
    static char line[8192];
    char path[400];
    unsigned long long want, got = 0;
    FILE *bf;

    if (f_line(c, line, sizeof(line), 0) < 0) {
        fprintf(c->tr, "E\n");
        return;
    }
    fprintf(c->tr, "C%d %s\n", c->nread, line);
    if (sscanf(line, "BDAT %llu", &want) != 1) {
        fprintf(c->tr, "M BDAT | %s\n", line);
        return;
    }
    snprintf(path, sizeof(path), "%s/body%d", tmpdir, ++c->nbody);
    bf = fopen(path, "w");
    while (got < want) {
        size_t k;
        if (c->len == 0 && f_read(c) < 0) {
            fprintf(c->tr, "E\n");
            break;
        }
        k = c->len < want - got ? c->len : (size_t)(want - got);
        fwrite(c->buf, 1, k, bf);
        memmove(c->buf, c->buf + k, c->len - k);
        c->len -= k;
        got += k;
    }
    fclose(bf);
    fprintf(c->tr, "B%d %llu\n", c->nbody, got);
    if (reply && got == want)
        f_send(c, reply);
}

static void f_body(struct fconn *c, const char *reply)
{
    static char line[1 << 16];
    char path[400];
    FILE *bf;
    long total = 0;
    int n;

    snprintf(path, sizeof(path), "%s/body%d", tmpdir, ++c->nbody);
    bf = fopen(path, "w");
    for (;;) {
        n = f_line(c, line, sizeof(line), 1);
        if (n < 0) {
            fprintf(c->tr, "E\n");
            break;
        }
        if (strcmp(line, ".\r\n") == 0) {
            fprintf(c->tr, "B%d %ld\n", c->nbody, total);
            if (reply)
                f_send(c, reply);
            break;
        }
        fwrite(line, 1, (size_t)n, bf);
        total += n;
    }
    fclose(bf);
}

/* want is a prefix, or the whole line when it ends in '\n'. */
static int cmd_match(const char *line, const char *want)
{
    size_t wl = strlen(want);

    if (wl > 0 && want[wl - 1] == '\n')
        return strlen(line) == wl - 1 && ascii_ncasecmp(line, want, wl - 1) == 0;
    return ascii_ncasecmp(line, want, wl) == 0;
}

static FILE *f_tr; /* the transcript, for on_sni */

/* "S name" in the transcript: the SNI the client sent (before the
 * handshake can fail). */
static int on_sni(SSL *ssl, int *alert, void *arg)
{
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

    fprintf(f_tr, "S %s\n", sni ? sni : "-");
    return SSL_TLSEXT_ERR_OK;
}

static void fake_run(const struct fstep *st, SSL_CTX *sctx)
{
    struct fconn *c = xcalloc(1, sizeof(*c));
    char line[8192], path[400];
    int n;

    snprintf(path, sizeof(path), "%s/transcript", tmpdir);
    c->tr = fopen(path, "w");
    setvbuf(c->tr, NULL, _IOLBF, 0);
    f_tr = c->tr;
    SSL_CTX_set_tlsext_servername_callback(sctx, on_sni);
    alarm(20);
    f_accept(c);
    for (; st->op != F_END; st++) {
        switch (st->op) {
        case F_SEND:
            f_send(c, st->arg);
            break;
        case F_CMD:
            n = f_line(c, line, sizeof(line), 0);
            if (n < 0) {
                fprintf(c->tr, "E\n");
                goto out;
            }
            fprintf(c->tr, "C%d %s\n", c->nread, line);
            if (st->arg && !cmd_match(line, st->arg)) {
                fprintf(c->tr, "M %s | %s\n", st->arg, line);
                goto out;
            }
            if (st->reply)
                f_send(c, st->reply);
            break;
        case F_BODY:
            f_body(c, st->reply);
            break;
        case F_BDAT:
            f_bdat(c, st->reply);
            break;
        case F_BODY_DROP:
            while (c->len < 20000 && f_read(c) == 0)
                ;
            fprintf(c->tr, "D\n");
            f_close(c);
            break;
        case F_TLS:
            c->ssl = SSL_new(sctx);
            SSL_set_fd(c->ssl, c->fd);
            if (c->len > 0)
                fprintf(c->tr, "data before TLS\n");
            if (SSL_accept(c->ssl) != 1) {
                fprintf(c->tr, "TLS failed\n");
                goto out;
            }
            fprintf(c->tr, "T\n");
            break;
        case F_CLOSE:
            fprintf(c->tr, "X\n");
            f_close(c);
            break;
        case F_ACCEPT:
            f_close(c);
            f_accept(c);
            break;
        case F_EOF:
            while (f_read(c) == 0)
                c->len = 0;
            fprintf(c->tr, "E\n");
            break;
        case F_SLEEP:
            usleep((useconds_t)atoi(st->arg) * 1000);
            break;
        case F_END:
            break;
        }
    }
out:
    f_close(c);
    fclose(c->tr);
    _exit(0);
}

static pid_t fake_pid;

static void fake_start(const struct fstep *script, int rcvbuf)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());

    SSL_CTX_use_certificate(sctx, srv_cert ? srv_cert : cert);
    SSL_CTX_use_PrivateKey(sctx, srv_key ? srv_key : pkey);
    if (srv_chain)
        SSL_CTX_add1_chain_cert(sctx, srv_chain);
    fake_listen(rcvbuf);
    fflush(stdout);
    fflush(stderr);
    fake_pid = fork();
    if (fake_pid < 0)
        log_panic("fork: %s", strerror(errno));
    if (fake_pid == 0)
        fake_run(script, sctx);
    SSL_CTX_free(sctx);
    close(lsock);
}

/* Wait for the fake server; returns its transcript (malloc'd). */
static char *fake_wait(void)
{
    char path[400];
    int status;

    waitpid(fake_pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        diag("fake server ended with status %d", status);
    snprintf(path, sizeof(path), "%s/transcript", tmpdir);
    return slurp(path, NULL);
}

static char *fake_body(int k, size_t *len)
{
    char path[400];

    snprintf(path, sizeof(path), "%s/body%d", tmpdir, k);
    return slurp(path, len);
}

/* The read number of the first command starting with prefix, or -1. */
static int cmd_read(const char *tr, const char *prefix)
{
    const char *p = tr;
    size_t pl = strlen(prefix);
    int n, off;

    while (p && *p) {
        if (*p == 'C' && sscanf(p, "C%d %n", &n, &off) == 1 &&
            ascii_ncasecmp(p + off, prefix, pl) == 0)
            return n;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

static int count_lines(const char *tr, const char *prefix)
{
    const char *p = tr;
    size_t pl = strlen(prefix);
    int k = 0;

    while (p && *p) {
        if (strncmp(p, prefix, pl) == 0)
            k++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return k;
}

static int count_cmd(const char *tr, const char *prefix)
{
    const char *p = tr;
    size_t pl = strlen(prefix);
    int k = 0, n, off;

    while (p && *p) {
        if (*p == 'C' && sscanf(p, "C%d %n", &n, &off) == 1 &&
            ascii_ncasecmp(p + off, prefix, pl) == 0)
            k++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return k;
}

static int has_cmd(const char *tr, const char *prefix)
{
    return cmd_read(tr, prefix) >= 0;
}

/* ---- the client side ---- */

#define MAXTXN 3
#define MAXRCPT 8

struct tres {
    struct smtpc_res session;
    struct smtpc_res rcpt[MAXRCPT];
    size_t nrcpts, accepted;
    int reusable;
};

struct run {
    struct event_base *base;
    struct event *guard;
    struct smtpc *s;
    struct smtpc_opts opts;
    struct sockaddr_storage ss;
    struct smtpc_txn txn[MAXTXN];
    int ntxn, cur;
    int wait_idle; /* after the first transaction wait for the idle callback */
    int got_open;
    struct smtpc_res open;
    struct smtpc_info info;
    char tls_version[32], relay[128], dane_match[16];
    struct tres res[MAXTXN];
    int nres;
    int idle_lost, idle_reusable, resend_rc;
    int timed_out, finished;
};

static void run_end(struct run *r)
{
    r->finished = 1;
    evtimer_del(r->guard);
}

static void copy_info(struct run *r)
{
    r->info = *smtpc_info(r->s);
    strlcpy_p(r->tls_version, r->info.tls_version, sizeof(r->tls_version));
    r->info.tls_version = r->tls_version;
    strlcpy_p(r->relay, r->info.relay, sizeof(r->relay));
    r->info.relay = r->relay;
    strlcpy_p(r->dane_match, r->info.tls_dane_match, sizeof(r->dane_match));
    r->info.tls_dane_match = r->dane_match;
    r->info.tls_vfy_reason = NULL;
    r->info.host = r->info.addr = r->info.greeting = NULL;
}

static void on_txn(struct smtpc *s, const struct smtpc_txn_res *res, void *arg);

static void on_idle(struct smtpc *s, void *arg)
{
    struct run *r = arg;

    r->idle_lost = 1;
    r->idle_reusable = smtpc_reusable(s);
    r->resend_rc = smtpc_send(s, &r->txn[r->cur], on_txn, r);
    if (r->resend_rc != 0) {
        smtpc_free(s);
        run_end(r);
    }
}

static void on_txn(struct smtpc *s, const struct smtpc_txn_res *res, void *arg)
{
    struct run *r = arg;
    struct tres *t = &r->res[r->nres++];
    size_t i;

    t->session = res->session;
    t->nrcpts = res->nrcpts;
    t->accepted = res->accepted;
    t->reusable = res->reusable;
    for (i = 0; i < res->nrcpts && i < MAXRCPT; i++)
        t->rcpt[i] = res->rcpt[i];
    copy_info(r);
    r->cur++;
    if (r->cur < r->ntxn && r->wait_idle && res->reusable) {
        smtpc_set_idle_cb(s, on_idle, r);
        return;
    }
    if (r->cur < r->ntxn && res->reusable && smtpc_send(s, &r->txn[r->cur], on_txn, r) == 0)
        return;
    smtpc_close(s);
    run_end(r);
}

static void on_open(struct smtpc *s, const struct smtpc_res *res, void *arg)
{
    struct run *r = arg;

    r->got_open = 1;
    r->open = *res;
    copy_info(r);
    if (res->status != SMTPC_OK || r->ntxn == 0) {
        smtpc_close(s);
        run_end(r);
        return;
    }
    if (smtpc_send(s, &r->txn[0], on_txn, r) < 0) {
        diag("smtpc_send refused on a fresh session");
        smtpc_free(s);
        run_end(r);
    }
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;

    r->timed_out = 1;
    event_base_loopbreak(r->base);
}

static void run_init(struct run *r, int port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&r->ss;

    memset(r, 0, sizeof(*r));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin->sin_port = htons((uint16_t)port);
    r->opts.addr = &r->ss;
    r->opts.host = "mx.test";
    r->opts.helo_name = "client.test";
    r->opts.connect_timeout = 5;
    r->opts.timeout = 5;
    r->opts.tls = TLS_MODE_NONE;
    r->opts.log_id = "TESTID";
}

static void run_go(struct run *r)
{
    struct timeval tv = {25, 0};

    r->base = event_base_new();
    r->guard = evtimer_new(r->base, on_guard, r);
    evtimer_add(r->guard, &tv);
    r->s = smtpc_open(r->base, &r->opts, on_open, r);
    event_base_dispatch(r->base);
    if (r->timed_out) {
        diag("client run did not finish in time");
        if (!r->finished)
            smtpc_free(r->s);
    }
    event_free(r->guard);
    event_base_free(r->base);
}

/* A message file: some envelope bytes first, then the message at offset. */
static int msg_fd;
static off_t msg_off, msg_len;

static void make_msg(const char *text, size_t len)
{
    static const char env[] = "ENVELOPE-HEADER-NOT-TO-BE-SENT\n";
    char path[400];

    if (msg_fd > 0)
        close(msg_fd);
    snprintf(path, sizeof(path), "%s/msg", tmpdir);
    msg_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (msg_fd < 0 || write_all(msg_fd, env, sizeof(env) - 1) < 0 ||
        write_all(msg_fd, text, len) < 0)
        log_panic("cannot write %s", path);
    msg_off = sizeof(env) - 1;
    msg_len = (off_t)len;
}

static const char msg1[] = "Subject: test\r\n\r\nHello world.\r\n";

static const struct smtpc_rcpt rcpts3[] = {
    {"a@dest.test", 0, NULL},
    {"b@dest.test", 0, NULL},
    {"c@dest.test", 0, NULL},
};

static void set_txn(struct smtpc_txn *t, const struct smtpc_rcpt *rc, size_t n)
{
    memset(t, 0, sizeof(*t));
    t->sender = "sender@src.test";
    t->rcpts = rc;
    t->nrcpts = n;
    t->fd = msg_fd;
    t->offset = msg_off;
    t->length = msg_len;
}

#define GREET                                                                                      \
    {                                                                                              \
        F_SEND, "220 fake.test ESMTP\r\n", NULL                                                    \
    }
#define EHLO_PLAIN                                                                                 \
    {                                                                                              \
        F_CMD, "EHLO client.test", "250-fake.test\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n"         \
    }
#define EHLO_PIPE                                                                                  \
    {                                                                                              \
        F_CMD, "EHLO client.test",                                                                 \
            "250-fake.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 1000000\r\n"   \
    }
#define QUIT_END                                                                                   \
    {F_CMD, "QUIT", "221 2.0.0 bye\r\n"}, {F_EOF, NULL, NULL},                                     \
    {                                                                                              \
        F_END, NULL, NULL                                                                          \
    }

/* ---- the tests ---- */

static void test_plain(void)
{
    static const struct fstep script[] = {
        GREET,
        EHLO_PLAIN,
        {F_CMD, "MAIL FROM:<sender@src.test>", "250 2.1.0 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test>", "250 2.1.5 ok\r\n"},
        {F_CMD, "RCPT TO:<b@dest.test>", "250 2.1.5 ok\r\n"},
        {F_CMD, "RCPT TO:<c@dest.test>", "250 2.1.5 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY, NULL, "250 2.0.0 queued as X1\r\n"},
        QUIT_END,
    };
    struct run r;
    char *tr, *body;
    size_t blen;

    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], rcpts3, 3);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();

    is_int(r.open.status, SMTPC_OK, "plain: session opened");
    ok(r.info.esmtp && !r.info.tls, "plain: ESMTP without TLS");
    ok(strncmp(r.info.relay, "mx.test[127.0.0.1]:", 19) == 0 && atoi(r.info.relay + 19) == lport,
       "plain: relay name host[addr]:port (%s)", r.info.relay);
    is_int(r.nres, 1, "plain: one transaction result");
    is_int(r.res[0].session.status, SMTPC_OK, "plain: message accepted");
    is_str(r.res[0].session.text, "250 2.0.0 queued as X1", "plain: final reply text");
    is_int(r.res[0].accepted, 3, "plain: three recipients accepted");
    ok(r.res[0].rcpt[0].status == SMTPC_OK && r.res[0].rcpt[1].status == SMTPC_OK &&
           r.res[0].rcpt[2].status == SMTPC_OK,
       "plain: every recipient ok");
    is_int(r.res[0].rcpt[2].step, SMTPC_STEP_DOT, "plain: recipient result from the dot reply");
    ok(r.res[0].reusable, "plain: session reusable after the transaction");
    is_int(count_lines(tr, "M "), 0, "plain: server saw the commands in script order");
    ok(strstr(tr, "C2 MAIL FROM:<sender@src.test> SIZE=31\n") != NULL, "plain: MAIL with SIZE=");
    ok(cmd_read(tr, "MAIL") != cmd_read(tr, "RCPT TO:<a@"),
       "plain: without PIPELINING, RCPT waits for the MAIL reply");
    ok(has_cmd(tr, "QUIT"), "plain: QUIT on close");
    body = fake_body(1, &blen);
    is_str(body, msg1, "plain: server received exactly the message (not the envelope before it)");
    free(body);
    free(tr);
}

static void test_pipelining(void)
{
    static const struct fstep script[] = {
        GREET,
        EHLO_PIPE,
        {F_CMD, "MAIL FROM:<sender@src.test>", "250 2.1.0 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test>", "250 2.1.5 ok\r\n"},
        {F_CMD, "RCPT TO:<b@dest.test>", "550 5.1.1 <b@dest.test>: no such user\r\n"},
        {F_CMD, "RCPT TO:<c@dest.test>", "250 2.1.5 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY, NULL, "250 2.0.0 queued\r\n"},
        QUIT_END,
    };
    struct run r;
    char *tr;
    int m;

    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], rcpts3, 3);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();

    m = cmd_read(tr, "MAIL");
    ok(m > 0 && cmd_read(tr, "RCPT TO:<a@") == m && cmd_read(tr, "RCPT TO:<c@") == m &&
           cmd_read(tr, "DATA") == m,
       "pipelining: MAIL, every RCPT and DATA arrived in one read");
    ok(cmd_read(tr, "EHLO") != m, "pipelining: EHLO was not part of it");
    is_int(r.res[0].session.status, SMTPC_OK, "one RCPT 550: the message is still sent");
    is_int(r.res[0].accepted, 2, "one RCPT 550: two recipients accepted");
    is_int(r.res[0].rcpt[0].status, SMTPC_OK, "one RCPT 550: first ok");
    is_int(r.res[0].rcpt[1].status, SMTPC_PERM, "one RCPT 550: second permanent");
    is_int(r.res[0].rcpt[1].code, 550, "one RCPT 550: its code");
    is_str(r.res[0].rcpt[1].enh, "5.1.1", "one RCPT 550: its enhanced code");
    is_int(r.res[0].rcpt[1].step, SMTPC_STEP_RCPT, "one RCPT 550: step rcpt");
    is_int(r.res[0].rcpt[1].cls, SMTPC_CL_SMTP, "one RCPT 550: class smtp");
    is_str(r.res[0].rcpt[1].text, "550 5.1.1 <b@dest.test>: no such user",
           "one RCPT 550: the server's text");
    is_int(r.res[0].rcpt[2].status, SMTPC_OK, "one RCPT 550: third ok");
    ok(strstr(tr, "B1 ") != NULL, "one RCPT 550: server got the message");
    free(tr);
}

#define EHLO_CHUNKING                                                                              \
    {                                                                                              \
        F_CMD, "EHLO client.test",                                                                 \
            "250-fake.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 1000000\r\n"              \
    }

/* A message that DATA would dot-stuff, sent with BDAT as it is. */
static const char msg_dots[] = "Subject: dots\r\n\r\n.one\r\n..two\r\n.\r\nend\r\n";

static void test_bdat(void)
{
    static const struct fstep script[] = {
        GREET,
        EHLO_CHUNKING,
        {F_CMD, "MAIL FROM:<sender@src.test>", "250 2.1.0 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test>", "250 2.1.5 ok\r\n"},
        {F_CMD, "RCPT TO:<b@dest.test>", "550 5.1.1 no\r\n"},
        {F_CMD, "RCPT TO:<c@dest.test>", "250 2.1.5 ok\r\n"},
        {F_BDAT, NULL, "250 2.0.0 queued as B1\r\n"},
        /* a second transaction on the connection: nobody takes it */
        {F_CMD, "RSET", "250 2.0.0 ok\r\n"},
        {F_CMD, "MAIL FROM:<sender@src.test>", "250 2.1.0 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test>", "550 5.1.1 no\r\n"},
        {F_CMD, "RCPT TO:<b@dest.test>", "550 5.1.1 no\r\n"},
        {F_CMD, "RCPT TO:<c@dest.test>", "550 5.1.1 no\r\n"},
        {F_CMD, "RSET", "250 2.0.0 ok\r\n"},
        {F_CMD, "MAIL FROM:<sender@src.test>", "250 2.1.0 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test>", "250 2.1.5 ok\r\n"},
        {F_CMD, "RCPT TO:<b@dest.test>", "250 2.1.5 ok\r\n"},
        {F_CMD, "RCPT TO:<c@dest.test>", "250 2.1.5 ok\r\n"},
        {F_BDAT, NULL, "552 5.3.4 too big\r\n"},
        QUIT_END,
    };
    struct run r;
    char *tr, *body;
    size_t blen;
    char want[64];

    make_msg(msg_dots, strlen(msg_dots));
    fake_start(script, 0);
    run_init(&r, lport);
    r.opts.chunking = 1;
    set_txn(&r.txn[0], rcpts3, 3);
    set_txn(&r.txn[1], rcpts3, 3);
    set_txn(&r.txn[2], rcpts3, 3);
    r.ntxn = 3;
    run_go(&r);
    tr = fake_wait();

    is_int(count_lines(tr, "M "), 0, "bdat: the server saw the commands in script order");
    snprintf(want, sizeof(want), "BDAT %zu LAST", strlen(msg_dots));
    ok(has_cmd(tr, want), "bdat: one chunk, its size and LAST (%s)", want);
    ok(!has_cmd(tr, "DATA"), "bdat: no DATA");
    ok(cmd_read(tr, "BDAT") != cmd_read(tr, "RCPT TO:<c@"),
       "bdat: the chunk waits for the RCPT replies");
    is_int(r.res[0].session.status, SMTPC_OK, "bdat: accepted");
    is_str(r.res[0].session.text, "250 2.0.0 queued as B1", "bdat: the reply to the chunk");
    is_int(r.res[0].accepted, 2, "bdat: two recipients took it");
    is_int(r.res[0].rcpt[1].status, SMTPC_PERM, "bdat: the refused one is permanent");
    body = fake_body(1, &blen);
    ok(blen == strlen(msg_dots) && memcmp(body, msg_dots, blen) == 0,
       "bdat: the server got the message byte for byte, no dot doubled");
    free(body);
    is_int(r.res[1].accepted, 0, "bdat: all refused: nothing sent");
    is_int(count_lines(tr, "B"), 2, "bdat: two chunks in all: none for the message nobody took");
    is_int(r.res[2].session.status, SMTPC_PERM, "bdat: 552 to the chunk is permanent");
    is_int(r.res[2].rcpt[0].code, 552, "bdat: every recipient gets the chunk's reply");
    free(tr);

    /* the server offers CHUNKING but the caller did not allow it */
    static const struct fstep script2[] = {
        GREET,
        EHLO_CHUNKING,
        {F_CMD, "MAIL FROM:<sender@src.test>", "250 2.1.0 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test>", "250 2.1.5 ok\r\n"},
        {F_CMD, "DATA", "354 go\r\n"},
        {F_BODY, NULL, "250 2.0.0 ok\r\n"},
        QUIT_END,
    };
    make_msg(msg_dots, strlen(msg_dots));
    fake_start(script2, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], rcpts3, 1);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    ok(has_cmd(tr, "DATA") && !has_cmd(tr, "BDAT"), "bdat: off: DATA even when offered");
    is_int(r.res[0].session.status, SMTPC_OK, "bdat: off: accepted");
    free(tr);
}

static void test_mail_4xx(void)
{
    static const struct fstep script[] = {
        GREET,
        EHLO_PLAIN,
        {F_CMD, "MAIL FROM:", "451 4.3.0 try again later\r\n"},
        QUIT_END,
    };
    struct run r;
    char *tr;

    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], rcpts3, 3);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    is_int(r.res[0].session.status, SMTPC_TEMP, "4xx at MAIL: temporary");
    is_int(r.res[0].session.step, SMTPC_STEP_MAIL, "4xx at MAIL: step mail");
    is_int(r.res[0].session.code, 451, "4xx at MAIL: code");
    ok(r.res[0].rcpt[0].status == SMTPC_TEMP && r.res[0].rcpt[2].status == SMTPC_TEMP &&
           r.res[0].rcpt[1].step == SMTPC_STEP_MAIL,
       "4xx at MAIL: every recipient temporary at step mail");
    is_int(r.res[0].accepted, 0, "4xx at MAIL: nothing accepted");
    ok(r.res[0].reusable, "4xx at MAIL: the connection is still usable");
    ok(!has_cmd(tr, "RCPT"), "4xx at MAIL: no RCPT sent");
    ok(has_cmd(tr, "QUIT"), "4xx at MAIL: QUIT sent");
    free(tr);
}

static void test_refused(void)
{
    struct run r;
    int port;

    fake_listen(0);
    port = lport;
    close(lsock);
    run_init(&r, port);
    r.ntxn = 0;
    run_go(&r);
    ok(r.got_open, "refused: open callback called");
    is_int(r.open.status, SMTPC_TEMP, "refused: temporary");
    is_int(r.open.cls, SMTPC_CL_NETWORK, "refused: class network");
    is_int(r.open.step, SMTPC_STEP_CONNECT, "refused: step connect");
    ok(strstr(r.open.text, "refused") != NULL, "refused: says so (%s)", r.open.text);
    is_str(r.open.enh, "4.4.1", "refused: 4.4.1");
}

static void test_connect_timeout(void)
{
    struct run r;
    int fill[4], i;
    struct sockaddr_in sin;

    /* A listener that never accepts, its queue filled: SYNs go unanswered. */
    fake_listen(0);
    listen(lsock, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)lport);
    for (i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(fill[i], (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno != EINPROGRESS)
            diag("filling the queue: %s", strerror(errno));
    }
    usleep(100000);
    run_init(&r, lport);
    r.opts.connect_timeout = 1;
    run_go(&r);
    is_int(r.open.status, SMTPC_TEMP, "connect timeout: temporary");
    is_int(r.open.step, SMTPC_STEP_CONNECT, "connect timeout: step connect");
    ok(strstr(r.open.text, "timed out") != NULL, "connect timeout: says so (%s)", r.open.text);
    for (i = 0; i < 4; i++)
        close(fill[i]);
    close(lsock);
}

static void test_drop_mid_data(void)
{
    static const struct fstep script[] = {
        GREET,
        {F_CMD, "EHLO", "250-fake.test\r\n250 8BITMIME\r\n"},
        {F_CMD, "MAIL FROM:", "250 ok\r\n"},
        {F_CMD, "RCPT TO:", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY_DROP, NULL, NULL},
        {F_END, NULL, NULL},
    };
    static const struct smtpc_rcpt one[] = {{"a@dest.test", 0, NULL}};
    size_t big = 8u << 20, i;
    char *m = xmalloc(big);
    struct run r;
    char *tr;

    for (i = 0; i < big; i++)
        m[i] = (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
    make_msg(m, big);
    free(m);
    fake_start(script, 4096);
    run_init(&r, lport);
    set_txn(&r.txn[0], one, 1);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    ok(strstr(tr, "D\n") != NULL, "mid-DATA drop: server dropped the connection");
    is_int(r.res[0].session.status, SMTPC_TEMP, "mid-DATA drop: temporary");
    is_int(r.res[0].session.cls, SMTPC_CL_NETWORK, "mid-DATA drop: class network");
    is_int(r.res[0].session.step, SMTPC_STEP_DATA, "mid-DATA drop: step data");
    is_int(r.res[0].rcpt[0].status, SMTPC_TEMP, "mid-DATA drop: recipient temporary");
    ok(!r.res[0].reusable, "mid-DATA drop: not reusable");
    ok(!r.res[0].session.lost_before_txn, "mid-DATA drop: not 'lost before the transaction'");
    free(tr);
}

static void test_dotstuff(void)
{
    static const struct fstep script[] = {
        GREET,
        EHLO_PLAIN,
        {F_CMD, "MAIL FROM:", "250 ok\r\n"},
        {F_CMD, "RCPT TO:", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY, NULL, "250 ok\r\n"},
        QUIT_END,
    };
    static const struct smtpc_rcpt one[] = {{"a@dest.test", 0, NULL}};
    static const char text[] = ".hello\n..two\n.\nmid.dle\r\n.\r\nlast line";
    struct run r;
    char *tr, *body;

    make_msg(text, strlen(text));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], one, 1);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    body = fake_body(1, NULL);
    is_int(r.res[0].session.status, SMTPC_OK, "dot-stuffing: accepted");
    is_str(body, "..hello\r\n...two\r\n..\r\nmid.dle\r\n..\r\nlast line\r\n",
           "dot-stuffing: leading dots doubled, LF made CRLF, last line ended; the server "
           "unstuffs to the original");
    free(body);
    free(tr);
}

/* Fields added at delivery (DKIM-Signature) go before the message, in
 * DATA (dot-stuffed with it) and in BDAT (counted in the chunk), and in
 * the SIZE= of MAIL. */
static void test_prefix(void)
{
    static const char pre[] = "DKIM-Signature: v=1; a=rsa-sha256; d=example.org;\r\n\tb=abc\r\n";
    static const struct fstep data_script[] = {
        GREET,
        EHLO_PLAIN,
        {F_CMD, "MAIL FROM:", "250 ok\r\n"},
        {F_CMD, "RCPT TO:", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY, NULL, "250 ok\r\n"},
        QUIT_END,
    };
    static const struct fstep bdat_script[] = {
        GREET,
        EHLO_CHUNKING,
        {F_CMD, "MAIL FROM:<sender@src.test>", "250 2.1.0 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test>", "250 2.1.5 ok\r\n"},
        {F_BDAT, NULL, "250 2.0.0 queued\r\n"},
        QUIT_END,
    };
    static const struct smtpc_rcpt one[] = {{"a@dest.test", 0, NULL}};
    struct run r;
    char *tr, *body, want[600];
    size_t blen;

    make_msg(msg_dots, strlen(msg_dots));
    fake_start(data_script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], one, 1);
    r.txn[0].prefix = pre;
    r.txn[0].prefix_len = strlen(pre);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    body = fake_body(1, NULL);
    is_int(r.res[0].session.status, SMTPC_OK, "prefix: DATA accepted");
    snprintf(want, sizeof(want), "%s%s", pre,
             "Subject: dots\r\n\r\n..one\r\n...two\r\n..\r\nend\r\n");
    is_str(body, want, "prefix: the fields come first, then the message, dot-stuffed");
    snprintf(want, sizeof(want), "SIZE=%zu", strlen(pre) + strlen(msg_dots));
    ok(strstr(tr, want) != NULL, "prefix: MAIL's SIZE= counts it (%s)", want);
    free(body);
    free(tr);

    make_msg(msg_dots, strlen(msg_dots));
    fake_start(bdat_script, 0);
    run_init(&r, lport);
    r.opts.chunking = 1;
    set_txn(&r.txn[0], one, 1);
    r.txn[0].prefix = pre;
    r.txn[0].prefix_len = strlen(pre);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    snprintf(want, sizeof(want), "BDAT %zu LAST", strlen(pre) + strlen(msg_dots));
    ok(has_cmd(tr, want), "prefix: the BDAT chunk counts it (%s)", want);
    body = fake_body(1, &blen);
    snprintf(want, sizeof(want), "%s%s", pre, msg_dots);
    ok(blen == strlen(want) && memcmp(body, want, blen) == 0,
       "prefix: BDAT carries the fields and the message as they are");
    free(body);
    free(tr);
}

static void test_starttls_may(void)
{
    static const struct fstep script[] = {
        GREET,
        {F_CMD, "EHLO client.test", "250-fake.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n"},
        {F_CMD, "STARTTLS", "220 2.0.0 ready\r\n"},
        {F_TLS, NULL, NULL},
        {F_CMD, "EHLO client.test", "250-fake.test\r\n250 PIPELINING\r\n"},
        {F_CMD, "MAIL FROM:", "250 ok\r\n"},
        {F_CMD, "RCPT TO:", "250 ok\r\n"},
        {F_CMD, "RCPT TO:", "250 ok\r\n"},
        {F_CMD, "RCPT TO:", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY, NULL, "250 ok\r\n"},
        QUIT_END,
    };
    struct run r;
    SSL_CTX *ctx;
    char *err = NULL, *tr, *body;

    ctx = smtpc_tls_ctx_new(NULL, &err);
    if (!ok(ctx != NULL, "tls ctx with the system CA bundle"))
        diag("%s", err);
    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    r.opts.tls = TLS_MODE_MAY;
    r.opts.ssl_ctx = ctx;
    set_txn(&r.txn[0], rcpts3, 3);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    ok(strstr(tr, "T\n") != NULL, "STARTTLS may: server saw the TLS handshake");
    is_int(count_lines(tr, "M "), 0, "STARTTLS may: EHLO again after TLS");
    ok(r.info.tls, "STARTTLS may: client reports TLS");
    ok(!r.info.tls_verified, "STARTTLS may: not verified");
    ok(strncmp(r.info.tls_version, "TLSv1.", 6) == 0, "STARTTLS may: version %s",
       r.info.tls_version);
    is_int(r.res[0].session.status, SMTPC_OK, "STARTTLS may: message accepted over TLS");
    body = fake_body(1, NULL);
    is_str(body, msg1, "STARTTLS may: message intact");
    free(body);
    free(tr);
    SSL_CTX_free(ctx);
}

static void test_verify(const char *host, int want_ok)
{
    static const struct fstep script[] = {
        GREET,
        {F_CMD, "EHLO client.test", "250-fake.test\r\n250 STARTTLS\r\n"},
        {F_CMD, "STARTTLS", "220 2.0.0 ready\r\n"},
        {F_TLS, NULL, NULL},
        {F_CMD, "EHLO client.test", "250 fake.test\r\n"},
        QUIT_END,
    };
    struct run r;
    SSL_CTX *ctx;
    char *err = NULL, *tr;

    ctx = smtpc_tls_ctx_new(certfile, &err);
    fake_start(script, 0);
    run_init(&r, lport);
    r.opts.host = host;
    r.opts.tls = TLS_MODE_VERIFY;
    r.opts.ssl_ctx = ctx;
    run_go(&r);
    tr = fake_wait();
    if (want_ok) {
        if (!is_int(r.open.status, SMTPC_OK, "verify %s: session opened", host))
            diag("%s", r.open.text);
        ok(r.info.tls && r.info.tls_verified, "verify %s: TLS verified", host);
        ok(has_cmd(tr, "QUIT"), "verify %s: QUIT over TLS", host);
    } else {
        is_int(r.open.status, SMTPC_TEMP, "verify %s: temporary failure", host);
        is_int(r.open.cls, SMTPC_CL_TLS, "verify %s: class tls", host);
        is_int(r.open.step, SMTPC_STEP_STARTTLS, "verify %s: step starttls", host);
        ok(strstr(r.open.text, "verification failed") != NULL, "verify %s: says why (%s)", host,
           r.open.text);
        ok(!has_cmd(tr, "MAIL"), "verify %s: nothing sent", host);
    }
    free(tr);
    SSL_CTX_free(ctx);
}

static void test_bad_ca_file(void)
{
    char *err = NULL;
    SSL_CTX *ctx = smtpc_tls_ctx_new("/nonexistent/ca.pem", &err);

    ok(ctx == NULL && err && strstr(err, "/nonexistent/ca.pem"), "missing CA file is an error");
    free(err);
    SSL_CTX_free(ctx);
}

static void test_may_fallback(void)
{
    static const struct fstep script[] = {
        GREET,
        {F_CMD, "EHLO client.test", "250-fake.test\r\n250 STARTTLS\r\n"},
        {F_CMD, "STARTTLS", "220 2.0.0 ready\r\n"},
        {F_SLEEP, "100", NULL},
        {F_SEND, "this is not TLS\r\n", NULL},
        {F_ACCEPT, NULL, NULL},
        GREET,
        {F_CMD, "EHLO client.test", "250-fake.test\r\n250 STARTTLS\r\n"},
        QUIT_END,
    };
    struct run r;
    SSL_CTX *ctx;
    char *err = NULL, *tr;

    ctx = smtpc_tls_ctx_new(NULL, &err);
    fake_start(script, 0);
    run_init(&r, lport);
    r.opts.tls = TLS_MODE_MAY;
    r.opts.ssl_ctx = ctx;
    run_go(&r);
    tr = fake_wait();
    if (!is_int(r.open.status, SMTPC_OK, "may + broken TLS: session opened anyway"))
        diag("%s", r.open.text);
    ok(!r.info.tls && r.info.tls_fallback, "may + broken TLS: plaintext, fallback reported");
    is_int(count_lines(tr, "A"), 2, "may + broken TLS: a second connection");
    is_int(count_cmd(tr, "STARTTLS"), 1, "may + broken TLS: no STARTTLS on the second one");
    is_int(count_lines(tr, "M "), 0, "may + broken TLS: the second one ends with QUIT");
    free(tr);
    SSL_CTX_free(ctx);
}

static void test_encrypt_not_offered(void)
{
    static const struct fstep script[] = {
        GREET,
        EHLO_PIPE,
        QUIT_END,
    };
    struct run r;
    SSL_CTX *ctx;
    char *err = NULL, *tr;

    ctx = smtpc_tls_ctx_new(NULL, &err);
    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    r.opts.tls = TLS_MODE_ENCRYPT;
    r.opts.ssl_ctx = ctx;
    set_txn(&r.txn[0], rcpts3, 3);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    is_int(r.open.status, SMTPC_TEMP, "encrypt, no STARTTLS: temporary");
    is_int(r.open.cls, SMTPC_CL_TLS, "encrypt, no STARTTLS: class tls");
    is_int(r.open.step, SMTPC_STEP_STARTTLS, "encrypt, no STARTTLS: step starttls");
    is_str(r.open.text, "TLS required but not offered by the server",
           "encrypt, no STARTTLS: the reason");
    is_int(r.nres, 0, "encrypt, no STARTTLS: no transaction");
    ok(!has_cmd(tr, "MAIL"), "encrypt, no STARTTLS: server saw no MAIL");
    ok(has_cmd(tr, "QUIT"), "encrypt, no STARTTLS: polite QUIT");
    free(tr);
    SSL_CTX_free(ctx);
}

/* Run with fd 2 going to a file; returns what was logged. */
static char *with_log_capture(struct run *r)
{
    char path[400];
    int saved, fd;

    snprintf(path, sizeof(path), "%s/log", tmpdir);
    fflush(stderr);
    saved = dup(2);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    log_set_level(LOG_LV_DETAIL);
    run_go(r);
    log_set_level(LOG_LV_WARN);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return slurp(path, NULL);
}

static void test_auth(const char *mechs, int good)
{
    /* "\0user\0secret" and "user", "secret" in base64 */
    static const char plain[] = "AHVzZXIAc2VjcmV0";
    struct fstep script[16];
    struct run r;
    SSL_CTX *ctx;
    char *err = NULL, *tr, *logs, ehlo[128], want[64];
    int n = 0, login = strcmp(mechs, "LOGIN") == 0;

    snprintf(ehlo, sizeof(ehlo), "250-fake.test\r\n250 AUTH %s\r\n", mechs);
    script[n++] = (struct fstep)GREET;
    script[n++] = (struct fstep){F_CMD, "EHLO client.test", "250-fake.test\r\n250 STARTTLS\r\n"};
    script[n++] = (struct fstep){F_CMD, "STARTTLS", "220 2.0.0 ready\r\n"};
    script[n++] = (struct fstep){F_TLS, NULL, NULL};
    script[n++] = (struct fstep){F_CMD, "EHLO client.test", ehlo};
    if (login) {
        script[n++] = (struct fstep){F_CMD, "AUTH LOGIN", "334 VXNlcm5hbWU6\r\n"};
        script[n++] = (struct fstep){F_CMD, "dXNlcg==", "334 UGFzc3dvcmQ6\r\n"};
        script[n++] = (struct fstep){F_CMD, "c2VjcmV0", "235 2.7.0 ok\r\n"};
    } else {
        snprintf(want, sizeof(want), "AUTH PLAIN %s", plain);
        script[n++] = (struct fstep){F_CMD, want,
                                     good ? "235 2.7.0 Authentication successful\r\n"
                                          : "535 5.7.8 Authentication credentials invalid\r\n"};
    }
    script[n++] = (struct fstep){F_CMD, "QUIT", "221 bye\r\n"};
    script[n++] = (struct fstep){F_EOF, NULL, NULL};
    script[n++] = (struct fstep){F_END, NULL, NULL};

    ctx = smtpc_tls_ctx_new(NULL, &err);
    fake_start(script, 0);
    run_init(&r, lport);
    r.opts.tls = TLS_MODE_MAY;
    r.opts.ssl_ctx = ctx;
    r.opts.auth_user = "user";
    r.opts.auth_pass = "secret";
    logs = with_log_capture(&r);
    tr = fake_wait();
    is_int(count_lines(tr, "M "), 0, "AUTH %s: the server got the expected exchange", mechs);
    if (good) {
        if (!is_int(r.open.status, SMTPC_OK, "AUTH %s: session opened", mechs))
            diag("%s", r.open.text);
        ok(r.info.auth, "AUTH %s: authenticated", mechs);
    } else {
        is_int(r.open.status, SMTPC_TEMP, "AUTH %s refused: temporary (a config problem)", mechs);
        is_int(r.open.cls, SMTPC_CL_AUTH, "AUTH %s refused: class auth", mechs);
        is_int(r.open.step, SMTPC_STEP_AUTH, "AUTH %s refused: step auth", mechs);
        is_int(r.open.code, 535, "AUTH %s refused: the server's code", mechs);
        ok(strstr(r.open.text, "credentials invalid") != NULL, "AUTH %s refused: the text", mechs);
        ok(has_cmd(tr, "QUIT"), "AUTH %s refused: QUIT", mechs);
    }
    ok(strstr(logs, "EHLO client.test") != NULL, "AUTH %s: the transcript is logged", mechs);
    ok(strstr(logs, plain) == NULL && strstr(logs, "c2VjcmV0") == NULL &&
           strstr(logs, "secret") == NULL,
       "AUTH %s: no secret in the log", mechs);
    ok(strstr(logs, login ? "> ****" : "AUTH PLAIN ****") != NULL,
       "AUTH %s: the secret is shown as ****", mechs);
    free(logs);
    free(tr);
    SSL_CTX_free(ctx);
}

static void test_auth_plaintext_refused(void)
{
    static const struct fstep script[] = {
        GREET,
        {F_CMD, "EHLO client.test", "250-fake.test\r\n250 AUTH PLAIN LOGIN\r\n"},
        QUIT_END,
    };
    struct run r;
    char *tr;

    fake_start(script, 0);
    run_init(&r, lport);
    r.opts.auth_user = "user";
    r.opts.auth_pass = "secret";
    run_go(&r);
    tr = fake_wait();
    is_int(r.open.cls, SMTPC_CL_AUTH, "AUTH without TLS: refused by the client (class auth)");
    ok(strstr(r.open.text, "TLS is not in use") != NULL, "AUTH without TLS: says why");
    ok(!has_cmd(tr, "AUTH"), "AUTH without TLS: credentials never sent");
    free(tr);
}

static void test_reuse(void)
{
    static const struct fstep script[] = {
        GREET,
        EHLO_PIPE,
        {F_CMD, "MAIL FROM:<sender@src.test>", "250 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test>", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY, NULL, "250 2.0.0 first\r\n"},
        {F_CMD, "RSET", "250 2.0.0 ok\r\n"},
        {F_CMD, "MAIL FROM:<other@src.test>", "250 ok\r\n"},
        {F_CMD, "RCPT TO:<b@dest.test>", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY, NULL, "250 2.0.0 second\r\n"},
        QUIT_END,
    };
    static const struct smtpc_rcpt ra[] = {{"a@dest.test", 0, NULL}};
    static const struct smtpc_rcpt rb[] = {{"b@dest.test", 0, NULL}};
    struct run r;
    char *tr, *b1, *b2;

    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], ra, 1);
    set_txn(&r.txn[1], rb, 1);
    r.txn[1].sender = "other@src.test";
    r.ntxn = 2;
    run_go(&r);
    tr = fake_wait();
    is_int(r.nres, 2, "reuse: two transactions");
    is_str(r.res[0].session.text, "250 2.0.0 first", "reuse: first accepted");
    is_str(r.res[1].session.text, "250 2.0.0 second", "reuse: second accepted");
    is_int(count_lines(tr, "A"), 1, "reuse: over one connection");
    is_int(count_lines(tr, "M "), 0, "reuse: RSET before the second transaction");
    is_int(r.info.transactions, 2, "reuse: the session counted two transactions");
    b1 = fake_body(1, NULL);
    b2 = fake_body(2, NULL);
    ok(strcmp(b1, msg1) == 0 && strcmp(b2, msg1) == 0, "reuse: both messages intact");
    free(b1);
    free(b2);
    free(tr);
}

static void test_idle_closed(void)
{
    static const struct fstep script[] = {
        GREET,
        EHLO_PIPE,
        {F_CMD, "MAIL FROM:", "250 ok\r\n"},
        {F_CMD, "RCPT TO:", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY, NULL, "250 2.0.0 first\r\n"},
        {F_SLEEP, "200", NULL},
        {F_SEND, "421 4.4.2 idle too long, closing\r\n", NULL},
        {F_CLOSE, NULL, NULL},
        {F_END, NULL, NULL},
    };
    static const struct smtpc_rcpt ra[] = {{"a@dest.test", 0, NULL}};
    struct run r;
    char *tr;

    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], ra, 1);
    set_txn(&r.txn[1], ra, 1);
    r.ntxn = 2;
    r.wait_idle = 1;
    run_go(&r);
    tr = fake_wait();
    is_int(r.nres, 2, "idle close: two transaction results");
    ok(r.res[0].reusable, "idle close: reusable right after the first");
    ok(r.idle_lost, "idle close: the idle callback reported the loss");
    ok(!r.idle_reusable, "idle close: no longer reusable");
    is_int(r.resend_rc, 0, "idle close: smtpc_send on the dead session still reports");
    is_int(r.res[1].session.status, SMTPC_TEMP, "idle close: second transaction temporary");
    ok(r.res[1].session.lost_before_txn && r.res[1].rcpt[0].lost_before_txn,
       "idle close: lost before the transaction (no attempt to count)");
    ok(strstr(r.res[1].session.text, "before the transaction started") != NULL,
       "idle close: says so (%s)", r.res[1].session.text);
    is_int(count_cmd(tr, "RSET"), 0, "idle close: nothing sent for the second");
    free(tr);
}

static void test_lost_before_txn(void)
{
    static const struct fstep script[] = {
        GREET,
        EHLO_PIPE,
        {F_CMD, "MAIL FROM:", "250 ok\r\n"},
        {F_CMD, "RCPT TO:", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go ahead\r\n"},
        {F_BODY, NULL, "250 2.0.0 first\r\n"},
        {F_CMD, "RSET", NULL},
        {F_CLOSE, NULL, NULL},
        {F_END, NULL, NULL},
    };
    static const struct smtpc_rcpt ra[] = {{"a@dest.test", 0, NULL}};
    struct run r;
    char *tr;

    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], ra, 1);
    set_txn(&r.txn[1], ra, 1);
    r.ntxn = 2;
    run_go(&r);
    tr = fake_wait();
    is_int(r.nres, 2, "lost before txn: two results");
    is_int(r.res[1].session.status, SMTPC_TEMP, "lost before txn: temporary");
    ok(r.res[1].session.lost_before_txn, "lost before txn: flagged for a retry without penalty");
    is_int(r.res[1].session.cls, SMTPC_CL_NETWORK, "lost before txn: class network");
    ok(strstr(r.res[1].session.text, "before the transaction started") != NULL,
       "lost before txn: says so (%s)", r.res[1].session.text);
    ok(r.res[1].rcpt[0].lost_before_txn, "lost before txn: on the recipient too");
    ok(!r.res[1].reusable, "lost before txn: not reusable");
    free(tr);
}

static void test_helo_fallback(void)
{
    static const struct fstep script[] = {
        GREET,
        {F_CMD, "EHLO client.test", "502 5.5.1 what?\r\n"},
        {F_CMD, "HELO client.test", "250 fake.test\r\n"},
        {F_CMD, "MAIL FROM:<sender@src.test>\n", "250 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test>\n", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go\r\n"},
        {F_BODY, NULL, "250 ok\r\n"},
        QUIT_END,
    };
    static const char text8[] = "Subject: caf\xc3\xa9\r\n\r\n8-bit body \xc3\xa9\r\n";
    struct run r;
    char *tr, *body;

    make_msg(text8, strlen(text8));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], rcpts3, 1);
    r.txn[0].need = SMTPC_NEED_8BITMIME;
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    is_int(r.open.status, SMTPC_OK, "EHLO refused: HELO works");
    ok(!r.info.esmtp && r.info.caps.flags == 0, "EHLO refused: plain SMTP, no extensions");
    is_int(count_lines(tr, "M "), 0, "EHLO refused: HELO, then MAIL without parameters");
    is_int(r.res[0].session.status, SMTPC_OK, "8-bit message to a server without 8BITMIME: sent");
    body = fake_body(1, NULL);
    is_str(body, text8, "8-bit message: bytes unchanged");
    free(body);
    free(tr);
}

static void test_smtputf8_and_size(void)
{
    static const struct fstep script[] = {
        GREET,
        {F_CMD, "EHLO", "250-fake.test\r\n250-SIZE 20\r\n250 8BITMIME\r\n"},
        {F_CMD, "RSET", "250 ok\r\n"},
        {F_CMD, "MAIL FROM:<sender@src.test> SIZE=5 BODY=8BITMIME\n", "250 ok\r\n"},
        {F_CMD, "RCPT TO:", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go\r\n"},
        {F_BODY, NULL, "250 ok\r\n"},
        QUIT_END,
    };
    static const struct smtpc_rcpt utf[] = {{"j\xc3\xb6rg@dest.test", 0, NULL}};
    static const struct smtpc_rcpt one[] = {{"a@dest.test", 0, NULL}};
    struct run r;
    char *tr;

    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], utf, 1);
    set_txn(&r.txn[1], one, 1);
    set_txn(&r.txn[2], one, 1);
    r.txn[2].length = 5; /* "Subje" fits SIZE 20 */
    r.txn[2].need = SMTPC_NEED_8BITMIME;
    r.ntxn = 3;
    run_go(&r);
    tr = fake_wait();
    is_int(r.nres, 3, "SMTPUTF8/SIZE: three results");
    is_int(r.res[0].session.status, SMTPC_PERM, "UTF-8 address, no SMTPUTF8: permanent");
    is_str(r.res[0].session.enh, "5.6.7", "UTF-8 address, no SMTPUTF8: 5.6.7");
    ok(strstr(r.res[0].rcpt[0].text, "SMTPUTF8") != NULL, "UTF-8 address: reason (%s)",
       r.res[0].rcpt[0].text);
    is_int(r.res[1].session.status, SMTPC_PERM, "too big for SIZE: permanent");
    is_str(r.res[1].session.enh, "5.3.4", "too big for SIZE: 5.3.4");
    ok(r.res[1].reusable, "refused locally: session still reusable");
    is_int(r.res[2].session.status, SMTPC_OK, "then a fitting 8-bit message goes");
    is_int(count_lines(tr, "M "), 0, "server saw only the third MAIL, with SIZE and BODY");
    is_int(count_lines(tr, "C"), 6, "nothing sent for the refused ones");
    free(tr);
}

static void test_timeout(void)
{
    static const struct fstep script[] = {
        GREET,
        {F_CMD, "EHLO", NULL},
        {F_SLEEP, "2500", NULL},
        {F_END, NULL, NULL},
    };
    struct run r;
    char *tr;

    fake_start(script, 0);
    run_init(&r, lport);
    r.opts.timeout = 1;
    run_go(&r);
    tr = fake_wait();
    is_int(r.open.status, SMTPC_TEMP, "silent server: temporary");
    is_int(r.open.cls, SMTPC_CL_NETWORK, "silent server: class network");
    is_int(r.open.step, SMTPC_STEP_HELO, "silent server: step helo");
    ok(strstr(r.open.text, "timeout") != NULL, "silent server: timeout (%s)", r.open.text);
    free(tr);
}

static void test_greeting_554(void)
{
    static const struct fstep script[] = {
        {F_SEND, "554-5.7.1 go\r\n554 5.7.1 away\x07\r\n", NULL},
        QUIT_END,
    };
    struct run r;
    char *tr;

    fake_start(script, 0);
    run_init(&r, lport);
    run_go(&r);
    tr = fake_wait();
    is_int(r.open.status, SMTPC_PERM, "greeting 554: permanent");
    is_int(r.open.step, SMTPC_STEP_GREETING, "greeting 554: step greeting");
    is_str(r.open.text, "554 5.7.1 go away?", "greeting 554: text joined and sanitised");
    ok(has_cmd(tr, "QUIT"), "greeting 554: QUIT");
    free(tr);
}

static void test_dsn_params(void)
{
    static const struct fstep script[] = {
        GREET,
        {F_CMD, "EHLO", "250-fake.test\r\n250-DSN\r\n250 PIPELINING\r\n"},
        {F_CMD, "MAIL FROM:<> RET=HDRS ENVID=id+2Bx+3D1\n", "250 ok\r\n"},
        {F_CMD, "RCPT TO:<a@dest.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;A+2B1@dest.test\n",
         "250 ok\r\n"},
        {F_CMD, "RCPT TO:<b@dest.test> NOTIFY=NEVER\n", "250 ok\r\n"},
        {F_CMD, "DATA", "354 go\r\n"},
        {F_BODY, NULL, "250 ok\r\n"},
        QUIT_END,
    };
    static const struct smtpc_rcpt rc[] = {
        {"a@dest.test", DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY, "rfc822;A+1@dest.test"},
        {"b@dest.test", DSN_NOTIFY_NEVER, NULL},
    };
    struct run r;
    char *tr;

    make_msg(msg1, strlen(msg1));
    fake_start(script, 0);
    run_init(&r, lport);
    set_txn(&r.txn[0], rc, 2);
    r.txn[0].sender = "";
    r.txn[0].ret = DSN_RET_HDRS;
    r.txn[0].envid = "id+x=1";
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    is_int(r.res[0].session.status, SMTPC_OK, "DSN: accepted");
    is_int(count_lines(tr, "M "), 0, "DSN: null sender, RET, ENVID, NOTIFY, ORCPT as xtext");
    free(tr);
}

static void test_cmds(void)
{
    struct smtp_caps none = {0, 0, 0},
                     all = {SMTP_CAP_DSN | SMTP_CAP_8BITMIME | SMTP_CAP_SMTPUTF8 | SMTP_CAP_SIZE, 0,
                            0};
    struct smtpc_rcpt rc = {"x@y.test", DSN_NOTIFY_FAILURE, "x@y.test"};
    struct smtpc_txn t;
    struct buf b;

    memset(&t, 0, sizeof(t));
    t.sender = "s@y.test";
    t.length = 42;
    t.need = SMTPC_NEED_8BITMIME | SMTPC_NEED_SMTPUTF8;
    t.ret = DSN_RET_FULL;
    t.envid = "E1";
    buf_init(&b);
    smtpc_mail_cmd(&b, &t, &none);
    is_str(b.data, "MAIL FROM:<s@y.test>\r\n", "MAIL without extensions: no parameters");
    buf_reset(&b);
    smtpc_mail_cmd(&b, &t, &all);
    is_str(b.data, "MAIL FROM:<s@y.test> SIZE=42 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=E1\r\n",
           "MAIL with every extension");
    buf_reset(&b);
    smtpc_rcpt_cmd(&b, &rc, &none);
    is_str(b.data, "RCPT TO:<x@y.test>\r\n", "RCPT without DSN: no parameters");
    buf_reset(&b);
    smtpc_rcpt_cmd(&b, &rc, &all);
    is_str(b.data, "RCPT TO:<x@y.test> NOTIFY=FAILURE ORCPT=rfc822;x@y.test\r\n",
           "RCPT with DSN, ORCPT without a type gets rfc822");
    buf_free(&b);
    is_str(smtpc_step_name(SMTPC_STEP_DOT), "dot", "step names");
    is_str(smtpc_class_name(SMTPC_CL_AUTH), "auth", "class names");
    is_int(tls_mode_parse("verify"), TLS_MODE_VERIFY, "tls names");
    is_int(tls_mode_parse("bogus"), -1, "unknown tls name");
}

/* ---- DANE (RFC 7672) and the tls_evaluate check ---- */

static EVP_PKEY *ca_key, *leaf_key;
static X509 *ca_cert, *leaf_cert, *old_cert;

/* A CA "Test CA" and a leaf for mx.dane.test signed by it; an expired
 * self-signed certificate for another name. */
static void make_chain(void)
{
    ca_key = new_key();
    leaf_key = new_key();
    ca_cert = new_cert("Test CA", NULL, ca_key, NULL, NULL, 1, -3600, 86400);
    leaf_cert =
        new_cert("mx.dane.test", "DNS:mx.dane.test", leaf_key, ca_cert, ca_key, 0, -3600, 86400);
    old_cert =
        new_cert("old.example", "DNS:old.example", leaf_key, NULL, NULL, 0, -86400 * 3, -86400 * 2);
}

/* The association data of x for selector sel and matching type mt (RFC 6698 2.1). */
static size_t tlsa_data(X509 *x, int sel, int mt, unsigned char *out, size_t outsz)
{
    unsigned char *der = NULL;
    int len = sel == 0 ? i2d_X509(x, &der) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    unsigned int mdlen = 0;
    size_t n = 0;

    if (len <= 0)
        log_panic("cannot encode a certificate");
    if (mt == 0 && (size_t)len <= outsz) {
        memcpy(out, der, (size_t)len);
        n = (size_t)len;
    } else if (mt > 0 && EVP_Digest(der, (size_t)len, out, &mdlen,
                                    mt == 1 ? EVP_sha256() : EVP_sha512(), NULL) == 1) {
        n = mdlen;
    }
    OPENSSL_free(der);
    return n;
}

static void hexstr(char *out, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

static const struct fstep dane_script[] = {
    GREET,
    {F_CMD, "EHLO client.test", "250-fake.test\r\n250 STARTTLS\r\n"},
    {F_CMD, "STARTTLS", "220 2.0.0 ready\r\n"},
    {F_TLS, NULL, NULL},
    {F_CMD, "EHLO client.test", "250 fake.test\r\n"},
    QUIT_END,
};

struct dane_case {
    const char *what;
    X509 *srv, *chain, *rec_cert; /* presented; sent after it; the record is made of rec_cert */
    EVP_PKEY *key;
    int usage, sel, mt;
    const char *base;  /* TLSA base domain */
    const char *extra; /* another reference name, or NULL */
    int want_ok, want_depth;
    enum smtpc_vfy want_vfy;
};

static void run_dane(const struct dane_case *dc, SSL_CTX *ctx)
{
    unsigned char data[4096];
    struct smtpc_tlsa rec;
    const char *names[1];
    struct run r;
    char *tr, *logs, want[64], sni[300];

    rec.usage = (unsigned char)dc->usage;
    rec.selector = (unsigned char)dc->sel;
    rec.mtype = (unsigned char)dc->mt;
    rec.len = tlsa_data(dc->rec_cert, dc->sel, dc->mt, data, sizeof(data));
    rec.data = data;
    srv_cert = dc->srv;
    srv_key = dc->key;
    srv_chain = dc->chain;
    fake_start(dane_script, 0);
    srv_cert = srv_chain = NULL;
    srv_key = NULL;
    run_init(&r, lport);
    r.opts.host = "mx.dane.test";
    r.opts.tls = TLS_MODE_DANE;
    r.opts.ssl_ctx = ctx;
    r.opts.tlsa = &rec;
    r.opts.ntlsa = 1;
    r.opts.dane_base = dc->base;
    if (dc->extra) {
        names[0] = dc->extra;
        r.opts.dane_names = names;
        r.opts.ndane_names = 1;
    }
    logs = with_log_capture(&r);
    tr = fake_wait();
    snprintf(sni, sizeof(sni), "S %s\n", dc->base);
    ok(strstr(tr, sni) != NULL, "%s: SNI is the TLSA base domain %s", dc->what, dc->base);
    snprintf(want, sizeof(want), "%d %d %d", dc->usage, dc->sel, dc->mt);
    if (dc->want_ok) {
        if (!is_int(r.open.status, SMTPC_OK, "%s: session opened", dc->what))
            diag("%s", r.open.text);
        ok(r.info.tls && r.info.tls_dane, "%s: DANE-authenticated TLS", dc->what);
        is_str(r.dane_match, want, "%s: the matching record is reported", dc->what);
        is_int(r.info.tls_dane_depth, dc->want_depth, "%s: matched at depth %d", dc->what,
               dc->want_depth);
        ok(!r.info.tls_verified, "%s: not reported as PKIX-verified", dc->what);
        ok(has_cmd(tr, "QUIT"), "%s: QUIT over TLS", dc->what);
    } else {
        char spki[65], hx[96];
        unsigned char md[EVP_MAX_MD_SIZE];

        tlsa_data(dc->srv, 1, 1, md, sizeof(md));
        hexstr(spki, md, 32);
        snprintf(hx, sizeof(hx), "spki-sha256=%s", spki);
        is_int(r.open.status, SMTPC_TEMP, "%s: temporary failure", dc->what);
        is_int(r.open.cls, SMTPC_CL_TLS, "%s: class tls", dc->what);
        is_int(r.open.step, SMTPC_STEP_STARTTLS, "%s: step starttls", dc->what);
        is_int(r.info.tls_vfy, dc->want_vfy, "%s: check ended %s", dc->what,
               smtpc_vfy_name(dc->want_vfy));
        ok(strstr(r.open.text, want) && strstr(r.open.text, "records tried"),
           "%s: the text names the records tried: %s", dc->what, r.open.text);
        ok(strstr(logs, want) && strstr(logs, hx) && strstr(logs, "subject=/CN=") &&
               strstr(logs, "depth "),
           "%s: the log shows the records, the certificate (subject, issuer, SPKI SHA-256) and "
           "the depth",
           dc->what);
        is_int(count_cmd(tr, "EHLO"), 1, "%s: no EHLO after the failed handshake", dc->what);
        ok(count_lines(tr, "A") == 1, "%s: no second (plaintext) connection", dc->what);
    }
    free(logs);
    free(tr);
}

static void test_dane(void)
{
    char *err = NULL;
    SSL_CTX *ctx = smtpc_tls_ctx_new(NULL, &err); /* the system CAs: none of ours */
    const struct dane_case cases[] = {
        {"DANE-EE 3 1 1", cert, NULL, cert, pkey, 3, 1, 1, "mx.dane.test", NULL, 1, 0, 0},
        {"DANE-EE 3 0 1", cert, NULL, cert, pkey, 3, 0, 1, "mx.dane.test", NULL, 1, 0, 0},
        {"DANE-EE 3 1 2", cert, NULL, cert, pkey, 3, 1, 2, "mx.dane.test", NULL, 1, 0, 0},
        {"DANE-EE 3 0 0 (full certificate)", cert, NULL, cert, pkey, 3, 0, 0, "mx.dane.test", NULL,
         1, 0, 0},
        {"DANE-EE ignores names and dates", old_cert, NULL, old_cert, leaf_key, 3, 1, 1,
         "mx.dane.test", NULL, 1, 0, 0},
        {"DANE-TA 2 0 1, name matches", leaf_cert, ca_cert, ca_cert, leaf_key, 2, 0, 1,
         "mx.dane.test", NULL, 1, 1, 0},
        {"DANE-TA 2 0 1, name matches the MX host name", leaf_cert, ca_cert, ca_cert, leaf_key, 2,
         0, 1, "alias.dane.test", "mx.dane.test", 1, 1, 0},
        {"DANE-TA 2 0 1, wrong name", leaf_cert, ca_cert, ca_cert, leaf_key, 2, 0, 1,
         "other.dane.test", NULL, 0, 0, SMTPC_VFY_HOST_MISMATCH},
        {"DANE-EE mismatch", cert, NULL, leaf_cert, pkey, 3, 1, 1, "mx.dane.test", NULL, 0, 0,
         SMTPC_VFY_DANE_NO_MATCH},
        {"DANE-TA of another CA", leaf_cert, ca_cert, cert, leaf_key, 2, 0, 1, "mx.dane.test", NULL,
         0, 0, SMTPC_VFY_DANE_NO_MATCH},
    };

    if (!ok(ctx != NULL, "DANE: client context"))
        diag("%s", err);
    for (size_t i = 0; i < nitems(cases); i++)
        run_dane(&cases[i], ctx);
    SSL_CTX_free(ctx);
}

/* DANE makes STARTTLS mandatory: not offered, or refused, is a temporary
 * TLS failure, and nothing goes in plaintext. */
static void test_dane_no_starttls(int refused)
{
    static const struct fstep not_offered[] = {GREET, EHLO_PIPE, QUIT_END};
    static const struct fstep refusing[] = {
        GREET,
        {F_CMD, "EHLO client.test", "250-fake.test\r\n250 STARTTLS\r\n"},
        {F_CMD, "STARTTLS", "454 4.7.0 not now\r\n"},
        QUIT_END,
    };
    const char *what = refused ? "DANE, STARTTLS refused" : "DANE, STARTTLS not offered";
    unsigned char data[64];
    struct smtpc_tlsa rec = {3, 1, 1, data, 0};
    struct run r;
    SSL_CTX *ctx;
    char *err = NULL, *tr;

    rec.len = tlsa_data(cert, 1, 1, data, sizeof(data));
    ctx = smtpc_tls_ctx_new(NULL, &err);
    make_msg(msg1, strlen(msg1));
    fake_start(refused ? refusing : not_offered, 0);
    run_init(&r, lport);
    r.opts.tls = TLS_MODE_DANE_ONLY;
    r.opts.ssl_ctx = ctx;
    r.opts.tlsa = &rec;
    r.opts.ntlsa = 1;
    set_txn(&r.txn[0], rcpts3, 3);
    r.ntxn = 1;
    run_go(&r);
    tr = fake_wait();
    is_int(r.open.status, SMTPC_TEMP, "%s: temporary", what);
    is_int(r.open.cls, SMTPC_CL_TLS, "%s: class tls", what);
    is_int(r.nres, 0, "%s: no transaction", what);
    ok(!has_cmd(tr, "MAIL"), "%s: nothing sent in plaintext", what);
    is_int(count_lines(tr, "A"), 1, "%s: no second connection", what);
    free(tr);
    SSL_CTX_free(ctx);
}

/* Only PKIX-TA/EE records (and unknown ones): ignored, so TLS without
 * authentication (as encrypt) - even though they match. */
static void test_dane_pkix_only(void)
{
    unsigned char d1[64], d2[64];
    struct smtpc_tlsa recs[3] = {{1, 1, 1, d1, 0}, {0, 0, 1, d2, 0}, {3, 1, 1, d1, 31}};
    struct run r;
    SSL_CTX *ctx;
    char *err = NULL, *tr;

    recs[0].len = tlsa_data(cert, 1, 1, d1, sizeof(d1));
    recs[1].len = tlsa_data(cert, 0, 1, d2, sizeof(d2));
    ctx = smtpc_tls_ctx_new(certfile, &err); /* PKIX would even verify */
    fake_start(dane_script, 0);
    run_init(&r, lport);
    r.opts.host = "localhost";
    r.opts.tls = TLS_MODE_DANE;
    r.opts.ssl_ctx = ctx;
    r.opts.tlsa = recs;
    r.opts.ntlsa = 3;
    run_go(&r);
    tr = fake_wait();
    if (!is_int(r.open.status, SMTPC_OK, "DANE, PKIX-only records: session opened"))
        diag("%s", r.open.text);
    ok(r.info.tls && !r.info.tls_dane && !r.info.tls_verified,
       "DANE, PKIX-only records: TLS, neither DANE nor verified (encrypt)");
    is_int(r.info.tls_vfy, SMTPC_VFY_NONE, "DANE, PKIX-only records: certificate not checked");
    free(tr);
    SSL_CTX_free(ctx);
}

static void test_tlsa_usable(void)
{
    ok(smtpc_tlsa_usable(3, 1, 1, 32), "usable: 3 1 1 with 32 bytes");
    ok(smtpc_tlsa_usable(2, 0, 2, 64), "usable: 2 0 2 with 64 bytes");
    ok(smtpc_tlsa_usable(3, 0, 0, 300), "usable: 3 0 0 full certificate");
    ok(!smtpc_tlsa_usable(3, 1, 1, 31), "unusable: SHA-256 of the wrong length");
    ok(!smtpc_tlsa_usable(1, 1, 1, 32), "unusable: PKIX-EE");
    ok(!smtpc_tlsa_usable(0, 0, 1, 32), "unusable: PKIX-TA");
    ok(!smtpc_tlsa_usable(4, 1, 1, 32), "unusable: unknown usage");
    ok(!smtpc_tlsa_usable(3, 2, 1, 32), "unusable: unknown selector");
    ok(!smtpc_tlsa_usable(3, 1, 3, 32), "unusable: unknown matching type");
    ok(!smtpc_tlsa_usable(3, 0, 0, 0), "unusable: empty data");
    is_str(smtpc_vfy_name(SMTPC_VFY_DANE_NO_MATCH), "dane-no-match", "vfy names");
}

/* tls_evaluate (MTA-STS testing): the check is made and reported, never
 * enforced. */
static void test_evaluate(const char *host, const char *ca, enum smtpc_vfy want)
{
    struct run r;
    SSL_CTX *ctx;
    char *err = NULL, *tr;

    ctx = smtpc_tls_ctx_new(ca, &err);
    fake_start(dane_script, 0);
    run_init(&r, lport);
    r.opts.host = host;
    r.opts.tls = TLS_MODE_MAY;
    r.opts.tls_evaluate = 1;
    r.opts.ssl_ctx = ctx;
    run_go(&r);
    tr = fake_wait();
    if (!is_int(r.open.status, SMTPC_OK, "evaluate %s: session opened", host))
        diag("%s", r.open.text);
    ok(r.info.tls, "evaluate %s: TLS in use", host);
    is_int(r.info.tls_vfy, want, "evaluate %s: check %s", host, smtpc_vfy_name(want));
    is_int(r.info.tls_verified, want == SMTPC_VFY_OK, "evaluate %s: verified only when it is",
           host);
    free(tr);
    SSL_CTX_free(ctx);
}

int main(void)
{
    const char *t = getenv("TMPDIR");

    signal(SIGPIPE, SIG_IGN);
    log_init("test", LOG_TO_STDERR);
    log_set_level(LOG_LV_WARN);
    snprintf(tmpdir, sizeof(tmpdir), "%s/smtpc.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(tmpdir) == NULL)
        log_panic("mkdtemp: %s", strerror(errno));
    make_cert();
    plan_lazy();

    test_cmds();
    test_plain();
    test_pipelining();
    test_bdat();
    test_mail_4xx();
    test_refused();
    test_connect_timeout();
    test_drop_mid_data();
    test_dotstuff();
    test_prefix();
    test_starttls_may();
    test_verify("localhost", 1);
    test_verify("wrong.example", 0);
    test_bad_ca_file();
    test_may_fallback();
    test_encrypt_not_offered();
    test_auth("PLAIN LOGIN", 1);
    test_auth("PLAIN", 0);
    test_auth("LOGIN", 1);
    test_auth_plaintext_refused();
    test_reuse();
    test_idle_closed();
    test_lost_before_txn();
    test_helo_fallback();
    test_smtputf8_and_size();
    test_timeout();
    test_greeting_554();
    test_dsn_params();
    make_chain();
    test_tlsa_usable();
    test_dane();
    test_dane_no_starttls(0);
    test_dane_no_starttls(1);
    test_dane_pkix_only();
    test_evaluate("localhost", certfile, SMTPC_VFY_OK);
    test_evaluate("wrong.example", certfile, SMTPC_VFY_HOST_MISMATCH);
    test_evaluate("localhost", NULL, SMTPC_VFY_NOT_TRUSTED);

    if (msg_fd > 0)
        close(msg_fd);
    X509_free(cert);
    EVP_PKEY_free(pkey);
    X509_free(ca_cert);
    X509_free(leaf_cert);
    X509_free(old_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(leaf_key);
    rm_tmpdir();
    return done_testing();
}
