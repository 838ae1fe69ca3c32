/* css: the platform takeover and hand-back. When the platform this css
 * backs up is down, its Redis replica is promoted and published, its records
 * read, its conferences restored here and its domains served; when it is
 * back, its records are handed back. */
#include "css_int.h"

static void takeover_read(struct load *ld, bool ok);

static void on_endpoint_published(const struct cdr_zk_result *res, void *arg)
{
	char *path = arg;

	if (res->status != 0)
		cdr_err("takeover: %s not written in ZooKeeper (%s): other daemons still see the old Redis", path,
			res->error ? res->error : strerror(-res->status));
	else
		cdr_notice("takeover: %s now names the promoted replica", path);
	free(path);
}

struct publish {
	struct css *s;
	char platform[64];
	char path[256];
};

/* The endpoint as it is now in ZooKeeper (not the topology read at the last
 * refresh, which may predate a fail-back): the promoted replica is written
 * over it, with where it pointed as failed_over_from, unless it names the
 * replica already (a restart during the takeover). */
static void on_endpoint_read(const struct cdr_zk_result *res, void *arg)
{
	struct publish *pb = arg;
	struct css *s = pb->s;
	const struct cdr_endpoint *rep;
	struct cdr_zk *zk;
	json_t *cur = NULL, *o = NULL;
	const char *host;
	int port;
	char *txt = NULL, *p;

	if (res->status == -ECANCELED) {
		free(pb);
		return;
	}
	rep = cdr_topology_replica(s->topo, pb->platform, CDR_SVC_REDIS);
	zk = cdr_daemon_zk(s->d);
	if (res->status < 0 && res->status != -ENOENT) {
		cdr_err("takeover: %s not read from ZooKeeper (%s): the promoted replica is not published", pb->path,
			res->error ? res->error : strerror(-res->status));
		goto out;
	}
	if (!rep || !zk)
		goto out;
	cur = res->status == 0 && res->data ? json_loadb(res->data, res->len, 0, NULL) : NULL;
	host = json_string_value(json_object_get(cur, "host"));
	port = (int)json_integer_value(json_object_get(cur, "port"));
	if (host && !strcmp(host, rep->host) && port == (int)rep->port)
		goto out; /* published already */
	o = json_pack("{s:s, s:i, s:s, s:I}", "host", rep->host, "port", (int)rep->port, "promoted_by", s->bus.src,
		      "since", (json_int_t)cdr_wall_i64());
	if (o && rep->db) /* the replica holds the same database index */
		json_object_set_new(o, "db", json_integer(rep->db));
	if (o && host && port > 0)
		json_object_set_new(o, "failed_over_from", json_pack("{s:s, s:i}", "host", host, "port", port));
	txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	p = txt ? strdup(pb->path) : NULL;
	if (!p || cdr_zk_set(zk, pb->path, txt, strlen(txt), -1, on_endpoint_published, p) < 0) {
		cdr_err("takeover: cannot write %s in ZooKeeper", pb->path);
		free(p);
	}
out:
	free(txt);
	json_decref(o);
	json_decref(cur);
	free(pb);
}

/* The promoted replica becomes the platform's Redis in ZooKeeper: its
 * daemons, when they come back, use it (the data is there now), and
 * confdrctl platform failback finds where the original was. */
static void publish_promoted(struct css *s, struct redis_link *l)
{
	const struct cdr_room *main = cdr_topology_main_room(s->topo, l->platform);
	struct cdr_zk *zk = cdr_daemon_zk(s->d);
	struct publish *pb;

	if (!main || !zk || !(pb = calloc(1, sizeof(*pb))))
		return;
	pb->s = s;
	snprintf(pb->platform, sizeof(pb->platform), "%s", l->platform);
	snprintf(pb->path, sizeof(pb->path), "/endpoints/%s/%s/redis", l->platform, main->id);
	if (cdr_zk_get(zk, pb->path, NULL, NULL, on_endpoint_read, pb) < 0) {
		cdr_err("takeover: cannot read %s from ZooKeeper", pb->path);
		free(pb);
	}
}

