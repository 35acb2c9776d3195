/*
 * buffer.h - a growable byte queue with reserve / commit / consume.
 *
 * Every socket the proxy owns has one buffer per direction. Bytes are
 * appended at the tail (reserve space, read(2) into it, commit what arrived)
 * and removed from the head once they have been written or parsed (consume).
 *
 *     data                start               end                 cap
 *      |   consumed, free  |  readable bytes   |  reserved / free  |
 *      +-------------------+-------------------+-------------------+
 *
 * The buffer owns its memory; freed blocks are kept a while for the next
 * buffer of the same size (at most BUFFER_CACHE_MAX per thread). A pointer returned by buffer_peek() or
 * buffer_reserve() stays valid only until the next reserve/append (which may
 * move the data) or consume. When the buffer becomes empty its memory may be
 * returned with buffer_shrink() so idle connections cost almost nothing.
 */
#ifndef LUAPROXY_BUFFER_H
#define LUAPROXY_BUFFER_H

#include <stdarg.h>
#include <stddef.h>

struct buffer {
    char *data;   /* NULL until the first reserve */
    size_t start; /* offset of the first readable byte */
    size_t end;   /* offset one past the last readable byte */
    size_t cap;   /* bytes allocated at data */
};

void buffer_init(struct buffer *b);
/* Frees the memory; the buffer is empty and reusable afterwards. */
void buffer_free(struct buffer *b);

static inline size_t buffer_length(const struct buffer *b) { return b->end - b->start; }
static inline const char *buffer_peek(const struct buffer *b)
{
    return b->data ? b->data + b->start : ""; /* NULL + 0 is undefined */
}

/* Makes room for at least <n> more bytes at the tail, moving readable bytes
 * to the front or growing the allocation. Returns a pointer to the free
 * space, or NULL when memory is exhausted (the buffer is unchanged). */
char *buffer_reserve(struct buffer *b, size_t n);
/* Declares that <n> bytes were written into the reserved space. */
void buffer_commit(struct buffer *b, size_t n);
/* Drops <n> bytes from the head (n <= buffer_length). Resets offsets to 0
 * when the buffer becomes empty, so the next reserve needs no move. */
void buffer_consume(struct buffer *b, size_t n);

/* reserve + memcpy + commit. Returns 0, or -1 when out of memory. */
static inline int buffer_append(struct buffer *b, const void *src, size_t n);
static inline int buffer_append_str(struct buffer *b, const char *s);
/* buffer_append when the free tail is too small (buffer_append's slow path). */
int buffer_append_grow(struct buffer *b, const void *src, size_t n);
/* Appends formatted text (no NUL kept). Returns 0 or -1. */
int buffer_printf(struct buffer *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int buffer_vprintf(struct buffer *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* The most each thread keeps of freed blocks for reuse (buffer.c), and
 * what it keeps now. */
#define BUFFER_CACHE_MAX (512 * 1024)
size_t buffer_cached_bytes(void);

/* The same cache, for other memory made and freed once per exchange (a
 * header list's items, the request line). buffer_block_size(n) is the
 * size of the block that holds <n> bytes (a power of two, at least 1 KiB);
 * buffer_block_take(n) returns a block of that size, or NULL when out of
 * memory; buffer_block_give(block, n) takes it back (NULL is a no-op),
 * given the same <n> or the block's size. */
size_t buffer_block_size(size_t n);
void *buffer_block_take(size_t n);
void buffer_block_give(void *block, size_t n);

/* Returns the allocation to the system when the buffer is empty. */
void buffer_shrink(struct buffer *b);

/* Exchanges the contents of two buffers: moving a whole buffer's bytes
 * from one queue to another without copying them. */
void buffer_swap(struct buffer *a, struct buffer *b);

#include <string.h>
/* Inline: heads are written a few bytes at a time, and nearly every append
 * fits in the space already there. */
static inline int buffer_append(struct buffer *b, const void *src, size_t n)
{
    if (b->data != NULL && b->cap - b->end >= n) {
        memcpy(b->data + b->end, src, n);
        b->end += n;
        return 0;
    }
    return buffer_append_grow(b, src, n);
}

static inline int buffer_append_str(struct buffer *b, const char *s)
{
    return buffer_append(b, s, strlen(s));
}

#endif
