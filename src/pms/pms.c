/* confdr-pms: the daemon's life. Its settings ([pms] keys and [room NAME]
 * sections), start and stop, the role (active: check, decide, consume;
 * standby: stop), the links to ZooKeeper and RabbitMQ, the topology and the
 * timers. docs/pms.md describes the whole service; pms_int.h lists the files
 * and what each does. */
#include "pms_int.h"

#define TICK_MS 100

static const char *check_tcp_list(const char *v);

#define K(key, type, field, def, min, max, help)                                                                       \
	{                                                                                                              \
		"pms", key, type, offsetof(struct pms_conf, field), def, min, max, NULL, NULL, help, NULL, 0           \
	}
#define R(key, type, field, def, min, max, check, help)                                                                \
	{                                                                                                              \
		"", key, type, offsetof(struct pms_room_conf, field), def, min, max, NULL, check, help, NULL, 0        \
	}

static const struct cdr_conf_key room_keys[] = {
	R("tcp", CDR_CONF_STR, tcp, "", 0, 0, check_tcp_list,
	  "TCP checks: name=ip:port[, name=ip:port...] (numeric addresses); each is one check"),
	R("connect_timeout", CDR_CONF_MS, connect_timeout_ms, "1s", 10, 60000, NULL, "a TCP check fails after this"),
	R("interval", CDR_CONF_MS, interval_ms, "1s", 50, 600000, NULL,
	  "TCP and command checks run this often (delay_loop)"),
	R("fall", CDR_CONF_INT, fall, "5", 1, 100, NULL,
	  "a TCP or command check is down after this many failures in a row (interval x fall: longer than a "
	  "restart of what it checks)"),
	R("rise", CDR_CONF_INT, rise, "2", 1, 100, NULL, "... and up again after this many successes in a row"),
	R("mcus", CDR_CONF_BOOL, mcus, "yes", 0, 0, NULL,
	  "check the room's MCUs as a group (rms): down when every known MCU of the room is silent"),
	R("mcu_fall", CDR_CONF_INT, mcu_fall, "1", 1, 100, NULL,
	  "the MCU check is down after this many failed evaluations (rms has already counted missed heartbeats)"),
	R("mcu_rise", CDR_CONF_INT, mcu_rise, "2", 1, 100, NULL, "... and up after this many good ones"),
	R("command", CDR_CONF_STR, command, "", 0, 0, NULL, "optional command check run by /bin/sh -c: exit 0 passes"),
	R("command_timeout", CDR_CONF_MS, command_timeout_ms, "2s", 10, 600000, NULL,
	  "the command is killed after this"),
	R("preempt", CDR_CONF_BOOL, preempt, "no", 0, 0, NULL,
	  "yes: an automatically switched room returns by itself once healthy for preempt_delay; no: an operator "
	  "switches it back"),
	R("preempt_delay", CDR_CONF_MS, preempt_delay_ms, "60s", 0, 86400000, NULL,
	  "healthy this long before a preempt return"),
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};

