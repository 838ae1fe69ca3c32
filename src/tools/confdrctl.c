/* confdrctl: the operators' command line for a confdr service domain.
 *
 * Each subcommand is one entry of `commands` below: its words, its usage
 * line, what it does, and its function. confdrctl runs its own event loop
 * and waits for each ZooKeeper answer in turn (every wait bounded), which
 * keeps the commands simple sequences. */
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/topology.h>
#include <confdr/zk.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

/* sysexits.h values */
#define EX_FAIL	       1
#define EX_USAGE       64
#define EX_DATAERR     65
#define EX_UNAVAILABLE 69
#define EX_SOFTWARE    70

#define DEFAULT_ZK     "127.0.0.1:17181"
#define DEFAULT_CHROOT "/dr"

struct ctl {
	const char *hosts;
	const char *chroot;
	unsigned timeout_s; /* to connect, and for each answer */
	struct cdr_loop *loop;
	struct cdr_zk *zk;
	struct cdr_timer *timer;
	bool timed_out;
	bool connected;
};

struct command {
	const char *words[2]; /* e.g. {"topology", "load"}; second NULL if none */
	const char *usage;    /* arguments after the words */
	const char *help;
	int (*run)(struct ctl *c, int argc, char **argv);
};

static const struct command commands[];

static void usage(FILE *f)
{
	fprintf(f,
		"usage: confdrctl [--zk HOSTS] [--chroot PATH] [--timeout SECONDS] COMMAND ...\n\n"
		"Options:\n"
		"  --zk HOSTS         ZooKeeper servers, host:port[,host:port...]\n"
		"                     (default: $CONFDR_ZK, else " DEFAULT_ZK ")\n"
		"  --chroot PATH      the service domain's root node (default: $CONFDR_ZK_CHROOT, else " DEFAULT_CHROOT
		")\n"
		"  --timeout SECONDS  how long to wait to connect and for each answer (default 5)\n"
		"  -h, --help         this text\n\n"
		"Commands:\n");
	for (const struct command *c = commands; c->run; c++) {
		fprintf(f, "  %s%s%s %s\n", c->words[0], c->words[1] ? " " : "", c->words[1] ? c->words[1] : "",
			c->usage);
		fprintf(f, "      %s\n", c->help);
	}
	fprintf(f, "\nThe broker of each platform is found in ZooKeeper; its user and password are $CONFDR_AMQP_USER\n"
		   "and $CONFDR_AMQP_PASSWORD (default confdr/confdr).\n"
		   "\nExit status: 0 done, 1 failed (or --wait timed out, or refused: unknown MCU, room, platform,\n"
		   "a switch refused by pms, a conference no css knows or css refused), 64 bad usage, 65 bad\n"
		   "input file, 69 ZooKeeper, a broker, an rms, a pms or a css unreachable (status: some rms did\n"
		   "not answer; conf list: some css did not answer; the rest is printed).\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "confdrctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n");
	usage(stderr);
	return EX_USAGE;
}

/* ---- waiting on the loop ---- */

static void on_timer(void *arg)
{
	struct ctl *c = arg;

	c->timed_out = true;
	cdr_loop_stop(c->loop);
}

/* Runs the loop until *done or timeout_ms; true if done. */
static bool run_until(struct ctl *c, const bool *done, uint64_t timeout_ms)
{
	c->timed_out = false;
	cdr_timer_start(c->timer, timeout_ms, false);
	while (!*done && !c->timed_out)
		if (cdr_loop_run(c->loop) < 0)
			break;
	cdr_timer_stop(c->timer);
	return *done;
}

static void on_session(enum cdr_zk_state state, void *arg)
{
	struct ctl *c = arg;

	c->connected = state == CDR_ZK_CONNECTED;
	cdr_loop_stop(c->loop);
}

static int zk_connect(struct ctl *c)
{
	struct cdr_zk_opts o = {
		.hosts = c->hosts,
		.chroot = c->chroot,
		.session_timeout_ms = 10000,
		.on_session = on_session,
		.arg = c,
	};
	int ret;

	ret = cdr_zk_new(c->loop, &o, &c->zk);
	if (ret < 0) {
		fprintf(stderr, "confdrctl: cannot reach ZooKeeper at %s: %s\n", c->hosts, strerror(-ret));
		return EX_UNAVAILABLE;
	}
	if (!run_until(c, &c->connected, c->timeout_s * 1000ull)) {
		fprintf(stderr, "confdrctl: cannot reach ZooKeeper at %s: no session within %u s\n", c->hosts,
			c->timeout_s);
		return EX_UNAVAILABLE;
	}
	return 0;
}

/* One answer, copied out of the callback. */
struct answer {
	bool done;
	int status;
	char error[128];
	char *data; /* NULL if none */
	size_t len;
	char **children;
	size_t nchildren;
	char *path;
};

static void answer_clear(struct answer *a)
{
	for (size_t i = 0; i < a->nchildren; i++)
		free(a->children[i]);
	free(a->children);
	free(a->data);
	free(a->path);
	memset(a, 0, sizeof(*a));
}

static struct ctl *answer_ctl; /* for cdr_loop_stop from on_answer */

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
	if (!run_until(c, &a->done, c->timeout_s * 1000ull)) {
		fprintf(stderr, "confdrctl: ZooKeeper at %s: no answer to %s %s within %u s\n", c->hosts, what, path,
			c->timeout_s);
		exit(EX_UNAVAILABLE);
	}
	return a->status;
}

static int zk_get(struct ctl *c, const char *path, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_get(c->zk, path, NULL, NULL, on_answer, a), a, "reading", path);
}

static int zk_children(struct ctl *c, const char *path, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_children(c->zk, path, NULL, NULL, on_answer, a), a, "listing", path);
}

static int zk_create(struct ctl *c, const char *path, const char *data, unsigned flags, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_create(c->zk, path, data, data ? strlen(data) : 0, flags, on_answer, a), a,
			   "creating", path);
}

static int zk_set(struct ctl *c, const char *path, const char *data, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_set(c->zk, path, data, strlen(data), -1, on_answer, a), a, "writing", path);
}

static int zk_delete(struct ctl *c, const char *path, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	return wait_answer(c, cdr_zk_delete(c->zk, path, -1, on_answer, a), a, "deleting", path);
}

static int zk_fail(struct ctl *c, const char *what, const char *path, const struct answer *a)
{
	fprintf(stderr, "confdrctl: %s %s%s: %s\n", what, strcmp(c->chroot, "/") ? c->chroot : "", path,
		a->error[0] ? a->error : strerror(-a->status));
	return EX_FAIL;
}

/* Deletes path and everything under it. */
static int zk_delete_tree(struct ctl *c, const char *path)
{
	struct answer a;
	int st = zk_children(c, path, &a);

	if (st == -ENOENT) {
		answer_clear(&a);
		return 0;
	}
	if (st) {
		zk_fail(c, "listing", path, &a);
		answer_clear(&a);
		return EX_FAIL;
	}
	for (size_t i = 0; i < a.nchildren; i++) {
		char *p;
		int ret;
		if (asprintf(&p, "%s/%s", path, a.children[i]) < 0)
			exit(EX_SOFTWARE);
		ret = zk_delete_tree(c, p);
		free(p);
		if (ret) {
			answer_clear(&a);
			return ret;
		}
	}
	answer_clear(&a);
	st = zk_delete(c, path, &a);
	if (st && st != -ENOENT) {
		zk_fail(c, "deleting", path, &a);
		answer_clear(&a);
		return EX_FAIL;
	}
	answer_clear(&a);
	return 0;
}

/* ---- topology load ---- */

struct node {
	char *path, *json;
};

struct nodes {
	struct node *v;
	size_t n, cap;
};

static void collect_node(const char *path, const char *json, void *arg)
{
	struct nodes *ns = arg;

	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 64;
		ns->v = realloc(ns->v, ns->cap * sizeof(*ns->v));
		if (!ns->v)
			exit(EX_SOFTWARE);
	}
	ns->v[ns->n].path = strdup(path);
	ns->v[ns->n].json = strdup(json);
	if (!ns->v[ns->n].path || !ns->v[ns->n].json)
		exit(EX_SOFTWARE);
	ns->n++;
}

static bool nodes_have(const struct nodes *ns, const char *path)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i].path, path) == 0)
			return true;
	return false;
}

/* Whether some node of ns lies under prefix ("/endpoints/p1"). */
static bool nodes_under(const struct nodes *ns, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; i < ns->n; i++)
		if (strncmp(ns->v[i].path, prefix, n) == 0 && ns->v[i].path[n] == '/')
			return true;
	return false;
}

