/* confdr-css: the daemon's life. Its settings ([css] keys), start and
 * stop, the role (active: consume; standby: drop the view), the links to
 * ZooKeeper, RabbitMQ, Redis and MySQL, the topology, and the counters
 * published for confdrctl status. docs/css.md describes the whole service;
 * css_int.h lists the files and what each does. */
#include "css_int.h"

#include <malloc.h>

static void css_free(void *server);

#define K(key, type, field, def, min, max, help)                                                                       \
	{                                                                                                              \
		"css", key, type, offsetof(struct css_conf, field), def, min, max, NULL, NULL, help, NULL, 0           \
	}

const struct cdr_conf_key css_conf_keys[] = {
	K("create_timeout", CDR_CONF_MS, create_timeout_ms, "5s", 100, 600000,
	  "an MCU that has not answered a create in this time: the create fails (mcu_timeout); keep it below rms's "
	  "reservation_timeout"),
	K("end_timeout", CDR_CONF_MS, end_timeout_ms, "5s", 100, 600000,
	  "an MCU that has not answered an end in this time: the conference is closed anyway"),
	K("rms_timeout", CDR_CONF_MS, rms_timeout_ms, "2s", 100, 60000, "a request to rms gives up after this"),
	K("rms_patience", CDR_CONF_MS, rms_patience_ms, "10s", 0, 600000,
	  "a create's requests to rms (capability, allocation) are sent again after each rms_timeout without an "
	  "answer, for this long: a standby rms takes over within the ZooKeeper session; 0: never again"),
	K("pms_silence", CDR_CONF_MS, pms_silence_ms, "2s", 0, 60000,
	  "no beat of any pms of the platform on the broker and none written to ZooKeeper for this long: css "
	  "releases the platform (ends its conferences on its MCUs) before the backup may declare it down (the "
	  "beat limit and a half of bus silence); keep it at the beat limit; 0: never"),
	K("pms_retry", CDR_CONF_MS, pms_retry_ms, "1s", 100, 60000,
	  "at start-up the platform state is asked of pms this often until it answers"),
	K("expiry_tick", CDR_CONF_MS, expiry_tick_ms, "500ms", 50, 10000,
	  "how often the expiry sorted set is read: conferences end at most this long after their planned end"),
	K("answer_ttl", CDR_CONF_MS, answer_ttl_ms, "1h", 1000, 604800000,
	  "answers to the CM are kept in Redis this long, so a redelivered request is answered again, not executed "
	  "twice"),
	K("resume_window", CDR_CONF_MS, resume_window_ms, "15s", 1000, 600000,
	  "after a restart, a conference found creating waits this long for its request to be redelivered before it "
	  "is abandoned (ended on its MCU, reservation released)"),
	K("replica_wait", CDR_CONF_MS, replica_wait_ms, "3s", 0, 60000,
	  "a create's ACK waits this long at most for the platform's Redis replica (on the backup platform's host) "
	  "to confirm it has the record; longer than an isolation takes to be known (0: no wait)"),
	K("list_grace", CDR_CONF_MS, list_grace_ms, "3s", 0, 600000,
	  "reconciliation leaves alone conferences created or changed less than this before an MCU's list"),
	K("template_refresh", CDR_CONF_MS, template_refresh_ms, "10s", 500, 3600000,
	  "how often public conference templates are read from MySQL and published into Redis"),
	K("topology_refresh", CDR_CONF_MS, topology_refresh_ms, "30s", 1000, 3600000,
	  "how often the topology is read again from ZooKeeper"),
	K("max_confs_platform", CDR_CONF_INT, max_confs_platform, "0", 0, 10000000,
	  "conference-count limit of this platform (creates beyond it: limit_reached); 0: none"),
	K("max_duration", CDR_CONF_INT, max_duration_min, "1440", 1, 100000,
	  "a conference lasts at most this many minutes, extensions included (limit_reached)"),
	K("db_batch", CDR_CONF_INT, db_batch, "500", 1, 10000, "history rows written to MySQL per transaction"),
	K("upu_batch", CDR_CONF_MS, upu_batch_ms, "20ms", 0, 10000,
	  "E164 reports to UPU wait at most this long to go as one mau_upu_e164_batch_ntf (0: one mau_upu_e164_ntf "
	  "each)"),
	K("mcu_audit", CDR_CONF_MS, mcu_audit_ms, "2s", 200, 600000,
	  "rms's MCU inventory is read this often: conferences on an MCU it does not have up (a down notice missed, "
	  "an MCU gone while css was away) are restored"),
	K("mcu_absent_grace", CDR_CONF_MS, mcu_absent_ms, "5s", 0, 600000,
	  "... once the MCU has been missing from the inventory this long (an rms restart is shorter)"),
	K("restore_window", CDR_CONF_INT, restore_window, "2000", 1, 100000,
	  "re-creates of restored conferences in flight at once (the rest wait for a slot)"),
	K("restore_attempts", CDR_CONF_INT, restore_attempts, "5", 1, 1000,
	  "a conference that could not be restored this many times in a row is ended (restore_failed, alarmed)"),
	K("restore_retry", CDR_CONF_MS, restore_retry_ms, "1s", 100, 600000,
	  "a failed allocation or re-create is tried again after this"),
	K("failback_wait", CDR_CONF_MS, failback_wait_ms, "60s", 1000, 3600000,
	  "the platform declared up while its Redis is not home yet (confdrctl platform failback under way): "
	  "alarmed (failback_wait) after this long; its user domains get platform_down until it is home"),
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};

