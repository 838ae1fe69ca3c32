/* The message codec: the JSON envelope of every message on the bus and a
 * schema per message type (docs/protocol.md lists them).
 *
 *   {"type": "cm_mau_createconf_req", "id": "req-000123", "ts": 1795000000000,
 *    "src": "cm", "body": {...}}
 *
 * Decoding never trusts its input: the buffer is not NUL-terminated, may be
 * any size and any bytes. Anything unusable is refused with a stable reason
 * code (for CM requests, the CM contract's "bad_request") and a precise detail
 * ("body.duration_min: expected integer 1..1440, got string"), plus the id
 * and e164 when they could be read, so the caller can NACK with them. */
#ifndef CONFDR_MSG_H
#define CONFDR_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CDR_MSG_MAX_DEFAULT (64 * 1024)
#define CDR_MSG_MAX_DEPTH   16

enum cdr_field_type {
	CDR_F_STR,  /* string, length min..max */
	CDR_F_E164, /* string of digits, length min..max (default 3..32) */
	CDR_F_INT,  /* integer, min..max */
	CDR_F_BOOL,
	CDR_F_ENUM, /* string, one of choices */
	CDR_F_OBJ,  /* any object */
	CDR_F_ARR,  /* any array, at most max elements */
	CDR_F_STR_OR_NULL,
};

struct cdr_field {
	const char *name; /* NULL ends the list */
	enum cdr_field_type type;
	bool required;
	int64_t min, max;
	const char *const *choices;
};

struct cdr_msg_type {
	const char *name; /* "cm_mau_createconf_req" */
	const char *from, *to;
	const char *route; /* the exchange or queue it travels on */
	const struct cdr_field *fields;
	bool strict; /* unknown body fields refused (else tolerated) */
};

/* The table of every message type, ended by a NULL name. */
extern const struct cdr_msg_type cdr_msg_types[];

/* The type by name, or NULL. */
const struct cdr_msg_type *cdr_msg_type_find(const char *name);

struct cdr_msg {
	const struct cdr_msg_type *spec;
	char *type, *id, *src;
	int64_t ts;
	json_t *body; /* owned by the message */
};

struct cdr_msg_error {
	char reason[32]; /* bad_request, unknown_type, too_large */
	char detail[256];
	char id[128];  /* "" when it could not be read */
	char e164[40]; /* "" when it could not be read */
	char type[96]; /* "" when it could not be read */
};

/* Decodes len bytes (any content). max_len 0: CDR_MSG_MAX_DEFAULT. Returns 0
 * with *ret (free with cdr_msg_free), or -EINVAL / -EMSGSIZE / -ENOMEM with
 * err filled. */
int cdr_msg_decode(const void *buf, size_t len, size_t max_len, struct cdr_msg **ret, struct cdr_msg_error *err);

struct cdr_msg *cdr_msg_free(struct cdr_msg *m);

/* Checks a body against a type's schema; 0 or -EINVAL with err->detail. */
int cdr_msg_check_body(const struct cdr_msg_type *spec, const json_t *body, struct cdr_msg_error *err);

/* Encodes an envelope. body is STOLEN (its reference is taken, also on
 * failure); NULL means {}. ts 0: now. Returns a malloc'd NUL-terminated
 * string, or NULL on failure. */
char *cdr_msg_encode(const char *type, const char *id, const char *src, int64_t ts, json_t *body);

/* The answer type of a request type: ("cm_mau_createconf_req", true) ->
 * "mau_cm_createconf_ack", false -> "..._nack". Writes into out; returns 0 or
 * -EINVAL if name is not a request of the src_dst_verb_req form. */
int cdr_msg_reply_type(const char *req_type, bool ack, char *out, size_t len);

/* Builds the NACK body for a refused request: {"e164" (when known),
 * "reason", "detail"}. Returns a new reference. */
json_t *cdr_msg_nack_body(const struct cdr_msg_error *err);

/* Body accessors: the value, or def when absent or of another type. */
const char *cdr_msg_str(const struct cdr_msg *m, const char *field, const char *def);
int64_t cdr_msg_int(const struct cdr_msg *m, const char *field, int64_t def);
bool cdr_msg_bool(const struct cdr_msg *m, const char *field, bool def);

#endif
