/* AMQP (RabbitMQ) messaging for the daemons: publish with publisher confirms,
 * consume with manual acks, fanout subscriptions and request/reply, all
 * surviving broker restarts.
 *
 * librabbitmq-c is blocking, so each struct cdr_mq runs one I/O thread that
 * owns the connection and makes every librabbitmq call; the functions below
 * only queue work for it and return at once. Every callback (on_state,
 * confirm, deliver, reply) runs on the loop thread, posted with
 * cdr_loop_post(). All functions here are for the loop thread only.
 *
 * Delivery guarantees (docs/amqp.md): a publish is at-least-once. A message
 * not yet confirmed when the connection drops is published again after the
 * re-connection, so a consumer may see it twice (redelivered is not set on
 * such a copy: de-duplicate by message_id where it matters). */
#ifndef CONFDR_MQ_H
#define CONFDR_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdr_loop;
struct cdr_mq;

/* A broker address, parsed from "amqp://user:pass@host:port/vhost" or
 * "amqps://..." (TLS). */
struct cdr_mq_url {
	char *user;	/* default "guest" */
	char *password; /* default "guest" */
	char *host;	/* default "localhost"; IPv6 literals without brackets */
	char *vhost;	/* percent-decoded; default "/" when the URL has no path */
	uint16_t port;	/* default 5672, 5671 for amqps */
	bool tls;	/* amqps */
};

/* Parses url into *ret (its strings owned by *ret; release them with
 * cdr_mq_url_clear). Follows RabbitMQ's URI spec: user, password and vhost
 * are percent-decoded, "amqp://h" means vhost "/", "amqp://h/" means vhost "".
 * Refused with -EINVAL: another scheme than amqp or amqps, a port outside
 * 1..65535, a bad %-escape, a path of more than one segment, a query or
 * fragment, spaces or control characters. On error a reason is written to
 * err (if not NULL) and *ret is untouched. Returns 0, -EINVAL or -ENOMEM. */
int cdr_mq_url_parse(const char *url, struct cdr_mq_url *ret, char *err, size_t errlen);

/* Frees the strings of u (not u itself) and zeroes it. Accepts NULL. */
void cdr_mq_url_clear(struct cdr_mq_url *u);

/* Connection state changes: up after the connection, channel, declarations
 * and consumers are in place; down with the reason (and the retry delay)
 * after a loss or a failed attempt. why is borrowed for the call. */
typedef void (*cdr_mq_state_fn)(bool up, const char *why, void *arg);

struct cdr_mq_opts {
	const char *url;			     /* required; copied */
	const char *name;			     /* for debug logs and the connection name; default "confdr" */
	unsigned heartbeat_s;			     /* AMQP heartbeat; 0 = default 10, capped at 600 */
	unsigned reconnect_min_ms, reconnect_max_ms; /* back-off; 0 = defaults 200 / 10000 */
	unsigned prefetch;			     /* unacked deliveries per connection; 0 = default 64 */
	size_t max_body;			     /* largest body published or accepted; 0 = default 4 MiB */
	size_t max_pending;			     /* published but not yet confirmed; 0 = default 65536 */
	cdr_mq_state_fn on_state;		     /* may be NULL */
	void *arg;				     /* for on_state */
	/* CA bundle (PEM file) for an amqps URL, required with one: the broker's
	 * certificate must be signed by one of its CAs and name the URL's host
	 * among its DNS names (librabbitmq compares text: an address must be
	 * listed as a DNS name too, docs/amqp.md); TLS 1.2 or later.
	 * Not used for amqp. Read at each connection; copied. A failed
	 * handshake or check is a failed connection: on_state(false, why) and
	 * the back-off. */
	const char *tls_ca;
	/* When not NULL, the password instead of the URL's (read from a file,
	 * so that it is never on a command line); copied. */
	const char *password;
};

/* Creates the handle and its I/O thread, which connects in the background
 * (never blocking the loop) and re-connects with back-off for ever. Until
 * connected, publishes are queued. Returns 0, -EINVAL (bad options or URL:
 * cdr_mq_url_parse tells why; an amqps URL without tls_ca), -ENOMEM, or a
 * -errno from pthread/eventfd. *ret is written only on success. */
int cdr_mq_new(struct cdr_loop *loop, const struct cdr_mq_opts *opts, struct cdr_mq **ret);

/* Stops gracefully: cancels the consumers, publishes what is queued and waits
 * up to 2 s for outstanding confirms, closes the connection, joins the thread
 * and runs what it had posted (confirms still get their real status;
 * deliveries not yet handed to their callback are dropped unacked, so the
 * broker redelivers them). Then every confirm and reply callback still
 * pending gets -ECANCELED. Accepts NULL; returns NULL. Not from inside one of
 * this handle's callbacks. */
struct cdr_mq *cdr_mq_free(struct cdr_mq *mq);

/* Whether the loop has been told the connection is up (the last on_state). */
bool cdr_mq_connected(const struct cdr_mq *mq);

