/* css's private header: the model shared by its files, and what each file
 * offers the others. The files, one job each (docs/css.md follows them):
 *   css.c        the daemon's life: settings, roles, links, topology, counters
 *   model.c      conferences, groups, the state machine's calls; rooms, platforms
 *   store.c      the Redis store: records and stored answers, per platform
 *   history.c    the MySQL history (confinfo rows, in batches)
 *   ops.c        operations in flight, answers to the CM, the MCU leg of a create
 *   send.c       what css sends: MCU commands, notices, alarms, rms calls
 *   create.c     a CM's create
 *   end.c        ending conferences, expiry
 *   restore.c    restoring conferences lost with their MCU, room or platform
 *   cm.c         the CM's requests (mau.conf.q)
 *   mcu.c        the MCUs' answers, notices and lists (mau.cmu.q)
 *   notices.c    rms's and pms's notices
 *   takeover.c   the platform takeover and hand-back
 *   templates.c  public conference templates
 *   view.c       the view rebuilt from Redis
 * Pure rules live in confsm.c (the state machine), plan.c (restore planner,
 * list verdicts, notice epochs) and route.c (user-domain routing). */
#ifndef CSS_CSS_INT_H
#define CSS_CSS_INT_H

#include "css.h"

#include "beats.h"
#include "confsm.h"
#include "plan.h"
#include "route.h"

#include <confdr/bus.h>
#include <confdr/db.h>
#include <confdr/hmap.h>
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/redis.h>
#include <confdr/topology.h>
#include <confdr/zk.h>

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

struct css;
struct op;

#define FLUSH_MS     20	  /* rms confirm/release and MySQL batches wait at most this */
#define RMS_BATCH    2000 /* reservations per confirm or release */
#define DB_RETRY_MS  1000
#define EXPIRE_BATCH 1000
#define MAX_REDIS    16

/* Conferences grouped by user domain and by MCU (lists and reconciliation). */
struct group {
	TAILQ_HEAD(, conf) confs;
	size_t n;
	uint64_t absent_since; /* MCU groups: when rms's inventory first lacked it (0: present) */
	char name[];
};

#define CSS_CREATE_EXCLUDE 4 /* MCUs a create may find gone before it is refused */

struct conf {
	char e164[40];
	uint64_t serial; /* unique in this process: how an async batch finds it again (history.c) */
	/* few distinct values, shared by many conferences: one copy each (css_str_set) */
	const char *ud, *home, *host, *room, *mcu, *mcu_key;
	char *name, *vrs, *reservation, *req, *password, *end_reason;
	/* the CM's create body, mcu and vrs set: compact JSON text, as stored
	 * (a parsed body costs ~1 KiB of small allocations per conference);
	 * read and changed through css_conf_create and css_conf_set_create */
	char *create;
	int64_t start_ms, planned_end_ms, end_ms, generation, epoch;
	uint64_t changed_mono; /* last change, monotonic ms (reconciliation grace) */
	struct op *op;	       /* the operation in flight on it, or NULL */
	bool closing;	       /* ended: history being written, then the record goes */
	bool db_queued;
	bool restore_queued;   /* in s->restore_q */
	bool store_queued;     /* in s->storeq: its record to be written again (store.c) */
	bool lost_by_room;     /* pending because its room went abnormal (its MCU may still run it) */
	int restore_tries;     /* allocations or re-creates that failed in a row */
	unsigned store_waited; /* restores put off while its Redis was down (logged once) */
	enum css_state state;
	char *lost_mcu;		/* the MCU it was lost on: not used again for it (NULL: none) */
	uint64_t restore_after; /* monotonic ms: not before (back-off after a failure) */
	uint64_t lost_mono;	/* when it was lost (restore time) */
	/* rarely set, so not held inline (NULL: none) */
	char *extend_req; /* id of the last extend the MCU asked, applied (a redelivery is answered again) */
	char *moved_mcu;  /* ... that MCU: the copy there is ended once restored elsewhere */
	char *moved_key;
	char *moved_host; /* ... on the broker of that platform */
	struct group *by_ud, *by_mcu;
	TAILQ_ENTRY(conf) ud_link, mcu_link;
};

enum op_kind { OP_CREATE, OP_END, OP_RENAME, OP_EXTEND, OP_RESTORE };

/* A request in flight: the CM's create, end or rename, or an end css
 * decided itself (expiry, abandoned create). */
