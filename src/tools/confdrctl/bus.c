/* confdrctl: requests to the daemons (rms, pms, css) of a platform through
 * its broker, as the daemons' own peers send them. */
#include "confdrctl.h"

#include <confdr/loop.h>
#include <confdr/mq.h>
#include <confdr/msg.h>
#include <confdr/topology.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rpc {
	bool done;
	int status;
	json_t *reply; /* the envelope */
	struct ctl *c;
};

static void on_rpc(int status, const struct cdr_mq_delivery *reply, void *arg)
{
	struct rpc *r = arg;

	r->status = status;
	r->reply = reply ? json_loadb(reply->body, reply->len, 0, NULL) : NULL;
	r->done = true;
	cdr_loop_stop(r->c->loop);
}

/* Sends a request to the daemon of platform p through its broker (found in
 * the topology's endpoints) and returns the answer's envelope, or NULL with a
 * message printed (*ex set: EX_UNAVAILABLE). body is stolen. */
json_t *ctl_bus_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *daemon, const char *queue,
		     const char *type, json_t *body, int *ex)
{
	const struct cdr_endpoint *ep = cdr_topology_main_endpoint(t, p, CDR_SVC_MQ);
	const char *user = cli_env("CONFDR_AMQP_USER", "ops"), *pass = cli_env("CONFDR_AMQP_PASSWORD", NULL);
	struct cdr_mq_opts o = { 0 };
	struct cdr_mq *mq = NULL;
	struct rpc r = { .c = c };
	char url[1536], shown[512], id[64], *txt;

	*ex = EX_UNAVAILABLE;
	/* a file's password before one in the environment: cli_broker_open
	 * reads it for a URL without one */
	if (cli_env("CONFDR_AMQP_PASSWORD_FILE", NULL))
		pass = NULL;
	if (!ep) {
		fprintf(stderr, "confdrctl: platform %s has no broker endpoint in ZooKeeper (/endpoints/%s/...)\n", p,
			p);
		json_decref(body);
		return NULL;
	}
	snprintf(url, sizeof(url), "%s://%s%s%s@%s:%u/%s", cli_amqp_scheme(), user, pass ? ":" : "", pass ? pass : "",
		 ep->host, ep->port, ep->vhost ? ep->vhost : "");
	o.url = url;
	o.name = "confdrctl";
	snprintf(id, sizeof(id), "confdrctl-%ld-%s", (long)getpid(), type);
	txt = cdr_msg_encode(type, id, "confdrctl", 0, body);
	if (!txt || cli_broker_open(c->loop, &o, &mq, shown, sizeof(shown)) != 0 ||
	    cdr_mq_request(mq, "", queue, txt, strlen(txt), c->timeout_s * 1000, on_rpc, &r) < 0) {
		fprintf(stderr, "confdrctl: cannot send to the broker of %s\n", p);
		free(txt);
		cdr_mq_free(mq);
		return NULL;
	}
	free(txt);
	ctl_run_until(c, &r.done, c->timeout_s * 1000ull + 2000);
	cdr_mq_free(mq);
	if (r.status || !r.reply) {
		fprintf(stderr, "confdrctl: the %s of %s did not answer within %u s (broker %s:%u vhost %s)\n", daemon,
			p, c->timeout_s, ep->host, ep->port, ep->vhost ? ep->vhost : "");
		json_decref(r.reply);
		return NULL;
	}
	*ex = 0;
	return r.reply;
}

json_t *ctl_rms_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *type, json_t *body,
		     int *ex)
{
	return ctl_bus_call(c, t, p, "rms", CDR_MQ_RMS_REQ_Q, type, body, ex);
}

const char *ctl_body_str(json_t *env, const char *key)
{
	const char *v = json_string_value(json_object_get(json_object_get(env, "body"), key));

	return v ? v : "";
}

bool ctl_is_nack(json_t *env)
{
	const char *type = json_string_value(json_object_get(env, "type"));

	return !type || strstr(type, "_nack") != NULL;
}

/* Asks the daemon of --platform (platform not NULL), or of each platform in
 * turn until one knows what body names: a NACK with reason `unknown` sends
 * the question on to the next platform (other NACKs are printed). body is
 * stolen. Returns the first ACK's envelope with *who its platform, or NULL
 * with *ex EX_FAIL (refused or nobody knows) or EX_UNAVAILABLE (some daemon
 * did not answer). */
json_t *ctl_ask_each(struct ctl *c, const struct cdr_topology *t, const char *platform, const char *daemon,
		     const char *queue, const char *type, json_t *body, const char *unknown, const char **who, int *ex)
{
	*ex = EX_FAIL;
	for (size_t i = 0; i < cdr_topology_nplatforms(t); i++) {
		const char *p = cdr_topology_platform_at(t, i)->id;
		json_t *env;
		int e;

		if (platform && strcmp(platform, p) != 0)
			continue;
		if (!(env = ctl_bus_call(c, t, p, daemon, queue, type, json_incref(body), &e))) {
			*ex = e;
			continue;
		}
		if (!ctl_is_nack(env)) {
			*who = p;
			*ex = 0;
			json_decref(body);
			return env;
		}
		if (platform || strcmp(ctl_body_str(env, "reason"), unknown) != 0)
			fprintf(stderr, "confdrctl: %s of %s: %s: %s\n", daemon, p, ctl_body_str(env, "reason"),
				ctl_body_str(env, "detail"));
		json_decref(env);
	}
	json_decref(body);
	return NULL;
}
