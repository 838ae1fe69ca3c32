/* The message codec: a good create request decodes; every kind of malformed
 * input is refused with bad_request, the right fault and a precise detail,
 * keeping the id and e164 for the NACK; every type in the table round-trips;
 * the fixtures and every example of docs/protocol.md decode as they should. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
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

/* Decodes len bytes copied into a buffer of exactly that size (no NUL after
 * them: valgrind/ASan catch any read past len). */
static int decode_exact(const char *text, size_t len, size_t max, struct cdr_msg **m, struct cdr_msg_error *err)
{
	char *copy = malloc(len ? len : 1);
	int r;

	assert_non_null(copy);
	memcpy(copy, text, len);
	r = cdr_msg_decode(copy, len, max, m, err);
	free(copy);
	return r;
}

static void test_good_create_decodes(void **state)
{
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;

	assert_int_equal(decode_exact(good_create, strlen(good_create), CDR_MSG_MAX_CM, &m, &err), 0);
	assert_int_equal(err.fault, CDR_MSG_FAULT_NONE);
	assert_string_equal(err.detail, "");
	assert_string_equal(cdr_msg_type(m), "cm_mau_createconf_req");
	assert_string_equal(cdr_msg_id(m), "req-000123");
	assert_string_equal(cdr_msg_src(m), "cm");
	assert_int_equal(cdr_msg_ts(m), 1795000000000LL);
	assert_string_equal(cdr_msg_spec(m)->route, "mau.conf.q");
	assert_string_equal(cdr_msg_str(m, "e164", NULL), "0512000123");
	assert_string_equal(cdr_msg_str(m, "name", NULL), "Weekly sync");
	assert_int_equal(cdr_msg_int(m, "duration_min", 0), 60);
	assert_int_equal(cdr_msg_int(m, "max_participants", 0), 16);
	assert_false(cdr_msg_bool(m, "h265", true));
	assert_false(cdr_msg_bool(m, "record", true));
	/* optional fields and defaults */
	assert_string_equal(cdr_msg_str(m, "missing", "dflt"), "dflt");
	assert_int_equal(cdr_msg_int(m, "name", -1), -1); /* wrong JSON type: the default */
	assert_true(cdr_msg_has(m, "resolution"));
	assert_false(cdr_msg_has(m, "password"));
	assert_null(cdr_msg_get(m, "password"));
	/* the CM's own fields are tolerated and kept */
	assert_int_equal(cdr_msg_jint(cdr_msg_get(m, "cm_private_field"), "x", 0), 1);
	assert_int_equal(cdr_msg_jint(NULL, "x", 7), 7);
	assert_true(json_is_object(cdr_msg_body(m)));
	assert_null(cdr_msg_free(m));
	assert_null(cdr_msg_free(NULL));
}

/* Decodes text (len bytes); expects refusal with fault, detail containing want,
 * and the id and e164 kept for the NACK. */
static void refused_f(const char *text, size_t len, size_t max, enum cdr_msg_fault fault, const char *want,
		      const char *id, const char *e164)
{
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;
	int r = decode_exact(text, len, max, &m, &err);

	if (r >= 0)
		fail_msg("accepted: %.*s", (int)len, text);
	assert_null(m);
	assert_int_equal(r, fault == CDR_MSG_FAULT_TOO_LARGE ? -EMSGSIZE : -EINVAL);
	assert_string_equal(err.reason, "bad_request");
	if (err.fault != fault)
		fail_msg("%.80s: fault %s, want %s (%s)", text, cdr_msg_fault_name(err.fault),
			 cdr_msg_fault_name(fault), err.detail);
	if (!strstr(err.detail, want))
		fail_msg("detail \"%s\" does not contain \"%s\"", err.detail, want);
	if (strcmp(err.id, id) != 0)
		fail_msg("%.80s: id \"%s\", want \"%s\"", text, err.id, id);
	if (strcmp(err.e164, e164) != 0)
		fail_msg("%.80s: e164 \"%s\", want \"%s\"", text, err.e164, e164);
}

#define REFUSED(t, fault, want, id, e164) refused_f(t, strlen(t), 0, fault, want, id, e164)

