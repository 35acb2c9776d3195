/*
 * test_buffer.c - unit tests for the reserve / commit / consume byte queue.
 */
#include <stdint.h>
#include <stdlib.h>

#include "buffer.h"
#include "tap.h"

static void test_empty(void)
{
    struct buffer b;
    buffer_init(&b);
    ok(b.data == NULL && b.cap == 0, "init: no memory until the first reserve");
    is_int(buffer_length(&b), 0, "init: empty");
    buffer_shrink(&b);
    ok(b.data == NULL, "shrink of a never-used buffer is harmless");
    buffer_free(&b);
    buffer_free(&b);
    ok(b.data == NULL && b.start == 0 && b.end == 0 && b.cap == 0, "free twice is harmless");
    ok(buffer_reserve(&b, 0) != NULL, "reserve of 0 on a new buffer gives a pointer");
    is_int(buffer_length(&b), 0, "reserve of 0 adds nothing");
    buffer_free(&b);
    is_int(buffer_append(&b, "", 0), 0, "append of nothing succeeds");
    ok(b.data == NULL, "append of nothing allocates nothing");
}

static void test_reserve_commit_consume(void)
{
    struct buffer b;
    buffer_init(&b);

    char *p = buffer_reserve(&b, 10);
    ok(p != NULL, "reserve returns space");
    ok(b.cap >= 10, "reserve allocates at least n");
    is_int(buffer_length(&b), 0, "reserve alone adds no bytes");
    memcpy(p, "hello worl", 10);
    buffer_commit(&b, 5);
    is_str(buffer_peek(&b), buffer_length(&b), "hello", "commit adds only what was declared");

    p = buffer_reserve(&b, 3);
    ok(p == b.data + 5, "reserve continues at the tail");
    memcpy(p, " wo", 3);
    buffer_commit(&b, 3);
    is_str(buffer_peek(&b), buffer_length(&b), "hello wo", "bytes queue in order");

    buffer_consume(&b, 6);
    is_str(buffer_peek(&b), buffer_length(&b), "wo", "consume drops from the head");
    is_int(b.start, 6, "consume advances start");

    buffer_consume(&b, 2);
    is_int(buffer_length(&b), 0, "consume of everything empties");
    ok(b.start == 0 && b.end == 0, "consume of everything resets offsets to 0");
    ok(b.data != NULL, "memory is kept until shrink");

    buffer_consume(&b, 0);
    is_int(buffer_length(&b), 0, "consume of 0 on an empty buffer is harmless");

    buffer_shrink(&b);
    ok(b.data == NULL && b.cap == 0, "shrink of an empty buffer frees");
    buffer_free(&b);
}

static void test_shrink_keeps_data(void)
{
    struct buffer b;
    buffer_init(&b);
    buffer_append_str(&b, "abc");
    buffer_shrink(&b);
    is_str(buffer_peek(&b), buffer_length(&b), "abc", "shrink keeps a non-empty buffer");
    buffer_free(&b);
    ok(b.data == NULL && buffer_length(&b) == 0, "free empties");
    is_int(buffer_append_str(&b, "again"), 0, "a freed buffer is reusable");
    is_str(buffer_peek(&b), buffer_length(&b), "again", "reused buffer holds new bytes");
    buffer_free(&b);
}

/* When the consumed space at the front is enough, reserve moves the bytes
 * instead of growing. */
static void test_compact(void)
{
    struct buffer b;
    buffer_init(&b);
    char *p = buffer_reserve(&b, 1);
    size_t cap = b.cap;
    memset(p, 'x', cap);
    buffer_commit(&b, cap);
    buffer_consume(&b, cap - 4);
    memcpy(b.data + b.start, "tail", 4);
    char *before = b.data;

    p = buffer_reserve(&b, cap - 4);
    ok(p != NULL, "reserve after consume succeeds");
    is_int(b.cap, cap, "reserve compacts instead of growing");
    ok(b.data == before, "compaction keeps the allocation");
    is_int(b.start, 0, "compaction moves readable bytes to the front");
    is_str(buffer_peek(&b), buffer_length(&b), "tail", "compaction keeps the bytes");
    ok(p == b.data + 4, "free space follows the moved bytes");

    p = buffer_reserve(&b, cap - 3);
    ok(p != NULL && b.cap > cap, "reserve beyond capacity grows");
    ok(b.cap >= 2 * cap, "growth is geometric");
    is_str(buffer_peek(&b), buffer_length(&b), "tail", "growth keeps the bytes");
    buffer_free(&b);
}

static void test_append_many(void)
{
    struct buffer b;
    buffer_init(&b);
    int fine = 1;
    size_t grows = 0, cap = 0;
    for (int i = 0; i < 100000; i++) {
        char c = (char)('a' + i % 26);
        if (buffer_append(&b, &c, 1) < 0)
            fine = 0;
        if (b.cap != cap) {
            grows++;
            cap = b.cap;
        }
    }
    ok(fine, "100000 one-byte appends succeed");
    is_int(buffer_length(&b), 100000, "all bytes are kept");
    ok(grows < 20, "geometric growth: %zu allocations for 100000 bytes", grows);
    int same = 1;
    for (size_t i = 0; i < buffer_length(&b); i++)
        if (buffer_peek(&b)[i] != (char)('a' + i % 26))
            same = 0;
    ok(same, "bytes come out in order");

    /* interleave consume and append: the allocation stops growing */
    buffer_consume(&b, buffer_length(&b));
    cap = b.cap;
    for (int i = 0; i < 1000; i++) {
        buffer_append(&b, "0123456789", 10);
        buffer_consume(&b, 7);
    }
    ok(b.cap == cap, "a queue that drains keeps its size");
    is_int(buffer_length(&b), 3000, "drained queue holds the rest");
    buffer_free(&b);
}