/* Removes what under dir is not in ns: leaves not listed, subtrees holding
 * none of ns's nodes. depth is how many levels below dir the leaves are. */
static int remove_stale(struct ctl *c, const char *dir, int depth, const struct nodes *ns, unsigned *removed)
{
	struct answer a;
	int st = zk_children(c, dir, &a), ret = 0;

	if (st == -ENOENT) {
		answer_clear(&a);
		return 0;
	}
	if (st) {
		ret = zk_fail(c, "listing", dir, &a);
		answer_clear(&a);
		return ret;
	}
	for (size_t i = 0; i < a.nchildren && !ret; i++) {
		char *p;
		if (asprintf(&p, "%s/%s", dir, a.children[i]) < 0)
			exit(EX_SOFTWARE);
		if (depth <= 1 ? !nodes_have(ns, p) : !nodes_under(ns, p)) {
			ret = zk_delete_tree(c, p);
			if (!ret) {
				printf("removed %s\n", p);
				(*removed)++;
			}
		} else if (depth > 1) {
			ret = remove_stale(c, p, depth - 1, ns, removed);
		}
		free(p);
	}
	answer_clear(&a);
	return ret;
}

static int cmd_topology_load(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "endpoints", required_argument, NULL, 'e' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *topo_path, *eps_path = NULL;
	struct cdr_topology *t = NULL;
	struct nodes ns = { 0 };
	unsigned created = 0, updated = 0, unchanged = 0, removed = 0;
	char err[8192];
	int opt, ret;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "e:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'e': eps_path = optarg; break;
		case 'h': usage(stdout); return 0;
		default: return usage_error("topology load: bad option");
		}
	}
	if (argc - optind != 1)
		return usage_error("topology load: expected one TOPOLOGY.json");
	topo_path = argv[optind];

	ret = cdr_topology_load_files(topo_path, eps_path, &t, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "confdrctl: %s (%s%s%s):\n%s\n",
			ret == -EINVAL ? "invalid topology" : "cannot read the topology", topo_path,
			eps_path ? ", " : "", eps_path ? eps_path : "", err);
		return EX_DATAERR;
	}
	if (cdr_topology_nodes(t, collect_node, &ns) < 0)
		exit(EX_SOFTWARE);
	if ((ret = zk_connect(c)))
		goto out;

	/* The directories exist even when empty, so a reader can tell "no
	 * user domains" from "never loaded". */
	{
		const char *dirs[] = { "/topology/platforms", "/topology/rooms", "/topology/user_domains",
				       eps_path ? "/endpoints" : NULL, eps_path ? "/replicas" : NULL };
		for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			struct answer a;
			int st;
			if (!dirs[i])
				continue;
			st = zk_create(c, dirs[i], NULL, CDR_ZK_PARENTS, &a);
			if (st && st != -EEXIST) {
				ret = zk_fail(c, "creating", dirs[i], &a);
				answer_clear(&a);
				goto out;
			}
			answer_clear(&a);
		}
	}

	/* Create or overwrite each node; leave equal ones alone. */
	for (size_t i = 0; i < ns.n; i++) {
		const char *path = ns.v[i].path, *json = ns.v[i].json;
		struct answer a;
		int st = zk_get(c, path, &a);
		if (st == -ENOENT) {
			answer_clear(&a);
			st = zk_create(c, path, json, CDR_ZK_PARENTS, &a);
			if (st == 0) {
				created++;
				answer_clear(&a);
				continue;
			}
			if (st != -EEXIST) {
				ret = zk_fail(c, "creating", path, &a);
				answer_clear(&a);
				goto out;
			}
			/* created meanwhile: overwrite it */
		} else if (st) {
			ret = zk_fail(c, "reading", path, &a);
			answer_clear(&a);
			goto out;
		} else if (a.data && strcmp(a.data, json) == 0) {
			unchanged++;
			answer_clear(&a);
			continue;
		}
		answer_clear(&a);
		st = zk_set(c, path, json, &a);
		if (st) {
			ret = zk_fail(c, "writing", path, &a);
			answer_clear(&a);
			goto out;
		}
		answer_clear(&a);
		updated++;
	}

	/* Remove what the file no longer has. */
	if ((ret = remove_stale(c, "/topology/platforms", 1, &ns, &removed)) ||
	    (ret = remove_stale(c, "/topology/rooms", 1, &ns, &removed)) ||
	    (ret = remove_stale(c, "/topology/user_domains", 1, &ns, &removed)))
		goto out;
	if (eps_path && ((ret = remove_stale(c, "/endpoints", 3, &ns, &removed)) ||
			 (ret = remove_stale(c, "/replicas", 2, &ns, &removed))))
		goto out;

	printf("topology loaded into %s%s: %zu platforms, %zu rooms, %zu user domains; "
	       "%u nodes created, %u updated, %u unchanged, %u removed\n",
	       c->hosts, c->chroot, cdr_topology_nplatforms(t), cdr_topology_nrooms(t), cdr_topology_nuser_domains(t),
	       created, updated, unchanged, removed);
	ret = 0;
out:
	for (size_t i = 0; i < ns.n; i++) {
		free(ns.v[i].path);
		free(ns.v[i].json);
	}
	free(ns.v);
	cdr_topology_free(t);
	return ret;
}

/* ---- topology show ---- */

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

static void print_endpoint(const char *indent, const char *svc, const struct cdr_endpoint *ep)
{
	printf("%s%-6s %s:%u", indent, svc, ep->host, ep->port);
	if (ep->vhost)
		printf(" vhost %s", ep->vhost);
	if (ep->database)
		printf(" database %s", ep->database);
	if (ep->on_platform)
		printf(" on platform %s", ep->on_platform);
	printf("\n");
}

/* The topology from ZooKeeper (exits on failure). */
static struct cdr_topology *fetch_topology(struct ctl *c)
{
	struct fetched f = { .c = c };
	int ret;

	if ((ret = zk_connect(c)))
		exit(ret);
	if (cdr_topology_fetch(c->zk, on_fetched, &f) < 0)
		exit(EX_SOFTWARE);
	if (!run_until(c, &f.done, c->timeout_s * 3000ull)) {
		fprintf(stderr, "confdrctl: ZooKeeper at %s: no answer within %u s\n", c->hosts, c->timeout_s * 3);
		exit(EX_UNAVAILABLE);
	}
	if (f.status) {
		fprintf(stderr, "confdrctl: %s\n", f.err);
		exit(EX_FAIL);
	}
	return f.t;
}

static int cmd_topology_show(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	struct cdr_topology *t;
	bool json = false;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: return usage_error("topology show: bad option");
		}
	}
	if (optind != argc)
		return usage_error("topology show: unexpected argument %s", argv[optind]);
	t = fetch_topology(c);
	if (json) {
		char *s = cdr_topology_dump(t);
		if (!s)
			exit(EX_SOFTWARE);
		printf("%s\n", s);
		free(s);
	} else {
		for (size_t i = 0; i < cdr_topology_nplatforms(t); i++) {
			const struct cdr_platform *p = cdr_topology_platform_at(t, i);
			printf("platform %s (%s): main room %s, backup platform %s\n", p->id, p->name, p->main_room,
			       p->backup_platform ? p->backup_platform : "-");
			for (size_t k = 0; k < cdr_topology_nrooms(t); k++) {
				const struct cdr_room *r = cdr_topology_room_at(t, k);
				if (strcmp(r->platform, p->id) != 0)
					continue;
				printf("  room %s%s: backup rooms", r->id,
				       strcmp(r->id, p->main_room) == 0 ? " (main)" : "");
				for (size_t b = 0; b < r->nbackup_rooms; b++)
					printf("%s%s", b ? ", " : " ", r->backup_rooms[b]);
				printf("%s\n", r->nbackup_rooms ? "" : " -");
				for (int s = 0; s < CDR_SVC_COUNT; s++) {
					const struct cdr_endpoint *ep = cdr_topology_endpoint(t, p->id, r->id, s);
					if (ep)
						print_endpoint("    ", cdr_service_name(s), ep);
				}
			}
			for (int s = 0; s < CDR_SVC_COUNT; s++) {
				const struct cdr_endpoint *ep = cdr_topology_replica(t, p->id, s);
				if (ep)
					print_endpoint("  replica ", cdr_service_name(s), ep);
			}
			printf("  user domains:");
			for (size_t k = 0, n = 0; k < cdr_topology_nuser_domains(t); k++) {
				const struct cdr_user_domain *d = cdr_topology_user_domain_at(t, k);
				if (strcmp(d->platform, p->id) == 0)
					printf("%s%s (%s)", n++ ? ", " : " ", d->id, d->room);
			}
			printf("\n");
		}
	}
	cdr_topology_free(t);
	return 0;
}