/* A create request whose body is body; want is the whole expected detail. */
static void refused_body(const char *body, const char *want)
{
	char buf[2048], e164[40] = "";
	const char *e = strstr(body, "\"e164\": \"");
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;

	snprintf(buf, sizeof(buf),
		 "{\"type\": \"cm_mau_createconf_req\", \"id\": \"r1\", \"ts\": 1, \"src\": \"cm\", \"body\": %s}",
		 body);
	/* The e164 is kept for the NACK whenever it is a string. */
	if (e)
		snprintf(e164, sizeof(e164), "%.*s", (int)strcspn(e + 9, "\""), e + 9);
	refused_f(buf, strlen(buf), 0, CDR_MSG_FAULT_BODY, want, "r1", e164);
	/* want is the exact detail, not just a part of it */
	assert_int_not_equal(decode_exact(buf, strlen(buf), 0, &m, &err), 0);
	assert_string_equal(err.detail, want);
}

static void test_malformed_envelopes(void **state)
{
	char buf[256];
	size_t n;

	/* truncated, empty, not an object */
	REFUSED("{\"type\": \"cm_mau_createconf_req\", \"id\"", CDR_MSG_FAULT_NOT_JSON, "not JSON: ", "", "");
	REFUSED("{\"type\": \"cm_mau_createconf_req\",\n \"id\": }", CDR_MSG_FAULT_NOT_JSON, "at line 2 column", "",
		"");
	REFUSED("", CDR_MSG_FAULT_NOT_JSON, "not JSON", "", "");
	REFUSED("[1, 2]", CDR_MSG_FAULT_NOT_OBJECT, "expected a JSON object, got array", "", "");
	REFUSED("\"just a string\"", CDR_MSG_FAULT_NOT_OBJECT, "expected a JSON object, got string", "", "");
	REFUSED("null", CDR_MSG_FAULT_NOT_OBJECT, "expected a JSON object, got null", "", "");
	/* envelope fields missing or mistyped: the id is kept whenever it is a string */
	REFUSED("{\"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": {}}", CDR_MSG_FAULT_ENVELOPE, "type: missing",
		"a", "");
	REFUSED("{\"type\": 5, \"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": {}}", CDR_MSG_FAULT_ENVELOPE,
		"type: expected string of 1..64 bytes, got integer", "a", "");
	REFUSED("{\"type\": \"\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": {}}", CDR_MSG_FAULT_ENVELOPE,
		"type: expected string of 1..64 bytes", "a", "");
	REFUSED("{\"type\": \"nosuch_type_req\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": {}}",
		CDR_MSG_FAULT_UNKNOWN_TYPE, "type: unknown message type \"nosuch_type_req\"", "a", "");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"ts\": 1, \"src\": \"cm\", \"body\": {\"e164\": \"1234\"}}",
		CDR_MSG_FAULT_ENVELOPE, "id: missing", "", "1234");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": 17, \"ts\": 1, \"src\": \"cm\", \"body\": {}}",
		CDR_MSG_FAULT_ENVELOPE, "id: expected string of 1..127 bytes, got integer", "", "");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": -5, \"src\": \"cm\", \"body\": {}}",
		CDR_MSG_FAULT_ENVELOPE, "ts: expected integer >= 0 (milliseconds since the Unix epoch), got a negative",
		"a", "");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": \"now\", \"src\": \"cm\", \"body\": {}}",
		CDR_MSG_FAULT_ENVELOPE, "ts: expected integer >= 0 (milliseconds since the Unix epoch), got string",
		"a", "");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1, \"body\": {}}", CDR_MSG_FAULT_ENVELOPE,
		"src: missing", "a", "");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": [1]}",
		CDR_MSG_FAULT_ENVELOPE, "body: expected object, got array", "a", "");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\"}", CDR_MSG_FAULT_ENVELOPE,
		"body: missing", "a", "");
	REFUSED("{\"type\": \"a\", \"type\": \"b\"}", CDR_MSG_FAULT_NOT_JSON, "duplicate", "", "");
	/* a NUL escape inside a string, a raw NUL byte, raw bytes after the object, bad UTF-8 */
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\\u0000b\"}", CDR_MSG_FAULT_NOT_JSON, "NUL", "", "");
	refused_f("{\"id\": \"a\0b\"}", 13, 0, CDR_MSG_FAULT_NOT_JSON, "not JSON", "", "");
	refused_f("{}\0garbage", 10, 0, CDR_MSG_FAULT_NOT_JSON, "not JSON", "", "");
	REFUSED("{\"id\": \"\xff\xfe\"}", CDR_MSG_FAULT_NOT_JSON, "not JSON", "", "");
	/* oversize, checked before parsing: nothing is read */
	refused_f(good_create, strlen(good_create), 100, CDR_MSG_FAULT_TOO_LARGE, "more than the limit of 100", "", "");
	/* an unknown type is quoted safely (no control characters into logs) */
	n = (size_t)snprintf(
		buf, sizeof(buf),
		"{\"type\": \"x\\n\\u001b[31m\", \"id\": \"a\", \"ts\": 1, \"src\": \"cm\", \"body\": {}}");
	refused_f(buf, n, 0, CDR_MSG_FAULT_UNKNOWN_TYPE, "type: unknown message type \"x??[31m\"", "a", "");
}

