/* confdrctl: ZooKeeper, one request at a time: the session, each request
 * waited for on the loop with a bound, the answers copied out, and the
 * topology read back. */
#include "confdrctl.h"

#include <confdr/daemon.h>
#include <confdr/loop.h>
#include <confdr/topology.h>
#include <confdr/zk.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static struct ctl *answer_ctl; /* for cdr_loop_stop from on_answer: the one session's */

static void on_session(enum cdr_zk_state state, void *arg)
{
	struct ctl *c = arg;

	c->connected = state == CDR_ZK_CONNECTED;
	cdr_loop_stop(c->loop);
}

int ctl_zk_connect(struct ctl *c)
{
	struct cdr_zk_opts o = {
		.hosts = c->hosts,
		.chroot = c->chroot,
		.session_timeout_ms = 10000,
		.on_session = on_session,
		.arg = c,
	};
	char *password = NULL, why[PATH_MAX + 128];
	int ret;

	if (c->zk_user && *c->zk_user) {
		if (!c->zk_password_file || !*c->zk_password_file) {
			fprintf(stderr,
				"confdrctl: --zk-user %s needs --zk-password-file (or $CONFDR_ZK_PASSWORD_FILE)\n",
				c->zk_user);
			return EX_USAGE;
		}
		if (cdr_secret_read(c->zk_password_file, NULL, &password, why, sizeof(why)) < 0) {
			fprintf(stderr, "confdrctl: the ZooKeeper password: %s\n", why);
			return EX_DATAERR;
		}
		o.user = c->zk_user;
		o.password = password;
	}
	answer_ctl = c;
	ret = cdr_zk_new(c->loop, &o, &c->zk);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (ret < 0) {
		fprintf(stderr, "confdrctl: cannot reach ZooKeeper at %s: %s\n", c->hosts, strerror(-ret));
		return EX_UNAVAILABLE;
	}
	if (!ctl_run_until(c, &c->connected, c->timeout_s * 1000ull)) {
		fprintf(stderr, "confdrctl: cannot reach ZooKeeper at %s: no session within %u s\n", c->hosts,
			c->timeout_s);
		return EX_UNAVAILABLE;
	}
	return 0;
}

void ctl_answer_clear(struct answer *a)
{
	for (size_t i = 0; i < a->nchildren; i++)
		free(a->children[i]);
	free(a->children);
	free(a->data);
	free(a->path);
	memset(a, 0, sizeof(*a));
}

static void on_answer(const struct cdr_zk_result *r, void *arg)
{
	struct answer *a = arg;

	a->status = r->status;
	snprintf(a->error, sizeof(a->error), "%s", r->error ? r->error : "");
	if (r->data) {
		a->data = malloc(r->len + 1);
		if (a->data) {
			memcpy(a->data, r->data, r->len);
			a->data[r->len] = '\0';
			a->len = r->len;
		}
	}
	if (r->nchildren) {
		a->children = calloc(r->nchildren, sizeof(char *));
		for (size_t i = 0; a->children && i < r->nchildren; i++)
			if ((a->children[a->nchildren] = strdup(r->children[i])))
				a->nchildren++;
	}
	a->path = r->path ? strdup(r->path) : NULL;
	a->done = true;
	cdr_loop_stop(answer_ctl->loop);
}

/* Waits for a request started with on_answer/a. A request that gets no
 * answer in time ends the program: its callback must never run later on a
 * dead stack frame. */
static int wait_answer(struct ctl *c, int started, struct answer *a, const char *what, const char *path)
{
	if (started < 0) {
		fprintf(stderr, "confdrctl: %s %s: %s\n", what, path, strerror(-started));
		exit(EX_SOFTWARE);
	}
	if (!ctl_run_until(c, &a->done, c->timeout_s * 1000ull)) {
		fprintf(stderr, "confdrctl: ZooKeeper at %s: no answer to %s %s within %u s\n", c->hosts, what, path,
			c->timeout_s);
		exit(EX_UNAVAILABLE);
	}
	return a->status;
}

int ctl_zk_get(struct ctl *c, const char *path, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_get(c->zk, path, NULL, NULL, on_answer, a), a, "reading", path);
}

