/* css: what css sends. Commands to MCUs (through the broker of the
 * platform that hosts them), notices to the UPU, billing records to the BMC,
 * alarms, requests to rms, and reservation confirms and releases in batches. */
#include "css_int.h"

struct rsv_req;
static void rsv_send(struct css *s, struct rsv_req *rr);

/* The broker of host platform: this css drives only its own platform's
 * MCUs; a conference hosted elsewhere after a platform failover is reached
 * through that platform's broker, and that platform's rms notices are
 * heard there too (an MCU of that platform hosting our conferences that
 * goes down: notices.c). */
static struct cdr_mq *mq_of_host(struct css *s, const char *host)
{
	const struct cdr_endpoint *ep;
	struct cdr_mq_opts o = { 0 };
	struct peer_mq *pm;
	char url[1024], name[96];

	if (!host || !*host || !strcmp(host, s->platform))
		return cdr_daemon_mq(s->d);
	for (size_t i = 0; i < s->npeers; i++)
		if (!strcmp(s->peers[i].platform, host))
			return s->peers[i].mq;
	if (s->npeers >= MAX_REDIS || !s->topo || !(ep = cdr_topology_main_endpoint(s->topo, host, CDR_SVC_MQ)) ||
	    cdr_daemon_amqp_url(s->d, ep, url, sizeof(url)) < 0)
		return NULL;
	pm = &s->peers[s->npeers];
	snprintf(name, sizeof(name), "css-%s-to-%s", s->platform, host);
	o.url = url;
	o.tls_ca = ((const struct css_conf *)cdr_daemon_conf(s->d))->base.amqp_tls_ca;
	o.name = name;
	if (cdr_mq_new(cdr_daemon_loop(s->d), &o, &pm->mq) < 0)
		return NULL;
	snprintf(pm->platform, sizeof(pm->platform), "%s", host);
	pm->s = s;
	pm->rms_epoch = 0;
	if (cdr_mq_subscribe(pm->mq, CDR_MQ_RMS_NTF_EX, "", css_on_peer_rms_ntf, pm) < 0)
		cdr_warn("broker of platform %s: its rms notices not subscribed: an MCU there hosting our conferences "
			 "that goes down is seen by the MCU audit only",
			 host);
	s->npeers++;
	cdr_notice("broker of platform %s (%s:%d/%s): connecting, for conferences hosted there", host, ep->host,
		   ep->port, ep->vhost ? ep->vhost : "/");
	return pm->mq;
}

void css_peer_watch(struct css *s, const char *host)
{
	if (!mq_of_host(s, host))
		cdr_warn("no broker for platform %s, which hosts conferences of ours", nz(host));
}

int css_mcu_send(struct css *s, const struct conf *c, const char *type, const char *id, json_t *body,
		 cdr_mq_confirm_fn confirm, void *arg)
{
	struct cdr_mq *mq = mq_of_host(s, c->host);

	if (!mq) {
		json_decref(body);
		cdr_warn("%s for %s not sent: no broker for platform %s", type, c->e164, nz(c->host));
		return -ENOTCONN;
	}
	return cdr_bus_publish(&s->bus, mq, CDR_MQ_MAU_CMCMU_EX, c->mcu_key, type, id, s->epoch, body, true, confirm,
			       arg);
}

/* An MCU answers on its own platform's bus; an answer to a command another
 * platform's css sent (a conference of that platform hosted here after a
 * failover) is passed on to that css's mau.cmu.q, as it came. Returns
 * whether the answer was for another css (passed on, or dropped when its
 * platform is unknown or unreachable: that css resolves it by its time-out). */
bool css_relay_answer(struct css *s, const struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	struct cdr_mq_props p = { .persistent = true };
	char plat[64];
	struct cdr_mq *mq;
	int r;

	if (!css_sender_platform(cdr_msg_id(m), plat, sizeof(plat)) || !strcmp(plat, s->platform))
		return false;
	if (!s->topo || !cdr_topology_platform(s->topo, plat)) {
		cdr_info("%s %s: for the css of platform %s, which the topology does not know: dropped",
			 cdr_msg_type(m), cdr_msg_id(m), plat);
		return true;
	}
	if (!(mq = mq_of_host(s, plat))) {
		cdr_warn("%s %s for the css of %s: no broker for that platform: dropped", cdr_msg_type(m),
			 cdr_msg_id(m), plat);
		return true;
	}
	p.message_id = dl->message_id;
	p.correlation_id = dl->correlation_id;
	p.content_type = "application/json";
	if ((r = cdr_mq_publish(mq, "", CDR_MQ_MAU_CMU_Q, &p, dl->body, dl->len, NULL, NULL)) < 0)
		cdr_warn("%s %s for the css of %s not passed on: %s", cdr_msg_type(m), cdr_msg_id(m), plat,
			 strerror(-r));
	else
		s->n.relayed++;
	return true;
}

