/*
 * test_body.c - unit tests for body_pump: decode one framing, encode another;
 * and for a piece written straight to the peer (body_write_data_direct).
 *
 * The driver plays the relay: bytes arrive in <src> in pieces, body_pump
 * moves what it can into <dst>, and the test drains <dst> the way a socket
 * write would. Every framing in (Content-Length, chunked, until close) is
 * paired with every framing out, and the results are checked byte for byte,
 * including what is left in <src> for the next message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "body.h"
#include "tap.h"

/* dst room for tests that are not about backpressure (the relay's
 * ENDPOINT_OUT_LIMIT). */
#define DST_LIMIT (64 * 1024)

static const char *kind_name(enum http_body_kind kind)
{
    switch (kind) {
    case HTTP_BODY_NONE: return "none";
    case HTTP_BODY_LENGTH: return "length";
    case HTTP_BODY_CHUNKED: return "chunked";
    case HTTP_BODY_CLOSE: return "close";
    }
    return "?";
}

static void reader(struct body_reader *r, enum http_body_kind kind, uint64_t length)
{
    struct http_framing f = {.kind = kind, .length = length};
    body_reader_init(r, &f);
}

/* The result of feeding a whole input through body_pump. */
struct run {
    enum body_pump_result last; /* DONE, INVALID, TRUNCATED, or IDLE if stuck */
    enum http_error err;
    struct buffer out;          /* everything body_pump wrote */
    struct buffer left;         /* what stayed in src */
    uint64_t moved;
    int calls;
    size_t max_dst;             /* the most dst ever held after a call */
};

/*
 * Feeds <in> to body_pump <step> bytes at a time (the whole of it at once
 * when <step> is 0), with <src_eof> raised once all of it has arrived when
 * <eof>. Between calls the test drains dst completely, as a fast socket
 * would. Stops at DONE, INVALID, TRUNCATED, or when a call with all input
 * given makes no progress.
 */
static void pump_all(enum http_body_kind in_kind, uint64_t length, const char *in, size_t len,
                     size_t step, int eof, enum http_body_kind out_kind, size_t dst_limit,
                     struct run *run)
{
    struct body_reader r;
    struct buffer src, dst;
    size_t fed = 0;

    reader(&r, in_kind, length);
    buffer_init(&src);
    buffer_init(&dst);
    buffer_init(&run->out);
    buffer_init(&run->left);
    run->moved = 0;
    run->calls = 0;
    run->max_dst = 0;
    run->err = HTTP_ERR_NONE;
    run->last = BODY_PUMP_IDLE;

    for (int guard = 0; guard < 1000000; guard++) {
        size_t n = step == 0 ? len - fed : (len - fed < step ? len - fed : step);
        buffer_append(&src, in + fed, n);
        fed += n;
        int src_eof = eof && fed == len;

        enum http_error err = HTTP_ERR_NONE;
        enum body_pump_result res =
            body_pump(&r, &src, src_eof, &dst, dst_limit, out_kind, NULL, NULL, &run->moved, &err);
        run->calls++;
        if (buffer_length(&dst) > run->max_dst)
            run->max_dst = buffer_length(&dst);
        buffer_append(&run->out, buffer_peek(&dst), buffer_length(&dst));
        buffer_consume(&dst, buffer_length(&dst));
        run->last = res;
        run->err = err;
        if (res == BODY_PUMP_DONE || res == BODY_PUMP_INVALID || res == BODY_PUMP_TRUNCATED)
            break;
        if (res == BODY_PUMP_IDLE && fed == len)
            break;
    }
    buffer_append(&run->left, buffer_peek(&src), buffer_length(&src));
    buffer_free(&src);
    buffer_free(&dst);
}

static void run_free(struct run *run)
{
    buffer_free(&run->out);
    buffer_free(&run->left);
}

/* ---- every framing in, every framing out ------------------------------- */

struct pair_case {
    enum http_body_kind in_kind;
    uint64_t length;
    const char *in;
    enum http_body_kind out_kind;
    const char *want; /* dst, byte for byte, when fed whole */
    const char *left; /* src after DONE */
    uint64_t moved;
};

