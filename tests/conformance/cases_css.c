/* The suite as css: commands and their answers, fencing, malformed
 * requests, conference lists, and the MCU's restart (protocol.md 7 "css <->
 * MCU", 8.1 - 8.4, 8.13, 8.16, 6 "An MCU's incarnation"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <confdr/loop.h>

#include "conform.h"

#define EPOCH	  7 /* the css epoch of the suite's commands */
#define SETTLE_MS 500
#define OTHER_SRC "css-conformb" /* a second sending css (a backup platform's) */
#define CF_E164_E "0990001005"
#define RENAMED	  "Conformance renamed \xe2\x9c\x93"

enum want { WANT_ACK, WANT_NACK, WANT_EITHER };

struct request {
	const char *type, *src, *e164;
	int64_t epoch, generation; /* generation -1: none */
	const char *name;	   /* rename */
};

static char src_main[96];

static bool has_id(struct cf *c, const void *id)
{
	return cf_find_id(c, 0, id) >= 0;
}

static json_t *request_body(const struct cf *c, const struct request *r)
{
	if (!strcmp(r->type, "mau_cmu_createconf_req"))
		return json_pack("{s:s, s:{s:s, s:s, s:s, s:i, s:s, s:n, s:i}, s:s, s:I, s:I, s:I}", "e164", r->e164,
				 "conf", "e164", r->e164, "name", "Conformance", "user_domain", "ud-conform",
				 "duration_min", 60, "mcu", c->mcu, "vrs", "max_participants", 4, "platform",
				 c->o.platform, "planned_end", (json_int_t)(cdr_wall_ms() + 3600000), "generation",
				 (json_int_t)r->generation, "epoch", (json_int_t)r->epoch);
	if (!strcmp(r->type, "mau_cmu_renameconf_req"))
		return json_pack("{s:s, s:s, s:I}", "e164", r->e164, "name", r->name, "epoch", (json_int_t)r->epoch);
	return json_pack("{s:s, s:s, s:I}", "e164", r->e164, "reason", "cm_request", "epoch", (json_int_t)r->epoch);
}

/* What every answer to request r with id must be (section 7, css <-> MCU):
 * the answer types, ids, e164, mcu; returns the first problem or NULL. */
static const char *answer_shape(const struct cf *c, const struct cf_msg *m, const struct request *r, const char *id,
				char *buf, size_t len)
{
	const char *e164 = json_string_value(json_object_get(cf_msg_body(m), "e164"));
	const char *mcu = json_string_value(json_object_get(cf_msg_body(m), "mcu"));
	char ack[96], nack[96];

	cdr_msg_reply_type(r->type, true, ack, sizeof(ack));
	cdr_msg_reply_type(r->type, false, nack, sizeof(nack));
	if (strcmp(cf_msg_type(m), ack) && strcmp(cf_msg_type(m), nack))
		snprintf(buf, len, "type \"%s\", expected %s or %s", cf_msg_type(m), ack, nack);
	else if (!m->m)
		snprintf(buf, len, "refused by its schema: %s", m->err.detail);
	else if (strcmp(m->corr, id))
		snprintf(buf, len, "correlation_id \"%s\", expected the request's id \"%s\"", m->corr, id);
	else if (!e164 || strcmp(e164, r->e164))
		snprintf(buf, len, "body.e164 \"%s\", expected \"%s\"", e164 ? e164 : "(none)", r->e164);
	else if (!mcu || strcmp(mcu, c->mcu))
		snprintf(buf, len, "body.mcu \"%s\", expected \"%s\"", mcu ? mcu : "(none)", c->mcu);
	else
		return NULL;
	return buf;
}

/* Sends r and checks its answer. reason: the NACK's expected reason (with
 * WANT_EITHER: the only NACK taken as right). Returns the answer's index,
 * or -1. */
