/* The keys every daemon's config file has. */
#include <confdr/daemon.h>
#include <confdr/http.h>
#include <confdr/log.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MAX 1024

static const char *const log_levels[] = { "debug", "info", "notice", "warn", "error", NULL };

/* "" or ADDRESS:PORT (whether it is loopback: cdr_daemon_conf_listen). */
static const char *check_listen(const char *value)
{
	char addr[64];
	const char *why = NULL;
	uint16_t port;

	if (!*value)
		return NULL;
	return cdr_http_parse_listen(value, addr, sizeof(addr), &port, &why) < 0 ? why : NULL;
}

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
	K("daemon", "metrics_listen", CDR_CONF_STR, metrics_listen, "", 0, 0, NULL, check_listen,
	  "ADDRESS:PORT serving /metrics (Prometheus text), /healthz and /readyz over HTTP, a loopback address "
	  "(127.0.0.1:9464, [::1]:9464); empty: off"),
	K("daemon", "metrics_remote", CDR_CONF_BOOL, metrics_remote, "false", 0, 0, NULL, NULL,
	  "let metrics_listen be an address other than loopback (the endpoints have no authentication: firewall it)"),
	K("zookeeper", "hosts", CDR_CONF_STR, zk_hosts, NULL, 0, 0, NULL, cdr_conf_check_hostport,
	  "ZooKeeper ensemble host:port[,host:port...]"),
	K("zookeeper", "chroot", CDR_CONF_STR, zk_chroot, "/dr", 0, 0, NULL, NULL, "chroot of confdr's tree"),
	K("zookeeper", "session_timeout", CDR_CONF_MS, zk_session_timeout_ms, "6s", 2000, 60000, NULL, NULL,
	  "ZooKeeper session timeout"),
	K("zookeeper", "user", CDR_CONF_STR, zk_user, "", 0, 0, NULL, NULL,
	  "digest user of every session; empty: none (nodes are then created open to all)"),
	K("zookeeper", "password", CDR_CONF_STR, zk_password, "", 0, 0, NULL, NULL,
	  "ZooKeeper user's password (better: password_file)"),
	K("zookeeper", "password_file", CDR_CONF_STR, zk_password_file, "", 0, 0, NULL, NULL,
	  "file holding the ZooKeeper user's password, not readable by others (relative: to this file's directory)"),
	K("amqp", "user", CDR_CONF_STR, amqp_user, "guest", 0, 0, NULL, NULL, "AMQP user"),
	K("amqp", "password", CDR_CONF_STR, amqp_password, "guest", 0, 0, NULL, NULL,
	  "AMQP password (better: password_file)"),
	K("amqp", "password_file", CDR_CONF_STR, amqp_password_file, "", 0, 0, NULL, NULL,
	  "file holding the AMQP password, not readable by others (relative: to this file's directory)"),
	K("amqp", "heartbeat", CDR_CONF_MS, amqp_heartbeat_ms, "10s", 1000, 600000, NULL, NULL,
	  "AMQP heartbeat interval"),
	K("amqp", "prefetch", CDR_CONF_INT, amqp_prefetch, "256", 1, 65535, NULL, NULL,
	  "unacknowledged deliveries per consumer"),
	K("amqp", "check_senders", CDR_CONF_BOOL, amqp_check_senders, "true", 0, 0, NULL, NULL,
	  "refuse a message whose broker user (user_id) may not send its type; false: log it only"),
	K("amqp", "anonymous_cm", CDR_CONF_BOOL, amqp_anonymous_cm, "true", 0, 0, NULL, NULL,
	  "take CM requests that carry no user_id (the fixed CM contract sets none)"),
	K("amqp", "tls_ca", CDR_CONF_STR, amqp_tls_ca, "", 0, 0, NULL, NULL,
	  "CA bundle (PEM): connect with TLS (amqps) and check the broker's certificate and name; empty: plain "
	  "AMQP (relative: to this file's directory)"),
	K("reconnect", "min", CDR_CONF_MS, reconnect_min_ms, "200ms", 10, 60000, NULL, NULL,
	  "first re-connection delay"),
	K("reconnect", "max", CDR_CONF_MS, reconnect_max_ms, "10s", 100, 600000, NULL, NULL,
	  "longest re-connection delay"),
	K("redis", "connect_timeout", CDR_CONF_MS, redis_connect_timeout_ms, "2s", 100, 60000, NULL, NULL,
	  "Redis connect timeout"),
	K("redis", "user", CDR_CONF_STR, redis_user, "", 0, 0, NULL, NULL,
	  "Redis ACL user, sent with AUTH first on every connection; empty: none"),
	K("redis", "password", CDR_CONF_STR, redis_password, "", 0, 0, NULL, NULL,
	  "Redis user's password (better: password_file)"),
	K("redis", "password_file", CDR_CONF_STR, redis_password_file, "", 0, 0, NULL, NULL,
	  "file holding the Redis user's password, not readable by others (relative: to this file's directory)"),
	K("mysql", "user", CDR_CONF_STR, mysql_user, "confdr", 0, 0, NULL, NULL, "MySQL user"),
	K("mysql", "password", CDR_CONF_STR, mysql_password, "", 0, 0, NULL, NULL,
	  "MySQL password (better: password_file)"),
	K("mysql", "password_file", CDR_CONF_STR, mysql_password_file, "", 0, 0, NULL, NULL,
	  "file holding the MySQL password, not readable by others (relative: to this file's directory)"),
	K("mysql", "connect_timeout", CDR_CONF_MS, mysql_connect_timeout_ms, "5s", 100, 60000, NULL, NULL,
	  "MySQL connect timeout"),
	K("mysql", "migrations", CDR_CONF_STR, mysql_migrations, "", 0, 0, NULL, NULL,
	  "directory of schema migrations applied at start; empty: none"),
	K("mysql", "migrations_user", CDR_CONF_STR, mysql_migrations_user, "", 0, 0, NULL, NULL,
	  "MySQL user that applies the migrations (DDL); empty: user"),
	K("mysql", "migrations_password", CDR_CONF_STR, mysql_migrations_password, "", 0, 0, NULL, NULL,
	  "migrations_user's password (better: migrations_password_file)"),
	K("mysql", "migrations_password_file", CDR_CONF_STR, mysql_migrations_password_file, "", 0, 0, NULL, NULL,
	  "file holding migrations_user's password, not readable by others (relative: to this file's directory)"),
	K("mysql", "tls_ca", CDR_CONF_STR, mysql_tls_ca, "", 0, 0, NULL, NULL,
	  "CA bundle (PEM): connect with TLS and check the server's certificate and name; empty: plain "
	  "(relative: to this file's directory)"),
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};

