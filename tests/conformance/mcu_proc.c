/* The MCU under test: a command the suite starts and stops. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <confdr/loop.h>

#include "conform.h"

/* arg with every {amqp}, {platform}, {room} replaced; malloc'd. */
static char *substitute(const struct cf_opts *o, const char *arg)
{
	static const char *const names[] = { "{amqp}", "{platform}", "{room}" };
	const char *vals[] = { o->url, o->platform, o->room ? o->room : "" };
	size_t len = strlen(arg) + 1;
	char *out, *w;

	for (size_t i = 0; i < 3; i++)
		for (const char *p = strstr(arg, names[i]); p; p = strstr(p + 1, names[i]))
			len += strlen(vals[i]);
	if (!(out = malloc(len)))
		return NULL;
	for (w = out; *arg;) {
		size_t i;

		for (i = 0; i < 3; i++)
			if (!strncmp(arg, names[i], strlen(names[i])))
				break;
		if (i < 3) {
			w = stpcpy(w, vals[i]);
			arg += strlen(names[i]);
		} else {
			*w++ = *arg++;
		}
	}
	*w = '\0';
	return out;
}

pid_t cf_mcu_start(struct cf *c)
{
	size_t n = 0;
	char **argv;
	pid_t pid;

	while (c->o.cmd[n])
		n++;
	if (!(argv = calloc(n + 1, sizeof(*argv))))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!(argv[i] = substitute(&c->o, c->o.cmd[i])))
			goto fail;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0); /* its children are stopped with it */
		if (c->o.mcu_log) {
			int fd = open(c->o.mcu_log, O_WRONLY | O_CREAT | O_APPEND, 0644);

			if (fd < 0) {
				fprintf(stderr, "confdr-conform: %s: %s\n", c->o.mcu_log, strerror(errno));
				_exit(127);
			}
			dup2(fd, 1);
			dup2(fd, 2);
		} else {
			dup2(2, 1); /* stdout is the suite's TAP output */
		}
		setenv("CONFDR_AMQP_URL", c->o.url, 1);
		setenv("CONFDR_CONFORM_AMQP_URL", c->o.url, 1);
		execvp(argv[0], argv);
		fprintf(stderr, "confdr-conform: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid > 0)
		setpgid(pid, pid); /* also here: no race with the first kill */
	cf_note("started the MCU (pid %d): %s%s", (int)pid, argv[0], n > 1 ? " ..." : "");
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	return pid;
fail:
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	return -1;
}

bool cf_mcu_alive(pid_t pid, int *status)
{
	return pid > 0 && waitpid(pid, status, WNOHANG) == 0;
}

bool cf_mcu_stop(struct cf *c, pid_t pid, unsigned ms, int *status)
{
	uint64_t end = cdr_now_ms() + ms;

	*status = 0;
	if (pid <= 0)
		return false;
	if (kill(-pid, SIGTERM) < 0)
		kill(pid, SIGTERM);
	while (cdr_now_ms() < end) {
		pid_t w = waitpid(pid, status, WNOHANG);

		if (w == pid || (w < 0 && errno == ECHILD)) { /* ECHILD: cf_mcu_alive reaped it */
			kill(-pid, SIGKILL);		      /* what it left of its group */
			return true;
		}
		cf_run_for(c, 20); /* the suite keeps consuming meanwhile */
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return false;
}
