/* confdr-css against the sandbox's real servers (RabbitMQ vhost p1, p1's
 * Redis and MariaDB database, ZooKeeper in a chroot of its own with the
 * sandbox topology), with the real rms and pms of p1, the pms of p2 and
 * mcusim playing the MCUs; this test plays the CM on mau.conf.q (requests
 * with reply_to, every answer counted) and, for the room cases, pms on
 * pms.ntf.ex:
 *   a create ACKed with MCU, room and platform, in Redis and on the MCU;
 *   the same create delivered again: the same answer, one conference;
 *   query, list, extend (and beyond the maximum), rename, end (and again);
 *   every refusal of a create answered once with its reason: unknown and
 *   foreign user domain, malformed body, duplicate E164, no capability, no
 *   capacity, the MCU refuses, the MCU does not answer in time (its late ACK
 *   ends the conference there);
 *   unknown and unhandled request types, unreadable and oversized messages
 *   answered bad_request, an unreadable one without reply_to dead-lettered;
 *   css killed (-9) and started again: its conferences known, a create sent
 *   while it was down answered, new creates work;
 *   an mcusim killed: its conferences running again on the other MCUs of the
 *   room, each once;
 *   room p1-r1 abnormal: its conferences restored in p1-r2, new ones placed
 *   there; a repeated or stale (lower epoch) notice changes nothing; normal
 *   again: new conferences in p1-r1, restored ones stay where they run.
 * Needs the sandbox env (eval "$(deploy/sandbox.sh env)") and a namespace of
 * its own (tests/ns.sh, as ctest runs it): its vhost of p1, its ZooKeeper
 * chroot with the topology, its database of p1's Redis (FLUSHDB at start)
 * and its MariaDB database of p1 (emptied at start), as css.sh has. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/redis.h>

#include "harness.h"

#define BIN		  CONFDR_BINARY_DIR
#define SRC		  CONFDR_SOURCE_DIR
#define CREATE_TIMEOUT_MS 1500	 /* [css] create_timeout */
#define SLOW_MS		  "4000" /* the silent MCU answers this late */
#define ANSWER_MS	  30000	 /* bound for an answer css gives at once */
#define SETTLE_MS	  60000	 /* bound for what takes a second on a quiet machine */
#define LINGER_MS	  500	 /* after the last answer, for a second one */
#define MAX_ANS		  512

/* One request sent to css and what came back on our reply queue. */
struct ans {
	char id[128];
	unsigned n;	 /* answers */
	unsigned expect; /* answers expected: 1; 0 = one or more, all alike */
	bool differs;	 /* a later answer's type or body differs from the first */
	json_t *first;	 /* the first answer's envelope (NULL: not JSON) */
	json_t *last;	 /* the latest one, after the first */
	uint64_t sent, at;
};

/* An mcusim process. */
struct sim {
	const char *prefix, *room, *count;
	const char *extra[3];
	pid_t pid;
	bool dead;
	char state[160];
};

static struct sim sims[] = {
	{ "tc-a", "p1-r1", "2", { NULL }, 0, false, "" },		     /* p1-r1, stays */
	{ "tc-k", "p1-r1", "1", { NULL }, 0, false, "" },		     /* p1-r1, killed in test_mcu_loss */
	{ "tc-b", "p1-r2", "1", { NULL }, 0, false, "" },		     /* p1-r2; refuses when told (SIGUSR2) */
	{ "tc-s", "p1-r2", "1", { "--slow", SLOW_MS, NULL }, 0, false, "" }, /* p1-r2, silent; drained */
};
#define NSIMS (sizeof(sims) / sizeof(sims[0]))

static struct {
	struct cdr_loop *loop;
	struct cdr_mq *mq;
	struct cdr_redis *redis;
	char work[64], chroot[64], reply_q[96];
	char css_conf[128], css_log[128], css_extra[512];
	pid_t rms, pms1, pms2, css, css_b; /* css_b: a second instance, while a test runs one */
	struct ans ans[MAX_ANS];
	size_t nans;
	uint64_t seq;
	json_t *upu; /* every E164 report on upu.ntf.ex: {"type", "e164", "state"} */
	bool cleaned;
} C;

/* ---- environment, processes ---- */

static const char *need_env(const char *name)
{
	const char *v = th_env(name);

	if (!v)
		fail_msg("%s is not set: run under `eval \"$(deploy/sandbox.sh env)\"`", name);
	return v;
}

static bool run_until(bool (*pred)(void *), void *arg, unsigned ms)
{
	return pred(arg) || th_run_until(C.loop, pred, arg, ms);
}

/* For predicates that run the loop themselves (Redis, rms, files). */
static bool poll_until(bool (*pred)(void *), void *arg, unsigned ms)
{
	return th_poll_until(C.loop, pred, arg, ms);
}

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = th_spawn(argv, log, false);

	assert_true(pid > 0);
	return pid;
}

/* Runs argv to its end (at most ms), the loop running meanwhile; returns its
 * exit status, or -1 when it had to be killed. */
static int run_cmd(char *const argv[], const char *log, unsigned ms)
{
	pid_t pid = th_spawn(argv, log, false);
	uint64_t end = cdr_now_ms() + ms;
	int st;

	if (pid < 0)
		return -1;
	for (;;) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (cdr_now_ms() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		th_run_for(C.loop, 20);
	}
}

/* The sandbox's CA for the TLS links, "" for plain ones. */
static const char *tls_ca(void)
{
	return th_env("CONFDR_TLS_CA") ? th_env("CONFDR_TLS_CA") : "";
}

/* Runs statements in p1's MySQL database (the mysql client); its exit status. */
static int sql(const char *stmts)
{
	char pw[160], log[128], ca[4200];

	snprintf(pw, sizeof(pw), "-p%s", need_env("CONFDR_MYSQL_PASSWORD"));
	snprintf(log, sizeof(log), "%s/sql.log", C.work);
	/* TLS when the sandbox has it: its MariaDB refuses plain TCP. */
	snprintf(ca, sizeof(ca), "--ssl-ca=%s", tls_ca());
	return run_cmd((char *const[]){ "/usr/bin/mysql", "-h", (char *)need_env("CONFDR_MYSQL_HOST"), "-P",
					(char *)need_env("CONFDR_MYSQL_PORT"), "-u",
					(char *)need_env("CONFDR_MYSQL_USER"), pw,
					(char *)need_env("CONFDR_P1_MYSQL_DB"), "-N", "-B", "-e", (char *)stmts,
					*tls_ca() ? ca : NULL, "--ssl-verify-server-cert", NULL },
		       log, 30000);
}

/* A daemon's config in the work dir; returns its path in buf. */
static void write_conf(char *buf, size_t len, const char *platform, const char *daemon, const char *extra)
{
	char role[16]; /* "css" for "css-b" */
	FILE *f;

	snprintf(role, sizeof(role), "%.*s", (int)strcspn(daemon, "-"), daemon);

	snprintf(buf, len, "%s/%s-%s.conf", C.work, platform, daemon);
	f = fopen(buf, "w");
	assert_non_null(f);
	fprintf(f,
		"[daemon]\nplatform = %s\ninstance = tc-%s-%s\nlog_level = info\n"
		"[zookeeper]\nhosts = %s\nchroot = %s\nsession_timeout = 4s\n"
		/* The daemon as its role's broker user. This test plays the CM,
		 * the MCUs, pms and the operators on one administrator's
		 * connection: the senders are only logged here (check_senders);
		 * tests/attacks checks that they are refused. */
		"[amqp]\nuser = %s\npassword_file = %s/amqp-%s.password\ncheck_senders = false\nheartbeat = 2s\ntls_ca "
		"= %s\n"
		"[reconnect]\nmin = 100ms\nmax = 1s\n",
		platform, platform, daemon, need_env("CONFDR_ZK"), C.chroot, role, need_env("CONFDR_AMQP_SECRETS"),
		role, tls_ca());
	/* css logs in to Redis as the sandbox's css user (its ACL), if it has one. */
	if (getenv("CONFDR_SECRETS") && !strcmp(role, "css"))
		fprintf(f, "[redis]\nuser = css\npassword_file = %s/redis-css.password\n", getenv("CONFDR_SECRETS"));
	fprintf(f, "%s", extra);
	fclose(f);
	assert_int_equal(chmod(buf, 0600), 0); /* it holds passwords: others must not read it */
}

static pid_t start_daemon(const char *daemon, const char *conf, const char *log)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/confdr-%s", BIN, daemon);
	return spawn((char *const[]){ path, "-c", (char *)conf, NULL }, log);
}

static void start_css(void)
{
	C.css = start_daemon("css", C.css_conf, C.css_log);
}

static void start_sim(struct sim *m)
{
	char log[160];
	char *argv[32] = { BIN "/mcusim", "--platform",	     "p1",	"--room",	  (char *)m->room,
			   "--prefix",	  (char *)m->prefix, "--count", (char *)m->count, "--capacity",
			   "500",	  "--list-interval", "0",	"--state",	  m->state,
			   "-q" };
	size_t n = 16;

	snprintf(m->state, sizeof(m->state), "%s/%s.json", C.work, m->prefix);
	snprintf(log, sizeof(log), "%s/%s.log", C.work, m->prefix);
	for (size_t i = 0; m->extra[i] && i < 3; i++)
		argv[n++] = (char *)m->extra[i];
	argv[n] = NULL;
	m->pid = spawn(argv, log);
	m->dead = false;
}

static struct sim *sim_of(const char *prefix)
{
	for (size_t i = 0; i < NSIMS; i++)
		if (!strcmp(sims[i].prefix, prefix))
			return &sims[i];
	fail_msg("no simulator %s", prefix);
	return NULL;
}

/* Says when a child other than css did not stop cleanly (css's own stop is
 * asserted by the group teardown). */
static void stopped(const char *what, int st)
{
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		printf("# %s did not stop cleanly (wait status %d)\n", what, st);
}

/* Stops every child: css first (nothing acts on what follows), the pms of
 * p2 last (p1's pms would declare p2 down without it). Also at exit. */
