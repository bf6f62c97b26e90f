/*
 * docgen - the man pages and the bash completion of smtpctl, made from
 * the two tables they describe, so that neither can drift from the code:
 * the parameter table (common/mail/params.def) and smtpctl's command
 * table (common/mail/ctl_cmds.def). Run by make; the output goes to
 * build/ and is installed by make install.
 *
 *   docgen man TEMPLATE    copy an mdoc template (docs/man/NAME.SECTION.in)
 *                          to stdout, replacing a line that is exactly
 *                          @COMMANDS@ (smtpctl's commands by group),
 *                          @MAIN_PARAMS@ (every main.cf parameter) or
 *                          @DOMAIN_PARAMS@ (the per-domain ones) with an
 *                          mdoc list, and @VERSION@ anywhere
 *   docgen bash            the bash completion for smtpctl: commands,
 *                          sub-commands, their options and words, the
 *                          parameter names for config and params, files
 *                          for makemap, directories for -c
 *
 * Text from the tables is escaped for roff (a backslash, a line that
 * would start with a dot or a quote) and split into one sentence per
 * line as mdoc wants. Exit 0, or 1 with a message on stderr.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/config.h"
#include "mail/ctl_cmds.h"
#include "mail/proto.h"
#include "base/util.h"

#define TEXT_WIDTH 68 /* roff text lines are wrapped after this column */

/* SELECTION in a synopsis stands for the forms qmgr takes (qmgr/ctl.c). */
static const char selection[] = "ID... --domain D --recipient R --sender S all";

/* ---- roff text ---- */

/* A table's one-line doc as roff text lines: escaped, one
 * sentence a line, wrapped, with a final period. */
static int abbrev_before(const char *start, const char *dot)
{
    return (dot - start >= 3 &&
            (strncmp(dot - 3, "e.g", 3) == 0 || strncmp(dot - 3, "i.e", 3) == 0));
}

static void roff_text(FILE *out, const char *s)
{
    const char *start = s;
    int bol = 1, col = 0;

    for (; *s; s++) {
        if (bol && (*s == '.' || *s == '\''))
            fputs("\\&", out);
        if (bol && *s == ' ')
            continue;
        bol = 0;
        if (*s == '\\') {
            fputs("\\e", out);
            col += 2;
        } else if (*s == '.' && s[1] == ' ' && !abbrev_before(start, s)) {
            fputs(".\n", out);
            bol = 1, col = 0;
        } else if (*s == ' ' && col >= TEXT_WIDTH) {
            fputc('\n', out);
            bol = 1, col = 0;
        } else {
            fputc(*s, out);
            col++;
        }
    }
    fputs(".\n", out);
}

/* One word of a synopsis as mdoc: Fl for options, Ar for values, Cm else. */
static void mdoc_word(FILE *out, const char *w, size_t n)
{
    int dots = n > 3 && strncmp(w + n - 3, "...", 3) == 0;
    int upper = 1;

    if (dots)
        n -= 3;
    for (size_t i = 0; i < n; i++)
        if (islower((unsigned char)w[i]))
            upper = 0;
    if (w[0] == '-')
        fprintf(out, " Fl %.*s", (int)n - 1, w + 1);
    else if (upper)
        fprintf(out, " Ar %.*s", (int)n, w);
    else
        fprintf(out, " Cm %.*s", (int)n, w);
    if (dots)
        fputs(" ...", out);
}

/* A synopsis ("[-d] [PARAM...]", "ID...|--domain D|all") as mdoc macros. */
static void mdoc_synopsis(FILE *out, const char *s)
{
    while (*s) {
        if (*s == ' ') {
            s++;
        } else if (*s == '[') {
            fputs(" Oo", out);
            s++;
        } else if (*s == ']') {
            fputs(" Oc", out);
            s++;
        } else if (*s == '|') {
            fputs(" |", out);
            s++;
        } else {
            size_t n = strcspn(s, " []|");
            mdoc_word(out, s, n);
            s += n;
        }
    }
}

static void man_commands(FILE *out)
{
    for (int g = 0; g < CTL_G__COUNT; g++) {
        const char *title = ctl_group_title((enum ctl_group)g);
        fprintf(out, ".Ss %c%s\n.Bl -tag -width Ds\n", toupper((unsigned char)title[0]), title + 1);
        for (size_t i = 0; i < nitems(ctl_cmds); i++) {
            const struct ctl_cmd *c = &ctl_cmds[i];
            if (c->group != (enum ctl_group)g)
                continue;
            fprintf(out, ".It Cm %s", c->word);
            if (c->sub)
                fprintf(out, " Cm %s", c->sub);
            mdoc_synopsis(out, c->args);
            fputs("\n", out);
            roff_text(out, c->doc);
        }
        fputs(".El\n", out);
    }
}

