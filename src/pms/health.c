/* pms's pure logic: verdicts, room and platform decisions, epochs. */
#include "health.h"

#include <stdio.h>
#include <string.h>

void pms_verdict_init(struct pms_verdict *v, int fall, int rise, int64_t now_ms)
{
	memset(v, 0, sizeof(*v));
	v->fall = fall < 1 ? 1 : fall;
	v->rise = rise < 1 ? 1 : rise;
	v->up = true;
	v->since_ms = now_ms;
}

bool pms_verdict_feed(struct pms_verdict *v, bool ok, int64_t now_ms)
{
	if (ok) {
		v->fails = 0;
		if (v->up)
			return false;
		if (++v->oks < v->rise)
			return false;
	} else {
		v->oks = 0;
		if (!v->up)
			return false;
		if (++v->fails < v->fall)
			return false;
	}
	v->up = ok;
	v->fails = v->oks = 0;
	v->since_ms = now_ms;
	v->changes++;
	return true;
}

const char *pms_state_name(enum pms_target t, bool bad)
{
	if (t == PMS_ROOM)
		return bad ? "abnormal" : "normal";
	return bad ? "down" : "up";
}

bool pms_epoch_newer(int64_t last_applied, int64_t incoming)
{
	return incoming > last_applied;
}

void pms_room_health_init(struct pms_room_health *h, bool preempt, int64_t preempt_ms, int64_t now_ms)
{
	memset(h, 0, sizeof(*h));
	h->healthy = true;
	h->healthy_since_ms = now_ms;
	h->preempt = preempt;
	h->preempt_ms = preempt_ms;
}

void pms_room_health_set(struct pms_room_health *h, bool healthy, const char *why, int64_t now_ms)
{
	if (healthy && !h->healthy) {
		h->healthy_since_ms = now_ms;
		h->why[0] = '\0';
	} else if (!healthy && h->healthy) {
		h->failures++;
	}
	if (!healthy)
		snprintf(h->why, sizeof(h->why), "%s", why ? why : "a check failed");
	h->healthy = healthy;
}

static void change(struct pms_change *out, bool bad, bool manual, const char *reason, const char *by,
		   const char *detail)
{
	memset(out, 0, sizeof(*out));
	out->bad = bad;
	out->manual = manual;
	out->reason = reason;
	out->by = by ? by : "";
	snprintf(out->detail, sizeof(out->detail), "%s", detail ? detail : "");
}

bool pms_room_decide(const struct pms_state *st, const struct pms_room_health *h, int64_t now_ms,
		     struct pms_change *out)
{
	if (!st->bad) {
		if (h->healthy || h->failures <= h->acted)
			return false;
		change(out, true, false, "health_check", "", h->why);
		return true;
	}
	if (st->manual || !h->preempt || !h->healthy || now_ms - h->healthy_since_ms < h->preempt_ms)
		return false;
	change(out, false, false, "recovered", "", "");
	snprintf(out->detail, sizeof(out->detail), "checks passed for %lld ms (preempt)",
		 (long long)(now_ms - h->healthy_since_ms));
	return true;
}

bool pms_room_switch(const struct pms_state *st, struct pms_room_health *h, bool on, bool force, const char *by,
		     const char *detail, struct pms_change *out, bool *changed, const char **reason, char *err,
		     size_t errlen)
{
	*changed = false;
	if (on) {
		if (st->bad && st->manual)
			return true;
		change(out, true, true, "manual_switch", by, detail);
		*changed = true;
		return true;
	}
	if (!h->healthy && !force) {
		*reason = "room_unhealthy";
		snprintf(err, errlen, "its checks fail (%s); switch back with --force to override", h->why);
		return false;
	}
	/* The failure now is forgiven: it needs a new one to switch again. */
	h->acted = h->failures;
	if (!st->bad)
		return true;
	change(out, false, false, "manual_switch", by, detail);
	*changed = true;
	return true;
}

bool pms_platform_decide(const struct pms_state *st, struct pms_platform_watch *w, struct pms_change *out)
{
	char why[256];

	if (st->bad)
		return false;
	if (pms_peer_judge(&w->peer, why, sizeof(why)) == PMS_PEER_DEAD) {
		change(out, true, false, "pms_lost", "", why);
		return true;
	}
	if (w->follow_main_room && w->main_room && w->main_room->bad && !w->main_room->manual &&
	    w->main_room->epoch > w->main_acted_epoch) {
		w->main_acted_epoch = w->main_room->epoch;
		change(out, true, false, "main_room_abnormal", "", "");
		snprintf(out->detail, sizeof(out->detail), "its main room is abnormal: %.200s", w->main_room->detail);
		return true;
	}
	return false;
}

bool pms_platform_switch(const struct pms_state *st, struct pms_platform_watch *w, bool on, bool force, int64_t now_ms,
			 const char *by, const char *detail, struct pms_change *out, bool *changed, const char **reason,
			 char *err, size_t errlen)
{
	*changed = false;
	if (on) {
		if (st->bad && st->manual)
			return true;
		change(out, true, true, "manual_switch", by, detail);
		*changed = true;
		return true;
	}
	if (!force && !pms_peer_alive(&w->peer)) {
		*reason = "platform_unhealthy";
		snprintf(err, errlen, "no pms of the platform beats; switch back with --force to override");
		return false;
	}
	if (!force && w->main_room && w->main_room->bad && !w->main_room->manual) {
		*reason = "platform_unhealthy";
		snprintf(err, errlen, "its main room is abnormal (%s); switch back with --force to override",
			 w->main_room->detail);
		return false;
	}
	/* Forgiven: a silent pms needs a new silence, a failed main room a new failure. */
	if (!pms_peer_alive(&w->peer))
		pms_peer_forgive(&w->peer, now_ms);
	if (w->main_room && w->main_room->epoch > w->main_acted_epoch)
		w->main_acted_epoch = w->main_room->epoch;
	if (!st->bad)
		return true;
	change(out, false, false, "manual_switch", by, detail);
	*changed = true;
	return true;
}

void pms_state_commit(struct pms_state *st, const struct pms_change *c, int64_t epoch, int64_t wall_ms)
{
	if (st->bad != c->bad)
		st->since = wall_ms;
	else if (!st->since)
		st->since = wall_ms;
	st->bad = c->bad;
	st->manual = c->manual;
	st->epoch = epoch;
	snprintf(st->reason, sizeof(st->reason), "%s", c->reason ? c->reason : "");
	snprintf(st->detail, sizeof(st->detail), "%s", c->detail);
	snprintf(st->by, sizeof(st->by), "%s", c->by ? c->by : "");
}