static void cleanup(void)
{
	if (C.cleaned)
		return;
	C.cleaned = true;
	if (C.css > 0) {
		kill(C.css, SIGCONT); /* a test that failed while it was frozen */
		th_stop(NULL, C.css, SIGTERM, 20000);
	}
	if (C.css_b > 0)
		th_stop(NULL, C.css_b, SIGTERM, 20000);
	for (size_t i = 0; i < NSIMS; i++)
		if (sims[i].pid > 0 && !sims[i].dead)
			stopped(sims[i].prefix, th_stop(NULL, sims[i].pid, SIGTERM, 10000));
	stopped("rms of p1", th_stop(NULL, C.rms, SIGTERM, 15000));
	stopped("pms of p1", th_stop(NULL, C.pms1, SIGTERM, 15000));
	stopped("pms of p2", th_stop(NULL, C.pms2, SIGTERM, 15000));
	C.css = C.rms = C.pms1 = C.pms2 = 0;
	for (size_t i = 0; i < NSIMS; i++)
		sims[i].pid = 0;
}

/* ---- files: the logs and the simulators' state files ---- */

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* How many times needle occurs in path after offset from. */
static int log_count(const char *path, long from, const char *needle)
{
	FILE *f = fopen(path, "r");
	long size = file_size(path);
	char *buf, *p;
	size_t got;
	int n = 0;

	if (!f)
		return 0;
	if (size <= from || fseek(f, from, SEEK_SET) != 0 || !(buf = malloc((size_t)(size - from) + 1))) {
		fclose(f);
		return 0;
	}
	got = fread(buf, 1, (size_t)(size - from), f);
	buf[got] = '\0';
	fclose(f);
	for (p = buf; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(buf);
	return n;
}

struct log_want {
	const char *path, *needle;
	long from;
};

static bool log_has(void *arg)
{
	struct log_want *w = arg;

	return log_count(w->path, w->from, w->needle) > 0;
}

/* Where e164 runs according to the simulators' own state files (the dead
 * ones' files are stale and not read): how many copies, and on which MCU
 * (the last one found), its generation and name. */
struct where {
	int copies;
	char mcu[64], name[300];
	int64_t generation;
};

static struct where runs(const char *e164)
{
	struct where w = { 0 };

	for (size_t i = 0; i < NSIMS; i++) {
		json_t *st, *m, *c;
		size_t k, j;

		if (sims[i].dead || !(st = json_load_file(sims[i].state, 0, NULL)))
			continue;
		json_array_foreach(json_object_get(st, "mcus"), k, m)
		{
			json_array_foreach(json_object_get(m, "confs"), j, c)
			{
				if (strcmp(json_string_value(json_object_get(c, "e164")), e164))
					continue;
				w.copies++;
				snprintf(w.mcu, sizeof(w.mcu), "%s", json_string_value(json_object_get(m, "id")));
				snprintf(w.name, sizeof(w.name), "%s", json_string_value(json_object_get(c, "name")));
				w.generation = json_integer_value(json_object_get(c, "generation"));
			}
		}
		json_decref(st);
	}
	return w;
}

struct run_want {
	const char *e164, *mcu, *name; /* mcu, name: NULL = any */
	int copies;
};

static bool runs_as_wanted(void *arg)
{
	struct run_want *rw = arg;
	struct where w = runs(rw->e164);

	return w.copies == rw->copies && (!rw->mcu || !rw->copies || !strcmp(w.mcu, rw->mcu)) &&
	       (!rw->name || !strcmp(w.name, rw->name));
}

/* Waits until e164 runs copies times (on mcu, with name, when given). */
static void wait_runs(const char *e164, int copies, const char *mcu, const char *name)
{
	struct run_want rw = { e164, mcu, name, copies };

	if (!poll_until(runs_as_wanted, &rw, SETTLE_MS)) {
		struct where w = runs(e164);

		fail_msg("%s: %d copies on the MCUs (last on %s, name \"%s\"), wanted %d%s%s", e164, w.copies, w.mcu,
			 w.name, copies, mcu ? " on " : "", mcu ? mcu : "");
	}
}

static bool sim_refuses(struct sim *m)
{
	json_t *st = json_load_file(m->state, 0, NULL);
	bool r = json_is_true(json_object_get(st, "refuse"));

	json_decref(st);
	return r;
}

static bool sim_refusing(void *arg)
{
	return sim_refuses(arg);
}

static bool sim_accepting(void *arg)
{
	json_t *st = json_load_file(((struct sim *)arg)->state, 0, NULL);
	bool r = json_is_false(json_object_get(st, "refuse"));

	json_decref(st);
	return r;
}

/* ---- Redis (p1's) ---- */

struct rcall {
	bool done;
	int status;
	json_t *v;
};

static json_t *reply_json(const redisReply *r)
{
	json_t *a;

	if (!r)
		return json_null();
	switch (r->type) {
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS: return json_stringn(r->str, r->len);
	case REDIS_REPLY_INTEGER: return json_integer(r->integer);
	case REDIS_REPLY_ARRAY:
		a = json_array();
		for (size_t i = 0; i < r->elements; i++)
			json_array_append_new(a, reply_json(r->element[i]));
		return a;
	default: return json_null();
	}
}

static void on_redis(int status, const redisReply *reply, void *arg)
{
	struct rcall *rc = arg;

	rc->status = status;
	if (status == 0)
		rc->v = reply_json(reply);
	rc->done = true;
}

static bool rcall_done(void *arg)
{
	return ((struct rcall *)arg)->done;
}

/* Runs the command (argv ends with NULL); returns its reply as JSON (new
 * reference: strings, integers, arrays, null). */
static json_t *redis_argv(const char **argv)
{
	struct rcall rc = { 0 };
	int argc = 0;

	while (argv[argc])
		argc++;
	for (int tries = 0; cdr_redis_command_argv(C.redis, on_redis, &rc, argc, argv, NULL) < 0; tries++) {
		assert_true(tries < 100); /* 10 s without a connection */
		th_run_for(C.loop, 100);
	}
	assert_true(run_until(rcall_done, &rc, 20000));
	if (rc.status < 0)
		fail_msg("redis %s: %s", argv[0], strerror(-rc.status));
	return rc.v;
}

#define REDIS(...) redis_argv((const char *[]){ __VA_ARGS__, NULL })

static long long redis_int(json_t *v)
{
	long long n = json_is_integer(v) ? json_integer_value(v) : -1;

	json_decref(v);
	return n;
}

/* One field of conf:<e164> into buf ("" when absent). */
static const char *rec_field(const char *e164, const char *field, char *buf, size_t len)
{
	char key[64];
	json_t *v;

	snprintf(key, sizeof(key), "conf:%s", e164);
	v = REDIS("HGET", key, field);
	snprintf(buf, len, "%s", json_is_string(v) ? json_string_value(v) : "");
	json_decref(v);
	return buf;
}

static bool rec_exists(const char *e164)
{
	char key[64];

	snprintf(key, sizeof(key), "conf:%s", e164);
	return redis_int(REDIS("EXISTS", key)) == 1;
}

static bool rec_gone(void *arg)
{
	return !rec_exists(arg);
}

/* Every record: [[e164, state, room, mcu, generation], ...]. */
static json_t *records(void)
{
	return REDIS("EVAL",
		     "local r = {} for _, e in ipairs(redis.call('SMEMBERS', 'confs:all')) do "
		     "local h = redis.call('HMGET', 'conf:' .. e, 'state', 'room', 'mcu', 'generation') "
		     "table.insert(r, {e, h[1] or '', h[2] or '', h[3] or '', h[4] or ''}) end return r",
		     "0");
}

static const char *rf(json_t *rec, size_t i)
{
	return json_string_value(json_array_get(rec, i));
}

/* ---- the bus: this test as the CM ---- */

static struct ans *ans_find(const char *id)
{
	for (size_t i = 0; i < C.nans; i++)
		if (!strcmp(C.ans[i].id, id))
			return &C.ans[i];
	return NULL;
}

static struct ans *ans_add(const char *id)
{
	struct ans *a = ans_find(id);

	if (a)
		return a;
	assert_true(C.nans < MAX_ANS);
	a = &C.ans[C.nans++];
	snprintf(a->id, sizeof(a->id), "%s", id);
	a->expect = 1;
	return a;
}

static bool same_answer(json_t *a, json_t *b)
{
	return a && b && json_equal(json_object_get(a, "type"), json_object_get(b, "type")) &&
	       json_equal(json_object_get(a, "body"), json_object_get(b, "body"));
}

static void on_answer(struct cdr_mq_delivery *d, void *arg)
{
	struct ans *a;
	json_t *o;

	(void)arg;
	if (d->correlation_id && C.nans < MAX_ANS) {
		a = ans_add(d->correlation_id);
		o = json_loadb(d->body, d->len, 0, NULL);
		if (++a->n == 1) {
			a->first = o;
			a->at = cdr_now_ms();
		} else {
			if (!same_answer(a->first, o))
				a->differs = true;
			json_decref(a->last);
			a->last = o;
		}
	}
	cdr_mq_ack(d);
}

/* UPU's side: every report css publishes on upu.ntf.ex, batched or not. */
static void on_upu(struct cdr_mq_delivery *d, void *arg)
{
	json_t *o = json_loadb(d->body, d->len, 0, NULL), *items, *it;
	const char *type = json_string_value(json_object_get(o, "type"));
	size_t i;

	(void)arg;
	if (type && !strcmp(type, "mau_upu_e164_batch_ntf"))
		items = json_incref(json_object_get(json_object_get(o, "body"), "items"));
	else
		items = json_pack("[O]", json_object_get(o, "body"));
	json_array_foreach(items, i, it)
	{
		json_array_append_new(C.upu,
				      json_pack("{s:s, s:O, s:O}", "type", type ? type : "?", "e164",
						json_object_get(it, "e164"), "state", json_object_get(it, "state")));
	}
	json_decref(items);
	json_decref(o);
	cdr_mq_ack(d);
}

struct upu_want {
	const char *e164, *state, *type;
};

static bool upu_seen(void *arg)
{
	const struct upu_want *w = arg;
	json_t *it;
	size_t i;

	json_array_foreach(C.upu, i, it)
	{
		if (!strcmp(json_string_value(json_object_get(it, "e164")) ?: "", w->e164) &&
		    !strcmp(json_string_value(json_object_get(it, "state")) ?: "", w->state) &&
		    !strcmp(json_string_value(json_object_get(it, "type")) ?: "", w->type))
			return true;
	}
	return false;
}

/* css told UPU that e164 reached state, in a message of type, within 10 s. */
static void expect_upu(const char *e164, const char *state, const char *type)
{
	struct upu_want w = { e164, state, type };

	if (!run_until(upu_seen, &w, 10000)) {
		char *all = json_dumps(C.upu, JSON_COMPACT);

		fail_msg("no %s %s of %s on upu.ntf.ex; seen: %s", type, state, e164, all ? all : "?");
	}
}

static const char *fresh_id(char *buf, size_t len)
{
	snprintf(buf, len, "tc-%ld-%llu", (long)getpid(), (unsigned long long)++C.seq);
	return buf;
}

/* Publishes txt to mau.conf.q as the CM does: persistent, mandatory,
 * correlation_id and message_id = id, reply_to = our queue (or none). */
static struct ans *cm_send_raw(const char *id, const char *txt, size_t len, bool reply_to)
{
	struct cdr_mq_props p = { .persistent = true, .mandatory = true };
	struct ans *a = reply_to ? ans_add(id) : NULL;

	p.correlation_id = id;
	p.message_id = id;
	p.reply_to = reply_to ? C.reply_q : NULL;
	if (a)
		a->sent = cdr_now_ms();
	assert_int_equal(cdr_mq_publish(C.mq, "", CDR_MQ_MAU_CONF_Q, &p, txt, len, NULL, NULL), 0);
	return a;
}

/* Sends a request of type with body (stolen) and id (NULL: a fresh one). */
static struct ans *cm_send(const char *type, const char *id, json_t *body)
{
	char fresh[64], *txt;
	struct ans *a;

	if (!id)
		id = fresh_id(fresh, sizeof(fresh));
	txt = cdr_msg_encode(type, id, "cm", 0, body);
	assert_non_null(txt);
	a = cm_send_raw(id, txt, strlen(txt), true);
	free(txt);
	return a;
}

static bool answered(void *arg)
{
	return ((struct ans *)arg)->n > 0;
}

/* The first answer to a (its envelope, borrowed), waited for at most ms. */
static json_t *cm_wait_for(struct ans *a, unsigned ms)
{
	if (!run_until(answered, a, ms))
		fail_msg("request %s: no answer within %u ms", a->id, ms);
	if (!a->first)
		fail_msg("request %s: the answer is not JSON", a->id);
	return a->first;
}

static json_t *cm_wait(struct ans *a)
{
	return cm_wait_for(a, ANSWER_MS);
}

struct ans_want {
	struct ans *a;
	unsigned n;
};

static bool answered_n(void *arg)
{
	struct ans_want *w = arg;

	return w->a->n >= w->n;
}

/* Waits until a has n answers. */
static void wait_answers(struct ans *a, unsigned n)
{
	struct ans_want w = { a, n };

	if (!run_until(answered_n, &w, ANSWER_MS))
		fail_msg("request %s: %u answers, not %u, within %u ms", a->id, a->n, n, ANSWER_MS);
}

static json_t *cm_call(const char *type, json_t *body)
{
	return cm_wait(cm_send(type, NULL, body));
}

static json_t *body_of(json_t *env)
{
	return json_object_get(env, "body");
}

static const char *bstr(json_t *env, const char *field)
{
	const char *v = json_string_value(json_object_get(body_of(env), field));

	return v ? v : "";
}

static void expect_type(json_t *env, const char *type)
{
	if (strcmp(json_string_value(json_object_get(env, "type")), type)) {
		char *s = json_dumps(env, 0);

		fail_msg("expected %s, got %s", type, s);
	}
}

/* A NACK of type with reason (and e164 in its body when given). */
static void expect_nack(json_t *env, const char *type, const char *reason, const char *e164)
{
	expect_type(env, type);
	if (strcmp(bstr(env, "reason"), reason)) {
		char *s = json_dumps(env, 0);

		fail_msg("expected reason %s, got %s", reason, s);
	}
	if (e164)
		assert_string_equal(bstr(env, "e164"), e164);
}

static void expect_detail(json_t *env, const char *part)
{
	if (!strstr(bstr(env, "detail"), part))
		fail_msg("detail \"%s\" does not name \"%s\"", bstr(env, "detail"), part);
}

/* After a linger for late repeats: every request sent since index from was
 * answered as often as expected (once, unless said otherwise). */
static void check_answers(size_t from)
{
	th_run_for(C.loop, LINGER_MS);
	for (size_t i = from; i < C.nans; i++) {
		struct ans *a = &C.ans[i];

		if (a->expect ? a->n != a->expect : a->n < 1)
			fail_msg("request %s: %u answers, %u expected", a->id, a->n, a->expect);
		if (a->differs)
			fail_msg("request %s: answered differently", a->id);
	}
}

static json_t *create_body(const char *e164, const char *ud)
{
	return json_pack("{s:s, s:s, s:s, s:i}", "e164", e164, "name", "test css", "user_domain", ud, "duration_min",
			 60);
}

/* A create ACKed in room; returns its MCU (into mcu). */
static void create_ok(const char *e164, const char *ud, const char *room, char *mcu, size_t len)
{
	json_t *r = cm_call("cm_mau_createconf_req", create_body(e164, ud));

	expect_type(r, "mau_cm_createconf_ack");
	assert_string_equal(bstr(r, "e164"), e164);
	assert_string_equal(bstr(r, "room"), room);
	assert_string_equal(bstr(r, "platform"), "p1");
	assert_true(json_is_null(json_object_get(body_of(r), "vrs")));
	assert_true(*bstr(r, "mcu"));
	snprintf(mcu, len, "%s", bstr(r, "mcu"));
}

/* ---- rms and pms, asked directly ---- */

/* A request to queue; the answer's envelope (new reference) or NULL. */
static json_t *ask(const char *queue, const char *type, json_t *body, unsigned ms)
{
	struct th_call c = { 0 };
	char id[64], *txt = cdr_msg_encode(type, fresh_id(id, sizeof(id)), "test-css", 0, body);

	assert_non_null(txt);
	assert_int_equal(cdr_mq_request(C.mq, "", queue, txt, strlen(txt), ms, th_on_reply, &c), 0);
	free(txt);
	assert_true(run_until(th_call_done, &c, ms + 5000));
	if (c.status < 0) {
		json_decref(c.reply);
		return NULL;
	}
	return c.reply;
}

static bool mcus_up(void *arg)
{
	json_t *inv = ask(CDR_MQ_RMS_REQ_Q, "ctl_rms_inventory_req", json_object(), 2000), *m;
	size_t i, up = 0;

	(void)arg;
	json_array_foreach(json_object_get(body_of(inv), "mcus"), i, m)
	{
		const char *id = json_string_value(json_object_get(m, "mcu"));

		if (id && !strncmp(id, "tc-", 3) && !strcmp(json_string_value(json_object_get(m, "state")), "up"))
			up++;
	}
	json_decref(inv);
	return up == 5; /* tc-a-01, -02, tc-k-01, tc-b-01, tc-s-01 */
}

static void drain(const char *mcu, bool on)
{
	json_t *r = ask(CDR_MQ_RMS_REQ_Q, "ctl_rms_drain_req",
			json_pack("{s:s, s:b, s:s}", "mcu", mcu, "drain", on, "operator", "test-css"), 20000);

	assert_non_null(r);
	expect_type(r, "rms_ctl_drain_ack");
	assert_string_equal(bstr(r, "state"), on ? "drain" : "up");
	json_decref(r);
}

/* The highest state epoch pms knows. */
static int64_t pms_epoch(void)
{
	json_t *r = ask(CDR_MQ_PMS_REQ_Q, "any_pms_state_req", json_object(), 20000);
	int64_t e;

	assert_non_null(r);
	expect_type(r, "pms_any_state_ack");
	e = json_integer_value(json_object_get(body_of(r), "epoch"));
	json_decref(r);
	return e;
}

/* A room state broadcast as pms makes it (pms_all_room_ntf on pms.ntf.ex). */
static void room_notice(const char *room, bool abnormal, int64_t epoch)
{
	struct cdr_mq_props p = { .persistent = true };
	struct th_confirm c = { 0 };
	char id[64], platform[8], *txt;

	snprintf(platform, sizeof(platform), "%.2s", room);
	txt = cdr_msg_encode("pms_all_room_ntf", fresh_id(id, sizeof(id)), "pms-p1", 0,
			     json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:I, s:I}", "room", room, "platform",
				       platform, "state", abnormal ? "abnormal" : "normal", "manual", 1, "reason",
				       "manual_switch", "detail", "test_css", "by", "test-css", "since",
				       (json_int_t)cdr_wall_ms(), "epoch", (json_int_t)epoch));
	assert_non_null(txt);
	assert_int_equal(cdr_mq_publish(C.mq, CDR_MQ_PMS_NTF_EX, "", &p, txt, strlen(txt), th_on_confirm, &c), 0);
	free(txt);
	assert_true(run_until(th_confirmed, &c, 20000));
	assert_int_equal(c.status, 0);
}

