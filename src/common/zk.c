/* ZooKeeper over the C client (zookeeper_mt).
 *
 * Threads: the client's completion thread runs our completions and the
 * session watcher. They only copy what they got into a heap object and post
 * it to the loop; everything else (request bookkeeping, the watch table,
 * session replacement, data watches, elections) lives on the loop thread.
 *
 * Watches: requests ask ZooKeeper for the default watcher (watch = 1), not a
 * watcher object per request, so the client never holds a pointer of ours
 * that it might drop without telling (it does so at close and expiry). The
 * loop keeps a table of one-shot watches by path and fires them from the
 * default watcher's events. See docs/zookeeper.md. */
#include <confdr/zk.h>

#include <confdr/log.h>
#include <confdr/loop.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zookeeper/zookeeper.h>

enum op { OP_GET, OP_EXISTS, OP_CHILDREN, OP_CREATE, OP_SET, OP_DELETE };

/* One request, from submission to delivery on the loop thread. The client's
 * thread writes the result fields and posts it; nothing else touches it
 * there. */
struct req {
	struct cdr_zk *zk;
	struct req *prev, *next; /* zk->reqs, loop thread only */
	enum op op;
	unsigned gen; /* handle generation it was sent on */
	cdr_zk_fn fn;
	void *arg;
	cdr_zk_watch_fn watch;
	void *watch_arg;
	char *path; /* relative to the chroot */
	/* result */
	int rc;
	char *data;
	int len; /* -1: no data */
	char **children;
	size_t nchildren;
	char *created; /* full path */
	struct Stat stat;
	bool has_stat;
};

/* A one-shot watch armed by a successful read. */
enum watch_kind { W_DATA, W_CHILD };
struct watch {
	struct watch *next;
	enum watch_kind kind;
	cdr_zk_watch_fn fn;
	void *arg;
	char path[];
};

/* An event from the default watcher, copied for the loop. */
struct zevent {
	struct cdr_zk *zk;
	unsigned gen;
	int type, state;
	char path[];
};

/* Internal session listeners: data watches and elections. */
struct listener {
	struct listener *next;
	void (*fn)(enum cdr_zk_state state, void *arg);
	void *arg;
};

/* What the client's threads may read: fixed for the handle's life. */
struct conn {
	struct cdr_zk *zk;
	struct cdr_loop *loop;
	unsigned gen;
};

struct cdr_zk {
	struct cdr_loop *loop;
	char *hosts;
	char *chroot; /* "" for none, else "/dr" (no trailing slash) */
	unsigned timeout_ms;
	cdr_zk_session_fn on_session;
	void *arg;
	char *auth;	 /* "user:password" for the digest scheme, NULL for none */
	bool auth_again; /* the login sent again on this connection (req_deliver) */
	size_t user_len;
	struct ACL_vector acl; /* nodes' default ACL */

	zhandle_t *zh;
	struct conn *conn;
	unsigned gen;
	bool connected;	     /* told CONNECTED, no DISCONNECTED/EXPIRED since */
	bool ever_connected; /* this handle has had a session */
	bool chroot_ok;
	bool freeing;
	struct cdr_backoff backoff;
	struct cdr_timer *renew;   /* new handle after an expiry */
	struct cdr_timer *suspect; /* disconnected for a whole session timeout */

	struct req *reqs;
	struct watch *watches;
	struct listener *listeners;
};

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

/* The default ACL of an authenticated handle: everything for the users this
 * session authenticated as (the "auth" scheme), reading for everybody. */
static struct ACL creator_acl_entries[] = {
	{ .perms = CDR_ZK_PERM_ALL, .id = { .scheme = (char *)"auth", .id = (char *)"" } },
	{ .perms = CDR_ZK_PERM_READ, .id = { .scheme = (char *)"world", .id = (char *)"anyone" } },
};
static const struct ACL_vector creator_acl = { .count = 2, .data = creator_acl_entries };

static void client_log(const char *msg)
{
	cdr_debug("zookeeper: %s", msg);
}

static void log_setup(void)
{
	/* The client's own messages go to client_log (debug); below WARN it is
	 * too chatty even for debug. */
	zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
}

static int map_rc(int rc)
{
	switch (rc) {
	case ZOK: return 0;
	case ZNONODE: return -ENOENT;
	case ZNODEEXISTS: return -EEXIST;
	case ZNOTEMPTY: return -ENOTEMPTY;
	case ZBADVERSION: return -ESTALE;
	case ZCONNECTIONLOSS:
	case ZINVALIDSTATE: return -ENOTCONN;
	case ZOPERATIONTIMEOUT: return -ETIMEDOUT;
	case ZSESSIONEXPIRED:
	case ZSESSIONMOVED: return -ECONNABORTED;
	case ZNOAUTH:
	case ZAUTHFAILED: return -EACCES;
	case ZBADARGUMENTS:
	case ZNOCHILDRENFOREPHEMERALS:
	case ZINVALIDACL: return -EINVAL;
	case ZCLOSING: return -ECANCELED;
	case ZMARSHALLINGERROR: return -ENOMEM;
	default: return -EIO;
	}
}

const char *cdr_zk_state_name(enum cdr_zk_state state)
{
	switch (state) {
	case CDR_ZK_CONNECTED: return "connected";
	case CDR_ZK_DISCONNECTED: return "disconnected";
	case CDR_ZK_EXPIRED: return "expired";
	}
	return "?";
}

static bool path_ok(const char *path)
{
	size_t n;

	if (!path || path[0] != '/')
		return false;
	n = strlen(path);
	if (n > 1 && path[n - 1] == '/')
		return false;
	return !strstr(path, "//");
}

/* chroot + path; "/" alone is the chroot itself. Caller frees. */
static char *full_path(const struct cdr_zk *zk, const char *path)
{
	char *s;

	if (!zk->chroot[0])
		return strdup(path);
	if (strcmp(path, "/") == 0)
		return strdup(zk->chroot);
	if (asprintf(&s, "%s%s", zk->chroot, path) < 0)
		return NULL;
	return s;
}

