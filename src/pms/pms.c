/* confdr-pms: the bus side of the platform management service. The decisions
 * live in health.c, the probes in probe.c. This file runs the checks of its
 * own platform's rooms, watches the pms of the platforms it backs up, writes
 * every decision to ZooKeeper with a new epoch before anyone hears of it,
 * mirrors the state of the whole service domain from ZooKeeper, broadcasts
 * every change on its own broker's pms.ntf.ex, raises alarms, and answers
 * state queries and manual switches on pms.req.q (docs/pms.md). */
#include "pms.h"

#include "health.h"
#include "probe.h"

#include <confdr/bus.h>
#include <confdr/hmap.h>
#include <confdr/log.h>
#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/topology.h>
#include <confdr/zk.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS	   100
#define EPOCH_PATH "/state/epoch"

static const char *check_tcp_list(const char *v);

#define K(key, type, field, def, min, max, help)                                                                       \
	{                                                                                                              \
		"pms", key, type, offsetof(struct pms_conf, field), def, min, max, NULL, NULL, help, NULL, 0           \
	}
#define R(key, type, field, def, min, max, check, help)                                                                \
	{                                                                                                              \
		"", key, type, offsetof(struct pms_room_conf, field), def, min, max, NULL, check, help, NULL, 0        \
	}

static const struct cdr_conf_key room_keys[] = {
	R("tcp", CDR_CONF_STR, tcp, "", 0, 0, check_tcp_list,
	  "TCP checks: name=ip:port[, name=ip:port...] (numeric addresses); each is one check"),
	R("connect_timeout", CDR_CONF_MS, connect_timeout_ms, "1s", 10, 60000, NULL, "a TCP check fails after this"),
	R("interval", CDR_CONF_MS, interval_ms, "1s", 50, 600000, NULL,
	  "TCP and command checks run this often (delay_loop)"),
	R("fall", CDR_CONF_INT, fall, "3", 1, 100, NULL,
	  "a TCP or command check is down after this many failures in a row"),
	R("rise", CDR_CONF_INT, rise, "2", 1, 100, NULL, "... and up again after this many successes in a row"),
	R("mcus", CDR_CONF_BOOL, mcus, "yes", 0, 0, NULL,
	  "check the room's MCUs as a group (rms): down when every known MCU of the room is silent"),
	R("mcu_fall", CDR_CONF_INT, mcu_fall, "1", 1, 100, NULL,
	  "the MCU check is down after this many failed evaluations (rms has already counted missed heartbeats)"),
	R("mcu_rise", CDR_CONF_INT, mcu_rise, "2", 1, 100, NULL, "... and up after this many good ones"),
	R("command", CDR_CONF_STR, command, "", 0, 0, NULL, "optional command check run by /bin/sh -c: exit 0 passes"),
	R("command_timeout", CDR_CONF_MS, command_timeout_ms, "2s", 10, 600000, NULL,
	  "the command is killed after this"),
	R("preempt", CDR_CONF_BOOL, preempt, "no", 0, 0, NULL,
	  "yes: an automatically switched room returns by itself once healthy for preempt_delay; no: an operator "
	  "switches it back"),
	R("preempt_delay", CDR_CONF_MS, preempt_delay_ms, "60s", 0, 86400000, NULL,
	  "healthy this long before a preempt return"),
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};

const struct cdr_conf_key pms_conf_keys[] = {
	K("peer_grace", CDR_CONF_MS, peer_grace_ms, "5s", 500, 600000,
	  "a platform this pms backs up is declared down when none of its pms instances has been live in ZooKeeper "
	  "for this long"),
	K("peer_poll", CDR_CONF_MS, peer_poll_ms, "500ms", 100, 60000, "how often those pms instances are looked up"),
	{ "pms", "follow_main_room", CDR_CONF_BOOL, offsetof(struct pms_conf, follow_main_room), "yes", 0, 0, NULL,
	  NULL, "a platform this pms backs up is declared down when its main room fails its checks", NULL, 0 },
	K("mcu_poll", CDR_CONF_MS, mcu_poll_ms, "1s", 100, 60000,
	  "how often the MCU inventory is read from rms (MCU up/down notices are applied at once)"),
	K("mcu_absent_grace", CDR_CONF_MS, mcu_absent_ms, "5s", 500, 600000,
	  "an MCU missing from rms's inventory this long counts as silent (an rms restart is shorter)"),
	K("rms_timeout", CDR_CONF_MS, rms_timeout_ms, "1s", 100, 60000,
	  "an inventory read from rms gives up after this"),
	K("topology_refresh", CDR_CONF_MS, topology_refresh_ms, "30s", 1000, 3600000,
	  "how often the topology is read again from ZooKeeper"),
	{ "room", "room", CDR_CONF_GROUP, offsetof(struct pms_conf, rooms), NULL, 0, 0, NULL, NULL,
	  "the checks of one room of this platform; rooms without a section get the defaults (MCU check only)",
	  room_keys, sizeof(struct pms_room_conf) },
	{ NULL, NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 },
};

static const char *check_tcp_list(const char *v)
{
	char buf[1024], *save = NULL, *tok;

	if (strlen(v) >= sizeof(buf))
		return "too long";
	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq, host[64];
		int port;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		for (char *e = tok + strlen(tok); e > tok && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		eq = strchr(tok, '=');
		if (!eq || eq == tok || eq - tok > 32)
			return "expected name=ip:port[, name=ip:port...]";
		if (pms_probe_parse_addr(eq + 1, host, sizeof(host), &port) < 0)
			return "expected name=ip:port with a numeric IPv4/IPv6 address and a port 1..65535";
	}
	return NULL;
}

/* ---- state of the server ---- */

enum check_kind { CK_TCP, CK_MCU, CK_CMD };

struct room;

