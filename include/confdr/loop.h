/* The event loop every daemon runs on: a thin layer over libevent.
 *
 * One thread runs the loop; every callback below runs on it. Other threads
 * (the AMQP I/O thread, the ZooKeeper client's thread, the MySQL worker) hand
 * work to the loop with cdr_loop_post(), never by touching loop state. */
#ifndef CONFDR_LOOP_H
#define CONFDR_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct cdr_loop;
struct cdr_timer;
struct cdr_io;
struct event_base;

typedef void (*cdr_loop_fn)(void *arg);
typedef void (*cdr_signal_fn)(int signo, void *arg);
typedef void (*cdr_io_fn)(int fd, short what, void *arg);

/* Creates a loop. Returns 0 or -ENOMEM / -EIO. */
int cdr_loop_new(struct cdr_loop **ret);

/* Runs the callbacks still posted (so their arguments are released), then
 * frees the loop. Timers, io watches and signal handlers must have been freed
 * by their owners first. Accepts NULL; returns NULL. */
struct cdr_loop *cdr_loop_free(struct cdr_loop *loop);

/* The libevent base, for adapters (hiredis) that need it. Borrowed. */
struct event_base *cdr_loop_base(struct cdr_loop *loop);

/* Runs until cdr_loop_stop(). Returns 0, or -EIO if libevent failed. */
int cdr_loop_run(struct cdr_loop *loop);

/* Makes cdr_loop_run() return after the current callback. Loop thread only. */
void cdr_loop_stop(struct cdr_loop *loop);

/* Thread-safe: arranges for fn(arg) to run once on the loop thread, in the
 * order posted. If the loop is freed first, fn still runs (from
 * cdr_loop_free or cdr_loop_flush), so arg is never leaked. Returns 0 or
 * -ENOMEM. */
int cdr_loop_post(struct cdr_loop *loop, cdr_loop_fn fn, void *arg);

/* Loop thread only: runs every callback posted so far, now. A module calls it
 * from its _free after joining its thread, so no posted callback outlives it. */
void cdr_loop_flush(struct cdr_loop *loop);

/* Timers. fn runs on the loop thread. */
int cdr_timer_new(struct cdr_loop *loop, cdr_loop_fn fn, void *arg, struct cdr_timer **ret);
/* (Re)arms the timer: after ms milliseconds, and then every ms if repeat. */
void cdr_timer_start(struct cdr_timer *t, uint64_t ms, bool repeat);
void cdr_timer_stop(struct cdr_timer *t);
bool cdr_timer_pending(const struct cdr_timer *t);
struct cdr_timer *cdr_timer_free(struct cdr_timer *t);

/* Watches fd for CDR_IO_READ and/or CDR_IO_WRITE (persistently, until freed).
 * fn gets the events that fired. */
enum { CDR_IO_READ = 0x02, CDR_IO_WRITE = 0x04 };
int cdr_io_new(struct cdr_loop *loop, int fd, short events, cdr_io_fn fn, void *arg, struct cdr_io **ret);
struct cdr_io *cdr_io_free(struct cdr_io *io);

/* Signal handling through the loop: fn runs on the loop thread, never in a
 * signal handler. At most one handler per signal; the handler stays until the
 * loop is freed. Returns 0, -EEXIST or -ENOMEM. */
int cdr_loop_on_signal(struct cdr_loop *loop, int signo, cdr_signal_fn fn, void *arg);

/* Clocks, in milliseconds: monotonic (for timeouts) and wall (for messages). */
uint64_t cdr_now_ms(void);
uint64_t cdr_wall_ms(void);

/* The same, signed: for the daemons' pure rules, which take the time as an
 * int64_t argument (an injected clock in their unit tests). */
static inline int64_t cdr_mono_i64(void)
{
	return (int64_t)cdr_now_ms();
}

static inline int64_t cdr_wall_i64(void)
{
	return (int64_t)cdr_wall_ms();
}

/* Back-off for re-connections: doubles from min to max with +-20% jitter.
 * cdr_backoff_next() returns the delay to wait now and advances;
 * cdr_backoff_reset() after a success. */
struct cdr_backoff {
	uint64_t min_ms, max_ms, cur_ms;
	uint32_t seed;
};
void cdr_backoff_init(struct cdr_backoff *b, uint64_t min_ms, uint64_t max_ms);
uint64_t cdr_backoff_next(struct cdr_backoff *b);
void cdr_backoff_reset(struct cdr_backoff *b);

#endif
