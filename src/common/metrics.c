/* Metrics and their text rendering (include/confdr/metrics.h). A family
 * keeps its series in a sorted array: families here have few series (states,
 * reasons, stores), so a linear search is cheaper than any index. */
#include <confdr/metrics.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "confdr_"

struct series {
	char *values[CDR_METRIC_MAX_LABELS];
	double v;	   /* counter, gauge */
	double sum;	   /* histogram */
	uint64_t count;	   /* histogram */
	uint64_t *buckets; /* histogram: per bucket (not cumulative), nbounds + 1 */
};

struct cdr_metric {
	enum cdr_metric_type type;
	char *name, *help;
	char *labels[CDR_METRIC_MAX_LABELS];
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	struct series *series;
	size_t n, cap;
};

struct cdr_metrics {
	struct cdr_metric **fams;
	size_t n, cap;
};

int cdr_metrics_new(struct cdr_metrics **ret)
{
	struct cdr_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	*ret = m;
	return 0;
}

static void series_release(struct cdr_metric *f, struct series *s)
{
	for (size_t i = 0; i < f->nlabels; i++)
		free(s->values[i]);
	free(s->buckets);
}

static struct cdr_metric *family_free(struct cdr_metric *f)
{
	if (!f)
		return NULL;
	cdr_metric_clear(f);
	free(f->series);
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->bounds);
	free(f->name);
	free(f->help);
	free(f);
	return NULL;
}

struct cdr_metrics *cdr_metrics_free(struct cdr_metrics *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		family_free(m->fams[i]);
	free(m->fams);
	free(m);
	return NULL;
}

static bool name_ok(const char *s, size_t len, bool colon)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

/* "a,b" into f->labels. */
static int parse_labels(struct cdr_metric *f, const char *labels)
{
	const char *p = labels;

	if (!labels || !*labels)
		return 0;
	for (;;) {
		size_t len = strcspn(p, ",");

		if (f->nlabels == CDR_METRIC_MAX_LABELS || !name_ok(p, len, false) ||
		    (len >= 2 && p[0] == '_' && p[1] == '_'))
			return -EINVAL;
		if (f->type == CDR_METRIC_HISTOGRAM && len == 2 && !strncmp(p, "le", 2))
			return -EINVAL;
		for (size_t i = 0; i < f->nlabels; i++)
			if (strlen(f->labels[i]) == len && !strncmp(f->labels[i], p, len))
				return -EINVAL;
		if (!(f->labels[f->nlabels] = strndup(p, len)))
			return -ENOMEM;
		f->nlabels++;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

static int add_family(struct cdr_metrics *m, enum cdr_metric_type type, const char *name, const char *help,
		      const char *labels, const double *bounds, size_t nbounds, struct cdr_metric **ret)
{
	struct cdr_metric *f;
	int r;

	if (!name || !name_ok(name, strlen(name), true))
		return -EINVAL;
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->fams[i]->name + strlen(PREFIX), name))
			return -EEXIST;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct cdr_metric **v = realloc(m->fams, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->fams = v;
		m->cap = cap;
	}
	if (!(f = calloc(1, sizeof(*f))))
		return -ENOMEM;
	f->type = type;
	if ((r = parse_labels(f, labels)) < 0) {
		family_free(f);
		return r;
	}
	if (asprintf(&f->name, PREFIX "%s", name) < 0) {
		f->name = NULL;
		family_free(f);
		return -ENOMEM;
	}
	if (!(f->help = strdup(help ? help : "")) || (nbounds && !(f->bounds = malloc(nbounds * sizeof(*bounds))))) {
		family_free(f);
		return -ENOMEM;
	}
	if (nbounds)
		memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
	f->nbounds = nbounds;
	m->fams[m->n++] = f;
	*ret = f;
	return 0;
}

