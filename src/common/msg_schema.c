/* Every message type on the bus: direction, route and body fields.
 * docs/protocol.md is the prose of this table; keep them together (the unit
 * test checks that every type here has its section and a valid example
 * there). */
#include <confdr/msg.h>

#include <stddef.h>

/* Field descriptors. R = required, O = optional. */
#define END                                                                                                            \
	{                                                                                                              \
		.name = NULL                                                                                           \
	}
#define STR(n, lo, hi, r, d)                                                                                           \
	{                                                                                                              \
		.name = n, .type = CDR_F_STR, .required = r, .min = lo, .max = hi, .doc = d                            \
	}
#define ID_R(n, d) STR(n, 1, 64, true, d)
#define ID_O(n, d) STR(n, 1, 64, false, d)
#define ID_NULL(n, d)                                                                                                  \
	{                                                                                                              \
		.name = n, .type = CDR_F_STR, .required = true, .nullable = true, .min = 1, .max = 64, .doc = d        \
	}
#define NAME_R                                                                                                         \
	{                                                                                                              \
		.name = "name", .type = CDR_F_TEXT, .required = true, .min = 1, .max = 256,                            \
		.doc = "conference name (UTF-8)"                                                                       \
	}
#define E164_R                                                                                                         \
	{                                                                                                              \
		.name = "e164", .type = CDR_F_E164, .required = true, .min = CDR_MSG_E164_MIN,                         \
		.max = CDR_MSG_E164_MAX, .doc = "conference number"                                                    \
	}
#define E164_O                                                                                                         \
	{                                                                                                              \
		.name = "e164", .type = CDR_F_E164, .required = false, .min = CDR_MSG_E164_MIN,                        \
		.max = CDR_MSG_E164_MAX, .doc = "conference number, when it could be read"                             \
	}
#define INT(n, lo, hi, r, d)                                                                                           \
	{                                                                                                              \
		.name = n, .type = CDR_F_INT, .required = r, .min = lo, .max = hi, .doc = d                            \
	}
#define MS_R(n, d) INT(n, 0, INT64_MAX, true, d)
#define EPOCH                                                                                                          \
	{                                                                                                              \
		.name = "epoch", .type = CDR_F_INT, .required = true, .min = 0, .max = CDR_EPOCH_MAX,                  \
		.doc = "sender's leader epoch (fencing: older ones are ignored)"                                       \
	}
#define BOOL(n, r, d)                                                                                                  \
	{                                                                                                              \
		.name = n, .type = CDR_F_BOOL, .required = r, .doc = d                                                 \
	}
#define ENUM(n, c, r, d)                                                                                               \
	{                                                                                                              \
		.name = n, .type = CDR_F_ENUM, .required = r, .choices = c, .doc = d                                   \
	}
#define CODE(n, r, d)                                                                                                  \
	{                                                                                                              \
		.name = n, .type = CDR_F_CODE, .required = r, .min = 1, .max = 64, .doc = d                            \
	}
#define DETAIL                                                                                                         \
	{                                                                                                              \
		.name = "detail", .type = CDR_F_STR, .required = false, .min = 0, .max = 1024,                         \
		.doc = "human explanation"                                                                             \
	}
#define OBJ(n, s, r, d)                                                                                                \
	{                                                                                                              \
		.name = n, .type = CDR_F_OBJ, .required = r, .sub = s, .doc = d                                        \
	}
#define ARR(n, lo, hi, it, r, d)                                                                                       \
	{                                                                                                              \
		.name = n, .type = CDR_F_ARR, .required = r, .min = lo, .max = hi, .items = it, .doc = d               \
	}
#define ITEM_OBJ(s)                                                                                                    \
	{                                                                                                              \
		.name = "[]", .type = CDR_F_OBJ, .required = true, .sub = s                                            \
	}

static const char *const resolutions[] = { "360p", "480p", "720p", "1080p", "4k", NULL };
static const char *const conf_states[] = { "creating",	      "running",   "ending", "ended",
					   "pending_restore", "restoring", NULL };
static const char *const mcu_states[] = { "up", "down", "drain", NULL };
static const char *const vrs_states[] = { "up", "down", NULL };
static const char *const room_states[] = { "normal", "abnormal", NULL };
static const char *const platform_states[] = { "up", "down", NULL };
static const char *const switch_targets[] = { "room", "platform", NULL };
static const char *const target_states[] = { "normal", "abnormal", "up", "down", NULL };
static const char *const rms_reasons[] = {
	"no_capacity",
	"unknown_room",
	"unknown_capability",
	"unknown_user_domain",
	"unknown_reservation",
	"bad_request",
	"not_active",
	"stale_epoch",
	"other_platform",
	"unknown_mcu",
	"forbidden", /* its sender's broker user may not send it (bus.h) */
	"no_capability",
	"limit_reached", /* judged in a single allocation (docs/rms.md, "Allocation") */
	NULL
};
static const char *const severities[] = { "critical", "major", "minor", "warning", "cleared", NULL };
static const char *const modb_kinds[] = { "user_domain", "platform", "service_domain", NULL };
static const char *const modb_ops[] = { "add", "update", "delete", NULL };
static const char *const upu_states[] = { "start", "end", NULL };
static const char *const upu_kinds[] = { "conference", "scheduled", "template", "virtual_room", NULL };

static const struct cdr_field id_item = STR("[]", 1, 64, true, NULL);
static const struct cdr_field cap_item = STR("[]", 1, 32, true, NULL);

/* ---- shared bodies ---- */
static const struct cdr_field nack[] = { E164_O, CODE("reason", true, "stable reason code"), DETAIL, END };
static const struct cdr_field e164_only[] = { E164_R, END };

