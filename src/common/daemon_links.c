/* The daemon's connections: ZooKeeper session -> topology -> watched
 * endpoints -> AMQP / Redis / MySQL clients; the election; the liveness node. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <confdr/db.h>
#include <confdr/log.h>
#include <confdr/mq.h>
#include <confdr/topology.h>
#include <confdr/redis.h>
#include <confdr/zk.h>

#include "daemon-internal.h"

static const char *const endpoint_names[LINK_COUNT] = { NULL, "mq", "redis", "mysql" };

/* ---- liveness ---- */

/* The node existed: ours (a create repeated over a reconnection), or an
 * earlier session's of this instance (a restart faster than that session's
 * end): it goes with that session; ours is created then (tried every 200 ms),
 * never taken over, or it would vanish under us. */
static void on_live_owner(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_daemon *d = arg;
	struct cdr_zk_session ses;

	d->live_creating = false;
	if (r->status == -ECANCELED)
		return;
	if (r->status == 0 && cdr_zk_session(d->zk, &ses) == 0 && r->ephemeral_owner == ses.id) {
		d->live_created = true;
		d->live_foreign = false;
		daemon_live_changed(d); /* write the newest state over it */
		return;
	}
	if (r->status == 0 && !d->live_foreign) {
		d->live_foreign = true;
		cdr_notice("zookeeper: %s still belongs to an earlier session (0x%" PRIx64
			   "); ours follows when it goes",
			   d->live_path, (uint64_t)r->ephemeral_owner);
	}
	daemon_live_changed(d);
}

static void on_live_created(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_daemon *d = arg;

	d->live_creating = false;
	if (r->status == 0) {
		d->live_created = true;
		d->live_foreign = false;
		daemon_live_changed(d); /* write the newest state over what we created */
	} else if (r->status == -EEXIST) {
		d->live_creating = true;
		if (cdr_zk_exists(d->zk, d->live_path, NULL, NULL, on_live_owner, d) < 0) {
			d->live_creating = false;
			daemon_live_changed(d);
		}
	} else if (r->status != -ECANCELED) {
		cdr_warn("zookeeper: cannot create %s: %s; retrying", d->live_path, r->error ? r->error : "");
		daemon_live_changed(d);
	}
}

static void on_live_set(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_daemon *d = arg;

	if (r->status == -ENOENT) {
		/* A new session lost the ephemeral node: create it again. */
		d->live_created = false;
		daemon_live_changed(d);
	}
}

void daemon_live_write(void *arg)
{
	struct cdr_daemon *d = arg;
	char *json;

	if (!d->zk || !d->link_up[LINK_ZK] || d->stopping)
		return;
	json = daemon_live_json(d);
	if (!json)
		return;
	if (!d->live_created) {
		if (!d->live_creating) {
			d->live_creating = true;
			if (cdr_zk_create(d->zk, d->live_path, json, strlen(json), CDR_ZK_EPHEMERAL | CDR_ZK_PARENTS,
					  on_live_created, d) < 0)
				d->live_creating = false;
		}
	} else {
		cdr_zk_set(d->zk, d->live_path, json, strlen(json), -1, on_live_set, d);
	}
	free(json);
}

/* ---- the clients ---- */

static void on_mq_state(bool up, const char *why, void *arg)
{
	daemon_set_link(arg, LINK_AMQP, up, why);
}

static void on_redis_state(bool up, const char *why, void *arg)
{
	daemon_set_link(arg, LINK_REDIS, up, why);
}

static void on_db_state(bool up, const char *why, void *arg)
{
	daemon_set_link(arg, LINK_MYSQL, up, why);
}

/* Reads {"host": ..., "port": ...} (+ one more string key) from an endpoint,
 * and when db is not NULL (Redis) the optional "db" (0..CDR_REDIS_DB_MAX; 0
 * if absent). */
static int endpoint_parse(const char *data, size_t len, const char *extra_key, char **host, int *port, char **extra,
			  int *db)
{
	json_error_t jerr;
	json_t *o = json_loadb(data, len, 0, &jerr), *h, *p, *x = NULL, *n;
	int r = -EINVAL;

	if (!o || !json_is_object(o))
		goto out;
	h = json_object_get(o, "host");
	p = json_object_get(o, "port");
	n = db ? json_object_get(o, "db") : NULL;
	if (extra_key)
		x = json_object_get(o, extra_key);
	if (!json_is_string(h) || !json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 65535)
		goto out;
	if (extra_key && !json_is_string(x))
		goto out;
	if (n && (!json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > CDR_REDIS_DB_MAX))
		goto out;
	*host = strdup(json_string_value(h));
	*port = (int)json_integer_value(p);
	*extra = extra_key ? strdup(json_string_value(x)) : NULL;
	if (db)
		*db = n ? (int)json_integer_value(n) : 0;
	r = 0;
out:
	json_decref(o);
	return r;
}

