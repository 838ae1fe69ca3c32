/* ZooKeeper for the daemons and tools: asynchronous node operations with
 * one-shot watches, a helper that keeps watching a node's data, and leader
 * election (ephemeral sequential nodes), all over one session that is
 * re-created when it expires.
 *
 * The ZooKeeper C client (zookeeper_mt) runs its own I/O and completion
 * threads. Its completions and watchers only copy what they got and hand it
 * to the loop with cdr_loop_post(); every callback below runs on the loop
 * thread, and every function here is for the loop thread only
 * (docs/zookeeper.md).
 *
 * Paths given to and returned by this module are relative to the chroot
 * ("/topology/rooms/p1-r1" means "/dr/topology/rooms/p1-r1" on the server).
 *
 * Status codes: 0, or a negative errno translated from ZooKeeper's:
 *   -ENOENT       ZNONODE: no such node (or, for create, no parent)
 *   -EEXIST       ZNODEEXISTS
 *   -ENOTEMPTY    ZNOTEMPTY: delete of a node with children
 *   -ESTALE       ZBADVERSION: the version given does not match
 *   -ENOTCONN     ZCONNECTIONLOSS / ZINVALIDSTATE / no session right now:
 *                 the outcome of a write is unknown
 *   -ETIMEDOUT    ZOPERATIONTIMEOUT
 *   -ECONNABORTED ZSESSIONEXPIRED: the session (and its ephemerals) is gone
 *   -EACCES       ZNOAUTH / ZAUTHFAILED
 *   -EINVAL       ZBADARGUMENTS / ZNOCHILDRENFOREPHEMERALS / bad path
 *   -ECANCELED    ZCLOSING: the handle is being freed
 *   -EIO          anything else
 * with ZooKeeper's own text in the result's `error`. */
#ifndef CONFDR_ZK_H
#define CONFDR_ZK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdr_loop;
struct cdr_zk;
struct cdr_zk_data_watch;
struct cdr_zk_election;

enum cdr_zk_state {
	CDR_ZK_CONNECTED,    /* a session is established (new or resumed) */
	CDR_ZK_DISCONNECTED, /* the connection is lost; the session may live on */
	CDR_ZK_EXPIRED,	     /* the session is gone: ephemerals and watches lost */
};

/* on_session: EXPIRED is reported as soon as the server says so, or when the
 * connection has been lost for a whole session timeout (the session is gone
 * by then even if nobody could tell us). A new session follows on its own. */
typedef void (*cdr_zk_session_fn)(enum cdr_zk_state state, void *arg);

struct cdr_zk_opts {
	const char *hosts;			     /* "host:port,host:port"; required; copied */
	const char *chroot;			     /* NULL or "" = "/"; e.g. "/dr"; created if missing */
	unsigned session_timeout_ms;		     /* asked of the server; 0 = 10000 */
	unsigned reconnect_min_ms, reconnect_max_ms; /* new-session back-off; 0 = 100 / 10000 */
	cdr_zk_session_fn on_session;		     /* may be NULL */
	void *arg;
	/* Digest authentication (docs/zookeeper.md, Access): when user is set,
	 * every session (the first and each one after an expiry) authenticates
	 * as user:password before its first request, and nodes are created
	 * readable by all and writable only by this user (unless
	 * cdr_zk_create_acl says otherwise). Without a user, nodes are created
	 * open to all. ZooKeeper's digest scheme takes any password (a wrong
	 * one is another identity, whose writes are refused with -EACCES); a
	 * login refused all the same (ZOO_AUTH_FAILED_STATE) ends the session
	 * like an expiry, with an error logged, and is tried again after the
	 * back-off. Both copied; the password is wiped when the handle is
	 * freed. */
	const char *user;
	const char *password;
};

/* Names a state ("connected", "disconnected", "expired"). */
const char *cdr_zk_state_name(enum cdr_zk_state state);

/* Creates the handle and starts connecting in the background (the loop is
 * never blocked: host names are resolved by the client, so prefer numeric
 * addresses). Once connected it creates the chroot (and its parents) if
 * missing, before any request made through this handle. Returns 0, -EINVAL
 * (no hosts, chroot not absolute), -ENOMEM. *ret written only on success. */
int cdr_zk_new(struct cdr_loop *loop, const struct cdr_zk_opts *opts, struct cdr_zk **ret);