/* The path relative to the chroot (borrowed from full), or NULL if outside. */
static const char *rel_path(const struct cdr_zk *zk, const char *full)
{
	size_t n = strlen(zk->chroot);

	if (!n)
		return full;
	if (strncmp(full, zk->chroot, n) != 0)
		return NULL;
	if (full[n] == '\0')
		return "/";
	return full[n] == '/' ? full + n : NULL;
}

/* ---- watches ---- */

static int watch_add(struct cdr_zk *zk, enum watch_kind kind, const char *path, cdr_zk_watch_fn fn, void *arg)
{
	size_t n = strlen(path) + 1;
	struct watch *w = malloc(sizeof(*w) + n);

	if (!w)
		return -ENOMEM;
	w->kind = kind;
	w->fn = fn;
	w->arg = arg;
	memcpy(w->path, path, n);
	w->next = zk->watches;
	zk->watches = w;
	return 0;
}

/* Fires (and removes) every watch on path matching ev; all watches when path
 * is NULL (with CDR_ZK_EV_LOST). Detaches them first, so a callback may arm
 * new ones or cancel others. */
static void watch_fire(struct cdr_zk *zk, const char *path, enum cdr_zk_event ev)
{
	struct watch *fire = NULL, **pp = &zk->watches;

	while (*pp) {
		struct watch *w = *pp;
		bool match;

		if (!path)
			match = true;
		else if (strcmp(w->path, path) != 0)
			match = false;
		else if (ev == CDR_ZK_EV_DELETED)
			match = true;
		else if (ev == CDR_ZK_EV_CHILDREN)
			match = w->kind == W_CHILD;
		else
			match = w->kind == W_DATA;
		if (match) {
			*pp = w->next;
			w->next = fire;
			fire = w;
		} else {
			pp = &w->next;
		}
	}
	/* fire is in reverse order of the table, which is reverse arming order:
	 * so callbacks run in the order the watches were armed. */
	while (fire) {
		struct watch *w = fire;
		fire = w->next;
		if (w->fn)
			w->fn(ev, w->path, w->arg);
		free(w);
	}
}

