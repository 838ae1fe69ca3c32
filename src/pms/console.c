/* pms's web console, its HTTP side (docs/console.md): a listener on
 * loopback ([pms] console_listen) that the active pms opens and a standby
 * closes; every request behind HTTP Basic auth as the operators' user
 * (console_user, its password from console_password_file, compared in
 * constant time); the static files of console_dir; the JSON API
 * (console_feed.c answers it); a POST taken only from the console's own
 * page: the CSRF token of /api/status in X-Confdr-Csrf, and an Origin, when
 * sent, of this host. */
#include "console_int.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define BODY_MAX      8192
#define BIND_RETRY    5000
#define CONSOLE_REALM "confdr pms"

#ifndef CONFDR_SOURCE_DIR
#define CONFDR_SOURCE_DIR ""
#endif
#ifndef CONFDR_DATA_DIR
#define CONFDR_DATA_DIR ""
#endif

/* ---- configuration ---- */

/* path made absolute against the directory of conf_path. */
static int absolute(const char *conf_path, const char *path, char **out)
{
	const char *slash = conf_path ? strrchr(conf_path, '/') : NULL;
	char full[PATH_MAX];
	int n;

	if (path[0] != '/' && slash)
		n = snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - conf_path), conf_path, path);
	else if (path[0] != '/') {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		n = snprintf(full, sizeof(full), "%s/%s", cwd, path);
	} else
		n = snprintf(full, sizeof(full), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(full))
		return -ENAMETOOLONG;
	if (!(*out = strdup(full)))
		return -ENOMEM;
	return 0;
}

static bool has_index(const char *dir)
{
	char p[PATH_MAX + 16];
	int n = snprintf(p, sizeof(p), "%.*s/index.html", PATH_MAX - 1, dir);

	return n > 0 && (size_t)n < sizeof(p) && access(p, R_OK) == 0;
}

const char *pms_console_check_listen(const char *v)
{
	char host[64];
	int port;

	if (!*v)
		return NULL;
	if (pms_probe_parse_addr(v, host, sizeof(host), &port) < 0)
		return "expected ip:port with a numeric address and a port 1..65535, or empty (off)";
	if (strncmp(host, "127.", 4) && strcmp(host, "::1"))
		return "the console listens on loopback only (127.x.x.x or ::1)";
	return NULL;
}

int pms_console_check_conf(struct pms_conf *cf, const char *conf_path, char *err, size_t errlen)
{
	char why[PATH_MAX + 128], *secret = NULL, *abs = NULL;
	int r;

	if (!*cf->console_listen)
		return 0;
	if (!*cf->console_password_file) {
		snprintf(err, errlen,
			 "[pms] console_password_file: required with console_listen (the password of "
			 "console_user, the operators' broker user)");
		return -EINVAL;
	}
	/* the same checks as every password_file: a regular file others may
	 * neither read nor write */
	if (cdr_secret_read(cf->console_password_file, conf_path, &secret, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "[pms] console_password_file: %s", why);
		return -EINVAL;
	}
	free(secret);
	if ((r = absolute(conf_path, cf->console_password_file, &abs)) < 0)
		goto bad_path;
	free(cf->console_password_file);
	cf->console_password_file = abs;
	if (*cf->console_dir) {
		if ((r = absolute(conf_path, cf->console_dir, &abs)) < 0)
			goto bad_path;
		free(cf->console_dir);
		cf->console_dir = abs;
		if (!has_index(cf->console_dir)) {
			snprintf(err, errlen, "[pms] console_dir: %s has no readable index.html", cf->console_dir);
			return -EINVAL;
		}
	}
	return 0;
bad_path:
	snprintf(err, errlen, "[pms] console: a path: %s", strerror(-r));
	return r;
}

/* The static files: console_dir; else installed beside the binary
 * (BIN/../share/confdr/console), in the install prefix, or in the source
 * tree (a build tree's binary). */
static int find_dir(const struct pms_conf *cf, char *out, size_t len)
{
	char exe[PATH_MAX], cand[PATH_MAX + 64], real[PATH_MAX];
	ssize_t n;

	if (*cf->console_dir) {
		snprintf(out, len, "%.*s", PATH_MAX - 1, cf->console_dir);
		return 0;
	}
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		char *slash;

		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')))
			*slash = '\0';
		snprintf(cand, sizeof(cand), "%s/../share/confdr/console", exe);
		if (has_index(cand) && realpath(cand, real)) {
			snprintf(out, len, "%.*s", PATH_MAX - 1, real);
			return 0;
		}
	}
	if (*CONFDR_DATA_DIR && has_index(CONFDR_DATA_DIR)) {
		snprintf(out, len, "%s", CONFDR_DATA_DIR);
		return 0;
	}
	snprintf(cand, sizeof(cand), "%s/src/pms/console", CONFDR_SOURCE_DIR);
	if (*CONFDR_SOURCE_DIR && has_index(cand)) {
		snprintf(out, len, "%.*s", PATH_MAX - 1, cand);
		return 0;
	}
	return -ENOENT;
}

