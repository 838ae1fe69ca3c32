/* Publishing, answering and refusing, as every daemon does it (bus.h). */
#include <confdr/bus.h>
#include <confdr/daemon.h>
#include <confdr/failpoint.h>
#include <confdr/log.h>
#include <confdr/msg.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cdr_bus_init(struct cdr_bus *b, struct cdr_daemon *d, const char *daemon, const char *platform)
{
	memset(b, 0, sizeof(*b));
	b->d = d;
	snprintf(b->src, sizeof(b->src), "%s-%s", daemon, platform);
	b->alarm_type = !strcmp(daemon, "css")	 ? "mau_all_alarm_ntf"
			: !strcmp(daemon, "rms") ? "rms_all_alarm_ntf"
						 : "pms_all_alarm_ntf";
}

void cdr_bus_next_id(struct cdr_bus *b, int64_t epoch, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%" PRId64 "-%" PRIu64, b->src, epoch, ++b->seq);
}

int cdr_bus_publish(struct cdr_bus *b, struct cdr_mq *mq, const char *exchange, const char *key, const char *type,
		    const char *id, int64_t epoch, json_t *body, bool mandatory, cdr_mq_confirm_fn confirm, void *arg)
{
	struct cdr_mq_props props = { .persistent = true, .mandatory = mandatory };
	char idbuf[200], *txt;
	int r;

	if (!mq)
		mq = cdr_daemon_mq(b->d);
	if (!id) {
		cdr_bus_next_id(b, epoch, idbuf, sizeof(idbuf));
		id = idbuf;
	}
	if (!(txt = cdr_msg_encode(type, id, b->src, 0, body))) {
		cdr_err("cannot encode %s: out of memory", type);
		b->not_sent++;
		return -ENOMEM;
	}
	if (!mq) {
		cdr_warn("%s not sent: no broker yet", type);
		r = -ENOTCONN;
	} else {
		props.message_id = id;
		props.correlation_id = id;
		props.type = type;
		if ((r = cdr_mq_publish(mq, exchange, key ? key : "", &props, txt, strlen(txt), confirm, arg)) < 0)
			cdr_warn("%s not sent: %s", type, strerror(-r));
	}
	if (r < 0)
		b->not_sent++;
	free(txt);
	return r;
}

void cdr_bus_send_reply(struct cdr_bus *b, struct cdr_mq_delivery *dl, const char *txt)
{
	int r;

	if (!dl->reply_to) {
		cdr_warn("a request without reply_to: its answer is dropped");
		return;
	}
	if ((r = cdr_mq_reply(cdr_daemon_mq(b->d), dl, txt, strlen(txt), NULL, NULL)) < 0) {
		b->not_sent++;
		cdr_warn("answer to %s not sent: %s", dl->reply_to, strerror(-r));
	}
}

void cdr_bus_reply_and_ack(struct cdr_bus *b, struct cdr_mq_delivery *dl, const char *txt)
{
	cdr_failpoint("answer.unsent");
	if (txt)
		cdr_bus_send_reply(b, dl, txt);
	cdr_failpoint("answer.unacked");
	cdr_mq_ack(dl);
}

char *cdr_bus_answer(struct cdr_bus *b, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack, json_t *body,
		     bool keep)
{
	char *txt = cdr_msg_encode_reply(m, ack, b->src, body);

	if (!txt) {
		cdr_err("cannot encode the answer to %s %s: out of memory", cdr_msg_type(m), cdr_msg_id(m));
		cdr_mq_nack(dl, true);
		return NULL;
	}
	cdr_bus_reply_and_ack(b, dl, txt);
	if (keep)
		return txt;
	free(txt);
	return NULL;
}

json_t *cdr_bus_nack_body(const char *reason, const char *detail)
{
	return json_pack("{s:s, s:s}", "reason", reason, "detail", detail ? detail : "");
}

void cdr_bus_refuse(struct cdr_bus *b, struct cdr_mq_delivery *dl, const char *queue, const struct cdr_msg_error *err,
		    const char *fallback_type)
{
	char *txt;

	cdr_warn("%s: refused a message (%s): %s", queue, cdr_msg_fault_name(err->fault), err->detail);
	if (dl->reply_to && (txt = cdr_msg_encode_refusal(err, dl->correlation_id, fallback_type, b->src))) {
		cdr_bus_send_reply(b, dl, txt);
		free(txt);
		cdr_mq_ack(dl);
	} else {
		cdr_mq_nack(dl, false);
	}
}

