/* confdr-rms against the sandbox's real RabbitMQ and ZooKeeper, with mcusim
 * playing the MCUs and this test playing css:
 *   registration of 42 MCUs and a VRS, announced on rms.ntf.ex;
 *   a bulk allocation of 10,000 conferences over 40 MCUs, answered in one
 *   reply, evenly spread, confirmed and released in one request each;
 *   every refusal answered with its reason (unknown room, user domain,
 *   capability, another platform's room, malformed, stale epoch);
 *   a redelivered request answered again without a second allocation;
 *   drain and undrain;
 *   MCU loss detected (heartbeat_lost; how long it took is printed);
 *   an rms restart rebuilt from re-registrations without double counting.
 * Needs the sandbox env (CONFDR_ZK, CONFDR_P1_AMQP_URL) and no other rms of
 * p1 on its vhost: a namespace of its own (tests/ns.sh, as ctest runs it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>

#include "harness.h"

#define HB_MS	 500
#define MISSES	 3
#define EPOCH	 100
#define NBULK	 10000
#define NA	 40 /* MCUs of sim A, room p1-r1 */
#define MAX_NTFS 4096
#define BIN	 CONFDR_BINARY_DIR

struct ntf {
	char mcu[64], state[16], reason[32];
	uint64_t at;
};

static struct {
	struct cdr_loop *loop;
	struct cdr_mq *mq;
	char work[64];
	pid_t rms, sim_a, sim_b;
	struct ntf ntfs[MAX_NTFS];
	size_t nntfs;
	int restarted;
	uint64_t seq;
} C;

static const char *need_env(const char *name)
{
	const char *v = th_env(name);

	if (!v)
		fail_msg("%s is not set: run under `eval \"$(deploy/sandbox.sh env)\"`", name);
	return v;
}

/* ---- the loop and processes (tests/harness.h) ---- */

static bool run_until(bool (*pred)(void *), void *arg, unsigned ms)
{
	return pred(arg) || th_run_until(C.loop, pred, arg, ms);
}

/* For predicates that make requests themselves (they run the loop). */
static bool poll_until(bool (*pred)(void *), void *arg, unsigned ms)
{
	return th_poll_until(C.loop, pred, arg, ms);
}

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = th_spawn(argv, log, false);

	assert_true(pid >= 0);
	return pid;
}

static int stop_proc(pid_t pid, int sig, unsigned ms)
{
	return th_stop(NULL, pid, sig, ms);
}

static void start_rms(void)
{
	char conf[128], log[128];
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/rms.conf", C.work);
	snprintf(log, sizeof(log), "%s/rms.log", C.work);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f,
		"[daemon]\nplatform = p1\ninstance = test-rms\nlog_level = info\n"
		"[zookeeper]\nhosts = %s\nchroot = %s\nsession_timeout = 4s\n"
		/* rms as its role's user; this test plays css, the MCUs and the
		 * operators on one administrator's connection: senders only
		 * logged here; tests/attacks checks that they are refused */
		"[amqp]\nuser = rms\npassword_file = %s/amqp-rms.password\ncheck_senders = false\nheartbeat = "
		"2s\ntls_ca = %s\n"
		"[reconnect]\nmin = 100ms\nmax = 1s\n"
		"[rms]\nheartbeat_interval = %dms\nheartbeat_misses = %d\nheartbeat_rise = 2\n"
		"reservation_timeout = 60s\ndomain_max_confs = 1000\n"
		/* the MCUs here re-connect within [reconnect] max: a short quiet
		 * after the election keeps the loss test's 10 s bound */
		"broker_return_grace = 1s\n",
		need_env("CONFDR_ZK"), getenv("CONFDR_ZK_CHROOT") ? getenv("CONFDR_ZK_CHROOT") : "/dr",
		need_env("CONFDR_AMQP_SECRETS"), getenv("CONFDR_TLS_CA") ? getenv("CONFDR_TLS_CA") : "", HB_MS, MISSES);
	fclose(f);
	assert_int_equal(chmod(conf, 0600), 0); /* it holds a password: others must not read it */
	C.rms = spawn((char *const[]){ BIN "/confdr-rms", "-c", conf, NULL }, log);
}

