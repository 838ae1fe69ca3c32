/* The topology loader on any bytes: the topology up to the first NUL, the
 * endpoints after it (none when there is no NUL). Parsed and freed, or
 * refused with its reasons. */
#include <string.h>

#include <confdr/topology.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *nul = memchr(data, '\0', size);
	size_t tlen = nul ? (size_t)(nul - text) : size;
	struct cdr_topology *t = NULL;
	char err[1024];

	if (cdr_topology_parse(text, tlen, nul ? nul + 1 : NULL, nul ? size - tlen - 1 : 0, &t, err, sizeof(err)) == 0)
		cdr_topology_free(t);
	return 0;
}
