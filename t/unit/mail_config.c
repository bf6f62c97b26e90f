/*
 * Unit tests for common/mail/config: the main.cf grammar, typed values,
 * $name expansion, defaults, and the file:line of every kind of error.
 */
#include <stdlib.h>
#include <string.h>

#include "mail/config.h"
#include "tap.h"
#include "base/util.h"

static struct config cfg;

static int load(const char *text, char **err)
{
    *err = NULL;
    return config_load_text(&cfg, "/etc/postern", "/etc/postern/main.cf", text, NULL, err);
}

/* The text must fail with exactly this error message. */
static void bad(const char *text, const char *want, const char *name)
{
    char *err = NULL;
    int r = load(text, &err);

    ok(r == -1, "%s: refused", name);
    is_str(err, want, "%s: message", name);
    free(err);
}

static void test_good_file(void)
{
    char *err = NULL;
    const char *text = "# a comment\n"
                       "myhostname = mx1.example.com\n"
                       "\n"
                       "smtpd_listen = 127.0.0.1:2525,\n"
                       "    [::1]:2525\n"
                       "  # comment lines inside a value are skipped\n"
                       "\t127.0.0.2:25\n"
                       "message_size_limit = 10M\n"
                       "retry_delay = 1h30m\n"
                       "smtpd_auth_plaintext_loopback = yes\n"
                       "tls = encrypt\n"
                       "queue_directory = spool\n"
                       "log_file = /var/log/postern.log\n";

    if (!ok(load(text, &err) == 0, "good file loads"))
        diag("%s", err);
    is_str(cfg_str(&cfg, P_myhostname), "mx1.example.com", "string value");
    char *const *l = cfg_list(&cfg, P_smtpd_listen);
    ok(l[0] && l[1] && l[2] && !l[3], "continuation lines join a 3-word list");
    is_str(l[1], "[::1]:2525", "list word from a continuation line");
    is_str(l[2], "127.0.0.2:25", "tab-indented continuation");
    is_int(cfg_num(&cfg, P_message_size_limit), 10 * 1048576, "size with M suffix");
    is_int(cfg_num(&cfg, P_retry_delay), 5400, "compound duration 1h30m");
    is_int(cfg_num(&cfg, P_smtpd_auth_plaintext_loopback), 1, "bool yes");
    is_str(cfg_enum(&cfg, P_tls), "encrypt", "enum value");
    is_str(cfg_str(&cfg, P_queue_directory), "/etc/postern/spool", "relative path made absolute");
    is_str(cfg_str(&cfg, P_log_file), "/var/log/postern.log", "absolute path kept");
    ok(cfg.set[P_myhostname] && !cfg.set[P_retry_delay_max], "set[] marks what the file set");
    config_free(&cfg);
}

static void test_defaults(void)
{
    char *err = NULL;

    ok(load("", &err) == 0, "empty file loads");
    is_int(cfg_num(&cfg, P_max_deliveries), 10, "default max_deliveries 10");
    is_int(cfg_num(&cfg, P_messages_per_connection), 5, "default messages_per_connection 5");
    is_int(cfg_num(&cfg, P_retry_delay), 300, "default retry_delay 5m");
    is_int(cfg_num(&cfg, P_max_queue_lifetime), 5 * 86400, "default max_queue_lifetime 5d");
    is_str(cfg_enum(&cfg, P_gateway_policy), "undelivered", "default gateway_policy");
    is_str(cfg_enum(&cfg, P_tls), "may", "default tls");
    is_str(cfg_str(&cfg, P_queue_directory), "/var/spool/postern", "default spool");
    is_str(cfg_list(&cfg, P_mynetworks)[0], "127.0.0.0/8", "default mynetworks");
    is_int(cfg_num(&cfg, P_direct_port), 25, "default direct_port");
    config_free(&cfg);
}

