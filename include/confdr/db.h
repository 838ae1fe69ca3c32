/* MySQL/MariaDB client for the event loop: one worker thread per struct
 * cdr_db owns a blocking connection (MariaDB 10.11 client); jobs go to it
 * through a queue and their results come back to the loop thread with
 * cdr_loop_post(). See docs/storage.md for why a thread and not the
 * _start/_cont calls. */
#ifndef CONFDR_DB_H
#define CONFDR_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdr_loop;
struct cdr_db;

typedef void (*cdr_db_state_fn)(bool up, const char *why, void *arg);

struct cdr_db_opts {
	const char *host; /* required; copied */
	int port;
	const char *user;
	const char *password;
	const char *database;
	unsigned connect_timeout_ms;		     /* 0 = 5000 */
	unsigned reconnect_min_ms, reconnect_max_ms; /* 0 = 200 / 10000 */
	cdr_db_state_fn on_state;		     /* runs on the loop thread; may be NULL */
	void *arg;
};

/* What a job produced; borrowed for the duration of the callback. status 0,
 * or -EIO (SQL error: error/code say which), -ECONNRESET (the connection was
 * lost during a job that may not be repeated), -ECANCELED (freed). */
struct cdr_db_result {
	int status;
	unsigned code;	   /* mysql_errno, 0 if none */
	const char *error; /* the server's or client's text, NULL if none */
	uint64_t affected; /* rows changed by the last statement */
	uint64_t insert_id;
	size_t nrows, ncols; /* of the last statement that returned rows */
	char **cells;	     /* nrows * ncols values, row-major; NULL for SQL NULL */
};

/* The value at (row, col), NULL for SQL NULL or out of range. */
const char *cdr_db_value(const struct cdr_db_result *r, size_t row, size_t col);

typedef void (*cdr_db_fn)(const struct cdr_db_result *r, void *arg);

/* A parameter for a '?' in the SQL: a string (NULL: SQL NULL) or an integer. */
struct cdr_db_param {
	const char *str;
	int64_t num;
	bool is_num;
};
#define CDR_DB_STR(s) ((struct cdr_db_param){ .str = (s) })
#define CDR_DB_INT(n) ((struct cdr_db_param){ .num = (n), .is_num = true })
#define CDR_DB_NULL   ((struct cdr_db_param){ 0 })

/* Starts the worker, which connects in the background and re-connects with
 * back-off. Returns 0, -EINVAL, -ENOMEM or a pthread error. */
int cdr_db_new(struct cdr_loop *loop, const struct cdr_db_opts *opts, struct cdr_db **ret);

/* Finishes the job in progress, fails the queued ones with -ECANCELED,
 * closes, joins. Accepts NULL; returns NULL. */
struct cdr_db *cdr_db_free(struct cdr_db *db);

/* Queues one statement. Each '?' is replaced by the next parameter, escaped
 * by the server's rules (strings quoted, NULL as NULL, integers as digits);
 * the count must match (-EINVAL). idempotent: if the connection is lost, the
 * job is run again on the next connection; otherwise it fails -ECONNRESET.
 * cb runs exactly once on the loop thread. Returns 0 or -EINVAL/-ENOMEM. */
int cdr_db_exec(struct cdr_db *db, const char *sql, const struct cdr_db_param *params, size_t nparams, bool idempotent,
		cdr_db_fn cb, void *arg);

/* Queues several statements (no parameters: already built with
 * cdr_db_exec's rules, or constant) run in one transaction: all or none.
 * The result is that of the last statement, or the first error. */
int cdr_db_exec_batch(struct cdr_db *db, const char *const *sqls, size_t n, cdr_db_fn cb, void *arg);

/* Blocking, for start-up and tools (not the loop): applies the migrations
 * of dir (files NNN_name.sql, in order of NNN) not yet recorded in the table
 * schema_migrations, each recorded with its checksum. An applied migration
 * whose file changed is an error. Returns 0 or a negative errno with err
 * saying which file and why. */
int cdr_db_migrate_sync(const struct cdr_db_opts *opts, const char *dir, char *err, size_t errlen);

/* Pure part of the migrations, for tests: lists dir's migrations sorted by
 * version into a malloc'd array (free with cdr_db_migrations_free). A file
 * whose name is not NNN_name.sql, or two with one version, is an error. */
struct cdr_db_migration {
	unsigned version;
	char *name;	   /* "001_init.sql" */
	char *sql;	   /* contents */
	uint64_t checksum; /* FNV-1a 64 of the contents */
};
int cdr_db_migrations_read(const char *dir, struct cdr_db_migration **ret, size_t *n, char *err, size_t errlen);
void cdr_db_migrations_free(struct cdr_db_migration *m, size_t n);

#endif
