/* The common life of a daemon: arguments, config, loop, signals, the
 * ZooKeeper session and the connections found through it, the election and
 * the liveness node. See include/confdr/daemon.h. */
#include <confdr/daemon.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <confdr/failpoint.h>
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/zk.h>

#include "daemon-internal.h"

#define EXIT_USAGE  64
#define EXIT_CONFIG 78

const char *const daemon_link_names[LINK_COUNT] = { "zookeeper", "amqp", "redis", "mysql" };

static void usage(const struct cdr_daemon_ops *ops, FILE *out)
{
	fprintf(out,
		"Usage: confdr-%s [-c FILE] [-t] [--help-config] [--version]\n"
		"%s\n"
		"\n"
		"  -c, --config FILE   configuration file (default /etc/confdr/%s.conf)\n"
		"  -t, --test          check the configuration, print every error, exit\n"
		"      --help-config   list every configuration key with its default\n"
		"  -V, --version       print the version\n"
		"  -h, --help          this text\n"
		"\n"
		"Runs in the foreground and logs to stderr (systemd/journald). Signals:\n"
		"SIGTERM/SIGINT stop gracefully (a second one forces it), SIGHUP reloads\n"
		"the configuration if the new file is valid.\n"
		"Exit codes: 0 stopped, 1 runtime failure, 64 usage, 78 configuration.\n",
		ops->name, ops->summary, ops->name);
}

static const char *type_name(enum cdr_conf_type t)
{
	switch (t) {
	case CDR_CONF_STR: return "string";
	case CDR_CONF_INT: return "integer";
	case CDR_CONF_BOOL: return "bool";
	case CDR_CONF_MS: return "duration";
	case CDR_CONF_ENUM: return "choice";
	case CDR_CONF_GROUP: return "sections";
	}
	return "?";
}

static void help_key(const char *section, const struct cdr_conf_key *k)
{
	printf("[%s] %s (%s", section, k->name, type_name(k->type));
	if (k->type == CDR_CONF_ENUM) {
		for (int i = 0; k->choices[i]; i++)
			printf("%s%s", i ? "|" : ": ", k->choices[i]);
	} else if ((k->type == CDR_CONF_INT) && (k->min || k->max)) {
		printf(" %" PRId64 "..%" PRId64, k->min, k->max);
	} else if ((k->type == CDR_CONF_MS) && (k->min || k->max)) {
		printf(" %" PRId64 "ms..%" PRId64 "ms", k->min, k->max);
	}
	printf(") default: %s\n    %s\n", k->def ? (*k->def ? k->def : "(empty)") : "(required)",
	       k->help ? k->help : "");
}

static void help_config(const struct cdr_conf_key *const *tables)
{
	for (size_t t = 0; tables[t]; t++) {
		for (const struct cdr_conf_key *k = tables[t]; k->name; k++) {
			char sec[160];

			if (k->type != CDR_CONF_GROUP) {
				help_key(k->section, k);
				continue;
			}
			printf("[%s NAME] (any number of sections, each NAME once)\n    %s\n", k->section,
			       k->help ? k->help : "");
			snprintf(sec, sizeof(sec), "%s NAME", k->section);
			for (const struct cdr_conf_key *g = k->group; g->name; g++)
				help_key(sec, g);
		}
	}
}

