/* rms's allocation policy and liveness rules, with a hand-made clock:
 * capability, priority, weighted least load, backup MCUs, backup rooms
 * (also of another platform), drain, records (VRS in the MCU's room),
 * reservations (expiry, confirm, release), heartbeat loss and rise, and the
 * rebuild after an rms restart without double counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>

#include <confdr/topology.h>

#include "rms/inventory.h"

static const char topo_json[] =
	"{\"platforms\": {"
	"  \"p1\": {\"name\": \"one\", \"backup_platform\": \"p2\", \"main_room\": \"p1-r1\"},"
	"  \"p2\": {\"name\": \"two\", \"backup_platform\": \"p1\", \"main_room\": \"p2-r1\"}},"
	" \"rooms\": {"
	"  \"p1-r1\": {\"platform\": \"p1\", \"backup_rooms\": [\"p1-r2\", \"p2-r1\", \"p1-r3\"]},"
	"  \"p1-r2\": {\"platform\": \"p1\", \"backup_rooms\": [\"p1-r1\"]},"
	"  \"p1-r3\": {\"platform\": \"p1\", \"backup_rooms\": []},"
	"  \"p2-r1\": {\"platform\": \"p2\", \"backup_rooms\": [\"p1-r1\"]}},"
	" \"user_domains\": {"
	"  \"ud1\": {\"platform\": \"p1\", \"room\": \"p1-r1\"},"
	"  \"ud2\": {\"platform\": \"p1\", \"room\": \"p1-r2\"},"
	"  \"ud3\": {\"platform\": \"p2\", \"room\": \"p2-r1\"}}}";

#define HB 500

struct event_log {
	char lines[64][96];
	size_t n;
};

struct fix {
	struct cdr_topology *topo;
	struct rms_inv *inv;
	struct event_log ev;
	int64_t now;
};

static void on_event(const struct rms_event *ev, void *arg)
{
	struct event_log *log = arg;

	if (log->n < 64)
		snprintf(log->lines[log->n++], sizeof(log->lines[0]), "%s %s %s %s", ev->vrs ? "vrs" : "mcu",
			 ev->vrs ? ev->v->id : ev->mcu->id, ev->state, ev->reason);
}

static const struct rms_policy policy = {
	.heartbeat_ms = HB, .misses = 3, .rise = 2, .reservation_ms = 10000, .default_ports = 16
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	char err[512];

	assert_non_null(f);
	assert_int_equal(cdr_topology_parse(topo_json, strlen(topo_json), NULL, 0, &f->topo, err, sizeof(err)), 0);
	f->inv = rms_inv_new("p1", &policy, on_event, &f->ev);
	assert_non_null(f->inv);
	rms_inv_set_topology(f->inv, f->topo);
	rms_inv_reset(f->inv, 7);
	f->now = 1000000;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	rms_inv_free(f->inv);
	cdr_topology_free(f->topo);
	free(f);
	return 0;
}

/* Registers an MCU with capacity confs (ports confs*16). */
static void mcu(struct fix *f, const char *id, const char *room, int64_t confs, bool h265, int weight, int prio,
		bool backup)
{
	struct rms_mcu_reg r = { .id = id,
				 .key = id,
				 .room = room,
				 .platform = "p1",
				 .cap_confs = confs,
				 .cap_ports = confs * 16,
				 .h265 = h265,
				 .res_1080p = true,
				 .weight = weight,
				 .priority = prio,
				 .backup = backup };
	char err[256];

	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), 0);
}

static void vrs(struct fix *f, const char *id, const char *room, int64_t cap)
{
	struct rms_vrs_reg r = {
		.id = id, .room = room, .platform = "p1", .capacity = cap, .weight = 100, .priority = 100
	};
	char err[256];

	assert_int_equal(rms_inv_register_vrs(f->inv, &r, f->now, err, sizeof(err)), 0);
}

/* Allocates for ud1 (room p1-r1 unless room); returns the result. */
static struct rms_result alloc_in(struct fix *f, const char *room, bool h265, bool record)
{
	struct rms_want w = {
		.e164 = "0512000001", .user_domain = "ud1", .room = room, .h265 = h265, .record = record
	};
	struct rms_result res;

	rms_inv_allocate(f->inv, &w, f->now, &res);
	return res;
}

static const char *alloc_mcu(struct fix *f)
{
	struct rms_result res = alloc_in(f, NULL, false, false);

	return res.reason == RMS_OK ? res.mcu->id : rms_reason_code(res.reason);
}