static void test_expansion(void)
{
    char *err = NULL;

    if (!ok(load("myhostname = mx.example.org\n"
                 "log_file = /var/log/$myhostname.log\n"
                 "tls_cert_file = /etc/ssl/${myhostname}.pem\n"
                 "smtpd_users_map = /etc/u$$5\n",
                 &err) == 0,
            "expansion loads"))
        diag("%s", err);
    is_str(cfg_str(&cfg, P_log_file), "/var/log/mx.example.org.log", "$name expands");
    is_str(cfg_str(&cfg, P_tls_cert_file), "/etc/ssl/mx.example.org.pem", "${name} expands");
    is_str(cfg_str(&cfg, P_smtpd_users_map), "/etc/u$5", "$$ is a literal $");
    config_free(&cfg);

    ok(load("log_file = /l/$message_size_limit\nmessage_size_limit = 1M\n", &err) == 0,
       "a reference to a parameter set later in the file works");
    is_str(cfg_str(&cfg, P_log_file), "/l/1M", "late value used");
    config_free(&cfg);

    ok(load("log_file = $retry_delay\n", &err) == 0, "reference to an unset parameter");
    is_str(cfg_str(&cfg, P_log_file), "/etc/postern/5m", "expands to its default");
    config_free(&cfg);

    bad("myhostname = a\nlog_file = $log_file\n",
        "/etc/postern/main.cf:2: $name expansion nested too deep (a parameter refers to itself?)",
        "self reference");
    bad("log_file = $nosuchthing\n",
        "/etc/postern/main.cf:1: $nosuchthing refers to an unknown "
        "parameter",
        "unknown reference");
    bad("log_file = ${myhostname\n", "/etc/postern/main.cf:1: unterminated '${' in value",
        "unterminated ${");
}

static void test_errors(void)
{
    bad("myhostname = x\nmax_delivery = 3\n",
        "/etc/postern/main.cf:2: unknown parameter 'max_delivery' (did you mean "
        "'max_deliveries'?)",
        "unknown name with suggestion");
    bad("\n\nfrobnicate_everything = 1\n",
        "/etc/postern/main.cf:3: unknown parameter 'frobnicate_everything'", "unknown name");
    bad("max_deliveries = ten\n",
        "/etc/postern/main.cf:1: bad value 'ten' for max_deliveries: expected a whole number",
        "bad integer");
    bad("max_deliveries = 0\n",
        "/etc/postern/main.cf:1: value '0' for max_deliveries is out of range (1 to 10000)",
        "integer out of range");
    bad("# c\nretry_delay = 5x\n",
        "/etc/postern/main.cf:2: bad duration '5x' for retry_delay: expected a number with an "
        "optional suffix s, m, h, d or w (e.g. 30s, 5m, 1h30m)",
        "bad duration suffix");
    bad("message_size_limit = 10Q\n",
        "/etc/postern/main.cf:1: bad size '10Q' for message_size_limit: expected a number with "
        "an optional suffix k, M or G (e.g. 512k, 25M)",
        "bad size suffix");
    bad("message_size_limit = 10kM\n",
        "/etc/postern/main.cf:1: bad size '10kM' for message_size_limit: expected a number with "
        "an optional suffix k, M or G (e.g. 512k, 25M)",
        "two size suffixes");
    bad("tls = sometimes\n",
        "/etc/postern/main.cf:1: bad value 'sometimes' for tls: expected none | may | encrypt | "
        "verify | dane | dane-only",
        "bad enum");
    bad("smtpd_auth_plaintext_loopback = perhaps\n",
        "/etc/postern/main.cf:1: bad value 'perhaps' for smtpd_auth_plaintext_loopback: "
        "expected yes or no",
        "bad bool");
    bad("  smtpd_listen = 127.0.0.1:25\n",
        "/etc/postern/main.cf:1: continuation line with no parameter before it (a line that "
        "starts with white space continues the previous value)",
        "continuation at the start");
    bad("myhostname = a\n\n   more\n",
        "/etc/postern/main.cf:3: continuation line with no parameter before it (a line that "
        "starts with white space continues the previous value)",
        "continuation after a blank line (unterminated continuation)");
    bad("# comment\n    continued\n",
        "/etc/postern/main.cf:2: continuation line with no parameter before it (a line that "
        "starts with white space continues the previous value)",
        "continuation after a comment");
    bad("myhostname\n", "/etc/postern/main.cf:1: expected 'name = value', got 'myhostname'",
        "missing =");
    bad("myhostname = a\nmyhostname = b\n",
        "/etc/postern/main.cf:2: 'myhostname' is already set at /etc/postern/main.cf:1",
        "duplicate");
    bad("smtpd_listen = 127.0.0.1\n",
        "/etc/postern/main.cf:1: bad value '127.0.0.1' for smtpd_listen: missing :port",
        "listen address without port");
    bad("mynetworks = 10.0.0.0/33\n",
        "/etc/postern/main.cf:1: bad value '10.0.0.0/33' for mynetworks: bad prefix length",
        "bad CIDR");
    bad("smtpd_listen = 127.0.0.1:25\n  ::1:25\n",
        "/etc/postern/main.cf:1: bad value '::1:25' for smtpd_listen: IPv6 addresses must be "
        "written in brackets: [addr]:port",
        "bad list word in a continuation (named at the entry's line)");
    bad("route = relay\n",
        "/etc/postern/main.cf:1: 'route' is a per-domain option: set it in the domains map",
        "domain-only option in main.cf");
    bad("relay_gateways = isp=smtp.isp.example:587/high gw2=10.0.0.1/fast\n",
        "/etc/postern/main.cf:1: bad value for relay_gateways: gateway 'gw2': unknown option "
        "'fast' (priority highest|high|normal|below_normal|low, tls "
        "none|may|encrypt|verify|dane|dane-only, "
        "disabled, plainauth, max_connections=0..1000)",
        "bad gateway option");
    bad("relay_on_errors = dns lan\n",
        "/etc/postern/main.cf:1: bad value 'lan' for relay_on_errors: expected dns, network or "
        "smtp",
        "bad error class");
}