struct op {
	struct css *s;
	enum op_kind kind;
	int refs;
	bool dead;
	struct cdr_mq_delivery *dl; /* the CM's request, or NULL */
	struct cdr_msg *m;
	char req[128];		 /* the CM's request id */
	char fp[CDR_MSG_FP_LEN]; /* what the request is (cdr_msg_fingerprint) */
	char mcu_id[200];	 /* our envelope id to the MCU, key in s->mcu_ops */
	struct conf *c;		 /* once allocated */
	char *reason;		 /* end: why */
	char *new_name;		 /* rename */
	char *answer;		 /* the answer to the CM, once encoded */
	int store_tries;	 /* create: writes of the running state that failed in a row */
	int placements;		 /* create: allocations made (placed again when its room was switched away
				  * or its MCU's queue was gone) */
	bool unroutable;	 /* the create just sent to the MCU came back unroutable: nobody got it */
	bool isolated;		 /* create refused for an isolation: its removal waits for the replica too */
	bool unchecked;		 /* create: its stored answer not looked up (a first delivery): its first
				  * write (css_store_put_first) or refusal (css_answer_now) checks it */
	char exclude_mcus[CSS_CREATE_EXCLUDE][64]; /* create: MCUs found gone, not to be allocated again */
	int nexclude_mcus;
	struct cdr_timer *timer;
	char home[64]; /* create: the platform owning the user domain (a copy: the topology may be re-read) */
	char room[64]; /* create: the user domain's room */
	void (*on_timer)(struct op *op);
	/* the MCU leg of a create or a restore (css_mcu_create): set by create.c or restore.c */
	void (*on_mcu_ack)(struct op *op);
	void (*on_mcu_fail)(struct op *op, const char *reason, const char *detail);
	uint64_t t0;
	char nack_reason[64], nack_detail[512];
};

/* The newest conference list of an MCU (older ones are ignored). */
struct list_seq {
	int64_t seq;
	char boot[72]; /* its incarnation ("" when it tells none) */
	char mcu[];
};

struct plat_state {
	char id[64];
	bool down;
	int64_t epoch;
};

struct room_state {
	char id[64];
	bool abnormal;
	int64_t epoch;
};

/* A growing array of conferences (history queue, restore queue). */
struct confvec {
	struct conf **v;
	size_t n, cap;
};

struct rsv_batch {
	json_t *ids; /* array */
	bool confirm;
};

struct redis_link {
	struct css *s;
	char platform[64];
	struct cdr_redis *r; /* own: the daemon's; others: our own client */
	bool own;
	struct cdr_redis_script *put, *del, *tpl;
	/* another platform's (its replica, held here): the takeover while it is down */
	bool promoting;	   /* REPLICAOF NO ONE sent, or its records being read */
	bool serving;	   /* promoted and read: this css serves the platform's user domains */
	uint64_t since;	   /* monotonic ms the takeover began */
	struct cdr_db *db; /* the platform's MySQL (its history rows) */
	bool db_up;
};

/* The broker of another platform: control messages for conferences hosted
 * there go to its mau.cmcmu.ex (design section 6, platform back). */
struct peer_mq {
	char platform[64];
	struct cdr_mq *mq;
	struct css *s;
	int64_t rms_epoch;   /* the highest epoch of that platform's rms_all_mcu_ntf seen */
	bool audit_pending;  /* its rms's inventory asked (restore.c) */
	int64_t audit_epoch; /* the rms epoch of the last inventory audited (restore.c), 0 before */
};

struct repl_waiter;
/* What became of a replication wait (replgate.c). */
enum css_repl {
	CSS_REPL_CONFIRMED, /* the replica has every write made before the wait */
	CSS_REPL_NONE,	    /* no replica connected, or no wait possible: not waited for */
	CSS_REPL_TIMEOUT,   /* the replica did not confirm within replica_wait */
};
typedef void (*css_repl_fn)(void *arg, enum css_repl result);

struct css {
	struct cdr_daemon *d;
	struct css_conf conf;
	char platform[64];
	struct cdr_bus bus;
	struct cdr_topology *topo;
	struct cdr_topo_follow *follow;

	bool active;
	int64_t epoch;
	bool pms_known; /* the platform state was answered */
	bool loaded;	/* the view is rebuilt from Redis */
	bool loading;
	bool consuming;

	struct plat_state *plats;
	size_t nplats;
	struct room_state *rooms;
	size_t nrooms;