static void test_register_checks(void **state)
{
	struct fix *f = *state;
	struct rms_mcu_reg r = {
		.id = "m1", .key = "k1", .room = "nowhere", .platform = "p1", .cap_confs = 10, .cap_ports = 100
	};
	char err[256];

	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nowhere"));
	r.room = "p2-r1";
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), -EXDEV);
	r.room = "p1-r1";
	r.platform = "p2";
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), -EXDEV);
	r.platform = "p1";
	rms_inv_set_topology(f->inv, NULL);
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), -EAGAIN);
	rms_inv_set_topology(f->inv, f->topo);
	assert_int_equal(f->ev.n, 0);
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), 0);
	assert_int_equal(f->ev.n, 1);
	assert_string_equal(f->ev.lines[0], "mcu m1 up registered");
	/* The same registration again (its heartbeats resumed after an rms
	 * hiccup) announces nothing; a new key does. */
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), 0);
	assert_int_equal(f->ev.n, 1);
	r.key = "k2";
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), 0);
	assert_int_equal(f->ev.n, 2);
	assert_string_equal(rms_inv_mcu(f->inv, "m1")->key, "k2");
}

/* An MCU's incarnation: registered again with a new boot while up, or
 * heart-beating with one, it restarted (its conferences gone): "restarted",
 * once per new boot, its heartbeats counted afresh. */
static void test_restart_by_boot(void **state)
{
	struct fix *f = *state;
	struct rms_mcu_reg r = { .id = "m1",
				 .key = "k1",
				 .room = "p1-r1",
				 .platform = "p1",
				 .cap_confs = 10,
				 .cap_ports = 100,
				 .boot = "b1" };
	char err[256];

	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), 0);
	assert_int_equal(f->ev.n, 1);
	assert_string_equal(f->ev.lines[0], "mcu m1 up registered");
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "m1", 41, 3, 30, f->now + 100), 0);
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now + 200, err, sizeof(err)), 0); /* same boot */
	assert_int_equal(f->ev.n, 1);
	r.boot = "b2"; /* back, empty, before its heartbeats were missed */
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now + 300, err, sizeof(err)), 0);
	assert_int_equal(f->ev.n, 2);
	assert_string_equal(f->ev.lines[1], "mcu m1 up restarted");
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "m1", 1, 0, 0, f->now + 400), 0); /* counted from 1 */
	/* a heartbeat of a third boot, its registration unseen */
	assert_int_equal(rms_inv_mcu_boot(f->inv, "m1", "b2"), 0);
	assert_int_equal(rms_inv_mcu_boot(f->inv, "m1", "b3"), 1);
	assert_int_equal(f->ev.n, 3);
	assert_string_equal(f->ev.lines[2], "mcu m1 up restarted");
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "m1", 1, 0, 0, f->now + 500), 0);
	assert_int_equal(rms_inv_mcu_boot(f->inv, "m1", "b3"), 0); /* once */
	assert_int_equal(rms_inv_mcu_boot(f->inv, "m1", ""), 0);   /* none told: nothing concluded */
	assert_int_equal(rms_inv_mcu_boot(f->inv, "nobody", "b9"), 0);
	assert_int_equal(f->ev.n, 3);
}

static void test_capability_then_priority(void **state)
{
	struct fix *f = *state;
	struct rms_result res;

	mcu(f, "a", "p1-r1", 2, false, 100, 10, false); /* preferred, but no H.265 */
	mcu(f, "b", "p1-r1", 2, true, 100, 50, false);
	mcu(f, "c", "p1-r1", 2, true, 100, 20, false);
	res = alloc_in(f, NULL, true, false);
	assert_int_equal(res.reason, RMS_OK);
	assert_string_equal(res.mcu->id, "c"); /* capable, then lower priority */
	assert_string_equal(res.room, "p1-r1");
	assert_string_equal(res.platform, "p1");
	assert_string_equal(alloc_mcu(f), "a"); /* no capability wanted: priority 10 */
	assert_string_equal(alloc_mcu(f), "a");
	assert_string_equal(alloc_mcu(f), "c"); /* a full */
	assert_string_equal(alloc_mcu(f), "b");
	assert_string_equal(alloc_mcu(f), "b");
	assert_int_equal(rms_inv_nreservations(f->inv), 6);
	/* p1-r1 full: its backup room p1-r2 has nothing, then p2-r1 is another
	 * platform's: the caller is told which. */
	res = alloc_in(f, NULL, false, false);
	assert_int_equal(res.reason, RMS_OTHER_PLATFORM);
	assert_string_equal(res.room, "p2-r1");
	assert_string_equal(res.platform, "p2");
	assert_non_null(strstr(res.detail, "p1-r1: MCUs full"));
	assert_non_null(strstr(res.detail, "p1-r2: no MCU registered"));
}

