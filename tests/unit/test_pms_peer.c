/* pms's rule for a backed-up platform's pms (src/pms/peer.c) on a hand-made
 * clock: beats proven by fresh reads, a missed beat or two tolerated, the
 * detection time within its budget for every phase, nothing proven while
 * this pms is cut off from the majority or ZooKeeper takes no writes, a
 * clean stop given the grace, a forced switch-back forgiving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pms/peer.h"

static const struct pms_peer_conf conf = { .beat_ms = 250, .misses = 8, .grace_ms = 5000 };
#define BEAT conf.beat_ms

/* A world of two pms: P beats every beat at phase p_phase while alive (its
 * writes land `lat` ms after it sends them); B writes its own beat every
 * beat at phase 0 and reads P's beat right after, `lat` ms per round trip. */
struct world {
	struct pms_peer peer;
	struct pms_quorum q;
	int64_t p_version;
	int64_t p_phase, lat;
	int64_t p_dies_at;   /* INT64_MAX: never */
	int64_t p_frozen[2]; /* P sends nothing in [from, to) */
	int64_t b_cut[2];    /* B's writes fail in [from, to) */
	int64_t zk_down[2];  /* nobody's writes land in [from, to) */
	int64_t last_p_write;
};

static void world_init(struct world *w, int64_t p_phase, int64_t lat)
{
	memset(w, 0, sizeof(*w));
	pms_peer_init(&w->peer, &conf);
	pms_peer_live(&w->peer, 1, 0);
	pms_quorum_init(&w->q);
	w->p_phase = p_phase;
	w->lat = lat;
	w->p_dies_at = INT64_MAX;
	w->last_p_write = -1;
}

static bool in(const int64_t r[2], int64_t t)
{
	return t >= r[0] && t < r[1];
}

/* P's writes that landed by time t. */
static void p_writes_until(struct world *w, int64_t t)
{
	int64_t next = w->last_p_write < 0 ? w->p_phase : w->last_p_write + BEAT;

	for (; next + w->lat <= t; next += BEAT) {
		w->last_p_write = next;
		if (next >= w->p_dies_at || in(w->p_frozen, next) || in(w->zk_down, next + w->lat))
			continue;
		w->p_version++;
	}
}

/* Runs B from `from` to `to`; returns the first time B's verdict was DEAD
 * (the answer of the read that proved it), or -1. */
static int64_t run(struct world *w, int64_t from, int64_t to)
{
	for (int64_t s = from; s < to; s += BEAT) {
		bool ok = !in(w->b_cut, s) && !in(w->zk_down, s + w->lat);

		pms_quorum_feed(&w->q, ok, s);
		if (!ok)
			continue;
		/* The read after our write: what had landed by the write. */
		p_writes_until(w, s + w->lat);
		pms_peer_beat(&w->peer, true, w->p_version, s, w->q.run_since_ms, s + 2 * w->lat);
		if (pms_peer_judge(&w->peer, NULL, 0) == PMS_PEER_DEAD)
			return s + 2 * w->lat;
	}
	return -1;
}

static void test_quorum_runs(void **state)
{
	struct pms_quorum q;

	(void)state;
	pms_quorum_init(&q);
	assert_false(pms_quorum_held(&q));
	pms_quorum_feed(&q, true, 100);
	pms_quorum_feed(&q, true, 600);
	assert_true(pms_quorum_held(&q));
	assert_int_equal(q.run_since_ms, 100);
	assert_int_equal(q.last_ok_sent_ms, 600);
	/* A failure ends the run; the next success starts a new one. */
	pms_quorum_feed(&q, false, 1100);
	assert_false(pms_quorum_held(&q));
	assert_int_equal(q.failures, 1);
	pms_quorum_feed(&q, true, 1600);
	assert_int_equal(q.run_since_ms, 1600);
}

static void test_detection_budget_every_phase(void **state)
{
	struct world w;
	int64_t lo = INT64_MAX, hi = 0;

	(void)state;
	/* P dies at 10 s plus every offset within a beat, for every phase of
	 * P's timer against B's, with 5 ms or 100 ms round trips: declared dead
	 * no sooner than misses - 1 beats after the death and no later than
	 * misses + 2 beats (+ the round trips), inside 3.5 s. */
	for (int64_t lat = 5; lat <= 100; lat += 95)
		for (int64_t phase = 0; phase < BEAT; phase += 25)
			for (int64_t off = 0; off < BEAT; off += 25) {
				int64_t t;

				world_init(&w, phase, lat);
				w.p_dies_at = 10000 + off;
				t = run(&w, 0, 20000);
				assert_true(t > 0);
				t -= w.p_dies_at;
				lo = t < lo ? t : lo;
				hi = t > hi ? t : hi;
				assert_true(t >= (conf.misses - 1) * BEAT);
				assert_true(t <= (conf.misses + 2) * BEAT + 4 * lat);
			}
	printf("# detected %lld..%lld ms after the death\n", (long long)lo, (long long)hi);
	assert_true(hi < 3500);
}

