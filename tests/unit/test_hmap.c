/* The string hash map: put, replace, get, delete, growth past many
 * rebuilds, iteration visiting each entry once, deletion while iterating. */
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

#define N 20000

static void test_basic(void **state)
{
	struct cdr_hmap *m = cdr_hmap_new();
	int a = 1, b = 2;
	char k1[] = "alpha", k2[] = "alpha";

	(void)state;
	assert_non_null(m);
	assert_null(cdr_hmap_get(m, "alpha"));
	assert_int_equal(cdr_hmap_put(m, k1, &a), 0);
	assert_ptr_equal(cdr_hmap_get(m, "alpha"), &a);
	assert_int_equal(cdr_hmap_put(m, k2, &b), 0); /* replaces */
	assert_int_equal(cdr_hmap_count(m), 1);
	assert_ptr_equal(cdr_hmap_get(m, "alpha"), &b);
	assert_int_not_equal(cdr_hmap_put(m, "x", NULL), 0);
	assert_ptr_equal(cdr_hmap_del(m, "alpha"), &b);
	assert_null(cdr_hmap_del(m, "alpha"));
	assert_int_equal(cdr_hmap_count(m), 0);
	assert_null(cdr_hmap_get(m, NULL));
	cdr_hmap_free(m);
}

static void test_many_and_iterate(void **state)
{
	struct cdr_hmap *m = cdr_hmap_new();
	static char keys[N][16];
	static int vals[N], seen[N];
	size_t it = 0, n = 0;
	const char *k;
	void *v;

	(void)state;
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		vals[i] = i;
		assert_int_equal(cdr_hmap_put(m, keys[i], &vals[i]), 0);
	}
	assert_int_equal(cdr_hmap_count(m), N);
	/* delete every third, then put them back: tombstones are reused or
	 * cleared, nothing is lost */
	for (int i = 0; i < N; i += 3)
		assert_ptr_equal(cdr_hmap_del(m, keys[i]), &vals[i]);
	for (int i = 0; i < N; i++)
		assert_true((i % 3 == 0) == (cdr_hmap_get(m, keys[i]) == NULL));
	for (int i = 0; i < N; i += 3)
		assert_int_equal(cdr_hmap_put(m, keys[i], &vals[i]), 0);
	while (cdr_hmap_next(m, &it, &k, &v)) {
		int i = *(int *)v;

		assert_string_equal(k, keys[i]);
		seen[i]++;
		n++;
	}
	assert_int_equal(n, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	/* delete the odd ones during an iteration: each entry still visited once */
	it = 0;
	n = 0;
	while (cdr_hmap_next(m, &it, &k, &v)) {
		n++;
		if (*(int *)v % 2)
			cdr_hmap_del_at(m, &it);
	}
	assert_int_equal(n, N);
	assert_int_equal(cdr_hmap_count(m), N / 2);
	assert_null(cdr_hmap_get(m, "k1"));
	assert_ptr_equal(cdr_hmap_get(m, "k2"), &vals[2]);
	/* churn: many put/del cycles must not grow without bound or lose entries */
	for (int round = 0; round < 20; round++) {
		for (int i = 1; i < N; i += 2)
			assert_int_equal(cdr_hmap_put(m, keys[i], &vals[i]), 0);
		for (int i = 1; i < N; i += 2)
			assert_ptr_equal(cdr_hmap_del(m, keys[i]), &vals[i]);
	}
	assert_int_equal(cdr_hmap_count(m), N / 2);
	cdr_hmap_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_many_and_iterate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
