/* What our own platform's pms instances say in their beats (release.c):
 * the platform is isolated only when every pms instance heard lately says
 * so. A platform runs two pms (active and standby); one of them can lose
 * its ZooKeeper session or be frozen for a moment while the other still
 * writes the platform's beat, and then the backup platform still hears us
 * and declares nothing: releasing then would end every conference for
 * nothing. Pure logic on an injected clock, unit-tested by
 * tests/unit/test_css_beats.c. */
#ifndef CSS_BEATS_H
#define CSS_BEATS_H

#include <stdbool.h>
#include <stdint.h>

#define CSS_BEATS_MAX 8
/* A beat older than this says nothing about an instance any more (4 beats
 * of the default 250 ms: an instance that said "not isolated" this recently
 * still writes the platform's beat). */
#define CSS_BEATS_FRESH_MS 1000

struct css_beat_seen {
	char instance[64];
	int64_t at_ms; /* when its last beat came (monotonic) */
	bool isolated; /* what its last beat said */
};

struct css_beats {
	struct css_beat_seen seen[CSS_BEATS_MAX];
	unsigned n;
};

/* Notes a beat of instance (isolated or not) at now_ms, and tells whether
 * the platform is isolated: this beat says so and no other instance said
 * otherwise within CSS_BEATS_FRESH_MS. When the table is full, the instance
 * heard the longest ago gives its place. *other, if not NULL, gets the
 * instance that keeps the platform not isolated (NULL if none). */
bool css_beats_note(struct css_beats *b, const char *instance, bool isolated, int64_t now_ms, const char **other);

#endif
