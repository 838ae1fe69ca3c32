/* confdrctl drill snapshot | verify | compare: the DR drills' checker
 * (docs/drills.md). It reads what the simulated MCUs run (their state
 * files), what MySQL closed and what Redis holds, and judges with the pure
 * rules of drill_verdict.c; deploy/drill.sh orchestrates, this checks. */
#include "confdrctl.h"
#include "drill.h"

#include <confdr/hmap.h>

#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PLATFORMS 16

struct redis_pair {
	char platform[CLI_MAX_ID + 1];
	char host[2][128];
	int port[2]; /* primary, replica (0: none) */
};

/* A platform's own MariaDB (--mysql-socket PLATFORM=PATH: a multi-host
 * sandbox has one per platform host); the others use the default one. */
struct platform_db {
	char platform[CLI_MAX_ID + 1];
	const char *socket; /* NULL: "none", its MariaDB is known to be down */
	struct drill_db *db;
};

struct drill_opts {
	const char *sims, *pids, *prefix, *home, *out, *expect, *before, *room, *dest, *now, *json;
	struct drill_db_opts db;
	struct platform_db pdb[MAX_PLATFORMS];
	size_t npdb;
	struct drill_db *def; /* the default connection, opened when first needed */
	bool settle;
	int64_t timeout_s, hold_s, every_ms, retry_s;
	struct redis_pair redis[MAX_PLATFORMS];
	size_t nredis;
	char mysql_host[128];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "HOST:PORT" into host and port. */
static bool parse_hostport(const char *s, size_t n, char *host, size_t hlen, int *port)
{
	const char *colon = memrchr(s, ':', n);
	char num[8];
	int64_t v;

	if (!colon || colon == s || (size_t)(colon - s) >= hlen || n - (size_t)(colon - s) - 1 >= sizeof(num))
		return false;
	snprintf(host, hlen, "%.*s", (int)(colon - s), s);
	snprintf(num, sizeof(num), "%.*s", (int)(n - (size_t)(colon - s) - 1), colon + 1);
	if (!cli_parse_int(num, 1, 65535, &v))
		return false;
	*port = (int)v;
	return true;
}

/* --redis P=HOST:PORT[,HOST:PORT] */
static bool parse_redis(const char *s, struct drill_opts *o)
{
	const char *eq = strchr(s, '='), *comma;
	struct redis_pair *r = &o->redis[o->nredis];

	if (o->nredis == MAX_PLATFORMS || !eq || eq == s || (size_t)(eq - s) > CLI_MAX_ID)
		return false;
	*r = (struct redis_pair){ 0 };
	snprintf(r->platform, sizeof(r->platform), "%.*s", (int)(eq - s), s);
	if (!cli_id_ok(r->platform))
		return false;
	comma = strchr(eq + 1, ',');
	if (!parse_hostport(eq + 1, comma ? (size_t)(comma - eq - 1) : strlen(eq + 1), r->host[0], sizeof(r->host[0]),
			    &r->port[0]))
		return false;
	if (comma && !parse_hostport(comma + 1, strlen(comma + 1), r->host[1], sizeof(r->host[1]), &r->port[1]))
		return false;
	o->nredis++;
	return true;
}

/* "PLATFORM=PATH" into o->pdb, or "PATH": the default socket. */
static bool parse_socket(char *arg, struct drill_opts *o)
{
	char *eq = strchr(arg, '=');
	struct platform_db *pd;

	if (!eq) {
		o->db.socket = arg;
		return true;
	}
	if (eq == arg || (size_t)(eq - arg) > CLI_MAX_ID || !eq[1] || o->npdb == MAX_PLATFORMS)
		return false;
	pd = &o->pdb[o->npdb++];
	memcpy(pd->platform, arg, (size_t)(eq - arg));
	pd->platform[eq - arg] = '\0';
	pd->socket = strcmp(eq + 1, "none") == 0 ? NULL : eq + 1;
	return true;
}

/* --mysql-socket PLATFORM=none: its MariaDB is down (a drill's power cut). */
static bool db_down(const struct drill_opts *o, const char *platform)
{
	for (size_t i = 0; i < o->npdb; i++)
		if (strcmp(o->pdb[i].platform, platform) == 0)
			return !o->pdb[i].socket;
	return false;
}

/* The connection for platform's database (opened once); NULL with err set. */
static struct drill_db *db_for(struct drill_opts *o, const char *platform, char *err, size_t errlen)
{
	struct drill_db_opts one;

