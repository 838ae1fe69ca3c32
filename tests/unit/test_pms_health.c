/* pms's pure logic: verdicts with fall/rise (misses, recoveries, flapping),
 * room and platform decisions, manual switches and the epoch rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pms/health.h"

static void test_verdict_misses_and_recovery(void **state)
{
	struct pms_verdict v;

	(void)state;
	pms_verdict_init(&v, 3, 2, 1000);
	assert_true(v.up);
	/* Two misses are not enough; a success in between starts over. */
	assert_false(pms_verdict_feed(&v, false, 1100));
	assert_false(pms_verdict_feed(&v, false, 1200));
	assert_false(pms_verdict_feed(&v, true, 1300));
	assert_false(pms_verdict_feed(&v, false, 1400));
	assert_false(pms_verdict_feed(&v, false, 1500));
	assert_true(v.up);
	assert_true(pms_verdict_feed(&v, false, 1600)); /* the third in a row */
	assert_false(v.up);
	assert_int_equal(v.since_ms, 1600);
	/* Further failures change nothing; one success is not a recovery. */
	assert_false(pms_verdict_feed(&v, false, 1700));
	assert_false(pms_verdict_feed(&v, true, 1800));
	assert_false(pms_verdict_feed(&v, false, 1900));
	assert_false(pms_verdict_feed(&v, true, 2000));
	assert_true(pms_verdict_feed(&v, true, 2100));
	assert_true(v.up);
	assert_int_equal(v.changes, 2);
}

static void test_verdict_flapping_is_damped(void **state)
{
	struct pms_verdict v;
	int changes = 0;

	(void)state;
	/* A target that alternates every check never reaches fall=2 or rise=2. */
	pms_verdict_init(&v, 2, 2, 0);
	for (int i = 0; i < 100; i++)
		changes += pms_verdict_feed(&v, i % 2 == 0, i * 100);
	assert_int_equal(changes, 0);
	assert_true(v.up);
	/* With fall=1 and rise=1 every flap is a change. */
	pms_verdict_init(&v, 1, 1, 0);
	for (int i = 0; i < 10; i++)
		changes += pms_verdict_feed(&v, i % 2 == 1, i * 100);
	assert_int_equal(changes, 10);
	/* Values below 1 mean 1. */
	pms_verdict_init(&v, 0, -3, 0);
	assert_true(pms_verdict_feed(&v, false, 1));
	assert_true(pms_verdict_feed(&v, true, 2));
}

static void test_room_failure_nopreempt(void **state)
{
	struct pms_state st = { 0 };
	struct pms_room_health h;
	struct pms_change c;

	(void)state;
	pms_room_health_init(&h, false, 5000, 0);
	assert_false(pms_room_decide(&st, &h, 10, &c));
	pms_room_health_set(&h, false, "tcp check gw 127.0.0.1:9 failed 3 times", 100);
	assert_true(pms_room_decide(&st, &h, 100, &c));
	assert_true(c.bad);
	assert_false(c.manual);
	assert_string_equal(c.reason, "health_check");
	assert_string_equal(c.detail, "tcp check gw 127.0.0.1:9 failed 3 times");
	pms_state_commit(&st, &c, 7, 5000);
	assert_true(st.bad);
	assert_int_equal(st.epoch, 7);
	assert_int_equal(st.since, 5000);
	/* Still failing: nothing more to decide. */
	assert_false(pms_room_decide(&st, &h, 200, &c));
	/* Healthy again, for a long time: nopreempt stays switched. */
	pms_room_health_set(&h, true, NULL, 300);
	assert_false(pms_room_decide(&st, &h, 1000000, &c));
}

static void test_room_preempt_returns_after_delay(void **state)
{
	struct pms_state st = { 0 };
	struct pms_room_health h;
	struct pms_change c;

	(void)state;
	pms_room_health_init(&h, true, 5000, 0);
	pms_room_health_set(&h, false, "mcus silent", 100);
	assert_true(pms_room_decide(&st, &h, 100, &c));
	pms_state_commit(&st, &c, 1, 100);
	pms_room_health_set(&h, true, NULL, 1000);
	assert_false(pms_room_decide(&st, &h, 5999, &c));
	/* A relapse restarts the delay. */
	pms_room_health_set(&h, false, "mcus silent", 3000);
	pms_room_health_set(&h, true, NULL, 4000);
	assert_false(pms_room_decide(&st, &h, 8999, &c));
	assert_true(pms_room_decide(&st, &h, 9000, &c));
	assert_false(c.bad);
	assert_string_equal(c.reason, "recovered");
	pms_state_commit(&st, &c, 2, 9000);
	/* Normal and healthy: nothing; the next failure switches again. */
	assert_false(pms_room_decide(&st, &h, 9001, &c));
	pms_room_health_set(&h, false, "mcus silent", 9500);
	assert_true(pms_room_decide(&st, &h, 9500, &c));
	assert_true(c.bad);
}

