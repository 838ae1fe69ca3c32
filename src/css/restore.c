/* css: restoring conferences. A conference whose MCU, room or platform is
 * lost waits in the restore queue; one bulk allocation by rms for what is
 * due (room and backup rooms by the planner of plan.c), re-creates within a
 * window, retries with back-off, given up after restore_attempts. The MCU
 * inventory audit finds MCUs lost while no notice came. */
#include "css_int.h"

void css_restore_queue(struct css *s, struct conf *c)
{
	if (c->restore_queued)
		return;
	if (css_confvec_push(&s->restore_q, c) < 0) {
		cdr_err("conference %s: not queued for restore: out of memory", c->e164);
		return;
	}
	c->restore_queued = true;
	if (!cdr_timer_pending(s->restore_timer))
		cdr_timer_start(s->restore_timer, FLUSH_MS, false);
}

/* c was not restored this time: again after restore_retry, or ended on
 * purpose (restore_failed, alarmed) after restore_attempts. */
static void restore_later(struct css *s, struct conf *c, const char *why)
{
	char detail[512];
	uint64_t after;

	if (!css_restore_retry(++c->restore_tries, s->conf.restore_attempts, cdr_now_ms(), s->conf.restore_retry_ms,
			       &after)) {
		snprintf(detail, sizeof(detail), "conference %s of %s not restored after %d attempts: %s", c->e164,
			 c->ud, c->restore_tries, why);
		css_alarm(s, "major", "restore_failed", c->e164, detail);
		s->n.restore_failed++;
		if (css_conf_event(s, c, CSS_EV_GIVE_UP) < 0)
			cdr_warn("conference %s: closed although it is %s", c->e164, css_state_name(c->state));
		set_str(&c->end_reason, "restore_failed");
		css_conf_close(s, c, "restore_failed", NULL);
		return;
	}
	cdr_info("conference %s: restore attempt %d failed (%s); again in %" PRIu64 " ms", c->e164, c->restore_tries,
		 why, s->conf.restore_retry_ms);
	c->restore_after = after;
	css_restore_queue(s, c);
}

void css_restore_fail(struct op *op, const char *why)
{
	struct css *s = op->s;
	struct conf *c = op->c;

	css_mcu_op_forget(op);
	if (s->restoring > 0)
		s->restoring--;
	if (css_conf_event(s, c, CSS_EV_TIMEOUT) < 0)
		cdr_warn("conference %s: its failed restore leaves it %s", c->e164, css_state_name(c->state));
	css_rsv_add(s, false, c->reservation);
	set_opt(&c->lost_mcu, c->mcu);
	c->op = NULL;
	op->c = NULL;
	css_op_done(op);
	css_store_bg(s, c);
	restore_later(s, c, why);
}

void css_restore_done(struct op *op)
{
	struct css *s = op->s;
	struct conf *c = op->c;

	if (!css_store_connected(s, c)) {
		/* its Redis went away during the re-create: the new copy could
		 * not be recorded and must not run; restored again later */
		css_end_on_host(s, c->host, c->e164, nz(c->mcu), c->mcu_key, "not_stored");
		css_restore_fail(op, "its Redis is down: the new copy was ended");
		return;
	}
	css_mcu_op_forget(op);
	if (s->restoring > 0)
		s->restoring--;
	if (css_conf_event(s, c, CSS_EV_MCU_ACK) < 0)
		cdr_warn("conference %s: restored on %s although it is %s", c->e164, nz(c->mcu),
			 css_state_name(c->state));
	if (c->moved_mcu && strcmp(c->moved_mcu, nz(c->mcu))) {
		/* make before break: its room was switched away with its MCU
		 * still up; the copy there goes now that this one runs */
		css_end_on_host(s, c->moved_host, c->e164, c->moved_mcu, c->moved_key, "moved");
		s->n.moved_ended++;
	}
	css_conf_found(c);
	css_store_bg(s, c);
	css_rsv_add(s, true, c->reservation);
	css_db_queue(s, c);
	s->n.restored++;
	css_metric_restored(s, c);
	cdr_info("conference %s restored on %s (%s, %s), generation %" PRId64 ", %" PRIu64 " ms after its loss",
		 c->e164, c->mcu, nz(c->room), nz(c->host), c->generation, cdr_now_ms() - c->lost_mono);
	c->op = NULL;
	op->c = NULL;
	css_op_done(op);
	css_room_recheck(s, c, "restored");
	if (s->restore_q.n && !cdr_timer_pending(s->restore_timer))
		cdr_timer_start(s->restore_timer, 0, false);
}