void cdr_zk_cancel(struct cdr_zk *zk, const void *arg)
{
	struct watch **pp = &zk->watches;

	for (struct req *r = zk->reqs; r; r = r->next) {
		if (r->arg == arg)
			r->fn = NULL;
		if (r->watch_arg == arg)
			r->watch = NULL;
	}
	while (*pp) {
		struct watch *w = *pp;
		if (w->arg == arg) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

/* ---- listeners ---- */

static int listener_add(struct cdr_zk *zk, void (*fn)(enum cdr_zk_state, void *), void *arg)
{
	struct listener *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->fn = fn;
	l->arg = arg;
	l->next = zk->listeners;
	zk->listeners = l;
	return 0;
}

static void listener_del(struct cdr_zk *zk, void *arg)
{
	for (struct listener **pp = &zk->listeners; *pp; pp = &(*pp)->next) {
		if ((*pp)->arg == arg) {
			struct listener *l = *pp;
			*pp = l->next;
			free(l);
			return;
		}
	}
}

static void tell(struct cdr_zk *zk, enum cdr_zk_state state)
{
	/* Internal listeners first: an election steps down before the daemon
	 * hears of the expiry. A listener may free itself (not others). */
	struct listener *l = zk->listeners;
	while (l) {
		struct listener *next = l->next;
		l->fn(state, l->arg);
		l = next;
	}
	if (zk->on_session)
		zk->on_session(state, zk->arg);
}

/* ---- requests ---- */

static void req_free(struct req *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nchildren; i++)
		free(r->children[i]);
	free(r->children);
	free(r->data);
	free(r->created);
	free(r->path);
	free(r);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void req_deliver(void *arg)
{
	struct req *r = arg;
	struct cdr_zk *zk = r->zk;
	struct cdr_zk_result res = { 0 };
	int status = map_rc(r->rc);

	if (r->prev)
		r->prev->next = r->next;
	else
		zk->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;

	/* A create refused for an invalid ACL on a handle that logged in: with
	 * our ACLs ("auth", the session's own users), the connection has no
	 * login. Seen after the whole ensemble restarted, on a session that
	 * survived it: the server never logged the login that the client sends
	 * again on every re-connection (fault suite, zk-down). The login is
	 * sent again, once per connection, and the caller's retry works. */
	if (r->rc == ZINVALIDACL && zk->auth && r->gen == zk->gen && zk->zh && !zk->freeing && !zk->auth_again) {
		cdr_warn("zookeeper: %s refused for an invalid ACL: this connection lacks the login of user %.*s; "
			 "logging in again",
			 r->path, (int)zk->user_len, zk->auth);
		zk->auth_again = true;
		zoo_add_auth(zk->zh, "digest", zk->auth, (int)strlen(zk->auth), NULL, NULL);
	}

	/* ZCLOSING from a handle we closed after an expiry is the session's
	 * end, not the caller's handle going away. */
	if (status == -ECANCELED && !zk->freeing)
		status = -ECONNABORTED;

	/* Arm the watch if the read succeeded on the current session (an exists
	 * watch is armed on a missing node too). */
	if (r->watch && r->gen == zk->gen && zk->zh && !zk->freeing &&
	    (status == 0 || (r->op == OP_EXISTS && status == -ENOENT))) {
		enum watch_kind kind = r->op == OP_CHILDREN ? W_CHILD : W_DATA;
		if (watch_add(zk, kind, r->path, r->watch, r->watch_arg) < 0)
			cdr_debug("zk: out of memory arming a watch on %s", r->path);
	}

	if (r->fn) {
		res.status = status;
		res.error = status ? zerror(r->rc) : NULL;
		res.path = r->path;
		if (r->created) {
			const char *p = rel_path(zk, r->created);
			if (p)
				res.path = p;
		}
		if (r->len >= 0 && r->data) {
			res.data = r->data;
			res.len = (size_t)r->len;
		}
		if (r->children) {
			qsort(r->children, r->nchildren, sizeof(char *), cmp_str);
			res.children = (const char *const *)r->children;
			res.nchildren = r->nchildren;
		}
		res.version = r->has_stat ? r->stat.version : -1;
		res.ephemeral_owner = r->has_stat ? r->stat.ephemeralOwner : 0;
		if (r->op == OP_CREATE && status == 0)
			res.version = 0;
		r->fn(&res, r->arg);
	}
	req_free(r);
}

/* Completions, on the client's thread: copy, then post. On OOM the copy is
 * dropped and the request fails with ZMARSHALLINGERROR rather than be lost. */
static void post(struct req *r)
{
	if (cdr_loop_post(r->zk->loop, req_deliver, r) < 0)
		cdr_debug("zk: cannot post a completion (out of memory): request %s lost", r->path);
}

static void on_data(int rc, const char *value, int len, const struct Stat *stat, const void *data)
{
	struct req *r = (struct req *)data;

	r->rc = rc;
	r->len = -1;
	if (rc == ZOK && stat) {
		r->stat = *stat;
		r->has_stat = true;
	}
	if (rc == ZOK && value && len >= 0) {
		r->data = malloc((size_t)len + 1);
		if (r->data) {
			memcpy(r->data, value, (size_t)len);
			r->data[len] = '\0';
			r->len = len;
		} else {
			r->rc = ZMARSHALLINGERROR;
		}
	}
	post(r);
}

static void on_stat(int rc, const struct Stat *stat, const void *data)
{
	struct req *r = (struct req *)data;

	r->rc = rc;
	if (rc == ZOK && stat) {
		r->stat = *stat;
		r->has_stat = true;
	}
	post(r);
}

static void on_strings(int rc, const struct String_vector *v, const void *data)
{
	struct req *r = (struct req *)data;

	r->rc = rc;
	if (rc == ZOK) {
		size_t n = v && v->count > 0 ? (size_t)v->count : 0;
		r->children = calloc(n + 1, sizeof(char *));
		if (!r->children) {
			r->rc = ZMARSHALLINGERROR;
		} else {
			for (size_t i = 0; i < n; i++) {
				r->children[i] = strdup(v->data[i]);
				if (!r->children[i]) {
					r->rc = ZMARSHALLINGERROR;
					break;
				}
				r->nchildren = i + 1;
			}
		}
	}
	post(r);
}

static void on_string(int rc, const char *value, const void *data)
{
	struct req *r = (struct req *)data;

	r->rc = rc;
	if (rc == ZOK && value) {
		r->created = strdup(value);
		if (!r->created)
			r->rc = ZMARSHALLINGERROR;
	}
	post(r);
}

static void on_void(int rc, const void *data)
{
	struct req *r = (struct req *)data;

	r->rc = rc;
	post(r);
}

/* Sends one request for path (absolute on the server: chroot included).
 * Returns 0 (r will be delivered) or -ENOMEM; r is consumed either way. */
static int submit(struct cdr_zk *zk, struct req *r, const char *full, const void *data, size_t len, int flags,
		  int32_t version, const struct ACL_vector *acl)
{
	int rc;
	int watch = r->watch ? 1 : 0;

	r->zk = zk;
	r->gen = zk->gen;
	r->len = -1;
	r->next = zk->reqs;
	if (zk->reqs)
		zk->reqs->prev = r;
	zk->reqs = r;

	if (!zk->zh || zk->freeing) {
		rc = zk->freeing ? ZCLOSING : ZINVALIDSTATE;
	} else {
		switch (r->op) {
		case OP_GET: rc = zoo_aget(zk->zh, full, watch, on_data, r); break;
		case OP_EXISTS: rc = zoo_aexists(zk->zh, full, watch, on_stat, r); break;
		case OP_CHILDREN: rc = zoo_aget_children(zk->zh, full, watch, on_strings, r); break;
		case OP_CREATE:
			rc = zoo_acreate(zk->zh, full, data, data ? (int)len : -1, acl ? acl : &zk->acl, flags,
					 on_string, r);
			break;
		case OP_SET: rc = zoo_aset(zk->zh, full, data, (int)len, version, on_stat, r); break;
		case OP_DELETE: rc = zoo_adelete(zk->zh, full, version, on_void, r); break;
		default: rc = ZBADARGUMENTS; break;
		}
	}
	if (rc == ZOK)
		return 0;
	/* Refused before it was sent: still delivered, through the loop, so the
	 * caller's callback never runs inside the call. */
	r->rc = rc;
	if (cdr_loop_post(zk->loop, req_deliver, r) < 0) {
		if (r->prev)
			r->prev->next = r->next;
		else
			zk->reqs = r->next;
		if (r->next)
			r->next->prev = r->prev;
		req_free(r);
		return -ENOMEM;
	}
	return 0;
}

static struct req *req_new(enum op op, const char *path, cdr_zk_watch_fn watch, void *watch_arg, cdr_zk_fn fn,
			   void *arg)
{
	struct req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->op = op;
	r->path = strdup(path);
	if (!r->path) {
		free(r);
		return NULL;
	}
	r->watch = watch;
	r->watch_arg = watch_arg;
	r->fn = fn;
	r->arg = arg;
	return r;
}

/* A request on a path relative to the chroot. */
static int request(struct cdr_zk *zk, enum op op, const char *path, cdr_zk_watch_fn watch, void *watch_arg,
		   const void *data, size_t len, int flags, int32_t version, const struct ACL_vector *acl, cdr_zk_fn fn,
		   void *arg)
{
	struct req *r;
	char *full;
	int ret;

	if (!path_ok(path) || len > INT32_MAX)
		return -EINVAL;
	full = full_path(zk, path);
	if (!full)
		return -ENOMEM;
	r = req_new(op, path, watch, watch_arg, fn, arg);
	if (!r) {
		free(full);
		return -ENOMEM;
	}
	ret = submit(zk, r, full, data, len, flags, version, acl);
	free(full);
	return ret;
}

int cdr_zk_get(struct cdr_zk *zk, const char *path, cdr_zk_watch_fn watch, void *watch_arg, cdr_zk_fn fn, void *arg)
{
	return request(zk, OP_GET, path, watch, watch_arg, NULL, 0, 0, -1, NULL, fn, arg);
}

int cdr_zk_exists(struct cdr_zk *zk, const char *path, cdr_zk_watch_fn watch, void *watch_arg, cdr_zk_fn fn, void *arg)
{
	return request(zk, OP_EXISTS, path, watch, watch_arg, NULL, 0, 0, -1, NULL, fn, arg);
}

int cdr_zk_children(struct cdr_zk *zk, const char *path, cdr_zk_watch_fn watch, void *watch_arg, cdr_zk_fn fn,
		    void *arg)
{
	return request(zk, OP_CHILDREN, path, watch, watch_arg, NULL, 0, 0, -1, NULL, fn, arg);
}

/* Creates every ancestor of full (absolute on the server) below "/", in
 * order, ignoring the results: requests of a session are served in order,
 * so they exist (or were refused) before what is sent next. */
static int create_parents(struct cdr_zk *zk, const char *full)
{
	char *p = strdup(full);
	int ret = 0;

	if (!p)
		return -ENOMEM;
	for (char *s = strchr(p + 1, '/'); s && ret == 0; s = strchr(s + 1, '/')) {
		struct req *r;
		*s = '\0';
		r = req_new(OP_CREATE, p, NULL, NULL, NULL, NULL);
		ret = r ? submit(zk, r, p, NULL, 0, 0, -1, NULL) : -ENOMEM;
		*s = '/';
	}
	free(p);
	return ret;
}

static int create(struct cdr_zk *zk, const char *path, const void *data, size_t len, unsigned flags,
		  const struct ACL_vector *acl, cdr_zk_fn fn, void *arg)
{
	int zflags = 0;

	if (!path_ok(path) || strcmp(path, "/") == 0)
		return -EINVAL;
	if (flags & CDR_ZK_EPHEMERAL)
		zflags |= ZOO_EPHEMERAL;
	if (flags & CDR_ZK_SEQUENCE)
		zflags |= ZOO_SEQUENCE;
	if (flags & CDR_ZK_PARENTS) {
		char *full = full_path(zk, path);
		int ret = full ? create_parents(zk, full) : -ENOMEM;
		free(full);
		if (ret < 0)
			return ret;
	}
	return request(zk, OP_CREATE, path, NULL, NULL, data, len, zflags, -1, acl, fn, arg);
}

int cdr_zk_create(struct cdr_zk *zk, const char *path, const void *data, size_t len, unsigned flags, cdr_zk_fn fn,
		  void *arg)
{
	return create(zk, path, data, len, flags, NULL, fn, arg);
}

int cdr_zk_create_acl(struct cdr_zk *zk, const char *path, const void *data, size_t len, unsigned flags,
		      const struct cdr_zk_acl *acl, size_t n, cdr_zk_fn fn, void *arg)
{
	struct ACL v[16];
	struct ACL_vector vec = { .count = (int32_t)n, .data = v };

	/* The client serialises the request before zoo_acreate returns: the
	 * vector may live on this stack. */
	if (!acl || n == 0 || n > sizeof(v) / sizeof(v[0]))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!acl[i].scheme || !acl[i].id || !acl[i].perms || (acl[i].perms & ~(unsigned)CDR_ZK_PERM_ALL))
			return -EINVAL;
		v[i].perms = (int32_t)acl[i].perms;
		v[i].id.scheme = (char *)acl[i].scheme;
		v[i].id.id = (char *)acl[i].id;
	}
	return create(zk, path, data, len, flags, &vec, fn, arg);
}

