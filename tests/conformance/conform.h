/* confdr-conform: a conformance suite for an MCU (docs/conformance.md). It
 * plays rms (rms.res.q) and css (mau.cmcmu.ex, mau.cmu.q) on a vhost of its
 * own against an MCU it starts as a command, and checks what the MCU does
 * against docs/protocol.md. Private to tests/conformance/. */
#ifndef CONFDR_CONFORM_H
#define CONFDR_CONFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include <confdr/msg.h>

struct cdr_loop;
struct cdr_mq;

/* ---- options ---- */

struct cf_opts {
	const char *url;      /* --amqp */
	const char *platform; /* --platform: its platform, checked in its registration */
	const char *room;     /* --room: its room, checked when given */
	unsigned timeout_ms;  /* --timeout: the bound of every wait */
	unsigned hb_ms;	      /* --heartbeat: heartbeat_ms of the suite's register ACKs */
	const char *mcu_log;  /* --mcu-log: the command's stdout and stderr, NULL = inherited stderr */
	bool verbose;	      /* -v: every message as a TAP comment */
	char **cmd;	      /* the MCU's command, NULL-terminated, with {amqp} {platform} {room} */
};

/* ---- report.c: TAP output ---- */

/* One check: "ok N - what (§sect)" or "not ok N - what (§sect): why". why is
 * a printf format, used only when !ok. Returns ok. */
bool cf_check(bool ok, const char *sect, const char *what, const char *why, ...) __attribute__((format(printf, 4, 5)));
/* A TAP comment line ("# ..."): what the suite saw that is no failure. */
void cf_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A comment under -v only. */
void cf_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cf_set_verbose(bool on);
/* The plan and the summary lines; returns the number of failed checks. */
unsigned cf_summary(void);

/* An invariant watched over many messages: its first violation is kept, and
 * cf_inv_report turns it into one check. */
struct cf_inv {
	const char *what, *sect;
	unsigned seen, bad;
	char first[400];
};
void cf_inv_note(struct cf_inv *v, bool ok, const char *why, ...) __attribute__((format(printf, 3, 4)));
/* One check: ok when nothing broke it (and, when need_some, at least one
 * message was seen); then starts counting afresh. */
void cf_inv_report(struct cf_inv *v, bool need_some);

/* ---- bus.c: the suite's side of the broker ---- */

/* A message the MCU sent, as received. */
struct cf_msg {
	char queue;	   /* 'r' rms.res.q, 'c' mau.cmu.q (from cmu.mau.ex) */
	uint64_t at_ms;	   /* monotonic, when received */
	json_t *env;	   /* the parsed envelope, NULL when not JSON */
	struct cdr_msg *m; /* schema-checked, NULL when refused (err says why) */
	struct cdr_msg_error err;
	char key[128], corr[200], reply_to[200], message_id[200], ctype[64];
	unsigned mode;	 /* delivery_mode, 0 when unset */
	int incarnation; /* which start of the command it came in */
};

/* What the suite answers the next registration with. */
enum cf_reg_policy { CF_REG_IGNORE, CF_REG_NACK, CF_REG_ACK };

struct cf {
	struct cf_opts o;
	struct cdr_loop *loop;
	struct cdr_mq *mq;
	bool connected;

	struct cf_msg *msgs; /* everything received, in order */
	size_t nmsgs, cap;

	/* The MCU under test: the first one that registers. */
	char mcu[72], key[72], boot[72];
	bool has_boot;
	int boot_incarnation; /* the incarnation boot was taken from */
	int incarnation;      /* 1 for the first start of the command, 2 after the restart */

	/* Playing rms. */
	enum cf_reg_policy reg_policy; /* for the next registration; IGNORE and NACK fall back to ACK after one */
	int64_t rms_epoch;	       /* epoch of the ACKs */
	int64_t ack_epoch;	       /* the epoch of the last ACK sent */
	int64_t prev_ack_epoch;	       /* and of the one before */
	unsigned regs;		       /* registrations of the MCU seen */
	uint64_t last_ack_ms;	       /* when the last ACK was sent (0: none in this incarnation) */
	int64_t hb_last_seq;	       /* within the current registration; -1 none yet */
	unsigned hbs_since_ack;
	uint64_t hb_first_ms, hb_last_ms;
	int64_t next_epoch;	 /* when not 0: rms_epoch after the next ACK */
	unsigned acks;		 /* ACKs sent in this incarnation */
	unsigned hbs_before_ack; /* heartbeats before the first ACK of the incarnation (MUST NOT) */
	unsigned hbs_rereg;	 /* heartbeats between a re-registration and its ACK (SHOULD NOT) */

