/* confdr-css: the conference main-control loop. Consumes the CM's requests
 * (mau.conf.q) and the MCUs' answers and notices (mau.cmu.q) while active;
 * keeps every conference in memory and in the Redis of the platform that
 * owns its user domain, its history in MySQL; every change goes through the
 * state machine of confsm.c. docs/css.md describes the flows, keys and
 * timeouts. */
#include "css.h"

#include "confsm.h"
#include "plan.h"
#include "route.h"

#include <confdr/bus.h>
#include <confdr/db.h>
#include <confdr/hmap.h>
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/redis.h>
#include <confdr/topology.h>
#include <confdr/zk.h>

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define FLUSH_MS     20	  /* rms confirm/release and MySQL batches wait at most this */
#define RMS_BATCH    2000 /* reservations per confirm or release */
#define DB_RETRY_MS  1000
#define EXPIRE_BATCH 1000
#define MAX_REDIS    16

#define K(key, type, field, def, min, max, help)                                                                       \
	{                                                                                                              \
		"css", key, type, offsetof(struct css_conf, field), def, min, max, NULL, NULL, help, NULL, 0           \
	}

const struct cdr_conf_key css_conf_keys[] = {
	K("create_timeout", CDR_CONF_MS, create_timeout_ms, "5s", 100, 600000,
	  "an MCU that has not answered a create in this time: the create fails (mcu_timeout); keep it below rms's "
	  "reservation_timeout"),
	K("end_timeout", CDR_CONF_MS, end_timeout_ms, "5s", 100, 600000,
	  "an MCU that has not answered an end in this time: the conference is closed anyway"),
	K("rms_timeout", CDR_CONF_MS, rms_timeout_ms, "2s", 100, 60000, "a request to rms gives up after this"),
	K("pms_retry", CDR_CONF_MS, pms_retry_ms, "1s", 100, 60000,
	  "at start-up the platform state is asked of pms this often until it answers"),
	K("expiry_tick", CDR_CONF_MS, expiry_tick_ms, "500ms", 50, 10000,
	  "how often the expiry sorted set is read: conferences end at most this long after their planned end"),
	K("answer_ttl", CDR_CONF_MS, answer_ttl_ms, "1h", 1000, 604800000,
	  "answers to the CM are kept in Redis this long, so a redelivered request is answered again, not executed "
	  "twice"),
	K("resume_window", CDR_CONF_MS, resume_window_ms, "15s", 1000, 600000,
	  "after a restart, a conference found creating waits this long for its request to be redelivered before it "
	  "is abandoned (ended on its MCU, reservation released)"),
	K("list_grace", CDR_CONF_MS, list_grace_ms, "3s", 0, 600000,
	  "reconciliation leaves alone conferences created or changed less than this before an MCU's list"),
	K("template_refresh", CDR_CONF_MS, template_refresh_ms, "10s", 500, 3600000,
	  "how often public conference templates are read from MySQL and published into Redis"),
	K("topology_refresh", CDR_CONF_MS, topology_refresh_ms, "30s", 1000, 3600000,
	  "how often the topology is read again from ZooKeeper"),
	K("max_confs_platform", CDR_CONF_INT, max_confs_platform, "0", 0, 10000000,
	  "conference-count limit of this platform (creates beyond it: limit_reached); 0: none"),
	K("max_duration", CDR_CONF_INT, max_duration_min, "1440", 1, 100000,
	  "a conference lasts at most this many minutes, extensions included (limit_reached)"),
	K("db_batch", CDR_CONF_INT, db_batch, "500", 1, 10000, "history rows written to MySQL per transaction"),
	K("mcu_audit", CDR_CONF_MS, mcu_audit_ms, "2s", 200, 600000,
	  "rms's MCU inventory is read this often: conferences on an MCU it does not have up (a down notice missed, "
	  "an MCU gone while css was away) are restored"),
	K("mcu_absent_grace", CDR_CONF_MS, mcu_absent_ms, "5s", 0, 600000,
	  "... once the MCU has been missing from the inventory this long (an rms restart is shorter)"),
	K("restore_window", CDR_CONF_INT, restore_window, "2000", 1, 100000,
	  "re-creates of restored conferences in flight at once (the rest wait for a slot)"),
	K("restore_attempts", CDR_CONF_INT, restore_attempts, "5", 1, 1000,
	  "a conference that could not be restored this many times in a row is ended (restore_failed, alarmed)"),
	K("restore_retry", CDR_CONF_MS, restore_retry_ms, "1s", 100, 600000,
	  "a failed allocation or re-create is tried again after this"),
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};

/* ---- the model ---- */

struct css;
struct op;

/* Conferences grouped by user domain and by MCU (lists and reconciliation). */
struct group {
	TAILQ_HEAD(, conf) confs;
	size_t n;
	uint64_t absent_since; /* MCU groups: when rms's inventory first lacked it (0: present) */
	char name[];
};

struct conf {
	char e164[40];
	char *name, *ud, *home, *host, *room, *mcu, *mcu_key, *vrs, *reservation, *req, *password, *end_reason;
	enum css_state state;
	json_t *create; /* the CM's create body, mcu and vrs set */
	int64_t start_ms, planned_end_ms, end_ms, generation, epoch;
	uint64_t changed_mono; /* last change, monotonic ms (reconciliation grace) */
	struct op *op;	       /* the operation in flight on it, or NULL */
	bool closing;	       /* ended: history being written, then the record goes */
	bool db_queued;
	bool restore_queued;	/* in s->restore_q */
	int restore_tries;	/* allocations or re-creates that failed in a row */
	char lost_mcu[64];	/* the MCU it was lost on: not used again for it */
	uint64_t restore_after; /* monotonic ms: not before (back-off after a failure) */
	uint64_t lost_mono;	/* when it was lost (restore time) */
	bool lost_by_room;	/* pending because its room went abnormal (its MCU may still run it) */
	char moved_mcu[64];	/* ... that MCU: the copy there is ended once restored elsewhere */
	char moved_key[200];
	char moved_host[64]; /* ... on the broker of that platform */
	struct group *by_ud, *by_mcu;
	TAILQ_ENTRY(conf) ud_link, mcu_link;
};

enum op_kind { OP_CREATE, OP_END, OP_RENAME, OP_EXTEND, OP_RESTORE };

/* A request in flight: the CM's create, end or rename, or an end css
 * decided itself (expiry, abandoned create). */
struct op {
	struct css *s;
	enum op_kind kind;
	int refs;
	bool dead;
	struct cdr_mq_delivery *dl; /* the CM's request, or NULL */
	struct cdr_msg *m;
	char req[128];	  /* the CM's request id */
	char mcu_id[200]; /* our envelope id to the MCU, key in s->mcu_ops */
	struct conf *c;	  /* once allocated */
	char *reason;	  /* end: why */
	char *new_name;	  /* rename */
	char *answer;	  /* the answer to the CM, once encoded */
	struct cdr_timer *timer;
	char home[64]; /* create: the platform owning the user domain (a copy: the topology may be re-read) */
	char room[64]; /* create: the user domain's room */
	void (*on_timer)(struct op *op);
	uint64_t t0;
	char nack_reason[64], nack_detail[512];
};

/* The newest conference list of an MCU (older ones are ignored). */
struct list_seq {
	int64_t seq;
	char mcu[];
};

struct plat_state {
	char id[64];
	bool down;
	int64_t epoch;
};

struct room_state {
	char id[64];
	bool abnormal;
	int64_t epoch;
};

/* A growing array of conferences (history queue, restore queue). */
struct confvec {
	struct conf **v;
	size_t n, cap;
};

static int confvec_push(struct confvec *q, struct conf *c)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 256;
		struct conf **v = realloc(q->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		q->v = v;
		q->cap = cap;
	}
	q->v[q->n++] = c;
	return 0;
}

struct rsv_batch {
	json_t *ids; /* array */
	bool confirm;
};

struct redis_link {
	struct css *s;
	char platform[64];
	struct cdr_redis *r; /* own: the daemon's; others: our own client */
	bool own;
	struct cdr_redis_script *put, *del, *tpl;
	/* another platform's (its replica, held here): the takeover while it is down */
	bool promoting;	   /* REPLICAOF NO ONE sent, or its records being read */
	bool serving;	   /* promoted and read: this css serves the platform's user domains */
	uint64_t since;	   /* monotonic ms the takeover began */
	struct cdr_db *db; /* the platform's MySQL (its history rows) */
	bool db_up;
};

/* The broker of another platform: control messages for conferences hosted
 * there go to its mau.cmcmu.ex (design section 6, platform back). */
struct peer_mq {
	char platform[64];
	struct cdr_mq *mq;
};

struct css {
	struct cdr_daemon *d;
	struct css_conf conf;
	char platform[64];
	struct cdr_bus bus;
	struct cdr_topology *topo;
	struct cdr_topo_follow *follow;

	bool active;
	int64_t epoch;
	bool pms_known; /* the platform state was answered */
	bool loaded;	/* the view is rebuilt from Redis */
	bool loading;
	bool consuming;
	struct cdr_mq *subscribed;

	struct plat_state *plats;
	size_t nplats;
	struct room_state *rooms;
	size_t nrooms;

	struct cdr_hmap *confs;	   /* e164 -> conf */
	struct cdr_hmap *uds;	   /* user domain -> group */
	struct cdr_hmap *mcus;	   /* mcu -> group */
	struct cdr_hmap *reqs;	   /* CM request id -> op */
	struct cdr_hmap *mcu_ops;  /* our id to an MCU -> op */
	struct cdr_hmap *list_seq; /* mcu -> struct list_seq */

	struct redis_link links[MAX_REDIS];
	size_t nlinks;
	struct peer_mq peers[MAX_REDIS];
	size_t npeers;
	struct cdr_timer *takeover_timer;

	struct rsv_batch confirm, release;
	struct confvec dbq; /* conferences whose history row is to be written */
	bool db_busy;
	uint64_t gen; /* bumped when the view is dropped (standby): older callbacks are void */

	struct confvec restore_q; /* pending restore, waiting for an allocation or a slot in the window */
	size_t restoring;	  /* re-creates in flight (at most [css] restore_window) */
	bool alloc_pending;	  /* one bulk allocation at a time */

	json_t *templates; /* array of the published templates */
	char *templates_txt;

	struct cdr_timer *pms_timer, *expiry_timer, *flush_timer, *tpl_timer, *db_timer, *stats_timer, *restore_timer,
		*audit_timer;
	bool audit_pending;

	struct {
		uint64_t created, create_failed, ended, orphans_ended, missing, late_acks, duplicates, refused;
		uint64_t lost, restored, restore_failed, moved_ended, adopted;
	} n;
};

static int64_t wall(void)
{
	return (int64_t)cdr_wall_ms();
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void set_str(char **dst, const char *v)
{
	char *n = xstrdup(v);

	free(*dst);
	*dst = n;
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* ---- groups (by user domain, by MCU) ---- */

static struct group *group_get(struct cdr_hmap *m, const char *name, bool create)
{
	struct group *g = cdr_hmap_get(m, name);
	size_t len;

	if (g || !create)
		return g;
	len = strlen(name);
	if (!(g = calloc(1, sizeof(*g) + len + 1)))
		return NULL;
	memcpy(g->name, name, len + 1);
	TAILQ_INIT(&g->confs);
	if (cdr_hmap_put(m, g->name, g) < 0) {
		free(g);
		return NULL;
	}
	return g;
}

static void group_leave_ud(struct css *s, struct conf *c)
{
	struct group *g = c->by_ud;

	if (!g)
		return;
	TAILQ_REMOVE(&g->confs, c, ud_link);
	c->by_ud = NULL;
	if (--g->n == 0) {
		cdr_hmap_del(s->uds, g->name);
		free(g);
	}
}

static void group_leave_mcu(struct css *s, struct conf *c)
{
	struct group *g = c->by_mcu;

	if (!g)
		return;
	TAILQ_REMOVE(&g->confs, c, mcu_link);
	c->by_mcu = NULL;
	if (--g->n == 0) {
		cdr_hmap_del(s->mcus, g->name);
		free(g);
	}
}

/* Files c under its MCU (after the MCU changed). */
static void index_mcu(struct css *s, struct conf *c)
{
	struct group *g;

	if (c->by_mcu && c->mcu && !strcmp(c->by_mcu->name, c->mcu))
		return;
	group_leave_mcu(s, c);
	if (c->mcu && *c->mcu && (g = group_get(s->mcus, c->mcu, true))) {
		TAILQ_INSERT_TAIL(&g->confs, c, mcu_link);
		g->n++;
		c->by_mcu = g;
	}
}

static struct conf *conf_new(struct css *s, const char *e164, const char *ud)
{
	struct conf *c = calloc(1, sizeof(*c));
	struct group *g;

	if (!c)
		return NULL;
	snprintf(c->e164, sizeof(c->e164), "%s", e164);
	c->ud = strdup(ud);
	c->changed_mono = cdr_now_ms();
	if (!c->ud || !(g = group_get(s->uds, ud, true)) || cdr_hmap_put(s->confs, c->e164, c) < 0) {
		free(c->ud);
		free(c);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&g->confs, c, ud_link);
	g->n++;
	c->by_ud = g;
	return c;
}

static void conf_free(struct css *s, struct conf *c)
{
	if (!c)
		return;
	if (cdr_hmap_get(s->confs, c->e164) == c)
		cdr_hmap_del(s->confs, c->e164);
	group_leave_ud(s, c);
	group_leave_mcu(s, c);
	free(c->name);
	free(c->ud);
	free(c->home);
	free(c->host);
	free(c->room);
	free(c->mcu);
	free(c->mcu_key);
	free(c->vrs);
	free(c->reservation);
	free(c->req);
	free(c->password);
	free(c->end_reason);
	json_decref(c->create);
	free(c);
}

/* The one place a conference changes state. Returns 0, or -1 (logged) when
 * the event is not allowed in its state. */
static int conf_event(struct conf *c, enum css_event ev)
{
	int next = css_sm_next(c->state, ev);

	if (next < 0) {
		cdr_debug("conference %s: %s ignored in state %s", c->e164, css_event_name(ev),
			  css_state_name(c->state));
		return -1;
	}
	if ((enum css_state)next != c->state)
		cdr_debug("conference %s: %s -> %s (%s)", c->e164, css_state_name(c->state),
			  css_state_name((enum css_state)next), css_event_name(ev));
	c->state = (enum css_state)next;
	c->changed_mono = cdr_now_ms();
	return 0;
}

static json_t *conf_json(const struct conf *c)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:I, s:I, s:I}", "e164", c->e164, "name",
			      nz(c->name), "user_domain", c->ud, "platform", nz(c->home), "host_platform",
			      c->host ? json_string(c->host) : json_null(), "room",
			      c->room ? json_string(c->room) : json_null(), "mcu",
			      c->mcu && *c->mcu && c->state != CSS_PENDING_RESTORE ? json_string(c->mcu) : json_null(),
			      "vrs", c->vrs && *c->vrs ? json_string(c->vrs) : json_null(), "state",
			      css_state_name(c->state), "start", (json_int_t)c->start_ms, "planned_end",
			      (json_int_t)c->planned_end_ms, "generation", (json_int_t)c->generation);
	return o;
}

/* ---- Redis: the live records ---- */

/* KEYS[1] conf:<e164>. ARGV: epoch, e164, user domain, mcu ("" none), state,
 * planned end, answer key ("" none), answer, answer ttl (s), then field,
 * value pairs. Refuses a record written with a newer epoch (fencing). */
static const char put_lua[] =
	"local cur = redis.call('HMGET', KEYS[1], 'epoch', 'writer')\n"
	"local w = ''\n"
	"for i = 10, #ARGV, 2 do if ARGV[i] == 'writer' then w = ARGV[i + 1] end end\n"
	"if cur[1] and (not cur[2] or cur[2] == w) and tonumber(cur[1]) > tonumber(ARGV[1]) then\n"
	"  return redis.error_reply('STALE record written with epoch ' .. cur[1])\n"
	"end\n"
	"local old = redis.call('HGET', KEYS[1], 'mcu')\n"
	"if old and old ~= '' and old ~= ARGV[4] then redis.call('SREM', 'confs:mcu:' .. old, ARGV[2]) end\n"
	"if ARGV[4] ~= '' then redis.call('SADD', 'confs:mcu:' .. ARGV[4], ARGV[2]) end\n"
	"redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'mcu', ARGV[4], 'state', ARGV[5], 'planned_end', ARGV[6],\n"
	"           unpack(ARGV, 10))\n"
	"redis.call('SADD', 'confs:all', ARGV[2])\n"
	"redis.call('SADD', 'confs:ud:' .. ARGV[3], ARGV[2])\n"
	"if ARGV[5] == 'ending' or ARGV[5] == 'ended' then redis.call('ZREM', 'confs:expiry', ARGV[2])\n"
	"else redis.call('ZADD', 'confs:expiry', ARGV[6], ARGV[2]) end\n"
	"if ARGV[5] == 'pending_restore' then redis.call('SADD', 'confs:pending_restore', ARGV[2])\n"
	"else redis.call('SREM', 'confs:pending_restore', ARGV[2]) end\n"
	"if ARGV[7] ~= '' then redis.call('SET', ARGV[7], ARGV[8], 'EX', ARGV[9]) end\n"
	"return 1\n";

/* KEYS[1] conf:<e164>. ARGV: epoch, e164, start, answer key, answer, ttl.
 * Removes the record and its index entries, if it is still the one that
 * started at start. */
static const char del_lua[] = "local h = redis.call('HMGET', KEYS[1], 'epoch', 'user_domain', 'mcu', 'start')\n"
			      "if h[1] and tonumber(h[1]) > tonumber(ARGV[1]) then\n"
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

static struct redis_link *link_of(struct css *s, const char *platform)
{
	for (size_t i = 0; platform && i < s->nlinks; i++)
		if (!strcmp(s->links[i].platform, platform))
			return &s->links[i];
	return NULL;
}

static struct cdr_redis *redis_of(struct css *s, const char *platform)
{
	struct redis_link *l = link_of(s, platform);

	if (!l)
		return NULL;
	return l->own ? cdr_daemon_redis(s->d) : l->r;
}

