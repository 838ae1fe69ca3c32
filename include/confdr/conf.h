/* Configuration: one INI-style format for every daemon, one table-driven
 * parser.
 *
 *   # comment (whole lines only: a value may contain '#')
 *   [section]
 *   key = value          value trimmed; "double quotes" keep spaces
 *
 * Each key is described once (section, name, type, default, bounds, choices,
 * validator) and stored at an offset into the caller's struct. Every problem
 * is collected, not just the first, as "file:line: [section] key: message";
 * a daemon prints them all and exits with 78 (EX_CONFIG). */
#ifndef CONFDR_CONF_H
#define CONFDR_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cdr_conf_type {
	CDR_CONF_STR,	/* char * (owned by the struct; freed by cdr_conf_release) */
	CDR_CONF_INT,	/* int64_t, within [min, max] */
	CDR_CONF_BOOL,	/* bool: true/false, yes/no, on/off, 1/0 */
	CDR_CONF_MS,	/* uint64_t milliseconds from "250ms", "2s", "5m", "1h"; bounds in ms */
	CDR_CONF_ENUM,	/* int: index into choices */
	CDR_CONF_GROUP, /* struct cdr_conf_group: named sections "[section NAME]",
			 * each parsed with the key's own table into an item of
			 * group_size bytes (keepalived-style blocks, e.g.
			 * "[room p1-r1]"); NAME is a MOID, each at most once */
};

struct cdr_conf_group {
	size_t n;
	char **names; /* the NAMEs, in file order */
	void **items; /* each filled from the key's group table */
};

struct cdr_conf_key {
	const char *section;
	const char *name; /* NULL ends a table */
	enum cdr_conf_type type;
	size_t offset;		    /* of the value in the caller's struct */
	const char *def;	    /* default, as it would be written in the file; NULL: required */
	int64_t min, max;	    /* INT and MS; both 0: unbounded */
	const char *const *choices; /* ENUM: NULL-terminated */
	/* Optional extra check of a STR value: returns NULL if fine, else a
	 * static message ("expected lowercase letters, digits and '-'"). */
	const char *(*check)(const char *value);
	const char *help; /* one line, for --help-config and the examples */
	/* GROUP: the keys of one named section (sections ignored, offsets into
	 * an item) and the item's size. */
	const struct cdr_conf_key *group;
	size_t group_size;
};

struct cdr_conf_errors {
	char **lines;
	size_t n;
};

/* Reads path and fills out from the NULL-terminated list of key tables (each
 * ended by an entry with name NULL; offsets relative to out). Defaults are
 * applied to keys not in the file. Returns 0 when the file is valid, -EINVAL
 * with errs filled when it is not, -errno when it cannot be read (errs says
 * so too). On failure out holds nothing that needs releasing. */
int cdr_conf_load(const char *path, const struct cdr_conf_key *const *tables, void *out, struct cdr_conf_errors *errs);

/* The same on text already in memory; name is used in messages. */
int cdr_conf_parse(const char *name, const char *text, const struct cdr_conf_key *const *tables, void *out,
		   struct cdr_conf_errors *errs);

/* Frees the strings (and groups) cdr_conf_load stored in out. */
void cdr_conf_release(const struct cdr_conf_key *const *tables, void *out);

void cdr_conf_errors_clear(struct cdr_conf_errors *errs);

/* Parses a duration ("250ms", "2s", "5m", "1h") into ms; -EINVAL if malformed. */
int cdr_conf_parse_ms(const char *s, uint64_t *ret);

/* Validators for STR keys. */
const char *cdr_conf_check_id(const char *value);	/* a MOID: [a-z0-9][a-z0-9_.-]* */
const char *cdr_conf_check_hostport(const char *value); /* host:port[,host:port...] */

#endif
