/* MariaDB client: a worker thread with a job queue; results to the loop. */
#include <confdr/db.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mysql.h>
#include <errmsg.h>

#include <confdr/loop.h>

struct job {
	char **sqls;
	size_t nsqls;
	bool idempotent;
	cdr_db_fn cb;
	void *arg;
	struct cdr_db *db;
	struct cdr_db_result res;
	char *error;
	struct job *next;
};

struct state_msg {
	struct cdr_db *db;
	bool up;
	char why[256];
};

struct cdr_db {
	struct cdr_loop *loop;
	char *host, *user, *password, *database;
	int port;
	unsigned connect_timeout_ms;
	struct cdr_backoff backoff;
	cdr_db_state_fn on_state;
	void *arg;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	bool stop;

	MYSQL *conn;  /* worker thread only */
	int reported; /* worker: -1 none yet, 0 down, 1 up */
};

const char *cdr_db_value(const struct cdr_db_result *r, size_t row, size_t col)
{
	if (!r->cells || row >= r->nrows || col >= r->ncols)
		return NULL;
	return r->cells[row * r->ncols + col];
}

static void job_free(struct job *j)
{
	for (size_t i = 0; i < j->nsqls; i++)
		free(j->sqls[i]);
	free(j->sqls);
	if (j->res.cells) {
		for (size_t i = 0; i < j->res.nrows * j->res.ncols; i++)
			free(j->res.cells[i]);
		free(j->res.cells);
	}
	free(j->error);
	free(j);
}

/* ---- on the loop thread ---- */

static void deliver(void *arg)
{
	struct job *j = arg;

	j->res.error = j->error;
	j->cb(&j->res, j->arg);
	job_free(j);
}

static void deliver_state(void *arg)
{
	struct state_msg *m = arg;

	if (m->db->on_state)
		m->db->on_state(m->up, m->why, m->db->arg);
	free(m);
}

/* ---- on the worker thread ---- */

static void report(struct cdr_db *db, bool up, const char *why)
{
	struct state_msg *m;

	if (db->reported == (int)up)
		return;
	db->reported = up;
	m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->db = db;
	m->up = up;
	snprintf(m->why, sizeof(m->why), "%s", why);
	cdr_loop_post(db->loop, deliver_state, m);
}

static MYSQL *open_conn(const struct cdr_db_opts *o, char *err, size_t errlen, bool multi)
{
	MYSQL *c = mysql_init(NULL);
	unsigned timeout = (o->connect_timeout_ms ? o->connect_timeout_ms : 5000) / 1000;
	bool reconnect = false;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (timeout == 0)
		timeout = 1;
	mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	/* Re-connection is ours: the library's would silently lose session state. */
	mysql_options(c, MYSQL_OPT_RECONNECT, &reconnect);
	mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (!mysql_real_connect(c, o->host, o->user, o->password, o->database, (unsigned)o->port, NULL,
				multi ? CLIENT_MULTI_STATEMENTS : 0)) {
		snprintf(err, errlen, "cannot connect to %s:%d/%s: %s", o->host, o->port,
			 o->database ? o->database : "", mysql_error(c));
		mysql_close(c);
		return NULL;
	}
	return c;
}

static bool lost(unsigned code)
{
	return code == CR_SERVER_GONE_ERROR || code == CR_SERVER_LOST || code == CR_CONN_HOST_ERROR ||
	       code == CR_CONNECTION_ERROR;
}

/* Sleeps up to ms unless asked to stop; returns whether to stop. */
static bool nap(struct cdr_db *db, uint64_t ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&db->lock);
	if (!db->stop)
		pthread_cond_timedwait(&db->cond, &db->lock, &ts);
	stop = db->stop;
	pthread_mutex_unlock(&db->lock);
	return stop;
}

