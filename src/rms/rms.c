/* confdr-rms: the bus side of the resource management service. The policy
 * lives in inventory.c; this file consumes rms.req.q (css, confdrctl) and
 * rms.res.q (MCU and VRS registrations and heartbeats) while active, answers
 * every request, and announces MCU and VRS state on rms.ntf.ex. */
#include "rms.h"

#include "inventory.h"

#include <confdr/bus.h>
#include <confdr/hmap.h>
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/topology.h>
#include <confdr/zk.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define REPLY_CACHE_AGE_MS  (5 * 60 * 1000)
#define REREGISTER_EVERY_MS 1000 /* rms_all_restarted_ntf at most this often for unknown MCUs */

#define K(key, type, field, def, min, max, help)                                                                       \
	{                                                                                                              \
		"rms", key, type, offsetof(struct rms_conf, field), def, min, max, NULL, NULL, help, NULL, 0           \
	}

const struct cdr_conf_key rms_conf_keys[] = {
	K("heartbeat_interval", CDR_CONF_MS, heartbeat_ms, "500ms", 100, 60000,
	  "heartbeat interval told to MCUs and VRS at registration (keepalived's delay_loop)"),
	K("heartbeat_misses", CDR_CONF_INT, misses, "3", 1, 100,
	  "declared down after this many missed heartbeats (retries)"),
	K("heartbeat_rise", CDR_CONF_INT, rise, "2", 1, 100,
	  "a down MCU or VRS is up again after this many consecutive heartbeats"),
	K("reservation_timeout", CDR_CONF_MS, reservation_ms, "30s", 1000, 3600000,
	  "a reservation neither confirmed nor released expires after this"),
	K("default_ports", CDR_CONF_INT, default_ports, "16", 1, 100000,
	  "ports reserved for an allocation that names none"),
	K("domain_max_confs", CDR_CONF_INT, domain_max_confs, "0", 0, 1000000,
	  "conference-count limit of a user domain, told by capability answers; 0: none"),
	K("topology_refresh", CDR_CONF_MS, topology_refresh_ms, "30s", 1000, 3600000,
	  "how often the topology is read again from ZooKeeper"),
	K("reply_cache", CDR_CONF_INT, reply_cache, "10000", 0, 1000000,
	  "answers kept by request id, so a redelivered request is answered again, not executed twice"),
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};

struct cached {
	char *id, *txt;
	uint64_t at;
	TAILQ_ENTRY(cached) link;
};
TAILQ_HEAD(cached_list, cached);

struct rms {
	struct cdr_daemon *d;
	struct rms_conf conf; /* the rms keys (base not used) */
	char platform[128];
	struct cdr_bus bus;
	struct rms_inv *inv;
	struct cdr_topology *topo;
	struct cdr_timer *tick;
	struct cdr_topo_follow *follow;

	bool active;
	int64_t epoch;
	bool announced; /* rms_all_restarted_ntf sent for this epoch */
	uint64_t last_reregister_ms;
	int64_t css_epoch; /* highest seen from css; -1: none yet */

	struct cdr_hmap *cache; /* request id -> struct cached */
	struct cached_list cached;

	uint64_t n_alloc_ok, n_alloc_failed;
};

static void policy_from_conf(const struct rms_conf *c, struct rms_policy *p)
{
	p->heartbeat_ms = (int64_t)c->heartbeat_ms;
	p->misses = (int)c->misses;
	p->rise = (int)c->rise;
	p->reservation_ms = (int64_t)c->reservation_ms;
	p->default_ports = c->default_ports;
}

static int64_t now_ms(void)
{
	return (int64_t)cdr_now_ms();
}

/* A monotonic time as wall time, for answers. */
static int64_t wall_of(int64_t mono)
{
	return (int64_t)cdr_wall_ms() - (now_ms() - mono);
}

/* ---- publishing ---- */

static void publish(struct rms *s, const char *exchange, const char *type, json_t *body)
{
	cdr_bus_publish(&s->bus, NULL, exchange, "", type, NULL, s->epoch, body, false, NULL, NULL);
}