const struct cdr_conf_key pms_conf_keys[] = {
	K("beat_interval", CDR_CONF_MS, beat_interval_ms, "250ms", 100, 10000,
	  "every pms writes its beat to ZooKeeper this often, then reads the beats of the platforms it backs up"),
	K("beat_session", CDR_CONF_MS, beat_session_ms, "1s", 1000, 60000,
	  "the ZooKeeper session the beats are written and read on, apart from the daemon's own: its client leaves a "
	  "member that stopped answering after 2/3 of it and goes on through another (ZooKeeper's minSessionTimeout "
	  "must allow it)"),
	K("beat_misses", CDR_CONF_INT, beat_misses, "8", 3, 100,
	  "a platform this pms backs up is declared down when its pms has written no beat for this many beat "
	  "intervals while this pms wrote its own (a crash, a power-off, a cut from the ZooKeeper majority)"),
	K("peer_grace", CDR_CONF_MS, peer_grace_ms, "5s", 500, 600000,
	  "... or when none of its pms instances has been live in ZooKeeper and its beat has not changed for this "
	  "long (a clean stop closes the session: a restart is shorter)"),
	K("peer_poll", CDR_CONF_MS, peer_poll_ms, "500ms", 100, 60000,
	  "how often those pms instances are looked up under /live"),
	{ "pms", "follow_main_room", CDR_CONF_BOOL, offsetof(struct pms_conf, follow_main_room), "yes", 0, 0, NULL,
	  NULL, "a platform this pms backs up is declared down when its main room fails its checks", NULL, 0 },
	K("mcu_poll", CDR_CONF_MS, mcu_poll_ms, "1s", 100, 60000,
	  "how often the MCU inventory is read from rms (MCU up/down notices are applied at once)"),
	K("mcu_absent_grace", CDR_CONF_MS, mcu_absent_ms, "5s", 500, 600000,
	  "an MCU missing from rms's inventory this long counts as silent (an rms restart is shorter)"),
	K("rms_timeout", CDR_CONF_MS, rms_timeout_ms, "1s", 100, 60000,
	  "an inventory read from rms gives up after this"),
	K("topology_refresh", CDR_CONF_MS, topology_refresh_ms, "30s", 1000, 3600000,
	  "how often the topology is read again from ZooKeeper"),
	{ "pms", "console_listen", CDR_CONF_STR, offsetof(struct pms_conf, console_listen), "", 0, 0, NULL,
	  pms_console_check_listen,
	  "the web console (docs/console.md) on this loopback ip:port, opened by the active pms; empty: off", NULL, 0 },
	K("console_user", CDR_CONF_STR, console_user, "ops", 0, 0,
	  "the console's HTTP Basic user, and the broker user it acts as (the operators' role, as confdrctl)"),
	K("console_password_file", CDR_CONF_STR, console_password_file, "", 0, 0,
	  "file holding console_user's password (its broker password), not readable by others (relative: to this "
	  "file's directory); required with console_listen"),
	K("console_dir", CDR_CONF_STR, console_dir, "", 0, 0,
	  "the console's static files; empty: BIN/../share/confdr/console, the install prefix's, or the source "
	  "tree's src/pms/console"),
	{ "room", "room", CDR_CONF_GROUP, offsetof(struct pms_conf, rooms), NULL, 0, 0, NULL, NULL,
	  "the checks of one room of this platform; rooms without a section get the defaults (MCU check only)",
	  room_keys, sizeof(struct pms_room_conf) },
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};

static const char *check_tcp_list(const char *v)
{
	char buf[1024], *save = NULL, *tok;

	if (strlen(v) >= sizeof(buf))
		return "too long";
	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq, host[64];
		int port;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		for (char *e = tok + strlen(tok); e > tok && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		eq = strchr(tok, '=');
		if (!eq || eq == tok || eq - tok > 32)
			return "expected name=ip:port[, name=ip:port...]";
		if (pms_probe_parse_addr(eq + 1, host, sizeof(host), &port) < 0)
			return "expected name=ip:port with a numeric IPv4/IPv6 address and a port 1..65535";
	}
	return NULL;
}

/* ---- conf copies ---- */

static void free_rconf(struct pms *s)
{
	for (size_t i = 0; i < s->nrconf; i++) {
		free(s->rnames[i]);
		free(s->rconf[i].tcp);
		free(s->rconf[i].command);
	}
	free(s->rnames);
	free(s->rconf);
	s->rnames = NULL;
	s->rconf = NULL;
	s->nrconf = 0;
}

static int copy_rconf(struct pms *s, const struct cdr_conf_group *g)
{
	free_rconf(s);
	if (!g->n)
		return 0;
	s->rnames = calloc(g->n, sizeof(*s->rnames));
	s->rconf = calloc(g->n, sizeof(*s->rconf));
	if (!s->rnames || !s->rconf)
		return -ENOMEM;
	for (size_t i = 0; i < g->n; i++) {
		const struct pms_room_conf *c = g->items[i];

		s->rconf[i] = *c;
		s->rconf[i].tcp = strdup(c->tcp ? c->tcp : "");
		s->rconf[i].command = strdup(c->command ? c->command : "");
		s->rnames[i] = strdup(g->names[i]);
		s->nrconf = i + 1;
		if (!s->rconf[i].tcp || !s->rconf[i].command || !s->rnames[i])
			return -ENOMEM;
	}
	return 0;
}

/* ---- life ---- */

