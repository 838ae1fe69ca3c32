/* prom_check: a strict checker of the Prometheus text exposition format
 * 0.0.4, for tests/integration/metrics.sh (docs/metrics.md).
 *
 *   prom_check [FILE]      reads FILE (default stdin); exit 0 if valid, else 1
 *                          with one "LINE: reason" per problem on stderr
 *
 * Checked, beyond what a lenient scraper accepts:
 *   - every line ends with '\n' (the last one too); no '\r';
 *   - metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
 *     and not "__..."; no label twice in a sample; label values with only the
 *     escapes \\ \" \n; a value that is a float, +Inf, -Inf or NaN; an
 *     optional integer timestamp;
 *   - "# HELP" and "# TYPE" at most once per family, both before its first
 *     sample (every family must have both); a known type; HELP text with
 *     only the escapes \\ and \n;
 *   - a family's samples in one block (not interleaved with another's), no
 *     series twice;
 *   - a counter's values >= 0; a histogram's samples named _bucket (with le),
 *     _sum and _count only, and per label set: le values increasing and
 *     ending with +Inf, cumulative counts not decreasing, _count equal to
 *     the +Inf bucket, a _sum. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 1024
#define MAX_SERIES   65536
#define MAX_LABELS   32

enum ftype { T_NONE, T_COUNTER, T_GAUGE, T_HISTOGRAM, T_SUMMARY, T_UNTYPED };

struct family {
	char name[256];
	bool help, type_seen, sampled, closed;
	enum ftype type;
};

/* One histogram label set (without le) being checked. */
struct hist {
	char family[256], labels[4096];
	double last_le, last_count, inf_count;
	bool has_inf, has_sum, has_count, any_bucket;
	double count;
};

static struct family fams[MAX_FAMILIES];
static size_t nfams;
static char **series; /* "name{sorted labels}" seen */
static size_t nseries;
static struct hist *hists;
static size_t nhists;
static int errors;
static long lineno;
static struct family *current; /* the family whose block is open */

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%ld: ", lineno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	errors++;
}

static bool name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':'))
		return true;
	return !first && c >= '0' && c <= '9';
}

/* Length of a name at s (0: none). */
static size_t scan_name(const char *s, bool colon)
{
	size_t n = 0;

	while (s[n] && name_char(s[n], n == 0, colon))
		n++;
	return n;
}

static struct family *family_of(const char *name, bool create)
{
	for (size_t i = 0; i < nfams; i++)
		if (!strcmp(fams[i].name, name))
			return &fams[i];
	if (!create || nfams == MAX_FAMILIES)
		return NULL;
	snprintf(fams[nfams].name, sizeof(fams[nfams].name), "%s", name);
	return &fams[nfams++];
}

/* A value: float, +Inf, -Inf, NaN. */
static bool parse_value(const char *s, double *v)
{
	char *end;

	if (!strcmp(s, "+Inf") || !strcmp(s, "Inf")) {
		*v = INFINITY;
		return true;
	}
	if (!strcmp(s, "-Inf")) {
		*v = -INFINITY;
		return true;
	}
	if (!strcmp(s, "NaN")) {
		*v = NAN;
		return true;
	}
	/* strtod takes "inf", "nan", hex floats: Prometheus's Go parser takes
	 * them too, but this exporter writes none, so they are refused */
	for (const char *p = s; *p; p++)
		if (!strchr("0123456789+-.eE", *p))
			return false;
	errno = 0;
	*v = strtod(s, &end);
	return *s && !*end && errno != ERANGE;
}

static void help_text(const char *s)
{
	for (; *s; s++)
		if (*s == '\\' && s[1] != '\\' && s[1] != 'n')
			fail("HELP text: a backslash escapes only \\ and n (%s)", s);
		else if (*s == '\\')
			s++;
}

