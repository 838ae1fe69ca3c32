/* css: a CM's create. Allocation by rms (capability and limit judged there), the record
 * written, the create sent to the MCU (ops.c), its ACK stored and answered,
 * or its failure undone and NACKed. */
#include "css_int.h"

static void create_store_running(struct op *op);
static void create_remove(struct op *op);

/* The room rms is asked for and the rooms it must skip (plan.h), as JSON. */
json_t *css_exclude_json(const struct css_place *pl)
{
	json_t *a = json_array();

	for (size_t i = 0; i < pl->nexclude; i++)
		json_array_append_new(a, json_string(pl->exclude[i]));
	return a;
}

/* A create that fails while its platform is released (isolated) or
 * declared down is refused platform_down, whatever stopped it: it was in
 * flight when that happened, and platform_down is the CM's cue to go to the
 * backup platform (an allocation rms could not make because it lost
 * ZooKeeper with the platform is no reason of the CM's). Its own reason
 * goes into the detail. Returns reason, or "platform_down" with detail
 * rewritten into buf. */
static const char *create_reason(struct op *op, const char *reason, const char **detail, char *buf, size_t len)
{
	struct css *s = op->s;
	bool own = !op->home[0] || !strcmp(op->home, s->platform);

	if (!strcmp(reason, "platform_down") || !(s->released || (own && css_plat_down(s->platform, s))))
		return reason;
	snprintf(buf, len, "platform %s is %s; this create was in flight and failed: %s: %s", s->platform,
		 s->released ? "isolated (its css released it)" : "declared down", reason, *detail);
	*detail = buf;
	return "platform_down";
}

/* Fails a create before anything was written: the placeholder goes. */
static void create_refuse(struct op *op, const char *reason, const char *detail)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	const char *e164 = c ? c->e164 : cdr_msg_str(op->m, "e164", NULL);
	char buf[600];

	reason = create_reason(op, reason, &detail, buf, sizeof(buf));

	s->n.create_failed++;
	cdr_info("create %s (%s) refused: %s: %s", e164 ? e164 : "?", op->req, reason, detail);
	if (c && op->placements > 1) {
		/* placed again after its record was written: the record goes too */
		if (op->dl && !op->answer)
			op->answer = css_answer_text(op, false, css_nack_body(e164, reason, detail));
		create_remove(op);
		return;
	}
	css_answer_now(op, false, css_nack_body(e164, reason, detail));
	if (c) {
		c->op = NULL;
		op->c = NULL;
		css_conf_free(s, c);
	}
	css_op_done(op);
}

static void on_create_written(int status, const redisReply *reply, void *arg);
static void create_place(struct op *op);

/* The MCUs a create found gone (css_create_fail), for its next allocation. */
static json_t *exclude_mcus_json(const struct op *op)
{
	json_t *a = json_array();

	for (int i = 0; a && i < op->nexclude_mcus; i++)
		json_array_append_new(a, json_string(op->exclude_mcus[i]));
	return a;
}

/* The creating state written again (Redis was away). */
static void create_store_creating(struct op *op)
{
	int r;

	css_op_ref(op);
	if ((r = css_store_put_first(op, on_create_written, op)) < 0)
		on_create_written(r, NULL, op);
}

static void on_create_written(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;

	if (!op->dead && status == 0 && reply && reply->type == REDIS_REPLY_STRING) {
		/* answered before: its first write found the stored answer */
		css_answered_before(op, reply->str);
	} else if (!op->dead) {
		/* Redis away (a restart of a few seconds): written again, as the
		 * running state is, before the create is refused (docs/css.md,
		 * "Create"). Nothing was sent to an MCU yet. */
		if (status < 0 && !css_store_refused(status, reply) && op->s->active &&
		    ++op->store_tries < CREATE_STORE_TRIES) {
			uint64_t delay = 500u << (op->store_tries - 1 < 3 ? op->store_tries - 1 : 3);

			cdr_warn("create %s: not stored (%s); try %d of %d in %" PRIu64 " ms", op->c->e164,
				 css_redis_err(status, reply), op->store_tries + 1, CREATE_STORE_TRIES, delay);
			op->on_timer = create_store_creating;
			cdr_timer_start(op->timer, delay, false);
		} else if (status < 0) {
			char detail[256];

			snprintf(detail, sizeof(detail), "the conference could not be stored: %s",
				 css_redis_err(status, reply));
			css_rsv_add(op->s, false, op->c->reservation);
			create_refuse(op, "internal_error", detail);
		} else {
			op->unchecked = false; /* written: no answer was stored under its id */
			op->store_tries = 0;
			if (op->c->room && css_room_abnormal(op->c->room, op->s) && op->placements < 3) {
				/* Its room was switched away while the record waited
				 * (Redis away): that room's restore has run without it.
				 * Placed again before anything runs (the fault suite's
				 * restore-redis). */
				cdr_notice("create %s: room %s was switched away before the create went out: placed "
					   "again",
					   op->c->e164, op->c->room);
				css_rsv_add(op->s, false, op->c->reservation);
				create_place(op);
			} else {
				css_create_send(op);
			}
		}
	}
	css_op_unref(op);
}

