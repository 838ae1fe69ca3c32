/* The message codec: the JSON envelope of every message on the bus and a
 * schema per message type (docs/protocol.md is its prose).
 *
 *   {"type": "cm_mau_createconf_req", "id": "req-000123", "ts": 1795000000000,
 *    "src": "cm", "body": {...}}
 *
 * Decoding never trusts its input: the buffer is not NUL-terminated and may
 * hold any bytes. Anything unusable is refused with a stable reason code (the
 * CM contract's "bad_request"), a fault kind for logs and counters, a precise
 * detail ("body.duration_min: expected integer 1..1440, got string") and the
 * id, type and e164 when they could be read, so the caller can NACK with them.
 *
 * Everything here is pure computation on caller memory: thread-safe, no I/O,
 * no logging. */
#ifndef CONFDR_MSG_H
#define CONFDR_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Size limits, in bytes of the whole encoded message (envelope included). */
#define CDR_MSG_MAX_CM	    (64 * 1024)	      /* mau.conf.q: what the CM may send */
#define CDR_MSG_MAX_SMALL   (16 * 1024)	      /* heartbeats, registrations, beats, notices of one thing */
#define CDR_MSG_MAX_DEFAULT (4 * 1024 * 1024) /* everything else (lists, bulk allocations) */
#define CDR_MSG_MAX_DEPTH   16		      /* nesting of objects and arrays, envelope included */
#define CDR_MSG_E164_MIN    3
#define CDR_MSG_E164_MAX    32
/* Every epoch is a ZooKeeper counter (a sequential node's number, a node's
 * data version): 32 bits. A larger one is forged; it is refused at decoding
 * rather than pinning a receiver that keeps the largest seen (issue 22). */
#define CDR_EPOCH_MAX 2147483647

/* ---- The schema table ---- */

enum cdr_field_type {
	CDR_F_STR,  /* string, length min..max (characters are bytes of UTF-8) */
	CDR_F_TEXT, /* CDR_F_STR without control characters (cdr_text_control): names people read */
	CDR_F_E164, /* string of ASCII digits, length min..max */
	CDR_F_CODE, /* a stable code: [a-z][a-z0-9_]*, length min..max (reasons, kinds) */
	CDR_F_INT,  /* integer, value min..max */
	CDR_F_BOOL,
	CDR_F_ENUM, /* string, one of choices */
	CDR_F_OBJ,  /* object: with fields `sub` checked, or any object when sub is NULL */
	CDR_F_ARR,  /* array of min..max elements, each checked against *items (any when NULL) */
};

struct cdr_field {
	const char *name; /* NULL ends a list */
	enum cdr_field_type type;
	bool required;
	bool nullable; /* JSON null accepted (means "none", e.g. "vrs": null) */
	int64_t min, max;
	const char *const *choices;    /* CDR_F_ENUM: NULL-terminated */
	const struct cdr_field *sub;   /* CDR_F_OBJ: its fields */
	const struct cdr_field *items; /* CDR_F_ARR: one descriptor for every element */
	const char *doc;	       /* one line for docs/protocol.md, may be NULL */
};

struct cdr_msg_type {
	const char *name; /* "cm_mau_createconf_req": src_dst_verb_req|ack|nack|ntf */
	const char *from; /* "cm", "css", "mcu", ... */
	const char *to;
	const char *route; /* exchange or queue it travels on; "reply_to" for answers */
	const char *key;   /* routing key, NULL when the route is a queue or a fanout */
	const struct cdr_field *fields;
	/* Unknown body fields (also inside nested objects) are refused when true,
	 * tolerated when false. Tolerated for anything an outside system (CM, MCU,
	 * VRS, BMC, UPU) sends or reads, so that their versions can move on;
	 * refused between confdr's own daemons, where one is a bug. */
	bool strict;
	const char *doc; /* one line for docs/protocol.md */
};

/* Every message type, ended by an entry with a NULL name. */
extern const struct cdr_msg_type cdr_msg_types[];

/* The type called name, or NULL (also for NULL). */
const struct cdr_msg_type *cdr_msg_type_find(const char *name);

/* ---- Errors ---- */

/* What was wrong with a refused message, for logs and counters. The reason
 * that goes into a NACK is in cdr_msg_error.reason. */
enum cdr_msg_fault {
	CDR_MSG_FAULT_NONE = 0,
	CDR_MSG_FAULT_TOO_LARGE,    /* more than max_len bytes, not parsed */
	CDR_MSG_FAULT_NOT_JSON,	    /* syntax, NUL, duplicate key, number overflow */
	CDR_MSG_FAULT_NOT_OBJECT,   /* valid JSON, not an object */
	CDR_MSG_FAULT_TOO_DEEP,	    /* nested deeper than CDR_MSG_MAX_DEPTH */
	CDR_MSG_FAULT_ENVELOPE,	    /* type/id/ts/src/body missing or mistyped */
	CDR_MSG_FAULT_UNKNOWN_TYPE, /* type not in the table */
	CDR_MSG_FAULT_BODY,	    /* the body does not match its type's schema */
	CDR_MSG_FAULT_NO_MEMORY,
};

struct cdr_msg_error {
	enum cdr_msg_fault fault;
	char reason[32];  /* "bad_request" (any refusal) or "internal_error" (no memory) */
	char detail[256]; /* "body.duration_min: expected integer 1..1440, got string" */
	char id[128];	  /* envelope id, "" when it could not be read */
	char type[96];	  /* envelope type, "" when it could not be read (may be unknown) */
	char e164[40];	  /* body.e164 when it is a string, "" otherwise */
};

