/* The AMQP module against a real RabbitMQ (CONFDR_P1_AMQP_URL, the vhost
 * CONFDR_P1_VHOST): publish/confirm/consume/ack, nack with requeue and
 * dead-lettering, returns of unroutable messages, fanout subscriptions,
 * request/reply and its timeout, the design's topology, cancellation at free,
 * and a broker restart in the middle of a steady stream of persistent
 * messages (CONFDR_SANDBOX server stop|start rabbitmq): ctest runs it with a
 * private broker (tests/ns.sh --private rabbitmq) that no other test uses.
 *
 * Every wait runs the loop under a deadline. The test's own queues and
 * exchanges are named test.mq.* and deleted at the start of each test. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <confdr/loop.h>
#include <confdr/mq.h>

#include "harness.h"

static const char *need_env(const char *name)
{
	const char *v = th_env(name);

	if (!v)
		fail_msg("%s is not set: run the sandbox (deploy/sandbox.sh up; eval \"$(deploy/sandbox.sh env)\")",
			 name);
	return v;
}

/* ---------------------------------------------------------------- the loop, a plain client (tests/harness.h) */

/* Runs the loop until pred(arg) holds (true) or ms pass (false). */
static bool run_until(struct cdr_loop *loop, bool (*pred)(void *), void *arg, unsigned ms)
{
	return th_run_until(loop, pred, arg, ms);
}

/* Runs the loop for ms. */
static void run_for(struct cdr_loop *loop, unsigned ms)
{
	th_run_for(loop, ms);
}

/* A second, plain client for checks. */
static amqp_connection_state_t admin_open(void)
{
	amqp_connection_state_t c = th_admin_open(need_env("CONFDR_P1_AMQP_URL"));

	assert_non_null(c);
	return c;
}

static void admin_close(amqp_connection_state_t c)
{
	th_admin_close(c);
}

static void admin_delete(const char *const *queues, const char *const *exchanges)
{
	amqp_connection_state_t c = admin_open();

	for (; queues && *queues; queues++) {
		amqp_queue_delete(c, 1, amqp_cstring_bytes(*queues), 0, 0);
		assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	}
	for (; exchanges && *exchanges; exchanges++) {
		amqp_exchange_delete(c, 1, amqp_cstring_bytes(*exchanges), 0);
		assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	}
	admin_close(c);
}

/* Messages ready in queue, or -1 if it does not exist. */
static long admin_queue_count(const char *queue)
{
	amqp_connection_state_t c = admin_open();
	amqp_queue_declare_ok_t *ok = amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
	long n = ok && amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL ? (long)ok->message_count : -1;

	if (n < 0)
		amqp_destroy_connection(c);
	else
		admin_close(c);
	return n;
}

static bool admin_exchange_exists(const char *exchange)
{
	amqp_connection_state_t c = admin_open();
	bool ok;

	amqp_exchange_declare(c, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes("direct"), 1, 0, 0, 0,
			      amqp_empty_table);
	ok = amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
	if (ok)
		admin_close(c);
	else
		amqp_destroy_connection(c);
	return ok;
}

/* ---------------------------------------------------------------- common context */

#define MAXMSG 2100

struct ctx {
	struct cdr_loop *loop;
	struct cdr_mq *mq, *mq2;
	int ups, downs, downs_after_up, ups_after_down;
	char last_why[512], down_why[512];
	/* confirms */
	int confirms, confirm_status[MAXMSG];
	/* deliveries */
	int delivered;
	struct cdr_mq_delivery *held[MAXMSG];
	int seen[MAXMSG];
	int redelivered;
	uint64_t last_delivery_ms;
	/* rpc */
	int replies, reply_status;
	char reply_body[128], reply_corr[128];
};

static struct ctx C;

static void on_state(bool up, const char *why, void *arg)
{
	struct ctx *c = arg;

	snprintf(c->last_why, sizeof(c->last_why), "%s", why);
	fprintf(stderr, "# on_state %s: %s\n", up ? "up" : "down", why);
	if (up) {
		if (c->downs_after_up)
			c->ups_after_down++;
		c->ups++;
	} else {
		snprintf(c->down_why, sizeof(c->down_why), "%s", why);
		c->downs++;
		if (c->ups)
			c->downs_after_up++;
	}
}

