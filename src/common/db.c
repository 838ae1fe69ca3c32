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
#include <mysqld_error.h>

#include <confdr/log.h>
#include <confdr/loop.h>

enum {
	STMT_CACHE = 32,      /* prepared statements kept per connection */
	IDLE_PING_MS = 10000, /* ping an idle connection before using it */
	IO_TIMEOUT_S = 60,    /* a read or write that long: the server is gone */
	DEFAULT_MAX_QUEUE = 100000,
};

/* A statement of a job, everything owned. */
struct job_stmt {
	char *sql;
	struct cdr_db_param *params; /* str members owned */
	size_t nparams;
};

struct job {
	struct job_stmt *stmts;
	size_t n;
	bool batch, idempotent;
	cdr_db_fn cb;
	void *arg;
	struct cdr_db_result res;
	char *error;
	struct job *next;
};

struct state_msg {
	struct cdr_db *db;
	bool up;
	char why[256];
};

struct cached_stmt {
	char *sql;
	MYSQL_STMT *st;
	uint64_t used;
};

struct cdr_db {
	struct cdr_loop *loop;
	char *host, *user, *password, *database;
	char *tls_ca; /* NULL: plain */
	int port;
	unsigned connect_timeout_ms;
	cdr_db_state_fn on_state;
	void *arg;
	size_t max_queue;

	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail; /* under lock */
	size_t queued;		 /* under lock */
	bool stop;		 /* under lock */

	/* worker thread only */
	MYSQL *conn;
	struct cdr_backoff backoff;
	int reported; /* -1 nothing yet, 0 down, 1 up */
	uint64_t last_used_ms;
	struct cached_stmt cache[STMT_CACHE];
	uint64_t tick;
};

const char *cdr_db_value(const struct cdr_db_result *r, size_t row, size_t col)
{
	if (!r->cells || row >= r->nrows || col >= r->ncols)
		return NULL;
	return r->cells[row * r->ncols + col];
}

static void cells_free(struct cdr_db_result *res)
{
	if (res->cells) {
		for (size_t i = 0; i < res->nrows * res->ncols; i++)
			free(res->cells[i]);
		free(res->cells);
	}
	res->cells = NULL;
	res->nrows = res->ncols = 0;
}

static void job_free(struct job *j)
{
	for (size_t i = 0; j->stmts && i < j->n; i++) {
		free(j->stmts[i].sql);
		for (size_t k = 0; j->stmts[i].params && k < j->stmts[i].nparams; k++)
			free((char *)j->stmts[i].params[k].str);
		free(j->stmts[i].params);
	}
	free(j->stmts);
	cells_free(&j->res);
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
	if (cdr_loop_post(db->loop, deliver_state, m) < 0)
		free(m);
}