static void announce_restart(struct rms *s, const char *why)
{
	publish(s, CDR_MQ_RMS_NTF_EX, "rms_all_restarted_ntf",
		json_pack("{s:s, s:I}", "platform", s->platform, "epoch", (json_int_t)s->epoch));
	s->last_reregister_ms = cdr_now_ms();
	cdr_notice("asked every MCU and VRS to register (%s), epoch %" PRId64, why, s->epoch);
}

/* Announce once per epoch, when active with a topology and a broker. */
static void maybe_announce(struct rms *s)
{
	if (s->active && !s->announced && s->topo && cdr_daemon_link_up(s->d, "amqp")) {
		s->announced = true;
		announce_restart(s, "new leader");
	}
}

static void on_event(const struct rms_event *ev, void *arg)
{
	struct rms *s = arg;
	const char *id = ev->vrs ? ev->v->id : ev->mcu->id, *room = ev->vrs ? ev->v->room : ev->mcu->room;
	bool down = strcmp(ev->state, "down") == 0;
	json_t *body;

	if (down)
		cdr_warn("%s %s in %s is down (%s)", ev->vrs ? "vrs" : "mcu", id, room, ev->reason);
	else
		cdr_notice("%s %s in %s is %s (%s)", ev->vrs ? "vrs" : "mcu", id, room, ev->state, ev->reason);
	if (ev->vrs)
		body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "vrs", id, "room", room, "platform", s->platform,
				 "state", ev->state, "reason", ev->reason, "epoch", (json_int_t)s->epoch);
	else
		body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "mcu", id, "key", ev->mcu->key, "room", room,
				 "platform", s->platform, "state", ev->state, "reason", ev->reason, "epoch",
				 (json_int_t)s->epoch);
	publish(s, CDR_MQ_RMS_NTF_EX, ev->vrs ? "rms_all_vrs_ntf" : "rms_all_mcu_ntf", body);
	if (down || strcmp(ev->reason, "heartbeat_resumed") == 0 || strcmp(ev->reason, "registered") == 0) {
		char detail[256];

		snprintf(detail, sizeof(detail), "%s %s in room %s: %s", ev->vrs ? "VRS" : "MCU", id, room, ev->reason);
		publish(s, CDR_MQ_ALARM_EX, "rms_all_alarm_ntf",
			json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "severity", down ? "major" : "cleared", "kind",
				  ev->vrs ? "vrs_down" : "mcu_down", "target", id, "platform", s->platform, "detail",
				  detail, "epoch", (json_int_t)s->epoch));
	}
}

/* ---- answers ---- */

static void cache_put(struct rms *s, const char *id, char *txt)
{
	struct cached *c = NULL;

	if (s->conf.reply_cache <= 0 || !(c = calloc(1, sizeof(*c))) || !(c->id = strdup(id))) {
		if (c)
			free(c);
		free(txt);
		return;
	}
	c->txt = txt;
	c->at = cdr_now_ms();
	if (cdr_hmap_put(s->cache, c->id, c) < 0) {
		free(c->id);
		free(c->txt);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&s->cached, c, link);
	while (cdr_hmap_count(s->cache) > (size_t)s->conf.reply_cache) {
		struct cached *old = TAILQ_FIRST(&s->cached);

		TAILQ_REMOVE(&s->cached, old, link);
		cdr_hmap_del(s->cache, old->id);
		free(old->id);
		free(old->txt);
		free(old);
	}
}

static void cache_prune(struct rms *s, bool all)
{
	struct cached *c;
	uint64_t now = cdr_now_ms();

	while ((c = TAILQ_FIRST(&s->cached)) && (all || now - c->at > REPLY_CACHE_AGE_MS)) {
		TAILQ_REMOVE(&s->cached, c, link);
		cdr_hmap_del(s->cache, c->id);
		free(c->id);
		free(c->txt);
		free(c);
	}
}

/* Answers the request m (body stolen), remembers the answer when cache, and
 * acks the delivery. */
static void answer(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack, json_t *body,
		   bool cache)
{
	char *txt = cdr_bus_answer(&s->bus, dl, m, ack, body, cache);

	if (txt)
		cache_put(s, cdr_msg_id(m), txt);
}

/* ---- rms.res.q: registrations and heartbeats ---- */

