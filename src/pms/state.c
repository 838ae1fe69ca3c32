/* pms: the ZooKeeper state. Every room's and platform's state node is
 * mirrored (a newer epoch is broadcast); the own rooms and the platforms this
 * pms backs up are decided (health.c) and every decision is written with a
 * new epoch from /state/epoch before anyone hears of it. */
#include "pms_int.h"

#define EPOCH_PATH "/state/epoch"

/* ---- state nodes ---- */

static void state_path(enum pms_target t, const char *platform, const char *id, char *out, size_t len)
{
	if (t == PMS_ROOM)
		snprintf(out, len, "/state/%s/rooms/%s", platform, id);
	else
		snprintf(out, len, "/state/%s/platform", id);
}

static char *state_text(enum pms_target t, const char *platform, const char *id, const struct pms_state *st)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:s, s:s, s:s}", t == PMS_ROOM ? "room" : "platform", id,
			      "of", platform, "state", pms_state_name(t, st->bad), "manual", st->manual, "since",
			      (json_int_t)st->since, "epoch", (json_int_t)st->epoch, "reason", st->reason, "detail",
			      st->detail, "by", st->by);
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return txt;
}

/* Reads a state node; returns 0 or -EINVAL. */
static int state_parse(enum pms_target t, const char *data, size_t len, struct pms_state *st)
{
	json_t *o = json_loadb(data, len, 0, NULL);
	const char *state;
	bool valid;

	if (!json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	state = cdr_msg_jstr(o, "state", "");
	memset(st, 0, sizeof(*st));
	st->bad = !strcmp(state, pms_state_name(t, true));
	st->manual = cdr_msg_jbool(o, "manual", false);
	st->since = cdr_msg_jint(o, "since", 0);
	st->epoch = cdr_msg_jint(o, "epoch", 0);
	snprintf(st->reason, sizeof(st->reason), "%s", cdr_msg_jstr(o, "reason", ""));
	snprintf(st->detail, sizeof(st->detail), "%s", cdr_msg_jstr(o, "detail", ""));
	snprintf(st->by, sizeof(st->by), "%s", cdr_msg_jstr(o, "by", ""));
	valid = st->bad || !strcmp(state, pms_state_name(t, false));
	json_decref(o);
	return valid ? 0 : -EINVAL;
}

/* Applies a state read from ZooKeeper (a mirror update); broadcasts it when
 * it is newer than what this pms knew. */
static bool mirror_apply(struct pms_state *cur, const struct pms_state *in)
{
	if (!pms_epoch_newer(cur->epoch, in->epoch))
		return false;
	*cur = *in;
	return true;
}

static void on_room_node(int status, const char *data, size_t len, void *arg)
{
	struct room *r = arg;
	struct pms_state st;

	if (status == -ENOENT) {
		r->loaded = true;
	} else if (status == 0) {
		if (state_parse(PMS_ROOM, data, len, &st) < 0) {
			cdr_warn("/state/%s/rooms/%s is not a room state: ignored: %.*s", r->platform, r->id,
				 (int)(len > 200 ? 200 : len), data);
		} else {
			r->loaded = true;
			if (mirror_apply(&r->st, &st)) {
				cdr_info("room %s is %s (%s), epoch %" PRId64, r->id, pms_state_name(PMS_ROOM, st.bad),
					 st.reason, st.epoch);
				pms_broadcast_room(r);
			}
		}
	}
	if (r->own)
		pms_decide_room(r);
	for (size_t i = 0; i < r->s->nplats; i++)
		if (r->s->plats[i].owned && !strcmp(r->s->plats[i].main_room, r->id))
			pms_decide_plat(&r->s->plats[i]);
}

int pms_plat_state_parse(const char *data, size_t len, struct pms_state *st)
{
	return state_parse(PMS_PLATFORM, data, len, st);
}

static void on_plat_node(int status, const char *data, size_t len, void *arg)
{
	struct plat *p = arg;
	struct pms_state st;

	if (status == -ENOENT) {
		p->loaded = true;
	} else if (status == 0) {
		if (state_parse(PMS_PLATFORM, data, len, &st) < 0) {
			cdr_warn("/state/%s/platform is not a platform state: ignored: %.*s", p->id,
				 (int)(len > 200 ? 200 : len), data);
		} else {
			p->loaded = true;
			if (mirror_apply(&p->st, &st)) {
				cdr_info("platform %s is %s (%s), epoch %" PRId64, p->id,
					 pms_state_name(PMS_PLATFORM, st.bad), st.reason, st.epoch);
				pms_broadcast_plat(p);
			}
		}
	}
	if (p->owned)
		pms_decide_plat(p);
}

/* ---- writing a decision: read the node (its version, and that nothing
 * changed since we decided), take an epoch, write with that version ---- */

struct write {
	struct pms *s;
	uint64_t gen;
	enum pms_target t;
	size_t idx;
	struct pms_change c;
	char reason[32], by[65];
	struct pms_state next;
	int64_t seen_epoch; /* the state's epoch the decision was made on */
	int32_t version;    /* -1: create */
	char path[200];
	/* a manual switch waiting for its answer */
	struct cdr_mq_delivery *dl;
	struct cdr_msg *m;
};

struct pms_state *pms_target_state(struct pms *s, enum pms_target t, size_t idx, bool **writing)
{
	if (t == PMS_ROOM) {
		*writing = &s->rooms[idx].writing;
		return &s->rooms[idx].st;
	}
	*writing = &s->plats[idx].writing;
	return &s->plats[idx].st;
}

static const char *target_id(struct pms *s, enum pms_target t, size_t idx)
{
	return t == PMS_ROOM ? s->rooms[idx].id : s->plats[idx].id;
}

static void write_end(struct write *w, int status, const char *why)
{
	struct pms *s = w->s;
	bool current = s->started && s->gen == w->gen, *writing;
	struct pms_state *st;

	if (!current) {
		if (w->dl)
			pms_answer(s, w->dl, w->m, false,
				   cdr_bus_nack_body("not_active", "this pms stepped down meanwhile"));
		goto out;
	}
	st = pms_target_state(s, w->t, w->idx, &writing);
	*writing = false;
	if (status < 0) {
		const char *id = target_id(s, w->t, w->idx);

		cdr_warn("%s %s: decision \"%s\" not written: %s", w->t == PMS_ROOM ? "room" : "platform", id,
			 w->reason, why);
		if (w->dl) {
			char detail[300];

			snprintf(detail, sizeof(detail), "%s %s: %s", w->t == PMS_ROOM ? "room" : "platform", id, why);
			pms_answer(s, w->dl, w->m, false,
				   cdr_bus_nack_body(status == -ESTALE || status == -EEXIST ? "conflict"
											    : "internal_error",
						     detail));
		}
		goto out;
	}
	/* Written: it is the state now; the watch will tell us again (same
	 * epoch: ignored). */
	*st = w->next;
	if (w->t == PMS_ROOM)
		pms_broadcast_room(&s->rooms[w->idx]);
	else
		pms_broadcast_plat(&s->plats[w->idx]);
	if (strcmp(st->reason, "initial"))
		pms_alarm(s, w->t, target_id(s, w->t, w->idx), st);
	else
		cdr_info("%s %s: initial state %s written, epoch %" PRId64, w->t == PMS_ROOM ? "room" : "platform",
			 target_id(s, w->t, w->idx), pms_state_name(w->t, st->bad), st->epoch);
	if (w->dl)
		pms_answer(s, w->dl, w->m, true,
			   json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I}", "target",
				     w->t == PMS_ROOM ? "room" : "platform", "moid", target_id(s, w->t, w->idx),
				     "state", pms_state_name(w->t, st->bad), "manual", st->manual, "changed", true,
				     "since", (json_int_t)st->since, "epoch", (json_int_t)st->epoch));