static void on_tick(void *arg)
{
	struct pms *s = arg;

	if (!s->started)
		return;
	pms_console_tick(s);
	if (cdr_mono_i64() - s->last_peer_poll >= (int64_t)s->conf.peer_poll_ms) {
		s->last_peer_poll = cdr_mono_i64();
		pms_poll_peers(s);
	}
	for (size_t i = 0; i < s->nrooms; i++)
		pms_decide_room(&s->rooms[i]); /* preempt returns, writes that failed */
	for (size_t i = 0; i < s->nplats; i++)
		pms_decide_plat(&s->plats[i]);
}

static void stop(struct pms *s)
{
	size_t it = 0;
	const char *key;
	void *val;

	if (!s->started)
		return;
	pms_console_stop(s); /* first: its links read rooms and platforms */
	s->started = false;
	s->gen++;
	for (size_t i = 0; i < s->nrooms; i++) {
		s->rooms[i].watch = cdr_zk_data_watch_free(s->rooms[i].watch);
		pms_free_checks(&s->rooms[i]);
	}
	for (size_t i = 0; i < s->nplats; i++)
		s->plats[i].watch = cdr_zk_data_watch_free(s->plats[i].watch);
	/* Peer polls, beat reads and peer brokers' deliveries point into plats. */
	for (size_t i = 0; i < s->nplats; i++) {
		pms_bus_peer_stop(&s->plats[i]);
		if (cdr_daemon_zk(s->d))
			cdr_zk_cancel(cdr_daemon_zk(s->d), &s->plats[i]);
		if (s->beat_zk)
			cdr_zk_cancel(s->beat_zk, &s->plats[i]);
	}
	s->backup_plat = NULL;
	s->isolated = false;
	free(s->rooms);
	free(s->plats);
	s->rooms = NULL;
	s->plats = NULL;
	s->nrooms = s->nplats = 0;
	while (cdr_hmap_next(s->mcus, &it, &key, &val)) {
		cdr_hmap_del_at(s->mcus, &it);
		free(val);
	}
	cdr_timer_stop(s->tick);
	cdr_timer_stop(s->mcu_timer);
}

static void start(struct pms *s)
{
	struct cdr_zk *zk = cdr_daemon_zk(s->d);
	size_t nr, np, nown = 0, nowned = 0;

	if (s->started || !s->active || !s->topo || !zk)
		return;
	nr = cdr_topology_nrooms(s->topo);
	np = cdr_topology_nplatforms(s->topo);
	s->rooms = calloc(nr ? nr : 1, sizeof(*s->rooms));
	s->plats = calloc(np ? np : 1, sizeof(*s->plats));
	if (!s->rooms || !s->plats) {
		cdr_err("out of memory");
		free(s->rooms);
		free(s->plats);
		s->rooms = NULL;
		s->plats = NULL;
		return;
	}
	s->started = true;
	s->nrooms = nr;
	s->nplats = np;
	for (size_t i = 0; i < nr; i++) {
		const struct cdr_room *tr = cdr_topology_room_at(s->topo, i);
		struct room *r = &s->rooms[i];

		r->s = s;
		snprintf(r->id, sizeof(r->id), "%s", tr->id);
		snprintf(r->platform, sizeof(r->platform), "%s", tr->platform);
		r->own = !strcmp(tr->platform, s->platform);
		pms_room_health_init(&r->h, false, 0, cdr_mono_i64());
		if (r->own) {
			nown++;
			if (pms_build_checks(r) < 0)
				cdr_err("room %s: cannot set up its checks", r->id);
		}
	}
	for (size_t i = 0; i < s->nrconf; i++)
		if (!pms_own_room(s, s->rnames[i]))
			cdr_warn("[room %s] in the config is not a room of platform %s in the topology: ignored",
				 s->rnames[i], s->platform);
	for (size_t i = 0; i < np; i++) {
		const struct cdr_platform *tp = cdr_topology_platform_at(s->topo, i);
		struct plat *p = &s->plats[i];

		p->s = s;
		snprintf(p->id, sizeof(p->id), "%s", tp->id);
		snprintf(p->backup, sizeof(p->backup), "%s", tp->backup_platform ? tp->backup_platform : "");
		snprintf(p->main_room, sizeof(p->main_room), "%s", tp->main_room);
		p->owned =
			tp->backup_platform && !strcmp(tp->backup_platform, s->platform) && strcmp(tp->id, s->platform);
		/* Until the first fresh read of its beat, nothing is known of
		 * its pms: a platform is not declared down for what was not
		 * looked at. */
		pms_peer_setup(p);
		nowned += p->owned;
	}
	pms_bus_peers_start(s);
	/* Watches last: their first answers may decide at once. */
	pms_state_watch(s);
	cdr_notice("active, epoch %" PRId64 ": checking %zu rooms of %s, deciding for %zu platform%s it backs up, "
		   "mirroring %zu rooms and %zu platforms",
		   s->leader_epoch, nown, s->platform, nowned, nowned == 1 ? "" : "s", nr, np);
	s->last_peer_poll = 0;
	cdr_timer_start(s->tick, TICK_MS, true);
	cdr_timer_start(s->mcu_timer, s->conf.mcu_poll_ms, true);
	pms_poll_inventory(s);
	pms_console_start(s);
	cdr_daemon_ready(s->d, CDR_READY_SERVE);
}