static pid_t start_sim(const char *room, const char *prefix, const char *count, const char *vrs, const char *name)
{
	char log[128], state[128], vprefix[64];

	snprintf(log, sizeof(log), "%s/%s.log", C.work, name);
	snprintf(state, sizeof(state), "%s/%s.json", C.work, name);
	snprintf(vprefix, sizeof(vprefix), "%s-vrs", prefix);
	return spawn((char *const[]){ BIN "/mcusim", "--platform",   "p1",	     "--room",
				      (char *)room,  "--prefix",     (char *)prefix, "--count",
				      (char *)count, "--capacity",   "500",	     "--vrs",
				      (char *)vrs,   "--vrs-prefix", vprefix,	     "--list-interval",
				      "0",	     "--state",	     state,	     NULL },
		     log);
}

/* ---- bus ---- */

static void on_ntf(struct cdr_mq_delivery *d, void *arg)
{
	json_t *o = json_loadb(d->body, d->len, 0, NULL), *b = json_object_get(o, "body");
	const char *type = json_string_value(json_object_get(o, "type"));

	(void)arg;
	if (type && !strcmp(type, "rms_all_restarted_ntf"))
		C.restarted++;
	if (type && !strcmp(type, "rms_all_mcu_ntf") && C.nntfs < MAX_NTFS) {
		struct ntf *n = &C.ntfs[C.nntfs++];

		snprintf(n->mcu, sizeof(n->mcu), "%s", json_string_value(json_object_get(b, "mcu")));
		snprintf(n->state, sizeof(n->state), "%s", json_string_value(json_object_get(b, "state")));
		snprintf(n->reason, sizeof(n->reason), "%s", json_string_value(json_object_get(b, "reason")));
		n->at = cdr_now_ms();
	}
	json_decref(o);
	cdr_mq_ack(d);
}

/* The last announced state of mcu since index from, or NULL. */
static const struct ntf *last_ntf(const char *mcu, size_t from)
{
	const struct ntf *r = NULL;

	for (size_t i = from; i < C.nntfs; i++)
		if (!strcmp(C.ntfs[i].mcu, mcu))
			r = &C.ntfs[i];
	return r;
}

/* Sends raw text to rms.req.q as a request and returns the reply envelope
 * (NULL on timeout). */
static json_t *request_raw(const char *txt, unsigned timeout_ms)
{
	struct th_call c = { 0 };

	assert_int_equal(cdr_mq_request(C.mq, "", CDR_MQ_RMS_REQ_Q, txt, strlen(txt), timeout_ms, th_on_reply, &c), 0);
	assert_true(run_until(th_call_done, &c, timeout_ms + 2000));
	return c.status == 0 ? c.reply : NULL;
}

/* Sends type with body (stolen) and id (NULL: a fresh one). */
static json_t *request(const char *type, json_t *body, const char *id)
{
	char fresh[64], *txt;
	json_t *r;

	snprintf(fresh, sizeof(fresh), "test-css-%llu", (unsigned long long)++C.seq);
	txt = cdr_msg_encode(type, id ? id : fresh, "test-css", 0, body);
	assert_non_null(txt);
	r = request_raw(txt, 20000);
	free(txt);
	assert_non_null(r);
	return r;
}

static const char *rtype(json_t *r)
{
	return json_string_value(json_object_get(r, "type"));
}

static json_t *rbody(json_t *r)
{
	return json_object_get(r, "body");
}

/* A request asked again, as css does, while rms says not_active (just
 * elected: its MCUs register again), for at most 15 s. */
static json_t *request_patient(const char *type, json_t *body)
{
	json_t *r = NULL;

	for (int i = 0; i < 75; i++) {
		json_decref(r);
		r = request(type, json_incref(body), NULL);
		if (strcmp(json_string_value(json_object_get(rbody(r), "reason")) ?: "", "not_active"))
			break;
		th_run_for(C.loop, 200);
	}
	json_decref(body);
	return r;
}