static bool plat_down(const char *p, void *arg);

/* Whether this css serves platform's user domains now: its own unless
 * declared down; another's while taken over (promoted and read). */
static bool serving(struct css *s, const char *platform)
{
	struct redis_link *l;

	if (!platform || !*platform || !strcmp(platform, s->platform))
		return !plat_down(s->platform, s);
	l = link_of(s, platform);
	return l && l->serving;
}

/* Whether css acts on c (writes it, restores it, ends what it lost): its
 * platform is served here, or being taken over (its records being read). */
static bool acts_for(struct css *s, const struct conf *c)
{
	struct redis_link *l;

	if (serving(s, c->home))
		return true;
	l = c->home && strcmp(c->home, s->platform) ? link_of(s, c->home) : NULL;
	return l && l->promoting && plat_down(c->home, s);
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

static struct redis_link *ready_link(struct css *s, const char *platform)
{
	struct redis_link *l = link_of(s, platform);
	struct cdr_redis *r = redis_of(s, platform);

	if (!l || link_scripts(l, r) < 0)
		return NULL;
	return l;
}

#define PUT_FIELDS 18

/* Writes c (its whole record) to the Redis of its home platform, with the
 * answer to the CM (akey/atxt, may be NULL) in the same atomic step. */
static int store_put(struct css *s, struct conf *c, const char *akey, const char *atxt, cdr_redis_fn cb, void *arg)
{
	struct redis_link *l = ready_link(s, c->home);
	char key[64], epoch[24], pend[24], ttl[24], start[24], gen[24], endms[24], *create = NULL;
	const char *argv[9 + 2 * PUT_FIELDS];
	int n = 0, r;

	if (!l)
		return -ENOTCONN;
	if (!acts_for(s, c))
		return -EPERM; /* its platform is served elsewhere now: not ours to write */
	snprintf(key, sizeof(key), "conf:%s", c->e164);
	snprintf(epoch, sizeof(epoch), "%" PRId64, s->epoch);
	snprintf(pend, sizeof(pend), "%" PRId64, c->planned_end_ms);
	snprintf(ttl, sizeof(ttl), "%" PRIu64, s->conf.answer_ttl_ms / 1000);
	snprintf(start, sizeof(start), "%" PRId64, c->start_ms);
	snprintf(gen, sizeof(gen), "%" PRId64, c->generation);
	snprintf(endms, sizeof(endms), "%" PRId64, c->end_ms);
	if (c->create && !(create = json_dumps(c->create, JSON_COMPACT)))
		return -ENOMEM;
	argv[n++] = epoch;
	argv[n++] = c->e164;
	argv[n++] = c->ud;
	argv[n++] = nz(c->mcu);
	argv[n++] = css_state_name(c->state);
	argv[n++] = pend;
	argv[n++] = nz(akey);
	argv[n++] = nz(atxt);
	argv[n++] = ttl;
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
	F("create", nz(create));
	F("start", start);
	F("generation", gen);
	F("end_ms", endms);
	F("end_reason", nz(c->end_reason));
	F("writer", s->platform); /* epochs are compared between writers of one platform only */
#undef F
	{
		const char *keys[1] = { key };

		r = cdr_redis_script_run(l->put, cb, arg, 1, keys, n, argv);
	}
	free(create);
	return r;
}

static int store_del(struct css *s, struct conf *c, const char *akey, const char *atxt, cdr_redis_fn cb, void *arg)
{
	struct redis_link *l = ready_link(s, c->home);
	char key[64], epoch[24], ttl[24], start[24];
	const char *keys[1] = { key }, *argv[6];

	if (!acts_for(s, c))
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
	return cdr_redis_script_run(l->del, cb, arg, 1, keys, 6, argv);
}

static const char *redis_err(int status, const redisReply *reply)
{
	if (status == -EPROTO && reply && reply->str)
		return reply->str;
	return strerror(-status);
}

static void on_stored_bg(int status, const redisReply *reply, void *arg)
{
	char *e164 = arg;

	if (status < 0 && status != -ECANCELED)
		cdr_warn("conference %s: change not stored in Redis: %s", e164, redis_err(status, reply));
	free(e164);
}

/* Writes c without waiting (a failure is logged). */
static void store_bg(struct css *s, struct conf *c)
{
	char *e164 = strdup(c->e164);

	if (e164 && store_put(s, c, NULL, NULL, on_stored_bg, e164) < 0) {
		cdr_warn("conference %s: change not stored in Redis (not connected)", c->e164);
		free(e164);
	}
}

/* ---- operations in flight ---- */

static void op_on_timer(void *arg)
{
	struct op *op = arg;

	if (!op->dead && op->on_timer)
		op->on_timer(op);
}

static struct op *op_new(struct css *s, enum op_kind kind, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	if (cdr_timer_new(cdr_daemon_loop(s->d), op_on_timer, op, &op->timer) < 0) {
		free(op);
		return NULL;
	}
	op->s = s;
	op->kind = kind;
	op->refs = 1;
	op->dl = dl;
	op->m = m;
	op->t0 = cdr_now_ms();
	if (m) {
		snprintf(op->req, sizeof(op->req), "%s", cdr_msg_id(m));
		if (cdr_hmap_put(s->reqs, op->req, op) < 0)
			op->req[0] = '\0';
	}
	return op;
}

static void op_ref(struct op *op)
{
	op->refs++;
}

static void op_unref(struct op *op)
{
	if (--op->refs > 0)
		return;
	cdr_timer_free(op->timer);
	cdr_msg_free(op->m);
	free(op->reason);
	free(op->new_name);
	free(op->answer);
	free(op);
}

/* The operation is over (answered, or abandoned at a standby): out of every
 * map; callbacks still pending see it dead. A CM request not answered is put
 * back for the next active instance. */
static void op_done(struct op *op)
{
	struct css *s = op->s;

	if (op->dead)
		return;
	op->dead = true;
	cdr_timer_stop(op->timer);
	if (op->req[0] && cdr_hmap_get(s->reqs, op->req) == op)
		cdr_hmap_del(s->reqs, op->req);
	if (op->mcu_id[0] && cdr_hmap_get(s->mcu_ops, op->mcu_id) == op)
		cdr_hmap_del(s->mcu_ops, op->mcu_id);
	if (op->c && op->c->op == op)
		op->c->op = NULL;
	if (op->dl) {
		cdr_mq_nack(op->dl, true);
		op->dl = NULL;
	}
	op_unref(op);
}

/* The encoded answer to op's CM request. */
static char *answer_text(struct op *op, bool ack, json_t *body)
{
	return cdr_msg_encode_reply(op->m, ack, op->s->bus.src, body);
}

/* Sends txt to the CM and acks its request. */
static void answer_send(struct op *op, const char *txt)
{
	if (!op->dl)
		return;
	if (txt)
		cdr_bus_send_reply(&op->s->bus, op->dl, txt);
	cdr_mq_ack(op->dl);
	op->dl = NULL;
}

/* Answers op's CM request at once (nothing to store with it). */
static void answer_now(struct op *op, bool ack, json_t *body)
{
	char *txt = answer_text(op, ack, body);

	answer_send(op, txt);
	free(txt);
}

static json_t *nack_body(const char *e164, const char *reason, const char *detail)
{
	json_t *b = cdr_bus_nack_body(reason, detail);

	if (b && e164 && *e164)
		json_object_set_new(b, "e164", json_string(e164));
	return b;
}

/* Refuses a CM request (m) outright and frees m. */
static void refuse(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m, const char *reason, const char *detail)
{
	const char *e164 = cdr_msg_str(m, "e164", NULL);

	s->n.refused++;
	cdr_info("%s %s refused: %s: %s", cdr_msg_type(m), cdr_msg_id(m), reason, detail);
	cdr_bus_answer(&s->bus, dl, m, false, nack_body(e164, reason, detail), false);
	cdr_msg_free(m);
}

static void answer_key(const char *req, char *buf, size_t len)
{
	snprintf(buf, len, "answer:%s", req);
}

/* ---- publishing: MCUs, CM, BMC, UPU, alarms ---- */

/* The broker of host platform: this css drives only its own platform's
 * MCUs; a conference hosted elsewhere after a platform failover is reached
 * through that platform's broker (issue of DR: not yet connected). */
static struct cdr_mq *mq_of_host(struct css *s, const char *host)
{
	const struct cdr_endpoint *ep;
	struct cdr_mq_opts o = { 0 };
	struct peer_mq *pm;
	char url[1024], name[96];

	if (!host || !*host || !strcmp(host, s->platform))
		return cdr_daemon_mq(s->d);
	for (size_t i = 0; i < s->npeers; i++)
		if (!strcmp(s->peers[i].platform, host))
			return s->peers[i].mq;
	if (s->npeers >= MAX_REDIS || !s->topo || !(ep = cdr_topology_main_endpoint(s->topo, host, CDR_SVC_MQ)) ||
	    cdr_daemon_amqp_url(s->d, ep, url, sizeof(url)) < 0)
		return NULL;
	pm = &s->peers[s->npeers];
	snprintf(name, sizeof(name), "css-%s-to-%s", s->platform, host);
	o.url = url;
	o.name = name;
	if (cdr_mq_new(cdr_daemon_loop(s->d), &o, &pm->mq) < 0)
		return NULL;
	snprintf(pm->platform, sizeof(pm->platform), "%s", host);
	s->npeers++;
	cdr_notice("broker of platform %s (%s:%d/%s): connecting, for conferences hosted there", host, ep->host,
		   ep->port, ep->vhost ? ep->vhost : "/");
	return pm->mq;
}

static int mcu_send(struct css *s, const struct conf *c, const char *type, const char *id, json_t *body,
		    cdr_mq_confirm_fn confirm, void *arg)
{
	struct cdr_mq *mq = mq_of_host(s, c->host);

	if (!mq) {
		json_decref(body);
		cdr_warn("%s for %s not sent: no broker for platform %s", type, c->e164, nz(c->host));
		return -ENOTCONN;
	}
	return cdr_bus_publish(&s->bus, mq, CDR_MQ_MAU_CMCMU_EX, c->mcu_key, type, id, s->epoch, body, true, confirm,
			       arg);
}

static void end_on_host(struct css *s, const char *host, const char *e164, const char *mcu, const char *key,
			const char *reason)
{
	struct cdr_mq *mq = mq_of_host(s, host);

	if (!mq) {
		cdr_warn("conference %s: end on %s not sent: no broker for platform %s", e164, mcu, nz(host));
		return;
	}
	cdr_bus_publish(&s->bus, mq, CDR_MQ_MAU_CMCMU_EX, key && *key ? key : mcu, "mau_cmu_endconf_req", NULL,
			s->epoch,
			json_pack("{s:s, s:s, s:I}", "e164", e164, "reason", reason, "epoch", (json_int_t)s->epoch),
			false, NULL, NULL);
}

static void end_on_mcu(struct css *s, const char *e164, const char *mcu, const char *key, const char *reason)
{
	end_on_host(s, NULL, e164, mcu, key, reason);
}

static void notify(struct css *s, const char *exchange, const char *key, const char *type, json_t *body)
{
	cdr_bus_publish(&s->bus, NULL, exchange, key, type, NULL, s->epoch, body, false, NULL, NULL);
}

static void upu_report(struct css *s, const struct conf *c, bool start)
{
	notify(s, CDR_MQ_UPU_NTF_EX, "", "mau_upu_e164_ntf",
	       json_pack("{s:s, s:s, s:s, s:s, s:s}", "e164", c->e164, "user_domain", c->ud, "platform", nz(c->home),
			 "state", start ? "start" : "end", "kind", "conference"));
}

static void bmc_record(struct css *s, const struct conf *c)
{
	char rid[128];

	snprintf(rid, sizeof(rid), "%s-%s-%" PRId64, nz(c->home), c->e164, c->start_ms);
	notify(s, "", CDR_MQ_BMC_CDR_Q, "mau_bmc_cdr_ntf",
	       json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:s}", "record_id", rid, "e164", c->e164,
			 "name", c->name && *c->name ? c->name : c->e164, "user_domain", c->ud, "platform", nz(c->home),
			 "host_platform", c->host ? c->host : nz(c->home), "room", c->room ? c->room : "-", "mcu",
			 c->mcu && *c->mcu ? json_string(c->mcu) : json_null(), "start", (json_int_t)c->start_ms, "end",
			 (json_int_t)c->end_ms, "reason", nz(c->end_reason)));
}

static void alarm(struct css *s, const char *severity, const char *kind, const char *target, const char *detail)
{
	cdr_log(severity[0] == 'c' && severity[1] == 'l' ? CDR_LOG_NOTICE : CDR_LOG_WARN, "ALARM %s %s %s: %s",
		severity, kind, target, detail);
	notify(s, CDR_MQ_ALARM_EX, "", "mau_all_alarm_ntf",
	       json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "severity", severity, "kind", kind, "target", target,
			 "platform", s->platform, "detail", detail, "epoch", (json_int_t)s->epoch));
}

/* ---- rms ---- */

typedef void (*rms_fn)(struct css *s, int status, const struct cdr_msg *reply, void *arg);

struct rms_call {
	struct css *s;
	rms_fn fn;
	void *arg;
};

static void on_rms_reply(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct rms_call *rc = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;

	if (status == 0 && cdr_msg_decode(reply->body, reply->len, 0, &m, &err) < 0) {
		cdr_warn("rms answered with a message css cannot read (%s): %s", cdr_msg_fault_name(err.fault),
			 err.detail);
		status = -EBADMSG;
	}
	rc->fn(rc->s, status, m, rc->arg);
	cdr_msg_free(m);
	free(rc);
}

/* Sends a request to this platform's rms; fn runs once (status 0 with the
 * decoded answer, or a negative errno). */
static int rms_call(struct css *s, const char *type, json_t *body, rms_fn fn, void *arg)
{
	struct cdr_mq *mq = cdr_daemon_mq(s->d);
	struct rms_call *rc;
	char id[200], *txt;
	int r;

	if (!mq) {
		json_decref(body);
		return -ENOTCONN;
	}
	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	if (!(rc = calloc(1, sizeof(*rc))) || !(txt = cdr_msg_encode(type, id, s->bus.src, 0, body))) {
		free(rc);
		return -ENOMEM;
	}
	rc->s = s;
	rc->fn = fn;
	rc->arg = arg;
	r = cdr_mq_request(mq, "", CDR_MQ_RMS_REQ_Q, txt, strlen(txt), (unsigned)s->conf.rms_timeout_ms, on_rms_reply,
			   rc);
	free(txt);
	if (r < 0)
		free(rc);
	return r;
}

static bool is_ack(const struct cdr_msg *m)
{
	const char *t = cdr_msg_type(m);
	size_t n = strlen(t);

	return n > 4 && !strcmp(t + n - 4, "_ack");
}

/* Confirmations and releases go in batches (one request per FLUSH_MS). */
static void rsv_add(struct css *s, bool confirm, const char *id)
{
	struct rsv_batch *b = confirm ? &s->confirm : &s->release;

	if (!id || !*id)
		return;
	if (!b->ids)
		b->ids = json_array();
	json_array_append_new(b->ids, json_string(id));
	if (!cdr_timer_pending(s->flush_timer))
		cdr_timer_start(s->flush_timer, FLUSH_MS, false);
}

struct rsv_req {
	json_t *ids;
	bool confirm;
	int tries;
};

static void rsv_send(struct css *s, struct rsv_req *rr);

static void on_rsv_reply(struct css *s, int status, const struct cdr_msg *reply, void *arg)
{
	struct rsv_req *rr = arg;

	if (status == 0 && is_ack(reply)) {
		cdr_debug("%s of %zu reservations: %" PRId64 " done", rr->confirm ? "confirmation" : "release",
			  json_array_size(rr->ids), cdr_msg_int(reply, "done", 0));
	} else if (status == -ECANCELED) {
		/* shutting down */
	} else if (++rr->tries < 3 && status != 0) {
		cdr_warn("%s of %zu reservations: %s; retrying", rr->confirm ? "confirmation" : "release",
			 json_array_size(rr->ids), strerror(-status));
		rsv_send(s, rr);
		return;
	} else {
		cdr_warn("%s of %zu reservations failed (%s): rms lets unconfirmed reservations expire",
			 rr->confirm ? "confirmation" : "release", json_array_size(rr->ids),
			 status ? strerror(-status) : cdr_msg_str(reply, "reason", "?"));
	}
	json_decref(rr->ids);
	free(rr);
}

static void rsv_send(struct css *s, struct rsv_req *rr)
{
	json_t *body = json_pack("{s:O, s:I}", "reservations", rr->ids, "epoch", (json_int_t)s->epoch);
	int r;

	if (!rr->confirm)
		json_object_set_new(body, "reason", json_string("conference_ended"));
	if ((r = rms_call(s, rr->confirm ? "mau_rms_confirm_req" : "mau_rms_release_req", body, on_rsv_reply, rr)) <
	    0) {
		cdr_warn("%s of %zu reservations not sent: %s", rr->confirm ? "confirmation" : "release",
			 json_array_size(rr->ids), strerror(-r));
		json_decref(rr->ids);
		free(rr);
	}
}

static void rsv_flush_one(struct css *s, struct rsv_batch *b, bool confirm)
{
	while (b->ids && json_array_size(b->ids) > 0) {
		struct rsv_req *rr = calloc(1, sizeof(*rr));
		size_t n = json_array_size(b->ids), take = n > RMS_BATCH ? RMS_BATCH : n;

		if (!rr)
			return;
		rr->confirm = confirm;
		if (take == n) {
			rr->ids = b->ids;
			b->ids = NULL;
		} else {
			rr->ids = json_array();
			for (size_t i = 0; i < take; i++)
				json_array_append(rr->ids, json_array_get(b->ids, i));
			for (size_t i = 0; i < take; i++)
				json_array_remove(b->ids, 0);
		}
		rsv_send(s, rr);
	}
}

/* ---- MySQL: the history ---- */

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
	struct conf **confs;
	enum css_state *written;
	struct cdr_db_stmt *stmts;
	struct cdr_db_param *params;
	char **texts; /* create JSON per row */
};