/* ---- answers ---- */

static void headers(struct evhttp_request *req, const char *type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Content-Security-Policy",
			  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
			  "connect-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'");
}

/* Answers code with o (stolen) as JSON. */
static void send_json(struct evhttp_request *req, int code, json_t *o)
{
	struct evbuffer *b = evbuffer_new();
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	headers(req, "application/json");
	if (b && txt)
		evbuffer_add(b, txt, strlen(txt));
	else if (b)
		evbuffer_add_printf(b, "{\"error\":\"internal_error\",\"detail\":\"out of memory\"}");
	evhttp_send_reply(req, txt ? code : 500, NULL, b);
	free(txt);
	if (b)
		evbuffer_free(b);
}

static void send_error(struct evhttp_request *req, int code, const char *error, const char *detail)
{
	send_json(req, code, json_pack("{s:s, s:s}", "error", error, "detail", detail));
}

static void send_static(struct pms_console *c, struct evhttp_request *req, const char *name)
{
	const char *type = pms_console_static_type(name);
	char path[PATH_MAX + 80];
	struct evbuffer *b;
	struct stat st;
	int fd;

	if (!type) {
		send_error(req, 404, "not_found", "no such page");
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !(b = evbuffer_new())) {
		if (fd >= 0)
			close(fd);
		send_error(req, 404, "not_found", "no such page");
		return;
	}
	headers(req, type);
	if (evbuffer_add_file(b, fd, 0, st.st_size) < 0) { /* takes fd */
		evbuffer_free(b);
		send_error(req, 500, "internal_error", "cannot read the file");
		return;
	}
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* ---- requests ---- */

static bool valid_id(const char *id, size_t len)
{
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", id[i]))
			return false;
	return true;
}

static void peer_of(struct evhttp_request *req, char *out, size_t len)
{
	char *addr = NULL;
	ev_uint16_t port = 0;

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
	snprintf(out, len, "%s:%u", addr ? addr : "?", (unsigned)port);
}

/* A POST from the console's own page only: the token it read from
 * /api/status, and its Origin (browsers send it on a POST) this host. */
static bool same_origin(struct pms_console *c, struct evhttp_request *req, const char **why)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *tok = evhttp_find_header(in, "X-Confdr-Csrf"), *origin = evhttp_find_header(in, "Origin");
	const char *host = evhttp_find_header(in, "Host"), *type = evhttp_find_header(in, "Content-Type");
	char want[300];

	if (!tok || !pms_console_equal(tok, strlen(tok), c->csrf, strlen(c->csrf))) {
		*why = "no or a wrong X-Confdr-Csrf header (the token of GET /api/status)";
		return false;
	}
	if (origin) {
		snprintf(want, sizeof(want), "http://%s", host ? host : "");
		if (!host || strcmp(origin, want)) {
			*why = "the request comes from another origin";
			return false;
		}
	}
	if (!type || strncmp(type, "application/json", 16)) {
		*why = "the body must be application/json";
		return false;
	}
	return true;
}

struct pending {
	struct pms_console *c;
	struct evhttp_request *req;
	char target[16], id[80];
	bool on;
};

/* pms's answer to a switch (console_feed.c): the HTTP answer. The request
 * stays the console's until it is answered, even if its client went away
 * (libevent frees it then). */
