/* The message codec: a good create request decodes; every kind of malformed
 * input is refused with bad_request and a precise detail, keeping the id and
 * e164 for the NACK; every type in the table round-trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <confdr/msg.h>

static const char good_create[] =
	"{\"type\": \"cm_mau_createconf_req\", \"id\": \"req-000123\", \"ts\": 1795000000000, \"src\": \"cm\","
	" \"body\": {\"e164\": \"0512000123\", \"name\": \"Weekly sync\", \"user_domain\": \"ud-p1-a\","
	" \"duration_min\": 60, \"h265\": false, \"resolution\": \"1080p\", \"record\": false,"
	" \"max_participants\": 16, \"cm_private_field\": {\"x\": 1}}}";

static void test_good_create_decodes(void **state)
{
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;

	assert_int_equal(cdr_msg_decode(good_create, strlen(good_create), 0, &m, &err), 0);
	assert_string_equal(m->type, "cm_mau_createconf_req");
	assert_string_equal(m->id, "req-000123");
	assert_string_equal(m->src, "cm");
	assert_int_equal(m->ts, 1795000000000LL);
	assert_string_equal(cdr_msg_str(m, "e164", NULL), "0512000123");
	assert_int_equal(cdr_msg_int(m, "duration_min", 0), 60);
	assert_false(cdr_msg_bool(m, "h265", true));
	assert_string_equal(cdr_msg_str(m, "missing", "dflt"), "dflt");
	assert_string_equal(m->spec->route, "mau.conf.q");
	cdr_msg_free(m);
}

/* Decodes text (len bytes), expects refusal with detail containing want. */
static void refused(const char *text, size_t len, size_t max, const char *want, const char *id, const char *e164)
{
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;
	int r = cdr_msg_decode(text, len, max, &m, &err);

	assert_true(r < 0);
	assert_null(m);
	assert_string_equal(err.reason, "bad_request");
	if (!strstr(err.detail, want))
		fail_msg("detail \"%s\" does not contain \"%s\"", err.detail, want);
	if (strcmp(err.id, id) != 0)
		fail_msg("%.60s: id \"%s\", want \"%s\"", text, err.id, id);
	assert_string_equal(err.e164, e164);
}

#define REFUSED(t, want) refused(t, strlen(t), 0, want, "", "")

/* A create request whose body is the good one with one change. */
static void refused_body(const char *body, const char *want)
{
	char buf[1024];

	snprintf(buf, sizeof(buf),
		 "{\"type\": \"cm_mau_createconf_req\", \"id\": \"r1\", \"ts\": 1, \"src\": \"cm\", \"body\": %s}",
		 body);
	const char *e = strstr(body, "\"e164\": \"");
	char e164[40] = "";

	/* The e164 is kept for the NACK whenever it is a string. */
	if (e)
		snprintf(e164, sizeof(e164), "%.*s", (int)strcspn(e + 9, "\""), e + 9);
	refused(buf, strlen(buf), 0, want, "r1", e164);
}

static void test_malformed_envelopes(void **state)
{
	REFUSED("{\"type\": \"cm_mau_createconf_req\", \"id\"", "not JSON");
	REFUSED("", "not JSON");
	REFUSED("[1, 2]", "expected a JSON object, got array");
	REFUSED("\"just a string\"", "expected a JSON object, got string");
	refused("{\"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": {}}", 45, 0,
		"type: expected a string of 1..64 characters, missing", "a", "");
	refused("{\"type\": \"nosuch_type_req\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": {}}",
		strlen("{\"type\": \"nosuch_type_req\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": {}}"), 0,
		"type: unknown message type \"nosuch_type_req\"", "a", "");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"ts\": 1, \"src\": \"cm\", \"body\": {}}", "id: expected");
	refused("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": -5, \"src\": \"cm\", \"body\": {}}",
		strlen("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": -5, \"src\": \"cm\", \"body\": {}}"),
		0, "ts: expected milliseconds", "a", "");
	refused("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": [1]}",
		strlen("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": [1]}"),
		0, "body: expected object, got array", "a", "");
	refused("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\"}",
		strlen("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\"}"), 0,
		"body: missing", "a", "");
	REFUSED("{\"type\": \"a\", \"type\": \"b\"}", "duplicate");
	/* a NUL byte inside a string, and raw bytes after the object */
	refused("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\\u0000b\"}", 48, 0, "not JSON", "", "");
	refused("{}\0garbage", 10, 0, "not JSON", "", "");
	/* oversize, checked before parsing */
	refused(good_create, strlen(good_create), 100, "more than the limit of 100", "", "");
}

static void test_deep_nesting_and_huge_numbers(void **state)
{
	char deep[512];
	size_t n = 0;

	n += (size_t)snprintf(deep, sizeof(deep),
			      "{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1, "
			      "\"src\": \"cm\", \"body\": {\"e164\": \"1234\", \"x\": ");
	for (int i = 0; i < 40; i++)
		deep[n++] = '[';
	for (int i = 0; i < 40; i++)
		deep[n++] = ']';
	n += (size_t)snprintf(deep + n, sizeof(deep) - n, "}}");
	refused(deep, n, 0, "nested deeper than 16 levels", "a", "1234");
	{
		/* jansson refuses integers beyond 64 bits while parsing: nothing is read */
		const char *t = "{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 99999999999999999999999}";

		refused(t, strlen(t), 0, "not JSON: too big integer", "", "");
	}
}

