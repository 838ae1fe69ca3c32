/* Every message type on the bus: direction, route and body fields.
 * docs/protocol.md is the prose of this table; keep them together. */
#include <confdr/msg.h>

#include <stddef.h>

#define END                                                                                                            \
	{                                                                                                              \
		NULL, 0, false, 0, 0, NULL                                                                             \
	}
#define E164                                                                                                           \
	{                                                                                                              \
		"e164", CDR_F_E164, true, 3, 32, NULL                                                                  \
	}
#define E164_OPT                                                                                                       \
	{                                                                                                              \
		"e164", CDR_F_E164, false, 3, 32, NULL                                                                 \
	}
#define ID(n)                                                                                                          \
	{                                                                                                              \
		n, CDR_F_STR, true, 1, 64, NULL                                                                        \
	}
#define ID_OPT(n)                                                                                                      \
	{                                                                                                              \
		n, CDR_F_STR, false, 1, 64, NULL                                                                       \
	}
#define EPOCH                                                                                                          \
	{                                                                                                              \
		"epoch", CDR_F_INT, true, 0, INT64_MAX, NULL                                                           \
	}
#define REASON                                                                                                         \
	{                                                                                                              \
		"reason", CDR_F_STR, true, 1, 64, NULL                                                                 \
	}
#define DETAIL                                                                                                         \
	{                                                                                                              \
		"detail", CDR_F_STR, false, 0, 1024, NULL                                                              \
	}
#define FLAG(n)                                                                                                        \
	{                                                                                                              \
		n, CDR_F_BOOL, false, 0, 0, NULL                                                                       \
	}

static const char *const resolutions[] = { "360p", "480p", "720p", "1080p", "4k", NULL };
static const char *const mcu_states[] = { "up", "down", "drain", NULL };
static const char *const room_states[] = { "normal", "abnormal", NULL };
static const char *const platform_states[] = { "up", "down", NULL };
static const char *const switch_targets[] = { "room", "platform", NULL };
static const char *const switch_to[] = { "backup", "normal", NULL };
static const char *const alloc_reasons[] = { "no_capacity", "unknown_room", "unknown_capability",
					     "bad_request", "not_active",   NULL };
static const char *const modb_kinds[] = { "user_domain", "platform", NULL };
static const char *const modb_ops[] = { "add", "update", "delete", NULL };
static const char *const upu_states[] = { "start", "end", NULL };

/* ---- CM <-> CSS: the CM contract (fixed) ---- */
static const struct cdr_field createconf_req[] = {
	E164,
	{ "name", CDR_F_STR, true, 1, 128, NULL },
	ID("user_domain"),
	{ "duration_min", CDR_F_INT, true, 1, 1440, NULL },
	FLAG("h265"),
	{ "resolution", CDR_F_ENUM, false, 0, 0, resolutions },
	FLAG("record"),
	{ "max_participants", CDR_F_INT, false, 2, 10000, NULL },
	END,
};
static const struct cdr_field createconf_ack[] = {
	E164, ID("mcu"), { "vrs", CDR_F_STR_OR_NULL, true, 1, 64, NULL }, ID("room"), ID("platform"), END,
};
static const struct cdr_field nack[] = { E164_OPT, REASON, DETAIL, END };
static const struct cdr_field e164_only[] = { E164, END };
static const struct cdr_field extend_req[] = { E164, { "minutes", CDR_F_INT, true, 1, 1440, NULL }, END };
static const struct cdr_field extend_ack[] = { E164, { "planned_end", CDR_F_INT, true, 0, INT64_MAX, NULL }, END };
static const struct cdr_field query_ack[] = { E164, { "conf", CDR_F_OBJ, true, 0, 0, NULL }, END };
static const struct cdr_field list_req[] = { ID("user_domain"), END };
static const struct cdr_field list_ack[] = { ID("user_domain"), { "confs", CDR_F_ARR, true, 0, 100000, NULL }, END };
static const struct cdr_field rename_req[] = { E164, { "name", CDR_F_STR, true, 1, 128, NULL }, END };
static const struct cdr_field ended_ntf[] = { E164, REASON, END };

