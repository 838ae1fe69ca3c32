/* The suite as rms: registration, its retries, heartbeats, and
 * re-registration on rms's notices (protocol.md 8.6, 8.7, 8.9). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <confdr/loop.h>

#include "conform.h"

#define HB_COUNT 6 /* heartbeats measured for the interval */

struct count_arg {
	unsigned n;
};

static bool regs_reached(struct cf *c, const void *arg)
{
	return c->regs >= ((const struct count_arg *)arg)->n;
}

static bool hbs_reached(struct cf *c, const void *arg)
{
	return c->last_ack_ms && c->hbs_since_ack >= ((const struct count_arg *)arg)->n;
}

/* The k-th (1-based) registration of the MCU under test, or NULL. */
static const struct cf_msg *registration(const struct cf *c, unsigned k)
{
	for (size_t i = 0; i < c->nmsgs; i++) {
		const struct cf_msg *m = &c->msgs[i];

		if (m->m && !strcmp(cf_msg_type(m), "cmu_rms_register_req") &&
		    !strcmp(cdr_msg_str(m->m, "mcu", ""), c->mcu) && !--k)
			return m;
	}
	return NULL;
}

static bool wait_registration(struct cf *c, unsigned n, const char *sect, const char *what)
{
	struct count_arg a = { n };
	bool ok = cf_wait(c, regs_reached, &a, c->o.timeout_ms);

	return cf_check(ok, sect, what, "no registration (cmu_rms_register_req) within %u ms", c->o.timeout_ms);
}

static void check_fields(struct cf *c, const struct cf_msg *m)
{
	const char *platform = cdr_msg_str(m->m, "platform", ""), *room = cdr_msg_str(m->m, "room", "");

	cf_check(!strcmp(platform, c->o.platform), "7 cmu_rms_register_req", "its registration names its platform",
		 "platform \"%s\", expected \"%s\"", platform, c->o.platform);
	if (c->o.room)
		cf_check(!strcmp(room, c->o.room), "7 cmu_rms_register_req", "its registration names its room",
			 "room \"%s\", expected \"%s\"", room, c->o.room);
	cf_check(m->reply_to[0] && m->corr[0], "8.6, 8.15", "the registration has reply_to and correlation_id",
		 "reply_to \"%s\", correlation_id \"%s\"", m->reply_to, m->corr);
	cf_check(m->mode == 2, "1, 8.6", "the registration is persistent (delivery_mode 2)", "delivery_mode %u",
		 m->mode);
	cf_note("MCU %s, key %s, boot %s", c->mcu, c->key,
		c->has_boot ? c->boot : "(none: an MCU of the older contract)");
}

bool cf_case_registration(struct cf *c, bool first)
{
	unsigned base = c->regs;
	const struct cf_msg *a, *b, *m;

	c->reg_policy = first ? CF_REG_IGNORE : CF_REG_ACK;
	if (!wait_registration(c, base + 1, "8.6",
			       first ? "it registers with rms at start" : "it registers again after its restart"))
		return false;
	m = registration(c, base + 1);
	check_fields(c, m);
	if (!first) {
		const char *key = cdr_msg_str(m->m, "key", "");

		cf_check(!strcmp(key, c->key), "8.3", "its key is the same across its restart",
			 "key \"%s\", before \"%s\"", key, c->key);
		return true;
	}
	/* The first one was not answered: it must try again; the second is
	 * refused not_active: again; the third is acknowledged. */
	if (!wait_registration(c, base + 2, "8.6", "an unanswered registration is sent again") ||
	    !wait_registration(c, base + 3, "8.6", "a registration refused not_active is sent again"))
		return false;
	a = registration(c, base + 1);
	b = registration(c, base + 2);
	m = registration(c, base + 3);
	cf_check(strcmp(a->corr, b->corr) && strcmp(b->corr, m->corr) && strcmp(a->corr, m->corr), "8.6",
		 "each registration has a correlation_id of its own", "\"%s\", \"%s\", \"%s\"", a->corr, b->corr,
		 m->corr);
	cf_note("registration retried after %" PRIu64 " ms unanswered, %" PRIu64 " ms after the NACK",
		b->at_ms - a->at_ms, m->at_ms - b->at_ms);
	return true;
}

