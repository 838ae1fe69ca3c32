/* confdrctl: status, the daemons alive (/live), the platforms' and rooms'
 * states (/state) and each room's MCUs and conferences (from each rms). */
#include "confdrctl.h"

#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/topology.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Reads /live/<pmoid>/<daemon>/<instance> into an array of objects, sorted
 * by platform, daemon, instance (the listings are sorted). */
static int read_live(struct ctl *c, json_t *out)
{
	struct answer pl, dl, il, node;
	int st, ret = 0;
	char path[1024];

	st = ctl_zk_children(c, "/live", &pl);
	if (st == -ENOENT)
		goto out_pl;
	if (st) {
		ret = ctl_zk_fail(c, "listing", "/live", &pl);
		goto out_pl;
	}
	for (size_t i = 0; i < pl.nchildren && !ret; i++) {
		snprintf(path, sizeof(path), "/live/%s", pl.children[i]);
		st = ctl_zk_children(c, path, &dl);
		if (st && st != -ENOENT)
			ret = ctl_zk_fail(c, "listing", path, &dl);
		for (size_t k = 0; !st && k < dl.nchildren && !ret; k++) {
			snprintf(path, sizeof(path), "/live/%s/%s", pl.children[i], dl.children[k]);
			st = ctl_zk_children(c, path, &il);
			if (st && st != -ENOENT)
				ret = ctl_zk_fail(c, "listing", path, &il);
			for (size_t m = 0; !st && m < il.nchildren && !ret; m++) {
				json_error_t je;
				json_t *v;
				snprintf(path, sizeof(path), "/live/%s/%s/%s", pl.children[i], dl.children[k],
					 il.children[m]);
				st = ctl_zk_get(c, path, &node);
				if (st == 0 && node.data && (v = json_loads(node.data, 0, &je)) && json_is_object(v)) {
					/* The path says who it is, whatever the JSON says. */
					json_object_set_new(v, "platform", json_string(pl.children[i]));
					json_object_set_new(v, "daemon", json_string(dl.children[k]));
					json_object_set_new(v, "instance", json_string(il.children[m]));
					json_array_append_new(out, v);
				} else if (st == 0) {
					fprintf(stderr, "confdrctl: %s: not a JSON object, ignored\n", path);
				} else if (st != -ENOENT) {
					ret = ctl_zk_fail(c, "reading", path, &node);
				}
				st = 0;
				ctl_answer_clear(&node);
			}
			st = 0;
			ctl_answer_clear(&il);
		}
		st = 0;
		ctl_answer_clear(&dl);
	}
out_pl:
	ctl_answer_clear(&pl);
	return ret;
}

