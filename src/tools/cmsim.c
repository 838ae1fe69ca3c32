/* cmsim: a conference manager (CM) simulator and load generator, speaking
 * the real CM protocol (docs/protocol.md, section 5 and "CM <-> css") to css
 * on a platform's mau.conf.q, over the real broker (docs/cmsim.md).
 *
 * One process, one loop, one AMQP handle. Answers come to a private named
 * queue of cmsim's own (cdr_mq_declare_private_queue), consumed with
 * cdr_mq_consume, so that every answer is seen: a request answered twice is
 * counted, not hidden. Requests are paced by one loop timer; nothing here
 * sleeps. `watch` only listens: a private queue bound to the notification
 * exchanges, one JSON line per message. */
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>

#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define TICK_MS	       10      /* pacing timer */
#define MAX_COUNT      1000000 /* requests per run */
#define MAX_DOMAINS    64
#define MAX_RAW	       (4 * 1024 * 1024)
#define DEFAULT_LINGER 500 /* ms after the last answer, for late duplicates */
#define MAX_EXCHANGES  16  /* watch --exchange */

enum cmd { CMD_CREATE, CMD_END, CMD_LIST, CMD_QUERY, CMD_SEND, CMD_WATCH };

static const char *const cmd_names[] = { "create", "end", "list", "query", "send", "watch" };

/* The monotonic clock in µs (the ACK latency at finer grain than ms). */
static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* What became of one request. */
enum outcome { OUT_NONE, OUT_ACK, OUT_NACK, OUT_BAD };

struct req {
	char e164[CDR_MSG_E164_MAX + 1];
	uint64_t sent_ms;	     /* monotonic, when handed to cdr_mq_publish; 0 = not sent */
	uint32_t latency;	     /* ms, of the first answer */
	uint64_t sent_us;	     /* monotonic, in µs, with sent_ms */
	uint32_t latency_us;	     /* µs, of the first answer (bench/run.sh) */
	uint16_t answers;	     /* how many came */
	bool conflicting;	     /* a later answer differs from the first */
	uint64_t hash;		     /* FNV-1a of the first answer's bytes */
	uint8_t outcome;	     /* enum outcome, of the first answer */
	bool send_failed;	     /* refused by cdr_mq_publish or by the broker's confirm */
	uint8_t resent;		     /* sent again unanswered (--retry) */
	uint64_t last_sent_ms;	     /* monotonic, the last time it was sent */
	char *mcu, *room, *platform; /* of a create ACK */
	char *reason;		     /* of a NACK */
};

struct reason {
	char code[65];
	uint64_t count;
	char detail[160]; /* the first one seen, for the summary */
};

struct opts {
	enum cmd cmd;
	const char *platform, *amqp;
	const char *domains[MAX_DOMAINS];
	size_t ndomains;
	uint64_t count;
	double rate;
	const char *e164_start, *name, *resolution, *json_out, *from_json, *file;
	char e164_default[CDR_MSG_E164_MAX + 1];
	int64_t duration_min, max_participants;
	bool record, h265, raw_json, no_reply_to, quiet;
	uint64_t timeout_ms, linger_ms, retry_ms;
	bool linger_given;
	const char **e164s; /* end --e164, or from --from-json (then owned: e164_store) */
	size_t ne164s;
	json_t *e164_store; /* --from-json document, keeps the strings of e164s */
	/* watch */
	const char *out;		      /* --out FILE; NULL or "-": stdout */
	uint64_t duration_ms;		      /* --duration; 0 = until a signal */
	const char *exchanges[MAX_EXCHANGES]; /* --exchange; default rms.ntf.ex, pms.ntf.ex */
	size_t nexchanges;
};

struct sim {
	struct opts o;
	struct cdr_loop *loop;
	struct cdr_mq *mq;
	struct cdr_timer *tick, *progress, *deadline, *linger;
	char reply_q[128];
	char id_prefix[64]; /* "cmsim-<pid>-" */
	char url_shown[256];
	struct req *reqs;
	size_t nreqs;
	char *raw; /* send: the file's bytes */
	size_t raw_len;

	bool started, stopping, interrupted, connected_once, timed_out, down_warned;
	uint64_t start_ms, last_send_ms;
	size_t next;		 /* next request to send */
	size_t answered;	 /* requests with at least one answer */
	size_t send_failed;	 /* requests not sent or refused */
	size_t confirms_pending; /* published, not yet confirmed */
	uint64_t acked, nacked, bad, extra_answers, conflicting_answers, unknown_answers;
	struct reason *reasons;
	size_t nreasons;
	char *first_answer; /* list, query, send: the body of the one answer */
	/* watch */
	FILE *out;
	uint64_t watched;
	bool out_failed;
};

/* ---- small helpers ---- */

static const char *req_type(enum cmd c)
{
	switch (c) {
	case CMD_CREATE: return "cm_mau_createconf_req";
	case CMD_END: return "cm_mau_endconf_req";
	case CMD_LIST: return "cm_mau_listconf_req";
	case CMD_QUERY: return "cm_mau_queryconf_req";
	default: return "";
	}
}

static void req_id(const struct sim *s, size_t i, char *out, size_t len)
{
	snprintf(out, len, "%s%zu", s->id_prefix, i + 1);
}

/* The request an answer is for: by correlation_id, else envelope id; NULL
 * when neither is one of ours. */
static struct req *find_req(struct sim *s, const char *corr, const char *id)
{
	const char *keys[2] = { corr, id };
	size_t plen = strlen(s->id_prefix);

	for (int k = 0; k < 2; k++) {
		const char *v = keys[k];
		char *end;
		unsigned long long n;

		if (!v || strncmp(v, s->id_prefix, plen) != 0 || v[plen] < '1' || v[plen] > '9')
			continue;
		errno = 0;
		n = strtoull(v + plen, &end, 10);
		if (errno || *end || n < 1 || n > s->nreqs || !s->reqs[n - 1].sent_ms)
			continue;
		return &s->reqs[n - 1];
	}
	return NULL;
}

/* start + i, in decimal, keeping start's length (leading zeros too).
 * Returns false when that needs another digit. */
static bool e164_add(const char *start, uint64_t i, char *out, size_t len)
{
	size_t n = strlen(start);

	if (n + 1 > len)
		return false;
	memcpy(out, start, n + 1);
	for (size_t k = n; k-- > 0 && i;) {
		uint64_t d = (uint64_t)(out[k] - '0') + i % 10;

		i /= 10;
		if (d >= 10) {
			d -= 10;
			i++;
		}
		out[k] = (char)('0' + d);
	}
	return i == 0;
}

static void count_reason(struct sim *s, const char *code, const char *detail)
{
	struct reason *r = NULL, *v;

	for (size_t i = 0; i < s->nreasons; i++)
		if (strcmp(s->reasons[i].code, code) == 0)
			r = &s->reasons[i];
	if (!r) {
		if (!(v = realloc(s->reasons, (s->nreasons + 1) * sizeof(*v))))
			return;
		s->reasons = v;
		r = &v[s->nreasons++];
		memset(r, 0, sizeof(*r));
		snprintf(r->code, sizeof(r->code), "%s", code);
		snprintf(r->detail, sizeof(r->detail), "%s", detail ? detail : "");
	}
	r->count++;
}

static char *dup_or_null(const char *v)
{
	return v ? strdup(v) : NULL;
}

/* ---- finishing ---- */

static bool all_answered(const struct sim *s)
{
	return s->next == s->nreqs && s->answered + s->send_failed >= s->nreqs;
}

static void stop(struct sim *s)
{
	s->stopping = true;
	cdr_loop_stop(s->loop);
}

/* Every request sent: from now on, each answered or --timeout. */
static void check_done(struct sim *s)
{
	if (s->stopping || s->next < s->nreqs)
		return;
	/* Without reply_to no answer can come: done once the broker took it. */
	if (s->confirms_pending == 0 && (all_answered(s) || s->o.no_reply_to)) {
		if (!s->o.linger_ms) {
			stop(s);
		} else if (!cdr_timer_pending(s->linger)) {
			cdr_timer_start(s->linger, s->o.linger_ms, false);
			cdr_timer_stop(s->deadline);
		}
	}
}