static struct cdr_mq *new_mq(const char *name)
{
	struct cdr_mq_opts o = {
		.url = need_env("CONFDR_P1_AMQP_URL"),
		.tls_ca = th_env("CONFDR_TLS_CA"),
		.name = name,
		.heartbeat_s = 5,
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 1000,
		.prefetch = 500,
		.on_state = on_state,
		.arg = &C,
	};
	struct cdr_mq *mq = NULL;

	assert_int_equal(cdr_mq_new(C.loop, &o, &mq), 0);
	assert_non_null(mq);
	return mq;
}

static int setup(void **state)
{
	memset(&C, 0, sizeof(C));
	for (int i = 0; i < MAXMSG; i++)
		C.confirm_status[i] = 1; /* pending */
	assert_int_equal(cdr_loop_new(&C.loop), 0);
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < MAXMSG; i++)
		if (C.held[i])
			cdr_mq_ack(C.held[i]);
	C.mq = cdr_mq_free(C.mq);
	C.mq2 = cdr_mq_free(C.mq2);
	C.loop = cdr_loop_free(C.loop);
	return 0;
}

static bool is_up(void *arg)
{
	return cdr_mq_connected(arg);
}

static void on_confirm(int status, void *arg)
{
	int i = (int)(intptr_t)arg;

	assert_true(i >= 0 && i < MAXMSG);
	assert_int_equal(C.confirm_status[i], 1); /* exactly once */
	C.confirm_status[i] = status;
	C.confirms++;
}

static int msg_index(const struct cdr_mq_delivery *d)
{
	char *end;
	long n;

	assert_non_null(d->message_id);
	n = strtol(d->message_id, &end, 10);
	assert_true(*end == '\0' && n >= 0 && n < MAXMSG);
	return (int)n;
}

/* Keeps deliveries for the test to settle. */
static void on_hold(struct cdr_mq_delivery *d, void *arg)
{
	int i = msg_index(d);

	C.delivered++;
	C.seen[i]++;
	if (d->redelivered)
		C.redelivered++;
	if (C.held[i])
		cdr_mq_ack(C.held[i]);
	C.held[i] = d;
	C.last_delivery_ms = cdr_now_ms();
}

static void on_ack_at_once(struct cdr_mq_delivery *d, void *arg)
{
	int i = msg_index(d);

	C.delivered++;
	C.seen[i]++;
	C.last_delivery_ms = cdr_now_ms();
	assert_int_equal(cdr_mq_ack(d), 0);
}

static int publish_n(struct cdr_mq *mq, const char *ex, const char *key, int i, bool persistent, bool mandatory)
{
	char id[16], body[64];
	struct cdr_mq_props p = { .message_id = id, .persistent = persistent, .mandatory = mandatory };

	snprintf(id, sizeof(id), "%d", i);
	snprintf(body, sizeof(body), "{\"n\": %d}", i);
	return cdr_mq_publish(mq, ex, key, &p, body, strlen(body), on_confirm, (void *)(intptr_t)i);
}

static int want;
static bool confirms_done(void *arg)
{
	return C.confirms >= want;
}
static bool delivered_done(void *arg)
{
	return C.delivered >= want;
}
static bool confirms_and_deliveries_done(void *arg)
{
	return C.confirms >= want && C.delivered >= want;
}

/* ---------------------------------------------------------------- tests */

static void test_bad_url_refused(void **state)
{
	struct cdr_mq_opts o = { .url = "amqp://confdr:confdr@127.0.0.1:notaport/p1" };
	struct cdr_mq *mq = NULL;
	char err[128];

	assert_int_equal(cdr_mq_new(C.loop, &o, &mq), -EINVAL);
	assert_null(mq);
	o.url = "amqps://confdr:confdr@127.0.0.1/p1";
	assert_int_equal(cdr_mq_new(C.loop, &o, &mq), -EINVAL);
	o.url = "amqp://h/p1/extra";
	assert_int_equal(cdr_mq_url_parse(o.url, &(struct cdr_mq_url){ 0 }, err, sizeof(err)), -EINVAL);
	assert_int_equal(cdr_mq_new(C.loop, &o, &mq), -EINVAL);
	assert_null(mq);
	/* and the sandbox URL is good */
	struct cdr_mq_url u;
	assert_int_equal(cdr_mq_url_parse(need_env("CONFDR_P1_AMQP_URL"), &u, err, sizeof(err)), 0);
	assert_string_equal(u.vhost, need_env("CONFDR_P1_VHOST"));
	cdr_mq_url_clear(&u);
}