static json_t *inventory(void)
{
	return request("ctl_rms_inventory_req", json_object(), NULL);
}

/* The inventory entry of mcu, or NULL; *inv keeps the reply alive. */
static json_t *inv_mcu(json_t *inv, const char *mcu)
{
	json_t *m;
	size_t i;

	json_array_foreach(json_object_get(rbody(inv), "mcus"), i,
			   m) if (!strcmp(json_string_value(json_object_get(m, "mcu")), mcu)) return m;
	return NULL;
}

static char *mcu_id(const char *prefix, int i)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s-%02d", prefix, i);
	return buf;
}

/* ---- waits ---- */

static bool rms_answers(void *arg)
{
	struct th_call c = { 0 };
	char *txt = cdr_msg_encode("ctl_rms_inventory_req", "test-ping", "test-css", 0, json_object());

	(void)arg;
	/* A standby does not consume: the request waits; a short timeout and retry. */
	cdr_mq_request(C.mq, "", CDR_MQ_RMS_REQ_Q, txt, strlen(txt), 1000, th_on_reply, &c);
	free(txt);
	run_until(th_call_done, &c, 3000);
	json_decref(c.reply);
	return c.status == 0;
}

struct up_want {
	const char *prefix;
	int n;
};

static bool all_up(void *arg)
{
	struct up_want *w = arg;
	json_t *inv = inventory();
	int up = 0;

	for (int i = 1; i <= w->n; i++) {
		json_t *m = inv_mcu(inv, mcu_id(w->prefix, i));

		up += m && !strcmp(json_string_value(json_object_get(m, "state")), "up");
	}
	json_decref(inv);
	return up == w->n;
}

/* ---- setup ---- */

static int group_setup(void **state)
{
	struct cdr_mq_opts o = { 0 };

	(void)state;
	snprintf(C.work, sizeof(C.work), "/tmp/confdr-test-rms-XXXXXX");
	assert_non_null(mkdtemp(C.work));
	assert_int_equal(cdr_loop_new(&C.loop), 0);
	o.url = need_env("CONFDR_P1_AMQP_URL");
	o.tls_ca = getenv("CONFDR_TLS_CA");
	o.name = "test-rms-css";
	o.reconnect_min_ms = 100;
	o.reconnect_max_ms = 1000;
	assert_int_equal(cdr_mq_new(C.loop, &o, &C.mq), 0);
	assert_int_equal(cdr_mq_declare_design(C.mq), 0);
	assert_int_equal(cdr_mq_subscribe(C.mq, CDR_MQ_RMS_NTF_EX, "", on_ntf, NULL), 0);
	start_rms();
	assert_true(poll_until(rms_answers, NULL, 40000));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	stop_proc(C.sim_a, SIGTERM, 5000);
	stop_proc(C.sim_b, SIGKILL, 2000);
	assert_int_not_equal(stop_proc(C.rms, SIGTERM, 15000), -1);
	C.mq = cdr_mq_free(C.mq);
	C.loop = cdr_loop_free(C.loop);
	if (!getenv("CONFDR_KEEP_TEST_DIR")) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", C.work);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", C.work);
	}
	return 0;
}

/* ---- tests ---- */

