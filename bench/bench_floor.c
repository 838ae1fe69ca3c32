/* The servers' floor: what RabbitMQ, Redis and MariaDB cost for the work of
 * one conference, measured against the sandbox's own servers, with the
 * project's settings and nothing of confdr's logic in between.
 *
 *   amqp   request/reply through the broker with cdr_mq, as the daemons
 *          use it: a durable queue of its own (bench.floor.q), requests
 *          persistent and mandatory with publisher confirms, consumed with
 *          manual acks by a second connection that answers to the private
 *          reply queue and acks, as cdr_bus_reply_and_ack does.
 *          paced: one at a time every --gap ms; b2b: one at a time, back to
 *          back; w64: 64 in flight.
 *   redis  one conference record (an HSET of css's fields, create JSON
 *          included, about 1 KB) on p1's Redis as its administrator, keys
 *          bench:floor:* deleted after: paced, back to back, and pipelined
 *          (PIPE commands written before the answers are read).
 *   mysql  the history upsert of css (INSERT ... ON DUPLICATE KEY UPDATE,
 *          16 parameters, prepared) into bench_floor, a copy of confinfo made
 *          by the migrate user in confdr_p1 and dropped after, over TCP with
 *          TLS as css connects: alone (autocommit, paced) and batched (BATCH
 *          rows per transaction, as css's db_batch).
 *
 * Prints each figure and, with --json FILE, writes them (ms, per second).
 * Every loop is bounded in count and time. Needs the sandbox env (bench/run.sh
 * provides it) and confinfo in confdr_p1 (css made it at its first start).
 *
 *   bench_floor [--quick] [--json FILE] [--gap MS] [--only amqp|redis|mysql] */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <mysql.h>

#include <confdr/loop.h>
#include <confdr/mq.h>

#include "harness.h"

#define QUEUE	   "bench.floor.q"
#define WINDOW	   64
#define PIPE	   500
#define BATCH	   500
#define NKEYS	   1000
#define DEADLINE_S 60

static bool quick;
static unsigned gap_ms = 50;

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "bench_floor: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1e3),
			       .tv_nsec = (long)((ms - (double)(time_t)(ms / 1e3) * 1e3) * 1e6) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p (0..100) of v[0..n) (sorted in place). */
static double pct(double *v, int n, double p)
{
	int k;

	if (n <= 0)
		return -1;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	k = (int)(p / 100.0 * n + 0.999999);
	if (k < 1)
		k = 1;
	return v[k > n ? n - 1 : k - 1];
}

/* One latency series as {n, p50_ms, p99_ms} (+ rate_per_s when total_ms > 0). */
static json_t *series(double *lat, int n, double total_ms)
{
	json_t *o = json_object();

	json_object_set_new(o, "n", json_integer(n));
	json_object_set_new(o, "p50_ms", json_real(pct(lat, n, 50)));
	json_object_set_new(o, "p99_ms", json_real(pct(lat, n, 99)));
	if (total_ms > 0)
		json_object_set_new(o, "rate_per_s", json_real(n / (total_ms / 1e3)));
	return o;
}

static void show(const char *what, json_t *o)
{
	printf("  %-34s n %6lld  p50 %7.3f ms  p99 %7.3f ms", what,
	       (long long)json_integer_value(json_object_get(o, "n")), json_real_value(json_object_get(o, "p50_ms")),
	       json_real_value(json_object_get(o, "p99_ms")));
	if (json_object_get(o, "rate_per_s"))
		printf("  %9.0f /s", json_real_value(json_object_get(o, "rate_per_s")));
	printf("\n");
	fflush(stdout);
}

/* A body the size of a create request. */
static const char body[] =
	"{\"type\":\"cm_mau_createconf_req\",\"id\":\"bench-floor-000000000001\",\"src\":\"cm\",\"ts\":1764633600000,"
	"\"body\":{\"e164\":\"0512000000001\",\"user_domain\":\"ud-p1-r1-a\",\"name\":\"bench floor conference\","
	"\"duration_min\":60,\"record\":false,\"h265\":false,\"resolution\":\"720p\",\"max_participants\":16,"
	"\"password\":\"\",\"participants\":[{\"e164\":\"0512100000001\",\"name\":\"a\"},{\"e164\":\"0512100000002\","
	"\"name\":\"b\"}]}}";