static void on_linger(void *arg)
{
	stop(arg);
}

static void on_deadline(void *arg)
{
	struct sim *s = arg;

	s->timed_out = true;
	stop(s);
}

/* ---- answers ---- */

static void keep_create_ack(struct req *r, const struct cdr_msg *m)
{
	r->mcu = dup_or_null(cdr_msg_str(m, "mcu", NULL));
	r->room = dup_or_null(cdr_msg_str(m, "room", NULL));
	r->platform = dup_or_null(cdr_msg_str(m, "platform", NULL));
}

/* Classifies answer m (NULL: undecodable) to request r's type. */
static enum outcome classify(struct sim *s, const struct cdr_msg *m)
{
	char ack[96] = "", nack[96] = "";
	const char *type;

	if (!m)
		return OUT_BAD;
	type = cdr_msg_type(m);
	if (s->o.cmd == CMD_SEND) /* any answer: whatever the file said */
		return strstr(type, "_nack") ? OUT_NACK : OUT_ACK;
	cdr_msg_reply_type(req_type(s->o.cmd), true, ack, sizeof(ack));
	cdr_msg_reply_type(req_type(s->o.cmd), false, nack, sizeof(nack));
	if (strcmp(type, ack) == 0)
		return OUT_ACK;
	if (strcmp(type, nack) == 0 || strcmp(type, "mau_cm_request_nack") == 0)
		return OUT_NACK;
	return OUT_BAD;
}

static uint64_t fnv1a(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* What an answer says: its type and body (not its envelope ts), or its bytes
 * when unreadable. */
static uint64_t answer_hash(const struct cdr_msg *m, const struct cdr_mq_delivery *d)
{
	char *txt;
	uint64_t h;

	if (!m || !(txt = json_dumps(cdr_msg_body(m), JSON_COMPACT | JSON_SORT_KEYS)))
		return fnv1a(d->body, d->len);
	h = fnv1a(txt, strlen(txt)) ^ fnv1a(cdr_msg_type(m), strlen(cdr_msg_type(m)));
	free(txt);
	return h;
}

static void on_answer(struct cdr_mq_delivery *d, void *arg)
{
	struct sim *s = arg;
	struct cdr_msg_error err;
	struct cdr_msg *m = NULL;
	struct req *r;
	enum outcome out;

	if (cdr_msg_decode(d->body, d->len, 0, &m, &err) < 0) {
		m = NULL;
		r = find_req(s, d->correlation_id, err.id[0] ? err.id : NULL);
		if (!s->o.quiet)
			cdr_warn("malformed answer (correlation_id \"%s\"): %s: %s",
				 d->correlation_id ? d->correlation_id : "", cdr_msg_fault_name(err.fault), err.detail);
	} else {
		r = find_req(s, d->correlation_id, cdr_msg_id(m));
	}
	out = classify(s, m);
	if (out == OUT_BAD)
		s->bad++;
	if (!r) {
		s->unknown_answers++;
		cdr_debug("answer for no request of ours: correlation_id \"%s\"",
			  d->correlation_id ? d->correlation_id : "");
		goto out;
	}
	if (r->answers++ > 0) {
		bool same = answer_hash(m, d) == r->hash;

		s->extra_answers++;
		if (!same) {
			s->conflicting_answers++;
			r->conflicting = true;
		}
		if (!s->o.quiet)
			cdr_warn("request %s (e164 %s) answered again (%u answers): %s", d->correlation_id, r->e164,
				 r->answers, same ? "the same answer, repeated" : "a DIFFERENT answer");
		goto out;
	}
	r->hash = answer_hash(m, d);
	s->answered++;
	r->outcome = (uint8_t)out;
	r->latency = (uint32_t)(cdr_now_ms() - r->sent_ms);
	r->latency_us = (uint32_t)(now_us() - r->sent_us);
	if (out == OUT_ACK) {
		s->acked++;
		if (s->o.cmd == CMD_CREATE)
			keep_create_ack(r, m);
	} else if (out == OUT_NACK) {
		s->nacked++;
		count_reason(s, cdr_msg_str(m, "reason", "?"), cdr_msg_str(m, "detail", ""));
		r->reason = dup_or_null(cdr_msg_str(m, "reason", "?"));
	}
	if (s->nreqs == 1 && !s->first_answer)
		s->first_answer = strndup(d->body, d->len);
out:
	cdr_msg_free(m);
	cdr_mq_ack(d);
	check_done(s);
}

/* ---- sending ---- */

/* The process's one simulator (for confirm callbacks, whose arg is the
 * request). */
static struct sim *the_sim;

static void on_confirm(int status, void *arg)
{
	struct sim *s = the_sim;
	struct req *r = arg;

	s->confirms_pending--;
	if (status < 0 && status != -ECANCELED && !r->send_failed) {
		r->send_failed = true;
		if (!r->answers)
			s->send_failed++;
		if (!s->o.quiet)
			cdr_warn("request for %s refused by the broker: %s", r->e164[0] ? r->e164 : "-",
				 status == -EIO ? "nacked or unroutable" : strerror(-status));
	}
	check_done(s);
}

/* The body of request i. */
static json_t *req_body(struct sim *s, size_t i)
{
	const struct opts *o = &s->o;
	const struct req *r = &s->reqs[i];
	char name[300];
	json_t *b;

	switch (o->cmd) {
	case CMD_CREATE:
		if (o->name)
			snprintf(name, sizeof(name), "%s", o->name);
		else
			snprintf(name, sizeof(name), "cmsim %s", r->e164);
		b = json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:b}", "e164", r->e164, "name", name, "user_domain",
			      o->domains[i % o->ndomains], "duration_min", (json_int_t)o->duration_min, "h265", o->h265,
			      "resolution", o->resolution, "record", o->record);
		if (b && o->max_participants)
			json_object_set_new(b, "max_participants", json_integer(o->max_participants));
		return b;
	case CMD_LIST: return json_pack("{s:s}", "user_domain", o->domains[0]);
	default: return json_pack("{s:s}", "e164", r->e164);
	}
}

/* Publishes request i. Returns 0, -ENOBUFS (try again later) or another
 * error (the request is counted as not sent). */
static int send_one(struct sim *s, size_t i)
{
	struct req *r = &s->reqs[i];
	struct cdr_mq_props p = { .persistent = true, .mandatory = true };
	char id[96], *txt;
	size_t len;
	int ret;

	req_id(s, i, id, sizeof(id));
	p.correlation_id = id;
	p.message_id = id;
	p.reply_to = s->o.no_reply_to ? NULL : s->reply_q;
	if (s->o.cmd == CMD_SEND) {
		txt = s->raw;
		len = s->raw_len;
	} else {
		p.type = req_type(s->o.cmd);
		txt = cdr_msg_encode(p.type, id, "cm", 0, req_body(s, i));
		if (!txt)
			return -ENOMEM;
		len = strlen(txt);
	}
	if (!r->sent_ms) {
		r->sent_ms = s->last_send_ms = cdr_now_ms();
		r->sent_us = now_us();
	}
	r->last_sent_ms = cdr_now_ms();
	ret = cdr_mq_publish(s->mq, "", CDR_MQ_MAU_CONF_Q, &p, txt, len, on_confirm, r);
	if (txt != s->raw)
		free(txt);
	if (ret < 0 && !r->resent)
		r->sent_ms = 0;
	else if (ret == 0)
		s->confirms_pending++;
	return ret;
}

/* --retry: the requests sent, unanswered for retry_ms, sent again (at most
 * 3 times each), once a second. */
static void retry_unanswered(struct sim *s)
{
	uint64_t now = cdr_now_ms();
	size_t n = 0;

	if (!s->o.retry_ms || !s->started)
		return;
	for (size_t i = 0; i < s->next; i++) {
		struct req *r = &s->reqs[i];

		if (!r->sent_ms || r->send_failed || r->answers || r->resent >= 3 ||
		    now - r->last_sent_ms < s->o.retry_ms)
			continue;
		r->resent++;
		if (send_one(s, i) == 0)
			n++;
	}
	if (n && !s->o.quiet)
		cdr_warn("%zu requests unanswered for %" PRIu64 " s: sent again (same id)", n, s->o.retry_ms / 1000);
}

