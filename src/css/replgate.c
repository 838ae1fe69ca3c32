/* css: answers wait for the platform's Redis replica. The replica lives on
 * the backup platform's host and is what the backup takes the platform over
 * from: a create acknowledged before the replica has it would be lost if
 * the platform were taken over right after (its own copy released, the
 * backup never knowing it). So the ACK of a create waits until the replica
 * confirms every write made so far: on a second connection (WAIT blocks its
 * client), css writes a counter and sends WAIT 1 <replica_wait>, one batch of
 * waiting answers at a time. A Redis without a connected replica (INFO
 * replication, looked at most once a second) is not waited for. When the
 * replica does not confirm in time, the answer goes out unless the
 * platform's pms has meanwhile said the platform is isolated (release.c):
 * replica_wait is longer than the time an isolation takes to be known
 * (docs/css.md, "Isolation"). */
#include "css_int.h"

/* An end's, an extension's or a rename's answer (op->answer) once the
 * replica has the change, as a create's: isolated meanwhile without the
 * replica's word, refused platform_down (the CM asks the backup platform,
 * which ends or changes its copy). */
void css_answer_replicated(void *arg, enum css_repl result)
{
	struct op *op = arg;

	if (result != CSS_REPL_CONFIRMED && op->s->released) {
		cdr_warn("request %s: the replica did not confirm and the platform is isolated: refused platform_down",
			 op->req);
		css_answer_final(op, "platform_down",
				 "done here, but the platform is isolated and its replica did not confirm it: ask the "
				 "backup platform");
		return;
	}
	if (result == CSS_REPL_TIMEOUT)
		cdr_warn("request %s: the replica did not confirm within %" PRIu64
			 " ms; answered (the platform is not isolated)",
			 op->req, op->s->conf.replica_wait_ms);
	css_answer_final(op, NULL, NULL);
}

struct repl_waiter {
	css_repl_fn fn;
	void *arg;
	struct repl_waiter *next;
};

static void resolve(struct repl_waiter *w, enum css_repl result)
{
	while (w) {
		struct repl_waiter *next = w->next;

		w->fn(w->arg, result);
		free(w);
		w = next;
	}
}

static void kick(struct css *s);

/* The batch in flight resolved; then the next one (unless the wait client
 * is going away). */
static void batch_done(struct css *s, enum css_repl res, bool next)
{
	struct repl_waiter *b = s->repl_batch;

	s->repl_batch = NULL;
	resolve(b, res);
	if (next)
		kick(s);
}

static void on_wait(int status, const redisReply *reply, void *arg)
{
	struct css *s = arg;
	enum css_repl res = CSS_REPL_TIMEOUT;

	if (status == 0 && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 1)
		res = CSS_REPL_CONFIRMED;
	else if (status == 0)
		s->n.repl_timeouts++;
	else
		res = CSS_REPL_NONE; /* the wait connection failed: not waited for */
	batch_done(s, res, status != -ECANCELED);
}

static void on_incr(int status, const redisReply *reply, void *arg)
{
	(void)status;
	(void)reply;
	(void)arg; /* its failure shows in the WAIT that follows */
}

static void send_wait(struct css *s)
{
	struct cdr_redis *r = cdr_daemon_redis_wait(s->d);

	/* WAIT counts this connection's own last write: the counter written
	 * here comes after every write css made before it. */
	if (cdr_redis_command(r, on_incr, NULL, "INCR cdr:replgate") < 0 ||
	    cdr_redis_command(r, on_wait, s, "WAIT 1 %llu", (unsigned long long)s->conf.replica_wait_ms) < 0)
		batch_done(s, CSS_REPL_NONE, false);
}

static void on_info(int status, const redisReply *reply, void *arg)
{
	struct css *s = arg;
	const char *p;

	if (status == -ECANCELED)
		return;
	s->repl_info_ms = cdr_mono_i64();
	s->repl_replicas = 0;
	if (status == 0 && reply && reply->type == REDIS_REPLY_STRING && (p = strstr(reply->str, "connected_slaves:")))
		s->repl_replicas = atoi(p + strlen("connected_slaves:"));
	if (s->repl_replicas > 0)
		send_wait(s);
	else
		batch_done(s, CSS_REPL_NONE, true);
}

/* The next batch: every answer waiting now. */
static void kick(struct css *s)
{
	struct cdr_redis *r = cdr_daemon_redis_wait(s->d);

	if (s->repl_batch || !s->repl_pending)
		return;
	s->repl_batch = s->repl_pending;
	s->repl_pending = NULL;
	if (!r || !cdr_redis_connected(r)) {
		batch_done(s, CSS_REPL_NONE, false);
		return;
	}
	if (s->repl_info_ms && cdr_mono_i64() - s->repl_info_ms < 1000 && s->repl_replicas > 0) {
		send_wait(s);
		return;
	}
	if (cdr_redis_command(r, on_info, s, "INFO replication") < 0)
		batch_done(s, CSS_REPL_NONE, false);
}

void css_repl_wait(struct css *s, css_repl_fn fn, void *arg)
{
	struct repl_waiter *w;

	if (!s->conf.replica_wait_ms || !cdr_daemon_redis_wait(s->d) || !(w = calloc(1, sizeof(*w)))) {
		fn(arg, CSS_REPL_NONE);
		return;
	}
	w->fn = fn;
	w->arg = arg;
	/* order kept: appended */
	if (s->repl_pending)
		s->repl_tail->next = w;
	else
		s->repl_pending = w;
	s->repl_tail = w;
	kick(s);
}

void css_repl_cancel_all(struct css *s)
{
	struct repl_waiter *p = s->repl_pending, *b = s->repl_batch;

	s->repl_pending = s->repl_batch = NULL;
	resolve(b, CSS_REPL_NONE);
	resolve(p, CSS_REPL_NONE);
}