struct check {
	struct pms *s;
	struct room *room;
	enum check_kind kind;
	char name[40];
	char host[64];
	int port;
	char *command;
	uint64_t interval_ms, timeout_ms;
	struct pms_verdict v;
	char last[200]; /* the last failure */
	struct cdr_timer *timer;
	struct pms_probe *probe;
};

struct room {
	struct pms *s;
	char id[65], platform[65];
	bool own;
	struct pms_state st;
	bool loaded;  /* read from ZooKeeper (or known absent) */
	bool writing; /* a decision is being written */
	struct cdr_zk_data_watch *watch;
	/* own rooms */
	struct pms_room_health h;
	struct check **checks;
	size_t nchecks;
	bool mcus;
};

struct plat {
	struct pms *s;
	char id[65], backup[65], main_room[65];
	bool owned; /* we are its backup platform: we decide its state */
	struct pms_state st;
	bool loaded, writing;
	struct cdr_zk_data_watch *watch;
	struct pms_platform_watch w;
	bool polling;
	int nlive;
};

struct mcu_seen {
	char id[65], room[65];
	bool alive;
	int64_t listed_ms;
};

struct pms {
	struct cdr_daemon *d;
	struct pms_conf conf; /* scalar [pms] keys; rooms are in rconf */
	char **rnames;
	struct pms_room_conf *rconf;
	size_t nrconf;
	char platform[65];
	struct cdr_bus bus;
	struct cdr_topology *topo;
	struct cdr_timer *tick, *mcu_timer;
	struct cdr_topo_follow *follow;

	bool active, started;
	int64_t leader_epoch;
	uint64_t gen;		   /* bumped at every stop: late callbacks of an earlier run are dropped */
	struct cdr_mq *subscribed; /* the mq rms.ntf.ex is subscribed on */

	struct room *rooms;
	size_t nrooms;
	struct plat *plats;
	size_t nplats;
	int64_t last_peer_poll;

	struct cdr_hmap *mcus; /* id -> struct mcu_seen */
	bool inventory_pending;
	bool rms_silent_logged;
};

static int64_t mono(void)
{
	return (int64_t)cdr_now_ms();
}

static int64_t wall(void)
{
	return (int64_t)cdr_wall_ms();
}

/* ---- conf copies ---- */

static void free_rconf(struct pms *s)
{
	for (size_t i = 0; i < s->nrconf; i++) {
		free(s->rnames[i]);
		free(s->rconf[i].tcp);
		free(s->rconf[i].command);
	}
	free(s->rnames);
	free(s->rconf);
	s->rnames = NULL;
	s->rconf = NULL;
	s->nrconf = 0;
}

static int copy_rconf(struct pms *s, const struct cdr_conf_group *g)
{
	free_rconf(s);
	if (!g->n)
		return 0;
	s->rnames = calloc(g->n, sizeof(*s->rnames));
	s->rconf = calloc(g->n, sizeof(*s->rconf));
	if (!s->rnames || !s->rconf)
		return -ENOMEM;
	for (size_t i = 0; i < g->n; i++) {
		const struct pms_room_conf *c = g->items[i];

		s->rconf[i] = *c;
		s->rconf[i].tcp = strdup(c->tcp ? c->tcp : "");
		s->rconf[i].command = strdup(c->command ? c->command : "");
		s->rnames[i] = strdup(g->names[i]);
		s->nrconf = i + 1;
		if (!s->rconf[i].tcp || !s->rconf[i].command || !s->rnames[i])
			return -ENOMEM;
	}
	return 0;
}

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

/* ---- publishing ---- */

static void publish(struct pms *s, const char *exchange, const char *type, json_t *body)
{
	cdr_bus_publish(&s->bus, NULL, exchange, "", type, NULL, s->leader_epoch, body, false, NULL, NULL);
}

static json_t *room_json(const struct room *r, bool full)
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

static json_t *plat_json(const struct plat *p, bool full)
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
		json_object_set_new(o, "pms_live", json_boolean(p->w.peer_live));
	return o;
}

static void broadcast_room(struct room *r)
{
	publish(r->s, CDR_MQ_PMS_NTF_EX, "pms_all_room_ntf", room_json(r, false));
}

static void broadcast_plat(struct plat *p)
{
	publish(p->s, CDR_MQ_PMS_NTF_EX, "pms_all_platform_ntf", plat_json(p, false));
}

/* Every change, manual or not, as an alarm line and on cdr.alarm.ex. */
static void alarm(struct pms *s, enum pms_target t, const char *id, const struct pms_state *st)
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
	publish(s, CDR_MQ_ALARM_EX, "pms_all_alarm_ntf",
		json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "severity", sev, "kind", kind, "target", id, "platform",
			  s->platform, "detail", detail, "epoch", (json_int_t)st->epoch));
}

/* ---- state nodes ---- */

static void state_path(enum pms_target t, const char *platform, const char *id, char *out, size_t len)
{
	if (t == PMS_ROOM)
		snprintf(out, len, "/state/%s/rooms/%s", platform, id);
	else
		snprintf(out, len, "/state/%s/platform", id);
}

static char *state_text(enum pms_target t, const char *platform, const char *id, const struct pms_state *st)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:s, s:s, s:s}", t == PMS_ROOM ? "room" : "platform", id,
			      "of", platform, "state", pms_state_name(t, st->bad), "manual", st->manual, "since",
			      (json_int_t)st->since, "epoch", (json_int_t)st->epoch, "reason", st->reason, "detail",
			      st->detail, "by", st->by);
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return txt;
}

