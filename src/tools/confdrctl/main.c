/* confdrctl: the operators' command line for a confdr service domain.
 *
 * Each subcommand is one entry of `commands` below: its words, its usage
 * line, what it does, and its function (one file per group of commands,
 * confdrctl.h). confdrctl runs its own event loop and waits for each
 * ZooKeeper answer in turn (every wait bounded), which keeps the commands
 * simple sequences. This file: the options, the usage, the dispatch. */
#include "confdrctl.h"

#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/zk.h>

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

struct command {
	const char *words[2]; /* e.g. {"topology", "load"}; second NULL if none */
	const char *usage;    /* arguments after the words */
	const char *help;
	int (*run)(struct ctl *c, int argc, char **argv);
};

static const struct command commands[] = {
	{ { "topology", "load" },
	  "TOPOLOGY.json [--endpoints ENDPOINTS.json] [--zk-ids FILE]",
	  "validate the files, then write /topology (and /endpoints, /replicas) nodes: created or\n"
	  "      overwritten, nodes of platforms/rooms/domains no longer in the files removed. As an\n"
	  "      authenticated user (--zk-user), new nodes are the user's, read by all, and with\n"
	  "      --zk-ids FILE ($CONFDR_ZK_IDS; lines \"css|rms|pms ID\", ID as user:base64(sha1(user:pw)))\n"
	  "      the daemons' own nodes are made for them: /election and /live of each platform and\n"
	  "      daemon, /state and /heartbeat for pms, and each Redis endpoint writable by css",
	  ctl_cmd_topology_load },
	{ { "topology", "show" },
	  "[--json]",
	  "read the topology back from ZooKeeper, validate and print it",
	  ctl_cmd_topology_show },
	{ { "status", NULL },
	  "[--json] [--wait SECONDS --expect N]",
	  "the daemons alive (/live/<platform>/<daemon>/<instance>), then platforms and rooms with their\n"
	  "      state, since when and why (/state), and each room's MCUs up/known and conferences\n"
	  "      running/capacity (from each rms); with --wait, only poll until N daemons report every\n"
	  "      connection up (exit 1 if not within SECONDS)",
	  ctl_cmd_status },
	{ { "mcu", "list" },
	  "[--platform P] [--room R] [--json]",
	  "the MCUs each platform's rms knows: state, conferences running/capacity, reserved, ports, caps",
	  ctl_cmd_mcu_list },
	{ { "mcu", "drain" },
	  "MCU [--platform P]",
	  "no new conferences on MCU (running ones stay); without --platform, the rms that knows it",
	  ctl_cmd_mcu_drain },
	{ { "mcu", "undrain" }, "MCU [--platform P]", "take MCU out of drain", ctl_cmd_mcu_undrain },
	{ { "room", "switch" },
	  "ROOM --to backup|normal [--force] [--reason TEXT] [--operator WHO] [--json]",
	  "manual DR switch of a room (through its platform's pms): backup = abnormal, its conferences\n"
	  "      move to its backup rooms; normal = switch back (refused while its checks fail, unless --force)",
	  ctl_cmd_room_switch },
	{ { "platform", "switch" },
	  "PLATFORM --to backup|normal [--force] [--reason TEXT] [--operator WHO] [--json]",
	  "manual DR switch of a platform (through its backup platform's pms): backup = down, its user\n"
	  "      domains served by the backup platform; normal = fail back (refused while its pms is not\n"
	  "      live or its main room fails, unless --force)",
	  ctl_cmd_platform_switch },
	{ { "platform", "failback" },
	  "PLATFORM [--force] [--operator WHO] [--sync-timeout SECONDS]",
	  "after a takeover (its Redis replica promoted by the backup's css): brings PLATFORM's domains\n"
	  "      home with its css running: its Redis replicates the promoted one, the fail-back is marked on\n"
	  "      its Redis endpoint, PLATFORM switched to normal (the backup's css stops serving it), the\n"
	  "      writes settle, the roles swap back, the endpoint names its Redis again, its css serves; each\n"
	  "      step printed with its time, each wait bounded by --sync-timeout (60 s). Meanwhile its domains\n"
	  "      get platform_down. Run again after a failure: it goes on where it stopped. --force: the\n"
	  "      switch despite pms's refusals (PLATFORM's pms not live, its main room failing), and despite\n"
	  "      a live css of PLATFORM that does not wait for its Redis (an older version)",
	  ctl_cmd_platform_failback },
	{ { "conf", "list" },
	  "[--platform P] [--domain UD] [--json]",
	  "the conferences css knows (not ended), asked as the CM asks (cm_mau_listconf_req) for each user\n"
	  "      domain of the platform(s) (or --domain alone): E164, domain, state, MCU, room, host platform,\n"
	  "      planned end, name",
	  ctl_cmd_conf_list },
	{ { "conf", "show" },
	  "E164 [--platform P] [--json]",
	  "one conference's record (cm_mau_queryconf_req); without --platform, each css until one knows it",
	  ctl_cmd_conf_show },
	{ { "conf", "end" },
	  "E164 [--platform P] [--json]",
	  "end a conference as the CM would (cm_mau_endconf_req); without --platform, the css that knows it",
	  ctl_cmd_conf_end },
	{ { "drill", "snapshot" },
	  "--sims DIR --pids DIR [--prefix P] [--home FILE] --out FILE [--expect ACKED.json]",
	  "DR drills (docs/drills.md): what the live simulators run, from their state files DIR/P*.json\n"
	  "      (P default drill-) of the simulators alive (DIR/<name>.pid of --pids names a running process,\n"
	  "      the one the state file names), as [{e, m, s, r, p, h}] (E164, MCU, started_ms, room,\n"
	  "      platform, home platform from --home {E164: platform}) to FILE; with --expect,\n"
	  "      exit 1 unless every E164 of ACKED.json runs",
	  ctl_cmd_drill_snapshot },
	{ { "drill", "verify" },
	  "--before FILE --sims DIR --pids DIR [--prefix P] [--home FILE] MYSQL [--room ROOM] [--dest REGEX]\n"
	  "      [--now FILE] [--settle [--timeout S] [--hold S] [--every MS]] --json FILE",
	  "DR drills: each conference of the snapshot FILE judged against the live simulators now and the\n"
	  "      rows its home platform's MySQL closed (confdr_<home>.confinfo): running_before, running_after,\n"
	  "      running_once, restored, ended_on_purpose, lost, running_but_closed, duplicates, stuck_in_room\n"
	  "      (still in ROOM), misplaced (restored to a room not matching REGEX), restored_to, examples,\n"
	  "      restored_started, settled, settled_since_ms (wall ms), checks, to --json FILE (the last\n"
	  "      snapshot to --now FILE). Settled: nothing lost, running twice, closed but running or in ROOM.\n"
	  "      With --settle: checked every MS ms (1000) until settled for S s in a row (--hold, 3), at most\n"
	  "      --timeout s (60), a progress line every 5 s; without it, one check (settled:\n"
	  "      calm now). Exit 0 settled, 1 not",
	  ctl_cmd_drill_verify },
	{ { "drill", "compare" },
	  "--redis P=HOST:PORT[,HOST:PORT] [--redis ...] MYSQL [--retry S] --json FILE",
	  "DR drills: for each platform P, the Redis that is master now (the first, or the second, its\n"
	  "      replica, when only that one is): its conf:* hashes not ended against the rows of\n"
	  "      confdr_P.confinfo with end_ms NULL (E164s on one side only, or with another MCU); again every\n"
	  "      second for S s (10) while they differ. [{platform, redis, redis_open, mysql_open,\n"
	  "      only_in_redis, only_in_mysql, different_mcu, mismatches, examples}] to FILE; exit 0 when they\n"
	  "      agree, 1 when not.  MYSQL: --mysql-socket PATH | --mysql HOST:PORT, or\n"
	  "      one per platform: --mysql-socket PLATFORM=PATH (repeatable), [--mysql-user U] (root)\n"
	  "      [--mysql-password P]. PLATFORM=none: that MariaDB is down (a power cut): verify counts none\n"
	  "      of the platform's conferences closed, compare refuses the platform",
	  ctl_cmd_drill_compare },
	{ { NULL, NULL }, NULL, NULL, NULL },
};

