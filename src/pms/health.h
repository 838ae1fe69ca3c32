/* pms's pure logic: health-check verdicts (keepalived's fall/rise), the room
 * and platform state machines, and the epoch rule every receiver applies.
 * No I/O and no clock of its own: times are passed in (monotonic ms for
 * durations, wall ms for "since"). The daemon (pms.c) runs the checks,
 * writes each decision to ZooKeeper with a new epoch, and only then commits it
 * here and broadcasts it (docs/pms.md). */
#ifndef CONFDR_PMS_HEALTH_H
#define CONFDR_PMS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.h"

/* ---- one check's verdict ---- */

/* A target starts up (a restarted pms does not declare everything down), is
 * down after `fall` consecutive failures and up again after `rise`
 * consecutive successes. */
struct pms_verdict {
	int fall, rise;
	bool up;
	int fails, oks; /* consecutive, since the last verdict change */
	int64_t since_ms;
	uint64_t changes; /* number of verdict changes (flaps) */
};

void pms_verdict_init(struct pms_verdict *v, int fall, int rise, int64_t now_ms);
/* Feeds one result; returns true when the verdict changed. */
bool pms_verdict_feed(struct pms_verdict *v, bool ok, int64_t now_ms);

/* ---- states, as written to ZooKeeper and broadcast ---- */

enum pms_target { PMS_ROOM, PMS_PLATFORM };

/* A room (normal/abnormal) or a platform (up/down): bad is abnormal/down. */
struct pms_state {
	bool bad;
	bool manual;	  /* a manual DR switch is on */
	int64_t since;	  /* wall ms */
	int64_t epoch;	  /* 0: never written */
	char reason[32];  /* health_check, manual_switch, recovered, pms_lost, main_room_abnormal, initial */
	char detail[256]; /* which check failed, who switched */
	char by[65];	  /* operator of a manual switch, else "" */
};

const char *pms_state_name(enum pms_target t, bool bad);

/* Receivers (css, the pms mirrors, tests) apply a broadcast only when its
 * epoch is newer than the last one applied for that room or platform: a
 * repeated or late broadcast changes nothing. Returns true if applied. */
bool pms_epoch_newer(int64_t last_applied, int64_t incoming);

/* ---- decisions ---- */

/* A decision to be written: the new state (epoch not yet taken). */
struct pms_change {
	bool bad;
	bool manual;
	const char *reason;
	char detail[256];
	const char *by;
};

/* What a room's own pms knows of its health, beside its stored state. */
struct pms_room_health {
	bool healthy;
	int64_t healthy_since_ms; /* monotonic: when the room last became healthy */
	uint64_t failures;	  /* healthy->unhealthy edges seen */
	uint64_t acted;		  /* the failure already acted on (or forgiven by a switch) */
	char why[256];		  /* the failed check, when unhealthy */
	bool preempt;		  /* return by itself after preempt_ms healthy */
	int64_t preempt_ms;
};

void pms_room_health_init(struct pms_room_health *h, bool preempt, int64_t preempt_ms, int64_t now_ms);
/* Records the room's health now (from its checks); why when unhealthy. */
void pms_room_health_set(struct pms_room_health *h, bool healthy, const char *why, int64_t now_ms);

/* What an automatic decision would change for a room in state st, or false:
 * normal and a new failure -> abnormal (health_check); abnormal, not manual,
 * preempt and healthy for preempt_ms -> normal (recovered). A manual state is
 * never changed automatically. */
bool pms_room_decide(const struct pms_state *st, const struct pms_room_health *h, int64_t now_ms,
		     struct pms_change *out);

/* An operator's switch of a room: on = DR on (abnormal, manual), off = back
 * to normal. Refused (false, reason code and detail in err) when switching
 * back a room whose checks fail, unless force. Switching to the state the
 * room is already in (manual included) is accepted with *changed false. */
bool pms_room_switch(const struct pms_state *st, struct pms_room_health *h, bool on, bool force, const char *by,
		     const char *detail, struct pms_change *out, bool *changed, const char **reason, char *err,
		     size_t errlen);

/* What the pms of a platform's backup platform knows of it. */
struct pms_platform_watch {
	struct pms_peer peer;		   /* its pms: beats and live nodes (peer.h) */
	bool follow_main_room;		   /* down when its main room fails its checks */
	const struct pms_state *main_room; /* its main room's state, or NULL if unknown */
	int64_t main_acted_epoch;	   /* the main-room failure already acted on */
};

/* Automatic platform decisions: up and its pms judged dead (pms_peer_judge:
 * no beat for its misses, or none live for the grace) -> down (pms_lost);
 * up and its main room abnormal by a failed check (a new epoch of it) ->
 * down (main_room_abnormal). A platform comes back only by an operator
 * (fail-back is manual, design section 6). */
bool pms_platform_decide(const struct pms_state *st, struct pms_platform_watch *w, struct pms_change *out);

/* An operator's switch of a platform: on = down (manual), off = up again.
 * Switching back is refused while its pms does not beat or its main room is
 * abnormal, unless force; a forced switch-back forgives what is wrong now
 * (a silent pms's silence counts from now_ms). */
bool pms_platform_switch(const struct pms_state *st, struct pms_platform_watch *w, bool on, bool force, int64_t now_ms,
			 const char *by, const char *detail, struct pms_change *out, bool *changed, const char **reason,
			 char *err, size_t errlen);

/* Commits a written change into st with its epoch and time. */
void pms_state_commit(struct pms_state *st, const struct pms_change *c, int64_t epoch, int64_t wall_ms);

#endif
