/* Following the topology in ZooKeeper, for every daemon (daemon.h). */
#include <confdr/daemon.h>
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/topology.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MS 2000

struct cdr_topo_follow {
	struct cdr_daemon *d;
	const uint64_t *refresh_ms;
	cdr_topo_new_fn on_new;
	void *arg;
	struct cdr_timer *timer;
	bool fetching;
};

static void on_fetched(int status, struct cdr_topology *t, const char *err, void *arg)
{
	struct cdr_topo_follow *f = arg;

	f->fetching = false;
	if (status == -ECANCELED)
		return;
	if (status < 0) {
		cdr_warn("cannot read the topology from ZooKeeper: %s; retrying in %d ms",
			 err ? err : strerror(-status), RETRY_MS);
		cdr_timer_start(f->timer, RETRY_MS, false);
		return;
	}
	cdr_timer_start(f->timer, *f->refresh_ms, false);
	f->on_new(t, f->arg);
}

void cdr_topo_follow_fetch(struct cdr_topo_follow *f)
{
	struct cdr_zk *zk = cdr_daemon_zk(f->d);
	int r;

	if (f->fetching || !zk)
		return;
	if ((r = cdr_topology_fetch(zk, on_fetched, f)) < 0) {
		cdr_warn("cannot read the topology: %s; retrying in %d ms", strerror(-r), RETRY_MS);
		cdr_timer_start(f->timer, RETRY_MS, false);
		return;
	}
	f->fetching = true;
}

static void on_timer(void *arg)
{
	cdr_topo_follow_fetch(arg);
}

int cdr_topo_follow_new(struct cdr_daemon *d, const uint64_t *refresh_ms, cdr_topo_new_fn on_new, void *arg,
			struct cdr_topo_follow **ret)
{
	struct cdr_topo_follow *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->d = d;
	f->refresh_ms = refresh_ms;
	f->on_new = on_new;
	f->arg = arg;
	if (cdr_timer_new(cdr_daemon_loop(d), on_timer, f, &f->timer) < 0) {
		free(f);
		return -ENOMEM;
	}
	*ret = f;
	return 0;
}

struct cdr_topo_follow *cdr_topo_follow_free(struct cdr_topo_follow *f)
{
	if (f) {
		cdr_timer_free(f->timer);
		free(f);
	}
	return NULL;
}
