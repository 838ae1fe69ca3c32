/* The suite's output: TAP lines on stdout, one per check. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conform.h"

static unsigned checks, failed;
static bool verbose;

void cf_set_verbose(bool on)
{
	verbose = on;
}

bool cf_check(bool ok, const char *sect, const char *what, const char *why, ...)
{
	checks++;
	if (ok) {
		printf("ok %u - %s (protocol.md %s)\n", checks, what, sect);
	} else {
		va_list ap;

		failed++;
		printf("not ok %u - %s (protocol.md %s): ", checks, what, sect);
		va_start(ap, why);
		vprintf(why, ap);
		va_end(ap);
		putchar('\n');
	}
	fflush(stdout);
	return ok;
}

static void comment(const char *fmt, va_list ap)
{
	fputs("# ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
}

void cf_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	comment(fmt, ap);
	va_end(ap);
}

void cf_debug(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	comment(fmt, ap);
	va_end(ap);
}

unsigned cf_summary(void)
{
	printf("1..%u\n", checks);
	printf("# conformance: %u checks, %u broken%s\n", checks, failed,
	       failed ? " (the not ok lines above say what)" : "");
	fflush(stdout);
	return failed;
}

void cf_inv_note(struct cf_inv *v, bool ok, const char *why, ...)
{
	v->seen++;
	if (ok)
		return;
	if (!v->bad++) {
		va_list ap;

		va_start(ap, why);
		vsnprintf(v->first, sizeof(v->first), why, ap);
		va_end(ap);
	}
}

void cf_inv_report(struct cf_inv *v, bool need_some)
{
	char what[256];

	snprintf(what, sizeof(what), "%s (%u seen)", v->what, v->seen);
	if (v->bad)
		cf_check(false, v->sect, what, "%u broke it; the first: %s", v->bad, v->first);
	else if (need_some && !v->seen)
		cf_check(false, v->sect, what, "none seen");
	else
		cf_check(true, v->sect, what, " ");
	v->seen = v->bad = 0;
	v->first[0] = '\0';
}