out:
	cdr_msg_free(w->m);
	free(w);
}

static void on_written(const struct cdr_zk_result *r, void *arg)
{
	struct write *w = arg;
	char why[300];

	if (r->status < 0) {
		snprintf(why, sizeof(why), "%s",
			 r->status == -ESTALE || r->status == -EEXIST ? "changed by another pms meanwhile; ask again"
								      : (r->error ? r->error : strerror(-r->status)));
		write_end(w, r->status, why);
		return;
	}
	write_end(w, 0, NULL);
}

static void take_epoch(struct write *w);

static void on_epoch_created(const struct cdr_zk_result *r, void *arg)
{
	struct write *w = arg;

	if (r->status < 0 && r->status != -EEXIST) {
		write_end(w, r->status, r->error ? r->error : strerror(-r->status));
		return;
	}
	take_epoch(w);
}

static void on_epoch(const struct cdr_zk_result *r, void *arg)
{
	struct write *w = arg;
	struct pms *s = w->s;
	char *txt;
	int rc;

	if (r->status == -ENOENT) {
		if (cdr_zk_create(cdr_daemon_zk(s->d), EPOCH_PATH, NULL, 0, CDR_ZK_PARENTS, on_epoch_created, w) < 0)
			write_end(w, -ENOMEM, "out of memory");
		return;
	}
	if (r->status < 0) {
		write_end(w, r->status, r->error ? r->error : strerror(-r->status));
		return;
	}
	if (!s->started || s->gen != w->gen) {
		write_end(w, -ECANCELED, "stepped down");
		return;
	}
	/* The counter's data version after our set: one more than any
	 * epoch handed out before, by any pms, ever. */
	pms_state_commit(&w->next, &w->c, r->version, cdr_wall_i64());
	txt = state_text(w->t, w->t == PMS_ROOM ? s->rooms[w->idx].platform : s->plats[w->idx].id,
			 target_id(s, w->t, w->idx), &w->next);
	if (!txt) {
		write_end(w, -ENOMEM, "out of memory");
		return;
	}
	if (w->version < 0)
		rc = cdr_zk_create(cdr_daemon_zk(s->d), w->path, txt, strlen(txt), CDR_ZK_PARENTS, on_written, w);
	else
		rc = cdr_zk_set(cdr_daemon_zk(s->d), w->path, txt, strlen(txt), w->version, on_written, w);
	free(txt);
	if (rc < 0)
		write_end(w, rc, strerror(-rc));
}

