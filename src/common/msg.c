/* Envelope and body validation of bus messages; encoding and replies. */
#include <confdr/msg.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <confdr/log.h>
#include <confdr/loop.h>

struct cdr_msg {
	const struct cdr_msg_type *spec;
	char *type, *id, *src;
	int64_t ts;
	json_t *body; /* owned */
};

static int fail(struct cdr_msg_error *err, enum cdr_msg_fault fault, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct cdr_msg_error *err, enum cdr_msg_fault fault, int code, const char *fmt, ...)
{
	va_list ap;

	err->fault = fault;
	snprintf(err->reason, sizeof(err->reason), "%s",
		 fault == CDR_MSG_FAULT_NO_MEMORY ? "internal_error" : "bad_request");
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
	/* jansson quotes input too ("near '...'"): logs get printable ASCII only */
	for (char *c = err->detail; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	return code;
}

const char *cdr_msg_fault_name(enum cdr_msg_fault fault)
{
	switch (fault) {
	case CDR_MSG_FAULT_NONE: return "none";
	case CDR_MSG_FAULT_TOO_LARGE: return "too_large";
	case CDR_MSG_FAULT_NOT_JSON: return "not_json";
	case CDR_MSG_FAULT_NOT_OBJECT: return "not_object";
	case CDR_MSG_FAULT_TOO_DEEP: return "too_deep";
	case CDR_MSG_FAULT_ENVELOPE: return "bad_envelope";
	case CDR_MSG_FAULT_UNKNOWN_TYPE: return "unknown_type";
	case CDR_MSG_FAULT_BODY: return "bad_body";
	case CDR_MSG_FAULT_NO_MEMORY: return "no_memory";
	}
	return "?";
}

const struct cdr_msg_type *cdr_msg_type_find(const char *name)
{
	if (!name)
		return NULL;
	for (const struct cdr_msg_type *t = cdr_msg_types; t->name; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

static const char *json_kind(const json_t *v)
{
	if (!v)
		return "nothing";
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

/* Input quoted in a detail goes to logs: printable ASCII only, bounded. */
static void quote(char *out, size_t len, const char *s, size_t slen, bool marks)
{
	size_t o = 0, i;

	if (len < 8)
		return;
	if (marks)
		out[o++] = '"';
	for (i = 0; i < slen && o + 5 < len && i < 40; i++)
		out[o++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\') ? s[i] : '?';
	if (i < slen)
		o += (size_t)snprintf(out + o, len - o, "...");
	if (marks)
		out[o++] = '"';
	out[o] = 0;
}

/* "integer 1..1440", "string of 1..128 bytes", ... what a field accepts. */
static void describe(const struct cdr_field *f, char *out, size_t len)
{
	size_t o = 0;

	switch (f->type) {
	case CDR_F_STR:
		o = (size_t)snprintf(out, len, "string of %" PRId64 "..%" PRId64 " bytes", f->min, f->max);
		break;
	case CDR_F_TEXT:
		o = (size_t)snprintf(out, len, "text of %" PRId64 "..%" PRId64 " bytes without control characters",
				     f->min, f->max);
		break;
	case CDR_F_E164:
		o = (size_t)snprintf(out, len, "E164 of %" PRId64 "..%" PRId64 " digits", f->min, f->max);
		break;
	case CDR_F_CODE:
		o = (size_t)snprintf(out, len, "code [a-z][a-z0-9_]* of %" PRId64 "..%" PRId64 " bytes", f->min,
				     f->max);
		break;
	case CDR_F_INT:
		if (f->max == INT64_MAX)
			o = (size_t)snprintf(out, len, "integer >= %" PRId64, f->min);
		else
			o = (size_t)snprintf(out, len, "integer %" PRId64 "..%" PRId64, f->min, f->max);
		break;
	case CDR_F_BOOL: o = (size_t)snprintf(out, len, "boolean"); break;
	case CDR_F_ENUM:
		o = (size_t)snprintf(out, len, "one of ");
		for (int i = 0; f->choices[i] && o < len; i++)
			o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "|" : "", f->choices[i]);
		break;
	case CDR_F_OBJ: o = (size_t)snprintf(out, len, "object"); break;
	case CDR_F_ARR:
		o = (size_t)snprintf(out, len, "array of %" PRId64 "..%" PRId64 " elements", f->min, f->max);
		break;
	}
	if (f->nullable && o < len)
		snprintf(out + o, len - o, " or null");
}

static bool is_code(const char *s)
{
	if (*s < 'a' || *s > 'z')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static bool all_digits(const char *s)
{
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static int check_fields(const struct cdr_field *fields, bool strict, const json_t *obj, const char *path,
			struct cdr_msg_error *err);

/* Checks one value v of field f; path names it ("body.confs[3].e164"). */
static int check_value(const struct cdr_field *f, bool strict, const json_t *v, const char *path,
		       struct cdr_msg_error *err)
{
	char want[160], got[64];
	int r;

	describe(f, want, sizeof(want));
#define BAD(...) fail(err, CDR_MSG_FAULT_BODY, -EINVAL, __VA_ARGS__)
	if (json_is_null(v) && f->nullable)
		return 0;
	switch (f->type) {
	case CDR_F_STR:
	case CDR_F_TEXT:
	case CDR_F_E164:
	case CDR_F_CODE: {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);

		if (!json_is_string(v))
			return BAD("%s: expected %s, got %s", path, want, json_kind(v));
		if (strlen(s) != len)
			return BAD("%s: contains a NUL character", path);
		quote(got, sizeof(got), s, len, true);
		if (f->type == CDR_F_E164 && !all_digits(s))
			return BAD("%s: expected %s, got %s", path, want, got);
		if (f->type == CDR_F_CODE && len && !is_code(s))
			return BAD("%s: expected %s, got %s", path, want, got);
		for (size_t i = 0; f->type == CDR_F_TEXT && i < len; i++) {
			unsigned cp;

			if (cdr_text_control(s + i, len - i, &cp))
				return BAD("%s: expected %s, got U+%04X at byte %zu", path, want, cp, i);
		}
		if ((int64_t)len < f->min || (int64_t)len > f->max)
			return BAD("%s: expected %s, got %zu %s", path, want, len,
				   f->type == CDR_F_E164 ? "digits" : "bytes");
		return 0;
	}
	case CDR_F_INT: {
		json_int_t n;

		if (!json_is_integer(v))
			return BAD("%s: expected %s, got %s", path, want, json_kind(v));
		n = json_integer_value(v);
		if (n < f->min || n > f->max)
			return BAD("%s: expected %s, got %" JSON_INTEGER_FORMAT, path, want, n);
		return 0;
	}
	case CDR_F_BOOL:
		if (!json_is_boolean(v))
			return BAD("%s: expected %s, got %s", path, want, json_kind(v));
		return 0;
	case CDR_F_ENUM:
		if (!json_is_string(v))
			return BAD("%s: expected %s, got %s", path, want, json_kind(v));
		for (int i = 0; f->choices[i]; i++)
			if (strcmp(f->choices[i], json_string_value(v)) == 0)
				return 0;
		quote(got, sizeof(got), json_string_value(v), json_string_length(v), true);
		return BAD("%s: expected %s, got %s", path, want, got);
	case CDR_F_OBJ:
		if (!json_is_object(v))
			return BAD("%s: expected %s, got %s", path, want, json_kind(v));
		return f->sub ? check_fields(f->sub, strict, v, path, err) : 0;
	case CDR_F_ARR: {
		size_t i, n;
		json_t *x;
		char sub[192];

		if (!json_is_array(v))
			return BAD("%s: expected %s, got %s", path, want, json_kind(v));
		n = json_array_size(v);
		if ((int64_t)n < f->min || (int64_t)n > f->max)
			return BAD("%s: expected %s, got %zu", path, want, n);
		if (!f->items)
			return 0;
		json_array_foreach(v, i, x)
		{
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if ((r = check_value(f->items, strict, x, sub, err)) < 0)
				return r;
		}
		return 0;
	}
	}
#undef BAD
	return fail(err, CDR_MSG_FAULT_BODY, -EINVAL, "%s: unknown field type", path);
}

static int check_fields(const struct cdr_field *fields, bool strict, const json_t *obj, const char *path,
			struct cdr_msg_error *err)
{
	char sub[192], want[160], name[64];
	const char *key;
	json_t *v;
	int r;

	for (const struct cdr_field *f = fields; f->name; f++) {
		snprintf(sub, sizeof(sub), "%s.%s", path, f->name);
		v = json_object_get(obj, f->name);
		if (!v) {
			if (!f->required)
				continue;
			describe(f, want, sizeof(want));
			return fail(err, CDR_MSG_FAULT_BODY, -EINVAL, "%s: missing (expected %s)", sub, want);
		}
		if ((r = check_value(f, strict, v, sub, err)) < 0)
			return r;
	}
	if (!strict)
		return 0;
	json_object_foreach((json_t *)obj, key, v)
	{
		const struct cdr_field *f;

		for (f = fields; f->name && strcmp(f->name, key); f++)
			;
		if (!f->name) {
			quote(name, sizeof(name), key, strlen(key), false);
			return fail(err, CDR_MSG_FAULT_BODY, -EINVAL, "%s.%s: unknown field", path, name);
		}
	}
	return 0;
}

int cdr_msg_check_body(const struct cdr_msg_type *spec, const json_t *body, struct cdr_msg_error *err)
{
	if (!json_is_object(body))
		return fail(err, CDR_MSG_FAULT_BODY, -EINVAL, "body: expected object, got %s",
			    body ? json_kind(body) : "nothing");
	return check_fields(spec->fields, spec->strict, body, "body", err);
}

/* Depth of v, counting v itself when it is a container; stops at limit. */
static size_t depth_of(const json_t *v, size_t limit)
{
	size_t d = 0, i, c;
	const char *k;
	json_t *x;

	if (!json_is_object(v) && !json_is_array(v))
		return 0;
	if (limit == 0)
		return 1;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x)
		{
			if ((c = depth_of(x, limit - 1)) > d)
				d = c;
		}
	} else {
		json_array_foreach(v, i, x)
		{
			if ((c = depth_of(x, limit - 1)) > d)
				d = c;
		}
	}
	return d + 1;
}

/* A string safe to keep for a NACK: no NUL inside, fits, not empty. */
static void keep_str(char *dst, size_t len, const json_t *v)
{
	const char *s = json_string_value(v);

	if (s && *s && strlen(s) == json_string_length(v) && json_string_length(v) < len)
		memcpy(dst, s, json_string_length(v) + 1);
}

static bool envelope_str(const json_t *v, size_t max)
{
	return json_is_string(v) && json_string_length(v) >= 1 && json_string_length(v) <= max &&
	       strlen(json_string_value(v)) == json_string_length(v);
}

int cdr_msg_decode(const void *buf, size_t len, size_t max_len, struct cdr_msg **ret, struct cdr_msg_error *err)
{
	json_error_t jerr;
	json_t *root, *type, *id, *ts, *src, *body;
	const struct cdr_msg_type *spec;
	struct cdr_msg *m;
	char q[64];
	int r;

	memset(err, 0, sizeof(*err));
	if (!max_len)
		max_len = CDR_MSG_MAX_DEFAULT;
	if (len > max_len)
		return fail(err, CDR_MSG_FAULT_TOO_LARGE, -EMSGSIZE, "message of %zu bytes, more than the limit of %zu",
			    len, max_len);
	if (!buf && len)
		return fail(err, CDR_MSG_FAULT_NOT_JSON, -EINVAL, "no buffer");
	root = json_loadb(buf ? buf : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		if (strstr(jerr.text, "JSON_ALLOW_NUL"))
			snprintf(jerr.text, sizeof(jerr.text), "a string contains \\u0000 (NUL)");
		return fail(err, CDR_MSG_FAULT_NOT_JSON, -EINVAL, "not JSON: %s at line %d column %d", jerr.text,
			    jerr.line, jerr.column);
	}
	if (!json_is_object(root)) {
		r = fail(err, CDR_MSG_FAULT_NOT_OBJECT, -EINVAL, "expected a JSON object, got %s", json_kind(root));
		goto out_root;
	}
	type = json_object_get(root, "type");
	id = json_object_get(root, "id");
	ts = json_object_get(root, "ts");
	src = json_object_get(root, "src");
	body = json_object_get(root, "body");
	/* What can be read is kept for the NACK, even if the rest is bad. */
	keep_str(err->id, sizeof(err->id), id);
	keep_str(err->type, sizeof(err->type), type);
	if (json_is_object(body))
		keep_str(err->e164, sizeof(err->e164), json_object_get(body, "e164"));
	if (depth_of(root, CDR_MSG_MAX_DEPTH) > CDR_MSG_MAX_DEPTH) {
		r = fail(err, CDR_MSG_FAULT_TOO_DEEP, -EINVAL, "nested deeper than %d levels", CDR_MSG_MAX_DEPTH);
		goto out_root;
	}
#define ENVELOPE(what, v, ...)                                                                                         \
	do {                                                                                                           \
		r = fail(err, CDR_MSG_FAULT_ENVELOPE, -EINVAL, what ": expected " __VA_ARGS__);                        \
		if (!(v))                                                                                              \
			snprintf(err->detail, sizeof(err->detail), what ": missing");                                  \
		goto out_root;                                                                                         \
	} while (0)
	if (!envelope_str(type, 64))
		ENVELOPE("type", type, "string of 1..64 bytes, got %s", json_kind(type));
	if (!envelope_str(id, 127))
		ENVELOPE("id", id, "string of 1..127 bytes, got %s", json_kind(id));
	if (!json_is_integer(ts) || json_integer_value(ts) < 0)
		ENVELOPE("ts", ts, "integer >= 0 (milliseconds since the Unix epoch), got %s",
			 json_is_integer(ts) ? "a negative integer" : json_kind(ts));
	if (!envelope_str(src, 64))
		ENVELOPE("src", src, "string of 1..64 bytes, got %s", json_kind(src));
	if (!json_is_object(body))
		ENVELOPE("body", body, "object, got %s", json_kind(body));
#undef ENVELOPE
	spec = cdr_msg_type_find(json_string_value(type));
	if (!spec) {
		quote(q, sizeof(q), json_string_value(type), json_string_length(type), true);
		r = fail(err, CDR_MSG_FAULT_UNKNOWN_TYPE, -EINVAL, "type: unknown message type %s", q);
		goto out_root;
	}
	if ((r = cdr_msg_check_body(spec, body, err)) < 0)
		goto out_root;
	m = calloc(1, sizeof(*m));
	if (!m) {
		r = fail(err, CDR_MSG_FAULT_NO_MEMORY, -ENOMEM, "out of memory");
		goto out_root;
	}
	m->spec = spec;
	m->type = strdup(json_string_value(type));
	m->id = strdup(json_string_value(id));
	m->src = strdup(json_string_value(src));
	m->ts = json_integer_value(ts);
	m->body = json_incref(body);
	if (!m->type || !m->id || !m->src) {
		cdr_msg_free(m);
		r = fail(err, CDR_MSG_FAULT_NO_MEMORY, -ENOMEM, "out of memory");
		goto out_root;
	}
	json_decref(root);
	memset(err, 0, sizeof(*err));
	*ret = m;
	return 0;
out_root:
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

const char *cdr_msg_type(const struct cdr_msg *m)
{
	return m->type;
}
const char *cdr_msg_id(const struct cdr_msg *m)
{
	return m->id;
}
const char *cdr_msg_src(const struct cdr_msg *m)
{
	return m->src;
}

void cdr_msg_fingerprint(const struct cdr_msg *m, char *buf, size_t len)
{
	char *body = json_dumps(cdr_msg_body(m), JSON_COMPACT | JSON_SORT_KEYS);
	uint64_t h = 14695981039346656037ull;

	for (const unsigned char *p = (const unsigned char *)(body ? body : ""); *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	snprintf(buf, len, "%.40s %.40s %016" PRIx64, cdr_msg_type(m), cdr_msg_src(m), h);
	free(body);
}
int64_t cdr_msg_ts(const struct cdr_msg *m)
{
	return m->ts;
}
const struct cdr_msg_type *cdr_msg_spec(const struct cdr_msg *m)
{
	return m->spec;
}
json_t *cdr_msg_body(const struct cdr_msg *m)
{
	return m->body;
}

const char *cdr_msg_jstr(const json_t *obj, const char *field, const char *def)
{
	const char *s = json_string_value(json_object_get(obj, field));

	return s ? s : def;
}

int64_t cdr_msg_jint(const json_t *obj, const char *field, int64_t def)
{
	json_t *v = json_object_get(obj, field);

	return json_is_integer(v) ? json_integer_value(v) : def;
}

bool cdr_msg_jbool(const json_t *obj, const char *field, bool def)
{
	json_t *v = json_object_get(obj, field);

	return json_is_boolean(v) ? json_is_true(v) : def;
}

const char *cdr_msg_str(const struct cdr_msg *m, const char *field, const char *def)
{
	return cdr_msg_jstr(m->body, field, def);
}

int64_t cdr_msg_int(const struct cdr_msg *m, const char *field, int64_t def)
{
	return cdr_msg_jint(m->body, field, def);
}

bool cdr_msg_bool(const struct cdr_msg *m, const char *field, bool def)
{
	return cdr_msg_jbool(m->body, field, def);
}

json_t *cdr_msg_get(const struct cdr_msg *m, const char *field)
{
	json_t *v = json_object_get(m->body, field);

	return json_is_null(v) ? NULL : v;
}

bool cdr_msg_has(const struct cdr_msg *m, const char *field)
{
	return cdr_msg_get(m, field) != NULL;
}

char *cdr_msg_encode(const char *type, const char *id, const char *src, int64_t ts, json_t *body)
{
	json_t *o;
	char *s = NULL;

	if (!body)
		body = json_object();
	if (!type || !*type || !id || !*id || !src || !*src || !json_is_object(body)) {
		json_decref(body);
		return NULL;
	}
	o = json_object();
	if (!o) {
		json_decref(body);
		return NULL;
	}
	/* json_object_set_new takes the value's reference even when it fails. */
	if (json_object_set_new(o, "type", json_string(type)) == 0 &&
	    json_object_set_new(o, "id", json_string(id)) == 0 &&
	    json_object_set_new(o, "ts", json_integer(ts ? ts : (json_int_t)cdr_wall_ms())) == 0 &&
	    json_object_set_new(o, "src", json_string(src)) == 0) {
		if (json_object_set_new(o, "body", body) == 0)
			s = json_dumps(o, JSON_COMPACT);
	} else {
		json_decref(body);
	}
	json_decref(o);
	return s;
}

/* The lower-case word of a type name: [a-z0-9]+ */
static size_t word(const char *s)
{
	size_t n = 0;

	while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9'))
		n++;
	return n;
}

int cdr_msg_reply_type(const char *req, bool ack, char *out, size_t len)
{
	size_t rl, sl, dl, vl;
	const char *verb;
	int n;

	if (!req || !out)
		return -EINVAL;
	rl = strlen(req);
	sl = word(req);
	if (!sl || req[sl] != '_')
		return -EINVAL;
	dl = word(req + sl + 1);
	if (!dl || req[sl + 1 + dl] != '_')
		return -EINVAL;
	verb = req + sl + 1 + dl + 1;
	/* the verb: words joined by '_', then "_req" */
	if (rl < 4 || strcmp(req + rl - 4, "_req") != 0 || verb >= req + rl - 4)
		return -EINVAL;
	vl = (size_t)(req + rl - 4 - verb);
	for (size_t i = 0; i < vl; i++)
		if (!((verb[i] >= 'a' && verb[i] <= 'z') || (verb[i] >= '0' && verb[i] <= '9') ||
		      (verb[i] == '_' && i > 0 && i + 1 < vl)))
			return -EINVAL;
	n = snprintf(out, len, "%.*s_%.*s_%.*s_%s", (int)dl, req + sl + 1, (int)sl, req, (int)vl, verb,
		     ack ? "ack" : "nack");
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

char *cdr_msg_encode_reply(const struct cdr_msg *req, bool ack, const char *src, json_t *body)
{
	char type[128];

	if (!req || cdr_msg_reply_type(req->type, ack, type, sizeof(type)) < 0) {
		json_decref(body);
		return NULL;
	}
	return cdr_msg_encode(type, req->id, src, 0, body);
}

json_t *cdr_msg_nack_body(const struct cdr_msg_error *err)
{
	json_t *b = json_object();

	if (!b)
		return NULL;
	if (json_object_set_new(b, "reason", json_string(err->reason[0] ? err->reason : "bad_request")) < 0 ||
	    json_object_set_new(b, "detail", json_string(err->detail)) < 0 ||
	    (err->e164[0] && json_object_set_new(b, "e164", json_string(err->e164)) < 0)) {
		json_decref(b);
		return NULL;
	}
	return b;
}

char *cdr_msg_encode_refusal(const struct cdr_msg_error *err, const char *correlation_id, const char *fallback_type,
			     const char *src)
{
	char type[128];
	const char *id = err->id[0] ? err->id : correlation_id && *correlation_id ? correlation_id : "unknown";

	if (cdr_msg_reply_type(err->type, false, type, sizeof(type)) < 0) {
		if (!fallback_type)
			return NULL;
		snprintf(type, sizeof(type), "%s", fallback_type);
	}
	return cdr_msg_encode(type, id, src, 0, cdr_msg_nack_body(err));
}
