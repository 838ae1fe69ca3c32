/* confdr-rms: the resource management service (docs/rms.md). */
#ifndef CONFDR_RMS_H
#define CONFDR_RMS_H

#include <confdr/daemon.h>

#include <stdint.h>

struct rms_conf {
	struct cdr_daemon_conf base; /* first: the common keys */
	uint64_t heartbeat_ms;
	int64_t misses;
	int64_t rise;
	uint64_t reservation_ms;
	uint64_t return_grace_ms;
	int64_t default_ports;
	int64_t domain_max_confs;
	uint64_t topology_refresh_ms;
	int64_t reply_cache;
};

extern const struct cdr_conf_key rms_conf_keys[];
extern const struct cdr_daemon_ops rms_daemon_ops;

#endif
