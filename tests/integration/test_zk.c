/* ZooKeeper against the sandbox's server (CONFDR_ZK, CONFDR_ZK_CHROOT):
 * requests and their errors, one-shot watches, the data-watch helper, leader
 * election with two handles, and a forced session expiry that must make the
 * leader step down at once and hand over to the other contender.
 *
 * Everything lives under a test-only node /test-zk-<pid> (inside the chroot),
 * removed at the end. Every wait is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADED
#include <zookeeper/zookeeper.h>

#include "harness.h"

#include <confdr/loop.h>
#include <confdr/topology.h>
#include <confdr/zk.h>

static struct cdr_loop *loop;
static const char *hosts, *chroot_path;
static char base[64]; /* "/test-zk-<pid>" */

/* ---- waiting ---- */

struct waiter {
	bool (*pred)(void *);
	void *arg;
	uint64_t deadline;
};

static void tick(void *arg)
{
	struct waiter *w = arg;

	if (w->pred(w->arg) || cdr_now_ms() >= w->deadline)
		cdr_loop_stop(loop);
}

/* Runs the loop until pred(arg) or timeout_ms; returns pred(arg). */
static bool run_until(bool (*pred)(void *), void *arg, unsigned timeout_ms)
{
	struct waiter w = { pred, arg, cdr_now_ms() + timeout_ms };
	struct cdr_timer *t;

	if (pred(arg))
		return true;
	assert_int_equal(cdr_timer_new(loop, tick, &w, &t), 0);
	cdr_timer_start(t, 10, true);
	cdr_loop_run(loop);
	cdr_timer_free(t);
	return pred(arg);
}

static bool is_true(void *arg)
{
	return *(bool *)arg;
}

/* ---- handles ---- */

struct session_log {
	int connected, disconnected, expired;
	enum cdr_zk_state last;
	bool up;
	/* order of events, for the expiry test: 'C', 'D', 'E', 'L' (leader
	 * told false), 'l' (leader told true) */
	char trace[64];
	size_t ntrace;
};

static void trace(struct session_log *s, char c)
{
	if (s->ntrace + 1 < sizeof(s->trace))
		s->trace[s->ntrace++] = c;
}

static void on_session(enum cdr_zk_state state, void *arg)
{
	struct session_log *s = arg;

	s->last = state;
	s->up = state == CDR_ZK_CONNECTED;
	if (state == CDR_ZK_CONNECTED) {
		s->connected++;
		trace(s, 'C');
	} else if (state == CDR_ZK_DISCONNECTED) {
		s->disconnected++;
		trace(s, 'D');
	} else {
		s->expired++;
		trace(s, 'E');
	}
}

/* A session as user (digest, with password), or unauthenticated (NULL). */
static struct cdr_zk *open_zk_as(struct session_log *s, const char *user, const char *password)
{
	struct cdr_zk_opts o = {
		.hosts = hosts,
		.chroot = chroot_path,
		.session_timeout_ms = 6000,
		.reconnect_min_ms = 50,
		.reconnect_max_ms = 1000,
		.on_session = on_session,
		.arg = s,
		.user = user,
		.password = password,
	};
	struct cdr_zk *zk = NULL;

	assert_int_equal(cdr_zk_new(loop, &o, &zk), 0);
	if (!run_until(is_true, &s->up, 10000))
		fail_msg("no ZooKeeper session at %s within 10 s", hosts);
	return zk;
}

static struct cdr_zk *open_zk(struct session_log *s)
{
	return open_zk_as(s, NULL, NULL);
}

/* ---- synchronous requests ---- */

struct answer {
	bool done;
	int status;
	char *data;
	size_t len;
	int32_t version;
	int64_t owner;
	char path[256];
	char children[16][64];
	size_t nchildren;
};

static void on_answer(const struct cdr_zk_result *r, void *arg)
{
	struct answer *a = arg;

	a->status = r->status;
	if (r->status)
		assert_non_null(r->error);
	if (r->data) {
		a->data = strndup(r->data, r->len);
		a->len = r->len;
	}
	a->version = r->version;
	a->owner = r->ephemeral_owner;
	snprintf(a->path, sizeof(a->path), "%s", r->path ? r->path : "");
	for (size_t i = 0; i < r->nchildren && i < 16; i++)
		snprintf(a->children[a->nchildren++], 64, "%s", r->children[i]);
	a->done = true;
}

static void wait_answer(struct answer *a)
{
	if (!run_until(is_true, &a->done, 10000))
		fail_msg("no answer from ZooKeeper within 10 s");
}

static char *P(const char *rel)
{
	static char bufs[8][256];
	static int i;
	char *b = bufs[i++ % 8];

	snprintf(b, 256, "%s%s", base, rel);
	return b;
}

