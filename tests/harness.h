/* What the integration tests and benchmarks share: running the loop under a
 * deadline, child processes, and a plain AMQP client for checks the library
 * does not offer. Nothing here asserts: callers check the results with their
 * own framework (cmocka in tests, exit codes in benchmarks). */
#ifndef CONFDR_TESTS_HARNESS_H
#define CONFDR_TESTS_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include <amqp.h>
#include <jansson.h>

struct cdr_loop;
struct cdr_mq_delivery;

/* The variable's value, or NULL when it is unset or empty. */
const char *th_env(const char *name);

/* Runs loop until pred(arg) holds (true) or ms pass (false; also when a
 * timer cannot be made). pred is polled every 5 ms and must not run the loop
 * itself: use th_poll_until for such predicates. */
bool th_run_until(struct cdr_loop *loop, bool (*pred)(void *), void *arg, unsigned ms);

/* Runs loop for ms. */
void th_run_for(struct cdr_loop *loop, unsigned ms);

/* For predicates that run the loop themselves (they make requests): calls
 * pred every 200 ms, running loop in between, until it holds or ms pass. */
bool th_poll_until(struct cdr_loop *loop, bool (*pred)(void *), void *arg, unsigned ms);

/* A publisher confirm to wait for: th_on_confirm as the confirm callback
 * with a struct th_confirm (zeroed) as its argument, th_confirmed as the
 * predicate of th_run_until. */
struct th_confirm {
	bool done;
	int status; /* 0: confirmed; else the negative errno of cdr_mq's confirm */
};
void th_on_confirm(int status, void *arg);
bool th_confirmed(void *arg);

/* A request's answer to wait for (cdr_mq_request): th_on_reply as the reply
 * callback with a struct th_call (zeroed), th_call_done as the predicate of
 * th_run_until. reply: the whole answer envelope as JSON (the caller's
 * reference), NULL on a timeout or an unreadable answer. */
struct th_call {
	bool done;
	int status;
	json_t *reply;
};
void th_on_reply(int status, const struct cdr_mq_delivery *reply, void *arg);
bool th_call_done(void *arg);

/* Starts argv[0] with argv, stdout and stderr to log (appended, or
 * truncated first). Returns the pid, or -1 when fork fails. */
pid_t th_spawn(char *const argv[], const char *log, bool truncate);

/* Sends sig to pid and waits up to ms for it to exit, running loop meanwhile
 * (sleeping when loop is NULL). Returns its wait status, or -1 when it had
 * to be killed (or pid <= 0). */
int th_stop(struct cdr_loop *loop, pid_t pid, int sig, unsigned ms);

/* A connection with channel 1 open to the broker of url
 * ("amqp://user:pass@host:port/vhost"; amqps: TLS checked against
 * $CONFDR_TLS_CA), or NULL. Close with th_admin_close. */
amqp_connection_state_t th_admin_open(const char *url);
void th_admin_close(amqp_connection_state_t c);

#endif