/* Messages in a queue (passive declare on a connection of its own). */
static long queue_depth(const char *queue)
{
	amqp_connection_state_t a = th_admin_open(need_env("CONFDR_P1_AMQP_URL"));
	amqp_queue_declare_ok_t *ok;
	long n = -1;

	if (!a)
		return -1;
	ok = amqp_queue_declare(a, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
	if (ok)
		n = (long)ok->message_count;
	th_admin_close(a);
	return n;
}

static void purge(const char *queue)
{
	amqp_connection_state_t a = th_admin_open(need_env("CONFDR_P1_AMQP_URL"));

	if (!a)
		return;
	amqp_queue_purge(a, 1, amqp_cstring_bytes(queue));
	th_admin_close(a);
}

/* ---- setup ---- */

static bool mq_up(void *arg)
{
	(void)arg;
	return cdr_mq_connected(C.mq);
}

static bool redis_up(void *arg)
{
	(void)arg;
	return cdr_redis_connected(C.redis);
}

/* css answers a list: it consumes mau.conf.q. */
static void wait_css_serving(unsigned ms)
{
	struct ans *a = cm_send("cm_mau_listconf_req", NULL, json_pack("{s:s}", "user_domain", "ud-p1-r1-a"));

	expect_type(cm_wait_for(a, ms), "mau_cm_listconf_ack");
}

static void start_daemons(void)
{
	char conf[160], log[160], extra[512];

	write_conf(conf, sizeof(conf), "p1", "rms",
		   "[rms]\nheartbeat_interval = 300ms\nheartbeat_misses = 10\nbroker_return_grace = 3s\n");
	snprintf(log, sizeof(log), "%s/p1-rms.log", C.work);
	C.rms = start_daemon("rms", conf, log);
	/* p2's pms first: p1's pms declares p2 down when it has no live pms for
	 * peer_grace (then css would take p2 over); a generous grace */
	write_conf(conf, sizeof(conf), "p2", "pms", "[pms]\npeer_grace = 30s\n");
	snprintf(log, sizeof(log), "%s/p2-pms.log", C.work);
	C.pms2 = start_daemon("pms", conf, log);
	/* rooms judged by nothing: they change only when this test says so */
	write_conf(conf, sizeof(conf), "p1", "pms",
		   "[pms]\npeer_grace = 30s\n[room p1-r1]\nmcus = no\n[room p1-r2]\nmcus = no\n");
	snprintf(log, sizeof(log), "%s/p1-pms.log", C.work);
	C.pms1 = start_daemon("pms", conf, log);
	snprintf(extra, sizeof(extra),
		 "[css]\ncreate_timeout = %dms\nend_timeout = 2s\nresume_window = 5s\ntemplate_refresh = 500ms\n"
		 "[mysql]\nuser = %s\npassword = %s\nmigrations = %s/deploy/sql\ntls_ca = %s\n",
		 CREATE_TIMEOUT_MS, need_env("CONFDR_MYSQL_USER"), need_env("CONFDR_MYSQL_PASSWORD"), SRC, tls_ca());
	snprintf(C.css_extra, sizeof(C.css_extra), "%s", extra);
	write_conf(C.css_conf, sizeof(C.css_conf), "p1", "css", extra);
	snprintf(C.css_log, sizeof(C.css_log), "%s/p1-css.log", C.work);
	start_css();
	for (size_t i = 0; i < NSIMS; i++)
		start_sim(&sims[i]);
}

static int group_setup(void **state)
{
	const char *redis_ep = need_env("CONFDR_P1_REDIS"), *colon = strrchr(redis_ep, ':');
	char host[64], log[160];
	struct cdr_mq_opts o = { 0 };
	struct cdr_redis_opts ro = { 0 };
	uint64_t t0 = cdr_now_ms();
	int rc;

	(void)state;
	need_env("CONFDR_ZK");
	need_env("CONFDR_MYSQL_HOST");
	need_env("CONFDR_P1_MYSQL_DB");
	assert_non_null(colon);
	atexit(cleanup);
	snprintf(C.work, sizeof(C.work), "/tmp/confdr-test-css-XXXXXX");
	assert_non_null(mkdtemp(C.work));
	snprintf(C.chroot, sizeof(C.chroot), "%s", need_env("CONFDR_ZK_CHROOT")); /* the topology is there */
	snprintf(log, sizeof(log), "%s/setup.log", C.work);
	assert_int_equal(cdr_loop_new(&C.loop), 0);

	/* the CM's connection: our reply queue, every answer counted */
	o.url = need_env("CONFDR_P1_AMQP_URL");
	o.tls_ca = th_env("CONFDR_TLS_CA");
	o.name = "test-css-cm";
	o.reconnect_min_ms = 100;
	o.reconnect_max_ms = 1000;
	o.max_body = 8 << 20; /* test_unreadable_and_unknown publishes more than css reads */
	assert_int_equal(cdr_mq_new(C.loop, &o, &C.mq), 0);
	snprintf(C.reply_q, sizeof(C.reply_q), "test-css.%ld", (long)getpid());
	assert_int_equal(cdr_mq_declare_design(C.mq), 0);
	assert_int_equal(cdr_mq_declare_private_queue(C.mq, C.reply_q), 0);
	assert_int_equal(cdr_mq_consume(C.mq, C.reply_q, on_answer, NULL), 0);
	C.upu = json_array();
	assert_int_equal(cdr_mq_subscribe(C.mq, CDR_MQ_UPU_NTF_EX, "", on_upu, NULL), 0);
	assert_true(run_until(mq_up, NULL, 30000));

	/* the namespace's p1 Redis database and MariaDB database are ours; what a
	 * failed run left goes */
	snprintf(host, sizeof(host), "%.*s", (int)(colon - redis_ep), redis_ep);
	ro.host = host;
	ro.port = atoi(colon + 1);
	ro.password = getenv("REDISCLI_AUTH"); /* the sandbox's admin (default user), if any */
	ro.db = atoi(need_env("CONFDR_P1_REDIS_DB"));
	ro.name = "test-css";
	assert_int_equal(cdr_redis_new(C.loop, &ro, &C.redis), 0);
	assert_true(run_until(redis_up, NULL, 20000));
	json_decref(REDIS("FLUSHDB"));
	rc = sql("DELETE FROM confinfo; DELETE FROM conf_template");
	if (rc != 0)
		printf("# emptying %s: exit %d (no tables yet in a fresh namespace)\n", need_env("CONFDR_P1_MYSQL_DB"),
		       rc);
	for (size_t i = 0; i < 3; i++)
		purge((const char *[]){ CDR_MQ_MAU_CONF_Q, CDR_MQ_MAU_CMU_Q, CDR_MQ_BMC_CDR_Q }[i]);

	start_daemons();
	if (!poll_until(mcus_up, NULL, SETTLE_MS))
		fail_msg("rms does not have the 5 simulated MCUs up (see %s)", C.work);
	drain("tc-s-01", true); /* the silent MCU gets creates only when test_mcu_silent says so */
	wait_css_serving(90000);
	printf("# daemons and MCUs ready in %llu ms\n", (unsigned long long)(cdr_now_ms() - t0));
	return 0;
}

static int group_teardown(void **state)
{
	int st = -1;

	(void)state;
	if (C.css > 0) {
		kill(C.css, SIGCONT);
		st = th_stop(NULL, C.css, SIGTERM, 20000);
		C.css = 0;
	}
	cleanup();
	for (size_t i = 0; i < C.nans; i++) {
		json_decref(C.ans[i].first);
		json_decref(C.ans[i].last);
	}
	C.redis = cdr_redis_free(C.redis);
	C.mq = cdr_mq_free(C.mq);
	json_decref(C.upu);
	C.loop = cdr_loop_free(C.loop);
	if (!getenv("CONFDR_KEEP_TEST_DIR")) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", C.work);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", C.work);
	} else {
		printf("# kept %s\n", C.work);
	}
	/* css stops on SIGTERM, cleanly (under ASan: without a leak) */
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("css did not stop cleanly on SIGTERM (wait status %d)", st);
	return 0;
}

