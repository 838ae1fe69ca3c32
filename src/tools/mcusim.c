/* mcusim: simulated MCUs (and VRS) of one room, speaking the real protocol
 * over the real broker (docs/mcusim.md, docs/protocol.md):
 *   register with rms (cmu_rms_register_req on rms.res.q) and heart-beat;
 *   register again on rms_all_restarted_ntf, on an rms epoch change, and
 *   after a broker re-connection;
 *   take create / end / rename on mau.cmcmu.ex with each MCU's key (a private
 *   auto-deleted queue: a killed simulator leaves nothing behind) and answer
 *   ACK or NACK on cmu.mau.ex;
 *   report each MCU's conference list periodically;
 *   optionally refuse, be slow, fail at random, or never answer.
 * Killing it is how tests take MCUs or a room down. */
#include <confdr/hmap.h>
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#define EX_USAGE	    64
#define EX_UNAVAILABLE	    69
#define REGISTER_TIMEOUT_MS 3000
#define STATE_EVERY_MS	    200

struct conf {
	char e164[40];
	char *name;
	int64_t generation, ports;
};

struct mcu {
	struct sim *sim;
	char id[128];
	bool vrs;
	bool registered, registering;
	int64_t rms_epoch, hb_ms, seq, list_seq;
	uint64_t next_hb_ms, next_register_ms;
	struct cdr_backoff backoff;
	struct cdr_hmap *confs; /* e164 -> struct conf */
	int64_t used_ports;
};

struct opts {
	const char *platform, *room, *prefix, *vrs_prefix, *amqp, *state;
	int count, nvrs;
	int64_t capacity, ports, vrs_capacity;
	bool h265, r1080, xmpu, backup, refuse, no_answer;
	int weight, priority;
	double fail_rate;
	unsigned seed;
	int64_t slow_ms, list_ms, duration_s;
	int verbosity;
};

struct sim {
	struct opts o;
	struct cdr_loop *loop;
	struct cdr_mq *mq;
	struct mcu *mcus; /* count MCUs then nvrs VRS */
	int n;
	struct cdr_timer *tick, *stop_timer;
	struct cdr_hmap *css_epochs; /* sender -> int64 epoch (boxed) */
	bool was_up, state_dirty;
	uint64_t state_written_ms, seq;
	uint64_t n_acked, n_nacked, n_ended;
};

static struct sim S;

/* ---- publishing ---- */

static void publish(const char *exchange, const char *key, const char *txt, const char *corr, bool persistent)
{
	struct cdr_mq_props p = { .persistent = persistent, .correlation_id = corr };
	int r = cdr_mq_publish(S.mq, exchange, key, &p, txt, strlen(txt), NULL, NULL);

	if (r < 0)
		cdr_warn("publish to %s/%s failed: %s", exchange, key, strerror(-r));
}

/* ---- registration and heartbeats ---- */

static void on_registered(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct mcu *m = arg;
	struct cdr_msg_error err;
	struct cdr_msg *msg = NULL;

	m->registering = false;
	if (status || cdr_msg_decode(reply->body, reply->len, 0, &msg, &err) < 0) {
		cdr_warn("%s: registration %s; retrying", m->id, status ? strerror(-status) : err.detail);
		m->next_register_ms = cdr_now_ms() + cdr_backoff_next(&m->backoff);
		return;
	}
	if (strstr(cdr_msg_type(msg), "_nack")) {
		cdr_warn("%s: registration refused: %s: %s; retrying", m->id, cdr_msg_str(msg, "reason", "?"),
			 cdr_msg_str(msg, "detail", ""));
		m->next_register_ms = cdr_now_ms() + cdr_backoff_next(&m->backoff);
	} else {
		m->registered = true;
		m->rms_epoch = cdr_msg_int(msg, "epoch", 0);
		m->hb_ms = cdr_msg_int(msg, "heartbeat_ms", 1000);
		m->next_hb_ms = cdr_now_ms() + (uint64_t)m->hb_ms;
		cdr_backoff_reset(&m->backoff);
		cdr_info("%s registered with rms epoch %" PRId64 ", heartbeat %" PRId64 " ms", m->id, m->rms_epoch,
			 m->hb_ms);
		S.state_dirty = true;
	}
	cdr_msg_free(msg);
}

