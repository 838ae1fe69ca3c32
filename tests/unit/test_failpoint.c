/* Failpoints (confdr/failpoint.h): an armed name kills the process at its
 * N-th pass and not before; other names pass; a malformed CONFDR_FAILPOINTS
 * arms nothing and is reported; with CONFDR_FAILPOINT_MARKS a failpoint
 * fires once across processes. Each case runs in a child of its own: the
 * environment is read once per process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <confdr/failpoint.h>
#include <confdr/log.h>

static const char *marks; /* CONFDR_FAILPOINT_MARKS of the next children, or NULL */

/* In a child with CONFDR_FAILPOINTS=spec (unset when NULL): init, then
 * passes name n times; exits with 11 when init fails, or 0. The parent gets
 * the wait status. */
static int child(const char *spec, const char *name, int n)
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (spec)
			setenv("CONFDR_FAILPOINTS", spec, 1);
		else
			unsetenv("CONFDR_FAILPOINTS");
		if (marks)
			setenv("CONFDR_FAILPOINT_MARKS", marks, 1);
		else
			unsetenv("CONFDR_FAILPOINT_MARKS");
		if (cdr_failpoints_init() < 0)
			_exit(11);
		for (int i = 0; i < n; i++)
			cdr_failpoint(name);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static bool killed(int st)
{
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

static bool exited(int st, int code)
{
	return WIFEXITED(st) && WEXITSTATUS(st) == code;
}

static void test_fires_at_n(void **state)
{
	(void)state;
	assert_true(exited(child("answer.unsent=3", "answer.unsent", 2), 0));
	assert_true(killed(child("answer.unsent=3", "answer.unsent", 3)));
	assert_true(killed(child("answer.unsent=1", "answer.unsent", 1)));
	/* the second of two names, counted on its own */
	assert_true(exited(child("a=1,answer.unacked=5", "answer.unacked", 4), 0));
	assert_true(killed(child("a=1,answer.unacked=5", "answer.unacked", 5)));
}

static void test_others_pass(void **state)
{
	(void)state;
	assert_true(exited(child("answer.unsent=1", "answer.unacked", 100), 0));
	assert_true(exited(child("answer.unsent=1", "answer", 100), 0)); /* whole names only */
	assert_true(exited(child(NULL, "answer.unsent", 100), 0));
	assert_true(exited(child("", "answer.unsent", 100), 0));
}

static void test_malformed(void **state)
{
	const char *bad[] = { "answer.unsent",
			      "answer.unsent=",
			      "=3",
			      "answer.unsent=0",
			      "answer.unsent=x",
			      "answer.unsent=3,",
			      "a=1,,b=2",
			      "answer.unsent=-1",
			      "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9",
			      "a234567890123456789012345678901234567890123456789=1" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("%s\n", bad[i]);
		assert_true(exited(child(bad[i], "answer.unsent", 5), 11));
	}
}

/* With a marks directory a failpoint fires once: the next process with the
 * same environment (a supervisor's restart) passes it; other names still
 * fire, once each. */
static void test_once_with_marks(void **state)
{
	char dir[] = "/tmp/confdr-failpoint-XXXXXX", path[64];

	(void)state;
	assert_non_null(mkdtemp(dir));
	marks = dir;
	assert_true(killed(child("answer.unsent=2", "answer.unsent", 2)));
	snprintf(path, sizeof(path), "%s/answer.unsent", dir);
	assert_int_equal(access(path, F_OK), 0);
	assert_true(exited(child("answer.unsent=2", "answer.unsent", 10), 0));
	assert_true(exited(child("answer.unsent=2", "answer.unsent", 10), 0));
	assert_true(killed(child("answer.unsent=2,answer.unacked=1", "answer.unacked", 1)));
	assert_true(exited(child("answer.unsent=2,answer.unacked=1", "answer.unacked", 10), 0));
	marks = NULL;
	assert_true(killed(child("answer.unsent=2", "answer.unsent", 2))); /* another world: fires */
	unlink(path);
	snprintf(path, sizeof(path), "%s/answer.unacked", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fires_at_n),
		cmocka_unit_test(test_others_pass),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_once_with_marks),
	};

	cdr_log_setup("test", "p0", CDR_LOG_ERR, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
