/* css: the CM's requests on mau.conf.q: create, end, extend, rename,
 * query, list. A redelivered request is answered from the stored answer,
 * never executed twice. */
#include "css_int.h"

static void end_exec(struct css *s, struct op *op, struct conf *c);
static void extend_exec(struct css *s, struct op *op, struct conf *c);
static void rename_exec(struct css *s, struct op *op, struct conf *c);

/* An end, extend or rename not answered before: done now, or refused
 * unknown_conference when the conference is gone. */
static void exec_request(struct css *s, struct op *op)
{
	const char *e164 = cdr_msg_str(op->m, "e164", "");
	struct conf *c = cdr_hmap_get(s->confs, e164);
	char detail[160];

	if (!c || c->closing) {
		snprintf(detail, sizeof(detail), "no conference %s", e164);
		css_answer_now(op, false, css_nack_body(e164, "unknown_conference", detail));
		css_op_done(op);
		return;
	}
	if (op->kind == OP_END)
		end_exec(s, op, c);
	else if (op->kind == OP_EXTEND)
		extend_exec(s, op, c);
	else
		rename_exec(s, op, c);
}

/* A request id used before by another request (another type, sender or
 * body): refused, and the refusal is not stored (the answer stored under
 * that id stays the first request's). */
static void reused_id(struct op *op)
{
	char detail[200], *txt;

	op->s->n.reused_ids++;
	snprintf(detail, sizeof(detail), "request id %s was used before by another request", op->req);
	cdr_warn("%s %s from %s refused: %s", cdr_msg_type(op->m), op->req, cdr_msg_src(op->m), detail);
	txt = css_answer_text(op, false, css_nack_body(cdr_msg_str(op->m, "e164", NULL), "bad_request", detail));
	css_answer_send(op, txt);
	free(txt);
	css_op_done(op);
}

void css_answered_before(struct op *op, const char *stored)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	bool other = false;
	const char *answer = css_answer_of(op, stored, &other);

	if (c && op->kind == OP_CREATE) {
		css_rsv_add(s, false, c->reservation);
		c->op = NULL;
		op->c = NULL;
		css_conf_free(s, c);
	}
	if (other) {
		reused_id(op);
		return;
	}
	s->n.duplicates++;
	cdr_info("%s %s was answered before: the same answer again", cdr_msg_type(op->m), op->req);
	css_answer_send(op, answer);
	css_op_done(op);
}

static void on_answer_lookup(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;
	struct css *s = op->s;

	if (!op->dead) {
		if (status == 0 && reply && reply->type == REDIS_REPLY_STRING)
			css_answered_before(op, reply->str);
		else if (op->kind == OP_CREATE)
			css_create_begin(s, op);
		else
			exec_request(s, op);
	}
	css_op_unref(op);
}

/* Looks up the stored answer to op's request in platform's Redis; the
 * lookup's callback carries on. */
static void lookup_answer(struct css *s, struct op *op, const char *platform)
{
	struct cdr_redis *r = css_redis_of(s, platform);
	char akey[160];

	css_answer_key(op->req, akey, sizeof(akey));
	css_op_ref(op);
	if (!r || cdr_redis_command(r, on_answer_lookup, op, "GET %s", akey) < 0)
		on_answer_lookup(-ENOTCONN, NULL, op);
}

/* A request whose id is in flight: the same request again (a redelivery
 * after a lost connection, or sent twice) gets the one answer, on its
 * newest delivery; another request reusing the id is refused. Returns
 * whether m was taken care of so (m freed). */
static bool in_flight(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct op *op = cdr_hmap_get(s->reqs, cdr_msg_id(m));
	char detail[200];

	if (!op)
		return false;
	if (!css_same_request(op, m)) {
		s->n.reused_ids++;
		snprintf(detail, sizeof(detail), "request id %s is in use by another request", cdr_msg_id(m));
		css_refuse(s, dl, m, "bad_request", detail);
		return true;
	}
	s->n.duplicates++;
	if (op->dl)
		cdr_mq_ack(op->dl);
	op->dl = dl;
	cdr_msg_free(m);
	return true;
}