	struct cdr_hmap *confs;	   /* e164 -> conf */
	struct cdr_hmap *strs;	   /* the strings conferences share (model.c, css_str_set) */
	struct cdr_hmap *uds;	   /* user domain -> group */
	struct cdr_hmap *mcus;	   /* mcu -> group */
	struct cdr_hmap *reqs;	   /* CM request id -> op */
	struct cdr_hmap *mcu_ops;  /* our id to an MCU -> op */
	int64_t rms_epoch;	   /* the highest epoch of rms_all_mcu_ntf seen: older ones are a deposed rms's */
	struct cdr_hmap *list_seq; /* mcu -> struct list_seq */
	struct cdr_hmap *orphans;  /* "mcu/e164" -> uint64_t *: when its end as an orphan was last sent (mcu.c) */

	struct redis_link links[MAX_REDIS];
	size_t nlinks;
	struct peer_mq peers[MAX_REDIS];
	size_t npeers;
	struct cdr_timer *takeover_timer;

	/* coming home after the platform was down (homecoming.c) */
	bool home_wait;		/* not yet home: acts as if the platform were down */
	bool released;		/* its pms says the platform is isolated: released, acts as down (release.c) */
	struct css_beats beats; /* what each of our pms instances said last (beats.h) */
	int64_t beat_any_ms;	/* monotonic: the last beat of any of our pms on the bus (0: none yet) */
	struct {
		int64_t tick_ms, zk_seen_ms, answered_ms, amqp_back_ms;
		int32_t version; /* of /heartbeat/<platform>/pms, last read */
		bool reading;
	} silence; /* no pms heard at all (release.c) */
	struct cdr_timer *silence_timer;
	TAILQ_HEAD(, css_rms_call) rms_waits; /* patient rms calls waiting to ask again (send.c) */
	TAILQ_HEAD(, close_ctx) close_waits;  /* ended states to write again, Redis away (end.c) */
	int64_t rms_again_logged_ms;	      /* the last "asked rms again" line (send.c) */
	uint64_t rms_again_n;		      /* requests asked again since */
	/* answers waiting for the replica (replgate.c) */
	struct repl_waiter *repl_pending, *repl_tail, *repl_batch;
	int64_t repl_info_ms;
	int repl_replicas;
	bool home_checked;  /* a verdict was given since the wait began */
	bool home_pending;  /* a check under way */
	bool home_alarmed;  /* the long wait was alarmed */
	bool home_read;	    /* the last check read the endpoint */
	bool home_mark;	    /* ... and it carried the fail-back's mark */
	bool home_promoted; /* ... and it still names a promoted replica */
	uint64_t home_since;
	struct cdr_timer *home_timer;

	struct rsv_batch confirm, release;
	json_t *upu;		     /* E164 reports waiting for upu_timer (an array), or NULL */
	size_t confs_peak;	     /* most conferences held since memory was last given back */
	struct cdr_timer *upu_timer; /* sends them: [css] upu_batch after the first */
	struct confvec dbq;	     /* conferences whose history row is to be written */
	bool db_busy;
	uint64_t gen;	      /* bumped when the view is dropped (standby): older callbacks are void */
	uint64_t conf_serial; /* the last conf->serial given */

	struct confvec restore_q; /* pending restore, waiting for an allocation or a slot in the window */
	struct confvec storeq;	  /* records whose background write failed for a passing reason */
	size_t restoring;	  /* re-creates in flight (at most [css] restore_window) */
	bool alloc_pending;	  /* one bulk allocation at a time */

	json_t *templates; /* array of the published templates */
	char *templates_txt;

	struct cdr_timer *pms_timer, *expiry_timer, *flush_timer, *tpl_timer, *db_timer, *stats_timer, *restore_timer,
		*audit_timer, *store_timer;
	bool audit_pending;
	int64_t audit_epoch; /* the rms epoch of the last inventory audited (restore.c), 0 before */

	struct css_metrics *m; /* metrics.c */

	struct {
		uint64_t created, create_failed, ended, orphans_ended, missing, late_acks, duplicates, refused;
		uint64_t lost, restored, restore_failed, moved_ended, adopted, sm_refused;
		uint64_t mcu_restarts, stale_lists, stale_rms_notices, repeated_extends, relayed, reused_ids,
			orphans_damped, releases, released, repl_timeouts, isolated_nacks;
	} n;
};

static inline char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static inline void set_str(char **dst, const char *v)
{
	char *n = xstrdup(v);

	free(*dst);
	*dst = n;
}

/* Sets *dst to a copy of v, or NULL when v is NULL or empty. */
static inline void set_opt(char **dst, const char *v)
{
	set_str(dst, v && *v ? v : NULL);
}

