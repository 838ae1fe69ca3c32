/* pms: beats over the bus. Every pms (active or standby) publishes a
 * pms_peer_beat_ntf on its own broker's pms.beat.ex every beat interval;
 * the active pms connects to the broker of each platform it backs up and
 * hears their pms there. A platform whose pms is heard on the bus is not
 * declared down, whatever its ZooKeeper beat says: it has lost the
 * ZooKeeper majority but still runs and reaches its backup (docs/pms.md,
 * "Beats over the bus: the veto"). */
#include "pms_int.h"

#include <unistd.h>

/* The own beat on the own broker: fire and forget (a beat that cannot be
 * sent is a missed beat, which is what it tells). */
void pms_bus_beat(struct pms *s)
{
	json_t *body;

	/* Not queued while the broker is away: a late beat would tell a life
	 * that may be over. */
	if (!cdr_daemon_mq(s->d) || !cdr_mq_connected(cdr_daemon_mq(s->d)))
		return;
	body = json_pack("{s:s, s:s, s:I, s:b}", "platform", s->platform, "instance", s->bus.src, "seq",
			 (json_int_t)s->beat_seq, "quorum", pms_quorum_held(&s->quorum));

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
	if (p->w.peer.bus_ms < 0)
		cdr_info("platform %s: its pms is heard on its broker (%s)", p->id, cdr_msg_str(m, "instance", "?"));
	pms_peer_bus(&p->w.peer, cdr_mono_i64());
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
	.nack_type = "pms_any_notice_nack",
	.handlers = peer_beat_handlers,
	.bus = peer_bus,
	.ignore_unknown = true,
};

static void on_peer_beat(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&peer_beat_dispatch, dl, arg);
}

/* The broker of platform p (one it backs up): connected, its pms heard. */
void pms_bus_peer_start(struct plat *p)
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
