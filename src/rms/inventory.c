/* rms's inventory and allocation policy (inventory.h; docs/rms.md). */
#include "inventory.h"

#include <confdr/hmap.h>
#include <confdr/topology.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

struct alloc {
	char id[48];
	char e164[40];
	struct rms_mcu *mcu;
	struct rms_vrs *vrs;
	int64_t ports;
	bool confirmed;
	int64_t expires_ms;
	TAILQ_ENTRY(alloc) link; /* inv->reserved while not confirmed */
};
TAILQ_HEAD(alloc_list, alloc);

/* The MCUs and VRS of a room, for allocation. */
struct room_idx {
	char *id;
	struct rms_mcu **mcus;
	size_t nmcus, mcus_cap;
	struct rms_vrs **vrs;
	size_t nvrs, vrs_cap;
};

struct rms_inv {
	char *platform;
	struct rms_policy policy;
	rms_event_fn fn;
	void *arg;
	const struct cdr_topology *topo;
	int64_t epoch;
	uint64_t next_resv;

	struct cdr_hmap *mcus;	 /* id -> struct rms_mcu */
	struct cdr_hmap *vrs;	 /* id -> struct rms_vrs */
	struct cdr_hmap *rooms;	 /* id -> struct room_idx */
	struct cdr_hmap *allocs; /* reservation id -> struct alloc */
	struct alloc_list reserved;
	size_t nreserved;
};

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

int64_t rms_mcu_running(const struct rms_mcu *m)
{
	return max64(0, m->rep_confs + m->delta_confs);
}

int64_t rms_mcu_used_ports(const struct rms_mcu *m)
{
	return max64(0, m->rep_ports + m->delta_ports) + m->res_ports;
}

int64_t rms_vrs_running(const struct rms_vrs *v)
{
	return max64(0, v->rep + v->delta);
}

static int64_t mcu_load(const struct rms_mcu *m)
{
	return rms_mcu_running(m) + m->res_confs;
}

static int64_t vrs_load(const struct rms_vrs *v)
{
	return rms_vrs_running(v) + v->res;
}

const char *rms_mcu_state_name(const struct rms_mcu *m)
{
	if (m->live.state == RMS_DOWN)
		return "down";
	return m->drain ? "drain" : "up";
}

const char *rms_reason_code(enum rms_reason r)
{
	switch (r) {
	case RMS_OK: return "ok";
	case RMS_NO_CAPACITY: return "no_capacity";
	case RMS_UNKNOWN_ROOM: return "unknown_room";
	case RMS_UNKNOWN_CAPABILITY: return "unknown_capability";
	case RMS_UNKNOWN_USER_DOMAIN: return "unknown_user_domain";
	case RMS_OTHER_PLATFORM: return "other_platform";
	case RMS_NOT_READY: return "not_active";
	case RMS_NO_MEMORY: return "no_capacity";
	}
	return "bad_request";
}

/* ---- life ---- */

struct rms_inv *rms_inv_new(const char *platform, const struct rms_policy *policy, rms_event_fn fn, void *arg)
{
	struct rms_inv *inv = calloc(1, sizeof(*inv));

	if (!inv)
		return NULL;
	inv->platform = strdup(platform);
	inv->mcus = cdr_hmap_new();
	inv->vrs = cdr_hmap_new();
	inv->rooms = cdr_hmap_new();
	inv->allocs = cdr_hmap_new();
	TAILQ_INIT(&inv->reserved);
	if (!inv->platform || !inv->mcus || !inv->vrs || !inv->rooms || !inv->allocs)
		return rms_inv_free(inv);
	inv->policy = *policy;
	inv->fn = fn;
	inv->arg = arg;
	return inv;
}

