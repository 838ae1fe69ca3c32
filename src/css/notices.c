/* css: notices of rms (MCU up and down) and pms (rooms and platforms
 * abnormal, down, back), with their epochs; the platform state asked of pms
 * at start; the BMC's notices. */
#include "css_int.h"

/* rms_all_mcu_ntf (of our rms, whose epoch is *have, or of another
 * platform's hosting conferences of ours): an MCU down has its conferences
 * restored elsewhere. */
static void mcu_state(struct css *s, int64_t *have, const char *from, struct cdr_msg *m)
{
	struct group *g;
	int64_t epoch = cdr_msg_int(m, "epoch", 0);

	if (epoch < *have) { /* a late notice of a deposed rms: what it says is stale */
		s->n.stale_rms_notices++;
		cdr_info("rms_all_mcu_ntf of %s about %s (%s, %s) of epoch %" PRId64 ", older than %" PRId64
			 ": not taken",
			 from, cdr_msg_str(m, "mcu", "?"), cdr_msg_str(m, "state", "?"), cdr_msg_str(m, "reason", "?"),
			 epoch, *have);
		return;
	}
	*have = epoch;
	if (!strcmp(cdr_msg_str(m, "reason", ""), "restarted")) {
		/* rms saw a new boot: the MCU runs nothing from before */
		if (s->consuming)
			css_mcu_lost(s, cdr_msg_str(m, "mcu", ""), "restarted (a new boot)");
		return;
	}
	if (strcmp(cdr_msg_str(m, "state", ""), "down"))
		return;
	g = cdr_hmap_get(s->mcus, cdr_msg_str(m, "mcu", ""));
	if (s->consuming)
		css_mcu_lost(s, cdr_msg_str(m, "mcu", ""), cdr_msg_str(m, "reason", "?"));
	else
		cdr_warn("mcu %s is down (%s): %zu conferences placed on it (not serving yet)",
			 cdr_msg_str(m, "mcu", "?"), cdr_msg_str(m, "reason", "?"), g ? g->n : 0);
}

static void on_mcu_state(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct css *s = arg;

	(void)dl;
	mcu_state(s, &s->rms_epoch, s->platform, m);
}

/* The same from another platform's rms: only its MCUs hosting conferences
 * of ours matter (css_mcu_lost acts on ours alone; others are not in our
 * view, or not ours to act on). */
static void on_peer_mcu_state(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct peer_mq *pm = arg;

	(void)dl;
	if (cdr_hmap_get(pm->s->mcus, cdr_msg_str(m, "mcu", "")))
		mcu_state(pm->s, &pm->rms_epoch, pm->platform, m);
}

/* BMC changed a user domain or platform: the topology (user domains, their
 * rooms and platforms) is read again at once instead of at the next refresh. */
static void on_modb(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct css *s = arg;

	(void)dl;
	cdr_info("BMC: %s %s %s: reading the topology again", cdr_msg_str(m, "kind", "?"), cdr_msg_str(m, "moid", "?"),
		 cdr_msg_str(m, "op", "?"));
	cdr_topo_follow_fetch(s->follow);
}

/* Room id is abnormal (a failure or a manual switch): every conference
 * running there is restored in the backup rooms (plan.c), the copy on its
 * MCU ended once restored elsewhere. */
void css_room_failed(struct css *s, const char *id)
{
	size_t it = 0, k = 0;
	const char *key;
	void *v;
	uint64_t now = cdr_now_ms();

	while (cdr_hmap_next(s->confs, &it, &key, &v)) {
		struct conf *c = v;

		if (c->room && !strcmp(c->room, id) && (!c->host || !strcmp(c->host, s->platform)) &&
		    css_acts_for(s, c) && css_conf_lost(s, c, now, LOST_ROOM) == 0)
			k++;
	}
	s->n.lost += k;
	cdr_warn("room %s is abnormal: %zu conferences running there to restore in its backup rooms", id, k);
}

void css_room_recheck(struct css *s, struct conf *c, const char *what)
{
	if (!c->room || !css_room_abnormal(c->room, s) || (c->host && strcmp(c->host, s->platform)) ||
	    !css_acts_for(s, c) || css_conf_lost(s, c, cdr_now_ms(), LOST_ROOM) < 0)
		return;
	s->n.lost++;
	cdr_warn("conference %s: %s in room %s, which went abnormal meanwhile: to restore in its backup rooms", c->e164,
		 what, c->room);
}

