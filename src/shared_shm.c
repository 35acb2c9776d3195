/*
 * shared_shm.c - the shared memory backend of proxy.shared.
 *
 * One MAP_SHARED anonymous mapping, made before the workers fork, holds a
 * hash table of entries, a least-recently-used list and a pool of fixed
 * blocks. An entry is a chain of blocks: its header and key in the first,
 * its value running on into the next ones. Every number in the region is
 * a block index, never a pointer, because each process may map it at a
 * different address.
 *
 *   region: | header + lock | buckets[] | block 0 | block 1 | ... |
 *   entry:  block a [next=b | entry head | key | value...] -> block b [...]
 *
 * A process-shared robust mutex guards it all; every operation holds it for
 * a bounded copy of at most SHARED_MAX_KEY + SHARED_MAX_VALUE bytes. A
 * worker that dies holding the lock leaves possibly half-written state, so
 * the next one to take the lock empties the store rather than trust it.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shared_backend.h"

#define NIL UINT32_MAX
#define BLOCK_SIZE 128
#define BLOCK_PAYLOAD (BLOCK_SIZE - sizeof(uint32_t))

struct block {
    uint32_t next; /* the entry's next block, or the free list's */
    unsigned char data[BLOCK_PAYLOAD];
};

/* At the start of an entry's first block. */
struct entry {
    uint32_t hash_next; /* next entry in the bucket */
    uint32_t lru_prev, lru_next;
    uint32_t hash;
    uint32_t nblocks;
    double expires;     /* monotonic seconds; 0: never */
    uint32_t key_len;
    uint32_t value_len;
    uint8_t type;       /* enum shared_type */
};

struct shared_region {
    pthread_mutex_t lock;
    size_t bytes;            /* the whole mapping */
    uint32_t nbuckets;
    uint32_t nblocks;
    uint32_t free_head, free_count;
    uint32_t fresh;          /* blocks from here on were never used */
    uint32_t lru_head, lru_tail; /* head: most recently used */
    uint64_t evictions;
    /* then buckets[nbuckets], then blocks[nblocks] */
};

static uint32_t *buckets(struct shared_region *r)
{
    return (uint32_t *)(r + 1);
}

static struct block *block_at(struct shared_region *r, uint32_t i)
{
    struct block *base = (struct block *)(buckets(r) + r->nbuckets);
    return base + i;
}

static struct entry *entry_at(struct shared_region *r, uint32_t i)
{
    return (struct entry *)block_at(r, i)->data;
}

/* FNV-1a: short keys, no adversary that can see the table. */
static uint32_t hash_key(const char *k, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h;
}

static void reset(struct shared_region *r)
{
    for (uint32_t i = 0; i < r->nbuckets; i++)
        buckets(r)[i] = NIL;
    /* Blocks are handed out from <fresh> before they are ever linked, so
     * a store that holds little touches (and costs) little memory. */
    r->free_head = NIL;
    r->free_count = 0;
    r->fresh = 0;
    r->lru_head = r->lru_tail = NIL;
}

struct shared_region *shared_region_create(size_t bytes, char *err, size_t err_len)
{
    struct shared_region *r;
    pthread_mutexattr_t attr;
    size_t room;

    if (bytes < 64 * 1024) {
        snprintf(err, err_len, "shared memory must be at least 64 KiB");
        return NULL;
    }
    r = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        snprintf(err, err_len, "mmap(%zu): %s", bytes, strerror(errno));
        return NULL;
    }
    r->bytes = bytes;
    room = bytes - sizeof *r;
    /* One bucket per two blocks keeps chains short for small entries. */
    r->nblocks = (uint32_t)(room / (BLOCK_SIZE + sizeof(uint32_t) / 2 + 1));
    r->nbuckets = r->nblocks / 2 + 1;
    while (sizeof *r + r->nbuckets * sizeof(uint32_t) + (size_t)r->nblocks * BLOCK_SIZE > bytes)
        r->nblocks--;
    reset(r);
    if (pthread_mutexattr_init(&attr) != 0 ||
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) != 0 ||
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) != 0 ||
        pthread_mutex_init(&r->lock, &attr) != 0) {
        snprintf(err, err_len, "cannot make a process-shared lock");
        munmap(r, bytes);
        return NULL;
    }
    pthread_mutexattr_destroy(&attr);
    return r;
}

void shared_region_destroy(struct shared_region *r)
{
    if (r)
        munmap(r, r->bytes);
}

static void lock(struct shared_region *r)
{
    if (pthread_mutex_lock(&r->lock) == EOWNERDEAD) {
        reset(r);
        pthread_mutex_consistent(&r->lock);
    }
}

/* ---- the LRU list and the block pool ------------------------------------- */

