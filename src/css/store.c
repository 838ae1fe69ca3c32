/* css: the Redis store. The record of each conference in the Redis of the
 * platform that owns its user domain, written and removed by Lua scripts
 * that check the writer's epoch; the answer to the CM stored with it; the
 * links to the Redis of each platform css may serve. */
#include "css_int.h"

/* KEYS[1] conf:<e164>. ARGV: epoch, e164, user domain, mcu ("" none), state,
 * planned end, answer key ("" none), answer, answer ttl (s), the key of an
 * answer that must not exist ("" none: a create's first write; when it
 * exists its value is returned and nothing written), then field, value
 * pairs. Refuses a record written with a newer epoch (fencing). */
static const char put_lua[] =
	"if ARGV[10] ~= '' then\n"
	"  local a = redis.call('GET', ARGV[10])\n"
	"  if a then return a end\n"
	"end\n"
	"local cur = redis.call('HMGET', KEYS[1], 'epoch', 'writer')\n"
	"local w = ''\n"
	"for i = 11, #ARGV, 2 do if ARGV[i] == 'writer' then w = ARGV[i + 1] end end\n"
	"if cur[1] and (not cur[2] or cur[2] == w) and tonumber(cur[1]) > tonumber(ARGV[1]) then\n"
	"  return redis.error_reply('STALE record written with epoch ' .. cur[1])\n"
	"end\n"
	"local old = redis.call('HGET', KEYS[1], 'mcu')\n"
	"if old and old ~= '' and old ~= ARGV[4] then redis.call('SREM', 'confs:mcu:' .. old, ARGV[2]) end\n"
	"if ARGV[4] ~= '' then redis.call('SADD', 'confs:mcu:' .. ARGV[4], ARGV[2]) end\n"
	"redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'mcu', ARGV[4], 'state', ARGV[5], 'planned_end', ARGV[6],\n"
	"           unpack(ARGV, 11))\n"
	"redis.call('SADD', 'confs:all', ARGV[2])\n"
	"redis.call('SADD', 'confs:ud:' .. ARGV[3], ARGV[2])\n"
	"if ARGV[5] == 'ending' or ARGV[5] == 'ended' then redis.call('ZREM', 'confs:expiry', ARGV[2])\n"
	"else redis.call('ZADD', 'confs:expiry', ARGV[6], ARGV[2]) end\n"
	"if ARGV[5] == 'pending_restore' then redis.call('SADD', 'confs:pending_restore', ARGV[2])\n"
	"else redis.call('SREM', 'confs:pending_restore', ARGV[2]) end\n"
	"if ARGV[7] ~= '' then redis.call('SET', ARGV[7], ARGV[8], 'EX', ARGV[9]) end\n"
	"return 1\n";

/* KEYS[1] conf:<e164>. ARGV: epoch, e164, start, answer key, answer, ttl,
 * writer. Removes the record and its index entries, if it is still the one
 * that started at start. Epochs are compared between writers of one
 * platform only, as put_lua does: the css taking a platform over can always
 * remove a record of that platform's css. */
static const char del_lua[] =
	"local h = redis.call('HMGET', KEYS[1], 'epoch', 'user_domain', 'mcu', 'start', 'writer')\n"
	"if h[1] and (not h[5] or h[5] == ARGV[7]) and tonumber(h[1]) > tonumber(ARGV[1]) then\n"
	"  return redis.error_reply('STALE record written with epoch ' .. h[1])\n"
	"end\n"
	"if h[4] and h[4] == ARGV[3] then\n"
	"  if h[2] then redis.call('SREM', 'confs:ud:' .. h[2], ARGV[2]) end\n"
	"  if h[3] and h[3] ~= '' then redis.call('SREM', 'confs:mcu:' .. h[3], ARGV[2]) end\n"
	"  redis.call('DEL', KEYS[1])\n"
	"  redis.call('SREM', 'confs:all', ARGV[2])\n"
	"  redis.call('ZREM', 'confs:expiry', ARGV[2])\n"
	"  redis.call('SREM', 'confs:pending_restore', ARGV[2])\n"
	"end\n"
	"if ARGV[4] ~= '' then redis.call('SET', ARGV[4], ARGV[5], 'EX', ARGV[6]) end\n"
	"return 1\n";

