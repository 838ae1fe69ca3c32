/* Shared by the integration tests and benchmarks (harness.h). */
#include "harness.h"

#include <confdr/loop.h>
#include <confdr/mq.h>

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

const char *th_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

void th_on_confirm(int status, void *arg)
{
	struct th_confirm *c = arg;

	c->status = status;
	c->done = true;
}

bool th_confirmed(void *arg)
{
	return ((struct th_confirm *)arg)->done;
}

void th_on_reply(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct th_call *c = arg;

	c->status = status;
	if (reply)
		c->reply = json_loadb(reply->body, reply->len, 0, NULL);
	c->done = true;
}

bool th_call_done(void *arg)
{
	return ((struct th_call *)arg)->done;
}

struct waiter {
	struct cdr_loop *loop;
	bool (*pred)(void *);
	void *arg;
	uint64_t deadline;
	bool ok;
};

static void on_tick(void *a)
{
	struct waiter *w = a;

	if (w->pred(w->arg)) {
		w->ok = true;
		cdr_loop_stop(w->loop);
	} else if (cdr_now_ms() >= w->deadline) {
		cdr_loop_stop(w->loop);
	}
}

bool th_run_until(struct cdr_loop *loop, bool (*pred)(void *), void *arg, unsigned ms)
{
	struct waiter w = { loop, pred, arg, cdr_now_ms() + ms, false };
	struct cdr_timer *t;

	if (cdr_timer_new(loop, on_tick, &w, &t) < 0)
		return false;
	cdr_timer_start(t, 5, true);
	cdr_loop_run(loop);
	cdr_timer_free(t);
	return w.ok;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

void th_run_for(struct cdr_loop *loop, unsigned ms)
{
	th_run_until(loop, never, NULL, ms);
}

bool th_poll_until(struct cdr_loop *loop, bool (*pred)(void *), void *arg, unsigned ms)
{
	uint64_t end = cdr_now_ms() + ms;

	for (;;) {
		if (pred(arg))
			return true;
		if (cdr_now_ms() >= end)
			return false;
		th_run_for(loop, 200);
	}
}

pid_t th_spawn(char *const argv[], const char *log, bool truncate)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND), 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int th_stop(struct cdr_loop *loop, pid_t pid, int sig, unsigned ms)
{
	uint64_t end = cdr_now_ms() + ms;
	int st;

	if (pid <= 0)
		return -1;
	kill(pid, sig);
	while (cdr_now_ms() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		if (loop)
			th_run_for(loop, 20);
		else
			usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

amqp_connection_state_t th_admin_open(const char *url)
{
	struct cdr_mq_url u;
	amqp_connection_state_t c;
	amqp_socket_t *s;
	bool ok;

	if (cdr_mq_url_parse(url, &u, NULL, 0) < 0)
		return NULL;
	c = amqp_new_connection();
	if (u.tls) {
		/* As cdr_mq: the broker checked against $CONFDR_TLS_CA. */
		s = th_env("CONFDR_TLS_CA") ? amqp_ssl_socket_new(c) : NULL;
		if (s && amqp_ssl_socket_set_cacert(s, th_env("CONFDR_TLS_CA")) != AMQP_STATUS_OK)
			s = NULL;
		if (s) {
			amqp_ssl_socket_set_verify_peer(s, 1);
			amqp_ssl_socket_set_verify_hostname(s, 1);
		}
	} else {
		s = amqp_tcp_socket_new(c);
	}
	ok = s && amqp_socket_open(s, u.host, u.port) == 0 &&
	     amqp_login(c, u.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN, u.user, u.password)
			     .reply_type == AMQP_RESPONSE_NORMAL;
	if (ok) {
		amqp_channel_open(c, 1);
		ok = amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
	}
	cdr_mq_url_clear(&u);
	if (!ok) {
		amqp_destroy_connection(c);
		return NULL;
	}
	return c;
}

void th_admin_close(amqp_connection_state_t c)
{
	if (!c)
		return;
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}