static void test_missed_beats_tolerated(void **state)
{
	struct world w;

	(void)state;
	/* Up to misses - 2 beats of P lost in a row (a frozen pms, a slow
	 * write): never dead. */
	for (int64_t missed = 1; missed <= conf.misses - 2; missed++) {
		world_init(&w, 100, 5);
		w.p_frozen[0] = 5000;
		w.p_frozen[1] = 5000 + missed * BEAT;
		assert_int_equal(run(&w, 0, 20000), -1);
		assert_int_equal(pms_peer_judge(&w.peer, NULL, 0), PMS_PEER_ALIVE);
	}
	/* A freeze of 1 s (SIGSTOP, SIGCONT): alive; of 3 s: dead. */
	world_init(&w, 100, 5);
	w.p_frozen[0] = 5050;
	w.p_frozen[1] = 6050;
	assert_int_equal(run(&w, 0, 20000), -1);
	world_init(&w, 100, 5);
	w.p_frozen[0] = 5050;
	w.p_frozen[1] = 8050;
	assert_true(run(&w, 0, 20000) > 0);
}

static void test_late_before_dead(void **state)
{
	struct world w;
	char why[256];

	(void)state;
	world_init(&w, 0, 5);
	w.p_dies_at = 3000;
	assert_int_equal(run(&w, 0, 3000 + conf.misses * BEAT / 2 + BEAT), -1);
	assert_int_equal(pms_peer_judge(&w.peer, why, sizeof(why)), PMS_PEER_LATE);
	assert_true(pms_peer_alive(&w.peer));
	assert_true(run(&w, 3000 + conf.misses * BEAT / 2 + BEAT, 10000) > 0);
	assert_int_equal(pms_peer_judge(&w.peer, why, sizeof(why)), PMS_PEER_DEAD);
	assert_non_null(strstr(why, "no beat"));
	assert_false(pms_peer_alive(&w.peer));
}

static void test_own_isolation_proves_nothing(void **state)
{
	struct world w;

	(void)state;
	/* B cut off from the majority for 10 s while P beats: its writes fail,
	 * it reads nothing fresh, it decides nothing; back, it sees P's new
	 * beats. */
	world_init(&w, 200, 5);
	w.b_cut[0] = 3000;
	w.b_cut[1] = 13000;
	assert_int_equal(run(&w, 0, 20000), -1);
	assert_int_equal(pms_peer_judge(&w.peer, NULL, 0), PMS_PEER_ALIVE);
	/* B cut off while P dies: P is declared once B is back, and then only
	 * after a whole run of misses x beat of B's own successful writes. */
	world_init(&w, 200, 5);
	w.b_cut[0] = 3000;
	w.b_cut[1] = 13000;
	w.p_dies_at = 4000;
	assert_int_equal(run(&w, 0, 13000), -1);
	assert_true(run(&w, 13000, 20000) >= 13000 + conf.misses * BEAT);
}

static void test_zookeeper_without_quorum(void **state)
{
	struct world w;

	(void)state;
	/* ZooKeeper takes no writes for 8 s (its leader lost): nobody beats.
	 * B read P's last beat just before; after it, B's first read comes
	 * before P's next beat: the outage is not P's silence, never dead. */
	world_init(&w, 200, 5);
	w.zk_down[0] = 4760;
	w.zk_down[1] = 13000;
	assert_int_equal(run(&w, 0, 13001), -1);
	assert_int_equal(pms_peer_judge(&w.peer, NULL, 0), PMS_PEER_ALIVE);
	assert_int_equal(pms_peer_silence(&w.peer), 0);
	assert_int_equal(run(&w, 13001, 30000), -1);
	/* P died with the leader: dead misses x beat after ZooKeeper is back. */
	world_init(&w, 300, 5);
	w.zk_down[0] = 5000;
	w.zk_down[1] = 6200;
	w.p_dies_at = 5000;
	{
		int64_t t = run(&w, 0, 30000);

		assert_true(t >= 6200 + (conf.misses - 1) * BEAT);
		printf("# with 1.2 s of ZooKeeper without a leader: detected %lld ms after the death\n",
		       (long long)(t - 5000));
	}
}

