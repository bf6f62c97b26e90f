/*
 * setup - what master prepares before any child starts: the spool layout
 * with its owners and modes, the compiled maps copied where chrooted
 * children can read them, and the listening sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/map.h"
#include "master.h"
#include "base/netaddr.h"
#include "base/privsep.h"
#include "mail/spool.h"
#include "base/util.h"
#include "mail/local_rcpt.h"

#define LISTEN_BACKLOG 1024

/* Make dir (if missing) with mode and owner; fix mode and owner if wrong. */
static int ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, char **err)
{
    struct stat st;

    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        *err = xasprintf("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *err = xasprintf("%s exists but is not a directory", path);
        return -1;
    }
    if (geteuid() == 0 && (st.st_uid != uid || st.st_gid != gid) && chown(path, uid, gid) != 0) {
        *err = xasprintf("cannot chown %s: %s", path, strerror(errno));
        return -1;
    }
    if ((st.st_mode & 07777) != mode && chmod(path, mode) != 0) {
        *err = xasprintf("cannot chmod %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * maildrop/: mail_owner's, group postdrop, mode 1730. The setgid postdrop
 * may create (and rename its own) files there; nobody but mail_owner may
 * list or read it, and the sticky bit keeps one user's file safe from
 * another's. Without the group (not installed yet) only mail_owner can
 * use it and sendmail submits over SMTP alone. Not root: 0700, ours.
 */
static int setup_maildrop(const char *path, const char *owner, uid_t uid, gid_t gid, char **err)
{
    const struct group *gr;

    if (geteuid() != 0)
        return ensure_dir(path, 0700, uid, gid, err);
    gr = getgrnam(MAILDROP_GROUP);
    if (gr == NULL) {
        log_warn("group %s does not exist: %s/ is usable by %s alone, so sendmail cannot leave "
                 "mail there while postern is down (INSTALL says how to create the group)",
                 MAILDROP_GROUP, path, owner);
        return ensure_dir(path, 0700, uid, gid, err);
    }
    return ensure_dir(path, 01730, uid, gr->gr_gid, err);
}

int setup_spool(struct master *m, char **err)
{
    static const char *const owned[] = {SPOOL_INCOMING, SPOOL_QUEUE,        SPOOL_FREE,
                                        SPOOL_HOLD,     SPOOL_BOUNCED,      SPOOL_BAD,
                                        SPOOL_DB,       SPOOL_MAILDROP_BAD, SPOOL_DNSD};
    const char *spool = cfg_str(&m->cfg, P_queue_directory);
    uid_t uid = geteuid(), root = 0;
    gid_t gid = getegid(), rootg = 0;
    char path[4096];

    if (geteuid() == 0) {
        if (privsep_lookup(cfg_str(&m->cfg, P_mail_owner), &uid, &gid, err) < 0)
            return -1;
    } else {
        root = uid;
        rootg = gid;
    }
    /* The spool itself is root's: children chroot into it but only write below it. */
    if (ensure_dir(spool, 0755, root, rootg, err) < 0)
        return -1;
    for (size_t i = 0; i < nitems(owned); i++) {
        snprintf(path, sizeof(path), "%s/%s", spool, owned[i]);
        if (ensure_dir(path, 0700, uid, gid, err) < 0)
            return -1;
    }
    snprintf(path, sizeof(path), "%s/%s", spool, SPOOL_MAILDROP);
    if (setup_maildrop(path, cfg_str(&m->cfg, P_mail_owner), uid, gid, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", spool, SPOOL_ETC);
    if (ensure_dir(path, 0755, root, rootg, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", spool, SPOOL_EMPTY);
    if (ensure_dir(path, 0555, root, rootg, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", spool, SPOOL_RUN);
    if (ensure_dir(path, 0700, root, rootg, err) < 0)
        return -1;
    return 0;
}

/* Copy src to dst atomically with mode/owner; a missing src removes dst. */
static int copy_map(const char *src, const char *dst, mode_t mode, uid_t uid, gid_t gid, char **err)
{
    char tmp[4200], chunk[65536];
    int in, out;
    ssize_t n;

    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        if (errno == ENOENT) {
            unlink(dst);
            return 0;
        }
        *err = xasprintf("cannot read %s: %s", src, strerror(errno));
        return -1;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", dst) >= sizeof(tmp)) {
        *err = xasprintf("path too long: %s", dst);
        close(in);
        return -1;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        *err = xasprintf("cannot create %s: %s", tmp, strerror(errno));
        close(in);
        return -1;
    }
    while ((n = read(in, chunk, sizeof(chunk))) > 0)
        if (write_all(out, chunk, (size_t)n) < 0)
            break;
    if (n != 0 || fchmod(out, mode) != 0 || (geteuid() == 0 && fchown(out, uid, gid) != 0) ||
        fsync(out) != 0) {
        *err = xasprintf("cannot copy %s to %s: %s", src, tmp, strerror(errno));
        close(in);
        close(out);
        unlink(tmp);
        return -1;
    }
    close(in);
    close(out);
    if (rename(tmp, dst) != 0) {
        *err = xasprintf("cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int setup_verify_maps(const struct config *c, char **err)
{
    static const struct {
        enum cfg_id param;
        unsigned flags;
    } maps[] = {
        {P_domains_map, 0},      {P_smtpd_users_map, MAP_SECRET},
        {P_relay_sender_map, 0}, {P_relay_secrets_map, MAP_SECRET},
        {P_alias_maps, 0},       {P_dkim_map, 0},
    };

    for (size_t i = 0; i < nitems(maps); i++) {
        const char *src = cfg_str(c, maps[i].param);
        char db[4096], *why = NULL;
        if (src == NULL || *src == '\0')
            continue;
        snprintf(db, sizeof(db), "%s.db", src);
        if (access(db, F_OK) != 0)
            continue; /* never compiled: no map */
        if (map_verify(src, maps[i].flags, &why) < 0) {
            *err = xasprintf("%s (%s) cannot be read: %s; rebuild it with smtpctl makemap %s", db,
                             cfg_params[maps[i].param].name, why, src);
            free(why);
            return -1;
        }
    }
    return 0;
}

int setup_dkim_map_fresh(const struct config *c, char **err)
{
    const char *src = cfg_str(c, P_dkim_map);

    if (src == NULL || *src == '\0' || !map_stale(src))
        return 0;
    *err = xasprintf("%s.db is missing or older than %s (dkim_map): run smtpctl makemap %s "
                     "first, or the signer would keep the keys of the old map",
                     src, src, src);
    return -1;
}

int setup_maps(struct master *m, char **err)
{
    static const struct {
        enum cfg_id param;
        const char *dst;
        int secret;
    } maps[] = {
        {P_domains_map, SPOOL_MAP_DOMAINS, 0},
        {P_smtpd_users_map, SPOOL_MAP_USERS, 1},
        {P_relay_sender_map, SPOOL_MAP_SENDERS, 0},
    };
    const char *spool = cfg_str(&m->cfg, P_queue_directory);
    gid_t gid = getegid();
    uid_t uid = geteuid();

    if (geteuid() == 0 && privsep_lookup(cfg_str(&m->cfg, P_mail_owner), &uid, &gid, err) < 0)
        return -1;
    if (setup_verify_maps(&m->cfg, err) < 0)
        return -1;
    /* The gateway credentials are never in the spool: relay reads the
     * map where the admin keeps it (mail/secrets.h). An older Postern
     * copied it here; remove that copy. */
    {
        char old[4096];
        snprintf(old, sizeof(old), "%s/%s", spool, SPOOL_MAP_SECRETS_OLD);
        if (unlink(old) == 0)
            log_info("removed %s: gateway credentials no longer live in the spool", old);
    }
    for (size_t i = 0; i < nitems(maps); i++) {
        const char *src = cfg_str(&m->cfg, maps[i].param);
        char srcdb[4096], dst[4096];
        if (src == NULL || *src == '\0')
            continue;
        snprintf(srcdb, sizeof(srcdb), "%s.db", src);
        snprintf(dst, sizeof(dst), "%s/%s", spool, maps[i].dst);
        /* Secrets: readable by the mail_owner only; others root's and world-readable. */
        if (copy_map(srcdb, dst, maps[i].secret ? 0600 : 0644, maps[i].secret ? uid : 0,
                     maps[i].secret ? gid : 0, err) < 0)
            return -1;
    }
    return setup_local_maps(m, 1, err);
}

/* st's modification time in ns, 0 when it cannot be read. */
static int64_t mtime_ns(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return 0;
    return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

int setup_local_maps(struct master *m, int force, char **err)
{
    static int64_t passwd_seen, aliases_seen;
    const char *spool = cfg_str(&m->cfg, P_queue_directory);
    const char *aliases = cfg_str(&m->cfg, P_alias_maps);
    char path[4096], db[4096];
    int64_t pw = mtime_ns("/etc/passwd"), al;

    snprintf(db, sizeof(db), "%s.db", aliases ? aliases : "");
    al = aliases && *aliases ? mtime_ns(db) : 0;
    if (force || pw != passwd_seen) {
        snprintf(path, sizeof(path), "%s/%s", spool, SPOOL_MAP_LOCALUSERS);
        path[strlen(path) - 3] = '\0'; /* map_create adds ".db" */
        if (local_users_build(path, err) < 0)
            return -1;
        passwd_seen = pw;
        if (!force)
            log_info("the password database changed: smtpd's map of local users made anew");
    }
    if (force || al != aliases_seen) {
        snprintf(path, sizeof(path), "%s/%s", spool, SPOOL_MAP_ALIASES);
        if (al == 0)
            unlink(path);
        else if (copy_map(db, path, 0644, 0, 0, err) < 0)
            return -1;
        aliases_seen = al;
        if (!force)
            log_info("%s changed: smtpd's copy of the aliases replaced", db);
    }
    return 0;
}

static int open_socket(const char *spec, const struct sockaddr_storage *addr, int *out, char **err)
{
    struct sockaddr_storage ss = *addr;
    int fd, one = 1;
    char text[NETADDR_STRLEN];

    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = xasprintf("socket for %s: %s", spec, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, netaddr_len((struct sockaddr *)&ss)) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        *err =
            xasprintf("cannot listen on %s: %s",
                      netaddr_format((struct sockaddr *)&ss, text, sizeof(text)), strerror(errno));
        close(fd);
        return -1;
    }
    *out = fd;
    return 0;
}

static int open_listener(const char *spec, int *out, char **err)
{
    struct sockaddr_storage ss;
    const char *why;

    if (netaddr_parse_hostport(spec, 0, &ss, &why) < 0) {
        *err = xasprintf("listen address '%s': %s", spec, why);
        return -1;
    }
    return open_socket(spec, &ss, out, err);
}

static int open_list(char *const *list, int *fds, int *n, int max, char **err)
{
    for (char *const *s = list; s && *s; s++) {
        if (*n >= max) {
            *err = xasprintf("too many listen addresses (at most %d)", max);
            return -1;
        }
        if (open_listener(*s, &fds[*n], err) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

int setup_metrics_addr(const char *spec, struct sockaddr_storage *ss, const char **why)
{
    char buf[64];

    /* Only an address written out is outside loopback. */
    if (spec[0] == ':' || strspn(spec, "0123456789") == strlen(spec)) {
        snprintf(buf, sizeof(buf), "127.0.0.1:%s", spec[0] == ':' ? spec + 1 : spec);
        spec = buf;
    }
    return netaddr_parse_hostport(spec, 0, ss, why);
}

/* metrics_listen: one socket for qmgr's HTTP server, or none. */
static int open_metrics(struct master *m, char **err)
{
    const char *spec = cfg_str(&m->cfg, P_metrics_listen), *why;
    char *why2 = NULL;
    struct sockaddr_storage ss;

    m->metrics_fd = -1;
    if (spec == NULL || *spec == '\0')
        return 0;
    if (setup_metrics_addr(spec, &ss, &why) < 0) {
        *err = xasprintf("metrics_listen '%s': %s", spec, why);
        return -1;
    }
    if (open_socket(spec, &ss, &m->metrics_fd, &why2) < 0) {
        *err = xasprintf("metrics_listen: %s", why2);
        free(why2);
        return -1;
    }
    return 0;
}

int setup_listeners(struct master *m, char **err)
{
    if (open_metrics(m, err) < 0)
        return -1;
    if (open_list(cfg_list(&m->cfg, P_smtpd_listen), m->listen_fds, &m->nlisten,
                  (int)nitems(m->listen_fds), err) < 0)
        return -1;
    return open_list(cfg_list(&m->cfg, P_submission_listen), m->submission_fds, &m->nsubmission,
                     (int)nitems(m->submission_fds), err);
}
