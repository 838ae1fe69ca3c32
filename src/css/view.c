/* css: the view rebuilt from Redis when css becomes active: every record
 * read; creates found in flight wait for their redelivered request or are
 * abandoned; conferences of a room that went abnormal are taken back or
 * restored. */
#include "css_int.h"

static void abandon_create(struct op *op)
{
	struct conf *c = op->c;

	cdr_warn("conference %s was being created before a restart and its request did not come back in %" PRIu64
		 " ms: abandoned (ended on %s, reservation released)",
		 c->e164, op->s->conf.resume_window_ms, nz(c->mcu));
	if (c->mcu && *c->mcu) /* through the broker of the MCU's platform: after a takeover, the failed one's */
		css_end_on_host(op->s, c->host, c->e164, c->mcu, c->mcu_key, "create_abandoned");
	css_create_fail(op, "mcu_timeout", "abandoned after a restart");
}

/* A record read back: into the view, and on its way again. */
static void adopt(struct css *s, struct load *ld, struct conf *c)
{
	struct op *op;

	switch (c->state) {
	case CSS_CREATING:
		ld->creating++;
		if ((op = css_op_new(s, OP_CREATE, NULL, NULL))) {
			op->c = c;
			c->op = op;
			op->placements = 1; /* its record is written: a refusal removes it */
			op->on_timer = abandon_create;
			cdr_timer_start(op->timer, s->conf.resume_window_ms, false);
		}
		break;
	case CSS_ENDING:
		ld->ending++;
		css_conf_end(s, c, c->end_reason ? c->end_reason : "cm_request", NULL);
		break;
	case CSS_ENDED:
		ld->ended++;
		c->closing = true;
		css_db_queue(s, c);
		break;
	case CSS_PENDING_RESTORE:
		c->lost_mono = cdr_now_ms();
		css_restore_queue(s, c);
		break;
	case CSS_RUNNING:
		if (ld->link && (!c->host || strcmp(c->host, s->platform))) {
			/* a takeover: it ran on the failed platform */
			if (css_conf_lost(s, c, cdr_now_ms(), LOST_PLATFORM) == 0)
				ld->restore++;
			break;
		}
		css_db_queue(s, c);
		break;
	case CSS_RESTORING:
		/* the re-create again, same MCU and generation: idempotent there */
		c->lost_mono = cdr_now_ms();
		css_restore_send(s, c);
		break;
	default:
		css_db_queue(s, c); /* the history row is repaired if a crash lost it */
		break;
	}
}

static void on_record(int status, const redisReply *reply, void *arg)
{
	struct load *ld = arg;
	struct css *s = ld->s;

	if (status != -ECANCELED && ld->gen == s->gen && status == 0 && reply->type == REDIS_REPLY_ARRAY &&
	    reply->elements >= 2) {
		json_t *h = json_object();
		struct conf *c;
		json_t *cr;
		enum css_state st;

		for (size_t i = 0; i + 1 < reply->elements; i += 2)
			json_object_set_new(h, reply->element[i]->str, json_string(reply->element[i + 1]->str));
#define HS(k) cdr_msg_jstr(h, k, "")
#define HI(k) strtoll(HS(k), NULL, 10)
		if (css_state_parse(HS("state"), &st) == 0 && *HS("e164") && !cdr_hmap_get(s->confs, HS("e164")) &&
		    (c = css_conf_new(s, HS("e164"), HS("user_domain")))) {
			c->state = st;
			set_str(&c->name, HS("name"));
			css_str_set(s, &c->home, HS("platform"));
			css_str_set(s, &c->host, *HS("host_platform") ? HS("host_platform") : NULL);
			css_str_set(s, &c->room, *HS("room") ? HS("room") : NULL);
			css_str_set(s, &c->mcu, HS("mcu"));
			css_str_set(s, &c->mcu_key, HS("mcu_key"));
			set_str(&c->vrs, *HS("vrs") ? HS("vrs") : NULL);
			set_str(&c->reservation, HS("reservation"));
			set_str(&c->req, HS("req"));
			set_str(&c->password, HS("password"));
			set_str(&c->end_reason, *HS("end_reason") ? HS("end_reason") : NULL);
			set_opt(&c->extend_req, HS("extend_req"));
			cr = json_loads(HS("create"), 0, NULL);
			css_conf_set_create(c, cr ? cr : json_object()); /* the text as written again */
			c->start_ms = HI("start");
			c->planned_end_ms = HI("planned_end");
			c->end_ms = HI("end_ms");
			c->generation = HI("generation");
			c->epoch = HI("epoch");
			c->changed_mono = cdr_now_ms();
			css_index_mcu(s, c);
			if (!ld->link && c->host && strcmp(c->host, s->platform) && st != CSS_ENDED)
				css_peer_watch(s, c->host); /* hosted there since a takeover: its rms heard */
			ld->loaded++;
			adopt(s, ld, c);
		}
#undef HS
#undef HI
		json_decref(h);
	}
	if (--ld->pending == 0) {
		ld->done(ld, ld->gen == s->gen && status != -ECANCELED);
		free(ld);
	}
}

/* Our own records are read: css may consume. */
static void view_loaded(struct load *ld, bool ok)
{
	struct css *s = ld->s;

	if (!ok)
		return;
	s->loading = false;
	s->loaded = true;
	cdr_notice("view rebuilt from Redis: %zu conferences (%zu creating, %zu ending, %zu ended) in %" PRIu64 " ms",
		   ld->loaded, ld->creating, ld->ending, ld->ended, cdr_now_ms() - ld->t0);
	css_maybe_consume(s);
}

static void load_retry(struct css *s, const char *why)
{
	s->loading = false;
	cdr_warn("view not rebuilt from Redis (%s): trying again when Redis is up", why);
}

void css_on_members(int status, const redisReply *reply, void *arg)
{
	struct load *ld = arg;
	struct css *s = ld->s;
	struct cdr_redis *r = ld->link ? ld->link->r : css_redis_of(s, s->platform);

	if (status == -ECANCELED || ld->gen != s->gen) {
		if (ld->link)
			ld->link->promoting = false;
		free(ld);
		return;
	}
	if (status < 0 || reply->type != REDIS_REPLY_ARRAY || !r) {
		if (ld->link) {
			cdr_warn("takeover of %s: its records not read (%s); again in a second", ld->link->platform,
				 css_redis_err(status, reply));
			ld->link->promoting = false;
		} else {
			load_retry(s, css_redis_err(status, reply));
		}
		free(ld);
		return;
	}
	ld->pending = 1; /* held until every HGETALL is sent */
	for (size_t i = 0; i < reply->elements; i++) {
		if (cdr_redis_command(r, on_record, ld, "HGETALL conf:%s", reply->element[i]->str) == 0)
			ld->pending++;
	}
	on_record(-ENOENT, NULL, ld); /* drops the hold */
}

void css_load_view(struct css *s)
{
	struct cdr_redis *r = css_redis_of(s, s->platform);
	struct load *ld;

	if (s->loaded || s->loading || !s->active || !r || !cdr_redis_connected(r))
		return;
	if (!(ld = calloc(1, sizeof(*ld))))
		return;
	ld->s = s;
	ld->gen = s->gen;
	ld->t0 = cdr_now_ms();
	ld->done = view_loaded;
	s->loading = true;
	if (cdr_redis_command(r, css_on_members, ld, "SMEMBERS confs:all") < 0) {
		free(ld);
		load_retry(s, "not connected");
	}
}