void cdr_sender_role(const char *user, char *role, size_t len)
{
	size_t n = user ? strcspn(user, "-") : 0;

	if (!len)
		return;
	if (n >= len)
		n = len - 1;
	memcpy(role, user ? user : "", n);
	role[n] = '\0';
}

/* Whether role may send what sender one (n bytes of a handler's from) may. */
static bool role_is(const char *one, size_t n, const char *role)
{
	if (n == 3 && !strncmp(one, "ctl", 3))
		return !strcmp(role, "ops");
	if (n == 3 && !strncmp(one, "vrs", 3) && !strcmp(role, "mcu"))
		return true;
	return strlen(role) == n && !strncmp(one, role, n);
}

/* from as roles, for a sentence: "ctl" is ops, "vrs" also mcu. */
static void roles_text(const char *from, char *out, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	for (const char *p = from; *p && o < len;) {
		size_t n = strcspn(p, "|");
		const char *name = n == 3 && !strncmp(p, "ctl", 3)   ? "ops"
				   : n == 3 && !strncmp(p, "vrs", 3) ? "vrs or mcu"
								     : NULL;

		o += (size_t)snprintf(out + o, len - o, "%s%.*s", o ? " or " : "", name ? (int)strlen(name) : (int)n,
				      name ? name : p);
		p += n + (p[n] == '|');
	}
}

bool cdr_sender_allowed(const char *from, const char *user, bool anonymous_cm, char *why, size_t len)
{
	char role[64], roles[128];

	if (!strcmp(from, "any"))
		return true;
	roles_text(from, roles, sizeof(roles));
	if (!user || !*user) {
		for (const char *p = from; anonymous_cm && *p;) {
			size_t n = strcspn(p, "|");

			if (n == 2 && !strncmp(p, "cm", 2))
				return true;
			p += n + (p[n] == '|');
		}
		snprintf(why, len, "it carries no user_id; only broker users of role %s may send it", roles);
		return false;
	}
	cdr_sender_role(user, role, sizeof(role));
	for (const char *p = from; *p;) {
		size_t n = strcspn(p, "|");

		if (role_is(p, n, role))
			return true;
		p += n + (p[n] == '|');
	}
	snprintf(why, len, "broker user %s (role %s) may not send it; only role %s may", user, *role ? role : "none",
		 roles);
	return false;
}

/* A message its sender may not send: refused (a request NACKed forbidden,
 * anything else dead-lettered), counted, logged and alarmed the first times
 * and then at powers of two. True when it was refused; false when
 * check_senders is off and it goes on to its handler. */
static bool refuse_sender(const struct cdr_dispatch *t, struct cdr_bus *b, const struct cdr_handler *h,
			  struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const struct cdr_daemon_conf *cf = b->d ? cdr_daemon_conf(b->d) : NULL;
	bool check = !cf || cf->amqp_check_senders, anon = cf ? cf->amqp_anonymous_cm : true;
	const char *plat = strchr(b->src, '-');
	char why[300], detail[400];
	uint64_t k;

	if (cdr_sender_allowed(h->from, dl->user_id, anon, why, sizeof(why)))
		return false;
	snprintf(detail, sizeof(detail), "%s %s from %s: %s", cdr_msg_type(m), cdr_msg_id(m), cdr_msg_src(m), why);
	k = b->d ? cdr_daemon_sender_refused(b->d) : 1;
	if ((k & (k - 1)) == 0) {
		cdr_warn("%s: %s %s (%" PRIu64 " refused for their sender so far)", t->queue,
			 check ? "refused" : "would refuse (check_senders off)", detail, k);
		if (b->d && b->alarm_type)
			cdr_daemon_alarm(b->d, "forged_sender", "major");
		if (b->d && b->alarm_type)
			cdr_bus_publish(b, NULL, CDR_MQ_ALARM_EX, "", b->alarm_type, NULL, cdr_daemon_epoch(b->d),
					json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "severity", "major", "kind",
						  "forged_sender", "target", dl->user_id ? dl->user_id : "(none)",
						  "platform", plat ? plat + 1 : b->src, "detail", detail, "epoch",
						  (json_int_t)cdr_daemon_epoch(b->d)),
					false, NULL, NULL);
	}
	if (!check)
		return false;
	if ((h->flags & CDR_H_REQUEST) && dl->reply_to)
		cdr_bus_answer(b, dl, m, false,
			       t->nack_body ? t->nack_body(m, "forbidden", why) : cdr_bus_nack_body("forbidden", why),
			       false);
	else
		cdr_mq_nack(dl, false); /* dead-lettered: kept for an operator */
	return true;
}