/* ---- tests ---- */

static void test_create(void **state)
{
	const char *e164 = "7100000001";
	size_t from = C.nans;
	struct ans *a;
	json_t *r;
	char buf[64];

	(void)state;
	a = cm_send("cm_mau_createconf_req", NULL, create_body(e164, "ud-p1-r1-a"));
	r = cm_wait(a);
	printf("# create ACKed in %llu ms\n", (unsigned long long)(a->at - a->sent));
	expect_type(r, "mau_cm_createconf_ack");
	assert_string_equal(json_string_value(json_object_get(r, "id")), a->id);
	assert_string_equal(bstr(r, "e164"), e164);
	assert_string_equal(bstr(r, "room"), "p1-r1");
	assert_string_equal(bstr(r, "platform"), "p1");
	assert_true(json_is_null(json_object_get(body_of(r), "vrs")));
	assert_true(!strncmp(bstr(r, "mcu"), "tc-a-", 5) || !strcmp(bstr(r, "mcu"), "tc-k-01"));
	/* the record, in p1's Redis */
	assert_string_equal(rec_field(e164, "state", buf, sizeof(buf)), "running");
	assert_string_equal(rec_field(e164, "mcu", buf, sizeof(buf)), bstr(r, "mcu"));
	assert_string_equal(rec_field(e164, "room", buf, sizeof(buf)), "p1-r1");
	assert_string_equal(rec_field(e164, "user_domain", buf, sizeof(buf)), "ud-p1-r1-a");
	assert_string_equal(rec_field(e164, "req", buf, sizeof(buf)), a->id);
	assert_int_equal(redis_int(REDIS("SISMEMBER", "confs:all", e164)), 1);
	assert_int_equal(redis_int(REDIS("SISMEMBER", "confs:ud:ud-p1-r1-a", e164)), 1);
	/* the conference, on the MCU of the ACK (its own state file) */
	wait_runs(e164, 1, bstr(r, "mcu"), "test css");
	/* UPU told, in a batch ([css] upu_batch, 20 ms by default) */
	expect_upu(e164, "start", "mau_upu_e164_batch_ntf");
	check_answers(from);
}

static void test_create_redelivered(void **state)
{
	const char *e164 = "7100000101", *e2 = "7100000102";
	size_t from = C.nans;
	struct ans *a, *b;
	long long before;
	char id[64], id2[64];
	json_t *r;

	(void)state;
	fresh_id(id, sizeof(id));
	a = cm_send("cm_mau_createconf_req", id, create_body(e164, "ud-p1-r1-a"));
	r = cm_wait(a);
	expect_type(r, "mau_cm_createconf_ack");
	wait_runs(e164, 1, bstr(r, "mcu"), NULL);
	before = redis_int(REDIS("SCARD", "confs:all"));
	/* the same request (same id) again, as the broker redelivers it */
	a->expect = 2;
	cm_send("cm_mau_createconf_req", id, create_body(e164, "ud-p1-r1-a"));
	wait_answers(a, 2);
	assert_false(a->differs); /* the same answer */
	assert_int_equal(redis_int(REDIS("SCARD", "confs:all")), before);
	wait_runs(e164, 1, NULL, NULL); /* not a second conference */

	/* twice back to back, the second maybe while the first is in flight:
	 * one answer to the newest delivery, or the same answer twice */
	fresh_id(id2, sizeof(id2));
	b = cm_send("cm_mau_createconf_req", id2, create_body(e2, "ud-p1-r1-b"));
	cm_send("cm_mau_createconf_req", id2, create_body(e2, "ud-p1-r1-b"));
	b->expect = 0;
	expect_type(cm_wait(b), "mau_cm_createconf_ack");
	th_run_for(C.loop, 1000);
	printf("# the same create sent twice back to back: %u answer(s), identical\n", b->n);
	assert_true(b->n == 1 || b->n == 2);
	wait_runs(e2, 1, bstr(b->first, "mcu"), NULL);
	assert_int_equal(redis_int(REDIS("SCARD", "confs:all")), before + 1);
	check_answers(from);
}