int cdr_zk_set(struct cdr_zk *zk, const char *path, const void *data, size_t len, int32_t version, cdr_zk_fn fn,
	       void *arg)
{
	return request(zk, OP_SET, path, NULL, NULL, data, len, 0, version, NULL, fn, arg);
}

int cdr_zk_delete(struct cdr_zk *zk, const char *path, int32_t version, cdr_zk_fn fn, void *arg)
{
	return request(zk, OP_DELETE, path, NULL, NULL, NULL, 0, 0, version, NULL, fn, arg);
}

/* ---- the session ---- */

static void on_chroot(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_zk *zk = arg;

	if (r->status == 0 || r->status == -EEXIST)
		zk->chroot_ok = true;
	else
		cdr_debug("zk: creating the chroot %s: %s", zk->chroot, r->error ? r->error : "?");
}

/* Queued first on every handle (and again on connect until it worked), so
 * that requests sent after it find the chroot. */
static void ensure_chroot(struct cdr_zk *zk)
{
	struct req *r;

	if (!zk->chroot[0] || zk->chroot_ok || !zk->zh)
		return;
	if (create_parents(zk, zk->chroot) < 0)
		return;
	r = req_new(OP_CREATE, "/", NULL, NULL, on_chroot, zk);
	if (r)
		submit(zk, r, zk->chroot, NULL, 0, 0, -1, NULL);
}

static void event_deliver(void *arg);

/* The default watcher, on the client's thread: session events and the
 * events of every watch we armed. */
static void on_client_event(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	struct conn *c = ctx;
	size_t n = path ? strlen(path) + 1 : 1;
	struct zevent *e = malloc(sizeof(*e) + n);

	(void)zh;
	if (!e) {
		cdr_debug("zk: out of memory: event dropped");
		return;
	}
	e->zk = c->zk;
	e->gen = c->gen;
	e->type = type;
	e->state = state;
	memcpy(e->path, path ? path : "", n);
	if (cdr_loop_post(c->loop, event_deliver, e) < 0) {
		cdr_debug("zk: out of memory: event dropped");
		free(e);
	}
}

