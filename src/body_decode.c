/*
 * body_decode.c - gzip, deflate, br and zstd decoding (body_decode.h).
 */
#include "body_decode.h"

#include <brotli/decode.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

#define CHUNK (64 * 1024)

static int too_big(struct buffer *out, size_t more, char *err, size_t err_len)
{
    if (buffer_length(out) + more > BODY_DECODE_MAX) {
        snprintf(err, err_len, "the decoded body is larger than %zu MiB", BODY_DECODE_MAX >> 20);
        return 1;
    }
    return 0;
}

/* <window>: 15 + 32 reads zlib or gzip; -15 reads raw deflate. */
static int inflate_with(int window, const char *data, size_t len, struct buffer *out, char *err,
                        size_t err_len)
{
    z_stream z;
    int rc;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, window) != Z_OK) {
        snprintf(err, err_len, "zlib could not start");
        return -1;
    }
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    do {
        char *p = buffer_reserve(out, CHUNK);
        if (!p || too_big(out, CHUNK, err, err_len)) {
            inflateEnd(&z);
            return -1;
        }
        z.next_out = (Bytef *)p;
        z.avail_out = CHUNK;
        rc = inflate(&z, Z_NO_FLUSH);
        buffer_commit(out, CHUNK - z.avail_out);
        if (rc == Z_STREAM_END && z.avail_in > 0 && window > 0) {
            /* gzip members may follow one another */
            if (inflateReset(&z) != Z_OK)
                break;
            rc = Z_OK;
        }
    } while (rc == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        snprintf(err, err_len, "corrupt or truncated deflate data (%s)",
                 z.msg ? z.msg : "it ends early");
        return -1;
    }
    return 0;
}

static int decode_brotli(const char *data, size_t len, struct buffer *out, char *err,
                         size_t err_len)
{
    BrotliDecoderState *st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    const uint8_t *in = (const uint8_t *)data;
    size_t avail_in = len;
    BrotliDecoderResult r;
    if (!st) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    do {
        char *p = buffer_reserve(out, CHUNK);
        size_t avail_out = CHUNK;
        uint8_t *next_out = (uint8_t *)p;
        if (!p || too_big(out, CHUNK, err, err_len)) {
            BrotliDecoderDestroyInstance(st);
            return -1;
        }
        r = BrotliDecoderDecompressStream(st, &avail_in, &in, &avail_out, &next_out, NULL);
        buffer_commit(out, CHUNK - avail_out);
    } while (r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT);
    BrotliDecoderDestroyInstance(st);
    if (r != BROTLI_DECODER_RESULT_SUCCESS) {
        snprintf(err, err_len, "corrupt or incomplete brotli data");
        return -1;
    }
    return 0;
}

static int decode_zstd(const char *data, size_t len, struct buffer *out, char *err,
                       size_t err_len)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    ZSTD_inBuffer in = {data, len, 0};
    size_t rc = 1;
    if (!ds) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    ZSTD_initDStream(ds);
    while (in.pos < in.size || rc != 0) {
        char *p = buffer_reserve(out, CHUNK);
        ZSTD_outBuffer o = {p, CHUNK, 0};
        if (!p || too_big(out, CHUNK, err, err_len)) {
            ZSTD_freeDStream(ds);
            return -1;
        }
        rc = ZSTD_decompressStream(ds, &o, &in);
        buffer_commit(out, o.pos);
        if (ZSTD_isError(rc)) {
            snprintf(err, err_len, "corrupt zstd data (%s)", ZSTD_getErrorName(rc));
            ZSTD_freeDStream(ds);
            return -1;
        }
        if (in.pos == in.size && o.pos < o.size && rc != 0) {
            snprintf(err, err_len, "incomplete zstd data");
            ZSTD_freeDStream(ds);
            return -1;
        }
    }
    ZSTD_freeDStream(ds);
    return 0;
}

static int decode_one(const char *coding, size_t clen, const char *data, size_t len,
                      struct buffer *out, char *err, size_t err_len)
{
    if ((clen == 4 && strncasecmp(coding, "gzip", 4) == 0) ||
        (clen == 6 && strncasecmp(coding, "x-gzip", 6) == 0))
        return inflate_with(15 + 32, data, len, out, err, err_len);
    if (clen == 7 && strncasecmp(coding, "deflate", 7) == 0) {
        /* "deflate" means zlib-wrapped, but raw deflate is common too. */
        if (inflate_with(15, data, len, out, err, err_len) == 0)
            return 0;
        buffer_consume(out, buffer_length(out));
        return inflate_with(-15, data, len, out, err, err_len);
    }
    if (clen == 2 && strncasecmp(coding, "br", 2) == 0)
        return decode_brotli(data, len, out, err, err_len);
    if (clen == 4 && strncasecmp(coding, "zstd", 4) == 0)
        return decode_zstd(data, len, out, err, err_len);
    if (clen == 8 && strncasecmp(coding, "identity", 8) == 0)
        return buffer_append(out, data, len);
    snprintf(err, err_len, "unknown content coding '%.*s'", (int)(clen > 40 ? 40 : clen), coding);
    return -1;
}

int body_decode(const char *encoding, size_t enc_len, const char *data, size_t len,
                struct buffer *out, char *err, size_t err_len)
{
    struct buffer a, b;
    const char *end = encoding + enc_len;
    int rc = 0;

    buffer_init(&a);
    buffer_init(&b);
    if (buffer_append(&a, data, len) != 0)
        return -1;
    /* Codings were applied left to right, so they come off right to left. */
    while (end > encoding && rc == 0) {
        const char *start = end;
        while (start > encoding && start[-1] != ',')
            start--;
        const char *s = start, *e = end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            buffer_consume(&b, buffer_length(&b));
            rc = decode_one(s, (size_t)(e - s), buffer_peek(&a), buffer_length(&a), &b, err,
                            err_len);
            buffer_swap(&a, &b);
        }
        end = start > encoding ? start - 1 : encoding;
    }
    if (rc == 0)
        buffer_swap(out, &a);
    buffer_free(&a);
    buffer_free(&b);
    return rc;
}
