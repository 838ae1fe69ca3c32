/* The web console's pure parts (src/pms/console_core.c): HTTP Basic
 * credentials (the right user and password only; malformed headers, other
 * schemes, a password's prefix or extension refused), the names of the
 * static files it serves (nothing outside its directory), and the bounded
 * series of restores over time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pms/console.h"

/* "Basic " + base64 of text */
static void basic(const char *text, char *out, size_t len)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(text), k = (size_t)snprintf(out, len, "Basic ");

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)text[i] << 16;

		v |= i + 1 < n ? (unsigned char)text[i + 1] << 8 : 0;
		v |= i + 2 < n ? (unsigned char)text[i + 2] : 0;
		out[k++] = b64[(v >> 18) & 63];
		out[k++] = b64[(v >> 12) & 63];
		out[k++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[k++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[k] = '\0';
}

static void test_basic_auth(void **state)
{
	char h[256];

	(void)state;
	basic("ops:s3cret-Pw", h, sizeof(h));
	assert_true(pms_console_basic_ok(h, "ops", "s3cret-Pw"));
	/* the scheme's name is case-insensitive (RFC 7617) */
	h[0] = 'b';
	assert_true(pms_console_basic_ok(h, "ops", "s3cret-Pw"));
	assert_false(pms_console_basic_ok(h, "ops", "s3cret-Px"));
	assert_false(pms_console_basic_ok(h, "css", "s3cret-Pw"));
	basic("ops:s3cret-P", h, sizeof(h)); /* a prefix */
	assert_false(pms_console_basic_ok(h, "ops", "s3cret-Pw"));
	basic("ops:s3cret-Pww", h, sizeof(h)); /* longer */
	assert_false(pms_console_basic_ok(h, "ops", "s3cret-Pw"));
	basic("ops", h, sizeof(h));
	assert_false(pms_console_basic_ok(h, "ops", "s3cret-Pw"));
	basic(":", h, sizeof(h));
	assert_false(pms_console_basic_ok(h, "", ""));
	assert_false(pms_console_basic_ok(NULL, "ops", "s3cret-Pw"));
	assert_false(pms_console_basic_ok("", "ops", "s3cret-Pw"));
	assert_false(pms_console_basic_ok("Bearer b3BzOnMzY3JldC1Qdw==", "ops", "s3cret-Pw"));
	assert_false(pms_console_basic_ok("Basic !!!!", "ops", "s3cret-Pw"));
	assert_false(pms_console_basic_ok("Basic", "ops", "s3cret-Pw"));
	/* the same without padding is still the same credentials */
	assert_true(pms_console_basic_ok("Basic b3BzOnMzY3JldC1Qdw", "ops", "s3cret-Pw"));
	/* an empty password never passes */
	basic("ops:", h, sizeof(h));
	assert_false(pms_console_basic_ok(h, "ops", ""));
}

static void test_equal(void **state)
{
	(void)state;
	assert_true(pms_console_equal("abc", 3, "abc", 3));
	assert_false(pms_console_equal("abc", 3, "abd", 3));
	assert_false(pms_console_equal("abc", 3, "abc\0", 4));
	assert_false(pms_console_equal("", 0, "a", 1));
	assert_true(pms_console_equal("", 0, "", 0));
}

static void test_static_names(void **state)
{
	(void)state;
	assert_string_equal(pms_console_static_type("index.html"), "text/html; charset=utf-8");
	assert_string_equal(pms_console_static_type("console.js"), "text/javascript; charset=utf-8");
	assert_string_equal(pms_console_static_type("console.css"), "text/css; charset=utf-8");
	assert_non_null(pms_console_static_type("logo.svg"));
	assert_null(pms_console_static_type(".."));
	assert_null(pms_console_static_type("../index.html"));
	assert_null(pms_console_static_type("..%2findex.html"));
	assert_null(pms_console_static_type("a/b.js"));
	assert_null(pms_console_static_type(".hidden.js"));
	assert_null(pms_console_static_type("x.js.map"));
	assert_null(pms_console_static_type("conf.conf"));
	assert_null(pms_console_static_type("password"));
	assert_null(pms_console_static_type(""));
	assert_null(pms_console_static_type(NULL));
}

static json_int_t at(json_t *s, size_t i, const char *k)
{
	return json_integer_value(json_object_get(json_array_get(json_object_get(s, "buckets"), i), k));
}

static void test_series(void **state)
{
	struct pms_series sr;
	json_t *j;

	(void)state;
	pms_series_init(&sr, 10000, 6); /* a minute of 10 s buckets */
	j = pms_series_json(&sr, 100000);
	assert_int_equal(json_array_size(json_object_get(j, "buckets")), 6);
	assert_int_equal(at(j, 5, "restored"), 0);
	json_decref(j);

	assert_true(pms_series_add(&sr, PMS_SERIES_RESTORED, 100000, 30));
	assert_true(pms_series_add(&sr, PMS_SERIES_RESTORED, 105000, 5));
	assert_true(pms_series_add(&sr, PMS_SERIES_ROOM_EVENTS, 109999, 1));
	assert_true(pms_series_add(&sr, PMS_SERIES_LOST, 120000, 2));
	j = pms_series_json(&sr, 125000);
	assert_int_equal(json_integer_value(json_object_get(j, "bucket_ms")), 10000);
	/* buckets 70000..120000: the one of 100000 is the fourth */
	assert_int_equal(at(j, 0, "t"), 70000);
	assert_int_equal(at(j, 3, "restored"), 35);
	assert_int_equal(at(j, 3, "room_events"), 1);
	assert_int_equal(at(j, 4, "restored"), 0);
	assert_int_equal(at(j, 5, "lost"), 2);
	json_decref(j);

	/* older than the ring holds: dropped */
	assert_false(pms_series_add(&sr, PMS_SERIES_RESTORED, 60000, 1));
	/* a jump far ahead empties every bucket */
	assert_true(pms_series_add(&sr, PMS_SERIES_RESTORED, 1000000, 7));
	j = pms_series_json(&sr, 1000000);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(at(j, i, "restored") + at(j, i, "lost") + at(j, i, "room_events"), 0);
	assert_int_equal(at(j, 5, "restored"), 7);
	json_decref(j);

	/* shown later, without new counts: the old ones slide out */
	j = pms_series_json(&sr, 1030000);
	assert_int_equal(at(j, 2, "restored"), 7);
	assert_int_equal(at(j, 5, "restored"), 0);
	json_decref(j);
	j = pms_series_json(&sr, 2000000);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(at(j, i, "restored"), 0);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_auth),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_static_names),
		cmocka_unit_test(test_series),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