static void test_registration(void **state)
{
	struct up_want a = { "tmcu-a", NA }, b = { "tmcu-b", 2 };
	json_t *inv, *m, *v;
	size_t from = C.nntfs;

	(void)state;
	C.sim_a = start_sim("p1-r1", "tmcu-a", "40", "0", "sim-a");
	C.sim_b = start_sim("p1-r2", "tmcu-b", "2", "1", "sim-b");
	assert_true(poll_until(all_up, &a, 20000));
	assert_true(poll_until(all_up, &b, 20000));
	inv = inventory();
	m = inv_mcu(inv, "tmcu-a-07");
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "room")), "p1-r1");
	assert_string_equal(json_string_value(json_object_get(m, "key")), "tmcu-a-07");
	assert_int_equal(json_integer_value(json_object_get(m, "capacity_confs")), 500);
	v = json_array_get(json_object_get(rbody(inv), "vrs"), 0);
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "room")), "p1-r2");
	assert_string_equal(json_string_value(json_object_get(v, "state")), "up");
	json_decref(inv);
	/* every MCU was announced up */
	for (int i = 1; i <= NA; i++) {
		const struct ntf *n = last_ntf(mcu_id("tmcu-a", i), from);

		assert_non_null(n);
		assert_string_equal(n->state, "up");
		assert_string_equal(n->reason, "registered");
	}
}

static json_t *alloc_item(int i, const char *ud)
{
	char e164[32];

	snprintf(e164, sizeof(e164), "0599%06d", i);
	return json_pack("{s:s, s:s}", "e164", e164, "user_domain", ud);
}

static json_t *ids_of(json_t *allocated)
{
	json_t *ids = json_array(), *a;
	size_t i;

	json_array_foreach(allocated, i, a) json_array_append(ids, json_object_get(a, "reservation"));
	return ids;
}

static void test_bulk_allocation(void **state)
{
	json_t *confs = json_array(), *r, *a, *ids, *inv;
	int per_mcu[NA + 1] = { 0 };
	size_t i;
	uint64_t t0;

	(void)state;
	for (int k = 0; k < NBULK; k++)
		json_array_append_new(confs, alloc_item(k, k % 2 ? "ud-p1-r1-a" : "ud-p1-r1-b"));
	t0 = cdr_now_ms();
	r = request("mau_rms_bulkalloc_req", json_pack("{s:o, s:b, s:i}", "confs", confs, "restore", 1, "epoch", EPOCH),
		    NULL);
	printf("# bulk allocation of %d over %d MCUs answered in %llu ms\n", NBULK, NA,
	       (unsigned long long)(cdr_now_ms() - t0));
	assert_string_equal(rtype(r), "rms_mau_bulkalloc_ack");
	assert_int_equal(json_array_size(json_object_get(rbody(r), "failed")), 0);
	assert_int_equal(json_array_size(json_object_get(rbody(r), "allocated")), NBULK);
	json_array_foreach(json_object_get(rbody(r), "allocated"), i, a)
	{
		const char *mcu = json_string_value(json_object_get(a, "mcu"));
		char e164[32];

		snprintf(e164, sizeof(e164), "0599%06zu", i);
		assert_string_equal(json_string_value(json_object_get(a, "e164")), e164);
		assert_string_equal(json_string_value(json_object_get(a, "room")), "p1-r1");
		assert_string_equal(json_string_value(json_object_get(a, "platform")), "p1");
		assert_string_equal(json_string_value(json_object_get(a, "mcu_key")), mcu);
		assert_true(json_is_null(json_object_get(a, "vrs")));
		assert_memory_equal(mcu, "tmcu-a-", 7);
		per_mcu[atoi(mcu + 7)]++;
	}
	/* equal capacity and weight: evenly spread */
	for (int k = 1; k <= NA; k++)
		assert_int_equal(per_mcu[k], NBULK / NA);
	inv = inventory();
	assert_int_equal(json_integer_value(json_object_get(rbody(inv), "reservations")), NBULK);
	assert_int_equal(json_integer_value(json_object_get(inv_mcu(inv, "tmcu-a-13"), "reserved_confs")), NBULK / NA);
	json_decref(inv);
	/* confirmed in one request, then released in one */
	ids = ids_of(json_object_get(rbody(r), "allocated"));
	json_decref(r);
	r = request("mau_rms_confirm_req", json_pack("{s:O, s:i}", "reservations", ids, "epoch", EPOCH), NULL);
	assert_string_equal(rtype(r), "rms_mau_confirm_ack");
	assert_int_equal(json_integer_value(json_object_get(rbody(r), "done")), NBULK);
	json_decref(r);
	inv = inventory();
	assert_int_equal(json_integer_value(json_object_get(rbody(inv), "reservations")), 0);
	assert_int_equal(json_integer_value(json_object_get(rbody(inv), "allocations")), NBULK);
	json_decref(inv);
	r = request("mau_rms_release_req",
		    json_pack("{s:O, s:s, s:i}", "reservations", ids, "reason", "test", "epoch", EPOCH), NULL);
	assert_int_equal(json_integer_value(json_object_get(rbody(r), "done")), NBULK);
	assert_int_equal(json_array_size(json_object_get(rbody(r), "unknown")), 0);
	json_decref(r);
	r = request("mau_rms_release_req", json_pack("{s:O, s:i}", "reservations", ids, "epoch", EPOCH), NULL);
	assert_int_equal(json_integer_value(json_object_get(rbody(r), "done")), 0);
	assert_int_equal(json_array_size(json_object_get(rbody(r), "unknown")), NBULK);
	json_decref(r);
	json_decref(ids);
}

