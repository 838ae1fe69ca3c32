/* Private state of the daemon runner, shared by daemon.c and daemon_links.c. */
#ifndef CONFDR_DAEMON_INTERNAL_H
#define CONFDR_DAEMON_INTERNAL_H

#include <confdr/daemon.h>
#include <confdr/loop.h>

enum daemon_link { LINK_ZK, LINK_AMQP, LINK_REDIS, LINK_MYSQL, LINK_COUNT };

struct cdr_daemon {
	const struct cdr_daemon_ops *ops;
	const struct cdr_conf_key *tables[3];
	const char *conf_path;
	struct cdr_daemon_conf *conf; /* really ops->conf_size bytes */
	char instance[160];
	uint64_t started_wall_ms;
	uint64_t role_wall_ms; /* when the role last changed (wall clock; 0: never) */
	void *server;
	int exit_code;
	bool stopping;

	struct cdr_loop *loop;
	struct cdr_timer *live_timer;
	struct cdr_timer *retry_timer; /* topology not (yet) readable */
	struct cdr_backoff topo_backoff;

	struct cdr_zk *zk;
	struct cdr_zk_election *election;
	struct cdr_zk_data_watch *watch[LINK_COUNT]; /* endpoint watches (amqp, redis, mysql) */
	struct cdr_mq *mq;
	struct cdr_redis *redis;
	struct cdr_redis *redis_wait; /* a second connection to it: replication waits (WAIT blocks its client) */
	struct cdr_db *db;
	char *main_room;
	char *endpoint[LINK_COUNT]; /* last endpoint JSON applied, to ignore repeats */
	char live_path[512];
	char *stats; /* the daemon's own figures for the liveness node (JSON text), or NULL */
	bool live_created;
	bool live_creating;
	bool live_foreign; /* the node is an earlier session's (said once) */
	bool migrated;
	struct migration *migration; /* schema migrations running */

	bool link_used[LINK_COUNT];
	bool link_known[LINK_COUNT];
	bool link_up[LINK_COUNT];
	bool active;
	int64_t epoch;
	enum cdr_ready ready; /* how ready the active daemon says it is */
	unsigned subscribed;  /* ops->queues entries subscribed on the current mq (bit i) */

	/* daemon_stall.c: after the loop stood still, no work until ZooKeeper
	 * confirms the session */
	struct cdr_timer *beat_timer, *stall_timer;
	uint64_t last_beat; /* monotonic ms of the last beat of the loop */
	bool suspect;	    /* active, but not acting until confirmed */
	bool confirming;
	int64_t suspect_session;
	uint64_t stalls;
	uint64_t senders_refused; /* messages refused for their sender (cdr_dispatch) */

	/* daemon_notify.c: whether it has its state ("ready" in the liveness
	 * node); systemd's READY=1, STATUS=, WATCHDOG=1 */
	struct cdr_timer *notify_timer, *watchdog_timer; /* watchdog: NULL unless systemd asks */
	bool has_state;
	bool under_systemd; /* $NOTIFY_SOCKET set */
	bool notified_ready;
	bool notify_failed;
	char notified_status[256];
	/* daemon_metrics.c: /metrics, /healthz, /readyz */
	struct cdr_metrics *metrics;
	struct cdr_http *http;
	struct cdr_timer *http_retry; /* the address could not be bound: tried again */
	struct cdr_metric *m_info, *m_active, *m_epoch, *m_ready, *m_store_up, *m_reconnects, *m_alarms, *m_stalls,
		*m_senders_refused, *m_start;
	bool link_was_up[LINK_COUNT]; /* up once: a later up is a reconnection */
	uint64_t reconnects[LINK_COUNT];
};

int daemon_run(struct cdr_daemon *d);
int daemon_links_start(struct cdr_daemon *d);
void daemon_links_stop(struct cdr_daemon *d);
void daemon_links_free(struct cdr_daemon *d);
void daemon_set_link(struct cdr_daemon *d, enum daemon_link link, bool up, const char *why);
void daemon_take_queues(struct cdr_daemon *d);
void daemon_drop_queues(struct cdr_daemon *d);
void daemon_live_changed(struct cdr_daemon *d);
void daemon_live_write(void *arg);
int daemon_stall_start(struct cdr_daemon *d);
void daemon_stall_free(struct cdr_daemon *d);
void daemon_stall_role(struct cdr_daemon *d);
char *daemon_live_json(struct cdr_daemon *d);
/* daemon_ready.c: true when ready; buf says "standby", "active, epoch N"
 * or why not (docs/metrics.md "Readiness") */
bool daemon_readiness(struct cdr_daemon *d, char *buf, size_t len);
int daemon_notify_start(struct cdr_daemon *d);
void daemon_notify_stopping(struct cdr_daemon *d);
void daemon_notify_free(struct cdr_daemon *d);
extern const char *const daemon_link_names[LINK_COUNT];
int daemon_metrics_new(struct cdr_daemon *d);
void daemon_metrics_start(struct cdr_daemon *d);
void daemon_metrics_free(struct cdr_daemon *d);

#endif