/* Reads a state node; returns 0 or -EINVAL. */
static int state_parse(enum pms_target t, const char *data, size_t len, struct pms_state *st)
{
	json_t *o = json_loadb(data, len, 0, NULL);
	const char *state;
	bool valid;

	if (!json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	state = cdr_msg_jstr(o, "state", "");
	memset(st, 0, sizeof(*st));
	st->bad = !strcmp(state, pms_state_name(t, true));
	st->manual = cdr_msg_jbool(o, "manual", false);
	st->since = cdr_msg_jint(o, "since", 0);
	st->epoch = cdr_msg_jint(o, "epoch", 0);
	snprintf(st->reason, sizeof(st->reason), "%s", cdr_msg_jstr(o, "reason", ""));
	snprintf(st->detail, sizeof(st->detail), "%s", cdr_msg_jstr(o, "detail", ""));
	snprintf(st->by, sizeof(st->by), "%s", cdr_msg_jstr(o, "by", ""));
	valid = st->bad || !strcmp(state, pms_state_name(t, false));
	json_decref(o);
	return valid ? 0 : -EINVAL;
}

static void decide_room(struct room *r);
static void decide_plat(struct plat *p);

/* Applies a state read from ZooKeeper (a mirror update); broadcasts it when
 * it is newer than what this pms knew. */
static bool mirror_apply(struct pms_state *cur, const struct pms_state *in)
{
	if (!pms_epoch_newer(cur->epoch, in->epoch))
		return false;
	*cur = *in;
	return true;
}

static void on_room_node(int status, const char *data, size_t len, void *arg)
{
	struct room *r = arg;
	struct pms_state st;

	if (status == -ENOENT) {
		r->loaded = true;
	} else if (status == 0) {
		if (state_parse(PMS_ROOM, data, len, &st) < 0) {
			cdr_warn("/state/%s/rooms/%s is not a room state: ignored: %.*s", r->platform, r->id,
				 (int)(len > 200 ? 200 : len), data);
		} else {
			r->loaded = true;
			if (mirror_apply(&r->st, &st)) {
				cdr_info("room %s is %s (%s), epoch %" PRId64, r->id, pms_state_name(PMS_ROOM, st.bad),
					 st.reason, st.epoch);
				broadcast_room(r);
			}
		}
	}
	if (r->own)
		decide_room(r);
	for (size_t i = 0; i < r->s->nplats; i++)
		if (r->s->plats[i].owned && !strcmp(r->s->plats[i].main_room, r->id))
			decide_plat(&r->s->plats[i]);
}

static void on_plat_node(int status, const char *data, size_t len, void *arg)
{
	struct plat *p = arg;
	struct pms_state st;

	if (status == -ENOENT) {
		p->loaded = true;
	} else if (status == 0) {
		if (state_parse(PMS_PLATFORM, data, len, &st) < 0) {
			cdr_warn("/state/%s/platform is not a platform state: ignored: %.*s", p->id,
				 (int)(len > 200 ? 200 : len), data);
		} else {
			p->loaded = true;
			if (mirror_apply(&p->st, &st)) {
				cdr_info("platform %s is %s (%s), epoch %" PRId64, p->id,
					 pms_state_name(PMS_PLATFORM, st.bad), st.reason, st.epoch);
				broadcast_plat(p);
			}
		}
	}
	if (p->owned)
		decide_plat(p);
}

/* ---- writing a decision: read the node (its version, and that nothing
 * changed since we decided), take an epoch, write with that version ---- */

struct write {
	struct pms *s;
	uint64_t gen;
	enum pms_target t;
	size_t idx;
	struct pms_change c;
	char reason[32], by[65];
	struct pms_state next;
	int64_t seen_epoch; /* the state's epoch the decision was made on */
	int32_t version;    /* -1: create */
	char path[200];
	/* a manual switch waiting for its answer */
	struct cdr_mq_delivery *dl;
	struct cdr_msg *m;
};

static void answer(struct pms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack, json_t *body);

static struct pms_state *target_state(struct pms *s, enum pms_target t, size_t idx, bool **writing)
{
	if (t == PMS_ROOM) {
		*writing = &s->rooms[idx].writing;
		return &s->rooms[idx].st;
	}
	*writing = &s->plats[idx].writing;
	return &s->plats[idx].st;
}

static const char *target_id(struct pms *s, enum pms_target t, size_t idx)
{
	return t == PMS_ROOM ? s->rooms[idx].id : s->plats[idx].id;
}

static void write_end(struct write *w, int status, const char *why)
{
	struct pms *s = w->s;
	bool current = s->started && s->gen == w->gen, *writing;
	struct pms_state *st;

	if (!current) {
		if (w->dl)
			answer(s, w->dl, w->m, false,
			       cdr_bus_nack_body("not_active", "this pms stepped down meanwhile"));
		goto out;
	}
	st = target_state(s, w->t, w->idx, &writing);
	*writing = false;
	if (status < 0) {
		const char *id = target_id(s, w->t, w->idx);

		cdr_warn("%s %s: decision \"%s\" not written: %s", w->t == PMS_ROOM ? "room" : "platform", id,
			 w->reason, why);
		if (w->dl) {
			char detail[300];

			snprintf(detail, sizeof(detail), "%s %s: %s", w->t == PMS_ROOM ? "room" : "platform", id, why);
			answer(s, w->dl, w->m, false,
			       cdr_bus_nack_body(status == -ESTALE || status == -EEXIST ? "conflict" : "internal_error",
						 detail));
		}
		goto out;
	}
	/* Written: it is the state now; the watch will tell us again (same
	 * epoch: ignored). */
	*st = w->next;
	if (w->t == PMS_ROOM)
		broadcast_room(&s->rooms[w->idx]);
	else
		broadcast_plat(&s->plats[w->idx]);
	if (strcmp(st->reason, "initial"))
		alarm(s, w->t, target_id(s, w->t, w->idx), st);
	else
		cdr_info("%s %s: initial state %s written, epoch %" PRId64, w->t == PMS_ROOM ? "room" : "platform",
			 target_id(s, w->t, w->idx), pms_state_name(w->t, st->bad), st->epoch);
	if (w->dl)
		answer(s, w->dl, w->m, true,
		       json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I}", "target",
				 w->t == PMS_ROOM ? "room" : "platform", "moid", target_id(s, w->t, w->idx), "state",
				 pms_state_name(w->t, st->bad), "manual", st->manual, "changed", true, "since",
				 (json_int_t)st->since, "epoch", (json_int_t)st->epoch));