/* Loads path into a fresh conf struct of ops->conf_size; prints errors. */
static int load_conf(const struct cdr_daemon_ops *ops, const struct cdr_conf_key *const *tables, const char *path,
		     void **ret, bool to_log)
{
	struct cdr_conf_errors errs = { 0 };
	void *conf = calloc(1, ops->conf_size);
	int r;

	if (!conf)
		return -ENOMEM;
	r = cdr_conf_load(path, tables, conf, &errs);
	if (r < 0) {
		for (size_t i = 0; i < errs.n; i++) {
			if (to_log)
				cdr_err("config: %s", errs.lines[i]);
			else
				fprintf(stderr, "%s\n", errs.lines[i]);
		}
		cdr_conf_errors_clear(&errs);
		free(conf);
		return r;
	}
	{
		char why[PATH_MAX + 256];
		bool warn = false;

		if (cdr_daemon_conf_secrets(conf, path, &warn, why, sizeof(why)) < 0 ||
		    cdr_daemon_conf_listen(conf, why, sizeof(why)) < 0 ||
		    (ops->check_conf && ops->check_conf(conf, path, why, sizeof(why)) < 0)) {
			if (to_log)
				cdr_err("config: %s: %s", path, why);
			else
				fprintf(stderr, "%s: %s\n", path, why);
			cdr_conf_release(tables, conf);
			free(conf);
			return -EINVAL;
		}
		if (warn && to_log)
			cdr_warn("config: %s holds a password and others may read it: chmod o-r it, or move the "
				 "password to password_file",
				 path);
		else if (warn)
			fprintf(stderr,
				"%s: warning: holds a password and others may read it: chmod o-r it, or move the "
				"password to password_file\n",
				path);
	}
	*ret = conf;
	return 0;
}

static void free_conf(struct cdr_daemon *d, void *conf)
{
	if (!conf)
		return;
	cdr_conf_release(d->tables, conf);
	free(conf);
}

/* ---- liveness node ---- */

static char *live_json(struct cdr_daemon *d)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "daemon", json_string(d->ops->name));
	json_object_set_new(o, "platform", json_string(d->conf->platform));
	json_object_set_new(o, "instance", json_string(d->instance));
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "role", json_string(d->active ? "active" : "standby"));
	json_object_set_new(o, "ready", json_boolean(d->has_state));
	json_object_set_new(o, "epoch", json_integer(d->epoch));
	for (int i = LINK_AMQP; i < LINK_COUNT; i++) {
		const char *st = !d->link_used[i] ? "unused" : d->link_up[i] ? "up" : "down";

		json_object_set_new(o, daemon_link_names[i], json_string(st));
	}
	json_object_set_new(o, "zookeeper", json_string("up"));
	if (d->stats)
		json_object_set_new(o, "stats", json_loads(d->stats, 0, NULL));
	json_object_set_new(o, "senders_refused", json_integer((json_int_t)d->senders_refused));
	json_object_set_new(o, "since", json_integer((json_int_t)d->started_wall_ms));
	if (d->role_wall_ms) /* when it became active, or standby again */
		json_object_set_new(o, "role_since", json_integer((json_int_t)d->role_wall_ms));
	json_object_set_new(o, "updated", json_integer((json_int_t)cdr_wall_ms()));
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

uint64_t cdr_daemon_sender_refused(struct cdr_daemon *d)
{
	uint64_t k = ++d->senders_refused;

	daemon_live_changed(d); /* written at most every 200 ms: a flood of forgeries is not a flood of writes */
	return k;
}