static void on_alloc(struct css *s, int status, const struct cdr_msg *reply, void *arg)
{
	struct op *op = arg;
	struct conf *c = op->c;
	char detail[512];
	int r;

	if (op->dead || !c)
		goto out; /* done, or failed meanwhile (its record being removed) */
	if (status < 0) {
		snprintf(detail, sizeof(detail), "rms did not answer the allocation: %s", strerror(-status));
		create_refuse(op, "internal_error", detail);
		goto out;
	}
	if (!css_is_ack(reply)) {
		const char *reason = cdr_msg_str(reply, "reason", "no_capacity");

		snprintf(detail, sizeof(detail), "%s", cdr_msg_str(reply, "detail", ""));
		if (!strcmp(reason, "other_platform"))
			reason = "no_capacity";
		else if (strcmp(reason, "no_capacity") && strcmp(reason, "unknown_user_domain") &&
			 strcmp(reason, "unknown_capability") && strcmp(reason, "no_capability") &&
			 strcmp(reason, "limit_reached"))
			reason = "internal_error";
		create_refuse(op, reason, detail);
		goto out;
	}
	css_str_set(s, &c->mcu, cdr_msg_str(reply, "mcu", ""));
	css_str_set(s, &c->mcu_key, cdr_msg_str(reply, "mcu_key", ""));
	set_str(&c->vrs, cdr_msg_str(reply, "vrs", NULL));
	css_str_set(s, &c->room, cdr_msg_str(reply, "room", ""));
	css_str_set(s, &c->host, cdr_msg_str(reply, "platform", s->platform));
	set_str(&c->reservation, cdr_msg_str(reply, "reservation", ""));
	css_conf_create_placed(c);
	css_index_mcu(s, c);
	css_op_ref(op);
	if ((r = css_store_put_first(op, on_create_written, op)) < 0)
		on_create_written(r, NULL, op);
out:
	css_op_unref(op);
}

/* Fills in what a public template gives and the request does not say (the
 * published templates were checked as create bodies when read: templates.c).
 * An unknown template id is logged and changes nothing. */
static void apply_template(struct css *s, json_t *body)
{
	const char *id = cdr_msg_jstr(body, "template", NULL);
	json_t *t, *details, *v;
	const char *k;
	size_t i;

	if (!id)
		return;
	json_array_foreach(s->templates, i, t)
	{
		if (strcmp(cdr_msg_jstr(t, "id", ""), id))
			continue;
		details = json_object_get(t, "details");
		json_object_foreach(details, k, v)
		{
			if (!json_object_get(body, k))
				json_object_set(body, k, v);
		}
		return;
	}
	cdr_warn("create of %s names template %s, which is not among the %zu public templates: created without it",
		 cdr_msg_jstr(body, "e164", "?"), id, json_array_size(s->templates));
}

/* A CM create whose request id is not known yet: placeholder, limits,
 * the allocation with capability and limit judged (one rms query), record, MCU. */
