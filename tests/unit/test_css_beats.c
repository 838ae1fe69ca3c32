/* css's reading of its platform's pms beats (src/css/beats.c): the platform
 * is isolated only when every pms instance heard within a second says so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "css/beats.h"

static void one_instance_isolated(void **state)
{
	struct css_beats b = { 0 };
	const char *other = "x";

	(void)state;
	assert_false(css_beats_note(&b, "p1-pms-1", false, 1000, &other));
	assert_null(other);
	assert_true(css_beats_note(&b, "p1-pms-1", true, 1250, &other));
	assert_null(other);
}

static void another_still_beats(void **state)
{
	struct css_beats b = { 0 };
	const char *other = NULL;

	(void)state;
	assert_false(css_beats_note(&b, "p1-pms-1", false, 1000, NULL));
	assert_false(css_beats_note(&b, "p1-pms-2", false, 1100, NULL));
	/* pms-1 frozen, woken: isolated by its own clocks; pms-2 beat 900 ms ago. */
	assert_false(css_beats_note(&b, "p1-pms-1", true, 2000, &other));
	assert_non_null(other);
	assert_string_equal(other, "p1-pms-2");
	/* pms-2 silent for more than a second: its word is stale. */
	assert_true(css_beats_note(&b, "p1-pms-1", true, 2101, &other));
	assert_null(other);
}

static void both_isolated(void **state)
{
	struct css_beats b = { 0 };

	(void)state;
	assert_false(css_beats_note(&b, "p1-pms-1", false, 0, NULL));
	assert_false(css_beats_note(&b, "p1-pms-2", false, 10, NULL));
	assert_false(css_beats_note(&b, "p1-pms-1", true, 500, NULL));
	/* The other's last word (isolated) does not keep the platform. */
	assert_true(css_beats_note(&b, "p1-pms-2", true, 510, NULL));
	assert_true(css_beats_note(&b, "p1-pms-1", true, 750, NULL));
	/* One says it is fine again: not isolated, whatever the other says. */
	assert_false(css_beats_note(&b, "p1-pms-2", false, 760, NULL));
	assert_false(css_beats_note(&b, "p1-pms-1", true, 1000, NULL));
}

static void full_table_drops_the_oldest(void **state)
{
	struct css_beats b = { 0 };
	char name[32];

	(void)state;
	/* The oldest not isolated; then CSS_BEATS_MAX isolated instances push it out. */
	assert_false(css_beats_note(&b, "old", false, 0, NULL));
	for (int i = 0; i < CSS_BEATS_MAX - 1; i++) {
		snprintf(name, sizeof(name), "iso-%d", i);
		assert_false(css_beats_note(&b, name, true, 100 + i, NULL));
	}
	assert_int_equal(b.n, CSS_BEATS_MAX);
	assert_true(css_beats_note(&b, "newcomer", true, 200, NULL));
	assert_int_equal(b.n, CSS_BEATS_MAX);
	for (unsigned i = 0; i < b.n; i++)
		assert_string_not_equal(b.seen[i].instance, "old");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_instance_isolated),
		cmocka_unit_test(another_still_beats),
		cmocka_unit_test(both_isolated),
		cmocka_unit_test(full_table_drops_the_oldest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