/* NACKs a registration rms_inv_register_* refused with r (err says why). */
static void refuse_registration(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, const char *kind,
				const char *id, int r, const char *err)
{
	const char *reason = r == -EAGAIN ? "not_active" : r == -ENOMEM ? "internal_error" : "unknown_room";
	json_t *b = cdr_bus_nack_body(reason, err);

	json_object_set_new(b, kind, json_string(id));
	cdr_warn("registration of %s %s refused: %s", kind, id, err);
	answer(s, dl, m, false, b, false);
}

static void on_register_mcu(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	struct rms_mcu_reg reg = {
		.id = cdr_msg_str(m, "mcu", ""),
		.key = cdr_msg_str(m, "key", ""),
		.room = cdr_msg_str(m, "room", ""),
		.platform = cdr_msg_str(m, "platform", ""),
		.cap_confs = cdr_msg_int(m, "capacity_confs", 0),
		.cap_ports = cdr_msg_int(m, "capacity_ports", 0),
		.h265 = cdr_msg_bool(m, "h265", false),
		.res_1080p = cdr_msg_bool(m, "res_1080p", false),
		.xmpu = cdr_msg_bool(m, "xmpu", false),
		.weight = (int)cdr_msg_int(m, "weight", 100),
		.priority = (int)cdr_msg_int(m, "priority", 100),
		.backup = cdr_msg_bool(m, "backup", false),
		.running_confs = cdr_msg_int(m, "running_confs", 0),
		.used_ports = cdr_msg_int(m, "used_ports", 0),
	};
	char err[256] = "";
	int r = rms_inv_register_mcu(s->inv, &reg, now_ms(), err, sizeof(err));

	if (r < 0) {
		refuse_registration(s, dl, m, "mcu", reg.id, r, err);
		return;
	}
	cdr_info("mcu %s registered: room %s, %" PRId64 " confs / %" PRId64 " ports, %" PRId64 " running", reg.id,
		 reg.room, reg.cap_confs, reg.cap_ports, reg.running_confs);
	answer(s, dl, m, true,
	       json_pack("{s:s, s:I, s:I, s:I}", "mcu", reg.id, "heartbeat_ms", (json_int_t)s->conf.heartbeat_ms,
			 "misses", (json_int_t)s->conf.misses, "epoch", (json_int_t)s->epoch),
	       false);
}

static void on_register_vrs(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	struct rms_vrs_reg reg = {
		.id = cdr_msg_str(m, "vrs", ""),
		.room = cdr_msg_str(m, "room", ""),
		.platform = cdr_msg_str(m, "platform", ""),
		.capacity = cdr_msg_int(m, "capacity", 0),
		.weight = (int)cdr_msg_int(m, "weight", 100),
		.priority = (int)cdr_msg_int(m, "priority", 100),
		.running = cdr_msg_int(m, "running", 0),
	};
	char err[256] = "";
	int r = rms_inv_register_vrs(s->inv, &reg, now_ms(), err, sizeof(err));

	if (r < 0) {
		refuse_registration(s, dl, m, "vrs", reg.id, r, err);
		return;
	}
	cdr_info("vrs %s registered: room %s, capacity %" PRId64, reg.id, reg.room, reg.capacity);
	answer(s, dl, m, true,
	       json_pack("{s:s, s:I, s:I, s:I}", "vrs", reg.id, "heartbeat_ms", (json_int_t)s->conf.heartbeat_ms,
			 "misses", (json_int_t)s->conf.misses, "epoch", (json_int_t)s->epoch),
	       false);
}

static void on_heartbeat(struct rms *s, const struct cdr_msg *m, bool vrs)
{
	const char *id = cdr_msg_str(m, vrs ? "vrs" : "mcu", "");
	int r;

	if (vrs)
		r = rms_inv_heartbeat_vrs(s->inv, id, cdr_msg_int(m, "seq", 0), cdr_msg_int(m, "running", 0), now_ms());
	else
		r = rms_inv_heartbeat_mcu(s->inv, id, cdr_msg_int(m, "seq", 0), cdr_msg_int(m, "running_confs", 0),
					  cdr_msg_int(m, "used_ports", 0), now_ms());
	if (r == -ENOENT) {
		/* Registered with an earlier leader, or its registration was
		 * lost: the restart notice makes it register again. */
		cdr_debug("heartbeat of unregistered %s %s", vrs ? "vrs" : "mcu", id);
		if (cdr_now_ms() - s->last_reregister_ms >= REREGISTER_EVERY_MS)
			announce_restart(s, "heartbeats of unregistered MCUs or VRS");
	}
}

