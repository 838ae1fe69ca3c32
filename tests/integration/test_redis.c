/* Redis client against real servers: commands, 10,000 pipelined commands
 * each answered once, MULTI/EXEC, the Lua script helper (also after SCRIPT
 * FLUSH), errors, a server restart survived by the same client, the replica
 * receiving what p1 wrote, switching endpoints, promoting the replica
 * (re-attached afterwards), the database of the client's options selected
 * on every connection before any command (a refused one keeps it down),
 * and a Redis still loading its dataset after a restart waited out.
 *
 * It flushes scripts, resets statistics, stops p1's Redis and promotes its
 * replica: tests/ns.sh gives it a private p1 and replica (ctest does), and
 * every client but the one checking database 0 uses the namespace's
 * database (CONFDR_P1_REDIS_DB). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include <confdr/loop.h>
#include <confdr/redis.h>

struct ctx {
	struct cdr_loop *loop;
	struct cdr_redis *r;
	struct cdr_timer *guard, *tick;
	int ups, downs;
	bool up;
	int answered, failed, errors, expected;
	char last[128];
	char role[16], link[32]; /* ROLE: first element, replica link state */
	char why[256];		 /* the last on_state's */
	const char *probe;	 /* a key to GET from on_state as soon as it is up */
	char *info;		 /* INFO: malloc'd */
	long long last_int;
	int last_status;
	bool (*until)(struct ctx *);
};

static const char *env(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v)
		fail_msg("%s is not set: run under the sandbox (eval \"$(deploy/sandbox.sh env)\")", name);
	return v;
}

static void split(const char *hostport, char *host, size_t len, int *port)
{
	const char *colon = strrchr(hostport, ':');

	assert_non_null(colon);
	snprintf(host, len, "%.*s", (int)(colon - hostport), hostport);
	*port = atoi(colon + 1);
}

static void on_reply(int status, const struct redisReply *reply, void *arg);

static void on_state(bool up, const char *why, void *arg)
{
	struct ctx *c = arg;

	c->up = up;
	snprintf(c->why, sizeof(c->why), "%s", why ? why : "");
	if (up)
		c->ups++;
	else
		c->downs++;
	/* the very first command of a new connection */
	if (up && c->probe && cdr_redis_command(c->r, on_reply, c, "GET %s", c->probe) < 0)
		c->failed++;
}

static void on_guard(void *arg)
{
	cdr_loop_stop(((struct ctx *)arg)->loop);
}

static void on_tick(void *arg)
{
	struct ctx *c = arg;

	if (c->until && c->until(c))
		cdr_loop_stop(c->loop);
}

/* Runs the loop until cond holds or ms pass; returns whether it held. */
static bool run_until(struct ctx *c, bool (*cond)(struct ctx *), uint64_t ms)
{
	c->until = cond;
	if (cond(c))
		return true;
	cdr_timer_start(c->guard, ms, false);
	cdr_timer_start(c->tick, 10, true);
	cdr_loop_run(c->loop);
	cdr_timer_stop(c->guard);
	cdr_timer_stop(c->tick);
	return cond(c);
}

static bool is_up(struct ctx *c)
{
	return c->up;
}
static bool is_down(struct ctx *c)
{
	return !c->up && c->downs > 0;
}
static bool never(struct ctx *c)
{
	(void)c;
	return false;
}
static bool all_answered(struct ctx *c)
{
	return c->answered + c->failed + c->errors >= c->expected;
}

static void on_reply(int status, const struct redisReply *reply, void *arg)
{
	struct ctx *c = arg;

	c->last_status = status;
	if (status == 0) {
		c->answered++;
		if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
			snprintf(c->last, sizeof(c->last), "%s", reply->str);
		else if (reply->type == REDIS_REPLY_INTEGER)
			c->last_int = reply->integer;
		else if (reply->type == REDIS_REPLY_ARRAY && reply->elements &&
			 reply->element[0]->type == REDIS_REPLY_INTEGER)
			c->last_int = reply->element[0]->integer; /* SCRIPT EXISTS */
		else if (reply->type == REDIS_REPLY_ARRAY)
			c->last_int = (long long)reply->elements;
		if (reply->type == REDIS_REPLY_STRING && reply->len > 100) {
			free(c->info);
			c->info = strdup(reply->str);
		}
		if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
		    reply->element[0]->type == REDIS_REPLY_STRING) {
			snprintf(c->role, sizeof(c->role), "%s", reply->element[0]->str);
			c->link[0] = '\0';
			if (reply->elements >= 4 && reply->element[3]->type == REDIS_REPLY_STRING)
				snprintf(c->link, sizeof(c->link), "%s", reply->element[3]->str);
		}
	} else if (status == -EPROTO) {
		c->errors++;
		snprintf(c->last, sizeof(c->last), "%s", reply->str);
	} else {
		c->failed++;
	}
}