static MYSQL *open_conn(const struct cdr_db_opts *o, char *err, size_t errlen, bool multi)
{
	MYSQL *c = mysql_init(NULL);
	unsigned timeout = (o->connect_timeout_ms ? o->connect_timeout_ms : 5000) / 1000;
	unsigned io_timeout = IO_TIMEOUT_S;
	my_bool reconnect = 0;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (timeout == 0)
		timeout = 1;
	mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	/* A server that vanished without closing (its host died) would block
	 * the worker forever. */
	mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
	mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
	/* Re-connection is ours: the library's would silently lose session
	 * state (an open transaction, prepared statements). */
	mysql_options(c, MYSQL_OPT_RECONNECT, &reconnect);
	mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (o->tls_ca && *o->tls_ca) {
		my_bool verify = 1;
		mysql_options(c, MYSQL_OPT_SSL_CA, o->tls_ca);
		mysql_options(c, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
		mysql_options(c, MARIADB_OPT_TLS_VERSION, "TLSv1.2,TLSv1.3");
	}
	if (!mysql_real_connect(c, o->host, o->user, o->password, o->database, (unsigned)o->port, NULL,
				multi ? CLIENT_MULTI_STATEMENTS : 0)) {
		snprintf(err, errlen, "cannot connect to %s:%d/%s%s: %s", o->host, o->port,
			 o->database ? o->database : "", o->tls_ca && *o->tls_ca ? " (TLS)" : "", mysql_error(c));
		mysql_close(c);
		return NULL;
	}
	return c;
}

/* Errors after which the connection is unusable. Over TLS a connection the
 * server ends reads as a TLS error ("unexpected eof while reading"). */
static bool lost(unsigned code)
{
	return code == CR_SERVER_GONE_ERROR || code == CR_SERVER_LOST || code == CR_SERVER_LOST_EXTENDED ||
	       code == CR_CONN_HOST_ERROR || code == CR_CONNECTION_ERROR || code == ER_CONNECTION_KILLED ||
	       code == ER_SERVER_SHUTDOWN || code == CR_ERR_NET_READ || code == CR_ERR_NET_WRITE ||
	       code == CR_SSL_CONNECTION_ERROR;
}

/* Sleeps ms unless asked to stop; returns whether to stop. A job queued
 * meanwhile does not cut the back-off short. */
static bool nap(struct cdr_db *db, uint64_t ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&db->lock);
	while (!db->stop && pthread_cond_timedwait(&db->cond, &db->lock, &ts) != ETIMEDOUT)
		;
	stop = db->stop;
	pthread_mutex_unlock(&db->lock);
	return stop;
}

static void cache_clear(struct cdr_db *db)
{
	for (size_t i = 0; i < STMT_CACHE; i++) {
		if (db->cache[i].st)
			mysql_stmt_close(db->cache[i].st);
		free(db->cache[i].sql);
		db->cache[i] = (struct cached_stmt){ 0 };
	}
}

static void drop_conn(struct cdr_db *db, const char *why)
{
	cache_clear(db);
	if (db->conn)
		mysql_close(db->conn);
	db->conn = NULL;
	report(db, false, why);
}

/* Connects unless connected, with back-off; returns false when stopping. */
static bool ensure_conn(struct cdr_db *db)
{
	struct cdr_db_opts o = { .host = db->host,
				 .port = db->port,
				 .user = db->user,
				 .password = db->password,
				 .database = db->database,
				 .connect_timeout_ms = db->connect_timeout_ms,
				 .tls_ca = db->tls_ca };
	char err[512];

	if (db->conn && cdr_now_ms() - db->last_used_ms > IDLE_PING_MS && mysql_ping(db->conn) != 0) {
		snprintf(err, sizeof(err), "connection to %s:%d lost while idle: %s", db->host, db->port,
			 mysql_error(db->conn));
		drop_conn(db, err);
	}
	while (!db->conn) {
		pthread_mutex_lock(&db->lock);
		bool stop = db->stop;
		pthread_mutex_unlock(&db->lock);
		if (stop)
			return false;
		db->conn = open_conn(&o, err, sizeof(err), false);
		if (db->conn) {
			cdr_backoff_reset(&db->backoff);
			db->last_used_ms = cdr_now_ms();
			snprintf(err, sizeof(err), "%s:%d/%s", db->host, db->port, db->database);
			report(db, true, err);
			break;
		}
		report(db, false, err);
		if (nap(db, cdr_backoff_next(&db->backoff)))
			return false;
	}
	return true;
}

static void set_error(struct job *j, unsigned code, const char *text)
{
	free(j->error);
	j->error = strdup(text);
	j->res.code = code;
}

/* 0, or -EPIPE when the connection is gone, -EIO for an SQL error. */
static int sql_status(struct job *j, unsigned code, const char *text)
{
	set_error(j, code, text);
	return lost(code) ? -EPIPE : -EIO;
}

/* START TRANSACTION, COMMIT, ROLLBACK: the result is left alone. */
static int run_control(struct cdr_db *db, struct job *j, const char *sql)
{
	if (mysql_real_query(db->conn, sql, strlen(sql)) == 0)
		return 0;
	return sql_status(j, mysql_errno(db->conn), mysql_error(db->conn));
}