void css_create_begin(struct css *s, struct op *op)
{
	const char *e164 = cdr_msg_str(op->m, "e164", ""), *ud = cdr_msg_str(op->m, "user_domain", "");
	struct conf *c;
	json_t *body;
	char detail[256];

	c = cdr_hmap_get(s->confs, e164);
	if (c && c->req && !strcmp(c->req, op->req) && c->state == CSS_RUNNING && !c->op) {
		/* created by this very request: answered the same (its stored
		 * answer, or, when that expired, the ACK made again) */
		s->n.duplicates++;
		css_answer_now(op, true, css_create_ack_body(c));
		css_op_done(op);
		return;
	}
	if (c) {
		snprintf(detail, sizeof(detail), "conference %s is %s already (request %s)", e164,
			 css_state_name(c->state), nz(c->req));
		s->n.duplicates++;
		create_refuse(op, "duplicate_e164", detail);
		return;
	}
	if (s->conf.max_confs_platform > 0 && (int64_t)cdr_hmap_count(s->confs) >= s->conf.max_confs_platform) {
		snprintf(detail, sizeof(detail), "platform %s runs %zu conferences, its limit is %" PRId64, s->platform,
			 cdr_hmap_count(s->confs), s->conf.max_confs_platform);
		create_refuse(op, "limit_reached", detail);
		return;
	}
	if (!(c = css_conf_new(s, e164, ud))) {
		create_refuse(op, "internal_error", "out of memory");
		return;
	}
	op->c = c;
	c->op = op;
	c->state = CSS_CREATING;
	body = json_deep_copy(cdr_msg_body(op->m));
	apply_template(s, body);
	set_str(&c->name, cdr_msg_jstr(body, "name", ""));
	css_str_set(s, &c->home, op->home);
	set_str(&c->req, op->req);
	c->start_ms = cdr_wall_i64();
	c->planned_end_ms = c->start_ms + cdr_msg_jint(body, "duration_min", 60) * 60000;
	css_conf_set_create(c, body);
	c->epoch = s->epoch;
	create_place(op);
}

/* The allocation (on_alloc): where the create goes. rms judges the user
 * domain's capability and limit in the same request ("judge"; css asked a
 * capability query first until issue 23: one round trip less per create). */
static void create_place(struct op *op)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	json_t *b = css_conf_create(c);
	const char *res = cdr_msg_jstr(b, "resolution", "720p");
	char detail[256];
	struct css_place pl;
	int r;

	op->placements++;
	if (css_place(s->topo, op->room, s->platform, css_room_abnormal, css_plat_down, s, &pl) < 0) {
		snprintf(detail, sizeof(detail), "room %s of user domain %s and its backup rooms of platform %s are %s",
			 op->room, c->ud, s->platform, pl.nexclude ? "abnormal" : "not usable");
		json_decref(b);
		create_refuse(op, "no_capacity", detail);
		return;
	}
	css_op_ref(op);
	r = css_rms_call_patient(
		s, "mau_rms_alloc_req",
		json_pack("{s:s, s:s, s:s, s:o, s:o, s:b, s:b, s:b, s:b, s:I, s:b, s:I, s:I}", "e164", c->e164,
			  "user_domain", c->ud, "room", pl.room, "exclude_rooms", css_exclude_json(&pl), "exclude_mcus",
			  exclude_mcus_json(op), "h265", cdr_msg_jbool(b, "h265", false), "res_1080p",
			  !strcmp(res, "1080p") || !strcmp(res, "4k"), "xmpu", cdr_msg_jbool(b, "xmpu", false),
			  "record", cdr_msg_jbool(b, "record", false), "ports",
			  (json_int_t)cdr_msg_jint(b, "max_participants", 16), "judge", true, "domain_running",
			  (json_int_t)(c->by_ud && c->by_ud->n ? c->by_ud->n - 1 : 0), "epoch", (json_int_t)s->epoch),
		on_alloc, op);
	json_decref(b);
	if (r < 0) {
		css_op_unref(op);
		snprintf(detail, sizeof(detail), "cannot ask rms: %s", strerror(-r));
		create_refuse(op, "internal_error", detail);
	}
}

/* The refusal of an isolated create goes out once the replica has the
 * removal of its record as well: the backup platform takes the platform
 * over from that replica, and a record left there would be restored and run
 * (a NACKed create running: once in the fault suite's stop-pms-both, on a
 * machine under heavy load). Not confirmed in time: answered all the same,
 * and said. */
static void isolated_removed(void *arg, enum css_repl result)
{
	struct op *op = arg;

	if (result == CSS_REPL_TIMEOUT && !op->dead)
		cdr_warn("create %s: refused platform_down, but the replica did not confirm the removal of its record "
			 "either: the backup platform may run it if it takes the platform over now",
			 op->req);
	if (!op->dead) {
		css_answer_send(op, op->answer);
		css_op_done(op);
	}
	css_op_unref(op);
}

static void on_create_failed_written(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;

	if (status < 0 && status != -ECANCELED)
		cdr_warn("create %s: record not removed from Redis: %s", op->req, css_redis_err(status, reply));
	if (op->isolated && status == 0 && !op->dead) {
		css_repl_wait(op->s, isolated_removed, op); /* the reference goes with it */
		return;
	}
	if (!op->dead) {
		css_answer_send(op, op->answer);
		css_op_done(op);
	}
	css_op_unref(op);
}

