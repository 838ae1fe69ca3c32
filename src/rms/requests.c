/* rms: rms.req.q, the requests of css and confdrctl. Allocations (one or
 * in bulk), confirms and releases of reservations, refused from a deposed
 * css (its epoch); a user domain's capability; drain; the inventory. */
#include "rms_int.h"

/* A monotonic time as wall time, for answers. */
static int64_t wall_of(int64_t mono)
{
	return (int64_t)cdr_wall_ms() - (cdr_mono_i64() - mono);
}

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
bool rms_fenced(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
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
	rms_answer(s, dl, m, false, cdr_bus_nack_body("stale_epoch", detail), true);
	return true;
}

/* The warm-up of a newly elected rms: two heartbeat intervals, at least a
 * second, for the MCUs to register again (they are asked at the election);
 * and after its broker link came back, broker_return_grace, while the MCUs
 * re-connect (each is allocated nothing until it is heard again). */
bool rms_warming(const struct rms *s)
{
	int64_t w = 2 * (int64_t)s->conf.heartbeat_ms, now = cdr_mono_i64();

	return now - s->active_since_ms < (w < 1000 ? 1000 : w) ||
	       (s->link_back_ms && now - s->link_back_ms < (int64_t)s->conf.return_grace_ms);
}

/* not_active: a just elected rms, its MCUs registering again (css asks again). */
static json_t *warming_body(void)
{
	return json_pack("{s:s, s:s}", "reason", "not_active", "detail",
			 "rms was just elected, or its broker came back: its MCUs are registering again; ask again");
}

/* A create's allocation refused before anything is allocated (stored: the
 * same request again gets the same refusal). */
static void alloc_refused(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, const char *e164,
			  const char *reason, const char *detail)
{
	cdr_info("allocation of %s refused: %s: %s", e164, reason, detail);
	rms_answer(s, dl, m, false, json_pack("{s:s, s:s, s:s}", "e164", e164, "reason", reason, "detail", detail),
		   true);
}

/* A create's judgement before its allocation ("judge": css asks nothing
 * else): what the user domain's room can do and the domain's limit. Returns
 * true when answered (refused, or asked to wait while the MCUs register). */
static bool judged_out(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, const struct rms_want *w)
{
	bool h265, r1080, xmpu;
	const char *room = NULL, *what = NULL;
	int64_t running = cdr_msg_int(m, "domain_running", 0), max = s->conf.domain_max_confs;
	char detail[256];

	if (rms_inv_capability(s->inv, w->user_domain, &h265, &r1080, &xmpu, &room) < 0)
		return false; /* no topology or no such domain: the allocation says so */
	if (w->h265 && !h265)
		what = "H.265";
	else if (w->res_1080p && !r1080)
		what = "1080p or 4k";
	else if (w->xmpu && !xmpu)
		what = "XMPU";
	if (what && rms_warming(s)) {
		rms_answer(s, dl, m, false, warming_body(), false);
		return true;
	}
	if (what) {
		snprintf(detail, sizeof(detail), "user domain %s may not use %s: no MCU of room %s has it",
			 w->user_domain, what, room);
		alloc_refused(s, dl, m, w->e164, "no_capability", detail);
		return true;
	}
	if (max > 0 && running >= max) {
		snprintf(detail, sizeof(detail), "user domain %s runs %" PRId64 " conferences, its limit is %" PRId64,
			 w->user_domain, running, max);
		alloc_refused(s, dl, m, w->e164, "limit_reached", detail);
		return true;
	}
	return false;
}

void rms_on_alloc(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const char *caps[8], *excl[64], *xrooms[64];
	struct rms_want w;
	struct rms_result res;
	json_t *b;

	want_from(cdr_msg_body(m), &w, caps, excl, xrooms);
	if (cdr_msg_bool(m, "judge", false) && judged_out(s, dl, m, &w))
		return;
	rms_inv_allocate(s->inv, &w, cdr_mono_i64(), &res);
	if ((res.reason == RMS_NO_CAPACITY || res.reason == RMS_OTHER_PLATFORM) && res.unsure && rms_warming(s)) {
		/* Just elected: the MCUs are registering with us again. Not
		 * cached: css asks again (docs/rms.md, "Warm-up"). */
		cdr_info("allocation of %s not answered yet: the MCUs are registering again (elected %" PRId64
			 " ms ago; %s)",
			 w.e164, cdr_mono_i64() - s->active_since_ms, res.detail);
		rms_answer(s, dl, m, false, warming_body(), false);
		return;
	}
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
	rms_answer(s, dl, m, res.reason == RMS_OK, b, true);
}

