/* The topology model: parsed from JSON (files or ZooKeeper nodes) into
 * sorted arrays whose strings point into the kept jansson documents. */
#include <confdr/topology.h>

#include <confdr/redis.h>
#include <confdr/zk.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct endpoint_entry {
	const char *platform;
	const char *room; /* NULL for a replica */
	enum cdr_service svc;
	struct cdr_endpoint ep;
};

struct cdr_topology {
	json_t *topo, *eps; /* owned; every string below points into them */
	struct cdr_platform *platforms;
	size_t nplatforms;
	struct cdr_room *rooms;
	size_t nrooms;
	struct cdr_user_domain *domains;
	size_t ndomains;
	struct endpoint_entry *endpoints;
	size_t nendpoints;
};

/* Collected errors, one per line. */
struct errs {
	char *buf;
	size_t size, used;
	int n;
	const char *prefix; /* the file, or NULL */
};

static void __attribute__((format(printf, 2, 3))) err_add(struct errs *e, const char *fmt, ...)
{
	va_list ap;
	int w;

	e->n++;
	if (!e->buf || e->size == 0 || e->used + 1 >= e->size)
		return;
	if (e->used) {
		e->buf[e->used++] = '\n';
		e->buf[e->used] = '\0';
	}
	if (e->prefix) {
		w = snprintf(e->buf + e->used, e->size - e->used, "%s: ", e->prefix);
		if (w > 0)
			e->used = e->used + (size_t)w < e->size ? e->used + (size_t)w : e->size - 1;
	}
	va_start(ap, fmt);
	w = vsnprintf(e->buf + e->used, e->size - e->used, fmt, ap);
	va_end(ap);
	if (w > 0)
		e->used = e->used + (size_t)w < e->size ? e->used + (size_t)w : e->size - 1;
}

static const char *svc_names[CDR_SVC_COUNT] = { "mq", "redis", "mysql" };

const char *cdr_service_name(enum cdr_service svc)
{
	return (unsigned)svc < CDR_SVC_COUNT ? svc_names[svc] : "?";
}

int cdr_service_parse(const char *s, enum cdr_service *ret)
{
	for (int i = 0; i < CDR_SVC_COUNT; i++) {
		if (strcmp(s, svc_names[i]) == 0) {
			*ret = (enum cdr_service)i;
			return 0;
		}
	}
	return -EINVAL;
}