static void clear(struct rms_inv *inv)
{
	size_t it = 0;
	void *v;

	while (cdr_hmap_next(inv->allocs, &it, NULL, &v)) {
		cdr_hmap_del_at(inv->allocs, &it);
		free(v);
	}
	TAILQ_INIT(&inv->reserved);
	inv->nreserved = 0;
	it = 0;
	while (cdr_hmap_next(inv->mcus, &it, NULL, &v)) {
		struct rms_mcu *m = v;

		cdr_hmap_del_at(inv->mcus, &it);
		free(m->id);
		free(m->key);
		free(m->room);
		free(m);
	}
	it = 0;
	while (cdr_hmap_next(inv->vrs, &it, NULL, &v)) {
		struct rms_vrs *vr = v;

		cdr_hmap_del_at(inv->vrs, &it);
		free(vr->id);
		free(vr->room);
		free(vr);
	}
	it = 0;
	while (cdr_hmap_next(inv->rooms, &it, NULL, &v)) {
		struct room_idx *r = v;

		cdr_hmap_del_at(inv->rooms, &it);
		free(r->id);
		free(r->mcus);
		free(r->vrs);
		free(r);
	}
}

struct rms_inv *rms_inv_free(struct rms_inv *inv)
{
	if (!inv)
		return NULL;
	if (inv->mcus && inv->vrs && inv->rooms && inv->allocs)
		clear(inv);
	cdr_hmap_free(inv->mcus);
	cdr_hmap_free(inv->vrs);
	cdr_hmap_free(inv->rooms);
	cdr_hmap_free(inv->allocs);
	free(inv->platform);
	free(inv);
	return NULL;
}

void rms_inv_set_policy(struct rms_inv *inv, const struct rms_policy *policy)
{
	inv->policy = *policy;
}

const struct rms_policy *rms_inv_policy(const struct rms_inv *inv)
{
	return &inv->policy;
}

void rms_inv_set_topology(struct rms_inv *inv, const struct cdr_topology *t)
{
	inv->topo = t;
}

void rms_inv_reset(struct rms_inv *inv, int64_t epoch)
{
	clear(inv);
	inv->epoch = epoch;
	inv->next_resv = 0;
}

const char *rms_inv_platform(const struct rms_inv *inv)
{
	return inv->platform;
}

size_t rms_inv_nreservations(const struct rms_inv *inv)
{
	return inv->nreserved;
}

size_t rms_inv_nallocations(const struct rms_inv *inv)
{
	return cdr_hmap_count(inv->allocs) - inv->nreserved;
}

const struct rms_mcu *rms_inv_mcu(const struct rms_inv *inv, const char *id)
{
	return cdr_hmap_get(inv->mcus, id);
}

const struct rms_vrs *rms_inv_vrs(const struct rms_inv *inv, const char *id)
{
	return cdr_hmap_get(inv->vrs, id);
}

/* ---- rooms ---- */

static struct room_idx *room_get(struct rms_inv *inv, const char *id, bool create)
{
	struct room_idx *r = cdr_hmap_get(inv->rooms, id);

	if (r || !create)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r || !(r->id = strdup(id)) || cdr_hmap_put(inv->rooms, r->id, r) < 0) {
		if (r)
			free(r->id);
		free(r);
		return NULL;
	}
	return r;
}

