/* mcusim against the sandbox's real RabbitMQ, with this test playing rms
 * (it consumes rms.res.q and answers registrations) and css (it publishes
 * commands to mau.cmcmu.ex and reads the answers from its own queue bound to
 * cmu.mau.ex with "#"):
 *   registration of MCUs and a VRS with every field, heartbeats every
 *   heartbeat_ms with increasing seq and the rms epoch;
 *   re-registration on rms_all_restarted_ntf and on a newer rms epoch;
 *   create ACK (ids, correlation_id, generation), idempotent re-create,
 *   no_capacity, no_ports, rename, end, unknown_conference, stale_epoch,
 *   malformed messages survived; conference lists; the state file;
 *   --refuse and SIGUSR2, --fail-rate with --seed, --slow, --no-answer;
 *   SIGTERM: exit 0 within seconds; kill -9: its queues are gone (a create
 *   to it is unroutable, the mandatory publish confirms -EIO);
 *   bad options: exit 64.
 * Needs the sandbox env (CONFDR_P1_AMQP_URL, or CONFDR_P2_AMQP_URL when an
 * rms consumes p1's rms.res.q) and no rms consuming the vhost it uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <jansson.h>

#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>

#include "harness.h"

#define BIN   CONFDR_BINARY_DIR "/mcusim"
#define HB_MS 200
/* The 1,000 MCUs of test_scale beat every 2 s: at 200 ms they sent 5,000
 * heartbeats a second into this one consumer, and on a loaded machine its
 * backlog held the registration answers past mcusim's 3 s, every
 * re-registration started the count again, and none converged in 180 s
 * (both lanes of two fresh-root runs; 35 s here otherwise). */
#define SCALE_HB_MS 2000
#define MAX_UNITS   1100
#define MAX_ANSWERS 16384
#define SCALE_MCUS  1000 /* one process */
#define BURST_MCUS  40
#define BURST	    4000 /* creates over BURST_MCUS of them */

struct unit_seen {
	char id[72];
	int registers;
	json_t *reg_body;  /* the last registration's body */
	int64_t reg_epoch; /* the epoch we answered it with */
	int hbs;	   /* heartbeats since the last registration answer */
	int hb_ms;	   /* the interval we answered it with */
	int64_t hb_seq, hb_epoch, hb_running;
	bool seq_ok;	     /* every seq greater than the one before */
	bool hb_early;	     /* a heartbeat sent before its time (sender's "ts") */
	int64_t ack_wall_ms; /* when we sent the registration answer */
	int64_t last_hb_ts;  /* the sender's "ts" of the last heartbeat */
};

struct answer {
	json_t *env;
	char key[72], corr[128];
};

static struct {
	struct cdr_loop *loop;
	struct cdr_mq *mq;
	const char *url, *platform;
	char work[64];
	int64_t rms_epoch; /* what registrations are answered with */
	struct unit_seen units[MAX_UNITS];
	size_t nunits;
	struct answer answers[MAX_ANSWERS];
	size_t nanswers;
	uint64_t seq;
	pid_t sim_a;
} C;

/* ---- the loop, a plain AMQP client, processes (tests/harness.h) ---- */

/* Runs the loop until pred(arg) (true) or ms pass (false). */
static bool run_until(bool (*pred)(void *), void *arg, unsigned ms)
{
	return th_run_until(C.loop, pred, arg, ms);
}

static void run_for(unsigned ms)
{
	th_run_for(C.loop, ms);
}

static amqp_connection_state_t admin_open(const char *url)
{
	amqp_connection_state_t c = th_admin_open(url);

	assert_non_null(c);
	return c;
}

/* Consumers of queue on url's vhost (0 when the queue does not exist). */
static long admin_consumers(const char *url, const char *queue)
{
	amqp_connection_state_t c = admin_open(url);
	amqp_queue_declare_ok_t *ok = amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
	long n = ok && amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL ? (long)ok->consumer_count : 0;

	th_admin_close(c);
	return n;
}

/* Empties queue if it exists: stale registrations, answers nobody reads. */
static void admin_purge(const char *queue)
{
	amqp_connection_state_t c = admin_open(C.url);

	amqp_queue_purge(c, 1, amqp_cstring_bytes(queue));
	th_admin_close(c);
}

/* ---- processes ---- */

static pid_t spawn_sim(const char *name, const char *const *extra)
{
	char log[128], *argv[64];
	size_t n = 0;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/%s.log", C.work, name);
	argv[n++] = BIN;
	argv[n++] = "--platform";
	argv[n++] = (char *)C.platform;
	argv[n++] = "--room";
	argv[n++] = C.platform[1] == '2' ? "p2-r1" : "p1-r1";
	argv[n++] = "--amqp";
	argv[n++] = (char *)C.url;
	for (; extra && *extra && n < 62; extra++)
		argv[n++] = (char *)*extra;
	argv[n] = NULL;
	pid = th_spawn(argv, log, true);
	assert_true(pid >= 0);
	return pid;
}

/* Signals pid and waits up to ms for it (the loop keeps running meanwhile);
 * returns its wait status, or -1 (then it is killed). */
