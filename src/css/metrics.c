/* css's metrics (docs/metrics.md): the counters css keeps anyway (s->n,
 * also in confdrctl status) copied in at each scrape, the conferences per
 * state counted then, and what only exists here: refusals by reason and the
 * create and restore latency histograms, recorded as they happen. */
#include "css_int.h"

#include <confdr/metrics.h>

struct css_metrics {
	struct cdr_metric *confs, *serving, *creates, *create_s, *nacks, *restore_q, *restoring, *restores, *restore_s,
		*lost, *events, *history_q, *plat_down, *room_abnormal, *isolated;
};

/* Seconds; a create is answered within [css] create_timeout (5 s) plus an rms wait. */
static const double create_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
/* Seconds from the loss (an MCU, room or platform failure seen) to running again. */
static const double restore_buckets[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 };

int css_metrics_init(struct css *s)
{
	struct cdr_metrics *reg = cdr_daemon_metrics(s->d);
	struct css_metrics *m = calloc(1, sizeof(*m));
	const struct cdr_metric_def defs[] = {
		{ &m->confs, CDR_METRIC_GAUGE, "css_conferences", "state",
		  "Conferences this css acts for, by state of css's state machine (docs/css.md)." },
		{ &m->serving, CDR_METRIC_GAUGE, "css_serving", NULL,
		  "1 while this css takes the CM's requests (active, its view rebuilt), else 0." },
		{ &m->creates, CDR_METRIC_COUNTER, "css_creates_total", "result",
		  "Creates answered after css took them up: result ack (the conference runs) or nack." },
		{ &m->nacks, CDR_METRIC_COUNTER, "css_nacks_total", "request,reason",
		  "Refusals (NACKs) of the CM's requests, by request type and reason." },
		{ &m->restore_q, CDR_METRIC_GAUGE, "css_restore_queue", NULL,
		  "Conferences this css acts for waiting to be restored (an allocation, a slot in the restore "
		  "window)." },
		{ &m->restoring, CDR_METRIC_GAUGE, "css_restores_in_flight", NULL,
		  "Re-creates of restored conferences in flight (at most [css] restore_window)." },
		{ &m->restores, CDR_METRIC_COUNTER, "css_restores_total", "result",
		  "Conferences restored (result restored) or given up after restore_attempts (result failed)." },
		{ &m->lost, CDR_METRIC_COUNTER, "css_conferences_lost_total", NULL,
		  "Conferences lost with their MCU, room or platform (each then restored or failed)." },
		{ &m->events, CDR_METRIC_COUNTER, "css_events_total", "event",
		  "css's other counters (those of confdrctl status), by event: docs/metrics.md lists them." },
		{ &m->history_q, CDR_METRIC_GAUGE, "css_history_queue", NULL,
		  "Conferences whose history row waits to be written to MySQL." },
		{ &m->plat_down, CDR_METRIC_GAUGE, "css_platform_down", "target_platform",
		  "1 while css treats the platform as down (pms's word, or its Redis not home yet), else 0." },
		{ &m->room_abnormal, CDR_METRIC_GAUGE, "css_room_abnormal", "room",
		  "1 while pms's latest notice says the room is abnormal, as css heard it, else 0." },
		{ &m->isolated, CDR_METRIC_GAUGE, "css_isolated", NULL,
		  "1 while this css has released its platform (isolated: its pms unheard), else 0." },
	};
	int r;

	if (!m)
		return -ENOMEM;
	s->m = m;
	if ((r = cdr_metrics_register(reg, defs, sizeof(defs) / sizeof(defs[0]))) < 0)
		return r;
	if ((r = cdr_metrics_histogram(
		     reg, "css_create_seconds",
		     "Time from a CM's create request to its answer (ack) or refusal (nack), seconds.", "result",
		     create_buckets, sizeof(create_buckets) / sizeof(create_buckets[0]), &m->create_s)) < 0 ||
	    (r = cdr_metrics_histogram(reg, "css_restore_seconds",
				       "Time from a conference's loss to its running again elsewhere, seconds.", NULL,
				       restore_buckets, sizeof(restore_buckets) / sizeof(restore_buckets[0]),
				       &m->restore_s)) < 0)
		return r;
	return 0;
}

