/* confdrctl's private header: the state shared by its files, and what each
 * file offers the others. The files, one job each:
 *   main.c       options, usage, the table of commands, the dispatch, the loop's waits
 *   zk.c         ZooKeeper: the session, one request at a time, the topology read back
 *   bus.c        requests to a platform's rms, pms or css through its broker
 *   topology.c   topology load | show
 *   status.c     status
 *   mcu.c        mcu list | drain | undrain (rms)
 *   switch.c     room switch | platform switch (pms)
 *   failback.c   platform failback: the Redis roles back, the platform up, its css home
 *   conf.c       conf list | show | end (css)
 *   drill.c      drill snapshot | verify | compare: the DR drills' checker, on drill_io.c
 *                (state files, MariaDB, Redis) and the pure drill_verdict.c
 * What the three tools share (usage errors, numbers, ids) is src/tools/cli.h. */
#ifndef CONFDRCTL_H
#define CONFDRCTL_H

#include "cli.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct cdr_loop;
struct cdr_timer;
struct cdr_topology;
struct cdr_zk;
struct cdr_zk_acl;
struct redisContext;

struct ctl {
	const char *hosts;
	const char *chroot;
	unsigned timeout_s; /* to connect, and for each answer */
	struct cdr_loop *loop;
	struct cdr_zk *zk;
	struct cdr_timer *timer;
	bool timed_out;
	bool connected;
	/* Digest authentication (docs/zookeeper.md, Access): --zk-user and
	 * --zk-password-file ($CONFDR_ZK_USER, $CONFDR_ZK_PASSWORD_FILE). */
	const char *zk_user;
	const char *zk_password_file;
	/* topology load: the daemons' ZooKeeper ids, --zk-ids ($CONFDR_ZK_IDS). */
	const char *zk_ids;
};

/* Redis as $CONFDR_REDIS_USER (default: the default user) with the password
 * in $CONFDR_REDIS_PASSWORD_FILE, when that is set (drill_io.c): AUTH on a
 * new connection. 0, or -1 with the reason in err. */
int ctl_redis_auth(struct redisContext *rc, char *err, size_t errlen);

/* main.c */

/* The usage text, with every command's. */
void ctl_usage(FILE *f);

/* Runs the loop until *done or timeout_ms; true if done. */
bool ctl_run_until(struct ctl *c, const bool *done, uint64_t timeout_ms);

/* zk.c */

/* Opens the session; 0, or an exit status with the reason printed. */
int ctl_zk_connect(struct ctl *c);

/* One answer, copied out of the callback. */
struct answer {
	bool done;
	int status;
	char error[128];
	char *data; /* NULL if none */
	size_t len;
	char **children;
	size_t nchildren;
	char *path;
};

void ctl_answer_clear(struct answer *a);

/* One request each, waited for (an answer that does not come in time ends
 * the program). They return the answer's status: 0 or a -errno. */
int ctl_zk_get(struct ctl *c, const char *path, struct answer *a);
int ctl_zk_children(struct ctl *c, const char *path, struct answer *a);
int ctl_zk_create(struct ctl *c, const char *path, const char *data, unsigned flags, struct answer *a);
/* ctl_zk_create with the node's ACL (n entries). */
int ctl_zk_create_acl(struct ctl *c, const char *path, const char *data, unsigned flags, const struct cdr_zk_acl *acl,
		      size_t n, struct answer *a);
int ctl_zk_set(struct ctl *c, const char *path, const char *data, struct answer *a);

/* Prints why the request on path failed; returns EX_FAIL. */
int ctl_zk_fail(struct ctl *c, const char *what, const char *path, const struct answer *a);

/* Deletes path and everything under it. */
int ctl_zk_delete_tree(struct ctl *c, const char *path);

/* The topology from ZooKeeper (exits on failure). */
struct cdr_topology *ctl_fetch_topology(struct ctl *c);

/* The topology, or NULL (said why) when there is none yet. */
struct cdr_topology *ctl_fetch_topology_soft(struct ctl *c);

/* bus.c */

/* Sends a request to the daemon of platform p through its broker (found in
 * the topology's endpoints) and returns the answer's envelope, or NULL with a
 * message printed (*ex set: EX_UNAVAILABLE). body is stolen. */
json_t *ctl_bus_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *daemon, const char *queue,
		     const char *type, json_t *body, int *ex);
json_t *ctl_rms_call(struct ctl *c, const struct cdr_topology *t, const char *p, const char *type, json_t *body,
		     int *ex);

/* The string at key of the envelope's body, or "". */
const char *ctl_body_str(json_t *env, const char *key);

/* Whether the envelope is a NACK (or has no type). */
bool ctl_is_nack(json_t *env);

/* Asks the daemon of platform (not NULL), or of each platform in turn until
 * one knows what body names (a NACK with reason `unknown` passes the question
 * on). body is stolen. Returns the first ACK's envelope with *who its
 * platform, or NULL with *ex EX_FAIL (refused or nobody knows) or
 * EX_UNAVAILABLE (some daemon did not answer). */
json_t *ctl_ask_each(struct ctl *c, const struct cdr_topology *t, const char *platform, const char *daemon,
		     const char *queue, const char *type, json_t *body, const char *unknown, const char **who, int *ex);

/* The commands: each sees its own argv (argv[0] is its last word) and
 * returns the exit status. */
int ctl_cmd_topology_load(struct ctl *c, int argc, char **argv);
int ctl_cmd_topology_show(struct ctl *c, int argc, char **argv);
int ctl_cmd_status(struct ctl *c, int argc, char **argv);
int ctl_cmd_mcu_list(struct ctl *c, int argc, char **argv);
int ctl_cmd_mcu_drain(struct ctl *c, int argc, char **argv);
int ctl_cmd_mcu_undrain(struct ctl *c, int argc, char **argv);
int ctl_cmd_room_switch(struct ctl *c, int argc, char **argv);
int ctl_cmd_platform_switch(struct ctl *c, int argc, char **argv);
int ctl_cmd_platform_failback(struct ctl *c, int argc, char **argv);
int ctl_cmd_conf_list(struct ctl *c, int argc, char **argv);
int ctl_cmd_conf_show(struct ctl *c, int argc, char **argv);
int ctl_cmd_conf_end(struct ctl *c, int argc, char **argv);
int ctl_cmd_drill_snapshot(struct ctl *c, int argc, char **argv);
int ctl_cmd_drill_verify(struct ctl *c, int argc, char **argv);
int ctl_cmd_drill_compare(struct ctl *c, int argc, char **argv);

#endif