static int stop_sim(pid_t pid, int sig, unsigned ms)
{
	return th_stop(C.loop, pid, sig, ms);
}

/* ---- playing rms ---- */

static struct unit_seen *unit(const char *id, bool create)
{
	for (size_t i = 0; i < C.nunits; i++)
		if (!strcmp(C.units[i].id, id))
			return &C.units[i];
	if (!create || C.nunits == MAX_UNITS)
		return NULL;
	snprintf(C.units[C.nunits].id, sizeof(C.units[0].id), "%s", id);
	C.units[C.nunits].seq_ok = true;
	return &C.units[C.nunits++];
}

static void on_res(struct cdr_mq_delivery *d, void *arg)
{
	struct cdr_msg_error err;
	struct cdr_msg *m;
	const char *type;

	(void)arg;
	if (cdr_msg_decode(d->body, d->len, 0, &m, &err) < 0) {
		print_message("rms.res.q: unreadable: %s\n", err.detail);
		cdr_mq_ack(d);
		return;
	}
	type = cdr_msg_type(m);
	if (!strcmp(type, "cmu_rms_register_req") || !strcmp(type, "vrs_rms_register_req")) {
		bool vrs = type[0] == 'v';
		const char *id = cdr_msg_str(m, vrs ? "vrs" : "mcu", "?");
		struct unit_seen *u = unit(id, true);
		int hb_ms = !strncmp(id, "tsim-s-", 7) ? SCALE_HB_MS : HB_MS;
		char *txt;

		if (u) {
			u->hb_ms = hb_ms;
			json_decref(u->reg_body);
			u->reg_body = json_incref(cdr_msg_body(m));
			u->registers++;
			u->reg_epoch = C.rms_epoch;
			u->hbs = 0;
			u->hb_early = false;
			u->ack_wall_ms = (int64_t)cdr_wall_ms();
		}
		txt = cdr_msg_encode_reply(m, true, "test-rms",
					   json_pack("{s:s, s:i, s:i, s:I}", vrs ? "vrs" : "mcu", id, "heartbeat_ms",
						     hb_ms, "misses", 3, "epoch", (json_int_t)C.rms_epoch));
		assert_non_null(txt);
		assert_int_equal(cdr_mq_reply(C.mq, d, txt, strlen(txt), NULL, NULL), 0);
		free(txt);
	} else if (!strcmp(type, "cmu_rms_heartbeat_ntf") || !strcmp(type, "vrs_rms_heartbeat_ntf")) {
		bool vrs = type[0] == 'v';
		struct unit_seen *u = unit(cdr_msg_str(m, vrs ? "vrs" : "mcu", "?"), false);
		int64_t seq = cdr_msg_int(m, "seq", -1);

		if (u) {
			if (u->hbs && seq <= u->hb_seq)
				u->seq_ok = false;
			/* the n-th heartbeat after the answer (n from 0) is due
			 * HB_MS * n after it, never sooner; the sender's own
			 * "ts" is judged, so a late delivery to us does not
			 * make heartbeats look fast (slack: clock steps) */
			u->last_hb_ts = cdr_msg_ts(m);
			if (u->last_hb_ts < u->ack_wall_ms + (int64_t)u->hbs * u->hb_ms - 30)
				u->hb_early = true;
			u->hbs++;
			u->hb_seq = seq;
			u->hb_epoch = cdr_msg_int(m, "epoch", -1);
			u->hb_running = cdr_msg_int(m, vrs ? "running" : "running_confs", -1);
		}
	}
	cdr_msg_free(m);
	cdr_mq_ack(d);
}

/* ---- playing css ---- */

static void on_answer(struct cdr_mq_delivery *d, void *arg)
{
	(void)arg;
	if (C.nanswers < MAX_ANSWERS) {
		struct answer *a = &C.answers[C.nanswers];

		a->env = json_loadb(d->body, d->len, 0, NULL);
		snprintf(a->key, sizeof(a->key), "%s", d->routing_key ? d->routing_key : "");
		snprintf(a->corr, sizeof(a->corr), "%s", d->correlation_id ? d->correlation_id : "");
		if (a->env)
			C.nanswers++;
	}
	cdr_mq_ack(d);
}

static const char *env_type(const json_t *env)
{
	return json_string_value(json_object_get(env, "type"));
}

static json_t *env_body(const json_t *env)
{
	return json_object_get(env, "body");
}

static const char *bstr(const json_t *env, const char *k)
{
	const char *v = json_string_value(json_object_get(env_body(env), k));

	return v ? v : "";
}