static void ensure_conn(struct cdr_db *db)
{
	struct cdr_db_opts o = { .host = db->host,
				 .port = db->port,
				 .user = db->user,
				 .password = db->password,
				 .database = db->database,
				 .connect_timeout_ms = db->connect_timeout_ms };
	char err[512];

	while (!db->conn) {
		db->conn = open_conn(&o, err, sizeof(err), false);
		if (db->conn) {
			cdr_backoff_reset(&db->backoff);
			snprintf(err, sizeof(err), "%s:%d/%s", db->host, db->port, db->database);
			report(db, true, err);
			return;
		}
		report(db, false, err);
		if (nap(db, cdr_backoff_next(&db->backoff)))
			return;
	}
}

/* Runs one statement; fills the result from it. Returns mysql_errno. */
static unsigned run_one(struct cdr_db *db, struct job *j, const char *sql)
{
	MYSQL_RES *rs;
	unsigned code;

	if (mysql_real_query(db->conn, sql, strlen(sql)) != 0)
		goto fail;
	rs = mysql_store_result(db->conn);
	if (rs) {
		size_t nr = (size_t)mysql_num_rows(rs), nc = mysql_num_fields(rs);
		MYSQL_ROW row;
		size_t r = 0;

		if (j->res.cells) {
			for (size_t i = 0; i < j->res.nrows * j->res.ncols; i++)
				free(j->res.cells[i]);
			free(j->res.cells);
		}
		j->res.cells = calloc(nr * nc + 1, sizeof(char *));
		j->res.nrows = nr;
		j->res.ncols = nc;
		while (j->res.cells && (row = mysql_fetch_row(rs))) {
			unsigned long *len = mysql_fetch_lengths(rs);

			for (size_t c = 0; c < nc; c++)
				j->res.cells[r * nc + c] = row[c] ? strndup(row[c], len[c]) : NULL;
			r++;
		}
		mysql_free_result(rs);
	} else if (mysql_field_count(db->conn) != 0) {
		goto fail;
	}
	j->res.affected = mysql_affected_rows(db->conn);
	j->res.insert_id = mysql_insert_id(db->conn);
	return 0;
fail:
	code = mysql_errno(db->conn);
	free(j->error);
	j->error = strdup(mysql_error(db->conn));
	j->res.code = code;
	return code;
}

static void run_job(struct cdr_db *db, struct job *j)
{
	for (;;) {
		unsigned code = 0;
		bool batch = j->nsqls > 1;

		ensure_conn(db);
		if (!db->conn) { /* stopping */
			j->res.status = -ECANCELED;
			return;
		}
		j->res.code = 0;
		free(j->error);
		j->error = NULL;
		if (batch)
			code = run_one(db, j, "START TRANSACTION");
		for (size_t i = 0; !code && i < j->nsqls; i++)
			code = run_one(db, j, j->sqls[i]);
		if (batch && !code)
			code = run_one(db, j, "COMMIT");
		if (batch && code && !lost(code))
			mysql_real_query(db->conn, "ROLLBACK", 8);
		if (!code) {
			j->res.status = 0;
			return;
		}
		if (!lost(code)) {
			j->res.status = -EIO;
			return;
		}
		mysql_close(db->conn);
		db->conn = NULL;
		report(db, false, j->error ? j->error : "connection lost");
		if (!j->idempotent && !batch) {
			j->res.status = -ECONNRESET;
			return;
		}
		/* A batch is one transaction, never half-applied: safe to run again. */
	}
}

static void *worker(void *arg)
{
	struct cdr_db *db = arg;

	ensure_conn(db);
	for (;;) {
		struct job *j;

		pthread_mutex_lock(&db->lock);
		while (!db->head && !db->stop)
			pthread_cond_wait(&db->cond, &db->lock);
		if (db->stop) {
			pthread_mutex_unlock(&db->lock);
			break;
		}
		j = db->head;
		db->head = j->next;
		if (!db->head)
			db->tail = NULL;
		pthread_mutex_unlock(&db->lock);
		run_job(db, j);
		cdr_loop_post(db->loop, deliver, j);
	}
	if (db->conn)
		mysql_close(db->conn);
	db->conn = NULL;
	mysql_thread_end();
	return NULL;
}

