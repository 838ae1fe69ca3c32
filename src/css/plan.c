/* The disaster-recovery rules of css (plan.h). */
#include "plan.h"

#include <confdr/topology.h>

#include <string.h>

static void exclude_add(struct css_place *out, const char *room)
{
	for (size_t i = 0; i < out->nexclude; i++)
		if (!strcmp(out->exclude[i], room))
			return;
	if (out->nexclude < CSS_PLAN_MAX_EXCLUDE)
		out->exclude[out->nexclude++] = room;
}

static bool usable(const struct cdr_room *r, const char *self, css_state_fn room_abnormal, css_state_fn platform_down,
		   void *arg)
{
	return r && !strcmp(r->platform, self) && !(room_abnormal && room_abnormal(r->id, arg)) &&
	       !(platform_down && platform_down(r->platform, arg));
}

int css_place(const struct cdr_topology *t, const char *room, const char *self, css_state_fn room_abnormal,
	      css_state_fn platform_down, void *arg, struct css_place *out)
{
	const struct cdr_room *r = t && room ? cdr_topology_room(t, room) : NULL;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; t && i < cdr_topology_nrooms(t); i++) {
		const struct cdr_room *x = cdr_topology_room_at(t, i);

		if ((room_abnormal && room_abnormal(x->id, arg)) || (platform_down && platform_down(x->platform, arg)))
			exclude_add(out, x->id);
	}
	if (!r)
		return -1;
	for (size_t i = 0; i <= r->nbackup_rooms; i++) {
		const struct cdr_room *x = i == 0 ? r : cdr_topology_room(t, r->backup_rooms[i - 1]);

		if (usable(x, self, room_abnormal, platform_down, arg)) {
			out->room = x->id;
			return 0;
		}
	}
	return -1;
}

enum css_listed css_listed_rule(const struct css_listed_in *in)
{
	if (!in->known || (in->closing && in->state == CSS_ENDED))
		return CSS_LISTED_ORPHAN;
	if (in->busy || in->age_ms < in->grace_ms)
		return CSS_LISTED_WAIT;
	if (!in->here)
		return CSS_LISTED_ORPHAN; /* it runs elsewhere now (restored, moved): not here too */
	switch (in->state) {
	case CSS_RUNNING: return CSS_LISTED_KEEP;
	case CSS_PENDING_RESTORE:
		/* Its room came back before it was restored: taken back as it is.
		 * While the room is abnormal it stays queued; once restored
		 * elsewhere this MCU's copy is ended (moved, or an orphan). */
		return in->lost_by_room && !in->room_abnormal ? CSS_LISTED_ADOPT : CSS_LISTED_WAIT;
	case CSS_CREATING:
	case CSS_RESTORING:
	case CSS_ENDING: return CSS_LISTED_WAIT;
	case CSS_ENDED: return CSS_LISTED_ORPHAN;
	default: return CSS_LISTED_WAIT;
	}
}

bool css_missing_rule(enum css_state state, bool busy, uint64_t age_ms, uint64_t grace_ms)
{
	return state == CSS_RUNNING && !busy && age_ms >= grace_ms;
}

bool css_notice_applies(int64_t have, int64_t got)
{
	return have <= 0 || got > have;
}

const char *css_listed_name(enum css_listed v)
{
	switch (v) {
	case CSS_LISTED_KEEP: return "keep";
	case CSS_LISTED_WAIT: return "wait";
	case CSS_LISTED_ORPHAN: return "orphan";
	case CSS_LISTED_ADOPT: return "adopt";
	}
	return "?";
}

bool css_restore_retry(int tries, int64_t attempts, uint64_t now_ms, uint64_t retry_ms, uint64_t *after)
{
	if (tries >= attempts)
		return false;
	*after = now_ms + retry_ms;
	return true;
}

bool css_expires(enum css_state state, bool busy, bool closing, int64_t planned_end_ms, int64_t now_ms)
{
	return !busy && !closing && planned_end_ms <= now_ms && (state == CSS_RUNNING || state == CSS_PENDING_RESTORE);
}

enum css_takeover_step css_takeover_step(const struct css_takeover_in *in)
{
	bool want = in->peer_down && !in->own_down && in->consuming;

	if (!want)
		return in->serving ? CSS_TAKEOVER_HAND_BACK : CSS_TAKEOVER_NONE;
	if (in->serving)
		return CSS_TAKEOVER_NONE;
	if (in->promoting || !in->replica_up)
		return CSS_TAKEOVER_WAIT;
	return CSS_TAKEOVER_PROMOTE;
}

enum css_audit css_audit_rule(const struct css_audit_in *in)
{
	uint64_t since;

	if (strcmp(in->mcu_platform, in->inventory_of))
		return CSS_AUDIT_SKIP;
	if (in->up || !in->running)
		return CSS_AUDIT_PRESENT;
	since = in->absent_since ? in->absent_since : in->now_ms;
	return in->now_ms - since >= in->grace_ms ? CSS_AUDIT_LOST : CSS_AUDIT_ABSENT;
}

enum css_home css_home_step(const struct css_home_in *in)
{
	if (in->own_down)
		return CSS_HOME_DOWN;
	if (in->endpoint_read && !in->failback_mark && in->redis_master)
		return CSS_HOME_READY;
	if (!in->alarmed && in->now_ms - in->since_ms >= in->alarm_ms)
		return CSS_HOME_ALARM;
	return CSS_HOME_WAIT;
}

const char *css_home_name(enum css_home v)
{
	switch (v) {
	case CSS_HOME_DOWN: return "down";
	case CSS_HOME_WAIT: return "wait";
	case CSS_HOME_ALARM: return "alarm";
	case CSS_HOME_READY: return "ready";
	}
	return "?";
}

enum css_list_order css_list_order(const char *have_boot, int64_t have_seq, const char *boot, int64_t seq)
{
	if (have_seq < 0)
		return CSS_LIST_NEW;
	if (*boot && strcmp(boot, have_boot))
		return CSS_LIST_RESTART; /* a new boot (or the first it tells: it restarted to tell one) */
	if (seq > have_seq)
		return CSS_LIST_NEW;
	if (seq < have_seq && !*boot)
		return CSS_LIST_RESTART; /* numbered from 1 again: the only reading without a boot */
	return CSS_LIST_STALE;
}

bool css_mcu_runs_it(bool ack, const char *reason)
{
	return ack || (reason && !strcmp(reason, "exists"));
}

bool css_sender_platform(const char *id, char *buf, size_t len)
{
	const char *seq = strrchr(id, '-'), *ep;
	size_t n;

	if (strncmp(id, "css-", 4) || !seq || seq <= id + 4)
		return false;
	for (ep = seq - 1; ep > id + 4 && *ep != '-'; ep--)
		;
	if (ep <= id + 4 || strspn(seq + 1, "0123456789") != strlen(seq + 1) || !seq[1] ||
	    strspn(ep + 1, "0123456789") != (size_t)(seq - ep - 1) || seq == ep + 1)
		return false;
	n = (size_t)(ep - (id + 4));
	if (n == 0 || n >= len)
		return false;
	memcpy(buf, id + 4, n);
	buf[n] = '\0';
	return true;
}