struct cdr_bus *css_bus(void *server)
{
	return &((struct css *)server)->bus;
}

/* The active instance, with its view rebuilt: it takes the CM's requests and
 * the MCUs' messages; any other requeues them for the one that does. */
bool css_serving_queues(void *server)
{
	struct css *s = server;

	return s->active && s->consuming && cdr_daemon_acting(s->d);
}

void css_maybe_consume(struct css *s)
{
	if (!s->active || !s->topo || !cdr_daemon_mq(s->d))
		return;
	cdr_daemon_ready(s->d, CDR_READY_LISTEN); /* pms's, rms's and the BMC's notices */
	if (!s->pms_known) {
		if (!cdr_timer_pending(s->pms_timer))
			css_ask_pms(s);
		return;
	}
	if (s->home_wait && !css_pms_down(s, s->platform)) {
		css_home_check(s);
		if (!s->home_checked && !s->loaded)
			return; /* its first verdict decides how the view is read */
	}
	css_load_view(s);
	if (!s->loaded)
		return;
	if (!s->consuming) {
		cdr_notice("consuming %s and %s (epoch %" PRId64 ", %zu conferences)", CDR_MQ_MAU_CONF_Q,
			   CDR_MQ_MAU_CMU_Q, s->epoch, cdr_hmap_count(s->confs));
		s->consuming = true;
		css_publish_stats(s); /* serving: confdrctl platform failback waits for it */
		/* rooms that went abnormal while css was away or starting */
		for (size_t i = 0; i < s->nrooms; i++)
			if (s->rooms[i].abnormal)
				css_room_failed(s, s->rooms[i].id);
		css_takeover_check(s);
	}
	cdr_daemon_ready(s->d, CDR_READY_SERVE); /* the MCUs' messages, then the CM's requests */
	if (!cdr_timer_pending(s->expiry_timer))
		cdr_timer_start(s->expiry_timer, s->conf.expiry_tick_ms, true);
	if (!cdr_timer_pending(s->audit_timer))
		cdr_timer_start(s->audit_timer, s->conf.mcu_audit_ms, true);
	if (!cdr_timer_pending(s->tpl_timer))
		css_read_templates(s);
}

