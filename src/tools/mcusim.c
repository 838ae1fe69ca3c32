/* mcusim: simulated MCUs (and VRS) of one machine room, speaking the real
 * protocol (docs/protocol.md, "css <-> MCU" and "MCU / VRS <-> rms") over the
 * platform's real RabbitMQ, for the tests and the DR drills (docs/mcusim.md).
 *
 * One process, one loop, one AMQP handle. Each MCU consumes its commands
 * through a private auto-deleted queue bound to mau.cmcmu.ex with its key, so
 * a killed simulator leaves nothing behind. Registration, heartbeats,
 * conference lists and the state file are driven by one periodic tick that
 * walks every unit; delayed answers (--slow) wait in one FIFO behind one
 * timer. Nothing here sleeps. */
#include <confdr/hmap.h>
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/topology.h>
#include <confdr/zk.h>

#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define TICK_MS		    20	  /* heartbeats are late by at most this */
#define REGISTER_TIMEOUT_MS 3000  /* per registration request */
#define REGISTER_MIN_MS	    500	  /* registration back-off */
#define REGISTER_MAX_MS	    10000 /* (cdr_backoff: doubling, +-20 %) */
#define STATE_MIN_MS	    200	  /* state file: at most this often */
#define MAX_FENCES	    16	  /* css senders remembered per MCU */
#define DEFAULT_PORTS	    16	  /* conf.max_participants when absent */

struct conference {
	char e164[CDR_MSG_E164_MAX + 1]; /* the key in unit.confs */
	int64_t generation;
	int64_t ports;
	int64_t started_ms; /* wall clock of its first ACKed create here (state file) */
	char *name;
};

/* The highest css epoch seen from one sender (envelope src). */
struct fence {
	char src[65];
	int64_t epoch;
};

struct sim;

/* An MCU or a VRS. */
struct unit {
	struct sim *sim;
	bool vrs;
	char id[CLI_MAX_ID + 1]; /* also the MCU's routing key */

	/* registration with rms */
	bool registered;
	bool reg_inflight;
	bool reg_again;	      /* register again when the request in flight ends */
	uint64_t next_reg_ms; /* 0: nothing scheduled */
	unsigned reg_failures;
	uint64_t reg_count;
	struct cdr_backoff backoff;
	int64_t epoch; /* rms epoch of the last ack; -1 before */
	uint64_t hb_ms, next_hb_ms;
	int64_t hb_seq;

	/* MCU only */
	struct cdr_hmap *confs; /* e164 -> struct conference */
	int64_t used_ports;
	int64_t list_seq;
	uint64_t next_list_ms;
	struct fence fences[MAX_FENCES];
	size_t nfences;
};

/* An answer held back by --slow. */
struct delayed {
	struct delayed *next;
	struct unit *u;
	struct cdr_mq_delivery *d;
	char *txt;
	char type[96], id[128];
	uint64_t due_ms;
};

struct opts {
	const char *platform, *room, *prefix, *vrs_prefix;
	unsigned count, nvrs;
	int64_t capacity, ports, vrs_capacity, weight, priority;
	bool h265, res_1080p, xmpu, backup;
	const char *amqp, *zk, *chroot, *amqp_user, *amqp_password;
	uint64_t list_interval_ms, slow_ms, duration_s;
	bool refuse, no_answer;
	bool no_boot, seq_from_one, exists_nack;       /* readings of the contract an MCU may take (docs/mcusim.md) */
	bool break_fencing, break_key, break_early_hb; /* --break: test-only misbehaviour (tests/conformance) */
	double fail_rate;
	uint64_t seed;
	bool seed_given;
	const char *state;
	enum cdr_log_level level;
};

struct counters {
	uint64_t creates_acked, creates_again, creates_nacked, creates_ignored;
	uint64_t ends_acked, ends_nacked, renames_acked, renames_nacked;
	uint64_t stale, malformed, unexpected, publish_failed;
};

struct sim {
	struct opts o;
	struct cdr_loop *loop;
	struct cdr_mq *mq;
	struct cdr_timer *tick, *slow_timer, *stop_timer;
	struct unit *units; /* count MCUs, then nvrs VRS */
	size_t nunits;
	struct delayed *slow_head, **slow_tail;
	bool stopping;
	bool was_up;
	int64_t rms_epoch_seen; /* highest rms epoch on rms.ntf.ex, -1 before */
	uint64_t rng;
	bool state_dirty;
	uint64_t state_next_ms; /* earliest next write */
	struct counters n;
	char url_shown[256]; /* the broker, without the password */
	char boot[40];	     /* this process's incarnation: in registrations, heartbeats and lists */
};

/* ---- small helpers ---- */

static uint64_t rng_next(struct sim *s)
{
	/* splitmix64: tiny, good enough, reproducible from --seed. */
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unit(struct sim *s)
{
	return (double)(rng_next(s) >> 11) / (double)(1ull << 53);
}

static const char *kind(const struct unit *u)
{
	return u->vrs ? "vrs" : "mcu";
}

static void conference_free(struct conference *c)
{
	if (c) {
		free(c->name);
		free(c);
	}
}

static void on_answer_confirm(int status, void *arg)
{
	struct sim *s = arg;

	if (status == 0 || status == -ECANCELED)
		return;
	/* The first, then every hundredth: a broker refusing everything
	 * must not flood the log. */
	if (s->n.publish_failed++ % 100 == 0)
		cdr_warn("the broker refused a message to %s (%s); %" PRIu64 " refused so far", CDR_MQ_CMU_MAU_EX,
			 strerror(-status), s->n.publish_failed);
}

/* ---- the state file ---- */

static int cmp_conf(const void *a, const void *b)
{
	const struct conference *x = *(struct conference *const *)a, *y = *(struct conference *const *)b;

	return strcmp(x->e164, y->e164);
}

static json_t *state_json(struct sim *s)
{
	json_t *mcus = json_array(), *vrs = json_array(), *doc;

	for (size_t i = 0; i < s->nunits; i++) {
		struct unit *u = &s->units[i];
		json_t *epoch = u->epoch >= 0 ? json_integer(u->epoch) : json_null();

		if (u->vrs) {
			json_array_append_new(vrs, json_pack("{s:s, s:b, s:o}", "id", u->id, "registered",
							     u->registered, "rms_epoch", epoch));
			continue;
		}
		size_t n = cdr_hmap_count(u->confs), k = 0, it = 0;
		struct conference **v = calloc(n ? n : 1, sizeof(*v));
		json_t *confs = json_array();
		const char *key;
		void *val;

		while (v && cdr_hmap_next(u->confs, &it, &key, &val))
			v[k++] = val;
		if (v)
			qsort(v, k, sizeof(*v), cmp_conf);
		for (size_t j = 0; j < k; j++)
			json_array_append_new(confs, json_pack("{s:s, s:I, s:s, s:I}", "e164", v[j]->e164, "generation",
							       (json_int_t)v[j]->generation, "name", v[j]->name,
							       "started_ms", (json_int_t)v[j]->started_ms));
		free(v);
		/* json_pack "o" steals epoch and confs. */
		json_array_append_new(mcus, json_pack("{s:s, s:s, s:b, s:o, s:o}", "id", u->id, "key", u->id,
						      "registered", u->registered, "rms_epoch", epoch, "confs", confs));
	}
	/* "o" steals mcus and vrs. */
	doc = json_pack("{s:I, s:s, s:s, s:I, s:b, s:o, s:o}", "pid", (json_int_t)getpid(), "platform", s->o.platform,
			"room", s->o.room, "updated_ms", (json_int_t)cdr_wall_ms(), "refuse", s->o.refuse, "mcus", mcus,
			"vrs", vrs);
	return doc;
}

/* Writes the state file atomically (FILE.tmp, then rename). */
static void state_write(struct sim *s)
{
	char tmp[4096];
	uint64_t t0 = cdr_now_ms(), took;
	json_t *doc;
	int r;

	if (!s->o.state)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->o.state);
	doc = state_json(s);
	r = doc ? json_dump_file(doc, tmp, JSON_COMPACT) : -1;
	json_decref(doc);
	if (r != 0 || rename(tmp, s->o.state) != 0) {
		cdr_warn("cannot write the state file %s: %s; trying again later", s->o.state,
			 r != 0 ? "cannot write the temporary file" : strerror(errno));
		unlink(tmp);
		s->state_next_ms = cdr_now_ms() + 1000;
		return;
	}
	s->state_dirty = false;
	/* A large state (thousands of conferences) is not rewritten more than
	 * a fifth of the time. */
	took = cdr_now_ms() - t0;
	s->state_next_ms = cdr_now_ms() + (took * 5 > STATE_MIN_MS ? took * 5 : STATE_MIN_MS);
}