static inline const char *nz(const char *s)
{
	return s ? s : "";
}

typedef void (*rms_fn)(struct css *s, int status, const struct cdr_msg *reply, void *arg);

struct load {
	struct css *s;
	struct redis_link *link; /* another platform's (a takeover), or NULL: our own */
	size_t restore;		 /* takeover: conferences that ran on the failed platform */
	uint64_t gen;
	size_t pending, loaded, creating, ending, ended;
	uint64_t t0;
	void (*done)(struct load *ld, bool ok); /* every record read (ok), or the load is void */
};

/* Why a conference no longer runs where it was placed (css_conf_lost). */
enum lost_why { LOST_MCU, LOST_ROOM, LOST_PLATFORM };

/* ---- css.c ---- */
struct cdr_bus *css_bus(void *server);
bool css_serving_queues(void *server);
void css_maybe_consume(struct css *s);
void css_drop_view(struct css *s);
/* The stats into the liveness node now (also every second). */
void css_publish_stats(void *arg);

/* ---- metrics.c ---- */
/* css's families in cdr_daemon_metrics (docs/metrics.md); 0 or -errno. */
int css_metrics_init(struct css *s);
/* ops->metrics and ops->not_ready */
void css_metrics_fill(struct cdr_daemon *d, void *server);
const char *css_not_ready(struct cdr_daemon *d, void *server);
/* A refusal (NACK) of a request of this type, for this reason. */
void css_metric_nack(struct css *s, const char *request, const char *reason);
/* A create answered (ack) or refused: the time since its request came (t0,
 * monotonic ms). */
void css_metric_create_answered(struct css *s, uint64_t t0, bool ack);
/* c restored: the time since it was lost. */
void css_metric_restored(struct css *s, const struct conf *c);

/* ---- model.c ---- */
int css_confvec_push(struct confvec *q, struct conf *c);
/* Removes c from q (every place), keeping the order of the rest. */
void css_confvec_remove(struct confvec *q, const struct conf *c);
void css_index_mcu(struct css *s, struct conf *c);
/* *dst becomes v (NULL: none), held once in s->strs however many
 * conferences have it, counted; the value *dst had is let go. */
void css_str_set(struct css *s, const char **dst, const char *v);
struct conf *css_conf_new(struct css *s, const char *e164, const char *ud);
void css_conf_free(struct css *s, struct conf *c);
/* Whether ev is allowed for c now (a question: nothing changes). */
bool css_conf_can(const struct conf *c, enum css_event ev);
/* Applies ev to c: 0, or -1 when the state machine refuses it. A caller asks
 * css_conf_can first where a refusal is a normal answer; here a refusal is a
 * bug: counted (sm_refused in the stats), logged at error level, and each
 * caller decides what to do instead. */
int css_conf_event(struct css *s, struct conf *c, enum css_event ev) __attribute__((warn_unused_result));
json_t *css_conf_json(const struct conf *c);
/* c's create body parsed: a new reference, or NULL (none yet, or out of memory). */
json_t *css_conf_create(const struct conf *c);
/* c's create body becomes body (the reference is taken): kept as its compact
 * text. 0, or -ENOMEM (c keeps its body; body is released). */
int css_conf_set_create(struct conf *c, json_t *body);
/* c's create body gets c's MCU and VRS (it is placed), or c's name (renamed). */
void css_conf_create_placed(struct conf *c);
void css_conf_create_renamed(struct conf *c);
/* c runs again (restored, or adopted where it ran): what its loss kept goes. */
void css_conf_found(struct conf *c);
/* Whether platform p is to be treated as down here: pms says so, or it is
 * this css's own and its Redis is not home yet (homecoming.c). */
bool css_plat_down(const char *p, void *arg);
/* A platform's state from pms (a notice, the state query, the end of an
 * isolation), applied when its epoch is newer (notices.c). */
void css_apply_platform(struct css *s, const char *id, bool down, int64_t epoch, const char *why);
/* fn(arg, result) once the platform's Redis replica has every write made so
 * far, or it is not waited for (replgate.c); in order. */
void css_repl_wait(struct css *s, css_repl_fn fn, void *arg);
/* A css_repl_fn: answers op (its ACK in op->answer, or platform_down when
 * isolated without the replica's word), then ends op (its reference). */
void css_answer_replicated(void *arg, enum css_repl result);
/* Every wait resolved (CSS_REPL_NONE): at the end. */
void css_repl_cancel_all(struct css *s);
/* Every 250 ms: no pms of ours heard on the bus nor in ZooKeeper for
 * pms_silence releases the platform (release.c). */