static void test_every_prefix_and_mutation_is_safe(void **state)
{
	size_t len = strlen(good_create);
	static const char bytes[] = { 0, '"', '{', '}', '[', ']', ',', ':', '\\', 'x', '9', (char)0xc3, (char)0x80 };
	char buf[sizeof(good_create)];

	/* Every truncation is refused as not JSON (the object never closes). */
	for (size_t n = 0; n < len; n++) {
		struct cdr_msg *m = NULL;
		struct cdr_msg_error err;

		assert_int_equal(decode_exact(good_create, n, 0, &m, &err), -EINVAL);
		assert_null(m);
		assert_int_equal(err.fault, CDR_MSG_FAULT_NOT_JSON);
	}
	/* Every one-byte change is decoded or refused, never crashes or leaks. */
	for (size_t i = 0; i < len; i++) {
		for (size_t b = 0; b < sizeof(bytes); b++) {
			struct cdr_msg *m = NULL;
			struct cdr_msg_error err;
			int r;

			memcpy(buf, good_create, len);
			buf[i] = bytes[b];
			r = decode_exact(buf, len, 0, &m, &err);
			if (r == 0) {
				assert_non_null(m);
				m = cdr_msg_free(m);
			} else {
				assert_true(r == -EINVAL);
				assert_null(m);
				assert_true(err.detail[0] != 0);
				assert_string_equal(err.reason, "bad_request");
			}
		}
	}
}

static void test_deep_nesting_and_huge_numbers(void **state)
{
	char deep[512];
	size_t n = 0, big = 200000;
	char *huge;

	n += (size_t)snprintf(deep, sizeof(deep),
			      "{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1, "
			      "\"src\": \"cm\", \"body\": {\"e164\": \"1234\", \"x\": ");
	for (int i = 0; i < 40; i++)
		deep[n++] = '[';
	for (int i = 0; i < 40; i++)
		deep[n++] = ']';
	n += (size_t)snprintf(deep + n, sizeof(deep) - n, "}}");
	refused_f(deep, n, 0, CDR_MSG_FAULT_TOO_DEEP, "nested deeper than 16 levels", "a", "1234");

	/* 200000 levels: jansson's parser stops at its own depth limit, no stack overflow */
	huge = malloc(2 * big);
	assert_non_null(huge);
	memset(huge, '[', big);
	memset(huge + big, ']', big);
	refused_f(huge, 2 * big, 4 * big, CDR_MSG_FAULT_NOT_JSON, "not JSON", "", "");
	free(huge);

	/* numbers beyond 64 bits or doubles are refused by the parser: nothing is read */
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 99999999999999999999999}",
		CDR_MSG_FAULT_NOT_JSON, "not JSON: too big integer", "", "");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1e999}", CDR_MSG_FAULT_NOT_JSON,
		"not JSON: real number overflow", "", "");
	/* large but valid 64-bit numbers are range-checked */
	refused_body(
		"{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 9223372036854775807}",
		"body.duration_min: expected integer 1..1440, got 9223372036854775807");
	refused_body(
		"{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": -9223372036854775808}",
		"body.duration_min: expected integer 1..1440, got -9223372036854775808");
	REFUSED("{\"type\": \"cm_mau_endconf_req\", \"id\": \"a\", \"ts\": 1e3, \"src\": \"cm\", \"body\": {}}",
		CDR_MSG_FAULT_ENVELOPE, "ts: expected integer >= 0", "a", "");
}

