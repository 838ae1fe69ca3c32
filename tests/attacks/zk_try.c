/* zk_try HOSTS USER PASSWORD_FILE OP PATH [DATA]: one ZooKeeper request as
 * USER (digest; "-" for none, PASSWORD_FILE then ignored), for
 * tests/attacks/stores.sh. OP: get (prints the data on a second line), set,
 * create, create-ephemeral (the node is deleted again when the session
 * closes), delete, children (one a line), acl (prints the node's ACL, one
 * "perms scheme:id" a line). Prints "ok" or ZooKeeper's error
 * name (ZNOAUTH, ZNONODE, ...). Exit 0 ok, 1 refused by ZooKeeper, 2 no
 * session (or the login refused) within 10 s, 64 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADED
#include <zookeeper/zookeeper.h>

static const char *rc_name(int rc)
{
	switch (rc) {
	case ZOK: return "ok";
	case ZNOAUTH: return "ZNOAUTH";
	case ZNONODE: return "ZNONODE";
	case ZNODEEXISTS: return "ZNODEEXISTS";
	case ZNOTEMPTY: return "ZNOTEMPTY";
	case ZINVALIDACL: return "ZINVALIDACL";
	case ZAUTHFAILED: return "ZAUTHFAILED";
	default: return zerror(rc);
	}
}

static int read_password(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	if (!f || !fgets(buf, (int)len, f)) {
		fprintf(stderr, "zk_try: cannot read %s\n", path);
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	const char *op, *path, *data;
	struct ACL_vector acl = { 0, NULL };
	struct String_vector kids = { 0, NULL };
	struct Stat st;
	char auth[1200], buf[4096];
	zhandle_t *zh;
	int rc, len = sizeof(buf);

	if (argc < 6 || argc > 7) {
		fprintf(stderr,
			"usage: zk_try HOSTS USER|- PASSWORD_FILE get|set|create|create-ephemeral|delete|children|acl "
			"PATH [DATA]\n");
		return 64;
	}
	op = argv[4];
	path = argv[5];
	data = argc == 7 ? argv[6] : "{}";
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	zh = zookeeper_init(argv[1], NULL, 10000, NULL, NULL, 0);
	if (!zh) {
		fprintf(stderr, "zk_try: cannot create a ZooKeeper handle for %s\n", argv[1]);
		return 2;
	}
	if (strcmp(argv[2], "-") != 0) {
		char pw[1024];

		if (read_password(argv[3], pw, sizeof(pw)) < 0)
			return 2;
		snprintf(auth, sizeof(auth), "%s:%s", argv[2], pw);
		zoo_add_auth(zh, "digest", auth, (int)strlen(auth), NULL, NULL);
	}
	for (int i = 0; i < 500 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++)
		nanosleep(&pause, NULL);
	if (zoo_state(zh) != ZOO_CONNECTED_STATE) {
		printf("no session\n");
		zookeeper_close(zh);
		return 2;
	}
	if (!strcmp(op, "get"))
		rc = zoo_get(zh, path, 0, buf, &len, &st);
	else if (!strcmp(op, "set"))
		rc = zoo_set(zh, path, data, (int)strlen(data), -1);
	else if (!strcmp(op, "create") || !strcmp(op, "create-ephemeral"))
		rc = zoo_create(zh, path, data, (int)strlen(data),
				strcmp(argv[2], "-") ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE,
				strcmp(op, "create") ? ZOO_EPHEMERAL : 0, NULL, 0);
	else if (!strcmp(op, "delete"))
		rc = zoo_delete(zh, path, -1);
	else if (!strcmp(op, "acl"))
		rc = zoo_get_acl(zh, path, &acl, &st);
	else if (!strcmp(op, "children"))
		rc = zoo_get_children(zh, path, 0, &kids);
	else {
		fprintf(stderr, "zk_try: unknown operation %s\n", op);
		zookeeper_close(zh);
		return 64;
	}
	/* A login refused shows as a session in the AUTH_FAILED state. */
	if (zoo_state(zh) == ZOO_AUTH_FAILED_STATE) {
		printf("ZAUTHFAILED\n");
		zookeeper_close(zh);
		return 2;
	}
	printf("%s\n", rc_name(rc));
	for (int i = 0; rc == ZOK && i < acl.count; i++)
		printf("%d %s:%s\n", acl.data[i].perms, acl.data[i].id.scheme, acl.data[i].id.id);
	if (rc == ZOK && !strcmp(op, "get"))
		printf("%.*s\n", len, buf);
	for (int i = 0; rc == ZOK && i < kids.count; i++)
		printf("%s\n", kids.data[i]);
	if (acl.data)
		deallocate_ACL_vector(&acl);
	if (kids.data)
		deallocate_String_vector(&kids);
	zookeeper_close(zh);
	return rc == ZOK ? 0 : 1;
}
