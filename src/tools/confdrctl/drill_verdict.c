/* The DR drills' verdict and the Redis/MySQL comparison: pure rules on
 * snapshots (drill_verdict.h). */
#include "drill_verdict.h"

#include <confdr/hmap.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXAMPLES 5

/* ---- snapshots ---- */

int drill_set_add(struct drill_set *s, const char *e164, const char *mcu, const char *room, const char *platform,
		  const char *home, int64_t started_ms)
{
	struct drill_conf c = { .started_ms = started_ms };

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct drill_conf *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	c.e164 = strdup(e164);
	c.mcu = strdup(mcu);
	c.room = strdup(room);
	c.platform = strdup(platform);
	c.home = strdup(home);
	if (!c.e164 || !c.mcu || !c.room || !c.platform || !c.home) {
		free(c.e164);
		free(c.mcu);
		free(c.room);
		free(c.platform);
		free(c.home);
		return -ENOMEM;
	}
	s->v[s->n++] = c;
	return 0;
}

void drill_set_clear(struct drill_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].e164);
		free(s->v[i].mcu);
		free(s->v[i].room);
		free(s->v[i].platform);
		free(s->v[i].home);
	}
	free(s->v);
	*s = (struct drill_set){ 0 };
}

json_t *drill_set_to_json(const struct drill_set *s)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < s->n; i++) {
		const struct drill_conf *c = &s->v[i];
		json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s}", "e", c->e164, "m", c->mcu, "s",
				      c->started_ms >= 0 ? json_integer(c->started_ms) : json_null(), "r", c->room, "p",
				      c->platform, "h", c->home);

		if (!o || json_array_append_new(a, o) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int drill_set_from_json(json_t *a, struct drill_set *s, char *err, size_t errlen)
{
	size_t i;
	json_t *o;

	if (!json_is_array(a)) {
		snprintf(err, errlen, "not a JSON array");
		return -EINVAL;
	}
	json_array_foreach(a, i, o)
	{
		const char *e = NULL, *m = NULL, *r = NULL, *p = NULL, *h = NULL;
		json_t *st = NULL;
		int ret;

		if (json_unpack(o, "{s:s, s:s, s?o, s:s, s:s, s:s}", "e", &e, "m", &m, "s", &st, "r", &r, "p", &p, "h",
				&h) < 0 ||
		    (st && !json_is_null(st) && !json_is_integer(st))) {
			snprintf(err, errlen, "element %zu is not {e, m, s, r, p, h}", i);
			drill_set_clear(s);
			return -EINVAL;
		}
		ret = drill_set_add(s, e, m, r, p, h, json_is_integer(st) ? json_integer_value(st) : -1);
		if (ret < 0) {
			drill_set_clear(s);
			return ret;
		}
	}
	return 0;
}

/* s's E164s, each once. */
static int index_e164(const struct drill_set *s, struct cdr_hmap **ret)
{
	struct cdr_hmap *m = cdr_hmap_new();

	for (size_t i = 0; m && i < s->n; i++)
		if (!cdr_hmap_get(m, s->v[i].e164) && cdr_hmap_put(m, s->v[i].e164, &s->v[i]) < 0)
			m = cdr_hmap_free(m);
	if (!m)
		return -ENOMEM;
	*ret = m;
	return 0;
}

int drill_set_has_all(const struct drill_set *s, json_t *a, size_t *missing)
{
	struct cdr_hmap *m;
	size_t i, miss = 0;
	json_t *e;
	int ret;

	if (!json_is_array(a))
		return -EINVAL;
	json_array_foreach(a, i, e) if (!json_is_string(e)) return -EINVAL;
	if ((ret = index_e164(s, &m)) < 0)
		return ret;
	json_array_foreach(a, i, e) miss += !cdr_hmap_get(m, json_string_value(e));
	cdr_hmap_free(m);
	*missing = miss;
	return 0;
}

/* ---- the verdict ---- */

/* The conferences of now that share an E164: a run of order[]. */
struct group {
	size_t start, count;
};

struct entry {
	const char *e164;
	size_t i;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->e164, y->e164);

	return c ? c : (x->i > y->i) - (x->i < y->i);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int i64_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Appends s to the array a while it has fewer than EXAMPLES. */
static void example(json_t *a, const char *s)
{
	if (json_array_size(a) < EXAMPLES)
		json_array_append_new(a, json_string(s));
}

/* {room: count} of the rooms restored to, in room order. */
static json_t *count_rooms(const char **rooms, size_t n)
{
	json_t *o = json_object();

	qsort(rooms, n, sizeof(*rooms), str_cmp);
	for (size_t i = 0, j; o && i < n; i = j) {
		for (j = i; j < n && strcmp(rooms[j], rooms[i]) == 0; j++)
			;
		json_object_set_new(o, rooms[i], json_integer((json_int_t)(j - i)));
	}
	return o;
}

/* The duplicates of now: in the order their E164 first appears, with the
 * MCUs in the order read. */
static json_t *duplicates(const struct drill_set *now, const struct entry *order, const struct group *groups,
			  size_t ngroups, const size_t *group_of, size_t *count)
{
	json_t *ex = json_array();

	*count = 0;
	for (size_t g = 0; g < ngroups; g++)
		*count += groups[g].count > 1;
	for (size_t i = 0; ex && i < now->n && json_array_size(ex) < EXAMPLES; i++) {
		const struct group *g = &groups[group_of[i]];
		json_t *mcus;

		if (g->count < 2 || order[g->start].i != i)
			continue;
		mcus = json_array();
		for (size_t k = 0; k < g->count; k++)
			json_array_append_new(mcus, json_string(now->v[order[g->start + k].i].mcu));
		json_array_append_new(ex, json_pack("{s:s, s:o}", "e164", now->v[i].e164, "mcus", mcus));
	}
	return ex;
}

int drill_verdict(const struct drill_set *before, const struct drill_set *now, const struct cdr_hmap *closed,
		  const char *room, drill_room_ok_fn room_ok, void *arg, struct drill_verdict *v)
{
	struct entry *order = calloc(now->n + 1, sizeof(*order));
	struct group *groups = calloc(now->n + 1, sizeof(*groups));
	size_t *group_of = calloc(now->n + 1, sizeof(*group_of)), ngroups = 0, nto = 0, nstarted = 0;
	const char **to = calloc(before->n + 1, sizeof(*to));
	int64_t *started = calloc(before->n + 1, sizeof(*started));
	struct cdr_hmap *by_e164 = cdr_hmap_new();
	json_t *ex_lost = json_array(), *ex_closed = json_array(), *ex_stuck = json_array(), *ex_dups, *rs;
	char key[256];
	int ret = -ENOMEM;

	*v = (struct drill_verdict){ .running_before = before->n };
	if (!order || !groups || !group_of || !to || !started || !by_e164 || !ex_lost || !ex_closed || !ex_stuck)
		goto out;
	for (size_t i = 0; i < now->n; i++)
		order[i] = (struct entry){ now->v[i].e164, i };
	qsort(order, now->n, sizeof(*order), entry_cmp);
	for (size_t i = 0; i < now->n; i++) {
		if (i == 0 || strcmp(order[i].e164, order[i - 1].e164) != 0) {
			groups[ngroups] = (struct group){ i, 0 };
			if (cdr_hmap_put(by_e164, order[i].e164, &groups[ngroups]) < 0)
				goto out;
			ngroups++;
		}
		groups[ngroups - 1].count++;
		group_of[order[i].i] = ngroups - 1;
	}
	v->running_after = ngroups;

	for (size_t i = 0; i < before->n; i++) {
		const struct drill_conf *c = &before->v[i];
		const struct group *g = cdr_hmap_get(by_e164, c->e164);
		const struct drill_conf *on = g && g->count == 1 ? &now->v[order[g->start].i] : NULL;
		size_t n = g ? g->count : 0;
		bool is_closed, stuck = false;

		snprintf(key, sizeof(key), "%s:%s", c->home, c->e164);
		is_closed = closed && cdr_hmap_get(closed, key);
		for (size_t k = 0; room && c->room && strcmp(c->room, room) == 0 && k < n; k++)
			stuck |= strcmp(now->v[order[g->start + k].i].room, room) == 0;
		v->running_once += n == 1;
		if (on && strcmp(on->mcu, c->mcu) != 0) {
			v->restored++;
			to[nto++] = on->room;
			if (on->started_ms >= 0)
				started[nstarted++] = on->started_ms;
			v->misplaced += room_ok && !room_ok(on->room, arg);
		}
		if (n == 0 && is_closed)
			v->ended_on_purpose++;
		if (n == 0 && !is_closed) {
			v->lost++;
			example(ex_lost, c->e164);
		}
		if (n >= 1 && is_closed) {
			v->running_but_closed++;
			example(ex_closed, c->e164);
		}
		if (stuck) {
			v->stuck_in_room++;
			example(ex_stuck, c->e164);
		}
	}
	ex_dups = duplicates(now, order, groups, ngroups, group_of, &v->duplicates);
	qsort(started, nstarted, sizeof(*started), i64_cmp);
	rs = json_array();
	for (size_t i = 0; rs && i < nstarted; i++)
		json_array_append_new(rs, json_integer(started[i]));
	v->json = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o*, s:{s:O, s:o*, s:O, s:O}, s:o*}",
			    "running_before", (json_int_t)v->running_before, "running_after",
			    (json_int_t)v->running_after, "running_once", (json_int_t)v->running_once, "restored",
			    (json_int_t)v->restored, "ended_on_purpose", (json_int_t)v->ended_on_purpose, "lost",
			    (json_int_t)v->lost, "running_but_closed", (json_int_t)v->running_but_closed, "duplicates",
			    (json_int_t)v->duplicates, "stuck_in_room", (json_int_t)v->stuck_in_room, "misplaced",
			    (json_int_t)v->misplaced, "restored_to", count_rooms(to, nto), "examples", "lost", ex_lost,
			    "duplicates", ex_dups, "running_but_closed", ex_closed, "stuck_in_room", ex_stuck,
			    "restored_started", rs);
	/* json_pack's "o*" took ex_dups, rs and the rooms even on failure */
	ret = v->json && json_object_size(v->json) == 13 ? 0 : -ENOMEM;