/* ---- CM <-> CSS: the CM contract (fixed) ---- */
static const struct cdr_field createconf_req[] = {
	E164_R,
	NAME_R,
	ID_R("user_domain", "MOID of the account's user domain"),
	INT("duration_min", 1, 1440, true, "planned length in minutes"),
	BOOL("h265", false, "H.265 wanted (default false)"),
	ENUM("resolution", resolutions, false, "default 720p"),
	BOOL("record", false, "allocate a VRS and record (default false)"),
	INT("max_participants", 2, 10000, false, "ports to reserve (default 16)"),
	END,
};
static const struct cdr_field createconf_ack[] = {
	E164_R,
	ID_R("mcu", "MCU the conference runs on"),
	ID_NULL("vrs", "VRS recording it, or null"),
	ID_R("room", "room of the MCU"),
	ID_R("platform", "platform of the MCU (host platform)"),
	END,
};
static const struct cdr_field extend_req[] = { E164_R, INT("minutes", 1, 1440, true, "minutes to add"), END };
static const struct cdr_field extend_ack[] = { E164_R, MS_R("planned_end", "new planned end, ms since the Unix epoch"),
					       END };
static const struct cdr_field conf_record[] = {
	E164_R,
	NAME_R,
	ID_R("user_domain", "owning user domain"),
	ID_R("platform", "home platform (owner of the user domain)"),
	ID_NULL("host_platform", "platform it runs on, null until created"),
	ID_NULL("room", "room of the MCU"),
	ID_NULL("mcu", "MCU, null while pending restore"),
	ID_NULL("vrs", "VRS or null"),
	ENUM("state", conf_states, true, "conference state"),
	MS_R("start", "start, ms since the Unix epoch"),
	MS_R("planned_end", "planned end, ms since the Unix epoch"),
	INT("generation", 0, INT64_MAX, false, "restore generation (0 = never restored)"),
	END,
};
static const struct cdr_field conf_item = ITEM_OBJ(conf_record);
static const struct cdr_field query_ack[] = { E164_R, OBJ("conf", conf_record, true, "the conference record"), END };
static const struct cdr_field list_req[] = { ID_R("user_domain", "user domain MOID"), END };
static const struct cdr_field list_ack[] = {
	ID_R("user_domain", "user domain MOID"),
	ARR("confs", 0, 100000, &conf_item, true, "its conferences (not ended)"),
	END,
};
static const struct cdr_field rename_req[] = { E164_R, NAME_R, END };
static const struct cdr_field ended_ntf[] = {
	E164_R,
	ID_R("user_domain", "owning user domain"),
	CODE("reason", true, "cm_request, expired, mcu_ended, orphan, restore_failed, ..."),
	MS_R("ended_at", "ms since the Unix epoch"),
	END,
};
static const struct cdr_field extended_ntf[] = {
	E164_R,
	MS_R("planned_end", "new planned end, ms since the Unix epoch"),
	CODE("by", true, "who asked: cm or mcu"),
	END,
};
static const struct cdr_field rename_fwd_ntf[] = { E164_R, NAME_R, ID_R("mcu", "MCU that asked"), END };

/* ---- CSS <-> MCU ---- */
static const struct cdr_field mcu_conf[] = {
	E164_R,
	NAME_R,
	ID_R("user_domain", "owning user domain"),
	INT("duration_min", 1, 1440, true, "planned length in minutes"),
	ID_R("mcu", "this MCU"),
	ID_NULL("vrs", "VRS to record on, or null"),
	END,
};
static const struct cdr_field mcu_create_req[] = {
	E164_R,
	OBJ("conf", mcu_conf, true, "the CM's create JSON with mcu and vrs set (its other fields passed through)"),
	ID_R("platform", "home platform of the conference"),
	MS_R("planned_end", "ms since the Unix epoch"),
	INT("generation", 0, INT64_MAX, true, "restore generation, echoed in the answer"),
	EPOCH,
	END,
};
static const struct cdr_field mcu_ack[] = {
	E164_R,
	ID_R("mcu", "answering MCU"),
	INT("generation", 0, INT64_MAX, false, "echo of the request's"),
	END,
};
static const struct cdr_field mcu_nack[] = {
	E164_R,
	ID_R("mcu", "answering MCU"),
	INT("generation", 0, INT64_MAX, false, "echo of the request's"),
	CODE("reason", true, "no_ports, exists, unknown_conference, stale_epoch, ..."),
	DETAIL,
	END,
};
static const struct cdr_field mcu_end_req[] = { E164_R, CODE("reason", false, "why it is ended"), EPOCH, END };
static const struct cdr_field mcu_rename_req[] = { E164_R, NAME_R, EPOCH, END };
static const struct cdr_field mcu_extend_req[] = {
	E164_R,
	ID_R("mcu", "asking MCU"),
	INT("minutes", 1, 1440, true, "minutes to add"),
	END,
};
static const struct cdr_field mcu_extend_ack[] = {
	E164_R,
	MS_R("planned_end", "new planned end, ms since the Unix epoch"),
	EPOCH,
	END,
};
static const struct cdr_field listed_conf[] = {
	E164_R,
	INT("generation", 0, INT64_MAX, false, "generation it was created with"),
	STR("name", 1, 256, false, "name"),
	END,
};
static const struct cdr_field listed_item = ITEM_OBJ(listed_conf);
static const struct cdr_field conflist_ntf[] = {
	ID_R("mcu", "reporting MCU"),
	INT("seq", 0, INT64_MAX, true, "increases with every list of this incarnation"),
	ID_O("boot", "its incarnation, as registered"),
	ARR("confs", 0, 100000, &listed_item, true, "every conference running on it (complete list)"),
	END,
};
static const struct cdr_field mcu_ended_ntf[] = {
	E164_R,
	ID_R("mcu", "reporting MCU"),
	CODE("reason", true, "chair_ended, empty, error, ..."),
	END,
};
static const struct cdr_field mcu_name_ntf[] = { E164_R, ID_R("mcu", "reporting MCU"), NAME_R, END };
static const struct cdr_field mcu_password_ntf[] = {
	E164_R,
	ID_R("mcu", "reporting MCU"),
	STR("password", 0, 64, true, "new conference password, \"\" = none"),
	END,
};