static void do_register(struct mcu *m)
{
	char id[200], *txt;
	json_t *b;
	int r;

	if (m->vrs)
		b = json_pack("{s:s, s:s, s:s, s:I, s:i, s:i, s:I}", "vrs", m->id, "room", S.o.room, "platform",
			      S.o.platform, "capacity", (json_int_t)S.o.vrs_capacity, "weight", S.o.weight, "priority",
			      S.o.priority, "running", (json_int_t)cdr_hmap_count(m->confs));
	else
		b = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:b, s:i, s:i, s:b, s:I, s:I}", "mcu", m->id,
			      "key", m->id, "room", S.o.room, "platform", S.o.platform, "capacity_confs",
			      (json_int_t)S.o.capacity, "capacity_ports", (json_int_t)S.o.ports, "h265", S.o.h265,
			      "res_1080p", S.o.r1080, "xmpu", S.o.xmpu, "weight", S.o.weight, "priority", S.o.priority,
			      "backup", S.o.backup, "running_confs", (json_int_t)cdr_hmap_count(m->confs), "used_ports",
			      (json_int_t)m->used_ports);
	snprintf(id, sizeof(id), "%s-register-%" PRIu64, m->id, ++S.seq);
	txt = cdr_msg_encode(m->vrs ? "vrs_rms_register_req" : "cmu_rms_register_req", id, m->id, 0, b);
	if (!txt)
		return;
	r = cdr_mq_request(S.mq, "", CDR_MQ_RMS_RES_Q, txt, strlen(txt), REGISTER_TIMEOUT_MS, on_registered, m);
	free(txt);
	if (r < 0) {
		m->next_register_ms = cdr_now_ms() + cdr_backoff_next(&m->backoff);
		return;
	}
	m->registering = true;
}

static void heartbeat(struct mcu *m)
{
	char id[200], *txt;
	json_t *b;

	if (m->vrs)
		b = json_pack("{s:s, s:I, s:I, s:I}", "vrs", m->id, "seq", (json_int_t)++m->seq, "running",
			      (json_int_t)cdr_hmap_count(m->confs), "epoch", (json_int_t)m->rms_epoch);
	else
		b = json_pack("{s:s, s:I, s:I, s:I, s:I}", "mcu", m->id, "seq", (json_int_t)++m->seq, "running_confs",
			      (json_int_t)cdr_hmap_count(m->confs), "used_ports", (json_int_t)m->used_ports, "epoch",
			      (json_int_t)m->rms_epoch);
	snprintf(id, sizeof(id), "%s-hb-%" PRId64, m->id, m->seq);
	txt = cdr_msg_encode(m->vrs ? "vrs_rms_heartbeat_ntf" : "cmu_rms_heartbeat_ntf", id, m->id, 0, b);
	if (txt)
		publish("", CDR_MQ_RMS_RES_Q, txt, NULL, false);
	free(txt);
}

static void conflist(struct mcu *m)
{
	json_t *confs = json_array();
	size_t it = 0;
	void *v;
	char id[200], *txt;

	while (cdr_hmap_next(m->confs, &it, NULL, &v)) {
		struct conf *c = v;

		json_array_append_new(confs, json_pack("{s:s, s:I, s:s}", "e164", c->e164, "generation",
						       (json_int_t)c->generation, "name", c->name));
	}
	snprintf(id, sizeof(id), "%s-conflist-%" PRId64, m->id, ++m->list_seq);
	txt = cdr_msg_encode(
		"cmu_mau_conflist_ntf", id, m->id, 0,
		json_pack("{s:s, s:I, s:o}", "mcu", m->id, "seq", (json_int_t)m->list_seq, "confs", confs));
	if (txt)
		publish(CDR_MQ_CMU_MAU_EX, m->id, txt, NULL, true);
	free(txt);
}