	/* Lists: the last one, per incarnation. */
	int64_t list_seq; /* -1 none yet in this incarnation */
	json_t *last_confs;
	unsigned lists;

	/* Invariants over every message. */
	struct cf_inv inv_schema, inv_from_mcu, inv_ctype, inv_key, inv_no_reply_to, inv_persistent, inv_hb_seq,
		inv_hb_epoch, inv_hb_mode, inv_boot, inv_list_seq, inv_mcu_field;

	uint64_t seq;	/* for the suite's own ids */
	void *late[32]; /* confirms that did not come in time, freed with the handle */
	size_t nlate;
};

int cf_bus_open(struct cf *c);
void cf_bus_close(struct cf *c);
/* Empties rms.res.q and mau.cmu.q (a previous run's leftovers). */
int cf_bus_purge(struct cf *c);
/* Runs the loop until pred(c, arg) holds or the timeout passes. */
bool cf_wait(struct cf *c, bool (*pred)(struct cf *, const void *), const void *arg, unsigned ms);
void cf_run_for(struct cf *c, unsigned ms);

/* Publishes a css command to mau.cmcmu.ex with the MCU's key, as css does
 * (persistent, mandatory, correlation_id = message_id = id, AMQP type). body
 * is stolen. raw: body_text is sent as it is instead (malformed messages).
 * Returns the confirm status (0, -EIO when unroutable), or -ETIMEDOUT. */
int cf_send_command(struct cf *c, const char *type, const char *id, const char *src, json_t *body);
int cf_send_raw(struct cf *c, const char *text);
/* Publishes a notice of rms to rms.ntf.ex; body stolen. */
int cf_send_rms_notice(struct cf *c, const char *type, json_t *body);
/* A new id for the suite's messages: "conform-<what>-N". */
const char *cf_next_id(struct cf *c, const char *what, char *buf, size_t len);

/* The message at index i, its type ("" when unreadable), its body field. */
const char *cf_msg_type(const struct cf_msg *m);
const char *cf_msg_id(const struct cf_msg *m);
json_t *cf_msg_body(const struct cf_msg *m);
/* The index of the first message from index from on that queue q with the
 * type (NULL: any), or -1. */
long cf_find(const struct cf *c, size_t from, char q, const char *type);
long cf_find_id(const struct cf *c, size_t from, const char *id);

/* ---- mcu_proc.c: the command ---- */

/* Starts the command (its arguments with {amqp}, {platform}, {room}
 * replaced; CONFDR_AMQP_URL and CONFDR_CONFORM_AMQP_URL in its environment),
 * in a process group of its own. Returns the pid, or -1. */
pid_t cf_mcu_start(struct cf *c);
/* SIGTERM to its process group, then SIGKILL after ms. Returns true when
 * it exited on SIGTERM within ms. *status gets its wait status. */
bool cf_mcu_stop(struct cf *c, pid_t pid, unsigned ms, int *status);
/* Whether it still runs (false: it exited; *status then says how). */
bool cf_mcu_alive(pid_t pid, int *status);

/* ---- the cases ---- */

/* cases_rms.c: registration, its retries, heartbeats; re-registration on
 * rms's notices. Each returns false when the suite cannot go on. */
bool cf_case_registration(struct cf *c, bool first);
void cf_case_heartbeats(struct cf *c, int64_t epoch);
void cf_case_reregistration(struct cf *c);
/* cases_css.c: commands and answers, lists, the restart. */
void cf_case_first_list(struct cf *c);
void cf_case_commands(struct cf *c);
void cf_case_restart_stop(struct cf *c, pid_t pid);
/* Starts the command again and checks its new incarnation; returns its pid
 * (-1 when it could not be started). */
pid_t cf_case_restart_start(struct cf *c);
void cf_report_invariants(struct cf *c);

/* E164s of the suite's conferences. */
#define CF_E164_A	"0990001001"
#define CF_E164_B	"0990001002"
#define CF_E164_C	"0990001003"
#define CF_E164_D	"0990001004"
#define CF_E164_UNKNOWN "0990001999"

#endif
