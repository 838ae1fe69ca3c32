/* Bulk allocation benchmark: 10,000 conferences over 40 simulated MCUs.
 *
 * Measured in one run, median of ROUNDS rounds each:
 *   baseline  the allocation policy in process (rms's inventory, no bus):
 *             the floor of the computation itself;
 *   bulk      one mau_rms_bulkalloc_req of 10,000 to a real confdr-rms over
 *             the sandbox's RabbitMQ, 40 MCUs registered by mcusim;
 *   single    one mau_rms_alloc_req per conference, each waiting for its
 *             answer (what bulk allocation replaces), on 1,000 conferences.
 * Prints conferences allocated per second and the ratios. Needs the sandbox
 * env (bench/run.sh provides it) and no other rms of p1 running. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/topology.h>

#include "harness.h"
#include "rms/inventory.h"

#define NCONFS	10000
#define NSINGLE 1000
#define NMCUS	40
#define ROUNDS	5
#define EPOCH	1
#define TIMEOUT 30000

static struct cdr_loop *loop;
static struct cdr_mq *mq;
static char work[64];
static uint64_t seq;

static void die(const char *what)
{
	fprintf(stderr, "bench_bulk_alloc: %s\n", what);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* ---- baseline: the policy in process ---- */

static double baseline_rate(void)
{
	struct cdr_topology *t;
	struct rms_policy p = {
		.heartbeat_ms = 500, .misses = 3, .rise = 2, .reservation_ms = 60000, .default_ports = 16
	};
	double rates[ROUNDS];
	char err[1024];

	if (cdr_topology_load_files(CONFDR_SOURCE_DIR "/conf/sandbox-topology.json", NULL, &t, err, sizeof(err)) < 0)
		die(err);
	for (int r = 0; r < ROUNDS; r++) {
		struct rms_inv *inv = rms_inv_new("p1", &p, NULL, NULL);
		double t0;

		rms_inv_set_topology(inv, t);
		rms_inv_reset(inv, 1);
		for (int i = 1; i <= NMCUS; i++) {
			char id[32];
			struct rms_mcu_reg reg = { .id = id,
						   .key = id,
						   .room = "p1-r1",
						   .platform = "p1",
						   .cap_confs = 500,
						   .cap_ports = 8000,
						   .h265 = true,
						   .res_1080p = true };

			snprintf(id, sizeof(id), "bench-%02d", i);
			if (rms_inv_register_mcu(inv, &reg, 0, err, sizeof(err)) < 0)
				die(err);
		}
		t0 = now_s();
		for (int i = 0; i < NCONFS; i++) {
			char e164[32];
			struct rms_want w = { .e164 = e164, .user_domain = "ud-p1-r1-a" };
			struct rms_result res;

			snprintf(e164, sizeof(e164), "0590%06d", i);
			rms_inv_allocate(inv, &w, 0, &res);
			if (res.reason != RMS_OK)
				die("in-process allocation failed");
		}
		rates[r] = NCONFS / (now_s() - t0);
		rms_inv_free(inv);
	}
	cdr_topology_free(t);
	return median(rates, ROUNDS);
}

/* ---- over the bus ---- */

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = th_spawn(argv, log, false);

	if (pid < 0)
		die("fork failed");
	return pid;
}

static void stop(pid_t pid)
{
	th_stop(NULL, pid, SIGTERM, 15000);
}

struct call {
	bool done;
	int status;
	json_t *reply;
};

static void on_reply(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct call *c = arg;

	c->status = status;
	c->reply = reply ? json_loadb(reply->body, reply->len, 0, NULL) : NULL;
	c->done = true;
	cdr_loop_stop(loop);
}

static void on_deadline(void *arg)
{
	(void)arg;
	cdr_loop_stop(loop);
}

/* Sends type/body (stolen) to rms.req.q; returns the reply body (new ref) or
 * NULL on timeout. */
static json_t *request(const char *type, json_t *body, unsigned timeout_ms)
{
	struct call c = { 0 };
	struct cdr_timer *t;
	char id[64], *txt;
	json_t *b = NULL;

	snprintf(id, sizeof(id), "bench-%llu", (unsigned long long)++seq);
	txt = cdr_msg_encode(type, id, "bench", 0, body);
	if (!txt || cdr_mq_request(mq, "", CDR_MQ_RMS_REQ_Q, txt, strlen(txt), timeout_ms, on_reply, &c) < 0)
		die("cannot send a request");
	free(txt);
	cdr_timer_new(loop, on_deadline, NULL, &t);
	cdr_timer_start(t, timeout_ms + 2000, false);
	while (!c.done && cdr_timer_pending(t))
		cdr_loop_run(loop);
	cdr_timer_free(t);
	if (c.reply) {
		b = json_incref(json_object_get(c.reply, "body"));
		json_decref(c.reply);
	}
	return b;
}

static int mcus_up(void)
{
	json_t *b = request("ctl_rms_inventory_req", json_object(), 2000), *m;
	size_t i;
	int up = 0;

	json_array_foreach(json_object_get(b, "mcus"), i, m) up +=
		!strncmp(json_string_value(json_object_get(m, "mcu")), "bmcu-", 5) &&
		!strcmp(json_string_value(json_object_get(m, "state")), "up");
	json_decref(b);
	return up;
}