static void test_unknown_capability_room_domain(void **state)
{
	struct fix *f = *state;
	const char *caps[] = { "h265", "4k" };
	struct rms_want w = { .e164 = "1234", .user_domain = "ud1", .caps = caps, .ncaps = 2 };
	struct rms_result res;

	mcu(f, "a", "p1-r1", 10, true, 100, 100, false);
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_UNKNOWN_CAPABILITY);
	assert_non_null(strstr(res.detail, "4k"));
	assert_string_equal(rms_reason_code(res.reason), "unknown_capability");
	w.ncaps = 1; /* "h265" by name works as the boolean does */
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_OK);
	w.user_domain = "nobody";
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_UNKNOWN_USER_DOMAIN);
	w.room = "p9-r9";
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_UNKNOWN_ROOM);
	/* xmpu is in no MCU of the room: no capacity, saying why */
	w.room = "p1-r2";
	w.xmpu = true;
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_NO_CAPACITY);
	w.room = "p1-r1";
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_OTHER_PLATFORM);
	assert_non_null(strstr(res.detail, "p1-r1: no MCU with the capabilities wanted"));
}

static void test_weighted_least_load(void **state)
{
	struct fix *f = *state;
	int na = 0, nb = 0, nc = 0;

	mcu(f, "a", "p1-r1", 1000, false, 200, 100, false);
	mcu(f, "b", "p1-r1", 1000, false, 100, 100, false);
	mcu(f, "c", "p1-r1", 500, false, 100, 100, false); /* half the capacity of b */
	for (int i = 0; i < 700; i++) {
		const char *id = alloc_mcu(f);

		na += !strcmp(id, "a");
		nb += !strcmp(id, "b");
		nc += !strcmp(id, "c");
	}
	assert_int_equal(na + nb + nc, 700);
	/* shares follow capacity x weight: 2000 : 1000 : 500 */
	assert_in_range(na, 398, 402);
	assert_in_range(nb, 198, 202);
	assert_in_range(nc, 98, 102);
	assert_int_equal(rms_inv_mcu(f->inv, "a")->res_confs, na);
}

static void test_backup_mcus_and_exclude(void **state)
{
	struct fix *f = *state;
	const char *excl[] = { "p" };
	struct rms_want w = { .e164 = "1234", .user_domain = "ud1", .exclude = excl, .nexclude = 1 };
	struct rms_result res;

	mcu(f, "p", "p1-r1", 1, false, 100, 100, false);
	mcu(f, "s", "p1-r1", 100, false, 100, 1, true); /* sorry server */
	mcu(f, "r2", "p1-r2", 100, false, 100, 100, false);
	assert_string_equal(alloc_mcu(f), "p");
	/* p is full but up: the backup MCU is not used, the backup room is */
	assert_string_equal(alloc_mcu(f), "r2");
	/* excluding p (it failed) does not make the backup MCU eligible either */
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_OK);
	assert_string_equal(res.mcu->id, "r2");
	/* p down: the sorry server takes over */
	f->now += HB * 3 + 1;
	mcu(f, "r2", "p1-r2", 100, false, 100, 100, false); /* keep r2 alive */
	mcu(f, "s", "p1-r1", 100, false, 100, 1, true);
	rms_inv_tick(f->inv, f->now);
	assert_string_equal(rms_mcu_state_name(rms_inv_mcu(f->inv, "p")), "down");
	assert_string_equal(alloc_mcu(f), "s");
}

/* Abnormal rooms are skipped in the walk: the room itself (a manual switch
 * with its MCUs still up) and a backup room; another platform still stops it. */