void css_end_on_host(struct css *s, const char *host, const char *e164, const char *mcu, const char *key,
		     const char *reason)
{
	struct cdr_mq *mq = mq_of_host(s, host);

	if (!mq) {
		cdr_warn("conference %s: end on %s not sent: no broker for platform %s", e164, mcu, nz(host));
		return;
	}
	cdr_bus_publish(&s->bus, mq, CDR_MQ_MAU_CMCMU_EX, key && *key ? key : mcu, "mau_cmu_endconf_req", NULL,
			s->epoch,
			json_pack("{s:s, s:s, s:I}", "e164", e164, "reason", reason, "epoch", (json_int_t)s->epoch),
			false, NULL, NULL);
}

void css_end_on_mcu(struct css *s, const char *e164, const char *mcu, const char *key, const char *reason)
{
	css_end_on_host(s, NULL, e164, mcu, key, reason);
}

void css_notify(struct css *s, const char *exchange, const char *key, const char *type, json_t *body)
{
	cdr_bus_publish(&s->bus, NULL, exchange, key, type, NULL, s->epoch, body, false, NULL, NULL);
}

#define UPU_BATCH_MAX 1000 /* items of one mau_upu_e164_batch_ntf (the schema's bound) */

void css_upu_flush(void *arg)
{
	struct css *s = arg;
	json_t *items = s->upu;

	if (!items)
		return;
	s->upu = NULL;
	cdr_timer_stop(s->upu_timer);
	css_notify(s, CDR_MQ_UPU_NTF_EX, "", "mau_upu_e164_batch_ntf", json_pack("{s:o}", "items", items));
}

void css_upu_report(struct css *s, const struct conf *c, bool start)
{
	json_t *item = json_pack("{s:s, s:s, s:s, s:s, s:s}", "e164", c->e164, "user_domain", c->ud, "platform",
				 nz(c->home), "state", start ? "start" : "end", "kind", "conference");

	if (!s->conf.upu_batch_ms || !item || (!s->upu && !(s->upu = json_array()))) {
		css_notify(s, CDR_MQ_UPU_NTF_EX, "", "mau_upu_e164_ntf", item); /* one each */
		return;
	}
	json_array_append_new(s->upu, item);
	if (json_array_size(s->upu) >= UPU_BATCH_MAX)
		css_upu_flush(s);
	else if (!cdr_timer_pending(s->upu_timer))
		cdr_timer_start(s->upu_timer, s->conf.upu_batch_ms, false);
}

void css_bmc_record(struct css *s, const struct conf *c)
{
	char rid[128];

	snprintf(rid, sizeof(rid), "%s-%s-%" PRId64, nz(c->home), c->e164, c->start_ms);
	css_notify(s, "", CDR_MQ_BMC_CDR_Q, "mau_bmc_cdr_ntf",
		   json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:s}", "record_id", rid, "e164",
			     c->e164, "name", c->name && *c->name ? c->name : c->e164, "user_domain", c->ud, "platform",
			     nz(c->home), "host_platform", c->host ? c->host : nz(c->home), "room",
			     c->room ? c->room : "-", "mcu", c->mcu && *c->mcu ? json_string(c->mcu) : json_null(),
			     "start", (json_int_t)c->start_ms, "end", (json_int_t)c->end_ms, "reason",
			     nz(c->end_reason)));
}

void css_alarm(struct css *s, const char *severity, const char *kind, const char *target, const char *detail)
{
	cdr_log(severity[0] == 'c' && severity[1] == 'l' ? CDR_LOG_NOTICE : CDR_LOG_WARN, "ALARM %s %s %s: %s",
		severity, kind, target, detail);
	cdr_daemon_alarm(s->d, kind, severity);
	css_notify(s, CDR_MQ_ALARM_EX, "", "mau_all_alarm_ntf",
		   json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "severity", severity, "kind", kind, "target", target,
			     "platform", s->platform, "detail", detail, "epoch", (json_int_t)s->epoch));
}

#define RMS_ASK_AGAIN_MS 200 /* after a just elected rms said not_active */