int cdr_secret_read(const char *path, const char *conf_path, char **ret, char *err, size_t errlen)
{
	char full[PATH_MAX], buf[SECRET_MAX + 2];
	const char *slash = conf_path ? strrchr(conf_path, '/') : NULL;
	struct stat st;
	ssize_t n;
	size_t len;
	int fd, r;

	if (!path || !*path) {
		snprintf(err, errlen, "no file named");
		return -EINVAL;
	}
	if (path[0] != '/' && slash)
		r = snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - conf_path), conf_path, path);
	else
		r = snprintf(full, sizeof(full), "%s", path);
	if (r < 0 || (size_t)r >= sizeof(full)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", full, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", full);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(err, errlen, "%s: mode %04o: others may read or write it (chmod o-rw %s)", full,
			 (unsigned)(st.st_mode & 07777), full);
		close(fd);
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", full, strerror(-r));
		return r;
	}
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	if (len == 0 || len > SECRET_MAX) {
		snprintf(err, errlen, "%s: %s", full, len ? "longer than 1024 bytes" : "empty first line");
		return -EINVAL;
	}
	buf[len] = '\0';
	*ret = strdup(buf);
	memset(buf, 0, sizeof(buf));
	return *ret ? 0 : -ENOMEM;
}

/* One password_file key: read into *password unless the file also sets
 * password (other than its default def). */
static int secret_key(const char *section, char **password, const char *def, const char *file, const char *conf_path,
		      char *err, size_t errlen)
{
	char why[PATH_MAX + 128], *secret = NULL;

	if (!file || !*file)
		return 0;
	if (*password && strcmp(*password, def)) {
		snprintf(err, errlen, "[%s] password and password_file are both set: keep one", section);
		return -EINVAL;
	}
	if (cdr_secret_read(file, conf_path, &secret, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "[%s] password_file: %s", section, why);
		return -EINVAL;
	}
	free(*password);
	*password = secret;
	return 0;
}