int cdr_metrics_family(struct cdr_metrics *m, enum cdr_metric_type type, const char *name, const char *help,
		       const char *labels, struct cdr_metric **ret)
{
	if (type != CDR_METRIC_COUNTER && type != CDR_METRIC_GAUGE)
		return -EINVAL;
	return add_family(m, type, name, help, labels, NULL, 0, ret);
}

int cdr_metrics_register(struct cdr_metrics *m, const struct cdr_metric_def *defs, size_t n)
{
	int r;

	for (size_t i = 0; i < n; i++)
		if ((r = cdr_metrics_family(m, defs[i].type, defs[i].name, defs[i].help, defs[i].labels,
					    defs[i].slot)) < 0)
			return r;
	return 0;
}

int cdr_metrics_histogram(struct cdr_metrics *m, const char *name, const char *help, const char *labels,
			  const double *bounds, size_t nbounds, struct cdr_metric **ret)
{
	if (!bounds || nbounds == 0 || nbounds > CDR_METRIC_MAX_BUCKETS)
		return -EINVAL;
	for (size_t i = 0; i < nbounds; i++)
		if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
			return -EINVAL;
	return add_family(m, CDR_METRIC_HISTOGRAM, name, help, labels, bounds, nbounds, ret);
}

static int cmp_values(const struct cdr_metric *f, char *const *a, const char *const *b)
{
	for (size_t i = 0; i < f->nlabels; i++) {
		int c = strcmp(a[i], b[i]);

		if (c)
			return c;
	}
	return 0;
}

/* The series with these label values, made at 0 if new; NULL: no memory. */
static struct series *series_get(struct cdr_metric *f, va_list ap)
{
	const char *values[CDR_METRIC_MAX_LABELS];
	struct series *s;
	size_t at = 0;

	for (size_t i = 0; i < f->nlabels; i++) {
		const char *v = va_arg(ap, const char *);

		values[i] = v ? v : "";
	}
	for (; at < f->n; at++) {
		int c = cmp_values(f, f->series[at].values, values);

		if (c == 0)
			return &f->series[at];
		if (c > 0)
			break;
	}
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct series *v = realloc(f->series, cap * sizeof(*v));

		if (!v)
			return NULL;
		f->series = v;
		f->cap = cap;
	}
	s = &f->series[at];
	memmove(s + 1, s, (f->n - at) * sizeof(*s));
	memset(s, 0, sizeof(*s));
	f->n++;
	for (size_t i = 0; i < f->nlabels; i++)
		if (!(s->values[i] = strdup(values[i])))
			goto undo;
	if (f->type == CDR_METRIC_HISTOGRAM && !(s->buckets = calloc(f->nbounds + 1, sizeof(*s->buckets))))
		goto undo;
	return s;
undo:
	series_release(f, s);
	f->n--;
	memmove(s, s + 1, (f->n - at) * sizeof(*s));
	return NULL;
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static int update(struct cdr_metric *f, enum op op, double v, va_list ap)
{
	bool hist = f->type == CDR_METRIC_HISTOGRAM;
	struct series *s;
	size_t b = 0;

	if (hist != (op == OP_OBSERVE) || (op == OP_ADD && f->type == CDR_METRIC_COUNTER && !(v >= 0)))
		return -EINVAL;
	if (!(s = series_get(f, ap)))
		return -ENOMEM;
	switch (op) {
	case OP_ADD: s->v += v; break;
	case OP_SET: s->v = v; break;
	case OP_OBSERVE:
		while (b < f->nbounds && v > f->bounds[b])
			b++;
		s->buckets[b]++;
		s->count++;
		s->sum += v;
		break;
	}
	return 0;
}

int cdr_metric_add(struct cdr_metric *f, double v, ...)
{
	va_list ap;
	int r;

	va_start(ap, v);
	r = update(f, OP_ADD, v, ap);
	va_end(ap);
	return r;
}