static void db_kick(struct css *s);

/* Queues c's history row (written with its state at the time of the flush). */
static void db_queue(struct css *s, struct conf *c)
{
	if (c->db_queued)
		return;
	if (confvec_push(&s->dbq, c) < 0) {
		cdr_err("history of %s not queued: out of memory", c->e164);
		return;
	}
	c->db_queued = true;
	db_kick(s);
}

static void db_batch_free(struct db_batch *b)
{
	for (size_t i = 0; b->texts && i < b->n; i++)
		free(b->texts[i]);
	free(b->texts);
	free(b->confs);
	free(b->written);
	free(b->stmts);
	free(b->params);
	free(b);
}

static void conf_gone(struct css *s, struct conf *c);
static void drop_view(struct css *s);
static void maybe_consume(struct css *s);
struct load;
static void takeover_loaded(struct css *s, struct load *ld);
static void takeover_check(struct css *s);

static void on_db_batch(const struct cdr_db_result *r, void *arg)
{
	struct db_batch *b = arg;
	struct css *s = b->s;

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
			alarm(s, "minor", "history_write_failed", s->platform, detail);
			s->db_busy = true; /* until the retry timer */
			for (size_t i = 0; i < b->n; i++)
				db_queue(s, b->confs[i]);
			cdr_timer_start(s->db_timer, DB_RETRY_MS, false);
		} else {
			for (size_t i = 0; i < b->n; i++)
				if (b->written[i] == CSS_ENDED && b->confs[i]->state == CSS_ENDED)
					conf_gone(s, b->confs[i]);
			db_kick(s);
		}
	}
	db_batch_free(b);
}

static void db_retry(void *arg)
{
	struct css *s = arg;

	s->db_busy = false;
	db_kick(s);
}

/* Writes the next batch of queued rows, one batch in flight at a time. */
/* The MySQL of a conference's home platform (history follows the records). */
static struct cdr_db *db_of(struct css *s, const char *home)
{
	struct redis_link *l = link_of(s, home);

	if (!home || !strcmp(home, s->platform) || !l)
		return cdr_daemon_db(s->d);
	/* another platform's MySQL only while connected: rows for it wait in
	 * the queue, and never hold up our own behind a dead connection */
	return l->db_up ? l->db : NULL;
}

static void db_kick(struct css *s)
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

			if (!acts_for(s, c)) {
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
	if (!(b = calloc(1, sizeof(*b))) || !(b->confs = calloc(n, sizeof(*b->confs))) ||
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
		b->confs[i] = c;
		b->written[i] = c->state;
		b->texts[i] = c->create ? json_dumps(c->create, JSON_COMPACT) : NULL;
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
		for (size_t i = 0; i < n; i++)
			db_queue(s, b->confs[i]);
		db_batch_free(b);
		cdr_timer_start(s->db_timer, DB_RETRY_MS, false);
		return;
	}
	s->db_busy = true;
}

/* ---- ending and closing ---- */

/* The record is gone from Redis and memory (history written). */
static void on_gone(int status, const redisReply *reply, void *arg)
{
	char *e164 = arg;

	if (status < 0 && status != -ECANCELED)
		cdr_warn("conference %s: its ended record stays in Redis: %s", e164, redis_err(status, reply));
	free(e164);
}

static void conf_gone(struct css *s, struct conf *c)
{
	char *e164 = strdup(c->e164);
	int r;

	if (e164 && (r = store_del(s, c, NULL, NULL, on_gone, e164)) < 0) {
		cdr_warn("conference %s: its ended record stays in Redis: %s", c->e164, strerror(-r));
		free(e164);
	}
	conf_free(s, c);
}

struct close_ctx {
	struct css *s;
	struct conf *c;
	struct op *op;
	uint64_t gen;
	char *answer;
};

static void on_closed(int status, const redisReply *reply, void *arg)
{
	struct close_ctx *x = arg;
	struct css *s = x->s;

	if (status != -ECANCELED && x->gen == s->gen) {
		struct conf *c = x->c;

		if (status < 0)
			cdr_warn("conference %s: ended state not written to Redis: %s (history goes on)", c->e164,
				 redis_err(status, reply));
		if (x->op && !x->op->dead)
			answer_send(x->op, x->answer);
		notify(s, CDR_MQ_CM_NTF_EX, "", "mau_cm_confended_ntf",
		       json_pack("{s:s, s:s, s:s, s:I}", "e164", c->e164, "user_domain", c->ud, "reason",
				 nz(c->end_reason), "ended_at", (json_int_t)c->end_ms));
		bmc_record(s, c);
		upu_report(s, c, false);
		rsv_add(s, false, c->reservation);
		s->n.ended++;
		cdr_info("conference %s ended (%s)", c->e164, nz(c->end_reason));
		db_queue(s, c);
	}
	if (x->op) {
		op_done(x->op);
		op_unref(x->op);
	}
	free(x->answer);
	free(x);
}

/* c has reached ENDED: the ended state (and the answer to op's CM request,
 * when op) is written, then notices, billing, release, history, removal. */
static void conf_close(struct css *s, struct conf *c, const char *reason, struct op *op)
{
	struct close_ctx *x = calloc(1, sizeof(*x));
	char akey[160];
	int r;

	c->closing = true;
	c->end_ms = wall();
	if (!c->end_reason)
		set_str(&c->end_reason, reason);
	if (!x) {
		cdr_err("conference %s: out of memory closing it", c->e164);
		return;
	}
	x->s = s;
	x->c = c;
	x->gen = s->gen;
	if (op) {
		x->op = op;
		op_ref(op);
		if (op->dl)
			x->answer = answer_text(op, true, json_pack("{s:s}", "e164", c->e164));
		answer_key(op->req, akey, sizeof(akey));
	}
	if ((r = store_put(s, c, op && x->answer ? akey : NULL, x->answer, on_closed, x)) < 0)
		on_closed(r, NULL, x);
}

static void end_timeout(struct op *op);

static void on_end_published(int status, void *arg)
{
	struct op *op = arg;

	if (status == -EIO && !op->dead) {
		/* Unroutable: the MCU is gone, and the conference with it. */
		cdr_info("conference %s: its MCU has no queue; closed", op->c ? op->c->e164 : "?");
		cdr_timer_start(op->timer, 0, false);
	}
	op_unref(op);
}

/* Ends c on its MCU (reason), then closes it. op may carry the CM's request. */
static void conf_end(struct css *s, struct conf *c, const char *reason, struct op *op)
{
	char id[200];
	int r;

	if (conf_event(c, c->state == CSS_RUNNING && !strcmp(reason, "expired") ? CSS_EV_EXPIRE : CSS_EV_END) < 0) {
		if (op) {
			char detail[160];

			snprintf(detail, sizeof(detail), "conference %s is %s", c->e164, css_state_name(c->state));
			answer_now(op, false,
				   nack_body(c->e164, c->state == CSS_CREATING ? "in_progress" : "unknown_conference",
					     detail));
			op_done(op);
		}
		return;
	}
	if (c->state == CSS_ENDED) { /* pending restore: nothing runs where css places it */
		if (c->moved_mcu[0]) /* its room was switched away: the MCU there may still run it */
			end_on_host(s, c->moved_host, c->e164, c->moved_mcu, c->moved_key, reason);
		conf_close(s, c, reason, op);
		return;
	}
	if (!op && !(op = op_new(s, OP_END, NULL, NULL))) {
		cdr_err("conference %s: out of memory ending it", c->e164);
		return;
	}
	op->kind = OP_END;
	op->c = c;
	c->op = op;
	set_str(&op->reason, reason);
	set_str(&c->end_reason, reason);
	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	snprintf(op->mcu_id, sizeof(op->mcu_id), "%s", id);
	cdr_hmap_put(s->mcu_ops, op->mcu_id, op);
	/* The ending state is written before the MCU is told (a restart resumes it). */
	store_bg(s, c);
	op_ref(op);
	if ((r = mcu_send(
		     s, c, "mau_cmu_endconf_req", id,
		     json_pack("{s:s, s:s, s:I}", "e164", c->e164, "reason", reason, "epoch", (json_int_t)s->epoch),
		     on_end_published, op)) < 0)
		op_unref(op);
	op->on_timer = end_timeout;
	cdr_timer_start(op->timer, r < 0 ? 0 : s->conf.end_timeout_ms, false);
}

/* The MCU answered the end, or not in time: the conference is over. */
static void end_finish(struct op *op, enum css_event ev)
{
	struct conf *c = op->c;

	if (op->mcu_id[0] && cdr_hmap_get(op->s->mcu_ops, op->mcu_id) == op)
		cdr_hmap_del(op->s->mcu_ops, op->mcu_id);
	op->mcu_id[0] = '\0';
	cdr_timer_stop(op->timer);
	conf_event(c, ev);
	if (c->state != CSS_ENDED)
		conf_event(c, CSS_EV_END_DONE);
	c->op = NULL;
	conf_close(op->s, c, op->reason, op);
}

static void end_timeout(struct op *op)
{
	cdr_warn("conference %s: %s did not answer the end in time; closed anyway", op->c->e164, nz(op->c->mcu));
	end_finish(op, CSS_EV_TIMEOUT);
}

/* ---- create ---- */

static bool plat_down(const char *p, void *arg)
{
	struct css *s = arg;

	for (size_t i = 0; i < s->nplats; i++)
		if (!strcmp(s->plats[i].id, p))
			return s->plats[i].down;
	return false;
}

static bool room_abnormal(const char *id, void *arg)
{
	struct css *s = arg;

	for (size_t i = 0; i < s->nrooms; i++)
		if (!strcmp(s->rooms[i].id, id))
			return s->rooms[i].abnormal;
	return false;
}

/* The room rms is asked for and the rooms it must skip (plan.h), as JSON. */
static json_t *exclude_json(const struct css_place *pl)
{
	json_t *a = json_array();

	for (size_t i = 0; i < pl->nexclude; i++)
		json_array_append_new(a, json_string(pl->exclude[i]));
	return a;
}

static void create_fail(struct op *op, const char *reason, const char *detail);
static void create_send(struct op *op);

/* Fails a create before anything was written: the placeholder goes. */
static void create_refuse(struct op *op, const char *reason, const char *detail)
{
	struct css *s = op->s;
	struct conf *c = op->c;

	s->n.create_failed++;
	cdr_info("create %s (%s) refused: %s: %s", c ? c->e164 : "?", op->req, reason, detail);
	answer_now(op, false, nack_body(c ? c->e164 : cdr_msg_str(op->m, "e164", NULL), reason, detail));
	if (c) {
		c->op = NULL;
		op->c = NULL;
		conf_free(s, c);
	}
	op_done(op);
}

static void on_create_written(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;

	if (!op->dead) {
		if (status < 0) {
			char detail[256];

			snprintf(detail, sizeof(detail), "the conference could not be stored: %s",
				 redis_err(status, reply));
			rsv_add(op->s, false, op->c->reservation);
			create_refuse(op, "internal_error", detail);
		} else {
			create_send(op);
		}
	}
	op_unref(op);
}

static void on_alloc(struct css *s, int status, const struct cdr_msg *reply, void *arg)
{
	struct op *op = arg;
	struct conf *c = op->c;
	char detail[512];
	json_t *create;
	int r;

	if (op->dead)
		goto out;
	if (status < 0) {
		snprintf(detail, sizeof(detail), "rms did not answer the allocation: %s", strerror(-status));
		create_refuse(op, "internal_error", detail);
		goto out;
	}
	if (!is_ack(reply)) {
		const char *reason = cdr_msg_str(reply, "reason", "no_capacity");

		snprintf(detail, sizeof(detail), "%s", cdr_msg_str(reply, "detail", ""));
		if (!strcmp(reason, "other_platform"))
			reason = "no_capacity";
		else if (strcmp(reason, "no_capacity") && strcmp(reason, "unknown_user_domain") &&
			 strcmp(reason, "unknown_capability"))
			reason = "internal_error";
		create_refuse(op, reason, detail);
		goto out;
	}
	set_str(&c->mcu, cdr_msg_str(reply, "mcu", ""));
	set_str(&c->mcu_key, cdr_msg_str(reply, "mcu_key", ""));
	set_str(&c->vrs, cdr_msg_str(reply, "vrs", NULL));
	set_str(&c->room, cdr_msg_str(reply, "room", ""));
	set_str(&c->host, cdr_msg_str(reply, "platform", s->platform));
	set_str(&c->reservation, cdr_msg_str(reply, "reservation", ""));
	create = c->create;
	json_object_set_new(create, "mcu", json_string(c->mcu));
	json_object_set_new(create, "vrs", c->vrs ? json_string(c->vrs) : json_null());
	index_mcu(s, c);
	op_ref(op);
	if ((r = store_put(s, c, NULL, NULL, on_create_written, op)) < 0)
		on_create_written(r, NULL, op);
out:
	op_unref(op);
}

static void on_caps(struct css *s, int status, const struct cdr_msg *reply, void *arg)
{
	struct op *op = arg;
	struct conf *c = op->c;
	const json_t *b;
	char detail[256];
	int64_t max;
	const char *res;
	bool h265, record;
	struct css_place pl;
	int r;

	if (op->dead)
		goto out;
	if (status < 0) {
		snprintf(detail, sizeof(detail), "rms did not answer the capability query: %s", strerror(-status));
		create_refuse(op, "internal_error", detail);
		goto out;
	}
	if (!is_ack(reply)) {
		const char *reason = cdr_msg_str(reply, "reason", "internal_error");

		create_refuse(op, !strcmp(reason, "unknown_user_domain") ? reason : "internal_error",
			      cdr_msg_str(reply, "detail", ""));
		goto out;
	}
	b = c->create;
	h265 = cdr_msg_jbool(b, "h265", false);
	record = cdr_msg_jbool(b, "record", false);
	res = cdr_msg_jstr(b, "resolution", "720p");
	if (h265 && !cdr_msg_bool(reply, "h265", false)) {
		snprintf(detail, sizeof(detail), "user domain %s may not use H.265", c->ud);
		create_refuse(op, "no_capability", detail);
		goto out;
	}
	if ((!strcmp(res, "1080p") || !strcmp(res, "4k")) && !cdr_msg_bool(reply, "res_1080p", false)) {
		snprintf(detail, sizeof(detail), "user domain %s may not use %s", c->ud, res);
		create_refuse(op, "no_capability", detail);
		goto out;
	}
	if (cdr_msg_jbool(b, "xmpu", false) && !cdr_msg_bool(reply, "xmpu", false)) {
		snprintf(detail, sizeof(detail), "user domain %s may not use XMPU", c->ud);
		create_refuse(op, "no_capability", detail);
		goto out;
	}
	max = cdr_msg_int(reply, "max_confs", 0);
	if (max > 0 && c->by_ud && (int64_t)c->by_ud->n > max) {
		snprintf(detail, sizeof(detail), "user domain %s runs %zu conferences, its limit is %" PRId64, c->ud,
			 c->by_ud->n - 1, max);
		create_refuse(op, "limit_reached", detail);
		goto out;
	}
	if (css_place(s->topo, op->room, s->platform, room_abnormal, plat_down, s, &pl) < 0) {
		snprintf(detail, sizeof(detail), "room %s of user domain %s and its backup rooms of platform %s are %s",
			 op->room, c->ud, s->platform, pl.nexclude ? "abnormal" : "not usable");
		create_refuse(op, "no_capacity", detail);
		goto out;
	}
	op_ref(op);
	r = rms_call(s, "mau_rms_alloc_req",
		     json_pack("{s:s, s:s, s:s, s:o, s:b, s:b, s:b, s:b, s:I, s:I}", "e164", c->e164, "user_domain",
			       c->ud, "room", pl.room, "exclude_rooms", exclude_json(&pl), "h265", h265, "res_1080p",
			       !strcmp(res, "1080p") || !strcmp(res, "4k"), "xmpu", cdr_msg_jbool(b, "xmpu", false),
			       "record", record, "ports", (json_int_t)cdr_msg_jint(b, "max_participants", 16), "epoch",
			       (json_int_t)s->epoch),
		     on_alloc, op);
	if (r < 0) {
		snprintf(detail, sizeof(detail), "cannot ask rms: %s", strerror(-r));
		create_refuse(op, "internal_error", detail);
		op_unref(op);
	}
out:
	op_unref(op);
}

/* Fills in what a public template gives and the request does not say. */
static void apply_template(struct css *s, json_t *body)
{
	const char *id = cdr_msg_jstr(body, "template", NULL);
	json_t *t, *details, *v;
	const char *k;
	size_t i;

	if (!id || !s->templates)
		return;
	json_array_foreach(s->templates, i, t)
	{
		if (strcmp(cdr_msg_jstr(t, "id", ""), id))
			continue;
		details = json_object_get(t, "details");
		json_object_foreach(details, k, v)
		{
			if (!json_object_get(body, k))
				json_object_set(body, k, v);
		}
		return;
	}
}

/* A CM create whose request id is not known yet: placeholder, limits,
 * capabilities (one rms query), allocation (one rms query), record, MCU. */
static void create_begin(struct css *s, struct op *op)
{
	const char *e164 = cdr_msg_str(op->m, "e164", ""), *ud = cdr_msg_str(op->m, "user_domain", "");
	struct conf *c;
	char detail[256];
	int r;

	if ((c = cdr_hmap_get(s->confs, e164))) {
		snprintf(detail, sizeof(detail), "conference %s is %s already (request %s)", e164,
			 css_state_name(c->state), nz(c->req));
		s->n.duplicates++;
		create_refuse(op, "duplicate_e164", detail);
		return;
	}
	if (s->conf.max_confs_platform > 0 && (int64_t)cdr_hmap_count(s->confs) >= s->conf.max_confs_platform) {
		snprintf(detail, sizeof(detail), "platform %s runs %zu conferences, its limit is %" PRId64, s->platform,
			 cdr_hmap_count(s->confs), s->conf.max_confs_platform);
		create_refuse(op, "limit_reached", detail);
		return;
	}
	if (!(c = conf_new(s, e164, ud))) {
		create_refuse(op, "internal_error", "out of memory");
		return;
	}
	op->c = c;
	c->op = op;
	c->state = CSS_CREATING;
	c->create = json_deep_copy(cdr_msg_body(op->m));
	apply_template(s, c->create);
	set_str(&c->name, cdr_msg_jstr(c->create, "name", ""));
	set_str(&c->home, op->home);
	set_str(&c->req, op->req);
	c->start_ms = wall();
	c->planned_end_ms = c->start_ms + cdr_msg_jint(c->create, "duration_min", 60) * 60000;
	c->epoch = s->epoch;
	op_ref(op);
	if ((r = rms_call(s, "mau_rms_capability_req", json_pack("{s:s}", "user_domain", ud), on_caps, op)) < 0) {
		op_unref(op);
		snprintf(detail, sizeof(detail), "cannot ask rms: %s", strerror(-r));
		create_refuse(op, "internal_error", detail);
	}
}

