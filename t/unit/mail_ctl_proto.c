/*
 * Tests for common/mail/ctl_proto and ctl_client: control requests and
 * replies survive encode/decode (flags, words, empty words, empty argv,
 * empty output); the decoders refuse every truncation, a trailing byte,
 * an embedded NUL and more than CTL_MAX_ARGS words (told apart from other
 * errors). The client, against a server forked on a socket in a
 * temporary directory: a whole exchange, a reply of the wrong type, a
 * server that hangs up, no server, a path too long; and the texts its
 * callers print.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mail/ctl_client.h"
#include "mail/ctl_proto.h"
#include "mail/proto.h"
#include "base/ipc.h"
#include "tap.h"
#include "base/util.h"

static char W0[] = "show", W1[] = "queue", W2[] = "", W3[] = "--domain";
static char *words[] = {W0, W1, W2, W3, NULL};

static void encode_req(struct ipc_w *w, uint32_t flags, size_t argc, char **argv)
{
    struct ctl_req q = {flags, argc, argv};

    ipc_w_init(w);
    ctl_req_encode(w, &q);
}

static void test_req_roundtrip(void)
{
    struct ctl_req d;
    struct ipc_w w;

    encode_req(&w, CTL_F_JSON, 4, words);
    ok(ctl_req_decode(w.p, w.len, &d) == CTL_DEC_OK, "request decodes");
    is_int(d.flags, CTL_F_JSON, "flags");
    is_int(d.argc, 4, "four words");
    if (d.argc == 4) {
        is_str(d.argv[0], "show", "word 0");
        is_str(d.argv[1], "queue", "word 1");
        is_str(d.argv[2], "", "an empty word survives");
        is_str(d.argv[3], "--domain", "word 3");
        ok(d.argv[4] == NULL, "argv is NULL-terminated");
        ok(d.argv[0] != W0, "decoded words are copies");
    }
    ctl_req_free(&d);
    ok(d.argv == NULL && d.argc == 0, "free leaves the request empty");
    ipc_w_free(&w);

    encode_req(&w, 0, 0, NULL);
    is_int(w.len, 8, "empty argv: flags and argc only");
    ok(ctl_req_decode(w.p, w.len, &d) == CTL_DEC_OK, "empty argv decodes");
    is_int(d.argc, 0, "no words");
    ok(d.argv != NULL && d.argv[0] == NULL, "argv is an empty NULL-terminated list");
    ctl_req_free(&d);
    ipc_w_free(&w);
}

static void test_rep_roundtrip(void)
{
    struct ctl_rep r;
    struct ipc_w w;

    ipc_w_init(&w);
    ctl_rep_encode(&w, 2, "usage: log level basic|detailed|debug\n");
    ok(ctl_rep_decode(w.p, w.len, &r) == CTL_DEC_OK, "reply decodes");
    is_int(r.code, 2, "exit code");
    is_str(r.output, "usage: log level basic|detailed|debug\n", "output");
    ctl_rep_free(&r);
    ok(r.output == NULL, "free leaves the reply empty");
    ipc_w_free(&w);

    ipc_w_init(&w);
    ctl_rep_encode(&w, 0, NULL);
    ok(ctl_rep_decode(w.p, w.len, &r) == CTL_DEC_OK, "reply with no output decodes");
    is_int(r.code, 0, "exit code 0");
    is_str(r.output, "", "NULL output travels as \"\"");
    ctl_rep_free(&r);
    ipc_w_free(&w);
}

/* Every proper prefix and body + one byte fail; returns how many did not. */
static size_t req_truncations_ok(const struct ipc_w *w)
{
    struct ctl_req d;
    size_t bad = 0;
    uint8_t *longer = xmalloc(w->len + 1);

    for (size_t n = 0; n < w->len; n++)
        if (ctl_req_decode(w->p, n, &d) != CTL_DEC_ERR || d.argv != NULL || d.argc != 0) {
            bad++;
            ctl_req_free(&d);
        }
    memcpy(longer, w->p, w->len);
    longer[w->len] = 0;
    if (ctl_req_decode(longer, w->len + 1, &d) != CTL_DEC_ERR) {
        bad++;
        ctl_req_free(&d);
    }
    free(longer);
    return bad;
}

