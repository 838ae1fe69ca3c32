/* confdrctl: mcu list | drain | undrain, asked of each platform's rms. */
#include "confdrctl.h"

#include <confdr/mq.h>
#include <confdr/topology.h>

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

int ctl_cmd_mcu_list(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "platform", required_argument, NULL, 'p' },
					      { "room", required_argument, NULL, 'r' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *platform = NULL, *room = NULL;
	struct cdr_topology *t;
	json_t *all;
	bool json = false;
	int opt, ret = 0, ex;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jp:r:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'p': platform = optarg; break;
		case 'r': room = optarg; break;
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("mcu list: bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("mcu list: unexpected argument %s", argv[optind]);
	t = ctl_fetch_topology(c);
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
	all = json_array(); /* after the usage checks: nothing to free on their ways out */
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
		if (!(env = ctl_rms_call(c, t, p, "ctl_rms_inventory_req", body, &ex))) {
			ret = ex;
			continue;
		}
		if (ctl_is_nack(env)) {
			fprintf(stderr, "confdrctl: rms of %s: %s: %s\n", p, ctl_body_str(env, "reason"),
				ctl_body_str(env, "detail"));
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
			printf("%-8s %-20s %-8s %-6s %11s %9lld %11s %s\n", p, cli_jstr(m, "mcu"), cli_jstr(m, "room"),
			       cli_jstr(m, "state"), confs,
			       (long long)json_integer_value(json_object_get(m, "reserved_confs")), ports, caps);
		}
		json_decref(env);
	}
	if (json)
		cli_print_json(all, "[]");
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
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("mcu %s: bad option", drain ? "drain" : "undrain");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("mcu %s: one MCU expected", drain ? "drain" : "undrain");
	mcu = argv[optind];
	if (!who || !*who)
		who = getenv("USER");
	t = ctl_fetch_topology(c);
	if (platform && !cdr_topology_platform(t, platform)) {
		fprintf(stderr, "confdrctl: unknown platform %s\n", platform);
		cdr_topology_free(t);
		return EX_FAIL;
	}
	/* Without --platform: the rms that knows the MCU. */
	env = ctl_ask_each(
		c, t, platform, "rms", CDR_MQ_RMS_REQ_Q, "ctl_rms_drain_req",
		json_pack("{s:s, s:b, s:s}", "mcu", mcu, "drain", drain, "operator", who ? who : "confdrctl"),
		"unknown_mcu", &p, &ret);
	if (env)
		printf("mcu %s on %s: %s\n", mcu, p, ctl_body_str(env, "state"));
	else if (!platform && ret == EX_FAIL)
		fprintf(stderr, "confdrctl: no rms knows mcu %s\n", mcu);
	json_decref(env);
	cdr_topology_free(t);
	return ret;
}

int ctl_cmd_mcu_drain(struct ctl *c, int argc, char **argv)
{
	return cmd_mcu_drain_common(c, argc, argv, true);
}

int ctl_cmd_mcu_undrain(struct ctl *c, int argc, char **argv)
{
	return cmd_mcu_drain_common(c, argc, argv, false);
}
