/* confdrctl: the manual DR switches of a room or a platform (through a
 * pms), and a platform's failback (its Redis made the master again, then
 * the platform switched back to normal). */
#include "confdrctl.h"

#include <confdr/mq.h>
#include <confdr/topology.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

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
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("%s switch: bad option", what);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("%s switch: name one %s", what, what);
	id = argv[optind];
	if (!to || (strcmp(to, "backup") && strcmp(to, "normal")))
		return cli_usage_error("%s switch: --to backup or --to normal", what);
	on = !strcmp(to, "backup");
	if (!op) {
		const char *u = getenv("SUDO_USER") && *getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");

		gethostname(host, sizeof(host) - 1);
		snprintf(opbuf, sizeof(opbuf), "%.40s@%.60s", u && *u ? u : "unknown", host);
		op = opbuf;
	}
	t = ctl_fetch_topology(c);
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
	env = ctl_bus_call(c, t, via, "pms", CDR_MQ_PMS_REQ_Q, "ctl_pms_switch_req",
			   json_pack("{s:s, s:s, s:b, s:b, s:s, s:s}", "target", what, "moid", id, "on", on, "force",
				     force, "operator", op, "detail", reason),
			   &ex);
	cdr_topology_free(t);
	if (!env)
		return ex;
	b = json_object_get(env, "body");
	if (json)
		cli_print_json(env, "{}");
	if (ctl_is_nack(env)) {
		fprintf(stderr, "confdrctl: %s switch of %s refused by pms of %s: %s: %s\n", what, id, via,
			ctl_body_str(env, "reason"), ctl_body_str(env, "detail"));
		json_decref(env);
		return EX_FAIL;
	}
	if (!json) {
		char when[40];

		cli_fmt_time(json_integer_value(json_object_get(b, "since")), when, sizeof(when));
		printf("%s %s: %s%s since %s, epoch %lld%s\n", what, id, ctl_body_str(env, "state"),
		       json_is_true(json_object_get(b, "manual")) ? " (manual)" : "", when,
		       (long long)json_integer_value(json_object_get(b, "epoch")),
		       json_is_false(json_object_get(b, "changed")) ? " (it already was)" : "");
	}
	json_decref(env);
	return 0;
}

int ctl_cmd_room_switch(struct ctl *c, int argc, char **argv)
{
	return cmd_switch(c, argc, argv, true);
}

int ctl_cmd_platform_switch(struct ctl *c, int argc, char **argv)
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

int ctl_cmd_platform_failback(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "force", no_argument, NULL, 'f' },
					      { "operator", required_argument, NULL, 'o' },
					      { "sync-timeout", required_argument, NULL, 's' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *op = NULL, *id, *ohost, *phost;
	bool force = false;
	int64_t sync_s = 60;
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
			if (!cli_parse_int(optarg, 1, 3600, &sync_s))
				return cli_usage_error("platform failback: --sync-timeout is 1..3600 seconds");
			break;
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("platform failback: bad option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("platform failback: name one platform");
	id = argv[optind];
	t = ctl_fetch_topology(c);
	if (!cdr_topology_platform(t, id) || !(main = cdr_topology_main_room(t, id))) {
		fprintf(stderr, "confdrctl: unknown platform %s\n", id);
		cdr_topology_free(t);
		return EX_FAIL;
	}
	snprintf(path, sizeof(path), "/endpoints/%s/%s/redis", id, main->id);
	cdr_topology_free(t);
	if (ctl_zk_get(c, path, &a) != 0)
		return ctl_zk_fail(c, "reading", path, &a);
	node = a.data ? json_loads(a.data, 0, NULL) : NULL;
	ctl_answer_clear(&a);
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
		if (ctl_zk_children(c, live, &a) == 0 && a.nchildren && !force) {
			fprintf(stderr,
				"confdrctl: %zu css instance(s) of %s are live: stop them first (they would act on a "
				"Redis "
				"being moved), or --force\n",
				a.nchildren, id);
			ctl_answer_clear(&a);
			json_decref(node);
			return EX_FAIL;
		}
		ctl_answer_clear(&a);
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
		fprintf(stderr, "confdrctl: %s:%d did not synchronise within %" PRId64 " s (link %s)\n", ohost, oport,
			sync_s, txt);
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
		fprintf(stderr, "confdrctl: the replication offsets did not settle within %" PRId64 " s\n", sync_s);
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
		if (!d || ctl_zk_set(c, path, d, &a) != 0) {
			free(d);
			ex = ctl_zk_fail(c, "writing", path, &a);
			ctl_answer_clear(&a);
			goto out;
		}
		free(d);
		ctl_answer_clear(&a);
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