static void test_req_malformed(void)
{
    struct ctl_req d;
    struct ipc_w w;
    char **many = xcalloc(CTL_MAX_ARGS + 2, sizeof(char *));

    encode_req(&w, CTL_F_JSON, 4, words);
    is_int(req_truncations_ok(&w), 0, "no truncation of a request decodes (%zu tried)", w.len);
    ipc_w_free(&w);
    encode_req(&w, 0, 0, NULL);
    is_int(req_truncations_ok(&w), 0, "nor of an empty request, nor with a byte more");
    ipc_w_free(&w);

    for (size_t i = 0; i < CTL_MAX_ARGS + 1; i++)
        many[i] = W0;
    encode_req(&w, 0, CTL_MAX_ARGS, many);
    ok(ctl_req_decode(w.p, w.len, &d) == CTL_DEC_OK, "CTL_MAX_ARGS words decode");
    is_int(d.argc, CTL_MAX_ARGS, "all of them");
    ctl_req_free(&d);
    ipc_w_free(&w);
    encode_req(&w, 0, CTL_MAX_ARGS + 1, many);
    ok(ctl_req_decode(w.p, w.len, &d) == CTL_DEC_TOO_MANY, "one word more: CTL_DEC_TOO_MANY");
    ok(d.argv == NULL && d.argc == 0, "and the request is left empty");
    ipc_w_free(&w);
    ipc_w_init(&w);
    ipc_w_u32(&w, 0);
    ipc_w_u32(&w, 0xffffffffu);
    ok(ctl_req_decode(w.p, w.len, &d) == CTL_DEC_TOO_MANY,
       "a huge argc is refused before allocating");
    ipc_w_free(&w);
    free(many);

    /* "a\0b": length 3, then a NUL inside the string. */
    ipc_w_init(&w);
    ipc_w_u32(&w, 0);
    ipc_w_u32(&w, 1);
    ipc_w_u32(&w, 3);
    ipc_w_u8(&w, 'a');
    ipc_w_u8(&w, 0);
    ipc_w_u8(&w, 'b');
    ipc_w_u8(&w, 0);
    ok(ctl_req_decode(w.p, w.len, &d) == CTL_DEC_ERR, "embedded NUL in a word refused");
    ipc_w_free(&w);
    /* a word without its terminating NUL */
    ipc_w_init(&w);
    ipc_w_u32(&w, 0);
    ipc_w_u32(&w, 1);
    ipc_w_bytes(&w, "ab", 2);
    ipc_w_u8(&w, 'c');
    ok(ctl_req_decode(w.p, w.len, &d) == CTL_DEC_ERR, "word not NUL-terminated refused");
    ipc_w_free(&w);
}

static void test_rep_malformed(void)
{
    struct ctl_rep r;
    struct ipc_w w;
    size_t bad = 0;
    uint8_t *longer;

    ipc_w_init(&w);
    ctl_rep_encode(&w, 1, "qmgr did not answer\n");
    for (size_t n = 0; n < w.len; n++)
        if (ctl_rep_decode(w.p, n, &r) != CTL_DEC_ERR) {
            bad++;
            ctl_rep_free(&r);
        }
    is_int(bad, 0, "no truncation of a reply decodes (%zu tried)", w.len);
    ok(r.output == NULL, "a refused reply is left empty");
    longer = xmalloc(w.len + 1);
    memcpy(longer, w.p, w.len);
    longer[w.len] = '\n';
    ok(ctl_rep_decode(longer, w.len + 1, &r) == CTL_DEC_ERR, "reply: trailing byte refused");
    free(longer);
    ipc_w_free(&w);

    ipc_w_init(&w);
    ipc_w_u32(&w, 0);
    ipc_w_u32(&w, 2);
    ipc_w_u8(&w, 0);
    ipc_w_u8(&w, 'x');
    ipc_w_u8(&w, 0);
    ok(ctl_rep_decode(w.p, w.len, &r) == CTL_DEC_ERR, "reply: embedded NUL refused");
    ipc_w_free(&w);
}

/* The client against a one-shot server; how the server behaves: */
enum serve { SERVE_ECHO, SERVE_WRONG_TYPE, SERVE_HANG_UP };

/* Answer one request: code = argc, output = the words joined by spaces. */
static void serve_one(int lfd, enum serve how)
{
    struct ipc_frame fr;
    struct ctl_req q;
    struct ipc_w w;
    struct buf out;
    uint8_t *body;
    int cfd = accept(lfd, NULL, NULL), rfd;

    if (cfd < 0 || ipc_recv_blocking(cfd, &fr, &body, &rfd, 5000) < 0)
        _exit(1);
    if (how == SERVE_HANG_UP)
        _exit(0);
    if (fr.type != IMSG_CTL_REQ || ctl_req_decode(body, fr.len, &q) != CTL_DEC_OK)
        _exit(1);
    buf_init(&out);
    buf_printf(&out, "flags=%u:", q.flags);
    for (size_t i = 0; i < q.argc; i++)
        buf_printf(&out, " %s", q.argv[i]);
    ipc_w_init(&w);
    ctl_rep_encode(&w, (uint32_t)q.argc, out.data);
    ipc_send_blocking(cfd, how == SERVE_WRONG_TYPE ? IMSG_STATUS_REP : IMSG_CTL_REP, fr.id, -1, w.p,
                      w.len);
    _exit(0);
}