static void test_publish_consume_ack(void **state)
{
	static const char *const qs[] = { "test.mq.basic", NULL }, *const exs[] = { "test.mq.ex", NULL };
	struct cdr_mq_props p = { .correlation_id = "corr-1",
				  .reply_to = "somewhere",
				  .message_id = "0",
				  .type = "test_mq_basic_ntf",
				  .persistent = true };
	const char *body = "{\"hello\": \"world\"}";

	admin_delete(qs, exs);
	C.mq = new_mq("test-basic");
	assert_int_equal(cdr_mq_declare_exchange(C.mq, "test.mq.ex", "direct", true), 0);
	assert_int_equal(cdr_mq_declare_queue(C.mq, "test.mq.basic", true, NULL), 0);
	assert_int_equal(cdr_mq_bind(C.mq, "test.mq.basic", "test.mq.ex", "k"), 0);
	assert_int_equal(cdr_mq_consume(C.mq, "test.mq.basic", on_hold, NULL), 0);
	/* Queued before the connection is up: must still go out. */
	assert_int_equal(cdr_mq_publish(C.mq, "test.mq.ex", "k", &p, body, strlen(body), on_confirm, (void *)0), 0);
	for (int i = 1; i < 10; i++)
		assert_int_equal(publish_n(C.mq, "test.mq.ex", "k", i, i % 2, false), 0);
	want = 10;
	assert_true(run_until(C.loop, confirms_and_deliveries_done, NULL, 15000));
	assert_true(cdr_mq_connected(C.mq));
	for (int i = 0; i < 10; i++) {
		assert_int_equal(C.confirm_status[i], 0);
		assert_int_equal(C.seen[i], 1);
	}
	struct cdr_mq_delivery *d = C.held[0];
	assert_string_equal(d->exchange, "test.mq.ex");
	assert_string_equal(d->routing_key, "k");
	assert_int_equal(d->len, strlen(body));
	assert_memory_equal(d->body, body, d->len);
	assert_int_equal(((const char *)d->body)[d->len], '\0');
	assert_string_equal(d->correlation_id, "corr-1");
	assert_string_equal(d->reply_to, "somewhere");
	assert_string_equal(d->type, "test_mq_basic_ntf");
	assert_string_equal(d->content_type, "application/json");
	assert_false(d->redelivered);
	assert_null(C.held[1]->correlation_id);
	assert_null(C.held[1]->reply_to);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(cdr_mq_ack(C.held[i]), 0);
		C.held[i] = NULL;
	}
	/* The acks reach the broker: nothing is left, nothing comes back. */
	run_for(C.loop, 300);
	C.mq = cdr_mq_free(C.mq);
	assert_int_equal(admin_queue_count("test.mq.basic"), 0);
	assert_int_equal(C.delivered, 10);
}

static void test_unroutable_mandatory_fails(void **state)
{
	static const char *const exs[] = { "test.mq.ex", NULL };

	admin_delete(NULL, exs);
	C.mq = new_mq("test-return");
	assert_int_equal(cdr_mq_declare_exchange(C.mq, "test.mq.ex", "direct", false), 0);
	assert_int_equal(publish_n(C.mq, "test.mq.ex", "nobody", 0, true, true), 0);
	assert_int_equal(publish_n(C.mq, "test.mq.ex", "nobody", 1, true, false), 0);
	assert_int_equal(publish_n(C.mq, "test.mq.ex", "nobody", 2, false, true), 0);
	want = 3;
	assert_true(run_until(C.loop, confirms_done, NULL, 15000));
	assert_int_equal(C.confirm_status[0], -EIO); /* returned */
	assert_int_equal(C.confirm_status[1], 0);    /* not mandatory: dropped by the broker, acked */
	assert_int_equal(C.confirm_status[2], -EIO);
	/* A missing exchange closes the channel: that message fails, the
	 * handle re-connects and the others still go through. */
	assert_int_equal(publish_n(C.mq, "test.mq.no-such-ex", "k", 3, true, false), 0);
	assert_int_equal(publish_n(C.mq, "test.mq.ex", "nobody", 4, true, false), 0);
	want = 5;
	assert_true(run_until(C.loop, confirms_done, NULL, 15000));
	assert_int_equal(C.confirm_status[3], -EIO);
	assert_int_equal(C.confirm_status[4], 0);
	assert_true(run_until(C.loop, is_up, C.mq, 15000));
	/* too large, and bad arguments, are refused at once */
	static char big[5 * 1024 * 1024];
	assert_int_equal(cdr_mq_publish(C.mq, "test.mq.ex", "k", NULL, big, sizeof(big), NULL, NULL), -EMSGSIZE);
	assert_int_equal(cdr_mq_publish(C.mq, NULL, "k", NULL, "x", 1, NULL, NULL), -EINVAL);
	assert_int_equal(C.confirms, 5);
}