static void comment(const char *line)
{
	const char *p = line + 1;
	bool is_help, is_type;
	char name[256];
	size_t n;
	struct family *f;

	while (*p == ' ' || *p == '\t')
		p++;
	is_help = !strncmp(p, "HELP ", 5);
	is_type = !strncmp(p, "TYPE ", 5);
	if (!is_help && !is_type)
		return; /* a plain comment */
	p += 5;
	while (*p == ' ')
		p++;
	n = scan_name(p, true);
	if (!n || n >= sizeof(name) || (p[n] && p[n] != ' ')) {
		fail("%s: a metric name expected after HELP/TYPE", line);
		return;
	}
	memcpy(name, p, n);
	name[n] = '\0';
	p += n;
	if (*p == ' ')
		p++;
	f = family_of(name, true);
	if (!f) {
		fail("too many families (%s)", name);
		return;
	}
	if (f->sampled)
		fail("HELP or TYPE of %s after its samples", name);
	if (current && current != f)
		current->closed = true;
	current = f;
	if (is_help) {
		if (f->help)
			fail("a second HELP for %s", name);
		f->help = true;
		help_text(p);
		return;
	}
	if (f->type_seen)
		fail("a second TYPE for %s", name);
	f->type_seen = true;
	if (!strcmp(p, "counter"))
		f->type = T_COUNTER;
	else if (!strcmp(p, "gauge"))
		f->type = T_GAUGE;
	else if (!strcmp(p, "histogram"))
		f->type = T_HISTOGRAM;
	else if (!strcmp(p, "summary"))
		f->type = T_SUMMARY;
	else if (!strcmp(p, "untyped"))
		f->type = T_UNTYPED;
	else
		fail("unknown TYPE '%s'", p);
}

/* The family a sample name belongs to: name itself, or for a histogram
 * name minus _bucket/_sum/_count, for a summary minus _sum/_count. */
static struct family *sample_family(const char *name, const char **suffix)
{
	static const char *const sufs[] = { "_bucket", "_sum", "_count" };
	char base[256];
	struct family *f;

	*suffix = "";
	for (size_t i = 0; i < 3; i++) {
		size_t ln = strlen(name), ls = strlen(sufs[i]);

		if (ln <= ls || strcmp(name + ln - ls, sufs[i]) || ln - ls >= sizeof(base))
			continue;
		memcpy(base, name, ln - ls);
		base[ln - ls] = '\0';
		f = family_of(base, false);
		if (f && (f->type == T_HISTOGRAM || (f->type == T_SUMMARY && i > 0))) {
			*suffix = sufs[i];
			return f;
		}
	}
	return family_of(name, false);
}

struct label {
	char name[128], value[1024];
};

static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* Parses {a="x",b="y"} at *pp; false on a syntax error (reported). */
static bool parse_labels(const char **pp, struct label *ls, size_t *n)
{
	const char *p = *pp + 1;

	*n = 0;
	for (;;) {
		size_t k, v = 0;

		if (*p == '}') {
			*pp = p + 1;
			return true;
		}
		if (*n == MAX_LABELS) {
			fail("too many labels (%s)", p);
			return false;
		}
		k = scan_name(p, false);
		if (!k || k >= sizeof(ls[0].name)) {
			fail("a label name expected at '%s'", p);
			return false;
		}
		memcpy(ls[*n].name, p, k);
		ls[*n].name[k] = '\0';
		if (!strncmp(ls[*n].name, "__", 2))
			fail("label name %s is reserved (__)", ls[*n].name);
		for (size_t i = 0; i < *n; i++)
			if (!strcmp(ls[i].name, ls[*n].name))
				fail("label %s twice", ls[*n].name);
		p += k;
		if (p[0] != '=' || p[1] != '"') {
			fail("'=\"' expected after a label name at '%s'", p);
			return false;
		}
		p += 2;
		while (*p && *p != '"') {
			if (*p == '\\') {
				if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
					fail("label value: a backslash escapes only \\, \" and n (%s)", p);
					return false;
				}
				if (v + 1 < sizeof(ls[0].value))
					ls[*n].value[v++] = p[1] == 'n' ? '\n' : p[1];
				p += 2;
				continue;
			}
			if (*p == '\n') {
				fail("a raw line feed in a label value");
				return false;
			}
			if (v + 1 < sizeof(ls[0].value))
				ls[*n].value[v++] = *p;
			p++;
		}
		if (*p != '"') {
			fail("unterminated label value");
			return false;
		}
		ls[*n].value[v] = '\0';
		(*n)++;
		p++;
		if (*p == ',')
			p++;
		else if (*p != '}') {
			fail("',' or '}' expected at '%s'", p);
			return false;
		}
	}
}

