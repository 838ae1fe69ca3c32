/* pms: beats over the bus. Every pms (active or standby) publishes a
 * pms_peer_beat_ntf on its own broker's pms.beat.ex every beat interval;
 * the active pms connects to the broker of each platform it backs up and
 * hears their pms there. A platform whose pms is heard on the bus is not
 * declared down, whatever its ZooKeeper beat says: it has lost the
 * ZooKeeper majority but still runs and reaches its backup (docs/pms.md,
 * "Beats over the bus: the veto").
 *
 * The other way round, the active pms listens to its backup platform's pms,
 * whose beats say which platforms it hears. A pms that has written no beat
 * to ZooKeeper and has not been heard by its backup, both for the beat
 * limit, says its platform is isolated: its backup may declare it down at
 * the limit and a half, so the platform's css releases its conferences first (ends
 * them on its MCUs, writes nothing) and nothing runs twice (docs/pms.md,
 * "Isolation"). */
#include "pms_int.h"

#include <unistd.h>

static int64_t limit_ms(const struct pms *s)
{
	return (int64_t)s->conf.beat_misses * (int64_t)s->conf.beat_interval_ms;
}

/* Released after the limit without the majority and without being heard
 * (a beat session that changes members takes well under it); the backup
 * declares us down only when it has not heard us for the limit and a half
 * (peer.c): half the limit of margin. */
static int64_t release_ms(const struct pms *s)
{
	return limit_ms(s);
}

/* The latest own ZooKeeper beat write that succeeded was sent less than
 * release_ms ago. */
static bool quorum_fresh(const struct pms *s, int64_t now)
{
	return s->quorum.last_ok_sent_ms >= 0 && now - s->quorum.last_ok_sent_ms < release_ms(s);
}

/* Isolated: no own beat written to ZooKeeper and not heard by the backup's
 * pms, both for release_ms. Kept until a beat write succeeds again. */
static bool isolation(struct pms *s, int64_t now)
{
	int64_t heard = s->backup_hears_ms > s->listen_since_ms ? s->backup_hears_ms : s->listen_since_ms;
	bool was = s->isolated;

	if (!s->started || !s->backup_plat)
		return false;
	s->isolated = pms_isolated(&s->quorum, s->listen_since_ms, s->backup_hears_ms, release_ms(s), now, was);
	if (was != s->isolated)
		cdr_daemon_alarm(s->d, "isolated", s->isolated ? "critical" : "cleared");
	if (was && !s->isolated)
		cdr_notice("ALARM cleared isolated %s: this pms writes its beat to ZooKeeper again", s->platform);
	if (!was && s->isolated)
		cdr_warn("ALARM critical isolated %s: no beat written to ZooKeeper for %" PRId64
			 " ms and not heard by the pms of %s for %" PRId64
			 " ms: %s may declare this platform down; its css releases the platform's conferences",
			 s->platform, now - s->quorum.last_ok_sent_ms, s->backup_plat->id, now - heard,
			 s->backup_plat->id);
	return s->isolated;
}

/* The own beat on the own broker: fire and forget (a beat that cannot be
 * sent is a missed beat, which is what it tells). */
void pms_bus_beat(struct pms *s)
{
	int64_t now = cdr_mono_i64();
	bool isolated;

	/* Our own loop stood still (frozen, starved): the backup's word of
	 * that time is not read yet, and our ZooKeeper writes did not go out
	 * because we did not send them. Not heard is counted from now; a beat
	 * right after waking would otherwise say "isolated" for our own stall
	 * (the fault suite's stop-pms: 1,617 conferences released). */
	if (s->bus_beat_tick_ms && now - s->bus_beat_tick_ms > 4 * (int64_t)s->conf.beat_interval_ms &&
	    s->listen_since_ms >= 0 && !s->isolated) {
		cdr_notice("this pms's loop stood still for %" PRId64
			   " ms: isolation is judged afresh (not heard by the backup counts from now)",
			   now - s->bus_beat_tick_ms);
		s->listen_since_ms = now;
	}
	s->bus_beat_tick_ms = now;
	isolated = isolation(s, now);
	json_t *body, *hears;

	/* Not queued while the broker is away: a late beat would tell a life
	 * that may be over. */
	if (!cdr_daemon_mq(s->d) || !cdr_mq_connected(cdr_daemon_mq(s->d)) || !(hears = json_array()))
		return;
	for (size_t i = 0; s->started && i < s->nplats; i++)
		if (s->plats[i].owned && s->plats[i].w.peer.bus_ms >= 0 &&
		    now - s->plats[i].w.peer.bus_ms < 2 * (int64_t)s->conf.beat_interval_ms)
			json_array_append_new(hears, json_string(s->plats[i].id));
	/* judges: this pms listens to the backup's pms and so can tell
	 * isolation (the active one); a standby's "not isolated" says nothing. */
	body = json_pack("{s:s, s:s, s:I, s:b, s:o, s:b, s:b}", "platform", s->platform, "instance", s->instance, "seq",
			 (json_int_t)s->beat_seq, "quorum", quorum_fresh(s, now), "hears", hears, "isolated", isolated,
			 "judges", s->started && s->backup_plat);
	/* this platform's state as the majority holds it, read after a write
	 * that succeeded less than half the limit ago */
	if (body && s->own_known && now - s->own_read_ms < release_ms(s)) {
		json_object_set_new(body, "state", json_string(s->own_down ? "down" : "up"));
		json_object_set_new(body, "state_epoch", json_integer(s->own_epoch));
	}
	if (body)
		cdr_bus_publish(&s->bus, NULL, CDR_MQ_PMS_BEAT_EX, "", "pms_peer_beat_ntf", NULL, s->leader_epoch, body,
				false, NULL, NULL);
}

