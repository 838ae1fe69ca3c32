/* A small HTTP/1.1 server on the daemon's loop (libevent's evhttp), for
 * /metrics, /healthz and /readyz (docs/metrics.md): GET and HEAD of fixed
 * paths, plain-text answers, no request body, no authentication (so it is
 * meant for a loopback address: see cdr_http_loopback). Every handler runs on
 * the loop thread. */
#ifndef CONFDR_HTTP_H
#define CONFDR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdr_loop;
struct cdr_http;

/* What a handler answers: status (200 when left 0), content type (text/plain
 * when NULL) and body (malloc'd, taken by the server; NULL: empty). */
struct cdr_http_reply {
	int status;
	const char *content_type;
	char *body;
	size_t len;
};

typedef void (*cdr_http_fn)(void *arg, struct cdr_http_reply *reply);

/* A path ("/metrics": exact, query string ignored) and its handler. */
struct cdr_http_route {
	const char *path;
	cdr_http_fn fn;
};

struct cdr_http_opts {
	const char *listen;		     /* "ADDRESS:PORT" (cdr_http_parse_listen) */
	const struct cdr_http_route *routes; /* ended by a NULL path; borrowed for the server's life */
	void *arg;			     /* passed to every handler */
};

/* Splits "127.0.0.1:9100" or "[::1]:9100" into a numeric address (no
 * brackets) and a port 1..65535. Host names are refused: the address is what
 * is bound, and a name could resolve elsewhere. Returns 0, or -EINVAL with a
 * static reason in *why. */
int cdr_http_parse_listen(const char *s, char *addr, size_t addrlen, uint16_t *port, const char **why);

/* Whether a numeric address (as cdr_http_parse_listen gives) is a loopback
 * one: 127.0.0.0/8 or ::1. */
bool cdr_http_loopback(const char *addr);

/* Listens on o->listen and serves o->routes: an unknown path is 404, a
 * method other than GET and HEAD 405. Returns 0 and *ret, or -EINVAL (a bad
 * address), -EADDRINUSE and the like from bind(2), -ENOMEM; err gets one line
 * saying why. */
int cdr_http_new(struct cdr_loop *loop, const struct cdr_http_opts *o, struct cdr_http **ret, char *err, size_t errlen);

/* Stops listening and closes every connection. Accepts NULL; returns NULL. */
struct cdr_http *cdr_http_free(struct cdr_http *h);

#endif
