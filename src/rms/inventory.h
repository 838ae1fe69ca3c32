/* rms's inventory and allocation policy: pure logic, no I/O. Time is given
 * by the caller (ms on a monotonic clock), so that the unit tests drive it.
 *
 * The inventory holds the MCUs and VRS that registered with this rms, their
 * liveness (heartbeats: down after `misses` missed ones, up again after
 * `rise` consecutive ones or at a registration), their load, and the
 * reservations and allocations handed out. docs/rms.md is its prose. */
#ifndef CONFDR_RMS_INVENTORY_H
#define CONFDR_RMS_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdr_topology;
struct rms_inv;

struct rms_policy {
	int64_t heartbeat_ms;	/* told to MCUs and VRS at registration */
	int misses;		/* down after that many missed heartbeats */
	int rise;		/* up again after that many consecutive heartbeats */
	int64_t reservation_ms; /* a reservation neither confirmed nor released expires */
	int64_t default_ports;	/* ports of an allocation that names none */
};

enum rms_state { RMS_UP, RMS_DOWN };

/* Liveness of an MCU or a VRS. */
/* How far an MCU's heartbeat seq may run ahead of its last one
 * (live_heartbeat): RMS_SEQ_PER_MS per millisecond since then, plus
 * RMS_SEQ_SLACK. The protocol lets a seq count heartbeats or go on from a
 * clock (section "An MCU's incarnation"): a microsecond clock with a second
 * of slack still fits; 2^63-1 after a second does not. */
#define RMS_SEQ_PER_MS 1000
#define RMS_SEQ_SLACK  1000000

struct rms_live {
	enum rms_state state;
	int64_t since_ms;     /* state since (monotonic) */
	int64_t last_seen_ms; /* last registration or heartbeat (monotonic) */
	int64_t heartbeat_ms; /* interval it was told */
	int64_t last_seq;     /* of its heartbeats; -1 after a registration */
	int rise_count;	      /* consecutive heartbeats while down */
	int64_t back_seq;     /* the last heartbeat refused as old since the last accepted one, or -1 */
	int64_t seq_refused;  /* heartbeats refused for a seq far ahead (live_heartbeat) */
};

struct rms_mcu {
	char *id, *key, *room;
	int64_t cap_confs, cap_ports;
	bool h265, res_1080p, xmpu;
	int weight, priority;
	bool backup;

	struct rms_live live;
	bool drain;
	bool unheard; /* up, but not heard since rms's broker link came back: allocated nothing until it is */
	char *boot;   /* its incarnation, as it last told (NULL: it tells none) */
	char *owner;  /* the broker user that registered it (NULL: none told) */

	/* Load: its last report, confirmations minus releases since that report,
	 * and reservations pending. running = max(0, rep + delta). */
	int64_t rep_confs, rep_ports;
	int64_t delta_confs, delta_ports;
	int64_t res_confs, res_ports;
};

struct rms_vrs {
	char *id, *room;
	char *owner; /* as rms_mcu's */
	int64_t capacity;
	int weight, priority;
	struct rms_live live;
	int64_t rep, delta, res;
};

/* What changed, for rms_all_mcu_ntf / rms_all_vrs_ntf. Strings borrowed for
 * the call. state: "up", "down" or "drain". */
struct rms_event {
	bool vrs; /* false: an MCU */
	const struct rms_mcu *mcu;
	const struct rms_vrs *v;
	const char *state;
	const char *reason; /* registered, restarted, heartbeat_lost, heartbeat_resumed, drain, undrain */
};
typedef void (*rms_event_fn)(const struct rms_event *ev, void *arg);

/* platform: this rms's platform (copied). Returns NULL on no memory. */
struct rms_inv *rms_inv_new(const char *platform, const struct rms_policy *policy, rms_event_fn fn, void *arg);
struct rms_inv *rms_inv_free(struct rms_inv *inv);

void rms_inv_set_policy(struct rms_inv *inv, const struct rms_policy *policy);
const struct rms_policy *rms_inv_policy(const struct rms_inv *inv);

/* The topology rooms and user domains are looked up in; borrowed (the caller
 * keeps it alive until the next call or rms_inv_free). NULL: none yet. */