static void test_every_create_field_checked(void **state)
{
	refused_body("{\"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.e164: missing (expected E164 of 3..32 digits)");
	refused_body("{\"e164\": \"05a2\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.e164: expected E164 of 3..32 digits, got \"05a2\"");
	refused_body("{\"e164\": \"+86512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.e164: expected E164 of 3..32 digits, got \"+86512\"");
	refused_body("{\"e164\": 512, \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.e164: expected E164 of 3..32 digits, got integer");
	refused_body("{\"e164\": \"05\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.e164: expected E164 of 3..32 digits, got 2 digits");
	refused_body("{\"e164\": \"123456789012345678901234567890123\", \"name\": \"n\", \"user_domain\": \"u\", "
		     "\"duration_min\": 60}",
		     "body.e164: expected E164 of 3..32 digits, got 33 digits");
	refused_body("{\"e164\": \"0512\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.name: missing (expected text of 1..256 bytes without control characters)");
	refused_body("{\"e164\": \"0512\", \"name\": \"\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.name: expected text of 1..256 bytes without control characters, got 0 bytes");
	refused_body("{\"e164\": \"0512\", \"name\": null, \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.name: expected text of 1..256 bytes without control characters, got null");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"duration_min\": 60}",
		     "body.user_domain: missing (expected string of 1..64 bytes)");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": [], \"duration_min\": 60}",
		     "body.user_domain: expected string of 1..64 bytes, got array");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\"}",
		     "body.duration_min: missing (expected integer 1..1440)");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": \"60\"}",
		     "body.duration_min: expected integer 1..1440, got string");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": -1}",
		     "body.duration_min: expected integer 1..1440, got -1");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 0}",
		     "body.duration_min: expected integer 1..1440, got 0");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 6.5}",
		     "body.duration_min: expected integer 1..1440, got number");
	/* names people read: no control characters (an ESC sequence, a
	 * right-to-left override, a C1 control); other UTF-8 is fine */
	refused_body("{\"e164\": \"0512\", \"name\": \"a\\u001b[2J\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.name: expected text of 1..256 bytes without control characters, got U+001B at byte 1");
	refused_body("{\"e164\": \"0512\", \"name\": \"ab\\u202e\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.name: expected text of 1..256 bytes without control characters, got U+202E at byte 2");
	refused_body("{\"e164\": \"0512\", \"name\": \"\\u009b\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.name: expected text of 1..256 bytes without control characters, got U+009B at byte 0");
	refused_body("{\"e164\": \"0512\", \"name\": \"\\t\", \"user_domain\": \"u\", \"duration_min\": 60}",
		     "body.name: expected text of 1..256 bytes without control characters, got U+0009 at byte 0");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, \"h265\": 1}",
		     "body.h265: expected boolean, got integer");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, "
		     "\"resolution\": \"8k\"}",
		     "body.resolution: expected one of 360p|480p|720p|1080p|4k, got \"8k\"");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, "
		     "\"resolution\": 1080}",
		     "body.resolution: expected one of 360p|480p|720p|1080p|4k, got integer");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, "
		     "\"record\": null}",
		     "body.record: expected boolean, got null");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, "
		     "\"max_participants\": 1}",
		     "body.max_participants: expected integer 2..10000, got 1");
	refused_body("{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": 60, "
		     "\"max_participants\": true}",
		     "body.max_participants: expected integer 2..10000, got boolean");
}

/* A valid sample value for a field, recursively for objects and arrays. */
static json_t *sample(const struct cdr_field *f);

static json_t *sample_object(const struct cdr_field *fields)
{
	json_t *o = json_object();

	for (const struct cdr_field *f = fields; f && f->name; f++)
		json_object_set_new(o, f->name, sample(f));
	return o;
}

static json_t *sample(const struct cdr_field *f)
{
	switch (f->type) {
	case CDR_F_E164: return json_string("0512000123");
	case CDR_F_STR:
	case CDR_F_TEXT: return json_string(f->min > 1 ? "abcdefgh" : "x");
	case CDR_F_CODE: return json_string("some_code");
	case CDR_F_INT: return json_integer(f->max > 1 ? f->min + 1 : f->min);
	case CDR_F_BOOL: return json_true();
	case CDR_F_ENUM: return json_string(f->choices[0]);
	case CDR_F_OBJ: return sample_object(f->sub);
	case CDR_F_ARR: {
		json_t *a = json_array();

		for (int64_t i = 0; i < (f->min > 2 ? f->min : 2) && i < f->max; i++)
			json_array_append_new(a, f->items ? sample(f->items) : json_integer(i));
		return a;
	}
	}
	return json_null();
}

/* Epochs are ZooKeeper counters (32 bits): a larger one is forged and the
 * message refused, so that it cannot pin a receiver that keeps the largest
 * epoch seen (a pms_all_room_ntf with epoch 2^63-1 did: issue 22). */