static void cm_create(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct css *s = arg;
	const char *ud = cdr_msg_str(m, "user_domain", ""), *e164 = cdr_msg_str(m, "e164", "");
	struct css_routing rt;
	struct op *op;
	struct conf *c;
	char detail[256];

	switch (css_route_domain(s->topo, ud, s->platform, css_plat_down, s, &rt)) {
	case CSS_ROUTE_UNKNOWN:
		snprintf(detail, sizeof(detail), "user domain %s is not in the topology", ud);
		css_refuse(s, dl, m, "unknown_user_domain", detail);
		return;
	case CSS_ROUTE_OTHER:
		snprintf(detail, sizeof(detail), "user domain %s belongs to platform %s: its css serves it", ud,
			 rt.home);
		css_refuse(s, dl, m, "wrong_platform", detail);
		return;
	case CSS_ROUTE_OWN:
		if (css_plat_down(s->platform, s)) {
			if (css_pms_down(s, s->platform))
				snprintf(detail, sizeof(detail),
					 "platform %s is declared down; its backup platform serves %s", s->platform,
					 ud);
			else if (s->released)
				snprintf(detail, sizeof(detail),
					 "platform %s is isolated (its css released it); its backup platform serves %s "
					 "once it declares it down",
					 s->platform, ud);
			else
				snprintf(detail, sizeof(detail),
					 "platform %s is up again but its records are still coming home (fail-back): "
					 "%s is served here in a moment, try again",
					 s->platform, ud);
			css_refuse(s, dl, m, "platform_down", detail);
			return;
		}
		break;
	case CSS_ROUTE_TAKEOVER:
		if (css_serving(s, rt.home))
			break; /* its Redis replica promoted and read: served here */
		snprintf(detail, sizeof(detail),
			 "platform %s of user domain %s is down and %s has not taken over its domains yet", rt.home, ud,
			 s->platform);
		css_refuse(s, dl, m, "platform_down", detail);
		return;
	}
	if (in_flight(s, dl, m))
		return;
	c = cdr_hmap_get(s->confs, e164);
	if (c && c->req && !strcmp(c->req, cdr_msg_id(m))) {
		/* running: answered from the stored answer (lookup below) */
		if (c->state == CSS_CREATING && c->op && !c->op->dl) {
			/* Found creating after a restart: its request is back. */
			op = c->op;
			op->dl = dl;
			op->m = m;
			/* where it is placed again if its MCU is found gone */
			snprintf(op->home, sizeof(op->home), "%s", rt.home);
			snprintf(op->room, sizeof(op->room), "%s", nz(rt.room));
			snprintf(op->req, sizeof(op->req), "%s", cdr_msg_id(m));
			cdr_hmap_put(s->reqs, op->req, op);
			cdr_notice("create %s of %s resumed after a restart: sent to %s again", op->req, c->e164,
				   nz(c->mcu));
			css_create_send(op);
			return;
		}
	}
	if (!(op = css_op_new(s, OP_CREATE, dl, m))) {
		css_refuse(s, dl, m, "internal_error", "out of memory");
		return;
	}
	snprintf(op->home, sizeof(op->home), "%s", rt.home);
	snprintf(op->room, sizeof(op->room), "%s", nz(rt.room));
	if (dl->redelivered) {
		lookup_answer(s, op, op->home); /* likely answered before: looked up first */
		return;
	}
	/* A first delivery: no Redis round trip before the create. Its first
	 * write, or its refusal, is made only if no answer is stored under its
	 * id, and finds that answer otherwise (css_store_put_first,
	 * css_answer_now): a create sent again by the CM is answered the same. */
	op->unchecked = true;
	css_create_begin(s, op);
}

/* The conference a CM request names, to act on now; or NULL: answered,
 * refused, or its stored answer looked up first (a conference not in
 * memory, or a redelivered request: the same answer again, never a second
 * execution; exec_request carries on when there is none). */
static struct conf *cm_conf(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m, enum op_kind kind,
			    struct op **opp)
{
	const char *e164 = cdr_msg_str(m, "e164", "");
	struct conf *c = cdr_hmap_get(s->confs, e164);
	struct op *op;

	*opp = NULL;
	if (in_flight(s, dl, m))
		return NULL;
	if (!(op = css_op_new(s, kind, dl, m))) {
		css_refuse(s, dl, m, "internal_error", "out of memory");
		return NULL;
	}
	if (!c || c->closing || dl->redelivered) {
		lookup_answer(s, op, s->platform);
		return NULL;
	}
	/* Not served here now (released, not yet home, declared down): its
	 * backup platform's css runs it or will. Ended here, it would come back
	 * there: refused, the CM asks the backup platform (the fault suite's
	 * stop-pms-both: 193 ends ACKed by a released css ran on at p2). */
	if (!css_serving(s, c->home ? c->home : s->platform)) {
		char detail[200];

		snprintf(detail, sizeof(detail),
			 "conference %s belongs to platform %s, which this css does not serve now: ask its backup "
			 "platform",
			 c->e164, c->home ? c->home : s->platform);
		css_answer_now(op, false, css_nack_body(c->e164, "platform_down", detail));
		css_op_done(op);
		return NULL;
	}
	*opp = op;
	return c;
}

static void end_exec(struct css *s, struct op *op, struct conf *c)
{
	char detail[160];

	if (c->op) {
		snprintf(detail, sizeof(detail), "conference %s is %s", c->e164, css_state_name(c->state));
		css_answer_now(op, false, css_nack_body(c->e164, "in_progress", detail));
		css_op_done(op);
		return;
	}
	css_conf_end(s, c, "cm_request", op);
}