static void test_stalled_write_not_counted(void **state)
{
	struct pms_peer p;

	(void)state;
	/* Our write sent at 1000 answered at 4000 (ZooKeeper slow for
	 * everyone): the read proves silence only up to 1000. */
	pms_peer_init(&p, &conf);
	pms_peer_live(&p, 1, 0);
	pms_peer_beat(&p, true, 7, 0, 0, 10);
	pms_peer_beat(&p, true, 7, 1000, 0, 4010);
	assert_int_equal(pms_peer_silence(&p), 990);
	assert_int_equal(pms_peer_judge(&p, NULL, 0), PMS_PEER_ALIVE);
}

static void test_clean_stop_gets_the_grace(void **state)
{
	struct world w;
	char why[256];

	(void)state;
	/* P stopped cleanly at 5 s: its session closed, /live is empty. Not
	 * down after misses x beat, down after the grace. */
	world_init(&w, 0, 5);
	w.p_dies_at = 5000;
	assert_int_equal(run(&w, 0, 5000), -1);
	pms_peer_live(&w.peer, 0, 0);
	assert_int_equal(run(&w, 5000, 9000), -1);
	assert_int_equal(pms_peer_judge(&w.peer, NULL, 0), PMS_PEER_LATE);
	{
		int64_t t = run(&w, 9000, 20000);

		assert_true(t >= 5000 + conf.grace_ms - 2 * BEAT);
		assert_true(t <= 5000 + conf.grace_ms + 2 * BEAT + 10);
	}
	assert_int_equal(pms_peer_judge(&w.peer, why, sizeof(why)), PMS_PEER_DEAD);
	assert_non_null(strstr(why, "grace"));
	/* A restart within the grace: its beats come back, alive. */
	world_init(&w, 0, 5);
	w.p_frozen[0] = 5000;
	w.p_frozen[1] = 8000 + conf.misses * BEAT - 2 * BEAT;
	assert_int_equal(run(&w, 0, 5000), -1);
	pms_peer_live(&w.peer, 0, 5000);
	assert_int_equal(run(&w, 5000, 8000), -1);
	/* The new instance is live at 8 s, 3 s after the stop, and beats only
	 * later: its silence counts from 8 s. */
	pms_peer_live(&w.peer, 1, 8000);
	assert_int_equal(run(&w, 8000, 20000), -1);
	assert_int_equal(pms_peer_judge(&w.peer, NULL, 0), PMS_PEER_ALIVE);
}

static void test_heard_on_the_broker(void **state)
{
	struct world w;
	char why[256];
	int64_t t;

	(void)state;
	/* P loses the ZooKeeper majority at 5 s (its writes stop landing) but
	 * its pms is heard on its broker every beat until 15 s: not down while
	 * heard; down once the broker too has been silent for the limit. */
	world_init(&w, 0, 5);
	w.p_frozen[0] = 5000;
	w.p_frozen[1] = INT64_MAX;
	for (int64_t s = 0; s < 15000; s += BEAT) {
		pms_peer_bus(&w.peer, s);
		assert_int_equal(run(&w, s, s + BEAT), -1);
	}
	assert_int_equal(pms_peer_judge(&w.peer, why, sizeof(why)), PMS_PEER_HEARD);
	assert_non_null(strstr(why, "heard on its broker"));
	assert_true(pms_peer_alive(&w.peer));
	t = run(&w, 15000, 30000);
	/* the bus silence decides: the limit and a half after the last beat heard (14,750) */
	assert_true(t >= 15000 + conf.misses * BEAT * 3 / 2 - BEAT);
	assert_true(t <= 15000 + conf.misses * BEAT * 3 / 2 + 2 * BEAT + 20);
	/* Its session expired meanwhile (/live empty): heard, still not down. */
	world_init(&w, 0, 5);
	w.p_frozen[0] = 5000;
	w.p_frozen[1] = INT64_MAX;
	pms_peer_live(&w.peer, 0, 0);
	for (int64_t s = 0; s < 15000; s += BEAT) {
		pms_peer_bus(&w.peer, s);
		assert_int_equal(run(&w, s, s + BEAT), -1);
	}
	assert_int_equal(pms_peer_judge(&w.peer, NULL, 0), PMS_PEER_HEARD);
	/* A beat heard long ago vetoes nothing: dead as without one. */
	world_init(&w, 0, 5);
	pms_peer_bus(&w.peer, 100);
	w.p_dies_at = 5000;
	t = run(&w, 0, 20000);
	assert_true(t > 0 && t - 5000 <= (conf.misses + 2) * BEAT + 20);
}