/* The namespace's database: every client but the one checking database 0. */
static int ns_db(void)
{
	int db = atoi(env("CONFDR_P1_REDIS_DB"));

	assert_in_range(db, 1, CDR_REDIS_DB_MAX); /* not 0: SELECT must be exercised */
	return db;
}

static void open_client_db(struct ctx *c, const char *hostport, int db)
{
	struct cdr_redis_opts o = { 0 };
	char host[64];
	int port;

	*c = (struct ctx){ 0 };
	split(hostport, host, sizeof(host), &port);
	assert_int_equal(cdr_loop_new(&c->loop), 0);
	assert_int_equal(cdr_timer_new(c->loop, on_guard, c, &c->guard), 0);
	assert_int_equal(cdr_timer_new(c->loop, on_tick, c, &c->tick), 0);
	o.host = host;
	o.port = port;
	o.db = db;
	o.name = "test";
	o.reconnect_min_ms = 50;
	o.reconnect_max_ms = 500;
	o.password = getenv("REDISCLI_AUTH"); /* the sandbox's admin (default user), if any */
	o.on_state = on_state;
	o.arg = c;
	assert_int_equal(cdr_redis_new(c->loop, &o, &c->r), 0);
	assert_true(run_until(c, is_up, 5000));
}

static void open_client(struct ctx *c, const char *hostport)
{
	open_client_db(c, hostport, ns_db());
}

static void close_client(struct ctx *c)
{
	c->r = cdr_redis_free(c->r);
	free(c->info);
	c->info = NULL;
	c->guard = cdr_timer_free(c->guard);
	c->tick = cdr_timer_free(c->tick);
	c->loop = cdr_loop_free(c->loop);
}

/* Sends one command and waits for its answer. */
static void call(struct ctx *c, const char *fmt, const char *a, const char *b)
{
	c->answered = c->failed = c->errors = 0;
	c->expected = 1;
	assert_int_equal(cdr_redis_command(c->r, on_reply, c, fmt, a, b), 0);
	assert_true(run_until(c, all_answered, 5000));
}

static void test_commands_and_errors(void **state)
{
	struct ctx c;
	const char *argv[] = { "SET", "test:redis:bin", "a\0b" };
	size_t argvlen[] = { 3, 14, 3 };

	open_client(&c, env("CONFDR_P1_REDIS"));
	call(&c, "SET %s %s", "test:redis:k", "hello world");
	assert_string_equal(c.last, "OK");
	call(&c, "GET %s", "test:redis:k", NULL);
	assert_string_equal(c.last, "hello world");
	/* binary-safe argv */
	c.answered = 0;
	c.expected = 1;
	assert_int_equal(cdr_redis_command_argv(c.r, on_reply, &c, 3, argv, argvlen), 0);
	assert_true(run_until(&c, all_answered, 5000));
	call(&c, "STRLEN %s", "test:redis:bin", NULL);
	assert_int_equal(c.last_int, 3);
	/* a Redis error comes back as -EPROTO with its text */
	call(&c, "INCR %s", "test:redis:k", NULL);
	assert_int_equal(c.last_status, -EPROTO);
	assert_non_null(strstr(c.last, "not an integer"));
	/* MULTI/EXEC: both keys or neither */
	call(&c, "MULTI", NULL, NULL);
	call(&c, "SET %s %s", "test:redis:a", "1");
	assert_string_equal(c.last, "QUEUED");
	call(&c, "SET %s %s", "test:redis:b", "2");
	call(&c, "EXEC", NULL, NULL);
	assert_int_equal(c.last_int, 2);
	call(&c, "MGET %s %s", "test:redis:a", "test:redis:b");
	assert_int_equal(c.last_int, 2);
	call(&c, "DEL %s %s", "test:redis:a", "test:redis:b");
	close_client(&c);
}

#define N_PIPELINED 10000