static void test_nack_requeue_and_dead_letter(void **state)
{
	static const char *const qs[] = { "test.mq.work", "test.mq.dead", NULL }, *const exs[] = { "test.mq.dlx",
												   NULL };

	admin_delete(qs, exs);
	C.mq = new_mq("test-nack");
	assert_int_equal(cdr_mq_declare_exchange(C.mq, "test.mq.dlx", "fanout", true), 0);
	assert_int_equal(cdr_mq_declare_queue(C.mq, "test.mq.dead", true, NULL), 0);
	assert_int_equal(cdr_mq_bind(C.mq, "test.mq.dead", "test.mq.dlx", ""), 0);
	assert_int_equal(cdr_mq_declare_queue(C.mq, "test.mq.work", true, "test.mq.dlx"), 0);
	assert_int_equal(cdr_mq_consume(C.mq, "test.mq.work", on_hold, NULL), 0);
	assert_int_equal(publish_n(C.mq, "", "test.mq.work", 0, true, true), 0);
	assert_int_equal(publish_n(C.mq, "", "test.mq.work", 1, true, true), 0);
	want = 2;
	assert_true(run_until(C.loop, confirms_and_deliveries_done, NULL, 15000));
	assert_int_equal(C.confirm_status[0], 0);
	assert_int_equal(C.confirm_status[1], 0);
	assert_false(C.held[0]->redelivered);

	/* 0: requeued, comes back marked redelivered. 1: dead-lettered. */
	struct cdr_mq_delivery *d0 = C.held[0];
	C.held[0] = NULL;
	assert_int_equal(cdr_mq_nack(d0, true), 0);
	assert_int_equal(cdr_mq_nack(C.held[1], false), 0);
	C.held[1] = NULL;
	want = 3;
	assert_true(run_until(C.loop, delivered_done, NULL, 10000));
	assert_int_equal(C.seen[0], 2);
	assert_non_null(C.held[0]);
	assert_true(C.held[0]->redelivered);
	assert_int_equal(C.seen[1], 1);
	assert_int_equal(cdr_mq_ack(C.held[0]), 0);
	C.held[0] = NULL;
	run_for(C.loop, 300);
	C.mq = cdr_mq_free(C.mq);
	assert_int_equal(admin_queue_count("test.mq.work"), 0);
	assert_int_equal(admin_queue_count("test.mq.dead"), 1);
}

/* A delivery held across a re-connection: its ack is dropped, the broker
 * delivers the message again (redelivered) to the re-issued consumer. The
 * re-connection is forced by publishing to a missing exchange. */