/* The MCU refused the re-create, did not answer, or is not connected. */
static void restore_mcu_failed(struct op *op, const char *reason, const char *detail)
{
	char why[600];

	snprintf(why, sizeof(why), "%s: %s", reason, detail);
	css_restore_fail(op, why);
}

/* Re-creates c on the MCU it was allocated (or, after a restart, sends the
 * re-create again: the same generation is idempotent on the MCU). */
void css_restore_send(struct css *s, struct conf *c)
{
	struct op *op = css_op_new(s, OP_RESTORE, NULL, NULL);

	if (!op) {
		restore_later(s, c, "out of memory");
		return;
	}
	op->c = c;
	c->op = op;
	s->restoring++;
	css_conf_create_placed(c);
	op->on_mcu_ack = css_restore_done;
	op->on_mcu_fail = restore_mcu_failed;
	css_mcu_create(op);
}

struct bulk {
	struct css *s;
	uint64_t gen;
	json_t *e164s; /* asked for */
};

static void on_bulkalloc(struct css *s, int status, const struct cdr_msg *reply, void *arg)
{
	struct bulk *b = arg;
	json_t *a, *v;
	size_t i, done = 0, failed = 0;

	if (status == -ECANCELED || b->gen != s->gen)
		goto out;
	s->alloc_pending = false;
	if (status < 0 || !css_is_ack(reply)) {
		char why[300];

		snprintf(why, sizeof(why), "bulk allocation: %s",
			 status < 0 ? strerror(-status) : cdr_msg_str(reply, "detail", "refused"));
		json_array_foreach(b->e164s, i, v)
		{
			struct conf *c = cdr_hmap_get(s->confs, json_string_value(v));

			if (c && c->state == CSS_PENDING_RESTORE && !c->op && !c->closing)
				restore_later(s, c, why);
		}
		goto out;
	}
	a = cdr_msg_get(reply, "allocated");
	json_array_foreach(a, i, v)
	{
		struct conf *c = cdr_hmap_get(s->confs, cdr_msg_jstr(v, "e164", ""));

		if (!c || c->state != CSS_PENDING_RESTORE || c->op || c->closing ||
		    css_conf_event(s, c, CSS_EV_RESTORE_SENT) < 0) {
			css_rsv_add(s, false, cdr_msg_jstr(v, "reservation", NULL)); /* ended meanwhile */
			continue;
		}
		css_str_set(s, &c->mcu, cdr_msg_jstr(v, "mcu", ""));
		css_str_set(s, &c->mcu_key, cdr_msg_jstr(v, "mcu_key", ""));
		set_str(&c->vrs, cdr_msg_jstr(v, "vrs", NULL));
		css_str_set(s, &c->room, cdr_msg_jstr(v, "room", ""));
		css_str_set(s, &c->host, cdr_msg_jstr(v, "platform", s->platform));
		set_str(&c->reservation, cdr_msg_jstr(v, "reservation", ""));
		c->generation++;
		css_index_mcu(s, c);
		css_store_bg(s, c);
		css_restore_send(s, c);
		done++;
	}
	a = cdr_msg_get(reply, "failed");
	json_array_foreach(a, i, v)
	{
		struct conf *c = cdr_hmap_get(s->confs, cdr_msg_jstr(v, "e164", ""));
		char why[300];

		failed++;
		if (!c || c->state != CSS_PENDING_RESTORE || c->op || c->closing)
			continue;
		snprintf(why, sizeof(why), "%s: %s", cdr_msg_jstr(v, "reason", "?"), cdr_msg_jstr(v, "detail", ""));
		restore_later(s, c, why);
	}
	cdr_notice("restore: %zu conferences allocated, %zu not (of %zu asked); %zu re-creates in flight", done, failed,
		   json_array_size(b->e164s), s->restoring);
out:
	if (b->gen == s->gen && s->restore_q.n && !cdr_timer_pending(s->restore_timer))
		cdr_timer_start(s->restore_timer, FLUSH_MS, false);
	json_decref(b->e164s);
	free(b);
}