out:
	cdr_msg_free(w->m);
	free(w);
}

static void on_written(const struct cdr_zk_result *r, void *arg)
{
	struct write *w = arg;
	char why[300];

	if (r->status < 0) {
		snprintf(why, sizeof(why), "%s",
			 r->status == -ESTALE || r->status == -EEXIST ? "changed by another pms meanwhile; ask again"
								      : (r->error ? r->error : strerror(-r->status)));
		write_end(w, r->status, why);
		return;
	}
	write_end(w, 0, NULL);
}

static void take_epoch(struct write *w);

static void on_epoch_created(const struct cdr_zk_result *r, void *arg)
{
	struct write *w = arg;

	if (r->status < 0 && r->status != -EEXIST) {
		write_end(w, r->status, r->error ? r->error : strerror(-r->status));
		return;
	}
	take_epoch(w);
}

static void on_epoch(const struct cdr_zk_result *r, void *arg)
{
	struct write *w = arg;
	struct pms *s = w->s;
	char *txt;
	int rc;

	if (r->status == -ENOENT) {
		if (cdr_zk_create(cdr_daemon_zk(s->d), EPOCH_PATH, NULL, 0, CDR_ZK_PARENTS, on_epoch_created, w) < 0)
			write_end(w, -ENOMEM, "out of memory");
		return;
	}
	if (r->status < 0) {
		write_end(w, r->status, r->error ? r->error : strerror(-r->status));
		return;
	}
	if (!s->started || s->gen != w->gen) {
		write_end(w, -ECANCELED, "stepped down");
		return;
	}
	/* The counter's data version after our set: one more than any
	 * epoch handed out before, by any pms, ever. */
	pms_state_commit(&w->next, &w->c, r->version, wall());
	txt = state_text(w->t, w->t == PMS_ROOM ? s->rooms[w->idx].platform : s->plats[w->idx].id,
			 target_id(s, w->t, w->idx), &w->next);
	if (!txt) {
		write_end(w, -ENOMEM, "out of memory");
		return;
	}
	if (w->version < 0)
		rc = cdr_zk_create(cdr_daemon_zk(s->d), w->path, txt, strlen(txt), CDR_ZK_PARENTS, on_written, w);
	else
		rc = cdr_zk_set(cdr_daemon_zk(s->d), w->path, txt, strlen(txt), w->version, on_written, w);
	free(txt);
	if (rc < 0)
		write_end(w, rc, strerror(-rc));
}

static void take_epoch(struct write *w)
{
	if (cdr_zk_set(cdr_daemon_zk(w->s->d), EPOCH_PATH, NULL, 0, -1, on_epoch, w) < 0)
		write_end(w, -ENOMEM, "out of memory");
}

static void on_read_before_write(const struct cdr_zk_result *r, void *arg)
{
	struct write *w = arg;
	struct pms *s = w->s;
	struct pms_state now;

	if (!s->started || s->gen != w->gen) {
		write_end(w, -ECANCELED, "stepped down");
		return;
	}
	if (r->status == -ENOENT) {
		w->version = -1;
		if (w->seen_epoch != 0) {
			write_end(w, -ESTALE, "the state node was removed meanwhile; ask again");
			return;
		}
	} else if (r->status < 0) {
		write_end(w, r->status, r->error ? r->error : strerror(-r->status));
		return;
	} else {
		if (state_parse(w->t, r->data, r->len, &now) == 0 && now.epoch != w->seen_epoch) {
			write_end(w, -ESTALE, "changed by another pms meanwhile; ask again");
			return;
		}
		w->version = r->version;
	}
	take_epoch(w);
}

/* Starts writing change c for target (t, idx); dl/m (taken) are answered at
 * the end. Returns 0, or -EBUSY when a write for it is under way. */
static int write_start(struct pms *s, enum pms_target t, size_t idx, const struct pms_change *c,
		       struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
	bool *writing;
	struct pms_state *st = target_state(s, t, idx, &writing);
	struct write *w;

	if (*writing)
		return -EBUSY;
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->s = s;
	w->gen = s->gen;
	w->t = t;
	w->idx = idx;
	w->c = *c;
	snprintf(w->reason, sizeof(w->reason), "%s", c->reason ? c->reason : "");
	snprintf(w->by, sizeof(w->by), "%s", c->by ? c->by : "");
	w->c.reason = w->reason;
	w->c.by = w->by;
	w->next = *st;
	w->seen_epoch = st->epoch;
	w->dl = dl;
	w->m = m;
	state_path(t, t == PMS_ROOM ? s->rooms[idx].platform : NULL, target_id(s, t, idx), w->path, sizeof(w->path));
	if (cdr_zk_get(cdr_daemon_zk(s->d), w->path, NULL, NULL, on_read_before_write, w) < 0) {
		free(w);
		return -ENOMEM;
	}
	*writing = true;
	return 0;
}

/* ---- decisions ---- */

