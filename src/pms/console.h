/* pms's web console: the pure parts, unit-tested without a server
 * (tests/unit/test_pms_console.c): HTTP Basic credentials checked in
 * constant time, the names of the static files it serves, and the bounded
 * series of restores and room events over time behind /api/restores
 * (docs/console.md). */
#ifndef PMS_CONSOLE_H
#define PMS_CONSOLE_H

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether header (an Authorization header's value, may be NULL) is
 * "Basic base64(user:password)" with exactly this user and password. The
 * comparison takes the same time whatever byte differs first. */
bool pms_console_basic_ok(const char *header, const char *user, const char *password);

/* Whether a and b (alen, blen bytes) are equal, in a time that depends on
 * their lengths only. */
bool pms_console_equal(const char *a, size_t alen, const char *b, size_t blen);

/* The Content-Type of a static file the console may serve, or NULL when it
 * may not: one name in the directory (letters, digits, '-', '_', one '.'),
 * ending in .html, .js, .css or .svg. No path, so nothing outside it. */
const char *pms_console_static_type(const char *name);

/* What the series counts per bucket. */
enum pms_series_kind { PMS_SERIES_RESTORED, PMS_SERIES_LOST, PMS_SERIES_ROOM_EVENTS, PMS_SERIES_NKINDS };

#define PMS_SERIES_MAX 1440

/* Counts over time in n buckets of bucket_ms each (a ring: the oldest goes
 * when a new one begins). */
struct pms_series {
	int64_t bucket_ms;
	size_t n;
	int64_t first; /* the number (wall ms / bucket_ms) of the newest bucket; -1: none yet */
	int64_t count[PMS_SERIES_MAX][PMS_SERIES_NKINDS];
};

/* n is capped at PMS_SERIES_MAX; bucket_ms at least 1. */
void pms_series_init(struct pms_series *sr, int64_t bucket_ms, size_t n);

/* Adds v to kind in the bucket of wall time wall_ms. A time older than the
 * ring holds is dropped (false). */
bool pms_series_add(struct pms_series *sr, enum pms_series_kind kind, int64_t wall_ms, int64_t v);

/* {"bucket_ms", "buckets": [{"t" (its start, wall ms), "restored", "lost",
 * "room_events"}...]}, oldest first, up to now_ms (empty buckets
 * included). A new reference. */
json_t *pms_series_json(const struct pms_series *sr, int64_t now_ms);

#endif