static const char *type_word(const struct cfg_param *p)
{
    static const char *const names[] = {"string", "integer", "yes or no", "duration",
                                        "size",   "one of",  "list"};
    return names[p->type];
}

static void man_param(FILE *out, const struct cfg_param *p, int domains_page)
{
    fprintf(out, ".It Cm %s\n", p->name);
    roff_text(out, p->doc);
    fprintf(out, "Type: %s", type_word(p));
    if (p->choices) {
        for (const char *const *c = p->choices; *c; c++)
            fprintf(out, "%s %s", c == p->choices ? "" : ",", *c);
    }
    if (p->type == CT_INT)
        fprintf(out, ", %lld to %lld", p->min, p->max);
    else if (p->type == CT_DURATION)
        fprintf(out, ", %lld to %lld seconds", p->min, p->max);
    else if (p->type == CT_SIZE)
        fprintf(out, ", %lld to %lld bytes", p->min, p->max);
    fputs(".\n", out);
    if ((p->flags & F_DOMAIN) && domains_page)
        fputs("Default: the value in\n.Xr postern.conf 5 ,\nwhose default is", out);
    else
        fputs("Default:", out);
    if (*p->def)
        fprintf(out, "\n.Ql %s .\n", p->def);
    else
        fputs(" empty.\n", out);
    if (p->flags & F_PATH)
        fputs("A relative path is taken from the configuration directory.\n", out);
    if (p->flags & F_RESTART)
        fputs("A reload cannot change it: restart postern.\n", out);
    if ((p->flags & F_DOMAIN) && !domains_page)
        fputs("Also per domain, in\n.Xr postern-domains 5 .\n", out);
    if ((p->flags & F_DOMAIN_ONLY) && domains_page)
        fputs("Only in the domains map.\n", out);
}

static void man_params(FILE *out, int domains_page)
{
    fputs(".Bl -tag -width Ds\n", out);
    for (int i = 0; i < P__COUNT; i++) {
        const struct cfg_param *p = cfg_param_find(cfg_params[i].name);
        int on_page = domains_page ? (p->flags & (F_DOMAIN | F_DOMAIN_ONLY)) != 0
                                   : (p->flags & F_DOMAIN_ONLY) == 0;
        if (on_page)
            man_param(out, p, domains_page);
    }
    fputs(".El\n", out);
}

static int cmd_man(const char *template)
{
    FILE *in = fopen(template, "r");
    char line[4096];

    if (in == NULL) {
        perror(template);
        return 1;
    }
    while (fgets(line, sizeof(line), in)) {
        char *at;
        if (strcmp(line, "@COMMANDS@\n") == 0)
            man_commands(stdout);
        else if (strcmp(line, "@MAIN_PARAMS@\n") == 0)
            man_params(stdout, 0);
        else if (strcmp(line, "@DOMAIN_PARAMS@\n") == 0)
            man_params(stdout, 1);
        else if ((at = strstr(line, "@VERSION@")) != NULL)
            printf("%.*s%s%s", (int)(at - line), line, POSTERN_VERSION, at + 9);
        else
            fputs(line, stdout);
    }
    fclose(in);
    return 0;
}

/* ---- bash completion ---- */

/* The words a synopsis offers: options and literal words, SELECTION's
 * forms; PARAM, FILE and COMMAND say what else to complete. */
struct words {
    struct buf w;   /* blank-separated words */
    struct buf val; /* options that take a value: complete nothing after them */
    int params, files, commands;
};

static void synopsis_words(const char *s, struct words *out)
{
    while (*s) {
        size_t n = strcspn(s, " []|");
        if (n == 0) {
            s++;
            continue;
        }
        size_t len = n > 3 && strncmp(s + n - 3, "...", 3) == 0 ? n - 3 : n;
        if (len == 9 && strncmp(s, "SELECTION", 9) == 0) {
            synopsis_words(selection, out);
        } else if (len == 5 && strncmp(s, "PARAM", 5) == 0) {
            out->params = 1;
        } else if (len == 4 && strncmp(s, "FILE", 4) == 0) {
            out->files = 1;
        } else if (len == 7 && strncmp(s, "COMMAND", 7) == 0) {
            out->commands = 1;
        } else if (s[0] == '-' || islower((unsigned char)s[0])) {
            buf_printf(&out->w, " %.*s", (int)len, s);
            /* an option and its value in the same group: "--domain D", "[-n N]" */
            if (s[0] == '-' && s[n] == ' ' && isupper((unsigned char)s[n + 1]))
                buf_printf(&out->val, "%s%.*s", out->val.len ? "|" : "", (int)len, s);
        }
        s += n;
    }
}

