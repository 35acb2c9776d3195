/*
 * test_decode.c - unit tests for the Content-Encoding decoders: each coding
 * round-trips whole and one byte at a time; corrupt, truncated and trailing
 * input fail; a bomb is stopped by the ratio and by the size cap.
 */
#include <brotli/encode.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "decode.h"
#include "tap.h"

/* Compresses <in> in <coding> into a malloc'd block; *out_len its size. */
static unsigned char *encode(enum decode_coding coding, const unsigned char *in, size_t len,
                             size_t *out_len)
{
    size_t cap = len + len / 2 + 1024;
    unsigned char *out = malloc(cap);
    if (!out)
        return NULL;
    if (coding == DECODE_GZIP || coding == DECODE_DEFLATE) {
        z_stream z = {0};
        /* gzip: 16 + window bits; deflate with -15: the raw form some
         * servers send; 15: zlib as RFC 9110 says. */
        int bits = coding == DECODE_GZIP ? 16 + 15 : 15;
        deflateInit2(&z, 9, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY);
        z.next_in = (unsigned char *)(uintptr_t)in;
        z.avail_in = (uInt)len;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        deflate(&z, Z_FINISH);
        *out_len = z.total_out;
        deflateEnd(&z);
    } else if (coding == DECODE_BR) {
        *out_len = cap;
        BrotliEncoderCompress(5, 22, BROTLI_MODE_GENERIC, len, in, out_len, out);
    } else {
        *out_len = ZSTD_compress(out, cap, in, len, 3);
    }
    return out;
}