void css_silence_tick(void *arg);
/* Our own platform's pms beats (release.c): an isolated platform released. */
void css_on_pms_beat(struct cdr_mq_delivery *dl, void *arg);
/* Whether pms says platform p is down (the notices alone). */
bool css_pms_down(const struct css *s, const char *p);
bool css_room_abnormal(const char *id, void *arg);

/* ---- store.c ---- */
struct redis_link *css_link_of(struct css *s, const char *platform);
struct cdr_redis *css_redis_of(struct css *s, const char *platform);
struct redis_link *css_ready_link(struct css *s, const char *platform);
int css_store_put(struct css *s, struct conf *c, const char *akey, const char *atxt, cdr_redis_fn cb, void *arg);
/* The first write of a create: made only if no answer is stored under
 * op's request id (the create not answered before); otherwise the reply is
 * that stored answer (a string), and nothing is written. */
int css_store_put_first(struct op *op, cdr_redis_fn cb, void *arg);
int css_store_del(struct css *s, struct conf *c, const char *akey, const char *atxt, cdr_redis_fn cb, void *arg);
const char *css_redis_err(int status, const redisReply *reply);
bool css_store_refused(int status, const redisReply *reply);
/* Writes of a create's running state before it is given up (0.5, 1, 2, 4, 4 s apart). */
#define CREATE_STORE_TRIES 6
/* Writes c without waiting; a write that fails for a passing reason (Redis
 * down, restarted, the connection reset) is made again, the record as it is
 * then, until it is stored, c is gone, or it is not this css's to write. */
void css_store_bg(struct css *s, struct conf *c);
void css_store_retry(void *arg);
/* The Redis that holds c's record is connected. */
bool css_store_connected(struct css *s, const struct conf *c);
void css_conf_gone(struct css *s, struct conf *c);
bool css_serving(struct css *s, const char *platform);
bool css_acts_for(struct css *s, const struct conf *c);

/* ---- history.c ---- */
void css_db_queue(struct css *s, struct conf *c);
void css_db_retry(void *arg);
void css_db_kick(struct css *s);

/* ---- ops.c ---- */
struct op *css_op_new(struct css *s, enum op_kind kind, struct cdr_mq_delivery *dl, struct cdr_msg *m);
void css_op_ref(struct op *op);
void css_op_unref(struct op *op);
void css_op_done(struct op *op);
char *css_answer_text(struct op *op, bool ack, json_t *body);
void css_answer_send(struct op *op, const char *txt);
void css_answer_final(struct op *op, const char *reason, const char *detail);
void css_answer_now(struct op *op, bool ack, json_t *body);
json_t *css_nack_body(const char *e164, const char *reason, const char *detail);
void css_refuse(struct css *s, struct cdr_mq_delivery *dl, struct cdr_msg *m, const char *reason, const char *detail);
void css_answer_key(const char *req, char *buf, size_t len);
char *css_answer_value(const struct op *op, const char *answer);
bool css_same_request(const struct op *op, const struct cdr_msg *m);
const char *css_answer_of(const struct op *op, const char *stored, bool *other);
/* op's request was answered before (stored: found by a lookup, or by a
 * create's first write): that answer again, or bad_request when another
 * request used the id; a create's placeholder and reservation go. */
void css_answered_before(struct op *op, const char *stored);
void css_mcu_create(struct op *op);
void css_mcu_op_forget(struct op *op);
json_t *css_create_ack_body(const struct conf *c);

/* ---- send.c ---- */
/* The broker of host (another platform hosting conferences of ours):
 * connected, and its rms notices heard (css_on_peer_rms_ntf). */
void css_peer_watch(struct css *s, const char *host);
int css_mcu_send(struct css *s, const struct conf *c, const char *type, const char *id, json_t *body,
		 cdr_mq_confirm_fn confirm, void *arg);
void css_orphans_forget(struct css *s);
bool css_relay_answer(struct css *s, const struct cdr_mq_delivery *dl, const struct cdr_msg *m);
void css_end_on_host(struct css *s, const char *host, const char *e164, const char *mcu, const char *key,
		     const char *reason);
