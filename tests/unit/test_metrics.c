/* The metrics registry and its text rendering (Prometheus exposition format
 * 0.0.4): HELP and TYPE lines before the samples, escaping of label values
 * and help text, series sorted by label values, a histogram's cumulative
 * _bucket lines ending in le="+Inf" with _sum and _count, values written
 * exactly, and what is refused (bad names, labels, bounds, types). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>

#include <confdr/metrics.h>

/* The rendering of m, compared whole. */
static void assert_renders(const struct cdr_metrics *m, const char *want)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(cdr_metrics_render(m, &text, &len), 0);
	assert_int_equal(len, strlen(text));
	assert_string_equal(text, want);
	free(text);
}

static void test_counter_gauge(void **state)
{
	struct cdr_metrics *m = NULL;
	struct cdr_metric *c, *g, *u;

	(void)state;
	assert_int_equal(cdr_metrics_new(&m), 0);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_COUNTER, "creates_total", "Creates answered.", "result", &c),
			 0);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "epoch", "The epoch.", NULL, &g), 0);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "unused", "Never set.", "x", &u), 0);
	assert_int_equal(cdr_metric_add(c, 1, "nack"), 0);
	assert_int_equal(cdr_metric_add(c, 1, "ack"), 0);
	assert_int_equal(cdr_metric_add(c, 2, "ack"), 0);
	assert_int_equal(cdr_metric_set(g, 12345678901.0), 0);
	assert_renders(m, "# HELP confdr_creates_total Creates answered.\n"
			  "# TYPE confdr_creates_total counter\n"
			  "confdr_creates_total{result=\"ack\"} 3\n"
			  "confdr_creates_total{result=\"nack\"} 1\n"
			  "# HELP confdr_epoch The epoch.\n"
			  "# TYPE confdr_epoch gauge\n"
			  "confdr_epoch 12345678901\n"
			  "# HELP confdr_unused Never set.\n"
			  "# TYPE confdr_unused gauge\n");
	/* a gauge recomputed from scratch: the old series go */
	cdr_metric_clear(c);
	assert_int_equal(cdr_metric_set(g, -0.25), 0);
	assert_int_equal(cdr_metric_set(u, 0.1, "a"), 0);
	assert_renders(m, "# HELP confdr_creates_total Creates answered.\n"
			  "# TYPE confdr_creates_total counter\n"
			  "# HELP confdr_epoch The epoch.\n"
			  "# TYPE confdr_epoch gauge\n"
			  "confdr_epoch -0.25\n"
			  "# HELP confdr_unused Never set.\n"
			  "# TYPE confdr_unused gauge\n"
			  "confdr_unused{x=\"a\"} 0.1\n");
	cdr_metrics_free(m);
}

static void test_escaping(void **state)
{
	struct cdr_metrics *m = NULL;
	struct cdr_metric *f;

	(void)state;
	assert_int_equal(cdr_metrics_new(&m), 0);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_COUNTER, "alarms_total", "Alarms \\ by kind\nand severity.",
					    "kind,severity", &f),
			 0);
	assert_int_equal(cdr_metric_add(f, 1, "a\"b\\c\nd", "critical"), 0);
	assert_int_equal(cdr_metric_add(f, 1, NULL, "é ünïcode {} ,="), 0);
	assert_renders(m, "# HELP confdr_alarms_total Alarms \\\\ by kind\\nand severity.\n"
			  "# TYPE confdr_alarms_total counter\n"
			  "confdr_alarms_total{kind=\"\",severity=\"é ünïcode {} ,=\"} 1\n"
			  "confdr_alarms_total{kind=\"a\\\"b\\\\c\\nd\",severity=\"critical\"} 1\n");
	cdr_metrics_free(m);
}

static void test_histogram(void **state)
{
	static const double bounds[] = { 0.005, 0.05, 0.5, 2.5 };
	struct cdr_metrics *m = NULL;
	struct cdr_metric *h, *l;

	(void)state;
	assert_int_equal(cdr_metrics_new(&m), 0);
	assert_int_equal(cdr_metrics_histogram(m, "create_seconds", "Create latency.", NULL, bounds, 4, &h), 0);
	assert_int_equal(cdr_metrics_histogram(m, "restore_seconds", "Restore latency.", "why", bounds, 2, &l), 0);
	/* a bucket counts the values <= its bound */
	assert_int_equal(cdr_metric_observe(h, 0.005), 0);
	assert_int_equal(cdr_metric_observe(h, 0.02), 0);
	assert_int_equal(cdr_metric_observe(h, 0.02), 0);
	assert_int_equal(cdr_metric_observe(h, 3), 0);
	assert_int_equal(cdr_metric_observe(l, 1, "mcu"), 0);
	assert_renders(m, "# HELP confdr_create_seconds Create latency.\n"
			  "# TYPE confdr_create_seconds histogram\n"
			  "confdr_create_seconds_bucket{le=\"0.005\"} 1\n"
			  "confdr_create_seconds_bucket{le=\"0.05\"} 3\n"
			  "confdr_create_seconds_bucket{le=\"0.5\"} 3\n"
			  "confdr_create_seconds_bucket{le=\"2.5\"} 3\n"
			  "confdr_create_seconds_bucket{le=\"+Inf\"} 4\n"
			  "confdr_create_seconds_sum 3.045\n"
			  "confdr_create_seconds_count 4\n"
			  "# HELP confdr_restore_seconds Restore latency.\n"
			  "# TYPE confdr_restore_seconds histogram\n"
			  "confdr_restore_seconds_bucket{why=\"mcu\",le=\"0.005\"} 0\n"
			  "confdr_restore_seconds_bucket{why=\"mcu\",le=\"0.05\"} 0\n"
			  "confdr_restore_seconds_bucket{why=\"mcu\",le=\"+Inf\"} 1\n"
			  "confdr_restore_seconds_sum{why=\"mcu\"} 1\n"
			  "confdr_restore_seconds_count{why=\"mcu\"} 1\n");
	cdr_metrics_free(m);
}