static void all_sent(struct sim *s)
{
	cdr_timer_stop(s->tick);
	cdr_timer_start(s->deadline, s->o.timeout_ms, false);
	check_done(s);
}

/* The pacing timer: sends what is due by now at --rate. */
static void on_tick(void *arg)
{
	struct sim *s = arg;
	uint64_t elapsed = cdr_now_ms() - s->start_ms;
	double due_d = s->o.rate * (double)elapsed / 1000.0 + 1.0;
	size_t due = due_d >= (double)s->nreqs ? s->nreqs : (size_t)due_d;

	while (s->next < due) {
		int r = send_one(s, s->next);

		if (r == -ENOBUFS) /* too many unconfirmed: the next tick */
			return;
		if (r < 0) {
			s->reqs[s->next].send_failed = true;
			s->send_failed++;
			if (!s->o.quiet)
				cdr_warn("request %zu not sent: %s", s->next + 1, strerror(-r));
		}
		s->next++;
	}
	if (s->next == s->nreqs)
		all_sent(s);
}

static void on_progress(void *arg)
{
	struct sim *s = arg;
	uint64_t elapsed = (cdr_now_ms() - s->start_ms + 50) / 100 * 100; /* rounded to tenths */

	retry_unanswered(s);
	if (!s->started || s->o.quiet || s->nreqs < 2)
		return;
	fprintf(stderr,
		"cmsim: %3" PRIu64 ".%01" PRIu64 " s: sent %zu/%zu, answered %zu (acked %" PRIu64 ", nacked %" PRIu64
		"), waiting %zu\n",
		elapsed / 1000, elapsed % 1000 / 100, s->next - s->send_failed, s->nreqs, s->answered, s->acked,
		s->nacked, s->next - s->send_failed - s->answered);
}

static void on_mq_state(bool up, const char *why, void *arg)
{
	struct sim *s = arg;

	if (!up) {
		/* The first failure of a streak is worth a warning, the rest not. */
		if (!s->stopping && !s->down_warned)
			cdr_warn("AMQP down: %s%s", why,
				 s->started ? "; answers sent meanwhile to our reply queue are lost" : "");
		else
			cdr_debug("AMQP down: %s", why);
		s->down_warned = true;
		return;
	}
	s->down_warned = false;
	cdr_debug("AMQP up: %s", why);
	if (s->started)
		return;
	/* Requests start once the reply queue is in place, so that the
	 * latencies are css's and not the connection's. */
	s->started = true;
	s->connected_once = true;
	s->start_ms = cdr_now_ms();
	cdr_timer_stop(s->deadline);
	cdr_timer_start(s->tick, TICK_MS, true);
	cdr_timer_start(s->progress, 1000, true);
	on_tick(s);
}

static void on_signal(int signo, void *arg)
{
	struct sim *s = arg;

	cdr_notice("%s: stopping", strsignal(signo));
	s->interrupted = true;
	stop(s);
}

/* ---- watch ---- */

/* One line per message: {"ts_ms", "exchange", "type", "src", "id", "body"}
 * (the envelope's body; a message that is not a JSON envelope comes whole
 * under "body", or as text under "raw"). Flushed at once: a reader tailing
 * the file sees each message as it came. */
static void on_watched(struct cdr_mq_delivery *d, void *arg)
{
	struct sim *s = arg;
	json_t *doc = json_loadb(d->body, d->len, 0, NULL), *line, *body = NULL;
	const char *type = d->type, *src = NULL, *id = NULL;
	char *txt;

	line = json_pack("{s:I, s:s}", "ts_ms", (json_int_t)cdr_wall_ms(), "exchange", d->exchange ? d->exchange : "");
	if (json_is_object(doc)) {
		json_t *b = json_object_get(doc, "body");

		if (!type || !*type)
			type = json_string_value(json_object_get(doc, "type"));
		src = json_string_value(json_object_get(doc, "src"));
		id = json_string_value(json_object_get(doc, "id"));
		body = json_is_object(b) ? b : doc;
	}
	if (line) {
		json_object_set_new(line, "type", type ? json_string(type) : json_null());
		json_object_set_new(line, "src", src ? json_string(src) : json_null());
		json_object_set_new(line, "id", id ? json_string(id) : json_null());
		if (body)
			json_object_set(line, "body", body); /* borrowed from doc: a new reference */
		else
			json_object_set_new(line, "raw", json_stringn(d->body, d->len)); /* NULL if not UTF-8 */
	}
	txt = line ? json_dumps(line, JSON_COMPACT) : NULL;
	if (!txt || fprintf(s->out, "%s\n", txt) < 0 || fflush(s->out) != 0) {
		if (!s->out_failed)
			fprintf(stderr, "cmsim: cannot write a watched message%s\n",
				txt ? " (output closed or full?)" : " (out of memory)");
		s->out_failed = true;
	} else {
		s->watched++;
	}
	free(txt);
	json_decref(line);
	json_decref(doc);
	cdr_mq_ack(d);
}

static void on_watch_state(bool up, const char *why, void *arg)
{
	struct sim *s = arg;

	if (!up) {
		if (!s->stopping && !s->down_warned)
			cdr_warn("AMQP down: %s; notifications sent meanwhile are missed", why);
		s->down_warned = true;
		return;
	}
	s->down_warned = false;
	if (s->connected_once)
		return;
	/* The queue, its bindings and the consumer are in place (cdr_mq's
	 * on_state contract): a reader may now cause what it waits to see. */
	s->connected_once = true;
	cdr_timer_stop(s->deadline);
	if (s->o.duration_ms)
		cdr_timer_start(s->linger, s->o.duration_ms, false);
	if (!s->o.quiet) {
		fprintf(stderr, "cmsim: watching");
		for (size_t i = 0; i < s->o.nexchanges; i++)
			fprintf(stderr, "%s%s", i ? ", " : " ", s->o.exchanges[i]);
		fprintf(stderr, " on %s: subscribed\n", s->url_shown);
	}
}

/* The AMQP handle for url (s->url_shown: without the password). Returns 0
 * or an exit code (the reason printed). */
static int open_broker(struct sim *s, const char *url, const char *name, cdr_mq_state_fn on_state)
{
	struct cdr_mq_opts mo = {
		.url = url,
		.name = name,
		.reconnect_min_ms = 200,
		.reconnect_max_ms = 2000,
		.prefetch = 1000,
		.on_state = on_state,
		.arg = s,
	};

	return cli_broker_open(s->loop, &mo, &s->mq, s->url_shown, sizeof(s->url_shown));
}

/* The broker's handle for watch: the design topology (so the exchanges
 * exist), a private queue bound to each exchange, its consumer. */
static int start_watch(struct sim *s, const char *url)
{
	int r;

	if (!s->o.out || strcmp(s->o.out, "-") == 0) {
		s->out = stdout;
	} else if (!(s->out = fopen(s->o.out, "w"))) {
		fprintf(stderr, "cmsim: --out %s: %s\n", s->o.out, strerror(errno));
		return EX_USAGE;
	}
	if ((r = open_broker(s, url, "cmsim-watch", on_watch_state)))
		return r;
	snprintf(s->reply_q, sizeof(s->reply_q), "cmsim.watch.%ld.%" PRIu64, (long)getpid(), cdr_wall_ms());
	/* the design is the daemons' to declare (docs/security.md) */
	if ((r = cdr_mq_declare_private_queue(s->mq, s->reply_q)) < 0)
		goto fail;
	for (size_t i = 0; i < s->o.nexchanges; i++)
		if ((r = cdr_mq_bind(s->mq, s->reply_q, s->o.exchanges[i], "")) < 0)
			goto fail;
	if ((r = cdr_mq_consume(s->mq, s->reply_q, on_watched, s)) < 0 ||
	    (r = cdr_timer_new(s->loop, on_deadline, s, &s->deadline)) < 0 ||
	    (r = cdr_timer_new(s->loop, on_linger, s, &s->linger)) < 0)
		goto fail;
	cdr_timer_start(s->deadline, s->o.timeout_ms, false);
	return 0;
fail:
	fprintf(stderr, "cmsim: cannot set up: %s\n", strerror(-r));
	return EX_SOFTWARE;
}

