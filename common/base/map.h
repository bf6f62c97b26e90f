/*
 * map - text maps compiled to Berkeley DB, for lookups by key: the AUTH
 * users map (etc/users), the domains map and the relay secrets.
 *
 * Source format, one entry per line:
 *     key value...
 * The key is the first word; the value is the rest of the line with
 * surrounding blanks removed (it may hold blanks). Empty lines and lines
 * whose first non-blank is '#' are ignored. A line that starts with a
 * blank continues the previous entry's value (joined with one space).
 * Keys are matched without regard to ASCII case (stored lower-cased).
 * A duplicate key, a key without a value, a NUL byte or an over-long
 * line (MAP_LINE_MAX) is an error naming "file:line".
 *
 * map_compile(path) writes path.db: it builds path.db.<pid>.tmp, syncs it
 * and renames it over path.db, so readers see the old or the new map,
 * never a half-written one. With MAP_SECRET it refuses a source readable
 * or writable by group or others, and the .db is made mode 0600 (else
 * 0644).
 *
 * map_open(path) opens path.db read-only (MAP_SECRET: refuses a .db that
 * group or others may read); map_get looks a key up. A map opened before
 * a privilege drop keeps working after it (the fd stays open).
 * Errors are returned as malloc'd strings; nothing here exits.
 */
#ifndef POSTERN_MAP_H
#define POSTERN_MAP_H

#define MAP_SECRET 0x1u
#define MAP_LINE_MAX 65536

#include <stddef.h>

struct map;

int map_compile(const char *path, unsigned flags, char **err);
/*
 * A check of each entry: 0 to accept, -1 and a malloc'd *why to refuse.
 * Errors then read "file:line: key: why". map_compile_checked compiles
 * only when every entry passes; map_check parses and checks without
 * writing anything (smtpctl check).
 */
typedef int (*map_check_fn)(const char *key, const char *value, void *arg, char **why);
int map_compile_checked(const char *path, unsigned flags, map_check_fn fn, void *arg, char **err);
int map_check(const char *path, map_check_fn fn, void *arg, char **err);
/*
 * Writing a map entry by entry (maps whose source is not "key value"
 * lines, such as aliases): map_create makes path.db's temporary file,
 * map_put adds a key (taken as given: lower-case it first) with a value
 * of len bytes (0 added, 1 the key is already there, -1 error),
 * map_commit syncs it and renames it over path.db (0, or -1 and *err;
 * the writer is freed either way), map_abort throws it away.
 */
struct map_writer;
struct map_writer *map_create(const char *path, unsigned flags, char **err);
int map_put(struct map_writer *w, const char *key, const void *val, size_t len, char **err);
int map_commit(struct map_writer *w, char **err);
void map_abort(struct map_writer *w);
struct map *map_open(const char *path, unsigned flags, char **err);
/* 1 and *val (malloc'd) when found, 0 when not, -1 and *err on error. */
int map_get(struct map *m, const char *key, char **val, char **err);
/* Every entry, in the database's order: fn(key, value, arg) for each (the
 * strings live only during the call). 0, or -1 and *err when the database
 * cannot be read through (a corrupt file). fn returning non-zero stops. */
int map_each(struct map *m, int (*fn)(const char *key, const char *val, void *arg), void *arg,
             char **err);
void map_close(struct map *m);
/* Open path.db and read every entry: 0 when the whole file reads back,
 * -1 and *err when it does not (a corrupt or truncated file, or a
 * MAP_SECRET map others may read). What check and reload run before
 * they accept a map. */
int map_verify(const char *path, unsigned flags, char **err);
/* 1 if the source is newer than its .db (or the .db is missing), else 0. */
int map_stale(const char *path);

#endif