static struct hist *hist_of(const char *family, const char *labels)
{
	for (size_t i = 0; i < nhists; i++)
		if (!strcmp(hists[i].family, family) && !strcmp(hists[i].labels, labels))
			return &hists[i];
	hists = realloc(hists, (nhists + 1) * sizeof(*hists));
	if (!hists) {
		perror("prom_check");
		exit(2);
	}
	memset(&hists[nhists], 0, sizeof(hists[0]));
	snprintf(hists[nhists].family, sizeof(hists[0].family), "%s", family);
	snprintf(hists[nhists].labels, sizeof(hists[0].labels), "%s", labels);
	hists[nhists].last_le = -INFINITY;
	return &hists[nhists++];
}

static void histogram_sample(struct family *f, const char *suffix, struct label *ls, size_t n, double v)
{
	char key[4096] = "", le_text[1024] = "";
	bool has_le = false;
	struct hist *h;
	double le;

	for (size_t i = 0; i < n; i++) {
		if (!strcmp(ls[i].name, "le")) {
			has_le = true;
			snprintf(le_text, sizeof(le_text), "%s", ls[i].value);
			continue;
		}
		strncat(key, ls[i].name, sizeof(key) - strlen(key) - 1);
		strncat(key, "=", sizeof(key) - strlen(key) - 1);
		strncat(key, ls[i].value, sizeof(key) - strlen(key) - 1);
		strncat(key, ",", sizeof(key) - strlen(key) - 1);
	}
	if (!*suffix) {
		fail("histogram %s: a sample without _bucket, _sum or _count", f->name);
		return;
	}
	h = hist_of(f->name, key);
	if (!strcmp(suffix, "_bucket")) {
		if (!has_le || !parse_value(le_text, &le) || isnan(le)) {
			fail("histogram %s: a _bucket without a numeric le", f->name);
			return;
		}
		if (le <= h->last_le)
			fail("histogram %s: le values not increasing (le=\"%s\")", f->name, le_text);
		if (h->any_bucket && v < h->last_count)
			fail("histogram %s: bucket counts decrease (not cumulative)", f->name);
		if (h->has_inf)
			fail("histogram %s: a bucket after le=\"+Inf\"", f->name);
		if (!isfinite(v) || v < 0)
			fail("histogram %s: a bucket count that is not a count", f->name);
		h->last_le = le;
		h->last_count = v;
		h->any_bucket = true;
		if (isinf(le) && le > 0) {
			h->has_inf = true;
			h->inf_count = v;
		}
		return;
	}
	if (has_le)
		fail("histogram %s: le on _sum or _count", f->name);
	if (!strcmp(suffix, "_sum"))
		h->has_sum = true;
	else {
		h->has_count = true;
		h->count = v;
	}
}