static long call(struct cf *c, const struct request *r, enum want want, const char *reason, const char *sect,
		 const char *what)
{
	char id[96], why[400];
	const char *bad;
	const struct cf_msg *m;
	long i;
	int st;
	json_t *reason_j;

	cf_next_id(c, r->type + 8, id, sizeof(id)); /* "createconf_req-N" */
	if ((st = cf_send_command(c, r->type, id, r->src, request_body(c, r))) < 0) {
		cf_check(false, sect, what, "the command could not be delivered to key \"%s\": %s", c->key,
			 st == -EIO ? "unroutable (no queue bound with the MCU's key)" : strerror(-st));
		return -1;
	}
	if (!cf_wait(c, has_id, id, c->o.timeout_ms)) {
		cf_check(false, sect, what, "no answer with id \"%s\" within %u ms", id, c->o.timeout_ms);
		return -1;
	}
	i = cf_find_id(c, 0, id);
	m = &c->msgs[i];
	if ((bad = answer_shape(c, m, r, id, why, sizeof(why)))) {
		cf_check(false, "7, 1", what, "%s", bad);
		return -1;
	}
	if (strcmp(m->message_id, id))
		cf_note("%s: message_id \"%s\" (1: it should be the envelope id)", what, m->message_id);
	reason_j = json_object_get(cf_msg_body(m), "reason");
	if (strstr(cf_msg_type(m), "_ack")) {
		cf_check(want != WANT_NACK, sect, what, "ACK, expected a NACK %s", reason ? reason : "");
	} else {
		const char *got = json_string_value(reason_j);

		cf_check(want != WANT_ACK && (!reason || !strcmp(got, reason)), sect, what, "NACK %s (%s), expected %s",
			 got, cdr_msg_str(m->m, "detail", ""), want == WANT_ACK ? "an ACK" : reason);
	}
	return i;
}

static void check_generation(const struct cf *c, long i, int64_t want, bool required, const char *sect,
			     const char *what)
{
	json_t *g;

	if (i < 0)
		return;
	g = json_object_get(cf_msg_body(&c->msgs[i]), "generation");
	if (!g && !required) {
		cf_note("%s: no generation in the answer (7: SHOULD be sent)", what);
		return;
	}
	cf_check(json_is_integer(g) && json_integer_value(g) == want, sect, what,
		 "generation %s%" PRId64 ", expected %" PRId64, g ? "" : "(none) ",
		 json_is_integer(g) ? (int64_t)json_integer_value(g) : -1, want);
}

static const char *reading(const struct cf *c, long i)
{
	return i >= 0 && strstr(cf_msg_type(&c->msgs[i]), "_nack") ? "a NACK exists" : "the ACK again";
}

/* The confs of the last list, checked against exactly the E164s of want
 * (NULL-terminated). Returns the first difference or NULL. */
static const char *list_differs(const struct cf *c, const char *const *want, char *buf, size_t len)
{
	size_t n = 0, i;
	json_t *e;

	for (; want[n]; n++) {
		bool found = false;

		json_array_foreach(c->last_confs, i, e) found |= !strcmp(cdr_msg_jstr(e, "e164", ""), want[n]);
		if (!found) {
			snprintf(buf, len, "%s missing from the list", want[n]);
			return buf;
		}
	}
	if (json_array_size(c->last_confs) != n) {
		char *s = json_dumps(c->last_confs, JSON_COMPACT);

		snprintf(buf, len, "the list has %zu conferences, expected %zu: %.200s", json_array_size(c->last_confs),
			 n, s ? s : "?");
		free(s);
		return buf;
	}
	return NULL;
}

static json_t *listed(const struct cf *c, const char *e164)
{
	size_t i;
	json_t *e;

	json_array_foreach(c->last_confs, i, e) if (!strcmp(cdr_msg_jstr(e, "e164", ""), e164)) return e;
	return NULL;
}

static bool lists_reached(struct cf *c, const void *arg)
{
	return c->lists >= *(const unsigned *)arg;
}

/* Waits for the second list from now (the first may have been made before
 * the last change). */
static bool fresh_list(struct cf *c, unsigned n)
{
	unsigned want = c->lists + n;

	return cf_check(cf_wait(c, lists_reached, &want, c->o.timeout_ms * n), "6, 8.3",
			"it sends its conference list periodically", "%u lists within %u ms, expected %u",
			c->lists - (want - n), c->o.timeout_ms * n, n);
}

void cf_case_first_list(struct cf *c)
{
	if (!fresh_list(c, 1))
		return;
	cf_check(json_array_size(c->last_confs) == 0, "8.3, 6", "its first list, at start, is empty",
		 "%zu conferences listed", json_array_size(c->last_confs));
}

