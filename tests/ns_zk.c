/* ns_zk HOSTS PATH: removes the ZooKeeper node PATH and everything below it
 * (tests/ns.sh removing a test namespace's chroot). Exit 0 when PATH is gone
 * (also when it never was), 1 on an error (printed), 64 on bad usage. Every
 * wait is bounded: 10 s to connect, the session's timeout per request, at
 * most MAX_NODES nodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADED
#include <zookeeper/zookeeper.h>

#define MAX_NODES 100000
#define MAX_DEPTH 32

static int removed;

/* Removes path's children, then path; 0 or -1 (printed). */
static int remove_tree(zhandle_t *zh, const char *path, int depth)
{
	struct String_vector kids = { 0, NULL };
	int rc;

	if (depth > MAX_DEPTH) {
		fprintf(stderr, "ns_zk: %s: deeper than %d levels\n", path, MAX_DEPTH);
		return -1;
	}
	rc = zoo_get_children(zh, path, 0, &kids);
	if (rc == ZNONODE)
		return 0;
	if (rc != ZOK) {
		fprintf(stderr, "ns_zk: children of %s: %s\n", path, zerror(rc));
		return -1;
	}
	for (int i = 0; i < kids.count && rc == ZOK; i++) {
		char child[1024];

		snprintf(child, sizeof(child), "%s%s%s", path, strcmp(path, "/") ? "/" : "", kids.data[i]);
		if (++removed > MAX_NODES || remove_tree(zh, child, depth + 1) < 0)
			rc = ZSYSTEMERROR;
	}
	deallocate_String_vector(&kids);
	if (rc != ZOK)
		return -1;
	rc = zoo_delete(zh, path, -1);
	if (rc != ZOK && rc != ZNONODE) {
		fprintf(stderr, "ns_zk: deleting %s: %s\n", path, zerror(rc));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	zhandle_t *zh;
	int ret = 1;

	if (argc != 3 || argv[2][0] != '/' || !strcmp(argv[2], "/")) {
		fprintf(stderr, "usage: ns_zk HOSTS /PATH (removes PATH and everything below it; not /)\n");
		return 64;
	}
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	zh = zookeeper_init(argv[1], NULL, 10000, NULL, NULL, 0);
	if (!zh) {
		fprintf(stderr, "ns_zk: cannot create a ZooKeeper handle for %s\n", argv[1]);
		return 1;
	}
	for (int i = 0; i < 500 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++)
		nanosleep(&pause, NULL);
	if (zoo_state(zh) != ZOO_CONNECTED_STATE)
		fprintf(stderr, "ns_zk: ZooKeeper %s: not connected within 10 s\n", argv[1]);
	else if (remove_tree(zh, argv[2], 0) == 0)
		ret = 0;
	zookeeper_close(zh);
	return ret;
}