static void take_epoch(struct write *w)
{
	if (cdr_zk_set(cdr_daemon_zk(w->s->d), EPOCH_PATH, NULL, 0, -1, on_epoch, w) < 0)
		write_end(w, -ENOMEM, "out of memory");
}

static void on_read_before_write(const struct cdr_zk_result *r, void *arg)
{
	struct write *w = arg;
	struct pms *s = w->s;
	struct pms_state now;

	if (!s->started || s->gen != w->gen) {
		write_end(w, -ECANCELED, "stepped down");
		return;
	}
	if (r->status == -ENOENT) {
		w->version = -1;
		if (w->seen_epoch != 0) {
			write_end(w, -ESTALE, "the state node was removed meanwhile; ask again");
			return;
		}
	} else if (r->status < 0) {
		write_end(w, r->status, r->error ? r->error : strerror(-r->status));
		return;
	} else {
		if (state_parse(w->t, r->data, r->len, &now) == 0 && now.epoch != w->seen_epoch) {
			write_end(w, -ESTALE, "changed by another pms meanwhile; ask again");
			return;
		}
		w->version = r->version;
	}
	take_epoch(w);
}

/* Starts writing change c for target (t, idx); dl/m (taken) are answered at
 * the end. Returns 0, or -EBUSY when a write for it is under way. */
