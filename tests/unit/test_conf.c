/* The configuration parser: good files load with defaults, and every kind of
 * mistake is refused with file, line, key and what was expected. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <confdr/conf.h>
#include <confdr/daemon.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct cfg {
	char *platform;
	char *hosts;
	int64_t prefetch;
	uint64_t timeout_ms;
	bool verbose;
	int mode;
	char *password;
};

static const char *const modes[] = { "preempt", "nopreempt", NULL };

static const struct cdr_conf_key keys[] = {
	{ "daemon", "platform", CDR_CONF_STR, offsetof(struct cfg, platform), NULL, 0, 0, NULL, cdr_conf_check_id,
	  "this platform's MOID", NULL, 0 },
	{ "zookeeper", "hosts", CDR_CONF_STR, offsetof(struct cfg, hosts), "127.0.0.1:2181", 0, 0, NULL,
	  cdr_conf_check_hostport, "ZooKeeper ensemble", NULL, 0 },
	{ "amqp", "prefetch", CDR_CONF_INT, offsetof(struct cfg, prefetch), "256", 1, 65535, NULL, NULL, NULL, NULL,
	  0 },
	{ "amqp", "timeout", CDR_CONF_MS, offsetof(struct cfg, timeout_ms), "2s", 100, 60000, NULL, NULL, NULL, NULL,
	  0 },
	{ "amqp", "verbose", CDR_CONF_BOOL, offsetof(struct cfg, verbose), "false", 0, 0, NULL, NULL, NULL, NULL, 0 },
	{ "amqp", "password", CDR_CONF_STR, offsetof(struct cfg, password), "", 0, 0, NULL, NULL, NULL, NULL, 0 },
	{ "room", "mode", CDR_CONF_ENUM, offsetof(struct cfg, mode), "nopreempt", 0, 0, modes, NULL, NULL, NULL, 0 },
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};
static const struct cdr_conf_key *const tables[] = { keys, NULL };

static void test_good_file_with_defaults(void **state)
{
	struct cfg c = { 0 };
	struct cdr_conf_errors errs = { 0 };
	const char *text = "# a comment\n"
			   "[daemon]\n"
			   "platform = p1\n"
			   "\n"
			   "[amqp]\n"
			   "  timeout = 500ms  \n"
			   "password = \"a # b \"\n"
			   "verbose = yes\n";

	assert_int_equal(cdr_conf_parse("t.conf", text, tables, &c, &errs), 0);
	assert_int_equal(errs.n, 0);
	assert_string_equal(c.platform, "p1");
	assert_string_equal(c.hosts, "127.0.0.1:2181");
	assert_int_equal(c.prefetch, 256);
	assert_int_equal(c.timeout_ms, 500);
	assert_true(c.verbose);
	assert_string_equal(c.password, "a # b ");
	assert_int_equal(c.mode, 1);
	cdr_conf_release(tables, &c);
	assert_null(c.platform);
}

/* Parses text, expects failure and that some error line equals want. */
static void expect_error(const char *text, const char *want)
{
	struct cfg c = { 0 };
	struct cdr_conf_errors errs = { 0 };
	bool found = false;

	assert_int_equal(cdr_conf_parse("t.conf", text, tables, &c, &errs), -22);
	for (size_t i = 0; i < errs.n; i++) {
		if (strcmp(errs.lines[i], want) == 0)
			found = true;
	}
	if (!found) {
		for (size_t i = 0; i < errs.n; i++)
			print_error("got: %s\n", errs.lines[i]);
		fail_msg("missing error: %s", want);
	}
	assert_null(c.platform); /* nothing left to release on failure */
	cdr_conf_errors_clear(&errs);
}