/* ---- rms.req.q: allocations and queries ---- */

/* Fills w from an allocation object; the arrays hold the caps and exclude
 * lists (at most 8 and 64 by the schema). */
static void want_from(const json_t *o, struct rms_want *w, const char **caps, const char **excl, const char **xrooms)
{
	json_t *a, *v;
	size_t i;

	memset(w, 0, sizeof(*w));
	w->e164 = cdr_msg_jstr(o, "e164", "");
	w->user_domain = cdr_msg_jstr(o, "user_domain", "");
	w->room = cdr_msg_jstr(o, "room", NULL);
	w->h265 = cdr_msg_jbool(o, "h265", false);
	w->res_1080p = cdr_msg_jbool(o, "res_1080p", false);
	w->xmpu = cdr_msg_jbool(o, "xmpu", false);
	w->record = cdr_msg_jbool(o, "record", false);
	w->ports = cdr_msg_jint(o, "ports", 0);
	a = json_object_get(o, "caps");
	json_array_foreach(a, i, v)
	{
		if (i >= 8 || !json_is_string(v))
			break;
		caps[w->ncaps++] = json_string_value(v);
	}
	w->caps = caps;
	a = json_object_get(o, "exclude_mcus");
	json_array_foreach(a, i, v)
	{
		if (i >= 64 || !json_is_string(v))
			break;
		excl[w->nexclude++] = json_string_value(v);
	}
	w->exclude = excl;
	a = json_object_get(o, "exclude_rooms");
	json_array_foreach(a, i, v)
	{
		if (i >= 64 || !json_is_string(v))
			break;
		xrooms[w->nexclude_rooms++] = json_string_value(v);
	}
	w->exclude_rooms = xrooms;
}

static json_t *result_json(const struct rms_result *res, const char *e164)
{
	json_t *o;

	if (res->reason == RMS_OK)
		return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "e164", e164, "mcu", res->mcu->id, "mcu_key",
				 res->mcu->key, "vrs", res->vrs ? json_string(res->vrs->id) : json_null(), "room",
				 res->room, "platform", res->platform, "reservation", res->reservation);
	o = json_pack("{s:s, s:s, s:s}", "e164", e164, "reason", rms_reason_code(res->reason), "detail", res->detail);
	if (o && res->reason == RMS_OTHER_PLATFORM) {
		json_object_set_new(o, "room", json_string(res->room));
		json_object_set_new(o, "platform", json_string(res->platform));
	}
	return o;
}

/* Refuses a css request from a deposed css. Returns true when refused. */
static bool fenced(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	int64_t epoch = cdr_msg_int(m, "epoch", 0);
	char detail[160];

	if (epoch >= s->css_epoch) {
		s->css_epoch = epoch;
		return false;
	}
	snprintf(detail, sizeof(detail), "epoch %" PRId64 " is older than %" PRId64 ": the sender was deposed", epoch,
		 s->css_epoch);
	cdr_warn("%s %s from %s refused: %s", cdr_msg_type(m), cdr_msg_id(m), cdr_msg_src(m), detail);
	answer(s, dl, m, false, cdr_bus_nack_body("stale_epoch", detail), true);
	return true;
}

static void on_alloc(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const char *caps[8], *excl[64], *xrooms[64];
	struct rms_want w;
	struct rms_result res;
	json_t *b;

	want_from(cdr_msg_body(m), &w, caps, excl, xrooms);
	rms_inv_allocate(s->inv, &w, now_ms(), &res);
	b = result_json(&res, w.e164);
	if (res.reason == RMS_OK) {
		s->n_alloc_ok++;
		json_object_set_new(b, "epoch", json_integer(s->epoch));
		cdr_debug("allocated %s: mcu %s vrs %s room %s (%s)", w.e164, res.mcu->id, res.vrs ? res.vrs->id : "-",
			  res.room, res.reservation);
	} else {
		s->n_alloc_failed++;
		cdr_info("allocation of %s refused: %s: %s", w.e164, rms_reason_code(res.reason), res.detail);
	}
	answer(s, dl, m, res.reason == RMS_OK, b, true);
}

