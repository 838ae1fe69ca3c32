/* The suite's side of the broker: one connection (cdr_mq) that declares
 * what rms and css declare, consumes rms.res.q as rms does (answering
 * registrations) and mau.cmu.q as css does, records every message the MCU
 * sends and checks the invariants that hold for each of them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>

#include <confdr/loop.h>
#include <confdr/mq.h>

#include "conform.h"
#include "harness.h"

#define REG_MISSES 3

const char *cf_msg_type(const struct cf_msg *m)
{
	const char *t = m->m ? cdr_msg_type(m->m) : json_string_value(json_object_get(m->env, "type"));

	return t ? t : "";
}

const char *cf_msg_id(const struct cf_msg *m)
{
	const char *t = m->m ? cdr_msg_id(m->m) : json_string_value(json_object_get(m->env, "id"));

	return t ? t : "";
}

json_t *cf_msg_body(const struct cf_msg *m)
{
	return m->m ? cdr_msg_body(m->m) : json_object_get(m->env, "body");
}

long cf_find(const struct cf *c, size_t from, char q, const char *type)
{
	for (size_t i = from; i < c->nmsgs; i++)
		if (c->msgs[i].queue == q && (!type || !strcmp(cf_msg_type(&c->msgs[i]), type)))
			return (long)i;
	return -1;
}

long cf_find_id(const struct cf *c, size_t from, const char *id)
{
	for (size_t i = from; i < c->nmsgs; i++)
		if (c->msgs[i].queue == 'c' && !strcmp(cf_msg_id(&c->msgs[i]), id))
			return (long)i;
	return -1;
}

const char *cf_next_id(struct cf *c, const char *what, char *buf, size_t len)
{
	snprintf(buf, len, "conform-%s-%" PRIu64, what, ++c->seq);
	return buf;
}

static void copy_prop(char *dst, size_t len, const char *v)
{
	snprintf(dst, len, "%s", v ? v : "");
}

static struct cf_msg *record(struct cf *c, char q, const struct cdr_mq_delivery *d)
{
	struct cf_msg *m;

	if (c->nmsgs == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct cf_msg *n = realloc(c->msgs, cap * sizeof(*n));

		if (!n)
			return NULL;
		c->msgs = n;
		c->cap = cap;
	}
	m = &c->msgs[c->nmsgs++];
	memset(m, 0, sizeof(*m));
	m->queue = q;
	m->at_ms = cdr_now_ms();
	m->incarnation = c->incarnation;
	m->env = json_loadb(d->body, d->len, JSON_REJECT_DUPLICATES, NULL);
	if (cdr_msg_decode(d->body, d->len, 0, &m->m, &m->err) < 0)
		m->m = NULL;
	copy_prop(m->key, sizeof(m->key), d->routing_key);
	copy_prop(m->corr, sizeof(m->corr), d->correlation_id);
	copy_prop(m->reply_to, sizeof(m->reply_to), d->reply_to);
	copy_prop(m->message_id, sizeof(m->message_id), d->message_id);
	copy_prop(m->ctype, sizeof(m->ctype), d->content_type);
	m->mode = d->delivery_mode;
	cf_debug("%s: %s %.*s", q == 'r' ? "rms.res.q" : "cmu.mau.ex", m->key, (int)(d->len > 600 ? 600 : d->len),
		 (const char *)d->body);
	return m;
}

/* What holds for every message the MCU sends (§1, §3, §7). */
static void check_common(struct cf *c, const struct cf_msg *m)
{
	const struct cdr_msg_type *spec = m->m ? cdr_msg_spec(m->m) : NULL;
	const char *route = m->queue == 'r' ? CDR_MQ_RMS_RES_Q : CDR_MQ_CMU_MAU_EX;

	cf_inv_note(&c->inv_schema, m->m != NULL, "%s \"%s\" refused: %s: %s", cf_msg_type(m), cf_msg_id(m),
		    cdr_msg_fault_name(m->err.fault), m->err.detail);
	if (spec)
		cf_inv_note(&c->inv_from_mcu, !strcmp(spec->from, "mcu") && !strcmp(spec->route, route),
			    "%s on %s: a message from %s on %s", spec->name, route, spec->from, spec->route);
	cf_inv_note(&c->inv_ctype, !strcmp(m->ctype, "application/json"), "%s \"%s\": content_type \"%s\"",
		    cf_msg_type(m), cf_msg_id(m), m->ctype);
}