static void expect_nack(json_t *r, const char *type, const char *reason)
{
	assert_non_null(r);
	if (strcmp(rtype(r), type) != 0 ||
	    strcmp(json_string_value(json_object_get(rbody(r), "reason")), reason) != 0) {
		char *s = json_dumps(r, 0);

		fail_msg("expected %s %s, got %s", type, reason, s);
	}
	assert_non_null(json_string_value(json_object_get(rbody(r), "detail")));
}

static void test_refusals(void **state)
{
	json_t *r;

	(void)state;
	r = request("mau_rms_alloc_req",
		    json_pack("{s:s, s:s, s:s, s:i}", "e164", "0598000001", "user_domain", "ud-p1-r1-a", "room",
			      "p1-r9", "epoch", EPOCH),
		    NULL);
	expect_nack(r, "rms_mau_alloc_nack", "unknown_room");
	json_decref(r);
	r = request("mau_rms_alloc_req",
		    json_pack("{s:s, s:s, s:i}", "e164", "0598000002", "user_domain", "ud-nobody", "epoch", EPOCH),
		    NULL);
	expect_nack(r, "rms_mau_alloc_nack", "unknown_user_domain");
	json_decref(r);
	r = request("mau_rms_alloc_req",
		    json_pack("{s:s, s:s, s:[s], s:i}", "e164", "0598000003", "user_domain", "ud-p1-r1-a", "caps", "8k",
			      "epoch", EPOCH),
		    NULL);
	expect_nack(r, "rms_mau_alloc_nack", "unknown_capability");
	json_decref(r);
	/* no XMPU in p1-r1 nor p1-r2: the walk reaches p2-r1, another platform's */
	r = request("mau_rms_alloc_req",
		    json_pack("{s:s, s:s, s:b, s:i}", "e164", "0598000004", "user_domain", "ud-p1-r1-a", "xmpu", 1,
			      "epoch", EPOCH),
		    NULL);
	expect_nack(r, "rms_mau_alloc_nack", "other_platform");
	assert_string_equal(json_string_value(json_object_get(rbody(r), "room")), "p2-r1");
	assert_string_equal(json_string_value(json_object_get(rbody(r), "platform")), "p2");
	json_decref(r);
	/* a mistyped field: bad_request naming it */
	r = request("mau_rms_alloc_req",
		    json_pack("{s:s, s:s, s:s, s:i}", "e164", "0598000005", "user_domain", "ud-p1-r1-a", "ports",
			      "many", "epoch", EPOCH),
		    NULL);
	expect_nack(r, "rms_mau_alloc_nack", "bad_request");
	assert_non_null(strstr(json_string_value(json_object_get(rbody(r), "detail")), "ports"));
	json_decref(r);
	/* not JSON at all: still answered */
	r = request_raw("hello, rms", 20000);
	expect_nack(r, "rms_any_request_nack", "bad_request");
	json_decref(r);
	/* registrations and heartbeats are small: 20 KiB on rms.res.q is
	 * refused before it is parsed, and answered */
	{
		size_t n = 20 * 1024;
		char *big = malloc(n);
		struct th_call c = { 0 };

		assert_non_null(big);
		memset(big, 'x', n);
		assert_int_equal(cdr_mq_request(C.mq, "", CDR_MQ_RMS_RES_Q, big, n, 20000, th_on_reply, &c), 0);
		assert_true(run_until(th_call_done, &c, 22000));
		free(big);
		assert_int_equal(c.status, 0);
		expect_nack(c.reply, "rms_any_request_nack", "bad_request");
		assert_non_null(strstr(json_string_value(json_object_get(rbody(c.reply), "detail")),
				       "message of 20480 bytes, more than the limit of 16384"));
		json_decref(c.reply);
	}
	/* a deposed css (older epoch) */
	r = request("mau_rms_alloc_req",
		    json_pack("{s:s, s:s, s:i}", "e164", "0598000006", "user_domain", "ud-p1-r1-a", "epoch", EPOCH - 1),
		    NULL);
	expect_nack(r, "rms_mau_alloc_nack", "stale_epoch");
	json_decref(r);
	/* a create's allocation ("judge"): what the domain's room cannot do is
	 * refused no_capability, not searched for in the backup rooms; its
	 * limit (domain_max_confs 1000) is limit_reached */
	r = request_patient("mau_rms_alloc_req",
			    json_pack("{s:s, s:s, s:b, s:b, s:i, s:i}", "e164", "0598000007", "user_domain",
				      "ud-p1-r1-a", "xmpu", 1, "judge", 1, "domain_running", 0, "epoch", EPOCH));
	expect_nack(r, "rms_mau_alloc_nack", "no_capability");
	assert_non_null(strstr(json_string_value(json_object_get(rbody(r), "detail")), "may not use XMPU"));
	json_decref(r);
	r = request_patient("mau_rms_alloc_req",
			    json_pack("{s:s, s:s, s:b, s:i, s:i}", "e164", "0598000008", "user_domain", "ud-p1-r1-a",
				      "judge", 1, "domain_running", 1000, "epoch", EPOCH));
	expect_nack(r, "rms_mau_alloc_nack", "limit_reached");
	assert_non_null(strstr(json_string_value(json_object_get(rbody(r), "detail")), "its limit is 1000"));
	json_decref(r);
	r = request("mau_rms_capability_req", json_pack("{s:s}", "user_domain", "ud-p1-r1-a"), NULL);
	assert_string_equal(rtype(r), "rms_mau_capability_ack");
	assert_true(json_is_true(json_object_get(rbody(r), "h265")));
	assert_true(json_is_false(json_object_get(rbody(r), "xmpu")));
	assert_string_equal(json_string_value(json_object_get(rbody(r), "room")), "p1-r1");
	json_decref(r);
	r = request("mau_rms_capability_req", json_pack("{s:s}", "user_domain", "ud-nobody"), NULL);
	expect_nack(r, "rms_mau_capability_nack", "unknown_user_domain");
	json_decref(r);
}