static int run_text(struct cdr_db *db, struct job *j, const char *sql)
{
	MYSQL_RES *rs;

	if (mysql_real_query(db->conn, sql, strlen(sql)) != 0)
		goto fail;
	rs = mysql_store_result(db->conn);
	if (rs) {
		size_t nr = (size_t)mysql_num_rows(rs), nc = mysql_num_fields(rs), r = 0;
		MYSQL_ROW row;

		cells_free(&j->res);
		j->res.cells = calloc(nr * nc + 1, sizeof(char *));
		if (!j->res.cells) {
			mysql_free_result(rs);
			set_error(j, 0, "out of memory");
			return -ENOMEM;
		}
		j->res.nrows = nr;
		j->res.ncols = nc;
		while ((row = mysql_fetch_row(rs))) {
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
	return sql_status(j, mysql_errno(db->conn), mysql_error(db->conn));
}

static void cache_drop(struct cdr_db *db, MYSQL_STMT *st)
{
	for (size_t i = 0; i < STMT_CACHE; i++) {
		if (db->cache[i].st == st) {
			mysql_stmt_close(st);
			free(db->cache[i].sql);
			db->cache[i] = (struct cached_stmt){ 0 };
			return;
		}
	}
	mysql_stmt_close(st);
}

/* The prepared statement for sql on this connection: cached, or prepared
 * now in the least recently used slot. NULL with the job's error set. */
static MYSQL_STMT *prepare(struct cdr_db *db, struct job *j, const char *sql, int *status)
{
	struct cached_stmt *slot = &db->cache[0];
	MYSQL_STMT *st;

	for (size_t i = 0; i < STMT_CACHE; i++) {
		if (db->cache[i].sql && strcmp(db->cache[i].sql, sql) == 0) {
			db->cache[i].used = ++db->tick;
			return db->cache[i].st;
		}
		if (db->cache[i].used < slot->used)
			slot = &db->cache[i];
	}
	st = mysql_stmt_init(db->conn);
	if (!st) {
		*status = sql_status(j, mysql_errno(db->conn), mysql_error(db->conn));
		return NULL;
	}
	if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
		*status = sql_status(j, mysql_stmt_errno(st), mysql_stmt_error(st));
		mysql_stmt_close(st);
		return NULL;
	}
	if (slot->st)
		mysql_stmt_close(slot->st);
	free(slot->sql);
	slot->sql = strdup(sql);
	slot->st = st;
	slot->used = ++db->tick;
	if (!slot->sql) { /* not cached after all */
		slot->st = NULL;
		slot->used = 0;
		mysql_stmt_close(st);
		set_error(j, 0, "out of memory");
		*status = -ENOMEM;
		return NULL;
	}
	return st;
}

enum { CELL_BUF = 64 };

/* Copies the rows of an executed statement into the job's result. Columns
 * are fetched as text into small buffers; longer values are fetched again
 * at their length. */
static int fetch_rows(struct job *j, MYSQL_STMT *st, MYSQL_RES *meta)
{
	size_t nc = mysql_num_fields(meta), nr, r = 0;
	MYSQL_BIND *b = calloc(nc, sizeof(*b));
	unsigned long *len = calloc(nc, sizeof(*len));
	my_bool *isnull = calloc(nc, sizeof(*isnull)), *trunc = calloc(nc, sizeof(*trunc));
	char *buf = calloc(nc, CELL_BUF);
	int status = 0, rc;

	if (!b || !len || !isnull || !trunc || !buf)
		goto nomem;
	if (mysql_stmt_store_result(st) != 0) {
		status = sql_status(j, mysql_stmt_errno(st), mysql_stmt_error(st));
		goto out;
	}
	nr = (size_t)mysql_stmt_num_rows(st);
	cells_free(&j->res);
	j->res.cells = calloc(nr * nc + 1, sizeof(char *));
	if (!j->res.cells)
		goto nomem;
	j->res.ncols = nc;
	for (size_t c = 0; c < nc; c++) {
		b[c].buffer_type = MYSQL_TYPE_STRING;
		b[c].buffer = buf + c * CELL_BUF;
		b[c].buffer_length = CELL_BUF;
		b[c].length = &len[c];
		b[c].is_null = &isnull[c];
		b[c].error = &trunc[c];
	}
	if (mysql_stmt_bind_result(st, b) != 0) {
		status = sql_status(j, mysql_stmt_errno(st), mysql_stmt_error(st));
		goto out;
	}
	while (r < nr && ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED)) {
		for (size_t c = 0; c < nc; c++) {
			char *v = NULL;

			if (!isnull[c]) {
				v = malloc(len[c] + 1);
				if (!v)
					goto nomem;
				if (len[c] < CELL_BUF) {
					memcpy(v, buf + c * CELL_BUF, len[c]);
				} else {
					MYSQL_BIND one = { 0 };
					unsigned long got = 0;

					one.buffer_type = MYSQL_TYPE_STRING;
					one.buffer = v;
					one.buffer_length = len[c] + 1;
					one.length = &got;
					mysql_stmt_fetch_column(st, &one, (unsigned)c, 0);
				}
				v[len[c]] = '\0';
			}
			j->res.cells[r * nc + c] = v;
		}
		j->res.nrows = ++r;
	}
	goto out;
nomem:
	set_error(j, 0, "out of memory");
	status = -ENOMEM;
out:
	mysql_stmt_free_result(st);
	free(b);
	free(len);
	free(isnull);
	free(trunc);
	free(buf);
	return status;
}