/* Sends (or, resumed after a restart, sends again) the create to its MCU. */
void css_create_send(struct op *op)
{
	op->on_mcu_ack = css_create_done;
	op->on_mcu_fail = css_create_fail;
	css_mcu_create(op);
}

/* The record removed from Redis with the refusal (op->answer) stored in its
 * place, the reservation released, the conference dropped; then the answer
 * goes out. */
static void create_remove(struct op *op)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	char akey[160], *val;
	int r;

	css_answer_key(op->req, akey, sizeof(akey));
	css_rsv_add(s, false, c->reservation);
	css_op_ref(op);
	val = css_answer_value(op, op->answer);
	r = css_store_del(s, c, val ? akey : NULL, val, on_create_failed_written, op);
	free(val);
	c->op = NULL;
	op->c = NULL;
	css_conf_free(s, c);
	if (r < 0)
		on_create_failed_written(r, NULL, op);
}

void css_create_fail(struct op *op, const char *reason, const char *detail)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	char buf[600];

	css_mcu_op_forget(op);
	if (op->unroutable && c->state == CSS_CREATING && op->nexclude_mcus < CSS_CREATE_EXCLUDE) {
		/* The MCU's queue is gone (it died; rms has not declared it yet):
		 * the broker returned the create, nobody got it, nothing runs.
		 * Placed again without that MCU rather than refused (13 of 400
		 * creates were, in the fault suite's kill-mcu-rms). */
		op->unroutable = false;
		cdr_notice("create %s: %s: placed again without it", c->e164, detail);
		snprintf(op->exclude_mcus[op->nexclude_mcus], sizeof(op->exclude_mcus[0]), "%s", nz(c->mcu));
		op->nexclude_mcus++;
		css_rsv_add(s, false, c->reservation);
		create_place(op);
		return;
	}
	op->unroutable = false;
	if (css_conf_event(s, c, !strcmp(reason, "mcu_refused") ? CSS_EV_MCU_NACK : CSS_EV_TIMEOUT) < 0)
		cdr_warn("create %s: removed although it was %s", c->e164, css_state_name(c->state));
	reason = create_reason(op, reason, &detail, buf, sizeof(buf));
	s->n.create_failed++;
	cdr_info("create %s on %s failed: %s: %s", c->e164, nz(c->mcu), reason, detail);
	if (op->dl && !op->answer)
		op->answer = css_answer_text(op, false, css_nack_body(c->e164, reason, detail));
	create_remove(op);
}

/* The running state of a create could not be stored in time: the CM gets
 * internal_error and the conference does not stay on the MCU (what is not
 * stored must not run: a later css could not know it). */
static void create_unstorable(struct op *op, const char *why)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	char detail[300];

	snprintf(detail, sizeof(detail), "the conference ran on %s but could not be stored (%s): ended there",
		 nz(c->mcu), why);
	cdr_err("create %s: %s", c->e164, detail);
	css_alarm(s, "major", "store", c->e164, detail);
	s->n.create_failed++;
	css_end_on_host(s, c->host, c->e164, nz(c->mcu), c->mcu_key, "not_stored");
	css_rsv_add(s, false, c->reservation);
	css_answer_now(op, false, css_nack_body(c->e164, "internal_error", detail));
	c->op = NULL;
	op->c = NULL;
	css_conf_free(s, c);
	css_op_done(op);
}

/* Stored, but the replica did not confirm and the platform is isolated
 * meanwhile: the backup takes it over from a replica without this record.
 * Or the MCU ran it after the platform was released or taken over, and its
 * running state cannot be written. Refused (platform_down), removed where
 * it may be, ended on its MCU (as the release ended the others). */
static void create_isolated(struct op *op, const char *why)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	char detail[300];

	snprintf(detail, sizeof(detail), "platform %s is %s: ended on %s, try its backup platform", s->platform, why,
		 nz(c->mcu));
	cdr_warn("create %s: %s", c->e164, detail);
	s->n.isolated_nacks++;
	s->n.create_failed++;
	css_end_on_host(s, c->host, c->e164, nz(c->mcu), c->mcu_key, "released");
	free(op->answer);
	op->answer = op->dl ? css_answer_text(op, false, css_nack_body(c->e164, "platform_down", detail)) : NULL;
	op->isolated = true;
	create_remove(op);
}