/* ---- AMQP ---- */

struct amqp_run {
	struct cdr_loop *loop;
	struct cdr_mq *cli;
	int n, sent, done, inflight, window, errors;
	double *t0, *lat, start, end;
	struct cdr_timer *pace, *deadline;
};

static void on_request(struct cdr_mq_delivery *d, void *arg)
{
	struct cdr_mq *srv = *(struct cdr_mq **)arg;

	if (cdr_mq_reply(srv, d, body, sizeof(body) - 1, NULL, NULL) < 0)
		fprintf(stderr, "bench_floor: a reply was not sent\n");
	cdr_mq_ack(d);
}

static void send_one(struct amqp_run *r);

/* A request's slot: the run and its index. */
struct slot {
	struct amqp_run *r;
	int i;
};

static void on_reply(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct slot *s = arg;
	struct amqp_run *r = s->r;

	(void)reply;
	if (status < 0)
		r->errors++;
	else
		r->lat[r->done - r->errors] = now_ms() - r->t0[s->i];
	free(s);
	r->done++;
	r->inflight--;
	if (r->done == r->n) {
		r->end = now_ms();
		cdr_loop_stop(r->loop);
		return;
	}
	if (!r->pace)
		while (r->inflight < r->window && r->sent < r->n)
			send_one(r);
}

static void send_one(struct amqp_run *r)
{
	struct slot *s = malloc(sizeof(*s));

	if (!s)
		die("out of memory", NULL);
	s->r = r;
	s->i = r->sent++;
	r->inflight++;
	r->t0[s->i] = now_ms();
	if (cdr_mq_request(r->cli, "", QUEUE, body, sizeof(body) - 1, 10000, on_reply, s) < 0)
		die("cdr_mq_request refused a request", NULL);
}

static void on_pace(void *arg)
{
	struct amqp_run *r = arg;

	if (r->sent < r->n)
		send_one(r);
}

static void on_deadline(void *arg)
{
	struct amqp_run *r = arg;

	cdr_loop_stop(r->loop);
}

/* n requests: paced every gap ms (gap > 0), or window in flight. */
static json_t *amqp_series(struct cdr_loop *loop, struct cdr_mq *cli, int n, unsigned gap, int window)
{
	struct amqp_run r = { .loop = loop, .cli = cli, .n = n, .window = window };
	json_t *o;

	r.t0 = calloc((size_t)n, sizeof(double));
	r.lat = calloc((size_t)n, sizeof(double));
	if (!r.t0 || !r.lat)
		die("out of memory", NULL);
	cdr_timer_new(loop, on_deadline, &r, &r.deadline);
	cdr_timer_start(r.deadline, DEADLINE_S * 1000, false);
	r.start = now_ms();
	if (gap) {
		cdr_timer_new(loop, on_pace, &r, &r.pace);
		cdr_timer_start(r.pace, gap, true);
		send_one(&r);
	} else {
		while (r.inflight < r.window && r.sent < r.n)
			send_one(&r);
	}
	cdr_loop_run(loop);
	if (r.done < r.n) { /* answers still due would reach this frame: no going on */
		fprintf(stderr, "bench_floor: AMQP: %d of %d answered within %d s\n", r.done, r.n, DEADLINE_S);
		exit(1);
	}
	cdr_timer_free(r.deadline);
	cdr_timer_free(r.pace);
	o = series(r.lat, r.done - r.errors, gap ? 0 : r.end - r.start);
	json_object_set_new(o, "errors", json_integer(r.errors + (r.n - r.done)));
	free(r.t0);
	free(r.lat);
	return o;
}

static bool both_up(void *arg)
{
	struct cdr_mq **m = arg;

	return cdr_mq_connected(m[0]) && cdr_mq_connected(m[1]);
}

