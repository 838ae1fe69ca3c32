/* Redis client: hiredis async on the loop, re-connection with back-off. */
#include <confdr/redis.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <confdr/log.h>
#include <confdr/loop.h>

struct cdr_redis {
	struct cdr_loop *loop;
	char *host;
	int port;
	int db;		       /* SELECTed on every connection when not 0 */
	char *user, *password; /* AUTH first on every connection when password is set */
	int hello;	       /* answers of AUTH, SELECT and PING still awaited on this connection */
	bool loading;	       /* its PING answered LOADING: asked again (ping_timer) */
	char *name;
	unsigned connect_timeout_ms;
	cdr_redis_state_fn on_state;
	void *arg;

	redisAsyncContext *ac; /* NULL while waiting to re-connect */
	bool up;
	bool reported; /* on_state told at least once */
	bool closing;
	bool switching; /* dropping the connection for a new endpoint */
	struct cdr_backoff backoff;
	struct cdr_timer *retry_timer;
	struct cdr_timer *connect_timer;
	struct cdr_timer *ping_timer; /* the PING again while Redis loads its dataset */
	struct cdr_redis_script *scripts;
};

/* How often a Redis that answers LOADING (restarted, reading its dataset
 * from disk) is asked again whether it is done. */
#define LOADING_PING_MS 200

struct cdr_redis_script {
	struct cdr_redis *r;
	char *source;
	char sha[41]; /* "" until a SCRIPT LOAD was answered */
	struct cdr_redis_script *next;
};

/* One command in flight. A script call keeps its arguments so that it can
 * be sent again as EVAL after a NOSCRIPT. */
struct pending {
	struct cdr_redis *r;
	cdr_redis_fn cb;
	void *arg;
	struct cdr_redis_script *script;
	bool retried;
	int argc;
	char **argv;
};

static void connect_now(void *arg);
static void load_scripts(struct cdr_redis *r);
static void on_selected(redisAsyncContext *ac, void *reply, void *privdata);
static void on_auth(redisAsyncContext *ac, void *reply, void *privdata);
static void on_ping(redisAsyncContext *ac, void *reply, void *privdata);

static void set_state(struct cdr_redis *r, bool up, const char *why)
{
	if (r->reported && r->up == up)
		return;
	r->reported = true;
	r->up = up;
	cdr_debug("redis %s: %s %s:%d (%s)", r->name, up ? "up" : "down", r->host, r->port, why ? why : "");
	if (r->on_state)
		r->on_state(up, why, r->arg);
}

static void schedule_retry(struct cdr_redis *r)
{
	if (r->closing)
		return;
	cdr_timer_start(r->retry_timer, cdr_backoff_next(&r->backoff), false);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct cdr_redis *r = ac->data;
	char why[256];

	cdr_timer_stop(r->connect_timer);
	cdr_timer_stop(r->ping_timer);
	r->loading = false;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		snprintf(why, sizeof(why), "cannot connect to %s:%d: %s", r->host, r->port, ac->errstr);
		r->ac = NULL;
		set_state(r, false, why);
		schedule_retry(r);
		return;
	}
	cdr_backoff_reset(&r->backoff);
	/* A dead peer that sends no FIN is noticed by TCP keepalive. */
	redisEnableKeepAlive((redisContext *)&ac->c);
	/* AUTH, then SELECT, then PING, first on the connection (pipelined:
	 * Redis answers in order); up once all are answered (hello_answer).
	 * The PING waits out a Redis that has just started and is still
	 * loading its dataset: it accepts AUTH and SELECT then, but answers
	 * every read and write LOADING, and a write refused so is a write
	 * lost to a caller that does not try it again. */
	r->hello = 0;
	if (r->password) {
		const char *argv[] = { "AUTH", r->user ? r->user : r->password, r->password };
		int argc = r->user ? 3 : 2;

		if (redisAsyncCommandArgv(r->ac, on_auth, r, argc, argv, NULL) != REDIS_OK)
			goto unsent;
		r->hello++;
	}
	if (r->db) {
		if (redisAsyncCommand(r->ac, on_selected, r, "SELECT %d", r->db) != REDIS_OK)
			goto unsent;
		r->hello++;
	}
	if (redisAsyncCommand(r->ac, on_ping, r, "PING") != REDIS_OK)
		goto unsent;
	r->hello++;
	return;
unsent:
	/* Not from inside hiredis's connect callback: the timer drops it. */
	snprintf(why, sizeof(why), "%s:%d: cannot send the first commands (AUTH, SELECT, PING)", r->host, r->port);
	set_state(r, false, why);
	cdr_timer_start(r->connect_timer, 0, false);
}

/* One answer to AUTH or SELECT of a new connection. NULL: the connection
 * went (freed, switched or lost: on_disconnect or the owner deals with it). */
