/* css: coming home. A css whose platform was declared down (or that has
 * just become active) serves its own user domains only once its Redis is
 * home: the mark "failback" that confdrctl platform failback puts on the
 * platform's Redis endpoint in ZooKeeper is gone (the endpoint names its own
 * Redis again) and the Redis it is connected to is a master. Until then it
 * acts as if its platform were still down (css_plat_down): creates are
 * refused platform_down, nothing is restored, no list or audit concludes
 * anything, nothing is written. The rule is css_home_step (plan.c). */
#include "css_int.h"

#define HOME_CHECK_MS 250 /* how often the wait looks again */

static void home_verdict(struct css *s, bool redis_master);

static void home_again(struct css *s)
{
	if (!cdr_timer_pending(s->home_timer))
		cdr_timer_start(s->home_timer, HOME_CHECK_MS, false);
}

static void on_home_info(int status, const redisReply *reply, void *arg)
{
	struct css *s = arg;

	if (status == -ECANCELED)
		return;
	home_verdict(s, status == 0 && reply->type == REDIS_REPLY_STRING && strstr(reply->str, "role:master"));
}

static void on_home_endpoint(const struct cdr_zk_result *res, void *arg)
{
	struct css *s = arg;
	struct cdr_redis *r = cdr_daemon_redis(s->d);
	json_t *o;

	if (res->status == -ECANCELED)
		return;
	s->home_read = res->status == 0 || res->status == -ENOENT; /* none: nothing was failed over */
	o = res->status == 0 && res->data ? json_loadb(res->data, res->len, 0, NULL) : NULL;
	s->home_mark = json_is_object(json_object_get(o, "failback"));
	s->home_promoted = json_is_object(json_object_get(o, "failed_over_from"));
	json_decref(o);
	if (!r || !cdr_redis_connected(r) || cdr_redis_command(r, on_home_info, s, "INFO replication") < 0)
		home_verdict(s, false);
}

static const char *home_why(struct css *s, bool redis_master)
{
	if (!s->home_read)
		return "its Redis endpoint could not be read from ZooKeeper";
	if (s->home_mark)
		return "confdrctl platform failback is moving its records home (the mark on its Redis endpoint)";
	if (!redis_master && (!cdr_daemon_redis(s->d) || !cdr_redis_connected(cdr_daemon_redis(s->d))))
		return "its Redis is not connected";
	if (!redis_master)
		return "the Redis it is connected to is not a master yet";
	return "-";
}

static void home_verdict(struct css *s, bool redis_master)
{
	struct css_home_in in = {
		.own_down = css_pms_down(s, s->platform),
		.endpoint_read = s->home_read,
		.failback_mark = s->home_mark,
		.redis_master = redis_master,
		.alarmed = s->home_alarmed,
		.now_ms = cdr_now_ms(),
		.since_ms = s->home_since,
		.alarm_ms = s->conf.failback_wait_ms,
	};
	char msg[400];

	s->home_pending = false;
	if (!s->active || !s->home_wait)
		return;
	switch (css_home_step(&in)) {
	case CSS_HOME_DOWN:
		/* down meanwhile (the verdict was asked while it was up): the
		 * next "up" starts the wait again; until then it consumes to
		 * answer platform_down, as a css that starts while it is down */
		if (!s->consuming)
			css_maybe_consume(s);
		return;
	case CSS_HOME_READY:
		s->home_wait = false;
		cdr_notice("platform %s: its Redis is home after %" PRIu64
			   " ms%s: the view is read again from Redis and its user domains served",
			   s->platform, in.now_ms - in.since_ms,
			   s->home_promoted ? " (still the replica promoted by a takeover: "
					      "confdrctl platform failback moves it back)"
					    : "");
		if (s->home_alarmed) {
			snprintf(msg, sizeof(msg), "its Redis is home after %" PRIu64 " ms", in.now_ms - in.since_ms);
			css_alarm(s, "cleared", "failback_wait", s->platform, msg);
		}
		s->home_alarmed = false;
		if (s->loaded)
			css_drop_view(s); /* read while acting as down: what the backup's css wrote is in Redis */
		css_maybe_consume(s);
		return;
	case CSS_HOME_ALARM:
		s->home_alarmed = true;
		snprintf(msg, sizeof(msg),
			 "platform %s is up but this css has waited %" PRIu64
			 " ms for its Redis to come home (%s): its user domains get platform_down until it does",
			 s->platform, in.now_ms - in.since_ms, home_why(s, redis_master));
		cdr_err("%s", msg);
		css_alarm(s, "major", "failback_wait", s->platform, msg);
		break;
	case CSS_HOME_WAIT:
		if (!s->home_checked)
			cdr_warn("platform %s is up but its Redis is not home yet (%s): acting as down until it is, "
				 "checking every %d ms",
				 s->platform, home_why(s, redis_master), HOME_CHECK_MS);
		break;
	}
	s->home_checked = true;
	home_again(s);
	if (!s->loaded)
		css_maybe_consume(s); /* the view read meanwhile, to answer platform_down */
}

void css_home_check(struct css *s)
{
	const struct cdr_room *main = s->topo ? cdr_topology_main_room(s->topo, s->platform) : NULL;
	struct cdr_zk *zk = cdr_daemon_zk(s->d);
	char path[256];

	if (!s->active || !s->home_wait || s->home_pending || cdr_timer_pending(s->home_timer) ||
	    css_pms_down(s, s->platform))
		return;
	if (!main || !zk) {
		home_again(s);
		return;
	}
	snprintf(path, sizeof(path), "/endpoints/%s/%s/redis", s->platform, main->id);
	s->home_pending = true;
	if (cdr_zk_get(zk, path, NULL, NULL, on_home_endpoint, s) < 0) {
		s->home_pending = false;
		home_again(s);
	}
}

void css_home_tick(void *arg)
{
	css_home_check(arg);
}

void css_home_begin(struct css *s)
{
	s->home_wait = true;
	s->home_checked = false;
	s->home_since = cdr_now_ms();
}
