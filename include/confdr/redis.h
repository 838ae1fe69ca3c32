/* Redis client inside the event loop: hiredis 0.14 async API on the loop's
 * libevent base, with re-connection and back-off.
 *
 * Commands fail fast while the connection is down (-ENOTCONN): the caller
 * decides whether to wait, retry or give up, and nothing piles up in a queue
 * that the caller cannot see. Pipelining comes from the async API: every
 * command is written at once and answered in order. */
#ifndef CONFDR_REDIS_H
#define CONFDR_REDIS_H

#include <stdbool.h>
#include <stddef.h>

struct cdr_loop;
struct cdr_redis;
struct redisReply;

typedef void (*cdr_redis_state_fn)(bool up, const char *why, void *arg);

/* The largest database index a client may select (Redis itself refuses an
 * index beyond its `databases` setting, 16 by default). */
#define CDR_REDIS_DB_MAX 65535

struct cdr_redis_opts {
	const char *host;			     /* required; copied. An address: resolved on the loop thread */
	int port;				     /* 1..65535 */
	int db;					     /* the database (SELECT), 0..CDR_REDIS_DB_MAX; default 0 */
	const char *name;			     /* for debug logs, e.g. the platform; default "redis" */
	const char *user;			     /* ACL user; NULL: the default user */
	const char *password;			     /* NULL: no AUTH; else AUTH [user] password first on
						      * every connection, up once accepted; copied */
	unsigned connect_timeout_ms;		     /* 0 = 2000 */
	unsigned reconnect_min_ms, reconnect_max_ms; /* back-off; 0 = 200 / 10000 */
	cdr_redis_state_fn on_state;		     /* up/down changes, with why; may be NULL */
	void *arg;
};

/* Answer of one command. status 0: reply is the answer; -EPROTO: Redis
 * answered with an error (reply->str says which); -ECONNRESET: the connection
 * dropped before the answer (the command may or may not have run);
 * -ECANCELED: the client was freed. reply is NULL unless status is 0 or
 * -EPROTO, and is borrowed for the duration of the call. Each callback runs
 * exactly once, on the loop thread. */
typedef void (*cdr_redis_fn)(int status, const struct redisReply *reply, void *arg);

/* Creates the client and starts connecting (never blocks). With a database
 * other than 0, every connection (the first and each re-connection) sends
 * SELECT before anything else, and the client is up only once Redis accepted
 * it: no command of the caller can reach another database. A refused SELECT
 * (an index beyond the server's `databases`) drops the connection, reports
 * down with Redis's text, and is tried again with the back-off. Returns 0,
 * -EINVAL for bad options, -ENOMEM. *ret written only on success. */
int cdr_redis_new(struct cdr_loop *loop, const struct cdr_redis_opts *opts, struct cdr_redis **ret);

/* Closes the connection; pending callbacks get -ECANCELED. Not from inside
 * one of this client's callbacks. Accepts NULL; returns NULL. */
struct cdr_redis *cdr_redis_free(struct cdr_redis *r);

/* Whether the connection is up (as last reported through on_state). */
bool cdr_redis_connected(const struct cdr_redis *r);

/* Points the client at another server (a promoted replica) and database
 * (0..CDR_REDIS_DB_MAX): the current connection is dropped (pending commands
 * get -ECONNRESET) and a new one is made at once. Returns 0, -EINVAL or
 * -ENOMEM. */
int cdr_redis_set_endpoint(struct cdr_redis *r, const char *host, int port, int db);

/* Sends one command, printf-style as hiredis formats it ("%s" and "%b" with
 * a pointer and size_t length for binary-safe arguments). Returns 0 (cb will
 * run), -ENOTCONN while down, -EIO if hiredis refused the command. */
int cdr_redis_command(struct cdr_redis *r, cdr_redis_fn cb, void *arg, const char *fmt, ...);

/* The same with an argument vector (argvlen NULL: NUL-terminated strings). */
int cdr_redis_command_argv(struct cdr_redis *r, cdr_redis_fn cb, void *arg, int argc, const char **argv,
			   const size_t *argvlen);

/* MULTI/EXEC needs no helper: send MULTI, the commands and EXEC from one
 * loop callback (nothing else can come between them on the connection). The
 * EXEC answer is an array of the commands' answers, or nil if WATCH failed. */

/* A Lua script for atomic multi-key updates. It belongs to r and lives until
 * cdr_redis_free(r). It is loaded (SCRIPT LOAD) now if connected and again
 * on every new connection, then run with EVALSHA; if the server answers
 * NOSCRIPT (SCRIPT FLUSH, a promoted replica that never saw it) the same call
 * is sent again as EVAL with the source, which also caches it, and cb sees
 * only that second answer. Until the first SCRIPT LOAD is answered, calls go
 * out as EVAL. Returns 0, -EINVAL (empty source) or -ENOMEM. */
struct cdr_redis_script;
int cdr_redis_script_new(struct cdr_redis *r, const char *lua_source, struct cdr_redis_script **ret);

/* Runs the script with KEYS[1..nkeys] and ARGV[1..nargs] (NUL-terminated
 * strings, copied). cb as for cdr_redis_command: the script's return value,
 * or -EPROTO with the error the script raised. Returns 0 (cb will run),
 * -ENOTCONN while down, -ENOMEM, -EIO. */
int cdr_redis_script_run(struct cdr_redis_script *s, cdr_redis_fn cb, void *arg, int nkeys, const char *const *keys,
			 int nargs, const char *const *args);

/* Makes the connected server a master: REPLICAOF NO ONE (for a replica
 * taking over a failed platform's state). cb gets the +OK, or -EPROTO.
 * Returns as cdr_redis_command. */
int cdr_redis_promote(struct cdr_redis *r, cdr_redis_fn cb, void *arg);

#endif