static void decide_room(struct room *r)
{
	struct pms *s = r->s;
	struct pms_change c;
	size_t idx = (size_t)(r - s->rooms);

	if (!s->started || !r->own || !r->loaded || r->writing)
		return;
	if (r->st.epoch == 0) {
		memset(&c, 0, sizeof(c));
		c.reason = "initial";
		c.by = "";
		snprintf(c.detail, sizeof(c.detail), "first state written by pms of %s", s->platform);
		write_start(s, PMS_ROOM, idx, &c, NULL, NULL);
		return;
	}
	if (pms_room_decide(&r->st, &r->h, mono(), &c))
		write_start(s, PMS_ROOM, idx, &c, NULL, NULL);
}

static const struct pms_state *room_state_of(struct pms *s, const char *room)
{
	for (size_t i = 0; i < s->nrooms; i++)
		if (!strcmp(s->rooms[i].id, room))
			return s->rooms[i].loaded ? &s->rooms[i].st : NULL;
	return NULL;
}

static void decide_plat(struct plat *p)
{
	struct pms *s = p->s;
	struct pms_change c;
	size_t idx = (size_t)(p - s->plats);

	if (!s->started || !p->owned || !p->loaded || p->writing)
		return;
	p->w.main_room = room_state_of(s, p->main_room);
	p->w.grace_ms = (int64_t)s->conf.peer_grace_ms;
	p->w.follow_main_room = s->conf.follow_main_room;
	if (p->st.epoch == 0) {
		memset(&c, 0, sizeof(c));
		c.reason = "initial";
		c.by = "";
		snprintf(c.detail, sizeof(c.detail), "first state written by pms of %s", s->platform);
		write_start(s, PMS_PLATFORM, idx, &c, NULL, NULL);
		return;
	}
	if (pms_platform_decide(&p->st, &p->w, mono(), &c))
		write_start(s, PMS_PLATFORM, idx, &c, NULL, NULL);
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
	pms_room_health_set(&r->h, healthy, why, mono());
	decide_room(r);
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
	if (pms_verdict_feed(&k->v, ok, mono())) {
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

/* The MCU group check of room r from what rms told: fails when the room has
 * MCUs and none of them is alive. */
static void mcu_evaluate(struct room *r)
{
	struct pms *s = r->s;
	int64_t now = mono();
	size_t it = 0, known = 0, alive = 0;
	const char *key;
	void *val;
	char d[160];

	if (!r->mcus)
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

static struct room *own_room(struct pms *s, const char *id)
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
	m->listed_ms = mono();
}

static void on_inventory(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct pms *s = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;
	json_t *mcus, *x;
	size_t i;

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

static void poll_inventory(void *arg)
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

static void on_rms_ntf(struct cdr_mq_delivery *dl, void *arg)
{
	struct pms *s = arg;
	struct cdr_msg *m = NULL;
	struct cdr_msg_error err;
	struct room *r;

	if (s->started && cdr_msg_decode(dl->body, dl->len, 0, &m, &err) == 0 &&
	    !strcmp(cdr_msg_type(m), "rms_all_mcu_ntf") && !strcmp(cdr_msg_str(m, "platform", ""), s->platform) &&
	    (r = own_room(s, cdr_msg_str(m, "room", "")))) {
		mcu_seen_set(s, cdr_msg_str(m, "mcu", ""), r->id, strcmp(cdr_msg_str(m, "state", "down"), "down") != 0);
		mcu_evaluate(r);
	}
	cdr_msg_free(m);
	cdr_mq_ack(dl);
}

/* ---- peers: the pms of the platforms we back up ---- */

static void on_peer_children(const struct cdr_zk_result *r, void *arg)
{
	struct plat *p = arg;
	struct pms *s = p->s;
	int n;

	p->polling = false;
	if (r->status == -ECANCELED || !s->started)
		return;
	if (r->status < 0 && r->status != -ENOENT)
		return; /* no session: judged when one is back */
	n = r->status == -ENOENT ? 0 : (int)r->nchildren;
	if (n > 0 && !p->w.peer_live) {
		cdr_notice("platform %s: its pms is live (%d instance%s)", p->id, n, n == 1 ? "" : "s");
		p->w.peer_seen = true;
	} else if (n == 0 && p->w.peer_live) {
		cdr_warn("platform %s: no pms instance is live; declared down in %" PRIu64 " ms unless one returns",
			 p->id, s->conf.peer_grace_ms);
		p->w.peer_lost_ms = mono();
	}
	p->w.peer_live = n > 0;
	p->nlive = n;
	decide_plat(p);
}

static void poll_peers(struct pms *s)
{
	char path[160];

	for (size_t i = 0; i < s->nplats; i++) {
		struct plat *p = &s->plats[i];

		if (!p->owned || p->polling)
			continue;
		snprintf(path, sizeof(path), "/live/%s/pms", p->id);
		if (cdr_zk_children(cdr_daemon_zk(s->d), path, NULL, NULL, on_peer_children, p) == 0)
			p->polling = true;
	}
}

static void on_tick(void *arg)
{
	struct pms *s = arg;

	if (!s->started)
		return;
	if (mono() - s->last_peer_poll >= (int64_t)s->conf.peer_poll_ms) {
		s->last_peer_poll = mono();
		poll_peers(s);
	}
	for (size_t i = 0; i < s->nrooms; i++)
		decide_room(&s->rooms[i]); /* preempt returns, writes that failed */
	for (size_t i = 0; i < s->nplats; i++)
		decide_plat(&s->plats[i]);
}

/* ---- requests ---- */

static void answer(struct pms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack, json_t *body)
{
	cdr_bus_answer(&s->bus, dl, m, ack, body, false);
}

static void on_state_req(struct pms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m)
{
	const char *only = cdr_msg_str(m, "platform", NULL);
	json_t *jp = json_array(), *jr = json_array();
	int64_t top = 0;

	if (only && !cdr_topology_platform(s->topo, only)) {
		char detail[160];

		json_decref(jp);
		json_decref(jr);
		snprintf(detail, sizeof(detail), "platform %s is not in the topology", only);
		answer(s, dl, m, false, cdr_bus_nack_body("unknown_platform", detail));
		return;
	}
	for (size_t i = 0; i < s->nplats; i++) {
		if (only && strcmp(s->plats[i].id, only))
			continue;
		json_array_append_new(jp, plat_json(&s->plats[i], true));
		top = s->plats[i].st.epoch > top ? s->plats[i].st.epoch : top;
	}
	for (size_t i = 0; i < s->nrooms; i++) {
		if (only && strcmp(s->rooms[i].platform, only))
			continue;
		json_array_append_new(jr, room_json(&s->rooms[i], true));
		top = s->rooms[i].st.epoch > top ? s->rooms[i].st.epoch : top;
	}
	answer(s, dl, m, true,
	       json_pack("{s:s, s:o, s:o, s:I}", "platform", s->platform, "platforms", jp, "rooms", jr, "epoch",
			 (json_int_t)top));
}

/* Takes m on every path. */
static void on_switch_req(struct pms *s, struct cdr_mq_delivery *dl, struct cdr_msg *m)
{
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
			answer(s, dl, m, false, cdr_bus_nack_body("unknown_room", detail));
			goto out;
		}
		if (!s->rooms[idx].own) {
			snprintf(detail, sizeof(detail), "room %s belongs to platform %s: ask the pms of %s", id,
				 tr->platform, tr->platform);
			answer(s, dl, m, false, cdr_bus_nack_body("not_owner", detail));
			goto out;
		}
	} else {
		const struct cdr_platform *tp = cdr_topology_platform(s->topo, id);

		for (idx = 0; idx < s->nplats && strcmp(s->plats[idx].id, id); idx++)
			;
		if (!tp || idx == s->nplats) {
			snprintf(detail, sizeof(detail), "platform %s is not in the topology", id);
			answer(s, dl, m, false, cdr_bus_nack_body("unknown_platform", detail));
			goto out;
		}
		if (!s->plats[idx].owned) {
			snprintf(detail, sizeof(detail),
				 "platform %s is switched by the pms of its backup platform %s, not by %s's", id,
				 tp->backup_platform ? tp->backup_platform : "(none)", s->platform);
			answer(s, dl, m, false, cdr_bus_nack_body("not_owner", detail));
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
		p->w.main_room = room_state_of(s, p->main_room);
		ok = pms_platform_switch(&p->st, &p->w, on, force, mono(), by, why, &c, &changed, &reason, err,
					 sizeof(err));
	}
	cdr_notice("%s switch of %s %s %s by %s%s%s: %s", on ? "DR on" : "DR off", target, id, force ? "(forced)" : "",
		   by, *why ? ": " : "", why,
		   !ok	     ? err
		   : changed ? "switching"
			     : "already so");
	if (!ok) {
		snprintf(detail, sizeof(detail), "%s %s: %s", target, id, err);
		answer(s, dl, m, false, cdr_bus_nack_body(reason, detail));
		goto out;
	}
	if (!changed) {
		bool *writing;
		const struct pms_state *st = target_state(s, t, idx, &writing);

		answer(s, dl, m, true,
		       json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I}", "target", target, "moid", id, "state",
				 pms_state_name(t, st->bad), "manual", st->manual, "changed", false, "since",
				 (json_int_t)st->since, "epoch", (json_int_t)st->epoch));
		goto out;
	}
	if ((r = write_start(s, t, idx, &c, dl, m)) == 0)
		return; /* answered when written */
	snprintf(detail, sizeof(detail), "%s %s: %s", target, id,
		 r == -EBUSY ? "another change of it is being written; ask again" : strerror(-r));
	answer(s, dl, m, false, cdr_bus_nack_body(r == -EBUSY ? "conflict" : "internal_error", detail));
	goto out;
not_ready:
	snprintf(detail, sizeof(detail), "%s %s: its state has not been read from ZooKeeper yet", target, id);
	answer(s, dl, m, false, cdr_bus_nack_body("not_active", detail));
out:
	cdr_msg_free(m);
}

