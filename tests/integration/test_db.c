/* MariaDB client against the sandbox's server: migrations (idempotent, a
 * changed file refused), parameters with NULL and quotes, a batch of 1,000
 * rows in one transaction, all-or-nothing, SQL errors with their text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <confdr/db.h>
#include <confdr/loop.h>

struct ctx {
	struct cdr_loop *loop;
	struct cdr_db *db;
	struct cdr_timer *guard;
	int ups, answers;
	int status;
	unsigned code;
	char error[256];
	uint64_t affected;
	char cell[3][128];
	bool cell_null[3];
	size_t nrows;
};

static const char *env(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v)
		fail_msg("%s is not set: run under the sandbox (eval \"$(deploy/sandbox.sh env)\")", name);
	return v;
}

static struct cdr_db_opts opts(void)
{
	struct cdr_db_opts o = { 0 };

	o.host = env("CONFDR_MYSQL_HOST");
	o.port = atoi(env("CONFDR_MYSQL_PORT"));
	o.user = env("CONFDR_MYSQL_USER");
	o.password = env("CONFDR_MYSQL_PASSWORD");
	o.database = env("CONFDR_P1_MYSQL_DB");
	return o;
}

static void on_state(bool up, const char *why, void *arg)
{
	struct ctx *c = arg;

	if (up) {
		c->ups++;
		cdr_loop_stop(c->loop);
	}
}

static void on_guard(void *arg)
{
	cdr_loop_stop(((struct ctx *)arg)->loop);
}

static void on_result(const struct cdr_db_result *r, void *arg)
{
	struct ctx *c = arg;

	c->answers++;
	c->status = r->status;
	c->code = r->code;
	snprintf(c->error, sizeof(c->error), "%s", r->error ? r->error : "");
	c->affected = r->affected;
	c->nrows = r->nrows;
	for (size_t i = 0; i < 3; i++) {
		const char *v = cdr_db_value(r, 0, i);

		c->cell_null[i] = v == NULL;
		snprintf(c->cell[i], sizeof(c->cell[i]), "%s", v ? v : "");
	}
	cdr_loop_stop(c->loop);
}

static void wait_loop(struct ctx *c, uint64_t ms)
{
	cdr_timer_start(c->guard, ms, false);
	cdr_loop_run(c->loop);
	cdr_timer_stop(c->guard);
}

static void open_db(struct ctx *c)
{
	struct cdr_db_opts o = opts();

	*c = (struct ctx){ 0 };
	o.on_state = on_state;
	o.arg = c;
	assert_int_equal(cdr_loop_new(&c->loop), 0);
	assert_int_equal(cdr_timer_new(c->loop, on_guard, c, &c->guard), 0);
	assert_int_equal(cdr_db_new(c->loop, &o, &c->db), 0);
	wait_loop(c, 10000);
	assert_int_equal(c->ups, 1);
}

static void close_db(struct ctx *c)
{
	c->db = cdr_db_free(c->db);
	c->guard = cdr_timer_free(c->guard);
	c->loop = cdr_loop_free(c->loop);
}

static void exec(struct ctx *c, const char *sql, const struct cdr_db_param *p, size_t n)
{
	int before = c->answers;

	assert_int_equal(cdr_db_exec(c->db, sql, p, n, false, on_result, c), 0);
	wait_loop(c, 10000);
	assert_int_equal(c->answers, before + 1);
}

static void test_migrations_idempotent_and_checked(void **state)
{
	struct cdr_db_opts o = opts();
	char err[512] = "", tmp[64], cmd[512];
	struct ctx c;

	assert_int_equal(cdr_db_migrate_sync(&o, CONFDR_SOURCE_DIR "/deploy/sql", err, sizeof(err)), 0);
	assert_int_equal(cdr_db_migrate_sync(&o, CONFDR_SOURCE_DIR "/deploy/sql", err, sizeof(err)), 0);
	open_db(&c);
	exec(&c, "SELECT COUNT(*) FROM schema_migrations WHERE version = 1", NULL, 0);
	assert_int_equal(c.status, 0);
	assert_string_equal(c.cell[0], "1");
	exec(&c,
	     "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
	     "AND table_name IN ('confinfo', 'conf_template')",
	     NULL, 0);
	assert_string_equal(c.cell[0], "2");
	close_db(&c);

	/* An applied migration whose file changed is refused, with its name. */
	snprintf(tmp, sizeof(tmp), "/tmp/confdr-mig-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(cmd, sizeof(cmd), "cp %s/deploy/sql/*.sql %s/ && echo '-- edited' >> %s/001_init.sql",
		 CONFDR_SOURCE_DIR, tmp, tmp);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(cdr_db_migrate_sync(&o, tmp, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "001_init.sql was changed after it was applied"));
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	assert_int_equal(system(cmd), 0);

	/* A wrong password is reported, not hung on. */
	o.password = "wrong";
	assert_true(cdr_db_migrate_sync(&o, CONFDR_SOURCE_DIR "/deploy/sql", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "Access denied"));
}