static const struct pair_case pairs[] = {
    /* Content-Length in */
    {HTTP_BODY_LENGTH, 5, "helloNEXT", HTTP_BODY_LENGTH, "hello", "NEXT", 5},
    {HTTP_BODY_LENGTH, 5, "helloNEXT", HTTP_BODY_CHUNKED, "5\r\nhello\r\n0\r\n\r\n", "NEXT", 5},
    {HTTP_BODY_LENGTH, 5, "helloNEXT", HTTP_BODY_CLOSE, "hello", "NEXT", 5},
    {HTTP_BODY_LENGTH, 0, "NEXT", HTTP_BODY_LENGTH, "", "NEXT", 0},
    {HTTP_BODY_LENGTH, 0, "NEXT", HTTP_BODY_CHUNKED, "0\r\n\r\n", "NEXT", 0},
    /* chunked in: extensions dropped, sizes re-encoded, trailers kept only
     * for chunked out */
    {HTTP_BODY_CHUNKED, 0, "5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nNEXT",
     HTTP_BODY_CHUNKED, "5\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", "NEXT", 8},
    {HTTP_BODY_CHUNKED, 0, "5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nNEXT",
     HTTP_BODY_LENGTH, "helloabc", "NEXT", 8},
    {HTTP_BODY_CHUNKED, 0, "5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nNEXT",
     HTTP_BODY_CLOSE, "helloabc", "NEXT", 8},
    {HTTP_BODY_CHUNKED, 0, "00a\r\n0123456789\r\n0\r\n\r\n", HTTP_BODY_CHUNKED,
     "a\r\n0123456789\r\n0\r\n\r\n", "", 10},
    {HTTP_BODY_CHUNKED, 0, "0\r\n\r\n", HTTP_BODY_CHUNKED, "0\r\n\r\n", "", 0},
    {HTTP_BODY_CHUNKED, 0, "0\r\nA: 1\r\nB: 2\r\n\r\n", HTTP_BODY_CHUNKED,
     "0\r\nA: 1\r\nB: 2\r\n\r\n", "", 0},
    {HTTP_BODY_CHUNKED, 0, "0\r\nA: 1\r\n\r\n", HTTP_BODY_CLOSE, "", "", 0},
    /* ... less the fields no trailer may carry (RFC 9110 6.5.1) */
    {HTTP_BODY_CHUNKED, 0,
     "3\r\nabc\r\n0\r\nContent-Length: 9\r\nX-T: 1\r\ntransfer-encoding: chunked\r\n"
     "Host: evil.example\r\nSet-Cookie: a=b\r\nContent-Type: text/x\r\nX-U: 2\r\n\r\nNEXT",
     HTTP_BODY_CHUNKED, "3\r\nabc\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n", "NEXT", 3},
    {HTTP_BODY_CHUNKED, 0, "0\r\nTrailer: X\r\nIf-Match: *\r\n\r\n", HTTP_BODY_CHUNKED,
     "0\r\n\r\n", "", 0},
    /* until close in (src ends): every byte is body */
    {HTTP_BODY_CLOSE, 0, "hello world", HTTP_BODY_CHUNKED, "b\r\nhello world\r\n0\r\n\r\n", "",
     11},
    {HTTP_BODY_CLOSE, 0, "hello world", HTTP_BODY_CLOSE, "hello world", "", 11},
    {HTTP_BODY_CLOSE, 0, "hello world", HTTP_BODY_LENGTH, "hello world", "", 11},
    {HTTP_BODY_CLOSE, 0, "", HTTP_BODY_CHUNKED, "0\r\n\r\n", "", 0},
    /* no body at all */
    {HTTP_BODY_NONE, 0, "NEXT", HTTP_BODY_NONE, "", "NEXT", 0},
    {HTTP_BODY_NONE, 0, "NEXT", HTTP_BODY_CHUNKED, "0\r\n\r\n", "NEXT", 0},
};

static void test_pairs(void)
{
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const struct pair_case *c = &pairs[i];
        char name[160];
        struct run run;
        int eof = c->in_kind == HTTP_BODY_CLOSE;

        snprintf(name, sizeof name, "%s -> %s #%zu", kind_name(c->in_kind),
                 kind_name(c->out_kind), i);
        pump_all(c->in_kind, c->length, c->in, strlen(c->in), 0, eof, c->out_kind,
                 DST_LIMIT, &run);
        if (!ok(run.last == BODY_PUMP_DONE, "%s: done", name))
            printf("#   result %d, err %d\n", run.last, run.err);
        is_str(buffer_peek(&run.out), buffer_length(&run.out), c->want, name);
        is_str(buffer_peek(&run.left), buffer_length(&run.left), c->left,
               "  ... the bytes after the body stay in src");
        is_int(run.moved, c->moved, "  ... moved counts payload bytes only");
        run_free(&run);
    }
}

/* The same bodies arriving one byte at a time: the payload is the same,
 * only the chunking of the output may differ. */
static void test_byte_at_a_time(void)
{
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const struct pair_case *c = &pairs[i];
        struct run run;
        int eof = c->in_kind == HTTP_BODY_CLOSE;

        if (c->out_kind == HTTP_BODY_CHUNKED)
            continue; /* sizes depend on the split; see the decoding check below */
        pump_all(c->in_kind, c->length, c->in, strlen(c->in), 1, eof, c->out_kind,
                 DST_LIMIT, &run);
        ok(run.last == BODY_PUMP_DONE && buffer_length(&run.out) == strlen(c->want) &&
               memcmp(buffer_peek(&run.out), c->want, strlen(c->want)) == 0 &&
               run.moved == c->moved,
           "one byte at a time, %s -> %s #%zu: same payload", kind_name(c->in_kind),
           kind_name(c->out_kind), i);
        run_free(&run);
    }

    /* chunked -> chunked, byte by byte: decode our own output again and
     * compare payload and trailers. */
    const char *in = "5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n";
    struct run run, again;
    pump_all(HTTP_BODY_CHUNKED, 0, in, strlen(in), 1, 0, HTTP_BODY_CHUNKED,
             DST_LIMIT, &run);
    ok(run.last == BODY_PUMP_DONE, "chunked -> chunked byte by byte: done");
    pump_all(HTTP_BODY_CHUNKED, 0, buffer_peek(&run.out), buffer_length(&run.out), 0, 0,
             HTTP_BODY_CHUNKED, DST_LIMIT, &again);
    ok(again.last == BODY_PUMP_DONE, "  ... our output is valid chunked");
    struct run plain;
    pump_all(HTTP_BODY_CHUNKED, 0, buffer_peek(&run.out), buffer_length(&run.out), 0, 0,
             HTTP_BODY_CLOSE, DST_LIMIT, &plain);
    is_str(buffer_peek(&plain.out), buffer_length(&plain.out), "helloabc",
           "  ... with the same payload");
    size_t olen = buffer_length(&run.out);
    const char *tail = "0\r\nX-T: 1\r\n\r\n";
    ok(olen >= strlen(tail) &&
           memcmp(buffer_peek(&run.out) + olen - strlen(tail), tail, strlen(tail)) == 0,
       "  ... and the trailer at the end");
    run_free(&run);
    run_free(&again);
    run_free(&plain);
}