static int64_t bint(const json_t *env, const char *k)
{
	json_t *v = json_object_get(env_body(env), k);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* The answer whose envelope id is id, or NULL. */
static struct answer *answer_to(const char *id)
{
	for (size_t i = 0; i < C.nanswers; i++)
		if (!strcmp(json_string_value(json_object_get(C.answers[i].env, "id")), id))
			return &C.answers[i];
	return NULL;
}

static bool answered(void *arg)
{
	return answer_to(arg) != NULL;
}

static struct answer *wait_answer(const char *id, unsigned ms)
{
	run_until(answered, (void *)id, ms);
	return answer_to(id);
}

/* Publishes txt to mau.cmcmu.ex with key, persistent and mandatory, as css
 * does; returns the confirm status. */
static int publish_command(const char *key, const char *id, const char *txt)
{
	struct cdr_mq_props p = { .persistent = true, .mandatory = true, .correlation_id = id, .message_id = id };
	struct th_confirm c = { 0 };

	assert_int_equal(cdr_mq_publish(C.mq, CDR_MQ_MAU_CMCMU_EX, key, &p, txt, strlen(txt), th_on_confirm, &c), 0);
	assert_true(run_until(th_confirmed, &c, 5000));
	return c.status;
}

/* Sends a command of type to mcu with body (stolen); returns its id (static
 * buffer). */
static const char *command(const char *mcu, const char *type, json_t *body, const char *src)
{
	static char id[64];
	char *txt;

	snprintf(id, sizeof(id), "test-css-%d-%llu", (int)getpid(), (unsigned long long)++C.seq);
	txt = cdr_msg_encode(type, id, src ? src : "test-css", 0, body);
	assert_non_null(txt);
	assert_int_equal(publish_command(mcu, id, txt), 0);
	free(txt);
	return id;
}

static const char *create(const char *mcu, const char *e164, int64_t generation, int64_t epoch, int ports)
{
	json_t *conf = json_pack("{s:s, s:s, s:s, s:i, s:s, s:n}", "e164", e164, "name", "test conference",
				 "user_domain", "ud-p1-r1-a", "duration_min", 60, "mcu", mcu, "vrs");

	if (ports > 0)
		json_object_set_new(conf, "max_participants", json_integer(ports));
	return command(mcu, "mau_cmu_createconf_req",
		       json_pack("{s:s, s:o, s:s, s:I, s:I, s:I}", "e164", e164, "conf", conf, "platform", "p1",
				 "planned_end", (json_int_t)(cdr_wall_ms() + 3600000), "generation",
				 (json_int_t)generation, "epoch", (json_int_t)epoch),
		       NULL);
}

/* Checks that the answer to id is of type (with reason when a nack) and
 * returns it. */
static struct answer *expect(const char *id, const char *type, const char *reason)
{
	char idc[64];
	struct answer *a;

	snprintf(idc, sizeof(idc), "%s", id);
	a = wait_answer(idc, 5000);
	if (!a)
		fail_msg("no answer to %s (%s expected)", idc, type);
	assert_string_equal(env_type(a->env), type);
	assert_string_equal(a->corr, idc);
	if (reason)
		assert_string_equal(bstr(a->env, "reason"), reason);
	return a;
}

/* ---- waits on what rms sees ---- */

struct want {
	const char *ids[8];
	int registers; /* at least */
	int hbs;       /* heartbeats since then, at least */
	int64_t epoch; /* in those heartbeats */
};

static bool units_ready(void *arg)
{
	struct want *w = arg;

	for (size_t i = 0; i < 8 && w->ids[i]; i++) {
		struct unit_seen *u = unit(w->ids[i], false);

		if (!u || u->registers < w->registers || u->hbs < w->hbs || u->hb_epoch != w->epoch)
			return false;
	}
	return true;
}

/* ---- setup ---- */

static bool mq_up(void *arg)
{
	(void)arg;
	return cdr_mq_connected(C.mq);
}

static int group_setup(void **state)
{
	struct cdr_mq_opts o = { 0 };
	const char *p1 = getenv("CONFDR_P1_AMQP_URL"), *p2 = getenv("CONFDR_P2_AMQP_URL");

	(void)state;
	if (!p1 || !*p1)
		fail_msg("CONFDR_P1_AMQP_URL is not set: run under `eval \"$(deploy/sandbox.sh env)\"`");
	/* This test plays rms: it must be the only consumer of rms.res.q. */
	C.url = p1;
	C.platform = "p1";
	if (admin_consumers(p1, CDR_MQ_RMS_RES_Q) > 0) {
		if (!p2 || !*p2 || admin_consumers(p2, CDR_MQ_RMS_RES_Q) > 0)
			fail_msg("an rms consumes rms.res.q on p1 (and p2): stop it, this test plays rms");
		C.url = p2;
		C.platform = "p2";
	}
	snprintf(C.work, sizeof(C.work), "/tmp/confdr-test-mcusim-XXXXXX");
	assert_non_null(mkdtemp(C.work));
	assert_int_equal(cdr_loop_new(&C.loop), 0);
	o.url = C.url;
	o.tls_ca = getenv("CONFDR_TLS_CA");
	o.name = "test-mcusim";
	o.reconnect_min_ms = 100;
	o.reconnect_max_ms = 1000;
	assert_int_equal(cdr_mq_new(C.loop, &o, &C.mq), 0);
	assert_int_equal(cdr_mq_declare_design(C.mq), 0);
	assert_true(run_until(mq_up, NULL, 10000));
	admin_purge(CDR_MQ_RMS_RES_Q);
	admin_purge(CDR_MQ_MAU_CMU_Q);
	assert_int_equal(cdr_mq_consume(C.mq, CDR_MQ_RMS_RES_Q, on_res, NULL), 0);
	assert_int_equal(cdr_mq_subscribe(C.mq, CDR_MQ_CMU_MAU_EX, "#", on_answer, NULL), 0);
	C.rms_epoch = 10;
	run_for(300); /* the consumers are in place */
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	stop_sim(C.sim_a, SIGKILL, 2000);
	C.mq = cdr_mq_free(C.mq);
	/* What the simulators sent while nobody read: css's queue keeps it. */
	admin_purge(CDR_MQ_MAU_CMU_Q);
	admin_purge(CDR_MQ_RMS_RES_Q);
	C.loop = cdr_loop_free(C.loop);
	for (size_t i = 0; i < C.nunits; i++)
		json_decref(C.units[i].reg_body);
	for (size_t i = 0; i < C.nanswers; i++)
		json_decref(C.answers[i].env);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", C.work);
	if (system(cmd) != 0)
		print_message("could not remove %s\n", C.work);
	return 0;
}

/* ---- tests ---- */

static void test_bad_options(void **state)
{
	const char *cases[][4] = {
		{ "--count", "0", NULL },	    { "--h265", "maybe", NULL },
		{ "--fail-rate", "1.5", NULL },	    { "--bogus", NULL },
		{ "--capacity", "x", NULL },	    { "--list-interval", "50", NULL },
		{ "--prefix", "bad prefix", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pid_t pid = spawn_sim("bad", cases[i]);
		int st;

		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 64);
	}
	{ /* no platform at all */
		int st;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			int fd = open("/dev/null", O_WRONLY);
			dup2(fd, 2);
			execl(BIN, BIN, "--room", "p1-r1", (char *)NULL);
			_exit(127);
		}
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_int_equal(WEXITSTATUS(st), 64);
	}
}