/* Percent-encodes s for the path or userinfo of an amqp:// URL. */
static void url_encode(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; *s && n + 4 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '_' || c == '.' || c == '~')
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, len - n, "%%%02X", c);
	}
	out[n] = '\0';
}

static int amqp_url(const struct cdr_daemon_conf *cf, const char *host, int port, const char *vhost, char *url,
		    size_t len)
{
	char user[256], pass[256], vh[256];
	int n;

	url_encode(cf->amqp_user, user, sizeof(user));
	url_encode(cf->amqp_password, pass, sizeof(pass));
	url_encode(vhost ? vhost : "/", vh, sizeof(vh));
	n = snprintf(url, len, "%s://%s:%s@%s:%d/%s", *cf->amqp_tls_ca ? "amqps" : "amqp", user, pass, host, port, vh);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int cdr_daemon_amqp_url(const struct cdr_daemon *d, const struct cdr_endpoint *ep, char *url, size_t len)
{
	return amqp_url(d->conf, ep->host, ep->port, ep->vhost, url, len);
}

static void apply_mq(struct cdr_daemon *d, const char *host, int port, const char *vhost)
{
	const struct cdr_daemon_conf *cf = d->conf;
	char url[1024];
	struct cdr_mq_opts o = { 0 };
	int r;

	amqp_url(cf, host, port, vhost, url, sizeof(url));
	if (d->mq) {
		/* A moved broker: the old connection drains (bounded) and goes. */
		cdr_notice("amqp: endpoint changed to %s:%d/%s; re-connecting", host, port, vhost);
		d->mq = cdr_mq_free(d->mq);
		d->subscribed = 0; /* subscribed again on the new handle */
		d->redis = cdr_redis_free(d->redis);
		d->redis_wait = cdr_redis_free(d->redis_wait);
		daemon_set_link(d, LINK_AMQP, false, "endpoint changed");
	}
	o.url = url;
	o.tls_ca = cf->amqp_tls_ca;
	o.name = d->ops->name;
	o.heartbeat_s = (unsigned)(cf->amqp_heartbeat_ms / 1000);
	o.reconnect_min_ms = (unsigned)cf->reconnect_min_ms;
	o.reconnect_max_ms = (unsigned)cf->reconnect_max_ms;
	o.prefetch = (unsigned)cf->amqp_prefetch;
	o.on_state = on_mq_state;
	o.arg = d;
	if ((r = cdr_mq_new(d->loop, &o, &d->mq)) < 0) {
		cdr_err("amqp: cannot create a client for %s:%d/%s: %s", host, port, vhost, strerror(-r));
		return;
	}
	cdr_info("amqp: connecting to %s:%d vhost %s as %s%s", host, port, vhost, cf->amqp_user,
		 *cf->amqp_tls_ca ? " over TLS" : "");
	cdr_mq_declare_design_for(d->mq, d->ops->name);
}

static void apply_redis(struct cdr_daemon *d, const char *host, int port, int db)
{
	const struct cdr_daemon_conf *cf = d->conf;
	struct cdr_redis_opts o = { 0 };
	int r;

	if (d->redis) {
		cdr_notice("redis: endpoint changed to %s:%d db %d; re-connecting", host, port, db);
		if ((r = cdr_redis_set_endpoint(d->redis, host, port, db)) < 0)
			cdr_err("redis: cannot switch to %s:%d db %d: %s", host, port, db, strerror(-r));
		if (d->redis_wait && cdr_redis_set_endpoint(d->redis_wait, host, port, db) < 0)
			d->redis_wait = cdr_redis_free(d->redis_wait);
		return;
	}
	o.host = host;
	o.port = port;
	o.db = db;
	o.name = cf->platform;
	o.user = cf->redis_user;
	o.password = cf->redis_password;
	o.connect_timeout_ms = (unsigned)cf->redis_connect_timeout_ms;
	o.reconnect_min_ms = (unsigned)cf->reconnect_min_ms;
	o.reconnect_max_ms = (unsigned)cf->reconnect_max_ms;
	o.on_state = on_redis_state;
	o.arg = d;
	if ((r = cdr_redis_new(d->loop, &o, &d->redis)) < 0) {
		cdr_err("redis: cannot create a client for %s:%d db %d: %s", host, port, db, strerror(-r));
		return;
	}
	cdr_info("redis: connecting to %s:%d db %d", host, port, db);
	o.on_state = NULL;
	o.arg = NULL;
	if (cdr_redis_new(d->loop, &o, &d->redis_wait) < 0)
		cdr_warn("redis: no second connection for replication waits: answers do not wait for the replica");
}

struct migration {
	struct cdr_daemon *d;
	struct cdr_db_opts opts;
	char *host, *database, *dir;
	int status;
	char err[512];
	pthread_t thread;
	bool joined;
};

static void create_db(struct cdr_daemon *d, const char *host, int port, const char *database);

static void migration_done(void *arg)
{
	struct migration *m = arg;
	struct cdr_daemon *d = m->d;

	if (!m->joined)
		pthread_join(m->thread, NULL);
	d->migration = NULL;
	if (m->status < 0) {
		cdr_err("mysql: schema migrations in %s failed: %s; stopping", m->dir, m->err);
		d->exit_code = 1;
		cdr_daemon_stop(d);
	} else {
		cdr_notice("mysql: schema up to date (%s)", m->dir);
		d->migrated = true;
		if (!d->stopping)
			create_db(d, m->host, m->opts.port, m->database);
	}
	free(m->host);
	free(m->database);
	free(m->dir);
	free(m);
}

/* Migrations block (DDL on a fresh connection): a thread of their own. */
static void *migration_thread(void *arg)
{
	struct migration *m = arg;

	m->status = cdr_db_migrate_sync(&m->opts, m->dir, m->err, sizeof(m->err));
	cdr_loop_post(m->d->loop, migration_done, m);
	return NULL;
}

static void fill_db_opts(struct cdr_daemon *d, struct cdr_db_opts *o, const char *host, int port, const char *database)
{
	const struct cdr_daemon_conf *cf = d->conf;

	memset(o, 0, sizeof(*o));
	o->host = host;
	o->port = port;
	o->user = cf->mysql_user;
	o->password = cf->mysql_password;
	o->database = database;
	o->connect_timeout_ms = (unsigned)cf->mysql_connect_timeout_ms;
	o->tls_ca = cf->mysql_tls_ca;
	o->reconnect_min_ms = (unsigned)cf->reconnect_min_ms;
	o->reconnect_max_ms = (unsigned)cf->reconnect_max_ms;
	o->on_state = on_db_state;
	o->arg = d;
}

static void create_db(struct cdr_daemon *d, const char *host, int port, const char *database)
{
	struct cdr_db_opts o;
	int r;

	fill_db_opts(d, &o, host, port, database);
	if ((r = cdr_db_new(d->loop, &o, &d->db)) < 0)
		cdr_err("mysql: cannot create a client for %s:%d/%s: %s", host, port, database, strerror(-r));
	else
		cdr_info("mysql: connecting to %s:%d database %s as %s", host, port, database, d->conf->mysql_user);
}

static void apply_mysql(struct cdr_daemon *d, const char *host, int port, const char *database)
{
	struct migration *m;

	if (d->db) {
		cdr_notice("mysql: endpoint changed to %s:%d/%s; re-connecting", host, port, database);
		d->db = cdr_db_free(d->db);
		daemon_set_link(d, LINK_MYSQL, false, "endpoint changed");
	}
	if (!*d->conf->mysql_migrations || d->migrated) {
		create_db(d, host, port, database);
		return;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->d = d;
	m->host = strdup(host);
	m->database = strdup(database);
	m->dir = strdup(d->conf->mysql_migrations);
	fill_db_opts(d, &m->opts, m->host, port, m->database);
	m->opts.on_state = NULL;
	if (*d->conf->mysql_migrations_user) {
		/* The schema's own user: the daemon's needs no DDL. */
		m->opts.user = d->conf->mysql_migrations_user;
		m->opts.password = d->conf->mysql_migrations_password;
	}
	cdr_info("mysql: applying schema migrations from %s to %s:%d/%s as %s", m->dir, host, port, database,
		 m->opts.user);
	if (pthread_create(&m->thread, NULL, migration_thread, m) != 0) {
		cdr_err("mysql: cannot start the migration thread");
		free(m->host);
		free(m->database);
		free(m->dir);
		free(m);
		return;
	}
	d->migration = m;
}

static void on_endpoint(int status, const char *data, size_t len, void *arg, enum daemon_link link)
{
	struct cdr_daemon *d = arg;
	const char *extra_key = link == LINK_AMQP ? "vhost" : link == LINK_MYSQL ? "database" : NULL;
	char *host = NULL, *extra = NULL;
	int port, db = 0;

	if (status == -ENOENT) {
		cdr_warn("zookeeper: endpoint %s of %s/%s is missing; keeping the current connection, waiting for it",
			 endpoint_names[link], d->conf->platform, d->main_room);
		return;
	}
	if (status < 0)
		return; /* session trouble: the watch re-reads after re-connect */
	if (d->endpoint[link] && strlen(d->endpoint[link]) == len && !memcmp(d->endpoint[link], data, len))
		return;
	if (endpoint_parse(data, len, extra_key, &host, &port, &extra, link == LINK_REDIS ? &db : NULL) < 0) {
		cdr_err("zookeeper: endpoint %s of %s/%s is not {\"host\",\"port\"%s%s%s%s}: %.*s",
			endpoint_names[link], d->conf->platform, d->main_room, extra_key ? ",\"" : "",
			extra_key ? extra_key : "", extra_key ? "\"" : "",
			link == LINK_REDIS ? "[,\"db\" 0..65535]" : "", (int)len, data);
		return;
	}
	free(d->endpoint[link]);
	d->endpoint[link] = strndup(data, len);
	if (!d->stopping) {
		if (link == LINK_AMQP)
			apply_mq(d, host, port, extra);
		else if (link == LINK_REDIS)
			apply_redis(d, host, port, db);
		else
			apply_mysql(d, host, port, extra);
	}
	free(host);
	free(extra);
}

static void on_mq_endpoint(int status, const char *data, size_t len, void *arg)
{
	on_endpoint(status, data, len, arg, LINK_AMQP);
}

static void on_redis_endpoint(int status, const char *data, size_t len, void *arg)
{
	on_endpoint(status, data, len, arg, LINK_REDIS);
}

static void on_mysql_endpoint(int status, const char *data, size_t len, void *arg)
{
	on_endpoint(status, data, len, arg, LINK_MYSQL);
}

/* ---- topology ---- */

static void topology_read(void *arg);

static void retry_topology(struct cdr_daemon *d)
{
	uint64_t ms = cdr_backoff_next(&d->topo_backoff);

	cdr_warn("retrying the topology read in %" PRIu64 " ms", ms);
	cdr_timer_start(d->retry_timer, ms, false);
}

static void on_platform(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_daemon *d = arg;
	static const cdr_zk_data_fn fns[LINK_COUNT] = { NULL, on_mq_endpoint, on_redis_endpoint, on_mysql_endpoint };
	json_error_t jerr;
	json_t *o, *main_room;
	char path[512];

	if (r->status == -ECANCELED || d->stopping)
		return;
	if (r->status == -ENOENT) {
		cdr_err("platform %s is not in the ZooKeeper topology (%s%s); has deploy loaded it?", d->conf->platform,
			d->conf->zk_chroot, r->path);
		retry_topology(d);
		return;
	}
	if (r->status < 0) {
		cdr_warn("zookeeper: cannot read %s: %s", r->path, r->error ? r->error : strerror(-r->status));
		retry_topology(d);
		return;
	}
	o = json_loadb(r->data ? r->data : "", r->len, 0, &jerr);
	main_room = json_object_get(o, "main_room");
	if (!json_is_string(main_room)) {
		cdr_err("zookeeper: %s has no \"main_room\" string: %.*s", r->path, (int)r->len,
			r->data ? r->data : "");
		json_decref(o);
		retry_topology(d);
		return;
	}
	d->main_room = strdup(json_string_value(main_room));
	json_decref(o);
	cdr_backoff_reset(&d->topo_backoff);
	cdr_info("platform %s: main room %s", d->conf->platform, d->main_room);
	for (int i = LINK_AMQP; i < LINK_COUNT; i++) {
		int rc;

		if (!d->link_used[i])
			continue;
		snprintf(path, sizeof(path), "/endpoints/%s/%s/%s", d->conf->platform, d->main_room, endpoint_names[i]);
		rc = cdr_zk_data_watch_new(d->zk, path, fns[i], d, &d->watch[i]);
		if (rc < 0)
			cdr_err("zookeeper: cannot watch %s: %s", path, strerror(-rc));
	}
}

static void topology_read(void *arg)
{
	struct cdr_daemon *d = arg;
	char path[256];

	if (d->main_room || d->stopping)
		return;
	snprintf(path, sizeof(path), "/topology/platforms/%s", d->conf->platform);
	if (cdr_zk_get(d->zk, path, NULL, NULL, on_platform, d) < 0)
		retry_topology(d);
}

/* ---- session and election ---- */

static void on_leader(bool leader, int64_t epoch, void *arg)
{
	struct cdr_daemon *d = arg;

	if (leader == d->active && (!leader || epoch == d->epoch))
		return;
	d->active = leader;
	d->role_wall_ms = cdr_wall_ms();
	daemon_stall_role(d);
	if (leader)
		d->epoch = epoch;
	if (leader)
		cdr_notice("role: active, epoch %" PRId64, epoch);
	else
		cdr_notice("role: standby (epoch %" PRId64 " no longer valid)", d->epoch);
	if (!leader)
		daemon_drop_queues(d);
	d->ready = CDR_READY_NONE;
	if (d->ops->on_role)
		d->ops->on_role(d, d->server, leader, d->epoch);
	if (leader)
		daemon_take_queues(d);
	daemon_live_changed(d);
}

static void on_session(enum cdr_zk_state st, void *arg)
{
	struct cdr_daemon *d = arg;

	switch (st) {
	case CDR_ZK_CONNECTED:
		daemon_set_link(d, LINK_ZK, true, d->conf->zk_hosts);
		if (!d->main_room && !cdr_timer_pending(d->retry_timer))
			topology_read(d);
		daemon_live_changed(d);
		break;
	case CDR_ZK_DISCONNECTED: daemon_set_link(d, LINK_ZK, false, "connection lost, session may survive"); break;
	case CDR_ZK_EXPIRED:
		d->live_created = false;
		daemon_set_link(d, LINK_ZK, false, "session expired");
		break;
	}
}

int daemon_links_start(struct cdr_daemon *d)
{
	const struct cdr_daemon_conf *cf = d->conf;
	struct cdr_zk_opts o = { 0 };
	char path[256], *data;
	int r;

	snprintf(d->live_path, sizeof(d->live_path), "/live/%s/%s/%s", cf->platform, d->ops->name, d->instance);
	cdr_backoff_init(&d->topo_backoff, cf->reconnect_min_ms, cf->reconnect_max_ms);
	if ((r = cdr_timer_new(d->loop, topology_read, d, &d->retry_timer)) < 0)
		return r;
	o.hosts = cf->zk_hosts;
	o.chroot = cf->zk_chroot;
	o.session_timeout_ms = (unsigned)cf->zk_session_timeout_ms;
	o.user = cf->zk_user;
	o.password = cf->zk_password;
	o.reconnect_min_ms = (unsigned)cf->reconnect_min_ms;
	o.reconnect_max_ms = (unsigned)cf->reconnect_max_ms;
	o.on_session = on_session;
	o.arg = d;
	if ((r = cdr_zk_new(d->loop, &o, &d->zk)) < 0) {
		cdr_err("zookeeper: cannot create a client for %s: %s", cf->zk_hosts, strerror(-r));
		return r;
	}
	cdr_info("zookeeper: connecting to %s chroot %s%s%s", cf->zk_hosts, cf->zk_chroot, *cf->zk_user ? " as " : "",
		 cf->zk_user);
	snprintf(path, sizeof(path), "/election/%s/%s", cf->platform, d->ops->name);
	data = daemon_live_json(d);
	r = cdr_zk_election_new(d->zk, path, data, data ? strlen(data) : 0, on_leader, d, &d->election);
	free(data);
	if (r < 0)
		cdr_err("zookeeper: cannot join the election at %s: %s", path, strerror(-r));
	return r;
}

void daemon_links_stop(struct cdr_daemon *d)
{
	/* Step down first so a standby can take over while we drain. */
	if (d->election) {
		d->election = cdr_zk_election_free(d->election);
		if (d->active)
			on_leader(false, d->epoch, d);
	}
	d->mq = cdr_mq_free(d->mq);
	d->subscribed = 0;
	d->redis = cdr_redis_free(d->redis);
	d->redis_wait = cdr_redis_free(d->redis_wait);
	d->db = cdr_db_free(d->db);
	if (d->migration) {
		/* Stopping while migrations run: wait for them (a schema change is
		 * not cut half-way), then let migration_done release them. */
		struct migration *m = d->migration;

		pthread_join(m->thread, NULL);
		m->joined = true;
		cdr_loop_flush(d->loop);
	}
}

void daemon_links_free(struct cdr_daemon *d)
{
	daemon_links_stop(d);
	for (int i = 0; i < LINK_COUNT; i++) {
		d->watch[i] = cdr_zk_data_watch_free(d->watch[i]);
		free(d->endpoint[i]);
		d->endpoint[i] = NULL;
	}
	/* Closing the session removes the liveness and election nodes at once. */
	d->zk = cdr_zk_free(d->zk);
	d->retry_timer = cdr_timer_free(d->retry_timer);
	free(d->main_room);
	d->main_room = NULL;
}