static json_t *amqp_floor(void)
{
	const char *url = th_env("CONFDR_P1_AMQP_URL");
	struct cdr_mq_opts o = { .url = url, .tls_ca = th_env("CONFDR_TLS_CA") };
	struct cdr_loop *loop;
	struct cdr_mq *m[2];
	json_t *res = json_object(), *x;

	if (!url)
		die("CONFDR_P1_AMQP_URL is not set: run bench/run.sh (or under `deploy/sandbox.sh env`)", NULL);
	if (cdr_loop_new(&loop) < 0)
		die("no loop", NULL);
	o.name = "bench-floor-server";
	if (cdr_mq_new(loop, &o, &m[0]) < 0)
		die("cannot create the AMQP client", url);
	o.name = "bench-floor-client";
	if (cdr_mq_new(loop, &o, &m[1]) < 0)
		die("cannot create the AMQP client", url);
	cdr_mq_declare_queue(m[0], QUEUE, true, NULL);
	cdr_mq_consume(m[0], QUEUE, on_request, &m[0]);
	if (!th_run_until(loop, both_up, m, 15000))
		die("the broker of p1 did not accept the connections in 15 s", NULL);
	th_run_for(loop, 300);				/* the consumer in place */
	json_decref(amqp_series(loop, m[1], 20, 0, 1)); /* warm-up */
	json_object_set_new(res, "rr_paced", x = amqp_series(loop, m[1], quick ? 100 : 300, gap_ms, 1));
	show("amqp request/reply, paced", x);
	json_object_set_new(res, "rr_b2b", x = amqp_series(loop, m[1], quick ? 500 : 2000, 0, 1));
	show("amqp request/reply, back to back", x);
	json_object_set_new(res, "rr_w64", x = amqp_series(loop, m[1], quick ? 3000 : 10000, 0, WINDOW));
	show("amqp request/reply, 64 in flight", x);
	cdr_mq_free(m[1]);
	cdr_mq_free(m[0]);
	cdr_loop_free(loop);
	{
		amqp_connection_state_t c = th_admin_open(url);

		if (c) {
			amqp_queue_delete(c, 1, amqp_cstring_bytes(QUEUE), 0, 0);
			th_admin_close(c);
		}
	}
	return res;
}

/* ---- Redis ---- */

#define NFIELDS 21

static void record_argv(int i, const char **argv, size_t *lens, char *key, size_t keylen)
{
	static const char *f[NFIELDS * 2] = {
		"e164",		 "0512000000001",
		"name",		 "bench floor conference",
		"user_domain",	 "ud-p1-r1-a",
		"platform",	 "p1",
		"host_platform", "p1",
		"room",		 "p1-r1",
		"mcu",		 "mcu-p1-r1-a-01",
		"mcu_key",	 "mcu-p1-r1-a-01",
		"vrs",		 "",
		"reservation",	 "rms-p1-1-123456",
		"req",		 "cmsim-12345-1",
		"password",	 "",
		"create",	 body,
		"start",	 "1764633600000",
		"generation",	 "0",
		"end_ms",	 "0",
		"end_reason",	 "",
		"extend_req",	 "",
		"writer",	 "p1",
		"state",	 "running",
		"epoch",	 "1",
	};
	int n = 0;

	snprintf(key, keylen, "bench:floor:%d", i % NKEYS);
	argv[n++] = "HSET";
	argv[n++] = key;
	for (int k = 0; k < NFIELDS * 2; k++)
		argv[n++] = f[k];
	for (int k = 0; k < n; k++)
		lens[k] = strlen(argv[k]);
}

#define RARGC (2 + NFIELDS * 2)

static void redis_one(redisContext *c, int i)
{
	const char *argv[RARGC];
	size_t lens[RARGC];
	char key[64];
	redisReply *rep;

	record_argv(i, argv, lens, key, sizeof(key));
	rep = redisCommandArgv(c, RARGC, argv, lens);
	if (!rep || rep->type == REDIS_REPLY_ERROR)
		die("Redis refused the record", rep ? rep->str : c->errstr);
	freeReplyObject(rep);
}

