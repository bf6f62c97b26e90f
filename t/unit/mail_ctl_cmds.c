/*
 * mail_ctl_cmds - smtpctl's command table (common/mail/ctl_cmds.def):
 * lookups find each form and only known forms, every row is well formed
 * (a one-line doc, balanced brackets, no form twice, a word either always
 * or never with a sub-command), and the owner of each group is the
 * process that answers it.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mail/ctl_cmds.h"
#include "base/util.h"
#include "tap.h"

static const struct ctl_cmd *find(const char *a, const char *b, const char *c)
{
    char *argv[3] = {(char *)(uintptr_t)a, (char *)(uintptr_t)b, (char *)(uintptr_t)c};
    int argc = c ? 3 : b ? 2 : a ? 1 : 0;
    return ctl_cmd_find(argc, argv);
}

static int brackets_balanced(const char *s)
{
    int depth = 0;
    for (; *s; s++) {
        depth += *s == '[';
        depth -= *s == ']';
        if (depth < 0)
            return 0;
    }
    return depth == 0;
}

static void test_lookups(void)
{
    const struct ctl_cmd *c;

    c = find("show", "queue", "--domain");
    ok(c && c->id == CTL_CMD_show_queue, "show queue ... is show_queue");
    is_str(c ? ctl_cmd_owner(c) : NULL, "qmgr", "owned by qmgr");
    c = find("show", "dns", NULL);
    is_str(c ? ctl_cmd_owner(c) : NULL, "dnsd", "show dns: dnsd");
    c = find("pause", "intake", NULL);
    is_str(c ? ctl_cmd_owner(c) : NULL, "smtpd", "pause intake: smtpd");
    c = find("pause", "delivery", NULL);
    is_str(c ? ctl_cmd_owner(c) : NULL, "qmgr", "pause delivery: qmgr");
    c = find("status", NULL, NULL);
    is_str(c ? ctl_cmd_owner(c) : NULL, "master", "status: master");
    c = find("config", "-d", "retry_delay");
    ok(c && c->id == CTL_CMD_config, "config takes any arguments");
    is_str(c ? ctl_cmd_owner(c) : NULL, "smtpctl", "config: smtpctl itself");
    c = find("monitor", "-n", "3");
    ok(c && c->group == CTL_G_DAEMON, "monitor is in the daemon group");
    is_str(c ? ctl_cmd_owner(c) : NULL, "smtpctl", "but smtpctl runs it (CF_CLIENT)");
    c = find("dns", "txt", "x._domainkey.example.com");
    is_str(c ? ctl_cmd_owner(c) : NULL, "dnsd", "dns txt: dnsd");
    c = find("dkim", "keygen", "example.com");
    ok(c && c->id == CTL_CMD_dkim_keygen && c->group == CTL_G_OFFLINE, "dkim keygen is offline");
    c = find("dkim", "check", "example.com");
    ok(c && c->id == CTL_CMD_dkim_check && (c->flags & CF_CLIENT), "dkim check: CF_CLIENT");
    is_str(c ? ctl_cmd_owner(c) : NULL, "smtpctl", "smtpctl runs it, asking dnsd through master");
    ok(find("dkim", NULL, NULL) == NULL, "dkim needs a sub-command");
    c = find("log", "level", "debug");
    ok(c && c->id == CTL_CMD_log_level, "log level debug");

    ok(find("bogus", NULL, NULL) == NULL, "an unknown word is not found");
    ok(find("show", NULL, NULL) == NULL, "show needs a sub-command");
    ok(find("show", "bogus", NULL) == NULL, "show bogus is not found");
    ok(find("log", NULL, NULL) == NULL, "log alone is not found");
    ok(find(NULL, NULL, NULL) == NULL, "no words: nothing found");
    ok(ctl_cmd_word_known("show") && !ctl_cmd_word_known("bogus"), "ctl_cmd_word_known");
    ok(ctl_cmd_word_has_subs("dns") && !ctl_cmd_word_has_subs("flush"), "ctl_cmd_word_has_subs");
}

static void test_rows(void)
{
    for (size_t i = 0; i < nitems(ctl_cmds); i++) {
        const struct ctl_cmd *c = &ctl_cmds[i];
        size_t n = strlen(c->doc);
        char name[64];

        snprintf(name, sizeof(name), "%s%s%s", c->word, c->sub ? " " : "", c->sub ? c->sub : "");
        ok(c->id == (enum ctl_cmd_id)i, "%s: its id is its index", name);
        ok(n > 0 && n < 80 && c->doc[n - 1] != '.' && !strchr(c->doc, '\n'),
           "%s: one line of doc, no final period", name);
        ok(brackets_balanced(c->args), "%s: brackets balanced in '%s'", name, c->args);
        ok(c->group < CTL_G__COUNT && ctl_group_name(c->group) && ctl_group_title(c->group),
           "%s: a known group", name);
        ok(c->group == CTL_G_OFFLINE || (c->flags & CF_CLIENT) ||
               strcmp(ctl_cmd_owner(c), "smtpctl") != 0,
           "%s: a daemon command is answered by a process", name);
        int same = 0;
        for (size_t j = 0; j < nitems(ctl_cmds); j++) {
            const struct ctl_cmd *d = &ctl_cmds[j];
            if (strcmp(c->word, d->word) != 0)
                continue;
            ok(!c->sub == !d->sub, "%s and %s %s: the word always or never has a sub-command", name,
               d->word, d->sub ? d->sub : "");
            same += (!c->sub && !d->sub) || (c->sub && d->sub && !strcmp(c->sub, d->sub));
        }
        is_int(same, 1, "%s: one row", name);
        const struct ctl_cmd *f = find(c->word, c->sub, NULL);
        ok(f == c, "%s: found as itself", name);
    }
    static const char *const names[] = {"offline", "daemon", "queue", "dns", "intake", "delivery"};
    for (int g = 0; g < CTL_G__COUNT; g++)
        is_str(ctl_group_name((enum ctl_group)g), names[g], "group %d is %s", g, names[g]);
}

int main(void)
{
    plan_lazy();
    test_lookups();
    test_rows();
    return done_testing();
}