static bool id_ok(const char *s)
{
	if (!*s || strlen(s) > 128 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* A required (or optional) string member; NULL when absent or wrong. */
static const char *get_str(json_t *obj, const char *key, bool required, const char *what, const char *id,
			   struct errs *e)
{
	json_t *v = json_object_get(obj, key);

	if (!v || (json_is_null(v) && !required)) {
		if (required)
			err_add(e, "%s \"%s\": missing \"%s\"", what, id, key);
		return NULL;
	}
	if (!json_is_string(v) || !json_string_value(v)[0]) {
		err_add(e, "%s \"%s\": \"%s\" must be a non-empty string", what, id, key);
		return NULL;
	}
	return json_string_value(v);
}

static int cmp_platform(const void *a, const void *b)
{
	return strcmp(((const struct cdr_platform *)a)->id, ((const struct cdr_platform *)b)->id);
}
static int cmp_room(const void *a, const void *b)
{
	return strcmp(((const struct cdr_room *)a)->id, ((const struct cdr_room *)b)->id);
}
static int cmp_domain(const void *a, const void *b)
{
	return strcmp(((const struct cdr_user_domain *)a)->id, ((const struct cdr_user_domain *)b)->id);
}

const struct cdr_platform *cdr_topology_platform(const struct cdr_topology *t, const char *pmoid)
{
	struct cdr_platform key = { .id = pmoid };
	return pmoid ? bsearch(&key, t->platforms, t->nplatforms, sizeof(key), cmp_platform) : NULL;
}

const struct cdr_room *cdr_topology_room(const struct cdr_topology *t, const char *room)
{
	struct cdr_room key = { .id = room };
	return room ? bsearch(&key, t->rooms, t->nrooms, sizeof(key), cmp_room) : NULL;
}

const struct cdr_user_domain *cdr_topology_user_domain(const struct cdr_topology *t, const char *udmoid)
{
	struct cdr_user_domain key = { .id = udmoid };
	return udmoid ? bsearch(&key, t->domains, t->ndomains, sizeof(key), cmp_domain) : NULL;
}

const struct cdr_room *cdr_topology_main_room(const struct cdr_topology *t, const char *pmoid)
{
	const struct cdr_platform *p = cdr_topology_platform(t, pmoid);
	return p ? cdr_topology_room(t, p->main_room) : NULL;
}

const struct cdr_endpoint *cdr_topology_endpoint(const struct cdr_topology *t, const char *pmoid, const char *room,
						 enum cdr_service svc)
{
	for (size_t i = 0; pmoid && room && i < t->nendpoints; i++) {
		const struct endpoint_entry *x = &t->endpoints[i];
		if (x->room && x->svc == svc && strcmp(x->platform, pmoid) == 0 && strcmp(x->room, room) == 0)
			return &x->ep;
	}
	return NULL;
}

const struct cdr_endpoint *cdr_topology_main_endpoint(const struct cdr_topology *t, const char *pmoid,
						      enum cdr_service svc)
{
	const struct cdr_platform *p = cdr_topology_platform(t, pmoid);
	return p ? cdr_topology_endpoint(t, pmoid, p->main_room, svc) : NULL;
}

const struct cdr_endpoint *cdr_topology_replica(const struct cdr_topology *t, const char *pmoid, enum cdr_service svc)
{
	for (size_t i = 0; pmoid && i < t->nendpoints; i++) {
		const struct endpoint_entry *x = &t->endpoints[i];
		if (!x->room && x->svc == svc && strcmp(x->platform, pmoid) == 0)
			return &x->ep;
	}
	return NULL;
}

size_t cdr_topology_nplatforms(const struct cdr_topology *t)
{
	return t->nplatforms;
}
const struct cdr_platform *cdr_topology_platform_at(const struct cdr_topology *t, size_t i)
{
	return i < t->nplatforms ? &t->platforms[i] : NULL;
}
size_t cdr_topology_nrooms(const struct cdr_topology *t)
{
	return t->nrooms;
}
const struct cdr_room *cdr_topology_room_at(const struct cdr_topology *t, size_t i)
{
	return i < t->nrooms ? &t->rooms[i] : NULL;
}
size_t cdr_topology_nuser_domains(const struct cdr_topology *t)
{
	return t->ndomains;
}
const struct cdr_user_domain *cdr_topology_user_domain_at(const struct cdr_topology *t, size_t i)
{
	return i < t->ndomains ? &t->domains[i] : NULL;
}
bool cdr_topology_has_endpoints(const struct cdr_topology *t)
{
	return t->eps != NULL;
}

struct cdr_topology *cdr_topology_free(struct cdr_topology *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->nrooms; i++)
		free((void *)t->rooms[i].backup_rooms);
	free(t->platforms);
	free(t->rooms);
	free(t->domains);
	free(t->endpoints);
	json_decref(t->topo);
	json_decref(t->eps);
	free(t);
	return NULL;
}

/* The object member `key` of root, which must be an object. */
static json_t *section(json_t *root, const char *key, struct errs *e)
{
	json_t *v = json_object_get(root, key);

	if (!v) {
		err_add(e, "missing \"%s\"", key);
		return NULL;
	}
	if (!json_is_object(v)) {
		err_add(e, "\"%s\" must be an object", key);
		return NULL;
	}
	return v;
}

static int parse_endpoint(json_t *v, const char *where, bool replica, enum cdr_service svc, struct cdr_endpoint *ep,
			  struct errs *e)
{
	json_t *port, *db;
	int before = e->n;

	memset(ep, 0, sizeof(*ep));
	if (!json_is_object(v)) {
		err_add(e, "endpoint %s must be an object", where);
		return -EINVAL;
	}
	ep->host = get_str(v, "host", true, "endpoint", where, e);
	port = json_object_get(v, "port");
	if (!port)
		err_add(e, "endpoint \"%s\": missing \"port\"", where);
	else if (!json_is_integer(port) || json_integer_value(port) < 1 || json_integer_value(port) > 65535)
		err_add(e, "endpoint \"%s\": \"port\" must be an integer in 1..65535", where);
	else
		ep->port = (uint16_t)json_integer_value(port);
	ep->vhost = get_str(v, "vhost", false, "endpoint", where, e);
	ep->database = get_str(v, "database", false, "endpoint", where, e);
	if ((db = json_object_get(v, "db"))) {
		if (svc != CDR_SVC_REDIS)
			err_add(e, "endpoint \"%s\": \"db\" is for redis endpoints only", where);
		else if (!json_is_integer(db) || json_integer_value(db) < 0 ||
			 json_integer_value(db) > CDR_REDIS_DB_MAX)
			err_add(e, "endpoint \"%s\": \"db\" must be an integer in 0..%d", where, CDR_REDIS_DB_MAX);
		else
			ep->db = (int)json_integer_value(db);
	}
	if (replica)
		ep->on_platform = get_str(v, "on_platform", true, "replica", where, e);
	return e->n == before ? 0 : -EINVAL;
}

static int add_endpoint(struct cdr_topology *t, size_t *cap, const struct endpoint_entry *x)
{
	if (t->nendpoints == *cap) {
		size_t n = *cap ? *cap * 2 : 16;
		struct endpoint_entry *p = realloc(t->endpoints, n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		t->endpoints = p;
		*cap = n;
	}
	t->endpoints[t->nendpoints++] = *x;
	return 0;
}

static int parse_endpoints(struct cdr_topology *t, json_t *eps, struct errs *e)
{
	const char *pid, *rid, *sname;
	json_t *pv, *rv, *sv;
	size_t cap = 0;

	if (!json_is_object(eps)) {
		err_add(e, "endpoints: the document must be an object");
		return 0;
	}
	json_object_foreach(eps, pid, pv)
	{
		bool replicas = strcmp(pid, "replicas") == 0;
		if (!replicas && !cdr_topology_platform(t, pid)) {
			err_add(e, "endpoints: unknown platform \"%s\"", pid);
			continue;
		}
		if (!json_is_object(pv)) {
			err_add(e, "endpoints \"%s\" must be an object", pid);
			continue;
		}
		json_object_foreach(pv, rid, rv)
		{
			const struct cdr_room *room;
			if (replicas) {
				/* "replicas": {pmoid: {svc: endpoint}} */
				if (!cdr_topology_platform(t, rid)) {
					err_add(e, "replicas: unknown platform \"%s\"", rid);
					continue;
				}
			} else if (!(room = cdr_topology_room(t, rid))) {
				err_add(e, "endpoints \"%s\": unknown room \"%s\"", pid, rid);
				continue;
			} else if (!room->platform || strcmp(room->platform, pid) != 0) {
				err_add(e, "endpoints \"%s\": room \"%s\" belongs to platform \"%s\"", pid, rid,
					room->platform ? room->platform : "(none)");
				continue;
			}
			if (!json_is_object(rv)) {
				err_add(e, "endpoints \"%s/%s\" must be an object", pid, rid);
				continue;
			}
			json_object_foreach(rv, sname, sv)
			{
				struct endpoint_entry x = { .platform = replicas ? rid : pid,
							    .room = replicas ? NULL : rid };
				char where[512];
				snprintf(where, sizeof(where), "%s/%s/%s", pid, rid, sname);
				if (cdr_service_parse(sname, &x.svc) < 0) {
					err_add(e, "endpoints \"%s/%s\": unknown service \"%s\" (mq, redis, mysql)",
						pid, rid, sname);
					continue;
				}
				if (parse_endpoint(sv, where, replicas, x.svc, &x.ep, e) < 0)
					continue;
				if (replicas && !cdr_topology_platform(t, x.ep.on_platform)) {
					err_add(e, "replica \"%s\": unknown platform \"%s\" in \"on_platform\"", where,
						x.ep.on_platform);
					continue;
				}
				if (add_endpoint(t, &cap, &x) < 0)
					return -ENOMEM;
			}
		}
	}
	return 0;
}

/* Builds and validates; takes the references of topo and eps (eps may be
 * NULL) in every case. */
static int build(json_t *topo, json_t *eps, struct cdr_topology **ret, struct errs *e)
{
	struct cdr_topology *t = calloc(1, sizeof(*t));
	json_t *platforms, *rooms, *domains, *v;
	const char *id;
	size_t i;
	int err = -ENOMEM;

	if (!t) {
		json_decref(topo);
		json_decref(eps);
		return -ENOMEM;
	}
	t->topo = topo;
	t->eps = eps;
	if (!json_is_object(topo)) {
		err_add(e, "the document must be an object");
		goto invalid;
	}
	platforms = section(topo, "platforms", e);
	rooms = section(topo, "rooms", e);
	domains = section(topo, "user_domains", e);
	if (!platforms || !rooms || !domains)
		goto invalid;
	if (json_object_size(platforms) > CDR_TOPO_MAX_PLATFORMS)
		err_add(e, "%zu platforms: at most %d", json_object_size(platforms), CDR_TOPO_MAX_PLATFORMS);
	if (json_object_size(rooms) > CDR_TOPO_MAX_ROOMS)
		err_add(e, "%zu rooms: at most %d", json_object_size(rooms), CDR_TOPO_MAX_ROOMS);
	if (json_object_size(domains) > CDR_TOPO_MAX_DOMAINS)
		err_add(e, "%zu user domains: at most %d", json_object_size(domains), CDR_TOPO_MAX_DOMAINS);
	if (e->n)
		goto invalid; /* nothing more is read of it */

	t->platforms = calloc(json_object_size(platforms) + 1, sizeof(*t->platforms));
	t->rooms = calloc(json_object_size(rooms) + 1, sizeof(*t->rooms));
	t->domains = calloc(json_object_size(domains) + 1, sizeof(*t->domains));
	if (!t->platforms || !t->rooms || !t->domains)
		goto free_t;

	json_object_foreach(platforms, id, v)
	{
		struct cdr_platform *p = &t->platforms[t->nplatforms];
		if (!id_ok(id)) {
			err_add(e, "platform \"%s\": bad id (letters, digits, '.', '_', '-')", id);
			continue;
		}
		if (!json_is_object(v)) {
			err_add(e, "platform \"%s\" must be an object", id);
			continue;
		}
		p->id = id;
		p->name = get_str(v, "name", true, "platform", id, e);
		p->backup_platform = get_str(v, "backup_platform", false, "platform", id, e);
		p->main_room = get_str(v, "main_room", true, "platform", id, e);
		t->nplatforms++;
	}
	json_object_foreach(rooms, id, v)
	{
		struct cdr_room *r = &t->rooms[t->nrooms];
		json_t *b;
		if (!id_ok(id)) {
			err_add(e, "room \"%s\": bad id (letters, digits, '.', '_', '-')", id);
			continue;
		}
		if (!json_is_object(v)) {
			err_add(e, "room \"%s\" must be an object", id);
			continue;
		}
		r->id = id;
		r->platform = get_str(v, "platform", true, "room", id, e);
		b = json_object_get(v, "backup_rooms");
		if (b && !json_is_array(b)) {
			err_add(e, "room \"%s\": \"backup_rooms\" must be an array of room ids", id);
		} else if (b && json_array_size(b) > CDR_TOPO_MAX_BACKUP_ROOMS) {
			err_add(e, "room \"%s\": %zu backup rooms: at most %d", id, json_array_size(b),
				CDR_TOPO_MAX_BACKUP_ROOMS);
		} else if (b) {
			const char **list = calloc(json_array_size(b) + 1, sizeof(char *));
			size_t k;
			json_t *x;
			if (!list)
				goto free_t;
			json_array_foreach(b, k, x)
			{
				if (!json_is_string(x))
					err_add(e, "room \"%s\": backup room #%zu is not a string", id, k + 1);
				else
					list[r->nbackup_rooms++] = json_string_value(x);
			}
			r->backup_rooms = list;
		}
		t->nrooms++;
	}
	json_object_foreach(domains, id, v)
	{
		struct cdr_user_domain *d = &t->domains[t->ndomains];
		if (!id_ok(id)) {
			err_add(e, "user domain \"%s\": bad id (letters, digits, '.', '_', '-')", id);
			continue;
		}
		if (!json_is_object(v)) {
			err_add(e, "user domain \"%s\" must be an object", id);
			continue;
		}
		d->id = id;
		d->platform = get_str(v, "platform", true, "user domain", id, e);
		d->room = get_str(v, "room", true, "user domain", id, e);
		t->ndomains++;
	}
	qsort(t->platforms, t->nplatforms, sizeof(*t->platforms), cmp_platform);
	qsort(t->rooms, t->nrooms, sizeof(*t->rooms), cmp_room);
	qsort(t->domains, t->ndomains, sizeof(*t->domains), cmp_domain);

	/* References. */
	for (i = 0; i < t->nplatforms; i++) {
		const struct cdr_platform *p = &t->platforms[i];
		const struct cdr_room *r;
		if (p->backup_platform && strcmp(p->backup_platform, p->id) == 0)
			err_add(e, "platform \"%s\": it is its own backup platform", p->id);
		else if (p->backup_platform && !cdr_topology_platform(t, p->backup_platform))
			err_add(e, "platform \"%s\": unknown backup platform \"%s\"", p->id, p->backup_platform);
		if (!p->main_room)
			continue;
		r = cdr_topology_room(t, p->main_room);
		if (!r)
			err_add(e, "platform \"%s\": unknown main room \"%s\"", p->id, p->main_room);
		else if (r->platform && strcmp(r->platform, p->id) != 0)
			err_add(e, "platform \"%s\": main room \"%s\" belongs to platform \"%s\"", p->id, r->id,
				r->platform);
	}
	for (i = 0; i < t->nrooms; i++) {
		const struct cdr_room *r = &t->rooms[i];
		if (r->platform && !cdr_topology_platform(t, r->platform))
			err_add(e, "room \"%s\": unknown platform \"%s\"", r->id, r->platform);
		for (size_t k = 0; k < r->nbackup_rooms; k++) {
			const char *b = r->backup_rooms[k];
			if (strcmp(b, r->id) == 0)
				err_add(e, "room \"%s\": its backup rooms name the room itself", r->id);
			else if (!cdr_topology_room(t, b))
				err_add(e, "room \"%s\": unknown backup room \"%s\"", r->id, b);
			for (size_t j = 0; j < k; j++)
				if (strcmp(r->backup_rooms[j], b) == 0)
					err_add(e, "room \"%s\": backup room \"%s\" listed twice", r->id, b);
		}
	}
	for (i = 0; i < t->ndomains; i++) {
		const struct cdr_user_domain *d = &t->domains[i];
		const struct cdr_room *r;
		if (d->platform && !cdr_topology_platform(t, d->platform))
			err_add(e, "user domain \"%s\": unknown platform \"%s\"", d->id, d->platform);
		if (!d->room)
			continue;
		r = cdr_topology_room(t, d->room);
		if (!r)
			err_add(e, "user domain \"%s\": unknown room \"%s\"", d->id, d->room);
		else if (d->platform && r->platform && strcmp(r->platform, d->platform) != 0)
			err_add(e, "user domain \"%s\": room \"%s\" belongs to platform \"%s\", not \"%s\"", d->id,
				r->id, r->platform, d->platform);
	}
	if (e->n)
		goto invalid; /* the endpoints name rooms and platforms: not read against a broken topology */
	if (eps && parse_endpoints(t, eps, e) < 0)
		goto free_t;
	if (e->n)
		goto invalid;
	*ret = t;
	return 0;
invalid:
	err = -EINVAL;
free_t:
	cdr_topology_free(t);
	return err;
}

static json_t *load_text(const char *text, size_t len, const char *what, struct errs *e)
{
	json_error_t je;
	json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);

	if (!v)
		err_add(e, "%sline %d, column %d: %s", what, je.line, je.column, je.text);
	return v;
}

int cdr_topology_parse(const char *topology, size_t len, const char *endpoints, size_t elen, struct cdr_topology **ret,
		       char *err, size_t errlen)
{
	struct errs e = { .buf = err, .size = errlen };
	json_t *topo, *eps = NULL;

	if (err && errlen)
		err[0] = '\0';
	topo = load_text(topology, len, "", &e);
	if (endpoints)
		eps = load_text(endpoints, elen, "endpoints: ", &e);
	if (e.n) {
		json_decref(topo);
		json_decref(eps);
		return -EINVAL;
	}
	return build(topo, eps, ret, &e);
}

static json_t *load_file(const char *path, struct errs *e, int *errp)
{
	json_error_t je;
	json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	FILE *f;

	if (v)
		return v;
	/* Tell a missing file from a bad one. */
	f = fopen(path, "r");
	if (!f) {
		*errp = -errno;
		err_add(e, "%s: %s", path, strerror(errno));
		return NULL;
	}
	fclose(f);
	*errp = -EINVAL;
	err_add(e, "%s:%d:%d: %s", path, je.line, je.column, je.text);
	return NULL;
}

int cdr_topology_load_files(const char *topology_path, const char *endpoints_path, struct cdr_topology **ret, char *err,
			    size_t errlen)
{
	struct errs e = { .buf = err, .size = errlen };
	json_t *topo, *eps = NULL;
	int ret1 = 0, ret2 = 0;

	if (err && errlen)
		err[0] = '\0';
	topo = load_file(topology_path, &e, &ret1);
	if (endpoints_path)
		eps = load_file(endpoints_path, &e, &ret2);
	if (ret1 || ret2) {
		json_decref(topo);
		json_decref(eps);
		return ret1 ? ret1 : ret2;
	}
	/* Problems found in the model name the file when there is one. */
	e.prefix = endpoints_path ? NULL : topology_path;
	return build(topo, eps, ret, &e);
}

/* ---- output ---- */

static json_t *platform_json(const struct cdr_platform *p)
{
	json_t *o = json_pack("{s:s, s:s}", "name", p->name, "main_room", p->main_room);
	if (o && p->backup_platform)
		json_object_set_new(o, "backup_platform", json_string(p->backup_platform));
	return o;
}

static json_t *room_json(const struct cdr_room *r)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < r->nbackup_rooms; i++)
		json_array_append_new(a, json_string(r->backup_rooms[i]));
	return a ? json_pack("{s:s, s:o}", "platform", r->platform, "backup_rooms", a) : NULL;
}

