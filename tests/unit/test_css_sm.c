/* css's conference state machine: the normal life (create, run, end), the
 * failure paths (refused, timed out, lost MCU, restore), what is refused, and
 * that every state has a way to ENDED and ENDED has no way out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "css/confsm.h"

/* Feeds events from st and checks the state after each. */
static enum css_state run(enum css_state st, const enum css_event *ev, const int *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int next = css_sm_next(st, ev[i]);

		if (next != want[i])
			fail_msg("%s + %s: got %d, want %d", css_state_name(st), css_event_name(ev[i]), next, want[i]);
		if (next >= 0)
			st = (enum css_state)next;
	}
	return st;
}

static void test_normal_life(void **state)
{
	const enum css_event ev[] = { CSS_EV_MCU_ACK, CSS_EV_MCU_ACK, CSS_EV_END, CSS_EV_END, CSS_EV_END_DONE };
	const int want[] = { CSS_RUNNING, CSS_RUNNING, CSS_ENDING, CSS_ENDING, CSS_ENDED };

	(void)state;
	assert_int_equal(run(CSS_CREATING, ev, want, 5), CSS_ENDED);
}

static void test_create_failures(void **state)
{
	(void)state;
	assert_int_equal(css_sm_next(CSS_CREATING, CSS_EV_MCU_NACK), CSS_ENDED);
	assert_int_equal(css_sm_next(CSS_CREATING, CSS_EV_TIMEOUT), CSS_ENDED);
	assert_int_equal(css_sm_next(CSS_CREATING, CSS_EV_MCU_LOST), CSS_ENDED);
	/* A creating conference cannot be ended or expire: the CM is told it is in progress. */
	assert_int_equal(css_sm_next(CSS_CREATING, CSS_EV_END), -1);
	assert_int_equal(css_sm_next(CSS_CREATING, CSS_EV_EXPIRE), -1);
}

static void test_expiry_and_mcu_end(void **state)
{
	(void)state;
	assert_int_equal(css_sm_next(CSS_RUNNING, CSS_EV_EXPIRE), CSS_ENDING);
	assert_int_equal(css_sm_next(CSS_RUNNING, CSS_EV_MCU_ENDED), CSS_ENDED);
	assert_int_equal(css_sm_next(CSS_ENDING, CSS_EV_TIMEOUT), CSS_ENDED);
	assert_int_equal(css_sm_next(CSS_ENDING, CSS_EV_MCU_ENDED), CSS_ENDED);
	/* a late create ACK while ending changes nothing */
	assert_int_equal(css_sm_next(CSS_ENDING, CSS_EV_MCU_ACK), CSS_ENDING);
	/* an end answer for a running conference is not expected */
	assert_int_equal(css_sm_next(CSS_RUNNING, CSS_EV_END_DONE), -1);
}

static void test_restore_path(void **state)
{
	const enum css_event ev[] = { CSS_EV_MCU_LOST,	   CSS_EV_MCU_LOST, CSS_EV_RESTORE_SENT, CSS_EV_MCU_NACK,
				      CSS_EV_RESTORE_SENT, CSS_EV_TIMEOUT,  CSS_EV_RESTORE_SENT, CSS_EV_MCU_ACK };
	const int want[] = { CSS_PENDING_RESTORE, CSS_PENDING_RESTORE, CSS_RESTORING, CSS_PENDING_RESTORE,
			     CSS_RESTORING,	  CSS_PENDING_RESTORE, CSS_RESTORING, CSS_RUNNING };

	(void)state;
	assert_int_equal(run(CSS_RUNNING, ev, want, 8), CSS_RUNNING);
	/* nothing runs while pending: ending it needs no MCU */
	assert_int_equal(css_sm_next(CSS_PENDING_RESTORE, CSS_EV_END), CSS_ENDED);
	assert_int_equal(css_sm_next(CSS_PENDING_RESTORE, CSS_EV_GIVE_UP), CSS_ENDED);
	assert_int_equal(css_sm_next(CSS_PENDING_RESTORE, CSS_EV_MCU_ACK), -1);
	assert_int_equal(css_sm_next(CSS_RESTORING, CSS_EV_MCU_LOST), CSS_PENDING_RESTORE);
	/* its room came back and its MCU still runs it: taken back as it is;
	 * only a pending conference can be adopted */
	assert_int_equal(css_sm_next(CSS_PENDING_RESTORE, CSS_EV_ADOPT), CSS_RUNNING);
	assert_int_equal(css_sm_next(CSS_RUNNING, CSS_EV_ADOPT), -1);
	assert_int_equal(css_sm_next(CSS_RESTORING, CSS_EV_ADOPT), -1);
}

static void test_ended_is_final_and_every_state_can_end(void **state)
{
	(void)state;
	for (int ev = 0; ev < CSS_NEVENTS; ev++)
		assert_int_equal(css_sm_next(CSS_ENDED, (enum css_event)ev), -1);
	for (int st = 0; st < CSS_NSTATES - 1; st++) {
		bool reaches = false;

		/* one or two steps reach ENDED from every state */
		for (int a = 0; a < CSS_NEVENTS && !reaches; a++) {
			int n = css_sm_next((enum css_state)st, (enum css_event)a);

			if (n == CSS_ENDED)
				reaches = true;
			for (int b = 0; n >= 0 && b < CSS_NEVENTS && !reaches; b++)
				reaches = css_sm_next((enum css_state)n, (enum css_event)b) == CSS_ENDED;
		}
		if (!reaches)
			fail_msg("no way from %s to ended", css_state_name((enum css_state)st));
	}
	assert_int_equal(css_sm_next((enum css_state)99, CSS_EV_END), -1);
	assert_int_equal(css_sm_next(CSS_RUNNING, (enum css_event)99), -1);
}

static void test_names_round_trip(void **state)
{
	enum css_state st;

	(void)state;
	for (int i = 0; i < CSS_NSTATES; i++) {
		assert_int_equal(css_state_parse(css_state_name((enum css_state)i), &st), 0);
		assert_int_equal(st, i);
	}
	assert_int_equal(css_state_parse("running ", &st), -1);
	assert_int_equal(css_state_parse(NULL, &st), -1);
	assert_string_equal(css_state_name(CSS_PENDING_RESTORE), "pending_restore");
	assert_string_equal(css_event_name(CSS_EV_MCU_LOST), "mcu_lost");
	assert_true(css_state_live(CSS_CREATING));
	assert_false(css_state_live(CSS_ENDED));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normal_life),
		cmocka_unit_test(test_create_failures),
		cmocka_unit_test(test_expiry_and_mcu_end),
		cmocka_unit_test(test_restore_path),
		cmocka_unit_test(test_ended_is_final_and_every_state_can_end),
		cmocka_unit_test(test_names_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
