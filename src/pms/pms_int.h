/* pms's private header: the state shared by its files, and what each file
 * offers the others. The files, one job each (docs/pms.md follows them):
 *   pms.c       the daemon's life: settings, role, links, topology, timers, consuming
 *   state.c     the ZooKeeper state: mirrored, decided, written with a new epoch
 *   checks.c    the checks of this platform's rooms (TCP, command, MCUs through
 *               rms)
 *   peers.c     the own beat and the pms of the platforms it backs up (their
 *               beats and live nodes)
 *   requests.c  the requests on pms.req.q: state queries, manual switches
 *   send.c      what pms sends: state broadcasts, alarms, answers
 * The pure logic lives in health.c (verdicts, decisions, epochs) and peer.c
 * (is a backed-up platform's pms alive), the probes in probe.c. */
#ifndef PMS_PMS_INT_H
#define PMS_PMS_INT_H

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

/* ---- state of the server ---- */

enum check_kind { CK_TCP, CK_MCU, CK_CMD };

struct room;
struct pms_console;

/* One check of an own room (checks.c). */
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

/* A room of the topology: its state (state.c); an own room's checks and
 * health (checks.c). */
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

/* A platform of the topology: its state (state.c); for a platform this pms
 * backs up, the watch on its pms (peers.c). */
struct plat {
	struct pms *s;
	char id[65], backup[65], main_room[65];
	bool owned; /* we are its backup platform: we decide its state */
	struct pms_state st;
	bool loaded, writing;
	struct cdr_zk_data_watch *watch;
	struct pms_platform_watch w;
	bool polling;		       /* a /live look-up is under way */
	bool reading;		       /* a read of its beat is under way */
	int64_t read_sent_ms;	       /* ... after the own write sent then */
	int64_t read_run_since;	       /* ... in the run of successes that began then */
	enum pms_peer_verdict verdict; /* as last logged */
	struct cdr_mq *mq;	       /* its broker, its pms heard there (peer_bus.c) */
	bool is_backup;		       /* it backs this platform up: heard for isolation */
};

/* An MCU of this platform as rms last listed it (checks.c). */
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
	char instance[160]; /* [daemon] instance: who beats (css tells the instances apart) */
	struct cdr_bus bus;
	struct cdr_topology *topo;
	struct cdr_timer *tick, *mcu_timer, *beat_timer;
	struct cdr_topo_follow *follow;

	bool active, started;
	int64_t leader_epoch;
	uint64_t gen; /* bumped at every stop: late callbacks of an earlier run are dropped */

	struct room *rooms;
	size_t nrooms;
	struct plat *plats;
	size_t nplats;
	int64_t last_peer_poll;

	/* the own beat (peers.c), written and the peers' read on a ZooKeeper
	 * session of its own (beat_session: short, so that a connection to a
	 * member that stopped answering is left within a beat limit) */
	struct cdr_zk *beat_zk;
	struct pms_quorum quorum;
	/* isolation (peer_bus.c): this platform cut off from the ZooKeeper
	 * majority and not heard by its backup platform's pms */
	struct plat *backup_plat;
	int64_t listen_since_ms;  /* listening to the backup's pms since (or since our own loop's last stall) */
	int64_t bus_beat_tick_ms; /* monotonic, the last bus beat (a longer gap: our own loop stood still) */
	int64_t backup_hears_ms;  /* when its beat last said it hears ours; -1: never */
	bool isolated;
	/* this platform's state as read right after a successful beat write
	 * (fresh: it tells the css whether it may act again after isolation) */
	bool own_reading, own_known, own_down;
	int64_t own_epoch, own_read_ms;
	bool beat_pending;
	int64_t beat_sent_ms;
	uint64_t beat_seq;

	struct cdr_hmap *mcus; /* id -> struct mcu_seen */
	int64_t amqp_up_ms;    /* when the broker connection last came up; 0: down */
	bool inventory_pending;
	bool rms_silent_logged;
	int64_t rms_epoch_seen; /* of the rms whose inventory came last (0: none yet) */
	struct pms_metrics *m;	/* metrics.c */

	struct pms_console *console; /* the web console; NULL when off */
};

/* ---- metrics.c ---- */
/* pms's families in cdr_daemon_metrics (docs/metrics.md); 0 or -errno. */
int pms_metrics_init(struct pms *s);
/* ops->metrics and ops->not_ready */
void pms_metrics_fill(struct cdr_daemon *d, void *server);
const char *pms_not_ready(struct cdr_daemon *d, void *server);
/* A refusal of request m with this NACK body (its reason). */
void pms_metric_nack(struct pms *s, const struct cdr_msg *m, const json_t *body);

/* The monotonic clock, in ms (checks, graces, preempt delays). */
/* ---- state.c ---- */