static void on_topology(struct cdr_topology *t, void *arg)
{
	struct pms *s = arg;

	if (!s->topo) {
		cdr_info("topology: %zu platforms, %zu rooms", cdr_topology_nplatforms(t), cdr_topology_nrooms(t));
		s->topo = t;
		start(s);
	} else if (cdr_topology_nrooms(t) != cdr_topology_nrooms(s->topo) ||
		   cdr_topology_nplatforms(t) != cdr_topology_nplatforms(s->topo)) {
		/* Rooms and platforms are set at start: follow by starting over. */
		cdr_notice("topology changed (%zu platforms, %zu rooms): starting over", cdr_topology_nplatforms(t),
			   cdr_topology_nrooms(t));
		stop(s);
		cdr_topology_free(s->topo);
		s->topo = t;
		start(s);
	} else {
		/* Same sizes: backup lists may have changed; answers use the new one. */
		cdr_topology_free(s->topo);
		s->topo = t;
	}
}

static void copy_scalars(struct pms_conf *dst, const struct pms_conf *src)
{
	dst->beat_interval_ms = src->beat_interval_ms;
	dst->beat_misses = src->beat_misses;
	dst->beat_session_ms = src->beat_session_ms;
	dst->peer_grace_ms = src->peer_grace_ms;
	dst->peer_poll_ms = src->peer_poll_ms;
	dst->follow_main_room = src->follow_main_room;
	dst->mcu_poll_ms = src->mcu_poll_ms;
	dst->mcu_absent_ms = src->mcu_absent_ms;
	dst->rms_timeout_ms = src->rms_timeout_ms;
	dst->topology_refresh_ms = src->topology_refresh_ms;
}

static void pms_free(void *server);

static int pms_init(struct cdr_daemon *d, void **server)
{
	const struct pms_conf *cf = cdr_daemon_conf(d);
	struct pms *s = calloc(1, sizeof(*s));
	struct cdr_loop *loop = cdr_daemon_loop(d);

	if (!s)
		return -ENOMEM;
	s->d = d;
	copy_scalars(&s->conf, cf);
	snprintf(s->platform, sizeof(s->platform), "%s", cf->base.platform);
	cdr_bus_init(&s->bus, d, "pms", cf->base.platform);
	snprintf(s->instance, sizeof(s->instance), "%s", cf->base.instance ? cf->base.instance : s->bus.src);
	if (pms_metrics_init(s) < 0 || copy_rconf(s, &cf->rooms) < 0 || !(s->mcus = cdr_hmap_new()) ||
	    cdr_topo_follow_new(d, &s->conf.topology_refresh_ms, on_topology, s, &s->follow) < 0 ||
	    cdr_timer_new(loop, on_tick, s, &s->tick) < 0 ||
	    cdr_timer_new(loop, pms_poll_inventory, s, &s->mcu_timer) < 0 ||
	    cdr_timer_new(loop, pms_beat, s, &s->beat_timer) < 0) {
		free_rconf(s);
		cdr_hmap_free(s->mcus);
		cdr_topo_follow_free(s->follow);
		cdr_timer_free(s->tick);
		cdr_timer_free(s->mcu_timer);
		free(s->m);
		free(s);
		return -ENOMEM;
	}
	/* Active or standby, a pms beats: its platform's backup judges it by that. */
	if (pms_beat_zk_new(s, cf) < 0 || pms_console_new(s, cf, &s->console) < 0) {
		pms_free(s);
		return -ENOMEM;
	}
	pms_quorum_init(&s->quorum);
	cdr_timer_start(s->beat_timer, s->conf.beat_interval_ms, true);
	*server = s;
	return 0;
}