static void state_changed(struct sim *s)
{
	s->state_dirty = true;
}

/* ---- registration and heartbeats ---- */

static void register_soon(struct unit *u, bool reset_backoff)
{
	if (reset_backoff)
		cdr_backoff_reset(&u->backoff);
	if (u->reg_inflight)
		u->reg_again = true;
	else
		u->next_reg_ms = cdr_now_ms();
}

static void register_later(struct unit *u, const char *why)
{
	uint64_t delay = cdr_backoff_next(&u->backoff);

	u->next_reg_ms = cdr_now_ms() + delay;
	/* The first failure of a streak is worth a warning, the rest not. */
	if (u->reg_failures++ == 0)
		cdr_warn("%s %s: registration with rms failed: %s; retrying in %" PRIu64 " ms", kind(u), u->id, why,
			 delay);
	else
		cdr_debug("%s %s: registration with rms failed: %s; retrying in %" PRIu64 " ms", kind(u), u->id, why,
			  delay);
}

static void on_register_reply(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct unit *u = arg;
	struct sim *s = u->sim;
	struct cdr_msg_error err;
	struct cdr_msg *m = NULL;
	const char *type, *want_ack = u->vrs ? "rms_vrs_register_ack" : "rms_cmu_register_ack";
	const char *want_nack = u->vrs ? "rms_vrs_register_nack" : "rms_cmu_register_nack";
	char why[512];

	u->reg_inflight = false;
	if (s->stopping)
		return;
	if (status < 0) {
		register_later(u, status == -ETIMEDOUT ? "no answer within 3 s" : strerror(-status));
		goto again;
	}
	if (cdr_msg_decode(reply->body, reply->len, 0, &m, &err) < 0) {
		snprintf(why, sizeof(why), "unreadable answer: %s: %s", cdr_msg_fault_name(err.fault), err.detail);
		register_later(u, why);
		goto again;
	}
	type = cdr_msg_type(m);
	if (strcmp(type, want_nack) == 0) {
		snprintf(why, sizeof(why), "refused: %s: %s", cdr_msg_str(m, "reason", "?"),
			 cdr_msg_str(m, "detail", ""));
		register_later(u, why);
		goto again;
	}
	if (strcmp(type, want_ack) != 0) {
		snprintf(why, sizeof(why), "unexpected answer %s", type);
		register_later(u, why);
		goto again;
	}
	u->registered = true;
	u->epoch = cdr_msg_int(m, "epoch", 0);
	u->hb_ms = (uint64_t)cdr_msg_int(m, "heartbeat_ms", 1000);
	u->next_hb_ms = cdr_now_ms(); /* the first heartbeat at the next tick */
	u->reg_failures = 0;
	u->reg_count++;
	cdr_backoff_reset(&u->backoff);
	state_changed(s);
	cdr_info("%s registered with rms epoch %" PRId64 ", heartbeat %" PRIu64 " ms", u->id, u->epoch, u->hb_ms);
	/* An answer from a deposed rms: the new one must know us too. */
	if (u->epoch < s->rms_epoch_seen)
		register_soon(u, true);
again:
	if (u->reg_again) {
		u->reg_again = false;
		u->next_reg_ms = cdr_now_ms();
	}
	cdr_msg_free(m);
}

static void send_register(struct unit *u)
{
	struct sim *s = u->sim;
	const struct opts *o = &s->o;
	char id[128], *txt;
	json_t *body;
	int r;

	if (u->vrs)
		body = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:i}", "vrs", u->id, "room", o->room, "platform",
				 o->platform, "capacity", (json_int_t)o->vrs_capacity, "weight", (json_int_t)o->weight,
				 "priority", (json_int_t)o->priority, "running", 0);
	else
		body = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:b, s:I, s:I, s:b, s:I, s:I}", "mcu", u->id,
				 "key", u->id, "room", o->room, "platform", o->platform, "capacity_confs",
				 (json_int_t)o->capacity, "capacity_ports", (json_int_t)o->ports, "h265", o->h265,
				 "res_1080p", o->res_1080p, "xmpu", o->xmpu, "weight", (json_int_t)o->weight,
				 "priority", (json_int_t)o->priority, "backup", o->backup, "running_confs",
				 (json_int_t)cdr_hmap_count(u->confs), "used_ports", (json_int_t)u->used_ports);
	if (body && s->boot[0])
		json_object_set_new(body, "boot", json_string(s->boot));
	snprintf(id, sizeof(id), "%s-register-%" PRIu64, u->id, u->reg_count + u->reg_failures + 1);
	txt = cdr_msg_encode(u->vrs ? "vrs_rms_register_req" : "cmu_rms_register_req", id, u->id, 0, body);
	if (!txt) {
		register_later(u, "out of memory");
		return;
	}
	u->next_reg_ms = 0;
	r = cdr_mq_request(s->mq, "", CDR_MQ_RMS_RES_Q, txt, strlen(txt), REGISTER_TIMEOUT_MS, on_register_reply, u);
	free(txt);
	if (r < 0) {
		register_later(u, strerror(-r));
		return;
	}
	u->reg_inflight = true;
	/* Not registered until the ack: no heartbeats with a stale epoch. */
	if (u->registered) {
		u->registered = false;
		state_changed(s);
	}
}

static void send_heartbeat(struct unit *u)
{
	struct sim *s = u->sim;
	struct cdr_mq_props p = { .persistent = false };
	char id[128], *txt;
	json_t *body;
	int r;

	u->hb_seq++;
	if (u->vrs)
		body = json_pack("{s:s, s:I, s:i, s:I}", "vrs", u->id, "seq", (json_int_t)u->hb_seq, "running", 0,
				 "epoch", (json_int_t)u->epoch);
	else
		body = json_pack("{s:s, s:I, s:I, s:I, s:I}", "mcu", u->id, "seq", (json_int_t)u->hb_seq,
				 "running_confs", (json_int_t)cdr_hmap_count(u->confs), "used_ports",
				 (json_int_t)u->used_ports, "epoch", (json_int_t)u->epoch);
	if (body && s->boot[0])
		json_object_set_new(body, "boot", json_string(s->boot));
	snprintf(id, sizeof(id), "%s-heartbeat-%" PRId64, u->id, u->hb_seq);
	txt = cdr_msg_encode(u->vrs ? "vrs_rms_heartbeat_ntf" : "cmu_rms_heartbeat_ntf", id, u->id, 0, body);
	if (!txt)
		return;
	p.message_id = id;
	r = cdr_mq_publish(s->mq, "", CDR_MQ_RMS_RES_Q, &p, txt, strlen(txt), NULL, NULL);
	if (r < 0)
		cdr_debug("%s %s: heartbeat %" PRId64 " not sent: %s", kind(u), u->id, u->hb_seq, strerror(-r));
	free(txt);
}

