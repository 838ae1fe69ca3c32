/* confdr-rms: the daemon's life. Its settings ([rms] keys), start and
 * stop, the role (active: consume rms.res.q and rms.req.q; standby: cancel
 * the consumers and forget the inventory), the links, the topology, the tick
 * (liveness, reservations, answers kept), and the deliveries of both queues,
 * handed to registrations.c and requests.c. docs/rms.md describes the whole
 * service; rms_int.h lists the files and what each does. */
#include "rms_int.h"

#define K(key, type, field, def, min, max, help)                                                                       \
	{                                                                                                              \
		"rms", key, type, offsetof(struct rms_conf, field), def, min, max, NULL, NULL, help, NULL, 0           \
	}

const struct cdr_conf_key rms_conf_keys[] = {
	K("heartbeat_interval", CDR_CONF_MS, heartbeat_ms, "500ms", 100, 60000,
	  "heartbeat interval told to MCUs and VRS at registration (keepalived's delay_loop)"),
	K("heartbeat_misses", CDR_CONF_INT, misses, "3", 1, 100,
	  "declared down after this many missed heartbeats (retries)"),
	K("heartbeat_rise", CDR_CONF_INT, rise, "2", 1, 100,
	  "a down MCU or VRS is up again after this many consecutive heartbeats"),
	K("broker_return_grace", CDR_CONF_MS, return_grace_ms, "12s", 0, 600000,
	  "when rms's own broker link comes back, every MCU and VRS that was up has this long (or a heartbeat "
	  "window, if longer) to be heard again: they re-connect to the broker with their own back-off (confdr's: "
	  "at most 10 s)"),
	K("reservation_timeout", CDR_CONF_MS, reservation_ms, "30s", 1000, 3600000,
	  "a reservation neither confirmed nor released expires after this"),
	K("default_ports", CDR_CONF_INT, default_ports, "16", 1, 100000,
	  "ports reserved for an allocation that names none"),
	K("domain_max_confs", CDR_CONF_INT, domain_max_confs, "0", 0, 1000000,
	  "conference-count limit of a user domain, told by capability answers; 0: none"),
	K("topology_refresh", CDR_CONF_MS, topology_refresh_ms, "30s", 1000, 3600000,
	  "how often the topology is read again from ZooKeeper"),
	K("reply_cache", CDR_CONF_INT, reply_cache, "10000", 0, 1000000,
	  "answers kept by request id, so a redelivered request is answered again, not executed twice"),
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};

static void policy_from_conf(const struct rms_conf *c, struct rms_policy *p)
{
	p->heartbeat_ms = (int64_t)c->heartbeat_ms;
	p->misses = (int)c->misses;
	p->rise = (int)c->rise;
	p->reservation_ms = (int64_t)c->reservation_ms;
	p->default_ports = c->default_ports;
}

/* ---- deliveries ---- */

static void h_heartbeat(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	rms_on_heartbeat(arg, dl, m, cdr_msg_type(m)[0] == 'v');
}

static void h_register_mcu(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	rms_on_register_mcu(arg, dl, m);
}

static void h_register_vrs(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	rms_on_register_vrs(arg, dl, m);
}

static void h_alloc(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	if (!rms_fenced(arg, dl, m))
		rms_on_alloc(arg, dl, m);
}

static void h_bulkalloc(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	if (!rms_fenced(arg, dl, m))
		rms_on_bulkalloc(arg, dl, m);
}

static void h_reservations(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	if (!rms_fenced(arg, dl, m))
		rms_on_reservations(arg, dl, m, !strcmp(cdr_msg_type(m), "mau_rms_confirm_req"));
}

static void h_capability(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	rms_on_capability(arg, dl, m);
}

static void h_drain(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	rms_on_drain(arg, dl, m);
}

static void h_inventory(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	rms_on_inventory(arg, dl, m);
}

