/* pms's web console: what it shows and does. A broker link per platform as
 * the console's user (the operators' role, ops): rms's MCU inventory
 * (ctl_rms_inventory_req, as confdrctl status asks it), the alarms of
 * cdr.alarm.ex, and the switches (ctl_pms_switch_req to the pms that
 * decides, as confdrctl room|platform switch sends them). The active css's
 * liveness node of each platform from ZooKeeper (conferences per state and
 * its restore counters), and the series of restores and room events over
 * time. The rooms' and platforms' states are pms's own mirror. */
#include "console_int.h"

#include <time.h>

#define FEED_MS	     2000
#define LOOK_MS	     120000 /* the inventory is asked while someone looked this recently */
#define BUCKET_MS    10000
#define BUCKETS	     360 /* an hour of 10 s buckets */
#define RPC_TIMEOUT  1500
#define SWITCH_AFTER 10000

struct seen {
	int64_t epoch;
	char id[80];
};

/* The string at key of object o, or "". */
static const char *jstr(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

static struct console_link *link_of(struct pms_console *c, const char *platform)
{
	for (size_t i = 0; i < c->nlinks; i++)
		if (!strcmp(c->links[i].platform, platform))
			return &c->links[i];
	return NULL;
}

/* ---- alarms of every platform, on its cdr.alarm.ex ---- */

static void on_alarm(struct cdr_mq_delivery *dl, void *arg)
{
	struct console_link *l = arg;
	json_t *v = json_loadb(dl->body, dl->len, 0, NULL), *b = json_object_get(v, "body"), *a;

	if (json_is_object(b)) {
		a = json_pack("{s:s, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*}", "platform", l->platform, "ts",
			      json_object_get(v, "ts"), "type", json_object_get(v, "type"), "src",
			      json_object_get(v, "src"), "severity", json_object_get(b, "severity"), "kind",
			      json_object_get(b, "kind"), "target", json_object_get(b, "target"), "detail",
			      json_object_get(b, "detail"));
		if (a) {
			json_array_insert_new(l->c->alarms, 0, a);
			while (json_array_size(l->c->alarms) > CONSOLE_ALARMS_KEPT)
				json_array_remove(l->c->alarms, json_array_size(l->c->alarms) - 1);
		}
	}
	json_decref(v);
	cdr_mq_ack(dl);
}

static void link_start(struct pms_console *c, struct console_link *l)
{
	const struct pms_conf *cf = cdr_daemon_conf(c->s->d);
	const struct cdr_endpoint *ep = cdr_topology_main_endpoint(c->s->topo, l->platform, CDR_SVC_MQ);
	struct cdr_mq_opts o = { 0 };
	char url[1024], name[160], vh[200];
	size_t k = 0;

	if (!ep) {
		snprintf(l->inv_err, sizeof(l->inv_err), "no broker endpoint in ZooKeeper");
		return;
	}
	for (const char *p = ep->vhost ? ep->vhost : "/"; *p && k + 4 < sizeof(vh); p++) {
		if (*p == '/' || *p == '%' || *p == '@' || *p == ':') {
			snprintf(vh + k, sizeof(vh) - k, "%%%02X", (unsigned char)*p);
			k += 3;
		} else {
			vh[k++] = *p;
		}
	}
	vh[k] = '\0';
	snprintf(url, sizeof(url), "%s://%s@%s:%d/%s", *cf->base.amqp_tls_ca ? "amqps" : "amqp", c->user, ep->host,
		 ep->port, vh);
	snprintf(name, sizeof(name), "pms-%s-console-to-%s", c->s->platform, l->platform);
	o.url = url;
	o.name = name;
	o.password = c->password;
	o.tls_ca = cf->base.amqp_tls_ca;
	o.reconnect_min_ms = (unsigned)cf->base.reconnect_min_ms;
	o.reconnect_max_ms = (unsigned)cf->base.reconnect_max_ms;
	if (cdr_mq_new(cdr_daemon_loop(c->s->d), &o, &l->mq) < 0) {
		cdr_warn("console: platform %s: cannot open its broker as %s: the console shows no MCUs of it and "
			 "cannot switch through it",
			 l->platform, c->user);
		return;
	}
	if (cdr_mq_subscribe(l->mq, CDR_MQ_ALARM_EX, "", on_alarm, l) < 0)
		cdr_warn("console: platform %s: its alarms not subscribed", l->platform);
}

/* ---- rms's inventory ---- */

static void on_inventory(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct console_link *l = arg;
	json_t *v, *b;

	if (status == -ECANCELED)
		return; /* the link is going */
	l->inv_pending = false;
	if (status || !reply) {
		snprintf(l->inv_err, sizeof(l->inv_err), "rms of %s did not answer: %s", l->platform,
			 strerror(-status));
		return;
	}
	v = json_loadb(reply->body, reply->len, 0, NULL);
	b = json_object_get(v, "body");
	if (json_is_array(json_object_get(b, "mcus"))) {
		json_decref(l->mcus);
		l->mcus = json_incref(json_object_get(b, "mcus"));
		l->inv_ms = (int64_t)cdr_wall_ms();
		l->inv_err[0] = '\0';
	} else {
		snprintf(l->inv_err, sizeof(l->inv_err), "rms of %s: %s", l->platform,
			 json_string_value(json_object_get(b, "detail"))
				 ? json_string_value(json_object_get(b, "detail"))
				 : "no inventory in its answer");
	}
	json_decref(v);
}

static void ask_inventory(struct pms_console *c, struct console_link *l)
{
	char id[128], *txt;

	if (!l->mq || l->inv_pending || !cdr_mq_connected(l->mq))
		return;
	snprintf(id, sizeof(id), "console-%s-inv-%" PRIu64, c->s->platform, cdr_wall_ms());
	txt = cdr_msg_encode("ctl_rms_inventory_req", id, "console", 0, json_object());
	if (txt && cdr_mq_request(l->mq, "", CDR_MQ_RMS_REQ_Q, txt, strlen(txt), RPC_TIMEOUT, on_inventory, l) == 0)
		l->inv_pending = true;
	free(txt);
}

/* ---- the active css of each platform (its liveness node) ---- */

static void take_css(struct pms_console *c, struct console_link *l, const char *instance, json_t *node)
{
	json_t *st = json_object_get(node, "stats");
	int64_t now = (int64_t)cdr_wall_ms();
	int64_t restored = json_integer_value(json_object_get(st, "restored"));
	int64_t lost = json_integer_value(json_object_get(st, "lost"));

	/* Counters of the same instance only: another instance (a restart,
	 * a standby elected) starts a new baseline. */
	if (l->css && !strcmp(l->css_instance, instance)) {
		if (restored > l->restored)
			pms_series_add(&c->series, PMS_SERIES_RESTORED, now, restored - l->restored);
		if (lost > l->lost)
			pms_series_add(&c->series, PMS_SERIES_LOST, now, lost - l->lost);
	}
	l->restored = restored;
	l->lost = lost;
	snprintf(l->css_instance, sizeof(l->css_instance), "%s", instance);
	json_decref(l->css);
	l->css = json_incref(node);
	l->css_ms = now;
}

/* One liveness node, /live/P/DAEMON/INSTANCE: kept for the daemons table;
 * the active css's counters taken. */
static void on_live_node(const struct cdr_zk_result *r, void *arg)
{
	struct console_link *l = arg;
	const char *inst = strrchr(r->path, '/'), *d;
	char daemon[16] = "";
	json_t *v;

	if (l->live_wait)
		l->live_wait--;
	if (r->status || !r->data || !inst || inst == r->path)
		return;
	for (d = inst - 1; d > r->path && *d != '/'; d--)
		;
	snprintf(daemon, sizeof(daemon), "%.*s", (int)(inst - d - 1), d + 1);
	v = json_loadb(r->data, r->len, 0, NULL);
	if (json_is_object(v)) {
		char key[200];

		if (!strcmp(daemon, "css") && !strcmp(jstr(v, "role"), "active") &&
		    json_is_object(json_object_get(v, "stats")))
			take_css(l->c, l, inst + 1, v);
		json_t *e = json_copy(v); /* shallow: v itself may be the css's, with its stats */

		json_object_del(e, "stats");
		json_object_set_new(e, "platform", json_string(l->platform));
		json_object_set_new(e, "daemon", json_string(daemon));
		json_object_set_new(e, "instance", json_string(inst + 1));
		json_object_set_new(e, "read_ms", json_integer((json_int_t)cdr_wall_ms()));
		snprintf(key, sizeof(key), "%s/%s", daemon, inst + 1);
		json_object_set_new(l->daemons, key, e);
	}
	json_decref(v);
}

static void on_live_list(const struct cdr_zk_result *r, void *arg)
{
	struct console_link *l = arg;
	struct cdr_zk *zk = cdr_daemon_zk(l->c->s->d);
	char path[512];

	if (l->live_wait)
		l->live_wait--;
	if (r->status || !zk)
		return;
	for (size_t i = 0; i < r->nchildren; i++) {
		snprintf(path, sizeof(path), "%s/%s", r->path, r->children[i]);
		if (cdr_zk_get(zk, path, NULL, NULL, on_live_node, l) == 0)
			l->live_wait++;
	}
}

/* The daemons of a platform alive in ZooKeeper, as confdrctl status lists
 * them; a node not read again for three rounds is gone. */
static void ask_live(struct pms_console *c, struct console_link *l)
{
	static const char *const daemons[] = { "css", "rms", "pms" };
	struct cdr_zk *zk = cdr_daemon_zk(c->s->d);
	int64_t old = (int64_t)cdr_wall_ms() - 3 * FEED_MS;
	const char *k;
	json_t *v, *tmp;
	char path[256];

	json_object_foreach_safe(l->daemons, tmp, k, v)
	{
		if (json_integer_value(json_object_get(v, "read_ms")) < old)
			json_object_del(l->daemons, k);
	}
	if (!zk || l->live_wait)
		return;
	for (size_t i = 0; i < sizeof(daemons) / sizeof(daemons[0]); i++) {
		snprintf(path, sizeof(path), "/live/%s/%s", l->platform, daemons[i]);
		if (cdr_zk_children(zk, path, NULL, NULL, on_live_list, l) == 0)
			l->live_wait++;
	}
}

/* Every FEED_MS: the css counters always (the series must not have holes
 * while nobody looks), the inventories while someone looks. */
static void on_feed(void *arg)
{
	struct pms_console *c = arg;
	bool looked = cdr_mono_i64() - c->last_wanted_ms < LOOK_MS;

	for (size_t i = 0; i < c->nlinks; i++) {
		ask_live(c, &c->links[i]);
		if (looked)
			ask_inventory(c, &c->links[i]);
	}
}

/* ---- life ---- */

int console_feed_new(struct pms_console *c)
{
	pms_series_init(&c->series, BUCKET_MS, BUCKETS);
	c->last_wanted_ms = INT64_MIN / 2;
	if (!(c->alarms = json_array()) || !(c->seen = cdr_hmap_new()) ||
	    cdr_timer_new(cdr_daemon_loop(c->s->d), on_feed, c, &c->timer) < 0)
		return -ENOMEM;
	return 0;
}

void console_feed_start(struct pms_console *c)
{
	struct pms *s = c->s;

	if (c->links || !s->topo)
		return;
	c->links = calloc(s->nplats ? s->nplats : 1, sizeof(*c->links));
	if (!c->links)
		return;
	c->nlinks = s->nplats;
	for (size_t i = 0; i < c->nlinks; i++) {
		c->links[i].c = c;
		c->links[i].daemons = json_object();
		snprintf(c->links[i].platform, sizeof(c->links[i].platform), "%s", s->plats[i].id);
		link_start(c, &c->links[i]);
	}
	cdr_timer_start(c->timer, FEED_MS, true);
	on_feed(c);
}

void console_feed_stop(struct pms_console *c)
{
	struct cdr_zk *zk = cdr_daemon_zk(c->s->d);

	if (c->timer)
		cdr_timer_stop(c->timer);
	for (size_t i = 0; i < c->nlinks; i++) {
		struct console_link *l = &c->links[i];

		if (zk)
			cdr_zk_cancel(zk, l);
		l->mq = cdr_mq_free(l->mq); /* pending requests: -ECANCELED */
		json_decref(l->mcus);
		json_decref(l->css);
		json_decref(l->daemons);
	}
	free(c->links);
	c->links = NULL;
	c->nlinks = 0;
}

void console_feed_free(struct pms_console *c)
{
	size_t it = 0;
	const char *k;
	void *v;

	console_feed_stop(c);
	cdr_timer_free(c->timer);
	json_decref(c->alarms);
	while (c->seen && cdr_hmap_next(c->seen, &it, &k, &v)) {
		cdr_hmap_del_at(c->seen, &it);
		free(v);
	}
	cdr_hmap_free(c->seen);
}

void console_feed_take_history(struct pms_console *c, struct pms_console *old)
{
	json_t *a = c->alarms;
	struct cdr_hmap *h = c->seen;

	c->series = old->series;
	c->alarms = old->alarms;
	old->alarms = a;
	c->seen = old->seen;
	old->seen = h;
}

void pms_console_state_event(struct pms *s, enum pms_target t, const char *id, const struct pms_state *st)
{
	struct pms_console *c = s->console;
	struct seen *sn;
	char key[80];

	if (!c || t != PMS_ROOM || st->epoch <= 0 || !strcmp(st->reason, "initial"))
		return;
	/* Each decision once (the mirror and a restarted view see it again). */
	snprintf(key, sizeof(key), "%s", id);
	sn = cdr_hmap_get(c->seen, key);
	if (sn && sn->epoch >= st->epoch)
		return;
	if (!sn) {
		if (!(sn = calloc(1, sizeof(*sn))))
			return;
		snprintf(sn->id, sizeof(sn->id), "%s", id);
		if (cdr_hmap_put(c->seen, sn->id, sn) < 0) {
			free(sn);
			return;
		}
	}
	sn->epoch = st->epoch;
	pms_series_add(&c->series, PMS_SERIES_ROOM_EVENTS, st->since > 0 ? st->since : (int64_t)cdr_wall_ms(), 1);
}

/* ---- what the API answers ---- */

static json_t *room_domains(const struct cdr_topology *t, const char *room)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < cdr_topology_nuser_domains(t); i++) {
		const struct cdr_user_domain *u = cdr_topology_user_domain_at(t, i);

		if (!strcmp(u->room, room))
			json_array_append_new(a, json_string(u->id));
	}
	return a;
}

