/* pms's health probes: non-blocking TCP connects and commands with timeouts. */
#include "probe.h"

#include <confdr/loop.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define REAP_EVERY_MS 20

struct pms_probe {
	struct cdr_loop *loop;
	pms_probe_fn fn;
	void *arg;
	uint64_t timeout_ms;
	int fd;
	struct cdr_io *io;
	struct cdr_timer *deadline, *reap;
	pid_t pid; /* command: > 0 until reaped */
	char out[200];
	size_t outlen;
	bool eof;
	int immediate; /* TCP decided in connect(): -1 connected, else errno */
};

int pms_probe_parse_addr(const char *text, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(text, ':');
	unsigned char buf[sizeof(struct in6_addr)];
	char h[64], *end;
	long p;
	size_t n;

	if (!colon || colon == text)
		return -EINVAL;
	n = (size_t)(colon - text);
	if (text[0] == '[' && n >= 2 && text[n - 1] == ']') {
		text++;
		n -= 2;
	}
	if (n >= sizeof(h) || n >= hostlen)
		return -EINVAL;
	memcpy(h, text, n);
	h[n] = '\0';
	if (inet_pton(AF_INET, h, buf) != 1 && inet_pton(AF_INET6, h, buf) != 1)
		return -EINVAL;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || p < 1 || p > 65535)
		return -EINVAL;
	memcpy(host, h, n + 1);
	*port = (int)p;
	return 0;
}

static void release(struct pms_probe *p)
{
	p->io = cdr_io_free(p->io);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->deadline = cdr_timer_free(p->deadline);
	p->reap = cdr_timer_free(p->reap);
	if (p->pid > 0) {
		kill(-p->pid, SIGKILL);
		while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
			;
		p->pid = 0;
	}
	free(p);
}

static void finish(struct pms_probe *p, bool ok, const char *detail)
{
	pms_probe_fn fn = p->fn;
	void *arg = p->arg;
	char d[256];

	snprintf(d, sizeof(d), "%s", detail);
	release(p);
	fn(ok, d, arg);
}

struct pms_probe *pms_probe_free(struct pms_probe *p)
{
	if (p)
		release(p);
	return NULL;
}

static struct pms_probe *probe_new(struct cdr_loop *loop, uint64_t timeout_ms, pms_probe_fn fn, void *arg,
				   cdr_loop_fn on_deadline)
{
	struct pms_probe *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->loop = loop;
	p->fn = fn;
	p->arg = arg;
	p->fd = -1;
	p->timeout_ms = timeout_ms;
	if (cdr_timer_new(loop, on_deadline, p, &p->deadline) < 0) {
		free(p);
		return NULL;
	}
	cdr_timer_start(p->deadline, timeout_ms, false);
	return p;
}

/* ---- TCP ---- */

static void tcp_deadline(void *arg)
{
	struct pms_probe *p = arg;
	char d[96];

	if (p->immediate) {
		finish(p, p->immediate < 0, p->immediate < 0 ? "connected" : strerror(p->immediate));
		return;
	}
	snprintf(d, sizeof(d), "no connection within %llu ms", (unsigned long long)p->timeout_ms);
	finish(p, false, d);
}

static void tcp_ready(int fd, short what, void *arg)
{
	struct pms_probe *p = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	finish(p, err == 0, err ? strerror(err) : "connected");
}

int pms_probe_tcp(struct cdr_loop *loop, const char *host, int port, uint64_t timeout_ms, pms_probe_fn fn, void *arg,
		  struct pms_probe **ret)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pms_probe *p;
	int r;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		return -EINVAL;
	}
	if (!(p = probe_new(loop, timeout_ms, fn, arg, tcp_deadline)))
		return -ENOMEM;
	p->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		r = -errno;
		release(p);
		return r;
	}
	if (connect(p->fd, (struct sockaddr *)&ss, sl) == 0)
		p->immediate = -1;
	else if (errno != EINPROGRESS)
		p->immediate = errno;
	if (p->immediate) {
		/* Decided at once (loopback often is): still answer from the
		 * loop, never from inside this call. */
		cdr_timer_start(p->deadline, 0, false);
	} else if ((r = cdr_io_new(loop, p->fd, CDR_IO_WRITE, tcp_ready, p, &p->io)) < 0) {
		release(p);
		return r;
	}
	*ret = p;
	return 0;
}

/* ---- command ---- */

static void cmd_outcome(struct pms_probe *p, int status)
{
	char d[256], first[160];
	size_t n = strcspn(p->out, "\n");

	snprintf(first, sizeof(first), "%.*s", (int)(n < sizeof(first) - 1 ? n : sizeof(first) - 1), p->out);
	p->pid = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		finish(p, true, "exit status 0");
		return;
	}
	if (WIFEXITED(status))
		snprintf(d, sizeof(d), "exit status %d%s%s", WEXITSTATUS(status), *first ? ": " : "", first);
	else
		snprintf(d, sizeof(d), "killed by signal %d%s%s", WIFSIGNALED(status) ? WTERMSIG(status) : 0,
			 *first ? ": " : "", first);
	finish(p, false, d);
}

static void cmd_reap(void *arg)
{
	struct pms_probe *p = arg;
	int status;
	pid_t r = waitpid(p->pid, &status, WNOHANG);

	if (r == p->pid)
		cmd_outcome(p, status);
	else if (r < 0 && errno != EINTR)
		finish(p, false, "lost track of the command");
}

static void cmd_output(int fd, short what, void *arg)
{
	struct pms_probe *p = arg;
	char buf[512];
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		size_t room = sizeof(p->out) - 1 - p->outlen, take = (size_t)n < room ? (size_t)n : room;

		memcpy(p->out + p->outlen, buf, take);
		p->outlen += take;
		p->out[p->outlen] = '\0';
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EOF (or an error): the command closed its output; reap it. */
	p->io = cdr_io_free(p->io);
	close(p->fd);
	p->fd = -1;
	p->eof = true;
	cdr_timer_start(p->reap, REAP_EVERY_MS, true);
	cmd_reap(p);
}

static void cmd_deadline(void *arg)
{
	struct pms_probe *p = arg;
	char d[96];

	snprintf(d, sizeof(d), "no answer within %llu ms (killed)", (unsigned long long)p->timeout_ms);
	finish(p, false, d);
}

int pms_probe_command(struct cdr_loop *loop, const char *cmd, uint64_t timeout_ms, pms_probe_fn fn, void *arg,
		      struct pms_probe **ret)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct pms_probe *p;
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	int fds[2], r;

	if (!(p = probe_new(loop, timeout_ms, fn, arg, cmd_deadline)))
		return -ENOMEM;
	if (cdr_timer_new(loop, cmd_reap, p, &p->reap) < 0) {
		release(p);
		return -ENOMEM;
	}
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		release(p);
		return r;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	r = posix_spawn(&p->pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(fds[1]);
	p->fd = fds[0];
	if (r != 0) {
		p->pid = 0;
		release(p);
		return -r;
	}
	if ((r = cdr_io_new(loop, p->fd, CDR_IO_READ, cmd_output, p, &p->io)) < 0) {
		release(p);
		return r;
	}
	*ret = p;
	return 0;
}