static void test_exclude_rooms(void **state)
{
	struct fix *f = *state;
	const char *x1[] = { "p1-r1" }, *x2[] = { "p1-r1", "p1-r2" };
	struct rms_want w = { .e164 = "0512000009", .user_domain = "ud1", .exclude_rooms = x1, .nexclude_rooms = 1 };
	struct rms_result res;

	mcu(f, "a", "p1-r1", 5, false, 100, 100, false);
	mcu(f, "b", "p1-r2", 5, false, 100, 100, false);
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_OK);
	assert_string_equal(res.mcu->id, "b");
	assert_string_equal(res.room, "p1-r2");
	w.exclude_rooms = x2;
	w.nexclude_rooms = 2;
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_OTHER_PLATFORM);
	assert_string_equal(res.room, "p2-r1");
	assert_non_null(strstr(res.detail, "room p1-r1 excluded"));
	assert_non_null(strstr(res.detail, "room p1-r2 excluded"));
	w.nexclude_rooms = 0;
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_OK);
	assert_string_equal(res.mcu->id, "a");
}

static void test_drain(void **state)
{
	struct fix *f = *state;

	mcu(f, "a", "p1-r1", 10, false, 100, 1, false);
	mcu(f, "b", "p1-r1", 10, false, 100, 2, false);
	f->ev.n = 0;
	assert_int_equal(rms_inv_drain(f->inv, "a", true, f->now), 0);
	assert_int_equal(f->ev.n, 1);
	assert_string_equal(f->ev.lines[0], "mcu a drain drain");
	assert_string_equal(alloc_mcu(f), "b");
	assert_int_equal(rms_inv_drain(f->inv, "a", true, f->now), 0); /* again: nothing new */
	assert_int_equal(f->ev.n, 1);
	assert_int_equal(rms_inv_drain(f->inv, "a", false, f->now), 0);
	assert_string_equal(f->ev.lines[1], "mcu a up undrain");
	assert_string_equal(alloc_mcu(f), "a");
	assert_int_equal(rms_inv_drain(f->inv, "zz", true, f->now), -ENOENT);
}

static void test_record_needs_vrs_in_room(void **state)
{
	struct fix *f = *state;
	struct rms_result res;

	mcu(f, "a1", "p1-r1", 10, false, 100, 100, false);
	mcu(f, "a2", "p1-r2", 10, false, 100, 100, false);
	vrs(f, "v2", "p1-r2", 1);
	res = alloc_in(f, NULL, false, true);
	assert_int_equal(res.reason, RMS_OK);
	assert_string_equal(res.mcu->id, "a2"); /* p1-r1 has no VRS: both from p1-r2 */
	assert_string_equal(res.vrs->id, "v2");
	assert_string_equal(res.room, "p1-r2");
	res = alloc_in(f, NULL, false, true); /* v2 full */
	assert_int_equal(res.reason, RMS_OTHER_PLATFORM);
	assert_non_null(strstr(res.detail, "p1-r2: no VRS free"));
	res = alloc_in(f, NULL, false, false); /* without a recording p1-r1 is fine */
	assert_string_equal(res.mcu->id, "a1");
	assert_null(res.vrs);
}

static void test_reservation_expiry_confirm_release(void **state)
{
	struct fix *f = *state;
	struct rms_result r1, r2;
	const struct rms_mcu *a;

	mcu(f, "a", "p1-r1", 2, false, 100, 100, false);
	a = rms_inv_mcu(f->inv, "a");
	r1 = alloc_in(f, "p1-r1", false, false);
	r2 = alloc_in(f, "p1-r1", false, false);
	assert_int_equal(r1.reason, RMS_OK);
	assert_int_equal(r2.reason, RMS_OK);
	assert_string_not_equal(r1.reservation, r2.reservation);
	assert_memory_equal(r1.reservation, "7-", 2); /* the epoch prefixes ids */
	assert_int_equal(alloc_in(f, "p1-r3", false, false).reason, RMS_NO_CAPACITY);
	assert_int_equal(rms_mcu_used_ports(a), 32);
	/* r1 confirmed: running 1; r2 left alone expires */
	assert_int_equal(rms_inv_confirm(f->inv, r1.reservation), 0);
	assert_int_equal(rms_inv_confirm(f->inv, r1.reservation), 0); /* again: fine */
	assert_int_equal(rms_mcu_running(a), 1);
	assert_int_equal(a->res_confs, 1);
	f->now += 9999;
	mcu(f, "a", "p1-r1", 2, false, 100, 100, false); /* stays alive; it reports 1 running */
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 1, 1, 16, f->now), 0);
	assert_int_equal(rms_inv_tick(f->inv, f->now), 0);
	assert_int_equal(rms_mcu_running(a), 1); /* the report, not report + confirmation */
	f->now += 1;
	assert_int_equal(rms_inv_tick(f->inv, f->now), 1);
	assert_int_equal(a->res_confs, 0);
	assert_int_equal(rms_inv_nreservations(f->inv), 0);
	assert_int_equal(rms_inv_nallocations(f->inv), 1);
	assert_int_equal(rms_inv_confirm(f->inv, r2.reservation), -ENOENT);
	assert_int_equal(rms_inv_release(f->inv, r2.reservation), -ENOENT);
	/* release of the allocation: the conference ended */
	assert_int_equal(rms_inv_release(f->inv, r1.reservation), 0);
	assert_int_equal(rms_mcu_running(a), 0);
	assert_int_equal(rms_inv_nallocations(f->inv), 0);
	/* release of a reservation frees its capacity at once */
	r1 = alloc_in(f, "p1-r1", false, false);
	r2 = alloc_in(f, "p1-r1", false, false);
	assert_int_equal(alloc_in(f, "p1-r3", false, false).reason, RMS_NO_CAPACITY);
	assert_int_equal(rms_inv_release(f->inv, r2.reservation), 0);
	assert_int_equal(alloc_in(f, "p1-r1", false, false).reason, RMS_OK);
}