static void malformed(struct cf *c)
{
	char bad_body[96], unknown[96], ext_ack[96], ext_nack[96], *txt;
	struct request d = { "mau_cmu_createconf_req", src_main, CF_E164_D, EPOCH + 1, 0, NULL };
	size_t from = c->nmsgs;
	long i;

	cf_send_raw(c, "{\"type\": \"mau_cmu_createconf_req\", this is not JSON");
	cf_send_raw(c, "[\"not an object\"]");
	txt = cdr_msg_encode("mau_cmu_endconf_req", "x", src_main, 0, json_pack("{s:s}", "e164", CF_E164_B));
	if (txt) { /* an envelope without id */
		json_t *env = json_loads(txt, 0, NULL);
		char *noid;

		json_object_del(env, "id");
		noid = json_dumps(env, JSON_COMPACT);
		cf_send_raw(c, noid);
		free(noid);
		json_decref(env);
		free(txt);
	}
	cf_next_id(c, "badbody", bad_body, sizeof(bad_body)); /* readable type, id and e164; no conf */
	cf_send_command(c, "mau_cmu_createconf_req", bad_body, src_main,
			json_pack("{s:s, s:s, s:I, s:I, s:I}", "e164", CF_E164_E, "platform", c->o.platform,
				  "planned_end", (json_int_t)cdr_wall_ms(), "generation", (json_int_t)0, "epoch",
				  (json_int_t)EPOCH + 1));
	cf_next_id(c, "extendconf_req", ext_ack, sizeof(ext_ack)); /* answers to requests it did not make */
	cf_send_command(c, "mau_cmu_extendconf_ack", ext_ack, src_main,
			json_pack("{s:s, s:I, s:I}", "e164", CF_E164_B, "planned_end", (json_int_t)cdr_wall_ms(),
				  "epoch", (json_int_t)EPOCH + 1));
	cf_next_id(c, "extendconf_req", ext_nack, sizeof(ext_nack));
	cf_send_command(c, "mau_cmu_extendconf_nack", ext_nack, src_main,
			json_pack("{s:s, s:s}", "e164", CF_E164_B, "reason", "limit_reached"));
	cf_next_id(c, "unknowntype", unknown, sizeof(unknown));
	cf_send_command(c, "mau_cmu_frobconf_req", unknown, src_main,
			json_pack("{s:s, s:I}", "e164", CF_E164_E, "epoch", (json_int_t)EPOCH + 1));
	/* Then a good one: it still runs and its queue is not blocked. */
	i = call(c, &d, WANT_ACK, NULL, "8.2",
		 "after malformed requests (not JSON, not an object, no id, no conf, an unknown type) it answers the "
		 "next create");
	(void)i;
	cf_run_for(c, SETTLE_MS);
	i = cf_find_id(c, from, bad_body);
	if (i < 0) {
		cf_note("a create without conf was dropped unanswered (8.2 allows it)");
	} else {
		const struct cf_msg *m = &c->msgs[i];

		cf_check(m->m && !strcmp(cf_msg_type(m), "cmu_mau_createconf_nack") &&
				 !strcmp(cdr_msg_str(m->m, "reason", ""), "bad_request"),
			 "8.2", "a create without conf is dropped or NACKed bad_request", "answered %s, reason \"%s\"",
			 cf_msg_type(m), m->m ? cdr_msg_str(m->m, "reason", "") : "?");
	}
	i = cf_find_id(c, from, unknown);
	cf_check(i < 0, "8.2", "a request of a type it does not know is not answered", "answered: %s",
		 i < 0 ? "" : cf_msg_type(&c->msgs[i]));
	cf_check(cf_find_id(c, from, ext_ack) < 0 && cf_find_id(c, from, ext_nack) < 0, "8.12",
		 "an extend ACK or NACK it did not ask for is not answered", "it answered one");
	cf_check(cf_find(c, from, 'c', "cmu_mau_request_nack") < 0, "8.2", "it invents no refusal type",
		 "cmu_mau_request_nack sent");
}