void cf_case_heartbeats(struct cf *c, int64_t epoch)
{
	struct count_arg a = { HB_COUNT };
	unsigned limit = c->o.timeout_ms + HB_COUNT * c->o.hb_ms * 2;
	uint64_t mean;
	char what[160];
	long last;

	snprintf(what, sizeof(what), "heartbeats after the ACK (%u within %u ms)", HB_COUNT, limit);
	if (!cf_check(cf_wait(c, hbs_reached, &a, limit), "8.6", what, "%u heartbeats after the ACK", c->hbs_since_ack))
		return;
	mean = (c->hb_last_ms - c->hb_first_ms) / (c->hbs_since_ack - 1);
	snprintf(what, sizeof(what), "heartbeats every heartbeat_ms of the ACK (%u ms; mean seen %" PRIu64 " ms)",
		 c->o.hb_ms, mean);
	cf_check(mean >= c->o.hb_ms / 2 && mean <= c->o.hb_ms * 2, "8.6", what, "expected %u..%u ms", c->o.hb_ms / 2,
		 c->o.hb_ms * 2);
	for (last = (long)c->nmsgs - 1; last >= 0; last--)
		if (c->msgs[last].m && !strcmp(cf_msg_type(&c->msgs[last]), "cmu_rms_heartbeat_ntf"))
			break;
	if (last >= 0) {
		int64_t e = cdr_msg_int(c->msgs[last].m, "epoch", -1);

		snprintf(what, sizeof(what), "heartbeats carry the epoch of its registration's ACK (%" PRId64 ")",
			 epoch);
		cf_check(e == epoch, "7 cmu_rms_heartbeat_ntf", what, "epoch %" PRId64, e);
	}
	if (!cf_check(c->hbs_before_ack == 0, "8.6", "no heartbeat before the ACK of its registration",
		      "%u heartbeats before it", c->hbs_before_ack))
		c->hbs_before_ack = 0;
}

/* Waits until the MCU has sent n registrations in all. n is counted from
 * before the notice that should cause them: the suite's loop may take them
 * in while it publishes the notice, or two at once. */
static bool reregisters(struct cf *c, unsigned n, const char *what)
{
	return wait_registration(c, n, "8.7", what);
}

static json_t *mcu_notice(struct cf *c, int64_t epoch)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "mcu", "conform-other-mcu", "key", "conform-other-mcu",
			 "room", c->o.room ? c->o.room : "conform-room", "platform", c->o.platform, "state", "up",
			 "reason", "registered", "epoch", (json_int_t)epoch);
}

void cf_case_reregistration(struct cf *c)
{
	struct count_arg two = { 2 };
	unsigned base = c->regs;

	/* A new rms leader announces itself. */
	c->rms_epoch = 9;
	cf_send_rms_notice(c, "rms_all_restarted_ntf",
			   json_pack("{s:s, s:I}", "platform", c->o.platform, "epoch", (json_int_t)9));
	if (reregisters(c, base + 1, "it registers again on rms_all_restarted_ntf of its platform"))
		cf_case_heartbeats(c, 9);

	/* A new leader whose restart notice it missed: a greater epoch on
	 * another rms_all_* message. */
	c->rms_epoch = 12;
	base = c->regs;
	cf_send_rms_notice(c, "rms_all_mcu_ntf", mcu_notice(c, 12));
	if (reregisters(c, base + 1, "it registers again on an rms_all_mcu_ntf with a greater epoch than its ACK's"))
		cf_wait(c, hbs_reached, &two, c->o.timeout_ms);

	/* The answer of a deposed rms: an ACK with a lower epoch than one seen
	 * on rms.ntf.ex. */
	c->rms_epoch = 14;
	c->next_epoch = 15;
	base = c->regs;
	cf_send_rms_notice(c, "rms_all_mcu_ntf", mcu_notice(c, 15));
	if (reregisters(c, base + 1, "it registers on an rms_all_mcu_ntf of epoch 15 (answered with epoch 14)") &&
	    reregisters(c, base + 2, "it registers again after an ACK of a lower epoch than one seen on rms.ntf.ex"))
		cf_case_heartbeats(c, 15);
	if (c->hbs_rereg)
		cf_note("%u heartbeats between a re-registration and its ACK (8.6: it SHOULD send none)", c->hbs_rereg);
	c->hbs_rereg = 0;
}
