/* pms: the checks of this platform's rooms. TCP and command checks run on
 * timers (probe.c), the MCU check reads rms's inventory and notices; every
 * verdict feeds the room's health (health.c) and asks state.c to decide. */
#include "pms_int.h"

/* ---- own rooms: settings, verdicts, health ---- */

static const struct pms_room_conf *room_conf(const struct pms *s, const char *room)
{
	static const struct pms_room_conf defaults = {
		.tcp = "",
		.connect_timeout_ms = 1000,
		.interval_ms = 1000,
		.fall = 3,
		.rise = 2,
		.mcus = true,
		.mcu_fall = 1,
		.mcu_rise = 2,
		.command = "",
		.command_timeout_ms = 2000,
		.preempt = false,
		.preempt_delay_ms = 60000,
	};

	for (size_t i = 0; i < s->nrconf; i++)
		if (!strcmp(s->rnames[i], room))
			return &s->rconf[i];
	return &defaults;
}

/* The room's health is every check up; why names the first one down. */
static void room_health_update(struct room *r)
{
	bool healthy = true;
	char why[256] = "";

	for (size_t i = 0; i < r->nchecks; i++) {
		struct check *k = r->checks[i];

		if (!k->v.up) {
			healthy = false;
			snprintf(why, sizeof(why), "%s", k->last);
			break;
		}
	}
	if (healthy != r->h.healthy)
		cdr_notice("room %s is %s%s", r->id,
			   healthy ? "healthy: every check passes" : "unhealthy: ", healthy ? "" : why);
	pms_room_health_set(&r->h, healthy, why, cdr_mono_i64());
	pms_decide_room(r);
}

static void check_feed(struct check *k, bool ok, const char *detail)
{
	if (!ok) {
		if (k->kind == CK_TCP)
			snprintf(k->last, sizeof(k->last), "tcp check %s %s:%d: %s", k->name, k->host, k->port, detail);
		else if (k->kind == CK_CMD)
			snprintf(k->last, sizeof(k->last), "command check: %s", detail);
		else
			snprintf(k->last, sizeof(k->last), "mcu check: %s", detail);
	}
	if (pms_verdict_feed(&k->v, ok, cdr_mono_i64())) {
		if (k->v.up)
			cdr_notice("room %s: %s check %s is up again", k->room->id,
				   k->kind == CK_TCP   ? "tcp"
				   : k->kind == CK_CMD ? "command"
						       : "mcu",
				   k->name);
		else
			cdr_warn("room %s: %s (down after %d failure%s in a row)", k->room->id, k->last, k->v.fall,
				 k->v.fall == 1 ? "" : "s");
		room_health_update(k->room);
	}
}

static void on_probe(bool ok, const char *detail, void *arg)
{
	struct check *k = arg;

	k->probe = NULL;
	check_feed(k, ok, detail);
}

static void run_check(void *arg)
{
	struct check *k = arg;
	struct cdr_loop *loop = cdr_daemon_loop(k->s->d);
	int r;

	if (k->probe)
		return; /* still running: the timeout will tell */
	if (k->kind == CK_TCP)
		r = pms_probe_tcp(loop, k->host, k->port, k->timeout_ms, on_probe, k, &k->probe);
	else
		r = pms_probe_command(loop, k->command, k->timeout_ms, on_probe, k, &k->probe);
	if (r < 0) {
		char d[160];

		snprintf(d, sizeof(d), "cannot start: %s", strerror(-r));
		check_feed(k, false, d);
	}
}

/* ---- the MCU check: rms's inventory and notices ---- */

/* The MCU group check of room r from what rms told: fails when the room has
 * MCUs and none of them is alive. */
static void mcu_evaluate(struct room *r)
{
	struct pms *s = r->s;
	int64_t now = cdr_mono_i64();
	size_t it = 0, known = 0, alive = 0;
	const char *key;
	void *val;
	char d[160];

	/* MCUs silent while the broker was away were silent to rms too: they
	 * are judged once they had mcu_absent_grace to register again. */
	if (!r->mcus || !s->amqp_up_ms || now - s->amqp_up_ms < (int64_t)s->conf.mcu_absent_ms)
		return;
	while (cdr_hmap_next(s->mcus, &it, &key, &val)) {
		struct mcu_seen *m = val;

		if (strcmp(m->room, r->id))
			continue;
		known++;
		if (m->alive && now - m->listed_ms <= (int64_t)s->conf.mcu_absent_ms)
			alive++;
	}
	for (size_t i = 0; i < r->nchecks; i++) {
		if (r->checks[i]->kind != CK_MCU)
			continue;
		snprintf(d, sizeof(d), "all %zu MCUs of the room are silent", known);
		check_feed(r->checks[i], known == 0 || alive > 0, d);
	}
}

struct room *pms_own_room(struct pms *s, const char *id)
{
	for (size_t i = 0; i < s->nrooms; i++)
		if (s->rooms[i].own && !strcmp(s->rooms[i].id, id))
			return &s->rooms[i];
	return NULL;
}