/* ---- CSS <-> MCU ---- */
static const struct cdr_field mcu_create_req[] = {
	E164, { "conf", CDR_F_OBJ, true, 0, 0, NULL }, EPOCH, { "generation", CDR_F_INT, true, 0, INT64_MAX, NULL },
	END,
};
static const struct cdr_field mcu_ack[] = {
	E164, ID("mcu"), { "generation", CDR_F_INT, false, 0, INT64_MAX, NULL }, END
};
static const struct cdr_field mcu_nack[] = { E164, ID("mcu"), REASON, DETAIL, END };
static const struct cdr_field mcu_end_req[] = { E164, { "reason", CDR_F_STR, false, 1, 64, NULL }, EPOCH, END };
static const struct cdr_field conflist_ntf[] = {
	ID("mcu"),
	{ "seq", CDR_F_INT, true, 0, INT64_MAX, NULL },
	{ "confs", CDR_F_ARR, true, 0, 100000, NULL },
	END,
};
static const struct cdr_field mcu_renamed_ntf[] = { E164, ID("mcu"), { "name", CDR_F_STR, true, 1, 128, NULL }, END };
static const struct cdr_field mcu_password_ntf[] = { E164, ID("mcu"), END };

/* ---- MCU / VRS <-> RMS ---- */
static const struct cdr_field mcu_register_req[] = {
	ID("mcu"),
	ID("room"),
	ID("platform"),
	ID("key"),
	{ "capacity_confs", CDR_F_INT, true, 1, 100000, NULL },
	{ "capacity_ports", CDR_F_INT, true, 1, 1000000, NULL },
	FLAG("h265"),
	FLAG("res_1080p"),
	FLAG("xmpu"),
	{ "weight", CDR_F_INT, false, 1, 1000, NULL },
	{ "priority", CDR_F_INT, false, 0, 1000, NULL },
	END,
};
static const struct cdr_field register_ack[] = {
	ID_OPT("mcu"), ID_OPT("vrs"), EPOCH, { "heartbeat_ms", CDR_F_INT, true, 100, 600000, NULL }, END
};
static const struct cdr_field mcu_heartbeat[] = { ID("mcu"), { "running", CDR_F_INT, true, 0, 100000, NULL }, END };
static const struct cdr_field vrs_register_req[] = {
	ID("vrs"), ID("room"), ID("platform"), { "capacity", CDR_F_INT, true, 1, 100000, NULL }, END,
};
static const struct cdr_field vrs_heartbeat[] = { ID("vrs"), END };
static const struct cdr_field epoch_only[] = { EPOCH, END };

/* ---- CSS <-> RMS ---- */
static const struct cdr_field alloc_req[] = {
	E164, ID("user_domain"), ID("room"), FLAG("h265"), FLAG("res_1080p"), FLAG("xmpu"), FLAG("record"), END,
};
static const struct cdr_field alloc_ack[] = {
	E164, ID("mcu"), { "vrs", CDR_F_STR_OR_NULL, true, 1, 64, NULL }, ID("room"), ID("platform"), ID("reservation"),
	END,
};
static const struct cdr_field alloc_nack[] = {
	E164_OPT,
	{ "reason", CDR_F_ENUM, true, 0, 0, alloc_reasons },
	DETAIL,
	END,
};
static const struct cdr_field bulkalloc_req[] = { ID("room"), { "confs", CDR_F_ARR, true, 1, 100000, NULL }, END };
static const struct cdr_field bulkalloc_ack[] = { { "results", CDR_F_ARR, true, 0, 100000, NULL }, END };
static const struct cdr_field reservation[] = { ID("reservation"), END };
static const struct cdr_field capability_req[] = { ID("user_domain"), END };
static const struct cdr_field capability_ack[] = {
	ID("user_domain"), ID("room"), FLAG("h265"), FLAG("res_1080p"), FLAG("xmpu"), END,
};
static const struct cdr_field mcu_ntf[] = {
	ID("mcu"), ID("room"), ID("platform"), { "state", CDR_F_ENUM, true, 0, 0, mcu_states }, REASON, EPOCH, END,
};