int cdr_metric_set(struct cdr_metric *f, double v, ...)
{
	va_list ap;
	int r;

	va_start(ap, v);
	r = update(f, OP_SET, v, ap);
	va_end(ap);
	return r;
}

int cdr_metric_observe(struct cdr_metric *f, double v, ...)
{
	va_list ap;
	int r;

	va_start(ap, v);
	r = update(f, OP_OBSERVE, v, ap);
	va_end(ap);
	return r;
}

void cdr_metric_clear(struct cdr_metric *f)
{
	for (size_t i = 0; i < f->n; i++)
		series_release(f, &f->series[i]);
	f->n = 0;
}

/* ---- rendering ---- */

/* A sample value: the shortest text that reads back as the same double;
 * integers without a fraction; +Inf, -Inf, NaN as Prometheus writes them. */
static void put_value(FILE *out, double v)
{
	char buf[40];

	if (isnan(v)) {
		fputs("NaN", out);
		return;
	}
	if (isinf(v)) {
		fputs(v > 0 ? "+Inf" : "-Inf", out);
		return;
	}
	if (v == floor(v) && fabs(v) < 1e15) {
		fprintf(out, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, out);
}

/* Backslash and line feed escaped, and the double quote too in a label
 * value (quote); HELP text keeps its quotes. */
static void put_escaped(FILE *out, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else if (*s == '"' && quote)
			fputs("\\\"", out);
		else
			fputc(*s, out);
	}
}

/* name{labels[,le="x"]} (no braces when there is no label at all). */
static void put_series_name(FILE *out, const struct cdr_metric *f, const struct series *s, const char *suffix,
			    const char *le)
{
	fprintf(out, "%s%s", f->name, suffix);
	if (!f->nlabels && !le)
		return;
	fputc('{', out);
	for (size_t i = 0; i < f->nlabels; i++) {
		fprintf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
		put_escaped(out, s->values[i], true);
		fputc('"', out);
	}
	if (le)
		fprintf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	fputc('}', out);
}

static void put_histogram(FILE *out, const struct cdr_metric *f, const struct series *s)
{
	uint64_t cum = 0;
	char le[40];

	for (size_t b = 0; b <= f->nbounds; b++) {
		cum += s->buckets[b];
		if (b < f->nbounds) {
			FILE *mem = fmemopen(le, sizeof(le), "w");

			if (!mem)
				continue;
			put_value(mem, f->bounds[b]);
			fclose(mem);
		} else {
			snprintf(le, sizeof(le), "+Inf");
		}
		put_series_name(out, f, s, "_bucket", le);
		fprintf(out, " %" PRIu64 "\n", cum);
	}
	put_series_name(out, f, s, "_sum", NULL);
	fputc(' ', out);
	put_value(out, s->sum);
	fputc('\n', out);
	put_series_name(out, f, s, "_count", NULL);
	fprintf(out, " %" PRIu64 "\n", s->count);
}

static const char *type_name(enum cdr_metric_type t)
{
	switch (t) {
	case CDR_METRIC_COUNTER: return "counter";
	case CDR_METRIC_GAUGE: return "gauge";
	case CDR_METRIC_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

int cdr_metrics_render(const struct cdr_metrics *m, char **text, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&buf, &n);

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		const struct cdr_metric *f = m->fams[i];

		fprintf(out, "# HELP %s ", f->name);
		put_escaped(out, f->help, false);
		fprintf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
		for (size_t k = 0; k < f->n; k++) {
			if (f->type == CDR_METRIC_HISTOGRAM) {
				put_histogram(out, f, &f->series[k]);
				continue;
			}
			put_series_name(out, f, &f->series[k], "", NULL);
			fputc(' ', out);
			put_value(out, f->series[k].v);
			fputc('\n', out);
		}
	}
	if (fclose(out) != 0 || !buf) {
		free(buf);
		return -ENOMEM;
	}
	*text = buf;
	*len = n;
	return 0;
}
