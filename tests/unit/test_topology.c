/* The topology model: the good fixture loads and answers every lookup; every
 * bad fixture (tests/fixtures/topology-bad-*.json) is refused with a message
 * naming the offending item; the ZooKeeper node form round-trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <glob.h>
#include <stdbool.h>

#include <confdr/topology.h>

#define FIX CONFDR_SOURCE_DIR "/tests/fixtures/"

static struct cdr_topology *load_good(void)
{
	struct cdr_topology *t = NULL;
	char err[2048];
	int ret = cdr_topology_load_files(FIX "topology-good.json", FIX "topology-good-endpoints.json", &t, err,
					  sizeof(err));

	if (ret)
		fail_msg("good fixture refused: %s", err);
	return t;
}

static void test_good_lookups(void **state)
{
	struct cdr_topology *t = load_good();
	const struct cdr_platform *p;
	const struct cdr_room *r;
	const struct cdr_user_domain *d;
	const struct cdr_endpoint *ep;

	(void)state;
	assert_int_equal(cdr_topology_nplatforms(t), 2);
	assert_int_equal(cdr_topology_nrooms(t), 3);
	assert_int_equal(cdr_topology_nuser_domains(t), 3);
	assert_true(cdr_topology_has_endpoints(t));

	p = cdr_topology_platform(t, "p1");
	assert_non_null(p);
	assert_string_equal(p->name, "Platform one");
	assert_string_equal(p->backup_platform, "p2");
	assert_string_equal(p->main_room, "p1-r1");
	assert_null(cdr_topology_platform(t, "p3"));
	assert_null(cdr_topology_platform(t, NULL));

	r = cdr_topology_room(t, "p1-r1");
	assert_non_null(r);
	assert_string_equal(r->platform, "p1");
	assert_int_equal(r->nbackup_rooms, 2);
	assert_string_equal(r->backup_rooms[0], "p1-r2"); /* order kept */
	assert_string_equal(r->backup_rooms[1], "p2-r1");
	assert_null(cdr_topology_room(t, "p1-r9"));

	d = cdr_topology_user_domain(t, "ud-p1-b");
	assert_non_null(d);
	assert_string_equal(d->platform, "p1");
	assert_string_equal(d->room, "p1-r2");
	assert_null(cdr_topology_user_domain(t, "ud-x"));

	r = cdr_topology_main_room(t, "p2");
	assert_non_null(r);
	assert_string_equal(r->id, "p2-r1");
	assert_null(cdr_topology_main_room(t, "p3"));

	ep = cdr_topology_main_endpoint(t, "p1", CDR_SVC_MQ);
	assert_non_null(ep);
	assert_string_equal(ep->host, "127.0.0.1");
	assert_int_equal(ep->port, 17672);
	assert_string_equal(ep->vhost, "p1");
	ep = cdr_topology_main_endpoint(t, "p2", CDR_SVC_MYSQL);
	assert_non_null(ep);
	assert_int_equal(ep->port, 17306);
	assert_string_equal(ep->database, "confdr_p2");
	ep = cdr_topology_endpoint(t, "p1", "p1-r1", CDR_SVC_REDIS);
	assert_non_null(ep);
	assert_int_equal(ep->port, 17379);
	assert_null(ep->vhost);
	assert_int_equal(ep->db, 3);
	assert_int_equal(cdr_topology_endpoint(t, "p2", "p2-r1", CDR_SVC_REDIS)->db, 0); /* not given */
	/* a room without endpoints */
	assert_null(cdr_topology_endpoint(t, "p1", "p1-r2", CDR_SVC_REDIS));

	ep = cdr_topology_replica(t, "p1", CDR_SVC_REDIS);
	assert_non_null(ep);
	assert_int_equal(ep->port, 17381);
	assert_int_equal(ep->db, 3);
	assert_string_equal(ep->on_platform, "p2");
	assert_null(cdr_topology_replica(t, "p1", CDR_SVC_MQ));

	/* iteration is in id order */
	assert_string_equal(cdr_topology_platform_at(t, 0)->id, "p1");
	assert_string_equal(cdr_topology_room_at(t, 2)->id, "p2-r1");
	assert_string_equal(cdr_topology_user_domain_at(t, 0)->id, "ud-p1-a");
	assert_null(cdr_topology_platform_at(t, 2));
	cdr_topology_free(t);
}

