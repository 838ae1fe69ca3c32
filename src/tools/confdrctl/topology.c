/* confdrctl: topology load (the files into ZooKeeper's /topology,
 * /endpoints, /replicas) and topology show (read back and printed). */
#include "confdrctl.h"

#include <confdr/topology.h>
#include <confdr/zk.h>

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- access (docs/zookeeper.md, Access) ---- */

enum { ROLE_CSS, ROLE_RMS, ROLE_PMS, ROLE_COUNT };
static const char *const role_names[ROLE_COUNT] = { "css", "rms", "pms" };

/* The daemons' ids, read from FILE: lines "ROLE ID", '#' comments. */
struct ids {
	char id[ROLE_COUNT][256];
};

static int ids_read(const char *path, struct ids *ids)
{
	FILE *f = fopen(path, "re");
	char line[512];
	unsigned lineno = 0;
	int ret = 0;

	memset(ids, 0, sizeof(*ids));
	if (!f) {
		fprintf(stderr, "confdrctl: --zk-ids %s: %s\n", path, strerror(errno));
		return EX_DATAERR;
	}
	while (!ret && fgets(line, sizeof(line), f)) {
		char role[16], id[256];
		int r = -1;
		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0' || line[strspn(line, " \t")] == '#')
			continue;
		if (sscanf(line, "%15s %255s", role, id) == 2)
			for (int i = 0; i < ROLE_COUNT; i++)
				if (!strcmp(role, role_names[i]))
					r = i;
		if (r < 0 || !strchr(id, ':')) {
			fprintf(stderr,
				"confdrctl: --zk-ids %s:%u: expected \"css|rms|pms "
				"user:base64(sha1(user:password))\"\n",
				path, lineno);
			ret = EX_DATAERR;
			break;
		}
		snprintf(ids->id[r], sizeof(ids->id[r]), "%s", id);
	}
	fclose(f);
	for (int i = 0; !ret && i < ROLE_COUNT; i++)
		if (!ids->id[i][0]) {
			fprintf(stderr, "confdrctl: --zk-ids %s: no id for %s\n", path, role_names[i]);
			ret = EX_DATAERR;
		}
	return ret;
}

/* Creates path (with parents) owned by this session's user and role's id,
 * read by all; an existing node is left as it is. */
static int own_node(struct ctl *c, const char *path, const char *id, unsigned perms)
{
	const struct cdr_zk_acl acl[] = {
		{ CDR_ZK_PERM_ALL, "auth", "" },
		{ perms, "digest", id },
		{ CDR_ZK_PERM_READ, "world", "anyone" },
	};
	struct answer a;
	int st = ctl_zk_create_acl(c, path, NULL, CDR_ZK_PARENTS, acl, 3, &a), ret = 0;

	if (st && st != -EEXIST)
		ret = ctl_zk_fail(c, "creating", path, &a);
	ctl_answer_clear(&a);
	return ret;
}

/* The nodes under which the daemons make their own, each writable by the
 * role that makes them there: /election/P/D and /live/P/D for D's
 * ephemerals, /state and /heartbeat for pms. */
static int daemon_nodes(struct ctl *c, const struct nodes *ns, const struct ids *ids)
{
	static const char plat_dir[] = "/topology/platforms/";
	int ret = 0;

	if ((ret = own_node(c, "/state", ids->id[ROLE_PMS], CDR_ZK_PERM_ALL)) ||
	    (ret = own_node(c, "/heartbeat", ids->id[ROLE_PMS], CDR_ZK_PERM_ALL)))
		return ret;
	for (size_t i = 0; i < ns->n && !ret; i++) {
		const char *p = ns->v[i].path;
		char path[512];
		if (strncmp(p, plat_dir, sizeof(plat_dir) - 1) != 0)
			continue;
		p += sizeof(plat_dir) - 1;
		for (int r = 0; r < ROLE_COUNT && !ret; r++) {
			snprintf(path, sizeof(path), "/election/%s/%s", p, role_names[r]);
			if (!(ret = own_node(c, path, ids->id[r], CDR_ZK_PERM_ALL))) {
				snprintf(path, sizeof(path), "/live/%s/%s", p, role_names[r]);
				ret = own_node(c, path, ids->id[r], CDR_ZK_PERM_ALL);
			}
		}
	}
	return ret;
}

/* A Redis endpoint: css publishes the promoted replica there (a takeover). */
static bool redis_endpoint(const char *path)
{
	size_t n = strlen(path);

	return strncmp(path, "/endpoints/", 11) == 0 && n > 6 && strcmp(path + n - 6, "/redis") == 0;
}

/* Removes what under dir is not in ns: leaves not listed, subtrees holding
 * none of ns's nodes. depth is how many levels below dir the leaves are. */