static void hello_answer(redisAsyncContext *ac, struct cdr_redis *r, const redisReply *rep, const char *what)
{
	char why[256];

	if (!rep || r->hello < 0) /* gone, or refused already: the rest is moot */
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		/* Down before on_disconnect, so that its "closed" does not hide why.
		 * Never the password in the text: the user only. */
		snprintf(why, sizeof(why), "%s:%d refused %s: %s", r->host, r->port, what, rep->str);
		r->hello = -1;
		set_state(r, false, why);
		redisAsyncDisconnect(ac);
		return;
	}
	if (r->hello <= 0 || --r->hello)
		return;
	/* Ahead of anything the owner sends once told we are up (scripts are
	 * the server's, not the database's). */
	load_scripts(r);
	snprintf(why, sizeof(why), "%s:%d db %d%s%s%s", r->host, r->port, r->db, r->password ? " as " : "",
		 r->password ? (r->user ? r->user : "default") : "", r->loading ? ", its dataset loaded" : "");
	r->loading = false;
	set_state(r, true, why);
}

/* The PING of a new connection: LOADING is "not yet" (asked again), any
 * other answer (PONG; an error such as NOPERM from an ACL without PING)
 * is "ready". */
static void on_ping(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cdr_redis *r = privdata;
	const redisReply *rep = reply;
	static const redisReply pong = { .type = REDIS_REPLY_STATUS };

	if (!rep || r->hello <= 0)
		return;
	if (rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "LOADING", 7)) {
		if (!r->loading)
			cdr_notice("redis %s: %s:%d is loading its dataset (%s): not up until it is done; asked "
				   "again every %d ms",
				   r->name, r->host, r->port, rep->str, LOADING_PING_MS);
		r->loading = true;
		cdr_timer_start(r->ping_timer, LOADING_PING_MS, false);
		return;
	}
	hello_answer(ac, r, &pong, "PING");
}

static void ping_again(void *arg)
{
	struct cdr_redis *r = arg;
	char why[256];

	if (!r->ac || r->hello <= 0 || r->closing)
		return;
	if (redisAsyncCommand(r->ac, on_ping, r, "PING") == REDIS_OK)
		return;
	snprintf(why, sizeof(why), "%s:%d: cannot send PING", r->host, r->port);
	r->hello = -1;
	set_state(r, false, why);
	redisAsyncDisconnect(r->ac);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cdr_redis *r = privdata;
	char what[160];

	snprintf(what, sizeof(what), "AUTH of user %s", r->user ? r->user : "default");
	hello_answer(ac, r, reply, what);
}

static void on_selected(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cdr_redis *r = privdata;
	char what[32];

	snprintf(what, sizeof(what), "SELECT %d", r->db);
	hello_answer(ac, r, reply, what);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct cdr_redis *r = ac->data;
	char why[256];

	/* hiredis frees the context after this callback (pending callbacks
	 * have already been answered with a NULL reply). */
	r->ac = NULL;
	cdr_timer_stop(r->ping_timer);
	if (r->closing || r->switching)
		return;
	snprintf(why, sizeof(why), "connection to %s:%d lost: %s", r->host, r->port,
		 status == REDIS_OK ? "closed" : ac->errstr);
	set_state(r, false, why);
	schedule_retry(r);
}

static void on_connect_timeout(void *arg)
{
	struct cdr_redis *r = arg;
	char why[256];

	if (!r->ac)
		return;
	snprintf(why, sizeof(why), "cannot connect to %s:%d: no answer within %u ms", r->host, r->port,
		 r->connect_timeout_ms);
	/* Not connected yet: freeing calls no disconnect callback. */
	redisAsyncFree(r->ac);
	r->ac = NULL;
	set_state(r, false, why);
	schedule_retry(r);
}