static int do_get(struct cdr_zk *zk, const char *path, struct answer *a)
{
	free(a->data);
	memset(a, 0, sizeof(*a));
	assert_int_equal(cdr_zk_get(zk, path, NULL, NULL, on_answer, a), 0);
	wait_answer(a);
	return a->status;
}

static int do_create(struct cdr_zk *zk, const char *path, const char *data, unsigned flags, struct answer *a)
{
	free(a->data);
	memset(a, 0, sizeof(*a));
	assert_int_equal(cdr_zk_create(zk, path, data, data ? strlen(data) : 0, flags, on_answer, a), 0);
	wait_answer(a);
	return a->status;
}

static int do_set(struct cdr_zk *zk, const char *path, const char *data, int32_t version, struct answer *a)
{
	free(a->data);
	memset(a, 0, sizeof(*a));
	assert_int_equal(cdr_zk_set(zk, path, data, strlen(data), version, on_answer, a), 0);
	wait_answer(a);
	return a->status;
}

static int do_delete(struct cdr_zk *zk, const char *path, int32_t version, struct answer *a)
{
	free(a->data);
	memset(a, 0, sizeof(*a));
	assert_int_equal(cdr_zk_delete(zk, path, version, on_answer, a), 0);
	wait_answer(a);
	return a->status;
}

static int do_children(struct cdr_zk *zk, const char *path, struct answer *a)
{
	free(a->data);
	memset(a, 0, sizeof(*a));
	assert_int_equal(cdr_zk_children(zk, path, NULL, NULL, on_answer, a), 0);
	wait_answer(a);
	return a->status;
}

static void delete_tree(struct cdr_zk *zk, const char *path)
{
	struct answer a = { 0 };
	char kids[16][64];
	size_t n;

	if (do_children(zk, path, &a) != 0)
		return;
	n = a.nchildren;
	memcpy(kids, a.children, sizeof(kids));
	for (size_t i = 0; i < n; i++) {
		char p[512];
		snprintf(p, sizeof(p), "%s/%s", path, kids[i]);
		delete_tree(zk, p);
	}
	do_delete(zk, path, -1, &a);
	free(a.data);
}

/* ---- watches ---- */

struct watch_log {
	int fired;
	enum cdr_zk_event ev;
	char path[256];
};

static void on_watch(enum cdr_zk_event ev, const char *path, void *arg)
{
	struct watch_log *w = arg;

	w->fired++;
	w->ev = ev;
	snprintf(w->path, sizeof(w->path), "%s", path);
}

static bool watch_fired(void *arg)
{
	return ((struct watch_log *)arg)->fired > 0;
}

