/* pms: what it sends. Every state change broadcast on its own broker's
 * pms.ntf.ex, every change as an alarm line and on cdr.alarm.ex, and the
 * answers to requests on pms.req.q. */
#include "pms_int.h"

static void publish(struct pms *s, const char *exchange, const char *type, json_t *body)
{
	cdr_bus_publish(&s->bus, NULL, exchange, "", type, NULL, s->leader_epoch, body, false, NULL, NULL);
}

json_t *pms_room_json(const struct room *r, bool full)
{
	const struct cdr_room *tr = r->s->topo ? cdr_topology_room(r->s->topo, r->id) : NULL;
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:I, s:I}", "room", r->id, "platform", r->platform,
			      "state", pms_state_name(PMS_ROOM, r->st.bad), "manual", r->st.manual, "reason",
			      r->st.reason[0] ? r->st.reason : "initial", "detail", r->st.detail, "since",
			      (json_int_t)r->st.since, "epoch", (json_int_t)r->st.epoch);

	if (r->st.by[0])
		json_object_set_new(o, "by", json_string(r->st.by));
	if (full) {
		if (r->own)
			json_object_set_new(o, "healthy", json_boolean(r->h.healthy));
	} else if (tr) {
		json_t *b = json_array();

		for (size_t i = 0; i < tr->nbackup_rooms; i++)
			json_array_append_new(b, json_string(tr->backup_rooms[i]));
		json_object_set_new(o, "backup_rooms", b);
	}
	return o;
}

json_t *pms_plat_json(const struct plat *p, bool full)
{
	json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:s, s:I, s:I}", "platform", p->id, "state",
			      pms_state_name(PMS_PLATFORM, p->st.bad), "manual", p->st.manual, "reason",
			      p->st.reason[0] ? p->st.reason : "initial", "detail", p->st.detail, "since",
			      (json_int_t)p->st.since, "epoch", (json_int_t)p->st.epoch);

	if (p->backup[0])
		json_object_set_new(o, "backup_platform", json_string(p->backup));
	if (p->st.by[0])
		json_object_set_new(o, "by", json_string(p->st.by));
	if (full && p->owned)
		json_object_set_new(o, "pms_live", json_boolean(pms_peer_alive(&p->w.peer)));
	return o;
}

void pms_broadcast_room(struct room *r)
{
	pms_console_state_event(r->s, PMS_ROOM, r->id, &r->st);
	publish(r->s, CDR_MQ_PMS_NTF_EX, "pms_all_room_ntf", pms_room_json(r, false));
}

void pms_broadcast_plat(struct plat *p)
{
	publish(p->s, CDR_MQ_PMS_NTF_EX, "pms_all_platform_ntf", pms_plat_json(p, false));
}

/* Every change, manual or not, as an alarm line and on cdr.alarm.ex. */
void pms_alarm(struct pms *s, enum pms_target t, const char *id, const struct pms_state *st)
{
	const char *kind = t == PMS_ROOM ? "room_abnormal" : "platform_down";
	const char *sev = !st->bad ? "cleared" : t == PMS_ROOM ? "major" : "critical";
	char detail[600];

	snprintf(detail, sizeof(detail), "%s %s is %s (%s%s%s%s%s)", t == PMS_ROOM ? "room" : "platform", id,
		 pms_state_name(t, st->bad), st->reason, st->by[0] ? " by " : "", st->by, st->detail[0] ? ": " : "",
		 st->detail);
	if (st->bad)
		cdr_warn("ALARM %s %s %s: %s (epoch %" PRId64 ")", sev, kind, id, detail, st->epoch);
	else
		cdr_notice("ALARM %s %s %s: %s (epoch %" PRId64 ")", sev, kind, id, detail, st->epoch);
	cdr_daemon_alarm(s->d, kind, sev);
	publish(s, CDR_MQ_ALARM_EX, "pms_all_alarm_ntf",
		json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "severity", sev, "kind", kind, "target", id, "platform",
			  s->platform, "detail", detail, "epoch", (json_int_t)st->epoch));
}

void pms_answer(struct pms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack, json_t *body)
{
	if (!ack)
		pms_metric_nack(s, m, body); /* before the body is given away */
	cdr_bus_answer(&s->bus, dl, m, ack, body, false);
}