static void create_timeout(struct op *op)
{
	char detail[256];

	snprintf(detail, sizeof(detail), "%s did not answer the create in %" PRIu64 " ms", nz(op->c->mcu),
		 op->s->conf.create_timeout_ms);
	create_fail(op, "mcu_timeout", detail);
}

static void on_create_published(int status, void *arg)
{
	struct op *op = arg;

	if (status == -EIO && !op->dead && op->c && op->c->state == CSS_CREATING) {
		char detail[256];

		snprintf(detail, sizeof(detail), "%s is not connected (no queue for key %s)", nz(op->c->mcu),
			 nz(op->c->mcu_key));
		create_fail(op, "mcu_timeout", detail);
	}
	op_unref(op);
}

/* Sends (or sends again, after a restart) the create to the MCU. */
static void create_send(struct op *op)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	char id[200];
	int r;

	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	if (op->mcu_id[0] && cdr_hmap_get(s->mcu_ops, op->mcu_id) == op)
		cdr_hmap_del(s->mcu_ops, op->mcu_id);
	snprintf(op->mcu_id, sizeof(op->mcu_id), "%s", id);
	cdr_hmap_put(s->mcu_ops, op->mcu_id, op);
	op->on_timer = create_timeout;
	cdr_timer_start(op->timer, s->conf.create_timeout_ms, false);
	op_ref(op);
	r = mcu_send(s, c, "mau_cmu_createconf_req", id,
		     json_pack("{s:s, s:O, s:s, s:I, s:I, s:I}", "e164", c->e164, "conf", c->create, "platform",
			       nz(c->home), "planned_end", (json_int_t)c->planned_end_ms, "generation",
			       (json_int_t)c->generation, "epoch", (json_int_t)s->epoch),
		     on_create_published, op);
	if (r < 0) {
		char detail[256];

		op_unref(op);
		snprintf(detail, sizeof(detail), "create not sent to %s: %s", nz(c->mcu), strerror(-r));
		create_fail(op, "mcu_timeout", detail);
	}
}

static void mcu_op_forget(struct op *op)
{
	cdr_timer_stop(op->timer);
	if (op->mcu_id[0] && cdr_hmap_get(op->s->mcu_ops, op->mcu_id) == op)
		cdr_hmap_del(op->s->mcu_ops, op->mcu_id);
	op->mcu_id[0] = '\0';
}

static void on_create_failed_written(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;

	if (status < 0 && status != -ECANCELED)
		cdr_warn("create %s: record not removed from Redis: %s", op->req, redis_err(status, reply));
	if (!op->dead) {
		answer_send(op, op->answer);
		op_done(op);
	}
	op_unref(op);
}

/* The MCU refused or did not answer: record removed with the NACK, the
 * reservation released. */
static void restore_fail(struct op *op, const char *why);

static void create_fail(struct op *op, const char *reason, const char *detail)
{
	struct css *s = op->s;
	struct conf *c = op->c;
	char akey[160];
	int r;

	if (op->kind == OP_RESTORE) {
		char why[600];

		snprintf(why, sizeof(why), "%s: %s", reason, detail);
		restore_fail(op, why);
		return;
	}

	mcu_op_forget(op);
	conf_event(c, !strcmp(reason, "mcu_refused") ? CSS_EV_MCU_NACK : CSS_EV_TIMEOUT);
	s->n.create_failed++;
	cdr_info("create %s on %s failed: %s: %s", c->e164, nz(c->mcu), reason, detail);
	if (op->dl && !op->answer)
		op->answer = answer_text(op, false, nack_body(c->e164, reason, detail));
	answer_key(op->req, akey, sizeof(akey));
	rsv_add(s, false, c->reservation);
	op_ref(op);
	r = store_del(s, c, op->answer ? akey : NULL, op->answer, on_create_failed_written, op);
	c->op = NULL;
	op->c = NULL;
	conf_free(s, c);
	if (r < 0)
		on_create_failed_written(r, NULL, op);
}

static void create_store_running(struct op *op);

static void on_create_done(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;
	struct css *s = op->s;
	struct conf *c = op->c;

	if (!op->dead) {
		if (status < 0) {
			cdr_warn("create %s: running state not stored (%s); retrying", c->e164,
				 redis_err(status, reply));
			op->on_timer = create_store_running;
			cdr_timer_start(op->timer, 500, false);
		} else {
			answer_send(op, op->answer);
			rsv_add(s, true, c->reservation);
			db_queue(s, c);
			upu_report(s, c, true);
			s->n.created++;
			cdr_info("conference %s runs on %s (%s, %s) after %" PRIu64 " ms", c->e164, c->mcu, c->room,
				 c->host, cdr_now_ms() - op->t0);
			c->op = NULL;
			op_done(op);
		}
	}
	op_unref(op);
}

static void create_store_running(struct op *op)
{
	char akey[160];
	int r;

	answer_key(op->req, akey, sizeof(akey));
	op_ref(op);
	if ((r = store_put(op->s, op->c, op->answer ? akey : NULL, op->answer, on_create_done, op)) < 0)
		on_create_done(r, NULL, op);
}

/* The MCU ACKed: running, stored with the ACK, then the ACK goes out. */
static void create_done(struct op *op)
{
	struct conf *c = op->c;

	mcu_op_forget(op);
	conf_event(c, CSS_EV_MCU_ACK);
	if (op->dl && !op->answer)
		op->answer = answer_text(op, true,
					 json_pack("{s:s, s:s, s:o, s:s, s:s}", "e164", c->e164, "mcu", c->mcu, "vrs",
						   c->vrs && *c->vrs ? json_string(c->vrs) : json_null(), "room",
						   nz(c->room), "platform", nz(c->host)));
	create_store_running(op);
}

/* ---- restore: conferences of a lost MCU ---- */

static void restore_queue(struct css *s, struct conf *c)
{
	if (c->restore_queued)
		return;
	if (confvec_push(&s->restore_q, c) < 0) {
		cdr_err("conference %s: not queued for restore: out of memory", c->e164);
		return;
	}
	c->restore_queued = true;
	if (!cdr_timer_pending(s->restore_timer))
		cdr_timer_start(s->restore_timer, FLUSH_MS, false);
}

/* c was not restored this time: again after restore_retry, or ended on
 * purpose (restore_failed, alarmed) after restore_attempts. */
static void restore_later(struct css *s, struct conf *c, const char *why)
{
	char detail[512];

	if (++c->restore_tries >= s->conf.restore_attempts) {
		snprintf(detail, sizeof(detail), "conference %s of %s not restored after %d attempts: %s", c->e164,
			 c->ud, c->restore_tries, why);
		alarm(s, "major", "restore_failed", c->e164, detail);
		s->n.restore_failed++;
		conf_event(c, CSS_EV_GIVE_UP);
		set_str(&c->end_reason, "restore_failed");
		conf_close(s, c, "restore_failed", NULL);
		return;
	}
	cdr_info("conference %s: restore attempt %d failed (%s); again in %" PRIu64 " ms", c->e164, c->restore_tries,
		 why, s->conf.restore_retry_ms);
	c->restore_after = cdr_now_ms() + s->conf.restore_retry_ms;
	restore_queue(s, c);
}

static void restore_fail(struct op *op, const char *why)
{
	struct css *s = op->s;
	struct conf *c = op->c;

	mcu_op_forget(op);
	if (s->restoring > 0)
		s->restoring--;
	conf_event(c, CSS_EV_TIMEOUT);
	rsv_add(s, false, c->reservation);
	snprintf(c->lost_mcu, sizeof(c->lost_mcu), "%s", nz(c->mcu));
	c->op = NULL;
	op->c = NULL;
	op_done(op);
	store_bg(s, c);
	restore_later(s, c, why);
}

static void restore_done(struct op *op)
{
	struct css *s = op->s;
	struct conf *c = op->c;

	mcu_op_forget(op);
	if (s->restoring > 0)
		s->restoring--;
	conf_event(c, CSS_EV_MCU_ACK);
	c->restore_tries = 0;
	c->lost_mcu[0] = '\0';
	if (c->moved_mcu[0] && strcmp(c->moved_mcu, nz(c->mcu))) {
		/* make before break: its room was switched away with its MCU
		 * still up; the copy there goes now that this one runs */
		end_on_host(s, c->moved_host, c->e164, c->moved_mcu, c->moved_key, "moved");
		s->n.moved_ended++;
	}
	c->moved_mcu[0] = c->moved_key[0] = c->moved_host[0] = '\0';
	c->lost_by_room = false;
	store_bg(s, c);
	rsv_add(s, true, c->reservation);
	db_queue(s, c);
	s->n.restored++;
	cdr_info("conference %s restored on %s (%s, %s), generation %" PRId64 ", %" PRIu64 " ms after its loss",
		 c->e164, c->mcu, nz(c->room), nz(c->host), c->generation, cdr_now_ms() - c->lost_mono);
	c->op = NULL;
	op->c = NULL;
	op_done(op);
	if (s->restore_q.n && !cdr_timer_pending(s->restore_timer))
		cdr_timer_start(s->restore_timer, 0, false);
}

/* Re-creates c on the MCU it was allocated (or, after a restart, sends the
 * re-create again: the same generation is idempotent on the MCU). */
static void restore_send(struct css *s, struct conf *c)
{
	struct op *op = op_new(s, OP_RESTORE, NULL, NULL);

	if (!op) {
		restore_later(s, c, "out of memory");
		return;
	}
	op->c = c;
	c->op = op;
	s->restoring++;
	json_object_set_new(c->create, "mcu", json_string(c->mcu));
	json_object_set_new(c->create, "vrs", c->vrs ? json_string(c->vrs) : json_null());
	create_send(op);
}

struct bulk {
	struct css *s;
	uint64_t gen;
	json_t *e164s; /* asked for */
};

static void on_bulkalloc(struct css *s, int status, const struct cdr_msg *reply, void *arg)
{
	struct bulk *b = arg;
	json_t *a, *v;
	size_t i, done = 0, failed = 0;

	if (status == -ECANCELED || b->gen != s->gen)
		goto out;
	s->alloc_pending = false;
	if (status < 0 || !is_ack(reply)) {
		char why[300];

		snprintf(why, sizeof(why), "bulk allocation: %s",
			 status < 0 ? strerror(-status) : cdr_msg_str(reply, "detail", "refused"));
		json_array_foreach(b->e164s, i, v)
		{
			struct conf *c = cdr_hmap_get(s->confs, json_string_value(v));

			if (c && c->state == CSS_PENDING_RESTORE && !c->op && !c->closing)
				restore_later(s, c, why);
		}
		goto out;
	}
	a = cdr_msg_get(reply, "allocated");
	json_array_foreach(a, i, v)
	{
		struct conf *c = cdr_hmap_get(s->confs, cdr_msg_jstr(v, "e164", ""));

		if (!c || c->state != CSS_PENDING_RESTORE || c->op || c->closing) {
			rsv_add(s, false, cdr_msg_jstr(v, "reservation", NULL)); /* ended meanwhile */
			continue;
		}
		set_str(&c->mcu, cdr_msg_jstr(v, "mcu", ""));
		set_str(&c->mcu_key, cdr_msg_jstr(v, "mcu_key", ""));
		set_str(&c->vrs, cdr_msg_jstr(v, "vrs", NULL));
		set_str(&c->room, cdr_msg_jstr(v, "room", ""));
		set_str(&c->host, cdr_msg_jstr(v, "platform", s->platform));
		set_str(&c->reservation, cdr_msg_jstr(v, "reservation", ""));
		c->generation++;
		conf_event(c, CSS_EV_RESTORE_SENT);
		index_mcu(s, c);
		store_bg(s, c);
		restore_send(s, c);
		done++;
	}
	a = cdr_msg_get(reply, "failed");
	json_array_foreach(a, i, v)
	{
		struct conf *c = cdr_hmap_get(s->confs, cdr_msg_jstr(v, "e164", ""));
		char why[300];

		failed++;
		if (!c || c->state != CSS_PENDING_RESTORE || c->op || c->closing)
			continue;
		snprintf(why, sizeof(why), "%s: %s", cdr_msg_jstr(v, "reason", "?"), cdr_msg_jstr(v, "detail", ""));
		restore_later(s, c, why);
	}
	cdr_notice("restore: %zu conferences allocated, %zu not (of %zu asked); %zu re-creates in flight", done, failed,
		   json_array_size(b->e164s), s->restoring);
out:
	if (b->gen == s->gen && s->restore_q.n && !cdr_timer_pending(s->restore_timer))
		cdr_timer_start(s->restore_timer, FLUSH_MS, false);
	json_decref(b->e164s);
	free(b);
}

/* One bulk allocation for what is due, within the window of re-creates. */
static void restore_kick(void *arg)
{
	struct css *s = arg;
	uint64_t now = cdr_now_ms(), next = 0;
	size_t keep = 0, room, window = (size_t)s->conf.restore_window, nbad = 0;
	json_t *confs, *e164s;
	struct conf **bad;
	struct bulk *b;
	int r;

	if (!s->consuming || s->alloc_pending || !s->restore_q.n)
		return;
	if (plat_down(s->platform, s)) {
		/* Declared down: the backup platform's css restores (it reads the
		 * same records from the promoted replica); nothing here. */
		cdr_timer_start(s->restore_timer, s->conf.restore_retry_ms, false);
		return;
	}
	if (!(bad = calloc(s->restore_q.n, sizeof(*bad))))
		return;
	room = s->restoring < window ? window - s->restoring : 0;
	if (room > 10000)
		room = 10000; /* one bulk allocation at most */
	confs = json_array();
	e164s = json_array();
	for (size_t i = 0; i < s->restore_q.n; i++) {
		struct conf *c = s->restore_q.v[i];
		const json_t *cr = c->create;
		const char *res = cdr_msg_jstr(cr, "resolution", "720p");
		struct css_place pl;

		if (c->state != CSS_PENDING_RESTORE || c->op || c->closing || !acts_for(s, c)) {
			c->restore_queued = false;
			continue;
		}
		if (c->restore_after > now || json_array_size(confs) >= room) {
			if (c->restore_after > now && (!next || c->restore_after < next))
				next = c->restore_after;
			s->restore_q.v[keep++] = c;
			continue;
		}
		c->restore_queued = false;
		if (css_place(s->topo, c->room, s->platform, room_abnormal, plat_down, s, &pl) < 0) {
			bad[nbad++] = c;
			continue;
		}
		json_array_append_new(confs, json_pack("{s:s, s:s, s:s, s:o, s:b, s:b, s:b, s:b, s:I, s:[s]}", "e164",
						       c->e164, "user_domain", c->ud, "room", pl.room, "exclude_rooms",
						       exclude_json(&pl), "h265", cdr_msg_jbool(cr, "h265", false),
						       "res_1080p", !strcmp(res, "1080p") || !strcmp(res, "4k"), "xmpu",
						       cdr_msg_jbool(cr, "xmpu", false), "record", c->vrs != NULL,
						       "ports", (json_int_t)cdr_msg_jint(cr, "max_participants", 16),
						       "exclude_mcus", c->lost_mcu[0] ? c->lost_mcu : nz(c->mcu)));
		json_array_append_new(e164s, json_string(c->e164));
	}
	s->restore_q.n = keep;
	for (size_t i = 0; i < nbad; i++) {
		char why[200];

		snprintf(why, sizeof(why), "room %s and its backup rooms of platform %s are abnormal or down",
			 nz(bad[i]->room), s->platform);
		restore_later(s, bad[i], why);
	}
	free(bad);
	if (json_array_size(confs) == 0) {
		json_decref(confs);
		json_decref(e164s);
		if (keep && !cdr_timer_pending(s->restore_timer))
			cdr_timer_start(s->restore_timer, next > now ? next - now : FLUSH_MS, false);
		return;
	}
	if (!(b = calloc(1, sizeof(*b)))) {
		json_decref(confs);
		json_decref(e164s);
		return;
	}
	b->s = s;
	b->gen = s->gen;
	b->e164s = e164s;
	s->alloc_pending = true;
	cdr_notice("restore: asking rms for %zu MCUs (%zu more waiting, %zu re-creates in flight)",
		   json_array_size(confs), keep, s->restoring);
	r = rms_call(s, "mau_rms_bulkalloc_req",
		     json_pack("{s:o, s:b, s:I}", "confs", confs, "restore", 1, "epoch", (json_int_t)s->epoch),
		     on_bulkalloc, b);
	if (r < 0) {
		char why[120];

		snprintf(why, sizeof(why), "cannot ask rms: %s", strerror(-r));
		s->alloc_pending = false;
		for (size_t i = 0; i < json_array_size(e164s); i++) {
			struct conf *c = cdr_hmap_get(s->confs, json_string_value(json_array_get(e164s, i)));

			if (c)
				restore_later(s, c, why);
		}
		json_decref(e164s);
		free(b);
	}
}

/* c no longer runs on its MCU: pending restore (stored), queued. Returns 0,
 * or -1 when c is not running. */
enum lost_why { LOST_MCU, LOST_ROOM, LOST_PLATFORM };

