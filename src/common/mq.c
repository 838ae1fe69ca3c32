/* AMQP client: one I/O thread per handle owns the librabbitmq connection and
 * makes every amqp_* call; the loop thread hands it work through lists under
 * mq->mu and an eventfd the thread polls together with the socket. Results go
 * back with cdr_loop_post(). docs/amqp.md has the design. */
#include "confdr/mq.h"

#include "confdr/log.h"
#include "confdr/loop.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CH	   1
#define REPLY_TAG  "cdr.reply"
#define SEQ_HEADER "x-confdr-seq"

enum {
	CONNECT_TIMEOUT_MS = 5000,
	RPC_TIMEOUT_MS = 5000,
	CONTENT_TIMEOUT_MS = 10000,
	STOP_CONFIRM_MS = 2000,
	STOP_RPC_TIMEOUT_MS = 1000,
	JOIN_GRACE_MS = 8000,
	STABLE_SESSION_MS = 10000, /* a session this long resets the back-off */
	PUBLISH_BATCH = 256,
	WHY_LEN = 256,
};

/* ---------------------------------------------------------------- URL */

static int url_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int url_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into a new string; -EINVAL on a bad escape or %00. */
static int pct_decode(const char *s, size_t n, const char *what, char **out, char *err, size_t errlen)
{
	char *d = malloc(n + 1), *p = d;
	size_t i;

	if (!d)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (s[i] != '%') {
			*p++ = s[i];
			continue;
		}
		int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
		int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(d);
			return url_fail(err, errlen, "bad %%-escape in %s", what);
		}
		*p++ = (char)(hi * 16 + lo);
		i += 2;
	}
	*p = '\0';
	*out = d;
	return 0;
}

void cdr_mq_url_clear(struct cdr_mq_url *u)
{
	if (!u)
		return;
	free(u->user);
	free(u->password);
	free(u->host);
	free(u->vhost);
	memset(u, 0, sizeof(*u));
}