static void pms_on_link(struct cdr_daemon *d, void *server, const char *link, bool up)
{
	struct pms *s = server;

	(void)d;
	if (!strcmp(link, "amqp"))
		s->amqp_up_ms = up ? cdr_mono_i64() : 0;
	if (!up)
		return;
	if (!strcmp(link, "zookeeper") && !s->topo)
		cdr_topo_follow_fetch(s->follow); /* its queues: taken by the common life */
}

static void pms_on_role(struct cdr_daemon *d, void *server, bool active, int64_t epoch)
{
	struct pms *s = server;

	s->active = active;
	s->leader_epoch = epoch;
	if (active) {
		start(s);
		cdr_daemon_ready(d, CDR_READY_SERVE);
		return;
	}
	stop(s); /* pms.req.q was cancelled by the common life */
}

static int pms_check_conf(void *conf, const char *conf_path, char *err, size_t errlen)
{
	return pms_console_check_conf(conf, conf_path, err, errlen);
}

static void pms_reload(struct cdr_daemon *d, void *server, const void *conf)
{
	struct pms *s = server;
	const struct pms_conf *cf = conf;

	(void)d;
	copy_scalars(&s->conf, cf);
	if (copy_rconf(s, &cf->rooms) < 0) {
		cdr_err("reload: out of memory copying the room checks");
		return;
	}
	if (s->started) {
		/* Checks start over with the new settings; states stay. */
		for (size_t i = 0; i < s->nrooms; i++) {
			if (!s->rooms[i].own)
				continue;
			pms_free_checks(&s->rooms[i]);
			if (pms_build_checks(&s->rooms[i]) < 0)
				cdr_err("room %s: cannot set up its checks", s->rooms[i].id);
		}
		cdr_timer_start(s->mcu_timer, s->conf.mcu_poll_ms, true);
		for (size_t i = 0; i < s->nplats; i++)
			pms_peer_setup(&s->plats[i]);
	}
	cdr_timer_start(s->beat_timer, s->conf.beat_interval_ms, true);
	if (pms_console_reload(s, cf) < 0)
		cdr_err("reload: the console keeps its old settings");
	cdr_info("pms settings applied: beat %" PRIu64 " ms x %" PRId64 " misses, peer grace %" PRIu64
		 " ms, %zu room sections",
		 s->conf.beat_interval_ms, s->conf.beat_misses, s->conf.peer_grace_ms, s->nrconf);
}

static void pms_free(void *server)
{
	struct pms *s = server;

	if (!s)
		return;
	stop(s);
	s->console = pms_console_free(s->console);
	s->beat_zk = cdr_zk_free(s->beat_zk); /* a write in flight: cancelled, s still whole */
	cdr_hmap_free(s->mcus);
	cdr_topo_follow_free(s->follow);
	cdr_timer_free(s->tick);
	cdr_timer_free(s->mcu_timer);
	cdr_timer_free(s->beat_timer);
	cdr_topology_free(s->topo);
	free_rconf(s);
	free(s->m); /* its families are the registry's */
	free(s);
}

/* What the active pms takes: rms's MCU notices (the MCU check of its rooms)
 * and the requests on pms.req.q (docs/pms.md). */
static const struct cdr_daemon_queue pms_queues[] = {
	{ NULL, CDR_MQ_RMS_NTF_EX, pms_on_rms_ntf, CDR_READY_SERVE },
	{ CDR_MQ_PMS_REQ_Q, NULL, pms_on_req, CDR_READY_SERVE },
	{ NULL, NULL, NULL, CDR_READY_NONE },
};

const struct cdr_daemon_ops pms_daemon_ops = {
	.name = "pms",
	.summary = "confdr platform management service: room/platform health, manual DR switches, state broadcasts.",
	.keys = pms_conf_keys,
	.conf_size = sizeof(struct pms_conf),
	.uses_redis = false,
	.uses_mysql = false,
	.init = pms_init,
	.on_link = pms_on_link,
	.on_role = pms_on_role,
	.reload = pms_reload,
	.free = pms_free,
	.metrics = pms_metrics_fill,
	.not_ready = pms_not_ready,
	.queues = pms_queues,
	.check_conf = pms_check_conf,
};