/* rms.res.q (MCUs and VRS) and rms.req.q (css and operators): one table. */
static const struct cdr_handler handlers[] = {
	{ "cmu_rms_heartbeat_ntf", CDR_H_NOTICE, "mcu", h_heartbeat },
	{ "vrs_rms_heartbeat_ntf", CDR_H_NOTICE, "vrs", h_heartbeat },
	{ "cmu_rms_register_req", CDR_H_REQUEST, "mcu", h_register_mcu },
	{ "vrs_rms_register_req", CDR_H_REQUEST, "vrs", h_register_vrs },
	{ "mau_rms_alloc_req", CDR_H_REQUEST, "css", h_alloc },
	{ "mau_rms_bulkalloc_req", CDR_H_REQUEST, "css", h_bulkalloc },
	{ "mau_rms_confirm_req", CDR_H_REQUEST, "css", h_reservations },
	{ "mau_rms_release_req", CDR_H_REQUEST, "css", h_reservations },
	{ "mau_rms_capability_req", CDR_H_REQUEST, "css", h_capability },
	{ "ctl_rms_drain_req", CDR_H_REQUEST, "ctl", h_drain },
	{ "ctl_rms_inventory_req", CDR_H_REQUEST, "ctl|pms|css", h_inventory }, /* pms: MCU checks; css: audit */
	{ NULL, 0, NULL, NULL },
};

static struct cdr_bus *rms_bus(void *server)
{
	return &((struct rms *)server)->bus;
}

static bool rms_serving(void *server)
{
	return ((struct rms *)server)->active && cdr_daemon_acting(((struct rms *)server)->d);
}

/* A redelivered request (not a registration: those are answered afresh) is
 * answered again from the cache, never executed twice. */
static bool answered_before(void *server, const struct cdr_handler *h, struct cdr_mq_delivery *dl,
			    const struct cdr_msg *m)
{
	struct rms *s = server;
	struct cached *c;

	char fp[CDR_MSG_FP_LEN], detail[200];

	if (!(h->flags & CDR_H_REQUEST) || h->fn == h_register_mcu || h->fn == h_register_vrs ||
	    !(c = cdr_hmap_get(s->cache, cdr_msg_id(m))))
		return false;
	cdr_msg_fingerprint(m, fp, sizeof(fp));
	if (strcmp(fp, c->fp)) {
		/* another request with the id of one answered: refused, and the
		 * answer kept for that id stays its own */
		snprintf(detail, sizeof(detail), "request id %s was used before by another request", cdr_msg_id(m));
		cdr_warn("%s %s from %s refused: %s", cdr_msg_type(m), cdr_msg_id(m), cdr_msg_src(m), detail);
		rms_answer(s, dl, m, false, cdr_bus_nack_body("bad_request", detail), false);
		return true;
	}
	cdr_info("%s %s answered again (a redelivery): not executed twice", cdr_msg_type(m), cdr_msg_id(m));
	cdr_bus_reply_and_ack(&s->bus, dl, c->txt);
	return true;
}

static const struct cdr_dispatch req_dispatch = {
	.daemon = "rms",
	.queue = CDR_MQ_RMS_REQ_Q,
	.nack_type = "rms_any_request_nack",
	.handlers = handlers,
	.bus = rms_bus,
	.serving = rms_serving,
	.before = answered_before,
};

static const struct cdr_dispatch res_dispatch = {
	.daemon = "rms",
	.queue = CDR_MQ_RMS_RES_Q,
	.max_len = CDR_MSG_MAX_SMALL, /* registrations and heartbeats: refused unparsed beyond */
	.nack_type = "rms_any_request_nack",
	.handlers = handlers,
	.bus = rms_bus,
	.serving = rms_serving,
	.before = answered_before,
};

static void on_req(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&req_dispatch, dl, arg);
}

static void on_res(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&res_dispatch, dl, arg);
}

/* ---- life ---- */