static void test_requests_and_watches(void **state)
{
	struct session_log s = { 0 };
	struct cdr_zk *zk = open_zk(&s);
	struct answer a = { 0 };
	struct watch_log w = { 0 }, wc = { 0 }, we = { 0 };

	(void)state;
	/* create with parents, read back */
	assert_int_equal(do_create(zk, P("/req/a"), "one", CDR_ZK_PARENTS, &a), 0);
	assert_string_equal(a.path, P("/req/a"));
	assert_int_equal(do_get(zk, P("/req/a"), &a), 0);
	assert_int_equal(a.len, 3);
	assert_string_equal(a.data, "one");
	assert_int_equal(a.version, 0);
	assert_int_equal(a.owner, 0);

	/* errors */
	assert_int_equal(do_create(zk, P("/req/a"), "x", 0, &a), -EEXIST);
	assert_int_equal(do_get(zk, P("/req/missing"), &a), -ENOENT);
	assert_int_equal(do_create(zk, P("/nope/b"), "x", 0, &a), -ENOENT); /* no parent */
	assert_int_equal(do_set(zk, P("/req/a"), "two", 7, &a), -ESTALE);
	assert_int_equal(do_delete(zk, P("/req"), -1, &a), -ENOTEMPTY);
	assert_int_equal(cdr_zk_get(zk, "relative", NULL, NULL, on_answer, &a), -EINVAL);
	assert_int_equal(cdr_zk_get(zk, "/trailing/", NULL, NULL, on_answer, &a), -EINVAL);

	/* a data watch fires once on change */
	free(a.data);
	memset(&a, 0, sizeof(a));
	assert_int_equal(cdr_zk_get(zk, P("/req/a"), on_watch, &w, on_answer, &a), 0);
	wait_answer(&a);
	assert_int_equal(a.status, 0);
	assert_int_equal(w.fired, 0);
	assert_int_equal(do_set(zk, P("/req/a"), "two", 0, &a), 0);
	assert_int_equal(a.version, 1);
	assert_true(run_until(watch_fired, &w, 5000));
	assert_int_equal(w.ev, CDR_ZK_EV_CHANGED);
	assert_string_equal(w.path, P("/req/a"));
	assert_int_equal(do_set(zk, P("/req/a"), "three", -1, &a), 0);
	assert_int_equal(do_get(zk, P("/req/a"), &a), 0); /* a round trip: the event would be here */
	assert_int_equal(w.fired, 1);			  /* one-shot */
	assert_string_equal(a.data, "three");

	/* children, sorted, and a child watch */
	assert_int_equal(do_create(zk, P("/req/c"), NULL, 0, &a), 0);
	assert_int_equal(do_create(zk, P("/req/b"), "", 0, &a), 0);
	free(a.data);
	memset(&a, 0, sizeof(a));
	assert_int_equal(cdr_zk_children(zk, P("/req"), on_watch, &wc, on_answer, &a), 0);
	wait_answer(&a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.nchildren, 3);
	assert_string_equal(a.children[0], "a");
	assert_string_equal(a.children[1], "b");
	assert_string_equal(a.children[2], "c");
	assert_int_equal(do_delete(zk, P("/req/c"), -1, &a), 0);
	assert_true(run_until(watch_fired, &wc, 5000));
	assert_int_equal(wc.ev, CDR_ZK_EV_CHILDREN);
	assert_string_equal(wc.path, P("/req"));

	/* an exists watch on a missing node fires on creation */
	free(a.data);
	memset(&a, 0, sizeof(a));
	assert_int_equal(cdr_zk_exists(zk, P("/req/later"), on_watch, &we, on_answer, &a), 0);
	wait_answer(&a);
	assert_int_equal(a.status, -ENOENT);
	assert_int_equal(do_create(zk, P("/req/later"), "x", 0, &a), 0);
	assert_true(run_until(watch_fired, &we, 5000));
	assert_int_equal(we.ev, CDR_ZK_EV_CREATED);

	/* sequential ephemeral nodes: increasing suffixes, owned by us */
	assert_int_equal(do_create(zk, P("/req/s_"), "e", CDR_ZK_EPHEMERAL | CDR_ZK_SEQUENCE, &a), 0);
	{
		char first[256];
		struct cdr_zk_session sess;
		snprintf(first, sizeof(first), "%s", a.path);
		assert_int_equal(strlen(first), strlen(P("/req/s_")) + 10);
		assert_int_equal(do_create(zk, P("/req/s_"), "e", CDR_ZK_EPHEMERAL | CDR_ZK_SEQUENCE, &a), 0);
		assert_true(strcmp(a.path, first) > 0);
		assert_int_equal(do_get(zk, first, &a), 0);
		assert_int_equal(cdr_zk_session(zk, &sess), 0);
		assert_true(a.owner == sess.id);
	}
	/* a cancelled request's callback does not run */
	{
		struct answer c = { 0 };
		bool later = false;
		assert_int_equal(cdr_zk_get(zk, P("/req/a"), NULL, NULL, on_answer, &c), 0);
		cdr_zk_cancel(zk, &c);
		assert_int_equal(do_get(zk, P("/req/a"), &a), 0);
		run_until(is_true, &later, 200);
		assert_false(c.done);
	}

	delete_tree(zk, P("/req"));
	assert_int_equal(do_get(zk, P("/req"), &a), -ENOENT);
	free(a.data);
	assert_int_equal(s.connected, 1);
	assert_int_equal(s.expired, 0);
	cdr_zk_free(zk);
}

/* Pending requests get -ECANCELED at free, and the handle's ephemerals go. */
static void test_free_cancels(void **state)
{
	struct session_log s = { 0 }, s2 = { 0 };
	struct cdr_zk *zk = open_zk(&s), *zk2 = open_zk(&s2);
	struct answer a = { 0 }, pending = { 0 };
	struct watch_log w = { 0 };

	(void)state;
	assert_int_equal(do_create(zk, P("/free"), NULL, CDR_ZK_PARENTS, &a), 0);
	assert_int_equal(do_create(zk, P("/free/eph"), "x", CDR_ZK_EPHEMERAL, &a), 0);
	memset(&a, 0, sizeof(a));
	assert_int_equal(cdr_zk_get(zk, P("/free/eph"), on_watch, &w, on_answer, &a), 0);
	wait_answer(&a);
	assert_int_equal(a.status, 0);
	assert_string_equal(a.data, "x");
	assert_int_equal(cdr_zk_get(zk, P("/free/eph"), NULL, NULL, on_answer, &pending), 0);
	cdr_zk_free(zk);
	assert_true(pending.done);
	assert_true(pending.status == -ECANCELED || pending.status == 0);
	assert_int_equal(w.fired, 1);
	assert_int_equal(w.ev, CDR_ZK_EV_LOST);
	assert_int_equal(do_get(zk2, P("/free/eph"), &a), -ENOENT);
	delete_tree(zk2, P("/free"));
	free(a.data);
	free(pending.data);
	cdr_zk_free(zk2);
}

/* ---- data watch ---- */

struct data_log {
	int calls;
	int status;
	char data[64];
};

