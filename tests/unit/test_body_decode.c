/*
 * test_body_decode.c - unit tests for undoing Content-Encoding.
 *
 * Each coding round-trips through its reference encoder, in parts of
 * several sizes; stacked codings come off in the right order; each call
 * makes about what it was asked for, however the body is made; corrupt
 * and truncated data, unknown codings, too many codings and a body that
 * expands too far are refused with a message.
 */
#include <brotli/encode.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "body_decode.h"
#include "tap.h"

/* One library step (decode.c's DECODE_STEP): how far past what it was
 * asked for a call may go. */
#define STEP (16 * 1024)

static size_t gzip_of(const char *in, size_t len, char *out, size_t cap, int window)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return n;
}

/* Decodes all of <enc> asking for <want> bytes a call. 0 with the result
 * in <out>, or -1 with the message in <err>. *calls counts the calls; a
 * call that made more than <want> and a step fails the test. */
static int decode_all(const char *coding, const char *enc, size_t enc_len, size_t want,
                      struct buffer *out, char *err, size_t err_len, int *calls)
{
    struct body_decoder *bd = body_decoder_new(coding, strlen(coding), enc_len, err, err_len);
    enum body_decode_result r = BODY_DECODE_MORE;
    int over = 0;
    if (!bd)
        return -1;
    *calls = 0;
    while (r == BODY_DECODE_MORE && *calls < 1000000) {
        size_t before = buffer_length(out);
        r = body_decoder_run(bd, enc, enc_len, out, want, err, err_len);
        (*calls)++;
        if (buffer_length(out) - before > want + STEP)
            over = 1;
    }
    body_decoder_free(bd);
    ok(!over, "%s: no call made much more than the %zu bytes asked for", coding, want);
    return r == BODY_DECODE_DONE ? 0 : -1;
}

static void round_trip(const char *coding, const char *enc, size_t enc_len, const char *want,
                       size_t want_len)
{
    static const size_t parts[] = {1000, 256 * 1024};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        struct buffer out;
        char err[160];
        int calls;
        buffer_init(&out);
        int rc = decode_all(coding, enc, enc_len, parts[i], &out, err, sizeof err, &calls);
        if (!ok(rc == 0, "%s decodes in parts of %zu", coding, parts[i]))
            printf("#   %s\n", err);
        ok(buffer_length(&out) == want_len && memcmp(buffer_peek(&out), want, want_len) == 0,
           "%s gives the original bytes", coding);
        buffer_free(&out);
    }
}

static void refused(const char *coding, const char *enc, size_t enc_len, const char *want)
{
    struct buffer out;
    char err[160] = "";
    int calls;
    buffer_init(&out);
    ok(decode_all(coding, enc, enc_len, 256 * 1024, &out, err, sizeof err, &calls) != 0,
       "%s: refused", want);
    if (!ok(strstr(err, want) != NULL, "%s: message", want))
        printf("#   got '%s'\n", err);
    buffer_free(&out);
}