/* Declarations. Each is recorded and applied now (if connected) and again
 * after every re-connection, in the order made, before any consumer is
 * (re-)issued. A declaration the broker refuses (for example a queue that
 * exists with other arguments) is reported through on_state(false, why) and
 * dropped from the record: it cannot succeed without an operator.
 * Return 0, -EINVAL (empty or over-long name) or -ENOMEM. */

/* type: "direct", "fanout", "topic" or "headers". Not auto-deleted. */
int cdr_mq_declare_exchange(struct cdr_mq *mq, const char *name, const char *type, bool durable);

/* A named, shared (not exclusive, not auto-deleted) queue. When
 * dead_letter_exchange is not NULL, rejected and expired messages go there. */
int cdr_mq_declare_queue(struct cdr_mq *mq, const char *name, bool durable, const char *dead_letter_exchange);

/* A named private queue: exclusive to this connection, auto-deleted, not
 * durable, re-declared after every re-connection (messages sent to it while
 * disconnected are lost). For a client that must see every message sent to
 * its own queue (cdr_mq_request keeps only the first reply): consume it with
 * cdr_mq_consume and give its name as reply_to. Unlike other declarations, a
 * refusal (the queue still locked by the broker's view of the previous
 * connection) is retried after the back-off. The name must not start with
 * "amq." (reserved). Returns 0, -EINVAL or -ENOMEM. */
int cdr_mq_declare_private_queue(struct cdr_mq *mq, const char *name);

int cdr_mq_bind(struct cdr_mq *mq, const char *queue, const char *exchange, const char *key);

/* Declares the whole topology of the design's section 4 (docs/amqp.md lists
 * every exchange, queue, type and binding). Returns 0 or -ENOMEM. */
int cdr_mq_declare_design(struct cdr_mq *mq);

/* The part of it daemon ("css", "rms" or "pms") declares: every exchange and
 * the dead-letter queue, and the work queues it consumes (css also
 * bmc.cdr.q, which it writes). The broker user of a role may declare no
 * more (docs/security.md). NULL: the whole design. */
int cdr_mq_declare_design_for(struct cdr_mq *mq, const char *daemon);

/* Names of the design topology, for publishers and consumers. */
#define CDR_MQ_MAU_CONF_Q     "mau.conf.q"
#define CDR_MQ_MAU_CMCMU_EX   "mau.cmcmu.ex"
#define CDR_MQ_CMU_MAU_EX     "cmu.mau.ex"
#define CDR_MQ_MAU_CMU_Q      "mau.cmu.q"
#define CDR_MQ_RMS_REQ_Q      "rms.req.q"
#define CDR_MQ_RMS_RES_Q      "rms.res.q" /* MCU/VRS register and heartbeat: apart from allocations */
#define CDR_MQ_RMS_NTF_EX     "rms.ntf.ex"
#define CDR_MQ_PMS_NTF_EX     "pms.ntf.ex"
#define CDR_MQ_PMS_BEAT_EX    "pms.beat.ex"
#define CDR_MQ_PMS_REQ_Q      "pms.req.q"
#define CDR_MQ_MODB_NOTIFY_EX "modb.notify.ex"
#define CDR_MQ_BMC_CDR_Q      "bmc.cdr.q"
#define CDR_MQ_UPU_NTF_EX     "upu.ntf.ex"
#define CDR_MQ_ALARM_EX	      "cdr.alarm.ex"
#define CDR_MQ_CM_NTF_EX      "cm.ntf.ex"
#define CDR_MQ_DLX	      "confdr.dlx"
#define CDR_MQ_DEAD_Q	      "confdr.dead.q"

/* Message properties for a publish. Every field may be NULL / false.
 * content_type defaults to "application/json". */
struct cdr_mq_props {
	const char *correlation_id;
	const char *reply_to;
	const char *message_id;
	const char *type;
	const char *content_type;
	bool persistent; /* delivery_mode 2 */
	bool mandatory;	 /* an unroutable message is returned: confirm gets -EIO */
};

/* Publisher confirm: 0 when the broker has taken the message (for a
 * persistent message to a durable queue: written to disk), -EIO when it
 * nacked it or returned it unroutable (mandatory), -ECANCELED when the handle
 * was freed first. Runs on the loop thread, exactly once per accepted
 * publish. */
typedef void (*cdr_mq_confirm_fn)(int status, void *arg);

/* Publishes body (copied, len bytes) to exchange ("" = the default exchange,
 * where routing_key is a queue name) with props (may be NULL; copied).
 * confirm_fn may be NULL. Queued if not connected. Returns 0 (confirm_fn will
 * run), -EMSGSIZE (len > max_body), -ENOBUFS (max_pending messages not yet
 * confirmed), -EINVAL (NULL exchange or routing_key), -ECANCELED (the handle
 * is being freed) or -ENOMEM; on error confirm_fn will not run. */
int cdr_mq_publish(struct cdr_mq *mq, const char *exchange, const char *routing_key, const struct cdr_mq_props *props,
		   const void *body, size_t len, cdr_mq_confirm_fn confirm_fn, void *arg);

/* A message received. Fields are read-only, valid until the delivery is
 * consumed by cdr_mq_ack/cdr_mq_nack (or, for a reply, until reply_fn
 * returns). Absent properties are NULL. body has len bytes plus a NUL after
 * them (so text can be used as a string). */