int pms_write_start(struct pms *s, enum pms_target t, size_t idx, const struct pms_change *c,
		    struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	bool *writing;
	struct pms_state *st = pms_target_state(s, t, idx, &writing);
	struct write *w;

	if (*writing)
		return -EBUSY;
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->s = s;
	w->gen = s->gen;
	w->t = t;
	w->idx = idx;
	w->c = *c;
	snprintf(w->reason, sizeof(w->reason), "%s", c->reason ? c->reason : "");
	snprintf(w->by, sizeof(w->by), "%s", c->by ? c->by : "");
	w->c.reason = w->reason;
	w->c.by = w->by;
	w->next = *st;
	w->seen_epoch = st->epoch;
	w->dl = dl;
	w->m = m;
	state_path(t, t == PMS_ROOM ? s->rooms[idx].platform : NULL, target_id(s, t, idx), w->path, sizeof(w->path));
	if (cdr_zk_get(cdr_daemon_zk(s->d), w->path, NULL, NULL, on_read_before_write, w) < 0) {
		free(w);
		return -ENOMEM;
	}
	*writing = true;
	return 0;
}

/* ---- decisions ---- */

void pms_decide_room(struct room *r)
{
	struct pms *s = r->s;
	struct pms_change c;
	size_t idx = (size_t)(r - s->rooms);

	if (!s->started || !r->own || !r->loaded || r->writing)
		return;
	if (r->st.epoch == 0) {
		memset(&c, 0, sizeof(c));
		c.reason = "initial";
		c.by = "";
		snprintf(c.detail, sizeof(c.detail), "first state written by pms of %s", s->platform);
		pms_write_start(s, PMS_ROOM, idx, &c, NULL, NULL);
		return;
	}
	if (pms_room_decide(&r->st, &r->h, cdr_mono_i64(), &c))
		pms_write_start(s, PMS_ROOM, idx, &c, NULL, NULL);
}

const struct pms_state *pms_room_state_of(struct pms *s, const char *room)
{
	for (size_t i = 0; i < s->nrooms; i++)
		if (!strcmp(s->rooms[i].id, room))
			return s->rooms[i].loaded ? &s->rooms[i].st : NULL;
	return NULL;
}

void pms_decide_plat(struct plat *p)
{
	struct pms *s = p->s;
	struct pms_change c;
	size_t idx = (size_t)(p - s->plats);

	if (!s->started || !p->owned || !p->loaded || p->writing)
		return;
	p->w.main_room = pms_room_state_of(s, p->main_room);
	p->w.follow_main_room = s->conf.follow_main_room;
	if (p->st.epoch == 0) {
		memset(&c, 0, sizeof(c));
		c.reason = "initial";
		c.by = "";
		snprintf(c.detail, sizeof(c.detail), "first state written by pms of %s", s->platform);
		pms_write_start(s, PMS_PLATFORM, idx, &c, NULL, NULL);
		return;
	}
	if (pms_platform_decide(&p->st, &p->w, &c))
		pms_write_start(s, PMS_PLATFORM, idx, &c, NULL, NULL);
}

/* ---- watches ---- */

void pms_state_watch(struct pms *s)
{
	struct cdr_zk *zk = cdr_daemon_zk(s->d);
	char path[200];

	for (size_t i = 0; i < s->nrooms; i++) {
		state_path(PMS_ROOM, s->rooms[i].platform, s->rooms[i].id, path, sizeof(path));
		if (cdr_zk_data_watch_new(zk, path, on_room_node, &s->rooms[i], &s->rooms[i].watch) < 0)
			cdr_err("cannot watch %s", path);
	}
	for (size_t i = 0; i < s->nplats; i++) {
		state_path(PMS_PLATFORM, NULL, s->plats[i].id, path, sizeof(path));
		if (cdr_zk_data_watch_new(zk, path, on_plat_node, &s->plats[i], &s->plats[i].watch) < 0)
			cdr_err("cannot watch %s", path);
	}
}
