/* confdr-rms: the resource management service: MCU/VRS inventory and allocation. */
#include "rms.h"

int main(int argc, char **argv)
{
	return cdr_daemon_main(&rms_daemon_ops, argc, argv);
}
