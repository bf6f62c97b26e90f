/*
 * mail_aliases - unit tests of the aliases(5) reader (common/mail/aliases.c):
 * entries, continuation lines, comments between them, quoted names and
 * targets with commas, every kind of target, each error with its
 * file:line; the target lists of :include: and .forward; the compiled map
 * read back, a duplicate refused, a loop warned about with its line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/map.h"
#include "base/util.h"
#include "mail/aliases.h"
#include "tap.h"

/* Entries as "name=t1|t2@line;" */
static int collect(const char *name, char *const *targets, size_t n, size_t line, void *arg)
{
    struct buf *b = arg;

    buf_printf(b, "%s=", name);
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "%s%s", i ? "|" : "", targets[i]);
    buf_printf(b, "@%zu;", line);
    return 0;
}

static const char *parse(const char *text, char **err)
{
    static struct buf b;
    static int inited;

    if (!inited++)
        buf_init(&b);
    buf_reset(&b);
    *err = NULL;
    if (aliases_parse(text, strlen(text), "aliases", collect, &b, err) != 0)
        return NULL;
    return b.data ? b.data : "";
}

static void good(const char *text, const char *want, const char *what)
{
    char *err = NULL;
    const char *got = parse(text, &err);

    is_str(got ? got : err, want, "%s", what);
    free(err);
}

static void bad(const char *text, const char *want, const char *what)
{
    char *err = NULL;
    const char *got = parse(text, &err);

    ok(got == NULL, "%s: refused", what);
    is_str(err ? err : "(accepted)", want, "%s: the error", what);
    free(err);
}

static void test_parse(void)
{
    good("", "", "empty file");
    good("# only a comment\n\n", "", "comments and blank lines");
    good("root: admin@example.org\n", "root=admin@example.org@1;", "one entry");
    good("Root : a , b\n", "root=a|b@1;", "name lower-cased, blanks trimmed");
    good("team: a,\n  b,\n\tc\n", "team=a|b|c@1;", "continuation lines");
    good("team: a,\n# a comment inside\n  b\nnext: c\n", "team=a|b@1;next=c@4;",
         "a comment between continuations");
    good("x: a\r\ny: b\r\n", "x=a@1;y=b@2;", "CR LF line ends");
    good("x: a,,b,\n", "x=a|b@1;", "empty list elements");
    good("\"with space\": a\n", "with space=a@1;", "quoted name");
    good("cmd: \"|/usr/bin/prog -a, -b\"\n", "cmd=\"|/usr/bin/prog -a, -b\"@1;",
         "a quoted command keeps its comma");
    good("m: |/bin/cat, /var/log/mail.txt, :include:/etc/list, \\\\me, \"j d\"@x.org\n",
         "m=|/bin/cat|/var/log/mail.txt|:include:/etc/list|\\\\me|\"j d\"@x.org@1;",
         "every kind of target");
    good("a: b\nlast: c", "a=b@1;last=c@2;", "no newline at the end");

    bad("root admin\n", "aliases:1: ':' expected after the alias name (name: address, ...)",
        "no colon");
    bad(": a\n", "aliases:1: empty alias name", "empty name");
    bad("a@b: c\n", "aliases:1: an alias name is a local part, without @domain", "name with @");
    bad("a b: c\n", "aliases:1: blank or comma in an alias name (quote it)", "blank in a name");
    bad("\n  a\n", "aliases:2: continuation line with no alias before it",
        "continuation at the start");
    bad("a: b\nc:\n", "aliases:2: c: no target after ':'", "no target");
    bad("a: \"b\n", "aliases:1: a: unterminated quote", "unterminated quote");
    bad("\"a: b\n", "aliases:1: unterminated quote in the alias name", "unterminated name quote");
    bad("a: :include:rel/path\n", "aliases:1: a: :include: needs an absolute path",
        "relative include");
    bad("a: b\nx: @domain\n", "aliases:2: x: malformed address", "address without local part");
    bad("a: |\n", "aliases:1: a: empty command", "empty command");
    {
        static const char nul[] = "a: b\n\nc: d\0e\n";
        struct buf b;
        char *err = NULL;
        buf_init(&b);
        is_int(aliases_parse(nul, sizeof(nul) - 1, "aliases", collect, &b, &err), -1,
               "NUL byte refused");
        is_str(err ? err : "", "aliases:3: NUL byte", "NUL byte: the error names its line");
        free(err);
        buf_free(&b);
    }
}