/* The conference in a list of its domain (NULL: absent), new reference. */
static json_t *listed(const char *ud, const char *e164)
{
	json_t *r = cm_call("cm_mau_listconf_req", json_pack("{s:s}", "user_domain", ud)), *c, *found = NULL;
	size_t i;

	expect_type(r, "mau_cm_listconf_ack");
	assert_string_equal(bstr(r, "user_domain"), ud);
	json_array_foreach(json_object_get(body_of(r), "confs"), i, c)
	{
		if (!found && !strcmp(json_string_value(json_object_get(c, "e164")), e164))
			found = json_incref(c);
	}
	return found;
}

static void test_query_list_extend_rename_end(void **state)
{
	const char *e164 = "7100000201";
	size_t from = C.nans;
	char mcu[64], buf[64], end_id[64];
	json_t *r, *conf, *l;
	int64_t planned;
	struct ans *end;

	(void)state;
	create_ok(e164, "ud-p1-r1-b", "p1-r1", mcu, sizeof(mcu));
	/* query: the record */
	r = cm_call("cm_mau_queryconf_req", json_pack("{s:s}", "e164", e164));
	expect_type(r, "mau_cm_queryconf_ack");
	conf = json_object_get(body_of(r), "conf");
	assert_string_equal(json_string_value(json_object_get(conf, "state")), "running");
	assert_string_equal(json_string_value(json_object_get(conf, "mcu")), mcu);
	assert_string_equal(json_string_value(json_object_get(conf, "room")), "p1-r1");
	assert_string_equal(json_string_value(json_object_get(conf, "platform")), "p1");
	assert_string_equal(json_string_value(json_object_get(conf, "host_platform")), "p1");
	assert_string_equal(json_string_value(json_object_get(conf, "user_domain")), "ud-p1-r1-b");
	planned = json_integer_value(json_object_get(conf, "planned_end"));
	assert_int_equal(planned - json_integer_value(json_object_get(conf, "start")), 60 * 60000);
	/* list: the domain's conferences */
	l = listed("ud-p1-r1-b", e164);
	assert_non_null(l);
	assert_string_equal(json_string_value(json_object_get(l, "state")), "running");
	json_decref(l);
	/* extend: a new planned end, in the ACK, the record and the expiry set */
	r = cm_call("cm_mau_extendconf_req", json_pack("{s:s, s:i}", "e164", e164, "minutes", 30));
	expect_type(r, "mau_cm_extendconf_ack");
	assert_int_equal(json_integer_value(json_object_get(body_of(r), "planned_end")), planned + 30 * 60000);
	assert_int_equal(atoll(rec_field(e164, "planned_end", buf, sizeof(buf))), planned + 30 * 60000);
	{
		json_t *z = REDIS("ZSCORE", "confs:expiry", e164);

		assert_true(json_is_string(z));
		assert_int_equal(atoll(json_string_value(z)), planned + 30 * 60000);
		json_decref(z);
	}
	/* beyond the maximum duration (1440 min) */
	r = cm_call("cm_mau_extendconf_req", json_pack("{s:s, s:i}", "e164", e164, "minutes", 1440));
	expect_nack(r, "mau_cm_extendconf_nack", "limit_reached", e164);
	/* rename: on the MCU, in the record, in the ACK */
	r = cm_call("cm_mau_renameconf_req", json_pack("{s:s, s:s}", "e164", e164, "name", "Board meeting"));
	expect_type(r, "mau_cm_renameconf_ack");
	assert_string_equal(bstr(r, "name"), "Board meeting");
	assert_string_equal(rec_field(e164, "name", buf, sizeof(buf)), "Board meeting");
	wait_runs(e164, 1, mcu, "Board meeting");
	/* end: gone from the MCU, from Redis (once MySQL has its row), from queries */
	end = cm_send("cm_mau_endconf_req", fresh_id(end_id, sizeof(end_id)), json_pack("{s:s}", "e164", e164));
	r = cm_wait(end);
	expect_type(r, "mau_cm_endconf_ack");
	assert_string_equal(bstr(r, "e164"), e164);
	wait_runs(e164, 0, NULL, NULL);
	assert_true(poll_until(rec_gone, (void *)e164, SETTLE_MS));
	assert_int_equal(redis_int(REDIS("SISMEMBER", "confs:all", e164)), 0);
	expect_upu(e164, "end", "mau_upu_e164_batch_ntf");
	r = cm_call("cm_mau_queryconf_req", json_pack("{s:s}", "e164", e164));
	expect_nack(r, "mau_cm_queryconf_nack", "unknown_conference", e164);
	assert_null(listed("ud-p1-r1-b", e164));
	/* the same end request again: the same answer; a new one: unknown */
	end->expect = 2;
	cm_send("cm_mau_endconf_req", end_id, json_pack("{s:s}", "e164", e164));
	wait_answers(end, 2);
	assert_false(end->differs);
	r = cm_call("cm_mau_endconf_req", json_pack("{s:s}", "e164", e164));
	expect_nack(r, "mau_cm_endconf_nack", "unknown_conference", e164);
	r = cm_call("cm_mau_extendconf_req", json_pack("{s:s, s:i}", "e164", e164, "minutes", 5));
	expect_nack(r, "mau_cm_extendconf_nack", "unknown_conference", e164);
	check_answers(from);
}

/* ---- an extension asked by the MCU (protocol.md 8.12) ---- */

/* css's answers to extend requests, caught on mau.cmcmu.ex with the MCU's key. */
static struct {
	json_t *got[16];
	size_t n;
} X;

static void on_cmcmu(struct cdr_mq_delivery *d, void *arg)
{
	json_t *j = json_loadb(d->body, d->len, 0, NULL);
	const char *t = json_string_value(json_object_get(j, "type"));

	(void)arg;
	if (t && !strncmp(t, "mau_cmu_extendconf_", 19) && X.n < 16)
		X.got[X.n++] = j;
	else
		json_decref(j);
	cdr_mq_ack(d);
}

struct x_want {
	const char *id;
	size_t from;
	json_t *found;
};

static bool x_answered(void *arg)
{
	struct x_want *w = arg;

	for (size_t i = w->from; i < X.n; i++)
		if (!strcmp(json_string_value(json_object_get(X.got[i], "id")), w->id))
			return (w->found = X.got[i]) != NULL;
	return false;
}

/* Asks css, as MCU mcu with key key, to extend e164; css's answer (owned by X). */
static json_t *mcu_extend(const char *key, const char *mcu, const char *e164, int minutes, const char *id)
{
	struct cdr_mq_props p = { .persistent = true };
	struct x_want w = { id, X.n, NULL };
	char *txt = cdr_msg_encode("cmu_mau_extendconf_req", id, mcu, 0,
				   json_pack("{s:s, s:s, s:i}", "e164", e164, "mcu", mcu, "minutes", minutes));

	assert_non_null(txt);
	p.message_id = id;
	assert_int_equal(cdr_mq_publish(C.mq, CDR_MQ_CMU_MAU_EX, key, &p, txt, strlen(txt), NULL, NULL), 0);
	free(txt);
	if (!run_until(x_answered, &w, ANSWER_MS))
		fail_msg("extend %s of %s asked by %s: no answer within %u ms", id, e164, mcu, ANSWER_MS);
	return w.found;
}

static int64_t rec_int(const char *e164, const char *field)
{
	char buf[64];

	return atoll(rec_field(e164, field, buf, sizeof(buf)));
}

static void test_mcu_asks_extend(void **state)
{
	const char *e164 = "7100000251";
	char mcu[64], key[200], id[64], again[64];
	json_t *r;
	int64_t planned;

	(void)state;
	create_ok(e164, "ud-p1-r1-b", "p1-r1", mcu, sizeof(mcu));
	rec_field(e164, "mcu_key", key, sizeof(key));
	assert_true(*key);
	assert_int_equal(cdr_mq_subscribe(C.mq, CDR_MQ_MAU_CMCMU_EX, key, on_cmcmu, NULL), 0);
	th_run_for(C.loop, 1000); /* the binding is made */
	planned = rec_int(e164, "planned_end");
	/* extended, answered once stored: the ACK and the record agree */
	r = mcu_extend(key, mcu, e164, 30, fresh_id(id, sizeof(id)));
	expect_type(r, "mau_cmu_extendconf_ack");
	assert_int_equal(json_integer_value(json_object_get(body_of(r), "planned_end")), planned + 30 * 60000);
	assert_true(json_is_integer(json_object_get(body_of(r), "epoch"))); /* css's epoch, as in its record */
	assert_int_equal(json_integer_value(json_object_get(body_of(r), "epoch")), rec_int(e164, "epoch"));
	assert_int_equal(rec_int(e164, "planned_end"), planned + 30 * 60000);
	/* the same request again (a redelivery): the same ACK, not extended twice */
	snprintf(again, sizeof(again), "%s", id);
	r = mcu_extend(key, mcu, e164, 30, again);
	expect_type(r, "mau_cmu_extendconf_ack");
	assert_int_equal(json_integer_value(json_object_get(body_of(r), "planned_end")), planned + 30 * 60000);
	assert_int_equal(rec_int(e164, "planned_end"), planned + 30 * 60000);
	/* beyond the maximum duration */
	r = mcu_extend(key, mcu, e164, 1440, fresh_id(id, sizeof(id)));
	expect_nack(r, "mau_cmu_extendconf_nack", "limit_reached", e164);
	assert_int_equal(rec_int(e164, "planned_end"), planned + 30 * 60000);
	/* asked by an MCU css does not place it on, or for an unknown one: refused, not silent */
	r = mcu_extend(key, "tc-nobody-01", e164, 5, fresh_id(id, sizeof(id)));
	expect_nack(r, "mau_cmu_extendconf_nack", "unknown_conference", e164);
	r = mcu_extend(key, mcu, "7100000259", 5, fresh_id(id, sizeof(id)));
	expect_nack(r, "mau_cmu_extendconf_nack", "unknown_conference", "7100000259");
	assert_int_equal(rec_int(e164, "planned_end"), planned + 30 * 60000);
	/* a new request extends again */
	r = mcu_extend(key, mcu, e164, 10, fresh_id(id, sizeof(id)));
	expect_type(r, "mau_cmu_extendconf_ack");
	assert_int_equal(rec_int(e164, "planned_end"), planned + 40 * 60000);
	r = cm_call("cm_mau_endconf_req", json_pack("{s:s}", "e164", e164));
	expect_type(r, "mau_cm_endconf_ack");
	for (size_t i = 0; i < X.n; i++)
		json_decref(X.got[i]);
	X.n = 0;
}

/* ---- public templates (docs/css.md, MySQL) ---- */

static bool tpl_published(void *arg)
{
	json_t *r = REDIS("HEXISTS", "templates", (const char *)arg);
	bool yes = json_is_integer(r) && json_integer_value(r) == 1;

	json_decref(r);
	return yes;
}

