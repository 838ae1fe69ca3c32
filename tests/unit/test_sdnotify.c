/* sd_notify by hand: what reaches a datagram socket named by NOTIFY_SOCKET
 * (a path, and a name in the abstract namespace), what is refused, and the
 * watchdog's environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <confdr/sdnotify.h>

/* Receives one datagram into buf (NUL-terminated); fails after 2 s. */
static void recv_one(int fd, char *buf, size_t len)
{
	struct timeval tv = { .tv_sec = 2 };
	ssize_t n;

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	n = recv(fd, buf, len - 1, 0);
	assert_true(n >= 0);
	buf[n] = '\0';
}

static void test_path_socket(void **state)
{
	char dir[] = "/tmp/confdr-sdnotify-XXXXXX", path[64], buf[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);

	assert_int_equal(cdr_sd_notify("READY=1\nSTATUS=standby, connected"), 1);
	recv_one(fd, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1\nSTATUS=standby, connected");
	assert_int_equal(cdr_sd_notify("WATCHDOG=1"), 1);
	recv_one(fd, buf, sizeof(buf));
	assert_string_equal(buf, "WATCHDOG=1");

	close(fd);
	/* nobody listens there any more */
	assert_true(cdr_sd_notify("WATCHDOG=1") < 0);
	unlink(path);
	assert_int_equal(cdr_sd_notify("WATCHDOG=1"), -ENOENT);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char name[64], env[80], buf[256];
	socklen_t salen;
	int fd, n;

	n = snprintf(name, sizeof(name), "confdr-test-sdnotify-%d", (int)getpid());
	sa.sun_path[0] = '\0';
	memcpy(sa.sun_path + 1, name, (size_t)n);
	/* the abstract address is exactly as long as the name: no NUL after it */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, salen), 0);
	snprintf(env, sizeof(env), "@%s", name);
	setenv("NOTIFY_SOCKET", env, 1);

	assert_int_equal(cdr_sd_notify("STOPPING=1"), 1);
	recv_one(fd, buf, sizeof(buf));
	assert_string_equal(buf, "STOPPING=1");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void test_refusals(void **state)
{
	char longname[200];

	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(cdr_sd_notify("READY=1"), 0); /* not under systemd: nothing to do */
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(cdr_sd_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	assert_int_equal(cdr_sd_notify("READY=1"), -EINVAL);
	setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
	assert_int_equal(cdr_sd_notify(""), -EINVAL);
	longname[0] = '/';
	memset(longname + 1, 'x', sizeof(longname) - 2);
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(cdr_sd_notify("READY=1"), -ENAMETOOLONG);
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_env(void **state)
{
	char pid[32];
	uint64_t usec = 7;

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(cdr_sd_watchdog_usec(&usec), 0);
	assert_int_equal(usec, 7);
	setenv("WATCHDOG_USEC", "20000000", 1);
	assert_int_equal(cdr_sd_watchdog_usec(&usec), 1);
	assert_int_equal(usec, 20000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(cdr_sd_watchdog_usec(&usec), 1);
	/* another process's watchdog (a parent's) is not ours */
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	usec = 7;
	assert_int_equal(cdr_sd_watchdog_usec(&usec), 0);
	assert_int_equal(usec, 7);
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "0", 1);
	assert_int_equal(cdr_sd_watchdog_usec(&usec), 0);
	setenv("WATCHDOG_USEC", "20s", 1);
	assert_int_equal(cdr_sd_watchdog_usec(&usec), -EINVAL);
	setenv("WATCHDOG_USEC", "-5", 1);
	assert_int_equal(cdr_sd_watchdog_usec(&usec), -EINVAL);
	unsetenv("WATCHDOG_USEC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_watchdog_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
