/* confdr-pms: the platform management service: room/platform health and manual DR switches. */
#include <confdr/daemon.h>

static const struct cdr_daemon_ops ops = {
	.name = "pms",
	.summary = "confdr platform management service: room/platform health and manual DR switches.",
	.conf_size = sizeof(struct cdr_daemon_conf),
	.uses_redis = false,
	.uses_mysql = false,
};

int main(int argc, char **argv)
{
	return cdr_daemon_main(&ops, argc, argv);
}
