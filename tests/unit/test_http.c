/* The address of [daemon] metrics_listen: what cdr_http_parse_listen takes
 * and refuses (with its reason), and which addresses cdr_http_loopback calls
 * loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include <confdr/http.h>

static void test_parse(void **state)
{
	static const struct {
		const char *in, *addr;
		uint16_t port;
	} good[] = {
		{ "127.0.0.1:9464", "127.0.0.1", 9464 },
		{ "[::1]:1", "::1", 1 },
		{ "10.1.2.3:65535", "10.1.2.3", 65535 },
		{ "[fe80::1]:80", "fe80::1", 80 },
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "", "expected ADDRESS:PORT" },
		{ "127.0.0.1", "expected ADDRESS:PORT" },
		{ "localhost:9464", "not a host name" },
		{ "127.0.0.1:0", "a port 1..65535" },
		{ "127.0.0.1:65536", "a port 1..65535" },
		{ "127.0.0.1:", "a port 1..65535" },
		{ "127.0.0.1:94a", "a port 1..65535" },
		{ ":9464", "a numeric IPv4 or IPv6 address" },
		{ "::1:9464", "in brackets" },
		{ "[::1]9464", "expected [IPv6]:PORT" },
		{ "[::1:9464", "expected [IPv6]:PORT" },
		{ "[127.0.0.1.2]:80", "not a host name" },
	};
	char addr[64];
	const char *why;
	uint16_t port;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(cdr_http_parse_listen(good[i].in, addr, sizeof(addr), &port, &why), 0);
		assert_string_equal(addr, good[i].addr);
		assert_int_equal(port, good[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(cdr_http_parse_listen(bad[i].in, addr, sizeof(addr), &port, &why), -EINVAL);
		assert_non_null(why);
		if (!strstr(why, bad[i].why))
			fail_msg("%s: reason \"%s\" lacks \"%s\"", bad[i].in, why, bad[i].why);
	}
	/* an address longer than the caller's buffer */
	assert_int_equal(cdr_http_parse_listen("127.0.0.1:80", addr, 5, &port, &why), -EINVAL);
}

static void test_loopback(void **state)
{
	(void)state;
	assert_true(cdr_http_loopback("127.0.0.1"));
	assert_true(cdr_http_loopback("127.255.0.9"));
	assert_true(cdr_http_loopback("::1"));
	assert_false(cdr_http_loopback("128.0.0.1"));
	assert_false(cdr_http_loopback("10.0.0.1"));
	assert_false(cdr_http_loopback("0.0.0.0"));
	assert_false(cdr_http_loopback("::"));
	assert_false(cdr_http_loopback("::ffff:127.0.0.1")); /* bound as IPv6: not the loopback interface's */
	assert_false(cdr_http_loopback("localhost"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
