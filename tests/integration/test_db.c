/* MariaDB client against the sandbox's server: migrations (idempotent, each
 * in a transaction, a changed file refused), parameters with NULL, quotes and
 * long values, a batch of 1,000 rows in one transaction (all or nothing), SQL
 * errors with their text, a killed connection (idempotent jobs retried, the
 * others failed), a server that is not there, free cancelling jobs. */
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
	int ups, downs, answers, cancelled;
	bool up;
	char why[256];
	int status;
	unsigned code;
	char error[256];
	uint64_t affected, insert_id;
	char cell[3][512];
	bool cell_null[3];
	size_t nrows, ncols;
	bool waiting, wait_up; /* inside wait_state() */
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
	o.tls_ca = getenv("CONFDR_TLS_CA"); /* set: the sandbox's MariaDB is TLS-only over TCP */
	o.reconnect_min_ms = 50;
	o.reconnect_max_ms = 500;
	return o;
}

static void on_state(bool up, const char *why, void *arg)
{
	struct ctx *c = arg;

	c->up = up;
	snprintf(c->why, sizeof(c->why), "%s", why);
	if (up)
		c->ups++;
	else
		c->downs++;
	if (c->waiting && c->wait_up == up)
		cdr_loop_stop(c->loop);
}

static void on_guard(void *arg)
{
	cdr_loop_stop(((struct ctx *)arg)->loop);
}

static void on_result(const struct cdr_db_result *r, void *arg)
{
	struct ctx *c = arg;

	c->answers++;
	if (r->status == -ECANCELED)
		c->cancelled++;
	c->status = r->status;
	c->code = r->code;
	snprintf(c->error, sizeof(c->error), "%s", r->error ? r->error : "");
	c->affected = r->affected;
	c->insert_id = r->insert_id;
	c->nrows = r->nrows;
	c->ncols = r->ncols;
	for (size_t i = 0; i < 3; i++) {
		const char *v = cdr_db_value(r, 0, i);

		c->cell_null[i] = v == NULL;
		snprintf(c->cell[i], sizeof(c->cell[i]), "%s", v ? v : "");
	}
	cdr_loop_stop(c->loop);
}

/* Runs the loop until a callback stops it or ms pass. */
static void wait_loop(struct ctx *c, uint64_t ms)
{
	cdr_timer_start(c->guard, ms, false);
	cdr_loop_run(c->loop);
	cdr_timer_stop(c->guard);
}

static void wait_state(struct ctx *c, bool up, uint64_t ms)
{
	c->wait_up = up;
	c->waiting = true;
	if (c->up != up || (!up && c->downs == 0))
		wait_loop(c, ms);
	c->waiting = false;
	assert_int_equal(c->up, up);
}

static void open_db_with(struct ctx *c, struct cdr_db_opts *o)
{
	*c = (struct ctx){ 0 };
	o->on_state = on_state;
	o->arg = c;
	assert_int_equal(cdr_loop_new(&c->loop), 0);
	assert_int_equal(cdr_timer_new(c->loop, on_guard, c, &c->guard), 0);
	assert_int_equal(cdr_db_new(c->loop, o, &c->db), 0);
}

static void open_db(struct ctx *c)
{
	struct cdr_db_opts o = opts();

	open_db_with(c, &o);
	wait_state(c, true, 10000);
	assert_int_equal(c->ups, 1);
}

static void close_db(struct ctx *c)
{
	c->db = cdr_db_free(c->db);
	c->guard = cdr_timer_free(c->guard);
	c->loop = cdr_loop_free(c->loop);
}

static void exec_as(struct ctx *c, bool idempotent, const char *sql, const struct cdr_db_param *p, size_t n)
{
	int before = c->answers;

	assert_int_equal(cdr_db_exec(c->db, sql, p, n, idempotent, on_result, c), 0);
	wait_loop(c, 10000);
	assert_int_equal(c->answers, before + 1);
}

static void exec(struct ctx *c, const char *sql, const struct cdr_db_param *p, size_t n)
{
	exec_as(c, false, sql, p, n);
}