static void reregister_all(const char *why)
{
	cdr_info("registering again: %s", why);
	for (int i = 0; i < S.n; i++) {
		S.mcus[i].registered = false;
		S.mcus[i].next_register_ms = 0;
		cdr_backoff_reset(&S.mcus[i].backoff);
	}
}

/* ---- the state file ---- */

static void write_state(void)
{
	json_t *mcus = json_array(), *vrs = json_array(), *doc;
	char tmp[4096];
	FILE *f;

	if (!S.o.state)
		return;
	for (int i = 0; i < S.n; i++) {
		struct mcu *m = &S.mcus[i];
		json_t *confs = json_array();
		size_t it = 0;
		void *v;

		if (m->vrs) {
			json_array_append_new(vrs, json_pack("{s:s, s:b}", "id", m->id, "registered", m->registered));
			continue;
		}
		while (cdr_hmap_next(m->confs, &it, NULL, &v)) {
			struct conf *c = v;

			json_array_append_new(confs, json_pack("{s:s, s:I, s:s}", "e164", c->e164, "generation",
							       (json_int_t)c->generation, "name", c->name));
		}
		json_array_append_new(mcus,
				      json_pack("{s:s, s:s, s:b, s:I, s:o}", "id", m->id, "key", m->id, "registered",
						m->registered, "rms_epoch", (json_int_t)m->rms_epoch, "confs", confs));
	}
	doc = json_pack("{s:i, s:s, s:s, s:I, s:o, s:o}", "pid", (int)getpid(), "platform", S.o.platform, "room",
			S.o.room, "updated_ms", (json_int_t)cdr_wall_ms(), "mcus", mcus, "vrs", vrs);
	snprintf(tmp, sizeof(tmp), "%s.tmp", S.o.state);
	f = fopen(tmp, "w");
	if (!f || json_dumpf(doc, f, JSON_COMPACT) < 0 || fclose(f) != 0 || rename(tmp, S.o.state) < 0)
		cdr_warn("cannot write the state file %s: %s", S.o.state, strerror(errno));
	json_decref(doc);
	S.state_dirty = false;
	S.state_written_ms = cdr_now_ms();
}

/* ---- commands from css ---- */

struct pending {
	char *txt, *corr, *key;
	struct cdr_timer *t;
};

static void send_pending(void *arg)
{
	struct pending *p = arg;

	publish(CDR_MQ_CMU_MAU_EX, p->key, p->txt, p->corr, true);
	cdr_timer_free(p->t);
	free(p->txt);
	free(p->corr);
	free(p->key);
	free(p);
}

/* Answers req from MCU m: ack, or nack with reason. */
static void reply(struct mcu *m, const struct cdr_msg *req, bool ack, const char *reason, const char *detail,
		  int64_t generation)
{
	json_t *b = json_pack("{s:s, s:s}", "e164", cdr_msg_str(req, "e164", ""), "mcu", m->id);
	struct pending *p;
	char *txt;

	if (generation >= 0)
		json_object_set_new(b, "generation", json_integer(generation));
	if (!ack) {
		json_object_set_new(b, "reason", json_string(reason));
		json_object_set_new(b, "detail", json_string(detail ? detail : ""));
	}
	txt = cdr_msg_encode_reply(req, ack, m->id, b);
	if (!txt)
		return;
	if (S.o.slow_ms <= 0) {
		publish(CDR_MQ_CMU_MAU_EX, m->id, txt, cdr_msg_id(req), true);
		free(txt);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p || cdr_timer_new(S.loop, send_pending, p, &p->t) < 0) {
		free(p);
		free(txt);
		return;
	}
	p->txt = txt;
	p->corr = strdup(cdr_msg_id(req));
	p->key = strdup(m->id);
	cdr_timer_start(p->t, (uint64_t)S.o.slow_ms, false);
}