void rms_inv_set_topology(struct rms_inv *inv, const struct cdr_topology *t);

/* Forgets every MCU, VRS, reservation and allocation (a new leader starts
 * from registrations). epoch prefixes reservation ids from now on. */
void rms_inv_reset(struct rms_inv *inv, int64_t epoch);

/* ---- registration and liveness ---- */

struct rms_mcu_reg {
	const char *id, *key, *room, *platform;
	int64_t cap_confs, cap_ports;
	bool h265, res_1080p, xmpu;
	int weight, priority; /* defaults: 100, 100 */
	bool backup;
	int64_t running_confs, used_ports;
	const char *boot;  /* its incarnation, or NULL / "" */
	const char *owner; /* the broker user that sent it (AMQP user_id), or NULL */
};

/* Registers (or re-registers) an MCU: it is up at once, its load is what it
 * reports. Registered again with another boot than before, it restarted
 * (its conferences are gone): the event says "restarted". An MCU is bound to
 * the broker user that registered it (owner): while it is up, a registration
 * of its id by another user is refused with -EPERM; once down, anyone of the
 * role may register it (a box moved to other credentials). Returns 0;
 * -EAGAIN (no topology yet), -ENOENT (room unknown), -EXDEV (platform or room
 * not this rms's), -EPERM, -ENOMEM; err says why. */
int rms_inv_register_mcu(struct rms_inv *inv, const struct rms_mcu_reg *reg, int64_t now, char *err, size_t errlen);

struct rms_vrs_reg {
	const char *id, *room, *platform;
	int64_t capacity;
	int weight, priority;
	int64_t running;
	const char *owner;
};
int rms_inv_register_vrs(struct rms_inv *inv, const struct rms_vrs_reg *reg, int64_t now, char *err, size_t errlen);

/* The broker user that registered the MCU (vrs: the VRS) id; NULL when it is
 * unknown or none was told. A heartbeat from another user is not its own. */
const char *rms_inv_owner(const struct rms_inv *inv, const char *id, bool vrs);

/* A heartbeat. Returns 0, -ENOENT (not registered: it must register again)
 * or -EALREADY (an old or repeated seq, ignored). */
int rms_inv_heartbeat_mcu(struct rms_inv *inv, const char *id, int64_t seq, int64_t running_confs, int64_t used_ports,
			  int64_t now);
int rms_inv_heartbeat_vrs(struct rms_inv *inv, const char *id, int64_t seq, int64_t running, int64_t now);

/* The incarnation a heartbeat carries (before rms_inv_heartbeat_mcu): when it
 * is not the registered one, the MCU restarted without a registration rms
 * saw: "restarted" is emitted, boot kept, and its heartbeats counted afresh.
 * Returns 1 then, 0 when nothing changed (no boot, the same, or unknown MCU),
 * -ENOMEM. */
int rms_inv_mcu_boot(struct rms_inv *inv, const char *id, const char *boot);

/* Declares down what missed its heartbeats (unless blind) and expires
 * reservations. Returns the number of reservations expired. */
size_t rms_inv_tick(struct rms_inv *inv, int64_t now);

/* rms's own broker link went down (blind) or came back: while blind no
 * heartbeat can arrive, so nothing is declared down for missing them; when
 * it comes back, every MCU and VRS that was up gets a whole detection window
 * from now, or grace_ms if that is longer (silence during the outage is
 * rms's, not theirs; the MCUs re-connect to the broker with their own
 * back-off). */
void rms_inv_blind(struct rms_inv *inv, bool blind, int64_t now, int64_t grace_ms);

/* Nothing is declared down for missed heartbeats before until (a new
 * leader: the MCUs register with it again, and one whose registration is
 * held by a frozen former leader sends no heartbeat until it is answered). */
void rms_inv_quiet(struct rms_inv *inv, int64_t until);

/* Whether silence says nothing yet at now: blind (broker link down) or
 * quiet (a new leader). An MCU missing from the inventory then may be one
 * whose registration is still held by a frozen former leader; the
 * inventory's readers (css's audit, pms's MCU check) conclude nothing. */
bool rms_inv_settling(const struct rms_inv *inv, int64_t now);

