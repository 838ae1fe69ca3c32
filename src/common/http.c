/* The HTTP server of /metrics, /healthz and /readyz (include/confdr/http.h).
 * The listening socket is made here, not by evhttp_bind_socket, so that a
 * failed bind says its errno. */
#include <confdr/http.h>
#include <confdr/loop.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define HTTP_TIMEOUT_S	 10
#define HTTP_MAX_HEADERS 8192
#define HTTP_BACKLOG	 16

struct cdr_http {
	struct evhttp *http;
	const struct cdr_http_route *routes;
	void *arg;
};

int cdr_http_parse_listen(const char *s, char *addr, size_t addrlen, uint16_t *port, const char **why)
{
	const char *colon, *host = s;
	size_t hostlen;
	char *end;
	long p;
	unsigned char bin[sizeof(struct in6_addr)];

	if (!s || !*s) {
		*why = "expected ADDRESS:PORT";
		return -EINVAL;
	}
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':') {
			*why = "expected [IPv6]:PORT";
			return -EINVAL;
		}
		host = s + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon) {
			*why = "expected ADDRESS:PORT (an IPv6 address in brackets: [::1]:PORT)";
			return -EINVAL;
		}
		hostlen = (size_t)(colon - s);
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || p < 1 || p > 65535) {
		*why = "expected a port 1..65535 after the ':'";
		return -EINVAL;
	}
	if (hostlen == 0 || hostlen >= addrlen) {
		*why = "expected a numeric IPv4 or IPv6 address before the port";
		return -EINVAL;
	}
	memcpy(addr, host, hostlen);
	addr[hostlen] = '\0';
	if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1) {
		*why = "expected a numeric IPv4 or IPv6 address (not a host name) before the port";
		return -EINVAL;
	}
	*port = (uint16_t)p;
	return 0;
}

bool cdr_http_loopback(const char *addr)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static void reply(struct evhttp_request *req, int status, const char *reason, const char *type, const char *body,
		  size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type ? type : "text/plain; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (buf && body)
		evbuffer_add(buf, body, len);
	evhttp_send_reply(req, status, reason, buf);
	if (buf)
		evbuffer_free(buf);
}

static const char *status_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	}
	return "Status";
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct cdr_http *h = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct cdr_http_reply r = { 0 };

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply(req, 405, status_reason(405), NULL, "only GET and HEAD\n", 18);
		return;
	}
	for (const struct cdr_http_route *rt = h->routes; path && rt->path; rt++) {
		if (strcmp(rt->path, path) != 0)
			continue;
		rt->fn(h->arg, &r);
		if (!r.status)
			r.status = 200;
		reply(req, r.status, status_reason(r.status), r.content_type, r.body, r.body ? r.len : 0);
		free(r.body);
		return;
	}
	reply(req, 404, status_reason(404), NULL, "not found\n", 10);
}

/* A listening socket on addr:port, non-blocking, or -errno. */
static int listen_on(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, one = 1, r;

	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		len = sizeof(*s6);
	} else {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a restarted daemon binds again at once despite connections in TIME_WAIT */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, HTTP_BACKLOG) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int cdr_http_new(struct cdr_loop *loop, const struct cdr_http_opts *o, struct cdr_http **ret, char *err, size_t errlen)
{
	char addr[64];
	const char *why;
	uint16_t port;
	struct cdr_http *h;
	int fd;

	if (cdr_http_parse_listen(o->listen, addr, sizeof(addr), &port, &why) < 0) {
		snprintf(err, errlen, "%s: %s", o->listen ? o->listen : "(none)", why);
		return -EINVAL;
	}
	if (!(h = calloc(1, sizeof(*h)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	h->routes = o->routes;
	h->arg = o->arg;
	if (!(h->http = evhttp_new(cdr_loop_base(loop)))) {
		snprintf(err, errlen, "out of memory");
		free(h);
		return -ENOMEM;
	}
	evhttp_set_timeout(h->http, HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(h->http, 0);
	evhttp_set_gencb(h->http, on_request, h);
	if ((fd = listen_on(addr, port)) < 0) {
		snprintf(err, errlen, "listen on %s: %s", o->listen, strerror(-fd));
		cdr_http_free(h);
		return fd;
	}
	if (!evhttp_accept_socket_with_handle(h->http, fd)) {
		snprintf(err, errlen, "listen on %s: evhttp refused the socket", o->listen);
		close(fd);
		cdr_http_free(h);
		return -EIO;
	}
	*ret = h;
	return 0;
}

struct cdr_http *cdr_http_free(struct cdr_http *h)
{
	if (!h)
		return NULL;
	if (h->http)
		evhttp_free(h->http); /* closes its listening socket and connections */
	free(h);
	return NULL;
}