/* ---- the summary ---- */

struct summary {
	size_t sent, unanswered, twice, conflicting, bad;
	uint64_t elapsed_ms;
	bool have_lat;
	uint32_t p50, p90, p99, max;
	uint32_t p50_us, p90_us, p99_us, max_us;
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least p % at or below it. */
static uint32_t pct(const uint32_t *v, size_t n, unsigned p)
{
	size_t k = (n * p + 99) / 100;

	return v[k ? k - 1 : 0];
}

static void summarize(struct sim *s, struct summary *m)
{
	uint32_t *lat = calloc(s->nreqs, sizeof(*lat)), *lat_us = calloc(s->nreqs, sizeof(*lat_us));
	size_t nlat = 0;

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < s->nreqs; i++) {
		const struct req *r = &s->reqs[i];

		if (!r->sent_ms || r->send_failed) {
			if (r->answers > 1)
				m->twice++;
			continue;
		}
		m->sent++;
		if (!r->answers)
			m->unanswered++;
		if (r->answers > 1)
			m->twice++;
		if (r->conflicting)
			m->conflicting++;
		if (r->answers && r->outcome == OUT_BAD)
			m->bad++;
		if (r->answers && r->outcome == OUT_ACK && lat && lat_us) {
			lat_us[nlat] = r->latency_us;
			lat[nlat++] = r->latency;
		}
	}
	if (nlat) {
		qsort(lat, nlat, sizeof(*lat), cmp_u32);
		m->have_lat = true;
		m->p50 = pct(lat, nlat, 50);
		m->p90 = pct(lat, nlat, 90);
		m->p99 = pct(lat, nlat, 99);
		m->max = lat[nlat - 1];
		qsort(lat_us, nlat, sizeof(*lat_us), cmp_u32);
		m->p50_us = pct(lat_us, nlat, 50);
		m->p90_us = pct(lat_us, nlat, 90);
		m->p99_us = pct(lat_us, nlat, 99);
		m->max_us = lat_us[nlat - 1];
	}
	free(lat);
	free(lat_us);
	m->elapsed_ms = s->started ? cdr_now_ms() - s->start_ms : 0;
}

static void print_summary(struct sim *s, const struct summary *m, FILE *f)
{
	double secs = (double)(s->last_send_ms > s->start_ms ? s->last_send_ms - s->start_ms : 0) / 1000.0;

	fprintf(f, "cmsim %s on %s (%s): %zu requests at %g/s, sent in %.1f s, %.1f s in all%s%s\n",
		cmd_names[s->o.cmd], s->o.platform, s->url_shown, s->nreqs, s->o.rate, secs,
		(double)m->elapsed_ms / 1000.0, s->interrupted ? " (interrupted)" : "",
		s->timed_out ? " (timed out)" : "");
	fprintf(f, "  sent             %zu\n", m->sent);
	if (s->send_failed)
		fprintf(f, "  not sent         %zu (refused by the client or the broker)\n", s->send_failed);
	if (s->next < s->nreqs)
		fprintf(f, "  never sent       %zu (stopped first)\n", s->nreqs - s->next);
	fprintf(f, "  acked            %" PRIu64 "\n", s->acked);
	fprintf(f, "  nacked           %" PRIu64 "\n", s->nacked);
	for (size_t i = 0; i < s->nreasons; i++)
		fprintf(f, "    %-20s %" PRIu64 "  (e.g. \"%s\")\n", s->reasons[i].code, s->reasons[i].count,
			s->reasons[i].detail);
	fprintf(f, "  unanswered       %zu\n", m->unanswered);
	fprintf(f, "  answered twice   %zu (%" PRIu64 " extra answers, %zu of the requests with a different one)\n",
		m->twice, s->extra_answers, m->conflicting);
	fprintf(f, "  malformed        %" PRIu64 " answers (unreadable or of an unexpected type)\n", s->bad);
	fprintf(f, "  unknown answers  %" PRIu64 " (for no request of this run)\n", s->unknown_answers);
	if (m->have_lat)
		fprintf(f, "  ack latency ms   p50 %" PRIu32 "  p90 %" PRIu32 "  p99 %" PRIu32 "  max %" PRIu32 "\n",
			m->p50, m->p90, m->p99, m->max);
	else
		fprintf(f, "  ack latency ms   - (no ACK)\n");
}

static json_t *summary_json(struct sim *s, const struct summary *m)
{
	static const char *const answer_names[] = { NULL, "ack", "nack", "malformed" };
	json_t *reasons = json_object(), *confs = json_array(), *unanswered = json_array(), *history = json_array();
	json_t *lat, *doc;

	for (size_t i = 0; i < s->nreasons; i++)
		json_object_set_new(reasons, s->reasons[i].code, json_integer((json_int_t)s->reasons[i].count));
	for (size_t i = 0; i < s->nreqs; i++) {
		const struct req *r = &s->reqs[i];

		if (r->sent_ms && !r->send_failed && !r->answers)
			json_array_append_new(unanswered, json_string(r->e164));
		if (r->sent_ms)
			json_array_append_new(history,
					      json_pack("{s:s, s:I, s:b, s:s?, s:s?, s:s?, s:i, s:b, s:i}", "e164",
							r->e164, "sent_ms", (json_int_t)(r->sent_ms - s->start_ms),
							"sent", !r->send_failed, "answer",
							r->answers ? answer_names[r->outcome] : NULL, "reason",
							r->reason, "mcu", r->mcu, "answers", (int)r->answers, "differs",
							r->conflicting, "resent", (int)r->resent));
		if (!r->answers || r->outcome != OUT_ACK || !r->e164[0])
			continue;
		if (s->o.cmd == CMD_CREATE)
			json_array_append_new(confs, json_pack("{s:s, s:s?, s:s?, s:s?}", "e164", r->e164, "mcu",
							       r->mcu, "room", r->room, "platform", r->platform));
		else
			json_array_append_new(confs, json_pack("{s:s}", "e164", r->e164));
	}
	lat = m->have_lat ? json_pack("{s:i, s:i, s:i, s:i}", "p50", (int)m->p50, "p90", (int)m->p90, "p99",
				      (int)m->p99, "max", (int)m->max)
			  : json_null();
	/* "o" steals reasons, lat, confs and unanswered. */
	doc = json_pack("{s:s, s:s, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:o, s:I, s:b, s:b, "
			"s:o, s:o}",
			"command", cmd_names[s->o.cmd], "platform", s->o.platform, "requests", (json_int_t)s->nreqs,
			"rate", s->o.rate, "sent", (json_int_t)m->sent, "not_sent",
			(json_int_t)(s->send_failed + (s->nreqs - s->next)), "acked", (json_int_t)s->acked, "nacked",
			(json_int_t)s->nacked, "malformed", (json_int_t)s->bad, "nack_reasons", reasons, "unanswered",
			(json_int_t)m->unanswered, "answered_twice", (json_int_t)m->twice, "extra_answers",
			(json_int_t)s->extra_answers, "unknown_answers", (json_int_t)s->unknown_answers,
			"ack_latency_ms", lat, "elapsed_ms", (json_int_t)m->elapsed_ms, "timed_out", s->timed_out,
			"interrupted", s->interrupted, "confs", confs, "unanswered_e164s", unanswered);
	if (doc) {
		json_object_set_new(doc, "answered_differently", json_integer((json_int_t)m->conflicting));
		json_object_set_new(doc, "ack_latency_us",
				    m->have_lat
					    ? json_pack("{s:i, s:i, s:i, s:i}", "p50", (int)m->p50_us, "p90",
							(int)m->p90_us, "p99", (int)m->p99_us, "max", (int)m->max_us)
					    : json_null());
		json_object_set_new(doc, "history", history);
	} else {
		json_decref(history);
	}
	return doc;
}