static void on_bulkalloc(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	json_t *confs = cdr_msg_get(m, "confs"), *item, *ok = json_array(), *failed = json_array();
	uint64_t t0 = cdr_now_ms();
	size_t i;

	json_array_foreach(confs, i, item)
	{
		const char *caps[8], *excl[64], *xrooms[64];
		struct rms_want w;
		struct rms_result res;

		want_from(item, &w, caps, excl, xrooms);
		rms_inv_allocate(s->inv, &w, now_ms(), &res);
		json_array_append_new(res.reason == RMS_OK ? ok : failed, result_json(&res, w.e164));
	}
	s->n_alloc_ok += json_array_size(ok);
	s->n_alloc_failed += json_array_size(failed);
	cdr_notice("bulk allocation%s of %zu from %s: %zu allocated, %zu failed in %" PRIu64 " ms",
		   cdr_msg_bool(m, "restore", false) ? " (restore)" : "", json_array_size(confs), cdr_msg_src(m),
		   json_array_size(ok), json_array_size(failed), cdr_now_ms() - t0);
	answer(s, dl, m, true,
	       json_pack("{s:o, s:o, s:I}", "allocated", ok, "failed", failed, "epoch", (json_int_t)s->epoch), true);
}

static void on_reservations(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool confirm)
{
	json_t *ids = cdr_msg_get(m, "reservations"), *v, *unknown = json_array();
	size_t i, done = 0;

	json_array_foreach(ids, i, v)
	{
		const char *id = json_string_value(v);
		int r = confirm ? rms_inv_confirm(s->inv, id) : rms_inv_release(s->inv, id);

		if (r == 0)
			done++;
		else
			json_array_append_new(unknown, json_string(id));
	}
	if (json_array_size(unknown))
		cdr_info("%s from %s: %zu done, %zu unknown (expired, released, or from an earlier rms leader)",
			 confirm ? "confirmation" : "release", cdr_msg_src(m), done, json_array_size(unknown));
	answer(s, dl, m, true,
	       json_pack("{s:I, s:o, s:I}", "done", (json_int_t)done, "unknown", unknown, "epoch",
			 (json_int_t)s->epoch),
	       true);
}

static void on_capability(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const char *ud = cdr_msg_str(m, "user_domain", ""), *room = NULL;
	bool h265, r1080, xmpu;
	char detail[160];
	int r = rms_inv_capability(s->inv, ud, &h265, &r1080, &xmpu, &room);

	if (r < 0) {
		snprintf(detail, sizeof(detail),
			 r == -EAGAIN ? "rms has not read the topology yet" : "user domain %s is not in the topology",
			 ud);
		answer(s, dl, m, false, cdr_bus_nack_body(r == -EAGAIN ? "not_active" : "unknown_user_domain", detail),
		       false);
		return;
	}
	answer(s, dl, m, true,
	       json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:I, s:I}", "user_domain", ud, "platform", s->platform, "room",
			 room, "h265", h265, "res_1080p", r1080, "xmpu", xmpu, "max_confs",
			 (json_int_t)s->conf.domain_max_confs, "epoch", (json_int_t)s->epoch),
	       false);
}

static void on_drain(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const char *id = cdr_msg_str(m, "mcu", "");
	bool drain = cdr_msg_bool(m, "drain", true);
	const struct rms_mcu *mcu;
	char detail[256];

	if (rms_inv_drain(s->inv, id, drain, now_ms()) < 0) {
		snprintf(detail, sizeof(detail), "mcu %s has not registered with the rms of %s", id, s->platform);
		answer(s, dl, m, false, cdr_bus_nack_body("unknown_mcu", detail), false);
		return;
	}
	mcu = rms_inv_mcu(s->inv, id);
	cdr_notice("mcu %s %s by %s", id, drain ? "drained" : "taken out of drain", cdr_msg_str(m, "operator", "?"));
	answer(s, dl, m, true,
	       json_pack("{s:s, s:s, s:b, s:I}", "mcu", id, "state", rms_mcu_state_name(mcu), "drain", mcu->drain,
			 "epoch", (json_int_t)s->epoch),
	       false);
}