static int remove_stale(struct ctl *c, const char *dir, int depth, const struct nodes *ns, unsigned *removed)
{
	struct answer a;
	int st = ctl_zk_children(c, dir, &a), ret = 0;

	if (st == -ENOENT) {
		ctl_answer_clear(&a);
		return 0;
	}
	if (st) {
		ret = ctl_zk_fail(c, "listing", dir, &a);
		ctl_answer_clear(&a);
		return ret;
	}
	for (size_t i = 0; i < a.nchildren && !ret; i++) {
		char *p;
		if (asprintf(&p, "%s/%s", dir, a.children[i]) < 0)
			exit(EX_SOFTWARE);
		if (depth <= 1 ? !nodes_have(ns, p) : !nodes_under(ns, p)) {
			ret = ctl_zk_delete_tree(c, p);
			if (!ret) {
				printf("removed %s\n", p);
				(*removed)++;
			}
		} else if (depth > 1) {
			ret = remove_stale(c, p, depth - 1, ns, removed);
		}
		free(p);
	}
	ctl_answer_clear(&a);
	return ret;
}

int ctl_cmd_topology_load(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "endpoints", required_argument, NULL, 'e' },
					      { "zk-ids", required_argument, NULL, 'i' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *topo_path, *eps_path = NULL;
	struct cdr_topology *t = NULL;
	struct nodes ns = { 0 };
	unsigned created = 0, updated = 0, unchanged = 0, removed = 0;
	struct ids ids;
	bool authed, have_ids = false;
	char err[8192];
	int opt, ret;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "e:i:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'e': eps_path = optarg; break;
		case 'i': c->zk_ids = optarg; break;
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("topology load: bad option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("topology load: expected one TOPOLOGY.json");
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
	authed = c->zk_user && *c->zk_user;
	if (c->zk_ids && *c->zk_ids) {
		if (!authed) {
			ret = cli_usage_error("topology load: --zk-ids needs --zk-user (the nodes are that user's)");
			goto out;
		}
		if ((ret = ids_read(c->zk_ids, &ids)))
			goto out;
		have_ids = true;
	} else if (authed) {
		fprintf(stderr,
			"confdrctl: warning: no --zk-ids: the daemons' nodes are not made, and only %s may "
			"write under the chroot\n",
			c->zk_user);
	}
	if ((ret = ctl_zk_connect(c)))
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
			st = ctl_zk_create(c, dirs[i], NULL, CDR_ZK_PARENTS, &a);
			if (st && st != -EEXIST) {
				ret = ctl_zk_fail(c, "creating", dirs[i], &a);
				ctl_answer_clear(&a);
				goto out;
			}
			ctl_answer_clear(&a);
		}
	}

	/* Create or overwrite each node; leave equal ones alone. */
	for (size_t i = 0; i < ns.n; i++) {
		const char *path = ns.v[i].path, *json = ns.v[i].json;
		struct answer a;
		int st = ctl_zk_get(c, path, &a);
		if (st == -ENOENT) {
			ctl_answer_clear(&a);
			if (have_ids && redis_endpoint(path)) {
				const struct cdr_zk_acl acl[] = {
					{ CDR_ZK_PERM_ALL, "auth", "" },
					{ CDR_ZK_PERM_WRITE, "digest", ids.id[ROLE_CSS] },
					{ CDR_ZK_PERM_READ, "world", "anyone" },
				};
				st = ctl_zk_create_acl(c, path, json, CDR_ZK_PARENTS, acl, 3, &a);
			} else {
				st = ctl_zk_create(c, path, json, CDR_ZK_PARENTS, &a);
			}
			if (st == 0) {
				created++;
				ctl_answer_clear(&a);
				continue;
			}
			if (st != -EEXIST) {
				ret = ctl_zk_fail(c, "creating", path, &a);
				ctl_answer_clear(&a);
				goto out;
			}
			/* created meanwhile: overwrite it */
		} else if (st) {
			ret = ctl_zk_fail(c, "reading", path, &a);
			ctl_answer_clear(&a);
			goto out;
		} else if (a.data && strcmp(a.data, json) == 0) {
			unchanged++;
			ctl_answer_clear(&a);
			continue;
		}
		ctl_answer_clear(&a);
		st = ctl_zk_set(c, path, json, &a);
		if (st) {
			ret = ctl_zk_fail(c, "writing", path, &a);
			ctl_answer_clear(&a);
			goto out;
		}
		ctl_answer_clear(&a);
		updated++;
	}

	if (have_ids && (ret = daemon_nodes(c, &ns, &ids)))
		goto out;

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

int ctl_cmd_topology_show(struct ctl *c, int argc, char **argv)
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
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("topology show: bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("topology show: unexpected argument %s", argv[optind]);
	t = ctl_fetch_topology(c);
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