static void send_conflist(struct unit *u)
{
	struct sim *s = u->sim;
	struct cdr_mq_props p = { .persistent = true };
	json_t *confs = json_array(), *body;
	const char *key;
	void *val;
	size_t it = 0;
	char id[128], *txt;
	int r;

	while (cdr_hmap_next(u->confs, &it, &key, &val)) {
		const struct conference *c = val;
		json_array_append_new(confs, json_pack("{s:s, s:I, s:s}", "e164", c->e164, "generation",
						       (json_int_t)c->generation, "name", c->name));
	}
	u->list_seq++;
	body = json_pack("{s:s, s:I, s:o}", "mcu", u->id, "seq", (json_int_t)u->list_seq, "confs", confs);
	if (body && s->boot[0])
		json_object_set_new(body, "boot", json_string(s->boot));
	snprintf(id, sizeof(id), "%s-conflist-%" PRId64, u->id, u->list_seq);
	txt = cdr_msg_encode("cmu_mau_conflist_ntf", id, u->id, 0, body);
	if (!txt)
		return;
	p.message_id = id;
	p.type = "cmu_mau_conflist_ntf";
	r = cdr_mq_publish(s->mq, CDR_MQ_CMU_MAU_EX, u->id, &p, txt, strlen(txt), on_answer_confirm, s);
	if (r < 0)
		cdr_warn("mcu %s: conference list %" PRId64 " not sent: %s", u->id, u->list_seq, strerror(-r));
	free(txt);
}

/* The one periodic timer: registrations due, heartbeats due, conference
 * lists due, the state file. */
static void on_tick(void *arg)
{
	struct sim *s = arg;
	uint64_t now = cdr_now_ms();
	bool up = cdr_mq_connected(s->mq);

	for (size_t i = 0; i < s->nunits && up; i++) {
		struct unit *u = &s->units[i];

		if (!u->reg_inflight && u->next_reg_ms && now >= u->next_reg_ms)
			send_register(u);
		if ((u->registered || (s->o.break_early_hb && !u->vrs)) && now >= u->next_hb_ms) {
			send_heartbeat(u);
			u->next_hb_ms += u->hb_ms;
			if (u->next_hb_ms <= now) /* late (a stalled loop): do not send a burst */
				u->next_hb_ms = now + u->hb_ms;
		}
		if (!u->vrs && s->o.list_interval_ms && now >= u->next_list_ms) {
			send_conflist(u);
			u->next_list_ms = now + s->o.list_interval_ms;
		}
	}
	if (s->state_dirty && now >= s->state_next_ms)
		state_write(s);
}

static void on_mq_state(bool up, const char *why, void *arg)
{
	struct sim *s = arg;

	if (!up) {
		cdr_warn("AMQP down: %s", why);
		s->was_up = false;
		/* Deliveries and replies of that connection are gone: register
		 * again once it is back. */
		for (size_t i = 0; i < s->nunits; i++)
			if (s->units[i].registered) {
				s->units[i].registered = false;
				state_changed(s);
			}
		return;
	}
	cdr_info("AMQP up: %s; registering %u MCUs and %u VRS", why, s->o.count, s->o.nvrs);
	s->was_up = true;
	for (size_t i = 0; i < s->nunits; i++) {
		struct unit *u = &s->units[i];

		register_soon(u, true);
		/* Reconciliation: the conference list at (re)connection, spread
		 * over the first tenth of an interval. */
		if (!u->vrs && s->o.list_interval_ms)
			u->next_list_ms = cdr_now_ms() + (s->o.list_interval_ms / 10) * i / s->nunits;
	}
}

/* rms.ntf.ex: rms_all_restarted_ntf, and every rms_all_* for its epoch. */
static void on_rms_ntf(struct cdr_mq_delivery *d, void *arg)
{
	struct sim *s = arg;
	struct cdr_msg_error err;
	struct cdr_msg *m;
	const char *type;
	int64_t epoch;
	size_t again = 0;

	if (cdr_msg_decode(d->body, d->len, 0, &m, &err) < 0) {
		cdr_warn("dropped a malformed message on %s: %s: %s", CDR_MQ_RMS_NTF_EX, cdr_msg_fault_name(err.fault),
			 err.detail);
		cdr_mq_ack(d);
		return;
	}
	type = cdr_msg_type(m);
	epoch = cdr_msg_int(m, "epoch", -1);
	if (strncmp(type, "rms_all_", 8) != 0 || s->stopping)
		goto out;
	if (strcmp(type, "rms_all_restarted_ntf") == 0) {
		const char *platform = cdr_msg_str(m, "platform", s->o.platform);

		if (strcmp(platform, s->o.platform) != 0) {
			cdr_debug("ignored rms_all_restarted_ntf of platform %s", platform);
			goto out;
		}
		if (epoch > s->rms_epoch_seen)
			s->rms_epoch_seen = epoch;
		for (size_t i = 0; i < s->nunits; i++)
			register_soon(&s->units[i], true);
		cdr_notice("rms of %s restarted (epoch %" PRId64 "): registering %zu MCUs and VRS again", s->o.platform,
			   epoch, s->nunits);
		goto out;
	}
	if (epoch <= s->rms_epoch_seen)
		goto out;
	s->rms_epoch_seen = epoch;
	for (size_t i = 0; i < s->nunits; i++) {
		struct unit *u = &s->units[i];
		if (u->registered && u->epoch < epoch) {
			register_soon(u, true);
			again++;
		}
	}
	if (again)
		cdr_notice("%s with rms epoch %" PRId64 ", newer than our registrations: registering %zu again", type,
			   epoch, again);
out:
	cdr_msg_free(m);
	cdr_mq_ack(d);
}

/* ---- conferences ---- */

/* Publishes an answer and acks the delivery. Takes txt. */
static void answer_now(struct unit *u, struct cdr_mq_delivery *d, const char *type, const char *id, char *txt)
{
	struct sim *s = u->sim;
	struct cdr_mq_props p = { .persistent = true, .correlation_id = id, .message_id = id, .type = type };
	int r;

	if (txt) {
		r = cdr_mq_publish(s->mq, CDR_MQ_CMU_MAU_EX, s->o.break_key ? "conform-wrong-key" : u->id, &p, txt,
				   strlen(txt), on_answer_confirm, s);
		if (r < 0) {
			s->n.publish_failed++;
			cdr_warn("mcu %s: %s %s not sent: %s; the request is dropped", u->id, type, id, strerror(-r));
		}
		free(txt);
	}
	cdr_mq_ack(d);
}

static void arm_slow_timer(struct sim *s)
{
	uint64_t now = cdr_now_ms();

	if (s->slow_head)
		cdr_timer_start(s->slow_timer, s->slow_head->due_ms > now ? s->slow_head->due_ms - now : 0, false);
}

/* Every delay is the same, so the FIFO is in due order. */
static void flush_delayed(struct sim *s, bool all)
{
	uint64_t now = cdr_now_ms();

	while (s->slow_head && (all || s->slow_head->due_ms <= now)) {
		struct delayed *x = s->slow_head;

		s->slow_head = x->next;
		if (!s->slow_head)
			s->slow_tail = &s->slow_head;
		answer_now(x->u, x->d, x->type, x->id, x->txt);
		free(x);
	}
	arm_slow_timer(s);
}

static void on_slow_timer(void *arg)
{
	flush_delayed(arg, false);
}

/* Answers request m (delivered as d) with an ACK or NACK whose body is taken
 * (stolen), now or after --slow. */
