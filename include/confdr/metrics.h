/* Metrics: counters, gauges and histograms, each a family of series told
 * apart by label values, rendered as the Prometheus text exposition format
 * 0.0.4 (what /metrics serves: docs/metrics.md).
 *
 * A registry holds families; every family's name gets the prefix "confdr_".
 * Loop thread only: nothing here locks. A daemon registers its families once
 * and then either counts as things happen (cdr_metric_add, _observe) or, for
 * figures it already keeps (css's counters, rms's inventory), copies them in
 * just before each rendering (cdr_metric_set), so nothing is counted twice. */
#ifndef CONFDR_METRICS_H
#define CONFDR_METRICS_H

#include <stddef.h>

struct cdr_metrics; /* a registry */
struct cdr_metric;  /* a family */

enum cdr_metric_type {
	CDR_METRIC_COUNTER,
	CDR_METRIC_GAUGE,
	CDR_METRIC_HISTOGRAM,
};

/* At most this many labels per family. */
#define CDR_METRIC_MAX_LABELS 4
/* At most this many bucket bounds per histogram (+Inf is added). */
#define CDR_METRIC_MAX_BUCKETS 32

/* Returns 0 and *ret, or -ENOMEM. */
int cdr_metrics_new(struct cdr_metrics **ret);
/* Frees the registry and its families. Accepts NULL; returns NULL. */
struct cdr_metrics *cdr_metrics_free(struct cdr_metrics *m);

/* Registers a counter or gauge family named "confdr_" + name (name: the
 * metric name grammar [a-zA-Z_:][a-zA-Z0-9_:]*; a counter's should end in
 * _total) with its help text (one line) and labels: NULL or "" for none,
 * else label names separated by ',' ("store", "kind,severity"), each
 * [a-zA-Z_][a-zA-Z0-9_]* and not starting with "__". *ret is borrowed: the
 * registry owns it. Returns 0, -EINVAL (a bad name, label or type), -EEXIST
 * (the name is taken) or -ENOMEM. */
int cdr_metrics_family(struct cdr_metrics *m, enum cdr_metric_type type, const char *name, const char *help,
		       const char *labels, struct cdr_metric **ret);

/* The same for a histogram: bounds are the upper bounds of its buckets,
 * strictly increasing and finite, 1..CDR_METRIC_MAX_BUCKETS of them (the
 * bucket le="+Inf" is added). A label named "le" is refused. */
int cdr_metrics_histogram(struct cdr_metrics *m, const char *name, const char *help, const char *labels,
			  const double *bounds, size_t nbounds, struct cdr_metric **ret);

/* A family to register (cdr_metrics_register): where its handle goes, and
 * what cdr_metrics_family takes. */
struct cdr_metric_def {
	struct cdr_metric **slot;
	enum cdr_metric_type type; /* COUNTER or GAUGE */
	const char *name, *labels, *help;
};

/* Registers the n families of defs in order (cdr_metrics_family), each
 * handle into its slot. Returns 0, or the first error (the families before
 * it stay registered). */
int cdr_metrics_register(struct cdr_metrics *m, const struct cdr_metric_def *defs, size_t n);

/* The series of family f with the label values that follow v (as many
 * const char * as the family has labels; any UTF-8 text, escaped when
 * rendered; NULL is taken as ""), created at 0 on first use. Series are
 * rendered sorted by their label values. Each returns 0, or -ENOMEM (the
 * value is then not recorded), or -EINVAL (wrong type for the call). */
/* Adds v (>= 0 for a counter) to a counter or gauge. */
int cdr_metric_add(struct cdr_metric *f, double v, ...);
/* Sets a gauge, or a counter copied from a count kept elsewhere. */
int cdr_metric_set(struct cdr_metric *f, double v, ...);
/* Counts one observation v in a histogram (its buckets, _sum and _count). */
int cdr_metric_observe(struct cdr_metric *f, double v, ...);
/* Removes every series of f (a gauge recomputed from scratch before a
 * rendering: states that no longer occur drop out). */
void cdr_metric_clear(struct cdr_metric *f);

/* The whole registry as text: "# HELP" and "# TYPE" lines then the samples
 * of each family, in registration order; a family without series has its
 * HELP and TYPE lines only. Returns 0 and *text (malloc'd, NUL-terminated;
 * free()) with its length in *len, or -ENOMEM. */
int cdr_metrics_render(const struct cdr_metrics *m, char **text, size_t *len);

/* The content type of that text. */
#define CDR_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
