/* rms: answers to requests, on their reply_to. The answers to allocations,
 * confirms and releases are kept by request id (at most [rms] reply_cache of
 * them, for 5 minutes), so that a redelivered request is answered again, not
 * executed twice (rms.c looks them up). */
#include "rms_int.h"

#define REPLY_CACHE_AGE_MS (5 * 60 * 1000)

static void cache_put(struct rms *s, const struct cdr_msg *m, char *txt)
{
	const char *id = cdr_msg_id(m);
	struct cached *c = NULL;

	if (s->conf.reply_cache <= 0 || !(c = calloc(1, sizeof(*c))) || !(c->id = strdup(id))) {
		if (c)
			free(c);
		free(txt);
		return;
	}
	c->txt = txt;
	c->at = cdr_now_ms();
	cdr_msg_fingerprint(m, c->fp, sizeof(c->fp));
	if (cdr_hmap_put(s->cache, c->id, c) < 0) {
		free(c->id);
		free(c->txt);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&s->cached, c, link);
	while (cdr_hmap_count(s->cache) > (size_t)s->conf.reply_cache) {
		struct cached *old = TAILQ_FIRST(&s->cached);

		TAILQ_REMOVE(&s->cached, old, link);
		cdr_hmap_del(s->cache, old->id);
		free(old->id);
		free(old->txt);
		free(old);
	}
}

void rms_cache_prune(struct rms *s, bool all)
{
	struct cached *c;
	uint64_t now = cdr_now_ms();

	while ((c = TAILQ_FIRST(&s->cached)) && (all || now - c->at > REPLY_CACHE_AGE_MS)) {
		TAILQ_REMOVE(&s->cached, c, link);
		cdr_hmap_del(s->cache, c->id);
		free(c->id);
		free(c->txt);
		free(c);
	}
}

/* Answers the request m (body stolen), remembers the answer when cache, and
 * acks the delivery. */
void rms_answer(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack, json_t *body, bool cache)
{
	char *txt;

	if (!ack)
		rms_metric_nack(s, m, body); /* before the body is given away */
	txt = cdr_bus_answer(&s->bus, dl, m, ack, body, cache);

	if (txt)
		cache_put(s, m, txt);
}