static void answer(struct unit *u, struct cdr_mq_delivery *d, const struct cdr_msg *m, bool ack, json_t *body)
{
	struct sim *s = u->sim;
	char type[96] = "", *txt;
	struct delayed *x;

	cdr_msg_reply_type(cdr_msg_type(m), ack, type, sizeof(type));
	txt = cdr_msg_encode_reply(m, ack, u->id, body);
	if (!txt)
		cdr_warn("mcu %s: cannot encode %s (out of memory)", u->id, type);
	if (!s->o.slow_ms || !txt || !(x = calloc(1, sizeof(*x)))) {
		answer_now(u, d, type, cdr_msg_id(m), txt);
		return;
	}
	x->u = u;
	x->d = d;
	x->txt = txt;
	snprintf(x->type, sizeof(x->type), "%s", type);
	snprintf(x->id, sizeof(x->id), "%s", cdr_msg_id(m));
	x->due_ms = cdr_now_ms() + s->o.slow_ms;
	*s->slow_tail = x;
	s->slow_tail = &x->next;
	if (!cdr_timer_pending(s->slow_timer))
		arm_slow_timer(s);
}

static json_t *nack_body(const struct unit *u, const char *e164, int64_t generation, const char *reason,
			 const char *detail)
{
	json_t *b = json_pack("{s:s, s:s, s:s, s:s}", "e164", e164, "mcu", u->id, "reason", reason, "detail", detail);

	if (b && generation >= 0)
		json_object_set_new(b, "generation", json_integer(generation));
	return b;
}

/* Fencing of a deposed css: false (and the highest epoch in *seen) when
 * epoch is older than one already seen from the same sender. */
static bool fence_ok(struct unit *u, const char *src, int64_t epoch, int64_t *seen)
{
	struct fence *f = NULL;

	for (size_t i = 0; i < u->nfences; i++)
		if (strcmp(u->fences[i].src, src) == 0)
			f = &u->fences[i];
	if (!f) {
		if (u->nfences < MAX_FENCES) {
			f = &u->fences[u->nfences++];
		} else { /* forget the sender with the lowest epoch */
			f = &u->fences[0];
			for (size_t i = 1; i < MAX_FENCES; i++)
				if (u->fences[i].epoch < f->epoch)
					f = &u->fences[i];
		}
		snprintf(f->src, sizeof(f->src), "%s", src);
		f->epoch = epoch;
		return true;
	}
	if (epoch < f->epoch) {
		*seen = f->epoch;
		return false;
	}
	f->epoch = epoch;
	return true;
}

static bool fenced(struct unit *u, struct cdr_mq_delivery *d, const struct cdr_msg *m, const char *e164)
{
	int64_t epoch = cdr_msg_int(m, "epoch", 0), seen = 0;
	char detail[160];

	if (u->sim->o.break_fencing || fence_ok(u, cdr_msg_src(m), epoch, &seen))
		return false;
	u->sim->n.stale++;
	snprintf(detail, sizeof(detail), "epoch %" PRId64 " is older than %" PRId64 " already seen from %s", epoch,
		 seen, cdr_msg_src(m));
	cdr_info("mcu %s: %s %s for %s refused: %s", u->id, cdr_msg_type(m), cdr_msg_id(m), e164, detail);
	answer(u, d, m, false, nack_body(u, e164, cdr_msg_int(m, "generation", -1), "stale_epoch", detail));
	return true;
}

static void on_create(struct unit *u, struct cdr_mq_delivery *d, const struct cdr_msg *m)
{
	struct sim *s = u->sim;
	const char *e164 = cdr_msg_str(m, "e164", "");
	int64_t gen = cdr_msg_int(m, "generation", 0);
	json_t *conf = cdr_msg_get(m, "conf");
	int64_t ports = cdr_msg_jint(conf, "max_participants", DEFAULT_PORTS);
	struct conference *c;
	char detail[160];
	const char *reason = NULL;

	if (s->o.no_answer) { /* a silent MCU: nothing happens, nobody is told */
		s->n.creates_ignored++;
		cdr_debug("mcu %s: create %s of %s ignored (--no-answer)", u->id, cdr_msg_id(m), e164);
		cdr_mq_ack(d);
		return;
	}
	if (fenced(u, d, m, e164)) {
		s->n.creates_nacked++;
		return;
	}
	if ((c = cdr_hmap_get(u->confs, e164))) { /* a redelivery, or css retrying: the same answer */
		if (gen > c->generation) {
			c->generation = gen;
			state_changed(s);
		}
		s->n.creates_again++;
		if (s->o.exists_nack) { /* the other reading of the contract: refused, "exists" */
			s->n.creates_nacked++;
			cdr_debug("mcu %s: conference %s runs already: NACK exists (generation %" PRId64 ")", u->id,
				  e164, gen);
			answer(u, d, m, false,
			       json_pack("{s:s, s:s, s:I, s:s, s:s}", "e164", e164, "mcu", u->id, "generation", gen,
					 "reason", "exists", "detail", "the conference runs here already"));
			return;
		}
		s->n.creates_acked++;
		cdr_debug("mcu %s: conference %s runs already: acked again (generation %" PRId64 ")", u->id, e164, gen);
		answer(u, d, m, true, json_pack("{s:s, s:s, s:I}", "e164", e164, "mcu", u->id, "generation", gen));
		return;
	}
	if (ports < 1)
		ports = DEFAULT_PORTS;
	if (s->o.refuse) {
		reason = "mcu_refused";
		snprintf(detail, sizeof(detail), "refusing every create (--refuse)");
	} else if (s->o.fail_rate > 0 && rng_unit(s) < s->o.fail_rate) {
		reason = "random_failure";
		snprintf(detail, sizeof(detail), "simulated failure (--fail-rate %g)", s->o.fail_rate);
	} else if ((int64_t)cdr_hmap_count(u->confs) >= s->o.capacity) {
		reason = "no_capacity";
		snprintf(detail, sizeof(detail), "%zu conferences running, capacity %" PRId64, cdr_hmap_count(u->confs),
			 s->o.capacity);
	} else if (u->used_ports + ports > s->o.ports) {
		reason = "no_ports";
		snprintf(detail, sizeof(detail), "%" PRId64 " ports asked, %" PRId64 " free", ports,
			 s->o.ports - u->used_ports);
	}
	if (!reason) {
		c = calloc(1, sizeof(*c));
		if (c) {
			snprintf(c->e164, sizeof(c->e164), "%s", e164);
			c->generation = gen;
			c->ports = ports;
			c->started_ms = (int64_t)cdr_wall_ms(); /* a re-ACK above keeps it */
			c->name = strdup(cdr_msg_jstr(conf, "name", ""));
		}
		if (!c || !c->name || cdr_hmap_put(u->confs, c->e164, c) < 0) {
			conference_free(c);
			reason = "internal_error";
			snprintf(detail, sizeof(detail), "out of memory");
		}
	}
	if (reason) {
		s->n.creates_nacked++;
		cdr_debug("mcu %s: create %s of %s refused: %s (%s)", u->id, cdr_msg_id(m), e164, reason, detail);
		answer(u, d, m, false, nack_body(u, e164, gen, reason, detail));
		return;
	}
	u->used_ports += ports;
	s->n.creates_acked++;
	state_changed(s);
	cdr_debug("mcu %s: conference %s created (generation %" PRId64 ", %" PRId64 " ports)", u->id, e164, gen, ports);
	answer(u, d, m, true, json_pack("{s:s, s:s, s:I}", "e164", e164, "mcu", u->id, "generation", gen));
}

