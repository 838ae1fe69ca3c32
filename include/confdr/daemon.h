/* The life of a confdr daemon, shared by css, rms and pms.
 *
 * main() of each daemon is one call: cdr_daemon_main(&ops, argc, argv). It
 * parses the arguments, loads and validates the config (every error as
 * "file:line: [section] key: message", exit 78), and runs the loop:
 *
 *   ZooKeeper session -> this platform's topology -> its main room's
 *   endpoints (watched) -> AMQP, Redis, MySQL connections (re-connected with
 *   back-off, switched when an endpoint changes) -> leader election
 *   (/election/<platform>/<daemon>) -> the daemon's own work.
 *
 * It publishes the daemon's liveness and connection states as the ephemeral
 * node /live/<platform>/<daemon>/<instance> (what `confdrctl status` shows),
 * with "ready" once it has its state (connected, topology read, placed in
 * the election; the active one taking all its work); under systemd
 * ($NOTIFY_SOCKET) it says READY=1 then, STATUS= as it changes, WATCHDOG=1
 * from the loop and STOPPING=1 (deploy/systemd/README.md).
 * SIGTERM/SIGINT stop gracefully within [daemon] shutdown_timeout, a second
 * one forces the exit; SIGHUP reloads the config if the new one is valid. */
#ifndef CONFDR_DAEMON_H
#define CONFDR_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <confdr/conf.h>
#include <confdr/mq.h>

#include <jansson.h>

struct cdr_daemon;
struct cdr_loop;
struct cdr_mq;
struct cdr_redis;
struct cdr_db;
struct cdr_zk;

/* The keys every daemon has; a daemon's own config struct starts with it. */
struct cdr_daemon_conf {
	char *platform;
	char *instance;
	int log_level; /* enum cdr_log_level */
	bool log_timestamps;
	uint64_t shutdown_timeout_ms;
	char *metrics_listen; /* "" (off), or ADDRESS:PORT of /metrics, /healthz, /readyz (docs/metrics.md) */
	bool metrics_remote;  /* metrics_listen may be other than a loopback address */

	char *zk_hosts;
	char *zk_chroot;
	uint64_t zk_session_timeout_ms;
	char *zk_user; /* digest authentication; "" for none */
	char *zk_password;
	char *zk_password_file;

	char *amqp_user;
	char *amqp_password;
	char *amqp_password_file;
	uint64_t amqp_heartbeat_ms;
	int64_t amqp_prefetch;
	bool amqp_check_senders; /* refuse a message its sender's broker user may not send (bus.h) */
	bool amqp_anonymous_cm;	 /* take CM requests without user_id (the fixed CM contract sets none) */
	char *amqp_tls_ca;	 /* "": plain AMQP; else amqps with this CA (made absolute at load) */
	uint64_t reconnect_min_ms;
	uint64_t reconnect_max_ms;

	uint64_t redis_connect_timeout_ms;
	char *redis_user; /* ACL user (AUTH user password); "" for none */
	char *redis_password;
	char *redis_password_file;

	char *mysql_user;
	char *mysql_password;
	char *mysql_password_file;
	uint64_t mysql_connect_timeout_ms;
	char *mysql_migrations;
	char *mysql_migrations_user; /* "" = mysql_user */
	char *mysql_migrations_password;
	char *mysql_migrations_password_file;
	char *mysql_tls_ca; /* "": plain; else TLS with this CA (made absolute at load) */
};

/* The table behind struct cdr_daemon_conf (ended by a NULL name). */
extern const struct cdr_conf_key cdr_daemon_conf_keys[];

/* Reads a secret from path (relative: to the directory of conf_path): a
 * regular file that others can neither read nor write (0600 or 0640), its
 * first line without the line end, 1..1024 bytes. 0 and *ret (malloc'd), or
 * -errno and a one-line reason in err. */
int cdr_secret_read(const char *path, const char *conf_path, char **ret, char *err, size_t errlen);

/* After a config file is loaded: each password_file read into its password
 * (a password in the file too is an error); each tls_ca made absolute
 * (relative: to the directory of conf_path) and checked readable. 0, or
 * -EINVAL and the reason in err. *warn: set when the file itself holds a password and others may read
 * it (logged by the caller: password_file is the remedy). */