/* Drops everything in flight and the view (a standby, or the end). */
void css_drop_view(struct css *s)
{
	size_t it = 0;
	const char *k;
	void *v;

	s->gen++;
	css_close_waits_cancel(s);
	s->consuming = false;
	s->loaded = s->loading = false;
	cdr_timer_stop(s->expiry_timer);
	cdr_timer_stop(s->audit_timer);
	s->audit_pending = false;
	while (cdr_hmap_next(s->reqs, &it, &k, &v)) {
		css_op_done(v); /* removes itself */
		it = 0;
	}
	it = 0;
	while (cdr_hmap_next(s->mcu_ops, &it, &k, &v)) {
		css_op_done(v);
		it = 0;
	}
	it = 0;
	s->dbq.n = 0; /* emptied first: freeing a queued conference looks for it there */
	s->restore_q.n = 0;
	s->storeq.n = 0;
	while (cdr_hmap_next(s->confs, &it, &k, &v)) {
		struct conf *c = v;

		if (c->op)
			css_op_done(c->op);
		css_conf_free(s, c);
		it = 0;
	}
	s->db_busy = false;
	s->restoring = 0;
	s->alloc_pending = false;
	cdr_timer_stop(s->restore_timer);
	cdr_timer_stop(s->store_timer);
	cdr_timer_stop(s->db_timer);
	json_decref(s->confirm.ids);
	json_decref(s->release.ids);
	s->confirm.ids = s->release.ids = NULL;
}

/* After many conferences went (ended, handed back), the memory they held
 * goes back to the system: malloc keeps freed memory for reuse otherwise,
 * and an idle css would stay at its peak. */
static void give_back_memory(struct css *s)
{
	size_t n = cdr_hmap_count(s->confs);

	if (n > s->confs_peak)
		s->confs_peak = n;
	if (s->confs_peak - n < 1000 || n > s->confs_peak / 2)
		return;
	cdr_debug("%zu conferences, %zu at the peak: freed memory given back (malloc_trim)", n, s->confs_peak);
	malloc_trim(0);
	s->confs_peak = n;
}

/* Conferences per state and the counters, in the liveness node (confdrctl status). */
void css_publish_stats(void *arg)
{
	struct css *s = arg;
	size_t per[CSS_NSTATES] = { 0 }, it = 0;
	const char *k;
	void *v;
	json_t *st = json_object(), *o;
	size_t others = 0; /* records of a platform handed back (hosted here, not ours to act on) */

	while (cdr_hmap_next(s->confs, &it, &k, &v)) {
		if (css_acts_for(s, v))
			per[((struct conf *)v)->state]++;
		else
			others++;
	}
	for (int i = 0; i < CSS_NSTATES; i++)
		json_object_set_new(st, css_state_name((enum css_state)i), json_integer((json_int_t)per[i]));
	o = json_pack("{s:b, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "serving", s->consuming, "confs",
		      (json_int_t)(cdr_hmap_count(s->confs) - others), "states", st, "created",
		      (json_int_t)s->n.created, "create_failed", (json_int_t)s->n.create_failed, "ended",
		      (json_int_t)s->n.ended, "orphans_ended", (json_int_t)s->n.orphans_ended, "missing",
		      (json_int_t)s->n.missing, "late_acks", (json_int_t)s->n.late_acks, "duplicates",
		      (json_int_t)s->n.duplicates);
	if (o)
		json_object_update_new(o, json_pack("{s:I, s:I, s:I, s:I, s:I}", "lost", (json_int_t)s->n.lost,
						    "restored", (json_int_t)s->n.restored, "restore_failed",
						    (json_int_t)s->n.restore_failed, "moved_ended",
						    (json_int_t)s->n.moved_ended, "adopted", (json_int_t)s->n.adopted));
	if (o)
		json_object_update_new(
			o,
			json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "sm_refused", (json_int_t)s->n.sm_refused,
				  "mcu_restarts", (json_int_t)s->n.mcu_restarts, "stale_lists",
				  (json_int_t)s->n.stale_lists, "stale_rms_notices", (json_int_t)s->n.stale_rms_notices,
				  "repeated_extends", (json_int_t)s->n.repeated_extends, "relayed",
				  (json_int_t)s->n.relayed, "reused_ids", (json_int_t)s->n.reused_ids));
	if (o)
		json_object_update_new(o,
				       json_pack("{s:I, s:I, s:I, s:b}", "orphans_damped",
						 (json_int_t)s->n.orphans_damped, "releases", (json_int_t)s->n.releases,
						 "released", (json_int_t)s->n.released, "isolated", s->released));
	if (o) {
		/* confdrctl platform failback waits on these: the backup's css
		 * no longer serving the platform, the platform's css home */
		json_t *sf = json_array();

		for (size_t i = 0; sf && i < s->nlinks; i++)
			if (!s->links[i].own && s->links[i].serving)
				json_array_append_new(sf, json_string(s->links[i].platform));
		json_object_set_new(o, "serving_for", sf ? sf : json_array());
		json_object_set_new(o, "home_wait", json_boolean(s->home_wait));
	}
	cdr_daemon_set_stats(s->d, o);
	give_back_memory(s);
}

