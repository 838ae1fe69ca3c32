/* pms's web console, shared by its two files (docs/console.md):
 *   console.c       the HTTP side: the listener, Basic auth, the CSRF
 *                   check, the static files, the API's routes and JSON
 *   console_feed.c  what it shows and does: a broker link per platform as
 *                   the operators' user (rms's inventory, the alarms,
 *                   ctl_pms_switch_req as confdrctl sends it), the css
 *                   counters from ZooKeeper, the series of restores
 * The pure parts are console_core.c (console.h). */
#ifndef PMS_CONSOLE_INT_H
#define PMS_CONSOLE_INT_H

#include "console.h"
#include "pms_int.h"

#include <limits.h>

#define CONSOLE_ALARMS_KEPT 50

struct evhttp;
struct evhttp_bound_socket;

/* One platform as the console sees it, through its broker and ZooKeeper. */
struct console_link {
	struct pms_console *c;
	char platform[65];
	struct cdr_mq *mq; /* as the console's user (ops) */
	bool inv_pending;
	json_t *mcus; /* rms's last inventory (its "mcus"), or NULL */
	int64_t inv_ms;
	char inv_err[160];
	unsigned live_wait; /* /live listings and nodes still to read this round */
	json_t *daemons;    /* "daemon/instance" -> its liveness node (with "read_ms") */
	json_t *css;	    /* the active css's liveness node, or NULL */
	int64_t css_ms;
	char css_instance[160];
	int64_t restored, lost; /* its counters when last read */
};

struct pms_console {
	struct pms *s;
	char *listen, *user, *password;
	char dir[PATH_MAX];
	char csrf[33];
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	bool running;
	int64_t bind_tried_ms;
	uint64_t refused; /* requests answered 401 or 403 */
	/* console_feed.c */
	struct cdr_timer *timer;
	struct console_link *links;
	size_t nlinks;
	struct pms_series series;
	json_t *alarms;		/* newest first, up to CONSOLE_ALARMS_KEPT */
	struct cdr_hmap *seen;	/* room or platform id -> the last epoch counted (int64_t *) */
	int64_t last_wanted_ms; /* the last API request: the feed polls while someone looks */
};

/* console_feed.c */

int console_feed_new(struct pms_console *c);
void console_feed_start(struct pms_console *c);
void console_feed_stop(struct pms_console *c);
void console_feed_free(struct pms_console *c);
/* c takes old's alarms and series (a reload keeps what was seen). */
void console_feed_take_history(struct pms_console *c, struct pms_console *old);

/* GET /api/status's body (a new reference). */
json_t *console_status_json(struct pms_console *c);
/* GET /api/preview: what a switch of a room (room) or platform would move. NULL
 * with err set when id is unknown. */
json_t *console_preview_json(struct pms_console *c, bool room, const char *id, bool on, char *err, size_t errlen);

/* The answer of a switch: status 0 with pms's answer envelope (borrowed),
 * or a negative errno (no broker, no answer in time) with env NULL. */
typedef void (*console_switch_fn)(int status, json_t *env, const char *via, void *arg);

/* Sends ctl_pms_switch_req for room (room) or platform id to the pms that
 * decides it, as confdrctl room|platform switch does. 0 (fn runs once), or
 * -ENOENT (unknown id, err set), -ENOTCONN (no broker link), -ENOMEM. */
int console_switch(struct pms_console *c, bool room, const char *id, bool on, bool force, const char *operator,
		   const char * reason, console_switch_fn fn, void *arg, char *err, size_t errlen);

#endif
