/*
 * help - smtpctl's usage text and "help [COMMAND]", both printed from
 * the command table (mail/ctl_cmds.def), grouped as the table groups
 * them. smtpctl(8) is made from the same table by tools/docgen.c.
 */
#include <stdio.h>
#include <string.h>

#include "mail/ctl_cmds.h"
#include "base/util.h"
#include "smtpctl.h"

#define DOC_COLUMN 34

static void print_row(FILE *f, const struct ctl_cmd *c)
{
    int n = fprintf(f, "  %s%s%s%s%s", c->word, c->sub ? " " : "", c->sub ? c->sub : "",
                    *c->args ? " " : "", c->args);
    if (n >= DOC_COLUMN - 1)
        fprintf(f, "\n%*s", DOC_COLUMN, "");
    else
        fprintf(f, "%*s", DOC_COLUMN - n, "");
    fprintf(f, "%s\n", c->doc);
}

void usage_print(FILE *f)
{
    fputs("usage: smtpctl [-c CONFDIR] [--json] COMMAND [ARGS...]\n", f);
    for (int g = 0; g < CTL_G__COUNT; g++) {
        fprintf(f, "\n%s:\n", ctl_group_title((enum ctl_group)g));
        for (size_t i = 0; i < nitems(ctl_cmds); i++)
            if (ctl_cmds[i].group == (enum ctl_group)g)
                print_row(f, &ctl_cmds[i]);
    }
    fputs("\nSELECTION: queue IDs, --domain D, --recipient R, --sender S, or all.\n"
          "--json gives one JSON document (every show, status, route, config, params).\n"
          "CONFDIR defaults to $POSTERN_CONFIG or " DEFAULT_CONFDIR ".\n",
          f);
}

int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        usage_print(stdout);
        return 0;
    }
    if (!ctl_cmd_word_known(argv[1])) {
        fprintf(stderr, "smtpctl: unknown command '%s' (smtpctl help lists the commands)\n",
                argv[1]);
        return 2;
    }
    int shown = 0;
    for (size_t i = 0; i < nitems(ctl_cmds); i++) {
        const struct ctl_cmd *c = &ctl_cmds[i];
        if (strcmp(c->word, argv[1]) == 0 && (argc < 3 || (c->sub && !strcmp(c->sub, argv[2])))) {
            print_row(stdout, c);
            shown++;
        }
    }
    if (shown == 0) {
        fprintf(stderr, "smtpctl: unknown command '%s %s' (smtpctl help %s lists its forms)\n",
                argv[1], argv[2], argv[1]);
        return 2;
    }
    return 0;
}