int main(void)
{
    static char text[100000], enc[200000], enc2[200000];
    size_t n, m;
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "flows are bytes, bodies may be large\n"[i % 37];

    n = gzip_of(text, sizeof text, enc, sizeof enc, 15 + 16);
    round_trip("gzip", enc, n, text, sizeof text);
    round_trip("x-gzip", enc, n, text, sizeof text);
    refused("gzip", enc, n / 2, "corrupt");
    n = gzip_of(text, sizeof text, enc, sizeof enc, 15);
    round_trip("deflate", enc, n, text, sizeof text);
    n = gzip_of(text, sizeof text, enc, sizeof enc, -15);
    round_trip("deflate", enc, n, text, sizeof text); /* raw deflate, seen in the wild */

    n = sizeof enc;
    BrotliEncoderCompress(5, 22, BROTLI_MODE_TEXT, sizeof text, (const uint8_t *)text, &n,
                          (uint8_t *)enc);
    round_trip("br", enc, n, text, sizeof text);
    round_trip("BR", enc, n, text, sizeof text);
    refused("br", enc, n - 3, "br data");

    n = ZSTD_compress(enc, sizeof enc, text, sizeof text, 3);
    round_trip("zstd", enc, n, text, sizeof text);
    refused("zstd", enc, n - 3, "zstd");
    /* a frame that needs a 16 MiB window: past RFC 9659's 8 MB for HTTP */
    {
        size_t big = (size_t)12 << 20;
        char *plain = malloc(big), *packed = malloc(big);
        ZSTD_CCtx *cc = ZSTD_createCCtx();
        uint32_t x = 1;
        for (size_t i = 0; i < big; i++) {
            x = x * 1103515245u + 12345u;
            plain[i] = (char)('a' + (x >> 24) % 4); /* high bits: no short period */
        }
        ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 24);
        n = ZSTD_compress2(cc, packed, big, plain, big);
        ok(!ZSTD_isError(n), "a 16 MiB window frame is made");
        refused("zstd", packed, n, "window over 8 MiB");
        ZSTD_freeCCtx(cc);
        free(plain);
        free(packed);
    }

    /* gzip applied first, then br: br comes off first */
    n = gzip_of(text, sizeof text, enc, sizeof enc, 15 + 16);
    m = sizeof enc2;
    BrotliEncoderCompress(5, 22, BROTLI_MODE_GENERIC, n, (const uint8_t *)enc, &m,
                          (uint8_t *)enc2);
    round_trip("gzip, br", enc2, m, text, sizeof text);
    round_trip("identity", text, 10, text, 10);

    refused("compress", "abc", 3, "unknown content coding 'compress'");
    refused("gzip", "not gzip at all", 15, "corrupt");
    /* the decoder reads no byte past the body */
    n = gzip_of(text, 1000, enc, sizeof enc, 15 + 16);
    round_trip("gzip", guarded_copy(enc, n), n, text, 1000);

    refused("gzip, gzip, gzip, gzip, gzip", "abc", 3, "more than 4 content codings");
    /* identity alone, or around a coding, is no stage */
    n = gzip_of(text, sizeof text, enc, sizeof enc, 15 + 16);
    round_trip("identity, gzip, identity", enc, n, text, sizeof text);
    round_trip("identity", text, sizeof text, text, sizeof text);

    /* 64 MiB of zeros squeezed into a few KiB: stopped at the cap, long
     * before all of it was made */
    {
        size_t big = (size_t)64 << 20;
        char *zeros = calloc(1, big);
        char *packed = malloc(1 << 20);
        n = ZSTD_compress(packed, 1 << 20, zeros, big, 3);
        refused("zstd", packed, n, "expands too much");
        free(zeros);
        free(packed);
    }

    /* 4 MiB of zstd skippable frames (input that makes no output) before
     * the text: each call still stops after work in proportion to what it
     * was asked for, so it takes many calls, not one */
    {
        size_t frame = 64 * 1024, skip = (size_t)4 << 20, at = 0;
        char *body = malloc(skip + sizeof enc);
        struct buffer out;
        char err[160];
        int calls;
        while (at < skip) {
            uint32_t magic = 0x184D2A50, size = (uint32_t)(frame - 8);
            memcpy(body + at, &magic, 4); /* little-endian, as zstd's format says */
            memcpy(body + at + 4, &size, 4);
            memset(body + at + 8, 'x', frame - 8);
            at += frame;
        }
        at += ZSTD_compress(body + at, sizeof enc, text, sizeof text, 3);
        buffer_init(&out);
        ok(decode_all("zstd", body, at, 1000, &out, err, sizeof err, &calls) == 0,
           "skippable frames, then the text: decoded");
        ok(buffer_length(&out) == sizeof text &&
               memcmp(buffer_peek(&out), text, sizeof text) == 0,
           "skippable frames: the text");
        if (!ok(calls > 10, "skippable frames: taken a bounded piece a call"))
            printf("#   %d calls\n", calls);
        buffer_free(&out);
        free(body);
    }
    return tap_done();
}
