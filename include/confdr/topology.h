/* The topology of a service domain (design sections 1 and 3): platforms,
 * machine rooms, user domains, and the endpoints (RabbitMQ, Redis, MySQL) of
 * each platform's rooms, with the Redis replicas a backup platform holds.
 *
 * It is read from two JSON documents (conf/sandbox-topology.json and an
 * endpoints file, docs/zookeeper.md shows both) or from ZooKeeper, where
 * `confdrctl topology load` writes one JSON per node:
 *   /topology/platforms/<pmoid>        {"name", "backup_platform", "main_room"}
 *   /topology/rooms/<room>             {"platform", "backup_rooms": [...]}
 *   /topology/user_domains/<udmoid>    {"platform", "room"}
 *   /endpoints/<pmoid>/<room>/<mq|redis|mysql>  {"host", "port", ...}
 *   /replicas/<pmoid>/redis            {"host", "port", "on_platform"}
 * Either way it is validated before use; a struct cdr_topology is immutable
 * and every string in it lives as long as it does. */
#ifndef CONFDR_TOPOLOGY_H
#define CONFDR_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdr_topology;
struct cdr_zk;

/* Size limits of a topology, far above any real deployment and low enough
 * that every daemon validates one in milliseconds (a room with 80,000
 * backup rooms took 26 s: issue 22). A topology beyond one is refused
 * whole. */
#define CDR_TOPO_MAX_PLATFORMS	  64
#define CDR_TOPO_MAX_ROOMS	  1024
#define CDR_TOPO_MAX_DOMAINS	  100000
#define CDR_TOPO_MAX_BACKUP_ROOMS 16 /* per room */

struct cdr_platform {
	const char *id;
	const char *name;
	const char *backup_platform; /* NULL if none */
	const char *main_room;
};

struct cdr_room {
	const char *id;
	const char *platform;
	const char *const *backup_rooms; /* in order of preference */
	size_t nbackup_rooms;
};

struct cdr_user_domain {
	const char *id;
	const char *platform;
	const char *room;
};

enum cdr_service { CDR_SVC_MQ, CDR_SVC_REDIS, CDR_SVC_MYSQL, CDR_SVC_COUNT };

/* "mq", "redis", "mysql"; cdr_service_parse returns -EINVAL if unknown. */
const char *cdr_service_name(enum cdr_service svc);
int cdr_service_parse(const char *s, enum cdr_service *ret);

struct cdr_endpoint {
	const char *host;
	uint16_t port;
	const char *vhost;	 /* mq: the vhost, NULL if not given */
	const char *database;	 /* mysql: the database, NULL if not given */
	int db;			 /* redis: the database index (SELECT), 0 if not given */
	const char *on_platform; /* replicas: the platform hosting it, else NULL */
};

/* Parses and validates a topology (text of len bytes) and optionally its
 * endpoints (NULL: none). Ids must be non-empty and made of letters, digits,
 * '.', '_' and '-' (they are ZooKeeper node names). Refused, each with a line
 * naming the item: syntax errors (with line and column), duplicate keys,
 * missing or mistyped fields, references to unknown platforms or rooms, a
 * platform whose main room belongs to another platform, a platform that is
 * its own backup, a room whose backup list names itself, an unknown room or
 * a room twice, a user domain bound to another platform's room, endpoints of
 * unknown platforms or rooms, ports outside 1..65535, unknown services, a
 * "db" outside 0..CDR_REDIS_DB_MAX or on a service other than redis, more
 * platforms, rooms, user domains or backup rooms of a room than the
 * CDR_TOPO_MAX_* limits.
 * Unknown member names are ignored (newer writers). On error every problem
 * found is written to err (one per line, truncated to errlen) and -EINVAL
 * returned; -ENOMEM if out of memory. *ret written only on success. */
int cdr_topology_parse(const char *topology, size_t len, const char *endpoints, size_t elen, struct cdr_topology **ret,
		       char *err, size_t errlen);

/* The same from files (endpoints_path may be NULL). A file that cannot be
 * read gives its -errno and "PATH: reason" in err; problems in it are
 * prefixed with its path. */
int cdr_topology_load_files(const char *topology_path, const char *endpoints_path, struct cdr_topology **ret, char *err,
			    size_t errlen);

struct cdr_topology *cdr_topology_free(struct cdr_topology *t);

/* Lookups: NULL if unknown. Results live as long as t. */
const struct cdr_platform *cdr_topology_platform(const struct cdr_topology *t, const char *pmoid);
const struct cdr_room *cdr_topology_room(const struct cdr_topology *t, const char *room);
const struct cdr_user_domain *cdr_topology_user_domain(const struct cdr_topology *t, const char *udmoid);
const struct cdr_room *cdr_topology_main_room(const struct cdr_topology *t, const char *pmoid);

/* The endpoint of svc in a platform's room, of its main room, and the
 * replica of a platform's svc held elsewhere (only redis so far). */
const struct cdr_endpoint *cdr_topology_endpoint(const struct cdr_topology *t, const char *pmoid, const char *room,
						 enum cdr_service svc);
const struct cdr_endpoint *cdr_topology_main_endpoint(const struct cdr_topology *t, const char *pmoid,
						      enum cdr_service svc);
const struct cdr_endpoint *cdr_topology_replica(const struct cdr_topology *t, const char *pmoid, enum cdr_service svc);

/* Iteration, in id order: i from 0 to the count. */
size_t cdr_topology_nplatforms(const struct cdr_topology *t);
const struct cdr_platform *cdr_topology_platform_at(const struct cdr_topology *t, size_t i);
size_t cdr_topology_nrooms(const struct cdr_topology *t);
const struct cdr_room *cdr_topology_room_at(const struct cdr_topology *t, size_t i);
size_t cdr_topology_nuser_domains(const struct cdr_topology *t);
const struct cdr_user_domain *cdr_topology_user_domain_at(const struct cdr_topology *t, size_t i);
/* Whether endpoints were given at all. */
bool cdr_topology_has_endpoints(const struct cdr_topology *t);

/* Every ZooKeeper node of t, as listed at the top of this file (endpoints
 * only if t has them): fn(path, json) for each, parents before children;
 * path and json borrowed for the call. Returns 0 or -ENOMEM. */
typedef void (*cdr_topology_node_fn)(const char *path, const char *json, void *arg);
int cdr_topology_nodes(const struct cdr_topology *t, cdr_topology_node_fn fn, void *arg);

/* The whole topology as one JSON document in the file format, with the
 * endpoints under "endpoints" (and "replicas"). Caller frees. NULL on OOM. */
char *cdr_topology_dump(const struct cdr_topology *t);

/* Reads the topology back from ZooKeeper (through zk, on the loop thread) and
 * validates it like cdr_topology_parse. fn runs exactly once: with 0 and a
 * topology the callee owns (free it with cdr_topology_free), or with a
 * -errno, NULL and a reason (-ENOENT: nothing loaded yet; -EINVAL: what is
 * there is not valid; a ZooKeeper error otherwise). err is borrowed. */
typedef void (*cdr_topology_fetch_fn)(int status, struct cdr_topology *t, const char *err, void *arg);
int cdr_topology_fetch(struct cdr_zk *zk, cdr_topology_fetch_fn fn, void *arg);

#endif