static int run_prepared_once(struct cdr_db *db, struct job *j, const struct job_stmt *s, bool *reprepare)
{
	MYSQL_BIND *b = NULL;
	MYSQL_STMT *st;
	MYSQL_RES *meta;
	unsigned long *lens = NULL;
	int status = 0;
	char msg[128];

	st = prepare(db, j, s->sql, &status);
	if (!st)
		return status;
	if (mysql_stmt_param_count(st) != s->nparams) {
		snprintf(msg, sizeof(msg), "the statement has %lu parameters, %zu given", mysql_stmt_param_count(st),
			 s->nparams);
		set_error(j, 0, msg);
		return -EINVAL;
	}
	b = calloc(s->nparams, sizeof(*b));
	lens = calloc(s->nparams, sizeof(*lens));
	if (!b || !lens) {
		set_error(j, 0, "out of memory");
		status = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s->nparams; i++) {
		const struct cdr_db_param *p = &s->params[i];

		if (p->is_num) {
			b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			b[i].buffer = (void *)&p->num;
		} else if (!p->str) {
			b[i].buffer_type = MYSQL_TYPE_NULL;
		} else {
			lens[i] = strlen(p->str);
			b[i].buffer_type = MYSQL_TYPE_STRING;
			b[i].buffer = (void *)p->str;
			b[i].buffer_length = lens[i];
			b[i].length = &lens[i];
		}
	}
	if (mysql_stmt_bind_param(st, b) != 0 || mysql_stmt_execute(st) != 0) {
		unsigned code = mysql_stmt_errno(st);

		status = sql_status(j, code, mysql_stmt_error(st));
		/* A table changed under a cached statement: prepare again. */
		*reprepare = code == ER_NEED_REPREPARE;
		cache_drop(db, st);
		goto out;
	}
	meta = mysql_stmt_result_metadata(st);
	if (meta) {
		status = fetch_rows(j, st, meta);
		mysql_free_result(meta);
	}
	j->res.affected = mysql_stmt_affected_rows(st);
	j->res.insert_id = mysql_stmt_insert_id(st);
out:
	free(b);
	free(lens);
	return status;
}

/* 0, -EIO (SQL error), -EPIPE (connection lost), -EINVAL, -ENOMEM. */
static int run_stmt(struct cdr_db *db, struct job *j, const struct job_stmt *s)
{
	bool reprepare = false;
	int status;

	if (s->nparams == 0)
		return run_text(db, j, s->sql);
	status = run_prepared_once(db, j, s, &reprepare);
	if (reprepare)
		status = run_prepared_once(db, j, s, &reprepare);
	return status;
}

