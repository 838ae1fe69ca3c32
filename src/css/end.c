/* css: ending conferences. An end asked by the CM or decided by css
 * (expiry, abandoned create, orphan): the end sent to the MCU, its answer or
 * timeout, then the conference closed: history, record removed, billing. */
#include "css_int.h"

#define CLOSE_AGAIN_MS 500 /* the ended state written again after a failure */

struct close_ctx {
	struct css *s;
	struct conf *c;
	struct op *op;
	uint64_t gen;
	char *answer;
	struct cdr_timer *again; /* writes the ended state again (Redis away) */
	unsigned tries;
	uint64_t t0;		      /* monotonic ms of the first failure */
	TAILQ_ENTRY(close_ctx) waits; /* in s->close_waits while again runs */
};

static void close_write(struct close_ctx *x);

static void close_ctx_free(struct close_ctx *x)
{
	if (x->op) {
		css_op_done(x->op);
		css_op_unref(x->op);
	}
	cdr_timer_free(x->again);
	free(x->answer);
	free(x);
}

static void on_close_again(void *arg)
{
	struct close_ctx *x = arg;

	TAILQ_REMOVE(&x->s->close_waits, x, waits);
	close_write(x);
}

/* The view is dropped (a standby, the end): the records it held are gone
 * from memory, the closes waiting to be written again with them. The CM's
 * request, not acknowledged, is redelivered to the next active css. */
void css_close_waits_cancel(struct css *s)
{
	struct close_ctx *x;

	while ((x = TAILQ_FIRST(&s->close_waits))) {
		TAILQ_REMOVE(&s->close_waits, x, waits);
		close_ctx_free(x);
	}
}

/* Whether a failed close is written again: Redis away (not refused for
 * good), this css still active with the same view and serving the
 * conference's platform. Nothing is answered or written to the history
 * meanwhile: an ended state that Redis does not have would come back as a
 * running conference (docs/css.md, "End"). */
static bool close_again(struct close_ctx *x, int status, const redisReply *reply)
{
	struct css *s = x->s;
	struct conf *c = x->c;
	uint64_t now = cdr_now_ms();

	if (status == -ECANCELED || x->gen != s->gen || css_store_refused(status, reply) || !s->active ||
	    !css_serving(s, c->home ? c->home : s->platform) ||
	    (!x->again && cdr_timer_new(cdr_daemon_loop(s->d), on_close_again, x, &x->again) < 0))
		return false;
	if (x->tries++ == 0) {
		x->t0 = now;
		cdr_warn("conference %s: ended state not written to Redis: %s; written again every %d ms, the answer "
			 "and the history wait",
			 c->e164, css_redis_err(status, reply), CLOSE_AGAIN_MS);
	}
	TAILQ_INSERT_TAIL(&s->close_waits, x, waits);
	cdr_timer_start(x->again, CLOSE_AGAIN_MS, false);
	return true;
}

/* Answers the CM's end once the replica has the ended state (own records;
 * css_answer_replicated): acknowledged before, the end could come back as a
 * running conference on the backup. */
static void end_answer(struct close_ctx *x)
{
	struct css *s = x->s;
	struct conf *c = x->c;
	struct op *op = x->op;

	if (c->home && strcmp(c->home, s->platform)) {
		css_answer_send(op, x->answer);
		return;
	}
	free(op->answer);
	op->answer = x->answer; /* the answer, x's reference and the op's end go with the wait */
	x->answer = NULL;
	x->op = NULL;
	/* c goes once its history is written, which may be before the replica
	 * answers: the op no longer points to it (ASan: a use after free). */
	if (c->op == op)
		c->op = NULL;
	op->c = NULL;
	css_repl_wait(s, css_answer_replicated, op);
}

static void on_closed(int status, const redisReply *reply, void *arg)
{
	struct close_ctx *x = arg;
	struct css *s = x->s;

	if (status < 0 && close_again(x, status, reply))
		return;
	if (status != -ECANCELED && x->gen == s->gen) {
		struct conf *c = x->c;

		if (status < 0)
			cdr_warn("conference %s: ended state not written to Redis: %s (history goes on)", c->e164,
				 css_redis_err(status, reply));
		else if (x->tries)
			cdr_notice("conference %s: ended state written to Redis after %u more tries (%" PRIu64 " ms)",
				   c->e164, x->tries, cdr_now_ms() - x->t0);
		if (x->op && !x->op->dead && status == 0)
			end_answer(x);
		else if (x->op && !x->op->dead)
			css_answer_send(x->op, x->answer);
		css_notify(s, CDR_MQ_CM_NTF_EX, "", "mau_cm_confended_ntf",
			   json_pack("{s:s, s:s, s:s, s:I}", "e164", c->e164, "user_domain", c->ud, "reason",
				     nz(c->end_reason), "ended_at", (json_int_t)c->end_ms));
		css_bmc_record(s, c);
		css_upu_report(s, c, false);
		css_rsv_add(s, false, c->reservation);
		s->n.ended++;
		cdr_info("conference %s ended (%s)", c->e164, nz(c->end_reason));
		css_db_queue(s, c);
	}
	close_ctx_free(x);
}

static void close_write(struct close_ctx *x)
{
	char akey[160], *val;
	int r;

	if (x->op)
		css_answer_key(x->op->req, akey, sizeof(akey));
	val = x->op ? css_answer_value(x->op, x->answer) : NULL;
	if ((r = css_store_put(x->s, x->c, val ? akey : NULL, val, on_closed, x)) < 0)
		on_closed(r, NULL, x);
	free(val);
}