static bool stale(const struct cdr_msg *req)
{
	const char *who = cdr_msg_str(req, "platform", cdr_msg_src(req));
	int64_t epoch = cdr_msg_int(req, "epoch", 0), *seen = cdr_hmap_get(S.css_epochs, who);
	char *k;

	if (seen) {
		if (epoch < *seen)
			return true;
		*seen = epoch;
		return false;
	}
	seen = malloc(sizeof(*seen) + strlen(who) + 1);
	if (!seen)
		return false;
	*seen = epoch;
	k = (char *)(seen + 1);
	strcpy(k, who);
	cdr_hmap_put(S.css_epochs, k, seen);
	return false;
}

static void on_create(struct mcu *m, const struct cdr_msg *req)
{
	const char *e164 = cdr_msg_str(req, "e164", "");
	json_t *conf = cdr_msg_get(req, "conf");
	int64_t gen = cdr_msg_int(req, "generation", 0), ports = cdr_msg_jint(conf, "max_participants", 16);
	struct conf *c = cdr_hmap_get(m->confs, e164);
	char detail[128];

	if (S.o.no_answer)
		return;
	if (S.o.refuse || (S.o.fail_rate > 0 && (double)rand_r(&S.o.seed) / RAND_MAX < S.o.fail_rate)) {
		S.n_nacked++;
		reply(m, req, false, S.o.refuse ? "mcu_refused" : "random_failure", "mcusim was told to refuse", gen);
		return;
	}
	if (c) { /* a redelivery or a re-create: idempotent */
		c->generation = gen;
		S.n_acked++;
		reply(m, req, true, NULL, NULL, gen);
		return;
	}
	if ((int64_t)cdr_hmap_count(m->confs) >= S.o.capacity) {
		snprintf(detail, sizeof(detail), "%" PRId64 " conferences running, capacity %" PRId64,
			 (int64_t)cdr_hmap_count(m->confs), S.o.capacity);
		S.n_nacked++;
		reply(m, req, false, "no_capacity", detail, gen);
		return;
	}
	if (m->used_ports + ports > S.o.ports) {
		snprintf(detail, sizeof(detail), "%" PRId64 " ports asked, %" PRId64 " free", ports,
			 S.o.ports - m->used_ports);
		S.n_nacked++;
		reply(m, req, false, "no_ports", detail, gen);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	snprintf(c->e164, sizeof(c->e164), "%s", e164);
	c->name = strdup(cdr_msg_jstr(conf, "name", e164));
	c->generation = gen;
	c->ports = ports;
	if (!c->name || cdr_hmap_put(m->confs, c->e164, c) < 0) {
		free(c->name);
		free(c);
		return;
	}
	m->used_ports += ports;
	S.n_acked++;
	S.state_dirty = true;
	reply(m, req, true, NULL, NULL, gen);
}

static void on_end(struct mcu *m, const struct cdr_msg *req)
{
	struct conf *c = cdr_hmap_del(m->confs, cdr_msg_str(req, "e164", ""));

	if (!c) {
		reply(m, req, false, "unknown_conference", "not running on this MCU", -1);
		return;
	}
	m->used_ports -= c->ports;
	free(c->name);
	free(c);
	S.n_ended++;
	S.state_dirty = true;
	reply(m, req, true, NULL, NULL, -1);
}

static void on_rename(struct mcu *m, const struct cdr_msg *req)
{
	struct conf *c = cdr_hmap_get(m->confs, cdr_msg_str(req, "e164", ""));
	char *name;

	if (!c) {
		reply(m, req, false, "unknown_conference", "not running on this MCU", -1);
		return;
	}
	if ((name = strdup(cdr_msg_str(req, "name", c->name)))) {
		free(c->name);
		c->name = name;
	}
	S.state_dirty = true;
	reply(m, req, true, NULL, NULL, -1);
}

static void on_command(struct cdr_mq_delivery *d, void *arg)
{
	struct mcu *m = arg;
	struct cdr_msg_error err;
	struct cdr_msg *req = NULL;
	const char *type;

	if (cdr_msg_decode(d->body, d->len, 0, &req, &err) < 0) {
		cdr_warn("%s: dropped a message it cannot read (%s): %s", m->id, cdr_msg_fault_name(err.fault),
			 err.detail);
		cdr_mq_ack(d);
		return;
	}
	type = cdr_msg_type(req);
	if (stale(req)) {
		reply(m, req, false, "stale_epoch", "an older epoch than one already seen", -1);
	} else if (!strcmp(type, "mau_cmu_createconf_req")) {
		on_create(m, req);
	} else if (!strcmp(type, "mau_cmu_endconf_req")) {
		on_end(m, req);
	} else if (!strcmp(type, "mau_cmu_renameconf_req")) {
		on_rename(m, req);
	} else {
		cdr_debug("%s: %s ignored", m->id, type);
	}
	cdr_msg_free(req);
	cdr_mq_ack(d);
}

static void on_rms_ntf(struct cdr_mq_delivery *d, void *arg)
{
	struct cdr_msg_error err;
	struct cdr_msg *msg = NULL;

	(void)arg;
	if (cdr_msg_decode(d->body, d->len, 0, &msg, &err) == 0) {
		int64_t epoch = cdr_msg_int(msg, "epoch", -1);
		bool changed = false;

		for (int i = 0; i < S.n; i++)
			changed |= S.mcus[i].registered && epoch > S.mcus[i].rms_epoch;
		if (!strcmp(cdr_msg_type(msg), "rms_all_restarted_ntf"))
			reregister_all("rms restarted");
		else if (changed)
			reregister_all("rms epoch changed");
	}
	cdr_msg_free(msg);
	cdr_mq_ack(d);
}

/* ---- life ---- */

static void on_tick(void *arg)
{
	uint64_t now = cdr_now_ms();

	(void)arg;
	if (!cdr_mq_connected(S.mq))
		return;
	for (int i = 0; i < S.n; i++) {
		struct mcu *m = &S.mcus[i];

		if (!m->registered && !m->registering && now >= m->next_register_ms)
			do_register(m);
		if (m->registered && now >= m->next_hb_ms) {
			heartbeat(m);
			m->next_hb_ms = now + (uint64_t)m->hb_ms;
		}
	}
	if (S.o.list_ms > 0) {
		static uint64_t next_list;

		if (now >= next_list) {
			for (int i = 0; i < S.n; i++)
				if (!S.mcus[i].vrs)
					conflist(&S.mcus[i]);
			next_list = now + (uint64_t)S.o.list_ms;
		}
	}
	if (S.state_dirty && now - S.state_written_ms >= STATE_EVERY_MS)
		write_state();
}

static void on_mq_state(bool up, const char *why, void *arg)
{
	(void)arg;
	if (up && S.was_up)
		reregister_all("broker re-connected");
	if (up)
		S.was_up = true;
	if (!up)
		cdr_warn("broker: %s", why ? why : "down");
}

static void on_signal(int signo, void *arg)
{
	(void)arg;
	if (signo == SIGUSR1) {
		write_state();
		return;
	}
	cdr_loop_stop(S.loop);
}

static void on_stop_timer(void *arg)
{
	(void)arg;
	cdr_info("--duration reached");
	cdr_loop_stop(S.loop);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mcusim --platform P --room ROOM [options]\n\n"
		   "Simulated MCUs (and VRS) of one room on the real broker: they register with rms and heart-beat,\n"
		   "take create/end/rename on mau.cmcmu.ex with their key, answer on cmu.mau.ex, and report\n"
		   "their conference lists. Kill it to take them down.\n\n"
		   "  --platform P          platform MOID (required)\n"
		   "  --room ROOM           room MOID, e.g. p1-r1 (required)\n"
		   "  --count N             MCUs to simulate (default 1, at most 1000)\n"
		   "  --prefix S            MCU ids and keys are S-01, S-02, ... (default mcu-ROOM)\n"
		   "  --capacity N          conferences per MCU (default 500)\n"
		   "  --ports N             ports per MCU (default capacity x 16)\n"
		   "  --h265 yes|no         H.265 capable (default yes)\n"
		   "  --1080p yes|no        1080p capable (default yes)\n"
		   "  --xmpu yes|no         XMPU (default no)\n"
		   "  --weight N            weight (default 100)\n"
		   "  --priority N          priority, lower preferred (default 100)\n"
		   "  --backup              register as backup (sorry-server) MCUs\n"
		   "  --vrs N               VRS to simulate too (default 0)\n"
		   "  --vrs-prefix S        VRS ids are S-01, S-02, ... (default vrs-ROOM)\n"
		   "  --vrs-capacity N      recordings per VRS (default 500)\n"
		   "  --amqp URL            broker (default $CONFDR_<PLATFORM>_AMQP_URL, then $CONFDR_AMQP_URL)\n"
		   "  --list-interval MS    conference list every MS ms per MCU (default 5000; 0 never)\n"
		   "  --refuse              NACK every create (reason mcu_refused)\n"
		   "  --fail-rate R         NACK a create with probability R, 0..1 (reason random_failure)\n"
		   "  --seed N              random seed for --fail-rate (default 1)\n"
		   "  --slow MS             answer every request MS ms late\n"
		   "  --no-answer           never answer creates (still heart-beats)\n"
		   "  --state FILE          write what runs to FILE (JSON, atomically) on change, on SIGUSR1, at exit\n"
		   "  --duration S          stop after S seconds (default 0: until SIGTERM/SIGINT)\n"
		   "  -v, -q                more, less logging\n"
		   "  -h, --help            this text\n\n"
		   "Exit status: 0 stopped, 64 bad usage, 69 no broker address.\n");
}

