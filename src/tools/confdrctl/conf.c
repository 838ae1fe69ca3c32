/* confdrctl: conf list | show | end, asked of css as the CM asks (its
 * requests on mau.conf.q). */
#include "confdrctl.h"

#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/topology.h>

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static json_t *css_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *type, json_t *body,
			int *ex)
{
	return ctl_bus_call(c, t, p, "css", CDR_MQ_MAU_CONF_Q, type, body, ex);
}

int ctl_cmd_conf_list(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "platform", required_argument, NULL, 'p' },
					      { "domain", required_argument, NULL, 'd' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	const char *platform = NULL, *domain = NULL;
	struct cdr_topology *t;
	json_t *all, *silent; /* silent: platforms whose css did not answer */
	bool json = false;
	int opt, ret = 0, ex;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "jp:d:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'p': platform = optarg; break;
		case 'd': domain = optarg; break;
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("conf list: bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("conf list: unexpected argument %s", argv[optind]);
	all = json_array();
	silent = json_object();
	t = ctl_fetch_topology(c);
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
		if (ctl_is_nack(env)) {
			fprintf(stderr, "confdrctl: css of %s, user domain %s: %s: %s\n", p, ud->id,
				ctl_body_str(env, "reason"), ctl_body_str(env, "detail"));
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
			cli_fmt_time(json_integer_value(json_object_get(conf, "planned_end")), end, sizeof(end));
			printf("%-16s %-12s %-15s %-18s %-8s %-8s %-20s %s\n", cli_jstr(conf, "e164"),
			       cli_jstr(conf, "user_domain"), cli_jstr(conf, "state"), cli_jstr(conf, "mcu"),
			       cli_jstr(conf, "room"), cli_jstr(conf, "host_platform"), end, cli_jstr(conf, "name"));
		}
		json_decref(env);
	}
	if (json)
		cli_print_json(all, "null");
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
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("conf %s: bad option", what);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("conf %s: one E164 expected", what);
	e164 = argv[optind];
	if (!cli_e164_ok(e164))
		return cli_usage_error("conf %s: an E164 is 3..32 digits, not \"%s\"", what, e164);
	t = ctl_fetch_topology(c);
	if (platform && !cdr_topology_platform(t, platform)) {
		fprintf(stderr, "confdrctl: unknown platform %s\n", platform);
		cdr_topology_free(t);
		return EX_FAIL;
	}
	env = ctl_ask_each(c, t, platform, "css", CDR_MQ_MAU_CONF_Q,
			   end ? "cm_mau_endconf_req" : "cm_mau_queryconf_req", json_pack("{s:s}", "e164", e164),
			   "unknown_conference", &p, &ret);
	if (!env) {
		if (!platform && ret == EX_FAIL)
			fprintf(stderr, "confdrctl: no css knows conference %s\n", e164);
	} else if (json) {
		cli_print_json(json_object_get(env, "body"), "null");
	} else if (end) {
		printf("conference %s ended by css of %s\n", e164, p);
	} else {
		printf("%-14s %s\n", "css", p);
		json_object_foreach(json_object_get(json_object_get(env, "body"), "conf"), key, v)
		{
			char *txt = json_dumps(v, JSON_ENCODE_ANY), when[40];

			if (json_is_integer(v) && (!strcmp(key, "start") || !strcmp(key, "planned_end"))) {
				cli_fmt_time(json_integer_value(v), when, sizeof(when));
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

int ctl_cmd_conf_show(struct ctl *c, int argc, char **argv)
{
	return cmd_conf_one(c, argc, argv, false);
}

int ctl_cmd_conf_end(struct ctl *c, int argc, char **argv)
{
	return cmd_conf_one(c, argc, argv, true);
}