static void test_ports_limit(void **state)
{
	struct fix *f = *state;
	struct rms_want w = { .e164 = "1234", .user_domain = "ud2", .ports = 100 };
	struct rms_result res;

	mcu(f, "a", "p1-r2", 10, false, 100, 100, false); /* 160 ports */
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_OK);
	rms_inv_allocate(f->inv, &w, f->now, &res); /* 200 > 160 */
	assert_int_equal(res.reason, RMS_NO_CAPACITY);
	w.ports = 60;
	rms_inv_allocate(f->inv, &w, f->now, &res);
	assert_int_equal(res.reason, RMS_OK);
}

static void test_heartbeat_loss_and_rise(void **state)
{
	struct fix *f = *state;
	int64_t t0 = f->now;

	mcu(f, "a", "p1-r1", 10, false, 100, 100, false);
	vrs(f, "v", "p1-r1", 10);
	f->ev.n = 0;
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 1, 0, 0, t0 + HB), 0);
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 1, 0, 0, t0 + HB), -EALREADY); /* repeated seq */
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "nobody", 1, 0, 0, t0 + HB), -ENOENT);
	/* last heard at t0 + HB: still up at exactly 3 intervals later */
	rms_inv_tick(f->inv, t0 + HB + 3 * HB);
	assert_int_equal(f->ev.n, 1); /* only the VRS, silent since t0 */
	assert_string_equal(f->ev.lines[0], "vrs v down heartbeat_lost");
	rms_inv_tick(f->inv, t0 + HB + 3 * HB + 1);
	assert_int_equal(f->ev.n, 2);
	assert_string_equal(f->ev.lines[1], "mcu a down heartbeat_lost");
	assert_string_equal(alloc_mcu(f), "other_platform"); /* nothing up in p1-r1, p1-r2 */
	/* one heartbeat is not enough (rise 2), two are */
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 2, 0, 0, t0 + 10 * HB), 0);
	assert_string_equal(rms_mcu_state_name(rms_inv_mcu(f->inv, "a")), "down");
	/* a gap longer than the detection window restarts the count */
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 3, 0, 0, t0 + 20 * HB), 0);
	assert_string_equal(rms_mcu_state_name(rms_inv_mcu(f->inv, "a")), "down");
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 4, 0, 0, t0 + 21 * HB), 0);
	assert_string_equal(rms_mcu_state_name(rms_inv_mcu(f->inv, "a")), "up");
	assert_string_equal(f->ev.lines[2], "mcu a up heartbeat_resumed");
	/* a registration brings the VRS back at once */
	f->now = t0 + 21 * HB;
	vrs(f, "v", "p1-r1", 10);
	assert_string_equal(f->ev.lines[3], "vrs v up registered");
	assert_int_equal(f->ev.n, 4);
}

/* One forged heartbeat never pins an MCU's seq (issue 22: seq 2^63-1 made
 * rms declare a live MCU down for good): a seq further ahead than the time
 * allows is refused; a plausible one accepted is undone by the MCU's own
 * next two heartbeats. */
