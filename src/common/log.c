/* Logging to stderr, one write(2) per line so lines from threads never mix. */
#include <confdr/log.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;
static char who[96] = "confdr";
static _Atomic int min_level = CDR_LOG_INFO;
static _Atomic bool with_time = true;
static _Atomic int journald = -1;

static const char *const names[] = { "DEBUG", "INFO", "NOTICE", "WARN", "ERROR" };
static const char *const parse_names[] = { "debug", "info", "notice", "warn", "error" };
/* syslog priorities: debug 7, info 6, notice 5, warning 4, err 3. */
static const int prio[] = { 7, 6, 5, 4, 3 };

void cdr_log_setup(const char *daemon, const char *platform, enum cdr_log_level min, bool timestamps)
{
	pthread_mutex_lock(&setup_lock);
	if (platform && *platform)
		snprintf(who, sizeof(who), "%s[%s]", daemon ? daemon : "confdr", platform);
	else
		snprintf(who, sizeof(who), "%s", daemon ? daemon : "confdr");
	pthread_mutex_unlock(&setup_lock);
	atomic_store(&min_level, (int)min);
	atomic_store(&with_time, timestamps);
}

int cdr_log_level_parse(const char *s, enum cdr_log_level *ret)
{
	for (size_t i = 0; i < sizeof(parse_names) / sizeof(parse_names[0]); i++) {
		if (strcasecmp(s, parse_names[i]) == 0) {
			*ret = (enum cdr_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*ret = CDR_LOG_WARN;
		return 0;
	}
	return -22; /* -EINVAL without dragging errno.h into callers' view */
}

const char *cdr_log_level_name(enum cdr_log_level level)
{
	return (unsigned)level < 5 ? parse_names[level] : "?";
}

bool cdr_log_enabled(enum cdr_log_level level)
{
	return (int)level >= atomic_load(&min_level);
}

size_t cdr_text_control(const char *str, size_t len, unsigned *cp)
{
	const unsigned char *s = (const unsigned char *)str;

	if (len >= 1 && (s[0] < 0x20 || s[0] == 0x7f)) {
		*cp = s[0];
		return 1;
	}
	if (len >= 2 && s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
		*cp = s[1];
		return 2;
	}
	if (len >= 3 && s[0] == 0xe2 && s[1] == 0x80 &&
	    (s[2] == 0x8e || s[2] == 0x8f || (s[2] >= 0xaa && s[2] <= 0xae))) {
		*cp = 0x2000u | (s[2] - 0x80u);
		return 3;
	}
	if (len >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9) {
		*cp = 0x2040u | (s[2] - 0x80u);
		return 3;
	}
	return 0;
}

/* Copies the message m (len bytes) into out (room bytes), escaped: a
 * newline or carriage return becomes a space (one event, one line), every
 * other control byte \xNN, a Unicode control \uNNNN (an ESC sequence or a
 * right-to-left override from a forged message must not act on the
 * operator's terminal or rearrange the line). Returns the bytes written;
 * *used: the bytes of m consumed (less than len when out was too short). */
static size_t escape_into(char *out, size_t room, const char *m, size_t len, size_t *used)
{
	const unsigned char *s = (const unsigned char *)m;
	size_t o = 0, i;

	for (i = 0; i < len && o < room; i++) {
		unsigned cp;
		size_t k;

		if (s[i] == '\n' || s[i] == '\r') {
			out[o++] = ' ';
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			if (room - o < 4)
				break;
			o += (size_t)snprintf(out + o, room - o + 1, "\\x%02x", s[i]);
		} else if (s[i] >= 0xc2 && (k = cdr_text_control(m + i, len - i, &cp))) {
			if (room - o < 6)
				break;
			o += (size_t)snprintf(out + o, room - o + 1, "\\u%04x", cp);
			i += k - 1;
		} else {
			out[o++] = (char)s[i];
		}
	}
	*used = i;
	return o;
}

void cdr_logv(enum cdr_log_level level, const char *fmt, va_list ap)
{
	char line[2048], msg[2048];
	size_t n = 0;
	bool cut = false;
	int j;

	if ((unsigned)level > CDR_LOG_ERR)
		level = CDR_LOG_ERR;
	if (!cdr_log_enabled(level))
		return;
	j = atomic_load(&journald);
	if (j < 0) {
		j = getenv("JOURNAL_STREAM") != NULL;
		atomic_store(&journald, j);
	}
	if (j)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "<%d>", prio[level]);
	if (atomic_load(&with_time) && !j) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n += strftime(line + n, sizeof(line) - n, "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ ", ts.tv_nsec / 1000000);
	}
	pthread_mutex_lock(&setup_lock);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "%s %s ", names[level], who);
	pthread_mutex_unlock(&setup_lock);
	if (n < sizeof(line) - 1) {
		int m = vsnprintf(msg, sizeof(msg), fmt, ap);
		size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
		size_t used;

		n += escape_into(line + n, sizeof(line) - 1 - n, msg, mlen, &used);
		cut = m >= 0 && ((size_t)m >= sizeof(msg) || used < mlen);
	}
	if (n >= sizeof(line) - 1 || cut) {
		if (n > sizeof(line) - 1)
			n = sizeof(line) - 1;
		memcpy(line + n - 3, "...", 3);
	}
	line[n++] = '\n';
	/* Best effort: nowhere to report a failed log write. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void cdr_log(enum cdr_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cdr_logv(level, fmt, ap);
	va_end(ap);
}
