/* sd_notify(3) by hand: include/confdr/sdnotify.h. */
#include <confdr/sdnotify.h>

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int cdr_sd_notify(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n, state_len;
	socklen_t salen;
	ssize_t sent;
	int fd, err = 0;

	if (!name || !*name)
		return 0;
	if (!state || !(state_len = strlen(state)))
		return -EINVAL;
	/* "/run/systemd/notify", or "@name": the abstract namespace, whose
	 * address starts with a NUL and is as long as the name, no more. */
	if (name[0] != '/' && name[0] != '@')
		return -EINVAL;
	n = strlen(name);
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sent = sendto(fd, state, state_len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
	if (sent < 0)
		err = -errno;
	else if ((size_t)sent != state_len)
		err = -EMSGSIZE;
	close(fd);
	return err < 0 ? err : 1;
}

/* Parses a whole decimal number; -EINVAL if s is anything else. */
static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int cdr_sd_watchdog_usec(uint64_t *usec)
{
	const char *u = getenv("WATCHDOG_USEC"), *p = getenv("WATCHDOG_PID");
	uint64_t v, pid;

	if (!u)
		return 0;
	if (parse_u64(u, &v) < 0)
		return -EINVAL;
	if (p) {
		if (parse_u64(p, &pid) < 0)
			return -EINVAL;
		if (pid != (uint64_t)getpid())
			return 0; /* meant for another process (our parent's) */
	}
	if (v == 0)
		return 0;
	*usec = v;
	return 1;
}