static void test_forged_seq_does_not_pin(void **state)
{
	struct fix *f = *state;
	int64_t t0 = f->now;

	mcu(f, "a", "p1-r1", 10, false, 100, 100, false);
	f->ev.n = 0;
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 1, 0, 0, t0 + HB), 0);
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", INT64_MAX, 0, 0, t0 + HB + 1), -ERANGE);
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 1 + RMS_SEQ_PER_MS + RMS_SEQ_SLACK + 1, 0, 0, t0 + HB + 1),
			 -ERANGE);
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 2, 0, 0, t0 + 2 * HB), 0);
	/* a clock, even in microseconds, fits: as far ahead as the time allows */
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 2 + 10 * HB * RMS_SEQ_PER_MS + RMS_SEQ_SLACK + 1, 0, 0,
					       t0 + 12 * HB),
			 -ERANGE);
	assert_int_equal(
		rms_inv_heartbeat_mcu(f->inv, "a", 2 + 10 * HB * RMS_SEQ_PER_MS + RMS_SEQ_SLACK, 0, 0, t0 + 12 * HB),
		0);
	/* that one was forged: the MCU's own counter, lower, comes back */
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 12, 0, 0, t0 + 13 * HB), -EALREADY);
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 12, 0, 0, t0 + 13 * HB), -EALREADY); /* repeated */
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 13, 0, 0, t0 + 14 * HB), 0);
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 14, 0, 0, t0 + 15 * HB), 0);
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 13, 0, 0, t0 + 15 * HB), -EALREADY);
	rms_inv_tick(f->inv, t0 + 17 * HB);
	assert_string_equal(rms_mcu_state_name(rms_inv_mcu(f->inv, "a")), "up");
	assert_int_equal(f->ev.n, 0); /* never declared down */
}

/* An MCU is bound to the broker user that registered it (issue 22: a
 * re-registration of an MCU id replaced its routing key, so its commands went
 * elsewhere): while it is up, another user may not register it, and its
 * key stays; once it is down, anyone may. */
static void test_owner_binding(void **state)
{
	struct fix *f = *state;
	struct rms_mcu_reg r = { .id = "a",
				 .key = "key-a",
				 .room = "p1-r1",
				 .platform = "p1",
				 .cap_confs = 10,
				 .cap_ports = 160,
				 .owner = "mcu-a" };
	struct rms_vrs_reg v = { .id = "v", .room = "p1-r1", .platform = "p1", .capacity = 5, .owner = "mcu-a" };
	char err[256];

	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), 0);
	assert_string_equal(rms_inv_owner(f->inv, "a", false), "mcu-a");
	assert_null(rms_inv_owner(f->inv, "nobody", false));
	/* the same user again: taken (a reconnection) */
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), 0);
	/* another user, while it is up: refused, its key unchanged */
	r.owner = "mcu-evil";
	r.key = "key-evil";
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "registered by broker user mcu-a"));
	assert_string_equal(rms_inv_mcu(f->inv, "a")->key, "key-a");
	assert_string_equal(rms_inv_owner(f->inv, "a", false), "mcu-a");
	/* the same for a VRS */
	assert_int_equal(rms_inv_register_vrs(f->inv, &v, f->now, err, sizeof(err)), 0);
	v.owner = "mcu-evil";
	assert_int_equal(rms_inv_register_vrs(f->inv, &v, f->now, err, sizeof(err)), -EPERM);
	assert_string_equal(rms_inv_owner(f->inv, "v", true), "mcu-a");
	/* down (heartbeats lost): another user may register it, and owns it */
	rms_inv_tick(f->inv, f->now + 10 * HB);
	assert_string_equal(rms_mcu_state_name(rms_inv_mcu(f->inv, "a")), "down");
	f->now += 10 * HB;
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), 0);
	assert_string_equal(rms_inv_owner(f->inv, "a", false), "mcu-evil");
	assert_string_equal(rms_inv_mcu(f->inv, "a")->key, "key-evil");
}

