/* rms's inventory, private: the state its files share (inventory.h is the
 * API, docs/rms.md the prose). The files, one job each:
 *   inventory.c   the inventory of MCUs and VRS: its life, the rooms they are
 *                 in, registrations, liveness (heartbeats, loss, rise), drain,
 *                 reading
 *   allocation.c  load, the allocation policy, reservations and allocations
 * Pure logic, no I/O: time is given by the caller. */
#ifndef CONFDR_RMS_INVENTORY_INT_H
#define CONFDR_RMS_INVENTORY_INT_H

#include "inventory.h"

#include <confdr/hmap.h>
#include <confdr/topology.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/* A reservation or an allocation: allocation.c's. */
struct alloc;
TAILQ_HEAD(alloc_list, alloc);

/* The MCUs and VRS of a room, for allocation. */
struct room_idx {
	char *id;
	struct rms_mcu **mcus;
	size_t nmcus, mcus_cap;
	struct rms_vrs **vrs;
	size_t nvrs, vrs_cap;
};

struct rms_inv {
	char *platform;
	struct rms_policy policy;
	rms_event_fn fn;
	void *arg;
	const struct cdr_topology *topo;
	int64_t epoch;
	uint64_t next_resv;

	struct cdr_hmap *mcus;	 /* id -> struct rms_mcu */
	struct cdr_hmap *vrs;	 /* id -> struct rms_vrs */
	struct cdr_hmap *rooms;	 /* id -> struct room_idx */
	struct cdr_hmap *allocs; /* reservation id -> struct alloc */
	struct alloc_list reserved;
	size_t nreserved;
	bool blind;	     /* rms's own broker link is down: heartbeats cannot come */
	int64_t quiet_until; /* no MCU or VRS declared down for silence before this (rms_inv_quiet) */
};

/* ---- allocation.c ---- */
/* Frees every reservation and allocation (the inventory is cleared). */
void rms_inv_clear_allocs(struct rms_inv *inv);
/* Expires the reservations neither confirmed nor released by now. Returns
 * how many. */
size_t rms_inv_expire(struct rms_inv *inv, int64_t now);

#endif
