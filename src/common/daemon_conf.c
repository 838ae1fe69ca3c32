/* The keys every daemon's config file has. */
#include <confdr/daemon.h>
#include <confdr/log.h>

#include <stddef.h>

static const char *const log_levels[] = { "debug", "info", "notice", "warn", "error", NULL };

#define K(sec, key, type, field, def, min, max, choices, check, help)                                                  \
	{                                                                                                              \
		sec, key, type, offsetof(struct cdr_daemon_conf, field), def, min, max, choices, check, help, NULL, 0  \
	}

const struct cdr_conf_key cdr_daemon_conf_keys[] = {
	K("daemon", "platform", CDR_CONF_STR, platform, NULL, 0, 0, NULL, cdr_conf_check_id,
	  "this platform's MOID, e.g. p1"),
	K("daemon", "instance", CDR_CONF_STR, instance, "", 0, 0, NULL, cdr_conf_check_id,
	  "instance name in ZooKeeper and logs; empty: <hostname>-<pid>"),
	K("daemon", "log_level", CDR_CONF_ENUM, log_level, "info", 0, 0, log_levels, NULL, "lowest level logged"),
	K("daemon", "log_timestamps", CDR_CONF_BOOL, log_timestamps, "true", 0, 0, NULL, NULL,
	  "stamp log lines (off under journald)"),
	K("daemon", "shutdown_timeout", CDR_CONF_MS, shutdown_timeout_ms, "10s", 100, 300000, NULL, NULL,
	  "deadline of a graceful stop"),
	K("zookeeper", "hosts", CDR_CONF_STR, zk_hosts, NULL, 0, 0, NULL, cdr_conf_check_hostport,
	  "ZooKeeper ensemble host:port[,host:port...]"),
	K("zookeeper", "chroot", CDR_CONF_STR, zk_chroot, "/dr", 0, 0, NULL, NULL, "chroot of confdr's tree"),
	K("zookeeper", "session_timeout", CDR_CONF_MS, zk_session_timeout_ms, "6s", 2000, 60000, NULL, NULL,
	  "ZooKeeper session timeout"),
	K("amqp", "user", CDR_CONF_STR, amqp_user, "guest", 0, 0, NULL, NULL, "AMQP user"),
	K("amqp", "password", CDR_CONF_STR, amqp_password, "guest", 0, 0, NULL, NULL, "AMQP password"),
	K("amqp", "heartbeat", CDR_CONF_MS, amqp_heartbeat_ms, "10s", 1000, 600000, NULL, NULL,
	  "AMQP heartbeat interval"),
	K("amqp", "prefetch", CDR_CONF_INT, amqp_prefetch, "256", 1, 65535, NULL, NULL,
	  "unacknowledged deliveries per consumer"),
	K("reconnect", "min", CDR_CONF_MS, reconnect_min_ms, "200ms", 10, 60000, NULL, NULL,
	  "first re-connection delay"),
	K("reconnect", "max", CDR_CONF_MS, reconnect_max_ms, "10s", 100, 600000, NULL, NULL,
	  "longest re-connection delay"),
	K("redis", "connect_timeout", CDR_CONF_MS, redis_connect_timeout_ms, "2s", 100, 60000, NULL, NULL,
	  "Redis connect timeout"),
	K("mysql", "user", CDR_CONF_STR, mysql_user, "confdr", 0, 0, NULL, NULL, "MySQL user"),
	K("mysql", "password", CDR_CONF_STR, mysql_password, "", 0, 0, NULL, NULL, "MySQL password"),
	K("mysql", "connect_timeout", CDR_CONF_MS, mysql_connect_timeout_ms, "5s", 100, 60000, NULL, NULL,
	  "MySQL connect timeout"),
	K("mysql", "migrations", CDR_CONF_STR, mysql_migrations, "", 0, 0, NULL, NULL,
	  "directory of schema migrations applied at start; empty: none"),
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};
