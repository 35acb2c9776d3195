/*
 * fuzz_chunked.c - libFuzzer target for chunked_decode().
 *
 * The input is a chunked body (and whatever follows it). It is decoded
 * twice the way the relay does it: whole, and in small pieces whose sizes
 * come from the first input bytes, keeping the unconsumed bytes and
 * appending the next piece to them. Invariants:
 *   - every call consumes at most what it was given, a DATA span is
 *     non-empty and lies inside the consumed bytes, DONE's trailers too;
 *   - both runs end the same way (DONE / ERROR with the same reason /
 *     NEED_MORE), with the same decoded bytes, the same trailers and, when
 *     not failed, the same number of bytes consumed (where the body ends);
 *   - a failed decoder stays failed; a finished one consumes nothing more;
 *   - the trailers form a valid field section;
 *   - a finished body re-encoded as one chunk plus the trailers decodes to
 *     the same bytes and trailers, consuming exactly the encoding.
 * Every call sees its bytes at the end of an exact-size allocation, so
 * AddressSanitizer catches a read past what the caller buffered.
 */
#include <stdint.h>
#include <stdlib.h>

#include "chunked.h"
#include "fuzz_util.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    struct chunked_decoder dec;
    enum chunked_result end; /* NEED_MORE while running */
    enum http_error err;     /* the first error */
    size_t consumed;         /* bytes consumed in total */
    struct fuzz_str body;    /* decoded data */
    struct fuzz_str trailers;
    const char *base;    /* whole run: the input, and which of its bytes */
    unsigned char *mask; /* were reported as data (1) rather than framing */
};

static void run_init(struct run *r)
{
    memset(r, 0, sizeof(*r));
    chunked_init(&r->dec);
    r->end = CHUNKED_RESULT_NEED_MORE;
}

static void run_free(struct run *r)
{
    free(r->body.s);
    free(r->trailers.s);
}

/*
 * Feeds <in>[0, <len>) (the caller's unconsumed bytes) like the relay's body
 * pump: DATA is taken and the loop goes on, NEED_MORE consumes and waits for
 * more, DONE and ERROR end the body. Returns the bytes consumed from <in>.
 */
static size_t drive(struct run *r, const char *in, size_t len)
{
    size_t off = 0;

    while (r->end == CHUNKED_RESULT_NEED_MORE) {
        const char *p = off < len ? in + off : NULL; /* an empty buffer has no bytes */
        size_t avail = len - off, consumed = 99999;
        const char *d = (const char *)1;
        size_t dl = 99999;
        enum http_error err = (enum http_error)-1;
        enum chunked_result res = chunked_decode(&r->dec, p, avail, &consumed, &d, &dl, &err);

        FUZZ_CHECK(consumed <= avail, "consumed %zu of %zu", consumed, avail);
        switch (res) {
        case CHUNKED_RESULT_DATA:
            FUZZ_CHECK(err == HTTP_ERR_NONE, "DATA with err %d", err);
            FUZZ_CHECK(dl > 0 && fuzz_inside(d, dl, p, consumed),
                       "DATA span of %zu not inside the %zu consumed bytes", dl, consumed);
            fuzz_put(&r->body, d, dl);
            if (r->mask)
                memset(r->mask + (d - r->base), 1, dl);
            break;
        case CHUNKED_RESULT_NEED_MORE:
            FUZZ_CHECK(err == HTTP_ERR_NONE, "NEED_MORE with err %d", err);
            FUZZ_CHECK(dl == 0, "NEED_MORE with data");
            r->consumed += consumed;
            off += consumed;
            /* the same bytes again are still not enough, and nothing is
             * consumed twice */
            p = off < len ? in + off : NULL;
            res = chunked_decode(&r->dec, p, len - off, &consumed, &d, &dl, &err);
            FUZZ_CHECK(res == CHUNKED_RESULT_NEED_MORE && consumed == 0,
                       "NEED_MORE, then %d with %zu consumed on the same bytes", res, consumed);
            return off;
        case CHUNKED_RESULT_DONE:
            FUZZ_CHECK(err == HTTP_ERR_NONE, "DONE with err %d", err);
            FUZZ_CHECK(dl == 0 || fuzz_inside(d, dl, p, consumed),
                       "trailers of %zu not inside the %zu consumed bytes", dl, consumed);
            FUZZ_CHECK(consumed >= dl + 2, "DONE consumed %zu with %zu of trailers", consumed,
                       dl);
            fuzz_put(&r->trailers, d, dl);
            r->end = res;
            break;
        case CHUNKED_RESULT_ERROR:
            FUZZ_CHECK(err == HTTP_ERR_CHUNK_SIZE || err == HTTP_ERR_CHUNK_FRAMING ||
                           err == HTTP_ERR_TRAILER,
                       "ERROR with err %d", err);
            r->err = err;
            r->end = res;
            break;
        default:
            FUZZ_CHECK(0, "result %d", res);
        }
        r->consumed += consumed;
        off += consumed;
    }

    /* the end is sticky */
    size_t consumed;
    const char *d;
    size_t dl;
    enum http_error err;
    const char *p = off < len ? in + off : NULL;
    enum chunked_result res = chunked_decode(&r->dec, p, len - off, &consumed, &d, &dl, &err);
    FUZZ_CHECK(res == r->end, "after %d, another call gave %d", r->end, res);
    FUZZ_CHECK(consumed == 0, "%zu consumed after the end", consumed);
    if (res == CHUNKED_RESULT_DONE)
        FUZZ_CHECK(dl == 0, "trailers again after DONE");
    return off;
}