/* Replaces the published templates: ARGV[1] a JSON array of templates. */
static const char tpl_lua[] = "local list = cjson.decode(ARGV[1])\n"
			      "for _, ud in ipairs(redis.call('SMEMBERS', 'templates:uds')) do\n"
			      "  redis.call('DEL', 'templates:ud:' .. ud)\n"
			      "end\n"
			      "redis.call('DEL', 'templates', 'templates:uds')\n"
			      "for _, t in ipairs(list) do\n"
			      "  local txt = cjson.encode(t)\n"
			      "  redis.call('HSET', 'templates', t.id, txt)\n"
			      "  redis.call('HSET', 'templates:ud:' .. t.user_domain, t.id, txt)\n"
			      "  redis.call('SADD', 'templates:uds', t.user_domain)\n"
			      "end\n"
			      "return #list\n";

struct redis_link *css_link_of(struct css *s, const char *platform)
{
	for (size_t i = 0; platform && i < s->nlinks; i++)
		if (!strcmp(s->links[i].platform, platform))
			return &s->links[i];
	return NULL;
}

struct cdr_redis *css_redis_of(struct css *s, const char *platform)
{
	struct redis_link *l = css_link_of(s, platform);

	if (!l)
		return NULL;
	return l->own ? cdr_daemon_redis(s->d) : l->r;
}

/* Scripts of a link, made once its client exists. */
static int link_scripts(struct redis_link *l, struct cdr_redis *r)
{
	if (!r)
		return -ENOTCONN;
	if (l->r != r) {
		/* The daemon's client was replaced (endpoint moved): scripts
		 * belong to the old one and went with it. */
		l->put = l->del = l->tpl = NULL;
		l->r = r;
	}
	if (!l->put && cdr_redis_script_new(r, put_lua, &l->put) < 0)
		return -ENOMEM;
	if (!l->del && cdr_redis_script_new(r, del_lua, &l->del) < 0)
		return -ENOMEM;
	if (!l->tpl && cdr_redis_script_new(r, tpl_lua, &l->tpl) < 0)
		return -ENOMEM;
	return 0;
}

struct redis_link *css_ready_link(struct css *s, const char *platform)
{
	struct redis_link *l = css_link_of(s, platform);
	struct cdr_redis *r = css_redis_of(s, platform);

	if (!l || link_scripts(l, r) < 0)
		return NULL;
	return l;
}

#define PUT_FIELDS 18

/* Writes c (its whole record) to the Redis of its home platform, with the
 * answer to the CM (akey/atxt, may be NULL) in the same atomic step; unless
 * an answer is stored under ckey (not NULL). */
static int store_put(struct css *s, struct conf *c, const char *akey, const char *atxt, const char *ckey,
		     cdr_redis_fn cb, void *arg)
{
	struct redis_link *l = css_ready_link(s, c->home);
	char key[64], epoch[24], pend[24], ttl[24], start[24], gen[24], endms[24];
	const char *argv[10 + 2 * PUT_FIELDS];
	int n = 0;

	if (!l)
		return -ENOTCONN;
	if (!css_acts_for(s, c))
		return -EPERM; /* its platform is served elsewhere now: not ours to write */
	snprintf(key, sizeof(key), "conf:%s", c->e164);
	snprintf(epoch, sizeof(epoch), "%" PRId64, s->epoch);
	snprintf(pend, sizeof(pend), "%" PRId64, c->planned_end_ms);
	snprintf(ttl, sizeof(ttl), "%" PRIu64, s->conf.answer_ttl_ms / 1000);
	snprintf(start, sizeof(start), "%" PRId64, c->start_ms);
	snprintf(gen, sizeof(gen), "%" PRId64, c->generation);
	snprintf(endms, sizeof(endms), "%" PRId64, c->end_ms);
	argv[n++] = epoch;
	argv[n++] = c->e164;
	argv[n++] = c->ud;
	argv[n++] = nz(c->mcu);
	argv[n++] = css_state_name(c->state);
	argv[n++] = pend;
	argv[n++] = nz(akey);
	argv[n++] = nz(atxt);
	argv[n++] = ttl;
	argv[n++] = nz(ckey);
#define F(k, v)                                                                                                        \
	do {                                                                                                           \
		argv[n++] = k;                                                                                         \
		argv[n++] = v;                                                                                         \
	} while (0)
	F("e164", c->e164);
	F("name", nz(c->name));
	F("user_domain", c->ud);
	F("platform", nz(c->home));
	F("host_platform", nz(c->host));
	F("room", nz(c->room));
	F("mcu_key", nz(c->mcu_key));
	F("vrs", nz(c->vrs));
	F("reservation", nz(c->reservation));
	F("req", nz(c->req));
	F("password", nz(c->password));
	F("create", nz(c->create)); /* kept as the text stored (css_conf_set_create) */
	F("start", start);
	F("generation", gen);
	F("end_ms", endms);
	F("end_reason", nz(c->end_reason));
	F("extend_req", nz(c->extend_req));
	F("writer", s->platform); /* epochs are compared between writers of one platform only */
#undef F
	return cdr_redis_script_run(l->put, cb, arg, 1, (const char *[]){ key }, n, argv);
}