/* ---- results step by step --------------------------------------------- */

static void test_steps(void)
{
    struct body_reader r;
    struct buffer src, dst;
    uint64_t moved = 0;
    enum http_error err = HTTP_ERR_NONE;

    buffer_init(&src);
    buffer_init(&dst);

    reader(&r, HTTP_BODY_LENGTH, 5);
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_LENGTH, NULL, NULL, &moved, &err),
           BODY_PUMP_IDLE, "length: nothing buffered -> IDLE");
    buffer_append_str(&src, "he");
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_LENGTH, NULL, NULL, &moved, &err),
           BODY_PUMP_PROGRESS, "length: part of the body -> PROGRESS");
    is_int(r.remaining, 3, "  ... 3 bytes still to come");
    is_int(buffer_length(&src), 0, "  ... src consumed");
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_LENGTH, NULL, NULL, &moved, &err),
           BODY_PUMP_IDLE, "length: no new bytes -> IDLE");
    buffer_append_str(&src, "llo");
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_LENGTH, NULL, NULL, &moved, &err),
           BODY_PUMP_DONE, "length: the rest -> DONE");
    is_str(buffer_peek(&dst), buffer_length(&dst), "hello", "  ... dst has the body");
    is_int(moved, 5, "  ... moved 5");
    buffer_consume(&dst, buffer_length(&dst));

    /* close-delimited: only the peer's EOF ends it */
    moved = 0;
    reader(&r, HTTP_BODY_CLOSE, 0);
    buffer_append_str(&src, "abc");
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_CHUNKED, NULL, NULL, &moved, &err),
           BODY_PUMP_PROGRESS, "close -> chunked: bytes -> PROGRESS");
    is_str(buffer_peek(&dst), buffer_length(&dst), "3\r\nabc\r\n", "  ... one chunk out");
    buffer_consume(&dst, buffer_length(&dst));
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_CHUNKED, NULL, NULL, &moved, &err),
           BODY_PUMP_IDLE, "close: no bytes, no EOF -> IDLE");
    is_int(buffer_length(&dst), 0, "  ... and no empty chunk written");
    is_int(body_pump(&r, &src, 1, &dst, 1024, HTTP_BODY_CHUNKED, NULL, NULL, &moved, &err),
           BODY_PUMP_DONE, "close: EOF -> DONE");
    is_str(buffer_peek(&dst), buffer_length(&dst), "0\r\n\r\n", "  ... last chunk written");
    buffer_consume(&dst, buffer_length(&dst));

    /* chunked: a size line split over two calls */
    moved = 0;
    reader(&r, HTTP_BODY_CHUNKED, 0);
    buffer_append_str(&src, "1");
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_CHUNKED, NULL, NULL, &moved, &err),
           BODY_PUMP_IDLE, "chunked: half a size line -> IDLE");
    is_int(buffer_length(&src), 1, "  ... and the byte is kept");
    buffer_append_str(&src, "0\r\n");
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_CHUNKED, NULL, NULL, &moved, &err),
           BODY_PUMP_PROGRESS, "chunked: the size line completes -> PROGRESS");
    is_int(buffer_length(&src), 0, "  ... and is consumed");
    is_int(buffer_length(&dst), 0, "  ... though no data moved yet");
    buffer_append_str(&src, "0123456789abcdef\r\n0\r\n\r\n");
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_CHUNKED, NULL, NULL, &moved, &err),
           BODY_PUMP_DONE, "chunked: data and last chunk -> DONE");
    is_str(buffer_peek(&dst), buffer_length(&dst), "10\r\n0123456789abcdef\r\n0\r\n\r\n",
           "  ... re-encoded");
    buffer_consume(&dst, buffer_length(&dst));

    buffer_free(&src);
    buffer_free(&dst);
}

/* ---- backpressure ------------------------------------------------------ */

