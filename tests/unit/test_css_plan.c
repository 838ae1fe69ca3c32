/* css's disaster-recovery rules (src/css/plan.c): the restore planner (which
 * room rms is asked for, which rooms it must skip), what an MCU's conference
 * list means for a conference, and which room/platform notices apply
 * (late, repeated and out-of-order ones do not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <confdr/topology.h>

#include "css/plan.h"

/* The sandbox's world: two platforms backing each other up, two rooms each. */
static const char topo[] = "{\"platforms\": {"
			   "  \"p1\": {\"name\": \"one\", \"backup_platform\": \"p2\", \"main_room\": \"p1-r1\"},"
			   "  \"p2\": {\"name\": \"two\", \"backup_platform\": \"p1\", \"main_room\": \"p2-r1\"}},"
			   " \"rooms\": {"
			   "  \"p1-r1\": {\"platform\": \"p1\", \"backup_rooms\": [\"p1-r2\", \"p2-r1\"]},"
			   "  \"p1-r2\": {\"platform\": \"p1\", \"backup_rooms\": [\"p1-r1\", \"p2-r2\"]},"
			   "  \"p2-r1\": {\"platform\": \"p2\", \"backup_rooms\": [\"p2-r2\", \"p1-r1\"]},"
			   "  \"p2-r2\": {\"platform\": \"p2\", \"backup_rooms\": [\"p2-r1\", \"p1-r2\"]}},"
			   " \"user_domains\": {"
			   "  \"ud1\": {\"platform\": \"p1\", \"room\": \"p1-r1\"},"
			   "  \"ud2\": {\"platform\": \"p2\", \"room\": \"p2-r1\"}}}";

static const char *abnormal, *down; /* space-separated ids */