#define ADD(o, key, v) json_object_set_new(o, key, json_integer(json_integer_value(json_object_get(o, key)) + (v)))

json_t *console_status_json(struct pms_console *c)
{
	struct pms *s = c->s;
	json_t *plats = json_array(), *rooms = json_array(), *mcus = json_array(), *confs = json_array();
	json_t *src = json_object(), *daemons = json_array(), *o, *m;
	size_t k;

	c->last_wanted_ms = cdr_mono_i64();
	for (size_t i = 0; i < s->nplats; i++) {
		const struct cdr_platform *tp = s->topo ? cdr_topology_platform(s->topo, s->plats[i].id) : NULL;

		o = pms_plat_json(&s->plats[i], true);
		json_object_set_new(o, "main_room", json_string(s->plats[i].main_room));
		json_object_set_new(o, "decided_by", json_string(tp && tp->backup_platform ? tp->backup_platform : ""));
		json_array_append_new(plats, o);
	}
	for (size_t i = 0; i < s->nrooms; i++) {
		const struct cdr_room *tr = s->topo ? cdr_topology_room(s->topo, s->rooms[i].id) : NULL;
		json_t *b = json_array();

		o = pms_room_json(&s->rooms[i], true);
		for (size_t j = 0; tr && j < tr->nbackup_rooms; j++)
			json_array_append_new(b, json_string(tr->backup_rooms[j]));
		json_object_set_new(o, "backup_rooms", b);
		json_object_set_new(o, "domains", room_domains(s->topo, s->rooms[i].id));
		json_object_set_new(o, "mcus", json_integer(0));
		json_object_set_new(o, "mcus_up", json_integer(0));
		json_object_set_new(o, "running_confs", json_integer(0));
		json_object_set_new(o, "capacity_confs", json_integer(0));
		json_array_append_new(rooms, o);
	}
	for (size_t i = 0; i < c->nlinks; i++) {
		struct console_link *l = &c->links[i];

		json_array_foreach(l->mcus, k, m)
		{
			json_t *r;
			size_t n;

			o = json_deep_copy(m);
			json_object_set_new(o, "platform", json_string(l->platform));
			json_array_append_new(mcus, o);
			json_array_foreach(rooms, n, r)
			{
				if (strcmp(jstr(r, "room"), jstr(m, "room")))
					continue;
				ADD(r, "mcus", 1);
				ADD(r, "mcus_up", strcmp(jstr(m, "state"), "down") ? 1 : 0);
				ADD(r, "running_confs", json_integer_value(json_object_get(m, "running_confs")));
				ADD(r, "capacity_confs", json_integer_value(json_object_get(m, "capacity_confs")));
			}
		}
		if (l->css) {
			json_t *st = json_object_get(l->css, "stats");

			json_array_append_new(
				confs,
				json_pack("{s:s, s:s, s:O*, s:O*, s:O*, s:O*, s:I}", "platform", l->platform, "css",
					  l->css_instance, "confs", json_object_get(st, "confs"), "states",
					  json_object_get(st, "states"), "restored", json_object_get(st, "restored"),
					  "lost", json_object_get(st, "lost"), "read_ms", (json_int_t)l->css_ms));
		}
		{
			const char *key;
			json_t *d;

			json_object_foreach(l->daemons, key, d) json_array_append(daemons, d);
		}
		json_object_set_new(src, l->platform,
				    json_pack("{s:b, s:I, s:s, s:I}", "broker", l->mq && cdr_mq_connected(l->mq),
					      "inventory_ms", (json_int_t)l->inv_ms, "inventory_error", l->inv_err,
					      "css_ms", (json_int_t)l->css_ms));
	}
	return json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:O, s:o}", "platform", s->platform,
			 "instance", s->instance, "user", c->user, "active", s->started, "epoch",
			 (json_int_t)s->leader_epoch, "now", (json_int_t)cdr_wall_ms(), "daemons", daemons, "platforms",
			 plats, "rooms", rooms, "mcus", mcus, "conferences", confs, "alarms", c->alarms, "sources",
			 src);
}

