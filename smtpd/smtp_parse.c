/*
 * smtp_parse - SMTP command lines to struct smtp_cmd (see smtp_parse.h).
 */
#include "smtp_parse.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"HELO", SMTP_V_HELO}, {"EHLO", SMTP_V_EHLO},         {"MAIL", SMTP_V_MAIL},
    {"RCPT", SMTP_V_RCPT}, {"DATA", SMTP_V_DATA},         {"BDAT", SMTP_V_BDAT},
    {"RSET", SMTP_V_RSET}, {"NOOP", SMTP_V_NOOP},         {"QUIT", SMTP_V_QUIT},
    {"VRFY", SMTP_V_VRFY}, {"EXPN", SMTP_V_EXPN},         {"HELP", SMTP_V_HELP},
    {"AUTH", SMTP_V_AUTH}, {"STARTTLS", SMTP_V_STARTTLS},
};

const char *smtp_verb_name(enum smtp_verb v)
{
    for (size_t i = 0; i < nitems(verbs); i++)
        if (verbs[i].verb == v)
            return verbs[i].name;
    return "UNKNOWN";
}

static int fail(struct smtp_cmd *cmd, int code, const char *enh, const char *text)
{
    cmd->code = code;
    cmd->enh = enh;
    cmd->text = text;
    return -1;
}

static int keyis(const char *k, size_t klen, const char *name)
{
    return strlen(name) == klen && ascii_ncasecmp(k, name, klen) == 0;
}

static int valis(const char *v, size_t vlen, const char *name)
{
    return v != NULL && strlen(name) == vlen && ascii_ncasecmp(v, name, vlen) == 0;
}

/* Text arguments (HELO, VRFY, HELP): printable ASCII, space, or UTF-8. */
static int text_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 32 && c != '\t')
            return 0;
        if (c == 127)
            return 0;
    }
    return smtp_utf8_valid((const unsigned char *)s, len);
}

static int parse_size(const char *v, size_t vlen, uint64_t *out)
{
    uint64_t n = 0;

    if (v == NULL || vlen == 0 || vlen > 20)
        return -1;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        if (n > (UINT64_MAX - 9) / 10)
            n = UINT64_MAX; /* saturate: "too big" either way */
        else
            n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = n;
    return 0;
}

static int copy_raw(char *dst, size_t dstsz, const char *v, size_t vlen)
{
    if (vlen + 1 > dstsz)
        return -1;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
    return 0;
}

/* ENVID: xtext whose decoding is printable ASCII, at most 100 chars. */
static int envid_ok(const char *v, size_t vlen)
{
    char dec[SMTP_ENVID_MAX + 1];
    int n = smtp_xtext_decode(v, vlen, dec, sizeof(dec));
    if (n <= 0)
        return 0;
    for (int i = 0; i < n; i++)
        if ((unsigned char)dec[i] < 32 || (unsigned char)dec[i] > 126)
            return 0;
    return 1;
}

/* ORCPT: addr-type ";" xtext; for type "utf-8" (RFC 6533) UTF-8 text. */
static int orcpt_ok(const char *v, size_t vlen)
{
    const char *semi = memchr(v, ';', vlen);
    size_t tlen, rest;
    char dec[SMTP_ORCPT_MAX + 1];

    if (semi == NULL || semi == v)
        return 0;
    tlen = (size_t)(semi - v);
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return 0;
    }
    rest = vlen - tlen - 1;
    if (rest == 0)
        return 0;
    if (valis(v, tlen, "utf-8"))
        return rest <= SMTP_ORCPT_RAW_MAX && smtp_utf8_valid((const unsigned char *)semi + 1, rest);
    return smtp_xtext_decode(semi + 1, rest, dec, sizeof(dec)) > 0;
}