static json_t *domain_json(const struct cdr_user_domain *d)
{
	return json_pack("{s:s, s:s}", "platform", d->platform, "room", d->room);
}

static json_t *endpoint_json(const struct cdr_endpoint *ep)
{
	json_t *o = json_pack("{s:s, s:i}", "host", ep->host, "port", (int)ep->port);
	if (o && ep->vhost)
		json_object_set_new(o, "vhost", json_string(ep->vhost));
	if (o && ep->database)
		json_object_set_new(o, "database", json_string(ep->database));
	if (o && ep->db)
		json_object_set_new(o, "db", json_integer(ep->db));
	if (o && ep->on_platform)
		json_object_set_new(o, "on_platform", json_string(ep->on_platform));
	return o;
}

static int emit(const char *path, json_t *o, cdr_topology_node_fn fn, void *arg)
{
	char *s;

	if (!o)
		return -ENOMEM;
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	fn(path, s, arg);
	free(s);
	return 0;
}

int cdr_topology_nodes(const struct cdr_topology *t, cdr_topology_node_fn fn, void *arg)
{
	char path[1024];
	int err;

	for (size_t i = 0; i < t->nplatforms; i++) {
		snprintf(path, sizeof(path), "/topology/platforms/%s", t->platforms[i].id);
		if ((err = emit(path, platform_json(&t->platforms[i]), fn, arg)) < 0)
			return err;
	}
	for (size_t i = 0; i < t->nrooms; i++) {
		snprintf(path, sizeof(path), "/topology/rooms/%s", t->rooms[i].id);
		if ((err = emit(path, room_json(&t->rooms[i]), fn, arg)) < 0)
			return err;
	}
	for (size_t i = 0; i < t->ndomains; i++) {
		snprintf(path, sizeof(path), "/topology/user_domains/%s", t->domains[i].id);
		if ((err = emit(path, domain_json(&t->domains[i]), fn, arg)) < 0)
			return err;
	}
	for (size_t i = 0; i < t->nendpoints; i++) {
		const struct endpoint_entry *x = &t->endpoints[i];
		if (x->room)
			snprintf(path, sizeof(path), "/endpoints/%s/%s/%s", x->platform, x->room,
				 cdr_service_name(x->svc));
		else
			snprintf(path, sizeof(path), "/replicas/%s/%s", x->platform, cdr_service_name(x->svc));
		if ((err = emit(path, endpoint_json(&x->ep), fn, arg)) < 0)
			return err;
	}
	return 0;
}

