/* rms: rms.res.q, the MCUs' and VRS' registrations (answered with the
 * heartbeat interval and the epoch, or refused) and heartbeats (a heartbeat
 * of one rms does not know asks every MCU and VRS to register again). */
#include "rms_int.h"

#define REREGISTER_EVERY_MS 1000 /* rms_all_restarted_ntf at most this often for unknown MCUs */

/* NACKs a registration rms_inv_register_* refused with r (err says why). */
static void refuse_registration(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, const char *kind,
				const char *id, int r, const char *err)
{
	const char *reason = r == -EAGAIN   ? "not_active"
			     : r == -ENOMEM ? "internal_error"
			     : r == -EPERM  ? "forbidden"
					    : "unknown_room";
	json_t *b = cdr_bus_nack_body(reason, err);

	json_object_set_new(b, kind, json_string(id));
	cdr_warn("registration of %s %s refused: %s", kind, id, err);
	rms_answer(s, dl, m, false, b, false);
}

void rms_on_register_mcu(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	struct rms_mcu_reg reg = {
		.id = cdr_msg_str(m, "mcu", ""),
		.key = cdr_msg_str(m, "key", ""),
		.room = cdr_msg_str(m, "room", ""),
		.platform = cdr_msg_str(m, "platform", ""),
		.cap_confs = cdr_msg_int(m, "capacity_confs", 0),
		.cap_ports = cdr_msg_int(m, "capacity_ports", 0),
		.h265 = cdr_msg_bool(m, "h265", false),
		.res_1080p = cdr_msg_bool(m, "res_1080p", false),
		.xmpu = cdr_msg_bool(m, "xmpu", false),
		.weight = (int)cdr_msg_int(m, "weight", 100),
		.priority = (int)cdr_msg_int(m, "priority", 100),
		.backup = cdr_msg_bool(m, "backup", false),
		.running_confs = cdr_msg_int(m, "running_confs", 0),
		.used_ports = cdr_msg_int(m, "used_ports", 0),
		.boot = cdr_msg_str(m, "boot", NULL),
		.owner = dl->user_id,
	};
	char err[256] = "";
	int r = rms_inv_register_mcu(s->inv, &reg, cdr_mono_i64(), err, sizeof(err));

	if (r < 0) {
		refuse_registration(s, dl, m, "mcu", reg.id, r, err);
		return;
	}
	cdr_info("mcu %s registered: room %s, %" PRId64 " confs / %" PRId64 " ports, %" PRId64 " running", reg.id,
		 reg.room, reg.cap_confs, reg.cap_ports, reg.running_confs);
	rms_answer(s, dl, m, true,
		   json_pack("{s:s, s:I, s:I, s:I}", "mcu", reg.id, "heartbeat_ms", (json_int_t)s->conf.heartbeat_ms,
			     "misses", (json_int_t)s->conf.misses, "epoch", (json_int_t)s->epoch),
		   false);
}

void rms_on_register_vrs(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	struct rms_vrs_reg reg = {
		.id = cdr_msg_str(m, "vrs", ""),
		.room = cdr_msg_str(m, "room", ""),
		.platform = cdr_msg_str(m, "platform", ""),
		.capacity = cdr_msg_int(m, "capacity", 0),
		.weight = (int)cdr_msg_int(m, "weight", 100),
		.priority = (int)cdr_msg_int(m, "priority", 100),
		.running = cdr_msg_int(m, "running", 0),
		.owner = dl->user_id,
	};
	char err[256] = "";
	int r = rms_inv_register_vrs(s->inv, &reg, cdr_mono_i64(), err, sizeof(err));

	if (r < 0) {
		refuse_registration(s, dl, m, "vrs", reg.id, r, err);
		return;
	}
	cdr_info("vrs %s registered: room %s, capacity %" PRId64, reg.id, reg.room, reg.capacity);
	rms_answer(s, dl, m, true,
		   json_pack("{s:s, s:I, s:I, s:I}", "vrs", reg.id, "heartbeat_ms", (json_int_t)s->conf.heartbeat_ms,
			     "misses", (json_int_t)s->conf.misses, "epoch", (json_int_t)s->epoch),
		   false);
}

void rms_on_heartbeat(struct rms *s, const struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool vrs)
{
	const char *id = cdr_msg_str(m, vrs ? "vrs" : "mcu", "");
	const char *owner = rms_inv_owner(s->inv, id, vrs);
	int r;

	if (owner && (!dl->user_id || strcmp(owner, dl->user_id))) {
		/* another user's heartbeat for it: not its own (issue 22) */
		uint64_t k = cdr_daemon_sender_refused(s->d);

		if ((k & (k - 1)) == 0)
			cdr_warn("%s %s: heartbeat from broker user %s refused: it is registered by %s (%" PRIu64
				 " refused for their sender so far)",
				 vrs ? "vrs" : "mcu", id, dl->user_id ? dl->user_id : "(none)", owner, k);
		if (((const struct cdr_daemon_conf *)cdr_daemon_conf(s->d))->amqp_check_senders)
			return;
	}

	if (!vrs && rms_inv_mcu_boot(s->inv, id, cdr_msg_str(m, "boot", NULL)) == 1)
		cdr_warn("mcu %s: a heartbeat of a new boot (%s) without a registration: it restarted; its "
			 "conferences are restored elsewhere",
			 id, cdr_msg_str(m, "boot", "?"));
	if (vrs)
		r = rms_inv_heartbeat_vrs(s->inv, id, cdr_msg_int(m, "seq", 0), cdr_msg_int(m, "running", 0),
					  cdr_mono_i64());
	else
		r = rms_inv_heartbeat_mcu(s->inv, id, cdr_msg_int(m, "seq", 0), cdr_msg_int(m, "running_confs", 0),
					  cdr_msg_int(m, "used_ports", 0), cdr_mono_i64());
	if (r == -ERANGE) {
		/* logged at the 1st, 2nd, 4th, 8th, ... refusal: a flood of
		 * forged heartbeats does not flood the log */
		uint64_t k = ++s->seq_refused;

		if ((k & (k - 1)) == 0)
			cdr_warn("%s %s: heartbeat seq %" PRId64 " refused: further ahead of the last one than its "
				 "interval allows (a forged or broken counter; %" PRIu64 " refused so far)",
				 vrs ? "vrs" : "mcu", id, cdr_msg_int(m, "seq", 0), k);
	}
	if (r == -ENOENT) {
		/* Registered with an earlier leader, or its registration was
		 * lost: the restart notice makes it register again. */
		cdr_debug("heartbeat of unregistered %s %s", vrs ? "vrs" : "mcu", id);
		if (cdr_now_ms() - s->last_reregister_ms >= REREGISTER_EVERY_MS)
			rms_announce_restart(s, "heartbeats of unregistered MCUs or VRS");
	}
}