static int write_json(const char *path, json_t *doc)
{
	int r;

	if (!doc)
		return -ENOMEM;
	if (strcmp(path, "-") == 0) {
		r = json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	} else {
		r = json_dump_file(doc, path, JSON_INDENT(2));
	}
	return r == 0 ? 0 : -EIO;
}

/* ---- list, query, send: the one answer ---- */

/* Prints the answer of list or query, or its refusal. Returns the exit
 * code. */
static int print_answer(struct sim *s)
{
	json_t *env = json_loads(s->first_answer, 0, NULL), *body = json_object_get(env, "body"), *c;
	const char *type = json_string_value(json_object_get(env, "type"));
	int ret = 0;
	size_t i;

	if (!type || !json_is_object(body)) {
		fprintf(stderr, "cmsim: unreadable answer: %s\n", s->first_answer);
		ret = EX_FAIL;
	} else if (strstr(type, "_nack")) {
		fprintf(stderr, "cmsim: css of %s refused: %s: %s\n", s->o.platform, cli_jstr(body, "reason"),
			cli_jstr(body, "detail"));
		ret = EX_FAIL;
	} else if (s->o.raw_json) {
		cli_print_json(body, "{}");
	} else if (s->o.cmd == CMD_LIST) {
		printf("%-16s %-16s %-20s %-10s %-8s %-20s %s\n", "E164", "STATE", "MCU", "ROOM", "HOST", "PLANNED END",
		       "NAME");
		json_array_foreach(json_object_get(body, "confs"), i, c)
		{
			char end[32];

			cli_fmt_time(json_integer_value(json_object_get(c, "planned_end")), end, sizeof(end));
			printf("%-16s %-16s %-20s %-10s %-8s %-20s %s\n", cli_jstr(c, "e164"), cli_jstr(c, "state"),
			       cli_jstr(c, "mcu"), cli_jstr(c, "room"), cli_jstr(c, "host_platform"), end,
			       cli_jstr(c, "name"));
		}
		printf("(%zu conferences of %s)\n", json_array_size(json_object_get(body, "confs")), s->o.domains[0]);
	} else {
		const char *key;
		json_t *v;

		json_object_foreach(json_object_get(body, "conf"), key, v)
		{
			char *txt = json_dumps(v, JSON_ENCODE_ANY);
			char when[32];

			if (strcmp(key, "start") == 0 || strcmp(key, "planned_end") == 0) {
				cli_fmt_time(json_integer_value(v), when, sizeof(when));
				printf("%-14s %s (%s)\n", key, txt ? txt : "?", when);
			} else {
				printf("%-14s %s\n", key, json_is_string(v) ? json_string_value(v) : txt ? txt : "?");
			}
			free(txt);
		}
	}
	json_decref(env);
	return ret;
}

/* The outcome of list, query or send. */
static int finish_one(struct sim *s)
{
	const struct req *r = &s->reqs[0];

	if (s->o.cmd == CMD_SEND && s->o.no_reply_to) {
		if (r->send_failed || !r->sent_ms) {
			fprintf(stderr, "cmsim: the broker did not take the message\n");
			return EX_FAIL;
		}
		printf("sent %zu bytes without reply_to: no answer can come (a refused message goes to %s)\n",
		       s->raw_len, CDR_MQ_DEAD_Q);
		return r->answers ? EX_FAIL : 0;
	}
	if (!r->answers) {
		fprintf(stderr, "cmsim: no answer from css of %s within %.1f s\n", s->o.platform,
			(double)s->o.timeout_ms / 1000.0);
		return EX_FAIL;
	}
	if (s->o.cmd == CMD_SEND) {
		printf("%s\n", s->first_answer);
		if (r->answers > 1)
			fprintf(stderr, "cmsim: answered %u times\n", r->answers);
		return r->answers == 1 && r->outcome != OUT_BAD ? 0 : EX_FAIL;
	}
	return print_answer(s);
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cmsim create --platform P --domain UD [--domain UD2 ...] [--count N] [--rate R] [options]\n"
		"       cmsim end --platform P (--e164 X [--e164 Y ...] | --from-json FILE) [--rate R] [options]\n"
		"       cmsim list --platform P --domain UD [--json]\n"
		"       cmsim query --platform P --e164 X [--json]\n"
		"       cmsim send --platform P --file FILE [--no-reply-to]\n"
		"       cmsim watch --platform P [--out FILE] [--duration S] [--exchange EX ...]\n"
		"\n"
		"Plays the conference manager (CM) against css: requests to mau.conf.q of platform P's broker\n"
		"(default exchange, application/json, persistent, mandatory, correlation_id = request id,\n"
		"reply_to = cmsim's own private queue), every answer counted (docs/cmsim.md).\n"
		"\n"
		"Commands:\n"
		"  create   N cm_mau_createconf_req at R per second, round-robin over the domains\n"
		"  end      cm_mau_endconf_req for each E164 (--e164, or the \"confs\" of a create's --json)\n"
		"  list     one cm_mau_listconf_req: the domain's conferences as a table (--json: the body)\n"
		"  query    one cm_mau_queryconf_req: the conference's record (--json: the body)\n"
		"  send     the bytes of FILE as they are (malformed-request tests); prints the one answer\n"
		"  watch    listens to rms.ntf.ex and pms.ntf.ex of P's broker: one JSON line per message,\n"
		"           {\"ts_ms\", \"exchange\", \"type\", \"src\", \"id\", \"body\"}, until SIGTERM/SIGINT\n"
		"\n"
		"Common options:\n"
		"  --platform P          platform whose css is asked (required)\n"
		"  --amqp URL            its broker, amqp://user[:pass]@host:port/vhost (default\n"
		"                        $CONFDR_<P>_AMQP_URL_CM (watch: _OPS), then $CONFDR_<P>_AMQP_URL, P\n"
		"                        upper-cased and '-' as '_', then $CONFDR_AMQP_URL); without a password\n"
		"                        in it, the password is read from $CONFDR_AMQP_SECRETS/amqp-USER.password\n"
		"                        if that exists, else from the file $CONFDR_AMQP_PASSWORD_FILE\n"
		"  --tls-ca FILE         CA bundle that signed the broker's certificate, for an amqps URL\n"
		"                        (default $CONFDR_TLS_CA)\n"
		"  --timeout S           seconds to wait for the broker, and for answers after the last request,\n"
		"                        1..3600 (default 30; 10 for list, query and send)\n"
		"  -q, --quiet           no progress lines and no warnings on stderr\n"
		"  -v, --verbose         debug logs\n"
		"  -h, --help            this text\n"
		"\n"
		"create:\n"
		"  --domain UD           user domain; repeat for several (round-robin), at most %d (required)\n"
		"  --count N             requests, 1..%d (default 1)\n"
		"  --rate R              requests per second, 0.01..100000 (default 10)\n"
		"  --e164-start DIGITS   first E164 (3..32 digits; then +1 each, same length); default from the\n"
		"                        clock (15 digits: two runs one after the other do not collide)\n"
		"  --duration-min M      duration_min, 1..1440 (default 60)\n"
		"  --name TEXT           conference name, 1..256 bytes (default \"cmsim <e164>\")\n"
		"  --record              record: true (a VRS)\n"
		"  --h265                h265: true\n"
		"  --resolution RES      360p, 480p, 720p, 1080p or 4k (default 720p)\n"
		"  --max-participants N  2..10000 (default: not sent, css takes 16)\n"
		"  --json FILE           the summary and the acked conferences as JSON to FILE ('-': stdout, the\n"
		"                        text summary then goes to stderr)\n"
		"  --linger MS           after the last answer, wait MS for late duplicates, 0..60000 (default 500)\n"
		"  --retry S             a request unanswered S seconds after it was sent is sent again, the same\n"
		"                        (id, body): as a CM does after its answer was lost (a reply queue gone\n"
		"                        with a broker restart); at most 3 times; 0..3600 (default 0: never)\n"
		"end: --e164 X (repeatable), --from-json FILE, --rate R, --json FILE, --linger MS, --retry S as\n"
		"     above\n"
		"list: --domain UD (one), --json\n"
		"query: --e164 X (one), --json\n"
		"send: --file FILE (at most 4 MiB), --no-reply-to (then no answer can come: css dead-letters a\n"
		"      refused message)\n"
		"watch:\n"
		"  --out FILE            the lines to FILE (truncated first; flushed per line), '-' stdout (default)\n"
		"  --duration S          stop after S seconds, 0..31536000 (default 0: until SIGTERM/SIGINT)\n"
		"  --exchange EX         a fanout exchange to listen to, instead of rms.ntf.ex and pms.ntf.ex;\n"
		"                        repeat for several, at most %d\n"
		"  ts_ms is the wall clock (ms since the Unix epoch) when the message came; \"body\" is the\n"
		"  envelope's body (\"raw\" text instead when the message is not JSON). Once the private queue\n"
		"  is bound, \"cmsim: watching ...: subscribed\" goes to stderr (not with -q); --timeout bounds\n"
		"  the wait for the broker (exit 69), later losses are re-connected (messages meanwhile missed).\n"
		"\n"
		"Output (create, end): sent, acked, nacked with a count per reason, unanswered, answered twice,\n"
		"malformed answers, answers for unknown requests, ACK latency p50/p90/p99/max in ms; a progress\n"
		"line on stderr every second.\n"
		"Exit status: 0 every request sent and answered exactly once with an ACK or a NACK (list, query:\n"
		"an ACK; send: one answer, or taken by the broker with --no-reply-to); 1 otherwise (unanswered,\n"
		"answered twice, malformed, not sent, interrupted; list or query refused); 64 bad usage or input\n"
		"file; 69 no broker (none given, or not reachable within --timeout); 70 internal error.\n"
		"watch: 0 when stopped by a signal or --duration, 1 when a line could not be written.\n",
		MAX_DOMAINS, MAX_COUNT, MAX_EXCHANGES);
}