static bool listed_in(const char *list, const char *id)
{
	size_t n = strlen(id);

	for (const char *p = list; p && (p = strstr(p, id)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

static bool is_abnormal(const char *id, void *arg)
{
	(void)arg;
	return listed_in(abnormal, id);
}

static bool is_down(const char *id, void *arg)
{
	(void)arg;
	return listed_in(down, id);
}

static bool excludes(const struct css_place *pl, const char *room)
{
	for (size_t i = 0; i < pl->nexclude; i++)
		if (!strcmp(pl->exclude[i], room))
			return true;
	return false;
}

static int setup(void **state)
{
	struct cdr_topology *t = NULL;
	char err[512];

	if (cdr_topology_parse(topo, strlen(topo), NULL, 0, &t, err, sizeof(err)) < 0) {
		fprintf(stderr, "topology refused: %s\n", err);
		return -1;
	}
	*state = t;
	abnormal = down = NULL;
	return 0;
}

static int teardown(void **state)
{
	cdr_topology_free(*state);
	return 0;
}

static void test_place_normal_and_room_failure(void **state)
{
	struct cdr_topology *t = *state;
	struct css_place pl;

	/* all well: the room itself, nothing excluded */
	assert_int_equal(css_place(t, "p1-r1", "p1", is_abnormal, is_down, NULL, &pl), 0);
	assert_string_equal(pl.room, "p1-r1");
	assert_int_equal(pl.nexclude, 0);
	/* p1-r1 abnormal (failure or manual switch, its MCUs maybe still up):
	 * its backup room, and p1-r1 excluded from rms's walk */
	abnormal = "p1-r1";
	assert_int_equal(css_place(t, "p1-r1", "p1", is_abnormal, is_down, NULL, &pl), 0);
	assert_string_equal(pl.room, "p1-r2");
	assert_int_equal(pl.nexclude, 1);
	assert_true(excludes(&pl, "p1-r1"));
	/* a conference of p1-r2 whose room is fine: its own room, but the walk
	 * from p1-r2 (backup p1-r1) must still skip p1-r1 */
	assert_int_equal(css_place(t, "p1-r2", "p1", is_abnormal, is_down, NULL, &pl), 0);
	assert_string_equal(pl.room, "p1-r2");
	assert_true(excludes(&pl, "p1-r1"));
	/* both rooms of p1 abnormal: the next is p2's, which p1's css does not
	 * drive: no room */
	abnormal = "p1-r1 p1-r2";
	assert_int_equal(css_place(t, "p1-r1", "p1", is_abnormal, is_down, NULL, &pl), -1);
	assert_null(pl.room);
	assert_int_equal(pl.nexclude, 2);
	/* unknown room */
	abnormal = NULL;
	assert_int_equal(css_place(t, "p9-r1", "p1", is_abnormal, is_down, NULL, &pl), -1);
	assert_null(pl.room);
}

static void test_place_takeover(void **state)
{
	struct cdr_topology *t = *state;
	struct css_place pl;

	/* p1 is down: p2's css places p1-r1's conferences in the first backup
	 * room of its own (p1-r2 is p1's), every p1 room excluded */
	down = "p1";
	assert_int_equal(css_place(t, "p1-r1", "p2", is_abnormal, is_down, NULL, &pl), 0);
	assert_string_equal(pl.room, "p2-r1");
	assert_true(excludes(&pl, "p1-r1"));
	assert_true(excludes(&pl, "p1-r2"));
	assert_false(excludes(&pl, "p2-r1"));
	assert_int_equal(css_place(t, "p1-r2", "p2", is_abnormal, is_down, NULL, &pl), 0);
	assert_string_equal(pl.room, "p2-r2");
	/* ... and if p2-r2 is abnormal as well, nothing left on p2's side */
	abnormal = "p2-r2";
	assert_int_equal(css_place(t, "p1-r2", "p2", is_abnormal, is_down, NULL, &pl), -1);
	/* the css of a platform that is down places nothing of its own */
	abnormal = NULL;
	assert_int_equal(css_place(t, "p1-r1", "p1", is_abnormal, is_down, NULL, &pl), -1);
}

static struct css_listed_in here_running(void)
{
	struct css_listed_in in = {
		.known = true, .state = CSS_RUNNING, .here = true, .age_ms = 10000, .grace_ms = 3000
	};
	return in;
}

static void test_listed_rules(void **state)
{
	struct css_listed_in in = here_running();

	(void)state;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_KEEP);
	/* unknown, or ended: an orphan, whatever its age */
	in.known = false;
	in.age_ms = 0;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_ORPHAN);
	in = here_running();
	in.state = CSS_ENDED;
	in.closing = true;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_ORPHAN);
	/* restored elsewhere: the copy on this MCU is ended ... */
	in = here_running();
	in.here = false;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_ORPHAN);
	/* ... but not within the grace, nor while a restore is in flight (a
	 * list sent before the move must not end the new copy's twin too early) */
	in.age_ms = 100;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_WAIT);
	in.age_ms = 10000;
	in.busy = true;
	in.state = CSS_RESTORING;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_WAIT);
	/* pending restore because of its room: stays queued while the room is
	 * abnormal; taken back as it is once the room is normal */
	in = here_running();
	in.state = CSS_PENDING_RESTORE;
	in.lost_by_room = true;
	in.room_abnormal = true;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_WAIT);
	in.room_abnormal = false;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_ADOPT);
	/* pending restore because its MCU was declared lost: a list from it
	 * does not revive it (rms said down: restored, then the copy ended) */
	in.lost_by_room = false;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_WAIT);
	/* creating or ending here: the operation decides */
	in = here_running();
	in.state = CSS_CREATING;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_WAIT);
	in.state = CSS_ENDING;
	assert_int_equal(css_listed_rule(&in), CSS_LISTED_WAIT);
	assert_string_equal(css_listed_name(CSS_LISTED_ADOPT), "adopt");
}

static void test_missing_rule(void **state)
{
	(void)state;
	assert_true(css_missing_rule(CSS_RUNNING, false, 5000, 3000));
	assert_false(css_missing_rule(CSS_RUNNING, false, 1000, 3000)); /* just created or moved */
	assert_false(css_missing_rule(CSS_RUNNING, true, 5000, 3000));	/* an end or rename in flight */
	assert_false(css_missing_rule(CSS_PENDING_RESTORE, false, 5000, 3000));
	assert_false(css_missing_rule(CSS_RESTORING, false, 5000, 3000));
}

