/* /metrics, /healthz and /readyz of every daemon ([daemon] metrics_listen,
 * docs/metrics.md): the common families (who the instance is, its role and
 * epoch, its links, alarms, stalls), the daemon's own through ops->metrics,
 * and the readiness verdict. The server runs on the daemon's loop, so a
 * scrape sees the state between two callbacks, never half-way through one. */
#include "daemon-internal.h"

#include <confdr/http.h>
#include <confdr/log.h>
#include <confdr/metrics.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_RETRY_MS 10000

int daemon_metrics_new(struct cdr_daemon *d)
{
	const struct cdr_metric_def defs[] = {
		{ &d->m_info, CDR_METRIC_GAUGE, "info", "daemon,platform,name,version",
		  "Always 1: which daemon, platform and instance name (name) this is, and its version." },
		{ &d->m_active, CDR_METRIC_GAUGE, "active", "daemon,platform",
		  "1 while this instance is the active one of its daemon on its platform (elected), else 0." },
		{ &d->m_epoch, CDR_METRIC_GAUGE, "epoch", "daemon,platform",
		  "The epoch of this instance's latest election win (its election node's sequence number); meaningful "
		  "while confdr_active is 1." },
		{ &d->m_ready, CDR_METRIC_GAUGE, "ready", NULL, "1 when /readyz answers 200, else 0." },
		{ &d->m_store_up, CDR_METRIC_GAUGE, "store_up", "store",
		  "1 while the connection to the store (zookeeper, amqp, redis, mysql) is up, else 0." },
		{ &d->m_reconnects, CDR_METRIC_COUNTER, "store_reconnects_total", "store",
		  "Connections to the store made again after it was lost (the first connection is not counted)." },
		{ &d->m_alarms, CDR_METRIC_COUNTER, "alarms_total", "kind,severity",
		  "Alarms raised by this instance (the ALARM log lines and cdr.alarm.ex), by kind and severity." },
		{ &d->m_stalls, CDR_METRIC_COUNTER, "loop_stalls_total", NULL,
		  "Stalls of the event loop after which the active instance confirmed its ZooKeeper session." },
		{ &d->m_senders_refused, CDR_METRIC_COUNTER, "senders_refused_total", NULL,
		  "Messages refused because their broker user may not send their type." },
		{ &d->m_start, CDR_METRIC_GAUGE, "start_time_seconds", NULL, "When the process started, Unix time." },
	};
	int r;

	if ((r = cdr_metrics_new(&d->metrics)) < 0)
		return r;
	return cdr_metrics_register(d->metrics, defs, sizeof(defs) / sizeof(defs[0]));
}

static void common_metrics(struct cdr_daemon *d, bool ready)
{
	const char *name = d->ops->name, *plat = d->conf->platform;

	cdr_metric_set(d->m_info, 1, name, plat, d->instance, CONFDR_VERSION);
	cdr_metric_set(d->m_active, d->active ? 1 : 0, name, plat);
	cdr_metric_set(d->m_epoch, (double)d->epoch, name, plat);
	cdr_metric_set(d->m_ready, ready ? 1 : 0);
	for (int i = 0; i < LINK_COUNT; i++) {
		if (i != LINK_ZK && !d->link_used[i])
			continue;
		cdr_metric_set(d->m_store_up, d->link_up[i] ? 1 : 0, daemon_link_names[i]);
		cdr_metric_set(d->m_reconnects, (double)d->reconnects[i], daemon_link_names[i]);
	}
	cdr_metric_set(d->m_stalls, (double)d->stalls);
	cdr_metric_set(d->m_senders_refused, (double)d->senders_refused);
	cdr_metric_set(d->m_start, (double)d->started_wall_ms / 1000.0);
}

static void on_metrics(void *arg, struct cdr_http_reply *r)
{
	struct cdr_daemon *d = arg;

	char why[256];

	common_metrics(d, daemon_readiness(d, why, sizeof(why)));
	if (d->ops->metrics)
		d->ops->metrics(d, d->server);
	if (cdr_metrics_render(d->metrics, &r->body, &r->len) < 0) {
		r->status = 500;
		r->body = strdup("out of memory\n");
		r->len = r->body ? strlen(r->body) : 0;
		return;
	}
	r->content_type = CDR_METRICS_CONTENT_TYPE;
}

__attribute__((format(printf, 3, 4))) static void text_reply(struct cdr_http_reply *r, int status, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	if (vasprintf(&r->body, fmt, ap) < 0)
		r->body = NULL;
	va_end(ap);
	r->len = r->body ? strlen(r->body) : 0;
}

/* The loop answers: that is all /healthz says (a hung loop does not answer). */
static void on_healthz(void *arg, struct cdr_http_reply *r)
{
	(void)arg;
	text_reply(r, 200, "ok\n");
}

static void on_readyz(void *arg, struct cdr_http_reply *r)
{
	struct cdr_daemon *d = arg;
	char status[256];

	if (daemon_readiness(d, status, sizeof(status)))
		text_reply(r, 200, "ready: %s\n", status);
	else
		text_reply(r, 503, "not ready: %s\n", status);
}

static const struct cdr_http_route routes[] = {
	{ "/metrics", on_metrics },
	{ "/healthz", on_healthz },
	{ "/readyz", on_readyz },
	{ NULL, NULL },
};

static void http_listen(void *arg)
{
	struct cdr_daemon *d = arg;
	struct cdr_http_opts o = { .listen = d->conf->metrics_listen, .routes = routes, .arg = d };
	char err[256];
	int r;

	if (d->http || d->stopping)
		return;
	if ((r = cdr_http_new(d->loop, &o, &d->http, err, sizeof(err))) < 0) {
		cdr_err("metrics: %s; /metrics, /healthz and /readyz not served, trying again in %d s", err,
			HTTP_RETRY_MS / 1000);
		if (d->http_retry || cdr_timer_new(d->loop, http_listen, d, &d->http_retry) == 0)
			cdr_timer_start(d->http_retry, HTTP_RETRY_MS, false);
		return;
	}
	cdr_notice("metrics: serving /metrics, /healthz and /readyz on http://%s", d->conf->metrics_listen);
}

void daemon_metrics_start(struct cdr_daemon *d)
{
	if (d->conf->metrics_listen && *d->conf->metrics_listen)
		http_listen(d);
}

void daemon_metrics_free(struct cdr_daemon *d)
{
	d->http = cdr_http_free(d->http);
	d->http_retry = cdr_timer_free(d->http_retry);
	d->metrics = cdr_metrics_free(d->metrics);
}

struct cdr_metrics *cdr_daemon_metrics(struct cdr_daemon *d)
{
	return d->metrics;
}

void cdr_daemon_alarm(struct cdr_daemon *d, const char *kind, const char *severity)
{
	if (d && d->m_alarms)
		cdr_metric_add(d->m_alarms, 1, kind, severity);
}