static void connect_now(void *arg)
{
	struct cdr_redis *r = arg;
	redisAsyncContext *ac;
	char why[256];

	if (r->closing || r->ac)
		return;
	ac = redisAsyncConnect(r->host, r->port);
	if (!ac || ac->err) {
		snprintf(why, sizeof(why), "cannot connect to %s:%d: %s", r->host, r->port,
			 ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		set_state(r, false, why);
		schedule_retry(r);
		return;
	}
	ac->data = r;
	if (redisLibeventAttach(ac, cdr_loop_base(r->loop)) != REDIS_OK) {
		redisAsyncFree(ac);
		set_state(r, false, "cannot attach to the event loop");
		schedule_retry(r);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	cdr_timer_start(r->connect_timer, r->connect_timeout_ms, false);
}

int cdr_redis_new(struct cdr_loop *loop, const struct cdr_redis_opts *opts, struct cdr_redis **ret)
{
	struct cdr_redis *r;

	if (!opts || !opts->host || !*opts->host || opts->port < 1 || opts->port > 65535 || opts->db < 0 ||
	    opts->db > CDR_REDIS_DB_MAX)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop = loop;
	r->host = strdup(opts->host);
	r->port = opts->port;
	r->db = opts->db;
	r->name = strdup(opts->name ? opts->name : "redis");
	if (opts->password && *opts->password) {
		r->password = strdup(opts->password);
		if (opts->user && *opts->user)
			r->user = strdup(opts->user);
		if (!r->password || (opts->user && *opts->user && !r->user)) {
			cdr_redis_free(r);
			return -ENOMEM;
		}
	}
	r->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 2000;
	r->on_state = opts->on_state;
	r->arg = opts->arg;
	cdr_backoff_init(&r->backoff, opts->reconnect_min_ms ? opts->reconnect_min_ms : 200,
			 opts->reconnect_max_ms ? opts->reconnect_max_ms : 10000);
	if (!r->host || !r->name || cdr_timer_new(loop, connect_now, r, &r->retry_timer) < 0 ||
	    cdr_timer_new(loop, on_connect_timeout, r, &r->connect_timer) < 0 ||
	    cdr_timer_new(loop, ping_again, r, &r->ping_timer) < 0) {
		cdr_redis_free(r);
		return -ENOMEM;
	}
	connect_now(r);
	*ret = r;
	return 0;
}

struct cdr_redis *cdr_redis_free(struct cdr_redis *r)
{
	if (!r)
		return NULL;
	r->closing = true;
	r->up = false;
	if (r->ac) {
		/* Pending callbacks run now with a NULL reply: -ECANCELED. */
		redisAsyncFree(r->ac);
		r->ac = NULL;
	}
	cdr_timer_free(r->retry_timer);
	cdr_timer_free(r->connect_timer);
	cdr_timer_free(r->ping_timer);
	while (r->scripts) {
		struct cdr_redis_script *s = r->scripts;

		r->scripts = s->next;
		free(s->source);
		free(s);
	}
	free(r->host);
	free(r->name);
	free(r->user);
	if (r->password) {
		explicit_bzero(r->password, strlen(r->password));
		free(r->password);
	}
	free(r);
	return NULL;
}

bool cdr_redis_connected(const struct cdr_redis *r)
{
	return r->up && r->ac;
}

int cdr_redis_set_endpoint(struct cdr_redis *r, const char *host, int port, int db)
{
	char *h;

	if (!host || !*host || port < 1 || port > 65535 || db < 0 || db > CDR_REDIS_DB_MAX)
		return -EINVAL;
	h = strdup(host);
	if (!h)
		return -ENOMEM;
	free(r->host);
	r->host = h;
	r->port = port;
	r->db = db;
	cdr_backoff_reset(&r->backoff);
	cdr_timer_stop(r->retry_timer);
	cdr_timer_stop(r->connect_timer);
	cdr_timer_stop(r->ping_timer);
	if (r->ac) {
		redisAsyncContext *ac = r->ac;

		/* Down first, so that callbacks answered -ECONNRESET below see
		 * -ENOTCONN if they try again at once; on_disconnect stays quiet
		 * while switching: we connect to the new endpoint right away. */
		set_state(r, false, "endpoint changed");
		r->switching = true;
		redisAsyncFree(ac);
		r->switching = false;
		r->ac = NULL;
	}
	connect_now(r);
	return 0;
}

static void pending_free(struct pending *p)
{
	for (int i = 0; p->argv && i < p->argc; i++)
		free(p->argv[i]);
	free(p->argv);
	free(p);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* NOSCRIPT: the same call again as EVAL with the source (which caches it). */
static bool resend_as_eval(redisAsyncContext *ac, struct pending *p)
{
	char *src, *eval;

	if (ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))
		return false;
	src = strdup(p->script->source);
	eval = strdup("EVAL");
	if (!src || !eval) {
		free(src);
		free(eval);
		return false;
	}
	free(p->argv[0]);
	free(p->argv[1]);
	p->argv[0] = eval;
	p->argv[1] = src;
	p->retried = true;
	return redisAsyncCommandArgv(ac, on_reply, p, p->argc, (const char **)p->argv, NULL) == REDIS_OK;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct pending *p = privdata;
	const redisReply *rep = reply;
	int status;

	if (!rep)
		status = p->r->closing ? -ECANCELED : -ECONNRESET;
	else if (rep->type == REDIS_REPLY_ERROR)
		status = -EPROTO;
	else
		status = 0;
	if (status == -EPROTO && p->script && !p->retried && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		if (resend_as_eval(ac, p))
			return;
		rep = NULL;
		status = -ECONNRESET;
	}
	p->cb(status, rep, p->arg);
	pending_free(p);
}

static struct pending *pending_new(struct cdr_redis *r, cdr_redis_fn cb, void *arg)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (p) {
		p->r = r;
		p->cb = cb;
		p->arg = arg;
	}
	return p;
}

/* hiredis refuses commands on a context that is going away: that is "not
 * connected" to our caller (e.g. a callback answered -ECONNRESET that tries
 * again at once). */
static int refused(const struct cdr_redis *r)
{
	return !r->ac || (r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) ? -ENOTCONN : -EIO;
}

int cdr_redis_command(struct cdr_redis *r, cdr_redis_fn cb, void *arg, const char *fmt, ...)
{
	struct pending *p;
	va_list ap;
	int rc;

	if (!r->up || !r->ac)
		return -ENOTCONN;
	p = pending_new(r, cb, arg);
	if (!p)
		return -ENOMEM;
	va_start(ap, fmt);
	rc = redisvAsyncCommand(r->ac, on_reply, p, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK) {
		free(p);
		return refused(r);
	}
	return 0;
}

int cdr_redis_command_argv(struct cdr_redis *r, cdr_redis_fn cb, void *arg, int argc, const char **argv,
			   const size_t *argvlen)
{
	struct pending *p;

	if (!r->up || !r->ac)
		return -ENOTCONN;
	p = pending_new(r, cb, arg);
	if (!p)
		return -ENOMEM;
	if (redisAsyncCommandArgv(r->ac, on_reply, p, argc, argv, argvlen) != REDIS_OK) {
		free(p);
		return refused(r);
	}
	return 0;
}

int cdr_redis_promote(struct cdr_redis *r, cdr_redis_fn cb, void *arg)
{
	return cdr_redis_command(r, cb, arg, "REPLICAOF NO ONE");
}

/* ---- scripts ---- */

static void on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cdr_redis_script *s = privdata;
	const redisReply *rep = reply;

	/* A failed load is not fatal: calls go out as EVAL, or fall back on
	 * NOSCRIPT. */
	if (rep && rep->type == REDIS_REPLY_STRING && rep->len == 40)
		memcpy(s->sha, rep->str, 41);
	else
		cdr_debug("redis %s: SCRIPT LOAD failed: %s", s->r->name,
			  rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no answer");
}

/* Only on a connected context (on_connect runs before r->up is set). */
static void load_script(struct cdr_redis_script *s)
{
	struct cdr_redis *r = s->r;

	if (r->ac && (r->ac->c.flags & REDIS_CONNECTED))
		redisAsyncCommand(r->ac, on_script_loaded, s, "SCRIPT LOAD %s", s->source);
}

static void load_scripts(struct cdr_redis *r)
{
	for (struct cdr_redis_script *s = r->scripts; s; s = s->next)
		load_script(s);
}

int cdr_redis_script_new(struct cdr_redis *r, const char *lua_source, struct cdr_redis_script **ret)
{
	struct cdr_redis_script *s;

	if (!lua_source || !*lua_source)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->source = strdup(lua_source);
	if (!s->source) {
		free(s);
		return -ENOMEM;
	}
	s->r = r;
	s->next = r->scripts;
	r->scripts = s;
	load_script(s);
	*ret = s;
	return 0;
}

int cdr_redis_script_run(struct cdr_redis_script *s, cdr_redis_fn cb, void *arg, int nkeys, const char *const *keys,
			 int nargs, const char *const *args)
{
	struct cdr_redis *r = s->r;
	struct pending *p;
	int n = 3 + nkeys + nargs;
	char num[16];

	if (nkeys < 0 || nargs < 0)
		return -EINVAL;
	if (!r->up || !r->ac)
		return -ENOTCONN;
	p = pending_new(r, cb, arg);
	if (!p)
		return -ENOMEM;
	p->script = s;
	p->argv = calloc((size_t)n, sizeof(char *));
	if (!p->argv)
		goto nomem;
	snprintf(num, sizeof(num), "%d", nkeys);
	p->argv[p->argc++] = strdup(s->sha[0] ? "EVALSHA" : "EVAL");
	p->argv[p->argc++] = strdup(s->sha[0] ? s->sha : s->source);
	p->argv[p->argc++] = strdup(num);
	for (int i = 0; i < nkeys; i++)
		p->argv[p->argc++] = strdup(keys[i]);
	for (int i = 0; i < nargs; i++)
		p->argv[p->argc++] = strdup(args[i]);
	for (int i = 0; i < n; i++)
		if (!p->argv[i])
			goto nomem;
	if (redisAsyncCommandArgv(r->ac, on_reply, p, p->argc, (const char **)p->argv, NULL) != REDIS_OK) {
		pending_free(p);
		return refused(r);
	}
	return 0;
nomem:
	pending_free(p);
	return -ENOMEM;
}