static void test_epoch_beyond_32_bits_refused(void **state)
{
	const struct cdr_msg_type *t = cdr_msg_type_find("pms_all_room_ntf");
	struct cdr_msg_error err;
	struct cdr_msg *m = NULL;
	json_t *body;
	char *txt;

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < 3; i++) {
		json_int_t epoch = i == 0 ? CDR_EPOCH_MAX : i == 1 ? (json_int_t)CDR_EPOCH_MAX + 1 : INT64_MAX;

		body = sample_object(t->fields);
		json_object_set_new(body, "epoch", json_integer(epoch));
		txt = cdr_msg_encode(t->name, "id-1", "pms", 0, body);
		assert_non_null(txt);
		if (i == 0) {
			assert_int_equal(decode_exact(txt, strlen(txt), 0, &m, &err), 0);
			cdr_msg_free(m);
		} else {
			assert_int_equal(decode_exact(txt, strlen(txt), 0, &m, &err), -EINVAL);
			assert_non_null(strstr(err.detail, "body.epoch: expected integer 0..2147483647"));
		}
		free(txt);
	}
}

static void test_every_type_round_trips(void **state)
{
	size_t n = 0;

	for (const struct cdr_msg_type *t = cdr_msg_types; t->name; t++, n++) {
		json_t *body = sample_object(t->fields), *again;
		struct cdr_msg *m = NULL;
		struct cdr_msg_error err;
		char *s;

		json_incref(body);
		s = cdr_msg_encode(t->name, "id-1", "test", 0, body); /* steals one reference */
		assert_non_null(s);
		if (decode_exact(s, strlen(s), 0, &m, &err) < 0)
			fail_msg("%s: %s", t->name, err.detail);
		assert_string_equal(cdr_msg_type(m), t->name);
		assert_ptr_equal(cdr_msg_spec(m), t);
		assert_string_equal(cdr_msg_id(m), "id-1");
		assert_string_equal(cdr_msg_src(m), "test");
		assert_true(cdr_msg_ts(m) > 1700000000000LL);
		assert_true(json_equal(cdr_msg_body(m), body));
		/* re-encoding the decoded body gives the same message */
		again = json_incref(cdr_msg_body(m));
		free(s);
		s = cdr_msg_encode(t->name, "id-1", "test", 1, again);
		cdr_msg_free(m);
		assert_int_equal(decode_exact(s, strlen(s), 0, &m, &err), 0);
		assert_true(json_equal(cdr_msg_body(m), body));
		cdr_msg_free(m);
		free(s);

		/* every required field is enforced: removing it is refused by name */
		for (const struct cdr_field *f = t->fields; f->name; f++) {
			json_t *b = json_deep_copy(body);
			char want[96];

			if (!f->required) {
				json_decref(b);
				continue;
			}
			json_object_del(b, f->name);
			assert_int_equal(cdr_msg_check_body(t, b, &err), -EINVAL);
			snprintf(want, sizeof(want), "body.%s: missing", f->name);
			if (strncmp(err.detail, want, strlen(want)) != 0)
				fail_msg("%s: %s", t->name, err.detail);
			json_decref(b);
		}
		/* an extra field: refused by strict types, tolerated by the others */
		json_object_set_new(body, "zz_extra", json_true());
		if (t->strict) {
			assert_int_equal(cdr_msg_check_body(t, body, &err), -EINVAL);
			assert_string_equal(err.detail, "body.zz_extra: unknown field");
		} else {
			assert_int_equal(cdr_msg_check_body(t, body, &err), 0);
		}
		json_decref(body);
	}
	assert_true(n >= 80);
}

static void test_table_is_consistent(void **state)
{
	char out[128];

	for (const struct cdr_msg_type *t = cdr_msg_types; t->name; t++) {
		size_t l = strlen(t->name);

		assert_non_null(t->from);
		assert_non_null(t->to);
		assert_non_null(t->route);
		assert_non_null(t->doc);
		assert_ptr_equal(cdr_msg_type_find(t->name), t);
		if (!(l > 4 && (strcmp(t->name + l - 4, "_req") == 0 || strcmp(t->name + l - 4, "_ack") == 0 ||
				strcmp(t->name + l - 4, "_ntf") == 0)) &&
		    !(l > 5 && strcmp(t->name + l - 5, "_nack") == 0))
			fail_msg("%s: not src_dst_verb_req|ack|nack|ntf", t->name);
		/* every request has its ack and its nack */
		if (strcmp(t->name + l - 4, "_req") == 0) {
			assert_int_equal(cdr_msg_reply_type(t->name, true, out, sizeof(out)), 0);
			if (!cdr_msg_type_find(out))
				fail_msg("%s has no %s", t->name, out);
			assert_int_equal(cdr_msg_reply_type(t->name, false, out, sizeof(out)), 0);
			if (!cdr_msg_type_find(out))
				fail_msg("%s has no %s", t->name, out);
		}
		for (const struct cdr_msg_type *u = t + 1; u->name; u++)
			assert_string_not_equal(t->name, u->name);
	}
	assert_null(cdr_msg_type_find("nope"));
	assert_null(cdr_msg_type_find(NULL));
}