static void on_end_or_rename(struct unit *u, struct cdr_mq_delivery *d, const struct cdr_msg *m, bool rename)
{
	struct sim *s = u->sim;
	const char *e164 = cdr_msg_str(m, "e164", "");
	struct conference *c;
	int64_t gen;

	if (fenced(u, d, m, e164)) {
		if (rename)
			s->n.renames_nacked++;
		else
			s->n.ends_nacked++;
		return;
	}
	c = cdr_hmap_get(u->confs, e164);
	if (!c) {
		if (rename)
			s->n.renames_nacked++;
		else
			s->n.ends_nacked++;
		cdr_debug("mcu %s: %s %s: %s is not running here", u->id, cdr_msg_type(m), cdr_msg_id(m), e164);
		answer(u, d, m, false, nack_body(u, e164, -1, "unknown_conference", "not running here"));
		return;
	}
	gen = c->generation;
	if (rename) {
		char *name = strdup(cdr_msg_str(m, "name", ""));

		if (!name) {
			s->n.renames_nacked++;
			answer(u, d, m, false, nack_body(u, e164, gen, "internal_error", "out of memory"));
			return;
		}
		free(c->name);
		c->name = name;
		s->n.renames_acked++;
		cdr_debug("mcu %s: conference %s renamed", u->id, e164);
	} else {
		cdr_hmap_del(u->confs, e164);
		u->used_ports -= c->ports;
		conference_free(c);
		s->n.ends_acked++;
		cdr_debug("mcu %s: conference %s ended (%s)", u->id, e164, cdr_msg_str(m, "reason", "no reason"));
	}
	state_changed(s);
	answer(u, d, m, true, json_pack("{s:s, s:s, s:I}", "e164", e164, "mcu", u->id, "generation", gen));
}

/* mau.cmcmu.ex, this MCU's key. */
static void on_command(struct cdr_mq_delivery *d, void *arg)
{
	struct unit *u = arg;
	struct sim *s = u->sim;
	struct cdr_msg_error err;
	struct cdr_msg *m;
	const char *type;

	if (cdr_msg_decode(d->body, d->len, 0, &m, &err) < 0) {
		s->n.malformed++;
		cdr_warn("mcu %s: dropped a malformed message (id \"%s\", type \"%s\"): %s: %s", u->id, err.id,
			 err.type, cdr_msg_fault_name(err.fault), err.detail);
		cdr_mq_ack(d);
		return;
	}
	type = cdr_msg_type(m);
	if (strcmp(type, "mau_cmu_createconf_req") == 0) {
		on_create(u, d, m);
	} else if (strcmp(type, "mau_cmu_endconf_req") == 0) {
		on_end_or_rename(u, d, m, false);
	} else if (strcmp(type, "mau_cmu_renameconf_req") == 0) {
		on_end_or_rename(u, d, m, true);
	} else if (strcmp(type, "mau_cmu_extendconf_ack") == 0 || strcmp(type, "mau_cmu_extendconf_nack") == 0) {
		/* answers to extension requests, which the simulator never makes */
		cdr_debug("mcu %s: ignored %s %s", u->id, type, cdr_msg_id(m));
		cdr_mq_ack(d);
	} else {
		s->n.unexpected++;
		cdr_warn("mcu %s: dropped %s %s from %s: not a message for an MCU", u->id, type, cdr_msg_id(m),
			 cdr_msg_src(m));
		cdr_mq_ack(d);
	}
	cdr_msg_free(m);
}

/* ---- life ---- */

static void on_stop_signal(int signo, void *arg)
{
	struct sim *s = arg;

	cdr_notice("%s: stopping", strsignal(signo));
	s->stopping = true;
	cdr_loop_stop(s->loop);
}

static void on_usr1(int signo, void *arg)
{
	struct sim *s = arg;

	state_write(s);
}

static void on_usr2(int signo, void *arg)
{
	struct sim *s = arg;

	s->o.refuse = !s->o.refuse;
	state_changed(s);
	cdr_notice("SIGUSR2: %s creates now", s->o.refuse ? "refusing" : "accepting");
}

static void on_duration(void *arg)
{
	struct sim *s = arg;

	cdr_notice("--duration %" PRIu64 " s reached: stopping", s->o.duration_s);
	s->stopping = true;
	cdr_loop_stop(s->loop);
}

/* ---- finding the broker ---- */

struct lookup {
	struct cdr_loop *loop;
	bool done, connected;
	int status;
	char url[512], err[512];
	const char *platform, *room, *user, *password;
};

static void on_lookup_session(enum cdr_zk_state state, void *arg)
{
	struct lookup *l = arg;

	l->connected = state == CDR_ZK_CONNECTED;
}

static void on_lookup_topology(int status, struct cdr_topology *t, const char *err, void *arg)
{
	struct lookup *l = arg;
	const struct cdr_endpoint *ep;

	l->done = true;
	l->status = status;
	if (status < 0) {
		snprintf(l->err, sizeof(l->err), "%s", err ? err : strerror(-status));
		return;
	}
	ep = cdr_topology_endpoint(t, l->platform, l->room, CDR_SVC_MQ);
	if (!ep)
		ep = cdr_topology_main_endpoint(t, l->platform, CDR_SVC_MQ);
	if (!ep) {
		l->status = -ENOENT;
		snprintf(l->err, sizeof(l->err), "no broker endpoint for platform %s (room %s) in ZooKeeper",
			 l->platform, l->room);
	} else {
		snprintf(l->url, sizeof(l->url), "%s://%s%s%s@%s:%u/%s", cli_amqp_scheme(), l->user,
			 l->password ? ":" : "", l->password ? l->password : "", ep->host, ep->port,
			 ep->vhost ? ep->vhost : "");
	}
	cdr_topology_free(t);
}

/* Hands control back to lookup_broker's loop every 20 ms. */
static void on_lookup_tick(void *arg)
{
	struct lookup *l = arg;

	cdr_loop_stop(l->loop);
}

/* Reads the broker of (platform, room) from ZooKeeper's /endpoints, within
 * 10 s. Returns 0 with url filled, or an exit code with a message printed. */
