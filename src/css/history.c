/* css: the MySQL history. One confinfo row per conference, written in
 * batches to the MySQL of the platform that owns its user domain; a closed
 * conference's record leaves Redis only once its row is written. */
#include "css_int.h"

#define CONFINFO_UPSERT                                                                                                \
	"INSERT INTO confinfo (e164, name, user_domain, home_platform, host_platform, room, mcu, vrs, state, "         \
	"create_json, start_ms, planned_end_ms, end_ms, end_reason, restore_generation, epoch) "                       \
	"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name), "        \
	"host_platform = VALUES(host_platform), room = VALUES(room), mcu = VALUES(mcu), vrs = VALUES(vrs), "           \
	"state = VALUES(state), planned_end_ms = VALUES(planned_end_ms), end_ms = VALUES(end_ms), "                    \
	"end_reason = VALUES(end_reason), restore_generation = VALUES(restore_generation), epoch = VALUES(epoch)"

#define NPARAMS 16

struct db_batch {
	struct css *s;
	uint64_t gen;
	size_t n;
	struct batch_row {
		char e164[40];
		uint64_t serial;
	} * rows; /* its conferences, found again when the answer comes (batch_conf) */
	enum css_state *written;
	struct cdr_db_stmt *stmts;
	struct cdr_db_param *params;
	char **texts; /* create JSON per row */
};

/* Queues c's history row (written with its state at the time of the flush). */
void css_db_queue(struct css *s, struct conf *c)
{
	if (c->db_queued)
		return;
	if (css_confvec_push(&s->dbq, c) < 0) {
		cdr_err("history of %s not queued: out of memory", c->e164);
		return;
	}
	c->db_queued = true;
	css_db_kick(s);
}

static void db_batch_free(struct db_batch *b)
{
	for (size_t i = 0; b->texts && i < b->n; i++)
		free(b->texts[i]);
	free(b->texts);
	free(b->rows);
	free(b->written);
	free(b->stmts);
	free(b->params);
	free(b);
}

/* The conference of row i, unless it was freed (ended and gone, a create
 * removed) while the batch was written. */
static struct conf *batch_conf(struct css *s, const struct db_batch *b, size_t i)
{
	struct conf *c = cdr_hmap_get(s->confs, b->rows[i].e164);

	return c && c->serial == b->rows[i].serial ? c : NULL;
}

static void on_db_batch(const struct cdr_db_result *r, void *arg)
{
	struct db_batch *b = arg;
	struct css *s = b->s;
	struct conf *c;

	if (r->status == -ECANCELED) {
		db_batch_free(b);
		return;
	}
	if (b->gen == s->gen) {
		s->db_busy = false;
		if (r->status < 0) {
			char detail[512];

			snprintf(detail, sizeof(detail), "writing %zu history rows failed: %s; retrying in %d ms", b->n,
				 r->error ? r->error : strerror(-r->status), DB_RETRY_MS);
			css_alarm(s, "minor", "history_write_failed", s->platform, detail);
			s->db_busy = true; /* until the retry timer */
			for (size_t i = 0; i < b->n; i++)
				if ((c = batch_conf(s, b, i)))
					css_db_queue(s, c);
			cdr_timer_start(s->db_timer, DB_RETRY_MS, false);
		} else {
			for (size_t i = 0; i < b->n; i++)
				if (b->written[i] == CSS_ENDED && (c = batch_conf(s, b, i)) && c->state == CSS_ENDED)
					css_conf_gone(s, c);
			css_db_kick(s);
		}
	}
	db_batch_free(b);
}

void css_db_retry(void *arg)
{
	struct css *s = arg;

	s->db_busy = false;
	css_db_kick(s);
}

/* Writes the next batch of queued rows, one batch in flight at a time. */
/* The MySQL of a conference's home platform (history follows the records). */
static struct cdr_db *db_of(struct css *s, const char *home)
{
	struct redis_link *l = css_link_of(s, home);

	if (!home || !strcmp(home, s->platform) || !l)
		return cdr_daemon_db(s->d);
	/* another platform's MySQL only while connected: rows for it wait in
	 * the queue, and never hold up our own behind a dead connection */
	return l->db_up ? l->db : NULL;
}