/* ---- status ---- */

/* Reads /live/<pmoid>/<daemon>/<instance> into an array of objects, sorted
 * by platform, daemon, instance (the listings are sorted). */
static int read_live(struct ctl *c, json_t *out)
{
	struct answer pl, dl, il, node;
	int st, ret = 0;
	char path[1024];

	st = zk_children(c, "/live", &pl);
	if (st == -ENOENT)
		goto out_pl;
	if (st) {
		ret = zk_fail(c, "listing", "/live", &pl);
		goto out_pl;
	}
	for (size_t i = 0; i < pl.nchildren && !ret; i++) {
		snprintf(path, sizeof(path), "/live/%s", pl.children[i]);
		st = zk_children(c, path, &dl);
		if (st && st != -ENOENT)
			ret = zk_fail(c, "listing", path, &dl);
		for (size_t k = 0; !st && k < dl.nchildren && !ret; k++) {
			snprintf(path, sizeof(path), "/live/%s/%s", pl.children[i], dl.children[k]);
			st = zk_children(c, path, &il);
			if (st && st != -ENOENT)
				ret = zk_fail(c, "listing", path, &il);
			for (size_t m = 0; !st && m < il.nchildren && !ret; m++) {
				json_error_t je;
				json_t *v;
				snprintf(path, sizeof(path), "/live/%s/%s/%s", pl.children[i], dl.children[k],
					 il.children[m]);
				st = zk_get(c, path, &node);
				if (st == 0 && node.data && (v = json_loads(node.data, 0, &je)) && json_is_object(v)) {
					/* The path says who it is, whatever the JSON says. */
					json_object_set_new(v, "platform", json_string(pl.children[i]));
					json_object_set_new(v, "daemon", json_string(dl.children[k]));
					json_object_set_new(v, "instance", json_string(il.children[m]));
					json_array_append_new(out, v);
				} else if (st == 0) {
					fprintf(stderr, "confdrctl: %s: not a JSON object, ignored\n", path);
				} else if (st != -ENOENT) {
					ret = zk_fail(c, "reading", path, &node);
				}
				st = 0;
				answer_clear(&node);
			}
			st = 0;
			answer_clear(&il);
		}
		st = 0;
		answer_clear(&dl);
	}
out_pl:
	answer_clear(&pl);
	return ret;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static bool all_up(json_t *o)
{
	static const char *conns[] = { "amqp", "redis", "mysql", "zookeeper" };

	for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++)
		/* "unused": a daemon that needs no such link (rms has no MySQL). */
		if (strcmp(jstr(o, conns[i]), "up") != 0 && strcmp(jstr(o, conns[i]), "unused") != 0)
			return false;
	return true;
}

static void print_table(json_t *list)
{
	size_t i;
	json_t *o;

	printf("%-9s %-7s %-24s %-8s %6s %-5s %-5s %-5s %s\n", "PLATFORM", "DAEMON", "INSTANCE", "ROLE", "EPOCH",
	       "AMQP", "REDIS", "MYSQL", "SINCE");
	json_array_foreach(list, i, o)
	{
		json_t *ep = json_object_get(o, "epoch"), *since = json_object_get(o, "since");
		char epoch[24] = "-", when[32] = "-";
		if (json_is_integer(ep))
			snprintf(epoch, sizeof(epoch), "%" JSON_INTEGER_FORMAT, json_integer_value(ep));
		if (json_is_integer(since)) {
			time_t s = (time_t)(json_integer_value(since) / 1000);
			struct tm tm;
			if (gmtime_r(&s, &tm))
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		}
		printf("%-9s %-7s %-24s %-8s %6s %-5s %-5s %-5s %s\n", jstr(o, "platform"), jstr(o, "daemon"),
		       jstr(o, "instance"), jstr(o, "role"), epoch, jstr(o, "amqp"), jstr(o, "redis"), jstr(o, "mysql"),
		       when);
	}
	if (json_array_size(list) == 0)
		printf("(no daemon alive)\n");
	json_array_foreach(list, i, o)
	{
		json_t *st = json_object_get(o, "stats"), *states = json_object_get(st, "states");

		if (strcmp(jstr(o, "daemon"), "css") || !json_is_object(st) || strcmp(jstr(o, "role"), "active"))
			continue;
		printf("conferences of %s (css %s): %" JSON_INTEGER_FORMAT " (", jstr(o, "platform"),
		       jstr(o, "instance"), json_integer_value(json_object_get(st, "confs")));
		{
			const char *k;
			json_t *v;
			bool first = true;

			json_object_foreach(states, k, v)
			{
				if (json_integer_value(v) == 0)
					continue;
				printf("%s%" JSON_INTEGER_FORMAT " %s", first ? "" : ", ", json_integer_value(v), k);
				first = false;
			}
		}
		printf("); created %" JSON_INTEGER_FORMAT ", failed %" JSON_INTEGER_FORMAT
		       ", ended %" JSON_INTEGER_FORMAT ", orphans ended %" JSON_INTEGER_FORMAT "\n",
		       json_integer_value(json_object_get(st, "created")),
		       json_integer_value(json_object_get(st, "create_failed")),
		       json_integer_value(json_object_get(st, "ended")),
		       json_integer_value(json_object_get(st, "orphans_ended")));
	}
}

static void on_poll(void *arg)
{
	bool *fired = arg;
	*fired = true;
}

static json_t *rms_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *type, json_t *body,
			int *ex);
static json_t *bus_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *daemon,
			const char *queue, const char *type, json_t *body, int *ex);
static const char *body_str(json_t *env, const char *key);
static bool is_nack(json_t *env);

/* The topology, or NULL (said why) when there is none yet. */
static struct cdr_topology *fetch_topology_soft(struct ctl *c)
{
	struct fetched f = { .c = c };

	if (cdr_topology_fetch(c->zk, on_fetched, &f) < 0 || !run_until(c, &f.done, c->timeout_s * 3000ull))
		return NULL;
	if (f.status) {
		fprintf(stderr, "confdrctl: no topology: %s\n", f.err);
		return NULL;
	}
	return f.t;
}

static void fmt_time(int64_t ms, char *out, size_t len)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !gmtime_r(&sec, &tm)) {
		snprintf(out, len, "-");
		return;
	}
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fmt_age(int64_t ms, char *out, size_t len)
{
	int64_t a = ((int64_t)cdr_wall_ms() - ms) / 1000;

	if (ms <= 0)
		snprintf(out, len, "-");
	else if (a < 120)
		snprintf(out, len, "%llds ago", (long long)(a < 0 ? 0 : a));
	else if (a < 7200)
		snprintf(out, len, "%lldm ago", (long long)(a / 60));
	else
		snprintf(out, len, "%lldh ago", (long long)(a / 3600));
}

/* The state node at path, or a default for one never written. */
static json_t *read_state(struct ctl *c, const char *path, const char *good)
{
	struct answer a;
	json_t *v = NULL;
	int st = zk_get(c, path, &a);

	if (st == 0 && a.data)
		v = json_loads(a.data, 0, NULL);
	answer_clear(&a);
	if (!json_is_object(v)) {
		json_decref(v);
		v = json_pack("{s:s, s:b, s:I, s:I, s:s, s:s}", "state", good, "manual", 0, "since", (json_int_t)0,
			      "epoch", (json_int_t)0, "reason", st == -ENOENT ? "not_written" : "unreadable", "detail",
			      st == -ENOENT ? "no pms has written it yet" : "");
	}
	return v;
}

/* Platforms and rooms with their states (from ZooKeeper), and the MCUs of
 * each room with their load (from each platform's rms). */
