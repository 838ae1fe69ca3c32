/* pms: the requests on pms.req.q. State queries from anyone, manual DR
 * switches from operators (confdrctl): checked here, written by state.c,
 * which answers them once written. */
#include "pms_int.h"

static void on_state_req(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct pms *s = arg;
	const char *only = cdr_msg_str(m, "platform", NULL);
	json_t *jp = json_array(), *jr = json_array();
	int64_t top = 0;

	if (only && !cdr_topology_platform(s->topo, only)) {
		char detail[160];

		json_decref(jp);
		json_decref(jr);
		snprintf(detail, sizeof(detail), "platform %s is not in the topology", only);
		pms_answer(s, dl, m, false, cdr_bus_nack_body("unknown_platform", detail));
		return;
	}
	for (size_t i = 0; i < s->nplats; i++) {
		if (only && strcmp(s->plats[i].id, only))
			continue;
		json_array_append_new(jp, pms_plat_json(&s->plats[i], true));
		top = s->plats[i].st.epoch > top ? s->plats[i].st.epoch : top;
	}
	for (size_t i = 0; i < s->nrooms; i++) {
		if (only && strcmp(s->rooms[i].platform, only))
			continue;
		json_array_append_new(jr, pms_room_json(&s->rooms[i], true));
		top = s->rooms[i].st.epoch > top ? s->rooms[i].st.epoch : top;
	}
	pms_answer(s, dl, m, true,
		   json_pack("{s:s, s:o, s:o, s:I}", "platform", s->platform, "platforms", jp, "rooms", jr, "epoch",
			     (json_int_t)top));
}

/* Takes m on every path. */
static void on_switch_req(void *arg, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	struct pms *s = arg;
	const char *target = cdr_msg_str(m, "target", ""), *id = cdr_msg_str(m, "moid", "");
	const char *by = cdr_msg_str(m, "operator", "?"), *why = cdr_msg_str(m, "detail", "");
	bool on = cdr_msg_bool(m, "on", true), force = cdr_msg_bool(m, "force", false), changed = false;
	bool room = !strcmp(target, "room");
	const char *reason = "internal_error";
	char err[400] = "", detail[600];
	struct pms_change c;
	enum pms_target t = room ? PMS_ROOM : PMS_PLATFORM;
	size_t idx = 0;
	bool ok;
	int r;

	if (room) {
		const struct cdr_room *tr = cdr_topology_room(s->topo, id);

		for (idx = 0; idx < s->nrooms && strcmp(s->rooms[idx].id, id); idx++)
			;
		if (!tr || idx == s->nrooms) {
			snprintf(detail, sizeof(detail), "room %s is not in the topology", id);
			pms_answer(s, dl, m, false, cdr_bus_nack_body("unknown_room", detail));
			goto out;
		}
		if (!s->rooms[idx].own) {
			snprintf(detail, sizeof(detail), "room %s belongs to platform %s: ask the pms of %s", id,
				 tr->platform, tr->platform);
			pms_answer(s, dl, m, false, cdr_bus_nack_body("not_owner", detail));
			goto out;
		}
	} else {
		const struct cdr_platform *tp = cdr_topology_platform(s->topo, id);

		for (idx = 0; idx < s->nplats && strcmp(s->plats[idx].id, id); idx++)
			;
		if (!tp || idx == s->nplats) {
			snprintf(detail, sizeof(detail), "platform %s is not in the topology", id);
			pms_answer(s, dl, m, false, cdr_bus_nack_body("unknown_platform", detail));
			goto out;
		}
		if (!s->plats[idx].owned) {
			snprintf(detail, sizeof(detail),
				 "platform %s is switched by the pms of its backup platform %s, not by %s's", id,
				 tp->backup_platform ? tp->backup_platform : "(none)", s->platform);
			pms_answer(s, dl, m, false, cdr_bus_nack_body("not_owner", detail));
			goto out;
		}
	}
	if (room) {
		struct room *rm = &s->rooms[idx];

		if (!rm->loaded)
			goto not_ready;
		ok = pms_room_switch(&rm->st, &rm->h, on, force, by, why, &c, &changed, &reason, err, sizeof(err));
	} else {
		struct plat *p = &s->plats[idx];

		if (!p->loaded)
			goto not_ready;
		p->w.main_room = pms_room_state_of(s, p->main_room);
		ok = pms_platform_switch(&p->st, &p->w, on, force, cdr_mono_i64(), by, why, &c, &changed, &reason, err,
					 sizeof(err));
	}
	cdr_notice("%s switch of %s %s %s by %s%s%s: %s", on ? "DR on" : "DR off", target, id, force ? "(forced)" : "",
		   by, *why ? ": " : "", why,
		   !ok	     ? err
		   : changed ? "switching"
			     : "already so");
	if (!ok) {
		snprintf(detail, sizeof(detail), "%s %s: %s", target, id, err);
		pms_answer(s, dl, m, false, cdr_bus_nack_body(reason, detail));
		goto out;
	}
	if (!changed) {
		bool *writing;
		const struct pms_state *st = pms_target_state(s, t, idx, &writing);

		pms_answer(s, dl, m, true,
			   json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I}", "target", target, "moid", id, "state",
				     pms_state_name(t, st->bad), "manual", st->manual, "changed", false, "since",
				     (json_int_t)st->since, "epoch", (json_int_t)st->epoch));
		goto out;
	}
	if ((r = pms_write_start(s, t, idx, &c, dl, m)) == 0)
		return; /* answered when written */
	snprintf(detail, sizeof(detail), "%s %s: %s", target, id,
		 r == -EBUSY ? "another change of it is being written; ask again" : strerror(-r));
	pms_answer(s, dl, m, false, cdr_bus_nack_body(r == -EBUSY ? "conflict" : "internal_error", detail));
	goto out;
not_ready:
	snprintf(detail, sizeof(detail), "%s %s: its state has not been read from ZooKeeper yet", target, id);
	pms_answer(s, dl, m, false, cdr_bus_nack_body("not_active", detail));
out:
	cdr_msg_free(m);
}

/* pms.req.q: state queries (anyone on the platform) and manual switches
 * (operators), each answered once. */
static const struct cdr_handler handlers[] = {
	{ "any_pms_state_req", CDR_H_REQUEST, "any", on_state_req },
	{ "ctl_pms_switch_req", CDR_H_REQUEST | CDR_H_KEEPS, "ctl", on_switch_req },
	{ NULL, 0, NULL, NULL },
};

static struct cdr_bus *pms_bus(void *server)
{
	return &((struct pms *)server)->bus;
}

static bool pms_serving(void *server)
{
	return ((struct pms *)server)->active && cdr_daemon_acting(((struct pms *)server)->d);
}

/* Before the topology and the state are read, a request is answered
 * not_active. */
static bool not_started(void *server, const struct cdr_handler *h, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	struct pms *s = server;

	(void)h;
	if (s->started)
		return false;
	pms_answer(s, dl, m, false, cdr_bus_nack_body("not_active", "pms has not read the topology and the state yet"));
	return true;
}

static const struct cdr_dispatch req_dispatch = {
	.daemon = "pms",
	.queue = CDR_MQ_PMS_REQ_Q,
	.nack_type = "pms_any_request_nack",
	.handlers = handlers,
	.bus = pms_bus,
	.serving = pms_serving,
	.before = not_started,
};

void pms_on_req(struct cdr_mq_delivery *dl, void *arg)
{
	cdr_dispatch(&req_dispatch, dl, arg);
}