void css_metric_nack(struct css *s, const char *request, const char *reason)
{
	if (s->m)
		cdr_metric_add(s->m->nacks, 1, request ? request : "", reason ? reason : "");
}

void css_metric_create_answered(struct css *s, uint64_t t0, bool ack)
{
	if (s->m)
		cdr_metric_observe(s->m->create_s, (double)(cdr_now_ms() - t0) / 1000.0, ack ? "ack" : "nack");
}

void css_metric_restored(struct css *s, const struct conf *c)
{
	if (s->m && c->lost_mono)
		cdr_metric_observe(s->m->restore_s, (double)(cdr_now_ms() - c->lost_mono) / 1000.0);
}

void css_metrics_fill(struct cdr_daemon *d, void *server)
{
	struct css *s = server;
	struct css_metrics *m = s->m;
	size_t per[CSS_NSTATES] = { 0 }, it = 0, queued = 0;
	const char *k;
	void *v;
	const struct {
		const char *event;
		uint64_t n;
	} events[] = {
		{ "ended", s->n.ended },
		{ "orphans_ended", s->n.orphans_ended },
		{ "missing", s->n.missing },
		{ "late_acks", s->n.late_acks },
		{ "duplicates", s->n.duplicates },
		{ "refused", s->n.refused },
		{ "moved_ended", s->n.moved_ended },
		{ "adopted", s->n.adopted },
		{ "sm_refused", s->n.sm_refused },
		{ "mcu_restarts", s->n.mcu_restarts },
		{ "stale_lists", s->n.stale_lists },
		{ "stale_rms_notices", s->n.stale_rms_notices },
		{ "repeated_extends", s->n.repeated_extends },
		{ "relayed", s->n.relayed },
		{ "reused_ids", s->n.reused_ids },
		{ "orphans_damped", s->n.orphans_damped },
		{ "releases", s->n.releases },
		{ "released", s->n.released },
		{ "repl_timeouts", s->n.repl_timeouts },
		{ "isolated_nacks", s->n.isolated_nacks },
	};

	(void)d;
	if (!m)
		return;
	while (cdr_hmap_next(s->confs, &it, &k, &v))
		if (css_acts_for(s, v))
			per[((struct conf *)v)->state]++;
	for (int i = 0; i < CSS_NSTATES; i++)
		cdr_metric_set(m->confs, (double)per[i], css_state_name((enum css_state)i));
	cdr_metric_set(m->serving, s->consuming ? 1 : 0);
	cdr_metric_set(m->creates, (double)s->n.created, "ack");
	cdr_metric_set(m->creates, (double)s->n.create_failed, "nack");
	/* a platform handed over (declared down: its backup's css restores
	 * them) keeps its records queued here, not this css's backlog */
	for (size_t i = 0; i < s->restore_q.n; i++)
		queued += css_acts_for(s, s->restore_q.v[i]);
	cdr_metric_set(m->restore_q, (double)queued);
	cdr_metric_set(m->restoring, (double)s->restoring);
	cdr_metric_set(m->restores, (double)s->n.restored, "restored");
	cdr_metric_set(m->restores, (double)s->n.restore_failed, "failed");
	cdr_metric_set(m->lost, (double)s->n.lost);
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
		cdr_metric_set(m->events, (double)events[i].n, events[i].event);
	cdr_metric_set(m->history_q, (double)s->dbq.n);
	for (size_t i = 0; i < s->nplats; i++)
		cdr_metric_set(m->plat_down, css_plat_down(s->plats[i].id, s) ? 1 : 0, s->plats[i].id);
	for (size_t i = 0; i < s->nrooms; i++)
		cdr_metric_set(m->room_abnormal, s->rooms[i].abnormal ? 1 : 0, s->rooms[i].id);
	cdr_metric_set(m->isolated, s->released ? 1 : 0);
}

const char *css_not_ready(struct cdr_daemon *d, void *server)
{
	struct css *s = server;

	(void)d;
	if (!s->active)
		return NULL; /* a standby has no state of its own to have */
	if (!s->topo)
		return "active, the topology not read yet";
	if (!s->pms_known)
		return "active, waiting for pms's platform state";
	if (!s->consuming)
		return "active, its view of the conferences not rebuilt yet";
	return NULL;
}
