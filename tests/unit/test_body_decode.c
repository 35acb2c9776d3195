/*
 * test_body_decode.c - unit tests for undoing Content-Encoding.
 *
 * Each coding round-trips through its reference encoder; stacked codings
 * come off in the right order; corrupt and truncated data, unknown codings
 * and a body that expands past the cap are refused with a message.
 */
#include <brotli/encode.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "body_decode.h"
#include "tap.h"

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

static void round_trip(const char *coding, const char *enc, size_t enc_len, const char *want,
                       size_t want_len)
{
    struct buffer out;
    char err[160];
    buffer_init(&out);
    int rc = body_decode(coding, strlen(coding), enc, enc_len, &out, err, sizeof err);
    if (!ok(rc == 0, "%s decodes", coding))
        printf("#   %s\n", err);
    ok(buffer_length(&out) == want_len && memcmp(buffer_peek(&out), want, want_len) == 0,
       "%s gives the original bytes", coding);
    buffer_free(&out);
}

static void refused(const char *coding, const char *enc, size_t enc_len, const char *want)
{
    struct buffer out;
    char err[160] = "";
    buffer_init(&out);
    ok(body_decode(coding, strlen(coding), enc, enc_len, &out, err, sizeof err) != 0,
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

    /* 64 MiB of zeros squeezed into a few KiB: stopped at the cap */
    {
        size_t big = (size_t)64 << 20;
        char *zeros = calloc(1, big);
        char *packed = malloc(1 << 20);
        n = ZSTD_compress(packed, 1 << 20, zeros, big, 3);
        refused("zstd", packed, n, "larger than");
        free(zeros);
        free(packed);
    }
    return tap_done();
}