enum {
	O_PLATFORM = 256,
	O_AMQP,
	O_TLS_CA,
	O_TIMEOUT,
	O_DOMAIN,
	O_COUNT,
	O_RATE,
	O_E164_START,
	O_DURATION,
	O_NAME,
	O_RECORD,
	O_H265,
	O_RESOLUTION,
	O_MAXP,
	O_JSON,
	O_LINGER,
	O_RETRY,
	O_E164,
	O_FROM_JSON,
	O_FILE,
	O_NO_REPLY_TO,
	O_OUT,
	O_WATCH_DURATION,
	O_EXCHANGE,
};

/* Which command takes which option. */
#define C_CREATE (1u << CMD_CREATE)
#define C_END	 (1u << CMD_END)
#define C_LIST	 (1u << CMD_LIST)
#define C_QUERY	 (1u << CMD_QUERY)
#define C_SEND	 (1u << CMD_SEND)
#define C_WATCH	 (1u << CMD_WATCH)
#define C_ALL	 (C_CREATE | C_END | C_LIST | C_QUERY | C_SEND | C_WATCH)

static const struct {
	int id;
	unsigned cmds;
} opt_cmds[] = {
	{ O_PLATFORM, C_ALL },
	{ O_AMQP, C_ALL },
	{ O_TLS_CA, C_ALL },
	{ O_TIMEOUT, C_ALL },
	{ O_DOMAIN, C_CREATE | C_LIST },
	{ O_COUNT, C_CREATE },
	{ O_RATE, C_CREATE | C_END },
	{ O_E164_START, C_CREATE },
	{ O_DURATION, C_CREATE },
	{ O_NAME, C_CREATE },
	{ O_RECORD, C_CREATE },
	{ O_H265, C_CREATE },
	{ O_RESOLUTION, C_CREATE },
	{ O_MAXP, C_CREATE },
	{ O_JSON, C_CREATE | C_END | C_LIST | C_QUERY },
	{ O_LINGER, C_CREATE | C_END },
	{ O_E164, C_END | C_QUERY },
	{ O_RETRY, C_CREATE | C_END },
	{ O_FROM_JSON, C_END },
	{ O_FILE, C_SEND },
	{ O_NO_REPLY_TO, C_SEND },
	{ O_OUT, C_WATCH },
	{ O_WATCH_DURATION, C_WATCH },
	{ O_EXCHANGE, C_WATCH },
};

static bool opt_allowed(int id, enum cmd c)
{
	for (size_t i = 0; i < sizeof(opt_cmds) / sizeof(opt_cmds[0]); i++)
		if (opt_cmds[i].id == id)
			return opt_cmds[i].cmds & (1u << c);
	return true;
}

/* Reads the "confs" of a create's --json output into o->e164s. */
static int load_from_json(struct opts *o)
{
	json_error_t jerr;
	json_t *doc = json_load_file(o->from_json, 0, &jerr), *confs, *c;
	size_t i;

	if (!doc)
		return cli_usage_error("--from-json %s: %s (line %d)", o->from_json, jerr.text, jerr.line);
	confs = json_object_get(doc, "confs");
	if (!json_is_array(confs)) {
		json_decref(doc);
		return cli_usage_error("--from-json %s: no \"confs\" array (the output of cmsim create --json)",
				       o->from_json);
	}
	o->e164_store = doc;
	o->e164s = calloc(json_array_size(confs) + o->ne164s + 1, sizeof(*o->e164s));
	if (!o->e164s)
		return EX_SOFTWARE;
	json_array_foreach(confs, i, c)
	{
		const char *e = json_string_value(json_object_get(c, "e164"));

		if (!e || !cli_e164_ok(e))
			return cli_usage_error("--from-json %s: confs[%zu].e164 is not an E164 of 3..32 digits",
					       o->from_json, i);
		o->e164s[o->ne164s++] = e;
	}
	return 0;
}