static void test_values(void **state)
{
	struct cdr_metrics *m = NULL;
	struct cdr_metric *g;

	(void)state;
	assert_int_equal(cdr_metrics_new(&m), 0);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "v", "Values.", "k", &g), 0);
	assert_int_equal(cdr_metric_set(g, INFINITY, "a"), 0);
	assert_int_equal(cdr_metric_set(g, -INFINITY, "b"), 0);
	assert_int_equal(cdr_metric_set(g, NAN, "c"), 0);
	assert_int_equal(cdr_metric_set(g, 1.0 / 3, "d"), 0);
	assert_int_equal(cdr_metric_set(g, 1e20, "e"), 0);
	assert_renders(m, "# HELP confdr_v Values.\n"
			  "# TYPE confdr_v gauge\n"
			  "confdr_v{k=\"a\"} +Inf\n"
			  "confdr_v{k=\"b\"} -Inf\n"
			  "confdr_v{k=\"c\"} NaN\n"
			  "confdr_v{k=\"d\"} 0.3333333333333333\n"
			  "confdr_v{k=\"e\"} 1e+20\n");
	cdr_metrics_free(m);
}

static void test_refused(void **state)
{
	static const double up[] = { 1, 2 }, down[] = { 2, 1 }, inf[] = { 1, INFINITY };
	struct cdr_metrics *m = NULL;
	struct cdr_metric *f = NULL, *h = NULL;

	(void)state;
	assert_int_equal(cdr_metrics_new(&m), 0);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "9lives", "", NULL, &f), -EINVAL);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "a-b", "", NULL, &f), -EINVAL);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "", "", NULL, &f), -EINVAL);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "ok", "", "a:b", &f), -EINVAL);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "ok", "", "__x", &f), -EINVAL);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "ok", "", "a,a", &f), -EINVAL);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "ok", "", "a,", &f), -EINVAL);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "ok", "", "a,b,c,d,e", &f), -EINVAL);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_HISTOGRAM, "ok", "", NULL, &f), -EINVAL);
	assert_int_equal(cdr_metrics_histogram(m, "h", "", "le", up, 2, &h), -EINVAL);
	assert_int_equal(cdr_metrics_histogram(m, "h", "", NULL, down, 2, &h), -EINVAL);
	assert_int_equal(cdr_metrics_histogram(m, "h", "", NULL, inf, 2, &h), -EINVAL);
	assert_int_equal(cdr_metrics_histogram(m, "h", "", NULL, up, 0, &h), -EINVAL);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_COUNTER, "ok:total", "", "a", &f), 0);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "ok:total", "", NULL, &f), -EEXIST);
	assert_int_equal(cdr_metrics_histogram(m, "h", "", NULL, up, 2, &h), 0);
	assert_int_equal(cdr_metric_add(f, -1, "x"), -EINVAL); /* a counter does not go down */
	assert_int_equal(cdr_metric_observe(f, 1, "x"), -EINVAL);
	assert_int_equal(cdr_metric_add(h, 1), -EINVAL);
	assert_int_equal(cdr_metric_set(h, 1), -EINVAL);
	assert_null(cdr_metrics_free(m));
	assert_null(cdr_metrics_free(NULL));
}

/* Many series, added in reverse order, come out sorted. */
static void test_many(void **state)
{
	struct cdr_metrics *m = NULL;
	struct cdr_metric *g;
	char name[16], *text = NULL, *p;
	size_t len;

	(void)state;
	assert_int_equal(cdr_metrics_new(&m), 0);
	assert_int_equal(cdr_metrics_family(m, CDR_METRIC_GAUGE, "mcu_up", "Up.", "mcu", &g), 0);
	for (int i = 999; i >= 0; i--) {
		snprintf(name, sizeof(name), "m%03d", i);
		assert_int_equal(cdr_metric_set(g, i, name), 0);
	}
	assert_int_equal(cdr_metrics_render(m, &text, &len), 0);
	p = strstr(text, "confdr_mcu_up{mcu=\"m000\"} 0\nconfdr_mcu_up{mcu=\"m001\"} 1\n");
	assert_non_null(p);
	assert_non_null(strstr(text, "confdr_mcu_up{mcu=\"m999\"} 999\n"));
	free(text);
	cdr_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_gauge), cmocka_unit_test(test_escaping), cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_values),	      cmocka_unit_test(test_refused),  cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