static void on_inventory(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const char *room = cdr_msg_str(m, "room", NULL);
	const struct rms_mcu **mcus;
	const struct rms_vrs **vrss;
	json_t *jm = json_array(), *jv = json_array();
	size_t n, i;
	char detail[160];

	if (room && (!s->topo || !cdr_topology_room(s->topo, room))) {
		json_decref(jm);
		json_decref(jv);
		snprintf(detail, sizeof(detail), "room %s is not in the topology", room);
		answer(s, dl, m, false, cdr_bus_nack_body("unknown_room", detail), false);
		return;
	}
	mcus = rms_inv_mcus(s->inv, room, &n);
	for (i = 0; i < n; i++) {
		const struct rms_mcu *x = mcus[i];

		json_array_append_new(
			jm, json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:i, s:i, "
				      "s:b, s:I, s:I}",
				      "mcu", x->id, "key", x->key, "room", x->room, "state", rms_mcu_state_name(x),
				      "drain", x->drain, "capacity_confs", (json_int_t)x->cap_confs, "capacity_ports",
				      (json_int_t)x->cap_ports, "running_confs", (json_int_t)rms_mcu_running(x),
				      "reserved_confs", (json_int_t)x->res_confs, "used_ports",
				      (json_int_t)rms_mcu_used_ports(x), "h265", x->h265, "res_1080p", x->res_1080p,
				      "xmpu", x->xmpu, "weight", x->weight, "priority", x->priority, "backup",
				      x->backup, "since", (json_int_t)wall_of(x->live.since_ms), "last_seen",
				      (json_int_t)wall_of(x->live.last_seen_ms)));
	}
	free(mcus);
	vrss = rms_inv_vrss(s->inv, room, &n);
	for (i = 0; i < n; i++) {
		const struct rms_vrs *x = vrss[i];

		json_array_append_new(jv, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "vrs", x->id, "room",
						    x->room, "state", x->live.state == RMS_UP ? "up" : "down",
						    "capacity", (json_int_t)x->capacity, "running",
						    (json_int_t)rms_vrs_running(x), "reserved", (json_int_t)x->res,
						    "since", (json_int_t)wall_of(x->live.since_ms), "last_seen",
						    (json_int_t)wall_of(x->live.last_seen_ms)));
	}
	free(vrss);
	answer(s, dl, m, true,
	       json_pack("{s:s, s:o, s:o, s:I, s:I, s:I}", "platform", s->platform, "mcus", jm, "vrs", jv,
			 "reservations", (json_int_t)rms_inv_nreservations(s->inv), "allocations",
			 (json_int_t)rms_inv_nallocations(s->inv), "epoch", (json_int_t)s->epoch),
	       false);
}

/* ---- deliveries ---- */

static void refuse(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg_error *err, const char *queue)
{
	cdr_bus_refuse(&s->bus, dl, queue, err, "rms_any_request_nack"); /* else kept in the dead-letter queue */
}

