/* pms: the pms of the platforms it backs up. Every pms (active or standby)
 * writes its beat to /heartbeat/<platform>/pms every beat_interval; after
 * each write that succeeded, the active pms reads the beat nodes of the
 * platforms it backs up, and every peer_poll it counts their pms instances
 * under /live. Both feed the rule of peer.c, and state.c decides. */
#include "pms_int.h"

#include <unistd.h>

#define BEAT_FMT "/heartbeat/%s/pms"

/* ---- the own beat ---- */

static void quorum_feed(struct pms *s, bool ok, const char *why)
{
	bool held = pms_quorum_held(&s->quorum), before = s->quorum.last_ok_sent_ms >= 0;

	pms_quorum_feed(&s->quorum, ok, s->beat_sent_ms);
	if (held && !ok)
		cdr_warn("cannot write this pms's beat to ZooKeeper (%s): no platform is declared down until a write "
			 "succeeds again",
			 why);
	else if (!held && ok && before)
		cdr_notice("this pms's beat is written to ZooKeeper again");
}

static void read_peer_beats(struct pms *s);

static void on_own_state(const struct cdr_zk_result *r, void *arg)
{
	struct pms *s = arg;
	struct pms_state st;

	s->own_reading = false;
	if (r->status == -ENOENT) {
		s->own_known = true; /* never written: up */
		s->own_down = false;
		s->own_epoch = 0;
		s->own_read_ms = cdr_mono_i64();
	} else if (r->status == 0 && r->data && pms_plat_state_parse(r->data, r->len, &st) == 0) {
		s->own_known = true;
		s->own_down = st.bad;
		s->own_epoch = st.epoch;
		s->own_read_ms = cdr_mono_i64();
	}
}

/* After an own write succeeded, on the same session: this platform's state
 * as ZooKeeper's majority holds it (the bus beat tells it to our css). */
static void read_own_state(struct pms *s)
{
	char path[120];

	if (s->own_reading)
		return;
	snprintf(path, sizeof(path), "/state/%s/platform", s->platform);
	if (cdr_zk_get(s->beat_zk, path, NULL, NULL, on_own_state, s) == 0)
		s->own_reading = true;
}

static void on_beat_written(const struct cdr_zk_result *r, void *arg);

static int beat_write(struct pms *s, bool create)
{
	char path[120], *txt;
	json_t *o;
	int rc;

	snprintf(path, sizeof(path), BEAT_FMT, s->platform);
	o = json_pack("{s:s, s:s, s:I, s:s, s:I}", "platform", s->platform, "instance", s->instance, "pid",
		      (json_int_t)getpid(), "role", s->active ? "active" : "standby", "seq", (json_int_t)s->beat_seq);
	txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!txt)
		return -ENOMEM;
	if (create)
		rc = cdr_zk_create(s->beat_zk, path, txt, strlen(txt), CDR_ZK_PARENTS, on_beat_written, s);
	else
		rc = cdr_zk_set(s->beat_zk, path, txt, strlen(txt), -1, on_beat_written, s);
	free(txt);
	return rc;
}

static void on_beat_written(const struct cdr_zk_result *r, void *arg)
{
	struct pms *s = arg;

	if (r->status == -ECANCELED) {
		s->beat_pending = false;
		return;
	}
	if (r->status == -ENOENT && beat_write(s, true) == 0)
		return; /* the first beat of this platform: created */
	s->beat_pending = false;
	quorum_feed(s, r->status == 0, r->error ? r->error : strerror(-r->status));
	if (r->status == 0) {
		read_peer_beats(s);
		read_own_state(s);
	}
}

void pms_beat(void *arg)
{
	struct pms *s = arg;

	s->beat_seq++;
	pms_bus_beat(s);
	/* One write at a time: a write that hangs proves nothing meanwhile. */
	if (s->beat_pending || !s->beat_zk)
		return;
	s->beat_sent_ms = cdr_mono_i64();
	if (beat_write(s, false) == 0)
		s->beat_pending = true;
}

static void on_beat_session(enum cdr_zk_state state, void *arg)
{
	struct pms *s = arg;
	struct cdr_zk_session z;

	if (state == CDR_ZK_CONNECTED) {
		if (cdr_zk_session(s->beat_zk, &z) == 0 && z.timeout_ms > s->conf.beat_session_ms)
			cdr_warn("zookeeper: the beat session got %u ms, not the %" PRIu64
				 " ms asked (ZooKeeper's minSessionTimeout): a member that stops answering is left "
				 "only after %u ms, longer than the beat limit of %" PRId64 " ms",
				 z.timeout_ms, s->conf.beat_session_ms, z.timeout_ms * 2 / 3,
				 (int64_t)s->conf.beat_misses * (int64_t)s->conf.beat_interval_ms);
		else
			cdr_info("zookeeper: the beat session is connected");
	} else
		cdr_notice("zookeeper: the beat session is %s: no beat is written or read until it is back",
			   cdr_zk_state_name(state));
}

/* The beat's own session (docs/pms.md, Beats): the daemon's session keeps its
 * comfortable timeout for leadership; this one is short, so that a member
 * that stops answering (a link to its host cut) is left within a beat limit
 * while the client goes on through the others. */