static int conf_lost(struct css *s, struct conf *c, uint64_t now, enum lost_why why)
{
	/* a room switched away or a platform taken over may still run it:
	 * the copy there is ended once it runs elsewhere */
	bool moved = why != LOST_MCU;

	if (c->state != CSS_RUNNING || c->op || conf_event(c, CSS_EV_MCU_LOST) < 0)
		return -1;
	snprintf(c->lost_mcu, sizeof(c->lost_mcu), "%s", nz(c->mcu));
	c->lost_by_room = why == LOST_ROOM;
	snprintf(c->moved_mcu, sizeof(c->moved_mcu), "%s", moved ? nz(c->mcu) : "");
	snprintf(c->moved_key, sizeof(c->moved_key), "%s", moved ? nz(c->mcu_key) : "");
	snprintf(c->moved_host, sizeof(c->moved_host), "%s", moved ? nz(c->host) : "");
	c->lost_mono = now;
	c->restore_tries = 0;
	c->restore_after = 0;
	rsv_add(s, false, c->reservation);
	store_bg(s, c);
	restore_queue(s, c);
	return 0;
}

/* An MCU is lost (rms): its conferences are restored elsewhere. */
static void mcu_lost(struct css *s, const char *mcu, const char *why)
{
	struct group *g = cdr_hmap_get(s->mcus, mcu);
	struct conf **list, *c;
	size_t n = 0, k = 0;
	uint64_t now = cdr_now_ms();

	if (!g || !g->n || plat_down(s->platform, s))
		return; /* declared down: the backup platform's css acts */
	if (!(list = calloc(g->n, sizeof(*list))))
		return;
	TAILQ_FOREACH(c, &g->confs, mcu_link)
	list[n++] = c;
	for (size_t i = 0; i < n; i++) {
		c = list[i];
		if (!acts_for(s, c))
			continue;
		if (c->op) {
			if (c->op->kind == OP_CREATE)
				create_fail(c->op, "mcu_timeout", "the MCU was lost");
			else if (c->op->kind == OP_RESTORE)
				restore_fail(c->op, "the MCU was lost");
			continue; /* an end or a rename resolves by its timeout */
		}
		if (conf_lost(s, c, now, LOST_MCU) == 0)
			k++;
	}
	free(list);
	s->n.lost += k;
	cdr_warn("mcu %s lost (%s): %zu conferences to restore", mcu, why, k);
}

/* The MCUs css places conferences on, against rms's inventory: an MCU rms
 * does not have up for mcu_absent_grace is lost (a missed down notice, an MCU
 * gone while css was away, a css that started after the notice). */
static void on_inventory(struct css *s, int status, const struct cdr_msg *reply, void *arg)
{
	struct cdr_hmap *up;
	json_t *a, *v;
	size_t i, it = 0;
	const char *k;
	void *val;
	uint64_t now = cdr_now_ms();
	char *lost[64];
	size_t nlost = 0;

	(void)arg;
	if (status == -ECANCELED)
		return;
	s->audit_pending = false;
	if (status < 0 || !s->consuming || strcmp(cdr_msg_type(reply), "rms_ctl_inventory_ack") ||
	    !(up = cdr_hmap_new()))
		return; /* rms silent: nothing is concluded */
	a = cdr_msg_get(reply, "mcus");
	json_array_foreach(a, i, v)
	{
		if (strcmp(cdr_msg_jstr(v, "state", "down"), "down"))
			cdr_hmap_put(up, cdr_msg_jstr(v, "mcu", ""), v);
	}
	while (cdr_hmap_next(s->mcus, &it, &k, &val)) {
		struct group *g = val;
		struct conf *c;
		bool running = false;

		TAILQ_FOREACH(c, &g->confs, mcu_link)
		if (c->state == CSS_RUNNING && !c->op) {
			running = true;
			break;
		}
		if (cdr_hmap_get(up, g->name) || !running || (c && c->host && strcmp(c->host, s->platform))) {
			g->absent_since = 0; /* up, idle, or another platform's MCU (not in this inventory) */
			continue;
		}
		if (!g->absent_since)
			g->absent_since = now;
		if (now - g->absent_since >= s->conf.mcu_absent_ms && nlost < 64)
			lost[nlost++] = strdup(g->name);
	}
	cdr_hmap_free(up);
	for (i = 0; i < nlost; i++) {
		if (lost[i])
			mcu_lost(s, lost[i], "not up in rms's inventory");
		free(lost[i]);
	}
}

static void audit_mcus(void *arg)
{
	struct css *s = arg;

	if (!s->consuming || s->audit_pending || !cdr_hmap_count(s->mcus) || plat_down(s->platform, s))
		return;
	if (rms_call(s, "ctl_rms_inventory_req", json_object(), on_inventory, NULL) == 0)
		s->audit_pending = true;
}

/* ---- the CM's requests (mau.conf.q) ---- */

static json_t *create_ack_body(const struct conf *c)
{
	return json_pack("{s:s, s:s, s:o, s:s, s:s}", "e164", c->e164, "mcu", nz(c->mcu), "vrs",
			 c->vrs && *c->vrs ? json_string(c->vrs) : json_null(), "room", nz(c->room), "platform",
			 nz(c->host));
}

static void on_answer_lookup(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;
	struct css *s = op->s;

	if (!op->dead) {
		if (status == 0 && reply && reply->type == REDIS_REPLY_STRING) {
			s->n.duplicates++;
			cdr_info("%s %s was answered before: the same answer again", cdr_msg_type(op->m), op->req);
			answer_send(op, reply->str);
			op_done(op);
		} else if (op->kind == OP_CREATE) {
			struct conf *c = cdr_hmap_get(s->confs, cdr_msg_str(op->m, "e164", ""));

			if (c && c->req && !strcmp(c->req, op->req) && c->state == CSS_RUNNING && !c->op) {
				/* created by this very request; its stored answer expired */
				s->n.duplicates++;
				answer_now(op, true, create_ack_body(c));
				op_done(op);
			} else {
				create_begin(s, op);
			}
		} else {
			/* end, extend, rename of a conference that is gone */
			char detail[160];
			const char *e164 = cdr_msg_str(op->m, "e164", "");

			snprintf(detail, sizeof(detail), "no conference %s", e164);
			answer_now(op, false, nack_body(e164, "unknown_conference", detail));
			op_done(op);
		}
	}
	op_unref(op);
}

/* Looks up the stored answer to op's request in platform's Redis; the
 * lookup's callback carries on. */
static void lookup_answer(struct css *s, struct op *op, const char *platform)
{
	struct cdr_redis *r = redis_of(s, platform);
	char akey[160];

	answer_key(op->req, akey, sizeof(akey));
	op_ref(op);
	if (!r || cdr_redis_command(r, on_answer_lookup, op, "GET %s", akey) < 0)
		on_answer_lookup(-ENOTCONN, NULL, op);
}

static void cm_create(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	const char *ud = cdr_msg_str(m, "user_domain", ""), *e164 = cdr_msg_str(m, "e164", "");
	struct css_routing rt;
	struct op *op;
	struct conf *c;
	char detail[256];

	switch (css_route_domain(s->topo, ud, s->platform, plat_down, s, &rt)) {
	case CSS_ROUTE_UNKNOWN:
		snprintf(detail, sizeof(detail), "user domain %s is not in the topology", ud);
		refuse(s, dl, m, "unknown_user_domain", detail);
		return;
	case CSS_ROUTE_OTHER:
		snprintf(detail, sizeof(detail), "user domain %s belongs to platform %s: its css serves it", ud,
			 rt.home);
		refuse(s, dl, m, "wrong_platform", detail);
		return;
	case CSS_ROUTE_OWN:
		if (plat_down(s->platform, s)) {
			snprintf(detail, sizeof(detail), "platform %s is declared down; its backup platform serves %s",
				 s->platform, ud);
			refuse(s, dl, m, "platform_down", detail);
			return;
		}
		break;
	case CSS_ROUTE_TAKEOVER:
		if (serving(s, rt.home))
			break; /* its Redis replica promoted and read: served here */
		snprintf(detail, sizeof(detail),
			 "platform %s of user domain %s is down and %s has not taken over its domains yet", rt.home, ud,
			 s->platform);
		refuse(s, dl, m, "platform_down", detail);
		return;
	}
	if ((op = cdr_hmap_get(s->reqs, cdr_msg_id(m)))) {
		/* The same request again while it is in flight (a redelivery
		 * after a lost connection, or sent twice): one answer, to the
		 * newest delivery. */
		s->n.duplicates++;
		if (op->dl)
			cdr_mq_ack(op->dl);
		op->dl = dl;
		cdr_msg_free(m);
		return;
	}
	c = cdr_hmap_get(s->confs, e164);
	if (c && c->req && !strcmp(c->req, cdr_msg_id(m))) {
		/* running: answered from the stored answer (lookup below) */
		if (c->state == CSS_CREATING && c->op && !c->op->dl) {
			/* Found creating after a restart: its request is back. */
			op = c->op;
			op->dl = dl;
			op->m = m;
			snprintf(op->req, sizeof(op->req), "%s", cdr_msg_id(m));
			cdr_hmap_put(s->reqs, op->req, op);
			cdr_notice("create %s of %s resumed after a restart: sent to %s again", op->req, c->e164,
				   nz(c->mcu));
			create_send(op);
			return;
		}
	}
	if (!(op = op_new(s, OP_CREATE, dl, m))) {
		refuse(s, dl, m, "internal_error", "out of memory");
		return;
	}
	snprintf(op->home, sizeof(op->home), "%s", rt.home);
	snprintf(op->room, sizeof(op->room), "%s", nz(rt.room));
	lookup_answer(s, op, op->home);
}

/* The conference a CM request names, or NULL after answering the NACK. */
static struct conf *cm_conf(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m, enum op_kind kind,
			    struct op **opp)
{
	const char *e164 = cdr_msg_str(m, "e164", "");
	struct conf *c = cdr_hmap_get(s->confs, e164);
	struct op *op;

	*opp = NULL;
	if ((op = cdr_hmap_get(s->reqs, cdr_msg_id(m)))) {
		if (op->dl)
			cdr_mq_ack(op->dl);
		op->dl = dl;
		cdr_msg_free(m);
		return NULL;
	}
	if (!(op = op_new(s, kind, dl, m))) {
		refuse(s, dl, m, "internal_error", "out of memory");
		return NULL;
	}
	if (!c || c->closing) {
		lookup_answer(s, op, s->platform); /* answered before, or unknown */
		return NULL;
	}
	*opp = op;
	return c;
}

static void cm_end(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct op *op;
	struct conf *c = cm_conf(s, dl, m, OP_END, &op);
	char detail[160];

	if (!c)
		return;
	if (c->op) {
		snprintf(detail, sizeof(detail), "conference %s is %s", c->e164, css_state_name(c->state));
		answer_now(op, false, nack_body(c->e164, "in_progress", detail));
		op_done(op);
		return;
	}
	conf_end(s, c, "cm_request", op);
}

static void on_stored_answer(int status, const redisReply *reply, void *arg)
{
	struct op *op = arg;

	if (!op->dead) {
		if (status < 0) {
			char *txt;
			char detail[256];

			snprintf(detail, sizeof(detail), "the change could not be stored: %s",
				 redis_err(status, reply));
			txt = answer_text(op, false, nack_body(op->c ? op->c->e164 : NULL, "internal_error", detail));
			answer_send(op, txt);
			free(txt);
		} else {
			answer_send(op, op->answer);
		}
		if (op->c && op->c->op == op)
			op->c->op = NULL;
		op_done(op);
	}
	op_unref(op);
}

/* Stores c with op's answer, then answers. */
static void store_and_answer(struct css *s, struct op *op, struct conf *c)
{
	char akey[160];
	int r;

	answer_key(op->req, akey, sizeof(akey));
	op_ref(op);
	if ((r = store_put(s, c, op->answer && op->req[0] ? akey : NULL, op->answer, on_stored_answer, op)) < 0)
		on_stored_answer(r, NULL, op);
}

/* Extends c by minutes; returns 0, or -1 with detail when over the limit. */
static int extend(struct css *s, struct conf *c, int64_t minutes, char *detail, size_t len)
{
	int64_t end = c->planned_end_ms + minutes * 60000;

	if ((end - c->start_ms) > s->conf.max_duration_min * 60000) {
		snprintf(detail, len, "a conference lasts at most %" PRId64 " minutes", s->conf.max_duration_min);
		return -1;
	}
	c->planned_end_ms = end;
	return 0;
}

static void cm_extend(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct op *op;
	struct conf *c = cm_conf(s, dl, m, OP_EXTEND, &op);
	char detail[160];

	if (!c)
		return;
	if (c->state == CSS_ENDING || c->state == CSS_CREATING ||
	    extend(s, c, cdr_msg_int(m, "minutes", 0), detail, sizeof(detail)) < 0) {
		if (c->state == CSS_ENDING || c->state == CSS_CREATING)
			snprintf(detail, sizeof(detail), "conference %s is %s", c->e164, css_state_name(c->state));
		answer_now(
			op, false,
			nack_body(c->e164,
				  c->state == CSS_ENDING || c->state == CSS_CREATING ? "in_progress" : "limit_reached",
				  detail));
		op_done(op);
		return;
	}
	op->c = c;
	op->answer = answer_text(
		op, true, json_pack("{s:s, s:I}", "e164", c->e164, "planned_end", (json_int_t)c->planned_end_ms));
	notify(s, CDR_MQ_CM_NTF_EX, "", "mau_cm_confextended_ntf",
	       json_pack("{s:s, s:I, s:s}", "e164", c->e164, "planned_end", (json_int_t)c->planned_end_ms, "by", "cm"));
	cdr_info("conference %s extended by %" PRId64 " min (cm)", c->e164, cdr_msg_int(m, "minutes", 0));
	store_and_answer(s, op, c);
}

static void rename_timeout(struct op *op)
{
	char detail[200];

	mcu_op_forget(op);
	snprintf(detail, sizeof(detail), "%s did not answer in %" PRIu64 " ms", nz(op->c->mcu),
		 op->s->conf.create_timeout_ms);
	answer_now(op, false, nack_body(op->c->e164, "mcu_timeout", detail));
	op->c->op = NULL;
	op_done(op);
}

static void cm_rename(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct op *op;
	struct conf *c = cm_conf(s, dl, m, OP_RENAME, &op);
	char detail[160], id[200];

	if (!c)
		return;
	if (c->op || c->state != CSS_RUNNING) {
		snprintf(detail, sizeof(detail), "conference %s is %s", c->e164,
			 c->op ? "busy with another request" : css_state_name(c->state));
		answer_now(op, false, nack_body(c->e164, "in_progress", detail));
		op_done(op);
		return;
	}
	op->c = c;
	c->op = op;
	set_str(&op->new_name, cdr_msg_str(m, "name", ""));
	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	snprintf(op->mcu_id, sizeof(op->mcu_id), "%s", id);
	cdr_hmap_put(s->mcu_ops, op->mcu_id, op);
	op->on_timer = rename_timeout;
	cdr_timer_start(op->timer, s->conf.create_timeout_ms, false);
	mcu_send(s, c, "mau_cmu_renameconf_req", id,
		 json_pack("{s:s, s:s, s:I}", "e164", c->e164, "name", op->new_name, "epoch", (json_int_t)s->epoch),
		 NULL, NULL);
}

static void cm_query(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	const char *e164 = cdr_msg_str(m, "e164", "");
	struct conf *c = cdr_hmap_get(s->confs, e164);
	char detail[160];

	if (!c || c->closing) {
		snprintf(detail, sizeof(detail), "no conference %s", e164);
		refuse(s, dl, m, "unknown_conference", detail);
		return;
	}
	cdr_bus_answer(&s->bus, dl, m, true, json_pack("{s:s, s:o}", "e164", e164, "conf", conf_json(c)), false);
	cdr_msg_free(m);
}

static void cm_list(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	const char *ud = cdr_msg_str(m, "user_domain", "");
	struct group *g;
	struct conf *c;
	json_t *a;
	char detail[160];

	if (!cdr_topology_user_domain(s->topo, ud)) {
		snprintf(detail, sizeof(detail), "no user domain %s", ud);
		refuse(s, dl, m, "unknown_user_domain", detail);
		return;
	}
	a = json_array();
	if ((g = cdr_hmap_get(s->uds, ud)))
		TAILQ_FOREACH(c, &g->confs, ud_link)
	if (!c->closing && c->state != CSS_CREATING)
		json_array_append_new(a, conf_json(c));
	cdr_bus_answer(&s->bus, dl, m, true, json_pack("{s:s, s:o}", "user_domain", ud, "confs", a), false);
	cdr_msg_free(m);
}

static void on_cm_request(struct cdr_mq_delivery *dl, void *arg)
{
	struct css *s = arg;
	struct cdr_msg_error err;
	struct cdr_msg *m = NULL;
	const char *type;

	if (!s->active || !s->consuming) {
		cdr_mq_nack(dl, true); /* for the active instance */
		return;
	}
	if (cdr_msg_decode(dl->body, dl->len, CDR_MSG_MAX_CM, &m, &err) < 0) {
		s->n.refused++;
		cdr_bus_refuse(&s->bus, dl, CDR_MQ_MAU_CONF_Q, &err, "mau_cm_request_nack");
		return;
	}
	type = cdr_msg_type(m);
	if (!strcmp(type, "cm_mau_createconf_req")) {
		cm_create(s, dl, m);
	} else if (!strcmp(type, "cm_mau_endconf_req")) {
		cm_end(s, dl, m);
	} else if (!strcmp(type, "cm_mau_extendconf_req")) {
		cm_extend(s, dl, m);
	} else if (!strcmp(type, "cm_mau_renameconf_req")) {
		cm_rename(s, dl, m);
	} else if (!strcmp(type, "cm_mau_queryconf_req")) {
		cm_query(s, dl, m);
	} else if (!strcmp(type, "cm_mau_listconf_req")) {
		cm_list(s, dl, m);
	} else {
		char detail[200];

		snprintf(detail, sizeof(detail), "%s is not a request css takes on %s", type, CDR_MQ_MAU_CONF_Q);
		if (dl->reply_to && strstr(type, "_req")) {
			refuse(s, dl, m, "bad_request", detail);
		} else {
			cdr_warn("%s (from %s): dead-lettered", detail, cdr_msg_src(m));
			cdr_mq_nack(dl, false);
			cdr_msg_free(m);
		}
	}
}

