/* confdr-css: the conference scheduling service: creates, ends and restores conferences. */
#include <confdr/daemon.h>

static const struct cdr_daemon_ops ops = {
	.name = "css",
	.summary = "confdr conference scheduling service: creates, ends and restores conferences.",
	.conf_size = sizeof(struct cdr_daemon_conf),
	.uses_redis = true,
	.uses_mysql = true,
};

int main(int argc, char **argv)
{
	return cdr_daemon_main(&ops, argc, argv);
}