static int lookup_broker(struct sim *s, char *url, size_t len)
{
	struct lookup l = { .loop = s->loop,
			    .platform = s->o.platform,
			    .room = s->o.room,
			    .user = s->o.amqp_user,
			    .password = s->o.amqp_password };
	struct cdr_zk_opts zo = { .hosts = s->o.zk,
				  .chroot = s->o.chroot,
				  .session_timeout_ms = 10000,
				  .on_session = on_lookup_session,
				  .arg = &l };
	struct cdr_zk *zk = NULL;
	struct cdr_timer *t = NULL;
	uint64_t end = cdr_now_ms() + 10000;
	bool asked = false;
	int r;

	if ((r = cdr_zk_new(s->loop, &zo, &zk)) < 0 || (r = cdr_timer_new(s->loop, on_lookup_tick, &l, &t)) < 0) {
		fprintf(stderr, "mcusim: ZooKeeper at %s: %s\n", s->o.zk, strerror(-r));
		cdr_zk_free(zk);
		return EX_UNAVAILABLE;
	}
	cdr_timer_start(t, 20, true);
	while (!l.done && !s->stopping && cdr_now_ms() < end) {
		if (l.connected && !asked) {
			if ((r = cdr_topology_fetch(zk, on_lookup_topology, &l)) < 0) {
				l.status = r;
				snprintf(l.err, sizeof(l.err), "%s", strerror(-r));
				break;
			}
			asked = true;
		}
		cdr_loop_run(s->loop);
	}
	cdr_timer_free(t);
	cdr_zk_free(zk); /* runs a fetch still pending with -ECANCELED */
	if (s->stopping)
		return -1;
	if (!l.done) {
		fprintf(stderr, "mcusim: no broker URL: ZooKeeper at %s%s did not answer within 10 s\n", s->o.zk,
			s->o.chroot);
		return EX_UNAVAILABLE;
	}
	if (l.status < 0) {
		fprintf(stderr, "mcusim: no broker URL from ZooKeeper at %s%s: %s\n", s->o.zk, s->o.chroot, l.err);
		return EX_UNAVAILABLE;
	}
	snprintf(url, len, "%s", l.url);
	return 0;
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mcusim --platform P --room ROOM [options]\n"
		"\n"
		"Simulates MCUs (and VRS) of one machine room on the platform's real RabbitMQ: they register\n"
		"with rms and heart-beat, answer css's create/end/rename commands on mau.cmcmu.ex, and report\n"
		"their conference lists on cmu.mau.ex (docs/mcusim.md).\n"
		"\n"
		"What is simulated:\n"
		"  --platform P          platform of the MCUs (required)\n"
		"  --room ROOM           their machine room, e.g. p1-r1 (required)\n"
		"  --count N             MCUs, 1..10000 (default 1)\n"
		"  --prefix PREFIX       MCU ids and keys PREFIX-01..PREFIX-NN (default mcu-ROOM)\n"
		"  --capacity N          conferences per MCU, 1..100000 (default 500)\n"
		"  --ports N             ports per MCU, 1..1000000 (default capacity x 16, at most 1000000)\n"
		"  --h265 yes|no         H.265 capable (default yes)\n"
		"  --1080p yes|no        1080p capable (default yes)\n"
		"  --xmpu yes|no         XMPU media processing (default no)\n"
		"  --weight N            share of allocations among equals, 1..1000 (default 100)\n"
		"  --priority N          0..1000, lower is preferred (default 100)\n"
		"  --backup              register as backup MCUs (used when every primary of the room is down)\n"
		"  --vrs M               VRS (recorders) in the same room, 0..1000 (default 0)\n"
		"  --vrs-prefix PREFIX   VRS ids PREFIX-01.. (default vrs-ROOM)\n"
		"  --vrs-capacity N      recordings per VRS, 1..100000 (default 500)\n"
		"\n"
		"Broker:\n"
		"  --amqp URL            amqp://user[:pass]@host:port/vhost (default $CONFDR_<P>_AMQP_URL_MCU, then\n"
		"                        $CONFDR_<P>_AMQP_URL, P upper-cased and '-' as '_', then $CONFDR_AMQP_URL,\n"
		"                        else the room's broker in ZooKeeper)\n"
		"  --zk HOSTS            ZooKeeper, for that last case (default $CONFDR_ZK, else " CLI_DEFAULT_ZK ")\n"
		"  --chroot PATH         its root node (default $CONFDR_ZK_CHROOT, else " CLI_DEFAULT_CHROOT ")\n"
		"  --amqp-user USER      user for a broker found in ZooKeeper (default mcu, the MCUs' role)\n"
		"  --amqp-password PASS  its password; better not on the command line: without one, it is read\n"
		"                        from $CONFDR_AMQP_SECRETS/amqp-USER.password if that exists, else from\n"
		"                        the file $CONFDR_AMQP_PASSWORD_FILE (the same for an --amqp URL)\n"
		"  --tls-ca FILE         CA bundle that signed the broker's certificate, for amqps (default\n"
		"                        $CONFDR_TLS_CA; a broker found in ZooKeeper is then reached with amqps)\n"
		"\n"
		"Behaviour:\n"
		"  --list-interval MS    each MCU sends cmu_mau_conflist_ntf at (re)connection and then every MS,\n"
		"                        100..86400000; 0 = never, not even at connection (a test setting that\n"
		"                        breaks protocol.md 8.3: css then reconciles nothing) (default 5000)\n"
		"  --no-boot             leave out \"boot\", the incarnation, of registrations, heartbeats and\n"
		"                        lists (an MCU of an older contract); default: a new one per process\n"
		"  --seq-from-one        number the conference lists 1, 2, ... in each process (default: from\n"
		"                        the clock, in order across restarts)\n"
		"  --exists-nack         answer a create of a conference it runs already with NACK exists\n"
		"                        (default: the ACK again)\n"
		"  --refuse              NACK every create of a new conference (reason mcu_refused);\n"
		"                        SIGUSR2 toggles this at run time\n"
		"  --fail-rate R         NACK a create at random with probability R, 0..1 (reason random_failure)\n"
		"  --seed N              seed of that randomness (default: from the clock; logged at start)\n"
		"  --slow MS             delay every answer by MS, 0..600000 (the request stays unacked meanwhile)\n"
		"  --no-answer           never answer creates, nor run them (\"MCU silent\"); still heart-beats\n"
		"  --state FILE          write the state (MCUs, registration, conferences) as JSON to FILE\n"
		"                        (atomically, at most every 200 ms when it changed, on SIGUSR1, at exit)\n"
		"  --duration S          stop after S seconds, 0..31536000; 0 = until SIGTERM/SIGINT (default 0)\n"
		"  --break WHAT          test only (tests/conformance): break the contract on purpose; WHAT is\n"
		"                        fencing (take commands of an older epoch), key (publish answers with\n"
		"                        another routing key) or early-heartbeat (heart-beat before the\n"
		"                        registration's ACK); may be given more than once\n"
		"  -v, --verbose         log every command and answer (debug)\n"
		"  -q, --quiet           log warnings and errors only\n"
		"  -h, --help            this text\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop (answers held by --slow are sent, the state file written), SIGUSR1\n"
		"writes the state file now, SIGUSR2 toggles --refuse.\n"
		"Exit status: 0 stopped (signal or --duration), 64 bad usage or a bad broker URL, 69 no broker\n"
		"(none given and none found in ZooKeeper within 10 s), 70 internal error. A broker that is down\n"
		"is not an error: mcusim re-connects with back-off and registers again.\n");
}

static bool parse_yes_no(const char *s, bool *ret)
{
	if (strcmp(s, "yes") == 0)
		*ret = true;
	else if (strcmp(s, "no") == 0)
		*ret = false;
	else
		return false;
	return true;
}

enum {
	O_PLATFORM = 256,
	O_ROOM,
	O_COUNT,
	O_PREFIX,
	O_CAPACITY,
	O_PORTS,
	O_H265,
	O_1080P,
	O_XMPU,
	O_WEIGHT,
	O_PRIORITY,
	O_BACKUP,
	O_VRS,
	O_VRS_PREFIX,
	O_VRS_CAPACITY,
	O_AMQP,
	O_ZK,
	O_CHROOT,
	O_AMQP_USER,
	O_AMQP_PASSWORD,
	O_TLS_CA,
	O_LIST_INTERVAL,
	O_REFUSE,
	O_FAIL_RATE,
	O_SEED,
	O_SLOW,
	O_NO_ANSWER,
	O_NO_BOOT,
	O_SEQ_FROM_ONE,
	O_EXISTS_NACK,
	O_BREAK,
	O_STATE,
	O_DURATION,
};