static void test_without_endpoints(void **state)
{
	struct cdr_topology *t = NULL;
	char err[512];

	(void)state;
	assert_int_equal(cdr_topology_load_files(FIX "topology-good.json", NULL, &t, err, sizeof(err)), 0);
	assert_false(cdr_topology_has_endpoints(t));
	assert_null(cdr_topology_main_endpoint(t, "p1", CDR_SVC_MQ));
	assert_non_null(cdr_topology_main_room(t, "p1"));
	cdr_topology_free(t);
}

struct bad {
	const char *file;
	const char *endpoints; /* NULL: none */
	const char *expect[6]; /* each must appear in the message */
};

static const struct bad bads[] = {
	{ "topology-bad-unknown-platform.json", NULL, { "room \"p1-r2\": unknown platform \"p9\"" } },
	{ "topology-bad-self-backup.json", NULL, { "room \"p1-r2\": its backup rooms name the room itself" } },
	{ "topology-bad-unknown-backup-room.json", NULL, { "room \"p2-r1\": unknown backup room \"p3-r1\"" } },
	{ "topology-bad-foreign-main-room.json",
	  NULL,
	  { "platform \"p2\": main room \"p1-r2\" belongs to platform \"p1\"" } },
	{ "topology-bad-domain-room.json",
	  NULL,
	  { "user domain \"ud-p2-a\": room \"p1-r1\" belongs to platform \"p1\", not \"p2\"" } },
	{ "topology-bad-unknown-backup-platform.json", NULL, { "platform \"p1\": unknown backup platform \"p7\"" } },
	{ "topology-bad-backup-twice.json", NULL, { "room \"p1-r1\": backup room \"p2-r1\" listed twice" } },
	{ "topology-bad-missing-field.json", NULL, { "platform \"p2\": missing \"main_room\"" } },
	{ "topology-bad-id.json", NULL, { "user domain \"ud/evil\": bad id" } },
	{ "topology-bad-duplicate.json", NULL, { "topology-bad-duplicate.json:", "duplicate object key", "p1-r1" } },
	{ "topology-bad-syntax.json", NULL, { "topology-bad-syntax.json:1:" } },
	{ "topology-good.json",
	  "topology-bad-endpoints.json",
	  { "endpoints \"p1\": room \"p2-r1\" belongs to platform \"p2\"",
	    "endpoint \"p2/p2-r1/redis\": \"port\" must be an integer in 1..65535",
	    "endpoints \"p2/p2-r1\": unknown service \"ftp\"",
	    "replica \"replicas/p1/redis\": unknown platform \"p5\" in \"on_platform\"",
	    "endpoint \"p1/p1-r1/mysql\": \"db\" is for redis endpoints only",
	    "endpoint \"replicas/p2/redis\": \"db\" must be an integer in 0..65535" } },
};

static void test_bad_fixtures(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct cdr_topology *t = NULL;
		char file[512], eps[512], err[4096];
		int ret;

		snprintf(file, sizeof(file), FIX "%s", bads[i].file);
		if (bads[i].endpoints)
			snprintf(eps, sizeof(eps), FIX "%s", bads[i].endpoints);
		ret = cdr_topology_load_files(file, bads[i].endpoints ? eps : NULL, &t, err, sizeof(err));
		if (ret != -EINVAL)
			fail_msg("%s: expected -EINVAL, got %d (%s)", bads[i].file, ret, err);
		assert_null(t);
		for (size_t k = 0; k < 4 && bads[i].expect[k]; k++)
			if (!strstr(err, bads[i].expect[k]))
				fail_msg("%s: message lacks \"%s\":\n%s", bads[i].file, bads[i].expect[k], err);
	}
}