static void run_job(struct cdr_db *db, struct job *j)
{
	bool retried = false;

	for (;;) {
		bool commit_sent = false;
		int st = 0;

		if (!ensure_conn(db)) {
			set_error(j, 0, "cancelled: the client is being freed");
			j->res.status = -ECANCELED;
			return;
		}
		j->res.code = 0;
		free(j->error);
		j->error = NULL;
		cells_free(&j->res);
		if (j->batch)
			st = run_control(db, j, "START TRANSACTION");
		for (size_t i = 0; !st && i < j->n; i++)
			st = run_stmt(db, j, &j->stmts[i]);
		if (j->batch && !st) {
			commit_sent = true;
			st = run_control(db, j, "COMMIT");
		}
		if (j->batch && st && st != -EPIPE && mysql_real_query(db->conn, "ROLLBACK", 8) != 0 &&
		    lost(mysql_errno(db->conn)))
			drop_conn(db, mysql_error(db->conn));
		db->last_used_ms = cdr_now_ms();
		if (st != -EPIPE) {
			j->res.status = st;
			return;
		}
		drop_conn(db, j->error ? j->error : "connection lost");
		/* Lost before COMMIT, the server rolled the batch back. */
		if (retried || !(j->idempotent || (j->batch && !commit_sent))) {
			j->res.status = -ECONNRESET;
			return;
		}
		retried = true;
	}
}

static void *worker(void *arg)
{
	struct cdr_db *db = arg;

	mysql_thread_init();
	for (;;) {
		struct job *j;

		/* Connected before the next job, so that on_state tells the truth
		 * while nothing is queued. */
		if (!db->conn && !ensure_conn(db))
			break;
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
		db->queued--;
		pthread_mutex_unlock(&db->lock);
		j->next = NULL;
		run_job(db, j);
		/* cdr_loop_post only fails out of memory: then the job would be
		 * lost, so it waits for a later try (the loop drains the rest). */
		while (cdr_loop_post(db->loop, deliver, j) < 0)
			nanosleep(&(struct timespec){ .tv_nsec = 10000000L }, NULL);
	}
	cache_clear(db);
	if (db->conn)
		mysql_close(db->conn);
	db->conn = NULL;
	mysql_thread_end();
	return NULL;
}

/* ---- public ---- */

/* mysql_init() initialises the library on first use, which is not safe
 * from two threads at once (two workers, the migration thread). */
static pthread_once_t library_once = PTHREAD_ONCE_INIT;

static void library_init(void)
{
	mysql_library_init(0, NULL, NULL);
}

static void db_release(struct cdr_db *db)
{
	pthread_mutex_destroy(&db->lock);
	pthread_cond_destroy(&db->cond);
	free(db->host);
	free(db->user);
	free(db->password);
	free(db->database);
	free(db->tls_ca);
	free(db);
}