int ctl_zk_children(struct ctl *c, const char *path, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_children(c->zk, path, NULL, NULL, on_answer, a), a, "listing", path);
}

int ctl_zk_create(struct ctl *c, const char *path, const char *data, unsigned flags, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_create(c->zk, path, data, data ? strlen(data) : 0, flags, on_answer, a), a,
			   "creating", path);
}

int ctl_zk_create_acl(struct ctl *c, const char *path, const char *data, unsigned flags, const struct cdr_zk_acl *acl,
		      size_t n, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c,
			   cdr_zk_create_acl(c->zk, path, data, data ? strlen(data) : 0, flags, acl, n, on_answer, a),
			   a, "creating", path);
}

int ctl_zk_set(struct ctl *c, const char *path, const char *data, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_set(c->zk, path, data, strlen(data), -1, on_answer, a), a, "writing", path);
}

static int zk_delete(struct ctl *c, const char *path, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_delete(c->zk, path, -1, on_answer, a), a, "deleting", path);
}

int ctl_zk_fail(struct ctl *c, const char *what, const char *path, const struct answer *a)
{
	fprintf(stderr, "confdrctl: %s %s%s: %s\n", what, strcmp(c->chroot, "/") ? c->chroot : "", path,
		a->error[0] ? a->error : strerror(-a->status));
	return EX_FAIL;
}

/* Deletes path and everything under it. */
int ctl_zk_delete_tree(struct ctl *c, const char *path)
{
	struct answer a;
	int st = ctl_zk_children(c, path, &a);

	if (st == -ENOENT) {
		ctl_answer_clear(&a);
		return 0;
	}
	if (st) {
		ctl_zk_fail(c, "listing", path, &a);
		ctl_answer_clear(&a);
		return EX_FAIL;
	}
	for (size_t i = 0; i < a.nchildren; i++) {
		char *p;
		int ret;
		if (asprintf(&p, "%s/%s", path, a.children[i]) < 0)
			exit(EX_SOFTWARE);
		ret = ctl_zk_delete_tree(c, p);
		free(p);
		if (ret) {
			ctl_answer_clear(&a);
			return ret;
		}
	}
	ctl_answer_clear(&a);
	st = zk_delete(c, path, &a);
	if (st && st != -ENOENT) {
		ctl_zk_fail(c, "deleting", path, &a);
		ctl_answer_clear(&a);
		return EX_FAIL;
	}
	ctl_answer_clear(&a);
	return 0;
}

/* The topology, read back from ZooKeeper. */
struct fetched {
	bool done;
	int status;
	struct cdr_topology *t;
	char err[2048];
	struct ctl *c;
};

static void on_fetched(int status, struct cdr_topology *t, const char *err, void *arg)
{
	struct fetched *f = arg;

	f->status = status;
	f->t = t;
	snprintf(f->err, sizeof(f->err), "%s", err ? err : "");
	f->done = true;
	cdr_loop_stop(f->c->loop);
}

/* The topology from ZooKeeper (exits on failure). */
struct cdr_topology *ctl_fetch_topology(struct ctl *c)
{
	struct fetched f = { .c = c };
	int ret;

	if ((ret = ctl_zk_connect(c)))
		exit(ret);
	if (cdr_topology_fetch(c->zk, on_fetched, &f) < 0)
		exit(EX_SOFTWARE);
	if (!ctl_run_until(c, &f.done, c->timeout_s * 3000ull)) {
		fprintf(stderr, "confdrctl: ZooKeeper at %s: no answer within %u s\n", c->hosts, c->timeout_s * 3);
		exit(EX_UNAVAILABLE);
	}
	if (f.status) {
		fprintf(stderr, "confdrctl: %s\n", f.err);
		exit(EX_FAIL);
	}
	return f.t;
}

/* The topology, or NULL (said why) when there is none yet. */
struct cdr_topology *ctl_fetch_topology_soft(struct ctl *c)
{
	struct fetched f = { .c = c };

	if (cdr_topology_fetch(c->zk, on_fetched, &f) < 0 || !ctl_run_until(c, &f.done, c->timeout_s * 3000ull))
		return NULL;
	if (f.status) {
		fprintf(stderr, "confdrctl: no topology: %s\n", f.err);
		return NULL;
	}
	return f.t;
}
