/* The INI parser behind every daemon's configuration. */
#include <confdr/conf.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FILE_BYTES (1 << 20)
#define MAX_LINE       4096

static void add_error(struct cdr_conf_errors *errs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_error(struct cdr_conf_errors *errs, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL;
	char **grown;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	if (!line)
		return;
	grown = realloc(errs->lines, (errs->n + 1) * sizeof(*grown));
	if (!grown) {
		free(line);
		return;
	}
	errs->lines = grown;
	errs->lines[errs->n++] = line;
}

void cdr_conf_errors_clear(struct cdr_conf_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->lines[i]);
	free(errs->lines);
	errs->lines = NULL;
	errs->n = 0;
}

int cdr_conf_parse_ms(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	uint64_t mult;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mult = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mult = 3600 * 1000;
	else
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*ret = (uint64_t)v * mult;
	return 0;
}

const char *cdr_conf_check_id(const char *v)
{
	if (!*v || !(islower((unsigned char)*v) || isdigit((unsigned char)*v)))
		return "expected an id of lowercase letters, digits, '_', '.' and '-'";
	for (const char *p = v; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
			return "expected an id of lowercase letters, digits, '_', '.' and '-'";
	if (strlen(v) > 64)
		return "id longer than 64 characters";
	return NULL;
}

const char *cdr_conf_check_hostport(const char *v)
{
	const char *p = v;

	if (!*v)
		return "expected host:port[,host:port...]";
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *colon = memrchr(p, ':', len);
		char *end;
		long port;

		if (!colon || colon == p)
			return "expected host:port[,host:port...]";
		port = strtol(colon + 1, &end, 10);
		if (end != p + len || end == colon + 1 || port < 1 || port > 65535)
			return "expected host:port with a port 1..65535";
		p = comma ? comma + 1 : p + len;
	}
	return NULL;
}

static const struct cdr_conf_key *find_key(const struct cdr_conf_key *const *tables, const char *section,
					   const char *name)
{
	for (size_t t = 0; tables[t]; t++)
		for (const struct cdr_conf_key *k = tables[t]; k->name; k++)
			if (k->type != CDR_CONF_GROUP && strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0)
				return k;
	return NULL;
}