static void test_room_manual_switch(void **state)
{
	struct pms_state st = { 0 };
	struct pms_room_health h;
	struct pms_change c;
	const char *reason = NULL;
	char err[256];
	bool changed;

	(void)state;
	pms_room_health_init(&h, true, 1000, 0);
	/* DR on: abnormal and manual; twice is accepted without a change. */
	assert_true(
		pms_room_switch(&st, &h, true, false, "ops@p1", "ticket 1", &c, &changed, &reason, err, sizeof(err)));
	assert_true(changed);
	assert_true(c.bad && c.manual);
	assert_string_equal(c.reason, "manual_switch");
	assert_string_equal(c.by, "ops@p1");
	pms_state_commit(&st, &c, 3, 100);
	assert_true(pms_room_switch(&st, &h, true, false, "ops@p1", "", &c, &changed, &reason, err, sizeof(err)));
	assert_false(changed);
	/* A manual state is never changed automatically, even with preempt. */
	assert_false(pms_room_decide(&st, &h, 1000000, &c));
	/* Switching back a failing room is refused unless forced. */
	pms_room_health_set(&h, false, "tcp check gw failed", 200);
	assert_false(pms_room_switch(&st, &h, false, false, "ops@p1", "", &c, &changed, &reason, err, sizeof(err)));
	assert_string_equal(reason, "room_unhealthy");
	assert_non_null(strstr(err, "tcp check gw failed"));
	assert_true(pms_room_switch(&st, &h, false, true, "ops@p1", "forced", &c, &changed, &reason, err, sizeof(err)));
	assert_true(changed);
	assert_false(c.bad || c.manual);
	pms_state_commit(&st, &c, 4, 300);
	/* The forgiven failure does not switch it again; a new one does. */
	assert_false(pms_room_decide(&st, &h, 400, &c));
	pms_room_health_set(&h, true, NULL, 500);
	pms_room_health_set(&h, false, "tcp check gw failed again", 600);
	assert_true(pms_room_decide(&st, &h, 600, &c));
	assert_true(c.bad && !c.manual);
	/* An automatic abnormal state becomes manual with DR on. */
	pms_state_commit(&st, &c, 5, 600);
	assert_true(pms_room_switch(&st, &h, true, false, "ops@p1", "", &c, &changed, &reason, err, sizeof(err)));
	assert_true(changed && c.manual);
}

/* Fresh reads of a peer's beat every 500 ms from `from` to `to` (own writes
 * all succeeded since 0); its version advances when `beating`. */
static void reads(struct pms_peer *p, int64_t *version, int64_t from, int64_t to, bool beating)
{
	for (int64_t t = from; t <= to; t += 500) {
		if (beating)
			++*version;
		pms_peer_beat(p, true, *version, t, 0, t + 5);
	}
}