/* ---- the MCUs' answers and notices (mau.cmu.q) ---- */

/* Ends a conference the MCU runs and css does not want there. */
static void mcu_create_answer(struct css *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack)
{
	const char *e164 = cdr_msg_str(m, "e164", ""), *mcu = cdr_msg_str(m, "mcu", "");
	struct op *op = cdr_hmap_get(s->mcu_ops, cdr_msg_id(m));
	struct conf *c;
	char detail[512];

	if (op && (op->kind == OP_CREATE || op->kind == OP_RESTORE) && op->c && !strcmp(op->c->e164, e164)) {
		if (ack && op->kind == OP_RESTORE) {
			restore_done(op);
		} else if (ack) {
			create_done(op);
		} else {
			snprintf(detail, sizeof(detail), "%s: %s: %s", mcu, cdr_msg_str(m, "reason", "?"),
				 cdr_msg_str(m, "detail", ""));
			create_fail(op, "mcu_refused", detail);
		}
		return;
	}
	if (!ack)
		return; /* a NACK nobody waits for: nothing runs */
	c = cdr_hmap_get(s->confs, e164);
	if (c && c->mcu && !strcmp(c->mcu, mcu) && c->generation == cdr_msg_int(m, "generation", 0)) {
		if (c->state == CSS_CREATING && !c->op) {
			/* ACKed while css was away: the record catches up; the
			 * CM's redelivered request is answered from it. */
			conf_event(c, CSS_EV_MCU_ACK);
			store_bg(s, c);
			rsv_add(s, true, c->reservation);
			db_queue(s, c);
			upu_report(s, c, true);
			s->n.created++;
		}
		return; /* a repeated ACK */
	}
	s->n.late_acks++;
	cdr_notice("late create ACK of %s from %s (%s): the create had failed; ended there", e164, mcu,
		   c ? "the conference runs elsewhere" : "no such conference");
	end_on_mcu(s, e164, mcu, dl->routing_key, "create_timed_out");
}

static void mcu_end_answer(struct css *s, const struct cdr_msg *m, bool ack)
{
	struct op *op = cdr_hmap_get(s->mcu_ops, cdr_msg_id(m));
	struct conf *c;

	if (!op && (c = cdr_hmap_get(s->confs, cdr_msg_str(m, "e164", ""))) && c->op && c->op->kind == OP_END &&
	    c->mcu && !strcmp(c->mcu, cdr_msg_str(m, "mcu", "")))
		op = c->op; /* the answer to an end sent before a restart */
	if (!op || op->kind != OP_END || !op->c)
		return;
	if (!ack && strcmp(cdr_msg_str(m, "reason", ""), "unknown_conference"))
		cdr_warn("conference %s: %s refused the end (%s: %s); closed anyway", op->c->e164,
			 cdr_msg_str(m, "mcu", "?"), cdr_msg_str(m, "reason", "?"), cdr_msg_str(m, "detail", ""));
	end_finish(op, CSS_EV_END_DONE);
}

static void mcu_rename_answer(struct css *s, const struct cdr_msg *m, bool ack)
{
	struct op *op = cdr_hmap_get(s->mcu_ops, cdr_msg_id(m));
	struct conf *c;

	if (!op || op->kind != OP_RENAME || !(c = op->c))
		return;
	mcu_op_forget(op);
	if (!ack) {
		answer_now(op, false,
			   nack_body(c->e164, cdr_msg_str(m, "reason", "mcu_refused"), cdr_msg_str(m, "detail", "")));
		c->op = NULL;
		op_done(op);
		return;
	}
	set_str(&c->name, op->new_name);
	json_object_set_new(c->create, "name", json_string(op->new_name));
	op->answer = answer_text(op, true, json_pack("{s:s, s:s}", "e164", c->e164, "name", c->name));
	notify(s, CDR_MQ_CM_NTF_EX, "", "mau_cm_confrenamed_ntf",
	       json_pack("{s:s, s:s}", "e164", c->e164, "name", c->name));
	store_and_answer(s, op, c);
}

static void mcu_extend(struct css *s, const struct cdr_msg *m)
{
	const char *e164 = cdr_msg_str(m, "e164", "");
	struct conf *c = cdr_hmap_get(s->confs, e164);
	char detail[160], *key;

	if (!c || c->closing || !c->mcu || strcmp(c->mcu, cdr_msg_str(m, "mcu", ""))) {
		cdr_info("extend of %s asked by %s refused: not running there", e164, cdr_msg_str(m, "mcu", "?"));
		return;
	}
	key = c->mcu_key;
	if (extend(s, c, cdr_msg_int(m, "minutes", 0), detail, sizeof(detail)) < 0) {
		cdr_bus_publish(&s->bus, NULL, CDR_MQ_MAU_CMCMU_EX, key, "mau_cmu_extendconf_nack", cdr_msg_id(m),
				s->epoch, nack_body(e164, "limit_reached", detail), false, NULL, NULL);
		return;
	}
	store_bg(s, c);
	cdr_bus_publish(&s->bus, NULL, CDR_MQ_MAU_CMCMU_EX, key, "mau_cmu_extendconf_ack", cdr_msg_id(m), s->epoch,
			json_pack("{s:s, s:I, s:I}", "e164", e164, "planned_end", (json_int_t)c->planned_end_ms,
				  "epoch", (json_int_t)s->epoch),
			false, NULL, NULL);
	notify(s, CDR_MQ_CM_NTF_EX, "", "mau_cm_confextended_ntf",
	       json_pack("{s:s, s:I, s:s}", "e164", e164, "planned_end", (json_int_t)c->planned_end_ms, "by", "mcu"));
	cdr_info("conference %s extended by %" PRId64 " min (asked by %s)", e164, cdr_msg_int(m, "minutes", 0), c->mcu);
}

/* The conference c that an MCU notice names, when it runs on that MCU. */
static struct conf *noticed(struct css *s, const struct cdr_msg *m)
{
	struct conf *c = cdr_hmap_get(s->confs, cdr_msg_str(m, "e164", ""));

	if (!c || c->closing || !c->mcu || strcmp(c->mcu, cdr_msg_str(m, "mcu", "")))
		return NULL;
	return c;
}

static void mcu_notice(struct css *s, const struct cdr_msg *m, const char *type)
{
	struct conf *c = noticed(s, m);

	if (!strcmp(type, "cmu_mau_renameconf_ntf")) {
		/* a rename asked at the MCU: the CM decides */
		notify(s, CDR_MQ_CM_NTF_EX, "", "mau_cm_renameconf_ntf",
		       json_pack("{s:s, s:s, s:s}", "e164", cdr_msg_str(m, "e164", ""), "name",
				 cdr_msg_str(m, "name", ""), "mcu", cdr_msg_str(m, "mcu", "")));
		return;
	}
	if (!c) {
		cdr_info("%s for %s from %s: not a conference css runs there; ignored", type,
			 cdr_msg_str(m, "e164", "?"), cdr_msg_str(m, "mcu", "?"));
		return;
	}
	if (!strcmp(type, "cmu_mau_confended_ntf")) {
		if (c->op && c->op->kind == OP_RENAME) {
			/* ended while a rename waited: the CM learns it from the NACK */
			struct op *op = c->op;

			mcu_op_forget(op);
			answer_now(op, false,
				   nack_body(c->e164, "unknown_conference", "the conference ended on its MCU"));
			c->op = NULL;
			op_done(op);
		}
		if (c->op && c->op->kind == OP_END) {
			end_finish(c->op, CSS_EV_MCU_ENDED);
		} else if (!c->op && conf_event(c, CSS_EV_MCU_ENDED) == 0) {
			char reason[80];

			snprintf(reason, sizeof(reason), "mcu_ended");
			set_str(&c->end_reason, reason);
			conf_close(s, c, reason, NULL);
		}
	} else if (!strcmp(type, "cmu_mau_confrenamed_ntf")) {
		set_str(&c->name, cdr_msg_str(m, "name", ""));
		json_object_set_new(c->create, "name", json_string(c->name));
		store_bg(s, c);
		notify(s, CDR_MQ_CM_NTF_EX, "", "mau_cm_confrenamed_ntf",
		       json_pack("{s:s, s:s}", "e164", c->e164, "name", c->name));
	} else if (!strcmp(type, "cmu_mau_confpassword_ntf")) {
		set_str(&c->password, cdr_msg_str(m, "password", ""));
		store_bg(s, c);
		cdr_info("conference %s: password changed on %s", c->e164, c->mcu);
	}
}

/* An MCU's complete list against the records: conferences it runs that css
 * does not place there are ended on it; conferences css places there that it
 * does not run are missing: restored elsewhere (as after an MCU loss). */
/* A conference an MCU lists that css does not know: before it is ended as
 * an orphan, the Redis of the other platforms this css reads are asked
 * whether one of their records places it on that MCU (a conference of a
 * platform taken over and handed back, hosted here, or a takeover still
 * reading its records): then it is not ours to end. */
struct orphan_check {
	struct css *s;
	uint64_t gen;
	int pending;
	bool theirs;
	char e164[40], mcu[64], key[200];
};

static void on_orphan_check(int status, const redisReply *reply, void *arg)
{
	struct orphan_check *oc = arg;
	struct css *s = oc->s;

	if (status == 0 && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
	    reply->element[0]->type == REDIS_REPLY_STRING && reply->element[1]->type == REDIS_REPLY_STRING &&
	    !strcmp(reply->element[0]->str, oc->mcu) && strcmp(reply->element[1]->str, "ended"))
		oc->theirs = true;
	if (status < 0)
		oc->theirs = true; /* cannot tell: not ended this time (the next list asks again) */
	if (--oc->pending > 0)
		return;
	if (status != -ECANCELED && oc->gen == s->gen && s->consuming && !oc->theirs &&
	    !cdr_hmap_get(s->confs, oc->e164)) {
		s->n.orphans_ended++;
		cdr_warn("conference %s runs on %s, where no record places it: ended there (orphan)", oc->e164,
			 oc->mcu);
		end_on_mcu(s, oc->e164, oc->mcu, oc->key, "orphan");
	} else if (oc->theirs) {
		cdr_debug("conference %s on %s belongs to another platform's records: left alone", oc->e164, oc->mcu);
	}
	free(oc);
}

static void orphan_unknown(struct css *s, const char *e164, const char *mcu, const char *key)
{
	struct orphan_check *oc = calloc(1, sizeof(*oc));

	if (!oc)
		return;
	oc->s = s;
	oc->gen = s->gen;
	snprintf(oc->e164, sizeof(oc->e164), "%s", e164);
	snprintf(oc->mcu, sizeof(oc->mcu), "%s", mcu);
	snprintf(oc->key, sizeof(oc->key), "%s", key ? key : mcu);
	oc->pending = 1; /* held until every question is asked */
	for (size_t i = 0; i < s->nlinks; i++) {
		struct cdr_redis *r = s->links[i].own ? NULL : s->links[i].r;

		if (r && cdr_redis_connected(r) &&
		    cdr_redis_command(r, on_orphan_check, oc, "HMGET conf:%s mcu state", e164) == 0)
			oc->pending++;
		else if (r)
			oc->theirs = true; /* that platform's records cannot be read now: not concluded */
	}
	on_orphan_check(0, NULL, oc);
}

static void reconcile(struct css *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const char *mcu = cdr_msg_str(m, "mcu", "");
	int64_t seq = cdr_msg_int(m, "seq", 0);
	struct list_seq *last = cdr_hmap_get(s->list_seq, mcu);
	json_t *confs = cdr_msg_get(m, "confs"), *item;
	uint64_t now = cdr_now_ms(), grace = s->conf.list_grace_ms;
	struct cdr_hmap *listed = cdr_hmap_new();
	struct group *g;
	struct conf *c;
	size_t i, orphans = 0, missing = 0;

	if (!listed)
		return;
	if (plat_down(s->platform, s)) {
		/* declared down: the backup platform's css serves our domains
		 * and ends what it moved; nothing is concluded here */
		cdr_hmap_free(listed);
		return;
	}
	if (last && seq <= last->seq) {
		cdr_debug("conference list %" PRId64 " of %s is not newer than %" PRId64 ": ignored", seq, mcu,
			  last->seq);
		cdr_hmap_free(listed);
		return;
	}
	if (!last && (last = calloc(1, sizeof(*last) + strlen(mcu) + 1))) {
		strcpy(last->mcu, mcu);
		if (cdr_hmap_put(s->list_seq, last->mcu, last) < 0) {
			free(last);
			last = NULL;
		}
	}
	if (last)
		last->seq = seq;
	json_array_foreach(confs, i, item)
	{
		const char *e164 = cdr_msg_jstr(item, "e164", "");
		struct css_listed_in in = { .grace_ms = grace };

		cdr_hmap_put(listed, e164, item);
		if ((c = cdr_hmap_get(s->confs, e164))) {
			in.known = true;
			in.state = c->state;
			in.closing = c->closing;
			in.busy = c->op != NULL;
			in.here = c->mcu && !strcmp(c->mcu, mcu);
			in.lost_by_room = c->lost_by_room;
			in.room_abnormal = c->room && room_abnormal(c->room, s);
			in.age_ms = now - c->changed_mono;
		}
		switch (css_listed_rule(&in)) {
		case CSS_LISTED_KEEP:
		case CSS_LISTED_WAIT: break;
		case CSS_LISTED_ORPHAN:
			orphans++;
			if (!c) {
				orphan_unknown(s, e164, mcu, dl->routing_key);
				break;
			}
			s->n.orphans_ended++;
			cdr_warn("conference %s runs on %s, where css %s: ended there (orphan)", e164, mcu,
				 c ? "does not place it" : "knows no such conference");
			end_on_mcu(s, e164, mcu, dl->routing_key, "orphan");
			break;
		case CSS_LISTED_ADOPT:
			conf_event(c, CSS_EV_ADOPT);
			c->lost_by_room = false;
			c->moved_mcu[0] = c->moved_key[0] = c->moved_host[0] = '\0';
			c->lost_mcu[0] = '\0';
			c->restore_tries = 0;
			store_bg(s, c);
			s->n.adopted++;
			cdr_notice(
				"conference %s: its room %s is normal again and %s still runs it: taken back as it is",
				e164, nz(c->room), mcu);
			break;
		}
	}
	if ((g = cdr_hmap_get(s->mcus, mcu))) {
		/* conf_lost keeps each where it is in the list (its MCU stays until re-allocated) */
		TAILQ_FOREACH(c, &g->confs, mcu_link)
		{
			if (!css_missing_rule(c->state, c->op != NULL, now - c->changed_mono, grace) ||
			    cdr_hmap_get(listed, c->e164) || !acts_for(s, c))
				continue;
			missing++;
			s->n.missing++;
			cdr_warn("conference %s: placed on %s, which does not run it: restored", c->e164, mcu);
			conf_lost(s, c, now, LOST_MCU);
		}
	}
	cdr_debug("conference list %" PRId64 " of %s: %zu conferences, %zu orphans ended, %zu missing", seq, mcu,
		  json_array_size(confs), orphans, missing);
	cdr_hmap_free(listed);
}

static void on_mcu_message(struct cdr_mq_delivery *dl, void *arg)
{
	struct css *s = arg;
	struct cdr_msg_error err;
	struct cdr_msg *m = NULL;
	const char *type;

	if (!s->active || !s->consuming) {
		cdr_mq_nack(dl, true);
		return;
	}
	if (cdr_msg_decode(dl->body, dl->len, 0, &m, &err) < 0) {
		cdr_warn("%s: refused a message (%s): %s", CDR_MQ_MAU_CMU_Q, cdr_msg_fault_name(err.fault), err.detail);
		cdr_mq_nack(dl, false);
		return;
	}
	type = cdr_msg_type(m);
	if (!strcmp(type, "cmu_mau_createconf_ack") || !strcmp(type, "cmu_mau_createconf_nack"))
		mcu_create_answer(s, dl, m, is_ack(m));
	else if (!strcmp(type, "cmu_mau_endconf_ack") || !strcmp(type, "cmu_mau_endconf_nack"))
		mcu_end_answer(s, m, is_ack(m));
	else if (!strcmp(type, "cmu_mau_renameconf_ack") || !strcmp(type, "cmu_mau_renameconf_nack"))
		mcu_rename_answer(s, m, is_ack(m));
	else if (!strcmp(type, "cmu_mau_extendconf_req"))
		mcu_extend(s, m);
	else if (!strcmp(type, "cmu_mau_conflist_ntf"))
		reconcile(s, dl, m);
	else if (!strncmp(type, "cmu_mau_", 8))
		mcu_notice(s, m, type);
	else
		cdr_warn("%s: %s from %s is not for css: dropped", CDR_MQ_MAU_CMU_Q, type, cdr_msg_src(m));
	/* Every create is idempotent on the MCU (a restart sends it again), so
	 * the delivery is acked once handled. */
	cdr_mq_ack(dl);
	cdr_msg_free(m);
}

/* ---- expiry ---- */

static void on_expiring(int status, const redisReply *reply, void *arg)
{
	struct css *s = arg;
	int64_t now = wall();

	if (status < 0 || !reply || reply->type != REDIS_REPLY_ARRAY || !s->consuming)
		return;
	for (size_t i = 0; i < reply->elements; i++) {
		struct conf *c = cdr_hmap_get(s->confs, reply->element[i]->str);

		if (!c || c->op || c->closing || c->planned_end_ms > now)
			continue;
		if (c->state == CSS_RUNNING || c->state == CSS_PENDING_RESTORE)
			conf_end(s, c, "expired", NULL);
	}
}

static void expiry_tick(void *arg)
{
	struct css *s = arg;
	if (!s->consuming)
		return;
	for (size_t i = 0; i < s->nlinks; i++) {
		struct cdr_redis *r = redis_of(s, s->links[i].platform);

		if (r && serving(s, s->links[i].platform))
			cdr_redis_command(r, on_expiring, s, "ZRANGEBYSCORE confs:expiry -inf %" PRId64 " LIMIT 0 %d",
					  wall(), EXPIRE_BATCH);
	}
}

/* ---- rms and pms notices ---- */

