/* Logging: one line per event with daemon and platform, level filtering,
 * newlines flattened, control characters escaped, long lines cut, level
 * names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <confdr/log.h>

/* Runs fn with stderr captured into buf. */
static void capture(void (*fn)(void), char *buf, size_t len)
{
	int fds[2], saved;
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	close(fds[1]);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = read(fds[0], buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fds[0]);
}

static void emit_levels(void)
{
	cdr_debug("hidden %d", 1);
	cdr_info("conference created e164=%s", "0512000123");
	cdr_warn("two\nlines");
}

static void test_line_format_and_filter(void **state)
{
	char buf[4096];

	unsetenv("JOURNAL_STREAM");
	cdr_log_setup("css", "p1", CDR_LOG_INFO, false);
	capture(emit_levels, buf, sizeof(buf));
	assert_null(strstr(buf, "hidden"));
	assert_non_null(strstr(buf, "INFO css[p1] conference created e164=0512000123\n"));
	/* one event, one line */
	assert_non_null(strstr(buf, "WARN css[p1] two lines\n"));
	assert_false(cdr_log_enabled(CDR_LOG_DEBUG));
	assert_true(cdr_log_enabled(CDR_LOG_ERR));
}

static void emit_one(void)
{
	cdr_err("failed");
}

static void test_timestamps(void **state)
{
	char buf[512];

	cdr_log_setup("rms", "p2", CDR_LOG_DEBUG, true);
	capture(emit_one, buf, sizeof(buf));
	/* 2026-11-23T05:53:00.123Z ERROR rms[p2] failed */
	assert_int_equal(strlen(buf), strlen("2026-11-23T05:53:00.123Z ERROR rms[p2] failed\n"));
	assert_int_equal(buf[10], 'T');
	assert_int_equal(buf[23], 'Z');
	assert_string_equal(buf + 25, "ERROR rms[p2] failed\n");
}

static void test_long_lines_are_cut_not_overflowed(void **state)
{
	char big[5000], buf[4096];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cdr_log_setup("pms", NULL, CDR_LOG_INFO, false);
	{
		int fds[2], saved;
		ssize_t n;

		assert_int_equal(pipe(fds), 0);
		saved = dup(STDERR_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[1]);
		cdr_info("%s", big);
		dup2(saved, STDERR_FILENO);
		close(saved);
		n = read(fds[0], buf, sizeof(buf));
		close(fds[0]);
		assert_int_equal(n, 2048);
		assert_memory_equal(buf + 2044, "...\n", 4);
		assert_memory_equal(buf, "INFO pms xxx", 12);
	}
}

static void emit_controls(void)
{
	/* ESC [2J (clear screen), a tab, DEL, U+202E (right-to-left
	 * override), U+009B (C1 CSI), U+2066; then text that stays */
	cdr_warn("name=%s", "a\x1b[2Jb\tc\x7f d\xe2\x80\xae"
			    "evil\xc2\x9bx\xe2\x81\xa6y \xe4\xbc\x9a\xe8\xae\xae caf\xc3\xa9");
}

static void emit_many_controls(void)
{
	char big[1500];

	memset(big, '\x1b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cdr_warn("%s", big);
}

/* Control characters from a message (a conference name, say) are shown,
 * never acted on: escaped; other UTF-8 passes untouched. */
static void test_controls_escaped(void **state)
{
	char buf[8192];
	size_t n;

	(void)state;
	unsetenv("JOURNAL_STREAM");
	cdr_log_setup("css", "p1", CDR_LOG_INFO, false);
	capture(emit_controls, buf, sizeof(buf));
	assert_string_equal(buf, "WARN css[p1] name=a\\x1b[2Jb\\x09c\\x7f d\\u202eevil\\u009bx\\u2066y "
				 "\xe4\xbc\x9a\xe8\xae\xae caf\xc3\xa9\n");
	/* escaping that outgrows the line is cut, every byte written */
	capture(emit_many_controls, buf, sizeof(buf));
	n = strlen(buf);
	assert_in_range(n, 2040, 2048); /* an escape that does not fit is left out whole */
	assert_memory_equal(buf, "WARN css[p1] \\x1b\\x1b", 21);
	assert_memory_equal(buf + n - 4, "...\n", 4);
	for (size_t i = 13; i < n - 4; i++)
		assert_true(buf[i] == '\\' || buf[i] == 'x' || buf[i] == '1' || buf[i] == 'b' || buf[i] == '.');
}

static void test_level_names(void **state)
{
	enum cdr_log_level l;

	assert_int_equal(cdr_log_level_parse("warn", &l), 0);
	assert_int_equal(l, CDR_LOG_WARN);
	assert_int_equal(cdr_log_level_parse("WARNING", &l), 0);
	assert_int_equal(cdr_log_level_parse("error", &l), 0);
	assert_int_equal(l, CDR_LOG_ERR);
	assert_int_equal(cdr_log_level_parse("loud", &l), -22);
	assert_string_equal(cdr_log_level_name(CDR_LOG_NOTICE), "notice");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_format_and_filter),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_long_lines_are_cut_not_overflowed),
		cmocka_unit_test(test_controls_escaped),
		cmocka_unit_test(test_level_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
