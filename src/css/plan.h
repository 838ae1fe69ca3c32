/* The disaster-recovery rules of css, as pure functions over the topology
 * and what css knows (unit-tested by tests/unit/test_css_plan.c):
 *   - placement: which room rms is asked for when a conference is created or
 *     restored, and which rooms it must not use (the restore planner);
 *   - reconciliation: what an MCU's conference list means for one conference;
 *   - broadcasts: whether a room or platform notice is newer than what css
 *     has (late, repeated and out-of-order notices change nothing).
 * docs/dr.md tells the rules in prose. */
#ifndef CSS_PLAN_H
#define CSS_PLAN_H

#include "confsm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdr_topology;

#define CSS_PLAN_MAX_EXCLUDE 64

/* Whether room (or platform) id is abnormal (down); arg passed through. */
typedef bool (*css_state_fn)(const char *id, void *arg);

struct css_place {
	const char *room; /* the room rms is asked for; NULL: no usable room */
	/* every abnormal room of the topology, and every room of a platform
	 * that is down: rms skips them in its walk of backup rooms */
	const char *exclude[CSS_PLAN_MAX_EXCLUDE];
	size_t nexclude;
};

/* Where the css of platform self places a conference that belongs in room
 * (its domain's room at a create; the room it ran in at a restore): room,
 * then its backup rooms in order; the first that is of platform self (a css
 * drives only its own platform's MCUs) and neither abnormal nor of a
 * platform that is down. Returns 0, or -1 when no room is usable (out->room
 * NULL) or room is not in the topology. */
int css_place(const struct cdr_topology *t, const char *room, const char *self, css_state_fn room_abnormal,
	      css_state_fn platform_down, void *arg, struct css_place *out);

/* What one E164 in an MCU's conference list means. */
enum css_listed {
	CSS_LISTED_KEEP,   /* where css places it: nothing to do */
	CSS_LISTED_WAIT,   /* changed within the grace, or an operation in flight: the next list tells */
	CSS_LISTED_ORPHAN, /* css does not place it there (unknown, ended, or moved elsewhere): end it there */
	CSS_LISTED_ADOPT,  /* waiting for a restore because its room was abnormal, the room is normal again and
			      the MCU still runs it: taken back as it is (running there) */
};

struct css_listed_in {
	bool known;	      /* css has a record of the E164 */
	enum css_state state; /* the record's state */
	bool closing;	      /* ended, its history being written */
	bool busy;	      /* an operation (create, restore, end, rename) in flight on it */
	bool here;	      /* the record places it on the listing MCU */
	bool lost_by_room;    /* it became pending_restore because its room went abnormal */
	bool room_abnormal;   /* the room of the record is abnormal now */
	uint64_t age_ms;      /* since the record last changed */
	uint64_t grace_ms;    /* [css] list_grace */
};

enum css_listed css_listed_rule(const struct css_listed_in *in);

/* Whether a conference css places on an MCU but absent from that MCU's
 * list is missing (to be restored): running, nothing in flight, older than
 * the grace. */
bool css_missing_rule(enum css_state state, bool busy, uint64_t age_ms, uint64_t grace_ms);

/* Whether a room or platform notice of epoch got applies over what css has
 * (have, 0 when nothing yet): only a newer epoch does. */
bool css_notice_applies(int64_t have, int64_t got);

const char *css_listed_name(enum css_listed v);

/* An MCU's conference list against the last one css took from it (have_seq
 * -1: none yet; boots "" when the MCU tells none). */
enum css_list_order {
	CSS_LIST_NEW,	  /* newer, of the same incarnation: taken */
	CSS_LIST_STALE,	  /* the same seq again, or an older one of the same incarnation: logged, counted, not taken */
	CSS_LIST_RESTART, /* another incarnation (a new boot; or, from an MCU that tells none, a seq that went back):
			     the MCU restarted, its lists counted afresh, this one taken */
};

enum css_list_order css_list_order(const char *have_boot, int64_t have_seq, const char *boot, int64_t seq);

/* Whether an MCU's answer to a create says the conference runs there: its
 * ACK, or its NACK "exists" (a repeated create refused, as the contract
 * allows; reason NULL for an ACK). */
bool css_mcu_runs_it(bool ack, const char *reason);

/* The platform of the css that sent the command an MCU answers, read from
 * the answer's id "css-<platform>-<epoch>-<n>" (cdr_bus_next_id) into buf;
 * false when the id is not of that form or the platform does not fit. */