static const struct cdr_conf_key *find_group_key(const struct cdr_conf_key *g, const char *name)
{
	for (const struct cdr_conf_key *k = g->group; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static bool known_section(const struct cdr_conf_key *const *tables, const char *section)
{
	for (size_t t = 0; tables[t]; t++)
		for (const struct cdr_conf_key *k = tables[t]; k->name; k++)
			if (k->type != CDR_CONF_GROUP && strcmp(k->section, section) == 0)
				return true;
	return false;
}

static const struct cdr_conf_key *find_group(const struct cdr_conf_key *const *tables, const char *section)
{
	for (size_t t = 0; tables[t]; t++)
		for (const struct cdr_conf_key *k = tables[t]; k->name; k++)
			if (k->type == CDR_CONF_GROUP && strcmp(k->section, section) == 0)
				return k;
	return NULL;
}

static void release_group(const struct cdr_conf_key *k, struct cdr_conf_group *g)
{
	const struct cdr_conf_key *sub[2] = { k->group, NULL };

	for (size_t i = 0; i < g->n; i++) {
		if (g->items[i]) {
			cdr_conf_release(sub, g->items[i]);
			free(g->items[i]);
		}
		free(g->names[i]);
	}
	free(g->items);
	free(g->names);
	memset(g, 0, sizeof(*g));
}

static void describe_bounds(const struct cdr_conf_key *k, char *buf, size_t len)
{
	if (k->type == CDR_CONF_INT && (k->min || k->max))
		snprintf(buf, len, "an integer %" PRId64 "..%" PRId64, k->min, k->max);
	else if (k->type == CDR_CONF_INT)
		snprintf(buf, len, "an integer");
	else if (k->type == CDR_CONF_MS && (k->min || k->max))
		snprintf(buf, len, "a duration %" PRId64 "ms..%" PRId64 "ms (like 500ms, 2s, 1m)", k->min, k->max);
	else
		snprintf(buf, len, "a duration like 500ms, 2s, 1m");
}

/* Stores value for k into out; returns NULL or a message (in msg). */
static const char *store(const struct cdr_conf_key *k, const char *value, void *out, char *msg, size_t len)
{
	char *base = (char *)out + k->offset;

	switch (k->type) {
	case CDR_CONF_STR: {
		const char *bad = k->check && *value ? k->check(value) : NULL;
		char *copy;

		if (bad)
			return bad;
		copy = strdup(value);
		if (!copy)
			return "out of memory";
		free(*(char **)base);
		*(char **)base = copy;
		return NULL;
	}
	case CDR_CONF_INT: {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(value, &end, 10);
		if (errno || end == value || *end || ((k->min || k->max) && (v < k->min || v > k->max))) {
			char want[96];

			describe_bounds(k, want, sizeof(want));
			snprintf(msg, len, "expected %s, got \"%s\"", want, value);
			return msg;
		}
		*(int64_t *)base = v;
		return NULL;
	}
	case CDR_CONF_MS: {
		uint64_t v;

		if (cdr_conf_parse_ms(value, &v) < 0 ||
		    ((k->min || k->max) && (v < (uint64_t)k->min || v > (uint64_t)k->max))) {
			char want[96];

			describe_bounds(k, want, sizeof(want));
			snprintf(msg, len, "expected %s, got \"%s\"", want, value);
			return msg;
		}
		*(uint64_t *)base = v;
		return NULL;
	}
	case CDR_CONF_BOOL:
		if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on") ||
		    !strcmp(value, "1"))
			*(bool *)base = true;
		else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcasecmp(value, "off") ||
			 !strcmp(value, "0"))
			*(bool *)base = false;
		else {
			snprintf(msg, len, "expected true or false, got \"%s\"", value);
			return msg;
		}
		return NULL;
	case CDR_CONF_GROUP: return "internal error: a group has no value";
	case CDR_CONF_ENUM: {
		size_t used = 0;

		for (int i = 0; k->choices[i]; i++) {
			if (strcmp(k->choices[i], value) == 0) {
				*(int *)base = i;
				return NULL;
			}
		}
		used = (size_t)snprintf(msg, len, "expected one of");
		for (int i = 0; k->choices[i] && used < len; i++)
			used += (size_t)snprintf(msg + used, len - used, "%s %s", i ? "," : "", k->choices[i]);
		if (used < len)
			snprintf(msg + used, len - used, "; got \"%s\"", value);
		return msg;
	}
	}
	return "internal error: unknown key type";
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

struct seen {
	const struct cdr_conf_key *key;
	int line;
};

/* Applies the defaults of the keys of tables not in seen; reports required
 * ones. label names the section in messages when not NULL ("room p1-r1"). */
static void apply_defaults(const char *name, const char *label, const struct cdr_conf_key *const *tables, void *out,
			   const struct seen *seen, size_t nseen, struct cdr_conf_errors *errs)
{
	char msg[512];

	for (size_t t = 0; tables[t]; t++) {
		for (const struct cdr_conf_key *k = tables[t]; k->name; k++) {
			const char *sec = label ? label : k->section;
			bool given = k->type == CDR_CONF_GROUP;
			const char *bad;

			for (size_t i = 0; i < nseen && !given; i++)
				given = seen[i].key == k;
			if (given)
				continue;
			if (!k->def) {
				add_error(errs, "%s: [%s] %s: required, not set (%s)", name, sec, k->name,
					  k->help ? k->help : "no default");
				continue;
			}
			/* Empty default strings are allowed ("not set"); validators only
			 * see real values. */
			if (k->type == CDR_CONF_STR && !*k->def) {
				char **slot = (char **)((char *)out + k->offset);

				free(*slot);
				*slot = strdup("");
				continue;
			}
			bad = store(k, k->def, out, msg, sizeof(msg));
			if (bad)
				add_error(errs, "%s: [%s] %s: bad built-in default: %s", name, sec, k->name, bad);
		}
	}
}

/* The named section being read ("[room p1-r1]"). */
struct open_item {
	const struct cdr_conf_key *gkey; /* NULL: none open */
	void *item;
	char label[200];
	struct seen *seen;
	size_t nseen;
};

static void close_item(const char *name, struct open_item *it, struct cdr_conf_errors *errs)
{
	const struct cdr_conf_key *sub[2];

	if (!it->gkey)
		return;
	sub[0] = it->gkey->group;
	sub[1] = NULL;
	apply_defaults(name, it->label, sub, it->item, it->seen, it->nseen, errs);
	free(it->seen);
	memset(it, 0, sizeof(*it));
}

/* Opens "[section NAME]" for the group key g; returns false (and reports)
 * when it cannot be used. */
static bool open_item(const char *name, int lineno, const struct cdr_conf_key *g, const char *iname, void *out,
		      struct open_item *it, struct cdr_conf_errors *errs)
{
	struct cdr_conf_group *grp = (struct cdr_conf_group *)((char *)out + g->offset);
	const char *bad = cdr_conf_check_id(iname);
	size_t nsub = 0;
	char **names;
	void **items;

	if (bad) {
		add_error(errs, "%s:%d: [%s %s]: %s", name, lineno, g->section, iname, bad);
		return false;
	}
	for (size_t i = 0; i < grp->n; i++) {
		if (strcmp(grp->names[i], iname) == 0) {
			add_error(errs, "%s:%d: [%s %s]: given twice", name, lineno, g->section, iname);
			return false;
		}
	}
	for (const struct cdr_conf_key *k = g->group; k->name; k++)
		nsub++;
	names = realloc(grp->names, (grp->n + 1) * sizeof(*names));
	if (names)
		grp->names = names;
	items = realloc(grp->items, (grp->n + 1) * sizeof(*items));
	if (items)
		grp->items = items;
	it->seen = calloc(nsub + 1, sizeof(*it->seen));
	it->item = calloc(1, g->group_size);
	if (!names || !items || !it->seen || !it->item || !(grp->names[grp->n] = strdup(iname))) {
		free(it->seen);
		free(it->item);
		memset(it, 0, sizeof(*it));
		add_error(errs, "%s:%d: out of memory", name, lineno);
		return false;
	}
	grp->items[grp->n++] = it->item;
	it->gkey = g;
	it->nseen = 0;
	snprintf(it->label, sizeof(it->label), "%s %s", g->section, iname);
	return true;
}

int cdr_conf_parse(const char *name, const char *text, const struct cdr_conf_key *const *tables, void *out,
		   struct cdr_conf_errors *errs)
{
	size_t nkeys = 0, nseen = 0;
	struct seen *seen;
	struct open_item it = { 0 };
	char section[128] = "";
	bool section_ok = false;
	const char *p = text;
	int lineno = 0;
	size_t errs_before = errs->n;
	char msg[512];

	for (size_t t = 0; tables[t]; t++)
		for (const struct cdr_conf_key *k = tables[t]; k->name; k++)
			nkeys++;
	seen = calloc(nkeys + 1, sizeof(*seen));
	if (!seen) {
		add_error(errs, "%s: out of memory", name);
		return -ENOMEM;
	}

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char buf[MAX_LINE], *line, *eq, *key, *value;
		const struct cdr_conf_key *k;
		const char *bad;
		struct seen *sn;
		size_t *nsn;
		void *dst;

		lineno++;
		if (len >= sizeof(buf)) {
			add_error(errs, "%s:%d: line longer than %d characters", name, lineno, MAX_LINE - 1);
			p = nl ? nl + 1 : p + len;
			continue;
		}
		memcpy(buf, p, len);
		buf[len] = '\0';
		p = nl ? nl + 1 : p + len;
		if (memchr(buf, '\0', len)) {
			add_error(errs, "%s:%d: NUL byte in line", name, lineno);
			continue;
		}
		line = trim(buf);
		if (!*line || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			char *close = strchr(line, ']'), *sp;
			const struct cdr_conf_key *g;

			close_item(name, &it, errs);
			if (!close || close[1] != '\0') {
				add_error(errs, "%s:%d: expected [section]", name, lineno);
				section_ok = false;
				continue;
			}
			*close = '\0';
			snprintf(section, sizeof(section), "%s", trim(line + 1));
			section_ok = false;
			if ((sp = strpbrk(section, " \t"))) {
				/* "[room p1-r1]": a named section of a group. */
				char *iname;

				*sp = '\0';
				iname = trim(sp + 1);
				if (!(g = find_group(tables, section)))
					add_error(errs, "%s:%d: [%s %s]: unknown section", name, lineno, section,
						  iname);
				else
					section_ok = open_item(name, lineno, g, iname, out, &it, errs);
				continue;
			}
			if ((g = find_group(tables, section))) {
				add_error(errs, "%s:%d: [%s]: expected [%s NAME]", name, lineno, section, section);
				continue;
			}
			section_ok = known_section(tables, section);
			if (!section_ok)
				add_error(errs, "%s:%d: [%s]: unknown section", name, lineno, section);
			continue;
		}
		eq = strchr(line, '=');
		if (!eq) {
			add_error(errs, "%s:%d: expected key = value", name, lineno);
			continue;
		}
		*eq = '\0';
		key = trim(line);
		value = trim(eq + 1);
		if (!section[0]) {
			add_error(errs, "%s:%d: %s: key outside any [section]", name, lineno, key);
			continue;
		}
		if (!section_ok)
			continue; /* already reported the section */
		if (it.gkey) {
			k = find_group_key(it.gkey, key);
			sn = it.seen;
			nsn = &it.nseen;
			dst = it.item;
			if (!k) {
				add_error(errs, "%s:%d: [%s] %s: unknown key", name, lineno, it.label, key);
				continue;
			}
		} else {
			k = find_key(tables, section, key);
			sn = seen;
			nsn = &nseen;
			dst = out;
			if (!k) {
				add_error(errs, "%s:%d: [%s] %s: unknown key", name, lineno, section, key);
				continue;
			}
		}
		for (size_t i = 0; i < *nsn; i++) {
			if (sn[i].key == k) {
				add_error(errs, "%s:%d: [%s] %s: set twice (first on line %d)", name, lineno,
					  it.gkey ? it.label : section, key, sn[i].line);
				k = NULL;
				break;
			}
		}
		if (!k)
			continue;
		sn[*nsn].key = k;
		sn[*nsn].line = lineno;
		(*nsn)++;
		if (value[0] == '"') {
			size_t vl = strlen(value);

			if (vl < 2 || value[vl - 1] != '"') {
				add_error(errs, "%s:%d: [%s] %s: unterminated quote", name, lineno,
					  it.gkey ? it.label : section, key);
				continue;
			}
			value[vl - 1] = '\0';
			value++;
		} else if (!*value && !(k->type == CDR_CONF_STR && k->def && !*k->def)) {
			/* Only optional strings (default "") may be left empty. */
			add_error(errs, "%s:%d: [%s] %s: missing value", name, lineno, it.gkey ? it.label : section,
				  key);
			continue;
		}
		bad = store(k, value, dst, msg, sizeof(msg));
		if (bad)
			add_error(errs, "%s:%d: [%s] %s: %s", name, lineno, it.gkey ? it.label : section, key, bad);
	}
	close_item(name, &it, errs);
	apply_defaults(name, NULL, tables, out, seen, nseen, errs);
	free(seen);
	if (errs->n > errs_before) {
		cdr_conf_release(tables, out);
		return -EINVAL;
	}
	return 0;
}