void cdr_daemon_set_stats(struct cdr_daemon *d, json_t *stats)
{
	char *txt = stats ? json_dumps(stats, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(stats);
	if ((!txt && !d->stats) || (txt && d->stats && !strcmp(txt, d->stats))) {
		free(txt);
		return;
	}
	free(d->stats);
	d->stats = txt;
	daemon_live_changed(d);
}

/* Liveness changes are coalesced: at most one write per 200 ms. */
void daemon_live_changed(struct cdr_daemon *d)
{
	if (!cdr_timer_pending(d->live_timer))
		cdr_timer_start(d->live_timer, 200, false);
}

void daemon_set_link(struct cdr_daemon *d, enum daemon_link link, bool up, const char *why)
{
	if (d->link_up[link] == up && d->link_known[link])
		return;
	d->link_known[link] = true;
	d->link_up[link] = up;
	if (up && d->link_was_up[link])
		d->reconnects[link]++;
	if (up)
		d->link_was_up[link] = true;
	if (up)
		cdr_notice("%s: connected%s%s", daemon_link_names[link], why && *why ? ": " : "", why ? why : "");
	else
		cdr_warn("%s: connection down%s%s; re-connecting with back-off", daemon_link_names[link],
			 why && *why ? ": " : "", why ? why : "");
	if (d->ops->on_link)
		d->ops->on_link(d, d->server, daemon_link_names[link], up);
	if (link == LINK_AMQP && up)
		daemon_take_queues(d);
	daemon_live_changed(d);
}

/* ---- what the active instance takes from the broker ---- */

void daemon_take_queues(struct cdr_daemon *d)
{
	const struct cdr_daemon_queue *q;
	unsigned i;
	int r;

	if (!d->ops->queues || !d->active || d->suspect || !d->mq || d->stopping)
		return;
	for (i = 0, q = d->ops->queues; q->fn; i++, q++) {
		if (q->when > d->ready)
			continue;
		if (q->exchange) {
			if (d->subscribed & (1u << i))
				continue;
			if ((r = cdr_mq_subscribe(d->mq, q->exchange, "", q->fn, d->server)) < 0)
				cdr_err("cannot subscribe to %s: %s", q->exchange, strerror(-r));
			else
				d->subscribed |= 1u << i;
		} else if ((r = cdr_mq_consume(d->mq, q->queue, q->fn, d->server)) < 0 && r != -EALREADY) {
			cdr_err("cannot consume %s: %s", q->queue,
				strerror(-r)); /* -EALREADY: consumed on this handle */
		}
	}
}

/* Standby: the work queues go to the active instance (subscriptions stay). */
void daemon_drop_queues(struct cdr_daemon *d)
{
	const struct cdr_daemon_queue *q;

	if (!d->ops->queues || !d->mq)
		return;
	for (q = d->ops->queues; q->fn; q++)
		if (q->queue)
			cdr_mq_cancel(d->mq, q->queue);
}

void cdr_daemon_ready(struct cdr_daemon *d, enum cdr_ready r)
{
	if (!d->active)
		return;
	if (r > d->ready)
		d->ready = r;
	daemon_take_queues(d);
}

/* ---- signals and stop ---- */

/* The deadline of a graceful stop. Draining runs on the loop thread and may
 * block in a client's _free (a MariaDB query up to its read timeout), so the
 * deadline cannot be a loop timer: SIGALRM ends the process from outside. */
static void on_deadline(int signo)
{
	static const char msg[] = "confdr: graceful stop did not finish within [daemon] shutdown_timeout; exiting\n";
	ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);

	(void)n;
	_exit(1);
}

void cdr_daemon_stop(struct cdr_daemon *d)
{
	struct sigaction sa = { 0 };

	if (d->stopping)
		return;
	d->stopping = true;
	cdr_notice("stopping (deadline %" PRIu64 " ms)", d->conf->shutdown_timeout_ms);
	daemon_notify_stopping(d);
	sa.sa_handler = on_deadline;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned)((d->conf->shutdown_timeout_ms + 999) / 1000));
	/* Step down, cancel consumers, drain confirms and writes (each module's
	 * _free is bounded), close the ZooKeeper session; then the loop ends. */
	daemon_links_stop(d);
	cdr_loop_stop(d->loop);
}

static void on_term(int signo, void *arg)
{
	struct cdr_daemon *d = arg;

	if (d->stopping) {
		cdr_err("second %s: exiting at once", strsignal(signo));
		_exit(1);
	}
	cdr_notice("%s received", strsignal(signo));
	cdr_daemon_stop(d);
}