static void test_pipelined_all_answered_once(void **state)
{
	struct ctx c;
	char key[64];

	open_client(&c, env("CONFDR_P1_REDIS"));
	call(&c, "DEL %s", "test:redis:counter", NULL);
	c.answered = c.failed = c.errors = 0;
	c.expected = N_PIPELINED;
	for (int i = 0; i < N_PIPELINED; i++) {
		snprintf(key, sizeof(key), "test:redis:counter");
		assert_int_equal(cdr_redis_command(c.r, on_reply, &c, "INCR %s", key), 0);
	}
	assert_true(run_until(&c, all_answered, 20000));
	assert_int_equal(c.answered, N_PIPELINED);
	assert_int_equal(c.failed + c.errors, 0);
	/* the last INCR answered the total: every command ran exactly once */
	assert_int_equal(c.last_int, N_PIPELINED);
	close_client(&c);
}

static void sandbox(const char *what, const char *server)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "\"%s\" server %s %s >/dev/null 2>&1", env("CONFDR_SANDBOX"), what, server);
	assert_int_equal(system(cmd), 0);
}

static const char script_src[] = "return redis.call('INCRBY', KEYS[1], ARGV[1]) + "
				 "redis.call('INCRBY', KEYS[2], ARGV[1])";

static void run_script(struct ctx *c, struct cdr_redis_script *s, const char *by)
{
	const char *keys[] = { "test:redis:s1", "test:redis:s2" }, *args[] = { by };

	c->answered = c->failed = c->errors = 0;
	c->expected = 1;
	assert_int_equal(cdr_redis_script_run(s, on_reply, c, 2, keys, 1, args), 0);
	assert_true(run_until(c, all_answered, 5000));
}

static void test_script_helper_and_noscript(void **state)
{
	struct ctx c;
	struct cdr_redis_script *s, *bad;
	char sha[128];

	open_client(&c, env("CONFDR_P1_REDIS"));
	call(&c, "DEL %s %s", "test:redis:s1", "test:redis:s2");
	assert_int_equal(cdr_redis_script_new(c.r, script_src, &s), 0);
	assert_int_equal(cdr_redis_script_new(c.r, "", &bad), -EINVAL);
	run_script(&c, s, "5");
	assert_int_equal(c.last_status, 0);
	assert_int_equal(c.last_int, 10); /* both keys moved in one step */
	run_script(&c, s, "1");
	assert_int_equal(c.last_int, 12);

	/* The server forgets every script: the next call still succeeds, first
	 * as EVALSHA (NOSCRIPT), then again as EVAL, which caches it again. */
	call(&c, "SCRIPT LOAD %s", script_src, NULL);
	snprintf(sha, sizeof(sha), "%s", c.last);
	assert_int_equal(strlen(sha), 40);
	call(&c, "SCRIPT FLUSH", NULL, NULL);
	call(&c, "SCRIPT EXISTS %s", sha, NULL);
	assert_int_equal(c.last_int, 0);
	call(&c, "CONFIG RESETSTAT", NULL, NULL);
	run_script(&c, s, "1");
	assert_int_equal(c.last_status, 0);
	assert_int_equal(c.last_int, 14);
	assert_int_equal(c.answered, 1); /* the NOSCRIPT was not seen */
	call(&c, "INFO %s", "commandstats", NULL);
	assert_non_null(c.info);
	assert_non_null(strstr(c.info, "cmdstat_evalsha:calls=1"));
	assert_non_null(strstr(c.info, "cmdstat_eval:calls=1"));
	call(&c, "SCRIPT EXISTS %s", sha, NULL);
	assert_int_equal(c.last_int, 1);
	call(&c, "GET %s", "test:redis:s2", NULL);
	assert_string_equal(c.last, "7");

	/* An error raised by a script is -EPROTO with its text. */
	assert_int_equal(cdr_redis_script_new(c.r, "return redis.error_reply('conference busy')", &bad), 0);
	run_script(&c, bad, "1");
	assert_int_equal(c.last_status, -EPROTO);
	assert_non_null(strstr(c.last, "conference busy"));
	call(&c, "DEL %s %s", "test:redis:s1", "test:redis:s2");
	close_client(&c);
}

static void test_restart_is_survived(void **state)
{
	struct ctx c;

	open_client(&c, env("CONFDR_P1_REDIS"));
	call(&c, "SET %s %s", "test:redis:persist", "kept");
	sandbox("stop", "redis-p1");
	assert_true(run_until(&c, is_down, 10000));
	/* fail fast while down */
	assert_int_equal(cdr_redis_command(c.r, on_reply, &c, "PING"), -ENOTCONN);
	sleep(2);
	sandbox("start", "redis-p1");
	assert_true(run_until(&c, is_up, 20000));
	assert_int_equal(c.ups, 2);
	/* the same client works again, and the AOF kept the data */
	call(&c, "GET %s", "test:redis:persist", NULL);
	assert_string_equal(c.last, "kept");
	close_client(&c);
}