/* Drains an MCU (no new conferences; running ones stay) or ends the drain.
 * Returns 0 or -ENOENT. */
int rms_inv_drain(struct rms_inv *inv, const char *id, bool drain, int64_t now);

/* ---- allocation ---- */

enum rms_reason {
	RMS_OK = 0,
	RMS_NO_CAPACITY,
	RMS_UNKNOWN_ROOM,
	RMS_UNKNOWN_CAPABILITY,
	RMS_UNKNOWN_USER_DOMAIN,
	RMS_OTHER_PLATFORM,
	RMS_NOT_READY, /* no topology yet */
	RMS_NO_MEMORY,
};
/* The code for a NACK: "no_capacity", ... ("not_active" for NOT_READY). */
const char *rms_reason_code(enum rms_reason r);

struct rms_want {
	const char *e164;
	const char *user_domain;
	const char *room; /* NULL: the user domain's room */
	bool h265, res_1080p, xmpu, record;
	const char *const *caps; /* by name, ncaps of them: "h265", "1080p", "xmpu" */
	size_t ncaps;
	int64_t ports; /* 0: the policy's default */
	const char *const *exclude;
	size_t nexclude;
	const char *const *exclude_rooms; /* skipped in the walk (abnormal rooms) */
	size_t nexclude_rooms;
};

struct rms_result {
	enum rms_reason reason;
	char detail[256];
	const struct rms_mcu *mcu; /* RMS_OK: valid until the next inventory call */
	const struct rms_vrs *vrs; /* NULL unless record */
	const char *room;	   /* OK: the room of both; OTHER_PLATFORM: the foreign room */
	const char *platform;
	char reservation[48];
	bool unsure; /* refused where an MCU was missing, down or not heard again: registrations may change it */
};

/* Picks an MCU (and a VRS when record) in the wanted room, then in its
 * backup rooms in order, and reserves them until confirmed, released or
 * expired (now + reservation_ms). The policy: capability, then the room's
 * primaries (backup MCUs only when no primary is usable), then priority
 * (lower first), then weighted least load. A backup room of another
 * platform ends the walk with RMS_OTHER_PLATFORM naming it. */
void rms_inv_allocate(struct rms_inv *inv, const struct rms_want *want, int64_t now, struct rms_result *res);

/* Confirms a reservation: the conference runs; it stays allocated until
 * released. Confirming an allocation again is fine. Returns 0 or -ENOENT. */
int rms_inv_confirm(struct rms_inv *inv, const char *reservation);

/* Gives back a reservation or an allocation. Returns 0 or -ENOENT. */
int rms_inv_release(struct rms_inv *inv, const char *reservation);

/* What a user domain's room offers (MCUs registered there, in any state).
 * Returns 0 (room set to its room), -ENOENT (unknown user domain) or
 * -EAGAIN (no topology yet). */
int rms_inv_capability(const struct rms_inv *inv, const char *user_domain, bool *h265, bool *res_1080p, bool *xmpu,
		       const char **room);

/* ---- reading ---- */

/* Load figures of an MCU / VRS. */
int64_t rms_mcu_running(const struct rms_mcu *m);
int64_t rms_mcu_used_ports(const struct rms_mcu *m);
int64_t rms_vrs_running(const struct rms_vrs *v);
/* "up", "down" or "drain". */
const char *rms_mcu_state_name(const struct rms_mcu *m);

const struct rms_mcu *rms_inv_mcu(const struct rms_inv *inv, const char *id);
const struct rms_vrs *rms_inv_vrs(const struct rms_inv *inv, const char *id);

/* Every MCU / VRS in id order (room NULL: all rooms) as a malloc'd array
 * (free()); *n set. NULL with *n 0 when there is none (or no memory). */
const struct rms_mcu **rms_inv_mcus(const struct rms_inv *inv, const char *room, size_t *n);
const struct rms_vrs **rms_inv_vrss(const struct rms_inv *inv, const char *room, size_t *n);

size_t rms_inv_nreservations(const struct rms_inv *inv);
size_t rms_inv_nallocations(const struct rms_inv *inv); /* confirmed */
const char *rms_inv_platform(const struct rms_inv *inv);

#endif