/* The record's create body (what the MCU got) field k, as an integer. */
static int64_t rec_create_int(const char *e164, const char *k)
{
	char buf[4096];
	json_t *c = json_loads(rec_field(e164, "create", buf, sizeof(buf)), 0, NULL);
	int64_t v = json_is_integer(json_object_get(c, k)) ? json_integer_value(json_object_get(c, k)) : -1;

	json_decref(c);
	return v;
}

static void test_templates(void **state)
{
	size_t from = C.nans;
	struct log_want bad = { C.css_log, "template tpl-bad not published: body.max_participants",
				file_size(C.css_log) };
	json_t *b, *r;

	(void)state;
	assert_int_equal(sql("INSERT INTO conf_template (id, user_domain, name, details) VALUES "
			     "('tpl-small', 'ud-p1-r1-a', 'Small', '{\"max_participants\": 8}'), "
			     "('tpl-bad', 'ud-p1-r1-a', 'Bad', '{\"max_participants\": \"many\"}'), "
			     "('tpl-list', 'ud-p1-r1-a', 'List', '[1, 2]')"),
			 0);
	assert_true(poll_until(tpl_published, "tpl-small", SETTLE_MS));
	/* what would not make a valid create is not published */
	assert_false(tpl_published("tpl-bad"));
	assert_false(tpl_published("tpl-list"));
	if (!poll_until(log_has, &bad, SETTLE_MS)) /* an alarm says why */
		fail_msg("no \"%s\" in %s", bad.needle, C.css_log);
	/* a create naming the template: what it does not say comes from it */
	b = create_body("7100000281", "ud-p1-r1-a");
	json_object_set_new(b, "template", json_string("tpl-small"));
	r = cm_call("cm_mau_createconf_req", b);
	expect_type(r, "mau_cm_createconf_ack");
	assert_int_equal(rec_create_int("7100000281", "max_participants"), 8);
	/* what it says itself stays */
	b = create_body("7100000282", "ud-p1-r1-a");
	json_object_set_new(b, "template", json_string("tpl-small"));
	json_object_set_new(b, "max_participants", json_integer(24));
	r = cm_call("cm_mau_createconf_req", b);
	expect_type(r, "mau_cm_createconf_ack");
	assert_int_equal(rec_create_int("7100000282", "max_participants"), 24);
	/* an unpublished template: created without it */
	b = create_body("7100000283", "ud-p1-r1-a");
	json_object_set_new(b, "template", json_string("tpl-bad"));
	r = cm_call("cm_mau_createconf_req", b);
	expect_type(r, "mau_cm_createconf_ack");
	assert_int_equal(rec_create_int("7100000283", "max_participants"), -1);
	for (size_t i = 0; i < 3; i++) {
		r = cm_call(
			"cm_mau_endconf_req",
			json_pack("{s:s}", "e164", (const char *[]){ "7100000281", "7100000282", "7100000283" }[i]));
		expect_type(r, "mau_cm_endconf_ack");
	}
	assert_int_equal(sql("DELETE FROM conf_template"), 0);
	check_answers(from);
}

static void create_nack(json_t *body, const char *reason, const char *e164, const char *detail)
{
	json_t *r = cm_call("cm_mau_createconf_req", body);

	expect_nack(r, "mau_cm_createconf_nack", reason, e164);
	if (detail)
		expect_detail(r, detail);
	if (e164 && strcmp(reason, "duplicate_e164"))
		assert_false(rec_exists(e164));
}

static void test_create_refusals(void **state)
{
	size_t from = C.nans;
	char mcu[64];
	json_t *b;

	(void)state;
	create_nack(create_body("7100000301", "ud-nope"), "unknown_user_domain", "7100000301", "ud-nope");
	/* p2 is up: its own css serves its domains */
	create_nack(create_body("7100000302", "ud-p2-r1-a"), "wrong_platform", "7100000302", "p2");
	/* malformed bodies: bad_request naming the field */
	create_nack(create_body("12x4", "ud-p1-r1-a"), "bad_request", "12x4", "body.e164");
	b = create_body("7100000303", "ud-p1-r1-a");
	json_object_set_new(b, "duration_min", json_string("60"));
	create_nack(b, "bad_request", "7100000303", "body.duration_min");
	b = create_body("7100000304", "ud-p1-r1-a");
	json_object_del(b, "name");
	create_nack(b, "bad_request", "7100000304", "body.name");
	b = create_body("7100000305", "ud-p1-r1-a");
	json_object_set_new(b, "max_participants", json_integer(1));
	create_nack(b, "bad_request", "7100000305", "body.max_participants");
	/* an E164 that runs already (another request) */
	create_ok("7100000306", "ud-p1-r1-a", "p1-r1", mcu, sizeof(mcu));
	create_nack(create_body("7100000306", "ud-p1-r1-b"), "duplicate_e164", "7100000306", "running already");
	assert_true(rec_exists("7100000306"));
	wait_runs("7100000306", 1, mcu, "test css");
	/* XMPU: no MCU of the domain's room has it */
	b = create_body("7100000307", "ud-p1-r1-a");
	json_object_set_new(b, "xmpu", json_true());
	create_nack(b, "no_capability", "7100000307", "XMPU");
	/* more ports than any MCU has (500 x 16), in p1-r1, p1-r2 and beyond */
	b = create_body("7100000308", "ud-p1-r1-a");
	json_object_set_new(b, "max_participants", json_integer(10000));
	create_nack(b, "no_capacity", "7100000308", NULL);
	check_answers(from);
}

/* A refusal is stored like any answer: the same request again (a
 * redelivery) gets the same NACK, even when it would now succeed. */
static void test_refusal_answered_again(void **state)
{
	const char *e164 = "7100000291";
	size_t from = C.nans;
	char mcu[64], id[64], key[96];
	struct ans *a;
	json_t *r;

	(void)state;
	create_ok(e164, "ud-p1-r1-a", "p1-r1", mcu, sizeof(mcu));
	a = cm_send("cm_mau_createconf_req", fresh_id(id, sizeof(id)), create_body(e164, "ud-p1-r1-b"));
	expect_nack(cm_wait(a), "mau_cm_createconf_nack", "duplicate_e164", e164);
	snprintf(key, sizeof(key), "answer:%s", id);
	assert_int_equal(redis_int(REDIS("EXISTS", key)), 1);
	r = cm_call("cm_mau_endconf_req", json_pack("{s:s}", "e164", e164));
	expect_type(r, "mau_cm_endconf_ack");
	wait_runs(e164, 0, NULL, NULL);
	a->expect = 2;
	cm_send("cm_mau_createconf_req", id, create_body(e164, "ud-p1-r1-b"));
	wait_answers(a, 2);
	assert_false(a->differs);
	th_run_for(C.loop, LINGER_MS);
	wait_runs(e164, 0, NULL, NULL); /* not created by the repeat */
	check_answers(from);
}

/* A create ACKed and since ended, sent again: the same ACK, not created
 * again (no lookup before a first delivery: the record's first write finds
 * the stored answer, and the reservation goes back). */
static void test_ended_create_answered_again(void **state)
{
	const char *e164 = "7100000293";
	size_t from = C.nans;
	char id[64];
	struct ans *a;
	json_t *r;

	(void)state;
	a = cm_send("cm_mau_createconf_req", fresh_id(id, sizeof(id)), create_body(e164, "ud-p1-r1-a"));
	expect_type(cm_wait(a), "mau_cm_createconf_ack");
	wait_runs(e164, 1, bstr(a->first, "mcu"), NULL);
	r = cm_call("cm_mau_endconf_req", json_pack("{s:s}", "e164", e164));
	expect_type(r, "mau_cm_endconf_ack");
	wait_runs(e164, 0, NULL, NULL);
	a->expect = 2;
	cm_send("cm_mau_createconf_req", id, create_body(e164, "ud-p1-r1-a"));
	wait_answers(a, 2);
	assert_false(a->differs);
	assert_true(same_answer(a->first, a->last));
	th_run_for(C.loop, LINGER_MS);
	wait_runs(e164, 0, NULL, NULL); /* not created by the repeat */
	assert_false(rec_exists(e164));
	check_answers(from);
}

/* Answers are given again only to the same request: an id reused with
 * another body is refused, and the first request's answer stays its own. */
static void test_reused_id(void **state)
{
	const char *e164 = "7100000295", *other = "7100000296";
	char id[64];
	struct ans *a;

	(void)state;
	a = cm_send("cm_mau_createconf_req", fresh_id(id, sizeof(id)), create_body(e164, "ud-p1-r1-a"));
	expect_type(cm_wait(a), "mau_cm_createconf_ack");
	/* the same id for another conference: refused, not created */
	a->expect = 2;
	cm_send("cm_mau_createconf_req", id, create_body(other, "ud-p1-r1-a"));
	wait_answers(a, 2);
	expect_nack(a->last, "mau_cm_createconf_nack", "bad_request", other);
	expect_detail(a->last, "used before by another request");
	th_run_for(C.loop, LINGER_MS);
	assert_false(rec_exists(other));
	wait_runs(other, 0, NULL, NULL);
	/* the first request again: its own ACK, as stored */
	a->expect = 3;
	cm_send("cm_mau_createconf_req", id, create_body(e164, "ud-p1-r1-a"));
	wait_answers(a, 3);
	assert_true(same_answer(a->first, a->last));
	expect_type(cm_call("cm_mau_endconf_req", json_pack("{s:s}", "e164", e164)), "mau_cm_endconf_ack");
}

