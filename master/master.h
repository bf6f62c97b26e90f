/*
 * master - internal interfaces of the supervisor.
 *
 * setup.c    spool layout, maps copied into the spool, listening sockets
 * children.c spawn, reap, restart with backoff, peer channels
 * control.c  the control socket smtpctl talks to; fan-out to children
 * main.c     arguments, daemon start, signals, reload, stop
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "mail/config.h"
#include "base/ipc.h"

struct event_base;
struct event;

enum child_id { CH_DNSD, CH_QMGR, CH_DELIVER, CH_RELAY, CH_LOCAL, CH_SIGNER, CH_SMTPD, CH__COUNT };

struct mchild {
    const char *name;
    pid_t pid;          /* 0 when not running */
    int64_t started_us; /* wall clock of the last start */
    int64_t started_mono;
    int restarts;       /* times restarted after an exit */
    int quick_deaths;   /* consecutive deaths soon after start */
    int ready;          /* answered its first status request */
    int64_t probe_mono; /* the watchdog probe not yet answered went out then; 0: none */
    struct ipc_chan *chan;
    struct event *restart_ev;
};

struct master {
    struct event_base *base;
    struct config cfg;
    char *cfg_text; /* main.cf text of cfg: what children are started with */
    char *confdir;
    char **overrides; /* NULL-terminated "name=value" from -o */
    int foreground;
    char *bindir;
    int listen_fds[16];
    int nlisten;
    int submission_fds[16];
    int nsubmission;
    int metrics_fd; /* metrics_listen, passed to qmgr; -1: off */
    struct mchild ch[CH__COUNT];
    int stopping;
    int announced_ready;
    int64_t started_us;
    int control_fd;
    struct event *control_ev;
    uint32_t next_id;
    /* the DKIM keys in force (dkim_map): what every signer master starts
     * gets, so a restarted signer signs as the one before it, whatever
     * the files on disk say now */
    struct dkim_keys *dkim;
};

extern struct master M;

/* setup.c */
int setup_spool(struct master *m, char **err);
int setup_maps(struct master *m, char **err);
/* Every compiled map c names reads back whole (map_verify); else -1 and
 * *err naming the file, the parameter and the fix. */
int setup_verify_maps(const struct config *c, char **err);
/* A reload's check of the dkim_map: -1 and *err when its source is newer
 * than its .db (edited, not compiled again). */
int setup_dkim_map_fresh(const struct config *c, char **err);
int setup_listeners(struct master *m, char **err);
/* metrics_listen as an address: "PORT" and ":PORT" mean 127.0.0.1:PORT. */
int setup_metrics_addr(const char *spec, struct sockaddr_storage *ss, const char **why);
/* smtpd's maps of local recipients (mail/local_rcpt.h) in the spool: the
 * user names of the password database and the compiled aliases, made
 * again when /etc/passwd or the aliases .db changed (or force). Called by
 * setup_maps, and by the watchdog's timer in between. */
int setup_local_maps(struct master *m, int force, char **err);

/* children.c */
void children_start_all(struct master *m);
void children_reap(struct master *m);
int children_running(const struct master *m);
void children_signal_all(struct master *m, int sig);
void children_send_all(struct master *m, uint16_t type, const void *body, size_t len);
/* The gateway credentials to relay (and to no other child). */
struct secrets;
void children_send_secrets(struct master *m, const struct secrets *s);
/* The DKIM keys to the signer (and to no other child). */
struct dkim_keys;
void children_send_dkim_keys(struct master *m, const struct dkim_keys *k);
/* The TLS certificate and key text to smtpd (and to no other child). */
void children_send_tls(struct master *m, const char *cert_pem, const char *key_pem);
struct mchild *children_by_name(struct master *m, const char *name);
void children_check_ready(struct master *m);

/* control.c */
int control_open(struct master *m, char **err);
void control_close(struct master *m);
/* A message from a child that belongs to a control operation. */
void control_child_msg(struct master *m, struct mchild *c, const struct ipc_msg *msg);
void control_child_gone(struct master *m, struct mchild *c);
/* IMSG_RELOAD (main.cf's path and text, the -o overrides) to every running
 * child; done(arg, ok, text) once all have answered or after a timeout. */
void master_reload_children(struct master *m, const char *path, const char *text,
                            void (*done)(void *, int, const char *), void *arg,
                            struct ipc_chan *client, uint32_t client_id);

/* stats.c: dnsd's counters (IMSG_STATS_DNSD) and, once a second, the
 * restarts with them to qmgr (IMSG_STATS_MASTER; mail/stats.h). */
void stats_start(struct master *m);
void stats_take_dnsd(struct master *m, const struct ipc_msg *msg);

/* main.c */
void master_reload(struct master *m, void (*done)(void *arg, int ok, const char *err), void *arg);
void master_stop(struct master *m, const char *why);

#endif