static int open_handle(struct cdr_zk *zk)
{
	struct conn *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->zk = zk;
	c->loop = zk->loop;
	c->gen = ++zk->gen;
	errno = 0;
	zk->zh = zookeeper_init2(zk->hosts, on_client_event, (int)zk->timeout_ms, NULL, c, 0, client_log);
	if (!zk->zh) {
		err = errno ? errno : EIO;
		free(c);
		return -err;
	}
	zk->conn = c;
	zk->ever_connected = false;
	zk->chroot_ok = false;
	/* Sent before anything else on every connection of this handle (the
	 * client keeps it and sends it again when it re-connects); a new handle
	 * after an expiry adds it again here. */
	if (zk->auth)
		zoo_add_auth(zk->zh, "digest", zk->auth, (int)strlen(zk->auth), NULL, NULL);
	ensure_chroot(zk);
	return 0;
}

/* Detaches the handle (its later events are stale) and closes it: this
 * joins the client's threads, whose last completions are posted. */
static void close_handle(struct cdr_zk *zk, zhandle_t *zh, struct conn *c)
{
	if (zh)
		zookeeper_close(zh);
	free(c);
}

static void on_renew(void *arg)
{
	struct cdr_zk *zk = arg;
	int ret;

	if (zk->zh)
		return;
	ret = open_handle(zk);
	if (ret < 0) {
		uint64_t ms = cdr_backoff_next(&zk->backoff);
		cdr_debug("zk: new session for %s: %s, retrying in %" PRIu64 " ms", zk->hosts, strerror(-ret), ms);
		cdr_timer_start(zk->renew, ms, false);
	}
}

/* The session is gone (or must be presumed gone): tell at once, then start a
 * new one after the back-off. */
static void session_lost(struct cdr_zk *zk)
{
	zhandle_t *zh = zk->zh;
	struct conn *c = zk->conn;
	bool had = zk->ever_connected;

	cdr_timer_stop(zk->suspect);
	zk->zh = NULL;
	zk->conn = NULL;
	zk->gen++;
	zk->connected = false;
	zk->ever_connected = false;
	watch_fire(zk, NULL, CDR_ZK_EV_LOST);
	if (had)
		tell(zk, CDR_ZK_EXPIRED);
	close_handle(zk, zh, c);
	if (!zk->freeing)
		cdr_timer_start(zk->renew, cdr_backoff_next(&zk->backoff), false);
}

static void on_suspect(void *arg)
{
	struct cdr_zk *zk = arg;

	cdr_debug("zk: no connection to %s for a whole session timeout: session presumed expired", zk->hosts);
	session_lost(zk);
}

static void session_up(struct cdr_zk *zk)
{
	cdr_timer_stop(zk->suspect);
	cdr_backoff_reset(&zk->backoff);
	zk->ever_connected = true;
	zk->auth_again = false;
	ensure_chroot(zk);
	if (zk->connected)
		return;
	zk->connected = true;
	tell(zk, CDR_ZK_CONNECTED);
}

static void session_down(struct cdr_zk *zk)
{
	int t;

	if (!zk->connected)
		return;
	zk->connected = false;
	t = zoo_recv_timeout(zk->zh);
	cdr_timer_start(zk->suspect, t > 0 ? (uint64_t)t : zk->timeout_ms, false);
	tell(zk, CDR_ZK_DISCONNECTED);
}

static void event_deliver(void *arg)
{
	struct zevent *e = arg;
	struct cdr_zk *zk = e->zk;

	if (zk->freeing || e->gen != zk->gen || !zk->zh) {
		free(e);
		return;
	}
	if (e->type == ZOO_SESSION_EVENT) {
		if (e->state == ZOO_CONNECTED_STATE)
			session_up(zk);
		else if (e->state == ZOO_CONNECTING_STATE || e->state == ZOO_ASSOCIATING_STATE)
			session_down(zk);
		else if (e->state == ZOO_EXPIRED_SESSION_STATE)
			session_lost(zk);
		else if (e->state == ZOO_AUTH_FAILED_STATE) {
			cdr_err("zookeeper: %s refused the password of user %.*s; trying again", zk->hosts,
				(int)zk->user_len, zk->auth ? zk->auth : "");
			session_lost(zk);
		}
	} else {
		const char *rel = rel_path(zk, e->path);
		enum cdr_zk_event ev;
		bool known = true;

		if (e->type == ZOO_CREATED_EVENT)
			ev = CDR_ZK_EV_CREATED;
		else if (e->type == ZOO_DELETED_EVENT)
			ev = CDR_ZK_EV_DELETED;
		else if (e->type == ZOO_CHANGED_EVENT)
			ev = CDR_ZK_EV_CHANGED;
		else if (e->type == ZOO_CHILD_EVENT)
			ev = CDR_ZK_EV_CHILDREN;
		else
			known = false;
		if (known && rel)
			watch_fire(zk, rel, ev);
	}
	free(e);
}

int cdr_zk_new(struct cdr_loop *loop, const struct cdr_zk_opts *opts, struct cdr_zk **ret)
{
	struct cdr_zk *zk;
	const char *chroot = opts->chroot ? opts->chroot : "";
	int err;

	if (!opts->hosts || !opts->hosts[0])
		return -EINVAL;
	if (strcmp(chroot, "/") == 0)
		chroot = "";
	if (chroot[0] && !path_ok(chroot))
		return -EINVAL;
	pthread_once(&log_once, log_setup);
	zk = calloc(1, sizeof(*zk));
	if (!zk)
		return -ENOMEM;
	zk->loop = loop;
	zk->timeout_ms = opts->session_timeout_ms ? opts->session_timeout_ms : 10000;
	zk->on_session = opts->on_session;
	zk->arg = opts->arg;
	cdr_backoff_init(&zk->backoff, opts->reconnect_min_ms ? opts->reconnect_min_ms : 100,
			 opts->reconnect_max_ms ? opts->reconnect_max_ms : 10000);
	err = -ENOMEM;
	zk->hosts = strdup(opts->hosts);
	zk->chroot = strdup(chroot);
	if (!zk->hosts || !zk->chroot)
		goto free_zk;
	if (opts->user && opts->user[0]) {
		if (strchr(opts->user, ':') || !opts->password) {
			err = -EINVAL;
			goto free_zk;
		}
		if (asprintf(&zk->auth, "%s:%s", opts->user, opts->password) < 0) {
			zk->auth = NULL;
			goto free_zk;
		}
		zk->user_len = strlen(opts->user);
		zk->acl = creator_acl;
	} else {
		zk->acl = ZOO_OPEN_ACL_UNSAFE;
	}
	if ((err = cdr_timer_new(loop, on_renew, zk, &zk->renew)) < 0 ||
	    (err = cdr_timer_new(loop, on_suspect, zk, &zk->suspect)) < 0)
		goto free_zk;
	err = open_handle(zk);
	if (err == -EINVAL)
		goto free_zk;
	if (err < 0)
		cdr_timer_start(zk->renew, cdr_backoff_next(&zk->backoff), false);
	*ret = zk;
	return 0;
free_zk:
	cdr_zk_free(zk);
	return err;
}