/* One bulk allocation for what is due, within the window of re-creates. */
void css_restore_kick(void *arg)
{
	struct css *s = arg;
	uint64_t now = cdr_now_ms(), next = 0;
	size_t keep = 0, room, window = (size_t)s->conf.restore_window, nbad = 0;
	json_t *confs, *e164s;
	struct conf **bad;
	struct bulk *b;
	int r;

	if (s->active && !cdr_daemon_acting(s->d)) {
		cdr_timer_start(s->restore_timer, 200, false); /* after the session is confirmed */
		return;
	}

	if (!s->consuming || s->alloc_pending || !s->restore_q.n)
		return;
	if (css_plat_down(s->platform, s)) {
		/* Declared down: the backup platform's css restores (it reads the
		 * same records from the promoted replica); nothing here. */
		cdr_timer_start(s->restore_timer, s->conf.restore_retry_ms, false);
		return;
	}
	if (!(bad = calloc(s->restore_q.n, sizeof(*bad))))
		return;
	room = s->restoring < window ? window - s->restoring : 0;
	if (room > 10000)
		room = 10000; /* one bulk allocation at most */
	confs = json_array();
	e164s = json_array();
	for (size_t i = 0; i < s->restore_q.n; i++) {
		struct conf *c = s->restore_q.v[i];
		struct css_place pl;
		const char *res;
		json_t *cr;

		if (json_array_size(confs) >= room) {
			/* The batch is full: the rest waits as it is, not
			 * scanned (a room of 50,000 is kicked about a hundred
			 * times: each scan would read the whole queue). */
			memmove(&s->restore_q.v[keep], &s->restore_q.v[i],
				(s->restore_q.n - i) * sizeof(*s->restore_q.v));
			keep += s->restore_q.n - i;
			break;
		}
		if (c->state != CSS_PENDING_RESTORE || c->op || c->closing || !css_acts_for(s, c)) {
			c->restore_queued = false;
			continue;
		}
		if (c->restore_after <= now && !css_store_connected(s, c)) {
			/* a copy that could not be recorded must not run (a
			 * takeover would run it a second time): not now */
			c->restore_after = now + s->conf.restore_retry_ms;
			if (!c->store_waited++)
				cdr_warn("conference %s: not restored while its Redis is down; again in %" PRIu64 " ms",
					 c->e164, s->conf.restore_retry_ms);
		}
		if (c->restore_after > now || json_array_size(confs) >= room) {
			if (c->restore_after > now && (!next || c->restore_after < next))
				next = c->restore_after;
			s->restore_q.v[keep++] = c;
			continue;
		}
		c->restore_queued = false;
		if (css_place(s->topo, c->room, s->platform, css_room_abnormal, css_plat_down, s, &pl) < 0) {
			bad[nbad++] = c;
			continue;
		}
		cr = css_conf_create(c); /* what the MCU must offer, as for its create */
		res = cdr_msg_jstr(cr, "resolution", "720p");
		json_array_append_new(confs, json_pack("{s:s, s:s, s:s, s:o, s:b, s:b, s:b, s:b, s:I, s:[s]}", "e164",
						       c->e164, "user_domain", c->ud, "room", pl.room, "exclude_rooms",
						       css_exclude_json(&pl), "h265", cdr_msg_jbool(cr, "h265", false),
						       "res_1080p", !strcmp(res, "1080p") || !strcmp(res, "4k"), "xmpu",
						       cdr_msg_jbool(cr, "xmpu", false), "record", c->vrs != NULL,
						       "ports", (json_int_t)cdr_msg_jint(cr, "max_participants", 16),
						       "exclude_mcus", c->lost_mcu ? c->lost_mcu : nz(c->mcu)));
		json_decref(cr);
		json_array_append_new(e164s, json_string(c->e164));
	}
	s->restore_q.n = keep;
	for (size_t i = 0; i < nbad; i++) {
		char why[200];

		snprintf(why, sizeof(why), "room %s and its backup rooms of platform %s are abnormal or down",
			 nz(bad[i]->room), s->platform);
		restore_later(s, bad[i], why);
	}
	free(bad);
	if (json_array_size(confs) == 0) {
		json_decref(confs);
		json_decref(e164s);
		if (keep && !cdr_timer_pending(s->restore_timer))
			cdr_timer_start(s->restore_timer, next > now ? next - now : FLUSH_MS, false);
		return;
	}
	if (!(b = calloc(1, sizeof(*b)))) {
		json_decref(confs);
		json_decref(e164s);
		return;
	}
	b->s = s;
	b->gen = s->gen;
	b->e164s = e164s;
	s->alloc_pending = true;
	cdr_notice("restore: asking rms for %zu MCUs (%zu more waiting, %zu re-creates in flight)",
		   json_array_size(confs), keep, s->restoring);
	r = css_rms_call(s, "mau_rms_bulkalloc_req",
			 json_pack("{s:o, s:b, s:I}", "confs", confs, "restore", 1, "epoch", (json_int_t)s->epoch),
			 on_bulkalloc, b);
	if (r < 0) {
		char why[120];

		snprintf(why, sizeof(why), "cannot ask rms: %s", strerror(-r));
		s->alloc_pending = false;
		for (size_t i = 0; i < json_array_size(e164s); i++) {
			struct conf *c = cdr_hmap_get(s->confs, json_string_value(json_array_get(e164s, i)));

			if (c)
				restore_later(s, c, why);
		}
		json_decref(e164s);
		free(b);
	}
}

