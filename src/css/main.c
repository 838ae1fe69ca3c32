/* confdr-css: the conference scheduling service: creates, ends and restores conferences. */
#include "css.h"

int main(int argc, char **argv)
{
	return cdr_daemon_main(&css_daemon_ops, argc, argv);
}
