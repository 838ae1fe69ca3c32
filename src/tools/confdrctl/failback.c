/* confdrctl: platform failback. After a takeover (the backup platform's css
 * promoted the replica of P's Redis), P's own Redis becomes the master again
 * with every record, P's css running all along (docs/dr.md "Platform back"):
 * P's Redis replicates the promoted one, the fail-back is marked on P's Redis
 * endpoint (P's css, once P is up, waits for the mark to go), P is switched
 * to normal (the backup's css stops serving it), the writes settle, the
 * roles are swapped back, the endpoint names P's Redis again without the
 * mark, and P's css serves. Each step is printed with how long it took. */
#include "confdrctl.h"

#include <confdr/loop.h>
#include <confdr/topology.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define NSTEPS	8
#define POLL_US 200000 /* every wait looks again this often */

static uint64_t step_t0;

static void step(int k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void step(int k, const char *fmt, ...)
{
	va_list ap;

	printf("%d/%d ", k, NSTEPS);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	step_t0 = cdr_now_ms();
}

static void step_done(const char *what)
{
	printf("    %s in %.3f s\n", what, (double)(cdr_now_ms() - step_t0) / 1000.0);
	fflush(stdout);
}

static redisContext *redis_open(const char *host, int port)
{
	struct timeval tv = { 2, 0 };
	redisContext *rc = redisConnectWithTimeout(host, port, tv);
	char why[PATH_MAX + 256];

	if (!rc || rc->err) {
		fprintf(stderr, "confdrctl: Redis %s:%d: %s\n", host, port, rc ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	redisSetTimeout(rc, tv);
	if (ctl_redis_auth(rc, why, sizeof(why)) < 0) {
		fprintf(stderr, "confdrctl: %s\n", why);
		redisFree(rc);
		return NULL;
	}
	return rc;
}

/* One command; 0 if Redis answered without an error (printed otherwise). */
static int redis_do(redisContext *rc, const char *what, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;
	int ret = 0;

	va_start(ap, fmt);
	r = redisvCommand(rc, fmt, ap);
	va_end(ap);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "confdrctl: %s: %s\n", what, r ? r->str : rc->errstr);
		ret = -1;
	}
	if (r)
		freeReplyObject(r);
	return ret;
}

/* A field of INFO replication, as a number (-1 when absent) or text. */
static long long redis_info(redisContext *rc, const char *field, char *txt, size_t len)
{
	redisReply *r = redisCommand(rc, "INFO replication");
	long long v = -1;
	char key[64];
	const char *p;

	if (txt && len)
		txt[0] = '\0';
	if (!r || r->type != REDIS_REPLY_STRING) {
		if (r)
			freeReplyObject(r);
		return -1;
	}
	snprintf(key, sizeof(key), "\n%s:", field);
	if ((p = strstr(r->str, key))) {
		p += strlen(key);
		v = strtoll(p, NULL, 10);
		if (txt && len) {
			size_t n = strcspn(p, "\r\n");

			snprintf(txt, len, "%.*s", (int)(n < len ? n : len - 1), p);
		}
	}
	freeReplyObject(r);
	return v;
}

/* The stats of the active css instances of platform p (an array, maybe
 * empty); NULL when ZooKeeper could not be read (said why). */
static json_t *css_live(struct ctl *c, const char *p)
{
	struct answer a, node;
	char path[256];
	json_t *out = json_array();
	int st;

	snprintf(path, sizeof(path), "/live/%s/css", p);
	st = ctl_zk_children(c, path, &a);
	if (st && st != -ENOENT) {
		ctl_zk_fail(c, "listing", path, &a);
		ctl_answer_clear(&a);
		json_decref(out);
		return NULL;
	}
	for (size_t i = 0; !st && i < a.nchildren; i++) {
		json_t *v;

		snprintf(path, sizeof(path), "/live/%s/css/%s", p, a.children[i]);
		if (ctl_zk_get(c, path, &node) == 0 && node.data && (v = json_loads(node.data, 0, NULL))) {
			if (!strcmp(cli_jstr(v, "role"), "active"))
				json_array_append(out, json_object_get(v, "stats") ? json_object_get(v, "stats")
										   : json_object());
			json_decref(v);
		}
		ctl_answer_clear(&node);
	}
	ctl_answer_clear(&a);
	return out;
}

/* Whether some active css of p tells it serves platform what for it. */
static bool css_serves_for(json_t *live, const char *what)
{
	size_t i, k;
	json_t *st, *v;

	json_array_foreach(live, i, st)
		json_array_foreach(json_object_get(st, "serving_for"), k,
				   v) if (json_is_string(v) && !strcmp(json_string_value(v), what)) return true;
	return false;
}

/* 1: an active css of p serves its own domains (home); 0: not yet; -1: none is live. */
static int css_home(json_t *live)
{
	size_t i;
	json_t *st;

	json_array_foreach(live, i, st) if (json_is_true(json_object_get(st, "serving")) &&
					    json_is_false(json_object_get(st, "home_wait"))) return 1;
	return json_array_size(live) ? 0 : -1;
}

static int write_node(struct ctl *c, const char *path, json_t *o)
{
	struct answer a;
	char *d = o ? json_dumps(o, JSON_COMPACT) : NULL;
	int ret = 0;

	if (!d || ctl_zk_set(c, path, d, &a) != 0)
		ret = ctl_zk_fail(c, "writing", path, &a);
	free(d);
	ctl_answer_clear(&a);
	return ret;
}

struct fb {
	struct ctl *c;
	const char *id, *backup, *op;
	bool force;
	int64_t sync_s;
	char path[256];
	json_t *node; /* the endpoint as the takeover wrote it */
	const char *phost, *ohost;
	int pport, oport;
	redisContext *orig, *prom;
};

/* Steps 1-3: P's Redis replicates the promoted one, the mark, P up. */
static int fb_prepare(struct fb *f)
{
	char txt[64], *sw[8];
	json_t *marked;
	int n;

	step(1, "%s:%d replicates %s:%d (REPLICAOF), waiting for the initial sync", f->ohost, f->oport, f->phost,
	     f->pport);
	if (redis_do(f->orig, "REPLICAOF", "REPLICAOF %s %d", f->phost, f->pport) < 0)
		return -1;
	for (n = 0; n < f->sync_s * 5; n++) {
		long long inprog = redis_info(f->orig, "master_sync_in_progress", NULL, 0);

		redis_info(f->orig, "master_link_status", txt, sizeof(txt));
		if (!strcmp(txt, "up") && inprog == 0)
			break;
		if (n % 5 == 4)
			printf("    ... synchronising (link %s)\n", txt[0] ? txt : "?");
		fflush(stdout);
		usleep(POLL_US);
	}
	if (n >= f->sync_s * 5) {
		fprintf(stderr, "confdrctl: %s:%d did not synchronise within %" PRId64 " s (link %s)\n", f->ohost,
			f->oport, f->sync_s, txt);
		return -1;
	}
	step_done("synchronised");
	step(2, "the fail-back marked on %s: %s's css, once %s is up, waits until its Redis is home", f->path, f->id,
	     f->id);
	marked = json_deep_copy(f->node);
	json_object_set_new(
		marked, "failback",
		json_pack("{s:s, s:I}", "by", f->op ? f->op : "confdrctl", "since", (json_int_t)cdr_wall_ms()));
	n = write_node(f->c, f->path, marked);
	json_decref(marked);
	if (n)
		return -1;
	step_done("marked");
	step(3,
	     "platform %s back to normal (pms of %s): %s's css stops serving it; %s's domains get platform_down "
	     "until step %d",
	     f->id, f->backup, f->backup, f->id, NSTEPS);
	sw[0] = "switch";
	sw[1] = "--to";
	sw[2] = "normal";
	n = 3;
	if (f->op) {
		sw[n++] = "--operator";
		sw[n++] = (char *)f->op;
	}
	if (f->force)
		sw[n++] = "--force";
	sw[n++] = (char *)f->id;
	sw[n] = NULL;
	if (ctl_cmd_platform_switch(f->c, n, sw) != 0) {
		/* P stays down: the mark goes, nothing else was changed */
		fprintf(stderr, "confdrctl: the fail-back of %s stops here; %s names the promoted replica as before\n",
			f->id, f->path);
		write_node(f->c, f->path, f->node);
		return -1;
	}
	optind = 0;
	step_done("switched");
	return 0;
}

/* Step 4: the backup's css no longer serves P (its liveness node). */
static int fb_handed_back(struct fb *f)
{
	json_t *live = NULL;
	int n;

	step(4, "waiting until %s's css no longer serves %s (its liveness node: serving_for)", f->backup, f->id);
	for (n = 0; n < f->sync_s * 5; n++) {
		json_decref(live);
		if ((live = css_live(f->c, f->backup)) && !css_serves_for(live, f->id))
			break;
		usleep(POLL_US);
	}
	if (n >= f->sync_s * 5) {
		fprintf(stderr,
			"confdrctl: %s's css still serves %s after %" PRId64 " s: is it receiving pms's notices?\n",
			f->backup, f->id, f->sync_s);
		json_decref(live);
		return -1;
	}
	step_done(json_array_size(live) ? "handed back" : "no css of the backup platform live");
	json_decref(live);
	return 0;
}

/* Steps 5-7: the writes settle, the roles swap, the endpoint without the mark. */
static int fb_swap(struct fb *f, bool swapped)
{
	long long off_p, off_o, last = -1;
	int n, stable = 0;
	json_t *o;

	if (swapped) {
		printf("5/%d, 6/%d done by an earlier run: %s:%d replicates %s:%d already\n", NSTEPS, NSTEPS, f->phost,
		       f->pport, f->ohost, f->oport);
	} else {
		step(5, "waiting until nothing more is written to %s:%d and %s:%d has it all", f->phost, f->pport,
		     f->ohost, f->oport);
		for (n = 0; n < f->sync_s * 5 && stable < 5; n++) {
			off_p = redis_info(f->prom, "master_repl_offset", NULL, 0);
			off_o = redis_info(f->orig, "slave_repl_offset", NULL, 0);
			stable = off_p >= 0 && off_p == off_o && off_p == last ? stable + 1 : 0;
			last = off_p;
			usleep(POLL_US);
		}
		if (stable < 5) {
			fprintf(stderr, "confdrctl: the replication offsets did not settle within %" PRId64 " s\n",
				f->sync_s);
			return -1;
		}
		step_done("settled");
		step(6, "%s:%d is the master again (REPLICAOF NO ONE); %s:%d its replica again", f->ohost, f->oport,
		     f->phost, f->pport);
		if (redis_do(f->orig, "REPLICAOF NO ONE", "REPLICAOF NO ONE") < 0 ||
		    redis_do(f->prom, "REPLICAOF", "REPLICAOF %s %d", f->ohost, f->oport) < 0)
			return -1;
		step_done("swapped");
	}
	step(7, "%s names %s:%d again, without the mark", f->path, f->ohost, f->oport);
	o = json_pack("{s:s, s:i}", "host", f->ohost, "port", f->oport);
	if (o && json_object_get(f->node, "db")) /* the replica holds the same database index */
		json_object_set(o, "db", json_object_get(f->node, "db"));
	n = write_node(f->c, f->path, o);
	json_decref(o);
	if (n)
		return -1;
	step_done("written");
	return 0;
}

/* Step 8: P's css serves its domains again (or none is live). */
static int fb_home(struct fb *f, uint64_t switched_ms)
{
	json_t *live = NULL;
	int n, home = 0;

	step(8, "waiting until %s's css serves %s's domains from %s:%d (its liveness node)", f->id, f->id, f->ohost,
	     f->oport);
	for (n = 0; n < f->sync_s * 5; n++) {
		json_decref(live);
		live = css_live(f->c, f->id);
		if ((home = css_home(live)) != 0)
			break;
		usleep(POLL_US);
	}
	json_decref(live);
	if (home < 0) {
		step_done("no css of the platform live");
		printf("failback of %s done: start its css; it reads every record from %s:%d\n", f->id, f->ohost,
		       f->oport);
		return 0;
	}
	if (home == 0) {
		fprintf(stderr, "confdrctl: %s's css does not serve after %" PRId64 " s: see its log (failback_wait)\n",
			f->id, f->sync_s);
		return -1;
	}
	step_done("serving");
	printf("failback of %s done: %s's domains were answered platform_down for about %.1f s in this run (steps 3 to "
	       "8); "
	       "conferences running on %s's MCUs stay there\n",
	       f->id, f->id, switched_ms ? (double)(cdr_now_ms() - switched_ms) / 1000.0 : 0.0, f->backup);
	return 0;
}

/* Refused when a live css of P is of a version that does not wait for its
 * Redis to come home (its stats have no home_wait): it would write into
 * the promoted replica while the roles swap. */
static int check_css(struct fb *f)
{
	json_t *live = css_live(f->c, f->id), *st;
	size_t i;

	if (!live)
		return -1;
	json_array_foreach(live, i, st) if (!json_object_get(st, "home_wait") && !f->force)
	{
		fprintf(stderr,
			"confdrctl: a css of %s is live that does not tell home_wait (an older version, or "
			"just started): stop it, or --force\n",
			f->id);
		json_decref(live);
		return -1;
	}
	json_decref(live);
	return 0;
}

static int fb_run(struct fb *f)
{
	char role[32] = "", mh[128] = "";
	bool swapped;
	uint64_t t0 = cdr_now_ms(), switched = 0;

	if (check_css(f) < 0)
		return EX_FAIL;
	printf("failback of %s: its Redis was failed over from %s:%d to the replica %s:%d\n", f->id, f->ohost, f->oport,
	       f->phost, f->pport);
	if (!(f->orig = redis_open(f->ohost, f->oport)) || !(f->prom = redis_open(f->phost, f->pport))) {
		fprintf(stderr, "confdrctl: start %s's Redis at %s:%d first (empty or stale: it is overwritten)\n",
			f->id, f->ohost, f->oport);
		return EX_FAIL;
	}
	redis_info(f->prom, "role", role, sizeof(role));
	redis_info(f->prom, "master_host", mh, sizeof(mh));
	swapped = !strcmp(role, "slave") && !strcmp(mh, f->ohost) &&
		  redis_info(f->prom, "master_port", NULL, 0) == f->oport;
	if (swapped) {
		printf("1/%d-4/%d done by an earlier run (%s:%d is already the master)\n", NSTEPS, NSTEPS, f->ohost,
		       f->oport);
	} else {
		if (fb_prepare(f) < 0)
			return EX_FAIL;
		switched = cdr_now_ms();
		if (fb_handed_back(f) < 0)
			return EX_FAIL;
	}
	if (fb_swap(f, swapped) < 0 || fb_home(f, switched) < 0) {
		fprintf(stderr, "confdrctl: %s is up but not home: run 'confdrctl platform failback %s' again\n", f->id,
			f->id);
		return EX_FAIL;
	}
	printf("failback of %s: %.3f s in all\n", f->id, (double)(cdr_now_ms() - t0) / 1000.0);
	return 0;
}

int ctl_cmd_platform_failback(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "force", no_argument, NULL, 'f' },
					      { "operator", required_argument, NULL, 'o' },
					      { "sync-timeout", required_argument, NULL, 's' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	struct fb f = { .c = c, .sync_s = 60 };
	const struct cdr_platform *p;
	const struct cdr_room *main;
	struct cdr_topology *t;
	struct answer a;
	json_t *from;
	int opt, ex;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "fo:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': f.force = true; break;
		case 'o': f.op = optarg; break;
		case 's':
			if (!cli_parse_int(optarg, 1, 3600, &f.sync_s))
				return cli_usage_error("platform failback: --sync-timeout is 1..3600 seconds");
			break;
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("platform failback: bad option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("platform failback: name one platform");
	f.id = argv[optind];
	t = ctl_fetch_topology(c);
	if (!(p = cdr_topology_platform(t, f.id)) || !(main = cdr_topology_main_room(t, f.id)) || !p->backup_platform) {
		fprintf(stderr, "confdrctl: unknown platform %s, or it has no backup platform\n", f.id);
		cdr_topology_free(t);
		return EX_FAIL;
	}
	snprintf(f.path, sizeof(f.path), "/endpoints/%s/%s/redis", f.id, main->id);
	f.backup = strdup(p->backup_platform);
	cdr_topology_free(t);
	if (ctl_zk_get(c, f.path, &a) != 0) {
		free((char *)f.backup);
		return ctl_zk_fail(c, "reading", f.path, &a);
	}
	f.node = a.data ? json_loads(a.data, 0, NULL) : NULL;
	ctl_answer_clear(&a);
	from = json_object_get(f.node, "failed_over_from");
	f.phost = json_string_value(json_object_get(f.node, "host"));
	f.pport = (int)json_integer_value(json_object_get(f.node, "port"));
	f.ohost = json_string_value(json_object_get(from, "host"));
	f.oport = (int)json_integer_value(json_object_get(from, "port"));
	if (!json_is_object(from)) {
		fprintf(stderr,
			"confdrctl: %s names %s's own Redis (no takeover promoted a replica): nothing to move back; "
			"'confdrctl platform switch %s --to normal' switches the platform alone\n",
			f.path, f.id, f.id);
		ex = EX_FAIL;
	} else if (!f.phost || !f.ohost || f.pport < 1 || f.oport < 1) {
		fprintf(stderr, "confdrctl: %s: host or port missing\n", f.path);
		ex = EX_DATAERR;
	} else {
		ex = fb_run(&f);
	}
	if (f.orig)
		redisFree(f.orig);
	if (f.prom)
		redisFree(f.prom);
	json_decref(f.node);
	free((char *)f.backup);
	return ex;
}
