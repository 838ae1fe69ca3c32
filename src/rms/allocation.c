/* rms's allocation policy and reservations (inventory.h; docs/rms.md): the
 * load of an MCU or a VRS, the pick of an MCU (and a VRS for a record) in
 * the wanted room and its backup rooms, reservations until confirmed,
 * released or expired, and what a user domain's room offers. */
#include "inventory_int.h"

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

/* ---- load ---- */

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
		if (!r->mcus[i]->backup && r->mcus[i]->live.state == RMS_UP && !r->mcus[i]->drain &&
		    !r->mcus[i]->unheard)
			primaries = true;
	for (i = 0; i < r->nmcus; i++) {
		struct rms_mcu *m = r->mcus[i];

		if (!m->backup && !primaries) { /* a primary, none usable: down, drained or not heard again */
			why->down++;
			continue;
		}
		if (m->backup == primaries) /* backups only when no primary is usable */
			continue;
		if (m->live.state != RMS_UP || m->drain || m->unheard || excluded(w, m->id)) {
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
			if (why.none || why.down)
				res->unsure = true;
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

/* ---- reservations ---- */

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

size_t rms_inv_expire(struct rms_inv *inv, int64_t now)
{
	struct alloc *a, *next;
	size_t expired = 0;

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

void rms_inv_clear_allocs(struct rms_inv *inv)
{
	size_t it = 0;
	void *v;

	while (cdr_hmap_next(inv->allocs, &it, NULL, &v)) {
		cdr_hmap_del_at(inv->allocs, &it);
		free(v);
	}
	TAILQ_INIT(&inv->reserved);
	inv->nreserved = 0;
}

size_t rms_inv_nreservations(const struct rms_inv *inv)
{
	return inv->nreserved;
}

size_t rms_inv_nallocations(const struct rms_inv *inv)
{
	return cdr_hmap_count(inv->allocs) - inv->nreserved;
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