static void test_parameters_nulls_quotes_and_errors(void **state)
{
	struct ctx c;
	const char *tricky = "it's a \"test\" \\ with ? and ; DROP TABLE x; --";

	open_db(&c);
	exec(&c, "CREATE TABLE IF NOT EXISTS test_db_params (k VARCHAR(64) PRIMARY KEY, v TEXT NULL, n BIGINT)", NULL,
	     0);
	exec(&c, "DELETE FROM test_db_params", NULL, 0);
	struct cdr_db_param p[] = { CDR_DB_STR("a"), CDR_DB_STR(tricky), CDR_DB_INT(-9007199254740993LL) };
	exec(&c, "INSERT INTO test_db_params (k, v, n) VALUES (?, ?, ?)", p, 3);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.affected, 1);
	struct cdr_db_param q[] = { CDR_DB_STR("b"), CDR_DB_NULL, CDR_DB_INT(7) };
	exec(&c, "INSERT INTO test_db_params (k, v, n) VALUES (?, ?, ?)", q, 3);
	struct cdr_db_param ka[] = { CDR_DB_STR("a") };
	exec(&c, "SELECT k, v, n FROM test_db_params WHERE k = ?", ka, 1);
	assert_int_equal(c.nrows, 1);
	assert_string_equal(c.cell[1], tricky);
	assert_string_equal(c.cell[2], "-9007199254740993");
	struct cdr_db_param kb[] = { CDR_DB_STR("b") };
	exec(&c, "SELECT k, v, n FROM test_db_params WHERE k = ?", kb, 1);
	assert_true(c.cell_null[1]);
	/* SQL errors come back with the server's text and code */
	exec(&c, "INSERT INTO test_db_params (k, v, n) VALUES (?, ?, ?)", p, 3);
	assert_int_equal(c.status, -EIO);
	assert_int_equal(c.code, 1062);
	assert_non_null(strstr(c.error, "Duplicate entry"));
	exec(&c, "SELEC 1", NULL, 0);
	assert_int_equal(c.status, -EIO);
	assert_non_null(strstr(c.error, "SQL syntax"));
	/* parameter count must match */
	assert_int_equal(cdr_db_exec(c.db, "SELECT ?, ?", ka, 1, false, on_result, &c), -EINVAL);
	assert_int_equal(cdr_db_exec(c.db, "SELECT 1", ka, 1, false, on_result, &c), -EINVAL);
	exec(&c, "DROP TABLE test_db_params", NULL, 0);
	close_db(&c);
}

#define N_BATCH 1000

static void test_batch_is_one_transaction(void **state)
{
	struct ctx c;
	char **sqls = calloc(N_BATCH + 1, sizeof(char *));

	open_db(&c);
	exec(&c, "CREATE TABLE IF NOT EXISTS test_db_batch (id INT PRIMARY KEY) ENGINE=InnoDB", NULL, 0);
	exec(&c, "DELETE FROM test_db_batch", NULL, 0);
	for (int i = 0; i < N_BATCH; i++) {
		sqls[i] = malloc(64);
		snprintf(sqls[i], 64, "INSERT INTO test_db_batch (id) VALUES (%d)", i);
	}
	assert_int_equal(cdr_db_exec_batch(c.db, (const char *const *)sqls, N_BATCH, on_result, &c), 0);
	wait_loop(&c, 30000);
	assert_int_equal(c.status, 0);
	exec(&c, "SELECT COUNT(*) FROM test_db_batch", NULL, 0);
	assert_string_equal(c.cell[0], "1000");
	/* a failing statement rolls the whole batch back */
	free(sqls[N_BATCH - 1]);
	sqls[N_BATCH - 1] = strdup("INSERT INTO test_db_batch (id) VALUES (5)"); /* duplicate */
	for (int i = 0; i < N_BATCH - 1; i++)
		snprintf(sqls[i], 64, "INSERT INTO test_db_batch (id) VALUES (%d)", N_BATCH + i);
	assert_int_equal(cdr_db_exec_batch(c.db, (const char *const *)sqls, N_BATCH, on_result, &c), 0);
	wait_loop(&c, 30000);
	assert_int_equal(c.status, -EIO);
	exec(&c, "SELECT COUNT(*) FROM test_db_batch", NULL, 0);
	assert_string_equal(c.cell[0], "1000");
	exec(&c, "DROP TABLE test_db_batch", NULL, 0);
	for (int i = 0; i < N_BATCH; i++)
		free(sqls[i]);
	free(sqls);
	close_db(&c);
}

static void test_free_cancels_queued_jobs(void **state)
{
	struct ctx c;
	int before;

	open_db(&c);
	before = c.answers;
	for (int i = 0; i < 50; i++)
		assert_int_equal(cdr_db_exec(c.db, "SELECT SLEEP(0.01)", NULL, 0, true, on_result, &c), 0);
	c.db = cdr_db_free(c.db);
	/* every job answered exactly once: done or -ECANCELED */
	assert_int_equal(c.answers - before, 50);
	close_db(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrations_idempotent_and_checked),
		cmocka_unit_test(test_parameters_nulls_quotes_and_errors),
		cmocka_unit_test(test_batch_is_one_transaction),
		cmocka_unit_test(test_free_cancels_queued_jobs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
