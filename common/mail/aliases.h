/*
 * aliases - the aliases file as sendmail and Postfix read it (aliases(5)),
 * its compiled form, and the lists of targets that :include: files and
 * ~/.forward hold.
 *
 * Source, one entry per logical line:
 *     # a comment line (anywhere, also between continuation lines)
 *     name: target, target, ...
 *         target, ...            (a line starting with a blank continues)
 * The name is a local part (no '@'), optionally in double quotes, matched
 * without regard to ASCII case. A target is an address (user, \user for
 * "this mailbox, no further aliasing", user@domain, "quoted local"@domain),
 * /path/to/file, |command (or "|command, with commas"), or
 * :include:/path/to/list. Commas inside double quotes do not separate.
 * Errors name "file:line": no ':' after the name, an empty name, a name
 * with '@', no target, an unterminated quote, a continuation with no
 * entry before it, a duplicate name, a relative file or include path, a
 * NUL byte, an over-long logical line.
 *
 * Compiled (aliases_compile): FILE.db, key the lower-cased name, value the
 * targets separated by '\n' (the form aliases_split takes apart).
 * Warnings that do not stop the compile (an alias loop through local
 * names, an :include: file that is missing) go to warn(); a loop is
 * "file:line: alias loop: a -> b -> a".
 *
 * aliases_parse_list reads an :include: file or .forward: targets
 * separated by commas or new lines, '#' comment lines.
 */
#ifndef POSTERN_ALIASES_H
#define POSTERN_ALIASES_H

#include <stddef.h>

#define ALIAS_LINE_MAX 65536
#define ALIAS_TARGETS_MAX 10000
#define ALIAS_FILE_MAX (64u * 1024 * 1024)

enum alias_kind { AK_ADDR, AK_MAILBOX, AK_FILE, AK_PIPE, AK_INCLUDE };

/* One entry: fn(name lower-cased, targets, n, line, arg); non-zero stops
 * the parse (that value is returned). */
typedef int (*alias_entry_fn)(const char *name, char *const *targets, size_t n, size_t line,
                              void *arg);

/* Parse text (len bytes) named fname in messages. 0, fn's non-zero value,
 * or -1 and a malloc'd *err ("fname:line: why"). Duplicate names are not
 * checked here (aliases_compile does). */
int aliases_parse(const char *text, size_t len, const char *fname, alias_entry_fn fn, void *arg,
                  char **err);

/* Targets of a list (an :include: file, a .forward): NULL-terminated,
 * malloc'd (aliases_free_list), or NULL and *err. */
char **aliases_parse_list(const char *text, size_t len, const char *fname, char **err);
void aliases_free_list(char **v);

/* What a target is; *rest gets what follows its marker (the address
 * without a leading '\', the path, the command without '|' and quotes).
 * The quotes of "|cmd" and "/file" are removed into *rest (malloc'd). */
enum alias_kind alias_target(const char *t, char **rest);

/* A whole file (an aliases file, an :include: list, a .forward) as
 * malloc'd bytes with a NUL after them, *len without it; NULL and *err. */
char *aliases_read(const char *path, size_t *len, char **err);

/* A compiled value split at '\n' (NULL-terminated, aliases_free_list). */
char **aliases_split(const char *val, size_t len);

/*
 * Compile path into path.db. local_domains: the names (NULL-terminated)
 * whose addresses are local for the loop check (name@one-of-them is the
 * alias name). warn(text, arg) gets each warning. 0, or -1 and *err.
 */
int aliases_compile(const char *path, char *const *local_domains,
                    void (*warn)(const char *text, void *arg), void *arg, char **err);

#endif