static void flush_reservations(void *arg)
{
	struct css *s = arg;

	css_rsv_flush_one(s, &s->confirm, true);
	css_rsv_flush_one(s, &s->release, false);
}

static void on_other_redis(bool up, const char *why, void *arg)
{
	struct redis_link *l = arg;

	cdr_info("redis of %s (replica for a takeover): %s%s%s", l->platform, up ? "up" : "down", why ? ": " : "",
		 why ? why : "");
}

/* The Redis of every platform whose domains this css may have to serve. */
static void connect_redis(struct css *s)
{
	const char *plats[MAX_REDIS];
	size_t n = css_redis_platforms(s->topo, s->platform, plats, MAX_REDIS);
	/* The replicas take css's own Redis user (deploy/servers.sh gives every
	 * Redis the same users). */
	const struct cdr_daemon_conf *base = &((const struct css_conf *)cdr_daemon_conf(s->d))->base;

	for (size_t i = 0; i < n && i < MAX_REDIS; i++) {
		struct redis_link *l;
		const struct cdr_endpoint *ep;

		if (css_link_of(s, plats[i]))
			continue;
		l = &s->links[s->nlinks];
		l->s = s;
		snprintf(l->platform, sizeof(l->platform), "%s", plats[i]);
		if (i == 0) {
			l->own = true;
			s->nlinks++;
			continue;
		}
		if (!(ep = cdr_topology_replica(s->topo, plats[i], CDR_SVC_REDIS))) {
			cdr_info("no Redis replica of %s in the topology: its domains cannot be served from here",
				 plats[i]);
			continue;
		}
		{
			struct cdr_redis_opts o = {
				.host = ep->host,
				.port = ep->port,
				.db = ep->db,
				.name = l->platform,
				.user = base->redis_user,
				.password = base->redis_password,
				.connect_timeout_ms = (unsigned)s->conf.base.redis_connect_timeout_ms,
				.on_state = on_other_redis,
				.arg = l,
			};

			if (cdr_redis_new(cdr_daemon_loop(s->d), &o, &l->r) == 0)
				s->nlinks++;
		}
	}
}

static void on_topology(struct cdr_topology *t, void *arg)
{
	struct css *s = arg;

	if (!s->topo) {
		cdr_info("topology: %zu platforms, %zu rooms, %zu user domains", cdr_topology_nplatforms(t),
			 cdr_topology_nrooms(t), cdr_topology_nuser_domains(t));
		s->nplats = cdr_topology_nplatforms(t);
		s->plats = calloc(s->nplats ? s->nplats : 1, sizeof(*s->plats));
		for (size_t i = 0; s->plats && i < s->nplats; i++)
			snprintf(s->plats[i].id, sizeof(s->plats[i].id), "%s", cdr_topology_platform_at(t, i)->id);
		s->nrooms = cdr_topology_nrooms(t);
		s->rooms = calloc(s->nrooms ? s->nrooms : 1, sizeof(*s->rooms));
		for (size_t i = 0; s->rooms && i < s->nrooms; i++)
			snprintf(s->rooms[i].id, sizeof(s->rooms[i].id), "%s", cdr_topology_room_at(t, i)->id);
		if (!s->plats)
			s->nplats = 0;
		if (!s->rooms)
			s->nrooms = 0;
		s->topo = t;
		connect_redis(s);
		css_maybe_consume(s);
	} else {
		/* user domains and backup lists may change; platforms and rooms are set at start */
		cdr_topology_free(s->topo);
		s->topo = t;
	}
}

static void copy_scalars(struct css_conf *dst, const struct css_conf *src)
{
	struct cdr_daemon_conf base = dst->base;

	*dst = *src;
	dst->base = base;
	dst->base.redis_connect_timeout_ms = src->base.redis_connect_timeout_ms;
}

