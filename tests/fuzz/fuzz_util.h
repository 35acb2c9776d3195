/*
 * fuzz_util.h - the few helpers every fuzz target shares.
 *
 * Each target checks invariants, not only "no crash": a broken invariant
 * prints what was expected and calls abort(), which libFuzzer reports as a
 * crash and saves the input as a reproducer.
 *
 * Inputs are always copied into a malloc'd block of exactly their size, so
 * AddressSanitizer faults on a read even one byte past the end (libFuzzer's
 * own buffer may have slack behind it).
 */
#ifndef LUAPROXY_FUZZ_UTIL_H
#define LUAPROXY_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                     \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "INVARIANT VIOLATED at %s:%d: %s\n  ", __FILE__,      \
                    __LINE__, #cond);                                             \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* A copy of <data>[0, <len>) in a block of exactly <len> bytes (at least one
 * byte is allocated so the pointer is never NULL; ASan still flags reading
 * it when <len> is 0, since nothing may be read then). */
static inline char *fuzz_dup(const void *data, size_t len)
{
    char *p = malloc(len ? len : 1);
    if (p == NULL)
        abort();
    if (len)
        memcpy(p, data, len);
    return p;
}

/* Whether the view <p>[0, <n>) lies inside <base>[0, <size>). Compared as
 * integers: pointer comparison across objects is undefined. */
static inline int fuzz_inside(const void *p, size_t n, const void *base, size_t size)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return p != NULL && a >= b && n <= size && a - b <= size - n;
}

/* A growable string for re-serialising what was parsed. */
struct fuzz_str {
    char *s;
    size_t len, cap;
};

static inline void fuzz_put(struct fuzz_str *b, const void *src, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (s == NULL)
            abort();
        b->s = s;
        b->cap = cap;
    }
    if (n)
        memcpy(b->s + b->len, src, n);
    b->len += n;
}

static inline void fuzz_puts(struct fuzz_str *b, const char *s) { fuzz_put(b, s, strlen(s)); }

static inline int fuzz_view_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

#endif