static void test_restart_rebuild_no_double_count(void **state)
{
	struct fix *f = *state;
	struct rms_mcu_reg r = { .id = "a",
				 .key = "a",
				 .room = "p1-r1",
				 .platform = "p1",
				 .cap_confs = 10,
				 .cap_ports = 1000,
				 .running_confs = 8,
				 .used_ports = 128 };
	char err[256];
	struct rms_result res;

	mcu(f, "a", "p1-r1", 10, false, 100, 100, false);
	for (int i = 0; i < 8; i++) {
		res = alloc_in(f, NULL, false, false);
		assert_int_equal(rms_inv_confirm(f->inv, res.reservation), 0);
	}
	assert_int_equal(rms_mcu_running(rms_inv_mcu(f->inv, "a")), 8);
	/* a new leader forgets everything; the MCU registers with its 8 */
	rms_inv_reset(f->inv, 8);
	assert_null(rms_inv_mcu(f->inv, "a"));
	assert_int_equal(rms_inv_nallocations(f->inv), 0);
	assert_int_equal(rms_inv_register_mcu(f->inv, &r, f->now, err, sizeof(err)), 0);
	assert_int_equal(rms_mcu_running(rms_inv_mcu(f->inv, "a")), 8);
	res = alloc_in(f, NULL, false, false);
	assert_int_equal(res.reason, RMS_OK);
	assert_memory_equal(res.reservation, "8-", 2);
	assert_int_equal(rms_inv_confirm(f->inv, res.reservation), 0);
	res = alloc_in(f, NULL, false, false);
	assert_int_equal(rms_inv_confirm(f->inv, res.reservation), 0);
	assert_int_equal(alloc_in(f, "p1-r3", false, false).reason, RMS_NO_CAPACITY); /* 10 of 10 */
	/* its next heartbeat reports the 10: still 10, not 12 */
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 1, 10, 160, f->now), 0);
	assert_int_equal(rms_mcu_running(rms_inv_mcu(f->inv, "a")), 10);
	/* one ended and was released; the next report says 9 */
	assert_int_equal(rms_inv_release(f->inv, res.reservation), 0);
	assert_int_equal(rms_mcu_running(rms_inv_mcu(f->inv, "a")), 9);
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 2, 9, 144, f->now), 0);
	assert_int_equal(rms_mcu_running(rms_inv_mcu(f->inv, "a")), 9);
}

static void test_capability_query(void **state)
{
	struct fix *f = *state;
	bool h265, r1080, xmpu;
	const char *room = NULL;

	assert_int_equal(rms_inv_capability(f->inv, "ud1", &h265, &r1080, &xmpu, &room), 0);
	assert_string_equal(room, "p1-r1");
	assert_false(h265 || r1080 || xmpu);
	mcu(f, "a", "p1-r1", 10, true, 100, 100, false);
	mcu(f, "b", "p1-r2", 10, false, 100, 100, false);
	assert_int_equal(rms_inv_capability(f->inv, "ud1", &h265, &r1080, &xmpu, &room), 0);
	assert_true(h265);
	assert_true(r1080);
	assert_false(xmpu);
	assert_int_equal(rms_inv_capability(f->inv, "ud2", &h265, &r1080, &xmpu, &room), 0);
	assert_false(h265);
	assert_int_equal(rms_inv_capability(f->inv, "nobody", &h265, &r1080, &xmpu, &room), -ENOENT);
}

static void test_listing_and_room_move(void **state)
{
	struct fix *f = *state;
	const struct rms_mcu **l;
	size_t n;

	mcu(f, "b", "p1-r1", 10, false, 100, 100, false);
	mcu(f, "a", "p1-r1", 10, false, 100, 100, false);
	mcu(f, "c", "p1-r2", 10, false, 100, 100, false);
	l = rms_inv_mcus(f->inv, NULL, &n);
	assert_int_equal(n, 3);
	assert_string_equal(l[0]->id, "a");
	assert_string_equal(l[2]->id, "c");
	free(l);
	/* b moves to p1-r2: it is allocated there, no longer in p1-r1 */
	mcu(f, "b", "p1-r2", 10, false, 100, 1, false);
	l = rms_inv_mcus(f->inv, "p1-r1", &n);
	assert_int_equal(n, 1);
	assert_string_equal(l[0]->id, "a");
	free(l);
	assert_string_equal(alloc_in(f, "p1-r2", false, false).mcu->id, "b");
}

/* rms's own broker link down: no MCU is declared down for heartbeats that
 * could not come, and once it is back each gets a whole window from then. */
