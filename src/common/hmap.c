/* String -> pointer hash map: open addressing with linear probing. A deleted
 * slot becomes a tombstone (so deleting while iterating is safe); the table
 * is rebuilt when live entries and tombstones fill 3/4 of it. */
#include "confdr/hmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SLOTS 16

struct slot {
	const char *key; /* NULL: empty; TOMB: deleted */
	void *val;
	uint64_t hash;
};

struct cdr_hmap {
	struct slot *slots;
	size_t nslots; /* a power of two */
	size_t count;  /* live entries */
	size_t used;   /* live entries + tombstones */
};

static const char tomb_mark;
#define TOMB (&tomb_mark)

/* FNV-1a, 64 bits. */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct cdr_hmap *cdr_hmap_new(void)
{
	struct cdr_hmap *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->slots = calloc(MIN_SLOTS, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	m->nslots = MIN_SLOTS;
	return m;
}

struct cdr_hmap *cdr_hmap_free(struct cdr_hmap *m)
{
	if (m) {
		free(m->slots);
		free(m);
	}
	return NULL;
}

size_t cdr_hmap_count(const struct cdr_hmap *m)
{
	return m ? m->count : 0;
}

/* The slot holding key, or NULL. */
static struct slot *find(const struct cdr_hmap *m, const char *key, uint64_t h)
{
	size_t mask = m->nslots - 1, i = (size_t)h & mask;

	for (;; i = (i + 1) & mask) {
		struct slot *s = &m->slots[i];

		if (!s->key)
			return NULL;
		if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
			return s;
	}
}

void *cdr_hmap_get(const struct cdr_hmap *m, const char *key)
{
	struct slot *s;

	if (!m || !key)
		return NULL;
	s = find(m, key, hash_str(key));
	return s ? s->val : NULL;
}

static int resize(struct cdr_hmap *m, size_t nslots)
{
	struct slot *old = m->slots, *ns = calloc(nslots, sizeof(*ns));
	size_t i, n = m->nslots;

	if (!ns)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		size_t j;

		if (!old[i].key || old[i].key == TOMB)
			continue;
		for (j = (size_t)old[i].hash & (nslots - 1); ns[j].key; j = (j + 1) & (nslots - 1))
			;
		ns[j] = old[i];
	}
	free(old);
	m->slots = ns;
	m->nslots = nslots;
	m->used = m->count;
	return 0;
}

int cdr_hmap_put(struct cdr_hmap *m, const char *key, void *val)
{
	uint64_t h;
	struct slot *s, *tomb = NULL;
	size_t mask, i;

	if (!m || !key || !val)
		return -EINVAL;
	h = hash_str(key);
	if ((s = find(m, key, h))) {
		s->key = key;
		s->val = val;
		return 0;
	}
	if ((m->used + 1) * 4 > m->nslots * 3) {
		size_t n = m->nslots;

		/* Grow when live entries need it; otherwise a rebuild of the
		 * same size clears the tombstones. */
		while ((m->count + 1) * 2 > n)
			n *= 2;
		if (resize(m, n) < 0)
			return -ENOMEM;
	}
	mask = m->nslots - 1;
	for (i = (size_t)h & mask; m->slots[i].key; i = (i + 1) & mask)
		if (m->slots[i].key == TOMB && !tomb)
			tomb = &m->slots[i];
	s = tomb ? tomb : &m->slots[i];
	if (!tomb)
		m->used++;
	s->key = key;
	s->val = val;
	s->hash = h;
	m->count++;
	return 0;
}

static void *remove_slot(struct cdr_hmap *m, struct slot *s)
{
	void *val = s->val;

	s->key = TOMB;
	s->val = NULL;
	m->count--;
	return val;
}

void *cdr_hmap_del(struct cdr_hmap *m, const char *key)
{
	struct slot *s;

	if (!m || !key || !(s = find(m, key, hash_str(key))))
		return NULL;
	return remove_slot(m, s);
}

bool cdr_hmap_next(const struct cdr_hmap *m, size_t *it, const char **key, void **val)
{
	if (!m)
		return false;
	for (; *it < m->nslots; (*it)++) {
		const struct slot *s = &m->slots[*it];

		if (s->key && s->key != TOMB) {
			if (key)
				*key = s->key;
			if (val)
				*val = s->val;
			(*it)++;
			return true;
		}
	}
	return false;
}

void cdr_hmap_del_at(struct cdr_hmap *m, size_t *it)
{
	struct slot *s;

	if (!m || *it == 0 || *it > m->nslots)
		return;
	s = &m->slots[*it - 1];
	if (s->key && s->key != TOMB)
		remove_slot(m, s);
}