/* Returns 0, or an exit code (usage printed); -1 for --help (done). */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "platform", required_argument, NULL, O_PLATFORM },
		{ "amqp", required_argument, NULL, O_AMQP },
		{ "tls-ca", required_argument, NULL, O_TLS_CA },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "domain", required_argument, NULL, O_DOMAIN },
		{ "count", required_argument, NULL, O_COUNT },
		{ "rate", required_argument, NULL, O_RATE },
		{ "e164-start", required_argument, NULL, O_E164_START },
		{ "duration-min", required_argument, NULL, O_DURATION },
		{ "name", required_argument, NULL, O_NAME },
		{ "record", no_argument, NULL, O_RECORD },
		{ "h265", no_argument, NULL, O_H265 },
		{ "resolution", required_argument, NULL, O_RESOLUTION },
		{ "max-participants", required_argument, NULL, O_MAXP },
		{ "json", required_argument, NULL, O_JSON },
		{ "linger", required_argument, NULL, O_LINGER },
		{ "retry", required_argument, NULL, O_RETRY },
		{ "e164", required_argument, NULL, O_E164 },
		{ "from-json", required_argument, NULL, O_FROM_JSON },
		{ "file", required_argument, NULL, O_FILE },
		{ "no-reply-to", no_argument, NULL, O_NO_REPLY_TO },
		{ "out", required_argument, NULL, O_OUT },
		{ "duration", required_argument, NULL, O_WATCH_DURATION },
		{ "exchange", required_argument, NULL, O_EXCHANGE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct option flag_opts[sizeof(lopts) / sizeof(lopts[0])];
	static const char *const resolutions[] = { "360p", "480p", "720p", "1080p", "4k", NULL };
	bool verbose = false, timeout_given = false;
	uint64_t v;
	int opt, c;
	size_t ne = 0;

	if (argc < 2)
		return cli_usage_error("no command (create, end, list, query, send or watch)");
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return -1;
	}
	for (c = 0; c <= CMD_WATCH && strcmp(argv[1], cmd_names[c]) != 0; c++)
		;
	if (c > CMD_WATCH)
		return cli_usage_error("unknown command \"%s\" (create, end, list, query, send or watch)", argv[1]);
	*o = (struct opts){
		.cmd = (enum cmd)c,
		.count = 1,
		.rate = 10,
		.duration_min = 60,
		.resolution = "720p",
		.timeout_ms = 30000,
		.linger_ms = DEFAULT_LINGER,
	};
	/* list and query take --json as a flag. */
	memcpy(flag_opts, lopts, sizeof(lopts));
	for (size_t i = 0; flag_opts[i].name; i++)
		if (flag_opts[i].val == O_JSON && (o->cmd == CMD_LIST || o->cmd == CMD_QUERY))
			flag_opts[i].has_arg = no_argument;
	o->e164s = calloc((size_t)argc, sizeof(*o->e164s));
	if (!o->e164s)
		return EX_SOFTWARE;

	optind = 2;
	for (;;) {
		int idx = 0;

		if ((opt = getopt_long(argc, argv, "qvh", flag_opts, &idx)) == -1)
			break;
		if (opt >= O_PLATFORM && !opt_allowed(opt, o->cmd))
			return cli_usage_error("%s does not take --%s", cmd_names[o->cmd], flag_opts[idx].name);
		switch (opt) {
		case O_PLATFORM: o->platform = optarg; break;
		case O_AMQP: o->amqp = optarg; break;
		case O_TLS_CA: cli_set_tls_ca(optarg); break;
		case O_TIMEOUT:
			if (!cli_parse_uint(optarg, 1, 3600, &v))
				return cli_usage_error("--timeout wants seconds (1..3600), not \"%s\"", optarg);
			o->timeout_ms = v * 1000;
			timeout_given = true;
			break;
		case O_DOMAIN:
			if (!cli_id_ok(optarg))
				return cli_usage_error(
					"--domain wants a user domain id (letters, digits, '.', '_', '-'; "
					"1..%d bytes), not \"%s\"",
					CLI_MAX_ID, optarg);
			if (o->ndomains == MAX_DOMAINS || (o->cmd == CMD_LIST && o->ndomains == 1))
				return cli_usage_error("too many --domain (%s takes at most %d)", cmd_names[o->cmd],
						       o->cmd == CMD_LIST ? 1 : MAX_DOMAINS);
			o->domains[o->ndomains++] = optarg;
			break;
		case O_COUNT:
			if (!cli_parse_uint(optarg, 1, MAX_COUNT, &o->count))
				return cli_usage_error("--count wants 1..%d, not \"%s\"", MAX_COUNT, optarg);
			break;
		case O_RATE:
			if (!cli_parse_double(optarg, 0.01, 100000, &o->rate))
				return cli_usage_error("--rate wants requests per second (0.01..100000), not \"%s\"",
						       optarg);
			break;
		case O_E164_START:
			if (!cli_e164_ok(optarg))
				return cli_usage_error("--e164-start wants 3..32 digits, not \"%s\"", optarg);
			o->e164_start = optarg;
			break;
		case O_DURATION:
			if (!cli_parse_uint(optarg, 1, 1440, &v))
				return cli_usage_error("--duration-min wants minutes (1..1440), not \"%s\"", optarg);
			o->duration_min = (int64_t)v;
			break;
		case O_NAME:
			if (!*optarg || strlen(optarg) > 256)
				return cli_usage_error("--name wants 1..256 bytes");
			o->name = optarg;
			break;
		case O_RECORD: o->record = true; break;
		case O_H265: o->h265 = true; break;
		case O_RESOLUTION: {
			size_t i;

			for (i = 0; resolutions[i] && strcmp(resolutions[i], optarg) != 0; i++)
				;
			if (!resolutions[i])
				return cli_usage_error("--resolution wants 360p, 480p, 720p, 1080p or 4k, not \"%s\"",
						       optarg);
			o->resolution = resolutions[i];
			break;
		}
		case O_MAXP:
			if (!cli_parse_uint(optarg, 2, 10000, &v))
				return cli_usage_error("--max-participants wants 2..10000, not \"%s\"", optarg);
			o->max_participants = (int64_t)v;
			break;
		case O_JSON:
			if (o->cmd == CMD_LIST || o->cmd == CMD_QUERY)
				o->raw_json = true;
			else if (!*optarg)
				return cli_usage_error("--json wants a file name, or '-' for stdout");
			else
				o->json_out = optarg;
			break;
		case O_RETRY:
			if (!cli_parse_uint(optarg, 0, 3600, &o->retry_ms))
				return cli_usage_error("--retry wants seconds (0..3600), not \"%s\"", optarg);
			o->retry_ms *= 1000;
			break;
		case O_LINGER:
			if (!cli_parse_uint(optarg, 0, 60000, &o->linger_ms))
				return cli_usage_error("--linger wants milliseconds (0..60000), not \"%s\"", optarg);
			o->linger_given = true;
			break;
		case O_E164:
			if (!cli_e164_ok(optarg))
				return cli_usage_error("--e164 wants 3..32 digits, not \"%s\"", optarg);
			if (o->cmd == CMD_QUERY && ne)
				return cli_usage_error("query takes one --e164");
			o->e164s[ne++] = optarg;
			break;
		case O_FROM_JSON: o->from_json = optarg; break;
		case O_FILE: o->file = optarg; break;
		case O_NO_REPLY_TO: o->no_reply_to = true; break;
		case O_OUT:
			if (!*optarg)
				return cli_usage_error("--out wants a file name, or '-' for stdout");
			o->out = optarg;
			break;
		case O_WATCH_DURATION:
			if (!cli_parse_uint(optarg, 0, 31536000, &v))
				return cli_usage_error("--duration wants seconds (0..31536000), not \"%s\"", optarg);
			o->duration_ms = v * 1000;
			break;
		case O_EXCHANGE:
			if (!*optarg || strlen(optarg) > 255)
				return cli_usage_error("--exchange wants an exchange name (1..255 bytes)");
			if (o->nexchanges == MAX_EXCHANGES)
				return cli_usage_error("too many --exchange (at most %d)", MAX_EXCHANGES);
			o->exchanges[o->nexchanges++] = optarg;
			break;
		case 'q': o->quiet = true; break;
		case 'v': verbose = true; break;
		case 'h': usage(stdout); return -1;
		default: return cli_usage_error("bad option (see above)");
		}
	}
	o->ne164s = ne;
	if (optind < argc)
		return cli_usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!o->platform)
		return cli_usage_error("--platform is required");
	if (!cli_id_ok(o->platform))
		return cli_usage_error("--platform wants a platform id (letters, digits, '.', '_', '-'), not \"%s\"",
				       o->platform);
	if ((o->cmd == CMD_CREATE || o->cmd == CMD_LIST) && !o->ndomains)
		return cli_usage_error("%s needs --domain", cmd_names[o->cmd]);
	if (o->cmd == CMD_QUERY && !ne)
		return cli_usage_error("query needs --e164");
	if (o->cmd == CMD_END) {
		if (!ne && !o->from_json)
			return cli_usage_error("end needs --e164 or --from-json");
		if (ne && o->from_json)
			return cli_usage_error("end takes --e164 or --from-json, not both");
		if (o->from_json) {
			const char **given = o->e164s;
			int r;

			o->e164s = NULL;
			free(given);
			if ((r = load_from_json(o)))
				return r;
			if (!o->ne164s)
				return cli_usage_error("--from-json %s: no conference to end", o->from_json);
		}
		if (o->ne164s > MAX_COUNT)
			return cli_usage_error("at most %d conferences to end", MAX_COUNT);
	}
	if (o->cmd == CMD_SEND && !o->file)
		return cli_usage_error("send needs --file");
	if (o->cmd == CMD_WATCH && !o->nexchanges) {
		o->exchanges[o->nexchanges++] = CDR_MQ_RMS_NTF_EX;
		o->exchanges[o->nexchanges++] = CDR_MQ_PMS_NTF_EX;
	}
	if (o->cmd == CMD_CREATE) {
		char last[CDR_MSG_E164_MAX + 1];

		if (!o->e164_start) {
			/* 100 numbers per millisecond of the clock: a run that
			 * starts after another one ended starts above it up to
			 * 100,000 requests per second. */
			snprintf(o->e164_default, sizeof(o->e164_default), "%015" PRIu64, cdr_wall_ms() * 100);
			o->e164_start = o->e164_default;
		}
		if (!e164_add(o->e164_start, o->count - 1, last, sizeof(last)))
			return cli_usage_error("--e164-start %s + --count %" PRIu64 " needs more digits", o->e164_start,
					       o->count);
	}
	if (o->cmd == CMD_LIST || o->cmd == CMD_QUERY || o->cmd == CMD_SEND) {
		if (!timeout_given)
			o->timeout_ms = 10000;
		if (!o->linger_given)
			o->linger_ms = o->cmd == CMD_SEND && !o->no_reply_to ? DEFAULT_LINGER : 0;
	}
	cdr_log_setup("cmsim", o->platform, verbose ? CDR_LOG_DEBUG : o->quiet ? CDR_LOG_ERR : CDR_LOG_INFO, true);
	return 0;
}

