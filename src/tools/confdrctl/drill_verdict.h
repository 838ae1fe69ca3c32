/* The DR drills' verdict, as pure rules (no I/O; tests/unit/test_drill_verdict.c):
 * what ran before a fault, what runs now and what MySQL closed become the
 * counts of docs/drills.md (restored, lost, duplicates, ...), and the open
 * conferences of a Redis and of MySQL become their mismatches. The JSON these
 * functions make has the field names drill.sh's report uses. */
#ifndef CONFDRCTL_DRILL_VERDICT_H
#define CONFDRCTL_DRILL_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct cdr_hmap;

/* One conference on one MCU, as a simulator's state file shows it. */
struct drill_conf {
	char *e164;
	char *mcu;
	char *room;	    /* the MCU's room */
	char *platform;	    /* the MCU's platform */
	char *home;	    /* the conference's home platform ("" when unknown) */
	int64_t started_ms; /* on this MCU; -1 when not known */
};

/* A snapshot: what the live simulators run, in the order read. */
struct drill_set {
	struct drill_conf *v;
	size_t n, cap;
};

/* Appends a copy of the strings; 0 or -ENOMEM (the set unchanged). */
int drill_set_add(struct drill_set *s, const char *e164, const char *mcu, const char *room, const char *platform,
		  const char *home, int64_t started_ms);

/* Empties the set and frees what it holds (the struct itself is the caller's). */
void drill_set_clear(struct drill_set *s);

/* The snapshot as drill.sh writes it: [{e, m, s, r, p, h}] (s null when not
 * known). A new reference, or NULL on no memory. */
json_t *drill_set_to_json(const struct drill_set *s);

/* Reads that form back into an empty set; 0, -EINVAL (err says which element
 * is wrong; the set is cleared) or -ENOMEM. */
int drill_set_from_json(json_t *a, struct drill_set *s, char *err, size_t errlen);

/* Whether every string of a (a JSON array of E164s) runs in s; *missing the
 * count of those that do not. -EINVAL when a is not an array of strings. */
int drill_set_has_all(const struct drill_set *s, json_t *a, size_t *missing);

struct drill_verdict {
	size_t running_before, running_after, running_once, restored, ended_on_purpose, lost, running_but_closed,
		duplicates, stuck_in_room, misplaced;
	json_t *json; /* every field, restored_to, examples and restored_started too; owned */
};

/* Match of a restored conference's new room against the expected rooms. */
typedef bool (*drill_room_ok_fn)(const char *room, void *arg);

/* The verdict on each conference of before against now and closed (keys
 * "<home>:<e164>", any value: closed in its home platform's MySQL). room: the
 * switched room whose conferences must have left it, or NULL. room_ok: NULL
 * when any room is right. 0 or -ENOMEM; v->json freed by drill_verdict_clear. */
int drill_verdict(const struct drill_set *before, const struct drill_set *now, const struct cdr_hmap *closed,
		  const char *room, drill_room_ok_fn room_ok, void *arg, struct drill_verdict *v);

void drill_verdict_clear(struct drill_verdict *v);

/* Settled at this instant: nothing lost, nothing running twice, nothing closed
 * still running, nothing left in the switched room. */
bool drill_verdict_calm(const struct drill_verdict *v);

/* The progress line drill.sh prints while it waits. */
void drill_verdict_line(const struct drill_verdict *v, char *out, size_t len);

/* One platform's open conferences in Redis and in MySQL (E164 -> MCU, values
 * char * with "" for none) compared: {platform, redis, redis_open, mysql_open,
 * only_in_redis, only_in_mysql, different_mcu, mismatches, examples} (at most
 * 5 examples, each list in E164 order). A new reference, or NULL on no memory. */
json_t *drill_compare(const char *platform, const char *redis_name, const struct cdr_hmap *redis,
		      const struct cdr_hmap *mysql);

#endif
