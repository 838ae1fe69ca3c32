/* zk_expire HOSTS SESSION_ID PASSWORD TIMEOUT_MS: connects to ZooKeeper with
 * another client's session (id in hex, password as 32 hex digits) and closes
 * it, which expires that session at once: how test_zk forces an expiry. A
 * process of its own, because the ZooKeeper client library leaks a little
 * when the server refuses such a close (session moved), which a sanitizer
 * build would report against the test. Exit 0 when it connected with that
 * session and closed it, 1 when not (printed), 64 on bad usage. Bounded:
 * 10 s to connect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADED
#include <zookeeper/zookeeper.h>

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

int main(int argc, char **argv)
{
	clientid_t id;
	zhandle_t *zh;
	char *end;
	long timeout;
	int ok;

	if (argc != 5 || strlen(argv[3]) != 2 * sizeof(id.passwd)) {
		fprintf(stderr, "usage: zk_expire HOSTS SESSION_ID(hex) PASSWORD(32 hex digits) TIMEOUT_MS\n");
		return 64;
	}
	id.client_id = (int64_t)strtoull(argv[2], &end, 16);
	timeout = strtol(argv[4], NULL, 10);
	if (*end || timeout < 1000 || timeout > 600000)
		return fprintf(stderr, "zk_expire: bad session id or timeout\n"), 64;
	for (size_t i = 0; i < sizeof(id.passwd); i++) {
		int hi = hexval(argv[3][2 * i]), lo = hexval(argv[3][2 * i + 1]);

		if (hi < 0 || lo < 0)
			return fprintf(stderr, "zk_expire: the password is not hex\n"), 64;
		id.passwd[i] = (char)(hi << 4 | lo);
	}
	zoo_set_debug_level(0);
	if (!(zh = zookeeper_init(argv[1], NULL, (int)timeout, &id, NULL, 0))) {
		perror("zk_expire: zookeeper_init");
		return 1;
	}
	for (int i = 0; i < 1000 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	ok = zoo_state(zh) == ZOO_CONNECTED_STATE && zoo_client_id(zh)->client_id == id.client_id;
	if (!ok)
		fprintf(stderr, "zk_expire: not connected with session %s within 10 s\n", argv[2]);
	zookeeper_close(zh);
	fflush(stderr);
	_exit(ok ? 0 : 1); /* no leak report of the library's close (see above) */
}