/* ---- MCU / VRS <-> RMS ---- */
static const struct cdr_field mcu_register_req[] = {
	ID_R("mcu", "MCU MOID"),
	ID_R("key", "its routing key on mau.cmcmu.ex"),
	ID_R("room", "its room"),
	ID_R("platform", "its platform"),
	INT("capacity_confs", 1, 100000, true, "conferences it can hold"),
	INT("capacity_ports", 1, 1000000, true, "ports (participants) it can hold"),
	BOOL("h265", true, "H.265 capable"),
	BOOL("res_1080p", true, "1080p capable"),
	BOOL("xmpu", true, "XMPU media processing"),
	INT("weight", 1, 1000, false, "share of allocations among equals (default 100)"),
	INT("priority", 0, 1000, false, "lower is preferred (default 100)"),
	BOOL("backup", false, "used only when every primary of the room is down (default false)"),
	INT("running_confs", 0, 100000, false, "conferences running now (after a re-registration)"),
	INT("used_ports", 0, 1000000, false, "ports in use now"),
	ID_O("boot", "its incarnation: new at every start that lost its conferences"),
	END,
};
static const struct cdr_field mcu_register_ack[] = {
	ID_R("mcu", "MCU MOID"),
	INT("heartbeat_ms", 100, 600000, true, "heartbeat interval to keep"),
	INT("misses", 1, 100, true, "declared down after that many missed heartbeats"),
	EPOCH,
	END,
};
static const struct cdr_field mcu_heartbeat[] = {
	ID_R("mcu", "MCU MOID"),
	INT("seq", 0, INT64_MAX, true, "increases with every heartbeat of this incarnation"),
	ID_O("boot", "its incarnation, as registered"),
	INT("running_confs", 0, 100000, true, "conferences running"),
	INT("used_ports", 0, 1000000, true, "ports in use"),
	EPOCH,
	END,
};
static const struct cdr_field vrs_register_req[] = {
	ID_R("vrs", "VRS MOID"),
	ID_R("room", "its room"),
	ID_R("platform", "its platform"),
	INT("capacity", 1, 100000, true, "recordings it can hold"),
	INT("weight", 1, 1000, false, "share of allocations (default 100)"),
	INT("priority", 0, 1000, false, "lower is preferred (default 100)"),
	INT("running", 0, 100000, false, "recordings running now"),
	END,
};
static const struct cdr_field vrs_register_ack[] = {
	ID_R("vrs", "VRS MOID"),
	INT("heartbeat_ms", 100, 600000, true, "heartbeat interval to keep"),
	INT("misses", 1, 100, true, "declared down after that many missed heartbeats"),
	EPOCH,
	END,
};
static const struct cdr_field vrs_heartbeat[] = {
	ID_R("vrs", "VRS MOID"),
	INT("seq", 0, INT64_MAX, true, "increases with every heartbeat"),
	INT("running", 0, 100000, true, "recordings running"),
	EPOCH,
	END,
};
static const struct cdr_field res_nack[] = {
	ID_O("mcu", "MCU MOID, when it could be read"),
	ID_O("vrs", "VRS MOID, when it could be read"),
	CODE("reason", true, "bad_request, unknown_room, not_active, forbidden"),
	DETAIL,
	END,
};
static const struct cdr_field restarted_ntf[] = { ID_R("platform", "platform of this rms"), EPOCH, END };

/* ---- CSS <-> RMS ---- */
#define ALLOC_FIELDS                                                                                                   \
	E164_R, ID_R("user_domain", "owning user domain"),                                                             \
		ID_O("room", "room wanted (default: the domain's room, or its backup when abnormal)"),                 \
		BOOL("h265", false, "H.265 needed"), BOOL("res_1080p", false, "1080p needed"),                         \
		BOOL("xmpu", false, "XMPU needed"), BOOL("record", false, "a VRS too, in the MCU's room"),             \
		INT("ports", 1, 100000, false, "ports to reserve (default 16)"),                                       \
		ARR("caps", 0, 8, &cap_item, false, "capabilities by name: h265, 1080p, xmpu (as the booleans)"),      \
		ARR("exclude_mcus", 0, 64, &id_item, false, "MCUs not to use (the failed one)"),                       \
		ARR("exclude_rooms", 0, 64, &id_item, false,                                                           \
		    "rooms not to use (abnormal ones): skipped in the walk of the room and its backup rooms")
static const struct cdr_field alloc_item_fields[] = { ALLOC_FIELDS, END };
static const struct cdr_field alloc_item = ITEM_OBJ(alloc_item_fields);
static const struct cdr_field alloc_req[] = {
	ALLOC_FIELDS,
	BOOL("restore", false, "a restore, not a new conference"),
	BOOL("judge", false,
	     "a create: refuse no_capability when no MCU of the user domain's room has what is wanted, and "
	     "limit_reached at domain_max_confs"),
	INT("domain_running", 0, 100000000, false,
	    "with judge: the conferences the user domain runs (this one not counted)"),
	EPOCH,
	END,
};
#define ALLOC_RESULT                                                                                                   \
	E164_R, ID_R("mcu", "allocated MCU"), ID_R("mcu_key", "its routing key on mau.cmcmu.ex"),                      \
		ID_NULL("vrs", "allocated VRS, or null"), ID_R("room", "room of both"),                                \
		ID_R("platform", "platform of both"), ID_R("reservation", "to confirm or release")