/* ---- PMS ---- */
static const struct cdr_field room_ntf[] = {
	ID("room"),
	ID("platform"),
	{ "state", CDR_F_ENUM, true, 0, 0, room_states },
	FLAG("manual"),
	REASON,
	{ "since", CDR_F_INT, true, 0, INT64_MAX, NULL },
	EPOCH,
	END,
};
static const struct cdr_field platform_ntf[] = {
	ID("platform"),
	{ "state", CDR_F_ENUM, true, 0, 0, platform_states },
	FLAG("manual"),
	REASON,
	{ "since", CDR_F_INT, true, 0, INT64_MAX, NULL },
	EPOCH,
	END,
};
static const struct cdr_field state_req[] = { ID_OPT("platform"), END };
static const struct cdr_field state_ack[] = {
	{ "platforms", CDR_F_OBJ, true, 0, 0, NULL },
	{ "rooms", CDR_F_OBJ, true, 0, 0, NULL },
	EPOCH,
	END,
};
static const struct cdr_field switch_req[] = {
	{ "target", CDR_F_ENUM, true, 0, 0, switch_targets }, ID("id"), { "to", CDR_F_ENUM, true, 0, 0, switch_to },
	{ "operator", CDR_F_STR, true, 1, 64, NULL },	      END,
};
static const struct cdr_field switch_ack[] = { ID("id"), { "state", CDR_F_STR, true, 1, 16, NULL }, EPOCH, END };
static const struct cdr_field alarm_ntf[] = {
	{ "kind", CDR_F_STR, true, 1, 64, NULL }, ID("target"), REASON, DETAIL, EPOCH, END,
};

/* ---- BMC, UPU ---- */
static const struct cdr_field modb_ntf[] = {
	{ "kind", CDR_F_ENUM, true, 0, 0, modb_kinds }, ID("id"), { "op", CDR_F_ENUM, true, 0, 0, modb_ops },
	{ "data", CDR_F_OBJ, false, 0, 0, NULL },	END,
};
static const struct cdr_field cdr_ntf[] = {
	E164,
	ID("user_domain"),
	ID("platform"),
	ID_OPT("host_platform"),
	{ "start", CDR_F_INT, true, 0, INT64_MAX, NULL },
	{ "end", CDR_F_INT, true, 0, INT64_MAX, NULL },
	REASON,
	END,
};
static const struct cdr_field upu_ntf[] = {
	E164, ID("user_domain"), ID("platform"), { "state", CDR_F_ENUM, true, 0, 0, upu_states }, END,
};

#define T(n, f, t, r, fl, s)                                                                                           \
	{                                                                                                              \
		n, f, t, r, fl, s                                                                                      \
	}