static bool all_up(json_t *o)
{
	static const char *conns[] = { "amqp", "redis", "mysql", "zookeeper" };

	for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++)
		/* "unused": a daemon that needs no such link (rms has no MySQL). */
		if (strcmp(cli_jstr(o, conns[i]), "up") != 0 && strcmp(cli_jstr(o, conns[i]), "unused") != 0)
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
		printf("%-9s %-7s %-24s %-8s %6s %-5s %-5s %-5s %s\n", cli_jstr(o, "platform"), cli_jstr(o, "daemon"),
		       cli_jstr(o, "instance"), cli_jstr(o, "role"), epoch, cli_jstr(o, "amqp"), cli_jstr(o, "redis"),
		       cli_jstr(o, "mysql"), when);
	}
	if (json_array_size(list) == 0)
		printf("(no daemon alive)\n");
	json_array_foreach(list, i, o)
	{
		json_t *st = json_object_get(o, "stats"), *states = json_object_get(st, "states");

		if (strcmp(cli_jstr(o, "daemon"), "css") || !json_is_object(st) ||
		    strcmp(cli_jstr(o, "role"), "active"))
			continue;
		printf("conferences of %s (css %s): %" JSON_INTEGER_FORMAT " (", cli_jstr(o, "platform"),
		       cli_jstr(o, "instance"), json_integer_value(json_object_get(st, "confs")));
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
	int st = ctl_zk_get(c, path, &a);

	if (st == 0 && a.data)
		v = json_loads(a.data, 0, NULL);
	ctl_answer_clear(&a);
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

		if (!(env = ctl_rms_call(c, t, p, "ctl_rms_inventory_req", json_object(), &ex)) || ctl_is_nack(env)) {
			if (env)
				fprintf(stderr, "confdrctl: rms of %s: %s\n", p, ctl_body_str(env, "detail"));
			json_decref(env);
			ret = EX_UNAVAILABLE;
			continue;
		}
		json_array_foreach(json_object_get(json_object_get(env, "body"), "mcus"), k, m)
		{
			json_array_append(mcus, m);
			json_array_foreach(rooms, n, r)
			{
				if (strcmp(cli_jstr(r, "room"), cli_jstr(m, "room")))
					continue;
#define ADD(key, v) json_object_set_new(r, key, json_integer(json_integer_value(json_object_get(r, key)) + (v)))
				ADD("mcus", 1);
				ADD("mcus_up", strcmp(cli_jstr(m, "state"), "down") ? 1 : 0);
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
			cli_fmt_time(json_integer_value(json_object_get(v, "since")), when, sizeof(when));
			fmt_age(json_integer_value(json_object_get(v, "since")), age, sizeof(age));
			printf("%-9s %-6s %-7s %-9s %-21s %-9s %s%s%s%s%s\n", cli_jstr(v, "platform"),
			       cli_jstr(v, "state"), json_is_true(json_object_get(v, "manual")) ? "yes" : "no",
			       cli_jstr(v, "backup_platform"), when, age, cli_jstr(v, "reason"),
			       *cli_jstr(v, "by") && strcmp(cli_jstr(v, "by"), "-") ? " by " : "",
			       strcmp(cli_jstr(v, "by"), "-") ? cli_jstr(v, "by") : "",
			       *cli_jstr(v, "detail") && strcmp(cli_jstr(v, "detail"), "-") ? ": " : "",
			       strcmp(cli_jstr(v, "detail"), "-") ? cli_jstr(v, "detail") : "");
		}
		printf("\n%-9s %-9s %-9s %-7s %-21s %-9s %-7s %-11s %s\n", "ROOM", "PLATFORM", "STATE", "MANUAL",
		       "SINCE", "", "MCUS", "CONFS", "REASON");
		json_array_foreach(rooms, i, v)
		{
			char m[32], confs[32];

			cli_fmt_time(json_integer_value(json_object_get(v, "since")), when, sizeof(when));
			fmt_age(json_integer_value(json_object_get(v, "since")), age, sizeof(age));
			snprintf(m, sizeof(m), "%lld/%lld",
				 (long long)json_integer_value(json_object_get(v, "mcus_up")),
				 (long long)json_integer_value(json_object_get(v, "mcus")));
			snprintf(confs, sizeof(confs), "%lld/%lld",
				 (long long)json_integer_value(json_object_get(v, "running_confs")),
				 (long long)json_integer_value(json_object_get(v, "capacity_confs")));
			printf("%-9s %-9s %-9s %-7s %-21s %-9s %-7s %-11s %s%s%s%s%s\n", cli_jstr(v, "room"),
			       cli_jstr(v, "platform"), cli_jstr(v, "state"),
			       json_is_true(json_object_get(v, "manual")) ? "yes" : "no", when, age, m, confs,
			       cli_jstr(v, "reason"),
			       strcmp(cli_jstr(v, "by"), "-") && *cli_jstr(v, "by") ? " by " : "",
			       strcmp(cli_jstr(v, "by"), "-") ? cli_jstr(v, "by") : "",
			       *cli_jstr(v, "detail") && strcmp(cli_jstr(v, "detail"), "-") ? ": " : "",
			       strcmp(cli_jstr(v, "detail"), "-") ? cli_jstr(v, "detail") : "");
		}
	}
	json_object_set_new(out, "platforms", plats);
	json_object_set_new(out, "rooms", rooms);
	json_object_set_new(out, "mcus", mcus);
	return ret;
}

int ctl_cmd_status(struct ctl *c, int argc, char **argv)
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
	int64_t v;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jw:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'w':
			if (!cli_parse_int(optarg, 0, 86400, &v))
				return cli_usage_error("status: --wait wants seconds (0..86400), not \"%s\"", optarg);
			wait_s = v;
			break;
		case 'n':
			if (!cli_parse_int(optarg, 0, 100000, &v))
				return cli_usage_error("status: --expect wants a count, not \"%s\"", optarg);
			expect = v;
			break;
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("status: bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("status: unexpected argument %s", argv[optind]);
	if ((wait_s >= 0) != (expect >= 0))
		return cli_usage_error("status: --wait and --expect go together");
	/* While waiting for daemons, also wait for ZooKeeper itself (the sandbox
	 * may still be starting it). */
	if (wait_s > (long)c->timeout_s)
		c->timeout_s = (unsigned)wait_s;
	if ((ret = ctl_zk_connect(c)))
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
		ctl_run_until(c, &fired, 1000);
		cdr_timer_free(t);
	}
	{
		json_t *all = json_pack("{s:O}", "daemons", list);
		struct cdr_topology *t;

		if (!json)
			print_table(list);
		/* With --wait, the daemons are what is asked about. */
		if (expect < 0 && (t = ctl_fetch_topology_soft(c))) {
			partial = status_states(c, t, all, !json);
			cdr_topology_free(t);
		}
		if (json)
			cli_print_json(all, "{}");
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