int cdr_conf_load(const char *path, const struct cdr_conf_key *const *tables, void *out, struct cdr_conf_errors *errs)
{
	FILE *f = fopen(path, "re");
	char *text;
	size_t n;
	int r;

	if (!f) {
		r = -errno;
		add_error(errs, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	text = malloc(MAX_FILE_BYTES + 1);
	if (!text) {
		fclose(f);
		add_error(errs, "%s: out of memory", path);
		return -ENOMEM;
	}
	n = fread(text, 1, MAX_FILE_BYTES + 1, f);
	if (ferror(f) || n > MAX_FILE_BYTES) {
		r = ferror(f) ? -EIO : -EFBIG;
		add_error(errs, "%s: %s", path, r == -EIO ? "read error" : "larger than 1 MiB");
		fclose(f);
		free(text);
		return r;
	}
	fclose(f);
	text[n] = '\0';
	if (strlen(text) != n) {
		add_error(errs, "%s: contains a NUL byte", path);
		free(text);
		return -EINVAL;
	}
	r = cdr_conf_parse(path, text, tables, out, errs);
	free(text);
	return r;
}

void cdr_conf_release(const struct cdr_conf_key *const *tables, void *out)
{
	for (size_t t = 0; tables[t]; t++) {
		for (const struct cdr_conf_key *k = tables[t]; k->name; k++) {
			if (k->type == CDR_CONF_STR) {
				char **slot = (char **)((char *)out + k->offset);

				free(*slot);
				*slot = NULL;
			} else if (k->type == CDR_CONF_GROUP) {
				release_group(k, (struct cdr_conf_group *)((char *)out + k->offset));
			}
		}
	}
}
