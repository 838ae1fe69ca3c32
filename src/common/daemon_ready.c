/* The readiness verdict, one for every reader: READY=1 and STATUS= to
 * systemd (daemon_notify.c), "ready" in the liveness node (what `confdrctl
 * status --json` and deploy/confdr.sh's rolling restart wait for) and
 * /readyz and confdr_ready (daemon_metrics.c). docs/metrics.md "Readiness"
 * lists the reasons in this order.
 *
 * Ready: connected to ZooKeeper, the platform's topology read (its main
 * room), the schema migrated, every store the daemon uses connected, and
 * placed in the election: a standby in line behind the active one, or the
 * active one once it takes all its work and its own state is whole
 * (ops->not_ready). */
#include <inttypes.h>
#include <stdio.h>

#include <confdr/zk.h>

#include "daemon-internal.h"

/* The readiness the active instance reaches when it takes every queue. */
static enum cdr_ready full_ready(const struct cdr_daemon *d)
{
	enum cdr_ready r = CDR_READY_NONE;

	for (const struct cdr_daemon_queue *q = d->ops->queues; q && q->fn; q++)
		if (q->when > r)
			r = q->when;
	return r;
}

bool daemon_readiness(struct cdr_daemon *d, char *buf, size_t len)
{
	const char *why = NULL;
	size_t n = 0;

	if (d->stopping) {
		snprintf(buf, len, "stopping");
		return false;
	}
	if (!d->link_up[LINK_ZK]) {
		snprintf(buf, len, "zookeeper: not connected (%s)", d->conf->zk_hosts);
		return false;
	}
	if (!d->main_room) {
		snprintf(buf, len, "topology: this platform's main room not read yet");
		return false;
	}
	if (d->migration) {
		snprintf(buf, len, "mysql: applying schema migrations (%s)", d->conf->mysql_migrations);
		return false;
	}
	for (int i = LINK_AMQP; i < LINK_COUNT; i++) {
		if (!d->link_used[i] || d->link_up[i])
			continue;
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? ", " : "", daemon_link_names[i]);
	}
	if (n) {
		snprintf(buf + n, n < len ? len - n : 0, ": not connected");
		return false;
	}
	if (!d->active && !(d->election && cdr_zk_election_placed(d->election))) {
		snprintf(buf, len, "no role yet: joining the election");
		return false;
	}
	if (!d->active) {
		snprintf(buf, len, "standby");
		return true;
	}
	if (d->suspect) {
		snprintf(buf, len, "active, confirming its ZooKeeper session after a stall of its loop");
		return false;
	}
	if (d->ops->not_ready && (why = d->ops->not_ready(d, d->server)) != NULL) {
		snprintf(buf, len, "%s", why);
		return false;
	}
	if (d->ready < full_ready(d)) {
		snprintf(buf, len, "active, epoch %" PRId64 ", not taking all its work yet", d->epoch);
		return false;
	}
	snprintf(buf, len, "active, epoch %" PRId64, d->epoch);
	return true;
}