static void check_boot(struct cf *c, const struct cf_msg *m)
{
	const char *boot = json_string_value(json_object_get(cf_msg_body(m), "boot"));

	if (!c->mcu[0])
		return;
	if (c->boot_incarnation != c->incarnation) { /* its first message since it started: its boot */
		c->has_boot = boot != NULL;
		snprintf(c->boot, sizeof(c->boot), "%s", boot ? boot : "");
		c->boot_incarnation = c->incarnation;
	}
	if (c->has_boot)
		cf_inv_note(&c->inv_boot, boot && !strcmp(boot, c->boot), "%s \"%s\": boot \"%s\", registered \"%s\"",
			    cf_msg_type(m), cf_msg_id(m), boot ? boot : "(none)", c->boot);
	else
		cf_inv_note(&c->inv_boot, !boot, "%s \"%s\": boot \"%s\", registered without one", cf_msg_type(m),
			    cf_msg_id(m), boot);
}

static void answer_registration(struct cf *c, struct cdr_mq_delivery *d, const struct cf_msg *m, bool ack)
{
	const char *mcu = cdr_msg_str(m->m, "mcu", "?");
	char src[96], *txt;
	json_t *body;

	snprintf(src, sizeof(src), "rms-%s", c->o.platform);
	if (ack)
		body = json_pack("{s:s, s:I, s:i, s:I}", "mcu", mcu, "heartbeat_ms", (json_int_t)c->o.hb_ms, "misses",
				 REG_MISSES, "epoch", (json_int_t)c->rms_epoch);
	else
		body = json_pack("{s:s, s:s, s:s}", "mcu", mcu, "reason", "not_active", "detail",
				 "the conformance suite refuses this one (a retry is expected)");
	txt = cdr_msg_encode_reply(m->m, ack, src, body);
	if (!txt || !d->reply_to || cdr_mq_reply(c->mq, d, txt, strlen(txt), NULL, NULL) < 0)
		cf_note("registration %s could not be answered (no reply_to?)", cf_msg_id(m));
	else
		cf_debug("registration %s answered: %s", cf_msg_id(m), txt);
	free(txt);
}

static void on_registration(struct cf *c, struct cdr_mq_delivery *d, const struct cf_msg *m)
{
	const char *mcu = cdr_msg_str(m->m, "mcu", "");

	if (!c->mcu[0]) {
		snprintf(c->mcu, sizeof(c->mcu), "%s", mcu);
		snprintf(c->key, sizeof(c->key), "%s", cdr_msg_str(m->m, "key", ""));
	}
	if (strcmp(mcu, c->mcu)) { /* another MCU of the command: registered, not checked */
		answer_registration(c, d, m, true);
		return;
	}
	check_boot(c, m);
	c->regs++;
	c->hb_last_seq = -1; /* rms forgets the last seq at every registration (§8.9) */
	c->hbs_since_ack = 0;
	c->last_ack_ms = 0;
	if (c->reg_policy == CF_REG_ACK || c->reg_policy == CF_REG_NACK) {
		answer_registration(c, d, m, c->reg_policy == CF_REG_ACK);
		if (c->reg_policy == CF_REG_ACK) {
			c->prev_ack_epoch = c->ack_epoch;
			c->ack_epoch = c->rms_epoch;
			c->last_ack_ms = cdr_now_ms();
			c->acks++;
			if (c->next_epoch) {
				c->rms_epoch = c->next_epoch;
				c->next_epoch = 0;
			}
		}
	}
	c->reg_policy = c->reg_policy == CF_REG_IGNORE ? CF_REG_NACK : CF_REG_ACK;
}

/* Heartbeats are followed also when their schema refused them: one sent
 * before the ACK (with no epoch to give) must still count as sent. */