struct cdr_zk *cdr_zk_free(struct cdr_zk *zk)
{
	zhandle_t *zh;
	struct conn *c;

	if (!zk)
		return NULL;
	zk->freeing = true;
	zk->renew = cdr_timer_free(zk->renew);
	zk->suspect = cdr_timer_free(zk->suspect);
	zh = zk->zh;
	c = zk->conn;
	zk->zh = NULL;
	zk->conn = NULL;
	zk->gen++;
	close_handle(zk, zh, c);
	/* Every completion has been posted by now (closing joined the client's
	 * threads): deliver them, with -ECANCELED. */
	cdr_loop_flush(zk->loop);
	watch_fire(zk, NULL, CDR_ZK_EV_LOST);
	assert(!zk->reqs);
	while (zk->listeners) {
		struct listener *l = zk->listeners;
		zk->listeners = l->next;
		free(l);
	}
	free(zk->hosts);
	free(zk->chroot);
	if (zk->auth) {
		explicit_bzero(zk->auth, strlen(zk->auth));
		free(zk->auth);
	}
	free(zk);
	return NULL;
}

bool cdr_zk_connected(const struct cdr_zk *zk)
{
	return zk->connected;
}

int cdr_zk_session(const struct cdr_zk *zk, struct cdr_zk_session *ret)
{
	const clientid_t *id;
	int t;

	if (!zk->zh || !zk->ever_connected)
		return -ENOTCONN;
	id = zoo_client_id(zk->zh);
	if (!id || !id->client_id)
		return -ENOTCONN;
	ret->id = id->client_id;
	memcpy(ret->passwd, id->passwd, sizeof(ret->passwd));
	t = zoo_recv_timeout(zk->zh);
	ret->timeout_ms = t > 0 ? (unsigned)t : zk->timeout_ms;
	return 0;
}

/* ---- data watch ---- */

struct cdr_zk_data_watch {
	struct cdr_zk *zk;
	char *path;
	cdr_zk_data_fn fn;
	void *arg;
	bool busy;  /* a read is in flight */
	bool again; /* read again when it is back */
	bool told;  /* fn has been called at least once */
	int last_status;
	char *last;
	size_t last_len;
};

static void dw_read(struct cdr_zk_data_watch *w);

static void dw_report(struct cdr_zk_data_watch *w, int status, const char *data, size_t len)
{
	char *copy = NULL;

	if (w->told && status == w->last_status && len == w->last_len &&
	    (len == 0 || (w->last && data && memcmp(w->last, data, len) == 0)))
		return;
	if (status == 0) {
		copy = malloc(len + 1);
		if (!copy)
			return; /* told next time */
		if (len)
			memcpy(copy, data, len);
		copy[len] = '\0';
	}
	free(w->last);
	w->last = copy;
	w->last_len = status == 0 ? len : 0;
	w->last_status = status;
	w->told = true;
	w->fn(status, copy, w->last_len, w->arg);
}

static void dw_event(enum cdr_zk_event ev, const char *path, void *arg)
{
	(void)path;
	/* LOST: the session is gone; we read again when a new one is up. */
	if (ev != CDR_ZK_EV_LOST)
		dw_read(arg);
}

static void dw_done(struct cdr_zk_data_watch *w)
{
	w->busy = false;
	if (w->again) {
		w->again = false;
		dw_read(w);
	}
}

static void dw_exists(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_zk_data_watch *w = arg;

	if (r->status == 0)
		w->again = true; /* created meanwhile: read it */
	else if (r->status == -ENOENT)
		dw_report(w, -ENOENT, NULL, 0);
	dw_done(w);
}

static void dw_got(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_zk_data_watch *w = arg;

	if (r->status == 0) {
		dw_report(w, 0, r->data ? r->data : "", r->data ? r->len : 0);
	} else if (r->status == -ENOENT) {
		/* Wait for it with an exists watch (a get watch needs the node). */
		if (cdr_zk_exists(w->zk, w->path, dw_event, w, dw_exists, w) == 0)
			return;
	}
	dw_done(w);
}

static void dw_read(struct cdr_zk_data_watch *w)
{
	if (w->busy) {
		w->again = true;
		return;
	}
	/* One armed watch is enough: drop those of earlier reads (ZooKeeper
	 * keeps one per path anyway). */
	for (struct watch **pp = &w->zk->watches; *pp;) {
		struct watch *x = *pp;
		if (x->arg == w) {
			*pp = x->next;
			free(x);
		} else {
			pp = &x->next;
		}
	}
	w->busy = true;
	if (cdr_zk_get(w->zk, w->path, dw_event, w, dw_got, w) < 0)
		w->busy = false;
}

static void dw_session(enum cdr_zk_state state, void *arg)
{
	struct cdr_zk_data_watch *w = arg;

	if (state == CDR_ZK_CONNECTED) {
		dw_read(w);
	} else if (state == CDR_ZK_EXPIRED) {
		/* Whatever was in flight belongs to the dead session. */
		cdr_zk_cancel(w->zk, w);
		w->busy = w->again = false;
	}
}

