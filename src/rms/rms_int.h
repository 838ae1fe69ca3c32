/* rms's private header: the daemon's state shared by its files, and what
 * each file offers the others. The files, one job each (docs/rms.md):
 *   rms.c            the daemon's life: settings, start and stop, the role,
 *                    links, topology, the tick, deliveries of both queues
 *   registrations.c  rms.res.q: MCU and VRS registrations and heartbeats
 *   requests.c       rms.req.q: allocations, confirms and releases,
 *                    capability, drain, inventory
 *   answers.c        answers, kept by request id for redeliveries
 *   notices.c        what rms announces: restarts, MCU and VRS state, alarms
 * The policy lives in inventory.c and allocation.c (inventory.h): pure logic,
 * the clock passed in. */
#ifndef CONFDR_RMS_INT_H
#define CONFDR_RMS_INT_H

#include "rms.h"

#include "inventory.h"

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
#include <sys/queue.h>

/* An answer kept by request id (answers.c). */
struct cached {
	char *id, *txt;
	char fp[CDR_MSG_FP_LEN]; /* the request it answers (cdr_msg_fingerprint) */
	uint64_t at;
	TAILQ_ENTRY(cached) link;
};
TAILQ_HEAD(cached_list, cached);

struct rms {
	struct cdr_daemon *d;
	struct rms_conf conf; /* the rms keys (base not used) */
	char platform[128];
	struct cdr_bus bus;
	struct rms_inv *inv;
	struct cdr_topology *topo;
	struct cdr_timer *tick;
	struct cdr_topo_follow *follow;

	bool active;
	bool inv_blind; /* the broker link is down (rms_inv_blind) */
	int64_t epoch;
	bool announced; /* rms_all_restarted_ntf sent for this epoch */
	uint64_t last_reregister_ms;
	uint64_t seq_refused;	 /* heartbeats refused for a seq far ahead (registrations.c) */
	int64_t last_tick_ms;	 /* monotonic, of the last tick (0: none since the role) */
	int64_t active_since_ms; /* monotonic, when this rms became active */
	int64_t link_back_ms;	 /* monotonic, when the broker link last came back (0: never lost) */
	int64_t css_epoch;	 /* highest seen from css; -1: none yet */

	struct cdr_hmap *cache; /* request id -> struct cached */
	struct cached_list cached;

	uint64_t n_alloc_ok, n_alloc_failed;
	struct rms_metrics *m; /* metrics.c */
};

/* ---- metrics.c ---- */
/* rms's families in cdr_daemon_metrics (docs/metrics.md); 0 or -errno. */
int rms_metrics_init(struct rms *s);
/* ops->metrics and ops->not_ready */
void rms_metrics_fill(struct cdr_daemon *d, void *server);
const char *rms_not_ready(struct cdr_daemon *d, void *server);
/* A refusal of request m with this NACK body (its reason). */
void rms_metric_nack(struct rms *s, const struct cdr_msg *m, const json_t *body);

/* ---- answers.c ---- */
void rms_answer(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool ack, json_t *body, bool cache);
/* Newly elected, the MCUs still registering: a refusal for capacity waits. */
bool rms_warming(const struct rms *s);
void rms_cache_prune(struct rms *s, bool all);

/* ---- notices.c ---- */
void rms_announce_restart(struct rms *s, const char *why);
void rms_maybe_announce(struct rms *s);
void rms_on_inv_event(const struct rms_event *ev, void *arg);

/* ---- registrations.c ---- */
void rms_on_register_mcu(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m);
void rms_on_register_vrs(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m);
void rms_on_heartbeat(struct rms *s, const struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool vrs);

/* ---- requests.c ---- */
bool rms_fenced(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m);
void rms_on_alloc(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m);
void rms_on_bulkalloc(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m);
void rms_on_reservations(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m, bool confirm);
void rms_on_capability(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m);
void rms_on_drain(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m);
void rms_on_inventory(struct rms *s, struct cdr_mq_delivery *dl, const struct cdr_msg *m);

#endif