static int css_init(struct cdr_daemon *d, void **server)
{
	const struct css_conf *cf = cdr_daemon_conf(d);
	struct css *s = calloc(1, sizeof(*s));
	struct cdr_loop *loop = cdr_daemon_loop(d);

	if (!s)
		return -ENOMEM;
	s->d = d;
	TAILQ_INIT(&s->rms_waits);
	TAILQ_INIT(&s->close_waits);
	copy_scalars(&s->conf, cf);
	memset(&s->conf.base, 0, sizeof(s->conf.base));
	s->conf.base.redis_connect_timeout_ms = cf->base.redis_connect_timeout_ms;
	snprintf(s->platform, sizeof(s->platform), "%s", cf->base.platform);
	cdr_bus_init(&s->bus, d, "css", cf->base.platform);
	if (css_metrics_init(s) < 0 || !(s->confs = cdr_hmap_new()) || !(s->strs = cdr_hmap_new()) ||
	    !(s->uds = cdr_hmap_new()) || !(s->mcus = cdr_hmap_new()) || !(s->reqs = cdr_hmap_new()) ||
	    !(s->mcu_ops = cdr_hmap_new()) || !(s->list_seq = cdr_hmap_new()) || !(s->orphans = cdr_hmap_new()) ||
	    cdr_topo_follow_new(d, &s->conf.topology_refresh_ms, on_topology, s, &s->follow) < 0 ||
	    cdr_timer_new(loop, css_ask_pms, s, &s->pms_timer) < 0 ||
	    cdr_timer_new(loop, css_expiry_tick, s, &s->expiry_timer) < 0 ||
	    cdr_timer_new(loop, flush_reservations, s, &s->flush_timer) < 0 ||
	    cdr_timer_new(loop, css_upu_flush, s, &s->upu_timer) < 0 ||
	    cdr_timer_new(loop, css_read_templates, s, &s->tpl_timer) < 0 ||
	    cdr_timer_new(loop, css_db_retry, s, &s->db_timer) < 0 ||
	    cdr_timer_new(loop, css_publish_stats, s, &s->stats_timer) < 0 ||
	    cdr_timer_new(loop, css_restore_kick, s, &s->restore_timer) < 0 ||
	    cdr_timer_new(loop, css_audit_mcus, s, &s->audit_timer) < 0 ||
	    cdr_timer_new(loop, css_store_retry, s, &s->store_timer) < 0 ||
	    cdr_timer_new(loop, css_takeover_tick, s, &s->takeover_timer) < 0 ||
	    cdr_timer_new(loop, css_home_tick, s, &s->home_timer) < 0 ||
	    cdr_timer_new(loop, css_silence_tick, s, &s->silence_timer) < 0) {
		*server = s;
		return -ENOMEM; /* css_free cleans up */
	}
	cdr_timer_start(s->stats_timer, 1000, true);
	cdr_timer_start(s->silence_timer, 250, true);
	*server = s;
	return 0;
}

static void css_on_link(struct cdr_daemon *d, void *server, const char *link, bool up)
{
	struct css *s = server;

	(void)d;
	if (!up)
		return;
	if (!strcmp(link, "zookeeper") && !s->topo)
		cdr_topo_follow_fetch(s->follow);
	if (!strcmp(link, "mysql"))
		css_db_kick(s);
	css_maybe_consume(s);
}

static void css_on_role(struct cdr_daemon *d, void *server, bool active, int64_t epoch)
{
	struct css *s = server;

	(void)d;
	s->active = active;
	s->epoch = epoch;
	if (active) {
		cdr_notice("active with epoch %" PRId64 ": asking pms for the platform state", epoch);
		/* the silence of pms is judged afresh (a standby listens to no beat) */
		s->beat_any_ms = s->beat_any_ms ? cdr_mono_i64() : 0;
		s->silence.zk_seen_ms = 0;
		s->pms_known = false;
		css_home_begin(s);
		css_maybe_consume(s);
		return;
	}
	css_upu_flush(s); /* what it reported as active goes out */
	css_drop_view(s); /* its queues were cancelled by the common life */
}