static void test_notices(void **state)
{
	(void)state;
	assert_true(css_notice_applies(0, 1));	/* the first */
	assert_true(css_notice_applies(0, 0));	/* a state query before any change */
	assert_true(css_notice_applies(4, 5));	/* newer */
	assert_false(css_notice_applies(5, 5)); /* repeated */
	assert_false(css_notice_applies(5, 3)); /* late, out of order */
	assert_true(css_notice_applies(5, 9));	/* a gap (a notice lost): the newest wins */
}

/* restore back-off on an injected clock: tried again restore_retry later,
 * given up on the attempts-th failure in a row */
static void test_restore_retry(void **state)
{
	uint64_t after = 0;

	(void)state;
	assert_true(css_restore_retry(1, 5, 10000, 1000, &after));
	assert_int_equal(after, 11000);
	assert_true(css_restore_retry(4, 5, 20000, 250, &after));
	assert_int_equal(after, 20250);
	after = 7;
	assert_false(css_restore_retry(5, 5, 30000, 1000, &after)); /* the fifth failure: given up */
	assert_int_equal(after, 7);				    /* untouched */
	assert_false(css_restore_retry(1, 1, 0, 1000, &after));	    /* one attempt only */
}

/* expiry at the planned end (wall ms), never before, and only what can end */
static void test_expires(void **state)
{
	(void)state;
	assert_true(css_expires(CSS_RUNNING, false, false, 60000, 60000)); /* at the planned end */
	assert_true(css_expires(CSS_RUNNING, false, false, 60000, 60200));
	assert_false(css_expires(CSS_RUNNING, false, false, 60000, 59999)); /* a millisecond early */
	assert_true(css_expires(CSS_PENDING_RESTORE, false, false, 60000, 61000));
	assert_false(css_expires(CSS_RUNNING, true, false, 60000, 61000));   /* an operation in flight */
	assert_false(css_expires(CSS_RUNNING, false, true, 60000, 61000));   /* already closing */
	assert_false(css_expires(CSS_CREATING, false, false, 60000, 61000)); /* the create decides */
	assert_false(css_expires(CSS_RESTORING, false, false, 60000, 61000));
	assert_false(css_expires(CSS_ENDING, false, false, 60000, 61000));
	assert_false(css_expires(CSS_ENDED, false, false, 60000, 61000));
}

/* the takeover of a platform this css backs up, and its hand-back */
static void test_takeover_steps(void **state)
{
	struct css_takeover_in in = { .peer_down = true, .consuming = true, .replica_up = true };

	(void)state;
	assert_int_equal(css_takeover_step(&in), CSS_TAKEOVER_PROMOTE);
	in.replica_up = false;
	assert_int_equal(css_takeover_step(&in), CSS_TAKEOVER_WAIT); /* no replica to promote yet */
	in.replica_up = true;
	in.promoting = true;
	assert_int_equal(css_takeover_step(&in), CSS_TAKEOVER_WAIT); /* under way */
	in.promoting = false;
	in.serving = true;
	assert_int_equal(css_takeover_step(&in), CSS_TAKEOVER_NONE); /* done */
	in.peer_down = false;
	assert_int_equal(css_takeover_step(&in), CSS_TAKEOVER_HAND_BACK); /* the platform is back */
	in.serving = false;
	assert_int_equal(css_takeover_step(&in), CSS_TAKEOVER_NONE);
	/* never while our own platform is down, nor before the view is rebuilt */
	in = (struct css_takeover_in){ .peer_down = true, .own_down = true, .consuming = true, .replica_up = true };
	assert_int_equal(css_takeover_step(&in), CSS_TAKEOVER_NONE);
	in.serving = true;
	assert_int_equal(css_takeover_step(&in), CSS_TAKEOVER_HAND_BACK);
	in = (struct css_takeover_in){ .peer_down = true, .consuming = false, .replica_up = true };
	assert_int_equal(css_takeover_step(&in), CSS_TAKEOVER_NONE);
}

