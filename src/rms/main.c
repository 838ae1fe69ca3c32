/* confdr-rms: the resource management service: MCU/VRS inventory and allocation. */
#include <confdr/daemon.h>
#include <confdr/log.h>

static void on_role(struct cdr_daemon *d, void *server, bool active, int64_t epoch)
{
	if (active)
		cdr_notice("active with epoch %lld", (long long)epoch);
	else
		cdr_notice("standby");
}

static const struct cdr_daemon_ops ops = {
	.name = "rms",
	.summary = "confdr resource management service: MCU/VRS inventory and allocation.",
	.conf_size = sizeof(struct cdr_daemon_conf),
	.uses_redis = false,
	.uses_mysql = false,
	.on_role = on_role,
};

int main(int argc, char **argv)
{
	return cdr_daemon_main(&ops, argc, argv);
}
