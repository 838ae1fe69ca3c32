/* A hash map from strings to pointers (open addressing, linear probing,
 * tombstones): the daemons' in-memory indexes (MCUs by id,
 * reservations by id, conferences by E164).
 *
 * Keys are borrowed: the caller keeps each key alive and unchanged while it
 * is in the map (it is normally a field of the value). Not thread-safe. */
#ifndef CONFDR_HMAP_H
#define CONFDR_HMAP_H

#include <stdbool.h>
#include <stddef.h>

struct cdr_hmap;

/* Returns a new empty map, or NULL on no memory. */
struct cdr_hmap *cdr_hmap_new(void);

/* Frees the map (not the keys or values). Accepts NULL; returns NULL. */
struct cdr_hmap *cdr_hmap_free(struct cdr_hmap *m);

size_t cdr_hmap_count(const struct cdr_hmap *m);

/* The value of key, or NULL. */
void *cdr_hmap_get(const struct cdr_hmap *m, const char *key);

/* Sets key to val (not NULL), replacing an existing entry (whose key is then
 * replaced by this key). Returns 0 or -ENOMEM (the map is unchanged). */
int cdr_hmap_put(struct cdr_hmap *m, const char *key, void *val);

/* Removes key; returns its value, or NULL when absent. */
void *cdr_hmap_del(struct cdr_hmap *m, const char *key);

/* Iteration: start with *it = 0; returns false at the end. The map must not
 * be changed during an iteration, except by cdr_hmap_del_at. */
bool cdr_hmap_next(const struct cdr_hmap *m, size_t *it, const char **key, void **val);

/* Removes the entry cdr_hmap_next just returned, in the middle of an
 * iteration (every other entry is still visited exactly once). */
void cdr_hmap_del_at(struct cdr_hmap *m, size_t *it);

#endif