/* an MCU's conference lists: newer ones taken, repeats and older ones of the
 * same incarnation not, a restart known by its new boot, or, from an MCU
 * that tells none, by a seq that went back */
static void test_list_order(void **state)
{
	(void)state;
	assert_int_equal(css_list_order("", -1, "b1", 1), CSS_LIST_NEW); /* the first */
	assert_int_equal(css_list_order("b1", 5, "b1", 6), CSS_LIST_NEW);
	assert_int_equal(css_list_order("b1", 5, "b1", 5), CSS_LIST_STALE);	/* a repeat */
	assert_int_equal(css_list_order("b1", 5, "b1", 4), CSS_LIST_STALE);	/* late, out of order */
	assert_int_equal(css_list_order("b1", 5, "b2", 1), CSS_LIST_RESTART);	/* a new boot, from 1 */
	assert_int_equal(css_list_order("b1", 5, "b2", 900), CSS_LIST_RESTART); /* a new boot, a clock seq */
	assert_int_equal(css_list_order("", 5, "b1", 1), CSS_LIST_RESTART);	/* it tells a boot now */
	/* an MCU that tells no boot */
	assert_int_equal(css_list_order("", 1700000000000, "", 1700000002000), CSS_LIST_NEW);
	assert_int_equal(css_list_order("", 52, "", 52), CSS_LIST_STALE);
	assert_int_equal(css_list_order("", 52, "", 1), CSS_LIST_RESTART); /* numbered from 1 again */
	assert_int_equal(css_list_order("b1", 5, "", 6), CSS_LIST_NEW);	   /* stopped telling one */
}

/* an MCU's answer to a create: its ACK, or a NACK exists, says it runs it */
static void test_mcu_runs_it(void **state)
{
	(void)state;
	assert_true(css_mcu_runs_it(true, NULL));
	assert_true(css_mcu_runs_it(false, "exists"));
	assert_false(css_mcu_runs_it(false, "no_ports"));
	assert_false(css_mcu_runs_it(false, "stale_epoch"));
	assert_false(css_mcu_runs_it(false, NULL));
}

/* a css coming home after its platform was down: it serves only once the
 * fail-back's mark is gone from its Redis endpoint and its Redis is a
 * master; a long wait is alarmed once (an injected clock) */
static void test_home_steps(void **state)
{
	struct css_home_in in = { .own_down = true, .since_ms = 1000, .now_ms = 1000, .alarm_ms = 60000 };

	(void)state;
	assert_int_equal(css_home_step(&in), CSS_HOME_DOWN); /* declared down: nothing to wait for */
	in.endpoint_read = in.redis_master = true;
	assert_int_equal(css_home_step(&in), CSS_HOME_DOWN); /* whatever its Redis says */
	/* declared up while confdrctl platform failback moves the records home */
	in = (struct css_home_in){ .endpoint_read = true,
				   .failback_mark = true,
				   .redis_master = true,
				   .since_ms = 1000,
				   .now_ms = 1000,
				   .alarm_ms = 60000 };
	assert_int_equal(css_home_step(&in), CSS_HOME_WAIT); /* the promoted replica is a master: not enough */
	in.failback_mark = false;
	in.redis_master = false;
	assert_int_equal(css_home_step(&in), CSS_HOME_WAIT); /* endpoint restored, still on the old (a replica now) */
	in.redis_master = true;
	in.endpoint_read = false;
	assert_int_equal(css_home_step(&in), CSS_HOME_WAIT); /* the endpoint not read (ZooKeeper away) */
	in.endpoint_read = true;
	assert_int_equal(css_home_step(&in), CSS_HOME_READY);
	assert_string_equal(css_home_name(css_home_step(&in)), "ready");
	/* the long wait: alarmed once at failback_wait, then waiting goes on */
	in.failback_mark = true;
	in.now_ms = 1000 + 59999;
	assert_int_equal(css_home_step(&in), CSS_HOME_WAIT);
	in.now_ms = 1000 + 60000;
	assert_int_equal(css_home_step(&in), CSS_HOME_ALARM);
	in.alarmed = true;
	assert_int_equal(css_home_step(&in), CSS_HOME_WAIT);
	in.now_ms = 1000 + 3600000;
	assert_int_equal(css_home_step(&in), CSS_HOME_WAIT);
	in.failback_mark = false; /* the fail-back finished late: home all the same */
	assert_int_equal(css_home_step(&in), CSS_HOME_READY);
	/* declared down again while waiting */
	in.own_down = true;
	assert_int_equal(css_home_step(&in), CSS_HOME_DOWN);
}