static void test_mcu_refuses_or_is_silent(void **state)
{
	struct sim *b = sim_of("tc-b");
	struct log_want late = { C.css_log, "late create ACK of 7200000002", file_size(C.css_log) };
	size_t from = C.nans;
	struct ans *a;
	json_t *r;
	uint64_t took;

	(void)state;
	/* tc-b-01, the only usable MCU of p1-r2, refuses */
	assert_false(sim_refuses(b));
	kill(b->pid, SIGUSR2);
	assert_true(poll_until(sim_refusing, b, 20000));
	r = cm_call("cm_mau_createconf_req", create_body("7200000001", "ud-p1-r2-a"));
	kill(b->pid, SIGUSR2);
	expect_nack(r, "mau_cm_createconf_nack", "mcu_refused", "7200000001");
	expect_detail(r, "tc-b-01");
	assert_false(rec_exists("7200000001"));
	assert_true(poll_until(sim_accepting, b, 20000));
	wait_runs("7200000001", 0, NULL, NULL);

	/* tc-s-01 (answers SLOW_MS late) is the only usable one */
	drain("tc-b-01", true);
	drain("tc-s-01", false);
	a = cm_send("cm_mau_createconf_req", NULL, create_body("7200000002", "ud-p1-r2-b"));
	r = cm_wait(a);
	took = a->at - a->sent;
	drain("tc-s-01", true);
	drain("tc-b-01", false);
	expect_nack(r, "mau_cm_createconf_nack", "mcu_timeout", "7200000002");
	expect_detail(r, "tc-s-01");
	printf("# mcu_timeout answered %llu ms after the request (create_timeout %d ms)\n", (unsigned long long)took,
	       CREATE_TIMEOUT_MS);
	assert_true(took >= CREATE_TIMEOUT_MS); /* never before it is due */
	assert_false(rec_exists("7200000002"));
	/* its late ACK: css ends the conference on that MCU */
	if (!poll_until(log_has, &late, SETTLE_MS))
		fail_msg("no \"%s\" in %s", late.needle, C.css_log);
	wait_runs("7200000002", 0, NULL, NULL);
	assert_false(rec_exists("7200000002"));
	/* p1-r2 works again */
	{
		char mcu[64];

		create_ok("7200000003", "ud-p1-r2-a", "p1-r2", mcu, sizeof(mcu));
		assert_string_equal(mcu, "tc-b-01");
	}
	check_answers(from);
}

static void test_unreadable_and_unknown(void **state)
{
	size_t from = C.nans, big_len = 70000;
	long dead;
	char id[64], *txt, *big;
	json_t *r;

	(void)state;
	/* a request type that does not exist */
	fresh_id(id, sizeof(id));
	txt = cdr_msg_encode("cm_mau_startconf_req", id, "cm", 0, json_pack("{s:s}", "e164", "7300000001"));
	assert_non_null(txt);
	r = cm_wait(cm_send_raw(id, txt, strlen(txt), true));
	free(txt);
	expect_nack(r, "mau_cm_startconf_nack", "bad_request", "7300000001");
	expect_detail(r, "cm_mau_startconf_req");
	assert_string_equal(json_string_value(json_object_get(r, "id")), id);
	/* a known type css does not handle */
	r = cm_call("any_pms_state_req", json_object());
	expect_nack(r, "pms_any_state_nack", "bad_request", NULL);
	expect_detail(r, "not a message css handles");
	/* not JSON, not an object, too large: refused unread */
	fresh_id(id, sizeof(id));
	r = cm_wait(cm_send_raw(id, "hello", 5, true));
	expect_nack(r, "mau_cm_request_nack", "bad_request", NULL);
	expect_detail(r, "not JSON");
	assert_string_equal(json_string_value(json_object_get(r, "id")), id);
	fresh_id(id, sizeof(id));
	r = cm_wait(cm_send_raw(id, "[1, 2]", 6, true));
	expect_nack(r, "mau_cm_request_nack", "bad_request", NULL);
	expect_detail(r, "object");
	big = malloc(big_len);
	assert_non_null(big);
	snprintf(big, big_len,
		 "{\"type\": \"cm_mau_createconf_req\", \"id\": \"x\", \"ts\": 0, \"src\": \"cm\", "
		 "\"body\": {\"name\": \"");
	memset(big + strlen(big), 'a', big_len - strlen(big));
	memcpy(big + big_len - 4, "\"}}", 3);
	fresh_id(id, sizeof(id));
	r = cm_wait(cm_send_raw(id, big, big_len - 1, true));
	free(big);
	expect_nack(r, "mau_cm_request_nack", "bad_request", NULL);
	expect_detail(r, "65536");
	/* more than the broker client reads at all (4 MiB): answered all the same */
	big_len = (4 << 20) + 2;
	big = malloc(big_len);
	assert_non_null(big);
	memset(big, ' ', big_len);
	fresh_id(id, sizeof(id));
	r = cm_wait(cm_send_raw(id, big, big_len - 1, true));
	free(big);
	expect_nack(r, "mau_cm_request_nack", "bad_request", NULL);
	expect_detail(r, "4194305 bytes");
	assert_string_equal(json_string_value(json_object_get(r, "id")), id);
	/* without reply_to nobody can be told: dead-lettered */
	dead = queue_depth(CDR_MQ_DEAD_Q);
	assert_true(dead >= 0);
	fresh_id(id, sizeof(id));
	cm_send_raw(id, "hello again", 11, false);
	for (uint64_t end = cdr_now_ms() + SETTLE_MS; queue_depth(CDR_MQ_DEAD_Q) <= dead && cdr_now_ms() < end;)
		th_run_for(C.loop, 200);
	assert_int_equal(queue_depth(CDR_MQ_DEAD_Q), dead + 1);
	assert_null(ans_find(id));
	/* css is still there */
	wait_css_serving(ANSWER_MS);
	check_answers(from);
}

static void test_css_restart(void **state)
{
	const char *e164s[] = { "7400000001", "7400000002", "7400000003" };
	char mcus[3][64], mcu[64];
	size_t from = C.nans;
	struct ans *a;
	json_t *r;
	uint64_t t0;
	int st;

	(void)state;
	for (int i = 0; i < 3; i++)
		create_ok(e164s[i], "ud-p1-r1-b", "p1-r1", mcus[i], sizeof(mcus[i]));
	assert_int_equal(kill(C.css, SIGKILL), 0);
	assert_int_equal(waitpid(C.css, &st, 0), C.css);
	C.css = 0;
	/* a create while no css runs: it waits in mau.conf.q */
	a = cm_send("cm_mau_createconf_req", NULL, create_body("7400000010", "ud-p1-r1-b"));
	start_css();
	t0 = cdr_now_ms();
	r = cm_wait_for(a, 90000);
	printf("# css killed and started again: the create sent meanwhile answered %llu ms after the start\n",
	       (unsigned long long)(cdr_now_ms() - t0));
	expect_type(r, "mau_cm_createconf_ack");
	assert_string_equal(bstr(r, "room"), "p1-r1");
	wait_runs("7400000010", 1, bstr(r, "mcu"), NULL);
	/* what ran before is known, where it was */
	for (int i = 0; i < 3; i++) {
		json_t *conf;

		r = cm_call("cm_mau_queryconf_req", json_pack("{s:s}", "e164", e164s[i]));
		expect_type(r, "mau_cm_queryconf_ack");
		conf = json_object_get(body_of(r), "conf");
		assert_string_equal(json_string_value(json_object_get(conf, "state")), "running");
		assert_string_equal(json_string_value(json_object_get(conf, "mcu")), mcus[i]);
		wait_runs(e164s[i], 1, mcus[i], NULL);
	}
	/* and new creates work */
	create_ok("7400000011", "ud-p1-r1-b", "p1-r1", mcu, sizeof(mcu));
	wait_runs("7400000011", 1, mcu, NULL);
	check_answers(from);
}

struct lost_want {
	json_t *e164s;
};

/* Every lost conference runs once on a tc-a MCU, where Redis places it, running. */
static bool restored_on_a(void *arg)
{
	struct lost_want *w = arg;
	json_t *v;
	size_t i;
	char state[32], mcu[64];

	json_array_foreach(w->e164s, i, v)
	{
		const char *e = json_string_value(v);
		struct where on = runs(e);

		if (on.copies != 1 || strncmp(on.mcu, "tc-a-", 5) ||
		    strcmp(rec_field(e, "state", state, sizeof(state)), "running") ||
		    strcmp(rec_field(e, "mcu", mcu, sizeof(mcu)), on.mcu))
			return false;
	}
	return true;
}

struct on_k {
	json_t *e164s;
};

static bool all_on_k(void *arg)
{
	json_t *v;
	size_t i;

	json_array_foreach(((struct on_k *)arg)->e164s, i, v)
	{
		struct where on = runs(json_string_value(v));

		if (on.copies != 1 || strcmp(on.mcu, "tc-k-01"))
			return false;
	}
	return true;
}

static void test_mcu_loss(void **state)
{
	struct sim *k = sim_of("tc-k");
	struct lost_want w;
	struct on_k ok;
	size_t from = C.nans, i;
	char e164[32], mcu[64], buf[32];
	json_t *v;
	uint64_t t0;
	int st;

	(void)state;
	for (int n = 1; n <= 6; n++) {
		snprintf(e164, sizeof(e164), "75000000%02d", n);
		create_ok(e164, "ud-p1-r1-b", "p1-r1", mcu, sizeof(mcu));
	}
	/* what css places on tc-k-01 (also from the tests before), and runs there */
	w.e164s = REDIS("SMEMBERS", "confs:mcu:tc-k-01");
	ok.e164s = w.e164s;
	if (json_array_size(w.e164s) == 0)
		fail_msg("no conference on tc-k-01 to lose (rms spreads p1-r1's over tc-a-01, -02 and tc-k-01)");
	assert_true(poll_until(all_on_k, &ok, SETTLE_MS));
	assert_int_equal(kill(k->pid, SIGKILL), 0);
	assert_int_equal(waitpid(k->pid, &st, 0), k->pid);
	k->dead = true;
	t0 = cdr_now_ms();
	if (!poll_until(restored_on_a, &w, SETTLE_MS))
		fail_msg("the %zu conferences of tc-k-01 are not all running once on tc-a (see %s)",
			 json_array_size(w.e164s), C.css_log);
	printf("# tc-k-01 killed: its %zu conferences run again on tc-a-01/-02 %llu ms after the kill\n",
	       json_array_size(w.e164s), (unsigned long long)(cdr_now_ms() - t0));
	json_array_foreach(w.e164s, i, v)
	{
		const char *e = json_string_value(v);

		assert_true(runs(e).generation >= 1); /* a re-create: generation raised */
		assert_true(atoll(rec_field(e, "generation", buf, sizeof(buf))) >= 1);
		assert_string_equal(rec_field(e, "room", buf, sizeof(buf)), "p1-r1");
	}
	assert_int_equal(redis_int(REDIS("SCARD", "confs:mcu:tc-k-01")), 0);
	json_decref(w.e164s);
	check_answers(from);
}

struct moved_want {
	json_t *e164s;
	const char *room, *mcu;
};

