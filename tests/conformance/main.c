/* confdr-conform: arguments, the order of the cases, the exit status. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <confdr/mq.h>

#include "cli.h"
#include "conform.h"

#define EX_USAGE_      64
#define EX_UNAVAILABLE 69

static void usage(FILE *f)
{
	fprintf(f, "Usage: confdr-conform --amqp URL --platform P [options] -- COMMAND [ARGS...]\n"
		   "\n"
		   "Checks an MCU against docs/protocol.md: it plays rms and css on the broker vhost of URL,\n"
		   "which it must own (nothing else may consume its rms.res.q or mau.cmu.q), starts COMMAND\n"
		   "as the MCU, and prints one TAP line per check (ok / not ok, with the protocol.md section\n"
		   "and, when broken, what was expected and what came), then a summary.\n"
		   "\n"
		   "The MCU: COMMAND must run one MCU of platform P that connects to URL, registers with rms,\n"
		   "and sends its conference list at start and at least every TIMEOUT/2 ms; it must accept 4\n"
		   "conferences of 4 ports. In COMMAND's arguments {amqp}, {platform} and {room} are replaced;\n"
		   "its environment has CONFDR_AMQP_URL and CONFDR_CONFORM_AMQP_URL set to URL. It runs in a\n"
		   "process group of its own, stopped with SIGTERM (SIGKILL after TIMEOUT) once in the middle\n"
		   "(the restart case) and at the end.\n"
		   "\n"
		   "Options:\n"
		   "  --amqp URL         the broker, amqp://user:pass@host:port/vhost (required)\n"
		   "  --platform P       the MCU's platform (required): checked in its registration; the\n"
		   "                     suite's css commands come from css-P\n"
		   "  --room ROOM        the MCU's room: checked in its registration when given\n"
		   "  --timeout MS       the bound of every wait, 1000..600000 (default 10000)\n"
		   "  --heartbeat MS     heartbeat_ms of the suite's registration ACKs, 100..10000 (default 300)\n"
		   "  --mcu-log FILE     the MCU's stdout and stderr, appended (default: the suite's stderr)\n"
		   "  -v, --verbose      every message sent and received, as TAP comments\n"
		   "  -h, --help         this text\n"
		   "\n"
		   "Exit status: 0 every check passed; 1 a check failed; 64 bad usage; 69 the broker could\n"
		   "not be reached or the command not started (nothing was checked).\n");
}

static int parse_args(int argc, char **argv, struct cf_opts *o)
{
	enum { O_AMQP = 256, O_PLATFORM, O_ROOM, O_TIMEOUT, O_HEARTBEAT, O_MCU_LOG };
	static const struct option longs[] = {
		{ "amqp", required_argument, NULL, O_AMQP },
		{ "platform", required_argument, NULL, O_PLATFORM },
		{ "room", required_argument, NULL, O_ROOM },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "heartbeat", required_argument, NULL, O_HEARTBEAT },
		{ "mcu-log", required_argument, NULL, O_MCU_LOG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cdr_mq_url url;
	char err[160];
	uint64_t v;
	int ch;

	o->timeout_ms = 10000;
	o->hb_ms = 300;
	while ((ch = getopt_long(argc, argv, "+vh", longs, NULL)) != -1) {
		switch (ch) {
		case O_AMQP: o->url = optarg; break;
		case O_PLATFORM: o->platform = optarg; break;
		case O_ROOM: o->room = optarg; break;
		case O_TIMEOUT:
			if (!cli_parse_uint(optarg, 1000, 600000, &v))
				return cli_usage_error("--timeout wants 1000..600000 ms, not \"%s\"", optarg);
			o->timeout_ms = (unsigned)v;
			break;
		case O_HEARTBEAT:
			if (!cli_parse_uint(optarg, 100, 10000, &v))
				return cli_usage_error("--heartbeat wants 100..10000 ms, not \"%s\"", optarg);
			o->hb_ms = (unsigned)v;
			break;
		case O_MCU_LOG: o->mcu_log = optarg; break;
		case 'v': o->verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: return cli_usage_error("bad option (see above)");
		}
	}
	if (!o->url || !o->platform || optind >= argc)
		return cli_usage_error("--amqp, --platform and a command after -- are required");
	if (cdr_mq_url_parse(o->url, &url, err, sizeof(err)) < 0)
		return cli_usage_error("--amqp: %s", err);
	cdr_mq_url_clear(&url);
	if (!cli_id_ok(o->platform) || (o->room && !cli_id_ok(o->room)))
		return cli_usage_error("--platform and --room want ids (letters, digits, '.', '_', '-')");
	o->cmd = argv + optind;
	return 0;
}

static void invariants_init(struct cf *c)
{
	c->inv_schema =
		(struct cf_inv){ .what = "every message it sent reads by protocol.md's schemas", .sect = "3, 7" };
	c->inv_from_mcu = (struct cf_inv){ .what = "every message it sent is a type an MCU sends, on that type's route",
					   .sect = "7" };
	c->inv_ctype =
		(struct cf_inv){ .what = "every message it sent has content_type application/json", .sect = "1" };
	c->inv_key = (struct cf_inv){ .what = "everything on cmu.mau.ex has its registered key as routing key",
				      .sect = "8.3" };
	c->inv_no_reply_to = (struct cf_inv){ .what = "nothing on cmu.mau.ex has reply_to", .sect = "7, 8.2" };
	c->inv_persistent =
		(struct cf_inv){ .what = "registrations, answers and notices are persistent (delivery_mode 2)",
				 .sect = "1" };
	c->inv_hb_seq = (struct cf_inv){ .what = "heartbeat seq increases within a registration", .sect = "8.9" };
	c->inv_hb_epoch = (struct cf_inv){ .what = "heartbeats carry the epoch of the registration's ACK",
					   .sect = "7 cmu_rms_heartbeat_ntf" };
	c->inv_boot = (struct cf_inv){ .what = "boot is the registered one in its heartbeats, lists and registrations",
				       .sect = "6" };
	c->inv_list_seq =
		(struct cf_inv){ .what = "list seq increases within an incarnation", .sect = "7 cmu_mau_conflist_ntf" };
}

int main(int argc, char **argv)
{
	static struct cf c; /* large; zeroed */
	pid_t pid;
	int st = 0;
	unsigned failed;

	signal(SIGPIPE, SIG_IGN);
	cli_setup("confdr-conform", NULL);
	if (parse_args(argc, argv, &c.o) != 0)
		return EX_USAGE;
	cf_set_verbose(c.o.verbose);
	invariants_init(&c);
	c.rms_epoch = 5;
	c.list_seq = c.hb_last_seq = -1;
	c.incarnation = 1;
	if (cf_bus_open(&c) < 0 || cf_bus_purge(&c) < 0) {
		const char *at = strrchr(c.o.url, '@'); /* not the password */

		printf("Bail out! the broker %s could not be reached, or its topology not declared\n",
		       at ? at + 1 : c.o.url);
		cf_bus_close(&c);
		return EX_UNAVAILABLE;
	}
	if ((pid = cf_mcu_start(&c)) < 0) {
		printf("Bail out! the command %s could not be started\n", c.o.cmd[0]);
		cf_bus_close(&c);
		return EX_UNAVAILABLE;
	}
	if (cf_case_registration(&c, true)) {
		cf_case_heartbeats(&c, 5);
		cf_case_first_list(&c);
		cf_case_commands(&c);
		cf_check(cf_mcu_alive(pid, &st), "8.2", "it still runs after the commands and malformed requests",
			 "it exited (wait status %d)", st);
		cf_case_reregistration(&c);
		cf_case_restart_stop(&c, pid);
		pid = cf_case_restart_start(&c);
	} else {
		cf_note("no registration: the other cases need the MCU's key and are not run");
	}
	if (pid > 0 && !cf_mcu_stop(&c, pid, c.o.timeout_ms, &st))
		cf_note("it did not stop within %u ms of SIGTERM: killed", c.o.timeout_ms);
	cf_report_invariants(&c);
	failed = cf_summary();
	cf_bus_close(&c);
	return failed ? 1 : 0;
}