/* A Redis that has just started answers LOADING to reads and writes until
 * it has read its dataset (it accepts AUTH and SELECT meanwhile): the client
 * is not up before that, so the first command of the new connection is
 * served, not refused. 500,000 keys in the AOF: about 1.4 s of loading on a
 * 2-core machine, more than the client's 500 ms between tries. */
#define LOAD_KEYS "500000"
static void test_loading_waited_out(void **state)
{
	struct ctx c;
	char cmd[1024];
	pid_t pid;
	int st;

	open_client(&c, env("CONFDR_P1_REDIS"));
	call(&c, "SET %s %s", "test:redis:loaded", "yes");
	c.answered = c.failed = c.errors = 0;
	c.expected = 1;
	assert_int_equal(
		cdr_redis_command(c.r, on_reply, &c, "EVAL %s 0 %s",
				  "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'test:load:' .. i, 'v') end "
				  "return 1",
				  LOAD_KEYS),
		0);
	assert_true(run_until(&c, all_answered, 60000));
	assert_int_equal(c.answered, 1);
	sandbox("stop", "redis-p1");
	assert_true(run_until(&c, is_down, 10000));
	/* started in the background: sandbox.sh returns once Redis answers
	 * PING, i.e. after the loading, and the client must meet it before */
	snprintf(cmd, sizeof(cmd), "\"%s\" server start redis-p1 >/dev/null 2>&1", env("CONFDR_SANDBOX"));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	c.probe = "test:redis:loaded";
	c.answered = c.failed = c.errors = 0;
	c.expected = 1;
	c.last[0] = '\0';
	assert_true(run_until(&c, is_up, 60000));
	assert_true(run_until(&c, all_answered, 5000));
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* the first command served, not refused LOADING */
	if (c.errors)
		fail_msg("the first command after the restart was refused: %s", c.last);
	assert_string_equal(c.last, "yes");
	/* ... because the loading was met, and waited out */
	assert_non_null(strstr(c.why, "its dataset loaded"));
	c.probe = NULL;
	call(&c, "FLUSHDB", NULL, NULL);
	close_client(&c);
}

static void test_replica_receives_writes(void **state)
{
	struct ctx p1, replica;
	char value[64];

	snprintf(value, sizeof(value), "v-%d", (int)getpid());
	open_client(&p1, env("CONFDR_P1_REDIS"));
	open_client(&replica, env("CONFDR_P1_REDIS_REPLICA"));
	call(&p1, "SET %s %s", "test:redis:replicated", value);
	call(&p1, "WAIT %s %s", "1", "5000");
	assert_int_equal(p1.last_int, 1);
	call(&replica, "GET %s", "test:redis:replicated", NULL);
	assert_string_equal(replica.last, value);
	close_client(&replica);
	close_client(&p1);
}

static bool replica_linked(struct ctx *c)
{
	if (!c->answered && !c->failed && !c->errors)
		return false; /* ROLE still in flight */
	if (strcmp(c->role, "slave") == 0 && strcmp(c->link, "connected") == 0)
		return true;
	c->answered = c->failed = c->errors = 0;
	cdr_redis_command(c->r, on_reply, c, "ROLE");
	return false;
}