static void shell(const char *fmt, const char *a, const char *b)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), fmt, a, b);
	assert_int_equal(system(cmd), 0);
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_migrations_idempotent_and_checked(void **state)
{
	struct cdr_db_opts o = opts();
	char err[512] = "", tmp[64], path[128], first_applied[512];
	struct ctx c;

	assert_int_equal(cdr_db_migrate_sync(&o, CONFDR_SOURCE_DIR "/deploy/sql", err, sizeof(err)), 0);
	open_db(&c);
	exec(&c, "SELECT COUNT(*), MAX(applied_at) FROM schema_migrations WHERE version = 1", NULL, 0);
	assert_int_equal(c.status, 0);
	assert_string_equal(c.cell[0], "1");
	snprintf(first_applied, sizeof(first_applied), "%s", c.cell[1]);
	/* the second run is a no-op: nothing re-applied or re-recorded */
	assert_int_equal(cdr_db_migrate_sync(&o, CONFDR_SOURCE_DIR "/deploy/sql", err, sizeof(err)), 0);
	exec(&c, "SELECT COUNT(*), MAX(applied_at) FROM schema_migrations WHERE version = 1", NULL, 0);
	assert_string_equal(c.cell[0], "1");
	assert_string_equal(c.cell[1], first_applied);
	exec(&c,
	     "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
	     "AND table_name IN ('confinfo', 'conf_template')",
	     NULL, 0);
	assert_string_equal(c.cell[0], "2");

	/* A copy of the migrations with test-only ones (high versions). */
	snprintf(tmp, sizeof(tmp), "/tmp/confdr-mig-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	shell("cp %s/deploy/sql/*.sql %s/", CONFDR_SOURCE_DIR, tmp);
	put_file(tmp, "900_test_only.sql",
		 "-- test\nCREATE TABLE IF NOT EXISTS test_db_mig (id INT PRIMARY KEY) ENGINE=InnoDB;\n");
	assert_int_equal(cdr_db_migrate_sync(&o, tmp, err, sizeof(err)), 0);
	exec(&c, "SELECT name, checksum FROM schema_migrations WHERE version = 900", NULL, 0);
	assert_string_equal(c.cell[0], "900_test_only.sql");
	assert_int_equal(strlen(c.cell[1]), 16);

	/* A failing migration is rolled back (its rows too) and not recorded. */
	put_file(tmp, "901_broken.sql",
		 "INSERT INTO test_db_mig (id) VALUES (1);\nINSERT INTO test_db_mig (id) VALUES (no_such_column);\n");
	assert_int_equal(cdr_db_migrate_sync(&o, tmp, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "901_broken.sql"));
	assert_non_null(strstr(err, "no_such_column"));
	exec(&c, "SELECT COUNT(*) FROM test_db_mig", NULL, 0);
	assert_string_equal(c.cell[0], "0");
	exec(&c, "SELECT COUNT(*) FROM schema_migrations WHERE version = 901", NULL, 0);
	assert_string_equal(c.cell[0], "0");
	snprintf(path, sizeof(path), "%s/901_broken.sql", tmp);
	assert_int_equal(unlink(path), 0);

	/* An applied migration whose file changed is refused, by name, and
	 * nothing else is applied. */
	shell("echo '-- edited' >> %s/001_init.sql%s", tmp, "");
	put_file(tmp, "902_not_yet.sql", "CREATE TABLE test_db_mig2 (id INT);\n");
	assert_int_equal(cdr_db_migrate_sync(&o, tmp, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "001_init.sql was changed after it was applied"));
	exec(&c, "SELECT COUNT(*) FROM schema_migrations WHERE version = 902", NULL, 0);
	assert_string_equal(c.cell[0], "0");
	shell("rm -rf %s%s", tmp, "");

	/* A bad file name is refused before connecting. */
	assert_int_equal(cdr_db_migrate_sync(&o, "/nonexistent/confdr", err, sizeof(err)), -ENOENT);

	exec(&c, "DROP TABLE test_db_mig", NULL, 0);
	assert_int_equal(c.status, 0);
	exec(&c, "DELETE FROM schema_migrations WHERE version >= 900", NULL, 0);
	assert_int_equal(c.status, 0);
	close_db(&c);

	/* A wrong password is reported, not hung on. */
	o.password = "wrong";
	assert_int_equal(cdr_db_migrate_sync(&o, CONFDR_SOURCE_DIR "/deploy/sql", err, sizeof(err)), -ECONNREFUSED);
	assert_non_null(strstr(err, "Access denied"));
}

static void test_parameters_nulls_quotes_and_errors(void **state)
{
	struct ctx c;
	const char *tricky = "it's a \"test\" \\ with ? and ; DROP TABLE x; --";
	char longv[400];

	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	longv[0] = '\'';
	open_db(&c);
	exec(&c,
	     "CREATE TABLE IF NOT EXISTS test_db_params (id INT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(64) UNIQUE, "
	     "v TEXT NULL, n BIGINT)",
	     NULL, 0);
	assert_int_equal(c.status, 0);
	exec(&c, "DELETE FROM test_db_params", NULL, 0);
	struct cdr_db_param p[] = { CDR_DB_STR("a"), CDR_DB_STR(tricky), CDR_DB_INT(-9007199254740993LL) };
	exec(&c, "INSERT INTO test_db_params (k, v, n) VALUES (?, ?, ?)", p, 3);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.affected, 1);
	assert_true(c.insert_id > 0);
	uint64_t first_id = c.insert_id;
	struct cdr_db_param q[] = { CDR_DB_STR("b"), CDR_DB_NULL, CDR_DB_INT(7) };
	exec(&c, "INSERT INTO test_db_params (k, v, n) VALUES (?, ?, ?)", q, 3);
	assert_int_equal(c.insert_id, first_id + 1);
	struct cdr_db_param l[] = { CDR_DB_STR("long"), CDR_DB_STR(longv), CDR_DB_NULL };
	exec(&c, "INSERT INTO test_db_params (k, v, n) VALUES (?, ?, ?)", l, 3);
	assert_int_equal(c.status, 0);

	struct cdr_db_param ka[] = { CDR_DB_STR("a") };
	exec(&c, "SELECT k, v, n FROM test_db_params WHERE k = ?", ka, 1);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.nrows, 1);
	assert_int_equal(c.ncols, 3);
	assert_string_equal(c.cell[0], "a");
	assert_string_equal(c.cell[1], tricky);
	assert_string_equal(c.cell[2], "-9007199254740993");
	struct cdr_db_param kb[] = { CDR_DB_STR("b") };
	exec(&c, "SELECT k, v, n FROM test_db_params WHERE k = ?", kb, 1);
	assert_true(c.cell_null[1]);
	assert_string_equal(c.cell[2], "7");
	/* a value longer than the first fetch buffer comes back whole */
	struct cdr_db_param kl[] = { CDR_DB_STR("long") };
	exec(&c, "SELECT k, v, n FROM test_db_params WHERE k = ?", kl, 1);
	assert_string_equal(c.cell[1], longv);
	assert_true(c.cell_null[2]);
	/* the same rows through the text protocol */
	exec(&c, "SELECT k, v, n FROM test_db_params WHERE k = 'b'", NULL, 0);
	assert_int_equal(c.nrows, 1);
	assert_true(c.cell_null[1]);
	/* NULL compared with = matches nothing; no rows is not an error */
	struct cdr_db_param kn[] = { CDR_DB_NULL };
	exec(&c, "SELECT k FROM test_db_params WHERE v = ?", kn, 1);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.nrows, 0);
	assert_true(c.cell_null[0]);
	/* a '?' inside a literal or a comment is not a parameter */
	exec(&c, "SELECT '?', ? /* ? */ -- ?\n", kb, 1);
	assert_string_equal(c.cell[0], "?");
	assert_string_equal(c.cell[1], "b");

	/* SQL errors come back with the server's code and text */
	exec(&c, "INSERT INTO test_db_params (k, v, n) VALUES (?, ?, ?)", p, 3);
	assert_int_equal(c.status, -EIO);
	assert_int_equal(c.code, 1062);
	assert_non_null(strstr(c.error, "Duplicate entry"));
	exec(&c, "SELEC 1", NULL, 0);
	assert_int_equal(c.status, -EIO);
	assert_int_equal(c.code, 1064);
	assert_non_null(strstr(c.error, "SQL syntax"));
	exec(&c, "SELECT nope FROM test_db_params WHERE k = ?", ka, 1);
	assert_int_equal(c.status, -EIO);
	assert_non_null(strstr(c.error, "Unknown column 'nope'"));
	/* the parameter count must match */
	assert_int_equal(cdr_db_exec(c.db, "SELECT ?, ?", ka, 1, false, on_result, &c), -EINVAL);
	assert_int_equal(cdr_db_exec(c.db, "SELECT 1", ka, 1, false, on_result, &c), -EINVAL);
	assert_int_equal(cdr_db_exec(c.db, NULL, NULL, 0, false, on_result, &c), -EINVAL);
	exec(&c, "DROP TABLE test_db_params", NULL, 0);
	assert_int_equal(c.status, 0);
	close_db(&c);
}

