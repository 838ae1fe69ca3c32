/* Routing of user domains to the css that serves them (route.h). */
#include "route.h"

#include <confdr/topology.h>

#include <string.h>

enum css_route css_route_domain(const struct cdr_topology *t, const char *ud, const char *self, css_down_fn down,
				void *arg, struct css_routing *out)
{
	const struct cdr_user_domain *u = t && ud ? cdr_topology_user_domain(t, ud) : NULL;
	const struct cdr_platform *home;

	memset(out, 0, sizeof(*out));
	if (!u) {
		out->how = CSS_ROUTE_UNKNOWN;
		return out->how;
	}
	out->home = u->platform;
	out->room = u->room;
	if (!strcmp(u->platform, self)) {
		out->how = CSS_ROUTE_OWN;
	} else {
		home = cdr_topology_platform(t, u->platform);
		if (home && home->backup_platform && !strcmp(home->backup_platform, self) && down &&
		    down(u->platform, arg))
			out->how = CSS_ROUTE_TAKEOVER;
		else
			out->how = CSS_ROUTE_OTHER;
	}
	return out->how;
}

size_t css_redis_platforms(const struct cdr_topology *t, const char *self, const char **out, size_t n)
{
	size_t k = 0;

	if (n > 0)
		out[0] = self;
	k = 1;
	for (size_t i = 0; t && i < cdr_topology_nplatforms(t); i++) {
		const struct cdr_platform *p = cdr_topology_platform_at(t, i);

		if (strcmp(p->id, self) && p->backup_platform && !strcmp(p->backup_platform, self)) {
			if (k < n)
				out[k] = p->id;
			k++;
		}
	}
	return k;
}

const char *css_route_name(enum css_route how)
{
	switch (how) {
	case CSS_ROUTE_OWN: return "own";
	case CSS_ROUTE_TAKEOVER: return "takeover";
	case CSS_ROUTE_OTHER: return "other";
	case CSS_ROUTE_UNKNOWN: return "unknown";
	}
	return "?";
}