static void on_peer_beat_ntf(void *server, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct plat *p = server;
	const char *from = cdr_msg_str(m, "platform", "");

	(void)dl;
	/* Only that platform's pms publishes on that platform's broker. */
	if (strcmp(from, p->id) != 0) {
		cdr_debug("pms.beat.ex of platform %s: a beat of platform %s ignored", p->id, from);
		return;
	}
	if (p->owned) {
		if (p->w.peer.bus_ms < 0)
			cdr_info("platform %s: its pms is heard on its broker (%s)", p->id,
				 cdr_msg_str(m, "instance", "?"));
		pms_peer_bus(&p->w.peer, cdr_mono_i64());
	}
	if (p->is_backup) {
		json_t *h = cdr_msg_get(m, "hears"), *v;
		size_t i;

		json_array_foreach(h, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), p->s->platform))
			p->s->backup_hears_ms = cdr_mono_i64();
	}
}

static const struct cdr_handler peer_beat_handlers[] = {
	{ "pms_peer_beat_ntf", CDR_H_NOTICE, "pms", on_peer_beat_ntf },
	{ NULL, 0, NULL, NULL },
};

static struct cdr_bus *peer_bus(void *server)
{
	return &((struct plat *)server)->s->bus;
}

static const struct cdr_dispatch peer_beat_dispatch = {
	.daemon = "pms",
	.queue = CDR_MQ_PMS_BEAT_EX,
	.max_len = CDR_MSG_MAX_SMALL,
	.nack_type = "pms_any_notice_nack",
	.handlers = peer_beat_handlers,
	.bus = peer_bus,
	.ignore_unknown = true,
};

static void on_peer_beat(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&peer_beat_dispatch, dl, arg);
}

/* The broker of platform p (one it backs up, or its own backup): connected,
 * its pms heard. */
static void peer_start(struct plat *p)
{
	struct pms *s = p->s;
	const struct cdr_endpoint *ep;
	struct cdr_mq_opts o = { 0 };
	char url[1024], name[160];

	if (p->mq || !s->topo)
		return;
	if (!(ep = cdr_topology_main_endpoint(s->topo, p->id, CDR_SVC_MQ)) ||
	    cdr_daemon_amqp_url(s->d, ep, url, sizeof(url)) < 0) {
		cdr_warn("platform %s: no broker endpoint: its pms is judged by its ZooKeeper beat alone", p->id);
		return;
	}
	snprintf(name, sizeof(name), "pms-%s-to-%s", s->platform, p->id);
	o.url = url;
	o.tls_ca = ((const struct pms_conf *)cdr_daemon_conf(s->d))->base.amqp_tls_ca;
	o.name = name;
	if (cdr_mq_new(cdr_daemon_loop(s->d), &o, &p->mq) < 0) {
		cdr_warn("platform %s: cannot connect to its broker: its pms is judged by its ZooKeeper beat alone",
			 p->id);
		return;
	}
	if (cdr_mq_subscribe(p->mq, CDR_MQ_PMS_BEAT_EX, "", on_peer_beat, p) < 0)
		cdr_warn("platform %s: its pms beats on its broker not subscribed", p->id);
	cdr_info("platform %s: listening to its pms on its broker (%s:%d/%s)", p->id, ep->host, ep->port,
		 ep->vhost ? ep->vhost : "/");
}

void pms_bus_peer_stop(struct plat *p)
{
	p->mq = cdr_mq_free(p->mq);
}

/* At the start of the active pms: the brokers of the platforms it backs up
 * and of its own backup platform. */
void pms_bus_peers_start(struct pms *s)
{
	const struct cdr_platform *own = s->topo ? cdr_topology_platform(s->topo, s->platform) : NULL;

	s->backup_plat = NULL;
	s->isolated = false;
	s->backup_hears_ms = -1;
	s->listen_since_ms = cdr_mono_i64();
	for (size_t i = 0; i < s->nplats; i++) {
		struct plat *p = &s->plats[i];

		p->is_backup = own && own->backup_platform && !strcmp(p->id, own->backup_platform) &&
			       strcmp(p->id, s->platform);
		if (p->is_backup)
			s->backup_plat = p;
		if (p->owned || p->is_backup)
			peer_start(p);
	}
}
