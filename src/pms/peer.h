/* Is the pms of a platform we back up alive? pms's pure rule for it, on an
 * injected clock (monotonic ms; no I/O). docs/pms.md, "Platform health",
 * gives the reasoning.
 *
 * Every pms writes a beat into ZooKeeper (/heartbeat/<platform>/pms) every
 * beat interval; a write succeeds only on the side that holds the ensemble's
 * majority. After each of its own writes succeeded, the pms reads the beat
 * nodes of the platforms it backs up: such a read sees at least what
 * ZooKeeper held when its own write was sent. A platform's pms is proven
 * silent for the time from when its beat was last seen to change (or from
 * when this pms's own unbroken run of successful writes began, if later) to
 * the sending of this pms's latest write: time during which ZooKeeper took
 * writes and that pms wrote none. Only fresh reads advance that proof, so a
 * pms cut off from the majority (whose own writes fail) proves nothing and
 * decides nothing. A broker can only veto: a pms heard on its platform's
 * broker within the limit is not dead, however silent in ZooKeeper (its
 * platform lost the ZooKeeper majority but runs and reaches us); a broker
 * that restarts or cannot be reached takes nothing away. */
#ifndef CONFDR_PMS_PEER_H
#define CONFDR_PMS_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- this pms's own beats: does it reach the majority? ---- */

struct pms_quorum {
	int64_t run_since_ms;	 /* send time of the first write of the current run of successes; -1: none */
	int64_t last_ok_sent_ms; /* send time of the latest successful write; -1: none */
	uint64_t failures;	 /* writes that failed */
};

void pms_quorum_init(struct pms_quorum *q);
/* The own beat write sent at sent_ms succeeded (ok) or failed. A failure
 * ends the run: time before the next success proves nothing. */
void pms_quorum_feed(struct pms_quorum *q, bool ok, int64_t sent_ms);
/* Whether the latest own write succeeded. */
bool pms_quorum_held(const struct pms_quorum *q);

/* ---- this platform cut off: isolation ---- */

/* Whether this platform is isolated at now_ms: its own beat writes have not
 * succeeded for release_ms (none since the one sent at
 * q->last_ok_sent_ms) and its backup platform's pms has not said it hears
 * ours for release_ms (heard_ms, -1: never; not before listen_since_ms,
 * when we began to listen). Once isolated (was), until a write succeeds
 * again. The backup declares us down only after the limit and a half of
 * bus silence: release_ms is the limit. */
bool pms_isolated(const struct pms_quorum *q, int64_t listen_since_ms, int64_t heard_ms, int64_t release_ms,
		  int64_t now_ms, bool was);

/* ---- one platform's pms ---- */

struct pms_peer_conf {
	int64_t beat_ms;  /* its beat interval (every pms has the same) */
	int misses;	  /* down after this many beat intervals of proven silence */
	int64_t grace_ms; /* ... or after this long, when none of its pms is live
			   * (a clean stop closes the session: the /live node goes) */
};

enum pms_peer_verdict {
	PMS_PEER_UNKNOWN, /* no fresh read yet */
	PMS_PEER_ALIVE,
	PMS_PEER_LATE, /* silent for half its limit: not yet down */
	PMS_PEER_DEAD,
	PMS_PEER_HEARD, /* dead by ZooKeeper, but heard on its broker: not down */
};

struct pms_peer {
	struct pms_peer_conf conf;
	bool read;	     /* a fresh read has answered */
	bool exists;	     /* its beat node exists */
	int64_t version;     /* of its beat node */
	int64_t seen_ms;     /* when the current version was first read */
	int64_t from_ms;     /* silence is counted from here */
	int64_t evidence_ms; /* ... to here: the send time of the own write before the latest read */
	int64_t forgiven_ms; /* a forced switch-back: silence counts from then */
	int live;	     /* its pms instances under /live; -1: not looked up yet */
	uint64_t beats;	     /* changes of its beat seen */
	int64_t bus_ms;	     /* when its last beat on its broker was heard; -1: never */
};

void pms_peer_init(struct pms_peer *p, const struct pms_peer_conf *c);
/* A read of its beat node made after an own write, sent at write_sent_ms
 * within a run of successes that began at run_since_ms, succeeded; the read
 * answered at read_done_ms: whether the node exists, and its version. */
void pms_peer_beat(struct pms_peer *p, bool exists, int64_t version, int64_t write_sent_ms, int64_t run_since_ms,
		   int64_t read_done_ms);
/* The number of its pms instances under /live, as looked up at now_ms. A
 * pms live again after none was (a restart) is given its silence afresh:
 * it beats a beat after it starts. */
void pms_peer_live(struct pms_peer *p, int n, int64_t now_ms);
/* Its beat was heard on its platform's broker at now_ms. */
void pms_peer_bus(struct pms_peer *p, int64_t now_ms);
/* The silence proven so far, in ms (0 when none). */
int64_t pms_peer_silence(const struct pms_peer *p);
/* The verdict; why (when not NULL) says what it stands on. */
enum pms_peer_verdict pms_peer_judge(const struct pms_peer *p, char *why, size_t len);
/* Alive or late: its pms beats (or, without a beat node, is live). */
bool pms_peer_alive(const struct pms_peer *p);
/* An operator forced the platform back up: its silence counts from now_ms. */
void pms_peer_forgive(struct pms_peer *p, int64_t now_ms);

#endif