int cdr_daemon_conf_secrets(struct cdr_daemon_conf *cf, const char *conf_path, bool *warn, char *err, size_t errlen);

/* After a config file is loaded: [daemon] metrics_listen is a loopback
 * address unless metrics_remote allows another. 0, or -EINVAL and the reason
 * in err. */
int cdr_daemon_conf_listen(const struct cdr_daemon_conf *cf, char *err, size_t errlen);

/* How ready the active instance is for what the broker brings; it only rises
 * while the daemon is active (cdr_daemon_ready) and is NONE on standby. */
enum cdr_ready {
	CDR_READY_NONE,
	CDR_READY_LISTEN, /* takes its notices (css: once it has the topology) */
	CDR_READY_SERVE,  /* takes its work queues too (css: once its view is rebuilt) */
};

/* A queue the active instance consumes, or an exchange it subscribes to (a
 * private queue of its own, binding key ""), with the callback of its
 * deliveries (arg: the server), taken once the daemon is `when` ready. */
struct cdr_daemon_queue {
	const char *queue;    /* consumed; NULL for a subscription */
	const char *exchange; /* subscribed to; NULL for a queue */
	cdr_mq_deliver_fn fn;
	enum cdr_ready when;
};

/* What a daemon plugs into the common life. Every callback runs on the loop. */
struct cdr_daemon_ops {
	const char *name;    /* "css" */
	const char *summary; /* one line for --help */
	/* The daemon's own keys (offsets into its conf struct) or NULL, and the
	 * size of that struct, which starts with struct cdr_daemon_conf. */
	const struct cdr_conf_key *keys;
	size_t conf_size;
	bool uses_redis;
	bool uses_mysql;

	/* Builds the daemon's server once the loop exists; no I/O yet. Returns
	 * 0 or a negative errno (the daemon exits 1). */
	int (*init)(struct cdr_daemon *d, void **server);
	/* The connections are usable, or one of them went down ("amqp",
	 * "redis", "mysql", "zookeeper"). */
	void (*on_link)(struct cdr_daemon *d, void *server, const char *link, bool up);
	/* Became active (leader, with a new epoch) or standby. A daemon that is
	 * told standby stops acting at once: its epoch is no longer valid. */
	void (*on_role)(struct cdr_daemon *d, void *server, bool active, int64_t epoch);
	/* A valid new config after SIGHUP (same struct layout); the daemon copies
	 * what it can apply live. May be NULL. */
	void (*reload)(struct cdr_daemon *d, void *server, const void *conf);
	/* Frees the server; called after the loop stopped. */
	void (*free)(void *server);
	/* Just before /metrics is rendered: the daemon copies the figures it
	 * keeps into its families of cdr_daemon_metrics(d). May be NULL. */
	void (*metrics)(struct cdr_daemon *d, void *server);
	/* /readyz, once the common checks passed (ZooKeeper, the links, a
	 * role): NULL when the daemon has its state, else why not (a static
	 * text: "active, view not rebuilt yet"). May be NULL. */
	const char *(*not_ready)(struct cdr_daemon *d, void *server);
	/* What the active instance takes from the broker (ended by a NULL fn;
	 * NULL: nothing). The common life consumes and subscribes them as the
	 * daemon becomes ready (cdr_daemon_ready), again on a new broker handle
	 * (a moved endpoint), and cancels the consumed queues when the daemon
	 * becomes standby, before on_role tells it. */
	const struct cdr_daemon_queue *queues;
	/* Checks what the key table cannot (files the daemon's own keys name),
	 * after the common keys' secrets are read; conf_path is the file's path
	 * (relative paths are taken from its directory). 0, or a negative errno
	 * with err set: the file is refused (exit 78, or a SIGHUP refused).
	 * May be NULL. */
	int (*check_conf)(void *conf, const char *conf_path, char *err, size_t errlen);
};

/* Runs a daemon; returns the process exit code (0, 1, 64 usage, 78 config). */
int cdr_daemon_main(const struct cdr_daemon_ops *ops, int argc, char **argv);

/* Accessors for the daemon's modules. Borrowed; the link getters return NULL
 * until the endpoint is known (the objects then exist even while the link is
 * down: check cdr_daemon_link_up). */