static json_t *redis_paced(redisContext *c, int n, unsigned gap)
{
	double *lat = calloc((size_t)n, sizeof(double)), t, start = now_ms();
	json_t *o;
	int k;

	for (k = 0; k < n && now_ms() - start < DEADLINE_S * 1e3; k++) {
		if (gap)
			sleep_ms(gap);
		t = now_ms();
		redis_one(c, k);
		lat[k] = now_ms() - t;
	}
	o = series(lat, k, gap ? 0 : now_ms() - start);
	free(lat);
	return o;
}

/* n records, PIPE written before their answers are read. */
static json_t *redis_pipelined(redisContext *c, int n)
{
	double start = now_ms(), bstart, *lat = calloc((size_t)(n / PIPE + 1), sizeof(double));
	int done = 0, b = 0;
	json_t *o;

	while (done < n && now_ms() - start < DEADLINE_S * 1e3) {
		int m = n - done < PIPE ? n - done : PIPE;

		bstart = now_ms();
		for (int k = 0; k < m; k++) {
			const char *argv[RARGC];
			size_t lens[RARGC];
			char key[64];

			record_argv(done + k, argv, lens, key, sizeof(key));
			if (redisAppendCommandArgv(c, RARGC, argv, lens) != REDIS_OK)
				die("Redis: cannot queue a command", c->errstr);
		}
		for (int k = 0; k < m; k++) {
			redisReply *rep;

			if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep || rep->type == REDIS_REPLY_ERROR)
				die("Redis refused a pipelined record", rep ? rep->str : c->errstr);
			freeReplyObject(rep);
		}
		lat[b++] = now_ms() - bstart;
		done += m;
	}
	o = json_object();
	json_object_set_new(o, "n", json_integer(done));
	json_object_set_new(o, "pipeline", json_integer(PIPE));
	json_object_set_new(o, "batch_p50_ms", json_real(pct(lat, b, 50)));
	json_object_set_new(o, "rate_per_s", json_real(done / ((now_ms() - start) / 1e3)));
	free(lat);
	return o;
}

static json_t *redis_floor(void)
{
	const char *hp = th_env("CONFDR_P1_REDIS"), *pw = th_env("REDISCLI_AUTH"), *colon;
	struct timeval tv = { 5, 0 };
	redisContext *c;
	redisReply *rep;
	json_t *res = json_object(), *x;
	char host[256];

	if (!hp || !(colon = strrchr(hp, ':')) || (size_t)(colon - hp) >= sizeof(host))
		die("CONFDR_P1_REDIS (host:port) is not set: run bench/run.sh", NULL);
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = 0;
	c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
	if (!c || c->err)
		die("cannot connect to p1's Redis", c ? c->errstr : hp);
	redisSetTimeout(c, tv);
	if (pw) {
		rep = redisCommand(c, "AUTH %s", pw);
		if (!rep || rep->type == REDIS_REPLY_ERROR)
			die("Redis refused AUTH (REDISCLI_AUTH)", rep ? rep->str : c->errstr);
		freeReplyObject(rep);
	}
	json_decref(redis_paced(c, 50, 0)); /* warm-up */
	json_object_set_new(res, "write_paced", x = redis_paced(c, quick ? 100 : 300, gap_ms));
	show("redis record write, paced", x);
	json_object_set_new(res, "write_b2b", x = redis_paced(c, quick ? 2000 : 10000, 0));
	show("redis record write, back to back", x);
	json_object_set_new(res, "write_pipelined", x = redis_pipelined(c, quick ? 20000 : 100000));
	printf("  %-34s n %6lld  %d per batch   %9.0f /s\n", "redis record write, pipelined",
	       (long long)json_integer_value(json_object_get(x, "n")), PIPE,
	       json_real_value(json_object_get(x, "rate_per_s")));
	for (int i = 0; i < NKEYS; i++)
		redisAppendCommand(c, "UNLINK bench:floor:%d", i);
	for (int i = 0; i < NKEYS; i++)
		if (redisGetReply(c, (void **)&rep) == REDIS_OK)
			freeReplyObject(rep);
	redisFree(c);
	return res;
}