static void test_blind_while_broker_down(void **state)
{
	struct fix *f = *state;
	int64_t t0 = f->now;

	mcu(f, "a", "p1-r1", 10, false, 100, 100, false);
	f->ev.n = 0;
	rms_inv_blind(f->inv, true, t0 + HB, 0);
	rms_inv_tick(f->inv, t0 + 20 * HB); /* long silence, but rms could not hear */
	assert_int_equal(f->ev.n, 0);
	assert_true(rms_inv_settling(f->inv, t0 + 20 * HB));
	rms_inv_blind(f->inv, false, t0 + 20 * HB, 0);
	assert_false(rms_inv_settling(f->inv, t0 + 20 * HB));
	rms_inv_tick(f->inv, t0 + 20 * HB + 3 * HB); /* a whole window from the link's return */
	assert_int_equal(f->ev.n, 0);
	rms_inv_tick(f->inv, t0 + 20 * HB + 3 * HB + 1); /* then silence counts again */
	assert_int_equal(f->ev.n, 1);
	assert_string_equal(f->ev.lines[0], "mcu a down heartbeat_lost");
}

/* A grace longer than the window: the MCUs re-connect to the broker with
 * their own back-off after it returns; a shorter one gives the window. */
static void test_blind_return_grace(void **state)
{
	struct fix *f = *state;
	int64_t t0 = f->now, back = t0 + 30 * HB;

	mcu(f, "a", "p1-r1", 10, false, 100, 100, false);
	f->ev.n = 0;
	rms_inv_blind(f->inv, true, t0 + HB, 20 * HB);
	rms_inv_blind(f->inv, false, back, 20 * HB);
	rms_inv_tick(f->inv, back + 20 * HB); /* the whole grace */
	assert_int_equal(f->ev.n, 0);
	rms_inv_tick(f->inv, back + 20 * HB + 1);
	assert_int_equal(f->ev.n, 1);
	/* The MCU comes back; then a grace shorter than the window changes nothing. */
	mcu(f, "a", "p1-r1", 10, false, 100, 100, false);
	f->ev.n = 0;
	rms_inv_blind(f->inv, true, f->now, HB);
	rms_inv_blind(f->inv, false, f->now + 5 * HB, HB);
	rms_inv_tick(f->inv, f->now + 5 * HB + 3 * HB);
	assert_int_equal(f->ev.n, 0);
	rms_inv_tick(f->inv, f->now + 5 * HB + 3 * HB + 1);
	assert_int_equal(f->ev.n, 1);
}

/* After the broker came back, an MCU not heard again gets nothing: a create
 * sent to it would wait in its queue. A heartbeat (or a registration) ends it. */
static void test_unheard_after_broker_return(void **state)
{
	struct fix *f = *state;
	struct rms_result res;

	mcu(f, "a", "p1-r1", 10, false, 100, 100, false);
	rms_inv_blind(f->inv, true, f->now + HB, 20 * HB);
	rms_inv_blind(f->inv, false, f->now + 2 * HB, 20 * HB);
	res = alloc_in(f, "p1-r1", false, false);
	assert_int_not_equal(res.reason, RMS_OK);
	assert_true(res.unsure); /* a registration may change it: a warming rms says not_active */
	assert_non_null(strstr(res.detail, "p1-r1: no MCU up"));
	assert_int_equal(rms_inv_heartbeat_mcu(f->inv, "a", 1, 0, 0, f->now + 3 * HB), 0);
	res = alloc_in(f, "p1-r1", false, false);
	assert_int_equal(res.reason, RMS_OK);
	assert_string_equal(res.mcu->id, "a");
}

/* A new leader: no MCU declared down for silence until the quiet time ends. */
static void test_quiet_after_election(void **state)
{
	struct fix *f = *state;
	int64_t t0 = f->now;

	mcu(f, "a", "p1-r1", 10, false, 100, 100, false);
	f->ev.n = 0;
	rms_inv_quiet(f->inv, t0 + 10 * HB);
	assert_true(rms_inv_settling(f->inv, t0));
	rms_inv_tick(f->inv, t0 + 10 * HB - 1); /* silent for more than a window, but quiet */
	assert_int_equal(f->ev.n, 0);
	assert_true(rms_inv_settling(f->inv, t0 + 10 * HB - 1));
	assert_false(rms_inv_settling(f->inv, t0 + 10 * HB));
	rms_inv_tick(f->inv, t0 + 10 * HB);
	assert_int_equal(f->ev.n, 1);
	assert_string_equal(f->ev.lines[0], "mcu a down heartbeat_lost");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_by_boot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capability_then_priority, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_capability_room_domain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_weighted_least_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup_mcus_and_exclude, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exclude_rooms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_needs_vrs_in_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reservation_expiry_confirm_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_loss_and_rise, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_seq_does_not_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_binding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_rebuild_no_double_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capability_query, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listing_and_room_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blind_while_broker_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blind_return_grace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiet_after_election, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unheard_after_broker_return, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
