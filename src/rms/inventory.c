/* rms's inventory of MCUs and VRS (inventory.h; docs/rms.md): its life,
 * the rooms they are in, registrations, liveness (heartbeats, loss after
 * missed ones, rise), drain, and reading. The load, the allocation policy
 * and the reservations are allocation.c's. */
#include "inventory_int.h"

const char *rms_mcu_state_name(const struct rms_mcu *m)
{
	if (m->live.state == RMS_DOWN)
		return "down";
	return m->drain ? "drain" : "up";
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

	rms_inv_clear_allocs(inv);
	while (cdr_hmap_next(inv->mcus, &it, NULL, &v)) {
		struct rms_mcu *m = v;

		cdr_hmap_del_at(inv->mcus, &it);
		free(m->id);
		free(m->key);
		free(m->room);
		free(m->boot);
		free(m->owner);
		free(m);
	}
	it = 0;
	while (cdr_hmap_next(inv->vrs, &it, NULL, &v)) {
		struct rms_vrs *vr = v;

		cdr_hmap_del_at(inv->vrs, &it);
		free(vr->id);
		free(vr->room);
		free(vr->owner);
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

/* A registration by owner of what *cur owns now: refused while it is up and
 * another user's (-EPERM, err says why), else the owner is taken. */
static int owner_check(const char *kind, const char *id, const char *cur, bool up, const char *owner, char *err,
		       size_t errlen)
{
	if (!up || !cur || !owner || !strcmp(cur, owner))
		return 0;
	snprintf(err, errlen, "%s %s is up and registered by broker user %s: %s may not register it", kind, id, cur,
		 owner);
	return -EPERM;
}

const char *rms_inv_owner(const struct rms_inv *inv, const char *id, bool vrs)
{
	if (vrs) {
		const struct rms_vrs *v = cdr_hmap_get(inv->vrs, id);
		return v ? v->owner : NULL;
	}
	const struct rms_mcu *m = cdr_hmap_get(inv->mcus, id);
	return m ? m->owner : NULL;
}

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
	l->back_seq = -1;
	l->rise_count = 0;
}

int rms_inv_register_mcu(struct rms_inv *inv, const struct rms_mcu_reg *reg, int64_t now, char *err, size_t errlen)
{
	struct rms_mcu *m;
	struct room_idx *room;
	bool fresh = false, was_up, moved = false, rekeyed, restarted;
	bool has_boot = reg->boot && *reg->boot;
	int r;

	if ((r = check_room(inv, reg->room, reg->platform, err, errlen)) < 0)
		return r;
	m = cdr_hmap_get(inv->mcus, reg->id);
	if (m && (r = owner_check("mcu", reg->id, m->owner, m->live.state == RMS_UP, reg->owner, err, errlen)) < 0)
		return r;
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
	restarted = !fresh && has_boot && m->boot && strcmp(m->boot, reg->boot) != 0;
	if (has_boot)
		str_changed(&m->boot, reg->boot, &r);
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
			free(m->boot);
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
	m->unheard = false;
	if (reg->owner && *reg->owner)
		str_changed(&m->owner, reg->owner, &r); /* out of memory: the last owner stays */
	if (restarted)
		emit_mcu(inv, m, "restarted");
	else if (!was_up || moved || rekeyed)
		emit_mcu(inv, m, "registered");
	return 0;
}

int rms_inv_mcu_boot(struct rms_inv *inv, const char *id, const char *boot)
{
	struct rms_mcu *m = cdr_hmap_get(inv->mcus, id);
	int r = 0;

	if (!m || !boot || !*boot || (m->boot && !strcmp(m->boot, boot)))
		return 0;
	if (!m->boot) { /* the first boot it tells: nothing to compare */
		str_changed(&m->boot, boot, &r);
		return r;
	}
	str_changed(&m->boot, boot, &r);
	if (r < 0)
		return r;
	m->live.last_seq = -1; /* a new incarnation counts from anew */
	m->live.back_seq = -1;
	m->rep_confs = m->rep_ports = 0;
	m->delta_confs = m->delta_ports = 0;
	emit_mcu(inv, m, "restarted");
	return 1;
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
	if (v && (r = owner_check("vrs", reg->id, v->owner, v->live.state == RMS_UP, reg->owner, err, errlen)) < 0)
		return r;
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
	if (reg->owner && *reg->owner)
		str_changed(&v->owner, reg->owner, &r);
	if (!was_up || moved)
		emit_vrs(inv, v, "registered");
	return 0;
}

/* A heartbeat of seq at now. Returns -EALREADY for an old or repeated seq,
 * -ERANGE for one too far ahead, 1 when it brought the MCU or VRS back up
 * (rise consecutive heartbeats, each within the detection window of the one
 * before), else 0.
 *
 * One forged value never pins it (issue 22: a heartbeat with seq 2^63-1 made
 * rms declare a live MCU down for good): a seq further ahead than the time
 * since the last one allows (RMS_SEQ_PER_MS, RMS_SEQ_SLACK) is refused;
 * and two heartbeats in a row older than the last accepted one, the second
 * greater than the first, mean the counter is the MCU's own again (a high
 * value accepted earlier, or a counter reset without a new boot): counted
 * from them. */
static int live_heartbeat(struct rms_live *l, const struct rms_policy *p, int64_t seq, int64_t now)
{
	int r = 0;

	if (seq <= l->last_seq) {
		bool again = l->back_seq >= 0 && seq > l->back_seq;

		l->back_seq = seq;
		if (!again)
			return -EALREADY;
		l->last_seq = seq - 1; /* accepted below */
	} else if (l->last_seq >= 0) {
		int64_t gap = now > l->last_seen_ms ? now - l->last_seen_ms : 0;

		if (gap <= (INT64_MAX - RMS_SEQ_SLACK) / RMS_SEQ_PER_MS &&
		    seq - l->last_seq > gap * RMS_SEQ_PER_MS + RMS_SEQ_SLACK) {
			l->seq_refused++;
			return -ERANGE;
		}
	}
	l->back_seq = -1;
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
	m->unheard = false;
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

/* l seen "now", or later so that its window ends grace_ms from now. */
static void live_grace(struct rms_live *l, const struct rms_policy *p, int64_t now, int64_t grace_ms)
{
	int64_t window = l->heartbeat_ms * p->misses;

	if (l->state == RMS_UP)
		l->last_seen_ms = grace_ms > window ? now + grace_ms - window : now;
}

void rms_inv_blind(struct rms_inv *inv, bool blind, int64_t now, int64_t grace_ms)
{
	size_t it = 0;
	void *v;

	if (inv->blind && !blind) {
		/* With a grace (the broker itself went away), every MCU re-connects
		 * and registers again: until it is heard, a create sent to it would
		 * wait in its queue, so nothing is allocated on it. */
		while (cdr_hmap_next(inv->mcus, &it, NULL, &v)) {
			live_grace(&((struct rms_mcu *)v)->live, &inv->policy, now, grace_ms);
			if (grace_ms > 0 && ((struct rms_mcu *)v)->live.state == RMS_UP)
				((struct rms_mcu *)v)->unheard = true;
		}
		it = 0;
		while (cdr_hmap_next(inv->vrs, &it, NULL, &v))
			live_grace(&((struct rms_vrs *)v)->live, &inv->policy, now, grace_ms);
	}
	inv->blind = blind;
}

void rms_inv_quiet(struct rms_inv *inv, int64_t until)
{
	inv->quiet_until = until;
}

bool rms_inv_settling(const struct rms_inv *inv, int64_t now)
{
	return inv->blind || now < inv->quiet_until;
}

size_t rms_inv_tick(struct rms_inv *inv, int64_t now)
{
	size_t it = 0;
	void *v;

	if (rms_inv_settling(inv, now))
		return rms_inv_expire(inv, now);
	while (cdr_hmap_next(inv->mcus, &it, NULL, &v)) {
		if (live_lost(&((struct rms_mcu *)v)->live, &inv->policy, now))
			emit_mcu(inv, v, "heartbeat_lost");
	}
	it = 0;
	while (cdr_hmap_next(inv->vrs, &it, NULL, &v)) {
		if (live_lost(&((struct rms_vrs *)v)->live, &inv->policy, now))
			emit_vrs(inv, v, "heartbeat_lost");
	}
	return rms_inv_expire(inv, now);
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
