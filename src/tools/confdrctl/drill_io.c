/* confdrctl drill: reading the world a drill checks: the simulators' state
 * files (docs/mcusim.md), the confinfo rows of MariaDB, the conference
 * records of Redis (drill.h). Blocking clients, every call bounded. */
#include "confdrctl.h"
#include "drill.h"

#include <confdr/daemon.h>
#include <confdr/hmap.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <mysql.h>

/* ---- the simulators' state files ---- */

/* The pid in a pid file, or 0. */
static long pid_in(const char *path)
{
	FILE *f = fopen(path, "r");
	long pid = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 0)
		pid = 0;
	fclose(f);
	return pid;
}

/* The process exists and is not a zombie. */
static bool alive(long pid)
{
	char path[64], buf[512], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (!(f = fopen(path, "r")))
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (!(p = strrchr(buf, ')')) || p[1] != ' ')
		return false;
	return p[2] != 'Z' && p[2] != 'X' && p[2] != 'x' && p[2] != '\0';
}

/* The conferences of one state file, appended to s. */
static int add_state(json_t *st, json_t *home, struct drill_set *s, const char *path, char *err, size_t errlen)
{
	const char *room = json_string_value(json_object_get(st, "room"));
	const char *platform = json_string_value(json_object_get(st, "platform"));
	json_t *mcus = json_object_get(st, "mcus"), *m, *c;
	size_t i, k;

	if (!room || !platform || !json_is_array(mcus)) {
		snprintf(err, errlen, "%s: no room, platform or mcus", path);
		return -EINVAL;
	}
	json_array_foreach(mcus, i, m)
	{
		const char *mcu = json_string_value(json_object_get(m, "id"));

		if (!mcu) {
			snprintf(err, errlen, "%s: an MCU without id", path);
			return -EINVAL;
		}
		json_array_foreach(json_object_get(m, "confs"), k, c)
		{
			const char *e = json_string_value(json_object_get(c, "e164")), *h;
			json_t *started = json_object_get(c, "started_ms");

			if (!e) {
				snprintf(err, errlen, "%s: a conference without e164 on %s", path, mcu);
				return -EINVAL;
			}
			h = home ? json_string_value(json_object_get(home, e)) : NULL;
			if (drill_set_add(s, e, mcu, room, platform, h ? h : "",
					  json_is_integer(started) ? json_integer_value(started) : -1) < 0) {
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
		}
	}
	return 0;
}

static const char *state_prefix; /* scandir's filter has no argument */

static int is_state_file(const struct dirent *d)
{
	size_t n = strlen(d->d_name), p = strlen(state_prefix);

	return n > p + 5 && strncmp(d->d_name, state_prefix, p) == 0 && strcmp(d->d_name + n - 5, ".json") == 0;
}

int drill_snapshot(const char *dir, const char *pids, const char *prefix, json_t *home, struct drill_set *s, char *err,
		   size_t errlen)
{
	struct dirent **names = NULL;
	int n, ret = 0;

	state_prefix = prefix;
	if ((n = scandir(dir, &names, is_state_file, alphasort)) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		char path[4096], pidfile[4096];
		json_error_t je;
		json_t *st;
		long pid;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		snprintf(pidfile, sizeof(pidfile), "%s/%.*s.pid", pids, (int)(strlen(names[i]->d_name) - 5),
			 names[i]->d_name);
		pid = pid_in(pidfile);
		if (ret < 0 || pid == 0 || !alive(pid))
			continue;
		/* Written to FILE.tmp and renamed: never half a file. Gone meanwhile: not live. */
		if (!(st = json_load_file(path, 0, &je))) {
			if (access(path, F_OK) == 0) {
				snprintf(err, errlen, "%s: %s (line %d)", path, je.text, je.line);
				ret = -EINVAL;
			}
			continue;
		}
		if (json_integer_value(json_object_get(st, "pid")) == pid)
			ret = add_state(st, home, s, path, err, errlen);
		json_decref(st);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

/* ---- maps of strings ---- */

struct cdr_hmap *drill_strmap_new(void)
{
	return cdr_hmap_new();
}

/* One allocation holds "key\0val": the key is the map's key, the value points
 * after it. */
int drill_strmap_put(struct cdr_hmap *m, const char *key, const char *val)
{
	size_t k = strlen(key) + 1, v = strlen(val) + 1;
	char *b = malloc(k + v), *old = cdr_hmap_get(m, key);

	if (!b)
		return -ENOMEM;
	memcpy(b, key, k);
	memcpy(b + k, val, v);
	if (cdr_hmap_put(m, b, b + k) < 0) {
		free(b);
		return -ENOMEM;
	}
	if (old) /* replaced: its block starts before its value */
		free(old - k);
	return 0;
}

struct cdr_hmap *drill_strmap_free(struct cdr_hmap *m)
{
	size_t it = 0;
	const char *k;
	void *v;

	while (m && cdr_hmap_next(m, &it, &k, &v))
		free((char *)k);
	return cdr_hmap_free(m);
}

/* ---- MariaDB ---- */

struct drill_db {
	MYSQL *c;
	char where[300];
};

struct drill_db *drill_db_open(const struct drill_db_opts *o, char *err, size_t errlen)
{
	unsigned connect_s = 5, io_s = 10;
	struct drill_db *db = calloc(1, sizeof(*db));

	if (!db || !(db->c = mysql_init(NULL))) {
		snprintf(err, errlen, "out of memory");
		free(db);
		return NULL;
	}
	if (o->socket)
		snprintf(db->where, sizeof(db->where), "MariaDB %s", o->socket);
	else
		snprintf(db->where, sizeof(db->where), "MariaDB %s:%d", o->host, o->port);
	mysql_options(db->c, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
	mysql_options(db->c, MYSQL_OPT_READ_TIMEOUT, &io_s);
	mysql_options(db->c, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
	if (!o->socket && o->tls_ca) {
		/* Over the network: TLS, the server's certificate and name checked. */
		my_bool verify = 1;
		mysql_options(db->c, MYSQL_OPT_SSL_CA, o->tls_ca);
		mysql_options(db->c, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
		snprintf(db->where + strlen(db->where), sizeof(db->where) - strlen(db->where), " (TLS)");
	}
	if (!mysql_real_connect(db->c, o->socket ? "localhost" : o->host, o->user, o->password, NULL,
				o->socket ? 0 : (unsigned)o->port, o->socket, 0)) {
		snprintf(err, errlen, "%s: %s", db->where, mysql_error(db->c));
		return drill_db_free(db);
	}
	return db;
}

struct drill_db *drill_db_free(struct drill_db *db)
{
	if (db) {
		if (db->c)
			mysql_close(db->c);
		free(db);
	}
	return NULL;
}

/* Runs sql and puts each row's first column (prefixed by prefix) and second
 * (or "") into m. */
static int db_rows(struct drill_db *db, const char *sql, const char *prefix, struct cdr_hmap *m, char *err,
		   size_t errlen)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	char key[256];
	int ret = 0;

	if (mysql_query(db->c, sql) != 0 || !(res = mysql_store_result(db->c))) {
		snprintf(err, errlen, "%s: %s: %s", db->where, sql, mysql_error(db->c));
		return -EIO;
	}
	while (ret == 0 && (row = mysql_fetch_row(res))) {
		if (!row[0])
			continue;
		snprintf(key, sizeof(key), "%s%s", prefix, row[0]);
		if ((ret = drill_strmap_put(m, key, mysql_num_fields(res) > 1 && row[1] ? row[1] : "")) < 0)
			snprintf(err, errlen, "out of memory");
	}
	mysql_free_result(res);
	return ret;
}

/* A platform id is safe in a database name (cli_id_ok's alphabet). */
static bool platform_ok(const char *p, char *err, size_t errlen)
{
	if (*p && strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(p) &&
	    strlen(p) <= 56)
		return true;
	snprintf(err, errlen, "platform \"%s\": not usable in a database name", p);
	return false;
}

int drill_db_closed(struct drill_db *db, const char *platform, struct cdr_hmap *closed, char *err, size_t errlen)
{
	char sql[256], prefix[64];

	if (!platform_ok(platform, err, errlen))
		return -EINVAL;
	snprintf(sql, sizeof(sql),
		 "SELECT e164 FROM confdr_%s.confinfo WHERE end_ms IS NOT NULL AND end_reason IS NOT NULL AND "
		 "end_reason <> ''",
		 platform);
	snprintf(prefix, sizeof(prefix), "%s:", platform);
	return db_rows(db, sql, prefix, closed, err, errlen);
}

int drill_db_open_confs(struct drill_db *db, const char *platform, struct cdr_hmap *open, char *err, size_t errlen)
{
	char sql[256];

	if (!platform_ok(platform, err, errlen))
		return -EINVAL;
	snprintf(sql, sizeof(sql), "SELECT e164, IFNULL(mcu, '') FROM confdr_%s.confinfo WHERE end_ms IS NULL",
		 platform);
	return db_rows(db, sql, "", open, err, errlen);
}

/* ---- Redis ---- */

int ctl_redis_auth(redisContext *rc, char *err, size_t errlen)
{
	const char *file = getenv("CONFDR_REDIS_PASSWORD_FILE"), *user = getenv("CONFDR_REDIS_USER");
	char *pw = NULL, why[PATH_MAX + 128];
	redisReply *r;
	int ret = 0;

	if (!file || !*file)
		return 0;
	if (cdr_secret_read(file, NULL, &pw, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "the Redis password: %s", why);
		return -1;
	}
	if (user && *user)
		r = redisCommand(rc, "AUTH %s %s", user, pw);
	else
		r = redisCommand(rc, "AUTH %s", pw);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "Redis %s:%d refused AUTH as %s: %s", rc->tcp.host ? rc->tcp.host : "?",
			 rc->tcp.port, user && *user ? user : "default", r ? r->str : rc->errstr);
		ret = -1;
	}
	if (r)
		freeReplyObject(r);
	return ret;
}

static redisContext *redis_connect(const char *host, int port, char *err, size_t errlen)
{
	struct timeval connect_tv = { 2, 0 }, io_tv = { 10, 0 };
	redisContext *rc = redisConnectWithTimeout(host, port, connect_tv);

	if (!rc || rc->err) {
		snprintf(err, errlen, "Redis %s:%d: %s", host, port, rc ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	redisSetTimeout(rc, io_tv);
	if (ctl_redis_auth(rc, err, errlen) < 0) {
		redisFree(rc);
		return NULL;
	}
	return rc;
}

int drill_redis_is_master(const char *host, int port, char *err, size_t errlen)
{
	redisContext *rc = redis_connect(host, port, err, errlen);
	redisReply *r;
	int ret;

	if (!rc)
		return -ECONNREFUSED;
	r = redisCommand(rc, "INFO replication");
	if (!r || r->type != REDIS_REPLY_STRING) {
		snprintf(err, errlen, "Redis %s:%d: INFO replication: %s", host, port,
			 r ? (r->str ? r->str : "unexpected reply") : rc->errstr);
		ret = -EIO;
	} else {
		ret = strstr(r->str, "role:master\r\n") != NULL;
	}
	if (r)
		freeReplyObject(r);
	redisFree(rc);
	return ret;
}

/* E164 and MCU of each conf:* hash not ended, in one reply: e1, m1, e2, m2, ... */
static const char open_lua[] = "local out = {}\n"
			       "for _, k in ipairs(redis.call('KEYS', 'conf:*')) do\n"
			       "  if redis.call('TYPE', k).ok == 'hash' then\n"
			       "    local v = redis.call('HMGET', k, 'state', 'mcu')\n"
			       "    if v[1] ~= 'ended' then\n"
			       "      out[#out + 1] = string.sub(k, 6)\n"
			       "      out[#out + 1] = v[2] or ''\n"
			       "    end\n"
			       "  end\n"
			       "end\n"
			       "return out\n";

int drill_redis_open_confs(const char *host, int port, struct cdr_hmap *open, char *err, size_t errlen)
{
	redisContext *rc = redis_connect(host, port, err, errlen);
	redisReply *r;
	int ret = 0;

	if (!rc)
		return -ECONNREFUSED;
	r = redisCommand(rc, "EVAL %s 0", open_lua);
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
		snprintf(err, errlen, "Redis %s:%d: EVAL of the open conferences: %s", host, port,
			 r ? (r->str ? r->str : "unexpected reply") : rc->errstr);
		ret = -EIO;
	}
	for (size_t i = 0; ret == 0 && i + 1 < r->elements; i += 2) {
		if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i + 1]->type != REDIS_REPLY_STRING)
			continue;
		if ((ret = drill_strmap_put(open, r->element[i]->str, r->element[i + 1]->str)) < 0)
			snprintf(err, errlen, "out of memory");
	}
	if (r)
		freeReplyObject(r);
	redisFree(rc);
	return ret;
}
