/*
 * buffer.c - the growable byte queue behind every socket (see buffer.h).
 *
 * Owns: the allocation, and the policy for making room (move the readable
 * bytes to the front when that frees enough space, otherwise grow to at
 * least twice the size). Does not own: what the bytes mean, or when they
 * are read or written; callers do that with reserve / commit / consume.
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

void buffer_init(struct buffer *b)
{
    b->data = NULL;
    b->start = 0;
    b->end = 0;
    b->cap = 0;
}

void buffer_free(struct buffer *b)
{
    free(b->data);
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

    char *data = malloc(cap);
    if (data == NULL)
        return NULL;
    if (len)
        memcpy(data, b->data + b->start, len);
    free(b->data);
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