static void on_tick(void *arg)
{
	struct rms *s = arg;
	size_t expired;

	int64_t now = cdr_mono_i64();

	if (!s->active)
		return;
	/* This loop stood still (frozen, starved) longer than a heartbeat
	 * interval: the heartbeats of that time were not read, so they say
	 * nothing about the MCUs. Every MCU and VRS up gets a whole window from
	 * now, as after a broker outage (docs/rms.md, "rms's own stall"). */
	if (s->last_tick_ms && !s->inv_blind && now - s->last_tick_ms > (int64_t)s->conf.heartbeat_ms) {
		cdr_notice("this rms's loop stood still for %" PRId64 " ms: no MCU or VRS is judged on heartbeats it "
			   "could not read; each gets a whole heartbeat window from now",
			   now - s->last_tick_ms);
		rms_inv_blind(s->inv, true, now, 0);
		rms_inv_blind(s->inv, false, now, 0);
	}
	s->last_tick_ms = now;
	expired = rms_inv_tick(s->inv, now);
	if (expired)
		cdr_info("%zu reservations expired (neither confirmed nor released within %" PRIu64 " ms)", expired,
			 s->conf.reservation_ms);
	rms_cache_prune(s, false);
}

static void on_topology(struct cdr_topology *t, void *arg)
{
	struct rms *s = arg;

	if (!s->topo)
		cdr_info("topology: %zu platforms, %zu rooms, %zu user domains", cdr_topology_nplatforms(t),
			 cdr_topology_nrooms(t), cdr_topology_nuser_domains(t));
	rms_inv_set_topology(s->inv, t);
	cdr_topology_free(s->topo);
	s->topo = t;
	rms_maybe_announce(s);
}

static int rms_init(struct cdr_daemon *d, void **server)
{
	const struct rms_conf *cf = cdr_daemon_conf(d);
	struct rms_policy p;
	struct rms *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->d = d;
	s->conf = *cf;
	s->css_epoch = -1;
	snprintf(s->platform, sizeof(s->platform), "%s", cf->base.platform);
	cdr_bus_init(&s->bus, d, "rms", cf->base.platform);
	TAILQ_INIT(&s->cached);
	policy_from_conf(cf, &p);
	s->inv = rms_inv_new(s->platform, &p, rms_on_inv_event, s);
	s->cache = cdr_hmap_new();
	if (!s->inv || !s->cache || rms_metrics_init(s) < 0) {
		rms_inv_free(s->inv);
		cdr_hmap_free(s->cache);
		free(s->m);
		free(s);
		return -ENOMEM;
	}
	if ((r = cdr_timer_new(cdr_daemon_loop(d), on_tick, s, &s->tick)) < 0 ||
	    (r = cdr_topo_follow_new(d, &s->conf.topology_refresh_ms, on_topology, s, &s->follow)) < 0) {
		cdr_timer_free(s->tick);
		rms_inv_free(s->inv);
		cdr_hmap_free(s->cache);
		free(s->m);
		free(s);
		return r;
	}
	*server = s;
	return 0;
}

static uint64_t tick_ms(const struct rms *s)
{
	uint64_t t = s->conf.heartbeat_ms / 4;

	return t < 20 ? 20 : t > 1000 ? 1000 : t;
}

static void rms_on_link(struct cdr_daemon *d, void *server, const char *link, bool up)
{
	struct rms *s = server;

	(void)d;
	if (!strcmp(link, "amqp")) {
		if (!up)
			cdr_notice("broker link down: no MCU or VRS is declared down for heartbeats it cannot receive");
		else if (s->inv_blind) {
			cdr_notice(
				"broker link back: every MCU and VRS up gets %" PRIu64
				" ms from now to be heard again (broker_return_grace: they re-connect with their own "
				"back-off); nothing is allocated on an MCU until it is",
				s->conf.return_grace_ms);
			s->link_back_ms = cdr_mono_i64();
		}
		s->inv_blind = !up;
		rms_inv_blind(s->inv, !up, cdr_mono_i64(), (int64_t)s->conf.return_grace_ms);
	}
	if (!up)
		return;
	if (!strcmp(link, "zookeeper") && !s->topo)
		cdr_topo_follow_fetch(s->follow);
	if (!strcmp(link, "amqp"))
		rms_maybe_announce(s); /* its queues: taken again by the common life */
}