static void sample(const char *line)
{
	struct label ls[MAX_LABELS];
	size_t nl = 0, n = scan_name(line, true);
	char name[256], key[8192], *end;
	const char *p = line + n, *suffix, *val;
	struct family *f;
	double v;

	if (!n || n >= sizeof(name)) {
		fail("a metric name expected: %s", line);
		return;
	}
	memcpy(name, line, n);
	name[n] = '\0';
	if (*p == '{' && !parse_labels(&p, ls, &nl))
		return;
	if (*p != ' ') {
		fail("a space expected before the value: %s", line);
		return;
	}
	while (*p == ' ')
		p++;
	val = p;
	while (*p && *p != ' ')
		p++;
	{
		char vbuf[64];

		if ((size_t)(p - val) >= sizeof(vbuf) || p == val) {
			fail("a value expected: %s", line);
			return;
		}
		memcpy(vbuf, val, (size_t)(p - val));
		vbuf[p - val] = '\0';
		if (!parse_value(vbuf, &v)) {
			fail("not a value: '%s'", vbuf);
			return;
		}
	}
	if (*p == ' ') {
		while (*p == ' ')
			p++;
		strtoll(p, &end, 10);
		if (!*p || *end)
			fail("not an integer timestamp: '%s'", p);
	}
	f = sample_family(name, &suffix);
	if (!f || !f->type_seen || !f->help) {
		fail("sample %s without HELP and TYPE before it", name);
		if (!f)
			return;
	}
	if (f->closed)
		fail("samples of %s not in one block", f->name);
	if (current && current != f)
		current->closed = true;
	current = f;
	f->sampled = true;
	if (f->type == T_COUNTER && !(v >= 0))
		fail("counter %s below 0 (or NaN)", name);
	if (f->type != T_HISTOGRAM && nl && !strcmp(name, f->name) && f->type != T_SUMMARY)
		for (size_t i = 0; i < nl; i++)
			if (!strcmp(ls[i].name, "le"))
				fail("label le outside a histogram (%s)", name);
	/* the series, once */
	qsort(ls, nl, sizeof(ls[0]), cmp_label);
	snprintf(key, sizeof(key), "%s", name);
	for (size_t i = 0; i < nl; i++) {
		strncat(key, "\x01", sizeof(key) - strlen(key) - 1);
		strncat(key, ls[i].name, sizeof(key) - strlen(key) - 1);
		strncat(key, "\x02", sizeof(key) - strlen(key) - 1);
		strncat(key, ls[i].value, sizeof(key) - strlen(key) - 1);
	}
	for (size_t i = 0; i < nseries; i++)
		if (!strcmp(series[i], key)) {
			fail("series twice: %s", line);
			return;
		}
	if (nseries < MAX_SERIES) {
		series = realloc(series, (nseries + 1) * sizeof(*series));
		if (!series || !(series[nseries] = strdup(key))) {
			perror("prom_check");
			exit(2);
		}
		nseries++;
	}
	if (f->type == T_HISTOGRAM)
		histogram_sample(f, suffix, ls, nl, v);
}

static void histograms_complete(void)
{
	for (size_t i = 0; i < nhists; i++) {
		const struct hist *h = &hists[i];

		if (!h->has_inf)
			fail("histogram %s: no le=\"+Inf\" bucket", h->family);
		if (!h->has_sum || !h->has_count)
			fail("histogram %s: _sum or _count missing", h->family);
		else if (h->has_inf && h->count != h->inf_count)
			fail("histogram %s: _count is not the le=\"+Inf\" bucket", h->family);
	}
}

int main(int argc, char **argv)
{
	FILE *in = argc > 1 ? fopen(argv[1], "r") : stdin;
	char *line = NULL;
	size_t cap = 0, samples = 0;
	ssize_t len;

	if (!in) {
		perror(argv[1]);
		return 2;
	}
	while ((len = getline(&line, &cap, in)) >= 0) {
		lineno++;
		if (len == 0 || line[len - 1] != '\n') {
			fail("the last line does not end with a line feed");
		} else {
			line[--len] = '\0';
		}
		if (strchr(line, '\r'))
			fail("a carriage return");
		if (len == 0)
			continue;
		if (line[0] == '#') {
			comment(line);
			continue;
		}
		sample(line);
		samples++;
	}
	histograms_complete();
	for (size_t i = 0; i < nfams; i++)
		if (!fams[i].help || !fams[i].type_seen)
			fail("family %s: HELP or TYPE missing", fams[i].name);
	free(line);
	if (in != stdin)
		fclose(in);
	if (errors) {
		fprintf(stderr, "prom_check: %d problem(s) in %ld lines\n", errors, lineno);
		return 1;
	}
	printf("prom_check: ok, %zu families, %zu samples, %zu histogram series\n", nfams, samples, nhists);
	return 0;
}