static void lru_unlink(struct shared_region *r, uint32_t i)
{
    struct entry *e = entry_at(r, i);
    if (e->lru_prev != NIL)
        entry_at(r, e->lru_prev)->lru_next = e->lru_next;
    else
        r->lru_head = e->lru_next;
    if (e->lru_next != NIL)
        entry_at(r, e->lru_next)->lru_prev = e->lru_prev;
    else
        r->lru_tail = e->lru_prev;
}

static void lru_push_front(struct shared_region *r, uint32_t i)
{
    struct entry *e = entry_at(r, i);
    e->lru_prev = NIL;
    e->lru_next = r->lru_head;
    if (r->lru_head != NIL)
        entry_at(r, r->lru_head)->lru_prev = i;
    r->lru_head = i;
    if (r->lru_tail == NIL)
        r->lru_tail = i;
}

/* Unlinks entry <i> from its bucket and the LRU list and frees its blocks. */
static void remove_entry(struct shared_region *r, uint32_t i)
{
    struct entry *e = entry_at(r, i);
    uint32_t *link = &buckets(r)[e->hash % r->nbuckets];
    while (*link != i)
        link = &entry_at(r, *link)->hash_next;
    *link = e->hash_next;
    lru_unlink(r, i);
    for (uint32_t b = i, next; b != NIL; b = next) {
        next = block_at(r, b)->next;
        block_at(r, b)->next = r->free_head;
        r->free_head = b;
        r->free_count++;
    }
}

static uint32_t find(struct shared_region *r, const char *key, size_t len, uint32_t hash)
{
    for (uint32_t i = buckets(r)[hash % r->nbuckets]; i != NIL; i = entry_at(r, i)->hash_next) {
        struct entry *e = entry_at(r, i);
        if (e->hash == hash && e->key_len == len &&
            memcmp(block_at(r, i)->data + sizeof *e, key, len) == 0)
            return i;
    }
    return NIL;
}

/* Copies <len> bytes in or out of the chain starting at block <b>, at byte
 * <off> of the entry's payload. */
static void chain_copy(struct shared_region *r, uint32_t b, size_t off, void *mem, size_t len,
                       int out)
{
    unsigned char *m = mem;
    while (off >= BLOCK_PAYLOAD) {
        b = block_at(r, b)->next;
        off -= BLOCK_PAYLOAD;
    }
    while (len > 0) {
        size_t n = BLOCK_PAYLOAD - off < len ? BLOCK_PAYLOAD - off : len;
        if (out)
            memcpy(m, block_at(r, b)->data + off, n);
        else
            memcpy(block_at(r, b)->data + off, m, n);
        m += n;
        len -= n;
        off = 0;
        b = block_at(r, b)->next;
    }
}

/* Stores a new entry (the key must not exist). 0, or -1 if it can never
 * fit. Evicts expired then least recently used entries to make room. */
static int insert(struct shared_region *r, const char *key, size_t klen, uint32_t hash,
                  enum shared_type type, const void *value, size_t vlen, double expires)
{
    size_t total = sizeof(struct entry) + klen + vlen;
    uint32_t need = (uint32_t)((total + BLOCK_PAYLOAD - 1) / BLOCK_PAYLOAD), first, b;
    struct entry *e;

    if (need > r->nblocks)
        return -1;
    while (r->free_count < need && r->fresh < r->nblocks) {
        block_at(r, r->fresh)->next = r->free_head;
        r->free_head = r->fresh++;
        r->free_count++;
    }
    while (r->free_count < need && r->lru_tail != NIL) {
        remove_entry(r, r->lru_tail);
        r->evictions++;
    }
    first = b = r->free_head;
    for (uint32_t k = 1; k < need; k++)
        b = block_at(r, b)->next;
    r->free_head = block_at(r, b)->next;
    block_at(r, b)->next = NIL;
    r->free_count -= need;

    e = entry_at(r, first);
    e->hash = hash;
    e->nblocks = need;
    e->expires = expires;
    e->key_len = (uint32_t)klen;
    e->value_len = (uint32_t)vlen;
    e->type = (uint8_t)type;
    chain_copy(r, first, sizeof *e, (void *)(uintptr_t)key, klen, 0);
    chain_copy(r, first, sizeof *e + klen, (void *)(uintptr_t)value, vlen, 0);
    e->hash_next = buckets(r)[hash % r->nbuckets];
    buckets(r)[hash % r->nbuckets] = first;
    lru_push_front(r, first);
    return 0;
}

/* A value's stored bytes: numbers and booleans as their 8 bytes. */
static const void *value_bytes(const struct shared_value *v, size_t *len)
{
    switch (v->type) {
    case SHARED_STRING: *len = v->len; return v->s;
    case SHARED_INTEGER:
    case SHARED_BOOLEAN: *len = sizeof v->i; return &v->i;
    case SHARED_FLOAT: *len = sizeof v->f; return &v->f;
    case SHARED_NIL: break;
    }
    *len = 0;
    return "";
}

