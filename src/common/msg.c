/* Envelope and body validation of bus messages. */
#include <confdr/msg.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <confdr/loop.h>

static int fail(struct cdr_msg_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct cdr_msg_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	snprintf(err->reason, sizeof(err->reason), "bad_request");
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
	return code;
}

const struct cdr_msg_type *cdr_msg_type_find(const char *name)
{
	for (const struct cdr_msg_type *t = cdr_msg_types; t->name; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

static size_t depth_of(const json_t *v, size_t limit)
{
	size_t d = 0, i;
	const char *k;
	json_t *x;

	if (limit == 0)
		return 1;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x)
		{
			size_t c = depth_of(x, limit - 1);
			if (c > d)
				d = c;
		}
		return d + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
		{
			size_t c = depth_of(x, limit - 1);
			if (c > d)
				d = c;
		}
		return d + 1;
	}
	return 0;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static int check_field(const struct cdr_field *f, const json_t *v, struct cdr_msg_error *err)
{
	switch (f->type) {
	case CDR_F_STR_OR_NULL:
		if (json_is_null(v))
			return 0;
		/* fall through */
	case CDR_F_STR:
	case CDR_F_E164: {
		size_t len;
		const char *s;

		if (!json_is_string(v))
			return fail(err, -EINVAL, "body.%s: expected %s, got %s", f->name,
				    f->type == CDR_F_E164 ? "E164 digits" : "string", json_kind(v));
		s = json_string_value(v);
		len = json_string_length(v);
		if (strlen(s) != len)
			return fail(err, -EINVAL, "body.%s: contains a NUL character", f->name);
		if (f->type == CDR_F_E164 && !all_digits(s))
			return fail(err, -EINVAL, "body.%s: expected digits only, got \"%.40s\"", f->name, s);
		if ((int64_t)len < f->min || (f->max && (int64_t)len > f->max))
			return fail(err, -EINVAL, "body.%s: expected length %" PRId64 "..%" PRId64 ", got %zu", f->name,
				    f->min, f->max, len);
		return 0;
	}
	case CDR_F_INT: {
		json_int_t n;

		if (!json_is_integer(v))
			return fail(err, -EINVAL, "body.%s: expected integer %" PRId64 "..%" PRId64 ", got %s", f->name,
				    f->min, f->max, json_kind(v));
		n = json_integer_value(v);
		if (n < f->min || n > f->max)
			return fail(err, -EINVAL,
				    "body.%s: expected integer %" PRId64 "..%" PRId64 ", got %" JSON_INTEGER_FORMAT,
				    f->name, f->min, f->max, n);
		return 0;
	}
	case CDR_F_BOOL:
		if (!json_is_boolean(v))
			return fail(err, -EINVAL, "body.%s: expected boolean, got %s", f->name, json_kind(v));
		return 0;
	case CDR_F_ENUM:
		if (json_is_string(v)) {
			for (int i = 0; f->choices[i]; i++)
				if (strcmp(f->choices[i], json_string_value(v)) == 0)
					return 0;
		}
		{
			char list[160] = "";
			size_t used = 0;

			for (int i = 0; f->choices[i] && used < sizeof(list); i++)
				used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? "|" : "",
							 f->choices[i]);
			if (json_is_string(v))
				return fail(err, -EINVAL, "body.%s: expected one of %s, got \"%.32s\"", f->name, list,
					    json_string_value(v));
			return fail(err, -EINVAL, "body.%s: expected one of %s, got %s", f->name, list, json_kind(v));
		}
	case CDR_F_OBJ:
		if (!json_is_object(v))
			return fail(err, -EINVAL, "body.%s: expected object, got %s", f->name, json_kind(v));
		return 0;
	case CDR_F_ARR:
		if (!json_is_array(v))
			return fail(err, -EINVAL, "body.%s: expected array, got %s", f->name, json_kind(v));
		if ((int64_t)json_array_size(v) < f->min || (f->max && (int64_t)json_array_size(v) > f->max))
			return fail(err, -EINVAL, "body.%s: expected %" PRId64 "..%" PRId64 " elements, got %zu",
				    f->name, f->min, f->max, json_array_size(v));
		return 0;
	}
	return fail(err, -EINVAL, "body.%s: unknown field type", f->name);
}

int cdr_msg_check_body(const struct cdr_msg_type *spec, const json_t *body, struct cdr_msg_error *err)
{
	const char *key;
	json_t *v;
	int r;

	if (!json_is_object(body))
		return fail(err, -EINVAL, "body: expected object, got %s", json_kind(body));
	for (const struct cdr_field *f = spec->fields; f->name; f++) {
		v = json_object_get(body, f->name);
		if (!v) {
			if (f->required)
				return fail(err, -EINVAL, "body.%s: missing", f->name);
			continue;
		}
		if ((r = check_field(f, v, err)) < 0)
			return r;
	}
	if (spec->strict) {
		json_object_foreach((json_t *)body, key, v)
		{
			const struct cdr_field *f;

			for (f = spec->fields; f->name && strcmp(f->name, key); f++)
				;
			if (!f->name)
				return fail(err, -EINVAL, "body.%.64s: unknown field", key);
		}
	}
	return 0;
}

static void copy_str(char *dst, size_t len, const json_t *v)
{
	const char *s = json_string_value(v);

	if (s && strlen(s) < len && strlen(s) == json_string_length(v))
		snprintf(dst, len, "%s", s);
}