static const struct cdr_field alloc_result_fields[] = { ALLOC_RESULT, END };
static const struct cdr_field alloc_result = ITEM_OBJ(alloc_result_fields);
static const struct cdr_field alloc_ack[] = { ALLOC_RESULT, EPOCH, END };
#define OTHER_PLATFORM                                                                                                 \
	ID_O("room", "other_platform: the first backup room that belongs to another platform"),                        \
		ID_O("platform", "other_platform: that room's platform")
static const struct cdr_field alloc_nack[] = {
	E164_O, ENUM("reason", rms_reasons, true, "why"), DETAIL, OTHER_PLATFORM, END,
};
static const struct cdr_field alloc_failed_fields[] = {
	E164_R, ENUM("reason", rms_reasons, true, "why"), DETAIL, OTHER_PLATFORM, END,
};
static const struct cdr_field alloc_failed = ITEM_OBJ(alloc_failed_fields);
static const struct cdr_field bulkalloc_req[] = {
	ARR("confs", 1, 10000, &alloc_item, true, "one allocation each"),
	BOOL("restore", false, "restores, not new conferences"),
	EPOCH,
	END,
};
static const struct cdr_field bulkalloc_ack[] = {
	ARR("allocated", 0, 10000, &alloc_result, true, "the allocations made"),
	ARR("failed", 0, 10000, &alloc_failed, true, "the ones not made, with why"),
	EPOCH,
	END,
};
static const struct cdr_field reservations_req[] = {
	ARR("reservations", 1, 10000, &id_item, true, "reservation ids from allocations"),
	CODE("reason", false, "why (release: conference ended, create refused, ...)"),
	EPOCH,
	END,
};
static const struct cdr_field reservations_ack[] = {
	INT("done", 0, 10000, true, "how many were confirmed / released"),
	ARR("unknown", 0, 10000, &id_item, true, "reservations rms does not know (expired or released)"),
	EPOCH,
	END,
};
static const struct cdr_field capability_req[] = { ID_R("user_domain", "user domain MOID"), END };
static const struct cdr_field capability_ack[] = {
	ID_R("user_domain", "user domain MOID"),
	ID_R("platform", "its platform"),
	ID_R("room", "its room"),
	BOOL("h265", true, "may use H.265"),
	BOOL("res_1080p", true, "may use 1080p"),
	BOOL("xmpu", true, "may use XMPU"),
	INT("max_confs", 0, 1000000, true, "conference-count limit, 0 = none"),
	EPOCH,
	END,
};
static const struct cdr_field mcu_ntf[] = {
	ID_R("mcu", "MCU MOID"),
	ID_R("key", "its routing key"),
	ID_R("room", "its room"),
	ID_R("platform", "its platform"),
	ENUM("state", mcu_states, true, "up, down, or drain (no new conferences)"),
	CODE("reason", true,
	     "registered, restarted (a new `boot`: its conferences are gone), heartbeat_lost, heartbeat_resumed, "
	     "drain, "
	     "undrain"),
	EPOCH,
	END,
};
static const struct cdr_field vrs_ntf[] = {
	ID_R("vrs", "VRS MOID"),
	ID_R("room", "its room"),
	ID_R("platform", "its platform"),
	ENUM("state", vrs_states, true, "up or down"),
	CODE("reason", true, "registered, heartbeat_lost, ..."),
	EPOCH,
	END,
};

static const struct cdr_field drain_req[] = {
	ID_R("mcu", "MCU MOID"),
	BOOL("drain", true, "true: no new conferences (running ones stay); false: back in service"),
	STR("operator", 1, 64, true, "who asked (audit)"),
	END,
};
static const struct cdr_field drain_ack[] = {
	ID_R("mcu", "MCU MOID"),
	ENUM("state", mcu_states, true, "its state now"),
	BOOL("drain", true, "drained"),
	EPOCH,
	END,
};
static const struct cdr_field rms_nack[] = {
	ENUM("reason", rms_reasons, true, "why"),
	DETAIL,
	END,
};
static const struct cdr_field inventory_req[] = { ID_O("room", "only this room"), END };
static const struct cdr_field mcu_info_fields[] = {
	ID_R("mcu", "MCU MOID"),
	ID_R("key", "its routing key"),
	ID_R("room", "its room"),
	ENUM("state", mcu_states, true, "up, down or drain"),
	BOOL("drain", true, "drained (also while down)"),
	INT("capacity_confs", 0, 100000, true, "conferences it can hold"),
	INT("capacity_ports", 0, 1000000, true, "ports it can hold"),
	INT("running_confs", 0, 1000000, true, "running: its last report plus confirmations since"),
	INT("reserved_confs", 0, 1000000, true, "reservations not yet confirmed"),
	INT("used_ports", 0, 10000000, true, "ports running and reserved"),
	BOOL("h265", true, "H.265 capable"),
	BOOL("res_1080p", true, "1080p capable"),
	BOOL("xmpu", true, "XMPU"),
	INT("weight", 1, 1000, true, "weight"),
	INT("priority", 0, 1000, true, "priority, lower preferred"),
	BOOL("backup", true, "used only when every primary of the room is down"),
	MS_R("since", "state since, ms since the Unix epoch"),
	MS_R("last_seen", "last registration or heartbeat, ms since the Unix epoch"),
	END,
};
static const struct cdr_field mcu_info = ITEM_OBJ(mcu_info_fields);
static const struct cdr_field vrs_info_fields[] = {
	ID_R("vrs", "VRS MOID"),
	ID_R("room", "its room"),
	ENUM("state", vrs_states, true, "up or down"),
	INT("capacity", 0, 100000, true, "recordings it can hold"),
	INT("running", 0, 1000000, true, "running: its last report plus confirmations since"),
	INT("reserved", 0, 1000000, true, "reservations not yet confirmed"),
	MS_R("since", "state since, ms since the Unix epoch"),
	MS_R("last_seen", "last registration or heartbeat, ms since the Unix epoch"),
	END,
};
static const struct cdr_field vrs_info = ITEM_OBJ(vrs_info_fields);
static const struct cdr_field inventory_ack[] = {
	ID_R("platform", "platform of this rms"),
	ARR("mcus", 0, 100000, &mcu_info, true, "every MCU known, by id"),
	ARR("vrs", 0, 100000, &vrs_info, true, "every VRS known, by id"),
	INT("reservations", 0, INT64_MAX, true, "reservations pending"),
	INT("allocations", 0, INT64_MAX, true, "confirmed allocations held"),
	EPOCH,
	BOOL("settling", false,
	     "just elected or its broker link down: MCUs may still be registering, an absence says nothing yet"),
	END,
};