/* ---- public ---- */

int cdr_db_new(struct cdr_loop *loop, const struct cdr_db_opts *o, struct cdr_db **ret)
{
	struct cdr_db *db;
	int r;

	if (!o || !o->host || !*o->host || o->port < 1 || o->port > 65535 || !o->user || !o->database)
		return -EINVAL;
	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->loop = loop;
	db->host = strdup(o->host);
	db->user = strdup(o->user);
	db->password = strdup(o->password ? o->password : "");
	db->database = strdup(o->database);
	db->port = o->port;
	db->connect_timeout_ms = o->connect_timeout_ms;
	db->on_state = o->on_state;
	db->arg = o->arg;
	db->reported = -1;
	cdr_backoff_init(&db->backoff, o->reconnect_min_ms ? o->reconnect_min_ms : 200,
			 o->reconnect_max_ms ? o->reconnect_max_ms : 10000);
	pthread_mutex_init(&db->lock, NULL);
	pthread_cond_init(&db->cond, NULL);
	if (!db->host || !db->user || !db->password || !db->database) {
		r = -ENOMEM;
		goto fail;
	}
	r = pthread_create(&db->thread, NULL, worker, db);
	if (r) {
		r = -r;
		goto fail;
	}
	*ret = db;
	return 0;
fail:
	pthread_mutex_destroy(&db->lock);
	pthread_cond_destroy(&db->cond);
	free(db->host);
	free(db->user);
	free(db->password);
	free(db->database);
	free(db);
	return r;
}

struct cdr_db *cdr_db_free(struct cdr_db *db)
{
	struct job *j;

	if (!db)
		return NULL;
	pthread_mutex_lock(&db->lock);
	db->stop = true;
	pthread_cond_broadcast(&db->cond);
	pthread_mutex_unlock(&db->lock);
	pthread_join(db->thread, NULL);
	/* Results and state changes the worker posted run now, while db lives. */
	cdr_loop_flush(db->loop);
	while ((j = db->head)) {
		db->head = j->next;
		j->res.status = -ECANCELED;
		deliver(j);
	}
	pthread_mutex_destroy(&db->lock);
	pthread_cond_destroy(&db->cond);
	free(db->host);
	free(db->user);
	free(db->password);
	free(db->database);
	free(db);
	return NULL;
}

static int enqueue(struct cdr_db *db, struct job *j)
{
	pthread_mutex_lock(&db->lock);
	if (db->tail)
		db->tail->next = j;
	else
		db->head = j;
	db->tail = j;
	pthread_cond_signal(&db->cond);
	pthread_mutex_unlock(&db->lock);
	return 0;
}

/* Expands '?' with escaped parameters. Escaping follows the SQL standard for
 * a connection in the default sql_mode with utf8mb4: backslash and quote are
 * escaped, as mysql_real_escape_string does for that charset. */
static char *expand(const char *sql, const struct cdr_db_param *p, size_t n, int *err)
{
	size_t cap = strlen(sql) + 1, used = 0, k = 0;
	char *out;

	for (size_t i = 0; i < n; i++)
		cap += p[i].is_num ? 24 : p[i].str ? 2 * strlen(p[i].str) + 3 : 5;
	out = malloc(cap);
	if (!out) {
		*err = -ENOMEM;
		return NULL;
	}
	for (const char *s = sql; *s; s++) {
		if (*s != '?') {
			out[used++] = *s;
			continue;
		}
		if (k >= n)
			goto bad;
		if (p[k].is_num) {
			used += (size_t)snprintf(out + used, cap - used, "%" PRId64, p[k].num);
		} else if (!p[k].str) {
			memcpy(out + used, "NULL", 4);
			used += 4;
		} else {
			out[used++] = '\'';
			for (const char *c = p[k].str; *c; c++) {
				switch (*c) {
				case '\'':
					out[used++] = '\\';
					out[used++] = '\'';
					break;
				case '\\':
					out[used++] = '\\';
					out[used++] = '\\';
					break;
				case '\n':
					out[used++] = '\\';
					out[used++] = 'n';
					break;
				case '\r':
					out[used++] = '\\';
					out[used++] = 'r';
					break;
				case '\032':
					out[used++] = '\\';
					out[used++] = 'Z';
					break;
				default: out[used++] = *c;
				}
			}
			out[used++] = '\'';
		}
		k++;
	}
	if (k != n)
		goto bad;
	out[used] = '\0';
	return out;
bad:
	free(out);
	*err = -EINVAL;
	return NULL;
}