/*
 * The framing bytes (everything consumed that was not reported as data)
 * are lines that end in CRLF: no bare CR, no bare LF, no NUL. Checked
 * independently of the decoder, since a split test cannot see a decoder
 * that consistently accepts a bare LF.
 */
static void check_framing_bytes(const char *in, const unsigned char *mask, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (mask[i])
            continue;
        unsigned char c = (unsigned char)in[i];
        FUZZ_CHECK(c != 0, "NUL in framing at %zu", i);
        if (c == '\r')
            FUZZ_CHECK(i + 1 < n && !mask[i + 1] && in[i + 1] == '\n',
                       "bare CR in framing at %zu", i);
        if (c == '\n')
            FUZZ_CHECK(i > 0 && !mask[i - 1] && in[i - 1] == '\r', "bare LF in framing at %zu",
                       i);
    }
}

static void decode_whole(struct run *r, const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup(data, size);
    run_init(r);
    r->base = buf;
    r->mask = calloc(size ? size : 1, 1);
    if (r->mask == NULL)
        abort();
    drive(r, buf, size);
    check_framing_bytes(buf, r->mask, r->consumed);
    free(r->mask);
    r->mask = NULL;
    free(buf);
}

/* Pieces of 1 .. 2^k bytes from a small generator seeded with the first
 * input bytes; the unconsumed bytes are kept and the next piece appended,
 * and each call sees them in a fresh exact-size block. */
static void decode_pieces(struct run *r, const uint8_t *data, size_t size, int one_byte)
{
    uint32_t x = 0x9e3779b9u;
    for (size_t i = 0; i < size && i < 4; i++)
        x = (x ^ data[i]) * 16777619u;
    unsigned max = 1u << (x % 7); /* 1 .. 64 */

    struct fuzz_str pending = {0};
    size_t at = 0;
    run_init(r);
    while (at < size && r->end == CHUNKED_RESULT_NEED_MORE) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t piece = one_byte ? 1 : 1 + x % max;
        if (piece > size - at)
            piece = size - at;
        fuzz_put(&pending, data + at, piece);
        at += piece;

        char *copy = fuzz_dup(pending.s, pending.len);
        size_t used = drive(r, copy, pending.len);
        free(copy);
        memmove(pending.s, pending.s + used, pending.len - used);
        pending.len -= used;
    }
    free(pending.s);
}

/* <b> decoded the same body as <a>; with <same_bytes>, from the same input,
 * so it must also have stopped at the same place. */
static void same_run(const struct run *a, const struct run *b, const char *what,
                     int same_bytes)
{
    FUZZ_CHECK(a->end == b->end, "%s: ended with %d, whole with %d", what, b->end, a->end);
    FUZZ_CHECK(a->err == b->err, "%s: err %d, whole %d", what, b->err, a->err);
    FUZZ_CHECK(fuzz_view_eq(a->body.s, a->body.len, b->body.s, b->body.len),
               "%s: decoded %zu bytes, whole %zu (or different bytes)", what, b->body.len,
               a->body.len);
    FUZZ_CHECK(fuzz_view_eq(a->trailers.s, a->trailers.len, b->trailers.s, b->trailers.len),
               "%s: trailers differ", what);
    if (same_bytes && a->end != CHUNKED_RESULT_ERROR)
        FUZZ_CHECK(a->consumed == b->consumed, "%s: consumed %zu, whole %zu", what,
                   b->consumed, a->consumed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole, pieces;

    decode_whole(&whole, data, size);
    if (whole.end == CHUNKED_RESULT_DONE)
        FUZZ_CHECK(whole.consumed <= size, "consumed %zu of %zu", whole.consumed, size);

    decode_pieces(&pieces, data, size, 0);
    same_run(&whole, &pieces, "in pieces", 1);
    run_free(&pieces);
    if (size <= 2048) {
        decode_pieces(&pieces, data, size, 1);
        same_run(&whole, &pieces, "byte by byte", 1);
        run_free(&pieces);
    }

    if (whole.end == CHUNKED_RESULT_DONE) {
        /* the trailers are a field section of their own */
        struct fuzz_str t = {0};
        fuzz_put(&t, whole.trailers.s, whole.trailers.len);
        fuzz_puts(&t, "\r\n");
        char *tc = fuzz_dup(t.s, t.len);
        enum http_error err;
        ssize_t n = http_parse_fields(tc, t.len, &err);
        FUZZ_CHECK(n == (ssize_t)t.len, "trailers (%zu bytes) parse as %zd (err %d)", t.len, n,
                   err);
        free(tc);
        free(t.s);

        /* re-encoded as one chunk, the body decodes to the same */
        struct fuzz_str enc = {0};
        if (whole.body.len) {
            char line[32];
            snprintf(line, sizeof(line), "%zx\r\n", whole.body.len);
            fuzz_puts(&enc, line);
            fuzz_put(&enc, whole.body.s, whole.body.len);
            fuzz_puts(&enc, "\r\n");
        }
        fuzz_puts(&enc, "0\r\n");
        fuzz_put(&enc, whole.trailers.s, whole.trailers.len);
        fuzz_puts(&enc, "\r\n");
        struct run again;
        decode_whole(&again, (const uint8_t *)enc.s, enc.len);
        FUZZ_CHECK(again.end == CHUNKED_RESULT_DONE, "re-encoded body ended with %d (err %d)",
                   again.end, again.err);
        FUZZ_CHECK(again.consumed == enc.len, "re-encoded body: consumed %zu of %zu",
                   again.consumed, enc.len);
        same_run(&whole, &again, "re-encoded", 0);
        run_free(&again);
        free(enc.s);
    }
    run_free(&whole);
    return 0;
}