static void on_delivery(struct rms *s, struct cdr_mq_delivery *dl, const char *queue)
{
	struct cdr_msg_error err;
	struct cdr_msg *m = NULL;
	struct cached *c;
	const char *type;

	if (!s->active) {
		cdr_mq_nack(dl, true); /* for the active instance */
		return;
	}
	if (cdr_msg_decode(dl->body, dl->len, 0, &m, &err) < 0) {
		refuse(s, dl, &err, queue);
		return;
	}
	type = cdr_msg_type(m);
	if (!strcmp(type, "cmu_rms_heartbeat_ntf") || !strcmp(type, "vrs_rms_heartbeat_ntf")) {
		on_heartbeat(s, m, type[0] == 'v');
		cdr_mq_ack(dl);
	} else if (!strcmp(type, "cmu_rms_register_req")) {
		on_register_mcu(s, dl, m);
	} else if (!strcmp(type, "vrs_rms_register_req")) {
		on_register_vrs(s, dl, m);
	} else if ((c = cdr_hmap_get(s->cache, cdr_msg_id(m)))) {
		cdr_info("%s %s answered again (a redelivery): not executed twice", type, cdr_msg_id(m));
		cdr_bus_send_reply(&s->bus, dl, c->txt);
		cdr_mq_ack(dl);
	} else if (!strcmp(type, "mau_rms_alloc_req")) {
		if (!fenced(s, dl, m))
			on_alloc(s, dl, m);
	} else if (!strcmp(type, "mau_rms_bulkalloc_req")) {
		if (!fenced(s, dl, m))
			on_bulkalloc(s, dl, m);
	} else if (!strcmp(type, "mau_rms_confirm_req") || !strcmp(type, "mau_rms_release_req")) {
		if (!fenced(s, dl, m))
			on_reservations(s, dl, m, type[8] == 'c');
	} else if (!strcmp(type, "mau_rms_capability_req")) {
		on_capability(s, dl, m);
	} else if (!strcmp(type, "ctl_rms_drain_req")) {
		on_drain(s, dl, m);
	} else if (!strcmp(type, "ctl_rms_inventory_req")) {
		on_inventory(s, dl, m);
	} else {
		char detail[200];

		snprintf(detail, sizeof(detail), "%s is not a message rms handles", type);
		cdr_warn("%s: %s (from %s)", queue, detail, cdr_msg_src(m));
		if (dl->reply_to && strstr(type, "_req"))
			answer(s, dl, m, false, cdr_bus_nack_body("bad_request", detail), false);
		else
			cdr_mq_nack(dl, false);
	}
	cdr_msg_free(m);
}

static void on_req(struct cdr_mq_delivery *dl, void *arg)
{
	on_delivery(arg, dl, CDR_MQ_RMS_REQ_Q);
}

static void on_res(struct cdr_mq_delivery *dl, void *arg)
{
	on_delivery(arg, dl, CDR_MQ_RMS_RES_Q);
}

/* ---- life ---- */

static void consume(struct rms *s)
{
	struct cdr_mq *mq = cdr_daemon_mq(s->d);
	int r;

	if (!mq || !s->active)
		return;
	/* -EALREADY: already consuming on this connection handle. */
	if ((r = cdr_mq_consume(mq, CDR_MQ_RMS_RES_Q, on_res, s)) < 0 && r != -EALREADY)
		cdr_err("cannot consume %s: %s", CDR_MQ_RMS_RES_Q, strerror(-r));
	if ((r = cdr_mq_consume(mq, CDR_MQ_RMS_REQ_Q, on_req, s)) < 0 && r != -EALREADY)
		cdr_err("cannot consume %s: %s", CDR_MQ_RMS_REQ_Q, strerror(-r));
}

static void on_tick(void *arg)
{
	struct rms *s = arg;
	size_t expired;

	if (!s->active)
		return;
	expired = rms_inv_tick(s->inv, now_ms());
	if (expired)
		cdr_info("%zu reservations expired (neither confirmed nor released within %" PRIu64 " ms)", expired,
			 s->conf.reservation_ms);
	cache_prune(s, false);
}

static void on_topology(struct cdr_topology *t, void *arg)
{
	struct rms *s = arg;

	if (!s->topo)
		cdr_info("topology: %zu platforms, %zu rooms, %zu user domains", cdr_topology_nplatforms(t),
			 cdr_topology_nrooms(t), cdr_topology_nuser_domains(t));
	rms_inv_set_topology(s->inv, t);
	cdr_topology_free(s->topo);
	s->topo = t;
	maybe_announce(s);
}