out:
	json_decref(ex_lost);
	json_decref(ex_closed);
	json_decref(ex_stuck);
	cdr_hmap_free(by_e164);
	free(order);
	free(groups);
	free(group_of);
	free(to);
	free(started);
	if (ret < 0)
		drill_verdict_clear(v);
	return ret;
}

void drill_verdict_clear(struct drill_verdict *v)
{
	json_decref(v->json);
	v->json = NULL;
}

bool drill_verdict_calm(const struct drill_verdict *v)
{
	return v->lost == 0 && v->duplicates == 0 && v->running_but_closed == 0 && v->stuck_in_room == 0;
}

void drill_verdict_line(const struct drill_verdict *v, char *out, size_t len)
{
	int n = snprintf(
		out, len, "running once %zu/%zu, missing %zu, closed %zu, duplicates %zu, running but closed %zu",
		v->running_once, v->running_before, v->lost, v->ended_on_purpose, v->duplicates, v->running_but_closed);

	if (v->stuck_in_room > 0 && n >= 0 && (size_t)n < len)
		snprintf(out + n, len - (size_t)n, ", still in the room %zu", v->stuck_in_room);
}

/* ---- Redis against MySQL ---- */

/* m's keys, sorted; NULL on no memory. */
static const char **sorted_keys(const struct cdr_hmap *m)
{
	const char **k = calloc(cdr_hmap_count(m) + 1, sizeof(*k)), *key;
	size_t it = 0, n = 0;
	void *val;

	if (!k)
		return NULL;
	while (cdr_hmap_next(m, &it, &key, &val))
		k[n++] = key;
	qsort(k, n, sizeof(*k), str_cmp);
	return k;
}