static void on_heartbeat(struct cf *c, const struct cf_msg *m)
{
	json_t *body = cf_msg_body(m);
	int64_t seq = cdr_msg_jint(body, "seq", -1), epoch = cdr_msg_jint(body, "epoch", -1);

	if (strcmp(cdr_msg_jstr(body, "mcu", ""), c->mcu))
		return;
	if (m->mode != 1)
		cf_debug("heartbeat %s: delivery_mode %u (section 1 says 1, transient)", cf_msg_id(m), m->mode);
	if (!c->last_ack_ms) {
		if (c->acks)
			c->hbs_rereg++;
		else
			c->hbs_before_ack++;
		return;
	}
	check_boot(c, m);
	cf_inv_note(&c->inv_hb_seq, c->hb_last_seq < 0 || seq > c->hb_last_seq,
		    "heartbeat \"%s\": seq %" PRId64 " after %" PRId64 " within one registration", cf_msg_id(m), seq,
		    c->hb_last_seq);
	/* One sent just before the ACK came may still carry the ACK before. */
	cf_inv_note(&c->inv_hb_epoch, epoch == c->ack_epoch || (epoch == c->prev_ack_epoch && !c->hbs_since_ack),
		    "heartbeat \"%s\": epoch %" PRId64 ", its ACK's %" PRId64, cf_msg_id(m), epoch, c->ack_epoch);
	c->hb_last_seq = seq;
	if (!c->hbs_since_ack++)
		c->hb_first_ms = m->at_ms;
	c->hb_last_ms = m->at_ms;
}

static void on_res(struct cdr_mq_delivery *d, void *arg)
{
	struct cf *c = arg;
	struct cf_msg *m = record(c, 'r', d);

	if (m) {
		const char *type = cf_msg_type(m);

		check_common(c, m);
		if (m->m && !strcmp(type, "cmu_rms_register_req")) {
			cf_inv_note(&c->inv_persistent, m->mode == 2, "%s \"%s\": delivery_mode %u", type, cf_msg_id(m),
				    m->mode);
			on_registration(c, d, m);
		} else if (!strcmp(type, "cmu_rms_heartbeat_ntf")) {
			on_heartbeat(c, m);
		}
	}
	cdr_mq_ack(d);
}

static void on_list(struct cf *c, const struct cf_msg *m)
{
	int64_t seq = cdr_msg_int(m->m, "seq", -1);

	if (strcmp(cdr_msg_str(m->m, "mcu", ""), c->mcu))
		return;
	check_boot(c, m);
	cf_inv_note(&c->inv_list_seq, c->list_seq < 0 || seq > c->list_seq,
		    "list \"%s\": seq %" PRId64 " after %" PRId64 " in one incarnation", cf_msg_id(m), seq,
		    c->list_seq);
	c->list_seq = seq;
	json_decref(c->last_confs);
	c->last_confs = json_incref(cdr_msg_get(m->m, "confs"));
	c->lists++;
}

static void on_cmu(struct cdr_mq_delivery *d, void *arg)
{
	struct cf *c = arg;
	struct cf_msg *m = record(c, 'c', d);

	if (m) {
		check_common(c, m);
		if (c->key[0])
			cf_inv_note(&c->inv_key, !strcmp(m->key, c->key),
				    "%s \"%s\": routing key \"%s\", registered \"%s\"", cf_msg_type(m), cf_msg_id(m),
				    m->key, c->key);
		cf_inv_note(&c->inv_no_reply_to, !m->reply_to[0], "%s \"%s\": reply_to \"%s\"", cf_msg_type(m),
			    cf_msg_id(m), m->reply_to);
		cf_inv_note(&c->inv_persistent, m->mode == 2, "%s \"%s\": delivery_mode %u", cf_msg_type(m),
			    cf_msg_id(m), m->mode);
		if (m->m && !strcmp(cf_msg_type(m), "cmu_mau_conflist_ntf"))
			on_list(c, m);
	}
	cdr_mq_ack(d);
}

static void on_state(bool up, const char *why, void *arg)
{
	struct cf *c = arg;

	c->connected = up;
	if (!up)
		cf_note("broker: %s", why ? why : "down");
}

static bool is_connected(struct cf *c, const void *arg)
{
	(void)arg;
	return c->connected;
}