int css_store_put(struct css *s, struct conf *c, const char *akey, const char *atxt, cdr_redis_fn cb, void *arg)
{
	return store_put(s, c, akey, atxt, NULL, cb, arg);
}

int css_store_put_first(struct op *op, cdr_redis_fn cb, void *arg)
{
	char ckey[160];

	css_answer_key(op->req, ckey, sizeof(ckey));
	return store_put(op->s, op->c, NULL, NULL, op->unchecked ? ckey : NULL, cb, arg);
}

int css_store_del(struct css *s, struct conf *c, const char *akey, const char *atxt, cdr_redis_fn cb, void *arg)
{
	struct redis_link *l = css_ready_link(s, c->home);
	char key[64], epoch[24], ttl[24], start[24];
	const char *keys[1] = { key }, *argv[7];

	if (!css_acts_for(s, c))
		return -EPERM;
	if (!l)
		return -ENOTCONN;
	snprintf(key, sizeof(key), "conf:%s", c->e164);
	snprintf(epoch, sizeof(epoch), "%" PRId64, s->epoch);
	snprintf(ttl, sizeof(ttl), "%" PRIu64, s->conf.answer_ttl_ms / 1000);
	snprintf(start, sizeof(start), "%" PRId64, c->start_ms);
	argv[0] = epoch;
	argv[1] = c->e164;
	argv[2] = start;
	argv[3] = nz(akey);
	argv[4] = nz(atxt);
	argv[5] = ttl;
	argv[6] = s->platform;
	return cdr_redis_script_run(l->del, cb, arg, 1, keys, 7, argv);
}

/* Whether a failed write was refused for good: a newer epoch of this
 * platform wrote the record (a deposed writer), or the record's platform
 * is not this css's to write now. Anything else (Redis down, slow) may pass
 * when tried again. */
bool css_store_refused(int status, const redisReply *reply)
{
	return status == -EPERM || (status == -EPROTO && reply && reply->str && !strncmp(reply->str, "STALE", 5));
}

const char *css_redis_err(int status, const redisReply *reply)
{
	if (status == -EPROTO && reply && reply->str)
		return reply->str;
	return strerror(-status);
}

bool css_store_connected(struct css *s, const struct conf *c)
{
	struct cdr_redis *r = css_redis_of(s, c->home && *c->home ? c->home : s->platform);

	return r && cdr_redis_connected(r);
}

/* A background write in flight: the conference is found again by E164 and
 * serial, in the same view (gen). */
struct bg_write {
	struct css *s;
	uint64_t gen, serial;
	char e164[sizeof(((struct conf *)0)->e164)];
};

#define STORE_AGAIN_MS 500

