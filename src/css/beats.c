/* Our platform's pms instances and their last word (beats.h). */
#include "beats.h"

#include <stdio.h>
#include <string.h>

static struct css_beat_seen *slot(struct css_beats *b, const char *instance)
{
	struct css_beat_seen *oldest = NULL;

	for (unsigned i = 0; i < b->n; i++)
		if (!strcmp(b->seen[i].instance, instance))
			return &b->seen[i];
	if (b->n < CSS_BEATS_MAX)
		oldest = &b->seen[b->n++];
	else
		for (unsigned i = 0; i < b->n; i++)
			if (!oldest || b->seen[i].at_ms < oldest->at_ms)
				oldest = &b->seen[i];
	snprintf(oldest->instance, sizeof(oldest->instance), "%s", instance);
	return oldest;
}

bool css_beats_note(struct css_beats *b, const char *instance, bool isolated, int64_t now_ms, const char **other)
{
	struct css_beat_seen *me = slot(b, instance);

	me->at_ms = now_ms;
	me->isolated = isolated;
	if (other)
		*other = NULL;
	if (!isolated)
		return false;
	for (unsigned i = 0; i < b->n; i++) {
		const struct css_beat_seen *o = &b->seen[i];

		if (o == me || o->isolated || now_ms - o->at_ms > CSS_BEATS_FRESH_MS)
			continue;
		if (other)
			*other = o->instance;
		return false;
	}
	return true;
}