/* c has reached ENDED: the ended state (and the answer to op's CM request,
 * when op) is written, then notices, billing, release, history, removal. */
void css_conf_close(struct css *s, struct conf *c, const char *reason, struct op *op)
{
	struct close_ctx *x = calloc(1, sizeof(*x));

	c->closing = true;
	c->end_ms = cdr_wall_i64();
	if (!c->end_reason)
		set_str(&c->end_reason, reason);
	if (!x) {
		cdr_err("conference %s: out of memory closing it", c->e164);
		return;
	}
	x->s = s;
	x->c = c;
	x->gen = s->gen;
	if (op) {
		x->op = op;
		css_op_ref(op);
		if (op->dl)
			x->answer = css_answer_text(op, true, json_pack("{s:s}", "e164", c->e164));
	}
	close_write(x);
}

static void on_end_published(int status, void *arg)
{
	struct op *op = arg;

	if (status == -EIO && !op->dead) {
		/* Unroutable: the MCU is gone, and the conference with it. */
		cdr_info("conference %s: its MCU has no queue; closed", op->c ? op->c->e164 : "?");
		cdr_timer_start(op->timer, 0, false);
	}
	css_op_unref(op);
}

/* Ends c on its MCU (reason), then closes it. op may carry the CM's request. */
void css_conf_end(struct css *s, struct conf *c, const char *reason, struct op *op)
{
	char id[200];
	int r;

	enum css_event ev = c->state == CSS_RUNNING && !strcmp(reason, "expired") ? CSS_EV_EXPIRE : CSS_EV_END;

	if (!css_conf_can(c, ev) || css_conf_event(s, c, ev) < 0) {
		if (op) {
			char detail[160];

			snprintf(detail, sizeof(detail), "conference %s is %s", c->e164, css_state_name(c->state));
			css_answer_now(op, false,
				       css_nack_body(c->e164,
						     c->state == CSS_CREATING ? "in_progress" : "unknown_conference",
						     detail));
			css_op_done(op);
		}
		return;
	}
	if (c->state == CSS_ENDED) { /* pending restore: nothing runs where css places it */
		if (c->moved_mcu)    /* its room was switched away: the MCU there may still run it */
			css_end_on_host(s, c->moved_host, c->e164, c->moved_mcu, c->moved_key, reason);
		css_conf_close(s, c, reason, op);
		return;
	}
	if (!op && !(op = css_op_new(s, OP_END, NULL, NULL))) {
		cdr_err("conference %s: out of memory ending it", c->e164);
		return;
	}
	op->kind = OP_END;
	op->c = c;
	c->op = op;
	set_str(&op->reason, reason);
	set_str(&c->end_reason, reason);
	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	snprintf(op->mcu_id, sizeof(op->mcu_id), "%s", id);
	cdr_hmap_put(s->mcu_ops, op->mcu_id, op);
	/* The ending state is written before the MCU is told (a restart resumes it). */
	css_store_bg(s, c);
	css_op_ref(op);
	if ((r = css_mcu_send(
		     s, c, "mau_cmu_endconf_req", id,
		     json_pack("{s:s, s:s, s:I}", "e164", c->e164, "reason", reason, "epoch", (json_int_t)s->epoch),
		     on_end_published, op)) < 0)
		css_op_unref(op);
	op->on_timer = css_end_timeout;
	cdr_timer_start(op->timer, r < 0 ? 0 : s->conf.end_timeout_ms, false);
}

/* The MCU answered the end, or not in time: the conference is over. */
void css_end_finish(struct op *op, enum css_event ev)
{
	struct conf *c = op->c;

	if (op->mcu_id[0] && cdr_hmap_get(op->s->mcu_ops, op->mcu_id) == op)
		cdr_hmap_del(op->s->mcu_ops, op->mcu_id);
	op->mcu_id[0] = '\0';
	cdr_timer_stop(op->timer);
	if (css_conf_event(op->s, c, ev) < 0 ||
	    (c->state != CSS_ENDED && css_conf_event(op->s, c, CSS_EV_END_DONE) < 0))
		cdr_warn("conference %s: closed although it is %s", c->e164, css_state_name(c->state));
	c->op = NULL;
	css_conf_close(op->s, c, op->reason, op);
}

void css_end_timeout(struct op *op)
{
	cdr_warn("conference %s: %s did not answer the end in time; closed anyway", op->c->e164, nz(op->c->mcu));
	css_end_finish(op, CSS_EV_TIMEOUT);
}

static void on_expiring(int status, const redisReply *reply, void *arg)
{
	struct css *s = arg;
	int64_t now = cdr_wall_i64();

	if (status < 0 || !reply || reply->type != REDIS_REPLY_ARRAY || !s->consuming)
		return;
	for (size_t i = 0; i < reply->elements; i++) {
		struct conf *c = cdr_hmap_get(s->confs, reply->element[i]->str);

		if (c && css_expires(c->state, c->op != NULL, c->closing, c->planned_end_ms, now))
			css_conf_end(s, c, "expired", NULL);
	}
}

void css_expiry_tick(void *arg)
{
	struct css *s = arg;

	if (!s->consuming || !cdr_daemon_acting(s->d))
		return;
	for (size_t i = 0; i < s->nlinks; i++) {
		struct cdr_redis *r = css_redis_of(s, s->links[i].platform);

		if (r && css_serving(s, s->links[i].platform))
			cdr_redis_command(r, on_expiring, s, "ZRANGEBYSCORE confs:expiry -inf %" PRId64 " LIMIT 0 %d",
					  cdr_wall_i64(), EXPIRE_BATCH);
	}
}
