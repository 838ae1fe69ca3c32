/* Failpoints (confdr/failpoint.h): parsed once from CONFDR_FAILPOINTS; each
 * armed name counts its passes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <confdr/failpoint.h>
#include <confdr/log.h>

#define FP_MAX	    8
#define FP_NAME_MAX 48

static struct fp {
	char name[FP_NAME_MAX];
	long at;
	atomic_long passes;
} fps[FP_MAX];
static size_t nfps;
static atomic_bool armed;
static int load_result;
static const char *marks; /* CONFDR_FAILPOINT_MARKS: a failpoint fires once per directory */
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The mark of name in marks, in buf; false when it does not fit. */
static bool mark_path(const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", marks, name);

	return n > 0 && (size_t)n < len;
}

/* Parses spec into fps; the number of entries, or -EINVAL. */
static int parse(const char *spec)
{
	const char *p = spec;
	size_t n = 0;

	while (*p) {
		const char *eq = strchr(p, '='), *end = strchr(p, ',');
		char *num_end;
		long at;

		if (!end)
			end = p + strlen(p);
		if (!eq || eq > end || eq == p || (size_t)(eq - p) >= FP_NAME_MAX || n == FP_MAX)
			return -EINVAL;
		errno = 0;
		at = strtol(eq + 1, &num_end, 10);
		if (errno || num_end != end || eq + 1 == end || at < 1 || at > 1000000000)
			return -EINVAL;
		memcpy(fps[n].name, p, (size_t)(eq - p));
		fps[n].name[eq - p] = '\0';
		fps[n].at = at;
		n++;
		if (*end && !end[1])
			return -EINVAL; /* a trailing comma: something left out */
		p = *end ? end + 1 : end;
	}
	return (int)n;
}

static void load(void)
{
	const char *spec = getenv("CONFDR_FAILPOINTS");
	int n;

	if (!spec || !*spec)
		return;
	n = parse(spec);
	if (n <= 0) {
		cdr_err("CONFDR_FAILPOINTS=%s is not NAME=N[,NAME=N...]: no failpoint armed", spec);
		load_result = -EINVAL;
		return;
	}
	nfps = (size_t)n;
	marks = getenv("CONFDR_FAILPOINT_MARKS");
	if (marks && !*marks)
		marks = NULL;
	for (size_t i = 0; i < nfps; i++) {
		char path[PATH_MAX];

		if (marks && mark_path(fps[i].name, path, sizeof(path)) && access(path, F_OK) == 0) {
			cdr_notice("failpoint %s not armed: it fired already (%s)", fps[i].name, path);
			fps[i].at = 0; /* never: passes start at 1 */
			continue;
		}
		cdr_warn("failpoint %s armed: the process kills itself at pass %ld", fps[i].name, fps[i].at);
	}
	atomic_store(&armed, true);
}

int cdr_failpoints_init(void)
{
	pthread_once(&once, load);
	return load_result;
}

void cdr_failpoint(const char *name)
{
	pthread_once(&once, load);
	if (!atomic_load_explicit(&armed, memory_order_relaxed))
		return;
	for (size_t i = 0; i < nfps; i++) {
		if (strcmp(fps[i].name, name))
			continue;
		if (atomic_fetch_add(&fps[i].passes, 1) + 1 == fps[i].at) {
			char path[PATH_MAX];
			int fd;

			/* the mark first: the process started again does not
			 * fire again (the supervisor keeps its environment) */
			if (marks && mark_path(name, path, sizeof(path)) &&
			    (fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) >= 0)
				close(fd);
			cdr_err("failpoint %s: pass %ld, the process kills itself (CONFDR_FAILPOINTS)", name,
				fps[i].at);
			kill(getpid(), SIGKILL);
		}
	}
}
