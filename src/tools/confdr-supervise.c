/* confdr-supervise: runs one daemon and starts it again when it dies, with
 * a back-off (1 s, doubling in a crash loop up to 60 s; a run of 60 s starts
 * over), as keepalived's parent process does. In production systemd does
 * this job (Restart=on-failure); the sandbox runs every daemon under it
 * (docs/sandbox.md, "Supervision").
 *
 * It stays in the foreground with the daemon as its child, in the same
 * process group (a power cut of the group kills both). SIGTERM and SIGINT
 * are passed on and end it once the daemon is gone; SIGHUP, SIGUSR1 and
 * SIGUSR2 are passed on. A daemon that exits 0 (stopped on purpose) or with
 * the prevent status (78: its configuration is wrong, starting it again
 * would fail again) is not started again: the supervisor ends with its
 * status. Every start and end is a line on stderr. */
#include "cli.h"
#include "supervise_policy.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *name = "daemon";

static void usage(FILE *f)
{
	fprintf(f, "usage: confdr-supervise [options] -- COMMAND [ARGS...]\n"
		   "\n"
		   "Runs COMMAND and starts it again when it dies: after 1 s, then twice as long after each\n"
		   "crash in a row, at most 60 s; a run of 60 s or more starts over from 1 s. Not started\n"
		   "again after exit 0 or the prevent status. SIGTERM, SIGINT: passed on, then the\n"
		   "supervisor ends with the command's status; SIGHUP, SIGUSR1, SIGUSR2: passed on.\n"
		   "\n"
		   "Options:\n"
		   "  --name NAME           the name in its log lines (default: the command's)\n"
		   "  --min-ms MS           first wait, 10..3600000 (1000)\n"
		   "  --max-ms MS           longest wait, >= --min-ms (60000)\n"
		   "  --stable-ms MS        a run this long starts the back-off over (60000)\n"
		   "  --prevent-status N    an exit with this status is not restarted, 1..255 (78)\n"
		   "  -h, --help            this text\n"
		   "\n"
		   "Exit status: the command's (128 + the signal when a signal ended it), 64 on bad usage,\n"
		   "71 when it cannot start the command at all.\n");
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "confdr-supervise[%s]: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static pid_t start(char **argv, const sigset_t *old)
{
	pid_t pid = fork();

	if (pid == 0) {
		sigprocmask(SIG_SETMASK, old, NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "confdr-supervise[%s]: cannot run %s: %s\n", name, argv[0], strerror(errno));
		_exit(71);
	}
	if (pid < 0)
		say("cannot fork: %s", strerror(errno));
	else
		say("started %s (pid %ld)", argv[0], (long)pid);
	return pid;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "name", required_argument, NULL, 'n' },
					      { "min-ms", required_argument, NULL, 'a' },
					      { "max-ms", required_argument, NULL, 'b' },
					      { "stable-ms", required_argument, NULL, 's' },
					      { "prevent-status", required_argument, NULL, 'p' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	struct sup_policy pol = { .min_ms = 1000, .max_ms = 60000, .stable_ms = 60000, .prevent_status = 78 };
	sigset_t set, old;
	int64_t v, started = 0, delay = 0, next_start = -1;
	bool stopping = false;
	int opt, crashes = 0, result = 0;
	pid_t child = -1;

	cli_setup("confdr-supervise", usage);
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': name = optarg; break;
		case 'a':
		case 'b':
		case 's':
			if (!cli_parse_int(optarg, 10, 3600000, &v))
				return cli_usage_error("%s wants milliseconds, 10..3600000", argv[optind - 1]);
			*(opt == 'a' ? &pol.min_ms : opt == 'b' ? &pol.max_ms : &pol.stable_ms) = v;
			break;
		case 'p':
			if (!cli_parse_int(optarg, 1, 255, &v))
				return cli_usage_error("--prevent-status wants 1..255");
			pol.prevent_status = (int)v;
			break;
		case 'h': usage(stdout); return 0;
		default: return cli_usage_error("see --help");
		}
	}
	if (optind >= argc)
		return cli_usage_error("no command (confdr-supervise [options] -- COMMAND [ARGS...])");
	if (pol.max_ms < pol.min_ms)
		return cli_usage_error("--max-ms is shorter than --min-ms");
	if (!strcmp(name, "daemon"))
		name = argv[optind];
	setvbuf(stderr, NULL, _IOLBF, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);
	next_start = mono_ms();
	for (;;) {
		siginfo_t si;
		struct timespec to = { 1, 0 };
		int sig, st;

		if (child < 0 && next_start >= 0 && mono_ms() >= next_start) {
			next_start = -1;
			started = mono_ms();
			if ((child = start(argv + optind, &old)) < 0)
				return 71;
		}
		if (child < 0 && next_start >= 0) {
			int64_t left = next_start - mono_ms();

			if (left < 0)
				left = 0;
			to.tv_sec = (time_t)(left / 1000);
			to.tv_nsec = (long)(left % 1000) * 1000000;
		}
		sig = sigtimedwait(&set, &si, &to);
		if (sig < 0)
			continue; /* a timeout (the next start) or EINTR */
		if (sig != SIGCHLD) {
			if (sig == SIGTERM || sig == SIGINT) {
				stopping = true;
				if (child < 0) {
					say("stopping (signal %d) while waiting to start again", sig);
					return result;
				}
			}
			if (child > 0)
				kill(child, sig);
			continue;
		}
		while (child > 0 && waitpid(child, &st, WNOHANG) == child) {
			int64_t ran = mono_ms() - started;
			bool exited = WIFEXITED(st);
			int code = exited ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;

			child = -1;
			result = code;
			if (!sup_restarts(&pol, stopping, exited, exited ? code : -1)) {
				say("%s ended (%s %d after %lld ms): not started again", argv[optind],
				    exited ? "exit" : "signal", exited ? code : code - 128, (long long)ran);
				return result;
			}
			delay = sup_next_delay(&pol, delay, ran);
			crashes = ran >= pol.stable_ms ? 1 : crashes + 1;
			next_start = mono_ms() + delay;
			say("%s died (%s %d after %lld ms, %d in a row): started again in %lld ms", argv[optind],
			    exited ? "exit" : "signal", exited ? code : code - 128, (long long)ran, crashes,
			    (long long)delay);
		}
	}
}