#define N_BATCH 1000

static void test_batch_is_one_transaction(void **state)
{
	struct ctx c;
	struct cdr_db_stmt *stmts = calloc(N_BATCH, sizeof(*stmts));
	struct cdr_db_param(*params)[2] = calloc(N_BATCH, sizeof(*params));
	char(*names)[32] = calloc(N_BATCH, sizeof(*names));

	assert_non_null(stmts);
	assert_non_null(params);
	assert_non_null(names);
	open_db(&c);
	exec(&c, "CREATE TABLE IF NOT EXISTS test_db_batch (id INT PRIMARY KEY, name VARCHAR(32)) ENGINE=InnoDB", NULL,
	     0);
	exec(&c, "DELETE FROM test_db_batch", NULL, 0);
	for (int i = 0; i < N_BATCH; i++) {
		snprintf(names[i], sizeof(names[i]), "conf '%d'", i);
		params[i][0] = CDR_DB_INT(i);
		params[i][1] = CDR_DB_STR(names[i]);
		stmts[i] = (struct cdr_db_stmt){ "INSERT INTO test_db_batch (id, name) VALUES (?, ?)", params[i], 2 };
	}
	assert_int_equal(cdr_db_exec_batch(c.db, stmts, N_BATCH, false, on_result, &c), 0);
	/* everything was copied: the caller's memory may change at once */
	memset(names, 0, N_BATCH * sizeof(*names));
	wait_loop(&c, 60000);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.affected, 1);
	exec(&c, "SELECT COUNT(*), MIN(name), MAX(id) FROM test_db_batch", NULL, 0);
	assert_string_equal(c.cell[0], "1000");
	assert_string_equal(c.cell[1], "conf '0'");
	assert_string_equal(c.cell[2], "999");

	/* a failing statement rolls the whole batch back */
	for (int i = 0; i < N_BATCH; i++) {
		snprintf(names[i], sizeof(names[i]), "second %d", i);
		params[i][0] = CDR_DB_INT(N_BATCH + i);
		params[i][1] = CDR_DB_STR(names[i]);
	}
	params[N_BATCH - 1][0] = CDR_DB_INT(5); /* duplicate key */
	assert_int_equal(cdr_db_exec_batch(c.db, stmts, N_BATCH, false, on_result, &c), 0);
	wait_loop(&c, 60000);
	assert_int_equal(c.status, -EIO);
	assert_int_equal(c.code, 1062);
	exec(&c, "SELECT COUNT(*) FROM test_db_batch", NULL, 0);
	assert_string_equal(c.cell[0], "1000");
	/* mixed statements, text and prepared, in one transaction */
	struct cdr_db_param k[] = { CDR_DB_INT(5) };
	struct cdr_db_stmt mixed[] = {
		{ "DELETE FROM test_db_batch WHERE id >= 10", NULL, 0 },
		{ "UPDATE test_db_batch SET name = 'five' WHERE id = ?", k, 1 },
		{ "SELECT COUNT(*), (SELECT name FROM test_db_batch WHERE id = 5) FROM test_db_batch", NULL, 0 },
	};
	assert_int_equal(cdr_db_exec_batch(c.db, mixed, 3, true, on_result, &c), 0);
	wait_loop(&c, 10000);
	assert_int_equal(c.status, 0);
	assert_string_equal(c.cell[0], "10");
	assert_string_equal(c.cell[1], "five");
	assert_int_equal(cdr_db_exec_batch(c.db, mixed, 0, true, on_result, &c), -EINVAL);
	exec(&c, "DROP TABLE test_db_batch", NULL, 0);
	free(stmts);
	free(params);
	free(names);
	close_db(&c);
}

