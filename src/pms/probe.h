/* pms's health probes, on the loop without blocking: a TCP connect to a
 * numeric address with a connect timeout (keepalived's TCP_CHECK), and a
 * command run by /bin/sh with a timeout (MISC_CHECK: exit 0 passes). */
#ifndef CONFDR_PMS_PROBE_H
#define CONFDR_PMS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdr_loop;
struct pms_probe;

/* The outcome, exactly once unless the probe is freed first; detail (borrowed)
 * says what failed ("connection refused", "timed out after 1000 ms", "exit
 * status 2: <first line of output>"). The probe frees itself after fn. */
typedef void (*pms_probe_fn)(bool ok, const char *detail, void *arg);

/* Checks "ip:port" text: a numeric IPv4 or IPv6 address (no name lookups on
 * the loop) and a port 1..65535. Returns 0 and fills the parts, or -EINVAL. */
int pms_probe_parse_addr(const char *text, char *host, size_t hostlen, int *port);

/* Starts a TCP connect to host (numeric) and port. Returns 0 (fn will run),
 * -EINVAL (not a numeric address) or -errno (no socket: fn will not run). */
int pms_probe_tcp(struct cdr_loop *loop, const char *host, int port, uint64_t timeout_ms, pms_probe_fn fn, void *arg,
		  struct pms_probe **ret);

/* Runs /bin/sh -c cmd in its own process group; killed at the timeout. */
int pms_probe_command(struct cdr_loop *loop, const char *cmd, uint64_t timeout_ms, pms_probe_fn fn, void *arg,
		      struct pms_probe **ret);

/* Cancels a probe still running (fn is not called; a command is killed).
 * Accepts NULL; returns NULL. */
struct pms_probe *pms_probe_free(struct pms_probe *p);

#endif