static void test_errors_name_file_line_and_expectation(void **state)
{
	expect_error("[daemon]\nplatfrom = p1\n", "t.conf:2: [daemon] platfrom: unknown key");
	expect_error("[amqp]\nprefetch = 0\n[daemon]\nplatform = p1\n",
		     "t.conf:2: [amqp] prefetch: expected an integer 1..65535, got \"0\"");
	expect_error("[daemon]\nplatform = p1\n[amqp]\nprefetch = 12x\n",
		     "t.conf:4: [amqp] prefetch: expected an integer 1..65535, got \"12x\"");
	expect_error("[daemon]\nplatform = p1\n[amqp]\ntimeout = 5\n",
		     "t.conf:4: [amqp] timeout: expected a duration 100ms..60000ms (like 500ms, 2s, 1m), got \"5\"");
	expect_error("[daemon]\nplatform = p1\n[amqp]\ntimeout = 2h\n",
		     "t.conf:4: [amqp] timeout: expected a duration 100ms..60000ms (like 500ms, 2s, 1m), got \"2h\"");
	expect_error("[daemon]\nplatform = p1\n[amqp]\nverbose = maybe\n",
		     "t.conf:4: [amqp] verbose: expected true or false, got \"maybe\"");
	expect_error("[daemon]\nplatform = P 1\n",
		     "t.conf:2: [daemon] platform: expected an id of lowercase letters, digits, '_', '.' and '-'");
	expect_error("[daemon]\nplatform =\n", "t.conf:2: [daemon] platform: missing value");
	expect_error("[daemon]\nplatform = p1\nplatform = p2\n",
		     "t.conf:3: [daemon] platform: set twice (first on line 2)");
	expect_error("[amqp]\nprefetch = 3\n", "t.conf: [daemon] platform: required, not set (this platform's MOID)");
	expect_error("[daemon\nplatform = p1\n", "t.conf:1: expected [section]");
	expect_error("[nosuch]\nx = 1\n[daemon]\nplatform = p1\n", "t.conf:1: [nosuch]: unknown section");
	expect_error("platform = p1\n", "t.conf:1: platform: key outside any [section]");
	expect_error("[daemon]\nplatform p1\n", "t.conf:2: expected key = value");
	expect_error("[daemon]\nplatform = p1\n[zookeeper]\nhosts = localhost\n",
		     "t.conf:4: [zookeeper] hosts: expected host:port[,host:port...]");
	expect_error("[daemon]\nplatform = p1\n[zookeeper]\nhosts = a:1,b:99999\n",
		     "t.conf:4: [zookeeper] hosts: expected host:port with a port 1..65535");
	expect_error("[daemon]\nplatform = p1\n[room]\nmode = sometimes\n",
		     "t.conf:4: [room] mode: expected one of preempt, nopreempt; got \"sometimes\"");
	expect_error("[daemon]\nplatform = p1\n[amqp]\npassword = \"abc\n",
		     "t.conf:4: [amqp] password: unterminated quote");
}

static void test_all_errors_are_collected(void **state)
{
	struct cfg c = { 0 };
	struct cdr_conf_errors errs = { 0 };

	assert_int_equal(cdr_conf_parse("t.conf", "[amqp]\nprefetch = -1\nbogus = 1\ntimeout = x\n", tables, &c, &errs),
			 -22);
	/* prefetch, bogus, timeout, and the missing platform */
	assert_int_equal(errs.n, 4);
	cdr_conf_errors_clear(&errs);
}