json_t *drill_compare(const char *platform, const char *redis_name, const struct cdr_hmap *redis,
		      const struct cdr_hmap *mysql)
{
	const char **rk = sorted_keys(redis), **mk = sorted_keys(mysql);
	size_t nr = cdr_hmap_count(redis), nm = cdr_hmap_count(mysql), only_r = 0, only_m = 0, diff = 0;
	json_t *ex = json_array(), *o = NULL;
	char line[512];

	if (!rk || !mk || !ex)
		goto out;
	/* Examples in the order of the lists: only in Redis, only in MySQL, MCU differs. */
	for (size_t i = 0; i < nr; i++)
		if (!cdr_hmap_get(mysql, rk[i])) {
			only_r++;
			snprintf(line, sizeof(line), "only in Redis: %s", rk[i]);
			example(ex, line);
		}
	for (size_t i = 0; i < nm; i++)
		if (!cdr_hmap_get(redis, mk[i])) {
			only_m++;
			snprintf(line, sizeof(line), "only in MySQL: %s", mk[i]);
			example(ex, line);
		}
	for (size_t i = 0; i < nr; i++) {
		const char *r = cdr_hmap_get(redis, rk[i]), *m = cdr_hmap_get(mysql, rk[i]);

		if (!m || strcmp(r, m) == 0)
			continue;
		diff++;
		snprintf(line, sizeof(line), "MCU differs: %s Redis %s, MySQL %s", rk[i], r, m);
		example(ex, line);
	}
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:O}", "platform", platform, "redis", redis_name,
		      "redis_open", (json_int_t)nr, "mysql_open", (json_int_t)nm, "only_in_redis", (json_int_t)only_r,
		      "only_in_mysql", (json_int_t)only_m, "different_mcu", (json_int_t)diff, "mismatches",
		      (json_int_t)(only_r + only_m + diff), "examples", ex);
out:
	json_decref(ex);
	free(rk);
	free(mk);
	return o;
}