static void on_hup(int signo, void *arg)
{
	struct cdr_daemon *d = arg;
	struct cdr_daemon_conf *nc = NULL, *oc = d->conf;

	cdr_notice("SIGHUP: reloading %s", d->conf_path);
	if (load_conf(d->ops, d->tables, d->conf_path, (void **)&nc, true) < 0) {
		cdr_err("reload refused: %s is not valid; keeping the running configuration", d->conf_path);
		return;
	}
	/* What identifies the daemon or its session needs a restart. */
	if (strcmp(nc->platform, oc->platform) || strcmp(nc->zk_hosts, oc->zk_hosts) ||
	    strcmp(nc->zk_chroot, oc->zk_chroot) || strcmp(nc->instance, oc->instance))
		cdr_warn("reload: [daemon] platform/instance and [zookeeper] hosts/chroot take effect at restart");
	oc->log_level = nc->log_level;
	oc->log_timestamps = nc->log_timestamps;
	oc->shutdown_timeout_ms = nc->shutdown_timeout_ms;
	if (strcmp(nc->metrics_listen, oc->metrics_listen) || nc->metrics_remote != oc->metrics_remote)
		cdr_warn("reload: [daemon] metrics_listen/metrics_remote take effect at restart");
	cdr_log_setup(d->ops->name, oc->platform, (enum cdr_log_level)oc->log_level, oc->log_timestamps);
	if (d->ops->reload)
		d->ops->reload(d, d->server, nc);
	free_conf(d, nc);
	cdr_notice("reload done: log_level=%s", cdr_log_level_name((enum cdr_log_level)oc->log_level));
}

/* ---- main ---- */

int cdr_daemon_main(const struct cdr_daemon_ops *ops, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' }, { "test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },	    { "version", no_argument, NULL, 'V' },
		{ "help-config", no_argument, NULL, 'K' },  { NULL, 0, NULL, 0 },
	};
	struct cdr_daemon *d;
	char default_path[256];
	const char *path;
	bool test_only = false, list_keys = false;
	int c, code;

	d = calloc(1, sizeof(*d));
	if (!d)
		return 1;
	d->ops = ops;
	d->tables[0] = cdr_daemon_conf_keys;
	d->tables[1] = ops->keys;
	snprintf(default_path, sizeof(default_path), "/etc/confdr/%s.conf", ops->name);
	path = default_path;
	while ((c = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 't': test_only = true; break;
		case 'K': list_keys = true; break;
		case 'h':
			usage(ops, stdout);
			free(d);
			return 0;
		case 'V':
			printf("confdr-%s %s\n", ops->name, CONFDR_VERSION);
			free(d);
			return 0;
		default:
			usage(ops, stderr);
			free(d);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "confdr-%s: unexpected argument '%s'\n", ops->name, argv[optind]);
		usage(ops, stderr);
		free(d);
		return EXIT_USAGE;
	}
	if (list_keys) {
		help_config(d->tables);
		free(d);
		return 0;
	}
	d->conf_path = path;
	if (load_conf(ops, d->tables, path, (void **)&d->conf, false) < 0) {
		fprintf(stderr, "confdr-%s: %s: configuration refused\n", ops->name, path);
		free(d);
		return EXIT_CONFIG;
	}
	if (test_only) {
		printf("confdr-%s: %s: configuration ok\n", ops->name, path);
		free_conf(d, d->conf);
		free(d);
		return 0;
	}
	code = daemon_run(d);
	free_conf(d, d->conf);
	free(d);
	return code;
}