int cdr_db_exec(struct cdr_db *db, const char *sql, const struct cdr_db_param *params, size_t nparams, bool idempotent,
		cdr_db_fn cb, void *arg)
{
	struct job *j;
	int err = 0;

	if (!sql || !cb)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->sqls = calloc(1, sizeof(char *));
	if (!j->sqls) {
		free(j);
		return -ENOMEM;
	}
	j->sqls[0] = expand(sql, params, nparams, &err);
	if (!j->sqls[0]) {
		free(j->sqls);
		free(j);
		return err;
	}
	j->nsqls = 1;
	j->idempotent = idempotent;
	j->cb = cb;
	j->arg = arg;
	j->db = db;
	return enqueue(db, j);
}

int cdr_db_exec_batch(struct cdr_db *db, const char *const *sqls, size_t n, cdr_db_fn cb, void *arg)
{
	struct job *j;

	if (!sqls || n == 0 || !cb)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->sqls = calloc(n, sizeof(char *));
	if (!j->sqls) {
		free(j);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		j->sqls[i] = strdup(sqls[i]);
		j->nsqls++;
		if (!j->sqls[i]) {
			job_free(j);
			return -ENOMEM;
		}
	}
	j->idempotent = true;
	j->cb = cb;
	j->arg = arg;
	j->db = db;
	return enqueue(db, j);
}

/* ---- migrations ---- */

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

void cdr_db_migrations_free(struct cdr_db_migration *m, size_t n)
{
	for (size_t i = 0; m && i < n; i++) {
		free(m[i].name);
		free(m[i].sql);
	}
	free(m);
}

static int by_version(const void *a, const void *b)
{
	const struct cdr_db_migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 24) && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

int cdr_db_migrations_read(const char *dir, struct cdr_db_migration **ret, size_t *count, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct cdr_db_migration *m = NULL;
	size_t n = 0;
	int r = 0;

	if (!d) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(-r));
		return r;
	}
	while ((e = readdir(d))) {
		const char *name = e->d_name;
		size_t len = strlen(name), flen;
		char path[4096], *end;
		unsigned long v;
		struct cdr_db_migration *grown;

		if (name[0] == '.')
			continue;
		v = strtoul(name, &end, 10);
		if (end - name != 3 || *end != '_' || len < 9 || strcmp(name + len - 4, ".sql") != 0 || v == 0 ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != len) {
			snprintf(err, errlen,
				 "%s/%s: not a migration name (NNN_name.sql, NNN from 001, lowercase, digits, _ . -)",
				 dir, name);
			r = -EINVAL;
			break;
		}
		grown = realloc(m, (n + 1) * sizeof(*m));
		if (!grown) {
			r = -ENOMEM;
			break;
		}
		m = grown;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		m[n].version = (unsigned)v;
		m[n].name = strdup(name);
		m[n].sql = read_file(path, &flen);
		if (!m[n].name || !m[n].sql) {
			free(m[n].name);
			free(m[n].sql);
			snprintf(err, errlen, "%s: cannot read", path);
			r = -EIO;
			break;
		}
		m[n].checksum = fnv1a(m[n].sql, flen);
		n++;
	}
	closedir(d);
	if (!r) {
		qsort(m, n, sizeof(*m), by_version);
		for (size_t i = 1; i < n; i++) {
			if (m[i].version == m[i - 1].version) {
				snprintf(err, errlen, "%s: %s and %s have the same version", dir, m[i - 1].name,
					 m[i].name);
				r = -EINVAL;
				break;
			}
		}
	}
	if (r) {
		cdr_db_migrations_free(m, n);
		return r;
	}
	*ret = m;
	*count = n;
	return 0;
}