static void test_ack_from_older_connection_is_dropped(void **state)
{
	static const char *const qs[] = { "test.mq.hold", NULL };

	admin_delete(qs, NULL);
	C.mq = new_mq("test-hold");
	assert_int_equal(cdr_mq_declare_queue(C.mq, "test.mq.hold", true, NULL), 0);
	assert_int_equal(cdr_mq_consume(C.mq, "test.mq.hold", on_hold, NULL), 0);
	assert_int_equal(publish_n(C.mq, "", "test.mq.hold", 0, true, true), 0);
	want = 1;
	assert_true(run_until(C.loop, confirms_and_deliveries_done, NULL, 15000));
	struct cdr_mq_delivery *old = C.held[0];
	C.held[0] = NULL;
	assert_false(old->redelivered);

	assert_int_equal(publish_n(C.mq, "test.mq.no-such-ex", "k", 1, false, false), 0);
	want = 2;
	assert_true(run_until(C.loop, delivered_done, NULL, 15000));
	assert_int_equal(C.confirm_status[1], -EIO);
	assert_true(C.downs_after_up >= 1);
	assert_true(C.ups_after_down >= 1);
	assert_int_equal(C.seen[0], 2);
	assert_true(C.held[0]->redelivered);
	assert_int_equal(cdr_mq_ack(old), 0); /* dropped: another connection's tag */
	run_for(C.loop, 300);
	assert_true(cdr_mq_connected(C.mq)); /* a stale tag would have closed the channel */
	assert_int_equal(C.ups, 2);
	assert_int_equal(cdr_mq_ack(C.held[0]), 0);
	C.held[0] = NULL;
	run_for(C.loop, 300);
	C.mq = cdr_mq_free(C.mq);
	assert_int_equal(admin_queue_count("test.mq.hold"), 0);
	admin_delete(qs, NULL);
}

/* A declaration the broker refuses is reported, dropped, and does not stop
 * the handle (nor come back after the re-connection). */
static void test_refused_declaration_is_dropped(void **state)
{
	static const char *const qs[] = { "test.mq.pre", NULL };

	admin_delete(qs, NULL);
	C.mq = new_mq("test-refused");
	assert_int_equal(cdr_mq_declare_queue(C.mq, "test.mq.pre", false, NULL), 0);
	assert_int_equal(cdr_mq_declare_queue(C.mq, "test.mq.pre", true, NULL), 0); /* other arguments: 406 */
	assert_int_equal(publish_n(C.mq, "", "test.mq.pre", 0, false, true), 0);
	want = 1;
	assert_true(run_until(C.loop, confirms_done, NULL, 15000));
	assert_int_equal(C.confirm_status[0], 0);
	assert_true(C.downs >= 1);
	if (!strstr(C.down_why, "declare queue test.mq.pre: 406 PRECONDITION_FAILED"))
		fail_msg("down reason: %s", C.down_why);
	assert_true(run_until(C.loop, is_up, C.mq, 15000));
	run_for(C.loop, 500);
	assert_true(cdr_mq_connected(C.mq));
	assert_int_equal(C.downs, 1); /* once, not again after the re-connection */
	assert_int_equal(admin_queue_count("test.mq.pre"), 1);
	admin_delete(qs, NULL);
}

/* ---- request/reply */

static void on_request(struct cdr_mq_delivery *d, void *arg)
{
	struct cdr_mq *responder = arg;
	char body[128];

	assert_non_null(d->reply_to);
	assert_non_null(d->correlation_id);
	/* the delivery mode told back: 2 persistent, 1 transient */
	snprintf(body, sizeof(body), "pong:%.*s%s", (int)d->len, (const char *)d->body,
		 d->delivery_mode == 2	 ? ""
		 : d->delivery_mode == 1 ? "/transient"
					 : "/no-mode");
	assert_int_equal(cdr_mq_reply(responder, d, body, strlen(body), NULL, NULL), 0);
	assert_int_equal(cdr_mq_ack(d), 0);
}

static void on_reply(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	C.replies++;
	C.reply_status = status;
	if (reply) {
		snprintf(C.reply_body, sizeof(C.reply_body), "%.*s", (int)reply->len, (const char *)reply->body);
		snprintf(C.reply_corr, sizeof(C.reply_corr), "%s", reply->correlation_id ? reply->correlation_id : "");
	} else {
		C.reply_body[0] = C.reply_corr[0] = '\0';
	}
}

static bool got_reply(void *arg)
{
	return C.replies >= want;
}