static void bash_args_case(FILE *out, const struct ctl_cmd *c)
{
    struct words w;

    buf_init(&w.w);
    buf_init(&w.val);
    w.params = w.files = w.commands = 0;
    synopsis_words(c->args, &w);
    fprintf(out, "    \"%s %s\")\n", c->word, c->sub ? c->sub : "");
    if (w.val.len)
        fprintf(out, "        case $prev in %s) return 0 ;; esac\n", w.val.data);
    fprintf(out, "        words=\"%s%s%s\"\n", w.w.len ? w.w.data + 1 : "",
            !w.params                 ? ""
            : c->id == CTL_CMD_params ? " $params $domain_params"
                                      : " $params",
            w.commands ? " $commands" : "");
    if (w.files)
        fputs("        files=1\n", out);
    fputs("        ;;\n", out);
    buf_free(&w.w);
    buf_free(&w.val);
}

static int cmd_bash(void)
{
    FILE *out = stdout;
    struct buf firsts;

    buf_init(&firsts);
    for (size_t i = 0; i < nitems(ctl_cmds); i++) {
        const char *w = ctl_cmds[i].word;
        size_t j;
        for (j = 0; j < i && strcmp(ctl_cmds[j].word, w) != 0; j++)
            ;
        if (j == i)
            buf_printf(&firsts, "%s%s", firsts.len ? " " : "", w);
    }
    fputs("# bash completion for smtpctl(8). Generated by tools/docgen from\n"
          "# common/mail/ctl_cmds.def and common/mail/params.def: do not edit.\n\n"
          "_smtpctl()\n{\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    local i=1 cmd sub='' words='' files=0 params domain_params commands\n",
          out);
    for (int only = 0; only < 2; only++) {
        const char *sep = "";
        fputs(only ? "    domain_params='" : "    params='", out);
        for (int i = 0; i < P__COUNT; i++)
            if (!(cfg_params[i].flags & F_DOMAIN_ONLY) == !only) {
                fprintf(out, "%s%s", sep, cfg_params[i].name);
                sep = " ";
            }
        fputs("'\n", out);
    }
    fprintf(out, "    commands='%s'\n", firsts.data);
    fputs("    COMPREPLY=()\n"
          "    # global options before the command: -c CONFDIR, --json\n"
          "    while [ $i -lt $COMP_CWORD ]; do\n"
          "        case ${COMP_WORDS[i]} in\n"
          "        -c) i=$((i + 2)) ;;\n"
          "        --json) i=$((i + 1)) ;;\n"
          "        *) break ;;\n"
          "        esac\n"
          "    done\n"
          "    if [ \"$prev\" = -c ] && [ $i -gt $COMP_CWORD ]; then\n"
          "        COMPREPLY=($(compgen -d -- \"$cur\"))\n"
          "        return 0\n"
          "    fi\n"
          "    if [ $i -ge $COMP_CWORD ]; then\n",
          out);
    fputs("        COMPREPLY=($(compgen -W \"$commands -c --json\" -- \"$cur\"))\n", out);
    fputs("        return 0\n"
          "    fi\n"
          "    cmd=${COMP_WORDS[i]}\n"
          "    case $cmd in\n",
          out);
    /* words with sub-commands: the second word, then that form's arguments */
    for (size_t i = 0; i < nitems(ctl_cmds); i++) {
        const char *w = ctl_cmds[i].word;
        size_t j;
        if (ctl_cmds[i].sub == NULL)
            continue;
        for (j = 0; j < i && strcmp(ctl_cmds[j].word, w) != 0; j++)
            ;
        if (j < i)
            continue;
        fprintf(out,
                "    %s)\n        if [ $((i + 1)) -eq $COMP_CWORD ]; then\n"
                "            COMPREPLY=($(compgen -W \"",
                w);
        for (size_t k = i; k < nitems(ctl_cmds); k++)
            if (strcmp(ctl_cmds[k].word, w) == 0)
                fprintf(out, "%s%s", k == i ? "" : " ", ctl_cmds[k].sub);
        fputs("\" -- \"$cur\"))\n            return 0\n        fi\n"
              "        sub=${COMP_WORDS[i+1]}\n        ;;\n",
              out);
    }
    fputs("    esac\n    case \"$cmd $sub\" in\n", out);
    for (size_t i = 0; i < nitems(ctl_cmds); i++)
        bash_args_case(out, &ctl_cmds[i]);
    fputs("    *) return 0 ;;\n"
          "    esac\n"
          "    if [ $files = 1 ] && [ \"${cur#-}\" = \"$cur\" ]; then\n"
          "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "    fi\n"
          "    COMPREPLY+=($(compgen -W \"$words\" -- \"$cur\"))\n"
          "    return 0\n"
          "}\n"
          "complete -F _smtpctl smtpctl\n",
          out);
    buf_free(&firsts);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "man") == 0)
        return cmd_man(argv[2]);
    if (argc == 2 && strcmp(argv[1], "bash") == 0)
        return cmd_bash();
    fprintf(stderr, "usage: docgen man TEMPLATE | docgen bash\n");
    return 2;
}