void css_apply_platform(struct css *s, const char *id, bool down, int64_t epoch, const char *why)
{
	for (size_t i = 0; i < s->nplats; i++) {
		struct plat_state *p = &s->plats[i];

		if (strcmp(p->id, id))
			continue;
		if (!css_notice_applies(p->epoch, epoch))
			return; /* late, repeated or out of order */
		if (p->down != down)
			cdr_notice("platform %s is %s (%s, epoch %" PRId64 ")", id, down ? "down" : "up", why, epoch);
		if (!strcmp(id, s->platform) && p->down != down) {
			/* Down: the next "up" waits for our Redis to come home.
			 * Up: what the backup's css changed meanwhile is in
			 * Redis, read once it is home (homecoming.c). */
			p->down = down;
			p->epoch = epoch;
			if (down) {
				css_home_begin(s);
				/* a css waiting for its Redis to come home (just
				 * active) consumes now, to answer platform_down */
				if (s->active && !s->consuming)
					css_maybe_consume(s);
			} else {
				cdr_notice("platform %s is up again: its user domains are served once its Redis is "
					   "home, the view read again from it",
					   id);
				css_home_begin(s);
				css_maybe_consume(s);
			}
			css_takeover_check(s);
			return;
		}
		p->down = down;
		p->epoch = epoch;
		css_takeover_check(s);
		return;
	}
}

static void apply_room(struct css *s, const char *id, bool abnormal, int64_t epoch, const char *why)
{
	for (size_t i = 0; i < s->nrooms; i++) {
		struct room_state *r = &s->rooms[i];

		if (strcmp(r->id, id))
			continue;
		if (!css_notice_applies(r->epoch, epoch))
			return; /* late, repeated or out of order */
		if (r->abnormal != abnormal)
			cdr_notice("room %s is %s (%s, epoch %" PRId64 ")%s", id, abnormal ? "abnormal" : "normal", why,
				   epoch,
				   abnormal ? ""
					    : ": new conferences go there again, restored ones stay where they run");
		if (!r->abnormal && abnormal && s->consuming)
			css_room_failed(s, r->id);
		r->abnormal = abnormal;
		r->epoch = epoch;
		return;
	}
}

static void on_platform(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	(void)dl;
	css_apply_platform(arg, cdr_msg_str(m, "platform", ""), !strcmp(cdr_msg_str(m, "state", ""), "down"),
			   cdr_msg_int(m, "epoch", 0), cdr_msg_str(m, "reason", "?"));
}

static void on_room(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	(void)dl;
	apply_room(arg, cdr_msg_str(m, "room", ""), !strcmp(cdr_msg_str(m, "state", ""), "abnormal"),
		   cdr_msg_int(m, "epoch", 0), cdr_msg_str(m, "reason", "?"));
}

/* rms_all_vrs_ntf: css moves nothing when a VRS goes (protocol.md 8.10):
 * the conferences recording there keep running; an operator sees it here. */
static void on_vrs_state(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct css *s = arg;
	size_t n = 0;
	size_t it = 0;
	const char *k, *vrs = cdr_msg_str(m, "vrs", "?");
	void *v;

	(void)dl;
	if (strcmp(cdr_msg_str(m, "state", ""), "down")) {
		cdr_info("VRS %s (%s) up: %s", vrs, cdr_msg_str(m, "room", "?"), cdr_msg_str(m, "reason", "?"));
		return;
	}
	while (cdr_hmap_next(s->confs, &it, &k, &v))
		if (((struct conf *)v)->vrs && !strcmp(((struct conf *)v)->vrs, vrs) && css_acts_for(s, v))
			n++;
	cdr_notice("VRS %s (%s) down (%s): %zu conferences record there; they keep running, their recording is "
		   "the MCU's and the VRS's affair",
		   vrs, cdr_msg_str(m, "room", "?"), cdr_msg_str(m, "reason", "?"), n);
}

/* The notices css subscribes to (a private queue each); other types on the
 * same exchanges are not css's and are dropped. */
static const struct cdr_handler rms_ntf_handlers[] = {
	{ "rms_all_mcu_ntf", CDR_H_NOTICE, "rms", on_mcu_state },
	{ "rms_all_vrs_ntf", CDR_H_NOTICE, "rms", on_vrs_state },
	{ NULL, 0, NULL, NULL },
};

static const struct cdr_handler peer_rms_ntf_handlers[] = {
	{ "rms_all_mcu_ntf", CDR_H_NOTICE, "rms", on_peer_mcu_state },
	{ NULL, 0, NULL, NULL },
};

static const struct cdr_handler pms_ntf_handlers[] = {
	{ "pms_all_platform_ntf", CDR_H_NOTICE, "pms", on_platform },
	{ "pms_all_room_ntf", CDR_H_NOTICE, "pms", on_room },
	{ NULL, 0, NULL, NULL },
};