static void test_target(void)
{
    static const struct {
        const char *t;
        enum alias_kind k;
        const char *rest;
    } cases[] = {
        {"user", AK_ADDR, "user"},
        {"user@example.org", AK_ADDR, "user@example.org"},
        {"\\root", AK_MAILBOX, "root"},
        {"/var/spool/file", AK_FILE, "/var/spool/file"},
        {"\"/var/with space\"", AK_FILE, "/var/with space"},
        {"|/bin/prog arg", AK_PIPE, "/bin/prog arg"},
        {"\"| /bin/prog a, b\"", AK_PIPE, "/bin/prog a, b"},
        {":include:/etc/list", AK_INCLUDE, "/etc/list"},
        {":INCLUDE: /etc/list", AK_INCLUDE, "/etc/list"},
        {"\"john doe\"@x.org", AK_ADDR, "\"john doe\"@x.org"},
    };

    for (size_t i = 0; i < nitems(cases); i++) {
        char *rest = NULL;
        enum alias_kind k = alias_target(cases[i].t, &rest);
        is_int(k, cases[i].k, "%s: kind", cases[i].t);
        is_str(rest, cases[i].rest, "%s: what follows", cases[i].t);
        free(rest);
    }
}

static void test_list(void)
{
    const char *text = "# forward\nme@example.org, \\user\n\n\"|/bin/prog x, y\"\n";
    char *err = NULL;
    char **v = aliases_parse_list(text, strlen(text), ".forward", &err);

    ok(v != NULL, "a .forward parses");
    if (v) {
        is_str(v[0], "me@example.org", "first");
        is_str(v[1], "\\user", "second, on the same line");
        is_str(v[2], "\"|/bin/prog x, y\"", "a quoted command");
        ok(v[3] == NULL, "three targets");
    }
    aliases_free_list(v);
    v = aliases_parse_list("a\nb \"c\n", 7, ".forward", &err);
    ok(v == NULL, "unterminated quote in a list refused");
    is_str(err ? err : "", ".forward:2: unterminated quote", "with its line");
    free(err);

    v = aliases_split("a\nb\n\nc", 6);
    is_str(v[0], "a", "split: a");
    is_str(v[2], "c", "split: empty pieces dropped");
    ok(v[3] == NULL, "split: three");
    aliases_free_list(v);
}

static void warned(const char *text, void *arg)
{
    struct buf *b = arg;

    buf_printf(b, "%s\n", text);
}

static void test_compile(void)
{
    char dir[] = "/tmp/mail_aliases.XXXXXX";
    char path[128], *err = NULL, *val = NULL;
    char *const local[] = {(char *)(uintptr_t) "host.test", NULL};
    struct buf w;
    struct map *m;
    FILE *f;

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof(path), "%s/aliases", dir);
    f = fopen(path, "w");
    fputs("root: admin@example.org, \\root\n"
          "a: b@host.test\n"
          "b: c, a\n"
          "c: :include:/nonexistent/list\n"
          "self: self, other@example.org\n",
          f);
    fclose(f);
    buf_init(&w);
    is_int(aliases_compile(path, local, warned, &w, &err), 0, "compiles");
    free(err);
    err = NULL;
    ok(w.data && strstr(w.data, "aliases:2: alias loop: a -> b -> a"), "the loop is warned about");
    ok(w.data && strstr(w.data, "aliases:4: c: :include:/nonexistent/list: No such file"),
       "a missing :include: is warned about");
    ok(w.data && !strstr(w.data, "self ->"), "a name that lists itself is no loop");
    m = map_open(path, 0, &err);
    ok(m != NULL, "the .db opens");
    if (m) {
        is_int(map_get(m, "root", &val, &err), 1, "root found");
        is_str(val, "admin@example.org\n\\root", "targets separated by new lines");
        free(val);
        is_int(map_get(m, "nobody", &val, &err), 0, "no such alias");
        map_close(m);
    }
    f = fopen(path, "w");
    fputs("x: a\ny: b\nX: c\n", f);
    fclose(f);
    is_int(aliases_compile(path, local, NULL, NULL, &err), -1, "a duplicate name is refused");
    ok(err && strstr(err, "aliases:3: duplicate alias name x (first at line 1)"),
       "saying where: %s", err ? err : "");
    free(err);
    err = NULL;
    m = map_open(path, 0, &err);
    if (m) {
        is_int(map_get(m, "root", &val, &err), 1, "the old .db stays");
        free(val);
        map_close(m);
    }
    buf_free(&w);
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    if (system(path) != 0)
        diag("cannot remove %s", dir);
}

int main(void)
{
    plan_lazy();
    test_parse();
    test_target();
    test_list();
    test_compile();
    return done_testing();
}
