/* Failpoints: named places where a test may have the process die, to prove
 * that a crash exactly there loses nothing (tests/faults/, docs/testing.md,
 * "Failpoints").
 *
 * CONFDR_FAILPOINTS="NAME=N[,NAME=N...]" in the environment: the N-th time
 * the process passes NAME, it logs that and kills itself with SIGKILL, as a
 * power cut or the OOM killer would (no handler, no flush). Unset, as in
 * production, passing a failpoint costs a pthread_once and one flag.
 *
 * CONFDR_FAILPOINT_MARKS=DIR (an existing directory) makes each failpoint
 * fire once for all processes that share DIR: firing creates DIR/NAME first,
 * and a process that finds DIR/NAME at start does not arm NAME. Without it,
 * a daemon started again by its supervisor (same environment) would fire
 * again at its N-th pass: a crash loop.
 *
 * The places (each named after what has happened and what has not), both in
 * cdr_bus_reply_and_ack, the last step of every answer of every daemon:
 *   answer.unsent   an answer to a request is stored (css) or made (rms,
 *                   pms); neither sent nor acked
 *   answer.unacked  the answer is sent; the request is not acked */
#ifndef CONFDR_FAILPOINT_H
#define CONFDR_FAILPOINT_H

/* Kills the process when NAME is armed and this is its N-th pass. */
void cdr_failpoint(const char *name);

/* Reads CONFDR_FAILPOINTS now (once per process) and logs what it arms: 0
 * when it is unset or well formed (each NAME 1..47 characters, each N
 * 1..1000000000, at most 8), else -EINVAL and nothing is armed. The daemons
 * call it at start and refuse to run on -EINVAL, so that a typo is an error,
 * not a failpoint that never fires. */
int cdr_failpoints_init(void);

#endif
