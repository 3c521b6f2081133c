/*
 * A string-keyed hash map (open addressing, linear probing). Keys are not
 * copied: the caller guarantees each key outlives its entry (typically the
 * key points into the value). Not thread-safe; callers lock.
 */
#ifndef HX_UTIL_HASHMAP_H
#define HX_UTIL_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct HashMapEntry {
    const char *key;
    void *value;
    size_t hash;
} HashMapEntry;

typedef struct HashMap {
    HashMapEntry *slots;
    size_t nslots; /* power of two, or 0 */
    size_t count;
    size_t tombstones;
} HashMap;

#define HASHMAP_INIT {NULL, 0, 0, 0}

void hashmap_init(HashMap *m);
void hashmap_release(HashMap *m);
void *hashmap_get(const HashMap *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *hashmap_put(HashMap *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *hashmap_remove(HashMap *m, const char *key);
size_t hashmap_count(const HashMap *m);

/* Iteration: for (size_t i = 0; hashmap_next(m, &i, &k, &v);) */
bool hashmap_next(const HashMap *m, size_t *iter, const char **key, void **value);

size_t hash_string(const char *s);

#endif