	for (size_t i = 0; i < o->npdb; i++) {
		if (strcmp(o->pdb[i].platform, platform) != 0)
			continue;
		if (!o->pdb[i].socket) {
			snprintf(err, errlen, "the MariaDB of platform %s is down (--mysql-socket %s=none)", platform,
				 platform);
			return NULL;
		}
		if (!o->pdb[i].db) {
			one = o->db;
			one.socket = o->pdb[i].socket;
			one.host = NULL;
			o->pdb[i].db = drill_db_open(&one, err, errlen);
		}
		return o->pdb[i].db;
	}
	if (!o->db.socket && !o->db.host) {
		snprintf(err, errlen, "no MariaDB for platform %s (--mysql-socket %s=PATH)", platform, platform);
		return NULL;
	}
	if (!o->def)
		o->def = drill_db_open(&o->db, err, errlen);
	return o->def;
}

static void dbs_close(struct drill_opts *o)
{
	for (size_t i = 0; i < o->npdb; i++)
		o->pdb[i].db = drill_db_free(o->pdb[i].db);
	o->def = drill_db_free(o->def);
}

/* The options of the three commands; `allowed` lists the short letters this
 * one takes. */
static int parse(int argc, char **argv, const char *cmd, const char *allowed, struct drill_opts *o)
{
	static const struct option opts[] = { { "sims", required_argument, NULL, 'S' },
					      { "pids", required_argument, NULL, 'P' },
					      { "prefix", required_argument, NULL, 'x' },
					      { "home", required_argument, NULL, 'H' },
					      { "out", required_argument, NULL, 'o' },
					      { "expect", required_argument, NULL, 'e' },
					      { "before", required_argument, NULL, 'b' },
					      { "room", required_argument, NULL, 'r' },
					      { "dest", required_argument, NULL, 'd' },
					      { "now", required_argument, NULL, 'n' },
					      { "json", required_argument, NULL, 'j' },
					      { "settle", no_argument, NULL, 's' },
					      { "timeout", required_argument, NULL, 't' },
					      { "hold", required_argument, NULL, 'l' },
					      { "every", required_argument, NULL, 'v' },
					      { "retry", required_argument, NULL, 'y' },
					      { "redis", required_argument, NULL, 'R' },
					      { "mysql-socket", required_argument, NULL, 'k' },
					      { "mysql", required_argument, NULL, 'm' },
					      { "mysql-user", required_argument, NULL, 'u' },
					      { "mysql-password", required_argument, NULL, 'w' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	int opt;

	*o = (struct drill_opts){ .prefix = "drill-", .timeout_s = 60, .hold_s = 3, .every_ms = 1000, .retry_s = 10 };
	o->db.user = "root";
	o->db.tls_ca = cli_tls_ca();
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			ctl_usage(stdout);
			return -1;
		}
		if (opt == '?' || !strchr(allowed, opt))
			return cli_usage_error("drill %s: bad option %s", cmd, argv[optind - 1]);
		switch (opt) {
		case 'S': o->sims = optarg; break;
		case 'P': o->pids = optarg; break;
		case 'x': o->prefix = optarg; break;
		case 'H': o->home = optarg; break;
		case 'o': o->out = optarg; break;
		case 'e': o->expect = optarg; break;
		case 'b': o->before = optarg; break;
		case 'r': o->room = *optarg ? optarg : NULL; break;
		case 'd': o->dest = *optarg ? optarg : NULL; break;
		case 'n': o->now = optarg; break;
		case 'j': o->json = optarg; break;
		case 's': o->settle = true; break;
		case 't':
			if (!cli_parse_int(optarg, 1, 86400, &o->timeout_s))
				return cli_usage_error("drill %s: --timeout wants seconds (1..86400)", cmd);
			break;
		case 'l':
			if (!cli_parse_int(optarg, 0, 3600, &o->hold_s))
				return cli_usage_error("drill %s: --hold wants seconds (0..3600)", cmd);
			break;
		case 'v':
			if (!cli_parse_int(optarg, 10, 60000, &o->every_ms))
				return cli_usage_error("drill %s: --every wants ms (10..60000)", cmd);
			break;
		case 'y':
			if (!cli_parse_int(optarg, 0, 3600, &o->retry_s))
				return cli_usage_error("drill %s: --retry wants seconds (0..3600)", cmd);
			break;
		case 'R':
			if (!parse_redis(optarg, o))
				return cli_usage_error(
					"drill %s: --redis wants PLATFORM=HOST:PORT[,HOST:PORT] (at most %d), "
					"not \"%s\"",
					cmd, MAX_PLATFORMS, optarg);
			break;
		case 'k':
			if (!parse_socket(optarg, o))
				return cli_usage_error("drill %s: --mysql-socket wants [PLATFORM=]PATH (at most %d), "
						       "not \"%s\"",
						       cmd, MAX_PLATFORMS, optarg);
			break;
		case 'm':
			if (!parse_hostport(optarg, strlen(optarg), o->mysql_host, sizeof(o->mysql_host), &o->db.port))
				return cli_usage_error("drill %s: --mysql wants HOST:PORT, not \"%s\"", cmd, optarg);
			o->db.host = o->mysql_host;
			break;
		case 'u': o->db.user = optarg; break;
		case 'w': o->db.password = optarg; break;
		}
	}
	if (optind != argc)
		return cli_usage_error("drill %s: unexpected argument %s", cmd, argv[optind]);
	if (strchr(allowed, 'S') && (!o->sims || !o->pids))
		return cli_usage_error("drill %s: --sims DIR and --pids DIR are required", cmd);
	if (strchr(allowed, 'k') && ((o->db.socket && o->db.host) || (!o->db.socket && !o->db.host && !o->npdb)))
		return cli_usage_error(
			"drill %s: one of --mysql-socket [PLATFORM=]PATH and --mysql HOST:PORT is required", cmd);
	return 0;
}

/* Writes v to path through path.tmp (a reader never sees half a file). */
static int write_json(const char *path, json_t *v)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (json_dump_file(v, tmp, JSON_COMPACT) < 0 || rename(tmp, path) < 0) {
		fprintf(stderr, "confdrctl: cannot write %s: %s\n", path, strerror(errno));
		return EX_FAIL;
	}
	return 0;
}