int cdr_zk_data_watch_new(struct cdr_zk *zk, const char *path, cdr_zk_data_fn fn, void *arg,
			  struct cdr_zk_data_watch **ret)
{
	struct cdr_zk_data_watch *w;

	if (!path_ok(path) || !fn)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->zk = zk;
	w->fn = fn;
	w->arg = arg;
	w->path = strdup(path);
	if (!w->path || listener_add(zk, dw_session, w) < 0) {
		free(w->path);
		free(w);
		return -ENOMEM;
	}
	dw_read(w);
	*ret = w;
	return 0;
}

struct cdr_zk_data_watch *cdr_zk_data_watch_free(struct cdr_zk_data_watch *w)
{
	if (!w)
		return NULL;
	cdr_zk_cancel(w->zk, w);
	listener_del(w->zk, w);
	free(w->path);
	free(w->last);
	free(w);
	return NULL;
}

/* ---- election ---- */

struct cdr_zk_election {
	struct cdr_zk *zk;
	char *path;   /* the election's parent node */
	char *prefix; /* path + "/n_" */
	void *data;
	size_t len;
	cdr_zk_leader_fn fn;
	void *arg;
	char *node; /* our node's name in this session, NULL if none */
	int64_t seq;
	bool leader;
	bool placed; /* our node is in and its place was read: leader, or behind a predecessor */
	int64_t epoch;
	bool creating, checking, check_again;
	bool unsure; /* a create failed with the connection: it may exist */
	struct cdr_timer *step_down;
	struct cdr_timer *rejoin; /* a create refused (not for the connection): tried again */
	/* finding our node after an unsure create */
	char **cands;
	size_t ncands, pi;
};

static void el_check(struct cdr_zk_election *e);
static void el_join(struct cdr_zk_election *e);

#define EL_REJOIN_MS 500

static void el_on_rejoin(void *arg)
{
	el_join(arg);
}

static int64_t node_seq(const char *name)
{
	char *end;
	long long v;

	if (strncmp(name, "n_", 2) != 0 || !name[2])
		return -1;
	errno = 0;
	v = strtoll(name + 2, &end, 10);
	if (errno || *end || v < 0)
		return -1;
	return v;
}

static void el_set(struct cdr_zk_election *e, bool leader)
{
	if (e->leader == leader)
		return;
	e->leader = leader;
	if (leader)
		e->epoch = e->seq;
	else
		cdr_timer_stop(e->step_down);
	e->fn(leader, e->epoch, e->arg);
}

static void el_created(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_zk_election *e = arg;
	const char *slash;

	e->creating = false;
	if (r->status == -ENOTCONN) {
		e->unsure = true; /* resolved on the next CONNECTED */
		return;
	}
	if (r->status != 0) {
		/* refused (an ACL, a login this connection lacks): without a
		 * node this instance would never lead, so it tries again */
		cdr_warn("zookeeper: election %s: creating our node: %s; trying again in %d ms", e->path,
			 r->error ? r->error : strerror(-r->status), EL_REJOIN_MS);
		cdr_timer_start(e->rejoin, EL_REJOIN_MS, false);
		return;
	}
	slash = strrchr(r->path, '/');
	free(e->node);
	e->node = strdup(slash ? slash + 1 : r->path);
	e->seq = e->node ? node_seq(e->node) : -1;
	if (!e->node || e->seq < 0) {
		free(e->node);
		e->node = NULL;
		return;
	}
	el_check(e);
}

static void el_join(struct cdr_zk_election *e)
{
	if (e->node || e->creating)
		return;
	e->creating = true;
	if (cdr_zk_create(e->zk, e->prefix, e->data, e->len, CDR_ZK_EPHEMERAL | CDR_ZK_SEQUENCE | CDR_ZK_PARENTS,
			  el_created, e) < 0)
		e->creating = false;
}

static void el_pred_event(enum cdr_zk_event ev, const char *path, void *arg)
{
	(void)path;
	if (ev != CDR_ZK_EV_LOST)
		el_check(arg);
}

static void el_pred(const struct cdr_zk_result *r, void *arg)
{
	/* Gone before the watch could be set: look again. */
	if (r->status == -ENOENT)
		el_check(arg);
}

static void el_children(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_zk_election *e = arg;
	int64_t pred_seq = -1;
	const char *pred = NULL;
	bool mine = false;

	e->checking = false;
	if (r->status != 0 || !e->node)
		goto again;
	for (size_t i = 0; i < r->nchildren; i++) {
		int64_t s = node_seq(r->children[i]);
		if (s < 0)
			continue;
		if (strcmp(r->children[i], e->node) == 0)
			mine = true;
		else if (s < e->seq && s > pred_seq) {
			pred_seq = s;
			pred = r->children[i];
		}
	}
	if (!mine) {
		/* Our node was deleted under us (by an operator): join again. */
		free(e->node);
		e->node = NULL;
		e->placed = false;
		el_set(e, false);
		el_join(e);
		return;
	}
	if (!pred) {
		if (cdr_zk_connected(e->zk)) {
			el_set(e, true);
			e->placed = true;
		}
	} else {
		char *p;
		e->placed = true;
		el_set(e, false);
		if (asprintf(&p, "%s/%s", e->path, pred) >= 0) {
			cdr_zk_exists(e->zk, p, el_pred_event, e, el_pred, e);
			free(p);
		}
	}
again:
	if (e->check_again) {
		e->check_again = false;
		el_check(e);
	}
}

static void el_check(struct cdr_zk_election *e)
{
	if (!e->node)
		return;
	if (e->checking) {
		e->check_again = true;
		return;
	}
	e->checking = true;
	if (cdr_zk_children(e->zk, e->path, NULL, NULL, el_children, e) < 0)
		e->checking = false;
}

/* After a create whose answer was lost: find the node this session owns
 * (one exists request at a time, so that cdr_zk_cancel(e) reaches it), or
 * create one if the create never happened. */