static int status_states(struct ctl *c, struct cdr_topology *t, json_t *out, bool print)
{
	json_t *plats = json_array(), *rooms = json_array(), *mcus = json_array();
	char path[256], when[40], age[40];
	int ret = 0;

	for (size_t i = 0; i < cdr_topology_nplatforms(t); i++) {
		const struct cdr_platform *p = cdr_topology_platform_at(t, i);
		json_t *v;

		snprintf(path, sizeof(path), "/state/%s/platform", p->id);
		v = read_state(c, path, "up");
		json_object_set_new(v, "platform", json_string(p->id));
		json_object_set_new(v, "backup_platform", json_string(p->backup_platform ? p->backup_platform : ""));
		json_object_set_new(v, "main_room", json_string(p->main_room));
		json_object_del(v, "of");
		json_array_append_new(plats, v);
	}
	for (size_t i = 0; i < cdr_topology_nrooms(t); i++) {
		const struct cdr_room *r = cdr_topology_room_at(t, i);
		json_t *v;

		snprintf(path, sizeof(path), "/state/%s/rooms/%s", r->platform, r->id);
		v = read_state(c, path, "normal");
		json_object_set_new(v, "room", json_string(r->id));
		json_object_set_new(v, "platform", json_string(r->platform));
		json_object_del(v, "of");
		json_object_set_new(v, "mcus", json_integer(0));
		json_object_set_new(v, "mcus_up", json_integer(0));
		json_object_set_new(v, "running_confs", json_integer(0));
		json_object_set_new(v, "capacity_confs", json_integer(0));
		json_array_append_new(rooms, v);
	}
	for (size_t i = 0; i < cdr_topology_nplatforms(t); i++) {
		const char *p = cdr_topology_platform_at(t, i)->id;
		json_t *env, *m, *r;
		size_t k, n;
		int ex;

		if (!(env = rms_call(c, t, p, "ctl_rms_inventory_req", json_object(), &ex)) || is_nack(env)) {
			if (env)
				fprintf(stderr, "confdrctl: rms of %s: %s\n", p, body_str(env, "detail"));
			json_decref(env);
			ret = EX_UNAVAILABLE;
			continue;
		}
		json_array_foreach(json_object_get(json_object_get(env, "body"), "mcus"), k, m)
		{
			json_array_append(mcus, m);
			json_array_foreach(rooms, n, r)
			{
				if (strcmp(jstr(r, "room"), jstr(m, "room")))
					continue;
#define ADD(key, v) json_object_set_new(r, key, json_integer(json_integer_value(json_object_get(r, key)) + (v)))
				ADD("mcus", 1);
				ADD("mcus_up", strcmp(jstr(m, "state"), "down") ? 1 : 0);
				ADD("running_confs", json_integer_value(json_object_get(m, "running_confs")));
				ADD("capacity_confs", json_integer_value(json_object_get(m, "capacity_confs")));
#undef ADD
			}
		}
		json_decref(env);
	}
	if (print) {
		json_t *v;
		size_t i;

		printf("\n%-9s %-6s %-7s %-9s %-21s %-9s %s\n", "PLATFORM", "STATE", "MANUAL", "BACKUP", "SINCE", "",
		       "REASON");
		json_array_foreach(plats, i, v)
		{
			fmt_time(json_integer_value(json_object_get(v, "since")), when, sizeof(when));
			fmt_age(json_integer_value(json_object_get(v, "since")), age, sizeof(age));
			printf("%-9s %-6s %-7s %-9s %-21s %-9s %s%s%s%s%s\n", jstr(v, "platform"), jstr(v, "state"),
			       json_is_true(json_object_get(v, "manual")) ? "yes" : "no", jstr(v, "backup_platform"),
			       when, age, jstr(v, "reason"), *jstr(v, "by") && strcmp(jstr(v, "by"), "-") ? " by " : "",
			       strcmp(jstr(v, "by"), "-") ? jstr(v, "by") : "",
			       *jstr(v, "detail") && strcmp(jstr(v, "detail"), "-") ? ": " : "",
			       strcmp(jstr(v, "detail"), "-") ? jstr(v, "detail") : "");
		}
		printf("\n%-9s %-9s %-9s %-7s %-21s %-9s %-7s %-11s %s\n", "ROOM", "PLATFORM", "STATE", "MANUAL",
		       "SINCE", "", "MCUS", "CONFS", "REASON");
		json_array_foreach(rooms, i, v)
		{
			char m[32], confs[32];

			fmt_time(json_integer_value(json_object_get(v, "since")), when, sizeof(when));
			fmt_age(json_integer_value(json_object_get(v, "since")), age, sizeof(age));
			snprintf(m, sizeof(m), "%lld/%lld",
				 (long long)json_integer_value(json_object_get(v, "mcus_up")),
				 (long long)json_integer_value(json_object_get(v, "mcus")));
			snprintf(confs, sizeof(confs), "%lld/%lld",
				 (long long)json_integer_value(json_object_get(v, "running_confs")),
				 (long long)json_integer_value(json_object_get(v, "capacity_confs")));
			printf("%-9s %-9s %-9s %-7s %-21s %-9s %-7s %-11s %s%s%s%s%s\n", jstr(v, "room"),
			       jstr(v, "platform"), jstr(v, "state"),
			       json_is_true(json_object_get(v, "manual")) ? "yes" : "no", when, age, m, confs,
			       jstr(v, "reason"), strcmp(jstr(v, "by"), "-") && *jstr(v, "by") ? " by " : "",
			       strcmp(jstr(v, "by"), "-") ? jstr(v, "by") : "",
			       *jstr(v, "detail") && strcmp(jstr(v, "detail"), "-") ? ": " : "",
			       strcmp(jstr(v, "detail"), "-") ? jstr(v, "detail") : "");
		}
	}
	json_object_set_new(out, "platforms", plats);
	json_object_set_new(out, "rooms", rooms);
	json_object_set_new(out, "mcus", mcus);
	return ret;
}

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "wait", required_argument, NULL, 'w' },
					      { "expect", required_argument, NULL, 'n' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	bool json = false;
	long wait_s = -1, expect = -1;
	json_t *list = NULL;
	uint64_t deadline;
	size_t up;
	int opt, ret, partial = 0;
	char *end;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jw:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'w':
			wait_s = strtol(optarg, &end, 10);
			if (*end || end == optarg || wait_s < 0 || wait_s > 86400)
				return usage_error("status: --wait wants seconds (0..86400), not \"%s\"", optarg);
			break;
		case 'n':
			expect = strtol(optarg, &end, 10);
			if (*end || end == optarg || expect < 0 || expect > 100000)
				return usage_error("status: --expect wants a count, not \"%s\"", optarg);
			break;
		case 'h': usage(stdout); return 0;
		default: return usage_error("status: bad option");
		}
	}
	if (optind != argc)
		return usage_error("status: unexpected argument %s", argv[optind]);
	if ((wait_s >= 0) != (expect >= 0))
		return usage_error("status: --wait and --expect go together");
	/* While waiting for daemons, also wait for ZooKeeper itself (the sandbox
	 * may still be starting it). */
	if (wait_s > (long)c->timeout_s)
		c->timeout_s = (unsigned)wait_s;
	if ((ret = zk_connect(c)))
		return ret;

	deadline = cdr_now_ms() + (wait_s > 0 ? (uint64_t)wait_s * 1000 : 0);
	for (;;) {
		json_t *o;
		size_t i;
		bool fired = false;
		struct cdr_timer *t;

		json_decref(list);
		list = json_array();
		if (!list)
			exit(EX_SOFTWARE);
		if ((ret = read_live(c, list)))
			goto out;
		up = 0;
		json_array_foreach(list, i, o) up += all_up(o);
		if (expect < 0 || up >= (size_t)expect || cdr_now_ms() >= deadline)
			break;
		/* Poll again in half a second (on the loop: the session stays
		 * served meanwhile). */
		if (cdr_timer_new(c->loop, on_poll, &fired, &t) < 0)
			exit(EX_SOFTWARE);
		cdr_timer_start(t, 500, false);
		run_until(c, &fired, 1000);
		cdr_timer_free(t);
	}
	{
		json_t *all = json_pack("{s:O}", "daemons", list);
		struct cdr_topology *t;

		if (!json)
			print_table(list);
		/* With --wait, the daemons are what is asked about. */
		if (expect < 0 && (t = fetch_topology_soft(c))) {
			partial = status_states(c, t, all, !json);
			cdr_topology_free(t);
		}
		if (json) {
			char *s = json_dumps(all, JSON_INDENT(2));

			printf("%s\n", s ? s : "{}");
			free(s);
		}
		json_decref(all);
	}
	ret = partial;
	if (expect >= 0 && up < (size_t)expect) {
		fprintf(stderr, "confdrctl: %zu of %ld daemons alive with every connection up after %ld s\n", up,
			expect, wait_s);
		ret = EX_FAIL;
	}
out:
	json_decref(list);
	return ret;
}

/* ---- rms: mcu list | drain | undrain ---- */

struct rpc {
	bool done;
	int status;
	json_t *reply; /* the envelope */
	struct ctl *c;
};