/* Closes the session (its ephemeral nodes go at once), then runs every
 * callback still pending: requests with -ECANCELED, one-shot watches with
 * CDR_ZK_EV_LOST. Data watches and elections made on zk must be freed first.
 * Not from inside one of zk's callbacks. Accepts NULL; returns NULL. */
struct cdr_zk *cdr_zk_free(struct cdr_zk *zk);

/* Whether the loop has been told CONNECTED (and nothing since). */
bool cdr_zk_connected(const struct cdr_zk *zk);

/* The current session's id and password (for tests that force an expiry),
 * and the negotiated timeout. Returns 0, or -ENOTCONN without a session. */
struct cdr_zk_session {
	int64_t id;
	char passwd[16];
	unsigned timeout_ms;
};
int cdr_zk_session(const struct cdr_zk *zk, struct cdr_zk_session *ret);

/* The outcome of a request. Everything is borrowed for the callback. */
struct cdr_zk_result {
	int status;	   /* 0 or -errno (see the table above) */
	const char *error; /* ZooKeeper's text when status != 0, else NULL */
	const char *path;  /* the path asked; for create: the node made (with
			      * its sequence suffix), relative to the chroot */
	const char *data;  /* get: the data, with a NUL after len bytes; NULL
			      * for a node without data */
	size_t len;
	const char *const *children; /* children: names (not paths), sorted */
	size_t nchildren;
	int32_t version;	 /* get/exists/set/create: the node's data version */
	int64_t ephemeral_owner; /* get/exists: session owning it, 0 if persistent */
};

/* Exactly once per accepted request, on the loop thread. */
typedef void (*cdr_zk_fn)(const struct cdr_zk_result *r, void *arg);

enum cdr_zk_event {
	CDR_ZK_EV_CREATED, /* the node now exists (watch set by exists) */
	CDR_ZK_EV_DELETED,
	CDR_ZK_EV_CHANGED,  /* its data changed */
	CDR_ZK_EV_CHILDREN, /* a child was added or removed */
	CDR_ZK_EV_LOST,	    /* the watch is gone with its session (or the handle):
			     * read again to learn what changed meanwhile */
};

/* A one-shot watch fires at most once. path is relative to the chroot. */
typedef void (*cdr_zk_watch_fn)(enum cdr_zk_event ev, const char *path, void *arg);

/* Requests. Each returns 0 and then calls fn exactly once (fn may be NULL),
 * or returns -EINVAL (path not absolute, or ends with '/') / -ENOMEM and
 * never calls fn. Without a session, fn gets -ENOTCONN. When watch is not
 * NULL and the read succeeds, watch(watch_arg) is armed: it fires once with
 * the next change of the node (data watch: CREATED/CHANGED/DELETED; child
 * watch: CHILDREN/DELETED), or with CDR_ZK_EV_LOST. A connection loss
 * within a session keeps the watch. */

/* Reads a node's data. */
int cdr_zk_get(struct cdr_zk *zk, const char *path, cdr_zk_watch_fn watch, void *watch_arg, cdr_zk_fn fn, void *arg);

/* Tells whether a node exists (status 0 or -ENOENT). Unlike get, the watch
 * is armed also when the node does not exist (it fires with CREATED). */
int cdr_zk_exists(struct cdr_zk *zk, const char *path, cdr_zk_watch_fn watch, void *watch_arg, cdr_zk_fn fn, void *arg);

/* Lists a node's children (names, sorted). The watch is a child watch. */
int cdr_zk_children(struct cdr_zk *zk, const char *path, cdr_zk_watch_fn watch, void *watch_arg, cdr_zk_fn fn,
		    void *arg);

enum {
	CDR_ZK_EPHEMERAL = 0x1, /* deleted when the session ends */
	CDR_ZK_SEQUENCE = 0x2,	/* a 10-digit increasing suffix is appended */
	CDR_ZK_PARENTS = 0x4,	/* missing parents are created (persistent, empty) */
};

/* Creates path with data (len bytes, copied; NULL = no data). The result's
 * path is the node made. Its ACL is the handle's default (cdr_zk_opts). */
int cdr_zk_create(struct cdr_zk *zk, const char *path, const void *data, size_t len, unsigned flags, cdr_zk_fn fn,
		  void *arg);

/* One entry of a node's ACL: ZooKeeper's permission bits, a scheme and an
 * id. ("digest", "user:base64(sha1(user:password))") names a user;
 * ("auth", "") the users this session authenticated as; ("world",
 * "anyone") everybody. */
