/* The DR drills' verdict (src/tools/confdrctl/drill_verdict.c): restored,
 * lost, ended on purpose, duplicates, running but closed, stuck in a
 * switched room, misplaced, the examples and restore times, the settle rule
 * and progress line, the snapshot's JSON both ways, and Redis against MySQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <stdbool.h>

#include <confdr/hmap.h>

#include "tools/confdrctl/drill_verdict.h"

static void add(struct drill_set *s, const char *e, const char *mcu, const char *room, int64_t started)
{
	assert_int_equal(drill_set_add(s, e, mcu, room, "p1", "p1", started), 0);
}

static json_t *field(const struct drill_verdict *v, const char *path1, const char *path2)
{
	json_t *x = json_object_get(v->json, path1);

	return path2 ? json_object_get(x, path2) : x;
}

static bool in_p1_r1(const char *room, void *arg)
{
	(void)arg;
	return strcmp(room, "p1-r1") == 0;
}

/* Five conferences before an MCU failure: one stays, two restored (one of
 * them to the wrong room), one ended on purpose, one lost. */
static void test_mcu_failure(void **state)
{
	struct drill_set before = { 0 }, now = { 0 };
	struct cdr_hmap *closed = cdr_hmap_new();
	struct drill_verdict v;
	char line[256];
	int yes = 1;

	(void)state;
	add(&before, "100", "mcu-a", "p1-r1", 10);
	add(&before, "101", "mcu-b", "p1-r1", 11);
	add(&before, "102", "mcu-b", "p1-r1", 12);
	add(&before, "103", "mcu-b", "p1-r1", 13);
	add(&before, "104", "mcu-b", "p1-r1", 14);
	add(&now, "100", "mcu-a", "p1-r1", 10);
	add(&now, "102", "mcu-c", "p1-r2", 902);
	add(&now, "101", "mcu-a", "p1-r1", 901);
	assert_int_equal(cdr_hmap_put(closed, "p1:103", &yes), 0);
	assert_int_equal(cdr_hmap_put(closed, "p2:104", &yes), 0); /* another platform's row: not this one's */

	assert_int_equal(drill_verdict(&before, &now, closed, NULL, in_p1_r1, NULL, &v), 0);
	assert_int_equal(v.running_before, 5);
	assert_int_equal(v.running_after, 3);
	assert_int_equal(v.running_once, 3);
	assert_int_equal(v.restored, 2);
	assert_int_equal(v.misplaced, 1);
	assert_int_equal(v.ended_on_purpose, 1);
	assert_int_equal(v.lost, 1);
	assert_int_equal(v.duplicates, 0);
	assert_int_equal(v.running_but_closed, 0);
	assert_int_equal(v.stuck_in_room, 0);
	assert_false(drill_verdict_calm(&v));
	assert_int_equal(json_integer_value(field(&v, "restored_to", "p1-r1")), 1);
	assert_int_equal(json_integer_value(field(&v, "restored_to", "p1-r2")), 1);
	assert_string_equal(json_string_value(json_array_get(field(&v, "examples", "lost"), 0)), "104");
	assert_int_equal(json_array_size(field(&v, "restored_started", NULL)), 2);
	assert_int_equal(json_integer_value(json_array_get(field(&v, "restored_started", NULL), 0)), 901);
	assert_int_equal(json_integer_value(json_array_get(field(&v, "restored_started", NULL), 1)), 902);
	assert_int_equal(json_integer_value(field(&v, "lost", NULL)), 1);
	drill_verdict_line(&v, line, sizeof(line));
	assert_string_equal(line, "running once 3/5, missing 1, closed 1, duplicates 0, running but closed 0");
	drill_verdict_clear(&v);

	/* Without an expected room nothing is misplaced; the lost one back: calm. */
	add(&now, "104", "mcu-a", "p1-r1", 904);
	assert_int_equal(drill_verdict(&before, &now, closed, NULL, NULL, NULL, &v), 0);
	assert_int_equal(v.misplaced, 0);
	assert_int_equal(v.lost, 0);
	assert_int_equal(v.restored, 3);
	assert_true(drill_verdict_calm(&v));
	drill_verdict_clear(&v);
	cdr_hmap_free(closed);
	drill_set_clear(&before);
	drill_set_clear(&now);
}