/* ---- PMS ---- */
#define STATE_EPOCH                                                                                                    \
	{                                                                                                              \
		.name = "epoch", .type = CDR_F_INT, .required = true, .min = 0, .max = CDR_EPOCH_MAX,                  \
		.doc = "epoch of this state (service-domain counter in ZooKeeper): older or equal ones are ignored"    \
	}
#define BY STR("by", 0, 64, false, "operator of a manual switch")
static const struct cdr_field room_ntf[] = {
	ID_R("room", "room MOID"),
	ID_R("platform", "its platform"),
	ENUM("state", room_states, true, "room state"),
	BOOL("manual", true, "a manual DR switch is on"),
	CODE("reason", true, "initial, health_check, recovered, manual_switch"),
	DETAIL,
	BY,
	MS_R("since", "state since, ms since the Unix epoch"),
	ARR("backup_rooms", 0, 64, &id_item, false, "its backup rooms, in order"),
	STATE_EPOCH,
	END,
};
static const struct cdr_field peer_beat_ntf[] = {
	ID_R("platform", "the platform of the pms that beats"),
	ID_R("instance", "that pms instance"),
	INT("seq", 0, INT64_MAX, true, "its beat count (grows by one each beat)"),
	BOOL("quorum", true, "its latest beat write to ZooKeeper succeeded"),
	ARR("hears", 0, 64, &id_item, false,
	    "the platforms whose pms it heard on their broker within the last two beat intervals"),
	BOOL("isolated", false,
	     "its platform is cut off from the ZooKeeper majority and not heard by its backup platform: its css "
	     "releases the platform's conferences (default false)"),
	BOOL("judges", false,
	     "this pms listens to its backup platform's pms and so can tell isolation (the active one); css heeds "
	     "the isolated word of these only (default true)"),
	ENUM("state", platform_states, false,
	     "its platform's state as the ZooKeeper majority holds it, read right after a beat write that succeeded "
	     "(absent when there is no such fresh read)"),
	INT("state_epoch", 0, CDR_EPOCH_MAX, false, "the epoch of that state"),
	END,
};
static const struct cdr_field platform_ntf[] = {
	ID_R("platform", "platform MOID"),
	ENUM("state", platform_states, true, "platform state"),
	BOOL("manual", true, "a manual switch is on"),
	CODE("reason", true, "initial, pms_lost, main_room_abnormal, manual_switch"),
	DETAIL,
	BY,
	MS_R("since", "state since, ms since the Unix epoch"),
	ID_O("backup_platform", "platform taking over its user domains"),
	STATE_EPOCH,
	END,
};
static const struct cdr_field state_req[] = { ID_O("platform", "restrict to this platform"), END };
static const struct cdr_field platform_state[] = {
	ID_R("platform", "platform MOID"),
	ENUM("state", platform_states, true, "up or down"),
	BOOL("manual", true, "manual switch on"),
	MS_R("since", "ms since the Unix epoch"),
	ID_O("backup_platform", "its backup platform"),
	CODE("reason", false, "why it is in this state"),
	DETAIL,
	BY,
	INT("epoch", 0, CDR_EPOCH_MAX, false, "epoch of this state; 0: never written"),
	BOOL("pms_live", false, "a pms instance of the platform is live (known to its backup platform's pms)"),
	END,
};
static const struct cdr_field platform_state_item = ITEM_OBJ(platform_state);
static const struct cdr_field room_state[] = {
	ID_R("room", "room MOID"),
	ID_R("platform", "its platform"),
	ENUM("state", room_states, true, "normal or abnormal"),
	BOOL("manual", true, "manual switch on"),
	MS_R("since", "ms since the Unix epoch"),
	CODE("reason", false, "why it is in this state"),
	DETAIL,
	BY,
	INT("epoch", 0, CDR_EPOCH_MAX, false, "epoch of this state; 0: never written"),
	BOOL("healthy", false, "its checks pass now (known to its own platform's pms)"),
	END,
};
static const struct cdr_field room_state_item = ITEM_OBJ(room_state);
static const struct cdr_field state_ack[] = {
	ID_O("platform", "platform of the answering pms"),
	ARR("platforms", 0, 1000, &platform_state_item, true, "state of every platform"),
	ARR("rooms", 0, 10000, &room_state_item, true, "state of every room"),
	{ .name = "epoch",
	  .type = CDR_F_INT,
	  .required = true,
	  .min = 0,
	  .max = CDR_EPOCH_MAX,
	  .doc = "the highest state epoch in this answer" },
	END,
};
static const struct cdr_field switch_req[] = {
	ENUM("target", switch_targets, true, "what to switch"),
	ID_R("moid", "room or platform MOID"),
	BOOL("on", true, "true: DR switch on (treated as abnormal/down); false: off (fail back)"),
	BOOL("force", false, "switch back even though its checks fail"),
	STR("operator", 1, 64, true, "who asked (audit)"),
	DETAIL,
	END,
};
static const struct cdr_field switch_ack[] = {
	ENUM("target", switch_targets, true, "what was switched"),
	ID_R("moid", "room or platform MOID"),
	ENUM("state", target_states, true, "its state now"),
	BOOL("manual", true, "manual switch on"),
	BOOL("changed", false, "false: it was already in that state"),
	MS_R("since", "in this state since, ms since the Unix epoch"),
	STATE_EPOCH,
	END,
};
static const struct cdr_field alarm_ntf[] = {
	ENUM("severity", severities, true, "cleared ends an alarm of the same kind and target"),
	CODE("kind", true, "mcu_down, room_abnormal, platform_down, restore_failed, ..."),
	STR("target", 1, 128, true, "what it is about (MOID, E164, host:port)"),
	ID_R("platform", "where"),
	DETAIL,
	EPOCH,
	END,
};

