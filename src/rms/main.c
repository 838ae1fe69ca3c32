/* confdr-rms: the resource management service: MCU/VRS inventory and allocation. */
#include <confdr/daemon.h>

static const struct cdr_daemon_ops ops = {
	.name = "rms",
	.summary = "confdr resource management service: MCU/VRS inventory and allocation.",
	.conf_size = sizeof(struct cdr_daemon_conf),
	.uses_redis = false,
	.uses_mysql = false,
};

int main(int argc, char **argv)
{
	return cdr_daemon_main(&ops, argc, argv);
}