void rms_on_bulkalloc(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
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
		rms_inv_allocate(s->inv, &w, cdr_mono_i64(), &res);
		json_array_append_new(res.reason == RMS_OK ? ok : failed, result_json(&res, w.e164));
	}
	s->n_alloc_ok += json_array_size(ok);
	s->n_alloc_failed += json_array_size(failed);
	cdr_notice("bulk allocation%s of %zu from %s: %zu allocated, %zu failed in %" PRIu64 " ms",
		   cdr_msg_bool(m, "restore", false) ? " (restore)" : "", json_array_size(confs), cdr_msg_src(m),
		   json_array_size(ok), json_array_size(failed), cdr_now_ms() - t0);
	rms_answer(s, dl, m, true,
		   json_pack("{s:o, s:o, s:I}", "allocated", ok, "failed", failed, "epoch", (json_int_t)s->epoch),
		   true);
}

void rms_on_reservations(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool confirm)
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
	rms_answer(s, dl, m, true,
		   json_pack("{s:I, s:o, s:I}", "done", (json_int_t)done, "unknown", unknown, "epoch",
			     (json_int_t)s->epoch),
		   true);
}

void rms_on_capability(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const char *ud = cdr_msg_str(m, "user_domain", ""), *room = NULL;
	bool h265, r1080, xmpu;
	char detail[160];
	int r = rms_inv_capability(s->inv, ud, &h265, &r1080, &xmpu, &room);

	if (r < 0) {
		snprintf(detail, sizeof(detail),
			 r == -EAGAIN ? "rms has not read the topology yet" : "user domain %s is not in the topology",
			 ud);
		rms_answer(s, dl, m, false,
			   cdr_bus_nack_body(r == -EAGAIN ? "not_active" : "unknown_user_domain", detail), false);
		return;
	}
	rms_answer(s, dl, m, true,
		   json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:I, s:I}", "user_domain", ud, "platform", s->platform,
			     "room", room, "h265", h265, "res_1080p", r1080, "xmpu", xmpu, "max_confs",
			     (json_int_t)s->conf.domain_max_confs, "epoch", (json_int_t)s->epoch),
		   false);
}

void rms_on_drain(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const char *id = cdr_msg_str(m, "mcu", "");
	bool drain = cdr_msg_bool(m, "drain", true);
	const struct rms_mcu *mcu;
	char detail[256];

	if (rms_inv_drain(s->inv, id, drain, cdr_mono_i64()) < 0) {
		snprintf(detail, sizeof(detail), "mcu %s has not registered with the rms of %s", id, s->platform);
		rms_answer(s, dl, m, false, cdr_bus_nack_body("unknown_mcu", detail), false);
		return;
	}
	mcu = rms_inv_mcu(s->inv, id);
	cdr_notice("mcu %s %s by %s", id, drain ? "drained" : "taken out of drain", cdr_msg_str(m, "operator", "?"));
	rms_answer(s, dl, m, true,
		   json_pack("{s:s, s:s, s:b, s:I}", "mcu", id, "state", rms_mcu_state_name(mcu), "drain", mcu->drain,
			     "epoch", (json_int_t)s->epoch),
		   false);
}

void rms_on_inventory(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
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
		rms_answer(s, dl, m, false, cdr_bus_nack_body("unknown_room", detail), false);
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
	rms_answer(s, dl, m, true,
		   json_pack("{s:s, s:o, s:o, s:I, s:I, s:I, s:b}", "platform", s->platform, "mcus", jm, "vrs", jv,
			     "reservations", (json_int_t)rms_inv_nreservations(s->inv), "allocations",
			     (json_int_t)rms_inv_nallocations(s->inv), "epoch", (json_int_t)s->epoch, "settling",
			     rms_inv_settling(s->inv, cdr_mono_i64())),
		   false);
}