/* ---- BMC, UPU ---- */
static const struct cdr_field modb_ntf[] = {
	ENUM("kind", modb_kinds, true, "what changed"),
	ID_R("moid", "its MOID"),
	ENUM("op", modb_ops, true, "change"),
	OBJ("data", NULL, false, "the new attributes (add, update)"),
	END,
};
static const struct cdr_field billing_ntf[] = {
	STR("record_id", 1, 128, true, "unique: BMC de-duplicates by it"),
	E164_R,
	NAME_R,
	ID_R("user_domain", "original user domain"),
	ID_R("platform", "original (home) platform"),
	ID_R("host_platform", "platform it ran on"),
	ID_R("room", "room it ran in"),
	ID_NULL("mcu", "last MCU"),
	MS_R("start", "ms since the Unix epoch"),
	MS_R("end", "ms since the Unix epoch"),
	CODE("reason", true, "end reason"),
	END,
};
static const struct cdr_field upu_ntf[] = {
	E164_R,
	ID_R("user_domain", "original user domain"),
	ID_R("platform", "original (home) platform"),
	ENUM("state", upu_states, true, "start or end"),
	ENUM("kind", upu_kinds, false, "default conference"),
	END,
};
static const struct cdr_field upu_item = ITEM_OBJ(upu_ntf);
static const struct cdr_field upu_batch_ntf[] = {
	ARR("items", 1, 1000, &upu_item, true, "E164s that started or ended, in order (as mau_upu_e164_ntf bodies)"),
	END,
};

#define T(n, f, t, r, k, fl, s, d)                                                                                     \
	{                                                                                                              \
		n, f, t, r, k, fl, s, d                                                                                \
	}
#define MCU_KEY "<mcu key>"