static void test_isolation(void **state)
{
	struct pms_quorum q;
	const int64_t rel = conf.misses * BEAT; /* 2 s */
	bool iso = false;

	(void)state;
	pms_quorum_init(&q);
	/* Never wrote: nothing to release. */
	assert_false(pms_isolated(&q, 0, -1, rel, 10000, false));
	/* Writes every beat until 10 s, heard by the backup until 10 s; cut at
	 * 10 s: not isolated before 1.5 s of both, isolated from then on. */
	for (int64_t s = 0; s <= 10000; s += BEAT)
		pms_quorum_feed(&q, true, s);
	for (int64_t t = 10000; t < 10000 + rel; t += 50)
		assert_false(pms_isolated(&q, 0, 10000, rel, t, false));
	assert_true(pms_isolated(&q, 0, 10000, rel, 10000 + rel, false));
	/* Still heard by the backup (ZooKeeper alone lost, as in an election
	 * or a ZooKeeper-only cut): not isolated. */
	assert_false(pms_isolated(&q, 0, 14000, rel, 14500, false));
	/* Heard never, but listening only since 13 s: counted from then. */
	assert_false(pms_isolated(&q, 13000, -1, rel, 14000, false));
	assert_true(pms_isolated(&q, 13000, -1, rel, 15000, false));
	/* Once isolated, until a write succeeds: a beat of the backup heard
	 * again does not end it (the backup may have declared us down). */
	iso = pms_isolated(&q, 0, 10000, rel, 12000, iso);
	assert_true(iso);
	assert_true(pms_isolated(&q, 0, 11900, rel, 12000, iso));
	pms_quorum_feed(&q, false, 10250);
	assert_true(pms_isolated(&q, 0, 10000, rel, 20000, iso));
	pms_quorum_feed(&q, true, 20000);
	assert_false(pms_isolated(&q, 0, 10000, rel, 20100, iso));
	/* The margin: the backup declares down after the limit and a half of
	 * bus silence, half the limit after the release. */
	assert_true(conf.misses * BEAT + conf.misses * BEAT / 2 - rel >= conf.misses * BEAT / 2);
}

static void test_without_beat_node(void **state)
{
	struct pms_peer p;
	char why[256];

	(void)state;
	pms_peer_init(&p, &conf);
	/* Nothing read, or no /live look-up yet: unknown. */
	assert_int_equal(pms_peer_judge(&p, NULL, 0), PMS_PEER_UNKNOWN);
	pms_peer_beat(&p, false, 0, 0, 0, 5);
	assert_int_equal(pms_peer_judge(&p, NULL, 0), PMS_PEER_UNKNOWN);
	/* Live but never beating (a pms that does not write beats): alive. */
	pms_peer_live(&p, 1, 0);
	pms_peer_beat(&p, false, 0, 60000, 0, 60005);
	assert_int_equal(pms_peer_judge(&p, NULL, 0), PMS_PEER_ALIVE);
	/* Never started: down after the grace, not before. */
	pms_peer_init(&p, &conf);
	pms_peer_live(&p, 0, 0);
	pms_peer_beat(&p, false, 0, 0, 0, 5);
	pms_peer_beat(&p, false, 0, 4500, 0, 4505);
	assert_int_equal(pms_peer_judge(&p, NULL, 0), PMS_PEER_LATE);
	pms_peer_beat(&p, false, 0, 5005, 0, 5010);
	assert_int_equal(pms_peer_judge(&p, why, sizeof(why)), PMS_PEER_DEAD);
	assert_non_null(strstr(why, "none has written a beat"));
	/* Its first beat: alive. */
	pms_peer_live(&p, 1, 0);
	pms_peer_beat(&p, true, 0, 5500, 0, 5505);
	assert_int_equal(pms_peer_judge(&p, NULL, 0), PMS_PEER_ALIVE);
}

static void test_forgive(void **state)
{
	struct world w;

	(void)state;
	world_init(&w, 0, 5);
	w.p_dies_at = 2000;
	assert_true(run(&w, 0, 10000) > 0);
	/* Forgiven at 10 s: the silence counts again from there. */
	pms_peer_forgive(&w.peer, 10000);
	assert_int_equal(pms_peer_silence(&w.peer), 0);
	assert_int_equal(run(&w, 10000, 10000 + conf.misses * BEAT), -1);
	assert_true(run(&w, 10000 + conf.misses * BEAT, 20000) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quorum_runs),
		cmocka_unit_test(test_detection_budget_every_phase),
		cmocka_unit_test(test_missed_beats_tolerated),
		cmocka_unit_test(test_late_before_dead),
		cmocka_unit_test(test_own_isolation_proves_nothing),
		cmocka_unit_test(test_zookeeper_without_quorum),
		cmocka_unit_test(test_stalled_write_not_counted),
		cmocka_unit_test(test_clean_stop_gets_the_grace),
		cmocka_unit_test(test_heard_on_the_broker),
		cmocka_unit_test(test_isolation),
		cmocka_unit_test(test_without_beat_node),
		cmocka_unit_test(test_forgive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
