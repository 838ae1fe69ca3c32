/* css: letting go of the platform when its pms says it is isolated. The
 * platform's pms (a beat on our own broker, pms_peer_beat_ntf) says
 * "isolated" when it has written no beat to ZooKeeper and has not been
 * heard by the backup platform's pms, both for the beat limit: the backup
 * may declare us down at the limit and a half and run our conferences on
 * its own MCUs. Before that can happen, css releases: it ends every conference
 * of ours on our own MCUs (nothing runs twice) and acts as if the platform
 * were down (no create, no restore, no write), keeping its records as they
 * are. It comes back when the pms writes to ZooKeeper again and tells the
 * platform's state as the majority holds it: still up, and css acts again
 * (the MCUs' lists show what was released: restored here); down, and the
 * backup serves our domains (docs/css.md, "Isolation"). */
#include "css_int.h"

static void release(struct css *s, const char *instance, const char *why)
{
	struct conf *c;
	const char *key;
	void *val;
	size_t it = 0, n = 0;
	char detail[256];

	if (s->released)
		return;
	s->released = true;
	s->n.releases++;
	while (cdr_hmap_next(s->confs, &it, &key, &val)) {
		c = val;
		if (!c->mcu || !*c->mcu || c->closing || (c->home && strcmp(c->home, s->platform)) ||
		    (c->host && *c->host && strcmp(c->host, s->platform)))
			continue;
		if (c->state != CSS_RUNNING && c->state != CSS_CREATING && c->state != CSS_RESTORING)
			continue;
		css_end_on_mcu(s, c->e164, c->mcu, c->mcu_key, "released");
		n++;
	}
	s->n.released += n;
	if (why)
		snprintf(detail, sizeof(detail),
			 "%s: %zu conferences ended on its MCUs, none written; acting as down until a pms of the "
			 "platform beats again",
			 why, n);
	else
		snprintf(detail, sizeof(detail),
			 "its pms (%s) says it is isolated (no ZooKeeper majority, not heard by its backup platform): "
			 "%zu conferences ended on its MCUs, none written; acting as down until the pms reaches "
			 "ZooKeeper again",
			 instance, n);
	css_alarm(s, "critical", "platform_isolated", s->platform, detail);
}

static void resume(struct css *s, bool down, int64_t epoch)
{
	char detail[200];

	s->released = false;
	snprintf(detail, sizeof(detail), "its pms reaches ZooKeeper again: the platform is %s (epoch %" PRId64 ")%s",
		 down ? "down" : "up", epoch,
		 down ? ": its backup platform serves its domains" : ": acting again, released conferences restored");
	css_alarm(s, "cleared", "platform_isolated", s->platform, detail);
	css_apply_platform(s, s->platform, down, epoch, "isolation over");
}

static void on_beat(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct css *s = arg;
	const char *state = cdr_msg_str(m, "state", "");

	const char *instance = cdr_msg_str(m, "instance", "?"), *other;
	bool isolated = cdr_msg_bool(m, "isolated", false), judges = cdr_msg_bool(m, "judges", true);

	(void)dl;
	if (strcmp(cdr_msg_str(m, "platform", ""), s->platform) != 0)
		return; /* only our own platform's pms beats here */
	/* Every pms instance of the platform beats (active and standby): one of
	 * them isolated while another still writes the platform's beat is not
	 * an isolated platform (beats.h). */
	s->beat_any_ms = cdr_mono_i64();
	/* A standby pms hears no backup and cannot tell isolation: its word
	 * counts neither way (it still counts as a pms heard: silence rule). */
	if (!judges)
		return;
	if (css_beats_note(&s->beats, instance, isolated, cdr_mono_i64(), &other)) {
		if (s->active)
			release(s, instance, NULL);
		return;
	}
	if (isolated) {
		if (!s->released)
			cdr_debug("pms %s says isolated, but %s still beats for the platform: nothing released",
				  instance, other ? other : "?");
		return;
	}
	/* Back only on a fresh word of the majority: the state read after a
	 * beat write that succeeded. */
	if (s->released && cdr_msg_bool(m, "quorum", false) && *state)
		resume(s, !strcmp(state, "down"), cdr_msg_int(m, "state_epoch", 0));
}