static void test_request_reply_and_timeout(void **state)
{
	static const char *const qs[] = { "test.mq.rpc", "test.mq.rpc.silent", NULL };
	uint64_t t0;

	admin_delete(qs, NULL);
	C.mq = new_mq("test-rpc-client");
	C.mq2 = new_mq("test-rpc-server");
	assert_int_equal(cdr_mq_declare_queue(C.mq2, "test.mq.rpc", false, NULL), 0);
	assert_int_equal(cdr_mq_declare_queue(C.mq2, "test.mq.rpc.silent", false, NULL), 0);
	assert_int_equal(cdr_mq_consume(C.mq2, "test.mq.rpc", on_request, C.mq2), 0);
	assert_true(run_until(C.loop, is_up, C.mq2, 15000));
	assert_true(run_until(C.loop, is_up, C.mq, 15000));
	run_for(C.loop, 200); /* the responder's consume is issued after "up" */

	want = 1;
	assert_int_equal(cdr_mq_request(C.mq, "", "test.mq.rpc", "ping", 4, 5000, on_reply, NULL), 0);
	assert_true(run_until(C.loop, got_reply, NULL, 10000));
	assert_int_equal(C.reply_status, 0);
	assert_string_equal(C.reply_body, "pong:ping");
	assert_true(strlen(C.reply_corr) > 0);
	/* the same, not persistent (css's requests to rms) */
	want = 2;
	assert_int_equal(cdr_mq_request_transient(C.mq, "", "test.mq.rpc", "ping", 4, 5000, on_reply, NULL), 0);
	assert_true(run_until(C.loop, got_reply, NULL, 10000));
	assert_int_equal(C.reply_status, 0);
	assert_string_equal(C.reply_body, "pong:ping/transient");

	/* Nobody answers: -ETIMEDOUT after ~300 ms, once. */
	want = 3;
	t0 = cdr_now_ms();
	assert_int_equal(cdr_mq_request(C.mq, "", "test.mq.rpc.silent", "ping", 4, 300, on_reply, NULL), 0);
	assert_true(run_until(C.loop, got_reply, NULL, 5000));
	assert_int_equal(C.reply_status, -ETIMEDOUT);
	assert_true(cdr_now_ms() - t0 >= 290);
	run_for(C.loop, 300);
	assert_int_equal(C.replies, 3);

	/* No such queue: the mandatory request is returned: -EIO at once. */
	want = 4;
	assert_int_equal(cdr_mq_request(C.mq, "", "test.mq.rpc.nobody", "ping", 4, 5000, on_reply, NULL), 0);
	assert_true(run_until(C.loop, got_reply, NULL, 5000));
	assert_int_equal(C.reply_status, -EIO);

	/* Still pending at free: -ECANCELED. */
	assert_int_equal(cdr_mq_request(C.mq, "", "test.mq.rpc.silent", "ping", 4, 60000, on_reply, NULL), 0);
	C.mq = cdr_mq_free(C.mq);
	assert_int_equal(C.replies, 5);
	assert_int_equal(C.reply_status, -ECANCELED);
}

/* ---- fanout subscription */

static unsigned notes_two; /* deliveries of the body "two" */

static void on_note(struct cdr_mq_delivery *d, void *arg)
{
	C.delivered++;
	if (d->len == 3 && !memcmp(d->body, "two", 3))
		notes_two++;
	snprintf(C.reply_body, sizeof(C.reply_body), "%.*s", (int)d->len, (const char *)d->body);
	assert_int_equal(cdr_mq_ack(d), 0);
}

static bool two_notes(void *arg)
{
	(void)arg;
	return notes_two >= 2;
}

static bool got_note(void *arg)
{
	return C.delivered > 0;
}

static void test_subscribe_fanout(void **state)
{
	static const char *const exs[] = { "test.mq.fan", NULL };

	admin_delete(NULL, exs);
	C.mq = new_mq("test-sub");
	assert_int_equal(cdr_mq_declare_exchange(C.mq, "test.mq.fan", "fanout", false), 0);
	assert_int_equal(cdr_mq_subscribe(C.mq, "test.mq.fan", "", on_note, NULL), 0);
	assert_int_equal(cdr_mq_subscribe(C.mq, "test.mq.fan", "", on_note, NULL), 0);
	/* Notifications sent before the subscription is bound are missed: send
	 * until one arrives, then check that both subscriptions got it. */
	for (int i = 0; i < 50 && !C.delivered; i++) {
		assert_int_equal(cdr_mq_publish(C.mq, "test.mq.fan", "", NULL, "note", 4, NULL, NULL), 0);
		run_until(C.loop, got_note, NULL, 200);
	}
	assert_true(C.delivered > 0);
	assert_string_equal(C.reply_body, "note");
	/* an earlier "note" may still come to the other subscription: only
	 * "two" is counted */
	notes_two = 0;
	assert_int_equal(cdr_mq_publish(C.mq, "test.mq.fan", "", NULL, "two", 3, NULL, NULL), 0);
	run_until(C.loop, two_notes, NULL, 10000);
	run_for(C.loop, 300); /* and no third */
	assert_int_equal(notes_two, 2);
}

