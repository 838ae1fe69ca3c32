/* The message decoder on any bytes: decoded, or refused with a refusal
 * that encodes; a decoded message's fields read and an answer encoded. */
#include <stdlib.h>

#include <jansson.h>

#include <confdr/msg.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cdr_msg_error err;
	struct cdr_msg *m = NULL;
	char fp[CDR_MSG_FP_LEN], *txt;

	if (cdr_msg_decode(data, size, 0, &m, &err) < 0) {
		txt = cdr_msg_encode_refusal(&err, "fuzz-corr", "fuzz_any_nack", "fuzz");
		free(txt);
		return 0;
	}
	(void)cdr_msg_type(m);
	(void)cdr_msg_src(m);
	(void)cdr_msg_ts(m);
	(void)cdr_msg_str(m, "e164", NULL);
	(void)cdr_msg_int(m, "epoch", -1);
	cdr_msg_fingerprint(m, fp, sizeof(fp));
	txt = cdr_msg_encode_reply(m, true, "fuzz", json_object());
	free(txt);
	cdr_msg_free(m);
	return 0;
}