char *cdr_topology_dump(const struct cdr_topology *t)
{
	json_t *root = json_pack("{s:{}, s:{}, s:{}}", "platforms", "rooms", "user_domains");
	json_t *eps = json_object(), *reps = json_object();
	char *s = NULL;

	if (!root || !eps || !reps)
		goto out;
	for (size_t i = 0; i < t->nplatforms; i++)
		json_object_set_new(json_object_get(root, "platforms"), t->platforms[i].id,
				    platform_json(&t->platforms[i]));
	for (size_t i = 0; i < t->nrooms; i++)
		json_object_set_new(json_object_get(root, "rooms"), t->rooms[i].id, room_json(&t->rooms[i]));
	for (size_t i = 0; i < t->ndomains; i++)
		json_object_set_new(json_object_get(root, "user_domains"), t->domains[i].id,
				    domain_json(&t->domains[i]));
	for (size_t i = 0; i < t->nendpoints; i++) {
		const struct endpoint_entry *x = &t->endpoints[i];
		json_t *parent = x->room ? eps : reps, *p, *r;
		if (!(p = json_object_get(parent, x->platform)))
			json_object_set_new(parent, x->platform, p = json_object());
		r = p;
		if (x->room && !(r = json_object_get(p, x->room)))
			json_object_set_new(p, x->room, r = json_object());
		json_object_set_new(r, cdr_service_name(x->svc), endpoint_json(&x->ep));
	}
	if (t->eps) {
		json_object_set(root, "endpoints", eps);
		if (json_object_size(reps))
			json_object_set(root, "replicas", reps);
	}
	s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
out:
	json_decref(root);
	json_decref(eps);
	json_decref(reps);
	return s;
}