static void on_promoted(int status, const redisReply *reply, void *arg)
{
	struct redis_link *l = arg;
	struct css *s = l->s;
	struct load *ld;

	if (status == -ECANCELED)
		return;
	if (status < 0 || !css_plat_down(l->platform, s) || !s->consuming) {
		if (status < 0)
			cdr_warn("takeover of %s: its Redis replica not promoted (%s); again in a second", l->platform,
				 css_redis_err(status, reply));
		l->promoting = false;
		return;
	}
	cdr_notice("takeover of %s: its Redis replica is promoted (REPLICAOF NO ONE); reading its conferences",
		   l->platform);
	publish_promoted(s, l);
	if (!(ld = calloc(1, sizeof(*ld)))) {
		l->promoting = false;
		return;
	}
	ld->s = s;
	ld->link = l;
	ld->gen = s->gen;
	ld->t0 = cdr_now_ms();
	ld->done = takeover_read;
	if (cdr_redis_command(l->r, css_on_members, ld, "SMEMBERS confs:all") < 0) {
		l->promoting = false;
		free(ld);
	}
}

static void on_peer_db(bool up, const char *why, void *arg)
{
	struct redis_link *l = arg;

	l->db_up = up;
	if (up) {
		cdr_notice("mysql of %s (its history rows while we serve it): connected", l->platform);
		css_db_kick(l->s);
		return;
	}
	cdr_warn("mysql of %s: %s", l->platform, why ? why : "down");
}

static void takeover_loaded(struct css *s, struct load *ld)
{
	struct redis_link *l = ld->link;
	const struct cdr_endpoint *ep;
	char msg[300];

	l->promoting = false;
	l->serving = true;
	if (!l->db && (ep = cdr_topology_main_endpoint(s->topo, l->platform, CDR_SVC_MYSQL)) && ep->database) {
		const struct css_conf *cf = cdr_daemon_conf(s->d); /* the strings live there */
		struct cdr_db_opts o = {
			.host = ep->host,
			.port = ep->port,
			.user = cf->base.mysql_user,
			.password = cf->base.mysql_password,
			.database = ep->database,
			.connect_timeout_ms = (unsigned)cf->base.mysql_connect_timeout_ms,
			.tls_ca = cf->base.mysql_tls_ca,
			.on_state = on_peer_db,
			.arg = l,
		};

		if (cdr_db_new(cdr_daemon_loop(s->d), &o, &l->db) < 0)
			l->db = NULL;
	}
	snprintf(msg, sizeof(msg),
		 "serving the user domains of %s: %zu of its conferences read in %" PRIu64 " ms, %zu that ran there to "
		 "restore on %s's MCUs",
		 l->platform, ld->loaded, cdr_now_ms() - ld->t0, ld->restore, s->platform);
	cdr_warn("takeover of %s: %s", l->platform, msg);
	css_alarm(s, "major", "platform_takeover", l->platform, msg);
	s->n.lost += ld->restore;
}

/* The failed platform's records are read (view.c's loader), or the read is void. */
static void takeover_read(struct load *ld, bool ok)
{
	if (ok)
		takeover_loaded(ld->s, ld);
	else
		ld->link->promoting = false;
}

/* Platforms this css backs up: taken over while down (and this css's own
 * platform is up), handed back when up. */
void css_takeover_check(struct css *s)
{
	bool again = false;

	for (size_t i = 0; i < s->nlinks; i++) {
		struct redis_link *l = &s->links[i];
		struct css_takeover_in in;

		if (l->own)
			continue;
		in = (struct css_takeover_in){
			.peer_down = css_plat_down(l->platform, s),
			.own_down = css_plat_down(s->platform, s),
			.consuming = s->consuming,
			.serving = l->serving,
			.promoting = l->promoting,
			.replica_up = l->r && cdr_redis_connected(l->r),
		};
		switch (css_takeover_step(&in)) {
		case CSS_TAKEOVER_NONE: break;
		case CSS_TAKEOVER_WAIT:
			if (!in.promoting)
				cdr_warn("takeover of %s: the replica of its Redis is not connected; waiting",
					 l->platform);
			again = true;
			break;
		case CSS_TAKEOVER_PROMOTE:
			l->promoting = true;
			l->since = cdr_now_ms();
			cdr_warn("platform %s is down: taking over its user domains (promoting its Redis replica)",
				 l->platform);
			if (cdr_redis_command(l->r, on_promoted, l, "REPLICAOF NO ONE") < 0)
				l->promoting = false;
			again = true;
			break;
		case CSS_TAKEOVER_HAND_BACK:
			l->serving = false;
			cdr_warn("platform %s is %s: its user domains are its own css's again; the conferences "
				 "running here stay as they are",
				 l->platform, in.peer_down ? "still down, but we stop" : "up");
			css_publish_stats(s); /* serving_for: confdrctl platform failback waits for it */
			break;
		}
	}
	if (again && !cdr_timer_pending(s->takeover_timer))
		cdr_timer_start(s->takeover_timer, 1000, false);
}

void css_takeover_tick(void *arg)
{
	css_takeover_check(arg);
}