/* One tls_ca key: made absolute (relative to the config file's directory)
 * and checked readable now, so a wrong path is a config error, not a link
 * that never comes up. */
static int ca_key(const char *section, char **path, const char *conf_path, char *err, size_t errlen)
{
	const char *slash = conf_path ? strrchr(conf_path, '/') : NULL;
	char full[PATH_MAX], *dup;
	int n;

	if (!*path || !**path)
		return 0;
	if (**path != '/' && slash)
		n = snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - conf_path), conf_path, *path);
	else
		n = snprintf(full, sizeof(full), "%s", *path);
	if (n < 0 || (size_t)n >= sizeof(full)) {
		snprintf(err, errlen, "[%s] tls_ca: %s: path too long", section, *path);
		return -EINVAL;
	}
	if (access(full, R_OK) < 0) {
		snprintf(err, errlen, "[%s] tls_ca: %s: %s", section, full, strerror(errno));
		return -EINVAL;
	}
	dup = strdup(full);
	if (!dup) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	free(*path);
	*path = dup;
	return 0;
}

/* A password written in the config itself (not its default, no file). */
static bool inline_secret(const char *pw, const char *dflt, const char *file)
{
	return pw && *pw && strcmp(pw, dflt) != 0 && !(file && *file);
}

int cdr_daemon_conf_secrets(struct cdr_daemon_conf *cf, const char *conf_path, bool *warn, char *err, size_t errlen)
{
	struct stat st;
	bool inline_pw = inline_secret(cf->amqp_password, "guest", cf->amqp_password_file) ||
			 inline_secret(cf->mysql_password, "", cf->mysql_password_file) ||
			 inline_secret(cf->zk_password, "", cf->zk_password_file) ||
			 inline_secret(cf->redis_password, "", cf->redis_password_file) ||
			 inline_secret(cf->mysql_migrations_password, "", cf->mysql_migrations_password_file);

	*warn = inline_pw && conf_path && stat(conf_path, &st) == 0 && (st.st_mode & S_IROTH);
	if (secret_key("amqp", &cf->amqp_password, "guest", cf->amqp_password_file, conf_path, err, errlen) < 0 ||
	    secret_key("mysql", &cf->mysql_password, "", cf->mysql_password_file, conf_path, err, errlen) < 0 ||
	    secret_key("zookeeper", &cf->zk_password, "", cf->zk_password_file, conf_path, err, errlen) < 0 ||
	    secret_key("redis", &cf->redis_password, "", cf->redis_password_file, conf_path, err, errlen) < 0 ||
	    secret_key("mysql", &cf->mysql_migrations_password, "", cf->mysql_migrations_password_file, conf_path, err,
		       errlen) < 0 ||
	    ca_key("amqp", &cf->amqp_tls_ca, conf_path, err, errlen) < 0 ||
	    ca_key("mysql", &cf->mysql_tls_ca, conf_path, err, errlen) < 0)
		return -EINVAL;
	/* A user without a password is a mistake, not "none" (Redis takes a
	 * password alone: the default user's). */
	if ((cf->zk_user && *cf->zk_user) != (cf->zk_password && *cf->zk_password)) {
		snprintf(err, errlen, "[zookeeper] user and password (or password_file) go together");
		return -EINVAL;
	}
	if (cf->redis_user && *cf->redis_user && !(cf->redis_password && *cf->redis_password)) {
		snprintf(err, errlen, "[redis] user needs a password (or password_file)");
		return -EINVAL;
	}
	return 0;
}

int cdr_daemon_conf_listen(const struct cdr_daemon_conf *cf, char *err, size_t errlen)
{
	char addr[64];
	const char *why;
	uint16_t port;

	if (!cf->metrics_listen || !*cf->metrics_listen || cf->metrics_remote)
		return 0;
	if (cdr_http_parse_listen(cf->metrics_listen, addr, sizeof(addr), &port, &why) == 0 &&
	    !cdr_http_loopback(addr)) {
		snprintf(err, errlen,
			 "[daemon] metrics_listen: %s is not a loopback address (127.0.0.0/8, ::1); the endpoints have "
			 "no authentication: set [daemon] metrics_remote = true to serve them there",
			 cf->metrics_listen);
		return -EINVAL;
	}
	return 0;
}