static const struct cdr_handler modb_handlers[] = {
	{ "bmc_mau_modb_ntf", CDR_H_NOTICE, "bmc", on_modb },
	{ NULL, 0, NULL, NULL },
};

static const struct cdr_dispatch rms_ntf_dispatch = {
	.daemon = "css",
	.queue = CDR_MQ_RMS_NTF_EX,
	.max_len = CDR_MSG_MAX_SMALL, /* notices of one MCU, room or platform */
	.nack_type = "mau_any_notice_nack",
	.handlers = rms_ntf_handlers,
	.bus = css_bus,
	.ignore_unknown = true,
};

static struct cdr_bus *peer_bus(void *arg)
{
	return &((struct peer_mq *)arg)->s->bus;
}

static const struct cdr_dispatch peer_rms_ntf_dispatch = {
	.daemon = "css",
	.queue = CDR_MQ_RMS_NTF_EX,
	.max_len = CDR_MSG_MAX_SMALL, /* notices of one MCU, room or platform */
	.nack_type = "mau_any_notice_nack",
	.handlers = peer_rms_ntf_handlers,
	.bus = peer_bus,
	.ignore_unknown = true,
};

static const struct cdr_dispatch pms_ntf_dispatch = {
	.daemon = "css",
	.queue = CDR_MQ_PMS_NTF_EX,
	.max_len = CDR_MSG_MAX_SMALL, /* notices of one MCU, room or platform */
	.nack_type = "mau_any_notice_nack",
	.handlers = pms_ntf_handlers,
	.bus = css_bus,
	.ignore_unknown = true,
};

static const struct cdr_dispatch modb_dispatch = {
	.daemon = "css",
	.queue = CDR_MQ_MODB_NOTIFY_EX,
	.nack_type = "mau_any_notice_nack",
	.handlers = modb_handlers,
	.bus = css_bus,
	.ignore_unknown = true,
};

void css_on_rms_ntf(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&rms_ntf_dispatch, dl, arg);
}

void css_on_peer_rms_ntf(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&peer_rms_ntf_dispatch, dl, arg);
}

void css_on_pms_ntf(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&pms_ntf_dispatch, dl, arg);
}

void css_on_modb_ntf(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&modb_dispatch, dl, arg);
}

static void on_pms_state(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct css *s = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;
	json_t *a, *v;
	size_t i;

	if (status == -ECANCELED)
		return;
	if (status < 0 || cdr_msg_decode(reply->body, reply->len, 0, &m, &err) < 0 || !css_is_ack(m)) {
		cdr_warn("pms has not told the platform state (%s); asking again in %" PRIu64 " ms",
			 status < 0 ? strerror(-status)
			 : m	    ? cdr_msg_str(m, "detail", "refused")
				    : err.detail,
			 s->conf.pms_retry_ms);
		cdr_msg_free(m);
		cdr_timer_start(s->pms_timer, s->conf.pms_retry_ms, false);
		return;
	}
	a = cdr_msg_get(m, "platforms");
	json_array_foreach(a, i, v)
		css_apply_platform(s, cdr_msg_jstr(v, "platform", ""), !strcmp(cdr_msg_jstr(v, "state", ""), "down"),
				   cdr_msg_jint(v, "epoch", 0), "state query");
	a = cdr_msg_get(m, "rooms");
	json_array_foreach(a, i, v)
		apply_room(s, cdr_msg_jstr(v, "room", ""), !strcmp(cdr_msg_jstr(v, "state", ""), "abnormal"),
			   cdr_msg_jint(v, "epoch", 0), "state query");
	cdr_msg_free(m);
	if (!s->pms_known)
		cdr_notice("platform %s is %s according to pms", s->platform,
			   css_pms_down(s, s->platform) ? "down" : "up");
	s->pms_known = true;
	css_maybe_consume(s);
}

void css_ask_pms(void *arg)
{
	struct css *s = arg;
	struct cdr_mq *mq = cdr_daemon_mq(s->d);
	char id[200], *txt;

	if (!mq || !s->active)
		return;
	cdr_bus_next_id(&s->bus, s->epoch, id, sizeof(id));
	if (!(txt = cdr_msg_encode("any_pms_state_req", id, s->bus.src, 0, json_object())) ||
	    cdr_mq_request(mq, "", CDR_MQ_PMS_REQ_Q, txt, strlen(txt), 2000, on_pms_state, s) < 0)
		cdr_timer_start(s->pms_timer, s->conf.pms_retry_ms, false);
	free(txt);
}