static void release(json_t *ids)
{
	json_decref(
		request("mau_rms_release_req", json_pack("{s:o, s:i}", "reservations", ids, "epoch", EPOCH), TIMEOUT));
}

static double bulk_round(void)
{
	json_t *confs = json_array(), *b, *ids = json_array(), *a;
	double t0, dt;
	size_t i;

	for (int k = 0; k < NCONFS; k++) {
		char e164[32];

		snprintf(e164, sizeof(e164), "0591%06d", k);
		json_array_append_new(confs, json_pack("{s:s, s:s}", "e164", e164, "user_domain", "ud-p1-r1-a"));
	}
	t0 = now_s();
	b = request("mau_rms_bulkalloc_req", json_pack("{s:o, s:i}", "confs", confs, "epoch", EPOCH), TIMEOUT);
	dt = now_s() - t0;
	if (!b || json_array_size(json_object_get(b, "allocated")) != NCONFS)
		die("the bulk allocation did not allocate every conference");
	json_array_foreach(json_object_get(b, "allocated"), i, a)
		json_array_append(ids, json_object_get(a, "reservation"));
	json_decref(b);
	release(ids);
	return NCONFS / dt;
}

static double single_round(void)
{
	json_t *ids = json_array();
	double t0 = now_s(), dt;

	for (int k = 0; k < NSINGLE; k++) {
		char e164[32];
		json_t *b;

		snprintf(e164, sizeof(e164), "0592%06d", k);
		b = request("mau_rms_alloc_req",
			    json_pack("{s:s, s:s, s:i}", "e164", e164, "user_domain", "ud-p1-r1-a", "epoch", EPOCH),
			    TIMEOUT);
		if (!b || !json_object_get(b, "reservation"))
			die("a single allocation failed");
		json_array_append(ids, json_object_get(b, "reservation"));
		json_decref(b);
	}
	dt = now_s() - t0;
	release(ids);
	return NSINGLE / dt;
}

int main(void)
{
	const char *zk = th_env("CONFDR_ZK"), *url = th_env("CONFDR_P1_AMQP_URL");
	struct cdr_mq_opts o = { 0 };
	char conf[128], log[128], slog[128];
	double base, bulk[ROUNDS], single[ROUNDS], b, s;
	pid_t rms, sim;
	FILE *f;

	if (!zk || !url)
		die("CONFDR_ZK and CONFDR_P1_AMQP_URL are not set: run bench/run.sh (or under `deploy/sandbox.sh "
		    "env`)");
	printf("bulk allocation: %d conferences over %d simulated MCUs, median of %d rounds\n", NCONFS, NMCUS, ROUNDS);
	base = baseline_rate();

	snprintf(work, sizeof(work), "/tmp/confdr-bench-XXXXXX");
	if (!mkdtemp(work))
		die("mkdtemp failed");
	snprintf(conf, sizeof(conf), "%s/rms.conf", work);
	snprintf(log, sizeof(log), "%s/rms.log", work);
	snprintf(slog, sizeof(slog), "%s/mcusim.log", work);
	if (!(f = fopen(conf, "w")))
		die("cannot write the rms config");
	fprintf(f,
		"[daemon]\nplatform = p1\ninstance = bench-rms\nlog_level = notice\n[zookeeper]\nhosts = %s\n"
		"session_timeout = 4s\n[amqp]\nuser = confdr\npassword = confdr\ntls_ca = "
		"%s\n[rms]\nreservation_timeout = "
		"5m\n",
		zk, th_env("CONFDR_TLS_CA") ? th_env("CONFDR_TLS_CA") : "");
	fclose(f);
	rms = spawn((char *const[]){ CONFDR_BINARY_DIR "/confdr-rms", "-c", conf, NULL }, log);
	sim = spawn((char *const[]){ CONFDR_BINARY_DIR "/mcusim", "--platform", "p1", "--room", "p1-r1", "--prefix",
				     "bmcu", "--count", "40", "--capacity", "500", "--list-interval", "0", NULL },
		    slog);
	if (cdr_loop_new(&loop) < 0)
		die("no loop");
	o.url = url;
	o.name = "bench";
	if (cdr_mq_new(loop, &o, &mq) < 0)
		die("cannot create the AMQP client");
	cdr_mq_declare_design(mq);
	for (int i = 0; i < 60 && mcus_up() < NMCUS; i++)
		sleep(1);
	if (mcus_up() < NMCUS) {
		stop(sim);
		stop(rms);
		die("the 40 MCUs did not register with rms within 60 s (see the logs under /tmp/confdr-bench-*)");
	}
	for (int r = 0; r < ROUNDS; r++) {
		bulk[r] = bulk_round();
		single[r] = single_round();
	}
	b = median(bulk, ROUNDS);
	s = median(single, ROUNDS);
	printf("  baseline  in-process policy      %10.0f confs/s\n", base);
	printf("  bulk      one request of %5d    %10.0f confs/s  (%.2f of baseline; %.1f ms per bulk)\n", NCONFS, b,
	       b / base, 1000.0 * NCONFS / b);
	printf("  single    one request each (%d) %10.0f confs/s  (bulk is %.1fx faster)\n", NSINGLE, s, b / s);
	cdr_mq_free(mq);
	cdr_loop_free(loop);
	stop(sim);
	stop(rms);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", work);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", work);
	}
	return 0;
}
