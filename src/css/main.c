/* confdr-css: the conference scheduling service: creates, ends and restores conferences. */
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
	.name = "css",
	.summary = "confdr conference scheduling service: creates, ends and restores conferences.",
	.conf_size = sizeof(struct cdr_daemon_conf),
	.uses_redis = true,
	.uses_mysql = true,
	.on_role = on_role,
};

int main(int argc, char **argv)
{
	return cdr_daemon_main(&ops, argc, argv);
}
