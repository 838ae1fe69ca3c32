/* AMQP URL parsing (cdr_mq_url_parse) and the option checks of cdr_mq_new
 * that need no broker. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include <confdr/loop.h>
#include <confdr/mq.h>

static void check_ok(const char *url, const char *user, const char *pass, const char *host, unsigned port,
		     const char *vhost)
{
	struct cdr_mq_url u;
	char err[128] = "";

	if (cdr_mq_url_parse(url, &u, err, sizeof(err)) != 0)
		fail_msg("%s refused: %s", url, err);
	assert_int_equal(u.tls, strncasecmp(url, "amqps:", 6) == 0);
	assert_string_equal(u.user, user);
	assert_string_equal(u.password, pass);
	assert_string_equal(u.host, host);
	assert_int_equal(u.port, port);
	assert_string_equal(u.vhost, vhost);
	cdr_mq_url_clear(&u);
	assert_null(u.host);
}

static void check_bad(const char *url, const char *why)
{
	struct cdr_mq_url u = { .port = 4242 };
	char err[128] = "";

	if (cdr_mq_url_parse(url, &u, err, sizeof(err)) != -EINVAL)
		fail_msg("%s accepted", url ? url : "(null)");
	if (!strstr(err, why))
		fail_msg("%s: reason '%s' does not say '%s'", url ? url : "(null)", err, why);
	/* Output untouched on error. */
	assert_int_equal(u.port, 4242);
	assert_null(u.host);
}

static void test_good_urls(void **state)
{
	check_ok("amqp://confdr:confdr@127.0.0.1:17672/p1", "confdr", "confdr", "127.0.0.1", 17672, "p1");
	check_ok("amqp://host", "guest", "guest", "host", 5672, "/");
	check_ok("amqp://host/", "guest", "guest", "host", 5672, "");
	check_ok("amqp://", "guest", "guest", "localhost", 5672, "/");
	check_ok("AMQP://u@h:1/v", "u", "guest", "h", 1, "v");
	check_ok("amqp://u:@h:65535/%2f", "u", "", "h", 65535, "/");
	check_ok("amqp://us%40er:p%3Aa%2Fss@h/v%2Fx", "us@er", "p:a/ss", "h", 5672, "v/x");
	check_ok("amqp://u:p@[::1]:5673/vh", "u", "p", "::1", 5673, "vh");
	check_ok("amqp://[fe80::1]", "guest", "guest", "fe80::1", 5672, "/");
	check_ok("amqp://u:p:q@h/v", "u", "p:q", "h", 5672, "v");
	/* TLS: port 5671 by default */
	check_ok("amqps://confdr:confdr@127.0.0.1:17672/p1", "confdr", "confdr", "127.0.0.1", 17672, "p1");
	check_ok("amqps://host", "guest", "guest", "host", 5671, "/");
	check_ok("AMQPS://u:p@[::1]/v", "u", "p", "::1", 5671, "v");
}

static void test_bad_urls(void **state)
{
	check_bad(NULL, "empty");
	check_bad("", "empty");
	check_bad("http://h/v", "amqp://");
	check_bad("amqp:/h/v", "amqp://");
	check_bad("amqpss://h/v", "amqps://");
	check_bad("amqps:/h/v", "amqps://");
	check_bad("amqps://h:0/v", "port");
	check_bad("amqp://h:0/v", "port");
	check_bad("amqp://h:65536/v", "port");
	check_bad("amqp://h:99999999999999999999/v", "port");
	check_bad("amqp://h:12a/v", "port");
	check_bad("amqp://h:/v", "port");
	check_bad("amqp://h:-1/v", "port");
	check_bad("amqp://h/a/b", "one path segment");
	check_bad("amqp://h/v?heartbeat=10", "query");
	check_bad("amqp://h/v#x", "fragment");
	check_bad("amqp://u:p@h /v", "space");
	check_bad("amqp://u:p@h/v\n", "control");
	check_bad("amqp://u%zz:p@h/v", "escape in user");
	check_bad("amqp://u:p%4@h/v", "escape in password");
	check_bad("amqp://h/v%", "escape in vhost");
	check_bad("amqp://h/v%00", "escape in vhost");
	check_bad("amqp://:p@h/v", "empty user");
	check_bad("amqp://[::1/v", "IPv6");
	check_bad("amqp://[]:5672/v", "IPv6");
	check_bad("amqp://[::1]x/v", "IPv6");
	check_bad("amqp://h]/v", "bad host");
}

static void test_new_refuses_bad_options(void **state)
{
	struct cdr_loop *loop;
	struct cdr_mq *mq = (struct cdr_mq *)&mq;
	struct cdr_mq_opts opts = { .url = "amqp://h:70000/v" };

	assert_int_equal(cdr_loop_new(&loop), 0);
	assert_int_equal(cdr_mq_new(loop, &opts, &mq), -EINVAL);
	opts.url = "not a url";
	assert_int_equal(cdr_mq_new(loop, &opts, &mq), -EINVAL);
	opts.url = NULL;
	assert_int_equal(cdr_mq_new(loop, &opts, &mq), -EINVAL);
	opts.url = "amqp://h/v";
	opts.reconnect_min_ms = 5000;
	opts.reconnect_max_ms = 100;
	assert_int_equal(cdr_mq_new(loop, &opts, &mq), -EINVAL);
	/* amqps needs a CA to check the broker against */
	opts.reconnect_min_ms = opts.reconnect_max_ms = 0;
	opts.url = "amqps://h/v";
	assert_int_equal(cdr_mq_new(loop, &opts, &mq), -EINVAL);
	opts.tls_ca = "";
	assert_int_equal(cdr_mq_new(loop, &opts, &mq), -EINVAL);
	/* ret untouched on failure */
	assert_ptr_equal(mq, (struct cdr_mq *)&mq);
	assert_null(cdr_mq_free(NULL));
	assert_false(cdr_mq_connected(NULL));
	loop = cdr_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_urls),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_new_refuses_bad_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
