/* css: the conference model. Conferences in memory, grouped by user
 * domain and by MCU; every change of state goes through the state machine of
 * confsm.c (css_conf_event); the record of a conference as JSON; what css
 * knows of rooms and platforms, and which conferences it acts for. */
#include "css_int.h"

int css_confvec_push(struct confvec *q, struct conf *c)
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

void css_confvec_remove(struct confvec *q, const struct conf *c)
{
	size_t k = 0;

	for (size_t i = 0; i < q->n; i++)
		if (q->v[i] != c)
			q->v[k++] = q->v[i];
	q->n = k;
}

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
void css_index_mcu(struct css *s, struct conf *c)
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

/* A string many conferences share (a user domain, a platform, a room, an
 * MCU or its key: a few hundred values where there are hundreds of thousands
 * of conferences): one copy, and how many hold it. */
struct shared_str {
	size_t refs;
	char s[];
};

void css_str_set(struct css *s, const char **dst, const char *v)
{
	struct shared_str *x = NULL, *old;
	size_t len;

	if (v && !(x = cdr_hmap_get(s->strs, v))) {
		len = strlen(v);
		if ((x = malloc(sizeof(*x) + len + 1))) {
			x->refs = 0;
			memcpy(x->s, v, len + 1);
			if (cdr_hmap_put(s->strs, x->s, x) < 0) {
				free(x);
				x = NULL;
			}
		}
	}
	if (x)
		x->refs++; /* before the old value goes: v may be that value */
	if (*dst && (old = cdr_hmap_get(s->strs, *dst)) && old->s == *dst && --old->refs == 0) {
		cdr_hmap_del(s->strs, old->s);
		free(old);
	}
	*dst = x ? x->s : NULL;
}

struct conf *css_conf_new(struct css *s, const char *e164, const char *ud)
{
	struct conf *c = calloc(1, sizeof(*c));
	struct group *g;

	if (!c)
		return NULL;
	snprintf(c->e164, sizeof(c->e164), "%s", e164);
	c->serial = ++s->conf_serial;
	css_str_set(s, &c->ud, ud);
	c->changed_mono = cdr_now_ms();
	if (!c->ud || !(g = group_get(s->uds, ud, true)) || cdr_hmap_put(s->confs, c->e164, c) < 0) {
		css_str_set(s, &c->ud, NULL);
		free(c);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&g->confs, c, ud_link);
	g->n++;
	c->by_ud = g;
	return c;
}

void css_conf_free(struct css *s, struct conf *c)
{
	if (!c)
		return;
	if (c->op && c->op->c == c)
		c->op->c = NULL; /* an op waiting (for the replica, say) outlives it */
	/* no queue keeps a pointer to it: a history row built from freed
	 * memory failed (garbage in e164) and, retried for ever, held every
	 * later row back (fault suite, zk-down); batches in flight find their
	 * conferences again by E164 and serial */
	if (c->db_queued)
		css_confvec_remove(&s->dbq, c);
	if (c->restore_queued)
		css_confvec_remove(&s->restore_q, c);
	if (c->store_queued)
		css_confvec_remove(&s->storeq, c);
	if (cdr_hmap_get(s->confs, c->e164) == c)
		cdr_hmap_del(s->confs, c->e164);
	group_leave_ud(s, c);
	group_leave_mcu(s, c);
	free(c->name);
	css_str_set(s, &c->ud, NULL);
	css_str_set(s, &c->home, NULL);
	css_str_set(s, &c->host, NULL);
	css_str_set(s, &c->room, NULL);
	css_str_set(s, &c->mcu, NULL);
	css_str_set(s, &c->mcu_key, NULL);
	free(c->vrs);
	free(c->reservation);
	free(c->req);
	free(c->password);
	free(c->end_reason);
	free(c->create);
	free(c->lost_mcu);
	free(c->extend_req);
	free(c->moved_mcu);
	free(c->moved_key);
	free(c->moved_host);
	free(c);
}

/* The one place a conference changes state. Returns 0, or -1 (logged) when
 * the event is not allowed in its state. */
bool css_conf_can(const struct conf *c, enum css_event ev)
{
	return css_sm_next(c->state, ev) >= 0;
}

int css_conf_event(struct css *s, struct conf *c, enum css_event ev)
{
	int next = css_sm_next(c->state, ev);

	if (next < 0) {
		s->n.sm_refused++;
		cdr_err("conference %s: the state machine refuses %s in state %s (a bug; the conference stays %s)",
			c->e164, css_event_name(ev), css_state_name(c->state), css_state_name(c->state));
		return -1;
	}
	if ((enum css_state)next != c->state)
		cdr_debug("conference %s: %s -> %s (%s)", c->e164, css_state_name(c->state),
			  css_state_name((enum css_state)next), css_event_name(ev));
	c->state = (enum css_state)next;
	c->changed_mono = cdr_now_ms();
	return 0;
}

json_t *css_conf_json(const struct conf *c)
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

json_t *css_conf_create(const struct conf *c)
{
	return c->create ? json_loads(c->create, 0, NULL) : NULL;
}

int css_conf_set_create(struct conf *c, json_t *body)
{
	char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (!txt)
		return -ENOMEM;
	free(c->create);
	c->create = txt;
	return 0;
}

/* Sets n fields of c's create body (the values' references are taken). */
static void create_put(struct conf *c, size_t n, const char *const *keys, json_t **values)
{
	json_t *body = css_conf_create(c);

	for (size_t i = 0; i < n; i++)
		json_object_set_new(body, keys[i], values[i]);
	if (body && css_conf_set_create(c, body) < 0)
		cdr_err("conference %s: its create body not changed: out of memory", c->e164);
}

void css_conf_create_placed(struct conf *c)
{
	static const char *const keys[] = { "mcu", "vrs" };
	json_t *values[] = { json_string(c->mcu), c->vrs ? json_string(c->vrs) : json_null() };

	create_put(c, 2, keys, values);
}

void css_conf_create_renamed(struct conf *c)
{
	static const char *const keys[] = { "name" };
	json_t *values[] = { json_string(c->name) };

	create_put(c, 1, keys, values);
}

void css_conf_found(struct conf *c)
{
	c->restore_tries = 0;
	c->lost_by_room = false;
	set_str(&c->lost_mcu, NULL);
	set_str(&c->moved_mcu, NULL);
	set_str(&c->moved_key, NULL);
	set_str(&c->moved_host, NULL);
}

bool css_pms_down(const struct css *s, const char *p)
{
	for (size_t i = 0; i < s->nplats; i++)
		if (!strcmp(s->plats[i].id, p))
			return s->plats[i].down;
	return false;
}

bool css_plat_down(const char *p, void *arg)
{
	struct css *s = arg;

	return css_pms_down(s, p) || ((s->home_wait || s->released) && !strcmp(p, s->platform));
}

bool css_room_abnormal(const char *id, void *arg)
{
	struct css *s = arg;

	for (size_t i = 0; i < s->nrooms; i++)
		if (!strcmp(s->rooms[i].id, id))
			return s->rooms[i].abnormal;
	return false;
}