void css_db_kick(struct css *s)
{
	struct cdr_db *db;
	struct db_batch *b;
	size_t n = 0;
	int r;

	if (s->db_busy || s->dbq.n == 0)
		return;
	/* one home platform per batch: the first's; others wait their turn
	 * (kept in order after the batch), and rows of a platform this css no
	 * longer serves are dropped */
	{
		struct conf **batch = malloc(s->dbq.n * sizeof(*batch));
		size_t k = 0;

		if (!batch)
			return;
		db = NULL;
		for (size_t i = 0; i < s->dbq.n; i++) {
			struct conf *c = s->dbq.v[i];

			if (!css_acts_for(s, c)) {
				c->db_queued = false;
				continue;
			}
			if (!db)
				db = db_of(s, c->home);
			if (db && n < (size_t)s->conf.db_batch && db_of(s, c->home) == db)
				batch[n++] = c;
			else
				s->dbq.v[k++] = c; /* k <= i: compacted in place */
		}
		memmove(s->dbq.v + n, s->dbq.v, k * sizeof(*batch));
		memcpy(s->dbq.v, batch, n * sizeof(*batch));
		s->dbq.n = n + k;
		free(batch);
	}
	if (n == 0 || !db)
		return; /* nothing to write, or that platform's MySQL has no client (yet) */
	if (!(b = calloc(1, sizeof(*b))) || !(b->rows = calloc(n, sizeof(*b->rows))) ||
	    !(b->written = calloc(n, sizeof(*b->written))) || !(b->stmts = calloc(n, sizeof(*b->stmts))) ||
	    !(b->params = calloc(n * NPARAMS, sizeof(*b->params))) || !(b->texts = calloc(n, sizeof(char *)))) {
		if (b)
			db_batch_free(b);
		cdr_err("history batch: out of memory");
		return;
	}
	b->s = s;
	b->gen = s->gen;
	b->n = n;
	for (size_t i = 0; i < n; i++) {
		struct conf *c = s->dbq.v[i];
		struct cdr_db_param *p = b->params + i * NPARAMS;

		c->db_queued = false;
		memcpy(b->rows[i].e164, c->e164, sizeof(c->e164));
		b->rows[i].serial = c->serial;
		b->written[i] = c->state;
		b->texts[i] = xstrdup(c->create); /* c may go before the batch is written */
		p[0] = CDR_DB_STR(c->e164);
		p[1] = CDR_DB_STR(nz(c->name));
		p[2] = CDR_DB_STR(c->ud);
		p[3] = CDR_DB_STR(nz(c->home));
		p[4] = CDR_DB_STR(c->host);
		p[5] = CDR_DB_STR(c->room);
		p[6] = CDR_DB_STR(c->mcu && *c->mcu ? c->mcu : NULL);
		p[7] = CDR_DB_STR(c->vrs && *c->vrs ? c->vrs : NULL);
		p[8] = CDR_DB_STR(css_state_name(c->state));
		p[9] = CDR_DB_STR(b->texts[i]);
		p[10] = CDR_DB_INT(c->start_ms);
		p[11] = CDR_DB_INT(c->planned_end_ms);
		p[12] = c->end_ms ? CDR_DB_INT(c->end_ms) : CDR_DB_NULL;
		p[13] = CDR_DB_STR(c->end_reason);
		p[14] = CDR_DB_INT(c->generation);
		p[15] = CDR_DB_INT(s->epoch);
		b->stmts[i].sql = CONFINFO_UPSERT;
		b->stmts[i].params = p;
		b->stmts[i].nparams = NPARAMS;
	}
	memmove(s->dbq.v, s->dbq.v + n, (s->dbq.n - n) * sizeof(*s->dbq.v));
	s->dbq.n -= n;
	if ((r = cdr_db_exec_batch(db, b->stmts, n, true, on_db_batch, b)) < 0) {
		cdr_warn("history batch of %zu rows not queued: %s; retrying", n, strerror(-r));
		s->db_busy = true;
		for (size_t i = 0; i < n; i++) {
			struct conf *c = batch_conf(s, b, i);

			if (c)
				css_db_queue(s, c);
		}
		db_batch_free(b);
		cdr_timer_start(s->db_timer, DB_RETRY_MS, false);
		return;
	}
	s->db_busy = true;
}