static int call_server(const char *path, enum serve how, struct ctl_rep *rep,
                       struct ctl_client_err *err)
{
    struct sockaddr_un sun;
    struct ctl_req q = {CTL_F_JSON, 2, words};
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0), rc, st;
    pid_t pid;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strlcpy_p(sun.sun_path, path, sizeof(sun.sun_path));
    unlink(path);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(lfd, 1) != 0)
        return -2;
    pid = fork();
    if (pid == 0)
        serve_one(lfd, how);
    close(lfd);
    rc = ctl_client_call(path, &q, 5000, rep, err);
    waitpid(pid, &st, 0);
    unlink(path);
    return rc;
}

static void test_client(void)
{
    char dir[] = "/tmp/postern-ctl-XXXXXX", *path, *msg, longpath[200];
    struct ctl_rep rep;
    struct ctl_client_err err;
    struct ctl_req q = {0, 1, words};

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp: %s", strerror(errno));
        return;
    }
    path = xasprintf("%s/control.sock", dir);

    ok(call_server(path, SERVE_ECHO, &rep, &err) == 0, "client: one request, one reply");
    is_int(rep.code, 2, "exit code from the reply");
    is_str(rep.output, "flags=1: show queue", "flags and words reached the server");
    ctl_rep_free(&rep);

    ok(call_server(path, SERVE_WRONG_TYPE, &rep, &err) == -1, "a reply of another type fails");
    is_int(err.step, CTL_CLIENT_REPLY, "at the reply step");
    ok(rep.output == NULL, "with no reply to free");
    msg = ctl_client_strerror(&err, path, "master");
    is_str(msg, "malformed answer from master", "and says so");
    free(msg);

    ok(call_server(path, SERVE_HANG_UP, &rep, &err) == -1, "a server that hangs up fails");
    is_int(err.step, CTL_CLIENT_RECV, "at the receive step");
    is_int(err.sys, ECONNRESET, "as end of file");
    ok(ctl_client_refused(&err), "which looks like master refusing the user");
    msg = ctl_client_strerror(&err, path, "postern's master");
    ok(strncmp(msg, "no answer from postern's master: ", 33) == 0, "text: %s", msg);
    free(msg);

    ok(ctl_client_call(path, &q, 1000, &rep, &err) == -1, "no server: fails");
    is_int(err.step, CTL_CLIENT_CONNECT, "at connect");
    is_int(err.sys, ENOENT, "ENOENT");
    ok(!ctl_client_refused(&err), "not a refusal");
    msg = ctl_client_strerror(&err, path, "master");
    char *want = xasprintf("postern is not running (no master listening on %s)", path);
    is_str(msg, want, "says postern is not running");
    free(want);
    free(msg);

    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    ok(ctl_client_call(longpath, &q, 1000, &rep, &err) == -1, "path too long: fails");
    is_int(err.step, CTL_CLIENT_PATH, "before connecting");
    msg = ctl_client_strerror(&err, longpath, "master");
    ok(strncmp(msg, "control socket path too long: /xxx", 34) == 0, "and says so");
    free(msg);

    err = (struct ctl_client_err){CTL_CLIENT_CONNECT, EACCES};
    ok(ctl_client_refused(&err), "connect EACCES is a refusal");
    msg = ctl_client_strerror(&err, "/s", "master");
    is_str(msg, "cannot reach master at /s: Permission denied", "connect text");
    free(msg);
    err = (struct ctl_client_err){CTL_CLIENT_SEND, EPIPE};
    ok(ctl_client_refused(&err), "send EPIPE is a refusal");
    msg = ctl_client_strerror(&err, "/s", "master");
    is_str(msg, "sending to master: Broken pipe", "send text");
    free(msg);
    err = (struct ctl_client_err){CTL_CLIENT_RECV, ETIMEDOUT};
    ok(!ctl_client_refused(&err), "a timeout is not a refusal");

    rmdir(dir);
    free(path);
}

int main(void)
{
    plan_lazy();
    test_req_roundtrip();
    test_rep_roundtrip();
    test_req_malformed();
    test_rep_malformed();
    test_client();
    return done_testing();
}