/* the MCU audit: each rms answers for its own platform's MCUs; an MCU of
 * ours missing for mcu_absent_grace is lost (an injected clock) */
static void test_audit_rule(void **state)
{
	struct css_audit_in in = {
		.mcu_platform = "p2", .inventory_of = "p1", .running = true, .now_ms = 10000, .grace_ms = 5000
	};

	(void)state;
	assert_int_equal(css_audit_rule(&in), CSS_AUDIT_SKIP); /* p2's MCU: p1's rms does not know it */
	in.absent_since = 1;
	assert_int_equal(css_audit_rule(&in), CSS_AUDIT_SKIP); /* ... and its absence is not forgotten either */
	in.inventory_of = "p2";				       /* p2's rms asked through p2's broker */
	in.absent_since = 0;
	assert_int_equal(css_audit_rule(&in), CSS_AUDIT_ABSENT); /* first seen missing */
	in.absent_since = 10000;
	in.now_ms = 14999;
	assert_int_equal(css_audit_rule(&in), CSS_AUDIT_ABSENT);
	in.now_ms = 15000;
	assert_int_equal(css_audit_rule(&in), CSS_AUDIT_LOST);
	in.up = true; /* back in the inventory */
	assert_int_equal(css_audit_rule(&in), CSS_AUDIT_PRESENT);
	in.up = false;
	in.running = false; /* nothing running there: nothing to lose */
	assert_int_equal(css_audit_rule(&in), CSS_AUDIT_PRESENT);
	/* our own MCU in our own rms's inventory; no grace: lost at once */
	in = (struct css_audit_in){ .mcu_platform = "p1", .inventory_of = "p1", .running = true, .now_ms = 7 };
	assert_int_equal(css_audit_rule(&in), CSS_AUDIT_LOST);
}

/* the css an MCU's answer is for, from the answer's id */
static void test_sender_platform(void **state)
{
	char p[16];

	(void)state;
	assert_true(css_sender_platform("css-p1-7-123", p, sizeof(p)));
	assert_string_equal(p, "p1");
	assert_true(css_sender_platform("css-east-dc-0-1", p, sizeof(p))); /* a platform named with '-' */
	assert_string_equal(p, "east-dc");
	assert_false(css_sender_platform("rms-p1-7-123", p, sizeof(p)));		      /* not a css */
	assert_false(css_sender_platform("css-p1-7", p, sizeof(p)));			      /* no seq */
	assert_false(css_sender_platform("css-p1-x-3", p, sizeof(p)));			      /* epoch not a number */
	assert_false(css_sender_platform("css-p1-7-", p, sizeof(p)));			      /* empty seq */
	assert_false(css_sender_platform("css--7-3", p, sizeof(p)));			      /* empty platform */
	assert_false(css_sender_platform("create-000123", p, sizeof(p)));		      /* an MCU's own id */
	assert_false(css_sender_platform("css-a-very-long-platform-name-1-2", p, sizeof(p))); /* does not fit */
	assert_false(css_sender_platform("", p, sizeof(p)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_place_normal_and_room_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_place_takeover, setup, teardown),
		cmocka_unit_test(test_listed_rules),
		cmocka_unit_test(test_missing_rule),
		cmocka_unit_test(test_notices),
		cmocka_unit_test(test_restore_retry),
		cmocka_unit_test(test_expires),
		cmocka_unit_test(test_takeover_steps),
		cmocka_unit_test(test_home_steps),
		cmocka_unit_test(test_audit_rule),
		cmocka_unit_test(test_list_order),
		cmocka_unit_test(test_mcu_runs_it),
		cmocka_unit_test(test_sender_platform),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