static json_t *load_json(const char *path)
{
	json_error_t je;
	json_t *v = json_load_file(path, 0, &je);

	if (!v)
		fprintf(stderr, "confdrctl: %s: %s (line %d)\n", path, je.text, je.line);
	return v;
}

/* The snapshot into s; an exit status. */
static int snapshot(const struct drill_opts *o, json_t *home, struct drill_set *s)
{
	char err[512];
	int ret = drill_snapshot(o->sims, o->pids, o->prefix, home, s, err, sizeof(err));

	if (ret < 0)
		fprintf(stderr, "confdrctl: drill: %s\n", err);
	return ret == -EINVAL ? EX_DATAERR : ret < 0 ? EX_FAIL : 0;
}

int ctl_cmd_drill_snapshot(struct ctl *c, int argc, char **argv)
{
	struct drill_opts o;
	struct drill_set s = { 0 };
	json_t *home = NULL, *acked = NULL, *a = NULL;
	size_t missing = 0;
	int ret;

	if ((ret = parse(argc, argv, "snapshot", "SPxHoe", &o)) != 0)
		return ret < 0 ? 0 : ret;
	if (!o.out)
		return cli_usage_error("drill snapshot: --out FILE is required");
	ret = EX_DATAERR;
	if ((o.home && !(home = load_json(o.home))) || (o.expect && !(acked = load_json(o.expect))))
		goto out;
	if ((ret = snapshot(&o, home, &s)) != 0)
		goto out;
	ret = (a = drill_set_to_json(&s)) ? write_json(o.out, a) : EX_SOFTWARE;
	if (ret == 0 && acked) {
		if (drill_set_has_all(&s, acked, &missing) < 0) {
			fprintf(stderr, "confdrctl: %s: not an array of E164s\n", o.expect);
			ret = EX_DATAERR;
		} else if (missing) {
			fprintf(stderr, "confdrctl: %zu of %zu E164s of %s run on no live MCU\n", missing,
				json_array_size(acked), o.expect);
			ret = EX_FAIL;
		}
	}
out:
	json_decref(a);
	json_decref(acked);
	json_decref(home);
	drill_set_clear(&s);
	return ret;
}