static void el_probe_clear(struct cdr_zk_election *e)
{
	for (size_t i = 0; i < e->ncands; i++)
		free(e->cands[i]);
	free(e->cands);
	e->cands = NULL;
	e->ncands = e->pi = 0;
}

static void el_probed(const struct cdr_zk_result *r, void *arg);

static void el_probe_next(struct cdr_zk_election *e)
{
	char *path;

	if (e->pi < e->ncands && asprintf(&path, "%s/%s", e->path, e->cands[e->pi]) >= 0) {
		int ret = cdr_zk_exists(e->zk, path, NULL, NULL, el_probed, e);
		free(path);
		if (ret == 0)
			return;
	}
	/* Not found (or cannot ask): the create did not happen. */
	el_probe_clear(e);
	e->unsure = false;
	el_join(e);
}

static void el_probed(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_zk_election *e = arg;
	struct cdr_zk_session s;

	if (r->status == -ENOTCONN || r->status == -ECONNABORTED) {
		el_probe_clear(e); /* again on the next CONNECTED */
		return;
	}
	if (r->status == 0 && r->ephemeral_owner && cdr_zk_session(e->zk, &s) == 0 && s.id == r->ephemeral_owner) {
		e->node = e->cands[e->pi];
		e->cands[e->pi] = NULL;
		e->seq = node_seq(e->node);
		e->unsure = false;
		el_probe_clear(e);
		el_check(e);
		return;
	}
	e->pi++;
	el_probe_next(e);
}

static void el_probe_list(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_zk_election *e = arg;

	el_probe_clear(e);
	if (r->status != 0 && r->status != -ENOENT)
		return; /* again on the next CONNECTED */
	e->cands = calloc(r->nchildren + 1, sizeof(char *));
	for (size_t i = 0; e->cands && i < r->nchildren; i++) {
		if (node_seq(r->children[i]) < 0)
			continue;
		e->cands[e->ncands] = strdup(r->children[i]);
		if (e->cands[e->ncands])
			e->ncands++;
	}
	el_probe_next(e);
}

static void el_on_step_down(void *arg)
{
	struct cdr_zk_election *e = arg;

	/* Disconnected long enough that the session may expire before we hear
	 * of it: stop acting as leader now. */
	el_set(e, false);
}

static void el_session(enum cdr_zk_state state, void *arg)
{
	struct cdr_zk_election *e = arg;
	struct cdr_zk_session s;

	switch (state) {
	case CDR_ZK_CONNECTED:
		cdr_timer_stop(e->step_down);
		if (e->unsure) {
			/* Drop a probe of an earlier connection. */
			cdr_zk_cancel(e->zk, e);
			e->creating = e->checking = e->check_again = false;
			cdr_zk_children(e->zk, e->path, NULL, NULL, el_probe_list, e);
		} else if (e->node)
			el_check(e);
		else
			el_join(e);
		break;
	case CDR_ZK_DISCONNECTED:
		if (e->leader) {
			unsigned t = cdr_zk_session(e->zk, &s) == 0 ? s.timeout_ms : 10000;
			cdr_timer_start(e->step_down, t / 4, false);
		}
		break;
	case CDR_ZK_EXPIRED:
		/* The node died with the session: nothing in flight matters. */
		cdr_zk_cancel(e->zk, e);
		e->creating = e->checking = e->check_again = e->unsure = false;
		el_probe_clear(e);
		free(e->node);
		e->node = NULL;
		e->placed = false;
		el_set(e, false);
		break;
	}
}

int cdr_zk_election_new(struct cdr_zk *zk, const char *path, const void *data, size_t len, cdr_zk_leader_fn fn,
			void *arg, struct cdr_zk_election **ret)
{
	struct cdr_zk_election *e;
	int err = -ENOMEM;

	if (!path_ok(path) || strcmp(path, "/") == 0 || !fn)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->zk = zk;
	e->fn = fn;
	e->arg = arg;
	e->epoch = -1;
	e->path = strdup(path);
	if (!e->path || asprintf(&e->prefix, "%s/n_", path) < 0) {
		e->prefix = NULL;
		goto free_e;
	}
	if (len) {
		e->data = malloc(len);
		if (!e->data)
			goto free_e;
		memcpy(e->data, data, len);
		e->len = len;
	}
	if ((err = cdr_timer_new(zk->loop, el_on_step_down, e, &e->step_down)) < 0 ||
	    (err = cdr_timer_new(zk->loop, el_on_rejoin, e, &e->rejoin)) < 0)
		goto free_e;
	if ((err = listener_add(zk, el_session, e)) < 0)
		goto free_e;
	el_join(e);
	*ret = e;
	return 0;
free_e:
	cdr_timer_free(e->step_down);
	cdr_timer_free(e->rejoin);
	free(e->data);
	free(e->prefix);
	free(e->path);
	free(e);
	return err;
}

bool cdr_zk_election_leader(const struct cdr_zk_election *e)
{
	return e->leader;
}

bool cdr_zk_election_placed(const struct cdr_zk_election *e)
{
	return e->placed;
}

bool cdr_zk_election_joined(const struct cdr_zk_election *e)
{
	return e->node != NULL;
}

int64_t cdr_zk_election_epoch(const struct cdr_zk_election *e)
{
	return e->leader ? e->epoch : -1;
}

struct cdr_zk_election *cdr_zk_election_free(struct cdr_zk_election *e)
{
	if (!e)
		return NULL;
	cdr_zk_cancel(e->zk, e);
	listener_del(e->zk, e);
	if (e->node) {
		/* Leave at once rather than when the session ends: the successor
		 * takes over now. Fire and forget. */
		char *p;
		if (asprintf(&p, "%s/%s", e->path, e->node) >= 0) {
			cdr_zk_delete(e->zk, p, -1, NULL, NULL);
			free(p);
		}
	}
	el_probe_clear(e);
	cdr_timer_free(e->step_down);
	cdr_timer_free(e->rejoin);
	free(e->node);
	free(e->data);
	free(e->prefix);
	free(e->path);
	free(e);
	return NULL;
}