static void on_switched(int status, json_t *env, const char *via, void *arg)
{
	struct pending *p = arg;
	const char *type = json_string_value(json_object_get(env, "type"));
	json_t *b = json_object_get(env, "body");

	if (status) {
		char detail[300];

		snprintf(detail, sizeof(detail), "the pms of %s did not answer: %s", via, strerror(-status));
		send_json(
			p->req, status == -ECANCELED ? 503 : 504,
			json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", "no_answer", "detail", detail, "via", via));
	} else if (!type || strstr(type, "_nack")) {
		send_json(p->req, 409,
			  json_pack("{s:b, s:s, s:O*, s:O*, s:s}", "ok", 0, "error", "refused", "reason",
				    json_object_get(b, "reason"), "detail", json_object_get(b, "detail"), "via", via));
	} else {
		send_json(p->req, 200, json_pack("{s:b, s:s, s:O}", "ok", 1, "via", via, "answer", b));
	}
	free(p);
}

static void api_switch(struct pms_console *c, struct evhttp_request *req, bool room, const char *id)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_t *body = NULL;
	const char *to, *reason, *why;
	char op[200], err[300], peer[80];
	struct pending *p;
	bool on, force;
	int r;

	if (!same_origin(c, req, &why)) {
		c->refused++;
		send_error(req, 403, "forbidden", why);
		return;
	}
	if (len > BODY_MAX || !(body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL)) ||
	    !json_is_object(body)) {
		json_decref(body);
		send_error(req, 400, "bad_request", "the body must be a JSON object {to, reason}");
		return;
	}
	to = json_string_value(json_object_get(body, "to"));
	reason = json_string_value(json_object_get(body, "reason"));
	force = json_is_true(json_object_get(body, "force"));
	if (!to || (strcmp(to, "backup") && strcmp(to, "back") && strcmp(to, "normal")) ||
	    (reason && strlen(reason) > 200)) {
		json_decref(body);
		send_error(req, 400, "bad_request", "to: backup or back; reason: up to 200 characters");
		return;
	}
	on = !strcmp(to, "backup");
	/* The operator pms records: the HTTP user, through the console. */
	snprintf(op, sizeof(op), "%s@console", c->user);
	peer_of(req, peer, sizeof(peer));
	if (!(p = calloc(1, sizeof(*p)))) {
		json_decref(body);
		send_error(req, 500, "internal_error", "out of memory");
		return;
	}
	p->c = c;
	p->req = req;
	p->on = on;
	r = console_switch(c, room, id, on, force, op, reason ? reason : "", on_switched, p, err, sizeof(err));
	cdr_notice("console: %s switch of %s %s to %s by %s from %s%s%s%s", on ? "DR on" : "DR off",
		   room ? "room" : "platform", id, on ? "backup" : "normal", op, peer, reason ? ": " : "",
		   reason ? reason : "", r ? " (not sent)" : "");
	json_decref(body);
	if (r == 0)
		return; /* answered by on_switched */
	free(p);
	send_error(req, r == -ENOENT ? 404 : 503, r == -ENOENT ? "unknown" : "unavailable", err);
}

static void api_preview(struct pms_console *c, struct evhttp_request *req, const char *query)
{
	struct evkeyvalq q = { 0 };
	const char *target, *id, *to;
	char err[300];
	json_t *o;

	if (!query || evhttp_parse_query_str(query, &q) < 0) {
		send_error(req, 400, "bad_request", "target=room|platform&id=ID&to=backup|back");
		return;
	}
	target = evhttp_find_header(&q, "target");
	id = evhttp_find_header(&q, "id");
	to = evhttp_find_header(&q, "to");
	if (!target || !id || !to || (strcmp(target, "room") && strcmp(target, "platform")) ||
	    !valid_id(id, strlen(id)) || (strcmp(to, "backup") && strcmp(to, "back"))) {
		evhttp_clear_headers(&q);
		send_error(req, 400, "bad_request", "target=room|platform&id=ID&to=backup|back");
		return;
	}
	o = console_preview_json(c, !strcmp(target, "room"), id, !strcmp(to, "backup"), err, sizeof(err));
	evhttp_clear_headers(&q);
	if (!o)
		send_error(req, 404, "unknown", err);
	else
		send_json(req, 200, o);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct pms_console *c = arg;
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL, *auth;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *rest;
	char peer[80];

	auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (!pms_console_basic_ok(auth, c->user, c->password)) {
		c->refused++;
		/* logged at powers of two: a scan does not flood the log */
		if (auth && !(c->refused & (c->refused - 1))) {
			peer_of(req, peer, sizeof(peer));
			cdr_warn("console: wrong credentials from %s (%" PRIu64 " requests refused so far)", peer,
				 c->refused);
		}
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Basic realm=\"" CONSOLE_REALM "\", charset=\"UTF-8\"");
		send_error(req, 401, "unauthorized", "log in as the operators' user");
		return;
	}
	if (!path || !*path)
		path = "/";
	if (cmd == EVHTTP_REQ_POST) {
		bool room = !strncmp(path, "/api/rooms/", 11);
		const char *id = path + (room ? 11 : 15), *slash;

		if ((room || !strncmp(path, "/api/platforms/", 15)) && (slash = strchr(id, '/')) &&
		    !strcmp(slash, "/switch") && valid_id(id, (size_t)(slash - id))) {
			char buf[80];

			snprintf(buf, sizeof(buf), "%.*s", (int)(slash - id), id);
			api_switch(c, req, room, buf);
			return;
		}
		send_error(req, 404, "not_found", "POST /api/rooms/ID/switch or /api/platforms/ID/switch");
		return;
	}
	if (cmd != EVHTTP_REQ_GET) {
		send_error(req, 405, "method_not_allowed", "GET or POST");
		return;
	}
	if (!strcmp(path, "/api/status"))
		send_json(req, 200, json_pack("{s:s, s:o}", "csrf", c->csrf, "status", console_status_json(c)));
	else if (!strcmp(path, "/api/restores"))
		send_json(req, 200, pms_series_json(&c->series, (int64_t)cdr_wall_ms()));
	else if (!strcmp(path, "/api/preview"))
		api_preview(c, req, evhttp_uri_get_query(u));
	else if (!strcmp(path, "/"))
		send_static(c, req, "index.html");
	else if (!strncmp(path, "/api/", 5))
		send_error(req, 404, "not_found", "no such API");
	else if ((rest = path + 1) && !strchr(rest, '/'))
		send_static(c, req, rest);
	else
		send_error(req, 404, "not_found", "no such page");
}