int pms_beat_zk_new(struct pms *s, const struct pms_conf *cf)
{
	struct cdr_zk_opts o = { 0 };
	int r;

	o.hosts = cf->base.zk_hosts;
	o.chroot = cf->base.zk_chroot;
	o.session_timeout_ms = (unsigned)cf->beat_session_ms;
	o.user = cf->base.zk_user;
	o.password = cf->base.zk_password;
	o.reconnect_min_ms = (unsigned)cf->base.reconnect_min_ms;
	o.reconnect_max_ms = (unsigned)cf->base.reconnect_max_ms;
	o.on_session = on_beat_session;
	o.arg = s;
	if ((r = cdr_zk_new(cdr_daemon_loop(s->d), &o, &s->beat_zk)) < 0)
		cdr_err("zookeeper: cannot create the beat session's client for %s: %s", o.hosts, strerror(-r));
	return r;
}

/* ---- the peers' beats ---- */

static void peer_log(struct plat *p)
{
	char why[256];
	enum pms_peer_verdict v = pms_peer_judge(&p->w.peer, why, sizeof(why));

	if (v == p->verdict)
		return;
	if (v == PMS_PEER_LATE && p->w.peer.exists && p->w.peer.live != 0)
		cdr_warn("platform %s: its pms has written no beat for %" PRId64 " ms; declared down after %" PRId64
			 " ms unless one comes",
			 p->id, pms_peer_silence(&p->w.peer), (int64_t)p->w.peer.conf.misses * p->w.peer.conf.beat_ms);
	else if (v == PMS_PEER_ALIVE && p->verdict != PMS_PEER_UNKNOWN)
		cdr_notice("platform %s: its pms beats again", p->id);
	else if (v == PMS_PEER_ALIVE)
		cdr_info("platform %s: its pms beats", p->id);
	else if (v == PMS_PEER_DEAD)
		cdr_warn("platform %s: its pms is judged gone: %s", p->id, why);
	else if (v == PMS_PEER_HEARD)
		cdr_warn("platform %s: not declared down: %s", p->id, why);
	p->verdict = v;
}

static void on_peer_beat(const struct cdr_zk_result *r, void *arg)
{
	struct plat *p = arg;
	struct pms *s = p->s;

	p->reading = false;
	if (r->status == -ECANCELED || !s->started)
		return;
	if (r->status < 0 && r->status != -ENOENT)
		return; /* not a fresh read: it proves nothing */
	pms_peer_beat(&p->w.peer, r->status == 0, r->version, p->read_sent_ms, p->read_run_since, cdr_mono_i64());
	peer_log(p);
	pms_decide_plat(p);
}

/* Right after an own write succeeded: each read sees at least what
 * ZooKeeper held when that write was sent. */
static void read_peer_beats(struct pms *s)
{
	char path[120];

	if (!s->started)
		return;
	for (size_t i = 0; i < s->nplats; i++) {
		struct plat *p = &s->plats[i];

		if (!p->owned || p->reading)
			continue;
		snprintf(path, sizeof(path), BEAT_FMT, p->id);
		p->read_sent_ms = s->beat_sent_ms;
		p->read_run_since = s->quorum.run_since_ms;
		if (cdr_zk_exists(s->beat_zk, path, NULL, NULL, on_peer_beat, p) == 0)
			p->reading = true;
	}
}

/* ---- the peers' live nodes ---- */

static void on_peer_children(const struct cdr_zk_result *r, void *arg)
{
	struct plat *p = arg;
	struct pms *s = p->s;
	int n;

	p->polling = false;
	if (r->status == -ECANCELED || !s->started)
		return;
	if (r->status < 0 && r->status != -ENOENT)
		return; /* no session: judged when one is back */
	n = r->status == -ENOENT ? 0 : (int)r->nchildren;
	if (n > 0 && p->w.peer.live <= 0)
		cdr_notice("platform %s: its pms is live (%d instance%s)", p->id, n, n == 1 ? "" : "s");
	else if (n == 0 && p->w.peer.live != 0)
		cdr_warn("platform %s: no pms instance is live (stopped, or its session ended); declared down after "
			 "%" PRIu64 " ms without a beat unless one returns",
			 p->id, s->conf.peer_grace_ms);
	pms_peer_live(&p->w.peer, n, cdr_mono_i64());
	peer_log(p);
	pms_decide_plat(p);
}

void pms_poll_peers(struct pms *s)
{
	char path[160];

	for (size_t i = 0; i < s->nplats; i++) {
		struct plat *p = &s->plats[i];

		if (!p->owned || p->polling)
			continue;
		snprintf(path, sizeof(path), "/live/%s/pms", p->id);
		if (cdr_zk_children(cdr_daemon_zk(s->d), path, NULL, NULL, on_peer_children, p) == 0)
			p->polling = true;
	}
}

void pms_peer_setup(struct plat *p)
{
	const struct pms_conf *c = &p->s->conf;
	struct pms_peer_conf pc = {
		.beat_ms = (int64_t)c->beat_interval_ms,
		.misses = (int)c->beat_misses,
		.grace_ms = (int64_t)c->peer_grace_ms,
	};

	if (!p->w.peer.conf.beat_ms) {
		pms_peer_init(&p->w.peer, &pc);
		p->verdict = PMS_PEER_UNKNOWN;
	}
	p->w.peer.conf = pc; /* a reload applies */
}
