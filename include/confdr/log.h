/* Logging: one line per event, on stderr (journald under systemd).
 *
 * A line reads
 *   2026-11-23T05:53:00.123Z INFO css[p1] conference created e164=0512000123 mcu=mcu-p1-r1-01
 * The timestamp is left out when timestamps are off (journald adds its own),
 * and under journald (JOURNAL_STREAM set) each line starts with a syslog
 * priority "<N>" so journalctl shows the level.
 *
 * The shared library logs at debug level at most; it returns errors with text
 * and the daemon logs once where it decides what to do. */
#ifndef CONFDR_LOG_H
#define CONFDR_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum cdr_log_level {
	CDR_LOG_DEBUG,
	CDR_LOG_INFO,
	CDR_LOG_NOTICE,
	CDR_LOG_WARN,
	CDR_LOG_ERR,
};

/* Sets who is logging (copied; "css", "p1"), the lowest level printed and
 * whether lines carry a timestamp. Callable again (on SIGHUP). Thread-safe
 * against concurrent cdr_log() calls. */
void cdr_log_setup(const char *daemon, const char *platform, enum cdr_log_level min, bool timestamps);

/* Parses "debug|info|notice|warn|error" into *ret; -EINVAL if unknown. */
int cdr_log_level_parse(const char *s, enum cdr_log_level *ret);
const char *cdr_log_level_name(enum cdr_log_level level);

bool cdr_log_enabled(enum cdr_log_level level);

/* The length of the control character at s (len bytes of UTF-8), 0 if s
 * does not start with one: a C0 control or DEL (1 byte), a C1 control
 * (U+0080..U+009F) or a bidirectional mark or override (U+200E, U+200F,
 * U+202A..U+202E, U+2066..U+2069): what a terminal or viewer would act on
 * rather than show. *cp: its code point. Logs escape them (cdr_log);
 * message text fields refuse them (confdr/msg.h, CDR_F_TEXT). */
size_t cdr_text_control(const char *s, size_t len, unsigned *cp);

/* Writes one line; a trailing newline in fmt is not needed. Safe from any
 * thread (one write(2) per line). */
void cdr_log(enum cdr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cdr_logv(enum cdr_log_level level, const char *fmt, va_list ap);

#define cdr_debug(...)                                                                                                 \
	do {                                                                                                           \
		if (cdr_log_enabled(CDR_LOG_DEBUG))                                                                    \
			cdr_log(CDR_LOG_DEBUG, __VA_ARGS__);                                                           \
	} while (0)
#define cdr_info(...)	cdr_log(CDR_LOG_INFO, __VA_ARGS__)
#define cdr_notice(...) cdr_log(CDR_LOG_NOTICE, __VA_ARGS__)
#define cdr_warn(...)	cdr_log(CDR_LOG_WARN, __VA_ARGS__)
#define cdr_err(...)	cdr_log(CDR_LOG_ERR, __VA_ARGS__)

#endif