static void on_data(int status, const char *data, size_t len, void *arg)
{
	struct data_log *d = arg;

	d->calls++;
	d->status = status;
	snprintf(d->data, sizeof(d->data), "%.*s", (int)len, data ? data : "");
}

struct data_expect {
	struct data_log *d;
	int calls;
};

static bool data_calls(void *arg)
{
	struct data_expect *e = arg;
	return e->d->calls >= e->calls;
}

static void test_data_watch(void **state)
{
	struct session_log s = { 0 };
	struct cdr_zk *zk = open_zk(&s);
	struct cdr_zk_data_watch *dw = NULL;
	struct data_log d = { 0 };
	struct data_expect e = { &d, 1 };
	struct answer a = { 0 };

	(void)state;
	assert_int_equal(do_create(zk, P("/dw/ep"), "{\"port\":1}", CDR_ZK_PARENTS, &a), 0);
	assert_int_equal(cdr_zk_data_watch_new(zk, P("/dw/ep"), on_data, &d, &dw), 0);
	assert_true(run_until(data_calls, &e, 5000));
	assert_int_equal(d.status, 0);
	assert_string_equal(d.data, "{\"port\":1}");

	assert_int_equal(do_set(zk, P("/dw/ep"), "{\"port\":2}", -1, &a), 0);
	e.calls = 2;
	assert_true(run_until(data_calls, &e, 5000));
	assert_string_equal(d.data, "{\"port\":2}");

	/* the same data again is not reported */
	assert_int_equal(do_set(zk, P("/dw/ep"), "{\"port\":2}", -1, &a), 0);
	assert_int_equal(do_set(zk, P("/dw/ep"), "{\"port\":3}", -1, &a), 0);
	e.calls = 3;
	assert_true(run_until(data_calls, &e, 5000));
	assert_string_equal(d.data, "{\"port\":3}");

	assert_int_equal(do_delete(zk, P("/dw/ep"), -1, &a), 0);
	e.calls = 4;
	assert_true(run_until(data_calls, &e, 5000));
	assert_int_equal(d.status, -ENOENT);

	assert_int_equal(do_create(zk, P("/dw/ep"), "back", 0, &a), 0);
	e.calls = 5;
	assert_true(run_until(data_calls, &e, 5000));
	assert_int_equal(d.status, 0);
	assert_string_equal(d.data, "back");

	/* a watch on a node that does not exist yet starts with -ENOENT */
	{
		struct cdr_zk_data_watch *dw2 = NULL;
		struct data_log d2 = { 0 };
		struct data_expect e2 = { &d2, 1 };
		assert_int_equal(cdr_zk_data_watch_new(zk, P("/dw/none"), on_data, &d2, &dw2), 0);
		assert_true(run_until(data_calls, &e2, 5000));
		assert_int_equal(d2.status, -ENOENT);
		assert_int_equal(do_create(zk, P("/dw/none"), "now", 0, &a), 0);
		e2.calls = 2;
		assert_true(run_until(data_calls, &e2, 5000));
		assert_string_equal(d2.data, "now");
		cdr_zk_data_watch_free(dw2);
	}

	cdr_zk_data_watch_free(dw);
	assert_int_equal(do_set(zk, P("/dw/ep"), "after", -1, &a), 0);
	assert_int_equal(do_get(zk, P("/dw/ep"), &a), 0);
	assert_int_equal(d.calls, 5); /* freed: not told */
	delete_tree(zk, P("/dw"));
	free(a.data);
	cdr_zk_free(zk);
}

/* ---- election ---- */

struct contender {
	const char *name;
	bool leader;
	int64_t epoch;
	int changes;
	struct session_log *s; /* for the trace */
};

static void on_leader(bool leader, int64_t epoch, void *arg)
{
	struct contender *c = arg;

	c->leader = leader;
	c->epoch = epoch;
	c->changes++;
	if (c->s)
		trace(c->s, leader ? 'l' : 'L');
}

static bool is_leader(void *arg)
{
	return ((struct contender *)arg)->leader;
}

