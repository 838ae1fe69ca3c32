/* rms: what it announces. rms_all_restarted_ntf (every MCU and VRS
 * registers again) once per epoch and on heartbeats of unknown ones; the
 * inventory's changes as rms_all_mcu_ntf / rms_all_vrs_ntf on rms.ntf.ex, and
 * as mcu_down / vrs_down alarms raised or cleared on cdr.alarm.ex. */
#include "rms_int.h"

static void publish(struct rms *s, const char *exchange, const char *type, json_t *body)
{
	cdr_bus_publish(&s->bus, NULL, exchange, "", type, NULL, s->epoch, body, false, NULL, NULL);
}

void rms_announce_restart(struct rms *s, const char *why)
{
	publish(s, CDR_MQ_RMS_NTF_EX, "rms_all_restarted_ntf",
		json_pack("{s:s, s:I}", "platform", s->platform, "epoch", (json_int_t)s->epoch));
	s->last_reregister_ms = cdr_now_ms();
	cdr_notice("asked every MCU and VRS to register (%s), epoch %" PRId64, why, s->epoch);
}

/* Announce once per epoch, when active with a topology and a broker. */
void rms_maybe_announce(struct rms *s)
{
	if (s->active && !s->announced && s->topo && cdr_daemon_link_up(s->d, "amqp")) {
		s->announced = true;
		rms_announce_restart(s, "new leader");
	}
}

void rms_on_inv_event(const struct rms_event *ev, void *arg)
{
	struct rms *s = arg;
	const char *id = ev->vrs ? ev->v->id : ev->mcu->id, *room = ev->vrs ? ev->v->room : ev->mcu->room;
	bool down = strcmp(ev->state, "down") == 0;
	json_t *body;

	if (down)
		cdr_warn("%s %s in %s is down (%s)", ev->vrs ? "vrs" : "mcu", id, room, ev->reason);
	else
		cdr_notice("%s %s in %s is %s (%s)", ev->vrs ? "vrs" : "mcu", id, room, ev->state, ev->reason);
	if (ev->vrs)
		body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "vrs", id, "room", room, "platform", s->platform,
				 "state", ev->state, "reason", ev->reason, "epoch", (json_int_t)s->epoch);
	else
		body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "mcu", id, "key", ev->mcu->key, "room", room,
				 "platform", s->platform, "state", ev->state, "reason", ev->reason, "epoch",
				 (json_int_t)s->epoch);
	publish(s, CDR_MQ_RMS_NTF_EX, ev->vrs ? "rms_all_vrs_ntf" : "rms_all_mcu_ntf", body);
	if (down || strcmp(ev->reason, "heartbeat_resumed") == 0 || strcmp(ev->reason, "registered") == 0) {
		char detail[256];

		snprintf(detail, sizeof(detail), "%s %s in room %s: %s", ev->vrs ? "VRS" : "MCU", id, room, ev->reason);
		cdr_daemon_alarm(s->d, ev->vrs ? "vrs_down" : "mcu_down", down ? "major" : "cleared");
		publish(s, CDR_MQ_ALARM_EX, "rms_all_alarm_ntf",
			json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "severity", down ? "major" : "cleared", "kind",
				  ev->vrs ? "vrs_down" : "mcu_down", "target", id, "platform", s->platform, "detail",
				  detail, "epoch", (json_int_t)s->epoch));
	}
}