bool css_sender_platform(const char *id, char *buf, size_t len);

/* When a conference whose allocation or re-create failed is tried again:
 * tries counts the failures in a row, this one included. Gives up (returns
 * false: ended on purpose, restore_failed) once tries reaches attempts;
 * otherwise returns true with *after, the monotonic ms before which it is
 * not tried. */
bool css_restore_retry(int tries, int64_t attempts, uint64_t now_ms, uint64_t retry_ms, uint64_t *after);

/* Whether a conference ends now by expiry: its planned end (wall ms) has
 * come, it is running or waiting for a restore, nothing is in flight on it
 * and it is not already closing. */
bool css_expires(enum css_state state, bool busy, bool closing, int64_t planned_end_ms, int64_t now_ms);

/* The takeover of a platform this css backs up, at one check. */
struct css_takeover_in {
	bool peer_down;	 /* pms says the platform is down */
	bool own_down;	 /* pms says this css's own platform is down */
	bool consuming;	 /* this css is active with its view rebuilt */
	bool serving;	 /* its user domains are served here (promoted and read) */
	bool promoting;	 /* its replica is being promoted, or its records read */
	bool replica_up; /* the replica of its Redis held here is connected */
};

enum css_takeover_step {
	CSS_TAKEOVER_NONE,	/* nothing to do */
	CSS_TAKEOVER_PROMOTE,	/* promote the replica (REPLICAOF NO ONE), then read and serve */
	CSS_TAKEOVER_WAIT,	/* wanted, but the replica is not connected, or under way: check again */
	CSS_TAKEOVER_HAND_BACK, /* no longer wanted (the platform is up, or we are down): stop serving it */
};

enum css_takeover_step css_takeover_step(const struct css_takeover_in *in);

/* One MCU css places conferences on, against one rms's inventory (its own
 * platform's, or another platform's hosting conferences of ours since a
 * takeover): each rms answers for its own platform's MCUs only. */
struct css_audit_in {
	const char *mcu_platform; /* the platform hosting the MCU (its conferences' host platform) */
	const char *inventory_of; /* the platform whose rms answered */
	bool up;		  /* the inventory has it up */
	bool running;		  /* css has a conference running there with nothing in flight */
	uint64_t absent_since;	  /* monotonic ms its absence was first seen, 0 if not */
	uint64_t now_ms;
	uint64_t grace_ms; /* [css] mcu_absent_grace */
};

enum css_audit {
	CSS_AUDIT_SKIP,	   /* another platform's MCU: its own rms tells (nothing changes) */
	CSS_AUDIT_PRESENT, /* up, or nothing running there: its absence is forgotten */
	CSS_AUDIT_ABSENT,  /* missing, not for mcu_absent_grace yet (absent_since set if 0) */
	CSS_AUDIT_LOST,	   /* missing for mcu_absent_grace: its conferences are restored */
};

enum css_audit css_audit_rule(const struct css_audit_in *in);

/* A css whose platform was declared down (or that starts) serves its own
 * user domains again only once its Redis is home: the fail-back's mark is
 * gone from its ZooKeeper endpoint and the Redis it is connected to is a
 * master (docs/dr.md "Platform back"). Until then it acts as if its platform
 * were still down (creates get platform_down, nothing restored or
 * concluded). One check, on the monotonic clock. */
struct css_home_in {
	bool own_down;	    /* pms says this css's own platform is down */
	bool endpoint_read; /* its Redis endpoint was read from ZooKeeper (absent counts as read) */
	bool failback_mark; /* ... and carries "failback": confdrctl platform failback is under way */
	bool redis_master;  /* the Redis this css is connected to answered role:master */
	bool alarmed;	    /* the long wait was alarmed already */
	uint64_t now_ms;    /* monotonic */
	uint64_t since_ms;  /* when the wait began (the platform declared up, or the start) */
	uint64_t alarm_ms;  /* a wait longer than this is alarmed ([css] failback_wait) */
};

enum css_home {
	CSS_HOME_DOWN,	/* the platform is down: nothing to wait for (acts as down) */
	CSS_HOME_WAIT,	/* up, but its Redis is not home yet: check again */
	CSS_HOME_ALARM, /* ... and it has waited too long: alarm once, check again */
	CSS_HOME_READY, /* home: read the view from Redis again and serve */
};

enum css_home css_home_step(const struct css_home_in *in);
const char *css_home_name(enum css_home v);

#endif