static void test_nested_schemas(void **state)
{
	const char *t =
		"{\"type\": \"mau_rms_bulkalloc_req\", \"id\": \"b1\", \"ts\": 1, \"src\": \"css\", \"body\": "
		"{\"confs\": [{\"e164\": \"1001\", \"user_domain\": \"ud\"}, {\"e164\": \"1002\", \"user_domain\": "
		"\"ud\", \"exclude_mcus\": [\"m1\", 7]}], \"epoch\": 3}}";

	REFUSED(t, CDR_MSG_FAULT_BODY, "body.confs[1].exclude_mcus[1]: expected string of 1..64 bytes, got integer",
		"b1", "");
	t = "{\"type\": \"mau_rms_bulkalloc_req\", \"id\": \"b1\", \"ts\": 1, \"src\": \"css\", \"body\": "
	    "{\"confs\": [{\"e164\": \"1001\", \"user_domain\": \"ud\", \"colour\": \"red\"}], \"epoch\": 3}}";
	REFUSED(t, CDR_MSG_FAULT_BODY, "body.confs[0].colour: unknown field", "b1", "");
	t = "{\"type\": \"mau_rms_bulkalloc_req\", \"id\": \"b1\", \"ts\": 1, \"src\": \"css\", \"body\": "
	    "{\"confs\": [], \"epoch\": 3}}";
	REFUSED(t, CDR_MSG_FAULT_BODY, "body.confs: expected array of 1..10000 elements, got 0", "b1", "");
	t = "{\"type\": \"mau_cm_listconf_ack\", \"id\": \"l1\", \"ts\": 1, \"src\": \"css\", \"body\": "
	    "{\"user_domain\": \"ud\", \"confs\": [{\"e164\": \"1001\"}]}}";
	REFUSED(t, CDR_MSG_FAULT_BODY, "body.confs[0].name: missing", "l1", "");
	/* nullable: "vrs": null is fine, a missing vrs is not */
	t = "{\"type\": \"mau_cm_createconf_ack\", \"id\": \"c1\", \"ts\": 1, \"src\": \"css\", \"body\": "
	    "{\"e164\": \"1001\", \"mcu\": \"m\", \"room\": \"r\", \"platform\": \"p\"}}";
	REFUSED(t, CDR_MSG_FAULT_BODY, "body.vrs: missing (expected string of 1..64 bytes or null)", "c1", "1001");
	/* codes */
	t = "{\"type\": \"mau_cm_createconf_nack\", \"id\": \"c1\", \"ts\": 1, \"src\": \"css\", \"body\": "
	    "{\"reason\": \"No Capacity\", \"detail\": \"\"}}";
	REFUSED(t, CDR_MSG_FAULT_BODY, "body.reason: expected code [a-z][a-z0-9_]* of 1..64 bytes, got \"No Capacity\"",
		"c1", "");
	t = "{\"type\": \"rms_mau_alloc_nack\", \"id\": \"c1\", \"ts\": 1, \"src\": \"rms\", \"body\": "
	    "{\"reason\": \"no_mcus\"}}";
	REFUSED(t, CDR_MSG_FAULT_BODY, "body.reason: expected one of no_capacity|unknown_room|", "c1", "");
}