void ctl_usage(FILE *f)
{
	fprintf(f, "usage: confdrctl [--zk HOSTS] [--chroot PATH] [--timeout SECONDS] [--tls-ca FILE] [--zk-user USER "
		   "--zk-password-file FILE] COMMAND ...\n\n"
		   "Options:\n"
		   "  --zk HOSTS         ZooKeeper servers, host:port[,host:port...]\n"
		   "                     (default: $CONFDR_ZK, else " CLI_DEFAULT_ZK ")\n"
		   "  --chroot PATH      the service domain's root node (default: $CONFDR_ZK_CHROOT, "
		   "else " CLI_DEFAULT_CHROOT ")\n"
		   "  --timeout SECONDS  how long to wait to connect and for each answer (default 5)\n"
		   "  --tls-ca FILE      CA bundle that signed the brokers' and MariaDB servers' certificates:\n"
		   "                     their links use TLS and check them (default: $CONFDR_TLS_CA; none: plain)\n"
		   "  --zk-user USER     authenticate to ZooKeeper as USER (digest; default: $CONFDR_ZK_USER);\n"
		   "                     writing the topology needs the deploy user\n"
		   "  --zk-password-file FILE\n"
		   "                     its password, first line of FILE, not readable by others\n"
		   "                     (default: $CONFDR_ZK_PASSWORD_FILE)\n"
		   "  -h, --help         this text\n\n"
		   "Commands:\n");
	for (const struct command *c = commands; c->run; c++) {
		fprintf(f, "  %s%s%s %s\n", c->words[0], c->words[1] ? " " : "", c->words[1] ? c->words[1] : "",
			c->usage);
		fprintf(f, "      %s\n", c->help);
	}
	fprintf(f,
		"\nThe broker of each platform is found in ZooKeeper. Its user is $CONFDR_AMQP_USER (default ops, the\n"
		"operators' role: docs/security.md); the password is read from "
		"$CONFDR_AMQP_SECRETS/amqp-USER.password\n"
		"if that exists, else from the file $CONFDR_AMQP_PASSWORD_FILE (others must not be able to read\n"
		"either), else taken from $CONFDR_AMQP_PASSWORD (default guest).\n"
		"\nExit status: 0 done, 1 failed (or --wait timed out, or refused: unknown MCU, room, platform,\n"
		"a switch refused by pms, a conference no css knows or css refused; drill: not settled, Redis and\n"
		"MySQL differ, an E164 of --expect not running), 64 bad usage, 65 bad input file, 69 ZooKeeper,\n"
		"a broker, an rms, a pms, a css (drill: MariaDB or a Redis) unreachable (status: some rms did\n"
		"not answer; conf list: some css did not answer; the rest is printed).\n");
}