/* Kills the worker's connection from another one, as a server restart or a
 * network cut would end it. */
static void kill_connection(struct ctx *c)
{
	struct ctx killer;
	char sql[600];

	exec(c, "SELECT CONNECTION_ID()", NULL, 0);
	assert_int_equal(c->status, 0);
	snprintf(sql, sizeof(sql), "KILL CONNECTION %s", c->cell[0]);
	open_db(&killer);
	exec(&killer, sql, NULL, 0);
	assert_int_equal(killer.status, 0);
	close_db(&killer);
}

static void test_lost_connection(void **state)
{
	struct ctx c;
	char old_id[512];

	open_db(&c);
	exec(&c, "CREATE TABLE IF NOT EXISTS test_db_lost (id INT PRIMARY KEY)", NULL, 0);
	exec(&c, "DELETE FROM test_db_lost", NULL, 0);

	/* Not idempotent: failed -ECONNRESET, the caller decides. */
	kill_connection(&c);
	struct cdr_db_param one[] = { CDR_DB_INT(1) };
	exec_as(&c, false, "INSERT INTO test_db_lost (id) VALUES (?)", one, 1);
	assert_int_equal(c.status, -ECONNRESET);
	assert_true(c.error[0] != '\0');
	wait_state(&c, true, 10000);
	assert_int_equal(c.downs, 1);
	assert_int_equal(c.ups, 2);
	exec(&c, "SELECT COUNT(*) FROM test_db_lost", NULL, 0);
	assert_int_equal(c.status, 0);
	assert_string_equal(c.cell[0], "0");

	/* Idempotent: run again on a fresh connection, the caller sees success. */
	kill_connection(&c);
	snprintf(old_id, sizeof(old_id), "%s", c.cell[0]);
	exec_as(&c, true, "SELECT CONNECTION_ID(), ?", one, 1);
	assert_int_equal(c.status, 0);
	assert_string_not_equal(c.cell[0], old_id);
	assert_string_equal(c.cell[1], "1");
	assert_int_equal(c.downs, 2);

	/* A batch lost before its COMMIT was rolled back: it is run again even
	 * if not marked idempotent. */
	kill_connection(&c);
	struct cdr_db_param two[] = { CDR_DB_INT(2) };
	struct cdr_db_stmt b[] = { { "INSERT INTO test_db_lost (id) VALUES (?)", two, 1 } };
	assert_int_equal(cdr_db_exec_batch(c.db, b, 1, false, on_result, &c), 0);
	wait_loop(&c, 10000);
	assert_int_equal(c.status, 0);
	exec(&c, "SELECT COUNT(*) FROM test_db_lost WHERE id = 2", NULL, 0);
	assert_string_equal(c.cell[0], "1");
	exec(&c, "DROP TABLE test_db_lost", NULL, 0);
	close_db(&c);
}