static void test_election(void **state)
{
	struct session_log s1 = { 0 }, s2 = { 0 };
	struct cdr_zk *zk1 = open_zk(&s1), *zk2 = open_zk(&s2);
	struct cdr_zk_election *e1 = NULL, *e2 = NULL;
	struct contender c1 = { .name = "one" }, c2 = { .name = "two" };
	struct answer a = { 0 };
	bool later = false;
	int64_t epoch1;

	(void)state;
	assert_int_equal(cdr_zk_election_new(zk1, P("/election/p1/css"), "one", 3, on_leader, &c1, &e1), 0);
	assert_true(run_until(is_leader, &c1, 5000));
	epoch1 = c1.epoch;
	assert_true(epoch1 >= 0);
	assert_int_equal(cdr_zk_election_epoch(e1), epoch1);

	assert_int_equal(cdr_zk_election_new(zk2, P("/election/p1/css"), "two", 3, on_leader, &c2, &e2), 0);
	/* e2 joins behind e1 and stays a follower */
	run_until(is_true, &later, 1000);
	assert_true(c1.leader);
	assert_false(c2.leader);
	assert_int_equal(c2.changes, 0);
	assert_int_equal(do_children(zk1, P("/election/p1/css"), &a), 0);
	assert_int_equal(a.nchildren, 2);
	assert_false(cdr_zk_election_leader(e2));

	/* the node holds the contender's data */
	{
		char p[256];
		snprintf(p, sizeof(p), "%s/%s", P("/election/p1/css"), a.children[0]);
		assert_int_equal(do_get(zk1, p, &a), 0);
		assert_string_equal(a.data, "one");
	}

	/* the leader leaves: the other takes over with a larger epoch */
	cdr_zk_election_free(e1);
	assert_true(run_until(is_leader, &c2, 5000));
	assert_true(c2.epoch > epoch1);
	assert_int_equal(c1.changes, 1); /* free does not call back */

	/* a new contender behind e2; freeing the whole handle of the leader
	 * also hands over */
	c1 = (struct contender){ .name = "one-again" };
	assert_int_equal(cdr_zk_election_new(zk1, P("/election/p1/css"), NULL, 0, on_leader, &c1, &e1), 0);
	run_until(is_true, &later, 500);
	assert_false(c1.leader);
	cdr_zk_election_free(e2);
	cdr_zk_free(zk2);
	assert_true(run_until(is_leader, &c1, 10000));
	assert_true(c1.epoch > c2.epoch);

	cdr_zk_election_free(e1);
	delete_tree(zk1, P("/election"));
	free(a.data);
	cdr_zk_free(zk1);
}

/* The classic trick: a second client that takes over the session (same id
 * and password) and closes it. The first client's session is then gone. */
static void steal_and_close_session(struct cdr_zk *zk)
{
	struct cdr_zk_session sess;
	char id[24], pw[2 * sizeof(sess.passwd) + 1], tmo[16], log[64];
	int st;

	assert_int_equal(cdr_zk_session(zk, &sess), 0);
	snprintf(id, sizeof(id), "%llx", (unsigned long long)sess.id);
	for (size_t i = 0; i < sizeof(sess.passwd); i++)
		snprintf(pw + 2 * i, 3, "%02x", (unsigned char)sess.passwd[i]);
	snprintf(tmo, sizeof(tmo), "%u", sess.timeout_ms);
	snprintf(log, sizeof(log), "/tmp/zk_expire.%ld.log", (long)getpid());
	st = th_stop(NULL,
		     th_spawn((char *const[]){ CONFDR_BINARY_DIR "/zk_expire", (char *)hosts, id, pw, tmo, NULL }, log,
			      true),
		     0, 15000);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("zk_expire failed (wait status %d; see %s)", st, log);
	unlink(log);
}

struct expiry_wait {
	const struct session_log *s;
	int before;
};

static bool expired_since(void *arg)
{
	const struct expiry_wait *w = arg;

	return w->s->expired > w->before;
}

/* The trick races with the first client's own re-connection: when that
 * client takes its session back before the close arrives, the server refuses
 * the close (session moved) and nothing expires. Try again then, at most
 * three times; what the tests check after the expiry is unchanged. */
static void expire_session(struct cdr_zk *zk, struct session_log *s)
{
	struct expiry_wait w = { s, s->expired };

	for (int attempt = 1; attempt <= 3; attempt++) {
		steal_and_close_session(zk);
		if (run_until(expired_since, &w, 8000))
			return;
		print_message("session not expired by attempt %d (trace %.*s); again\n", attempt, (int)s->ntrace,
			      s->trace);
	}
	fail_msg("could not expire the session in 3 attempts (trace %.*s)", (int)s->ntrace, s->trace);
}

/* Digest authentication and ACLs (docs/zookeeper.md, Access): nodes of an
 * authenticated handle are its user's and read by all; another user, a wrong
 * password and nobody are refused their writes (-EACCES); an explicit ACL
 * gives what it says; and after a forced expiry the new session writes as
 * the user again (the login is added to every new handle). */
