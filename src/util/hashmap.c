/*
 * Open-addressing string hash map. See hashmap.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "util/xalloc.h"
#include "util/banned.h"

static const char tombstone_key[] = "";
#define TOMBSTONE ((const char *)tombstone_key)

size_t hash_string(const char *s)
{
    /* FNV-1a, 64 bit */
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

void hashmap_init(HashMap *m)
{
    memset(m, 0, sizeof(*m));
}

void hashmap_release(HashMap *m)
{
    free(m->slots);
    hashmap_init(m);
}

static HashMapEntry *find_slot(const HashMap *m, const char *key, size_t h, bool for_insert)
{
    size_t mask = m->nslots - 1;
    HashMapEntry *first_tomb = NULL;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        HashMapEntry *e = &m->slots[i];
        if (!e->key)
            return for_insert && first_tomb ? first_tomb : (for_insert ? e : NULL);
        if (e->key == TOMBSTONE) {
            if (!first_tomb)
                first_tomb = e;
            continue;
        }
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    }
}

static void rehash(HashMap *m, size_t nslots)
{
    HashMapEntry *old = m->slots;
    size_t oldn = m->nslots;
    m->slots = xnew0(HashMapEntry, nslots);
    m->nslots = nslots;
    m->tombstones = 0;
    for (size_t i = 0; i < oldn; i++) {
        if (old[i].key && old[i].key != TOMBSTONE) {
            HashMapEntry *e = find_slot(m, old[i].key, old[i].hash, true);
            *e = old[i];
        }
    }
    free(old);
}

void *hashmap_get(const HashMap *m, const char *key)
{
    if (!m->nslots)
        return NULL;
    HashMapEntry *e = find_slot(m, key, hash_string(key), false);
    return e ? e->value : NULL;
}

void *hashmap_put(HashMap *m, const char *key, void *value)
{
    if ((m->count + m->tombstones + 1) * 4 >= m->nslots * 3)
        rehash(m, m->nslots ? (m->count * 4 >= m->nslots ? m->nslots * 2 : m->nslots) : 16);
    size_t h = hash_string(key);
    HashMapEntry *e = find_slot(m, key, h, true);
    if (e->key && e->key != TOMBSTONE) {
        void *prev = e->value;
        e->key = key;
        e->value = value;
        return prev;
    }
    if (e->key == TOMBSTONE)
        m->tombstones--;
    e->key = key;
    e->value = value;
    e->hash = h;
    m->count++;
    return NULL;
}

void *hashmap_remove(HashMap *m, const char *key)
{
    if (!m->nslots)
        return NULL;
    HashMapEntry *e = find_slot(m, key, hash_string(key), false);
    if (!e)
        return NULL;
    void *v = e->value;
    e->key = TOMBSTONE;
    e->value = NULL;
    m->count--;
    m->tombstones++;
    return v;
}

size_t hashmap_count(const HashMap *m)
{
    return m->count;
}

bool hashmap_next(const HashMap *m, size_t *iter, const char **key, void **value)
{
    for (; *iter < m->nslots; (*iter)++) {
        HashMapEntry *e = &m->slots[*iter];
        if (e->key && e->key != TOMBSTONE) {
            if (key)
                *key = e->key;
            if (value)
                *value = e->value;
            (*iter)++;
            return true;
        }
    }
    return false;
}