/* ---- design topology */

static void test_declare_design(void **state)
{
	static const char *const queues[] = { "mau.conf.q", "mau.cmu.q", "rms.req.q",	  "rms.res.q",
					      "pms.req.q",  "bmc.cdr.q", "confdr.dead.q", NULL };
	static const char *const exchanges[] = { "mau.cmcmu.ex",   "cmu.mau.ex", "rms.ntf.ex",	 "pms.ntf.ex",
						 "modb.notify.ex", "upu.ntf.ex", "cdr.alarm.ex", "cm.ntf.ex",
						 "confdr.dlx",	   NULL };

	C.mq = new_mq("test-design");
	assert_int_equal(cdr_mq_declare_design(C.mq), 0);
	assert_true(run_until(C.loop, is_up, C.mq, 15000));
	run_for(C.loop, 300);
	if (C.downs)
		fail_msg("the design topology was refused: %s", C.last_why);
	for (const char *const *q = queues; *q; q++)
		if (admin_queue_count(*q) < 0)
			fail_msg("queue %s missing", *q);
	for (const char *const *e = exchanges; *e; e++)
		if (!admin_exchange_exists(*e))
			fail_msg("exchange %s missing", *e);
	/* mau.cmu.q receives what MCUs publish to cmu.mau.ex with any key (a
	 * message of our own, consumed back so the queue stays as it was). */
}

/* ---- no broker at all */

static void test_unreachable_broker_then_free(void **state)
{
	struct cdr_mq_opts o = { .url = "amqp://confdr:confdr@127.0.0.1:1/p1",
				 .name = "test-nobroker",
				 .reconnect_min_ms = 50,
				 .reconnect_max_ms = 200,
				 .on_state = on_state,
				 .arg = &C };

	assert_int_equal(cdr_mq_new(C.loop, &o, &C.mq), 0);
	assert_int_equal(publish_n(C.mq, "", "test.mq.none", 0, true, false), 0);
	want = 5;
	assert_int_equal(cdr_mq_request(C.mq, "", "test.mq.none", "x", 1, 60000, on_reply, NULL), 0);
	run_for(C.loop, 500);
	assert_true(C.downs >= 1);
	assert_int_equal(C.ups, 0);
	assert_false(cdr_mq_connected(C.mq));
	assert_non_null(strstr(C.last_why, "connect"));
	assert_int_equal(C.confirms, 0);
	C.mq = cdr_mq_free(C.mq);
	assert_int_equal(C.confirms, 1);
	assert_int_equal(C.confirm_status[0], -ECANCELED);
	assert_int_equal(C.replies, 1);
	assert_int_equal(C.reply_status, -ECANCELED);
}

/* ---- the broker restarts under a steady stream */

#define STREAM_N 2000
#define STREAM_Q "test.mq.durable"

struct stream {
	struct cdr_timer *timer;
	int next;
	int rejected;
	pthread_t chaos;
	bool chaos_started, chaos_done;
	int stop_rc, start_rc;
};

static struct stream S;

static void on_chaos_done(void *arg)
{
	S.chaos_done = true;
}

static void *chaos_main(void *arg)
{
	const char *sb = need_env("CONFDR_SANDBOX");
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "timeout 120 '%s' server stop rabbitmq", sb);
	fprintf(stderr, "# %s\n", cmd);
	S.stop_rc = system(cmd);
	sleep(2);
	snprintf(cmd, sizeof(cmd), "timeout 120 '%s' server start rabbitmq", sb);
	fprintf(stderr, "# %s\n", cmd);
	S.start_rc = system(cmd);
	cdr_loop_post(C.loop, on_chaos_done, NULL);
	return NULL;
}