const struct cdr_msg_type cdr_msg_types[] = {
	/* The CM sends the full create JSON: fields beyond ours are tolerated. */
	T("cm_mau_createconf_req", "cm", "css", "mau.conf.q", createconf_req, false),
	T("mau_cm_createconf_ack", "css", "cm", "reply_to", createconf_ack, false),
	T("mau_cm_createconf_nack", "css", "cm", "reply_to", nack, false),
	T("cm_mau_endconf_req", "cm", "css", "mau.conf.q", e164_only, false),
	T("mau_cm_endconf_ack", "css", "cm", "reply_to", e164_only, false),
	T("mau_cm_endconf_nack", "css", "cm", "reply_to", nack, false),
	T("cm_mau_extendconf_req", "cm", "css", "mau.conf.q", extend_req, false),
	T("mau_cm_extendconf_ack", "css", "cm", "reply_to", extend_ack, false),
	T("mau_cm_extendconf_nack", "css", "cm", "reply_to", nack, false),
	T("cm_mau_queryconf_req", "cm", "css", "mau.conf.q", e164_only, false),
	T("mau_cm_queryconf_ack", "css", "cm", "reply_to", query_ack, false),
	T("mau_cm_queryconf_nack", "css", "cm", "reply_to", nack, false),
	T("cm_mau_listconf_req", "cm", "css", "mau.conf.q", list_req, false),
	T("mau_cm_listconf_ack", "css", "cm", "reply_to", list_ack, false),
	T("mau_cm_listconf_nack", "css", "cm", "reply_to", nack, false),
	T("cm_mau_renameconf_req", "cm", "css", "mau.conf.q", rename_req, false),
	T("mau_cm_renameconf_ack", "css", "cm", "reply_to", e164_only, false),
	T("mau_cm_renameconf_nack", "css", "cm", "reply_to", nack, false),
	T("mau_cm_confended_ntf", "css", "cm", "cm.ntf.ex", ended_ntf, false),
	T("mau_cm_confextended_ntf", "css", "cm", "cm.ntf.ex", extend_ack, false),
	T("mau_cm_confrenamed_ntf", "css", "cm", "cm.ntf.ex", rename_req, false),

	T("mau_cmu_createconf_req", "css", "mcu", "mau.cmcmu.ex", mcu_create_req, true),
	T("cmu_mau_createconf_ack", "mcu", "css", "cmu.mau.ex", mcu_ack, true),
	T("cmu_mau_createconf_nack", "mcu", "css", "cmu.mau.ex", mcu_nack, true),
	T("mau_cmu_endconf_req", "css", "mcu", "mau.cmcmu.ex", mcu_end_req, true),
	T("cmu_mau_endconf_ack", "mcu", "css", "cmu.mau.ex", mcu_ack, true),
	T("mau_cmu_renameconf_req", "css", "mcu", "mau.cmcmu.ex", rename_req, true),
	T("cmu_mau_renameconf_ack", "mcu", "css", "cmu.mau.ex", mcu_ack, true),
	T("cmu_mau_conflist_ntf", "mcu", "css", "cmu.mau.ex", conflist_ntf, true),
	T("cmu_mau_confrenamed_ntf", "mcu", "css", "cmu.mau.ex", mcu_renamed_ntf, true),
	T("cmu_mau_confpassword_ntf", "mcu", "css", "cmu.mau.ex", mcu_password_ntf, true),

	T("cmu_rms_register_req", "mcu", "rms", "rms.res.q", mcu_register_req, true),
	T("rms_cmu_register_ack", "rms", "mcu", "reply_to", register_ack, true),
	T("cmu_rms_heartbeat_ntf", "mcu", "rms", "rms.res.q", mcu_heartbeat, true),
	T("vrs_rms_register_req", "vrs", "rms", "rms.res.q", vrs_register_req, true),
	T("rms_vrs_register_ack", "rms", "vrs", "reply_to", register_ack, true),
	T("vrs_rms_heartbeat_ntf", "vrs", "rms", "rms.res.q", vrs_heartbeat, true),
	T("rms_all_restarted_ntf", "rms", "mcu,vrs", "rms.ntf.ex", epoch_only, true),

	T("mau_rms_alloc_req", "css", "rms", "rms.req.q", alloc_req, true),
	T("rms_mau_alloc_ack", "rms", "css", "reply_to", alloc_ack, true),
	T("rms_mau_alloc_nack", "rms", "css", "reply_to", alloc_nack, true),
	T("mau_rms_bulkalloc_req", "css", "rms", "rms.req.q", bulkalloc_req, true),
	T("rms_mau_bulkalloc_ack", "rms", "css", "reply_to", bulkalloc_ack, true),
	T("rms_mau_bulkalloc_nack", "rms", "css", "reply_to", alloc_nack, true),
	T("mau_rms_confirm_req", "css", "rms", "rms.req.q", reservation, true),
	T("rms_mau_confirm_ack", "rms", "css", "reply_to", reservation, true),
	T("mau_rms_release_req", "css", "rms", "rms.req.q", reservation, true),
	T("rms_mau_release_ack", "rms", "css", "reply_to", reservation, true),
	T("mau_rms_capability_req", "css", "rms", "rms.req.q", capability_req, true),
	T("rms_mau_capability_ack", "rms", "css", "reply_to", capability_ack, true),
	T("rms_mau_capability_nack", "rms", "css", "reply_to", alloc_nack, true),
	T("rms_all_mcu_ntf", "rms", "css", "rms.ntf.ex", mcu_ntf, true),

	T("pms_all_room_ntf", "pms", "all", "pms.ntf.ex", room_ntf, true),
	T("pms_all_platform_ntf", "pms", "all", "pms.ntf.ex", platform_ntf, true),
	T("any_pms_state_req", "any", "pms", "pms.req.q", state_req, true),
	T("pms_any_state_ack", "pms", "any", "reply_to", state_ack, true),
	T("ctl_pms_switch_req", "confdrctl", "pms", "pms.req.q", switch_req, true),
	T("pms_ctl_switch_ack", "pms", "confdrctl", "reply_to", switch_ack, true),
	T("pms_ctl_switch_nack", "pms", "confdrctl", "reply_to", nack, true),
	T("pms_all_alarm_ntf", "pms", "all", "cdr.alarm.ex", alarm_ntf, true),

	T("bmc_mau_modb_ntf", "bmc", "css", "modb.notify.ex", modb_ntf, false),
	T("mau_bmc_cdr_ntf", "css", "bmc", "bmc.cdr.q", cdr_ntf, true),
	T("mau_upu_e164_ntf", "css", "upu", "upu.ntf.ex", upu_ntf, true),
	{ NULL, NULL, NULL, NULL, NULL, false },
};