static void test_registration_and_heartbeats(void **state)
{
	char st[128];
	struct want w = { { "tsim-a-01", "tsim-a-02", "tsim-a-03", "tsim-av-01" }, 1, 5, 10 };
	struct unit_seen *u;
	json_t *b;

	(void)state;
	snprintf(st, sizeof(st), "%s/a.json", C.work);
	C.sim_a = spawn_sim(
		"a", (const char *[]){ "--count",      "3",	  "--prefix",	"tsim-a", "--vrs",	     "1",
				       "--vrs-prefix", "tsim-av", "--capacity", "3",	  "--list-interval", "300",
				       "--state",      st,	  "--priority", "7",	  "--xmpu",	     "yes",
				       "--h265",       "no",	  NULL });
	assert_true(run_until(units_ready, &w, 15000));

	u = unit("tsim-a-02", false);
	b = u->reg_body;
	assert_string_equal(json_string_value(json_object_get(b, "mcu")), "tsim-a-02");
	assert_string_equal(json_string_value(json_object_get(b, "key")), "tsim-a-02");
	assert_string_equal(json_string_value(json_object_get(b, "room")), C.platform[1] == '2' ? "p2-r1" : "p1-r1");
	assert_string_equal(json_string_value(json_object_get(b, "platform")), C.platform);
	assert_int_equal(json_integer_value(json_object_get(b, "capacity_confs")), 3);
	assert_int_equal(json_integer_value(json_object_get(b, "capacity_ports")), 48);
	assert_true(json_is_false(json_object_get(b, "h265")));
	assert_true(json_is_true(json_object_get(b, "res_1080p")));
	assert_true(json_is_true(json_object_get(b, "xmpu")));
	assert_int_equal(json_integer_value(json_object_get(b, "priority")), 7);
	assert_int_equal(json_integer_value(json_object_get(b, "weight")), 100);
	assert_true(json_is_false(json_object_get(b, "backup")));
	assert_int_equal(json_integer_value(json_object_get(b, "running_confs")), 0);
	assert_int_equal(unit("tsim-a-01", false)->registers, 1);

	b = unit("tsim-av-01", false)->reg_body;
	assert_string_equal(json_string_value(json_object_get(b, "vrs")), "tsim-av-01");
	assert_int_equal(json_integer_value(json_object_get(b, "capacity")), 500);

	for (size_t i = 0; i < 4; i++) {
		u = unit(w.ids[i], false);
		assert_true(u->seq_ok);
		/* at the interval rms told (200 ms), not the sim's default
		 * (1000 ms), and never sooner than due (checked per heartbeat
		 * on the sender's "ts"); a loaded machine delays timers, so
		 * the upper bound is generous */
		int64_t every = (u->last_hb_ts - u->ack_wall_ms) / (u->hbs - 1);

		print_message("%s: %d heartbeats, one every %lld ms after the answer\n", w.ids[i], u->hbs,
			      (long long)every);
		assert_false(u->hb_early);
		assert_in_range(every, HB_MS - 30, 3 * HB_MS);
	}
}

/* Publishes an rms notification of type with body (stolen) on rms.ntf.ex. */
static void rms_notify(const char *type, json_t *body)
{
	struct cdr_mq_props p = { .persistent = true };
	char id[64], *txt;

	snprintf(id, sizeof(id), "test-rms-%llu", (unsigned long long)++C.seq);
	txt = cdr_msg_encode(type, id, "test-rms", 0, body);
	assert_non_null(txt);
	assert_int_equal(cdr_mq_publish(C.mq, CDR_MQ_RMS_NTF_EX, "", &p, txt, strlen(txt), NULL, NULL), 0);
	free(txt);
}

