/* What the command lines of the tools (confdrctl, mcusim, cmsim) share:
 * exit statuses, usage errors, the checks of numbers and ids, the defaults
 * taken from the environment, the broker's handle, and a few ways to print
 * JSON. Each tool keeps its own wording; cli_setup names the program. */
#ifndef TOOLS_CLI_H
#define TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct cdr_loop;
struct cdr_mq;
struct cdr_mq_opts;

/* sysexits.h values */
#define EX_FAIL	       1
#define EX_USAGE       64
#define EX_DATAERR     65
#define EX_UNAVAILABLE 69
#define EX_SOFTWARE    70

#define CLI_DEFAULT_ZK	   "127.0.0.1:17181"
#define CLI_DEFAULT_CHROOT "/dr"
#define CLI_MAX_ID	   64 /* protocol: platforms, rooms, user domains, MCUs are 1..64 bytes */

/* The program's name, first on every message of this file, and its usage
 * text: printed after a usage error, or when NULL, a line pointing at
 * "PROG --help" instead. */
void cli_setup(const char *prog, void (*usage)(FILE *f));

/* "PROG: <message>" on stderr, then the usage or the pointer to --help.
 * Returns EX_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A whole decimal number in min..max, as strtoll reads it (leading blanks
 * and a sign allowed). */
bool cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret);

/* The same for digits only: no blank, no sign. */
bool cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* A number as strtod reads it, in min..max. */
bool cli_parse_double(const char *s, double min, double max, double *ret);

/* An E164: CDR_MSG_E164_MIN..CDR_MSG_E164_MAX digits. */
bool cli_e164_ok(const char *s);

/* An id (it becomes a ZooKeeper node name, an AMQP routing key, a JSON
 * string): letters, digits, '.', '_', '-', 1..CLI_MAX_ID bytes. */
bool cli_id_ok(const char *s);

/* $name, or dflt when it is unset or empty. */
const char *cli_env(const char *name, const char *dflt);

/* $CONFDR_<PLATFORM>_AMQP_URL_<ROLE> (upper-cased, '-' as '_'; the broker
 * user of that role, as `deploy/sandbox.sh env` exports them), then
 * $CONFDR_<PLATFORM>_AMQP_URL, then $CONFDR_AMQP_URL; NULL if none. name
 * gets the name of the platform's variable without the role. */
const char *cli_broker_from_env(const char *platform, const char *role, char *name, size_t len);

/* The CA bundle for TLS links: the one set by a --tls-ca option
 * (cli_set_tls_ca), else $CONFDR_TLS_CA; NULL if neither. */
const char *cli_tls_ca(void);
void cli_set_tls_ca(const char *path);

/* The scheme of a broker URL the tool builds itself (from a ZooKeeper
 * endpoint): "amqps" when cli_tls_ca() names a CA, else "amqp". */
const char *cli_amqp_scheme(void);

/* The AMQP handle for o->url, with the broker in shown without its password
 * (user@host:port/vhost). A URL without a password takes it from a file,
 * so that it is never on a command line: $CONFDR_AMQP_SECRETS/amqp-USER.password
 * when that exists (the sandbox's secrets), else $CONFDR_AMQP_PASSWORD_FILE. o->tls_ca NULL: cli_tls_ca(). Returns 0, or an
 * exit status with the reason printed: EX_USAGE for a bad URL or an amqps
 * one without a CA, EX_UNAVAILABLE when no client is made. */
int cli_broker_open(struct cdr_loop *loop, const struct cdr_mq_opts *o, struct cdr_mq **mq, char *shown, size_t len);

/* The string at key of object o, or "-". */
const char *cli_jstr(json_t *o, const char *key);

/* ms since the Unix epoch as 2006-01-02T15:04:05Z; "-" when not above 0. */
void cli_fmt_time(int64_t ms, char *out, size_t len);

/* v indented, or none when it cannot be printed; then a newline. */
void cli_print_json(json_t *v, const char *none);

#endif
