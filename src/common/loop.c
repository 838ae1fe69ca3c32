/* The event loop: libevent underneath, with a thread-safe post queue woken by
 * an eventfd, timers, io watches and signals delivered on the loop thread. */
#include <confdr/loop.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

struct post {
	cdr_loop_fn fn;
	void *arg;
	struct post *next;
};

struct sig {
	struct event *ev;
	int signo;
	cdr_signal_fn fn;
	void *arg;
	struct sig *next;
};

struct cdr_loop {
	struct event_base *base;
	int wake_fd;
	struct event *wake_ev;
	pthread_mutex_t lock;
	struct post *head, *tail;
	bool woken; /* the eventfd was written since the list was last taken (cdr_loop_post) */
	struct sig *sigs;
};

struct cdr_timer {
	struct cdr_loop *loop;
	struct event *ev;
	cdr_loop_fn fn;
	void *arg;
	uint64_t ms;
	bool repeat;
};

struct cdr_io {
	struct event *ev;
	cdr_io_fn fn;
	void *arg;
};

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;

static void evthread_setup(void)
{
	evthread_use_pthreads();
}

/* Runs the callbacks posted so far (one snapshot of the list); returns
 * whether there were any. */
static bool flush_round(struct cdr_loop *loop)
{
	pthread_mutex_lock(&loop->lock);
	struct post *p = loop->head;
	loop->head = loop->tail = NULL;
	loop->woken = false;
	pthread_mutex_unlock(&loop->lock);
	if (!p)
		return false;
	while (p) {
		struct post *next = p->next;
		p->fn(p->arg);
		free(p);
		p = next;
	}
	return true;
}

void cdr_loop_flush(struct cdr_loop *loop)
{
	/* Callbacks may post again; those run on the next round, keeping order. */
	while (flush_round(loop))
		;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct cdr_loop *loop = arg;
	uint64_t n;

	/* Read to clear it. The list is taken whatever read said: with the
	 * woken flag set, posts do not write again, so returning here would
	 * leave them waiting for ever. */
	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing to clear */
	}
	/* One round: what is posted meanwhile wakes the loop again, after the
	 * timers and I/O that are due (the AMQP thread's wake-up among them:
	 * a thread posting without pause must not hold the loop here). */
	flush_round(loop);
}

int cdr_loop_new(struct cdr_loop **ret)
{
	struct cdr_loop *loop;

	pthread_once(&evthread_once, evthread_setup);
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	pthread_mutex_init(&loop->lock, NULL);
	loop->wake_fd = -1;
	loop->base = event_base_new();
	if (!loop->base)
		goto fail;
	loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->wake_fd < 0)
		goto fail;
	loop->wake_ev = event_new(loop->base, loop->wake_fd, EV_READ | EV_PERSIST, on_wake, loop);
	if (!loop->wake_ev || event_add(loop->wake_ev, NULL) < 0)
		goto fail;
	*ret = loop;
	return 0;
fail:
	cdr_loop_free(loop);
	return -EIO;
}

struct cdr_loop *cdr_loop_free(struct cdr_loop *loop)
{
	if (!loop)
		return NULL;
	cdr_loop_flush(loop);
	while (loop->sigs) {
		struct sig *s = loop->sigs;
		loop->sigs = s->next;
		event_free(s->ev);
		free(s);
	}
	if (loop->wake_ev)
		event_free(loop->wake_ev);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	if (loop->base)
		event_base_free(loop->base);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
	return NULL;
}

struct event_base *cdr_loop_base(struct cdr_loop *loop)
{
	return loop->base;
}

int cdr_loop_run(struct cdr_loop *loop)
{
	/* Posts made before the loop started are waiting behind the eventfd. */
	return event_base_dispatch(loop->base) < 0 ? -EIO : 0;
}

void cdr_loop_stop(struct cdr_loop *loop)
{
	event_base_loopbreak(loop->base);
}