int cdr_mq_url_parse(const char *url, struct cdr_mq_url *ret, char *err, size_t errlen)
{
	struct cdr_mq_url u = { .port = 5672 };
	size_t skip = 7;
	const char *rest, *slash, *at, *hp, *hend, *colon, *p;
	int r;

	if (!url || !*url)
		return url_fail(err, errlen, "empty URL");
	for (p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return url_fail(err, errlen, "space or control character in URL");
	if (strncasecmp(url, "amqps://", 8) == 0) {
		u.tls = true;
		u.port = 5671;
		skip = 8;
	} else if (strncasecmp(url, "amqp://", 7) != 0) {
		return url_fail(err, errlen, "URL must start with amqp:// or amqps://");
	}
	if (strpbrk(url, "?#"))
		return url_fail(err, errlen, "query or fragment in URL is not supported");
	rest = url + skip;
	slash = strchr(rest, '/');
	if (!slash)
		slash = rest + strlen(rest);
	at = memrchr(rest, '@', (size_t)(slash - rest));
	hp = rest;
	if (at) {
		const char *ucolon = memchr(rest, ':', (size_t)(at - rest));
		const char *uend = ucolon ? ucolon : at;
		if (uend == rest)
			return url_fail(err, errlen, "empty user name");
		r = pct_decode(rest, (size_t)(uend - rest), "user", &u.user, err, errlen);
		if (r < 0)
			goto fail;
		if (ucolon) {
			r = pct_decode(ucolon + 1, (size_t)(at - ucolon - 1), "password", &u.password, err, errlen);
			if (r < 0)
				goto fail;
		}
		hp = at + 1;
	}
	/* host[:port] or [v6]:port */
	if (*hp == '[') {
		const char *rb = memchr(hp, ']', (size_t)(slash - hp));
		if (!rb || rb == hp + 1) {
			r = url_fail(err, errlen, "bad IPv6 address");
			goto fail;
		}
		u.host = strndup(hp + 1, (size_t)(rb - hp - 1));
		if (!u.host) {
			r = -ENOMEM;
			goto fail;
		}
		hend = rb + 1;
		if (hend != slash && *hend != ':') {
			r = url_fail(err, errlen, "junk after IPv6 address");
			goto fail;
		}
		colon = hend != slash ? hend : NULL;
	} else {
		colon = memchr(hp, ':', (size_t)(slash - hp));
		hend = colon ? colon : slash;
		if (memchr(hp, '[', (size_t)(hend - hp)) || memchr(hp, ']', (size_t)(hend - hp))) {
			r = url_fail(err, errlen, "bad host");
			goto fail;
		}
		if (hend > hp) {
			r = pct_decode(hp, (size_t)(hend - hp), "host", &u.host, err, errlen);
			if (r < 0)
				goto fail;
		}
	}
	if (colon) {
		unsigned long port = 0;
		const char *q;
		if (colon + 1 == slash) {
			r = url_fail(err, errlen, "empty port");
			goto fail;
		}
		for (q = colon + 1; q < slash; q++) {
			if (!isdigit((unsigned char)*q) || port > 65535) {
				r = url_fail(err, errlen, "bad port");
				goto fail;
			}
			port = port * 10 + (unsigned long)(*q - '0');
		}
		if (port < 1 || port > 65535) {
			r = url_fail(err, errlen, "port out of range 1..65535");
			goto fail;
		}
		u.port = (uint16_t)port;
	}
	if (*slash == '/') {
		if (strchr(slash + 1, '/')) {
			r = url_fail(err, errlen, "vhost must be one path segment (write / as %%2f)");
			goto fail;
		}
		r = pct_decode(slash + 1, strlen(slash + 1), "vhost", &u.vhost, err, errlen);
		if (r < 0)
			goto fail;
	}
	if ((!u.user && !(u.user = strdup("guest"))) || (!u.password && !(u.password = strdup("guest"))) ||
	    (!u.host && !(u.host = strdup("localhost"))) || (!u.vhost && !(u.vhost = strdup("/")))) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = u;
	return 0;
fail:
	if (r == -ENOMEM)
		url_fail(err, errlen, "out of memory");
	cdr_mq_url_clear(&u);
	return r;
}

/* ---------------------------------------------------------------- types */

/* A message to publish, from cdr_mq_publish until its confirm is handed to
 * the loop. Lives in mq->outgoing (shared) or mq->unconfirmed (I/O thread). */
struct pub {
	TAILQ_ENTRY(pub) link;
	struct cdr_mq *mq;
	char *exchange, *routing_key;
	char *correlation_id, *reply_to, *message_id, *type, *content_type;
	bool persistent, mandatory, is_request;
	void *body;
	size_t len;
	cdr_mq_confirm_fn fn;
	void *arg;
	uint64_t rpc_id; /* a request: the rpc it belongs to */
	uint64_t seq;	 /* unique per handle: matches a basic.return to its publish */
	uint64_t tag;	 /* delivery tag on the current channel */
	bool returned;
	int status;
};
TAILQ_HEAD(pub_list, pub);

enum decl_kind { DECL_EXCHANGE, DECL_QUEUE, DECL_PRIVATE_QUEUE, DECL_BIND };

/* Declarations and consumers are append-only lists: the loop appends under
 * mu, the I/O thread walks them (reading next under mu) and alone touches the
 * *_gen and failed fields. Freed only after the thread is joined. */
struct decl {
	struct decl *next;
	enum decl_kind kind;
	char *a, *b, *c; /* exchange: name, type; queue: name, dlx; bind: queue, exchange, key */
	bool durable;
	bool failed;
	uint64_t applied_gen;
};

struct consumer {
	struct consumer *next;
	char *queue;	      /* cdr_mq_consume */
	char *exchange, *key; /* cdr_mq_subscribe (queue is NULL) */
	cdr_mq_deliver_fn fn;
	void *arg;
	char tag[32];
	uint64_t issued_gen;
	bool cancel;   /* under mu: the loop wants it stopped (cdr_mq_cancel) */
	bool loop_off; /* loop thread only: deliveries are requeued, not handed over */
};

struct ackcmd {
	struct ackcmd *next;
	uint64_t gen, tag;
	bool ack, requeue;
};

struct delivery {
	struct cdr_mq_delivery pub; /* first: the user sees &d->pub */
	TAILQ_ENTRY(delivery) link; /* mq->live, while the user holds it */
	struct cdr_mq *mq;	    /* NULL once the handle is freed */
	struct consumer *consumer;  /* NULL for a reply */
	uint64_t gen, tag;
	bool live;
	char *strs[8];
	void *body;
};
TAILQ_HEAD(delivery_list, delivery);

struct rpc {
	TAILQ_ENTRY(rpc) link;
	struct cdr_mq *mq;
	uint64_t id;
	char corr[64];
	cdr_mq_reply_fn fn;
	void *arg;
	struct cdr_timer *timer;
};
TAILQ_HEAD(rpc_list, rpc);

struct state_ev {
	struct cdr_mq *mq;
	bool up;
	char why[WHY_LEN];
};

struct cdr_mq {
	struct cdr_loop *loop;
	struct cdr_mq_url url;
	char *tls_ca; /* CA bundle for amqps, NULL for amqp */
	char *name;
	unsigned heartbeat_s, prefetch;
	size_t max_body, max_pending;
	cdr_mq_state_fn on_state;
	void *arg;
	int wake_fd;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t mu; /* guards the block below */
	bool stop;
	struct pub_list outgoing;
	size_t npending; /* accepted and not yet confirmed */
	struct ackcmd *acks, **acks_tail;
	struct decl *decls, **decls_tail;
	struct consumer *consumers, **consumers_tail;
	bool topo_dirty;
	bool woken;		/* the eventfd was written and the thread has not drained it yet (wake, drain_wake) */
	struct cdr_timer *kick; /* loop thread: wakes the thread once for what this loop round queued (kick) */
	int sockfd;		/* of the live connection, for a forced stop; -1 */

	/* I/O thread only */
	amqp_connection_state_t conn;
	struct cdr_backoff backoff;
	uint64_t gen; /* connection generation, 1 for the first */
	uint64_t next_tag;
	struct pub_list unconfirmed;
	char reply_queue[256];
	bool blocked;	  /* connection.blocked: publishing paused */
	bool chan_exc;	  /* the last failure was a channel exception */
	bool conn_closed; /* the broker closed the connection (close-ok sent) */
	char why[WHY_LEN];

	/* loop thread only */
	bool up, closing;
	uint64_t next_seq, next_rpc_id;
	unsigned next_consumer;
	struct rpc_list rpcs;
	struct delivery_list live;
	char corr_prefix[24];
};

/* ---------------------------------------------------------------- helpers */

static char *dup_bytes(amqp_bytes_t b)
{
	char *s = malloc(b.len + 1);

	if (!s)
		return NULL;
	if (b.len)
		memcpy(s, b.bytes, b.len);
	s[b.len] = '\0';
	return s;
}

static char *dup_opt(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

static void set_why(struct cdr_mq *mq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_why(struct cdr_mq *mq, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(mq->why, sizeof(mq->why), fmt, ap);
	va_end(ap);
}

static void append_why(struct cdr_mq *mq, const char *text)
{
	size_t n = strlen(mq->why);

	snprintf(mq->why + n, sizeof(mq->why) - n, "%s", text);
}

/* Wakes the I/O thread: one write until it has drained the eventfd (a burst
 * of publishes and acks costs one system call, not one each). */
static void wake(struct cdr_mq *mq)
{
	uint64_t one = 1;
	bool need;

	pthread_mutex_lock(&mq->mu);
	need = !mq->woken;
	mq->woken = true;
	pthread_mutex_unlock(&mq->mu);
	if (need && write(mq->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		cdr_debug("mq %s: wake: %s", mq->name, strerror(errno));
}

/* Loop thread: publishes and acks queued in one round of the loop (the
 * deliveries of one batch, say) wake the I/O thread once, after the round:
 * one write and one wake-up for them all, and their frames go out together. */
static void kick(struct cdr_mq *mq)
{
	if (!mq->kick)
		wake(mq);
	else if (!cdr_timer_pending(mq->kick))
		cdr_timer_start(mq->kick, 0, false);
}

static void on_kick(void *arg)
{
	wake(arg);
}

/* Before the thread reads its lists: what is queued after this wakes it. */
static void drain_wake(struct cdr_mq *mq)
{
	uint64_t n;

	pthread_mutex_lock(&mq->mu);
	mq->woken = false;
	pthread_mutex_unlock(&mq->mu);
	if (read(mq->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		cdr_debug("mq %s: wake read: %s", mq->name, strerror(errno));
}

static bool stopping(struct cdr_mq *mq)
{
	bool s;

	pthread_mutex_lock(&mq->mu);
	s = mq->stop;
	pthread_mutex_unlock(&mq->mu);
	return s;
}

static void ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static void pub_free(struct pub *p)
{
	if (!p)
		return;
	free(p->exchange);
	free(p->routing_key);
	free(p->correlation_id);
	free(p->reply_to);
	free(p->message_id);
	free(p->type);
	free(p->content_type);
	free(p->body);
	free(p);
}

static void delivery_free(struct delivery *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < sizeof(d->strs) / sizeof(d->strs[0]); i++)
		free(d->strs[i]);
	free(d->body);
	free(d);
}

/* ---------------------------------------------------------------- loop side of the hand-over */

static void rpc_finish(struct rpc *rpc, int status, const struct cdr_mq_delivery *reply)
{
	struct cdr_mq *mq = rpc->mq;

	TAILQ_REMOVE(&mq->rpcs, rpc, link);
	rpc->timer = cdr_timer_free(rpc->timer);
	rpc->fn(status, reply, rpc->arg);
	free(rpc);
}

static struct rpc *rpc_by_id(struct cdr_mq *mq, uint64_t id)
{
	struct rpc *rpc;

	TAILQ_FOREACH(rpc, &mq->rpcs, link)
	if (rpc->id == id)
		return rpc;
	return NULL;
}

static void on_posted_state(void *arg)
{
	struct state_ev *ev = arg;
	struct cdr_mq *mq = ev->mq;

	if (!mq->closing) {
		mq->up = ev->up;
		if (mq->on_state)
			mq->on_state(ev->up, ev->why, mq->arg);
	}
	free(ev);
}

static void on_posted_confirm(void *arg)
{
	struct pub *p = arg;
	struct cdr_mq *mq = p->mq;

	if (p->rpc_id) {
		struct rpc *rpc = rpc_by_id(mq, p->rpc_id);
		/* A request the broker took is answered by its reply or its timer;
		 * one it refused fails now. */
		if (rpc && p->status != 0)
			rpc_finish(rpc, p->status == -ECANCELED ? -ECANCELED : -EIO, NULL);
	} else if (p->fn) {
		p->fn(p->status, p->arg);
	}
	pub_free(p);
}

static void on_posted_delivery(void *arg)
{
	struct delivery *d = arg;
	struct cdr_mq *mq = d->mq;

	if (mq->closing) {
		/* Not acked: the broker requeues it when the connection closes. */
		delivery_free(d);
		return;
	}
	if (!d->consumer) {
		struct rpc *rpc;
		TAILQ_FOREACH(rpc, &mq->rpcs, link)
		if (d->pub.correlation_id && strcmp(rpc->corr, d->pub.correlation_id) == 0)
			break;
		if (rpc)
			rpc_finish(rpc, 0, &d->pub);
		else
			cdr_debug("mq %s: reply %s after its timeout (or unknown), dropped", mq->name,
				  d->pub.correlation_id ? d->pub.correlation_id : "(no correlation_id)");
		delivery_free(d);
		return;
	}
	d->live = true;
	TAILQ_INSERT_TAIL(&mq->live, d, link);
	if (d->consumer->loop_off) {
		/* Cancelled after the broker sent it: give it back for whoever
		 * consumes now (the new leader). */
		cdr_mq_nack(&d->pub, true);
		return;
	}
	d->consumer->fn(&d->pub, d->consumer->arg);
}

static void post_state(struct cdr_mq *mq, bool up, const char *why)
{
	struct state_ev *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return;
	ev->mq = mq;
	ev->up = up;
	snprintf(ev->why, sizeof(ev->why), "%s", why);
	if (cdr_loop_post(mq->loop, on_posted_state, ev) == -ENOMEM)
		free(ev);
}

/* I/O thread: hands a settled publish to the loop. */
static void post_confirm(struct cdr_mq *mq, struct pub *p, int status)
{
	p->status = status;
	pthread_mutex_lock(&mq->mu);
	mq->npending--;
	pthread_mutex_unlock(&mq->mu);
	if (cdr_loop_post(mq->loop, on_posted_confirm, p) == -ENOMEM) {
		cdr_debug("mq %s: out of memory, confirm of message %" PRIu64 " lost", mq->name, p->seq);
		pub_free(p);
	}
}

/* ---------------------------------------------------------------- I/O thread: replies and errors */

/* Turns a librabbitmq reply into 0 or -1 with mq->why = "what: reason". */
static int reply_check(struct cdr_mq *mq, amqp_rpc_reply_t r, const char *what)
{
	mq->chan_exc = false;
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL: return 0;
	case AMQP_RESPONSE_NONE: set_why(mq, "%s: no reply", what); return -1;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		set_why(mq, "%s: %s", what, amqp_error_string2(r.library_error));
		return -1;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *c = r.reply.decoded;
			amqp_connection_close_ok_t ok = { 0 };
			set_why(mq, "%s: connection closed by the broker: %u %.*s", what, c->reply_code,
				(int)c->reply_text.len, (const char *)c->reply_text.bytes);
			amqp_send_method(mq->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
			mq->conn_closed = true;
		} else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *c = r.reply.decoded;
			amqp_channel_close_ok_t ok = { 0 };
			set_why(mq, "%s: %u %.*s", what, c->reply_code, (int)c->reply_text.len,
				(const char *)c->reply_text.bytes);
			amqp_send_method(mq->conn, CH, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
			mq->chan_exc = true;
		} else {
			set_why(mq, "%s: unexpected method 0x%08x", what, r.reply.id);
		}
		return -1;
	}
	set_why(mq, "%s: bad reply", what);
	return -1;
}

static int rpc_check(struct cdr_mq *mq, const char *what)
{
	return reply_check(mq, amqp_get_rpc_reply(mq->conn), what);
}

static int status_check(struct cdr_mq *mq, int status, const char *what)
{
	if (status >= 0)
		return 0;
	set_why(mq, "%s: %s", what, amqp_error_string2(status));
	return -1;
}

/* ---------------------------------------------------------------- I/O thread: topology */

static int apply_decl(struct cdr_mq *mq, struct decl *d)
{
	char what[320];
	amqp_table_entry_t e;
	amqp_table_t args = amqp_empty_table;

	switch (d->kind) {
	case DECL_EXCHANGE:
		snprintf(what, sizeof(what), "declare exchange %s", d->a);
		amqp_exchange_declare(mq->conn, CH, amqp_cstring_bytes(d->a), amqp_cstring_bytes(d->b), 0, d->durable,
				      0, 0, amqp_empty_table);
		break;
	case DECL_QUEUE:
	case DECL_PRIVATE_QUEUE:
		snprintf(what, sizeof(what), "declare queue %s", d->a);
		if (d->b) {
			e.key = amqp_cstring_bytes("x-dead-letter-exchange");
			e.value.kind = AMQP_FIELD_KIND_UTF8;
			e.value.value.bytes = amqp_cstring_bytes(d->b);
			args.num_entries = 1;
			args.entries = &e;
		}
		/* A private queue: exclusive and auto-deleted (gone with the connection). */
		amqp_queue_declare(mq->conn, CH, amqp_cstring_bytes(d->a), 0, d->durable, d->kind == DECL_PRIVATE_QUEUE,
				   d->kind == DECL_PRIVATE_QUEUE, args);
		break;
	case DECL_BIND:
		snprintf(what, sizeof(what), "bind queue %s to %s key '%s'", d->a, d->b, d->c);
		amqp_queue_bind(mq->conn, CH, amqp_cstring_bytes(d->a), amqp_cstring_bytes(d->b),
				amqp_cstring_bytes(d->c), amqp_empty_table);
		break;
	}
	if (rpc_check(mq, what) < 0) {
		/* Refused by the broker: it will be refused again, so forget it. */
		/* Except a private queue: "locked" while the broker has not yet
		 * seen the previous connection go, it is retried. */
		if (mq->chan_exc && d->kind != DECL_PRIVATE_QUEUE) {
			d->failed = true;
			cdr_debug("mq %s: %s; dropped from the topology", mq->name, mq->why);
		}
		return -1;
	}
	d->applied_gen = mq->gen;
	return 0;
}

static int issue_consumer(struct cdr_mq *mq, struct consumer *c)
{
	char what[320];
	amqp_bytes_t queue;
	char *subq = NULL;
	int r = -1;

	if (c->queue) {
		queue = amqp_cstring_bytes(c->queue);
	} else {
		amqp_queue_declare_ok_t *ok;
		snprintf(what, sizeof(what), "declare subscription queue for %s", c->exchange);
		ok = amqp_queue_declare(mq->conn, CH, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
		if (rpc_check(mq, what) < 0 || !ok)
			return -1;
		subq = dup_bytes(ok->queue);
		if (!subq) {
			set_why(mq, "out of memory");
			return -1;
		}
		snprintf(what, sizeof(what), "bind subscription to %s key '%s'", c->exchange, c->key);
		amqp_queue_bind(mq->conn, CH, amqp_cstring_bytes(subq), amqp_cstring_bytes(c->exchange),
				amqp_cstring_bytes(c->key), amqp_empty_table);
		if (rpc_check(mq, what) < 0)
			goto out;
		queue = amqp_cstring_bytes(subq);
	}
	snprintf(what, sizeof(what), "consume %s", c->queue ? c->queue : c->exchange);
	amqp_basic_consume(mq->conn, CH, queue, amqp_cstring_bytes(c->tag), 0, 0, 0, amqp_empty_table);
	if (rpc_check(mq, what) < 0)
		goto out;
	c->issued_gen = mq->gen;
	r = 0;
out:
	free(subq);
	return r;
}

static struct decl *decl_first(struct cdr_mq *mq)
{
	struct decl *d;

	pthread_mutex_lock(&mq->mu);
	d = mq->decls;
	pthread_mutex_unlock(&mq->mu);
	return d;
}

static struct decl *decl_next(struct cdr_mq *mq, struct decl *d)
{
	pthread_mutex_lock(&mq->mu);
	d = d->next;
	pthread_mutex_unlock(&mq->mu);
	return d;
}

static struct consumer *consumer_first(struct cdr_mq *mq)
{
	struct consumer *c;

	pthread_mutex_lock(&mq->mu);
	c = mq->consumers;
	pthread_mutex_unlock(&mq->mu);
	return c;
}

static struct consumer *consumer_next(struct cdr_mq *mq, struct consumer *c)
{
	pthread_mutex_lock(&mq->mu);
	c = c->next;
	pthread_mutex_unlock(&mq->mu);
	return c;
}

/* Applies every declaration, then every consumer, not yet done on this
 * connection. */
static int sync_topology(struct cdr_mq *mq)
{
	struct decl *d;
	struct consumer *c;

	pthread_mutex_lock(&mq->mu);
	mq->topo_dirty = false;
	pthread_mutex_unlock(&mq->mu);
	for (d = decl_first(mq); d; d = decl_next(mq, d))
		if (!d->failed && d->applied_gen != mq->gen && apply_decl(mq, d) < 0)
			return -1;
	for (c = consumer_first(mq); c; c = consumer_next(mq, c)) {
		bool cancel;

		pthread_mutex_lock(&mq->mu);
		cancel = c->cancel;
		pthread_mutex_unlock(&mq->mu);
		if (cancel) {
			if (c->issued_gen == mq->gen) {
				char what[320];

				snprintf(what, sizeof(what), "cancel consumer of %s", c->queue);
				amqp_basic_cancel(mq->conn, CH, amqp_cstring_bytes(c->tag));
				if (rpc_check(mq, what) < 0)
					return -1;
			}
			c->issued_gen = 0;
			continue;
		}
		if (c->issued_gen != mq->gen && issue_consumer(mq, c) < 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- I/O thread: session */

/* A TLS socket that checks the broker's certificate against mq->tls_ca and
 * its name (or address) against the URL's host. NULL with mq->why. */
static amqp_socket_t *tls_socket(struct cdr_mq *mq)
{
	amqp_socket_t *sock = amqp_ssl_socket_new(mq->conn);
	int r;

	if (!sock) {
		set_why(mq, "cannot create a TLS socket (out of memory or OpenSSL failed to initialise)");
		return NULL;
	}
	amqp_ssl_socket_set_verify_peer(sock, 1);
	amqp_ssl_socket_set_verify_hostname(sock, 1);
	r = amqp_ssl_socket_set_ssl_versions(sock, AMQP_TLSv1_2, AMQP_TLSvLATEST);
	if (r != AMQP_STATUS_OK) {
		set_why(mq, "TLS: cannot require TLS 1.2 or later: %s", amqp_error_string2(r));
		return NULL;
	}
	r = amqp_ssl_socket_set_cacert(sock, mq->tls_ca);
	if (r != AMQP_STATUS_OK) {
		set_why(mq, "TLS: cannot load the CA bundle %s: %s", mq->tls_ca, amqp_error_string2(r));
		return NULL;
	}
	return sock;
}

/* What to check when a TLS connection failed, for the reason given. */
static const char *tls_hint(int status)
{
	switch (status) {
	case AMQP_STATUS_SSL_PEER_VERIFY_FAILED: return "; the broker's certificate is not signed by the CA of tls_ca";
	case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
		return "; the broker's certificate does not name this host or address";
	case AMQP_STATUS_SSL_CONNECTION_FAILED:
		return "; TLS handshake failed (a plain AMQP port, or no TLS version or cipher in common?)";
	default: return "";
	}
}

static int session_open(struct cdr_mq *mq)
{
	struct timeval tv;
	amqp_socket_t *sock;
	amqp_table_entry_t caps[3], props[2];
	amqp_table_t captab = { 3, caps }, proptab = { 2, props };
	amqp_queue_declare_ok_t *qok;
	amqp_rpc_reply_t login;
	int r;

	mq->conn_closed = false;
	mq->conn = amqp_new_connection();
	if (!mq->conn) {
		set_why(mq, "out of memory");
		return -1;
	}
	sock = mq->url.tls ? tls_socket(mq) : amqp_tcp_socket_new(mq->conn);
	if (!sock)
		return -1;
	ms_to_tv(CONNECT_TIMEOUT_MS, &tv);
	errno = 0;
	r = amqp_socket_open_noblock(sock, mq->url.host, mq->url.port, &tv);
	if (r < 0) {
		int e = errno;
		set_why(mq, "connect to %s:%u%s: %s%s%s%s%s", mq->url.host, mq->url.port, mq->url.tls ? " (TLS)" : "",
			amqp_error_string2(r), e ? " (" : "", e ? strerror(e) : "", e ? ")" : "", tls_hint(r));
		return -1;
	}
	pthread_mutex_lock(&mq->mu);
	mq->sockfd = amqp_get_sockfd(mq->conn);
	pthread_mutex_unlock(&mq->mu);
	amqp_set_handshake_timeout(mq->conn, &tv);
	ms_to_tv(RPC_TIMEOUT_MS, &tv);
	amqp_set_rpc_timeout(mq->conn, &tv);

	/* Ask for basic.cancel (a consumer's queue deleted) and
	 * connection.blocked (resource alarm: stop publishing, do not block in
	 * send); name the connection for the management UI. */
	caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
	caps[1].key = amqp_cstring_bytes("connection.blocked");
	caps[2].key = amqp_cstring_bytes("authentication_failure_close");
	for (r = 0; r < 3; r++) {
		caps[r].value.kind = AMQP_FIELD_KIND_BOOLEAN;
		caps[r].value.value.boolean = 1;
	}
	props[0].key = amqp_cstring_bytes("capabilities");
	props[0].value.kind = AMQP_FIELD_KIND_TABLE;
	props[0].value.value.table = captab;
	props[1].key = amqp_cstring_bytes("connection_name");
	props[1].value.kind = AMQP_FIELD_KIND_UTF8;
	props[1].value.value.bytes = amqp_cstring_bytes(mq->name);
	login = amqp_login_with_properties(mq->conn, mq->url.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, (int)mq->heartbeat_s,
					   &proptab, AMQP_SASL_METHOD_PLAIN, mq->url.user, mq->url.password);
	if (reply_check(mq, login, "login") < 0) {
		/* A TLS listener drops the plain AMQP header without a word. */
		if (!mq->url.tls && login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    (login.library_error == AMQP_STATUS_CONNECTION_CLOSED ||
		     login.library_error == AMQP_STATUS_SOCKET_ERROR))
			append_why(mq, " (a TLS-only port? use amqps:// and a CA)");
		return -1;
	}
	amqp_channel_open(mq->conn, CH);
	if (rpc_check(mq, "open channel") < 0)
		return -1;
	amqp_confirm_select(mq->conn, CH);
	if (rpc_check(mq, "confirm.select") < 0)
		return -1;
	amqp_basic_qos(mq->conn, CH, 0, (uint16_t)mq->prefetch, 0);
	if (rpc_check(mq, "basic.qos") < 0)
		return -1;

	mq->gen++;
	mq->next_tag = 1;
	mq->blocked = false;
	if (sync_topology(mq) < 0)
		return -1;
	/* The private reply queue: server-named, gone with the connection. */
	qok = amqp_queue_declare(mq->conn, CH, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
	if (rpc_check(mq, "declare reply queue") < 0 || !qok)
		return -1;
	snprintf(mq->reply_queue, sizeof(mq->reply_queue), "%.*s", (int)qok->queue.len, (const char *)qok->queue.bytes);
	amqp_basic_consume(mq->conn, CH, amqp_cstring_bytes(mq->reply_queue), amqp_cstring_bytes(REPLY_TAG), 0, 1, 1,
			   amqp_empty_table);
	if (rpc_check(mq, "consume reply queue") < 0)
		return -1;
	return 0;
}

/* Ends the connection (politely if it is still usable) and puts every
 * unconfirmed message back at the head of the queue, in order, to be
 * published again on the next connection. */
static void session_drop(struct cdr_mq *mq, bool polite)
{
	struct pub *p;

	if (mq->conn) {
		if (polite && !mq->conn_closed) {
			struct timeval tv;
			ms_to_tv(STOP_RPC_TIMEOUT_MS, &tv);
			amqp_set_rpc_timeout(mq->conn, &tv);
			amqp_connection_close(mq->conn, AMQP_REPLY_SUCCESS);
		}
		pthread_mutex_lock(&mq->mu);
		mq->sockfd = -1;
		pthread_mutex_unlock(&mq->mu);
		amqp_destroy_connection(mq->conn);
		mq->conn = NULL;
	}
	pthread_mutex_lock(&mq->mu);
	while ((p = TAILQ_LAST(&mq->unconfirmed, pub_list))) {
		TAILQ_REMOVE(&mq->unconfirmed, p, link);
		TAILQ_INSERT_HEAD(&mq->outgoing, p, link);
	}
	pthread_mutex_unlock(&mq->mu);
	mq->reply_queue[0] = '\0';
}

/* Settles the unconfirmed publishes up to tag (or just tag). */
static void settle(struct cdr_mq *mq, uint64_t tag, bool multiple, int status)
{
	struct pub *p, *next;

	for (p = TAILQ_FIRST(&mq->unconfirmed); p && p->tag <= tag; p = next) {
		next = TAILQ_NEXT(p, link);
		if (!multiple && p->tag != tag)
			continue;
		TAILQ_REMOVE(&mq->unconfirmed, p, link);
		post_confirm(mq, p, status < 0 ? status : p->returned ? -EIO : 0);
	}
}

struct content {
	amqp_basic_properties_t props; /* strings point into the fields below */
	char *strs[7];		       /* correlation_id, reply_to, message_id, content_type, type, seq, user_id */
	void *body;
	size_t len;
	unsigned delivery_mode; /* 0 when absent */
	bool too_big;
	size_t size; /* the body's size as announced (also when too big to read) */
};

static void content_clear(struct content *c)
{
	size_t i;

	for (i = 0; i < sizeof(c->strs) / sizeof(c->strs[0]); i++)
		free(c->strs[i]);
	free(c->body);
	memset(c, 0, sizeof(*c));
}

static int copy_prop(amqp_flags_t flags, amqp_flags_t flag, amqp_bytes_t b, char **out)
{
	if (!(flags & flag))
		return 0;
	*out = dup_bytes(b);
	return *out ? 0 : -1;
}

/* Reads the header and body frames that follow a basic.deliver/return. */
static int read_content(struct cdr_mq *mq, struct content *c)
{
	amqp_frame_t f;
	struct timeval tv;
	amqp_basic_properties_t *p;
	uint64_t size, got = 0;
	int r;

	memset(c, 0, sizeof(*c));
	ms_to_tv(CONTENT_TIMEOUT_MS, &tv);
	r = amqp_simple_wait_frame_noblock(mq->conn, &f, &tv);
	if (status_check(mq, r, "read content header") < 0)
		return -1;
	if (f.frame_type != AMQP_FRAME_HEADER || f.channel != CH) {
		set_why(mq, "read content header: unexpected frame type %u", f.frame_type);
		return -1;
	}
	size = f.payload.properties.body_size;
	p = f.payload.properties.decoded;
	if (copy_prop(p->_flags, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id, &c->strs[0]) < 0 ||
	    copy_prop(p->_flags, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to, &c->strs[1]) < 0 ||
	    copy_prop(p->_flags, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id, &c->strs[2]) < 0 ||
	    copy_prop(p->_flags, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type, &c->strs[3]) < 0 ||
	    copy_prop(p->_flags, AMQP_BASIC_TYPE_FLAG, p->type, &c->strs[4]) < 0 ||
	    copy_prop(p->_flags, AMQP_BASIC_USER_ID_FLAG, p->user_id, &c->strs[6]) < 0)
		goto oom;
	if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
		c->delivery_mode = p->delivery_mode;
	if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
		for (int i = 0; i < p->headers.num_entries; i++) {
			amqp_table_entry_t *e = &p->headers.entries[i];
			if (e->key.len == strlen(SEQ_HEADER) && memcmp(e->key.bytes, SEQ_HEADER, e->key.len) == 0 &&
			    e->value.kind == AMQP_FIELD_KIND_UTF8) {
				if (!(c->strs[5] = dup_bytes(e->value.value.bytes)))
					goto oom;
			}
		}
	}
	c->too_big = size > mq->max_body;
	c->size = (size_t)size;
	c->len = c->too_big ? 0 : (size_t)size;
	c->body = malloc(c->len + 1);
	if (!c->body)
		goto oom;
	while (got < size) {
		r = amqp_simple_wait_frame_noblock(mq->conn, &f, &tv);
		if (status_check(mq, r, "read content body") < 0)
			return -1;
		if (f.frame_type != AMQP_FRAME_BODY || f.channel != CH || got + f.payload.body_fragment.len > size) {
			set_why(mq, "read content body: unexpected frame type %u", f.frame_type);
			return -1;
		}
		if (!c->too_big && f.payload.body_fragment.len)
			memcpy((char *)c->body + got, f.payload.body_fragment.bytes, f.payload.body_fragment.len);
		got += f.payload.body_fragment.len;
	}
	((char *)c->body)[c->len] = '\0';
	return 0;
oom:
	set_why(mq, "out of memory reading a message");
	return -1;
}

static struct consumer *consumer_by_tag(struct cdr_mq *mq, amqp_bytes_t tag)
{
	struct consumer *c;

	for (c = consumer_first(mq); c; c = consumer_next(mq, c))
		if (strlen(c->tag) == tag.len && memcmp(c->tag, tag.bytes, tag.len) == 0)
			return c;
	return NULL;
}

static int on_deliver(struct cdr_mq *mq, amqp_basic_deliver_t *m)
{
	struct content c;
	struct delivery *d;
	struct consumer *cons = NULL;
	bool reply = m->consumer_tag.len == strlen(REPLY_TAG) &&
		     memcmp(m->consumer_tag.bytes, REPLY_TAG, m->consumer_tag.len) == 0;
	uint64_t tag = m->delivery_tag;
	bool redelivered = m->redelivered;
	char *exchange = dup_bytes(m->exchange), *rkey = dup_bytes(m->routing_key);

	if (!reply)
		cons = consumer_by_tag(mq, m->consumer_tag);
	if (!exchange || !rkey) {
		free(exchange);
		free(rkey);
		set_why(mq, "out of memory reading a message");
		return -1;
	}
	if (read_content(mq, &c) < 0) {
		content_clear(&c);
		free(exchange);
		free(rkey);
		return -1;
	}
	if ((!reply && !cons) || (reply && c.too_big)) {
		cdr_debug("mq %s: %s from %s/%s dropped", mq->name,
			  c.too_big ? "oversize message" : "message for no consumer", exchange, rkey);
		free(exchange);
		free(rkey);
		content_clear(&c);
		/* Dead-letter it rather than let it come back for ever. */
		if (!reply)
			return status_check(mq, amqp_basic_nack(mq->conn, CH, tag, 0, 0), "nack");
		return 0;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		free(exchange);
		free(rkey);
		content_clear(&c);
		set_why(mq, "out of memory reading a message");
		return -1;
	}
	d->mq = mq;
	d->consumer = cons;
	d->gen = mq->gen;
	d->tag = tag;
	d->strs[0] = exchange;
	d->strs[1] = rkey;
	memcpy(&d->strs[2], c.strs, 5 * sizeof(char *));
	free(c.strs[5]);
	d->strs[7] = c.strs[6];
	d->body = c.body;
	d->pub.exchange = d->strs[0];
	d->pub.routing_key = d->strs[1];
	d->pub.correlation_id = d->strs[2];
	d->pub.reply_to = d->strs[3];
	d->pub.message_id = d->strs[4];
	d->pub.content_type = d->strs[5];
	d->pub.type = d->strs[6];
	d->pub.user_id = d->strs[7];
	d->pub.body = d->body;
	d->pub.len = c.len;
	d->pub.redelivered = redelivered;
	d->pub.delivery_mode = c.delivery_mode;
	d->pub.oversize = c.too_big ? c.size : 0; /* its body not read: the consumer refuses it (and answers) */
	if (cdr_loop_post(mq->loop, on_posted_delivery, d) == -ENOMEM) {
		/* Never acked: the broker redelivers it after the next re-connection. */
		delivery_free(d);
		cdr_debug("mq %s: out of memory, delivery dropped", mq->name);
	}
	return 0;
}

static int on_return(struct cdr_mq *mq, amqp_basic_return_t *m)
{
	struct content c;
	struct pub *p;
	uint64_t seq;

	cdr_debug("mq %s: message to %.*s/%.*s returned: %u %.*s", mq->name, (int)m->exchange.len,
		  (const char *)m->exchange.bytes, (int)m->routing_key.len, (const char *)m->routing_key.bytes,
		  m->reply_code, (int)m->reply_text.len, (const char *)m->reply_text.bytes);
	if (read_content(mq, &c) < 0) {
		content_clear(&c);
		return -1;
	}
	if (c.strs[5]) {
		seq = strtoull(c.strs[5], NULL, 10);
		TAILQ_FOREACH(p, &mq->unconfirmed, link)
		if (p->seq == seq) {
			p->returned = true; /* its basic.ack follows */
			break;
		}
	}
	content_clear(&c);
	return 0;
}

/* A basic.publish closed the channel (no such exchange, access refused):
 * publishing those messages again would only close the next channel too, so
 * the unconfirmed ones to the exchange the broker names fail with -EIO. The
 * name is only in the reply text ("... exchange 'x' in vhost 'v' ..."). */
static void fail_publishes_to(struct cdr_mq *mq, amqp_bytes_t text)
{
	static const char mark[] = "exchange '";
	char *t = dup_bytes(text), *name, *end;
	struct pub *p, *next;

	if (!t)
		return;
	name = strstr(t, mark);
	end = name ? strchr(name + strlen(mark), '\'') : NULL;
	if (name && end) {
		name += strlen(mark);
		*end = '\0';
		for (p = TAILQ_FIRST(&mq->unconfirmed); p; p = next) {
			next = TAILQ_NEXT(p, link);
			if (strcmp(p->exchange, name) == 0) {
				TAILQ_REMOVE(&mq->unconfirmed, p, link);
				post_confirm(mq, p, -EIO);
			}
		}
	}
	free(t);
}

/* Handles one frame read outside an RPC. Returns -1 when the connection must
 * go (mq->why set). */
static int dispatch(struct cdr_mq *mq, amqp_frame_t *f)
{
	if (f->frame_type != AMQP_FRAME_METHOD) {
		cdr_debug("mq %s: stray frame type %u on channel %u", mq->name, f->frame_type, f->channel);
		return 0;
	}
	switch (f->payload.method.id) {
	case AMQP_BASIC_DELIVER_METHOD: return on_deliver(mq, f->payload.method.decoded);
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *m = f->payload.method.decoded;
		settle(mq, m->delivery_tag, m->multiple, 0);
		return 0;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *m = f->payload.method.decoded;
		settle(mq, m->delivery_tag, m->multiple, -EIO);
		return 0;
	}
	case AMQP_BASIC_RETURN_METHOD: return on_return(mq, f->payload.method.decoded);
	case AMQP_BASIC_CANCEL_METHOD: {
		amqp_basic_cancel_t *m = f->payload.method.decoded;
		struct consumer *c = consumer_by_tag(mq, m->consumer_tag);
		if (!c) {
			set_why(mq, "reply queue consumer cancelled by the broker");
			return -1;
		}
		/* Its queue was deleted: try again (a refusal recycles the
		 * connection with back-off until the queue is back). */
		cdr_debug("mq %s: consumer %s cancelled by the broker", mq->name, c->tag);
		c->issued_gen = 0;
		pthread_mutex_lock(&mq->mu);
		mq->topo_dirty = true;
		pthread_mutex_unlock(&mq->mu);
		return 0;
	}
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *m = f->payload.method.decoded;
		amqp_channel_close_ok_t ok = { 0 };
		set_why(mq, "channel closed by the broker: %u %.*s", m->reply_code, (int)m->reply_text.len,
			(const char *)m->reply_text.bytes);
		if (m->class_id == 60 && m->method_id == 40)
			fail_publishes_to(mq, m->reply_text);
		amqp_send_method(mq->conn, CH, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		return -1;
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *m = f->payload.method.decoded;
		amqp_connection_close_ok_t ok = { 0 };
		set_why(mq, "connection closed by the broker: %u %.*s", m->reply_code, (int)m->reply_text.len,
			(const char *)m->reply_text.bytes);
		amqp_send_method(mq->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		mq->conn_closed = true;
		return -1;
	}
	case AMQP_CONNECTION_BLOCKED_METHOD:
		cdr_debug("mq %s: broker blocked publishing", mq->name);
		mq->blocked = true;
		return 0;
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		cdr_debug("mq %s: broker unblocked publishing", mq->name);
		mq->blocked = false;
		return 0;
	default: cdr_debug("mq %s: ignored method 0x%08x", mq->name, f->payload.method.id); return 0;
	}
}

/* Reads and dispatches every frame available now (and lets librabbitmq send
 * or check heartbeats). */
static int read_frames(struct cdr_mq *mq)
{
	struct timeval zero = { 0, 0 };
	amqp_frame_t f;
	int r, n;

	for (n = 0; n < 4096; n++) {
		r = amqp_simple_wait_frame_noblock(mq->conn, &f, &zero);
		if (r == AMQP_STATUS_TIMEOUT)
			return 0;
		if (status_check(mq, r, "read") < 0)
			return -1;
		r = dispatch(mq, &f);
		amqp_maybe_release_buffers(mq->conn);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int send_acks(struct cdr_mq *mq)
{
	struct ackcmd *a, *next;
	int r = 0;

	pthread_mutex_lock(&mq->mu);
	a = mq->acks;
	mq->acks = NULL;
	mq->acks_tail = &mq->acks;
	pthread_mutex_unlock(&mq->mu);
	for (; a; a = next) {
		next = a->next;
		/* A tag of an earlier connection means nothing on this one. */
		if (r == 0 && mq->conn && a->gen == mq->gen) {
			if (a->ack)
				r = status_check(mq, amqp_basic_ack(mq->conn, CH, a->tag, 0), "ack");
			else
				r = status_check(mq, amqp_basic_nack(mq->conn, CH, a->tag, 0, a->requeue), "nack");
		}
		free(a);
	}
	return r;
}

static int publish_one(struct cdr_mq *mq, struct pub *p)
{
	amqp_basic_properties_t props = { 0 };
	amqp_table_entry_t hdr;
	char seq[24];

	props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
	props.content_type = amqp_cstring_bytes(p->content_type ? p->content_type : "application/json");
	props.delivery_mode = p->persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
	if (p->correlation_id) {
		props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
		props.correlation_id = amqp_cstring_bytes(p->correlation_id);
	}
	if (p->is_request) {
		props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
		props.reply_to = amqp_cstring_bytes(mq->reply_queue);
	} else if (p->reply_to) {
		props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
		props.reply_to = amqp_cstring_bytes(p->reply_to);
	}
	if (p->message_id) {
		props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
		props.message_id = amqp_cstring_bytes(p->message_id);
	}
	if (p->type) {
		props._flags |= AMQP_BASIC_TYPE_FLAG;
		props.type = amqp_cstring_bytes(p->type);
	}
	/* Who sends it: the broker refuses a user_id that is not the
	 * connection's user, so receivers can trust it (docs/security.md). */
	props._flags |= AMQP_BASIC_USER_ID_FLAG;
	props.user_id = amqp_cstring_bytes(mq->url.user);
	if (p->mandatory) {
		/* basic.return carries no delivery tag: this header ties it back. */
		snprintf(seq, sizeof(seq), "%" PRIu64, p->seq);
		hdr.key = amqp_cstring_bytes(SEQ_HEADER);
		hdr.value.kind = AMQP_FIELD_KIND_UTF8;
		hdr.value.value.bytes = amqp_cstring_bytes(seq);
		props._flags |= AMQP_BASIC_HEADERS_FLAG;
		props.headers.num_entries = 1;
		props.headers.entries = &hdr;
	}
	p->tag = mq->next_tag++;
	p->returned = false;
	TAILQ_INSERT_TAIL(&mq->unconfirmed, p, link);
	return status_check(mq,
			    amqp_basic_publish(mq->conn, CH, amqp_cstring_bytes(p->exchange),
					       amqp_cstring_bytes(p->routing_key), p->mandatory, 0, &props,
					       (amqp_bytes_t){ .len = p->len, .bytes = p->body }),
			    "publish");
}

/* Publishes up to max queued messages; returns 1 if more are waiting. */
static int publish_some(struct cdr_mq *mq, int max)
{
	struct pub *p;
	int i;

	for (i = 0; i < max; i++) {
		pthread_mutex_lock(&mq->mu);
		p = TAILQ_FIRST(&mq->outgoing);
		if (p)
			TAILQ_REMOVE(&mq->outgoing, p, link);
		pthread_mutex_unlock(&mq->mu);
		if (!p)
			return 0;
		if (publish_one(mq, p) < 0)
			return -1;
	}
	pthread_mutex_lock(&mq->mu);
	i = !TAILQ_EMPTY(&mq->outgoing);
	pthread_mutex_unlock(&mq->mu);
	return i;
}

/* One round of work on a live connection; poll_ms bounds the wait for the
 * socket or the wake-up. Returns 1 if work is left, 0, or -1 (mq->why). */
static int session_step(struct cdr_mq *mq, int poll_ms)
{
	struct pollfd pfd[2];
	bool dirty;
	int more = 0;

	drain_wake(mq);
	if (send_acks(mq) < 0)
		return -1;
	pthread_mutex_lock(&mq->mu);
	dirty = mq->topo_dirty;
	pthread_mutex_unlock(&mq->mu);
	if (dirty && sync_topology(mq) < 0)
		return -1;
	if (!mq->blocked) {
		more = publish_some(mq, PUBLISH_BATCH);
		if (more < 0)
			return -1;
	}
	if (read_frames(mq) < 0)
		return -1;
	/* Frames an RPC above queued up are read before sleeping. */
	if (amqp_frames_enqueued(mq->conn) || amqp_data_in_buffer(mq->conn))
		return 1;
	pfd[0].fd = amqp_get_sockfd(mq->conn);
	pfd[0].events = POLLIN;
	pfd[1].fd = mq->wake_fd;
	pfd[1].events = POLLIN;
	if (poll(pfd, 2, more ? 0 : poll_ms) < 0 && errno != EINTR) {
		set_why(mq, "poll: %s", strerror(errno));
		return -1;
	}
	if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) && read_frames(mq) < 0)
		return -1;
	return more;
}

/* Graceful end of a live session at stop: cancel the consumers, flush acks
 * and queued publishes, wait a bounded time for their confirms. */
static void session_stop(struct cdr_mq *mq)
{
	struct consumer *c;
	struct timeval tv;
	uint64_t deadline = cdr_now_ms() + STOP_CONFIRM_MS;
	bool busy;

	ms_to_tv(STOP_RPC_TIMEOUT_MS, &tv);
	amqp_set_rpc_timeout(mq->conn, &tv);
	for (c = consumer_first(mq); c; c = consumer_next(mq, c)) {
		if (c->issued_gen != mq->gen)
			continue;
		amqp_basic_cancel(mq->conn, CH, amqp_cstring_bytes(c->tag));
		if (rpc_check(mq, "cancel") < 0)
			goto drop;
	}
	for (;;) {
		if (session_step(mq, 50) < 0)
			goto drop;
		pthread_mutex_lock(&mq->mu);
		busy = !TAILQ_EMPTY(&mq->outgoing) || !TAILQ_EMPTY(&mq->unconfirmed);
		pthread_mutex_unlock(&mq->mu);
		if (!busy || cdr_now_ms() >= deadline)
			break;
	}
	session_drop(mq, true);
	return;
drop:
	cdr_debug("mq %s: stopping: %s", mq->name, mq->why);
	session_drop(mq, !mq->conn_closed);
}

/* Waits ms, or until stop. Acks queued meanwhile are for a dead connection. */
static bool wait_or_stop(struct cdr_mq *mq, uint64_t ms)
{
	uint64_t deadline = cdr_now_ms() + ms, now;
	struct pollfd pfd = { .fd = mq->wake_fd, .events = POLLIN };

	for (;;) {
		send_acks(mq);
		if (stopping(mq))
			return true;
		now = cdr_now_ms();
		if (now >= deadline)
			return false;
		poll(&pfd, 1, (int)(deadline - now));
		drain_wake(mq);
	}
}

static void *io_main(void *arg)
{
	struct cdr_mq *mq = arg;
	char why[WHY_LEN * 2];
	uint64_t delay, up_since;
	int r;

	while (!stopping(mq)) {
		if (session_open(mq) < 0) {
			session_drop(mq, false);
			delay = cdr_backoff_next(&mq->backoff);
			snprintf(why, sizeof(why), "%s; retrying in %" PRIu64 " ms", mq->why, delay);
			cdr_debug("mq %s: %s", mq->name, why);
			post_state(mq, false, why);
			if (wait_or_stop(mq, delay))
				break;
			continue;
		}
		snprintf(why, sizeof(why), "connected to %s:%u vhost %s", mq->url.host, mq->url.port, mq->url.vhost);
		cdr_debug("mq %s: %s", mq->name, why);
		post_state(mq, true, why);
		up_since = cdr_now_ms();
		while ((r = session_step(mq, 500)) >= 0 && !stopping(mq))
			;
		if (r >= 0) {
			session_stop(mq);
			break;
		}
		session_drop(mq, mq->chan_exc);
		if (cdr_now_ms() - up_since >= STABLE_SESSION_MS)
			cdr_backoff_reset(&mq->backoff);
		delay = cdr_backoff_next(&mq->backoff);
		snprintf(why, sizeof(why), "%s; re-connecting in %" PRIu64 " ms", mq->why, delay);
		cdr_debug("mq %s: %s", mq->name, why);
		post_state(mq, false, why);
		if (wait_or_stop(mq, delay))
			break;
	}
	return NULL;
}

/* ---------------------------------------------------------------- public API */

int cdr_mq_new(struct cdr_loop *loop, const struct cdr_mq_opts *opts, struct cdr_mq **ret)
{
	struct cdr_mq *mq;
	unsigned char rnd[8] = { 0 };
	int r;

	if (!loop || !opts || !opts->url)
		return -EINVAL;
	if (opts->reconnect_min_ms && opts->reconnect_max_ms && opts->reconnect_min_ms > opts->reconnect_max_ms)
		return -EINVAL;
	mq = calloc(1, sizeof(*mq));
	if (!mq)
		return -ENOMEM;
	mq->wake_fd = -1;
	mq->sockfd = -1;
	TAILQ_INIT(&mq->outgoing);
	TAILQ_INIT(&mq->unconfirmed);
	TAILQ_INIT(&mq->rpcs);
	TAILQ_INIT(&mq->live);
	mq->acks_tail = &mq->acks;
	mq->decls_tail = &mq->decls;
	mq->consumers_tail = &mq->consumers;
	pthread_mutex_init(&mq->mu, NULL);
	mq->loop = loop;
	r = cdr_mq_url_parse(opts->url, &mq->url, NULL, 0);
	if (r < 0)
		goto fail;
	if (opts->password) {
		char *pw = strdup(opts->password);

		if (!pw) {
			r = -ENOMEM;
			goto fail;
		}
		free(mq->url.password);
		mq->url.password = pw;
	}
	if (mq->url.tls) {
		/* amqps without a CA to check the broker against is refused: a
		 * TLS link that trusts any certificate protects nothing. */
		if (!opts->tls_ca || !*opts->tls_ca) {
			r = -EINVAL;
			goto fail;
		}
		mq->tls_ca = strdup(opts->tls_ca);
		if (!mq->tls_ca) {
			r = -ENOMEM;
			goto fail;
		}
	}
	mq->name = strdup(opts->name && *opts->name ? opts->name : "confdr");
	if (!mq->name) {
		r = -ENOMEM;
		goto fail;
	}
	mq->heartbeat_s = opts->heartbeat_s ? (opts->heartbeat_s > 600 ? 600 : opts->heartbeat_s) : 10;
	mq->prefetch = opts->prefetch ? (opts->prefetch > 65535 ? 65535 : opts->prefetch) : 64;
	mq->max_body = opts->max_body ? opts->max_body : 4 * 1024 * 1024;
	mq->max_pending = opts->max_pending ? opts->max_pending : 65536;
	mq->on_state = opts->on_state;
	mq->arg = opts->arg;
	cdr_backoff_init(&mq->backoff, opts->reconnect_min_ms ? opts->reconnect_min_ms : 200,
			 opts->reconnect_max_ms ? opts->reconnect_max_ms : 10000);
	/* Correlation ids: random per handle, so a restarted daemon never
	 * matches a reply meant for its previous life. */
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
		uint64_t t = cdr_wall_ms() ^ ((uint64_t)getpid() << 32);
		memcpy(rnd, &t, sizeof(rnd));
	}
	for (r = 0; r < 8; r++)
		snprintf(mq->corr_prefix + 2 * r, 3, "%02x", rnd[r]);
	mq->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mq->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = cdr_timer_new(loop, on_kick, mq, &mq->kick)) < 0)
		goto fail;
	r = -pthread_create(&mq->thread, NULL, io_main, mq);
	if (r < 0)
		goto fail;
	mq->thread_started = true;
	*ret = mq;
	return 0;
fail:
	cdr_mq_free(mq);
	return r;
}

bool cdr_mq_connected(const struct cdr_mq *mq)
{
	return mq && mq->up;
}

static void join_io(struct cdr_mq *mq)
{
	struct timespec ts;

	pthread_mutex_lock(&mq->mu);
	mq->stop = true;
	pthread_mutex_unlock(&mq->mu);
	wake(mq);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += JOIN_GRACE_MS / 1000;
	if (pthread_timedjoin_np(mq->thread, NULL, &ts) == 0)
		return;
	/* Stuck in a blocking send to a broker that stopped reading: cut it. */
	pthread_mutex_lock(&mq->mu);
	if (mq->sockfd >= 0)
		shutdown(mq->sockfd, SHUT_RDWR);
	pthread_mutex_unlock(&mq->mu);
	pthread_join(mq->thread, NULL);
}

struct cdr_mq *cdr_mq_free(struct cdr_mq *mq)
{
	struct pub *p;
	struct rpc *rpc;
	struct delivery *d;

	if (!mq)
		return NULL;
	mq->closing = true;
	if (mq->thread_started) {
		join_io(mq);
		/* What the thread posted runs now, while mq is still whole. */
		cdr_loop_flush(mq->loop);
	}
	if (mq->conn)
		amqp_destroy_connection(mq->conn);
	TAILQ_CONCAT(&mq->outgoing, &mq->unconfirmed, link);
	while ((p = TAILQ_FIRST(&mq->outgoing))) {
		TAILQ_REMOVE(&mq->outgoing, p, link);
		p->status = -ECANCELED;
		on_posted_confirm(p);
	}
	while ((rpc = TAILQ_FIRST(&mq->rpcs)))
		rpc_finish(rpc, -ECANCELED, NULL);
	/* Deliveries the user still holds outlive the handle: their ack just
	 * frees them. */
	while ((d = TAILQ_FIRST(&mq->live))) {
		TAILQ_REMOVE(&mq->live, d, link);
		d->live = false;
		d->mq = NULL;
	}
	while (mq->acks) {
		struct ackcmd *a = mq->acks;
		mq->acks = a->next;
		free(a);
	}
	while (mq->decls) {
		struct decl *dc = mq->decls;
		mq->decls = dc->next;
		free(dc->a);
		free(dc->b);
		free(dc->c);
		free(dc);
	}
	while (mq->consumers) {
		struct consumer *c = mq->consumers;
		mq->consumers = c->next;
		free(c->queue);
		free(c->exchange);
		free(c->key);
		free(c);
	}
	mq->kick = cdr_timer_free(mq->kick);
	if (mq->wake_fd >= 0)
		close(mq->wake_fd);
	pthread_mutex_destroy(&mq->mu);
	cdr_mq_url_clear(&mq->url);
	free(mq->tls_ca);
	free(mq->name);
	free(mq);
	return NULL;
}

static bool name_ok(const char *s, bool empty_ok)
{
	return s && (empty_ok || *s) && strlen(s) <= 255;
}

static int add_decl(struct cdr_mq *mq, enum decl_kind kind, const char *a, const char *b, const char *c, bool durable)
{
	struct decl *d;

	if (mq->closing)
		return -ECANCELED;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->kind = kind;
	d->durable = durable;
	d->a = strdup(a);
	d->b = b ? strdup(b) : NULL;
	d->c = c ? strdup(c) : NULL;
	if (!d->a || (b && !d->b) || (c && !d->c)) {
		free(d->a);
		free(d->b);
		free(d->c);
		free(d);
		return -ENOMEM;
	}
	pthread_mutex_lock(&mq->mu);
	*mq->decls_tail = d;
	mq->decls_tail = &d->next;
	mq->topo_dirty = true;
	pthread_mutex_unlock(&mq->mu);
	wake(mq);
	return 0;
}

int cdr_mq_declare_exchange(struct cdr_mq *mq, const char *name, const char *type, bool durable)
{
	if (!mq || !name_ok(name, false) || !type ||
	    (strcmp(type, "direct") && strcmp(type, "fanout") && strcmp(type, "topic") && strcmp(type, "headers")))
		return -EINVAL;
	return add_decl(mq, DECL_EXCHANGE, name, type, NULL, durable);
}

int cdr_mq_declare_queue(struct cdr_mq *mq, const char *name, bool durable, const char *dead_letter_exchange)
{
	if (!mq || !name_ok(name, false) || (dead_letter_exchange && !name_ok(dead_letter_exchange, true)))
		return -EINVAL;
	return add_decl(mq, DECL_QUEUE, name, dead_letter_exchange, NULL, durable);
}

int cdr_mq_declare_private_queue(struct cdr_mq *mq, const char *name)
{
	if (!mq || !name_ok(name, false) || strncmp(name, "amq.", 4) == 0)
		return -EINVAL;
	return add_decl(mq, DECL_PRIVATE_QUEUE, name, NULL, NULL, false);
}

int cdr_mq_bind(struct cdr_mq *mq, const char *queue, const char *exchange, const char *key)
{
	if (!mq || !name_ok(queue, false) || !name_ok(exchange, false) || !name_ok(key, true))
		return -EINVAL;
	return add_decl(mq, DECL_BIND, queue, exchange, key, false);
}

static int add_consumer(struct cdr_mq *mq, const char *queue, const char *exchange, const char *key,
			cdr_mq_deliver_fn fn, void *arg)
{
	struct consumer *c;

	if (mq->closing)
		return -ECANCELED;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->arg = arg;
	c->queue = queue ? strdup(queue) : NULL;
	c->exchange = exchange ? strdup(exchange) : NULL;
	c->key = key ? strdup(key) : NULL;
	if ((queue && !c->queue) || (exchange && !c->exchange) || (key && !c->key)) {
		free(c->queue);
		free(c->exchange);
		free(c->key);
		free(c);
		return -ENOMEM;
	}
	snprintf(c->tag, sizeof(c->tag), "cdr.c%u", ++mq->next_consumer);
	pthread_mutex_lock(&mq->mu);
	*mq->consumers_tail = c;
	mq->consumers_tail = &c->next;
	mq->topo_dirty = true;
	pthread_mutex_unlock(&mq->mu);
	wake(mq);
	return 0;
}

static struct consumer *queue_consumer(struct cdr_mq *mq, const char *queue)
{
	struct consumer *c;

	for (c = mq->consumers; c; c = c->next) /* the loop alone appends: no lock to read */
		if (c->queue && strcmp(c->queue, queue) == 0)
			return c;
	return NULL;
}

static void set_cancel(struct cdr_mq *mq, struct consumer *c, bool cancel)
{
	c->loop_off = cancel;
	pthread_mutex_lock(&mq->mu);
	c->cancel = cancel;
	mq->topo_dirty = true;
	pthread_mutex_unlock(&mq->mu);
	wake(mq);
}

int cdr_mq_consume(struct cdr_mq *mq, const char *queue, cdr_mq_deliver_fn fn, void *arg)
{
	struct consumer *c;

	if (!mq || !name_ok(queue, false) || !fn)
		return -EINVAL;
	if ((c = queue_consumer(mq, queue))) {
		if (!c->loop_off)
			return -EALREADY;
		if (mq->closing)
			return -ECANCELED;
		c->fn = fn;
		c->arg = arg;
		set_cancel(mq, c, false);
		return 0;
	}
	return add_consumer(mq, queue, NULL, NULL, fn, arg);
}

int cdr_mq_cancel(struct cdr_mq *mq, const char *queue)
{
	struct consumer *c;

	if (!mq || !queue)
		return -EINVAL;
	if (!(c = queue_consumer(mq, queue)))
		return -ENOENT;
	if (!c->loop_off)
		set_cancel(mq, c, true);
	return 0;
}

int cdr_mq_subscribe(struct cdr_mq *mq, const char *exchange, const char *binding_key, cdr_mq_deliver_fn fn, void *arg)
{
	if (!mq || !name_ok(exchange, false) || !fn)
		return -EINVAL;
	if (!binding_key)
		binding_key = "";
	if (!name_ok(binding_key, true))
		return -EINVAL;
	return add_consumer(mq, NULL, exchange, binding_key, fn, arg);
}

static int settle_delivery(struct cdr_mq_delivery *pd, bool ack, bool requeue)
{
	struct delivery *d = (struct delivery *)pd;
	struct cdr_mq *mq;
	struct ackcmd *a;
	int r = 0;

	if (!d)
		return 0;
	mq = d->mq;
	if (d->live) {
		TAILQ_REMOVE(&mq->live, d, link);
		d->live = false;
	}
	if (mq && !mq->closing && d->consumer) {
		a = calloc(1, sizeof(*a));
		if (a) {
			a->gen = d->gen;
			a->tag = d->tag;
			a->ack = ack;
			a->requeue = requeue;
			pthread_mutex_lock(&mq->mu);
			*mq->acks_tail = a;
			mq->acks_tail = &a->next;
			pthread_mutex_unlock(&mq->mu);
			kick(mq);
		} else {
			r = -ENOMEM;
		}
	}
	delivery_free(d);
	return r;
}

int cdr_mq_ack(struct cdr_mq_delivery *d)
{
	return settle_delivery(d, true, false);
}

int cdr_mq_nack(struct cdr_mq_delivery *d, bool requeue)
{
	return settle_delivery(d, false, requeue);
}

/* Builds a pub from the arguments and queues it for the I/O thread. */
static int enqueue(struct cdr_mq *mq, const char *exchange, const char *routing_key, const struct cdr_mq_props *props,
		   const void *body, size_t len, cdr_mq_confirm_fn fn, void *arg, uint64_t rpc_id)
{
	static const struct cdr_mq_props none;
	struct pub *p;
	bool oom = false;

	if (!mq || !exchange || !routing_key || (len && !body) || strlen(exchange) > 255 || strlen(routing_key) > 255)
		return -EINVAL;
	if (mq->closing)
		return -ECANCELED;
	if (len > mq->max_body)
		return -EMSGSIZE;
	if (!props)
		props = &none;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->mq = mq;
	p->exchange = dup_opt(exchange, &oom);
	p->routing_key = dup_opt(routing_key, &oom);
	p->correlation_id = dup_opt(props->correlation_id, &oom);
	p->reply_to = dup_opt(props->reply_to, &oom);
	p->message_id = dup_opt(props->message_id, &oom);
	p->type = dup_opt(props->type, &oom);
	p->content_type = dup_opt(props->content_type, &oom);
	p->persistent = props->persistent;
	p->mandatory = props->mandatory;
	p->is_request = rpc_id != 0;
	p->rpc_id = rpc_id;
	p->fn = fn;
	p->arg = arg;
	p->seq = ++mq->next_seq;
	p->len = len;
	p->body = malloc(len ? len : 1);
	if (oom || !p->body) {
		pub_free(p);
		return -ENOMEM;
	}
	if (len)
		memcpy(p->body, body, len);
	pthread_mutex_lock(&mq->mu);
	if (mq->npending >= mq->max_pending) {
		pthread_mutex_unlock(&mq->mu);
		pub_free(p);
		return -ENOBUFS;
	}
	mq->npending++;
	TAILQ_INSERT_TAIL(&mq->outgoing, p, link);
	pthread_mutex_unlock(&mq->mu);
	kick(mq);
	return 0;
}

int cdr_mq_publish(struct cdr_mq *mq, const char *exchange, const char *routing_key, const struct cdr_mq_props *props,
		   const void *body, size_t len, cdr_mq_confirm_fn confirm_fn, void *arg)
{
	return enqueue(mq, exchange, routing_key, props, body, len, confirm_fn, arg, 0);
}

static void on_rpc_timeout(void *arg)
{
	struct rpc *rpc = arg;

	cdr_debug("mq %s: request %s timed out", rpc->mq->name, rpc->corr);
	rpc_finish(rpc, -ETIMEDOUT, NULL);
}

static int request(struct cdr_mq *mq, const char *exchange, const char *routing_key, const void *body, size_t len,
		   unsigned timeout_ms, bool persistent, cdr_mq_reply_fn reply_fn, void *arg)
{
	struct cdr_mq_props props = { .persistent = persistent, .mandatory = true };
	struct rpc *rpc;
	int r;

	if (!mq || !reply_fn || !timeout_ms)
		return -EINVAL;
	if (mq->closing)
		return -ECANCELED;
	rpc = calloc(1, sizeof(*rpc));
	if (!rpc)
		return -ENOMEM;
	rpc->mq = mq;
	rpc->id = ++mq->next_rpc_id;
	rpc->fn = reply_fn;
	rpc->arg = arg;
	snprintf(rpc->corr, sizeof(rpc->corr), "%s-%" PRIu64, mq->corr_prefix, rpc->id);
	r = cdr_timer_new(mq->loop, on_rpc_timeout, rpc, &rpc->timer);
	if (r < 0) {
		free(rpc);
		return r;
	}
	props.correlation_id = rpc->corr;
	r = enqueue(mq, exchange, routing_key, &props, body, len, NULL, NULL, rpc->id);
	if (r < 0) {
		cdr_timer_free(rpc->timer);
		free(rpc);
		return r;
	}
	TAILQ_INSERT_TAIL(&mq->rpcs, rpc, link);
	cdr_timer_start(rpc->timer, timeout_ms, false);
	return 0;
}

int cdr_mq_request(struct cdr_mq *mq, const char *exchange, const char *routing_key, const void *body, size_t len,
		   unsigned timeout_ms, cdr_mq_reply_fn reply_fn, void *arg)
{
	return request(mq, exchange, routing_key, body, len, timeout_ms, true, reply_fn, arg);
}

int cdr_mq_request_transient(struct cdr_mq *mq, const char *exchange, const char *routing_key, const void *body,
			     size_t len, unsigned timeout_ms, cdr_mq_reply_fn reply_fn, void *arg)
{
	return request(mq, exchange, routing_key, body, len, timeout_ms, false, reply_fn, arg);
}

int cdr_mq_reply(struct cdr_mq *mq, const struct cdr_mq_delivery *request, const void *body, size_t len,
		 cdr_mq_confirm_fn confirm_fn, void *arg)
{
	struct cdr_mq_props props = { 0 };

	if (!mq || !request || !request->reply_to || !*request->reply_to)
		return -EINVAL;
	props.correlation_id = request->correlation_id;
	return enqueue(mq, "", request->reply_to, &props, body, len, confirm_fn, arg, 0);
}