/* Every bad fixture on disk is in the table above (a new one must say what
 * it expects). */
static void test_every_bad_fixture_listed(void **state)
{
	glob_t g;

	(void)state;
	assert_int_equal(glob(FIX "topology-bad-*.json", 0, NULL, &g), 0);
	assert_true(g.gl_pathc >= 10);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		bool found = false;
		for (size_t k = 0; k < sizeof(bads) / sizeof(bads[0]); k++)
			found |= strcmp(bads[k].file, base) == 0 ||
				 (bads[k].endpoints && strcmp(bads[k].endpoints, base) == 0);
		if (!found)
			fail_msg("fixture %s is not checked by test_bad_fixtures", base);
	}
	globfree(&g);
}

static void expect_refused(const char *json, const char *expect)
{
	struct cdr_topology *t = NULL;
	char err[2048];
	int ret = cdr_topology_parse(json, strlen(json), NULL, 0, &t, err, sizeof(err));

	if (ret != -EINVAL)
		fail_msg("accepted (%d): %s", ret, json);
	if (!strstr(err, expect))
		fail_msg("message lacks \"%s\": %s", expect, err);
	assert_null(t);
}

static void test_bad_strings(void **state)
{
	(void)state;
	expect_refused("[]", "the document must be an object");
	expect_refused("{\"rooms\": {}, \"user_domains\": {}}", "missing \"platforms\"");
	expect_refused("{\"platforms\": [], \"rooms\": {}, \"user_domains\": {}}", "\"platforms\" must be an object");
	expect_refused("{\"platforms\": {\"p1\": 3}, \"rooms\": {}, \"user_domains\": {}}",
		       "platform \"p1\" must be an object");
	expect_refused("{\"platforms\": {\"p1\": {\"name\": 1, \"main_room\": \"r\"}}, \"rooms\": {\"r\": "
		       "{\"platform\": \"p1\"}}, \"user_domains\": {}}",
		       "platform \"p1\": \"name\" must be a non-empty string");
	expect_refused("{\"platforms\": {\"p1\": {\"name\": \"n\", \"main_room\": \"r\"}}, \"rooms\": {\"r\": "
		       "{\"platform\": \"p1\", \"backup_rooms\": \"r2\"}}, \"user_domains\": {}}",
		       "room \"r\": \"backup_rooms\" must be an array");
	expect_refused("{\"platforms\": {\"\": {\"name\": \"n\", \"main_room\": \"r\"}}, \"rooms\": {}, "
		       "\"user_domains\": {}}",
		       "bad id");
	expect_refused("{\"platforms\": {}, \"rooms\": {}, \"user_domains\": {\"u\": {\"platform\": \"p\"}}}",
		       "user domain \"u\": missing \"room\"");
	expect_refused("{\"platforms\": {}", "line 1");
}

/* A room without its platform, with endpoints naming it: refused, not a
 * crash (it crashed every daemon that read it: issue 22). */
static void test_room_without_platform_and_endpoints(void **state)
{
	static const char topo[] = "{\"platforms\": {\"p1\": {}}, \"rooms\": {\"p1-r1\": {}}, \"user_domains\": {}}";
	static const char eps[] = "{\"p1\": {\"p1-r1\": {}}}";
	struct cdr_topology *t = NULL;
	char err[2048];

	(void)state;
	assert_int_equal(cdr_topology_parse(topo, strlen(topo), eps, strlen(eps), &t, err, sizeof(err)), -EINVAL);
	assert_null(t);
	assert_non_null(strstr(err, "room \"p1-r1\": missing \"platform\""));
}