int cdr_loop_post(struct cdr_loop *loop, cdr_loop_fn fn, void *arg)
{
	struct post *p = malloc(sizeof(*p));
	uint64_t one = 1;
	bool need;

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&loop->lock);
	if (loop->tail)
		loop->tail->next = p;
	else
		loop->head = p;
	loop->tail = p;
	need = !loop->woken; /* one write per batch: the loop takes the whole list */
	loop->woken = true;
	pthread_mutex_unlock(&loop->lock);
	/* An eventfd counter cannot overflow here in practice; EAGAIN would mean
	 * it is already readable, which is all we need. */
	if (need && write(loop->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

static void ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct cdr_timer *t = arg;
	struct timeval tv;

	/* Re-arm before the callback so the callback may stop or re-start it. */
	if (t->repeat) {
		ms_to_tv(t->ms, &tv);
		event_add(t->ev, &tv);
	}
	t->fn(t->arg);
}

int cdr_timer_new(struct cdr_loop *loop, cdr_loop_fn fn, void *arg, struct cdr_timer **ret)
{
	struct cdr_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->fn = fn;
	t->arg = arg;
	t->ev = evtimer_new(loop->base, on_timer, t);
	if (!t->ev) {
		free(t);
		return -ENOMEM;
	}
	*ret = t;
	return 0;
}

void cdr_timer_start(struct cdr_timer *t, uint64_t ms, bool repeat)
{
	struct timeval tv;

	t->ms = ms;
	t->repeat = repeat;
	ms_to_tv(ms, &tv);
	evtimer_add(t->ev, &tv);
}

void cdr_timer_stop(struct cdr_timer *t)
{
	t->repeat = false;
	evtimer_del(t->ev);
}

bool cdr_timer_pending(const struct cdr_timer *t)
{
	return evtimer_pending(t->ev, NULL) != 0;
}

struct cdr_timer *cdr_timer_free(struct cdr_timer *t)
{
	if (!t)
		return NULL;
	event_free(t->ev);
	free(t);
	return NULL;
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct cdr_io *io = arg;

	io->fn(fd, what & (EV_READ | EV_WRITE), io->arg);
}

int cdr_io_new(struct cdr_loop *loop, int fd, short events, cdr_io_fn fn, void *arg, struct cdr_io **ret)
{
	struct cdr_io *io = calloc(1, sizeof(*io));

	if (!io)
		return -ENOMEM;
	io->fn = fn;
	io->arg = arg;
	io->ev = event_new(loop->base, fd, (short)((events & (EV_READ | EV_WRITE)) | EV_PERSIST), on_io, io);
	if (!io->ev || event_add(io->ev, NULL) < 0) {
		if (io->ev)
			event_free(io->ev);
		free(io);
		return -EIO;
	}
	*ret = io;
	return 0;
}

struct cdr_io *cdr_io_free(struct cdr_io *io)
{
	if (!io)
		return NULL;
	event_free(io->ev);
	free(io);
	return NULL;
}

static void on_signal(evutil_socket_t signo, short what, void *arg)
{
	struct sig *s = arg;

	s->fn((int)signo, s->arg);
}

int cdr_loop_on_signal(struct cdr_loop *loop, int signo, cdr_signal_fn fn, void *arg)
{
	struct sig *s;

	for (s = loop->sigs; s; s = s->next)
		if (s->signo == signo)
			return -EEXIST;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->signo = signo;
	s->fn = fn;
	s->arg = arg;
	s->ev = evsignal_new(loop->base, signo, on_signal, s);
	if (!s->ev || event_add(s->ev, NULL) < 0) {
		if (s->ev)
			event_free(s->ev);
		free(s);
		return -ENOMEM;
	}
	s->next = loop->sigs;
	loop->sigs = s;
	return 0;
}

uint64_t cdr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t cdr_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cdr_backoff_init(struct cdr_backoff *b, uint64_t min_ms, uint64_t max_ms)
{
	b->min_ms = min_ms ? min_ms : 1;
	b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
	b->cur_ms = b->min_ms;
	b->seed = (uint32_t)(cdr_now_ms() ^ (uintptr_t)b);
}

uint64_t cdr_backoff_next(struct cdr_backoff *b)
{
	uint64_t base = b->cur_ms, jitter;

	b->cur_ms = base * 2 > b->max_ms ? b->max_ms : base * 2;
	/* +-20 % so that many clients of one restarted server do not return in step. */
	jitter = base / 5;
	if (jitter == 0)
		return base;
	b->seed = b->seed * 1103515245u + 12345u;
	return base - jitter + (b->seed >> 8) % (2 * jitter + 1);
}

void cdr_backoff_reset(struct cdr_backoff *b)
{
	b->cur_ms = b->min_ms;
}