static unsigned char *raw_deflate(const unsigned char *in, size_t len, size_t *out_len)
{
    size_t cap = len + 1024;
    unsigned char *out = malloc(cap);
    z_stream z = {0};
    deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (unsigned char *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

/* Decodes <enc> fed in pieces of <piece> bytes; the last result. */
static enum decode_result run(enum decode_coding coding, const unsigned char *enc, size_t len,
                              size_t piece, uint64_t cap, struct buffer *out)
{
    struct decoder *d = decoder_new(coding, cap);
    enum decode_result r = DECODE_OK;
    size_t off = 0;
    if (!d)
        return DECODE_NOMEM;
    do {
        size_t n = len - off < piece ? len - off : piece;
        r = decoder_feed(d, (const char *)enc + off, n, off + n == len, out);
        off += n;
    } while (off < len && (r == DECODE_OK || r == DECODE_END));
    decoder_free(d);
    return r;
}

/* Decodes <enc> given whole, <budget> bytes of output per call, offering
 * what is left after each DECODE_MORE; the last result. *most is the most
 * one call made. */
static enum decode_result run_some(enum decode_coding coding, const unsigned char *enc,
                                   size_t len, size_t budget, uint64_t cap, struct buffer *out,
                                   size_t *most)
{
    struct decoder *d = decoder_new(coding, cap);
    enum decode_result r;
    size_t off = 0;
    *most = 0;
    if (!d)
        return DECODE_NOMEM;
    do {
        size_t used, before = buffer_length(out);
        r = decoder_feed_some(d, (const char *)enc + off, len - off, 1, out, budget, &used);
        off += used;
        if (buffer_length(out) - before > *most)
            *most = buffer_length(out) - before;
    } while (r == DECODE_MORE);
    decoder_free(d);
    return r;
}

static unsigned char *sample(size_t len)
{
    unsigned char *p = malloc(len);
    unsigned x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        /* words from a small alphabet: compressible, not trivially so */
        p[i] = (unsigned char)("abcdefgh <>/\n"[(x >> 16) % 13]);
    }
    return p;
}

int main(void)
{
    static const enum decode_coding codings[] = {DECODE_GZIP, DECODE_DEFLATE, DECODE_BR,
                                                 DECODE_ZSTD};
    size_t plain_len = 200000;
    unsigned char *plain = sample(plain_len);

    is_int(decode_coding_parse(" GZip ", 6), DECODE_GZIP, "parse: case and blanks");
    is_int(decode_coding_parse("x-gzip", 6), DECODE_GZIP, "parse: x-gzip");
    is_int(decode_coding_parse("br", 2), DECODE_BR, "parse: br");
    is_int(decode_coding_parse("zstd", 4), DECODE_ZSTD, "parse: zstd");
    is_int(decode_coding_parse("deflate", 7), DECODE_DEFLATE, "parse: deflate");
    is_int(decode_coding_parse("", 0), DECODE_IDENTITY, "parse: empty");
    is_int(decode_coding_parse("identity", 8), DECODE_IDENTITY, "parse: identity");
    is_int(decode_coding_parse("gzip, br", 8), DECODE_UNKNOWN, "parse: stacked codings");
    is_int(decode_coding_parse("compress", 8), DECODE_UNKNOWN, "parse: compress");

    for (size_t c = 0; c < sizeof codings / sizeof codings[0]; c++) {
        enum decode_coding coding = codings[c];
        const char *name = decode_coding_name(coding);
        size_t enc_len;
        unsigned char *enc = encode(coding, plain, plain_len, &enc_len);
        static const size_t pieces[] = {1, 7, 4096, 1 << 30};
        for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
            struct buffer out;
            /* input ends at an unreadable page: an over-read faults */
            const unsigned char *g = (const unsigned char *)guarded_copy((const char *)enc, enc_len);
            buffer_init(&out);
            enum decode_result r = run(coding, g, enc_len, pieces[k], 1 << 30, &out);
            ok(r == DECODE_END && buffer_length(&out) == plain_len &&
                   memcmp(buffer_peek(&out), plain, plain_len) == 0,
               "%s: round trip in pieces of %zu (%s)", name, pieces[k], decode_result_name(r));
            buffer_free(&out);
        }
        {
            struct buffer out;
            buffer_init(&out);
            is_int(run(coding, enc, enc_len / 2, 1 << 30, 1 << 30, &out), DECODE_CORRUPT,
                   "truncated stream is corrupt");
            buffer_free(&out);
        }
        {
            struct buffer out;
            unsigned char *bad = malloc(enc_len);
            memcpy(bad, enc, enc_len);
            for (size_t i = 0; i < 64 && i < enc_len; i++)
                bad[i] ^= 0x5a;
            buffer_init(&out);
            is_int(run(coding, bad, enc_len, 1 << 30, 1 << 30, &out), DECODE_CORRUPT,
                   "garbled stream is corrupt");
            buffer_free(&out);
            free(bad);
        }
        {
            struct buffer out;
            buffer_init(&out);
            is_int(run(coding, enc, enc_len, 1 << 30, 1000, &out), DECODE_BOMB,
                   "past the size cap is a bomb");
            ok(buffer_length(&out) < 1000 + 64 * 1024, "%s: stops soon after the cap", name);
            buffer_free(&out);
        }
        if (coding != DECODE_ZSTD) {
            struct buffer out;
            unsigned char *tail = malloc(enc_len + 3);
            memcpy(tail, enc, enc_len);
            memcpy(tail + enc_len, "xyz", 3);
            buffer_init(&out);
            is_int(run(coding, tail, enc_len + 3, 1 << 30, 1 << 30, &out), DECODE_CORRUPT,
                   "bytes after the end are corrupt");
            buffer_free(&out);
            free(tail);
        }
        {
            /* Made a budget at a time from input given whole: the same text,
             * each call within one library step of the budget. */
            struct buffer out;
            size_t most;
            buffer_init(&out);
            enum decode_result r = run_some(coding, enc, enc_len, 20000, 1 << 30, &out, &most);
            ok(r == DECODE_END && buffer_length(&out) == plain_len &&
                   memcmp(buffer_peek(&out), plain, plain_len) == 0,
               "%s: round trip a budget at a time (%s)", name, decode_result_name(r));
            ok(most <= 20000 + 16 * 1024, "%s: one call made at most %zu bytes", name, most);
            buffer_free(&out);
        }
        {
            /* 64 MB of zeros compresses by ~1000:1: the ratio stops it long
             * before the size cap would. */
            size_t zlen = 64u << 20, bomb_len;
            unsigned char *zeros = calloc(1, zlen);
            unsigned char *bomb = encode(coding, zeros, zlen, &bomb_len);
            struct buffer out;
            buffer_init(&out);
            is_int(run(coding, bomb, bomb_len, 4096, (uint64_t)1 << 40, &out), DECODE_BOMB,
                   "a bomb is stopped by the ratio");
            ok(buffer_length(&out) < 8u << 20, "%s: bomb stopped early (%zu bytes)", name,
               buffer_length(&out));
            buffer_free(&out);
            /* Input offered again after DECODE_MORE earns no more credit. */
            size_t most;
            buffer_init(&out);
            is_int(run_some(coding, bomb, bomb_len, 4096, (uint64_t)1 << 40, &out, &most),
                   DECODE_BOMB, "a bomb made a budget at a time is stopped by the ratio");
            ok(buffer_length(&out) < 8u << 20, "%s: ... as early (%zu bytes)", name,
               buffer_length(&out));
            buffer_free(&out);
            free(bomb);
            free(zeros);
        }
        free(enc);
    }

    {
        size_t enc_len;
        unsigned char *enc = raw_deflate(plain, plain_len, &enc_len);
        struct buffer out;
        buffer_init(&out);
        enum decode_result r = run(DECODE_DEFLATE, enc, enc_len, 1 << 30, 1 << 30, &out);
        ok(r == DECODE_END && buffer_length(&out) == plain_len &&
               memcmp(buffer_peek(&out), plain, plain_len) == 0,
           "deflate: raw deflate is accepted too");
        buffer_free(&out);
        /* The byte a first read brought is part of the raw stream too. */
        static const size_t pieces[] = {1, 2, 3, 4096};
        for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
            buffer_init(&out);
            r = run(DECODE_DEFLATE, enc, enc_len, pieces[i], 1 << 30, &out);
            ok(r == DECODE_END && buffer_length(&out) == plain_len &&
                   memcmp(buffer_peek(&out), plain, plain_len) == 0,
               "deflate: raw deflate fed %zu byte(s) at a time", pieces[i]);
            buffer_free(&out);
        }
        free(enc);
    }
    {
        /* zstd: a frame that needs a 16 MiB window (RFC 9659 allows 8 MB
         * for HTTP) is refused rather than given that much memory. */
        size_t big = (size_t)12 << 20, n;
        char *text = malloc(big), *packed = malloc(big);
        ZSTD_CCtx *cc = ZSTD_createCCtx();
        uint32_t x = 1;
        struct buffer out;
        for (size_t i = 0; i < big; i++) {
            x = x * 1103515245u + 12345u;
            text[i] = (char)('a' + (x >> 24) % 4);
        }
        ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 24);
        n = ZSTD_compress2(cc, packed, big, text, big);
        buffer_init(&out);
        is_int(run(DECODE_ZSTD, (const unsigned char *)packed, n, 1 << 16, 1 << 30, &out),
               DECODE_CORRUPT, "zstd: a window over 8 MiB is refused");
        buffer_free(&out);
        ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 23);
        n = ZSTD_compress2(cc, packed, big, text, big);
        buffer_init(&out);
        ok(run(DECODE_ZSTD, (const unsigned char *)packed, n, 1 << 16, 1 << 30, &out) ==
                   DECODE_END &&
               buffer_length(&out) == big && memcmp(buffer_peek(&out), text, big) == 0,
           "zstd: an 8 MiB window is decoded");
        buffer_free(&out);
        ZSTD_freeCCtx(cc);
        free(text);
        free(packed);
    }
    {
        /* zstd: two frames back to back form one body */
        size_t a_len, b_len;
        unsigned char *a = encode(DECODE_ZSTD, plain, 1000, &a_len);
        unsigned char *b = encode(DECODE_ZSTD, plain + 1000, 1000, &b_len);
        unsigned char *both = malloc(a_len + b_len);
        struct buffer out;
        memcpy(both, a, a_len);
        memcpy(both + a_len, b, b_len);
        buffer_init(&out);
        enum decode_result r = run(DECODE_ZSTD, both, a_len + b_len, 5, 1 << 30, &out);
        ok(r == DECODE_END && buffer_length(&out) == 2000 &&
               memcmp(buffer_peek(&out), plain, 2000) == 0,
           "zstd: two frames");
        buffer_free(&out);
        free(a);
        free(b);
        free(both);
    }
    {
        /* gzip: two members back to back form one body (RFC 1952 2.2),
         * whole and a byte at a time; bytes after the last are corrupt */
        size_t a_len, b_len;
        unsigned char *a = encode(DECODE_GZIP, plain, 1000, &a_len);
        unsigned char *b = encode(DECODE_GZIP, plain + 1000, 1000, &b_len);
        unsigned char *both = malloc(a_len + b_len + 3);
        struct buffer out;
        memcpy(both, a, a_len);
        memcpy(both + a_len, b, b_len);
        for (size_t piece = 1; piece <= a_len + b_len; piece += a_len + b_len - 1) {
            buffer_init(&out);
            enum decode_result r = run(DECODE_GZIP, both, a_len + b_len, piece, 1 << 30, &out);
            ok(r == DECODE_END && buffer_length(&out) == 2000 &&
                   memcmp(buffer_peek(&out), plain, 2000) == 0,
               "gzip: two members, in pieces of %zu", piece);
            buffer_free(&out);
        }
        memcpy(both + a_len + b_len, "xyz", 3);
        buffer_init(&out);
        is_int(run(DECODE_GZIP, both, a_len + b_len + 3, 1 << 30, 1 << 30, &out), DECODE_CORRUPT,
               "gzip: bytes after the last member are corrupt");
        buffer_free(&out);
        buffer_init(&out);
        is_int(run(DECODE_GZIP, both, a_len + b_len / 2, 1 << 30, 1 << 30, &out), DECODE_CORRUPT,
               "gzip: a second member cut short is corrupt");
        buffer_free(&out);
        free(a);
        free(b);
        free(both);
    }
    free(plain);
    return tap_done();
}
