/* What every daemon does on the bus, once: publish a message of its own,
 * answer a request exactly once, refuse a message it cannot read.
 *
 * A struct cdr_bus names the sender (its envelope "src", e.g. "css-p1") and
 * numbers what it publishes; the AMQP handle is the daemon's current one. */
#ifndef CONFDR_BUS_H
#define CONFDR_BUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <confdr/mq.h>

struct cdr_daemon;
struct cdr_msg;
struct cdr_msg_error;

struct cdr_bus {
	struct cdr_daemon *d;
	char src[160];
	const char *alarm_type; /* the daemon's alarm: "mau_all_alarm_ntf" (css), "<daemon>_all_alarm_ntf" */
	uint64_t seq;
	uint64_t not_sent; /* publishes that failed (no broker, encoding) */
};

/* src: "<daemon>-<platform>". */
void cdr_bus_init(struct cdr_bus *b, struct cdr_daemon *d, const char *daemon, const char *platform);

/* A new envelope id "<src>-<epoch>-<n>" into buf. */
void cdr_bus_next_id(struct cdr_bus *b, int64_t epoch, char *buf, size_t len);

/* Publishes a new message of type with body (stolen), persistent, with
 * envelope id id (NULL: cdr_bus_next_id), also its message_id and
 * correlation_id; on mq (NULL: the daemon's). With mandatory, an unroutable
 * message makes confirm get -EIO. Returns 0 or a negative errno (logged;
 * confirm does not run). */
int cdr_bus_publish(struct cdr_bus *b, struct cdr_mq *mq, const char *exchange, const char *key, const char *type,
		    const char *id, int64_t epoch, json_t *body, bool mandatory, cdr_mq_confirm_fn confirm, void *arg);

/* Sends txt to the request's reply_to (logged when it has none). */
void cdr_bus_send_reply(struct cdr_bus *b, struct cdr_mq_delivery *dl, const char *txt);

/* The last step of every answer: txt (none when NULL) to the request's
 * reply_to, then the request acked. The failpoints answer.unsent and
 * answer.unacked (confdr/failpoint.h) sit before each. */
void cdr_bus_reply_and_ack(struct cdr_bus *b, struct cdr_mq_delivery *dl, const char *txt);

/* Answers request m with its _ack or _nack and body (stolen), then acks dl.
 * Returns the encoded answer when keep (the caller frees it), else NULL. On
 * out of memory dl is requeued. */
char *cdr_bus_answer(struct cdr_bus *b, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack, json_t *body,
		     bool keep);

/* {"reason", "detail"} (detail "" when NULL). */
json_t *cdr_bus_nack_body(const char *reason, const char *detail);

/* A message on queue that cdr_msg_decode refused with err: answered with a
 * refusal (fallback_type when its type cannot be read) when it has reply_to,
 * otherwise dead-lettered. Logged either way. */
void cdr_bus_refuse(struct cdr_bus *b, struct cdr_mq_delivery *dl, const char *queue, const struct cdr_msg_error *err,
		    const char *fallback_type);

/* ---- who may send what ----
 *
 * Every message names its sender twice: "src" in the envelope, which anyone
 * can write, and the AMQP user_id, which RabbitMQ checks against the
 * connection's user. Only the second counts. A broker user belongs to the
 * role its name begins with, up to the first '-' ("css", "rms-p1" and
 * "mcu-p1-r2-7" are css, rms and mcu): css, rms, pms, mcu, vrs, cm, bmc, ops.
 * A message type may be sent by one role (struct cdr_handler's from):
 * "ctl" by ops, "vrs" by vrs or mcu (one simulator or box runs both), "any"
 * by every user; several roles are written "ctl|pms". A CM request without user_id is taken when anonymous_cm
 * (the fixed CM contract sets none); every other message needs one. */

/* The role of broker user user into role (len bytes; "" when user is NULL or
 * empty). */
void cdr_sender_role(const char *user, char *role, size_t len);