static void rms_on_role(struct cdr_daemon *d, void *server, bool active, int64_t epoch)
{
	struct rms *s = server;

	s->active = active;
	s->epoch = epoch;
	s->announced = false;
	s->css_epoch = -1;
	rms_cache_prune(s, true);
	rms_inv_reset(s->inv, epoch);
	s->last_tick_ms = 0;
	s->active_since_ms = cdr_mono_i64();
	/* A new leader declares no MCU down for silence during
	 * broker_return_grace: each registers again, some only after their
	 * registration held by a frozen former leader times out (docs/rms.md,
	 * "Warm-up"). */
	rms_inv_quiet(s->inv, s->active_since_ms + (int64_t)s->conf.return_grace_ms);
	if (active) {
		cdr_timer_start(s->tick, tick_ms(s), true);
		cdr_daemon_ready(d, CDR_READY_SERVE);
		rms_maybe_announce(s);
	} else {
		cdr_timer_stop(s->tick); /* its queues were cancelled by the common life */
	}
}

static void rms_reload(struct cdr_daemon *d, void *server, const void *conf)
{
	struct rms *s = server;
	const struct rms_conf *cf = conf;
	struct rms_policy p;

	(void)d;
	s->conf.heartbeat_ms = cf->heartbeat_ms;
	s->conf.misses = cf->misses;
	s->conf.rise = cf->rise;
	s->conf.reservation_ms = cf->reservation_ms;
	s->conf.default_ports = cf->default_ports;
	s->conf.domain_max_confs = cf->domain_max_confs;
	s->conf.topology_refresh_ms = cf->topology_refresh_ms;
	s->conf.reply_cache = cf->reply_cache;
	policy_from_conf(cf, &p);
	rms_inv_set_policy(s->inv, &p);
	if (s->active)
		cdr_timer_start(s->tick, tick_ms(s), true);
	cdr_info("rms settings applied: heartbeat %" PRIu64 " ms x %" PRId64 " misses, rise %" PRId64
		 ", reservations %" PRIu64 " ms (MCUs keep the heartbeat they registered with until they register "
		 "again)",
		 cf->heartbeat_ms, cf->misses, cf->rise, cf->reservation_ms);
}

static void rms_free(void *server)
{
	struct rms *s = server;

	if (!s)
		return;
	cdr_info("allocations answered: %" PRIu64 " made, %" PRIu64 " refused", s->n_alloc_ok, s->n_alloc_failed);
	rms_cache_prune(s, true);
	cdr_hmap_free(s->cache);
	cdr_timer_free(s->tick);
	cdr_topo_follow_free(s->follow);
	rms_inv_free(s->inv);
	cdr_topology_free(s->topo);
	free(s->m); /* its families are the registry's */
	free(s);
}

/* What the active rms takes: MCUs' and VRS' registrations and heartbeats,
 * css's and operators' requests (docs/rms.md, Queues). */
static const struct cdr_daemon_queue rms_queues[] = {
	{ CDR_MQ_RMS_RES_Q, NULL, on_res, CDR_READY_SERVE },
	{ CDR_MQ_RMS_REQ_Q, NULL, on_req, CDR_READY_SERVE },
	{ NULL, NULL, NULL, CDR_READY_NONE },
};

const struct cdr_daemon_ops rms_daemon_ops = {
	.name = "rms",
	.summary = "confdr resource management service: MCU/VRS inventory, heartbeats and allocation.",
	.keys = rms_conf_keys,
	.conf_size = sizeof(struct rms_conf),
	.uses_redis = false,
	.uses_mysql = false,
	.init = rms_init,
	.on_link = rms_on_link,
	.on_role = rms_on_role,
	.reload = rms_reload,
	.free = rms_free,
	.metrics = rms_metrics_fill,
	.not_ready = rms_not_ready,
	.queues = rms_queues,
};