struct cdr_loop *cdr_daemon_loop(struct cdr_daemon *d);
const void *cdr_daemon_conf(struct cdr_daemon *d);
struct cdr_zk *cdr_daemon_zk(struct cdr_daemon *d);
struct cdr_mq *cdr_daemon_mq(struct cdr_daemon *d);
struct cdr_redis *cdr_daemon_redis(struct cdr_daemon *d);
/* A second connection to the same Redis, for WAIT (which blocks its client):
 * css waits there for the replica before it answers (NULL: none). */
struct cdr_redis *cdr_daemon_redis_wait(struct cdr_daemon *d);

struct cdr_endpoint;
/* The amqp:// URL of broker endpoint ep with the daemon's credentials
 * ([amqp] user, password), for a connection to another platform's broker.
 * Returns 0, or -ENOSPC when it does not fit in len. */
int cdr_daemon_amqp_url(const struct cdr_daemon *d, const struct cdr_endpoint *ep, char *url, size_t len);
struct cdr_db *cdr_daemon_db(struct cdr_daemon *d);
bool cdr_daemon_link_up(struct cdr_daemon *d, const char *link);
bool cdr_daemon_active(struct cdr_daemon *d);
/* Whether the active instance may act now (take a request, run a timer that
 * changes things): active, and not just back from a stall of its loop that
 * ZooKeeper has not yet confirmed it survived (daemon_stall.c). Checks for a
 * stall itself, so a delivery handed over right after one is refused. */
bool cdr_daemon_acting(struct cdr_daemon *d);
/* How many stalls made the instance confirm its session. */
uint64_t cdr_daemon_stalls(const struct cdr_daemon *d);
int64_t cdr_daemon_epoch(struct cdr_daemon *d);

/* A message refused for its sender (bus.h, cdr_dispatch): counted, and the
 * count shown as "senders_refused" in the liveness node (written at most
 * every 200 ms). Returns the count. */
uint64_t cdr_daemon_sender_refused(struct cdr_daemon *d);

/* The service domain's topology, followed: read from ZooKeeper on
 * cdr_topo_follow_fetch (say, once the session is up), again every
 * *refresh_ms (read at each scheduling, so a reload applies), and after a
 * failed read every 2 s until it works. on_new gets every topology read (the
 * callee owns it); failures are logged here. Runs on the loop. */
struct cdr_topology;
struct cdr_topo_follow;
typedef void (*cdr_topo_new_fn)(struct cdr_topology *t, void *arg);
int cdr_topo_follow_new(struct cdr_daemon *d, const uint64_t *refresh_ms, cdr_topo_new_fn on_new, void *arg,
			struct cdr_topo_follow **ret);
/* Reads now, unless a read is under way. */
void cdr_topo_follow_fetch(struct cdr_topo_follow *f);
/* Accepts NULL; returns NULL. */
struct cdr_topo_follow *cdr_topo_follow_free(struct cdr_topo_follow *f);

struct cdr_metrics;
/* The registry /metrics renders (include/confdr/metrics.h), with the common
 * families (role, epoch, links, alarms: docs/metrics.md); the daemon adds
 * its own in ops->init. Borrowed; it lives until after ops->free. */
struct cdr_metrics *cdr_daemon_metrics(struct cdr_daemon *d);

/* An alarm raised (kind "room_abnormal", severity "major", "cleared", ...):
 * counted in confdr_alarms_total{kind,severity}. The caller logs and
 * publishes it. */
void cdr_daemon_alarm(struct cdr_daemon *d, const char *kind, const char *severity);

/* The daemon's own figures (an object, stolen; NULL: none), published as
 * "stats" in its liveness node when they change (at most every 200 ms):
 * what `confdrctl status` shows per daemon, e.g. css's conferences. */
void cdr_daemon_set_stats(struct cdr_daemon *d, json_t *stats);

/* The active daemon is ready for ops->queues up to r (see enum cdr_ready):
 * what is due is consumed or subscribed now, or once the broker is there.
 * Ignored while standby. */
void cdr_daemon_ready(struct cdr_daemon *d, enum cdr_ready r);

/* Asks for a graceful stop, as SIGTERM does. */
void cdr_daemon_stop(struct cdr_daemon *d);

#endif