/* Returns 0, or an exit code (usage printed); -1 for --help (done). */
static int parse_args(int argc, char **argv, struct opts *o, char *prefix, char *vrs_prefix, size_t len)
{
	static const struct option lopts[] = {
		{ "platform", required_argument, NULL, O_PLATFORM },
		{ "room", required_argument, NULL, O_ROOM },
		{ "count", required_argument, NULL, O_COUNT },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "capacity", required_argument, NULL, O_CAPACITY },
		{ "ports", required_argument, NULL, O_PORTS },
		{ "h265", required_argument, NULL, O_H265 },
		{ "1080p", required_argument, NULL, O_1080P },
		{ "xmpu", required_argument, NULL, O_XMPU },
		{ "weight", required_argument, NULL, O_WEIGHT },
		{ "priority", required_argument, NULL, O_PRIORITY },
		{ "backup", no_argument, NULL, O_BACKUP },
		{ "vrs", required_argument, NULL, O_VRS },
		{ "vrs-prefix", required_argument, NULL, O_VRS_PREFIX },
		{ "vrs-capacity", required_argument, NULL, O_VRS_CAPACITY },
		{ "amqp", required_argument, NULL, O_AMQP },
		{ "zk", required_argument, NULL, O_ZK },
		{ "chroot", required_argument, NULL, O_CHROOT },
		{ "amqp-user", required_argument, NULL, O_AMQP_USER },
		{ "amqp-password", required_argument, NULL, O_AMQP_PASSWORD },
		{ "tls-ca", required_argument, NULL, O_TLS_CA },
		{ "list-interval", required_argument, NULL, O_LIST_INTERVAL },
		{ "refuse", no_argument, NULL, O_REFUSE },
		{ "fail-rate", required_argument, NULL, O_FAIL_RATE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "slow", required_argument, NULL, O_SLOW },
		{ "no-answer", no_argument, NULL, O_NO_ANSWER },
		{ "no-boot", no_argument, NULL, O_NO_BOOT },
		{ "seq-from-one", no_argument, NULL, O_SEQ_FROM_ONE },
		{ "exists-nack", no_argument, NULL, O_EXISTS_NACK },
		{ "break", required_argument, NULL, O_BREAK },
		{ "state", required_argument, NULL, O_STATE },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int64_t v;
	bool ports_given = false;
	int opt;

	*o = (struct opts){
		.count = 1,
		.capacity = 500,
		.vrs_capacity = 500,
		.weight = 100,
		.priority = 100,
		.h265 = true,
		.res_1080p = true,
		.amqp_user = "mcu",
		.amqp_password = NULL, /* from $CONFDR_AMQP_PASSWORD_FILE or $CONFDR_AMQP_SECRETS (cli.h) */
		.list_interval_ms = 5000,
		.level = CDR_LOG_INFO,
	};
	o->zk = cli_env("CONFDR_ZK", CLI_DEFAULT_ZK);
	o->chroot = cli_env("CONFDR_ZK_CHROOT", CLI_DEFAULT_CHROOT);

#define INT_OPT(field, min, max, what)                                                                                 \
	do {                                                                                                           \
		if (!cli_parse_int(optarg, min, max, &v))                                                              \
			return cli_usage_error("--%s wants %s (%lld..%lld), not \"%s\"", lopts[idx].name, what,        \
					       (long long)(min), (long long)(max), optarg);                            \
		field = v;                                                                                             \
	} while (0)
#define YES_NO(field)                                                                                                  \
	do {                                                                                                           \
		if (!parse_yes_no(optarg, &field))                                                                     \
			return cli_usage_error("--%s wants yes or no, not \"%s\"", lopts[idx].name, optarg);           \
	} while (0)

	optind = 1;
	for (;;) {
		int idx = 0;
		if ((opt = getopt_long(argc, argv, "vqh", lopts, &idx)) == -1)
			break;
		switch (opt) {
		case O_PLATFORM: o->platform = optarg; break;
		case O_ROOM: o->room = optarg; break;
		case O_COUNT: INT_OPT(o->count, 1, 10000, "a count"); break;
		case O_PREFIX: o->prefix = optarg; break;
		case O_CAPACITY: INT_OPT(o->capacity, 1, 100000, "a count"); break;
		case O_PORTS:
			INT_OPT(o->ports, 1, 1000000, "a count");
			ports_given = true;
			break;
		case O_H265: YES_NO(o->h265); break;
		case O_1080P: YES_NO(o->res_1080p); break;
		case O_XMPU: YES_NO(o->xmpu); break;
		case O_WEIGHT: INT_OPT(o->weight, 1, 1000, "a weight"); break;
		case O_PRIORITY: INT_OPT(o->priority, 0, 1000, "a priority"); break;
		case O_BACKUP: o->backup = true; break;
		case O_VRS: INT_OPT(o->nvrs, 0, 1000, "a count"); break;
		case O_VRS_PREFIX: o->vrs_prefix = optarg; break;
		case O_VRS_CAPACITY: INT_OPT(o->vrs_capacity, 1, 100000, "a count"); break;
		case O_AMQP: o->amqp = optarg; break;
		case O_ZK: o->zk = optarg; break;
		case O_CHROOT: o->chroot = optarg; break;
		case O_AMQP_USER: o->amqp_user = optarg; break;
		case O_AMQP_PASSWORD: o->amqp_password = optarg; break;
		case O_TLS_CA: cli_set_tls_ca(optarg); break;
		case O_LIST_INTERVAL:
			INT_OPT(o->list_interval_ms, 0, 86400000, "milliseconds");
			if (o->list_interval_ms && o->list_interval_ms < 100)
				return cli_usage_error("--list-interval wants 0 or 100..86400000 ms, not \"%s\"",
						       optarg);
			break;
		case O_REFUSE: o->refuse = true; break;
		case O_FAIL_RATE:
			if (!cli_parse_double(optarg, 0, 1, &o->fail_rate))
				return cli_usage_error("--fail-rate wants a probability (0..1), not \"%s\"", optarg);
			break;
		case O_SEED:
			INT_OPT(o->seed, 0, INT64_MAX, "a number");
			o->seed_given = true;
			break;
		case O_SLOW: INT_OPT(o->slow_ms, 0, 600000, "milliseconds"); break;
		case O_NO_ANSWER: o->no_answer = true; break;
		case O_NO_BOOT: o->no_boot = true; break;
		case O_SEQ_FROM_ONE: o->seq_from_one = true; break;
		case O_EXISTS_NACK: o->exists_nack = true; break;
		case O_BREAK:
			if (!strcmp(optarg, "fencing"))
				o->break_fencing = true;
			else if (!strcmp(optarg, "key"))
				o->break_key = true;
			else if (!strcmp(optarg, "early-heartbeat"))
				o->break_early_hb = true;
			else
				return cli_usage_error("--break wants fencing, key or early-heartbeat, not \"%s\"",
						       optarg);
			break;
		case O_STATE: o->state = optarg; break;
		case O_DURATION: INT_OPT(o->duration_s, 0, 31536000, "seconds"); break;
		case 'v': o->level = CDR_LOG_DEBUG; break;
		case 'q': o->level = CDR_LOG_WARN; break;
		case 'h': usage(stdout); return -1;
		default: return cli_usage_error("bad option (see above)");
		}
	}
#undef INT_OPT
#undef YES_NO
	if (optind < argc)
		return cli_usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!o->platform || !o->room)
		return cli_usage_error("--platform and --room are required");
	if (!cli_id_ok(o->platform) || !cli_id_ok(o->room))
		return cli_usage_error("--platform and --room want ids of letters, digits, '.', '_', '-' (at most %d)",
				       CLI_MAX_ID);
	if (o->chroot[0] != '/')
		return cli_usage_error("--chroot must be an absolute path, not \"%s\"", o->chroot);
	snprintf(prefix, len, "%s", o->prefix ? o->prefix : "");
	if (!o->prefix)
		snprintf(prefix, len, "mcu-%s", o->room);
	snprintf(vrs_prefix, len, "%s", o->vrs_prefix ? o->vrs_prefix : "");
	if (!o->vrs_prefix)
		snprintf(vrs_prefix, len, "vrs-%s", o->room);
	o->prefix = prefix;
	o->vrs_prefix = vrs_prefix;
	/* PREFIX-NNNNN must stay an id of at most 64 bytes. */
	if (!cli_id_ok(prefix) || strlen(prefix) + 6 > CLI_MAX_ID)
		return cli_usage_error("--prefix wants letters, digits, '.', '_', '-' (at most %d), not \"%s\"",
				       CLI_MAX_ID - 6, prefix);
	if (!cli_id_ok(vrs_prefix) || strlen(vrs_prefix) + 6 > CLI_MAX_ID)
		return cli_usage_error("--vrs-prefix wants letters, digits, '.', '_', '-' (at most %d), not \"%s\"",
				       CLI_MAX_ID - 6, vrs_prefix);
	if (!ports_given)
		o->ports = o->capacity * 16 > 1000000 ? 1000000 : o->capacity * 16;
	if (o->state && strlen(o->state) > 4000)
		return cli_usage_error("--state: path too long");
	return 0;
}

/* ---- main ---- */