static void mcu_seen_set(struct pms *s, const char *id, const char *room, bool alive)
{
	struct mcu_seen *m = cdr_hmap_get(s->mcus, id);

	if (!m) {
		if (!(m = calloc(1, sizeof(*m))))
			return;
		snprintf(m->id, sizeof(m->id), "%s", id);
		if (cdr_hmap_put(s->mcus, m->id, m) < 0) {
			free(m);
			return;
		}
	}
	snprintf(m->room, sizeof(m->room), "%s", room);
	m->alive = alive;
	m->listed_ms = cdr_mono_i64();
}

/* Every MCU known gets mcu_absent_grace from now to show up in rms's
 * inventory (its alive flag kept meanwhile); said in the log when loud. */
static void mcu_grace_all(struct pms *s, int64_t epoch, bool loud)
{
	size_t it = 0, n = 0;
	const char *key;
	void *val;
	int64_t now = cdr_mono_i64();

	while (cdr_hmap_next(s->mcus, &it, &key, &val)) {
		((struct mcu_seen *)val)->listed_ms = now;
		n++;
	}
	if (n && loud)
		cdr_info("rms of %s (epoch %" PRId64 ") answers after a silence or a change of leader: its %zu MCUs "
			 "get %" PRIu64 " ms to register with it before the MCU checks judge them",
			 s->platform, epoch, n, s->conf.mcu_absent_ms);
}

static void on_inventory(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct pms *s = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;
	json_t *mcus, *x;
	size_t i;
	int64_t epoch;

	s->inventory_pending = false;
	if (status == -ECANCELED || !s->started)
		return;
	if (status < 0 || cdr_msg_decode(reply->body, reply->len, 0, &m, &err) < 0 ||
	    strcmp(cdr_msg_type(m), "rms_ctl_inventory_ack")) {
		if (!s->rms_silent_logged)
			cdr_warn("rms of %s did not give its inventory (%s): the MCU checks wait (not counted as "
				 "failures)",
				 s->platform,
				 status < 0 ? strerror(-status)
				 : m	    ? cdr_msg_type(m)
					    : err.detail);
		s->rms_silent_logged = true;
		cdr_msg_free(m);
		return;
	}
	if (s->rms_silent_logged)
		cdr_notice("rms of %s answers again", s->platform);
	/* An rms that answers again, or another rms (a standby elected), has
	 * just asked every MCU to register with it: each MCU it does not list
	 * yet gets mcu_absent_grace from now, as after a broker return. Not
	 * silence: the time without an inventory was ours, not the MCUs'. */
	epoch = cdr_msg_int(m, "epoch", 0);
	if (s->rms_silent_logged || (s->rms_epoch_seen && epoch != s->rms_epoch_seen))
		mcu_grace_all(s, epoch, true);
	/* Still settling (just elected: an MCU whose registration a frozen,
	 * deposed rms holds is missing for seconds): the grace starts after. */
	else if (cdr_msg_bool(m, "settling", false))
		mcu_grace_all(s, epoch, false);
	s->rms_epoch_seen = epoch;
	s->rms_silent_logged = false;
	mcus = cdr_msg_get(m, "mcus");
	json_array_foreach(mcus, i, x)
	{
		const char *st = cdr_msg_jstr(x, "state", "down");

		mcu_seen_set(s, cdr_msg_jstr(x, "mcu", ""), cdr_msg_jstr(x, "room", ""), strcmp(st, "down") != 0);
	}
	cdr_msg_free(m);
	for (i = 0; i < s->nrooms; i++)
		if (s->rooms[i].own)
			mcu_evaluate(&s->rooms[i]);
}

void pms_poll_inventory(void *arg)
{
	struct pms *s = arg;
	struct cdr_mq *mq = cdr_daemon_mq(s->d);
	char id[120], *txt;
	int r;

	if (!s->started || s->inventory_pending || !mq || !cdr_daemon_link_up(s->d, "amqp"))
		return;
	cdr_bus_next_id(&s->bus, s->leader_epoch, id, sizeof(id));
	if (!(txt = cdr_msg_encode("ctl_rms_inventory_req", id, s->bus.src, 0, json_object())))
		return;
	r = cdr_mq_request(mq, "", CDR_MQ_RMS_REQ_Q, txt, strlen(txt), (unsigned)s->conf.rms_timeout_ms, on_inventory,
			   s);
	free(txt);
	if (r == 0)
		s->inventory_pending = true;
}

