/* css's routing by user domain: which css serves a domain (own, takeover
 * when its platform is down and we are its backup, or another platform's),
 * whose Redis holds its records (always the home platform's), and which
 * Redis a css connects to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <confdr/topology.h>

#include "css/route.h"

/* p1 and p2 back each other up; p3 is backed up by p1 too; p4 by nobody. */
static const char topo[] = "{\"platforms\": {"
			   "  \"p1\": {\"name\": \"one\", \"backup_platform\": \"p2\", \"main_room\": \"p1-r1\"},"
			   "  \"p2\": {\"name\": \"two\", \"backup_platform\": \"p1\", \"main_room\": \"p2-r1\"},"
			   "  \"p3\": {\"name\": \"three\", \"backup_platform\": \"p1\", \"main_room\": \"p3-r1\"},"
			   "  \"p4\": {\"name\": \"four\", \"main_room\": \"p4-r1\"}},"
			   " \"rooms\": {"
			   "  \"p1-r1\": {\"platform\": \"p1\", \"backup_rooms\": [\"p2-r1\"]},"
			   "  \"p2-r1\": {\"platform\": \"p2\", \"backup_rooms\": [\"p1-r1\"]},"
			   "  \"p3-r1\": {\"platform\": \"p3\", \"backup_rooms\": [\"p1-r1\"]},"
			   "  \"p4-r1\": {\"platform\": \"p4\", \"backup_rooms\": []}},"
			   " \"user_domains\": {"
			   "  \"ud1\": {\"platform\": \"p1\", \"room\": \"p1-r1\"},"
			   "  \"ud2\": {\"platform\": \"p2\", \"room\": \"p2-r1\"},"
			   "  \"ud3\": {\"platform\": \"p3\", \"room\": \"p3-r1\"},"
			   "  \"ud4\": {\"platform\": \"p4\", \"room\": \"p4-r1\"}}}";

static const char *down_list;

static bool is_down(const char *p, void *arg)
{
	(void)arg;
	return down_list && strstr(down_list, p) != NULL;
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
	return 0;
}

static int teardown(void **state)
{
	cdr_topology_free(*state);
	return 0;
}

static void test_own_other_unknown(void **state)
{
	struct css_routing rt;

	down_list = NULL;
	assert_int_equal(css_route_domain(*state, "ud1", "p1", is_down, NULL, &rt), CSS_ROUTE_OWN);
	assert_string_equal(rt.home, "p1");
	assert_string_equal(rt.room, "p1-r1");
	assert_int_equal(css_route_domain(*state, "ud2", "p1", is_down, NULL, &rt), CSS_ROUTE_OTHER);
	assert_string_equal(rt.home, "p2"); /* its records stay in p2's Redis */
	assert_int_equal(css_route_domain(*state, "nope", "p1", is_down, NULL, &rt), CSS_ROUTE_UNKNOWN);
	assert_null(rt.home);
	assert_int_equal(css_route_domain(*state, NULL, "p1", is_down, NULL, &rt), CSS_ROUTE_UNKNOWN);
	assert_int_equal(css_route_domain(NULL, "ud1", "p1", is_down, NULL, &rt), CSS_ROUTE_UNKNOWN);
}

static void test_takeover_only_by_the_backup(void **state)
{
	struct css_routing rt;

	down_list = "p2 p3 p4";
	/* p1 backs up p2 and p3: it serves their domains while they are down */
	assert_int_equal(css_route_domain(*state, "ud2", "p1", is_down, NULL, &rt), CSS_ROUTE_TAKEOVER);
	assert_string_equal(rt.home, "p2");
	assert_int_equal(css_route_domain(*state, "ud3", "p1", is_down, NULL, &rt), CSS_ROUTE_TAKEOVER);
	assert_string_equal(rt.home, "p3");
	/* nobody backs up p4; p2 does not back up p3 */
	assert_int_equal(css_route_domain(*state, "ud4", "p1", is_down, NULL, &rt), CSS_ROUTE_OTHER);
	assert_int_equal(css_route_domain(*state, "ud3", "p2", is_down, NULL, &rt), CSS_ROUTE_OTHER);
	/* a platform's own domains stay its own even when it is down (it refuses them: platform_down) */
	assert_int_equal(css_route_domain(*state, "ud2", "p2", is_down, NULL, &rt), CSS_ROUTE_OWN);
	/* back up: no takeover */
	down_list = NULL;
	assert_int_equal(css_route_domain(*state, "ud2", "p1", is_down, NULL, &rt), CSS_ROUTE_OTHER);
	assert_int_equal(css_route_domain(*state, "ud2", "p1", NULL, NULL, &rt), CSS_ROUTE_OTHER);
}

static void test_redis_platforms(void **state)
{
	const char *out[8];
	size_t n;

	n = css_redis_platforms(*state, "p1", out, 8);
	assert_int_equal(n, 3);
	assert_string_equal(out[0], "p1");
	assert_true((!strcmp(out[1], "p2") && !strcmp(out[2], "p3")) ||
		    (!strcmp(out[1], "p3") && !strcmp(out[2], "p2")));
	n = css_redis_platforms(*state, "p4", out, 8);
	assert_int_equal(n, 1);
	assert_string_equal(out[0], "p4");
	/* a short array: the count is still the truth */
	assert_int_equal(css_redis_platforms(*state, "p1", out, 2), 3);
	assert_string_equal(css_route_name(CSS_ROUTE_TAKEOVER), "takeover");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_other_unknown),
		cmocka_unit_test(test_takeover_only_by_the_backup),
		cmocka_unit_test(test_redis_platforms),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