int cdr_db_new(struct cdr_loop *loop, const struct cdr_db_opts *o, struct cdr_db **ret)
{
	pthread_condattr_t ca;
	struct cdr_db *db;
	int r;

	pthread_once(&library_once, library_init);
	if (!loop || !o || !o->host || !*o->host || o->port < 1 || o->port > 65535 || !o->user || !o->database ||
	    !*o->database)
		return -EINVAL;
	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->loop = loop;
	db->host = strdup(o->host);
	db->user = strdup(o->user);
	db->password = strdup(o->password ? o->password : "");
	db->database = strdup(o->database);
	db->tls_ca = o->tls_ca && *o->tls_ca ? strdup(o->tls_ca) : NULL;
	db->port = o->port;
	db->connect_timeout_ms = o->connect_timeout_ms;
	db->on_state = o->on_state;
	db->arg = o->arg;
	db->max_queue = o->max_queue ? o->max_queue : DEFAULT_MAX_QUEUE;
	db->reported = -1;
	cdr_backoff_init(&db->backoff, o->reconnect_min_ms ? o->reconnect_min_ms : 200,
			 o->reconnect_max_ms ? o->reconnect_max_ms : 10000);
	pthread_mutex_init(&db->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!db->host || !db->user || !db->password || !db->database || (o->tls_ca && *o->tls_ca && !db->tls_ca)) {
		db_release(db);
		return -ENOMEM;
	}
	r = pthread_create(&db->thread, NULL, worker, db);
	if (r) {
		db_release(db);
		return r == EAGAIN ? -EAGAIN : -r;
	}
	db->started = true;
	*ret = db;
	return 0;
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
	if (db->started)
		pthread_join(db->thread, NULL);
	/* Results and state changes the worker posted run now, while db lives. */
	cdr_loop_flush(db->loop);
	while ((j = db->head)) {
		db->head = j->next;
		set_error(j, 0, "cancelled: the client is being freed");
		j->res.status = -ECANCELED;
		deliver(j);
	}
	db_release(db);
	return NULL;
}

static int enqueue(struct cdr_db *db, struct job *j)
{
	pthread_mutex_lock(&db->lock);
	if (db->queued >= db->max_queue) {
		pthread_mutex_unlock(&db->lock);
		job_free(j);
		return -ENOBUFS;
	}
	if (db->tail)
		db->tail->next = j;
	else
		db->head = j;
	db->tail = j;
	db->queued++;
	pthread_cond_signal(&db->cond);
	pthread_mutex_unlock(&db->lock);
	return 0;
}

/* The '?' placeholders of sql, outside quotes, backquotes and comments, as
 * the server's parser sees them (backslash escapes inside quotes). */
static size_t count_placeholders(const char *sql)
{
	size_t n = 0;

	for (const char *s = sql; *s; s++) {
		if (*s == '\'' || *s == '"' || *s == '`') {
			char q = *s;

			for (s++; *s && *s != q; s++)
				if (*s == '\\' && q != '`' && s[1])
					s++;
			if (!*s)
				break;
		} else if ((s[0] == '-' && s[1] == '-' && (s[2] == ' ' || s[2] == '\t' || s[2] == '\n')) ||
			   s[0] == '#') {
			while (*s && *s != '\n')
				s++;
			if (!*s)
				break;
		} else if (s[0] == '/' && s[1] == '*') {
			const char *end = strstr(s + 2, "*/");

			if (!end)
				break;
			s = end + 1;
		} else if (*s == '?') {
			n++;
		}
	}
	return n;
}

static int stmt_copy(struct job_stmt *d, const char *sql, const struct cdr_db_param *params, size_t nparams)
{
	if (!sql || (nparams && !params) || count_placeholders(sql) != nparams)
		return -EINVAL;
	d->sql = strdup(sql);
	if (!d->sql)
		return -ENOMEM;
	if (nparams) {
		d->params = calloc(nparams, sizeof(*d->params));
		if (!d->params)
			return -ENOMEM;
		d->nparams = nparams;
		for (size_t i = 0; i < nparams; i++) {
			d->params[i] = params[i];
			d->params[i].str = NULL; /* owned copies only, for job_free */
			if (!params[i].is_num && params[i].str) {
				d->params[i].str = strdup(params[i].str);
				if (!d->params[i].str)
					return -ENOMEM;
			}
		}
	}
	return 0;
}

static struct job *job_new(size_t n, bool batch, bool idempotent, cdr_db_fn cb, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->stmts = calloc(n, sizeof(*j->stmts));
	if (!j->stmts) {
		free(j);
		return NULL;
	}
	j->n = n;
	j->batch = batch;
	j->idempotent = idempotent;
	j->cb = cb;
	j->arg = arg;
	return j;
}