static void cm_end(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct op *op;
	struct conf *c = cm_conf(arg, dl, m, OP_END, &op);

	if (c)
		end_exec(arg, op, c);
}

static void on_stored_answer(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;
	char detail[256];

	if (!op->dead && status == 0 && op->c && !(op->c->home && strcmp(op->c->home, op->s->platform))) {
		css_repl_wait(op->s, css_answer_replicated, op); /* op's reference goes with it */
		return;
	}
	snprintf(detail, sizeof(detail), "the change could not be stored: %s",
		 status < 0 ? css_redis_err(status, reply) : "");
	css_answer_final(op, status < 0 ? "internal_error" : NULL, detail);
}

/* Stores c with op's answer, then answers. */
void css_store_and_answer(struct css *s, struct op *op, struct conf *c)
{
	char akey[160], *val = op->req[0] ? css_answer_value(op, op->answer) : NULL;
	int r;

	css_answer_key(op->req, akey, sizeof(akey));
	css_op_ref(op);
	if ((r = css_store_put(s, c, val ? akey : NULL, val, on_stored_answer, op)) < 0)
		on_stored_answer(r, NULL, op);
	free(val);
}

/* Extends c by minutes; returns 0, or -1 with detail when over the limit. */
int css_extend(struct css *s, struct conf *c, int64_t minutes, char *detail, size_t len)
{
	int64_t end = c->planned_end_ms + minutes * 60000;

	if ((end - c->start_ms) > s->conf.max_duration_min * 60000) {
		snprintf(detail, len, "a conference lasts at most %" PRId64 " minutes", s->conf.max_duration_min);
		return -1;
	}
	c->planned_end_ms = end;
	return 0;
}

static void extend_exec(struct css *s, struct op *op, struct conf *c)
{
	const struct cdr_msg *m = op->m;
	char detail[160];

	if (c->state == CSS_ENDING || c->state == CSS_CREATING ||
	    css_extend(s, c, cdr_msg_int(m, "minutes", 0), detail, sizeof(detail)) < 0) {
		if (c->state == CSS_ENDING || c->state == CSS_CREATING)
			snprintf(detail, sizeof(detail), "conference %s is %s", c->e164, css_state_name(c->state));
		css_answer_now(op, false,
			       css_nack_body(c->e164,
					     c->state == CSS_ENDING || c->state == CSS_CREATING ? "in_progress"
												: "limit_reached",
					     detail));
		css_op_done(op);
		return;
	}
	op->c = c;
	op->answer = css_answer_text(
		op, true, json_pack("{s:s, s:I}", "e164", c->e164, "planned_end", (json_int_t)c->planned_end_ms));
	css_notify(s, CDR_MQ_CM_NTF_EX, "", "mau_cm_confextended_ntf",
		   json_pack("{s:s, s:I, s:s}", "e164", c->e164, "planned_end", (json_int_t)c->planned_end_ms, "by",
			     "cm"));
	cdr_info("conference %s extended by %" PRId64 " min (cm)", c->e164, cdr_msg_int(m, "minutes", 0));
	css_store_and_answer(s, op, c);
}

static void cm_extend(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct op *op;
	struct conf *c = cm_conf(arg, dl, m, OP_EXTEND, &op);

	if (c)
		extend_exec(arg, op, c);
}

/* The rename failed without an answer from the MCU (detail says why). */
static void rename_failed(struct op *op, const char *detail)
{
	css_mcu_op_forget(op);
	css_answer_now(op, false, css_nack_body(op->c->e164, "mcu_timeout", detail));
	op->c->op = NULL;
	css_op_done(op);
}

static void rename_timeout(struct op *op)
{
	char detail[200];

	snprintf(detail, sizeof(detail), "%s did not answer in %" PRIu64 " ms", nz(op->c->mcu),
		 op->s->conf.create_timeout_ms);
	rename_failed(op, detail);
}

/* The rename could not reach the MCU (no queue bound to its key): answered
 * at once, not after the time-out. */
static void on_rename_published(int status, void *arg)
{
	struct op *op = arg;

	if (status == -EIO && !op->dead && op->c && op->c->op == op) {
		char detail[300];

		snprintf(detail, sizeof(detail), "%s is not connected (no queue for key %s)", nz(op->c->mcu),
			 nz(op->c->mcu_key));
		rename_failed(op, detail);
	}
	css_op_unref(op);
}