/* ---- no pms heard at all ----
 *
 * Every pms of the platform dead or frozen: no beat says "isolated", yet the
 * backup declares the platform down once it has had no beat in ZooKeeper for
 * the beat limit and none on the bus for the limit and a half (docs/pms.md).
 * css watches the same two signals with its own bound, pms_silence (2 s, the
 * limit): no pms beat on its broker (its link up) and no write of the
 * platform's beat node in ZooKeeper (read every 250 ms on css's session,
 * answered recently) for that long, and it releases. A broker restart keeps
 * the ZooKeeper beats, a ZooKeeper outage the bus beats: neither releases. */

#define SILENCE_TICK_MS 250

static void on_beat_node(const struct cdr_zk_result *r, void *arg)
{
	struct css *s = arg;
	int64_t now = cdr_mono_i64();

	s->silence.reading = false;
	if (r->status == -ECANCELED)
		return;
	if (r->status != 0) {
		if (r->status == -ENOENT) /* never written: no word either way */
			s->silence.answered_ms = 0;
		return;
	}
	if (!s->silence.zk_seen_ms || r->version != s->silence.version)
		s->silence.zk_seen_ms = now;
	s->silence.version = r->version;
	s->silence.answered_ms = now;
}

void css_silence_tick(void *arg)
{
	struct css *s = arg;
	struct cdr_zk *zk = cdr_daemon_zk(s->d);
	int64_t now = cdr_mono_i64(), limit = (int64_t)s->conf.pms_silence_ms, bus_from;
	char path[128], why[200];

	/* Our own loop stood still: what was not read says nothing. */
	if (s->silence.tick_ms && now - s->silence.tick_ms > 4 * SILENCE_TICK_MS) {
		s->silence.zk_seen_ms = s->silence.answered_ms = 0;
		s->beat_any_ms = now;
	}
	s->silence.tick_ms = now;
	/* Only a platform that is up here and served by this css has anything
	 * to release. */
	if (!limit || !s->active || s->released || s->home_wait || !cdr_daemon_acting(s->d) || !s->beat_any_ms ||
	    css_pms_down(s, s->platform))
		return;
	if (!cdr_daemon_link_up(s->d, "amqp")) {
		s->silence.amqp_back_ms = 0;
		return;
	}
	if (!s->silence.amqp_back_ms)
		s->silence.amqp_back_ms = now;
	if (zk && !s->silence.reading) {
		snprintf(path, sizeof(path), "/heartbeat/%s/pms", s->platform);
		if (cdr_zk_exists(zk, path, NULL, NULL, on_beat_node, s) == 0)
			s->silence.reading = true;
	}
	bus_from = s->beat_any_ms > s->silence.amqp_back_ms ? s->beat_any_ms : s->silence.amqp_back_ms;
	if (now - bus_from < limit || !s->silence.zk_seen_ms || now - s->silence.zk_seen_ms < limit ||
	    now - s->silence.answered_ms > 2 * SILENCE_TICK_MS)
		return;
	snprintf(why, sizeof(why),
		 "no pms of the platform beats: none on the broker for %" PRId64 " ms, no beat written to ZooKeeper "
		 "for %" PRId64 " ms (the backup platform may declare it down)",
		 now - bus_from, now - s->silence.zk_seen_ms);
	release(s, "-", why);
}

static const struct cdr_handler beat_handlers[] = {
	{ "pms_peer_beat_ntf", CDR_H_NOTICE, "pms", on_beat },
	{ NULL, 0, NULL, NULL },
};

static const struct cdr_dispatch beat_dispatch = {
	.daemon = "css",
	.queue = CDR_MQ_PMS_BEAT_EX,
	.max_len = CDR_MSG_MAX_SMALL,
	.nack_type = "mau_any_notice_nack",
	.handlers = beat_handlers,
	.bus = css_bus,
	.ignore_unknown = true,
};

void css_on_pms_beat(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&beat_dispatch, dl, arg);
}