static void test_replies(void **state)
{
	char out[96];
	struct cdr_msg_error err = { 0 };
	struct cdr_msg *req = NULL, *rep = NULL;
	json_t *b;
	char *s;

	assert_int_equal(cdr_msg_reply_type("cm_mau_createconf_req", true, out, sizeof(out)), 0);
	assert_string_equal(out, "mau_cm_createconf_ack");
	assert_int_equal(cdr_msg_reply_type("cm_mau_createconf_req", false, out, sizeof(out)), 0);
	assert_string_equal(out, "mau_cm_createconf_nack");
	assert_int_equal(cdr_msg_reply_type("mau_rms_bulkalloc_req", false, out, sizeof(out)), 0);
	assert_string_equal(out, "rms_mau_bulkalloc_nack");
	assert_int_equal(cdr_msg_reply_type("cm_mau_some_new_verb_req", false, out, sizeof(out)), 0);
	assert_string_equal(out, "mau_cm_some_new_verb_nack");
	assert_int_equal(cdr_msg_reply_type("rms_all_mcu_ntf", true, out, sizeof(out)), -EINVAL);
	assert_int_equal(cdr_msg_reply_type("cm_req", true, out, sizeof(out)), -EINVAL);
	assert_int_equal(cdr_msg_reply_type("cm_mau__req", true, out, sizeof(out)), -EINVAL);
	assert_int_equal(cdr_msg_reply_type("CM_MAU_X_REQ", true, out, sizeof(out)), -EINVAL);
	assert_int_equal(cdr_msg_reply_type("cm_mau_x\"y_req", true, out, sizeof(out)), -EINVAL);
	assert_int_equal(cdr_msg_reply_type("", true, out, sizeof(out)), -EINVAL);
	assert_int_equal(cdr_msg_reply_type("cm_mau_createconf_req", true, out, 10), -ENOSPC);

	/* an answer to a decoded request: derived type, same id */
	assert_int_equal(cdr_msg_decode(good_create, strlen(good_create), 0, &req, &err), 0);
	s = cdr_msg_encode_reply(req, true, "css",
				 json_pack("{s:s, s:s, s:n, s:s, s:s}", "e164", "0512000123", "mcu", "mcu-p1-r1-03",
					   "vrs", "room", "p1-r1", "platform", "p1"));
	assert_non_null(s);
	assert_int_equal(cdr_msg_decode(s, strlen(s), 0, &rep, &err), 0);
	assert_string_equal(cdr_msg_type(rep), "mau_cm_createconf_ack");
	assert_string_equal(cdr_msg_id(rep), "req-000123");
	assert_null(cdr_msg_get(rep, "vrs"));
	assert_string_equal(cdr_msg_str(rep, "vrs", "none"), "none");
	rep = cdr_msg_free(rep);
	free(s);
	cdr_msg_free(req);

	/* the NACK of a refused request carries what could be read */
	s = "{\"type\": \"cm_mau_createconf_req\", \"id\": \"r9\", \"ts\": 1, \"src\": \"cm\", \"body\": "
	    "{\"e164\": \"0512\", \"name\": \"n\", \"user_domain\": \"u\", \"duration_min\": \"60\"}}";
	assert_int_equal(cdr_msg_decode(s, strlen(s), 0, &req, &err), -EINVAL);
	b = cdr_msg_nack_body(&err);
	assert_string_equal(json_string_value(json_object_get(b, "reason")), "bad_request");
	assert_string_equal(json_string_value(json_object_get(b, "e164")), "0512");
	assert_string_equal(json_string_value(json_object_get(b, "detail")),
			    "body.duration_min: expected integer 1..1440, got string");
	json_decref(b);
	s = cdr_msg_encode_refusal(&err, "corr-1", "mau_cm_request_nack", "css");
	assert_int_equal(cdr_msg_decode(s, strlen(s), 0, &rep, &err), 0);
	assert_string_equal(cdr_msg_type(rep), "mau_cm_createconf_nack");
	assert_string_equal(cdr_msg_id(rep), "r9");
	assert_string_equal(cdr_msg_str(rep, "e164", ""), "0512");
	assert_string_equal(cdr_msg_str(rep, "reason", ""), "bad_request");
	rep = cdr_msg_free(rep);
	free(s);

	/* unreadable type and id: the fallback type and the AMQP correlation_id */
	assert_int_equal(cdr_msg_decode("[]", 2, 0, &req, &err), -EINVAL);
	assert_null(cdr_msg_encode_refusal(&err, "corr-2", NULL, "css"));
	s = cdr_msg_encode_refusal(&err, "corr-2", "mau_cm_request_nack", "css");
	assert_int_equal(cdr_msg_decode(s, strlen(s), 0, &rep, &err), 0);
	assert_string_equal(cdr_msg_type(rep), "mau_cm_request_nack");
	assert_string_equal(cdr_msg_id(rep), "corr-2");
	assert_false(cdr_msg_has(rep, "e164"));
	assert_string_equal(cdr_msg_str(rep, "detail", ""), "expected a JSON object, got array");
	rep = cdr_msg_free(rep);
	free(s);

	/* encode: NULL body is {}, missing names refused (the body is released: valgrind checks) */
	s = cdr_msg_encode("cm_mau_endconf_req", "x", "cm", 5, NULL);
	assert_string_equal(s, "{\"type\":\"cm_mau_endconf_req\",\"id\":\"x\",\"ts\":5,\"src\":\"cm\",\"body\":{}}");
	free(s);
	assert_null(cdr_msg_encode(NULL, "x", "cm", 5, json_object()));
	assert_null(cdr_msg_encode("t", "", "cm", 5, json_object()));
	assert_null(cdr_msg_encode("t", "x", "cm", 5, json_string("not an object, released")));
	assert_string_equal(cdr_msg_fault_name(CDR_MSG_FAULT_BODY), "bad_body");
}