/* The conferences running on the MCUs of room (or of every room of
 * platform when room is NULL), as rms last listed them. */
static int64_t running_on(struct pms_console *c, const char *room, const char *platform)
{
	int64_t n = 0;
	size_t k;
	json_t *m;

	for (size_t i = 0; i < c->nlinks; i++) {
		if (platform && strcmp(c->links[i].platform, platform))
			continue;
		json_array_foreach(c->links[i].mcus, k, m)
		{
			if (room && strcmp(jstr(m, "room"), room))
				continue;
			n += json_integer_value(json_object_get(m, "running_confs"));
		}
	}
	return n;
}

json_t *console_preview_json(struct pms_console *c, bool room, const char *id, bool on, char *err, size_t errlen)
{
	const struct cdr_topology *t = c->s->topo;
	json_t *rooms = json_array(), *domains = json_array(), *to = json_array();
	const char *via, *note;
	int64_t confs;

	c->last_wanted_ms = cdr_mono_i64();
	if (!t)
		goto unknown;
	if (room) {
		const struct cdr_room *r = cdr_topology_room(t, id);

		if (!r)
			goto unknown;
		via = r->platform;
		json_array_append_new(rooms, json_string(r->id));
		for (size_t i = 0; i < r->nbackup_rooms; i++)
			json_array_append_new(to, json_string(r->backup_rooms[i]));
		json_decref(domains);
		domains = room_domains(t, r->id);
		confs = running_on(c, r->id, NULL);
		note = on ? "the room's user domains are served by its backup rooms; the conferences running on its "
			    "MCUs are restored there and ended here"
			  : "new conferences of the room's user domains land in the room again; conferences running in "
			    "the backup rooms stay there (nothing moves)";
	} else {
		const struct cdr_platform *p = cdr_topology_platform(t, id);

		if (!p)
			goto unknown;
		if (!p->backup_platform) {
			snprintf(err, errlen, "platform %s has no backup platform: nothing to switch to", id);
			goto fail;
		}
		via = p->backup_platform;
		for (size_t i = 0; i < cdr_topology_nrooms(t); i++)
			if (!strcmp(cdr_topology_room_at(t, i)->platform, id))
				json_array_append_new(rooms, json_string(cdr_topology_room_at(t, i)->id));
		for (size_t i = 0; i < cdr_topology_nuser_domains(t); i++)
			if (!strcmp(cdr_topology_user_domain_at(t, i)->platform, id))
				json_array_append_new(domains, json_string(cdr_topology_user_domain_at(t, i)->id));
		json_array_append_new(to, json_string(p->backup_platform));
		confs = running_on(c, NULL, id);
		note = on ? "the backup platform's css takes the platform's user domains over (its Redis replica "
			    "promoted) and restores every conference running on the platform's MCUs on its own"
			  : "the platform is declared up again; after a takeover, fail back with confdrctl platform "
			    "failback instead (it brings the platform's Redis back as the master first): this button "
			    "is the plain switch back, as confdrctl platform switch --to normal";
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:I, s:b, s:s}", "target", room ? "room" : "platform",
			 "id", id, "to", on ? "backup" : "back", "decided_by", via, "rooms", rooms, "user_domains",
			 domains, "to_rooms", to, "conferences", (json_int_t)(on ? confs : 0), "counted", c->nlinks > 0,
			 "note", note);
