/*
 * qstate - qmgr's Berkeley DB environment in db/ (DESIGN section 3): the
 * per-recipient state of messages and the destinations' health. Only
 * qmgr opens it.
 *
 * The environment is transactional (DB_INIT_TXN, LOCK, LOG, MPOOL) and
 * recovered at every open (DB_RECOVER), private to the process
 * (DB_PRIVATE: no shared region files). Two b-trees: "msgs.db" (queue ID
 * -> message record) and "hosts.db" (destination -> host record); the
 * layouts are qrec.h's.
 *
 * Writes are batched: qstate_begin() opens one transaction, puts and
 * deletes join it, qstate_commit() commits it without waiting for the
 * disk (DB_TXN_WRITE_NOSYNC: the log reaches the OS at once, so a killed
 * qmgr loses nothing; an OS crash can lose the last second, which at
 * worst repeats a delivery: the queue file, not this database, says which
 * mail exists). qstate_sync() forces the log to disk and is called on a
 * timer and at exit; qstate_checkpoint() lets old log files go.
 *
 * If the environment cannot be opened even with recovery, qstate_open
 * removes its files and starts an empty one (logged as an error): state
 * is lost, mail is not.
 *
 * Errors are returned as values with a malloc'd message; nothing here
 * exits.
 */
#ifndef QMGR_QSTATE_H
#define QMGR_QSTATE_H

#include <stddef.h>

struct qstate;

struct qstate *qstate_open(const char *home, char **err);
void qstate_close(struct qstate *qs);

int qstate_begin(struct qstate *qs, char **err);
int qstate_put(struct qstate *qs, int hosts, const char *key, const void *val, size_t len,
               char **err);
int qstate_del(struct qstate *qs, int hosts, const char *key, char **err);
/* Read one record: *val malloc'd (free it). 1 found, 0 not found, -1 and *err. */
int qstate_get(struct qstate *qs, int hosts, const char *key, void **val, size_t *len, char **err);
int qstate_commit(struct qstate *qs, char **err);
void qstate_abort(struct qstate *qs);

/* Call fn for every record of one table (hosts = 0: messages). fn gets
 * the key as a C string (records with keys that are not text are
 * skipped). Returns the number of records, or -1 and *err. */
typedef void (*qstate_fn)(const char *key, const void *val, size_t len, void *arg);
long qstate_walk(struct qstate *qs, int hosts, qstate_fn fn, void *arg, char **err);

int qstate_sync(struct qstate *qs);
int qstate_checkpoint(struct qstate *qs);

#endif