static int parse_mail_params(const char *p, const char *end, struct smtp_cmd *cmd)
{
    const char *k, *v, *why;
    size_t kl, vl;
    int r;

    /* The value charset depends on SMTPUTF8, which may come last. */
    const char *scan = p;
    while ((r = smtp_param_next(&scan, end, 1, &k, &kl, &v, &vl, &why)) == 1)
        if (keyis(k, kl, "SMTPUTF8"))
            cmd->smtputf8 = 1;
    if (r < 0)
        return fail(cmd, 501, "5.5.4", "Syntax error in MAIL FROM parameters");

    while ((r = smtp_param_next(&p, end, cmd->smtputf8, &k, &kl, &v, &vl, &why)) == 1) {
        if (keyis(k, kl, "SIZE")) {
            if (parse_size(v, vl, &cmd->size) != 0)
                return fail(cmd, 501, "5.5.4", "Bad SIZE parameter");
            cmd->has_size = 1;
        } else if (keyis(k, kl, "BODY")) {
            if (valis(v, vl, "7BIT"))
                cmd->body = SMTP_BODY_7BIT;
            else if (valis(v, vl, "8BITMIME"))
                cmd->body = SMTP_BODY_8BITMIME;
            else
                return fail(cmd, 501, "5.5.4", "Unsupported BODY type (7BIT or 8BITMIME)");
        } else if (keyis(k, kl, "SMTPUTF8")) {
            if (v != NULL)
                return fail(cmd, 501, "5.5.4", "SMTPUTF8 takes no value");
        } else if (keyis(k, kl, "RET")) {
            int ret = dsn_ret_parse(v, vl);
            if (cmd->ret != DSN_RET_NONE)
                return fail(cmd, 501, "5.5.4", "Duplicate RET parameter");
            if (ret < 0)
                return fail(cmd, 501, "5.5.4", "Bad RET parameter (FULL or HDRS)");
            cmd->ret = (enum dsn_ret)ret;
        } else if (keyis(k, kl, "ENVID")) {
            if (cmd->envid[0] != '\0')
                return fail(cmd, 501, "5.5.4", "Duplicate ENVID parameter");
            if (v == NULL || !envid_ok(v, vl) || copy_raw(cmd->envid, sizeof(cmd->envid), v, vl))
                return fail(cmd, 501, "5.5.4", "Bad ENVID parameter");
        } else if (keyis(k, kl, "AUTH")) {
            /* RFC 4954 AUTH=<mailbox>: accepted, not trusted, not kept. */
            if (v == NULL || !smtp_xtext_valid(v, vl))
                return fail(cmd, 501, "5.5.4", "Bad AUTH parameter");
        } else {
            return fail(cmd, 555, "5.5.4", "Unsupported MAIL FROM parameter");
        }
    }
    if (r < 0)
        return fail(cmd, 501, "5.5.4", "Syntax error in MAIL FROM parameters");
    return 0;
}

static int parse_rcpt_params(const char *p, const char *end, struct smtp_cmd *cmd, int utf8)
{
    const char *k, *v, *why;
    size_t kl, vl;
    int r;

    while ((r = smtp_param_next(&p, end, utf8, &k, &kl, &v, &vl, &why)) == 1) {
        if (keyis(k, kl, "NOTIFY")) {
            if (cmd->notify != 0 || dsn_notify_parse(v, vl, &cmd->notify) != 0)
                return fail(cmd, 501, "5.5.4", "Bad NOTIFY parameter");
        } else if (keyis(k, kl, "ORCPT")) {
            if (cmd->orcpt[0] != '\0' || v == NULL || !orcpt_ok(v, vl) ||
                copy_raw(cmd->orcpt, sizeof(cmd->orcpt), v, vl) != 0)
                return fail(cmd, 501, "5.5.4", "Bad ORCPT parameter");
        } else {
            return fail(cmd, 555, "5.5.4", "Unsupported RCPT TO parameter");
        }
    }
    if (r < 0)
        return fail(cmd, 501, "5.5.4", "Syntax error in RCPT TO parameters");
    return 0;
}

