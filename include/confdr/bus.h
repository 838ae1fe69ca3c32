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

#endif
