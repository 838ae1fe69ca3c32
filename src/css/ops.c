/* css: operations in flight. A CM request (create, end, rename, extend) or
 * an end or restore css decided itself: its timer, its answer to the CM
 * (encoded once, sent once, stored for a redelivery), and the MCU leg of a
 * (re-)create: sent, timed out, or answered (op->on_mcu_ack, on_mcu_fail). */
#include "css_int.h"

static void op_on_timer(void *arg)
{
	struct op *op = arg;

	if (!op->dead && op->on_timer)
		op->on_timer(op);
}

/* Whether m is the request op serves (its redelivery), not another request
 * that reuses its id. */
bool css_same_request(const struct op *op, const struct cdr_msg *m)
{
	char fp[sizeof(op->fp)];

	cdr_msg_fingerprint(m, fp, sizeof(fp));
	return !strcmp(fp, op->fp);
}

/* The value stored for an answer: the request's fingerprint, a newline, the
 * answer (NULL for no answer or no memory). */
char *css_answer_value(const struct op *op, const char *answer)
{
	size_t n;
	char *v;

	if (!answer || !(v = malloc((n = strlen(op->fp)) + strlen(answer) + 2)))
		return NULL;
	memcpy(v, op->fp, n);
	v[n] = '\n';
	strcpy(v + n + 1, answer);
	return v;
}

/* The answer in a stored value, if it was stored for this very request;
 * NULL with *other set when the id was used by another request. A value
 * without a fingerprint (stored by an older css) is taken as it is. */
static const char *answer_in(const char *fp, const char *stored, bool *other)
{
	const char *nl = strchr(stored, '\n');

	*other = false;
	if (!nl || stored[0] == '{')
		return stored;
	if ((size_t)(nl - stored) != strlen(fp) || strncmp(stored, fp, (size_t)(nl - stored))) {
		*other = true;
		return NULL;
	}
	return nl + 1;
}

const char *css_answer_of(const struct op *op, const char *stored, bool *other)
{
	return answer_in(op->fp, stored, other);
}

struct op *css_op_new(struct css *s, enum op_kind kind, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	if (cdr_timer_new(cdr_daemon_loop(s->d), op_on_timer, op, &op->timer) < 0) {
		free(op);
		return NULL;
	}
	op->s = s;
	op->kind = kind;
	op->refs = 1;
	op->dl = dl;
	op->m = m;
	op->t0 = cdr_now_ms();
	if (m) {
		cdr_msg_fingerprint(m, op->fp, sizeof(op->fp));
		snprintf(op->req, sizeof(op->req), "%s", cdr_msg_id(m));
		if (cdr_hmap_put(s->reqs, op->req, op) < 0)
			op->req[0] = '\0';
	}
	return op;
}

void css_op_ref(struct op *op)
{
	op->refs++;
}

void css_op_unref(struct op *op)
{
	if (--op->refs > 0)
		return;
	cdr_timer_free(op->timer);
	cdr_msg_free(op->m);
	free(op->reason);
	free(op->new_name);
	free(op->answer);
	free(op);
}

/* The operation is over (answered, or abandoned at a standby): out of every
 * map; callbacks still pending see it dead. A CM request not answered is put
 * back for the next active instance. */
void css_op_done(struct op *op)
{
	struct css *s = op->s;

	if (op->dead)
		return;
	op->dead = true;
	cdr_timer_stop(op->timer);
	if (op->req[0] && cdr_hmap_get(s->reqs, op->req) == op)
		cdr_hmap_del(s->reqs, op->req);
	if (op->mcu_id[0] && cdr_hmap_get(s->mcu_ops, op->mcu_id) == op)
		cdr_hmap_del(s->mcu_ops, op->mcu_id);
	if (op->c && op->c->op == op)
		op->c->op = NULL;
	if (op->dl) {
		cdr_mq_nack(op->dl, true);
		op->dl = NULL;
	}
	css_op_unref(op);
}

/* A refusal of op's request for reason: counted (and a create's time to it
 * observed). */
static void count_refusal(struct css *s, const char *request, const char *reason, bool create, uint64_t t0)
{
	css_metric_nack(s, request, reason);
	if (create)
		css_metric_create_answered(s, t0, false);
}

/* The encoded answer to op's CM request; a refusal is counted here, where
 * every refusal of an operation is made (css_answer_now counts its own once
 * it knows which answer goes out). */
char *css_answer_text(struct op *op, bool ack, json_t *body)
{
	if (!ack && op->m)
		count_refusal(op->s, cdr_msg_type(op->m), json_string_value(json_object_get(body, "reason")),
			      op->kind == OP_CREATE, op->t0);
	return cdr_msg_encode_reply(op->m, ack, op->s->bus.src, body);
}

/* The last word on op: its ACK (op->answer), or a refusal (reason, detail)
 * when reason; then the op is over and its reference dropped. */
