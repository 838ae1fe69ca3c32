/* pms's web console: the pure parts (console.h). */
#include "console.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes standard base64 (padding optional) into out; the length, or -1. */
static long b64_decode(const char *in, size_t len, char *out, size_t cap)
{
	unsigned acc = 0;
	int bits = 0;
	size_t n = 0;

	while (len && in[len - 1] == '=')
		len--;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value((unsigned char)in[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -1;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	return (long)n;
}

bool pms_console_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	volatile unsigned char d = alen != blen;
	size_t n = alen > blen ? alen : blen;

	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)((i < alen ? a[i] : 0) ^ (i < blen ? b[i] : 0));
	return d == 0;
}

bool pms_console_basic_ok(const char *header, const char *user, const char *password)
{
	char got[1024], want[1024];
	long n;
	int w;

	if (!header || !user || !password || !*password)
		return false;
	if (strncasecmp(header, "Basic ", 6) != 0)
		return false;
	header += 6;
	while (*header == ' ')
		header++;
	n = b64_decode(header, strcspn(header, " \t\r\n"), got, sizeof(got));
	w = snprintf(want, sizeof(want), "%s:%s", user, password);
	if (n < 0 || w < 0 || (size_t)w >= sizeof(want))
		return false;
	return pms_console_equal(got, (size_t)n, want, (size_t)w);
}

const char *pms_console_static_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
	};
	const char *dot;
	size_t len;

	if (!name || !*name || name[0] == '.' || (len = strlen(name)) > 64)
		return NULL;
	if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != len)
		return NULL;
	dot = strchr(name, '.');
	if (!dot || strchr(dot + 1, '.'))
		return NULL;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(dot, types[i].ext))
			return types[i].type;
	return NULL;
}

void pms_series_init(struct pms_series *sr, int64_t bucket_ms, size_t n)
{
	memset(sr, 0, sizeof(*sr));
	sr->bucket_ms = bucket_ms < 1 ? 1 : bucket_ms;
	sr->n = n < 1 ? 1 : n > PMS_SERIES_MAX ? PMS_SERIES_MAX : n;
	sr->first = -1;
}

bool pms_series_add(struct pms_series *sr, enum pms_series_kind kind, int64_t wall_ms, int64_t v)
{
	int64_t k = wall_ms / sr->bucket_ms;

	if (wall_ms < 0 || kind >= PMS_SERIES_NKINDS)
		return false;
	if (sr->first < 0) {
		memset(sr->count, 0, sizeof(sr->count));
		sr->first = k;
	} else if (k > sr->first) {
		/* the buckets between the newest and k begin empty */
		for (int64_t j = sr->first + 1; j <= k && j <= sr->first + (int64_t)sr->n; j++)
			memset(sr->count[j % (int64_t)sr->n], 0, sizeof(sr->count[0]));
		sr->first = k;
	} else if (k <= sr->first - (int64_t)sr->n) {
		return false;
	}
	sr->count[k % (int64_t)sr->n][kind] += v;
	return true;
}

json_t *pms_series_json(const struct pms_series *sr, int64_t now_ms)
{
	int64_t newest = now_ms / sr->bucket_ms, n = (int64_t)sr->n;
	json_t *b = json_array();

	if (sr->first > newest)
		newest = sr->first;
	for (int64_t j = newest - n + 1; b && j <= newest; j++) {
		bool held = sr->first >= 0 && j <= sr->first && j > sr->first - n;
		const int64_t *c = held ? sr->count[j % n] : NULL;

		if (j < 0)
			continue;
		json_array_append_new(b, json_pack("{s:I, s:I, s:I, s:I}", "t", (json_int_t)(j * sr->bucket_ms),
						   "restored", (json_int_t)(c ? c[PMS_SERIES_RESTORED] : 0), "lost",
						   (json_int_t)(c ? c[PMS_SERIES_LOST] : 0), "room_events",
						   (json_int_t)(c ? c[PMS_SERIES_ROOM_EVENTS] : 0)));
	}
	return json_pack("{s:I, s:o*}", "bucket_ms", (json_int_t)sr->bucket_ms, "buckets", b);
}