static void test_every_create_field_checked(void **state)
{
	refused_body("{\"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60}", "body.e164: missing");
	refused_body("{\"e164\": \"05a2\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.e164: expected digits only, got \"05a2\"");
	refused_body("{\"e164\": 512, \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.e164: expected E164 digits, got integer");
	refused_body("{\"e164\": \"05\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.e164: expected length 3..32, got 2");
	refused_body("{\"e164\": \"0512\", \"user_domain\": \"u\", \"duration_min\": 60}", "body.name: missing");
	refused_body("{\"e164\": \"0512\", \"name\": \"\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.name: expected length 1..128, got 0");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"duration_min\": 60}", "body.user_domain: missing");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": [], \"duration_min\": 60}",
		     "body.user_domain: expected string, got array");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\"}", "body.duration_min: missing");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": \"60\"}",
		     "body.duration_min: expected integer 1..1440, got string");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": -1}",
		     "body.duration_min: expected integer 1..1440, got -1");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 6.5}",
		     "body.duration_min: expected integer 1..1440, got number");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, \"h265\": 1}",
		     "body.h265: expected boolean, got integer");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, "
		     "\"resolution\": \"8k\"}",
		     "body.resolution: expected one of 360p|480p|720p|1080p|4k, got \"8k\"");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, "
		     "\"record\": null}",
		     "body.record: expected boolean, got null");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, "
		     "\"max_participants\": 1}",
		     "body.max_participants: expected integer 2..10000, got 1");
}

static void test_strict_types_refuse_unknown_fields(void **state)
{
	const char *t = "{\"type\": \"rms_all_mcu_ntf\", \"id\": \"n1\", \"ts\": 1, \"src\": \"rms\", \"body\": "
			"{\"mcu\": \"m1\", \"room\": \"p1-r1\", \"platform\": \"p1\", \"state\": \"down\", "
			"\"reason\": \"heartbeat\", \"epoch\": 3, \"extra\": 1}}";

	refused(t, strlen(t), 0, "body.extra: unknown field", "n1", "");
}

static void test_reply_types_and_nack_body(void **state)
{
	char out[96];
	struct cdr_msg_error err = { 0 };
	json_t *b;

	assert_int_equal(cdr_msg_reply_type("cm_mau_createconf_req", true, out, sizeof(out)), 0);
	assert_string_equal(out, "mau_cm_createconf_ack");
	assert_int_equal(cdr_msg_reply_type("mau_rms_bulkalloc_req", false, out, sizeof(out)), 0);
	assert_string_equal(out, "rms_mau_bulkalloc_nack");
	assert_int_equal(cdr_msg_reply_type("rms_all_mcu_ntf", true, out, sizeof(out)), -EINVAL);
	assert_int_equal(cdr_msg_reply_type("cm_req", true, out, sizeof(out)), -EINVAL);
	/* every _req in the table has its _ack in the table */
	for (const struct cdr_msg_type *t = cdr_msg_types; t->name; t++) {
		size_t l = strlen(t->name);

		if (l > 4 && strcmp(t->name + l - 4, "_req") == 0) {
			assert_int_equal(cdr_msg_reply_type(t->name, true, out, sizeof(out)), 0);
			if (!cdr_msg_type_find(out))
				fail_msg("%s has no %s in the table", t->name, out);
		}
	}
	snprintf(err.reason, sizeof(err.reason), "bad_request");
	snprintf(err.detail, sizeof(err.detail), "body.name: missing");
	snprintf(err.e164, sizeof(err.e164), "0512");
	b = cdr_msg_nack_body(&err);
	assert_string_equal(json_string_value(json_object_get(b, "reason")), "bad_request");
	assert_string_equal(json_string_value(json_object_get(b, "e164")), "0512");
	assert_string_equal(json_string_value(json_object_get(b, "detail")), "body.name: missing");
	json_decref(b);
}

/* A valid sample value for a field. */
static json_t *sample(const struct cdr_field *f)
{
	switch (f->type) {
	case CDR_F_E164: return json_string("0512000123");
	case CDR_F_STR:
	case CDR_F_STR_OR_NULL: return json_string(f->min > 1 ? "abcdefgh" : "x");
	case CDR_F_INT: return json_integer(f->min);
	case CDR_F_BOOL: return json_true();
	case CDR_F_ENUM: return json_string(f->choices[0]);
	case CDR_F_OBJ: return json_object();
	case CDR_F_ARR: {
		json_t *a = json_array();
		for (int64_t i = 0; i < f->min; i++)
			json_array_append_new(a, json_object());
		return a;
	}
	}
	return json_null();
}

static void test_every_type_round_trips(void **state)
{
	size_t n = 0;

	for (const struct cdr_msg_type *t = cdr_msg_types; t->name; t++, n++) {
		json_t *body = json_object();
		struct cdr_msg *m = NULL;
		struct cdr_msg_error err;
		char *s;
		int r;

		for (const struct cdr_field *f = t->fields; f->name; f++)
			json_object_set_new(body, f->name, sample(f));
		s = cdr_msg_encode(t->name, "id-1", "test", 0, body);
		assert_non_null(s);
		r = cdr_msg_decode(s, strlen(s), 0, &m, &err);
		if (r < 0)
			fail_msg("%s: %s", t->name, err.detail);
		assert_string_equal(m->type, t->name);
		assert_true(m->ts > 1700000000000LL);
		for (const struct cdr_field *f = t->fields; f->name; f++)
			assert_non_null(json_object_get(m->body, f->name));
		cdr_msg_free(m);
		free(s);
	}
	assert_true(n >= 60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_create_decodes),
		cmocka_unit_test(test_malformed_envelopes),
		cmocka_unit_test(test_deep_nesting_and_huge_numbers),
		cmocka_unit_test(test_every_create_field_checked),
		cmocka_unit_test(test_strict_types_refuse_unknown_fields),
		cmocka_unit_test(test_reply_types_and_nack_body),
		cmocka_unit_test(test_every_type_round_trips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