static int units_new(struct sim *s)
{
	const struct opts *o = &s->o;

	s->nunits = o->count + o->nvrs;
	s->units = calloc(s->nunits, sizeof(*s->units));
	if (!s->units)
		return -ENOMEM;
	for (size_t i = 0; i < s->nunits; i++) {
		struct unit *u = &s->units[i];
		bool vrs = i >= o->count;

		u->sim = s;
		u->vrs = vrs;
		u->epoch = -1;
		/* PREFIX-01, ..., PREFIX-99, PREFIX-100: an MCU's id does not
		 * depend on how many there are. */
		snprintf(u->id, sizeof(u->id), "%s-%02zu", vrs ? o->vrs_prefix : o->prefix,
			 vrs ? i - o->count + 1 : i + 1);
		cdr_backoff_init(&u->backoff, REGISTER_MIN_MS, REGISTER_MAX_MS);
		/* Conference lists numbered from the clock survive a restart in
		 * order; --seq-from-one numbers them 1, 2, ... in each process. */
		u->list_seq = o->seq_from_one ? 0 : (int64_t)cdr_wall_ms();
		if (!vrs && !(u->confs = cdr_hmap_new()))
			return -ENOMEM;
	}
	return 0;
}

static void units_free(struct sim *s)
{
	for (size_t i = 0; s->units && i < s->nunits; i++) {
		struct unit *u = &s->units[i];
		const char *key;
		void *val;
		size_t it = 0;

		while (u->confs && cdr_hmap_next(u->confs, &it, &key, &val))
			conference_free(val);
		cdr_hmap_free(u->confs);
	}
	free(s->units);
	s->units = NULL;
}

static int start(struct sim *s, const char *url)
{
	struct cdr_mq_opts mo = {
		.url = url,
		.name = s->o.prefix,
		.reconnect_min_ms = 200,
		.reconnect_max_ms = 5000,
		.prefetch = 256,
		.on_state = on_mq_state,
		.arg = s,
	};
	int r;

	if ((r = cli_broker_open(s->loop, &mo, &s->mq, s->url_shown, sizeof(s->url_shown))))
		return r;
	/* The daemons declare the design (docs/amqp.md); an MCU's broker user
	 * may not (docs/security.md). Before they have, the subscriptions are
	 * refused and retried with the back-off. */
	if ((r = cdr_mq_subscribe(s->mq, CDR_MQ_RMS_NTF_EX, "", on_rms_ntf, s)) < 0)
		goto fail;
	for (size_t i = 0; i < s->o.count; i++)
		if ((r = cdr_mq_subscribe(s->mq, CDR_MQ_MAU_CMCMU_EX, s->units[i].id, on_command, &s->units[i])) < 0)
			goto fail;
	if ((r = cdr_timer_new(s->loop, on_tick, s, &s->tick)) < 0 ||
	    (r = cdr_timer_new(s->loop, on_slow_timer, s, &s->slow_timer)) < 0 ||
	    (r = cdr_timer_new(s->loop, on_duration, s, &s->stop_timer)) < 0)
		goto fail;
	cdr_timer_start(s->tick, TICK_MS, true);
	if (s->o.duration_s)
		cdr_timer_start(s->stop_timer, s->o.duration_s * 1000, false);
	return 0;
fail:
	fprintf(stderr, "mcusim: cannot set up: %s\n", strerror(-r));
	return EX_SOFTWARE;
}

int main(int argc, char **argv)
{
	static struct sim sim; /* static: large, and reachable from nowhere else */
	struct sim *s = &sim;
	char prefix[256], vrs_prefix[256], envname[160], url[1024];
	const char *u;
	int ret, r;

	cli_setup("mcusim", NULL);
	ret = parse_args(argc, argv, &s->o, prefix, vrs_prefix, sizeof(prefix));
	if (ret)
		return ret < 0 ? 0 : ret;
	cdr_log_setup("mcusim", s->o.platform, s->o.level, true);
	s->slow_tail = &s->slow_head;
	s->rms_epoch_seen = -1;
	s->state_dirty = true;
	if (!s->o.seed_given)
		s->o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	s->rng = s->o.seed;
	/* The incarnation: new with every process (the wall clock and the pid),
	 * so that rms and css know a restart at its first message. */
	if (!s->o.no_boot)
		snprintf(s->boot, sizeof(s->boot), "%" PRIx64 "-%ld", (uint64_t)cdr_wall_ms(), (long)getpid());

	if (cdr_loop_new(&s->loop) < 0 || units_new(s) < 0) {
		fprintf(stderr, "mcusim: out of memory\n");
		units_free(s);
		cdr_loop_free(s->loop);
		return EX_SOFTWARE;
	}
	if ((r = cdr_loop_on_signal(s->loop, SIGTERM, on_stop_signal, s)) < 0 ||
	    (r = cdr_loop_on_signal(s->loop, SIGINT, on_stop_signal, s)) < 0 ||
	    (r = cdr_loop_on_signal(s->loop, SIGUSR1, on_usr1, s)) < 0 ||
	    (r = cdr_loop_on_signal(s->loop, SIGUSR2, on_usr2, s)) < 0) {
		fprintf(stderr, "mcusim: cannot handle signals: %s\n", strerror(-r));
		ret = EX_SOFTWARE;
		goto out;
	}

	u = s->o.amqp ? s->o.amqp : cli_broker_from_env(s->o.platform, "mcu", envname, sizeof(envname));
	if (!u) {
		ret = lookup_broker(s, url, sizeof(url));
		if (ret < 0) { /* signalled while looking */
			ret = 0;
			goto out;
		}
		if (ret) {
			fprintf(stderr, "mcusim: give --amqp URL, or set %s or CONFDR_AMQP_URL\n", envname);
			goto out;
		}
		u = url;
	}
	if ((ret = start(s, u)))
		goto out;

	cdr_info("simulating %u MCUs %s..%s%s and %u VRS in room %s of %s on %s (capacity %" PRId64 ", %" PRId64
		 " ports%s%s%s%s)",
		 s->o.count, s->units[0].id, s->units[s->o.count - 1].id, s->o.backup ? " (backup)" : "", s->o.nvrs,
		 s->o.room, s->o.platform, s->url_shown, s->o.capacity, s->o.ports, s->o.refuse ? ", refusing" : "",
		 s->o.no_answer ? ", silent" : "", s->o.slow_ms ? ", slow" : "", s->o.fail_rate > 0 ? ", failing" : "");
	if (s->o.fail_rate > 0)
		cdr_info("--fail-rate %g with --seed %" PRIu64, s->o.fail_rate, s->o.seed);
	if (s->o.state)
		state_write(s);

	if (cdr_loop_run(s->loop) < 0) {
		cdr_err("the event loop failed");
		ret = EX_SOFTWARE;
	}
	s->stopping = true;
	/* Held answers go out now; then the handle drains its confirms. */
	flush_delayed(s, true);
	s->mq = cdr_mq_free(s->mq);
	if (s->o.state)
		state_write(s);
	cdr_info("stopped: creates acked %" PRIu64 " (%" PRIu64 " again), nacked %" PRIu64 ", ignored %" PRIu64
		 "; ends acked %" PRIu64 ", nacked %" PRIu64 "; renames acked %" PRIu64 ", nacked %" PRIu64
		 "; refused for a stale epoch %" PRIu64 ", malformed %" PRIu64 ", unexpected %" PRIu64
		 ", publishes refused %" PRIu64,
		 s->n.creates_acked, s->n.creates_again, s->n.creates_nacked, s->n.creates_ignored, s->n.ends_acked,
		 s->n.ends_nacked, s->n.renames_acked, s->n.renames_nacked, s->n.stale, s->n.malformed, s->n.unexpected,
		 s->n.publish_failed);
out:
	s->mq = cdr_mq_free(s->mq);
	s->tick = cdr_timer_free(s->tick);
	s->slow_timer = cdr_timer_free(s->slow_timer);
	s->stop_timer = cdr_timer_free(s->stop_timer);
	units_free(s);
	s->loop = cdr_loop_free(s->loop);
	return ret;
}