static void test_auth_and_acl(void **state)
{
	struct session_log s0 = { 0 }, sa = { 0 }, sb = { 0 }, sw = { 0 };
	struct cdr_zk *zk0 = open_zk(&s0), *za = open_zk_as(&sa, "alice", "alice-pw"),
		      *zb = open_zk_as(&sb, "bob", "bob-pw"), *zw = open_zk_as(&sw, "alice", "not-alice-pw");
	const struct cdr_zk_acl world_write[] = {
		{ CDR_ZK_PERM_ALL, "auth", "" },
		{ CDR_ZK_PERM_READ | CDR_ZK_PERM_WRITE, "world", "anyone" },
	};
	struct answer a = { 0 };
	struct cdr_zk_opts bad = { .hosts = hosts, .user = "al:ice", .password = "x" };
	struct cdr_zk *none = NULL;

	(void)state;
	assert_int_equal(cdr_zk_new(loop, &bad, &none), -EINVAL); /* ':' ends a digest user */
	bad.user = "alice";
	bad.password = NULL;
	assert_int_equal(cdr_zk_new(loop, &bad, &none), -EINVAL);
	assert_int_equal(do_create(zk0, P("/acl"), NULL, CDR_ZK_PARENTS, &a), 0); /* open: everybody's */
	assert_int_equal(do_create(za, P("/acl/a"), "1", 0, &a), 0);
	assert_int_equal(do_get(zk0, P("/acl/a"), &a), 0); /* read by all */
	assert_string_equal(a.data, "1");
	assert_int_equal(do_set(zb, P("/acl/a"), "2", -1, &a), -EACCES);
	assert_int_equal(do_set(zk0, P("/acl/a"), "2", -1, &a), -EACCES);
	assert_int_equal(do_set(zw, P("/acl/a"), "2", -1, &a), -EACCES); /* a wrong password: someone else */
	assert_int_equal(do_create(zb, P("/acl/a/x"), NULL, 0, &a), -EACCES);
	assert_int_equal(do_create(zk0, P("/acl/a/x"), NULL, 0, &a), -EACCES);
	assert_int_equal(do_set(za, P("/acl/a"), "3", -1, &a), 0);
	assert_int_equal(do_create(za, P("/acl/a/x"), NULL, 0, &a), 0);
	assert_int_equal(do_delete(zb, P("/acl/a/x"), -1, &a), -EACCES);
	assert_int_equal(do_get(zb, P("/acl/a"), &a), 0);
	assert_string_equal(a.data, "3");

	/* An explicit ACL: everybody may write, nobody but alice create under it. */
	a.done = false;
	assert_int_equal(cdr_zk_create_acl(za, P("/acl/w"), "w", 1, 0, world_write, 0, on_answer, &a), -EINVAL);
	assert_int_equal(cdr_zk_create_acl(za, P("/acl/w"), "w", 1, 0, world_write, 2, on_answer, &a), 0);
	wait_answer(&a);
	assert_int_equal(a.status, 0);
	assert_int_equal(do_set(zk0, P("/acl/w"), "w2", -1, &a), 0);
	assert_int_equal(do_create(zb, P("/acl/w/x"), NULL, 0, &a), -EACCES);

	/* A new session after an expiry logs in again. */
	expire_session(za, &sa);
	if (!run_until(is_true, &sa.up, 15000))
		fail_msg("no new session after the expiry (trace %.*s)", (int)sa.ntrace, sa.trace);
	assert_int_equal(do_set(za, P("/acl/a"), "4", -1, &a), 0);
	assert_int_equal(do_create(za, P("/acl/a/y"), NULL, 0, &a), 0);

	/* alice's children go by alice; the rest the teardown removes. */
	assert_int_equal(do_delete(za, P("/acl/a/x"), -1, &a), 0);
	assert_int_equal(do_delete(za, P("/acl/a/y"), -1, &a), 0);
	free(a.data);
	cdr_zk_free(zw);
	cdr_zk_free(zb);
	cdr_zk_free(za);
	cdr_zk_free(zk0);
}

struct expiry {
	struct contender *c1, *c2;
	struct cdr_zk_election *e1;
	struct session_log *s1;
};

static bool expiry_done(void *arg)
{
	struct expiry *x = arg;

	/* the other leads, the first was expired and has a new session */
	return x->c2->leader && x->s1->expired >= 1 && x->s1->up;
}