static void test_switch_endpoint_and_promote(void **state)
{
	struct ctx c;
	char host[64], value[64], port[16];
	int p1port;

	snprintf(value, sizeof(value), "moved-%d", (int)getpid());
	open_client(&c, env("CONFDR_P1_REDIS"));
	call(&c, "SET %s %s", "test:redis:moved", value);
	call(&c, "WAIT %s %s", "1", "5000");
	assert_int_equal(c.last_int, 1);

	/* Switch the same client to p1's replica (what a ZooKeeper watch does
	 * after a promotion): down, then up on the new endpoint. */
	split(env("CONFDR_P1_REDIS_REPLICA"), host, sizeof(host), &p1port);
	assert_int_equal(cdr_redis_set_endpoint(c.r, host, p1port, ns_db()), 0);
	assert_false(cdr_redis_connected(c.r));
	assert_int_equal(c.downs, 1);
	assert_true(run_until(&c, is_up, 5000));
	assert_int_equal(c.ups, 2);
	call(&c, "GET %s", "test:redis:moved", NULL);
	assert_string_equal(c.last, value);
	call(&c, "ROLE", NULL, NULL);
	assert_string_equal(c.role, "slave");
	call(&c, "SET %s %s", "test:redis:moved", "x");
	assert_int_equal(c.last_status, -EPROTO); /* READONLY */

	/* Promote it: it takes writes. Then make it p1's replica again. */
	c.answered = c.failed = c.errors = 0;
	c.expected = 1;
	assert_int_equal(cdr_redis_promote(c.r, on_reply, &c), 0);
	assert_true(run_until(&c, all_answered, 5000));
	assert_int_equal(c.last_status, 0);
	assert_string_equal(c.last, "OK");
	call(&c, "ROLE", NULL, NULL);
	assert_string_equal(c.role, "master");
	call(&c, "SET %s %s", "test:redis:promoted", "yes");
	assert_string_equal(c.last, "OK");
	split(env("CONFDR_P1_REDIS"), host, sizeof(host), &p1port);
	snprintf(port, sizeof(port), "%d", p1port);
	call(&c, "REPLICAOF %s %s", host, port);
	assert_string_equal(c.last, "OK");
	c.answered = 1;
	c.role[0] = '\0';
	assert_true(run_until(&c, replica_linked, 20000));
	close_client(&c);

	open_client(&c, env("CONFDR_P1_REDIS"));
	call(&c, "DEL %s %s", "test:redis:moved", "test:redis:promoted");
	close_client(&c);
}

/* The database is selected on every connection, before the first command
 * the owner sends (one sent from on_state at the instant it is up included),
 * and a database Redis refuses keeps the client down with Redis's reason. */
static void test_database_selected_on_every_connection(void **state)
{
	struct ctx c, zero;
	char value[64];
	int db = ns_db();

	snprintf(value, sizeof(value), "in-db-%d-%d", db, (int)getpid());
	open_client(&c, env("CONFDR_P1_REDIS"));
	assert_non_null(strstr(c.why, " db "));
	call(&c, "SET %s %s", "test:redis:db", value);
	/* database 0 does not see it */
	open_client_db(&zero, env("CONFDR_P1_REDIS"), 0);
	call(&zero, "EXISTS %s", "test:redis:db", NULL);
	assert_int_equal(zero.last_int, 0);

	/* Every connection of c killed by the server: c re-connects, and the
	 * first command it sends, from on_state, reads its own database. */
	c.probe = "test:redis:db";
	call(&zero, "CLIENT KILL TYPE normal SKIPME yes", NULL, NULL);
	assert_true(zero.last_int >= 1);
	c.last[0] = '\0';
	c.answered = c.failed = c.errors = 0;
	c.expected = 1;
	assert_true(run_until(&c, is_down, 5000));
	assert_true(run_until(&c, all_answered, 10000));
	assert_int_equal(c.ups, 2);
	assert_int_equal(c.failed + c.errors, 0);
	assert_string_equal(c.last, value);
	c.probe = NULL;
	call(&c, "DEL %s", "test:redis:db", NULL);
	close_client(&c);
	close_client(&zero);

	/* A database beyond the server's `databases`: never up, and why says so. */
	c = (struct ctx){ 0 };
	{
		struct cdr_redis_opts o = { 0 };
		char host[64];
		int port;

		split(env("CONFDR_P1_REDIS"), host, sizeof(host), &port);
		assert_int_equal(cdr_loop_new(&c.loop), 0);
		assert_int_equal(cdr_timer_new(c.loop, on_guard, &c, &c.guard), 0);
		assert_int_equal(cdr_timer_new(c.loop, on_tick, &c, &c.tick), 0);
		o.host = host;
		o.port = port;
		o.db = CDR_REDIS_DB_MAX;
		o.password = getenv("REDISCLI_AUTH");
		o.on_state = on_state;
		o.arg = &c;
		o.reconnect_min_ms = 20;
		o.reconnect_max_ms = 50;
		assert_int_equal(cdr_redis_new(c.loop, &o, &c.r), 0);
		assert_true(run_until(&c, is_down, 5000));
		assert_non_null(strstr(c.why, "SELECT"));
		assert_non_null(strstr(c.why, "out of range"));
		run_until(&c, never, 500); /* several attempts with the back-off: none up */
		assert_int_equal(c.ups, 0);
		assert_int_equal(cdr_redis_command(c.r, on_reply, &c, "PING"), -ENOTCONN);
		o.db = -1;
		assert_int_equal(cdr_redis_new(c.loop, &o, &zero.r), -EINVAL);
		o.db = CDR_REDIS_DB_MAX + 1;
		assert_int_equal(cdr_redis_new(c.loop, &o, &zero.r), -EINVAL);
		assert_int_equal(cdr_redis_set_endpoint(c.r, host, port, -1), -EINVAL);
		close_client(&c);
	}
}