int cdr_db_exec(struct cdr_db *db, const char *sql, const struct cdr_db_param *params, size_t nparams, bool idempotent,
		cdr_db_fn cb, void *arg)
{
	struct job *j;
	int r;

	if (!sql || !cb)
		return -EINVAL;
	j = job_new(1, false, idempotent, cb, arg);
	if (!j)
		return -ENOMEM;
	r = stmt_copy(&j->stmts[0], sql, params, nparams);
	if (r < 0) {
		job_free(j);
		return r;
	}
	return enqueue(db, j);
}

int cdr_db_exec_batch(struct cdr_db *db, const struct cdr_db_stmt *stmts, size_t n, bool idempotent, cdr_db_fn cb,
		      void *arg)
{
	struct job *j;
	int r;

	if (!stmts || n == 0 || !cb)
		return -EINVAL;
	j = job_new(n, true, idempotent, cb, arg);
	if (!j)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r = stmt_copy(&j->stmts[i], stmts[i].sql, stmts[i].params, stmts[i].nparams);
		if (r < 0) {
			job_free(j);
			return r;
		}
	}
	return enqueue(db, j);
}

/* ---- migrations ---- */

static uint64_t fnv1a_from(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t fnv1a(const char *s, size_t n)
{
	return fnv1a_from(0xcbf29ce484222325ULL, s, n);
}

/* The first version recorded checksums with a mistyped offset basis; such a
 * record of an unchanged file is rewritten with the right one. */
static uint64_t legacy_checksum(const char *s)
{
	return fnv1a_from(1469598103934665603ULL, s, strlen(s));
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
	if (!r && n) {
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

/* The first column of the first row of a query, or NULL (err set). */
static char *query_value(MYSQL *c, const char *sql, char *err, size_t errlen, const char *what)
{
	MYSQL_RES *rs;
	MYSQL_ROW row;
	char *v = NULL;

	if (mysql_real_query(c, sql, strlen(sql)) != 0 || !(rs = mysql_store_result(c))) {
		snprintf(err, errlen, "%s: %s (error %u)", what, mysql_error(c), mysql_errno(c));
		return NULL;
	}
	row = mysql_fetch_row(rs);
	v = strdup(row && row[0] ? row[0] : "");
	mysql_free_result(rs);
	if (!v)
		snprintf(err, errlen, "%s: out of memory", what);
	return v;
}

struct applied {
	unsigned version;
	char checksum[17];
};

static int read_applied(MYSQL *c, struct applied **ret, size_t *n, char *err, size_t errlen)
{
	const char *q = "SELECT version, checksum FROM schema_migrations ORDER BY version";
	struct applied *a;
	MYSQL_RES *rs;
	MYSQL_ROW row;
	size_t k = 0;

	if (mysql_real_query(c, q, strlen(q)) != 0 || !(rs = mysql_store_result(c))) {
		snprintf(err, errlen, "reading schema_migrations: %s (error %u)", mysql_error(c), mysql_errno(c));
		return -EIO;
	}
	a = calloc((size_t)mysql_num_rows(rs) + 1, sizeof(*a));
	if (!a) {
		mysql_free_result(rs);
		snprintf(err, errlen, "reading schema_migrations: out of memory");
		return -ENOMEM;
	}
	while ((row = mysql_fetch_row(rs))) {
		a[k].version = (unsigned)strtoul(row[0], NULL, 10);
		snprintf(a[k].checksum, sizeof(a[k].checksum), "%s", row[1] ? row[1] : "");
		k++;
	}
	mysql_free_result(rs);
	*ret = a;
	*n = k;
	return 0;
}

static const struct applied *find_applied(const struct applied *a, size_t n, unsigned version)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].version == version)
			return &a[i];
	return NULL;
}

/* One migration and its record in one transaction (as far as its
 * statements allow: DDL commits implicitly). */