static void store_again(struct css *s, struct conf *c)
{
	if (c->store_queued)
		return;
	if (css_confvec_push(&s->storeq, c) < 0) {
		cdr_err("conference %s: its record is not written again: out of memory", c->e164);
		return;
	}
	c->store_queued = true;
	if (!cdr_timer_pending(s->store_timer))
		cdr_timer_start(s->store_timer, STORE_AGAIN_MS, false);
}

static void on_stored_bg(int status, const redisReply *reply, void *arg)
{
	struct bg_write *w = arg;
	struct css *s = w->s;
	struct conf *c = NULL;
	bool again;

	/* -ECANCELED: the client is being freed (css stopping): s is not touched */
	if (status < 0 && status != -ECANCELED) {
		again = !css_store_refused(status, reply) && w->gen == s->gen &&
			(c = cdr_hmap_get(s->confs, w->e164)) && c->serial == w->serial;
		cdr_warn("conference %s: change not stored in Redis: %s%s", w->e164, css_redis_err(status, reply),
			 again ? "; written again once its Redis is up" : "");
		if (again)
			store_again(s, c);
	}
	free(w);
}

void css_store_bg(struct css *s, struct conf *c)
{
	struct bg_write *w = malloc(sizeof(*w));
	int r;

	if (!w) {
		cdr_err("conference %s: change not stored in Redis: out of memory", c->e164);
		return;
	}
	*w = (struct bg_write){ .s = s, .gen = s->gen, .serial = c->serial };
	snprintf(w->e164, sizeof(w->e164), "%s", c->e164);
	if ((r = css_store_put(s, c, NULL, NULL, on_stored_bg, w)) < 0) {
		free(w);
		if (r == -EPERM) {
			cdr_warn("conference %s: change not stored in Redis: not this css's to write now", c->e164);
			return;
		}
		cdr_warn("conference %s: change not stored in Redis (%s); written again once it is up", c->e164,
			 strerror(-r));
		store_again(s, c);
	}
}

/* The records whose write failed, written again: those whose Redis is
 * up now (the others wait for the next round, without a line each). */
void css_store_retry(void *arg)
{
	struct css *s = arg;
	struct confvec q = s->storeq;
	size_t sent = 0;

	s->storeq = (struct confvec){ 0 };
	for (size_t i = 0; i < q.n; i++)
		q.v[i]->store_queued = false;
	for (size_t i = 0; i < q.n; i++) {
		struct conf *c = q.v[i];

		if (!css_store_connected(s, c)) {
			store_again(s, c);
			continue;
		}
		css_store_bg(s, c);
		sent++;
	}
	if (sent)
		cdr_notice("%zu conference records written to Redis again (%zu wait for their Redis)", sent,
			   s->storeq.n);
	free(q.v);
}

/* The record is gone from Redis and memory (history written). */
static void on_gone(int status, const redisReply *reply, void *arg)
{
	char *e164 = arg;

	if (status < 0 && status != -ECANCELED)
		cdr_warn("conference %s: its ended record stays in Redis: %s", e164, css_redis_err(status, reply));
	free(e164);
}

void css_conf_gone(struct css *s, struct conf *c)
{
	char *e164 = strdup(c->e164);
	int r;

	if (e164 && (r = css_store_del(s, c, NULL, NULL, on_gone, e164)) < 0) {
		cdr_warn("conference %s: its ended record stays in Redis: %s", c->e164, strerror(-r));
		free(e164);
	}
	css_conf_free(s, c);
}

/* Whether this css serves platform's user domains now: its own unless
 * declared down; another's while taken over (promoted and read). */
bool css_serving(struct css *s, const char *platform)
{
	struct redis_link *l;

	if (!platform || !*platform || !strcmp(platform, s->platform))
		return !css_plat_down(s->platform, s);
	l = css_link_of(s, platform);
	return l && l->serving;
}

/* Whether css acts on c (writes it, restores it, ends what it lost): its
 * platform is served here, or being taken over (its records being read). */
bool css_acts_for(struct css *s, const struct conf *c)
{
	struct redis_link *l;

	if (css_serving(s, c->home))
		return true;
	l = c->home && strcmp(c->home, s->platform) ? css_link_of(s, c->home) : NULL;
	return l && l->promoting && css_plat_down(c->home, s);
}