/* "too_large", "not_json", ... ("none" for NONE, "?" outside the enum). */
const char *cdr_msg_fault_name(enum cdr_msg_fault fault);

/* ---- Decoding ---- */

struct cdr_msg; /* a decoded, schema-checked message */

/* Decodes len bytes of buf (any content; never read past len; no NUL needed)
 * and checks the envelope and the body against the type's schema. max_len 0
 * means CDR_MSG_MAX_DEFAULT; a longer message is refused before parsing.
 * Returns 0 with *ret (free with cdr_msg_free); -EMSGSIZE (too large),
 * -EINVAL (any other refusal) or -ENOMEM, with *err filled and *ret untouched.
 * err is always fully written (zeroed on success). */
int cdr_msg_decode(const void *buf, size_t len, size_t max_len, struct cdr_msg **ret, struct cdr_msg_error *err);

/* Frees m. Accepts NULL; returns NULL. */
struct cdr_msg *cdr_msg_free(struct cdr_msg *m);

/* Envelope of a decoded message; strings valid until cdr_msg_free. */
const char *cdr_msg_type(const struct cdr_msg *m);
const char *cdr_msg_id(const struct cdr_msg *m);
const char *cdr_msg_src(const struct cdr_msg *m);
/* What a request is, beyond its id: "<type> <src> <hash>", the hash a 64-bit
 * FNV-1a of its body in canonical form (sorted keys, compact). An answer
 * kept for a request id is given again only to a request with the same
 * fingerprint: an id reused by another request is refused, never answered
 * with someone else's answer. */
#define CDR_MSG_FP_LEN 104
void cdr_msg_fingerprint(const struct cdr_msg *m, char *buf, size_t len);
int64_t cdr_msg_ts(const struct cdr_msg *m);
const struct cdr_msg_type *cdr_msg_spec(const struct cdr_msg *m);
/* The body, borrowed (valid until cdr_msg_free; json_incref to keep it). */
json_t *cdr_msg_body(const struct cdr_msg *m);

/* Checks body against spec (strictness included). Returns 0, or -EINVAL with
 * err->detail naming the first field that is wrong ("body.confs[2].e164: ...").
 * Only fault, reason and detail of err are written. */
int cdr_msg_check_body(const struct cdr_msg_type *spec, const json_t *body, struct cdr_msg_error *err);

/* ---- Body accessors ----
 * For a decoded message the schema has been checked, so a required field is
 * there with its type; these spare the daemons jansson's boilerplate for the
 * optional ones. Each returns def when the field is absent, null or of
 * another JSON type. Strings are borrowed, valid until cdr_msg_free. */
const char *cdr_msg_str(const struct cdr_msg *m, const char *field, const char *def);
int64_t cdr_msg_int(const struct cdr_msg *m, const char *field, int64_t def);
bool cdr_msg_bool(const struct cdr_msg *m, const char *field, bool def);
/* Whether field is present and not null. */
bool cdr_msg_has(const struct cdr_msg *m, const char *field);
/* The field's value, borrowed; NULL when absent or null. */
json_t *cdr_msg_get(const struct cdr_msg *m, const char *field);

/* The same on any JSON object (nested objects, array elements); obj may be
 * NULL or not an object (def is returned). */
const char *cdr_msg_jstr(const json_t *obj, const char *field, const char *def);
int64_t cdr_msg_jint(const json_t *obj, const char *field, int64_t def);
bool cdr_msg_jbool(const json_t *obj, const char *field, bool def);

/* ---- Encoding ---- */

/* Encodes an envelope {"type","id","ts","src","body"}. body is STOLEN: its
 * reference is taken over, also when encoding fails; NULL means {}. ts 0
 * means now (cdr_wall_ms). The body is not checked against the schema (use
 * cdr_msg_check_body where that matters, as the tests do). Returns a
 * malloc'd NUL-terminated compact JSON string (free()), or NULL when type,
 * id or src is NULL or empty, body is not an object, or on no memory. */
char *cdr_msg_encode(const char *type, const char *id, const char *src, int64_t ts, json_t *body);

/* The answer type of a request type: "cm_mau_createconf_req" -> (ack)
 * "mau_cm_createconf_ack", (nack) "mau_cm_createconf_nack". Writes the
 * NUL-terminated name into out (len bytes). Returns 0, or -EINVAL when
 * req_type is not of the src_dst_verb_req form, -ENOSPC when out is short. */
int cdr_msg_reply_type(const char *req_type, bool ack, char *out, size_t len);

/* Encodes the answer to a decoded request req: type from cdr_msg_reply_type,
 * id = req's id (answers are tied back to their request by it, as by the
 * AMQP correlation_id), ts now. body is STOLEN (as for cdr_msg_encode).
 * Returns a malloc'd string, or NULL when req is not a request or on no
 * memory. */
char *cdr_msg_encode_reply(const struct cdr_msg *req, bool ack, const char *src, json_t *body);

/* Builds the NACK body for a refused message: {"e164" (only when known),
 * "reason", "detail"}. Returns a new reference, or NULL on no memory. */
json_t *cdr_msg_nack_body(const struct cdr_msg_error *err);

/* Encodes the NACK for a message cdr_msg_decode refused: type = the nack of
 * err->type when that reads as a request (src_dst_verb_req, even an unknown
 * verb), otherwise fallback_type (on mau.conf.q: "mau_cm_request_nack"); id
 * = err->id, or correlation_id when the id could not be read (or
 * "unknown"); body from cdr_msg_nack_body. Returns a malloc'd string or NULL
 * (no memory, fallback_type needed but NULL). */
char *cdr_msg_encode_refusal(const struct cdr_msg_error *err, const char *correlation_id, const char *fallback_type,
			     const char *src);

#endif