unknown:
	snprintf(err, errlen, "%s %s is not in the topology", room ? "room" : "platform", id);
fail:
	json_decref(rooms);
	json_decref(domains);
	json_decref(to);
	return NULL;
}

/* ---- switches ---- */

struct sw {
	console_switch_fn fn;
	void *arg;
	char via[65];
};

static void on_switch(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct sw *w = arg;
	json_t *env = reply ? json_loadb(reply->body, reply->len, 0, NULL) : NULL;

	if (!status && !env)
		status = -EBADMSG;
	w->fn(status, status ? NULL : env, w->via, w->arg);
	json_decref(env);
	free(w);
}

int console_switch(struct pms_console *c, bool room, const char *id, bool on, bool force, const char *operator,
		   const char * reason, console_switch_fn fn, void *arg, char *err, size_t errlen)
{
	const struct cdr_topology *t = c->s->topo;
	struct console_link *l;
	struct sw *w;
	char mid[160], *txt;
	const char *via = NULL;
	static uint64_t seq;

	if (t && room && cdr_topology_room(t, id))
		via = cdr_topology_room(t, id)->platform; /* a room is switched by its own platform's pms */
	else if (t && !room && cdr_topology_platform(t, id))
		via = cdr_topology_platform(t, id)->backup_platform; /* ... a platform by its backup's */
	if (!via) {
		snprintf(err, errlen, "%s %s is not in the topology%s", room ? "room" : "platform", id,
			 t && !room && cdr_topology_platform(t, id) ? " with a backup platform" : "");
		return -ENOENT;
	}
	if (!(l = link_of(c, via)) || !l->mq) {
		snprintf(err, errlen, "no broker link to platform %s, whose pms decides it", via);
		return -ENOTCONN;
	}
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->fn = fn;
	w->arg = arg;
	snprintf(w->via, sizeof(w->via), "%s", via);
	snprintf(mid, sizeof(mid), "console-%s-switch-%" PRIu64 "-%" PRIu64, c->s->platform, cdr_wall_ms(), ++seq);
	txt = cdr_msg_encode("ctl_pms_switch_req", mid, "console", 0,
			     json_pack("{s:s, s:s, s:b, s:b, s:s, s:s}", "target", room ? "room" : "platform", "moid",
				       id, "on", on, "force", force, "operator", operator, "detail", reason));
	if (!txt || cdr_mq_request(l->mq, "", CDR_MQ_PMS_REQ_Q, txt, strlen(txt), SWITCH_AFTER, on_switch, w) < 0) {
		snprintf(err, errlen, "cannot send to the broker of %s", via);
		free(txt);
		free(w);
		return -ENOTCONN;
	}
	free(txt);
	return 0;
}