static void on_rms_ntf(struct cdr_mq_delivery *dl, void *arg)
{
	struct css *s = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;

	if (cdr_msg_decode(dl->body, dl->len, 0, &m, &err) == 0 && !strcmp(cdr_msg_type(m), "rms_all_mcu_ntf") &&
	    !strcmp(cdr_msg_str(m, "state", ""), "down")) {
		struct group *g = cdr_hmap_get(s->mcus, cdr_msg_str(m, "mcu", ""));

		if (s->consuming)
			mcu_lost(s, cdr_msg_str(m, "mcu", ""), cdr_msg_str(m, "reason", "?"));
		else
			cdr_warn("mcu %s is down (%s): %zu conferences placed on it (not serving yet)",
				 cdr_msg_str(m, "mcu", "?"), cdr_msg_str(m, "reason", "?"), g ? g->n : 0);
	}
	cdr_msg_free(m);
	cdr_mq_ack(dl);
}

/* BMC changed a user domain or platform: the topology (user domains, their
 * rooms and platforms) is read again at once instead of at the next refresh. */
static void on_modb_ntf(struct cdr_mq_delivery *dl, void *arg)
{
	struct css *s = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;

	if (cdr_msg_decode(dl->body, dl->len, 0, &m, &err) == 0 && !strcmp(cdr_msg_type(m), "bmc_mau_modb_ntf")) {
		cdr_info("BMC: %s %s %s: reading the topology again", cdr_msg_str(m, "kind", "?"),
			 cdr_msg_str(m, "moid", "?"), cdr_msg_str(m, "op", "?"));
		cdr_topo_follow_fetch(s->follow);
	}
	cdr_msg_free(m);
	cdr_mq_ack(dl);
}

/* Room id is abnormal (a failure or a manual switch): every conference
 * running there is restored in the backup rooms (plan.c), the copy on its
 * MCU ended once restored elsewhere. */
static void room_failed(struct css *s, const char *id)
{
	size_t it = 0, k = 0;
	const char *key;
	void *v;
	uint64_t now = cdr_now_ms();

	while (cdr_hmap_next(s->confs, &it, &key, &v)) {
		struct conf *c = v;

		if (c->room && !strcmp(c->room, id) && (!c->host || !strcmp(c->host, s->platform)) && acts_for(s, c) &&
		    conf_lost(s, c, now, LOST_ROOM) == 0)
			k++;
	}
	s->n.lost += k;
	cdr_warn("room %s is abnormal: %zu conferences running there to restore in its backup rooms", id, k);
}

static void apply_platform(struct css *s, const char *id, bool down, int64_t epoch, const char *why)
{
	for (size_t i = 0; i < s->nplats; i++) {
		struct plat_state *p = &s->plats[i];

		if (strcmp(p->id, id))
			continue;
		if (!css_notice_applies(p->epoch, epoch))
			return; /* late, repeated or out of order */
		if (p->down != down)
			cdr_notice("platform %s is %s (%s, epoch %" PRId64 ")", id, down ? "down" : "up", why, epoch);
		if (p->down && !down && !strcmp(id, s->platform) && s->loaded) {
			/* our platform is back: what the backup's css changed
			 * meanwhile is in Redis, not in this view */
			cdr_notice("platform %s is up again: the view is read again from Redis", id);
			p->down = down;
			p->epoch = epoch;
			drop_view(s);
			maybe_consume(s);
			return;
		}
		p->down = down;
		p->epoch = epoch;
		takeover_check(s);
		return;
	}
}

static void apply_room(struct css *s, const char *id, bool abnormal, int64_t epoch, const char *why)
{
	for (size_t i = 0; i < s->nrooms; i++) {
		struct room_state *r = &s->rooms[i];

		if (strcmp(r->id, id))
			continue;
		if (!css_notice_applies(r->epoch, epoch))
			return; /* late, repeated or out of order */
		if (r->abnormal != abnormal)
			cdr_notice("room %s is %s (%s, epoch %" PRId64 ")%s", id, abnormal ? "abnormal" : "normal", why,
				   epoch,
				   abnormal ? ""
					    : ": new conferences go there again, restored ones stay where they run");
		if (!r->abnormal && abnormal && s->consuming)
			room_failed(s, r->id);
		r->abnormal = abnormal;
		r->epoch = epoch;
		return;
	}
}

static void on_pms_ntf(struct cdr_mq_delivery *dl, void *arg)
{
	struct css *s = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;

	if (cdr_msg_decode(dl->body, dl->len, 0, &m, &err) == 0) {
		if (!strcmp(cdr_msg_type(m), "pms_all_platform_ntf"))
			apply_platform(s, cdr_msg_str(m, "platform", ""), !strcmp(cdr_msg_str(m, "state", ""), "down"),
				       cdr_msg_int(m, "epoch", 0), cdr_msg_str(m, "reason", "?"));
		else if (!strcmp(cdr_msg_type(m), "pms_all_room_ntf"))
			apply_room(s, cdr_msg_str(m, "room", ""), !strcmp(cdr_msg_str(m, "state", ""), "abnormal"),
				   cdr_msg_int(m, "epoch", 0), cdr_msg_str(m, "reason", "?"));
	}
	cdr_msg_free(m);
	cdr_mq_ack(dl);
}

static void maybe_consume(struct css *s);

static void on_pms_state(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct css *s = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;
	json_t *a, *v;
	size_t i;

	if (status == -ECANCELED)
		return;
	if (status < 0 || cdr_msg_decode(reply->body, reply->len, 0, &m, &err) < 0 || !is_ack(m)) {
		cdr_warn("pms has not told the platform state (%s); asking again in %" PRIu64 " ms",
			 status < 0 ? strerror(-status)
			 : m	    ? cdr_msg_str(m, "detail", "refused")
				    : err.detail,
			 s->conf.pms_retry_ms);
		cdr_msg_free(m);
		cdr_timer_start(s->pms_timer, s->conf.pms_retry_ms, false);
		return;
	}
	a = cdr_msg_get(m, "platforms");
	json_array_foreach(a, i, v)
		apply_platform(s, cdr_msg_jstr(v, "platform", ""), !strcmp(cdr_msg_jstr(v, "state", ""), "down"),
			       cdr_msg_jint(v, "epoch", 0), "state query");
	a = cdr_msg_get(m, "rooms");
	json_array_foreach(a, i, v)
		apply_room(s, cdr_msg_jstr(v, "room", ""), !strcmp(cdr_msg_jstr(v, "state", ""), "abnormal"),
			   cdr_msg_jint(v, "epoch", 0), "state query");
	cdr_msg_free(m);
	if (!s->pms_known)
		cdr_notice("platform %s is %s according to pms", s->platform,
			   plat_down(s->platform, s) ? "down" : "up");
	s->pms_known = true;
	maybe_consume(s);
}

static void ask_pms(void *arg)
{
	struct css *s = arg;
	struct cdr_mq *mq = cdr_daemon_mq(s->d);
	char id[200], *txt;

	if (!mq || !s->active)
		return;
	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	if (!(txt = cdr_msg_encode("any_pms_state_req", id, s->bus.src, 0, json_object())) ||
	    cdr_mq_request(mq, "", CDR_MQ_PMS_REQ_Q, txt, strlen(txt), 2000, on_pms_state, s) < 0)
		cdr_timer_start(s->pms_timer, s->conf.pms_retry_ms, false);
	free(txt);
}

/* ---- public conference templates ---- */

static void on_tpl_published(int status, const redisReply *reply, void *arg)
{
	(void)arg;
	if (status < 0 && status != -ECANCELED)
		cdr_warn("templates not published into Redis: %s", redis_err(status, reply));
	else if (status == 0)
		cdr_info("%lld public conference templates published into Redis", reply->integer);
}

static void on_templates(const struct cdr_db_result *r, void *arg)
{
	struct css *s = arg;
	struct redis_link *l;
	json_t *a;
	char *txt;

	if (r->status == -ECANCELED)
		return;
	cdr_timer_start(s->tpl_timer, s->conf.template_refresh_ms, false);
	if (r->status < 0) {
		cdr_warn("templates not read from MySQL: %s", r->error ? r->error : strerror(-r->status));
		return;
	}
	a = json_array();
	for (size_t i = 0; i < r->nrows; i++) {
		json_t *details = json_loads(cdr_db_value(r, i, 3) ? cdr_db_value(r, i, 3) : "{}", 0, NULL);

		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:o, s:s}", "id", cdr_db_value(r, i, 0),
						   "user_domain", cdr_db_value(r, i, 1), "name", cdr_db_value(r, i, 2),
						   "details", details ? details : json_object(), "updated",
						   nz(cdr_db_value(r, i, 4))));
	}
	txt = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
	if (!txt || (s->templates_txt && !strcmp(txt, s->templates_txt))) {
		free(txt);
		json_decref(a);
		return; /* unchanged */
	}
	if (!(l = ready_link(s, s->platform))) {
		free(txt);
		json_decref(a);
		return; /* Redis down: the next refresh tries again */
	}
	{
		const char *args[1] = { txt };

		if (cdr_redis_script_run(l->tpl, on_tpl_published, s, 0, NULL, 1, args) < 0) {
			free(txt);
			json_decref(a);
			return;
		}
	}
	free(s->templates_txt);
	s->templates_txt = txt;
	json_decref(s->templates);
	s->templates = a;
}

static void read_templates(void *arg)
{
	struct css *s = arg;
	struct cdr_db *db = cdr_daemon_db(s->d);

	if (!db || !s->active ||
	    cdr_db_exec(db,
			"SELECT id, user_domain, name, details, DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f') "
			"FROM conf_template ORDER BY id",
			NULL, 0, true, on_templates, s) < 0)
		cdr_timer_start(s->tpl_timer, s->conf.template_refresh_ms, false);
}

/* ---- start-up: the view rebuilt from Redis ---- */

struct load {
	struct css *s;
	struct redis_link *link; /* another platform's (a takeover), or NULL: our own */
	size_t restore;		 /* takeover: conferences that ran on the failed platform */
	uint64_t gen;
	size_t pending, loaded, creating, ending, ended;
	uint64_t t0;
};

static void abandon_create(struct op *op)
{
	struct conf *c = op->c;

	cdr_warn("conference %s was being created before a restart and its request did not come back in %" PRIu64
		 " ms: abandoned (ended on %s, reservation released)",
		 c->e164, op->s->conf.resume_window_ms, nz(c->mcu));
	if (c->mcu && *c->mcu)
		end_on_mcu(op->s, c->e164, c->mcu, c->mcu_key, "create_abandoned");
	create_fail(op, "mcu_timeout", "abandoned after a restart");
}

/* A record read back: into the view, and on its way again. */
static void adopt(struct css *s, struct load *ld, struct conf *c)
{
	struct op *op;

	switch (c->state) {
	case CSS_CREATING:
		ld->creating++;
		if ((op = op_new(s, OP_CREATE, NULL, NULL))) {
			op->c = c;
			c->op = op;
			op->on_timer = abandon_create;
			cdr_timer_start(op->timer, s->conf.resume_window_ms, false);
		}
		break;
	case CSS_ENDING:
		ld->ending++;
		conf_end(s, c, c->end_reason ? c->end_reason : "cm_request", NULL);
		break;
	case CSS_ENDED:
		ld->ended++;
		c->closing = true;
		db_queue(s, c);
		break;
	case CSS_PENDING_RESTORE:
		c->lost_mono = cdr_now_ms();
		restore_queue(s, c);
		break;
	case CSS_RUNNING:
		if (ld->link && (!c->host || strcmp(c->host, s->platform))) {
			/* a takeover: it ran on the failed platform */
			if (conf_lost(s, c, cdr_now_ms(), LOST_PLATFORM) == 0)
				ld->restore++;
			break;
		}
		db_queue(s, c);
		break;
	case CSS_RESTORING:
		/* the re-create again, same MCU and generation: idempotent there */
		c->lost_mono = cdr_now_ms();
		restore_send(s, c);
		break;
	default:
		db_queue(s, c); /* the history row is repaired if a crash lost it */
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
		enum css_state st;

		for (size_t i = 0; i + 1 < reply->elements; i += 2)
			json_object_set_new(h, reply->element[i]->str, json_string(reply->element[i + 1]->str));
#define HS(k) cdr_msg_jstr(h, k, "")
#define HI(k) strtoll(HS(k), NULL, 10)
		if (css_state_parse(HS("state"), &st) == 0 && *HS("e164") && !cdr_hmap_get(s->confs, HS("e164")) &&
		    (c = conf_new(s, HS("e164"), HS("user_domain")))) {
			c->state = st;
			set_str(&c->name, HS("name"));
			set_str(&c->home, HS("platform"));
			set_str(&c->host, *HS("host_platform") ? HS("host_platform") : NULL);
			set_str(&c->room, *HS("room") ? HS("room") : NULL);
			set_str(&c->mcu, HS("mcu"));
			set_str(&c->mcu_key, HS("mcu_key"));
			set_str(&c->vrs, *HS("vrs") ? HS("vrs") : NULL);
			set_str(&c->reservation, HS("reservation"));
			set_str(&c->req, HS("req"));
			set_str(&c->password, HS("password"));
			set_str(&c->end_reason, *HS("end_reason") ? HS("end_reason") : NULL);
			c->create = json_loads(HS("create"), 0, NULL);
			if (!c->create)
				c->create = json_object();
			c->start_ms = HI("start");
			c->planned_end_ms = HI("planned_end");
			c->end_ms = HI("end_ms");
			c->generation = HI("generation");
			c->epoch = HI("epoch");
			c->changed_mono = cdr_now_ms();
			index_mcu(s, c);
			ld->loaded++;
			adopt(s, ld, c);
		}
#undef HS
#undef HI
		json_decref(h);
	}
	if (--ld->pending == 0) {
		if (ld->link) {
			if (ld->gen == s->gen && status != -ECANCELED)
				takeover_loaded(s, ld);
			else
				ld->link->promoting = false;
		} else if (ld->gen == s->gen && status != -ECANCELED) {
			s->loading = false;
			s->loaded = true;
			cdr_notice("view rebuilt from Redis: %zu conferences (%zu creating, %zu ending, %zu ended) in "
				   "%" PRIu64 " ms",
				   ld->loaded, ld->creating, ld->ending, ld->ended, cdr_now_ms() - ld->t0);
			maybe_consume(s);
		}
		free(ld);
	}
}

static void load_retry(struct css *s, const char *why)
{
	s->loading = false;
	cdr_warn("view not rebuilt from Redis (%s): trying again when Redis is up", why);
}

