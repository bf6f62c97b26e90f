/*
 * mail_tls_mode - the one list of TLS mode names (common/mail/tls_mode.c):
 * names and values agree both ways, unknown names and values are refused,
 * and main.cf's `tls` takes exactly these names.
 */
#include "mail/config.h"
#include "mail/tls_mode.h"
#include "tap.h"

#include <stdlib.h>

int main(void)
{
    static const char *const want[] = {"none", "may", "encrypt", "verify", "dane", "dane-only"};

    plan_lazy();
    for (int m = TLS_MODE_NONE; m <= TLS_MODE_LAST; m++) {
        is_str(tls_mode_name((enum tls_mode)m), want[m], "mode %d is named %s", m, want[m]);
        is_int(tls_mode_parse(want[m]), m, "%s parses to %d", want[m], m);
    }
    ok(tls_mode_names[6] == NULL, "the name list ends with NULL");
    is_str(tls_mode_name((enum tls_mode)6), "?", "a value out of range has no name");
    is_int(tls_mode_parse("Verify"), -1, "names are exact (lower case)");
    is_int(tls_mode_parse("dane_only"), -1, "an unknown mode is refused");
    is_int(tls_mode_parse(""), -1, "an empty name is refused");

    const struct cfg_param *p = cfg_param_find("tls");
    ok(p != NULL && p->choices == tls_mode_names, "main.cf's tls offers exactly these names");
    return done_testing();
}