static void test_backpressure(void)
{
    struct body_reader r;
    struct buffer src, dst;
    uint64_t moved = 0;
    enum http_error err = HTTP_ERR_NONE;
    char chunk[128];
    size_t n = 0;

    buffer_init(&src);
    buffer_init(&dst);

    /* dst already full: nothing moves, src is untouched */
    reader(&r, HTTP_BODY_LENGTH, 4);
    buffer_append_str(&src, "data");
    buffer_append_str(&dst, "0123456789");
    is_int(body_pump(&r, &src, 0, &dst, 10, HTTP_BODY_LENGTH, NULL, NULL, &moved, &err),
           BODY_PUMP_IDLE, "dst at its limit -> IDLE");
    is_int(buffer_length(&src), 4, "  ... src untouched");
    is_int(buffer_length(&dst), 10, "  ... dst untouched");
    is_int(r.remaining, 4, "  ... nothing counted");
    buffer_consume(&dst, 10);
    is_int(body_pump(&r, &src, 0, &dst, 10, HTTP_BODY_LENGTH, NULL, NULL, &moved, &err),
           BODY_PUMP_DONE, "once dst drained, it continues -> DONE");
    is_str(buffer_peek(&dst), buffer_length(&dst), "data", "  ... with the body");
    buffer_consume(&dst, buffer_length(&dst));

    /* ten chunks of 100 bytes, dst limit 250: each call stops once dst is
     * full, leaving the rest of src for later */
    for (int i = 0; i < 10; i++) {
        n = (size_t)snprintf(chunk, sizeof chunk, "64\r\n");
        memset(chunk + n, 'a' + i, 100);
        n += 100;
        memcpy(chunk + n, "\r\n", 2);
        buffer_append(&src, chunk, n + 2);
    }
    buffer_append_str(&src, "0\r\n\r\n");
    moved = 0;
    reader(&r, HTTP_BODY_CHUNKED, 0);
    size_t before = buffer_length(&src);
    is_int(body_pump(&r, &src, 0, &dst, 250, HTTP_BODY_CLOSE, NULL, NULL, &moved, &err),
           BODY_PUMP_PROGRESS, "chunked, dst limit 250: first call -> PROGRESS");
    is_int(buffer_length(&dst), 300, "  ... stopped after the chunk that filled dst");
    is_int(before - buffer_length(&src), 104 + 106 + 106, "  ... the rest stays in src");
    is_int(body_pump(&r, &src, 0, &dst, 250, HTTP_BODY_CLOSE, NULL, NULL, &moved, &err),
           BODY_PUMP_IDLE, "  ... called again while dst is full -> IDLE");
    is_int(buffer_length(&dst), 300, "  ... dst unchanged");

    struct buffer all;
    buffer_init(&all);
    enum body_pump_result res = BODY_PUMP_PROGRESS;
    int calls = 0, bounded = 1;
    while (res == BODY_PUMP_PROGRESS || res == BODY_PUMP_IDLE) {
        buffer_append(&all, buffer_peek(&dst), buffer_length(&dst));
        buffer_consume(&dst, buffer_length(&dst));
        res = body_pump(&r, &src, 0, &dst, 250, HTTP_BODY_CLOSE, NULL, NULL, &moved, &err);
        if (buffer_length(&dst) > 250 + 100)
            bounded = 0;
        if (++calls > 100)
            break;
    }
    buffer_append(&all, buffer_peek(&dst), buffer_length(&dst));
    buffer_consume(&dst, buffer_length(&dst));
    is_int(res, BODY_PUMP_DONE, "draining dst between calls reaches DONE");
    ok(bounded, "  ... dst never held more than the limit plus one chunk");
    ok(calls >= 3, "  ... over several calls (%d)", calls);
    is_int(buffer_length(&all), 1000, "  ... all 1000 bytes arrived");
    int in_order = buffer_length(&all) == 1000;
    for (size_t i = 0; in_order && i < 1000; i++)
        if (buffer_peek(&all)[i] != (char)('a' + i / 100))
            in_order = 0;
    ok(in_order, "  ... in order");
    is_int(moved, 1000, "  ... moved 1000");
    is_int(buffer_length(&src), 0, "  ... src fully consumed");
    buffer_free(&all);

    /* The whole run with the driver: a small limit, large body */
    static char big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    struct run run;
    pump_all(HTTP_BODY_LENGTH, sizeof big, big, sizeof big, 4096, 0, HTTP_BODY_CHUNKED, 1000,
             &run);
    ok(run.last == BODY_PUMP_DONE && run.moved == sizeof big,
       "200000 bytes through a 1000-byte dst limit, fed 4096 at a time");
    ok(run.max_dst <= 1000 + 4096 + 16, "  ... dst held at most limit + one piece (%zu)",
       run.max_dst);
    struct run back;
    pump_all(HTTP_BODY_CHUNKED, 0, buffer_peek(&run.out), buffer_length(&run.out), 0, 0,
             HTTP_BODY_CLOSE, 1 << 20, &back);
    ok(back.last == BODY_PUMP_DONE && buffer_length(&back.out) == sizeof big &&
           memcmp(buffer_peek(&back.out), big, sizeof big) == 0,
       "  ... and decodes back to the same bytes");
    run_free(&run);
    run_free(&back);

    buffer_free(&src);
    buffer_free(&dst);
}

/* ---- truncation and invalid framing ----------------------------------- */

struct bad_case {
    enum http_body_kind in_kind;
    uint64_t length;
    const char *in;
    enum body_pump_result want;
    enum http_error err;   /* for INVALID */
    const char *moved_out; /* dst (close framing out) before the verdict */
    const char *name;
};