/* ---- life ---- */

static void bind_listener(struct pms_console *c)
{
	struct event_base *base = cdr_loop_base(cdr_daemon_loop(c->s->d));
	char host[64];
	int port;

	if (c->bound || !c->running)
		return;
	c->bind_tried_ms = cdr_mono_i64();
	if (!c->http) {
		if (!(c->http = evhttp_new(base)))
			return;
		evhttp_set_gencb(c->http, on_request, c);
		evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
		evhttp_set_max_body_size(c->http, BODY_MAX);
		evhttp_set_max_headers_size(c->http, 16384);
		evhttp_set_timeout(c->http, 30);
	}
	pms_probe_parse_addr(c->listen, host, sizeof(host), &port);
	if (!(c->bound = evhttp_bind_socket_with_handle(c->http, host, (ev_uint16_t)port))) {
		cdr_warn("console: cannot listen on %s: %s; trying again in %d s", c->listen, strerror(errno),
			 BIND_RETRY / 1000);
		return;
	}
	cdr_notice("console: listening on http://%s/ (files from %s; user %s)", c->listen, c->dir, c->user);
}

void pms_console_tick(struct pms *s)
{
	struct pms_console *c = s->console;

	if (c && c->running && !c->bound && cdr_mono_i64() - c->bind_tried_ms >= BIND_RETRY)
		bind_listener(c);
}

int pms_console_new(struct pms *s, const struct pms_conf *cf, struct pms_console **ret)
{
	struct pms_console *c;
	unsigned char rnd[16];
	char why[PATH_MAX + 128];

	if (!*cf->console_listen)
		return 0;
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	c->s = s;
	if (!(c->listen = strdup(cf->console_listen)) || !(c->user = strdup(cf->console_user)))
		goto nomem;
	if (cdr_secret_read(cf->console_password_file, NULL, &c->password, why, sizeof(why)) < 0) {
		cdr_err("console: [pms] console_password_file: %s", why);
		pms_console_free(c);
		return -EINVAL;
	}
	if (find_dir(cf, c->dir, sizeof(c->dir)) < 0) {
		cdr_err("console: no directory of its files: set [pms] console_dir (the installed share/confdr/console "
			"or the source tree's src/pms/console)");
		pms_console_free(c);
		return -ENOENT;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		pms_console_free(c);
		return -EIO;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(c->csrf + 2 * i, 3, "%02x", rnd[i]);
	if (console_feed_new(c) < 0)
		goto nomem;
	*ret = c;
	return 0;
nomem:
	pms_console_free(c);
	return -ENOMEM;
}

void pms_console_start(struct pms *s)
{
	struct pms_console *c = s->console;

	if (!c || c->running)
		return;
	c->running = true;
	console_feed_start(c);
	bind_listener(c);
}

void pms_console_stop(struct pms *s)
{
	struct pms_console *c = s->console;

	if (!c || !c->running)
		return;
	c->running = false;
	console_feed_stop(c); /* answers a switch in flight (503) while its request is whole */
	if (c->http)
		evhttp_free(c->http);
	c->http = NULL;
	c->bound = NULL;
	cdr_notice("console: closed");
}

int pms_console_reload(struct pms *s, const struct pms_conf *cf)
{
	struct pms_console *c = NULL;
	int r;

	if ((r = pms_console_new(s, cf, &c)) < 0)
		return r;
	pms_console_stop(s);
	if (c && s->console)
		console_feed_take_history(c, s->console);
	pms_console_free(s->console);
	s->console = c;
	if (s->started)
		pms_console_start(s);
	return 0;
}

struct pms_console *pms_console_free(struct pms_console *c)
{
	if (!c)
		return NULL;
	if (c->running)
		pms_console_stop(c->s);
	console_feed_free(c);
	if (c->password) {
		memset(c->password, 0, strlen(c->password));
		free(c->password);
	}
	free(c->listen);
	free(c->user);
	free(c);
	return NULL;
}