static void test_redelivery_answered_once(void **state)
{
	json_t *r1, *r2, *r3, *inv;
	int64_t before;

	(void)state;
	inv = inventory();
	before = json_integer_value(json_object_get(rbody(inv), "reservations"));
	json_decref(inv);
	r1 = request("mau_rms_alloc_req",
		     json_pack("{s:s, s:s, s:b, s:i}", "e164", "0597000001", "user_domain", "ud-p1-r2-a", "record", 1,
			       "epoch", EPOCH),
		     "test-css-dup-1");
	r2 = request("mau_rms_alloc_req",
		     json_pack("{s:s, s:s, s:b, s:i}", "e164", "0597000001", "user_domain", "ud-p1-r2-a", "record", 1,
			       "epoch", EPOCH),
		     "test-css-dup-1");
	assert_string_equal(rtype(r1), "rms_mau_alloc_ack");
	assert_true(json_equal(rbody(r1), rbody(r2)));
	/* recorded: MCU and VRS of the same room */
	assert_string_equal(json_string_value(json_object_get(rbody(r1), "room")), "p1-r2");
	assert_string_equal(json_string_value(json_object_get(rbody(r1), "vrs")), "tmcu-b-vrs-01");
	/* the same id for another request: refused, not answered with r1's
	 * answer, nothing allocated */
	r3 = request("mau_rms_alloc_req",
		     json_pack("{s:s, s:s, s:b, s:i}", "e164", "0597000002", "user_domain", "ud-p1-r2-a", "record", 1,
			       "epoch", EPOCH),
		     "test-css-dup-1");
	assert_string_equal(rtype(r3), "rms_mau_alloc_nack");
	assert_string_equal(json_string_value(json_object_get(rbody(r3), "reason")), "bad_request");
	assert_non_null(
		strstr(json_string_value(json_object_get(rbody(r3), "detail")), "used before by another request"));
	inv = inventory();
	assert_int_equal(json_integer_value(json_object_get(rbody(inv), "reservations")), before + 1);
	json_decref(inv);
	json_decref(r1);
	json_decref(r2);
	json_decref(r3);
}