/* A topology whose room r0 lists k backup rooms r1..rk; its length. */
static size_t backup_doc(char *doc, size_t cap, int k)
{
	size_t n = (size_t)snprintf(doc, cap,
				    "{\"platforms\": {\"p1\": {\"name\": \"P\", \"main_room\": \"r0\"}}, "
				    "\"rooms\": {\"r0\": {\"platform\": \"p1\", \"backup_rooms\": [");

	for (int i = 1; i <= k; i++)
		n += (size_t)snprintf(doc + n, cap - n, "%s\"r%d\"", i > 1 ? ", " : "", i);
	n += (size_t)snprintf(doc + n, cap - n, "]}");
	for (int i = 1; i <= k; i++)
		n += (size_t)snprintf(doc + n, cap - n, ", \"r%d\": {\"platform\": \"p1\"}", i);
	return n + (size_t)snprintf(doc + n, cap - n, "}, \"user_domains\": {}}");
}

/* Beyond the size limits: refused whole, saying which limit. */
static void test_limits(void **state)
{
	struct cdr_topology *t = NULL;
	char err[2048];
	size_t cap = 64 * 1024, n;
	char *doc = malloc(cap);

	(void)state;
	assert_non_null(doc);
	n = backup_doc(doc, cap, CDR_TOPO_MAX_BACKUP_ROOMS + 1);
	assert_int_equal(cdr_topology_parse(doc, n, NULL, 0, &t, err, sizeof(err)), -EINVAL);
	assert_null(t);
	assert_non_null(strstr(err, "room \"r0\": 17 backup rooms: at most 16"));
	n = backup_doc(doc, cap, CDR_TOPO_MAX_BACKUP_ROOMS);
	assert_int_equal(cdr_topology_parse(doc, n, NULL, 0, &t, err, sizeof(err)), 0);
	cdr_topology_free(t);
	t = NULL;

	/* one room more than allowed: only the limit is reported, not 1025
	 * rooms without a platform */
	n = (size_t)snprintf(doc, cap, "{\"platforms\": {}, \"rooms\": {");
	for (int i = 0; i <= CDR_TOPO_MAX_ROOMS; i++)
		n += (size_t)snprintf(doc + n, cap - n, "%s\"r%d\": {}", i ? ", " : "", i);
	n += (size_t)snprintf(doc + n, cap - n, "}, \"user_domains\": {}}");
	assert_true(n < cap);
	assert_int_equal(cdr_topology_parse(doc, n, NULL, 0, &t, err, sizeof(err)), -EINVAL);
	assert_null(t);
	assert_non_null(strstr(err, "1025 rooms: at most 1024"));
	assert_null(strstr(err, "missing"));
	free(doc);
}

/* A platform without a backup is allowed (the last DR platform); unknown
 * member names are ignored. */
static void test_optional_and_unknown_members(void **state)
{
	const char *json = "{\"platforms\": {\"p1\": {\"name\": \"n\", \"main_room\": \"r\", \"extra\": 1}}, "
			   "\"rooms\": {\"r\": {\"platform\": \"p1\"}}, \"user_domains\": {}, \"comment\": \"x\"}";
	struct cdr_topology *t = NULL;
	char err[512];

	(void)state;
	assert_int_equal(cdr_topology_parse(json, strlen(json), NULL, 0, &t, err, sizeof(err)), 0);
	assert_null(cdr_topology_platform(t, "p1")->backup_platform);
	assert_int_equal(cdr_topology_room(t, "r")->nbackup_rooms, 0);
	cdr_topology_free(t);
}

/* The ZooKeeper nodes, re-assembled into the file format, give the same
 * topology; dump() re-parses into the same one. */
struct collected {
	char *platforms, *rooms, *domains;
	int n;
};

static void append(char **s, const char *key, const char *json)
{
	char *n;
	assert_true(asprintf(&n, "%s%s\"%s\": %s", *s ? *s : "", *s ? ", " : "", key, json) > 0);
	free(*s);
	*s = n;
}