/* Watches every room's and platform's state node (at start). */
void pms_state_watch(struct pms *s);
/* Starts writing change c for target (t, idx); dl/m (taken) are answered at
 * the end. Returns 0, or -EBUSY when a write for it is under way. */
int pms_write_start(struct pms *s, enum pms_target t, size_t idx, const struct pms_change *c,
		    struct cdr_mq_delivery *dl, struct cdr_msg *m);
struct pms_state *pms_target_state(struct pms *s, enum pms_target t, size_t idx, bool **writing);
/* A room's state as read from ZooKeeper; NULL before it is read. */
const struct pms_state *pms_room_state_of(struct pms *s, const char *room);
/* Decides an own room or an owned platform now, and writes what changed. */
void pms_decide_room(struct room *r);
void pms_decide_plat(struct plat *p);

/* ---- checks.c ---- */

/* Sets up and starts an own room's checks from its [room] section (or the
 * defaults); pms_free_checks stops and frees them. */
int pms_build_checks(struct room *r);
void pms_free_checks(struct room *r);
/* A room of this platform; NULL for any other. */
struct room *pms_own_room(struct pms *s, const char *id);
/* Reads the MCU inventory from rms (a timer's callback; arg: the pms). */
void pms_poll_inventory(void *arg);
/* rms's MCU notices (rms.ntf.ex). */
void pms_on_rms_ntf(struct cdr_mq_delivery *dl, void *arg);

/* ---- peers.c ---- */

/* Beats over the bus (peer_bus.c): the own one on the own broker; the
 * broker of a platform this pms backs up connected and its pms heard. */
void pms_bus_beat(struct pms *s);
void pms_bus_peers_start(struct pms *s);
void pms_bus_peer_stop(struct plat *p);

/* The platform state in a /state/<platform>/platform node (state.c). */
int pms_plat_state_parse(const char *data, size_t len, struct pms_state *st);

/* The beat's own ZooKeeper session (peers.c); 0 or a negative errno. */
int pms_beat_zk_new(struct pms *s, const struct pms_conf *cf);

/* Writes the own beat, then reads the beats of the platforms this pms backs
 * up (a timer's callback, every beat_interval; arg: the pms). */
void pms_beat(void *arg);
/* Looks up the live pms of the platforms this pms backs up. */
void pms_poll_peers(struct pms *s);
/* Sets up (or, after a reload, updates) the watch on a backed-up platform's pms. */
void pms_peer_setup(struct plat *p);

/* ---- requests.c ---- */

/* The requests on pms.req.q. */
void pms_on_req(struct cdr_mq_delivery *dl, void *arg);

/* ---- send.c ---- */

/* A state as JSON: full for a state query, else as broadcast. */
json_t *pms_room_json(const struct room *r, bool full);
json_t *pms_plat_json(const struct plat *p, bool full);
/* A state on pms.ntf.ex. */
void pms_broadcast_room(struct room *r);
void pms_broadcast_plat(struct plat *p);
/* A change as an alarm line and on cdr.alarm.ex. */
void pms_alarm(struct pms *s, enum pms_target t, const char *id, const struct pms_state *st);
/* Answers request m (pms.req.q). */
void pms_answer(struct pms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack, json_t *body);

/* ---- console.c (its own header: console_int.h) ---- */

/* [pms] console_listen's check: empty, or a numeric loopback ip:port. */
const char *pms_console_check_listen(const char *v);
/* The console keys' files (at load and on SIGHUP): its password file read
 * with the checks of every password_file, paths made absolute. 0, or a
 * negative errno with err set. */
int pms_console_check_conf(struct pms_conf *cf, const char *conf_path, char *err, size_t errlen);
/* The console of cf (*ret stays NULL when console_listen is empty): no I/O
 * yet. 0 or a negative errno, logged. */
int pms_console_new(struct pms *s, const struct pms_conf *cf, struct pms_console **ret);
/* Opens it (the listener, the broker links) while pms acts; closes it. */
void pms_console_start(struct pms *s);
void pms_console_stop(struct pms *s);
/* SIGHUP: a new console from cf (its password and files read again),
 * keeping the alarms and the series; the old one stays when the new one
 * cannot be built (a negative errno, logged). */
int pms_console_reload(struct pms *s, const struct pms_conf *cf);
/* Every tick: a listener that could not bind tries again. */
void pms_console_tick(struct pms *s);
/* Accepts NULL; returns NULL. */
struct pms_console *pms_console_free(struct pms_console *c);
/* A room's or platform's state as pms sees it change (send.c): counted in
 * the console's series of room events. */
void pms_console_state_event(struct pms *s, enum pms_target t, const char *id, const struct pms_state *st);

#endif
