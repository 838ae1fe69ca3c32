/* MySQL/MariaDB client for the event loop: one worker thread per struct
 * cdr_db owns a blocking connection (MariaDB 10.11 client); jobs go to it
 * through a queue and their results come back to the loop thread with
 * cdr_loop_post(). See docs/storage.md for why a thread and not the
 * _start/_cont calls.
 *
 * Jobs run one at a time, in the order queued. While the server is away the
 * worker re-connects with back-off and the queue waits (up to max_queue
 * jobs), so history written during a short outage is not lost. */
#ifndef CONFDR_DB_H
#define CONFDR_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdr_loop;
struct cdr_db;

/* up/down changes of the connection, on the loop thread. */
typedef void (*cdr_db_state_fn)(bool up, const char *why, void *arg);

struct cdr_db_opts {
	const char *host; /* required; copied (so are the other strings) */
	int port;	  /* 1..65535 */
	const char *user; /* required */
	const char *password;
	const char *database;			     /* required */
	unsigned connect_timeout_ms;		     /* 0 = 5000 (the client counts whole seconds) */
	unsigned reconnect_min_ms, reconnect_max_ms; /* 0 = 200 / 10000 */
	cdr_db_state_fn on_state;		     /* may be NULL */
	void *arg;
	unsigned max_queue; /* jobs waiting at most; 0 = 100000 */
	/* CA bundle (PEM file): when set, the connection is TLS (the client
	 * refuses a server without it) and the server's certificate must be
	 * signed by one of its CAs and name host; NULL or "": plain. */
	const char *tls_ca;
};

/* What a job produced; borrowed for the duration of the callback.
 * status: 0; -EIO for an SQL error (code and error say which); -EINVAL if
 * the statement's '?' count differs from the parameters given; -ECONNRESET
 * if the connection was lost during a job that may not be repeated (it may
 * or may not have been applied); -ECANCELED at cdr_db_free. */
struct cdr_db_result {
	int status;
	unsigned code;	     /* mysql_errno / mysql_stmt_errno, 0 if none */
	const char *error;   /* the server's or client's text, NULL if none */
	uint64_t affected;   /* rows changed by the last statement */
	uint64_t insert_id;  /* AUTO_INCREMENT value of the last statement */
	size_t nrows, ncols; /* of the last statement that returned rows */
	char **cells;	     /* nrows * ncols values as text, row-major; NULL for SQL NULL */
};

/* The value at (row, col) as text; NULL for SQL NULL or out of range. */
const char *cdr_db_value(const struct cdr_db_result *r, size_t row, size_t col);

typedef void (*cdr_db_fn)(const struct cdr_db_result *r, void *arg);

/* A value for one '?' of a statement: a string (NULL str: SQL NULL), or a
 * 64-bit integer. Sent with the binary protocol of prepared statements: no
 * escaping, no quoting, no way for a value to become SQL. */
struct cdr_db_param {
	const char *str;
	int64_t num;
	bool is_num;
};
#define CDR_DB_STR(s) ((struct cdr_db_param){ .str = (s) })
#define CDR_DB_INT(n) ((struct cdr_db_param){ .num = (n), .is_num = true })
#define CDR_DB_NULL   ((struct cdr_db_param){ 0 })

/* One statement of a batch: SQL with '?' and its parameters. */
struct cdr_db_stmt {
	const char *sql;
	const struct cdr_db_param *params;
	size_t nparams;
};

/* Starts the worker, which connects in the background (on_state tells when
 * it is up) and re-connects with back-off. Returns 0, -EINVAL (missing host,
 * user or database, bad port), -ENOMEM or -EAGAIN (no thread). *ret written
 * only on success. */
int cdr_db_new(struct cdr_loop *loop, const struct cdr_db_opts *opts, struct cdr_db **ret);

/* Loop thread. Lets the job in progress finish, answers the queued ones
 * -ECANCELED (and a job waiting for a connection), runs the results already
 * posted, closes the connection and joins the worker. Not from inside one of
 * this db's callbacks. Accepts NULL; returns NULL. */
struct cdr_db *cdr_db_free(struct cdr_db *db);

/* Queues one statement; everything is copied. Without parameters the SQL
 * goes as text (any statement); with parameters it is prepared once per
 * connection (a small cache keyed by the SQL text) and executed with them.
 * idempotent: if the connection is lost during the job it is run once more
 * on a fresh connection; otherwise it fails -ECONNRESET. cb runs exactly
 * once, on the loop thread. Returns 0, -EINVAL (no SQL or cb, '?' count
 * differs from nparams), -ENOBUFS (max_queue jobs waiting) or -ENOMEM. */
int cdr_db_exec(struct cdr_db *db, const char *sql, const struct cdr_db_param *params, size_t nparams, bool idempotent,
		cdr_db_fn cb, void *arg);

/* Queues n statements run in one transaction: all applied or none. A
 * connection lost before COMMIT was sent rolls the transaction back on the
 * server, so the batch is run again once on a fresh connection; lost during
 * COMMIT, it is run again only if idempotent, otherwise -ECONNRESET. The
 * result is that of the last statement, or of the first that failed (then
 * everything is rolled back). Several rows of one statement should go as
 * one multi-row INSERT (up to 65,535 parameters). Returns as cdr_db_exec. */
int cdr_db_exec_batch(struct cdr_db *db, const struct cdr_db_stmt *stmts, size_t n, bool idempotent, cdr_db_fn cb,
		      void *arg);

/* Blocking, for start-up and tools (not the loop thread): applies the
 * migrations of dir (files NNN_name.sql, in order of NNN) not yet recorded in
 * the table schema_migrations, each in a transaction with its record (MariaDB
 * commits DDL implicitly, so each file is written to be re-runnable). Two
 * processes migrating at once are serialised with GET_LOCK. An applied
 * migration whose file changed is an error and nothing more is applied.
 * opts->on_state is not used. Returns 0; -EINVAL (bad file names, a changed
 * migration), -EIO (an SQL error), -ECONNREFUSED (cannot connect), -ETIMEDOUT
 * (lock not obtained in 60 s); err then says which file and why. */
int cdr_db_migrate_sync(const struct cdr_db_opts *opts, const char *dir, char *err, size_t errlen);

/* The pure part of the migrations (tests, tools). */
struct cdr_db_migration {
	unsigned version;  /* NNN */
	char *name;	   /* "001_init.sql" */
	char *sql;	   /* contents */
	uint64_t checksum; /* FNV-1a 64 of the contents (change detection, not security) */
};

/* Lists dir's migrations sorted by version into a malloc'd array (free with
 * cdr_db_migrations_free). A file whose name is not NNN_name.sql (NNN from
 * 001; name of lowercase letters, digits, '_', '-'), or two files with one
 * version, is an error: -EINVAL with err naming the file. Files starting with
 * '.' are ignored. Returns 0, -EINVAL, -ENOMEM or -errno of opendir/read. */
int cdr_db_migrations_read(const char *dir, struct cdr_db_migration **ret, size_t *n, char *err, size_t errlen);

/* Frees what cdr_db_migrations_read returned. Accepts NULL. */
void cdr_db_migrations_free(struct cdr_db_migration *m, size_t n);

#endif