/* ---- reading back from ZooKeeper ---- */

/* One fetch: every listing and read is in flight at once; `pending` counts
 * them, and the last one builds the topology. */
struct fetch {
	struct cdr_zk *zk;
	cdr_topology_fetch_fn fn;
	void *arg;
	json_t *topo, *eps;
	int pending;
	int status;
	char err[2560];
};

/* Where a read result goes: the JSON object it is set into, and the key. */
struct slot {
	struct fetch *f;
	json_t *into; /* borrowed from f's documents */
	char *key;
	int level; /* listings: what the children are (see on_list) */
	char *path;
};

static void fetch_fail(struct fetch *f, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fetch_fail(struct fetch *f, int status, const char *fmt, ...)
{
	va_list ap;

	if (f->status)
		return;
	f->status = status;
	va_start(ap, fmt);
	vsnprintf(f->err, sizeof(f->err), fmt, ap);
	va_end(ap);
}

static void slot_free(struct slot *s)
{
	free(s->key);
	free(s->path);
	free(s);
}

static void fetch_done(struct fetch *f)
{
	struct cdr_topology *t = NULL;
	char err[2048];
	struct errs e = { .buf = err, .size = sizeof(err) };
	json_t *eps;

	if (--f->pending > 0)
		return;
	if (!f->status) {
		eps = f->eps;
		if (json_object_size(json_object_get(eps, "replicas")) == 0)
			json_object_del(eps, "replicas");
		if (json_object_size(eps) == 0) {
			json_decref(eps);
			eps = NULL;
		}
		f->status = build(f->topo, eps, &t, &e);
		f->topo = f->eps = NULL;
		if (f->status)
			snprintf(f->err, sizeof(f->err), "the topology in ZooKeeper is not valid: %s", err);
	}
	f->fn(f->status, t, f->status ? f->err : NULL, f->arg);
	json_decref(f->topo);
	json_decref(f->eps);
	free(f);
}

static void on_list(const struct cdr_zk_result *r, void *arg);

static void on_node(const struct cdr_zk_result *r, void *arg)
{
	struct slot *s = arg;
	struct fetch *f = s->f;
	json_error_t je;
	json_t *v;

	if (r->status == -ENOENT) {
		/* Deleted between the listing and the read: not there. */
	} else if (r->status) {
		fetch_fail(f, r->status, "reading %s: %s", r->path, r->error);
	} else if (!(v = json_loadb(r->data ? r->data : "", r->len, JSON_REJECT_DUPLICATES, &je))) {
		fetch_fail(f, -EINVAL, "node %s: not JSON: %s", r->path, je.text);
	} else {
		json_object_set_new(s->into, s->key, v);
	}
	slot_free(s);
	fetch_done(f);
}

/* Starts a listing (level: 0 = children are nodes to read, 1 = endpoint
 * platforms, 2 = endpoint rooms, 3 = replica platforms) or a read. */
static void start(struct fetch *f, const char *path, json_t *into, const char *key, int level, bool list)
{
	struct slot *s = calloc(1, sizeof(*s));
	int ret;

	if (!s || !(s->path = strdup(path)) || (key && !(s->key = strdup(key)))) {
		if (s)
			slot_free(s);
		fetch_fail(f, -ENOMEM, "out of memory");
		return;
	}
	s->f = f;
	s->into = into;
	s->level = level;
	f->pending++;
	ret = list ? cdr_zk_children(f->zk, path, NULL, NULL, on_list, s)
		   : cdr_zk_get(f->zk, path, NULL, NULL, on_node, s);
	if (ret < 0) {
		f->pending--;
		slot_free(s);
		fetch_fail(f, ret, "%s: %s", path, strerror(-ret));
	}
}

static void on_list(const struct cdr_zk_result *r, void *arg)
{
	struct slot *s = arg;
	struct fetch *f = s->f;
	char path[1024];

	if (r->status == -ENOENT && s->level == 0 && strncmp(s->path, "/topology/", 10) == 0) {
		fetch_fail(f, -ENOENT, "no topology in ZooKeeper (%s is missing: run confdrctl topology load)",
			   s->path);
	} else if (r->status && r->status != -ENOENT) {
		fetch_fail(f, r->status, "listing %s: %s", s->path, r->error);
	} else {
		for (size_t i = 0; i < r->nchildren; i++) {
			const char *c = r->children[i];
			json_t *o;
			snprintf(path, sizeof(path), "%s/%s", s->path, c);
			if (s->level == 0) {
				start(f, path, s->into, c, 0, false);
				continue;
			}
			o = json_object();
			if (!o || json_object_set_new(s->into, c, o) < 0) {
				fetch_fail(f, -ENOMEM, "out of memory");
				break;
			}
			/* endpoints: platform -> room -> services; replicas:
			 * platform -> services. */
			start(f, path, o, NULL, s->level == 1 ? 2 : 0, true);
		}
	}
	slot_free(s);
	fetch_done(f);
}

int cdr_topology_fetch(struct cdr_zk *zk, cdr_topology_fetch_fn fn, void *arg)
{
	struct fetch *f = calloc(1, sizeof(*f));
	json_t *reps;

	if (!f)
		return -ENOMEM;
	f->zk = zk;
	f->fn = fn;
	f->arg = arg;
	f->topo = json_pack("{s:{}, s:{}, s:{}}", "platforms", "rooms", "user_domains");
	f->eps = json_object();
	reps = json_object();
	if (!f->topo || !f->eps || !reps || json_object_set_new(f->eps, "replicas", reps) < 0) {
		json_decref(f->topo);
		json_decref(f->eps);
		free(f);
		return -ENOMEM;
	}
	/* Held until every start() is made, so no callback can finish early. */
	f->pending = 1;
	start(f, "/topology/platforms", json_object_get(f->topo, "platforms"), NULL, 0, true);
	start(f, "/topology/rooms", json_object_get(f->topo, "rooms"), NULL, 0, true);
	start(f, "/topology/user_domains", json_object_get(f->topo, "user_domains"), NULL, 0, true);
	start(f, "/endpoints", f->eps, NULL, 1, true);
	start(f, "/replicas", reps, NULL, 3, true);
	/* Callbacks always come through the loop, never from inside start(). */
	fetch_done(f);
	return 0;
}