static void on_rpc(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct rpc *r = arg;

	r->status = status;
	r->reply = reply ? json_loadb(reply->body, reply->len, 0, NULL) : NULL;
	r->done = true;
	cdr_loop_stop(r->c->loop);
}

/* Sends a request to the rms of platform p through its broker (found in the
 * topology's endpoints) and returns the answer's envelope, or NULL with a
 * message printed (*ex set: EX_UNAVAILABLE). */
static json_t *bus_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *daemon,
			const char *queue, const char *type, json_t *body, int *ex)
{
	const struct cdr_endpoint *ep = cdr_topology_main_endpoint(t, p, CDR_SVC_MQ);
	const char *user = getenv("CONFDR_AMQP_USER"), *pass = getenv("CONFDR_AMQP_PASSWORD");
	struct cdr_mq_opts o = { 0 };
	struct cdr_mq *mq = NULL;
	struct rpc r = { .c = c };
	char url[512], id[64], *txt;

	*ex = EX_UNAVAILABLE;
	if (!ep) {
		fprintf(stderr, "confdrctl: platform %s has no broker endpoint in ZooKeeper (/endpoints/%s/...)\n", p,
			p);
		json_decref(body);
		return NULL;
	}
	snprintf(url, sizeof(url), "amqp://%s:%s@%s:%u/%s", user && *user ? user : "confdr",
		 pass && *pass ? pass : "confdr", ep->host, ep->port, ep->vhost ? ep->vhost : "");
	o.url = url;
	o.name = "confdrctl";
	snprintf(id, sizeof(id), "confdrctl-%ld-%s", (long)getpid(), type);
	txt = cdr_msg_encode(type, id, "confdrctl", 0, body);
	if (!txt || cdr_mq_new(c->loop, &o, &mq) < 0 ||
	    cdr_mq_request(mq, "", queue, txt, strlen(txt), c->timeout_s * 1000, on_rpc, &r) < 0) {
		fprintf(stderr, "confdrctl: cannot send to the broker of %s\n", p);
		free(txt);
		cdr_mq_free(mq);
		return NULL;
	}
	free(txt);
	run_until(c, &r.done, c->timeout_s * 1000ull + 2000);
	cdr_mq_free(mq);
	if (r.status || !r.reply) {
		fprintf(stderr, "confdrctl: the %s of %s did not answer within %u s (broker %s:%u vhost %s)\n", daemon,
			p, c->timeout_s, ep->host, ep->port, ep->vhost ? ep->vhost : "");
		json_decref(r.reply);
		return NULL;
	}
	*ex = 0;
	return r.reply;
}

static json_t *rms_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *type, json_t *body,
			int *ex)
{
	return bus_call(c, t, p, "rms", CDR_MQ_RMS_REQ_Q, type, body, ex);
}

static const char *body_str(json_t *env, const char *key)
{
	const char *v = json_string_value(json_object_get(json_object_get(env, "body"), key));

	return v ? v : "";
}

static bool is_nack(json_t *env)
{
	const char *type = json_string_value(json_object_get(env, "type"));

	return !type || strstr(type, "_nack") != NULL;
}

/* Asks the daemon of --platform (platform not NULL), or of each platform in
 * turn until one knows what body names: a NACK with reason `unknown` sends
 * the question on to the next platform (other NACKs are printed). body is
 * stolen. Returns the first ACK's envelope with *who its platform, or NULL
 * with *ex EX_FAIL (refused or nobody knows) or EX_UNAVAILABLE (some daemon
 * did not answer). */
static json_t *ask_each(struct ctl *c, const struct cdr_topology *t, const char *platform, const char *daemon,
			const char *queue, const char *type, json_t *body, const char *unknown, const char **who,
			int *ex)
{
	*ex = EX_FAIL;
	for (size_t i = 0; i < cdr_topology_nplatforms(t); i++) {
		const char *p = cdr_topology_platform_at(t, i)->id;
		json_t *env;
		int e;

		if (platform && strcmp(platform, p) != 0)
			continue;
		if (!(env = bus_call(c, t, p, daemon, queue, type, json_incref(body), &e))) {
			*ex = e;
			continue;
		}
		if (!is_nack(env)) {
			*who = p;
			*ex = 0;
			json_decref(body);
			return env;
		}
		if (platform || strcmp(body_str(env, "reason"), unknown) != 0)
			fprintf(stderr, "confdrctl: %s of %s: %s: %s\n", daemon, p, body_str(env, "reason"),
				body_str(env, "detail"));
		json_decref(env);
	}
	json_decref(body);
	return NULL;
}

static int cmd_mcu_list(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "platform", required_argument, NULL, 'p' },
					      { "room", required_argument, NULL, 'r' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *platform = NULL, *room = NULL;
	struct cdr_topology *t;
	json_t *all = json_array();
	bool json = false;
	int opt, ret = 0, ex;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jp:r:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'p': platform = optarg; break;
		case 'r': room = optarg; break;
		case 'h': usage(stdout); return 0;
		default: return usage_error("mcu list: bad option");
		}
	}
	if (optind != argc)
		return usage_error("mcu list: unexpected argument %s", argv[optind]);
	t = fetch_topology(c);
	if (room && !cdr_topology_room(t, room)) {
		fprintf(stderr, "confdrctl: unknown room %s\n", room);
		cdr_topology_free(t);
		return EX_FAIL;
	}
	if (room && !platform)
		platform = cdr_topology_room(t, room)->platform;
	if (platform && !cdr_topology_platform(t, platform)) {
		fprintf(stderr, "confdrctl: unknown platform %s\n", platform);
		cdr_topology_free(t);
		return EX_FAIL;
	}
	if (!json)
		printf("%-8s %-20s %-8s %-6s %11s %9s %11s %s\n", "PLATFORM", "MCU", "ROOM", "STATE", "CONFS",
		       "RESERVED", "PORTS", "CAPS");
	for (size_t i = 0; i < cdr_topology_nplatforms(t); i++) {
		const char *p = cdr_topology_platform_at(t, i)->id;
		json_t *body = room ? json_pack("{s:s}", "room", room) : json_object(), *env, *m;
		size_t k;

		if (platform && strcmp(platform, p) != 0) {
			json_decref(body);
			continue;
		}
		if (!(env = rms_call(c, t, p, "ctl_rms_inventory_req", body, &ex))) {
			ret = ex;
			continue;
		}
		if (is_nack(env)) {
			fprintf(stderr, "confdrctl: rms of %s: %s: %s\n", p, body_str(env, "reason"),
				body_str(env, "detail"));
			ret = EX_FAIL;
			json_decref(env);
			continue;
		}
		json_array_foreach(json_object_get(json_object_get(env, "body"), "mcus"), k, m)
		{
			char confs[32], ports[32], caps[32];

			json_object_set_new(m, "platform", json_string(p));
			json_array_append(all, m);
			if (json)
				continue;
			snprintf(confs, sizeof(confs), "%lld/%lld",
				 (long long)json_integer_value(json_object_get(m, "running_confs")),
				 (long long)json_integer_value(json_object_get(m, "capacity_confs")));
			snprintf(ports, sizeof(ports), "%lld/%lld",
				 (long long)json_integer_value(json_object_get(m, "used_ports")),
				 (long long)json_integer_value(json_object_get(m, "capacity_ports")));
			snprintf(caps, sizeof(caps), "%s%s%s%s",
				 json_is_true(json_object_get(m, "h265")) ? "h265 " : "",
				 json_is_true(json_object_get(m, "res_1080p")) ? "1080p " : "",
				 json_is_true(json_object_get(m, "xmpu")) ? "xmpu " : "",
				 json_is_true(json_object_get(m, "backup")) ? "backup" : "");
			printf("%-8s %-20s %-8s %-6s %11s %9lld %11s %s\n", p, jstr(m, "mcu"), jstr(m, "room"),
			       jstr(m, "state"), confs,
			       (long long)json_integer_value(json_object_get(m, "reserved_confs")), ports, caps);
		}
		json_decref(env);
	}
	if (json) {
		char *s = json_dumps(all, JSON_INDENT(2));

		printf("%s\n", s ? s : "[]");
		free(s);
	}
	json_decref(all);
	cdr_topology_free(t);
	return ret;
}