static const struct bad_case bads[] = {
    {HTTP_BODY_LENGTH, 10, "hello", BODY_PUMP_TRUNCATED, HTTP_ERR_NONE, "hello",
     "length: EOF 5 bytes short"},
    {HTTP_BODY_LENGTH, 1, "", BODY_PUMP_TRUNCATED, HTTP_ERR_NONE, "", "length: EOF at once"},
    {HTTP_BODY_CHUNKED, 0, "5\r\nhel", BODY_PUMP_TRUNCATED, HTTP_ERR_NONE, "hel",
     "chunked: EOF inside chunk data"},
    {HTTP_BODY_CHUNKED, 0, "5\r\nhello\r\n", BODY_PUMP_TRUNCATED, HTTP_ERR_NONE, "hello",
     "chunked: EOF before the last chunk"},
    {HTTP_BODY_CHUNKED, 0, "5\r\nhello\r\n0\r\n", BODY_PUMP_TRUNCATED, HTTP_ERR_NONE, "hello",
     "chunked: EOF inside the trailer section"},
    {HTTP_BODY_CHUNKED, 0, "5\r", BODY_PUMP_TRUNCATED, HTTP_ERR_NONE, "",
     "chunked: EOF inside a size line"},
    {HTTP_BODY_CHUNKED, 0, "zz\r\n", BODY_PUMP_INVALID, HTTP_ERR_CHUNK_SIZE, "",
     "chunked: non-hex size"},
    {HTTP_BODY_CHUNKED, 0, "-1\r\n", BODY_PUMP_INVALID, HTTP_ERR_CHUNK_SIZE, "",
     "chunked: signed size"},
    {HTTP_BODY_CHUNKED, 0, "11111111111111111\r\n", BODY_PUMP_INVALID, HTTP_ERR_CHUNK_SIZE,
     "", "chunked: 17 hex digits"},
    {HTTP_BODY_CHUNKED, 0, "3\r\nabcX", BODY_PUMP_INVALID, HTTP_ERR_CHUNK_FRAMING, "abc",
     "chunked: no CRLF after the data"},
    {HTTP_BODY_CHUNKED, 0, "3\nabc\r\n", BODY_PUMP_INVALID, HTTP_ERR_CHUNK_FRAMING, "",
     "chunked: bare LF after the size"},
    {HTTP_BODY_CHUNKED, 0, "0\r\nBad Name: x\r\n\r\n", BODY_PUMP_INVALID, HTTP_ERR_TRAILER, "",
     "chunked: malformed trailer"},
};

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const struct bad_case *c = &bads[i];
        struct run run;
        pump_all(c->in_kind, c->length, c->in, strlen(c->in), 0, 1, HTTP_BODY_CLOSE,
                 DST_LIMIT, &run);
        if (!ok(run.last == c->want, "%s: %s", c->name,
                c->want == BODY_PUMP_TRUNCATED ? "TRUNCATED" : "INVALID"))
            printf("#   result %d\n", run.last);
        if (c->want == BODY_PUMP_INVALID)
            is_int(run.err, c->err, "  ... with the decoder's reason");
        is_str(buffer_peek(&run.out), buffer_length(&run.out), c->moved_out,
               "  ... after passing on what was valid");
        run_free(&run);

        /* The same split in single bytes gives the same verdict. */
        pump_all(c->in_kind, c->length, c->in, strlen(c->in), 1, 1, HTTP_BODY_CLOSE,
                 DST_LIMIT, &run);
        ok(run.last == c->want, "  ... the same one byte at a time");
        run_free(&run);
    }

    /* Without EOF an incomplete body is simply waiting, not truncated. */
    struct run run;
    pump_all(HTTP_BODY_LENGTH, 10, "hello", 5, 0, 0, HTTP_BODY_CLOSE, DST_LIMIT,
             &run);
    is_int(run.last, BODY_PUMP_IDLE, "length: short without EOF -> waits (IDLE)");
    run_free(&run);
    pump_all(HTTP_BODY_CHUNKED, 0, "5\r\nhel", 7, 0, 0, HTTP_BODY_CLOSE,
             DST_LIMIT, &run);
    is_int(run.last, BODY_PUMP_IDLE, "chunked: short without EOF -> waits (IDLE)");
    run_free(&run);
}

/* ---- the filter hook --------------------------------------------------- */

struct upper {
    int pieces, eofs;
    int fail_at; /* piece number that fails, 0 for never */
};

static int upper_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                        enum http_body_kind out_kind)
{
    struct upper *u = arg;
    char tmp[256];
    if (eof) {
        u->eofs++;
        return 0;
    }
    if (++u->pieces == u->fail_at)
        return -1;
    for (size_t i = 0; i < len && i < sizeof tmp; i++)
        tmp[i] = (data[i] >= 'a' && data[i] <= 'z') ? (char)(data[i] - 32) : data[i];
    return body_write_data(out, out_kind, tmp, len < sizeof tmp ? len : sizeof tmp);
}

static void test_filter(void)
{
    struct body_reader r;
    struct buffer src, dst;
    uint64_t moved = 0;
    enum http_error err;
    struct upper u = {0, 0, 0};

    buffer_init(&src);
    buffer_init(&dst);
    reader(&r, HTTP_BODY_CHUNKED, 0);
    buffer_append_str(&src, "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n");
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_CHUNKED, upper_filter, &u, &moved,
                     &err),
           BODY_PUMP_DONE, "filter: done");
    is_str(buffer_peek(&dst), buffer_length(&dst), "5\r\nHELLO\r\n3\r\nABC\r\n0\r\n\r\n",
           "  ... its output is what is sent, framed");
    is_int(u.pieces, 2, "  ... called once per decoded piece");
    is_int(u.eofs, 1, "  ... and once with eof at the end");
    is_int(moved, 8, "  ... moved counts the decoded payload");
    buffer_consume(&dst, buffer_length(&dst));

    struct upper f = {0, 0, 2};
    reader(&r, HTTP_BODY_CHUNKED, 0);
    buffer_append_str(&src, "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n");
    is_int(body_pump(&r, &src, 0, &dst, 1024, HTTP_BODY_CHUNKED, upper_filter, &f, &moved,
                     &err),
           BODY_PUMP_FILTER_FAILED, "a failing filter fails the transfer (FILTER_FAILED)");
    buffer_free(&src);
    buffer_free(&dst);
}