/* Whether user (NULL: none) may send a message of a handler whose from is
 * from; when not, why says so in a sentence for the log and the NACK. */
bool cdr_sender_allowed(const char *from, const char *user, bool anonymous_cm, char *why, size_t len);

/* ---- a daemon's messages on one queue, as a table ----
 *
 * Each queue a daemon consumes has a table: message type -> handler, with
 * what the type is (a request answered once, or a notice), who may send it,
 * and whether the handler keeps the message. cdr_dispatch gives every
 * delivery the same path: requeued for the active instance when this one
 * does not serve; refused when it cannot be read (cdr_bus_refuse); NACKed
 * bad_request when it is a request of a type nobody handles, dead-lettered
 * when it is anything else unknown; refused when its broker user may not
 * send it (cdr_sender_allowed: a request NACKed "forbidden", anything else
 * dead-lettered; counted, logged and alarmed at powers of two; only logged
 * when [amqp] check_senders is off); otherwise handed to its handler. */

enum {
	CDR_H_REQUEST = 1 << 0, /* a request: the handler answers it exactly once (which acks the delivery) */
	CDR_H_NOTICE = 1 << 1,	/* no answer: the delivery is acked when the handler returns */
	CDR_H_KEEPS = 1 << 2,	/* the handler keeps the message (and frees it); else freed when it returns */
	CDR_H_PREFIX = 1 << 3,	/* type is a prefix: every type that begins with it, after the exact ones */
};

struct cdr_handler {
	const char *type;
	unsigned flags;
	const char *from; /* who may send it: "cm", "mcu", "vrs", "css", "pms", "rms", "ctl" (operators), "bmc",
			     "any" (above: checked by cdr_dispatch against the AMQP user_id) */
	void (*fn)(void *server, struct cdr_mq_delivery *dl, struct cdr_msg *m);
};

struct cdr_dispatch {
	const char *daemon;		    /* "css": "... is not a message css handles" */
	const char *queue;		    /* for the log */
	const char *nack_type;		    /* the refusal's type when a request's own cannot be read */
	size_t max_len;			    /* cdr_msg_decode's limit (0: CDR_MSG_MAX_DEFAULT) */
	const struct cdr_handler *handlers; /* ends with a NULL type */
	struct cdr_bus *(*bus)(void *server);
	bool (*serving)(void *server); /* false: requeued for the active instance (NULL: always serving) */
	/* A subscription to notices (a private queue): a type nobody here
	 * handles is acked and dropped with a debug line, not dead-lettered. */
	bool ignore_unknown;
	/* The body of the bad_request NACK to an unknown request (NULL:
	 * cdr_bus_nack_body); css's carry the request's E164, as all its NACKs. */
	json_t *(*nack_body)(const struct cdr_msg *m, const char *reason, const char *detail);
	/* Optional, before a known type's handler: true when it dealt with the
	 * delivery itself (answered it), and the handler does not run; the
	 * message is freed by cdr_dispatch. */
	bool (*before)(void *server, const struct cdr_handler *h, struct cdr_mq_delivery *dl, const struct cdr_msg *m);
};

enum cdr_dispatch_result {
	CDR_DISPATCH_HANDLED,	 /* by its handler, or by before */
	CDR_DISPATCH_REQUEUED,	 /* not serving */
	CDR_DISPATCH_UNREADABLE, /* refused: not a message */
	CDR_DISPATCH_UNKNOWN,	 /* no handler for its type: NACKed bad_request or dead-lettered */
	CDR_DISPATCH_FORBIDDEN,	 /* its sender may not send it: NACKed forbidden or dead-lettered */
};

/* The handler for type in t, or NULL. */
const struct cdr_handler *cdr_dispatch_find(const struct cdr_dispatch *t, const char *type);

/* Decodes dl and hands it to its handler in t (see above). */
enum cdr_dispatch_result cdr_dispatch(const struct cdr_dispatch *t, struct cdr_mq_delivery *dl, void *server);

#endif