int cf_bus_open(struct cf *c)
{
	struct cdr_mq_opts o = { .url = c->o.url,
				 .tls_ca = getenv("CONFDR_TLS_CA"),
				 .name = "confdr-conform",
				 .on_state = on_state,
				 .arg = c };
	int r;

	if ((r = cdr_loop_new(&c->loop)) < 0 || (r = cdr_mq_new(c->loop, &o, &c->mq)) < 0)
		return r;
	if ((r = cdr_mq_declare_design(c->mq)) < 0 || (r = cdr_mq_consume(c->mq, CDR_MQ_RMS_RES_Q, on_res, c)) < 0 ||
	    (r = cdr_mq_consume(c->mq, CDR_MQ_MAU_CMU_Q, on_cmu, c)) < 0)
		return r;
	return cf_wait(c, is_connected, NULL, c->o.timeout_ms) ? 0 : -ETIMEDOUT;
}

void cf_bus_close(struct cf *c)
{
	c->mq = cdr_mq_free(c->mq);
	while (c->nlate)
		free(c->late[--c->nlate]);
	c->loop = cdr_loop_free(c->loop);
	for (size_t i = 0; i < c->nmsgs; i++) {
		json_decref(c->msgs[i].env);
		cdr_msg_free(c->msgs[i].m);
	}
	free(c->msgs);
	c->msgs = NULL;
	json_decref(c->last_confs);
	c->last_confs = NULL;
}

int cf_bus_purge(struct cf *c)
{
	amqp_connection_state_t a = th_admin_open(c->o.url);

	if (!a)
		return -ECONNREFUSED;
	amqp_queue_purge(a, 1, amqp_cstring_bytes(CDR_MQ_RMS_RES_Q));
	amqp_queue_purge(a, 1, amqp_cstring_bytes(CDR_MQ_MAU_CMU_Q));
	th_admin_close(a);
	return 0;
}

struct waiter {
	struct cf *c;
	bool (*pred)(struct cf *, const void *);
	const void *arg;
};

static bool waiter_pred(void *arg)
{
	struct waiter *w = arg;

	return w->pred(w->c, w->arg);
}

bool cf_wait(struct cf *c, bool (*pred)(struct cf *, const void *), const void *arg, unsigned ms)
{
	struct waiter w = { c, pred, arg };

	return pred(c, arg) || th_run_until(c->loop, waiter_pred, &w, ms);
}

void cf_run_for(struct cf *c, unsigned ms)
{
	th_run_for(c->loop, ms);
}

static bool confirmed(struct cf *c, const void *arg)
{
	(void)c;
	return th_confirmed((void *)arg);
}

static int publish(struct cf *c, const char *exchange, const char *key, const struct cdr_mq_props *p, const char *txt)
{
	struct th_confirm *done;
	int r;

	if (!txt || !(done = calloc(1, sizeof(*done))))
		return -ENOMEM;
	r = cdr_mq_publish(c->mq, exchange, key, p, txt, strlen(txt), th_on_confirm, done);
	if (r < 0) {
		free(done);
		return r;
	}
	cf_debug("sent to %s/%s: %s", exchange, key, txt);
	if (!cf_wait(c, confirmed, done, c->o.timeout_ms)) {
		/* Its confirm still comes (at the latest when the handle is freed): kept until then. */
		if (c->nlate < sizeof(c->late) / sizeof(c->late[0]))
			c->late[c->nlate++] = done;
		return -ETIMEDOUT;
	}
	r = done->status;
	free(done);
	return r;
}

int cf_send_command(struct cf *c, const char *type, const char *id, const char *src, json_t *body)
{
	struct cdr_mq_props p = {
		.persistent = true, .mandatory = true, .correlation_id = id, .message_id = id, .type = type
	};
	char *txt = cdr_msg_encode(type, id, src, 0, body);
	int r = publish(c, CDR_MQ_MAU_CMCMU_EX, c->key, &p, txt);

	free(txt);
	return r;
}

int cf_send_raw(struct cf *c, const char *text)
{
	struct cdr_mq_props p = { .persistent = true, .mandatory = true };

	return publish(c, CDR_MQ_MAU_CMCMU_EX, c->key, &p, text);
}

int cf_send_rms_notice(struct cf *c, const char *type, json_t *body)
{
	char id[96], src[96], *txt;
	struct cdr_mq_props p = { .persistent = true, .type = type };
	int r;

	snprintf(src, sizeof(src), "rms-%s", c->o.platform);
	cf_next_id(c, "rms", id, sizeof(id));
	p.message_id = id;
	txt = cdr_msg_encode(type, id, src, 0, body);
	r = publish(c, CDR_MQ_RMS_NTF_EX, "", &p, txt);
	free(txt);
	return r;
}
