/* rms's metrics (docs/metrics.md): the inventory's MCUs and VRSs by state,
 * each MCU's state and load, reservations and the allocation counters,
 * all read from what rms keeps at each scrape. */
#include "rms_int.h"

#include <confdr/metrics.h>

struct rms_metrics {
	struct cdr_metric *mcus, *mcu_state, *mcu_confs, *mcu_cap, *vrs, *rsv, *allocs, *alloc_total, *hb_refused,
		*nacks;
};

int rms_metrics_init(struct rms *s)
{
	struct cdr_metrics *reg = cdr_daemon_metrics(s->d);
	struct rms_metrics *m = calloc(1, sizeof(*m));
	const struct cdr_metric_def defs[] = {
		{ &m->mcus, CDR_METRIC_GAUGE, "rms_mcus", "room,state",
		  "MCUs in the inventory of the active rms, by room and state (up, down, drain)." },
		{ &m->mcu_state, CDR_METRIC_GAUGE, "rms_mcu_state", "mcu,room,state",
		  "1 for each MCU with its state (up, down, drain); one series per MCU." },
		{ &m->mcu_confs, CDR_METRIC_GAUGE, "rms_mcu_conferences", "mcu,room",
		  "Conferences an MCU runs, as its heartbeat and rms's allocations say." },
		{ &m->mcu_cap, CDR_METRIC_GAUGE, "rms_mcu_capacity_conferences", "mcu,room",
		  "Conferences an MCU can run (its registration)." },
		{ &m->vrs, CDR_METRIC_GAUGE, "rms_vrs", "room,state",
		  "VRSs (recorders) by room and state (up, down)." },
		{ &m->rsv, CDR_METRIC_GAUGE, "rms_reservations", NULL,
		  "Allocations made and not yet confirmed or released by css." },
		{ &m->allocs, CDR_METRIC_GAUGE, "rms_allocations", NULL,
		  "Allocations confirmed by css (conferences placed)." },
		{ &m->alloc_total, CDR_METRIC_COUNTER, "rms_allocations_total", "result",
		  "Allocations answered by this rms since it started: result ok or failed." },
		{ &m->hb_refused, CDR_METRIC_COUNTER, "rms_heartbeats_refused_total", NULL,
		  "MCU heartbeats refused for a sequence number too far ahead." },
		{ &m->nacks, CDR_METRIC_COUNTER, "rms_nacks_total", "request,reason",
		  "Refusals (NACKs) of requests to rms (css's allocations, MCUs' registrations, operators'), by "
		  "request type and reason; an answer given again from the reply cache is not counted." },
	};

	if (!m)
		return -ENOMEM;
	s->m = m;
	return cdr_metrics_register(reg, defs, sizeof(defs) / sizeof(defs[0]));
}

void rms_metric_nack(struct rms *s, const struct cdr_msg *m, const json_t *body)
{
	if (s->m)
		cdr_metric_add(s->m->nacks, 1, cdr_msg_type(m), json_string_value(json_object_get(body, "reason")));
}

void rms_metrics_fill(struct cdr_daemon *d, void *server)
{
	static const char *const states[] = { "up", "down", "drain" };
	struct rms *s = server;
	struct rms_metrics *m = s->m;
	size_t n = 0, nv = 0;
	const struct rms_mcu **mcus;
	const struct rms_vrs **vrss;

	(void)d;
	if (!m)
		return;
	/* rebuilt each time: MCUs and rooms come and go (a standby has none) */
	cdr_metric_clear(m->mcus);
	cdr_metric_clear(m->mcu_state);
	cdr_metric_clear(m->mcu_confs);
	cdr_metric_clear(m->mcu_cap);
	cdr_metric_clear(m->vrs);
	mcus = rms_inv_mcus(s->inv, NULL, &n);
	for (size_t i = 0; i < n; i++) {
		const struct rms_mcu *mc = mcus[i];
		const char *st = rms_mcu_state_name(mc);

		for (size_t k = 0; k < 3; k++) /* every state of a room, 0 included */
			cdr_metric_add(m->mcus, strcmp(states[k], st) ? 0 : 1, mc->room, states[k]);
		cdr_metric_set(m->mcu_state, 1, mc->id, mc->room, st);
		cdr_metric_set(m->mcu_confs, (double)rms_mcu_running(mc), mc->id, mc->room);
		cdr_metric_set(m->mcu_cap, (double)mc->cap_confs, mc->id, mc->room);
	}
	free(mcus);
	vrss = rms_inv_vrss(s->inv, NULL, &nv);
	for (size_t i = 0; i < nv; i++) {
		bool up = vrss[i]->live.state == RMS_UP;

		cdr_metric_add(m->vrs, up ? 1 : 0, vrss[i]->room, "up");
		cdr_metric_add(m->vrs, up ? 0 : 1, vrss[i]->room, "down");
	}
	free(vrss);
	cdr_metric_set(m->rsv, (double)rms_inv_nreservations(s->inv));
	cdr_metric_set(m->allocs, (double)rms_inv_nallocations(s->inv));
	cdr_metric_set(m->alloc_total, (double)s->n_alloc_ok, "ok");
	cdr_metric_set(m->alloc_total, (double)s->n_alloc_failed, "failed");
	cdr_metric_set(m->hb_refused, (double)s->seq_refused);
}

const char *rms_not_ready(struct cdr_daemon *d, void *server)
{
	struct rms *s = server;

	(void)d;
	if (!s->active)
		return NULL;
	if (!s->topo)
		return "active, the topology not read yet";
	if (!s->announced)
		return "active, its restart not announced to css yet";
	return NULL;
}