/* ---- MariaDB ---- */

#define UPSERT                                                                                                         \
	"INSERT INTO bench_floor (e164, name, user_domain, home_platform, host_platform, room, mcu, vrs, state, "      \
	"create_json, start_ms, planned_end_ms, end_ms, end_reason, restore_generation, epoch) "                       \
	"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name), "        \
	"host_platform = VALUES(host_platform), room = VALUES(room), mcu = VALUES(mcu), vrs = VALUES(vrs), "           \
	"state = VALUES(state), planned_end_ms = VALUES(planned_end_ms), end_ms = VALUES(end_ms), "                    \
	"end_reason = VALUES(end_reason), restore_generation = VALUES(restore_generation), epoch = VALUES(epoch)"
#define NPARAMS 16

static void sql(MYSQL *c, const char *q)
{
	if (mysql_query(c, q) != 0)
		die(q, mysql_error(c));
}

/* Row i: a new E164 each (an insert, as at a create). */
static void row_exec(MYSQL_STMT *st, long long i)
{
	static long long start_ms = 1764633600000LL, planned = 1764637200000LL, gen = 0, epoch = 1;
	char e164[32];
	const char *s[10] = { e164,    "bench floor conference", "ud-p1-r1-a", "p1",	  "p1",
			      "p1-r1", "mcu-p1-r1-a-01",	 NULL,	       "running", NULL };
	MYSQL_BIND b[NPARAMS];

	snprintf(e164, sizeof(e164), "09%013lld", i);
	s[9] = body; /* create_json: the body of a create */
	memset(b, 0, sizeof(b));
	for (int k = 0; k < 10; k++) {
		if (!s[k]) {
			b[k].buffer_type = MYSQL_TYPE_NULL; /* vrs */
			continue;
		}
		b[k].buffer_type = MYSQL_TYPE_STRING;
		b[k].buffer = (void *)s[k];
		b[k].buffer_length = strlen(s[k]);
	}
	b[10].buffer_type = MYSQL_TYPE_LONGLONG;
	b[10].buffer = &start_ms;
	b[11].buffer_type = MYSQL_TYPE_LONGLONG;
	b[11].buffer = &planned;
	b[12].buffer_type = MYSQL_TYPE_NULL; /* end_ms */
	b[13].buffer_type = MYSQL_TYPE_NULL; /* end_reason */
	b[14].buffer_type = MYSQL_TYPE_LONGLONG;
	b[14].buffer = &gen;
	b[15].buffer_type = MYSQL_TYPE_LONGLONG;
	b[15].buffer = &epoch;
	if (mysql_stmt_bind_param(st, b) != 0 || mysql_stmt_execute(st) != 0)
		die("the history upsert failed", mysql_stmt_error(st));
}

