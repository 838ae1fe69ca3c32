/* Logging under journald ($JOURNAL_STREAM set before the first line, as
 * systemd sets it for a unit whose stderr is the journal): each line starts
 * with its syslog priority, "<6>" for info, so the journal keeps the level,
 * and has no timestamp of its own (the journal stamps it), even with
 * timestamps on. A program of its own: the log module reads the variable
 * once, at its first line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <confdr/log.h>

static void emit(void)
{
	cdr_info("conference created e164=%s mcu=%s", "0512000123", "mcu-p1-r1-01");
	cdr_warn("mcu %s silent", "mcu-p1-r1-02");
	cdr_err("failed");
	cdr_notice("role: active, epoch %d", 7);
}

static void test_priority_prefix(void **state)
{
	char buf[4096];
	int fds[2], saved;
	ssize_t n;

	setenv("JOURNAL_STREAM", "8:12345", 1);
	cdr_log_setup("pms", "p2", CDR_LOG_INFO, true);
	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	close(fds[1]);
	emit();
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	buf[n > 0 ? n : 0] = '\0';
	assert_string_equal(buf, "<6>INFO pms[p2] conference created e164=0512000123 mcu=mcu-p1-r1-01\n"
				 "<4>WARN pms[p2] mcu mcu-p1-r1-02 silent\n"
				 "<3>ERROR pms[p2] failed\n"
				 "<5>NOTICE pms[p2] role: active, epoch 7\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_priority_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