static void on_members(int status, const redisReply *reply, void *arg)
{
	struct load *ld = arg;
	struct css *s = ld->s;
	struct cdr_redis *r = ld->link ? ld->link->r : redis_of(s, s->platform);

	if (status == -ECANCELED || ld->gen != s->gen) {
		if (ld->link)
			ld->link->promoting = false;
		free(ld);
		return;
	}
	if (status < 0 || reply->type != REDIS_REPLY_ARRAY || !r) {
		if (ld->link) {
			cdr_warn("takeover of %s: its records not read (%s); again in a second", ld->link->platform,
				 redis_err(status, reply));
			ld->link->promoting = false;
		} else {
			load_retry(s, redis_err(status, reply));
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

static void load_view(struct css *s)
{
	struct cdr_redis *r = redis_of(s, s->platform);
	struct load *ld;

	if (s->loaded || s->loading || !s->active || !r || !cdr_redis_connected(r))
		return;
	if (!(ld = calloc(1, sizeof(*ld))))
		return;
	ld->s = s;
	ld->gen = s->gen;
	ld->t0 = cdr_now_ms();
	s->loading = true;
	if (cdr_redis_command(r, on_members, ld, "SMEMBERS confs:all") < 0) {
		free(ld);
		load_retry(s, "not connected");
	}
}

/* ---- platform takeover (design section 6: platform failure, platform back) ---- */

static void on_endpoint_published(const struct cdr_zk_result *res, void *arg)
{
	char *path = arg;

	if (res->status != 0)
		cdr_err("takeover: %s not written in ZooKeeper (%s): other daemons still see the old Redis", path,
			res->error ? res->error : strerror(-res->status));
	else
		cdr_notice("takeover: %s now names the promoted replica", path);
	free(path);
}

/* The promoted replica becomes the platform's Redis in ZooKeeper: its
 * daemons, when they come back, use it (the data is there now), and
 * confdrctl platform failback finds where the original was. */
static void publish_promoted(struct css *s, struct redis_link *l)
{
	const struct cdr_endpoint *rep = cdr_topology_replica(s->topo, l->platform, CDR_SVC_REDIS);
	const struct cdr_endpoint *cur = cdr_topology_main_endpoint(s->topo, l->platform, CDR_SVC_REDIS);
	const struct cdr_room *main = cdr_topology_main_room(s->topo, l->platform);
	struct cdr_zk *zk = cdr_daemon_zk(s->d);
	json_t *o;
	char *txt, path[256];

	if (!rep || !main || !zk)
		return;
	if (cur && !strcmp(cur->host, rep->host) && cur->port == rep->port)
		return; /* published already (a restart during the takeover) */
	o = json_pack("{s:s, s:i, s:s, s:I}", "host", rep->host, "port", (int)rep->port, "promoted_by", s->bus.src,
		      "since", (json_int_t)wall());
	if (o && cur)
		json_object_set_new(o, "failed_over_from",
				    json_pack("{s:s, s:i}", "host", cur->host, "port", (int)cur->port));
	txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	snprintf(path, sizeof(path), "/endpoints/%s/%s/redis", l->platform, main->id);
	if (txt) {
		char *p = strdup(path);

		if (!p || cdr_zk_set(zk, path, txt, strlen(txt), -1, on_endpoint_published, p) < 0) {
			cdr_err("takeover: cannot write %s in ZooKeeper", path);
			free(p);
		}
	}
	free(txt);
}

static void on_promoted(int status, const redisReply *reply, void *arg)
{
	struct redis_link *l = arg;
	struct css *s = l->s;
	struct load *ld;

	if (status == -ECANCELED)
		return;
	if (status < 0 || !plat_down(l->platform, s) || !s->consuming) {
		if (status < 0)
			cdr_warn("takeover of %s: its Redis replica not promoted (%s); again in a second", l->platform,
				 redis_err(status, reply));
		l->promoting = false;
		return;
	}
	cdr_notice("takeover of %s: its Redis replica is promoted (REPLICAOF NO ONE); reading its conferences",
		   l->platform);
	publish_promoted(s, l);
	if (!(ld = calloc(1, sizeof(*ld)))) {
		l->promoting = false;
		return;
	}
	ld->s = s;
	ld->link = l;
	ld->gen = s->gen;
	ld->t0 = cdr_now_ms();
	if (cdr_redis_command(l->r, on_members, ld, "SMEMBERS confs:all") < 0) {
		l->promoting = false;
		free(ld);
	}
}

static void on_peer_db(bool up, const char *why, void *arg)
{
	struct redis_link *l = arg;

	l->db_up = up;
	if (up) {
		cdr_notice("mysql of %s (its history rows while we serve it): connected", l->platform);
		db_kick(l->s);
		return;
	}
	cdr_warn("mysql of %s: %s", l->platform, why ? why : "down");
}

static void takeover_loaded(struct css *s, struct load *ld)
{
	struct redis_link *l = ld->link;
	const struct cdr_endpoint *ep;
	char msg[300];

	l->promoting = false;
	l->serving = true;
	if (!l->db && (ep = cdr_topology_main_endpoint(s->topo, l->platform, CDR_SVC_MYSQL)) && ep->database) {
		const struct css_conf *cf = cdr_daemon_conf(s->d); /* the strings live there */
		struct cdr_db_opts o = {
			.host = ep->host,
			.port = ep->port,
			.user = cf->base.mysql_user,
			.password = cf->base.mysql_password,
			.database = ep->database,
			.connect_timeout_ms = (unsigned)cf->base.mysql_connect_timeout_ms,
			.on_state = on_peer_db,
			.arg = l,
		};

		if (cdr_db_new(cdr_daemon_loop(s->d), &o, &l->db) < 0)
			l->db = NULL;
	}
	snprintf(msg, sizeof(msg),
		 "serving the user domains of %s: %zu of its conferences read in %" PRIu64 " ms, %zu that ran there to "
		 "restore on %s's MCUs",
		 l->platform, ld->loaded, cdr_now_ms() - ld->t0, ld->restore, s->platform);
	cdr_warn("takeover of %s: %s", l->platform, msg);
	alarm(s, "major", "platform_takeover", l->platform, msg);
	s->n.lost += ld->restore;
}

/* Platforms this css backs up: taken over while down (and this css's own
 * platform is up), handed back when up. */
static void takeover_check(struct css *s)
{
	bool again = false;

	for (size_t i = 0; i < s->nlinks; i++) {
		struct redis_link *l = &s->links[i];
		bool want = !l->own && plat_down(l->platform, s) && !plat_down(s->platform, s) && s->consuming;

		if (l->own)
			continue;
		if (want && !l->serving && !l->promoting) {
			if (!l->r || !cdr_redis_connected(l->r)) {
				cdr_warn("takeover of %s: the replica of its Redis is not connected; waiting",
					 l->platform);
				again = true;
				continue;
			}
			l->promoting = true;
			l->since = cdr_now_ms();
			cdr_warn("platform %s is down: taking over its user domains (promoting its Redis replica)",
				 l->platform);
			if (cdr_redis_command(l->r, on_promoted, l, "REPLICAOF NO ONE") < 0) {
				l->promoting = false;
				again = true;
			}
		} else if (!want && l->serving) {
			l->serving = false;
			cdr_warn("platform %s is %s: its user domains are its own css's again; the conferences "
				 "running here stay as they are",
				 l->platform, plat_down(l->platform, s) ? "still down, but we stop" : "up");
		}
		if (want && !l->serving)
			again = true;
	}
	if (again && !cdr_timer_pending(s->takeover_timer))
		cdr_timer_start(s->takeover_timer, 1000, false);
}

static void takeover_tick(void *arg)
{
	takeover_check(arg);
}

/* ---- life ---- */

static void maybe_consume(struct css *s)
{
	struct cdr_mq *mq = cdr_daemon_mq(s->d);
	int r;

	if (!s->active || !s->topo || !mq)
		return;
	if (s->subscribed != mq) {
		if (cdr_mq_subscribe(mq, CDR_MQ_PMS_NTF_EX, "", on_pms_ntf, s) < 0 ||
		    cdr_mq_subscribe(mq, CDR_MQ_RMS_NTF_EX, "", on_rms_ntf, s) < 0 ||
		    cdr_mq_subscribe(mq, CDR_MQ_MODB_NOTIFY_EX, "", on_modb_ntf, s) < 0)
			cdr_err("cannot subscribe to the pms, rms and BMC notices");
		else
			s->subscribed = mq;
	}
	if (!s->pms_known) {
		if (!cdr_timer_pending(s->pms_timer))
			ask_pms(s);
		return;
	}
	load_view(s);
	if (!s->loaded)
		return;
	if (!s->consuming) {
		cdr_notice("consuming %s and %s (epoch %" PRId64 ", %zu conferences)", CDR_MQ_MAU_CONF_Q,
			   CDR_MQ_MAU_CMU_Q, s->epoch, cdr_hmap_count(s->confs));
		s->consuming = true;
		/* rooms that went abnormal while css was away or starting */
		for (size_t i = 0; i < s->nrooms; i++)
			if (s->rooms[i].abnormal)
				room_failed(s, s->rooms[i].id);
		takeover_check(s);
	}
	if ((r = cdr_mq_consume(mq, CDR_MQ_MAU_CMU_Q, on_mcu_message, s)) < 0 && r != -EALREADY)
		cdr_err("cannot consume %s: %s", CDR_MQ_MAU_CMU_Q, strerror(-r));
	if ((r = cdr_mq_consume(mq, CDR_MQ_MAU_CONF_Q, on_cm_request, s)) < 0 && r != -EALREADY)
		cdr_err("cannot consume %s: %s", CDR_MQ_MAU_CONF_Q, strerror(-r));
	if (!cdr_timer_pending(s->expiry_timer))
		cdr_timer_start(s->expiry_timer, s->conf.expiry_tick_ms, true);
	if (!cdr_timer_pending(s->audit_timer))
		cdr_timer_start(s->audit_timer, s->conf.mcu_audit_ms, true);
	if (!cdr_timer_pending(s->tpl_timer))
		read_templates(s);
}

/* Drops everything in flight and the view (a standby, or the end). */
static void drop_view(struct css *s)
{
	size_t it = 0;
	const char *k;
	void *v;

	s->gen++;
	s->consuming = false;
	s->loaded = s->loading = false;
	cdr_timer_stop(s->expiry_timer);
	cdr_timer_stop(s->audit_timer);
	s->audit_pending = false;
	while (cdr_hmap_next(s->reqs, &it, &k, &v)) {
		op_done(v); /* removes itself */
		it = 0;
	}
	it = 0;
	while (cdr_hmap_next(s->mcu_ops, &it, &k, &v)) {
		op_done(v);
		it = 0;
	}
	it = 0;
	while (cdr_hmap_next(s->confs, &it, &k, &v)) {
		struct conf *c = v;

		if (c->op)
			op_done(c->op);
		conf_free(s, c);
		it = 0;
	}
	s->dbq.n = 0;
	s->db_busy = false;
	s->restore_q.n = 0;
	s->restoring = 0;
	s->alloc_pending = false;
	cdr_timer_stop(s->restore_timer);
	cdr_timer_stop(s->db_timer);
	json_decref(s->confirm.ids);
	json_decref(s->release.ids);
	s->confirm.ids = s->release.ids = NULL;
}

/* Conferences per state and the counters, in the liveness node (confdrctl status). */
static void publish_stats(void *arg)
{
	struct css *s = arg;
	size_t per[CSS_NSTATES] = { 0 }, it = 0;
	const char *k;
	void *v;
	json_t *st = json_object(), *o;
	size_t others = 0; /* records of a platform handed back (hosted here, not ours to act on) */

	while (cdr_hmap_next(s->confs, &it, &k, &v)) {
		if (acts_for(s, v))
			per[((struct conf *)v)->state]++;
		else
			others++;
	}
	for (int i = 0; i < CSS_NSTATES; i++)
		json_object_set_new(st, css_state_name((enum css_state)i), json_integer((json_int_t)per[i]));
	o = json_pack("{s:b, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "serving", s->consuming, "confs",
		      (json_int_t)(cdr_hmap_count(s->confs) - others), "states", st, "created",
		      (json_int_t)s->n.created, "create_failed", (json_int_t)s->n.create_failed, "ended",
		      (json_int_t)s->n.ended, "orphans_ended", (json_int_t)s->n.orphans_ended, "missing",
		      (json_int_t)s->n.missing, "late_acks", (json_int_t)s->n.late_acks, "duplicates",
		      (json_int_t)s->n.duplicates);
	if (o)
		json_object_update_new(o, json_pack("{s:I, s:I, s:I, s:I, s:I}", "lost", (json_int_t)s->n.lost,
						    "restored", (json_int_t)s->n.restored, "restore_failed",
						    (json_int_t)s->n.restore_failed, "moved_ended",
						    (json_int_t)s->n.moved_ended, "adopted", (json_int_t)s->n.adopted));
	cdr_daemon_set_stats(s->d, o);
}

static void flush_reservations(void *arg)
{
	struct css *s = arg;

	rsv_flush_one(s, &s->confirm, true);
	rsv_flush_one(s, &s->release, false);
}

static void on_other_redis(bool up, const char *why, void *arg)
{
	struct redis_link *l = arg;

	cdr_info("redis of %s (replica for a takeover): %s%s%s", l->platform, up ? "up" : "down", why ? ": " : "",
		 why ? why : "");
}

/* The Redis of every platform whose domains this css may have to serve. */
static void connect_redis(struct css *s)
{
	const char *plats[MAX_REDIS];
	size_t n = css_redis_platforms(s->topo, s->platform, plats, MAX_REDIS);

	for (size_t i = 0; i < n && i < MAX_REDIS; i++) {
		struct redis_link *l;
		const struct cdr_endpoint *ep;

		if (link_of(s, plats[i]))
			continue;
		l = &s->links[s->nlinks];
		l->s = s;
		snprintf(l->platform, sizeof(l->platform), "%s", plats[i]);
		if (i == 0) {
			l->own = true;
			s->nlinks++;
			continue;
		}
		if (!(ep = cdr_topology_replica(s->topo, plats[i], CDR_SVC_REDIS))) {
			cdr_info("no Redis replica of %s in the topology: its domains cannot be served from here",
				 plats[i]);
			continue;
		}
		{
			struct cdr_redis_opts o = {
				.host = ep->host,
				.port = ep->port,
				.name = l->platform,
				.connect_timeout_ms = (unsigned)s->conf.base.redis_connect_timeout_ms,
				.on_state = on_other_redis,
				.arg = l,
			};

			if (cdr_redis_new(cdr_daemon_loop(s->d), &o, &l->r) == 0)
				s->nlinks++;
		}
	}
}

static void on_topology(struct cdr_topology *t, void *arg)
{
	struct css *s = arg;

	if (!s->topo) {
		cdr_info("topology: %zu platforms, %zu rooms, %zu user domains", cdr_topology_nplatforms(t),
			 cdr_topology_nrooms(t), cdr_topology_nuser_domains(t));
		s->nplats = cdr_topology_nplatforms(t);
		s->plats = calloc(s->nplats ? s->nplats : 1, sizeof(*s->plats));
		for (size_t i = 0; s->plats && i < s->nplats; i++)
			snprintf(s->plats[i].id, sizeof(s->plats[i].id), "%s", cdr_topology_platform_at(t, i)->id);
		s->nrooms = cdr_topology_nrooms(t);
		s->rooms = calloc(s->nrooms ? s->nrooms : 1, sizeof(*s->rooms));
		for (size_t i = 0; s->rooms && i < s->nrooms; i++)
			snprintf(s->rooms[i].id, sizeof(s->rooms[i].id), "%s", cdr_topology_room_at(t, i)->id);
		if (!s->plats)
			s->nplats = 0;
		if (!s->rooms)
			s->nrooms = 0;
		s->topo = t;
		connect_redis(s);
		maybe_consume(s);
	} else {
		/* user domains and backup lists may change; platforms and rooms are set at start */
		cdr_topology_free(s->topo);
		s->topo = t;
	}
}

static void copy_scalars(struct css_conf *dst, const struct css_conf *src)
{
	struct cdr_daemon_conf base = dst->base;

	*dst = *src;
	dst->base = base;
	dst->base.redis_connect_timeout_ms = src->base.redis_connect_timeout_ms;
}

static int css_init(struct cdr_daemon *d, void **server)
{
	const struct css_conf *cf = cdr_daemon_conf(d);
	struct css *s = calloc(1, sizeof(*s));
	struct cdr_loop *loop = cdr_daemon_loop(d);

	if (!s)
		return -ENOMEM;
	s->d = d;
	copy_scalars(&s->conf, cf);
	memset(&s->conf.base, 0, sizeof(s->conf.base));
	s->conf.base.redis_connect_timeout_ms = cf->base.redis_connect_timeout_ms;
	snprintf(s->platform, sizeof(s->platform), "%s", cf->base.platform);
	cdr_bus_init(&s->bus, d, "css", cf->base.platform);
	if (!(s->confs = cdr_hmap_new()) || !(s->uds = cdr_hmap_new()) || !(s->mcus = cdr_hmap_new()) ||
	    !(s->reqs = cdr_hmap_new()) || !(s->mcu_ops = cdr_hmap_new()) || !(s->list_seq = cdr_hmap_new()) ||
	    cdr_topo_follow_new(d, &s->conf.topology_refresh_ms, on_topology, s, &s->follow) < 0 ||
	    cdr_timer_new(loop, ask_pms, s, &s->pms_timer) < 0 ||
	    cdr_timer_new(loop, expiry_tick, s, &s->expiry_timer) < 0 ||
	    cdr_timer_new(loop, flush_reservations, s, &s->flush_timer) < 0 ||
	    cdr_timer_new(loop, read_templates, s, &s->tpl_timer) < 0 ||
	    cdr_timer_new(loop, db_retry, s, &s->db_timer) < 0 ||
	    cdr_timer_new(loop, publish_stats, s, &s->stats_timer) < 0 ||
	    cdr_timer_new(loop, restore_kick, s, &s->restore_timer) < 0 ||
	    cdr_timer_new(loop, audit_mcus, s, &s->audit_timer) < 0 ||
	    cdr_timer_new(loop, takeover_tick, s, &s->takeover_timer) < 0) {
		*server = s;
		return -ENOMEM; /* css_free cleans up */
	}
	cdr_timer_start(s->stats_timer, 1000, true);
	*server = s;
	return 0;
}

static void css_on_link(struct cdr_daemon *d, void *server, const char *link, bool up)
{
	struct css *s = server;

	if (!strcmp(link, "amqp") && !up && !cdr_daemon_mq(d))
		s->subscribed = NULL;
	if (!up)
		return;
	if (!strcmp(link, "zookeeper") && !s->topo)
		cdr_topo_follow_fetch(s->follow);
	if (!strcmp(link, "mysql"))
		db_kick(s);
	maybe_consume(s);
}

static void css_on_role(struct cdr_daemon *d, void *server, bool active, int64_t epoch)
{
	struct css *s = server;
	struct cdr_mq *mq = cdr_daemon_mq(d);

	s->active = active;
	s->epoch = epoch;
	if (active) {
		cdr_notice("active with epoch %" PRId64 ": asking pms for the platform state", epoch);
		s->pms_known = false;
		maybe_consume(s);
		return;
	}
	if (mq) {
		cdr_mq_cancel(mq, CDR_MQ_MAU_CONF_Q);
		cdr_mq_cancel(mq, CDR_MQ_MAU_CMU_Q);
	}
	drop_view(s);
}

static void css_reload(struct cdr_daemon *d, void *server, const void *conf)
{
	struct css *s = server;

	(void)d;
	copy_scalars(&s->conf, conf);
	cdr_info("css settings applied: create timeout %" PRIu64 " ms", s->conf.create_timeout_ms);
}

static void css_free(void *server)
{
	struct css *s = server;
	size_t it = 0;
	const char *k;
	void *v;

	if (!s)
		return;
	if (s->confs)
		drop_view(s);
	for (size_t i = 0; i < s->npeers; i++)
		cdr_mq_free(s->peers[i].mq);
	for (size_t i = 0; i < s->nlinks; i++)
		cdr_db_free(s->links[i].db);
	for (size_t i = 0; i < s->nlinks; i++)
		if (!s->links[i].own)
			cdr_redis_free(s->links[i].r);
	while (s->list_seq && cdr_hmap_next(s->list_seq, &it, &k, &v))
		free(v);
	cdr_hmap_free(s->list_seq);
	cdr_hmap_free(s->confs);
	cdr_hmap_free(s->uds);
	cdr_hmap_free(s->mcus);
	cdr_hmap_free(s->reqs);
	cdr_hmap_free(s->mcu_ops);
	cdr_topo_follow_free(s->follow);
	cdr_timer_free(s->pms_timer);
	cdr_timer_free(s->expiry_timer);
	cdr_timer_free(s->flush_timer);
	cdr_timer_free(s->tpl_timer);
	cdr_timer_free(s->db_timer);
	cdr_timer_free(s->stats_timer);
	cdr_timer_free(s->restore_timer);
	cdr_timer_free(s->audit_timer);
	cdr_timer_free(s->takeover_timer);
	free(s->restore_q.v);
	cdr_topology_free(s->topo);
	free(s->plats);
	free(s->rooms);
	free(s->dbq.v);
	json_decref(s->templates);
	free(s->templates_txt);
	free(s);
}

const struct cdr_daemon_ops css_daemon_ops = {
	.name = "css",
	.summary = "confdr conference scheduling service: creates, ends and restores conferences.",
	.keys = css_conf_keys,
	.conf_size = sizeof(struct css_conf),
	.uses_redis = true,
	.uses_mysql = true,
	.init = css_init,
	.on_link = css_on_link,
	.on_role = css_on_role,
	.reload = css_reload,
	.free = css_free,
};