static int cmd_mcu_drain_common(struct ctl *c, int argc, char **argv, bool drain)
{
	static const struct option opts[] = { { "platform", required_argument, NULL, 'p' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *platform = NULL, *mcu, *who = getenv("SUDO_USER"), *p = NULL;
	struct cdr_topology *t;
	json_t *env;
	int opt, ret = EX_FAIL;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': platform = optarg; break;
		case 'h': usage(stdout); return 0;
		default: return usage_error("mcu %s: bad option", drain ? "drain" : "undrain");
		}
	}
	if (optind + 1 != argc)
		return usage_error("mcu %s: one MCU expected", drain ? "drain" : "undrain");
	mcu = argv[optind];
	if (!who || !*who)
		who = getenv("USER");
	t = fetch_topology(c);
	if (platform && !cdr_topology_platform(t, platform)) {
		fprintf(stderr, "confdrctl: unknown platform %s\n", platform);
		cdr_topology_free(t);
		return EX_FAIL;
	}
	/* Without --platform: the rms that knows the MCU. */
	env = ask_each(c, t, platform, "rms", CDR_MQ_RMS_REQ_Q, "ctl_rms_drain_req",
		       json_pack("{s:s, s:b, s:s}", "mcu", mcu, "drain", drain, "operator", who ? who : "confdrctl"),
		       "unknown_mcu", &p, &ret);
	if (env)
		printf("mcu %s on %s: %s\n", mcu, p, body_str(env, "state"));
	else if (!platform && ret == EX_FAIL)
		fprintf(stderr, "confdrctl: no rms knows mcu %s\n", mcu);
	json_decref(env);
	cdr_topology_free(t);
	return ret;
}

static int cmd_mcu_drain(struct ctl *c, int argc, char **argv)
{
	return cmd_mcu_drain_common(c, argc, argv, true);
}

static int cmd_mcu_undrain(struct ctl *c, int argc, char **argv)
{
	return cmd_mcu_drain_common(c, argc, argv, false);
}

/* ---- pms: room switch | platform switch ---- */

static int cmd_switch(struct ctl *c, int argc, char **argv, bool room)
{
	static const struct option opts[] = { { "to", required_argument, NULL, 't' },
					      { "force", no_argument, NULL, 'f' },
					      { "reason", required_argument, NULL, 'r' },
					      { "operator", required_argument, NULL, 'o' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *what = room ? "room" : "platform", *to = NULL, *reason = "", *op = NULL, *id;
	char opbuf[160], host[64] = "", via[80];
	bool force = false, json = false, on;
	struct cdr_topology *t;
	json_t *env, *b;
	int opt, ex;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "t:fr:o:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 't': to = optarg; break;
		case 'f': force = true; break;
		case 'r': reason = optarg; break;
		case 'o': op = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: return usage_error("%s switch: bad option", what);
		}
	}
	if (optind + 1 != argc)
		return usage_error("%s switch: name one %s", what, what);
	id = argv[optind];
	if (!to || (strcmp(to, "backup") && strcmp(to, "normal")))
		return usage_error("%s switch: --to backup or --to normal", what);
	on = !strcmp(to, "backup");
	if (!op) {
		const char *u = getenv("SUDO_USER") && *getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");

		gethostname(host, sizeof(host) - 1);
		snprintf(opbuf, sizeof(opbuf), "%.40s@%.60s", u && *u ? u : "unknown", host);
		op = opbuf;
	}
	t = fetch_topology(c);
	if (room) {
		const struct cdr_room *r = cdr_topology_room(t, id);

		if (!r) {
			fprintf(stderr, "confdrctl: unknown room %s\n", id);
			cdr_topology_free(t);
			return EX_FAIL;
		}
		snprintf(via, sizeof(via), "%s", r->platform); /* a room is switched by its own platform's pms */
	} else {
		const struct cdr_platform *p = cdr_topology_platform(t, id);

		if (!p) {
			fprintf(stderr, "confdrctl: unknown platform %s\n", id);
			cdr_topology_free(t);
			return EX_FAIL;
		}
		if (!p->backup_platform) {
			fprintf(stderr, "confdrctl: platform %s has no backup platform: nothing to switch to\n", id);
			cdr_topology_free(t);
			return EX_FAIL;
		}
		snprintf(via, sizeof(via), "%s", p->backup_platform); /* ... a platform by its backup's */
	}
	env = bus_call(c, t, via, "pms", CDR_MQ_PMS_REQ_Q, "ctl_pms_switch_req",
		       json_pack("{s:s, s:s, s:b, s:b, s:s, s:s}", "target", what, "moid", id, "on", on, "force", force,
				 "operator", op, "detail", reason),
		       &ex);
	cdr_topology_free(t);
	if (!env)
		return ex;
	b = json_object_get(env, "body");
	if (json) {
		char *txt = json_dumps(env, JSON_INDENT(2));

		printf("%s\n", txt ? txt : "{}");
		free(txt);
	}
	if (is_nack(env)) {
		fprintf(stderr, "confdrctl: %s switch of %s refused by pms of %s: %s: %s\n", what, id, via,
			body_str(env, "reason"), body_str(env, "detail"));
		json_decref(env);
		return EX_FAIL;
	}
	if (!json) {
		char when[40];

		fmt_time(json_integer_value(json_object_get(b, "since")), when, sizeof(when));
		printf("%s %s: %s%s since %s, epoch %lld%s\n", what, id, body_str(env, "state"),
		       json_is_true(json_object_get(b, "manual")) ? " (manual)" : "", when,
		       (long long)json_integer_value(json_object_get(b, "epoch")),
		       json_is_false(json_object_get(b, "changed")) ? " (it already was)" : "");
	}
	json_decref(env);
	return 0;
}

static int cmd_room_switch(struct ctl *c, int argc, char **argv)
{
	return cmd_switch(c, argc, argv, true);
}

static int cmd_platform_switch(struct ctl *c, int argc, char **argv)
{
	return cmd_switch(c, argc, argv, false);
}

/* ---- platform failback: P's Redis back as the master, then P up ---- */

