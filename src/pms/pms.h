/* confdr-pms: the platform management service (docs/pms.md). */
#ifndef CONFDR_PMS_H
#define CONFDR_PMS_H

#include <confdr/conf.h>
#include <confdr/daemon.h>

#include <stdbool.h>
#include <stdint.h>

/* The checks of one room: "[room NAME]" in pms.conf. */
struct pms_room_conf {
	char *tcp; /* "name=ip:port, name=ip:port" */
	uint64_t connect_timeout_ms;
	uint64_t interval_ms;
	int64_t fall, rise;
	bool mcus;
	int64_t mcu_fall, mcu_rise;
	char *command;
	uint64_t command_timeout_ms;
	bool preempt;
	uint64_t preempt_delay_ms;
};

struct pms_conf {
	struct cdr_daemon_conf base; /* first: the common keys */
	uint64_t beat_interval_ms;
	uint64_t beat_session_ms;
	int64_t beat_misses;
	uint64_t peer_grace_ms;
	uint64_t peer_poll_ms;
	bool follow_main_room;
	uint64_t mcu_poll_ms;
	uint64_t mcu_absent_ms;
	uint64_t rms_timeout_ms;
	uint64_t topology_refresh_ms;
	/* the web console (console.c, docs/console.md) */
	char *console_listen;	     /* "ip:port" on loopback; "": off */
	char *console_user;	     /* HTTP Basic user and the broker user the console acts as */
	char *console_password_file; /* that user's password (made absolute at load) */
	char *console_dir;	     /* the static files; "": the installed or the source tree's */
	struct cdr_conf_group rooms; /* of struct pms_room_conf */
};

extern const struct cdr_conf_key pms_conf_keys[];
extern const struct cdr_daemon_ops pms_daemon_ops;

#endif