/* ---- waiting on the loop ---- */

static void on_timer(void *arg)
{
	struct ctl *c = arg;

	c->timed_out = true;
	cdr_loop_stop(c->loop);
}

/* Runs the loop until *done or timeout_ms; true if done. */
bool ctl_run_until(struct ctl *c, const bool *done, uint64_t timeout_ms)
{
	c->timed_out = false;
	cdr_timer_start(c->timer, timeout_ms, false);
	while (!*done && !c->timed_out)
		if (cdr_loop_run(c->loop) < 0)
			break;
	cdr_timer_stop(c->timer);
	return *done;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "zk", required_argument, NULL, 'z' },	     { "chroot", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' }, { "tls-ca", required_argument, NULL, 'T' },
		{ "zk-user", required_argument, NULL, 'u' }, { "zk-password-file", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },	     { 0 }
	};
	struct ctl c = { .timeout_s = 5 };
	const struct command *cmd;
	int opt, ret, nwords;
	int64_t v;

	cli_setup("confdrctl", ctl_usage);
	c.hosts = cli_env("CONFDR_ZK", CLI_DEFAULT_ZK);
	c.chroot = cli_env("CONFDR_ZK_CHROOT", CLI_DEFAULT_CHROOT);
	c.zk_user = cli_env("CONFDR_ZK_USER", "");
	c.zk_password_file = cli_env("CONFDR_ZK_PASSWORD_FILE", "");
	c.zk_ids = cli_env("CONFDR_ZK_IDS", "");

	while ((opt = getopt_long(argc, argv, "+z:c:t:T:u:p:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'z': c.hosts = optarg; break;
		case 'c': c.chroot = optarg; break;
		case 'u': c.zk_user = optarg; break;
		case 'p': c.zk_password_file = optarg; break;
		case 't':
			if (!cli_parse_int(optarg, 1, 3600, &v))
				return cli_usage_error("--timeout wants seconds (1..3600), not \"%s\"", optarg);
			c.timeout_s = (unsigned)v;
			break;
		case 'T': cli_set_tls_ca(optarg); break;
		case 'h': ctl_usage(stdout); return 0;
		default: return cli_usage_error("bad option");
		}
	}
	if (c.chroot[0] != '/')
		return cli_usage_error("--chroot must be an absolute path, not \"%s\"", c.chroot);
	if (optind >= argc)
		return cli_usage_error("no command");
	for (cmd = commands; cmd->run; cmd++) {
		if (strcmp(cmd->words[0], argv[optind]) != 0)
			continue;
		if (!cmd->words[1])
			break;
		if (optind + 1 < argc && strcmp(cmd->words[1], argv[optind + 1]) == 0)
			break;
	}
	if (!cmd->run)
		return cli_usage_error("unknown command \"%s%s%s\"", argv[optind], optind + 1 < argc ? " " : "",
				       optind + 1 < argc ? argv[optind + 1] : "");
	nwords = cmd->words[1] ? 2 : 1;

	/* The library logs at debug only; confdrctl says what failed itself. */
	cdr_log_setup("confdrctl", "-", getenv("CONFDR_DEBUG") ? CDR_LOG_DEBUG : CDR_LOG_ERR, false);
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
