/* cli: the command-line helpers confdrctl, mcusim and cmsim share
 * (src/tools/cli.h): usage errors, numbers, ids, E164s, the environment's
 * defaults, the broker's handle, and printing JSON. */
#include "cli.h"

#include <confdr/daemon.h>
#include <confdr/mq.h>
#include <confdr/msg.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *cli_prog = "?";
static void (*cli_usage)(FILE *f);

void cli_setup(const char *prog, void (*usage)(FILE *f))
{
	cli_prog = prog;
	cli_usage = usage;
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cli_usage) {
		fprintf(stderr, "\n\n");
		cli_usage(stderr);
	} else {
		fprintf(stderr, "\n(%s --help lists the options)\n", cli_prog);
	}
	return EX_USAGE;
}

bool cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

bool cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!all_digits(s))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

bool cli_parse_double(const char *s, double min, double max, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max))
		return false;
	*ret = v;
	return true;
}

bool cli_e164_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= CDR_MSG_E164_MIN && n <= CDR_MSG_E164_MAX && all_digits(s);
}

bool cli_id_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

	return *s && !s[n] && n <= CLI_MAX_ID;
}

const char *cli_env(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

const char *cli_broker_from_env(const char *platform, const char *role, char *name, size_t len)
{
	const char *v;
	char *cut;
	size_t n = (size_t)snprintf(name, len, "CONFDR_%s_AMQP_URL_%s", platform, role ? role : "");

	for (size_t i = 7; i < n && i < len; i++)
		name[i] = name[i] == '-' ? '_' : (name[i] >= 'a' && name[i] <= 'z') ? (char)(name[i] - 32) : name[i];
	if (role && (v = getenv(name)) && *v)
		return v;
	if ((cut = strstr(name + 7, "_AMQP_URL")))
		cut[strlen("_AMQP_URL")] = '\0'; /* the platform's variable */
	if ((v = getenv(name)) && *v)
		return v;
	if ((v = getenv("CONFDR_AMQP_URL")) && *v)
		return v;
	return NULL;
}

static const char *tls_ca_opt;

void cli_set_tls_ca(const char *path)
{
	tls_ca_opt = path;
}

const char *cli_tls_ca(void)
{
	return tls_ca_opt && *tls_ca_opt ? tls_ca_opt : cli_env("CONFDR_TLS_CA", NULL);
}

const char *cli_amqp_scheme(void)
{
	return cli_tls_ca() ? "amqps" : "amqp";
}

/* Whether url names a password ("amqp://user:pw@host"), not only a user. */
static bool url_has_password(const char *url)
{
	const char *p = strstr(url, "://");
	size_t n;

	if (!p)
		return true;
	p += 3;
	n = strcspn(p, "/@");
	return p[n] != '@' || memchr(p, ':', n) != NULL;
}

int cli_broker_open(struct cdr_loop *loop, const struct cdr_mq_opts *o, struct cdr_mq **mq, char *shown, size_t len)
{
	struct cdr_mq_opts with_ca = *o;
	const char *pw_file = cli_env("CONFDR_AMQP_PASSWORD_FILE", NULL), *dir = cli_env("CONFDR_AMQP_SECRETS", NULL);
	struct cdr_mq_url u;
	char err[300], path[1024], *secret = NULL;
	bool tls;
	int r;

	if (cdr_mq_url_parse(o->url, &u, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: bad broker URL: %s\n", cli_prog, err);
		return EX_USAGE;
	}
	snprintf(shown, len, "%s@%s:%u/%s", u.user, u.host, u.port, u.vhost);
	tls = u.tls;
	/* A password in the URL is used as it is. Without one: the user's own
	 * file in $CONFDR_AMQP_SECRETS when there is one, else the file
	 * $CONFDR_AMQP_PASSWORD_FILE. */
	if (url_has_password(o->url)) {
		pw_file = NULL;
	} else if (dir && (size_t)snprintf(path, sizeof(path), "%s/amqp-%s.password", dir, u.user) < sizeof(path) &&
		   access(path, F_OK) == 0) {
		pw_file = path;
	}
	cdr_mq_url_clear(&u);
	if (!with_ca.tls_ca)
		with_ca.tls_ca = cli_tls_ca();
	if (tls && !with_ca.tls_ca) {
		fprintf(stderr,
			"%s: an amqps URL needs the CA that signed the broker's certificate: --tls-ca FILE or "
			"$CONFDR_TLS_CA\n",
			cli_prog);
		return EX_USAGE;
	}
	/* the password from a file, never from the command line */
	if (pw_file && cdr_secret_read(pw_file, NULL, &secret, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: the broker password: %s\n", cli_prog, err);
		return EX_USAGE;
	}
	with_ca.password = secret;
	r = cdr_mq_new(loop, &with_ca, mq);
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	if (r < 0) {
		fprintf(stderr, "%s: cannot create the AMQP client: %s\n", cli_prog, strerror(-r));
		return EX_UNAVAILABLE;
	}
	return 0;
}

const char *cli_jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

void cli_fmt_time(int64_t ms, char *out, size_t len)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !gmtime_r(&sec, &tm)) {
		snprintf(out, len, "-");
		return;
	}
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void cli_print_json(json_t *v, const char *none)
{
	char *txt = json_dumps(v, JSON_INDENT(2));

	printf("%s\n", txt ? txt : none);
	free(txt);
}