/* rms_all_mcu_ntf of this platform's own rooms: the MCU check. */
static void on_mcu_state(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct pms *s = arg;
	struct room *r;
	int64_t epoch = cdr_msg_int(m, "epoch", 0);

	(void)dl;
	if (!s->started || strcmp(cdr_msg_str(m, "platform", ""), s->platform) ||
	    !(r = pms_own_room(s, cdr_msg_str(m, "room", ""))))
		return;
	/* A deposed rms (frozen, woken) may still judge MCUs by heartbeats it
	 * could not receive: only the newest rms we know is believed. */
	if (epoch < s->rms_epoch_seen) {
		cdr_info("rms_all_mcu_ntf of %s from rms epoch %" PRId64 ", older than %" PRId64 ": ignored",
			 cdr_msg_str(m, "mcu", "?"), epoch, s->rms_epoch_seen);
		return;
	}
	mcu_seen_set(s, cdr_msg_str(m, "mcu", ""), r->id, strcmp(cdr_msg_str(m, "state", "down"), "down") != 0);
	mcu_evaluate(r);
}

static const struct cdr_handler rms_ntf_handlers[] = {
	{ "rms_all_mcu_ntf", CDR_H_NOTICE, "rms", on_mcu_state },
	{ NULL, 0, NULL, NULL },
};

static struct cdr_bus *checks_bus(void *server)
{
	return &((struct pms *)server)->bus;
}

/* rms.ntf.ex (a private queue): the other types there are not pms's. */
static const struct cdr_dispatch rms_ntf_dispatch = {
	.daemon = "pms",
	.queue = CDR_MQ_RMS_NTF_EX,
	.max_len = CDR_MSG_MAX_SMALL, /* notices of one MCU, room or platform */
	.nack_type = "pms_any_notice_nack",
	.handlers = rms_ntf_handlers,
	.bus = checks_bus,
	.ignore_unknown = true,
};

void pms_on_rms_ntf(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&rms_ntf_dispatch, dl, arg);
}

/* ---- setting up ---- */

static int add_check(struct room *r, enum check_kind kind, const char *name, const char *addr, const char *cmd,
		     const struct pms_room_conf *rc)
{
	struct check *k = calloc(1, sizeof(*k)), **grown;

	if (!k)
		return -ENOMEM;
	grown = realloc(r->checks, (r->nchecks + 1) * sizeof(*grown));
	if (!grown) {
		free(k);
		return -ENOMEM;
	}
	r->checks = grown;
	r->checks[r->nchecks++] = k;
	k->s = r->s;
	k->room = r;
	k->kind = kind;
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->interval_ms = rc->interval_ms;
	if (kind == CK_MCU) {
		pms_verdict_init(&k->v, (int)rc->mcu_fall, (int)rc->mcu_rise, cdr_mono_i64());
		return 0;
	}
	pms_verdict_init(&k->v, (int)rc->fall, (int)rc->rise, cdr_mono_i64());
	if (kind == CK_TCP) {
		k->timeout_ms = rc->connect_timeout_ms;
		if (pms_probe_parse_addr(addr, k->host, sizeof(k->host), &k->port) < 0)
			return -EINVAL;
	} else {
		k->timeout_ms = rc->command_timeout_ms;
		if (!(k->command = strdup(cmd)))
			return -ENOMEM;
	}
	if (cdr_timer_new(cdr_daemon_loop(r->s->d), run_check, k, &k->timer) < 0)
		return -ENOMEM;
	cdr_timer_start(k->timer, k->interval_ms, true);
	return 0;
}

void pms_free_checks(struct room *r)
{
	for (size_t i = 0; i < r->nchecks; i++) {
		struct check *k = r->checks[i];

		k->probe = pms_probe_free(k->probe);
		k->timer = cdr_timer_free(k->timer);
		free(k->command);
		free(k);
	}
	free(r->checks);
	r->checks = NULL;
	r->nchecks = 0;
}

int pms_build_checks(struct room *r)
{
	const struct pms_room_conf *rc = room_conf(r->s, r->id);
	char buf[1024], *save = NULL, *tok;
	int err;

	pms_room_health_init(&r->h, rc->preempt, (int64_t)rc->preempt_delay_ms, cdr_mono_i64());
	r->mcus = rc->mcus;
	if (rc->mcus && (err = add_check(r, CK_MCU, "mcus", NULL, NULL, rc)) < 0)
		return err;
	snprintf(buf, sizeof(buf), "%s", rc->tcp);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *name = tok;

		if (!eq)
			continue;
		*eq = '\0';
		while (*name == ' ' || *name == '\t')
			name++;
		for (char *e = name + strlen(name); e > name && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		{
			char *addr = eq + 1;

			while (*addr == ' ' || *addr == '\t')
				addr++;
			for (char *e = addr + strlen(addr); e > addr && (e[-1] == ' ' || e[-1] == '\t');)
				*--e = '\0';
			if ((err = add_check(r, CK_TCP, name, addr, NULL, rc)) < 0)
				return err;
		}
	}
	if (*rc->command && (err = add_check(r, CK_CMD, "command", NULL, rc->command, rc)) < 0)
		return err;
	cdr_info("room %s: %zu check%s (%s%s%s), %s", r->id, r->nchecks, r->nchecks == 1 ? "" : "s",
		 rc->mcus ? "mcus " : "", *rc->tcp ? "tcp " : "", *rc->command ? "command" : "",
		 rc->preempt ? "preempt" : "nopreempt");
	return 0;
}
