/* Which css serves a user domain, and which Redis holds its conferences
 * (design section 5: the Redis of the platform that owns the domain, even
 * when the conference runs on another platform's MCU). Pure logic over the
 * topology, unit-tested by tests/unit/test_css_route.c. */
#ifndef CSS_ROUTE_H
#define CSS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

struct cdr_topology;

enum css_route {
	CSS_ROUTE_OWN,	    /* a domain of this css's platform */
	CSS_ROUTE_TAKEOVER, /* its platform is down and this css's platform is its backup */
	CSS_ROUTE_OTHER,    /* another platform's domain, served there */
	CSS_ROUTE_UNKNOWN,  /* not in the topology */
};

struct css_routing {
	enum css_route how;
	const char *home; /* the platform owning the domain: its Redis holds the record */
	const char *room; /* the domain's room */
};

/* Whether platform p is declared down (pms); arg passed through. */
typedef bool (*css_down_fn)(const char *p, void *arg);

/* Routes user domain ud for the css of platform self. */
enum css_route css_route_domain(const struct cdr_topology *t, const char *ud, const char *self, css_down_fn down,
				void *arg, struct css_routing *out);

/* The platforms whose Redis the css of self needs: self first, then every
 * platform whose backup platform is self (it may have to serve their domains).
 * Fills out (at most n) and returns how many there are. */
size_t css_redis_platforms(const struct cdr_topology *t, const char *self, const char **out, size_t n);

const char *css_route_name(enum css_route how);

#endif