static void test_session_expiry(void **state)
{
	struct session_log s1 = { 0 }, s2 = { 0 };
	struct cdr_zk *zk1 = open_zk(&s1), *zk2 = open_zk(&s2);
	struct cdr_zk_election *e1 = NULL, *e2 = NULL;
	struct contender c1 = { .name = "one", .s = &s1 }, c2 = { .name = "two" };
	struct expiry x = { &c1, &c2, NULL, &s1 };
	struct answer a = { 0 };
	bool later = false;
	int64_t epoch1, old_id;
	struct cdr_zk_session sess;
	const char *L, *E, *C2;

	(void)state;
	assert_int_equal(cdr_zk_election_new(zk1, P("/election/p1/rms"), "one", 3, on_leader, &c1, &e1), 0);
	assert_true(run_until(is_leader, &c1, 5000));
	assert_int_equal(cdr_zk_election_new(zk2, P("/election/p1/rms"), "two", 3, on_leader, &c2, &e2), 0);
	run_until(is_true, &later, 500);
	assert_false(c2.leader);
	epoch1 = c1.epoch;
	assert_int_equal(cdr_zk_session(zk1, &sess), 0);
	old_id = sess.id;

	expire_session(zk1, &s1);
	x.e1 = e1;
	if (!run_until(expiry_done, &x, 30000))
		fail_msg("after the expiry: c1.leader=%d c2.leader=%d s1.expired=%d s1.up=%d trace=%.*s", c1.leader,
			 c2.leader, s1.expired, s1.up, (int)s1.ntrace, s1.trace);

	/* The first contender stopped leading, and was told so before its new
	 * session was reported: in its trace, 'L' comes before the last 'C'
	 * that follows the 'E'. */
	print_message("first handle's trace: %.*s (C connected, D disconnected, E expired, l/L leader yes/no)\n",
		      (int)s1.ntrace, s1.trace);
	assert_false(c1.leader);
	L = memchr(s1.trace, 'L', s1.ntrace);
	E = memchr(s1.trace, 'E', s1.ntrace);
	assert_non_null(L);
	assert_non_null(E);
	C2 = memchr(E, 'C', s1.ntrace - (size_t)(E - s1.trace));
	assert_non_null(C2);
	assert_true(L < C2);
	assert_int_equal(cdr_zk_election_epoch(e1), -1);

	/* The other contender leads with a larger epoch. */
	assert_true(c2.leader);
	assert_true(c2.epoch > epoch1);

	/* A new session, and the first re-joined as a follower: two nodes. */
	assert_int_equal(cdr_zk_session(zk1, &sess), 0);
	assert_true(sess.id != old_id);
	{
		bool settle = false;
		uint64_t deadline = cdr_now_ms() + 5000;
		do {
			run_until(is_true, &settle, 100);
			assert_int_equal(do_children(zk2, P("/election/p1/rms"), &a), 0);
		} while (a.nchildren != 2 && cdr_now_ms() < deadline);
		assert_int_equal(a.nchildren, 2);
	}
	assert_false(c1.leader);

	/* and takes over again when the other leaves */
	cdr_zk_election_free(e2);
	assert_true(run_until(is_leader, &c1, 5000));
	assert_true(c1.epoch > c2.epoch);

	cdr_zk_election_free(e1);
	delete_tree(zk2, P("/election"));
	free(a.data);
	cdr_zk_free(zk1);
	cdr_zk_free(zk2);
}

/* A data watch re-reads after a session expiry. */
static void test_data_watch_after_expiry(void **state)
{
	struct session_log s1 = { 0 }, s2 = { 0 };
	struct cdr_zk *zk1 = open_zk(&s1), *zk2 = open_zk(&s2);
	struct cdr_zk_data_watch *dw = NULL;
	struct data_log d = { 0 };
	struct data_expect e = { &d, 1 };
	struct answer a = { 0 };

	(void)state;
	assert_int_equal(do_create(zk2, P("/dwx/ep"), "v1", CDR_ZK_PARENTS, &a), 0);
	assert_int_equal(cdr_zk_data_watch_new(zk1, P("/dwx/ep"), on_data, &d, &dw), 0);
	assert_true(run_until(data_calls, &e, 5000));
	assert_string_equal(d.data, "v1");
	expire_session(zk1, &s1);
	/* changed while zk1 has no session: seen once the new one is up */
	assert_int_equal(do_set(zk2, P("/dwx/ep"), "v2", -1, &a), 0);
	e.calls = 2;
	if (!run_until(data_calls, &e, 30000))
		fail_msg("the data watch did not see the change after the expiry (trace %.*s)", (int)s1.ntrace,
			 s1.trace);
	assert_string_equal(d.data, "v2");
	assert_true(s1.expired >= 1);
	/* and keeps watching on the new session */
	assert_int_equal(do_set(zk2, P("/dwx/ep"), "v3", -1, &a), 0);
	e.calls = 3;
	assert_true(run_until(data_calls, &e, 5000));
	assert_string_equal(d.data, "v3");

	cdr_zk_data_watch_free(dw);
	delete_tree(zk2, P("/dwx"));
	free(a.data);
	cdr_zk_free(zk1);
	cdr_zk_free(zk2);
}

/* The topology written node by node (as confdrctl does) reads back equal,
 * under a chroot of the test's own. */
struct writer {
	struct cdr_zk *zk;
	int pending, failed;
};

static void on_written(const struct cdr_zk_result *r, void *arg)
{
	struct writer *w = arg;

	w->pending--;
	if (r->status)
		w->failed++;
}

static void write_node(const char *path, const char *json, void *arg)
{
	struct writer *w = arg;

	assert_int_equal(cdr_zk_create(w->zk, path, json, strlen(json), CDR_ZK_PARENTS, on_written, w), 0);
	w->pending++;
}