/* Each runs once on mcu, and Redis places it there, running, in room. */
static bool all_moved(void *arg)
{
	struct moved_want *w = arg;
	json_t *v;
	size_t i;
	char state[32], room[32], mcu[64];

	json_array_foreach(w->e164s, i, v)
	{
		const char *e = json_string_value(v);
		struct where on = runs(e);

		if (on.copies != 1 || strcmp(on.mcu, w->mcu) ||
		    strcmp(rec_field(e, "state", state, sizeof(state)), "running") ||
		    strcmp(rec_field(e, "room", room, sizeof(room)), w->room) ||
		    strcmp(rec_field(e, "mcu", mcu, sizeof(mcu)), w->mcu))
			return false;
	}
	return true;
}

/* Sends a notice for p2-r2 (no conference of p1 there) and waits until css
 * logs it: every notice published before it has been handled. */
static void sentinel(bool abnormal, int64_t epoch)
{
	char needle[64];
	struct log_want lw = { C.css_log, needle, file_size(C.css_log) };

	snprintf(needle, sizeof(needle), "room p2-r2 is %s (", abnormal ? "abnormal" : "normal");
	room_notice("p2-r2", abnormal, epoch);
	if (!poll_until(log_has, &lw, SETTLE_MS))
		fail_msg("css did not log \"%s\" (see %s)", needle, C.css_log);
}

static void test_room_abnormal_and_normal(void **state)
{
	struct moved_want mw = { NULL, "p1-r2", "tc-b-01" };
	struct log_want lw = { C.css_log, "room p1-r1 is abnormal (", 0 };
	size_t from = C.nans, i;
	char e164[32], mcu[64], mcu2[64], buf[32];
	json_t *recs, *rec, *v, *gens;
	int64_t epoch;
	uint64_t t0;

	(void)state;
	/* p1-r2: tc-b-01 usable and accepting, tc-s-01 drained (as set up) */
	drain("tc-s-01", true);
	drain("tc-b-01", false);
	if (sim_refuses(sim_of("tc-b"))) {
		kill(sim_of("tc-b")->pid, SIGUSR2);
		assert_true(poll_until(sim_accepting, sim_of("tc-b"), 20000));
	}
	for (int n = 1; n <= 4; n++) {
		snprintf(e164, sizeof(e164), "76000000%02d", n);
		create_ok(e164, "ud-p1-r1-a", "p1-r1", mcu, sizeof(mcu));
	}
	/* every conference running in p1-r1 now (also those of the tests before) */
	mw.e164s = json_array();
	recs = records();
	json_array_foreach(recs, i, rec)
	{
		if (!strcmp(rf(rec, 1), "running") && !strcmp(rf(rec, 2), "p1-r1"))
			json_array_append_new(mw.e164s, json_string(rf(rec, 0)));
	}
	json_decref(recs);
	assert_true(json_array_size(mw.e164s) >= 4);

	/* abnormal, with an epoch above every state pms wrote */
	epoch = pms_epoch() + 1000;
	lw.from = file_size(C.css_log);
	t0 = cdr_now_ms();
	room_notice("p1-r1", true, epoch);
	if (!poll_until(all_moved, &mw, SETTLE_MS))
		fail_msg("the %zu conferences of p1-r1 are not all running once on tc-b-01 in p1-r2 (see %s)",
			 json_array_size(mw.e164s), C.css_log);
	printf("# room p1-r1 abnormal: its %zu conferences run in p1-r2 %llu ms after the notice\n",
	       json_array_size(mw.e164s), (unsigned long long)(cdr_now_ms() - t0));
	assert_int_equal(log_count(C.css_log, lw.from, lw.needle), 1);
	/* new conferences of its domains go to the backup room */
	create_ok("7600000010", "ud-p1-r1-a", "p1-r2", mcu, sizeof(mcu));
	assert_string_equal(mcu, "tc-b-01");

	/* the same notice again: nothing moves (generations stay) */
	gens = json_array();
	json_array_foreach(mw.e164s, i, v)
	{
		json_array_append_new(gens,
				      json_string(rec_field(json_string_value(v), "generation", buf, sizeof(buf))));
	}
	room_notice("p1-r1", true, epoch);
	sentinel(true, epoch + 1);
	assert_int_equal(log_count(C.css_log, lw.from, lw.needle), 1);
	json_array_foreach(mw.e164s, i, v)
	{
		assert_string_equal(rec_field(json_string_value(v), "generation", buf, sizeof(buf)),
				    json_string_value(json_array_get(gens, i)));
	}
	json_decref(gens);
	assert_true(all_moved(&mw));

	/* normal again: new conferences in p1-r1, the restored ones stay */
	{
		struct log_want nl = { C.css_log, "room p1-r1 is normal (", file_size(C.css_log) };

		room_notice("p1-r1", false, epoch + 2);
		if (!poll_until(log_has, &nl, SETTLE_MS))
			fail_msg("css did not log \"%s\"", nl.needle);
	}
	create_ok("7600000011", "ud-p1-r1-a", "p1-r1", mcu2, sizeof(mcu2));
	assert_int_equal(strncmp(mcu2, "tc-a-", 5), 0);
	wait_runs("7600000011", 1, mcu2, NULL);
	assert_true(all_moved(&mw));

	/* a late abnormal (lower epoch) and the normal again: nothing changes */
	room_notice("p1-r1", true, epoch);
	room_notice("p1-r1", false, epoch + 2);
	sentinel(false, epoch + 3);
	assert_int_equal(log_count(C.css_log, lw.from, lw.needle), 1);
	assert_string_equal(rec_field("7600000011", "room", buf, sizeof(buf)), "p1-r1");
	assert_string_equal(rec_field("7600000011", "state", buf, sizeof(buf)), "running");
	assert_true(runs_as_wanted(&(struct run_want){ "7600000011", mcu2, NULL, 1 }));
	create_ok("7600000012", "ud-p1-r1-a", "p1-r1", mcu, sizeof(mcu));
	assert_true(all_moved(&mw));
	json_decref(mw.e164s);
	check_answers(from);
}

/* ---- a frozen css (docs/css.md, "A frozen or deposed instance") ---- */

/* Frozen for less than its session: back, it takes no work until ZooKeeper
 * confirms the session, then answers what came meanwhile, once. */
static void test_frozen_css_confirms(void **state)
{
	size_t from = C.nans;
	struct log_want stood = { C.css_log, "the loop stood still", file_size(C.css_log) };
	struct log_want confirmed = { C.css_log, "after the stall: active again", file_size(C.css_log) };
	struct ans *a;

	(void)state;
	assert_int_equal(kill(C.css, SIGSTOP), 0);
	a = cm_send("cm_mau_createconf_req", NULL, create_body("7700000001", "ud-p1-r1-a"));
	th_run_for(C.loop, 2500); /* a stall over its bound (4 s / 3), inside its session (4 s) */
	assert_int_equal(kill(C.css, SIGCONT), 0);
	expect_type(cm_wait(a), "mau_cm_createconf_ack");
	if (!poll_until(log_has, &stood, SETTLE_MS))
		fail_msg("no \"%s\" in %s", stood.needle, C.css_log);
	if (!poll_until(log_has, &confirmed, SETTLE_MS))
		fail_msg("no \"%s\" in %s", confirmed.needle, C.css_log);
	printf("# frozen 2.5 s: the create sent meanwhile answered %llu ms after it was sent\n",
	       (unsigned long long)(a->at - a->sent));
	expect_type(cm_call("cm_mau_endconf_req", json_pack("{s:s}", "e164", "7700000001")), "mau_cm_endconf_ack");
	check_answers(from);
}

/* Frozen longer than its session while a standby runs: the standby takes
 * over and answers; the old one, woken, answers nothing and steps down. */
static void test_frozen_css_deposed(void **state)
{
	char conf_b[160], log_b[128];
	struct log_want b_active, old_down = { C.css_log, "role: standby", file_size(C.css_log) };
	size_t from = C.nans;
	struct ans *a[3];
	pid_t b;

	(void)state;
	write_conf(conf_b, sizeof(conf_b), "p1", "css-b", C.css_extra);
	snprintf(log_b, sizeof(log_b), "%s/p1-css-b.log", C.work);
	b = C.css_b = start_daemon("css", conf_b, log_b);
	b_active = (struct log_want){ log_b, "role: active", 0 };
	th_run_for(C.loop, 2000); /* its election node is there, behind the active one */
	assert_false(log_has(&b_active));
	assert_int_equal(kill(C.css, SIGSTOP), 0);
	for (size_t i = 0; i < 3; i++) {
		char e164[16];

		snprintf(e164, sizeof(e164), "770000001%zu", i);
		a[i] = cm_send("cm_mau_createconf_req", NULL, create_body(e164, "ud-p1-r1-a"));
	}
	if (!poll_until(log_has, &b_active, 20000))
		fail_msg("the standby css did not become active (see %s)", log_b);
	for (size_t i = 0; i < 3; i++)
		expect_type(cm_wait_for(a[i], 30000), "mau_cm_createconf_ack");
	assert_int_equal(kill(C.css, SIGCONT), 0);
	if (!poll_until(log_has, &old_down, 20000))
		fail_msg("the woken css did not step down (see %s)", C.css_log);
	check_answers(from); /* each answered once: the old one sent nothing */
	/* the standby now serves; the old one goes */
	assert_int_equal(th_stop(C.loop, C.css, SIGTERM, 20000), 0);
	C.css = b;
	C.css_b = 0;
	snprintf(C.css_log, sizeof(C.css_log), "%s", log_b);
	for (size_t i = 0; i < 3; i++) {
		char e164[16];

		snprintf(e164, sizeof(e164), "770000001%zu", i);
		expect_type(cm_call("cm_mau_endconf_req", json_pack("{s:s}", "e164", e164)), "mau_cm_endconf_ack");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_create_redelivered),
		cmocka_unit_test(test_query_list_extend_rename_end),
		cmocka_unit_test(test_mcu_asks_extend),
		cmocka_unit_test(test_templates),
		cmocka_unit_test(test_create_refusals),
		cmocka_unit_test(test_refusal_answered_again),
		cmocka_unit_test(test_ended_create_answered_again),
		cmocka_unit_test(test_reused_id),
		cmocka_unit_test(test_mcu_refuses_or_is_silent),
		cmocka_unit_test(test_unreadable_and_unknown),
		cmocka_unit_test(test_css_restart),
		cmocka_unit_test(test_mcu_loss),
		cmocka_unit_test(test_room_abnormal_and_normal),
		cmocka_unit_test(test_frozen_css_confirms),
		cmocka_unit_test(test_frozen_css_deposed),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