static void on_req(struct cdr_mq_delivery *dl, void *arg)
{
	struct pms *s = arg;
	struct cdr_msg_error err;
	struct cdr_msg *m = NULL;
	const char *type;

	if (!s->active) {
		cdr_mq_nack(dl, true); /* for the active instance */
		return;
	}
	if (cdr_msg_decode(dl->body, dl->len, 0, &m, &err) < 0) {
		cdr_bus_refuse(&s->bus, dl, CDR_MQ_PMS_REQ_Q, &err, "pms_any_request_nack");
		return;
	}
	type = cdr_msg_type(m);
	if (!s->started) {
		answer(s, dl, m, false,
		       cdr_bus_nack_body("not_active", "pms has not read the topology and the state yet"));
	} else if (!strcmp(type, "any_pms_state_req")) {
		on_state_req(s, dl, m);
	} else if (!strcmp(type, "ctl_pms_switch_req")) {
		on_switch_req(s, dl, m);
		return; /* m taken */
	} else {
		char detail[200];

		snprintf(detail, sizeof(detail), "%s is not a message pms handles", type);
		cdr_warn("%s: %s (from %s)", CDR_MQ_PMS_REQ_Q, detail, cdr_msg_src(m));
		if (dl->reply_to && strstr(type, "_req"))
			answer(s, dl, m, false, cdr_bus_nack_body("bad_request", detail));
		else
			cdr_mq_nack(dl, false);
	}
	cdr_msg_free(m);
}

/* ---- life ---- */