/* "FROM:" / "TO:" then optional spaces then a path, then parameters. */
static int parse_path_cmd(const char *p, const char *end, const char *kw, struct smtp_cmd *cmd)
{
    size_t kwlen = strlen(kw);
    int is_mail = cmd->verb == SMTP_V_MAIL;
    const char *why;
    int n;

    if ((size_t)(end - p) < kwlen || ascii_ncasecmp(p, kw, kwlen) != 0)
        return fail(cmd, 501, "5.5.4",
                    is_mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>");
    p += kwlen;
    while (p < end && *p == ' ')
        p++; /* "MAIL FROM: <a>" is common enough to accept */
    if (!is_mail && end - p >= 12 && ascii_ncasecmp(p, "<postmaster>", 12) == 0) {
        /* RFC 5321 4.1.1.3: the one recipient that needs no domain */
        cmd->postmaster = 1;
        strlcpy_p(cmd->addr, "postmaster", sizeof(cmd->addr));
        n = 12;
    } else {
        n = smtp_path_parse(p, (size_t)(end - p), is_mail ? SMTP_PATH_NULL_OK : 0, cmd->addr,
                            sizeof(cmd->addr), &cmd->addr_flags, &why);
    }
    if (n < 0)
        return fail(cmd, 501, is_mail ? "5.1.7" : "5.1.3",
                    is_mail ? "Bad sender address syntax" : "Bad recipient address syntax");
    p += n;
    if (p < end && *p != ' ')
        return fail(cmd, 501, "5.5.4", "Syntax error after the address");
    return is_mail ? parse_mail_params(p, end, cmd) : parse_rcpt_params(p, end, cmd, 1);
}

static int no_args(struct smtp_cmd *cmd, const char *p, const char *end, const char *syntax)
{
    while (p < end && *p == ' ')
        p++;
    if (p != end)
        return fail(cmd, 501, "5.5.4", syntax);
    return 0;
}

int smtp_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
    const char *end = line + len, *p = line, *v;
    size_t vlen;

    memset(cmd, 0, sizeof(*cmd));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 32 && c != '\t') || c == 127)
            return fail(cmd, 500, "5.5.2", "Error: control character in command");
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    v = p;
    while (p < end && *p != ' ')
        p++;
    vlen = (size_t)(p - v);
    if (vlen == 0)
        return fail(cmd, 500, "5.5.2", "Error: empty command");
    for (size_t i = 0; i < nitems(verbs); i++) {
        if (strlen(verbs[i].name) == vlen && ascii_ncasecmp(v, verbs[i].name, vlen) == 0) {
            cmd->verb = verbs[i].verb;
            break;
        }
    }
    if (cmd->verb == SMTP_V_UNKNOWN)
        return fail(cmd, 500, "5.5.2", "Error: command not recognized");
    if (p < end)
        p++; /* the space after the verb */
    /* Trailing spaces are a common client habit: ignore them. */
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;

    switch (cmd->verb) {
    case SMTP_V_HELO:
    case SMTP_V_EHLO:
        while (p < end && *p == ' ')
            p++;
        cmd->arg = p;
        while (p < end && *p != ' ')
            p++;
        cmd->arg_len = (size_t)(p - cmd->arg);
        if (cmd->arg_len == 0)
            return fail(cmd, 501, "5.5.4",
                        cmd->verb == SMTP_V_EHLO ? "Syntax: EHLO hostname"
                                                 : "Syntax: HELO hostname");
        if (cmd->arg_len > SMTP_DOMAIN_MAX || !text_ok(cmd->arg, cmd->arg_len))
            return fail(cmd, 501, "5.5.4", "Bad host name in HELO/EHLO");
        return 0; /* anything after the name is ignored, as RFC 5321 allows */
    case SMTP_V_MAIL:
        return parse_path_cmd(p, end, "FROM:", cmd);
    case SMTP_V_RCPT:
        return parse_path_cmd(p, end, "TO:", cmd);
    case SMTP_V_DATA:
        return no_args(cmd, p, end, "Syntax: DATA");
    case SMTP_V_RSET:
        return no_args(cmd, p, end, "Syntax: RSET");
    case SMTP_V_QUIT:
        return no_args(cmd, p, end, "Syntax: QUIT");
    case SMTP_V_STARTTLS:
        return no_args(cmd, p, end, "Syntax: STARTTLS");
    case SMTP_V_NOOP:
    case SMTP_V_HELP:
    case SMTP_V_VRFY:
    case SMTP_V_EXPN:
    case SMTP_V_BDAT:
        cmd->arg = p;
        cmd->arg_len = (size_t)(end - p);
        if (!text_ok(p, cmd->arg_len))
            return fail(cmd, 501, "5.5.4", "Bad argument");
        if (cmd->verb == SMTP_V_VRFY && cmd->arg_len == 0)
            return fail(cmd, 501, "5.5.4", "Syntax: VRFY address");
        return 0;
    case SMTP_V_AUTH:
        cmd->arg = p;
        while (p < end && *p != ' ')
            p++;
        cmd->arg_len = (size_t)(p - cmd->arg);
        if (cmd->arg_len == 0)
            return fail(cmd, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        while (p < end && *p == ' ')
            p++;
        if (p < end) {
            cmd->arg2 = p;
            while (p < end && *p != ' ')
                p++;
            cmd->arg2_len = (size_t)(p - cmd->arg2);
            if (p != end)
                return fail(cmd, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        }
        return 0;
    case SMTP_V_UNKNOWN:
        break;
    }
    return fail(cmd, 500, "5.5.2", "Error: command not recognized");
}
