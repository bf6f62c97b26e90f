/*
 * mail_dsn_param - the RFC 3461 NOTIFY and RET values (common/mail/dsn_param.c):
 * every accepted spelling, every refused one, and format/parse round trips
 * over all bit sets.
 */
#include <string.h>

#include "mail/dsn_param.h"
#include "tap.h"

static int notify(const char *s, unsigned *bits)
{
    return dsn_notify_parse(s, strlen(s), bits);
}

static void accepted(void)
{
    static const struct {
        const char *text;
        unsigned bits;
    } cases[] = {
        {"NEVER", DSN_NOTIFY_NEVER},
        {"never", DSN_NOTIFY_NEVER},
        {"SUCCESS", DSN_NOTIFY_SUCCESS},
        {"FAILURE", DSN_NOTIFY_FAILURE},
        {"DELAY", DSN_NOTIFY_DELAY},
        {"delay,Success", DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS},
        {"SUCCESS,FAILURE,DELAY", DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY},
        {"FAILURE,FAILURE", DSN_NOTIFY_FAILURE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned bits = 0;
        is_int(notify(cases[i].text, &bits), 0, "NOTIFY=%s accepted", cases[i].text);
        is_int(bits, cases[i].bits, "NOTIFY=%s bits", cases[i].text);
    }
}

static void refused(void)
{
    static const char *const bad[] = {
        "",
        ",",
        "NEVER,",
        ",NEVER",
        "SUCCESS,",
        "SUCCESS,,DELAY",
        "NEVER,SUCCESS",
        "FAILURE,NEVER",
        "SUCCES",
        "SUCCESSX",
        "DELAY FAILURE",
        "-",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned bits = 0x77;
        is_int(notify(bad[i], &bits), -1, "NOTIFY=\"%s\" refused", bad[i]);
        is_int(bits, 0x77, "NOTIFY=\"%s\" leaves bits alone", bad[i]);
    }
    unsigned bits = 0;
    is_int(dsn_notify_parse(NULL, 0, &bits), -1, "NOTIFY without a value refused");
    /* the length bounds the text: "DELAYX" cut to 5 bytes is DELAY */
    is_int(dsn_notify_parse("DELAYX", 5, &bits), 0, "length bounds the value");
    is_int(bits, DSN_NOTIFY_DELAY, "and only DELAY is read");
}

static void round_trips(void)
{
    char buf[DSN_NOTIFY_TEXT_MAX];

    is_str(dsn_notify_format(0, buf, sizeof(buf)), "", "no bits: empty text");
    is_str(dsn_notify_format(DSN_NOTIFY_NEVER, buf, sizeof(buf)), "NEVER", "NEVER");
    is_str(dsn_notify_format(DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS, buf, sizeof(buf)),
           "SUCCESS,DELAY", "canonical order");
    for (unsigned b = 1; b < 16; b++) {
        unsigned back = 0;
        if ((b & DSN_NOTIFY_NEVER) && b != DSN_NOTIFY_NEVER)
            continue; /* not a value NOTIFY can hold */
        dsn_notify_format(b, buf, sizeof(buf));
        is_int(notify(buf, &back), 0, "\"%s\" parses back", buf);
        is_int(back, b, "\"%s\" gives the same bits", buf);
    }
    char tiny[8];
    dsn_notify_format(DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, tiny, sizeof(tiny));
    is_str(tiny, "SUCCESS", "a short buffer holds whole words only");
}

static void ret(void)
{
    is_int(dsn_ret_parse("FULL", 4), DSN_RET_FULL, "RET=FULL");
    is_int(dsn_ret_parse("hdrs", 4), DSN_RET_HDRS, "RET=hdrs");
    is_int(dsn_ret_parse("HDR", 3), -1, "RET=HDR refused");
    is_int(dsn_ret_parse("FULLY", 5), -1, "RET=FULLY refused");
    is_int(dsn_ret_parse(NULL, 0), -1, "RET without a value refused");
    is_str(dsn_ret_name(DSN_RET_FULL), "FULL", "name of FULL");
    is_str(dsn_ret_name(DSN_RET_HDRS), "HDRS", "name of HDRS");
    is_str(dsn_ret_name(DSN_RET_NONE), "", "no RET: empty name");
}

int main(void)
{
    plan_lazy();
    accepted();
    refused();
    round_trips();
    ret();
    return done_testing();
}
