/* confdrctl: the manual DR switches of a room or a platform (through a
 * pms). */
#include "confdrctl.h"

#include <confdr/mq.h>
#include <confdr/topology.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