static int grow(void **arr, size_t *cap, size_t n)
{
	void *p;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	p = realloc(*arr, ncap * sizeof(void *));
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static void room_remove_mcu(struct rms_inv *inv, struct rms_mcu *m)
{
	struct room_idx *r = room_get(inv, m->room, false);

	for (size_t i = 0; r && i < r->nmcus; i++)
		if (r->mcus[i] == m) {
			r->mcus[i] = r->mcus[--r->nmcus];
			return;
		}
}

static void room_remove_vrs(struct rms_inv *inv, struct rms_vrs *v)
{
	struct room_idx *r = room_get(inv, v->room, false);

	for (size_t i = 0; r && i < r->nvrs; i++)
		if (r->vrs[i] == v) {
			r->vrs[i] = r->vrs[--r->nvrs];
			return;
		}
}

/* The room must be one of this platform's. */
static int check_room(struct rms_inv *inv, const char *room, const char *platform, char *err, size_t errlen)
{
	const struct cdr_room *r;

	if (!inv->topo) {
		snprintf(err, errlen, "rms has not read the topology yet; register again later");
		return -EAGAIN;
	}
	if (platform && strcmp(platform, inv->platform) != 0) {
		snprintf(err, errlen, "platform %s is not this rms's (%s): register with the rms of %s", platform,
			 inv->platform, platform);
		return -EXDEV;
	}
	if (!(r = cdr_topology_room(inv->topo, room))) {
		snprintf(err, errlen, "room %s is not in the topology", room);
		return -ENOENT;
	}
	if (strcmp(r->platform, inv->platform) != 0) {
		snprintf(err, errlen, "room %s belongs to platform %s, not %s", room, r->platform, inv->platform);
		return -EXDEV;
	}
	return 0;
}

static void emit_mcu(struct rms_inv *inv, const struct rms_mcu *m, const char *reason)
{
	struct rms_event ev = { .mcu = m, .state = rms_mcu_state_name(m), .reason = reason };

	if (inv->fn)
		inv->fn(&ev, inv->arg);
}

static void emit_vrs(struct rms_inv *inv, const struct rms_vrs *v, const char *reason)
{
	struct rms_event ev = {
		.vrs = true, .v = v, .state = v->live.state == RMS_UP ? "up" : "down", .reason = reason
	};

	if (inv->fn)
		inv->fn(&ev, inv->arg);
}

static bool str_changed(char **dst, const char *src, int *r)
{
	char *n;

	if (*dst && strcmp(*dst, src) == 0)
		return false;
	if (!(n = strdup(src))) {
		*r = -ENOMEM;
		return false;
	}
	free(*dst);
	*dst = n;
	return true;
}

/* ---- registration and liveness ---- */

/* A registration: up at once, heartbeats counted afresh. */
static void live_registered(struct rms_live *l, const struct rms_policy *p, int64_t now)
{
	if (l->state != RMS_UP) {
		l->state = RMS_UP;
		l->since_ms = now;
	}
	l->last_seen_ms = now;
	l->heartbeat_ms = p->heartbeat_ms;
	l->last_seq = -1;
	l->rise_count = 0;
}

int rms_inv_register_mcu(struct rms_inv *inv, const struct rms_mcu_reg *reg, int64_t now, char *err, size_t errlen)
{
	struct rms_mcu *m;
	struct room_idx *room;
	bool fresh = false, was_up, moved = false, rekeyed;
	int r;

	if ((r = check_room(inv, reg->room, reg->platform, err, errlen)) < 0)
		return r;
	m = cdr_hmap_get(inv->mcus, reg->id);
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m || !(m->id = strdup(reg->id)) || cdr_hmap_put(inv->mcus, m->id, m) < 0) {
			if (m)
				free(m->id);
			free(m);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		fresh = true;
		m->live.state = RMS_DOWN;
	}
	was_up = m->live.state == RMS_UP;
	if (!fresh && strcmp(m->room, reg->room) != 0) {
		room_remove_mcu(inv, m);
		moved = true;
	}
	r = 0;
	rekeyed = str_changed(&m->key, reg->key, &r);
	if (fresh || moved)
		str_changed(&m->room, reg->room, &r);
	if (r < 0 || !(room = room_get(inv, m->room, true)) ||
	    ((fresh || moved) && grow((void **)&room->mcus, &room->mcus_cap, room->nmcus) < 0)) {
		snprintf(err, errlen, "out of memory");
		if (fresh) {
			cdr_hmap_del(inv->mcus, m->id);
			free(m->id);
			free(m->key);
			free(m->room);
			free(m);
		}
		return -ENOMEM;
	}
	if (fresh || moved)
		room->mcus[room->nmcus++] = m;
	m->cap_confs = reg->cap_confs;
	m->cap_ports = reg->cap_ports;
	m->h265 = reg->h265;
	m->res_1080p = reg->res_1080p;
	m->xmpu = reg->xmpu;
	m->weight = reg->weight > 0 ? reg->weight : 100;
	m->priority = reg->priority >= 0 ? reg->priority : 100;
	m->backup = reg->backup;
	m->rep_confs = reg->running_confs;
	m->rep_ports = reg->used_ports;
	m->delta_confs = m->delta_ports = 0;
	live_registered(&m->live, &inv->policy, now);
	if (!was_up || moved || rekeyed)
		emit_mcu(inv, m, "registered");
	return 0;
}