const struct cdr_msg_type cdr_msg_types[] = {
	/* CM <-> CSS. The CM is outside: extra fields tolerated (it sends its full create JSON). */
	T("cm_mau_createconf_req", "cm", "css", "mau.conf.q", NULL, createconf_req, false, "create a conference"),
	T("mau_cm_createconf_ack", "css", "cm", "reply_to", NULL, createconf_ack, false, "created: where it runs"),
	T("mau_cm_createconf_nack", "css", "cm", "reply_to", NULL, nack, false, "not created"),
	T("cm_mau_endconf_req", "cm", "css", "mau.conf.q", NULL, e164_only, false, "end a conference"),
	T("mau_cm_endconf_ack", "css", "cm", "reply_to", NULL, e164_only, false, "ended"),
	T("mau_cm_endconf_nack", "css", "cm", "reply_to", NULL, nack, false, "not ended (unknown_conference, ...)"),
	T("cm_mau_extendconf_req", "cm", "css", "mau.conf.q", NULL, extend_req, false, "extend a conference"),
	T("mau_cm_extendconf_ack", "css", "cm", "reply_to", NULL, extend_ack, false, "extended"),
	T("mau_cm_extendconf_nack", "css", "cm", "reply_to", NULL, nack, false, "not extended"),
	T("cm_mau_queryconf_req", "cm", "css", "mau.conf.q", NULL, e164_only, false, "one conference's record"),
	T("mau_cm_queryconf_ack", "css", "cm", "reply_to", NULL, query_ack, false, "the record"),
	T("mau_cm_queryconf_nack", "css", "cm", "reply_to", NULL, nack, false, "unknown_conference, ..."),
	T("cm_mau_listconf_req", "cm", "css", "mau.conf.q", NULL, list_req, false, "a user domain's conferences"),
	T("mau_cm_listconf_ack", "css", "cm", "reply_to", NULL, list_ack, false, "the list"),
	T("mau_cm_listconf_nack", "css", "cm", "reply_to", NULL, nack, false, "unknown_user_domain, ..."),
	T("cm_mau_renameconf_req", "cm", "css", "mau.conf.q", NULL, rename_req, false, "rename a conference"),
	T("mau_cm_renameconf_ack", "css", "cm", "reply_to", NULL, rename_req, false, "renamed"),
	T("mau_cm_renameconf_nack", "css", "cm", "reply_to", NULL, nack, false, "not renamed"),
	T("mau_cm_request_nack", "css", "cm", "reply_to", NULL, nack, false,
	  "refusal of a message on mau.conf.q whose type could not be read as a request"),
	T("mau_cm_confended_ntf", "css", "cm", "cm.ntf.ex", NULL, ended_ntf, false, "a conference ended"),
	T("mau_cm_confextended_ntf", "css", "cm", "cm.ntf.ex", NULL, extended_ntf, false, "a conference was extended"),
	T("mau_cm_confrenamed_ntf", "css", "cm", "cm.ntf.ex", NULL, rename_req, false, "a conference was renamed"),
	T("mau_cm_renameconf_ntf", "css", "cm", "cm.ntf.ex", NULL, rename_fwd_ntf, false,
	  "an MCU asks for a rename: the CM decides and answers the MCU itself"),

	/* CSS <-> MCU. The MCU is outside: tolerated. */
	T("mau_cmu_createconf_req", "css", "mcu", "mau.cmcmu.ex", MCU_KEY, mcu_create_req, false,
	  "create (or re-create, on restore) a conference"),
	T("cmu_mau_createconf_ack", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_ack, false, "created"),
	T("cmu_mau_createconf_nack", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_nack, false, "refused"),
	T("mau_cmu_endconf_req", "css", "mcu", "mau.cmcmu.ex", MCU_KEY, mcu_end_req, false, "end a conference"),
	T("cmu_mau_endconf_ack", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_ack, false, "ended"),
	T("cmu_mau_endconf_nack", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_nack, false, "not ended"),
	T("mau_cmu_renameconf_req", "css", "mcu", "mau.cmcmu.ex", MCU_KEY, mcu_rename_req, false, "rename"),
	T("cmu_mau_renameconf_ack", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_ack, false, "renamed"),
	T("cmu_mau_renameconf_nack", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_nack, false, "not renamed"),
	T("cmu_mau_extendconf_req", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_extend_req, false,
	  "the MCU asks to extend (css decides, notifies the CM)"),
	T("mau_cmu_extendconf_ack", "css", "mcu", "mau.cmcmu.ex", MCU_KEY, mcu_extend_ack, false, "extended"),
	T("mau_cmu_extendconf_nack", "css", "mcu", "mau.cmcmu.ex", MCU_KEY, nack, false, "not extended"),
	T("mau_cmu_request_nack", "css", "mcu", "reply_to", NULL, nack, false,
	  "refusal of a message on mau.cmu.q that carries reply_to and cannot be used"),
	T("cmu_mau_conflist_ntf", "mcu", "css", "cmu.mau.ex", MCU_KEY, conflist_ntf, false,
	  "the complete list of conferences on the MCU (reconciliation)"),
	T("cmu_mau_confended_ntf", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_ended_ntf, false,
	  "a conference ended on the MCU"),
	T("cmu_mau_confrenamed_ntf", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_name_ntf, false,
	  "a conference was renamed (updates the record)"),
	T("cmu_mau_confpassword_ntf", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_password_ntf, false,
	  "a conference's password changed (updates the record)"),
	T("cmu_mau_renameconf_ntf", "mcu", "css", "cmu.mau.ex", MCU_KEY, mcu_name_ntf, false,
	  "a rename asked at the MCU, forwarded to the CM"),

	/* MCU / VRS <-> RMS, on rms.res.q (apart from allocations). Outside: tolerated. */
	T("cmu_rms_register_req", "mcu", "rms", "rms.res.q", NULL, mcu_register_req, false,
	  "register (at start, and again after rms_all_restarted_ntf or an epoch change)"),
	T("rms_cmu_register_ack", "rms", "mcu", "reply_to", NULL, mcu_register_ack, false, "registered"),
	T("rms_cmu_register_nack", "rms", "mcu", "reply_to", NULL, res_nack, false, "refused"),
	T("cmu_rms_heartbeat_ntf", "mcu", "rms", "rms.res.q", NULL, mcu_heartbeat, false, "alive, with its load"),
	T("vrs_rms_register_req", "vrs", "rms", "rms.res.q", NULL, vrs_register_req, false, "register"),
	T("rms_vrs_register_ack", "rms", "vrs", "reply_to", NULL, vrs_register_ack, false, "registered"),
	T("rms_vrs_register_nack", "rms", "vrs", "reply_to", NULL, res_nack, false, "refused"),
	T("vrs_rms_heartbeat_ntf", "vrs", "rms", "rms.res.q", NULL, vrs_heartbeat, false, "alive, with its load"),
	T("rms_all_restarted_ntf", "rms", "mcu,vrs", "rms.ntf.ex", NULL, restarted_ntf, false,
	  "a new rms leader: every MCU and VRS registers again"),

	/* CSS <-> RMS: both confdr daemons, strict. */
	T("mau_rms_alloc_req", "css", "rms", "rms.req.q", NULL, alloc_req, true, "an MCU and (if record) a VRS"),
	T("rms_mau_alloc_ack", "rms", "css", "reply_to", NULL, alloc_ack, true, "allocated (reserved)"),
	T("rms_mau_alloc_nack", "rms", "css", "reply_to", NULL, alloc_nack, true, "not allocated"),
	T("mau_rms_bulkalloc_req", "css", "rms", "rms.req.q", NULL, bulkalloc_req, true,
	  "many allocations in one request (restores)"),
	T("rms_mau_bulkalloc_ack", "rms", "css", "reply_to", NULL, bulkalloc_ack, true,
	  "per conference: made or why not"),
	T("rms_mau_bulkalloc_nack", "rms", "css", "reply_to", NULL, alloc_nack, true, "the whole request refused"),
	T("mau_rms_confirm_req", "css", "rms", "rms.req.q", NULL, reservations_req, true,
	  "the MCU created them: reservations become allocations"),
	T("rms_mau_confirm_ack", "rms", "css", "reply_to", NULL, reservations_ack, true, "confirmed"),
	T("rms_mau_confirm_nack", "rms", "css", "reply_to", NULL, alloc_nack, true, "refused"),
	T("mau_rms_release_req", "css", "rms", "rms.req.q", NULL, reservations_req, true,
	  "give back reservations or allocations"),
	T("rms_mau_release_ack", "rms", "css", "reply_to", NULL, reservations_ack, true, "released"),
	T("rms_mau_release_nack", "rms", "css", "reply_to", NULL, alloc_nack, true, "refused"),
	T("mau_rms_capability_req", "css", "rms", "rms.req.q", NULL, capability_req, true,
	  "what a user domain may use, and its limit"),
	T("rms_mau_capability_ack", "rms", "css", "reply_to", NULL, capability_ack, true, "capabilities"),
	T("rms_mau_capability_nack", "rms", "css", "reply_to", NULL, alloc_nack, true, "unknown_user_domain, ..."),
	T("rms_all_mcu_ntf", "rms", "css", "rms.ntf.ex", NULL, mcu_ntf, true, "an MCU is up, down or draining"),
	T("rms_all_vrs_ntf", "rms", "css", "rms.ntf.ex", NULL, vrs_ntf, true, "a VRS is up or down"),

	T("pms_any_request_nack", "pms", "any", "reply_to", NULL, nack, true,
	  "refusal of a message on pms.req.q whose type could not be read as a request"),
	T("rms_any_request_nack", "rms", "any", "reply_to", NULL, nack, true,
	  "refusal of a message on rms.req.q or rms.res.q whose type could not be read as a request"),
	T("ctl_rms_drain_req", "confdrctl", "rms", "rms.req.q", NULL, drain_req, true,
	  "drain an MCU (no new conferences) or take it out of drain"),
	T("rms_ctl_drain_ack", "rms", "confdrctl", "reply_to", NULL, drain_ack, true, "done; rms_all_mcu_ntf follows"),
	T("rms_ctl_drain_nack", "rms", "confdrctl", "reply_to", NULL, rms_nack, true, "unknown_mcu, ..."),
	T("ctl_rms_inventory_req", "confdrctl", "rms", "rms.req.q", NULL, inventory_req, true,
	  "the MCUs and VRS rms knows, with their load"),
	T("rms_ctl_inventory_ack", "rms", "confdrctl", "reply_to", NULL, inventory_ack, true, "the inventory"),
	T("rms_ctl_inventory_nack", "rms", "confdrctl", "reply_to", NULL, rms_nack, true, "unknown_room, ..."),

	/* PMS. */
	T("pms_all_room_ntf", "pms", "all", "pms.ntf.ex", NULL, room_ntf, true, "a room is normal or abnormal"),
	T("pms_all_platform_ntf", "pms", "all", "pms.ntf.ex", NULL, platform_ntf, true, "a platform is up or down"),
	T("pms_peer_beat_ntf", "pms", "pms", "pms.beat.ex", NULL, peer_beat_ntf, true,
	  "a pms's beat on its own broker, heard by the pms of the platform that backs it up"),
	T("any_pms_state_req", "any", "pms", "pms.req.q", NULL, state_req, true,
	  "state of platforms and rooms (css at start-up)"),
	T("pms_any_state_ack", "pms", "any", "reply_to", NULL, state_ack, true, "the state"),
	T("pms_any_state_nack", "pms", "any", "reply_to", NULL, nack, true, "not_active, ..."),
	T("ctl_pms_switch_req", "confdrctl", "pms", "pms.req.q", NULL, switch_req, true, "manual DR switch on or off"),
	T("pms_ctl_switch_ack", "pms", "confdrctl", "reply_to", NULL, switch_ack, true, "switched, broadcast follows"),
	T("pms_ctl_switch_nack", "pms", "confdrctl", "reply_to", NULL, nack, true, "unknown_room, not_active, ..."),

	/* Alarms: operators' tools read them; tolerated. */
	T("pms_all_alarm_ntf", "pms", "all", "cdr.alarm.ex", NULL, alarm_ntf, false, "alarm raised or cleared"),
	T("rms_all_alarm_ntf", "rms", "all", "cdr.alarm.ex", NULL, alarm_ntf, false, "alarm raised or cleared"),
	T("mau_all_alarm_ntf", "css", "all", "cdr.alarm.ex", NULL, alarm_ntf, false, "alarm raised or cleared"),

	/* BMC, UPU: outside, tolerated. */
	T("bmc_mau_modb_ntf", "bmc", "css", "modb.notify.ex", NULL, modb_ntf, false,
	  "a user domain, platform or service domain changed"),
	T("mau_bmc_cdr_ntf", "css", "bmc", "bmc.cdr.q", NULL, billing_ntf, false,
	  "billing record of an ended conference"),
	T("mau_upu_e164_ntf", "css", "upu", "upu.ntf.ex", NULL, upu_ntf, false, "an E164 starts or ends"),
	T("mau_upu_e164_batch_ntf", "css", "upu", "upu.ntf.ex", NULL, upu_batch_ntf, false,
	  "E164s that start or end, batched ([css] upu_batch)"),
	{ .name = NULL },
};