static int rms_init(struct cdr_daemon *d, void **server)
{
	const struct rms_conf *cf = cdr_daemon_conf(d);
	struct rms_policy p;
	struct rms *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->d = d;
	s->conf = *cf;
	s->css_epoch = -1;
	snprintf(s->platform, sizeof(s->platform), "%s", cf->base.platform);
	cdr_bus_init(&s->bus, d, "rms", cf->base.platform);
	TAILQ_INIT(&s->cached);
	policy_from_conf(cf, &p);
	s->inv = rms_inv_new(s->platform, &p, on_event, s);
	s->cache = cdr_hmap_new();
	if (!s->inv || !s->cache) {
		rms_inv_free(s->inv);
		cdr_hmap_free(s->cache);
		free(s);
		return -ENOMEM;
	}
	if ((r = cdr_timer_new(cdr_daemon_loop(d), on_tick, s, &s->tick)) < 0 ||
	    (r = cdr_topo_follow_new(d, &s->conf.topology_refresh_ms, on_topology, s, &s->follow)) < 0) {
		cdr_timer_free(s->tick);
		rms_inv_free(s->inv);
		cdr_hmap_free(s->cache);
		free(s);
		return r;
	}
	*server = s;
	return 0;
}

static uint64_t tick_ms(const struct rms *s)
{
	uint64_t t = s->conf.heartbeat_ms / 4;

	return t < 20 ? 20 : t > 1000 ? 1000 : t;
}

static void rms_on_link(struct cdr_daemon *d, void *server, const char *link, bool up)
{
	struct rms *s = server;

	(void)d;
	if (!up)
		return;
	if (!strcmp(link, "zookeeper") && !s->topo)
		cdr_topo_follow_fetch(s->follow);
	if (!strcmp(link, "amqp")) {
		consume(s);
		maybe_announce(s);
	}
}

static void rms_on_role(struct cdr_daemon *d, void *server, bool active, int64_t epoch)
{
	struct rms *s = server;
	struct cdr_mq *mq = cdr_daemon_mq(d);

	s->active = active;
	s->epoch = epoch;
	s->announced = false;
	s->css_epoch = -1;
	cache_prune(s, true);
	rms_inv_reset(s->inv, epoch);
	if (active) {
		cdr_timer_start(s->tick, tick_ms(s), true);
		consume(s);
		maybe_announce(s);
	} else {
		cdr_timer_stop(s->tick);
		if (mq) {
			cdr_mq_cancel(mq, CDR_MQ_RMS_REQ_Q);
			cdr_mq_cancel(mq, CDR_MQ_RMS_RES_Q);
		}
	}
}

static void rms_reload(struct cdr_daemon *d, void *server, const void *conf)
{
	struct rms *s = server;
	const struct rms_conf *cf = conf;
	struct rms_policy p;

	(void)d;
	s->conf.heartbeat_ms = cf->heartbeat_ms;
	s->conf.misses = cf->misses;
	s->conf.rise = cf->rise;
	s->conf.reservation_ms = cf->reservation_ms;
	s->conf.default_ports = cf->default_ports;
	s->conf.domain_max_confs = cf->domain_max_confs;
	s->conf.topology_refresh_ms = cf->topology_refresh_ms;
	s->conf.reply_cache = cf->reply_cache;
	policy_from_conf(cf, &p);
	rms_inv_set_policy(s->inv, &p);
	if (s->active)
		cdr_timer_start(s->tick, tick_ms(s), true);
	cdr_info("rms settings applied: heartbeat %" PRIu64 " ms x %" PRId64 " misses, rise %" PRId64
		 ", reservations %" PRIu64 " ms (MCUs keep the heartbeat they registered with until they register "
		 "again)",
		 cf->heartbeat_ms, cf->misses, cf->rise, cf->reservation_ms);
}

static void rms_free(void *server)
{
	struct rms *s = server;

	if (!s)
		return;
	cdr_info("allocations answered: %" PRIu64 " made, %" PRIu64 " refused", s->n_alloc_ok, s->n_alloc_failed);
	cache_prune(s, true);
	cdr_hmap_free(s->cache);
	cdr_timer_free(s->tick);
	cdr_topo_follow_free(s->follow);
	rms_inv_free(s->inv);
	cdr_topology_free(s->topo);
	free(s);
}

const struct cdr_daemon_ops rms_daemon_ops = {
	.name = "rms",
	.summary = "confdr resource management service: MCU/VRS inventory, heartbeats and allocation.",
	.keys = rms_conf_keys,
	.conf_size = sizeof(struct rms_conf),
	.uses_redis = false,
	.uses_mysql = false,
	.init = rms_init,
	.on_link = rms_on_link,
	.on_role = rms_on_role,
	.reload = rms_reload,
	.free = rms_free,
};