static bool room_matches(const char *room, void *arg)
{
	return regexec(arg, room, 0, NULL, 0) == 0;
}

/* The closed conferences of before's home platforms into closed; an exit status. */
static int read_closed(struct drill_opts *o, const struct drill_set *before, struct cdr_hmap *closed)
{
	const char *seen[MAX_PLATFORMS];
	size_t n = 0;
	char err[512] = "too many platforms";
	struct drill_db *db;

	for (size_t i = 0; i < before->n; i++) {
		const char *h = before->v[i].home;
		size_t k;

		for (k = 0; k < n && strcmp(seen[k], h) != 0; k++)
			;
		if (k < n || !*h)
			continue;
		/* A platform whose MariaDB is down closed nothing we can see: each of
		 * its conferences must run (stricter, never laxer). */
		if (db_down(o, h))
			continue;
		if (n == MAX_PLATFORMS || !(db = db_for(o, h, err, sizeof(err))) ||
		    drill_db_closed(db, h, closed, err, sizeof(err)) < 0) {
			fprintf(stderr, "confdrctl: drill verify: %s\n", err);
			return EX_UNAVAILABLE;
		}
		seen[n++] = h;
	}
	return 0;
}

/* One check: the verdict of now against before; an exit status. */
static int check(struct drill_opts *o, json_t *home, const struct drill_set *before, regex_t *dest,
		 struct drill_verdict *v)
{
	struct drill_set now = { 0 };
	struct cdr_hmap *closed = drill_strmap_new();
	json_t *a;
	int ret;

	if (!closed)
		return EX_SOFTWARE;
	if ((ret = snapshot(o, home, &now)) == 0 && (ret = read_closed(o, before, closed)) == 0 &&
	    drill_verdict(before, &now, closed, o->room, dest ? room_matches : NULL, dest, v) < 0)
		ret = EX_SOFTWARE;
	if (ret == 0 && o->now) {
		a = drill_set_to_json(&now);
		ret = a ? write_json(o->now, a) : EX_SOFTWARE;
		json_decref(a);
	}
	drill_strmap_free(closed);
	drill_set_clear(&now);
	return ret;
}

int ctl_cmd_drill_verify(struct ctl *c, int argc, char **argv)
{
	struct drill_opts o;
	struct drill_set before = { 0 };
	struct drill_verdict v = { 0 };
	json_t *home = NULL, *b = NULL;
	int64_t start, next, ok_since = -1, t;
	regex_t re, *dest = NULL;
	char err[512], line[256];
	bool settled = false;
	int ret, checks = 0;

	if ((ret = parse(argc, argv, "verify", "SPxHbrdnjstlvkmuw", &o)) != 0)
		return ret < 0 ? 0 : ret;
	if (!o.before || !o.json)
		return cli_usage_error("drill verify: --before FILE and --json FILE are required");
	if (o.dest && regcomp(&re, o.dest, REG_EXTENDED | REG_NOSUB) != 0)
		return cli_usage_error("drill verify: --dest \"%s\" is not a regular expression", o.dest);
	if (o.dest)
		dest = &re;
	ret = EX_DATAERR;
	if ((o.home && !(home = load_json(o.home))) || !(b = load_json(o.before)))
		goto out;
	if (drill_set_from_json(b, &before, err, sizeof(err)) < 0) {
		fprintf(stderr, "confdrctl: %s: %s\n", o.before, err);
		goto out;
	}
	setvbuf(stdout, NULL, _IOLBF, 0); /* drill.sh shows each progress line as it comes */
	start = mono_ms();
	next = start + 5000;
	for (;;) {
		drill_verdict_clear(&v);
		if ((ret = check(&o, home, &before, dest, &v)) != 0)
			goto out;
		checks++;
		t = wall_ms();
		if (!drill_verdict_calm(&v))
			ok_since = -1;
		else if (ok_since < 0)
			ok_since = t;
		if (!o.settle || (ok_since >= 0 && t - ok_since >= o.hold_s * 1000)) {
			/* one check (no --settle): settled means calm now */
			settled = ok_since >= 0 && (!o.settle || t - ok_since >= o.hold_s * 1000);
			break;
		}
		if (mono_ms() >= next) {
			drill_verdict_line(&v, line, sizeof(line));
			printf("settling (%lld s of %lld): %s\n", (long long)((mono_ms() - start) / 1000),
			       (long long)o.timeout_s, line);
			next = mono_ms() + 5000;
		}
		if (mono_ms() - start >= o.timeout_s * 1000)
			break;
		nap_ms(o.every_ms);
	}
	json_object_set_new(v.json, "settled", json_boolean(settled));
	json_object_set_new(v.json, "settled_since_ms", settled ? json_integer(ok_since) : json_null());
	json_object_set_new(v.json, "checks", json_integer(checks));
	ret = write_json(o.json, v.json);
	if (ret == 0 && !settled)
		ret = EX_FAIL;
out:
	drill_verdict_clear(&v);
	dbs_close(&o);
	drill_set_clear(&before);
	json_decref(b);
	json_decref(home);
	if (dest)
		regfree(dest);
	return ret;
}