int daemon_run(struct cdr_daemon *d)
{
	const struct cdr_daemon_conf *cf = d->conf;
	char host[128];
	int r;

	cdr_log_setup(d->ops->name, cf->platform, (enum cdr_log_level)cf->log_level, cf->log_timestamps);
	if (cdr_failpoints_init() < 0)
		return EXIT_CONFIG; /* logged; a test's typo, never a silent no-op */
	if (*cf->instance) {
		snprintf(d->instance, sizeof(d->instance), "%s", cf->instance);
	} else {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "host");
		host[sizeof(host) - 1] = '\0';
		snprintf(d->instance, sizeof(d->instance), "%s-%d", host, (int)getpid());
	}
	d->started_wall_ms = cdr_wall_ms();
	d->link_used[LINK_AMQP] = true;
	d->link_used[LINK_REDIS] = d->ops->uses_redis;
	d->link_used[LINK_MYSQL] = d->ops->uses_mysql;
	d->exit_code = 0;

	signal(SIGPIPE, SIG_IGN);
	if ((r = cdr_loop_new(&d->loop)) < 0) {
		cdr_err("cannot create the event loop: %s", strerror(-r));
		return 1;
	}
	if (cdr_loop_on_signal(d->loop, SIGTERM, on_term, d) < 0 ||
	    cdr_loop_on_signal(d->loop, SIGINT, on_term, d) < 0 || cdr_loop_on_signal(d->loop, SIGHUP, on_hup, d) < 0 ||
	    cdr_timer_new(d->loop, daemon_live_write, d, &d->live_timer) < 0) {
		cdr_err("cannot set up signals and timers");
		d->exit_code = 1;
		goto out;
	}
	cdr_notice("starting: instance %s, config %s, pid %d", d->instance, d->conf_path, (int)getpid());
	if ((r = daemon_metrics_new(d)) < 0) {
		cdr_err("cannot set up the metrics: %s", strerror(-r));
		d->exit_code = 1;
		goto out;
	}
	if (d->ops->init && (r = d->ops->init(d, &d->server)) < 0) {
		cdr_err("init failed: %s", strerror(-r));
		d->exit_code = 1;
		goto out;
	}
	if ((r = daemon_links_start(d)) < 0 || (r = daemon_stall_start(d)) < 0 || (r = daemon_notify_start(d)) < 0) {
		cdr_err("cannot start: %s", strerror(-r));
		d->exit_code = 1;
		goto out;
	}
	daemon_metrics_start(d);
	if (cdr_loop_run(d->loop) < 0) {
		cdr_err("event loop failed");
		d->exit_code = 1;
	}
out:
	daemon_notify_free(d);
	daemon_stall_free(d);
	daemon_links_free(d);
	if (d->ops->free && d->server)
		d->ops->free(d->server);
	d->server = NULL;
	daemon_metrics_free(d);
	d->live_timer = cdr_timer_free(d->live_timer);
	d->loop = cdr_loop_free(d->loop);
	free(d->stats);
	d->stats = NULL;
	cdr_notice("stopped (exit %d)", d->exit_code);
	return d->exit_code;
}

/* ---- accessors ---- */

struct cdr_loop *cdr_daemon_loop(struct cdr_daemon *d)
{
	return d->loop;
}
const void *cdr_daemon_conf(struct cdr_daemon *d)
{
	return d->conf;
}
struct cdr_zk *cdr_daemon_zk(struct cdr_daemon *d)
{
	return d->zk;
}
struct cdr_mq *cdr_daemon_mq(struct cdr_daemon *d)
{
	return d->mq;
}
struct cdr_redis *cdr_daemon_redis(struct cdr_daemon *d)
{
	return d->redis;
}
struct cdr_redis *cdr_daemon_redis_wait(struct cdr_daemon *d)
{
	return d->redis_wait;
}
struct cdr_db *cdr_daemon_db(struct cdr_daemon *d)
{
	return d->db;
}
bool cdr_daemon_active(struct cdr_daemon *d)
{
	return d->active;
}
int64_t cdr_daemon_epoch(struct cdr_daemon *d)
{
	return d->epoch;
}

bool cdr_daemon_link_up(struct cdr_daemon *d, const char *link)
{
	for (int i = 0; i < LINK_COUNT; i++)
		if (strcmp(daemon_link_names[i], link) == 0)
			return d->link_up[i];
	return false;
}

char *daemon_live_json(struct cdr_daemon *d)
{
	return live_json(d);
}