static void on_stream_tick(void *arg)
{
	if (S.next < STREAM_N) {
		int r = publish_n(C.mq, "", STREAM_Q, S.next, true, true);
		if (r == 0)
			S.next++;
		else
			S.rejected++; /* -ENOBUFS: try again on the next tick */
	}
	if (S.next == 400 && !S.chaos_started && cdr_mq_connected(C.mq)) {
		S.chaos_started = true;
		assert_int_equal(pthread_create(&S.chaos, NULL, chaos_main, NULL), 0);
	}
}

static bool stream_done(void *arg)
{
	return S.chaos_done && S.next == STREAM_N && C.confirms == STREAM_N && cdr_mq_connected(C.mq);
}

static bool drained(void *arg)
{
	int distinct = 0;

	for (int i = 0; i < STREAM_N; i++)
		distinct += C.seen[i] > 0;
	/* Everything there, and nothing more for a while (duplicates). */
	return distinct == STREAM_N && cdr_now_ms() - C.last_delivery_ms > 1000;
}

static void test_reconnect_keeps_confirmed_messages(void **state)
{
	static const char *const qs[] = { STREAM_Q, NULL };
	int ok = 0, failed = 0, missing = 0, dups = 0;

	need_env("CONFDR_SANDBOX");
	memset(&S, 0, sizeof(S));
	admin_delete(qs, NULL);
	C.mq = new_mq("test-reconnect");
	assert_int_equal(cdr_mq_declare_queue(C.mq, STREAM_Q, true, NULL), 0);
	assert_true(run_until(C.loop, is_up, C.mq, 15000));
	assert_int_equal(C.ups, 1);

	/* ~2000 messages at one per 5 ms: ~10 s, with the broker stopped for a
	 * few seconds in the middle. */
	assert_int_equal(cdr_timer_new(C.loop, on_stream_tick, NULL, &S.timer), 0);
	cdr_timer_start(S.timer, 5, true);
	bool done = run_until(C.loop, stream_done, NULL, 240000);
	cdr_timer_free(S.timer);
	if (S.chaos_started)
		pthread_join(S.chaos, NULL);
	cdr_loop_flush(C.loop);
	assert_true(S.chaos_started);
	assert_int_equal(S.stop_rc, 0);
	assert_int_equal(S.start_rc, 0);
	fprintf(stderr, "# published %d, confirms %d, ups %d, downs after up %d, ups after down %d, -ENOBUFS %d\n",
		S.next, C.confirms, C.ups, C.downs_after_up, C.ups_after_down, S.rejected);
	assert_true(done);
	/* The same handle saw the broker go and come back. */
	assert_true(C.downs_after_up >= 1);
	assert_true(C.ups_after_down >= 1);
	assert_true(cdr_mq_connected(C.mq));

	for (int i = 0; i < STREAM_N; i++) {
		if (C.confirm_status[i] == 0)
			ok++;
		else
			failed++;
	}
	fprintf(stderr, "# confirmed ok %d, failed %d\n", ok, failed);
	/* Unconfirmed messages were published again, so every one is confirmed. */
	assert_int_equal(ok, STREAM_N);

	/* Drain the queue with the same handle. */
	C.delivered = 0;
	C.last_delivery_ms = cdr_now_ms();
	assert_int_equal(cdr_mq_consume(C.mq, STREAM_Q, on_ack_at_once, NULL), 0);
	run_until(C.loop, drained, NULL, 60000);
	for (int i = 0; i < STREAM_N; i++) {
		if (C.confirm_status[i] == 0 && C.seen[i] == 0)
			missing++;
		if (C.seen[i] > 1)
			dups += C.seen[i] - 1;
	}
	fprintf(stderr, "# drained %d deliveries: %d distinct missing, %d duplicates (at-least-once)\n", C.delivered,
		missing, dups);
	assert_int_equal(missing, 0);
	run_for(C.loop, 300);
	C.mq = cdr_mq_free(C.mq);
	assert_int_equal(admin_queue_count(STREAM_Q), 0);
	admin_delete(qs, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_url_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_consume_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unroutable_mandatory_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nack_requeue_and_dead_letter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_from_older_connection_is_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_declaration_is_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_reply_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_fanout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_declare_design, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_broker_then_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_keeps_confirmed_messages, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