static redisContext *redis_open(const char *host, int port)
{
	struct timeval tv = { 2, 0 };
	redisContext *rc = redisConnectWithTimeout(host, port, tv);

	if (!rc || rc->err) {
		fprintf(stderr, "confdrctl: Redis %s:%d: %s\n", host, port, rc ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	redisSetTimeout(rc, tv);
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

static int cmd_platform_failback(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "force", no_argument, NULL, 'f' },
					      { "operator", required_argument, NULL, 'o' },
					      { "sync-timeout", required_argument, NULL, 's' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *op = NULL, *id, *ohost, *phost;
	bool force = false;
	long sync_s = 60;
	int opt, oport, pport, ex = EX_FAIL;
	struct cdr_topology *t;
	const struct cdr_room *main;
	struct answer a;
	char path[256], txt[64], *sw[8];
	json_t *node = NULL, *from;
	redisContext *orig = NULL, *prom = NULL;
	long long off_p, off_o, last = -1;
	int stable = 0, n = 0;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "fo:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': force = true; break;
		case 'o': op = optarg; break;
		case 's':
			sync_s = strtol(optarg, NULL, 10);
			if (sync_s < 1 || sync_s > 3600)
				return usage_error("platform failback: --sync-timeout is 1..3600 seconds");
			break;
		case 'h': usage(stdout); return 0;
		default: return usage_error("platform failback: bad option");
		}
	}
	if (optind + 1 != argc)
		return usage_error("platform failback: name one platform");
	id = argv[optind];
	t = fetch_topology(c);
	if (!cdr_topology_platform(t, id) || !(main = cdr_topology_main_room(t, id))) {
		fprintf(stderr, "confdrctl: unknown platform %s\n", id);
		cdr_topology_free(t);
		return EX_FAIL;
	}
	snprintf(path, sizeof(path), "/endpoints/%s/%s/redis", id, main->id);
	cdr_topology_free(t);
	if (zk_get(c, path, &a) != 0)
		return zk_fail(c, "reading", path, &a);
	node = a.data ? json_loads(a.data, 0, NULL) : NULL;
	answer_clear(&a);
	from = json_object_get(node, "failed_over_from");
	if (!json_is_object(from)) {
		fprintf(stderr,
			"confdrctl: %s names %s's own Redis (no takeover promoted a replica): nothing to move back; "
			"'confdrctl platform switch %s --to normal' switches the platform alone\n",
			path, id, id);
		json_decref(node);
		return EX_FAIL;
	}
	phost = json_string_value(json_object_get(node, "host"));
	pport = (int)json_integer_value(json_object_get(node, "port"));
	ohost = json_string_value(json_object_get(from, "host"));
	oport = (int)json_integer_value(json_object_get(from, "port"));
	if (!phost || !ohost || pport < 1 || oport < 1) {
		fprintf(stderr, "confdrctl: %s: host or port missing\n", path);
		json_decref(node);
		return EX_DATAERR;
	}
	{
		char live[200];

		snprintf(live, sizeof(live), "/live/%s/css", id);
		if (zk_children(c, live, &a) == 0 && a.nchildren && !force) {
			fprintf(stderr,
				"confdrctl: %zu css instance(s) of %s are live: stop them first (they would act on a "
				"Redis "
				"being moved), or --force\n",
				a.nchildren, id);
			answer_clear(&a);
			json_decref(node);
			return EX_FAIL;
		}
		answer_clear(&a);
	}
	printf("failback of %s: its Redis was failed over from %s:%d to the replica %s:%d\n", id, ohost, oport, phost,
	       pport);
	if (!(orig = redis_open(ohost, oport)) || !(prom = redis_open(phost, pport))) {
		fprintf(stderr, "confdrctl: start %s's Redis at %s:%d first (empty or stale: it is overwritten)\n", id,
			ohost, oport);
		goto out;
	}
	printf("1/5 %s:%d replicates %s:%d (REPLICAOF)\n", ohost, oport, phost, pport);
	if (redis_do(orig, "REPLICAOF", "REPLICAOF %s %d", phost, pport) < 0)
		goto out;
	for (n = 0; n < sync_s * 5; n++) {
		long long inprog = redis_info(orig, "master_sync_in_progress", NULL, 0);

		redis_info(orig, "master_link_status", txt, sizeof(txt));
		if (!strcmp(txt, "up") && inprog == 0)
			break;
		if (n % 5 == 0)
			printf("    ... synchronising (link %s)\n", txt[0] ? txt : "?");
		fflush(stdout);
		usleep(200000);
	}
	if (n >= sync_s * 5) {
		fprintf(stderr, "confdrctl: %s:%d did not synchronise within %ld s (link %s)\n", ohost, oport, sync_s,
			txt);
		goto out;
	}
	printf("2/5 platform %s back to normal (pms of its backup platform): the backup's css stops serving it\n", id);
	sw[0] = "switch";
	sw[1] = "--to";
	sw[2] = "normal";
	n = 3;
	if (op) {
		sw[n++] = "--operator";
		sw[n++] = (char *)op;
	}
	if (force)
		sw[n++] = "--force";
	sw[n++] = (char *)id;
	sw[n] = NULL;
	if (cmd_switch(c, n, sw, false) != 0)
		goto out;
	optind = 0;
	printf("3/5 waiting until nothing more is written to %s:%d and %s:%d has it all\n", phost, pport, ohost, oport);
	for (n = 0; n < sync_s * 5 && stable < 5; n++) {
		off_p = redis_info(prom, "master_repl_offset", NULL, 0);
		off_o = redis_info(orig, "slave_repl_offset", NULL, 0);
		stable = off_p >= 0 && off_p == off_o && off_p == last ? stable + 1 : 0;
		last = off_p;
		usleep(200000);
	}
	if (stable < 5) {
		fprintf(stderr, "confdrctl: the replication offsets did not settle within %ld s\n", sync_s);
		goto out;
	}
	printf("4/5 %s:%d is the master again (REPLICAOF NO ONE); %s:%d its replica again\n", ohost, oport, phost,
	       pport);
	if (redis_do(orig, "REPLICAOF NO ONE", "REPLICAOF NO ONE") < 0 ||
	    redis_do(prom, "REPLICAOF", "REPLICAOF %s %d", ohost, oport) < 0)
		goto out;
	printf("5/5 %s names %s:%d again\n", path, ohost, oport);
	{
		json_t *o = json_pack("{s:s, s:i}", "host", ohost, "port", oport);
		char *d = o ? json_dumps(o, JSON_COMPACT) : NULL;

		json_decref(o);
		if (!d || zk_set(c, path, d, &a) != 0) {
			free(d);
			ex = zk_fail(c, "writing", path, &a);
			answer_clear(&a);
			goto out;
		}
		free(d);
		answer_clear(&a);
	}
	printf("failback of %s done: start its daemons; its css reads every record from %s:%d (conferences "
	       "restored on the backup platform keep running there)\n",
	       id, ohost, oport);
	ex = 0;
out:
	if (orig)
		redisFree(orig);
	if (prom)
		redisFree(prom);
	json_decref(node);
	return ex;
}

/* ---- css: conf list | conf show | conf end (the CM's requests on mau.conf.q) ---- */

static json_t *css_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *type, json_t *body,
			int *ex)
{
	return bus_call(c, t, p, "css", CDR_MQ_MAU_CONF_Q, type, body, ex);
}

static void print_json(json_t *v)
{
	char *txt = json_dumps(v, JSON_INDENT(2));

	printf("%s\n", txt ? txt : "null");
	free(txt);
}

static int cmd_conf_list(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "platform", required_argument, NULL, 'p' },
					      { "domain", required_argument, NULL, 'd' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *platform = NULL, *domain = NULL;
	struct cdr_topology *t;
	json_t *all = json_array(), *silent = json_object(); /* platforms whose css did not answer */
	bool json = false;
	int opt, ret = 0, ex;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jp:d:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'p': platform = optarg; break;
		case 'd': domain = optarg; break;
		case 'h':
			usage(stdout);
			json_decref(all);
			return 0;
		default: json_decref(all); return usage_error("conf list: bad option");
		}
	}
	if (optind != argc) {
		json_decref(all);
		return usage_error("conf list: unexpected argument %s", argv[optind]);
	}
	t = fetch_topology(c);
	if (platform && !cdr_topology_platform(t, platform)) {
		fprintf(stderr, "confdrctl: unknown platform %s\n", platform);
		ret = EX_FAIL;
		goto out;
	}
	if (domain && !cdr_topology_user_domain(t, domain)) {
		fprintf(stderr, "confdrctl: unknown user domain %s\n", domain);
		ret = EX_FAIL;
		goto out;
	}
	if (!json)
		printf("%-16s %-12s %-15s %-18s %-8s %-8s %-20s %s\n", "E164", "DOMAIN", "STATE", "MCU", "ROOM", "HOST",
		       "PLANNED END", "NAME");
	/* Each domain is asked of its own platform's css (or of --platform's). */
	for (size_t i = 0; i < cdr_topology_nuser_domains(t); i++) {
		const struct cdr_user_domain *ud = cdr_topology_user_domain_at(t, i);
		const char *p = platform ? platform : ud->platform;
		json_t *env, *conf;
		size_t k;

		if ((domain && strcmp(domain, ud->id) != 0) || (!domain && platform && strcmp(platform, ud->platform)))
			continue;
		if (json_object_get(silent, p)) {
			fprintf(stderr, "confdrctl: user domain %s not listed: the css of %s did not answer\n", ud->id,
				p);
			continue;
		}
		if (!(env = css_call(c, t, p, "cm_mau_listconf_req", json_pack("{s:s}", "user_domain", ud->id), &ex))) {
			json_object_set_new(silent, p, json_true());
			ret = ex;
			continue;
		}
		if (is_nack(env)) {
			fprintf(stderr, "confdrctl: css of %s, user domain %s: %s: %s\n", p, ud->id,
				body_str(env, "reason"), body_str(env, "detail"));
			if (!ret)
				ret = EX_FAIL;
			json_decref(env);
			continue;
		}
		json_array_foreach(json_object_get(json_object_get(env, "body"), "confs"), k, conf)
		{
			char end[40];

			json_array_append(all, conf);
			if (json)
				continue;
			fmt_time(json_integer_value(json_object_get(conf, "planned_end")), end, sizeof(end));
			printf("%-16s %-12s %-15s %-18s %-8s %-8s %-20s %s\n", jstr(conf, "e164"),
			       jstr(conf, "user_domain"), jstr(conf, "state"), jstr(conf, "mcu"), jstr(conf, "room"),
			       jstr(conf, "host_platform"), end, jstr(conf, "name"));
		}
		json_decref(env);
	}
	if (json)
		print_json(all);
	else if (json_array_size(all) == 0 && !ret)
		printf("(no conference)\n");
out:
	json_decref(silent);
	json_decref(all);
	cdr_topology_free(t);
	return ret;
}

/* conf show and conf end: asks --platform's css, or each platform's in turn
 * until one knows the conference. */