static void bus_attach(struct pms *s)
{
	struct cdr_mq *mq = cdr_daemon_mq(s->d);
	int r;

	if (!mq || !s->active)
		return;
	if (s->subscribed != mq) {
		if ((r = cdr_mq_subscribe(mq, CDR_MQ_RMS_NTF_EX, "", on_rms_ntf, s)) < 0)
			cdr_err("cannot subscribe to %s: %s", CDR_MQ_RMS_NTF_EX, strerror(-r));
		else
			s->subscribed = mq;
	}
	if ((r = cdr_mq_consume(mq, CDR_MQ_PMS_REQ_Q, on_req, s)) < 0 && r != -EALREADY)
		cdr_err("cannot consume %s: %s", CDR_MQ_PMS_REQ_Q, strerror(-r));
}

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
		pms_verdict_init(&k->v, (int)rc->mcu_fall, (int)rc->mcu_rise, mono());
		return 0;
	}
	pms_verdict_init(&k->v, (int)rc->fall, (int)rc->rise, mono());
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

static void free_checks(struct room *r)
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

static int build_checks(struct room *r)
{
	const struct pms_room_conf *rc = room_conf(r->s, r->id);
	char buf[1024], *save = NULL, *tok;
	int err;

	pms_room_health_init(&r->h, rc->preempt, (int64_t)rc->preempt_delay_ms, mono());
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

static void stop(struct pms *s)
{
	size_t it = 0;
	const char *key;
	void *val;

	if (!s->started)
		return;
	s->started = false;
	s->gen++;
	for (size_t i = 0; i < s->nrooms; i++) {
		s->rooms[i].watch = cdr_zk_data_watch_free(s->rooms[i].watch);
		free_checks(&s->rooms[i]);
	}
	for (size_t i = 0; i < s->nplats; i++)
		s->plats[i].watch = cdr_zk_data_watch_free(s->plats[i].watch);
	/* Peer polls in flight point into plats. */
	if (cdr_daemon_zk(s->d))
		for (size_t i = 0; i < s->nplats; i++)
			cdr_zk_cancel(cdr_daemon_zk(s->d), &s->plats[i]);
	free(s->rooms);
	free(s->plats);
	s->rooms = NULL;
	s->plats = NULL;
	s->nrooms = s->nplats = 0;
	while (cdr_hmap_next(s->mcus, &it, &key, &val)) {
		cdr_hmap_del_at(s->mcus, &it);
		free(val);
	}
	cdr_timer_stop(s->tick);
	cdr_timer_stop(s->mcu_timer);
}

static void start(struct pms *s)
{
	struct cdr_zk *zk = cdr_daemon_zk(s->d);
	size_t nr, np, nown = 0, nowned = 0;
	char path[200];

	if (s->started || !s->active || !s->topo || !zk)
		return;
	nr = cdr_topology_nrooms(s->topo);
	np = cdr_topology_nplatforms(s->topo);
	s->rooms = calloc(nr ? nr : 1, sizeof(*s->rooms));
	s->plats = calloc(np ? np : 1, sizeof(*s->plats));
	if (!s->rooms || !s->plats) {
		cdr_err("out of memory");
		free(s->rooms);
		free(s->plats);
		s->rooms = NULL;
		s->plats = NULL;
		return;
	}
	s->started = true;
	s->nrooms = nr;
	s->nplats = np;
	for (size_t i = 0; i < nr; i++) {
		const struct cdr_room *tr = cdr_topology_room_at(s->topo, i);
		struct room *r = &s->rooms[i];

		r->s = s;
		snprintf(r->id, sizeof(r->id), "%s", tr->id);
		snprintf(r->platform, sizeof(r->platform), "%s", tr->platform);
		r->own = !strcmp(tr->platform, s->platform);
		pms_room_health_init(&r->h, false, 0, mono());
		if (r->own) {
			nown++;
			if (build_checks(r) < 0)
				cdr_err("room %s: cannot set up its checks", r->id);
		}
	}
	for (size_t i = 0; i < s->nrconf; i++)
		if (!own_room(s, s->rnames[i]))
			cdr_warn("[room %s] in the config is not a room of platform %s in the topology: ignored",
				 s->rnames[i], s->platform);
	for (size_t i = 0; i < np; i++) {
		const struct cdr_platform *tp = cdr_topology_platform_at(s->topo, i);
		struct plat *p = &s->plats[i];

		p->s = s;
		snprintf(p->id, sizeof(p->id), "%s", tp->id);
		snprintf(p->backup, sizeof(p->backup), "%s", tp->backup_platform ? tp->backup_platform : "");
		snprintf(p->main_room, sizeof(p->main_room), "%s", tp->main_room);
		p->owned =
			tp->backup_platform && !strcmp(tp->backup_platform, s->platform) && strcmp(tp->id, s->platform);
		/* Until the first look-up, its pms counts as live: we do not
		 * declare a platform down for what we have not looked at yet. */
		p->w.peer_live = true;
		p->w.peer_lost_ms = mono();
		nowned += p->owned;
	}
	/* Watches last: their first answers may decide at once. */
	for (size_t i = 0; i < nr; i++) {
		state_path(PMS_ROOM, s->rooms[i].platform, s->rooms[i].id, path, sizeof(path));
		if (cdr_zk_data_watch_new(zk, path, on_room_node, &s->rooms[i], &s->rooms[i].watch) < 0)
			cdr_err("cannot watch %s", path);
	}
	for (size_t i = 0; i < np; i++) {
		state_path(PMS_PLATFORM, NULL, s->plats[i].id, path, sizeof(path));
		if (cdr_zk_data_watch_new(zk, path, on_plat_node, &s->plats[i], &s->plats[i].watch) < 0)
			cdr_err("cannot watch %s", path);
	}
	cdr_notice("active, epoch %" PRId64 ": checking %zu rooms of %s, deciding for %zu platform%s it backs up, "
		   "mirroring %zu rooms and %zu platforms",
		   s->leader_epoch, nown, s->platform, nowned, nowned == 1 ? "" : "s", nr, np);
	s->last_peer_poll = 0;
	cdr_timer_start(s->tick, TICK_MS, true);
	cdr_timer_start(s->mcu_timer, s->conf.mcu_poll_ms, true);
	poll_inventory(s);
	bus_attach(s);
}

static void on_topology(struct cdr_topology *t, void *arg)
{
	struct pms *s = arg;

	if (!s->topo) {
		cdr_info("topology: %zu platforms, %zu rooms", cdr_topology_nplatforms(t), cdr_topology_nrooms(t));
		s->topo = t;
		start(s);
	} else if (cdr_topology_nrooms(t) != cdr_topology_nrooms(s->topo) ||
		   cdr_topology_nplatforms(t) != cdr_topology_nplatforms(s->topo)) {
		/* Rooms and platforms are set at start: follow by starting over. */
		cdr_notice("topology changed (%zu platforms, %zu rooms): starting over", cdr_topology_nplatforms(t),
			   cdr_topology_nrooms(t));
		stop(s);
		cdr_topology_free(s->topo);
		s->topo = t;
		start(s);
	} else {
		/* Same sizes: backup lists may have changed; answers use the new one. */
		cdr_topology_free(s->topo);
		s->topo = t;
	}
}

static void copy_scalars(struct pms_conf *dst, const struct pms_conf *src)
{
	dst->peer_grace_ms = src->peer_grace_ms;
	dst->peer_poll_ms = src->peer_poll_ms;
	dst->follow_main_room = src->follow_main_room;
	dst->mcu_poll_ms = src->mcu_poll_ms;
	dst->mcu_absent_ms = src->mcu_absent_ms;
	dst->rms_timeout_ms = src->rms_timeout_ms;
	dst->topology_refresh_ms = src->topology_refresh_ms;
}

static int pms_init(struct cdr_daemon *d, void **server)
{
	const struct pms_conf *cf = cdr_daemon_conf(d);
	struct pms *s = calloc(1, sizeof(*s));
	struct cdr_loop *loop = cdr_daemon_loop(d);

	if (!s)
		return -ENOMEM;
	s->d = d;
	copy_scalars(&s->conf, cf);
	snprintf(s->platform, sizeof(s->platform), "%s", cf->base.platform);
	cdr_bus_init(&s->bus, d, "pms", cf->base.platform);
	if (copy_rconf(s, &cf->rooms) < 0 || !(s->mcus = cdr_hmap_new()) ||
	    cdr_topo_follow_new(d, &s->conf.topology_refresh_ms, on_topology, s, &s->follow) < 0 ||
	    cdr_timer_new(loop, on_tick, s, &s->tick) < 0 ||
	    cdr_timer_new(loop, poll_inventory, s, &s->mcu_timer) < 0) {
		free_rconf(s);
		cdr_hmap_free(s->mcus);
		cdr_topo_follow_free(s->follow);
		cdr_timer_free(s->tick);
		free(s);
		return -ENOMEM;
	}
	*server = s;
	return 0;
}

static void pms_on_link(struct cdr_daemon *d, void *server, const char *link, bool up)
{
	struct pms *s = server;

	if (!strcmp(link, "amqp") && !up && !cdr_daemon_mq(d))
		s->subscribed = NULL; /* the broker moved: a new handle follows */
	if (!up)
		return;
	if (!strcmp(link, "zookeeper") && !s->topo)
		cdr_topo_follow_fetch(s->follow);
	if (!strcmp(link, "amqp"))
		bus_attach(s);
}

static void pms_on_role(struct cdr_daemon *d, void *server, bool active, int64_t epoch)
{
	struct pms *s = server;
	struct cdr_mq *mq = cdr_daemon_mq(d);

	s->active = active;
	s->leader_epoch = epoch;
	if (active) {
		start(s);
		bus_attach(s);
		return;
	}
	stop(s);
	if (mq)
		cdr_mq_cancel(mq, CDR_MQ_PMS_REQ_Q);
}

static void pms_reload(struct cdr_daemon *d, void *server, const void *conf)
{
	struct pms *s = server;
	const struct pms_conf *cf = conf;

	(void)d;
	copy_scalars(&s->conf, cf);
	if (copy_rconf(s, &cf->rooms) < 0) {
		cdr_err("reload: out of memory copying the room checks");
		return;
	}
	if (s->started) {
		/* Checks start over with the new settings; states stay. */
		for (size_t i = 0; i < s->nrooms; i++) {
			if (!s->rooms[i].own)
				continue;
			free_checks(&s->rooms[i]);
			if (build_checks(&s->rooms[i]) < 0)
				cdr_err("room %s: cannot set up its checks", s->rooms[i].id);
		}
		cdr_timer_start(s->mcu_timer, s->conf.mcu_poll_ms, true);
	}
	cdr_info("pms settings applied: peer grace %" PRIu64 " ms, %zu room sections", s->conf.peer_grace_ms,
		 s->nrconf);
}

static void pms_free(void *server)
{
	struct pms *s = server;

	if (!s)
		return;
	stop(s);
	cdr_hmap_free(s->mcus);
	cdr_topo_follow_free(s->follow);
	cdr_timer_free(s->tick);
	cdr_timer_free(s->mcu_timer);
	cdr_topology_free(s->topo);
	free_rconf(s);
	free(s);
}

const struct cdr_daemon_ops pms_daemon_ops = {
	.name = "pms",
	.summary = "confdr platform management service: room/platform health, manual DR switches, state broadcasts.",
	.keys = pms_conf_keys,
	.conf_size = sizeof(struct pms_conf),
	.uses_redis = false,
	.uses_mysql = false,
	.init = pms_init,
	.on_link = pms_on_link,
	.on_role = pms_on_role,
	.reload = pms_reload,
	.free = pms_free,
};