void cf_case_commands(struct cf *c)
{
	struct request r = { "mau_cmu_createconf_req", src_main, CF_E164_A, EPOCH, 0, NULL };
	const char *want[] = { CF_E164_B, CF_E164_C, CF_E164_D, NULL };
	char why[400];
	size_t rename_mark;
	long i;

	snprintf(src_main, sizeof(src_main), "css-%s", c->o.platform);
	i = call(c, &r, WANT_ACK, NULL, "7, 8.4", "a create is ACKed");
	check_generation(c, i, 0, false, "7 cmu_mau_createconf_ack", "the create ACK echoes the generation");
	i = call(c, &r, WANT_EITHER, "exists", "7 (a create for a conference the MCU already runs)",
		 "the same create again: the ACK again or a NACK exists");
	cf_note("a repeated create: the MCU answers %s", reading(c, i));
	check_generation(c, i, 0, i >= 0 && strstr(cf_msg_type(&c->msgs[i]), "_nack"), "7, 8.4",
			 "the repeated create's answer carries the generation");
	r.generation = 3;
	i = call(c, &r, WANT_EITHER, "exists", "7", "a create of a newer generation of it: the ACK or a NACK exists");
	check_generation(c, i, 3, i >= 0 && strstr(cf_msg_type(&c->msgs[i]), "_nack"), "7",
			 "that answer carries the new generation");

	r.e164 = CF_E164_B;
	r.generation = 0;
	call(c, &r, WANT_ACK, NULL, "7, 8.4", "a second conference is ACKed");
	r = (struct request){ "mau_cmu_renameconf_req", src_main, CF_E164_B, EPOCH, -1, RENAMED };
	rename_mark = c->nmsgs;
	call(c, &r, WANT_ACK, NULL, "7, 8.16", "a rename of a conference it runs is ACKed");
	r.e164 = CF_E164_UNKNOWN;
	call(c, &r, WANT_NACK, "unknown_conference", "8.16",
	     "a rename of a conference it does not run: NACK unknown_conference");
	r = (struct request){ "mau_cmu_endconf_req", src_main, CF_E164_UNKNOWN, EPOCH, -1, NULL };
	call(c, &r, WANT_NACK, "unknown_conference", "8.16",
	     "an end of a conference it does not run: NACK unknown_conference");

	/* Fencing (8.1): epoch 8 raises what it keeps of this src; 7 is then stale. */
	r = (struct request){ "mau_cmu_createconf_req", src_main, CF_E164_C, EPOCH + 1, 0, NULL };
	call(c, &r, WANT_ACK, NULL, "8.1", "a create of a higher epoch is taken");
	r = (struct request){ "mau_cmu_endconf_req", src_main, CF_E164_A, EPOCH, -1, NULL };
	call(c, &r, WANT_NACK, "stale_epoch", "8.1", "an end of an older epoch of the same css: NACK stale_epoch");
	r = (struct request){ "mau_cmu_renameconf_req", src_main, CF_E164_B, EPOCH, -1, "Stale name" };
	call(c, &r, WANT_NACK, "stale_epoch", "8.1", "a rename of an older epoch: NACK stale_epoch");
	r = (struct request){ "mau_cmu_createconf_req", src_main, CF_E164_E, EPOCH, 0, NULL };
	call(c, &r, WANT_NACK, "stale_epoch", "8.1", "a create of an older epoch: NACK stale_epoch");

	malformed(c);

	/* Another css (another src) with a lower epoch, for a conference of
	 * this platform (its home): not fenced. */
	r = (struct request){ "mau_cmu_renameconf_req", OTHER_SRC, CF_E164_D, 1, -1, "Renamed by another css" };
	call(c, &r, WANT_ACK, NULL, "8.1", "another css's lower epoch is not compared with the first's (rename ACKed)");

	r = (struct request){ "mau_cmu_endconf_req", src_main, CF_E164_A, EPOCH + 1, -1, NULL };
	i = call(c, &r, WANT_ACK, NULL, "7, 8.16", "an end of a conference it runs is ACKed");
	if (i >= 0 && json_object_get(cf_msg_body(&c->msgs[i]), "generation"))
		check_generation(c, i, 3, true, "7 (the MCU takes the higher generation)",
				 "the end ACK names the newer generation it took");

	if (fresh_list(c, 2)) {
		const char *bad = list_differs(c, want, why, sizeof(why));
		json_t *b = listed(c, CF_E164_B);
		const char *name = cdr_msg_jstr(b, "name", NULL);

		cf_check(!bad, "7 cmu_mau_conflist_ntf",
			 "the list is complete and exact (fenced and ended ones absent)", "%s", bad);
		if (b && name)
			cf_check(!strcmp(name, RENAMED), "7 cmu_mau_conflist_ntf",
				 "the list has the name of the rename", "name \"%s\"", name);
	}
	cf_check(cf_find(c, rename_mark, 'c', "cmu_mau_confrenamed_ntf") < 0, "8.16",
		 "no cmu_mau_confrenamed_ntf after a rename css asked for", "one was sent");
}