static void collect(const char *path, const char *json, void *arg)
{
	struct collected *c = arg;
	const char *last = strrchr(path, '/') + 1;

	c->n++;
	if (strncmp(path, "/topology/platforms/", 20) == 0)
		append(&c->platforms, last, json);
	else if (strncmp(path, "/topology/rooms/", 16) == 0)
		append(&c->rooms, last, json);
	else if (strncmp(path, "/topology/user_domains/", 23) == 0)
		append(&c->domains, last, json);
	else
		assert_true(strncmp(path, "/endpoints/", 11) == 0 || strncmp(path, "/replicas/", 10) == 0);
}

static void test_nodes_round_trip(void **state)
{
	struct cdr_topology *t = load_good(), *t2 = NULL, *t3 = NULL;
	struct collected c = { 0 };
	char *doc, *dump, *dump2, *dump3, err[1024];

	(void)state;
	assert_int_equal(cdr_topology_nodes(t, collect, &c), 0);
	assert_int_equal(c.n, 2 + 3 + 3 + 6 + 2); /* 6 endpoints, 2 replicas */
	assert_true(asprintf(&doc, "{\"platforms\": {%s}, \"rooms\": {%s}, \"user_domains\": {%s}}", c.platforms,
			     c.rooms, c.domains) > 0);
	assert_int_equal(cdr_topology_parse(doc, strlen(doc), NULL, 0, &t2, err, sizeof(err)), 0);
	assert_string_equal(cdr_topology_room(t2, "p1-r1")->backup_rooms[1], "p2-r1");
	assert_string_equal(cdr_topology_platform(t2, "p2")->backup_platform, "p1");

	/* dump -> parse -> dump is stable */
	dump = cdr_topology_dump(t);
	assert_non_null(dump);
	assert_non_null(strstr(dump, "\"replicas\""));
	assert_non_null(strstr(dump, "\"database\": \"confdr_p1\""));
	assert_non_null(strstr(dump, "\"db\": 3"));
	dump2 = cdr_topology_dump(t2);
	assert_non_null(dump2);
	assert_null(strstr(dump2, "\"endpoints\""));
	assert_int_equal(cdr_topology_parse(dump2, strlen(dump2), NULL, 0, &t3, err, sizeof(err)), 0);
	dump3 = cdr_topology_dump(t3);
	assert_string_equal(dump2, dump3);

	free(dump);
	free(dump2);
	free(dump3);
	free(doc);
	free(c.platforms);
	free(c.rooms);
	free(c.domains);
	cdr_topology_free(t);
	cdr_topology_free(t2);
	cdr_topology_free(t3);
}

static void test_services(void **state)
{
	enum cdr_service s;

	(void)state;
	assert_int_equal(cdr_service_parse("redis", &s), 0);
	assert_int_equal(s, CDR_SVC_REDIS);
	assert_string_equal(cdr_service_name(CDR_SVC_MYSQL), "mysql");
	assert_int_equal(cdr_service_parse("ftp", &s), -EINVAL);
}

static void test_missing_file(void **state)
{
	struct cdr_topology *t = NULL;
	char err[512];

	(void)state;
	assert_int_equal(cdr_topology_load_files(FIX "no-such-topology.json", NULL, &t, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no-such-topology.json"));
	assert_null(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_lookups),	 cmocka_unit_test(test_without_endpoints),
		cmocka_unit_test(test_bad_fixtures),	 cmocka_unit_test(test_every_bad_fixture_listed),
		cmocka_unit_test(test_bad_strings),	 cmocka_unit_test(test_room_without_platform_and_endpoints),
		cmocka_unit_test(test_limits),		 cmocka_unit_test(test_optional_and_unknown_members),
		cmocka_unit_test(test_nodes_round_trip), cmocka_unit_test(test_services),
		cmocka_unit_test(test_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