/* ---- main ---- */

static int read_file(struct sim *s)
{
	FILE *f = fopen(s->o.file, "rb");
	size_t n;

	if (!f) {
		fprintf(stderr, "cmsim: --file %s: %s\n", s->o.file, strerror(errno));
		return EX_USAGE;
	}
	s->raw = malloc(MAX_RAW + 1);
	n = s->raw ? fread(s->raw, 1, MAX_RAW + 1, f) : 0;
	if (!s->raw || ferror(f) || n > MAX_RAW) {
		fprintf(stderr, "cmsim: --file %s: %s\n", s->o.file,
			!s->raw	    ? "out of memory"
			: ferror(f) ? "cannot read it"
				    : "more than 4 MiB");
		fclose(f);
		return EX_USAGE;
	}
	fclose(f);
	s->raw_len = n;
	return 0;
}

static int reqs_new(struct sim *s)
{
	const struct opts *o = &s->o;

	switch (o->cmd) {
	case CMD_CREATE: s->nreqs = o->count; break;
	case CMD_END: s->nreqs = o->ne164s; break;
	default: s->nreqs = 1; break;
	}
	s->reqs = calloc(s->nreqs, sizeof(*s->reqs));
	if (!s->reqs)
		return -ENOMEM;
	for (size_t i = 0; i < s->nreqs; i++) {
		struct req *r = &s->reqs[i];

		if (o->cmd == CMD_CREATE)
			e164_add(o->e164_start, i, r->e164, sizeof(r->e164));
		else if (o->cmd == CMD_END || o->cmd == CMD_QUERY)
			snprintf(r->e164, sizeof(r->e164), "%s", o->e164s[i]);
	}
	return 0;
}

static void sim_free(struct sim *s)
{
	for (size_t i = 0; s->reqs && i < s->nreqs; i++) {
		free(s->reqs[i].mcu);
		free(s->reqs[i].room);
		free(s->reqs[i].platform);
		free(s->reqs[i].reason);
	}
	free(s->reqs);
	free(s->reasons);
	free(s->first_answer);
	free(s->raw);
	free(s->o.e164s);
	json_decref(s->o.e164_store);
}

static int start(struct sim *s, const char *url)
{
	int r;

	if ((r = open_broker(s, url, "cmsim", on_mq_state)))
		return r;
	snprintf(s->id_prefix, sizeof(s->id_prefix), "cmsim-%ld-", (long)getpid());
	snprintf(s->reply_q, sizeof(s->reply_q), "cmsim.reply.%ld.%" PRIu64, (long)getpid(), cdr_wall_ms());
	/* The design is the daemons' to declare: a CM's broker user may not
	 * (docs/security.md). */
	if ((r = cdr_mq_declare_private_queue(s->mq, s->reply_q)) < 0 ||
	    (r = cdr_mq_consume(s->mq, s->reply_q, on_answer, s)) < 0 ||
	    (r = cdr_timer_new(s->loop, on_tick, s, &s->tick)) < 0 ||
	    (r = cdr_timer_new(s->loop, on_progress, s, &s->progress)) < 0 ||
	    (r = cdr_timer_new(s->loop, on_deadline, s, &s->deadline)) < 0 ||
	    (r = cdr_timer_new(s->loop, on_linger, s, &s->linger)) < 0) {
		fprintf(stderr, "cmsim: cannot set up: %s\n", strerror(-r));
		return EX_SOFTWARE;
	}
	/* Until connected, the deadline is the broker's. */
	cdr_timer_start(s->deadline, s->o.timeout_ms, false);
	return 0;
}

/* Prints the outcome of create or end; returns the exit code. */
static int finish_many(struct sim *s)
{
	struct summary m;
	int ret = 0;

	summarize(s, &m);
	if (s->o.json_out) {
		json_t *doc = summary_json(s, &m);

		if (write_json(s->o.json_out, doc) < 0) {
			fprintf(stderr, "cmsim: cannot write %s\n", s->o.json_out);
			ret = EX_FAIL;
		}
		json_decref(doc);
	}
	print_summary(s, &m, s->o.json_out && strcmp(s->o.json_out, "-") == 0 ? stderr : stdout);
	if (s->interrupted || s->next < s->nreqs || s->send_failed || m.unanswered || m.twice || m.bad)
		ret = EX_FAIL;
	return ret;
}

int main(int argc, char **argv)
{
	static struct sim sim;
	struct sim *s = &sim;
	char envname[160];
	const char *url;
	int ret, r;

	the_sim = s;
	cli_setup("cmsim", NULL);
	ret = parse_args(argc, argv, &s->o);
	if (ret) {
		sim_free(s);
		return ret < 0 ? 0 : ret;
	}
	if (s->o.cmd == CMD_SEND && (ret = read_file(s))) {
		sim_free(s);
		return ret;
	}
	url = s->o.amqp ? s->o.amqp
			: cli_broker_from_env(s->o.platform, s->o.cmd == CMD_WATCH ? "ops" : "cm", envname,
					      sizeof(envname));
	if (!url) {
		fprintf(stderr,
			"cmsim: no broker: give --amqp URL, or set %s or CONFDR_AMQP_URL\n"
			"       (eval \"$(./deploy/sandbox.sh env)\" sets them for the sandbox)\n",
			envname);
		sim_free(s);
		return EX_UNAVAILABLE;
	}
	if (cdr_loop_new(&s->loop) < 0 || reqs_new(s) < 0) {
		fprintf(stderr, "cmsim: out of memory\n");
		ret = EX_SOFTWARE;
		goto out;
	}
	if ((r = cdr_loop_on_signal(s->loop, SIGTERM, on_signal, s)) < 0 ||
	    (r = cdr_loop_on_signal(s->loop, SIGINT, on_signal, s)) < 0) {
		fprintf(stderr, "cmsim: cannot handle signals: %s\n", strerror(-r));
		ret = EX_SOFTWARE;
		goto out;
	}
	if ((ret = s->o.cmd == CMD_WATCH ? start_watch(s, url) : start(s, url)))
		goto out;
	if (cdr_loop_run(s->loop) < 0) {
		fprintf(stderr, "cmsim: the event loop failed\n");
		ret = EX_SOFTWARE;
		goto out;
	}
	s->stopping = true;
	/* Publishes still unconfirmed are settled; answers no longer count. */
	s->mq = cdr_mq_free(s->mq);
	if (!s->connected_once && !s->interrupted) {
		fprintf(stderr, "cmsim: no broker at %s within %.0f s\n", s->url_shown,
			(double)s->o.timeout_ms / 1000.0);
		ret = EX_UNAVAILABLE;
	} else if (s->o.cmd == CMD_WATCH) {
		if (!s->o.quiet)
			fprintf(stderr, "cmsim: watch stopped: %" PRIu64 " messages\n", s->watched);
		ret = s->out_failed ? EX_FAIL : 0;
	} else if (s->o.cmd == CMD_CREATE || s->o.cmd == CMD_END) {
		ret = finish_many(s);
	} else {
		ret = s->interrupted ? EX_FAIL : finish_one(s);
	}
out:
	s->mq = cdr_mq_free(s->mq);
	s->tick = cdr_timer_free(s->tick);
	s->progress = cdr_timer_free(s->progress);
	s->deadline = cdr_timer_free(s->deadline);
	s->linger = cdr_timer_free(s->linger);
	if (s->out && s->out != stdout)
		fclose(s->out);
	sim_free(s);
	s->loop = cdr_loop_free(s->loop);
	return ret;
}