static json_t *mcu_ntf_body(int epoch)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "mcu", "other-mcu", "key", "other-mcu", "room", "p1-r1",
			 "platform", C.platform, "state", "up", "reason", "registered", "epoch", epoch);
}

static void test_reregister_on_rms_restart_and_epoch(void **state)
{
	struct want w = { { "tsim-a-01", "tsim-a-02", "tsim-a-03", "tsim-av-01" }, 2, 2, 11 };

	(void)state;
	C.rms_epoch = 11;
	rms_notify("rms_all_restarted_ntf", json_pack("{s:s, s:i}", "platform", C.platform, "epoch", 11));
	assert_true(run_until(units_ready, &w, 10000));

	/* Another rms_all_* with a newer epoch: registered with 11, so again. */
	C.rms_epoch = 12;
	w.registers = 3;
	w.epoch = 12;
	rms_notify("rms_all_mcu_ntf", mcu_ntf_body(12));
	assert_true(run_until(units_ready, &w, 10000));

	/* The same epoch again changes nothing; nor does another platform's
	 * restart. */
	rms_notify("rms_all_mcu_ntf", mcu_ntf_body(12));
	rms_notify("rms_all_restarted_ntf", json_pack("{s:s, s:i}", "platform", "elsewhere", "epoch", 13));
	run_for(1000);
	assert_int_equal(unit("tsim-a-01", false)->registers, 3);
	assert_int_equal(unit("tsim-av-01", false)->registers, 3);
	assert_true(unit("tsim-a-01", false)->seq_ok);
	assert_int_equal(unit("tsim-a-01", false)->hb_epoch, 12);
}

static bool running_two(void *arg)
{
	struct unit_seen *u = unit(arg, false);

	return u && u->hb_running == 2;
}

static void test_conferences(void **state)
{
	struct answer *a;
	const char *id;
	char first[64];

	(void)state;
	/* create: ACK with the request's id, its generation, on the MCU's key */
	snprintf(first, sizeof(first), "%s", create("tsim-a-01", "0591000001", 0, 5, 0));
	a = expect(first, "cmu_mau_createconf_ack", NULL);
	assert_string_equal(a->key, "tsim-a-01");
	assert_string_equal(bstr(a->env, "e164"), "0591000001");
	assert_string_equal(bstr(a->env, "mcu"), "tsim-a-01");
	assert_string_equal(json_string_value(json_object_get(a->env, "src")), "tsim-a-01");
	assert_int_equal(bint(a->env, "generation"), 0);

	/* the same create again (a redelivery, a restore): ACK, newer generation */
	a = expect(create("tsim-a-01", "0591000001", 2, 5, 0), "cmu_mau_createconf_ack", NULL);
	assert_int_equal(bint(a->env, "generation"), 2);

	/* capacity 3 */
	expect(create("tsim-a-01", "0591000002", 0, 5, 0), "cmu_mau_createconf_ack", NULL);
	expect(create("tsim-a-01", "0591000003", 0, 5, 0), "cmu_mau_createconf_ack", NULL);
	a = expect(create("tsim-a-01", "0591000004", 0, 5, 0), "cmu_mau_createconf_nack", "no_capacity");
	assert_string_equal(bstr(a->env, "e164"), "0591000004");
	assert_int_equal(bint(a->env, "generation"), 0);

	/* 48 ports: 40 fit, then 16 more do not */
	expect(create("tsim-a-02", "0592000001", 0, 5, 40), "cmu_mau_createconf_ack", NULL);
	a = expect(create("tsim-a-02", "0592000002", 0, 5, 0), "cmu_mau_createconf_nack", "no_ports");
	assert_string_equal(bstr(a->env, "detail"), "16 ports asked, 8 free");

	/* rename */
	id = command("tsim-a-01", "mau_cmu_renameconf_req",
		     json_pack("{s:s, s:s, s:i}", "e164", "0591000002", "name", "renamed conference", "epoch", 5),
		     NULL);
	expect(id, "cmu_mau_renameconf_ack", NULL);
	id = command("tsim-a-01", "mau_cmu_renameconf_req",
		     json_pack("{s:s, s:s, s:i}", "e164", "0591999999", "name", "x", "epoch", 5), NULL);
	expect(id, "cmu_mau_renameconf_nack", "unknown_conference");

	/* end, and end again */
	id = command("tsim-a-01", "mau_cmu_endconf_req",
		     json_pack("{s:s, s:s, s:i}", "e164", "0591000003", "reason", "cm_request", "epoch", 5), NULL);
	expect(id, "cmu_mau_endconf_ack", NULL);
	id = command("tsim-a-01", "mau_cmu_endconf_req", json_pack("{s:s, s:i}", "e164", "0591000003", "epoch", 5),
		     NULL);
	expect(id, "cmu_mau_endconf_nack", "unknown_conference");

	/* fencing: an older epoch from the same css is refused, a newer one
	 * raises the bar */
	a = expect(create("tsim-a-01", "0591000005", 0, 4, 0), "cmu_mau_createconf_nack", "stale_epoch");
	id = command("tsim-a-01", "mau_cmu_endconf_req", json_pack("{s:s, s:i}", "e164", "0591000001", "epoch", 4),
		     NULL);
	expect(id, "cmu_mau_endconf_nack", "stale_epoch");
	id = command("tsim-a-01", "mau_cmu_endconf_req", json_pack("{s:s, s:i}", "e164", "0591999998", "epoch", 6),
		     NULL);
	expect(id, "cmu_mau_endconf_nack", "unknown_conference");
	expect(create("tsim-a-01", "0591000006", 0, 5, 0), "cmu_mau_createconf_nack", "stale_epoch");
	/* another css (another sender) has its own epochs */
	id = command("tsim-a-01", "mau_cmu_endconf_req", json_pack("{s:s, s:i}", "e164", "0591999998", "epoch", 1),
		     "test-css-other");
	expect(id, "cmu_mau_endconf_nack", "unknown_conference");

	/* malformed messages are dropped; the MCU goes on */
	assert_int_equal(publish_command("tsim-a-01", "junk-1", "this is not JSON"), 0);
	assert_int_equal(publish_command("tsim-a-01", "junk-2",
					 "{\"type\":\"mau_cmu_createconf_req\",\"id\":\"junk-2\",\"ts\":1,"
					 "\"src\":\"test-css\",\"body\":{\"epoch\":6}}"),
			 0);
	id = command("tsim-a-01", "mau_cmu_endconf_req", json_pack("{s:s, s:i}", "e164", "0591000002", "epoch", 6),
		     NULL);
	expect(id, "cmu_mau_endconf_ack", NULL);
	assert_null(answer_to("junk-1"));
	assert_null(answer_to("junk-2"));

	/* what runs now: 0591000001 (generation 2) on -01, 0592000001 on -02;
	 * the heartbeats say so */
	expect(create("tsim-a-01", "0591000007", 0, 6, 0), "cmu_mau_createconf_ack", NULL);
	assert_true(run_until(running_two, "tsim-a-01", 3000));
}

