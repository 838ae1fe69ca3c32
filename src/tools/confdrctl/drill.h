/* confdrctl drill: what drill.c (the commands) asks of drill_io.c (the
 * simulators' state files, MySQL, Redis), each call bounded in time. Errors
 * are returned as a negative errno with the reason, server address included,
 * in err; nothing here prints. */
#ifndef CONFDRCTL_DRILL_H
#define CONFDRCTL_DRILL_H

#include "drill_verdict.h"

#include <stddef.h>

#include <jansson.h>

struct cdr_hmap;
struct drill_db;

/* The state files DIR/PREFIX*.json of the simulators alive now (PIDS/<name>.pid
 * names a live process, and it is the pid the file names), in name order,
 * appended to s. home: E164 -> home platform (NULL: every home ""). */
int drill_snapshot(const char *dir, const char *pids, const char *prefix, json_t *home, struct drill_set *s, char *err,
		   size_t errlen);

/* A map whose keys and values are strings it owns (drill_strmap_free). */
struct cdr_hmap *drill_strmap_new(void);
int drill_strmap_put(struct cdr_hmap *m, const char *key, const char *val);
struct cdr_hmap *drill_strmap_free(struct cdr_hmap *m);

struct drill_db_opts {
	const char *socket; /* or host and port */
	const char *host;
	int port;
	const char *user;
	const char *password;
	const char *tls_ca; /* over host and port: TLS with this CA; NULL: plain */
};

/* A MariaDB connection (5 s to connect, 10 s per read); NULL with err set. */
struct drill_db *drill_db_open(const struct drill_db_opts *o, char *err, size_t errlen);
struct drill_db *drill_db_free(struct drill_db *db);

/* Adds "<platform>:<e164>" for every conference closed (end_ms and end_reason
 * set) in confdr_<platform>.confinfo. */
int drill_db_closed(struct drill_db *db, const char *platform, struct cdr_hmap *closed, char *err, size_t errlen);

/* E164 -> MCU ("" none) of the rows of confdr_<platform>.confinfo with end_ms NULL. */
int drill_db_open_confs(struct drill_db *db, const char *platform, struct cdr_hmap *open, char *err, size_t errlen);

/* Whether the Redis at host:port says role:master; -errno when it cannot be asked. */
int drill_redis_is_master(const char *host, int port, char *err, size_t errlen);

/* E164 -> MCU ("" none) of the conf:* hashes whose state is not "ended". */
int drill_redis_open_confs(const char *host, int port, struct cdr_hmap *open, char *err, size_t errlen);

#endif