struct cdr_mq_delivery {
	const char *exchange;
	const char *routing_key;
	const void *body;
	size_t len;
	const char *correlation_id;
	const char *reply_to;
	const char *message_id;
	const char *content_type;
	const char *type;
	/* The broker user that published it (AMQP user_id). RabbitMQ refuses a
	 * publish whose user_id is not its connection's user, and every
	 * cdr_mq publish sets it, so it names the sender; NULL when the
	 * publisher set none. */
	const char *user_id;
	unsigned delivery_mode; /* 1 transient, 2 persistent, 0 when the publisher set none */
	bool redelivered;
	size_t oversize; /* > 0: a body of this many bytes, more than max_body: not read (body "", len 0) */
};

/* The delivery is the callee's: it must end with cdr_mq_ack or cdr_mq_nack,
 * now or later (on the loop thread). */
typedef void (*cdr_mq_deliver_fn)(struct cdr_mq_delivery *d, void *arg);

/* Consumes queue with manual acks (prefetch from opts), re-issued after every
 * re-connection. The queue must exist (declare it first): a refused consume
 * is reported through on_state(false, why) and retried after the back-off.
 * Consuming a queue again after cdr_mq_cancel resumes it (with the new fn
 * and arg). Returns 0, -EALREADY (already consumed), -EINVAL, -ECANCELED or
 * -ENOMEM. */
int cdr_mq_consume(struct cdr_mq *mq, const char *queue, cdr_mq_deliver_fn fn, void *arg);

/* Stops consuming queue (a daemon that became standby): basic.cancel is
 * sent, and deliveries the broker had already sent are rejected with
 * requeue instead of reaching fn, so another consumer gets them. Deliveries
 * the callee already holds stay its own to ack or nack. Returns 0, -ENOENT
 * (queue never consumed) or -EINVAL. */
int cdr_mq_cancel(struct cdr_mq *mq, const char *queue);

/* Notifications: an exclusive, auto-deleted, server-named queue bound to
 * exchange with binding_key ("" for fanout), consumed like cdr_mq_consume and
 * re-created after every re-connection (notifications sent while
 * disconnected are missed). Returns 0, -EINVAL or -ENOMEM. */
int cdr_mq_subscribe(struct cdr_mq *mq, const char *exchange, const char *binding_key, cdr_mq_deliver_fn fn, void *arg);

/* Acknowledges and frees d. If d came on an earlier connection than the
 * current one the ack is dropped silently (the broker has requeued the
 * message and delivers it again). Returns 0 (or -ENOMEM: d is freed anyway
 * and the message will be redelivered). Accepts NULL. */
int cdr_mq_ack(struct cdr_mq_delivery *d);

/* Rejects and frees d: requeued if requeue, else dead-lettered (or dropped
 * when its queue has no dead-letter exchange). Same rules as cdr_mq_ack. */
int cdr_mq_nack(struct cdr_mq_delivery *d, bool requeue);

/* Reply to a request: status 0 with the reply (borrowed for the call),
 * -ETIMEDOUT, -EIO (the request could not be published: nacked or
 * unroutable) or -ECANCELED (handle freed), with reply NULL. Exactly once. */
typedef void (*cdr_mq_reply_fn)(int status, const struct cdr_mq_delivery *reply, void *arg);

/* Request/reply: publishes body (persistent, mandatory, application/json)
 * with a new correlation_id and reply_to = this handle's private reply queue,
 * and calls reply_fn with the first reply carrying that correlation_id, or
 * -ETIMEDOUT after timeout_ms (a loop timer; a later reply is dropped with a
 * debug log). A reply sent to the queue of an earlier connection is lost:
 * such a request ends in -ETIMEDOUT and the caller retries.
 * Returns 0 (reply_fn will run), or as cdr_mq_publish (reply_fn will not). */
int cdr_mq_request(struct cdr_mq *mq, const char *exchange, const char *routing_key, const void *body, size_t len,
		   unsigned timeout_ms, cdr_mq_reply_fn reply_fn, void *arg);
/* The same, the request not persistent (delivery_mode 1): the broker keeps it
 * in memory only, so a broker restart before it is consumed loses it, like
 * any reply. For a caller that asks again when no answer comes (css to rms):
 * it costs the broker about a third less CPU per request/reply (measured with
 * bench_floor, docs/performance.md) and waits for no disk write. */
int cdr_mq_request_transient(struct cdr_mq *mq, const char *exchange, const char *routing_key, const void *body,
			     size_t len, unsigned timeout_ms, cdr_mq_reply_fn reply_fn, void *arg);

/* Answers request: publishes body (application/json, not persistent) through
 * the default exchange to request->reply_to with request->correlation_id.
 * Does not consume request. Returns as cdr_mq_publish, or -EINVAL when the
 * request has no reply_to. */
int cdr_mq_reply(struct cdr_mq *mq, const struct cdr_mq_delivery *request, const void *body, size_t len,
		 cdr_mq_confirm_fn confirm_fn, void *arg);

#endif
