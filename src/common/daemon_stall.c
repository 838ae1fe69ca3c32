/* Whether the active instance may act now: a loop that stood still (the
 * process frozen by SIGSTOP, swapped out, starved of CPU) may have been
 * deposed meanwhile without hearing of it yet, since ZooKeeper's verdict
 * comes only over the network. So after a stall the instance stops taking
 * work (its consumers cancelled, held deliveries given back, the daemons'
 * serving checks and timers answer "not now") until one ZooKeeper round
 * trip on the same session proves the session, and with it the leadership,
 * still holds. If the session expired, the election deposes the instance
 * instead, and nothing it did after the stall was taken. */
#include "daemon-internal.h"

#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/zk.h>

#include <errno.h>
#include <inttypes.h>

#define BEAT_MS 100

/* A stall longer than this makes the instance confirm its session: a third
 * of the session timeout (so that a confirmed session had at least two
 * thirds left), at least a second (a busy loop is not a frozen one). */
static uint64_t stall_ms(const struct cdr_daemon *d)
{
	uint64_t t = d->conf->zk_session_timeout_ms / 3;

	return t < 1000 ? 1000 : t;
}

static void confirm(struct cdr_daemon *d);

static void on_confirmed(const struct cdr_zk_result *r, void *arg)
{
	struct cdr_daemon *d = arg;
	struct cdr_zk_session ses;

	d->confirming = false;
	if (r->status == -ECANCELED || !d->suspect)
		return;
	if (!d->active) {
		d->suspect = false; /* deposed meanwhile: standby now, nothing to resume */
		return;
	}
	if ((r->status == 0 || r->status == -ENOENT) && cdr_zk_session(d->zk, &ses) == 0 &&
	    ses.id == d->suspect_session) {
		cdr_notice("zookeeper confirmed session 0x%" PRIx64 " after the stall: active again, epoch %" PRId64,
			   (uint64_t)ses.id, d->epoch);
		d->suspect = false;
		daemon_take_queues(d);
		return;
	}
	/* no answer yet (connection lost, a new session): ask again; an expiry
	 * deposes the instance through the election meanwhile */
	cdr_timer_start(d->stall_timer, 200, false);
}

static void confirm(struct cdr_daemon *d)
{
	if (d->confirming || !d->zk)
		return;
	if (cdr_zk_exists(d->zk, d->live_path, NULL, NULL, on_confirmed, d) == 0)
		d->confirming = true;
	else
		cdr_timer_start(d->stall_timer, 200, false);
}

/* Notes a stall of the loop (now is monotonic ms). */
static void check(struct cdr_daemon *d, uint64_t now)
{
	uint64_t gap = now - d->last_beat;
	struct cdr_zk_session ses;

	d->last_beat = now;
	if (gap <= stall_ms(d) || !d->active || d->suspect)
		return;
	cdr_warn("the loop stood still for %" PRIu64 " ms (frozen, swapped out or starved): taking no work until "
		 "ZooKeeper confirms the session",
		 gap);
	d->suspect = true;
	d->suspect_session = cdr_zk_session(d->zk, &ses) == 0 ? ses.id : -1;
	d->stalls++;
	daemon_drop_queues(d);
	confirm(d);
}

static void on_beat(void *arg)
{
	struct cdr_daemon *d = arg;

	check(d, cdr_now_ms());
	if (d->suspect && !d->confirming && !cdr_timer_pending(d->stall_timer))
		confirm(d);
}

static void on_retry(void *arg)
{
	struct cdr_daemon *d = arg;

	if (d->suspect)
		confirm(d);
}

int daemon_stall_start(struct cdr_daemon *d)
{
	int r;

	d->last_beat = cdr_now_ms();
	if ((r = cdr_timer_new(d->loop, on_beat, d, &d->beat_timer)) < 0 ||
	    (r = cdr_timer_new(d->loop, on_retry, d, &d->stall_timer)) < 0)
		return r;
	cdr_timer_start(d->beat_timer, BEAT_MS, true);
	return 0;
}

void daemon_stall_free(struct cdr_daemon *d)
{
	d->beat_timer = cdr_timer_free(d->beat_timer);
	d->stall_timer = cdr_timer_free(d->stall_timer);
}

void daemon_stall_role(struct cdr_daemon *d)
{
	d->suspect = false; /* a new role starts afresh */
	d->last_beat = cdr_now_ms();
}

bool cdr_daemon_acting(struct cdr_daemon *d)
{
	check(d, cdr_now_ms());
	return d->active && !d->suspect && !d->stopping;
}

uint64_t cdr_daemon_stalls(const struct cdr_daemon *d)
{
	return d->stalls;
}