/* Reads a whole file; NULL if absent. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* tests/fixtures/msg/good/\*.json decode; bad/<x>.json are refused with a
 * detail containing the first line of bad/<x>.expect. */
static void test_fixtures(void **state)
{
	const char *dirs[] = { CONFDR_SOURCE_DIR "/tests/fixtures/msg/good",
			       CONFDR_SOURCE_DIR "/tests/fixtures/msg/bad" };
	int counts[2] = { 0, 0 };

	for (int d = 0; d < 2; d++) {
		DIR *dir = opendir(dirs[d]);
		struct dirent *e;

		assert_non_null(dir);
		while ((e = readdir(dir))) {
			char path[1024], expect_path[1024];
			size_t len = strlen(e->d_name), elen;
			struct cdr_msg *m = NULL;
			struct cdr_msg_error err;
			char *text, *expect;
			int r;

			if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dirs[d], e->d_name);
			text = slurp(path, &len);
			assert_non_null(text);
			r = decode_exact(text, len, CDR_MSG_MAX_CM, &m, &err);
			if (d == 0) {
				if (r < 0)
					fail_msg("%s: %s", path, err.detail);
				cdr_msg_free(m);
			} else {
				snprintf(expect_path, sizeof(expect_path), "%.*s.expect", (int)(strlen(path) - 5),
					 path);
				expect = slurp(expect_path, &elen);
				if (!expect)
					fail_msg("%s: no .expect", path);
				expect[strcspn(expect, "\n")] = 0;
				if (r == 0)
					fail_msg("%s: accepted", path);
				if (!strstr(err.detail, expect))
					fail_msg("%s: detail \"%s\", want \"%s\"", path, err.detail, expect);
				free(expect);
			}
			free(text);
			counts[d]++;
		}
		closedir(dir);
	}
	assert_true(counts[0] >= 3);
	assert_true(counts[1] >= 5);
}

/* docs/protocol.md: every type has a "#### `name`" section whose first ```json
 * block is a valid message of that type, and every ```json block decodes. */
static void test_protocol_doc(void **state)
{
	size_t len, blocks = 0;
	char *doc = slurp(CONFDR_SOURCE_DIR "/docs/protocol.md", &len), *p;

	assert_non_null(doc);
	for (p = doc; (p = strstr(p, "\n```json\n")); blocks++) {
		char *start = p + 9, *end = strstr(start, "\n```");
		struct cdr_msg *m = NULL;
		struct cdr_msg_error err;

		assert_non_null(end);
		if (cdr_msg_decode(start, (size_t)(end - start), 0, &m, &err) < 0)
			fail_msg("docs/protocol.md example %zu: %s\n%.*s", blocks + 1, err.detail, (int)(end - start),
				 start);
		cdr_msg_free(m);
		p = end + 4;
	}
	for (const struct cdr_msg_type *t = cdr_msg_types; t->name; t++) {
		char head[128], *sec, *ex, *end, *next;
		struct cdr_msg *m = NULL;
		struct cdr_msg_error err;

		snprintf(head, sizeof(head), "\n#### `%s`", t->name);
		sec = strstr(doc, head);
		if (!sec)
			fail_msg("docs/protocol.md: no section %s", head + 1);
		next = strstr(sec + 1, "\n#");
		ex = strstr(sec, "\n```json\n");
		if (!ex || (next && ex > next))
			fail_msg("docs/protocol.md: %s has no example", t->name);
		end = strstr(ex + 9, "\n```");
		assert_int_equal(cdr_msg_decode(ex + 9, (size_t)(end - ex - 9), 0, &m, &err), 0);
		if (strcmp(cdr_msg_type(m), t->name) != 0)
			fail_msg("docs/protocol.md: the example of %s is a %s", t->name, cdr_msg_type(m));
		cdr_msg_free(m);
	}
	assert_true(blocks >= 80);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_create_decodes),
		cmocka_unit_test(test_malformed_envelopes),
		cmocka_unit_test(test_every_prefix_and_mutation_is_safe),
		cmocka_unit_test(test_deep_nesting_and_huge_numbers),
		cmocka_unit_test(test_every_create_field_checked),
		cmocka_unit_test(test_table_is_consistent),
		cmocka_unit_test(test_nested_schemas),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_every_type_round_trips),
		cmocka_unit_test(test_epoch_beyond_32_bits_refused),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_protocol_doc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
