/*
 * config - main.cf and the per-domain options, from one parameter table
 * (params.def).
 *
 * Grammar: "name = value" lines; '#' starts a comment line; a line that
 * starts with white space continues the previous value; "$name" and
 * "${name}" expand to another parameter's value (its final value, however
 * late in the file it is set; "$$" is a literal '$'). Unknown names, bad
 * values (suffix, range, enum), duplicate names, and a continuation with
 * nothing to continue are errors; each error names "file:line: ".
 *
 * Values are kept in text (as written, expanded) and typed: INT, BOOL,
 * DURATION (seconds), SIZE (bytes) as num; STR and ENUM as str; LIST as a
 * NULL-terminated word array split on blanks and commas. F_PATH values
 * that are relative are made absolute against the config directory.
 *
 * config_load never exits: on error it returns -1 and a malloc'd message.
 */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

enum cfg_type { CT_STR, CT_INT, CT_BOOL, CT_DURATION, CT_SIZE, CT_ENUM, CT_LIST };

#define F_PATH 0x1u
#define F_DOMAIN 0x2u
#define F_DOMAIN_ONLY 0x4u
#define F_RESTART 0x8u

enum cfg_id {
#define PARAM(name, type, def, min, max, flags, doc) P_##name,
#include "mail/params.def"
#undef PARAM
    P__COUNT
};

struct cfg_param {
    const char *name;
    enum cfg_type type;
    const char *def;
    long long min, max;
    unsigned flags;
    const char *doc;
    const char *const *choices; /* ENUM: NULL-terminated alternatives */
};

extern const struct cfg_param cfg_params[P__COUNT];

struct cfg_val {
    char *text;    /* expanded text as configured */
    long long num; /* INT, BOOL (0/1), DURATION, SIZE; ENUM: index in choices */
    char **list;   /* LIST: NULL-terminated words */
};

struct config {
    char *dir;  /* absolute config directory */
    char *file; /* main.cf path */
    struct cfg_val v[P__COUNT];
    unsigned char set[P__COUNT]; /* 1 when set in main.cf or by override */
};

/* Look a parameter up by name; NULL if unknown. */
const struct cfg_param *cfg_param_find(const char *name);

/*
 * Load DIR/main.cf (DIR made absolute). overrides: NULL or a NULL-terminated
 * list of "name=value" that win over the file (master -o). A missing
 * main.cf is an error. Returns 0, or -1 and *err (malloc'd).
 */
int config_load(struct config *cfg, const char *dir, char *const *overrides, char **err);
/* Parse a config text as if read from file `fname` (tests use this). */
int config_load_text(struct config *cfg, const char *dir, const char *fname, const char *text,
                     char *const *overrides, char **err);
void config_free(struct config *cfg);

/*
 * The value of one parameter read leniently from DIR/main.cf: no checks of
 * other lines, no $ expansion; the default when unset or unreadable. For
 * smtpctl, which must find the control socket even when main.cf has an
 * error (so that "smtpctl reload" can report master's refusal). malloc'd.
 */
char *config_peek(const char *dir, enum cfg_id id);
/* config_peek parsed into a value (cfg_val_free it); the default when the
 * text is bad. For sendmail and postdrop, which must not lose local mail
 * to an unrelated typo in main.cf. */
struct cfg_val config_peek_value(const char *dir, enum cfg_id id);

/* Convert text to a typed value per param p (no $ expansion). 0 or -1 + *err. */
int cfg_parse_value(const struct cfg_param *p, const char *text, struct cfg_val *out, char **err);
void cfg_val_free(struct cfg_val *v);
/* "30s", "5m" ... -> seconds; "10k" -> bytes. -1 on bad syntax. Exposed for tests. */
long long cfg_parse_duration(const char *s);
long long cfg_parse_size(const char *s);

static inline long long cfg_num(const struct config *c, enum cfg_id id)
{
    return c->v[id].num;
}
static inline const char *cfg_str(const struct config *c, enum cfg_id id)
{
    return c->v[id].text;
}
static inline char *const *cfg_list(const struct config *c, enum cfg_id id)
{
    return c->v[id].list;
}
/* ENUM value's text ("may"). */
const char *cfg_enum(const struct config *c, enum cfg_id id);

/* The myhostname in force: the configured one, or the system host name. */
const char *cfg_myhostname(const struct config *c);

#endif