static void css_reload(struct cdr_daemon *d, void *server, const void *conf)
{
	struct css *s = server;

	(void)d;
	copy_scalars(&s->conf, conf);
	cdr_info("css settings applied: create timeout %" PRIu64 " ms", s->conf.create_timeout_ms);
}

static void css_free(void *server)
{
	struct css *s = server;
	size_t it = 0;
	const char *k;
	void *v;

	if (!s)
		return;
	css_repl_cancel_all(s);
	css_rms_waits_cancel(s);
	if (s->confs)
		css_drop_view(s);
	for (size_t i = 0; i < s->npeers; i++)
		cdr_mq_free(s->peers[i].mq);
	for (size_t i = 0; i < s->nlinks; i++)
		cdr_db_free(s->links[i].db);
	for (size_t i = 0; i < s->nlinks; i++)
		if (!s->links[i].own)
			cdr_redis_free(s->links[i].r);
	while (s->list_seq && cdr_hmap_next(s->list_seq, &it, &k, &v))
		free(v);
	cdr_hmap_free(s->list_seq);
	css_orphans_forget(s);
	cdr_hmap_free(s->orphans);
	cdr_hmap_free(s->confs);
	cdr_hmap_free(s->strs); /* empty: every conference let its strings go */
	cdr_hmap_free(s->uds);
	cdr_hmap_free(s->mcus);
	cdr_hmap_free(s->reqs);
	cdr_hmap_free(s->mcu_ops);
	cdr_topo_follow_free(s->follow);
	cdr_timer_free(s->pms_timer);
	cdr_timer_free(s->expiry_timer);
	if (s->upu) /* the broker link is gone by now: at most [css] upu_batch of reports */
		cdr_warn("stopping: %zu E164 reports to UPU not sent", json_array_size(s->upu));
	cdr_timer_free(s->upu_timer);
	json_decref(s->upu);
	cdr_timer_free(s->flush_timer);
	cdr_timer_free(s->tpl_timer);
	cdr_timer_free(s->db_timer);
	cdr_timer_free(s->stats_timer);
	cdr_timer_free(s->restore_timer);
	cdr_timer_free(s->audit_timer);
	cdr_timer_free(s->store_timer);
	cdr_timer_free(s->takeover_timer);
	cdr_timer_free(s->home_timer);
	cdr_timer_free(s->silence_timer);
	free(s->restore_q.v);
	free(s->storeq.v);
	cdr_topology_free(s->topo);
	free(s->plats);
	free(s->rooms);
	free(s->dbq.v);
	json_decref(s->templates);
	free(s->templates_txt);
	free(s->m); /* its families are the registry's */
	free(s);
}

/* What the active css takes: the notices once it has the topology, the
 * MCUs' messages and the CM's requests once its view is rebuilt. */
static const struct cdr_daemon_queue css_queues[] = {
	{ NULL, CDR_MQ_PMS_NTF_EX, css_on_pms_ntf, CDR_READY_LISTEN },
	{ NULL, CDR_MQ_PMS_BEAT_EX, css_on_pms_beat, CDR_READY_LISTEN },
	{ NULL, CDR_MQ_RMS_NTF_EX, css_on_rms_ntf, CDR_READY_LISTEN },
	{ NULL, CDR_MQ_MODB_NOTIFY_EX, css_on_modb_ntf, CDR_READY_LISTEN },
	{ CDR_MQ_MAU_CMU_Q, NULL, css_on_mcu_message, CDR_READY_SERVE },
	{ CDR_MQ_MAU_CONF_Q, NULL, css_on_cm_request, CDR_READY_SERVE },
	{ NULL, NULL, NULL, CDR_READY_NONE },
};

const struct cdr_daemon_ops css_daemon_ops = {
	.name = "css",
	.summary = "confdr conference scheduling service: creates, ends and restores conferences.",
	.keys = css_conf_keys,
	.conf_size = sizeof(struct css_conf),
	.uses_redis = true,
	.uses_mysql = true,
	.init = css_init,
	.on_link = css_on_link,
	.on_role = css_on_role,
	.reload = css_reload,
	.free = css_free,
	.metrics = css_metrics_fill,
	.not_ready = css_not_ready,
	.queues = css_queues,
};