static int apply_one(MYSQL *c, const struct cdr_db_migration *m, const char *sum, char *err, size_t errlen)
{
	char ins[512];
	int r;

	snprintf(ins, sizeof(ins), "INSERT INTO schema_migrations (version, name, checksum) VALUES (%u, '%s', '%s')",
		 m->version, m->name, sum); /* the name passed the NNN_[a-z0-9_.-] check */
	r = run_multi(c, "START TRANSACTION", err, errlen, m->name);
	if (!r)
		r = run_multi(c, m->sql, err, errlen, m->name);
	if (!r)
		r = run_multi(c, ins, err, errlen, "recording the migration");
	if (!r)
		r = run_multi(c, "COMMIT", err, errlen, m->name);
	if (r)
		mysql_real_query(c, "ROLLBACK", 8);
	return r;
}

int cdr_db_migrate_sync(const struct cdr_db_opts *opts, const char *dir, char *err, size_t errlen)
{
	struct cdr_db_migration *m = NULL;
	struct applied *a = NULL;
	size_t n = 0, na = 0;
	char *locked = NULL, sum[17];
	MYSQL *c;
	int r;

	if (!opts || !opts->host || !opts->user || !opts->database || !dir) {
		snprintf(err, errlen, "missing host, user, database or directory");
		return -EINVAL;
	}
	r = cdr_db_migrations_read(dir, &m, &n, err, errlen);
	if (r)
		return r;
	pthread_once(&library_once, library_init);
	c = open_conn(opts, err, errlen, true);
	if (!c) {
		cdr_db_migrations_free(m, n);
		return -ECONNREFUSED;
	}
	/* One migrator per database at a time (two css starting together). */
	locked = query_value(c, "SELECT GET_LOCK(CONCAT('confdr_migrations.', DATABASE()), 60)", err, errlen,
			     "locking the migrations");
	if (!locked) {
		r = -EIO;
		goto out;
	}
	if (strcmp(locked, "1") != 0) {
		snprintf(err, errlen, "another process holds the migration lock of %s for 60 s", opts->database);
		r = -ETIMEDOUT;
		goto out;
	}
	r = run_multi(c,
		      "CREATE TABLE IF NOT EXISTS schema_migrations ("
		      " version INT UNSIGNED NOT NULL PRIMARY KEY,"
		      " name VARCHAR(255) NOT NULL,"
		      " checksum CHAR(16) NOT NULL,"
		      " applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
		      ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
		      err, errlen, "creating schema_migrations");
	if (!r)
		r = read_applied(c, &a, &na, err, errlen);
	/* Every applied file must be unchanged before anything new is applied. */
	for (size_t i = 0; !r && i < n; i++) {
		const struct applied *done = find_applied(a, na, m[i].version);

		snprintf(sum, sizeof(sum), "%016" PRIx64, m[i].checksum);
		if (done && strcmp(done->checksum, sum) != 0) {
			char legacy[17], upd[128];

			snprintf(legacy, sizeof(legacy), "%016" PRIx64, legacy_checksum(m[i].sql));
			snprintf(upd, sizeof(upd), "UPDATE schema_migrations SET checksum = '%s' WHERE version = %u",
				 sum, m[i].version);
			if (strcmp(done->checksum, legacy) == 0) {
				r = run_multi(c, upd, err, errlen, "upgrading a checksum");
				continue;
			}
			snprintf(err, errlen,
				 "%s/%s was changed after it was applied (checksum now %s, applied %s); "
				 "restore it and write a new migration instead",
				 dir, m[i].name, sum, done->checksum);
			r = -EINVAL;
		}
	}
	for (size_t i = 0; !r && i < n; i++) {
		if (find_applied(a, na, m[i].version))
			continue;
		snprintf(sum, sizeof(sum), "%016" PRIx64, m[i].checksum);
		r = apply_one(c, &m[i], sum, err, errlen);
		if (!r)
			cdr_debug("mysql: applied migration %s to %s", m[i].name, opts->database);
	}
out:
	if (locked && strcmp(locked, "1") == 0)
		run_multi(c, "DO RELEASE_LOCK(CONCAT('confdr_migrations.', DATABASE()))", sum, sizeof(sum), "");
	free(locked);
	free(a);
	mysql_close(c);
	cdr_db_migrations_free(m, n);
	return r;
}
