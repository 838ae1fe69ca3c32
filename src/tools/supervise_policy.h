/* When confdr-supervise starts a daemon again: pure, unit-tested
 * (tests/unit/test_supervise.c). The first restart after a stable run
 * waits min_ms; each crash in a row doubles the wait, up to max_ms; a run
 * of stable_ms or more counts as healthy and starts over (keepalived's
 * parent and systemd's Restart= with a back-off do the same). */
#ifndef CONFDR_SUPERVISE_POLICY_H
#define CONFDR_SUPERVISE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

struct sup_policy {
	int64_t min_ms, max_ms, stable_ms;
	int prevent_status; /* an exit with this status is not restarted (78: configuration error) */
};

/* The wait before the next start, given the last wait (0: none yet) and how
 * long the run that just ended lasted. */
static inline int64_t sup_next_delay(const struct sup_policy *p, int64_t last_delay_ms, int64_t ran_ms)
{
	int64_t d;

	if (last_delay_ms <= 0 || ran_ms >= p->stable_ms)
		return p->min_ms;
	d = last_delay_ms * 2;
	return d > p->max_ms ? p->max_ms : d;
}

/* Whether a child that ended so is started again: not after exit 0 (it
 * stopped on purpose) or the prevent status, nor while we are stopping. */
static inline bool sup_restarts(const struct sup_policy *p, bool stopping, bool exited, int status)
{
	if (stopping)
		return false;
	if (exited && (status == 0 || status == p->prevent_status))
		return false;
	return true;
}

#endif