/* Reads entry <i>'s value into <reply>. -1 when out of memory. */
static int read_value(struct shared_region *r, uint32_t i, struct shared_reply *reply)
{
    struct entry *e = entry_at(r, i);
    size_t off = sizeof *e + e->key_len;
    reply->value.type = (enum shared_type)e->type;
    if (e->type == SHARED_STRING) {
        char *dst = buffer_reserve(&reply->text, e->value_len + 1);
        if (!dst)
            return -1;
        chain_copy(r, i, off, dst, e->value_len, 1);
        buffer_commit(&reply->text, e->value_len);
        reply->value.s = buffer_peek(&reply->text);
        reply->value.len = e->value_len;
    } else if (e->type == SHARED_FLOAT) {
        chain_copy(r, i, off, &reply->value.f, sizeof reply->value.f, 1);
    } else {
        chain_copy(r, i, off, &reply->value.i, sizeof reply->value.i, 1);
    }
    return 0;
}

static enum shared_status fail(struct shared_reply *reply, const char *msg)
{
    snprintf(reply->err, sizeof reply->err, "%s", msg);
    return SHARED_FAILED;
}

/* INCR on the locked region: the sum of the current value (0 if none)
 * and the step, keeping integers integral while both are. */
static enum shared_status incr_locked(struct shared_region *r, const struct shared_request *rq,
                                      uint32_t hash, uint32_t at, struct shared_reply *reply,
                                      double expires)
{
    struct shared_value cur = {.type = SHARED_INTEGER, .i = 0};
    struct shared_value sum;
    const void *bytes;
    size_t len;

    if (at != NIL) {
        struct entry *e = entry_at(r, at);
        if (e->type != SHARED_INTEGER && e->type != SHARED_FLOAT)
            return fail(reply, SHARED_ERR_NOT_NUMBER);
        struct shared_reply tmp;
        buffer_init(&tmp.text);
        read_value(r, at, &tmp);
        cur = tmp.value;
        expires = e->expires; /* a counter keeps the window it started */
    }
    if (cur.type == SHARED_INTEGER && rq->value.type == SHARED_INTEGER) {
        sum.type = SHARED_INTEGER;
        if (__builtin_add_overflow(cur.i, rq->value.i, &sum.i))
            return fail(reply, SHARED_ERR_OVERFLOW);
    } else {
        double a = cur.type == SHARED_INTEGER ? (double)cur.i : cur.f;
        double b = rq->value.type == SHARED_INTEGER ? (double)rq->value.i : rq->value.f;
        sum.type = SHARED_FLOAT;
        sum.f = a + b;
    }
    if (at != NIL) {
        /* Same size as before: overwrite in place. */
        struct entry *e = entry_at(r, at);
        bytes = value_bytes(&sum, &len);
        e->type = (uint8_t)sum.type;
        chain_copy(r, at, sizeof *e + e->key_len, (void *)(uintptr_t)bytes, len, 0);
        lru_unlink(r, at);
        lru_push_front(r, at);
    } else {
        bytes = value_bytes(&sum, &len);
        if (insert(r, rq->key, rq->key_len, hash, sum.type, bytes, len, expires) != 0)
            return fail(reply, SHARED_ERR_FULL);
    }
    reply->value = sum;
    return SHARED_DONE;
}

enum shared_status shm_call(struct shared_region *r, const struct shared_request *rq,
                            struct shared_reply *reply, double now)
{
    uint32_t hash = hash_key(rq->key, rq->key_len), at;
    double expires = rq->ttl > 0 ? now + rq->ttl : 0;
    enum shared_status status = SHARED_DONE;

    reply->value.type = SHARED_NIL;
    lock(r);
    at = find(r, rq->key, rq->key_len, hash);
    if (at != NIL && entry_at(r, at)->expires != 0 && entry_at(r, at)->expires <= now) {
        remove_entry(r, at);
        at = NIL;
    }
    switch (rq->op) {
    case SHARED_GET:
        if (at != NIL) {
            lru_unlink(r, at);
            lru_push_front(r, at);
            if (read_value(r, at, reply) != 0)
                status = fail(reply, SHARED_ERR_NO_MEMORY);
        }
        break;
    case SHARED_SET: {
        size_t len;
        const void *bytes = value_bytes(&rq->value, &len);
        if (at != NIL)
            remove_entry(r, at);
        if (insert(r, rq->key, rq->key_len, hash, rq->value.type, bytes, len, expires) != 0)
            status = fail(reply, SHARED_ERR_FULL);
        break;
    }
    case SHARED_INCR:
        status = incr_locked(r, rq, hash, at, reply, expires);
        break;
    case SHARED_DELETE:
        if (at != NIL)
            remove_entry(r, at);
        break;
    }
    pthread_mutex_unlock(&r->lock);
    return status;
}