/* An E164 on two MCUs is a duplicate, neither restored nor lost; one closed
 * but running is counted; after a room switch, one left in the room is stuck. */
static void test_duplicates_closed_stuck(void **state)
{
	struct drill_set before = { 0 }, now = { 0 };
	struct cdr_hmap *closed = cdr_hmap_new();
	struct drill_verdict v;
	char line[256];
	json_t *d;
	int yes = 1;

	(void)state;
	add(&before, "200", "mcu-a", "p1-r1", 1);
	add(&before, "201", "mcu-a", "p1-r1", 1);
	add(&before, "202", "mcu-a", "p1-r1", 1);
	add(&before, "203", "mcu-z", "p1-r2", 1);
	add(&now, "200", "mcu-a", "p1-r1", 1);
	add(&now, "200", "mcu-c", "p1-r2", 5);
	add(&now, "201", "mcu-a", "p1-r1", 1);
	add(&now, "202", "mcu-c", "p1-r2", 7);
	add(&now, "203", "mcu-z", "p1-r2", 1);
	add(&now, "999", "mcu-c", "p1-r2", 1); /* new since: counted after, judged never */
	assert_int_equal(cdr_hmap_put(closed, "p1:201", &yes), 0);

	assert_int_equal(drill_verdict(&before, &now, closed, "p1-r1", NULL, NULL, &v), 0);
	assert_int_equal(v.running_after, 5);
	assert_int_equal(v.duplicates, 1);
	assert_int_equal(v.running_once, 3);
	assert_int_equal(v.restored, 1); /* 202 */
	assert_int_equal(v.lost, 0);
	assert_int_equal(v.running_but_closed, 1);
	assert_int_equal(v.stuck_in_room, 2); /* 200 (one copy still in p1-r1) and 201 */
	assert_false(drill_verdict_calm(&v));
	d = json_array_get(field(&v, "examples", "duplicates"), 0);
	assert_string_equal(json_string_value(json_object_get(d, "e164")), "200");
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "mcus"), 0)), "mcu-a");
	assert_string_equal(json_string_value(json_array_get(json_object_get(d, "mcus"), 1)), "mcu-c");
	assert_string_equal(json_string_value(json_array_get(field(&v, "examples", "running_but_closed"), 0)), "201");
	drill_verdict_line(&v, line, sizeof(line));
	assert_string_equal(line, "running once 3/4, missing 0, closed 0, duplicates 1, running but closed 1, "
				  "still in the room 2");
	drill_verdict_clear(&v);
	cdr_hmap_free(closed);
	drill_set_clear(&before);
	drill_set_clear(&now);
}

/* Examples stop at five; nothing before and nothing now is calm. */
static void test_examples_bounded_and_empty(void **state)
{
	struct drill_set before = { 0 }, now = { 0 };
	struct drill_verdict v;
	char e[16];

	(void)state;
	assert_int_equal(drill_verdict(&before, &now, NULL, NULL, NULL, NULL, &v), 0);
	assert_true(drill_verdict_calm(&v));
	assert_int_equal(json_object_size(field(&v, "restored_to", NULL)), 0);
	drill_verdict_clear(&v);
	for (int i = 0; i < 12; i++) {
		snprintf(e, sizeof(e), "3%02d", i);
		add(&before, e, "mcu-a", "p1-r1", 1);
	}
	assert_int_equal(drill_verdict(&before, &now, NULL, NULL, NULL, NULL, &v), 0);
	assert_int_equal(v.lost, 12);
	assert_int_equal(json_array_size(field(&v, "examples", "lost")), 5);
	assert_string_equal(json_string_value(json_array_get(field(&v, "examples", "lost"), 0)), "300");
	drill_verdict_clear(&v);
	drill_set_clear(&before);
}

