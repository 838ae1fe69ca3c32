/* confdr-supervise's back-off and restart rule (src/tools/supervise_policy.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tools/supervise_policy.h"

static const struct sup_policy pol = { .min_ms = 1000, .max_ms = 60000, .stable_ms = 60000, .prevent_status = 78 };

static void test_backoff_doubles_to_the_max(void **state)
{
	int64_t d = 0, want[] = { 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000 };

	(void)state;
	/* a crash loop: each run shorter than stable */
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		d = sup_next_delay(&pol, d, 500);
		assert_int_equal(d, want[i]);
	}
	/* a stable run starts over */
	assert_int_equal(sup_next_delay(&pol, d, 60000), 1000);
	assert_int_equal(sup_next_delay(&pol, d, 59999), 60000);
}

static void test_what_is_restarted(void **state)
{
	(void)state;
	assert_true(sup_restarts(&pol, false, false, -1)); /* killed by a signal */
	assert_true(sup_restarts(&pol, false, true, 1));   /* failed */
	assert_false(sup_restarts(&pol, false, true, 0));  /* stopped on purpose */
	assert_false(sup_restarts(&pol, false, true, 78)); /* its configuration is wrong */
	assert_false(sup_restarts(&pol, true, false, -1)); /* we are stopping */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_to_the_max),
		cmocka_unit_test(test_what_is_restarted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