static void rename_exec(struct css *s, struct op *op, struct conf *c)
{
	const struct cdr_msg *m = op->m;
	char detail[160], id[200];
	int r;

	if (c->op || c->state != CSS_RUNNING) {
		snprintf(detail, sizeof(detail), "conference %s is %s", c->e164,
			 c->op ? "busy with another request" : css_state_name(c->state));
		css_answer_now(op, false, css_nack_body(c->e164, "in_progress", detail));
		css_op_done(op);
		return;
	}
	op->c = c;
	c->op = op;
	set_str(&op->new_name, cdr_msg_str(m, "name", ""));
	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	snprintf(op->mcu_id, sizeof(op->mcu_id), "%s", id);
	cdr_hmap_put(s->mcu_ops, op->mcu_id, op);
	op->on_timer = rename_timeout;
	cdr_timer_start(op->timer, s->conf.create_timeout_ms, false);
	css_op_ref(op);
	if ((r = css_mcu_send(
		     s, c, "mau_cmu_renameconf_req", id,
		     json_pack("{s:s, s:s, s:I}", "e164", c->e164, "name", op->new_name, "epoch", (json_int_t)s->epoch),
		     on_rename_published, op)) < 0) {
		css_op_unref(op);
		snprintf(detail, sizeof(detail), "rename not sent to %s: %s", nz(c->mcu), strerror(-r));
		rename_failed(op, detail);
	}
}

static void cm_rename(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct op *op;
	struct conf *c = cm_conf(arg, dl, m, OP_RENAME, &op);

	if (c)
		rename_exec(arg, op, c);
}

static void cm_query(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct css *s = arg;
	const char *e164 = cdr_msg_str(m, "e164", "");
	struct conf *c = cdr_hmap_get(s->confs, e164);
	char detail[160];

	if (!c || c->closing) {
		snprintf(detail, sizeof(detail), "no conference %s", e164);
		css_refuse(s, dl, m, "unknown_conference", detail);
		return;
	}
	cdr_bus_answer(&s->bus, dl, m, true, json_pack("{s:s, s:o}", "e164", e164, "conf", css_conf_json(c)), false);
	cdr_msg_free(m);
}

static void cm_list(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct css *s = arg;
	const char *ud = cdr_msg_str(m, "user_domain", "");
	struct group *g;
	struct conf *c;
	json_t *a;
	char detail[160];

	if (!cdr_topology_user_domain(s->topo, ud)) {
		snprintf(detail, sizeof(detail), "no user domain %s", ud);
		css_refuse(s, dl, m, "unknown_user_domain", detail);
		return;
	}
	a = json_array();
	if ((g = cdr_hmap_get(s->uds, ud)))
		TAILQ_FOREACH(c, &g->confs, ud_link)
	if (!c->closing && c->state != CSS_CREATING)
		json_array_append_new(a, css_conf_json(c));
	cdr_bus_answer(&s->bus, dl, m, true, json_pack("{s:s, s:o}", "user_domain", ud, "confs", a), false);
	cdr_msg_free(m);
}

/* mau.conf.q: the CM's requests. Each handler keeps the request and answers it
 * once (or the same answer again for a redelivery). */
static const struct cdr_handler cm_handlers[] = {
	{ "cm_mau_createconf_req", CDR_H_REQUEST | CDR_H_KEEPS, "cm", cm_create },
	{ "cm_mau_endconf_req", CDR_H_REQUEST | CDR_H_KEEPS, "cm|ctl", cm_end },
	{ "cm_mau_extendconf_req", CDR_H_REQUEST | CDR_H_KEEPS, "cm", cm_extend },
	{ "cm_mau_renameconf_req", CDR_H_REQUEST | CDR_H_KEEPS, "cm", cm_rename },
	{ "cm_mau_queryconf_req", CDR_H_REQUEST | CDR_H_KEEPS, "cm|ctl", cm_query },
	{ "cm_mau_listconf_req", CDR_H_REQUEST | CDR_H_KEEPS, "cm|ctl", cm_list },
	{ NULL, 0, NULL, NULL },
};

static json_t *cm_nack_body(const struct cdr_msg *m, const char *reason, const char *detail)
{
	return css_nack_body(cdr_msg_str(m, "e164", NULL), reason, detail);
}

static const struct cdr_dispatch cm_dispatch = {
	.daemon = "css",
	.queue = CDR_MQ_MAU_CONF_Q,
	.nack_type = "mau_cm_request_nack",
	.max_len = CDR_MSG_MAX_CM,
	.handlers = cm_handlers,
	.bus = css_bus,
	.serving = css_serving_queues,
	.nack_body = cm_nack_body,
};

void css_on_cm_request(struct cdr_mq_delivery *dl, void *arg)
{
	struct css *s = arg;
	enum cdr_dispatch_result r = cdr_dispatch(&cm_dispatch, dl, s);

	if (r == CDR_DISPATCH_UNREADABLE || r == CDR_DISPATCH_UNKNOWN || r == CDR_DISPATCH_FORBIDDEN)
		s->n.refused++;
}