static int cmd_conf_one(struct ctl *c, int argc, char **argv, bool end)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "platform", required_argument, NULL, 'p' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *platform = NULL, *e164, *what = end ? "end" : "show", *p = NULL, *key;
	struct cdr_topology *t;
	json_t *env, *v;
	bool json = false;
	int opt, ret;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jp:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'p': platform = optarg; break;
		case 'h': usage(stdout); return 0;
		default: return usage_error("conf %s: bad option", what);
		}
	}
	if (optind + 1 != argc)
		return usage_error("conf %s: one E164 expected", what);
	e164 = argv[optind];
	if (strlen(e164) < CDR_MSG_E164_MIN || strlen(e164) > CDR_MSG_E164_MAX ||
	    strspn(e164, "0123456789") != strlen(e164))
		return usage_error("conf %s: an E164 is 3..32 digits, not \"%s\"", what, e164);
	t = fetch_topology(c);
	if (platform && !cdr_topology_platform(t, platform)) {
		fprintf(stderr, "confdrctl: unknown platform %s\n", platform);
		cdr_topology_free(t);
		return EX_FAIL;
	}
	env = ask_each(c, t, platform, "css", CDR_MQ_MAU_CONF_Q, end ? "cm_mau_endconf_req" : "cm_mau_queryconf_req",
		       json_pack("{s:s}", "e164", e164), "unknown_conference", &p, &ret);
	if (!env) {
		if (!platform && ret == EX_FAIL)
			fprintf(stderr, "confdrctl: no css knows conference %s\n", e164);
	} else if (json) {
		print_json(json_object_get(env, "body"));
	} else if (end) {
		printf("conference %s ended by css of %s\n", e164, p);
	} else {
		printf("%-14s %s\n", "css", p);
		json_object_foreach(json_object_get(json_object_get(env, "body"), "conf"), key, v)
		{
			char *txt = json_dumps(v, JSON_ENCODE_ANY), when[40];

			if (json_is_integer(v) && (!strcmp(key, "start") || !strcmp(key, "planned_end"))) {
				fmt_time(json_integer_value(v), when, sizeof(when));
				printf("%-14s %s\n", key, when);
			} else {
				printf("%-14s %s\n", key, json_is_string(v) ? json_string_value(v) : txt);
			}
			free(txt);
		}
	}
	json_decref(env);
	cdr_topology_free(t);
	return ret;
}

static int cmd_conf_show(struct ctl *c, int argc, char **argv)
{
	return cmd_conf_one(c, argc, argv, false);
}

static int cmd_conf_end(struct ctl *c, int argc, char **argv)
{
	return cmd_conf_one(c, argc, argv, true);
}

static const struct command commands[] = {
	{ { "topology", "load" },
	  "TOPOLOGY.json [--endpoints ENDPOINTS.json]",
	  "validate the files, then write /topology (and /endpoints, /replicas) nodes: created or\n"
	  "      overwritten, nodes of platforms/rooms/domains no longer in the files removed",
	  cmd_topology_load },
	{ { "topology", "show" },
	  "[--json]",
	  "read the topology back from ZooKeeper, validate and print it",
	  cmd_topology_show },
	{ { "status", NULL },
	  "[--json] [--wait SECONDS --expect N]",
	  "the daemons alive (/live/<platform>/<daemon>/<instance>), then platforms and rooms with their\n"
	  "      state, since when and why (/state), and each room's MCUs up/known and conferences\n"
	  "      running/capacity (from each rms); with --wait, only poll until N daemons report every\n"
	  "      connection up (exit 1 if not within SECONDS)",
	  cmd_status },
	{ { "mcu", "list" },
	  "[--platform P] [--room R] [--json]",
	  "the MCUs each platform's rms knows: state, conferences running/capacity, reserved, ports, caps",
	  cmd_mcu_list },
	{ { "mcu", "drain" },
	  "MCU [--platform P]",
	  "no new conferences on MCU (running ones stay); without --platform, the rms that knows it",
	  cmd_mcu_drain },
	{ { "mcu", "undrain" }, "MCU [--platform P]", "take MCU out of drain", cmd_mcu_undrain },
	{ { "room", "switch" },
	  "ROOM --to backup|normal [--force] [--reason TEXT] [--operator WHO] [--json]",
	  "manual DR switch of a room (through its platform's pms): backup = abnormal, its conferences\n"
	  "      move to its backup rooms; normal = switch back (refused while its checks fail, unless --force)",
	  cmd_room_switch },
	{ { "platform", "switch" },
	  "PLATFORM --to backup|normal [--force] [--reason TEXT] [--operator WHO] [--json]",
	  "manual DR switch of a platform (through its backup platform's pms): backup = down, its user\n"
	  "      domains served by the backup platform; normal = fail back (refused while its pms is not\n"
	  "      live or its main room fails, unless --force)",
	  cmd_platform_switch },
	{ { "platform", "failback" },
	  "PLATFORM [--force] [--operator WHO] [--sync-timeout SECONDS]",
	  "after a takeover (its Redis replica promoted by the backup's css): makes PLATFORM's own Redis\n"
	  "      the master again with every record (replicates the promoted one, switches PLATFORM to normal,\n"
	  "      waits until nothing more is written, swaps the roles back, restores its ZooKeeper endpoint);\n"
	  "      refused while PLATFORM's css is live (stop it first) unless --force",
	  cmd_platform_failback },
	{ { "conf", "list" },
	  "[--platform P] [--domain UD] [--json]",
	  "the conferences css knows (not ended), asked as the CM asks (cm_mau_listconf_req) for each user\n"
	  "      domain of the platform(s) (or --domain alone): E164, domain, state, MCU, room, host platform,\n"
	  "      planned end, name",
	  cmd_conf_list },
	{ { "conf", "show" },
	  "E164 [--platform P] [--json]",
	  "one conference's record (cm_mau_queryconf_req); without --platform, each css until one knows it",
	  cmd_conf_show },
	{ { "conf", "end" },
	  "E164 [--platform P] [--json]",
	  "end a conference as the CM would (cm_mau_endconf_req); without --platform, the css that knows it",
	  cmd_conf_end },
	{ { NULL, NULL }, NULL, NULL, NULL },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "zk", required_argument, NULL, 'z' },
					      { "chroot", required_argument, NULL, 'c' },
					      { "timeout", required_argument, NULL, 't' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	struct ctl c = { .timeout_s = 5 };
	const struct command *cmd;
	int opt, ret, nwords;
	char *end;
	long v;

	c.hosts = getenv("CONFDR_ZK");
	if (!c.hosts || !*c.hosts)
		c.hosts = DEFAULT_ZK;
	c.chroot = getenv("CONFDR_ZK_CHROOT");
	if (!c.chroot || !*c.chroot)
		c.chroot = DEFAULT_CHROOT;

	while ((opt = getopt_long(argc, argv, "+z:c:t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'z': c.hosts = optarg; break;
		case 'c': c.chroot = optarg; break;
		case 't':
			v = strtol(optarg, &end, 10);
			if (*end || end == optarg || v < 1 || v > 3600)
				return usage_error("--timeout wants seconds (1..3600), not \"%s\"", optarg);
			c.timeout_s = (unsigned)v;
			break;
		case 'h': usage(stdout); return 0;
		default: return usage_error("bad option");
		}
	}
	if (c.chroot[0] != '/')
		return usage_error("--chroot must be an absolute path, not \"%s\"", c.chroot);
	if (optind >= argc)
		return usage_error("no command");
	for (cmd = commands; cmd->run; cmd++) {
		if (strcmp(cmd->words[0], argv[optind]) != 0)
			continue;
		if (!cmd->words[1])
			break;
		if (optind + 1 < argc && strcmp(cmd->words[1], argv[optind + 1]) == 0)
			break;
	}
	if (!cmd->run)
		return usage_error("unknown command \"%s%s%s\"", argv[optind], optind + 1 < argc ? " " : "",
				   optind + 1 < argc ? argv[optind + 1] : "");
	nwords = cmd->words[1] ? 2 : 1;

	/* The library logs at debug only; confdrctl says what failed itself. */
	cdr_log_setup("confdrctl", "-", getenv("CONFDR_DEBUG") ? CDR_LOG_DEBUG : CDR_LOG_ERR, false);
	answer_ctl = &c;
	if (cdr_loop_new(&c.loop) < 0 || cdr_timer_new(c.loop, on_timer, &c, &c.timer) < 0) {
		fprintf(stderr, "confdrctl: cannot create the event loop\n");
		return EX_SOFTWARE;
	}
	/* The command sees its own argv: argv[0] is its last word. */
	ret = cmd->run(&c, argc - optind - nwords + 1, argv + optind + nwords - 1);
	c.zk = cdr_zk_free(c.zk);
	c.timer = cdr_timer_free(c.timer);
	c.loop = cdr_loop_free(c.loop);
	return ret;
}