static void test_durations(void **state)
{
	uint64_t v;

	assert_int_equal(cdr_conf_parse_ms("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(cdr_conf_parse_ms("3s", &v), 0);
	assert_int_equal(v, 3000);
	assert_int_equal(cdr_conf_parse_ms("2m", &v), 0);
	assert_int_equal(v, 120000);
	assert_int_equal(cdr_conf_parse_ms("1h", &v), 0);
	assert_int_equal(v, 3600000);
	assert_int_equal(cdr_conf_parse_ms("10", &v), -22);
	assert_int_equal(cdr_conf_parse_ms("-1s", &v), -22);
	assert_int_equal(cdr_conf_parse_ms("s", &v), -22);
	assert_int_equal(cdr_conf_parse_ms("99999999999999999999s", &v), -22);
}

/* Named sections: "[check NAME]" blocks, each parsed into its own item. */
struct check {
	char *tcp;
	int64_t fall;
	uint64_t interval_ms;
};
struct gcfg {
	char *platform;
	struct cdr_conf_group checks;
};
static const struct cdr_conf_key check_keys[] = {
	{ "", "tcp", CDR_CONF_STR, offsetof(struct check, tcp), "", 0, 0, NULL, NULL, "endpoints", NULL, 0 },
	{ "", "fall", CDR_CONF_INT, offsetof(struct check, fall), "3", 1, 10, NULL, NULL, NULL, NULL, 0 },
	{ "", "interval", CDR_CONF_MS, offsetof(struct check, interval_ms), NULL, 10, 60000, NULL, NULL, "every", NULL,
	  0 },
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};
static const struct cdr_conf_key gkeys[] = {
	{ "daemon", "platform", CDR_CONF_STR, offsetof(struct gcfg, platform), NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
	{ "check", "check", CDR_CONF_GROUP, offsetof(struct gcfg, checks), NULL, 0, 0, NULL, NULL, "checks", check_keys,
	  sizeof(struct check) },
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};
static const struct cdr_conf_key *const gtables[] = { gkeys, NULL };

static void test_named_sections(void **state)
{
	struct gcfg c = { 0 };
	struct cdr_conf_errors errs = { 0 };
	const char *text = "[check a]\n"
			   "tcp = 127.0.0.1:1\n"
			   "interval = 2s\n"
			   "[daemon]\n"
			   "platform = p1\n"
			   "[check b-2]\n"
			   "fall = 5\n"
			   "interval = 100ms\n";
	const struct check *a, *b;

	(void)state;
	assert_int_equal(cdr_conf_parse("g.conf", text, gtables, &c, &errs), 0);
	assert_int_equal(c.checks.n, 2);
	assert_string_equal(c.checks.names[0], "a");
	assert_string_equal(c.checks.names[1], "b-2");
	a = c.checks.items[0];
	b = c.checks.items[1];
	assert_string_equal(a->tcp, "127.0.0.1:1");
	assert_int_equal(a->fall, 3);
	assert_int_equal(a->interval_ms, 2000);
	assert_string_equal(b->tcp, "");
	assert_int_equal(b->fall, 5);
	assert_int_equal(b->interval_ms, 100);
	cdr_conf_release(gtables, &c);
	assert_int_equal(c.checks.n, 0);

	/* Every mistake in a named section names the section. */
	text = "[daemon]\nplatform = p1\n"
	       "[check a]\nfall = 11\nbogus = 1\n" /* line 3..5; interval missing */
	       "[check a]\ninterval = 1s\n"	   /* line 6: twice */
	       "[check Bad!]\n"			   /* line 8 */
	       "[check]\n"			   /* line 9 */
	       "[nosuch x]\n";			   /* line 10 */
	assert_int_equal(cdr_conf_parse("g.conf", text, gtables, &c, &errs), -EINVAL);
	{
		const char *want[] = {
			"g.conf:4: [check a] fall: expected an integer 1..10",
			"g.conf:5: [check a] bogus: unknown key",
			"g.conf: [check a] interval: required, not set (every)",
			"g.conf:6: [check a]: given twice",
			"g.conf:8: [check Bad!]: expected an id",
			"g.conf:9: [check]: expected [check NAME]",
			"g.conf:10: [nosuch x]: unknown section",
		};
		for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
			bool found = false;

			for (size_t i = 0; i < errs.n && !found; i++)
				found = strncmp(errs.lines[i], want[w], strlen(want[w])) == 0;
			if (!found)
				fail_msg("missing error \"%s\"", want[w]);
		}
	}
	assert_int_equal(c.checks.n, 0); /* released on failure */
	assert_null(c.platform);
	cdr_conf_errors_clear(&errs);
}

static void test_missing_file(void **state)
{
	struct cfg c = { 0 };
	struct cdr_conf_errors errs = { 0 };

	assert_int_equal(cdr_conf_load("/nonexistent/confdr.conf", tables, &c, &errs), -2);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.lines[0], "/nonexistent/confdr.conf: cannot open: No such file or directory");
	cdr_conf_errors_clear(&errs);
}

/* Writes text to dir/name with exactly mode (fchmod: not the umask's). */
static void put(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

/* Secrets (password_file): from a regular file others cannot read or
 * write, its first line; relative to the config file's directory. */
static void test_secret_read(void **state)
{
	char dir[] = "/tmp/confdr-secret-XXXXXX", conf[256], abs[256], err[512], *v = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/css.conf", dir);
	put(dir, "ok", "s3cret\nsecond line ignored\n", 0600);
	put(dir, "group", "g\r\n", 0640);
	put(dir, "world", "w\n", 0644);
	put(dir, "worldw", "w\n", 0602);
	put(dir, "empty", "\n", 0600);
	assert_int_equal(cdr_secret_read("ok", conf, &v, err, sizeof(err)), 0);
	assert_string_equal(v, "s3cret");
	free(v);
	snprintf(abs, sizeof(abs), "%s/group", dir);
	assert_int_equal(cdr_secret_read(abs, NULL, &v, err, sizeof(err)), 0);
	assert_string_equal(v, "g");
	free(v);
	v = NULL;
	assert_int_equal(cdr_secret_read("world", conf, &v, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "mode 0644: others may read or write it"));
	assert_int_equal(cdr_secret_read("worldw", conf, &v, err, sizeof(err)), -EPERM);
	assert_int_equal(cdr_secret_read("empty", conf, &v, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "empty first line"));
	assert_int_equal(cdr_secret_read("missing", conf, &v, err, sizeof(err)), -ENOENT);
	assert_int_equal(cdr_secret_read(dir, NULL, &v, err, sizeof(err)), -EINVAL); /* a directory */
	assert_null(v);
	for (const char *n = "ok\0group\0world\0worldw\0empty\0"; *n; n += strlen(n) + 1) {
		snprintf(abs, sizeof(abs), "%s/%s", dir, n);
		unlink(abs);
	}
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file_with_defaults),
		cmocka_unit_test(test_errors_name_file_line_and_expectation),
		cmocka_unit_test(test_all_errors_are_collected),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_named_sections),
		cmocka_unit_test(test_secret_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