/* The snapshot's JSON both ways; a bad element refused; the ACKed check. */
static void test_set_json(void **state)
{
	struct drill_set s = { 0 }, back = { 0 };
	json_t *a, *acked;
	char err[128];
	size_t missing;

	(void)state;
	assert_int_equal(drill_set_add(&s, "400", "mcu-a", "p1-r1", "p1", "p2", 77), 0);
	assert_int_equal(drill_set_add(&s, "401", "mcu-b", "p1-r2", "p1", "", -1), 0);
	a = drill_set_to_json(&s);
	assert_non_null(a);
	assert_true(json_is_null(json_object_get(json_array_get(a, 1), "s")));
	assert_int_equal(drill_set_from_json(a, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.v[0].home, "p2");
	assert_int_equal(back.v[0].started_ms, 77);
	assert_int_equal(back.v[1].started_ms, -1);
	drill_set_clear(&back);
	json_object_del(json_array_get(a, 0), "m");
	assert_int_not_equal(drill_set_from_json(a, &back, err, sizeof(err)), 0);
	assert_string_equal(err, "element 0 is not {e, m, s, r, p, h}");
	assert_int_equal(back.n, 0);
	json_decref(a);

	acked = json_pack("[s, s]", "400", "401");
	assert_int_equal(drill_set_has_all(&s, acked, &missing), 0);
	assert_int_equal(missing, 0);
	json_array_append_new(acked, json_string("402"));
	assert_int_equal(drill_set_has_all(&s, acked, &missing), 0);
	assert_int_equal(missing, 1);
	json_array_append_new(acked, json_integer(5));
	assert_int_not_equal(drill_set_has_all(&s, acked, &missing), 0);
	json_decref(acked);
	drill_set_clear(&s);
}

/* Redis against MySQL: agreement, each kind of mismatch, examples in order. */
static void test_compare(void **state)
{
	struct cdr_hmap *r = cdr_hmap_new(), *m = cdr_hmap_new();
	json_t *o, *ex;

	(void)state;
	cdr_hmap_put(r, "500", "mcu-a");
	cdr_hmap_put(m, "500", "mcu-a");
	cdr_hmap_put(r, "501", "");
	cdr_hmap_put(m, "501", "");
	o = drill_compare("p1", "redis-p1", r, m);
	assert_int_equal(json_integer_value(json_object_get(o, "mismatches")), 0);
	assert_int_equal(json_integer_value(json_object_get(o, "redis_open")), 2);
	assert_int_equal(json_array_size(json_object_get(o, "examples")), 0);
	json_decref(o);

	cdr_hmap_put(r, "503", "mcu-b");
	cdr_hmap_put(r, "502", "mcu-b");
	cdr_hmap_put(m, "504", "mcu-c");
	cdr_hmap_put(m, "500", "mcu-z");
	o = drill_compare("p2", "redis-p2-replica", r, m);
	assert_string_equal(json_string_value(json_object_get(o, "platform")), "p2");
	assert_string_equal(json_string_value(json_object_get(o, "redis")), "redis-p2-replica");
	assert_int_equal(json_integer_value(json_object_get(o, "redis_open")), 4);
	assert_int_equal(json_integer_value(json_object_get(o, "mysql_open")), 3);
	assert_int_equal(json_integer_value(json_object_get(o, "only_in_redis")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "only_in_mysql")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "different_mcu")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "mismatches")), 4);
	ex = json_object_get(o, "examples");
	assert_int_equal(json_array_size(ex), 4);
	assert_string_equal(json_string_value(json_array_get(ex, 0)), "only in Redis: 502");
	assert_string_equal(json_string_value(json_array_get(ex, 1)), "only in Redis: 503");
	assert_string_equal(json_string_value(json_array_get(ex, 2)), "only in MySQL: 504");
	assert_string_equal(json_string_value(json_array_get(ex, 3)), "MCU differs: 500 Redis mcu-a, MySQL mcu-z");
	json_decref(o);
	cdr_hmap_free(r);
	cdr_hmap_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mcu_failure),
		cmocka_unit_test(test_duplicates_closed_stuck),
		cmocka_unit_test(test_examples_bounded_and_empty),
		cmocka_unit_test(test_set_json),
		cmocka_unit_test(test_compare),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
