/* confdr-css: the conference scheduling service (docs/css.md). */
#ifndef CSS_CSS_H
#define CSS_CSS_H

#include <confdr/conf.h>
#include <confdr/daemon.h>

#include <stdint.h>

struct css_conf {
	struct cdr_daemon_conf base;
	uint64_t create_timeout_ms;
	uint64_t end_timeout_ms;
	uint64_t rms_timeout_ms;
	uint64_t rms_patience_ms;
	uint64_t pms_silence_ms;
	uint64_t pms_retry_ms;
	uint64_t expiry_tick_ms;
	uint64_t answer_ttl_ms;
	uint64_t resume_window_ms;
	uint64_t list_grace_ms;
	uint64_t replica_wait_ms;
	uint64_t template_refresh_ms;
	uint64_t topology_refresh_ms;
	int64_t max_confs_platform;
	int64_t max_duration_min;
	int64_t db_batch;
	uint64_t upu_batch_ms;
	uint64_t mcu_audit_ms;
	uint64_t mcu_absent_ms;
	int64_t restore_window;
	int64_t restore_attempts;
	uint64_t restore_retry_ms;
	uint64_t failback_wait_ms;
};

extern const struct cdr_conf_key css_conf_keys[];
extern const struct cdr_daemon_ops css_daemon_ops;

#endif
