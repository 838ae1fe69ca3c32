/* confdr-pms: the platform management service: room/platform health and manual DR switches. */
#include "pms.h"

int main(int argc, char **argv)
{
	return cdr_daemon_main(&pms_daemon_ops, argc, argv);
}