/* The replica confirmed the running state, or is not waited for. */
static void create_replicated(void *arg, enum css_repl result)
{
	struct op *op = arg;
	struct css *s = op->s;
	struct conf *c = op->c;

	if (op->dead || !c) {
		css_op_unref(op);
		return;
	}
	if (result != CSS_REPL_CONFIRMED && s->released) {
		create_isolated(op, "isolated and its backup platform's replica did not confirm the conference");
	} else {
		if (result == CSS_REPL_TIMEOUT)
			cdr_warn("create %s: the replica did not confirm within %" PRIu64
				 " ms; answered (the platform is not isolated)",
				 c->e164, s->conf.replica_wait_ms);
		css_answer_send(op, op->answer);
		css_rsv_add(s, true, c->reservation);
		css_db_queue(s, c);
		css_upu_report(s, c, true);
		s->n.created++;
		css_metric_create_answered(s, op->t0, true);
		cdr_info("conference %s runs on %s (%s, %s) after %" PRIu64 " ms", c->e164, c->mcu, c->room, c->host,
			 cdr_now_ms() - op->t0);
		c->op = NULL;
		css_op_done(op);
		css_room_recheck(s, c, "created");
	}
	css_op_unref(op);
}

static void on_create_done(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;
	struct css *s = op->s;
	struct conf *c = op->c;

	if (!op->dead) {
		if (status == -EPERM && s->active && c->host && !strcmp(c->host, s->platform)) {
			/* Still the active css, but its platform was released
			 * (isolated) or is served elsewhere since the create went
			 * out: the conference runs on its MCU and cannot be
			 * recorded. Left alone it ran on unrecorded while the CM
			 * was told platform_down for the request again (the
			 * fault suite's stop-pms-both, nack_running 1). */
			create_isolated(op, s->released ? "isolated (its css released it) since the create went out"
							: "served by its backup platform since the create went out");
		} else if (status < 0 && css_store_refused(status, reply)) {
			/* a newer epoch wrote the record: not ours to answer;
			 * the active css does */
			cdr_warn("create %s: running state refused by the store (%s): left to the active css", c->e164,
				 css_redis_err(status, reply));
			c->op = NULL;
			css_op_done(op);
		} else if (status < 0 && ++op->store_tries >= CREATE_STORE_TRIES) {
			create_unstorable(op, css_redis_err(status, reply));
		} else if (status < 0) {
			uint64_t delay = 500u << (op->store_tries - 1 < 3 ? op->store_tries - 1 : 3);

			cdr_warn("create %s: running state not stored (%s); try %d of %d in %" PRIu64 " ms", c->e164,
				 css_redis_err(status, reply), op->store_tries + 1, CREATE_STORE_TRIES, delay);
			op->on_timer = create_store_running;
			cdr_timer_start(op->timer, delay, false);
		} else {
			/* stored: answered once the replica has it too (our own
			 * records only: a platform served here after a takeover
			 * writes into a promoted replica that has none) */
			css_op_ref(op);
			if (c->home && strcmp(c->home, s->platform))
				create_replicated(op, CSS_REPL_NONE);
			else
				css_repl_wait(s, create_replicated, op);
		}
	}
	css_op_unref(op);
}

static void create_store_running(struct op *op)
{
	char akey[160], *val = css_answer_value(op, op->answer);
	int r;

	css_answer_key(op->req, akey, sizeof(akey));
	css_op_ref(op);
	if ((r = css_store_put(op->s, op->c, val ? akey : NULL, val, on_create_done, op)) < 0)
		on_create_done(r, NULL, op);
	free(val);
}

/* The MCU ACKed: running, stored with the ACK, then the ACK goes out. */
void css_create_done(struct op *op)
{
	struct conf *c = op->c;

	css_mcu_op_forget(op);
	if (css_conf_event(op->s, c, CSS_EV_MCU_ACK) < 0) {
		/* not creating (a bug, logged): NACKed and removed; the copy on
		 * the MCU is an orphan that its next list ends */
		css_create_fail(op, "internal_error", "the MCU's ACK came for a conference that was not being created");
		return;
	}
	if (op->dl && !op->answer)
		op->answer = css_answer_text(op, true,
					     json_pack("{s:s, s:s, s:o, s:s, s:s}", "e164", c->e164, "mcu", c->mcu,
						       "vrs", c->vrs && *c->vrs ? json_string(c->vrs) : json_null(),
						       "room", nz(c->room), "platform", nz(c->host)));
	create_store_running(op);
}
