/* Who may send what (bus.h): the role of a broker user, and the rule every
 * daemon's dispatch applies to each message's AMQP user_id. That the daemons
 * apply it on the bus is tests/attacks/broker.sh's to show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <stdbool.h>

#include <confdr/bus.h>

static void test_role(void **state)
{
	char role[16];

	(void)state;
	cdr_sender_role("css", role, sizeof(role));
	assert_string_equal(role, "css");
	cdr_sender_role("mcu-p1-r2-7", role, sizeof(role));
	assert_string_equal(role, "mcu");
	cdr_sender_role("", role, sizeof(role));
	assert_string_equal(role, "");
	cdr_sender_role(NULL, role, sizeof(role));
	assert_string_equal(role, "");
	/* cut to the buffer, never past it */
	cdr_sender_role("averyveryverylongrole-x", role, 5);
	assert_string_equal(role, "aver");
}

static bool allowed(const char *from, const char *user, bool anonymous_cm)
{
	char why[300] = "";
	bool ok = cdr_sender_allowed(from, user, anonymous_cm, why, sizeof(why));

	/* a refusal always says why; a pass leaves why alone */
	assert_true(ok ? why[0] == '\0' : why[0] != '\0');
	return ok;
}

static void test_each_role_its_own(void **state)
{
	(void)state;
	assert_true(allowed("pms", "pms", false));
	assert_true(allowed("pms", "pms-p2", false));
	assert_true(allowed("rms", "rms", false));
	assert_true(allowed("css", "css-p1", false));
	assert_true(allowed("mcu", "mcu", false));
	assert_true(allowed("mcu", "mcu-p1-r1-3", false));
	assert_true(allowed("cm", "cm", false));
	assert_true(allowed("bmc", "bmc", false));
	/* the operators' requests come from ops */
	assert_true(allowed("ctl", "ops", false));
	assert_false(allowed("ctl", "ctl", false));
	/* VRS messages from a VRS or an MCU's user (one box, one simulator) */
	assert_true(allowed("vrs", "vrs-1", false));
	assert_true(allowed("vrs", "mcu", false));
	/* several roles */
	assert_true(allowed("ctl|pms", "ops", false));
	assert_true(allowed("ctl|pms", "pms-p1", false));
	assert_false(allowed("ctl|pms", "css", false));
	/* "any": every user, and none */
	assert_true(allowed("any", "cm", false));
	assert_true(allowed("any", NULL, false));
}

/* The forgeries of issue 22: a room state, an MCU notice, a heartbeat, an
 * operator's switch, each from a user of another role; the administrator and
 * a user named like a role but longer are no exception. */
static void test_other_roles_refused(void **state)
{
	char why[300];

	(void)state;
	assert_false(allowed("pms", "mcu", false));
	assert_false(allowed("pms", "css", false));
	assert_false(allowed("pms", "confdr", false));
	assert_false(allowed("pms", "pmsx", false));
	assert_false(allowed("rms", "cm", false));
	assert_false(allowed("mcu", "cm", false));
	assert_false(allowed("mcu", "vrs", false));
	assert_false(allowed("ctl", "mcu", false));
	assert_false(allowed("css", "rms", false));
	assert_false(allowed("cm", "mcu", true)); /* a user_id is checked even when anonymous_cm */
	assert_true(!cdr_sender_allowed("pms", "mcu-p1", false, why, sizeof(why)));
	assert_string_equal(why, "broker user mcu-p1 (role mcu) may not send it; only role pms may");
	assert_true(!cdr_sender_allowed("ctl", "cm", false, why, sizeof(why)));
	assert_string_equal(why, "broker user cm (role cm) may not send it; only role ops may");
	assert_true(!cdr_sender_allowed("ctl|pms|vrs", "cm", false, why, sizeof(why)));
	assert_string_equal(why, "broker user cm (role cm) may not send it; only role ops or pms or vrs or mcu may");
}

/* No user_id: only a CM request, and only when anonymous_cm (the fixed CM
 * contract sets none). */
static void test_without_user_id(void **state)
{
	char why[300];

	(void)state;
	assert_true(allowed("cm", NULL, true));
	assert_true(allowed("cm", "", true));
	assert_false(allowed("cm", NULL, false));
	assert_true(allowed("cm|ctl", NULL, true));
	assert_false(allowed("ctl|pms", NULL, true));
	assert_false(allowed("pms", NULL, true));
	assert_false(allowed("mcu", "", true));
	assert_true(!cdr_sender_allowed("ctl", NULL, true, why, sizeof(why)));
	assert_string_equal(why, "it carries no user_id; only broker users of role ops may send it");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_role),
		cmocka_unit_test(test_each_role_its_own),
		cmocka_unit_test(test_other_roles_refused),
		cmocka_unit_test(test_without_user_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