void css_end_on_mcu(struct css *s, const char *e164, const char *mcu, const char *key, const char *reason);
void css_notify(struct css *s, const char *exchange, const char *key, const char *type, json_t *body);
/* An E164 starts or ends: to UPU, batched ([css] upu_batch). */
void css_upu_report(struct css *s, const struct conf *c, bool start);
/* Sends the E164 reports waiting (the timer's callback; also at stop). */
void css_upu_flush(void *arg);
void css_bmc_record(struct css *s, const struct conf *c);
void css_alarm(struct css *s, const char *severity, const char *kind, const char *target, const char *detail);
/* A request to this platform's rms (css_rms_call), or to the rms of
 * platform through its broker; fn runs once (status 0 with the decoded
 * answer, or a negative errno). */
int css_rms_call(struct css *s, const char *type, json_t *body, rms_fn fn, void *arg);
int css_rms_call_on(struct css *s, const char *platform, const char *type, json_t *body, rms_fn fn, void *arg);
/* As css_rms_call, and sent again (the same message: rms answers a repeat
 * from its reply cache) after each rms_timeout without an answer, for
 * rms_patience while this css is active (a create waits for a standby rms). */
int css_rms_call_patient(struct css *s, const char *type, json_t *body, rms_fn fn, void *arg);
/* Every patient call waiting to ask again ends (-ECANCELED): css_free. */
void css_rms_waits_cancel(struct css *s);
/* The closes waiting to write their ended state again are dropped (end.c). */
void css_close_waits_cancel(struct css *s);
bool css_is_ack(const struct cdr_msg *m);
void css_rsv_add(struct css *s, bool confirm, const char *id);
void css_rsv_flush_one(struct css *s, struct rsv_batch *b, bool confirm);

/* ---- create.c ---- */
json_t *css_exclude_json(const struct css_place *pl);
void css_create_begin(struct css *s, struct op *op);
void css_create_send(struct op *op);
void css_create_fail(struct op *op, const char *reason, const char *detail);
void css_create_done(struct op *op);

/* ---- end.c ---- */
void css_conf_close(struct css *s, struct conf *c, const char *reason, struct op *op);
void css_conf_end(struct css *s, struct conf *c, const char *reason, struct op *op);
void css_end_finish(struct op *op, enum css_event ev);
void css_end_timeout(struct op *op);
void css_expiry_tick(void *arg);

/* ---- restore.c ---- */
void css_restore_queue(struct css *s, struct conf *c);
void css_restore_fail(struct op *op, const char *why);
void css_restore_done(struct op *op);
void css_restore_send(struct css *s, struct conf *c);
void css_restore_kick(void *arg);
int css_conf_lost(struct css *s, struct conf *c, uint64_t now, enum lost_why why);
/* c has just started running (a create, a restore; its op done): if its
 * room went abnormal while it was in flight, after the room's sweep
 * (css_room_failed), it is lost with the room and restored elsewhere. what:
 * for the log ("created", "restored"). */
void css_room_recheck(struct css *s, struct conf *c, const char *what);
void css_mcu_lost(struct css *s, const char *mcu, const char *why);
void css_audit_mcus(void *arg);

/* ---- cm.c ---- */
void css_store_and_answer(struct css *s, struct op *op, struct conf *c);
int css_extend(struct css *s, struct conf *c, int64_t minutes, char *detail, size_t len);
void css_on_cm_request(struct cdr_mq_delivery *dl, void *arg);

/* ---- mcu.c ---- */
void css_on_mcu_message(struct cdr_mq_delivery *dl, void *arg);

/* ---- notices.c ---- */
void css_on_rms_ntf(struct cdr_mq_delivery *dl, void *arg);
/* rms notices of another platform (arg: its struct peer_mq): an MCU there
 * down or restarted loses the conferences of ours it hosts. */
void css_on_peer_rms_ntf(struct cdr_mq_delivery *dl, void *arg);
void css_on_modb_ntf(struct cdr_mq_delivery *dl, void *arg);
void css_room_failed(struct css *s, const char *id);
void css_on_pms_ntf(struct cdr_mq_delivery *dl, void *arg);
void css_ask_pms(void *arg);

/* ---- takeover.c ---- */
void css_takeover_check(struct css *s);
void css_takeover_tick(void *arg);

/* ---- templates.c ---- */
void css_read_templates(void *arg);

/* ---- homecoming.c ---- */
/* The wait begins (activation, or the platform declared down): the next
 * "up" serves only once the platform's Redis is home. */
void css_home_begin(struct css *s);
/* One check if the wait is on and the platform is up (async; again every
 * 250 ms until home). */
void css_home_check(struct css *s);
void css_home_tick(void *arg);

/* ---- view.c ---- */
void css_on_members(int status, const redisReply *reply, void *arg);
void css_load_view(struct css *s);

#endif