/* A password Redis refuses (the sandbox's Redis has ACL users): never up,
 * why names the AUTH and the user, never the password; after it, a right
 * one is up. Skipped on a Redis without passwords. */
static void test_auth_refused(void **state)
{
	struct ctx c = { 0 };
	struct cdr_redis_opts o = { 0 };
	const char *admin = getenv("REDISCLI_AUTH");
	char host[64];
	int port;

	(void)state;
	if (!admin || !*admin)
		skip();
	split(env("CONFDR_P1_REDIS"), host, sizeof(host), &port);
	assert_int_equal(cdr_loop_new(&c.loop), 0);
	assert_int_equal(cdr_timer_new(c.loop, on_guard, &c, &c.guard), 0);
	assert_int_equal(cdr_timer_new(c.loop, on_tick, &c, &c.tick), 0);
	o.host = host;
	o.port = port;
	o.db = 1;
	o.user = "css";
	o.password = "not-the-password";
	o.on_state = on_state;
	o.arg = &c;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 50;
	assert_int_equal(cdr_redis_new(c.loop, &o, &c.r), 0);
	assert_true(run_until(&c, is_down, 5000));
	assert_non_null(strstr(c.why, "AUTH of user css"));
	assert_null(strstr(c.why, "not-the-password"));
	run_until(&c, never, 300); /* several attempts: none up */
	assert_int_equal(c.ups, 0);
	close_client(&c);

	/* The default user with the admin's password: up. */
	c = (struct ctx){ 0 };
	assert_int_equal(cdr_loop_new(&c.loop), 0);
	assert_int_equal(cdr_timer_new(c.loop, on_guard, &c, &c.guard), 0);
	assert_int_equal(cdr_timer_new(c.loop, on_tick, &c, &c.tick), 0);
	o.user = NULL;
	o.password = admin;
	o.arg = &c;
	assert_int_equal(cdr_redis_new(c.loop, &o, &c.r), 0);
	assert_true(run_until(&c, is_up, 5000));
	close_client(&c);
}

static void test_unreachable_and_free_cancels(void **state)
{
	struct ctx c = { 0 };
	struct cdr_redis_opts o = { 0 };

	assert_int_equal(cdr_loop_new(&c.loop), 0);
	assert_int_equal(cdr_timer_new(c.loop, on_guard, &c, &c.guard), 0);
	assert_int_equal(cdr_timer_new(c.loop, on_tick, &c, &c.tick), 0);
	o.host = "127.0.0.1";
	o.port = 1; /* nothing listens there */
	o.on_state = on_state;
	o.arg = &c;
	o.reconnect_min_ms = 20;
	assert_int_equal(cdr_redis_new(c.loop, &o, &c.r), 0);
	assert_true(run_until(&c, is_down, 5000));
	assert_int_equal(cdr_redis_command(c.r, on_reply, &c, "PING"), -ENOTCONN);
	o.port = 0;
	assert_int_equal(cdr_redis_new(c.loop, &o, &c.r), -EINVAL);
	close_client(&c);

	/* commands in flight at free are answered -ECANCELED, once each */
	open_client(&c, env("CONFDR_P1_REDIS"));
	c.answered = c.failed = 0;
	for (int i = 0; i < 100; i++)
		assert_int_equal(cdr_redis_command(c.r, on_reply, &c, "PING"), 0);
	c.r = cdr_redis_free(c.r);
	assert_int_equal(c.failed, 100);
	assert_int_equal(c.last_status, -ECANCELED);
	close_client(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands_and_errors),
		cmocka_unit_test(test_pipelined_all_answered_once),
		cmocka_unit_test(test_script_helper_and_noscript),
		cmocka_unit_test(test_replica_receives_writes),
		cmocka_unit_test(test_switch_endpoint_and_promote),
		cmocka_unit_test(test_unreachable_and_free_cancels),
		cmocka_unit_test(test_auth_refused),
		cmocka_unit_test(test_database_selected_on_every_connection),
		cmocka_unit_test(test_restart_is_survived),
		cmocka_unit_test(test_loading_waited_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