/* ---- small chunks gathered for a filter ---------------------------------- */

/* A filter that keeps what it gets, counts its calls, and waits (returns 1)
 * on the call numbered <wait_at>. */
struct keeper {
    struct buffer got;
    int pieces, eofs, wait_at;
    size_t largest;
    int wait_eof; /* the eof call waits too */
};

static int keep_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                       enum http_body_kind out_kind)
{
    struct keeper *k = arg;
    (void)out;
    (void)out_kind;
    if (eof) {
        k->eofs++;
        return k->wait_eof;
    }
    k->pieces++;
    if (len > k->largest)
        k->largest = len;
    buffer_append(&k->got, data, len);
    return k->pieces == k->wait_at ? 1 : 0;
}

/* <n> chunks of <size> bytes ('a' + i % 26 for chunk i), chunked. */
static void put_chunks(struct buffer *src, struct buffer *plain, int n, size_t size)
{
    char *c = malloc(size);
    for (int i = 0; i < n; i++) {
        memset(c, 'a' + i % 26, size);
        buffer_printf(src, "%zx\r\n", size);
        buffer_append(src, c, size);
        buffer_append(src, "\r\n", 2);
        buffer_append(plain, c, size);
    }
    free(c);
}

static void test_batch(void)
{
    struct body_reader r;
    struct buffer src, dst, batch, plain;
    uint64_t moved = 0;
    enum http_error err;
    struct keeper k = {{0}, 0, 0, 0, 0, 0};

    buffer_init(&src);
    buffer_init(&dst);
    buffer_init(&batch);
    buffer_init(&plain);
    buffer_init(&k.got);

    /* 200 chunks of 1000 bytes, all buffered, and the end. */
    reader(&r, HTTP_BODY_CHUNKED, 0);
    r.batch = &batch;
    put_chunks(&src, &plain, 200, 1000);
    buffer_append_str(&src, "0\r\n\r\n");
    is_int(body_pump(&r, &src, 0, &dst, DST_LIMIT, HTTP_BODY_CHUNKED, keep_filter, &k, &moved,
                     &err),
           BODY_PUMP_DONE, "batch: done");
    is_int(k.pieces, 2, "  ... 200 small chunks reach the filter as 2 pieces");
    is_int(k.largest, (BODY_BATCH_MIN + 999) / 1000 * 1000,
           "  ... the first once the batch reached BODY_BATCH_MIN");
    ok(buffer_length(&k.got) == buffer_length(&plain) &&
           memcmp(buffer_peek(&k.got), buffer_peek(&plain), buffer_length(&plain)) == 0,
       "  ... the bytes whole and in order");
    is_int(k.eofs, 1, "  ... then the eof call");
    is_int(moved, 200000, "  ... moved counts them all");
    is_int(buffer_length(&batch), 0, "  ... the batch is empty");

    /* What is buffered goes before the pump returns for more. */
    buffer_free(&k.got);
    k = (struct keeper){{0}, 0, 0, 0, 0, 0};
    buffer_consume(&plain, buffer_length(&plain));
    reader(&r, HTTP_BODY_CHUNKED, 0);
    r.batch = &batch;
    put_chunks(&src, &plain, 3, 10);
    buffer_append_str(&src, "a\r\nxyz");
    is_int(body_pump(&r, &src, 0, &dst, DST_LIMIT, HTTP_BODY_CHUNKED, keep_filter, &k, &moved,
                     &err),
           BODY_PUMP_PROGRESS, "batch: input runs out");
    is_int(k.pieces, 1, "  ... the gathered chunks go as one piece, not held back");
    is_int(buffer_length(&k.got), 33, "  ... with the part of the chunk that came");

    /* A large chunk alone is passed on from the input; behind small ones
     * it joins them. */
    buffer_free(&k.got);
    k = (struct keeper){{0}, 0, 0, 0, 0, 0};
    buffer_consume(&src, buffer_length(&src));
    buffer_consume(&plain, buffer_length(&plain));
    reader(&r, HTTP_BODY_CHUNKED, 0);
    r.batch = &batch;
    put_chunks(&src, &plain, 1, BODY_BATCH_MIN);
    put_chunks(&src, &plain, 2, 100);
    put_chunks(&src, &plain, 1, BODY_BATCH_MIN);
    buffer_append_str(&src, "0\r\n\r\n");
    is_int(body_pump(&r, &src, 0, &dst, 4 * BODY_BATCH_MIN, HTTP_BODY_CHUNKED, keep_filter, &k,
                     &moved, &err),
           BODY_PUMP_DONE, "batch: large and small chunks");
    is_int(k.pieces, 2, "  ... the large one alone, then the small ones with the next");
    is_int(k.largest, BODY_BATCH_MIN + 200, "  ... which joined them");
    ok(buffer_length(&k.got) == buffer_length(&plain) &&
           memcmp(buffer_peek(&k.got), buffer_peek(&plain), buffer_length(&plain)) == 0,
       "  ... in order");

    /* The filter waits on the batch that ends the body: the eof call and
     * the end come on the next pump. */
    buffer_free(&k.got);
    k = (struct keeper){{0}, 0, 0, 1, 0, 0};
    buffer_consume(&dst, buffer_length(&dst));
    reader(&r, HTTP_BODY_CHUNKED, 0);
    r.batch = &batch;
    put_chunks(&src, &plain, 2, 5);
    buffer_append_str(&src, "0\r\n\r\n");
    is_int(body_pump(&r, &src, 0, &dst, DST_LIMIT, HTTP_BODY_CHUNKED, keep_filter, &k, &moved,
                     &err),
           BODY_PUMP_PAUSED, "batch: the filter waits on the last piece");
    is_int(k.eofs, 0, "  ... no eof call yet");
    is_int(buffer_length(&src), 0, "  ... the input is consumed");
    is_int(body_pump(&r, &src, 0, &dst, DST_LIMIT, HTTP_BODY_CHUNKED, keep_filter, &k, &moved,
                     &err),
           BODY_PUMP_DONE, "  ... and the next pump ends the body");
    is_int(k.eofs, 1, "  ... with the eof call");
    is_str(buffer_peek(&dst), buffer_length(&dst), "0\r\n\r\n", "  ... and the last chunk");

    /* The trailers of a body whose end waits for the filter are kept
     * across the wait: on the batch that ends the body, then on the eof
     * call too. */
    static const char trailers[] = "0\r\nX-Sum: abc\r\nX-Other: 1\r\n\r\n";
    for (int wait_eof = 0; wait_eof <= 1; wait_eof++) {
        buffer_free(&k.got);
        k = (struct keeper){{0}, 0, 0, 1, 0, wait_eof};
        buffer_consume(&dst, buffer_length(&dst));
        reader(&r, HTTP_BODY_CHUNKED, 0);
        r.batch = &batch;
        put_chunks(&src, &plain, 2, 5);
        buffer_append_str(&src, trailers);
        is_int(body_pump(&r, &src, 0, &dst, DST_LIMIT, HTTP_BODY_CHUNKED, keep_filter, &k,
                         &moved, &err),
               BODY_PUMP_PAUSED, "trailers: the filter waits on the last piece");
        is_int(buffer_length(&src), 0, "  ... the input, trailers too, is consumed");
        if (wait_eof)
            is_int(body_pump(&r, &src, 0, &dst, DST_LIMIT, HTTP_BODY_CHUNKED, keep_filter, &k,
                             &moved, &err),
                   BODY_PUMP_PAUSED, "  ... then on the eof call");
        buffer_consume(&dst, buffer_length(&dst));
        is_int(body_pump(&r, &src, 0, &dst, DST_LIMIT, HTTP_BODY_CHUNKED, keep_filter, &k,
                         &moved, &err),
               BODY_PUMP_DONE, "  ... and the next pump ends the body");
        is_str(buffer_peek(&dst), buffer_length(&dst), trailers,
               wait_eof ? "  ... with the trailers, kept across both waits"
                        : "  ... with the trailers, kept across the wait");
        is_int(buffer_length(&batch), 0, "  ... and the batch empty again");
    }
    /* The filter waits on the eof call of a body without a batch left. */
    buffer_free(&k.got);
    k = (struct keeper){{0}, 0, 0, 0, 0, 1};
    buffer_consume(&dst, buffer_length(&dst));
    reader(&r, HTTP_BODY_CHUNKED, 0);
    r.batch = &batch;
    put_chunks(&src, &plain, 1, BODY_BATCH_MIN);
    buffer_append_str(&src, trailers);
    is_int(body_pump(&r, &src, 0, &dst, 4 * BODY_BATCH_MIN, HTTP_BODY_CHUNKED, keep_filter, &k,
                     &moved, &err),
           BODY_PUMP_PAUSED, "trailers: the filter waits on the eof call after a large chunk");
    buffer_consume(&dst, buffer_length(&dst));
    is_int(body_pump(&r, &src, 0, &dst, DST_LIMIT, HTTP_BODY_CHUNKED, keep_filter, &k, &moved,
                     &err),
           BODY_PUMP_DONE, "  ... the next pump ends the body");
    is_str(buffer_peek(&dst), buffer_length(&dst), trailers, "  ... with the trailers");

    /* Without a batch buffer, every chunk is a call. */
    buffer_free(&k.got);
    k = (struct keeper){{0}, 0, 0, 0, 0, 0};
    reader(&r, HTTP_BODY_CHUNKED, 0);
    put_chunks(&src, &plain, 5, 10);
    buffer_append_str(&src, "0\r\n\r\n");
    body_pump(&r, &src, 0, &dst, DST_LIMIT, HTTP_BODY_CHUNKED, keep_filter, &k, &moved, &err);
    is_int(k.pieces, 5, "no batch buffer: one call per chunk");

    buffer_free(&k.got);
    buffer_free(&src);
    buffer_free(&dst);
    buffer_free(&batch);
    buffer_free(&plain);
}