struct css_rms_call {
	struct css *s;
	rms_fn fn;
	void *arg;
	char *txt;			 /* kept to send again (patient calls only) */
	int64_t deadline;		 /* monotonic ms: no repeat after this */
	unsigned tries;			 /* sent again after a timeout */
	struct cdr_timer *again;	 /* asks again after not_active */
	TAILQ_ENTRY(css_rms_call) waits; /* in s->rms_waits while again runs */
};

static void on_rms_reply(int status, const struct cdr_mq_delivery *reply, void *arg);

static void rms_call_end(struct css_rms_call *rc, int status, const struct cdr_msg *m)
{
	rc->fn(rc->s, status, m, rc->arg);
	cdr_timer_free(rc->again);
	free(rc->txt);
	free(rc);
}

/* Sends a patient call's message again; false when it may not (no longer
 * active, past its patience, no broker). */
static bool ask_again(struct css_rms_call *rc)
{
	struct cdr_mq *mq;

	return rc->txt && rc->s->active && cdr_mono_i64() < rc->deadline && (mq = mq_of_host(rc->s, NULL)) &&
	       cdr_mq_request_transient(mq, "", CDR_MQ_RMS_REQ_Q, rc->txt, strlen(rc->txt),
					(unsigned)rc->s->conf.rms_timeout_ms, on_rms_reply, rc) == 0;
}

static void on_ask_again(void *arg)
{
	struct css_rms_call *rc = arg;

	TAILQ_REMOVE(&rc->s->rms_waits, rc, waits);
	if (!ask_again(rc))
		rms_call_end(rc, -ETIMEDOUT, NULL);
}

void css_rms_waits_cancel(struct css *s)
{
	struct css_rms_call *rc;

	while ((rc = TAILQ_FIRST(&s->rms_waits))) {
		TAILQ_REMOVE(&s->rms_waits, rc, waits);
		rms_call_end(rc, -ECANCELED, NULL);
	}
}

static void on_rms_reply(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct css_rms_call *rc = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;

	if (status == -ETIMEDOUT && ask_again(rc)) {
		struct css *s = rc->s;
		int64_t now = cdr_mono_i64();

		rc->tries++;
		/* One line per 5 s, not one per request. */
		s->rms_again_n++;
		if (now - s->rms_again_logged_ms >= 5000) {
			cdr_notice("rms has not answered %" PRIu64 " request%s in %" PRIu64
				   " ms: asked again, for up to %" PRIu64 " ms each (a standby rms takes over)",
				   s->rms_again_n, s->rms_again_n == 1 ? "" : "s", s->conf.rms_timeout_ms,
				   s->conf.rms_patience_ms);
			s->rms_again_logged_ms = now;
			s->rms_again_n = 0;
		}
		return;
	}
	if (status == 0 && cdr_msg_decode(reply->body, reply->len, 0, &m, &err) < 0) {
		cdr_warn("rms answered with a message css cannot read (%s): %s", cdr_msg_fault_name(err.fault),
			 err.detail);
		status = -EBADMSG;
	}
	/* A just elected rms whose MCUs are registering again says not_active:
	 * asked again shortly, within the patience (docs/rms.md, "Warm-up"). */
	if (m && rc->txt && !css_is_ack(m) && !strcmp(cdr_msg_str(m, "reason", ""), "not_active") && rc->s->active &&
	    cdr_mono_i64() < rc->deadline &&
	    (rc->again || cdr_timer_new(cdr_daemon_loop(rc->s->d), on_ask_again, rc, &rc->again) == 0)) {
		cdr_msg_free(m);
		TAILQ_INSERT_TAIL(&rc->s->rms_waits, rc, waits);
		cdr_timer_start(rc->again, RMS_ASK_AGAIN_MS, false);
		return;
	}
	rms_call_end(rc, status, m);
	cdr_msg_free(m);
}

int css_rms_call(struct css *s, const char *type, json_t *body, rms_fn fn, void *arg)
{
	return css_rms_call_on(s, NULL, type, body, fn, arg);
}