/* The latest conference list of mcu among the answers from index from on,
 * and how many there are. */
static json_t *last_list(const char *mcu, size_t from, int *count)
{
	json_t *r = NULL;

	*count = 0;
	for (size_t i = from; i < C.nanswers; i++)
		if (!strcmp(env_type(C.answers[i].env), "cmu_mau_conflist_ntf") && !strcmp(C.answers[i].key, mcu)) {
			if (r && bint(C.answers[i].env, "seq") <= bint(r, "seq"))
				fail_msg("conference list seq did not increase");
			r = C.answers[i].env;
			(*count)++;
		}
	return r;
}

static bool lists_seen(void *arg)
{
	int n;

	last_list("tsim-a-01", *(size_t *)arg, &n);
	return n >= 2;
}

static void test_conference_list(void **state)
{
	size_t from = C.nanswers;
	json_t *l, *confs;
	int n;

	(void)state;
	/* every 300 ms: the second from now lists what runs now */
	assert_true(run_until(lists_seen, &from, 5000));
	last_list("tsim-a-01", 0, &n); /* every seq since the start increased */
	l = last_list("tsim-a-01", from, &n);
	assert_string_equal(bstr(l, "mcu"), "tsim-a-01");
	confs = json_object_get(env_body(l), "confs");
	assert_int_equal(json_array_size(confs), 2);
	for (size_t i = 0; i < 2; i++) {
		const char *e = json_string_value(json_object_get(json_array_get(confs, i), "e164"));

		assert_true(!strcmp(e, "0591000001") || !strcmp(e, "0591000007"));
		if (!strcmp(e, "0591000001"))
			assert_int_equal(json_integer_value(json_object_get(json_array_get(confs, i), "generation")),
					 2);
	}
}

static json_t *read_state(const char *path)
{
	json_error_t e;
	json_t *j = json_load_file(path, 0, &e);

	if (!j)
		fail_msg("state file %s: %s", path, e.text);
	return j;
}