static void test_drain(void **state)
{
	json_t *confs = json_array(), *r, *a, *inv;
	size_t i, from = C.nntfs;

	(void)state;
	r = request("ctl_rms_drain_req",
		    json_pack("{s:s, s:b, s:s}", "mcu", "tmcu-a-01", "drain", 1, "operator", "test"), NULL);
	assert_string_equal(rtype(r), "rms_ctl_drain_ack");
	assert_string_equal(json_string_value(json_object_get(rbody(r), "state")), "drain");
	json_decref(r);
	r = request("ctl_rms_drain_req",
		    json_pack("{s:s, s:b, s:s}", "mcu", "no-such-mcu", "drain", 1, "operator", "t"), NULL);
	expect_nack(r, "rms_ctl_drain_nack", "unknown_mcu");
	json_decref(r);
	for (int k = 0; k < 390; k++)
		json_array_append_new(confs, alloc_item(20000 + k, "ud-p1-r1-a"));
	r = request("mau_rms_bulkalloc_req", json_pack("{s:o, s:i}", "confs", confs, "epoch", EPOCH), NULL);
	assert_int_equal(json_array_size(json_object_get(rbody(r), "allocated")), 390);
	json_array_foreach(json_object_get(rbody(r), "allocated"), i, a)
		assert_string_not_equal(json_string_value(json_object_get(a, "mcu")), "tmcu-a-01");
	json_decref(request(
		"mau_rms_release_req",
		json_pack("{s:o, s:i}", "reservations", ids_of(json_object_get(rbody(r), "allocated")), "epoch", EPOCH),
		NULL));
	json_decref(r);
	r = request("ctl_rms_drain_req",
		    json_pack("{s:s, s:b, s:s}", "mcu", "tmcu-a-01", "drain", 0, "operator", "test"), NULL);
	assert_string_equal(json_string_value(json_object_get(rbody(r), "state")), "up");
	json_decref(r);
	inv = inventory();
	assert_string_equal(json_string_value(json_object_get(inv_mcu(inv, "tmcu-a-01"), "state")), "up");
	json_decref(inv);
	assert_true(C.nntfs >= from + 2);
	assert_string_equal(last_ntf("tmcu-a-01", from)->reason, "undrain");
}

struct down_want {
	size_t from;
};

static bool b_down(void *arg)
{
	struct down_want *w = arg;
	const struct ntf *n1 = last_ntf("tmcu-b-01", w->from), *n2 = last_ntf("tmcu-b-02", w->from);

	return n1 && n2 && !strcmp(n1->state, "down") && !strcmp(n2->state, "down");
}