enum {
	CDR_ZK_PERM_READ = 0x1,
	CDR_ZK_PERM_WRITE = 0x2,
	CDR_ZK_PERM_CREATE = 0x4,
	CDR_ZK_PERM_DELETE = 0x8,
	CDR_ZK_PERM_ADMIN = 0x10,
	CDR_ZK_PERM_ALL = 0x1f,
};
struct cdr_zk_acl {
	unsigned perms;
	const char *scheme;
	const char *id;
};

/* cdr_zk_create with the node's ACL given (n entries; copied). Parents made
 * for CDR_ZK_PARENTS get the handle's default ACL. -EINVAL for no entry. */
int cdr_zk_create_acl(struct cdr_zk *zk, const char *path, const void *data, size_t len, unsigned flags,
		      const struct cdr_zk_acl *acl, size_t n, cdr_zk_fn fn, void *arg);

/* Sets a node's data if its version is `version` (-1: any). */
int cdr_zk_set(struct cdr_zk *zk, const char *path, const void *data, size_t len, int32_t version, cdr_zk_fn fn,
	       void *arg);

/* Deletes a node (it must have no children) if its version is `version`
 * (-1: any). */
int cdr_zk_delete(struct cdr_zk *zk, const char *path, int32_t version, cdr_zk_fn fn, void *arg);

/* Forgets every pending request callback and one-shot watch whose arg (or
 * watch_arg) is arg: they will not run. For an object about to be freed
 * while its requests are in flight. */
void cdr_zk_cancel(struct cdr_zk *zk, const void *arg);

/* Keeps watching a node's data: fn(0, data, len) with the data now and after
 * every change, fn(-ENOENT, NULL, 0) when the node does not exist or is
 * deleted (and again fn(0, ...) once it is created). The node is read again
 * after a re-connection and on every new session, and fn is told only when
 * what it last heard changed. Transient errors (no session) are not reported:
 * the watch re-arms when a session is back. data is borrowed for the call,
 * NUL-terminated. */
typedef void (*cdr_zk_data_fn)(int status, const char *data, size_t len, void *arg);

/* Starts watching path. Returns 0, -EINVAL or -ENOMEM; *ret only on success. */
int cdr_zk_data_watch_new(struct cdr_zk *zk, const char *path, cdr_zk_data_fn fn, void *arg,
			  struct cdr_zk_data_watch **ret);

/* Stops watching; fn is not called any more. Accepts NULL; returns NULL. */
struct cdr_zk_data_watch *cdr_zk_data_watch_free(struct cdr_zk_data_watch *w);

/* Leader election (design section 2).
 *
 * Joins the election under path (e.g. "/election/p1/css", created if
 * missing) with an ephemeral sequential node "n_" holding data (len bytes,
 * copied; NULL = none). The lowest sequence leads; every other contender
 * watches only its predecessor. fn(true, epoch) when this contender becomes
 * leader: epoch is its node's sequence number, strictly larger than any
 * earlier leader's on this path. fn(false, epoch) when it stops leading:
 * at once when the session expires, and when the connection has been lost
 * for a quarter of the session timeout (the session may be gone before a
 * reconnect could tell us) — before any other contender can have been made
 * leader. A contender that lost its session re-joins on the next one, as a
 * follower behind those already there. After a short connection loss in the
 * same session it may lead again with the same epoch (nobody else led
 * meanwhile). fn is only called when leadership changes. */
typedef void (*cdr_zk_leader_fn)(bool leader, int64_t epoch, void *arg);

/* Returns 0, -EINVAL or -ENOMEM; *ret written only on success. */
int cdr_zk_election_new(struct cdr_zk *zk, const char *path, const void *data, size_t len, cdr_zk_leader_fn fn,
			void *arg, struct cdr_zk_election **ret);

/* Whether this contender currently leads, and its epoch (-1 if none). */
bool cdr_zk_election_leader(const struct cdr_zk_election *e);
/* Whether this contender knows its place: its node is in the election and
 * it leads or watches a predecessor (a standby that has joined). False
 * before the first answer and after its node was lost with the session. */
bool cdr_zk_election_placed(const struct cdr_zk_election *e);
int64_t cdr_zk_election_epoch(const struct cdr_zk_election *e);
/* Whether our node is in the election in this session (leader or in line). */
bool cdr_zk_election_joined(const struct cdr_zk_election *e);

/* Leaves the election: deletes its node (a successor takes over at once)
 * without calling fn. Accepts NULL; returns NULL. */
struct cdr_zk_election *cdr_zk_election_free(struct cdr_zk_election *e);

#endif
