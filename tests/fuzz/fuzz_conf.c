/* The config parser on any text, with the keys every daemon has: valid
 * (then released) or refused with its errors. */
#include <stdlib.h>
#include <string.h>

#include <confdr/conf.h>
#include <confdr/daemon.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct cdr_conf_key *const tables[] = { cdr_daemon_conf_keys, NULL };
	struct cdr_conf_errors errs = { 0 };
	struct cdr_daemon_conf cf;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* the parser reads text up to its first NUL */
	memset(&cf, 0, sizeof(cf));
	if (cdr_conf_parse("fuzz.conf", text, tables, &cf, &errs) == 0)
		cdr_conf_release(tables, &cf);
	cdr_conf_errors_clear(&errs);
	free(text);
	return 0;
}