void css_answer_final(struct op *op, const char *reason, const char *detail)
{
	if (!op->dead) {
		if (reason) {
			const char *e164 = op->c ? op->c->e164 : op->m ? cdr_msg_str(op->m, "e164", NULL) : NULL;
			char *txt = css_answer_text(op, false, css_nack_body(e164, reason, detail));

			css_answer_send(op, txt);
			free(txt);
		} else {
			css_answer_send(op, op->answer);
		}
		if (op->c && op->c->op == op)
			op->c->op = NULL;
		css_op_done(op);
	}
	css_op_unref(op);
}

/* Sends txt to the CM and acks its request. */
void css_answer_send(struct op *op, const char *txt)
{
	if (!op->dl)
		return;
	cdr_bus_reply_and_ack(&op->s->bus, op->dl, txt);
	op->dl = NULL;
}

/* An answer being stored before it is sent (css_answer_now). */
struct pending_answer {
	struct css *s;
	struct cdr_mq_delivery *dl;
	char *txt, req[128];
	uint64_t gen;
	/* stored only if none was (a create not looked up: op->unchecked) */
	bool nx;
	char fp[CDR_MSG_FP_LEN];
	char *reused; /* sent when another request stored an answer under the id */
	/* what is counted if txt goes out (a refusal: reason set) */
	char request[64], reason[64];
	bool create;
	uint64_t t0;
};

static void on_answer_stored(int status, const redisReply *reply, void *arg)
{
	struct pending_answer *a = arg;
	bool other = false;
	const char *before;

	if (status == -ECANCELED || a->gen != a->s->gen) {
		cdr_mq_nack(a->dl, true); /* no longer active: the active css answers it */
	} else if (status == 0 && a->nx && reply && reply->type == REDIS_REPLY_STRING) {
		/* answered before: that answer again, not this one */
		before = answer_in(a->fp, reply->str, &other);
		if (other) {
			a->s->n.reused_ids++;
			if (a->reused)
				count_refusal(a->s, a->request, "bad_request", a->create, a->t0);
			cdr_warn("request %s refused: its id was used before by another request", a->req);
		} else {
			a->s->n.duplicates++;
			cdr_info("request %s was answered before: the same answer again", a->req);
		}
		if (other && !(before = a->reused))
			before = a->txt; /* no memory for the refusal: this answer, not stored */
		cdr_bus_reply_and_ack(&a->s->bus, a->dl, before);
	} else {
		if (status < 0)
			cdr_warn("answer to %s not stored (%s): sent anyway; a redelivery would be answered afresh",
				 a->req, css_redis_err(status, reply));
		if (a->reason[0])
			count_refusal(a->s, a->request, a->reason, a->create, a->t0);
		cdr_bus_reply_and_ack(&a->s->bus, a->dl, a->txt);
	}
	free(a->txt);
	free(a->reused);
	free(a);
}

/* Answers op's CM request without a record to write with it (a refusal, an
 * answer given again): the answer is stored under its request id first, as
 * every answer is, so that a redelivery gets the same one, then sent. */
void css_answer_now(struct op *op, bool ack, json_t *body)
{
	struct css *s = op->s;
	const char *request = op->m ? cdr_msg_type(op->m) : "";
	char reason[64] = "", *txt, *val, akey[160], ttl[24];
	const char *platform = op->kind == OP_CREATE && op->home[0] ? op->home : s->platform;
	struct cdr_redis *r = css_redis_of(s, platform);
	struct pending_answer *a;

	if (!ack) /* counted once it is known to go out (on_answer_stored) */
		snprintf(reason, sizeof(reason), "%s", nz(json_string_value(json_object_get(body, "reason"))));
	txt = cdr_msg_encode_reply(op->m, ack, s->bus.src, body);
	val = txt ? css_answer_value(op, txt) : NULL;
	if (!op->dl || !val || !op->req[0] || !r || !(a = calloc(1, sizeof(*a)))) {
		if (!ack && op->dl)
			count_refusal(s, request, reason, op->kind == OP_CREATE, op->t0);
		css_answer_send(op, txt); /* nothing to store it in: sent as it is */
		free(txt);
		free(val);
		return;
	}
	a->s = s;
	a->dl = op->dl;
	a->txt = txt;
	a->gen = s->gen;
	snprintf(a->req, sizeof(a->req), "%s", op->req);
	snprintf(a->request, sizeof(a->request), "%s", request);
	snprintf(a->reason, sizeof(a->reason), "%s", reason);
	a->create = op->kind == OP_CREATE;
	a->t0 = op->t0;
	if ((a->nx = op->kind == OP_CREATE && op->unchecked)) {
		char detail[200];

		snprintf(a->fp, sizeof(a->fp), "%s", op->fp);
		snprintf(detail, sizeof(detail), "request id %s was used before by another request", op->req);
		/* made in case: counted (on_answer_stored) only if sent */
		a->reused =
			cdr_msg_encode_reply(op->m, false, s->bus.src,
					     css_nack_body(cdr_msg_str(op->m, "e164", NULL), "bad_request", detail));
	}
	op->dl = NULL;
	css_answer_key(op->req, akey, sizeof(akey));
	snprintf(ttl, sizeof(ttl), "%" PRIu64, s->conf.answer_ttl_ms / 1000);
	/* SET NX GET (Redis 7): stored unless an answer is, which comes back */
	if (cdr_redis_command_argv(r, on_answer_stored, a, a->nx ? 7 : 5,
				   (const char *[]){ "SET", akey, val, "EX", ttl, "NX", "GET" }, NULL) < 0)
		on_answer_stored(-ENOTCONN, NULL, a);
	free(val);
}