/* ---- the encoders ------------------------------------------------------ */

static void test_write(void)
{
    struct buffer out;
    buffer_init(&out);
    is_int(body_write_data(&out, HTTP_BODY_CHUNKED, "", 0), 0, "write_data of nothing");
    is_int(buffer_length(&out), 0, "  ... writes nothing (no premature last chunk)");
    body_write_data(&out, HTTP_BODY_CHUNKED, "0123456789abcdef!", 17);
    is_str(buffer_peek(&out), buffer_length(&out), "11\r\n0123456789abcdef!\r\n",
           "chunk size in hex");
    buffer_consume(&out, buffer_length(&out));
    body_write_data(&out, HTTP_BODY_LENGTH, "abc", 3);
    body_write_data(&out, HTTP_BODY_CLOSE, "def", 3);
    is_str(buffer_peek(&out), buffer_length(&out), "abcdef", "length and close: raw bytes");
    buffer_consume(&out, buffer_length(&out));
    body_write_end(&out, HTTP_BODY_LENGTH, "X: 1\r\n", 6);
    body_write_end(&out, HTTP_BODY_CLOSE, "X: 1\r\n", 6);
    is_int(buffer_length(&out), 0, "write_end: nothing for length and close");
    body_write_end(&out, HTTP_BODY_CHUNKED, "X: 1\r\n", 6);
    is_str(buffer_peek(&out), buffer_length(&out), "0\r\nX: 1\r\n\r\n",
           "write_end: last chunk, trailers, empty line");
    buffer_consume(&out, buffer_length(&out));
    {
        static const char section[] = "Content-Length: 5\r\nA: 1\r\nAuthorization: Basic x\r\n"
                                      "B:2\r\nLocation: http://evil/\r\n";
        body_write_end(&out, HTTP_BODY_CHUNKED, section, sizeof section - 1);
        is_str(buffer_peek(&out), buffer_length(&out), "0\r\nA: 1\r\nB:2\r\n\r\n",
               "write_end: the fields no trailer may carry are dropped, the rest kept in order");
        buffer_consume(&out, buffer_length(&out));
        body_write_end(&out, HTTP_BODY_CHUNKED, section, 19);
        is_str(buffer_peek(&out), buffer_length(&out), "0\r\n\r\n",
               "write_end: a section of dropped fields only ends empty");
    }
    buffer_free(&out);
}