static void test_state_file_and_sigterm(void **state)
{
	char path[128], log[128], line[512];
	json_t *j, *mcus, *m, *confs;
	bool summary = false;
	FILE *f;
	int st;

	(void)state;
	snprintf(path, sizeof(path), "%s/a.json", C.work);
	unlink(path);
	kill(C.sim_a, SIGUSR1);
	for (int i = 0; i < 100 && access(path, F_OK) != 0; i++)
		run_for(20);
	j = read_state(path);
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), C.sim_a);
	assert_string_equal(json_string_value(json_object_get(j, "platform")), C.platform);
	mcus = json_object_get(j, "mcus");
	assert_int_equal(json_array_size(mcus), 3);
	m = json_array_get(mcus, 0);
	assert_string_equal(json_string_value(json_object_get(m, "id")), "tsim-a-01");
	assert_string_equal(json_string_value(json_object_get(m, "key")), "tsim-a-01");
	assert_true(json_is_true(json_object_get(m, "registered")));
	assert_int_equal(json_integer_value(json_object_get(m, "rms_epoch")), 12);
	confs = json_object_get(m, "confs");
	assert_int_equal(json_array_size(confs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(confs, 0), "e164")), "0591000001");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(confs, 0), "generation")), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(confs, 0), "name")), "test conference");
	assert_string_equal(json_string_value(json_object_get(json_array_get(confs, 1), "e164")), "0591000007");
	m = json_array_get(mcus, 1);
	assert_int_equal(json_array_size(json_object_get(m, "confs")), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "vrs"), 0), "id")),
			    "tsim-av-01");
	assert_true(json_is_true(json_object_get(json_array_get(json_object_get(j, "vrs"), 0), "registered")));
	json_decref(j);

	/* SIGTERM: a graceful stop within a few seconds, exit 0, the state
	 * file written, a summary */
	unlink(path);
	st = stop_sim(C.sim_a, SIGTERM, 5000);
	C.sim_a = 0;
	assert_true(st != -1 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	j = read_state(path);
	assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(j, "mcus"), 0), "confs")), 2);
	json_decref(j);
	snprintf(log, sizeof(log), "%s/a.log", C.work);
	f = fopen(log, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "stopped: ")) {
			summary = true;
			if (!strstr(line, "stopped: creates acked 6 (1 again), nacked 4, ignored 0") ||
			    !strstr(line, "ends acked 2, nacked 4; renames acked 1, nacked 1; refused for a stale "
					  "epoch 3, malformed 2"))
				fail_msg("unexpected summary: %s", line);
		}
	fclose(f);
	assert_true(summary);
}

static bool registered(void *arg)
{
	struct unit_seen *u = unit(arg, false);

	return u && u->registers > 0 && u->hbs > 0;
}