/* One platform compared: its Redis master's open conferences against MySQL's. */
static json_t *compare_platform(const struct redis_pair *r, struct drill_opts *o, int *ex)
{
	struct cdr_hmap *in_redis = drill_strmap_new(), *in_mysql = drill_strmap_new();
	int primary = drill_redis_is_master(r->host[0], r->port[0], NULL, 0), use = 0;
	char name[CLI_MAX_ID + 16], err[512];
	struct drill_db *db;
	json_t *res = NULL;

	/* A platform drill promotes the replica: then it is the master. */
	if (r->port[1] && drill_redis_is_master(r->host[1], r->port[1], err, sizeof(err)) == 1) {
		if (primary == 1)
			fprintf(stderr,
				"confdrctl: warning: redis-%s and redis-%s-replica are both masters; "
				"comparing redis-%s\n",
				r->platform, r->platform, r->platform);
		else
			use = 1;
	}
	snprintf(name, sizeof(name), "redis-%s%s", r->platform, use ? "-replica" : "");
	*ex = EX_SOFTWARE;
	if (!in_redis || !in_mysql)
		goto out;
	*ex = EX_UNAVAILABLE;
	if (drill_redis_open_confs(r->host[use], r->port[use], in_redis, err, sizeof(err)) < 0 ||
	    !(db = db_for(o, r->platform, err, sizeof(err))) ||
	    drill_db_open_confs(db, r->platform, in_mysql, err, sizeof(err)) < 0) {
		fprintf(stderr, "confdrctl: drill compare: %s (%s)\n", err, name);
		goto out;
	}
	*ex = (res = drill_compare(r->platform, name, in_redis, in_mysql)) ? 0 : EX_SOFTWARE;
out:
	drill_strmap_free(in_redis);
	drill_strmap_free(in_mysql);
	return res;
}

int ctl_cmd_drill_compare(struct ctl *c, int argc, char **argv)
{
	struct drill_opts o;
	json_t *all = NULL, *one;
	int64_t end, mismatches;
	int ret;

	if ((ret = parse(argc, argv, "compare", "Rjykmuw", &o)) != 0)
		return ret < 0 ? 0 : ret;
	if (!o.nredis || !o.json)
		return cli_usage_error("drill compare: --redis and --json FILE are required");
	/* MySQL is written in batches after Redis: again, for a while, while they differ. */
	end = mono_ms() + o.retry_s * 1000;
	for (;;) {
		json_decref(all);
		all = json_array();
		mismatches = 0;
		for (size_t i = 0; i < o.nredis && ret == 0; i++) {
			if ((one = compare_platform(&o.redis[i], &o, &ret))) {
				mismatches += json_integer_value(json_object_get(one, "mismatches"));
				json_array_append_new(all, one);
			}
		}
		if (ret != 0 || mismatches == 0 || mono_ms() >= end)
			break;
		nap_ms(1000);
	}
	if (ret == 0)
		ret = write_json(o.json, all);
	if (ret == 0 && mismatches)
		ret = EX_FAIL;
	json_decref(all);
	dbs_close(&o);
	return ret;
}