/* c no longer runs on its MCU: pending restore (stored), queued. Returns 0,
 * or -1 when c is not running. */
int css_conf_lost(struct css *s, struct conf *c, uint64_t now, enum lost_why why)
{
	/* a room switched away or a platform taken over may still run it:
	 * the copy there is ended once it runs elsewhere */
	bool moved = why != LOST_MCU;

	if (c->state != CSS_RUNNING || c->op || !css_conf_can(c, CSS_EV_MCU_LOST) ||
	    css_conf_event(s, c, CSS_EV_MCU_LOST) < 0)
		return -1;
	set_opt(&c->lost_mcu, c->mcu);
	c->lost_by_room = why == LOST_ROOM;
	set_opt(&c->moved_mcu, moved ? c->mcu : NULL);
	set_opt(&c->moved_key, moved ? c->mcu_key : NULL);
	set_opt(&c->moved_host, moved ? c->host : NULL);
	c->lost_mono = now;
	c->restore_tries = 0;
	c->restore_after = 0;
	css_rsv_add(s, false, c->reservation);
	css_store_bg(s, c);
	css_restore_queue(s, c);
	return 0;
}

/* An MCU is lost (rms): its conferences are restored elsewhere. */
void css_mcu_lost(struct css *s, const char *mcu, const char *why)
{
	struct group *g = cdr_hmap_get(s->mcus, mcu);
	struct conf **list, *c;
	size_t n = 0, k = 0;
	uint64_t now = cdr_now_ms();

	if (!g || !g->n || css_plat_down(s->platform, s))
		return; /* declared down: the backup platform's css acts */
	if (!(list = calloc(g->n, sizeof(*list))))
		return;
	TAILQ_FOREACH(c, &g->confs, mcu_link)
	list[n++] = c;
	for (size_t i = 0; i < n; i++) {
		c = list[i];
		if (!css_acts_for(s, c))
			continue;
		if (c->op) {
			/* Only a create or restore waiting for this MCU's answer
			 * fails here. One between two steps (asking rms for a
			 * place again after finding this MCU's queue gone,
			 * storing its record) is not waiting for any MCU: its
			 * next step places it without this one, or its timeout
			 * resolves it. Failing it there freed its conference
			 * under the pending allocation: css crashed (SIGSEGV) in
			 * the fault suite's kill-mcu-rms, and three NACKed
			 * creates stayed in Redis. */
			if (!c->op->mcu_id[0])
				continue;
			if (c->op->kind == OP_CREATE)
				css_create_fail(c->op, "mcu_timeout", "the MCU was lost");
			else if (c->op->kind == OP_RESTORE)
				css_restore_fail(c->op, "the MCU was lost");
			continue; /* an end or a rename resolves by its timeout */
		}
		if (css_conf_lost(s, c, now, LOST_MCU) == 0)
			k++;
	}
	free(list);
	s->n.lost += k;
	cdr_warn("mcu %s lost (%s): %zu conferences to restore", mcu, why, k);
}

/* The MCUs css places conferences on, against rms's inventory: an MCU rms
 * does not have up for mcu_absent_grace is lost (a missed down notice, an MCU
 * gone while css was away, a css that started after the notice). Each rms
 * answers for its own platform's MCUs: ours (arg NULL), or another
 * platform's (arg its struct peer_mq) hosting conferences of ours since a
 * takeover.
 * An rms that says it is settling (just elected, or its broker link down)
 * has MCUs still registering with it: one whose registration a frozen,
 * deposed rms holds is missing for seconds, and nothing is concluded from
 * that; the grace counts from the first inventory after, and from an
 * inventory of another epoch (docs/rms.md, "Registrations held by a
 * frozen leader"). */
