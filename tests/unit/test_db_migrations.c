/* Reading the migration files: order, checksums, bad names refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <confdr/db.h>

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Empties the directory between tests. */
static void remove_all(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -f '%s'/*.sql", dir);
	assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/confdr-mig-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void test_sorted_with_checksums(void **state)
{
	struct cdr_db_migration *m;
	size_t n;
	char err[256];

	put("010_later.sql", "SELECT 10;");
	put("002_second.sql", "SELECT 2;");
	put("001_first.sql", "SELECT 1;");
	assert_int_equal(cdr_db_migrations_read(dir, &m, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_int_equal(m[0].version, 1);
	assert_string_equal(m[0].name, "001_first.sql");
	assert_string_equal(m[0].sql, "SELECT 1;");
	assert_int_equal(m[1].version, 2);
	assert_int_equal(m[2].version, 10);
	/* the checksum follows the contents */
	assert_true(m[0].checksum != m[1].checksum);
	cdr_db_migrations_free(m, n);
	remove_all();
}

static void test_checksum_is_fnv1a_of_the_contents(void **state)
{
	struct cdr_db_migration *m;
	size_t n;
	char err[256];

	put("001_a.sql", "a");
	put("002_b.sql", "a");
	put("003_c.sql", "");
	assert_int_equal(cdr_db_migrations_read(dir, &m, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	/* FNV-1a 64 test vectors: "a" and the empty string */
	assert_true(m[0].checksum == 0xaf63dc4c8601ec8cULL);
	assert_true(m[1].checksum == m[0].checksum); /* the name does not count */
	assert_true(m[2].checksum == 0xcbf29ce484222325ULL);
	cdr_db_migrations_free(m, n);
	remove_all();
}

static void test_hidden_files_ignored_and_empty_dir(void **state)
{
	struct cdr_db_migration *m = NULL;
	size_t n = 99;
	char err[256], sub[128], path[256];

	snprintf(sub, sizeof(sub), "%s/empty", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/.001_editor_swap.sql", sub);
	fclose(fopen(path, "w"));
	assert_int_equal(cdr_db_migrations_read(sub, &m, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	cdr_db_migrations_free(m, n);
	unlink(path);
	rmdir(sub);
	/* a missing directory is -ENOENT, with its path */
	assert_int_equal(cdr_db_migrations_read("/nonexistent/sql", &m, &n, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/sql"));
}

static void expect_refused(const char *name, const char *want)
{
	struct cdr_db_migration *m = NULL;
	size_t n = 0;
	char err[256] = "", path[256];

	put(name, "SELECT 0;");
	assert_int_equal(cdr_db_migrations_read(dir, &m, &n, err, sizeof(err)), -22);
	assert_non_null(strstr(err, want));
	assert_null(m);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

static void test_bad_names_and_duplicates_refused(void **state)
{
	expect_refused("1_short.sql", "1_short.sql: not a migration name");
	expect_refused("003_no_extension", "not a migration name");
	expect_refused("000_zero.sql", "not a migration name");
	expect_refused("004_it's.sql", "not a migration name");
	expect_refused("005_Upper.sql", "not a migration name");
	expect_refused("006_.sql", "not a migration name");
	expect_refused("0007_four_digits.sql", "not a migration name");
	expect_refused("008 space.sql", "not a migration name");
	put("002_second.sql", "SELECT 2;");
	expect_refused("002_again.sql", "have the same version");
	remove_all();
}

static void test_the_shipped_migrations_read(void **state)
{
	struct cdr_db_migration *m;
	size_t n;
	char err[256];

	assert_int_equal(cdr_db_migrations_read(CONFDR_SOURCE_DIR "/deploy/sql", &m, &n, err, sizeof(err)), 0);
	assert_true(n >= 1);
	/* numbered from 001 without gaps, so a missing file is noticed */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(m[i].version, i + 1);
	assert_non_null(strstr(m[0].sql, "CREATE TABLE IF NOT EXISTS confinfo"));
	assert_non_null(strstr(m[0].sql, "CREATE TABLE IF NOT EXISTS conf_template"));
	cdr_db_migrations_free(m, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sorted_with_checksums),
		cmocka_unit_test(test_checksum_is_fnv1a_of_the_contents),
		cmocka_unit_test(test_hidden_files_ignored_and_empty_dir),
		cmocka_unit_test(test_bad_names_and_duplicates_refused),
		cmocka_unit_test(test_the_shipped_migrations_read),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