int rms_inv_register_vrs(struct rms_inv *inv, const struct rms_vrs_reg *reg, int64_t now, char *err, size_t errlen)
{
	struct rms_vrs *v;
	struct room_idx *room;
	bool fresh = false, was_up, moved = false;
	int r;

	if ((r = check_room(inv, reg->room, reg->platform, err, errlen)) < 0)
		return r;
	v = cdr_hmap_get(inv->vrs, reg->id);
	if (!v) {
		v = calloc(1, sizeof(*v));
		if (!v || !(v->id = strdup(reg->id)) || cdr_hmap_put(inv->vrs, v->id, v) < 0) {
			if (v)
				free(v->id);
			free(v);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		fresh = true;
		v->live.state = RMS_DOWN;
	}
	was_up = v->live.state == RMS_UP;
	if (!fresh && strcmp(v->room, reg->room) != 0) {
		room_remove_vrs(inv, v);
		moved = true;
	}
	r = 0;
	if (fresh || moved)
		str_changed(&v->room, reg->room, &r);
	if (r < 0 || !(room = room_get(inv, v->room, true)) ||
	    ((fresh || moved) && grow((void **)&room->vrs, &room->vrs_cap, room->nvrs) < 0)) {
		snprintf(err, errlen, "out of memory");
		if (fresh) {
			cdr_hmap_del(inv->vrs, v->id);
			free(v->id);
			free(v->room);
			free(v);
		}
		return -ENOMEM;
	}
	if (fresh || moved)
		room->vrs[room->nvrs++] = v;
	v->capacity = reg->capacity;
	v->weight = reg->weight > 0 ? reg->weight : 100;
	v->priority = reg->priority >= 0 ? reg->priority : 100;
	v->rep = reg->running;
	v->delta = 0;
	live_registered(&v->live, &inv->policy, now);
	if (!was_up || moved)
		emit_vrs(inv, v, "registered");
	return 0;
}

/* A heartbeat of seq at now. Returns -EALREADY for an old or repeated seq,
 * 1 when it brought the MCU or VRS back up (rise consecutive heartbeats, each
 * within the detection window of the one before), else 0. */
static int live_heartbeat(struct rms_live *l, const struct rms_policy *p, int64_t seq, int64_t now)
{
	int r = 0;

	if (seq <= l->last_seq)
		return -EALREADY;
	if (l->state == RMS_DOWN) {
		if (l->rise_count > 0 && now - l->last_seen_ms > l->heartbeat_ms * p->misses)
			l->rise_count = 0;
		if (++l->rise_count >= p->rise) {
			l->state = RMS_UP;
			l->since_ms = now;
			l->rise_count = 0;
			r = 1;
		}
	}
	l->last_seq = seq;
	l->last_seen_ms = now;
	return r;
}

/* Whether it has just missed its heartbeats (then it is down now). */
static bool live_lost(struct rms_live *l, const struct rms_policy *p, int64_t now)
{
	if (l->state != RMS_UP || now - l->last_seen_ms <= l->heartbeat_ms * p->misses)
		return false;
	l->state = RMS_DOWN;
	l->since_ms = now;
	l->rise_count = 0;
	return true;
}

int rms_inv_heartbeat_mcu(struct rms_inv *inv, const char *id, int64_t seq, int64_t running_confs, int64_t used_ports,
			  int64_t now)
{
	struct rms_mcu *m = cdr_hmap_get(inv->mcus, id);
	int r;

	if (!m)
		return -ENOENT;
	if ((r = live_heartbeat(&m->live, &inv->policy, seq, now)) < 0)
		return r;
	m->rep_confs = running_confs;
	m->rep_ports = used_ports;
	m->delta_confs = m->delta_ports = 0;
	if (r)
		emit_mcu(inv, m, "heartbeat_resumed");
	return 0;
}

int rms_inv_heartbeat_vrs(struct rms_inv *inv, const char *id, int64_t seq, int64_t running, int64_t now)
{
	struct rms_vrs *v = cdr_hmap_get(inv->vrs, id);
	int r;

	if (!v)
		return -ENOENT;
	if ((r = live_heartbeat(&v->live, &inv->policy, seq, now)) < 0)
		return r;
	v->rep = running;
	v->delta = 0;
	if (r)
		emit_vrs(inv, v, "heartbeat_resumed");
	return 0;
}

static void unreserve(struct rms_inv *inv, struct alloc *a)
{
	if (a->mcu) {
		a->mcu->res_confs--;
		a->mcu->res_ports -= a->ports;
	}
	if (a->vrs)
		a->vrs->res--;
	TAILQ_REMOVE(&inv->reserved, a, link);
	inv->nreserved--;
}

size_t rms_inv_tick(struct rms_inv *inv, int64_t now)
{
	size_t it = 0, expired = 0;
	void *v;
	struct alloc *a, *next;

	while (cdr_hmap_next(inv->mcus, &it, NULL, &v)) {
		if (live_lost(&((struct rms_mcu *)v)->live, &inv->policy, now))
			emit_mcu(inv, v, "heartbeat_lost");
	}
	it = 0;
	while (cdr_hmap_next(inv->vrs, &it, NULL, &v)) {
		if (live_lost(&((struct rms_vrs *)v)->live, &inv->policy, now))
			emit_vrs(inv, v, "heartbeat_lost");
	}
	for (a = TAILQ_FIRST(&inv->reserved); a; a = next) {
		next = TAILQ_NEXT(a, link);
		if (a->expires_ms > now)
			continue;
		unreserve(inv, a);
		cdr_hmap_del(inv->allocs, a->id);
		free(a);
		expired++;
	}
	return expired;
}

int rms_inv_drain(struct rms_inv *inv, const char *id, bool drain, int64_t now)
{
	struct rms_mcu *m = cdr_hmap_get(inv->mcus, id);

	(void)now;
	if (!m)
		return -ENOENT;
	if (m->drain == drain)
		return 0;
	m->drain = drain;
	if (m->live.state == RMS_UP)
		emit_mcu(inv, m, drain ? "drain" : "undrain");
	return 0;
}

/* ---- allocation ---- */

static bool excluded(const struct rms_want *w, const char *id)
{
	for (size_t i = 0; i < w->nexclude; i++)
		if (strcmp(w->exclude[i], id) == 0)
			return true;
	return false;
}

static bool room_excluded(const struct rms_want *w, const char *id)
{
	for (size_t i = 0; i < w->nexclude_rooms; i++)
		if (strcmp(w->exclude_rooms[i], id) == 0)
			return true;
	return false;
}

/* Whether a is a better pick than b by weighted least load:
 * load_a / (cap_a * weight_a) < load_b / (cap_b * weight_b), ties by id. */
static bool lighter(int64_t load_a, int64_t cap_a, int wa, const char *ida, int64_t load_b, int64_t cap_b, int wb,
		    const char *idb)
{
	__int128 l = (__int128)load_a * cap_b * wb, r = (__int128)load_b * cap_a * wa;

	if (l != r)
		return l < r;
	return strcmp(ida, idb) < 0;
}

struct why {
	int none, down, caps, full; /* MCUs seen unusable, by reason */
	bool vrs_missing;
};

static struct rms_mcu *pick_mcu(const struct room_idx *r, const struct rms_want *w, int64_t ports, struct why *why)
{
	struct rms_mcu *best = NULL;
	bool primaries = false;
	size_t i;

	if (!r || !r->nmcus) {
		why->none++;
		return NULL;
	}
	for (i = 0; i < r->nmcus; i++)
		if (!r->mcus[i]->backup && r->mcus[i]->live.state == RMS_UP && !r->mcus[i]->drain)
			primaries = true;
	for (i = 0; i < r->nmcus; i++) {
		struct rms_mcu *m = r->mcus[i];

		if (m->backup == primaries) /* backups only when no primary is usable */
			continue;
		if (m->live.state != RMS_UP || m->drain || excluded(w, m->id)) {
			why->down++;
			continue;
		}
		if ((w->h265 && !m->h265) || (w->res_1080p && !m->res_1080p) || (w->xmpu && !m->xmpu)) {
			why->caps++;
			continue;
		}
		if (mcu_load(m) + 1 > m->cap_confs || rms_mcu_used_ports(m) + ports > m->cap_ports) {
			why->full++;
			continue;
		}
		if (!best || m->priority < best->priority ||
		    (m->priority == best->priority && lighter(mcu_load(m), m->cap_confs, m->weight, m->id,
							      mcu_load(best), best->cap_confs, best->weight, best->id)))
			best = m;
	}
	return best;
}

static struct rms_vrs *pick_vrs(const struct room_idx *r)
{
	struct rms_vrs *best = NULL;

	for (size_t i = 0; r && i < r->nvrs; i++) {
		struct rms_vrs *v = r->vrs[i];

		if (v->live.state != RMS_UP || vrs_load(v) + 1 > v->capacity)
			continue;
		if (!best || v->priority < best->priority ||
		    (v->priority == best->priority && lighter(vrs_load(v), v->capacity, v->weight, v->id,
							      vrs_load(best), best->capacity, best->weight, best->id)))
			best = v;
	}
	return best;
}

/* Appends "room: why" to the detail. */
static void add_detail(struct rms_result *res, const char *room, const struct why *why, const struct rms_want *w)
{
	size_t len = strlen(res->detail);
	char caps[32] = "";

	if (len >= sizeof(res->detail) - 1)
		return;
	snprintf(caps, sizeof(caps), "%s%s%s", w->h265 ? " h265" : "", w->res_1080p ? " 1080p" : "",
		 w->xmpu ? " xmpu" : "");
	snprintf(res->detail + len, sizeof(res->detail) - len, "%s%s: %s", len ? "; " : "", room,
		 why->vrs_missing ? "no VRS free"
		 : why->full	  ? "MCUs full"
		 : why->caps	  ? (*caps ? "no MCU with the capabilities wanted" : "no MCU capable")
		 : why->down	  ? "no MCU up"
				  : "no MCU registered");
}

static int parse_caps(const struct rms_want *in, struct rms_want *w, char *detail, size_t len)
{
	*w = *in;
	for (size_t i = 0; i < in->ncaps; i++) {
		const char *c = in->caps[i];

		if (strcmp(c, "h265") == 0)
			w->h265 = true;
		else if (strcmp(c, "1080p") == 0 || strcmp(c, "res_1080p") == 0)
			w->res_1080p = true;
		else if (strcmp(c, "xmpu") == 0)
			w->xmpu = true;
		else {
			snprintf(detail, len, "capability \"%.64s\" is not one of h265, 1080p, xmpu", c);
			return -EINVAL;
		}
	}
	return 0;
}

void rms_inv_allocate(struct rms_inv *inv, const struct rms_want *want, int64_t now, struct rms_result *res)
{
	const struct cdr_room *room;
	const char *room_id = want->room;
	struct rms_want w;
	int64_t ports;
	struct alloc *a;

	memset(res, 0, sizeof(*res));
	if (!inv->topo) {
		res->reason = RMS_NOT_READY;
		snprintf(res->detail, sizeof(res->detail), "rms has not read the topology yet");
		return;
	}
	if (parse_caps(want, &w, res->detail, sizeof(res->detail)) < 0) {
		res->reason = RMS_UNKNOWN_CAPABILITY;
		return;
	}
	if (!room_id) {
		const struct cdr_user_domain *ud = cdr_topology_user_domain(inv->topo, want->user_domain);

		if (!ud) {
			res->reason = RMS_UNKNOWN_USER_DOMAIN;
			snprintf(res->detail, sizeof(res->detail), "user domain %s is not in the topology",
				 want->user_domain);
			return;
		}
		room_id = ud->room;
	}
	if (!(room = cdr_topology_room(inv->topo, room_id))) {
		res->reason = RMS_UNKNOWN_ROOM;
		snprintf(res->detail, sizeof(res->detail), "room %s is not in the topology", room_id);
		return;
	}
	ports = w.ports > 0 ? w.ports : inv->policy.default_ports;
	for (size_t i = 0; i <= room->nbackup_rooms; i++) {
		const char *rid = i == 0 ? room->id : room->backup_rooms[i - 1];
		const struct cdr_room *cr = cdr_topology_room(inv->topo, rid);
		const struct room_idx *idx;
		struct rms_mcu *m;
		struct rms_vrs *v = NULL;
		struct why why = { 0 };

		if (!cr)
			continue; /* validated topology: cannot happen */
		if (room_excluded(&w, rid)) {
			size_t len = strlen(res->detail);

			snprintf(res->detail + len, sizeof(res->detail) - len, "%sroom %s excluded", len ? "; " : "",
				 rid);
			if (!res->reason)
				res->reason = RMS_NO_CAPACITY;
			continue;
		}
		if (strcmp(cr->platform, inv->platform) != 0) {
			size_t len = strlen(res->detail);

			res->reason = RMS_OTHER_PLATFORM;
			res->room = cr->id;
			res->platform = cr->platform;
			snprintf(res->detail + len, sizeof(res->detail) - len, "%snext is room %s of platform %s",
				 len ? "; " : "", cr->id, cr->platform);
			return;
		}
		idx = cdr_hmap_get(inv->rooms, rid);
		m = pick_mcu(idx, &w, ports, &why);
		if (m && w.record && !(v = pick_vrs(idx))) {
			why.vrs_missing = true;
			m = NULL;
		}
		if (!m) {
			add_detail(res, rid, &why, &w);
			continue;
		}
		a = calloc(1, sizeof(*a));
		if (!a) {
			res->reason = RMS_NO_MEMORY;
			snprintf(res->detail, sizeof(res->detail), "rms is out of memory");
			return;
		}
		snprintf(a->id, sizeof(a->id), "%" PRId64 "-%" PRIu64, inv->epoch, ++inv->next_resv);
		snprintf(a->e164, sizeof(a->e164), "%s", want->e164 ? want->e164 : "");
		a->mcu = m;
		a->vrs = v;
		a->ports = ports;
		a->expires_ms = now + inv->policy.reservation_ms;
		if (cdr_hmap_put(inv->allocs, a->id, a) < 0) {
			free(a);
			res->reason = RMS_NO_MEMORY;
			snprintf(res->detail, sizeof(res->detail), "rms is out of memory");
			return;
		}
		TAILQ_INSERT_TAIL(&inv->reserved, a, link);
		inv->nreserved++;
		m->res_confs++;
		m->res_ports += ports;
		if (v)
			v->res++;
		res->reason = RMS_OK;
		res->detail[0] = '\0';
		res->mcu = m;
		res->vrs = v;
		res->room = cr->id;
		res->platform = cr->platform;
		snprintf(res->reservation, sizeof(res->reservation), "%s", a->id);
		return;
	}
	res->reason = RMS_NO_CAPACITY;
}

int rms_inv_confirm(struct rms_inv *inv, const char *reservation)
{
	struct alloc *a = cdr_hmap_get(inv->allocs, reservation);

	if (!a)
		return -ENOENT;
	if (a->confirmed)
		return 0;
	unreserve(inv, a);
	a->confirmed = true;
	a->mcu->delta_confs++;
	a->mcu->delta_ports += a->ports;
	if (a->vrs)
		a->vrs->delta++;
	return 0;
}

int rms_inv_release(struct rms_inv *inv, const char *reservation)
{
	struct alloc *a = cdr_hmap_del(inv->allocs, reservation);

	if (!a)
		return -ENOENT;
	if (!a->confirmed) {
		unreserve(inv, a);
	} else {
		a->mcu->delta_confs--;
		a->mcu->delta_ports -= a->ports;
		if (a->vrs)
			a->vrs->delta--;
	}
	free(a);
	return 0;
}

int rms_inv_capability(const struct rms_inv *inv, const char *user_domain, bool *h265, bool *res_1080p, bool *xmpu,
		       const char **room)
{
	const struct cdr_user_domain *ud;
	const struct room_idx *r;

	*h265 = *res_1080p = *xmpu = false;
	if (!inv->topo)
		return -EAGAIN;
	if (!(ud = cdr_topology_user_domain(inv->topo, user_domain)))
		return -ENOENT;
	*room = ud->room;
	r = cdr_hmap_get(inv->rooms, ud->room);
	for (size_t i = 0; r && i < r->nmcus; i++) {
		*h265 |= r->mcus[i]->h265;
		*res_1080p |= r->mcus[i]->res_1080p;
		*xmpu |= r->mcus[i]->xmpu;
	}
	return 0;
}

/* ---- reading ---- */

static int by_mcu_id(const void *a, const void *b)
{
	return strcmp((*(const struct rms_mcu *const *)a)->id, (*(const struct rms_mcu *const *)b)->id);
}

static int by_vrs_id(const void *a, const void *b)
{
	return strcmp((*(const struct rms_vrs *const *)a)->id, (*(const struct rms_vrs *const *)b)->id);
}

const struct rms_mcu **rms_inv_mcus(const struct rms_inv *inv, const char *room, size_t *n)
{
	const struct rms_mcu **arr;
	size_t it = 0, k = 0;
	void *v;

	*n = 0;
	if (!cdr_hmap_count(inv->mcus) || !(arr = calloc(cdr_hmap_count(inv->mcus), sizeof(*arr))))
		return NULL;
	while (cdr_hmap_next(inv->mcus, &it, NULL, &v))
		if (!room || strcmp(((struct rms_mcu *)v)->room, room) == 0)
			arr[k++] = v;
	qsort(arr, k, sizeof(*arr), by_mcu_id);
	*n = k;
	return arr;
}

const struct rms_vrs **rms_inv_vrss(const struct rms_inv *inv, const char *room, size_t *n)
{
	const struct rms_vrs **arr;
	size_t it = 0, k = 0;
	void *v;

	*n = 0;
	if (!cdr_hmap_count(inv->vrs) || !(arr = calloc(cdr_hmap_count(inv->vrs), sizeof(*arr))))
		return NULL;
	while (cdr_hmap_next(inv->vrs, &it, NULL, &v))
		if (!room || strcmp(((struct rms_vrs *)v)->room, room) == 0)
			arr[k++] = v;
	qsort(arr, k, sizeof(*arr), by_vrs_id);
	*n = k;
	return arr;
}