static void test_unreachable_queue_limit_and_cancel(void **state)
{
	struct cdr_db_opts o = opts();
	struct ctx c;

	o.port = 1; /* nothing listens there */
	o.max_queue = 2;
	open_db_with(&c, &o);
	wait_state(&c, false, 10000);
	assert_non_null(strstr(c.why, "cannot connect"));
	/* jobs wait for the connection, up to max_queue */
	assert_int_equal(cdr_db_exec(c.db, "SELECT 1", NULL, 0, true, on_result, &c), 0);
	assert_int_equal(cdr_db_exec(c.db, "SELECT 2", NULL, 0, true, on_result, &c), 0);
	assert_int_equal(cdr_db_exec(c.db, "SELECT 3", NULL, 0, true, on_result, &c), -ENOBUFS);
	c.db = cdr_db_free(c.db);
	assert_int_equal(c.answers, 2);
	assert_int_equal(c.cancelled, 2);
	assert_int_equal(c.status, -ECANCELED);
	o = opts();
	o.port = 0;
	assert_int_equal(cdr_db_new(c.loop, &o, &c.db), -EINVAL);
	o = opts();
	o.database = NULL;
	assert_int_equal(cdr_db_new(c.loop, &o, &c.db), -EINVAL);
	close_db(&c);
}

static void test_free_cancels_queued_jobs(void **state)
{
	struct ctx c;

	open_db(&c);
	for (int i = 0; i < 50; i++)
		assert_int_equal(cdr_db_exec(c.db, "SELECT SLEEP(0.01)", NULL, 0, true, on_result, &c), 0);
	c.db = cdr_db_free(c.db);
	/* every job answered exactly once: done or -ECANCELED */
	assert_int_equal(c.answers, 50);
	assert_true(c.cancelled > 0);
	close_db(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrations_idempotent_and_checked),
		cmocka_unit_test(test_parameters_nulls_quotes_and_errors),
		cmocka_unit_test(test_batch_is_one_transaction),
		cmocka_unit_test(test_lost_connection),
		cmocka_unit_test(test_unreachable_queue_limit_and_cancel),
		cmocka_unit_test(test_free_cancels_queued_jobs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
