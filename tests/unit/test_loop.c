/* The event loop: timers, posts from other threads, signals, back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include <confdr/loop.h>

struct ctx {
	struct cdr_loop *loop;
	struct cdr_timer *t, *guard;
	int fired;
	int posted;
	int order_ok;
	int last;
	int signals;
};

static void on_guard(void *arg)
{
	struct ctx *c = arg;

	fail_msg("the loop ran into its 5 s guard timer");
	cdr_loop_stop(c->loop);
}

static void setup_ctx(struct ctx *c)
{
	*c = (struct ctx){ 0 };
	assert_int_equal(cdr_loop_new(&c->loop), 0);
	assert_int_equal(cdr_timer_new(c->loop, on_guard, c, &c->guard), 0);
	cdr_timer_start(c->guard, 5000, false);
}

static void teardown_ctx(struct ctx *c)
{
	c->guard = cdr_timer_free(c->guard);
	c->t = cdr_timer_free(c->t);
	c->loop = cdr_loop_free(c->loop);
}

static void on_repeat(void *arg)
{
	struct ctx *c = arg;

	if (++c->fired == 3) {
		cdr_timer_stop(c->t);
		assert_false(cdr_timer_pending(c->t));
		cdr_loop_stop(c->loop);
	}
}

static void test_repeating_timer(void **state)
{
	struct ctx c;
	uint64_t start;

	setup_ctx(&c);
	assert_int_equal(cdr_timer_new(c.loop, on_repeat, &c, &c.t), 0);
	cdr_timer_start(c.t, 20, true);
	assert_true(cdr_timer_pending(c.t));
	start = cdr_now_ms();
	assert_int_equal(cdr_loop_run(c.loop), 0);
	assert_int_equal(c.fired, 3);
	/* three periods of 20 ms cannot take less than 60 ms */
	assert_true(cdr_now_ms() - start >= 60);
	teardown_ctx(&c);
}

#define N_THREADS 4
#define N_POSTS	  2000

struct item {
	struct ctx *c;
	int thread, seq;
};

static int last_seq[N_THREADS];

static void on_post(void *arg)
{
	struct item *it = arg;
	struct ctx *c = it->c;

	/* Posts of one thread arrive in the order they were made. */
	if (it->seq != last_seq[it->thread] + 1)
		c->order_ok = 0;
	last_seq[it->thread] = it->seq;
	free(it);
	if (++c->posted == N_THREADS * N_POSTS)
		cdr_loop_stop(c->loop);
}

struct thread_arg {
	struct ctx *c;
	int thread;
};

static void *poster(void *arg)
{
	struct thread_arg *ta = arg;

	for (int i = 1; i <= N_POSTS; i++) {
		struct item *it = malloc(sizeof(*it));

		it->c = ta->c;
		it->thread = ta->thread;
		it->seq = i;
		if (cdr_loop_post(ta->c->loop, on_post, it) < 0)
			free(it);
	}
	return NULL;
}

static void test_posts_from_threads(void **state)
{
	struct ctx c;
	pthread_t th[N_THREADS];
	struct thread_arg ta[N_THREADS];

	setup_ctx(&c);
	c.order_ok = 1;
	for (int i = 0; i < N_THREADS; i++) {
		last_seq[i] = 0;
		ta[i] = (struct thread_arg){ &c, i };
		assert_int_equal(pthread_create(&th[i], NULL, poster, &ta[i]), 0);
	}
	assert_int_equal(cdr_loop_run(c.loop), 0);
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(c.posted, N_THREADS * N_POSTS);
	assert_true(c.order_ok);
	teardown_ctx(&c);
}

static void count_free(void *arg)
{
	(*(int *)arg)++;
}

static void test_free_runs_pending_posts(void **state)
{
	struct cdr_loop *loop;
	int ran = 0;

	assert_int_equal(cdr_loop_new(&loop), 0);
	assert_int_equal(cdr_loop_post(loop, count_free, &ran), 0);
	assert_int_equal(cdr_loop_post(loop, count_free, &ran), 0);
	cdr_loop_free(loop);
	assert_int_equal(ran, 2);
}

static void on_sig(int signo, void *arg)
{
	struct ctx *c = arg;

	assert_int_equal(signo, SIGUSR1);
	c->signals++;
	cdr_loop_stop(c->loop);
}

static void raise_usr1(void *arg)
{
	raise(SIGUSR1);
}

static void test_signal_through_loop(void **state)
{
	struct ctx c;

	setup_ctx(&c);
	assert_int_equal(cdr_loop_on_signal(c.loop, SIGUSR1, on_sig, &c), 0);
	assert_int_equal(cdr_loop_on_signal(c.loop, SIGUSR1, on_sig, &c), -17); /* -EEXIST */
	assert_int_equal(cdr_timer_new(c.loop, raise_usr1, &c, &c.t), 0);
	cdr_timer_start(c.t, 10, false);
	assert_int_equal(cdr_loop_run(c.loop), 0);
	assert_int_equal(c.signals, 1);
	teardown_ctx(&c);
}

static void test_backoff_doubles_with_jitter_and_caps(void **state)
{
	struct cdr_backoff b;
	uint64_t want = 100;

	cdr_backoff_init(&b, 100, 1000);
	for (int i = 0; i < 8; i++) {
		uint64_t d = cdr_backoff_next(&b);

		assert_true(d >= want - want / 5 && d <= want + want / 5);
		want = want * 2 > 1000 ? 1000 : want * 2;
	}
	cdr_backoff_reset(&b);
	uint64_t d = cdr_backoff_next(&b);
	assert_true(d >= 80 && d <= 120);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repeating_timer),
		cmocka_unit_test(test_posts_from_threads),
		cmocka_unit_test(test_free_runs_pending_posts),
		cmocka_unit_test(test_signal_through_loop),
		cmocka_unit_test(test_backoff_doubles_with_jitter_and_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
