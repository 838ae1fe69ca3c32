/* Whether the daemon has its state, told to systemd (a Type=notify unit,
 * deploy/systemd/) and in the liveness node ("ready", what `confdrctl status
 * --json` shows): READY=1 once it is connected and has its state, STATUS=
 * when that changes, WATCHDOG=1 from the loop itself, STOPPING=1 at a
 * graceful stop. Outside systemd ($NOTIFY_SOCKET unset) nothing is sent;
 * "ready" in the liveness node is kept either way.
 *
 * "Has its state": daemon_readiness (daemon_ready.c), the verdict /readyz
 * gives too. So `systemctl restart` returns when the instance can take
 * over, and a rolling restart may go on to the next one. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/sdnotify.h>

#include "daemon-internal.h"

#define CHECK_MS 250

static void notify(struct cdr_daemon *d, const char *state)
{
	int r = cdr_sd_notify(state);

	if (r < 0 && !d->notify_failed) {
		d->notify_failed = true; /* said once: a watchdog ping would say it every few seconds */
		cdr_warn("systemd: cannot notify $NOTIFY_SOCKET: %s; going on", strerror(-r));
	}
}

static void on_check(void *arg)
{
	struct cdr_daemon *d = arg;
	char status[256], msg[300];
	bool ok;

	if (d->stopping)
		return;
	ok = daemon_readiness(d, status, sizeof(status));
	if (ok != d->has_state) {
		d->has_state = ok;
		daemon_live_changed(d);
	}
	if (!d->under_systemd)
		return;
	if (!d->notified_ready && ok) {
		d->notified_ready = true;
		snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
		notify(d, msg);
		cdr_notice("systemd: ready (%s)", status);
	} else if (strcmp(status, d->notified_status)) {
		snprintf(msg, sizeof(msg), "STATUS=%s", status);
		notify(d, msg);
	}
	snprintf(d->notified_status, sizeof(d->notified_status), "%s", status);
}

static void on_watchdog(void *arg)
{
	notify(arg, "WATCHDOG=1");
}

int daemon_notify_start(struct cdr_daemon *d)
{
	uint64_t usec = 0;
	int r;

	if ((r = cdr_timer_new(d->loop, on_check, d, &d->notify_timer)) < 0)
		return r;
	cdr_timer_start(d->notify_timer, CHECK_MS, true);
	d->under_systemd = getenv("NOTIFY_SOCKET") != NULL;
	if (!d->under_systemd)
		return 0;
	r = cdr_sd_watchdog_usec(&usec);
	if (r < 0)
		cdr_warn("systemd: $WATCHDOG_USEC or $WATCHDOG_PID is not a number; no watchdog pings");
	if (r <= 0)
		return 0;
	/* Half the watchdog's timeout, from a timer of the loop: a loop that
	 * hangs stops the pings, and systemd restarts the service. */
	if ((r = cdr_timer_new(d->loop, on_watchdog, d, &d->watchdog_timer)) < 0)
		return r;
	cdr_timer_start(d->watchdog_timer, usec / 2000 ? usec / 2000 : 1, true);
	on_watchdog(d);
	cdr_info("systemd: watchdog pings every %" PRIu64 " ms (WatchdogSec %" PRIu64 " ms)", usec / 2000, usec / 1000);
	return 0;
}

void daemon_notify_stopping(struct cdr_daemon *d)
{
	d->has_state = false;
	if (d->under_systemd)
		notify(d, "STOPPING=1\nSTATUS=stopping");
}

void daemon_notify_free(struct cdr_daemon *d)
{
	d->notify_timer = cdr_timer_free(d->notify_timer);
	d->watchdog_timer = cdr_timer_free(d->watchdog_timer);
}