/* Runs every statement of a multi-statement text, draining all results. */
static int run_multi(MYSQL *c, const char *sql, char *err, size_t errlen, const char *what)
{
	int status;

	if (mysql_real_query(c, sql, strlen(sql)) != 0)
		goto fail;
	do {
		MYSQL_RES *rs = mysql_store_result(c);

		if (rs)
			mysql_free_result(rs);
		else if (mysql_field_count(c) != 0)
			goto fail;
		status = mysql_next_result(c);
		if (status > 0)
			goto fail;
	} while (status == 0);
	return 0;
fail:
	snprintf(err, errlen, "%s: %s (error %u)", what, mysql_error(c), mysql_errno(c));
	return -EIO;
}

int cdr_db_migrate_sync(const struct cdr_db_opts *opts, const char *dir, char *err, size_t errlen)
{
	struct cdr_db_migration *m = NULL;
	size_t n = 0;
	MYSQL *c;
	int r;

	r = cdr_db_migrations_read(dir, &m, &n, err, errlen);
	if (r)
		return r;
	c = open_conn(opts, err, errlen, true);
	if (!c) {
		cdr_db_migrations_free(m, n);
		return -ECONNREFUSED;
	}
	r = run_multi(c,
		      "CREATE TABLE IF NOT EXISTS schema_migrations ("
		      " version INT UNSIGNED NOT NULL PRIMARY KEY,"
		      " name VARCHAR(255) NOT NULL,"
		      " checksum CHAR(16) NOT NULL,"
		      " applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB",
		      err, errlen, "schema_migrations");
	/* One migrator at a time (two css starting together). */
	if (!r)
		r = run_multi(c, "DO GET_LOCK('confdr_migrations', 60)", err, errlen, "lock");
	for (size_t i = 0; !r && i < n; i++) {
		char q[256], sum[17];
		MYSQL_RES *rs;
		MYSQL_ROW row;

		snprintf(sum, sizeof(sum), "%016" PRIx64, m[i].checksum);
		snprintf(q, sizeof(q), "SELECT checksum FROM schema_migrations WHERE version = %u", m[i].version);
		if (mysql_real_query(c, q, strlen(q)) != 0 || !(rs = mysql_store_result(c))) {
			snprintf(err, errlen, "reading schema_migrations: %s", mysql_error(c));
			r = -EIO;
			break;
		}
		row = mysql_fetch_row(rs);
		if (row) {
			if (strcmp(row[0], sum) != 0) {
				snprintf(err, errlen,
					 "%s/%s was changed after it was applied (checksum %s, applied %s); "
					 "write a new migration instead",
					 dir, m[i].name, sum, row[0]);
				r = -EINVAL;
			}
			mysql_free_result(rs);
			continue;
		}
		mysql_free_result(rs);
		/* MariaDB commits DDL implicitly: a migration is atomic only as far
		 * as its statements are; each file is written to be re-runnable. */
		r = run_multi(c, m[i].sql, err, errlen, m[i].name);
		if (!r) {
			char ins[512];

			snprintf(ins, sizeof(ins),
				 "INSERT INTO schema_migrations (version, name, checksum) VALUES (%u, '%s', '%s')",
				 m[i].version, m[i].name, sum);
			r = run_multi(c, ins, err, errlen, "recording the migration");
		}
	}
	run_multi(c, "DO RELEASE_LOCK('confdr_migrations')", err, r ? 0 : errlen, "unlock");
	mysql_close(c);
	cdr_db_migrations_free(m, n);
	return r;
}