static int rms_call(struct css *s, const char *platform, const char *type, json_t *body, rms_fn fn, void *arg,
		    bool patient)
{
	struct cdr_mq *mq = mq_of_host(s, platform);
	struct css_rms_call *rc;
	char id[200], *txt;
	int r;

	if (!mq) {
		json_decref(body);
		return -ENOTCONN;
	}
	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	if (!(rc = calloc(1, sizeof(*rc))) || !(txt = cdr_msg_encode(type, id, s->bus.src, 0, body))) {
		free(rc);
		return -ENOMEM;
	}
	rc->s = s;
	rc->fn = fn;
	rc->arg = arg;
	r = cdr_mq_request_transient(mq, "", CDR_MQ_RMS_REQ_Q, txt, strlen(txt), (unsigned)s->conf.rms_timeout_ms,
				     on_rms_reply, rc);
	if (r == 0 && patient && s->conf.rms_patience_ms) {
		rc->txt = txt;
		rc->deadline = cdr_mono_i64() + (int64_t)s->conf.rms_patience_ms;
		return 0;
	}
	free(txt);
	if (r < 0)
		free(rc);
	return r;
}

int css_rms_call_on(struct css *s, const char *platform, const char *type, json_t *body, rms_fn fn, void *arg)
{
	return rms_call(s, platform, type, body, fn, arg, false);
}

int css_rms_call_patient(struct css *s, const char *type, json_t *body, rms_fn fn, void *arg)
{
	return rms_call(s, NULL, type, body, fn, arg, true);
}

bool css_is_ack(const struct cdr_msg *m)
{
	const char *t = cdr_msg_type(m);
	size_t n = strlen(t);

	return n > 4 && !strcmp(t + n - 4, "_ack");
}

/* Confirmations and releases go in batches (one request per FLUSH_MS). */
void css_rsv_add(struct css *s, bool confirm, const char *id)
{
	struct rsv_batch *b = confirm ? &s->confirm : &s->release;

	if (!id || !*id)
		return;
	if (!b->ids)
		b->ids = json_array();
	json_array_append_new(b->ids, json_string(id));
	if (!cdr_timer_pending(s->flush_timer))
		cdr_timer_start(s->flush_timer, FLUSH_MS, false);
}

struct rsv_req {
	json_t *ids;
	bool confirm;
	int tries;
};

static void on_rsv_reply(struct css *s, int status, const struct cdr_msg *reply, void *arg)
{
	struct rsv_req *rr = arg;

	if (status == 0 && css_is_ack(reply)) {
		cdr_debug("%s of %zu reservations: %" PRId64 " done", rr->confirm ? "confirmation" : "release",
			  json_array_size(rr->ids), cdr_msg_int(reply, "done", 0));
	} else if (status == -ECANCELED) {
		/* shutting down */
	} else if (++rr->tries < 3 && status != 0) {
		cdr_warn("%s of %zu reservations: %s; retrying", rr->confirm ? "confirmation" : "release",
			 json_array_size(rr->ids), strerror(-status));
		rsv_send(s, rr);
		return;
	} else {
		cdr_warn("%s of %zu reservations failed (%s): rms lets unconfirmed reservations expire",
			 rr->confirm ? "confirmation" : "release", json_array_size(rr->ids),
			 status ? strerror(-status) : cdr_msg_str(reply, "reason", "?"));
	}
	json_decref(rr->ids);
	free(rr);
}

static void rsv_send(struct css *s, struct rsv_req *rr)
{
	json_t *body = json_pack("{s:O, s:I}", "reservations", rr->ids, "epoch", (json_int_t)s->epoch);
	int r;

	if (!rr->confirm)
		json_object_set_new(body, "reason", json_string("conference_ended"));
	if ((r = css_rms_call(s, rr->confirm ? "mau_rms_confirm_req" : "mau_rms_release_req", body, on_rsv_reply, rr)) <
	    0) {
		cdr_warn("%s of %zu reservations not sent: %s", rr->confirm ? "confirmation" : "release",
			 json_array_size(rr->ids), strerror(-r));
		json_decref(rr->ids);
		free(rr);
	}
}

void css_rsv_flush_one(struct css *s, struct rsv_batch *b, bool confirm)
{
	while (b->ids && json_array_size(b->ids) > 0) {
		struct rsv_req *rr = calloc(1, sizeof(*rr));
		size_t n = json_array_size(b->ids), take = n > RMS_BATCH ? RMS_BATCH : n;

		if (!rr)
			return;
		rr->confirm = confirm;
		if (take == n) {
			rr->ids = b->ids;
			b->ids = NULL;
		} else {
			rr->ids = json_array();
			for (size_t i = 0; i < take; i++)
				json_array_append(rr->ids, json_array_get(b->ids, i));
			for (size_t i = 0; i < take; i++)
				json_array_remove(b->ids, 0);
		}
		rsv_send(s, rr);
	}
}
