/*
 * buffer.c - the growable byte queue behind every socket (see buffer.h).
 *
 * Owns: the allocation, and the policy for making room (move the readable
 * bytes to the front when that frees enough space, otherwise grow to at
 * least twice the size), and a small per-thread cache of freed blocks.
 * Does not own: what the bytes mean, or when they are read or written;
 * callers do that with reserve / commit / consume.
 */
#include "buffer.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation: big enough for a typical request head, small enough that
 * thousands of idle connections stay cheap. */
#define BUFFER_MIN_CAP 1024

/*
 * Freed blocks kept for the next allocation of the same size.
 *
 * A keep-alive exchange fills and empties about five buffers, and each is
 * freed when it empties so an idle connection holds no block (see
 * buffer_shrink). Blocks of 1 KiB and more are beyond glibc's per-thread
 * cache, so every one of those frees and mallocs went through malloc's
 * bins: about a tenth of the relay's own instructions per exchange. Sizes
 * are powers of two from BUFFER_MIN_CAP (reserve only makes those), so a
 * class is the block size's log2. Most blocks are 1 KiB (a small head or
 * answer), and fifty busy clients free and take several each between
 * two waits for events, so a class keeps as many as fit: in all a thread
 * holds at most BUFFER_CACHE_MAX, however many clients it has.
 * Each thread has its own cache, so no lock is taken. Under AddressSanitizer
 * the cache is off, so a use after free of a buffer is still reported.
 */
#define BLOCK_CLASSES 7 /* 1 KiB to 64 KiB */

#if defined(__SANITIZE_ADDRESS__)
#define BLOCK_CACHE 0
#else
#define BLOCK_CACHE 1
#endif

/* Each class a list linked through the blocks' first word. */
struct block_cache {
    void *first[BLOCK_CLASSES];
    size_t bytes;
};

static _Thread_local struct block_cache block_cache;

/* The class of a block of <cap> bytes, or -1 when it is not cached. */
static int block_class(size_t cap)
{
    if (!BLOCK_CACHE || cap < BUFFER_MIN_CAP || (cap & (cap - 1)) != 0)
        return -1;
    int c = __builtin_ctzl(cap) - __builtin_ctzl(BUFFER_MIN_CAP);
    return c < BLOCK_CLASSES ? c : -1;
}

static char *block_alloc(size_t cap)
{
    int c = block_class(cap);
    if (c >= 0 && block_cache.first[c] != NULL) {
        void *block = block_cache.first[c];
        block_cache.first[c] = *(void **)block;
        block_cache.bytes -= cap;
        return block;
    }
    return malloc(cap);
}

static void block_free(char *data, size_t cap)
{
    /* Most buffers an exchange frees never held a block: nothing to do,
     * not even free(NULL). */
    if (data == NULL)
        return;
    int c = block_class(cap);
    if (c >= 0 && block_cache.bytes + cap <= BUFFER_CACHE_MAX) {
        *(void **)data = block_cache.first[c];
        block_cache.first[c] = data;
        block_cache.bytes += cap;
        return;
    }
    free(data);
}

size_t buffer_block_size(size_t n)
{
    size_t cap = BUFFER_MIN_CAP;
    while (cap < n) {
        if (cap > SIZE_MAX / 2)
            return n; /* not a power of two: never cached */
        cap *= 2;
    }
    return cap;
}

void *buffer_block_take(size_t n)
{
    return block_alloc(buffer_block_size(n));
}

void buffer_block_give(void *block, size_t n)
{
    block_free(block, buffer_block_size(n));
}

size_t buffer_cached_bytes(void)
{
    return block_cache.bytes;
}

void buffer_init(struct buffer *b)
{
    b->data = NULL;
    b->start = 0;
    b->end = 0;
    b->cap = 0;
}

void buffer_free(struct buffer *b)
{
    block_free(b->data, b->cap);
    buffer_init(b);
}

/*
 * Makes the free space at the tail at least <n> bytes. Moving is preferred
 * to growing: a connection that keeps reading and consuming reuses the same
 * memory. When it must grow, the readable bytes are copied once into the new
 * block (not realloc, which would also copy the consumed and reserved parts).
 */
char *buffer_reserve(struct buffer *b, size_t n)
{
    size_t len = buffer_length(b);

    /* An empty buffer's first block, the common case (each exchange
     * starts a few): the smallest size, straight from its class. */
    if (b->data == NULL && n <= BUFFER_MIN_CAP) {
        char *data = block_alloc(BUFFER_MIN_CAP);
        if (data == NULL)
            return NULL;
        b->data = data;
        b->start = b->end = 0;
        b->cap = BUFFER_MIN_CAP;
        return data;
    }

    /* (no arithmetic on a NULL data pointer, even "+ 0": it is undefined) */
    if (b->data != NULL) {
        if (b->cap - b->end >= n)
            return b->data + b->end;
        if (b->cap - len >= n) {
            memmove(b->data, b->data + b->start, len);
            b->start = 0;
            b->end = len;
            return b->data + b->end;
        }
    }

    if (n > SIZE_MAX - len)
        return NULL;
    size_t need = len + n;
    size_t cap = b->cap ? b->cap : BUFFER_MIN_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }

    char *data = block_alloc(cap);
    if (data == NULL)
        return NULL;
    if (len)
        memcpy(data, b->data + b->start, len);
    block_free(b->data, b->cap);
    b->data = data;
    b->start = 0;
    b->end = len;
    b->cap = cap;
    return b->data + b->end;
}

void buffer_commit(struct buffer *b, size_t n)
{
    assert(n <= b->cap - b->end);
    b->end += n;
}

void buffer_consume(struct buffer *b, size_t n)
{
    assert(n <= buffer_length(b));
    b->start += n;
    if (b->start == b->end)
        b->start = b->end = 0;
}

int buffer_append_grow(struct buffer *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    char *dst = buffer_reserve(b, n);
    if (dst == NULL)
        return -1;
    memcpy(dst, src, n);
    buffer_commit(b, n);
    return 0;
}

int buffer_printf(struct buffer *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buffer_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/*
 * Formats straight into the free tail when it is big enough (the common
 * case: short status lines and headers), otherwise reserves exactly what
 * vsnprintf asked for and formats again. vsnprintf always writes a NUL, so
 * one extra byte is reserved but not committed.
 */
int buffer_vprintf(struct buffer *b, const char *fmt, va_list ap)
{
    va_list again;
    size_t avail = b->cap - b->end;
    char *dst = b->data ? b->data + b->end : NULL;

    va_copy(again, ap);
    int n = vsnprintf(dst, avail, fmt, ap);
    if (n < 0)
        goto fail;
    if ((size_t)n >= avail) {
        dst = buffer_reserve(b, (size_t)n + 1);
        if (dst == NULL)
            goto fail;
        if (vsnprintf(dst, (size_t)n + 1, fmt, again) != n)
            goto fail;
    }
    va_end(again);
    buffer_commit(b, (size_t)n);
    return 0;

fail:
    va_end(again);
    return -1;
}

void buffer_shrink(struct buffer *b)
{
    if (buffer_length(b) == 0)
        buffer_free(b);
}

void buffer_swap(struct buffer *a, struct buffer *b)
{
    struct buffer t = *a;
    *a = *b;
    *b = t;
}