static void test_faults(void **state)
{
	pid_t b, c, d, e;
	const char *id;
	uint64_t t0;
	int acked = 0, nacked = 0;
	struct answer *a;
	char ids[40][64];

	(void)state;
	b = spawn_sim("b", (const char *[]){ "--prefix", "tsim-b", "--refuse", "--list-interval", "0", NULL });
	c = spawn_sim("c", (const char *[]){ "--prefix", "tsim-c", "--fail-rate", "0.5", "--seed", "7",
					     "--list-interval", "0", NULL });
	d = spawn_sim("d", (const char *[]){ "--prefix", "tsim-d", "--slow", "700", "--exists-nack", "--list-interval",
					     "0", NULL });
	e = spawn_sim("e", (const char *[]){ "--prefix", "tsim-e", "--no-answer", "--list-interval", "0", NULL });
	assert_true(run_until(registered, "tsim-b-01", 10000));
	assert_true(run_until(registered, "tsim-c-01", 10000));
	assert_true(run_until(registered, "tsim-d-01", 10000));
	assert_true(run_until(registered, "tsim-e-01", 10000));

	/* --refuse, then SIGUSR2 toggles it off */
	expect(create("tsim-b-01", "0593000001", 0, 1, 0), "cmu_mau_createconf_nack", "mcu_refused");
	kill(b, SIGUSR2);
	run_for(300);
	expect(create("tsim-b-01", "0593000001", 0, 1, 0), "cmu_mau_createconf_ack", NULL);

	/* --fail-rate 0.5: some of each */
	for (int i = 0; i < 40; i++) {
		char e164[32];

		snprintf(e164, sizeof(e164), "05940000%02d", i);
		snprintf(ids[i], sizeof(ids[i]), "%s", create("tsim-c-01", e164, 0, 1, 0));
	}
	for (int i = 0; i < 40; i++) {
		a = wait_answer(ids[i], 5000);
		assert_non_null(a);
		if (!strcmp(env_type(a->env), "cmu_mau_createconf_ack")) {
			acked++;
		} else {
			assert_string_equal(bstr(a->env, "reason"), "random_failure");
			nacked++;
		}
	}
	print_message("--fail-rate 0.5: %d acked, %d nacked\n", acked, nacked);
	assert_in_range(acked, 5, 35);
	assert_int_equal(acked + nacked, 40);

	/* --slow 700: the answer comes late */
	t0 = cdr_now_ms();
	id = create("tsim-d-01", "0595000001", 0, 1, 0);
	expect(id, "cmu_mau_createconf_ack", NULL);
	assert_in_range(cdr_now_ms() - t0, 650, 15000); /* late, never early; generous on a loaded machine */
	/* --exists-nack: the same create again is refused "exists" (the other
	 * reading of the contract than the ACK again), with the generation */
	a = expect(create("tsim-d-01", "0595000001", 1, 1, 0), "cmu_mau_createconf_nack", "exists");
	assert_int_equal(bint(a->env, "generation"), 1);

	/* --no-answer: silence, heartbeats go on */
	{
		char idc[64];
		int hbs = unit("tsim-e-01", false)->hbs;

		snprintf(idc, sizeof(idc), "%s", create("tsim-e-01", "0596000001", 0, 1, 0));
		run_for(1500);
		assert_null(answer_to(idc));
		assert_true(unit("tsim-e-01", false)->hbs >= hbs + 4);
	}

	/* kill -9: the private queue goes with the connection, so a create
	 * to that MCU is unroutable (the mandatory publish confirms -EIO) */
	{
		char *txt = cdr_msg_encode("mau_cmu_endconf_req", "test-probe", "test-css", 0,
					   json_pack("{s:s, s:i}", "e164", "0593000009", "epoch", 1));
		int status = 0;

		assert_int_equal(publish_command("tsim-b-01", "test-probe", txt), 0);
		assert_int_equal(kill(b, SIGKILL), 0);
		assert_int_equal(waitpid(b, NULL, 0), b);
		for (int i = 0; i < 50 && status != -EIO; i++) {
			status = publish_command("tsim-b-01", "test-probe", txt);
			if (status != -EIO)
				run_for(100);
		}
		free(txt);
		assert_int_equal(status, -EIO);
	}

	/* a silent or slow MCU still stops at once */
	{
		char idc[64];
		int st;

		snprintf(idc, sizeof(idc), "%s", create("tsim-d-01", "0595000002", 0, 1, 0));
		run_for(100);
		t0 = cdr_now_ms();
		st = stop_sim(d, SIGTERM, 5000);
		assert_true(st != -1 && WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
		assert_in_range(cdr_now_ms() - t0, 0, 3000);
		/* the answer it held back went out before it stopped */
		expect(idc, "cmu_mau_createconf_ack", NULL);
		st = stop_sim(c, SIGTERM, 5000);
		assert_int_equal(WEXITSTATUS(st), 0);
		st = stop_sim(e, SIGTERM, 5000);
		assert_int_equal(WEXITSTATUS(st), 0);
	}
}

static bool scale_registered(void *arg)
{
	size_t n = 0;
	char id[32];

	(void)arg;
	for (int i = 1; i <= SCALE_MCUS; i++) {
		struct unit_seen *u;

		snprintf(id, sizeof(id), "tsim-s-%02d", i);
		u = unit(id, false);
		n += u && u->registers > 0 && u->hbs > 0;
	}
	return n == SCALE_MCUS;
}

static bool burst_answered(void *arg)
{
	return C.nanswers >= *(size_t *)arg;
}

/* One process with 1000 MCUs registers them all and keeps them heart-beating;
 * 40 of them answer a burst of creates. */
static void test_scale(void **state)
{
	uint64_t t0;
	size_t want;
	pid_t pid;
	int acked = 0, st;

	(void)state;
	t0 = cdr_now_ms();
	pid = spawn_sim(
		"s", (const char *[]){ "--prefix", "tsim-s", "--count", "1000", "--list-interval", "0", "-q", NULL });
	/* generous: ASan builds on a loaded 2-core machine took more than 60 s */
	assert_true(run_until(scale_registered, NULL, 180000));
	print_message("%d MCUs registered and heart-beating after %llu ms\n", SCALE_MCUS,
		      (unsigned long long)(cdr_now_ms() - t0));

	want = C.nanswers + BURST;
	t0 = cdr_now_ms();
	for (int i = 0; i < BURST; i++) {
		struct cdr_mq_props p = { .persistent = true };
		char mcu[32], e164[32], id[64], *txt;

		snprintf(mcu, sizeof(mcu), "tsim-s-%02d", 1 + i % BURST_MCUS);
		snprintf(e164, sizeof(e164), "0597%06d", i);
		snprintf(id, sizeof(id), "test-burst-%d", i);
		txt = cdr_msg_encode("mau_cmu_createconf_req", id, "test-css", 0,
				     json_pack("{s:s, s:{s:s, s:s, s:s, s:i, s:s, s:n}, s:s, s:I, s:i, s:i}", "e164",
					       e164, "conf", "e164", e164, "name", "burst", "user_domain", "ud-p1-r1-a",
					       "duration_min", 60, "mcu", mcu, "vrs", "platform", "p1", "planned_end",
					       (json_int_t)(cdr_wall_ms() + 3600000), "generation", 0, "epoch", 1));
		assert_non_null(txt);
		p.correlation_id = id;
		assert_int_equal(cdr_mq_publish(C.mq, CDR_MQ_MAU_CMCMU_EX, mcu, &p, txt, strlen(txt), NULL, NULL), 0);
		free(txt);
	}
	assert_true(run_until(burst_answered, &want, 60000));
	print_message("%d creates over %d MCUs answered in %llu ms\n", BURST, BURST_MCUS,
		      (unsigned long long)(cdr_now_ms() - t0));
	for (size_t i = want - BURST; i < C.nanswers; i++)
		acked += !strcmp(env_type(C.answers[i].env), "cmu_mau_createconf_ack");
	assert_int_equal(acked, BURST);
	st = stop_sim(pid, SIGTERM, 10000);
	assert_true(st != -1 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_registration_and_heartbeats),
		cmocka_unit_test(test_reregister_on_rms_restart_and_epoch),
		cmocka_unit_test(test_conferences),
		cmocka_unit_test(test_conference_list),
		cmocka_unit_test(test_state_file_and_sigterm),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_scale),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
