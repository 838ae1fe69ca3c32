/* css's conference model against its state machine: an allowed event moves
 * the conference and stamps the change; a refused one is a bug, counted
 * (sm_refused) and leaving the conference as it was; css_conf_can asks
 * without changing anything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "css/css_int.h"

static void test_allowed_event_moves_and_stamps(void **state)
{
	struct css s = { 0 };
	struct conf c = { .e164 = "0100000001", .state = CSS_CREATING };

	(void)state;
	assert_true(css_conf_can(&c, CSS_EV_MCU_ACK));
	assert_int_equal(c.state, CSS_CREATING); /* asking changes nothing */
	assert_int_equal(css_conf_event(&s, &c, CSS_EV_MCU_ACK), 0);
	assert_int_equal(c.state, CSS_RUNNING);
	assert_true(c.changed_mono > 0);
	assert_int_equal(s.n.sm_refused, 0);
}

static void test_refused_event_is_counted_and_changes_nothing(void **state)
{
	struct css s = { 0 };
	struct conf c = { .e164 = "0100000002", .state = CSS_RUNNING, .changed_mono = 7 };

	(void)state;
	assert_false(css_conf_can(&c, CSS_EV_RESTORE_SENT));
	assert_int_equal(css_conf_event(&s, &c, CSS_EV_RESTORE_SENT), -1);
	assert_int_equal(c.state, CSS_RUNNING);
	assert_int_equal(c.changed_mono, 7);
	assert_int_equal(s.n.sm_refused, 1);
	/* ENDED has no way out */
	c.state = CSS_ENDED;
	assert_int_equal(css_conf_event(&s, &c, CSS_EV_ADOPT), -1);
	assert_int_equal(c.state, CSS_ENDED);
	assert_int_equal(s.n.sm_refused, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_event_moves_and_stamps),
		cmocka_unit_test(test_refused_event_is_counted_and_changes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
