/* pms's pure rule for a backed-up platform's pms: beats proven by the
 * ZooKeeper majority (peer.h). */
#include "peer.h"

#include <stdio.h>
#include <string.h>

void pms_quorum_init(struct pms_quorum *q)
{
	memset(q, 0, sizeof(*q));
	q->run_since_ms = -1;
	q->last_ok_sent_ms = -1;
}

void pms_quorum_feed(struct pms_quorum *q, bool ok, int64_t sent_ms)
{
	if (!ok) {
		q->run_since_ms = -1;
		q->failures++;
		return;
	}
	if (q->run_since_ms < 0)
		q->run_since_ms = sent_ms;
	q->last_ok_sent_ms = sent_ms;
}

bool pms_quorum_held(const struct pms_quorum *q)
{
	return q->run_since_ms >= 0;
}

bool pms_isolated(const struct pms_quorum *q, int64_t listen_since_ms, int64_t heard_ms, int64_t release_ms,
		  int64_t now_ms, bool was)
{
	int64_t h = heard_ms > listen_since_ms ? heard_ms : listen_since_ms;

	if (q->last_ok_sent_ms < 0 || now_ms - q->last_ok_sent_ms < release_ms)
		return false;
	return was || now_ms - h >= release_ms;
}

void pms_peer_init(struct pms_peer *p, const struct pms_peer_conf *c)
{
	memset(p, 0, sizeof(*p));
	p->conf = *c;
	p->live = -1;
	p->forgiven_ms = INT64_MIN;
	p->bus_ms = -1;
}

void pms_peer_bus(struct pms_peer *p, int64_t now_ms)
{
	p->bus_ms = now_ms;
}

/* Heard on its broker within the limit and a half before our latest own
 * write: the half is the margin by which an isolated platform's css has
 * released its conferences (after the limit) before we may declare it down. */
static bool heard(const struct pms_peer *p, int64_t limit)
{
	return p->bus_ms >= 0 && p->evidence_ms - p->bus_ms < limit + limit / 2;
}

static int64_t max3(int64_t a, int64_t b, int64_t c)
{
	int64_t m = a > b ? a : b;

	return m > c ? m : c;
}

void pms_peer_beat(struct pms_peer *p, bool exists, int64_t version, int64_t write_sent_ms, int64_t run_since_ms,
		   int64_t read_done_ms)
{
	if (!p->read || exists != p->exists || version != p->version) {
		if (p->read && exists)
			p->beats++;
		p->read = true;
		p->exists = exists;
		p->version = version;
		/* It wrote at the latest when our read answered. */
		p->seen_ms = read_done_ms;
	}
	p->evidence_ms = write_sent_ms;
	/* Before our run began ZooKeeper may have taken no writes at all: that
	 * time is not its silence. */
	p->from_ms = max3(p->seen_ms, run_since_ms, p->forgiven_ms);
}

void pms_peer_live(struct pms_peer *p, int n, int64_t now_ms)
{
	if (p->live == 0 && n > 0)
		pms_peer_forgive(p, now_ms);
	p->live = n;
}

int64_t pms_peer_silence(const struct pms_peer *p)
{
	if (!p->read || p->evidence_ms <= p->from_ms)
		return 0;
	return p->evidence_ms - p->from_ms;
}

enum pms_peer_verdict pms_peer_judge(const struct pms_peer *p, char *why, size_t len)
{
	int64_t silence = pms_peer_silence(p), limit = (int64_t)p->conf.misses * p->conf.beat_ms;
	char dummy[1];

	if (!why || !len) {
		why = dummy;
		len = sizeof(dummy);
	}
	why[0] = '\0';
	if (!p->read)
		return PMS_PEER_UNKNOWN;
	if (!p->exists) {
		/* It never wrote a beat: it is judged by /live alone, with the
		 * grace (a pms that does not beat, or one not started yet). */
		if (p->live > 0)
			return PMS_PEER_ALIVE;
		if (p->live < 0)
			return PMS_PEER_UNKNOWN;
		if (silence < p->conf.grace_ms)
			return PMS_PEER_LATE;
		snprintf(why, len, "no pms instance of the platform is live and none has written a beat, for %lld ms",
			 (long long)silence);
		return PMS_PEER_DEAD;
	}
	if (p->live == 0) {
		/* Its sessions are closed: a clean stop (or an expiry). A
		 * restart gets the grace. */
		if (silence >= p->conf.grace_ms && heard(p, limit)) {
			snprintf(why, len,
				 "no pms instance of the platform is live in ZooKeeper, but its pms is heard on its "
				 "broker (%lld ms ago)",
				 (long long)(p->evidence_ms - p->bus_ms));
			return PMS_PEER_HEARD;
		}
		if (silence >= p->conf.grace_ms) {
			snprintf(why, len,
				 "no pms instance of the platform is live and its beat has not changed for %lld ms "
				 "(grace %lld ms)",
				 (long long)silence, (long long)p->conf.grace_ms);
			return PMS_PEER_DEAD;
		}
	} else if (silence >= limit && heard(p, limit)) {
		snprintf(why, len,
			 "its pms wrote no beat to ZooKeeper for %lld ms, but is heard on its broker (%lld ms ago): "
			 "it has lost the ZooKeeper majority, not its life",
			 (long long)silence, (long long)(p->evidence_ms - p->bus_ms));
		return PMS_PEER_HEARD;
	} else if (silence >= limit) {
		snprintf(why, len,
			 "its pms wrote no beat to ZooKeeper for %lld ms (%d x %lld ms) while this pms wrote its own",
			 (long long)silence, p->conf.misses, (long long)p->conf.beat_ms);
		return PMS_PEER_DEAD;
	}
	return silence >= limit / 2 ? PMS_PEER_LATE : PMS_PEER_ALIVE;
}

bool pms_peer_alive(const struct pms_peer *p)
{
	enum pms_peer_verdict v = pms_peer_judge(p, NULL, 0);

	return v == PMS_PEER_ALIVE || v == PMS_PEER_LATE || v == PMS_PEER_HEARD;
}

void pms_peer_forgive(struct pms_peer *p, int64_t now_ms)
{
	p->forgiven_ms = now_ms;
	if (p->from_ms < now_ms)
		p->from_ms = now_ms;
}