void cf_case_restart_stop(struct cf *c, pid_t pid)
{
	size_t mark = c->nmsgs;
	struct request r = { "mau_cmu_endconf_req", src_main, CF_E164_B, EPOCH + 1, -1, NULL };
	char id[96];
	int st, r2;

	if (!cf_mcu_stop(c, pid, c->o.timeout_ms, &st))
		cf_note("it did not stop within %u ms of SIGTERM: killed", c->o.timeout_ms);
	cf_run_for(c, SETTLE_MS);
	cf_check(cf_find(c, mark, 'c', "cmu_mau_confended_ntf") < 0, "8.13",
		 "no cmu_mau_confended_ntf for the conferences it drops because it stops", "one was sent");
	r2 = cf_send_command(c, r.type, cf_next_id(c, "endconf_req", id, sizeof(id)), r.src, request_body(c, &r));
	cf_check(r2 == -EIO, "8.3",
		 "while it is stopped, a command to its key is unroutable (its queue was exclusive, auto-delete)",
		 "the mandatory publish was %s", r2 == 0 ? "routed (a queue still bound with its key)" : strerror(-r2));
}

pid_t cf_case_restart_start(struct cf *c)
{
	const char *want[] = { CF_E164_B, CF_E164_C, CF_E164_D, NULL };
	char old_boot[72], why[400];
	bool had_boot = c->has_boot, empty;
	int64_t old_seq = c->list_seq;
	struct request r = { "mau_cmu_endconf_req", src_main, CF_E164_B, EPOCH + 1, -1, NULL };

	pid_t pid;

	snprintf(old_boot, sizeof(old_boot), "%s", c->boot);
	c->incarnation++;
	c->acks = c->hbs_before_ack = c->hbs_rereg = 0;
	c->last_ack_ms = 0;
	c->list_seq = -1;
	if ((pid = cf_mcu_start(c)) < 0 || !cf_case_registration(c, false))
		return pid;
	cf_case_heartbeats(c, c->ack_epoch);
	if (!fresh_list(c, 1))
		return pid;
	empty = json_array_size(c->last_confs) == 0;
	if (c->has_boot && had_boot && strcmp(c->boot, old_boot)) {
		cf_note("restart seen by a new boot (%s, before %s)", c->boot, old_boot);
		cf_check(empty, "6 (An MCU's incarnation)", "with a new boot, its list is empty",
			 "it lists %zu conferences", json_array_size(c->last_confs));
	} else if (c->has_boot && had_boot) {
		const char *bad = list_differs(c, want, why, sizeof(why));

		cf_note("the same boot after the restart: it must have kept its conferences");
		cf_check(!bad && c->list_seq > old_seq, "6 (An MCU's incarnation)",
			 "with the same boot, it lists what it ran and seq goes on",
			 "%s, seq %" PRId64 " after %" PRId64, bad ? bad : "list complete", c->list_seq, old_seq);
	} else {
		cf_note("no boot: a restart is seen by %s", empty && c->list_seq < old_seq
								    ? "its seq going back and an empty list"
							    : empty ? "an empty list (seq goes on)"
								    : "nothing: it kept its conferences");
		cf_check(empty || (!list_differs(c, want, why, sizeof(why)) && c->list_seq > old_seq),
			 "6 (An MCU's incarnation)", "without boot, its first list is empty or what it ran",
			 "%zu conferences listed, seq %" PRId64 " after %" PRId64, json_array_size(c->last_confs),
			 c->list_seq, old_seq);
	}
	call(c, &r, empty ? WANT_NACK : WANT_ACK, "unknown_conference", "8.16",
	     empty ? "after the restart, an end of a conference it ran before: NACK unknown_conference"
		   : "after the restart, an end of a conference it kept: ACK");
	return pid;
}

void cf_report_invariants(struct cf *c)
{
	cf_inv_report(&c->inv_schema, true);
	cf_inv_report(&c->inv_from_mcu, true);
	cf_inv_report(&c->inv_ctype, true);
	cf_inv_report(&c->inv_key, true);
	cf_inv_report(&c->inv_no_reply_to, true);
	cf_inv_report(&c->inv_persistent, true);
	cf_inv_report(&c->inv_hb_seq, true);
	cf_inv_report(&c->inv_hb_epoch, true);
	cf_inv_report(&c->inv_boot, c->has_boot);
	cf_inv_report(&c->inv_list_seq, true);
}