static void on_inventory(struct css *s, int status, const struct cdr_msg *reply, void *arg)
{
	struct peer_mq *pm = arg;
	const char *plat = pm ? pm->platform : s->platform;
	struct cdr_hmap *up;
	json_t *a, *v;
	size_t i, it = 0;
	const char *k;
	void *val;
	uint64_t now = cdr_now_ms();
	char *lost[64];
	size_t nlost = 0;
	int64_t *seen, epoch;
	bool settling, fresh;

	if (status == -ECANCELED)
		return;
	if (pm)
		pm->audit_pending = false;
	else
		s->audit_pending = false;
	if (status < 0 || !s->consuming || strcmp(cdr_msg_type(reply), "rms_ctl_inventory_ack") ||
	    !(up = cdr_hmap_new()))
		return; /* rms silent: nothing is concluded */
	seen = pm ? &pm->audit_epoch : &s->audit_epoch;
	epoch = cdr_msg_int(reply, "epoch", 0);
	settling = cdr_msg_bool(reply, "settling", false);
	fresh = epoch != *seen;
	if (fresh && *seen)
		cdr_info("audit of the MCUs of %s: another rms leader (epoch %" PRId64 ", before %" PRId64
			 "): an MCU's absence counts from %s",
			 plat, epoch, *seen, settling ? "when it has settled (its MCUs register again)" : "now");
	else if (settling)
		cdr_debug("audit of the MCUs of %s: its rms (epoch %" PRId64 ") is settling: nothing concluded", plat,
			  epoch);
	*seen = epoch;
	a = cdr_msg_get(reply, "mcus");
	json_array_foreach(a, i, v)
	{
		if (strcmp(cdr_msg_jstr(v, "state", "down"), "down"))
			cdr_hmap_put(up, cdr_msg_jstr(v, "mcu", ""), v);
	}
	while (cdr_hmap_next(s->mcus, &it, &k, &val)) {
		struct group *g = val;
		struct conf *c;
		bool running = false;
		enum css_audit verdict;

		TAILQ_FOREACH(c, &g->confs, mcu_link)
		if (c->state == CSS_RUNNING && !c->op) {
			running = true;
			break;
		}
		verdict = css_audit_rule(&(struct css_audit_in){
			.mcu_platform = c && c->host ? c->host : s->platform,
			.inventory_of = plat,
			.up = cdr_hmap_get(up, g->name) != NULL,
			.running = running,
			.absent_since = fresh || settling ? 0 : g->absent_since,
			.now_ms = now,
			.grace_ms = s->conf.mcu_absent_ms,
		});
		if (verdict != CSS_AUDIT_SKIP && (fresh || settling))
			g->absent_since = 0; /* counted afresh */
		if (verdict != CSS_AUDIT_SKIP && settling)
			continue; /* not judged while its rms settles */
		if (verdict == CSS_AUDIT_PRESENT)
			g->absent_since = 0;
		else if (verdict != CSS_AUDIT_SKIP && !g->absent_since)
			g->absent_since = now;
		if (verdict == CSS_AUDIT_LOST && nlost < 64)
			lost[nlost++] = strdup(g->name);
	}
	cdr_hmap_free(up);
	for (i = 0; i < nlost; i++) {
		if (lost[i])
			css_mcu_lost(s, lost[i],
				     pm ? "not up in its platform's rms's inventory" : "not up in rms's inventory");
		free(lost[i]);
	}
}

void css_audit_mcus(void *arg)
{
	struct css *s = arg;

	if (!s->consuming || !cdr_hmap_count(s->mcus) || css_plat_down(s->platform, s) || !cdr_daemon_acting(s->d))
		return;
	if (!s->audit_pending && css_rms_call(s, "ctl_rms_inventory_req", json_object(), on_inventory, NULL) == 0)
		s->audit_pending = true;
	for (size_t i = 0; i < s->npeers; i++) {
		struct peer_mq *pm = &s->peers[i];

		if (!pm->audit_pending &&
		    css_rms_call_on(s, pm->platform, "ctl_rms_inventory_req", json_object(), on_inventory, pm) == 0)
			pm->audit_pending = true;
	}
}