int cdr_msg_decode(const void *buf, size_t len, size_t max_len, struct cdr_msg **ret, struct cdr_msg_error *err)
{
	json_error_t jerr;
	json_t *root, *type, *id, *ts, *src, *body;
	const struct cdr_msg_type *spec;
	struct cdr_msg *m;
	int r;

	memset(err, 0, sizeof(*err));
	if (!max_len)
		max_len = CDR_MSG_MAX_DEFAULT;
	if (len > max_len)
		return fail(err, -EMSGSIZE, "message of %zu bytes, more than the limit of %zu", len, max_len);
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root)
		return fail(err, -EINVAL, "not JSON: %s at line %d column %d", jerr.text, jerr.line, jerr.column);
	if (!json_is_object(root)) {
		r = fail(err, -EINVAL, "expected a JSON object, got %s", json_kind(root));
		goto out;
	}
	type = json_object_get(root, "type");
	id = json_object_get(root, "id");
	ts = json_object_get(root, "ts");
	src = json_object_get(root, "src");
	body = json_object_get(root, "body");
	/* What can be read is kept for the NACK, even if the rest is bad. */
	copy_str(err->id, sizeof(err->id), id);
	copy_str(err->type, sizeof(err->type), type);
	if (json_is_object(body))
		copy_str(err->e164, sizeof(err->e164), json_object_get(body, "e164"));
	if (depth_of(root, CDR_MSG_MAX_DEPTH + 1) > CDR_MSG_MAX_DEPTH) {
		r = fail(err, -EINVAL, "nested deeper than %d levels", CDR_MSG_MAX_DEPTH);
		goto out;
	}
	if (!json_is_string(type) || json_string_length(type) == 0 || json_string_length(type) > 64) {
		r = fail(err, -EINVAL, "type: expected a string of 1..64 characters%s", type ? "" : ", missing");
		goto out;
	}
	if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 127 ||
	    strlen(json_string_value(id)) != json_string_length(id)) {
		r = fail(err, -EINVAL, "id: expected a string of 1..127 characters%s", id ? "" : ", missing");
		goto out;
	}
	if (!json_is_integer(ts) || json_integer_value(ts) < 0) {
		r = fail(err, -EINVAL, "ts: expected milliseconds since the epoch (integer >= 0)%s",
			 ts ? "" : ", missing");
		goto out;
	}
	if (!json_is_string(src) || json_string_length(src) == 0 || json_string_length(src) > 64) {
		r = fail(err, -EINVAL, "src: expected a string of 1..64 characters%s", src ? "" : ", missing");
		goto out;
	}
	if (!body) {
		r = fail(err, -EINVAL, "body: missing");
		goto out;
	}
	spec = cdr_msg_type_find(json_string_value(type));
	if (!spec) {
		r = fail(err, -EINVAL, "type: unknown message type \"%.64s\"", json_string_value(type));
		goto out;
	}
	if ((r = cdr_msg_check_body(spec, body, err)) < 0)
		goto out;
	m = calloc(1, sizeof(*m));
	if (!m) {
		r = fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	m->spec = spec;
	m->type = strdup(json_string_value(type));
	m->id = strdup(json_string_value(id));
	m->src = strdup(json_string_value(src));
	m->ts = json_integer_value(ts);
	m->body = json_incref(body);
	if (!m->type || !m->id || !m->src) {
		cdr_msg_free(m);
		r = fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	*ret = m;
	r = 0;
out:
	json_decref(root);
	return r;
}

struct cdr_msg *cdr_msg_free(struct cdr_msg *m)
{
	if (!m)
		return NULL;
	free(m->type);
	free(m->id);
	free(m->src);
	json_decref(m->body);
	free(m);
	return NULL;
}

char *cdr_msg_encode(const char *type, const char *id, const char *src, int64_t ts, json_t *body)
{
	json_t *o;
	char *s;

	if (!body)
		body = json_object();
	if (!type || !id || !src || !body) {
		json_decref(body);
		return NULL;
	}
	o = json_pack("{s:s, s:s, s:I, s:s, s:o}", "type", type, "id", id, "ts",
		      (json_int_t)(ts ? ts : (int64_t)cdr_wall_ms()), "src", src, "body", body);
	if (!o)
		return NULL; /* json_pack's "o" consumed body even on failure */
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int cdr_msg_reply_type(const char *req, bool ack, char *out, size_t len)
{
	const char *a = strchr(req, '_'), *b, *verb;
	size_t rl = strlen(req);

	if (!a || (b = strchr(a + 1, '_')) == NULL || rl < 5 || strcmp(req + rl - 4, "_req") != 0)
		return -EINVAL;
	verb = b + 1;
	if (verb >= req + rl - 4)
		return -EINVAL;
	/* src_dst_verb_req -> dst_src_verb_ack|nack */
	if ((size_t)snprintf(out, len, "%.*s_%.*s_%.*s_%s", (int)(b - a - 1), a + 1, (int)(a - req), req,
			     (int)(req + rl - 4 - verb), verb, ack ? "ack" : "nack") >= len)
		return -EINVAL;
	return 0;
}

json_t *cdr_msg_nack_body(const struct cdr_msg_error *err)
{
	json_t *b =
		json_pack("{s:s, s:s}", "reason", err->reason[0] ? err->reason : "bad_request", "detail", err->detail);

	if (b && err->e164[0])
		json_object_set_new(b, "e164", json_string(err->e164));
	return b;
}

const char *cdr_msg_str(const struct cdr_msg *m, const char *field, const char *def)
{
	const char *s = json_string_value(json_object_get(m->body, field));

	return s ? s : def;
}

int64_t cdr_msg_int(const struct cdr_msg *m, const char *field, int64_t def)
{
	json_t *v = json_object_get(m->body, field);

	return json_is_integer(v) ? json_integer_value(v) : def;
}

bool cdr_msg_bool(const struct cdr_msg *m, const char *field, bool def)
{
	json_t *v = json_object_get(m->body, field);

	return json_is_boolean(v) ? json_is_true(v) : def;
}
