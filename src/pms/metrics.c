/* pms's metrics (docs/metrics.md): the rooms' and platforms' states as the
 * active pms read them from ZooKeeper, its own rooms' health and checks,
 * the pms it watches on other platforms, and isolation; read at each scrape
 * from what pms keeps. */
#include "pms_int.h"

#include <confdr/metrics.h>

struct pms_metrics {
	struct cdr_metric *room_bad, *room_manual, *plat_down, *plat_manual, *healthy, *check_up, *check_changes, *peer,
		*isolated, *nacks;
};

int pms_metrics_init(struct pms *s)
{
	struct cdr_metrics *reg = cdr_daemon_metrics(s->d);
	struct pms_metrics *m = calloc(1, sizeof(*m));
	const struct cdr_metric_def defs[] = {
		{ &m->room_bad, CDR_METRIC_GAUGE, "pms_room_abnormal", "room",
		  "1 while the room's state (/state in ZooKeeper) is abnormal, else 0; every room of the topology." },
		{ &m->room_manual, CDR_METRIC_GAUGE, "pms_room_manual", "room",
		  "1 while an operator's switch of the room is on, else 0." },
		{ &m->plat_down, CDR_METRIC_GAUGE, "pms_platform_down", "target_platform",
		  "1 while the platform's state is down, else 0; every platform of the topology." },
		{ &m->plat_manual, CDR_METRIC_GAUGE, "pms_platform_manual", "target_platform",
		  "1 while an operator's switch of the platform is on, else 0." },
		{ &m->healthy, CDR_METRIC_GAUGE, "pms_room_healthy", "room",
		  "1 while all checks of this platform's room pass, else 0 (its own rooms only)." },
		{ &m->check_up, CDR_METRIC_GAUGE, "pms_check_up", "room,check",
		  "1 while the check's verdict is up, else 0 (this platform's rooms)." },
		{ &m->check_changes, CDR_METRIC_COUNTER, "pms_check_changes_total", "room,check",
		  "Verdict changes of the check (flaps) since this pms became active." },
		{ &m->peer, CDR_METRIC_GAUGE, "pms_peer_alive", "target_platform",
		  "For each platform this pms backs up: 1 while its pms beats (alive, late, or heard on its broker), "
		  "0 when judged dead, -1 before a first verdict." },
		{ &m->isolated, CDR_METRIC_GAUGE, "pms_isolated", NULL,
		  "1 while this pms is isolated (its beat not written to ZooKeeper and not heard by the backup), else "
		  "0." },
		{ &m->nacks, CDR_METRIC_COUNTER, "pms_nacks_total", "request,reason",
		  "Refusals (NACKs) of requests to pms (state queries, operators' switches), by request type and "
		  "reason." },
	};

	if (!m)
		return -ENOMEM;
	s->m = m;
	return cdr_metrics_register(reg, defs, sizeof(defs) / sizeof(defs[0]));
}

static double peer_value(enum pms_peer_verdict v)
{
	switch (v) {
	case PMS_PEER_UNKNOWN: return -1;
	case PMS_PEER_DEAD: return 0;
	case PMS_PEER_ALIVE:
	case PMS_PEER_LATE:
	case PMS_PEER_HEARD: return 1;
	}
	return -1;
}

void pms_metric_nack(struct pms *s, const struct cdr_msg *m, const json_t *body)
{
	if (s->m)
		cdr_metric_add(s->m->nacks, 1, cdr_msg_type(m), json_string_value(json_object_get(body, "reason")));
}

void pms_metrics_fill(struct cdr_daemon *d, void *server)
{
	struct pms *s = server;
	struct pms_metrics *m = s->m;

	(void)d;
	if (!m)
		return;
	/* rebuilt each time: a standby holds no state, and a reload changes checks */
	cdr_metric_clear(m->room_bad);
	cdr_metric_clear(m->room_manual);
	cdr_metric_clear(m->plat_down);
	cdr_metric_clear(m->plat_manual);
	cdr_metric_clear(m->healthy);
	cdr_metric_clear(m->check_up);
	cdr_metric_clear(m->check_changes);
	cdr_metric_clear(m->peer);
	for (size_t i = 0; i < s->nrooms; i++) {
		const struct room *r = &s->rooms[i];

		if (r->loaded) {
			cdr_metric_set(m->room_bad, r->st.bad ? 1 : 0, r->id);
			cdr_metric_set(m->room_manual, r->st.manual ? 1 : 0, r->id);
		}
		if (!r->own)
			continue;
		cdr_metric_set(m->healthy, r->h.healthy ? 1 : 0, r->id);
		for (size_t k = 0; k < r->nchecks; k++) {
			cdr_metric_set(m->check_up, r->checks[k]->v.up ? 1 : 0, r->id, r->checks[k]->name);
			cdr_metric_set(m->check_changes, (double)r->checks[k]->v.changes, r->id, r->checks[k]->name);
		}
	}
	for (size_t i = 0; i < s->nplats; i++) {
		const struct plat *p = &s->plats[i];

		if (p->loaded) {
			cdr_metric_set(m->plat_down, p->st.bad ? 1 : 0, p->id);
			cdr_metric_set(m->plat_manual, p->st.manual ? 1 : 0, p->id);
		}
		if (p->owned)
			cdr_metric_set(m->peer, peer_value(p->verdict), p->id);
	}
	cdr_metric_set(m->isolated, s->isolated ? 1 : 0);
}

const char *pms_not_ready(struct cdr_daemon *d, void *server)
{
	struct pms *s = server;

	(void)d;
	if (!s->active)
		return NULL;
	if (!s->started)
		return "active, the topology not read yet";
	for (size_t i = 0; i < s->nrooms; i++)
		if (!s->rooms[i].loaded)
			return "active, the rooms' states not read from ZooKeeper yet";
	for (size_t i = 0; i < s->nplats; i++)
		if (!s->plats[i].loaded)
			return "active, the platforms' states not read from ZooKeeper yet";
	return NULL;
}