json_t *css_nack_body(const char *e164, const char *reason, const char *detail)
{
	json_t *b = cdr_bus_nack_body(reason, detail);

	if (b && e164 && *e164)
		json_object_set_new(b, "e164", json_string(e164));
	return b;
}

/* Refuses a CM request (m) outright and frees m. */
void css_refuse(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m, const char *reason, const char *detail)
{
	const char *e164 = cdr_msg_str(m, "e164", NULL);

	s->n.refused++;
	css_metric_nack(s, cdr_msg_type(m), reason);
	cdr_info("%s %s refused: %s: %s", cdr_msg_type(m), cdr_msg_id(m), reason, detail);
	cdr_bus_answer(&s->bus, dl, m, false, css_nack_body(e164, reason, detail), false);
	cdr_msg_free(m);
}

void css_answer_key(const char *req, char *buf, size_t len)
{
	snprintf(buf, len, "answer:%s", req);
}

/* ---- the MCU leg of a create or a restore ---- */

static void mcu_create_timeout(struct op *op)
{
	char detail[256];

	snprintf(detail, sizeof(detail), "%s did not answer the create in %" PRIu64 " ms", nz(op->c->mcu),
		 op->s->conf.create_timeout_ms);
	op->on_mcu_fail(op, "mcu_timeout", detail);
}

static void on_create_published(int status, void *arg)
{
	struct op *op = arg;

	if (status == -EIO && !op->dead && op->c && op->c->op == op &&
	    (op->c->state == CSS_CREATING || op->c->state == CSS_RESTORING)) {
		char detail[256];

		snprintf(detail, sizeof(detail), "%s is not connected (no queue for key %s)", nz(op->c->mcu),
			 nz(op->c->mcu_key));
		op->unroutable = true;
		op->on_mcu_fail(op, "mcu_timeout", detail);
	}
	css_op_unref(op);
}

/* Sends (or sends again, after a restart) the create to the MCU; its answer
 * (mcu.c), its timeout or a failed publish ends in op->on_mcu_ack or
 * op->on_mcu_fail, which create.c or restore.c set. */
void css_mcu_create(struct op *op)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	char id[200];
	int r;

	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	if (op->mcu_id[0] && cdr_hmap_get(s->mcu_ops, op->mcu_id) == op)
		cdr_hmap_del(s->mcu_ops, op->mcu_id);
	snprintf(op->mcu_id, sizeof(op->mcu_id), "%s", id);
	cdr_hmap_put(s->mcu_ops, op->mcu_id, op);
	op->on_timer = mcu_create_timeout;
	cdr_timer_start(op->timer, s->conf.create_timeout_ms, false);
	css_op_ref(op);
	r = css_mcu_send(s, c, "mau_cmu_createconf_req", id,
			 json_pack("{s:s, s:o, s:s, s:I, s:I, s:I}", "e164", c->e164, "conf", css_conf_create(c),
				   "platform", nz(c->home), "planned_end", (json_int_t)c->planned_end_ms, "generation",
				   (json_int_t)c->generation, "epoch", (json_int_t)s->epoch),
			 on_create_published, op);
	if (r < 0) {
		char detail[256];

		css_op_unref(op);
		snprintf(detail, sizeof(detail), "create not sent to %s: %s", nz(c->mcu), strerror(-r));
		op->on_mcu_fail(op, "mcu_timeout", detail);
	}
}

void css_mcu_op_forget(struct op *op)
{
	cdr_timer_stop(op->timer);
	if (op->mcu_id[0] && cdr_hmap_get(op->s->mcu_ops, op->mcu_id) == op)
		cdr_hmap_del(op->s->mcu_ops, op->mcu_id);
	op->mcu_id[0] = '\0';
}

json_t *css_create_ack_body(const struct conf *c)
{
	return json_pack("{s:s, s:s, s:o, s:s, s:s}", "e164", c->e164, "mcu", nz(c->mcu), "vrs",
			 c->vrs && *c->vrs ? json_string(c->vrs) : json_null(), "room", nz(c->room), "platform",
			 nz(c->host));
}