static void test_overrides(void)
{
    char *err = NULL;
    char *ov[] = {(char *)(uintptr_t) "max_deliveries=20", NULL};
    char *bad_ov[] = {(char *)(uintptr_t) "max_deliveries=lots", NULL};

    ok(config_load_text(&cfg, "/c", "/c/main.cf", "max_deliveries = 5\n", ov, &err) == 0,
       "override loads");
    is_int(cfg_num(&cfg, P_max_deliveries), 20, "-o wins over the file");
    config_free(&cfg);
    ok(config_load_text(&cfg, "/c", "/c/main.cf", "", bad_ov, &err) == -1, "bad override refused");
    is_str(err, "-o max_deliveries: bad value 'lots' for max_deliveries: expected a whole number",
           "override error names -o");
    free(err);
}

static void test_scalars(void)
{
    is_int(cfg_parse_duration("45"), 45, "bare duration is seconds");
    is_int(cfg_parse_duration("2d"), 172800, "days");
    is_int(cfg_parse_duration("1w"), 604800, "weeks");
    is_int(cfg_parse_duration("1h30"), -1, "trailing bare number after a unit is refused");
    is_int(cfg_parse_duration(""), -1, "empty refused");
    is_int(cfg_parse_duration("99999999999999999999s"), -1, "overflow refused");
    is_int(cfg_parse_size("512k"), 524288, "k");
    is_int(cfg_parse_size("2G"), 2147483648LL, "G");
    is_int(cfg_parse_size("100"), 100, "bare size is bytes");
    ok(cfg_param_find("retry_delay") != NULL, "table lookup by name");
    ok(cfg_param_find("nope") == NULL, "unknown name not found");
    ok(cfg_param_find("max_connections")->flags & F_DOMAIN, "per-domain flag in the table");
}

int main(void)
{
    plan_lazy();
    test_good_file();
    test_defaults();
    test_expansion();
    test_errors();
    test_overrides();
    test_scalars();
    return done_testing();
}