static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "mcusim: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see --help)\n");
	return EX_USAGE;
}

static bool num(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool yesno(const char *s, bool *out)
{
	if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "1"))
		*out = true;
	else if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "0"))
		*out = false;
	else
		return false;
	return true;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "platform", required_argument, NULL, 'P' },
		{ "room", required_argument, NULL, 'R' },
		{ "count", required_argument, NULL, 'n' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "ports", required_argument, NULL, 'o' },
		{ "h265", required_argument, NULL, '5' },
		{ "1080p", required_argument, NULL, '8' },
		{ "xmpu", required_argument, NULL, 'x' },
		{ "weight", required_argument, NULL, 'w' },
		{ "priority", required_argument, NULL, 'y' },
		{ "backup", no_argument, NULL, 'b' },
		{ "vrs", required_argument, NULL, 'V' },
		{ "vrs-prefix", required_argument, NULL, 'W' },
		{ "vrs-capacity", required_argument, NULL, 'C' },
		{ "amqp", required_argument, NULL, 'a' },
		{ "list-interval", required_argument, NULL, 'l' },
		{ "refuse", no_argument, NULL, 'r' },
		{ "fail-rate", required_argument, NULL, 'f' },
		{ "seed", required_argument, NULL, 's' },
		{ "slow", required_argument, NULL, 'S' },
		{ "no-answer", no_argument, NULL, 'N' },
		{ "state", required_argument, NULL, 'T' },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt;
	int64_t v;
	char *end;

	*o = (struct opts){ .count = 1,
			    .capacity = 500,
			    .vrs_capacity = 500,
			    .h265 = true,
			    .r1080 = true,
			    .weight = 100,
			    .priority = 100,
			    .seed = 1,
			    .list_ms = 5000 };
	while ((opt = getopt_long(argc, argv, "vqh", lo, NULL)) != -1) {
		switch (opt) {
		case 'P': o->platform = optarg; break;
		case 'R': o->room = optarg; break;
		case 'p': o->prefix = optarg; break;
		case 'W': o->vrs_prefix = optarg; break;
		case 'a': o->amqp = optarg; break;
		case 'T': o->state = optarg; break;
		case 'b': o->backup = true; break;
		case 'r': o->refuse = true; break;
		case 'N': o->no_answer = true; break;
		case 'v': o->verbosity++; break;
		case 'q': o->verbosity--; break;
		case 'n':
			if (!num(optarg, 1, 1000, &v))
				return bad("--count wants 1..1000, not %s", optarg);
			o->count = (int)v;
			break;
		case 'V':
			if (!num(optarg, 0, 1000, &v))
				return bad("--vrs wants 0..1000, not %s", optarg);
			o->nvrs = (int)v;
			break;
		case 'c':
			if (!num(optarg, 1, 100000, &o->capacity))
				return bad("--capacity wants 1..100000, not %s", optarg);
			break;
		case 'o':
			if (!num(optarg, 1, 1000000, &o->ports))
				return bad("--ports wants 1..1000000, not %s", optarg);
			break;
		case 'C':
			if (!num(optarg, 1, 100000, &o->vrs_capacity))
				return bad("--vrs-capacity wants 1..100000, not %s", optarg);
			break;
		case '5':
			if (!yesno(optarg, &o->h265))
				return bad("--h265 wants yes or no, not %s", optarg);
			break;
		case '8':
			if (!yesno(optarg, &o->r1080))
				return bad("--1080p wants yes or no, not %s", optarg);
			break;
		case 'x':
			if (!yesno(optarg, &o->xmpu))
				return bad("--xmpu wants yes or no, not %s", optarg);
			break;
		case 'w':
			if (!num(optarg, 1, 1000, &v))
				return bad("--weight wants 1..1000, not %s", optarg);
			o->weight = (int)v;
			break;
		case 'y':
			if (!num(optarg, 0, 1000, &v))
				return bad("--priority wants 0..1000, not %s", optarg);
			o->priority = (int)v;
			break;
		case 'l':
			if (!num(optarg, 0, 3600000, &o->list_ms))
				return bad("--list-interval wants 0..3600000 ms, not %s", optarg);
			break;
		case 'S':
			if (!num(optarg, 0, 600000, &o->slow_ms))
				return bad("--slow wants 0..600000 ms, not %s", optarg);
			break;
		case 'd':
			if (!num(optarg, 0, 86400 * 365, &o->duration_s))
				return bad("--duration wants seconds, not %s", optarg);
			break;
		case 's':
			if (!num(optarg, 0, UINT32_MAX, &v))
				return bad("--seed wants 0..4294967295, not %s", optarg);
			o->seed = (unsigned)v;
			break;
		case 'f':
			o->fail_rate = strtod(optarg, &end);
			if (*end || end == optarg || o->fail_rate < 0 || o->fail_rate > 1)
				return bad("--fail-rate wants 0..1, not %s", optarg);
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind != argc)
		return bad("unexpected argument %s", argv[optind]);
	if (!o->platform || !o->room)
		return bad("%s", "--platform and --room are required");
	if ((o->prefix && strlen(o->prefix) > 56) || (o->vrs_prefix && strlen(o->vrs_prefix) > 56) ||
	    strlen(o->room) > 52)
		return bad("%s", "ids are at most 64 characters: --prefix, --vrs-prefix and --room too long");
	if (!o->ports)
		o->ports = o->capacity * 16;
	return 0;
}