static json_t *mysql_floor(void)
{
	const char *host = th_env("CONFDR_P1_MYSQL_HOST"), *port = th_env("CONFDR_MYSQL_PORT"),
		   *sec = th_env("CONFDR_SECRETS"), *ca = th_env("CONFDR_TLS_CA");
	char pwfile[512], pw[256] = "";
	unsigned timeout = 10;
	bool verify = true;
	json_t *res = json_object(), *x;
	long long row = 0;
	MYSQL_STMT *st;
	MYSQL *c;
	FILE *f;

	if (!host || !port || !sec)
		die("CONFDR_P1_MYSQL_HOST, CONFDR_MYSQL_PORT, CONFDR_SECRETS not set: run bench/run.sh", NULL);
	snprintf(pwfile, sizeof(pwfile), "%s/mysql-migrate.password", sec);
	if (!(f = fopen(pwfile, "r")) || !fgets(pw, sizeof(pw), f))
		die("cannot read the migrate password", pwfile);
	fclose(f);
	pw[strcspn(pw, "\r\n")] = 0;
	if (!(c = mysql_init(NULL)))
		die("out of memory", NULL);
	mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (ca) {
		mysql_options(c, MYSQL_OPT_SSL_CA, ca);
		mysql_options(c, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
		mysql_options(c, MARIADB_OPT_TLS_VERSION, "TLSv1.2,TLSv1.3");
	}
	if (!mysql_real_connect(c, host, "migrate", pw, "confdr_p1", (unsigned)atoi(port), NULL, 0))
		die("cannot connect to MariaDB as migrate", mysql_error(c));
	sql(c, "DROP TABLE IF EXISTS bench_floor");
	sql(c, "CREATE TABLE bench_floor LIKE confinfo");
	if (!(st = mysql_stmt_init(c)) || mysql_stmt_prepare(st, UPSERT, strlen(UPSERT)) != 0)
		die("cannot prepare the upsert", mysql_error(c));
	for (int k = 0; k < 20; k++) /* warm-up */
		row_exec(st, row++);
	{
		int n = quick ? 100 : 300, k;
		double *lat = calloc((size_t)n, sizeof(double)), t, start = now_ms();

		for (k = 0; k < n && now_ms() - start < DEADLINE_S * 1e3; k++) {
			sleep_ms(gap_ms);
			t = now_ms();
			row_exec(st, row++);
			lat[k] = now_ms() - t;
		}
		json_object_set_new(res, "write_paced", x = series(lat, k, 0));
		show("mysql history row, alone (paced)", x);
		free(lat);
	}
	{
		int nb = quick ? 6 : 20, b;
		double *lat = calloc((size_t)nb, sizeof(double)), t, start = now_ms();

		for (b = 0; b < nb && now_ms() - start < DEADLINE_S * 1e3; b++) {
			t = now_ms();
			sql(c, "START TRANSACTION");
			for (int k = 0; k < BATCH; k++)
				row_exec(st, row++);
			sql(c, "COMMIT");
			lat[b] = now_ms() - t;
		}
		x = json_object();
		json_object_set_new(x, "n", json_integer(b * BATCH));
		json_object_set_new(x, "batch", json_integer(BATCH));
		json_object_set_new(x, "batch_p50_ms", json_real(pct(lat, b, 50)));
		json_object_set_new(x, "rate_per_s", json_real(b * BATCH / ((now_ms() - start) / 1e3)));
		json_object_set_new(res, "write_batched", x);
		printf("  %-34s n %6d  %d per batch   %9.0f /s\n", "mysql history rows, batched", b * BATCH, BATCH,
		       json_real_value(json_object_get(x, "rate_per_s")));
		free(lat);
	}
	mysql_stmt_close(st);
	sql(c, "DROP TABLE bench_floor");
	mysql_close(c);
	return res;
}

int main(int argc, char **argv)
{
	const char *json_out = NULL, *only = NULL;
	json_t *res = json_object();

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json_out = argv[++i];
		else if (!strcmp(argv[i], "--gap") && i + 1 < argc)
			gap_ms = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr,
				"usage: bench_floor [--quick] [--json FILE] [--gap MS] [--only amqp|redis|mysql]\n");
			return 64;
		}
	}
	if (gap_ms < 1 || gap_ms > 1000)
		die("--gap wants 1..1000 ms", NULL);
	printf("floor: p1's servers, %s; paced = one every %u ms\n", quick ? "quick" : "full", gap_ms);
	json_object_set_new(res, "gap_ms", json_integer(gap_ms));
	if (!only || !strcmp(only, "amqp"))
		json_object_set_new(res, "amqp", amqp_floor());
	if (!only || !strcmp(only, "redis"))
		json_object_set_new(res, "redis", redis_floor());
	if (!only || !strcmp(only, "mysql"))
		json_object_set_new(res, "mysql", mysql_floor());
	if (json_out && json_dump_file(res, json_out, JSON_INDENT(1)) < 0)
		die("cannot write", json_out);
	json_decref(res);
	return 0;
}