static bool none_pending(void *arg)
{
	return ((struct writer *)arg)->pending == 0;
}

struct fetched {
	bool done;
	int status;
	struct cdr_topology *t;
	char err[1024];
};

static void on_fetched(int status, struct cdr_topology *t, const char *err, void *arg)
{
	struct fetched *f = arg;

	f->status = status;
	f->t = t;
	snprintf(f->err, sizeof(f->err), "%s", err ? err : "");
	f->done = true;
}

static void test_topology_fetch(void **state)
{
	struct session_log s = { 0 };
	struct cdr_zk_opts o = { .hosts = hosts, .session_timeout_ms = 6000, .on_session = on_session, .arg = &s };
	struct cdr_topology *t = NULL;
	struct fetched f = { 0 };
	struct writer w = { 0 };
	struct cdr_zk *zk = NULL, *root;
	char chroot[256], err[1024], *d1, *d2;

	(void)state;
	snprintf(chroot, sizeof(chroot), "%s%s-topo", chroot_path, base);
	o.chroot = chroot;
	assert_int_equal(cdr_zk_new(loop, &o, &zk), 0);
	assert_true(run_until(is_true, &s.up, 10000));

	/* nothing loaded yet */
	assert_int_equal(cdr_topology_fetch(zk, on_fetched, &f), 0);
	assert_true(run_until(is_true, &f.done, 10000));
	assert_int_equal(f.status, -ENOENT);
	assert_non_null(strstr(f.err, "no topology"));

	assert_int_equal(cdr_topology_load_files(CONFDR_SOURCE_DIR "/tests/fixtures/topology-good.json",
						 CONFDR_SOURCE_DIR "/tests/fixtures/topology-good-endpoints.json", &t,
						 err, sizeof(err)),
			 0);
	w.zk = zk;
	assert_int_equal(cdr_topology_nodes(t, write_node, &w), 0);
	assert_true(run_until(none_pending, &w, 10000));
	assert_int_equal(w.failed, 0);

	memset(&f, 0, sizeof(f));
	assert_int_equal(cdr_topology_fetch(zk, on_fetched, &f), 0);
	assert_true(run_until(is_true, &f.done, 10000));
	if (f.status)
		fail_msg("fetch: %s", f.err);
	d1 = cdr_topology_dump(t);
	d2 = cdr_topology_dump(f.t);
	assert_string_equal(d1, d2);
	assert_string_equal(cdr_topology_main_endpoint(f.t, "p2", CDR_SVC_REDIS)->host, "127.0.0.1");
	free(d1);
	free(d2);
	cdr_topology_free(f.t);

	/* a node that breaks the rules is refused with its name */
	{
		struct answer a = { 0 };
		const char *bad = "{\"platform\": \"p9\"}";
		assert_int_equal(do_set(zk, "/topology/rooms/p1-r2", bad, -1, &a), 0);
		free(a.data);
	}
	memset(&f, 0, sizeof(f));
	assert_int_equal(cdr_topology_fetch(zk, on_fetched, &f), 0);
	assert_true(run_until(is_true, &f.done, 10000));
	assert_int_equal(f.status, -EINVAL);
	assert_null(f.t);
	assert_non_null(strstr(f.err, "room \"p1-r2\": unknown platform \"p9\""));

	cdr_topology_free(t);
	cdr_zk_free(zk);
	/* remove the test chroot through a handle on the usual one */
	memset(&s, 0, sizeof(s));
	root = open_zk(&s);
	snprintf(chroot, sizeof(chroot), "%s-topo", base);
	delete_tree(root, chroot);
	cdr_zk_free(root);
}

static int setup(void **state)
{
	(void)state;
	hosts = getenv("CONFDR_ZK");
	chroot_path = getenv("CONFDR_ZK_CHROOT");
	if (!hosts || !*hosts || !chroot_path || !*chroot_path) {
		fprintf(stderr,
			"test_zk: CONFDR_ZK and CONFDR_ZK_CHROOT must be set (eval \"$(deploy/sandbox.sh env)\")\n");
		return -1;
	}
	snprintf(base, sizeof(base), "/test-zk-%d", (int)getpid());
	return cdr_loop_new(&loop);
}

static int teardown(void **state)
{
	struct session_log s = { 0 };
	struct cdr_zk *zk;

	(void)state;
	if (!loop)
		return 0;
	zk = open_zk(&s);
	delete_tree(zk, base);
	cdr_zk_free(zk);
	cdr_loop_free(loop);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests_and_watches), cmocka_unit_test(test_free_cancels),
		cmocka_unit_test(test_data_watch),	     cmocka_unit_test(test_election),
		cmocka_unit_test(test_session_expiry),	     cmocka_unit_test(test_data_watch_after_expiry),
		cmocka_unit_test(test_topology_fetch),	     cmocka_unit_test(test_auth_and_acl),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