static const char *broker_url(const struct opts *o)
{
	char name[128];
	size_t i;

	if (o->amqp)
		return o->amqp;
	snprintf(name, sizeof(name), "CONFDR_%s_AMQP_URL", o->platform);
	for (i = 7; name[i]; i++)
		name[i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
	if (getenv(name) && *getenv(name))
		return getenv(name);
	if (getenv("CONFDR_AMQP_URL") && *getenv("CONFDR_AMQP_URL"))
		return getenv("CONFDR_AMQP_URL");
	return NULL;
}

int main(int argc, char **argv)
{
	struct cdr_mq_opts mo = { 0 };
	char prefix[96], vprefix[96], name[96];
	const char *url;
	int r, level;

	if ((r = parse(argc, argv, &S.o)))
		return r;
	if (!(url = broker_url(&S.o))) {
		fprintf(stderr, "mcusim: no broker: give --amqp URL or set CONFDR_<PLATFORM>_AMQP_URL "
				"(eval \"$(deploy/sandbox.sh env)\")\n");
		return EX_UNAVAILABLE;
	}
	level = S.o.verbosity > 0 ? CDR_LOG_DEBUG : S.o.verbosity < 0 ? CDR_LOG_WARN : CDR_LOG_INFO;
	snprintf(name, sizeof(name), "mcusim-%s", S.o.room);
	cdr_log_setup("mcusim", S.o.platform, level, true);
	snprintf(prefix, sizeof(prefix), "%s", S.o.prefix ? S.o.prefix : "");
	if (!S.o.prefix)
		snprintf(prefix, sizeof(prefix), "mcu-%s", S.o.room);
	if (S.o.vrs_prefix)
		snprintf(vprefix, sizeof(vprefix), "%s", S.o.vrs_prefix);
	else
		snprintf(vprefix, sizeof(vprefix), "vrs-%s", S.o.room);
	signal(SIGPIPE, SIG_IGN);
	S.n = S.o.count + S.o.nvrs;
	S.mcus = calloc((size_t)S.n, sizeof(*S.mcus));
	S.css_epochs = cdr_hmap_new();
	if (!S.mcus || !S.css_epochs || cdr_loop_new(&S.loop) < 0)
		return 1;
	mo.url = url;
	mo.name = name;
	mo.reconnect_min_ms = 200;
	mo.reconnect_max_ms = 2000;
	mo.on_state = on_mq_state;
	if ((r = cdr_mq_new(S.loop, &mo, &S.mq)) < 0) {
		fprintf(stderr, "mcusim: bad broker URL %s\n", url);
		return EX_USAGE;
	}
	cdr_mq_declare_design(S.mq);
	cdr_mq_subscribe(S.mq, CDR_MQ_RMS_NTF_EX, "", on_rms_ntf, NULL);
	for (int i = 0; i < S.n; i++) {
		struct mcu *m = &S.mcus[i];

		m->sim = &S;
		m->vrs = i >= S.o.count;
		snprintf(m->id, sizeof(m->id), "%s-%02d", m->vrs ? vprefix : prefix,
			 m->vrs ? i - S.o.count + 1 : i + 1);
		m->confs = cdr_hmap_new();
		if (!m->confs)
			return 1;
		cdr_backoff_init(&m->backoff, 200, 3000);
		if (!m->vrs)
			cdr_mq_subscribe(S.mq, CDR_MQ_MAU_CMCMU_EX, m->id, on_command, m);
	}
	cdr_timer_new(S.loop, on_tick, NULL, &S.tick);
	cdr_timer_start(S.tick, 20, true);
	if (S.o.duration_s > 0) {
		cdr_timer_new(S.loop, on_stop_timer, NULL, &S.stop_timer);
		cdr_timer_start(S.stop_timer, (uint64_t)S.o.duration_s * 1000, false);
	}
	cdr_loop_on_signal(S.loop, SIGTERM, on_signal, NULL);
	cdr_loop_on_signal(S.loop, SIGINT, on_signal, NULL);
	cdr_loop_on_signal(S.loop, SIGUSR1, on_signal, NULL);
	cdr_notice("%d MCUs (%s-01..) and %d VRS of room %s on %s", S.o.count, prefix, S.o.nvrs, S.o.room, url);
	S.state_dirty = true;
	cdr_loop_run(S.loop);

	write_state();
	cdr_notice("stopping: %" PRIu64 " creates acked, %" PRIu64 " nacked, %" PRIu64 " ended", S.n_acked, S.n_nacked,
		   S.n_ended);
	S.mq = cdr_mq_free(S.mq);
	cdr_loop_flush(S.loop);
	for (int i = 0; i < S.n; i++) {
		size_t it = 0;
		void *v;

		while (cdr_hmap_next(S.mcus[i].confs, &it, NULL, &v)) {
			free(((struct conf *)v)->name);
			free(v);
		}
		cdr_hmap_free(S.mcus[i].confs);
	}
	{
		size_t it = 0;
		void *v;

		while (cdr_hmap_next(S.css_epochs, &it, NULL, &v))
			free(v);
	}
	cdr_hmap_free(S.css_epochs);
	free(S.mcus);
	cdr_timer_free(S.tick);
	cdr_timer_free(S.stop_timer);
	cdr_loop_free(S.loop);
	return 0;
}