static void test_platform_decisions(void **state)
{
	struct pms_state st = { 0 }, main_room = { 0 };
	struct pms_platform_watch w = { 0 };
	const struct pms_peer_conf pc = { .beat_ms = 500, .misses = 4, .grace_ms = 5000 };
	struct pms_change c;
	const char *reason = NULL;
	char err[256];
	bool changed;
	int64_t v = 0;

	(void)state;
	pms_peer_init(&w.peer, &pc);
	pms_peer_live(&w.peer, 1, 0);
	w.follow_main_room = true;
	w.main_room = &main_room;
	/* Nothing read yet: nothing decided. */
	assert_false(pms_platform_decide(&st, &w, &c));
	reads(&w.peer, &v, 0, 3000, true);
	assert_false(pms_platform_decide(&st, &w, &c));
	/* Its beats stop: not down before 4 x 500 ms of proven silence. */
	reads(&w.peer, &v, 3500, 5000, false);
	assert_false(pms_platform_decide(&st, &w, &c));
	reads(&w.peer, &v, 5500, 5500, false);
	assert_true(pms_platform_decide(&st, &w, &c));
	assert_string_equal(c.reason, "pms_lost");
	assert_non_null(strstr(c.detail, "no beat"));
	pms_state_commit(&st, &c, 10, 5500);
	/* No automatic return, and switching back needs a beating pms or force. */
	assert_false(pms_platform_decide(&st, &w, &c));
	assert_false(
		pms_platform_switch(&st, &w, false, false, 20000, "ops", "", &c, &changed, &reason, err, sizeof(err)));
	assert_string_equal(reason, "platform_unhealthy");
	assert_true(
		pms_platform_switch(&st, &w, false, true, 20000, "ops", "", &c, &changed, &reason, err, sizeof(err)));
	assert_true(changed && !c.bad);
	pms_state_commit(&st, &c, 11, 20000);
	/* The forced switch-back forgave the silence so far: a new one counts. */
	reads(&w.peer, &v, 20000, 21500, false);
	assert_false(pms_platform_decide(&st, &w, &c));
	reads(&w.peer, &v, 22000, 22000, false);
	assert_true(pms_platform_decide(&st, &w, &c));
	pms_state_commit(&st, &c, 12, 22000);
	/* Beating again: switched back without force. */
	reads(&w.peer, &v, 22500, 23000, true);
	assert_true(
		pms_platform_switch(&st, &w, false, false, 23000, "ops", "", &c, &changed, &reason, err, sizeof(err)));
	assert_true(changed && !c.bad);
	pms_state_commit(&st, &c, 12, 23000);

	/* A main room abnormal by a manual switch does not take the platform
	 * down; by a failed check it does, once per failure. */
	main_room.bad = true;
	main_room.manual = true;
	main_room.epoch = 12;
	assert_false(pms_platform_decide(&st, &w, &c));
	main_room.manual = false;
	main_room.epoch = 13;
	snprintf(main_room.detail, sizeof(main_room.detail), "mcus silent");
	assert_true(pms_platform_decide(&st, &w, &c));
	assert_string_equal(c.reason, "main_room_abnormal");
	assert_non_null(strstr(c.detail, "mcus silent"));
	pms_state_commit(&st, &c, 14, 30001);
	assert_false(
		pms_platform_switch(&st, &w, false, false, 30002, "ops", "", &c, &changed, &reason, err, sizeof(err)));
	assert_true(
		pms_platform_switch(&st, &w, false, true, 30002, "ops", "", &c, &changed, &reason, err, sizeof(err)));
	pms_state_commit(&st, &c, 15, 30002);
	assert_false(pms_platform_decide(&st, &w, &c));
	/* Not following the main room: nothing. */
	w.follow_main_room = false;
	main_room.epoch = 16;
	assert_false(pms_platform_decide(&st, &w, &c));
	/* Manual down, twice: one change. */
	assert_true(
		pms_platform_switch(&st, &w, true, false, 30005, "ops", "", &c, &changed, &reason, err, sizeof(err)));
	assert_true(changed && c.bad && c.manual);
	pms_state_commit(&st, &c, 17, 30005);
	assert_true(
		pms_platform_switch(&st, &w, true, false, 30006, "ops", "", &c, &changed, &reason, err, sizeof(err)));
	assert_false(changed);
}

static void test_epochs(void **state)
{
	int64_t last = 0;
	const int64_t arrivals[] = { 3, 3, 2, 5, 4, 5, 9 };
	const bool applied[] = { true, false, false, true, false, false, true };

	(void)state;
	/* Repeated, late and out-of-order broadcasts are ignored. */
	for (size_t i = 0; i < sizeof(arrivals) / sizeof(arrivals[0]); i++) {
		bool a = pms_epoch_newer(last, arrivals[i]);

		assert_int_equal(a, applied[i]);
		if (a)
			last = arrivals[i];
	}
	assert_int_equal(last, 9);
	assert_string_equal(pms_state_name(PMS_ROOM, true), "abnormal");
	assert_string_equal(pms_state_name(PMS_ROOM, false), "normal");
	assert_string_equal(pms_state_name(PMS_PLATFORM, true), "down");
	assert_string_equal(pms_state_name(PMS_PLATFORM, false), "up");
}

static void test_commit_keeps_since_without_change(void **state)
{
	struct pms_state st = { 0 };
	struct pms_change c = { .bad = true, .manual = false, .reason = "health_check", .by = "" };

	(void)state;
	pms_state_commit(&st, &c, 1, 100);
	assert_int_equal(st.since, 100);
	/* Manual on an already abnormal room: the room is abnormal since 100. */
	c.manual = true;
	c.reason = "manual_switch";
	pms_state_commit(&st, &c, 2, 200);
	assert_int_equal(st.since, 100);
	assert_true(st.manual);
	c.bad = false;
	pms_state_commit(&st, &c, 3, 300);
	assert_int_equal(st.since, 300);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdict_misses_and_recovery),
		cmocka_unit_test(test_verdict_flapping_is_damped),
		cmocka_unit_test(test_room_failure_nopreempt),
		cmocka_unit_test(test_room_preempt_returns_after_delay),
		cmocka_unit_test(test_room_manual_switch),
		cmocka_unit_test(test_platform_decisions),
		cmocka_unit_test(test_epochs),
		cmocka_unit_test(test_commit_keeps_since_without_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