/* ---- writing a piece straight to the peer ------------------------------- */

/* A peer that takes <take> bytes of what it is offered, and keeps them. */
struct fake_peer {
    size_t take;
    struct buffer got;
    int calls;
};

static size_t fake_send(void *arg, const struct iovec *iov, int iovcnt)
{
    struct fake_peer *p = arg;
    size_t left = p->take, sent = 0;
    p->calls++;
    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
        buffer_append(&p->got, iov[i].iov_base, n);
        left -= n;
        sent += n;
    }
    return sent;
}

/* Sends a 20000-byte piece chunked to a peer taking <take> bytes: what it
 * took followed by what was queued must be the whole framed piece. */
static void check_direct(size_t take, const char *what)
{
    struct fake_peer peer = {take, {0}, 0};
    struct buffer out, whole;
    struct body_direct d = {&out, fake_send, &peer};
    char *data = malloc(20000);

    for (size_t i = 0; i < 20000; i++)
        data[i] = (char)('a' + i % 26);
    buffer_init(&out);
    buffer_init(&whole);
    buffer_init(&peer.got);
    body_write_data(&whole, HTTP_BODY_CHUNKED, data, 20000);
    is_int(body_write_data_direct(&d, &out, HTTP_BODY_CHUNKED, data, 20000), 0, what);
    is_int(peer.calls, 1, "  ... one gathered write");
    is_int(buffer_length(&peer.got), take < buffer_length(&whole) ? take : buffer_length(&whole),
           "  ... the peer got what it took");
    buffer_append(&peer.got, buffer_peek(&out), buffer_length(&out));
    ok(buffer_length(&peer.got) == buffer_length(&whole) &&
           memcmp(buffer_peek(&peer.got), buffer_peek(&whole), buffer_length(&whole)) == 0,
       "  ... and the rest is queued in order");
    free(data);
    buffer_free(&out);
    buffer_free(&whole);
    buffer_free(&peer.got);
}

static void test_direct(void)
{
    struct fake_peer peer = {1 << 20, {0}, 0};
    struct buffer out, other;
    struct body_direct d = {&out, fake_send, &peer};
    char big[BODY_DIRECT_MIN];

    check_direct(1 << 20, "direct: the peer takes the whole piece");
    check_direct(0, "direct: the peer takes nothing");
    check_direct(3, "direct: the peer stops inside the size line");
    check_direct(5000, "direct: the peer stops inside the data");
    check_direct(20000 + 6 + 1, "direct: the peer stops inside the CRLF");

    memset(big, 'x', sizeof big);
    buffer_init(&out);
    buffer_init(&other);
    buffer_init(&peer.got);
    body_write_data_direct(&d, &out, HTTP_BODY_LENGTH, big, sizeof big - 1);
    is_int(peer.calls, 0, "direct: a small piece is queued");
    body_write_data_direct(&d, &out, HTTP_BODY_LENGTH, big, sizeof big);
    is_int(peer.calls, 0, "direct: nothing passes what is queued already");
    is_int(buffer_length(&out), 2 * sizeof big - 1, "  ... it queues behind it");
    body_write_data_direct(&d, &other, HTTP_BODY_LENGTH, big, sizeof big);
    is_int(peer.calls, 0, "direct: only for its own buffer");
    buffer_consume(&out, buffer_length(&out));
    body_write_data_direct(&d, &out, HTTP_BODY_LENGTH, big, sizeof big);
    is_int(peer.calls == 1 && buffer_length(&peer.got) == sizeof big && buffer_length(&out) == 0,
           1, "direct: by length, the bytes alone");
    buffer_free(&out);
    buffer_free(&other);
    buffer_free(&peer.got);
}

int main(void)
{
    /* guarded_copy is for parsers; body_pump reads only through buffers. */
    (void)guarded_copy;
    test_pairs();
    test_byte_at_a_time();
    test_steps();
    test_backpressure();
    test_bad();
    test_filter();
    test_write();
    test_direct();
    test_batch();
    return tap_done();
}