static void test_mcu_loss_detected(void **state)
{
	struct down_want w = { C.nntfs };
	uint64_t killed, usual = HB_MS * MISSES + HB_MS;
	json_t *inv;

	(void)state;
	killed = cdr_now_ms();
	kill(C.sim_b, SIGKILL);
	waitpid(C.sim_b, NULL, 0);
	C.sim_b = 0;
	assert_true(run_until(b_down, &w, 10000));
	for (int i = 1; i <= 2; i++) {
		const struct ntf *n = last_ntf(mcu_id("tmcu-b", i), w.from);
		uint64_t took = n->at - killed;

		/* a figure, not an assertion: run_until's 10 s is the bound */
		printf("# %s declared down %llu ms after the kill (%llu ms on a quiet machine)\n", n->mcu,
		       (unsigned long long)took, (unsigned long long)usual);
		assert_string_equal(n->reason, "heartbeat_lost");
	}
	inv = inventory();
	assert_string_equal(json_string_value(json_object_get(inv_mcu(inv, "tmcu-b-01"), "state")), "down");
	assert_string_equal(json_string_value(json_object_get(inv_mcu(inv, "tmcu-a-01"), "state")), "up");
	json_decref(inv);
}

/* Conferences created directly on tmcu-a-02, as css would. */
static void create_on_mcu(const char *mcu, int n)
{
	for (int i = 0; i < n; i++) {
		char e164[32], id[64], *txt;
		struct cdr_mq_props p = { .persistent = true };

		snprintf(e164, sizeof(e164), "0596%06d", i);
		snprintf(id, sizeof(id), "test-css-create-%d", i);
		txt = cdr_msg_encode("mau_cmu_createconf_req", id, "test-css", 0,
				     json_pack("{s:s, s:{s:s, s:s, s:s, s:i, s:s, s:n}, s:s, s:I, s:i, s:i}", "e164",
					       e164, "conf", "e164", e164, "name", "restart test", "user_domain",
					       "ud-p1-r1-a", "duration_min", 60, "mcu", mcu, "vrs", "platform", "p1",
					       "planned_end", (json_int_t)(cdr_wall_ms() + 3600000), "generation", 0,
					       "epoch", EPOCH));
		assert_non_null(txt);
		p.correlation_id = id;
		assert_int_equal(cdr_mq_publish(C.mq, CDR_MQ_MAU_CMCMU_EX, mcu, &p, txt, strlen(txt), NULL, NULL), 0);
		free(txt);
	}
}

static bool a02_runs_10(void *arg)
{
	json_t *inv = inventory(), *m = inv_mcu(inv, "tmcu-a-02");
	bool ok = m && json_integer_value(json_object_get(m, "running_confs")) == 10 &&
		  !strcmp(json_string_value(json_object_get(m, "state")), "up");

	(void)arg;
	json_decref(inv);
	return ok;
}

static void test_restart_rebuilds_without_double_count(void **state)
{
	struct up_want a = { "tmcu-a", NA };
	int restarted = C.restarted;
	json_t *inv, *m;

	(void)state;
	create_on_mcu("tmcu-a-02", 10);
	assert_true(poll_until(a02_runs_10, NULL, 10000)); /* reported by its heartbeats */
	assert_int_equal(WEXITSTATUS(stop_proc(C.rms, SIGTERM, 15000)), 0);
	start_rms();
	assert_true(poll_until(rms_answers, NULL, 40000));
	assert_true(poll_until(all_up, &a, 20000));
	assert_true(C.restarted > restarted);
	inv = inventory();
	m = inv_mcu(inv, "tmcu-a-02");
	assert_int_equal(json_integer_value(json_object_get(m, "running_confs")), 10);
	assert_int_equal(json_integer_value(json_object_get(inv_mcu(inv, "tmcu-a-03"), "running_confs")), 0);
	assert_null(inv_mcu(inv, "tmcu-b-01")); /* dead before the restart: not re-registered */
	assert_int_equal(json_array_size(json_object_get(rbody(inv), "mcus")), NA);
	json_decref(inv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registration),
		cmocka_unit_test(test_bulk_allocation),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_redelivery_answered_once),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_mcu_loss_detected),
		cmocka_unit_test(test_restart_rebuilds_without_double_count),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