static void test_huge(void)
{
    struct buffer b;
    buffer_init(&b);
    buffer_append_str(&b, "keep");
    ok(buffer_reserve(&b, SIZE_MAX) == NULL, "reserve of SIZE_MAX fails");
    ok(buffer_reserve(&b, SIZE_MAX - 2) == NULL, "reserve that overflows len + n fails");
    is_str(buffer_peek(&b), buffer_length(&b), "keep", "failed reserve leaves the buffer unchanged");
    /* (a merely huge malloc is not tried: ASan aborts on it by default) */
    is_int(buffer_append(&b, "x", SIZE_MAX - 1), -1, "append that cannot fit returns -1");
    is_str(buffer_peek(&b), buffer_length(&b), "keep", "failed append leaves the buffer unchanged");
    buffer_free(&b);
}

static void test_printf(void)
{
    struct buffer b;
    buffer_init(&b);
    is_int(buffer_printf(&b, "HTTP/1.1 %d %s\r\n", 502, "Bad Gateway"), 0, "printf returns 0");
    is_str(buffer_peek(&b), buffer_length(&b), "HTTP/1.1 502 Bad Gateway\r\n",
           "printf into an empty buffer");
    is_int(buffer_printf(&b, "%s", ""), 0, "printf of nothing");
    is_int(buffer_length(&b), 26, "printf of nothing adds nothing (no NUL kept)");

    /* longer than the free space: the slow path */
    char big[5000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    size_t before = buffer_length(&b);
    is_int(buffer_printf(&b, "<%s>", big), 0, "printf longer than the free space");
    is_int(buffer_length(&b), before + 5001, "slow path appends every byte");
    ok(buffer_peek(&b)[before] == '<' && buffer_peek(&b)[before + 5000] == '>',
       "slow path formats correctly");

    buffer_consume(&b, buffer_length(&b));
    is_int(buffer_printf(&b, "%05d|%-3s|%x", 42, "a", 255), 0, "printf with conversions");
    is_str(buffer_peek(&b), buffer_length(&b), "00042|a  |ff", "conversions are applied");
    buffer_free(&b);
}

static void test_guarded_append(void)
{
    /* append reads exactly n bytes of the source, never the byte after it */
    const char *src = guarded_copy("exactly", 7);
    struct buffer b;
    buffer_init(&b);
    is_int(buffer_append(&b, src, 7), 0, "append from guarded memory");
    is_str(buffer_peek(&b), buffer_length(&b), "exactly", "append copies the bytes");
    buffer_free(&b);
}

/* A freed block goes to the next buffer of its size, not back to malloc,
 * and what is kept stays bounded. (Off under AddressSanitizer.) */
static void test_block_cache(void)
{
#if defined(__SANITIZE_ADDRESS__)
    ok(buffer_cached_bytes() == 0, "no block is kept under AddressSanitizer");
#else
    struct buffer a, b, many[64];
    buffer_init(&a);
    buffer_init(&b);
    buffer_append_str(&a, "x");
    const char *block = a.data;
    size_t cached = buffer_cached_bytes(), cap = a.cap;
    buffer_free(&a);
    is_int((long)(buffer_cached_bytes() - cached), (long)cap, "a freed block is kept");
    buffer_append_str(&b, "y");
    ok(b.data == block && buffer_cached_bytes() == cached,
       "and handed to the next buffer of its size");
    buffer_free(&b);

    for (int i = 0; i < 64; i++) {
        buffer_init(&many[i]);
        buffer_reserve(&many[i], 40000); /* 64 KiB blocks */
    }
    for (int i = 0; i < 64; i++)
        buffer_free(&many[i]);
    ok(buffer_cached_bytes() > 0 && buffer_cached_bytes() <= BUFFER_CACHE_MAX,
       "the blocks kept are bounded");
#endif
}

/* The cache lent to other memory: sizes are powers of two from 1 KiB,
 * and a block given back is the next one taken of its size. */
static void test_block_lending(void)
{
    is_int((long)buffer_block_size(1), 1024, "one byte takes a 1 KiB block");
    is_int((long)buffer_block_size(1024), 1024, "1 KiB fits one exactly");
    is_int((long)buffer_block_size(1025), 2048, "one byte more takes the next size");
    is_int((long)buffer_block_size(65536), 65536, "up to 64 KiB");
    buffer_block_give(NULL, 100); /* a no-op */
    char *a = buffer_block_take(100);
    ok(a != NULL, "a block is taken");
    memset(a, 'x', 1024); /* all of its size is usable */
#if defined(__SANITIZE_ADDRESS__)
    buffer_block_give(a, 100);
    ok(buffer_cached_bytes() == 0, "and freed at once under AddressSanitizer");
#else
    size_t cached = buffer_cached_bytes();
    buffer_block_give(a, 100);
    is_int((long)(buffer_cached_bytes() - cached), 1024, "given back, it is kept");
    char *b = buffer_block_take(1000);
    ok(b == a && buffer_cached_bytes() == cached, "and lent again for the same size");
    buffer_block_give(b, 1024);
    struct buffer buf;
    buffer_init(&buf);
    buffer_append_str(&buf, "z");
    ok(buf.data == a, "a buffer of that size gets it too");
    buffer_free(&buf);
#endif
}

int main(void)
{
    test_empty();
    test_reserve_commit_consume();
    test_shrink_keeps_data();
    test_compact();
    test_append_many();
    test_huge();
    test_printf();
    test_guarded_append();
    test_block_cache();
    test_block_lending();
    return tap_done();
}