const struct cdr_handler *cdr_dispatch_find(const struct cdr_dispatch *t, const char *type)
{
	const struct cdr_handler *h;

	for (h = t->handlers; h->type; h++)
		if (!(h->flags & CDR_H_PREFIX) && !strcmp(h->type, type))
			return h;
	for (h = t->handlers; h->type; h++)
		if ((h->flags & CDR_H_PREFIX) && !strncmp(h->type, type, strlen(h->type)))
			return h;
	return NULL;
}

enum cdr_dispatch_result cdr_dispatch(const struct cdr_dispatch *t, struct cdr_mq_delivery *dl, void *server)
{
	struct cdr_bus *b = t->bus(server);
	const struct cdr_handler *h;
	struct cdr_msg_error err;
	struct cdr_msg *m = NULL;
	const char *type;

	if (t->serving && !t->serving(server)) {
		cdr_mq_nack(dl, true); /* for the active instance */
		return CDR_DISPATCH_REQUEUED;
	}
	if (dl->oversize) {
		/* too large for the client to read: refused unread, answered when it
		 * says where (a CM request always does) */
		memset(&err, 0, sizeof(err));
		err.fault = CDR_MSG_FAULT_TOO_LARGE;
		snprintf(err.reason, sizeof(err.reason), "bad_request");
		snprintf(err.detail, sizeof(err.detail), "message of %zu bytes, more than the limit of %zu",
			 dl->oversize, t->max_len ? t->max_len : CDR_MSG_MAX_DEFAULT);
		cdr_bus_refuse(b, dl, t->queue, &err, t->nack_type);
		return CDR_DISPATCH_UNREADABLE;
	}
	if (cdr_msg_decode(dl->body, dl->len, t->max_len, &m, &err) < 0) {
		cdr_bus_refuse(b, dl, t->queue, &err, t->nack_type);
		return CDR_DISPATCH_UNREADABLE;
	}
	type = cdr_msg_type(m);
	if (!(h = cdr_dispatch_find(t, type)) && t->ignore_unknown) {
		cdr_debug("%s: %s (from %s) is not for %s: dropped", t->queue, type, cdr_msg_src(m), t->daemon);
		cdr_mq_ack(dl);
		cdr_msg_free(m);
		return CDR_DISPATCH_UNKNOWN;
	}
	if (!h) {
		char detail[200];

		snprintf(detail, sizeof(detail), "%s is not a message %s handles", type, t->daemon);
		cdr_warn("%s: %s (from %s)", t->queue, detail, cdr_msg_src(m));
		if (dl->reply_to && strstr(type, "_req"))
			cdr_bus_answer(b, dl, m, false,
				       t->nack_body ? t->nack_body(m, "bad_request", detail)
						    : cdr_bus_nack_body("bad_request", detail),
				       false);
		else
			cdr_mq_nack(dl, false); /* dead-lettered */
		cdr_msg_free(m);
		return CDR_DISPATCH_UNKNOWN;
	}
	if (refuse_sender(t, b, h, dl, m)) {
		cdr_msg_free(m);
		return CDR_DISPATCH_FORBIDDEN;
	}
	if (t->before && t->before(server, h, dl, m)) {
		cdr_msg_free(m);
		return CDR_DISPATCH_HANDLED;
	}
	h->fn(server, dl, m);
	if (h->flags & CDR_H_NOTICE)
		cdr_mq_ack(dl);
	if (!(h->flags & CDR_H_KEEPS))
		cdr_msg_free(m);
	return CDR_DISPATCH_HANDLED;
}
